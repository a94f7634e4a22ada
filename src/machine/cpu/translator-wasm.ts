/**
 * The translation tier's second back end: a block (translator.ts's plan) as a WebAssembly
 * function, over the memory that holds guest RAM and the hart's registers and data TLBs
 * (wasm-arena.ts). Same contract as the JavaScript blocks (translator.ts, execution-tier.ts):
 * exact counts, the budget, precise traps, attention. Why a second: V8 runs a new JavaScript
 * function in its bytecode interpreter until TurboFan has compiled it, 10 to 60 times slower
 * than the compiled code (docs/BENCHMARKS.md); WebAssembly is compiled at once by Liftoff, to
 * code about as fast, and TurboFan takes over hot functions in the background.
 *
 * What differs from the JavaScript blocks, and why it does not show:
 * - registers live in locals, read from `x` at entry and written back at every exit; before a
 *   slow path (which may throw the TrapSignal through the WebAssembly frames, losing the
 *   locals) the registers the block writes are stored first, so a trap leaves `Hart.x` as the
 *   interpreter would;
 * - the block leaves its exit pc and whether a slow path raised `Hart.attention` in the
 *   header's words; the caller sets `Hart.pc` from it;
 * - a store to a RAM page with decoded instructions (its flag in the header) calls back to
 *   empty the slots it overlaps, as the JavaScript fast path does inline;
 * - blocks with F or D instructions are left to the JavaScript back end (translation-cache.ts):
 *   the same registers and TLBs, as the arena's views.
 */
import { Op, type Decoded } from './decode.js';
import { arenaTlbEntries, HeaderLayout, slotRecordBytes, wasmBlockSlots, WebAssembly, type WasmArena, type WasmTable } from './wasm-arena.js';
import { destinationRegister, sourceRegisters, type BlockFunction, type BlockPlan } from './translator.js';
import { assert } from '../assert.js';

// ------------------------------------------------------------------- a minimal encoder

export const wasmSection = (id: number, body: number[]): number[] => [id, ...unsignedLeb(body.length), ...body];
export const wasmVector = (items: number[][]): number[] => [...unsignedLeb(items.length), ...items.flat()];
export const wasmName = (text: string): number[] => [...unsignedLeb(text.length), ...Buffer.from(text, 'utf8')];

/** The opcodes used (WebAssembly 1.0 and sign extension). */
export const W = {
  unreachable: 0x00, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, return: 0x0f, call: 0x10, callIndirect: 0x11,
  drop: 0x1a, localGet: 0x20, localSet: 0x21, localTee: 0x22,
  load: 0x28, load8s: 0x2c, load8u: 0x2d, load16s: 0x2e, load16u: 0x2f, store: 0x36, store8: 0x3a, store16: 0x3b,
  const: 0x41,
  eqz: 0x45, eq: 0x46, ne: 0x47, ltS: 0x48, ltU: 0x49, gtS: 0x4a, gtU: 0x4b, leS: 0x4c, leU: 0x4d, geS: 0x4e, geU: 0x4f,
  add: 0x6a, sub: 0x6b, mul: 0x6c, divS: 0x6d, divU: 0x6e, remS: 0x6f, remU: 0x70, and: 0x71, or: 0x72, xor: 0x73, shl: 0x74, shrS: 0x75, shrU: 0x76,
  i64Const: 0x42, i64Mul: 0x7e, i64ShrS: 0x87, i64ShrU: 0x88, wrapI64: 0xa7, extendI32S: 0xac, extendI32U: 0xad, extend8S: 0xc0, extend16S: 0xc1,
  brTable: 0x0e,
  void: 0x40, i32: 0x7f, i64: 0x7e,
} as const;

// ------------------------------------------------------------------------- the blocks

/** What a WebAssembly block imports besides the memory: the slow paths, as translation-cache.ts provides them. */
export interface WasmBlockImports {
  /** Publishes pc and count, then the MMU's slow load (may throw the TrapSignal); leaves the attention word set. */
  readonly load: (va: number, width: number, pc: number, retired: number) => number;
  /** Publishes pc and count, then the MMU's slow store (may throw the TrapSignal); leaves the attention word set. */
  readonly store: (va: number, width: number, value: number, pc: number, retired: number) => void;
  /** A fast-path store of `width` bytes at RAM index `index` landed in a page with decoded instructions. */
  readonly stale: (index: number, width: number) => void;
}

/** The hart a block runs on: the arena's memory and header words, and the slow paths. */
export interface WasmBlockEnvironment {
  readonly arena: WasmArena;
  /** The header as words (`exitPc`, `attention`). */
  readonly words: Int32Array;
  readonly imports: WasmBlockImports;
}

// The unit's locals: parameters 0 base, 1 budget, 2 dc, 3 which (the block to start with);
// registers x1..x31 at 3 + r; then the scratch ones.
const localBase = 0;
const localBudget = 1;
const localDc = 2;
const localWhich = 3;
const registerLocal = (r: number): number => 3 + r;
const localK = 35;
const localVa = 36;
const localE = 37;
const localIndex = 38;
const localP = 39;
const localN = 40;
const localT = 41;
/** Instructions retired by the unit's earlier blocks in this call (base has moved on by as many). */
const localDone = 42;
/** The table slot of the block running now (left in the header at the exit). */
const localSlot = 43;
const i32Locals = localSlot - 3; // 4..43
// Imported functions, then the unit, then each block's entry.
const functionLoad = 0;
const functionStore = 1;
const functionStale = 2;
const functionUnit = 3;
const functionEntry = 4; // the first block's

