/**
 * RV32IMAFDC + Zicsr + Zifencei + privileged-instruction decoder (16-bit encodings: decode-compressed.ts).
 *
 * Decoding is kept apart from execution: the interpreter executes decoded instructions from a
 * per-page cache (cpu.ts packs each into two int32 words), and a later translation tier
 * decodes with this same function. `imm` is the sign-extended immediate (for CSR
 * instructions: the CSR number; for ILLEGAL and the F and D instructions: the instruction bits, which become mtval).
 * `op` is never 0, so 0 marks an empty cache slot. Reserved encodings decode to ILLEGAL; like
 * QEMU with -icount, an instruction that is illegal at decode time counts as executed when it
 * traps (see docs/ARCHITECTURE.md, "Counting instructions").
 */

import { Op, opNames, type Decoded, type OpCode } from './ops.js';
import { decodeCompressed } from './decode-compressed.js';

export { Op, opCount, opNames } from './ops.js';
export type { Decoded, OpCode } from './ops.js';

/** ILLEGAL carries the instruction's bits, which become mtval. */
const illegal = (insn: number): Decoded => ({ op: Op.ILLEGAL, rd: 0, rs1: 0, rs2: 0, imm: insn | 0, length: 4 });

function immI(insn: number): number {
  return insn >> 20;
}
function immS(insn: number): number {
  return ((insn >> 25) << 5) | ((insn >>> 7) & 0x1f);
}
function immB(insn: number): number {
  return ((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1);
}
function immU(insn: number): number {
  return insn & 0xfffff000;
}
function immJ(insn: number): number {
  return ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);
}

const branchOps: readonly (OpCode | undefined)[] = [Op.BEQ, Op.BNE, undefined, undefined, Op.BLT, Op.BGE, Op.BLTU, Op.BGEU];
const loadOps: readonly (OpCode | undefined)[] = [Op.LB, Op.LH, Op.LW, undefined, Op.LBU, Op.LHU, undefined, undefined];
const storeOps: readonly (OpCode | undefined)[] = [Op.SB, Op.SH, Op.SW];
const immOps: readonly OpCode[] = [Op.ADDI, Op.SLLI, Op.SLTI, Op.SLTIU, Op.XORI, Op.SRLI, Op.ORI, Op.ANDI];
const regOps: readonly OpCode[] = [Op.ADD, Op.SLL, Op.SLT, Op.SLTU, Op.XOR, Op.SRL, Op.OR, Op.AND];
const mulOps: readonly OpCode[] = [Op.MUL, Op.MULH, Op.MULHSU, Op.MULHU, Op.DIV, Op.DIVU, Op.REM, Op.REMU];
const csrOps: readonly (OpCode | undefined)[] = [undefined, Op.CSRRW, Op.CSRRS, Op.CSRRC, undefined, Op.CSRRWI, Op.CSRRSI, Op.CSRRCI];
const amoOps: ReadonlyMap<number, OpCode> = new Map<number, OpCode>([
  [0x00, Op.AMOADD_W], [0x01, Op.AMOSWAP_W], [0x04, Op.AMOXOR_W], [0x08, Op.AMOOR_W], [0x0c, Op.AMOAND_W],
  [0x10, Op.AMOMIN_W], [0x14, Op.AMOMAX_W], [0x18, Op.AMOMINU_W], [0x1c, Op.AMOMAXU_W],
]);

/**
 * Decodes the instruction at the start of `insn` (the 32 bits at its address, the lower
 * halfword first): a 16-bit one when the low two bits are not 0b11 (the upper half is then
 * ignored), else a 32-bit one. Never throws: unknown encodings are ILLEGAL.
 */
