/**
 * The translation tier's compiler: a block of guest instructions (straight-line code in one
 * page, through forward branches on their fall-through path, up to and including the branch
 * or jump that ends it: see planBlock) becomes the source of one
 * JavaScript function, compiled with `new Function` (docs/BENCHMARKS.md says why JavaScript
 * and not WebAssembly). translation-cache.ts decides what to compile and runs it.
 *
 * What a block function does is exactly what the interpreter (cpu.ts) does for the same
 * instructions; the generated code follows its cases line by line, with three differences
 * that do not show: the registers a block uses live in locals (read at entry, written back
 * in a `finally`, so that a trap thrown from a slow path leaves `Hart.x` as the interpreter
 * would); constants (pc, immediates, register numbers) are folded into the source; and a
 * block whose last instruction branches back to its own first instruction loops inside the
 * function while the budget allows a whole further pass (of its longest, the side exits
 * aside).
 *
 * Its contract (execution-tier.ts), as the generated code keeps it:
 * - counts: a block retires its instructions in order; before any slow path (which may read
 *   the count: CSR reads, MMIO, environment reads) it publishes `Hart.runRetired` and
 *   `Hart.pc` for the instruction; it returns how many instructions it retired;
 * - budget: the caller enters only when the whole block fits in what is left, and a loop
 *   goes round again only when a whole pass still fits;
 * - traps: a slow path throws the TrapSignal with pc and count published for the faulting
 *   instruction, nothing of it done (its destination register is assigned after the call);
 * - attention: after a slow path that set `Hart.attention` (MMIO, a write to translated code,
 *   a TLB fill dropping the code cache), the block returns at once, pc at the next
 *   instruction, as the interpreter's `continue outer` does.
 */
import { decode, Op, type Decoded } from './decode.js';
import { floatFunctionNames, floatFunctions, floatRegisters, floatSource, floatTranslatable, isFloat, type FloatContext } from './translator-float.js';

/** Most instructions in one block: keeps a function's bytecode far below V8's 60 KB limit for optimization. */
export const blockInstructionsMax = 48;
/**
 * Fewest instructions in a block that does not loop, where the interpreter enters it: entering
 * the tier costs about as much as interpreting a few instructions, so shorter ones (between
 * system instructions, say) stay on the interpreter. A block that other blocks lead to may be
 * shorter (translation-cache.ts).
 */
export const blockInstructionsMin = 4;

/**
 * A compiled block. `base` is `Hart.runRetired` at entry, `budget` (≥ the block's length) the
 * most it may retire, `dataContext` the data TLBs' context (mmu.ts) at entry; returns the
 * instructions retired and leaves `Hart.pc` at the next one.
 */
export type BlockFunction = (hart: unknown, base: number, budget: number, dataContext: number) => number;

/** What `new Function` receives besides the source: the hart's arrays, RAM views and the slow paths. */
export interface BlockEnvironment {
  readonly x: Int32Array;
  readonly ram32: Int32Array;
  readonly ramU8: Uint8Array;
  readonly ramI8: Int8Array;
  readonly ramU16: Uint16Array;
  readonly ramI16: Int16Array;
  readonly loadTag: Int32Array;
  readonly loadAdd: Int32Array;
  readonly storeTag: Int32Array;
  readonly storeAdd: Int32Array;
  readonly codePages: readonly (Int32Array | undefined)[];
  /** The f registers (`Hart.f`) and the FPU state (`Hart.fpu`, whose flags are fflags). */
  readonly f: Uint32Array;
  readonly fpu: unknown;
  /** Publishes pc and count, then the MMU's slow load (may throw the TrapSignal). */
  readonly load: (hart: unknown, va: number, width: number, pc: number, retired: number) => number;
  /** Publishes pc and count, then the MMU's slow store (may throw the TrapSignal). */
  readonly store: (hart: unknown, va: number, width: number, value: number, pc: number, retired: number) => void;
  /** Publishes pc and count, then the MMU's slow 64-bit store (FSD; may throw the TrapSignal). */
  readonly storeDouble: (hart: unknown, va: number, low: number, high: number, pc: number, retired: number) => void;
  readonly mulh: (a: number, b: number) => number;
  readonly mulhsu: (a: number, b: number) => number;
  readonly mulhu: (a: number, b: number) => number;
}
const environmentNames = ['x', 'ram32', 'ramU8', 'ramI8', 'ramU16', 'ramI16', 'loadTag', 'loadAdd', 'storeTag', 'storeAdd', 'codePages', 'f', 'fpu', 'load', 'store', 'storeDouble', 'mulh', 'mulhsu', 'mulhu'] as const;

