/**
 * Unit tests for the translation tier: each program runs on two harts, one with the tier and
 * one on the interpreter alone, in the same slices of instructions, and after every slice the
 * two must be in the same state (registers, pc, count, trap CSRs, RAM). Each test also checks
 * that the tier did translate what it was meant to, so that it cannot pass by not running.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart } from './cpu.js';
import { asm, fasm } from './encode.js';
import { Csr, Mip } from './csr.js';
import { Bus } from '../memory/bus.js';
import { Ram, ramBaseAddress } from '../memory/ram.js';
import type { AccessWidth, MmioDevice } from '../devices/device.js';
import { TranslationCache, compileCostInstructions, compileCreditInstructions, hotEntriesMin, pageInvalidationsMax, type TierBackend, type TierOptions } from './translation-cache.js';
import { blockExits, blockSource, planBlock } from './translator.js';

/** The back end the tiered side compiles to (see {@link bothBackends}). */
let backend: TierBackend = 'js';

/** A test of the tier's contract, run with JavaScript blocks and again with WebAssembly ones. */
function bothBackends(name: string, body: () => void): void {
  test(name, () => {
    backend = 'js';
    body();
  });
  test(`${name} (WebAssembly blocks)`, () => {
    backend = 'wasm';
    try {
      body();
    } finally {
      backend = 'js';
    }
  });
}

const base = ramBaseAddress;
const handlerOffset = 0x100;
const handler = base + handlerOffset;
const deviceBase = 0x1000_0000;
const ramBytes = 1 << 20;

/** A device that raises the machine timer interrupt on the `raiseAt`-th write to it. */
class InterruptingDevice implements MmioDevice {
  readonly name = 'interrupter';
  readonly windowBytes = 0x1000;
  writes = 0;
  hart: Hart | undefined;
  constructor(private readonly raiseAt: number) {}
  read(): number {
    return this.writes;
  }
  write(_offset: number, _width: AccessWidth, _value: number): void {
    if (++this.writes === this.raiseAt) this.hart!.setInterruptLine(Mip.MTIP, true);
  }
  save(): void {}
  restore(): void {}
}

interface Side {
  readonly hart: Hart;
  readonly ram: Ram;
  readonly device: InterruptingDevice;
}

/** What a program finds in RAM besides itself (page tables), written on both sides. */
type Prepare = (ram: Ram) => void;

function side(program: number[], withTier: boolean, raiseAt: number, options: TierOptions = { compileCostInstructions: 0 }, prepare?: Prepare): Side {
  const ram = new Ram(ramBytes, { wasm: withTier && backend === 'wasm' });
  const bus = new Bus();
  const device = new InterruptingDevice(raiseAt);
  bus.map(deviceBase, device);
  const hart = new Hart({ ram, bus, readTime: () => 77n, watchedStore: () => {} });
  device.hart = hart;
  // By default every compile is allowed at the threshold (no compile budget): the tests count compiles.
  if (withTier) hart.tier = new TranslationCache(hart, { ...options, backend });
  ram.i32[handlerOffset / 4] = asm.jal(0, 0); // the trap handler spins
  program.forEach((word, index) => (ram.i32[index] = word));
  prepare?.(ram);
  hart.reset(base);
  return { hart, ram, device };
}

function state(hart: Hart): Record<string, number | bigint> {
  const values: Record<string, number | bigint> = {};
  for (let i = 1; i < 32; i++) values[`x${i}`] = hart.x[i]!;
  for (let i = 0; i < 64; i++) values[`f${i >> 1}${i & 1 ? 'high' : 'low'}`] = hart.f[i]!;
  Object.assign(values, { pc: hart.pc, retired: hart.retired, priv: hart.priv, mepc: hart.mepc, mcause: hart.mcause, mtval: hart.mtval, mstatus: hart.mstatus, mip: hart.mip });
  Object.assign(values, { fflags: hart.fpu.flags, frm: hart.frm });
  return values;
}

/**
 * Runs `program` on both harts in `slices`, comparing after each; returns the tiered side.
 * `raiseAt`: the device write that raises MTIP.
 */
