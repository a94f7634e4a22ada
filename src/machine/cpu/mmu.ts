/**
 * The MMU: Sv32 translation (privileged spec 4.3), the software TLBs that the run loop's fast
 * path reads, PMP on every physical access, and the slow paths for the loads and stores that
 * the fast path does not take: TLB misses, faults, MMIO, misaligned accesses and stores to
 * watched pages (HTIF tohost). Faults are thrown as the {@link TrapSignal}.
 *
 * The state is the hart's (`Hart.fetchTag` and the other TLB arrays, `Hart.pmpRegions`), so
 * that the run loop reaches it the way V8 compiles fastest; only this file writes it.
 *
 * Three software TLBs (fetch, load, store), direct-mapped by virtual page number:
 * tag = vpn | context (-1 = empty), where the context holds what a translation depends on
 * besides satp (see {@link fetchTlbContext}, {@link dataTlbContext}), so that mode switches need no
 * flush; satp writes, SFENCE.VMA and PMP changes flush. For loads and stores `add` = RAM index
 * - virtual address, so a hit is one typed-array access; a fetch hit gives the page's decoded
 * instructions (code-cache.ts) and the index in `Ram.i32` of its first word. A page enters a
 * TLB only if PMP treats the whole page alike.
 *
 * Page-table pages. What the TLBs hold must not be observable, because replicas' TLBs differ
 * (a primary empties its TLBs when a backup joins while other backups keep theirs; a live copy
 * empties the primary's store TLB; the translation tier empties the store TLB when it first
 * compiles on a page): a walk sets A and D in RAM, a TLB hit does not, so if a guest clears A
 * or D without SFENCE.VMA (Linux's page aging clears A with an AMO and no fence), a replica
 * that walks again would write RAM that one hitting its TLB does not. So every RAM page a walk
 * reads an entry from is marked (`Hart.walkedPages`, a bit per level it was read at) until the
 * TLBs are emptied, a marked page never stays in the store TLB, and a write to a marked page
 * (a store of any kind, or DMA) drops every entry that may derive from the written entry:
 * - a level-0 entry at index i of its table is read only for virtual page numbers whose low
 *   ten bits are i, which sit at TLB index i mod 512 (tlbEntries divides 1024): the entries
 *   there with those low bits go, in all three TLBs (some 65,000 stores of a Linux boot land
 *   in tables walks have read; emptying the TLBs at each, as a first version did, made the
 *   boot 11-14% slower);
 * - a level-1 entry covers 4 MiB, whose pages may sit anywhere: the TLBs are emptied, as they
 *   are for DMA into any marked page.
 * The invariant: a replica holding a TLB entry derived from an entry in page P has P marked
 * at that entry's level (marks are cleared only with the TLBs), so after any write to an entry
 * no replica holds a TLB entry derived from it; every TLB entry a replica holds comes from
 * page-table entries unwritten since its walk, whose A (and D, for a store entry) that walk
 * set. A walk on one replica where another hits then reads the same entries, finds the same
 * bits set, and writes nothing: replicas with different TLBs write the same RAM. Walks
 * themselves set A and D without dropping anything (they write what a hit elsewhere implies is
 * there). Dropping more than this is always safe, so fences and flushes need no care.
 */
import { ramBaseAddress, pageBytes } from '../memory/ram.js';
import type { AccessWidth } from '../devices/device.js';
import { Cause, PmpCfg, Priv, Status, type PrivilegeLevel } from './csr.js';
import { pmpCheck, pmpRegions } from './pmp.js';
import { codePage, decodeInto, invalidateCode } from './code-cache.js';
import { raise, trapSignal } from './trap-signal.js';
import type { Hart } from './cpu.js';

/** Entries in each software TLB (fetch, load, store); a power of two. */
export const tlbEntries = 512;
const tlbMask = tlbEntries - 1;

export const enum Access {
  Fetch = 0,
  Load = 1,
  Store = 2,
}

const pageFaultCause = [Cause.InstructionPageFault, Cause.LoadPageFault, Cause.StorePageFault];
const accessFaultCause = [Cause.InstructionAccessFault, Cause.LoadAccessFault, Cause.StoreAccessFault];
const pmpPermission = [PmpCfg.X, PmpCfg.R, PmpCfg.W];

const enum Pte {
  V = 1,
  R = 2,
  W = 4,
  X = 8,
  U = 16,
  A = 64,
  D = 128,
}

