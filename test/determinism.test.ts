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
import { assertDataPagesMarked, guestElf, repoRoot } from './helpers.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Prng } from '../src/simulator/prng.js';
import { scrubWindow, StateDigester } from '../src/machine/state-digest.js';

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
    assertDataPagesMarked(after.ram, `${guest}, restored`);
    const outAfter = runSlices(after, clockB, 38);
    assert.equal(outBefore + outAfter, outStraight);
    assert.equal(after.digest(), straight.digest());
    assert.equal(after.retiredInstructions, straight.retiredInstructions);
  });
}

/**
 * What a primary that ends epochs early relies on (src/replication/entry-budget.ts): running
 * `a` instructions and then `b` is exactly running `a + b`, zero-length runs included, so a
 * backup's single run to the recorded end stops where the primary's chunks did, for the same
 * reason, in the same state.
 */
function runCutAndWhole(name: string, whole: Machine, cut: Machine, clocks: readonly [VirtualClock, VirtualClock], slices: { count: number; instructions: number; pieceMax: number; digestEvery: number }): void {
  const prng = new Prng(name.length * 7919 + slices.pieceMax);
  let pieces = 0;
  for (let slice = 0; slice < slices.count && whole.power === undefined; slice++) {
    const resultWhole = whole.run(slices.instructions);
    let retired = 0;
    let reason = 'budget';
    while (retired < slices.instructions) {
      const piece = prng.chance(0.1) ? 0 : Math.min(slices.instructions - retired, prng.int(1, prng.chance(0.5) ? 40 : slices.pieceMax));
      const result = cut.run(piece);
      pieces++;
      retired += result.retired;
      reason = result.reason;
      if (result.reason !== 'budget') break;
    }
    assert.equal(reason, resultWhole.reason, `${name}, slice ${slice}: the pieces stopped for another reason`);
    assert.equal(cut.retiredInstructions, whole.retiredInstructions, `${name}, slice ${slice}`);
    assert.deepEqual(cut.takeOutputs(), whole.takeOutputs(), `${name}, slice ${slice}: outputs`);
    for (const [machine, clock] of [[whole, clocks[0]], [cut, clocks[1]]] as const) {
      if (resultWhole.reason === 'wfi' && machine.isIdle && machine.clockDeadline !== undefined) clock.skipTo(machine.clockDeadline, machine.retiredInstructions);
      machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
    }
    if (slice % slices.digestEvery === 0) assert.equal(cut.digest(), whole.digest(), `${name}, slice ${slice}: the states differ`);
  }
  assert.equal(cut.digest(), whole.digest(), `${name}: the final states differ`);
  assert.ok(pieces > 30, `${name}: ${pieces} pieces`);
}

for (const guest of ['interrupts', 'sv32', 'traps']) {
  test(`${guest}: a run cut into random pieces equals one run, at every boundary`, () => {
    const clocks = [new VirtualClock(), new VirtualClock()] as const;
    runCutAndWhole(guest, boot(guest, clocks[0]), boot(guest, clocks[1]), clocks, { count: 40, instructions: sliceInstructions, pieceMax: 9000, digestEvery: 1 });
  });
}

test('Linux booting: a run cut into random pieces equals one run', { timeout: 300_000 }, (t) => {
  const kernelFile = path.join(repoRoot, '.cache/linux/Image');
  if (!fs.existsSync(kernelFile)) return t.skip('the Linux guest is not built');
  const kernel = fs.readFileSync(kernelFile);
  const initrd = fs.readFileSync(path.join(repoRoot, '.cache/linux/initramfs.cpio'));
  const clocks = [new VirtualClock(), new VirtualClock()] as const;
  const linux = (clock: VirtualClock): Machine => {
    const machine = new Machine({ ramBytes: 64 * 1024 * 1024, disks: [] }, clock);
    machine.bootLinux(kernel, { initrd, bootargs: 'console=ttyS0' });
    return machine;
  };
  runCutAndWhole('linux', linux(clocks[0]), linux(clocks[1]), clocks, { count: 30, instructions: 2_000_000, pieceMax: 300_000, digestEvery: 10 });
});

