/**
 * `understudy bench replication`: the cost of protection, measured as the paper measured it
 * (PAPER.md, "What they measured"): the same guest under `run` and under a primary and a
 * backup, for each epoch length, protocol and link, in one run on one machine.
 *
 * Each replica is a process of its own pinned to a core of its own (taskset: the primary and
 * the baseline `run` on core 0, the backup on core 1), spawned here as `understudy primary`
 * and `understudy backup` on loopback (plain TCP: the paper's link was not encrypted; the TLS
 * section of bench/replication.ts measures that cost). A run's CPU time is bash's `times`
 * after the process (user + system of it and its children).
 *
 * What is timed: every workload times its work with the guest's own clock (under a primary
 * the guest reads the host clock through it): diskbench and the Linux benchmarks their
 * phases, cpubench its whole work (guests/build/cpubench-timed.elf). The network service is
 * timed by its client here, from the first GET after its warm-up to the answer to its last
 * PUT. The processes' start-up is not part of it. (cpubench used to be timed from outside,
 * less a small guest's start-up measured once per sweep: on the translation tier its work
 * became short enough, about 0.2 s, for the machine's changing speed to swing that figure by
 * a factor of seven.)
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CpuMode } from '../../machine/board.js';
import { projectRoot } from '../guest-image.js';
import { epochMergeHostMs, epochMergeMax, epochMergeQuietHostMs, quietAfterMs } from '../../replication/replica.js';
import { ensureDataDisk } from '../linux-guest.js';
import { freePort } from '../demo.js';
import { KeepAliveClient } from '../network/http-client.js';
import { renderSvg } from './plot.js';
import {
  epochLabel, normalizedPerformance, pairRatios, workloadLabel, npPlotSpec, phaseTitles, reportMarkdown, type BenchResults, type LinkSetting, type Phase, type Protocol, type RunMeasurement, type Setting, type Traffic,
  type WorkloadName, type WorkloadResult,
} from './protection-report.js';

const cli = path.join(projectRoot, 'bin/understudy.js');
const guest = (name: string): string => path.join(projectRoot, 'guests/build', `${name}.elf`);
/** A run that takes longer than this has hung: it is killed and the sweep goes on. */
const runTimeoutMs = 15 * 60_000;
/**
 * The replicas' failure timeout: longer than the default, so that a stall of the loaded machine
 * is not taken for a failure in the middle of a measurement (the lease and heartbeats stay as
 * they are by default: they follow only a failure timeout shorter than the default).
 */
const failureTimeoutMs = 10_000;
/** The cores the replicas are pinned to. */
const primaryCore = 0;
const backupCore = 1;
/** What cpubench-timed (200 rounds) prints when it computed right (a wrong answer gives no figure). */
const cpubenchChecksum = 'f3b76b8d';
/** diskbench's region (guests/bench/diskbench.c): 1024 blocks of 8 KiB. */
const diskbenchImageBytes = 8 * 1024 * 1024;
/** The Linux guest's data disk, and its benchmarks' sizes (enough to time them to a few per cent). */
const linuxDiskBytes = 64 * 1024 * 1024;
const linuxCpubenchRounds = 200;
const linuxDiskbenchMiB = 8;
/**
 * The network service's work (the Linux guest's filehttpd through passt, a client here on one
 * keep-alive connection): GETs of a 1 KiB file back to back after a warm-up, then PUTs of 64 KiB.
 */
const netWarmUpGets = 100;
const netGets = 1000;
const netGetBytes = 1024;
const netPuts = 40;
const netPutBytes = 64 * 1024;
/** How long one answer may take (a loaded machine, a slow epoch length) before the run is a failure. */
const netAnswerTimeoutMs = 60_000;

export { workloadNames, type WorkloadName } from './protection-report.js';