/** One decoded instruction of a block and its address. */
interface Instruction {
  readonly pc: number;
  readonly d: Decoded;
}

/**
 * A block's instructions, read from guest RAM: a superblock, which goes on past a forward
 * conditional branch on its fall-through path (the taken branch leaves the block, a side
 * exit), and ends at a backward branch, a JAL or a JALR.
 */
export interface BlockPlan {
  readonly instructions: readonly Instruction[];
  /** Its last instruction is a branch or jump. */
  readonly endsWithJump: boolean;
  /** Its last branch or jump may go back to its first instruction (the function loops inside). */
  readonly loops: boolean;
}

const branchOps = new Set<number>([Op.BEQ, Op.BNE, Op.BLT, Op.BGE, Op.BLTU, Op.BGEU]);
const loadOps = new Set<number>([Op.LB, Op.LH, Op.LW, Op.LBU, Op.LHU]);
const storeOps = new Set<number>([Op.SB, Op.SH, Op.SW]);
const jumpOps = new Set<number>([Op.JAL, Op.JALR, ...branchOps]);
const unconditionalJumpOps = new Set<number>([Op.JAL, Op.JALR]);
/** What a block holds besides loads, stores and jumps: the integer computational instructions. */
const computeOps = new Set<number>([
  Op.LUI, Op.AUIPC, Op.ADDI, Op.SLTI, Op.SLTIU, Op.XORI, Op.ORI, Op.ANDI, Op.SLLI, Op.SRLI, Op.SRAI,
  Op.ADD, Op.SUB, Op.SLL, Op.SLT, Op.SLTU, Op.XOR, Op.SRL, Op.SRA, Op.OR, Op.AND,
  Op.MUL, Op.MULH, Op.MULHSU, Op.MULHU, Op.DIV, Op.DIVU, Op.REM, Op.REMU, Op.FENCE,
]);

/** Whether a block may contain `op` (else the block ends before it and the interpreter runs it). */
export function translatable(op: number): boolean {
  return computeOps.has(op) || loadOps.has(op) || storeOps.has(op) || jumpOps.has(op) || isFloat(op);
}

/** Whether `op` ends a block (a branch or jump: the block's last instruction). */
export function endsBlock(op: number): boolean {
  return jumpOps.has(op);
}

/**
 * Reads the block that starts at page offset `offset` of the RAM page whose halfwords start at
 * `ramU16[halfBase]`, `pc` being its virtual address. Goes on past forward branches (each
 * block exit is a trip through the tier's dispatch, which costs more than the instructions of
 * a short block: docs/BENCHMARKS.md); stops after a backward branch, a JAL or a JALR, before an
 * instruction the tier leaves to the interpreter, before a 32-bit instruction that straddles
 * the page's end, and at {@link blockInstructionsMax}. Empty when the first instruction is
 * one the interpreter runs.
 */
export function planBlock(ramU16: Uint16Array, halfBase: number, offset: number, pc: number): BlockPlan {
  const instructions: Instruction[] = [];
  while (offset < 4096 && instructions.length < blockInstructionsMax) {
    const low = ramU16[halfBase + (offset >>> 1)]!;
    let bits = low;
    if ((low & 3) === 3) {
      if (offset === 4094) break; // straddles into the next page: the interpreter fetches it
      bits = low | (ramU16[halfBase + (offset >>> 1) + 1]! << 16);
    }
    const d = decode(bits);
    if (!translatable(d.op) || isFloat(d.op) && !floatTranslatable(d)) break;
    instructions.push({ pc, d });
    // A backward branch ends the block too: it closes a loop, and the code after it runs once
    // per loop, after V8 has optimized the loop with no feedback there (every first pass
    // through it then costs a deoptimization).
    if (unconditionalJumpOps.has(d.op) || branchOps.has(d.op) && d.imm <= 0) break;
    offset += d.length;
    pc = (pc + d.length) | 0;
  }
  const last = instructions[instructions.length - 1];
  const endsWithJump = last !== undefined && endsBlock(last.d.op);
  // Only the last can go back to the head: other branches are forward ones.
  const loops = endsWithJump && jumpTarget(last) === instructions[0]!.pc;
  return { instructions, endsWithJump, loops };
}

/**
 * Where a pass of the block may leave to, as far as its code says: the targets of its
 * branches and JALs (not its own head when it loops) and where it falls through; not JALR's.
 */
