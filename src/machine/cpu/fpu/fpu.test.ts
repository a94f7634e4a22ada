/**
 * Unit tests of the FPU library: edge cases written out by hand (each with the bits and flags
 * IEEE 754 and the RISC-V spec require), and properties against the host's double arithmetic
 * where IEEE guarantees the same correctly rounded result. test/fpu-qemu.test.ts checks the
 * same library against QEMU on many more operands.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fpu from './index.js';
import { FFlag, FpuState, Rounding } from './index.js';
import { Prng } from '../../../simulator/prng.js';
import * as core from './core.js';

const { NV, DZ, OF, UF, NX } = { NV: FFlag.NV, DZ: FFlag.DZ, OF: FFlag.OF, UF: FFlag.UF, NX: FFlag.NX };
const { RNE, RTZ, RDN, RUP, RMM } = { RNE: Rounding.RNE, RTZ: Rounding.RTZ, RDN: Rounding.RDN, RUP: Rounding.RUP, RMM: Rounding.RMM };

const hex32 = (value: number): string => (value >>> 0).toString(16).padStart(8, '0');

/** Runs a single-precision operation on a fresh state: [result bits, flags]. */
function s(run: (state: FpuState) => number): [string, number] {
  const state = new FpuState();
  const result = run(state);
  return [hex32(result), state.flags];
}

/** A double as [high, low] from 16 hex digits. */
function d(bits: string): [number, number] {
  assert.equal(bits.length, 16);
  return [parseInt(bits.slice(0, 8), 16), parseInt(bits.slice(8), 16)];
}

/** Runs a double-precision operation on a fresh state: [result bits, flags]. */
function dd(run: (state: FpuState) => void): [string, number] {
  const state = new FpuState();
  run(state);
  return [hex32(state.high) + hex32(state.low), state.flags];
}

const add64 = (a: string, b: string, rm: number) => dd((st) => fpu.f64Add(st, ...d(a), ...d(b), rm));
const mul64 = (a: string, b: string, rm: number) => dd((st) => fpu.f64Mul(st, ...d(a), ...d(b), rm));

const one32 = 0x3f80_0000;
const max32 = 0x7f7f_ffff;
const inf32 = 0x7f80_0000;
const sNaN32 = 0x7f80_0001;
const qNaN32 = 0x7fc1_2345; // a payload: results must not carry it

test('f32 add: ties to even, ties away in RMM, directed modes, and exact results raise nothing', () => {
  const halfUlp = 0x3380_0000; // 2^-24: half an ulp of 1
  assert.deepEqual(s((st) => fpu.f32Add(st, one32, halfUlp, RNE)), ['3f800000', NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, one32, halfUlp, RMM)), ['3f800001', NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, one32, halfUlp, RUP)), ['3f800001', NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, one32, halfUlp, RTZ)), ['3f800000', NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, 0x3f80_0001, halfUlp, RNE)), ['3f800002', NX], 'a tie rounds to the even neighbour, here up');
  assert.deepEqual(s((st) => fpu.f32Add(st, 0xbf80_0000, 0xb380_0000, RDN)), ['bf800001', NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, one32, one32, RNE)), ['40000000', 0]);
});

test('f32 add: the signs of zero sums', () => {
  assert.deepEqual(s((st) => fpu.f32Add(st, 0, 0x8000_0000, RNE)), ['00000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Add(st, 0, 0x8000_0000, RDN)), ['80000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Add(st, 0x8000_0000, 0x8000_0000, RNE)), ['80000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Sub(st, one32, one32, RNE)), ['00000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Sub(st, one32, one32, RDN)), ['80000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Add(st, 0x8000_0000, 0x0000_0001, RNE)), ['00000001', 0], '-0 + x is x, exactly');
});

test('f32 overflow: infinity or the largest finite number, as the rounding mode says', () => {
  assert.deepEqual(s((st) => fpu.f32Add(st, max32, max32, RNE)), ['7f800000', OF | NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, max32, max32, RMM)), ['7f800000', OF | NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, max32, max32, RTZ)), ['7f7fffff', OF | NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, max32, max32, RDN)), ['7f7fffff', OF | NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, max32, max32, RUP)), ['7f800000', OF | NX]);
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0xff7f_ffff, 0x4000_0000, RUP)), ['ff7fffff', OF | NX]);
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0xff7f_ffff, 0x4000_0000, RDN)), ['ff800000', OF | NX]);
  assert.deepEqual(s((st) => fpu.f32Add(st, inf32, max32, RNE)), ['7f800000', 0], 'an infinite operand is no overflow');
});

