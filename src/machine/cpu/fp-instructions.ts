/**
 * The F and D instructions (unprivileged spec 20191213, chapters 11 and 12; RV32FC and RV32DC
 * loads and stores), which the run loop hands over in one call: their bodies stay out of its
 * hot switch. The arithmetic is the FPU library's (fpu/), the only source of FP results, so
 * they are the same on every host. Here: mstatus.FS, the rm field and frm, NaN-boxing, the f
 * registers, and the loads and stores through the MMU's slow paths.
 *
 * mstatus.FS (privileged spec 3.1.6.6): Off makes every F and D instruction illegal; QEMU 7.2
 * decides that when it translates, so the instruction traps as one illegal at decode time
 * (counted as executed, mtval = its bits). An instruction that writes an f register, or
 * changes fflags, sets FS to Dirty. A reserved rounding mode (rm = 5 or 6, or DYN with frm
 * 5..7) raises illegal-instruction when the instruction runs (QEMU: in a helper), so it does
 * not retire.
 */
import { Op } from './decode.js';
import { Cause, Status } from './csr.js';
import { lengthShift } from './code-cache.js';
import { compressedFloatOffset } from './decode-compressed.js';
import { loadSlow, storeDoubleSlow, storeSlow } from './mmu.js';
import { raise } from './trap-signal.js';
import { takeException } from './traps.js';
import {
  f32Add, f32Class, f32Div, f32Eq, f32Fmadd, f32Fmsub, f32Fnmadd, f32Fnmsub, f32Le, f32Lt, f32Max, f32Min, f32Mul,
  f32SignInject, f32SignInjectNegated, f32SignInjectXor, f32Sqrt, f32Sub, f32ToF64, f32ToI32, f32ToU32,
  f64Add, f64Class, f64Div, f64Eq, f64Fmadd, f64Fmsub, f64Fnmadd, f64Fnmsub, f64Le, f64Lt, f64Max, f64Min, f64Mul,
  f64SignInjectHigh, f64SignInjectNegatedHigh, f64SignInjectXorHigh, f64Sqrt, f64Sub, f64ToF32, f64ToI32, f64ToU32,
  i32ToF32, i32ToF64, nanBoxHigh, u32ToF32, u32ToF64, unboxF32, type FpuState,
} from './fpu/index.js';
import type { Hart } from './cpu.js';

/** rm = 7: the rounding mode is frm's. */
const dynamicRounding = 7;
/** The largest valid rounding mode (RMM). */
const roundingMax = 4;

/**
 * Executes the F or D instruction (`word`, `bits`: the decoded page's two words) at `hart.pc`
 * and returns where the hart continues. With FS = Off it takes the illegal-instruction trap
 * and returns the handler (the trap sets `hart.attention`); other exceptions are thrown.
 */
export function executeFloat(hart: Hart, word: number, bits: number): number {
  const pc = hart.pc;
  if ((hart.mstatus & Status.FS) === 0) return takeException(hart, Cause.IllegalInstruction, bits, pc);
  const op = word & 0xff;
  const length = word >>> lengthShift;
  const rs1 = (word >> 14) & 31;
  const rs2 = (word >> 19) & 31;
  const f = hart.f;
  switch (op) {
    case Op.FLW: {
      const va = (hart.x[rs1]! + (length === 2 ? compressedFloatOffset(bits) : bits >> 20)) | 0;
      const value = loadSlow(hart, va, 4);
      writeSingle(hart, (word >> 8) & 31, value);
      break;
    }
    case Op.FLD: {
      const va = (hart.x[rs1]! + (length === 2 ? compressedFloatOffset(bits) : bits >> 20)) | 0;
      const low = loadSlow(hart, va, 4);
      const high = loadSlow(hart, (va + 4) | 0, 4);
      writeDouble(hart, (word >> 8) & 31, high, low);
      break;
    }
    // FSW stores the register's low 32 bits as they are (no NaN-box check), FSD all 64; FS
    // stays as it is (nothing of the FPU changes).
    case Op.FSW:
      storeSlow(hart, storeAddress(hart, rs1, bits, length), 4, f[2 * rs2]! | 0);
      break;
    case Op.FSD:
      storeDoubleSlow(hart, storeAddress(hart, rs1, bits, length), f[2 * rs2]! | 0, f[2 * rs2 + 1]! | 0);
      break;
    default: {
      const flagsBefore = hart.fpu.flags;
      if ((bits & 0x7f) === 0x53) executeOperation(hart, word, bits, rs1, rs2);
      else executeFused(hart, word, bits, rs1, rs2);
      // An instruction that raises a flag not yet set changes fflags: FS becomes Dirty.
      if (hart.fpu.flags !== flagsBefore) hart.mstatus |= Status.FS;
    }
  }
  return (pc + length) | 0;
}