export interface ProtectionBenchOptions {
  readonly workloads: readonly WorkloadName[];
  /**
   * The tiers (`--cpu`) each workload runs on, under `run` and protected alike; with more than
   * one, every workload is measured on each, and the report names the tier of each result.
   */
  readonly cpus: readonly CpuMode[];
  readonly epochs: readonly number[];
  readonly protocols: readonly Protocol[];
  /** The protected runs keep every epoch boundary (--fixed-epochs), as the paper's protocol. */
  readonly fixedEpochs: boolean;
  readonly links: readonly LinkSetting[];
  /** Throttled links are measured at these epoch lengths only (all, if undefined). */
  readonly throttledEpochs: readonly number[] | undefined;
  /** One-way latency of the throttled links, ms. */
  readonly latencyMs: number;
  readonly runs: number;
  readonly outDirectory: string;
  /** The report's files are named NAME-DATE.md, .json, -PHASE.svg. */
  readonly reportName: string;
  readonly command: string;
  readonly progress: (line: string) => void;
}

/** Answers a guest's console output (all of it so far) with input, through `write`. */
type Conversation = (output: string, write: (text: string) => void) => void;

/** What one workload runs, and how its phases are read from its output. */
interface Workload {
  readonly name: WorkloadName;
  readonly title: string;
  readonly phases: readonly Phase[];
  readonly machineArguments: (disk: string) => string[];
  /** Makes a fresh disk image at `disk` for one run (none for a workload without a disk). */
  readonly prepareDisk?: (disk: string) => void;
  /** Console input in answer to output (Linux's shell): a new conversation for each run. */
  readonly conversation?: () => Conversation;
  readonly phaseSeconds: (output: string) => Partial<Record<Phase, number>>;
  /**
   * A service the host drives over the network: the machine (under `run`, or the primary) gets
   * a NIC through passt with a port forwarded to `guestPort`; once its console shows `ready`,
   * `client` does the work through that port and times its phases; then the guest is powered off
   * from its console. (The backup gets a NIC of its own with nothing forwarded: P3, it is not
   * listened to.)
   */
  readonly service?: {
    readonly guestPort: number;
    readonly ready: string;
    readonly client: (port: number) => Promise<Partial<Record<Phase, number>>>;
  };
}

/** A workload on one tier: its runs say `--cpu`, so that the tier does not depend on the environment. */
function workloadOn(name: WorkloadName, scratch: string, cpu: CpuMode): Workload {
  const work = workload(name, scratch);
  return { ...work, machineArguments: (disk) => [...work.machineArguments(disk), '--cpu', cpu] };
}

function workload(name: WorkloadName, scratch: string): Workload {
  switch (name) {
    case 'cpu':
      return {
        name,
        title: 'cpubench',
        phases: ['cpu'],
        machineArguments: () => ['--kernel', guest('cpubench-timed')],
        phaseSeconds: (output) => {
          const cpu = /cpubench: (\d+) us/.exec(output);
          return cpu === null || !output.includes(`cpubench checksum ${cpubenchChecksum} `) ? {} : { cpu: Number(cpu[1]) / 1e6 };
        },
      };
    case 'disk':
      return {
        name,
        title: 'diskbench',
        phases: ['write', 'read'],
        machineArguments: (disk) => ['--kernel', guest('diskbench'), '--disk', disk],
        prepareDisk: (disk) => {
          fs.rmSync(disk, { force: true });
          fs.writeFileSync(disk, '');
          fs.truncateSync(disk, diskbenchImageBytes);
        },
        phaseSeconds: (output) => {
          const write = /diskbench: write \d+ ops of \d+ bytes in (\d+) us/.exec(output);
          const read = /diskbench: read \d+ ops of \d+ bytes in (\d+) us, verified/.exec(output);
          if (!/diskbench: PASS/.test(output) || write === null || read === null) return {};
          return { write: Number(write[1]) / 1e6, read: Number(read[1]) / 1e6 };
        },
      };
    case 'linux':
      return {
        name,
        title: 'Linux',
        phases: ['linux-cpu', 'linux-write', 'linux-read'],
        machineArguments: (disk) => ['--guest', 'linux', '--disk', disk],
        prepareDisk: linuxDisk(scratch),
        conversation: linuxConversation,
        phaseSeconds: (output) => {
          const cpu = /cpubench: \d+ rounds, checksum 0x[0-9a-f]+, ([\d.]+) ms/.exec(output);
          const write = /diskbench: wrote \d+ MiB to \S+ in ([\d.]+) ms/.exec(output);
          const read = /diskbench: read back in ([\d.]+) ms/.exec(output);
          if (cpu === null || write === null || read === null || !/diskbench: OK/.test(output)) return {};
          return { 'linux-cpu': Number(cpu[1]) / 1000, 'linux-write': Number(write[1]) / 1000, 'linux-read': Number(read[1]) / 1000 };
        },
      };
    case 'net':
      return {
        name,
        title: 'network service',
        phases: ['net-get', 'net-put'],
        machineArguments: (disk) => ['--guest', 'linux', '--disk', disk],
        prepareDisk: linuxDisk(scratch),
        phaseSeconds: () => ({}),
        service: { guestPort: 80, ready: 'filehttpd serving', client: httpClient },
      };
  }
}

