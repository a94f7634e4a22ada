/**
 * The replication channel's mutual TLS, with real processes and real sockets: keys from
 * `understudy keys init`; a backup of the cluster joins and the run is exact; strangers are
 * refused before they learn anything (another cluster's keys, no TLS, a client that trusts
 * our CA but holds another's certificate); bytes injected into or replayed on the encrypted
 * stream end the connection, and the pair fails over cleanly instead of diverging.
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { guestElf } from './helpers.js';
import { initClusterKeys } from '../src/host/replica/keys.js';
import { encodeMessage, FrameDecoder, type Message } from '../src/replication/messages.js';
import { ExitStatus } from '../src/host/exit-status.js';
import { checkConsoleWithRepeats, createBlankDiskImage, expectedConsole, expectedDiskImage, smallShape } from './support/pair-workload.js';
import { assertImage, CliProcess, describeResult, freePort, runCli, scratchDirectory } from './support/replica-processes.js';

const processTimeoutMs = 45_000;
const testTimeoutMs = 90_000;

interface Cluster {
  readonly directory: string;
  readonly image: string;
  readonly arbiter: string;
  /** --tls directories of the cluster's replicas. */
  readonly keys: { readonly a: string; readonly b: string };
}

function cluster(): Cluster {
  const directory = scratchDirectory('tls');
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, smallShape);
  const [a, b] = initClusterKeys(path.join(directory, 'keys'), ['a', 'b']);
  return { directory, image, arbiter: path.join(directory, 'arbiter'), keys: { a: a!, b: b! } };
}

function machine(cluster: Cluster, elf = 'pair_small'): string[] {
  return ['--kernel', guestElf(elf), '--disk', cluster.image, '--arbiter', cluster.arbiter];
}

/** A primary that waits for its backup, with --verbose; resolves once it listens. */
async function startPrimary(cluster: Cluster, channel: readonly string[], elf = 'pair_small'): Promise<{ process: CliProcess; port: number }> {
  const port = await freePort();
  const process = new CliProcess(['primary', '--listen', `127.0.0.1:${port}`, '--wait-for-backup', '--verbose', ...channel, ...machine(cluster, elf)], {
    input: 'pipe',
    timeoutMs: processTimeoutMs,
  });
  await process.waitFor('stderr', /listening on 127\.0\.0\.1:\d+/, 30_000);
  return { process, port };
}

/** The cluster's own backup joins; the guest runs to the end: exact console and image. */
async function finishWithClusterBackup(cluster: Cluster, primary: { process: CliProcess; port: number }): Promise<void> {
  const backup = await runCli(['backup', '--connect', `127.0.0.1:${primary.port}`, '--tls', cluster.keys.b, ...machine(cluster)], processTimeoutMs);
  const result = await primary.process.done;
  const context = `\n--- primary\n${describeResult(result)}\n--- backup\n${describeResult(backup)}`;
  assert.equal(result.status, 0, context);
  assert.equal(backup.status, 0, context);
  assert.ok(result.stdout === expectedConsole(smallShape), `console${context}`);
  assertImage(cluster.image, expectedDiskImage(smallShape), context);
}

test('keys from `understudy keys init`: a backup of the cluster joins over TLS; the run is exact', { timeout: testTimeoutMs }, async () => {
  const c = cluster();
  try {
    const primary = await startPrimary(c, ['--tls', c.keys.a]);
    await finishWithClusterBackup(c, primary);
    assert.match(primary.process.stderr, /backup joined at epoch \d+/);
  } finally {
    fs.rmSync(c.directory, { recursive: true, force: true });
  }
});

