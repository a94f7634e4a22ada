/**
 * `npm run bench:tiers`: the interpreter and the translation tier (JavaScript blocks, and
 * WebAssembly blocks: --cpu wasm) side by side by CPU time,
 * which other load on a shared machine disturbs much less than wall-clock time. Each figure
 * comes from a fresh process; the tiers alternate (interpreter, tier, WebAssembly, interpreter, ...)
 * for BENCH_PAIRS pairs (default 10), and the table gives medians and the median of the pairs'
 * ratios. The guests (cpubench, mixbench, fpbench) run three times in their process: the first
 * run is the whole run from a cold start (bare-metal guests, as under `understudy run`, without
 * the CPU warm-up of src/host/warm-up.ts), the third the steady state. The Linux boot runs to the
 * shell prompt on the virtual clock, the warm-up included (UNDERSTUDY_WARMUP=0 turns it off).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine, type CpuMode } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import { readKernel } from '../src/host/guest-image.js';
import { dataDiskMkfsArguments } from '../src/host/linux-guest.js';
import { bootToPrompt } from './boot-to-prompt.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const linuxCache = process.env['UNDERSTUDY_LINUX_CACHE'] ?? path.join(root, '.cache/linux');
const pairs = Number(process.env['BENCH_PAIRS'] ?? 10);
const guests = ['cpubench', 'mixbench', 'fpbench'] as const;
const tiers = ['interp', 'jit', 'wasm'] as const satisfies readonly CpuMode[];
const roundsPerProcess = 3;

/** MIPS of each run of `guest` in this process, by this process's CPU time. */
function guestRounds(guest: string, cpu: CpuMode): number[] {
  const image = readKernel(path.join(root, 'guests/build', `${guest}.elf`));
  const mips: number[] = [];
  for (let round = 0; round < roundsPerProcess; round++) {
    const machine = new Machine({ ramBytes: 128 * 1024 * 1024, disks: [] }, new VirtualClock(), { cpu });
    machine.load(image);
    const start = process.cpuUsage();
    while (machine.power === undefined) machine.run(1_000_000);
    const used = process.cpuUsage(start);
    mips.push(machine.retiredInstructions / ((used.user + used.system) / 1e6) / 1e6);
  }
  return mips;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Runs this file as a child that measures one workload on one tier; returns what it printed. */
function child(workload: string, cpu: CpuMode, disk: string): number[] {
  const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', workload, cpu, disk], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${workload} on ${cpu} failed (${result.status}): ${result.stderr}`);
  return JSON.parse(result.stdout) as number[];
}

if (process.argv[2] === '--child') {
  const [workload, cpu, disk] = process.argv.slice(3) as [string, CpuMode, string];
  const files = { kernel: path.join(linuxCache, 'Image'), initramfs: path.join(linuxCache, 'initramfs.cpio'), disk };
  const values = workload === 'boot' ? [bootToPrompt(files, cpu).cpuSeconds] : guestRounds(workload, cpu);
  console.log(JSON.stringify(values));
} else {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-tiers-'));
  const disk = path.join(directory, 'data.img');
  spawnSync('mkfs.ext4', dataDiskMkfsArguments(disk, 32 * 1024 * 1024));
  try {
    console.log(`the interpreter and the translation tier's two back ends by CPU time: ${pairs} alternating triples of fresh processes, medians; ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}`);
    for (const guest of guests) {
      const runs = new Map<string, number[][]>(tiers.map((cpu) => [cpu, []]));
      for (let pair = 0; pair < pairs; pair++) for (const cpu of tiers) runs.get(cpu)!.push(child(guest, cpu, disk));
      for (const [label, round] of [['whole run', 0], ['steady state', roundsPerProcess - 1]] as const) {
        const [interp, jit, wasm] = tiers.map((cpu) => runs.get(cpu)!.map((rounds) => rounds[round]!));
        const ratios = (tier: number[]): number => median(tier.map((value, index) => value / interp![index]!));
        console.log(
          `${`${guest}, ${label}`.padEnd(26)} interpreter ${median(interp!).toFixed(1).padStart(6)} MIPS, tier ${median(jit!).toFixed(1).padStart(6)} MIPS, ` +
            `WebAssembly blocks ${median(wasm!).toFixed(1).padStart(6)} MIPS   tier/interpreter ×${ratios(jit!).toFixed(2)}, WebAssembly/interpreter ×${ratios(wasm!).toFixed(2)}`,
        );
      }
    }
    const boots = new Map<string, number[]>(tiers.map((cpu) => [cpu, []]));
    for (let pair = 0; pair < pairs; pair++) for (const cpu of tiers) boots.get(cpu)!.push(child('boot', cpu, disk)[0]!);
    const [interp, jit, wasm] = tiers.map((cpu) => boots.get(cpu)!);
    const ratios = (tier: number[]): number => median(tier.map((value, index) => value / interp![index]!));
    console.log(
      `${'Linux boot to the prompt'.padEnd(26)} interpreter ${median(interp!).toFixed(2).padStart(6)} s, tier ${median(jit!).toFixed(2).padStart(6)} s, ` +
        `WebAssembly blocks ${median(wasm!).toFixed(2).padStart(6)} s (CPU)   tier/interpreter time ×${ratios(jit!).toFixed(2)}, WebAssembly/interpreter ×${ratios(wasm!).toFixed(2)}`,
    );
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}
