/** Unit tests for the decoder and the interpreter, with hand-encoded programs and tiny fakes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hart, mulhSigned, mulhSignedUnsigned, mulhUnsigned } from './cpu.js';
import { decode, disassemble, Op } from './decode.js';
import { asm, casm, cfasm, fasm, li, packHalves } from './encode.js';
import { compressedFloatOffset } from './decode-compressed.js';
import { Csr, PmpCfg, Priv } from './csr.js';
import { Bus } from '../memory/bus.js';
import { Ram, ramBaseAddress } from '../memory/ram.js';
import type { AccessWidth, MmioDevice } from '../devices/device.js';
import { SnapshotReader, SnapshotWriter } from '../snapshot.js';

const base = ramBaseAddress;
const handlerOffset = 0x100;
const handler = base + handlerOffset;
const u = (value: number): number => value >>> 0;

/** A device that remembers accesses; reads return 0x1234 + offset. */
class RecordingDevice implements MmioDevice {
  readonly name = 'recorder';
  readonly windowBytes = 0x1000;
  readonly log: string[] = [];
  read(offset: number, width: AccessWidth): number {
    this.log.push(`r${width}@${offset}`);
    return 0x1234 + offset;
  }
  write(offset: number, width: AccessWidth, value: number): void {
    this.log.push(`w${width}@${offset}=${value.toString(16)}`);
  }
  save(): void {}
  restore(): void {}
}

function machine(program: number[], options: { at?: number } = {}): { hart: Hart; ram: Ram; device: RecordingDevice } {
  const ram = new Ram(1 << 20);
  const bus = new Bus();
  const device = new RecordingDevice();
  bus.map(0x1000_0000, device);
  const hart = new Hart({ ram, bus, readTime: () => 77n, watchedStore: () => {} });
  const at = options.at ?? base;
  // A trap handler that spins, so a test can run past a trap and look at what it recorded.
  ram.i32[handlerOffset / 4] = asm.jal(0, 0);
  program.forEach((word, index) => (ram.i32[(at - base) / 4 + index] = word));
  hart.reset(base);
  return { hart, ram, device };
}

test('decode: fields and immediates of each format', () => {
  assert.deepEqual(decode(asm.addi(5, 6, -1)), { op: Op.ADDI, rd: 5, rs1: 6, rs2: 31, imm: -1, length: 4 });
  assert.equal(decode(asm.lui(1, 0xfffff000)).imm, 0xfffff000 | 0);
  assert.equal(decode(asm.jal(1, -2048)).imm, -2048);
  assert.equal(decode(asm.jal(1, 0xffffe)).imm, 0xffffe);
  assert.equal(decode(asm.beq(1, 2, -4096)).imm, -4096);
  assert.equal(decode(asm.bne(1, 2, 4094)).imm, 4094);
  assert.equal(decode(asm.sw(7, 8, -2048)).imm, -2048);
  assert.equal(decode(asm.sw(7, 8, 2047)).imm, 2047);
  assert.deepEqual(decode(asm.srai(3, 4, 31)), { op: Op.SRAI, rd: 3, rs1: 4, rs2: 31, imm: 31, length: 4 });
  assert.equal(decode(asm.csrrs(1, Csr.mstatus, 0)).imm, Csr.mstatus);
});

test('decode: reserved encodings are illegal, with the instruction bits (16 for a 16-bit encoding)', () => {
  const cases = [
    asm.slli(1, 1, 1) | (1 << 25), // shamt[5] set on RV32
    asm.srli(1, 1, 1) | (1 << 26),
    asm.lw(1, 2, 0) | (3 << 12), // LD is RV64 only
    asm.lrw(1, 2) | (3 << 20), // LR with rs2 != 0
    asm.add(1, 2, 3) | (2 << 25), // unknown funct7
    0x00200073, // an unknown SYSTEM funct12
    0xffffffff,
  ];
  for (const insn of cases) {
    const d = decode(insn);
    assert.equal(d.op, Op.ILLEGAL, `0x${(insn >>> 0).toString(16)}`);
    assert.equal(d.imm, insn | 0);
  }
  assert.equal(decode(0).op, Op.ILLEGAL);
  assert.equal(decode(0).imm, 0);
});

/** What a compressed instruction must decode to: its 32-bit meaning (casm is checked against GNU as). */
function expand(op: Op, rd: number, rs1: number, rs2: number, imm: number): { op: Op; rd: number; rs1: number; rs2: number; imm: number; length: 2 } {
  return { op, rd, rs1, rs2, imm, length: 2 };
}