/**
 * Incremental state digests (src/machine/state-digest.ts) track writes by flagging pages and
 * emptying the TLBs; on a booting Linux (page tables, A/D bits, the SBI, interrupts) the
 * digest kept that way must equal one taken from scratch, at every check.
 */
test('Linux booting: the incremental state digest equals one taken from scratch', { timeout: 300_000 }, (t) => {
  const kernelFile = path.join(repoRoot, '.cache/linux/Image');
  if (!fs.existsSync(kernelFile)) return t.skip('the Linux guest is not built');
  const config = { ramBytes: 64 * 1024 * 1024, disks: [] };
  const clock = new VirtualClock();
  const machine = new Machine(config, clock);
  machine.bootLinux(fs.readFileSync(kernelFile), { initrd: fs.readFileSync(path.join(repoRoot, '.cache/linux/initramfs.cpio')), bootargs: 'console=ttyS0' });
  const digester = new StateDigester(machine);
  let pagesListed = 0;
  for (let check = 0; check < 20 && machine.power === undefined; check++) {
    const result = machine.run(1_000_000);
    machine.takeOutputs();
    if (result.reason === 'wfi' && machine.isIdle && machine.clockDeadline !== undefined) clock.skipTo(machine.clockDeadline, machine.retiredInstructions);
    machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
    const incremental = digester.take(scrubWindow(check, machine.ram.pages));
    pagesListed += incremental.pages.length;
    assertDataPagesMarked(machine.ram, `check ${check}`);
    const copy = new Machine(config, new VirtualClock());
    copy.restore(machine.save());
    const scratch = new StateDigester(copy).take();
    assert.deepEqual([incremental.hart, incremental.parts], [scratch.hart, scratch.parts], `check ${check}`);
    for (let page = 0; page < machine.ram.pages; page++) assert.equal(incremental.pageHash(page), scratch.pageHash(page), `check ${check}: page ${page}`);
    assert.equal(incremental.ramHash, scratch.ramHash, `check ${check}`);
  }
  assert.ok(pagesListed > 1000, `${pagesListed} pages changed`);
});

/**
 * The pages the digests and state copies skip unread (Ram.mayHoldData) are zeros on a booting
 * Linux on the translation tier too: its compiled stores write through the same store TLB.
 */
for (const cpu of ['jit', 'wasm'] as const) test(`Linux booting on the translation tier (--cpu ${cpu}): every page that holds data is marked`, { timeout: 300_000 }, (t) => {
  const kernelFile = path.join(repoRoot, '.cache/linux/Image');
  if (!fs.existsSync(kernelFile)) return t.skip('the Linux guest is not built');
  const clock = new VirtualClock();
  const machine = new Machine({ ramBytes: 64 * 1024 * 1024, disks: [] }, clock, { cpu });
  machine.bootLinux(fs.readFileSync(kernelFile), { initrd: fs.readFileSync(path.join(repoRoot, '.cache/linux/initramfs.cpio')), bootargs: 'console=ttyS0' });
  for (let check = 0; check < 8 && machine.power === undefined; check++) {
    const result = machine.run(5_000_000);
    machine.takeOutputs();
    if (result.reason === 'wfi' && machine.isIdle && machine.clockDeadline !== undefined) clock.skipTo(machine.clockDeadline, machine.retiredInstructions);
    machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
    assertDataPagesMarked(machine.ram, `after ${machine.retiredInstructions} instructions`);
  }
  assert.ok(machine.ram.nonZeroPages().length > 1000, 'Linux wrote its memory');
});

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
  // One host clock for the guest's reads and the boundaries' clock events, as a primary has:
  // with two, the events' time would lag the reads by however long the machine took between
  // creating them, and the guest's timer waits would last that much longer.
  const host = new HostClock();
  const recorder = new RecordingEnvironment(host);
  const primary = boot('interrupts', recorder);
  const events: { retired: number; event: MachineEvent }[] = [];
  const boundaries: string[] = [];
  // A slice that ends at a wfi takes no guest time: waits for the timer are as many slices as
  // the host needs to reach the deadline, so the bound is far beyond any (the guest itself
  // needs 72K instructions, a handful of slices).
  for (let slice = 0; slice < 1_000_000 && primary.power === undefined; slice++) {
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
