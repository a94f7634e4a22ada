/**
 * A frame fuzzer against live replicas (real processes, real sockets). Seeded streams of
 * random bytes, mutated frames, replayed, reordered and truncated streams, built from what a
 * real backup and a real primary say:
 *
 * - fed to a live primary by would-be backups, before a hello and after a good one: the
 *   primary refuses each with a reason (or, for frames that parse, drops the peer or ignores
 *   them), never crashes, never stalls: afterwards a real backup joins it and the guest runs
 *   to the exact end a failure-free run has;
 * - served to a live backup by a fake primary: the backup ends with a one-line reason (it
 *   could not join, its execution would diverge, the primary failed and it took over), within
 *   a bound, never with a stack trace.
 *
 * The seed is printed; PEER_FUZZ_SEED=N replays a run exactly (the streams; the processes'
 * timing is the machine's), PEER_FUZZ_CASES=N runs more cases.
 *
 * Needs `npx tsc -p tsconfig.json && make -C guests` first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { asm, assemble } from '../src/machine/cpu/encode.js';
import { decodeFrame, encodeMessage, type Message } from '../src/replication/messages.js';
import { Prng } from '../src/simulator/prng.js';
import { guestElf } from './helpers.js';
import { createBlankDiskImage, expectedConsole, expectedDiskImage, smallShape } from './support/pair-workload.js';
import { assertImage, CliProcess, describeResult, firstDifference, freePort, runCli, scratchDirectory } from './support/replica-processes.js';
import { connect, hostileStream, mutateFrame, randomBytes, recordHello, recordPrimary, writeInPieces, type FuzzCase } from './support/peer-fuzz.js';

const seed = Number(process.env['PEER_FUZZ_SEED'] ?? Date.now() % 1_000_000);
const cases = Number(process.env['PEER_FUZZ_CASES'] ?? 16);
console.log(`peer fuzz seed ${seed} (replay: PEER_FUZZ_SEED=${seed})`);
const context = (what: string): string => `${what} (peer fuzz seed ${seed}; replay: PEER_FUZZ_SEED=${seed})`;

/** Refusals are immediate; this leaves room for a loaded machine. */
const refusalMs = 10_000;
/** These tests are about bad peers, not failure detection: a loaded machine's stalls must not look like deaths. */
// Plain frames: these peers speak the protocol itself (TLS is tested in pair-tls.test.ts).
const patient = ['--failure-timeout', '3000', '--verbose', '--insecure'];

/** Lines on the primary's log that say a peer was turned away, and why (all of them, and the first). */
const refusalLines = /(refused a connection from [^:]+|refused a backup): (.+)/g;
const refusalLine = new RegExp(refusalLines.source);

/** The small pair workload: a scratch directory with its blank disk image. */
function smallWorkload(prefix: string): { directory: string; image: string; elf: string } {
  const directory = scratchDirectory(prefix);
  const image = path.join(directory, 'disk.img');
  createBlankDiskImage(image, smallShape);
  return { directory, image, elf: guestElf('pair_small') };
}

/** Sends `fuzz` on a new connection, half-closes, and waits for the primary to hang up. */
async function feed(port: number, fuzz: FuzzCase, prng: Prng, prefix: Uint8Array = new Uint8Array(0)): Promise<Message[]> {
  const { socket, received, closed } = await connect(port);
  await writeInPieces(socket, Uint8Array.from([...prefix, ...fuzz.bytes]), prng);
  socket.end();
  const timer = setTimeout(() => socket.destroy(), refusalMs);
  await closed;
  clearTimeout(timer);
  return received;
}