test('decode: every RV32C encoding class expands to its 32-bit meaning, at the edges of its immediate', () => {
  const cases: [number, ReturnType<typeof expand>][] = [];
  for (const v of [4, 0x3fc, 0x10, 0x20, 0x40, 0x200]) cases.push([casm.addi4spn(15, v), expand(Op.ADDI, 15, 2, 0, v)]);
  for (const v of [0, 4, 64, 124]) {
    cases.push([casm.lw(8, 15, v), expand(Op.LW, 8, 15, 0, v)]);
    cases.push([casm.sw(15, 8, v), expand(Op.SW, 0, 8, 15, v)]);
  }
  cases.push([casm.nop(), expand(Op.ADDI, 0, 0, 0, 0)]);
  for (const v of [1, -1, 31, -32]) {
    cases.push([casm.addi(31, v), expand(Op.ADDI, 31, 31, 0, v)]);
    cases.push([casm.li(1, v), expand(Op.ADDI, 1, 0, 0, v)]);
    cases.push([casm.andi(9, v), expand(Op.ANDI, 9, 9, 0, v)]);
    cases.push([casm.lui(3, v & 63), expand(Op.LUI, 3, 0, 0, v << 12)]);
  }
  for (const v of [16, -16, 496, -512]) cases.push([casm.addi16sp(v), expand(Op.ADDI, 2, 2, 0, v)]);
  for (const v of [0, 1, 31]) {
    cases.push([casm.srli(10, v), expand(Op.SRLI, 10, 10, v, v)]);
    cases.push([casm.srai(11, v), expand(Op.SRAI, 11, 11, v, v)]);
    cases.push([casm.slli(30, v), expand(Op.SLLI, 30, 30, v, v)]);
  }
  cases.push([casm.sub(8, 9), expand(Op.SUB, 8, 8, 9, 0)], [casm.xor(10, 11), expand(Op.XOR, 10, 10, 11, 0)]);
  cases.push([casm.or(12, 13), expand(Op.OR, 12, 12, 13, 0)], [casm.and(14, 15), expand(Op.AND, 14, 14, 15, 0)]);
  for (const v of [2, -2, 2046, -2048, 0x400, 0x100, 0x40, 0x20]) {
    cases.push([casm.j(v), expand(Op.JAL, 0, 0, 0, v)]);
    cases.push([casm.jal(v), expand(Op.JAL, 1, 0, 0, v)]);
  }
  for (const v of [2, -2, 254, -256, 0x20]) {
    cases.push([casm.beqz(8, v), expand(Op.BEQ, 0, 8, 0, v)]);
    cases.push([casm.bnez(15, v), expand(Op.BNE, 0, 15, 0, v)]);
  }
  for (const v of [0, 4, 252, 128]) {
    cases.push([casm.lwsp(31, v), expand(Op.LW, 31, 2, 0, v)]);
    cases.push([casm.swsp(31, v), expand(Op.SW, 0, 2, 31, v)]);
  }
  cases.push([casm.jr(1), expand(Op.JALR, 0, 1, 0, 0)], [casm.jalr(31), expand(Op.JALR, 1, 31, 0, 0)]);
  cases.push([casm.mv(5, 31), expand(Op.ADD, 5, 0, 31, 0)], [casm.add(5, 31), expand(Op.ADD, 5, 5, 31, 0)]);
  cases.push([casm.ebreak(), expand(Op.EBREAK, 0, 0, 0, 0)]);
  // HINTs execute as what they expand to: rd = x0 writes the sink.
  cases.push([casm.addi(0, 5), expand(Op.ADDI, 0, 0, 0, 5)], [casm.li(0, 1), expand(Op.ADDI, 0, 0, 0, 1)]);
  cases.push([casm.mv(0, 5), expand(Op.ADD, 0, 0, 5, 0)], [casm.lui(0, 1), expand(Op.LUI, 0, 0, 0, 0x1000)]);
  for (const [half, expected] of cases) {
    const hex = `0x${half.toString(16)}`;
    assert.deepEqual(decode(half), expected, hex);
    // The upper half of the fetched word is the next instruction's: it does not matter.
    assert.deepEqual(decode((half | 0xabcd0000) | 0), expected, `${hex} with another halfword after it`);
  }
});

test('decode: reserved 16-bit encodings are illegal, with the 16 bits for mtval', () => {
  const cases = [
    0x0000, // the all-zero halfword
    casm.addi4spn(9, 0), // nzuimm = 0
    casm.lwsp(0, 4), // rd = 0
    casm.jr(0), // rs1 = 0
    casm.addi16sp(0), // nzimm = 0
    casm.lui(5, 0), casm.lui(0, 0), // nzimm = 0, whatever rd
    casm.slli(5, 32), casm.srli(8, 32), casm.srai(9, 33), // shamt[5] = 1 on RV32 (custom use)
    0x9c01, 0x9c21, 0x9c41, 0x9c61, // C.SUBW, C.ADDW (RV64) and the two reserved
    0x8000, // quadrant 0, funct3 = 100: reserved
  ];
  for (const half of cases) {
    const d = decode(half | 0x12340000);
    assert.equal(d.op, Op.ILLEGAL, `0x${half.toString(16)}`);
    assert.equal(d.imm, half, `0x${half.toString(16)}: mtval is the 16 bits`);
    assert.equal(d.length, 2);
  }
});

