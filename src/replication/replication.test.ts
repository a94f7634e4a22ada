/**
 * Unit tests of the protocol core with an in-memory link: the environment's record/replay
 * checks (P0/P6), divergence reported and never absorbed, acknowledgements gating output
 * (the output rule), and a backup refused for another image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BoardMap, Machine } from '../machine/board.js';
import type { DiskReadRequest, DiskRequest, MachineEvent } from '../machine/environment.js';
import { asm, li } from '../machine/cpu/encode.js';
import { Csr } from '../machine/cpu/csr.js';
import { ramBaseAddress } from '../machine/memory/ram.js';
import type { RunResult } from '../machine/cpu/cpu.js';

const base = ramBaseAddress;
import { DivergenceError, ReplicaEnvironment } from './environment.js';
import type { EnvironmentPort } from '../machine/environment.js';
import { decodeFrame, diskReadBytes, diskReadOf, encodeMessage, eventWireBytes, frameHeaderBytes, readingWireBytes, type Message, type ReplicaIdentity } from './messages.js';
import { consoleInputPerEntryBytesMax, epochEntryBytesDefault, epochEntryBytesMin } from './entry-budget.js';
import { environmentReadsPerInstructionMax } from '../machine/environment.js';
import { PrimaryReplica } from './primary.js';
import { BackupReplica } from './backup.js';
import {
  backupQueueEpochsLimit, backupQueueEpochsMax, defaultReplicationOptions, digestDue, epochMergeChunkInstructions, epochMergeHostMs, epochMergeMax, epochMergeQuietChunkInstructions, epochMergeQuietHostMs, epochMergeLookMs, epochInstructionsMax, epochInstructionsMin, nextEpochStart, pendingEpochsMax, quietAfterMs, stepInstructionsMin,
  type ArbiterAnswer, type ArbiterRecord, type ReplicaIo, type ReplicationOptions,
} from './replica.js';

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
  environment.beginReplay(log);
  assert.equal(environment.read('mtime', 5), 42n);
  assert.equal(environment.read('wall-clock-ns', 9), 7n);
  environment.endReplay();

  environment.beginReplay(log);
  assert.throws(() => environment.read('mtime', 6), (error: unknown) => error instanceof DivergenceError && /instruction 6.*instruction 5/.test(error.message));
  environment.beginReplay(log);
  assert.throws(() => environment.read('wall-clock-ns', 5), DivergenceError);
  environment.beginReplay(log);
  environment.read('mtime', 5);
  assert.throws(() => environment.endReplay(), /1 environment values were not used/);
  environment.beginReplay([]);
  assert.throws(() => environment.read('mtime', 1), /no more values/);
});

test('disk reads answered at once: the reader answers or declines, the reading says which, and a replay gives the same', () => {
  const environment = new ReplicaEnvironment(new TestClock());
  const read = (offsetBytes: number, lengthBytes = 1024, slot = 3): DiskReadRequest => ({ op: 'read', slot, requestId: offsetBytes, offsetBytes, lengthBytes });
  const data = Uint8Array.from({ length: 1024 }, (_, i) => i & 0xff);
  environment.beginRecording();
  assert.equal(environment.readDisk(read(512), 4), undefined, 'no reader: every read declined');
  environment.answerDiskReads((request) => (request.offsetBytes === 0 ? undefined : data));
  assert.equal(environment.readDisk(read(4096), 7), data);
  assert.equal(environment.readDisk(read(0), 7), undefined);
  const log = environment.takeRecorded();
  assert.deepEqual(log.map((reading) => ({ retired: reading.retired, kind: reading.kind, ...diskReadOf(reading.value) })), [
    { retired: 4, kind: 'disk-read', slot: 3, offsetBytes: 512, lengthBytes: 1024, answered: false },
    { retired: 7, kind: 'disk-read', slot: 3, offsetBytes: 4096, lengthBytes: 1024, answered: true },
    { retired: 7, kind: 'disk-read', slot: 3, offsetBytes: 0, lengthBytes: 1024, answered: false },
  ]);
  assert.equal(diskReadBytes(log), 1024);

  const copy = data.slice();
  environment.beginReplay(log, [copy]);
  assert.equal(environment.readDisk(read(512), 4), undefined);
  assert.equal(environment.readDisk(read(4096), 7), copy);
  assert.equal(environment.readDisk(read(0), 7), undefined);
  environment.endReplay();
  // Another read than the primary's, or at another count, or with no data for it: divergence.
  environment.beginReplay(log, [copy]);
  assert.throws(() => environment.readDisk(read(1024), 4), (error: unknown) => error instanceof DivergenceError && /1024 bytes at 1024 of disk 3.*1024 bytes at 512/.test(error.message));
  environment.beginReplay(log, [copy]);
  assert.throws(() => environment.readDisk(read(512, 1024, 4), 4), DivergenceError);
  environment.beginReplay(log, [copy]);
  assert.throws(() => environment.read('mtime', 4), /the primary read disk-read/);
  environment.beginReplay(log, []);
  environment.readDisk(read(512), 4);
  assert.throws(() => environment.readDisk(read(4096), 7), /no data of 1024 bytes/);
});

test('after a failover the new clock continues from the last value the machine saw', () => {
  const environment = new ReplicaEnvironment(new TestClock());
  environment.beginReplay([{ retired: 1, kind: 'mtime', value: 900_000n }]);
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
  readonly io: ReplicaIo & { outbox: Message[]; console: number[]; disk: DiskRequest[]; sharedDisk: Uint8Array | undefined };
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
    takeDiskCompletions: (): MachineEvent[] => [],
    /** The shared disk a backup reads from (none: its reads fail). */
    sharedDisk: undefined as Uint8Array | undefined,
    readSharedDisk(_slot: number, offsetBytes: number, lengthBytes: number): Uint8Array | { error: string } {
      return io.sharedDisk?.slice(offsetBytes, offsetBytes + lengthBytes) ?? { error: 'no shared disk in this test' };
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
    tryGoLive: (): ArbiterAnswer => ({ won: true }),
    disconnect: () => {},
    crashPoint: () => {},
    epochDone: () => {},
    log: () => {},
  };
  return { io, environment: new ReplicaEnvironment(new TestClock()) };
}

