/** Unit tests for the MMU's contracts, PMP and the code cache, on a bare hart with 1 MiB of RAM. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart } from './cpu.js';
import { Access, fencePage, fillFetch, loadSlow, storeSlow, storeTlbPages, tlbEntries, translate } from './mmu.js';
import { pmpCheck, pmpRegions } from './pmp.js';
import { codePagesMax, invalidateCode } from './code-cache.js';
import { PmpCfg, Priv } from './csr.js';
import { trapSignal } from './trap-signal.js';
import { asm, li } from './encode.js';
import { Bus } from '../memory/bus.js';
import { Ram, ramBaseAddress } from '../memory/ram.js';

function bareHart(ramBytes = 1 << 20): Hart {
  const hart = new Hart({ ram: new Ram(ramBytes), bus: new Bus(), readTime: () => 0n, watchedStore: () => {} });
  hart.reset(ramBaseAddress);
  return hart;
}

/** pmpaddr for a NAPOT region of `bytes` (a power of two, at least 8) at `base`. */
function napot(base: number, bytes: number): number {
  return ((base >>> 2) | ((bytes >>> 3) - 1)) | 0;
}

test('PMP: NAPOT and TOR regions in priority order; the first match decides', () => {
  const cfg = new Uint8Array(16);
  const addr = new Int32Array(16);
  addr[0] = napot(0x8000_0000, 0x1000);
  cfg[0] = PmpCfg.R | 0x18; // NAPOT, read-only
  addr[1] = 0x8010_0000 >>> 2;
  cfg[1] = PmpCfg.R | PmpCfg.W | PmpCfg.X | PmpCfg.TOR;
  const regions = pmpRegions(cfg, addr);
  // TOR starts at the previous pmpaddr, whatever that entry's mode (privileged spec 3.7.1).
  assert.deepEqual(regions.map((r) => [r.bottom, r.top]), [[0x8000_0000, 0x8000_1000], [(addr[0]! >>> 0) * 4, 0x8010_0000]]);
  assert.equal(pmpCheck(regions, 0x8000_0010, 4, PmpCfg.W, Priv.S) & 1, 0, 'the read-only region comes first');
  assert.equal(pmpCheck(regions, 0x8000_2000, 4, PmpCfg.W, Priv.S), 0b11, 'allowed, and alike for the whole page');
  assert.equal(pmpCheck(regions, 0x8010_0000, 4, PmpCfg.R, Priv.S) & 1, 0, 'no region matches: S may not');
  assert.equal(pmpCheck(regions, 0x8010_0000, 4, PmpCfg.R, Priv.M) & 1, 1, 'no region matches: M may');
});

test('translate returns the physical address, and whether PMP treats the whole page alike', () => {
  const hart = bareHart();
  assert.deepEqual({ ...translate(hart, ramBaseAddress + 0x1234, Access.Load, Priv.M, 4) }, { physical: ramBaseAddress + 0x1234, cacheable: true });
  // A 16-byte region inside the page makes the page non-uniform for M too.
  hart.pmpaddr[0] = napot(ramBaseAddress + 0x1000, 16);
  hart.pmpcfg[0] = PmpCfg.R | 0x18;
  hart.pmpChanged();
  assert.deepEqual({ ...translate(hart, ramBaseAddress + 0x1800, Access.Load, Priv.M, 4) }, { physical: ramBaseAddress + 0x1800, cacheable: false });
  assert.throws(() => translate(hart, ramBaseAddress + 0x1000, Access.Store, Priv.S, 4), (error) => error === trapSignal && trapSignal.cause === 7);
});

test('fillFetch returns the RAM page and whether it entered the fetch TLB', () => {
  const hart = bareHart();
  const filled = fillFetch(hart, ramBaseAddress + 0x3004);
  assert.equal(filled, (3 << 1) | 1);
  assert.ok(hart.codePages[3] !== undefined, 'the page has decoded instructions now');
  const e = ((ramBaseAddress + 0x3004) >>> 12) & (tlbEntries - 1);
  assert.equal(hart.fetchCode[e], hart.codePages[3]);
  assert.equal(hart.fetchWordBase[e], 3 * 1024);
  hart.pmpaddr[0] = napot(ramBaseAddress + 0x5000, 16);
  hart.pmpcfg[0] = PmpCfg.X | 0x18;
  hart.pmpChanged();
  assert.equal(fillFetch(hart, ramBaseAddress + 0x5000), 5 << 1, 'a page PMP splits stays out of the TLB');
});