test('decode: the F and D encodings become FLW, FSW, FLD, FSD or FP with their bits as the immediate', () => {
  const bits = (word: number): number => word | 0;
  assert.deepEqual(decode(fasm.flw(3, 4, -2048)), { op: Op.FLW, rd: 3, rs1: 4, rs2: 0, imm: bits(fasm.flw(3, 4, -2048)), length: 4 });
  assert.deepEqual(decode(fasm.fsd(5, 6, 2047)), { op: Op.FSD, rd: 2047 & 31, rs1: 6, rs2: 5, imm: bits(fasm.fsd(5, 6, 2047)), length: 4 });
  assert.equal(decode(fasm.fld(0, 1, 8)).op, Op.FLD);
  assert.equal(decode(fasm.fsw(0, 1, 8)).op, Op.FSW);
  const valid = [
    fasm.fadd(0, 1, 2, 3), fasm.fsub(1, 1, 2, 3, 4), fasm.fmul(0, 1, 2, 3, 5), fasm.fdiv(1, 1, 2, 3, 6), // rm checked at run time
    fasm.fsqrt(0, 1, 2), fasm.fsqrt(1, 1, 2), fasm.fsgnj(0, 1, 2, 3), fasm.fsgnjx(1, 1, 2, 3), fasm.fmin(0, 1, 2, 3),
    fasm.fmax(1, 1, 2, 3), fasm.fcvtFormat(0, 1, 2), fasm.fcvtFormat(1, 1, 2), fasm.feq(0, 1, 2, 3), fasm.fle(1, 1, 2, 3),
    fasm.fcvtToInteger(0, 1, 2, 1), fasm.fcvtToInteger(1, 1, 2, 0), fasm.fcvtFromInteger(0, 1, 2, 1),
    fasm.fcvtFromInteger(1, 1, 2, 0), fasm.fmvXW(1, 2), fasm.fclass(0, 1, 2), fasm.fclass(1, 1, 2), fasm.fmvWX(1, 2),
    fasm.fmadd(0, 1, 2, 3, 4), fasm.fmsub(1, 1, 2, 3, 4), fasm.fnmsub(0, 1, 2, 3, 31), fasm.fnmadd(1, 31, 2, 3, 4),
  ];
  for (const word of valid) {
    const d = decode(word);
    assert.equal(d.op, Op.FP, disassemble(word));
    assert.equal(d.imm, bits(word));
  }
  const reserved = [
    fasm.fadd(2, 1, 2, 3), fasm.fmadd(3, 1, 2, 3, 4), // fmt H and Q
    fasm.fsqrt(0, 1, 2) | (1 << 20), // rs2 != 0
    fasm.fsgnj(0, 1, 2, 3) | (3 << 12), fasm.fmin(1, 1, 2, 3) | (2 << 12), fasm.feq(0, 1, 2, 3) | (3 << 12),
    fasm.fcvtFormat(0, 1, 2) & ~(1 << 20), // fcvt.s.s
    fasm.fcvtToInteger(0, 1, 2, 2), fasm.fcvtFromInteger(1, 1, 2, 3), // rs2 = 2, 3: the RV64 L forms
    fasm.fclass(1, 1, 2) & ~(1 << 12), // fmv.x.d (RV64)
    fasm.fmvWX(1, 2) | (1 << 25), // fmv.d.x (RV64)
    fasm.fmvXW(1, 2) | (2 << 12), fasm.fmvWX(1, 2) | (1 << 20),
    fasm.flw(1, 2, 0) & ~(7 << 12), fasm.fsd(1, 2, 0) | (7 << 12), // loads and stores of other widths
  ];
  for (const word of reserved) {
    const d = decode(word);
    assert.equal(d.op, Op.ILLEGAL, `0x${(word >>> 0).toString(16)}`);
    assert.equal(d.imm, bits(word));
  }
});

test('decode: the compressed F and D loads and stores, with their offsets at both ends', () => {
  const cases: [number, Op, number, number, number, number][] = [
    // half, op, rd, rs1, rs2, offset
    [cfasm.fld(8, 15, 0), Op.FLD, 8, 15, 0, 0],
    [cfasm.fld(15, 8, 248), Op.FLD, 15, 8, 0, 248],
    [cfasm.flw(9, 10, 124), Op.FLW, 9, 10, 0, 124],
    [cfasm.fsd(10, 11, 248), Op.FSD, 0, 11, 10, 248],
    [cfasm.fsw(12, 13, 4), Op.FSW, 0, 13, 12, 4],
    [cfasm.fldsp(0, 504), Op.FLD, 0, 2, 0, 504],
    [cfasm.fldsp(31, 8), Op.FLD, 31, 2, 0, 8],
    [cfasm.flwsp(0, 252), Op.FLW, 0, 2, 0, 252],
    [cfasm.fsdsp(31, 504), Op.FSD, 0, 2, 31, 504],
    [cfasm.fswsp(1, 252), Op.FSW, 0, 2, 1, 252],
    [cfasm.fswsp(1, 4), Op.FSW, 0, 2, 1, 4],
  ];
  for (const [half, op, rd, rs1, rs2, offset] of cases) {
    const name = `0x${half.toString(16)}`;
    assert.deepEqual(decode(half | 0x55550000), { op, rd, rs1, rs2, imm: half, length: 2 }, name);
    assert.equal(compressedFloatOffset(half), offset, name);
  }
});

/** A machine with the FPU on (mstatus.FS = Dirty), running `program`. */
function floatMachine(program: number[]): { hart: Hart; ram: Ram } {
  const { hart, ram } = machine(program);
  hart.mtvec = handler;
  hart.mstatus |= 3 << 13;
  return { hart, ram };
}

const one32 = 0x3f80_0000;
const three32 = 0x4040_0000;

