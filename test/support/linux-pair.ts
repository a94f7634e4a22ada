/**
 * Linux on a primary/backup pair, as two processes a test starts itself (`understudy primary`
 * and `understudy backup`), so that it controls the kill and knows whose console to type
 * into: each role's console is its own stdin/stdout, and only the live replica's guest sees
 * what is typed (the backup holds its stdin until it goes live); and the status of a `pair`.
 * For pair-linux.test.ts (the project's kernel) and linux-defconfig.test.ts (the standard one).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ensureDataDisk } from '../../src/host/linux-guest.js';
import { initClusterKeys } from '../../src/host/replica/keys.js';
import { ConsoleSession, shellPrompt } from './console-session.js';
import { fetchStatus, type PairStatus } from '../../src/host/status.js';
import { freePort, type CliProcess } from './replica-processes.js';

export function debugfs(image: string, request: string): string {
  const result = spawnSync('debugfs', ['-R', request, image], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

/** e2fsck on the host finds the image clean. */
export function assertCleanFileSystem(image: string): void {
  const result = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  assert.equal(result.status, 0, `e2fsck finds the disk clean:\n${result.stdout}${result.stderr}`);
}

/** Waits until a session's stderr (its --verbose log) matches. */
export async function waitForLog(session: ConsoleSession, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(session.stderr);
    if (match !== null) return match;
    if (session.process.exitCode !== null) throw new Error(`the process exited (${session.process.exitCode}) before its log showed ${pattern}:\n${session.tail()}`);
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} in the log:\n${session.tail()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface LinuxPair {
  readonly image: string;
  readonly primary: ConsoleSession;
  readonly backup: ConsoleSession;
}

export interface LinuxPairOptions {
  /** More machine options for both replicas, e.g. `--kernel FILE`. */
  readonly machineArgs?: readonly string[];
  readonly bootTimeoutMs: number;
}

/**
 * A fresh ext4 data disk, a primary listening on a free port, a backup following it, and
 * Linux booted to its shell on the primary's console.
 */
export async function startLinuxPair(directory: string, options: LinuxPairOptions): Promise<LinuxPair> {
  const image = path.join(directory, 'data.img');
  ensureDataDisk(image, 16 * 1024 * 1024);
  const port = await freePort();
  const common = ['--guest', 'linux', ...(options.machineArgs ?? []), '--disk', image, '--arbiter', path.join(directory, 'arbiter'), '--verbose'];
  // Two hosts' worth of keys from one cluster CA, as `understudy keys init` makes them.
  const [primaryKeys, backupKeys] = initClusterKeys(path.join(directory, 'keys'), ['host-a', 'host-b']);
  const primary = new ConsoleSession(['primary', '--listen', `127.0.0.1:${port}`, '--wait-for-backup', '--tls', primaryKeys!, ...common]);
  await waitForLog(primary, /listening on 127\.0\.0\.1:\d+/, 30_000);
  const backup = new ConsoleSession(['backup', '--connect', `127.0.0.1:${port}`, '--tls', backupKeys!, ...common]);
  const mounted = await primary.waitFor('understudy: /data mounted', options.bootTimeoutMs);
  await primary.waitFor(shellPrompt, 30_000, mounted);
  await waitForLog(backup, /following from epoch \d+/, 10_000);
  await waitForLog(primary, /backup joined at epoch \d+/, 10_000);
  return { image, primary, backup };
}

/**
 * Four processes in a pipeline: seq | a shell loop | tee (to /data/pipe.txt and on) | wc. The
 * loop reports its progress on the console every `every` lines ("at N"), the moment a test
 * kills a replica; wc prints `lines` at the end.
 */
export function progressPipeline(lines: number, every: number): string {
  return `seq ${lines} | while read n; do echo "line $n"; [ $((n % ${every})) = 0 ] && echo "at $n" >&2; done | tee /data/pipe.txt | wc -l`;
}

/** Types the pipeline on `session` and waits for its first progress report; it must still be running. */
async function startPipelineUntilProgress(session: ConsoleSession, lines: number, every: number, timeoutMs: number): Promise<void> {
  const start = session.text.length;
  session.type(`${progressPipeline(lines, every)}\n`);
  await session.waitFor(new RegExp(`\\nat ${every}\\r?\\n`), timeoutMs, start);
  assert.ok(!session.text.slice(start).includes(`at ${lines}`), `the pipeline was still running at the kill:\n${session.tail()}`);
}

/** Waits for the pipeline's end on `session` (wc's count of every line) and the prompt after it. */
async function pipelineFinished(session: ConsoleSession, lines: number, timeoutMs: number): Promise<void> {
  const counted = await session.waitFor(new RegExp(`\\n${lines}\\r?\\n`), timeoutMs);
  await session.waitFor(shellPrompt, 30_000, counted);
}

/** SIGKILLs the primary; waits for the backup to go live; returns how long that took. */
export async function killPrimary({ primary, backup }: LinuxPair): Promise<{ promotedMs: number; line: string }> {
  const killedAt = performance.now();
  primary.kill();
  const promoted = await waitForLog(backup, /promoted: live from epoch \d+.*/, 15_000);
  const promotedMs = performance.now() - killedAt;
  assert.equal(await primary.exit(10_000), null, 'the primary died of the signal');
  assert.equal(primary.process.signalCode, 'SIGKILL');
  await waitForLog(backup, /role: solo/, 5_000);
  return { promotedMs, line: promoted[0] };
}

/**
 * The progress pipeline on the primary, which is SIGKILLed at the pipeline's first report;
 * the backup goes live, finishes the pipeline (wc counts every line) and answers a command.
 * Returns how long the backup took to go live.
 */
export async function killPrimaryDuringPipeline(pair: LinuxPair, pipeline: { lines: number; every: number; timeoutMs: number }): Promise<{ promotedMs: number; line: string }> {
  await startPipelineUntilProgress(pair.primary, pipeline.lines, pipeline.every, pipeline.timeoutMs);
  const killed = await killPrimary(pair);
  await pipelineFinished(pair.backup, pipeline.lines, pipeline.timeoutMs);
  await firstCommandAfterFailover(pair.backup);
  return killed;
}

/**
 * The first command typed into the new primary. Console bytes the failover repeats may still
 * be on their way (a repeated prompt among them), so it waits for the command's own output and
 * the prompt after it, not for the first prompt. Returns what the backup printed before the
 * echo of the command.
 */
export async function firstCommandAfterFailover(backup: ConsoleSession): Promise<string> {
  const command = 'echo the backup is live';
  backup.type(`${command}\n`);
  const output = await backup.waitFor(/\nthe backup is live\r?\n/, 30_000);
  await backup.waitFor(shellPrompt, 30_000, output);
  const echo = backup.text.indexOf(command);
  assert.ok(echo >= 0, backup.tail());
  return backup.text.slice(0, echo);
}

/** Polls a pair's status until it shows the VM protected; returns the primary's pid. */
export async function waitForProtection(port: number, pair: CliProcess): Promise<number> {
  const deadline = performance.now() + 120_000;
  for (;;) {
    const status = await fetchStatus(port).then((text) => JSON.parse(text) as PairStatus, () => undefined);
    if (status?.protected === true && status.primary !== undefined) return status.primary.pid;
    assert.ok(!pair.exited && performance.now() < deadline, `not protected in time\n${pair.tail()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
