/**
 * Incremental digests of a machine's state, for replicas to compare (PLOVER's per-page
 * digests, in effect): the hart's registers and CSRs by name, a hash of each device's state,
 * and RAM as one hash per page, of which only the pages written since the last digest are
 * hashed again, and those that changed listed. Two machines whose digests agree are equal but for a hash
 * collision; two that differ are told apart down to the register, the device, the page.
 *
 * Cost: a digest hashes the pages written since the previous one (under a microsecond a page,
 * `wordsHash`), a window of others (a scrub that finds changes no write explains), and the
 * devices' state (a few hundred bytes each), then re-arms write tracking: every page is
 * flagged, so that the first store to each page takes the slow path once to report it
 * (src/machine/memory/ram.ts), and the pages the store TLB maps count as written. Two replicas
 * take digests at the same instruction counts.
 */
import type { Machine } from './board.js';
import type { Hart } from './cpu/cpu.js';
import { pageBytes, ramBaseAddress } from './memory/ram.js';
import { arenaWordsHash, type ArenaWordsHash } from './wasm-page-hash.js';

/** A machine's digest as replicas exchange it: plain data. */
export interface MachineDigest {
  /** The values of {@link hartFieldNames}, in order (registers and CSRs, as unsigned numbers). */
  readonly hart: readonly bigint[];
  /** A hash of each part's state but RAM's (the hart as a whole, each device, the board), by name. */
  readonly parts: readonly { readonly name: string; readonly hash: bigint }[];
  /** All of RAM: a sum over every page's hash. */
  readonly ramHash: bigint;
  /** The pages that changed since the previous digest, with their hashes now. */
  readonly pages: readonly { readonly page: number; readonly hash: bigint }[];
}

/** This side's digest, with what it needs to compare another side's (before its next digest). */
export interface LocalDigest extends MachineDigest {
  /** Any page's hash as of this digest (a page not listed has not changed since the previous one). */
  readonly pageHash: (page: number) => bigint;
}

/** What differs between two digests, named; empty lists mean no difference there. */
export interface DigestMismatch {
  readonly registers: readonly { readonly name: string; readonly mine: bigint; readonly theirs: bigint }[];
  readonly parts: readonly string[];
  /** Physical addresses of the pages that differ. */
  readonly pages: readonly number[];
  /** RAM differs, but in no page either side listed (the two sides' hashes were apart already). */
  readonly unlistedRam: boolean;
}

/**
 * Pages hashed again at each digest whether written or not, a window that sweeps all of RAM
 * in turn: a page that changed behind the machine's back (a host bug, a bit flip) is found
 * within `pages / scrubPagesPerDigest` digests even if the guest never writes it again.
 */
export const scrubPagesPerDigest = 64;

/**
 * The scrub reads the pages nothing ever wrote (`Ram.mayHoldData` clear: zeros, by every
 * record) in one sweep of this many, and the others in every sweep. The operating system
 * maps a page of a new buffer on its first touch, and reading one costs a page fault (some
 * 10 µs on a virtual host, 64 of them a digest: two thirds of its time, until every page has
 * been read once). Those pages' only risk is a write no path recorded, which the suite checks
 * for after every test guest (the marks against RAM's contents).
 */
export const scrubUnwrittenEverySweeps = 16;

/** The pages a digest scrubs: a window chosen by the digest's sequence number, the same on both replicas. */
export function scrubWindow(sequence: number, pages: number): { readonly first: number; readonly count: number; readonly unwritten: boolean } {
  const count = Math.min(scrubPagesPerDigest, pages);
  const sweep = Math.floor((sequence * count) / pages);
  return { first: (sequence * count) % pages, count, unwritten: sweep % scrubUnwrittenEverySweeps === scrubUnwrittenEverySweeps - 1 };
}

