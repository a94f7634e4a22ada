/**
 * Determinism: the machine is a state machine. Run twice with the same inputs at the same
 * instruction counts, it ends in the same state (same digest); saved, restored and continued,
 * it ends where an uninterrupted run ends. With the host's real clock, recording the
 * environment reads and events of one run and replaying them into a second machine gives the
 * same digest too: the basis of primary/backup replication.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Machine } from '../src/machine/board.js';
import type { EnvironmentPort, EnvironmentReadKind, MachineEvent } from '../src/machine/environment.js';
import { HostClock } from '../src/host/clocks.js';
import { VirtualClock } from '../src/machine/clock.js';
import { readKernel } from '../src/host/guest-image.js';
import { guestElf } from './helpers.js';

const ramBytes = 16 * 1024 * 1024;
const sliceInstructions = 50_000;

/** Runs a guest in fixed slices with virtual time, applying a clock event at each boundary. */
function runSlices(machine: Machine, clock: VirtualClock, slices: number, digests?: string[]): string {
  let output = '';
  for (let i = 0; i < slices && machine.power === undefined; i++) {
    const result = machine.run(sliceInstructions);
    for (const out of machine.takeOutputs()) if (out.kind === 'console-output') output += Buffer.from(out.bytes).toString();
    if (result.reason === 'wfi' && machine.isIdle) {
      const deadline = machine.clockDeadline;
      if (deadline !== undefined) clock.skipTo(deadline, machine.retiredInstructions);
    }
    machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
    digests?.push(machine.digest());
  }
  return output;
}

function boot(name: string, environment: EnvironmentPort): Machine {
  const machine = new Machine({ ramBytes, disks: [] }, environment);
  machine.load(readKernel(guestElf(name)));
  return machine;
}

for (const guest of ['interrupts', 'sv32', 'traps']) {
  test(`${guest}: two runs with the same inputs have the same digest at every boundary`, () => {
    const first: string[] = [];
    const second: string[] = [];
    const clockA = new VirtualClock();
    const clockB = new VirtualClock();
    const outA = runSlices(boot(guest, clockA), clockA, 40, first);
    const outB = runSlices(boot(guest, clockB), clockB, 40, second);
    assert.ok(first.length > 1);
    assert.deepEqual(second, first);
    assert.equal(outB, outA);
    assert.match(outA, new RegExp(`PASS ${guest}`));
  });

  test(`${guest}: save, restore into a new machine, continue: same end as an uninterrupted run`, () => {
    const clockA = new VirtualClock();
    const straight = boot(guest, clockA);
    const outStraight = runSlices(straight, clockA, 40);

    const clockB = new VirtualClock();
    const before = boot(guest, clockB);
    const outBefore = runSlices(before, clockB, 2);
    assert.equal(before.power, undefined, 'the snapshot is taken while the guest still runs');
    const snapshot = before.save();
    const after = new Machine({ ramBytes, disks: [] }, clockB);
    after.restore(snapshot);
    assert.equal(after.digest(), before.digest());
    const outAfter = runSlices(after, clockB, 38);
    assert.equal(outBefore + outAfter, outStraight);
    assert.equal(after.digest(), straight.digest());
    assert.equal(after.retiredInstructions, straight.retiredInstructions);
  });
}

interface Reading {
  readonly retired: number;
  readonly kind: EnvironmentReadKind;
  readonly value: bigint;
}

/** Records every environment read of the machine it serves (what a primary does, P0). */
class RecordingEnvironment implements EnvironmentPort {
  readonly readings: Reading[] = [];
  constructor(private readonly inner: EnvironmentPort) {}
  read(kind: EnvironmentReadKind, retired: number): bigint {
    const value = this.inner.read(kind, retired);
    this.readings.push({ retired, kind, value });
    return value;
  }
}

/** Serves recorded values and checks they are consumed at the same count, of the same kind (P6). */
class ReplayEnvironment implements EnvironmentPort {
  private next = 0;
  constructor(private readonly readings: readonly Reading[]) {}
  read(kind: EnvironmentReadKind, retired: number): bigint {
    const reading = this.readings[this.next++];
    assert.ok(reading !== undefined, `replay ran out of environment values at instruction ${retired}`);
    assert.equal(retired, reading.retired, 'environment read at a different instruction count');
    assert.equal(kind, reading.kind, 'environment read of a different kind');
    return reading.value;
  }
  get consumed(): number {
    return this.next;
  }
}

test('record with the host clock, replay into a second machine: identical digests', () => {
  const recorder = new RecordingEnvironment(new HostClock());
  const host = new HostClock();
  const primary = boot('interrupts', recorder);
  const events: { retired: number; event: MachineEvent }[] = [];
  const boundaries: string[] = [];
  for (let slice = 0; slice < 400 && primary.power === undefined; slice++) {
    primary.run(sliceInstructions);
    primary.takeOutputs();
    const event: MachineEvent = { kind: 'clock', mtime: host.mtimeNow() };
    events.push({ retired: primary.retiredInstructions, event });
    primary.applyEvent(event);
    boundaries.push(primary.digest());
  }
  assert.equal(primary.power?.kind, 'poweroff');
  assert.ok(recorder.readings.length > 0, 'the guest read the clock');

  const replayer = new ReplayEnvironment(recorder.readings);
  const backup = boot('interrupts', replayer);
  events.forEach(({ retired, event }, index) => {
    backup.run(retired - backup.retiredInstructions);
    backup.takeOutputs();
    assert.equal(backup.retiredInstructions, retired);
    backup.applyEvent(event);
    assert.equal(backup.digest(), boundaries[index], `digest differs after slice ${index}`);
  });
  assert.equal(replayer.consumed, recorder.readings.length);
});
