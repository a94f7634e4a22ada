/**
 * Incremental digests of a machine's state, for replicas to compare (PLOVER's per-page
 * digests, in effect): the hart's registers and CSRs by name, a hash of each device's state,
 * and RAM as one hash per page, of which only the pages written since the last digest are
 * hashed again, and those that changed listed. Two machines whose digests agree are equal but for a hash
 * collision; two that differ are told apart down to the register, the device, the page.
 *
 * Cost: a digest hashes the pages written since the previous one (about 3 µs a page), a
 * window of others (a scrub that finds changes no write explains), and the devices' state
 * (a few hundred bytes each), then re-arms write tracking: every page is
 * flagged and the hart's TLBs emptied, so that the first store to each page takes the slow
 * path once to report it (src/machine/memory/ram.ts). Two replicas take digests at the same
 * instruction counts, so their TLBs are emptied at the same points too.
 */
import { hash } from 'node:crypto';
import type { Machine } from './board.js';
import type { Hart } from './cpu/cpu.js';
import { pageBytes, ramBaseAddress } from './memory/ram.js';

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

/** The pages a digest scrubs: a window chosen by the digest's sequence number, the same on both replicas. */
export function scrubWindow(sequence: number, pages: number): { readonly first: number; readonly count: number } {
  const count = Math.min(scrubPagesPerDigest, pages);
  return { first: (sequence * count) % pages, count };
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

function hash64(bytes: Uint8Array): bigint {
  // The one-shot form: a third faster than a Hash object for a page (digests hash some 90 a time).
  return hash('sha256', bytes, 'buffer').readBigUInt64LE(0);
}

const zeroPageHash = hash64(new Uint8Array(pageBytes));
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

  /** Starts tracking `machine`: its first digest hashes every page. */
  constructor(private readonly machine: Machine) {
    this.pageHashes = new BigUint64Array(machine.ram.pages).fill(zeroPageHash);
    machine.ram.takeWrittenPages([]);
    machine.ram.markAllWritten();
  }

  /**
   * The digest of the machine now; tracks writes afresh from here. With `scrub`, the pages
   * of that window are hashed again too, and listed if they changed (with no write seen).
   */
  take(scrub?: { readonly first: number; readonly count: number }): LocalDigest {
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
        // Read even if no write marked it (Ram.mayHoldData): the scrub is there for a write nothing saw.
        if (!ram.writtenSince(page)) update(page, this.hashPage(page, true)); // written ones are hashed below
      }
    }
    for (const page of ram.takeWrittenPages(this.machine.hart.storeTlbPages())) update(page, this.hashPage(page));
    const hart = hartFields.map(([, read]) => read(this.machine.hart));
    const parts = this.machine.stateParts().map(({ name, bytes }) => ({ name, hash: hash64(bytes) }));
    return { hart, parts, ramHash: this.ramHash, pages, pageHash: (page) => this.pageHashes[page] ?? zeroPageHash };
  }

  /** `page`'s hash; a page never written counts as zeros unread, unless `read`. */
  private hashPage(page: number, read = false): bigint {
    const ram = this.machine.ram;
    const zero = read ? ram.pageReadsZero(page) : ram.pageIsZero(page);
    return zero ? zeroPageHash : hash64(ram.u8.subarray(page * pageBytes, (page + 1) * pageBytes));
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