const widthOf: Partial<Record<number, number>> = { [Op.LB]: 1, [Op.LBU]: 1, [Op.LH]: 2, [Op.LHU]: 2, [Op.LW]: 4, [Op.SB]: 1, [Op.SH]: 2, [Op.SW]: 4 };
const loadOpcode: Partial<Record<number, number>> = { [Op.LB]: W.load8s, [Op.LBU]: W.load8u, [Op.LH]: W.load16s, [Op.LHU]: W.load16u, [Op.LW]: W.load };
const storeOpcode: Partial<Record<number, number>> = { [Op.SB]: W.store8, [Op.SH]: W.store16, [Op.SW]: W.store };
/** Register-register ops and their i32 opcode. */
export const registerOps: Partial<Record<number, number>> = {
  [Op.ADD]: W.add, [Op.SUB]: W.sub, [Op.AND]: W.and, [Op.OR]: W.or, [Op.XOR]: W.xor, [Op.MUL]: W.mul,
  // WebAssembly masks shift counts by 31, as RISC-V does.
  [Op.SLL]: W.shl, [Op.SRL]: W.shrU, [Op.SRA]: W.shrS, [Op.SLT]: W.ltS, [Op.SLTU]: W.ltU,
};
/** Register-immediate ops and their i32 opcode. */
export const immediateOps: Partial<Record<number, number>> = {
  [Op.ADDI]: W.add, [Op.ANDI]: W.and, [Op.ORI]: W.or, [Op.XORI]: W.xor, [Op.SLLI]: W.shl, [Op.SRLI]: W.shrU, [Op.SRAI]: W.shrS,
  [Op.SLTI]: W.ltS, [Op.SLTIU]: W.ltU,
};
/** Branches and the i32 comparison that takes them. */
export const branchConditions: Partial<Record<number, number>> = { [Op.BEQ]: W.eq, [Op.BNE]: W.ne, [Op.BLT]: W.ltS, [Op.BGE]: W.geS, [Op.BLTU]: W.ltU, [Op.BGEU]: W.geU };

/** Whether the WebAssembly back end translates `d` (else the block ends before it). */
export function wasmTranslatable(d: Decoded): boolean {
  const op = d.op;
  return registerOps[op] !== undefined || immediateOps[op] !== undefined || widthOf[op] !== undefined || branchConditions[op] !== undefined ||
    op === Op.LUI || op === Op.AUIPC || op === Op.JAL || op === Op.JALR || op === Op.FENCE ||
    op === Op.MULH || op === Op.MULHU || op === Op.MULHSU || op === Op.DIV || op === Op.DIVU || op === Op.REM || op === Op.REMU;
}

/** Whether the WebAssembly back end translates every instruction of `plan`. */
export function wasmTranslatesAll(plan: BlockPlan): boolean {
  return plan.instructions.every((instruction) => wasmTranslatable(instruction.d));
}

/** A growing byte buffer, written without intermediate arrays (a boot compiles thousands of blocks). */
class Emitter {
  bytes: Uint8Array;
  size = 0;

  constructor(capacity = 4096) {
    this.bytes = new Uint8Array(capacity);
  }

  /** What was written. */
  get written(): Uint8Array {
    return this.bytes.subarray(0, this.size);
  }

  byte(value: number): void {
    if (this.size === this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    this.bytes[this.size++] = value;
  }

  /** Bytes as they are (opcodes, and indices below 128, whose LEB128 is themselves). */
  raw(...values: number[]): void {
    for (const value of values) this.byte(value);
  }

  /** Unsigned LEB128. */
  unsigned(value: number): void {
    do {
      let byte = value & 0x7f;
      value >>>= 7;
      if (value !== 0) byte |= 0x80;
      this.byte(byte);
    } while (value !== 0);
  }

  /** Signed LEB128 of a 32-bit value. */
  signed(value: number): void {
    value |= 0;
    for (;;) {
      const byte = value & 0x7f;
      value >>= 7;
      if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) {
        this.byte(byte);
        return;
      }
      this.byte(byte | 0x80);
    }
  }

  /** i32.const */
  constant(value: number): void {
    this.byte(W.const);
    this.signed(value);
  }

  get(local: number): void {
    this.byte(W.localGet);
    this.unsigned(local);
  }

  set(local: number): void {
    this.byte(W.localSet);
    this.unsigned(local);
  }

  tee(local: number): void {
    this.byte(W.localTee);
    this.unsigned(local);
  }

  /** A memory access: opcode, alignment (log2), offset. */
  memory(opcode: number, offset: number, align = 2): void {
    this.byte(opcode);
    this.byte(align);
    this.unsigned(offset);
  }
}

/** Where LEB128s and block bodies are written before they are copied out (one per process: a boot compiles thousands). */
const scratch = new Emitter(1 << 16);

/** Unsigned LEB128, as an array (module sections; the prototype benchmark). */
export function unsignedLeb(value: number): number[] {
  scratch.size = 0;
  scratch.unsigned(value);
  return Array.from(scratch.written);
}

/** Signed LEB128 of a 32-bit value, as an array. */
export function signedLeb(value: number): number[] {
  scratch.size = 0;
  scratch.signed(value);
  return Array.from(scratch.written);
}