const hartFields: readonly (readonly [string, (hart: Hart) => bigint])[] = [
  ...Array.from({ length: 31 }, (_, i) => [`x${i + 1}`, (hart: Hart) => u32(hart.x[i + 1]!)] as const),
  ['pc', (hart) => u32(hart.pc)],
  ['privilege', (hart) => BigInt(hart.priv)],
  ['retired', (hart) => BigInt(hart.retired)],
  ['waiting', (hart) => (hart.waiting ? 1n : 0n)],
  ['halted', (hart) => (hart.halted ? 1n : 0n)],
  ['mstatus', (hart) => u32(hart.mstatus)],
  ['mie', (hart) => u32(hart.mie)],
  ['mip (software)', (hart) => u32(hart.mipSoftware)],
  ['mip (hardware)', (hart) => u32(hart.mipHardware)],
  ['medeleg', (hart) => u32(hart.medeleg)],
  ['mideleg', (hart) => u32(hart.mideleg)],
  ['mtvec', (hart) => u32(hart.mtvec)],
  ['stvec', (hart) => u32(hart.stvec)],
  ['mscratch', (hart) => u32(hart.mscratch)],
  ['sscratch', (hart) => u32(hart.sscratch)],
  ['mepc', (hart) => u32(hart.mepc)],
  ['sepc', (hart) => u32(hart.sepc)],
  ['mcause', (hart) => u32(hart.mcause)],
  ['scause', (hart) => u32(hart.scause)],
  ['mtval', (hart) => u32(hart.mtval)],
  ['stval', (hart) => u32(hart.stval)],
  ['satp', (hart) => u32(hart.satp)],
  ['mcounteren', (hart) => u32(hart.mcounteren)],
  ['scounteren', (hart) => u32(hart.scounteren)],
  ['minstret offset', (hart) => hart.instretOffset],
  ['mcycle offset', (hart) => hart.cycleOffset],
  ['reservation address', (hart) => u32(hart.reservationAddress)],
  ['reservation value', (hart) => u32(hart.reservationValue)],
  ...Array.from({ length: 16 }, (_, i) => [`pmpcfg${i}`, (hart: Hart) => BigInt(hart.pmpcfg[i]!)] as const),
  ...Array.from({ length: 16 }, (_, i) => [`pmpaddr${i}`, (hart: Hart) => u32(hart.pmpaddr[i]!)] as const),
  ...Array.from({ length: 32 }, (_, i) => [`f${i}`, (hart: Hart) => (u32(hart.f[2 * i + 1]!) << 32n) | u32(hart.f[2 * i]!)] as const),
  ['fflags', (hart) => BigInt(hart.fpu.flags)],
  ['frm', (hart) => BigInt(hart.frm)],
];

/** The names of a digest's hart values, in order. */
export const hartFieldNames: readonly string[] = hartFields.map(([name]) => name);

function u32(value: number): bigint {
  return BigInt(value >>> 0);
}

const pageWords = pageBytes / 4;
const prime1 = 0x9e37_79b1;
const prime2 = 0x85eb_ca77;

