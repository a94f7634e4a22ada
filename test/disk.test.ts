/**
 * The virtio block device end to end: the disk guests (guests/tests/disk.c, disk_ro.c,
 * virtio_hostile.c) run on understudy through the CLI against images made here, and the
 * images are checked from the host afterwards. When QEMU is installed, disk.c and disk_ro.c
 * also run on it and must print exactly what understudy prints. Then the CLI's answers to
 * disk images it cannot use.
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliPath, qemuCpu, repoRoot } from './helpers.js';

const qemuCommand = process.env['QEMU'] ?? 'qemu-system-riscv32';

const sectorBytes = 512;
/** The contract of guests/lib/disk_pattern.h: word k of sector n is (tag << 24) | (n << 8) | k. */
const tagOriginal = 0x5d;
const tagWritten = 0xc3;
/** tests/disk.c and disk_ro.c: a 1 MiB image. */
const diskSectors = 2048;
/** tests/virtio_hostile.c: at least 4 MiB, so that its oversized request lies inside the disk. */
const hostileDiskSectors = 8192;
/** The sectors tests/disk.c writes (with tagWritten); every other sector keeps tagOriginal. */
const sectorsWrittenByDiskGuest: ReadonlySet<number> = new Set([100, 200, 201, 202, 1500, 1501, 1502, 1503, 1504, 1505, 1506, 1507, 2047]);

const runTimeoutMs = 25_000;
const testTimeoutMs = 29_000;

function fillSector(image: Buffer, sector: number, tag: number): void {
  for (let word = 0; word < sectorBytes / 4; word++) {
    image.writeUInt32LE(((tag << 24) | ((sector & 0xffff) << 8) | word) >>> 0, sector * sectorBytes + word * 4);
  }
}

/** An image of `sectors` sectors holding the pattern with `tagOf(sector)`. */
function patternImage(sectors: number, tagOf: (sector: number) => number = () => tagOriginal): Buffer {
  const image = Buffer.alloc(sectors * sectorBytes);
  for (let sector = 0; sector < sectors; sector++) fillSector(image, sector, tagOf(sector));
  return image;
}

/** The first sector where two images differ, or undefined. */
function firstDifferentSector(actual: Buffer, expected: Buffer): number | undefined {
  if (actual.length !== expected.length) return Math.min(actual.length, expected.length) / sectorBytes;
  for (let sector = 0; sector * sectorBytes < expected.length; sector++) {
    const start = sector * sectorBytes;
    if (actual.compare(expected, start, start + sectorBytes, start, start + sectorBytes) !== 0) return sector;
  }
  return undefined;
}

function assertImage(actual: Buffer, expected: Buffer, what: string): void {
  const sector = firstDifferentSector(actual, expected);
  assert.equal(sector, undefined, `${what}: sector ${sector} differs from what it should hold`);
}

function temporaryDirectory(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-disk-'));
}

function guestElf(name: string): string {
  const file = path.join(repoRoot, 'guests/build', `${name}.elf`);
  assert.ok(fs.existsSync(file), `${file} is missing: run make -C guests first`);
  return file;
}

interface ProcessResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program to completion (killing it after runTimeoutMs), with stdin closed. */
function runProcess(command: string, args: readonly string[]): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], timeout: runTimeoutMs, killSignal: 'SIGKILL' });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (status, signal) => {
      resolve({ status, signal, stdout: Buffer.concat(stdout).toString('latin1'), stderr: Buffer.concat(stderr).toString('utf8') });
    });
  });
}

function runUnderstudy(args: readonly string[]): Promise<ProcessResult> {
  return runProcess(process.execPath, [cliPath, 'run', '--clock', 'virtual', ...args]);
}

/** The reference machine, as guests/tests/README.md runs it, with one disk named like understudy's first. */
function runQemu(kernel: string, image: string, readOnly: boolean): Promise<ProcessResult> {
  return runProcess(qemuCommand, [
    '-M', 'virt', '-bios', 'none', '-nographic', '-icount', 'shift=0,sleep=off',
    '-cpu', qemuCpu, '-global', 'virtio-mmio.force-legacy=false',
    '-drive', `file=${image},if=none,format=raw,id=d0${readOnly ? ',readonly=on' : ''}`,
    '-device', 'virtio-blk-device,drive=d0,serial=understudy-disk0',
    '-kernel', kernel,
  ]);
}

function qemuMissing(): string | undefined {
  const probe = spawnSync(qemuCommand, ['--version'], { stdio: 'ignore' });
  if (probe.error !== undefined || probe.status !== 0) {
    return `${qemuCommand} is not installed (scripts/setup.sh installs it): the differential run is skipped`;
  }
  return undefined;
}

