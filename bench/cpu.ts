/**
 * `npm run bench`: three CPU-bound guests on understudy's interpreter, on its translation tier's
 * two back ends (`--cpu jit`, `--cpu wasm`) and on QEMU with and without `-icount shift=0`, in
 * one run, side by side:
 * cpubench (guests/bench/cpubench.c: matrix multiply, bit-wise CRC, shell sort, divisions),
 * mixbench (guests/bench/mixbench.c: table CRC, a sieve, list walks, number theory) and
 * fpbench (guests/bench/fpbench.c: n-body in double precision, single-precision fused
 * multiply-adds). Every engine must print the same checksum or results as QEMU.
 *
 * Whole runs: the median of several runs of a fresh process, wall clock, each less its
 * start-up (the same process running the tiny hello guest, just before); the engines take
 * turns. Steady state: the program run three times in this process with each tier, the last
 * run timed by this process's CPU time (less disturbed by other load than wall clock). For
 * cpubench also the program built without C, which must not be faster than with C (issue 15).
 * Compare ratios within one run.
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine, type CpuMode } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import { readKernel } from '../src/host/guest-image.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const benchElf = path.join(root, 'guests/build/cpubench.elf');
const benchElfWithoutC = path.join(root, 'guests/build/cpubench-rv32ima.elf');
const helloElf = path.join(root, 'guests/build/hello.elf');
const fpElf = path.join(root, 'guests/build/fpbench.elf');
const mixElf = path.join(root, 'guests/build/mixbench.elf');
const runs = Number(process.env['BENCH_RUNS'] ?? 5);

interface Timed {
  readonly seconds: number;
  readonly output: string;
}

function time(command: string, args: string[]): Timed {
  const start = process.hrtime.bigint();
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (result.status !== 0) throw new Error(`${command} failed (${result.status}): ${result.stderr}`);
  return { seconds, output: result.stdout };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Engine {
  readonly name: string;
  readonly command: string;
  readonly args: (elf: string) => string[];
  /** Without -icount QEMU's minstret counts host time: take the count from another run. */
  readonly countsInstructions: boolean;
}

const understudy = (cpu: CpuMode) => (elf: string) => [path.join(root, 'bin/understudy.js'), 'run', '--clock', 'virtual', '--cpu', cpu, '--kernel', elf];
const engines: Engine[] = [
  { name: 'understudy, interpreter', command: process.execPath, args: understudy('interp'), countsInstructions: true },
  { name: 'understudy, translation tier', command: process.execPath, args: understudy('jit'), countsInstructions: true },
  { name: 'understudy, WebAssembly blocks', command: process.execPath, args: understudy('wasm'), countsInstructions: true },
  { name: 'QEMU TCG, -icount shift=0', command: 'qemu-system-riscv32', args: (elf) => ['-M', 'virt', '-bios', 'none', '-nographic', '-icount', 'shift=0', '-kernel', elf], countsInstructions: true },
  { name: 'QEMU TCG', command: 'qemu-system-riscv32', args: (elf) => ['-M', 'virt', '-bios', 'none', '-nographic', '-kernel', elf], countsInstructions: false },
];

/**
 * The interpreter once V8 has optimized it: the benchmark run three times in this process,
 * the last run timed. A long-running guest (Linux) spends its life in this state.
 */
function steadyState(elf: string, cpu: CpuMode): { mips: number; instructions: number } {
  let mips = 0;
  let instructions = 0;
  for (let round = 0; round < 3; round++) {
    const machine = new Machine({ ramBytes: 128 * 1024 * 1024, disks: [] }, new VirtualClock(), { cpu });
    machine.load(readKernel(elf));
    // CPU time of this process: the machine is shared, and other processes' load moves wall-clock figures.
    const start = process.cpuUsage();
    while (machine.power === undefined) machine.run(10_000_000);
    const used = process.cpuUsage(start);
    const seconds = (used.user + used.system) / 1e6;
    instructions = machine.retiredInstructions;
    mips = instructions / seconds / 1e6;
  }
  return { mips, instructions };
}