/** The module's types and imports (the same for every module of blocks). */
const moduleHead = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...wasmSection(1, wasmVector([
    [0x60, 4, W.i32, W.i32, W.i32, W.i32, 1, W.i32], // load
    [0x60, 5, W.i32, W.i32, W.i32, W.i32, W.i32, 0], // store
    [0x60, 2, W.i32, W.i32, 0], // stale
    [0x60, 3, W.i32, W.i32, W.i32, 1, W.i32], // a block's entry
    [0x60, 4, W.i32, W.i32, W.i32, W.i32, 1, W.i32], // the unit
  ])),
  ...wasmSection(2, wasmVector([
    [...wasmName('m'), ...wasmName('memory'), 0x02, 0x00, 0x00],
    [...wasmName('m'), ...wasmName('load'), 0x00, 0],
    [...wasmName('m'), ...wasmName('store'), 0x00, 1],
    [...wasmName('m'), ...wasmName('stale'), 0x00, 2],
  ])),
]);
/** Type of a block's entry (the table's functions). */
const blockType = 3;
/** Type of the unit: a block's entry's parameters, then which block. */
const unitType = 4;

/**
 * The module of several blocks (a unit): imports the memory and the slow paths; exports block
 * `i`'s entry as `b${i}(base, budget, dc) -> retired`, which calls the unit's one function at
 * that block. Why several: creating a module costs V8 far more than compiling a block's
 * function (0.3-0.6 ms here: each module gets its own code space), so a hot block is compiled
 * with the blocks it leads to (translation-cache.ts). Why one function: a block goes on to
 * another of its unit with a branch, where going through the trampoline costs a return, the
 * trampoline's look at the links and a call through the table (in mixbench 60% of the steps
 * from block to block stay in a unit, and its steady state is some 11% faster so). `slots`
 * are the blocks' slots in the table, which the unit leaves in the header for the trampoline.
 */
export function wasmBlocksModule(plans: readonly BlockPlan[], slots: readonly number[], arena: WasmArena): Uint8Array {
  if (plans.length === 0) throw new RangeError('a module of no blocks');
  if (slots.length !== plans.length) throw new RangeError(`${plans.length} blocks and ${slots.length} slots`);
  const unit = wasmUnitBody(plans, slots, arena);
  const entries = plans.map((_, i) => new Uint8Array([0, W.localGet, 0, W.localGet, 1, W.localGet, 2, ...signedLebConstant(i), W.call, functionUnit, W.end]));
  const bodies = [unit, ...entries];
  const code: number[][] = bodies.map((body) => [...unsignedLeb(body.length)]);
  const functions = wasmSection(3, wasmVector([[unitType], ...plans.map(() => [blockType])]));
  // Imported functions come first in the index space: block i's entry is function functionEntry + i.
  const exports = wasmSection(7, wasmVector(plans.map((_, i) => [...wasmName(`b${i}`), 0x00, ...unsignedLeb(functionEntry + i)])));
  const codeBytes = bodies.reduce((sum, body, i) => sum + code[i]!.length + body.length, 0);
  const countBytes = unsignedLeb(bodies.length);
  const sectionSizeBytes = unsignedLeb(countBytes.length + codeBytes);
  const module = new Uint8Array(moduleHead.length + functions.length + exports.length + 1 + sectionSizeBytes.length + countBytes.length + codeBytes);
  let at = 0;
  const put = (bytes: ArrayLike<number>): void => {
    module.set(bytes, at);
    at += bytes.length;
  };
  put(moduleHead);
  put(functions);
  put(exports);
  put([10]);
  put(sectionSizeBytes);
  put(countBytes);
  bodies.forEach((body, i) => {
    put(code[i]!);
    put(body);
  });
  return module;
}

/** `i32.const value` as bytes. */
function signedLebConstant(value: number): number[] {
  return [W.const, ...signedLeb(value)];
}

/**
 * The unit's function body (locals and code), over the arena's header at `arena.headerOffset`:
 * a dispatch on `which` to the blocks' code, one after another; a block's exits store its
 * registers, then go on to the block of the unit they lead to (its own head included) while
 * chains are on and that block fits whole in the budget, else leave the unit, which leaves pc,
 * the last block's slot and the count for the caller.
 */
