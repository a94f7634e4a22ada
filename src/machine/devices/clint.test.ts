/**
 * Unit tests for the CLINT model (SiFive CLINT register map: msip at 0x0, mtimecmp at 0x4000,
 * mtime at 0xbff8), with a scripted environment standing in for the host clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EnvironmentReadKind, EnvironmentReader } from '../environment.js';
import { SnapshotReader, SnapshotWriter } from '../snapshot.js';
import { Clint, extract, insert, type ClintPins } from './clint.js';
import { mtimeHz } from '../time.js';

const MSIP = 0x0, MTIMECMP = 0x4000, MTIME = 0xbff8;
const u64Max = 0xffff_ffff_ffff_ffffn;

/** Answers environment reads from a settable value and records each call. */
class ScriptedEnvironment implements EnvironmentReader {
  readonly calls: EnvironmentReadKind[] = [];
  /** Values returned in order; when only one is left it keeps being returned. */
  script: bigint[] = [0n];
  readEnvironment(kind: EnvironmentReadKind): bigint {
    this.calls.push(kind);
    const value = this.script.length > 1 ? this.script.shift() : this.script[0];
    assert.notEqual(value, undefined, 'the script ran dry');
    return value!;
  }
  set now(value: bigint) {
    this.script = [value];
  }
}

class FakePins implements ClintPins {
  readonly software: boolean[] = [];
  readonly timer: boolean[] = [];
  setSoftware(level: boolean): void {
    this.software.push(level);
  }
  setTimer(level: boolean): void {
    this.timer.push(level);
  }
  get mtip(): boolean {
    return this.timer.at(-1) ?? false;
  }
  get msip(): boolean {
    return this.software.at(-1) ?? false;
  }
}

function rig(): { clint: Clint; environment: ScriptedEnvironment; pins: FakePins } {
  const environment = new ScriptedEnvironment();
  const pins = new FakePins();
  return { clint: new Clint({ environment, pins }), environment, pins };
}

/** Writes a 64-bit value as two 32-bit halves, low first (how RV32 software does it). */
function write64(clint: Clint, offset: number, value: bigint): void {
  clint.write(offset, 4, Number(value & 0xffff_ffffn));
  clint.write(offset + 4, 4, Number(value >> 32n));
}

function read64(clint: Clint, offset: number): bigint {
  const low = BigInt(clint.read(offset, 4));
  const high = BigInt(clint.read(offset + 4, 4));
  return (high << 32n) | low;
}

test('clint: mtime runs at 10 MHz', () => {
  assert.equal(mtimeHz, 10_000_000);
});

test('clint: msip bit 0 drives the software pin', () => {
  const { clint, pins } = rig();
  assert.equal(clint.read(MSIP, 4), 0);
  clint.write(MSIP, 4, 1);
  assert.equal(pins.msip, true);
  assert.equal(clint.read(MSIP, 4), 1);
  clint.write(MSIP, 4, 0xffff_fffe);
  assert.equal(pins.msip, false, 'only bit 0 counts');
  assert.equal(clint.read(MSIP, 4), 0);
  clint.write(MSIP, 1, 1);
  assert.equal(pins.msip, true, 'a byte write reaches it too');
  assert.equal(clint.read(MSIP, 1), 1);
  assert.equal(clint.read(1, 1), 0, 'the upper bytes read 0');
  assert.equal(pins.timer.length, 0, 'msip does not touch the timer');
});

test('clint: msip for other harts does not exist', () => {
  const { clint, pins } = rig();
  clint.write(4, 4, 1);
  assert.equal(clint.read(4, 4), 0);
  assert.deepEqual(pins.software, []);
});

test('clint: each mtime read is one environment read returning the scripted value', () => {
  const { clint, environment } = rig();
  environment.script = [0x1234_5678_9abc_def0n, 0x1234_5678_9abc_def0n];
  assert.equal(clint.read(MTIME, 4), 0x9abc_def0);
  assert.deepEqual(environment.calls, ['mtime']);
  assert.equal(clint.read(MTIME + 4, 4), 0x1234_5678);
  assert.deepEqual(environment.calls, ['mtime', 'mtime']);
  environment.now = 0x1234_5678_9abc_df00n;
  assert.equal(clint.readMtime(), 0x1234_5678_9abc_df00n);
  assert.equal(environment.calls.length, 3);
});

