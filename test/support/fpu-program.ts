/**
 * The differential test of the FPU library against QEMU (test/fpu-qemu.test.ts): a seed makes
 * operand vectors biased to the edges (zeros, subnormals, infinities, quiet and signalling
 * NaNs, ties, near overflow and underflow, cancellation), and a bare-metal RV32IMAFD program
 * that runs every operation of the F and D extensions on each vector under every rounding mode,
 * static (with frm set to another mode) and dynamic (frm), clears fflags before each and
 * prints the result's bits and the flags, one line each. `expectedLines` computes the same
 * lines with the library; `describeLine` says which operation, operands and mode a line is.
 */
import { Prng } from '../../src/simulator/prng.js';
import * as fpu from '../../src/machine/cpu/fpu/index.js';

type Source = 'f32' | 'f64' | 'x' | 'f32wide';
type Result = 'f32' | 'f64' | 'x';

/** One instruction under test. `compute` gets each operand as [high, low] words. */
export interface FpuOp {
  readonly mnemonic: string;
  readonly sources: readonly Source[];
  readonly result: Result;
  /** Takes a rounding mode (static or dyn). */
  readonly rounded: boolean;
  readonly compute: (state: fpu.FpuState, operands: readonly (readonly [number, number])[], rounding: number) => void;
}

// An op's result goes into state.high/low (f64), state.low (f32, x).
const s = (f: (state: fpu.FpuState, o: readonly (readonly [number, number])[], rm: number) => number) =>
  (state: fpu.FpuState, o: readonly (readonly [number, number])[], rm: number): void => {
    state.low = f(state, o, rm) >>> 0;
  };
const a32 = (o: readonly (readonly [number, number])[], i: number): number => o[i]![1];
const h = (o: readonly (readonly [number, number])[], i: number): number => o[i]![0];
const l = (o: readonly (readonly [number, number])[], i: number): number => o[i]![1];

function op(mnemonic: string, sources: Source[], result: Result, rounded: boolean, compute: FpuOp['compute']): FpuOp {
  return { mnemonic, sources, result, rounded, compute };
}