function wasmUnitBody(plans: readonly BlockPlan[], slots: readonly number[], arena: WasmArena): Uint8Array {
  const header = arena.headerOffset;
  /** Each block's index in the unit by its head's pc (one virtual page: pcs name them). */
  const heads = new Map<number, number>();
  plans.forEach((plan, i) => {
    if (plan.instructions.length === 0) throw new RangeError('an empty block');
    const head = plan.instructions[0]!.pc;
    if (!heads.has(head)) heads.set(head, i);
  });
  const e = scratch;
  e.size = 0;
  e.unsigned(1); // one group of locals
  e.unsigned(i32Locals);
  e.byte(W.i32);
  const xAddress = (r: number): number => header + HeaderLayout.x + r * 4;
  const reg = (r: number): void => {
    if (r === 0) e.constant(0);
    else e.get(registerLocal(r));
  };
  const count = plans.length;
  // $exit (a block) around everything, $dispatch (a loop) inside it, then a block per case:
  // the code of block i follows the end of case i.
  e.byte(W.block);
  e.byte(W.void);
  e.byte(W.loop);
  e.byte(W.void);
  for (let i = 0; i < count; i++) {
    e.byte(W.block);
    e.byte(W.void);
  }
  e.get(localWhich);
  e.byte(W.brTable);
  e.unsigned(count);
  for (let i = 0; i < count; i++) e.unsigned(i);
  e.unsigned(count - 1);
  for (let i = 0; i < count; i++) {
    e.byte(W.end);
    // Labels between block i's code and $exit: the cases after it, and $dispatch.
    emitBlock(plans[i]!, slots[i]!, count - i);
  }
  e.byte(W.end); // $dispatch: every block's code leaves by a branch
  e.byte(W.end); // $exit
  // Every exit lands here: pc and the last block for the caller, and the count.
  e.constant(header + HeaderLayout.exitPc);
  e.get(localP);
  e.memory(W.store, 0);
  e.constant(header + HeaderLayout.lastSlot);
  e.get(localSlot);
  e.memory(W.store, 0);
  e.get(localDone);
  e.get(localK);
  e.byte(W.add);
  e.get(localN);
  e.byte(W.add);
  e.byte(W.end);
  return e.written.slice();

  /** One block's code; `depthAtStart` counts the labels between it and $exit. */
  function emitBlock(plan: BlockPlan, slot: number, depthAtStart: number): void {
    const instructions = plan.instructions;
    const length = instructions.length;
    const head = instructions[0]!.pc;
    // Its registers: loaded here, kept in locals, stored at every exit and before a slow path
    // (which may throw the TrapSignal through this frame, losing the locals). Nothing is
    // kept in locals from one block to the next, so each is compiled as if alone.
    const usedMask = new Uint8Array(32);
    const writtenMask = new Uint8Array(32);
    for (const { d } of instructions) {
      if (!wasmTranslatable(d)) throw new RangeError(`op ${d.op} is not translated to WebAssembly`);
      for (const r of sourceRegisters(d)) usedMask[r] = 1;
      const rd = destinationRegister(d);
      if (rd !== undefined && rd !== 0) {
        usedMask[rd] = 1;
        writtenMask[rd] = 1;
      }
    }
    usedMask[0] = 0;
    const storeRegisters = (): void => {
      for (let r = 1; r < 32; r++) {
        if (writtenMask[r] === 0) continue;
        e.constant(xAddress(r));
        e.get(registerLocal(r));
        e.memory(W.store, 0);
      }
    };
    e.constant(slot);
    e.set(localSlot);
    for (let r = 1; r < 32; r++) {
      if (usedMask[r] === 0) continue;
      e.constant(xAddress(r));
      e.memory(W.load, 0);
      e.set(registerLocal(r));
    }
    // $out (a block) around the block's code: its exits land after it, where its registers
    // are stored, then leave the unit or (N < 0) go on to the block in `which`.
    e.byte(W.block);
    e.byte(W.void);
    let depth = 0;
    /** Leaves: pc from `pc` (a constant, or the local `pcLocal`), `retired` instructions of this pass. */
    const exit = (pc: number, retired: number, pcLocal = -1): void => {
      if (pcLocal >= 0) e.get(pcLocal);
      else e.constant(pc);
      e.set(localP);
      e.constant(retired);
      e.set(localN);
      e.byte(W.br);
      e.unsigned(depth);
    };
    /**
     * Leaves for `pc` after `retired` instructions of this pass; first, if `pc` is the head of
     * a block of the unit, goes on there while chains are on and that block fits whole in the
     * budget (the trampoline's rule).
     */
    const leave = (pc: number, retired: number): void => {
      const next = heads.get(pc);
      if (next !== undefined) {
        e.constant(header + HeaderLayout.chains);
        e.memory(W.load, 0);
        openIf();
        e.get(localK);
        e.constant(retired);
        e.byte(W.add);
        e.tee(localT);
        e.constant(plans[next]!.instructions.length);
        e.byte(W.add);
        e.get(localBudget);
        e.byte(W.leS);
        openIf();
        // base, budget and done move on by this block's count; the next starts its own.
        e.get(localBase);
        e.get(localT);
        e.byte(W.add);
        e.set(localBase);
        e.get(localBudget);
        e.get(localT);
        e.byte(W.sub);
        e.set(localBudget);
        e.get(localDone);
        e.get(localT);
        e.byte(W.add);
        e.set(localDone);
        e.constant(0);
        e.set(localK);
        e.constant(next);
        e.set(localWhich);
        e.constant(-1);
        e.set(localN);
        e.byte(W.br);
        e.unsigned(depth); // $out
        closeIf();
        closeIf();
      }
      exit(pc, retired);
    };
    const openIf = (): void => {
      depth++;
      e.byte(W.if);
      e.byte(W.void);
    };
    const closeIf = (): void => {
      depth--;
      e.byte(W.end);
    };
    const retiredAt = (index: number): void => {
      e.get(localBase);
      e.get(localK);
      e.byte(W.add);
      e.constant(index);
      e.byte(W.add);
    };
    const attentionExit = (pc: number, index: number): void => {
      e.constant(header + HeaderLayout.attention);
      e.memory(W.load, 0);
      openIf();
      exit(pc, index + 1);
      closeIf();
    };
    /** A branch or JAL to `target`, instruction `index`: round again if it is the head of a loop block, else leave. */
    const to = (target: number, index: number): void => {
      if (!(plan.loops && target === head)) {
        leave(target, index + 1);
        return;
      }
      // Only if a whole further pass fits in the budget (exact counts).
      e.get(localK);
      e.constant(index + 1);
      e.byte(W.add);
      e.tee(localK);
      e.constant(length);
      e.byte(W.add);
      e.get(localBudget);
      e.byte(W.gtS);
      openIf();
      exit(head, 0);
      closeIf();
      e.byte(W.br);
      e.unsigned(depth - 1);
    };
    /** The TLB check of a fast path: leaves va and the RAM index in locals and the hit (alignment included) on the stack. */
    const translate = (d: Decoded, width: number, tags: number, adds: number): void => {
      reg(d.rs1);
      e.constant(d.imm);
      e.byte(W.add);
      e.tee(localVa);
      e.constant(10);
      e.byte(W.shrU);
      e.constant(tlbMask << 2);
      e.byte(W.and);
      e.tee(localE);
      e.memory(W.load, header + tags);
      e.get(localVa);
      e.constant(12);
      e.byte(W.shrU);
      e.get(localDc);
      e.byte(W.or);
      e.byte(W.eq);
      if (width > 1) {
        e.get(localVa);
        e.constant(width - 1);
        e.byte(W.and);
        e.byte(W.eqz);
        e.byte(W.and);
      }
      // The index, computed whether or not it is used: cheaper than a second branch.
      e.get(localVa);
      e.get(localE);
      e.memory(W.load, header + adds);
      e.byte(W.add);
      e.set(localIndex);
    };
    if (plan.loops) {
      e.byte(W.loop);
      e.byte(W.void);
      depth++;
    }
    for (let index = 0; index < length; index++) {
      const { pc, d } = instructions[index]!;
      const op = d.op;
      const next = (pc + d.length) | 0;
      const rd = d.rd;
      const registerOp = registerOps[op];
      const immediateOp = immediateOps[op];
      const width = widthOf[op];
      if (registerOp !== undefined) {
        if (rd === 0) continue;
        reg(d.rs1);
        reg(d.rs2);
        e.byte(registerOp);
        e.set(registerLocal(rd));
      } else if (immediateOp !== undefined) {
        if (rd === 0) continue;
        reg(d.rs1);
        e.constant(d.imm);
        e.byte(immediateOp);
        e.set(registerLocal(rd));
      } else if (op === Op.LUI || op === Op.AUIPC) {
        if (rd === 0) continue;
        e.constant(op === Op.LUI ? d.imm : (pc + d.imm) | 0);
        e.set(registerLocal(rd));
      } else if (op === Op.FENCE) {
        // Nothing: one hart, and RAM is coherent.
      } else if (op === Op.MULH || op === Op.MULHU || op === Op.MULHSU) {
        if (rd === 0) continue;
        reg(d.rs1);
        e.byte(op === Op.MULHU ? W.extendI32U : W.extendI32S);
        reg(d.rs2);
        e.byte(op === Op.MULH ? W.extendI32S : W.extendI32U);
        e.byte(W.i64Mul);
        e.byte(W.i64Const);
        e.byte(32);
        e.byte(op === Op.MULHU ? W.i64ShrU : W.i64ShrS);
        e.byte(W.wrapI64);
        e.set(registerLocal(rd));
      } else if (op === Op.DIV || op === Op.DIVU || op === Op.REM || op === Op.REMU) {
        if (rd === 0) continue;
        division(e, op, () => reg(d.rs1), () => reg(d.rs2));
        e.set(registerLocal(rd));
      } else if (width !== undefined && loadOpcode[op] !== undefined) {
        translate(d, width, HeaderLayout.loadTag, HeaderLayout.loadAdd);
        openIf();
        if (rd !== 0) {
          e.get(localIndex);
          e.memory(loadOpcode[op]!, 0, Math.log2(width));
          e.set(registerLocal(rd));
        }
        e.byte(W.else);
        // The slow path may throw the TrapSignal through this frame: the registers first.
        storeRegisters();
        e.get(localVa);
        e.constant(width);
        e.constant(pc);
        retiredAt(index);
        e.byte(W.call);
        e.unsigned(functionLoad);
        if (rd === 0) e.byte(W.drop);
        else {
          if (op === Op.LB) e.byte(W.extend8S);
          else if (op === Op.LH) e.byte(W.extend16S);
          else if (op === Op.LBU || op === Op.LHU) {
            e.constant(op === Op.LBU ? 0xff : 0xffff);
            e.byte(W.and);
          }
          e.set(registerLocal(rd));
        }
        attentionExit(next, index);
        closeIf();
      } else if (width !== undefined) {
        translate(d, width, HeaderLayout.storeTag, HeaderLayout.storeAdd);
        openIf();
        e.get(localIndex);
        reg(d.rs2);
        e.memory(storeOpcode[op]!, 0, Math.log2(width));
        // A page with decoded instructions: the slots the store overlaps are emptied (code-cache.ts).
        e.get(localIndex);
        e.constant(12);
        e.byte(W.shrU);
        e.memory(W.load8u, header + HeaderLayout.codePageFlags, 0);
        openIf();
        e.get(localIndex);
        e.constant(width);
        e.byte(W.call);
        e.unsigned(functionStale);
        closeIf();
        e.byte(W.else);
        storeRegisters();
        e.get(localVa);
        e.constant(width);
        reg(d.rs2);
        e.constant(pc);
        retiredAt(index);
        e.byte(W.call);
        e.unsigned(functionStore);
        attentionExit(next, index);
        closeIf();
      } else if (op === Op.JAL) {
        if (rd !== 0) {
          e.constant(next);
          e.set(registerLocal(rd));
        }
        to((pc + d.imm) | 0, index);
      } else if (op === Op.JALR) {
        // The target first: rd may be rs1.
        reg(d.rs1);
        e.constant(d.imm);
        e.byte(W.add);
        e.constant(~1);
        e.byte(W.and);
        e.set(localT);
        if (rd !== 0) {
          e.constant(next);
          e.set(registerLocal(rd));
        }
        exit(0, index + 1, localT);
      } else {
        const condition = branchConditions[op];
        if (condition === undefined) throw new RangeError(`op ${op} is not translated to WebAssembly`);
        reg(d.rs1);
        reg(d.rs2);
        e.byte(condition);
        openIf();
        to((pc + d.imm) | 0, index);
        closeIf();
        if (index === length - 1) leave(next, index + 1);
      }
    }
    const last = instructions[length - 1]!;
    if (!plan.endsWithJump) leave((last.pc + last.d.length) | 0, length);
    if (plan.loops) {
      e.byte(W.end);
      depth--;
    }
    assert(depth === 0, () => `a block's code ends ${depth} labels deep`);
    // Not reached: every path above has left by a branch.
    e.byte(W.unreachable);
    e.byte(W.end); // $out
    storeRegisters();
    e.get(localN);
    e.constant(0);
    e.byte(W.ltS);
    e.byte(W.brIf);
    e.unsigned(depthAtStart - 1); // $dispatch
    e.byte(W.br);
    e.unsigned(depthAtStart); // $exit
  }
}

