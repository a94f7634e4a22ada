/**
 * Fast paths on the host's IEEE 754 double arithmetic, taken only where the standard
 * guarantees the same correctly rounded result as core.ts AND the flags can be computed
 * exactly; every function returns false (and has changed nothing) when it cannot prove that,
 * and the caller falls back to the exact core.
 *
 * What IEEE 754 guarantees and these rely on (JavaScript numbers are binary64, RNE, and
 * ECMA-262 rounds every operation on its own: an engine may not contract a * b + c into a
 * fused multiply-add or keep extended precision, which the error-free transforms need):
 * - +, -, *, /, sqrt on doubles are correctly rounded to nearest-even (IEEE 5.1, 5.4.1);
 *   comparisons are exact; conversions between integers below 2^53 and doubles are exact;
 *   Math.fround rounds a double to binary32 to nearest-even (ECMA-262 Math.fround).
 * - Rounding to double and then to single is the same as rounding once, for one +, -, *, /
 *   or sqrt of singles, because 53 >= 2 * 24 + 2 (Figueroa, "When is double rounding
 *   innocuous?", 1995); for a product of singles there is no first rounding at all (48 bits).
 * - TwoSum (Knuth) gives the exact error of a rounded sum, and Dekker's product with
 *   Veltkamp's split the exact error of a rounded product, when nothing overflows or
 *   underflows; the guards below keep exponents far from both ends.
 * Tininess (after rounding) is never decided here: a rounded result at or below the smallest
 * normal number, an overflow, and NaN or infinite operands go to the core. Zeros are taken
 * where the result is exact (x + 0, 0 * x, 0 / x, a * b + 0): the host's signed-zero rules are
 * IEEE's (6.3) for RNE. Sums are taken whatever their size: a sum below the smallest normal
 * number is exact, so it can never underflow (and TwoSum is exact with subnormals too).
 *
 * Rounding modes: the host rounds to nearest; add, sub, mul, div and sqrt also know the sign
 * of (exact - nearest) exactly, and RTZ, RDN and RUP step the nearest value one unit towards
 * the exact one when it lies on the wrong side (the exact value lies between the nearest and
 * that neighbour). RMM (ties away) and the fused multiply-adds outside RNE go to the core, and
 * so does an exact zero sum outside RNE (its sign depends on the mode, IEEE 6.3).
 */
import { assert } from '../../assert.js';
import { FFlag, FpuState } from './core.js';

const float64 = new Float64Array(1);
const float32 = new Float32Array(float64.buffer, 0, 1);
const words = new Uint32Array(float64.buffer);
float64[0] = 1;
assert(words[1] === 0x3ff0_0000, 'the FPU fast paths assume a little-endian host');

function toDouble(high: number, low: number): number {
  words[0] = low;
  words[1] = high;
  return float64[0]!;
}

/** Writes a double result into state.high/low (never a NaN: NaNs do not come here). */
function setDouble(state: FpuState, value: number): void {
  float64[0] = value;
  state.low = words[0]!;
  state.high = words[1]!;
}

function toSingle(bits: number): number {
  words[0] = bits;
  return float32[0]!;
}

/** A single's bits; value must already be a single (Math.fround). */
function singleBits(value: number): number {
  float32[0] = value;
  return words[0]!;
}

const fieldBias64 = 1023;
/** Operands of * / sqrt on doubles within 2^±480: products' exact errors stay representable. */
const exponentSpread64 = 480;
const minNormal32 = 2 ** -126;
const maxFinite32 = (2 - 2 ** -23) * 2 ** 127;
const splitter = 2 ** 27 + 1; // Veltkamp: splits a double into two 26-bit halves

/** The exponent field of a double from its high word. */
const field64 = (high: number): number => (high >>> 20) & 0x7ff;

/** The error of the last `twoProduct`: a * b = product + productError exactly. */
let productError = 0;

/** Dekker's exact product: returns fl(a * b), leaves the exact error in productError. */
function twoProduct(a: number, b: number): number {
  const product = a * b;
  let t = splitter * a;
  const aHigh = t - (t - a);
  const aLow = a - aHigh;
  t = splitter * b;
  const bHigh = t - (t - b);
  const bLow = b - bHigh;
  productError = ((aHigh * bHigh - product) + aHigh * bLow + aLow * bHigh) + aLow * bLow;
  return product;
}

function middle64(high: number): boolean {
  const field = field64(high);
  return field >= fieldBias64 - exponentSpread64 && field <= fieldBias64 + exponentSpread64;
}

// ---------------------------------------------------------------- directed rounding

/** The double one unit in the last place above (up) or below a nonzero finite value. */
function step64(value: number, up: boolean): number {
  float64[0] = value;
  const low = words[0]!;
  if (up === value > 0) {
    words[0] = low + 1;
    if (low === 0xffff_ffff) words[1] = words[1]! + 1;
  } else {
    words[0] = low - 1;
    if (low === 0) words[1] = words[1]! - 1;
  }
  return float64[0]!;
}

