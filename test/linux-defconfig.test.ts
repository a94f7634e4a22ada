/**
 * The standard kernel (issue 15): Linux 6.1 built from the kernel's own `rv32_defconfig` plus
 * linux/defconfig-kernel.config, with the project's initramfs. Building it is opt-in
 * (`linux/build.sh --defconfig`, see linux/README.md for the time it takes), so neither the
 * set-up nor CI does; when it is built, these tests boot it to the shell on understudy, fail
 * the primary of a pair over in the middle of a pipeline, and run linux/qemu-check.mjs on it
 * (QEMU, the reference). When it is not built they are skipped, and say how to run them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { haveQemu, repoRoot } from './helpers.js';
import { assertCtrlCInterrupts, ConsoleSession, shellPrompt } from './support/console-session.js';
import { ensureDataDisk } from '../src/host/linux-guest.js';
import { assertCleanFileSystem, debugfs, killPrimaryDuringPipeline, progressPipeline, startLinuxPair, waitForProtection, type LinuxPair } from './support/linux-pair.js';
import { CliProcess, describeResult, failoverLines, freePort, runCli, scratchDirectory } from './support/replica-processes.js';

const kernel = path.join(repoRoot, '.cache/linux-defconfig/Image');
const howToRun = 'npm run check:defconfig-kernel (builds it with linux/build.sh --defconfig, then runs this file)';
const notBuilt = fs.existsSync(kernel) ? false : `the standard kernel ${kernel} is not built; to build and test it: ${howToRun}`;
const bootTimeoutMs = 180_000;
const testTimeoutMs = 400_000;

/** Kernel messages that mean something went wrong in the kernel, whichever machine it ran on. */
const kernelTrouble = /\b(BUG|WARNING|Oops|Unable to handle kernel|Call Trace|rcu_sched self-detected stall|soft lockup)\b/;

test('linux/build.sh rejects an unknown argument before building anything', () => {
  const result = spawnSync('bash', [path.join(repoRoot, 'linux/build.sh'), '--defconfg'], { encoding: 'utf8' });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /^linux\/build\.sh: error: unknown argument: --defconfg \(usage: linux\/build\.sh \[--defconfig\]\)$/m);
});

