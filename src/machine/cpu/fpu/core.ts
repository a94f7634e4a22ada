/**
 * The exact arithmetic under both precisions: one implementation of IEEE 754-2008 binary
 * arithmetic, parameterised by the format, on raw bit patterns held as bigints.
 *
 * Why bigints here: every operation first computes its result EXACTLY (a sum aligned to the
 * lower exponent, a 106-bit product, a product plus an addend) or, for division and square
 * root, with at least three bits below the rounding position and a sticky bit, and then rounds
 * once in `roundPack`. With arbitrary-precision integers that is short enough to read at once
 * and obviously exact; nothing depends on the host's floating point.
 *
 * RISC-V rules enforced here (unprivileged spec, chapter "F" 11.3 and 11.6): results that are
 * NaN are the canonical NaN; tininess is detected after rounding (as QEMU's softfloat does for
 * RISC-V: its default); UF is raised only for a tiny result that is also inexact.
 */
import { assert } from '../../assert.js';

/** Accrued exception flags, as in fflags (unprivileged spec 11.2). */
export const enum FFlag {
  NX = 1,
  UF = 2,
  OF = 4,
  DZ = 8,
  NV = 16,
}

/** Rounding modes as encoded in an instruction's rm field and in frm. */
export const enum Rounding {
  RNE = 0,
  RTZ = 1,
  RDN = 2,
  RUP = 3,
  RMM = 4,
}

/** The highest valid rounding mode (5 and 6 are reserved, 7 is "dynamic": the CPU's concern). */
export const roundingModeMax = 4;

/**
 * The accumulator every operation reports into: `flags` collects FFlag bits (OR-ed, never
 * cleared here); a double result is left in `high` and `low` (the two uint32 halves), so that
 * no operation allocates to return it.
 */
export class FpuState {
  flags = 0;
  high = 0;
  low = 0;
}

/** A binary interchange format. */
export class Format {
  /** Significand bits including the implicit one (24, 53). */
  readonly precision: number;
  readonly bias: number;
  /** The exponent of the smallest normal number (1 - bias). */
  readonly exponentMin: number;
  /** The all-ones exponent field (inf and NaN). */
  readonly exponentField: number;
  readonly fractionBits: bigint;
  readonly fractionMask: bigint;
  readonly signBit: bigint;
  readonly quietBit: bigint;
  readonly infinity: bigint;
  readonly maxFinite: bigint;
  readonly canonicalNaN: bigint;
  readonly hiddenBit: bigint;
  /** The exponent of a subnormal's unit in the last place (exponentMin - precision + 1). */
  readonly quantumMin: number;

  constructor(exponentBits: number, fractionBits: number) {
    this.precision = fractionBits + 1;
    this.bias = 2 ** (exponentBits - 1) - 1;
    this.exponentMin = 1 - this.bias;
    this.exponentField = 2 ** exponentBits - 1;
    this.fractionBits = BigInt(fractionBits);
    this.hiddenBit = 1n << this.fractionBits;
    this.fractionMask = this.hiddenBit - 1n;
    this.signBit = 1n << BigInt(exponentBits + fractionBits);
    this.quietBit = 1n << BigInt(fractionBits - 1);
    this.infinity = BigInt(this.exponentField) << this.fractionBits;
    this.maxFinite = this.infinity - 1n;
    this.canonicalNaN = this.infinity | this.quietBit;
    this.quantumMin = this.exponentMin - this.precision + 1;
  }
}

export const binary32 = new Format(8, 23);
export const binary64 = new Format(11, 52);

/** What an operand is. */
export const enum Kind {
  Zero,
  Finite,
  Infinity,
  QuietNaN,
  SignallingNaN,
}

/**
 * An operand taken apart: a finite nonzero value is (-1)^sign * significand * 2^exponent with
 * an integer significand (subnormals are not normalised: exponent = quantumMin).
 */
