/**
 * The budget of an epoch's log entry: the most environment reads one instruction can make,
 * how an entry is planned, and a run that ends early, at an exact instruction count, when the
 * readings fill the room left to them; a single run to that count replays it exactly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Machine, BoardMap, type CpuMode } from '../machine/board.js';
import { environmentReadsPerInstructionMax, type EnvironmentPort, type EnvironmentReadKind, type MachineEvent } from '../machine/environment.js';
import { asm, li, linuxImage } from '../machine/cpu/encode.js';
import { Csr } from '../machine/cpu/csr.js';
import { ramBaseAddress } from '../machine/memory/ram.js';
import { ReplicaEnvironment } from './environment.js';
import { epochEntryFixedBytes, eventWireBytes, readingWireBytes } from './messages.js';
import { consoleInputPerEntryBytesMax, epochEntryBytesDefault, epochEntryBytesMin, planEntry, runWithinReads } from './entry-budget.js';

class CountingClock implements EnvironmentPort {
  readonly reads: { kind: EnvironmentReadKind; retired: number }[] = [];
  read(kind: EnvironmentReadKind, retired: number): bigint {
    this.reads.push({ kind, retired });
    if (kind === 'entropy') return 0x5eedn;
    return kind === 'mtime' ? BigInt(retired) * 3n : 1_700_000_000_000_000_000n;
  }
}

function machineWith(environment: EnvironmentPort, program: readonly number[], cpu: CpuMode = 'interp'): Machine {
  const machine = new Machine({ ramBytes: 1 << 20, disks: [] }, environment, { cpu });
  program.forEach((word, index) => (machine.ram.i32[index] = word));
  machine.hart.reset(ramBaseAddress);
  return machine;
}

test('the worst instruction makes exactly environmentReadsPerInstructionMax reads: the first of a Linux boot, its seed', () => {
  const clock = new CountingClock();
  const machine = new Machine({ ramBytes: 16 << 20, disks: [] }, clock);
  machine.bootLinux(linuxImage([asm.jal(0, 0)]), { bootargs: '' });
  machine.run(1);
  assert.equal(clock.reads.length, environmentReadsPerInstructionMax, JSON.stringify(clock.reads));
  assert.ok(clock.reads.every((read) => read.kind === 'entropy' && read.retired === 0));
  // The chunked run of a primary with room for exactly one instruction's readings.
  const environment = new ReplicaEnvironment(new CountingClock());
  const primary = new Machine({ ramBytes: 16 << 20, disks: [] }, environment);
  primary.bootLinux(linuxImage([asm.jal(0, 0)]), { bootargs: '' });
  const run = runWithinReads(primary, 10, environmentReadsPerInstructionMax, () => environment.recordedCount);
  assert.deepEqual(run, { reason: 'budget', retired: 1 });
  assert.equal(environment.recordedCount, environmentReadsPerInstructionMax);
});

test('next: an AMO on the RTC, the first time, makes three reads', () => {
  const clock = new CountingClock();
  // amoadd.w x6, (rtc TIME_LOW), x0: reads TIME_LOW (mtime, then the wall clock the first
  // time), writes it back (setting the time: mtime again).
  const machine = machineWith(clock, [...li(5, BoardMap.rtc), asm.amoaddw(6, 5, 0), asm.amoaddw(6, 5, 0), ...li(7, BoardMap.clint + 0xbff8), asm.amoaddw(6, 7, 0)]);
  machine.run(2);
  assert.equal(clock.reads.length, 0);
  machine.run(1);
  assert.equal(clock.reads.length, 3, JSON.stringify(clock.reads));
  machine.run(1);
  assert.equal(clock.reads.length, 3 + 2, 'afterwards an RTC AMO makes two');
  machine.run(3);
  assert.equal(clock.reads.length, 3 + 4, 'a CLINT mtime AMO makes two');
});

const completion = (dataBytes: number): MachineEvent => ({ kind: 'disk-completion', slot: 0, requestId: 1, status: 'ok', data: new Uint8Array(dataBytes) });
const boundaryBytes = eventWireBytes({ kind: 'console-input', bytes: new Uint8Array(consoleInputPerEntryBytesMax) }) + eventWireBytes({ kind: 'clock', mtime: 0n });

test('an entry plan: queued events up to half the budget (always one), the rest for readings', () => {
  const empty = planEntry([], 10_000);
  assert.equal(empty.queuedEvents, 0);
  assert.equal(empty.readsMax, Math.floor((10_000 - epochEntryFixedBytes - boundaryBytes) / readingWireBytes));
  assert.equal(empty.bytesMax, 10_000);

  const small = completion(1000);
  const some = planEntry([small, small, small, small, small, small], 10_000);
  assert.equal(some.queuedEvents, 4, 'four completions of about 1 KiB fit in half of 10,000 bytes');
  assert.equal(some.readsMax, Math.floor((10_000 - epochEntryFixedBytes - boundaryBytes - 4 * eventWireBytes(small)) / readingWireBytes));

  const large = completion(50_000);
  const alone = planEntry([large, small], 10_000);
  assert.equal(alone.queuedEvents, 1, 'an event larger than the budget goes alone');
  assert.equal(alone.readsMax, 0, 'in an epoch without readings (so without instructions)');
  assert.equal(alone.bytesMax, epochEntryFixedBytes + boundaryBytes + eventWireBytes(large));

  assert.ok(planEntry([]).readsMax > 200_000, 'the default budget leaves room for a few hundred thousand readings');
  assert.throws(() => planEntry([], epochEntryBytesMin - 1), /out of range/);
  assert.ok(epochEntryBytesDefault >= 2 * eventWireBytes(completion(1024 * 1024)), 'two of the largest disk reads fit the default');
});

/** Reads the time CSR in a tight loop: a reading every three instructions. */
const rdtimeLoop = [asm.csrrs(5, Csr.time, 0), asm.addi(6, 6, 1), asm.jal(0, -8)];