function runBoth(program: number[], slices: readonly number[], raiseAt = 0, prepare?: Prepare): Side & { tier: TranslationCache } {
  const tiered = side(program, true, raiseAt, undefined, prepare);
  const plain = side(program, false, raiseAt, undefined, prepare);
  slices.forEach((slice, index) => {
    const a = tiered.hart.run(slice);
    const b = plain.hart.run(slice);
    assert.deepEqual(a, b, `slice ${index}: the run results`);
    assert.deepEqual(state(tiered.hart), state(plain.hart), `slice ${index} (${slice} instructions)`);
    assert.ok(Buffer.compare(tiered.ram.u8, plain.ram.u8) === 0, `slice ${index}: RAM`);
  });
  return { ...tiered, tier: tiered.hart.tier as TranslationCache };
}

/** Slices of every size from 1 to 40, then larger ones: block and loop ends fall at every offset. */
/** Loads a 32-bit value in exactly two instructions (lui, addi), so that programs have a fixed layout. */
function liw(rd: number, value: number): number[] {
  const low = (value << 20) >> 20;
  return [asm.lui(rd, (value - low) | 0), asm.addi(rd, rd, low)];
}

const slices = [...Array.from({ length: 40 }, (_, index) => index + 1), 500, 1000, 3000, 10_000, 50_000];

bothBackends('a hot loop is translated, and a budget that ends at any instruction of it is met exactly', () => {
  const program = [
    ...liw(2, 5000),
    asm.addi(1, 1, 3), // loop:
    asm.xor(3, 1, 2),
    asm.mul(4, 3, 1),
    asm.addi(2, 2, -1),
    asm.bne(2, 0, -16),
    asm.jal(0, 0),
  ];
  const { tier, hart } = runBoth(program, slices);
  assert.ok(tier.compiledBlocks >= 1, 'the loop was compiled');
  assert.equal(tier.wasmBlocks, backend === 'wasm' ? tier.compiledBlocks : 0, 'compiled by the back end asked for');
  assert.equal(hart.x[2], 0, 'the loop ran to its end');
});

bothBackends('a block goes on past forward branches not taken (each a side exit when taken) and loops at its end, with exact counts', () => {
  const program = [
    ...liw(2, 3001),
    ...liw(5, 0),
    asm.addi(2, 2, -1), // loop (16):
    asm.beq(2, 0, 24), // to the end (44): a side exit
    asm.andi(3, 2, 1),
    asm.bne(3, 0, 8), // odd: over the next instruction, a side exit into the middle of the block
    asm.addi(5, 5, 1),
    asm.addi(6, 6, 1), // (36)
    asm.jal(0, -24), // back to the head
    asm.jal(0, 0), // the end (44)
  ];
  const ram = new Ram(ramBytes);
  program.forEach((word, index) => (ram.i32[index] = word));
  const plan = planBlock(ram.u16, 0, 16, (base + 16) | 0);
  assert.equal(plan.instructions.length, 7, 'one block from the head to the JAL, through both branches');
  assert.ok(plan.loops && plan.endsWithJump);
  assert.match(blockSource(plan), /if \(r2 === 0\) \{ p = \(-2147483604\); n = 2; break exit; \}/, 'the side exit to 0x8000002c after 2 instructions');
  // A backward branch ends a block: the code after a loop runs in another.
  ram.i32[8] = asm.bne(5, 0, -16);
  assert.equal(planBlock(ram.u16, 0, 16, (base + 16) | 0).instructions.length, 5);
  const { tier, hart } = runBoth(program, slices);
  assert.ok(tier.compiledBlocks >= 1, 'the loop was compiled');
  assert.equal(hart.x[2], 0, 'the loop ran to its end');
  assert.equal(hart.x[5], 1500, 'the even path ran for every even count');
  assert.equal(hart.x[6], 3000);
  assert.equal(hart.pc, (base + 44) | 0);
});

