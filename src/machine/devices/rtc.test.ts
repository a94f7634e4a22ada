/**
 * Unit tests for the goldfish RTC model (register map and behaviour of QEMU's
 * hw/rtc/goldfish_rtc.c), with a scripted environment and a fake mtime clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EnvironmentReadKind, EnvironmentReader } from '../environment.js';
import { SnapshotReader, SnapshotWriter } from '../snapshot.js';
import type { InterruptLine } from './device.js';
import { GoldfishRtc, type RtcClock } from './rtc.js';

const TIME_LOW = 0x00, TIME_HIGH = 0x04, ALARM_LOW = 0x08, ALARM_HIGH = 0x0c;
const IRQ_ENABLED = 0x10, CLEAR_ALARM = 0x14, ALARM_STATUS = 0x18, CLEAR_INTERRUPT = 0x1c;
const nsPerTick = 100n;

/** 2023-11-14T22:13:20Z in nanoseconds. */
const wallNs = 1_700_000_000_000_000_000n;

class ScriptedEnvironment implements EnvironmentReader {
  readonly calls: EnvironmentReadKind[] = [];
  wallClockNs = wallNs;
  readEnvironment(kind: EnvironmentReadKind): bigint {
    this.calls.push(kind);
    assert.equal(kind, 'wall-clock-ns', 'the RTC reads mtime through its clock, not directly');
    return this.wallClockNs;
  }
}

/** Host mtime under the test's control; counts the environment reads the RTC makes of it. */
class FakeClock implements RtcClock {
  mtime = 0n;
  reads = 0;
  readHostMtime(): bigint {
    this.reads++;
    return this.mtime;
  }
  get latestHostMtime(): bigint {
    return this.mtime;
  }
}

class FakeIrq implements InterruptLine {
  readonly levels: boolean[] = [];
  set(level: boolean): void {
    this.levels.push(level);
  }
  get level(): boolean {
    return this.levels.at(-1) ?? false;
  }
}

function rig(startMtime = 0n): { rtc: GoldfishRtc; environment: ScriptedEnvironment; clock: FakeClock; irq: FakeIrq } {
  const environment = new ScriptedEnvironment();
  const clock = new FakeClock();
  clock.mtime = startMtime;
  const irq = new FakeIrq();
  return { rtc: new GoldfishRtc({ environment, clock, irq }), environment, clock, irq };
}

/** Reads the time the way Linux's goldfish driver does: TIME_LOW, then TIME_HIGH. */
function readTime(rtc: GoldfishRtc): bigint {
  const low = BigInt(rtc.read(TIME_LOW, 4));
  const high = BigInt(rtc.read(TIME_HIGH, 4));
  return (high << 32n) | low;
}

function setAlarm(rtc: GoldfishRtc, ns: bigint): void {
  rtc.write(ALARM_HIGH, 4, Number(ns >> 32n));
  rtc.write(ALARM_LOW, 4, Number(ns & 0xffff_ffffn));
}

test('rtc: nothing is read from the host until the guest asks', () => {
  const { rtc, environment, clock } = rig();
  rtc.advanceClock();
  assert.equal(rtc.read(IRQ_ENABLED, 4), 0);
  assert.equal(rtc.read(ALARM_STATUS, 4), 0);
  assert.equal(rtc.alarmDeadlineHostMtime, undefined);
  assert.deepEqual(environment.calls, []);
  assert.equal(clock.reads, 0);
});

test('rtc: the first TIME_LOW read reads the wall clock once; later time comes from mtime', () => {
  const { rtc, environment, clock } = rig(1_000n);
  assert.equal(readTime(rtc), wallNs);
  assert.deepEqual(environment.calls, ['wall-clock-ns']);
  environment.wallClockNs = 0n; // the host clock is not consulted again
  clock.mtime = 1_000n + 10_000_000n; // one second of mtime at 10 MHz
  assert.equal(readTime(rtc), wallNs + 1_000_000_000n);
  clock.mtime += 7n;
  assert.equal(readTime(rtc), wallNs + 1_000_000_000n + 7n * nsPerTick);
  assert.deepEqual(environment.calls, ['wall-clock-ns']);
  assert.ok(clock.reads >= 3, 'each TIME_LOW read is an mtime read');
});

test('rtc: each TIME_LOW read is an mtime (environment) read; TIME_HIGH is not', () => {
  const { rtc, clock } = rig();
  rtc.read(TIME_LOW, 4);
  const afterFirst = clock.reads;
  rtc.read(TIME_HIGH, 4);
  rtc.read(TIME_HIGH, 4);
  assert.equal(clock.reads, afterFirst);
  rtc.read(TIME_LOW, 4);
  assert.equal(clock.reads, afterFirst + 1);
});

