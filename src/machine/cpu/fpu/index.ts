/**
 * The floating-point arithmetic of the RISC-V F and D extensions (unprivileged spec 20191213,
 * chapters 11 and 12), as the CPU will call it: deterministic and bit-exact (QEMU's softfloat
 * is the oracle in test/fpu-qemu.test.ts).
 *
 * Representation: a single is its uint32 bit pattern in a number; a double is two uint32
 * halves (high, low) in numbers, as the f registers will hold them (a Uint32Array pair), so
 * that no boxing or bigint crosses the CPU's hot loop. An operation on doubles leaves its
 * double result in `state.high` and `state.low`; every operation ORs its exception flags into
 * `state.flags` (fflags bits) and takes the rounding mode (0..4; the CPU resolves DYN from frm
 * and raises illegal-instruction for the reserved ones before calling here).
 *
 * Sign injection and NaN-boxing are bit work and live here too; moves (fmv) are the CPU's.
 */
import {
  add, binary32, binary64, classify, compare, convert, div, FpuState, fromInteger, minMax, mul, mulAdd, sqrt, sub,
  toInteger,
} from './core.js';

export { FFlag, FpuState, Rounding, roundingModeMax } from './core.js';

/** The canonical NaNs (11.3): every NaN result is one of these. */
export const f32CanonicalNaN = 0x7fc0_0000;
export const f64CanonicalNaNHigh = 0x7ff8_0000;
export const f64CanonicalNaNLow = 0;

const sign32 = 0x8000_0000;

function bits64(high: number, low: number): bigint {
  return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
}

function set64(state: FpuState, bits: bigint): void {
  state.high = Number(bits >> 32n);
  state.low = Number(bits & 0xffff_ffffn);
}

// ---------------------------------------------------------------- NaN-boxing (12.2)

/**
 * A single read from a 64-bit f register: valid only if NaN-boxed (upper 32 bits all ones),
 * otherwise the canonical NaN.
 */
export function unboxF32(high: number, low: number): number {
  return (high | 0) === -1 ? low >>> 0 : f32CanonicalNaN;
}

/** The upper half a single result is written with. */
export const nanBoxHigh = 0xffff_ffff;

// ---------------------------------------------------------------- binary32

export function f32Add(state: FpuState, a: number, b: number, rounding: number): number {
  return Number(add(binary32, BigInt(a >>> 0), BigInt(b >>> 0), rounding, state));
}

export function f32Sub(state: FpuState, a: number, b: number, rounding: number): number {
  return Number(sub(binary32, BigInt(a >>> 0), BigInt(b >>> 0), rounding, state));
}

export function f32Mul(state: FpuState, a: number, b: number, rounding: number): number {
  return Number(mul(binary32, BigInt(a >>> 0), BigInt(b >>> 0), rounding, state));
}

export function f32Div(state: FpuState, a: number, b: number, rounding: number): number {
  return Number(div(binary32, BigInt(a >>> 0), BigInt(b >>> 0), rounding, state));
}

export function f32Sqrt(state: FpuState, a: number, rounding: number): number {
  return Number(sqrt(binary32, BigInt(a >>> 0), rounding, state));
}

function f32MulAdd(state: FpuState, a: number, b: number, c: number, negateProduct: boolean, negateAddend: boolean, rounding: number): number {
  return Number(mulAdd(binary32, BigInt(a >>> 0), BigInt(b >>> 0), BigInt(c >>> 0), negateProduct, negateAddend, rounding, state));
}

/** a * b + c, one rounding. */
export function f32Fmadd(state: FpuState, a: number, b: number, c: number, rounding: number): number {
  return f32MulAdd(state, a, b, c, false, false, rounding);
}

/** a * b - c, one rounding. */
export function f32Fmsub(state: FpuState, a: number, b: number, c: number, rounding: number): number {
  return f32MulAdd(state, a, b, c, false, true, rounding);
}

/** -(a * b) + c, one rounding. */
export function f32Fnmsub(state: FpuState, a: number, b: number, c: number, rounding: number): number {
  return f32MulAdd(state, a, b, c, true, false, rounding);
}

/** -(a * b) - c, one rounding. */
export function f32Fnmadd(state: FpuState, a: number, b: number, c: number, rounding: number): number {
  return f32MulAdd(state, a, b, c, true, true, rounding);
}

export function f32Min(state: FpuState, a: number, b: number): number {
  return Number(minMax(binary32, BigInt(a >>> 0), BigInt(b >>> 0), false, state));
}

export function f32Max(state: FpuState, a: number, b: number): number {
  return Number(minMax(binary32, BigInt(a >>> 0), BigInt(b >>> 0), true, state));
}

/** feq.s: 1 or 0; NV only for a signalling NaN. */
export function f32Eq(state: FpuState, a: number, b: number): number {
  return compare(binary32, BigInt(a >>> 0), BigInt(b >>> 0), 'eq', state);
}

/** flt.s: 1 or 0; NV for any NaN. */
export function f32Lt(state: FpuState, a: number, b: number): number {
  return compare(binary32, BigInt(a >>> 0), BigInt(b >>> 0), 'lt', state);
}

/** fle.s: 1 or 0; NV for any NaN. */
export function f32Le(state: FpuState, a: number, b: number): number {
  return compare(binary32, BigInt(a >>> 0), BigInt(b >>> 0), 'le', state);
}

export function f32Class(a: number): number {
  return classify(binary32, BigInt(a >>> 0));
}

/** fsgnj.s: a's magnitude, b's sign. */
export function f32SignInject(a: number, b: number): number {
  return ((a & ~sign32) | (b & sign32)) >>> 0;
}