test('f32 underflow: UF only when tiny and inexact, tininess after rounding', () => {
  const half = 0x3f00_0000;
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0x0000_0002, half, RNE)), ['00000001', 0], 'an exact subnormal result raises nothing');
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0x0000_0001, half, RNE)), ['00000000', UF | NX], 'half the smallest subnormal: a tie to even zero');
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0x0000_0001, half, RUP)), ['00000001', UF | NX]);
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0x8000_0001, half, RDN)), ['80000001', UF | NX]);
  // The largest subnormal times (1 + 2^-23) is 2^-126 (1 - 2^-46): it rounds to the smallest
  // normal number, and rounded to 24 bits with an unbounded exponent it is 2^-126 as well,
  // so it is not tiny after rounding: NX without UF (before-rounding detection would add UF).
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0x007f_ffff, 0x3f80_0001, RNE)), ['00800000', NX]);
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0x007f_ffff, 0x3f80_0001, RTZ)), ['007fffff', UF | NX]);
  assert.deepEqual(s((st) => fpu.f32Sub(st, 0x0080_0000, 0x0000_0001, RNE)), ['007fffff', 0], 'subnormal differences are exact');
});

test('f32 division and square root: zero, infinity and invalid cases', () => {
  assert.deepEqual(s((st) => fpu.f32Div(st, one32, 0, RNE)), ['7f800000', DZ]);
  assert.deepEqual(s((st) => fpu.f32Div(st, 0xbf80_0000, 0, RNE)), ['ff800000', DZ]);
  assert.deepEqual(s((st) => fpu.f32Div(st, 0, 0, RNE)), ['7fc00000', NV]);
  assert.deepEqual(s((st) => fpu.f32Div(st, inf32, inf32, RNE)), ['7fc00000', NV]);
  assert.deepEqual(s((st) => fpu.f32Div(st, inf32, 0, RNE)), ['7f800000', 0], 'inf / 0 is no division by zero');
  assert.deepEqual(s((st) => fpu.f32Div(st, one32, 0x4040_0000, RNE)), ['3eaaaaab', NX]);
  assert.deepEqual(s((st) => fpu.f32Div(st, one32, 0x4040_0000, RTZ)), ['3eaaaaaa', NX]);
  assert.deepEqual(s((st) => fpu.f32Sqrt(st, 0x8000_0000, RNE)), ['80000000', 0], 'sqrt(-0) = -0');
  assert.deepEqual(s((st) => fpu.f32Sqrt(st, 0xbf80_0000, RNE)), ['7fc00000', NV]);
  assert.deepEqual(s((st) => fpu.f32Sqrt(st, 0xff80_0000, RNE)), ['7fc00000', NV]);
  assert.deepEqual(s((st) => fpu.f32Sqrt(st, 0x4000_0000, RNE)), ['3fb504f3', NX]);
  assert.deepEqual(s((st) => fpu.f32Sqrt(st, 0x4080_0000, RNE)), ['40000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Sqrt(st, 0x0000_0001, RNE)), ['1a3504f3', NX], 'the root of the smallest subnormal (2^-149) is 2^-75 sqrt(2)');
});

test('NaNs: results are canonical, never a payload; sNaN raises NV, qNaN does not', () => {
  assert.deepEqual(s((st) => fpu.f32Add(st, sNaN32, one32, RNE)), ['7fc00000', NV]);
  assert.deepEqual(s((st) => fpu.f32Add(st, qNaN32, one32, RNE)), ['7fc00000', 0]);
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0xffc0_0000, qNaN32, RNE)), ['7fc00000', 0]);
  assert.deepEqual(s((st) => fpu.f32Mul(st, inf32, 0x8000_0000, RNE)), ['7fc00000', NV]);
  assert.deepEqual(s((st) => fpu.f32Sub(st, inf32, inf32, RNE)), ['7fc00000', NV]);
  assert.deepEqual(dd((st) => fpu.f64Add(st, ...d('7ff0000000000001'), ...d('3ff0000000000000'), RNE)), ['7ff8000000000000', NV]);
  assert.deepEqual(dd((st) => fpu.f64Add(st, ...d('fff8000000001234'), ...d('3ff0000000000000'), RNE)), ['7ff8000000000000', 0]);
});

