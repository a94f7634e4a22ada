/**
 * Bad input from peers, through real processes and real sockets: strangers and broken frames
 * at the primary's port, backups that do not match the primary, a backup pointed at nothing or
 * at something that is not understudy, a primary whose port is taken. Each is refused with a
 * reason that names the cause, and the running replica is never harmed: after each bad peer a
 * correct backup still joins and the guest finishes with exit status 0 and exactly the
 * console and the disk image of a failure-free run.
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { guestElf } from './helpers.js';
import { encodeMessage, frameHeaderBytes, framePayloadBytesMax, protocolVersion } from '../src/replication/messages.js';
import { ExitStatus } from '../src/host/exit-status.js';
import { createBlankDiskImage, expectedConsole, expectedDiskImage, fullShape, smallShape, type WorkloadShape } from './support/pair-workload.js';
import {
  assertImage, CliProcess, describeResult, firstDifference, freePort, runCli, scratchDirectory, type ProcessResult,
} from './support/replica-processes.js';

const processTimeoutMs = 45_000;
const testTimeoutMs = 60_000;
/** A refusal is immediate; this leaves room for a loaded machine. */
const refusalMs = 3_000;

interface Primary {
  readonly process: CliProcess;
  readonly port: number;
  readonly image: string;
  readonly arbiter: string;
  readonly directory: string;
  readonly elf: string;
  readonly shape: WorkloadShape;
}

/**
 * These tests are about refusing bad peers, not about failover: a long failure timeout keeps
 * a loaded machine's scheduling stalls from being taken for a dead peer.
 */
const patient = ['--failure-timeout', '3000'];

/** A primary of the pair workload on a free port, with --verbose, waiting for its backup. */
async function startPrimary(workload: 'small' | 'full' = 'small'): Promise<Primary> {
  const directory = scratchDirectory('bad-input');
  const shape = workload === 'small' ? smallShape : fullShape;
  const elf = guestElf(workload === 'small' ? 'pair_small' : 'pair_workload');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, shape);
  const arbiter = path.join(directory, 'arbiter');
  const port = await freePort();
  const process = new CliProcess(['primary', '--listen', `127.0.0.1:${port}`, '--wait-for-backup', '--insecure', '--kernel', elf, '--disk', image, '--arbiter', arbiter, '--verbose', ...patient], {
    timeoutMs: processTimeoutMs,
  });
  await process.waitFor('stderr', /listening on 127\.0\.0\.1:\d+/, 20_000);
  return { process, port, image, arbiter, directory, elf, shape };
}

function backupArgs(primary: Primary, extra: readonly string[] = []): string[] {
  return ['backup', '--connect', `127.0.0.1:${primary.port}`, '--insecure', '--kernel', primary.elf, '--disk', primary.image, '--arbiter', primary.arbiter, ...patient, ...extra];
}

/**
 * A correct backup joins; the guest runs to the end on the pair. Checks the primary's exit
 * status, console and log, the backup's exit status, and the image.
 */
async function finishWithCorrectBackup(primary: Primary): Promise<void> {
  const backup = await runCli(backupArgs(primary), processTimeoutMs);
  const result = await primary.process.done;
  const context = `\n--- primary\n${describeResult(result)}\n--- backup\n${describeResult(backup)}`;
  assert.equal(result.status, 0, context);
  assert.equal(backup.status, 0, context);
  assert.match(result.stderr, /backup joined at epoch \d+/, context);
  const expected = expectedConsole(primary.shape);
  assert.ok(result.stdout === expected, `the primary's console differs at ${firstDifference(result.stdout, expected)}${context}`);
  assert.equal(backup.stdout, '', `the backup printed nothing${context}`);
  assertImage(primary.image, expectedDiskImage(primary.shape), context);
}

async function withPrimary(body: (primary: Primary) => Promise<void>, workload: 'small' | 'full' = 'small'): Promise<void> {
  const primary = await startPrimary(workload);
  try {
    await body(primary);
    await finishWithCorrectBackup(primary);
  } finally {
    primary.process.killGroup();
    fs.rmSync(primary.directory, { recursive: true, force: true });
  }
}

/** What a raw TCP peer saw: whether the other side closed the connection, and what it sent. */
interface RawOutcome {
  readonly closedByPeer: boolean;
  readonly received: Buffer;
  readonly elapsedMs: number;
}

/** Connects, sends `bytes`, optionally half-closes, and waits (up to refusalMs) for the other side to close. */
function rawPeer(port: number, bytes: Uint8Array, options: { end?: boolean } = {}): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const settle = (closedByPeer: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ closedByPeer, received: Buffer.concat(chunks), elapsedMs: performance.now() - started });
    };
    const timer = setTimeout(() => settle(false), refusalMs);
    socket.on('connect', () => {
      socket.write(bytes);
      if (options.end === true) socket.end();
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') settle(true);
      else if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(error);
      }
    });
    socket.on('close', () => settle(true));
  });
}

