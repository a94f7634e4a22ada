/**
 * The translation tier's JavaScript blocks against WebAssembly for the same blocks (issue 13
 * asks for a prototype of each, measured): `node dist/bench/wasm-prototype.js`. Two hot loops of
 * cpubench, each one block that loops inside its function: the matrix multiply's inner loop
 * (two loads, a multiply; 7 instructions) and the bit-wise CRC's (ALU only; 7 instructions).
 *
 * JavaScript: the tier's own compiled block (translator.ts) on a machine with cpubench loaded.
 * WebAssembly: a module generated from the same plan, with the x registers it uses in locals,
 * and the same software TLB check before each load and store (tag compare, then RAM at
 * `va + add[e]`), RAM and the TLB arrays in the module's memory. It is a prototype: a TLB miss
 * traps instead of calling the slow path, so both sides run with the pages already in the TLB
 * (the JavaScript block fills it on a first run). Both run the same number of guest
 * instructions from the same registers, and must end with the same registers.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import { readKernel } from '../src/host/guest-image.js';
import { Op } from '../src/machine/cpu/ops.js';
import { compileBlock, planBlock, type BlockEnvironment, type BlockPlan } from '../src/machine/cpu/translator.js';
import { TranslationCache } from '../src/machine/cpu/translation-cache.js';
import { dataPrivilege, dataTlbContext } from '../src/machine/cpu/mmu.js';
import type { Hart } from '../src/machine/cpu/cpu.js';
import { branchConditions, immediateOps, registerOps, signedLeb, unsignedLeb, W, wasmName, wasmSection, wasmVector } from '../src/machine/cpu/translator-wasm.js';
import { WebAssembly } from '../src/machine/cpu/wasm-arena.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ramBase = 0x8000_0000;
const ramBytes = 128 * 1024 * 1024;
/** The module's memory: registers and pc at 0, the TLB arrays from 4 KiB, RAM from 64 KiB. */
const tlbBase = 4096;
const tlbEntries = 512;
const wasmRamBase = 65536;
const pcAddress = 128;

// The encoder of the tier's WebAssembly back end (translator-wasm.ts).
const unsigned = unsignedLeb;
const signed = signedLeb;
const section = wasmSection;
const vector = wasmVector;
const name = wasmName;
const I = W;