const tlbMask = arenaTlbEntries - 1;

/** Division as the M extension defines it: by zero -1 (DIV, DIVU) or the dividend (REM, REMU); -2^31 / -1 overflows to -2^31. */
function division(e: Emitter, op: number, a: () => void, b: () => void): void {
  const ifI32 = (): void => {
    e.byte(W.if);
    e.byte(W.i32);
  };
  b();
  e.byte(W.eqz);
  ifI32();
  if (op === Op.DIV || op === Op.DIVU) e.constant(-1);
  else a();
  e.byte(W.else);
  if (op === Op.DIV || op === Op.REM) {
    // Signed: -1 as divisor is where WebAssembly would trap (DIV) or is simply 0 (REM).
    b();
    e.constant(-1);
    e.byte(W.eq);
    ifI32();
    if (op === Op.DIV) {
      e.constant(0);
      a();
      e.byte(W.sub);
    } else e.constant(0);
    e.byte(W.else);
    a();
    b();
    e.byte(op === Op.DIV ? W.divS : W.remS);
    e.byte(W.end);
  } else {
    a();
    b();
    e.byte(op === Op.DIVU ? W.divU : W.remU);
  }
  e.byte(W.end);
}

/**
 * Where compiled blocks are kept and how they are called: a table of functions, and one
 * trampoline that calls a slot of it and goes on from block to block. Every call from
 * JavaScript goes to the same WebAssembly function, which V8 calls directly (a call to a
 * different export each time took its generic, slower path); and the trampoline follows the
 * links the tier has learnt (each block's last two successors) without returning to
 * JavaScript, while the next block fits in the budget and no slow path raised attention. A
 * link names its target's slot and the slot's generation, which a removal bumps: a link to a
 * dropped block is not followed. A link within the block's virtual page is followed as it is
 * (the chain's first block was found through the fetch TLB, and the page's mapping cannot
 * change while the chain runs: no instruction that changes it is in a block); a link to
 * another page only while the fetch TLB maps that page, at the chain's privilege, to the
 * target's RAM page, as the tier's lookup would find it (in mixbench, calls and returns
 * between pages took 172,000 trips back to JavaScript a run before).
 *
 * The records live in the arena (wasm-arena.ts, `linksOffset`), a slot's 16 words: length
 * (its instructions in one pass), generation, (pc, slot, generation) of link 0 and of link 1,
 * the block's virtual page and its RAM page.
 */
