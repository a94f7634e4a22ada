/**
 * t backups (`pair --backups N`): one primary and N backups; outputs wait for every backup
 * that follows; when the primary dies, exactly one backup (the arbiter's winner) goes live, the
 * others stop and new backups join the winner. With t = 2, the primary and one backup are
 * killed at the same moment (a moment of the guest's progress, once the status shows both
 * backups following): the run completes exactly as a failure-free one, and the VM is protected
 * by two backups again.
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { guestElf } from './helpers.js';
import { fetchStatus, type PairStatus } from '../src/host/status.js';
import { checkConsoleWithRepeats, createBlankDiskImage, expectedDiskImage, fullShape } from './support/pair-workload.js';
import { assertImage, CliProcess, describeResult, failoverLines, freePort, runCli, scratchDirectory } from './support/replica-processes.js';

const testTimeoutMs = 240_000;

/** `pair --backups 2` on the gated workload, with a status port and an arbiter directory of its own. */
async function startPair(): Promise<{ directory: string; image: string; port: number; arbiter: string; args: string[]; pair: CliProcess }> {
  const directory = scratchDirectory('backups');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, fullShape);
  const port = await freePort();
  const arbiter = path.join(directory, 'arbiter');
  const args = ['pair', '--kernel', guestElf('pair_gated'), '--disk', image, '--backups', '2', '--status-port', String(port), '--arbiter', arbiter];
  return { directory, image, port, arbiter, args, pair: new CliProcess(args, { input: 'pipe', timeoutMs: testTimeoutMs - 10_000 }) };
}

/** The pair's status once `backups` backups follow the live replica, none of them (nor it) in `except` (polled, with a generous deadline). */
async function whenProtectedBy(backups: number, port: number, pair: CliProcess, except: ReadonlySet<number>): Promise<PairStatus> {
  const deadline = performance.now() + 90_000;
  for (;;) {
    const status = await fetchStatus(port).then((text) => JSON.parse(text) as PairStatus, () => undefined);
    const following = (status?.backups ?? []).filter((backup) => backup?.role === 'backup' && !backup.exited && !except.has(backup.pid));
    const primary = status?.primary?.pid;
    if (status?.protected === true && primary !== undefined && !except.has(primary) && following.length === backups) return status;
    assert.ok(!pair.exited, `the pair ended while waiting for protection\n${pair.tail()}`);
    assert.ok(performance.now() < deadline, `not protected by ${backups} backups within 90 s (last status: ${JSON.stringify(status?.reason)})\n${pair.tail()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Lets the gated guest finish; the run must be a failure-free one's, through one failover. Returns the context for more checks. */
async function assertCompletes(started: { image: string; args: string[]; pair: CliProcess }): Promise<string> {
  started.pair.child.stdin!.end('g');
  const result = await started.pair.done;
  const context = `\nreplay: node bin/understudy.js ${started.args.join(' ')}\n${describeResult(result, 20)}`;
  assert.equal(result.status, 0, context);
  assert.equal(failoverLines(result.stderr).length, 1, `one failover${context}`);
  const check = checkConsoleWithRepeats(result.stdout, { shape: fullShape, maxRewinds: 1 });
  assert.ok(check.ok, `console: ${check.reason}${context}`);
  assertImage(started.image, expectedDiskImage(fullShape), context);
  return context;
}

test('t = 2: two backups; the primary and one backup killed together; the other backup takes over, two new backups join, the run completes exactly', { timeout: testTimeoutMs }, async () => {
  const started = await startPair();
  const { port, pair, arbiter } = started;
  try {
    await whenProtectedBy(2, port, pair, new Set());
    const text = await runCli(['status', '--port', String(port)], 30_000);
    for (const line of [/^Protected$/m, /^primary +pid \d+: primary, /m, /^backup 1 pid \d+: backup, /m, /^backup 2 pid \d+: backup, /m]) assert.match(text.stdout, line);
    // A moment of the guest's progress; then both at once.
    await pair.waitFor('stdout', /^line 0060 /m, 60_000);
    const status = await whenProtectedBy(2, port, pair, new Set());
    const primary = status.primary!.pid;
    const [victim, survivor] = status.backups!.map((backup) => backup!.pid);
    process.kill(primary, 'SIGKILL');
    process.kill(victim!, 'SIGKILL');
    await pair.waitFor('stderr', /the backup went live/, 60_000);
    const again = await whenProtectedBy(2, port, pair, new Set([primary, victim!]));
    assert.equal(again.primary!.pid, survivor, `the surviving backup is the primary (killed ${primary} and ${victim})\n${pair.tail()}`);
    const context = await assertCompletes(started);
    // The arbiter: generation 1 (the primary), generation 2 (the survivor) and no other: the
    // primary died before it could drop its killed backup.
    const generations = fs.readdirSync(arbiter).filter((file) => /\.live-\d+$/.test(file)).map((file) => Number(file.replace(/^.*\.live-/, ''))).sort((a, b) => a - b);
    assert.deepEqual(generations, [1, 2], context);
  } finally {
    pair.killGroup();
    fs.rmSync(started.directory, { recursive: true, force: true });
  }
});

test('t = 2: a backup killed alone: the primary drops it through the arbiter (a generation naming the other) and runs on protected by one; a new backup joins', { timeout: testTimeoutMs }, async () => {
  const started = await startPair();
  const { port, pair, arbiter } = started;
  try {
    await pair.waitFor('stdout', /^line 0040 /m, 60_000);
    const status = await whenProtectedBy(2, port, pair, new Set());
    const [victim] = status.backups!.map((backup) => backup!.pid);
    process.kill(victim!, 'SIGKILL');
    const again = await whenProtectedBy(2, port, pair, new Set([victim!]));
    assert.equal(again.primary!.pid, status.primary!.pid, 'no failover');
    // Then the primary: the kept backup or the new one takes over.
    await pair.waitFor('stdout', /^line 0120 /m, 60_000);
    process.kill(again.primary!.pid, 'SIGKILL');
    await pair.waitFor('stderr', /the backup went live/, 60_000);
    const context = await assertCompletes(started);
    const record = JSON.parse(fs.readFileSync(fs.readdirSync(arbiter).map((file) => path.join(arbiter, file)).find((file) => file.endsWith('.live-2'))!, 'utf8')) as { replica: string; members: string[] };
    assert.match(record.replica, /^primary-/, `generation 2 is the primary's, dropping the killed backup${context}`);
    assert.equal(record.members.length, 1, `it names the backup it kept${context}`);
  } finally {
    pair.killGroup();
    fs.rmSync(started.directory, { recursive: true, force: true });
  }
});

test('--backups out of range is refused with the range', async () => {
  for (const value of ['0', '9', 'two']) {
    const result = await runCli(['pair', '--kernel', guestElf('pair_gated'), '--backups', value], 30_000);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /--backups must be a whole number of backups from 1 to 8/);
  }
});