export const fpuOps: readonly FpuOp[] = [
  op('fadd.s', ['f32', 'f32'], 'f32', true, s((st, o, rm) => fpu.f32Add(st, a32(o, 0), a32(o, 1), rm))),
  op('fsub.s', ['f32', 'f32'], 'f32', true, s((st, o, rm) => fpu.f32Sub(st, a32(o, 0), a32(o, 1), rm))),
  op('fmul.s', ['f32', 'f32'], 'f32', true, s((st, o, rm) => fpu.f32Mul(st, a32(o, 0), a32(o, 1), rm))),
  op('fdiv.s', ['f32', 'f32'], 'f32', true, s((st, o, rm) => fpu.f32Div(st, a32(o, 0), a32(o, 1), rm))),
  op('fsqrt.s', ['f32'], 'f32', true, s((st, o, rm) => fpu.f32Sqrt(st, a32(o, 0), rm))),
  op('fmadd.s', ['f32', 'f32', 'f32'], 'f32', true, s((st, o, rm) => fpu.f32Fmadd(st, a32(o, 0), a32(o, 1), a32(o, 2), rm))),
  op('fmsub.s', ['f32', 'f32', 'f32'], 'f32', true, s((st, o, rm) => fpu.f32Fmsub(st, a32(o, 0), a32(o, 1), a32(o, 2), rm))),
  op('fnmsub.s', ['f32', 'f32', 'f32'], 'f32', true, s((st, o, rm) => fpu.f32Fnmsub(st, a32(o, 0), a32(o, 1), a32(o, 2), rm))),
  op('fnmadd.s', ['f32', 'f32', 'f32'], 'f32', true, s((st, o, rm) => fpu.f32Fnmadd(st, a32(o, 0), a32(o, 1), a32(o, 2), rm))),
  op('fmin.s', ['f32', 'f32'], 'f32', false, s((st, o) => fpu.f32Min(st, a32(o, 0), a32(o, 1)))),
  op('fmax.s', ['f32', 'f32'], 'f32', false, s((st, o) => fpu.f32Max(st, a32(o, 0), a32(o, 1)))),
  op('feq.s', ['f32', 'f32'], 'x', false, s((st, o) => fpu.f32Eq(st, a32(o, 0), a32(o, 1)))),
  op('flt.s', ['f32', 'f32'], 'x', false, s((st, o) => fpu.f32Lt(st, a32(o, 0), a32(o, 1)))),
  op('fle.s', ['f32', 'f32'], 'x', false, s((st, o) => fpu.f32Le(st, a32(o, 0), a32(o, 1)))),
  op('fclass.s', ['f32'], 'x', false, s((_st, o) => fpu.f32Class(a32(o, 0)))),
  op('fsgnj.s', ['f32', 'f32'], 'f32', false, s((_st, o) => fpu.f32SignInject(a32(o, 0), a32(o, 1)))),
  op('fsgnjn.s', ['f32', 'f32'], 'f32', false, s((_st, o) => fpu.f32SignInjectNegated(a32(o, 0), a32(o, 1)))),
  op('fsgnjx.s', ['f32', 'f32'], 'f32', false, s((_st, o) => fpu.f32SignInjectXor(a32(o, 0), a32(o, 1)))),
  op('fcvt.w.s', ['f32'], 'x', true, s((st, o, rm) => fpu.f32ToI32(st, a32(o, 0), rm))),
  op('fcvt.wu.s', ['f32'], 'x', true, s((st, o, rm) => fpu.f32ToU32(st, a32(o, 0), rm))),
  op('fcvt.s.w', ['x'], 'f32', true, s((st, o, rm) => fpu.i32ToF32(st, l(o, 0), rm))),
  op('fcvt.s.wu', ['x'], 'f32', true, s((st, o, rm) => fpu.u32ToF32(st, l(o, 0), rm))),
  // Singles read from registers loaded as doubles: NaN-boxed or not (12.2).
  op('fsgnj.s', ['f32wide', 'f32wide'], 'f32', false,
    s((_st, o) => fpu.f32SignInject(fpu.unboxF32(h(o, 0), l(o, 0)), fpu.unboxF32(h(o, 1), l(o, 1))))),
  op('fadd.s', ['f32wide', 'f32wide'], 'f32', true,
    s((st, o, rm) => fpu.f32Add(st, fpu.unboxF32(h(o, 0), l(o, 0)), fpu.unboxF32(h(o, 1), l(o, 1)), rm))),

  op('fadd.d', ['f64', 'f64'], 'f64', true, (st, o, rm) => fpu.f64Add(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1), rm)),
  op('fsub.d', ['f64', 'f64'], 'f64', true, (st, o, rm) => fpu.f64Sub(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1), rm)),
  op('fmul.d', ['f64', 'f64'], 'f64', true, (st, o, rm) => fpu.f64Mul(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1), rm)),
  op('fdiv.d', ['f64', 'f64'], 'f64', true, (st, o, rm) => fpu.f64Div(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1), rm)),
  op('fsqrt.d', ['f64'], 'f64', true, (st, o, rm) => fpu.f64Sqrt(st, h(o, 0), l(o, 0), rm)),
  op('fmadd.d', ['f64', 'f64', 'f64'], 'f64', true, (st, o, rm) => fpu.f64Fmadd(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1), h(o, 2), l(o, 2), rm)),
  op('fmsub.d', ['f64', 'f64', 'f64'], 'f64', true, (st, o, rm) => fpu.f64Fmsub(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1), h(o, 2), l(o, 2), rm)),
  op('fnmsub.d', ['f64', 'f64', 'f64'], 'f64', true, (st, o, rm) => fpu.f64Fnmsub(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1), h(o, 2), l(o, 2), rm)),
  op('fnmadd.d', ['f64', 'f64', 'f64'], 'f64', true, (st, o, rm) => fpu.f64Fnmadd(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1), h(o, 2), l(o, 2), rm)),
  op('fmin.d', ['f64', 'f64'], 'f64', false, (st, o) => fpu.f64Min(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1))),
  op('fmax.d', ['f64', 'f64'], 'f64', false, (st, o) => fpu.f64Max(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1))),
  op('feq.d', ['f64', 'f64'], 'x', false, s((st, o) => fpu.f64Eq(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1)))),
  op('flt.d', ['f64', 'f64'], 'x', false, s((st, o) => fpu.f64Lt(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1)))),
  op('fle.d', ['f64', 'f64'], 'x', false, s((st, o) => fpu.f64Le(st, h(o, 0), l(o, 0), h(o, 1), l(o, 1)))),
  op('fclass.d', ['f64'], 'x', false, s((_st, o) => fpu.f64Class(h(o, 0), l(o, 0)))),
  op('fsgnj.d', ['f64', 'f64'], 'f64', false, (st, o) => { st.high = fpu.f64SignInjectHigh(h(o, 0), h(o, 1)); st.low = l(o, 0); }),
  op('fsgnjn.d', ['f64', 'f64'], 'f64', false, (st, o) => { st.high = fpu.f64SignInjectNegatedHigh(h(o, 0), h(o, 1)); st.low = l(o, 0); }),
  op('fsgnjx.d', ['f64', 'f64'], 'f64', false, (st, o) => { st.high = fpu.f64SignInjectXorHigh(h(o, 0), h(o, 1)); st.low = l(o, 0); }),
  op('fcvt.w.d', ['f64'], 'x', true, s((st, o, rm) => fpu.f64ToI32(st, h(o, 0), l(o, 0), rm))),
  op('fcvt.wu.d', ['f64'], 'x', true, s((st, o, rm) => fpu.f64ToU32(st, h(o, 0), l(o, 0), rm))),
  op('fcvt.d.w', ['x'], 'f64', false, (st, o) => fpu.i32ToF64(st, l(o, 0))),
  op('fcvt.d.wu', ['x'], 'f64', false, (st, o) => fpu.u32ToF64(st, l(o, 0))),
  op('fcvt.s.d', ['f64'], 'f32', true, s((st, o, rm) => fpu.f64ToF32(st, h(o, 0), l(o, 0), rm))),
  op('fcvt.d.s', ['f32'], 'f64', false, (st, o) => fpu.f32ToF64(st, a32(o, 0))),
];