/** A fresh copy of a pristine data disk for the Linux guest (made once a sweep). */
function linuxDisk(scratch: string): (disk: string) => void {
  const pristine = path.join(scratch, 'linux-pristine.img');
  return (disk) => {
    ensureDataDisk(pristine, linuxDiskBytes);
    fs.copyFileSync(pristine, disk);
  };
}

/** The network service's client: GETs back to back, then PUTs, each phase timed here; every answer checked. */
async function httpClient(port: number): Promise<Partial<Record<Phase, number>>> {
  const client = await KeepAliveClient.connect(port);
  try {
    const expect = async (method: 'GET' | 'PUT', target: string, body: Uint8Array | undefined, length: number): Promise<void> => {
      const answer = await client.request(method, target, body, netAnswerTimeoutMs);
      if (answer.status !== 200 || (method === 'GET' && answer.body.length !== length)) throw new Error(`${method} ${target}: status ${answer.status}, ${answer.body.length} bytes`);
    };
    await expect('PUT', '/bench', Buffer.alloc(netGetBytes, 0x61), 0);
    for (let i = 0; i < netWarmUpGets; i++) await expect('GET', '/bench', undefined, netGetBytes);
    let started = performance.now();
    for (let i = 0; i < netGets; i++) await expect('GET', '/bench', undefined, netGetBytes);
    const get = (performance.now() - started) / 1000;
    const big = Buffer.alloc(netPutBytes, 0x62);
    started = performance.now();
    for (let i = 0; i < netPuts; i++) await expect('PUT', `/big-${i % 4}`, big, 0);
    return { 'net-get': get, 'net-put': (performance.now() - started) / 1000 };
  } finally {
    client.close();
  }
}

/** Linux's shell: at each prompt the next command (cpubench, diskbench, then poweroff). A new one per run. */
function linuxConversation(): Conversation {
  const commands = [`cpubench ${linuxCpubenchRounds}\n`, `diskbench ${linuxDiskbenchMiB}\n`, 'poweroff\n'];
  let sent = 0;
  return (output, write) => {
    // The n-th prompt gets the n-th command.
    if (output.split('understudy$ ').length - 1 > sent && sent < commands.length) write(commands[sent++]!);
  };
}

/** A process, pinned to a core, with its output, the moment of its last console output, and its CPU time. */
interface Process {
  stdout: string;
  stderr: string;
  readonly write: (text: string) => void;
  readonly exited: Promise<{ status: number | null; wallSeconds: number; cpuSeconds: number }>;
  /** Resolves with the match when stderr first matches `pattern`. */
  waitForStderr(pattern: RegExp): Promise<RegExpExecArray>;
  /** Resolves when stdout (the console) first includes `text`; rejects if the process ends first. */
  waitForStdout(text: string): Promise<void>;
  kill(): void;
}