export class Unpacked {
  kind = Kind.Zero;
  sign = false;
  exponent = 0;
  significand = 0n;
}

export function unpack(format: Format, bits: bigint, into: Unpacked): Unpacked {
  into.sign = (bits & format.signBit) !== 0n;
  const field = Number((bits >> format.fractionBits) & BigInt(format.exponentField));
  const fraction = bits & format.fractionMask;
  if (field === format.exponentField) {
    if (fraction === 0n) into.kind = Kind.Infinity;
    else into.kind = (fraction & format.quietBit) !== 0n ? Kind.QuietNaN : Kind.SignallingNaN;
  } else if (field === 0) {
    into.kind = fraction === 0n ? Kind.Zero : Kind.Finite;
    into.exponent = format.quantumMin;
    into.significand = fraction;
  } else {
    into.kind = Kind.Finite;
    into.exponent = field - format.bias - format.precision + 1;
    into.significand = fraction | format.hiddenBit;
  }
  return into;
}

const isNaN = (kind: Kind): boolean => kind >= Kind.QuietNaN;

/** The number of significant bits of a nonnegative bigint (0 for 0). */
export function bitLength(value: bigint): number {
  let bits = 0;
  while (value >= 0x1_0000_0000_0000_0000n) {
    value >>= 64n;
    bits += 64;
  }
  const high = Number(value >> 32n);
  return high !== 0 ? bits + 64 - Math.clz32(high) : bits + 32 - Math.clz32(Number(value));
}

/** Set by `roundShift`: whether the bits shifted out were not all zero. */
let shiftedInexact = false;

/**
 * `magnitude >> shift` (shift > 0) rounded as `rounding` says for a value of sign `negative`;
 * sets `shiftedInexact`.
 */
function roundShift(magnitude: bigint, shift: number, rounding: number, negative: boolean): bigint {
  const distance = BigInt(shift);
  const kept = magnitude >> distance;
  const rest = magnitude & ((1n << distance) - 1n);
  shiftedInexact = rest !== 0n;
  if (!shiftedInexact) return kept;
  const half = 1n << (distance - 1n);
  let up: boolean;
  switch (rounding) {
    case Rounding.RNE: up = rest > half || (rest === half && (kept & 1n) === 1n); break;
    case Rounding.RTZ: up = false; break;
    case Rounding.RDN: up = negative; break;
    case Rounding.RUP: up = !negative; break;
    case Rounding.RMM: up = rest >= half; break;
    default: assert(false, `rounding mode ${rounding} reached the FPU`);
  }
  return up ? kept + 1n : kept;
}

/** Whether an overflow rounds to infinity (otherwise to the largest finite number): IEEE 7.4. */
function overflowsToInfinity(rounding: number, negative: boolean): boolean {
  switch (rounding) {
    case Rounding.RTZ: return false;
    case Rounding.RDN: return negative;
    case Rounding.RUP: return !negative;
    default: return true;
  }
}

/**
 * Rounds the exact value (-1)^negative * significand * 2^exponent (significand > 0) to the
 * format, once, and reports NX, UF, OF. A caller whose value is not exact passes a significand
 * with at least two bits below any rounding position and its sticky bit OR-ed into bit 0.
 */
