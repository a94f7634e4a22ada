/**
 * Versioned binary snapshots of machine state.
 *
 * Every stateful part writes its state with a {@link SnapshotWriter} and reads it back with a
 * {@link SnapshotReader}, in the same order. The encoding is plain little-endian data with
 * section tags, so a digest of the bytes is a digest of the state, and a corrupt or foreign
 * snapshot fails with a clear {@link SnapshotError} instead of loading garbage.
 */
import { assert } from './assert.js';

export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
}

/** Small to start with: protocol messages are encoded with this writer too, thousands a second. */
const initialCapacityBytes = 256;
const utf8 = new TextEncoder();
/** Strings up to this long that are ASCII are copied without an encoder (their UTF-8 is the same bytes). */
const asciiInlineMax = 64;
// eslint-disable-next-line no-control-regex
const asciiOnly = /^[\x00-\x7f]*$/;

export class SnapshotWriter {
  private buffer = new Uint8Array(initialCapacityBytes);
  private view = new DataView(this.buffer.buffer);
  private length = 0;

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.length + bytes) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  /** The bytes written so far. */
  get size(): number {
    return this.length;
  }

  /** Overwrites four bytes already written, at `offset` (a length known only afterwards). */
  patchU32(offset: number, value: number): this {
    assert(offset + 4 <= this.length, () => `patch at ${offset} past the ${this.length} bytes written`);
    this.view.setUint32(offset, value >>> 0, true);
    return this;
  }

  /** Empties the writer for reuse (its buffer is kept). */
  reset(): this {
    this.length = 0;
    return this;
  }

  /** Opens a named section: readers check the tag, so misordered state is caught at once. */
  section(tag: string): this {
    return this.string(tag);
  }

  u8(value: number): this {
    this.reserve(1);
    this.buffer[this.length++] = value & 0xff;
    return this;
  }

  bool(value: boolean): this {
    return this.u8(value ? 1 : 0);
  }

  u32(value: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, value >>> 0, true);
    this.length += 4;
    return this;
  }

  i32(value: number): this {
    return this.u32(value | 0);
  }

  u64(value: bigint): this {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt.asUintN(64, value), true);
    this.length += 8;
    return this;
  }

  /** A non-negative integer below 2^53 (instruction counts, byte offsets). */
  uint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new SnapshotError(`not a safe unsigned integer: ${value}`);
    // As u64, without a BigInt (the replication log writes several per entry).
    this.reserve(8);
    this.view.setUint32(this.length, value >>> 0, true);
    this.view.setUint32(this.length + 4, Math.floor(value / 0x1_0000_0000), true);
    this.length += 8;
    return this;
  }

  bytes(data: Uint8Array): this {
    this.uint(data.length);
    this.reserve(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
    return this;
  }

  u32Array(data: Int32Array | Uint32Array): this {
    this.uint(data.length);
    for (const value of data) this.u32(value);
    return this;
  }

  string(text: string): this {
    // Section tags and names are short ASCII, written thousands of times a second (state
    // digests, protocol messages): byte by byte, without an encoder's allocations.
    if (text.length <= asciiInlineMax && asciiOnly.test(text)) {
      this.uint(text.length);
      this.reserve(text.length);
      for (let i = 0; i < text.length; i++) this.buffer[this.length + i] = text.charCodeAt(i);
      this.length += text.length;
      return this;
    }
    return this.bytes(utf8.encode(text));
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

export class SnapshotReader {
  private readonly view: DataView;
  private offset = 0;

  constructor(private readonly data: Uint8Array) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  private need(bytes: number): void {
    if (this.offset + bytes > this.data.length) {
      throw new SnapshotError(`snapshot truncated: needed ${bytes} bytes at offset ${this.offset}, ${this.data.length - this.offset} left`);
    }
  }

  section(tag: string): void {
    const found = this.string();
    if (found !== tag) throw new SnapshotError(`snapshot section mismatch: expected "${tag}", found "${found.slice(0, 40)}"`);
  }

  u8(): number {
    this.need(1);
    return this.data[this.offset++]!;
  }

  bool(): boolean {
    const value = this.u8();
    if (value > 1) throw new SnapshotError(`bad boolean ${value} at offset ${this.offset - 1}`);
    return value === 1;
  }

  u32(): number {
    this.need(4);
    const value = this.view.getUint32(this.offset, true);
    this.offset += 4;
    return value;
  }

  i32(): number {
    return this.u32() | 0;
  }

  u64(): bigint {
    this.need(8);
    const value = this.view.getBigUint64(this.offset, true);
    this.offset += 8;
    return value;
  }

  uint(): number {
    this.need(8);
    const low = this.view.getUint32(this.offset, true);
    const high = this.view.getUint32(this.offset + 4, true);
    // Safe integers are below 2^53: the high word below 2^21.
    if (high >= 0x20_0000) throw new SnapshotError(`integer out of range at offset ${this.offset}`);
    this.offset += 8;
    return high * 0x1_0000_0000 + low;
  }

  bytes(): Uint8Array {
    const length = this.uint();
    this.need(length);
    const result = this.data.slice(this.offset, this.offset + length);
    this.offset += length;
    return result;
  }

  /** Reads an array written by `u32Array` into `target`, which must have the same length. */
  u32ArrayInto(target: Int32Array | Uint32Array): void {
    const length = this.uint();
    if (length !== target.length) throw new SnapshotError(`array length ${length}, expected ${target.length}`);
    for (let i = 0; i < length; i++) target[i] = this.u32();
  }

  string(): string {
    const offset = this.offset;
    const data = this.bytes();
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(data);
    } catch {
      // A corrupt snapshot must fail as a SnapshotError, not as the decoder's TypeError.
      throw new SnapshotError(`snapshot text at offset ${offset} is not valid UTF-8`);
    }
  }

  get remainingBytes(): number {
    return this.data.length - this.offset;
  }

  expectEnd(): void {
    if (this.remainingBytes !== 0) throw new SnapshotError(`${this.remainingBytes} unexpected bytes after the snapshot`);
  }
}

/** Anything whose state is part of the machine's snapshot and digest. */
export interface Snapshottable {
  save(writer: SnapshotWriter): void;
  restore(reader: SnapshotReader): void;
}