/** The single one unit in the last place above (up) or below a nonzero finite single. */
function step32(value: number, up: boolean): number {
  const bits = singleBits(value);
  return toSingle(up === value > 0 ? bits + 1 : bits - 1);
}

/**
 * The result in mode `rounding` (RNE, RTZ, RDN or RUP) from the nearest value and the sign
 * of (exact - nearest): `direction` < 0, 0 or > 0.
 */
function directed(nearest: number, direction: number, rounding: number, step: (value: number, up: boolean) => number): number {
  if (direction === 0) return nearest;
  switch (rounding) {
    case 1: return (direction > 0) !== (nearest > 0) ? step(nearest, direction > 0) : nearest; // RTZ
    case 2: return direction < 0 ? step(nearest, false) : nearest; // RDN
    case 3: return direction > 0 ? step(nearest, true) : nearest; // RUP
    default: return nearest;
  }
}

// ---------------------------------------------------------------- binary64

/** Finite operands below 2^1022 in magnitude (zeros and subnormals included). */
function addable64(high: number): boolean {
  return field64(high) < 2045;
}

/** A zero double (either sign). */
const isZero64 = (high: number, low: number): boolean => ((high & 0x7fff_ffff) | low) === 0;

/** fadd.d (RNE, RTZ, RDN, RUP). An inexact sum is at least 2^-1021: steps stay normal. */
export function fastAdd64(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): boolean {
  if (!addable64(aHigh) || !addable64(bHigh)) return false;
  const a = toDouble(aHigh, aLow);
  const b = toDouble(bHigh, bLow);
  const sum = a + b;
  if (Math.abs(sum) >= 2 ** 1022 || (sum === 0 && rounding !== 0)) return false;
  // TwoSum: the exact error of the rounded sum.
  const bVirtual = sum - a;
  const error = (a - (sum - bVirtual)) + (b - bVirtual);
  if (error !== 0) state.flags |= FFlag.NX;
  setDouble(state, directed(sum, error, rounding, step64));
  return true;
}

export function fastMul64(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): boolean {
  if (!middle64(aHigh) || !middle64(bHigh)) {
    // 0 * finite: an exact signed zero.
    if (!(isZero64(aHigh, aLow) ? field64(bHigh) !== 0x7ff : isZero64(bHigh, bLow) && field64(aHigh) !== 0x7ff)) return false;
    setDouble(state, toDouble(aHigh, aLow) * toDouble(bHigh, bLow));
    return true;
  }
  const product = twoProduct(toDouble(aHigh, aLow), toDouble(bHigh, bLow));
  if (productError !== 0) state.flags |= FFlag.NX;
  setDouble(state, directed(product, productError, rounding, step64));
  return true;
}

export function fastDiv64(state: FpuState, aHigh: number, aLow: number, bHigh: number, bLow: number, rounding: number): boolean {
  if (!middle64(bHigh)) return false;
  if (isZero64(aHigh, aLow)) {
    setDouble(state, toDouble(aHigh, aLow) / toDouble(bHigh, bLow)); // 0 / x: an exact signed zero
    return true;
  }
  if (!middle64(aHigh)) return false;
  const a = toDouble(aHigh, aLow);
  const b = toDouble(bHigh, bLow);
  const quotient = a / b;
  // a - quotient * b, exactly signed: a - product is exact (Sterbenz: product is within one
  // rounding of a), and adding the small product error cannot flip a nonzero sign. The
  // quotients of normals in 2^±480 are far from both ends.
  const product = twoProduct(quotient, b);
  const residual = (a - product) - productError;
  if (residual !== 0) state.flags |= FFlag.NX;
  setDouble(state, directed(quotient, b > 0 ? residual : -residual, rounding, step64));
  return true;
}

export function fastSqrt64(state: FpuState, high: number, low: number, rounding: number): boolean {
  if ((high | 0) < 0 || !middle64(high)) return false;
  const radicand = toDouble(high, low);
  const root = Math.sqrt(radicand);
  const square = twoProduct(root, root);
  const residual = (radicand - square) - productError; // exactly signed, as in fastDiv64
  if (residual !== 0) state.flags |= FFlag.NX;
  setDouble(state, directed(root, residual, rounding, step64));
  return true;
}

/** Operands of the emulated FMA within 2^±400: products, errors and sums stay far from both ends. */
function fusable64(high: number): boolean {
  const field = field64(high);
  return field >= fieldBias64 - 400 && field <= fieldBias64 + 400;
}

