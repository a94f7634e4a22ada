/**
 * The translation tier (execution-tier.ts): which guest blocks are hot, their compiled
 * functions (translator.ts) per RAM page, running them, and dropping them when their code
 * is written. The interpreter stays the first tier: it runs everything until a block head has
 * been entered {@link hotEntriesMin} times, often enough ({@link entryIntervalMax}), and the
 * tier's compile budget allows it ({@link compileCostInstructions}).
 *
 * How the interpreter finds the tier without paying for it (cpu.ts): a decoded slot whose
 * word 0 has bit 31 set is a block head the tier watches; the loop's test for an empty slot
 * (`w <= 0`) catches both, and only then calls {@link TranslationCache.run}. Heads are marked
 * when the instructions that lead to them are decoded ({@link TranslationCache.decoded}):
 * loop heads (targets of backward branches and jumps) and the instruction after one the tier
 * leaves to the interpreter; the rest of hot code the tier finds where its blocks lead
 * (`exitedTo`), and every compiled block's head is marked. A store that empties a slot clears
 * its mark; the slot's next decoding marks it again.
 *
 * Keeping translations valid:
 * - a translation is built from a RAM page's bytes and the virtual page it was entered from;
 *   it runs only when the fetch TLB maps that virtual page, at the current privilege, to that
 *   RAM page, so satp, SFENCE.VMA, PMP and privilege changes need no flush of their own: the
 *   fetch TLB (mmu.ts) already follows them, and a page is only ever entered through it;
 * - a page with translations never enters the store TLB (mmu.ts asks {@link
 *   TranslationCache.translates}), so every store to it takes the slow path, which reports it
 *   like every other RAM write (DMA, loaders, A/D updates, restores) through
 *   `invalidateCode` (code-cache.ts): the page's translations are dropped, and `attention`
 *   makes a block that wrote its own page leave after that store;
 * - a page whose translations were dropped {@link pageInvalidationsMax} times (code and data
 *   sharing a page, a guest rewriting its code in a loop) is left to the interpreter;
 * - bounded: at most {@link blocksMax} blocks and {@link sourceCharactersMax} characters of
 *   generated source; past either everything is dropped (QEMU's tb_flush) and warms up again.
 *
 * Nothing here is machine state: hotness counts only guest execution (entries of heads), and
 * no snapshot or digest sees any of it.
 */
import type { Hart } from './cpu.js';
import { mulhSigned, mulhSignedUnsigned, mulhUnsigned } from './cpu.js';
import type { ExecutionTier } from './execution-tier.js';
import { Op } from './ops.js';
import { dataPrivilege, dataTlbContext, fetchTlbContext, loadSlow, storeDoubleSlow, storeSlow, tlbEntries } from './mmu.js';
import { headSkipMask, headSkipShift, sinkRegister } from './code-cache.js';
import { takeException } from './traps.js';
import { trapSignal } from './trap-signal.js';
import { chainsWord, compileWasmBlocks, exitPcWord, lastSlotWord, WasmBlockTable, wasmTranslatesAll, type WasmBlock, type WasmBlockEnvironment, type WasmBlockImports } from './translator-wasm.js';
import { HeaderLayout } from './wasm-arena.js';
import { blockExits, blockInstructionsMin, compileBlock, planBlock, translatable, type BlockEnvironment, type BlockFunction, type BlockPlan } from './translator.js';
import type { AccessWidth } from '../devices/device.js';
import { assert } from '../assert.js';

/** Entries of a block head (by the interpreter, or from a translated block) before its block is compiled. */
export const hotEntriesMin = 50;
/**
 * What compiling a block costs, in instructions its code must run to repay it: building the
 * source, `new Function`, and V8 optimizing it (about 3 ms on the machines of
 * docs/BENCHMARKS.md), against some 2-5 ns saved per translated instruction.
 */
export const compileCostInstructions = 500_000;
/** Instructions' worth of compiling the tier may spend before its blocks have repaid any. */
export const compileCreditInstructions = 4_000_000;
/** How many times hotter a head must be while compiled blocks have not repaid their cost. */
export const indebtedHotFactor = 1000;
/**
 * Instructions per entry, on average, above which a head is not hot however often it has been
 * entered: its count starts again. Cold code (a boot) enters many heads thousands of times,
 * but far apart; a hot loop's head is entered every few instructions.
 */