export function decode(insn: number): Decoded {
  if ((insn & 3) !== 3) return decodeCompressed(insn & 0xffff);
  insn |= 0;
  const rd = (insn >>> 7) & 31;
  const rs1 = (insn >>> 15) & 31;
  const rs2 = (insn >>> 20) & 31;
  const funct3 = (insn >>> 12) & 7;
  const funct7 = insn >>> 25;
  const make = (op: OpCode, imm: number): Decoded => ({ op, rd, rs1, rs2, imm, length: 4 });
  switch (insn & 0x7f) {
    case 0x37:
      return make(Op.LUI, immU(insn));
    case 0x17:
      return make(Op.AUIPC, immU(insn));
    case 0x6f:
      return make(Op.JAL, immJ(insn));
    case 0x67:
      return funct3 === 0 ? make(Op.JALR, immI(insn)) : illegal(insn);
    case 0x63: {
      const op = branchOps[funct3];
      return op === undefined ? illegal(insn) : make(op, immB(insn));
    }
    case 0x03: {
      const op = loadOps[funct3];
      return op === undefined ? illegal(insn) : make(op, immI(insn));
    }
    case 0x23: {
      const op = storeOps[funct3];
      return op === undefined ? illegal(insn) : make(op, immS(insn));
    }
    case 0x13: {
      const op = immOps[funct3]!;
      if (op === Op.SLLI) return funct7 === 0 ? make(op, rs2) : illegal(insn);
      if (op === Op.SRLI) {
        if (funct7 === 0) return make(Op.SRLI, rs2);
        if (funct7 === 0x20) return make(Op.SRAI, rs2);
        return illegal(insn);
      }
      return make(op, immI(insn));
    }
    case 0x33: {
      if (funct7 === 0) return make(regOps[funct3]!, 0);
      if (funct7 === 1) return make(mulOps[funct3]!, 0);
      if (funct7 === 0x20) {
        if (funct3 === 0) return make(Op.SUB, 0);
        if (funct3 === 5) return make(Op.SRA, 0);
      }
      return illegal(insn);
    }
    case 0x0f:
      // FENCE ignores fm/pred/succ/rs1/rd (FENCE.TSO and PAUSE are fences too); FENCE.I its fields.
      if (funct3 === 0) return make(Op.FENCE, 0);
      if (funct3 === 1) return make(Op.FENCE_I, 0);
      return illegal(insn);
    case 0x2f: {
      if (funct3 !== 2) return illegal(insn);
      const funct5 = funct7 >>> 2;
      if (funct5 === 0x02) return rs2 === 0 ? make(Op.LR_W, 0) : illegal(insn);
      if (funct5 === 0x03) return make(Op.SC_W, 0);
      const op = amoOps.get(funct5);
      return op === undefined ? illegal(insn) : make(op, 0);
    }
    case 0x73:
      return decodeSystem(insn, rd, rs1, rs2, funct3, funct7);
    case 0x07: // LOAD-FP: FLW, FLD
      if (funct3 === 2) return make(Op.FLW, insn);
      return funct3 === 3 ? make(Op.FLD, insn) : illegal(insn);
    case 0x27: // STORE-FP: FSW, FSD
      if (funct3 === 2) return make(Op.FSW, insn);
      return funct3 === 3 ? make(Op.FSD, insn) : illegal(insn);
    case 0x43: case 0x47: case 0x4b: case 0x4f: // FMADD, FMSUB, FNMSUB, FNMADD: fmt S or D
      return (funct7 & 3) <= 1 ? make(Op.FP, insn) : illegal(insn);
    case 0x53:
      return isFloatOperation(funct7, funct3, rs2) ? make(Op.FP, insn) : illegal(insn);
    default:
      return illegal(insn);
  }
}

/**
 * Whether an OP-FP instruction exists in RV32FD (unprivileged spec, chapter 24's table): the
 * fields that select it (funct7, and funct3 or rs2 where they do) must match. Its rm field,
 * where it has one, is checked when it runs: DYN depends on frm.
 */
function isFloatOperation(funct7: number, funct3: number, rs2: number): boolean {
  if ((funct7 & 3) > 1) return false; // fmt: S or D only
  switch (funct7 >>> 2) {
    case 0x00: case 0x01: case 0x02: case 0x03: return true; // FADD, FSUB, FMUL, FDIV
    case 0x0b: return rs2 === 0; // FSQRT
    case 0x04: return funct3 <= 2; // FSGNJ, FSGNJN, FSGNJX
    case 0x05: return funct3 <= 1; // FMIN, FMAX
    case 0x08: return rs2 === 1 - (funct7 & 1); // FCVT.S.D (rs2 = 1), FCVT.D.S (rs2 = 0)
    case 0x14: return funct3 <= 2; // FLE, FLT, FEQ
    case 0x18: case 0x1a: return rs2 <= 1; // FCVT.W[U].fmt, FCVT.fmt.W[U]
    case 0x1c: return rs2 === 0 && (funct3 === 1 || (funct3 === 0 && funct7 === 0x70)); // FCLASS, FMV.X.W
    case 0x1e: return rs2 === 0 && funct3 === 0 && funct7 === 0x78; // FMV.W.X
    default: return false;
  }
}

