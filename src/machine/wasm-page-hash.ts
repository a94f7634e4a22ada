/**
 * `wordsHash` (state-digest.ts) of RAM that lives in a WebAssembly memory (the translation
 * tier's arena, wasm-arena.ts), in WebAssembly with SIMD: the hash's four lanes take every
 * fourth word, so one `i32x4` vector holds all four and each round is three vector operations
 * on 16 bytes. The result is the same 64-bit value as the JavaScript function's, bit for bit
 * (state-digest.test.ts compares them): replicas on different tiers compare each other's digests.
 *
 * Why: a primary's digest hashes the pages written since the last one (some 700 of them every
 * 80 M instructions of Linux computing), and they come cold from memory. Here the JavaScript
 * loop took about 1.8 µs a page, this about 0.9 (docs/BENCHMARKS.md).
 */
import { unsignedLeb, signedLeb, wasmName, wasmSection, wasmVector, W } from './cpu/translator-wasm.js';
import { WebAssembly, type WasmArena } from './cpu/wasm-arena.js';

/** Hashes `count` words (a multiple of 4, at least 4) from byte `offset` of the arena, with `length` mixed in. */
export type ArenaWordsHash = (offset: number, count: number, length: number) => bigint;

const v128 = 0x7b;
const simd = (op: number): number[] => [0xfd, ...unsignedLeb(op)];
/** SIMD opcodes (the fixed-width SIMD proposal, in Node 20's V8). */
const S = {
  load: 0x00, const: 0x0c, splat: 0x11, extractLane: 0x1b, replaceLane: 0x1c, or: 0x50, shl: 0xab, shrU: 0xad, add: 0xae, mul: 0xb5,
} as const;
const i32 = (value: number): number[] => [W.const, ...signedLeb(value | 0)];
const u32Bytes = (value: number): number[] => [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];

// The constants of wordsHash (state-digest.ts).
const prime1 = 0x9e37_79b1;
const prime2 = 0x85eb_ca77;
const seeds = [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344];
const highSeed = 0x1656_67b1;

function moduleBytes(): Uint8Array {
  // mix32(h): MurmurHash3's finalizer, a function of its own.
  const mix = [
    0, // no locals
    W.localGet, 0, W.localGet, 0, ...i32(16), W.shrU, W.xor, ...i32(0x85eb_ca6b), W.mul, W.localSet, 0,
    W.localGet, 0, W.localGet, 0, ...i32(13), W.shrU, W.xor, ...i32(0xc2b2_ae35), W.mul, W.localSet, 0,
    W.localGet, 0, W.localGet, 0, ...i32(16), W.shrU, W.xor,
    W.end,
  ];
  // hash(offset, end, length) -> i64. Locals: lanes 3, p1 4, p2 5 (v128); a 6, b 7, c 8, d 9 (i32).
  const [offset, end, length, lanes, p1, p2, a, b, c, d] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const mixCall = [W.call, 0];
  const hash = [
    2, 3, v128, 4, W.i32,
    ...simd(S.const), ...seeds.flatMap(u32Bytes), ...i32(seeds[0]!), W.localGet, length, W.xor, ...simd(S.replaceLane), 0, W.localSet, lanes,
    ...i32(prime1), ...simd(S.splat), W.localSet, p1,
    ...i32(prime2), ...simd(S.splat), W.localSet, p2,
    W.loop, W.void,
    // lanes = rotl(lanes + words * prime2, 13) * prime1, four lanes at once
    W.localGet, lanes, W.localGet, offset, ...simd(S.load), 4, 0, W.localGet, p2, ...simd(S.mul), ...simd(S.add), W.localSet, lanes,
    W.localGet, lanes, ...i32(13), ...simd(S.shl), W.localGet, lanes, ...i32(19), ...simd(S.shrU), ...simd(S.or), W.localGet, p1, ...simd(S.mul), W.localSet, lanes,
    W.localGet, offset, ...i32(16), W.add, W.localTee, offset, W.localGet, end, W.ltU, W.brIf, 0,
    W.end,
    ...[a, b, c, d].flatMap((local, lane) => [W.localGet, lanes, ...simd(S.extractLane), lane, W.localSet, local]),
    // high: mix32(d ^ mix32(c ^ mix32(b ^ mix32(a ^ seed)))), then low: mix32(a + mix32(b + mix32(c + mix32(d))))
    W.localGet, d, W.localGet, c, W.localGet, b, W.localGet, a, ...i32(highSeed), W.xor, ...mixCall, W.xor, ...mixCall, W.xor, ...mixCall, W.xor, ...mixCall,
    W.extendI32U, W.i64Const, 32, 0x86 /* i64.shl */,
    W.localGet, a, W.localGet, b, W.localGet, c, W.localGet, d, ...mixCall, W.add, ...mixCall, W.add, ...mixCall, W.add, ...mixCall,
    W.extendI32U, 0x84 /* i64.or */,
    W.end,
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...wasmSection(1, wasmVector([[0x60, 1, W.i32, 1, W.i32], [0x60, 3, W.i32, W.i32, W.i32, 1, W.i64]])),
    ...wasmSection(2, wasmVector([[...wasmName('m'), ...wasmName('memory'), 0x02, 0x00, 0x00]])),
    ...wasmSection(3, wasmVector([[0], [1]])),
    ...wasmSection(7, wasmVector([[...wasmName('hash'), 0x00, 1]])),
    ...wasmSection(10, wasmVector([[...unsignedLeb(mix.length), ...mix], [...unsignedLeb(hash.length), ...hash]])),
  ]);
}

let bytes: Uint8Array | undefined;
const hashers = new WeakMap<WasmArena, ArenaWordsHash>();

/** The hash for RAM in `arena`, or undefined where this WebAssembly has no SIMD (the JavaScript loop then). */
export function arenaWordsHash(arena: WasmArena): ArenaWordsHash | undefined {
  const known = hashers.get(arena);
  if (known !== undefined) return known;
  bytes ??= moduleBytes();
  if (!WebAssembly.validate(bytes)) return undefined;
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { m: { memory: arena.memory } });
  const hash = exports.hash as (offset: number, end: number, length: number) => bigint;
  const hasher: ArenaWordsHash = (offset, count, length) => BigInt.asUintN(64, hash(offset, offset + count * 4, length));
  hashers.set(arena, hasher);
  return hasher;
}