function quote(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * Starts `understudy ARGS` pinned to `core`. Its console input: `converse`'s answers, or (with
 * `console`) whatever is written to it; otherwise none (stdin closed).
 */
function startPinned(core: number, args: readonly string[], input: { converse?: Conversation | undefined; console?: boolean } = {}): Process {
  const { converse } = input;
  const command = ['taskset', '-c', String(core), process.execPath, cli, ...args].map(quote).join(' ');
  // `times` after the command: the CPU time of its children (the replica) on the last line of stderr.
  const child = spawn('bash', ['-c', `${command}; status=$?; times >&2; exit $status`], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const startedMs = performance.now();
  const waiters: { pattern: RegExp; resolve: (match: RegExpExecArray) => void }[] = [];
  const consoleWaiters: { text: string; resolve: () => void; reject: (error: Error) => void }[] = [];
  const write = (text: string): void => {
    if (child.stdin.writable) child.stdin.write(text);
  };
  const proc: Process = {
    stdout: '',
    stderr: '',
    write,
    exited: new Promise((resolve) => {
      child.on('exit', (status) => {
        for (const waiter of consoleWaiters.splice(0)) waiter.reject(new Error(`it exited (status ${status}) before its console showed "${waiter.text}":\n${proc.stdout.slice(-1500)}\n${proc.stderr.slice(-1500)}`));
        const times = [...proc.stderr.matchAll(/^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/gm)].at(-1);
        const cpuSeconds = times === undefined ? NaN : Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4]);
        resolve({ status, wallSeconds: (performance.now() - startedMs) / 1000, cpuSeconds });
      });
    }),
    waitForStderr(pattern) {
      return new Promise((resolve) => {
        const match = pattern.exec(proc.stderr);
        if (match !== null) resolve(match);
        else waiters.push({ pattern, resolve });
      });
    },
    waitForStdout(text) {
      return new Promise((resolve, reject) => {
        if (proc.stdout.includes(text)) resolve();
        else if (child.exitCode !== null || child.signalCode !== null) reject(new Error(`it exited before its console showed "${text}"`));
        else consoleWaiters.push({ text, resolve, reject });
      });
    },
    kill() {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    },
  };
  child.stdout.setEncoding('latin1').on('data', (chunk: string) => {
    proc.stdout += chunk;
    converse?.(proc.stdout, write);
    for (const waiter of [...consoleWaiters]) {
      if (!proc.stdout.includes(waiter.text)) continue;
      consoleWaiters.splice(consoleWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    proc.stderr += chunk;
    for (const waiter of [...waiters]) {
      const match = waiter.pattern.exec(proc.stderr);
      if (match === null) continue;
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(match);
    }
  });
  if (converse === undefined && input.console !== true) child.stdin.end();
  return proc;
}

/** Waits for a process, killing it if it runs past the timeout. */
async function finish(proc: Process, what: string): Promise<{ wallSeconds: number; cpuSeconds: number }> {
  const timer = setTimeout(() => proc.kill(), runTimeoutMs);
  const result = await proc.exited;
  clearTimeout(timer);
  if (result.status !== 0) throw new Error(`${what} exited with status ${result.status}:\n${proc.stderr.slice(-1500)}`);
  return result;
}

/** The NIC of the machine that serves (`forward`: the host port forwarded to the service), or of a backup (none forwarded). */
function nicArguments(work: Workload, forward: number | undefined): string[] {
  if (work.service === undefined) return [];
  return ['--net', forward === undefined ? 'user' : `user,hostfwd=tcp::${forward}-:${work.service.guestPort}`];
}

/** A service workload's work: once the console says it is ready, the client's phases; then the guest powers off. */
async function serve(work: Workload, proc: Process, port: number | undefined): Promise<Partial<Record<Phase, number>> | undefined> {
  if (work.service === undefined || port === undefined) return undefined;
  await proc.waitForStdout(work.service.ready);
  const phases = await work.service.client(port);
  proc.write('poweroff\n');
  return phases;
}

/** One run under `run`, pinned to the primary's core. */
async function baselineRun(work: Workload, disk: string): Promise<RunMeasurement> {
  work.prepareDisk?.(disk);
  const port = work.service === undefined ? undefined : await freePort();
  const proc = startPinned(primaryCore, ['run', ...work.machineArguments(disk), ...nicArguments(work, port)], { converse: work.conversation?.(), console: work.service !== undefined });
  try {
    const [served, { wallSeconds, cpuSeconds }] = await Promise.all([serve(work, proc, port), finish(proc, `run ${work.title}`)]);
    return { phases: served ?? work.phaseSeconds(proc.stdout), wallSeconds, cpuSeconds };
  } finally {
    proc.kill();
  }
}

function summaryTraffic(primaryErr: string, backupErr: string): Traffic | undefined {
  const primary = /\[primary [^\]]*\] log summary: (\d+) bytes sent over (\d+) epochs in ([\d.]+) s .*; (\d+) messages sent/.exec(primaryErr);
  const backup = /\[backup [^\]]*\] log summary: .*; (\d+) messages sent/.exec(backupErr);
  if (primary === null) return undefined;
  return { bytes: Number(primary[1]), epochs: Number(primary[2]), seconds: Number(primary[3]), primaryMessages: Number(primary[4]), backupMessages: backup === null ? NaN : Number(backup[1]) };
}