export function blockExits(plan: BlockPlan): number[] {
  const instructions = plan.instructions;
  const exits: number[] = [];
  for (const instruction of instructions) {
    const target = jumpOps.has(instruction.d.op) ? jumpTarget(instruction) : undefined;
    if (target !== undefined && !(plan.loops && target === instructions[0]!.pc)) exits.push(target);
  }
  const last = instructions[instructions.length - 1];
  if (last !== undefined && !unconditionalJumpOps.has(last.d.op)) exits.push((last.pc + last.d.length) | 0);
  return exits;
}

/** The JavaScript source of a block's function body (see {@link compileBlock}). */
export function blockSource(plan: BlockPlan): string {
  const instructions = plan.instructions;
  if (instructions.length === 0) throw new RangeError('an empty block');
  const length = instructions.length;
  const head = instructions[0]!.pc;
  const last = instructions[length - 1]!;
  const used = new Set<number>();
  const written = new Set<number>();
  for (const { d } of instructions) {
    for (const r of sourceRegisters(d)) if (r !== 0) used.add(r);
    const destination = destinationRegister(d);
    if (destination !== undefined && destination !== 0) {
      used.add(destination);
      written.add(destination);
    }
  }
  const r = (index: number): string => (index === 0 ? '0' : `r${index}`);
  const lines: string[] = [];
  const loops = plan.loops;
  lines.push(...[...used].sort((a, b) => a - b).map((index) => `let r${index} = x[${index}];`));
  // Every exit sets pc and the count and breaks to one shared return: an exit that was never
  // taken while V8 gathered feedback then needs none (a superblock has many, rarely taken),
  // and the stores after it are ones that every exit runs.
  lines.push('let k = 0, p = 0, n = 0;');
  lines.push('try {');
  lines.push('exit: {');
  if (loops) lines.push('for (;;) {');
  const float: FloatContext = { r, retiredAt, attentionExit, exitTo, fsChecked: false };
  instructions.forEach((instruction, index) => {
    const isLast = index === length - 1;
    if (endsBlock(instruction.d.op)) lines.push(...jumpSource(instruction, index, isLast, { length, loops, head }, r));
    else if (isFloat(instruction.d.op)) lines.push(...floatSource(instruction, index, float));
    else lines.push(...instructionSource(instruction, index, r));
  });
  if (!plan.endsWithJump) lines.push(exitTo(hex((last.pc + last.d.length) | 0), length));
  if (loops) lines.push('}');
  lines.push('}');
  lines.push('h.pc = p; return k + n;');
  lines.push('} finally {');
  lines.push(...[...written].sort((a, b) => a - b).map((index) => `x[${index}] = r${index};`));
  lines.push('}');
  return lines.join('\n');
}

/** Leaves the block (see blockSource): pc at `pc`, `retired` instructions of this pass retired. */
function exitTo(pc: string, retired: number): string {
  return `{ p = ${pc}; n = ${retired}; break exit; }`;
}

/** The x register an instruction writes (0 or undefined for none). */
export function destinationRegister(d: Decoded): number | undefined {
  return isFloat(d.op) ? floatRegisters(d).destination : writesRd(d.op) ? d.rd : undefined;
}

/** Compiles a block: a function over the environment's arrays (read once, kept in closure constants). */
export function compileBlock(plan: BlockPlan, environment: BlockEnvironment): BlockFunction {
  const body = blockSource(plan);
  const factory = new Function(
    ...environmentNames,
    ...floatFunctionNames,
    `'use strict';\nreturn function block(h, base, budget, dc) {\n${body}\n};`,
  ) as (...values: unknown[]) => BlockFunction;
  return factory(...environmentNames.map((name) => environment[name]), ...floatFunctions);
}

function hex(value: number): string {
  return value < 0 ? `(${value | 0})` : `0x${value.toString(16)}`;
}

function writesRd(op: number): boolean {
  return computeOps.has(op) && op !== Op.FENCE || loadOps.has(op) || op === Op.JAL || op === Op.JALR;
}

/** The x registers an instruction reads. */
export function sourceRegisters(d: Decoded): number[] {
  if (isFloat(d.op)) return floatRegisters(d).sources;
  if (d.op === Op.LUI || d.op === Op.AUIPC || d.op === Op.JAL || d.op === Op.FENCE) return [];
  if (storeOps.has(d.op) || branchOps.has(d.op) || isRegisterOp(d.op)) return [d.rs1, d.rs2];
  return [d.rs1];
}