bothBackends('M and every load and store width translated as the interpreter runs them: division by zero, -2^31 / -1, the high products, sign extension', () => {
  const body = [
    asm.mul(5, 5, 11), // a pseudo-random operand
    asm.addi(5, 5, 7),
    asm.andi(7, 2, 3),
    asm.addi(8, 7, -1), // -1, 0, 1, 2
    asm.sltiu(13, 7, 1),
    asm.slli(9, 13, 31), // -2^31 when the divisor is -1
    asm.div(12, 9, 8),
    asm.rem(14, 9, 8),
    asm.divu(15, 5, 8),
    asm.remu(16, 5, 8),
    asm.div(17, 5, 8),
    asm.rem(18, 5, 8),
    asm.mulh(19, 5, 9),
    asm.mulhu(20, 5, 5),
    asm.mulhsu(21, 8, 5),
    asm.xor(22, 22, 12),
    asm.xor(22, 22, 14),
    asm.add(22, 22, 15),
    asm.add(22, 22, 16),
    asm.xor(22, 22, 17),
    asm.add(22, 22, 18),
    asm.xor(22, 22, 19),
    asm.add(22, 22, 20),
    asm.xor(22, 22, 21),
    asm.sw(5, 10, 0),
    asm.lb(23, 10, 1),
    asm.lh(24, 10, 2),
    asm.lbu(25, 10, 3),
    asm.lhu(26, 10, 0),
    asm.sb(5, 10, 5),
    asm.sh(20, 10, 6),
    asm.lw(27, 10, 4),
    asm.add(22, 22, 23),
    asm.xor(22, 22, 24),
    asm.add(22, 22, 25),
    asm.xor(22, 22, 26),
    asm.add(22, 22, 27),
    asm.addi(2, 2, -1),
  ];
  const program = [...liw(2, 400), ...liw(5, 12345), ...liw(11, 1103515245), ...liw(10, base + 0x4000), ...body, asm.bne(2, 0, -4 * body.length), asm.jal(0, 0)];
  const { tier, hart } = runBoth(program, slices);
  assert.ok(tier.compiledBlocks >= 1, 'the loop was compiled');
  assert.equal(hart.x[2], 0, 'the loop ran to its end');
});


bothBackends('a block head is compiled only after it was entered hotEntriesMin times', () => {
  const program = [...liw(2, hotEntriesMin - 2), asm.addi(1, 1, 1), asm.addi(2, 2, -1), asm.bne(2, 0, -8), asm.addi(0, 0, 0), asm.jal(0, -4)];
  const { tier } = runBoth(program, [150]);
  assert.equal(tier.compiledBlocks, 0, 'a loop that ran fewer times stays on the interpreter');
});

test('a block\'s exits: its branch and JAL targets and where it falls through; not its own head when it loops, not a JALR\'s target', () => {
  const plan = (words: number[]): ReturnType<typeof planBlock> => {
    const ram = new Ram(ramBytes);
    words.forEach((word, index) => (ram.i32[index] = word));
    return planBlock(ram.u16, 0, 0, base | 0);
  };
  const jumps = plan([asm.addi(1, 1, 1), asm.beq(1, 2, 12), asm.addi(3, 3, 1), asm.jal(0, 8)]);
  assert.deepEqual(blockExits(jumps).map((pc) => (pc - base) | 0), [16, 20], 'the branch target and the JAL target; nothing after the JAL');
  const loop = plan([asm.addi(1, 1, -1), asm.bne(1, 0, -4)]);
  assert.equal(loop.loops, true);
  assert.deepEqual(blockExits(loop).map((pc) => (pc - base) | 0), [8], 'where the loop falls out');
  const returns = plan([asm.addi(1, 1, 1), asm.jalr(0, 1, 0)]);
  assert.deepEqual(blockExits(returns), [], 'a JALR leads anywhere');
});

