/**
 * A small RV32 instruction encoder: the inverse of decode.ts, for tests and tools that need
 * machine code without an assembler.
 */

const r = (funct7: number, rs2: number, rs1: number, funct3: number, rd: number, opcode: number): number =>
  ((funct7 << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode) >>> 0;
const i = (imm: number, rs1: number, funct3: number, rd: number, opcode: number): number =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode) >>> 0;
const s = (imm: number, rs2: number, rs1: number, funct3: number, opcode: number): number =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) | ((imm & 0x1f) << 7) | opcode) >>> 0;
const b = (imm: number, rs2: number, rs1: number, funct3: number): number =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) |
    (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
const u = (imm: number, rd: number, opcode: number): number => ((imm & 0xfffff000) | (rd << 7) | opcode) >>> 0;
const j = (imm: number, rd: number): number =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) | (rd << 7) | 0x6f) >>> 0;

export const asm = {
  lui: (rd: number, imm: number) => u(imm, rd, 0x37),
  auipc: (rd: number, imm: number) => u(imm, rd, 0x17),
  jal: (rd: number, offset: number) => j(offset, rd),
  jalr: (rd: number, rs1: number, offset: number) => i(offset, rs1, 0, rd, 0x67),
  beq: (rs1: number, rs2: number, offset: number) => b(offset, rs2, rs1, 0),
  bne: (rs1: number, rs2: number, offset: number) => b(offset, rs2, rs1, 1),
  blt: (rs1: number, rs2: number, offset: number) => b(offset, rs2, rs1, 4),
  bge: (rs1: number, rs2: number, offset: number) => b(offset, rs2, rs1, 5),
  bltu: (rs1: number, rs2: number, offset: number) => b(offset, rs2, rs1, 6),
  bgeu: (rs1: number, rs2: number, offset: number) => b(offset, rs2, rs1, 7),
  lb: (rd: number, rs1: number, offset: number) => i(offset, rs1, 0, rd, 0x03),
  lh: (rd: number, rs1: number, offset: number) => i(offset, rs1, 1, rd, 0x03),
  lw: (rd: number, rs1: number, offset: number) => i(offset, rs1, 2, rd, 0x03),
  lbu: (rd: number, rs1: number, offset: number) => i(offset, rs1, 4, rd, 0x03),
  lhu: (rd: number, rs1: number, offset: number) => i(offset, rs1, 5, rd, 0x03),
  sb: (rs2: number, rs1: number, offset: number) => s(offset, rs2, rs1, 0, 0x23),
  sh: (rs2: number, rs1: number, offset: number) => s(offset, rs2, rs1, 1, 0x23),
  sw: (rs2: number, rs1: number, offset: number) => s(offset, rs2, rs1, 2, 0x23),
  addi: (rd: number, rs1: number, imm: number) => i(imm, rs1, 0, rd, 0x13),
  slti: (rd: number, rs1: number, imm: number) => i(imm, rs1, 2, rd, 0x13),
  sltiu: (rd: number, rs1: number, imm: number) => i(imm, rs1, 3, rd, 0x13),
  xori: (rd: number, rs1: number, imm: number) => i(imm, rs1, 4, rd, 0x13),
  ori: (rd: number, rs1: number, imm: number) => i(imm, rs1, 6, rd, 0x13),
  andi: (rd: number, rs1: number, imm: number) => i(imm, rs1, 7, rd, 0x13),
  slli: (rd: number, rs1: number, shamt: number) => i(shamt, rs1, 1, rd, 0x13),
  srli: (rd: number, rs1: number, shamt: number) => i(shamt, rs1, 5, rd, 0x13),
  srai: (rd: number, rs1: number, shamt: number) => i(0x400 | shamt, rs1, 5, rd, 0x13),
  add: (rd: number, rs1: number, rs2: number) => r(0, rs2, rs1, 0, rd, 0x33),
  sub: (rd: number, rs1: number, rs2: number) => r(0x20, rs2, rs1, 0, rd, 0x33),
  sll: (rd: number, rs1: number, rs2: number) => r(0, rs2, rs1, 1, rd, 0x33),
  slt: (rd: number, rs1: number, rs2: number) => r(0, rs2, rs1, 2, rd, 0x33),
  sltu: (rd: number, rs1: number, rs2: number) => r(0, rs2, rs1, 3, rd, 0x33),
  xor: (rd: number, rs1: number, rs2: number) => r(0, rs2, rs1, 4, rd, 0x33),
  srl: (rd: number, rs1: number, rs2: number) => r(0, rs2, rs1, 5, rd, 0x33),
  sra: (rd: number, rs1: number, rs2: number) => r(0x20, rs2, rs1, 5, rd, 0x33),
  or: (rd: number, rs1: number, rs2: number) => r(0, rs2, rs1, 6, rd, 0x33),
  and: (rd: number, rs1: number, rs2: number) => r(0, rs2, rs1, 7, rd, 0x33),
  mul: (rd: number, rs1: number, rs2: number) => r(1, rs2, rs1, 0, rd, 0x33),
  mulh: (rd: number, rs1: number, rs2: number) => r(1, rs2, rs1, 1, rd, 0x33),
  mulhsu: (rd: number, rs1: number, rs2: number) => r(1, rs2, rs1, 2, rd, 0x33),
  mulhu: (rd: number, rs1: number, rs2: number) => r(1, rs2, rs1, 3, rd, 0x33),
  div: (rd: number, rs1: number, rs2: number) => r(1, rs2, rs1, 4, rd, 0x33),
  divu: (rd: number, rs1: number, rs2: number) => r(1, rs2, rs1, 5, rd, 0x33),
  rem: (rd: number, rs1: number, rs2: number) => r(1, rs2, rs1, 6, rd, 0x33),
  remu: (rd: number, rs1: number, rs2: number) => r(1, rs2, rs1, 7, rd, 0x33),
  lrw: (rd: number, rs1: number) => r(0x08, 0, rs1, 2, rd, 0x2f),
  scw: (rd: number, rs1: number, rs2: number) => r(0x0c, rs2, rs1, 2, rd, 0x2f),
  amoaddw: (rd: number, rs1: number, rs2: number) => r(0x00, rs2, rs1, 2, rd, 0x2f),
  amoswapw: (rd: number, rs1: number, rs2: number) => r(0x04, rs2, rs1, 2, rd, 0x2f),
  fence: () => 0x0ff0000f,
  fencei: () => 0x0000100f,
  ecall: () => 0x00000073,
  ebreak: () => 0x00100073,
  mret: () => 0x30200073,
  sret: () => 0x10200073,
  wfi: () => 0x10500073,
  sfencevma: (rs1: number, rs2: number) => r(0x09, rs2, rs1, 0, 0, 0x73),
  csrrw: (rd: number, csr: number, rs1: number) => i(csr, rs1, 1, rd, 0x73),
  csrrs: (rd: number, csr: number, rs1: number) => i(csr, rs1, 2, rd, 0x73),
  csrrc: (rd: number, csr: number, rs1: number) => i(csr, rs1, 3, rd, 0x73),
  csrrwi: (rd: number, csr: number, zimm: number) => i(csr, zimm, 5, rd, 0x73),
  csrrsi: (rd: number, csr: number, zimm: number) => i(csr, zimm, 6, rd, 0x73),
  csrrci: (rd: number, csr: number, zimm: number) => i(csr, zimm, 7, rd, 0x73),
} as const;