test('clint: the guest never sees mtime go backwards, even if the environment did', () => {
  const { clint, environment } = rig();
  environment.now = 1000n;
  assert.equal(clint.readMtime(), 1000n);
  environment.now = 400n;
  assert.equal(clint.readMtime(), 1000n);
  clint.advanceClock(2000n);
  environment.now = 1500n;
  assert.equal(clint.readMtime(), 2000n);
});

test('clint: byte and halfword reads of mtime and mtimecmp', () => {
  const { clint, environment } = rig();
  environment.now = 0x0102_0304_0506_0708n;
  const bytes = Array.from({ length: 8 }, (_, i) => clint.read(MTIME + i, 1));
  assert.deepEqual(bytes, [8, 7, 6, 5, 4, 3, 2, 1]);
  assert.equal(environment.calls.length, 8, 'each byte read is its own environment read');
  assert.equal(clint.read(MTIME + 2, 2), 0x0506);
  assert.equal(clint.read(MTIME + 6, 2), 0x0102);
  assert.equal(clint.read(MTIMECMP, 4), 0xffff_ffff, 'mtimecmp resets to all ones');
  write64(clint, MTIMECMP, 0x1122_3344_5566_7788n);
  assert.equal(clint.read(MTIMECMP + 3, 1), 0x55);
  assert.equal(clint.read(MTIMECMP + 4, 2), 0x3344);
  assert.equal(environment.calls.length, 10, 'mtimecmp is not environment');
});

test('clint: mtimecmp reads back as written, in halves', () => {
  const { clint } = rig();
  write64(clint, MTIMECMP, 0xdead_beef_cafe_f00dn);
  assert.equal(read64(clint, MTIMECMP), 0xdead_beef_cafe_f00dn);
  clint.write(MTIMECMP + 4, 4, 0);
  assert.equal(read64(clint, MTIMECMP), 0x0000_0000_cafe_f00dn);
  clint.write(MTIMECMP + 1, 1, 0x11);
  assert.equal(read64(clint, MTIMECMP), 0x0000_0000_cafe_110dn);
});

test('clint: MTIP is mtime >= mtimecmp', () => {
  const { clint, environment, pins } = rig();
  environment.now = 1000n;
  clint.readMtime();
  write64(clint, MTIMECMP, 1001n);
  assert.equal(pins.mtip, false);
  write64(clint, MTIMECMP, 1000n);
  assert.equal(pins.mtip, true, 'equal counts');
  write64(clint, MTIMECMP, 999n);
  assert.equal(pins.mtip, true);
  write64(clint, MTIMECMP, 5000n);
  assert.equal(pins.mtip, false, 'a later mtimecmp clears it');
});

test('clint: the comparison is 64-bit: no carry mistakes across the halves', () => {
  const { clint, pins } = rig();
  clint.advanceClock(0xffff_ffffn);
  write64(clint, MTIMECMP, 0x1_0000_0000n);
  assert.equal(pins.mtip, false, 'low half of mtime is larger, but mtime is smaller');
  clint.advanceClock(0x1_0000_0000n);
  assert.equal(pins.mtip, true, 'the carry into the high half reaches the deadline');

  const other = rig();
  other.clint.advanceClock(0x1_0000_0000n);
  write64(other.clint, MTIMECMP, 0xffff_ffffn);
  assert.equal(other.pins.mtip, true, 'low half of mtime is smaller, but mtime is larger');
  write64(other.clint, MTIMECMP, 0x1_0000_0001n);
  assert.equal(other.pins.mtip, false);
});

test('clint: writing mtimecmp high-then-low passes through a safe value (the spec idiom)', () => {
  const { clint, pins } = rig();
  clint.advanceClock(0x5_0000_0000n);
  write64(clint, MTIMECMP, 0x6_0000_0000n);
  assert.equal(pins.mtip, false);
  // Set 0x5_8000_0000: low = all ones first, then high, then low.
  clint.write(MTIMECMP, 4, 0xffff_ffff);
  clint.write(MTIMECMP + 4, 4, 5);
  clint.write(MTIMECMP, 4, 0x8000_0000);
  assert.equal(read64(clint, MTIMECMP), 0x5_8000_0000n);
  assert.equal(pins.timer.includes(true), false, 'MTIP never glitched high');
});

