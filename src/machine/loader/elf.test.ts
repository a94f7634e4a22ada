/**
 * Unit tests for the ELF32 loader: files built in memory by a small writer (ELF header,
 * program headers, a symbol table), each way a file can be wrong, hostile mutations, and the
 * real guests/build/hello.elf.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImageError, isElf, parseElf } from './elf.js';

// ---------------------------------------------------------------------------------------------
// A small ELF32 writer (System V gABI: Elf32_Ehdr 52 bytes, Elf32_Phdr 32, Elf32_Shdr 40,
// Elf32_Sym 16).

const EM_RISCV = 243;
const ET_REL = 1, ET_EXEC = 2, ET_DYN = 3;
const PT_LOAD = 1, PT_NOTE = 4, PT_RISCV_ATTRIBUTES = 0x7000_0003;
const SHT_SYMTAB = 2, SHT_STRTAB = 3;
const headerBytes = 52, programHeaderBytes = 32, sectionHeaderBytes = 40, symbolBytes = 16;

interface SegmentSpec {
  readonly type?: number;
  readonly physicalAddress: number;
  readonly virtualAddress?: number;
  readonly data: Uint8Array;
  readonly memoryBytes?: number;
}

interface ElfSpec {
  readonly elfClass?: number;
  readonly dataEncoding?: number;
  readonly type?: number;
  readonly machine?: number;
  readonly entry?: number;
  readonly segments?: readonly SegmentSpec[];
  readonly symbols?: Readonly<Record<string, number>>;
}

/** Where the writer put things, for tests that then damage them. */
interface ElfLayout {
  readonly bytes: Uint8Array;
  readonly sectionOffset: number;
}

function buildElf(spec: ElfSpec): ElfLayout {
  const segments = spec.segments ?? [];
  const symbols = Object.entries(spec.symbols ?? {});
  const chunks: Uint8Array[] = [];
  let length = headerBytes + segments.length * programHeaderBytes;
  const segmentOffsets = segments.map((segment) => {
    const offset = length;
    chunks.push(segment.data);
    length += segment.data.length;
    return offset;
  });

  // Symbol table: the null symbol, then the named ones; string table with a leading NUL.
  const encoder = new TextEncoder();
  const names: number[] = [0];
  const nameOffsets: number[] = [];
  for (const [name] of symbols) {
    nameOffsets.push(names.length);
    names.push(...encoder.encode(name), 0);
  }
  const stringTable = Uint8Array.from(names);
  const symbolTable = new Uint8Array((symbols.length + 1) * symbolBytes);
  const symbolView = new DataView(symbolTable.buffer);
  symbols.forEach(([, value], i) => {
    const entry = (i + 1) * symbolBytes;
    symbolView.setUint32(entry, nameOffsets[i]!, true);
    symbolView.setUint32(entry + 4, value, true);
    symbolView.setUint8(entry + 12, 0x11); // STB_GLOBAL, STT_OBJECT
    symbolView.setUint16(entry + 14, 1, true);
  });
  let symbolTableOffset = 0, stringTableOffset = 0, sectionOffset = 0;
  const sectionCount = symbols.length > 0 ? 3 : 0;
  if (sectionCount > 0) {
    length = align(length, 4, chunks);
    symbolTableOffset = length;
    chunks.push(symbolTable);
    length += symbolTable.length;
    stringTableOffset = length;
    chunks.push(stringTable);
    length += stringTable.length;
    length = align(length, 4, chunks);
    sectionOffset = length;
    const sections = new Uint8Array(sectionCount * sectionHeaderBytes);
    const view = new DataView(sections.buffer);
    const symtab = sectionHeaderBytes, strtab = 2 * sectionHeaderBytes;
    view.setUint32(symtab + 4, SHT_SYMTAB, true);
    view.setUint32(symtab + 16, symbolTableOffset, true);
    view.setUint32(symtab + 20, symbolTable.length, true);
    view.setUint32(symtab + 24, 2, true); // sh_link: the string table
    view.setUint32(symtab + 28, 1, true); // sh_info: first global
    view.setUint32(symtab + 32, 4, true);
    view.setUint32(symtab + 36, symbolBytes, true);
    view.setUint32(strtab + 4, SHT_STRTAB, true);
    view.setUint32(strtab + 16, stringTableOffset, true);
    view.setUint32(strtab + 20, stringTable.length, true);
    view.setUint32(strtab + 32, 1, true);
    chunks.push(sections);
    length += sections.length;
  }

  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, spec.elfClass ?? 1, spec.dataEncoding ?? 1, 1, 0]);
  view.setUint16(16, spec.type ?? ET_EXEC, true);
  view.setUint16(18, spec.machine ?? EM_RISCV, true);
  view.setUint32(20, 1, true);
  view.setUint32(24, spec.entry ?? 0x8000_0000, true);
  view.setUint32(28, segments.length > 0 ? headerBytes : 0, true);
  view.setUint32(32, sectionOffset, true);
  view.setUint16(40, headerBytes, true);
  view.setUint16(42, programHeaderBytes, true);
  view.setUint16(44, segments.length, true);
  view.setUint16(46, sectionHeaderBytes, true);
  view.setUint16(48, sectionCount, true);
  segments.forEach((segment, i) => {
    const base = headerBytes + i * programHeaderBytes;
    view.setUint32(base, segment.type ?? PT_LOAD, true);
    view.setUint32(base + 4, segmentOffsets[i]!, true);
    view.setUint32(base + 8, segment.virtualAddress ?? segment.physicalAddress, true);
    view.setUint32(base + 12, segment.physicalAddress, true);
    view.setUint32(base + 16, segment.data.length, true);
    view.setUint32(base + 20, segment.memoryBytes ?? segment.data.length, true);
    view.setUint32(base + 24, 7, true);
    view.setUint32(base + 28, 4, true);
  });
  let offset = headerBytes + segments.length * programHeaderBytes;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return { bytes, sectionOffset };
}