/** How an instruction gets its rounding mode: a static rm (frm set to another mode) or dyn. */
export interface RoundingVariant {
  readonly staticMode: number | undefined;
  readonly frm: number;
  /** The mode in effect. */
  readonly mode: number;
}

const modeNames = ['rne', 'rtz', 'rdn', 'rup', 'rmm'] as const;

export function roundingVariants(op: FpuOp): RoundingVariant[] {
  if (!op.rounded) return [{ staticMode: undefined, frm: 0, mode: 0 }];
  const variants: RoundingVariant[] = [];
  for (let mode = 0; mode < 5; mode++) variants.push({ staticMode: mode, frm: (mode + 2) % 5, mode });
  for (let mode = 0; mode < 5; mode++) variants.push({ staticMode: undefined, frm: mode, mode });
  return variants;
}

export interface FpuProgram {
  readonly seed: number;
  readonly source: string;
  /** Per op, its operand vectors: each operand as [high, low]. */
  readonly vectors: readonly (readonly (readonly [number, number])[][])[];
}

// ---------------------------------------------------------------- operand generation

interface Shape {
  readonly exponentBits: number;
  readonly fractionBits: number;
}
const single: Shape = { exponentBits: 8, fractionBits: 23 };
const double: Shape = { exponentBits: 11, fractionBits: 52 };

function random64(random: Prng): bigint {
  return (BigInt(random.next()) << 32n) | BigInt(random.next());
}

function pack(shape: Shape, negative: boolean, field: number, fraction: bigint): bigint {
  const fractionMask = (1n << BigInt(shape.fractionBits)) - 1n;
  return ((negative ? 1n : 0n) << BigInt(shape.exponentBits + shape.fractionBits)) |
    (BigInt(field) << BigInt(shape.fractionBits)) | (fraction & fractionMask);
}

/** A fraction with few bits set at the top (exact results, ties) or random. */
function fraction(random: Prng, shape: Shape): bigint {
  const bits = BigInt(shape.fractionBits);
  switch (random.int(0, 5)) {
    case 0: return 0n;
    case 1: return (1n << bits) - 1n;
    case 2: return BigInt(random.int(0, 15)) << (bits - 4n);
    case 3: return (BigInt(random.int(0, 255)) << (bits - 8n)) | 1n;
    case 4: return random64(random) & ((1n << bits) - 1n) & ~((1n << BigInt(random.int(0, shape.fractionBits))) - 1n);
    default: return random64(random);
  }
}

