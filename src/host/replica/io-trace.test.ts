import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoTrace } from './io-trace.js';

/** Two writes one after the other, then a read, on a clock the test moves. */
function traced(): { trace: IoTrace; at: (ms: number) => void } {
  let now = 0;
  const trace = new IoTrace(() => now);
  return { trace, at: (ms) => (now = ms) };
}

test('a request is followed from its entry to the entry that delivers its completion', () => {
  const { trace, at } = traced();
  at(10);
  trace.entrySent(5, []); // epoch 5 issued the write
  at(11);
  trace.acknowledged(5);
  at(11.25);
  trace.released({ slot: 7, requestId: 1, op: 'write' }, 5);
  at(11.5);
  trace.performed({ slot: 7, requestId: 1 });
  at(12);
  trace.entrySent(6, [{ slot: 7, requestId: 1 }]);
  const [request] = trace.traced;
  assert.deepEqual(request, {
    requestId: 1, op: 'write', epoch: 5, entrySentMs: 10, acknowledgedMs: 11, releasedMs: 11.25, performedMs: 11.5, deliveredMs: 12, deliveredEpoch: 6, early: false,
  });
});

test('a write completed early: delivered before its release, its way summarized apart from the round trip it did not wait for', () => {
  const { trace, at } = traced();
  at(10);
  trace.entrySent(5, []); // epoch 5 issued the write
  at(10.1);
  trace.entrySent(6, [{ slot: 7, requestId: 1 }]); // its completion, before the acknowledgement
  at(11);
  trace.acknowledged(6);
  trace.released({ slot: 7, requestId: 1, op: 'write' }, 5);
  at(11.5);
  trace.performed({ slot: 7, requestId: 1 });
  const [request] = trace.traced;
  assert.deepEqual(request, {
    requestId: 1, op: 'write', epoch: 5, entrySentMs: 10, acknowledgedMs: 11, releasedMs: 11, performedMs: 11.5, deliveredMs: 10.1, deliveredEpoch: 6, early: true,
  });
  assert.match(trace.summary()[0]!, /1 writes; median per step: 1 answered before the acknowledgement: entry sent -> delivered 0\.100 ms \(round trip 1\.000 ms\)/);
});

test('a write the write-back disk answered: delivered when its entry left, with no completion in any entry', () => {
  const { trace, at } = traced();
  at(10);
  trace.entrySent(5, []); // epoch 5 issued the write, and the guest had its answer in it
  at(11);
  trace.acknowledged(5);
  trace.released({ slot: 7, requestId: 1, op: 'write', completed: true }, 5);
  at(11.5);
  trace.performed({ slot: 7, requestId: 1 });
  const [request] = trace.traced;
  assert.deepEqual(request, {
    requestId: 1, op: 'write', epoch: 5, entrySentMs: 10, acknowledgedMs: 11, releasedMs: 11, performedMs: 11.5, deliveredMs: 10, deliveredEpoch: 5, early: true,
  });
  assert.match(trace.summary()[0]!, /1 writes; median per step: 1 answered before the acknowledgement: entry sent -> delivered 0\.000 ms \(round trip 1\.000 ms\)/);
});

test('the summary gives each gap per kind of request, the time from one request to the next, and one whole way', () => {
  const { trace, at } = traced();
  for (const [index, start] of [0, 10, 20].entries()) {
    const epoch = 1 + index * 2;
    at(start);
    trace.entrySent(epoch, []);
    at(start + 2);
    trace.acknowledged(epoch);
    trace.released({ slot: 7, requestId: index + 1, op: 'write' }, epoch);
    at(start + 3);
    trace.performed({ slot: 7, requestId: index + 1 });
    at(start + 4);
    trace.entrySent(epoch + 1, [{ slot: 7, requestId: index + 1 }]);
  }
  const lines = trace.summary();
  assert.match(lines[0]!, /^io trace: 3 writes; median per step: round trip 2\.000 ms, acknowledged -> released 0\.000 ms, host I\/O 1\.000 ms, performed -> delivered 1\.000 ms, delivered -> next issued 6\.000 ms$/);
  assert.match(lines[1]!, /writes one after the other: from one issue to the next median 10\.0 ms \(p90 10\.0 ms, p99 10\.0 ms, max 10\.0 ms; mean 10\.0 ms, 2 epochs; 2 pairs\)/);
  assert.match(lines[2]!, /^io trace: write 2 \(issued in epoch 3\): entry sent \+0\.000 ms, acknowledged \+2\.000 ms, released \+2\.000 ms, performed \+3\.000 ms, delivered \+4\.000 ms \(epoch 4\)$/);
  assert.equal(lines.length, 3, 'no reads, no flushes: no lines for them');
});

