/**
 * The translation tier's F and D instructions (translator.ts compiles the rest): the source
 * a block holds for each, following fp-instructions.ts (the interpreter's semantics) case by
 * case with the instruction's fields folded in. The arithmetic is the same FPU library's
 * (fpu/), called with the same arguments; what this file adds is only where the operands and
 * results live: f registers in `hart.f`, the x registers in the block's locals.
 *
 * What the interpreter decides at run time, a block leaves to it: with mstatus.FS = Off (every
 * F and D instruction is illegal) or a DYN rounding mode whose frm is reserved, the block stops
 * before the instruction, pc at it, with `attention` set, and the run loop executes it (and
 * takes the trap). Neither can change inside a block (no CSR writes, no traps go on), so the
 * first F or D instruction checks FS and each DYN one frm. A static reserved rm (5, 6) ends the
 * block before the instruction ({@link floatTranslatable}).
 */
import { Op, type Decoded } from './decode.js';
import { Status } from './csr.js';
import { compressedFloatOffset } from './decode-compressed.js';
import * as fpuLibrary from './fpu/index.js';
import { nanBoxHigh } from './fpu/index.js';

/** The FPU library's functions a block calls, passed to `new Function` by these names. */
export const floatFunctionNames = [
  'f32Add', 'f32Class', 'f32Div', 'f32Eq', 'f32Fmadd', 'f32Fmsub', 'f32Fnmadd', 'f32Fnmsub', 'f32Le', 'f32Lt', 'f32Max', 'f32Min', 'f32Mul',
  'f32SignInject', 'f32SignInjectNegated', 'f32SignInjectXor', 'f32Sqrt', 'f32Sub', 'f32ToF64', 'f32ToI32', 'f32ToU32',
  'f64Add', 'f64Class', 'f64Div', 'f64Eq', 'f64Fmadd', 'f64Fmsub', 'f64Fnmadd', 'f64Fnmsub', 'f64Le', 'f64Lt', 'f64Max', 'f64Min', 'f64Mul',
  'f64SignInjectHigh', 'f64SignInjectNegatedHigh', 'f64SignInjectXorHigh', 'f64Sqrt', 'f64Sub', 'f64ToF32', 'f64ToI32', 'f64ToU32',
  'i32ToF32', 'i32ToF64', 'unboxF32', 'u32ToF32', 'u32ToF64',
] as const satisfies readonly (keyof typeof fpuLibrary)[];

/** The functions themselves, in the order of {@link floatFunctionNames}. */
export const floatFunctions: readonly unknown[] = floatFunctionNames.map((name) => fpuLibrary[name]);

const floatOps = new Set<number>([Op.FLW, Op.FSW, Op.FLD, Op.FSD, Op.FP]);
/** mstatus.FS: Dirty is all its bits set. */
const fsBits = Status.FS;
const dynamicRounding = 7;
const roundingMax = 4;

export function isFloat(op: number): boolean {
  return floatOps.has(op);
}

/** One F or D instruction of a block and its address (translator.ts). */
export interface FloatInstruction {
  readonly pc: number;
  readonly d: Decoded;
}

/** What the generator passes in: register names, and the code that leaves before an instruction. */
export interface FloatContext {
  /** The local an x register lives in (`0` for x0). */
  readonly r: (index: number) => string;
  /** Source that publishes `Hart.runRetired` for instruction `index` (before a slow path). */
  readonly retiredAt: (index: number) => string;
  /** Source that leaves after instruction `index` if a slow path set attention. */
  readonly attentionExit: (instruction: FloatInstruction, index: number) => string;
  /** Source that leaves the block, pc at `pc`, having retired `retired` of this pass. */
  readonly exitTo: (pc: string, retired: number) => string;
  /** Whether an earlier instruction of the block has checked FS (set by {@link floatSource}). */
  fsChecked: boolean;
}

/** OP-FP (0x53) funct7s whose rm field is a rounding mode (checked even where the result is exact). */
const roundedOperations = new Set<number>([0x00, 0x04, 0x08, 0x0c, 0x2c, 0x20, 0x60, 0x68, 0x01, 0x05, 0x09, 0x0d, 0x2d, 0x21, 0x61, 0x69]);