test('FS = Off: F and D instructions and fcsr accesses trap as illegal with mtval = the bits', () => {
  for (const word of [fasm.fadd(0, 1, 2, 3), fasm.fld(1, 0, 0), fasm.fmvXW(5, 1), asm.csrrs(5, Csr.fcsr, 0)]) {
    const { hart } = machine([word]);
    hart.mtvec = handler;
    assert.equal(hart.mstatus & (3 << 13), 0, 'FS is Off at reset, as on QEMU 7.2');
    hart.run(1);
    assert.equal(u(hart.mcause), 2);
    assert.equal(u(hart.mtval), word);
    assert.equal(u(hart.mepc), base);
  }
  const { hart } = machine(packHalves([cfasm.fsdsp(3, 8)]));
  hart.mtvec = handler;
  hart.run(1);
  assert.equal(u(hart.mtval), cfasm.fsdsp(3, 8));
});

test('FP instructions: results NaN-boxed, FS becomes Dirty, SD reads 1, fflags accumulate, reserved rm traps', () => {
  const { hart } = floatMachine([
    ...li(1, one32), fasm.fmvWX(1, 1), ...li(1, three32), fasm.fmvWX(2, 1),
    fasm.fdiv(0, 3, 1, 2, 0), // 1/3 in RNE: inexact
    fasm.fmvXW(4, 3),
    asm.csrrs(5, Csr.fflags, 0),
    asm.csrrs(6, Csr.mstatus, 0),
    fasm.fadd(0, 4, 1, 2, 5), // rm = 5: illegal, not retired
  ]);
  hart.mstatus = (hart.mstatus & ~(3 << 13)) | (1 << 13); // Initial
  hart.run(10);
  hart.run(1); // the fadd traps without retiring; the handler's first instruction retires
  assert.equal(u(hart.x[4]!), 0x3eaa_aaab);
  assert.equal(hart.f[2 * 3 + 1], 0xffff_ffff);
  assert.equal(hart.x[5], 1, 'NX');
  assert.equal(u(hart.x[6]!) >>> 31, 1, 'SD');
  assert.equal((hart.x[6]! >>> 13) & 3, 3, 'Dirty');
  assert.equal(u(hart.mcause), 2);
  assert.equal(hart.retired, 11);
});

test('FLD and FSD: 64 bits through two 32-bit accesses, misaligned in RAM too; a faulting FSD writes nothing', () => {
  const data = 0x1000;
  const ramEnd = base + (1 << 20);
  const { hart, ram } = floatMachine([
    ...li(1, base + data), fasm.fld(1, 1, 3), fasm.fsd(1, 1, 0x101),
    ...li(2, ramEnd - 4), fasm.fsd(1, 2, 0), // the upper half lies past the end of RAM
  ]);
  for (let i = 0; i < 16; i++) ram.u8[data + i] = 0x10 + i;
  ram.i32[(1 << 20) / 4 - 1] = 0x5a5a_5a5a;
  hart.run(6);
  assert.equal(hart.f[3], 0x1a19_1817, 'high half');
  assert.equal(hart.f[2], 0x1615_1413, 'low half');
  for (let i = 0; i < 8; i++) assert.equal(ram.u8[data + 0x101 + i], 0x13 + i);
  hart.run(1);
  assert.equal(u(hart.mcause), 7);
  assert.equal(u(hart.mtval), ramEnd - 4);
  assert.equal(ram.i32[(1 << 20) / 4 - 1], 0x5a5a_5a5a, 'the lower half was not written either');
});

test('f registers and fcsr survive save and restore', () => {
  const { hart } = floatMachine([...li(1, one32), fasm.fmvWX(7, 1), fasm.fmvWX(0, 0), fasm.fdiv(0, 8, 7, 0, 0), asm.csrrwi(0, Csr.frm, 3)]);
  hart.run(6);
  assert.equal(hart.fpu.flags, 0x08, 'DZ');
  assert.equal(hart.frm, 3);
  const writer = new SnapshotWriter();
  hart.save(writer);
  const saved = writer.finish();
  const other = machine([]);
  other.hart.restore(new SnapshotReader(saved));
  assert.deepEqual(other.hart.f, hart.f);
  assert.equal(other.hart.fpu.flags, 0x08);
  assert.equal(other.hart.frm, 3);
  const again = new SnapshotWriter();
  other.hart.save(again);
  assert.deepEqual(again.finish(), saved);
});

/** A program of halfwords at the start of RAM (packed two to a word). */
function compressedMachine(halves: number[]): { hart: Hart; ram: Ram } {
  const { hart, ram } = machine(packHalves(halves));
  hart.mtvec = handler;
  return { hart, ram };
}

test('compressed instructions run: links are pc + 2, each retires as one instruction, 2-aligned targets are legal', () => {
  const jalr = asm.jalr(7, 1, 2);
  const { hart } = compressedMachine([
    casm.li(8, 5), // 0
    casm.jal(6), // 2: to 8, ra = 4
    casm.addi(8, 1), // 4: skipped the first time
    casm.addi(8, 1), // 6: reached by the jalr below
    casm.addi(8, 10), // 8
    jalr & 0xffff, jalr >>> 16, // 10: a 32-bit jalr at a 2-aligned pc, to ra + 2 = 6
  ]);
  hart.run(3);
  assert.equal(hart.x[8], 15);
  assert.equal(u(hart.x[1]!), base + 4, 'C.JAL links pc + 2');
  assert.equal(u(hart.pc), base + 10);
  assert.equal(hart.retired, 3);
  hart.run(3); // jalr, c.addi 1, c.addi 10
  assert.equal(u(hart.x[7]!), base + 14, 'a 32-bit jump links pc + 4');
  assert.equal(hart.x[8], 26);
  assert.equal(u(hart.pc), base + 10);
  assert.equal(hart.mcause, 0, 'no trap: the target is 2-aligned (IALIGN = 16)');
  const second = compressedMachine([casm.nop(), casm.jalr(9), casm.nop(), casm.mv(10, 1), casm.jr(10)]);
  second.hart.x[9] = base + 6;
  second.hart.run(4); // c.nop, c.jalr to 6, c.mv x10 = ra, c.jr back to 4
  assert.equal(u(second.hart.x[1]!), base + 4, 'C.JALR links pc + 2');
  assert.equal(u(second.hart.pc), base + 4);
});