/** Bits [high:low] of `value`, placed at bit `at`. */
const field = (value: number, high: number, low: number, at: number): number => ((value >>> low) & ((1 << (high - low + 1)) - 1)) << at;
/** x8..x15 as the 3-bit register field of the compressed formats. */
const p = (register: number): number => {
  if (register < 8 || register > 15) throw new RangeError(`x${register} has no 3-bit encoding`);
  return register - 8;
};
const ci = (funct3: number, imm: number, rd: number, op: number): number =>
  (funct3 << 13) | field(imm, 5, 5, 12) | (rd << 7) | field(imm, 4, 0, 2) | op;
const cj = (funct3: number, offset: number): number =>
  (funct3 << 13) | field(offset, 11, 11, 12) | field(offset, 4, 4, 11) | field(offset, 9, 8, 9) | field(offset, 10, 10, 8) |
  field(offset, 6, 6, 7) | field(offset, 7, 7, 6) | field(offset, 3, 1, 3) | field(offset, 5, 5, 2) | 1;
const cb = (funct3: number, rs1: number, offset: number): number =>
  (funct3 << 13) | field(offset, 8, 8, 12) | field(offset, 4, 3, 10) | (p(rs1) << 7) | field(offset, 7, 6, 5) |
  field(offset, 2, 1, 3) | field(offset, 5, 5, 2) | 1;