test('a write into a decoded page empties the slots of the instructions it may overlap, and no others', () => {
  const hart = bareHart();
  fillFetch(hart, ramBaseAddress);
  const code = hart.codePages[0]!;
  code.fill(7);
  // Bytes 6..9: the halfwords at 6 and 8, and a 32-bit instruction starting at 4. Slot i's
  // word 0 is at index i (two words per halfword); word 1 (the immediate) is left alone.
  invalidateCode(hart, 0, 6, 4);
  assert.deepEqual([...code.slice(0, 12)], [7, 7, 7, 7, 0, 7, 0, 7, 0, 7, 7, 7]);
  code.fill(7);
  invalidateCode(hart, 0, 0x101, 1); // one odd byte: its halfword (0x100) and the one before
  assert.deepEqual([...code.slice(0xfc, 0x104)], [7, 7, 0, 7, 0, 7, 7, 7]);
  code.fill(7);
  invalidateCode(hart, 0, 0, 2); // at the page's start there is no halfword before
  assert.deepEqual([...code.slice(0, 4)], [0, 7, 7, 7]);
  assert.equal(code[4094], 7);
  invalidateCode(hart, 0, 4094, 2); // the page's last halfword
  assert.deepEqual([...code.slice(4092)], [0, 7, 0, 7]);
});

test('the code cache drops every page when full, and the fetch TLB with it', () => {
  const hart = bareHart((codePagesMax + 1) * 4096);
  for (let page = 0; page < codePagesMax; page++) fillFetch(hart, ramBaseAddress + page * 4096);
  assert.equal(hart.codePageCount, codePagesMax);
  hart.attention = false;
  fillFetch(hart, ramBaseAddress + codePagesMax * 4096);
  assert.equal(hart.codePageCount, 1);
  assert.equal(hart.codePages[0], undefined);
  assert.ok(hart.attention, 'the run loop must look again');
  assert.equal(hart.fetchTag.filter((tag) => tag !== -1).length, 1);
});

test('storeTlbPages names the RAM pages the store TLB maps, whatever virtual pages they are mapped at', () => {
  const hart = bareHart();
  // Sv32, root table at RAM page 1: two megapages onto the start of RAM, at 4 MiB and at 3 GiB
  // (a virtual page number whose << 12 overflows 32 bits).
  const leaf = ((ramBaseAddress >>> 12) << 10) | 0xc7; // V R W A D
  hart.ports.ram.i32[(0x1000 + 1 * 4) >>> 2] = leaf;
  hart.ports.ram.i32[(0x1000 + 0x300 * 4) >>> 2] = leaf;
  hart.satp = (1 << 31) | ((ramBaseAddress + 0x1000) >>> 12);
  hart.priv = Priv.S;
  hart.pmpaddr[0] = -1; // NAPOT over everything: S may
  hart.pmpcfg[0] = PmpCfg.R | PmpCfg.W | PmpCfg.X | 0x18;
  hart.pmpChanged();
  assert.deepEqual(storeTlbPages(hart), []);
  storeSlow(hart, 0x0040_9004, 4, 1);
  storeSlow(hart, 0xc000_5000 | 0, 1, 2);
  storeSlow(hart, 0xc000_5008 | 0, 2, 3);
  assert.deepEqual(storeTlbPages(hart), [5, 9]);
  hart.flushTlb();
  assert.deepEqual(storeTlbPages(hart), []);
});

