/**
 * Incremental state digests: two equal machines agree; one register, one page (written, or
 * changed behind the machine's back), one device field changed on one of them is named
 * exactly; write tracking sees stores of every kind (fast path, slow path, misaligned, AMO,
 * DMA) so that the incremental digest always equals one taken from scratch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Machine, BoardMap } from './board.js';
import { VirtualClock } from './clock.js';
import { asm, li } from './cpu/encode.js';
import { pageBytes, ramBaseAddress } from './memory/ram.js';
import { createWasmArena } from './cpu/wasm-arena.js';
import { arenaWordsHash } from './wasm-page-hash.js';
import { bytesHash, compareDigests, describeMismatch, scrubPagesPerDigest, scrubUnwrittenEverySweeps, scrubWindow, StateDigester, wordsHash, type DigestMismatch, type LocalDigest } from './state-digest.js';

const ramBytes = 4 * 1024 * 1024;

/**
 * Stores to eight pages in turn, again and again, so that most go through the store TLB's
 * fast path (words and bytes); misaligned halves (the slow path, byte by byte) and AMOs go
 * to eight other pages.
 */
function writer(): number[] {
  return [
    ...li(8, ramBaseAddress + 0x10_0000), // s0: the first of the pages
    ...li(9, 0x8000), //                    s1: the distance to the other pages
    asm.andi(5, 6, 7), //                   loop: t0 = (t1 & 7) << 12 + s0 + (t1 & 0xf0)
    asm.slli(5, 5, 12),
    asm.add(5, 5, 8),
    asm.andi(7, 6, 0xf0),
    asm.add(5, 5, 7),
    asm.sw(6, 5, 0),
    asm.sb(6, 5, 1),
    asm.add(5, 5, 9),
    asm.sh(6, 5, 5),
    asm.amoaddw(0, 5, 6),
    asm.addi(6, 6, 1),
    asm.jal(0, -44),
  ];
}

function machineRunning(program: readonly number[]): Machine {
  const machine = new Machine({ ramBytes, disks: [] }, new VirtualClock());
  program.forEach((word, index) => (machine.ram.i32[index] = word));
  machine.ram.noteWritten(0, program.length * 4); // as a loader does
  machine.hart.reset(ramBaseAddress);
  return machine;
}

/** A digest of a machine in the same state as `machine`, from scratch. */
function fromScratch(machine: Machine): LocalDigest {
  const copy = new Machine({ ramBytes, disks: [] }, new VirtualClock());
  copy.restore(machine.save());
  return new StateDigester(copy).take();
}

/** The two digests hold the same hashes of everything: registers, parts, every page, RAM. */
function assertSameState(incremental: LocalDigest, scratch: LocalDigest, pages: number, what: string): void {
  assert.deepEqual(incremental.hart, scratch.hart, what);
  assert.deepEqual(incremental.parts, scratch.parts, what);
  for (let page = 0; page < pages; page++) assert.equal(incremental.pageHash(page), scratch.pageHash(page), `${what}: page ${page}`);
  assert.equal(incremental.ramHash, scratch.ramHash, what);
}

test('an incremental digest equals one taken from scratch, after stores of every kind and DMA', () => {
  const machine = machineRunning(writer());
  const digester = new StateDigester(machine);
  digester.take();
  for (let round = 0; round < 20; round++) {
    machine.run(37 + round * 13);
    if (round % 3 === 0) machine.ram.writeBytes(ramBaseAddress + 0x20_0000 + round * 5000, Uint8Array.of(round + 1, 2, 3));
    const incremental = digester.take();
    assert.ok(incremental.pages.length > 0, `round ${round}: pages changed`);
    assertSameState(incremental, fromScratch(machine), machine.ram.pages, `round ${round}`);
  }
});

/** Two machines in the same state, each with its digester, digests taken: ready for one to be corrupted. */
function twins(): { a: Machine; b: Machine; digestA: StateDigester; digestB: StateDigester } {
  const a = machineRunning(writer());
  a.run(500);
  const b = new Machine({ ramBytes, disks: [] }, new VirtualClock());
  b.restore(a.save());
  const digestA = new StateDigester(a);
  const digestB = new StateDigester(b);
  digestA.take();
  digestB.take();
  a.run(300);
  b.run(300);
  return { a, b, digestA, digestB };
}

