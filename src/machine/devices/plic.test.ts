/**
 * Unit tests for the PLIC model against the RISC-V PLIC specification and QEMU virt's layout
 * (QEMU 7.2's sifive_plic: 7 priority levels, 2 contexts for one hart).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotError, SnapshotReader, SnapshotWriter } from '../snapshot.js';
import { Plic, plicContexts, plicPriorityMax, plicSources, type PlicOutputs } from './plic.js';

// QEMU virt's PLIC layout, spelled out independently of the module.
const priorityOffset = (id: number): number => 0x0 + 4 * id;
const pendingOffset = (word: number): number => 0x1000 + 4 * word;
const enableOffset = (context: number, word: number): number => 0x2000 + 0x80 * context + 4 * word;
const thresholdOffset = (context: number): number => 0x20_0000 + 0x1000 * context;
const claimOffset = (context: number): number => 0x20_0000 + 0x1000 * context + 4;

/** Records every change of the context outputs. */
class FakeOutputs implements PlicOutputs {
  readonly changes: [number, boolean][] = [];
  readonly levels = [false, false];
  setContext(context: number, level: boolean): void {
    this.changes.push([context, level]);
    this.levels[context] = level;
  }
}

function rig(): { plic: Plic; outputs: FakeOutputs } {
  const outputs = new FakeOutputs();
  return { plic: new Plic(outputs), outputs };
}

const read = (plic: Plic, offset: number): number => plic.read(offset, 4);
const write = (plic: Plic, offset: number, value: number): void => plic.write(offset, 4, value);

/** Enables `ids` for `context` (read-modify-write of the enable words). */
function enable(plic: Plic, context: number, ...ids: number[]): void {
  for (const id of ids) {
    const offset = enableOffset(context, id >>> 5);
    write(plic, offset, read(plic, offset) | (1 << (id & 31)));
  }
}

const claim = (plic: Plic, context = 0): number => read(plic, claimOffset(context));
const complete = (plic: Plic, id: number, context = 0): void => write(plic, claimOffset(context), id);

/** QEMU 7.2 virt's riscv,ndev: sources 1..96 exist. */
const lastSource = 96;

test('plic: constants match QEMU virt', () => {
  assert.equal(plicSources, lastSource + 1);
  assert.equal(plicContexts, 2);
  assert.equal(plicPriorityMax, 7);
  assert.equal(rig().plic.windowBytes, 0x60_0000);
});

test('plic: priority registers at 0x0 + 4*id hold 0..7', () => {
  const { plic } = rig();
  for (const id of [1, 10, 31, 32, 95, lastSource]) {
    write(plic, priorityOffset(id), id % 8);
    assert.equal(read(plic, priorityOffset(id)), id % 8);
  }
  assert.equal(read(plic, priorityOffset(2)), 0, 'priorities reset to 0');
});

test('plic: priority values above 7 are ignored (QEMU 7.2)', () => {
  const { plic } = rig();
  write(plic, priorityOffset(5), 3);
  for (const value of [8, 0xff, 0x1_0003, 0xffff_ffff, -1]) {
    write(plic, priorityOffset(5), value);
    assert.equal(read(plic, priorityOffset(5)), 3, `value ${value}`);
  }
});

test('plic: source 0 has no priority and cannot be enabled', () => {
  const { plic } = rig();
  write(plic, priorityOffset(0), 5);
  assert.equal(read(plic, priorityOffset(0)), 0);
  write(plic, enableOffset(0, 0), 0xffff_ffff);
  assert.equal(read(plic, enableOffset(0, 0)), 0xffff_fffe);
  write(plic, enableOffset(1, 0), 1);
  assert.equal(read(plic, enableOffset(1, 0)), 0);
});

test('plic: enable words at 0x2000 + 0x80*context, four words for sources 0..96', () => {
  const { plic } = rig();
  write(plic, enableOffset(0, 1), 0xdead_beef);
  write(plic, enableOffset(0, 2), 0x8000_0001);
  write(plic, enableOffset(1, 1), 0x1234_5678);
  assert.equal(read(plic, enableOffset(0, 1)), 0xdead_beef);
  assert.equal(read(plic, enableOffset(0, 2)), 0x8000_0001);
  assert.equal(read(plic, enableOffset(1, 1)), 0x1234_5678);
  assert.equal(read(plic, enableOffset(1, 2)), 0);
  // Only bit 0 of word 3 (source 96) exists; words past it and contexts past 1 do not.
  write(plic, enableOffset(0, 3), 0xffff_ffff);
  assert.equal(read(plic, enableOffset(0, 3)), 1);
  write(plic, enableOffset(0, 4), 0xffff_ffff);
  assert.equal(read(plic, enableOffset(0, 4)), 0);
  write(plic, enableOffset(2, 0), 0xffff_ffff);
  assert.equal(read(plic, enableOffset(2, 0)), 0);
  assert.equal(read(plic, enableOffset(0, 1)), 0xdead_beef, 'nothing aliased');
});