bothBackends('a hot block is compiled with the blocks it leads to in its page (WebAssembly: one module)', () => {
  const program = [
    ...liw(2, 300),
    asm.addi(1, 1, 1), // loop (word 2)
    asm.andi(3, 2, 1),
    asm.beq(3, 0, 12), // to even
    asm.addi(4, 4, 1),
    asm.jal(0, 8), // to next
    asm.addi(5, 5, 1), // even (word 7)
    asm.addi(2, 2, -1), // next (word 8)
    asm.bne(2, 0, -28), // back to loop
    asm.jal(0, 0),
  ];
  const { tier, hart } = runBoth(program, slices);
  assert.equal(hart.x[4]! + hart.x[5]!, 300);
  if (backend === 'wasm') {
    // The loop's block, the two it jumps to (even, next) and the spin after them, in one compile.
    assert.equal(tier.compiles, 1);
    assert.equal(tier.compiledBlocks, 4);
  } else {
    assert.equal(tier.compiles, tier.compiledBlocks, 'JavaScript blocks are compiled one at a time');
  }
});

bothBackends('self-modifying code: a store to a translated page drops its translations, and the new code runs', () => {
  const target = base + 4 * 7; // the first instruction of the loop
  const program = [
    ...liw(6, 300),
    ...liw(7, target),
    ...liw(8, asm.addi(5, 5, 2)), // what the loop's first instruction becomes
    asm.addi(10, 0, 100),
    asm.addi(5, 5, 1), // loop (word 7): rewritten when x6 reaches 100
    asm.addi(6, 6, -1),
    asm.addi(12, 12, 1),
    asm.bne(6, 10, 12), // to next
    asm.sw(8, 7, 0),
    asm.addi(11, 11, 1),
    asm.bne(6, 0, -24), // next: back to loop
    asm.jal(0, 0),
  ];
  const { tier, hart } = runBoth(program, slices);
  assert.equal(hart.x[5], 200 + 2 * 100, 'the rewritten instruction ran after the store');
  assert.ok(tier.compiledBlocks >= 2, 'the loop was compiled before the store and again after it');
});

bothBackends('a page run from, then written as data, then run from again: stores into it still empty the slots of its new instructions', () => {
  // Page 2 holds a routine that is called, then overwritten by a hot loop (its slots emptied,
  // then thousands of stores that find nothing to empty: WebAssembly blocks stop calling the
  // tier for them), then given a new routine that is called and rewritten from a hot loop.
  const routine = base + 0x2000;
  const program = [
    ...liw(7, routine),
    ...liw(8, asm.addi(9, 9, 1)),
    ...liw(13, asm.jalr(0, 1, 0)),
    asm.sw(8, 7, 0),
    asm.sw(13, 7, 4),
    asm.jalr(1, 7, 0), // x9 = 1
    ...liw(6, 2000),
    asm.sw(6, 7, 0), // loop 1 (word 11): the routine's page as data
    asm.sw(6, 7, 4),
    asm.addi(6, 6, -1),
    asm.bne(6, 0, -12),
    ...liw(8, asm.addi(9, 9, 10)),
    asm.sw(8, 7, 0),
    asm.sw(13, 7, 4),
    asm.jalr(1, 7, 0), // x9 = 11, and the page holds decoded instructions again
    ...liw(14, asm.addi(9, 9, 0)),
    ...liw(15, 1 << 20), // adds 1 to an I-type instruction's immediate
    ...liw(6, 1500),
    asm.add(14, 14, 15), // loop 2 (word 26), a block of its own: the routine becomes +1, +2, ...
    asm.sw(14, 7, 0),
    asm.addi(6, 6, -1),
    asm.addi(16, 16, 1),
    asm.jalr(1, 7, 0),
    asm.bne(6, 0, -20),
    asm.jal(0, 0),
  ];
  const { tier, hart } = runBoth(program, slices);
  assert.equal(hart.x[9], 1 + 10 + (1500 * 1501) / 2, 'the rewritten routine ran after each store');
  assert.ok(tier.compiledBlocks >= 2, 'both loops were compiled');
  if (backend === 'wasm') assert.ok(tier.codePageFlagsCleared >= 1, "the data stores cleared the page's decoded-code flag");
});