/** fsgnjn.s: a's magnitude, the opposite of b's sign. */
export function f32SignInjectNegated(a: number, b: number): number {
  return ((a & ~sign32) | (~b & sign32)) >>> 0;
}

/** fsgnjx.s: a's magnitude, the two signs XOR-ed. */
export function f32SignInjectXor(a: number, b: number): number {
  return (a ^ (b & sign32)) >>> 0;
}

/** fcvt.w.s: an int32. */
export function f32ToI32(state: FpuState, a: number, rounding: number): number {
  return toInteger(binary32, BigInt(a >>> 0), false, rounding, state) | 0;
}

/** fcvt.wu.s: a uint32 (the CPU sign-extends it into x registers). */
export function f32ToU32(state: FpuState, a: number, rounding: number): number {
  return toInteger(binary32, BigInt(a >>> 0), true, rounding, state) >>> 0;
}

/** fcvt.s.w: from an int32. */
export function i32ToF32(state: FpuState, value: number, rounding: number): number {
  return Number(fromInteger(binary32, value | 0, rounding, state));
}

/** fcvt.s.wu: from a uint32. */
export function u32ToF32(state: FpuState, value: number, rounding: number): number {
  return Number(fromInteger(binary32, value >>> 0, rounding, state));
}

/** fcvt.d.s: exact; the result in state.high/low. */
export function f32ToF64(state: FpuState, a: number): void {
  set64(state, convert(binary32, binary64, BigInt(a >>> 0), 0, state));
}

// ---------------------------------------------------------------- binary64

export function f64Add(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): void {
  set64(state, add(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), rounding, state));
}

export function f64Sub(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): void {
  set64(state, sub(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), rounding, state));
}

export function f64Mul(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): void {
  set64(state, mul(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), rounding, state));
}

export function f64Div(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): void {
  set64(state, div(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), rounding, state));
}

export function f64Sqrt(state: FpuState, aHigh: number, aLow: number, rounding: number): void {
  set64(state, sqrt(binary64, bits64(aHigh, aLow), rounding, state));
}

/** The fused multiply-adds on doubles (see core.mulAdd for the two negations). */
function f64MulAdd(
  state: FpuState, negateProduct: boolean, negateAddend: boolean,
  aHigh: number, aLow: number, bHigh: number, bLow: number, cHigh: number, cLow: number, rounding: number,
): void {
  set64(state, mulAdd(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), bits64(cHigh, cLow), negateProduct, negateAddend, rounding, state));
}

/** a * b + c, one rounding. */
export function f64Fmadd(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, cHigh: number, cLow: number, rounding: number): void {
  f64MulAdd(state, false, false, aHigh, aLow, bHigh, bLow, cHigh, cLow, rounding);
}

/** a * b - c, one rounding. */
export function f64Fmsub(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, cHigh: number, cLow: number, rounding: number): void {
  f64MulAdd(state, false, true, aHigh, aLow, bHigh, bLow, cHigh, cLow, rounding);
}

/** -(a * b) + c, one rounding. */
export function f64Fnmsub(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, cHigh: number, cLow: number, rounding: number): void {
  f64MulAdd(state, true, false, aHigh, aLow, bHigh, bLow, cHigh, cLow, rounding);
}

/** -(a * b) - c, one rounding. */
export function f64Fnmadd(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, cHigh: number, cLow: number, rounding: number): void {
  f64MulAdd(state, true, true, aHigh, aLow, bHigh, bLow, cHigh, cLow, rounding);
}

export function f64Min(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): void {
  set64(state, minMax(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), false, state));
}

export function f64Max(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): void {
  set64(state, minMax(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), true, state));
}

/** feq.d: 1 or 0; NV only for a signalling NaN. */
export function f64Eq(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): number {
  return compare(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), 'eq', state);
}

/** flt.d: 1 or 0; NV for any NaN. */
export function f64Lt(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): number {
  return compare(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), 'lt', state);
}

/** fle.d: 1 or 0; NV for any NaN. */
export function f64Le(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): number {
  return compare(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), 'le', state);
}

export function f64Class(high: number, low: number): number {
  return classify(binary64, bits64(high, low));
}

/** fsgnj.d, fsgnjn.d, fsgnjx.d act on the high half only: the result's high half. */
export function f64SignInjectHigh(aHigh: number, bHigh: number): number {
  return f32SignInject(aHigh, bHigh);
}

export function f64SignInjectNegatedHigh(aHigh: number, bHigh: number): number {
  return f32SignInjectNegated(aHigh, bHigh);
}

export function f64SignInjectXorHigh(aHigh: number, bHigh: number): number {
  return f32SignInjectXor(aHigh, bHigh);
}

/** fcvt.w.d: an int32. */
export function f64ToI32(state: FpuState, high: number, low: number, rounding: number): number {
  return toInteger(binary64, bits64(high, low), false, rounding, state) | 0;
}

/** fcvt.wu.d: a uint32. */
export function f64ToU32(state: FpuState, high: number, low: number, rounding: number): number {
  return toInteger(binary64, bits64(high, low), true, rounding, state) >>> 0;
}

/** fcvt.d.w: exact. */
export function i32ToF64(state: FpuState, value: number): void {
  set64(state, fromInteger(binary64, value | 0, 0, state));
}

/** fcvt.d.wu: exact. */
export function u32ToF64(state: FpuState, value: number): void {
  set64(state, fromInteger(binary64, value >>> 0, 0, state));
}

/** fcvt.s.d: rounded; returns the single. */
export function f64ToF32(state: FpuState, high: number, low: number, rounding: number): number {
  return Number(convert(binary64, binary32, bits64(high, low), rounding, state));
}