function describeRun(result: ProcessResult): string {
  return `exit status ${result.status}${result.signal === null ? '' : ` (signal ${result.signal})`}\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
}

/** What the image of tests/disk.c holds after a successful run. */
function imageAfterDiskGuest(): Buffer {
  return patternImage(diskSectors, (sector) => (sectorsWrittenByDiskGuest.has(sector) ? tagWritten : tagOriginal));
}

test('disk.c on understudy: passes and writes exactly the new pattern', { timeout: testTimeoutMs }, async () => {
  const directory = temporaryDirectory();
  try {
    const image = path.join(directory, 'disk.img');
    fs.writeFileSync(image, patternImage(diskSectors));
    const result = await runUnderstudy(['--kernel', guestElf('disk'), '--disk', image]);
    assert.equal(result.status, 0, describeRun(result));
    assert.match(result.stdout, /^PASS disk$/m);
    assertImage(fs.readFileSync(image), imageAfterDiskGuest(), 'the image after disk.c');
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('disk_ro.c on understudy: writes fail and the image stays byte-identical', { timeout: testTimeoutMs }, async () => {
  const directory = temporaryDirectory();
  try {
    const image = path.join(directory, 'disk-ro.img');
    const original = patternImage(diskSectors);
    fs.writeFileSync(image, original);
    const result = await runUnderstudy(['--kernel', guestElf('disk_ro'), '--disk-ro', image]);
    assert.equal(result.status, 0, describeRun(result));
    assert.match(result.stdout, /^PASS disk_ro$/m);
    assert.ok(fs.readFileSync(image).equals(original), 'the read-only image changed');
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('virtio_hostile.c on understudy: every hostile queue gets a hardware-like answer', { timeout: testTimeoutMs }, async () => {
  const directory = temporaryDirectory();
  try {
    const image = path.join(directory, 'hostile.img');
    const original = patternImage(hostileDiskSectors);
    fs.writeFileSync(image, original);
    const result = await runUnderstudy(['--kernel', guestElf('virtio_hostile'), '--disk', image]);
    assert.equal(result.status, 0, describeRun(result));
    assert.match(result.stdout, /^PASS virtio_hostile$/m);
    assertImage(fs.readFileSync(image), original, 'the image after virtio_hostile.c');
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

for (const { guest, readOnly } of [{ guest: 'disk', readOnly: false }, { guest: 'disk_ro', readOnly: true }]) {
  test(`${guest}.c on QEMU and understudy: identical console output and images`, { timeout: testTimeoutMs }, async (t) => {
    const missing = qemuMissing();
    if (missing !== undefined) {
      t.skip(missing);
      return;
    }
    const directory = temporaryDirectory();
    try {
      const original = patternImage(diskSectors);
      const ours = path.join(directory, 'understudy.img');
      const theirs = path.join(directory, 'qemu.img');
      fs.writeFileSync(ours, original);
      fs.writeFileSync(theirs, original);
      const kernel = guestElf(guest);
      const [understudy, qemu] = await Promise.all([
        runUnderstudy(['--kernel', kernel, readOnly ? '--disk-ro' : '--disk', ours]),
        runQemu(kernel, theirs, readOnly),
      ]);
      assert.equal(qemu.status, 0, `QEMU: ${describeRun(qemu)}`);
      assert.equal(understudy.status, 0, `understudy: ${describeRun(understudy)}`);
      assert.equal(understudy.stdout, qemu.stdout);
      const expected = readOnly ? original : imageAfterDiskGuest();
      assertImage(fs.readFileSync(theirs), expected, 'the image QEMU left');
      assertImage(fs.readFileSync(ours), expected, 'the image understudy left');
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });
}

/** A CLI refusal: exit status 2 and exactly one line on stderr, naming the problem, no stack trace. */
async function assertDiskRefused(option: '--disk' | '--disk-ro', image: string, problem: RegExp): Promise<void> {
  const result = await runUnderstudy(['--kernel', guestElf('hello'), option, image]);
  assert.equal(result.status, 2, describeRun(result));
  const lines = result.stderr.split('\n').filter((line) => line !== '');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${result.stderr}`);
  const line = lines[0]!;
  assert.ok(line.startsWith('understudy: '), line);
  assert.ok(line.includes(image), `the message should name ${image}: ${line}`);
  assert.match(line, problem);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'stack trace on stderr');
  assert.equal(result.stdout, '', 'the guest should not have run');
}

test('CLI: a disk image that is missing, a directory or empty is refused with one line', { timeout: testTimeoutMs }, async () => {
  const directory = temporaryDirectory();
  try {
    const missing = path.join(directory, 'missing.img');
    const empty = path.join(directory, 'empty.img');
    const subdirectory = path.join(directory, 'a-directory');
    fs.writeFileSync(empty, Buffer.alloc(0));
    fs.mkdirSync(subdirectory);
    await assertDiskRefused('--disk', missing, /no such file/);
    await assertDiskRefused('--disk-ro', missing, /no such file/);
    await assertDiskRefused('--disk', subdirectory, /directory|not a regular file/);
    await assertDiskRefused('--disk-ro', subdirectory, /directory|not a regular file/);
    await assertDiskRefused('--disk', empty, /empty/);
    await assertDiskRefused('--disk-ro', empty, /empty/);
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