test('a backup with another cluster\'s keys is refused on both sides, and the primary is unharmed', { timeout: testTimeoutMs }, async () => {
  const c = cluster();
  try {
    const [stranger] = initClusterKeys(path.join(c.directory, 'other-cluster'), ['x']);
    const primary = await startPrimary(c, ['--tls', c.keys.a]);
    const result = await runCli(['backup', '--connect', `127.0.0.1:${primary.port}`, '--tls', stranger!, ...machine(c)], processTimeoutMs);
    assert.notEqual(result.status, 0, describeResult(result));
    assert.match(result.stderr, /^understudy: cannot join the primary at 127\.0\.0\.1:\d+: its certificate is not signed by this cluster's CA/m, describeResult(result));
    assert.doesNotMatch(result.stderr, /^\s+at /m);
    await primary.process.waitFor('stderr', /refused a connection from .*: it closed during the TLS handshake \(it does not accept this replica's certificate/, 10_000);
    await finishWithClusterBackup(c, primary);
  } finally {
    fs.rmSync(c.directory, { recursive: true, force: true });
  }
});

test('TLS on one side only: each side says so in one line; the primary is unharmed', { timeout: testTimeoutMs }, async () => {
  const c = cluster();
  try {
    // A plain backup at a TLS primary.
    const primary = await startPrimary(c, ['--tls', c.keys.a]);
    const plain = await runCli(['backup', '--connect', `127.0.0.1:${primary.port}`, '--insecure', '--connect-timeout', '500', ...machine(c)], processTimeoutMs);
    assert.notEqual(plain.status, 0, describeResult(plain));
    assert.match(plain.stderr, /speaks TLS and this replica does not|closed/, describeResult(plain));
    await primary.process.waitFor('stderr', /refused a connection from .*: it does not speak TLS/, 10_000);
    await finishWithClusterBackup(c, primary);

    // A TLS backup at a plain primary.
    createBlankDiskImage(c.image, smallShape);
    fs.rmSync(c.arbiter, { recursive: true, force: true });
    const insecure = await startPrimary(c, ['--insecure']);
    const secure = await runCli(['backup', '--connect', `127.0.0.1:${insecure.port}`, '--tls', c.keys.b, ...machine(c)], processTimeoutMs);
    assert.notEqual(secure.status, 0, describeResult(secure));
    assert.match(secure.stderr, /does not speak TLS/, describeResult(secure));
    await insecure.process.waitFor('stderr', /refused a connection from .*: the peer speaks TLS and this replica does not/, 10_000);
    const backup = await runCli(['backup', '--connect', `127.0.0.1:${insecure.port}`, '--insecure', ...machine(c)], processTimeoutMs);
    assert.equal(backup.status, 0, describeResult(backup));
    assert.equal((await insecure.process.done).status, 0);
  } finally {
    fs.rmSync(c.directory, { recursive: true, force: true });
  }
});

/** Frames a raw client receives until the connection ends. */
function collectFrames(socket: net.Socket): Promise<{ messages: Message[]; error: string | undefined }> {
  return new Promise((resolve) => {
    const decoder = new FrameDecoder();
    const messages: Message[] = [];
    let error: string | undefined;
    socket.on('data', (chunk: Buffer) => {
      try {
        messages.push(...decoder.push(chunk));
      } catch (failure) {
        error = failure instanceof Error ? failure.message : String(failure);
      }
    });
    socket.on('error', (failure) => (error ??= failure.message));
    socket.on('close', () => resolve({ messages, error }));
  });
}

test('strangers learn nothing: a plain hello, and a client that trusts our CA but holds another\'s certificate', { timeout: testTimeoutMs }, async () => {
  const c = cluster();
  try {
    const primary = await startPrimary(c, ['--tls', c.keys.a]);
    const identity = { configKey: 'x', imageDigest: 'y', optionsKey: 'z', replicaId: 'stranger' };
    // A plain TCP peer with a well-formed hello: no understudy frame comes back.
    const plain = net.connect(primary.port, '127.0.0.1', () => plain.write(encodeMessage({ type: 'hello', identity })));
    const plainSeen = await collectFrames(plain);
    assert.equal(plainSeen.messages.length, 0, JSON.stringify(plainSeen));
    // TLS with our (public) CA certificate but a certificate of another CA: it completes the
    // handshake from its side, then gets a refusal, and nothing of the machine.
    const [stranger] = initClusterKeys(path.join(c.directory, 'other-cluster'), ['x']);
    const socket = tls.connect({
      host: '127.0.0.1',
      port: primary.port,
      ca: fs.readFileSync(path.join(c.keys.a, 'ca.crt')),
      cert: fs.readFileSync(path.join(stranger!, 'replica.crt')),
      key: fs.readFileSync(path.join(stranger!, 'replica.key')),
      checkServerIdentity: () => undefined,
    });
    socket.on('secureConnect', () => socket.write(encodeMessage({ type: 'hello', identity })));
    const seen = await collectFrames(socket);
    assert.deepEqual(seen.messages.map((message) => message.type), ['reject'], JSON.stringify(seen));
    const reject = seen.messages[0] as Extract<Message, { type: 'reject' }>;
    assert.equal(reject.code, 'unauthorized');
    assert.match(reject.reason, /not signed by this cluster's CA/);
    await primary.process.waitFor('stderr', /refused a connection from .*: its certificate \(.*CN=x.*\) is not signed by this cluster's CA/, 10_000);
    await finishWithClusterBackup(c, primary);
  } finally {
    fs.rmSync(c.directory, { recursive: true, force: true });
  }
});

test('idle connections that never say hello do not lock out the real backup', { timeout: testTimeoutMs }, async () => {
  const c = cluster();
  const idle: net.Socket[] = [];
  try {
    const primary = await startPrimary(c, ['--tls', c.keys.a]);
    // Twice as many as the primary keeps waiting: the oldest make room for the newest.
    for (let i = 0; i < 16; i++) {
      const socket = net.connect(primary.port, '127.0.0.1');
      socket.on('error', () => {});
      idle.push(socket);
      await new Promise((resolve) => socket.once('connect', resolve));
    }
    await primary.process.waitFor('stderr', /closed a connection from .* that had not said hello: 8 connections were waiting/, 10_000);
    await finishWithClusterBackup(c, primary);
  } finally {
    for (const socket of idle) socket.destroy();
    fs.rmSync(c.directory, { recursive: true, force: true });
  }
});

/**
 * A TCP relay between a backup and its primary that can tamper with what the primary sends:
 * flip a bit of one chunk, or send a chunk twice (a replay of TLS records).
 */
class TamperingRelay {
  private tamper: 'flip' | 'replay' | undefined;
  private readonly server: net.Server;
  readonly ready: Promise<number>;

  constructor(targetPort: number) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      client.on('data', (chunk) => upstream.write(chunk));
      upstream.on('data', (chunk: Buffer) => {
        const how = this.tamper;
        if (how === 'flip' && chunk.length > 16) {
          this.tamper = undefined;
          const copy = Buffer.from(chunk);
          copy[copy.length >> 1]! ^= 0x20;
          client.write(copy);
          return;
        }
        client.write(chunk);
        if (how === 'replay') {
          this.tamper = undefined;
          client.write(chunk);
        }
      });
      for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
        a.on('error', () => b.destroy());
        a.on('close', () => b.destroy());
      }
    });
    this.ready = new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.server.address() as net.AddressInfo).port)));
  }

  tamperNext(how: 'flip' | 'replay'): void {
    this.tamper = how;
  }

  close(): void {
    this.server.close();
  }
}