/** The block as one WebAssembly function `(budget) -> retired` over the module's memory. */
function wasmModule(plan: BlockPlan, dataContext: number): Uint8Array {
  const instructions = plan.instructions;
  const length = instructions.length;
  const head = instructions[0]!.pc;
  // Locals: 0 budget (parameter); 1..31 the x registers; 32 k; 33 va; 34 e; 35 scratch.
  const k = 32;
  const va = 33;
  const e = 34;
  const code: number[] = [];
  const c = (value: number): number[] => [I.const, ...signed(value)];
  const get = (local: number): number[] => (local === 0 ? c(0) : [I.localGet, ...unsigned(local)]);
  const set = (rd: number, value: number[]): number[] => (rd === 0 ? [] : [...value, I.localSet, ...unsigned(rd)]);
  const memory = (opcode: number, offset = 0): number[] => [opcode, 2, ...unsigned(offset)];
  // Registers in.
  for (let r = 1; r < 32; r++) code.push(...c(r * 4), ...memory(I.load), I.localSet, r);
  /** The TLB check of the fast path; leaves the RAM address (in the module's memory) in `va`. */
  const translate = (rs1: number, imm: number, tags: number, adds: number): number[] => [
    ...get(rs1), ...c(imm), I.add, I.localTee, va, ...c(12), I.shrU, ...c(tlbEntries - 1), I.and, ...c(2), I.shl, I.localTee, e,
    ...memory(I.load, tags), I.localGet, va, ...c(12), I.shrU, ...c(dataContext), I.or, I.ne, I.if, I.void, I.unreachable, I.end,
    I.localGet, va, I.localGet, e, ...memory(I.load, adds), I.add, I.localSet, va,
  ];
  const loadTags = tlbBase;
  const loadAdds = tlbBase + tlbEntries * 4;
  const storeTags = tlbBase + tlbEntries * 8;
  const storeAdds = tlbBase + tlbEntries * 12;
  // The back end's tables (translator-wasm.ts).
  const binary = registerOps;
  const immediate = immediateOps;
  const conditions = branchConditions;
  code.push(I.block, I.void, I.loop, I.void);
  instructions.forEach(({ pc, d }, index) => {
    const op = d.op;
    if (index === length - 1) {
      const condition = conditions[op];
      if (condition === undefined || !plan.loops) throw new RangeError('the prototype translates loops that end in a branch');
      // Taken: go round again if a whole pass fits (as the JavaScript block); else leave at the head.
      code.push(...get(d.rs1), ...get(d.rs2), condition, I.if, I.void);
      code.push(I.localGet, k, ...c(length), I.add, I.localTee, k, ...c(length), I.add, I.localGet, 0, I.gtS, I.if, I.void);
      code.push(...c(pcAddress), ...c(head), ...memory(I.store), I.br, 3, I.end, I.br, 1, I.end);
      code.push(...c(pcAddress), ...c((pc + d.length) | 0), ...memory(I.store), I.localGet, k, ...c(length), I.add, I.localSet, k, I.br, 1);
      return;
    }
    const regOp = binary[op];
    const immOp = immediate[op];
    if (regOp !== undefined) {
      // WebAssembly masks shift counts by 31, as RISC-V does.
      code.push(...set(d.rd, [...get(d.rs1), ...get(d.rs2), regOp]));
    } else if (immOp !== undefined) {
      code.push(...set(d.rd, [...get(d.rs1), ...c(d.imm), immOp]));
    } else if (op === Op.LUI) {
      code.push(...set(d.rd, c(d.imm)));
    } else if (op === Op.LW) {
      code.push(...translate(d.rs1, d.imm, loadTags, loadAdds), ...set(d.rd, [I.localGet, va, ...memory(I.load)]));
    } else if (op === Op.SW) {
      code.push(...translate(d.rs1, d.imm, storeTags, storeAdds), I.localGet, va, ...get(d.rs2), ...memory(I.store));
    } else {
      throw new RangeError(`the prototype does not translate op ${op}`);
    }
  });
  code.push(I.end, I.end);
  // Registers out, and the count.
  for (let r = 1; r < 32; r++) code.push(...c(r * 4), I.localGet, r, ...memory(I.store));
  code.push(I.localGet, k, I.end);
  const body = [...vector([[...unsigned(35), 0x7f]]), ...code];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[0x60, 1, 0x7f, 1, 0x7f]])), // type: (i32) -> i32
    ...section(2, vector([[...name('m'), ...name('memory'), 0x02, 0x00, ...unsigned(ramBytes / 65536 + 1)]])),
    ...section(3, vector([[0]])),
    ...section(7, vector([[...name('block'), 0x00, 0]])),
    ...section(10, vector([[...unsigned(body.length), ...body]])),
  ]);
}

// ------------------------------------------------------------------------------ the measure

interface Case {
  readonly name: string;
  readonly head: number;
  /** Registers at entry (x index → value): the loop runs {@link passesPerCall} times. */
  readonly registers: Record<number, number>;
  /** The data pages it touches (they must fit the 512-entry TLBs without conflicts). */
  readonly pages: readonly (readonly [number, number])[];
}

/** Passes of the loop per call (the matrix loop's column stride of 256 bytes then spans 1 MiB: 256 pages). */
const passesPerCall = 4096;
const calls = 500;
const matrixA = ramBase + 0x10_0000;
const matrixB = ramBase + 0x20_0000;
const cases: Case[] = [
  // lw a1,0(a5); lw t1,0(a6); addi a5,a5,4; addi a6,a6,256; mul a1,a1,t1; add a7,a7,a1; bne a5,t3
  { name: 'matrix multiply, inner loop', head: 0x8000_01d8, registers: { 15: matrixA, 16: matrixB, 28: matrixA + 4 * passesPerCall }, pages: [[matrixA, 4 * passesPerCall], [matrixB, 256 * passesPerCall]] },
  // andi a7,a4,1; neg a7,a7; srli a4,a4,1; and a7,a7,ra; addi t1,t1,-1; xor a4,a4,a7; bnez t1
  { name: 'bit-wise CRC, inner loop', head: 0x8000_021a, registers: { 14: 0x1234_5678, 1: 0xedb8_8320 | 0, 6: passesPerCall }, pages: [] },
];