function align(length: number, to: number, chunks: Uint8Array[]): number {
  const padding = (to - (length % to)) % to;
  if (padding > 0) chunks.push(new Uint8Array(padding));
  return length + padding;
}

const code = Uint8Array.of(0x13, 0x00, 0x00, 0x00, 0x6f, 0x00, 0x00, 0x00); // nop; j .
const initialized = Uint8Array.of(1, 2, 3, 4, 5);

/** A typical two-segment executable: text, then data followed by bss; HTIF symbols. */
function typicalElf(): ElfLayout {
  return buildElf({
    entry: 0x8000_0004,
    segments: [
      { physicalAddress: 0x8000_0000, data: code },
      { type: PT_NOTE, physicalAddress: 0, data: Uint8Array.of(9, 9, 9, 9) },
      { physicalAddress: 0x8000_1000, data: initialized, memoryBytes: 0x100 },
    ],
    symbols: { main: 0x8000_0000, tohost: 0x8000_1008, fromhost: 0x8000_1010 },
  });
}

function patch32(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint32(offset, value, true);
  return copy;
}

function patch16(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint16(offset, value, true);
  return copy;
}

/** Offset of field `field` of program header `index`. */
const programField = (index: number, field: number): number => headerBytes + index * programHeaderBytes + field;

function assertImageError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => parseElf(bytes),
    (error: unknown) => {
      assert.ok(error instanceof ImageError, `expected an ImageError, got ${String(error)}`);
      assert.equal(error.name, 'ImageError');
      assert.match(error.message, pattern);
      return true;
    },
  );
}

// ---------------------------------------------------------------------------------------------

test('elf: a valid RV32 executable loads with its entry, segments, bss and symbols', () => {
  const { bytes } = typicalElf();
  const image = parseElf(bytes);
  assert.equal(image.entry, 0x8000_0004);
  assert.equal(image.segments.length, 2, 'the PT_NOTE is not loaded');
  const [text, data] = image.segments;
  assert.equal(text!.physicalAddress, 0x8000_0000);
  assert.deepEqual(Array.from(text!.data), Array.from(code));
  assert.equal(text!.memoryBytes, code.length);
  assert.equal(data!.physicalAddress, 0x8000_1000);
  assert.deepEqual(Array.from(data!.data), Array.from(initialized));
  assert.equal(data!.memoryBytes, 0x100, 'the bss part is memoryBytes beyond data');
  assert.equal(image.symbols.get('tohost'), 0x8000_1008);
  assert.equal(image.symbols.get('fromhost'), 0x8000_1010);
  assert.equal(image.symbols.has('main'), false, 'only the symbols the board wants');
});