bothBackends('a block that stores into its own page leaves after the store; a page rewritten again and again is left to the interpreter', () => {
  const program = [
    ...liw(6, 2000),
    ...liw(7, base + 0x400), // data in the same page as the code
    asm.sw(6, 7, 0), // loop:
    asm.addi(5, 5, 1),
    asm.addi(6, 6, -1),
    asm.bne(6, 0, -12),
    asm.jal(0, 0),
  ];
  const { tier, hart } = runBoth(program, slices);
  assert.equal(hart.x[5], 2000);
  assert.equal(tier.compiles, pageInvalidationsMax, 'compiled until the page was abandoned');
  assert.equal(tier.blocks, 0);
});

bothBackends('a guest that clears A and D in a leaf without a fence writes the same RAM with the tier, which empties the store TLB when it compiles', () => {
  // Sv32, root table at RAM page 1: RAM's first 4 MiB at their own addresses (a megapage), and
  // virtual page 0x405 onto RAM page 5 through the table at RAM page 2. The program touches the
  // data page, runs a hot loop (the tier compiles it, emptying its store TLB; the interpreter's
  // keeps its entry), clears A and D in the leaf without SFENCE.VMA and stores to the page
  // again: without the page-table rule (mmu.ts) only the tier's side walked and set them.
  const dataLeaf = ((((base >>> 12) + 5) << 10) | 0x7) | 0; // V R W, A and D clear
  const dataLeafAddress = base + 0x2000 + 5 * 4;
  const prepare: Prepare = (ram) => {
    ram.i32[(0x1000 + 0x200 * 4) >>> 2] = ((base >>> 12) << 10) | 0xcf; // V R W X A D
    ram.i32[(0x1000 + 1 * 4) >>> 2] = (((base + 0x2000) >>> 12) << 10) | 1;
    ram.i32[(dataLeafAddress - base) >>> 2] = dataLeaf;
  };
  const supervisorStart = 4 * 23;
  const program = [
    ...liw(1, -1),
    asm.csrrw(0, Csr.pmpaddr0, 1), // NAPOT over everything
    asm.addi(1, 0, 0x1f),
    asm.csrrw(0, Csr.pmpcfg0, 1), // R W X
    ...liw(1, (1 << 31) | ((base + 0x1000) >>> 12)),
    asm.csrrw(0, Csr.satp, 1),
    ...liw(1, 0x800),
    asm.csrrs(0, Csr.mstatus, 1), // MPP = S
    ...liw(1, base + supervisorStart),
    asm.csrrw(0, Csr.mepc, 1),
    ...liw(5, 0x0040_5000), // the data page
    ...liw(6, dataLeafAddress), // its leaf, through the megapage
    ...liw(7, dataLeaf),
    ...liw(9, 300),
    asm.mret(),
    asm.lw(8, 5, 0), // word 23, in S-mode: the walks set A and D
    asm.sw(8, 5, 0),
    asm.addi(9, 9, -1), // the hot loop
    asm.bne(9, 0, -4),
    asm.sw(7, 6, 0), // A and D cleared, no SFENCE.VMA
    asm.sw(8, 5, 0), // a walk sets A and D again; a TLB hit would not
    asm.jal(0, 0),
  ];
  assert.equal(program.length, 30);
  const { tier, hart, ram } = runBoth(program, slices, 0, prepare);
  assert.ok(tier.compiledBlocks >= 1, 'the loop was compiled');
  assert.equal(hart.pc, (base + 4 * 29) | 0, 'at the final spin');
  assert.equal(ram.i32[(dataLeafAddress - base) >>> 2], dataLeaf | 0xc0, 'A and D set again after the clearing');
});

bothBackends('a page fault in the middle of a translated block is precise: pc, count, cause and tval as the interpreter', () => {
  const program = [
    ...liw(1, handler),
    asm.csrrw(0, Csr.mtvec, 1),
    ...liw(7, base + 0x800),
    ...liw(9, base + ramBytes - 4 * 100), // walks off the end of RAM after 100 passes
    asm.lw(2, 7, 0), // loop:
    asm.addi(3, 3, 1),
    asm.lw(4, 9, 0), // faults on pass 101
    asm.addi(9, 9, 4),
    asm.jal(0, -16),
  ];
  const { tier, hart } = runBoth(program, slices);
  assert.ok(tier.compiledBlocks >= 1);
  assert.equal(hart.mcause, 5, 'a load access fault');
  assert.equal(hart.mepc >>> 0, base + 4 * 9, 'at the second load');
  assert.equal(hart.x[3], 101);
});