test('the standard kernel boots to the shell on understudy; commands, the data disk and poweroff work', { skip: notBuilt, timeout: testTimeoutMs }, async (t) => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-defconfig-'));
  const image = path.join(directory, 'data.img');
  const session = new ConsoleSession(['run', '--guest', 'linux', '--kernel', kernel, '--disk', image, '--timeout', '360']);
  try {
    const mounted = await session.waitFor('understudy: /data mounted (/dev/vda, ext4)', bootTimeoutMs);
    await session.waitFor(shellPrompt, 30_000, mounted);
    const boot = session.text.slice(0, mounted);
    assert.doesNotMatch(boot, kernelTrouble, 'the kernel reports no bug, warning or stall while booting');

    // It is the standard kernel (its configuration is built in: IKCONFIG_PROC), with the
    // board's additions, on a hart with the FPU and compressed instructions.
    assert.match(await session.command('cat /proc/version'), /^Linux version 6\.1\.\d+/);
    // (Each command stays within the 80 columns the shell assumes, so that its echo is one line.)
    await session.command('zcat /proc/config.gz > /tmp/config');
    const config = await session.command('grep -E "^CONFIG_(SOC_SIFIVE|SMP|PVPANIC_MMIO|MODULES)=" /tmp/config');
    assert.deepEqual(config.trim().split(/\r?\n/).sort(), ['CONFIG_MODULES=y', 'CONFIG_PVPANIC_MMIO=y', 'CONFIG_SMP=y', 'CONFIG_SOC_SIFIVE=y']);
    assert.match(await session.command('grep -E "^(isa|mmu)" /proc/cpuinfo'), /isa\s*: rv32imafdc[\s\S]*mmu\s*: sv32/);

    assert.equal((await session.command('echo the standard kernel was here > /data/defconfig.txt')).trim(), '');
    assert.equal((await session.command('cat /data/defconfig.txt')).trim(), 'the standard kernel was here');
    assert.equal((await session.command('seq 100 | grep 7 | wc -l')).trim(), '19');
    assert.match(await session.command('cpubench 2'), /cpubench: 2 rounds, checksum 0xd06b5fa1/);
    assert.match(await session.command('diskbench 1'), /diskbench: OK/);
    assert.match(await session.command('date -u +%F.%T'), /^20\d\d-\d\d-\d\d\.\d\d:\d\d:\d\d$/m);

    await assertCtrlCInterrupts(session);

    const uptime = (await session.command('cat /proc/uptime')).trim().split(' ')[0];
    t.diagnostic(`guest uptime at the end: ${uptime} s`);
    assert.doesNotMatch(session.text, kernelTrouble, 'no bug, warning or stall at any point');
    await session.command('sync');
    session.type('poweroff\n');
    assert.equal(await session.exit(60_000), 0, session.tail());
    assert.match(session.text, /reboot: Power down/);
    assert.equal(debugfs(image, 'cat /defconfig.txt'), 'the standard kernel was here\n');
    assertCleanFileSystem(image);
  } finally {
    session.kill();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('a panic of the standard kernel reaches the host through pvpanic (what the fragment adds): status 4', { skip: notBuilt, timeout: testTimeoutMs }, async () => {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-defconfig-'));
  const session = new ConsoleSession(['run', '--guest', 'linux', '--kernel', kernel, '--disk', path.join(directory, 'data.img'), '--append', 'console=ttyS0 rdinit=/nope init=/nope', '--timeout', '300']);
  try {
    assert.equal(await session.exit(bootTimeoutMs), 4, session.tail());
    assert.match(session.text, /Kernel panic - not syncing/);
    assert.match(session.stderr, /the guest kernel panicked/);
  } finally {
    session.kill();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('the standard kernel on a pair: the primary dies in the middle of a pipeline writing to /data; the backup finishes it', { skip: notBuilt, timeout: testTimeoutMs }, async (t) => {
  const directory = scratchDirectory('defconfig-pair');
  let pair: LinuxPair | undefined;
  try {
    pair = await startLinuxPair(directory, { machineArgs: ['--kernel', kernel], bootTimeoutMs });
    const { image, primary, backup } = pair;
    await primary.command('echo written on the primary before the failover > /data/before.txt');
    await primary.command('sync');
    assert.equal(backup.text, '', 'the backup prints nothing while the primary lives');

    // The kill moment comes from the guest: the pipeline reports its progress on the console.
    const lines = 2000;
    const { promotedMs, line } = await killPrimaryDuringPipeline(pair, { lines, every: 400, timeoutMs: 180_000 });
    t.diagnostic(`the backup was live ${promotedMs.toFixed(0)} ms after the SIGKILL (${line})`);
    assert.equal((await backup.command('cat /data/before.txt')).trim(), 'written on the primary before the failover');
    assert.equal((await backup.command('wc -l < /data/pipe.txt')).trim(), String(lines));
    assert.doesNotMatch(primary.text + backup.text, kernelTrouble, 'no bug, warning or stall on either replica');
    backup.type('poweroff\n');
    assert.equal(await backup.exit(60_000), 0, backup.tail());
    assert.match(backup.text, /reboot: Power down/);

    assert.equal(debugfs(image, 'cat /before.txt'), 'written on the primary before the failover\n');
    assert.equal(debugfs(image, 'cat /pipe.txt'), Array.from({ length: lines }, (_, index) => `line ${index + 1}\n`).join(''));
    assertCleanFileSystem(image);
  } finally {
    pair?.primary.kill();
    pair?.backup.kill();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('the standard kernel under `pair`: a failover in the middle of a pipeline, the shell carries on, protected again', { skip: notBuilt, timeout: testTimeoutMs }, async (t) => {
  const directory = scratchDirectory('defconfig-pair');
  const image = path.join(directory, 'data.img');
  ensureDataDisk(image, 16 * 1024 * 1024);
  const port = await freePort();
  const pair = new CliProcess(['pair', '--guest', 'linux', '--kernel', kernel, '--disk', image, '--status-port', String(port)], { input: 'pipe', timeoutMs: testTimeoutMs - 20_000 });
  try {
    await pair.waitFor('stdout', /understudy: \/data mounted/, bootTimeoutMs);
    await pair.waitFor('stdout', /understudy\$ /, 30_000);
    await waitForProtection(port, pair);
    // The kill moment comes from the guest: the pipeline reports its progress on the console.
    const lines = 2000;
    const start = pair.stdout.length;
    pair.child.stdin!.write(`${progressPipeline(lines, 400)}\n`);
    await pair.waitFor('stdout', /^at 400\r?$/m, 120_000, start);
    assert.doesNotMatch(pair.stdout.slice(start), new RegExp(`^at ${lines}\\r?$`, 'm'), 'the pipeline was still running at the failover');
    const failover = await runCli(['status', '--port', String(port), 'test-failover'], 30_000);
    assert.equal(failover.status, 0, failover.stdout);
    await pair.waitFor('stderr', /the backup went live/, 60_000);
    await pair.waitFor('stdout', new RegExp(`^${lines}\\r?$`, 'm'), 180_000, start);
    for (const line of failoverLines(pair.stderr)) t.diagnostic(`the backup went live ${line.liveAfterMs} ms after detecting the failure (${line.reason})`);

    const from = pair.stdout.length;
    pair.child.stdin!.write('wc -l < /data/pipe.txt; echo shell-done\n');
    await pair.waitFor('stdout', /^shell-done\r?$/m, 60_000, from);
    assert.match(pair.stdout.slice(from), new RegExp(`^${lines}\\r?$`, 'm'));
    await waitForProtection(port, pair);
    pair.child.stdin!.write('poweroff\n');
    const result = await pair.done;
    assert.equal(result.status, 0, describeResult(result));
    assert.equal(failoverLines(result.stderr).length, 1, describeResult(result));
    assert.doesNotMatch(result.stdout, kernelTrouble, 'no bug, warning or stall');
    assert.equal(debugfs(image, 'cat /pipe.txt'), Array.from({ length: lines }, (_, index) => `line ${index + 1}\n`).join(''));
    assertCleanFileSystem(image);
  } finally {
    pair.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('the standard kernel on QEMU (linux/qemu-check.mjs --kernel): every check passes', { skip: notBuilt || (haveQemu() ? false : 'qemu-system-riscv32 is not installed'), timeout: testTimeoutMs }, (t) => {
  const result = spawnSync(process.execPath, [path.join(repoRoot, 'linux/qemu-check.mjs'), '--kernel', kernel], { encoding: 'utf8', timeout: testTimeoutMs - 10_000 });
  for (const line of result.stdout.split('\n')) if (line.startsWith('#') || line.startsWith('not ok')) t.diagnostic(line);
  assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
  assert.match(result.stdout, /^\d+ passed, 0 failed$/m);
});
