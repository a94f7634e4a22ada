/**
 * ELF32 loader for RISC-V executables (the System V ABI's ELF format, RISC-V psABI).
 *
 * Pure: it takes the file's bytes and returns what to put where; the board copies the segments
 * into RAM. Every way a file can be wrong ends in an {@link ImageError} that says what was
 * expected and what was found.
 */
import { ramBaseAddress } from '../memory/ram.js';

export class ImageError extends Error {
  override readonly name = 'ImageError';
}

export interface LoadSegment {
  /** Physical address of the segment's first byte. */
  readonly physicalAddress: number;
  /** Bytes from the file; the rest up to `memoryBytes` is zero. */
  readonly data: Uint8Array;
  readonly memoryBytes: number;
}

export interface LoadedImage {
  readonly entry: number;
  readonly segments: readonly LoadSegment[];
  /** Addresses of symbols the board cares about (HTIF's tohost and fromhost), when present. */
  readonly symbols: ReadonlyMap<string, number>;
}

const elfMagic = [0x7f, 0x45, 0x4c, 0x46];
const ElfClass32 = 1;
const ElfDataLittle = 1;
const ElfTypeExec = 2;
const ElfMachineRiscv = 243;
const ProgramLoad = 1;
const SectionSymtab = 2;
/** Symbols whose addresses the board wants. */
const wantedSymbols = new Set(['tohost', 'fromhost']);

/** A raw image: its bytes at the start of RAM, entered there (as QEMU loads a non-ELF -kernel). */
export function rawImage(bytes: Uint8Array): LoadedImage {
  return { entry: ramBaseAddress, segments: [{ physicalAddress: ramBaseAddress, data: bytes, memoryBytes: bytes.length }], symbols: new Map() };
}

/** What `-kernel` loads: an RV32 ELF executable, or else a raw image at the start of RAM. */
export function loadImage(bytes: Uint8Array): LoadedImage {
  return isElf(bytes) ? parseElf(bytes) : rawImage(bytes);
}

export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && elfMagic.every((byte, i) => bytes[i] === byte);
}

export function parseElf(bytes: Uint8Array): LoadedImage {
  if (!isElf(bytes)) throw new ImageError('not an ELF file (no \\x7fELF magic)');
  if (bytes.length < 52) throw new ImageError(`ELF header truncated: ${bytes.length} bytes, need 52`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes[4] !== ElfClass32) throw new ImageError(`not an RV32 ELF: class ${bytes[4]} (${bytes[4] === 2 ? '64-bit' : 'unknown'}), expected 32-bit`);
  if (bytes[5] !== ElfDataLittle) throw new ImageError('not a little-endian ELF');
  const type = view.getUint16(16, true);
  const machine = view.getUint16(18, true);
  if (machine !== ElfMachineRiscv) throw new ImageError(`not a RISC-V ELF: e_machine ${machine}, expected ${ElfMachineRiscv}`);
  if (type !== ElfTypeExec) throw new ImageError(`not an executable ELF: e_type ${type}, expected ${ElfTypeExec} (EXEC)`);
  const entry = view.getUint32(24, true);
  const programOffset = view.getUint32(28, true);
  const sectionOffset = view.getUint32(32, true);
  const programEntryBytes = view.getUint16(42, true);
  const programCount = view.getUint16(44, true);
  const sectionEntryBytes = view.getUint16(46, true);
  const sectionCount = view.getUint16(48, true);
  if (programCount === 0) throw new ImageError('ELF has no program headers');
  if (programEntryBytes < 32) throw new ImageError(`ELF program header size ${programEntryBytes}, expected 32`);
  if (programOffset + programCount * programEntryBytes > bytes.length) throw new ImageError('ELF program headers run past the end of the file');

  const segments: LoadSegment[] = [];
  for (let i = 0; i < programCount; i++) {
    const base = programOffset + i * programEntryBytes;
    if (view.getUint32(base, true) !== ProgramLoad) continue;
    const fileOffset = view.getUint32(base + 4, true);
    const physicalAddress = view.getUint32(base + 12, true);
    const fileBytes = view.getUint32(base + 16, true);
    const memoryBytes = view.getUint32(base + 20, true);
    if (memoryBytes === 0) continue;
    if (fileBytes > memoryBytes) throw new ImageError(`ELF segment ${i}: file size ${fileBytes} exceeds memory size ${memoryBytes}`);
    if (fileOffset + fileBytes > bytes.length) throw new ImageError(`ELF segment ${i} runs past the end of the file (truncated?)`);
    segments.push({ physicalAddress, data: bytes.subarray(fileOffset, fileOffset + fileBytes), memoryBytes });
  }
  if (segments.length === 0) throw new ImageError('ELF has no loadable segments');
  return { entry, segments, symbols: readSymbols(bytes, view, sectionOffset, sectionEntryBytes, sectionCount) };
}

function readSymbols(bytes: Uint8Array, view: DataView, offset: number, entryBytes: number, count: number): Map<string, number> {
  const symbols = new Map<string, number>();
  if (offset === 0 || count === 0 || entryBytes < 40 || offset + count * entryBytes > bytes.length) return symbols;
  for (let i = 0; i < count; i++) {
    const header = offset + i * entryBytes;
    if (view.getUint32(header + 4, true) !== SectionSymtab) continue;
    const tableOffset = view.getUint32(header + 16, true);
    const tableBytes = view.getUint32(header + 20, true);
    const link = view.getUint32(header + 24, true);
    const symbolBytes = view.getUint32(header + 36, true);
    if (link >= count || symbolBytes < 16 || tableOffset + tableBytes > bytes.length) continue;
    const stringsHeader = offset + link * entryBytes;
    const stringsOffset = view.getUint32(stringsHeader + 16, true);
    const stringsBytes = view.getUint32(stringsHeader + 20, true);
    if (stringsOffset + stringsBytes > bytes.length) continue;
    for (let entry = tableOffset; entry + symbolBytes <= tableOffset + tableBytes; entry += symbolBytes) {
      const nameOffset = view.getUint32(entry, true);
      if (nameOffset >= stringsBytes) continue;
      const name = cString(bytes, stringsOffset + nameOffset, stringsOffset + stringsBytes);
      if (wantedSymbols.has(name)) symbols.set(name, view.getUint32(entry + 4, true));
    }
  }
  return symbols;
}

function cString(bytes: Uint8Array, start: number, limit: number): string {
  let end = start;
  while (end < limit && bytes[end] !== 0) end++;
  return new TextDecoder().decode(bytes.subarray(start, end));
}