/**
 * What {@link translate} returns. One object, overwritten by the next translation: read it
 * at once (everything here is synchronous).
 */
export interface Translation {
  /** The physical address; Sv32 reaches 34 bits, so it may be above 4 GiB. */
  physical: number;
  /** PMP treats the whole page alike, so the page may enter a TLB. */
  cacheable: boolean;
}
const translation: Translation = { physical: 0, cacheable: false };

/** The TLB context of fetches at privilege `priv`. */
export function fetchTlbContext(priv: PrivilegeLevel): number {
  return priv << 20;
}

/** The TLB context of loads and stores at (effective) privilege `priv`: with SUM and MXR. */
export function dataTlbContext(priv: PrivilegeLevel, mstatus: number): number {
  return (priv << 20) | ((mstatus & (Status.SUM | Status.MXR)) << 4);
}

/** The privilege that loads and stores use: MPP when MPRV is set in M-mode. */
export function dataPrivilege(hart: Hart): PrivilegeLevel {
  if (hart.priv === Priv.M && (hart.mstatus & Status.MPRV) !== 0) return ((hart.mstatus & Status.MPP) >>> Status.MPP_SHIFT) as PrivilegeLevel;
  return hart.priv;
}

/** Empties the TLBs, and forgets what they came from; the run loop looks again before its next fetch. */
export function flushTlb(hart: Hart): void {
  hart.fetchTag.fill(-1);
  hart.loadTag.fill(-1);
  hart.storeTag.fill(-1);
  hart.fetchCode.fill(undefined);
  hart.megapageRegions.fill(0);
  const walked = hart.walkedPages;
  for (const page of hart.walkedPageList) walked[page] = 0;
  hart.walkedPageList.length = 0;
  hart.attention = true;
}

/**
 * A walk read a page-table entry at `level` (1 or 0) from RAM page `page`, whose mark lacks
 * that level: marks it, and if the page was unmarked, drops the store TLB's entries that map
 * it, so that every store to it takes the slow path (see "Page-table pages" above).
 */
function markWalked(hart: Hart, page: number, level: number): void {
  const marks = hart.walkedPages[page]!;
  hart.walkedPages[page] = marks | (1 << level);
  if (marks !== 0) return;
  hart.walkedPageList.push(page);
  const tag = hart.storeTag;
  const add = hart.storeAdd;
  for (let e = 0; e < tlbEntries; e++) {
    // fillData: add = the page's RAM offset - (vpn << 12) (see storeTlbPages).
    if (tag[e] !== -1 && ((((tag[e]! & 0xfffff) << 12) + add[e]!) >>> 12) === page) tag[e] = -1;
  }
}

/**
 * The CPU wrote RAM byte `index`, in a marked page: drops the TLB entries that may derive from
 * the entry it is part of ("Page-table pages" above).
 */
function pageTableWritten(hart: Hart, index: number): void {
  if ((hart.walkedPages[index >>> 12]! & 2) !== 0) {
    flushTlb(hart);
    return;
  }
  const low = (index >>> 2) & 0x3ff;
  // The run loop (and a translated block) may be running from that page: look again.
  if (dropAt(hart, low & tlbMask, 0x3ff, low)) hart.attention = true;
}

/**
 * Drops the entries at index `e` of the three TLBs whose virtual page number, masked with
 * `mask`, is `vpn`; true if the fetch TLB's went. (A tag is the virtual page number, bits 0-19,
 * with the context above it; -1 when empty.)
 */
function dropAt(hart: Hart, e: number, mask: number, vpn: number): boolean {
  if ((hart.loadTag[e]! & mask) === vpn) hart.loadTag[e] = -1;
  if ((hart.storeTag[e]! & mask) === vpn) hart.storeTag[e] = -1;
  if (hart.fetchTag[e] === -1 || (hart.fetchTag[e]! & mask) !== vpn) return false;
  hart.fetchTag[e] = -1;
  hart.fetchCode[e] = undefined;
  return true;
}

/**
 * Bytes of RAM page `page` changed by something other than the CPU (DMA, loaders, HTIF, state
 * copies): its decoded instructions go, and if it holds page-table entries the TLBs may have
 * used, the TLBs too ("Page-table pages" above).
 */