export function roundPack(format: Format, negative: boolean, exponent: number, significand: bigint, rounding: number, state: FpuState): bigint {
  const precision = format.precision;
  const lead = exponent + bitLength(significand) - 1;
  let quantum = Math.max(lead, format.exponentMin) - precision + 1;
  let mantissa: bigint;
  let inexact = false;
  if (quantum <= exponent) {
    mantissa = significand << BigInt(exponent - quantum);
  } else {
    mantissa = roundShift(significand, quantum - exponent, rounding, negative);
    inexact = shiftedInexact;
  }
  if (mantissa >> BigInt(precision) !== 0n) {
    // Rounded up to the next power of two.
    mantissa >>= 1n;
    quantum += 1;
  }
  const field = quantum - format.quantumMin; // the biased exponent minus one for normals
  if (mantissa >= format.hiddenBit && field + 1 >= format.exponentField) {
    state.flags |= FFlag.OF | FFlag.NX;
    const magnitude = overflowsToInfinity(rounding, negative) ? format.infinity : format.maxFinite;
    return negative ? magnitude | format.signBit : magnitude;
  }
  if (inexact) {
    state.flags |= FFlag.NX;
    // Tininess after rounding (IEEE 7.5): tiny if the value rounded to `precision` bits with an
    // unbounded exponent range is below 2^exponentMin. Only a value just below can round up.
    let tiny = lead < format.exponentMin;
    const unboundedShift = lead - precision + 1 - exponent;
    if (lead === format.exponentMin - 1 && unboundedShift > 0) {
      const unbounded = roundShift(significand, unboundedShift, rounding, negative);
      if (unbounded >> BigInt(precision) !== 0n) tiny = false;
    }
    if (tiny) state.flags |= FFlag.UF;
  }
  // Normal: ((field) << fractionBits) + mantissa adds the hidden bit into the exponent field.
  const bits = mantissa < format.hiddenBit ? mantissa : (BigInt(field) << format.fractionBits) + mantissa;
  return negative ? bits | format.signBit : bits;
}

/** An exact zero sum: +0, or -0 when rounding down (IEEE 6.3). */
function exactZero(format: Format, rounding: number): bigint {
  return rounding === Rounding.RDN ? format.signBit : 0n;
}

function signed(format: Format, magnitude: bigint, negative: boolean): bigint {
  return negative ? magnitude | format.signBit : magnitude;
}

const ua = new Unpacked();
const ub = new Unpacked();
const uc = new Unpacked();

/**
 * The exact sum of two finite or zero values (x = (-1)^xs * xm * 2^xe), rounded: shared by
 * add and the fused multiply-adds. Signs of exact zero results follow IEEE 6.3.
 */
function sumRound(
  format: Format,
  xs: boolean, xe: number, xm: bigint,
  ys: boolean, ye: number, ym: bigint,
  rounding: number, state: FpuState,
): bigint {
  if (xm === 0n && ym === 0n) return xs === ys ? signed(format, 0n, xs) : exactZero(format, rounding);
  const e = xm === 0n ? ye : ym === 0n ? xe : Math.min(xe, ye);
  const x = xm << BigInt(xm === 0n ? 0 : xe - e);
  const y = ym << BigInt(ym === 0n ? 0 : ye - e);
  let negative: boolean;
  let magnitude: bigint;
  if (xs === ys) {
    negative = xs;
    magnitude = x + y;
  } else if (x >= y) {
    negative = xs;
    magnitude = x - y;
  } else {
    negative = ys;
    magnitude = y - x;
  }
  if (magnitude === 0n) return exactZero(format, rounding);
  return roundPack(format, negative, e, magnitude, rounding, state);
}

export function add(format: Format, a: bigint, b: bigint, rounding: number, state: FpuState): bigint {
  const x = unpack(format, a, ua);
  const y = unpack(format, b, ub);
  if (isNaN(x.kind) || isNaN(y.kind)) {
    if (x.kind === Kind.SignallingNaN || y.kind === Kind.SignallingNaN) state.flags |= FFlag.NV;
    return format.canonicalNaN;
  }
  if (x.kind === Kind.Infinity || y.kind === Kind.Infinity) {
    if (x.kind === Kind.Infinity && y.kind === Kind.Infinity && x.sign !== y.sign) {
      state.flags |= FFlag.NV;
      return format.canonicalNaN;
    }
    return signed(format, format.infinity, x.kind === Kind.Infinity ? x.sign : y.sign);
  }
  return sumRound(format, x.sign, x.exponent, x.significand, y.sign, y.exponent, y.significand, rounding, state);
}

