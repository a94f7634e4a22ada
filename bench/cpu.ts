/**
 * `npm run bench`: the CPU-bound guest (guests/bench/cpubench.c, built with C) on understudy's
 * interpreter and on QEMU, in one run, side by side. Prints MIPS for each and their ratio,
 * and the interpreter's steady state on the same program built without C
 * (cpubench-rv32ima.elf), which must not be faster than with C (issue 15). Then the same for
 * the floating-point guest (guests/bench/fpbench.c, n-body in double precision and single-
 * precision fused multiply-adds), whose printed results must be the same as QEMU's, bit for bit.
 *
 * Each figure is the median of several runs of a fresh process; a run's start-up cost (the
 * same process running the tiny hello guest) is subtracted, so the figures compare execution
 * speed. Times are wall-clock on a shared machine: compare the ratio, not the absolute MIPS.
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import { readKernel } from '../src/host/guest-image.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const benchElf = path.join(root, 'guests/build/cpubench.elf');
const benchElfWithoutC = path.join(root, 'guests/build/cpubench-rv32ima.elf');
const helloElf = path.join(root, 'guests/build/hello.elf');
const fpElf = path.join(root, 'guests/build/fpbench.elf');
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

const engines: Engine[] = [
  { name: 'understudy (interpreter)', command: process.execPath, args: (elf) => [path.join(root, 'bin/understudy.js'), 'run', '--clock', 'virtual', '--kernel', elf], countsInstructions: true },
  { name: 'QEMU TCG, -icount shift=0', command: 'qemu-system-riscv32', args: (elf) => ['-M', 'virt', '-bios', 'none', '-nographic', '-icount', 'shift=0', '-kernel', elf], countsInstructions: true },
  { name: 'QEMU TCG', command: 'qemu-system-riscv32', args: (elf) => ['-M', 'virt', '-bios', 'none', '-nographic', '-kernel', elf], countsInstructions: false },
];

/**
 * The interpreter once V8 has optimized it: the benchmark run three times in this process,
 * the last run timed. A long-running guest (Linux) spends its life in this state.
 */
function steadyState(elf: string): { mips: number; instructions: number } {
  let mips = 0;
  let instructions = 0;
  for (let round = 0; round < 3; round++) {
    const machine = new Machine({ ramBytes: 128 * 1024 * 1024, disks: [] }, new VirtualClock());
    machine.load(readKernel(elf));
    const start = process.hrtime.bigint();
    while (machine.power === undefined) machine.run(10_000_000);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    instructions = machine.retiredInstructions;
    mips = instructions / seconds / 1e6;
  }
  return { mips, instructions };
}

function measure(engine: Engine, knownInstructions: number, elf = benchElf): { mips: number; instructions: number; output: string } {
  const startups: number[] = [];
  const totals: number[] = [];
  let instructions = 0;
  let output = '';
  for (let i = 0; i < runs; i++) {
    startups.push(time(engine.command, engine.args(helloElf)).seconds);
    const run = time(engine.command, engine.args(elf));
    output = run.output;
    totals.push(run.seconds);
    const match = /instructions (\d+)/.exec(run.output);
    if (match === null) throw new Error(`${engine.name}: no instruction count in the output: ${run.output}`);
    instructions = engine.countsInstructions ? Number(match[1]) : knownInstructions;
  }
  const seconds = median(totals) - median(startups);
  return { mips: instructions / seconds / 1e6, instructions, output };
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`cpubench: ${runs} runs each, median, start-up subtracted; ${cpu}, ${os.cpus().length} cores, Node ${process.version}`);
const results: { name: string; mips: number; instructions: number }[] = [];
for (const engine of engines) results.push({ name: engine.name, ...measure(engine, results[0]?.instructions ?? 0) });
results.splice(1, 0, { name: 'understudy, steady state', ...steadyState(benchElf) });
results.splice(2, 0, { name: 'steady state, without C', ...steadyState(benchElfWithoutC) });
printTable(results);

// The floating-point guest: the same figures, and the same results as QEMU's.
console.log(`fpbench: ${runs} runs each, median, start-up subtracted`);
const fpResults: { name: string; mips: number; instructions: number; output?: string }[] = [];
for (const engine of engines) fpResults.push({ name: engine.name, ...measure(engine, fpResults[0]?.instructions ?? 0, fpElf) });
fpResults.splice(1, 0, { name: 'understudy, steady state', ...steadyState(fpElf) });
const resultLine = (output: string | undefined): string => /fpbench energies .*/.exec(output ?? '')?.[0]?.replace(/ instructions.*/, '') ?? '(none)';
const fpOurs = resultLine(fpResults[0]!.output);
const fpQemu = resultLine(fpResults[2]!.output);
if (fpOurs !== fpQemu) throw new Error(`fpbench results differ: understudy '${fpOurs}', QEMU '${fpQemu}'`);
printTable(fpResults);
console.log(`results (the same on both): ${fpOurs}`);

function printTable(rows: readonly { name: string; mips: number; instructions: number }[]): void {
  const ours = rows[0]!;
  for (const result of rows) {
    const ratio = result === ours ? '' : `   understudy/this = ${(ours.mips / result.mips).toFixed(2)}`;
    console.log(`${result.name.padEnd(28)} ${result.mips.toFixed(1).padStart(7)} MIPS  (${result.instructions} instructions)${ratio}`);
  }
}