test('a run ends early, at an exact count, when the readings fill their room, on every tier; one run to that count replays it', () => {
  for (const cpu of ['interp', 'jit', 'wasm'] as const) {
    for (const readsMax of [0, 1, 2, 3, 4, 5, 100, 1000, 4099]) {
      const primaryEnvironment = new ReplicaEnvironment(new CountingClock());
      const primary = machineWith(primaryEnvironment, rdtimeLoop, cpu);
      // Long enough for the tiers to compile the loop; then it starts somewhere other than its first instruction.
      primary.run(200_001);
      primaryEnvironment.beginRecording();
      const start = primary.retiredInstructions;
      const result = runWithinReads(primary, 1_000_000, readsMax, () => primaryEnvironment.recordedCount);
      const reads = primaryEnvironment.takeRecorded();
      assert.equal(result.reason, 'budget');
      assert.equal(result.retired, primary.retiredInstructions - start);
      assert.ok(reads.length <= readsMax, `${cpu}: ${reads.length} readings, room for ${readsMax}`);
      assert.ok(readsMax - reads.length < environmentReadsPerInstructionMax, `${cpu}: with room for ${readsMax}, the run stopped at ${reads.length} readings`);
      assert.ok(result.retired < 1_000_000);
      assert.equal(primary.stoppedForOutput, false, 'a run stopped by its readings did not stop for an output');

      const backupEnvironment = new ReplicaEnvironment(new CountingClock());
      const backup = machineWith(backupEnvironment, rdtimeLoop, cpu);
      backup.run(200_001); // its clock reads as the primary's did
      backupEnvironment.beginReplay(reads);
      const replayed = backup.run(result.retired);
      backupEnvironment.endReplay();
      assert.equal(replayed.reason, result.reason);
      assert.equal(backup.digest(), primary.digest(), `${cpu}, room for ${readsMax}: the replay ends in the same state`);
    }
  }
});

test('a run with room to spare runs the whole budget, or stops where the machine stops', () => {
  const environment = new ReplicaEnvironment(new CountingClock());
  const spinning = machineWith(environment, [asm.addi(6, 6, 1), asm.jal(0, -4)]);
  assert.deepEqual(runWithinReads(spinning, 50_000, 30, () => environment.recordedCount), { reason: 'budget', retired: 50_000 });
  const sleeping = machineWith(environment, [asm.wfi()]);
  assert.deepEqual(runWithinReads(sleeping, 50_000, 30, () => environment.recordedCount), { reason: 'wfi', retired: 1 });
  const idle = machineWith(environment, [asm.wfi()]);
  idle.run(1);
  assert.deepEqual(runWithinReads(idle, 0, 0, () => environment.recordedCount), { reason: 'wfi', retired: 0 });
});