const identity: ReplicaIdentity = { configKey: 'test', imageDigest: 'image-a', optionsKey: 'epoch=2000', replicaId: 'test-primary' };
const backupIdentity: ReplicaIdentity = { ...identity, replicaId: 'test-backup' };
const options: ReplicationOptions = { ...defaultReplicationOptions, epochInstructions: 2000 };

function machineWith(environment: ReplicaEnvironment, words: readonly number[] = program()): Machine {
  const machine = new Machine({ ramBytes: 1 << 20, disks: [] }, environment);
  words.forEach((word, index) => (machine.ram.i32[index] = word));
  machine.ram.noteWritten(0, words.length * 4); // as a loader does
  machine.hart.reset(ramBaseAddress);
  return machine;
}

function pair(
  settings: { options?: ReplicationOptions; program?: readonly number[] } = {},
): { primary: PrimaryReplica; backup: BackupReplica; p: Side; b: Side; clock: { now: number } } {
  const clock = { now: 0 };
  const p = side(() => clock.now);
  const b = side(() => clock.now);
  const chosen = settings.options ?? options;
  const boot = (): Machine => machineWith(p.environment, settings.program);
  const primary = new PrimaryReplica(boot(), p.environment, p.io, chosen, identity, boot, { epoch: 0, generation: 1, role: 'waiting', clusterId: 'test' });
  const backup = new BackupReplica(
    () => new Machine({ ramBytes: 1 << 20, disks: [] }, b.environment), b.environment, new TestClock(), b.io, chosen, backupIdentity,
    () => machineWith(b.environment, settings.program),
  );
  return { primary, backup, p, b, clock };
}

/** Delivers everything queued both ways, as often as it takes. */
function pump(primary: PrimaryReplica, backup: BackupReplica, p: Side, b: Side, tamper?: (message: Message) => Message): void {
  for (let round = 0; round < 100 && (p.io.outbox.length > 0 || b.io.outbox.length > 0); round++) {
    for (const message of b.io.outbox.splice(0)) {
      if (message.type === 'hello') primary.onHello(message.identity, 1);
      else primary.onMessage(message, 1);
    }
    for (const message of p.io.outbox.splice(0)) backup.onMessage(tamper === undefined ? message : tamper(message), encodeMessage(message).length);
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
  assert.match(result.kind === 'finished' ? result.reason : '', /divergence at epoch 2: the machine read mtime at instruction \d+; the primary read mtime at instruction \d+/);
});