export const entryIntervalMax = 1000;
/** Blocks compiled together at most, in one WebAssembly module (see TranslationCache.region). */
export const regionBlocksMax = 8;
/** Compiled blocks kept at most; past it every translation is dropped. */
export const blocksMax = 8192;
/** Characters of generated source kept at most (about as many bytes of V8 bytecode); past it everything is dropped. */
export const sourceCharactersMax = 32 * 1024 * 1024;
/**
 * A new block's first calls run one pass each (a loop leaves after it, and the tier calls it
 * again), so that V8 records type feedback for the path every exit takes before it optimizes
 * the block's loop: code that V8 optimized in the middle of a first long call (on-stack
 * replacement) had none for it, and deoptimized at every exit: up to 1,900 deoptimizations in
 * one run of mixbench, about 20 with this. More than V8's 8 calls before a function gets its
 * feedback vector.
 */
export const onePassCalls = 12;
/**
 * Entries of a watched head with nothing compiled per call the interpreter makes into the tier
 * there: after a call that ran nothing the tier sets the head's skip count (code-cache.ts,
 * headSkipShift) and counts the call as this many entries. A boot enters such heads some 1.8
 * million times and finds a block at 2% of them; each call cost more than the instructions
 * it let the interpreter run.
 */
export const headCallInterval = 16;
/** Times a page's translations may be dropped by writes before the tier leaves the page to the interpreter. */
export const pageInvalidationsMax = 16;

export interface TierOptions {
  /** Entries of a head before its block is compiled (lockstep verification compiles nearly everything). */
  readonly hotEntries?: number;
  /**
   * Whether the interpreter watches every branch target and fall-through, every return point
   * (lockstep verification, so that nearly every instruction is checked translated); else only
   * loops and what follows an instruction the tier does not translate (see decoded).
   */
  readonly everyBranchHeads?: boolean;
  /** What compiling a block is taken to cost, in instructions its code must run to repay it (0: no limit). */
  readonly compileCostInstructions?: number;
  /** See {@link entryIntervalMax} (Infinity: entries count however far apart). */
  readonly entryIntervalMax?: number;
  /** See {@link headCallInterval} (1: the interpreter calls the tier at every entry of a head). */
  readonly headCallInterval?: number;
  /**
   * What blocks are compiled to: JavaScript (translator.ts, the default) or WebAssembly
   * (translator-wasm.ts; needs RAM in a WebAssembly memory, `Ram.arena`), except blocks with
   * F or D instructions, which stay JavaScript.
   */
  readonly backend?: TierBackend;
}

export type TierBackend = 'js' | 'wasm';

const tlbMask = tlbEntries - 1;
/** Bit 31 of a decoded slot's word 0: a block head (cpu.ts tests `w < 0`). */
const headMark = 0x8000_0000 | 0;
/** What the tier may set in a decoded slot's word 0. */
const tierBits = headMark | headSkipMask;

/**
 * A WebAssembly block's store into a RAM page flagged as holding decoded instructions calls
 * the `stale` import, which empties the slots it overlaps (the interpreter and JavaScript
 * blocks do that inline). A page once run from and then reused for data (Linux frees its init
 * code, and recycles the pages of programs that have exited) kept its flag and cost a call on
 * every store: 3.9 M calls in a Linux boot and `cpubench 50`, every one finding nothing to
 * empty, on 7 pages. After this many such stores in a row a page is scanned, and its flag
 * cleared if no slot holds an instruction; decoding one sets the flag again (mmu.ts).
 */
const staleScanStores = 256;

/** Whether no slot of a decoded page holds an instruction (word 0 of every slot is 0). */
function noDecodedSlots(code: Int32Array): boolean {
  for (let slot = 0; slot < code.length; slot += 2) if (code[slot] !== 0) return false;
  return true;
}
/** `PageTranslations.heads` of a slot where no block can start. */
const refusedHead = 2;
/** Slots per decoded page (one per halfword). */
const slotsPerPage = 2048;

class Block {
  /** False once dropped: links to it are then not followed. */
  valid = true;
  // The last two blocks of the same virtual page that this one went on to, and their pcs.
  linkPc0 = -1;
  link0: Block | undefined = undefined;
  linkPc1 = -1;
  link1: Block | undefined = undefined;
  /** Calls left that may run one pass only (see {@link onePassCalls}). */
  onePassCallsLeft = onePassCalls;