test('equal machines have equal digests', () => {
  const { digestA, digestB } = twins();
  assert.equal(compareDigests(digestB.take(), digestA.take()), undefined);
});

test('one register differs: named, with both values', () => {
  const { b, digestA, digestB } = twins();
  b.hart.x[9] = b.hart.x[9]! ^ 0x40;
  const mismatch = compareDigests(digestB.take(), digestA.take());
  assert.ok(mismatch !== undefined);
  assert.deepEqual(mismatch.registers.map((r) => r.name), ['x9']);
  assert.deepEqual(mismatch.parts, ['hart'], 'the hart as a whole differs too');
  assert.deepEqual(mismatch.pages, []);
  const line = describeMismatch(mismatch, { mine: 'backup', theirs: 'primary' });
  assert.match(line, /^registers x9 \(primary 0x[0-9a-f]+, backup 0x[0-9a-f]+\); state of hart$/);
});

test('one page written differently: named by its address', () => {
  const { b, digestA, digestB } = twins();
  b.ram.writeBytes(ramBaseAddress + 0x30_0010, Uint8Array.of(0xee));
  const mismatch = compareDigests(digestB.take(), digestA.take());
  assert.ok(mismatch !== undefined);
  assert.deepEqual(mismatch.pages, [ramBaseAddress + 0x30_0000]);
  assert.deepEqual(mismatch.registers, []);
  assert.equal(describeMismatch(mismatch), 'the RAM page at 0x80300000');
});

/** Digests both twins take with the scrub until one differs: the sequence number that found it, and what. */
function scrubUntilFound(digestA: StateDigester, digestB: StateDigester, pages: number, limit: number): { sequence: number; found: DigestMismatch } | undefined {
  for (let sequence = 0; sequence < limit; sequence++) {
    const found = compareDigests(digestB.take(scrubWindow(sequence, pages)), digestA.take(scrubWindow(sequence, pages)));
    if (found !== undefined) return { sequence, found };
  }
  return undefined;
}

test('a page with data changed behind the machine\'s back: found by the scrub that reaches it', () => {
  const { a, b, digestA, digestB } = twins();
  const page = 600; // not one the writer stores to
  for (const machine of [a, b]) machine.ram.writeBytes(ramBaseAddress + page * pageBytes + 100, Uint8Array.of(1, 2, 3));
  assert.equal(compareDigests(digestB.take(), digestA.take()), undefined);
  b.ram.u8[page * pageBytes + 123] = b.ram.u8[page * pageBytes + 123]! ^ 1; // no write reported: a host bug, a bit flip
  const pages = b.ram.pages;
  const result = scrubUntilFound(digestA, digestB, pages, pages / scrubPagesPerDigest);
  assert.ok(result !== undefined, 'found within one sweep of RAM');
  assert.deepEqual(result.found.pages, [ramBaseAddress + page * pageBytes]);
  assert.equal(result.sequence, Math.floor(page / scrubPagesPerDigest), 'in the digest whose window holds the page');
});

test('a page nothing ever wrote, changed behind the machine\'s back: found in the sweep that reads such pages', () => {
  const { b, digestA, digestB } = twins();
  const page = 700;
  assert.equal(b.ram.mayHoldData[page], 0);
  b.ram.u8[page * pageBytes + 5] = 0x40;
  const pages = b.ram.pages;
  const perSweep = pages / scrubPagesPerDigest;
  const result = scrubUntilFound(digestA, digestB, pages, perSweep * scrubUnwrittenEverySweeps);
  assert.ok(result !== undefined, `found within ${scrubUnwrittenEverySweeps} sweeps of RAM`);
  assert.deepEqual(result.found.pages, [ramBaseAddress + page * pageBytes]);
  assert.equal(result.sequence, (scrubUnwrittenEverySweeps - 1) * perSweep + Math.floor(page / scrubPagesPerDigest), 'in the last of those sweeps, at its window');
});

