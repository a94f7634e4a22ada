/**
 * Unmodified Linux on a primary/backup pair, as two processes the test starts itself
 * (`understudy primary` and `understudy backup`, test/support/linux-pair.ts), so that it
 * controls the kill and knows whose console to type into.
 *
 * Files written in /data before the primary is SIGKILLed must be intact on the backup after
 * it takes over; the backup carries on the shell, writes more, powers off with status 0, and
 * the ext4 image is checked from the host with debugfs and e2fsck: the journal leaves it clean
 * whatever the kill interrupted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from './helpers.js';
import { ensureDataDisk } from '../src/host/linux-guest.js';
import { assertCleanFileSystem as fsck, debugfs, firstCommandAfterFailover, killPrimary, killPrimaryDuringPipeline, startLinuxPair as startPair, waitForProtection, type LinuxPair } from './support/linux-pair.js';
import { CliProcess, describeResult, failoverLines, freePort, runCli, scratchDirectory } from './support/replica-processes.js';

const kernel = path.join(repoRoot, '.cache/linux/Image');
const bootTimeoutMs = 120_000;
const testTimeoutMs = 200_000;

/** The project's kernel on a pair (test/support/linux-pair.ts), booted to its shell. */
function startLinuxPair(directory: string): Promise<LinuxPair> {
  return startPair(directory, { bootTimeoutMs });
}

test('the Linux guest is built (linux/build.sh, run by the set-up)', () => {
  assert.ok(fs.existsSync(kernel), `${kernel} is missing: run linux/build.sh`);
});