function storeAddress(hart: Hart, rs1: number, bits: number, length: number): number {
  const offset = length === 2 ? compressedFloatOffset(bits) : ((bits >> 25) << 5) | ((bits >>> 7) & 31);
  return (hart.x[rs1]! + offset) | 0;
}

/** The instruction's rounding mode, DYN resolved from frm; reserved ones are illegal (11.2). */
function rounding(hart: Hart, bits: number): number {
  let rm = (bits >>> 12) & 7;
  if (rm === dynamicRounding) rm = hart.frm;
  if (rm > roundingMax) raise(Cause.IllegalInstruction, bits);
  return rm;
}

/** A single read from f register `r`: not NaN-boxed, it is the canonical NaN (12.2). */
function single(f: Uint32Array, r: number): number {
  return unboxF32(f[2 * r + 1]!, f[2 * r]!);
}

function writeSingle(hart: Hart, r: number, value: number): void {
  hart.f[2 * r] = value;
  hart.f[2 * r + 1] = nanBoxHigh;
  hart.mstatus |= Status.FS;
}

function writeDouble(hart: Hart, r: number, high: number, low: number): void {
  hart.f[2 * r] = low;
  hart.f[2 * r + 1] = high;
  hart.mstatus |= Status.FS;
}

/** A double result the library left in the state. */
function writeResult(hart: Hart, r: number, state: FpuState): void {
  writeDouble(hart, r, state.high, state.low);
}

/** FMADD, FMSUB, FNMSUB, FNMADD (.S, .D): rs3 in bits 27-31, fmt in 25-26, one rounding. */
function executeFused(hart: Hart, word: number, bits: number, rs1: number, rs2: number): void {
  const f = hart.f;
  const state = hart.fpu;
  const rd = (word >> 8) & 31;
  const rs3 = bits >>> 27;
  const rm = rounding(hart, bits);
  const kind = (bits >>> 2) & 3; // 0x43 FMADD, 0x47 FMSUB, 0x4b FNMSUB, 0x4f FNMADD
  if (((bits >>> 25) & 3) === 0) {
    const a = single(f, rs1);
    const b = single(f, rs2);
    const c = single(f, rs3);
    const fused = kind === 0 ? f32Fmadd : kind === 1 ? f32Fmsub : kind === 2 ? f32Fnmsub : f32Fnmadd;
    writeSingle(hart, rd, fused(state, a, b, c, rm));
    return;
  }
  const fused = kind === 0 ? f64Fmadd : kind === 1 ? f64Fmsub : kind === 2 ? f64Fnmsub : f64Fnmadd;
  fused(state, f[2 * rs1 + 1]!, f[2 * rs1]!, f[2 * rs2 + 1]!, f[2 * rs2]!, f[2 * rs3 + 1]!, f[2 * rs3]!, rm);
  writeResult(hart, rd, state);
}

/** OP-FP (decode.ts has checked the encoding): funct7 selects, funct3 is rm or a sub-operation. */
function executeOperation(hart: Hart, word: number, bits: number, rs1: number, rs2: number): void {
  const funct7 = bits >>> 25;
  const funct3 = (bits >>> 12) & 7;
  if ((funct7 & 1) === 0) executeSingle(hart, word, bits, funct7, funct3, rs1, rs2);
  else executeDouble(hart, word, bits, funct7, funct3, rs1, rs2);
}

