/**
 * guests/tests/pair_workload.c, the replication tests' guest, on one machine without failures:
 * run through the CLI with the virtual clock and with the host clock, its console output and
 * its disk image must be exactly what test/support/pair-workload.ts computes, byte for byte.
 * Then its self-checks: an image that is not blank, and one of the wrong size, must fail.
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliPath, guestElf, repoRoot } from './helpers.js';
import {
  checkConsoleWithRepeats,
  createBlankDiskImage,
  diskBytes,
  expectedConsole,
  expectedDiskImage,
  expectedSleeps,
  sectorBytes,
} from './support/pair-workload.js';

/** A run takes 1-3 s; the limits leave room for a loaded machine. */
const runTimeoutMs = 60_000;
const testTimeoutMs = 70_000;

interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly elapsedMs: number;
}

/** Runs the workload through the CLI on `image` (killed after runTimeoutMs), stdin closed. */
function runWorkload(image: string, clock: 'host' | 'virtual', command: 'run' | 'pair' = 'run'): Promise<Run> {
  const args = [cliPath, command, '--kernel', guestElf('pair_workload'), '--disk', image, '--clock', clock];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], timeout: runTimeoutMs, killSignal: 'SIGKILL' });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (status, signal) => {
      resolve({
        status,
        signal,
        stdout: Buffer.concat(stdout).toString('latin1'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        elapsedMs: performance.now() - started,
      });
    });
  });
}

function describeRun(run: Run): string {
  const tail = run.stdout.split('\n').slice(-12).join('\n');
  return `exit status ${run.status}${run.signal === null ? '' : ` (signal ${run.signal})`}\n--- stdout (end)\n${tail}\n--- stderr\n${run.stderr}`;
}

/** The first line where two outputs differ, for a readable failure. */
function firstDifference(actual: string, expected: string): string {
  const a = actual.split('\n');
  const e = expected.split('\n');
  for (let i = 0; i < Math.max(a.length, e.length); i++) {
    if (a[i] !== e[i]) return `line ${i + 1}: got ${JSON.stringify(a[i])}, expected ${JSON.stringify(e[i])}`;
  }
  return 'no difference';
}

function assertImage(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(actual.length, expected.length, 'image size');
  for (let sector = 0; sector * sectorBytes < expected.length; sector++) {
    const start = sector * sectorBytes;
    const same = Buffer.compare(actual.subarray(start, start + sectorBytes), expected.subarray(start, start + sectorBytes)) === 0;
    assert.ok(same, `sector ${sector} of the image differs from what the workload should leave`);
  }
}

async function withImage(body: (image: string) => Promise<void>): Promise<void> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-pair-'));
  try {
    await body(path.join(directory, 'disk.img'));
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

for (const clock of ['virtual', 'host'] as const) {
  test(`pair_workload with the ${clock} clock: exactly the expected console and image`, { timeout: testTimeoutMs }, async () => {
    await withImage(async (image) => {
      createBlankDiskImage(image);
      const run = await runWorkload(image, clock);
      assert.equal(run.status, 0, describeRun(run));
      assert.equal(run.stderr, '');
      assert.ok(run.stdout === expectedConsole(), `console output differs at ${firstDifference(run.stdout, expectedConsole())}`);
      assert.deepEqual(checkConsoleWithRepeats(run.stdout), { ok: true });
      assertImage(fs.readFileSync(image), expectedDiskImage());
      if (clock === 'host') {
        // Real time: the sleeps alone take this long (WFI until mtime, which follows the host clock).
        const { totalMs } = expectedSleeps();
        assert.ok(run.elapsedMs >= totalMs, `the run took ${run.elapsedMs.toFixed(0)} ms, less than its sleeps (${totalMs} ms)`);
      }
    });
  });
}

test('pair_workload on an image that is not blank: reports it and fails', { timeout: testTimeoutMs }, async () => {
  await withImage(async (image) => {
    fs.writeFileSync(image, expectedDiskImage());
    const run = await runWorkload(image, 'virtual');
    assert.notEqual(run.status, 0, describeRun(run));
    assert.match(run.stdout, /^line 0002 poll read 0\.\.2047: bad, all zero$/m);
    // The first difference of each of the two batches that read the disk.
    assert.match(run.stdout, /^pair_workload: FAIL sector 0 \(round 0\) word 0 = 0x52494150, expected 0x00000000$/m);
    assert.match(run.stdout, /^pair_workload: FAIL sector 1024 \(round 0\) word 0 = 0x52494150, expected 0x00000000$/m);
    assert.match(run.stdout, /^pair_workload: FAIL lines=\d+ failures=2$/m);
    assert.equal(run.status, 2);
    // It carries on and leaves the same final image all the same.
    assertImage(fs.readFileSync(image), expectedDiskImage());
  });
});

test('pair_workload on an image of the wrong size: stops at once', { timeout: testTimeoutMs }, async () => {
  await withImage(async (image) => {
    fs.writeFileSync(image, new Uint8Array(diskBytes / 2));
    const run = await runWorkload(image, 'virtual');
    assert.equal(run.status, 90, describeRun(run));
    assert.match(run.stdout, /^pair_workload: FAIL the disk has 1024 sectors, not 2048$/m);
    assert.doesNotMatch(run.stdout, /^line /m);
  });
});

test('pair_workload under pair with the virtual clock: the primary lets virtual time jump while the guest sleeps, as run does', { timeout: testTimeoutMs }, async () => {
  // Virtual time passes only with instructions: a primary that waited for it while the guest
  // slept (no instructions) waited for ever, at the workload's first timer sleep.
  await withImage(async (image) => {
    createBlankDiskImage(image);
    const run = await runWorkload(image, 'virtual', 'pair');
    assert.equal(run.status, 0, describeRun(run));
    assert.ok(run.stdout === expectedConsole(), `console output differs at ${firstDifference(run.stdout, expectedConsole())}\n${describeRun(run)}`);
    assertImage(fs.readFileSync(image), expectedDiskImage());
  });
});
