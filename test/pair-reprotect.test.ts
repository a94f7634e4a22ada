/**
 * A pair that stays protected: after every failure `pair` starts a new backup, which joins the
 * live replica (a promoted backup listens for its own), so the VM survives failure after
 * failure. The primary is killed five times in a row, then primaries and backups in a mix;
 * each kill comes at a moment of the guest's progress once the status shows the VM protected,
 * and the world must see one machine: exit status 0, every console line in order with repeats
 * only from failovers, exactly the disk image of a failure-free run.
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

/** The pair's status once it shows the VM protected (polled, with a generous deadline). */
async function whenProtected(port: number, pair: CliProcess, except: ReadonlySet<number>): Promise<PairStatus> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    const status = await fetchStatus(port).then((text) => JSON.parse(text) as PairStatus, () => undefined);
    const pids = [status?.primary?.pid, status?.backup?.pid];
    if (status?.protected === true && pids.every((pid) => pid !== undefined && !except.has(pid))) return status;
    assert.ok(!pair.exited, `the pair ended while waiting for protection\n${pair.tail()}`);
    assert.ok(performance.now() < deadline, `not protected within a minute\n${pair.tail()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function killSeries(victims: readonly ('primary' | 'backup')[]): Promise<void> {
  const directory = scratchDirectory('reprotect');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, fullShape);
  const port = await freePort();
  const alarms = path.join(directory, 'alarms.txt');
  const args = ['pair', '--kernel', guestElf('pair_gated'), '--disk', image, '--status-port', String(port), '--on-unprotected', `echo "$UNDERSTUDY_REASON" >> ${alarms}`];
  const pair = new CliProcess(args, { input: 'pipe', timeoutMs: testTimeoutMs - 10_000 });
  const killed = new Set<number>();
  try {
    for (const [index, victim] of victims.entries()) {
      // A moment of the guest's progress, spread over the run; then a protected VM to kill in.
      const line = 10 + Math.floor((index * 180) / victims.length);
      await pair.waitFor('stdout', new RegExp(`^line ${String(line).padStart(4, '0')} `, 'm'), 60_000);
      const status = await whenProtected(port, pair, killed);
      const pid = victim === 'primary' ? status.primary!.pid : status.backup!.pid;
      const failoversBefore = failoverLines(pair.stderr).length;
      killed.add(pid);
      process.kill(pid, 'SIGKILL');
      if (victim === 'primary') {
        await pair.waitFor('stderr', new RegExp(`(the backup went live[^]*){${failoversBefore + 1}}`), 60_000);
      }
    }
    await whenProtected(port, pair, killed);
    pair.child.stdin!.end('g');
    const result = await pair.done;
    const context = `\nreplay: node bin/understudy.js ${args.join(' ')} (kills: ${victims.join(', ')})\n${describeResult(result, 20)}`;
    assert.equal(result.status, 0, context);
    const primaryKills = victims.filter((victim) => victim === 'primary').length;
    assert.equal(failoverLines(result.stderr).length, primaryKills, `one failover per primary killed${context}`);
    const check = checkConsoleWithRepeats(result.stdout, { shape: fullShape, maxRewinds: primaryKills });
    assert.ok(check.ok, `console: ${check.reason}${context}`);
    assertImage(image, expectedDiskImage(fullShape), context);
    // The alarm hook ran once for every loss of protection, with the reason. (The hooks run
    // detached: wait for their lines, with a generous deadline.)
    const deadline = performance.now() + 30_000;
    let lines: string[] = [];
    while (lines.length < victims.length && performance.now() < deadline) {
      lines = fs.existsSync(alarms) ? fs.readFileSync(alarms, 'utf8').trim().split('\n') : [];
      if (lines.length < victims.length) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(lines.length, victims.length, `one alarm per kill: ${JSON.stringify(lines)}${context}`);
    assert.equal(lines.filter((line) => /^the primary failed \(.*\); the backup went live and has no backup yet$/.test(line)).length, primaryKills, lines.join('\n'));
    assert.equal(lines.filter((line) => /^the backup \(pid \d+\) is gone$/.test(line)).length, victims.length - primaryKills, lines.join('\n'));
  } finally {
    pair.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

test('pair: the primary killed five times in a row; each time a new backup joins and the VM is protected again', { timeout: testTimeoutMs }, async () => {
  await killSeries(['primary', 'primary', 'primary', 'primary', 'primary']);
});

test('pair: primaries and backups killed in a mix; the pair is protected again after each', { timeout: testTimeoutMs }, async () => {
  await killSeries(['backup', 'primary', 'backup', 'backup', 'primary', 'primary']);
});

test('pair --kill-primary-every: the primary is killed after every join, again and again, and the run completes', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('reprotect');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, fullShape);
  const args = ['pair', '--kernel', guestElf('pair_gated'), '--disk', image, '--kill-primary-every', '300'];
  const pair = new CliProcess(args, { input: 'pipe', timeoutMs: testTimeoutMs - 10_000 });
  try {
    // Three failovers (the gated guest waits at its end, so they come however fast it runs).
    await pair.waitFor('stderr', /(the backup went live[^]*){3}/, 120_000);
    pair.child.stdin!.end('g');
    const result = await pair.done;
    const context = `\nreplay: node bin/understudy.js ${args.join(' ')}\n${describeResult(result, 20)}`;
    assert.equal(result.status, 0, context);
    const failovers = failoverLines(result.stderr).length;
    assert.ok(failovers >= 3, context);
    const check = checkConsoleWithRepeats(result.stdout, { shape: fullShape, maxRewinds: failovers });
    assert.ok(check.ok, `console: ${check.reason}${context}`);
    assertImage(image, expectedDiskImage(fullShape), context);
  } finally {
    pair.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('control actions from `understudy status`: test-failover, restart-backup, then stop', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('reprotect');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, fullShape);
  const port = await freePort();
  const pair = new CliProcess(['pair', '--kernel', guestElf('pair_gated'), '--disk', image, '--status-port', String(port)], { input: 'pipe', timeoutMs: testTimeoutMs - 10_000 });
  const control = (action: string): Promise<{ status: number | null; stdout: string }> => runCli(['status', '--port', String(port), action], 30_000);
  try {
    const before = await whenProtected(port, pair, new Set());
    const failover = await control('test-failover');
    assert.equal(failover.status, 0, failover.stdout);
    assert.match(failover.stdout, new RegExp(`^killed the primary \\(pid ${before.primary!.pid}\\); the backup takes over`));
    await pair.waitFor('stderr', /the backup went live/, 60_000);
    const after = await whenProtected(port, pair, new Set([before.primary!.pid]));
    assert.equal(after.primary!.pid, before.backup!.pid, 'the old backup is the primary');
    const restart = await control('restart-backup');
    assert.equal(restart.status, 0, restart.stdout);
    await whenProtected(port, pair, new Set([before.primary!.pid, after.backup!.pid]));
    const unknown = await control('explode');
    assert.notEqual(unknown.status, 0);
    const stop = await control('stop');
    assert.equal(stop.status, 0, stop.stdout);
    const result = await pair.done;
    assert.equal(result.status, 0, describeResult(result));
    assert.match(result.stderr, /stop \(from the status port\): the whole VM stops/);
    assert.equal(failoverLines(result.stderr).length, 1, describeResult(result));
  } finally {
    pair.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