/** A frame header as in src/replication/messages.ts: "US", version, type, u32 length (LE). */
function frameHeader(version: number, type: number, length: number): Uint8Array {
  const header = new Uint8Array(frameHeaderBytes);
  header.set([0x55, 0x53, version, type]);
  new DataView(header.buffer).setUint32(4, length, true);
  return header;
}

const hello = encodeMessage({ type: 'hello', identity: { configKey: 'ram=134217728;disks=[]', imageDigest: '0'.repeat(64), optionsKey: 'epoch=100000', replicaId: 'stranger' } });

interface RawCase {
  readonly name: string;
  readonly bytes: Uint8Array;
  /** The peer closes its side after sending (a truncated frame: the primary must notice). */
  readonly end?: boolean;
  /** What the primary's log says. */
  readonly reason: RegExp;
}

const rawCases: RawCase[] = [
  {
    name: 'an HTTP client',
    bytes: new TextEncoder().encode('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'),
    reason: /the peer does not speak the understudy protocol \(it sent "GET \/ HT"\)/,
  },
  { name: 'a frame of an unknown message type', bytes: frameHeader(protocolVersion, 99, 0), reason: /unknown message type 99/ },
  {
    name: 'a frame that claims 4 GiB',
    bytes: frameHeader(protocolVersion, 1, 0xffff_ffff),
    reason: new RegExp(`frame of 4294967295 bytes exceeds the limit of ${framePayloadBytesMax}`),
  },
  {
    name: 'a truncated frame, then the connection closed',
    bytes: Uint8Array.from([...frameHeader(protocolVersion, 1, 100), 1, 2, 3]),
    end: true,
    reason: /a truncated frame \(the connection closed after 11 bytes of it\)/,
  },
  {
    name: 'a hello of another protocol version',
    bytes: Uint8Array.from(hello, (byte, index) => (index === 2 ? protocolVersion + 1 : byte)),
    reason: new RegExp(`the peer speaks protocol version ${protocolVersion + 1}, this is version ${protocolVersion}`),
  },
  { name: 'a frame that is not a hello first', bytes: encodeMessage({ type: 'ack', epoch: 5, heartbeat: 0, catchUpMs: 0 }), reason: /expected a hello, got ack/ },
  {
    name: 'a hello whose payload does not parse',
    bytes: Uint8Array.from([...frameHeader(protocolVersion, 1, 5), 0xff, 0xff, 0xff, 0xff, 0xff]),
    reason: /malformed hello message/,
  },
];

for (const rawCase of rawCases) {
  test(`the primary refuses ${rawCase.name}, says why, and a correct backup still joins`, { timeout: testTimeoutMs }, async () => {
    await withPrimary(async (primary) => {
      const outcome = await rawPeer(primary.port, rawCase.bytes, rawCase.end === true ? { end: true } : {});
      assert.ok(outcome.closedByPeer, `the primary closed the connection within ${refusalMs} ms\n${primary.process.tail()}`);
      const line = await primary.process.waitFor('stderr', /refused a connection from [^:]+: .*/, refusalMs);
      assert.match(line[0], rawCase.reason, primary.process.tail());
      assert.ok(!primary.process.exited, 'the primary is still running');
    });
  });
}

/** A backup the primary must refuse: it exits with `ExitStatus.refused` and one line naming the cause. */
async function assertBackupRefused(primary: Primary, extra: readonly string[], cause: RegExp): Promise<void> {
  const from = primary.process.stderr.length;
  const backup = await runCli(backupArgs(primary, extra), processTimeoutMs);
  const context = describeResult(backup);
  assert.equal(backup.status, ExitStatus.refused, context);
  assertOneLine(backup, new RegExp(`^understudy backup: the primary refused this backup: ${cause.source}`));
  await primary.process.waitFor('stderr', new RegExp(`refused a backup: ${cause.source}`), refusalMs, from);
  assert.ok(!primary.process.exited, 'the primary keeps waiting');
}

/** Exactly one line on stderr, matching `pattern`, and no stack trace. */
function assertOneLine(result: ProcessResult, pattern: RegExp): void {
  const lines = result.stderr.split('\n').filter((line) => line.length > 0);
  assert.equal(lines.length, 1, `one line on stderr\n${describeResult(result)}`);
  assert.match(lines[0]!, pattern, describeResult(result));
  assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
}

test('backups of another guest image, machine configuration or epoch length are refused; the primary waits for a correct one', { timeout: testTimeoutMs }, async () => {
  await withPrimary(async (primary) => {
    await assertBackupRefused(primary, ['--kernel', guestElf('pair_workload')], /different guest image/);
    await assertBackupRefused(primary, ['--memory', '64M'], /different machine configuration/);
    await assertBackupRefused(primary, ['--epoch', '20000'], /different replication options/);
  });
});