/** A float's bits, biased to the edges. */
function edgeFloat(random: Prng, shape: Shape): bigint {
  const negative = random.chance(0.5);
  const maxField = 2 ** shape.exponentBits - 1;
  const bias = 2 ** (shape.exponentBits - 1) - 1;
  const quiet = 1n << BigInt(shape.fractionBits - 1);
  switch (random.int(0, 13)) {
    case 0: return pack(shape, negative, 0, 0n);
    case 1: return pack(shape, negative, maxField, 0n);
    case 2: return pack(shape, negative, maxField, quiet | (random.chance(0.5) ? 0n : random64(random)));
    case 3: return pack(shape, negative, maxField, (random64(random) & (quiet - 1n)) | BigInt(random.int(1, 3)));
    case 4: return pack(shape, negative, 0, random.chance(0.3) ? BigInt(random.int(1, 3)) : fraction(random, shape) | 1n);
    case 5: return pack(shape, negative, random.pick([1, 1, 2, maxField - 1]), fraction(random, shape));
    case 6: case 7: case 8: return pack(shape, negative, bias + random.int(-6, 6), fraction(random, shape));
    case 9: return pack(shape, negative, maxField - random.int(1, 4), fraction(random, shape));
    case 10: return pack(shape, negative, random.int(1, shape.fractionBits + 4), fraction(random, shape));
    // Around the 32-bit integers' edges: 2^23..2^33, halves and such.
    case 11: return pack(shape, negative, bias + random.pick([-2, -1, 0, 1, 22, 23, 24, 30, 31, 31, 32, 32, 33, 52, 53]), fraction(random, shape));
    case 12: return pack(shape, negative, random.int(0, maxField), fraction(random, shape));
    default: return random64(random) & ((1n << BigInt(1 + shape.exponentBits + shape.fractionBits)) - 1n);
  }
}

/** b from a: the same exponent, a neighbour, the negation, exponents a few apart. */
function relatedFloat(random: Prng, shape: Shape, a: bigint): bigint {
  const width = BigInt(shape.exponentBits + shape.fractionBits);
  const sign = 1n << width;
  const fractionMask = (1n << BigInt(shape.fractionBits)) - 1n;
  switch (random.int(0, 5)) {
    case 0: return a ^ sign;
    case 1: return (a + BigInt(random.int(-2, 2))) & ((sign << 1n) - 1n);
    case 2: return (a & ~fractionMask) | (fraction(random, shape) & fractionMask) | (random.chance(0.5) ? sign : 0n);
    case 3: {
      const shift = BigInt(random.int(-(shape.fractionBits + 3), shape.fractionBits + 3)) << BigInt(shape.fractionBits);
      const moved = (a & ~sign) + shift;
      return moved > 0n && moved < (sign - 1n) ? moved | (random.chance(0.5) ? sign : 0n) : a;
    }
    case 4: return a;
    default: return edgeFloat(random, shape);
  }
}

const view = new DataView(new ArrayBuffer(8));
function doubleOf(bits: bigint, shape: Shape): number {
  if (shape === single) {
    view.setUint32(0, Number(bits));
    return view.getFloat32(0);
  }
  view.setBigUint64(0, bits);
  return view.getFloat64(0);
}
function bitsOf(value: number, shape: Shape): bigint {
  if (shape === single) {
    view.setFloat32(0, value);
    return BigInt(view.getUint32(0));
  }
  view.setFloat64(0, value);
  return view.getBigUint64(0);
}

/** An addend for a * b: often near -(a * b) for cancellation (host arithmetic: test data only). */
function addend(random: Prng, shape: Shape, a: bigint, b: bigint): bigint {
  if (random.chance(0.4)) {
    const product = doubleOf(a, shape) * doubleOf(b, shape);
    if (Number.isFinite(product)) {
      const near = bitsOf(shape === single ? Math.fround(product) : product, shape);
      return relatedFloat(random, shape, random.chance(0.7) ? near ^ (1n << BigInt(shape.exponentBits + shape.fractionBits)) : near);
    }
  }
  return random.chance(0.3) ? relatedFloat(random, shape, a) : edgeFloat(random, shape);
}