test('every compressed instruction the loop finishes itself (its twin op) computes as its 32-bit meaning', () => {
  const data = base + 0x800;
  const { hart, ram } = compressedMachine([
    casm.addi4spn(8, 0x3fc), // x8 = sp + 0x3fc
    casm.addi16sp(-512), // sp -= 512
    casm.lui(9, 0x3f), // x9 = 0xfffff000
    casm.srai(9, 4), // x9 = 0xffffff00
    casm.srli(9, 28), // x9 = 0xf
    casm.slli(9, 28), // x9 = 0xf0000000
    casm.andi(9, -16), // unchanged
    casm.li(10, 5), // x10 = 5
    casm.sub(9, 10), // x9 = 0xeffffffb
    casm.xor(10, 9), // x10 = 5 ^ x9
    casm.or(10, 9), // x10 |= x9
    casm.and(10, 9), // x10 &= x9
    casm.mv(11, 2), // x11 = sp
    casm.add(11, 10), // x11 += x10
    casm.sw(10, 12, 124), // [x12 + 124] = x10
    casm.lw(13, 12, 124), // x13 = [x12 + 124]
    casm.swsp(13, 252), // [sp + 252] = x13
    casm.lwsp(14, 252), // x14 = [sp + 252]
    casm.beqz(15, 4), // x15 = 0: taken, over the next
    casm.li(5, 1), // skipped
    casm.bnez(15, 4), // not taken
    casm.li(6, 1), // x6 = 1
  ]);
  hart.x[2] = data + 0x400;
  hart.x[12] = data;
  hart.run(21);
  const sp = data + 0x400 - 512;
  assert.equal(u(hart.x[8]!), data + 0x400 + 0x3fc);
  assert.equal(u(hart.x[2]!), sp);
  assert.equal(u(hart.x[9]!), 0xeffffffb);
  const x10 = (((5 ^ 0xeffffffb) | 0xeffffffb) & 0xeffffffb) >>> 0;
  assert.equal(u(hart.x[10]!), x10);
  assert.equal(u(hart.x[11]!), (sp + x10) >>> 0);
  assert.equal(u(ram.i32[(data - base + 124) / 4]!), x10);
  assert.equal(u(hart.x[13]!), x10);
  assert.equal(u(hart.x[14]!), x10);
  assert.deepEqual([hart.x[5], hart.x[6]], [0, 1]);
  assert.equal(u(hart.pc), base + 2 * 22);
  assert.equal(hart.retired, 21);
});

test('a 16-bit illegal instruction traps with mtval = the 16 bits; C.EBREAK with mepc at it', () => {
  const { hart } = compressedMachine([casm.nop(), 0x0000, casm.ebreak()]);
  hart.run(2);
  assert.equal(hart.mcause, 2);
  assert.equal(u(hart.mepc), base + 2);
  assert.equal(hart.mtval, 0);
  assert.equal(hart.retired, 2, 'a decode-time illegal instruction counts, as in QEMU');
  const other = compressedMachine([casm.nop(), casm.ebreak()]);
  other.hart.run(2);
  assert.equal(other.hart.mcause, 3);
  assert.equal(u(other.hart.mepc), base + 2);
});

test('a 32-bit instruction straddling into a page outside RAM faults with tval = that page, and does not retire', () => {
  const ram = new Ram(1 << 20);
  const hart = new Hart({ ram, bus: new Bus(), readTime: () => 0n, watchedStore: () => {} });
  const last = ram.sizeBytes - 2;
  const word = asm.addi(5, 5, 7);
  ram.u16[last / 2] = word & 0xffff;
  hart.reset(base + last);
  hart.mtvec = handler;
  ram.i32[handlerOffset / 4] = asm.jal(0, 0);
  hart.run(1);
  assert.equal(hart.mcause, 1);
  assert.equal(u(hart.mtval), base + ram.sizeBytes);
  assert.equal(u(hart.mepc), base + last);
  assert.equal(hart.x[5], 0);
  assert.equal(hart.retired, 1, 'only the handler\'s first instruction retired');
});

test('a 32-bit instruction whose upper half lies in a PMP granule without X faults there (tval = that half)', () => {
  const { hart, ram } = machine([]);
  const addi = asm.addi(5, 5, 1);
  ram.u16[0x202 / 2] = addi & 0xffff;
  ram.u16[0x204 / 2] = addi >>> 16;
  ram.u16[0x206 / 2] = casm.j(0);
  hart.pmpaddr[0] = (base + 0x204) >>> 2; // NA4 over 0x204..0x207: R and W, no X
  hart.pmpcfg[0] = PmpCfg.R | PmpCfg.W | 0x10;
  hart.pmpaddr[1] = -1; // NAPOT over everything: R, W, X
  hart.pmpcfg[1] = PmpCfg.R | PmpCfg.W | PmpCfg.X | 0x18;
  hart.pmpChanged();
  hart.priv = Priv.S;
  hart.pc = base + 0x202;
  hart.mtvec = handler;
  hart.run(1);
  // QEMU 7.2 checks only the first half and executes it (guests/tests/README.md).
  assert.equal(hart.mcause, 1);
  assert.equal(u(hart.mepc), base + 0x202);
  assert.equal(u(hart.mtval), base + 0x204);
  assert.equal(hart.x[5], 0);
});