export function ramWrittenOutside(hart: Hart, page: number, offset: number, length: number): void {
  invalidateCode(hart, page, offset, length);
  if (hart.walkedPages[page] !== 0) flushTlb(hart);
}

/**
 * SFENCE.VMA with an address (rs1 ≠ x0), which orders the writes to that address's leaf entry:
 * the address's page leaves the three TLBs (each holds it only at one index). If a walk in its
 * 4 MiB region ended at a megapage since the TLBs were last emptied, entries of other pages may
 * come from the same leaf: then every translation goes. Linux fences one page at every
 * page-table change (some 64,000 times in a boot, one every 650 instructions), and emptying
 * the TLBs each time, with the walks that followed, cost the boot about a tenth of its time.
 * (A changed non-leaf entry asks for a fence without an address, privileged spec 4.2.1.)
 */
export function fencePage(hart: Hart, va: number): void {
  if (hart.megapageRegions[va >>> 22] !== 0) {
    flushTlb(hart);
    return;
  }
  const vpn = va >>> 12;
  dropAt(hart, vpn & tlbMask, 0xfffff, vpn);
  hart.attention = true;
}

/** Empties the store TLB alone: the next store to each page takes the slow path (write tracking). */
export function flushStoreTlb(hart: Hart): void {
  hart.storeTag.fill(-1);
}

/**
 * The RAM pages (numbers from RAM's start) that the store TLB maps now: the pages the CPU may
 * write without taking the slow path. Write tracking counts them as written instead of
 * emptying the TLBs (see Ram.takeWrittenPages).
 */
export function storeTlbPages(hart: Hart): number[] {
  const pages = new Set<number>();
  const tag = hart.storeTag;
  const add = hart.storeAdd;
  for (let e = 0; e < tlbEntries; e++) {
    // fillData: add = the page's RAM offset - (vpn << 12), so the page's offset is (vpn << 12) + add.
    if (tag[e] !== -1) pages.add((((tag[e]! & 0xfffff) << 12) + add[e]!) >>> 12);
  }
  return [...pages].sort((a, b) => a - b);
}

/** pmpcfg or pmpaddr changed: rebuilds the PMP regions and flushes the TLBs. */
export function pmpChanged(hart: Hart): void {
  hart.pmpRegions = pmpRegions(hart.pmpcfg, hart.pmpaddr);
  flushTlb(hart);
}

/**
 * Translates `va` for an access of `width` bytes at privilege `priv` and checks PMP; throws
 * the page or access fault. The result is the one {@link Translation}.
 */
export function translate(hart: Hart, va: number, access: Access, priv: PrivilegeLevel, width: number): Translation {
  let physical: number;
  if (priv === Priv.M || (hart.satp >>> 31) === 0) {
    physical = va >>> 0;
  } else {
    physical = walk(hart, va, access, priv);
  }
  const pmp = pmpCheck(hart.pmpRegions, physical, width, pmpPermission[access]!, priv);
  if ((pmp & 1) === 0) raise(accessFaultCause[access]!, va);
  translation.physical = physical;
  translation.cacheable = (pmp & 2) !== 0;
  return translation;
}