test('fuzz: a live primary refuses hostile would-be backups before their hello, then a real backup joins and the guest ends exactly', { timeout: 180_000 }, async () => {
  const prng = new Prng(seed);
  const { directory, image, elf } = smallWorkload('peer-fuzz-primary');
  const arbiter = path.join(directory, 'arbiter');
  const port = await freePort();
  const machineArgs = ['--kernel', elf, '--disk', image, '--arbiter', arbiter];
  const primary = new CliProcess(['primary', '--listen', `127.0.0.1:${port}`, '--wait-for-backup', ...machineArgs, ...patient], { timeoutMs: 170_000 });
  try {
    await primary.waitFor('stderr', /listening on/, 20_000);
    const hello = await recordHello([...machineArgs, '--connect-timeout', '5000']);
    // What a backup says once it follows (replayed here before any hello), and its hello,
    // mutated: never the real hello intact, which would make the fuzzer this primary's backup.
    const followerFrames = [
      encodeMessage({ type: 'ack', epoch: prng.int(0, 50), heartbeat: prng.int(0, 50), catchUpMs: prng.int(0, 100_000) }),
      encodeMessage({ type: 'heartbeat', sequence: 1, releasedThrough: 0 }),
      encodeMessage({ type: 'divergence', epoch: 3, reason: 'made up' }),
    ];
    const identity = decodeFrame(hello);
    assert.ok(identity.type === 'hello');
    /** The real hello with one identity field changed: it parses, and names another machine. */
    const otherHello = (): FuzzCase => {
      const field = prng.pick(['configKey', 'imageDigest', 'optionsKey'] as const);
      const changed = { ...identity.identity, [field]: `${identity.identity[field]}${prng.pick(['0', 'x', ';ram=1', ''.padEnd(prng.int(1, 5000), 'z')])}` };
      return { description: `a hello with another ${field}`, bytes: encodeMessage({ type: 'hello', identity: changed }) };
    };
    /**
     * Whether a mutated hello would still be this primary's backup: it parses and names the
     * same machine, image and options, only another replica (the name is free text since
     * protocol version 4). Such a mutation is the real hello, not a hostile one.
     */
    const stillJoins = (bytes: Uint8Array): boolean => {
      try {
        const message = decodeFrame(bytes);
        return message.type === 'hello' && (['configKey', 'imageDigest', 'optionsKey'] as const).every((field) => message.identity[field] === identity.identity[field]);
      } catch {
        return false;
      }
    };
    const mutatedHello = (): FuzzCase => {
      for (;;) {
        const { bytes, how } = mutateFrame(hello, prng);
        if (!stillJoins(bytes)) return { description: `the real hello, ${how}`, bytes };
      }
    };
    for (let i = 0; i < cases; i++) {
      const kind = prng.int(0, 3);
      const fuzz: FuzzCase =
        kind === 0 ? randomBytes(prng)
        : kind === 1 ? mutatedHello()
        : kind === 2 ? otherHello()
        : hostileStream(followerFrames, prng, 'a follower\'s frames, before any hello');
      const before = [...primary.stderr.matchAll(refusalLines)].length;
      const from = primary.stderr.length;
      const received = await feed(port, fuzz, prng);
      const refusal = await primary.waitFor('stderr', refusalLine, refusalMs, from);
      console.log(`case ${i}: ${fuzz.description} -> ${refusal[1]}: ${refusal[2]}`);
      assert.ok(!primary.exited, context(`case ${i} (${fuzz.description}): the primary is still running`));
      assert.doesNotMatch(primary.stderr.slice(from), /backup joined/, context(`case ${i} (${fuzz.description}): not taken as a backup`));
      assert.equal([...primary.stderr.matchAll(refusalLines)].length, before + 1, context(`case ${i} (${fuzz.description}): one refusal`));
      const reject = received.find((message) => message.type === 'reject');
      if (reject !== undefined && reject.type === 'reject') assert.ok(reject.reason.length > 0, context(`case ${i}: the reject says why`));
    }
    // A real backup still joins, and the guest runs to the end a failure-free run has.
    const backup = await runCli(['backup', '--connect', `127.0.0.1:${port}`, ...machineArgs, ...patient], 120_000);
    const result = await primary.done;
    const both = `\n--- primary\n${describeResult(result)}\n--- backup\n${describeResult(backup)}`;
    assert.equal(result.status, 0, context(both));
    assert.equal(backup.status, 0, context(both));
    assert.ok(result.stdout === expectedConsole(smallShape), context(`the console differs at ${firstDifference(result.stdout, expectedConsole(smallShape))}${both}`));
    assertImage(image, expectedDiskImage(smallShape), context(both));
    assert.doesNotMatch(result.stderr, /^\s+at |AssertionError|TypeError|RangeError/m, context(both));
  } finally {
    primary.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

test('fuzz: a live primary drops joined backups that turn hostile, runs on, and takes a real one afterwards', { timeout: 180_000 }, async () => {
  const prng = new Prng(seed + 1);
  const directory = scratchDirectory('peer-fuzz-joined');
  // A guest that runs until it is stopped, so that the primary outlives every case.
  const kernel = path.join(directory, 'spin.bin');
  fs.writeFileSync(kernel, assemble([asm.addi(5, 5, 1), asm.jal(0, -4)]));
  const machineArgs = ['--kernel', kernel, '--memory', '16M', '--arbiter', path.join(directory, 'arbiter')];
  const port = await freePort();
  const primary = new CliProcess(['primary', '--listen', `127.0.0.1:${port}`, ...machineArgs, ...patient], { timeoutMs: 170_000 });
  let backup: CliProcess | undefined;
  try {
    await primary.waitFor('stderr', /listening on/, 20_000);
    const hello = await recordHello([...machineArgs, '--connect-timeout', '5000']);
    const follow: Message[] = [
      { type: 'ack', epoch: 0, heartbeat: 0, catchUpMs: 0 },
      { type: 'ack', epoch: prng.int(1, 1_000_000), heartbeat: prng.int(0, 1000), catchUpMs: prng.int(0, 1_000_000) },
      { type: 'divergence', epoch: prng.int(0, 100), reason: 'a made-up divergence' },
      decodeFrame(hello),
    ];
    for (let i = 0; i < Math.ceil(cases / 2); i++) {
      const from = primary.stderr.length;
      const fuzz = prng.chance(0.3) ? randomBytes(prng) : hostileStream(follow.map(encodeMessage), prng, 'a follower\'s frames');
      await feed(port, fuzz, prng, hello);
      // Refused at once (what followed its hello arrived with it, and did not parse), or
      // joined and then dropped (for what it sent, or when it hung up); the guest runs on.
      const outcome = await primary.waitFor('stderr', /refused a connection from [^:]+: .+|backup lost \(.+\)/, refusalMs, from);
      console.log(`case ${i}: the real hello, then ${fuzz.description} -> ${outcome[0]}`);
      assert.ok(!primary.exited, context(`case ${i} (${fuzz.description}): the primary is still running`));
    }
    const before = primary.stderr.length;
    backup = new CliProcess(['backup', '--connect', `127.0.0.1:${port}`, ...machineArgs, ...patient], { timeoutMs: 120_000 });
    await primary.waitFor('stderr', /backup joined at epoch \d+/, 60_000, before);
    await backup.waitFor('stderr', /following from epoch \d+/, 60_000);
    assert.ok(!primary.exited && !backup.exited, context('both run on'));
    assert.doesNotMatch(primary.stderr, /^\s+at |AssertionError|TypeError|RangeError/m, context(primary.tail()));
  } finally {
    backup?.killGroup();
    primary.killGroup();
    fs.rmSync(directory, { recursive: true, force: true });
  }
});

/** Serves `bytes` to the first backup that connects to `server`, then hangs up once it has said hello. */
function servePrimary(server: net.Server, bytes: Uint8Array, prng: Prng, keepOpen: boolean): Promise<void> {
  return new Promise((resolve) => {
    server.once('connection', (socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        // The backup said hello: the fake primary answers with its stream.
        void writeInPieces(socket, bytes, prng).then(() => {
          if (!keepOpen) socket.end();
          resolve();
        });
      });
    });
  });
}

test('fuzz: a live backup served hostile streams by a fake primary ends each time with a reason, never a crash or a stall', { timeout: 300_000 }, async () => {
  const prng = new Prng(seed + 2);
  const { directory, image, elf } = smallWorkload('peer-fuzz-backup');
  const machineArgs = (disk: string, arbiter: string): string[] => ['--kernel', elf, '--disk', disk, '--arbiter', arbiter, '--digest-every', '2'];
  // A real primary's stream: its welcome, its state, its first entries and digests.
  const port = await freePort();
  const primary = new CliProcess(['primary', '--listen', `127.0.0.1:${port}`, '--wait-for-backup', ...machineArgs(image, path.join(directory, 'arbiter')), ...patient], { timeoutMs: 120_000 });
  let frames: Uint8Array[];
  try {
    await primary.waitFor('stderr', /listening on/, 20_000);
    const hello = await recordHello([...machineArgs(image, path.join(directory, 'arbiter')), '--connect-timeout', '5000']);
    frames = await recordPrimary(port, hello, 12);
  } finally {
    primary.killGroup();
  }
  assert.ok(frames.some((frame) => decodeFrame(frame).type === 'digest'), 'the recording holds digests');
  try {
    for (let i = 0; i < cases; i++) {
      const fuzz = prng.chance(0.15) ? randomBytes(prng) : hostileStream(frames, prng, 'a primary\'s frames');
      const caseDirectory = path.join(directory, `case-${i}`);
      fs.mkdirSync(caseDirectory);
      const disk = path.join(caseDirectory, 'disk.img');
      createBlankDiskImage(disk, smallShape);
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const fakePort = (server.address() as net.AddressInfo).port;
      // Half the time the fake primary stays connected but silent after its stream.
      const served = servePrimary(server, fuzz.bytes, prng, prng.chance(0.5));
      const result = await runCli(
        ['backup', '--connect', `127.0.0.1:${fakePort}`, ...machineArgs(disk, path.join(caseDirectory, 'arbiter')), '--insecure', '--failure-timeout', '1000', '--join-timeout', '2000'],
        90_000,
      );
      await served;
      server.close();
      const what = context(`case ${i} (${fuzz.description})\n${describeResult(result)}`);
      assert.notEqual(result.status, null, `ended on its own, not killed: ${what}`);
      assert.doesNotMatch(result.stderr, /^\s+at |AssertionError|TypeError|RangeError|Uncaught/m, `no crash: ${what}`);
      // Either it said why it stopped, or it took over from the primary it thought failed and ran the guest.
      const reason = /^understudy( backup)?: (.+)/m.exec(result.stderr);
      assert.ok(reason !== null || result.status === 0, `a reason: ${what}`);
      console.log(`case ${i}: ${fuzz.description} -> status ${result.status}: ${reason?.[2] ?? 'the guest finished'}`);
    }
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
});