  constructor(
    readonly run: BlockFunction,
    /** Instructions in one pass. */
    readonly length: number,
    /** The virtual page (pc >>> 12) it was translated for: its pc constants. */
    readonly virtualPage: number,
    readonly sourceCharacters: number,
    /** A WebAssembly block's slot in the block table (translator-wasm.ts), -1 for a JavaScript one. */
    readonly wasmSlot = -1,
  ) {}

  /** Remembers `next` as where pc `pc` leads, in place of the older of the two links. */
  link(pc: number, next: Block): void {
    this.linkPc1 = this.linkPc0;
    this.link1 = this.link0;
    this.linkPc0 = pc;
    this.link0 = next;
  }
}

/** The blocks of every page that has none: shared, and never written (see PageTranslations.blocks). */
const noBlocks: (Block | undefined)[] = new Array<Block | undefined>(slotsPerPage).fill(undefined);

/** What the tier knows of one RAM page of code. */
interface PageTranslations {
  /** Per slot (halfword): 1 if the interpreter watches it, 2 if no block can start there (until the code there is written). */
  readonly heads: Uint8Array;
  /** Per slot: entries since counting (re)started (see {@link entryIntervalMax}). */
  readonly entries: Int32Array;
  /**
   * Per slot: the instruction count when its counting started, its low 32 bits (a difference
   * of two such counts is right modulo 2^32, and the intervals compared are far below 2^31).
   */
  readonly countedSince: Int32Array;
  /**
   * Compiled blocks by slot (page offset / 2): an array, not a Map, because the interpreter
   * looks here at every head it enters. {@link noBlocks} until the page's first block: a boot
   * watches heads on some 450 pages and compiles blocks on a few.
   */
  blocks: (Block | undefined)[];
  /** How many of `blocks` are set. */
  blockCount: number;
  invalidations: number;
  /** Left to the interpreter (see {@link pageInvalidationsMax}). */
  abandoned: boolean;
}

/** What the tier needs to know of each op a decoded slot may hold (the C twins included, ops.ts). */
const enum OpKind {
  other = 0,
  directBranch = 1,
  directJump = 2,
  indirectJump = 3,
  /** An instruction a block cannot hold: the interpreter runs it. */
  interpreted = 4,
}
/** By op number: a table, not sets, because `decoded` runs at every decode and V8 inlines it into the run loop. */
const opKinds = new Uint8Array(256);
for (let op = 0; op < 256; op++) if (!translatable(op)) opKinds[op] = OpKind.interpreted;
for (const op of [Op.C_ADDI, Op.C_LUI, Op.C_ANDI, Op.C_SLLI, Op.C_SRLI, Op.C_SRAI, Op.C_ADD, Op.C_SUB, Op.C_XOR, Op.C_OR, Op.C_AND, Op.C_LW, Op.C_SW]) opKinds[op] = OpKind.other;
for (const op of [Op.BEQ, Op.BNE, Op.BLT, Op.BGE, Op.BLTU, Op.BGEU, Op.C_BEQ, Op.C_BNE]) opKinds[op] = OpKind.directBranch;
for (const op of [Op.JAL, Op.C_JAL]) opKinds[op] = OpKind.directJump;
for (const op of [Op.JALR, Op.C_JALR]) opKinds[op] = OpKind.indirectJump;

export class TranslationCache implements ExecutionTier {
  private pages: (PageTranslations | undefined)[];
  /** Per RAM page: 1 while it has compiled blocks (its stores take the slow path). */
  private readonly translatedPages: Uint8Array;
  private blockCount = 0;
  private sourceCharacters = 0;
  private environment: BlockEnvironment;
  /**
   * The WebAssembly back end (TierOptions.backend): the blocks' environment, their table, and
   * the blocks by their slot in it (a chain says which it ran last).
   */
  private readonly wasm: { readonly environment: WasmBlockEnvironment; readonly table: WasmBlockTable; readonly blocks: (Block | undefined)[] } | undefined;
  /** The trap the last `run` took after retiring instructions (for lockstep verification). */
  lastTrap: { readonly pc: number; readonly cause: number; readonly tval: number } | undefined;
  /** Whether one `run` goes on from block to block (lockstep verification turns it off, to compare after each). */
  chains = true;
  /** Blocks compiled since the tier was created (for tests and benchmarks). */
  compiledBlocks = 0;
  /** Of those, compiled to WebAssembly (TierOptions.backend). */
  wasmBlocks = 0;
  /** Compiles (a WebAssembly module of one or more blocks, or a JavaScript block): what compileCost is charged for. */
  compiles = 0;
  /** RAM pages whose decoded-code flag the WebAssembly blocks' stores cleared (see {@link staleScanStores}; for tests). */
  codePageFlagsCleared = 0;