test('SFENCE.VMA with an address: only its page leaves the TLBs, unless a megapage was walked in its 4 MiB region', () => {
  const hart = bareHart();
  // Sv32, root table at RAM page 1. At 4 MiB, 4 KiB pages through a table at RAM page 2 (virtual
  // pages 0x405 and 0x409 onto RAM pages 5 and 9); at 3 GiB, a megapage onto the start of RAM.
  const leaf = (physicalPage: number): number => (physicalPage << 10) | 0xcf; // V R W X A D
  const ram32 = hart.ports.ram.i32;
  ram32[(0x1000 + 1 * 4) >>> 2] = (((ramBaseAddress + 0x2000) >>> 12) << 10) | 1; // V: a pointer
  ram32[(0x2000 + 5 * 4) >>> 2] = leaf((ramBaseAddress >>> 12) + 5);
  ram32[(0x2000 + 9 * 4) >>> 2] = leaf((ramBaseAddress >>> 12) + 9);
  ram32[(0x1000 + 0x300 * 4) >>> 2] = leaf(ramBaseAddress >>> 12);
  hart.satp = (1 << 31) | ((ramBaseAddress + 0x1000) >>> 12);
  hart.priv = Priv.S;
  hart.pmpaddr[0] = -1; // NAPOT over everything: S may
  hart.pmpcfg[0] = PmpCfg.R | PmpCfg.W | PmpCfg.X | 0x18;
  hart.pmpChanged();
  const pages = [0x0040_5000, 0x0040_9000, 0xc000_6000 | 0]; // TLB indexes 5, 9 and 6
  const fill = (): void => {
    for (const va of pages) {
      storeSlow(hart, va, 4, 1);
      loadSlow(hart, va, 4);
      fillFetch(hart, va);
    }
  };
  const cached = (): number[][] => [hart.fetchTag, hart.loadTag, hart.storeTag].map((tag) => [...tag].filter((t) => t !== -1).map((t) => ((t & 0xfffff) << 12) | 0).sort((a, b) => a - b));
  fill();
  const all = [...pages].sort((a, b) => a - b);
  assert.deepEqual(cached(), [all, all, all]);
  hart.attention = false;
  fencePage(hart, 0x0040_5abc);
  const rest = all.filter((va) => va !== 0x0040_5000);
  assert.deepEqual(cached(), [rest, rest, rest], 'the fenced page alone');
  assert.equal(hart.fetchCode.filter((code) => code !== undefined).length, rest.length, 'its decoded page leaves with it');
  assert.ok(hart.attention, 'the run loop must look again');
  // A fence inside the megapage's region: other pages there may come from the same leaf.
  fill();
  fencePage(hart, 0xc000_a000 | 0);
  assert.deepEqual(cached(), [[], [], []], 'every translation');
  // Emptied, the TLBs forget the megapage: a fence in its region is a page's again once no walk ended there.
  hart.flushTlb();
  for (const va of pages.slice(0, 2)) loadSlow(hart, va, 4);
  loadSlow(hart, 0xc000_6000 | 0, 4);
  fencePage(hart, 0x0040_9000);
  assert.deepEqual(cached()[1], [0xc000_6000 | 0, 0x0040_5000]);
});

// Page-table pages (mmu.ts): replicas whose TLBs differ must write the same RAM.

/** Sv32 entry bits. */
const pte = { V: 1, R: 2, W: 4, X: 8, A: 64, D: 128 } as const;
/** The data page's leaf entry, RAM page 5, readable, writable and executable, A and D clear. */
const dataLeaf = (((ramBaseAddress >>> 12) + 5) << 10) | pte.V | pte.R | pte.W | pte.X;
/** Where that leaf is: entry 5 of the table at RAM page 2, for virtual address 0x0040_5000. */
const dataLeafOffset = 0x2000 + 5 * 4;
const dataVa = 0x0040_5000;
/** A second megapage onto RAM's start, readable and writable, A and D clear, at 0x8040_0000: entry 0x201 of the root. */
const megaLeaf = ((ramBaseAddress >>> 12) << 10) | pte.V | pte.R | pte.W;
const megaLeafOffset = 0x1000 + 0x201 * 4;

/**
 * A hart in S-mode on Sv32 with its root table at RAM page 1: RAM's first 4 MiB mapped at
 * their own addresses by a megapage (code and page tables) and again at 0x8040_0000, and
 * `dataVa` onto RAM page 5 through the table at RAM page 2; `program` at RAM page 3, where pc
 * starts.
 */
function pagedHart(program: number[]): Hart {
  const hart = bareHart();
  const ram32 = hart.ports.ram.i32;
  ram32[(0x1000 + 0x200 * 4) >>> 2] = ((ramBaseAddress >>> 12) << 10) | pte.V | pte.R | pte.W | pte.X | pte.A | pte.D;
  ram32[megaLeafOffset >>> 2] = megaLeaf;
  ram32[(0x1000 + 1 * 4) >>> 2] = (((ramBaseAddress + 0x2000) >>> 12) << 10) | pte.V;
  ram32[dataLeafOffset >>> 2] = dataLeaf;
  program.forEach((word, index) => (ram32[(0x3000 >>> 2) + index] = word));
  hart.satp = (1 << 31) | ((ramBaseAddress + 0x1000) >>> 12);
  hart.priv = Priv.S;
  hart.pmpaddr[0] = -1; // NAPOT over everything: S may
  hart.pmpcfg[0] = PmpCfg.R | PmpCfg.W | PmpCfg.X | 0x18;
  hart.pmpChanged();
  hart.pc = ramBaseAddress + 0x3000;
  return hart;
}