const edgeIntegers = [
  0, 1, -1, 2, 3, 0x7fff_ffff, -0x8000_0000, 0xffff_ffff, 0x100_0001, 0x100_0003, 0x100_0002, 0x7fff_ffc0,
  0x7fff_ff80, 0x7fff_ffbf, 0xffff_ff80, 0xffff_ff7f, -0x100_0001, 0x20_0000_1, 0x1ff_ffff,
];

function edgeInteger(random: Prng): number {
  switch (random.int(0, 3)) {
    case 0: return random.pick(edgeIntegers) >>> 0;
    case 1: return ((random.int(1, 255) << random.int(0, 24)) | (random.chance(0.5) ? 1 : 0)) >>> 0;
    case 2: return (random.next() >> random.int(0, 31)) >>> 0;
    default: return random.next();
  }
}

function words(bits: bigint): [number, number] {
  return [Number(bits >> 32n), Number(bits & 0xffff_ffffn)];
}

function vectorFor(random: Prng, op: FpuOp): [number, number][] {
  const kind = op.sources[0]!;
  if (kind === 'x') return [[0, edgeInteger(random)]];
  if (kind === 'f32wide') {
    // NaN-boxed mostly; otherwise a double whose upper half is not all ones.
    const wide = (): [number, number] => {
      const low = Number(edgeFloat(random, single));
      return random.chance(0.7) ? [0xffff_ffff, low] : [random.chance(0.5) ? 0xffff_fffe : random.next(), low];
    };
    return [wide(), wide()];
  }
  const shape = kind === 'f32' ? single : double;
  const a = edgeFloat(random, shape);
  const b = random.chance(0.5) ? relatedFloat(random, shape, a) : edgeFloat(random, shape);
  const c = addend(random, shape, a, b);
  // fsqrt: mostly positive operands.
  const first = op.mnemonic.startsWith('fsqrt') && random.chance(0.8) ? a & ~(1n << BigInt(shape.exponentBits + shape.fractionBits)) : a;
  const operands = [first, b, c].slice(0, op.sources.length);
  // Singles live NaN-boxed in memory's upper half, which flw ignores.
  return operands.map((bits) => (shape === single ? [0xffff_ffff, Number(bits)] : words(bits)));
}

// ---------------------------------------------------------------- the program

const hex = (value: number): string => `0x${(value >>> 0).toString(16)}`;

/** The harness: x registers a0.. a2 hold operands for x sources; results printed in hex. */
const harness = `
# puthex: prints a0 as 8 hex digits; clobbers t0-t3.
puthex:
  li t1, 0x10000000
  li t2, 28
1: srl t0, a0, t2
  andi t0, t0, 15
  addi t0, t0, 48
  li t3, 58
  blt t0, t3, 2f
  addi t0, t0, 39
2: sb t0, 0(t1)
  addi t2, t2, -4
  bgez t2, 1b
  ret

# A trap is a bug of the test: say so and fail.
trap:
  li t1, 0x10000000
  li t0, 33
  sb t0, 0(t1)
  csrr a0, mcause
  call puthex
  li t1, 0x100000
  li t0, 0x13333
  sw t0, 0(t1)
3: j 3b
`;

