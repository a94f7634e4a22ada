/**
 * Unit tests for the snapshot encoding: every type round-trips, and every way a snapshot can be
 * damaged (cut short at any offset, a wrong section, a bad boolean, an integer out of range,
 * text that is not UTF-8) ends in a SnapshotError and nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotError, SnapshotReader, SnapshotWriter } from './snapshot.js';

/** Writes one value of every type, in a fixed order that `readEverything` mirrors. */
function writeEverything(writer: SnapshotWriter): SnapshotWriter {
  return writer
    .section('everything')
    .u8(0)
    .u8(0xff)
    .bool(true)
    .bool(false)
    .u32(0)
    .u32(0xffff_ffff)
    .u32(0x1234_5678)
    .i32(-1)
    .i32(-0x8000_0000)
    .i32(0x7fff_ffff)
    .u64(0n)
    .u64(0xffff_ffff_ffff_ffffn)
    .u64(0x0123_4567_89ab_cdefn)
    .uint(0)
    .uint(Number.MAX_SAFE_INTEGER)
    .bytes(new Uint8Array(0))
    .bytes(Uint8Array.of(1, 2, 3, 250))
    .u32Array(Uint32Array.of(0, 1, 0xffff_ffff))
    .u32Array(Int32Array.of(-1, 7))
    .string('')
    .string('héllo, wörld ✓ 🚀')
    .section('tail');
}

function readEverything(reader: SnapshotReader): void {
  reader.section('everything');
  assert.equal(reader.u8(), 0);
  assert.equal(reader.u8(), 0xff);
  assert.equal(reader.bool(), true);
  assert.equal(reader.bool(), false);
  assert.equal(reader.u32(), 0);
  assert.equal(reader.u32(), 0xffff_ffff);
  assert.equal(reader.u32(), 0x1234_5678);
  assert.equal(reader.i32(), -1);
  assert.equal(reader.i32(), -0x8000_0000);
  assert.equal(reader.i32(), 0x7fff_ffff);
  assert.equal(reader.u64(), 0n);
  assert.equal(reader.u64(), 0xffff_ffff_ffff_ffffn);
  assert.equal(reader.u64(), 0x0123_4567_89ab_cdefn);
  assert.equal(reader.uint(), 0);
  assert.equal(reader.uint(), Number.MAX_SAFE_INTEGER);
  assert.deepEqual(reader.bytes(), new Uint8Array(0));
  assert.deepEqual(reader.bytes(), Uint8Array.of(1, 2, 3, 250));
  const unsigned = new Uint32Array(3);
  reader.u32ArrayInto(unsigned);
  assert.deepEqual(Array.from(unsigned), [0, 1, 0xffff_ffff]);
  const signed = new Int32Array(2);
  reader.u32ArrayInto(signed);
  assert.deepEqual(Array.from(signed), [-1, 7]);
  assert.equal(reader.string(), '');
  assert.equal(reader.string(), 'héllo, wörld ✓ 🚀');
  reader.section('tail');
}

const everything = (): Uint8Array => writeEverything(new SnapshotWriter()).finish();

test('snapshot: every type round-trips', () => {
  const reader = new SnapshotReader(everything());
  readEverything(reader);
  assert.equal(reader.remainingBytes, 0);
  reader.expectEnd();
});

test('snapshot: the encoding is plain little-endian with length prefixes', () => {
  const bytes = new SnapshotWriter().u8(0xab).bool(true).u32(0x0102_0304).i32(-2).u64(0x0102_0304_0506_0708n).uint(5).string('ok').finish();
  assert.deepEqual(Array.from(bytes), [
    0xab,
    1,
    4, 3, 2, 1,
    0xfe, 0xff, 0xff, 0xff,
    8, 7, 6, 5, 4, 3, 2, 1,
    5, 0, 0, 0, 0, 0, 0, 0,
    2, 0, 0, 0, 0, 0, 0, 0, 0x6f, 0x6b,
  ]);
});

