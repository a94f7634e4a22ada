/**
 * `understudy standby`: a third host waits, and becomes the backup of whichever replica runs
 * the VM unprotected, so that a two-host deployment is protected again without a person.
 * Three real processes on loopback: primary A, backup B (listening once promoted), standby C
 * with both addresses. A is killed: B takes over, C joins B. B is killed: C takes over and
 * finishes the guest; the console and the disk are exactly a failure-free run's.
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { guestElf } from './helpers.js';
import { checkConsoleWithRepeats, createBlankDiskImage, expectedDiskImage, smallShape } from './support/pair-workload.js';
import { assertImage, CliProcess, describeResult, freePort, runCli, scratchDirectory } from './support/replica-processes.js';

const testTimeoutMs = 180_000;
const processTimeoutMs = 150_000;

test('a standby joins whichever replica is live and unprotected: after each of two failovers the VM goes on, and finishes exactly', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('standby');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, smallShape);
  const [portA, portB, portC] = [await freePort(), await freePort(), await freePort()];
  const common = ['--insecure', '--kernel', guestElf('pair_small_gated'), '--disk', image, '--arbiter', path.join(directory, 'arbiter')];
  const a = new CliProcess(['primary', '--listen', `127.0.0.1:${portA}`, ...common], { timeoutMs: processTimeoutMs });
  const b = new CliProcess(['backup', '--connect', `127.0.0.1:${portA}`, '--listen', `127.0.0.1:${portB}`, ...common], { timeoutMs: processTimeoutMs });
  let c: CliProcess | undefined;
  const context = (): string => `\n--- A\n${a.tail()}\n--- B\n${b.tail()}\n--- C\n${c?.tail() ?? '(not started)'}`;
  try {
    // B joins A; then the standby starts, and waits (A is busy, nothing listens at B's address yet).
    await a.waitFor('stderr', /protected: a backup has joined/, 60_000);
    c = new CliProcess(['standby', '--connect', `127.0.0.1:${portA},127.0.0.1:${portB}`, '--listen', `127.0.0.1:${portC}`, ...common], {
      input: 'pipe',
      timeoutMs: processTimeoutMs,
    });
    await c.waitFor('stderr', /understudy standby: waiting to become the backup of whichever of 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+ runs the VM unprotected/, 30_000);
    await a.waitFor('stdout', /^line 0020 /m, 60_000);
    assert.doesNotMatch(c.stderr, /joined/, `the standby waits while the VM is protected${context()}`);
    a.kill();
    await b.waitFor('stderr', /the primary failed .*this replica is live from epoch \d+/, 60_000);
    await c.waitFor('stderr', new RegExp(`understudy standby: joined 127\\.0\\.0\\.1:${portB} as its backup`), 60_000);
    await b.waitFor('stderr', /protected: a backup has joined/, 60_000);
    b.kill();
    await c.waitFor('stderr', /the primary failed .*this replica is live from epoch \d+/, 60_000);
    c.child.stdin!.end('g'); // the gated guest's last line
    const [resultA, resultB, resultC] = await Promise.all([a.done, b.done, c.done]);
    const all = `${context()}\n--- C's result\n${describeResult(resultC)}`;
    assert.equal(resultC.status, 0, all);
    assert.equal(resultA.signal, 'SIGKILL', all);
    assert.equal(resultB.signal, 'SIGKILL', all);
    // The world's console: A's, then B's, then C's after each went live (repeats allowed).
    const check = checkConsoleWithRepeats(resultA.stdout + resultB.stdout + resultC.stdout, { shape: smallShape, maxRewinds: 2 });
    assert.ok(check.ok, `console: ${check.reason ?? ''}${all}`);
    assertImage(image, expectedDiskImage(smallShape), all);
    assert.doesNotMatch(resultC.stderr, /refused|divergence|^\s+at /m, all);
  } finally {
    for (const process of [a, b, c]) process?.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('a standby opens its network back-end once, however many times it is turned away', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('standby-net');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, smallShape);
  // Each replica's own back-end: a UNIX socket that takes connections and says nothing.
  const connections = new Map<string, number>();
  const backends = ['a', 'b', 'c'].map((name) => {
    const socketPath = path.join(directory, `${name}.sock`);
    const server = net.createServer((socket) => {
      connections.set(name, (connections.get(name) ?? 0) + 1);
      socket.on('error', () => undefined);
    });
    server.listen(socketPath);
    return { name, socketPath, server };
  });
  const [portA, portB, portC] = [await freePort(), await freePort(), await freePort()];
  const common = ['--insecure', '--kernel', guestElf('pair_small_gated'), '--disk', image, '--arbiter', path.join(directory, 'arbiter')];
  const nic = (name: string): string[] => ['--net', `stream,path=${path.join(directory, `${name}.sock`)}`];
  const a = new CliProcess(['primary', '--listen', `127.0.0.1:${portA}`, ...common, ...nic('a')], { timeoutMs: processTimeoutMs });
  const b = new CliProcess(['backup', '--connect', `127.0.0.1:${portA}`, ...common, ...nic('b')], { timeoutMs: processTimeoutMs });
  let c: CliProcess | undefined;
  const context = (): string => `\n--- A\n${a.tail()}\n--- B\n${b.tail()}\n--- C\n${c?.tail() ?? '(not started)'}`;
  try {
    await a.waitFor('stderr', /protected: a backup has joined/, 60_000);
    c = new CliProcess(['standby', '--connect', `127.0.0.1:${portA},127.0.0.1:${portB}`, '--listen', `127.0.0.1:${portC}`, '--verbose', ...common, ...nic('c')], {
      timeoutMs: processTimeoutMs,
    });
    // Turned away three times by the busy primary (and by nothing listening at B's address).
    const refusal = `\\[standby \\d+\\] 127\\.0\\.0\\.1:${portA}: [^\\n]*already has a backup`;
    await c.waitFor('stderr', new RegExp(`(?:${refusal}[\\s\\S]*?){3}`), 90_000);
    assert.equal(connections.get('c'), 1, `the standby's back-end was connected to once${context()}`);
  } finally {
    for (const process of [a, b, c]) process?.killGroup();
    for (const backend of backends) backend.server.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('standby: bad use gets one clear line', { timeout: testTimeoutMs }, async () => {
  const noListen = await runCli(['standby', '--connect', '127.0.0.1:1', '--insecure', '--kernel', guestElf('pair_small')], 30_000);
  assert.equal(noListen.status, 2, describeResult(noListen));
  assert.match(noListen.stderr, /^understudy: standby needs --listen HOST:PORT/m);
  const badList = await runCli(['standby', '--connect', '127.0.0.1:1,nowhere', '--listen', '127.0.0.1:0', '--insecure', '--kernel', guestElf('pair_small')], 30_000);
  assert.equal(badList.status, 2, describeResult(badList));
  assert.match(badList.stderr, /^understudy: --connect: /m);
});