  private readonly hotEntries: number;
  private readonly compileCost: number;
  private readonly entryInterval: number;
  /** Instructions run by translated code since the tier was created. */
  private translatedInstructions = 0;
  private readonly everyBranchHeads: boolean;
  /** Entries a call from the interpreter counts for, and the skip count it leaves (see {@link headCallInterval}). */
  private readonly headCallEntries: number;
  private readonly headSkips: number;

  constructor(private readonly hart: Hart, options: TierOptions = {}) {
    this.hotEntries = options.hotEntries ?? hotEntriesMin;
    this.compileCost = options.compileCostInstructions ?? compileCostInstructions;
    this.entryInterval = options.entryIntervalMax ?? entryIntervalMax;
    this.everyBranchHeads = options.everyBranchHeads ?? false;
    this.headCallEntries = options.headCallInterval ?? headCallInterval;
    this.headSkips = this.headCallEntries - 1;
    const spanMax = this.hotEntries * indebtedHotFactor * this.entryInterval;
    assert(spanMax === Infinity || spanMax < 2 ** 31, () => `entries counted over ${spanMax} instructions do not fit countedSince`);
    assert(Number.isInteger(this.headSkips) && this.headSkips >= 0 && this.headSkips <= headSkipMask >>> headSkipShift, () => `a head call interval of ${this.headCallEntries} does not fit the skip count`);
    this.pages = new Array<PageTranslations | undefined>(hart.ports.ram.pages).fill(undefined);
    this.translatedPages = new Uint8Array(hart.ports.ram.pages);
    this.environment = this.makeEnvironment();
    if (options.backend === 'wasm') {
      const arena = hart.ports.ram.arena;
      const views = hart.arena;
      if (arena === undefined || views === undefined) throw new RangeError('WebAssembly blocks need RAM in a WebAssembly memory');
      this.wasm = {
        environment: { arena, words: views.words, imports: this.makeWasmImports(views.words) },
        table: new WasmBlockTable(arena, blocksMax),
        blocks: new Array<Block | undefined>(blocksMax).fill(undefined),
      };
    }
  }

  run(hart: Hart, budget: number): number {
    if (hart.ports.ram.i32 !== this.environment.ram32) {
      // A restored snapshot replaced RAM's views: everything compiled closes over the old ones.
      this.flush();
      this.environment = this.makeEnvironment();
    }
    const base = hart.runRetired;
    this.lastTrap = undefined;
    let ran = 0;
    let block = this.lookup(hart);
    if (block === undefined) return 0;
    const dataContext = dataTlbContext(dataPrivilege(hart), hart.mstatus);
    const fetchContext = fetchTlbContext(hart.priv);
    const wasm = this.wasm;
    if (wasm !== undefined) wasm.environment.words[chainsWord] = this.chains ? 1 : 0;
    try {
      for (;;) {
        const length = block.length;
        if (length > budget - ran) break;
        let allowed = budget - ran;
        if (block.onePassCallsLeft > 0) {
          block.onePassCallsLeft--;
          allowed = length;
        }
        if (wasm !== undefined && block.wasmSlot >= 0) {
          // WebAssembly: a chain of blocks through the table's trampoline (translator-wasm.ts),
          // which leaves the exit pc and the last block it ran in the header.
          const words = wasm.environment.words;
          ran += wasm.table.call(block.wasmSlot, base + ran, allowed, dataContext, fetchContext);
          hart.pc = words[exitPcWord]!;
          const last = wasm.blocks[words[lastSlotWord]!];
          // Dropped while it ran (it wrote its own page): attention is set, the loop stops.
          if (last === undefined) break;
          block = last;
        } else {
          ran += block.run(hart, base + ran, allowed, dataContext);
        }
        if (hart.attention || !this.chains) break;
        // The next block: one of the two this block went to before (a link stays valid while
        // the block it leads to is, within the same virtual page: same mapping, same
        // privilege while `run` lasts), else looked up through the fetch TLB.
        const pc = hart.pc;
        let next: Block | undefined;
        if (block.linkPc0 === pc) next = block.link0;
        else if (block.linkPc1 === pc) next = block.link1;
        if (next === undefined || !next.valid) {
          next = this.lookupChained(hart, pc);
          if (next === undefined) {
            // Where a block leads to code not yet compiled: counted here, not by the
            // interpreter (which watches fewer heads, see decoded).
            hart.runRetired = base + ran;
            next = this.exitedTo(hart, pc);
            if (next === undefined) break;
          }
          if (next.virtualPage === block.virtualPage) block.link(pc, next);
          // The trampoline follows links to other pages too: it checks them against the fetch TLB.
          if (wasm !== undefined && block.wasmSlot >= 0 && next.wasmSlot >= 0) wasm.table.link(block.wasmSlot, pc, next.wasmSlot);
        }
        block = next;
      }
    } catch (error) {
      // A trap at the first instruction of this call: the interpreter takes it, as if the tier
      // had not been called (its pc and count are the instruction's). Later ones here.
      if (error !== trapSignal || hart.runRetired === base) throw error;
      ran = hart.runRetired - base;
      this.lastTrap = { pc: hart.pc, cause: trapSignal.cause, tval: trapSignal.tval };
      hart.pc = takeException(hart, trapSignal.cause, trapSignal.tval, hart.pc);
    }
    this.translatedInstructions += ran;
    return ran;
  }

