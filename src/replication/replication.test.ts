/**
 * Unit tests of the protocol core with an in-memory link: the environment's record/replay
 * checks (P0/P6), divergence reported and never absorbed, acknowledgements gating output
 * (the output rule), and a backup refused for another image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Machine } from '../machine/board.js';
import type { DiskRequest } from '../machine/environment.js';
import { asm, li } from '../machine/cpu/encode.js';
import { Csr } from '../machine/cpu/csr.js';
import { ramBaseAddress } from '../machine/memory/ram.js';
import { DivergenceError, ReplicaEnvironment } from './environment.js';
import type { EnvironmentPort } from '../machine/environment.js';
import { decodeFrame, encodeMessage, type Message, type ReplicaIdentity } from './messages.js';
import { PrimaryReplica } from './primary.js';
import { BackupReplica } from './backup.js';
import { defaultReplicationOptions, type ReplicaIo, type ReplicationOptions } from './replica.js';

/** A clock whose mtime the test sets. */
class TestClock implements EnvironmentPort {
  mtime = 1000n;
  read(kind: 'mtime' | 'wall-clock-ns'): bigint {
    return kind === 'mtime' ? this.mtime : 1_700_000_000_000_000_000n;
  }
}

test('record: values come from the live clock and are logged with their instruction counts', () => {
  const clock = new TestClock();
  const environment = new ReplicaEnvironment(clock);
  environment.beginRecording();
  assert.equal(environment.read('mtime', 10), 1000n);
  clock.mtime = 1500n;
  assert.equal(environment.read('mtime', 20), 1500n);
  clock.mtime = 1200n; // a host clock that stepped back: the guest must not see it
  assert.equal(environment.read('mtime', 30), 1500n);
  assert.deepEqual(environment.takeRecorded(), [
    { retired: 10, kind: 'mtime', value: 1000n },
    { retired: 20, kind: 'mtime', value: 1500n },
    { retired: 30, kind: 'mtime', value: 1500n },
  ]);
});

test('replay: the same count and kind get the logged value; anything else is divergence', () => {
  const environment = new ReplicaEnvironment(new TestClock());
  const log = [
    { retired: 5, kind: 'mtime' as const, value: 42n },
    { retired: 9, kind: 'wall-clock-ns' as const, value: 7n },
  ];
  environment.beginReplay(3, log);
  assert.equal(environment.read('mtime', 5), 42n);
  assert.equal(environment.read('wall-clock-ns', 9), 7n);
  environment.endReplay();

  environment.beginReplay(4, log);
  assert.throws(() => environment.read('mtime', 6), (error: unknown) => error instanceof DivergenceError && /epoch 4.*instruction 6.*instruction 5/.test(error.message));
  environment.beginReplay(4, log);
  assert.throws(() => environment.read('wall-clock-ns', 5), DivergenceError);
  environment.beginReplay(4, log);
  environment.read('mtime', 5);
  assert.throws(() => environment.endReplay(), /1 environment values were not used/);
  environment.beginReplay(5, []);
  assert.throws(() => environment.read('mtime', 1), /no more values/);
});

test('after a failover the new clock continues from the last value the machine saw', () => {
  const environment = new ReplicaEnvironment(new TestClock());
  environment.beginReplay(1, [{ retired: 1, kind: 'mtime', value: 900_000n }]);
  environment.read('mtime', 1);
  environment.endReplay();
  environment.noteClock(950_000n);
  const ahead = new TestClock();
  ahead.mtime = 5_000_000n; // another host's clock, far ahead
  environment.goLive(ahead, 2);
  environment.beginRecording();
  assert.equal(environment.read('mtime', 3), 950_000n, 'no jump ahead');
  ahead.mtime += 100n;
  assert.equal(environment.read('mtime', 4), 950_100n);
});

// --- a primary and a backup on an in-memory link -------------------------------------------

/** A guest that reads the time CSR in a loop and prints a byte from time to time. */
function program(): number[] {
  return [
    ...li(5, 0x1000_0000), // UART
    asm.csrrs(6, Csr.time, 0),
    asm.addi(7, 7, 1),
    asm.andi(8, 7, 255),
    asm.bne(8, 0, 12),
    asm.addi(9, 0, 0x2e), // '.'
    asm.sb(9, 5, 0),
    asm.jal(0, -24),
  ];
}

interface Side {
  readonly io: ReplicaIo & { outbox: Message[]; console: number[]; disk: DiskRequest[] };
  readonly environment: ReplicaEnvironment;
}