test('bad peers while a pair runs: strangers and a second backup are refused; the pair finishes untouched', { timeout: testTimeoutMs }, async () => {
  const primary = await startPrimary('full');
  try {
    const backup = new CliProcess(backupArgs(primary), { timeoutMs: processTimeoutMs });
    await primary.process.waitFor('stderr', /backup joined at epoch \d+/, 20_000);
    for (const rawCase of rawCases.slice(0, 2)) {
      const outcome = await rawPeer(primary.port, rawCase.bytes);
      assert.ok(outcome.closedByPeer, `the primary closed the connection of ${rawCase.name}`);
    }
    const second = await runCli(backupArgs(primary), processTimeoutMs);
    assert.equal(second.status, ExitStatus.refused, describeResult(second));
    assertOneLine(second, /the primary refused this backup: this primary already has a backup/);

    const [result, first] = await Promise.all([primary.process.done, backup.done]);
    const context = `\n--- primary\n${describeResult(result)}\n--- backup\n${describeResult(first)}`;
    assert.equal(result.status, 0, context);
    assert.equal(first.status, 0, context);
    assert.ok(result.stdout === expectedConsole(), `console differs at ${firstDifference(result.stdout, expectedConsole())}${context}`);
    assert.doesNotMatch(result.stderr, /backup lost|running alone/, `the running backup was never dropped${context}`);
    assert.match(result.stderr, /refused a connection from .*: the peer does not speak the understudy protocol/, context);
    assert.match(result.stderr, /refused a connection from .*: unknown message type 99/, context);
    assertImage(primary.image, expectedDiskImage(), context);
    backup.killGroup();
  } finally {
    primary.process.killGroup();
    fs.rmSync(primary.directory, { recursive: true, force: true });
  }
});

// -------------------------------------------------------------------------------------------
// A backup pointed at the wrong place; a primary that cannot listen

/** Arguments for a backup of the small workload that never gets as far as its disk. */
function strayBackupArgs(port: number, directory: string): string[] {
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, smallShape);
  return ['backup', '--connect', `127.0.0.1:${port}`, '--insecure', '--connect-timeout', '500', '--kernel', guestElf('pair_small'), '--disk', image, '--arbiter', path.join(directory, 'arbiter')];
}

test('a backup pointed at a port where nothing listens: "cannot reach the primary", quickly', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('bad-input');
  try {
    const port = await freePort();
    const result = await runCli(strayBackupArgs(port, directory), processTimeoutMs);
    assert.notEqual(result.status, 0, describeResult(result));
    assertOneLine(result, new RegExp(`^understudy: cannot reach the primary at 127\\.0\\.0\\.1:${port}: ECONNREFUSED$`));
    // --connect-timeout 500: it gives up after half a second of retries (plus its start-up).
    assert.ok(result.elapsedMs < 5_000, `it gave up after ${result.elapsedMs.toFixed(0)} ms`);
    assert.equal(result.stdout, '');
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('a backup pointed at an HTTP server: the peer does not speak the understudy protocol', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('bad-input');
  const server = http.createServer((_request, response) => response.end('hello from a web server\n'));
  try {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const result = await runCli(strayBackupArgs(port, directory), processTimeoutMs);
    assert.notEqual(result.status, 0, describeResult(result));
    assert.notEqual(result.status, null, describeResult(result));
    assertOneLine(result, /the peer does not speak the understudy protocol \(it sent "HTTP\/1\.1"\)/);
    assert.ok(result.elapsedMs < 5_000, `it gave up after ${result.elapsedMs.toFixed(0)} ms`);
    assert.equal(result.stdout, '');
  } finally {
    server.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('a backup pointed at a server that accepts and says nothing: gives up after the join timeout', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('bad-input');
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    sockets.push(socket);
  });
  try {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const result = await runCli([...strayBackupArgs(port, directory), '--failure-timeout', '500', '--join-timeout', '1000'], processTimeoutMs);
    assert.notEqual(result.status, 0, describeResult(result));
    assert.notEqual(result.status, null, describeResult(result));
    assertOneLine(result, /^understudy backup: could not join the primary: nothing heard for \d+ ms/);
    assert.ok(result.elapsedMs < 5_000, `it gave up after ${result.elapsedMs.toFixed(0)} ms`);
  } finally {
    for (const socket of sockets) socket.destroy();
    server.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('a primary whose --listen port is taken: one clear line, non-zero exit, no stack trace', { timeout: testTimeoutMs }, async () => {
  const directory = scratchDirectory('bad-input');
  const squatter = net.createServer();
  try {
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const port = (squatter.address() as net.AddressInfo).port;
    const image = path.join(directory, 'disk.img');
    createBlankDiskImage(image, smallShape);
    const result = await runCli(
      ['primary', '--listen', `127.0.0.1:${port}`, '--insecure', '--kernel', guestElf('pair_small'), '--disk', image, '--arbiter', path.join(directory, 'arbiter')],
      processTimeoutMs,
    );
    assert.notEqual(result.status, 0, describeResult(result));
    assert.notEqual(result.status, null, describeResult(result));
    assertOneLine(result, new RegExp(`^understudy: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE$`));
    assert.equal(result.stdout, '');
    assertImage(image, new Uint8Array(smallShape.diskSectors * 512), ': the disk is untouched');
  } finally {
    squatter.close();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