test('a straddling instruction runs as its two pages say now: a write to its upper half takes effect', () => {
  // At 0xffe: addi x5, x5, 1 (straddling into the next page); at 0x1002: c.j back to 0xffe.
  const { hart, ram } = machine([]);
  const addi = asm.addi(5, 5, 1);
  ram.u16[0xffe / 2] = addi & 0xffff;
  ram.u16[0x1000 / 2] = addi >>> 16;
  ram.u16[0x1002 / 2] = casm.j(-4);
  hart.reset(base + 0xffe);
  hart.run(4);
  assert.equal(hart.x[5], 2);
  // The upper half changes (a device write into the second page): the next pass sees it.
  const replacement = asm.addi(5, 5, 0x100);
  ram.writeBytes(base + 0x1000, new Uint8Array(new Uint16Array([replacement >>> 16]).buffer));
  hart.run(2);
  assert.equal(hart.x[5], 2 + 0x100);
});

test('a store into the middle of an instruction empties its slot: 32-bit at a 2-aligned pc, and compressed', () => {
  // 0x40: c.nop; 0x42: addi x5, x5, 1 (32-bit, 2-aligned); 0x46: c.addi x6, 1; 0x48: c.j to 0x40.
  const loop = 0x40;
  const { hart, ram } = machine([]);
  const addi = asm.addi(5, 5, 1);
  [casm.nop(), addi & 0xffff, addi >>> 16, casm.addi(6, 1), casm.j(-8)].forEach((half, index) => (ram.u16[loop / 2 + index] = half));
  hart.reset(base + loop);
  hart.run(4 * 2);
  assert.deepEqual([hart.x[5], hart.x[6]], [2, 2]);
  // A patcher: a store far from the code fills the store TLB, so that the two patches take
  // the loop's fast path. The first writes only the upper half of the 32-bit instruction (at
  // 0x44, a halfword where no instruction starts: its slot is the one at 0x42); the second
  // replaces the compressed c.addi. Then it jumps back into the loop.
  const patched = asm.addi(5, 5, 0x7f0); // the same lower half: rs1 = x5, rd = x5
  assert.equal(patched & 0xffff, addi & 0xffff);
  const program = [
    ...li(1, base + loop), asm.sw(0, 1, 0x100), ...li(2, patched >>> 16), asm.sh(2, 1, 4),
    ...li(3, casm.addi(6, 3)), asm.sh(3, 1, 6), asm.jalr(0, 1, 0),
  ];
  program.forEach((word, index) => (ram.i32[0x200 / 4 + index] = word));
  hart.pc = base + 0x200;
  hart.run(program.length + 4);
  assert.equal(u(hart.pc), base + loop);
  assert.deepEqual([hart.x[5], hart.x[6]], [2 + 0x7f0, 2 + 3]);
});

test('run(budget) retires exactly the budget, and says so', () => {
  const { hart } = machine([asm.addi(1, 1, 1), asm.jal(0, -4)]);
  assert.deepEqual(hart.run(1001), { reason: 'budget', retired: 1001 });
  assert.equal(hart.x[1], 501);
  assert.equal(hart.retired, 1001);
  assert.deepEqual(hart.run(0), { reason: 'budget', retired: 0 });
  assert.deepEqual(hart.run(1), { reason: 'budget', retired: 1 });
  assert.equal(hart.retired, 1002);
});

test('minstret reads the number of instructions retired before the reading one', () => {
  const { hart } = machine([asm.addi(0, 0, 0), asm.addi(0, 0, 0), asm.csrrs(5, Csr.minstret, 0), asm.csrrs(6, Csr.minstreth, 0), asm.jal(0, 0)]);
  hart.run(10);
  assert.equal(hart.x[5], 2);
  assert.equal(hart.x[6], 0);
});

test('a write to minstret is what the next instruction reads (Zicsr)', () => {
  const { hart } = machine([...li(1, 1000), asm.csrrw(0, Csr.minstret, 1), asm.csrrs(2, Csr.minstret, 0), asm.jal(0, 0)]);
  hart.run(10);
  assert.equal(hart.x[2], 1000);
});

test('x0 stays zero whatever is written to it', () => {
  const { hart } = machine([asm.addi(0, 0, 5), asm.lui(0, 0x12345000), asm.add(1, 0, 0), asm.jal(0, 0)]);
  hart.run(4);
  assert.equal(hart.x[0], 0);
  assert.equal(hart.x[1], 0);
});

