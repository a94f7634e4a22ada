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
 *
 * Each operation first tries a fast path (host.ts: the host's IEEE double arithmetic, where
 * the standard guarantees our result and the flags are computed exactly; comparisons and
 * classes on the bits), and otherwise the exact core (core.ts), which decides every hard case.
 */
import {
  add, binary32, binary64, convert, div, FFlag, FpuState, fromInteger, minMax, mul, mulAdd, Rounding, sqrt, sub,
  toInteger,
} from './core.js';
import {
  doubleValue, fastAdd32, fastAdd64, fastDiv32, fastDiv64, fastMul32, fastMul64, fastMulAdd32, fastMulAdd64, fastSqrt32, fastSqrt64,
  integerToDouble, roundToIntegral, singleToDouble, singleValue,
} from './host.js';

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
  if (rounding < Rounding.RMM) {
    const fast = fastAdd32(state, a, b, rounding);
    if (fast >= 0) return fast;
  }
  return Number(add(binary32, BigInt(a >>> 0), BigInt(b >>> 0), rounding, state));
}

export function f32Sub(state: FpuState, a: number, b: number, rounding: number): number {
  if (rounding < Rounding.RMM) {
    const fast = fastAdd32(state, a, (b ^ sign32) >>> 0, rounding);
    if (fast >= 0) return fast;
  }
  return Number(sub(binary32, BigInt(a >>> 0), BigInt(b >>> 0), rounding, state));
}

export function f32Mul(state: FpuState, a: number, b: number, rounding: number): number {
  if (rounding < Rounding.RMM) {
    const fast = fastMul32(state, a, b, rounding);
    if (fast >= 0) return fast;
  }
  return Number(mul(binary32, BigInt(a >>> 0), BigInt(b >>> 0), rounding, state));
}

export function f32Div(state: FpuState, a: number, b: number, rounding: number): number {
  if (rounding < Rounding.RMM) {
    const fast = fastDiv32(state, a, b, rounding);
    if (fast >= 0) return fast;
  }
  return Number(div(binary32, BigInt(a >>> 0), BigInt(b >>> 0), rounding, state));
}

export function f32Sqrt(state: FpuState, a: number, rounding: number): number {
  if (rounding < Rounding.RMM) {
    const fast = fastSqrt32(state, a, rounding);
    if (fast >= 0) return fast;
  }
  return Number(sqrt(binary32, BigInt(a >>> 0), rounding, state));
}

function f32MulAdd(state: FpuState, a: number, b: number, c: number, negateProduct: boolean, negateAddend: boolean, rounding: number): number {
  if (rounding === Rounding.RNE) {
    const fast = fastMulAdd32(state, a, b, c, negateProduct, negateAddend);
    if (fast >= 0) return fast;
  }
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

const isNaN32 = (bits: number): boolean => (bits & 0x7fff_ffff) > 0x7f80_0000;
const isSignalling32 = (bits: number): boolean => isNaN32(bits) && (bits & 0x0040_0000) === 0;

/** fmin.s/fmax.s (IEEE 754-2019 minimumNumber/maximumNumber, -0 < +0: 11.6). */
function f32MinMax(state: FpuState, a: number, b: number, wantMax: boolean): number {
  if (isNaN32(a) || isNaN32(b)) return Number(minMax(binary32, BigInt(a >>> 0), BigInt(b >>> 0), wantMax, state));
  const x = singleValue(a);
  const y = singleValue(b);
  if (x === y) return (((a | 0) < 0) !== wantMax ? a : b) >>> 0; // equal: only the zeros' signs differ
  return ((x < y) !== wantMax ? a : b) >>> 0;
}

export function f32Min(state: FpuState, a: number, b: number): number {
  return f32MinMax(state, a, b, false);
}

export function f32Max(state: FpuState, a: number, b: number): number {
  return f32MinMax(state, a, b, true);
}

/** feq.s: 1 or 0; NV only for a signalling NaN. */
export function f32Eq(state: FpuState, a: number, b: number): number {
  if (isNaN32(a) || isNaN32(b)) {
    if (isSignalling32(a) || isSignalling32(b)) state.flags |= FFlag.NV;
    return 0;
  }
  return singleValue(a) === singleValue(b) ? 1 : 0;
}

/** flt.s: 1 or 0; NV for any NaN. */
export function f32Lt(state: FpuState, a: number, b: number): number {
  if (isNaN32(a) || isNaN32(b)) {
    state.flags |= FFlag.NV;
    return 0;
  }
  return singleValue(a) < singleValue(b) ? 1 : 0;
}

/** fle.s: 1 or 0; NV for any NaN. */
export function f32Le(state: FpuState, a: number, b: number): number {
  if (isNaN32(a) || isNaN32(b)) {
    state.flags |= FFlag.NV;
    return 0;
  }
  return singleValue(a) <= singleValue(b) ? 1 : 0;
}

/** fclass's one-hot mask (11.9): bit 0 -inf ... bit 7 +inf, 8 signalling NaN, 9 quiet NaN. */
function classOf(negative: boolean, field: number, fieldMax: number, fractionZero: boolean, quiet: boolean): number {
  if (field === fieldMax) {
    if (!fractionZero) return quiet ? 1 << 9 : 1 << 8;
    return negative ? 1 << 0 : 1 << 7;
  }
  if (field === 0) {
    if (fractionZero) return negative ? 1 << 3 : 1 << 4;
    return negative ? 1 << 2 : 1 << 5;
  }
  return negative ? 1 << 1 : 1 << 6;
}

export function f32Class(a: number): number {
  return classOf((a | 0) < 0, (a >>> 23) & 0xff, 0xff, (a & 0x7f_ffff) === 0, (a & 0x40_0000) !== 0);
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
  if (((a >>> 23) & 0xff) !== 0xff) return doubleToI32(state, singleValue(a), rounding);
  return toInteger(binary32, BigInt(a >>> 0), false, rounding, state) | 0;
}

/** fcvt.wu.s: a uint32 (the CPU sign-extends it into x registers). */
export function f32ToU32(state: FpuState, a: number, rounding: number): number {
  if (((a >>> 23) & 0xff) !== 0xff) return doubleToU32(state, singleValue(a), rounding);
  return toInteger(binary32, BigInt(a >>> 0), true, rounding, state) >>> 0;
}

/** fcvt.s.w: from an int32. */
export function i32ToF32(state: FpuState, value: number, rounding: number): number {
  if (rounding === Rounding.RNE) return integerToSingle(state, value | 0);
  return Number(fromInteger(binary32, value | 0, rounding, state));
}

/** fcvt.s.wu: from a uint32. */
export function u32ToF32(state: FpuState, value: number, rounding: number): number {
  if (rounding === Rounding.RNE) return integerToSingle(state, value >>> 0);
  return Number(fromInteger(binary32, value >>> 0, rounding, state));
}

/** fcvt.d.s: exact; the result in state.high/low. */
export function f32ToF64(state: FpuState, a: number): void {
  if (!isNaN32(a)) return singleToDouble(state, a);
  set64(state, convert(binary32, binary64, BigInt(a >>> 0), 0, state));
}

// ---------------------------------------------------------------- binary64

export function f64Add(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): void {
  if (rounding < Rounding.RMM && fastAdd64(state, aHigh, aLow, bHigh, bLow, rounding)) return;
  set64(state, add(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), rounding, state));
}