export function sub(format: Format, a: bigint, b: bigint, rounding: number, state: FpuState): bigint {
  return add(format, a, b ^ format.signBit, rounding, state);
}

export function mul(format: Format, a: bigint, b: bigint, rounding: number, state: FpuState): bigint {
  const x = unpack(format, a, ua);
  const y = unpack(format, b, ub);
  if (isNaN(x.kind) || isNaN(y.kind)) {
    if (x.kind === Kind.SignallingNaN || y.kind === Kind.SignallingNaN) state.flags |= FFlag.NV;
    return format.canonicalNaN;
  }
  const negative = x.sign !== y.sign;
  if (x.kind === Kind.Infinity || y.kind === Kind.Infinity) {
    if (x.kind === Kind.Zero || y.kind === Kind.Zero) {
      state.flags |= FFlag.NV;
      return format.canonicalNaN;
    }
    return signed(format, format.infinity, negative);
  }
  if (x.kind === Kind.Zero || y.kind === Kind.Zero) return signed(format, 0n, negative);
  return roundPack(format, negative, x.exponent + y.exponent, x.significand * y.significand, rounding, state);
}

export function div(format: Format, a: bigint, b: bigint, rounding: number, state: FpuState): bigint {
  const x = unpack(format, a, ua);
  const y = unpack(format, b, ub);
  if (isNaN(x.kind) || isNaN(y.kind)) {
    if (x.kind === Kind.SignallingNaN || y.kind === Kind.SignallingNaN) state.flags |= FFlag.NV;
    return format.canonicalNaN;
  }
  const negative = x.sign !== y.sign;
  if (x.kind === Kind.Infinity) {
    if (y.kind === Kind.Infinity) {
      state.flags |= FFlag.NV;
      return format.canonicalNaN;
    }
    return signed(format, format.infinity, negative);
  }
  if (y.kind === Kind.Infinity) return signed(format, 0n, negative);
  if (y.kind === Kind.Zero) {
    if (x.kind === Kind.Zero) {
      state.flags |= FFlag.NV;
      return format.canonicalNaN;
    }
    state.flags |= FFlag.DZ;
    return signed(format, format.infinity, negative);
  }
  if (x.kind === Kind.Zero) return signed(format, 0n, negative);
  // A quotient of at least precision + 3 bits, its remainder jammed into bit 0.
  const extra = format.precision + 4 + bitLength(y.significand) - bitLength(x.significand);
  const dividend = x.significand << BigInt(extra);
  let quotient = dividend / y.significand;
  if (quotient * y.significand !== dividend) quotient |= 1n;
  return roundPack(format, negative, x.exponent - y.exponent - extra, quotient, rounding, state);
}

/** floor(sqrt(n)) for n >= 0 (Newton's iteration from above). */
export function integerSquareRoot(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt((bitLength(n) >> 1) + 1);
  for (;;) {
    const next = (x + n / x) >> 1n;
    if (next >= x) return x;
    x = next;
  }
}

export function sqrt(format: Format, a: bigint, rounding: number, state: FpuState): bigint {
  const x = unpack(format, a, ua);
  if (isNaN(x.kind)) {
    if (x.kind === Kind.SignallingNaN) state.flags |= FFlag.NV;
    return format.canonicalNaN;
  }
  if (x.kind === Kind.Zero) return a; // sqrt(-0) = -0 (IEEE 5.4.1)
  if (x.sign) {
    state.flags |= FFlag.NV;
    return format.canonicalNaN;
  }
  if (x.kind === Kind.Infinity) return a;
  let exponent = x.exponent;
  let significand = x.significand;
  if ((exponent & 1) !== 0) {
    significand <<= 1n;
    exponent -= 1;
  }
  // A root of at least precision + 3 bits: the radicand needs twice as many.
  const doubled = 2 * Math.max(0, Math.ceil((2 * format.precision + 6 - bitLength(significand)) / 2));
  const radicand = significand << BigInt(doubled);
  let root = integerSquareRoot(radicand);
  if (root * root !== radicand) root |= 1n;
  return roundPack(format, false, (exponent - doubled) / 2, root, rounding, state);
}