/** Sv32 page-table walk (privileged spec 4.3.2), setting A and D as QEMU does. */
function walk(hart: Hart, va: number, access: Access, priv: PrivilegeLevel): number {
  const ram = hart.ports.ram;
  let table = (hart.satp & 0x3f_ffff) * pageBytes;
  let level = 1;
  let pte = 0;
  let pteAddress = 0;
  for (;;) {
    const index = level === 1 ? va >>> 22 : (va >>> 12) & 0x3ff;
    pteAddress = table + index * 4;
    if ((pmpCheck(hart.pmpRegions, pteAddress, 4, PmpCfg.R, Priv.S) & 1) === 0 || !ram.contains(pteAddress, 4)) {
      raise(accessFaultCause[access]!, va);
    }
    const pteIndex = pteAddress - ramBaseAddress;
    if ((hart.walkedPages[pteIndex >>> 12]! & (1 << level)) === 0) markWalked(hart, pteIndex >>> 12, level);
    pte = ram.i32[pteIndex >>> 2]!;
    if ((pte & Pte.V) === 0 || (pte & (Pte.R | Pte.W)) === Pte.W) raise(pageFaultCause[access]!, va);
    if (pte & (Pte.R | Pte.X)) break;
    if (level === 0) raise(pageFaultCause[access]!, va);
    level = 0;
    table = (pte >>> 10) * pageBytes;
  }
  // Leaf: permissions.
  const mxr = (hart.mstatus & Status.MXR) !== 0;
  const sum = (hart.mstatus & Status.SUM) !== 0;
  if (access === Access.Fetch) {
    if ((pte & Pte.X) === 0) raise(pageFaultCause[access]!, va);
  } else if (access === Access.Load) {
    if ((pte & Pte.R) === 0 && !(mxr && (pte & Pte.X) !== 0)) raise(pageFaultCause[access]!, va);
  } else if ((pte & Pte.W) === 0) {
    raise(pageFaultCause[access]!, va);
  }
  if (pte & Pte.U) {
    if (priv === Priv.S && (access === Access.Fetch || !sum)) raise(pageFaultCause[access]!, va);
  } else if (priv === Priv.U) {
    raise(pageFaultCause[access]!, va);
  }
  const ppn = pte >>> 10;
  if (level === 1 && (ppn & 0x3ff) !== 0) raise(pageFaultCause[access]!, va); // misaligned superpage
  if (level === 1) hart.megapageRegions[va >>> 22] = 1;
  // A and D: set by the hardware, with the PTE updated in memory.
  let updated = pte | Pte.A;
  if (access === Access.Store) updated |= Pte.D;
  if (updated !== pte) {
    // Not a write that empties the TLBs: see "Page-table pages" above.
    const pteIndex = pteAddress - ramBaseAddress;
    ram.i32[pteIndex >>> 2] = updated;
    ram.noteWrittenByCpu(pteIndex, 4);
    invalidateCode(hart, pteIndex >>> 12, pteIndex & 0xfff, 4);
  }
  const pageNumber = level === 1 ? (ppn & ~0x3ff) | ((va >>> 12) & 0x3ff) : ppn;
  return pageNumber * pageBytes + (va & 0xfff);
}

/**
 * A fetch from `pc` missed the fetch TLB: translates it, gives the RAM page decoded
 * instructions if it has none (`Hart.codePages[page]` afterwards), and enters the page into
 * the fetch TLB if PMP allows. Returns the RAM page number shifted left by one, with bit 0 set
 * when the page entered the TLB; a page whose PMP rules vary inside it is not entered, and
 * must be looked up again for every instruction. A fetch checks the halfword at `pc` (IALIGN
 * = 16); on a page PMP does not treat alike, a 32-bit instruction's upper halfword is checked
 * too (it may lie in the next 4-byte PMP granule). One that straddles into the next page is
 * checked by {@link fetchInstruction}.
 */
export function fillFetch(hart: Hart, pc: number): number {
  const ram = hart.ports.ram;
  const { physical, cacheable } = translate(hart, pc, Access.Fetch, hart.priv, 2);
  if (!ram.contains(physical, 2)) raise(Cause.InstructionAccessFault, pc);
  const page = (physical - ramBaseAddress) >>> 12;
  const code = codePage(hart, page);
  if (!cacheable) {
    if ((pc & 0xfff) !== 0xffe && (ram.u16[(physical - ramBaseAddress) >>> 1]! & 3) === 3) {
      translate(hart, (pc + 2) | 0, Access.Fetch, hart.priv, 2);
    }
    return page << 1;
  }
  const vpn = pc >>> 12;
  const e = vpn & tlbMask;
  hart.fetchTag[e] = vpn | fetchTlbContext(hart.priv);
  hart.fetchCode[e] = code;
  hart.fetchWordBase[e] = page * 1024;
  return (page << 1) | 1;
}

/**
 * The instruction at `pc` has no decoded slot yet in `code`, the decoded page of the RAM page
 * whose first word is `Ram.i32[wordBase]`: reads it, decodes it into its slot and returns the
 * slot's word 0 (code-cache.ts). A 32-bit instruction in the page's last halfword straddles
 * into the next virtual page: its upper half is fetched through translation, and a fault
 * there reports the address of that second page, as QEMU 7.2 does (the fetch of the upper
 * halfword is the access that fails). It is decoded for this one execution: word 1 of the
 * slot holds its immediate, word 0 stays empty (code-cache.ts says why).
 */