function decodeSystem(insn: number, rd: number, rs1: number, rs2: number, funct3: number, funct7: number): Decoded {
  if (funct3 === 0) {
    switch (insn >>> 0) {
      case 0x00000073: return { op: Op.ECALL, rd: 0, rs1: 0, rs2: 0, imm: 0, length: 4 };
      case 0x00100073: return { op: Op.EBREAK, rd: 0, rs1: 0, rs2: 0, imm: 0, length: 4 };
      case 0x30200073: return { op: Op.MRET, rd: 0, rs1: 0, rs2: 0, imm: 0, length: 4 };
      case 0x10200073: return { op: Op.SRET, rd: 0, rs1: 0, rs2: 0, imm: 0, length: 4 };
      case 0x10500073: return { op: Op.WFI, rd: 0, rs1: 0, rs2: 0, imm: 0, length: 4 };
    }
    if (funct7 === 0x09 && rd === 0) return { op: Op.SFENCE_VMA, rd: 0, rs1, rs2, imm: 0, length: 4 };
    return illegal(insn);
  }
  const op = csrOps[funct3];
  if (op === undefined) return illegal(insn);
  return { op, rd, rs1, rs2: 0, imm: insn >>> 20, length: 4 };
}

/** A readable rendering, for traces and error messages. */
export function disassemble(insn: number, pc = 0): string {
  const d = decode(insn);
  const name = opNames[d.op] ?? '?';
  const x = (r: number): string => `x${r}`;
  const hex = (v: number): string => '0x' + (v >>> 0).toString(16);
  switch (d.op) {
    case Op.LUI: case Op.AUIPC: return `${name} ${x(d.rd)}, ${hex(d.imm >>> 12)}`;
    case Op.JAL: return `${name} ${x(d.rd)}, ${hex(pc + d.imm)}`;
    case Op.JALR: return `${name} ${x(d.rd)}, ${d.imm}(${x(d.rs1)})`;
    case Op.BEQ: case Op.BNE: case Op.BLT: case Op.BGE: case Op.BLTU: case Op.BGEU:
      return `${name} ${x(d.rs1)}, ${x(d.rs2)}, ${hex(pc + d.imm)}`;
    case Op.LB: case Op.LH: case Op.LW: case Op.LBU: case Op.LHU:
      return `${name} ${x(d.rd)}, ${d.imm}(${x(d.rs1)})`;
    case Op.SB: case Op.SH: case Op.SW: return `${name} ${x(d.rs2)}, ${d.imm}(${x(d.rs1)})`;
    case Op.CSRRW: case Op.CSRRS: case Op.CSRRC: return `${name} ${x(d.rd)}, ${hex(d.imm)}, ${x(d.rs1)}`;
    case Op.CSRRWI: case Op.CSRRSI: case Op.CSRRCI: return `${name} ${x(d.rd)}, ${hex(d.imm)}, ${d.rs1}`;
    case Op.ILLEGAL: return `illegal ${hex(d.imm)}`;
    case Op.FLW: case Op.FSW: case Op.FLD: case Op.FSD: case Op.FP: return `${name} ${hex(d.imm)}`;
    case Op.FENCE: case Op.FENCE_I: case Op.ECALL: case Op.EBREAK: case Op.MRET: case Op.SRET: case Op.WFI: return name;
    case Op.SFENCE_VMA: return `${name} ${x(d.rs1)}, ${x(d.rs2)}`;
    default:
      if (d.op >= Op.ADDI && d.op <= Op.SRAI) return `${name} ${x(d.rd)}, ${x(d.rs1)}, ${d.imm}`;
      if (d.op >= Op.LR_W) return `${name} ${x(d.rd)}, ${x(d.rs2)}, (${x(d.rs1)})`;
      return `${name} ${x(d.rd)}, ${x(d.rs1)}, ${x(d.rs2)}`;
  }
}