/** The 32-bit finalizer of MurmurHash3: every input bit reaches every output bit. */
function mix32(value: number): number {
  let h = value;
  h = Math.imul(h ^ (h >>> 16), 0x85eb_ca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2_ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * A 64-bit hash of `count` words (a multiple of 4) from `words[first]`, and of `length`: four
 * lanes, each taking every fourth word as `lane = rotl(lane + word * odd, 13) * odd` (xxHash32's
 * round), then both halves mixed from all four lanes, in opposite orders. It is not
 * cryptographic, and need not be: replicas compare it to find what a bug made differ, not what
 * someone chose. Each round is a bijection of the lane for a given word, so pages that differ in
 * one word differ in that lane to the end, and each half of the result is a bijection of each
 * lane (the others fixed: `mix32` is one), so their hashes differ. The multiply after the
 * rotation spreads a one-bit difference over many bits before the next word comes (with the
 * multiply first, a flipped top bit came out as one bit, which a flip in the next word undid:
 * the unit test found 2,200 such pairs among a page's one-bit changes). Other differences
 * collide by chance, about 2^-64. A page takes some 0.6 µs here, against SHA-256's 4 (a digest
 * hashes some 100 pages). RAM in the translation tier's WebAssembly memory is hashed there,
 * with SIMD, to the same values (wasm-page-hash.ts).
 */
export function wordsHash(words: Int32Array, first: number, count: number, length = count * 4): bigint {
  let a = 0x243f_6a88 ^ length;
  let b = 0x85a3_08d3;
  let c = 0x1319_8a2e;
  let d = 0x0370_7344;
  for (let i = first, end = first + count; i < end; i += 4) {
    a = a + Math.imul(words[i]!, prime2);
    a = Math.imul((a << 13) | (a >>> 19), prime1);
    b = b + Math.imul(words[i + 1]!, prime2);
    b = Math.imul((b << 13) | (b >>> 19), prime1);
    c = c + Math.imul(words[i + 2]!, prime2);
    c = Math.imul((c << 13) | (c >>> 19), prime1);
    d = d + Math.imul(words[i + 3]!, prime2);
    d = Math.imul((d << 13) | (d >>> 19), prime1);
  }
  const low = mix32(a + mix32(b + mix32(c + mix32(d))));
  const high = mix32(d ^ mix32(c ^ mix32(b ^ mix32(a ^ 0x1656_67b1))));
  return (BigInt(high) << 32n) | BigInt(low);
}

/** Words for {@link bytesHash}, grown as needed. */
let scratch = new Int32Array(256);

/** {@link wordsHash} of any bytes (a part's state), zero-padded to whole lanes, their length mixed in. */
export function bytesHash(bytes: Uint8Array): bigint {
  const count = Math.ceil(bytes.length / 16) * 4;
  if (scratch.length < count) scratch = new Int32Array(count * 2);
  const view = new Uint8Array(scratch.buffer, 0, count * 4);
  view.set(bytes);
  view.fill(0, bytes.length);
  return wordsHash(scratch, 0, count, bytes.length);
}

const zeroPageHash = wordsHash(new Int32Array(pageWords), 0, pageWords);
const mask64 = (1n << 64n) - 1n;

/**
 * A page's contribution to the RAM hash: its number mixed in, so that equal pages in
 * different places count differently; a zero page counts nothing (so a fresh table sums to 0).
 */
function pageTerm(page: number, hash: bigint): bigint {
  return hash === zeroPageHash ? 0n : (hash ^ ((BigInt(page) * 0x9e37_79b9_7f4a_7c15n) & mask64)) & mask64;
}

export class StateDigester {
  private readonly pageHashes: BigUint64Array;
  private ramHash = 0n;
  /** RAM in the translation tier's WebAssembly memory is hashed there (wasm-page-hash.ts). */
  private readonly arenaHash: ArenaWordsHash | undefined;

  /** Starts tracking `machine`: its first digest hashes every page. */
  constructor(private readonly machine: Machine) {
    const arena = machine.ram.arena;
    this.arenaHash = arena === undefined ? undefined : arenaWordsHash(arena);
    this.pageHashes = new BigUint64Array(machine.ram.pages).fill(zeroPageHash);
    machine.ram.takeWrittenPages([]);
    machine.ram.markAllWritten();
  }

  /**
   * The digest of the machine now; tracks writes afresh from here. With `scrub`, the pages
   * of that window are hashed again too (those never written only if `scrub.unwritten`), and
   * listed if they changed (with no write seen).
   */
  take(scrub?: { readonly first: number; readonly count: number; readonly unwritten?: boolean }): LocalDigest {
    const ram = this.machine.ram;
    const pages: { page: number; hash: bigint }[] = [];
    const update = (page: number, hash: bigint): void => {
      const previous = this.pageHashes[page]!;
      if (hash === previous) return; // written, but as it was: nothing to compare
      pages.push({ page, hash });
      this.pageHashes[page] = hash;
      this.ramHash = (this.ramHash - pageTerm(page, previous) + pageTerm(page, hash) + (1n << 64n)) & mask64;
    };
    if (scrub !== undefined) {
      for (let i = 0; i < scrub.count; i++) {
        const page = (scrub.first + i) % ram.pages;
        // Read even if no write marked it (Ram.mayHoldData), in one sweep of scrubUnwrittenEverySweeps:
        // the scrub is there for a write nothing saw.
        if (ram.writtenSince(page)) continue; // hashed below
        if (scrub.unwritten === true || ram.mayHoldData[page] === 1) update(page, this.hashPage(page, true));
      }
    }
    for (const page of ram.takeWrittenPages(this.machine.hart.storeTlbPages())) update(page, this.hashPage(page));
    const hart = hartFields.map(([, read]) => read(this.machine.hart));
    const parts = this.machine.stateParts().map(({ name, bytes }) => ({ name, hash: bytesHash(bytes) }));
    return { hart, parts, ramHash: this.ramHash, pages, pageHash: (page) => this.pageHashes[page] ?? zeroPageHash };
  }

  /**
   * `page`'s hash; a page never written counts as zeros unread, unless `read`. (A page of zeros
   * hashes to `zeroPageHash`: no separate pass to find one.)
   */
  private hashPage(page: number, read = false): bigint {
    const ram = this.machine.ram;
    if (!read && ram.mayHoldData[page] === 0) return zeroPageHash;
    // RAM starts at the arena's offset 0 (wasm-arena.ts).
    if (this.arenaHash !== undefined) return this.arenaHash(page * pageBytes, pageWords, pageBytes);
    return wordsHash(ram.i32, page * pageWords, pageWords);
  }
}

/**
 * Compares another replica's digest (`theirs`) with this side's, taken at the same epoch
 * (and before this side's next): what differs, by name, or undefined when nothing does. A
 * page listed by one side only changed on that side alone since the previous digest, when
 * the two agreed: it differs.
 *
 * `theirsFromEarlier`: the other side's previous digest is older than this side's start (a
 * replica that took a state in between, as a backup joining a primary that has other backups
 * and keeps its digests going for them). A page this side lists and the other does not may
 * then have changed and changed back on the other side: it is not named; the RAM hash, over
 * every page, still finds a difference.
 */
export function compareDigests(mine: LocalDigest, theirs: MachineDigest, theirsFromEarlier = false): DigestMismatch | undefined {
  const registers: { name: string; mine: bigint; theirs: bigint }[] = [];
  hartFieldNames.forEach((name, index) => {
    const a = mine.hart[index];
    const b = theirs.hart[index];
    if (a !== b) registers.push({ name, mine: a ?? -1n, theirs: b ?? -1n });
  });
  const theirParts = new Map(theirs.parts.map((part) => [part.name, part.hash]));
  const parts = mine.parts.filter((part) => theirParts.get(part.name) !== part.hash).map((part) => part.name);
  for (const part of theirs.parts) if (!mine.parts.some((own) => own.name === part.name)) parts.push(part.name);
  const theirPages = new Set(theirs.pages.map(({ page }) => page));
  const differing = new Set<number>();
  for (const { page, hash } of theirs.pages) if (mine.pageHash(page) !== hash) differing.add(page);
  if (!theirsFromEarlier) for (const { page } of mine.pages) if (!theirPages.has(page)) differing.add(page);
  const pages = [...differing].sort((a, b) => a - b).map((page) => ramBaseAddress + page * pageBytes);
  const unlistedRam = pages.length === 0 && mine.ramHash !== theirs.ramHash;
  if (registers.length === 0 && parts.length === 0 && pages.length === 0 && !unlistedRam) return undefined;
  return { registers, parts, pages, unlistedRam };
}

/** One line a person can act on: which registers (with both values), which parts, which pages. */
export function describeMismatch(mismatch: DigestMismatch, names: { mine: string; theirs: string } = { mine: 'this replica', theirs: 'the other' }): string {
  const said: string[] = [];
  const hex = (value: bigint): string => `0x${value.toString(16)}`;
  if (mismatch.registers.length > 0) {
    const shown = mismatch.registers.slice(0, 8).map((r) => `${r.name} (${names.theirs} ${hex(r.theirs)}, ${names.mine} ${hex(r.mine)})`);
    said.push(`registers ${shown.join(', ')}${mismatch.registers.length > 8 ? ` and ${mismatch.registers.length - 8} more` : ''}`);
  }
  if (mismatch.parts.length > 0) said.push(`state of ${mismatch.parts.join(', ')}`);
  if (mismatch.pages.length > 0) {
    const shown = mismatch.pages.slice(0, 8).map((address) => `0x${address.toString(16)}`);
    said.push(`${mismatch.pages.length === 1 ? 'the RAM page at' : `${mismatch.pages.length} RAM pages at`} ${shown.join(', ')}${mismatch.pages.length > 8 ? ', ...' : ''}`);
  }
  if (mismatch.unlistedRam) said.push('RAM, in pages neither replica listed');
  return said.join('; ');
}