test('multiply high halves agree with 64-bit arithmetic', () => {
  let seed = 1;
  const next = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) | 0;
    return seed;
  };
  const samples = [0, 1, -1, 0x7fffffff, -0x80000000, 0x10000, 0xffff];
  for (let n = 0; n < 2000; n++) samples.push(next());
  for (const a of samples) {
    for (const b of [samples[(a >>> 3) % samples.length]!, -1, 0x7fffffff, -0x80000000]) {
      const signed = Number(BigInt.asIntN(32, (BigInt(a) * BigInt(b)) >> 32n));
      const unsigned = Number(BigInt.asIntN(32, (BigInt(a >>> 0) * BigInt(b >>> 0)) >> 32n));
      const mixed = Number(BigInt.asIntN(32, (BigInt(a) * BigInt(b >>> 0)) >> 32n));
      assert.equal(mulhSigned(a, b), signed);
      assert.equal(mulhUnsigned(a, b), unsigned);
      assert.equal(mulhSignedUnsigned(a, b), mixed);
    }
  }
});

test('division by zero and overflow follow the M extension (no trap)', () => {
  const program = [
    ...li(1, -0x80000000), ...li(2, -1), asm.addi(3, 0, 0), asm.addi(4, 0, 7),
    asm.div(10, 1, 2), asm.rem(11, 1, 2), asm.div(12, 4, 3), asm.divu(13, 4, 3), asm.rem(14, 4, 3), asm.remu(15, 4, 3),
    asm.jal(0, 0),
  ];
  const { hart } = machine(program);
  hart.run(program.length - 1);
  assert.deepEqual([...hart.x.slice(10, 16)], [-0x80000000, 0, -1, -1, 7, 7]);
});

test('an illegal instruction traps with mcause 2, mepc, mtval = its bits, and counts as executed', () => {
  const { hart } = machine([...li(1, handler), asm.csrrw(0, Csr.mtvec, 1), 0xffffffff]);
  hart.run(4); // lui, addi, csrw, the illegal instruction: the fourth "retires" into the trap
  assert.equal(u(hart.pc), handler);
  assert.equal(hart.mcause, 2);
  assert.equal(u(hart.mepc), base + 12);
  assert.equal(hart.mtval, -1);
  assert.equal(hart.retired, 4);
});

test('a CSR access refused at run time traps without retiring, tval = the instruction', () => {
  const program = [...li(1, handler), asm.csrrw(0, Csr.mtvec, 1), asm.csrrw(0, Csr.mvendorid, 1)];
  const { hart } = machine(program);
  hart.run(3);
  assert.equal(u(hart.pc), base + 12);
  hart.run(1); // the refused write traps, then the handler's first instruction runs
  assert.equal(hart.mcause, 2);
  assert.equal(u(hart.mtval), program[3]);
  assert.equal(u(hart.mepc), base + 12);
  assert.equal(hart.retired, 4);
});

test('jumping nowhere is an instruction access fault for the guest, not a host error', () => {
  const { hart } = machine([...li(1, handler), asm.csrrw(0, Csr.mtvec, 1), ...li(2, 0x5000_0000), asm.jalr(0, 2, 0)]);
  hart.run(100);
  assert.equal(hart.mcause, 1);
  assert.equal(hart.mtval, 0x5000_0000);
  assert.equal(hart.mepc, 0x5000_0000);
  assert.equal(u(hart.pc), handler);
});

test('loads and stores reach MMIO devices; unmapped addresses fault', () => {
  const { hart, device } = machine([
    ...li(1, 0x1000_0000), asm.lw(2, 1, 8), asm.sb(2, 1, 3), ...li(3, handler), asm.csrrw(0, Csr.mtvec, 3),
    ...li(4, 0x0500_0000), asm.sw(2, 4, 0),
  ]);
  hart.run(100);
  assert.equal(hart.x[2], 0x123c);
  assert.deepEqual(device.log, ['r4@8', 'w1@3=3c']);
  assert.equal(hart.mcause, 7);
  assert.equal(hart.mtval, 0x0500_0000);
});

test('misaligned loads and stores to RAM complete, also across a page boundary', () => {
  const { hart, ram } = machine([...li(1, base + 0x1ffe), ...li(2, 0x11223344), asm.sw(2, 1, 0), asm.lw(3, 1, 0), asm.lh(4, 1, 1), asm.jal(0, 0)]);
  hart.run(7);
  assert.equal(hart.x[3], 0x11223344);
  assert.equal(hart.x[4], 0x2233);
  assert.deepEqual([...ram.u8.slice(0x1ffe, 0x2002)], [0x44, 0x33, 0x22, 0x11]);
});

test('a store over an instruction that already ran takes effect (self-modifying code)', () => {
  // Loop: x5 += 1 at `target`; after the first pass, overwrite `target` with x5 += 100.
  const target = base + 0x40;
  const program = [...li(1, target), ...li(2, asm.addi(5, 5, 100))];
  const { hart, ram } = machine(program);
  const loop = base + 0x40;
  ram.i32[(loop - base) / 4] = asm.addi(5, 5, 1);
  ram.i32[(loop - base) / 4 + 1] = asm.sw(2, 1, 0);
  ram.i32[(loop - base) / 4 + 2] = asm.jal(0, -8);
  ram.i32[program.length] = asm.jal(0, loop - (base + program.length * 4));
  hart.run(program.length + 1 + 3 + 1);
  assert.equal(hart.x[5], 101);
});

test('a device write into RAM (DMA) replaces decoded instructions', () => {
  const { hart, ram } = machine([asm.addi(5, 5, 1), asm.jal(0, -4)]);
  hart.run(10);
  assert.equal(hart.x[5], 5);
  const replacement = new Uint8Array(new Int32Array([asm.addi(5, 5, 10)]).buffer);
  ram.writeBytes(base, replacement);
  hart.run(2);
  assert.equal(hart.x[5], 15);
});