function executeSingle(hart: Hart, word: number, bits: number, funct7: number, funct3: number, rs1: number, rs2: number): void {
  const f = hart.f;
  const x = hart.x;
  const state = hart.fpu;
  const rd = (word >> 8) & 31;
  /** The x register an instruction writes (x0 is the sink register). */
  const xd = (word >> 8) & 63;
  switch (funct7) {
    case 0x00: writeSingle(hart, rd, f32Add(state, single(f, rs1), single(f, rs2), rounding(hart, bits))); return;
    case 0x04: writeSingle(hart, rd, f32Sub(state, single(f, rs1), single(f, rs2), rounding(hart, bits))); return;
    case 0x08: writeSingle(hart, rd, f32Mul(state, single(f, rs1), single(f, rs2), rounding(hart, bits))); return;
    case 0x0c: writeSingle(hart, rd, f32Div(state, single(f, rs1), single(f, rs2), rounding(hart, bits))); return;
    case 0x2c: writeSingle(hart, rd, f32Sqrt(state, single(f, rs1), rounding(hart, bits))); return;
    case 0x10: {
      const a = single(f, rs1);
      const b = single(f, rs2);
      writeSingle(hart, rd, funct3 === 0 ? f32SignInject(a, b) : funct3 === 1 ? f32SignInjectNegated(a, b) : f32SignInjectXor(a, b));
      return;
    }
    case 0x14:
      writeSingle(hart, rd, funct3 === 0 ? f32Min(state, single(f, rs1), single(f, rs2)) : f32Max(state, single(f, rs1), single(f, rs2)));
      return;
    case 0x20: { // FCVT.S.D
      const rm = rounding(hart, bits);
      writeSingle(hart, rd, f64ToF32(state, f[2 * rs1 + 1]!, f[2 * rs1]!, rm));
      return;
    }
    case 0x50: {
      const a = single(f, rs1);
      const b = single(f, rs2);
      x[xd] = funct3 === 2 ? f32Eq(state, a, b) : funct3 === 1 ? f32Lt(state, a, b) : f32Le(state, a, b);
      return;
    }
    case 0x60: {
      const rm = rounding(hart, bits);
      x[xd] = rs2 === 0 ? f32ToI32(state, single(f, rs1), rm) : f32ToU32(state, single(f, rs1), rm) | 0;
      return;
    }
    case 0x68: {
      const rm = rounding(hart, bits);
      writeSingle(hart, rd, rs2 === 0 ? i32ToF32(state, x[rs1]!, rm) : u32ToF32(state, x[rs1]!, rm));
      return;
    }
    case 0x70: // FMV.X.W moves the low 32 bits as they are; FCLASS.S reads a single.
      x[xd] = funct3 === 0 ? f[2 * rs1]! | 0 : f32Class(single(f, rs1));
      return;
    case 0x78: // FMV.W.X
      writeSingle(hart, rd, x[rs1]! >>> 0);
      return;
    default:
      throw new Error(`fp-instructions: OP-FP funct7 0x${funct7.toString(16)} passed the decoder`);
  }
}

function executeDouble(hart: Hart, word: number, bits: number, funct7: number, funct3: number, rs1: number, rs2: number): void {
  const f = hart.f;
  const x = hart.x;
  const state = hart.fpu;
  const rd = (word >> 8) & 31;
  const xd = (word >> 8) & 63;
  const aHigh = f[2 * rs1 + 1]!;
  const aLow = f[2 * rs1]!;
  const bHigh = f[2 * rs2 + 1]!;
  const bLow = f[2 * rs2]!;
  switch (funct7) {
    case 0x01: f64Add(state, aHigh, aLow, bHigh, bLow, rounding(hart, bits)); break;
    case 0x05: f64Sub(state, aHigh, aLow, bHigh, bLow, rounding(hart, bits)); break;
    case 0x09: f64Mul(state, aHigh, aLow, bHigh, bLow, rounding(hart, bits)); break;
    case 0x0d: f64Div(state, aHigh, aLow, bHigh, bLow, rounding(hart, bits)); break;
    case 0x2d: f64Sqrt(state, aHigh, aLow, rounding(hart, bits)); break;
    case 0x11: {
      // Sign injection changes the high half only; the low half is rs1's.
      const high = funct3 === 0 ? f64SignInjectHigh(aHigh, bHigh) : funct3 === 1 ? f64SignInjectNegatedHigh(aHigh, bHigh) : f64SignInjectXorHigh(aHigh, bHigh);
      writeDouble(hart, rd, high, aLow);
      return;
    }
    case 0x15:
      if (funct3 === 0) f64Min(state, aHigh, aLow, bHigh, bLow);
      else f64Max(state, aHigh, aLow, bHigh, bLow);
      break;
    case 0x21: // FCVT.D.S: exact, but the rm field is checked as for every conversion (QEMU 7.2)
      rounding(hart, bits);
      f32ToF64(state, single(f, rs1));
      break;
    case 0x51:
      x[xd] = funct3 === 2 ? f64Eq(state, aHigh, aLow, bHigh, bLow) : funct3 === 1 ? f64Lt(state, aHigh, aLow, bHigh, bLow) : f64Le(state, aHigh, aLow, bHigh, bLow);
      return;
    case 0x61: {
      const rm = rounding(hart, bits);
      x[xd] = rs2 === 0 ? f64ToI32(state, aHigh, aLow, rm) : f64ToU32(state, aHigh, aLow, rm) | 0;
      return;
    }
    case 0x69: // FCVT.D.W[U]: exact; rm checked as above
      rounding(hart, bits);
      if (rs2 === 0) i32ToF64(state, x[rs1]!);
      else u32ToF64(state, x[rs1]!);
      break;
    case 0x71: // FCLASS.D
      x[xd] = f64Class(aHigh, aLow);
      return;
    default:
      throw new Error(`fp-instructions: OP-FP funct7 0x${funct7.toString(16)} passed the decoder`);
  }
  writeResult(hart, rd, state);
}