test('the page hash: every one-bit change of a page, and a swap of two words, change it', () => {
  const words = new Int32Array(pageBytes / 4).map((_, i) => Math.imul(i, 0x9e37_79b9));
  const original = wordsHash(words, 0, words.length);
  const seen = new Set<bigint>([original]);
  for (let bit = 0; bit < pageBytes * 8; bit++) {
    words[bit >>> 5]! ^= 1 << (bit & 31);
    seen.add(wordsHash(words, 0, words.length));
    words[bit >>> 5]! ^= 1 << (bit & 31);
  }
  assert.equal(seen.size, pageBytes * 8 + 1, 'each of the 32,768 one-bit changes hashes apart from the page and from the others');
  [words[3], words[700]] = [words[700]!, words[3]!];
  assert.notEqual(wordsHash(words, 0, words.length), original);
  assert.notEqual(bytesHash(Uint8Array.of(1, 2, 3)), bytesHash(Uint8Array.of(1, 2, 3, 0)), 'trailing zeros count: the length is hashed');
  assert.equal(bytesHash(Uint8Array.of(1, 2, 3)), bytesHash(Uint8Array.of(1, 2, 3)));
});

test("the page hash in WebAssembly gives the JavaScript function's values: every one-bit change of a page, other lengths", () => {
  const arena = createWasmArena(ramBytes);
  const hash = arenaWordsHash(arena);
  assert.ok(hash !== undefined, "Node 20's WebAssembly has SIMD");
  const words = new Int32Array(arena.buffer, 0, pageBytes / 4);
  words.forEach((_, i) => (words[i] = Math.imul(i, 0x9e37_79b9) ^ (i >>> 3)));
  for (let bit = 0; bit < pageBytes * 8; bit += 7) {
    words[bit >>> 5]! ^= 1 << (bit & 31);
    assert.equal(hash(0, words.length, pageBytes), wordsHash(words, 0, words.length), `bit ${bit} flipped`);
    words[bit >>> 5]! ^= 1 << (bit & 31);
  }
  const all = new Int32Array(arena.buffer, 0, ramBytes / 4);
  for (const [first, count, length] of [[0, 4, 3], [1024, 4, 16], [4096, 1024, 4096], [8, 64, 250], [100_000, 1024, 4096]] as const) {
    assert.equal(hash(first * 4, count, length), wordsHash(all, first, count, length), `${count} words at ${first}, length ${length}`);
  }
  assert.equal(hash(pageBytes, pageBytes / 4, pageBytes), wordsHash(new Int32Array(pageBytes / 4), 0, pageBytes / 4), 'a page of zeros');
});

test('a machine on the WebAssembly tier (its RAM in a WebAssembly memory) and one on the interpreter: the same digests', () => {
  const interpreted = machineRunning(writer());
  const translated = new Machine({ ramBytes, disks: [] }, new VirtualClock(), { cpu: 'wasm' });
  translated.restore(interpreted.save());
  assert.ok(translated.ram.arena !== undefined && interpreted.ram.arena === undefined);
  const digestI = new StateDigester(interpreted);
  const digestT = new StateDigester(translated);
  for (let round = 0; round < 5; round++) {
    interpreted.run(20_000);
    translated.run(20_000);
    const [i, t] = [digestI.take(), digestT.take()];
    assert.equal(compareDigests(t, i), undefined, `round ${round}`);
    assert.deepEqual(t.pages, i.pages, `round ${round}: the same pages changed, to the same hashes`);
    assert.ok(i.pages.length > 0);
  }
});

test('one device field differs: the device is named', () => {
  const { b, digestA, digestB } = twins();
  b.bus.find(BoardMap.uart + 7)!.device.write(7, 1, 0x5a); // the UART's scratch register
  const mismatch = compareDigests(digestB.take(), digestA.take());
  assert.ok(mismatch !== undefined);
  assert.deepEqual(mismatch.parts, ['uart']);
  assert.deepEqual(mismatch.registers, []);
  assert.deepEqual(mismatch.pages, []);
  assert.equal(describeMismatch(mismatch), 'state of uart');
});