/** The program for a seed, with `vectorsPerOp` operand vectors for every op. */
export function generateFpuProgram(seed: number, vectorsPerOp: number): FpuProgram {
  const random = new Prng(seed);
  const vectors = fpuOps.map((op) => Array.from({ length: vectorsPerOp }, () => vectorFor(random, op)));
  const text: string[] = [
    '.section .text.init, "ax"',
    '.globl _start',
    '_start:',
    '  la t0, trap',
    '  csrw mtvec, t0',
    '  li t0, 0x6000', // mstatus.FS = Dirty: the FPU on
    '  csrs mstatus, t0',
    '  li sp, 0x80ff0000',
  ];
  const data: string[] = ['.section .data', '.balign 8'];
  fpuOps.forEach((op, index) => {
    data.push(`vectors${index}:`);
    for (const vector of vectors[index]!) {
      for (let slot = 0; slot < 3; slot++) {
        const [high, low] = vector[slot] ?? [0, 0];
        data.push(`  .word ${hex(low)}, ${hex(high)}`);
      }
    }
    roundingVariants(op).forEach((variant, variantIndex) => {
      const label = `L${index}_${variantIndex}`;
      text.push(`# ${op.mnemonic} ${variant.staticMode === undefined ? 'dyn' : modeNames[variant.staticMode]} frm=${variant.frm}`);
      text.push(`  csrwi frm, ${variant.frm}`, `  la s0, vectors${index}`, `  li s1, ${vectorsPerOp}`, `${label}:`);
      op.sources.forEach((kind, slot) => {
        if (kind === 'x') text.push(`  lw a${slot + 1}, ${slot * 8}(s0)`);
        else if (kind === 'f32') text.push(`  flw fa${slot}, ${slot * 8}(s0)`);
        else text.push(`  fld fa${slot}, ${slot * 8}(s0)`);
      });
      const destination = op.result === 'x' ? 'a0' : 'fa3';
      const sources = op.sources.map((kind, slot) => (kind === 'x' ? `a${slot + 1}` : `fa${slot}`));
      const rm = op.rounded ? [variant.staticMode === undefined ? 'dyn' : modeNames[variant.staticMode]!] : [];
      text.push('  csrwi fflags, 0', `  ${op.mnemonic} ${[destination, ...sources, ...rm].join(', ')}`, '  csrr s2, fflags');
      if (op.result === 'f32') text.push('  fmv.x.w a0, fa3', '  call puthex');
      else if (op.result === 'f64') text.push('  fsd fa3, 0(sp)', '  lw a0, 4(sp)', '  call puthex', '  lw a0, 0(sp)', '  call puthex');
      else text.push('  call puthex');
      text.push(
        '  li t1, 0x10000000', '  li t0, 32', '  sb t0, 0(t1)',
        '  mv a0, s2', '  call puthex',
        '  li t1, 0x10000000', '  li t0, 10', '  sb t0, 0(t1)',
        '  addi s0, s0, 24', '  addi s1, s1, -1', `  bnez s1, ${label}`,
      );
    });
  });
  text.push(
    // Wait until the UART has sent everything (LSR.TEMT), then power off.
    '  li t1, 0x10000000',
    '4: lbu t0, 5(t1)',
    '  andi t0, t0, 0x40',
    '  beqz t0, 4b',
    '  li t1, 0x100000',
    '  li t0, 0x5555',
    '  sw t0, 0(t1)',
    '5: j 5b',
  );
  return { seed, source: [...text, harness, ...data].join('\n') + '\n', vectors };
}

/** One expected output line and what it is, in program order. */
export interface ExpectedLine {
  readonly text: string;
  readonly op: FpuOp;
  readonly variant: RoundingVariant;
  readonly operands: readonly (readonly [number, number])[];
}

const hex8 = (value: number): string => (value >>> 0).toString(16).padStart(8, '0');

export function expectedLines(program: FpuProgram): ExpectedLine[] {
  const lines: ExpectedLine[] = [];
  const state = new fpu.FpuState();
  fpuOps.forEach((op, index) => {
    for (const variant of roundingVariants(op)) {
      for (const operands of program.vectors[index]!) {
        state.flags = 0;
        state.high = 0;
        state.low = 0;
        op.compute(state, operands, variant.mode);
        const value = op.result === 'f64' ? hex8(state.high) + hex8(state.low) : hex8(state.low);
        lines.push({ text: `${value} ${hex8(state.flags)}`, op, variant, operands });
      }
    }
  });
  return lines;
}

export function describeLine(line: ExpectedLine): string {
  const mode = modeNames[line.variant.mode]!;
  const how = line.op.rounded ? (line.variant.staticMode === undefined ? ` dyn (frm=${mode})` : ` static ${mode}`) : '';
  const operands = line.operands.slice(0, line.op.sources.length).map(([high, low], slot) => {
    const kind = line.op.sources[slot]!;
    return kind === 'f64' || kind === 'f32wide' ? `0x${hex8(high)}${hex8(low)}` : `0x${hex8(low)}`;
  });
  return `${line.op.mnemonic}${how} (${operands.join(', ')})`;
}