test('plic: threshold at 0x200000 + 0x1000*context holds 0..7; larger values are ignored', () => {
  const { plic } = rig();
  write(plic, thresholdOffset(0), 4);
  write(plic, thresholdOffset(1), 7);
  assert.equal(read(plic, thresholdOffset(0)), 4);
  assert.equal(read(plic, thresholdOffset(1)), 7);
  write(plic, thresholdOffset(0), 8);
  write(plic, thresholdOffset(0), -1);
  assert.equal(read(plic, thresholdOffset(0)), 4);
  write(plic, thresholdOffset(2), 3);
  assert.equal(read(plic, thresholdOffset(2)), 0, 'no context 2');
});

test('plic: a raised line with priority 0 never interrupts and is never claimed', () => {
  const { plic, outputs } = rig();
  enable(plic, 0, 10);
  plic.line(10).set(true);
  assert.equal(read(plic, pendingOffset(0)), 1 << 10, 'it is pending');
  assert.deepEqual(outputs.changes, []);
  assert.equal(claim(plic), 0);
});

test('plic: an enabled source interrupts only when its priority exceeds the threshold', () => {
  const { plic, outputs } = rig();
  enable(plic, 0, 10);
  write(plic, priorityOffset(10), 3);
  write(plic, thresholdOffset(0), 3);
  plic.line(10).set(true);
  assert.equal(outputs.levels[0], false, 'priority == threshold is masked');
  assert.equal(claim(plic), 0);
  write(plic, thresholdOffset(0), 2);
  assert.equal(outputs.levels[0], true);
  write(plic, thresholdOffset(0), 7);
  assert.equal(outputs.levels[0], false, 'raising the threshold masks it again');
  write(plic, thresholdOffset(0), 0);
  assert.equal(outputs.levels[0], true);
});

test('plic: a disabled source is pending but does not interrupt', () => {
  const { plic, outputs } = rig();
  write(plic, priorityOffset(7), 1);
  plic.line(7).set(true);
  assert.equal(read(plic, pendingOffset(0)), 1 << 7);
  assert.deepEqual(outputs.changes, []);
  enable(plic, 0, 7);
  assert.deepEqual(outputs.changes, [[0, true]]);
});

test('plic: pending bits across words, and they are read-only', () => {
  const { plic } = rig();
  for (const id of [1, 31, 32, 63, 64, 95, 96]) plic.line(id).set(true);
  assert.equal(read(plic, pendingOffset(0)), ((1 << 1) | (1 << 31)) >>> 0);
  assert.equal(read(plic, pendingOffset(1)), ((1 << 0) | (1 << 31)) >>> 0);
  assert.equal(read(plic, pendingOffset(2)), ((1 << 0) | (1 << 31)) >>> 0);
  assert.equal(read(plic, pendingOffset(3)), 1);
  assert.equal(read(plic, pendingOffset(4)), 0);
  write(plic, pendingOffset(0), 0);
  assert.equal(read(plic, pendingOffset(0)), ((1 << 1) | (1 << 31)) >>> 0);
  plic.line(31).set(false);
  assert.equal(read(plic, pendingOffset(0)), 1 << 1, 'level-triggered: lowering the line clears pending');
});

test('plic: claim returns the highest priority, lowest id on ties, then 0', () => {
  const { plic } = rig();
  for (const [id, priority] of [[3, 2], [5, 6], [9, 6], [40, 4], [70, 1], [96, 4]] as const) {
    write(plic, priorityOffset(id), priority);
    enable(plic, 0, id);
    plic.line(id).set(true);
  }
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(() => claim(plic)), [5, 9, 40, 96, 3, 70, 0]);
});

test('plic: a claimed source is not pending and its context output drops', () => {
  const { plic, outputs } = rig();
  write(plic, priorityOffset(10), 1);
  enable(plic, 0, 10);
  plic.line(10).set(true);
  assert.equal(outputs.levels[0], true);
  assert.equal(claim(plic), 10);
  assert.equal(read(plic, pendingOffset(0)), 0);
  assert.equal(outputs.levels[0], false);
  assert.equal(claim(plic), 0, 'a second claim gets nothing');
});

test('plic: completing with the line still high makes the source pending again', () => {
  const { plic, outputs } = rig();
  write(plic, priorityOffset(10), 1);
  enable(plic, 0, 10);
  plic.line(10).set(true);
  assert.equal(claim(plic), 10);
  complete(plic, 10);
  assert.equal(read(plic, pendingOffset(0)), 1 << 10);
  assert.equal(outputs.levels[0], true);
  assert.equal(claim(plic), 10);
});