test('clint: mtimecmp all ones means never', () => {
  const { clint, pins } = rig();
  clint.advanceClock(0x7fff_ffff_ffff_ffffn);
  assert.equal(pins.mtip, false);
  write64(clint, MTIMECMP, 10n);
  assert.equal(pins.mtip, true);
  write64(clint, MTIMECMP, u64Max);
  assert.equal(pins.mtip, false);
  assert.equal(clint.timerDeadlineHostMtime, undefined);
});

test('clint: advanceClock raises MTIP exactly at the deadline', () => {
  const { clint, environment, pins } = rig();
  write64(clint, MTIMECMP, 10_000n);
  assert.equal(pins.mtip, false);
  clint.advanceClock(9_999n);
  assert.equal(pins.mtip, false);
  clint.advanceClock(10_000n);
  assert.equal(pins.mtip, true);
  assert.equal(clint.latestHostMtime, 10_000n);
  assert.deepEqual(environment.calls, [], 'clock events are not environment reads');
});

test('clint: the clock never runs backwards', () => {
  const { clint, pins } = rig();
  write64(clint, MTIMECMP, 100n);
  clint.advanceClock(150n);
  clint.advanceClock(50n);
  assert.equal(clint.latestHostMtime, 150n);
  assert.equal(pins.mtip, true);
});

test('clint: an mtime read past the deadline raises MTIP', () => {
  const { clint, environment, pins } = rig();
  write64(clint, MTIMECMP, 500n);
  environment.now = 499n;
  clint.read(MTIME, 4);
  assert.equal(pins.mtip, false);
  environment.now = 500n;
  clint.read(MTIME, 4);
  assert.equal(pins.mtip, true);
  assert.equal(clint.latestHostMtime, 500n);
});

test('clint: writing mtime moves an offset: the guest sees its value, the host clock goes on', () => {
  const { clint, environment } = rig();
  environment.now = 1_000n;
  write64(clint, MTIME, 50_000n);
  environment.now = 1_500n;
  assert.equal(read64(clint, MTIME), 50_500n);
  assert.equal(clint.latestHostMtime, 1_500n, 'host time is untouched');
  // Backwards too.
  environment.now = 2_000n;
  write64(clint, MTIME, 10n);
  environment.now = 2_300n;
  assert.equal(read64(clint, MTIME), 310n);
});

test('clint: writing one half of mtime keeps the other', () => {
  const { clint, environment } = rig();
  environment.now = 0x0000_0007_0000_0100n;
  clint.write(MTIME, 4, 0x10);
  assert.equal(read64(clint, MTIME), 0x0000_0007_0000_0010n);
  clint.write(MTIME + 4, 4, 0x9);
  assert.equal(read64(clint, MTIME), 0x0000_0009_0000_0010n);
});

test('clint: MTIP compares guest-visible mtime, offset included', () => {
  const { clint, environment, pins } = rig();
  environment.now = 1_000n;
  write64(clint, MTIMECMP, 100_000n);
  assert.equal(pins.mtip, false);
  write64(clint, MTIME, 100_000n);
  assert.equal(pins.mtip, true, 'the guest moved mtime onto the deadline');
  write64(clint, MTIME, 0n);
  assert.equal(pins.mtip, false);
  clint.advanceClock(1_000n + 99_999n);
  assert.equal(pins.mtip, false);
  clint.advanceClock(1_000n + 100_000n);
  assert.equal(pins.mtip, true);
});

test('clint: timerDeadlineHostMtime with and without an offset', () => {
  const { clint, environment } = rig();
  assert.equal(clint.timerDeadlineHostMtime, undefined, 'off at reset');
  write64(clint, MTIMECMP, 6_000n);
  assert.equal(clint.timerDeadlineHostMtime, 6_000n);
  environment.now = 1_000n;
  write64(clint, MTIME, 5_000n); // guest time runs 4000 ahead
  assert.equal(clint.timerDeadlineHostMtime, 2_000n);
  write64(clint, MTIME, 100n); // now 900 behind
  assert.equal(clint.timerDeadlineHostMtime, 6_900n);
  write64(clint, MTIMECMP, 50n); // already past: MTIP is up, and no clock event changes more
  assert.equal(clint.timerDeadlineHostMtime, undefined);
  write64(clint, MTIMECMP, 150n);
  assert.equal(clint.timerDeadlineHostMtime, 1_050n);
  clint.advanceClock(1_050n); // reached: nothing ahead any more
  assert.equal(clint.timerDeadlineHostMtime, undefined);
});

