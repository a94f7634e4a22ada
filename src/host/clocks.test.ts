/**
 * The host's clock for a machine: its 'entropy' (a Linux boot's seed) comes from the host's
 * random numbers, new at every read; its mtime never goes back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostClock } from './clocks.js';
import { fixedEntropy, VirtualClock } from '../machine/clock.js';

test("the host clock's entropy: 64-bit values, a new one at every read", () => {
  const clock = new HostClock();
  const values = Array.from({ length: 1000 }, () => clock.read('entropy'));
  assert.equal(new Set(values).size, values.length);
  assert.ok(values.every((value) => value >= 0n && value < 2n ** 64n));
  assert.ok(values.some((value) => value >= 2n ** 63n), 'the top bit is used');
});

test("the virtual clock's entropy is a fixed sequence: every virtual run is seeded alike", () => {
  const a = new VirtualClock();
  const b = new VirtualClock();
  const first = [0, 1, 2, 3].map(() => a.read('entropy', 0));
  assert.deepEqual([0, 1, 2, 3].map(() => b.read('entropy', 7)), first);
  assert.deepEqual(first, [0, 1, 2, 3].map(fixedEntropy));
  assert.equal(new Set(first).size, 4);
});

test('host mtime never goes back', () => {
  const clock = new HostClock();
  let last = clock.read('mtime');
  for (let i = 0; i < 1000; i++) {
    const now = clock.read('mtime');
    assert.ok(now >= last);
    last = now;
  }
});