test('plic: completing after the line dropped leaves nothing pending', () => {
  const { plic, outputs } = rig();
  write(plic, priorityOffset(10), 1);
  enable(plic, 0, 10);
  const line = plic.line(10);
  line.set(true);
  assert.equal(claim(plic), 10);
  line.set(false);
  complete(plic, 10);
  assert.equal(read(plic, pendingOffset(0)), 0);
  assert.equal(outputs.levels[0], false);
  // A new request while claimed waits for completion (the gateway holds it).
  line.set(true);
  assert.equal(outputs.levels[0], true);
  assert.equal(claim(plic), 10);
  line.set(false);
  line.set(true);
  assert.equal(read(plic, pendingOffset(0)), 0, 'still claimed');
  assert.equal(outputs.levels[0], false);
  complete(plic, 10);
  assert.equal(outputs.levels[0], true);
});

test('plic: completion for a source not enabled in that context is ignored', () => {
  const { plic } = rig();
  write(plic, priorityOffset(10), 1);
  enable(plic, 0, 10);
  plic.line(10).set(true);
  assert.equal(claim(plic, 0), 10);
  complete(plic, 10, 1); // context 1 has not enabled source 10
  assert.equal(read(plic, pendingOffset(0)), 0, 'still claimed');
  write(plic, enableOffset(0, 0), 0);
  complete(plic, 10, 0); // disabled meanwhile: ignored too
  assert.equal(read(plic, pendingOffset(0)), 0);
  enable(plic, 0, 10);
  complete(plic, 10, 0);
  assert.equal(read(plic, pendingOffset(0)), 1 << 10);
});

test('plic: completing ids 0, out of range or never claimed is harmless', () => {
  const { plic, outputs } = rig();
  write(plic, priorityOffset(10), 1);
  enable(plic, 0, 10);
  plic.line(10).set(true);
  for (const id of [0, lastSource + 1, 1000, 0xffff_ffff, -1, 11]) complete(plic, id);
  assert.equal(outputs.levels[0], true);
  assert.equal(claim(plic), 10);
});

test('plic: context 0 and context 1 have separate enables, thresholds and outputs', () => {
  const { plic, outputs } = rig();
  write(plic, priorityOffset(1), 2);
  write(plic, priorityOffset(2), 5);
  enable(plic, 0, 1);
  enable(plic, 1, 2);
  plic.line(1).set(true);
  assert.deepEqual(outputs.changes, [[0, true]]);
  plic.line(2).set(true);
  assert.deepEqual(outputs.changes, [[0, true], [1, true]]);
  write(plic, thresholdOffset(1), 5);
  assert.deepEqual(outputs.levels, [true, false]);
  write(plic, thresholdOffset(1), 4);
  assert.equal(claim(plic, 1), 2);
  assert.deepEqual(outputs.levels, [true, false]);
  assert.equal(claim(plic, 0), 1);
  assert.deepEqual(outputs.levels, [false, false]);
});

test('plic: a source enabled in both contexts is claimed once', () => {
  const { plic, outputs } = rig();
  write(plic, priorityOffset(4), 1);
  enable(plic, 0, 4);
  enable(plic, 1, 4);
  plic.line(4).set(true);
  assert.deepEqual(outputs.levels, [true, true]);
  assert.equal(claim(plic, 1), 4);
  assert.deepEqual(outputs.levels, [false, false]);
  assert.equal(claim(plic, 0), 0);
  complete(plic, 4, 1);
  assert.deepEqual(outputs.levels, [true, true]);
});

test('plic: outputs change only on transitions', () => {
  const { plic, outputs } = rig();
  write(plic, priorityOffset(1), 1);
  write(plic, priorityOffset(2), 1);
  enable(plic, 0, 1, 2);
  plic.line(1).set(true);
  plic.line(1).set(true);
  plic.line(2).set(true);
  plic.line(1).set(false);
  assert.deepEqual(outputs.changes, [[0, true]]);
  plic.line(2).set(false);
  assert.deepEqual(outputs.changes, [[0, true], [0, false]]);
});

test('plic: line() rejects ids outside 1..96', () => {
  const { plic } = rig();
  for (const id of [0, lastSource + 1, -1, 1.5, Number.NaN]) assert.throws(() => plic.line(id), RangeError, `id ${id}`);
  plic.line(1);
  plic.line(lastSource);
});