export function f64Sub(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): void {
  if (rounding < Rounding.RMM && fastAdd64(state, aHigh, aLow, (bHigh ^ sign32) >>> 0, bLow, rounding)) return;
  set64(state, sub(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), rounding, state));
}

export function f64Mul(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): void {
  if (rounding < Rounding.RMM && fastMul64(state, aHigh, aLow, bHigh, bLow, rounding)) return;
  set64(state, mul(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), rounding, state));
}

export function f64Div(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): void {
  if (rounding < Rounding.RMM && fastDiv64(state, aHigh, aLow, bHigh, bLow, rounding)) return;
  set64(state, div(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), rounding, state));
}

export function f64Sqrt(state: FpuState, aHigh: number, aLow: number, rounding: number): void {
  if (rounding < Rounding.RMM && fastSqrt64(state, aHigh, aLow, rounding)) return;
  set64(state, sqrt(binary64, bits64(aHigh, aLow), rounding, state));
}

/** The fused multiply-adds on doubles (see core.mulAdd for the two negations). */
function f64MulAdd(
  state: FpuState, negateProduct: boolean, negateAddend: boolean,
  aHigh: number, aLow: number, bHigh: number, bLow: number, cHigh: number, cLow: number, rounding: number,
): void {
  if (rounding === Rounding.RNE && fastMulAdd64(state, negateProduct, negateAddend, aHigh, aLow, bHigh, bLow, cHigh, cLow)) return;
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

const isNaN64 = (high: number, low: number): boolean => (high & 0x7ff0_0000) === 0x7ff0_0000 && ((high & 0xf_ffff) | low) !== 0;
const isSignalling64 = (high: number, low: number): boolean => isNaN64(high, low) && (high & 0x8_0000) === 0;

/** fmin.d/fmax.d (IEEE 754-2019 minimumNumber/maximumNumber, -0 < +0: 11.6). */
function f64MinMax(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, wantMax: boolean): void {
  if (isNaN64(aHigh, aLow) || isNaN64(bHigh, bLow)) {
    return set64(state, minMax(binary64, bits64(aHigh, aLow), bits64(bHigh, bLow), wantMax, state));
  }
  const x = doubleValue(aHigh, aLow);
  const y = doubleValue(bHigh, bLow);
  const pickA = x === y ? ((aHigh | 0) < 0) !== wantMax : (x < y) !== wantMax;
  state.high = (pickA ? aHigh : bHigh) >>> 0;
  state.low = (pickA ? aLow : bLow) >>> 0;
}

export function f64Min(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): void {
  f64MinMax(state, aHigh, aLow, bHigh, bLow, false);
}

export function f64Max(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): void {
  f64MinMax(state, aHigh, aLow, bHigh, bLow, true);
}

/** feq.d: 1 or 0; NV only for a signalling NaN. */
export function f64Eq(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): number {
  if (isNaN64(aHigh, aLow) || isNaN64(bHigh, bLow)) {
    if (isSignalling64(aHigh, aLow) || isSignalling64(bHigh, bLow)) state.flags |= FFlag.NV;
    return 0;
  }
  return doubleValue(aHigh, aLow) === doubleValue(bHigh, bLow) ? 1 : 0;
}

/** flt.d: 1 or 0; NV for any NaN. */
export function f64Lt(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): number {
  if (isNaN64(aHigh, aLow) || isNaN64(bHigh, bLow)) {
    state.flags |= FFlag.NV;
    return 0;
  }
  return doubleValue(aHigh, aLow) < doubleValue(bHigh, bLow) ? 1 : 0;
}

/** fle.d: 1 or 0; NV for any NaN. */
export function f64Le(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number): number {
  if (isNaN64(aHigh, aLow) || isNaN64(bHigh, bLow)) {
    state.flags |= FFlag.NV;
    return 0;
  }
  return doubleValue(aHigh, aLow) <= doubleValue(bHigh, bLow) ? 1 : 0;
}

export function f64Class(high: number, low: number): number {
  return classOf((high | 0) < 0, (high >>> 20) & 0x7ff, 0x7ff, ((high & 0xf_ffff) | low) === 0, (high & 0x8_0000) !== 0);
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
  if ((high & 0x7ff0_0000) !== 0x7ff0_0000) return doubleToI32(state, doubleValue(high, low), rounding);
  return toInteger(binary64, bits64(high, low), false, rounding, state) | 0;
}

/** fcvt.wu.d: a uint32. */
export function f64ToU32(state: FpuState, high: number, low: number, rounding: number): number {
  if ((high & 0x7ff0_0000) !== 0x7ff0_0000) return doubleToU32(state, doubleValue(high, low), rounding);
  return toInteger(binary64, bits64(high, low), true, rounding, state) >>> 0;
}

/** fcvt.d.w: exact. */
export function i32ToF64(state: FpuState, value: number): void {
  integerToDouble(state, value | 0);
}

/** fcvt.d.wu: exact. */
export function u32ToF64(state: FpuState, value: number): void {
  integerToDouble(state, value >>> 0);
}

/** fcvt.s.d: rounded; returns the single. */
export function f64ToF32(state: FpuState, high: number, low: number, rounding: number): number {
  if (rounding === Rounding.RNE && (high & 0x7ff0_0000) !== 0x7ff0_0000) {
    // Math.fround is binary64 -> binary32 in RNE; tiny and overflowing results go to the core.
    const value = doubleValue(high, low);
    const rounded = Math.fround(value);
    const magnitude = Math.abs(rounded);
    if (magnitude > minNormal32 && magnitude !== Infinity) {
      if (rounded !== value) state.flags |= FFlag.NX;
      float32Scratch[0] = rounded;
      return float32Words[0]!;
    }
  }
  return Number(convert(binary64, binary32, bits64(high, low), rounding, state));
}

// ---------------------------------------------------------------- conversion helpers

const minNormal32 = 2 ** -126;
const float32Scratch = new Float32Array(1);
const float32Words = new Uint32Array(float32Scratch.buffer);

/** fcvt.s.w[u] in RNE: Math.fround of an exact integer rounds once. */
function integerToSingle(state: FpuState, value: number): number {
  const rounded = Math.fround(value);
  if (rounded !== value) state.flags |= FFlag.NX;
  float32Scratch[0] = rounded;
  return float32Words[0]!;
}

/** A finite value to an int32 (11.7: out of range saturates with NV and no NX). */
function doubleToI32(state: FpuState, value: number, rounding: number): number {
  const rounded = roundToIntegral(value, rounding);
  if (rounded > 0x7fff_ffff) {
    state.flags |= FFlag.NV;
    return 0x7fff_ffff;
  }
  if (rounded < -0x8000_0000) {
    state.flags |= FFlag.NV;
    return -0x8000_0000;
  }
  if (rounded !== value) state.flags |= FFlag.NX;
  return rounded | 0;
}

/** A finite value to a uint32 (11.7: below 0 after rounding gives 0 with NV). */
function doubleToU32(state: FpuState, value: number, rounding: number): number {
  const rounded = roundToIntegral(value, rounding);
  if (rounded > 0xffff_ffff) {
    state.flags |= FFlag.NV;
    return 0xffff_ffff;
  }
  if (rounded < 0) {
    state.flags |= FFlag.NV;
    return 0;
  }
  if (rounded !== value) state.flags |= FFlag.NX;
  return rounded >>> 0;
}