function isRegisterOp(op: number): boolean {
  return op >= Op.ADD && op <= Op.AND || op >= Op.MUL && op <= Op.REMU;
}

/** The static target of a branch or JAL, or undefined for JALR. */
function jumpTarget(instruction: Instruction): number | undefined {
  return instruction.d.op === Op.JALR ? undefined : (instruction.pc + instruction.d.imm) | 0;
}

/** The retired count at instruction `index` of the pass, for publishing before a slow path. */
function retiredAt(index: number): string {
  return `base + k + ${index}`;
}

/** Leaves after instruction `index` when a slow path asked the loop to look (attention). */
function attentionExit(instruction: Instruction, index: number): string {
  return `if (h.attention) ${exitTo(hex((instruction.pc + instruction.d.length) | 0), index + 1)}`;
}

function instructionSource(instruction: Instruction, index: number, r: (index: number) => string): string[] {
  const { pc, d } = instruction;
  const rd = d.rd === 0 ? '' : `r${d.rd} = `;
  const a = r(d.rs1);
  const b = r(d.rs2);
  const imm = d.imm | 0;
  const assign = (expression: string): string[] => (d.rd === 0 ? [] : [`${rd}${expression};`]);
  switch (d.op) {
    case Op.LUI: return assign(`${imm}`);
    case Op.AUIPC: return assign(`${(pc + imm) | 0}`);
    case Op.ADDI: return assign(`(${a} + ${imm}) | 0`);
    case Op.SLTI: return assign(`${a} < ${imm} ? 1 : 0`);
    case Op.SLTIU: return assign(`${a} >>> 0 < ${imm >>> 0} ? 1 : 0`);
    case Op.XORI: return assign(`${a} ^ ${imm}`);
    case Op.ORI: return assign(`${a} | ${imm}`);
    case Op.ANDI: return assign(`${a} & ${imm}`);
    case Op.SLLI: return assign(`${a} << ${imm}`);
    case Op.SRLI: return assign(`(${a} >>> ${imm}) | 0`);
    case Op.SRAI: return assign(`${a} >> ${imm}`);
    case Op.ADD: return assign(`(${a} + ${b}) | 0`);
    case Op.SUB: return assign(`(${a} - ${b}) | 0`);
    case Op.SLL: return assign(`${a} << (${b} & 31)`);
    case Op.SLT: return assign(`${a} < ${b} ? 1 : 0`);
    case Op.SLTU: return assign(`${a} >>> 0 < ${b} >>> 0 ? 1 : 0`);
    case Op.XOR: return assign(`${a} ^ ${b}`);
    case Op.SRL: return assign(`(${a} >>> (${b} & 31)) | 0`);
    case Op.SRA: return assign(`${a} >> (${b} & 31)`);
    case Op.OR: return assign(`${a} | ${b}`);
    case Op.AND: return assign(`${a} & ${b}`);
    case Op.MUL: return assign(`Math.imul(${a}, ${b})`);
    case Op.MULH: return assign(`mulh(${a}, ${b})`);
    case Op.MULHSU: return assign(`mulhsu(${a}, ${b})`);
    case Op.MULHU: return assign(`mulhu(${a}, ${b})`);
    // Division by zero gives -1 (DIV, DIVU) or the dividend (REM, REMU); -2^31 / -1 overflows to -2^31 (M spec).
    case Op.DIV: return assign(`${b} === 0 ? -1 : ${b} === -1 ? -${a} | 0 : (${a} / ${b}) | 0`);
    case Op.DIVU: return assign(`${b} === 0 ? -1 : ((${a} >>> 0) / (${b} >>> 0)) | 0`);
    case Op.REM: return assign(`${b} === 0 ? ${a} : ${b} === -1 ? 0 : ${a} % ${b} | 0`);
    case Op.REMU: return assign(`${b} === 0 ? ${a} : (${a} >>> 0) % (${b} >>> 0) | 0`);
    case Op.FENCE: return [];
    case Op.LB: return loadSource(instruction, index, 1, 'ramI8[i]', '(v << 24) >> 24', r);
    case Op.LBU: return loadSource(instruction, index, 1, 'ramU8[i]', 'v & 0xff', r);
    case Op.LH: return loadSource(instruction, index, 2, 'ramI16[i >> 1]', '(v << 16) >> 16', r);
    case Op.LHU: return loadSource(instruction, index, 2, 'ramU16[i >> 1]', 'v & 0xffff', r);
    case Op.LW: return loadSource(instruction, index, 4, 'ram32[i >> 2]', 'v', r);
    case Op.SB: return storeSource(instruction, index, 1, `ramU8[i] = ${b};`, r);
    case Op.SH: return storeSource(instruction, index, 2, `ramU16[i >> 1] = ${b};`, r);
    case Op.SW: return storeSource(instruction, index, 4, `ram32[i >> 2] = ${b};`, r);
    default:
      throw new RangeError(`op ${d.op} is not translated`);
  }
}