test("a shared read the backup cannot make, or that names no read its machine issued, stops it (divergence): it could not replay the epoch", () => {
  for (const disk of [undefined, new Uint8Array(4096)]) {
    const { primary, backup, p, b } = pair();
    b.io.sharedDisk = disk;
    backup.sayHello();
    pump(primary, backup, p, b);
    for (let i = 0; i < 3; i++) primary.step();
    pump(primary, backup, p, b, (message) =>
      message.type === 'epoch' && message.entry.epoch === 2
        ? { ...message, entry: { ...message.entry, events: [{ kind: 'disk-completion', slot: 7, requestId: 99, status: 'ok' }, ...message.entry.events], sharedReads: [{ event: 0, offsetBytes: 512, lengthBytes: 512 }] } }
        : message,
    );
    let result = backup.step();
    for (let i = 0; i < 5 && result.kind !== 'finished'; i++) result = backup.step();
    assert.equal(result.kind === 'finished' ? result.end.kind : result.kind, 'divergence');
    const reason = result.kind === 'finished' ? result.reason : '';
    if (disk === undefined) assert.match(reason, /divergence at epoch 2: cannot read the 512 bytes at 512 of the shared disk on virtio slot 7 that the primary read: no shared disk in this test/);
    else assert.match(reason, /divergence at epoch 2: the primary's shared read of 512 bytes at 512 is not a read this machine has in flight/);
  }
});

test('a backup with another guest image is refused with the reason, and the primary waits on', () => {
  const { primary, p } = pair();
  assert.equal(primary.onHello({ ...backupIdentity, imageDigest: 'image-b' }, 1), false);
  const reject = p.io.outbox.find((message) => message.type === 'reject');
  assert.ok(reject !== undefined && reject.type === 'reject' && reject.code === 'image' && /different guest image/.test(reject.reason));
  assert.equal(primary.currentRole, 'waiting');
  assert.equal(primary.onHello(backupIdentity, 1), true, 'a matching backup is still welcome');
});

test('a primary whose guest has ended refuses a backup: it would follow a machine nobody runs', () => {
  const clock = { now: 0 };
  const p = side(() => clock.now);
  const powerOff = [...li(5, 0x10_0000), ...li(6, 0x5555), asm.sw(6, 5, 0), asm.jal(0, 0)];
  const boot = (): Machine => machineWith(p.environment, powerOff);
  const primary = new PrimaryReplica(boot(), p.environment, p.io, options, identity, boot, { epoch: 0, generation: 1, role: 'solo', clusterId: 'test' });
  let result = primary.step();
  for (let i = 0; i < 10 && result.kind !== 'finished'; i++) result = primary.step();
  assert.equal(result.kind === 'finished' ? result.end.kind : result.kind, 'guest');
  assert.equal(primary.onHello(backupIdentity, 1), false);
  const reject = p.io.outbox.find((message) => message.type === 'reject');
  assert.ok(reject?.type === 'reject' && reject.code === 'busy' && reject.reason === 'this primary has stopped', JSON.stringify(reject));
  assert.equal(p.io.outbox.some((message) => message.type === 'welcome' || message.type === 'state'), false, 'no state is sent');
});

/** The live copy tests' machine: 16 MiB of RAM, `program` at its start, pages 1024-4095 each filled with its number. */
const copyTestRamBytes = 16 << 20;
function copyTestMachine(environment: ReplicaEnvironment, program: readonly number[]): Machine {
  const machine = new Machine({ ramBytes: copyTestRamBytes, disks: [] }, environment);
  program.forEach((word, index) => (machine.ram.i32[index] = word));
  for (let page = 1024; page < 4096; page++) machine.ram.i32.fill(page, page * 1024, page * 1024 + 1024);
  machine.ram.noteWritten(0, 4096 * 4096); // as a loader does
  machine.hart.reset(ramBaseAddress);
  return machine;
}

for (const { pages, what } of [
  { pages: 128, what: 'the pages written meanwhile are few' },
  { pages: 2048, what: 'pages are written as fast as they are copied: the rounds stop, the final part is bounded' },
]) {
  test(`a backup joins a running guest by a live copy (${what}): both machines are identical`, () => {
    const clock = { now: 0 };
    const p = side(() => clock.now);
    const b = side(() => clock.now);
    const logs: string[] = [];
    p.io.log = (line: string): void => void logs.push(line);
    // Stores a counter into one of `pages` pages in turn, forever.
    const scribbler = [
      ...li(5, base + 0x1_0000),
      asm.addi(6, 6, 1), asm.andi(7, 6, pages - 1), asm.slli(7, 7, 12), asm.add(7, 7, 5), asm.andi(8, 6, 0x3fc), asm.add(7, 7, 8), asm.sw(6, 7, 0),
      asm.jal(0, -28),
    ];
    // 16 MiB of RAM, 12 MiB of it not zero: the copy's first round takes several steps.
    const ramBytes = copyTestRamBytes;
    const boot = (environment: ReplicaEnvironment): Machine => copyTestMachine(environment, scribbler);
    const primary = new PrimaryReplica(boot(p.environment), p.environment, p.io, options, identity, () => boot(p.environment), { epoch: 0, generation: 1, role: 'solo', clusterId: 'test' });
    const backup = new BackupReplica(() => new Machine({ ramBytes, disks: [] }, b.environment), b.environment, new TestClock(), b.io, options, backupIdentity, () => boot(b.environment));
    for (let i = 0; i < 20; i++) primary.step();
    const fullStateBytes = primary.currentMachine.save().length;

    backup.sayHello();
    // A device writes zeros over a page the copy will send: it must arrive as zeros.
    const zeroed = 2000;
    const seen: Message['type'][] = [];
    const deliver = (): void => {
      for (let round = 0; round < 100 && (p.io.outbox.length > 0 || b.io.outbox.length > 0); round++) {
        for (const message of b.io.outbox.splice(0)) {
          if (message.type === 'hello') primary.onHello(message.identity, 1);
          else primary.onMessage(message, 1);
        }
        for (const message of p.io.outbox.splice(0)) {
          seen.push(message.type);
          if (message.type === 'state') assert.ok(message.bytes.length < fullStateBytes / 8, `the final state (${message.bytes.length} bytes) is a fraction of the whole (${fullStateBytes})`);
          backup.onMessage(message, encodeMessage(message).length);
        }
      }
    };
    deliver();
    primary.currentMachine.ram.writeBytes(base + zeroed * 4096, new Uint8Array(4096));
    const epochAtHello = primary.status().epoch;
    let steps = 0;
    while (primary.status().role !== 'primary') {
      assert.ok(++steps < 100, 'the join completes');
      primary.step(); // a batch of pages, then an epoch of the guest
      deliver();
    }
    assert.ok(primary.status().epoch - epochAtHello >= 8, `the guest ran during the copy (${primary.status().epoch - epochAtHello} epochs)`);
    assert.ok(seen.indexOf('pages') < seen.indexOf('state'), `pages first, then the state: ${seen.join(' ')}`);
    assert.equal(backup.currentRole, 'following');
    // The step that ended the join ran an epoch after it, protected: the backup replays it.
    while (backup.status().epoch < primary.status().epoch) assert.equal(backup.step().kind, 'progress');
    assert.equal(backup.currentMachine!.digest(), primary.currentMachine.digest(), "the backup loaded exactly the primary's machine");
    assert.equal(backup.currentMachine!.ram.i32[zeroed * 1024], 0);
    assert.equal(backup.currentMachine!.ram.i32[(zeroed + 1) * 1024], zeroed + 1);

    for (let i = 0; i < 5; i++) primary.step();
    const after = primary.currentMachine.digest();
    deliver();
    for (let steps = 0; steps < 200 && backup.status().epoch < primary.status().epoch; steps++) backup.step();
    assert.equal(backup.currentMachine!.digest(), after, 'and follows it exactly');
    const joined = logs.find((line) => line.startsWith('backup joined'));
    const final = /in (\d+) round\(s\).*then (\d+) pages/.exec(joined ?? '');
    assert.ok(final !== null, logs.join('\n'));
    if (pages === 128) assert.ok(Number(final[2]) <= 256, joined);
    else assert.ok(Number(final[1]) >= 2 && Number(final[2]) > 256, joined);
  });
}

test('a guest that reboots during a live copy: the joining backup gets the whole new machine', () => {
  const clock = { now: 0 };
  const p = side(() => clock.now);
  const b = side(() => clock.now);
  // Counts to 3000, then asks the test device for a reset; the reboot runs the same again.
  const rebooter = [...li(5, 0x10_0000), ...li(6, 0x7777), ...li(8, 3000), asm.addi(7, 7, 1), asm.bne(7, 8, -4), asm.sw(6, 5, 0), asm.jal(0, 0)];
  const ramBytes = copyTestRamBytes;
  const boot = (environment: ReplicaEnvironment): Machine => copyTestMachine(environment, rebooter);
  const logs: string[] = [];
  p.io.log = (line: string): void => void logs.push(line);
  const primary = new PrimaryReplica(boot(p.environment), p.environment, p.io, options, identity, () => boot(p.environment), { epoch: 0, generation: 1, role: 'solo', clusterId: 'test' });
  const backup = new BackupReplica(() => new Machine({ ramBytes, disks: [] }, b.environment), b.environment, new TestClock(), b.io, options, backupIdentity, () => boot(b.environment));
  primary.step();
  backup.sayHello();
  for (let steps = 0; primary.status().role !== 'primary'; steps++) {
    assert.ok(steps < 100, 'the join completes');
    pump(primary, backup, p, b);
    primary.step();
  }
  assert.ok(logs.some((line) => /backup joined at epoch \d+ \(state: \d+ bytes/.test(line)), `the whole state after the reboot:\n${logs.join('\n')}`);
  for (let i = 0; i < 6; i++) primary.step(); // through another reboot
  const after = primary.currentMachine.digest();
  pump(primary, backup, p, b);
  while (backup.status().epoch < primary.status().epoch) assert.equal(backup.step().kind, 'progress');
  assert.equal(backup.currentMachine!.digest(), after);
});

test('a joining backup that goes away leaves the primary running alone, ready for the next', () => {
  const clock = { now: 0 };
  const p = side(() => clock.now);
  const boot = (): Machine => machineWith(p.environment);
  const primary = new PrimaryReplica(boot(), p.environment, p.io, options, identity, boot, { epoch: 0, generation: 1, role: 'solo', clusterId: 'test' });
  primary.step();
  assert.equal(primary.onHello(backupIdentity, 1), true);
  assert.equal(primary.onHello(backupIdentity, 1), false, 'one join at a time');
  primary.onDisconnect('closed', 1);
  for (let i = 0; i < 3; i++) primary.step();
  assert.equal(primary.status().role, 'solo');
  p.io.outbox.length = 0;
  assert.equal(primary.onHello(backupIdentity, 1), true, 'the next backup is welcome');
  assert.equal(p.io.outbox[0]?.type, 'welcome');
  // Silence beyond the join timeout ends the copy too.
  clock.now += options.joinTimeoutMs + 1;
  primary.step();
  assert.equal(primary.onHello(backupIdentity, 1), true, 'the copy was given up: another may join');
});

test('lag control: a backup that falls behind slows the guest, gradually, until it has caught up', () => {
  const clock = { now: 0 };
  let backupNow = 0;
  const p = side(() => clock.now);
  const b = side(() => (backupNow += 4)); // each reading of the backup's clock: 4 ms later (a slow host)
  const chosen: ReplicationOptions = { ...options, catchUpBoundMs: 200 };
  const logs: string[] = [];
  p.io.log = (line: string): void => void logs.push(line);
  const primary = new PrimaryReplica(machineWith(p.environment), p.environment, p.io, chosen, identity, () => machineWith(p.environment), { epoch: 0, generation: 1, role: 'waiting', clusterId: 'test' });
  const backup = new BackupReplica(() => new Machine({ ramBytes: 1 << 20, disks: [] }, b.environment), b.environment, new TestClock(), b.io, chosen, backupIdentity, () => machineWith(b.environment));
  backup.sayHello();
  pump(primary, backup, p, b);
  // The backup keeps up at first: its replay rate is learnt.
  for (let i = 0; i < 40; i++) {
    primary.step();
    pump(primary, backup, p, b);
    backup.step();
  }
  assert.equal(primary.status().slowedMs, 0);
  // Then it stops replaying (its host is busy): its queue, and its catch-up time, grow.
  let slowedAt: number | undefined;
  for (let i = 0; i < 400 && slowedAt === undefined; i++) {
    clock.now += 1;
    primary.step();
    pump(primary, backup, p, b);
    if ((primary.status().slowedMs ?? 0) > 0) slowedAt = i;
  }
  assert.ok(slowedAt !== undefined, 'the primary slowed the guest');
  assert.ok(logs.some((line) => /the backup is \d+ ms behind \(the bound is 200 ms\): slowing the guest/.test(line)), logs.join('\n'));
  const result = primary.step();
  assert.equal(result.kind, 'blocked', 'the guest pauses after an epoch');
  assert.ok(result.kind === 'blocked' && result.untilMs !== undefined && result.untilMs > clock.now);
  // Gradually: more, report by report, while the backup stays behind.
  const first = primary.status().slowedMs!;
  for (let i = 0; i < 20; i++) {
    clock.now += 250;
    primary.step();
    pump(primary, backup, p, b);
  }
  assert.ok(primary.status().slowedMs! > first, `${primary.status().slowedMs} > ${first}`);
  // The backup catches up: the guest runs at full speed again.
  while (backup.status().lagEpochs > 0) backup.step();
  for (let i = 0; i < 40 && primary.status().slowedMs! > 0; i++) {
    clock.now += 250;
    primary.step();
    pump(primary, backup, p, b);
    backup.step();
  }
  assert.equal(primary.status().slowedMs, 0);
  assert.ok(logs.some((line) => /the backup has caught up/.test(line)), logs.join('\n'));
});

test('a frame arriving slowly is not silence: bytes of it keep the backup from taking over', () => {
  const { primary, backup, p, b, clock } = pair();
  backup.sayHello();
  pump(primary, backup, p, b);
  primary.step();
  pump(primary, backup, p, b);
  backup.step();
  // Long past the failure timeout, but bytes of a large frame kept arriving.
  for (let elapsed = 0; elapsed < options.failureTimeoutMs * 3; elapsed += options.failureTimeoutMs / 2) {
    clock.now += options.failureTimeoutMs / 2;
    backup.onActivity();
    const result = backup.step();
    assert.equal(result.kind, 'blocked', `no failover while bytes arrive (${clock.now} ms)`);
  }
  // Then nothing at all: now it is silence.
  clock.now += options.failureTimeoutMs + 1;
  backup.step();
  assert.notEqual(backup.currentRole, 'following');
});

// --- bounded log entries and a bounded backup queue ----------------------------------------

/** Reads the time CSR in a tight loop, forever: a reading every three instructions. */
const rdtimeLoop = [asm.csrrs(5, Csr.time, 0), asm.addi(6, 6, 1), asm.jal(0, -8)];

for (const entryBytes of [undefined, epochEntryBytesMin, 3000]) {
  test(`a guest reading the clock in a tight loop: epochs end early, entries stay within ${entryBytes ?? 'the default'} bytes, the backup follows`, () => {
    const chosen: ReplicationOptions = { ...options, epochInstructions: epochInstructionsMax, ...(entryBytes === undefined ? {} : { epochEntryBytesMax: entryBytes }) };
    const { primary, backup, p, b } = pair({ options: chosen, program: rdtimeLoop });
    backup.sayHello();
    pump(primary, backup, p, b);
    const budget = entryBytes ?? epochEntryBytesDefault;
    let previousEnd = 0;
    // A step goes on from entry to entry (the boundaries deliver only the clock): each one full.
    for (let step = 1; step <= 2; step++) {
      assert.equal(primary.step().kind, 'progress');
      const sent = p.io.outbox.filter((message) => message.type === 'epoch');
      assert.ok(sent.length > 0);
      for (const entry of sent) {
        assert.ok(entry.type === 'epoch');
        const epoch = entry.entry.epoch;
        const bytes = encodeMessage(entry).length - frameHeaderBytes;
        assert.ok(bytes <= budget, `epoch ${epoch}: ${bytes} bytes, budget ${budget}`);
        // Filled: all but the room kept for console input (none came) and less than one instruction's readings.
        const unused = eventWireBytes({ kind: 'console-input', bytes: new Uint8Array(consoleInputPerEntryBytesMax) }) + environmentReadsPerInstructionMax * readingWireBytes;
        assert.ok(bytes >= budget - unused, `epoch ${epoch}: the readings filled the entry (${bytes} of ${budget} bytes)`);
        assert.equal(entry.entry.stop, 'budget');
        assert.ok(entry.entry.endRetired - previousEnd < epochInstructionsMax, 'the epoch ended early');
        previousEnd = entry.entry.endRetired;
      }
      pump(primary, backup, p, b);
      for (let steps = 0; steps <= sent.length && backup.status().epoch < primary.status().epoch; steps++) assert.equal(backup.step().kind, 'progress');
      assert.equal(backup.status().epoch, primary.status().epoch);
      assert.equal(backup.currentMachine!.digest(), primary.currentMachine.digest(), `step ${step}: the backup is where the primary is`);
    }
  });
}

test('a backup that falls behind defers its acknowledgements (still answering heartbeats); the primary pauses at its limit', () => {
  // Fixed epochs: one entry per step, so that the steps count the entries.
  const chosen: ReplicationOptions = { ...options, epochInstructions: epochInstructionsMin, fixedEpochs: true };
  const { primary, backup, p, b, clock } = pair({ options: chosen });
  backup.sayHello();
  pump(primary, backup, p, b);
  const acknowledged = (): number => Math.max(0, ...b.io.outbox.filter((message) => message.type === 'ack').map((message) => (message.type === 'ack' ? message.epoch : 0)));
  // The backup receives but does not execute (it is slow): its queue fills.
  let steps = 0;
  while (primary.step().kind === 'progress') {
    steps++;
    for (const message of p.io.outbox.splice(0)) backup.onMessage(message, encodeMessage(message).length);
    for (const message of b.io.outbox.splice(0)) primary.onMessage(message, 1);
    clock.now += 0.001;
    assert.ok(steps <= backupQueueEpochsMax + pendingEpochsMax, 'the primary never stops');
  }
  assert.equal(steps, backupQueueEpochsMax - 1 + pendingEpochsMax, 'the primary ran until its unacknowledged epochs reached its limit');
  assert.equal(backup.status().lagEpochs, steps, 'the backup holds every entry sent');
  // A heartbeat is answered with the last acknowledged epoch, not the last received.
  clock.now += chosen.heartbeatIntervalMs;
  primary.step();
  const heartbeat = p.io.outbox.find((message) => message.type === 'heartbeat');
  assert.ok(heartbeat !== undefined && heartbeat.type === 'heartbeat');
  backup.onMessage(heartbeat, 0);
  const answer = b.io.outbox.find((message) => message.type === 'ack' && message.heartbeat === heartbeat.sequence);
  assert.ok(answer !== undefined && answer.type === 'ack' && answer.epoch === backupQueueEpochsMax - 1, JSON.stringify(answer));
  // The backup catches up: the deferred acknowledgements go out, and the primary goes on.
  p.io.outbox.length = 0;
  b.io.outbox.length = 0;
  for (let i = 0; i < pendingEpochsMax - 1; i++) backup.step();
  assert.equal(acknowledged(), 0, 'no acknowledgement while the queue is still full');
  backup.step();
  assert.equal(acknowledged(), steps, 'with room again, the backup acknowledges everything it holds');
  pump(primary, backup, p, b);
  assert.equal(primary.step().kind, 'progress');
});

test('a primary that ignores the deferred acknowledgements overruns the backup: divergence, not unbounded memory', () => {
  const { primary, backup, p, b } = pair();
  backup.sayHello();
  pump(primary, backup, p, b);
  const entry = (epoch: number): Message => ({ type: 'epoch', entry: { epoch, endRetired: epoch * 2000, stop: 'budget', reads: [], events: [], releasedThrough: 0 } });
  let result = backup.step();
  for (let epoch = 1; epoch <= backupQueueEpochsLimit + 1; epoch++) backup.onMessage(entry(epoch), 64);
  result = backup.step();
  assert.equal(result.kind, 'finished');
  assert.equal(result.kind === 'finished' ? result.end.kind : undefined, 'divergence');
  assert.match(result.kind === 'finished' ? result.reason : '', /the primary sent 5121 entries .* beyond what this backup acknowledged/);
});

// --- state digests -------------------------------------------------------------------------

const corruptions: { what: string; corrupt: (machine: Machine) => void; report: RegExp }[] = [
  { what: 'a register', corrupt: (machine) => (machine.hart.x[20] = machine.hart.x[20]! + 1), report: /registers x20 \(primary 0x[0-9a-f]+, backup 0x[0-9a-f]+\); state of hart$/ },
  { what: 'a page', corrupt: (machine) => machine.ram.writeBytes(ramBaseAddress + 0x8_0000, Uint8Array.of(1)), report: /: the RAM page at 0x80080000$/ },
  { what: 'a device field', corrupt: (machine) => machine.bus.find(BoardMap.uart + 7)!.device.write(7, 1, 0x5a), report: /: state of uart$/ },
];

/** A guest that only computes: no reads, no outputs, nothing for a boundary to deliver. */
const computing = [asm.addi(7, 7, 1), asm.xor(8, 8, 7), asm.jal(0, -8)];

/** The entries the primary sent, in order. */
function entriesSent(side: Side): { epoch: number; endRetired: number }[] {
  return side.io.outbox.flatMap((message) => (message.type === 'epoch' ? [{ epoch: message.entry.epoch, endRetired: message.entry.endRetired }] : []));
}

test('a boundary with nothing to deliver is skipped: up to the cap, or the step\'s host time; anything waiting ends the epoch at the next boundary; --fixed-epochs keeps them all', () => {
  const epoch = options.epochInstructions;
  const joined = (settings: Parameters<typeof pair>[0]): ReturnType<typeof pair> => {
    const joinedPair = pair(settings);
    joinedPair.backup.sayHello();
    pump(joinedPair.primary, joinedPair.backup, joinedPair.p, joinedPair.b);
    joinedPair.p.io.outbox.length = 0;
    return joinedPair;
  };
  // Host time stands still: the cap decides. An entry holds at most epochMergeMax epochs, and
  // the step goes on from entry to entry up to stepInstructionsMin.
  const { primary, backup, p, b } = joined({ program: computing });
  primary.step();
  const cap = epochMergeMax * epoch;
  const perStep = Math.ceil(stepInstructionsMin / cap);
  assert.deepEqual(entriesSent(p), Array.from({ length: perStep }, (_, index) => ({ epoch: index + 1, endRetired: (index + 1) * cap })));
  // Console input waits (the UART has room): the next epoch ends at its first boundary, and
  // the step with it (it delivered more than the clock).
  const typing = p.io as { consoleInputWaiting: boolean; takeConsoleInput: (max: number) => Uint8Array };
  typing.consoleInputWaiting = true;
  typing.takeConsoleInput = (): Uint8Array => {
    typing.consoleInputWaiting = false;
    return Uint8Array.of(0x61);
  };
  primary.step();
  assert.deepEqual(entriesSent(p).slice(perStep), [{ epoch: perStep + 1, endRetired: perStep * cap + epoch }]);
  // The backup replays the merged epochs, and the next, to the primary's state.
  const after = primary.currentMachine.digest();
  pump(primary, backup, p, b);
  for (let steps = 0; steps < 3 * perStep && backup.status().epoch < perStep + 1; steps++) backup.step();
  assert.equal(backup.status().epoch, perStep + 1);
  assert.equal(backup.currentMachine!.digest(), after, 'the backup is where the primary was');

  // Host time passes (0.1 ms at each look): the step stops soon after epochMergeHostMs. Short
  // epochs go on several at a time between looks (epochMergeChunkInstructions), whole ones.
  const timed = joined({ program: computing });
  timed.clock.now = 10;
  timed.p.io.nowMs = (): number => (timed.clock.now += 0.1);
  timed.primary.step();
  const looks = Math.ceil(epochMergeHostMs / 0.1);
  const perLook = Math.max(1, Math.floor(epochMergeChunkInstructions / epoch)) * epoch;
  const end = entriesSent(timed.p)[0]!.endRetired;
  assert.ok(end <= epoch + looks * perLook, `ended after about ${looks} looks: ${end}`);
  assert.ok(end > (looks + 1) * epoch && end % epoch === 0, `several whole epochs between looks: ${end}`);

  // Once the guest has computed undisturbed for quietAfterMs (nothing but the clock delivered,
  // no output), a step lasts up to epochMergeQuietHostMs, in chunks of up to
  // epochMergeQuietChunkInstructions; the first input makes steps short again.
  const stepInstructions = (): number => {
    const before = timed.primary.currentMachine.retiredInstructions;
    timed.primary.step();
    return timed.primary.currentMachine.retiredInstructions - before;
  };
  while (timed.clock.now + 1 < 10 + quietAfterMs) assert.ok(stepInstructions() <= looks * perLook + epoch, 'short steps until the guest has been quiet a while');
  while (timed.clock.now < 11 + quietAfterMs) timed.primary.step();
  const quietLooks = Math.ceil(epochMergeQuietHostMs / 0.1);
  const quiet = stepInstructions();
  assert.ok(quiet > looks * perLook + epoch, `a quiet step runs longer than any short one: ${quiet}`);
  const quietPerLook = Math.floor(epochMergeQuietChunkInstructions / epoch) * epoch;
  assert.ok(quiet <= (quietLooks + 1) * quietPerLook, `within about ${quietLooks} looks: ${quiet}`);
  const typed = timed.p.io as { consoleInputWaiting: boolean; takeConsoleInput: (max: number) => Uint8Array };
  typed.consoleInputWaiting = true;
  typed.takeConsoleInput = (): Uint8Array => {
    typed.consoleInputWaiting = false;
    return Uint8Array.of(0x61);
  };
  timed.primary.step(); // the input is delivered at the first boundary
  assert.ok(!typed.consoleInputWaiting, 'the input was taken');
  assert.ok(stepInstructions() <= looks * perLook + epoch, 'short steps again after input');

  // A slow tier (host time passes with the instructions: a millisecond for 100K, the
  // interpreter's pace): a quiet step's chunks are what the last one ran in
  // epochMergeLookMs, not a million instructions (a timer's deadline waits no longer).
  const slow = joined({ program: computing });
  const slowMachine = slow.primary.currentMachine;
  const perMs = 100_000;
  slow.p.io.nowMs = (): number => 10 + slowMachine.retiredInstructions / perMs;
  while (slow.p.io.nowMs() < 11 + quietAfterMs) slow.primary.step();
  const budgets: number[] = [];
  const run = slowMachine.run.bind(slowMachine);
  slowMachine.run = (budget, readingsMax): RunResult => {
    budgets.push(budget);
    return run(budget, readingsMax);
  };
  const slowStart = slowMachine.retiredInstructions;
  slow.primary.step();
  const paced = Math.floor((perMs * epochMergeLookMs) / epoch) * epoch;
  assert.ok(slowMachine.retiredInstructions - slowStart > looks * perLook + epoch, 'a quiet step');
  assert.ok(budgets.length > 3 && budgets.every((budget) => budget <= paced) && budgets.filter((budget) => budget === paced).length > 3, `chunks of ${paced}: ${budgets.join(' ')}`);
  assert.equal(budgets[0], paced, 'the first chunk too: the pace is known from the last step, and nothing waits');

  // Fixed epochs, as in the paper: every boundary.
  const fixed = joined({ program: computing, options: { ...options, fixedEpochs: true } });
  fixed.primary.step();
  fixed.primary.step();
  assert.deepEqual(entriesSent(fixed.p), [{ epoch: 1, endRetired: epoch }, { epoch: 2, endRetired: 2 * epoch }]);
});

test('a backup refuses an entry longer than the cap of merged epochs: divergence', () => {
  const { primary, backup, p, b } = pair({ program: computing });
  backup.sayHello();
  pump(primary, backup, p, b);
  primary.step();
  const claim = epochMergeMax * options.epochInstructions + 1;
  pump(primary, backup, p, b, (message) => (message.type === 'epoch' && message.entry.epoch === 1 ? { ...message, entry: { ...message.entry, endRetired: claim } } : message));
  let result = backup.step();
  for (let steps = 0; steps < 5 && result.kind !== 'finished'; steps++) result = backup.step();
  assert.equal(result.kind === 'finished' ? result.end.kind : result.kind, 'divergence');
  assert.match(result.kind === 'finished' ? result.reason : '', new RegExp(`claims ${claim} instructions, more than ${epochMergeMax} epochs`));
});

test('state digests are due by instructions: the first epoch past each multiple of K epochs\' instructions, however many short epochs; after a halt, from zero', () => {
  const chosen: ReplicationOptions = { ...options, epochInstructions: 1000, digestEveryEpochs: 3 };
  // Full epochs from 0: every third one.
  const full = [1, 2, 3, 4, 5, 6].map((n) => digestDue(chosen, (n - 1) * 1000, n * 1000));
  assert.deepEqual(full, [undefined, undefined, 1, undefined, undefined, 2]);
  // A guest whose epochs end at every I/O request: 40 epochs of 100 instructions, one digest at 3,000.
  let start = 0;
  const due: number[] = [];
  for (let n = 1; n <= 40; n++) {
    if (digestDue(chosen, start, n * 100) !== undefined) due.push(n);
    start = nextEpochStart(false, n * 100);
  }
  assert.deepEqual(due, [30]);
  assert.equal(nextEpochStart(true, 123_456), 0, 'a reset machine counts from zero');
  assert.equal(digestDue({ ...chosen, digestEveryEpochs: 0 }, 0, 1e9), undefined, 'off');
});

for (const { what, corrupt, report } of corruptions) {
  test(`state digests: ${what} corrupted on the backup is found at the next digest, named; the primary is told, not protected`, () => {
    const chosen: ReplicationOptions = { ...options, digestEveryEpochs: 2 };
    const { primary, backup, p, b } = pair({ options: chosen });
    backup.sayHello();
    pump(primary, backup, p, b);
    for (let epoch = 1; epoch <= 4; epoch++) {
      primary.step();
      pump(primary, backup, p, b);
      assert.equal(backup.step().kind, 'progress');
    }
    assert.equal(b.io.outbox.filter((message) => message.type === 'divergence').length, 0, 'no divergence while the states agree');
    corrupt(backup.currentMachine!);
    for (let epoch = 5; epoch <= 6; epoch++) {
      primary.step();
      pump(primary, backup, p, b, (message) => message);
      backup.step();
    }
    const result = backup.step();
    assert.equal(result.kind, 'finished');
    assert.equal(result.kind === 'finished' ? result.end.kind : undefined, 'divergence');
    assert.match(result.kind === 'finished' ? result.reason : '', /^divergence at epoch 6: the state after epoch 6 differs: /);
    assert.match(result.kind === 'finished' ? result.reason : '', report);
    pump(primary, backup, p, b);
    const status = primary.status();
    assert.equal(status.role, 'solo', 'the primary runs on, not protected');
    assert.equal(status.divergence?.epoch, 6);
    assert.match(status.divergence?.reason ?? '', report);
  });
}

test('a primary that sends a second welcome or state after the join loses its backup (a welcome sets the arbiter generation)', () => {
  for (const late of [
    { type: 'welcome', clusterId: 'other', primaryId: 'other', generation: 40, epoch: 0 },
    { type: 'state', epoch: 0, index: 0, total: 1, bytes: new Uint8Array(8) },
  ] as const) {
    const { primary, backup, p, b } = pair();
    backup.sayHello();
    pump(primary, backup, p, b);
    assert.equal(backup.currentRole, 'following');
    backup.onMessage(late, 64);
    const result = backup.step();
    assert.equal(result.kind === 'finished' ? result.end.kind : undefined, 'divergence', late.type);
    assert.match(result.kind === 'finished' ? result.reason : '', late.type === 'welcome' ? /the primary sent a second welcome/ : /state chunk 0 of 1 after the join/);
    assert.ok(b.io.outbox.some((message) => message.type === 'divergence'), 'the primary is told');
  }
});

test('a backup whose state leaves the primary\'s asks the arbiter first: dropped by its primary, it says so instead of reporting a divergence', () => {
  const named = (replica: string, members: string[]): ArbiterRecord => ({ replica, members });
  const cases: { records: Record<number, ArbiterRecord>; end: string; reason: RegExp; told: boolean }[] = [
    { records: {}, end: 'divergence', reason: /divergence at epoch \d+: the primary sent a second welcome/, told: true },
    { records: { 2: named('test-primary', ['test-backup']) }, end: 'divergence', reason: /divergence at epoch/, told: true },
    {
      records: { 2: named('test-primary', ['test-backup', 'other']), 3: named('test-primary', ['other']) },
      end: 'not-live',
      reason: /^dropped by the primary: generation 3 is test-primary's, which keeps other; this backup's state then left the primary's at epoch \d+ \(the primary sent a second welcome\)/,
      told: false,
    },
    { records: { 2: named('test-primary', []) }, end: 'not-live', reason: /generation 2 is test-primary's, which keeps no backup/, told: false },
    { records: { 2: named('someone-else', ['test-backup']) }, end: 'not-live', reason: /generation 2 is someone-else's/, told: false },
  ];
  for (const { records, end, reason, told } of cases) {
    const { primary, backup, p, b } = pair();
    backup.sayHello();
    pump(primary, backup, p, b);
    const asked: number[] = [];
    b.io.arbiterHolder = (generation: number): ArbiterRecord | undefined => {
      asked.push(generation);
      return records[generation];
    };
    backup.onMessage({ type: 'welcome', clusterId: 'test', primaryId: 'test-primary', generation: 1, epoch: 0 }, 64);
    const result = backup.step();
    const label = `records ${JSON.stringify(records)}; asked ${asked.join(', ')}`;
    assert.equal(result.kind === 'finished' ? result.end.kind : undefined, end, label);
    assert.match(result.kind === 'finished' ? result.reason : '', reason, label);
    assert.equal(b.io.outbox.some((message) => message.type === 'divergence'), told, label);
  }
});

test('t backups: a backup failing over skips the generations its primary took naming it, and stops where it is not named or another replica holds one', () => {
  const named = (members: string[]): ArbiterRecord => ({ replica: 'test-primary', members });
  const cases: { records: Record<number, ArbiterRecord>; outcome: string }[] = [
    { records: {}, outcome: 'promoted in generation 2' },
    { records: { 2: named(['test-backup', 'other']), 3: named(['test-backup']) }, outcome: 'promoted in generation 4' },
    { records: { 2: named(['test-backup']), 3: named(['other']) }, outcome: 'not-live: the primary dropped this backup in generation 3' },
    { records: { 2: { replica: 'someone-else', members: ['test-backup'] } }, outcome: 'not-live: generation 2 is held by someone-else, which is live' },
  ];
  for (const { records, outcome } of cases) {
    const { primary, backup, p, b, clock } = pair();
    backup.sayHello();
    pump(primary, backup, p, b);
    for (let i = 0; i < 3; i++) primary.step();
    pump(primary, backup, p, b);
    const tried: number[] = [];
    b.io.tryGoLive = (generation: number): ArbiterAnswer => {
      tried.push(generation);
      const holder = records[generation];
      return holder === undefined ? { won: true } : { won: false, holder };
    };
    backup.onDisconnect('closed');
    let result = backup.step();
    for (let i = 0; i < 20 && result.kind !== 'finished' && backup.promoted === undefined; i++) {
      clock.now += 100; // past the lease
      result = backup.step();
    }
    const seen = backup.promoted !== undefined ? `promoted in generation ${backup.status().generation}` : result.kind === 'finished' ? `${result.end.kind}: ${result.reason.replace(/^.*go live: /, '')}` : 'still running';
    assert.equal(seen, outcome, `records ${JSON.stringify(records)}; tried ${tried.join(', ')}`);
  }
});

test('t backups: outputs wait for every backup that follows; a backup lost is dropped through the arbiter, naming the ones kept', () => {
  const clock = { now: 0 };
  const p = side(() => clock.now);
  const backups = [side(() => clock.now), side(() => clock.now)];
  const chosen: ReplicationOptions = { ...options, backups: 2, liveCopy: false };
  const boot = (): Machine => machineWith(p.environment);
  const primary = new PrimaryReplica(boot(), p.environment, p.io, chosen, identity, boot, { epoch: 0, generation: 1, role: 'waiting', clusterId: 'test' });
  // Each side's messages by connection: the primary sends to peer 1 or 2.
  const inboxes = new Map<number, Message[]>([[1, []], [2, []]]);
  p.io.send = (message: Message, to?: number): number => {
    inboxes.get(to!)!.push(message);
    return encodeMessage(message).length;
  };
  const claims: { generation: number; members: readonly string[] }[] = [];
  p.io.tryGoLive = (generation: number, members: readonly string[]): ArbiterAnswer => {
    claims.push({ generation, members });
    return { won: true };
  };
  const replicas = backups.map((b, index) =>
    new BackupReplica(() => new Machine({ ramBytes: 1 << 20, disks: [] }, b.environment), b.environment, new TestClock(), b.io, chosen, { ...identity, replicaId: `backup-${index + 1}` }, () => machineWith(b.environment)),
  );
  const deliver = (): void => {
    for (let round = 0; round < 100; round++) {
      let moved = false;
      replicas.forEach((backup, index) => {
        for (const message of backups[index]!.io.outbox.splice(0)) {
          moved = true;
          if (message.type === 'hello') primary.onHello(message.identity, index + 1);
          else primary.onMessage(message, index + 1);
        }
        for (const message of inboxes.get(index + 1)!.splice(0)) {
          moved = true;
          backup.onMessage(message, encodeMessage(message).length);
        }
      });
      if (!moved) return;
    }
  };
  replicas[0]!.sayHello();
  deliver();
  replicas[1]!.sayHello();
  deliver();
  assert.deepEqual(primary.status().backups?.map((backup) => [backup.replicaId, backup.state]), [['backup-1', 'following'], ['backup-2', 'following']]);
  // Acknowledgements from the first backup alone release nothing.
  for (let i = 0; i < 5; i++) primary.step();
  for (const message of inboxes.get(1)!.splice(0)) replicas[0]!.onMessage(message, encodeMessage(message).length);
  for (const message of backups[0]!.io.outbox.splice(0)) primary.onMessage(message, 1);
  primary.step();
  assert.deepEqual(p.io.console, [], 'one backup of two has acknowledged: nothing is released');
  deliver();
  primary.step();
  assert.ok(p.io.console.length > 0, 'released once both have acknowledged');
  // The second goes away: the primary takes generation 2 naming the first, and stays protected.
  primary.onDisconnect('closed', 2);
  assert.deepEqual(claims, [{ generation: 2, members: ['backup-1'] }]);
  assert.equal(primary.status().role, 'primary');
  assert.equal(primary.status().generation, 2);
  primary.onDisconnect('closed', 1);
  assert.deepEqual(claims[1], { generation: 3, members: [] });
  assert.equal(primary.status().role, 'solo');
});

test('a write-back disk needs the reissue policy: a write the guest was told is done could not be reported failed after a failover', () => {
  const p = side(() => 0);
  const machine = new Machine({ ramBytes: 1 << 20, disks: [{ capacityBytes: 4096, readOnly: false, serial: 'wb', writeBack: true }] }, p.environment);
  const start = { epoch: 0, generation: 1, role: 'waiting' as const, clusterId: 'test' };
  assert.throws(() => new PrimaryReplica(machine, p.environment, p.io, { ...options, pendingIo: 'uncertain' }, identity, () => machine, start), /write-back disk needs the reissue policy/);
  assert.doesNotThrow(() => new PrimaryReplica(machine, p.environment, p.io, { ...options, pendingIo: 'reissue' }, identity, () => machine, start));
});