test('clint: other offsets read 0 and ignore writes', () => {
  const { clint, environment, pins } = rig();
  for (const offset of [0x8, 0x3ffc, 0x4008, 0xbff0, 0xc000, 0xfffc]) {
    clint.write(offset, 4, 0xffff_ffff);
    assert.equal(clint.read(offset, 4), 0);
  }
  assert.deepEqual(environment.calls, []);
  assert.deepEqual(pins.software, []);
  assert.deepEqual(pins.timer, []);
  assert.equal(clint.timerDeadlineHostMtime, undefined);
});

test('clint: save/restore round trip re-drives both pins', () => {
  const { clint, environment } = rig();
  environment.now = 7_000n;
  write64(clint, MTIME, 1_000_000n);
  write64(clint, MTIMECMP, 1_000_500n);
  clint.write(MSIP, 4, 1);
  clint.advanceClock(7_600n);
  const saved = new SnapshotWriter();
  clint.save(saved);
  const bytes = saved.finish();

  const copy = rig();
  copy.clint.restore(new SnapshotReader(bytes));
  assert.equal(copy.pins.msip, true);
  assert.equal(copy.pins.mtip, true);
  assert.deepEqual(copy.environment.calls, [], 'restore reads no environment');
  const again = new SnapshotWriter();
  copy.clint.save(again);
  assert.deepEqual(again.finish(), bytes);
  assert.equal(copy.clint.latestHostMtime, 7_600n);
  assert.equal(copy.clint.timerDeadlineHostMtime, undefined, 'the deadline (7500) has passed');
  copy.environment.now = 8_000n;
  assert.equal(read64(copy.clint, MTIME), 1_001_000n);
  assert.equal(read64(copy.clint, MTIMECMP), 1_000_500n);

  const idle = rig();
  const fresh = new SnapshotWriter();
  idle.clint.save(fresh);
  copy.clint.restore(new SnapshotReader(fresh.finish()));
  assert.equal(copy.pins.msip, false);
  assert.equal(copy.pins.mtip, false);
});

test('clint: extract and insert work on any byte lane', () => {
  const value = 0x0102_0304_0506_0708n;
  assert.equal(extract(value, 0, 4), 0x0506_0708);
  assert.equal(extract(value, 4, 4), 0x0102_0304);
  assert.equal(extract(value, 7, 1), 0x01);
  assert.equal(extract(value, 2, 2), 0x0506);
  assert.equal(insert(value, 0, 4, 0xffff_ffff), 0x0102_0304_ffff_ffffn);
  assert.equal(insert(value, 4, 4, -1), 0xffff_ffff_0506_0708n, 'negative int32 parts are taken as unsigned');
  assert.equal(insert(value, 3, 1, 0x1ff), 0x0102_0304_ff06_0708n, 'bits beyond the width are dropped');
  assert.equal(insert(value, 6, 2, 0xabcd), 0xabcd_0304_0506_0708n);
});

test('clint: setTimerCompare (SBI set_timer) programs mtimecmp and MTIP', () => {
  const { clint, pins, environment } = rig();
  clint.advanceClock(1_000n);
  clint.setTimerCompare(2_000n);
  assert.equal(pins.mtip, false);
  assert.equal(read64(clint, MTIMECMP), 2_000n);
  assert.equal(clint.timerDeadlineHostMtime, 2_000n);
  clint.setTimerCompare(1_000n);
  assert.equal(pins.mtip, true);
  clint.setTimerCompare(-1n); // wraps to all ones: never
  assert.equal(pins.mtip, false);
  assert.equal(clint.timerDeadlineHostMtime, undefined);
  assert.deepEqual(environment.calls, []);
});
