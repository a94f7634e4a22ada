/**
 * The link shaper on a fake clock: frames leave in the order they were sent, each when the rate
 * and the one-way delay allow; an unshaped frame with nothing ahead of it leaves at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesPerMs, LinkShaper, type ShaperClock } from './link-shaper.js';

/** A clock that moves only when told, and runs the timers that fall due. */
class FakeClock implements ShaperClock {
  now = 0;
  private timers: { atMs: number; callback: () => void; cancelled: boolean }[] = [];

  nowMs(): number {
    return this.now;
  }

  after(delayMs: number, callback: () => void): () => void {
    const timer = { atMs: this.now + delayMs, callback, cancelled: false };
    this.timers.push(timer);
    return () => (timer.cancelled = true);
  }

  get pendingTimers(): number {
    return this.timers.filter((timer) => !timer.cancelled).length;
  }

  /** Moves to `toMs`, running each timer at its moment (in order). */
  advance(toMs: number): void {
    for (;;) {
      const next = this.timers.filter((timer) => !timer.cancelled && timer.atMs <= toMs).sort((a, b) => a.atMs - b.atMs)[0];
      if (next === undefined) break;
      this.timers = this.timers.filter((timer) => timer !== next);
      this.now = Math.max(this.now, next.atMs);
      next.callback();
    }
    this.now = toMs;
  }
}

function shaped(shape: { rateMbitPerSecond: number | undefined; latencyMs: number }): { clock: FakeClock; shaper: LinkShaper; written: { id: number; atMs: number }[] } {
  const clock = new FakeClock();
  const written: { id: number; atMs: number }[] = [];
  const shaper = new LinkShaper(shape, (bytes) => written.push({ id: bytes[0]!, atMs: clock.now }), clock);
  return { clock, shaper, written };
}

const frame = (id: number, length: number): Uint8Array => new Uint8Array(length).fill(id, 0, 1);

test('a rate in Mbit/s is bytes per millisecond: 10 Mbit/s is 1250 bytes/ms, 155 Mbit/s 19375', () => {
  assert.equal(bytesPerMs(10), 1250);
  assert.equal(bytesPerMs(155), 19375);
});

test('no rate and no latency: every frame is written at once, in order', () => {
  const { shaper, written, clock } = shaped({ rateMbitPerSecond: undefined, latencyMs: 0 });
  for (let id = 1; id <= 3; id++) shaper.send(frame(id, 100));
  assert.deepEqual(written, [1, 2, 3].map((id) => ({ id, atMs: 0 })));
  assert.equal(clock.pendingTimers, 0);
  assert.equal(shaper.queuedFrames, 0);
});

test('latency alone: each frame arrives its one-way delay after it was sent, in order', () => {
  const { shaper, written, clock } = shaped({ rateMbitPerSecond: undefined, latencyMs: 5 });
  shaper.send(frame(1, 10));
  clock.advance(2);
  shaper.send(frame(2, 10));
  assert.deepEqual(written, []);
  assert.equal(shaper.queuedFrames, 2);
  clock.advance(100);
  assert.deepEqual(written, [{ id: 1, atMs: 5 }, { id: 2, atMs: 7 }]);
});

test('a rate: back-to-back frames leave one serialization time apart (10 Mbit/s: 1250 bytes per ms)', () => {
  const { shaper, written, clock } = shaped({ rateMbitPerSecond: 10, latencyMs: 0 });
  shaper.send(frame(1, 2500)); // 2 ms on the wire
  shaper.send(frame(2, 1250)); // 1 ms more
  shaper.send(frame(3, 1250));
  clock.advance(10);
  assert.deepEqual(written, [{ id: 1, atMs: 2 }, { id: 2, atMs: 3 }, { id: 3, atMs: 4 }]);
});

test('a rate and a latency: a small frame sent behind a big one waits for it (FIFO), then both are delayed', () => {
  const { shaper, written, clock } = shaped({ rateMbitPerSecond: 10, latencyMs: 1 });
  shaper.send(frame(1, 12500)); // 10 ms on the wire
  clock.advance(3);
  shaper.send(frame(2, 125)); // 0.1 ms, but only after frame 1 has left
  clock.advance(50);
  assert.deepEqual(written, [{ id: 1, atMs: 11 }, { id: 2, atMs: 11.1 }]);
});

test('an idle link does not save up: a frame after a pause is not sent early', () => {
  const { shaper, written, clock } = shaped({ rateMbitPerSecond: 10, latencyMs: 0 });
  shaper.send(frame(1, 1250));
  clock.advance(100);
  shaper.send(frame(2, 1250));
  shaper.send(frame(3, 1250));
  clock.advance(200);
  assert.deepEqual(written, [{ id: 1, atMs: 1 }, { id: 2, atMs: 101 }, { id: 3, atMs: 102 }]);
});

test('late timers do not accumulate: frames due meanwhile all leave at the next flush, in order', () => {
  const { shaper, written, clock } = shaped({ rateMbitPerSecond: 10, latencyMs: 0 });
  for (let id = 1; id <= 4; id++) shaper.send(frame(id, 1250));
  // The host was busy for 3.5 ms: the first timer runs only then.
  clock.now = 3.5;
  clock.advance(3.5);
  assert.deepEqual(written.map((entry) => entry.id), [1, 2, 3]);
  clock.advance(4);
  assert.deepEqual(written.map((entry) => entry.id), [1, 2, 3, 4]);
  assert.equal(written[3]!.atMs, 4);
});

test('drained is called once the last waiting frame is written; close drops what waits', () => {
  const { shaper, written, clock } = shaped({ rateMbitPerSecond: undefined, latencyMs: 2 });
  let drained = 0;
  shaper.drained(() => drained++);
  assert.equal(drained, 1, 'nothing waits: at once');
  shaper.send(frame(1, 10));
  shaper.drained(() => drained++);
  assert.equal(drained, 1);
  clock.advance(2);
  assert.equal(drained, 2);
  shaper.send(frame(2, 10));
  shaper.close();
  clock.advance(10);
  assert.deepEqual(written.map((entry) => entry.id), [1]);
  assert.equal(clock.pendingTimers, 0);
});
