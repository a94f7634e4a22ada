/**
 * Ram's record of the pages that may hold data (`mayHoldData`): set by every kind of write,
 * kept across a failed restore, replaced by a restore's own pages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pageBytes, Ram, ramBaseAddress } from './ram.js';
import { SnapshotReader, SnapshotWriter, SnapshotError } from '../snapshot.js';
import { Hart } from '../cpu/cpu.js';
import { Bus } from './bus.js';
import { storeSlow } from '../cpu/mmu.js';

const ramBytes = 1 << 20;

function marked(ram: Ram): number[] {
  const pages: number[] = [];
  for (let page = 0; page < ram.pages; page++) if (ram.mayHoldData[page] !== 0) pages.push(page);
  return pages;
}

test('a fresh RAM has no page marked, and every page counts as zeros', () => {
  const ram = new Ram(ramBytes);
  assert.deepEqual(marked(ram), []);
  assert.deepEqual(ram.nonZeroPages(), []);
  assert.equal(ram.pageForCopy(3).length, 0);
});

test('writes mark the pages they touch: DMA and loaders, HTIF-style notes, the CPU', () => {
  const ram = new Ram(ramBytes);
  ram.writeBytes(ramBaseAddress + 2 * pageBytes - 2, Uint8Array.of(1, 2, 3, 4)); // across pages 1 and 2
  ram.i32[(5 * pageBytes) >>> 2] = 7;
  ram.noteWritten(5 * pageBytes, 4);
  ram.noteWrittenByCpu(9 * pageBytes + 8, 4);
  const hart = new Hart({ ram, bus: new Bus(), readTime: () => 0n, watchedStore: () => {} });
  storeSlow(hart, ramBaseAddress + 12 * pageBytes + 64, 4, 0x1234); // M-mode, bare: physical
  assert.deepEqual(marked(ram), [1, 2, 5, 9, 12]);
  assert.deepEqual(ram.nonZeroPages(), [1, 2, 5, 12]);
});

for (const wasm of [false, true]) {
  test(`a restore marks the pages it brings and no others; a bad one leaves RAM and marks as they were${wasm ? ' (RAM in a WebAssembly memory: restored in place)' : ''}`, () => {
    const source = new Ram(ramBytes);
    source.writeBytes(ramBaseAddress + 4 * pageBytes, Uint8Array.of(9));
    source.writeBytes(ramBaseAddress + 7 * pageBytes, Uint8Array.of(0)); // marked, but zeros: not saved
    const writer = new SnapshotWriter();
    source.save(writer);
    const snapshot = writer.finish();

    const target = new Ram(ramBytes, { wasm });
    assert.equal(target.arena !== undefined, wasm);
    const views = target.i32;
    // The hart's part of the memory, after RAM: a restore must not touch it.
    const header = wasm ? new Uint8Array(target.arena!.buffer, target.arena!.headerOffset, 64).fill(0xa5) : undefined;
    target.writeBytes(ramBaseAddress + 20 * pageBytes, Uint8Array.of(5));
    target.writeBytes(ramBaseAddress + ramBytes - 1, Uint8Array.of(6)); // the last byte of RAM
    target.restore(new SnapshotReader(snapshot));
    assert.deepEqual(marked(target), [4]);
    assert.equal(target.u8[4 * pageBytes], 9);
    assert.equal(target.u8[20 * pageBytes], 0);
    assert.equal(target.u8[ramBytes - 1], 0);
    assert.equal(target.i32 === views, wasm, wasm ? 'the views stay (blocks and the hart point into them)' : 'a fresh buffer');
    if (header !== undefined) assert.ok(header.every((byte) => byte === 0xa5), 'the header is untouched');

    const truncated = snapshot.subarray(0, snapshot.length - 100);
    assert.throws(() => target.restore(new SnapshotReader(truncated)), SnapshotError);
    assert.deepEqual(marked(target), [4]);
    assert.equal(target.u8[4 * pageBytes], 9);
  });
}