test('elf: isElf looks at the magic only', () => {
  assert.equal(isElf(typicalElf().bytes), true);
  assert.equal(isElf(Uint8Array.of(0x7f, 0x45, 0x4c, 0x46)), true);
  assert.equal(isElf(Uint8Array.of(0x7f, 0x45, 0x4c)), false);
  assert.equal(isElf(new Uint8Array(0)), false);
  assert.equal(isElf(new TextEncoder().encode('#!/bin/sh\n')), false);
});

test('elf: works on a view into a larger buffer (as fs.readFileSync gives)', () => {
  const { bytes } = typicalElf();
  const backing = new Uint8Array(bytes.length + 13);
  backing.fill(0xee);
  backing.set(bytes, 7);
  const image = parseElf(backing.subarray(7, 7 + bytes.length));
  assert.equal(image.entry, 0x8000_0004);
  assert.deepEqual(Array.from(image.segments[0]!.data), Array.from(code));
  assert.equal(image.symbols.get('tohost'), 0x8000_1008);
});

test('elf: a file without symbols loads with an empty symbol map', () => {
  const { bytes } = buildElf({ segments: [{ physicalAddress: 0x8000_0000, data: code }] });
  const image = parseElf(bytes);
  assert.equal(image.symbols.size, 0);
  assert.equal(image.segments.length, 1);
});

test('elf: segments load at their physical address, not the virtual one', () => {
  const { bytes } = buildElf({ segments: [{ physicalAddress: 0x8020_0000, virtualAddress: 0xc000_0000, data: code }] });
  assert.equal(parseElf(bytes).segments[0]!.physicalAddress, 0x8020_0000);
});

test('elf: a bss-only segment (file size 0) loads; a segment of memory size 0 is skipped', () => {
  const { bytes } = buildElf({
    segments: [
      { physicalAddress: 0x8000_0000, data: code },
      { physicalAddress: 0x8000_4000, data: new Uint8Array(0), memoryBytes: 0xc02c },
      { physicalAddress: 0x8000_8000, data: new Uint8Array(0), memoryBytes: 0 },
      { type: PT_RISCV_ATTRIBUTES, physicalAddress: 0, data: Uint8Array.of(0x41) },
    ],
  });
  const image = parseElf(bytes);
  assert.equal(image.segments.length, 2);
  assert.equal(image.segments[1]!.data.length, 0);
  assert.equal(image.segments[1]!.memoryBytes, 0xc02c);
});

test('elf: program headers larger than 32 bytes are stepped over correctly', () => {
  // Re-lay the program headers with e_phentsize 48 (the spec allows larger entries).
  const data = new Uint8Array(8).fill(0xab);
  const phentsize = 48;
  const bytes = new Uint8Array(headerBytes + 2 * phentsize + data.length);
  const view = new DataView(bytes.buffer);
  bytes.set(typicalElf().bytes.subarray(0, headerBytes));
  view.setUint32(28, headerBytes, true);
  view.setUint32(32, 0, true);
  view.setUint16(42, phentsize, true);
  view.setUint16(44, 2, true);
  view.setUint16(48, 0, true);
  for (let i = 0; i < 2; i++) {
    const base = headerBytes + i * phentsize;
    view.setUint32(base, PT_LOAD, true);
    view.setUint32(base + 4, headerBytes + 2 * phentsize + i * 4, true);
    view.setUint32(base + 12, 0x8000_0000 + i * 0x1000, true);
    view.setUint32(base + 16, 4, true);
    view.setUint32(base + 20, 4, true);
  }
  bytes.set(data, headerBytes + 2 * phentsize);
  const image = parseElf(bytes);
  assert.deepEqual(image.segments.map((segment) => segment.physicalAddress), [0x8000_0000, 0x8000_1000]);
});