for (const how of ['flip', 'replay'] as const) {
  test(`bytes ${how === 'flip' ? 'changed' : 'replayed'} on the encrypted stream end the connection: one replica stays live, the run completes exactly`, { timeout: testTimeoutMs }, async () => {
    const c = cluster();
    const relayFor = async (port: number): Promise<{ relay: TamperingRelay; port: number }> => {
      const relay = new TamperingRelay(port);
      return { relay, port: await relay.ready };
    };
    let relay: TamperingRelay | undefined;
    let backup: CliProcess | undefined;
    const primary = await startPrimary(c, ['--tls', c.keys.a], 'pair_small_gated');
    try {
      const relayed = await relayFor(primary.port);
      relay = relayed.relay;
      backup = new CliProcess(['backup', '--connect', `127.0.0.1:${relayed.port}`, '--verbose', '--tls', c.keys.b, ...machine(c, 'pair_small_gated')], {
        input: 'pipe',
        timeoutMs: processTimeoutMs,
      });
      // The pair runs protected (the gated guest waits at its end), then the stream is tampered with.
      await primary.process.waitFor('stdout', /^line 0010 /m, 30_000);
      relay.tamperNext(how);
      // Whichever side wins the arbiter runs on alone; the other stops.
      const live = await Promise.any([
        primary.process.waitFor('stderr', /running alone \(generation 2\)/, 30_000).then(() => primary.process),
        backup.waitFor('stderr', /promoted: live from epoch \d+/, 30_000).then(() => backup!),
      ]);
      live.child.stdin!.end('g');
      const [primaryResult, backupResult] = await Promise.all([primary.process.done, backup.done]);
      const context = `\n--- primary\n${describeResult(primaryResult)}\n--- backup\n${describeResult(backupResult)}`;
      const liveResult = live === primary.process ? primaryResult : backupResult;
      const stopped = live === primary.process ? backupResult : primaryResult;
      assert.equal(liveResult.status, 0, context);
      assert.equal(stopped.status, ExitStatus.notLive, `the other replica lost the arbiter and stopped${context}`);
      assert.doesNotMatch(primaryResult.stderr + backupResult.stderr, /divergence|^\s+at /m, context);
      // The world's console: the primary's, then the backup's after it went live (repeats allowed).
      const combined = primaryResult.stdout + backupResult.stdout;
      assert.ok(checkConsoleWithRepeats(combined, { shape: smallShape }).ok, `console${context}`);
      assertImage(c.image, expectedDiskImage(smallShape), context);
    } finally {
      relay?.close();
      primary.process.killGroup();
      backup?.killGroup();
      fs.rmSync(c.directory, { recursive: true, force: true });
    }
  });
}

