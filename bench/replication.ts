/**
 * `npm run bench:replication:sections`: what replication costs and how fast it recovers, with
 * real processes on loopback. (`npm run bench:replication` is `understudy bench replication`,
 * the sweep of NP against epoch length, protocol and link: src/host/bench/protection.ts.)
 *
 * 1. Failover time over many trials: `pair` running the ticker guest (a console line every
 *    2 ms), the primary killed with SIGKILL at a random moment. For each trial: when the
 *    backup went live (the new primary's first instruction) and when the console printed its
 *    next new line, both measured from the kill; the detection part shown separately.
 * 2. Log traffic per workload: bytes per epoch and per second, from the primary's summary.
 * 3. Normalized performance (the paper's NP): time under `pair` / time of `run`, for the
 *    CPU-bound benchmark at several epoch lengths and both protocol variants.
 * 4. The cost of TLS on the channel: CPU time of the whole pair and wall-clock time, TLS against
 *    plain TCP, for a CPU-bound and a disk workload at two epoch lengths (runs interleaved).
 * 5. The cost of state digests: NP with digests off and at the default interval, for a
 *    CPU-bound and a disk workload at two epoch lengths (runs interleaved), and the time the
 *    replicas themselves spent taking digests.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Prng } from '../src/simulator/prng.js';
import { Machine } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import type { MachineEvent } from '../src/machine/environment.js';
import { loadImage } from '../src/machine/loader/elf.js';
import { scrubWindow, StateDigester } from '../src/machine/state-digest.js';
import { digestIntervalInstructionsDefault } from '../src/replication/replica.js';
import { encodeMessage } from '../src/replication/messages.js';
import { loadTlsIdentity } from '../src/host/replica/keys.js';
import { measureChannel, type ChannelTraffic } from './channel.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'bin/understudy.js');
const guest = (name: string): string => path.join(root, 'guests/build', `${name}.elf`);
const trials = Number(process.env['BENCH_TRIALS'] ?? 50);

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

/** The p-th quantile (0..1), nearest rank. */
function quantile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))]!;
}

function stats(values: number[]): string {
  if (values.length === 0) return 'n/a';
  const ms = (value: number): string => `${value.toFixed(value < 10 ? 1 : 0)} ms`;
  return `median ${ms(median(values))}, p99 ${ms(quantile(values, 0.99))}, max ${ms(Math.max(...values))}`;
}

/** pair's went-live line (host/pair.ts, describeFailover). */
const wentLive =
  /went live (\d+) ms after the kill: detection (\d+) ms; \d+ ms from detection to live: catching up (\d+) ms \((\d+) epochs\), arbiter (\d+) ms, lease (\d+) ms.*?; then the failover epoch ([\d.]+) ms, re-issued I\/O ([\d.]+) ms/;

async function failoverTimes(): Promise<void> {
  const prng = new Prng(20261124);
  const phases = { live: [] as number[], output: [] as number[], detection: [] as number[], catchUp: [] as number[], arbiter: [] as number[], lease: [] as number[], failoverEpoch: [] as number[], reissue: [] as number[] };
  let epochsCaughtUp = 0;
  for (let trial = 0; trial < trials; trial++) {
    const killAfter = prng.int(300, 2500);
    const result = await run(['pair', '--kernel', guest('ticker'), '--kill-primary-after', String(killAfter)]);
    const match = wentLive.exec(result.stderr);
    if (result.status !== 0 || match === null) throw new Error(`trial ${trial} (kill after ${killAfter} ms) failed: status ${result.status}\n${result.stderr}`);
    phases.live.push(Number(match[1]));
    phases.detection.push(Number(match[2]));
    phases.catchUp.push(Number(match[3]));
    epochsCaughtUp += Number(match[4]);
    phases.arbiter.push(Number(match[5]));
    phases.lease.push(Number(match[6]));
    phases.failoverEpoch.push(Number(match[7]));
    phases.reissue.push(Number(match[8]));
    if (result.firstOutputAfterKillMs !== undefined) phases.output.push(result.firstOutputAfterKillMs);
    process.stderr.write(`\rfailover trial ${trial + 1} of ${trials}`);
  }
  process.stderr.write('\n');
  console.log(`failover, ${trials} trials (pair, ticker guest, SIGKILL at random moments; default --failure-timeout 500 ms, lease 200 ms):`);
  console.log(`  kill -> new primary's first instruction:   ${stats(phases.live)}`);
  console.log(`  kill -> next new console line:             ${stats(phases.output)}  (the guest prints every 2 ms)`);
  console.log(`  of which detection (kill -> the backup knows): ${stats(phases.detection)}`);
  console.log(`           catching up (replaying the epochs received): ${stats(phases.catchUp)}  (${(epochsCaughtUp / trials).toFixed(1)} epochs on average)`);
  console.log(`           the arbiter:                  ${stats(phases.arbiter)}`);
  console.log(`           the old primary's lease:      ${stats(phases.lease)}  (none when pair saw the primary's process end)`);
  console.log(`  then the failover epoch:               ${stats(phases.failoverEpoch)}`);
  console.log(`       and the re-issued I/O:            ${stats(phases.reissue)}`);
  console.log('  detection: the connection closes (or pair reports the exit) when the primary dies; a primary');
  console.log('  that hangs or is cut off is declared failed after --failure-timeout (500 ms) of silence instead,');
  console.log('  and then its lease (200 ms) is waited out.');
}

