/**
 * Unmodified Linux on understudy: boot to BusyBox's shell, use it through the console (pipes,
 * Ctrl-C), write to the ext4 data disk, power off, and check the disk image from the host with
 * e2fsprogs' debugfs and e2fsck. Bad kernels, initramfs files and panics end with a clear error
 * and a non-zero status.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliPath, repoRoot } from './helpers.js';
import { assertCtrlCInterrupts, ConsoleSession, shellPrompt } from './support/console-session.js';

const kernel = path.join(repoRoot, '.cache/linux/Image');
const initramfs = path.join(repoRoot, '.cache/linux/initramfs.cpio');
const bootTimeoutMs = 120_000;

function scratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-linux-'));
}

function debugfs(image: string, request: string): string {
  const result = spawnSync('debugfs', ['-R', request, image], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

test('the Linux guest is built (linux/build.sh, run by the set-up)', () => {
  assert.ok(fs.existsSync(kernel), `${kernel} is missing: run linux/build.sh`);
  assert.ok(fs.existsSync(initramfs), `${initramfs} is missing: run linux/build.sh`);
});

test('Linux boots to the shell; commands work; a file written in /data lands in the disk image', { timeout: 240_000 }, async () => {
  const dir = scratch();
  const image = path.join(dir, 'data.img');
  const session = new ConsoleSession(['run', '--guest', 'linux', '--disk', image, '--timeout', '200']);
  try {
    await session.waitFor('understudy: /data mounted', bootTimeoutMs);
    await session.waitFor(shellPrompt, 30_000, session.text.lastIndexOf('understudy: /data mounted'));
    assert.ok(fs.existsSync(image), 'the data disk was created on first use');

    assert.equal((await session.command('echo hello from the guest')).trim(), 'hello from the guest');
    const root = await session.command('ls /');
    for (const entry of ['bin', 'data', 'dev', 'proc', 'tmp']) assert.match(root, new RegExp(`\\b${entry}\\b`));
    assert.equal((await session.command('mkdir /data/notes')).trim(), '');
    await session.command('echo understudy keeps this line > /data/notes/first.txt');
    await session.command('echo and this one >> /data/notes/first.txt');
    assert.equal((await session.command('cat /data/notes/first.txt')).trim(), 'understudy keeps this line\nand this one');
    await session.command('echo temporary > /data/scratch.txt');
    assert.match(await session.command('ls /data'), /scratch\.txt/);
    assert.equal((await session.command('rm /data/scratch.txt')).trim(), '');
    assert.doesNotMatch(await session.command('ls /data'), /scratch\.txt/);
    assert.match(await session.command('mount'), /\/dev\/vda on \/data type ext4/);
    assert.match(await session.command('uptime'), /up /);
    assert.match(await session.command('date -u +%F.%T'), /^20\d\d-\d\d-\d\d\.\d\d:\d\d:\d\d$/m);
    // Pipes, variables, arithmetic and command substitution: a POSIX shell.
    assert.equal((await session.command('echo one two three | tr " " "\\n" | wc -l')).trim(), '3');
    assert.equal((await session.command('x=$(echo 21); echo $((x * 2))')).trim(), '42');
    assert.match(await session.command('ps'), /\bPID\b[\s\S]*\/init/);
    // The device tree's seed (Machine.bootLinux) made the random generator ready before anything ran.
    assert.match(await session.command('dmesg | grep crng'), /\[ +0\.000000\] random: crng init done/);
    assert.match(await session.command('cpubench 2'), /cpubench: 2 rounds, checksum 0xd06b5fa1/);
    assert.match(await session.command('diskbench 1'), /diskbench: OK/);
    assert.match(await session.command('nosuchcommand'), /nosuchcommand: not found/);
    assert.equal((await session.command('echo $?')).trim(), '127');

    await assertCtrlCInterrupts(session);

    await session.command('sync');
    session.type('poweroff\n');
    assert.equal(await session.exit(60_000), 0, session.tail());

    assert.equal(debugfs(image, 'cat /notes/first.txt'), 'understudy keeps this line\nand this one\n');
    assert.doesNotMatch(debugfs(image, 'ls /'), /scratch\.txt/);
    const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
    assert.equal(fsck.status, 0, `e2fsck finds the disk clean:\n${fsck.stdout}${fsck.stderr}`);
  } finally {
    session.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('killed in the middle of writing, the ext4 disk mounts again by journal replay; e2fsck in the guest finds it clean', { timeout: 240_000 }, async () => {
  const dir = scratch();
  const image = path.join(dir, 'data.img');
  const first = new ConsoleSession(['run', '--guest', 'linux', '--disk', image, '--timeout', '200']);
  try {
    await first.waitFor(shellPrompt, bootTimeoutMs, await first.waitFor('understudy: /data mounted', bootTimeoutMs));
    await first.command('mkdir /data/crash && echo synced before the kill > /data/crash/0 && sync');
    // Files written after the sync may or may not survive (the journal commits every few
    // seconds); the file system must, whatever the kill interrupted.
    const start = first.text.length;
    first.type('for n in $(seq 400); do echo "file $n" > /data/crash/$n; [ $((n % 100)) = 0 ] && echo "at $n"; done\n');
    await first.waitFor(/\nat 100\r?\n/, 60_000, start);
    first.kill();
    await first.exit(10_000);
  } finally {
    first.kill();
  }
  const second = new ConsoleSession(['run', '--guest', 'linux', '--disk', image, '--timeout', '200']);
  try {
    const mounted = await second.waitFor('understudy: /data mounted (/dev/vda, ext4)', bootTimeoutMs);
    assert.match(second.text.slice(0, mounted), /EXT4-fs \(vda\): recovery complete/);
    await second.waitFor(shellPrompt, 30_000, mounted);
    assert.equal((await second.command('cat /data/crash/0')).trim(), 'synced before the kill');
    // e2fsck, built from Debian's e2fsprogs for the guest, on the unmounted disk.
    // (Commands stay within the 80 columns the shell assumes: a longer line wraps on the
    // console and its echo takes two lines.)
    await second.command('umount /data');
    assert.match(await second.command('e2fsck -fn /dev/vda >/dev/null 2>&1; echo status $?'), /^status 0$/m);
    await second.command('mount /dev/vda /data');
    assert.equal((await second.command('cat /data/crash/0')).trim(), 'synced before the kill');
    second.type('poweroff\n');
    assert.equal(await second.exit(60_000), 0, second.tail());
    const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
    assert.equal(fsck.status, 0, `e2fsck finds the disk clean:\n${fsck.stdout}${fsck.stderr}`);
  } finally {
    second.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('reboot restarts the machine; the shell comes back', { timeout: 240_000 }, async () => {
  const dir = scratch();
  const session = new ConsoleSession(['run', '--guest', 'linux', '--disk', path.join(dir, 'data.img'), '--timeout', '200']);
  try {
    await session.waitFor(shellPrompt, bootTimeoutMs, 0);
    session.type('reboot\n');
    const again = await session.waitFor('Linux version', bootTimeoutMs, session.text.length);
    await session.waitFor(shellPrompt, bootTimeoutMs, again);
    session.type('poweroff\n');
    assert.equal(await session.exit(60_000), 0, session.tail());
  } finally {
    session.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// The other tests boot on the default tier (the translation tier); the interpreter, the
// reference, boots here, and both together in lockstep.
for (const cpu of ['interp', 'lockstep'] as const) {
  test(`Linux ${cpu === 'lockstep' ? 'with the translation tier, in lockstep with the interpreter (every exit from translated code compared),' : 'on the interpreter alone'} boots to the shell; a shell loop and a pipe work`, { timeout: 600_000 }, async () => {
    const dir = scratch();
    const session = new ConsoleSession(['run', '--guest', 'linux', '--cpu', cpu, '--disk', path.join(dir, 'data.img'), '--timeout', '560']);
    try {
      await session.waitFor(shellPrompt, cpu === 'lockstep' ? 500_000 : bootTimeoutMs, 0);
      assert.equal((await session.command('i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo $i')).trim(), '3000');
      assert.equal((await session.command('seq 1 500 | sort -rn | head -2 | tr "\\n" " "')).trim(), '500 499');
      session.type('poweroff\n');
      // A divergence would have ended the process with an error (status 1) before this.
      assert.equal(await session.exit(60_000), 0, session.tail());
    } finally {
      session.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a full data disk (an old ext2 image): the guest reports "no space left" and keeps going', { timeout: 240_000 }, async () => {
  const dir = scratch();
  const image = path.join(dir, 'small.img');
  assert.equal(spawnSync('mkfs.ext2', ['-q', '-F', image, '512k']).status, 0);
  const session = new ConsoleSession(['run', '--guest', 'linux', '--disk', image, '--timeout', '200']);
  try {
    await session.waitFor('understudy: /data mounted', bootTimeoutMs);
    await session.waitFor(shellPrompt, 30_000, session.text.lastIndexOf('understudy: /data mounted'));
    const output = await session.command('diskbench 2', 120_000);
    assert.match(output, /no space left on device/i);
    assert.equal((await session.command('echo still here')).trim(), 'still here');
    session.type('poweroff\n');
    assert.equal(await session.exit(60_000), 0, session.tail());
  } finally {
    session.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a kernel panic ends the run with a clear error and status 4', { timeout: 240_000 }, async () => {
  const dir = scratch();
  const session = new ConsoleSession(['run', '--guest', 'linux', '--disk', path.join(dir, 'data.img'), '--append', 'console=ttyS0 rdinit=/nope init=/nope', '--timeout', '200']);
  try {
    assert.equal(await session.exit(bootTimeoutMs), 4, session.tail());
    assert.match(session.text, /Kernel panic/);
    assert.match(session.stderr, /the guest kernel panicked/);
  } finally {
    session.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function runCli(args: string[], timeoutMs = 60_000): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', timeout: timeoutMs, input: '' });
  return { status: result.status, stderr: result.stderr };
}

test('a missing or corrupt kernel or initramfs: one clear line and status 2', () => {
  const dir = scratch();
  try {
    const disk = ['--disk', path.join(dir, 'data.img')];
    const garbage = path.join(dir, 'garbage.bin');
    fs.writeFileSync(garbage, Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7919) & 0xff)));
    const cases: [string[], RegExp][] = [
      [['--kernel', path.join(dir, 'missing-Image')], /kernel .*missing-Image does not exist/],
      [['--kernel', garbage], /not a RISC-V Linux Image/],
      [['--initrd', path.join(dir, 'missing.cpio')], /initramfs .*missing\.cpio does not exist/],
      [['--initrd', garbage], /initramfs .* is not a cpio archive/],
    ];
    for (const [args, message] of cases) {
      const result = runCli(['run', '--guest', 'linux', ...disk, ...args]);
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a kernel whose header is fine but whose body is cut short does not hang', { timeout: 240_000 }, () => {
  const dir = scratch();
  try {
    const truncated = path.join(dir, 'truncated-Image');
    fs.writeFileSync(truncated, fs.readFileSync(kernel).subarray(0, 64 * 1024));
    const result = runCli(['run', '--guest', 'linux', '--disk', path.join(dir, 'data.img'), '--kernel', truncated], 200_000);
    assert.notEqual(result.status, 0);
    assert.notEqual(result.status, null, 'the run ended by itself');
    assert.match(result.stderr, /stuck|panicked|waits for an interrupt/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