  /** The block at `hart.pc` if its page is in the fetch TLB now; counts the entry (and compiles when hot) if there is none. */
  private lookup(hart: Hart): Block | undefined {
    const pc = hart.pc;
    const vpn = pc >>> 12;
    const e = vpn & tlbMask;
    if (hart.fetchTag[e] !== (vpn | fetchTlbContext(hart.priv))) return undefined;
    const page = hart.fetchWordBase[e]! >> 10;
    const offset = pc & 0xffe;
    const block = this.pages[page]?.blocks[offset >>> 1];
    if (block !== undefined && block.virtualPage === vpn) return block;
    const entered = this.entered(page, offset, pc, blockInstructionsMin, this.headCallEntries);
    if (entered === undefined && this.headSkips !== 0) {
      // Nothing to run here yet: the interpreter goes on without calling for the next entries.
      const code = hart.fetchCode[e];
      const word = code?.[offset];
      if (code !== undefined && word !== undefined && word < 0) code[offset] = (word & ~headSkipMask) | (this.headSkips << headSkipShift);
    }
    return entered;
  }

  /**
   * A block left to `pc`, which has no block: counts it as an entry of a head there, and
   * compiles that block when hot, so that the next pass goes on to it.
   */
  private exitedTo(hart: Hart, pc: number): Block | undefined {
    const vpn = pc >>> 12;
    const e = vpn & tlbMask;
    if (hart.fetchTag[e] !== (vpn | fetchTlbContext(hart.priv))) return undefined;
    return this.entered(hart.fetchWordBase[e]! >> 10, pc & 0xffe, pc, 1, 1);
  }

  /** The compiled block at `pc`, reached from another block (no counting: see exitedTo). */
  private lookupChained(hart: Hart, pc: number): Block | undefined {
    const vpn = pc >>> 12;
    const e = vpn & tlbMask;
    if (hart.fetchTag[e] !== (vpn | fetchTlbContext(hart.priv))) return undefined;
    const block = this.pages[hart.fetchWordBase[e]! >> 10]?.blocks[(pc & 0xffe) >>> 1];
    return block !== undefined && block.virtualPage === vpn ? block : undefined;
  }

  decoded(page: number, code: Int32Array, slot: number, pc: number): void {
    const word = code[slot]!;
    const info = this.pages[page];
    if (info !== undefined && info.heads[slot >>> 1] === 1 && !info.abandoned) code[slot] = word | headMark;
    const kind = opKinds[word & 0xff]!;
    if (kind === OpKind.other) return;
    const length = (word >>> 24) & 0x7f;
    const imm = code[slot + 1]!;
    const links = ((word >> 8) & 63) !== sinkRegister;
    if (kind === OpKind.directBranch || kind === OpKind.directJump) {
      // Loops: a backward target. The rest of the code translated blocks lead to is found by
      // the tier itself (exitedTo): each head the interpreter watches costs a call per entry
      // until it is hot, which cold code (a boot) never repays.
      if (imm <= 0 || this.everyBranchHeads) this.markHead((pc + imm) | 0);
      if (this.everyBranchHeads && (kind === OpKind.directBranch || links)) this.markHead((pc + length) | 0);
    } else if (kind === OpKind.indirectJump) {
      if (links && this.everyBranchHeads) this.markHead((pc + length) | 0);
    } else {
      this.markHead((pc + length) | 0);
    }
  }