function logSummary(stderr: string): string {
  const match = /\[primary [^\]]*\] log summary: (\d+) bytes sent over (\d+) epochs in ([\d.]+) s \((\d+) bytes\/epoch, (\d+) bytes\/s\)/.exec(stderr);
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

/** The digest figures of a replica's log summary: how many, and milliseconds spent taking them. */
function digestTime(stderr: string, replica: 'primary' | 'backup'): { taken: number; ms: number; runSeconds: number } {
  const match = new RegExp(`\\[${replica} [^\\]]*\\] log summary: .* in ([\\d.]+) s .*; (\\d+) state digests in ([\\d.]+) ms`).exec(stderr);
  return match === null ? { taken: 0, ms: 0, runSeconds: NaN } : { taken: Number(match[2]), ms: Number(match[3]), runSeconds: Number(match[1]) };
}

/** The workloads the cost measurements run: CPU-bound, and disk-bound with its image at `disk`. */
function costWorkloads(disk: string): [string, string[]][] {
  return [
    ['cpubench (CPU-bound)', ['--kernel', guest('cpubench')]],
    ['pair_workload (disk)', ['--kernel', guest('pair_workload'), '--disk', disk]],
  ];
}

async function digestCost(): Promise<void> {
  const runs = Number(process.env['BENCH_DIGEST_RUNS'] ?? 5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bench-'));
  try {
    const disk = path.join(dir, 'disk.img');
    const workloads = costWorkloads(disk);
    /** Seconds to the guest's last output, with a fresh disk each time. */
    const once = async (args: string[]): Promise<Run> => {
      fs.writeFileSync(disk, new Uint8Array(1024 * 1024));
      return run(args);
    };
    const start = await timed(['run', '--kernel', guest('hello')]);
    // The start-up of each setting on its own (a join with digests on also hashes the state on both sides).
    const pairStart = { off: await timed(['pair', '--kernel', guest('hello'), '--digest-every', '0']), on: await timed(['pair', '--kernel', guest('hello')]) };
    console.log(
      `state digests: NP (time under pair / time alone, start-up taken out) with digests off and on (default interval), median of ${runs} interleaved runs ` +
        `(pair start-up: ${pairStart.off.toFixed(2)} s off, ${pairStart.on.toFixed(2)} s on):`,
    );
    for (const [name, args] of workloads) {
      const aloneTimes: number[] = [];
      for (let i = 0; i < 3; i++) aloneTimes.push((await once(['run', ...args])).lastOutputSeconds);
      const alone = median(aloneTimes) - start;
      for (const epoch of [100_000, 1_000_000]) {
        const off: number[] = [];
        const on: number[] = [];
        const replicaShare: number[] = [];
        let digests = 0;
        for (let i = 0; i < runs; i++) {
          off.push((await once(['pair', ...args, '--epoch', String(epoch), '--digest-every', '0'])).lastOutputSeconds - pairStart.off);
          const result = await once(['pair', '--verbose', ...args, '--epoch', String(epoch)]);
          on.push(result.lastOutputSeconds - pairStart.on);
          const primary = digestTime(result.stderr, 'primary');
          const backup = digestTime(result.stderr, 'backup');
          digests = primary.taken;
          replicaShare.push(Math.max(primary.ms / 1000 / primary.runSeconds, backup.ms / 1000 / backup.runSeconds));
        }
        const npOff = median(off) / alone;
        const npOn = median(on) / alone;
        console.log(
          `  ${name.padEnd(22)} epoch ${(epoch / 1000).toFixed(0).padStart(5)}K: NP off ${npOff.toFixed(3)}, on ${npOn.toFixed(3)} ` +
            `(${(((npOn - npOff) / npOff) * 100).toFixed(1)}%; ${digests} digests; taking them: ${(median(replicaShare) * 100).toFixed(2)}% of the busier replica's run)`,
        );
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * CPU seconds (user + system) of `understudy ARGS` and every process it waited for (a pair's
 * replicas included), from bash's `times` after it: load from other processes on a shared
 * machine does not count, unlike wall-clock time.
 */
function cpuSeconds(args: string[]): Promise<{ seconds: number; status: number | null }> {
  return new Promise((resolve) => {
    const quoted = [process.execPath, cli, ...args].map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(' ');
    const child = spawn('bash', ['-c', `${quoted} >/dev/null 2>&1 </dev/null; status=$?; times; exit $status`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.on('exit', (status) => {
      // `times` prints the shell's user and system time, then its children's: "0m1.234s 0m0.100s".
      const children = out.trim().split('\n').at(-1) ?? '';
      const seconds = [...children.matchAll(/(\d+)m([\d.]+)s/g)].reduce((sum, match) => sum + Number(match[1]) * 60 + Number(match[2]), 0);
      resolve({ seconds, status });
    });
  });
}

/**
 * The cost of TLS on the replication channel: the same pair runs with the channel in TLS 1.3
 * (keys made once) and in plain TCP (--insecure), interleaved; CPU time of
 * the whole pair (both replicas, the pair process) and wall-clock time to the guest's end.
 */
async function tlsCost(): Promise<void> {
  const runs = Number(process.env['BENCH_TLS_RUNS'] ?? 5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bench-'));
  try {
    const disk = path.join(dir, 'disk.img');
    const workloads = costWorkloads(disk);
    // Keys made once, as a deployment has them: making keys is set-up, not the channel's cost.
    const keys = path.join(dir, 'keys');
    const made = await cpuSeconds(['keys', 'init', keys, '--replicas', 'bench']);
    if (made.status !== 0) throw new Error(`keys init exited with ${made.status}`);
    console.log(`TLS on the replication channel (keys made once: ${made.seconds.toFixed(2)} s CPU): CPU seconds of the whole pair and wall-clock seconds, TLS / plain TCP, median of ${runs} interleaved runs:`);
    for (const [name, args] of workloads) {
      for (const epoch of [100_000, 1_000_000]) {
        const cpu = { tls: [] as number[], plain: [] as number[] };
        const wall = { tls: [] as number[], plain: [] as number[] };
        for (let i = 0; i < runs; i++) {
          for (const kind of ['tls', 'plain'] as const) {
            const pairArgs = ['pair', ...args, '--epoch', String(epoch), ...(kind === 'plain' ? ['--insecure'] : ['--tls', path.join(keys, 'bench')])];
            fs.writeFileSync(disk, new Uint8Array(1024 * 1024));
            const used = await cpuSeconds(pairArgs);
            if (used.status !== 0) throw new Error(`pair ${pairArgs.join(' ')} exited with ${used.status}`);
            cpu[kind].push(used.seconds);
            fs.writeFileSync(disk, new Uint8Array(1024 * 1024));
            wall[kind].push((await run(pairArgs)).seconds);
          }
        }
        const ratio = (values: { tls: number[]; plain: number[] }): string => `${(((median(values.tls) - median(values.plain)) / median(values.plain)) * 100).toFixed(1)}%`;
        console.log(
          `  ${name.padEnd(22)} epoch ${(epoch / 1000).toFixed(0).padStart(5)}K: CPU ${median(cpu.tls).toFixed(2)} s / ${median(cpu.plain).toFixed(2)} s (${ratio(cpu)}), ` +
            `wall ${median(wall.tls).toFixed(2)} s / ${median(wall.plain).toFixed(2)} s (${ratio(wall)})`,
        );
        await channelCostOfTls(keys, { name, args, epoch, disk, pairCpuSeconds: median(cpu.plain), runs });
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The channel's part of a workload's TLS cost, isolated: the run's own traffic (its epochs,
 * and the bytes per entry, from a plain run's log summary; one acknowledgement per epoch)
 * replayed over loopback with and without TLS (bench/channel.ts), interleaved; the extra CPU
 * time as a share of the whole pair's, and the latency TLS adds to each round trip.
 */
async function channelCostOfTls(
  keys: string,
  workload: { name: string; args: string[]; epoch: number; disk: string; pairCpuSeconds: number; runs: number },
): Promise<void> {
  fs.writeFileSync(workload.disk, new Uint8Array(1024 * 1024));
  const plain = await run(['pair', ...workload.args, '--epoch', String(workload.epoch), '--insecure', '--verbose']);
  const summary = /log summary: (\d+) bytes sent over (\d+) epochs/.exec(plain.stderr);
  if (summary === null) throw new Error(`no log summary from ${workload.name}:\n${plain.stderr.slice(-2000)}`);
  const epochs = Number(summary[2]);
  const traffic: ChannelTraffic = {
    rounds: epochs,
    entryBytes: Math.round(Number(summary[1]) / epochs),
    ackBytes: encodeMessage({ type: 'ack', epoch: epochs, heartbeat: epochs, catchUpMs: 1 }).length,
  };
  // Both ends present the pair's one certificate, as the replicas of a `pair --tls` run do.
  const identity = loadTlsIdentity(path.join(keys, 'bench'));
  const identities = { primary: identity, backup: identity };
  const cpu = { tls: [] as number[], plain: [] as number[] };
  const roundTrips = { tls: [] as number[], plain: [] as number[] };
  await measureChannel(traffic, identities); // warm-up: the first run pays for compiling the paths
  for (let i = 0; i < Math.max(workload.runs, 5); i++) {
    for (const kind of ['tls', 'plain'] as const) {
      const cost = await measureChannel(traffic, kind === 'tls' ? identities : undefined);
      cpu[kind].push(cost.cpuMs);
      roundTrips[kind].push(...cost.roundTripsUs);
    }
  }
  const extraCpuMs = median(cpu.tls) - median(cpu.plain);
  const percentile = (values: number[], p: number): number => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!;
  console.log(
    `    the channel alone: ${epochs} entries of ${traffic.entryBytes} bytes, each acknowledged: CPU ${median(cpu.tls).toFixed(1)} ms TLS / ${median(cpu.plain).toFixed(1)} ms plain, ` +
      `TLS's extra ${extraCpuMs.toFixed(1)} ms = ${((extraCpuMs / 1000 / workload.pairCpuSeconds) * 100).toFixed(2)}% of the pair's CPU; ` +
      `round trip median ${percentile(roundTrips.tls, 0.5).toFixed(0)} / ${percentile(roundTrips.plain, 0.5).toFixed(0)} µs, p99 ${percentile(roundTrips.tls, 0.99).toFixed(0)} / ${percentile(roundTrips.plain, 0.99).toFixed(0)} µs`,
  );
}

/**
 * One machine in this process, run to its end in slices as a replica runs epochs (virtual
 * time, disk requests completed at the next boundary from an in-memory image), taking a state
 * digest every `digestEvery` instructions (0: none). Returns the CPU milliseconds it took
 * (CPU time, not wall-clock time: on a shared machine other processes' load must not count).
 */
function runDigesting(workload: 'cpubench' | 'pair_workload' | 'linux', digestEvery: number): { cpuMs: number; digests: number; digestMs: number } {
  const clock = new VirtualClock();
  const disk = new Uint8Array(1024 * 1024);
  const machine = new Machine({ ramBytes: 128 * 1024 * 1024, disks: workload === 'pair_workload' ? [{ capacityBytes: disk.length, readOnly: false, serial: 'bench' }] : [] }, clock);
  if (workload === 'linux') {
    machine.bootLinux(fs.readFileSync(path.join(root, '.cache/linux/Image')), { initrd: fs.readFileSync(path.join(root, '.cache/linux/initramfs.cpio')), bootargs: 'console=ttyS0' });
  } else {
    machine.load(loadImage(fs.readFileSync(guest(workload))));
  }
  const digester = digestEvery > 0 ? new StateDigester(machine) : undefined;
  digester?.take();
  const started = process.cpuUsage();
  const completions: MachineEvent[] = [];
  let consoleText = '';
  let sinceDigest = 0;
  let sequence = 0;
  let digestMs = 0;
  const sliceInstructions = 100_000;
  while (machine.power === undefined && machine.retiredInstructions < 400_000_000) {
    const result = machine.run(sliceInstructions);
    for (const output of machine.takeOutputs()) {
      if (output.kind === 'console-output') {
        consoleText += Buffer.from(output.bytes).toString('latin1');
        continue;
      }
      if (output.kind === 'net-transmit') continue; // the workload has no NIC
      const request = output.request;
      const base = { kind: 'disk-completion' as const, slot: request.slot, requestId: request.requestId, status: 'ok' as const };
      if (request.op === 'read') completions.push({ ...base, data: disk.slice(request.offsetBytes, request.offsetBytes + request.lengthBytes) });
      else {
        if (request.op === 'write') disk.set(request.data, request.offsetBytes);
        completions.push(base);
      }
    }
    for (const event of completions.splice(0)) machine.applyEvent(event);
    if (result.reason === 'wfi' && machine.isIdle && machine.clockDeadline !== undefined) clock.skipTo(machine.clockDeadline, machine.retiredInstructions);
    machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
    sinceDigest += sliceInstructions;
    if (digester !== undefined && sinceDigest >= digestEvery) {
      sinceDigest = 0;
      const takeStarted = performance.now();
      digester.take(scrubWindow(sequence++, machine.ram.pages));
      digestMs += performance.now() - takeStarted;
    }
    if (workload === 'linux' && consoleText.includes('understudy$ ')) break;
  }
  const used = process.cpuUsage(started);
  return { cpuMs: (used.user + used.system) / 1000, digests: sequence, digestMs };
}

/** The machine-level cost of digests: the same run with and without, interleaved, in this process (no replication noise). */
function digestCostOnOneMachine(): void {
  const reps = Number(process.env['BENCH_DIGEST_RUNS'] ?? 5);
  const workloads: ('cpubench' | 'pair_workload' | 'linux')[] = ['cpubench', 'pair_workload'];
  if (fs.existsSync(path.join(root, '.cache/linux/Image'))) workloads.push('linux');
  console.log(`state digests on one machine (this process, virtual time, CPU time; median of ${reps} interleaved runs; the default is every ${digestIntervalInstructionsDefault / 1e6}M instructions):`);
  for (const workload of workloads) {
    // Warm the JIT on both paths first: a replica runs for long, its digests are warm code.
    for (let i = 0; i < 2; i++) runDigesting(workload, digestIntervalInstructionsDefault / 10);
    const cells: string[] = [];
    const offTimes: number[] = [];
    for (const every of [digestIntervalInstructionsDefault, digestIntervalInstructionsDefault / 10]) {
      const off: number[] = [];
      const on: number[] = [];
      const each: number[] = [];
      for (let i = 0; i < reps; i++) {
        off.push(runDigesting(workload, 0).cpuMs);
        const run = runDigesting(workload, every);
        on.push(run.cpuMs);
        if (run.digests > 0) each.push(run.digestMs / run.digests);
      }
      offTimes.push(...off);
      cells.push(`every ${(every / 1e6).toFixed(0)}M: ${(((median(on) - median(off)) / median(off)) * 100).toFixed(1)}% (${median(each).toFixed(2)} ms each)`);
    }
    console.log(`  ${workload.padEnd(14)} ${cells.join('   ')}   (off: ${(median(offTimes) / 1000).toFixed(2)} s CPU)`);
  }
}

console.log(`replication benchmarks; ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}, both replicas on this host`);
const only = process.env['BENCH_ONLY'];
if (only === undefined || only === 'failover') await failoverTimes();
if (only === undefined || only === 'traffic') await logTraffic();
if (only === undefined || only === 'np') await normalizedPerformance();
if (only === undefined || only === 'tls') await tlsCost();
if (only === undefined || only === 'digests') {
  digestCostOnOneMachine();
  await digestCost();
}
