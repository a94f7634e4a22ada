/**
 * `npm run bench:replication`: what replication costs and how fast it recovers, with real
 * processes on loopback.
 *
 * 1. Failover time over many trials: `pair` running the ticker guest (a console line every
 *    2 ms), the primary killed with SIGKILL at a random moment. For each trial: when the
 *    backup went live (the new primary's first instruction) and when the console printed its
 *    next new line, both measured from the kill; the detection part shown separately.
 * 2. Log traffic per workload: bytes per epoch and per second, from the primary's summary.
 * 3. Normalized performance (the paper's NP): time under `pair` / time of `run`, for the
 *    CPU-bound benchmark at several epoch lengths and both protocol variants.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Prng } from '../src/simulator/prng.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'bin/understudy.js');
const guest = (name: string): string => path.join(root, 'guests/build', `${name}.elf`);
const trials = Number(process.env['BENCH_TRIALS'] ?? 15);

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
  /** Seconds from the start to the guest's last console output. */
  readonly lastOutputSeconds: number;
  /** ms after the kill: when stdout next showed a new tick line. */
  readonly firstOutputAfterKillMs: number | undefined;
}

function run(args: string[], input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killedAt: number | undefined;
    let lastTickBeforeKill = 0;
    let firstOutputAfterKillMs: number | undefined;
    let lastOutputSeconds = 0;
    child.stdout.setEncoding('latin1');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      lastOutputSeconds = Number(process.hrtime.bigint() - start) / 1e9;
      const ticks = [...chunk.matchAll(/tick (\d+)/g)].map((match) => Number(match[1]));
      if (killedAt === undefined) {
        if (ticks.length > 0) lastTickBeforeKill = Math.max(lastTickBeforeKill, ...ticks);
      } else if (firstOutputAfterKillMs === undefined && ticks.some((tick) => tick > lastTickBeforeKill)) {
        firstOutputAfterKillMs = performance.now() - killedAt;
      }
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      if (killedAt === undefined && /killing the primary/.test(stderr)) killedAt = performance.now();
    });
    child.stdin.end(input);
    child.on('exit', (status) => resolve({ status, stdout, stderr, seconds: Number(process.hrtime.bigint() - start) / 1e9, lastOutputSeconds, firstOutputAfterKillMs }));
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function stats(values: number[]): string {
  return values.length === 0 ? 'n/a' : `median ${median(values).toFixed(0)} ms, max ${Math.max(...values).toFixed(0)} ms`;
}