/** One run under a primary and a backup, each on its own core. */
async function protectedRun(work: Workload, setting: Setting, options: ProtectionBenchOptions, scratch: string): Promise<RunMeasurement> {
  const disk = path.join(scratch, 'disk.img');
  work.prepareDisk?.(disk);
  const arbiter = fs.mkdtempSync(path.join(scratch, 'arbiter-'));
  const link = options.links.find((candidate) => candidate.name === setting.link);
  const linkArguments = link?.rateMbitPerSecond === undefined ? [] : ['--link-rate', String(link.rateMbitPerSecond), '--link-latency', String(options.latencyMs)];
  const common = [...work.machineArguments(disk), '--epoch', String(setting.epochInstructions), '--protocol', setting.protocol, ...(options.fixedEpochs ? ['--fixed-epochs'] : []), '--insecure', '--verbose', '--arbiter', arbiter, '--failure-timeout', String(failureTimeoutMs), ...linkArguments];
  const port = work.service === undefined ? undefined : await freePort();
  const primary = startPinned(primaryCore, ['primary', '--listen', '127.0.0.1:0', '--wait-for-backup', ...common, ...nicArguments(work, port)], { converse: work.conversation?.(), console: work.service !== undefined });
  let backup: Process | undefined;
  try {
    const listening = await Promise.race([
      primary.waitForStderr(/listening on 127\.0\.0\.1:(\d+)/),
      primary.exited.then(() => {
        throw new Error(`the primary stopped before it listened:\n${primary.stderr.slice(-1500)}`);
      }),
    ]);
    backup = startPinned(backupCore, ['backup', '--connect', `127.0.0.1:${listening[1]}`, ...common, ...nicArguments(work, undefined)]);
    const ended = backup;
    const [primaryEnd, , served] = await Promise.all([finish(primary, 'the primary'), finish(ended, 'the backup'), serve(work, primary, port)]).catch((error: unknown) => {
      // Both sides' last words: one side's failure is often the other's doing.
      throw new Error(`${error instanceof Error ? error.message : String(error)}\nthe primary said:\n${primary.stderr.slice(-1500)}`);
    });
    const phases = served ?? work.phaseSeconds(primary.stdout);
    const traffic = summaryTraffic(primary.stderr, backup.stderr);
    return { phases, wallSeconds: primaryEnd.wallSeconds, cpuSeconds: primaryEnd.cpuSeconds, ...(traffic === undefined ? {} : { traffic }) };
  } finally {
    primary.kill();
    backup?.kill();
    fs.rmSync(arbiter, { recursive: true, force: true });
  }
}