bothBackends('an interrupt raised by an MMIO store inside a translated block is taken right after that store', () => {
  const program = [
    ...liw(1, handler),
    asm.csrrw(0, Csr.mtvec, 1),
    ...liw(1, Mip.MTIP),
    asm.csrrs(0, Csr.mie, 1),
    asm.csrrsi(0, Csr.mstatus, 8),
    ...liw(12, deviceBase),
    asm.addi(5, 5, 1), // loop:
    asm.sw(0, 12, 0), // the 120th write raises MTIP
    asm.addi(6, 6, 1),
    asm.jal(0, -12),
  ];
  const { tier, hart } = runBoth(program, slices, 120);
  assert.ok(tier.compiledBlocks >= 1);
  assert.equal(hart.mcause >>> 0, 0x8000_0007, 'the machine timer interrupt');
  assert.equal(hart.x[5], 120);
  assert.equal(hart.x[6], 119, 'taken before the instruction after the store');
});

test('blocks end before instructions the interpreter runs, before a straddling instruction, and at the size cap', () => {
  const ram = new Ram(ramBytes);
  const words = [asm.addi(1, 1, 1), asm.addi(2, 2, 1), asm.csrrs(3, Csr.mstatus, 0), asm.addi(4, 4, 1)];
  words.forEach((word, index) => (ram.i32[index] = word));
  const plan = planBlock(ram.u16, 0, 0, base);
  assert.equal(plan.instructions.length, 2, 'stops before the CSR instruction');
  assert.equal(plan.endsWithJump, false);
  assert.match(blockSource(plan), /\{ p = \(-2147483640\); n = 2; break exit; \}/, 'leaves at the CSR instruction, 0x80000008');
  // A 32-bit instruction in the last halfword of the page straddles into the next: not translated.
  ram.u16[2046] = 0x0001;
  ram.u16[2047] = asm.addi(1, 1, 1) & 0xffff;
  const end = planBlock(ram.u16, 0, 0xffc, base + 0xffc);
  assert.equal(end.instructions.length, 1);
  // The cap.
  for (let index = 0; index < 1000; index++) ram.i32[index] = asm.addi(1, 1, 1);
  assert.equal(planBlock(ram.u16, 0, 0, base).instructions.length, 48);
});


bothBackends('F and D instructions are translated with the interpreter\'s results, flags, FS updates and memory (with WebAssembly blocks: in JavaScript ones)', () => {
  const S = 0;
  const D = 1;
  const program = [
    // FS = Initial (not Dirty: the first FP write makes it Dirty, which the state compares).
    ...liw(5, 0x2000), asm.csrrs(0, Csr.mstatus, 5),
    ...liw(2, 300),
    ...liw(10, base + 0x4000), // data, in a page without code
    asm.addi(1, 1, 7), // loop:
    fasm.fcvtFromInteger(S, 1, 1, 0),
    fasm.fcvtFromInteger(D, 2, 2, 0, 1),
    fasm.fdiv(S, 3, 1, 4), // f4 is 0 at first: division by zero, then an infinity
    fasm.fadd(D, 5, 2, 5),
    fasm.fmul(D, 6, 5, 2, 3),
    fasm.fmadd(S, 7, 1, 3, 7),
    fasm.fmadd(D, 8, 6, 2, 8, 4),
    fasm.fsqrt(D, 9, 6),
    fasm.fsgnjn(D, 10, 9, 6),
    fasm.fmin(S, 11, 1, 3),
    fasm.fcvtFormat(S, 12, 6),
    fasm.fcvtFormat(D, 13, 1),
    fasm.feq(S, 11, 1, 3),
    fasm.flt(D, 12, 6, 5),
    fasm.fcvtToInteger(D, 13, 6, 1, 1),
    fasm.fcvtToInteger(S, 14, 3, 0),
    fasm.fclass(D, 15, 9),
    fasm.fmvXW(16, 1),
    fasm.fmvWX(14, 16),
    fasm.fnmsub(S, 4, 14, 1, 3, 2),
    fasm.fsw(1, 10, 0),
    fasm.fsd(6, 10, 8),
    fasm.flw(15, 10, 0),
    fasm.fld(16, 10, 8),
    fasm.fsd(8, 10, 20), // misaligned: the slow path
    fasm.fld(17, 10, 20),
    fasm.feq(D, 0, 17, 17), // into x0: only its flags count
    asm.addi(2, 2, -1),
    asm.bne(2, 0, -4 * 31),
    asm.jal(0, 0),
  ];
  const { tier, hart } = runBoth(program, slices);
  if (backend === 'wasm') assert.ok(tier.compiledBlocks > tier.wasmBlocks, 'blocks with F and D are JavaScript');
  assert.ok(tier.compiledBlocks >= 1, 'the loop was compiled');
  assert.equal(hart.x[2], 0, 'the loop ran to its end');
});