test('an acknowledgement covers every earlier epoch; a later one does not move their times', () => {
  const { trace, at } = traced();
  trace.entrySent(1, []);
  trace.entrySent(2, []);
  at(5);
  trace.acknowledged(2);
  at(9);
  trace.acknowledged(2);
  trace.released({ slot: 7, requestId: 1, op: 'read' }, 1);
  assert.equal(trace.traced[0]!.acknowledgedMs, 5);
  assert.equal(trace.traced[0]!.entrySentMs, 0);
});

test('nothing traced: the summary says so', () => {
  assert.deepEqual(new IoTrace(() => 0).summary(), ['io trace: no disk request went its whole way, no read was answered at once, and no frame went out']);
});

test("a frame's way: arrived, delivered, the answer's entry sent, acknowledged, released", () => {
  const { trace, at } = traced();
  for (const start of [0, 10, 20]) {
    at(start);
    trace.framesTaken(start - 0.25); // the request arrived a quarter of a millisecond before the boundary
    trace.framesTaken(start - 0.1); // a second frame taken for the same entry: the first one counts
    at(start + 0.5);
    trace.entrySent(start + 1, []);
    trace.framesDelivered(start + 1);
    at(start + 1);
    trace.entrySent(start + 2, []); // the answer's epoch
    at(start + 1.5);
    trace.acknowledged(start + 2);
    at(start + 1.75);
    trace.frameReleased(start + 2);
  }
  assert.deepEqual(trace.summary(), [
    "io trace: 3 frames sent; median: frames arrived -> delivered (their entry sent) 0.750 ms, delivered -> the answer's entry sent 0.500 ms, round trip 0.500 ms, acknowledged -> released 0.250 ms",
  ]);
});

test('a read issued with its step, before its entry left: its entry and acknowledgement times come later, and the summary keeps it apart from the round trip', () => {
  const { trace, at } = traced();
  for (const [index, start] of [0, 10].entries()) {
    const epoch = 1 + index;
    at(start);
    trace.released({ slot: 7, requestId: index + 1, op: 'read' }, epoch);
    at(start + 0.25);
    trace.performed({ slot: 7, requestId: index + 1 });
    at(start + 1);
    trace.entrySent(epoch, [{ slot: 7, requestId: index + 1 }]); // its completion rides with it
    at(start + 3);
    trace.acknowledged(epoch);
  }
  assert.deepEqual(trace.traced[0], {
    requestId: 1, op: 'read', epoch: 1, entrySentMs: 1, acknowledgedMs: 3, releasedMs: 0, performedMs: 0.25, deliveredMs: 1, deliveredEpoch: 1, early: false,
  });
  const lines = trace.summary();
  assert.match(lines[0]!, /^io trace: 2 reads; median per step: 2 issued before the acknowledgement: host I\/O 0\.250 ms, performed -> delivered 0\.750 ms, delivered -> next issued 9\.000 ms$/);
  assert.match(lines[1]!, /reads one after the other: from one issue to the next median 10\.0 ms/);
  assert.match(lines[2]!, /^io trace: read 2 \(issued in epoch 2\): entry sent \+1\.000 ms, acknowledged \+3\.000 ms, released \+0\.000 ms, performed \+0\.250 ms, delivered \+1\.000 ms \(epoch 2\)$/);
});