  translates(page: number): boolean {
    return this.translatedPages[page] === 1;
  }

  codeWritten(page: number, offset: number, length: number): void {
    void offset;
    void length;
    const info = this.pages[page];
    if (info === undefined) return;
    // Heads refused for their code may start a block once it is rewritten.
    const first = Math.max(0, (offset >>> 1) - blockInstructionsMin * 2);
    const last = Math.min(slotsPerPage, (offset + length + 1) >>> 1);
    for (let slot = first; slot < last; slot++) if (info.heads[slot] === refusedHead) info.heads[slot] = 0;
    if (info.blockCount === 0) return;
    this.dropBlocks(info);
    this.translatedPages[page] = 0;
    // A block that wrote its own page must not go on: it leaves after the store (translator.ts).
    this.hart.attention = true;
    if (++info.invalidations >= pageInvalidationsMax) this.abandon(page, info);
  }

  flush(): void {
    for (const info of this.pages) if (info !== undefined) this.dropBlocks(info);
    this.pages.fill(undefined);
    this.translatedPages.fill(0);
    this.blockCount = 0;
    this.sourceCharacters = 0;
  }

  /** Blocks compiled and kept now. */
  get blocks(): number {
    return this.blockCount;
  }

  /** `entries` entries of the head at `offset` of RAM page `page` (virtual `pc`): counts them, compiles when hot. */
  private entered(page: number, offset: number, pc: number, lengthMin: number, entries: number): Block | undefined {
    const info = this.pageInfo(page);
    if (info.abandoned) return undefined;
    const slot = offset >>> 1;
    if (info.heads[slot] === refusedHead) return undefined;
    // In debt (compiled blocks have not yet run enough to repay their compiling, see
    // compileCostInstructions): only much hotter heads are compiled.
    const indebted = this.translatedInstructions + compileCreditInstructions < this.compiles * this.compileCost;
    const threshold = indebted ? this.hotEntries * indebtedHotFactor : this.hotEntries;
    const now = this.hart.currentRetired | 0;
    const counted = info.entries[slot]!;
    if (counted === 0) info.countedSince[slot] = now;
    info.entries[slot] = counted + entries;
    if (counted + entries < threshold) return undefined;
    info.entries[slot] = 0;
    // Hot means frequent: a head entered that often, but over a long time, is counted again.
    if (((now - info.countedSince[slot]!) | 0) > threshold * this.entryInterval) return undefined;
    const plan = planBlock(this.hart.ports.ram.u16, page * slotsPerPage, offset, pc);
    if (plan.instructions.length < lengthMin && !plan.loops) {
      // Too short to be worth the interpreter's call (or nothing to translate: a system
      // instruction, say): the interpreter stops watching this head. Blocks may still lead
      // here (lengthMin 1), unless nothing at all can be translated.
      info.heads[slot] = plan.instructions.length === 0 ? refusedHead : 0;
      const code = this.hart.codePages[page];
      if (code !== undefined) code[offset] = code[offset]! & ~tierBits;
      return undefined;
    }
    if (this.blockCount >= blocksMax || this.sourceCharacters >= sourceCharactersMax) this.flushKeepingHeads();
    const backEnd = this.wasm;
    let block: Block;
    if (backEnd !== undefined && wasmTranslatesAll(plan)) {
      // WebAssembly blocks where the back end translates every instruction, with the blocks
      // this one leads to in the same page, in one module.
      const region = this.region(info, page, offset, pc, plan);
      const compiled = compileWasmBlocks(region.map((member) => member.plan), pc >>> 12, page, backEnd.environment, backEnd.table);
      block = this.install(info, page, offset, pc >>> 12, plan, compiled[0]?.run ?? compileBlock(plan, this.environment), compiled[0]);
      for (let i = 1; i < region.length; i++) {
        const member = region[i]!;
        const wasmBlock = compiled[i];
        if (wasmBlock !== undefined) this.install(info, page, member.offset, pc >>> 12, member.plan, wasmBlock.run, wasmBlock);
      }
    } else {
      // A block with F or D instructions is JavaScript (the same registers and TLBs: they are the arena's views).
      block = this.install(info, page, offset, pc >>> 12, plan, compileBlock(plan, this.environment), undefined);
    }
    this.compiles++;
    if (this.translatedPages[page] === 0) {
      this.translatedPages[page] = 1;
      // From now on every store to the page takes the slow path, which reports it.
      this.hart.storeTag.fill(-1);
    }
    return block;
  }