/**
 * (-1)^negateProduct * a * b + (-1)^negateAddend * c with one rounding: fmadd (false, false),
 * fmsub (false, true), fnmsub (true, false), fnmadd (true, true), as the spec defines them.
 */
export function mulAdd(format: Format, a: bigint, b: bigint, c: bigint, negateProduct: boolean, negateAddend: boolean, rounding: number, state: FpuState): bigint {
  const x = unpack(format, a, ua);
  const y = unpack(format, b, ub);
  const z = unpack(format, c, uc);
  const infinityTimesZero =
    (x.kind === Kind.Infinity && y.kind === Kind.Zero) || (x.kind === Kind.Zero && y.kind === Kind.Infinity);
  if (isNaN(x.kind) || isNaN(y.kind) || isNaN(z.kind) || infinityTimesZero) {
    // 11.6: FMA raises NV for inf * 0 even when the addend is a quiet NaN.
    if (x.kind === Kind.SignallingNaN || y.kind === Kind.SignallingNaN || z.kind === Kind.SignallingNaN || infinityTimesZero) {
      state.flags |= FFlag.NV;
    }
    return format.canonicalNaN;
  }
  const productNegative = (x.sign !== y.sign) !== negateProduct;
  const addendNegative = z.sign !== negateAddend;
  if (x.kind === Kind.Infinity || y.kind === Kind.Infinity) {
    if (z.kind === Kind.Infinity && addendNegative !== productNegative) {
      state.flags |= FFlag.NV;
      return format.canonicalNaN;
    }
    return signed(format, format.infinity, productNegative);
  }
  if (z.kind === Kind.Infinity) return signed(format, format.infinity, addendNegative);
  const productZero = x.kind === Kind.Zero || y.kind === Kind.Zero;
  return sumRound(
    format,
    productNegative, x.exponent + y.exponent, productZero ? 0n : x.significand * y.significand,
    addendNegative, z.exponent, z.kind === Kind.Zero ? 0n : z.significand,
    rounding, state,
  );
}

/** Which of min (false) or max (true): IEEE 754-2019 minimumNumber/maximumNumber, -0 < +0. */
export function minMax(format: Format, a: bigint, b: bigint, wantMax: boolean, state: FpuState): bigint {
  const x = unpack(format, a, ua);
  const y = unpack(format, b, ub);
  if (x.kind === Kind.SignallingNaN || y.kind === Kind.SignallingNaN) state.flags |= FFlag.NV;
  const xNaN = isNaN(x.kind);
  const yNaN = isNaN(y.kind);
  if (xNaN && yNaN) return format.canonicalNaN;
  if (xNaN) return b;
  if (yNaN) return a;
  const less = lessThan(format, a, b) || (a !== b && x.sign && !y.sign); // -0 < +0
  return less === wantMax ? b : a;
}

/** a < b on two non-NaN values, +0 and -0 equal. */
function lessThan(format: Format, a: bigint, b: bigint): boolean {
  const aNegative = (a & format.signBit) !== 0n;
  const bNegative = (b & format.signBit) !== 0n;
  const aMagnitude = a & ~format.signBit;
  const bMagnitude = b & ~format.signBit;
  if (aMagnitude === 0n && bMagnitude === 0n) return false;
  if (aNegative !== bNegative) return aNegative;
  return aNegative ? aMagnitude > bMagnitude : aMagnitude < bMagnitude;
}