test('elf: not an ELF file', () => {
  assertImageError(new TextEncoder().encode('hello, world, this is not an executable at all, really'), /not an ELF file/);
  assertImageError(new Uint8Array(0), /not an ELF file/);
  assertImageError(Uint8Array.of(0x7f, 0x45, 0x4c), /not an ELF file/);
  assertImageError(Uint8Array.of(0x7f, 0x45, 0x4c, 0x47, ...new Uint8Array(60)), /not an ELF file/);
});

test('elf: truncated header', () => {
  const { bytes } = typicalElf();
  for (const length of [4, 16, 51]) assertImageError(bytes.subarray(0, length), new RegExp(`ELF header truncated: ${length} bytes, need 52`));
});

test('elf: 64-bit ELF', () => {
  assertImageError(patchIdent(typicalElf().bytes, 4, 2), /not an RV32 ELF: class 2 \(64-bit\), expected 32-bit/);
  assertImageError(patchIdent(typicalElf().bytes, 4, 0), /not an RV32 ELF: class 0 \(unknown\)/);
});

test('elf: big-endian ELF', () => {
  assertImageError(patchIdent(typicalElf().bytes, 5, 2), /not a little-endian ELF/);
});

test('elf: wrong machine', () => {
  assertImageError(patch16(typicalElf().bytes, 18, 3), /not a RISC-V ELF: e_machine 3, expected 243/);
  assertImageError(patch16(typicalElf().bytes, 18, 62), /not a RISC-V ELF: e_machine 62/);
});

test('elf: not an executable (relocatable object, shared object)', () => {
  assertImageError(patch16(typicalElf().bytes, 16, ET_REL), /not an executable ELF: e_type 1, expected 2 \(EXEC\)/);
  assertImageError(patch16(typicalElf().bytes, 16, ET_DYN), /not an executable ELF: e_type 3/);
});

test('elf: no program headers', () => {
  assertImageError(buildElf({ symbols: { tohost: 0 } }).bytes, /ELF has no program headers/);
});

test('elf: a program header size below 32 bytes', () => {
  assertImageError(patch16(typicalElf().bytes, 42, 16), /program header size 16, expected 32/);
});

test('elf: program headers past the end of the file', () => {
  const { bytes } = typicalElf();
  assertImageError(patch32(bytes, 28, bytes.length - 40), /program headers run past the end of the file/);
  assertImageError(patch32(bytes, 28, 0xffff_fff0), /program headers run past the end of the file/);
  assertImageError(patch16(bytes, 44, 0xffff), /program headers run past the end of the file/);
  assertImageError(bytes.subarray(0, headerBytes + programHeaderBytes), /program headers run past the end of the file/);
});

test('elf: a segment past the end of the file', () => {
  const { bytes } = typicalElf();
  assertImageError(patch32(bytes, programField(2, 4), bytes.length - 2), /ELF segment 2 runs past the end of the file/);
  assertImageError(patch32(bytes, programField(0, 4), 0xffff_ffff), /ELF segment 0 runs past the end of the file/);
  // File size grown past the end (and the memory size with it, so only the end is wrong).
  const grown = patch32(patch32(bytes, programField(2, 16), 0x0100_0000), programField(2, 20), 0x0100_0000);
  assertImageError(grown, /ELF segment 2 runs past the end of the file/);
});

test('elf: file size larger than memory size', () => {
  assertImageError(patch32(typicalElf().bytes, programField(0, 20), code.length - 1), /ELF segment 0: file size 8 exceeds memory size 7/);
});

test('elf: no loadable segments', () => {
  const onlyNote = buildElf({ segments: [{ type: PT_NOTE, physicalAddress: 0, data: code }] }).bytes;
  assertImageError(onlyNote, /ELF has no loadable segments/);
  const empty = buildElf({ segments: [{ physicalAddress: 0x8000_0000, data: new Uint8Array(0), memoryBytes: 0 }] }).bytes;
  assertImageError(empty, /ELF has no loadable segments/);
});