test('plic: out-of-range offsets read 0 and ignore writes', () => {
  const { plic, outputs } = rig();
  for (const offset of [priorityOffset(lastSource + 1), priorityOffset(1023), 0x1010, 0x1ffc, thresholdOffset(0) + 8, thresholdOffset(0) + 0xffc, thresholdOffset(2), claimOffset(2), 0x5f_fffc]) {
    write(plic, offset, 5);
    assert.equal(read(plic, offset), 0, `offset 0x${offset.toString(16)}`);
  }
  assert.deepEqual(outputs.changes, []);
  assert.equal(read(plic, thresholdOffset(0)), 0);
});

test('plic: accesses narrower than 32 bits are ignored, including claims', () => {
  const { plic, outputs } = rig();
  plic.write(priorityOffset(3), 1, 5);
  plic.write(priorityOffset(3), 2, 5);
  assert.equal(read(plic, priorityOffset(3)), 0);
  write(plic, priorityOffset(3), 5);
  assert.equal(plic.read(priorityOffset(3), 1), 0);
  assert.equal(plic.read(priorityOffset(3), 2), 0);
  enable(plic, 0, 3);
  plic.line(3).set(true);
  assert.equal(plic.read(claimOffset(0), 2), 0);
  assert.equal(plic.read(claimOffset(0), 1), 0);
  assert.equal(outputs.levels[0], true, 'not claimed');
  assert.equal(claim(plic), 3);
  plic.write(claimOffset(0), 2, 3);
  assert.equal(outputs.levels[0], false, 'not completed by a 16-bit write');
  plic.write(thresholdOffset(0), 1, 7);
  assert.equal(read(plic, thresholdOffset(0)), 0);
});

test('plic: save/restore round trip, with the outputs re-driven', () => {
  const { plic } = rig();
  write(plic, priorityOffset(10), 3);
  write(plic, priorityOffset(11), 5);
  write(plic, priorityOffset(40), 1);
  enable(plic, 0, 10, 11);
  enable(plic, 1, 40);
  write(plic, thresholdOffset(0), 1);
  write(plic, thresholdOffset(1), 0);
  plic.line(10).set(true);
  plic.line(11).set(true);
  plic.line(40).set(true);
  assert.equal(claim(plic, 0), 11);
  const saved = new SnapshotWriter();
  plic.save(saved);
  const bytes = saved.finish();

  const copy = rig();
  copy.plic.restore(new SnapshotReader(bytes));
  assert.deepEqual(copy.outputs.levels, [true, true]);
  const again = new SnapshotWriter();
  copy.plic.save(again);
  assert.deepEqual(again.finish(), bytes);
  // The claim survives: 10 comes next, and 11 only after completion.
  assert.equal(claim(copy.plic, 0), 10);
  assert.equal(claim(copy.plic, 0), 0);
  complete(copy.plic, 11, 0);
  assert.equal(claim(copy.plic, 0), 11);
  assert.equal(claim(copy.plic, 1), 40);
  // Lines keep working after restore.
  copy.plic.line(40).set(false);
  complete(copy.plic, 40, 1);
  assert.equal(copy.outputs.levels[1], false);
});

test('plic: restore lowers an output that was high before', () => {
  const { plic } = rig();
  const saved = new SnapshotWriter();
  plic.save(saved);
  const copy = rig();
  write(copy.plic, priorityOffset(1), 1);
  enable(copy.plic, 0, 1);
  copy.plic.line(1).set(true);
  copy.plic.restore(new SnapshotReader(saved.finish()));
  assert.equal(copy.outputs.levels[0], false);
});

test('plic: restore rejects state of the wrong shape', () => {
  const sources = (): Uint8Array => new Uint8Array(plicSources);
  const enableWords = plicContexts * Math.ceil(plicSources / 32);
  const wrongSources = new SnapshotWriter().section('plic').bytes(new Uint8Array(96)).finish();
  assert.throws(() => rig().plic.restore(new SnapshotReader(wrongSources)), /wrong number of sources/);
  const wrongContexts = new SnapshotWriter()
    .section('plic')
    .bytes(sources()).bytes(sources()).bytes(sources())
    .u32Array(new Uint32Array(enableWords))
    .bytes(new Uint8Array(3))
    .finish();
  assert.throws(() => rig().plic.restore(new SnapshotReader(wrongContexts)), /wrong number of contexts/);
  const wrongEnables = new SnapshotWriter()
    .section('plic')
    .bytes(sources()).bytes(sources()).bytes(sources())
    .u32Array(new Uint32Array(enableWords - 1))
    .finish();
  assert.throws(() => rig().plic.restore(new SnapshotReader(wrongEnables)), SnapshotError);
  assert.throws(() => rig().plic.restore(new SnapshotReader(new SnapshotWriter().section('uart').finish())), SnapshotError);
});