export class WasmBlockTable {
  private readonly table: WasmTable;
  /** Slots given back; slots from {@link unused} on have never been used. */
  private readonly free: number[] = [];
  private unused = 0;
  /** The links region as words. */
  private readonly records: Int32Array;
  /**
   * Runs the chain that starts at `slot`: `(slot, base, budget, dataContext, fetchContext) ->
   * retired` (the contexts of the TLB tags, mmu.ts); the last slot it ran is in the header.
   */
  readonly call: (slot: number, base: number, budget: number, dc: number, fc: number) => number;

  constructor(arena: WasmArena, readonly slots: number) {
    if (slots > wasmBlockSlots) throw new RangeError(`the arena has records for ${wasmBlockSlots} blocks, not ${slots}`);
    this.table = new WebAssembly.Table({ element: 'anyfunc', initial: slots });
    // Zeros (a fresh memory): a link's generation 0 matches no slot that holds a block (add
    // makes its generation odd), so nothing needs initializing.
    this.records = new Int32Array(arena.buffer, arena.linksOffset, slots * recordWords);
    const instance = new WebAssembly.Instance(new WebAssembly.Module(trampolineModule(arena)), { m: { memory: arena.memory, table: this.table } });
    this.call = instance.exports['call'] as (slot: number, base: number, budget: number, dc: number, fc: number) => number;
  }