function side(now: () => number): Side {
  const io = {
    outbox: [] as Message[],
    console: [] as number[],
    disk: [] as DiskRequest[],
    nowMs: now,
    send(message: Message): number {
      const frame = encodeMessage(message);
      io.outbox.push(decodeFrame(frame)); // through the real framing
      return frame.length;
    },
    consoleWrite(bytes: Uint8Array): void {
      io.console.push(...bytes);
    },
    diskSubmit(request: DiskRequest): void {
      io.disk.push(request);
    },
    /** Frames waiting to arrive from the network, and frames sent to it (by slot). */
    netIn: [] as Uint8Array[],
    netOut: [] as { slot: number; frame: Uint8Array; epoch: number }[],
    linkUp: true,
    networkSend(slot: number, frame: Uint8Array, epoch: number): void {
      io.netOut.push({ slot, frame, epoch });
    },
    takeNetworkFrames(_slot: number, maxFrames: number): Uint8Array[] {
      return io.netIn.splice(0, maxFrames);
    },
    networkInputWaiting: (): boolean => io.netIn.length > 0,
    networkLinkUp: (): boolean => io.linkUp,
    networkBacklogged: false,
    takeConsoleInput: () => new Uint8Array(0),
    consoleInputWaiting: false,
    consoleBacklogged: false,
    tryGoLive: () => true,
    crashPoint: () => {},
    epochDone: () => {},
    log: () => {},
  };
  return { io, environment: new ReplicaEnvironment(new TestClock()) };
}

const identity: ReplicaIdentity = { configKey: 'test', imageDigest: 'image-a', optionsKey: 'epoch=2000' };
const options: ReplicationOptions = { ...defaultReplicationOptions, epochInstructions: 2000 };

function machineWith(environment: ReplicaEnvironment): Machine {
  const machine = new Machine({ ramBytes: 1 << 20, disks: [] }, environment);
  program().forEach((word, index) => (machine.ram.i32[index] = word));
  machine.hart.reset(ramBaseAddress);
  return machine;
}

function pair(): { primary: PrimaryReplica; backup: BackupReplica; p: Side; b: Side; clock: { now: number } } {
  const clock = { now: 0 };
  const p = side(() => clock.now);
  const b = side(() => clock.now);
  const boot = (): Machine => machineWith(p.environment);
  const primary = new PrimaryReplica(boot(), p.environment, p.io, options, identity, boot, { epoch: 0, generation: 1, role: 'waiting', clusterId: 'test' });
  const backup = new BackupReplica(() => new Machine({ ramBytes: 1 << 20, disks: [] }, b.environment), b.environment, new TestClock(), b.io, options, identity, () => machineWith(b.environment));
  return { primary, backup, p, b, clock };
}

/** Delivers everything queued both ways, as often as it takes. */
function pump(primary: PrimaryReplica, backup: BackupReplica, p: Side, b: Side, tamper?: (message: Message) => Message): void {
  for (let round = 0; round < 100 && (p.io.outbox.length > 0 || b.io.outbox.length > 0); round++) {
    for (const message of b.io.outbox.splice(0)) {
      if (message.type === 'hello') primary.onHello(message.identity);
      else primary.onMessage(message);
    }
    for (const message of p.io.outbox.splice(0)) backup.onMessage(tamper === undefined ? message : tamper(message));
  }
}

test('outputs wait for the backup: nothing reaches the world before its epoch is acknowledged', () => {
  const { primary, backup, p, b } = pair();
  backup.sayHello();
  pump(primary, backup, p, b);
  for (let i = 0; i < 5; i++) assert.equal(primary.step().kind, 'progress');
  const afterFive = primary.currentMachine.digest();
  assert.deepEqual(p.io.console, [], 'no acknowledgement has been delivered yet');
  const withheld = p.io.outbox.length;
  assert.ok(withheld >= 5);
  pump(primary, backup, p, b);
  primary.step();
  assert.ok(p.io.console.length > 0, 'released after the acknowledgements');
  for (let i = 0; i < 5; i++) backup.step();
  assert.equal(backup.status().epoch, 5, 'the backup replayed the five epochs');
  assert.equal(backup.currentMachine!.digest(), afterFive, 'the backup is where the primary was after epoch 5');
});

test('divergence is reported, never absorbed: a tampered log stops the backup with status 5', () => {
  const { primary, backup, p, b } = pair();
  backup.sayHello();
  pump(primary, backup, p, b);
  for (let i = 0; i < 3; i++) primary.step();
  pump(primary, backup, p, b, (message) =>
    message.type === 'epoch' && message.entry.epoch === 2 && message.entry.reads.length > 0
      ? { ...message, entry: { ...message.entry, reads: [{ ...message.entry.reads[0]!, retired: message.entry.reads[0]!.retired + 1 }, ...message.entry.reads.slice(1)] } }
      : message,
  );
  let result = backup.step();
  for (let i = 0; i < 5 && result.kind !== 'finished'; i++) result = backup.step();
  assert.equal(result.kind, 'finished');
  assert.equal(result.kind === 'finished' ? result.end.kind : undefined, 'divergence');
  assert.match(result.kind === 'finished' ? result.reason : '', /divergence: epoch 2/);
});

test('a backup with another guest image is refused with the reason, and the primary waits on', () => {
  const { primary, p } = pair();
  assert.equal(primary.onHello({ ...identity, imageDigest: 'image-b' }), false);
  const reject = p.io.outbox.find((message) => message.type === 'reject');
  assert.ok(reject !== undefined && reject.type === 'reject' && reject.code === 'image' && /different guest image/.test(reject.reason));
  assert.equal(primary.currentRole, 'waiting');
  assert.equal(primary.onHello(identity), true, 'a matching backup is still welcome');
});