test('--tls with a wrong directory: one clear line before anything starts', { timeout: testTimeoutMs }, async () => {
  const c = cluster();
  try {
    const missing = await runCli(['primary', '--listen', '127.0.0.1:0', '--tls', path.join(c.directory, 'nope'), ...machine(c)], processTimeoutMs);
    assert.equal(missing.status, ExitStatus.usage, describeResult(missing));
    assert.match(missing.stderr, /^understudy: --tls .*nope: no ca\.crt there \(make keys with: understudy keys init/m);
    // A certificate of one cluster with the CA of another.
    const [stranger] = initClusterKeys(path.join(c.directory, 'other-cluster'), ['x']);
    const mixed = path.join(c.directory, 'mixed');
    fs.mkdirSync(mixed);
    fs.copyFileSync(path.join(c.keys.a, 'ca.crt'), path.join(mixed, 'ca.crt'));
    for (const file of ['replica.crt', 'replica.key']) fs.copyFileSync(path.join(stranger!, file), path.join(mixed, file));
    const wrong = await runCli(['backup', '--connect', '127.0.0.1:1', '--tls', mixed, ...machine(c)], processTimeoutMs);
    assert.equal(wrong.status, ExitStatus.usage, describeResult(wrong));
    assert.match(wrong.stderr, /^understudy: --tls .*mixed: replica\.crt is not signed by ca\.crt$/m);
    const neither = await runCli(['primary', '--listen', '127.0.0.1:0', ...machine(c)], processTimeoutMs);
    assert.equal(neither.status, ExitStatus.usage);
    assert.match(neither.stderr, /^understudy: primary needs --tls DIR .* or --insecure/m);
  } finally {
    fs.rmSync(c.directory, { recursive: true, force: true });
  }
});