/** The alignment test of the fast path for an access of `width` bytes (the interpreter's). */
function alignment(width: number): string {
  return width === 1 ? '' : ` && (va & ${width - 1}) === 0`;
}

function loadSource(instruction: Instruction, index: number, width: number, fast: string, extend: string, r: (index: number) => string): string[] {
  const { pc, d } = instruction;
  const target = d.rd === 0 ? 'void' : `r${d.rd} =`;
  const slowTarget = d.rd === 0 ? '' : `r${d.rd} = `;
  return [
    `{ const va = (${r(d.rs1)} + ${d.imm | 0}) | 0; const e = (va >>> 12) & 511;`,
    `if (loadTag[e] === ((va >>> 12) | dc)${alignment(width)}) { const i = (va + loadAdd[e]) | 0; ${target} ${fast}; }`,
    `else { const v = load(h, va, ${width}, ${hex(pc)}, ${retiredAt(index)}) | 0; ${slowTarget}${extend}; ${attentionExit(instruction, index)} } }`,
  ];
}

function storeSource(instruction: Instruction, index: number, width: number, write: string, r: (index: number) => string): string[] {
  const { pc, d } = instruction;
  // A store into a page with decoded instructions empties the slots it overlaps, as the
  // interpreter's fast path does (code-cache.ts); pages with translations never reach here.
  const stale = width === 4 ? 'stale[i & 0xffe] = 0; stale[(i + 2) & 0xffe] = 0; stale[(i - 2) & 0xffe] = 0;' : 'stale[i & 0xffe] = 0; stale[(i - 2) & 0xffe] = 0;';
  return [
    `{ const va = (${r(d.rs1)} + ${d.imm | 0}) | 0; const e = (va >>> 12) & 511;`,
    `if (storeTag[e] === ((va >>> 12) | dc)${alignment(width)}) { const i = (va + storeAdd[e]) | 0; ${write} const stale = codePages[i >>> 12]; if (stale !== undefined) { ${stale} } }`,
    `else { store(h, va, ${width}, ${r(d.rs2)}, ${hex(pc)}, ${retiredAt(index)}); ${attentionExit(instruction, index)} } }`,
  ];
}

/**
 * A branch or jump, instruction `index` of the block: leaves (a branch not at the end only when
 * taken: a side exit), or goes round again if it targets the head.
 */
function jumpSource(instruction: Instruction, index: number, isLast: boolean, block: { length: number; loops: boolean; head: number }, r: (index: number) => string): string[] {
  const { pc, d } = instruction;
  const { length, loops, head } = block;
  const next = hex((pc + d.length) | 0);
  const link = d.rd === 0 ? '' : `r${d.rd} = ${next}; `;
  const a = r(d.rs1);
  const b = r(d.rs2);
  const retired = index + 1;
  // Going round again: only if a whole further pass, of the block's longest, fits in the budget (exact counts).
  const again = `{ k += ${retired}; if (k + ${length} > budget) ${exitTo(hex(head), 0)} continue; }`;
  const to = (target: number): string => (loops && target === head ? again : exitTo(hex(target), retired));
  switch (d.op) {
    case Op.JAL: return [`${link}${to((pc + d.imm) | 0)}`];
    case Op.JALR: return [`{ const t = ((${a} + ${d.imm | 0}) & ~1) | 0; ${link}${exitTo('t', retired)} }`];
    default: {
      const condition = {
        [Op.BEQ]: `${a} === ${b}`,
        [Op.BNE]: `${a} !== ${b}`,
        [Op.BLT]: `${a} < ${b}`,
        [Op.BGE]: `${a} >= ${b}`,
        [Op.BLTU]: `${a} >>> 0 < ${b} >>> 0`,
        [Op.BGEU]: `${a} >>> 0 >= ${b} >>> 0`,
      }[d.op as number];
      if (condition === undefined) throw new RangeError(`op ${d.op} does not end a block`);
      // Not taken: the block goes on, or, at its end, leaves to the next instruction.
      return [`if (${condition}) ${to((pc + d.imm) | 0)}`, ...(isLast ? [exitTo(next, retired)] : [])];
    }
  }
}