test('elf: a broken symbol table never stops the load; it only loses the symbols', () => {
  const { bytes, sectionOffset } = typicalElf();
  const symtab = sectionOffset + sectionHeaderBytes;
  const strtab = sectionOffset + 2 * sectionHeaderBytes;
  const cases: [string, Uint8Array][] = [
    ['section headers past the end', patch32(bytes, 32, bytes.length - 10)],
    ['section header size too small', patch16(bytes, 46, 20)],
    ['string table link out of range', patch32(bytes, symtab + 24, 9)],
    ['symbol entry size too small', patch32(bytes, symtab + 36, 8)],
    ['symbol table past the end', patch32(bytes, symtab + 20, 0x7fff_ffff)],
    ['string table past the end', patch32(bytes, strtab + 16, 0xffff_fff0)],
    ['name offsets past the string table', patch32(bytes, strtab + 20, 1)],
  ];
  for (const [what, broken] of cases) {
    const image = parseElf(broken);
    assert.equal(image.segments.length, 2, what);
    assert.equal(image.symbols.has('tohost'), false, what);
  }
});

test('elf: a name running off the end of the string table is cut there', () => {
  const { bytes, sectionOffset } = buildElf({
    segments: [{ physicalAddress: 0x8000_0000, data: code }],
    symbols: { tohostX: 0x8000_2000 },
  });
  // Shrink the string table so that "tohostX" is read only as far as "tohost".
  const strtab = sectionOffset + 2 * sectionHeaderBytes;
  const shrunk = patch32(bytes, strtab + 20, 1 + 'tohost'.length);
  assert.equal(parseElf(shrunk).symbols.get('tohost'), 0x8000_2000);
  assert.equal(parseElf(bytes).symbols.size, 0, 'the full name is not wanted');
});

test('elf: every prefix of a valid file loads or fails with an ImageError', () => {
  const { bytes } = typicalElf();
  for (let length = 0; length <= bytes.length; length++) {
    try {
      parseElf(bytes.subarray(0, length));
    } catch (error) {
      assert.ok(error instanceof ImageError, `prefix ${length}: ${String(error)}`);
    }
  }
});

test('elf: hostile mutations load or fail with an ImageError, never anything else', () => {
  const { bytes } = typicalElf();
  let seed = 0x2545_f491;
  const next = (): number => {
    // xorshift32: repeatable, so a failure names its iteration.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return seed >>> 0;
  };
  const interesting = [0, 1, 0x7f, 0x80, 0xff];
  for (let iteration = 0; iteration < 3000; iteration++) {
    const mutated = bytes.slice();
    const edits = 1 + (next() % 4);
    for (let i = 0; i < edits; i++) {
      const at = next() % mutated.length;
      mutated[at] = next() % 2 === 0 ? interesting[next() % interesting.length]! : next() & 0xff;
    }
    mutated.set([0x7f, 0x45, 0x4c, 0x46]); // keep the magic so the parser goes deep
    try {
      const image = parseElf(mutated);
      for (const segment of image.segments) assert.ok(segment.data.length <= segment.memoryBytes, `iteration ${iteration}`);
    } catch (error) {
      assert.ok(error instanceof ImageError, `iteration ${iteration}: ${String(error)}`);
    }
  }
});

test('elf: the real guests/build/hello.elf', () => {
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
  const file = path.join(repoRoot, 'guests/build/hello.elf');
  assert.ok(fs.existsSync(file), `${file} is missing: run make -C guests`);
  const bytes = fs.readFileSync(file);
  const image = parseElf(bytes);
  assert.equal(image.entry, 0x8000_0000);
  assert.ok(image.segments.length >= 1);
  assert.ok(image.segments.some((segment) => segment.data.length > 0), 'some code');
  for (const segment of image.segments) {
    assert.ok(segment.physicalAddress >= 0x8000_0000, `segment at 0x${segment.physicalAddress.toString(16)}`);
    assert.ok(segment.data.length <= segment.memoryBytes);
  }
  const text = image.segments.find((segment) => segment.physicalAddress === image.entry);
  assert.ok(text !== undefined, 'a segment starts at the entry point');
  assert.ok(text.data.length >= 4);
});

/** A copy with byte `index` of e_ident set to `value`. */
function patchIdent(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[index] = value;
  return copy;
}