/** Whether the instruction reads the rm field (the fused ones and {@link roundedOperations}). */
function rounds(d: Decoded): boolean {
  if (d.op !== Op.FP) return false;
  return (d.imm & 0x7f) !== 0x53 || roundedOperations.has(d.imm >>> 25);
}

/** Whether a block may hold this F or D instruction: not when its static rm is reserved (it always traps). */
export function floatTranslatable(d: Decoded): boolean {
  if (!rounds(d)) return true;
  const rm = (d.imm >>> 12) & 7;
  return rm <= roundingMax || rm === dynamicRounding;
}

/** The x registers an F or D instruction reads, and the one it writes (undefined for none). */
export function floatRegisters(d: Decoded): { readonly sources: number[]; readonly destination: number | undefined } {
  if (d.op !== Op.FP) return { sources: [d.rs1], destination: undefined }; // loads and stores: the base
  if ((d.imm & 0x7f) !== 0x53) return { sources: [], destination: undefined }; // fused
  switch (d.imm >>> 25) {
    case 0x68: case 0x69: case 0x78: return { sources: [d.rs1], destination: undefined };
    case 0x50: case 0x51: case 0x60: case 0x61: case 0x70: case 0x71: return { sources: [], destination: d.rd };
    default: return { sources: [], destination: undefined };
  }
}

const single = (r: number): string => `unboxF32(f[${2 * r + 1}], f[${2 * r}])`;
const high = (r: number): string => `f[${2 * r + 1}]`;
const low = (r: number): string => `f[${2 * r}]`;
const writeSingle = (r: number, value: string): string => `f[${2 * r}] = ${value}; f[${2 * r + 1}] = ${nanBoxHigh}; h.mstatus |= ${fsBits};`;
const writeDouble = (r: number, highValue: string, lowValue: string): string => `f[${2 * r}] = ${lowValue}; f[${2 * r + 1}] = ${highValue}; h.mstatus |= ${fsBits};`;
/** A double result the library left in the state. */
const writeResult = (r: number): string => writeDouble(r, 'fpu.high', 'fpu.low');

function hex(value: number): string {
  return value < 0 ? `(${value | 0})` : `0x${value.toString(16)}`;
}

/** The source of one F or D instruction at position `index` of its block. */
export function floatSource(instruction: FloatInstruction, index: number, context: FloatContext): string[] {
  const { pc, d } = instruction;
  const leave = `{ h.attention = true; ${context.exitTo(hex(pc), index)} }`;
  const lines: string[] = [];
  if (!context.fsChecked) {
    // FS = Off: the interpreter takes the illegal-instruction trap (fp-instructions.ts).
    lines.push(`if ((h.mstatus & ${fsBits}) === 0) ${leave}`);
    context.fsChecked = true;
  }
  let rm = '';
  if (rounds(d)) {
    const field = (d.imm >>> 12) & 7;
    if (field === dynamicRounding) {
      lines.push(`if (h.frm > ${roundingMax}) ${leave}`);
      rm = 'h.frm';
    } else {
      rm = `${field}`;
    }
  }
  switch (d.op) {
    case Op.FLW: case Op.FLD: return [...lines, ...loadSource(instruction, index, context)];
    case Op.FSW: case Op.FSD: return [...lines, ...storeSource(instruction, index, context)];
    default: return [...lines, ...operationSource(d, rm, context)];
  }
}

function offset(d: Decoded, store: boolean): number {
  if (d.length === 2) return compressedFloatOffset(d.imm);
  return store ? ((d.imm >> 25) << 5) | ((d.imm >>> 7) & 31) : d.imm >> 20;
}