/**
 * (-1)^negateProduct a * b + (-1)^negateAddend c in RNE with one rounding, on doubles: Boldo
 * and Melquiond's emulated FMA ("Emulation of FMA and correctly rounded sums: proved algorithms
 * using rounding to odd", IEEE Trans. Computers 57(4), 2008, Algorithm 5.4 with p >= 5, no
 * underflow or overflow): the exact product uh + ul (Dekker), th + tl = c + uh exactly
 * (TwoSum), v = tl + ul rounded to odd, result = RN(th + v).
 */
export function fastMulAdd64(
  state: FpuState, negateProduct: boolean, negateAddend: boolean,
  aHigh: number, aLow: number, bHigh: number, bLow: number, cHigh: number, cLow: number,
): boolean {
  if (!fusable64(aHigh) || !fusable64(bHigh)) return false;
  if (isZero64(cHigh, cLow)) {
    // a * b + 0 with a nonzero product is the rounded product (a sum of accumulator zero).
    const product = twoProduct(toDouble(aHigh, aLow), toDouble(bHigh, bLow));
    if (productError !== 0) state.flags |= FFlag.NX;
    setDouble(state, negateProduct ? -product : product);
    return true;
  }
  if (!fusable64(cHigh)) return false;
  let productHigh = twoProduct(toDouble(aHigh, aLow), toDouble(bHigh, bLow));
  let productLow = productError;
  if (negateProduct) {
    productHigh = -productHigh;
    productLow = -productLow;
  }
  const addend = negateAddend ? -toDouble(cHigh, cLow) : toDouble(cHigh, cLow);
  const sumHigh = productHigh + addend;
  let virtual = sumHigh - addend;
  const sumLow = (addend - (sumHigh - virtual)) + (productHigh - virtual);
  // v = RO(sumLow + productLow): the rounded sum, moved one ulp towards its error when that
  // error is not zero and the sum's last bit is even.
  let v = sumLow + productLow;
  virtual = v - sumLow;
  const vError = (sumLow - (v - virtual)) + (productLow - virtual);
  if (vError !== 0) {
    float64[0] = v;
    if ((words[0]! & 1) === 0) {
      // Away from zero if the error has v's sign, else towards zero: the bit pattern +-1.
      const away = (vError > 0) === (v > 0);
      const low = words[0]!;
      if (away) {
        words[0] = low + 1;
        if (low === 0xffff_ffff) words[1] = words[1]! + 1;
      } else {
        words[0] = low - 1;
        if (low === 0) words[1] = words[1]! - 1;
      }
      v = float64[0];
    }
  }
  const result = sumHigh + v;
  const magnitude = Math.abs(result);
  if (!(magnitude > 2 ** -800) || magnitude > 2 ** 1000) return false;
  virtual = result - sumHigh;
  const resultError = (sumHigh - (result - virtual)) + (v - virtual);
  if (vError !== 0 || resultError !== 0) state.flags |= FFlag.NX;
  setDouble(state, result);
  return true;
}

// ---------------------------------------------------------------- binary32, RNE

/** A normal single (not zero, subnormal, infinite or NaN). */
const normal32 = (bits: number): boolean => {
  const field = (bits >>> 23) & 0xff;
  return field !== 0 && field !== 0xff;
};

/**
 * A single result from its nearest value and the sign of (exact - nearest), in the mode: its
 * bits and NX, or -1 when it is tiny or overflows (the core decides those).
 */
function finishSingle(state: FpuState, nearest: number, direction: number, rounding: number): number {
  const magnitude = Math.abs(nearest);
  if (!(magnitude > minNormal32) || magnitude > maxFinite32) return -1;
  const rounded = directed(nearest, direction, rounding, step32);
  if (Math.abs(rounded) > maxFinite32) return -1;
  if (direction !== 0) state.flags |= FFlag.NX;
  return singleBits(rounded);
}

/** A finite single: zero, subnormal or normal. */
const finite32 = (bits: number): boolean => ((bits >>> 23) & 0xff) !== 0xff;

/**
 * fadd.s in RNE, or -1 when the core must do it. Any finite operands: a sum below the
 * smallest normal single is exact (no UF), the host's zero signs are IEEE's.
 */
export function fastAdd32(state: FpuState, a: number, b: number, rounding: number): number {
  if (!finite32(a) || !finite32(b)) return -1;
  const x = toSingle(a);
  const y = toSingle(b);
  const sum = x + y;
  if (sum === 0 && rounding !== 0) return -1;
  const yVirtual = sum - x;
  const error = (x - (sum - yVirtual)) + (y - yVirtual);
  const nearest = Math.fround(sum);
  // exact - nearest = (sum - nearest) + error; a nonzero sum - nearest (a multiple of sum's
  // ulp) outweighs the error (at most half of it).
  const direction = sum !== nearest ? sum - nearest : error;
  if (direction === 0) {
    // Exact: tiny sums included (a sum below the smallest normal single is exact).
    if (Math.abs(nearest) > maxFinite32) return -1;
    return singleBits(nearest);
  }
  return finishSingle(state, nearest, direction, rounding);
}