/** The address of `program`'s last instruction (a jump to itself) in pagedHart. */
const spinAddress = (program: readonly number[]): number => (ramBaseAddress + 0x3000 + 4 * (program.length - 1)) | 0;

interface AgingCase {
  /** The leaf's offset in RAM, and its value with A and D clear. */
  readonly leafOffset: number;
  readonly leaf: number;
  /** A virtual address it maps. */
  readonly va: number;
  /** The instruction that writes x7 (the leaf, A and D clear) to the leaf at x6. */
  readonly clear: number;
}

/**
 * The guest of the TLB tests: writes the leaf itself (so that the store TLB maps the table's
 * page before any walk reads it), touches the page it maps (a load and a store: the walks set A
 * and D), then, after `clearing` instructions, clears A and D in the leaf with `clear` and no
 * SFENCE.VMA, touches the page again and spins.
 */
function agingGuest({ leafOffset, leaf, va, clear }: AgingCase): { program: number[]; clearing: number } {
  const program = [
    ...li(5, va), // the page
    ...li(6, ramBaseAddress + leafOffset), // its leaf, through the first megapage
    ...li(7, leaf), // the leaf with A and D clear
    asm.sw(7, 6, 0),
    asm.lw(8, 5, 0),
    asm.sw(8, 5, 0),
  ];
  const clearing = program.length;
  program.push(clear, asm.lw(8, 5, 0), asm.sw(8, 5, 0), asm.jal(0, 0));
  return { program, clearing };
}

const agingCases: [string, AgingCase][] = [
  ['a store to a level-0 leaf', { leafOffset: dataLeafOffset, leaf: dataLeaf, va: dataVa, clear: asm.sw(7, 6, 0) }],
  ['an AMO on a level-0 leaf', { leafOffset: dataLeafOffset, leaf: dataLeaf, va: dataVa, clear: asm.amoswapw(0, 6, 7) }],
  ['a store to a megapage leaf', { leafOffset: megaLeafOffset, leaf: megaLeaf, va: 0x8040_5000 | 0, clear: asm.sw(7, 6, 0) }],
];

for (const [name, guest] of agingCases) {
  test(`a guest that clears A and D with ${name} and no fence writes the same RAM whatever its TLBs held (a join, a live copy)`, () => {
    const { program, clearing } = agingGuest(guest);
    const kept = pagedHart(program);
    const emptied = pagedHart(program);
    const leafIndex = guest.leafOffset >>> 2;
    assert.equal(kept.run(clearing).reason, 'budget');
    assert.equal(emptied.run(clearing).reason, 'budget');
    assert.equal(kept.ports.ram.i32[leafIndex], guest.leaf | pte.A | pte.D, 'the touches set A and D');
    emptied.flushTlb(); // as the primary does when a backup joins, while this backup keeps its TLBs
    kept.run(10);
    emptied.run(10);
    assert.equal(kept.pc, spinAddress(program), 'no trap: at the final spin');
    assert.equal(emptied.pc, kept.pc);
    assert.equal(kept.ports.ram.i32[leafIndex], emptied.ports.ram.i32[leafIndex], 'the leaf');
    assert.equal(kept.ports.ram.i32[leafIndex], guest.leaf | pte.A | pte.D, 'set again by the touches after the clearing');
    assert.ok(Buffer.compare(kept.ports.ram.u8, emptied.ports.ram.u8) === 0, 'RAM');
  });
}

test('a store through a table that maps itself keeps that page out of the store TLB', () => {
  // The leaf maps the table's own page, RAM page 2, at dataVa. A store through it walks page 2
  // and writes it; were its translation entered into the store TLB, the store that clears the
  // leaf's A and D through the same mapping would hit it and drop nothing.
  const selfLeaf = (((ramBaseAddress >>> 12) + 2) << 10) | pte.V | pte.R | pte.W;
  const program = [
    asm.lui(5, dataVa),
    ...li(6, ramBaseAddress + dataLeafOffset),
    ...li(7, selfLeaf),
    asm.sw(7, 6, 0),
    asm.sw(0, 5, 0x400), // through the leaf into its own table
  ];
  const clearing = program.length;
  program.push(asm.sw(7, 5, dataLeafOffset & 0xfff), asm.sw(0, 5, 0x400), asm.jal(0, 0));
  const kept = pagedHart(program);
  const emptied = pagedHart(program);
  kept.run(clearing);
  emptied.run(clearing);
  emptied.flushTlb();
  kept.run(10);
  emptied.run(10);
  assert.deepEqual([kept.pc, emptied.pc], [spinAddress(program), spinAddress(program)], 'no trap: at the final spin');
  assert.equal(kept.ports.ram.i32[dataLeafOffset >>> 2], selfLeaf | pte.A | pte.D);
  assert.ok(Buffer.compare(kept.ports.ram.u8, emptied.ports.ram.u8) === 0, 'RAM');
});