  /**
   * The blocks compiled with a hot block at `offset` of `page` (its plan `plan`): it first,
   * then, breadth first, those its exits lead to in the same page that have no block yet,
   * up to {@link regionBlocksMax}. Creating a WebAssembly module costs far more than a block
   * in it, and the code a hot block leads to is usually run next.
   */
  private region(info: PageTranslations, page: number, offset: number, pc: number, plan: BlockPlan): { readonly offset: number; readonly plan: BlockPlan }[] {
    const region = [{ offset, plan }];
    const size = Math.min(regionBlocksMax, blocksMax - this.blockCount);
    const virtualPage = pc >>> 12;
    for (let i = 0; i < region.length && region.length < size; i++) {
      for (const target of blockExits(region[i]!.plan)) {
        const targetOffset = target & 0xfff;
        const slot = targetOffset >>> 1;
        if (target >>> 12 !== virtualPage || info.blocks[slot] !== undefined || info.heads[slot] === refusedHead) continue;
        if (region.some((member) => member.offset === targetOffset)) continue;
        const next = planBlock(this.hart.ports.ram.u16, page * slotsPerPage, targetOffset, target);
        if (next.instructions.length === 0 || !wasmTranslatesAll(next)) continue;
        region.push({ offset: targetOffset, plan: next });
        if (region.length === size) break;
      }
    }
    return region;
  }

  /** Makes `run` (compiled from `plan`) the block at `offset` of `page` (for virtual page `virtualPage`), a head the interpreter enters. */
  private install(info: PageTranslations, page: number, offset: number, virtualPage: number, plan: BlockPlan, run: BlockFunction, wasmBlock: WasmBlock | undefined): Block {
    const slot = offset >>> 1;
    // The interpreter enters compiled blocks too, wherever they were found from.
    info.heads[slot] = 1;
    const code = this.hart.codePages[page];
    const word = code?.[offset];
    if (code !== undefined && word !== undefined && word !== 0) code[offset] = (word & ~headSkipMask) | headMark;
    const block = new Block(run, plan.instructions.length, virtualPage, wasmBlock?.bytes ?? run.toString().length, wasmBlock?.slot ?? -1);
    if (this.wasm !== undefined && wasmBlock !== undefined) {
      this.wasmBlocks++;
      this.wasm.blocks[wasmBlock.slot] = block;
      // One pass per call is for V8's feedback on JavaScript blocks; WebAssembly has none to gather.
      block.onePassCallsLeft = 0;
    }
    if (info.blocks === noBlocks) info.blocks = new Array<Block | undefined>(slotsPerPage).fill(undefined);
    const old = info.blocks[slot];
    if (old !== undefined) this.forget(old);
    else info.blockCount++;
    info.blocks[slot] = block;
    this.blockCount++;
    this.sourceCharacters += block.sourceCharacters;
    this.compiledBlocks++;
    return block;
  }

  /**
   * Marks virtual `target` as a block head if the fetch TLB maps its page now (its own page
   * always is: the interpreter has just fetched from it; unless PMP keeps it out of the TLB).
   */
  private markHead(target: number): void {
    const hart = this.hart;
    const vpn = target >>> 12;
    const e = vpn & tlbMask;
    if (hart.fetchTag[e] !== (vpn | fetchTlbContext(hart.priv))) return;
    const code = hart.fetchCode[e];
    if (code === undefined) return;
    const info = this.pageInfo(hart.fetchWordBase[e]! >> 10);
    if (info.abandoned) return;
    const slot = target & 0xffe;
    if (info.heads[slot >>> 1] === refusedHead) return;
    info.heads[slot >>> 1] = 1;
    if (code[slot]! > 0) code[slot] = code[slot]! | headMark;
  }

  private pageInfo(page: number): PageTranslations {
    let info = this.pages[page];
    if (info === undefined) {
      info = { heads: new Uint8Array(slotsPerPage), entries: new Int32Array(slotsPerPage), countedSince: new Int32Array(slotsPerPage), blocks: noBlocks, blockCount: 0, invalidations: 0, abandoned: false };
      this.pages[page] = info;
    }
    return info;
  }