const clw = (funct3: number, reg: number, rs1: number, offset: number): number =>
  (funct3 << 13) | field(offset, 5, 3, 10) | (p(rs1) << 7) | field(offset, 2, 2, 6) | field(offset, 6, 6, 5) | (p(reg) << 2);
const ca = (funct2: number, rd: number, rs2: number): number => 0x8c01 | (p(rd) << 7) | (funct2 << 5) | (p(rs2) << 2);

/**
 * The C extension's 16-bit encodings (RV32C), as halfwords. No checks of the reserved
 * cases: tests use this to build them on purpose.
 */
export const casm = {
  addi4spn: (rd: number, nzuimm: number) =>
    field(nzuimm, 5, 4, 11) | field(nzuimm, 9, 6, 7) | field(nzuimm, 2, 2, 6) | field(nzuimm, 3, 3, 5) | (p(rd) << 2),
  lw: (rd: number, rs1: number, offset: number) => clw(2, rd, rs1, offset),
  sw: (rs2: number, rs1: number, offset: number) => clw(6, rs2, rs1, offset),
  nop: () => 0x0001,
  addi: (rd: number, imm: number) => ci(0, imm, rd, 1),
  jal: (offset: number) => cj(1, offset),
  li: (rd: number, imm: number) => ci(2, imm, rd, 1),
  addi16sp: (nzimm: number) =>
    0x6101 | field(nzimm, 9, 9, 12) | field(nzimm, 4, 4, 6) | field(nzimm, 6, 6, 5) | field(nzimm, 8, 7, 3) | field(nzimm, 5, 5, 2),
  /** `imm` is nzimm[17:12], the value of bits 17:12 of the result. */
  lui: (rd: number, imm: number) => ci(3, imm, rd, 1),
  srli: (rd: number, shamt: number) => ci(4, shamt, p(rd), 1),
  srai: (rd: number, shamt: number) => ci(4, shamt, p(rd) | 8, 1),
  andi: (rd: number, imm: number) => ci(4, imm, p(rd) | 16, 1),
  sub: (rd: number, rs2: number) => ca(0, rd, rs2),
  xor: (rd: number, rs2: number) => ca(1, rd, rs2),
  or: (rd: number, rs2: number) => ca(2, rd, rs2),
  and: (rd: number, rs2: number) => ca(3, rd, rs2),
  j: (offset: number) => cj(5, offset),
  beqz: (rs1: number, offset: number) => cb(6, rs1, offset),
  bnez: (rs1: number, offset: number) => cb(7, rs1, offset),
  slli: (rd: number, shamt: number) => ci(0, shamt, rd, 2),
  lwsp: (rd: number, offset: number) => (2 << 13) | field(offset, 5, 5, 12) | (rd << 7) | field(offset, 4, 2, 4) | field(offset, 7, 6, 2) | 2,
  swsp: (rs2: number, offset: number) => (6 << 13) | field(offset, 5, 2, 9) | field(offset, 7, 6, 7) | (rs2 << 2) | 2,
  jr: (rs1: number) => 0x8002 | (rs1 << 7),
  mv: (rd: number, rs2: number) => 0x8002 | (rd << 7) | (rs2 << 2),
  ebreak: () => 0x9002,
  jalr: (rs1: number) => 0x9002 | (rs1 << 7),
  add: (rd: number, rs2: number) => 0x9002 | (rd << 7) | (rs2 << 2),
} as const;

/** Rounding-mode field values (rm): 0..4 are RNE, RTZ, RDN, RUP, RMM; 7 is DYN (frm's). */
export const rmDynamic = 7;