function loadSource(instruction: FloatInstruction, index: number, context: FloatContext): string[] {
  const { pc, d } = instruction;
  const address = `{ const va = (${context.r(d.rs1)} + ${offset(d, false)}) | 0; const e = (va >>> 12) & 511;`;
  const slowArguments = `${hex(pc)}, ${context.retiredAt(index)}`;
  if (d.op === Op.FLW) {
    return [
      address,
      `if (loadTag[e] === ((va >>> 12) | dc) && (va & 3) === 0) { const i = (va + loadAdd[e]) | 0; ${writeSingle(d.rd, 'ram32[i >> 2]')} }`,
      `else { const v = load(h, va, 4, ${slowArguments}); ${writeSingle(d.rd, 'v')} ${context.attentionExit(instruction, index)} } }`,
    ];
  }
  // FLD: two 32-bit loads, low word first (fp-instructions.ts); aligned, both in one page.
  return [
    address,
    `if (loadTag[e] === ((va >>> 12) | dc) && (va & 7) === 0) { const i = (va + loadAdd[e]) | 0; ${writeDouble(d.rd, 'ram32[(i >> 2) + 1]', 'ram32[i >> 2]')} }`,
    `else { const lo = load(h, va, 4, ${slowArguments}); const hi = load(h, (va + 4) | 0, 4, ${slowArguments}); ${writeDouble(d.rd, 'hi', 'lo')} ${context.attentionExit(instruction, index)} } }`,
  ];
}

function storeSource(instruction: FloatInstruction, index: number, context: FloatContext): string[] {
  const { pc, d } = instruction;
  const address = `{ const va = (${context.r(d.rs1)} + ${offset(d, true)}) | 0; const e = (va >>> 12) & 511;`;
  const slowArguments = `${hex(pc)}, ${context.retiredAt(index)}`;
  // As the integer stores: a store into a page with decoded instructions empties the slots it overlaps.
  const stale = (word: string): string => `stale[${word} & 0xffe] = 0; stale[(${word} + 2) & 0xffe] = 0; stale[(${word} - 2) & 0xffe] = 0;`;
  if (d.op === Op.FSW) {
    return [
      address,
      `if (storeTag[e] === ((va >>> 12) | dc) && (va & 3) === 0) { const i = (va + storeAdd[e]) | 0; ram32[i >> 2] = ${low(d.rs2)}; const stale = codePages[i >>> 12]; if (stale !== undefined) { ${stale('i')} } }`,
      `else { store(h, va, 4, ${low(d.rs2)} | 0, ${slowArguments}); ${context.attentionExit(instruction, index)} } }`,
    ];
  }
  return [
    address,
    `if (storeTag[e] === ((va >>> 12) | dc) && (va & 7) === 0) { const i = (va + storeAdd[e]) | 0; ram32[i >> 2] = ${low(d.rs2)}; ram32[(i >> 2) + 1] = ${high(d.rs2)}; const stale = codePages[i >>> 12]; if (stale !== undefined) { ${stale('i')} ${stale('(i + 4)')} } }`,
    `else { storeDouble(h, va, ${low(d.rs2)} | 0, ${high(d.rs2)} | 0, ${slowArguments}); ${context.attentionExit(instruction, index)} } }`,
  ];
}