  private dropBlocks(info: PageTranslations): void {
    if (info.blockCount === 0) return;
    for (let slot = 0; slot < slotsPerPage; slot++) {
      const block = info.blocks[slot];
      if (block !== undefined) this.forget(block);
    }
    info.blocks.fill(undefined);
    info.blockCount = 0;
  }

  private forget(block: Block): void {
    block.valid = false;
    if (this.wasm !== undefined && block.wasmSlot >= 0) {
      this.wasm.table.remove(block.wasmSlot);
      this.wasm.blocks[block.wasmSlot] = undefined;
    }
    this.blockCount--;
    this.sourceCharacters -= block.sourceCharacters;
  }

  /** The page's code keeps changing: no more heads or blocks there. */
  private abandon(page: number, info: PageTranslations): void {
    info.abandoned = true;
    info.heads.fill(0);
    const code = this.hart.codePages[page];
    if (code !== undefined) for (let slot = 0; slot < code.length; slot += 2) code[slot] = code[slot]! & ~tierBits;
  }

  /** Drops every block (the caps were reached); the heads stay watched and warm up again. */
  private flushKeepingHeads(): void {
    for (const info of this.pages) if (info !== undefined) this.dropBlocks(info);
    this.translatedPages.fill(0);
  }

  /** The WebAssembly blocks' slow paths (translator-wasm.ts): each publishes pc and count, and leaves the attention word. */
  private makeWasmImports(words: Int32Array): WasmBlockImports {
    const hart = this.hart;
    const attentionWord = HeaderLayout.attention >> 2;
    /** Per RAM page: stores in a row that found the slots they overlap already empty. */
    const emptyStores = new Uint16Array(hart.arena!.codePageFlags.length);
    return {
      load: (va, width, pc, retired) => {
        hart.pc = pc;
        hart.runRetired = retired;
        const value = loadSlow(hart, va, width as AccessWidth);
        words[attentionWord] = hart.attention ? 1 : 0;
        return value;
      },
      store: (va, width, value, pc, retired) => {
        hart.pc = pc;
        hart.runRetired = retired;
        storeSlow(hart, va, width as AccessWidth, value);
        words[attentionWord] = hart.attention ? 1 : 0;
      },
      stale: (index, width) => {
        const page = index >>> 12;
        const stale = hart.codePages[page];
        if (stale === undefined) return;
        const at = index & 0xffe;
        const before = (index - 2) & 0xffe;
        const after = width === 4 ? (index + 2) & 0xffe : at;
        if ((stale[at]! | stale[before]! | stale[after]!) !== 0) {
          stale[at] = 0;
          stale[before] = 0;
          stale[after] = 0;
          emptyStores[page] = 0;
        } else if (++emptyStores[page]! >= staleScanStores) {
          emptyStores[page] = 0;
          if (noDecodedSlots(stale)) {
            hart.arena!.codePageFlags[page] = 0;
            this.codePageFlagsCleared++;
          }
        }
      },
    };
  }

  private makeEnvironment(): BlockEnvironment {
    const hart = this.hart;
    const ram = hart.ports.ram;
    return {
      x: hart.x,
      ram32: ram.i32,
      ramU8: ram.u8,
      ramI8: ram.i8,
      ramU16: ram.u16,
      ramI16: ram.i16,
      loadTag: hart.loadTag,
      loadAdd: hart.loadAdd,
      storeTag: hart.storeTag,
      storeAdd: hart.storeAdd,
      codePages: hart.codePages,
      f: hart.f,
      fpu: hart.fpu,
      load: (h, va, width, pc, retired) => {
        const target = h as Hart;
        target.pc = pc;
        target.runRetired = retired;
        return loadSlow(target, va, width as AccessWidth);
      },
      store: (h, va, width, value, pc, retired) => {
        const target = h as Hart;
        target.pc = pc;
        target.runRetired = retired;
        storeSlow(target, va, width as AccessWidth, value);
      },
      storeDouble: (h, va, low, high, pc, retired) => {
        const target = h as Hart;
        target.pc = pc;
        target.runRetired = retired;
        storeDoubleSlow(target, va, low, high);
      },
      mulh: mulhSigned,
      mulhsu: mulhSignedUnsigned,
      mulhu: mulhUnsigned,
    };
  }
}