  /** Slots for `count` new blocks (fewer if the table has fewer free), filled by {@link set}. */
  reserve(count: number): number[] {
    const slots: number[] = [];
    while (slots.length < count) {
      const slot = this.free.pop() ?? (this.unused < this.slots ? this.unused++ : undefined);
      if (slot === undefined) break;
      slots.push(slot);
    }
    return slots;
  }

  /**
   * Puts a block's function (`length` instructions a pass, translated for virtual page
   * `virtualPage` from RAM page `ramPage`) in a slot from {@link reserve}.
   */
  set(slot: number, block: unknown, length: number, virtualPage: number, ramPage: number): void {
    this.table.set(slot, block);
    const at = slot * recordWords;
    this.records[at + SlotWord.length] = length;
    this.records[at + SlotWord.virtualPage] = virtualPage;
    this.records[at + SlotWord.ramPage] = ramPage;
    // Odd while the slot holds a block, even while empty: no link made before matches.
    this.records[at + SlotWord.generation]!++;
    // No links yet (a generation of 0 matches no block).
    this.records[at + SlotWord.link0Generation] = 0;
    this.records[at + SlotWord.link1Generation] = 0;
  }

  remove(slot: number): void {
    this.table.set(slot, null);
    const at = slot * recordWords;
    this.records[at + SlotWord.length] = 0;
    this.records[at + SlotWord.generation]!++;
    this.free.push(slot);
  }

  /** The block in `slot` went on at `pc` to the block in `next`: the newer of its two links. */
  link(slot: number, pc: number, next: number): void {
    const at = slot * recordWords;
    const records = this.records;
    records.copyWithin(at + SlotWord.link1Pc, at + SlotWord.link0Pc, at + SlotWord.link0Pc + 3);
    records[at + SlotWord.link0Pc] = pc;
    records[at + SlotWord.link0Slot] = next;
    records[at + SlotWord.link0Generation] = records[next * recordWords + SlotWord.generation]!;
  }

}

const recordWords = slotRecordBytes / 4;
/** Word offsets in a slot's record. */
const enum SlotWord {
  length = 0,
  generation = 1,
  link0Pc = 2,
  link0Slot = 3,
  link0Generation = 4,
  link1Pc = 5,
  link1Slot = 6,
  link1Generation = 7,
  virtualPage = 8,
  ramPage = 9,
}