test('Linux on a pair: files written before the primary is killed survive on the backup, which carries on and powers off', { timeout: testTimeoutMs }, async (t) => {
  const directory = scratchDirectory('pair-linux');
  let pair: LinuxPair | undefined;
  try {
    pair = await startLinuxPair(directory);
    const { image, primary, backup } = pair;

    // Before the failover: type into the primary.
    assert.equal((await primary.command('mkdir /data/ha')).trim(), '');
    await primary.command('echo written on the primary before the failover > /data/ha/first.txt');
    await primary.command('echo a second file, line one > /data/ha/second.txt');
    await primary.command('echo a second file, line two >> /data/ha/second.txt');
    assert.equal((await primary.command('cat /data/ha/second.txt')).trim(), 'a second file, line one\na second file, line two');
    await primary.command('sync');
    // P3: the backup printed nothing while it followed.
    assert.equal(backup.text, '', 'the backup prints nothing while the primary lives');

    const { promotedMs, line } = await killPrimary(pair);
    t.diagnostic(`the backup was live ${promotedMs.toFixed(0)} ms after the SIGKILL (${line})`);

    // After the failover: type into the backup. What it printed first continues the stream
    // the primary printed (repeating a little of its end, at most).
    const repeated = await firstCommandAfterFailover(backup);
    assert.ok(primary.text.endsWith(repeated), `the backup's first output repeats the end of the primary's: ${JSON.stringify(repeated)}`);
    assert.equal((await backup.command('cat /data/ha/first.txt')).trim(), 'written on the primary before the failover');
    assert.equal((await backup.command('cat /data/ha/second.txt')).trim(), 'a second file, line one\na second file, line two');
    await backup.command('echo written on the backup after the failover > /data/ha/third.txt');
    const listing = await backup.command('ls /data/ha');
    for (const name of ['first.txt', 'second.txt', 'third.txt']) assert.match(listing, new RegExp(`\\b${name.replace('.', '\\.')}\\b`), listing);
    await backup.command('sync');
    backup.type('poweroff\n');
    assert.equal(await backup.exit(60_000), 0, backup.tail());
    assert.match(backup.text, /reboot: Power down/);

    assert.equal(debugfs(image, 'cat /ha/first.txt'), 'written on the primary before the failover\n');
    assert.equal(debugfs(image, 'cat /ha/second.txt'), 'a second file, line one\na second file, line two\n');
    assert.equal(debugfs(image, 'cat /ha/third.txt'), 'written on the backup after the failover\n');
    fsck(image);
  } finally {
    pair?.primary.kill();
    pair?.backup.kill();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('Linux on a pair: the primary dies in the middle of a disk benchmark; the backup finishes it', { timeout: testTimeoutMs }, async (t) => {
  const directory = scratchDirectory('pair-linux');
  let pair: LinuxPair | undefined;
  try {
    pair = await startLinuxPair(directory);
    const { image, primary, backup } = pair;
    await primary.command('echo the primary wrote this first > /data/before.txt');
    await primary.command('sync');

    // diskbench writes and fsyncs 4 MiB, then reads it back and checks it: kill the primary
    // when it says it has written (a moment of the guest's progress), so that the read-back's
    // requests are in flight (the backup re-issues them, P8).
    const start = primary.text.length;
    primary.type('diskbench 4\n');
    await primary.waitFor('diskbench: wrote', 60_000, start);
    const { promotedMs, line } = await killPrimary(pair);
    t.diagnostic(`the backup was live ${promotedMs.toFixed(0)} ms after the SIGKILL (${line})`);

    // The command the primary's guest had read goes on on the backup, to its end; the next
    // command runs only after it. (The read-back is short: the primary may have printed the
    // result itself just before it died. The world's console is the primary's, then the
    // backup's.)
    await firstCommandAfterFailover(backup);
    const world = (primary.text.slice(start) + backup.text).replace(/\r/g, '');
    assert.match(world, /diskbench: OK\n/, `${primary.tail()}\n${backup.tail()}`);
    assert.doesNotMatch(world, /FAIL/, world);
    t.diagnostic(`the benchmark finished on the ${/diskbench: OK/.test(backup.text) ? 'backup' : 'primary, before the kill'}`);
    assert.equal((await backup.command('cat /data/before.txt')).trim(), 'the primary wrote this first');
    assert.match(await backup.command('ls /data'), /\bbench\.bin\b/);
    backup.type('poweroff\n');
    assert.equal(await backup.exit(60_000), 0, backup.tail());

    assert.equal(debugfs(image, 'cat /before.txt'), 'the primary wrote this first\n');
    assert.match(debugfs(image, 'stat /bench.bin'), /Size: 4194304\b/);
    fsck(image);
  } finally {
    pair?.primary.kill();
    pair?.backup.kill();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('Linux on a pair: the primary dies in the middle of a shell pipeline writing to /data; the backup finishes it', { timeout: testTimeoutMs }, async (t) => {
  const directory = scratchDirectory('pair-linux');
  let pair: LinuxPair | undefined;
  try {
    pair = await startLinuxPair(directory);
    const { image, backup } = pair;
    // Four processes in a pipeline (support/linux-pair.ts) that report their progress on the
    // console; the kill waits for it, and the pipeline goes on on the backup, to its end: wc
    // counts every line.
    const lines = 3000;
    const { promotedMs, line } = await killPrimaryDuringPipeline(pair, { lines, every: 500, timeoutMs: 120_000 });
    t.diagnostic(`the backup was live ${promotedMs.toFixed(0)} ms after the SIGKILL (${line})`);
    assert.equal((await backup.command('tail -n 1 /data/pipe.txt')).trim(), `line ${lines}`);
    assert.equal((await backup.command('wc -l < /data/pipe.txt')).trim(), String(lines));
    backup.type('poweroff\n');
    assert.equal(await backup.exit(60_000), 0, backup.tail());

    const expected = Array.from({ length: lines }, (_, index) => `line ${index + 1}\n`).join('');
    assert.equal(debugfs(image, 'cat /pipe.txt'), expected);
    fsck(image);
  } finally {
    pair?.primary.kill();
    pair?.backup.kill();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('Linux on a pair that stays protected: three failovers in one boot (test-failover), the shell and its files carry on', { timeout: 300_000 }, async (t) => {
  const directory = scratchDirectory('pair-linux');
  const image = path.join(directory, 'data.img');
  ensureDataDisk(image, 16 * 1024 * 1024);
  const port = await freePort();
  const pair = new CliProcess(['pair', '--guest', 'linux', '--disk', image, '--status-port', String(port)], { input: 'pipe', timeoutMs: 280_000 });
  /** Types a command and waits for a line of its output that only it prints. */
  const run = async (command: string, marker: string): Promise<void> => {
    const from = pair.stdout.length;
    pair.child.stdin!.write(`${command}; echo ${marker}-done\n`);
    await pair.waitFor('stdout', new RegExp(`^${marker}-done\\r?$`, 'm'), 60_000, from);
  };
  try {
    await pair.waitFor('stdout', /understudy: \/data mounted/, bootTimeoutMs);
    await pair.waitFor('stdout', /understudy\$ /, 30_000);
    for (let round = 1; round <= 3; round++) {
      await run(`echo written before failover ${round} > /data/round${round}.txt; sync`, `r${round}`);
      const protectedNow = await waitForProtection(port, pair);
      const failover = await runCli(['status', '--port', String(port), 'test-failover'], 30_000);
      assert.equal(failover.status, 0, failover.stdout);
      await pair.waitFor('stderr', new RegExp(`(the backup went live[^]*){${round}}`), 60_000);
      t.diagnostic(`failover ${round}: the primary was pid ${protectedNow}`);
    }
    await waitForProtection(port, pair);
    await run('cat /data/round1.txt /data/round2.txt /data/round3.txt', 'cat');
    assert.match(pair.stdout, /written before failover 1\r?\nwritten before failover 2\r?\nwritten before failover 3\r?\n/, pair.tail());
    pair.child.stdin!.write('poweroff\n');
    const result = await pair.done;
    assert.equal(result.status, 0, describeResult(result));
    assert.equal(failoverLines(result.stderr).length, 3, describeResult(result));
    for (let round = 1; round <= 3; round++) assert.equal(debugfs(image, `cat /round${round}.txt`), `written before failover ${round}\n`);
    fsck(image);
  } finally {
    pair.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