const fp = (funct5: number, fmt: number, rs2: number, rs1: number, rm: number, rd: number): number => r((funct5 << 2) | fmt, rs2, rs1, rm, rd, 0x53);
const r4 = (opcode: number, fmt: number, rs3: number, rs2: number, rs1: number, rm: number, rd: number): number =>
  ((rs3 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | opcode) >>> 0;

/**
 * The F and D instructions (fmt 0 = S, 1 = D). Register numbers are f registers except where
 * the name says x (the address base of loads and stores, the integer side of moves,
 * conversions and compares). `rm` defaults to DYN, as assemblers do.
 */
export const fasm = {
  flw: (rd: number, rs1: number, offset: number) => i(offset, rs1, 2, rd, 0x07),
  fld: (rd: number, rs1: number, offset: number) => i(offset, rs1, 3, rd, 0x07),
  fsw: (rs2: number, rs1: number, offset: number) => s(offset, rs2, rs1, 2, 0x27),
  fsd: (rs2: number, rs1: number, offset: number) => s(offset, rs2, rs1, 3, 0x27),
  fmadd: (fmt: number, rd: number, rs1: number, rs2: number, rs3: number, rm = rmDynamic) => r4(0x43, fmt, rs3, rs2, rs1, rm, rd),
  fmsub: (fmt: number, rd: number, rs1: number, rs2: number, rs3: number, rm = rmDynamic) => r4(0x47, fmt, rs3, rs2, rs1, rm, rd),
  fnmsub: (fmt: number, rd: number, rs1: number, rs2: number, rs3: number, rm = rmDynamic) => r4(0x4b, fmt, rs3, rs2, rs1, rm, rd),
  fnmadd: (fmt: number, rd: number, rs1: number, rs2: number, rs3: number, rm = rmDynamic) => r4(0x4f, fmt, rs3, rs2, rs1, rm, rd),
  fadd: (fmt: number, rd: number, rs1: number, rs2: number, rm = rmDynamic) => fp(0x00, fmt, rs2, rs1, rm, rd),
  fsub: (fmt: number, rd: number, rs1: number, rs2: number, rm = rmDynamic) => fp(0x01, fmt, rs2, rs1, rm, rd),
  fmul: (fmt: number, rd: number, rs1: number, rs2: number, rm = rmDynamic) => fp(0x02, fmt, rs2, rs1, rm, rd),
  fdiv: (fmt: number, rd: number, rs1: number, rs2: number, rm = rmDynamic) => fp(0x03, fmt, rs2, rs1, rm, rd),
  fsqrt: (fmt: number, rd: number, rs1: number, rm = rmDynamic) => fp(0x0b, fmt, 0, rs1, rm, rd),
  fsgnj: (fmt: number, rd: number, rs1: number, rs2: number) => fp(0x04, fmt, rs2, rs1, 0, rd),
  fsgnjn: (fmt: number, rd: number, rs1: number, rs2: number) => fp(0x04, fmt, rs2, rs1, 1, rd),
  fsgnjx: (fmt: number, rd: number, rs1: number, rs2: number) => fp(0x04, fmt, rs2, rs1, 2, rd),
  fmin: (fmt: number, rd: number, rs1: number, rs2: number) => fp(0x05, fmt, rs2, rs1, 0, rd),
  fmax: (fmt: number, rd: number, rs1: number, rs2: number) => fp(0x05, fmt, rs2, rs1, 1, rd),
  /** fcvt.s.d (fmt 0, from D) or fcvt.d.s (fmt 1, from S). */
  fcvtFormat: (fmt: number, rd: number, rs1: number, rm = rmDynamic) => fp(0x08, fmt, 1 - fmt, rs1, rm, rd),
  fle: (fmt: number, xd: number, rs1: number, rs2: number) => fp(0x14, fmt, rs2, rs1, 0, xd),
  flt: (fmt: number, xd: number, rs1: number, rs2: number) => fp(0x14, fmt, rs2, rs1, 1, xd),
  feq: (fmt: number, xd: number, rs1: number, rs2: number) => fp(0x14, fmt, rs2, rs1, 2, xd),
  /** fcvt.w.fmt (unsigned = 0) or fcvt.wu.fmt (1). */
  fcvtToInteger: (fmt: number, xd: number, rs1: number, unsigned: number, rm = rmDynamic) => fp(0x18, fmt, unsigned, rs1, rm, xd),
  /** fcvt.fmt.w (unsigned = 0) or fcvt.fmt.wu (1). */
  fcvtFromInteger: (fmt: number, rd: number, xs1: number, unsigned: number, rm = rmDynamic) => fp(0x1a, fmt, unsigned, xs1, rm, rd),
  fmvXW: (xd: number, rs1: number) => fp(0x1c, 0, 0, rs1, 0, xd),
  fclass: (fmt: number, xd: number, rs1: number) => fp(0x1c, fmt, 0, rs1, 1, xd),
  fmvWX: (rd: number, xs1: number) => fp(0x1e, 0, 0, xs1, 0, rd),
} as const;

/** C.FLD/C.FSD offsets: uimm[5:3] in bits 12:10, uimm[7:6] in 6:5. */
const cld = (funct3: number, reg: number, rs1: number, offset: number): number =>
  (funct3 << 13) | field(offset, 5, 3, 10) | (p(rs1) << 7) | field(offset, 7, 6, 5) | (p(reg) << 2);

/** The compressed F and D loads and stores (RV32FC, RV32DC), as halfwords. */
export const cfasm = {
  fld: (rd: number, rs1: number, offset: number) => cld(1, rd, rs1, offset),
  flw: (rd: number, rs1: number, offset: number) => clw(3, rd, rs1, offset),
  fsd: (rs2: number, rs1: number, offset: number) => cld(5, rs2, rs1, offset),
  fsw: (rs2: number, rs1: number, offset: number) => clw(7, rs2, rs1, offset),
  fldsp: (rd: number, offset: number) => (1 << 13) | field(offset, 5, 5, 12) | (rd << 7) | field(offset, 4, 3, 5) | field(offset, 8, 6, 2) | 2,
  flwsp: (rd: number, offset: number) => (3 << 13) | field(offset, 5, 5, 12) | (rd << 7) | field(offset, 4, 2, 4) | field(offset, 7, 6, 2) | 2,
  fsdsp: (rs2: number, offset: number) => (5 << 13) | field(offset, 5, 3, 10) | field(offset, 8, 6, 7) | (rs2 << 2) | 2,
  fswsp: (rs2: number, offset: number) => (7 << 13) | field(offset, 5, 2, 9) | field(offset, 7, 6, 7) | (rs2 << 2) | 2,
} as const;

/** Halfwords packed into little-endian 32-bit words (an odd count is padded with C.NOP). */
export function packHalves(halves: readonly number[]): number[] {
  const words: number[] = [];
  for (let index = 0; index < halves.length; index += 2) words.push(((halves[index]! & 0xffff) | ((halves[index + 1] ?? 0x0001) << 16)) >>> 0);
  return words;
}

/** Instruction words as little-endian bytes: a raw image. */
export function assemble(words: readonly number[]): Uint8Array {
  const bytes = new Uint8Array(words.length * 4);
  const view = new DataView(bytes.buffer);
  words.forEach((word, index) => view.setUint32(index * 4, word >>> 0, true));
  return bytes;
}

/** Loads a 32-bit constant into `rd` (lui + addi, like the `li` pseudo-instruction). */
export function li(rd: number, value: number): number[] {
  const low = (value << 20) >> 20;
  const high = (value - low) | 0;
  return high === 0 ? [asm.addi(rd, 0, low)] : [asm.lui(rd, high), asm.addi(rd, rd, low)];
}

/** Where {@link linuxImage} asks to be loaded, from the start of RAM (its header's text_offset). */
export const linuxImageTextOffset = 0x40_0000;

/** A RISC-V Linux Image (Documentation/riscv/boot-image-header.rst) whose code0 jumps past the header to `code`. */
export function linuxImage(code: readonly number[]): Uint8Array {
  const image = new Uint8Array(64 + code.length * 4);
  const view = new DataView(image.buffer);
  view.setUint32(0, asm.jal(0, 64), true);
  view.setBigUint64(0x08, BigInt(linuxImageTextOffset), true);
  view.setBigUint64(0x10, BigInt(image.length), true);
  view.setUint32(0x30, 0x43534952, true); // "RISC"
  view.setUint32(0x34, 0x00000056, true); // "V\0\0\0"
  view.setUint32(0x38, 0x05435352, true); // "RSC\x05"
  code.forEach((word, i) => view.setUint32(64 + i * 4, word >>> 0, true));
  return image;
}