test('rtc: TIME_HIGH is latched by the TIME_LOW read', () => {
  const { rtc, environment, clock } = rig();
  environment.wallClockNs = 0x0000_0005_ffff_ff00n;
  assert.equal(rtc.read(TIME_LOW, 4), 0xffff_ff00);
  clock.mtime = 10n; // +1000 ns: the time crosses into high word 6
  assert.equal(rtc.read(TIME_HIGH, 4), 5, 'still the high half of the time read by TIME_LOW');
  assert.equal(rtc.read(TIME_LOW, 4), 0x0000_02e8);
  assert.equal(rtc.read(TIME_HIGH, 4), 6);
});

test('rtc: setting the time (TIME_HIGH, then TIME_LOW) and it keeps running', () => {
  const { rtc, clock } = rig(500n);
  const wanted = 0x1234_5678_9abc_def0n;
  rtc.write(TIME_HIGH, 4, Number(wanted >> 32n));
  rtc.write(TIME_LOW, 4, Number(wanted & 0xffff_ffffn));
  assert.equal(readTime(rtc), wanted);
  clock.mtime += 3n;
  assert.equal(readTime(rtc), wanted + 300n);
  // Back to 1970.
  rtc.write(TIME_HIGH, 4, 0);
  rtc.write(TIME_LOW, 4, 1_000);
  assert.equal(readTime(rtc), 1_000n);
  clock.mtime += 1n;
  assert.equal(readTime(rtc), 1_100n);
});

test('rtc: an alarm in the future is armed and has a deadline in host mtime', () => {
  const { rtc, clock, irq } = rig(2_000n);
  const now = readTime(rtc);
  rtc.write(IRQ_ENABLED, 4, 1);
  assert.equal(rtc.read(IRQ_ENABLED, 4), 1);
  setAlarm(rtc, now + 1_000_000n); // 1 ms = 10_000 ticks
  assert.equal(rtc.read(ALARM_STATUS, 4), 1);
  assert.equal(rtc.read(ALARM_LOW, 4), Number((now + 1_000_000n) & 0xffff_ffffn));
  assert.equal(rtc.read(ALARM_HIGH, 4), Number((now + 1_000_000n) >> 32n));
  assert.equal(rtc.alarmDeadlineHostMtime, 12_000n);
  assert.equal(irq.level, false);
  clock.mtime = 11_999n;
  rtc.advanceClock();
  assert.equal(irq.level, false);
  assert.equal(rtc.read(ALARM_STATUS, 4), 1);
  clock.mtime = 12_000n;
  rtc.advanceClock();
  assert.equal(irq.level, true);
  assert.equal(rtc.read(ALARM_STATUS, 4), 0, 'a fired alarm is no longer running');
  assert.equal(rtc.alarmDeadlineHostMtime, undefined);
  rtc.write(CLEAR_INTERRUPT, 4, 1);
  assert.equal(irq.level, false);
  clock.mtime = 50_000n;
  rtc.advanceClock();
  assert.equal(irq.level, false, 'an alarm fires once');
});

test('rtc: the deadline rounds up to whole ticks', () => {
  const { rtc, clock } = rig(0n);
  const now = readTime(rtc);
  setAlarm(rtc, now + 150n);
  assert.equal(rtc.alarmDeadlineHostMtime, 2n);
  clock.mtime = 1n;
  rtc.advanceClock();
  assert.equal(rtc.read(ALARM_STATUS, 4), 1, '100 ns is before the alarm');
  clock.mtime = 2n;
  rtc.advanceClock();
  assert.equal(rtc.read(ALARM_STATUS, 4), 0);
});

test('rtc: an alarm in the past (or now) fires at once', () => {
  for (const delta of [0n, -1n, -1_000_000_000n]) {
    const { rtc, irq } = rig(5_000n);
    rtc.write(IRQ_ENABLED, 4, 1);
    setAlarm(rtc, wallNs + delta);
    assert.equal(irq.level, true, `alarm ${delta} ns from now`);
    assert.equal(rtc.read(ALARM_STATUS, 4), 0);
    assert.equal(rtc.alarmDeadlineHostMtime, undefined);
  }
});

test('rtc: the alarm deadline of an alarm before mtime 0 is 0', () => {
  const { rtc } = rig(100n);
  const now = readTime(rtc);
  // Move the clock back so the pending alarm's wall time is before host mtime 0.
  setAlarm(rtc, now + 10_000n);
  rtc.write(TIME_HIGH, 4, Number((now + 1_000_000n) >> 32n));
  rtc.write(TIME_LOW, 4, Number((now + 1_000_000n) & 0xffff_ffffn));
  assert.equal(rtc.read(ALARM_STATUS, 4), 1, 'setting the time does not fire the alarm by itself');
  assert.equal(rtc.alarmDeadlineHostMtime, 0n);
});

