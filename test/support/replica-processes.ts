/**
 * Real `understudy` processes for the replication tests (pair, primary, backup, status): start
 * them, watch their console (stdout) and log (stderr), kill them, and check what they left.
 *
 * Every process is started in its own process group, so that a test that gives up can kill a
 * `pair` together with the primary and backup it forked (by the group's id, nothing broader).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliPath, repoRoot } from '../helpers.js';
import { sectorBytes } from './pair-workload.js';

/** A port that was free a moment ago: listen on port 0, note the port, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export function scratchDirectory(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `understudy-${prefix}-`));
}

export interface ProcessResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly elapsedMs: number;
}

/**
 * One `understudy` process (and whatever it forks), its output collected as it comes.
 * stdin is closed unless `input` is 'pipe'.
 */
export class CliProcess {
  readonly child: ChildProcess;
  private out = '';
  private err = '';
  private readonly startedMs = performance.now();
  private waiters: (() => void)[] = [];
  /** Resolves when the process has exited and every holder of its stdout and stderr closed them. */
  readonly done: Promise<ProcessResult>;

  /** `prefix`: a command that runs understudy, e.g. `ip netns exec NS` to run it on another (virtual) host. */
  constructor(args: readonly string[], options: { input?: 'pipe' | 'ignore'; timeoutMs?: number; prefix?: readonly string[] } = {}) {
    const command = [...(options.prefix ?? []), process.execPath, cliPath, ...args];
    this.child = spawn(command[0]!, command.slice(1), { cwd: repoRoot, detached: true, stdio: [options.input ?? 'ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('latin1').on('data', (chunk: string) => {
      this.out += chunk;
      this.wake();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.err += chunk;
      this.wake();
    });
    const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => this.killGroup(), options.timeoutMs);
    this.done = new Promise((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('close', (status, signal) => {
        if (timer !== undefined) clearTimeout(timer);
        this.wake();
        resolve({ status, signal, stdout: this.out, stderr: this.err, elapsedMs: performance.now() - this.startedMs });
      });
    });
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** Waits until `stream` (from offset `from`) matches `pattern`; returns the match. */
  async waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const text = (stream === 'stdout' ? this.out : this.err).slice(from);
      const match = pattern.exec(text);
      if (match !== null) return match;
      if (this.exited && this.child.stdout!.readableEnded && this.child.stderr!.readableEnded) {
        throw new Error(`the process exited (status ${this.child.exitCode}, signal ${this.child.signalCode}) before ${stream} showed ${pattern}\n${this.tail()}`);
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} on ${stream}\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** SIGKILL to the process alone (a replica dies; what it forked, if anything, does not). */
  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  /** SIGKILL to the whole process group (clean-up after a failed test). */
  killGroup(): void {
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
  }

  tail(characters = 1500): string {
    return `--- stdout (last ${characters}) ---\n${this.out.slice(-characters)}\n--- stderr ---\n${this.err.slice(-characters)}`;
  }
}

/** Runs `understudy args...` to the end (killed, with its group, after `timeoutMs`). */
export function runCli(args: readonly string[], timeoutMs: number): Promise<ProcessResult> {
  return new CliProcess(args, { timeoutMs }).done;
}

export function describeResult(result: ProcessResult, lines = 8): string {
  const tail = result.stdout.split('\n').slice(-lines).join('\n');
  return `exit status ${result.status}${result.signal === null ? '' : ` (signal ${result.signal})`} after ${result.elapsedMs.toFixed(0)} ms\n--- stdout (end)\n${tail}\n--- stderr\n${result.stderr}`;
}

/** The first line where two outputs differ, for a readable failure. */
export function firstDifference(actual: string, expected: string): string {
  const a = actual.split('\n');
  const e = expected.split('\n');
  for (let i = 0; i < Math.max(a.length, e.length); i++) {
    if (a[i] !== e[i]) return `line ${i + 1}: got ${JSON.stringify(a[i])}, expected ${JSON.stringify(e[i])}`;
  }
  return 'no difference';
}

/** The disk image equals `expected`, or the first differing sector is named. */
export function assertImage(file: string, expected: Uint8Array, context = ''): void {
  const actual = fs.readFileSync(file);
  assert.equal(actual.length, expected.length, `image size${context}`);
  if (Buffer.compare(actual, expected) === 0) return;
  for (let start = 0; start < expected.length; start += sectorBytes) {
    const same = Buffer.compare(actual.subarray(start, start + sectorBytes), expected.subarray(start, start + sectorBytes)) === 0;
    assert.ok(same, `sector ${start / sectorBytes} of the image differs from what the workload leaves${context}`);
  }
}

/**
 * What `pair` says on stderr when the backup goes live: since the kill (when `pair` killed
 * the primary) or since the failure was detected, and how long from the detection to going live.
 */
export interface FailoverLine {
  /** From the detection to going live (catching up, the arbiter, the lease wait if any). */
  readonly liveAfterMs: number;
  /** The backup heard from pair that the primary's process had ended: it waited out no lease. */
  readonly primaryExited: boolean;
  readonly sinceKillMs: number | undefined;
  readonly reason: string;
}

export function failoverLines(stderr: string): FailoverLine[] {
  const lines: FailoverLine[] = [];
  const pattern = /the primary failed \((.*)\); the backup went live (\d+) ms after (the kill|detecting it): detection \d+ ms; (\d+) ms from detection to live: .*?lease \d+ ms( \(none to wait out)?/g;
  for (const match of stderr.matchAll(pattern)) {
    lines.push({ reason: match[1]!, liveAfterMs: Number(match[4]), sinceKillMs: match[3] === 'the kill' ? Number(match[2]) : undefined, primaryExited: match[5] !== undefined });
  }
  return lines;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * The pid of a replica that `pair` (pid `pairPid`) forked: the child whose command line is
 * `understudy <name> ...`, found in /proc. Undefined if there is none (yet, or any more).
 */
export function pairReplicaPid(pairPid: number, name: 'primary' | 'backup'): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'latin1');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      const parentPid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parentPid !== pairPid) continue;
      // node [its flags] .../bin/understudy.js <name> ...
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0');
      const script = argv.findIndex((word) => word.endsWith('bin/understudy.js'));
      if (script >= 0 && argv[script + 1] === name) return Number(entry);
    } catch {
      // the process went away while we looked
    }
  }
  return undefined;
}