test('snapshot: the same state writes the same bytes', () => {
  assert.deepEqual(everything(), everything());
});

test('snapshot: the writer masks to the width it writes', () => {
  const reader = new SnapshotReader(new SnapshotWriter().u8(0x1ff).u8(-1).u32(-1).u32(2 ** 32 + 5).u64(-1n).u64(1n << 64n).finish());
  assert.equal(reader.u8(), 0xff);
  assert.equal(reader.u8(), 0xff);
  assert.equal(reader.u32(), 0xffff_ffff);
  assert.equal(reader.u32(), 5);
  assert.equal(reader.u64(), 0xffff_ffff_ffff_ffffn);
  assert.equal(reader.u64(), 0n);
});

test('snapshot: the writer grows past its initial buffer', () => {
  const big = new Uint8Array(200_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const writer = new SnapshotWriter().u8(1);
  for (let i = 0; i < 5000; i++) writer.u32(i);
  writer.bytes(big).u8(2);
  const reader = new SnapshotReader(writer.finish());
  assert.equal(reader.u8(), 1);
  for (let i = 0; i < 5000; i++) assert.equal(reader.u32(), i);
  assert.deepEqual(reader.bytes(), big);
  assert.equal(reader.u8(), 2);
  reader.expectEnd();
});

test('snapshot: finish returns a copy that later writes do not change', () => {
  const writer = new SnapshotWriter().u8(1);
  const first = writer.finish();
  writer.u8(2);
  assert.deepEqual(Array.from(first), [1]);
  assert.deepEqual(Array.from(writer.finish()), [1, 2]);
});

test('snapshot: bytes() returns a copy, not a view into the snapshot', () => {
  const data = new SnapshotWriter().bytes(Uint8Array.of(1, 2, 3)).finish();
  const read = new SnapshotReader(data).bytes();
  read[0] = 99;
  assert.equal(new SnapshotReader(data).bytes()[0], 1);
});

test('snapshot: a reader works on a view into a larger buffer', () => {
  const bytes = everything();
  const backing = new Uint8Array(bytes.length + 11).fill(0xcc);
  backing.set(bytes, 5);
  const reader = new SnapshotReader(backing.subarray(5, 5 + bytes.length));
  readEverything(reader);
  reader.expectEnd();
});

test('snapshot: section mismatch names what was expected and what was found', () => {
  const reader = new SnapshotReader(new SnapshotWriter().section('uart').finish());
  assert.throws(() => reader.section('plic'), (error: unknown) => {
    assert.ok(error instanceof SnapshotError);
    assert.equal(error.name, 'SnapshotError');
    assert.match(error.message, /expected "plic", found "uart"/);
    return true;
  });
  const long = new SnapshotReader(new SnapshotWriter().section('x'.repeat(1000)).finish());
  assert.throws(() => long.section('y'), (error: unknown) => error instanceof SnapshotError && error.message.length < 200);
});

test('snapshot: a section read where other data was written is a SnapshotError', () => {
  // Stray data read as a tag: a length followed by bytes that are not UTF-8, too few bytes for
  // a length, an absurd length.
  for (const bytes of [new SnapshotWriter().u64(3n).u8(0xff).u8(0xfe).u8(0xfd).finish(), new SnapshotWriter().u32(7).finish(), new SnapshotWriter().u64(2n ** 60n).finish()]) {
    assert.throws(() => new SnapshotReader(bytes).section('clint'), SnapshotError);
  }
});

test('snapshot: text that is not UTF-8 is a SnapshotError', () => {
  const bytes = new SnapshotWriter().bytes(Uint8Array.of(0x75, 0xc3, 0x28)).finish();
  assert.throws(() => new SnapshotReader(bytes).string(), SnapshotError);
  assert.throws(() => new SnapshotReader(bytes).section('uart'), SnapshotError);
});

test('snapshot: truncation at every prefix length throws SnapshotError and nothing else', () => {
  const bytes = everything();
  for (let length = 0; length < bytes.length; length++) {
    const reader = new SnapshotReader(bytes.subarray(0, length));
    assert.throws(
      () => readEverything(reader),
      (error: unknown) => {
        assert.ok(error instanceof SnapshotError, `prefix ${length}: ${String(error)}`);
        assert.match(error.message, /snapshot truncated/, `prefix ${length}`);
        return true;
      },
    );
  }
});

test('snapshot: extra bytes after the end are reported', () => {
  const bytes = new SnapshotWriter().u8(1).u32(2).finish();
  const reader = new SnapshotReader(bytes);
  reader.u8();
  assert.equal(reader.remainingBytes, 4);
  assert.throws(() => reader.expectEnd(), /4 unexpected bytes after the snapshot/);
  assert.throws(() => reader.expectEnd(), SnapshotError);
  reader.u32();
  reader.expectEnd();
});

test('snapshot: booleans other than 0 and 1 are rejected', () => {
  for (const value of [2, 0x80, 0xff]) {
    const reader = new SnapshotReader(Uint8Array.of(1, value));
    assert.equal(reader.bool(), true);
    assert.throws(() => reader.bool(), new RegExp(`bad boolean ${value} at offset 1`));
  }
  assert.throws(() => new SnapshotReader(Uint8Array.of(2)).bool(), SnapshotError);
});

test('snapshot: uint above 2^53 - 1 is rejected when read', () => {
  for (const value of [2n ** 53n, 2n ** 63n, 0xffff_ffff_ffff_ffffn]) {
    const reader = new SnapshotReader(new SnapshotWriter().u64(value).finish());
    assert.throws(() => reader.uint(), SnapshotError);
  }
  // And through bytes() and u32ArrayInto(), whose lengths are uints.
  const huge = new SnapshotWriter().u64(2n ** 60n).finish();
  assert.throws(() => new SnapshotReader(huge).bytes(), SnapshotError);
  assert.throws(() => new SnapshotReader(huge).u32ArrayInto(new Uint32Array(2)), SnapshotError);
  assert.throws(() => new SnapshotReader(huge).string(), SnapshotError);
});

test('snapshot: a length that is in range but larger than the data is a truncation', () => {
  const bytes = new SnapshotWriter().uint(Number.MAX_SAFE_INTEGER).u8(1).finish();
  assert.throws(() => new SnapshotReader(bytes).bytes(), /snapshot truncated/);
});

test('snapshot: uint refuses what it cannot represent when written', () => {
  for (const value of [-1, 1.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN, Infinity]) {
    assert.throws(() => new SnapshotWriter().uint(value), SnapshotError, `value ${value}`);
  }
});

test('snapshot: an array of the wrong length is rejected', () => {
  const bytes = new SnapshotWriter().u32Array(Uint32Array.of(1, 2, 3)).finish();
  assert.throws(() => new SnapshotReader(bytes).u32ArrayInto(new Uint32Array(2)), /array length 3, expected 2/);
  assert.throws(() => new SnapshotReader(bytes).u32ArrayInto(new Uint32Array(4)), SnapshotError);
});

test('snapshot: random corruption of a valid snapshot fails only with SnapshotError (or assertion)', () => {
  const bytes = everything();
  let seed = 0x9e37_79b9;
  const next = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  for (let iteration = 0; iteration < 2000; iteration++) {
    const damaged = bytes.slice();
    damaged[next() % damaged.length] = next() & 0xff;
    const reader = new SnapshotReader(damaged);
    try {
      readEverything(reader);
    } catch (error) {
      // A damaged value that still decodes fails readEverything's own assertions; anything
      // else must be the reader rejecting the data.
      const ok = error instanceof SnapshotError || error instanceof assert.AssertionError;
      assert.ok(ok, `iteration ${iteration}: ${String(error)}`);
    }
  }
});