/** The trampoline: calls the block in `slot`, then each linked successor while it may (see {@link WasmBlockTable}). */
function trampolineModule(arena: WasmArena): Uint8Array {
  const header = arena.headerOffset;
  const links = arena.linksOffset;
  // Parameters, then locals.
  const slot = 0;
  const base = 1;
  const budget = 2;
  const dc = 3;
  const fc = 4;
  const ran = 5;
  /** The record of the block that ran last. */
  const record = 6;
  const exitPc = 7;
  const next = 8;
  const vpn = 9;
  /** The fetch TLB entry's offset (entry * 4). */
  const entry = 10;
  const e = new Emitter();
  e.unsigned(1);
  e.unsigned(6);
  e.byte(W.i32);
  const recordOf = (local: number): void => {
    e.get(local);
    e.constant(slotRecordBytes);
    e.byte(W.mul);
  };
  /** Leaves the chain if the link at `linkWord` (pc word; slot and generation follow) does not lead from `pc`. */
  const follow = (linkWord: number, depth: number): void => {
    e.get(record);
    e.memory(W.load, links + (linkWord + 1) * 4);
    e.set(next);
    // The target still holds the block the link was made to.
    recordOf(next);
    e.memory(W.load, links + SlotWord.generation * 4);
    e.get(record);
    e.memory(W.load, links + (linkWord + 2) * 4);
    e.byte(W.ne);
    e.byte(W.brIf);
    e.unsigned(depth);
  };
  e.constant(header + HeaderLayout.attention);
  e.constant(0);
  e.memory(W.store, 0);
  e.raw(W.block, W.void, W.loop, W.void);
  // ran += block(base + ran, budget - ran, dc), with the block in the table's slot.
  e.raw(W.localGet, base, W.localGet, ran, W.add, W.localGet, budget, W.localGet, ran, W.sub, W.localGet, dc, W.localGet, slot);
  e.raw(W.callIndirect, 0, 0, W.localGet, ran, W.add, W.localSet, ran);
  // The last block that ran (its unit may have gone on from the one called).
  e.constant(header + HeaderLayout.lastSlot);
  e.memory(W.load, 0);
  e.set(slot);
  // Stop at attention (the run loop must look), or when chains are off (lockstep).
  e.constant(header + HeaderLayout.attention);
  e.memory(W.load, 0);
  e.byte(W.brIf);
  e.unsigned(1);
  e.constant(header + HeaderLayout.chains);
  e.memory(W.load, 0);
  e.byte(W.eqz);
  e.byte(W.brIf);
  e.unsigned(1);
  e.constant(header + HeaderLayout.exitPc);
  e.memory(W.load, 0);
  e.set(exitPc);
  recordOf(slot);
  e.set(record);
  // Link 0, else link 1, else back to JavaScript.
  e.get(record);
  e.memory(W.load, links + SlotWord.link0Pc * 4);
  e.get(exitPc);
  e.byte(W.eq);
  e.byte(W.if);
  e.byte(W.void);
  follow(SlotWord.link0Pc, 2);
  e.byte(W.else);
  e.get(record);
  e.memory(W.load, links + SlotWord.link1Pc * 4);
  e.get(exitPc);
  e.byte(W.ne);
  e.byte(W.brIf);
  e.unsigned(2);
  follow(SlotWord.link1Pc, 2);
  e.byte(W.end);
  // A link to another virtual page: only while the fetch TLB maps it, at this privilege, to the
  // target's RAM page.
  e.get(exitPc);
  e.constant(12);
  e.byte(W.shrU);
  e.tee(vpn);
  e.get(record);
  e.memory(W.load, links + SlotWord.virtualPage * 4);
  e.byte(W.ne);
  e.byte(W.if);
  e.byte(W.void);
  e.get(vpn);
  e.constant(tlbMask);
  e.byte(W.and);
  e.constant(2);
  e.byte(W.shl);
  e.tee(entry);
  e.memory(W.load, header + HeaderLayout.fetchTag);
  e.get(vpn);
  e.get(fc);
  e.byte(W.or);
  e.byte(W.ne);
  e.byte(W.brIf);
  e.unsigned(2);
  e.get(entry);
  e.memory(W.load, header + HeaderLayout.fetchWordBase);
  e.constant(10);
  e.byte(W.shrS);
  recordOf(next);
  e.memory(W.load, links + SlotWord.ramPage * 4);
  e.byte(W.ne);
  e.byte(W.brIf);
  e.unsigned(2);
  e.byte(W.end);
  // The next block must fit whole in what is left of the budget: length - 1 >= left, unsigned,
  // also leaves at an empty slot (length 0).
  recordOf(next);
  e.memory(W.load, links + SlotWord.length * 4);
  e.constant(1);
  e.byte(W.sub);
  e.get(budget);
  e.get(ran);
  e.byte(W.sub);
  e.byte(W.geU);
  e.byte(W.brIf);
  e.unsigned(1);
  e.get(next);
  e.set(slot);
  e.byte(W.br);
  e.unsigned(0);
  e.byte(W.end);
  e.byte(W.end);
  e.get(ran);
  e.byte(W.end);
  const body = Array.from(e.written);
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...wasmSection(1, wasmVector([
      [0x60, 3, W.i32, W.i32, W.i32, 1, W.i32], // a block
      [0x60, 5, W.i32, W.i32, W.i32, W.i32, W.i32, 1, W.i32], // the trampoline
    ])),
    ...wasmSection(2, wasmVector([
      [...wasmName('m'), ...wasmName('memory'), 0x02, 0x00, 0x00],
      [...wasmName('m'), ...wasmName('table'), 0x01, 0x70, 0x00, 0x00],
    ])),
    ...wasmSection(3, wasmVector([[1]])),
    ...wasmSection(7, wasmVector([[...wasmName('call'), 0x00, 0]])),
    ...wasmSection(10, wasmVector([[...unsignedLeb(body.length), ...body]])),
  ]);
}

/** A compiled block: its slot in the table, and a function of the JavaScript blocks' signature (translator.ts's BlockFunction). */
export interface WasmBlock {
  readonly slot: number;
  readonly run: BlockFunction;
  readonly bytes: number;
}

/**
 * Compiles blocks of one page (virtual page `virtualPage`, RAM page `ramPage`), in one module,
 * into slots of `table`: one entry per plan, undefined where the table had no slot left.
 */
export function compileWasmBlocks(plans: readonly BlockPlan[], virtualPage: number, ramPage: number, environment: WasmBlockEnvironment, table: WasmBlockTable): (WasmBlock | undefined)[] {
  const slots = table.reserve(plans.length);
  if (slots.length === 0) return plans.map(() => undefined);
  const compiled = plans.slice(0, slots.length);
  const bytes = wasmBlocksModule(compiled, slots, environment.arena);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { m: { memory: environment.arena.memory, ...environment.imports } });
  const words = environment.words;
  const call = table.call;
  // What each block adds to the module, for the tier's cap (the module's own part shared out).
  const share = Math.ceil(bytes.length / compiled.length);
  return plans.map((plan, i) => {
    const slot = slots[i];
    if (slot === undefined) return undefined;
    table.set(slot, instance.exports[`b${i}`], plan.instructions.length, virtualPage, ramPage);
    // This block alone, as the contract says (the tier calls the trampoline itself, chains on).
    const run: BlockFunction = (hart, base, budget, dc) => {
      const chains = words[chainsWord]!;
      words[chainsWord] = 0;
      try {
        // Chains off: no link is followed, so no fetch context is needed.
        const retired = call(slot, base, budget, dc, 0);
        (hart as { pc: number }).pc = words[exitPcWord]!;
        return retired;
      } finally {
        words[chainsWord] = chains;
      }
    };
    return { slot, run, bytes: share };
  });
}

/** The header word where a block leaves its exit pc. */
export const exitPcWord = HeaderLayout.exitPc >> 2;
/** The header word where a chain leaves the slot of the last block it ran. */
export const lastSlotWord = HeaderLayout.lastSlot >> 2;
/** The header word that allows chains (1) or stops after each block (0). */
export const chainsWord = HeaderLayout.chains >> 2;