test('rtc: an alarm that fires with IRQ_ENABLED clear stays pending until enabled (QEMU)', () => {
  // Linux's goldfish driver writes ALARM_HIGH, ALARM_LOW and only then IRQ_ENABLED = 1.
  const { rtc, irq } = rig(5_000n);
  setAlarm(rtc, wallNs - 1n);
  assert.equal(rtc.read(ALARM_STATUS, 4), 0);
  assert.equal(irq.level, false);
  rtc.write(IRQ_ENABLED, 4, 1);
  assert.equal(irq.level, true);
  rtc.write(IRQ_ENABLED, 4, 0);
  assert.equal(irq.level, false, 'disabling masks it');
  rtc.write(IRQ_ENABLED, 4, 1);
  assert.equal(irq.level, true);
  rtc.write(CLEAR_INTERRUPT, 4, 1);
  assert.equal(irq.level, false);
  rtc.write(IRQ_ENABLED, 4, 1);
  assert.equal(irq.level, false, 'cleared for good');
});

test('rtc: CLEAR_ALARM disarms it', () => {
  const { rtc, clock, irq } = rig();
  rtc.write(IRQ_ENABLED, 4, 1);
  setAlarm(rtc, wallNs + 500n);
  assert.equal(rtc.read(ALARM_STATUS, 4), 1);
  rtc.write(CLEAR_ALARM, 4, 1);
  assert.equal(rtc.read(ALARM_STATUS, 4), 0);
  assert.equal(rtc.alarmDeadlineHostMtime, undefined);
  clock.mtime = 1_000n;
  rtc.advanceClock();
  assert.equal(irq.level, false);
});

test('rtc: rewriting ALARM_LOW re-arms with the latched ALARM_HIGH', () => {
  const { rtc } = rig();
  setAlarm(rtc, wallNs + 10_000n);
  assert.equal(rtc.alarmDeadlineHostMtime, 100n);
  rtc.write(ALARM_LOW, 4, Number((wallNs + 20_000n) & 0xffff_ffffn));
  assert.equal(rtc.alarmDeadlineHostMtime, 200n);
});

test('rtc: IRQ_ENABLED keeps bit 0; unknown offsets read 0 and ignore writes', () => {
  const { rtc, irq } = rig();
  rtc.write(IRQ_ENABLED, 4, 0xfffe);
  assert.equal(rtc.read(IRQ_ENABLED, 4), 0);
  rtc.write(IRQ_ENABLED, 4, 3);
  assert.equal(rtc.read(IRQ_ENABLED, 4), 1);
  const levels = irq.levels.length;
  for (const offset of [0x20, 0x24, 0x100, 0xffc]) {
    rtc.write(offset, 4, 0xffff_ffff);
    assert.equal(rtc.read(offset, 4), 0);
  }
  assert.equal(rtc.read(CLEAR_ALARM, 4), 0);
  assert.equal(rtc.read(CLEAR_INTERRUPT, 4), 0);
  assert.equal(irq.levels.length, levels);
});

test('rtc: save/restore round trip keeps time base, alarm and interrupt', () => {
  const { rtc } = rig(1_000n);
  rtc.write(TIME_HIGH, 4, 0);
  rtc.write(TIME_LOW, 4, 12_345); // 12345 ns at mtime 1000: the base (time at mtime 0) is negative
  rtc.write(IRQ_ENABLED, 4, 1);
  setAlarm(rtc, 12_345n + 5_000n);
  const saved = new SnapshotWriter();
  rtc.save(saved);
  const bytes = saved.finish();

  const copy = rig(1_000n);
  copy.rtc.restore(new SnapshotReader(bytes));
  assert.deepEqual(copy.environment.calls, [], 'restore reads nothing from the host');
  assert.equal(copy.irq.level, false);
  const again = new SnapshotWriter();
  copy.rtc.save(again);
  assert.deepEqual(again.finish(), bytes);
  assert.equal(readTime(copy.rtc), 12_345n, 'the wall clock is not read again');
  assert.deepEqual(copy.environment.calls, []);
  assert.equal(copy.rtc.alarmDeadlineHostMtime, rtc.alarmDeadlineHostMtime);
  assert.equal(copy.rtc.alarmDeadlineHostMtime, 1_050n);
  copy.clock.mtime = 1_050n;
  copy.rtc.advanceClock();
  assert.equal(copy.irq.level, true);

  // A fired, pending interrupt is re-driven on restore.
  const pending = new SnapshotWriter();
  copy.rtc.save(pending);
  const third = rig();
  third.rtc.restore(new SnapshotReader(pending.finish()));
  assert.equal(third.irq.level, true);
});

test('rtc: restoring a snapshot taken before first use leaves the base unknown', () => {
  const { rtc } = rig();
  const saved = new SnapshotWriter();
  rtc.save(saved);
  const copy = rig(3_000n);
  copy.rtc.restore(new SnapshotReader(saved.finish()));
  assert.deepEqual(copy.environment.calls, []);
  assert.equal(readTime(copy.rtc), wallNs);
  assert.deepEqual(copy.environment.calls, ['wall-clock-ns']);
});