test('page-table pages: a walk marks the pages it reads and drops store-TLB entries onto them; a write there drops what may derive from the written entry, a walk\'s A/D update nothing', () => {
  const hart = pagedHart([]);
  const ram = hart.ports.ram;
  const [rootPage, tablePage] = [1, 2];
  const live = (): number[] => [hart.fetchTag, hart.loadTag, hart.storeTag].map((tag) => tag.filter((t) => t !== -1).length);
  // The store TLB maps the table's page (through the megapage) before any walk has read it.
  storeSlow(hart, ramBaseAddress + 0x2800, 4, 0);
  assert.deepEqual(storeTlbPages(hart), [tablePage]);
  assert.equal(hart.walkedPages[tablePage], 0);
  loadSlow(hart, dataVa, 4); // walks both levels, and sets A in the leaf
  assert.equal(ram.i32[dataLeafOffset >>> 2], dataLeaf | pte.A);
  assert.deepEqual([hart.walkedPages[rootPage], hart.walkedPages[tablePage]], [2, 1], 'each page with the level it was read at');
  assert.deepEqual(storeTlbPages(hart), [], 'the table\'s page left the store TLB');
  storeSlow(hart, dataVa, 4, 1); // a walk setting D drops nothing
  fillFetch(hart, dataVa);
  loadSlow(hart, ramBaseAddress + 0x6000, 4);
  assert.deepEqual(live(), [1, 2, 1], 'the data page\'s three entries, a load entry through the megapage');
  assert.deepEqual(storeTlbPages(hart), [5]);
  // A store to another entry of the table drops nothing of the data page's, and leaves the
  // table's page out of the store TLB.
  hart.attention = false;
  storeSlow(hart, ramBaseAddress + 0x2800, 4, 0);
  assert.deepEqual(live(), [1, 2, 1]);
  assert.deepEqual(storeTlbPages(hart), [5]);
  assert.ok(!hart.attention, 'no fetch entry went: the run loop goes on');
  // A store to the data page's leaf (a byte of it, rewritten as it was) drops its entries,
  // whatever the level-1 entry they came through.
  storeSlow(hart, ramBaseAddress + dataLeafOffset + 1, 1, ram.u8[dataLeafOffset + 1]!);
  assert.ok(hart.attention, 'its fetch entry went: the run loop must look again');
  assert.deepEqual(live(), [0, 1, 0]);
  assert.deepEqual(hart.walkedPageList, [rootPage, tablePage], 'marks go only with the TLBs');
  // A store to a level-1 entry empties the TLBs, marks and all, and its own translation stays out.
  loadSlow(hart, dataVa, 4);
  storeSlow(hart, ramBaseAddress + 0x1800, 4, 0);
  assert.deepEqual(live(), [0, 0, 0]);
  assert.deepEqual(hart.walkedPageList, []);
  assert.equal(hart.walkedPages.indexOf(1), -1);
  // So does device DMA into a marked page; DMA elsewhere drops nothing.
  loadSlow(hart, dataVa, 4);
  ram.writeBytes(ramBaseAddress + 0x6000, Uint8Array.of(1));
  assert.deepEqual(live(), [0, 1, 0]);
  ram.writeBytes(ramBaseAddress + 0x2ffc, Uint8Array.of(1));
  assert.deepEqual(live(), [0, 0, 0]);
});

test('page-table pages: Bare mode and M-mode walk nothing and mark nothing', () => {
  const hart = bareHart();
  storeSlow(hart, ramBaseAddress + 0x2000, 4, 1);
  loadSlow(hart, ramBaseAddress + 0x2000, 4);
  fillFetch(hart, ramBaseAddress);
  assert.deepEqual(hart.walkedPageList, []);
  assert.deepEqual(storeTlbPages(hart), [2]);
});