for (const [what, turnOff] of [['mstatus.FS = Off', asm.csrrc(0, Csr.mstatus, 5)], ['a reserved frm with a DYN rounding mode', asm.csrrwi(0, Csr.frm, 5)]] as const) {
  bothBackends(`${what} after an F instruction was compiled: the interpreter takes the illegal-instruction trap`, () => {
    const program = [
      ...liw(5, 0x6000), // mstatus.FS's bits
      asm.csrrs(0, Csr.mstatus, 5),
      ...liw(1, handler),
      asm.csrrw(0, Csr.mtvec, 1),
      ...liw(2, 100),
      asm.addi(1, 1, 1), // inner:
      asm.addi(3, 3, 1),
      asm.addi(4, 4, 1),
      fasm.fcvtFromInteger(0, 1, 1, 0),
      fasm.fadd(0, 2, 2, 1),
      asm.addi(2, 2, -1),
      asm.bne(2, 0, -24),
      turnOff,
      ...liw(2, 100),
      asm.jal(0, -40),
    ];
    const { tier, hart } = runBoth(program, slices);
    assert.ok(tier.compiledBlocks >= 1, 'the loop was compiled');
    assert.equal(hart.mcause, 2, 'illegal instruction');
    assert.equal(hart.mepc >>> 0, (base + 4 * 11) >>> 0, 'at the F instruction');
  });
}

bothBackends('compiling is budgeted: once the credit is spent on blocks that have not repaid it, heads must be far hotter', () => {
  const loops = 12;
  const program: number[] = [];
  for (let loop = 0; loop < loops; loop++) {
    // Each loop runs just past the threshold: compiled, then a few passes translated. A CSR
    // read (left to the interpreter) between loops keeps each loop's compile to itself.
    program.push(asm.csrrs(0, Csr.mscratch, 0), ...liw(2, hotEntriesMin + 10), asm.addi(1, 1, 1), asm.addi(2, 2, -1), asm.bne(2, 0, -8));
  }
  program.push(asm.jal(0, 0));
  const budgeted = side(program, true, 0, {});
  budgeted.hart.run(100_000);
  // Not in debt while translated instructions + credit >= compiles × cost: about as many
  // compiles as the credit pays for, then none.
  const compiled = (budgeted.hart.tier as TranslationCache).compiles;
  const paidFor = compileCreditInstructions / compileCostInstructions;
  assert.ok(compiled >= paidFor && compiled <= paidFor + 2, `${compiled} compiles, the credit pays for ${paidFor}`);
  const free = side(program, true, 0);
  free.hart.run(100_000);
  assert.ok((free.hart.tier as TranslationCache).compiledBlocks >= loops, "without a budget every loop is compiled");
  assert.equal(free.hart.x[1], budgeted.hart.x[1]);
});