/**
 * Whole runs of `elf` on every engine, round robin: run i of each engine, then run i + 1, so
 * that the host's drift (tens of per cent within minutes on the machines of
 * docs/BENCHMARKS.md) weighs on every engine alike. Each run is paired with a run of the
 * hello guest just before it (the start-up); an engine's figure is the median of its runs'
 * times less their start-ups'.
 */
function measureAll(elf: string): { mips: number; instructions: number; output: string }[] {
  const startups = engines.map((): number[] => []);
  const totals = engines.map((): number[] => []);
  const outputs = engines.map(() => '');
  const counts = engines.map(() => 0);
  for (let i = 0; i < runs; i++) {
    engines.forEach((engine, e) => {
      startups[e]!.push(time(engine.command, engine.args(helloElf)).seconds);
      const run = time(engine.command, engine.args(elf));
      outputs[e] = run.output;
      totals[e]!.push(run.seconds);
      const match = /instructions (\d+)/.exec(run.output);
      if (match === null) throw new Error(`${engine.name}: no instruction count in the output: ${run.output}`);
      counts[e] = Number(match[1]);
    });
  }
  return engines.map((engine, e) => {
    // Without -icount QEMU's count is host time: the instructions are the first engine's.
    const instructions = engine.countsInstructions ? counts[e]! : counts[0]!;
    const seconds = median(totals[e]!.map((total, i) => total - startups[e]![i]!));
    return { mips: instructions / seconds / 1e6, instructions, output: outputs[e]! };
  });
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`${runs} runs each, median, start-up subtracted; ${cpu}, ${os.cpus().length} cores, Node ${process.version}`);

/**
 * One program on every engine (whole runs), plus understudy's steady state with each tier;
 * its checksum line must be the same everywhere (QEMU's included).
 */
function compare(name: string, elf: string, resultPattern: RegExp, extra: { name: string; elf: string; cpu: CpuMode }[] = []): void {
  console.log(`${name}:`);
  const measured = measureAll(elf);
  const rows: { name: string; mips: number; instructions: number; output?: string }[] = engines.map((engine, e) => ({ name: engine.name, ...measured[e]! }));
  const steady = [
    { name: 'interpreter, steady state', ...steadyState(elf, 'interp') },
    { name: 'translation tier, steady state', ...steadyState(elf, 'jit') },
    { name: 'WebAssembly blocks, steady state', ...steadyState(elf, 'wasm') },
    ...extra.map((row) => ({ name: row.name, ...steadyState(row.elf, row.cpu) })),
  ];
  rows.splice(3, 0, ...steady);
  const result = (output: string | undefined): string => resultPattern.exec(output ?? '')?.[0] ?? '(none)';
  const reference = result(rows.find((row) => row.name.startsWith('QEMU'))?.output);
  for (const row of rows) {
    if (row.output !== undefined && result(row.output) !== reference) throw new Error(`${name}: ${row.name} printed '${result(row.output)}', QEMU '${reference}'`);
  }
  printTable(rows);
  console.log(`result (the same on every engine): ${reference}`);
}

compare('cpubench', benchElf, /cpubench checksum \S+/, [
  { name: 'interpreter, without C', elf: benchElfWithoutC, cpu: 'interp' },
  { name: 'translation tier, without C', elf: benchElfWithoutC, cpu: 'jit' },
]);
compare('mixbench (CRC, sieve, list walks, division)', mixElf, /mixbench checksum \S+/);
compare('fpbench', fpElf, /fpbench energies .*? checksum \S+/);

/** MIPS of each row, and how many times faster than the interpreter and than QEMU with -icount each is. */
function printTable(rows: readonly { name: string; mips: number; instructions: number }[]): void {
  const interpreter = rows[0]!;
  const icount = rows.find((row) => row.name === 'QEMU TCG, -icount shift=0')!;
  for (const row of rows) {
    console.log(
      `  ${row.name.padEnd(32)} ${row.mips.toFixed(1).padStart(7)} MIPS  (${row.instructions} instructions)` +
        `  ×${(row.mips / interpreter.mips).toFixed(2)} the interpreter, ×${(row.mips / icount.mips).toFixed(2)} QEMU -icount`,
    );
  }
}