/** The protected settings of the sweep, in the order they are measured. */
export function sweepSettings(options: Pick<ProtectionBenchOptions, 'epochs' | 'protocols' | 'links' | 'throttledEpochs'>): Setting[] {
  const settings: Setting[] = [];
  for (const link of options.links) {
    const epochs = link.rateMbitPerSecond === undefined || options.throttledEpochs === undefined ? options.epochs : options.epochs.filter((epoch) => options.throttledEpochs!.includes(epoch));
    for (const protocol of options.protocols) for (const epochInstructions of epochs) settings.push({ epochInstructions, protocol, link: link.name });
  }
  return settings;
}

function machineDescription(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`;
}

/** Runs the sweep, writing the report and plots into `outDirectory` after every cell; returns the report's path. */
export async function runProtectionBench(options: ProtectionBenchOptions): Promise<string> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-bench-protection-'));
  const started = performance.now();
  const minutes = (): number => (performance.now() - started) / 60_000;
  try {
    // Linux's workloads only where its kernel has been built.
    const names = options.workloads.filter((name) => (name !== 'linux' && name !== 'net') || fs.existsSync(path.join(projectRoot, '.cache/linux/Image')));
    // Each workload on each tier, one after the other, so that the tiers' figures are taken close together.
    const workloads = names.flatMap((name) => options.cpus.map((cpu) => ({ work: workloadOn(name, scratch, cpu), cpu })));
    const settings = sweepSettings(options);
    const total = workloads.length * settings.length;
    let done = 0;
    const say = (line: string): void => options.progress(`[${done}/${total} cells, ${minutes().toFixed(1)} min] ${line}`);
    const results: WorkloadResult[] = [];
    const failures: string[] = [];
    let report = '';
    for (const { work, cpu } of workloads) {
      const disk = path.join(scratch, 'disk.img');
      const tier = options.cpus.length > 1 ? { cpu } : {};
      const title = workloadLabel({ workload: work.title, ...tier });
      // Every baseline run, for the `run` row of the cost table.
      const baseline: RunMeasurement[] = [];
      const result = { workload: work.title, ...tier, phases: work.phases, baseline, protected: [] as WorkloadResult['protected'][number][] };
      results.push(result);
      for (const setting of settings) {
        // Pairs: a run under `run`, then one protected, so that a host whose speed drifts over
        // minutes (shared, virtual) biases neither side; NP is the median of the pairs' ratios.
        const runs: RunMeasurement[] = [];
        const baselines: RunMeasurement[] = [];
        const cell = `${title}, ${setting.protocol}, epoch ${epochLabel(setting.epochInstructions)}, link ${setting.link}`;
        for (let run = 0; run < options.runs; run++) {
          say(`${cell} (${run + 1} of ${options.runs}): under run`);
          const before = await baselineRun(work, disk);
          baseline.push(before);
          try {
            say(`${cell} (${run + 1} of ${options.runs}): protected`);
            runs.push(await protectedRun(work, setting, options, scratch));
            baselines.push(before);
          } catch (error) {
            const reason = error instanceof Error ? error.message : String(error);
            options.progress(`  failed: ${reason}`);
            failures.push(`${cell}, run ${run + 1}: ${reason.split('\n')[0]} (${reason.match(/\] (backup lost[^\n]*)/)?.[1] ?? 'see the progress log'})`);
          }
        }
        result.protected.push({ setting, runs, baselines });
        done++;
        const np = work.phases.map((phase) => {
          const ratios = pairRatios({ runs, baselines }, phase)?.ratios ?? [];
          const spread = ratios.length > 1 ? ` (pairs ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})` : '';
          return `${phase} NP ${normalizedPerformance(result, phase, { runs, baselines }).toFixed(2)}${spread}`;
        });
        options.progress(`  ${np.join(', ')}`);
        report = await writeReport(options, results, { minutes: minutes(), done, total, failures });
      }
    }
    return report;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/** Writes the report (Markdown, JSON, an SVG per phase) of the results so far; returns the Markdown's path. */
async function writeReport(options: ProtectionBenchOptions, results: readonly WorkloadResult[], progress: { minutes: number; done: number; total: number; failures: readonly string[] }): Promise<string> {
  const date = new Date().toISOString().slice(0, 10);
  const bench: BenchResults = {
    date,
    machine: machineDescription(),
    command: options.command,
    notes: [
      `${options.runs} pair(s) of runs per cell, a \`run\` and then the protected one; ${progress.done === progress.total ? `the sweep took ${progress.minutes.toFixed(1)} minutes` : `PARTIAL: ${progress.done} of ${progress.total} cells measured, in ${progress.minutes.toFixed(1)} minutes`}.`,
      `The CPU tier (--cpu) of every run: ${options.cpus.join(' and ')}${options.cpus.length > 1 ? ', each workload on each in turn' : ''}.`,
      options.fixedEpochs
        ? 'Epochs: fixed (--fixed-epochs), every one ends after exactly its instructions (or early), as in the paper.'
        : `Epochs: as the replicas run by default, a boundary with nothing to deliver is skipped (up to ${epochMergeMax} epochs, about ${epochMergeHostMs} ms of host time, or ${epochMergeQuietHostMs} ms once the guest has gone ${quietAfterMs} ms without input or output); --fixed-epochs keeps every one, as in the paper.`,
      `Each replica in a process of its own, pinned: the primary (and the baseline \`run\`) on core ${primaryCore}, the backup on core ${backupCore}; plain TCP on loopback (--insecure); --failure-timeout ${failureTimeoutMs}.`,
      `Throttled links: each replica's sending side through a token bucket at the rate and a one-way delay of ${options.latencyMs} ms (--link-rate, --link-latency).`,
      "cpubench: 966 million instructions (200 rounds), timed by the guest (the paper's Dhrystone: 420 million). diskbench: 2048 synchronous writes of random 8 KiB blocks of an 8 MiB region, then 2048 reads checked against them (the paper: 2048 operations on a pre-allocated file; 8 KiB reads).",
      `Linux: \`cpubench ${linuxCpubenchRounds}\` and \`diskbench ${linuxDiskbenchMiB}\` (write and fsync, then direct-I/O read) in the guest's shell, timed by the guest.`,
      `Network service: the Linux guest's filehttpd through passt (--net user, a port forwarded), a client in the benchmark's process on one keep-alive connection: ${netGets} GETs of ${netGetBytes / 1024} KiB back to back after ${netWarmUpGets} for warm-up, then ${netPuts} PUTs of ${netPutBytes / 1024} KiB, each phase timed by the client.`,
      ...progress.failures.map((failure) => `Failed: ${failure}`),
    ],
    links: options.links,
    workloads: results,
  };
  fs.mkdirSync(options.outDirectory, { recursive: true });
  const base = `${options.reportName}-${date}`;
  fs.writeFileSync(path.join(options.outDirectory, `${base}.json`), JSON.stringify(bench, null, 1) + '\n');
  return await renderReport(bench, path.join(options.outDirectory, base));
}

/** Writes BASE.md and BASE-PHASE.svg for `results` (BASE: a path without an extension); returns the Markdown's path. */
export async function renderReport(results: BenchResults, base: string): Promise<string> {
  const plots = new Map<Phase, string>();
  for (const phase of Object.keys(phaseTitles) as Phase[]) {
    const spec = npPlotSpec(results, phase);
    if (spec === undefined) continue;
    const file = `${base}-${phase}.svg`;
    fs.writeFileSync(file, await renderSvg(spec));
    plots.set(phase, path.basename(file));
  }
  const report = `${base}.md`;
  fs.writeFileSync(report, reportMarkdown(results, plots));
  return report;
}