export function fetchInstruction(hart: Hart, code: Int32Array, pc: number, wordBase: number): number {
  const ramU16 = hart.ports.ram.u16;
  const slot = pc & 0xffe;
  const halfIndex = wordBase * 2 + (slot >>> 1);
  const low = ramU16[halfIndex]!;
  if ((low & 3) !== 3) {
    decodeInto(code, slot, low);
  } else if (slot !== 0xffe) {
    decodeInto(code, slot, low | (ramU16[halfIndex + 1]! << 16));
  } else {
    decodeInto(code, slot, low | (fetchHalfword(hart, (pc + 2) | 0) << 16));
    const word = code[slot]!;
    code[slot] = 0;
    return word;
  }
  // The page holds an instruction again: WebAssembly blocks' stores there must empty its slots
  // (translation-cache.ts clears the flag of a page whose slots are all empty).
  if (hart.arena !== undefined) hart.arena.codePageFlags[wordBase >> 10] = 1;
  if (hart.tier !== undefined) hart.tier.decoded(wordBase >> 10, code, slot, pc);
  return code[slot]!;
}

/** The halfword at virtual address `va`, fetched through translation (may throw a fetch fault). */
function fetchHalfword(hart: Hart, va: number): number {
  const ram = hart.ports.ram;
  const { physical } = translate(hart, va, Access.Fetch, hart.priv, 2);
  if (!ram.contains(physical, 2)) raise(Cause.InstructionAccessFault, va);
  return ram.u16[(physical - ramBaseAddress) >>> 1]!;
}

/** Load of `width` bytes through translation, PMP, RAM or MMIO. Returns the raw value. */
export function loadSlow(hart: Hart, va: number, width: AccessWidth): number {
  const priv = dataPrivilege(hart);
  if ((va & (width - 1)) !== 0) return loadMisaligned(hart, va, width);
  const { physical, cacheable } = translate(hart, va, Access.Load, priv, width);
  const ram = hart.ports.ram;
  if (ram.contains(physical, width)) {
    if (cacheable) fillData(hart, hart.loadTag, hart.loadAdd, va, physical, priv);
    const index = physical - ramBaseAddress;
    if (width === 4) return ram.i32[index >>> 2]!;
    if (width === 2) return ram.u16[index >>> 1]!;
    return ram.u8[index]!;
  }
  return mmioRead(hart, va, physical, width, Access.Load);
}

/** Read half of a read-modify-write (AMO, SC): needs store permission, reports store faults. */
export function loadForStore(hart: Hart, va: number): number {
  const { physical } = translate(hart, va, Access.Store, dataPrivilege(hart), 4);
  const ram = hart.ports.ram;
  if (ram.contains(physical, 4)) return ram.i32[(physical - ramBaseAddress) >>> 2]!;
  return mmioRead(hart, va, physical, 4, Access.Store);
}

function loadMisaligned(hart: Hart, va: number, width: number): number {
  // Misaligned loads from RAM complete byte by byte; each byte is translated on its own.
  const ram = hart.ports.ram;
  const priv = dataPrivilege(hart);
  const physicals: number[] = [];
  for (let i = 0; i < width; i++) {
    const { physical } = translate(hart, (va + i) | 0, Access.Load, priv, 1);
    if (!ram.contains(physical, 1)) raise(Cause.LoadAccessFault, va);
    physicals.push(physical);
  }
  let value = 0;
  for (let i = 0; i < width; i++) value |= ram.u8[physicals[i]! - ramBaseAddress]! << (8 * i);
  return value;
}

/** Store of the low `width` bytes of `value` through translation, PMP, RAM or MMIO. */
export function storeSlow(hart: Hart, va: number, width: AccessWidth, value: number): void {
  const priv = dataPrivilege(hart);
  const ram = hart.ports.ram;
  if ((va & (width - 1)) !== 0) {
    storeMisaligned(hart, va, width, value, priv);
    return;
  }
  const { physical, cacheable } = translate(hart, va, Access.Store, priv, width);
  if (!ram.contains(physical, width)) {
    mmioWrite(hart, va, physical, width, value);
    return;
  }
  const index = physical - ramBaseAddress;
  if (width === 4) ram.i32[index >>> 2] = value;
  else if (width === 2) ram.u16[index >>> 1] = value;
  else ram.u8[index] = value;
  // Every page the CPU writes comes here first (the store TLB is filled only below).
  ram.mayHoldData[index >>> 12] = 1;
  invalidateCode(hart, index >>> 12, index & 0xfff, width);
  // A write to a page-table page the TLBs may have used (see "Page-table pages" above). The
  // page stays out of the store TLB: marked, or, if the TLBs were emptied, because the pages
  // this store's own walk read are unmarked now.
  const walked = hart.walkedPages[index >>> 12]!;
  if (walked !== 0) pageTableWritten(hart, index);
  if (ram.pageFlags[index >>> 12] === 0) {
    // A page with translations stays out of the store TLB, so that every store to it comes here.
    if (cacheable && walked === 0 && (hart.tier === undefined || !hart.tier.translates(index >>> 12))) fillData(hart, hart.storeTag, hart.storeAdd, va, physical, priv);
    return;
  }
  hart.ports.watchedStore(physical, width);
}