test('fused multiply-add: one rounding where two would differ, and its special cases', () => {
  // (1 + 2^-23)(1 - 2^-24) - 1 = 2^-24 - 2^-47 exactly (0x337ffffe); rounding the product first gives 1 - 1 = 0.
  assert.deepEqual(s((st) => fpu.f32Fmadd(st, 0x3f80_0001, 0x3f7f_ffff, 0xbf80_0000, RNE)), ['337ffffe', 0]);
  assert.deepEqual(s((st) => fpu.f32Mul(st, 0x3f80_0001, 0x3f7f_ffff, RNE)), ['3f800000', NX], 'the product alone rounds to 1');
  assert.deepEqual(dd((st) => fpu.f64Fmadd(st, ...d('3ff0000000000001'), ...d('3fefffffffffffff'), ...d('bff0000000000000'), RNE)), ['3c9ffffffffffffe', 0]);
  // inf * 0 + qNaN raises NV (11.6), unlike a plain qNaN operand.
  assert.deepEqual(s((st) => fpu.f32Fmadd(st, inf32, 0, 0x7fc0_0000, RNE)), ['7fc00000', NV]);
  assert.deepEqual(s((st) => fpu.f32Fmadd(st, one32, one32, 0x7fc0_0000, RNE)), ['7fc00000', 0]);
  assert.deepEqual(s((st) => fpu.f32Fmadd(st, inf32, one32, 0xff80_0000, RNE)), ['7fc00000', NV], 'inf - inf');
  // fnmadd = -(a*b) - c, fnmsub = -(a*b) + c, fmsub = a*b - c.
  assert.deepEqual(s((st) => fpu.f32Fnmadd(st, one32, one32, one32, RNE)), ['c0000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Fnmsub(st, one32, one32, 0x4000_0000, RNE)), ['3f800000', 0]);
  assert.deepEqual(s((st) => fpu.f32Fmsub(st, one32, 0x4000_0000, one32, RNE)), ['3f800000', 0]);
  // Exact zero sums: +0, or -0 when rounding down; -0 * x + -0 is -0.
  assert.deepEqual(s((st) => fpu.f32Fnmadd(st, one32, one32, 0xbf80_0000, RNE)), ['00000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Fnmadd(st, one32, one32, 0xbf80_0000, RDN)), ['80000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Fmadd(st, 0x8000_0000, one32, 0x8000_0000, RNE)), ['80000000', 0]);
  // A tiny product below an addend's ulp still decides a directed rounding.
  assert.deepEqual(s((st) => fpu.f32Fmadd(st, 0x0000_0001, 0x0000_0001, one32, RUP)), ['3f800001', NX]);
  assert.deepEqual(s((st) => fpu.f32Fmadd(st, 0x0000_0001, 0x0000_0001, one32, RNE)), ['3f800000', NX]);
  assert.deepEqual(s((st) => fpu.f32Fmsub(st, 0x0000_0001, 0x0000_0001, one32, RNE)), ['bf800000', NX]);
  assert.deepEqual(s((st) => fpu.f32Fmsub(st, 0x0000_0001, 0x0000_0001, one32, RDN)), ['bf800000', NX]);
  assert.deepEqual(s((st) => fpu.f32Fmsub(st, 0x0000_0001, 0x0000_0001, one32, RTZ)), ['bf7fffff', NX]);
});

test('min and max: -0 < +0, one NaN gives the other operand, two give the canonical NaN, sNaN raises NV', () => {
  assert.deepEqual(s((st) => fpu.f32Min(st, 0, 0x8000_0000)), ['80000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Max(st, 0x8000_0000, 0)), ['00000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Min(st, qNaN32, one32)), ['3f800000', 0]);
  assert.deepEqual(s((st) => fpu.f32Max(st, one32, sNaN32)), ['3f800000', NV]);
  assert.deepEqual(s((st) => fpu.f32Min(st, qNaN32, qNaN32)), ['7fc00000', 0]);
  assert.deepEqual(s((st) => fpu.f32Max(st, sNaN32, qNaN32)), ['7fc00000', NV]);
  assert.deepEqual(s((st) => fpu.f32Min(st, 0xbf80_0000, 0xc000_0000)), ['c0000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Max(st, 0xff80_0000, 0x0000_0001)), ['00000001', 0]);
  assert.deepEqual(dd((st) => fpu.f64Min(st, ...d('0000000000000000'), ...d('8000000000000000'))), ['8000000000000000', 0]);
  assert.deepEqual(dd((st) => fpu.f64Max(st, ...d('7ff4000000000000'), ...d('c000000000000000'))), ['c000000000000000', NV]);
});

test('comparisons: feq is quiet, flt and fle signal on any NaN; -0 equals +0', () => {
  assert.deepEqual(s((st) => fpu.f32Eq(st, qNaN32, one32)), ['00000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Eq(st, sNaN32, one32)), ['00000000', NV]);
  assert.deepEqual(s((st) => fpu.f32Lt(st, qNaN32, one32)), ['00000000', NV]);
  assert.deepEqual(s((st) => fpu.f32Le(st, one32, qNaN32)), ['00000000', NV]);
  assert.deepEqual(s((st) => fpu.f32Eq(st, 0x8000_0000, 0)), ['00000001', 0]);
  assert.deepEqual(s((st) => fpu.f32Le(st, 0x8000_0000, 0)), ['00000001', 0]);
  assert.deepEqual(s((st) => fpu.f32Lt(st, 0x8000_0000, 0)), ['00000000', 0]);
  assert.deepEqual(s((st) => fpu.f32Lt(st, 0xc000_0000, 0xbf80_0000)), ['00000001', 0]);
  assert.deepEqual(s((st) => fpu.f32Lt(st, 0xff80_0000, 0xff7f_ffff)), ['00000001', 0]);
  assert.deepEqual(s((st) => fpu.f64Lt(st, ...d('8000000000000001'), ...d('0000000000000000'))), ['00000001', 0]);
  assert.deepEqual(s((st) => fpu.f64Eq(st, ...d('7ff8000000000000'), ...d('7ff8000000000000'))), ['00000000', 0]);
});

test('fclass: one bit for each of the ten classes', () => {
  const classes: [number, number][] = [
    [0xff80_0000, 0], [0xbf80_0000, 1], [0x8000_0001, 2], [0x8000_0000, 3], [0, 4],
    [0x0000_0001, 5], [one32, 6], [inf32, 7], [sNaN32, 8], [qNaN32, 9],
  ];
  for (const [bits, bit] of classes) assert.equal(fpu.f32Class(bits), 1 << bit, `fclass.s ${hex32(bits)}`);
  assert.equal(fpu.f64Class(...d('000fffffffffffff')), 1 << 5);
  assert.equal(fpu.f64Class(...d('fff0000000000000')), 1 << 0);
  assert.equal(fpu.f64Class(...d('7ff0000000000001')), 1 << 8);
});

test('sign injection is bit work, NaNs included', () => {
  assert.equal(hex32(fpu.f32SignInject(one32, 0x8000_0000)), 'bf800000');
  assert.equal(hex32(fpu.f32SignInjectNegated(one32, one32)), 'bf800000');
  assert.equal(hex32(fpu.f32SignInjectXor(0xbf80_0000, 0x8000_0000)), '3f800000');
  assert.equal(hex32(fpu.f32SignInject(sNaN32, 0x8000_0000)), 'ff800001', 'payloads pass through sign injection');
  assert.equal(hex32(fpu.f64SignInjectNegatedHigh(0x3ff0_0000, 0x3ff0_0000)), 'bff00000');
});

test('float to integer: rounding modes, NaN and out of range saturate with NV and no NX', () => {
  const twoAndHalf = 0x4020_0000;
  const minusTwoAndHalf = 0xc020_0000;
  assert.deepEqual(s((st) => fpu.f32ToI32(st, twoAndHalf, RNE)), ['00000002', NX]);
  assert.deepEqual(s((st) => fpu.f32ToI32(st, twoAndHalf, RMM)), ['00000003', NX]);
  assert.deepEqual(s((st) => fpu.f32ToI32(st, minusTwoAndHalf, RMM)), ['fffffffd', NX]);
  assert.deepEqual(s((st) => fpu.f32ToI32(st, minusTwoAndHalf, RDN)), ['fffffffd', NX]);
  assert.deepEqual(s((st) => fpu.f32ToI32(st, minusTwoAndHalf, RUP)), ['fffffffe', NX]);
  assert.deepEqual(s((st) => fpu.f32ToI32(st, minusTwoAndHalf, RTZ)), ['fffffffe', NX]);
  assert.deepEqual(s((st) => fpu.f32ToI32(st, 0x7fc0_0000, RNE)), ['7fffffff', NV]);
  assert.deepEqual(s((st) => fpu.f32ToI32(st, 0xffc0_0000, RNE)), ['7fffffff', NV], 'a negative NaN gives the largest too');
  assert.deepEqual(s((st) => fpu.f32ToI32(st, inf32, RNE)), ['7fffffff', NV]);
  assert.deepEqual(s((st) => fpu.f32ToI32(st, 0xff80_0000, RNE)), ['80000000', NV]);
  assert.deepEqual(s((st) => fpu.f32ToI32(st, 0x4f00_0000, RNE)), ['7fffffff', NV], '2^31');
  assert.deepEqual(s((st) => fpu.f32ToI32(st, 0xcf00_0000, RNE)), ['80000000', 0], '-2^31 fits');
  assert.deepEqual(s((st) => fpu.f32ToU32(st, 0xbf00_0000, RNE)), ['00000000', NX], '-0.5 rounds to 0: in range');
  assert.deepEqual(s((st) => fpu.f32ToU32(st, 0xbf40_0000, RNE)), ['00000000', NV], '-0.75 rounds to -1: out of range');
  assert.deepEqual(s((st) => fpu.f32ToU32(st, 0xbf80_0000, RTZ)), ['00000000', NV]);
  assert.deepEqual(s((st) => fpu.f32ToU32(st, 0x7fc0_0000, RNE)), ['ffffffff', NV]);
  assert.deepEqual(s((st) => fpu.f32ToU32(st, 0x4f80_0000, RNE)), ['ffffffff', NV], '2^32');
  assert.deepEqual(s((st) => fpu.f32ToU32(st, 0x4f7f_ffff, RNE)), ['ffffff00', 0]);
  assert.deepEqual(s((st) => fpu.f64ToI32(st, ...d('c1e0000000100000'), RNE)), ['80000000', NX], '-2^31 - 0.5 ties to the even -2^31');
  assert.deepEqual(s((st) => fpu.f64ToI32(st, ...d('c1e0000000100000'), RDN)), ['80000000', NV]);
  assert.deepEqual(s((st) => fpu.f64ToU32(st, ...d('41effffffff00000'), RTZ)), ['ffffffff', NX], '2^32 - 0.5');
  assert.deepEqual(s((st) => fpu.f64ToU32(st, ...d('41effffffff00000'), RNE)), ['ffffffff', NV], '... which rounds to 2^32');
  assert.deepEqual(s((st) => fpu.f64ToI32(st, ...d('8000000000000001'), RDN)), ['ffffffff', NX]);
});

test('integer to float: rounded when the integer has more bits than the significand', () => {
  assert.deepEqual(s((st) => fpu.i32ToF32(st, 16_777_217, RNE)), ['4b800000', NX]);
  assert.deepEqual(s((st) => fpu.i32ToF32(st, 16_777_217, RUP)), ['4b800001', NX]);
  assert.deepEqual(s((st) => fpu.i32ToF32(st, -16_777_217, RMM)), ['cb800001', NX]);
  assert.deepEqual(s((st) => fpu.i32ToF32(st, -0x8000_0000, RNE)), ['cf000000', 0]);
  assert.deepEqual(s((st) => fpu.u32ToF32(st, 0xffff_ffff, RNE)), ['4f800000', NX]);
  assert.deepEqual(s((st) => fpu.u32ToF32(st, 0xffff_ffff, RTZ)), ['4f7fffff', NX]);
  assert.deepEqual(s((st) => fpu.i32ToF32(st, 0, RDN)), ['00000000', 0], 'zero is +0 in every mode');
  assert.deepEqual(dd((st) => fpu.i32ToF64(st, -1)), ['bff0000000000000', 0]);
  assert.deepEqual(dd((st) => fpu.u32ToF64(st, 0xffff_ffff)), ['41efffffffe00000', 0]);
});

test('between precisions: widening is exact, narrowing rounds, NaNs become canonical', () => {
  assert.deepEqual(dd((st) => fpu.f32ToF64(st, 0x0000_0001)), ['36a0000000000000', 0]);
  assert.deepEqual(dd((st) => fpu.f32ToF64(st, sNaN32)), ['7ff8000000000000', NV]);
  assert.deepEqual(dd((st) => fpu.f32ToF64(st, qNaN32)), ['7ff8000000000000', 0]);
  assert.deepEqual(s((st) => fpu.f64ToF32(st, ...d('7e37e43c8800759c'), RNE)), ['7f800000', OF | NX], '1e300');
  assert.deepEqual(s((st) => fpu.f64ToF32(st, ...d('7e37e43c8800759c'), RTZ)), ['7f7fffff', OF | NX]);
  assert.deepEqual(s((st) => fpu.f64ToF32(st, ...d('3fb999999999999a'), RNE)), ['3dcccccd', NX], '0.1');
  assert.deepEqual(s((st) => fpu.f64ToF32(st, ...d('0000000000000001'), RNE)), ['00000000', UF | NX]);
  assert.deepEqual(s((st) => fpu.f64ToF32(st, ...d('0000000000000001'), RUP)), ['00000001', UF | NX]);
  assert.deepEqual(s((st) => fpu.f64ToF32(st, ...d('7ff0000000000001'), RNE)), ['7fc00000', NV]);
});

test('NaN-boxing: a single is valid only with the upper 32 bits all ones', () => {
  assert.equal(hex32(fpu.unboxF32(0xffff_ffff, one32)), '3f800000');
  assert.equal(hex32(fpu.unboxF32(0xffff_fffe, one32)), '7fc00000');
  assert.equal(hex32(fpu.unboxF32(0x3ff0_0000, 0)), '7fc00000');
  assert.equal(fpu.nanBoxHigh, 0xffff_ffff);
});

test('f64: ties, overflow, underflow and familiar results', () => {
  assert.deepEqual(add64('3ff0000000000000', '3ca0000000000000', RNE), ['3ff0000000000000', NX]);
  assert.deepEqual(add64('3ff0000000000000', '3ca0000000000000', RMM), ['3ff0000000000001', NX]);
  assert.deepEqual(add64('3fb999999999999a', '3fc999999999999a', RNE), ['3fd3333333333334', NX], '0.1 + 0.2');
  assert.deepEqual(mul64('7fefffffffffffff', '4000000000000000', RUP), ['7ff0000000000000', OF | NX]);
  assert.deepEqual(mul64('7fefffffffffffff', '4000000000000000', RTZ), ['7fefffffffffffff', OF | NX]);
  assert.deepEqual(mul64('0000000000000001', '3fe0000000000000', RNE), ['0000000000000000', UF | NX]);
  assert.deepEqual(mul64('0000000000000003', '3fe0000000000000', RNE), ['0000000000000002', UF | NX], '1.5 ulp ties to even 2');
  assert.deepEqual(mul64('0000000000000002', '3fe0000000000000', RNE), ['0000000000000001', 0]);
  assert.deepEqual(add64('7fefffffffffffff', '0000000000000001', RUP), ['7ff0000000000000', OF | NX], 'far apart, still decides RUP');
  assert.deepEqual(add64('7fefffffffffffff', '8000000000000001', RTZ), ['7feffffffffffffe', NX]);
  assert.deepEqual(dd((st) => fpu.f64Div(st, ...d('3ff0000000000000'), ...d('4008000000000000'), RNE)), ['3fd5555555555555', NX]);
  assert.deepEqual(dd((st) => fpu.f64Sqrt(st, ...d('4000000000000000'), RNE)), ['3ff6a09e667f3bcd', NX]);
  assert.deepEqual(dd((st) => fpu.f64Sqrt(st, ...d('4000000000000000'), RTZ)), ['3ff6a09e667f3bcc', NX]);
  assert.deepEqual(dd((st) => fpu.f64Div(st, ...d('8000000000000000'), ...d('0000000000000000'), RNE)), ['7ff8000000000000', NV]);
  assert.deepEqual(dd((st) => fpu.f64Div(st, ...d('8000000000000001'), ...d('0000000000000000'), RNE)), ['fff0000000000000', DZ]);
});

/** Properties where IEEE guarantees the host's result: RNE +, -, *, /, sqrt of doubles. */
test('f64 in RNE agrees with the host on random operands (IEEE guarantees the host is correctly rounded)', () => {
  const random = new Prng(15);
  const view = new DataView(new ArrayBuffer(8));
  const words = (value: number): [number, number] => {
    view.setFloat64(0, value);
    return [view.getUint32(0), view.getUint32(4)];
  };
  const bits = (value: number): string => (Number.isNaN(value) ? '7ff8000000000000' : words(value).map(hex32).join(''));
  for (let i = 0; i < 3000; i++) {
    const a = (random.float() - 0.5) * 2 ** random.int(-1080, 1030);
    const b = (random.float() - 0.5) * 2 ** random.int(-1080, 1030);
    const state = new FpuState();
    const check = (name: string, ours: (st: FpuState) => void, host: number): void => {
      ours(state);
      assert.equal(hex32(state.high) + hex32(state.low), bits(host), `${name} ${a} ${b}`);
    };
    check('add', (st) => fpu.f64Add(st, ...words(a), ...words(b), RNE), a + b);
    check('sub', (st) => fpu.f64Sub(st, ...words(a), ...words(b), RNE), a - b);
    check('mul', (st) => fpu.f64Mul(st, ...words(a), ...words(b), RNE), a * b);
    check('div', (st) => fpu.f64Div(st, ...words(a), ...words(b), RNE), a / b);
    check('sqrt', (st) => fpu.f64Sqrt(st, ...words(Math.abs(a)), RNE), Math.sqrt(Math.abs(a)));
  }
});

test('f32 in RNE agrees with the host: one operation in double, then one rounding to single, is exact', () => {
  const random = new Prng(16);
  const view = new DataView(new ArrayBuffer(4));
  const bits = (value: number): number => {
    view.setFloat32(0, value);
    return Number.isNaN(value) ? 0x7fc0_0000 : view.getUint32(0);
  };
  const single = (value: number): number => {
    view.setUint32(0, value);
    return view.getFloat32(0);
  };
  for (let i = 0; i < 3000; i++) {
    const a = random.next() & 0x7fff_ffff ? random.next() : 0;
    const b = random.next();
    if (fpu.f32Class(a) >= 1 << 8 || fpu.f32Class(b) >= 1 << 8) continue;
    const state = new FpuState();
    // 53 >= 2 * 24 + 2: rounding to double and then to single equals rounding once (IEEE, Figueroa).
    assert.equal(hex32(fpu.f32Add(state, a, b, RNE)), hex32(bits(Math.fround(single(a) + single(b)))));
    assert.equal(hex32(fpu.f32Mul(state, a, b, RNE)), hex32(bits(Math.fround(single(a) * single(b)))));
    assert.equal(hex32(fpu.f32Div(state, a, b, RNE)), hex32(bits(Math.fround(single(a) / single(b)))));
    assert.equal(hex32(fpu.f32Sqrt(state, a & 0x7fff_ffff, RNE)), hex32(bits(Math.fround(Math.sqrt(single(a & 0x7fff_ffff))))));
  }
});

/**
 * The fast paths (host.ts) against the exact core (core.ts) on operands they take, with
 * cancellation and ties made likely: the same bits and flags, or the fast path declined.
 */
test('fast paths agree with the exact core, bit for bit and flag for flag', () => {
  const random = new Prng(17);
  const view = new DataView(new ArrayBuffer(8));
  const toBits = (value: number): bigint => {
    view.setFloat64(0, value);
    return view.getBigUint64(0);
  };
  const half = (bits: bigint): [number, number] => [Number(bits >> 32n), Number(bits & 0xffff_ffffn)];
  const ordinary = (): number => {
    // Few significant bits, or runs of ones, now and then: products and sums land on ties.
    // Zeros and subnormals (doubles' and singles') too: the fast paths take some of them.
    const kind = random.int(0, 5);
    const sign = random.chance(0.5) ? -1 : 1;
    if (kind === 4) return sign * 0;
    if (kind === 5) return sign * random.int(1, 2 ** 20) * (random.chance(0.5) ? 2 ** -1074 : 2 ** -149);
    const significand = kind === 0 ? random.int(1, 255) : kind === 1 ? 2 - 2 ** -random.int(1, 52) : kind === 2 ? 1 + 2 ** -random.int(1, 52) : random.float() + 1;
    return sign * significand * 2 ** random.int(-60, 60);
  };
  let compared = 0;
  for (let i = 0; i < 20_000; i++) {
    const a = ordinary();
    const b = ordinary();
    const product = a * b;
    const c = random.chance(0.4) ? -product * (1 + (random.chance(0.5) ? 0 : random.int(-3, 3) * 2 ** -52)) : random.chance(0.2) ? -a : ordinary();
    const [aBits, bBits, cBits] = [toBits(a), toBits(b), toBits(c)];
    const negateProduct = random.chance(0.5);
    const negateAddend = random.chance(0.5);
    const exact = new FpuState();
    const expected = core.mulAdd(core.binary64, aBits, bBits, cBits, negateProduct, negateAddend, RNE, exact);
    const ours = new FpuState();
    const call = negateProduct ? (negateAddend ? fpu.f64Fnmadd : fpu.f64Fnmsub) : negateAddend ? fpu.f64Fmsub : fpu.f64Fmadd;
    call(ours, ...half(aBits), ...half(bBits), ...half(cBits), RNE);
    assert.equal(hex32(ours.high) + hex32(ours.low), expected.toString(16).padStart(16, '0'), `fma ${a} ${b} ${c} ${negateProduct} ${negateAddend}`);
    assert.equal(ours.flags, exact.flags, `fma flags ${a} ${b} ${c}`);
    // Singles: the same operands rounded to single.
    const [x, y, z] = [a, b, c].map((value) => {
      view.setFloat32(0, value);
      return view.getUint32(0);
    }) as [number, number, number];
    const exact32 = new FpuState();
    const expected32 = core.mulAdd(core.binary32, BigInt(x), BigInt(y), BigInt(z), negateProduct, negateAddend, RNE, exact32);
    const ours32 = new FpuState();
    const call32 = negateProduct ? (negateAddend ? fpu.f32Fnmadd : fpu.f32Fnmsub) : negateAddend ? fpu.f32Fmsub : fpu.f32Fmadd;
    assert.equal(hex32(call32(ours32, x, y, z, RNE)), hex32(Number(expected32)), `fma.s ${x} ${y} ${z}`);
    assert.equal(ours32.flags, exact32.flags);
    const rm = random.int(0, 4); // the fast paths take RNE, RTZ, RDN and RUP
    for (const [name, ours64, core64] of [
      ['add', fpu.f64Add, core.add], ['sub', fpu.f64Sub, core.sub], ['mul', fpu.f64Mul, core.mul], ['div', fpu.f64Div, core.div],
    ] as const) {
      const st = new FpuState();
      ours64(st, ...half(aBits), ...half(cBits), rm);
      const ex = new FpuState();
      assert.equal(hex32(st.high) + hex32(st.low), core64(core.binary64, aBits, cBits, rm, ex).toString(16).padStart(16, '0'), `${name} ${a} ${c} rm ${rm}`);
      assert.equal(st.flags, ex.flags, `${name} flags ${a} ${c}`);
    }
    for (const [name, ours32, core32] of [
      ['add', fpu.f32Add, core.add], ['sub', fpu.f32Sub, core.sub], ['mul', fpu.f32Mul, core.mul], ['div', fpu.f32Div, core.div],
    ] as const) {
      const st = new FpuState();
      const ex = new FpuState();
      assert.equal(hex32(ours32(st, x, z, rm)), hex32(Number(core32(core.binary32, BigInt(x), BigInt(z), rm, ex))), `${name}.s ${x} ${z} rm ${rm}`);
      assert.equal(st.flags, ex.flags, `${name}.s flags ${x} ${z}`);
    }
    const st = new FpuState();
    const ex = new FpuState();
    fpu.f64Sqrt(st, ...half(aBits & ~(1n << 63n)), rm);
    assert.equal(hex32(st.high) + hex32(st.low), core.sqrt(core.binary64, aBits & ~(1n << 63n), rm, ex).toString(16).padStart(16, '0'), `sqrt ${a} rm ${rm}`);
    assert.equal(st.flags, ex.flags);
    compared++;
  }
  assert.equal(compared, 20_000);
});