const machine = new Machine({ ramBytes, disks: [] }, new VirtualClock(), { cpu: 'jit' });
machine.load(readKernel(path.join(root, 'guests/build/cpubench.elf')));
const hart = (machine as unknown as { hart: Hart }).hart;
const tier = hart.tier as TranslationCache;
const environment = (tier as unknown as { environment: BlockEnvironment }).environment;
const dataContext = dataTlbContext(dataPrivilege(hart), hart.mstatus);

const memory = new WebAssembly.Memory({ initial: ramBytes / 65536 + 1 });
const words = new Int32Array(memory.buffer);
new Uint8Array(memory.buffer, wasmRamBase, ramBytes).set(hart.ports.ram.u8);
for (let e = 0; e < tlbEntries; e++) {
  // Every virtual page of RAM is in the prototype's TLB (the entry its page number selects).
  words[(tlbBase >> 2) + e] = -1;
  words[(tlbBase >> 2) + 2 * tlbEntries + e] = -1;
}
function fillTlb(va: number): void {
  const vpn = va >>> 12;
  const e = vpn & (tlbEntries - 1);
  const add = (wasmRamBase - ramBase) | 0;
  for (const [tags, adds] of [[0, 1], [2, 3]] as const) {
    words[(tlbBase >> 2) + tags * tlbEntries + e] = vpn | dataContext;
    words[(tlbBase >> 2) + adds * tlbEntries + e] = add;
  }
}

console.log(`the tier's JavaScript blocks against WebAssembly for the same blocks (cpubench), ${calls} calls of ${passesPerCall} passes, CPU time, best of 5; Node ${process.version}`);
for (const testCase of cases) {
  const plan = planBlock(hart.ports.ram.u16, ((testCase.head - ramBase) >>> 12) * 2048, testCase.head & 0xfff, testCase.head | 0);
  const instructionCount = plan.instructions.length * passesPerCall;
  const js = compileBlock(plan, environment);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(wasmModule(plan, dataContext)), { m: { memory } });
  const wasm = instance.exports['block'] as (budget: number) => number;
  const start = (): void => {
    hart.x.fill(0);
    hart.attention = false;
    words.fill(0, 0, 32);
    for (const [r, value] of Object.entries(testCase.registers)) {
      hart.x[Number(r)] = value;
      words[Number(r)] = value;
    }
  };
  // Fill both TLBs: the JavaScript block's on a first run (its slow path), the prototype's by hand.
  for (const [first, bytes] of testCase.pages) for (let offset = 0; offset < bytes; offset += 4096) fillTlb(first + offset);
  start();
  js(hart, 0, instructionCount, dataContext);
  const timesJs: number[] = [];
  const timesWasm: number[] = [];
  for (let round = 0; round < 5; round++) {
    let retiredJs = 0;
    let t = process.cpuUsage();
    for (let call = 0; call < calls; call++) {
      start();
      retiredJs += js(hart, 0, instructionCount, dataContext);
    }
    let used = process.cpuUsage(t);
    timesJs.push((used.user + used.system) * 1000 / retiredJs);
    const registersJs = Array.from(hart.x);
    let retiredWasm = 0;
    t = process.cpuUsage();
    for (let call = 0; call < calls; call++) {
      start();
      retiredWasm += wasm(instructionCount);
    }
    used = process.cpuUsage(t);
    timesWasm.push((used.user + used.system) * 1000 / retiredWasm);
    if (retiredJs !== retiredWasm) throw new Error(`${testCase.name}: ${retiredJs} instructions in JavaScript, ${retiredWasm} in WebAssembly`);
    for (let r = 1; r < 32; r++) {
      if ((registersJs[r]! | 0) !== (words[r]! | 0)) throw new Error(`${testCase.name}: x${r} is ${registersJs[r]} in JavaScript, ${words[r]} in WebAssembly`);
    }
  }
  const best = (values: number[]): number => Math.min(...values);
  console.log(`  ${testCase.name.padEnd(30)} JavaScript ${best(timesJs).toFixed(2)} ns, WebAssembly ${best(timesWasm).toFixed(2)} ns a guest instruction   WebAssembly/JavaScript time ×${(best(timesWasm) / best(timesJs)).toFixed(2)}`);
}