/** OP-FP and the fused ones: fp-instructions.ts's executeOperation and executeFused. */
function operationSource(d: Decoded, rm: string, context: FloatContext): string[] {
  const bits = d.imm;
  const { rd, rs1, rs2 } = d;
  if ((bits & 0x7f) !== 0x53) {
    const rs3 = bits >>> 27;
    const kind = ['Fmadd', 'Fmsub', 'Fnmsub', 'Fnmadd'][(bits >>> 2) & 3]!;
    if (((bits >>> 25) & 3) === 0) return [writeSingle(rd, `f32${kind}(fpu, ${single(rs1)}, ${single(rs2)}, ${single(rs3)}, ${rm})`)];
    return [`f64${kind}(fpu, ${high(rs1)}, ${low(rs1)}, ${high(rs2)}, ${low(rs2)}, ${high(rs3)}, ${low(rs3)}, ${rm});`, writeResult(rd)];
  }
  const funct7 = bits >>> 25;
  const funct3 = (bits >>> 12) & 7;
  const x = context.r(rs1);
  // An instruction that writes an x register sets FS to Dirty only if it raised a new flag.
  const toX = (value: string): string[] => [
    `{ const flags = fpu.flags; ${rd === 0 ? 'void' : `r${rd} =`} (${value}) | 0; if (fpu.flags !== flags) h.mstatus |= ${fsBits}; }`,
  ];
  const a = single(rs1);
  const b = single(rs2);
  const aDouble = `${high(rs1)}, ${low(rs1)}`;
  const bDouble = `${high(rs2)}, ${low(rs2)}`;
  switch (funct7) {
    case 0x00: return [writeSingle(rd, `f32Add(fpu, ${a}, ${b}, ${rm})`)];
    case 0x04: return [writeSingle(rd, `f32Sub(fpu, ${a}, ${b}, ${rm})`)];
    case 0x08: return [writeSingle(rd, `f32Mul(fpu, ${a}, ${b}, ${rm})`)];
    case 0x0c: return [writeSingle(rd, `f32Div(fpu, ${a}, ${b}, ${rm})`)];
    case 0x2c: return [writeSingle(rd, `f32Sqrt(fpu, ${a}, ${rm})`)];
    case 0x10: return [writeSingle(rd, `${['f32SignInject', 'f32SignInjectNegated', 'f32SignInjectXor'][Math.min(funct3, 2)]!}(${a}, ${b})`)];
    case 0x14: return [writeSingle(rd, `${funct3 === 0 ? 'f32Min' : 'f32Max'}(fpu, ${a}, ${b})`)];
    case 0x20: return [writeSingle(rd, `f64ToF32(fpu, ${aDouble}, ${rm})`)];
    case 0x50: return toX(`${funct3 === 2 ? 'f32Eq' : funct3 === 1 ? 'f32Lt' : 'f32Le'}(fpu, ${a}, ${b})`);
    case 0x60: return toX(rs2 === 0 ? `f32ToI32(fpu, ${a}, ${rm})` : `f32ToU32(fpu, ${a}, ${rm}) | 0`);
    case 0x68: return [writeSingle(rd, `${rs2 === 0 ? 'i32ToF32' : 'u32ToF32'}(fpu, ${x}, ${rm})`)];
    case 0x70: return toX(funct3 === 0 ? `${low(rs1)} | 0` : `f32Class(${a})`);
    case 0x78: return [writeSingle(rd, `${x} >>> 0`)];
    case 0x01: return [`f64Add(fpu, ${aDouble}, ${bDouble}, ${rm});`, writeResult(rd)];
    case 0x05: return [`f64Sub(fpu, ${aDouble}, ${bDouble}, ${rm});`, writeResult(rd)];
    case 0x09: return [`f64Mul(fpu, ${aDouble}, ${bDouble}, ${rm});`, writeResult(rd)];
    case 0x0d: return [`f64Div(fpu, ${aDouble}, ${bDouble}, ${rm});`, writeResult(rd)];
    case 0x2d: return [`f64Sqrt(fpu, ${aDouble}, ${rm});`, writeResult(rd)];
    case 0x11: {
      // Sign injection changes the high half only; the low half is rs1's.
      const inject = ['f64SignInjectHigh', 'f64SignInjectNegatedHigh', 'f64SignInjectXorHigh'][Math.min(funct3, 2)]!;
      return [`{ const lo = ${low(rs1)}; const hi = ${inject}(${high(rs1)}, ${high(rs2)}); ${writeDouble(rd, 'hi', 'lo')} }`];
    }
    case 0x15: return [`${funct3 === 0 ? 'f64Min' : 'f64Max'}(fpu, ${aDouble}, ${bDouble});`, writeResult(rd)];
    case 0x21: return [`f32ToF64(fpu, ${a});`, writeResult(rd)];
    case 0x51: return toX(`${funct3 === 2 ? 'f64Eq' : funct3 === 1 ? 'f64Lt' : 'f64Le'}(fpu, ${aDouble}, ${bDouble})`);
    case 0x61: return toX(rs2 === 0 ? `f64ToI32(fpu, ${aDouble}, ${rm})` : `f64ToU32(fpu, ${aDouble}, ${rm}) | 0`);
    case 0x69: return [`${rs2 === 0 ? 'i32ToF64' : 'u32ToF64'}(fpu, ${x});`, writeResult(rd)];
    case 0x71: return toX(`f64Class(${aDouble})`);
    default:
      throw new RangeError(`OP-FP funct7 0x${funct7.toString(16)} passed the decoder`);
  }
}