async function failoverTimes(): Promise<void> {
  const prng = new Prng(20261124);
  const live: number[] = [];
  const output: number[] = [];
  const leaseWaits: number[] = [];
  for (let trial = 0; trial < trials; trial++) {
    const killAfter = prng.int(300, 2500);
    const result = await run(['pair', '--kernel', guest('ticker'), '--kill-primary-after', String(killAfter)]);
    const match = /went live (\d+) ms after the kill \(of which (\d+) ms waiting out the old primary's lease\)/.exec(result.stderr);
    if (result.status !== 0 || match === null) throw new Error(`trial ${trial} (kill after ${killAfter} ms) failed: status ${result.status}\n${result.stderr}`);
    live.push(Number(match[1]));
    leaseWaits.push(Number(match[2]));
    if (result.firstOutputAfterKillMs !== undefined) output.push(result.firstOutputAfterKillMs);
  }
  console.log(`failover, ${trials} trials (pair, ticker guest, SIGKILL at random moments; default --failure-timeout 500 ms, lease 200 ms):`);
  console.log(`  kill -> new primary's first instruction:   ${stats(live)}`);
  console.log(`  kill -> next new console line:             ${stats(output)}  (the guest prints every 2 ms)`);
  console.log(`  of which waiting out the old primary's lease after detection: ${stats(leaseWaits)}`);
  console.log('  detection: the connection closes when the primary dies, so ~0 ms here; a primary that hangs');
  console.log('  or is cut off is declared failed after --failure-timeout (500 ms) of silence instead.');
}

function logSummary(stderr: string): string {
  const match = /\[primary\] log summary: (\d+) bytes sent over (\d+) epochs in ([\d.]+) s \((\d+) bytes\/epoch, (\d+) bytes\/s\)/.exec(stderr);
  if (match === null) return 'no summary';
  return `${match[4]!.padStart(6)} bytes/epoch  ${(Number(match[5]) / 1024).toFixed(1).padStart(8)} KiB/s  (${match[2]} epochs, ${(Number(match[1]) / 1024).toFixed(0)} KiB in ${match[3]} s)`;
}

async function logTraffic(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bench-'));
  try {
    const disk = path.join(dir, 'disk.img');
    fs.writeFileSync(disk, new Uint8Array(1024 * 1024));
    console.log('log traffic, primary -> backup (default epoch of 100000 instructions):');
    const workloads: [string, string[], string][] = [
      ['cpubench (CPU-bound)', ['--kernel', guest('cpubench')], ''],
      ['pair_workload (disk, timers)', ['--kernel', guest('pair_workload'), '--disk', disk], ''],
      ['ticker (mostly idle in WFI)', ['--kernel', guest('ticker')], ''],
    ];
    const linuxDisk = path.join(dir, 'linux.img');
    if (fs.existsSync(path.join(root, '.cache/linux/Image'))) {
      workloads.push(['Linux: boot, then poweroff', ['--guest', 'linux', '--disk', linuxDisk], '']);
    }
    for (const [name, args, input] of workloads) {
      fs.writeFileSync(disk, new Uint8Array(1024 * 1024));
      const result = await (name.startsWith('Linux') ? runLinux(args) : run(['pair', '--verbose', ...args], input));
      console.log(`  ${name.padEnd(30)} ${logSummary(result.stderr)}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Linux on the pair: wait for the prompt, then power off. */
function runLinux(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const child = spawn(process.execPath, [cli, 'pair', '--verbose', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (!sent && stdout.includes('understudy$ ')) {
        sent = true;
        child.stdin.write('poweroff\n');
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.on('exit', (status) => resolve({ status, stdout, stderr, seconds: Number(process.hrtime.bigint() - start) / 1e9, lastOutputSeconds: 0, firstOutputAfterKillMs: undefined }));
  });
}

/** Median seconds, over three runs of `args`, until the guest's last console output. */
async function timed(args: string[]): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) times.push((await run(args)).lastOutputSeconds);
  return median(times);
}

async function normalizedPerformance(): Promise<void> {
  // Measured to the guest's last output (when the world has seen everything), with the
  // start-up (one process, or three and the join) measured on the tiny hello guest taken out.
  // Both replicas and V8's compiler threads share this machine's cores.
  const alone = (await timed(['run', '--kernel', guest('cpubench')])) - (await timed(['run', '--kernel', guest('hello')]));
  const pairStart = await timed(['pair', '--kernel', guest('hello')]);
  console.log(`normalized performance, cpubench (time under pair / time alone, start-up taken out; alone: ${alone.toFixed(2)} s, pair start-up ${pairStart.toFixed(2)} s):`);
  for (const protocol of ['original', 'relaxed']) {
    const cells: string[] = [];
    for (const epoch of [10_000, 100_000, 1_000_000]) {
      const paired = (await timed(['pair', '--kernel', guest('cpubench'), '--epoch', String(epoch), '--protocol', protocol])) - pairStart;
      cells.push(`${(epoch / 1000).toFixed(0)}K: ${(paired / alone).toFixed(2)}`);
    }
    console.log(`  ${protocol.padEnd(9)} ${cells.join('   ')}`);
  }
}

console.log(`replication benchmarks; ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}, both replicas on this host`);
await failoverTimes();
await logTraffic();
await normalizedPerformance();