/** feq (quiet: NV only for a signalling NaN), flt and fle (signalling: NV for any NaN). */
export function compare(format: Format, a: bigint, b: bigint, relation: 'eq' | 'lt' | 'le', state: FpuState): number {
  const x = unpack(format, a, ua);
  const y = unpack(format, b, ub);
  if (isNaN(x.kind) || isNaN(y.kind)) {
    if (relation !== 'eq' || x.kind === Kind.SignallingNaN || y.kind === Kind.SignallingNaN) state.flags |= FFlag.NV;
    return 0;
  }
  const equal = a === b || (x.kind === Kind.Zero && y.kind === Kind.Zero);
  if (relation === 'eq') return equal ? 1 : 0;
  if (relation === 'le' && equal) return 1;
  return lessThan(format, a, b) ? 1 : 0;
}

/** fclass's one-hot mask (11.9): bit 0 -inf ... bit 7 +inf, 8 signalling NaN, 9 quiet NaN. */
export function classify(format: Format, a: bigint): number {
  const x = unpack(format, a, ua);
  switch (x.kind) {
    case Kind.SignallingNaN: return 1 << 8;
    case Kind.QuietNaN: return 1 << 9;
    case Kind.Infinity: return x.sign ? 1 << 0 : 1 << 7;
    case Kind.Zero: return x.sign ? 1 << 3 : 1 << 4;
    case Kind.Finite: {
      const subnormal = x.significand < format.hiddenBit;
      if (x.sign) return subnormal ? 1 << 2 : 1 << 1;
      return subnormal ? 1 << 5 : 1 << 6;
    }
  }
}

/** Converts between formats: widening is exact, narrowing rounds. NaNs become canonical. */
export function convert(from: Format, to: Format, a: bigint, rounding: number, state: FpuState): bigint {
  const x = unpack(from, a, ua);
  switch (x.kind) {
    case Kind.SignallingNaN:
      state.flags |= FFlag.NV;
      return to.canonicalNaN;
    case Kind.QuietNaN: return to.canonicalNaN;
    case Kind.Infinity: return signed(to, to.infinity, x.sign);
    case Kind.Zero: return signed(to, 0n, x.sign);
    case Kind.Finite: return roundPack(to, x.sign, x.exponent, x.significand, rounding, state);
  }
}

/** A 32-bit integer (signed or not) to the format, rounded. */
export function fromInteger(format: Format, value: number, rounding: number, state: FpuState): bigint {
  if (value === 0) return 0n;
  const negative = value < 0;
  return roundPack(format, negative, 0, BigInt(negative ? -value : value), rounding, state);
}

/**
 * To a 32-bit integer, rounded (fcvt.w[u]): out of range and NaN raise NV (not NX) and
 * saturate (11.7's table: NaN and +inf give the largest, -inf the smallest); returns the int32
 * or uint32 value as a number.
 */
export function toInteger(format: Format, a: bigint, unsigned: boolean, rounding: number, state: FpuState): number {
  const x = unpack(format, a, ua);
  const largest = unsigned ? 0xffff_ffff : 0x7fff_ffff;
  const smallest = unsigned ? 0 : -0x8000_0000;
  if (isNaN(x.kind)) {
    state.flags |= FFlag.NV;
    return largest;
  }
  if (x.kind === Kind.Infinity) {
    state.flags |= FFlag.NV;
    return x.sign ? smallest : largest;
  }
  if (x.kind === Kind.Zero) return 0;
  let magnitude: bigint;
  let inexact = false;
  if (x.exponent >= 0) {
    // Large enough to be out of range already? Keep the shift small.
    magnitude = x.exponent > 40 ? 1n << 40n : x.significand << BigInt(x.exponent);
  } else {
    magnitude = roundShift(x.significand, -x.exponent, rounding, x.sign);
    inexact = shiftedInexact;
  }
  const value = x.sign ? -Number(magnitude) : Number(magnitude); // magnitude < 2^64: exact enough to compare
  if (magnitude > 0x1_0000_0000n || value > largest || value < smallest) {
    state.flags |= FFlag.NV;
    return x.sign ? smallest : largest;
  }
  if (inexact) state.flags |= FFlag.NX;
  return value === 0 ? 0 : value; // no -0
}