/**
 * A 64-bit store (FSD) of `low` at `va` and `high` at `va + 4`, as two 32-bit stores. Aligned,
 * both halves lie in one page. Misaligned (RAM only, completed byte by byte), every byte is
 * translated before any is written, so that a fault in the second page leaves memory as it
 * was, as QEMU 7.2 probes both pages of a store that crosses one before writing.
 */
export function storeDoubleSlow(hart: Hart, va: number, low: number, high: number): void {
  if ((va & 7) !== 0) {
    const priv = dataPrivilege(hart);
    for (let i = 0; i < 8; i++) {
      const { physical } = translate(hart, (va + i) | 0, Access.Store, priv, 1);
      if (!hart.ports.ram.contains(physical, 1)) raise(Cause.StoreAccessFault, va);
    }
  }
  storeSlow(hart, va, 4, low);
  storeSlow(hart, (va + 4) | 0, 4, high);
}

function storeMisaligned(hart: Hart, va: number, width: number, value: number, priv: PrivilegeLevel): void {
  const ram = hart.ports.ram;
  const physicals: number[] = [];
  for (let i = 0; i < width; i++) {
    const { physical } = translate(hart, (va + i) | 0, Access.Store, priv, 1);
    if (!ram.contains(physical, 1)) raise(Cause.StoreAccessFault, va);
    physicals.push(physical);
  }
  for (let i = 0; i < width; i++) {
    const index = physicals[i]! - ramBaseAddress;
    ram.u8[index] = value >>> (8 * i);
    ram.mayHoldData[index >>> 12] = 1;
    invalidateCode(hart, index >>> 12, index & 0xfff, 1);
    if (hart.walkedPages[index >>> 12] !== 0) pageTableWritten(hart, index);
    if (ram.pageFlags[index >>> 12] !== 0) hart.ports.watchedStore(physicals[i]!, 1);
  }
}

function fillData(hart: Hart, tag: Int32Array, add: Int32Array, va: number, physical: number, priv: PrivilegeLevel): void {
  const vpn = va >>> 12;
  const e = vpn & tlbMask;
  tag[e] = vpn | dataTlbContext(priv, hart.mstatus);
  add[e] = (physical - ramBaseAddress - (va & 0xfff) - (vpn << 12)) | 0;
}

function mmioRead(hart: Hart, va: number, physical: number, width: AccessWidth, access: Access): number {
  const entry = physical < 2 ** 32 ? hart.ports.bus.find(physical) : undefined;
  if (entry === undefined) return raise(accessFaultCause[access]!, va);
  // Device reads can change device state and interrupt lines: stop and look afterwards.
  hart.attention = true;
  return entry.device.read(physical - entry.base, width) | 0;
}

function mmioWrite(hart: Hart, va: number, physical: number, width: AccessWidth, value: number): void {
  const entry = physical < 2 ** 32 ? hart.ports.bus.find(physical) : undefined;
  if (entry === undefined) raise(Cause.StoreAccessFault, va);
  hart.attention = true;
  const mask = width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff;
  entry.device.write(physical - entry.base, width, (value & mask) >>> 0);
}

/**
 * The instruction word at `pc` as the hart would fetch it now, or 0 if that fetch faults or
 * misses RAM: the tval of an illegal instruction found at run time (as QEMU reports it).
 */
export function instructionBits(hart: Hart, pc: number): number {
  try {
    const low = fetchHalfword(hart, pc);
    if ((low & 3) !== 3) return low;
    return low | (fetchHalfword(hart, (pc + 2) | 0) << 16);
  } catch (error) {
    if (error !== trapSignal) throw error;
    return 0;
  }
}
