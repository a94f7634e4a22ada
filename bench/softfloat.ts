/**
 * `node dist/bench/softfloat.js`: operations per second of the FPU library
 * (src/machine/cpu/fpu/) on ordinary operands (normal numbers, as a numeric guest mostly has)
 * and on edge operands (subnormals, NaNs, infinities, huge exponent gaps), beside the host's
 * own double arithmetic as a reference for what "native" costs in this loop.
 *
 * Figures are wall-clock on a shared machine: compare them with each other, not across runs.
 */
import * as fpu from '../src/machine/cpu/fpu/index.js';
import { Prng } from '../src/simulator/prng.js';

const operandCount = 1024; // a power of two: the loops index with a mask
const durationMs = Number(process.env['BENCH_MS'] ?? 300);

const view = new DataView(new ArrayBuffer(8));
function doubleWords(value: number): [number, number] {
  view.setFloat64(0, value);
  return [view.getUint32(0), view.getUint32(4)];
}
function singleBits(value: number): number {
  view.setFloat32(0, value);
  return view.getUint32(0);
}

const random = new Prng(1);
const ordinary = Array.from({ length: operandCount }, () => (random.float() - 0.5) * 2 ** random.int(-20, 20));
const edges = [0, -0, Infinity, -Infinity, NaN, 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, 1e-310, 1e300, -1e-300, 3];
const edgeValues = Array.from({ length: operandCount }, (_, index) => (index % 3 === 0 ? edges[index % edges.length]! : ordinary[index]!));

function tables(values: number[]): { singles: Uint32Array; highs: Uint32Array; lows: Uint32Array } {
  const singles = new Uint32Array(values.map(singleBits));
  const highs = new Uint32Array(operandCount);
  const lows = new Uint32Array(operandCount);
  values.forEach((value, index) => {
    [highs[index], lows[index]] = doubleWords(value);
  });
  return { singles, highs, lows };
}

type Loop = (count: number) => number;

function measure(loop: Loop): number {
  loop(2000); // warm up
  let count = 1000;
  let total = 0;
  let elapsedMs = 0;
  while (elapsedMs < durationMs) {
    const start = process.hrtime.bigint();
    loop(count);
    elapsedMs += Number(process.hrtime.bigint() - start) / 1e6;
    total += count;
    count *= 2;
  }
  return total / (elapsedMs / 1000);
}

function loops(name: string, values: number[]): [string, Loop][] {
  const { singles, highs, lows } = tables(values);
  const state = new fpu.FpuState();
  const mask = operandCount - 1;
  const binary32 = (f: (s: fpu.FpuState, a: number, b: number, rm: number) => number): Loop => (count) => {
    let sink = 0;
    for (let i = 0; i < count; i++) sink ^= f(state, singles[i & mask]!, singles[(i + 1) & mask]!, 0);
    return sink;
  };
  const binary64 = (f: (s: fpu.FpuState, ah: number, al: number, bh: number, bl: number, rm: number) => void): Loop => (count) => {
    let sink = 0;
    for (let i = 0; i < count; i++) {
      f(state, highs[i & mask]!, lows[i & mask]!, highs[(i + 1) & mask]!, lows[(i + 1) & mask]!, 0);
      sink ^= state.low;
    }
    return sink;
  };
  return [
    [`${name} fadd.s`, binary32(fpu.f32Add)],
    [`${name} fmul.s`, binary32(fpu.f32Mul)],
    [`${name} fdiv.s`, binary32(fpu.f32Div)],
    [`${name} fsqrt.s`, binary32((s, a, _b, rm) => fpu.f32Sqrt(s, a & 0x7fff_ffff, rm))], // of |a|: roots of negatives are NaN
    [`${name} fmadd.s`, binary32((s, a, b, rm) => fpu.f32Fmadd(s, a, b, a, rm))],
    [`${name} fadd.d`, binary64(fpu.f64Add)],
    [`${name} fmul.d`, binary64(fpu.f64Mul)],
    [`${name} fdiv.d`, binary64(fpu.f64Div)],
    [`${name} fsqrt.d`, binary64((s, ah, al, _bh, _bl, rm) => fpu.f64Sqrt(s, ah & 0x7fff_ffff, al, rm))],
    [`${name} fmadd.d`, binary64((s, ah, al, bh, bl, rm) => fpu.f64Fmadd(s, ah, al, bh, bl, ah, al, rm))],
    [`${name} flt.d`, binary64((s, ah, al, bh, bl) => { s.low = fpu.f64Lt(s, ah, al, bh, bl); })],
    [`${name} fcvt.w.d`, binary64((s, ah, al, _bh, _bl, rm) => { s.low = fpu.f64ToI32(s, ah, al, rm); })],
  ];
}

const host = new Float64Array(ordinary);
const rows: [string, Loop][] = [
  ['host double a + b (reference)', (count) => {
    let sink = 0;
    for (let i = 0; i < count; i++) sink += host[i & (operandCount - 1)]! + host[(i + 1) & (operandCount - 1)]!;
    return sink;
  }],
  ...loops('ordinary', ordinary),
  ...loops('edge', edgeValues),
];

console.log('operation'.padEnd(34), 'Mops/s');
for (const [name, loop] of rows) console.log(name.padEnd(34), (measure(loop) / 1e6).toFixed(2).padStart(8));