export function fastMul32(state: FpuState, a: number, b: number, rounding: number): number {
  if (!finite32(a) || !finite32(b)) return -1;
  if ((a & 0x7fff_ffff) === 0 || (b & 0x7fff_ffff) === 0) return singleBits(toSingle(a) * toSingle(b)); // an exact signed zero
  const product = toSingle(a) * toSingle(b); // exact: 48 bits
  const nearest = Math.fround(product);
  return finishSingle(state, nearest, product - nearest, rounding);
}

export function fastDiv32(state: FpuState, a: number, b: number, rounding: number): number {
  if (!normal32(a) || !normal32(b)) return -1;
  const x = toSingle(a);
  const y = toSingle(b);
  const nearest = Math.fround(x / y);
  // nearest * y has at most 48 bits, exact in a double, and x - nearest * y is exact
  // (Sterbenz): the sign of exact - nearest is that of (x - nearest * y) / y.
  const residual = x - nearest * y;
  return finishSingle(state, nearest, y > 0 ? residual : -residual, rounding);
}

export function fastSqrt32(state: FpuState, a: number, rounding: number): number {
  if ((a | 0) < 0 || !normal32(a)) return -1;
  const x = toSingle(a);
  const nearest = Math.fround(Math.sqrt(x));
  return finishSingle(state, nearest, x - nearest * nearest, rounding);
}

/**
 * (-1)^negateProduct a * b + (-1)^negateAddend c in RNE with one rounding: the product of
 * singles is exact in a double; TwoSum gives the sum's exact error; the one case where
 * rounding the double sum to single differs from rounding the exact sum is a double sum that
 * lies exactly halfway between two singles, where the error's sign decides.
 */
export function fastMulAdd32(state: FpuState, a: number, b: number, c: number, negateProduct: boolean, negateAddend: boolean): number {
  if (!normal32(a) || !normal32(b) || !normal32(c)) return -1;
  const product = negateProduct ? -(toSingle(a) * toSingle(b)) : toSingle(a) * toSingle(b);
  const addend = negateAddend ? -toSingle(c) : toSingle(c);
  const sum = product + addend;
  const addendVirtual = sum - product;
  const error = (product - (sum - addendVirtual)) + (addend - addendVirtual);
  let rounded = Math.fround(sum);
  if (error !== 0 && rounded !== sum) {
    const magnitude = Math.abs(rounded);
    if (!(magnitude > minNormal32) || magnitude > maxFinite32) return -1;
    // The single on the other side of sum from rounded.
    const bits = singleBits(rounded);
    const away = (sum > rounded) === (rounded > 0) ? bits + 1 : bits - 1;
    const other = toSingle(away >>> 0);
    if (sum - rounded === other - sum && (error > 0) === (sum > rounded)) rounded = other;
  }
  const magnitude = Math.abs(rounded);
  if (!(magnitude > minNormal32) || magnitude > maxFinite32) return -1;
  if (rounded !== sum || error !== 0) state.flags |= FFlag.NX;
  return singleBits(rounded);
}

// ---------------------------------------------------------------- exact, any mode

/** fcvt.d.w and fcvt.d.wu: every 32-bit integer is a double. */
export function integerToDouble(state: FpuState, value: number): void {
  setDouble(state, value);
}

/** fcvt.d.s for anything but a NaN (the caller checks): widening is exact. */
export function singleToDouble(state: FpuState, bits: number): void {
  setDouble(state, toSingle(bits));
}

/** A double's value from its words, for comparisons (not NaN: the caller checks). */
export function doubleValue(high: number, low: number): number {
  return toDouble(high, low);
}

/** A single's value, for comparisons and conversions (not NaN). */
export function singleValue(bits: number): number {
  return toSingle(bits);
}

/**
 * A finite double rounded to an integral value as the mode says, in exact double arithmetic:
 * on the magnitude, floor is exact and so is magnitude - floor (a multiple of the magnitude's
 * unit in the last place, below it); above 2^52 every double is integral already.
 */
export function roundToIntegral(value: number, rounding: number): number {
  const magnitude = Math.abs(value);
  const floor = Math.floor(magnitude);
  const fraction = magnitude - floor;
  if (fraction === 0) return value;
  const negative = value < 0;
  let up: boolean;
  switch (rounding) {
    case 0: up = fraction > 0.5 || (fraction === 0.5 && floor % 2 !== 0); break;
    case 1: up = false; break;
    case 2: up = negative; break;
    case 3: up = !negative; break;
    default: up = fraction >= 0.5;
  }
  const rounded = up ? floor + 1 : floor;
  return negative ? -rounded : rounded;
}