test('WFI stops the run when nothing is pending; an enabled pending interrupt wakes it', () => {
  const program = [...li(1, 1 << 7), asm.csrrs(0, Csr.mie, 1), asm.wfi(), asm.addi(6, 6, 1), asm.jal(0, 0)];
  const { hart } = machine(program);
  const first = hart.run(100);
  assert.deepEqual(first, { reason: 'wfi', retired: 3 }); // li is one addi here, then csrs and wfi
  assert.deepEqual(hart.run(100), { reason: 'wfi', retired: 0 });
  // MTIE is set but MIE (global) is not: WFI still wakes, no trap is taken.
  hart.setInterruptLine(1 << 7, true);
  const woken = hart.run(2);
  assert.deepEqual(woken, { reason: 'budget', retired: 2 });
  assert.equal(hart.x[6], 1);
  assert.equal(hart.mcause, 0);
});

test('an interrupt is taken between instructions with the next pc in mepc', () => {
  const program = [...li(1, handler), asm.csrrw(0, Csr.mtvec, 1), ...li(2, 1 << 7), asm.csrrs(0, Csr.mie, 2), asm.csrrsi(0, Csr.mstatus, 8), asm.addi(7, 7, 1), asm.jal(0, -4)];
  const { hart } = machine(program);
  hart.run(program.length + 3); // into the loop: addi, jal, addi, jal
  const resume = u(hart.pc);
  hart.setInterruptLine(1 << 7, true);
  hart.run(1);
  assert.equal(u(hart.mcause), 0x8000_0007);
  assert.equal(u(hart.mepc), resume);
  assert.equal(u(hart.pc), handler); // the handler's spin loop has run once
});

test('hart state survives save and restore bit for bit', () => {
  const { hart } = machine([asm.addi(1, 1, 3), asm.mul(2, 1, 1), asm.jal(0, -8)]);
  hart.run(1234);
  const writer = new SnapshotWriter();
  hart.save(writer);
  const saved = writer.finish();
  const other = machine([]);
  other.hart.restore(new SnapshotReader(saved));
  const again = new SnapshotWriter();
  other.hart.save(again);
  assert.deepEqual(again.finish(), saved);
  assert.equal(other.hart.x[1], hart.x[1]);
  assert.equal(other.hart.pc, hart.pc);
});

test('disassemble renders instructions readably (for traces and error messages)', () => {
  assert.equal(disassemble(asm.addi(5, 6, -1)), 'addi x5, x6, -1');
  assert.equal(disassemble(asm.lw(1, 2, 8)), 'lw x1, 8(x2)');
  assert.equal(disassemble(asm.sw(3, 4, -4)), 'sw x3, -4(x4)');
  assert.equal(disassemble(asm.beq(1, 2, 16), 0x1000), 'beq x1, x2, 0x1010');
  assert.equal(disassemble(asm.csrrs(5, Csr.mstatus, 0)), 'csrrs x5, 0x300, x0');
  assert.equal(disassemble(asm.amoaddw(1, 2, 3)), 'amoadd.w x1, x3, (x2)');
  assert.equal(disassemble(0xffffffff), 'illegal 0xffffffff');
});

test('a trap vector into zeros (every handler illegal at once) stops the machine instead of spinning', () => {
  const ram = new Ram(1 << 20);
  let stuck = '';
  const hart = new Hart({ ram, bus: new Bus(), readTime: () => 0n, watchedStore: () => {}, trapLoop: (reason) => {
    stuck = reason;
    hart.halt();
  } });
  [...li(1, base + 0x8000), asm.csrrw(0, Csr.mtvec, 1), 0xffffffff].forEach((word, index) => (ram.i32[index] = word));
  hart.reset(base);
  const result = hart.run(1_000_000);
  assert.equal(result.reason, 'halt');
  assert.match(stuck, /every trap faults at once: cause 2/);
  assert.ok(result.retired < 20_000);
});

test('the trap-loop watch travels in snapshots: a hart restored mid-loop stops at the same instruction', () => {
  const program = [...li(1, base + 0x8000), asm.csrrw(0, Csr.mtvec, 1), 0xffffffff];
  const start = (): { hart: Hart; stuckAt: () => number | undefined } => {
    const ram = new Ram(1 << 20);
    let stuckAt: number | undefined;
    const hart: Hart = new Hart({ ram, bus: new Bus(), readTime: () => 0n, watchedStore: () => {}, trapLoop: () => {
      stuckAt = hart.currentRetired;
      hart.halt();
    } });
    program.forEach((word, index) => (ram.i32[index] = word));
    return { hart, stuckAt: () => stuckAt };
  };
  const whole = start();
  whole.hart.reset(base);
  whole.hart.run(1_000_000);
  assert.ok(whole.stuckAt() !== undefined);

  const first = start();
  first.hart.reset(base);
  first.hart.run(5_000); // part of the way into the loop
  const writer = new SnapshotWriter();
  first.hart.save(writer);
  const second = start();
  second.hart.restore(new SnapshotReader(writer.finish()));
  second.hart.run(1_000_000);
  assert.equal(second.stuckAt(), whole.stuckAt());
});
