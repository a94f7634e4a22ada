/**
 * The C extension's 16-bit encodings (unprivileged spec, "C" Standard Extension, RV32C),
 * each decoded to the 32-bit instruction it expands to, with the same op numbers and fields
 * as decode.ts, so that the run loop executes both alike; only the length differs (the link
 * register of C.JAL and C.JALR gets pc + 2).
 *
 * Reserved encodings decode to ILLEGAL with the 16 bits as the immediate (mtval, as QEMU 7.2
 * reports them): the all-zero halfword and C.ADDI4SPN with nzuimm = 0, C.LWSP with rd = 0,
 * C.JR with rs1 = 0, C.ADDI16SP and C.LUI with a zero immediate (for C.LUI whatever rd), the
 * RV32 shifts with shamt[5] = 1 (custom-use code points, NSE), the RV64-only C.SUBW/C.ADDW
 * and the reserved quadrant-0 opcode. The F and D loads and stores decode like their 32-bit
 * forms, with the 16 bits as the immediate ({@link decodeFloatingPoint}). HINTs (rd = x0, C.NOP with an immediate, shifts by 0)
 * execute as the instructions they expand to, which write nothing that can be seen.
 */
import { Op, type Decoded, type OpCode } from './ops.js';

/** The stack pointer and the link register, as the compressed forms imply them. */
const sp = 2;
const ra = 1;

const illegal16 = (half: number): Decoded => ({ op: Op.ILLEGAL, rd: 0, rs1: 0, rs2: 0, imm: half, length: 2 });

const make = (op: OpCode, rd: number, rs1: number, rs2: number, imm: number): Decoded => ({ op, rd, rs1, rs2, imm, length: 2 });

/** Bit `from` of `half`, moved to bit `to`. */
const bit = (half: number, from: number, to: number): number => ((half >>> from) & 1) << to;

/** The 6-bit immediate of CI formats, imm[5] = bit 12, imm[4:0] = bits 6:2, sign-extended. */
const immCi = (half: number): number => (((half >>> 12) & 1) * -32) | ((half >>> 2) & 31);

/** The unsigned 6-bit shift amount of C.SLLI, C.SRLI and C.SRAI (bit 12 is shamt[5]). */
const shamtCi = (half: number): number => (((half >>> 12) & 1) << 5) | ((half >>> 2) & 31);

/** The jump offset of C.J and C.JAL: offset[11|4|9:8|10|6|7|3:1|5], sign-extended. */
function immCj(half: number): number {
  const unsigned =
    bit(half, 12, 11) | bit(half, 11, 4) | (((half >>> 9) & 3) << 8) | bit(half, 8, 10) | bit(half, 7, 6) |
    bit(half, 6, 7) | (((half >>> 3) & 7) << 1) | bit(half, 2, 5);
  return (unsigned << 20) >> 20;
}

/** The branch offset of C.BEQZ and C.BNEZ: offset[8|4:3] in bits 12:10, [7:6|2:1|5] in 6:2. */
function immCb(half: number): number {
  const unsigned =
    bit(half, 12, 8) | (((half >>> 10) & 3) << 3) | (((half >>> 5) & 3) << 6) | (((half >>> 3) & 3) << 1) | bit(half, 2, 5);
  return (unsigned << 23) >> 23;
}

/** The word offset of C.LW and C.SW: uimm[5:3] in bits 12:10, uimm[2] in 6, uimm[6] in 5. */
const uimmClw = (half: number): number => (((half >>> 10) & 7) << 3) | bit(half, 6, 2) | bit(half, 5, 6);

/** x8..x15, the registers a 3-bit field names. */
const prime = (field: number): number => 8 + (field & 7);

/** Decodes one 16-bit instruction (`half`'s low two bits are not 0b11). Never throws. */
export function decodeCompressed(half: number): Decoded {
  half &= 0xffff;
  const funct3 = half >>> 13;
  const rd = (half >>> 7) & 31;
  const rs2 = (half >>> 2) & 31;
  switch (((half & 3) << 3) | funct3) {
    // Quadrant 0
    case 0x00: {
      // C.ADDI4SPN: nzuimm[5:4|9:6|2|3]; nzuimm = 0 (which includes the all-zero halfword) is reserved.
      const nzuimm = (((half >>> 11) & 3) << 4) | (((half >>> 7) & 15) << 6) | bit(half, 6, 2) | bit(half, 5, 3);
      return nzuimm === 0 ? illegal16(half) : make(Op.ADDI, prime(half >>> 2), sp, 0, nzuimm);
    }
    case 0x02:
      return make(Op.LW, prime(half >>> 2), prime(half >>> 7), 0, uimmClw(half));
    case 0x06:
      return make(Op.SW, 0, prime(half >>> 7), prime(half >>> 2), uimmClw(half));
    // Quadrant 1
    case 0x08:
      return make(Op.ADDI, rd, rd, 0, immCi(half)); // C.ADDI; C.NOP when rd = 0
    case 0x09:
      return make(Op.JAL, ra, 0, 0, immCj(half)); // C.JAL (RV32 only)
    case 0x0a:
      return make(Op.ADDI, rd, 0, 0, immCi(half)); // C.LI
    case 0x0b: {
      if (rd === sp) {
        // C.ADDI16SP: nzimm[9] in bit 12, nzimm[4|6|8:7|5] in bits 6:2.
        const unsigned = bit(half, 12, 9) | bit(half, 6, 4) | bit(half, 5, 6) | (((half >>> 3) & 3) << 7) | bit(half, 2, 5);
        return unsigned === 0 ? illegal16(half) : make(Op.ADDI, sp, sp, 0, (unsigned << 22) >> 22);
      }
      // C.LUI: nzimm[17] in bit 12, nzimm[16:12] in bits 6:2; a zero immediate is reserved for every rd.
      const imm = immCi(half);
      return imm === 0 ? illegal16(half) : make(Op.LUI, rd, 0, 0, imm << 12);
    }
    case 0x0c:
      return decodeArithmetic(half);
    case 0x0d:
      return make(Op.JAL, 0, 0, 0, immCj(half)); // C.J
    case 0x0e:
      return make(Op.BEQ, 0, prime(half >>> 7), 0, immCb(half)); // C.BEQZ
    case 0x0f:
      return make(Op.BNE, 0, prime(half >>> 7), 0, immCb(half)); // C.BNEZ
    // Quadrant 2
    case 0x10: {
      const shamt = shamtCi(half);
      return shamt >= 32 ? illegal16(half) : make(Op.SLLI, rd, rd, shamt, shamt); // C.SLLI
    }
    case 0x12: {
      // C.LWSP: uimm[5] in bit 12, uimm[4:2] in 6:4, uimm[7:6] in 3:2; rd = 0 is reserved.
      const uimm = bit(half, 12, 5) | (((half >>> 4) & 7) << 2) | (((half >>> 2) & 3) << 6);
      return rd === 0 ? illegal16(half) : make(Op.LW, rd, sp, 0, uimm);
    }
    case 0x14:
      return decodeJumpMoveAdd(half, rd, rs2);
    case 0x16: {
      // C.SWSP: uimm[5:2] in bits 12:9, uimm[7:6] in 8:7.
      const uimm = (((half >>> 9) & 15) << 2) | (((half >>> 7) & 3) << 6);
      return make(Op.SW, 0, sp, rs2, uimm);
    }
    case 0x01: case 0x03: case 0x05: case 0x07: case 0x11: case 0x13: case 0x15: case 0x17:
      return decodeFloatingPoint(half);
    default:
      return illegal16(half); // quadrant 0, funct3 = 100: reserved
  }
}

/**
 * C.FLD, C.FLW, C.FSD, C.FSW (quadrant 0, funct3 001/011/101/111) and C.FLDSP, C.FLWSP,
 * C.FSDSP, C.FSWSP (quadrant 2, the same funct3s), RV32FC and RV32DC: the ops of FLD, FLW,
 * FSD, FSW with the 16 bits as the immediate (fp-instructions.ts takes the offset with
 * {@link compressedFloatOffset}, and mstatus.FS = Off makes them illegal there). f0 is a
 * valid rd of C.FLDSP and C.FLWSP (unlike x0 for C.LWSP).
 */
function decodeFloatingPoint(half: number): Decoded {
  const rd = (half >>> 7) & 31;
  const rs2 = (half >>> 2) & 31;
  switch (((half & 3) << 3) | (half >>> 13)) {
    case 0x01: return make(Op.FLD, prime(half >>> 2), prime(half >>> 7), 0, half); // C.FLD
    case 0x03: return make(Op.FLW, prime(half >>> 2), prime(half >>> 7), 0, half); // C.FLW
    case 0x05: return make(Op.FSD, 0, prime(half >>> 7), prime(half >>> 2), half); // C.FSD
    case 0x07: return make(Op.FSW, 0, prime(half >>> 7), prime(half >>> 2), half); // C.FSW
    case 0x11: return make(Op.FLD, rd, sp, 0, half); // C.FLDSP
    case 0x13: return make(Op.FLW, rd, sp, 0, half); // C.FLWSP
    case 0x15: return make(Op.FSD, 0, sp, rs2, half); // C.FSDSP
    case 0x17: return make(Op.FSW, 0, sp, rs2, half); // C.FSWSP
    default: return illegal16(half);
  }
}

/** Quadrant 1, funct3 = 100: C.SRLI, C.SRAI, C.ANDI, C.SUB, C.XOR, C.OR, C.AND. */
function decodeArithmetic(half: number): Decoded {
  const rd = prime(half >>> 7);
  switch ((half >>> 10) & 3) {
    case 0: {
      const shamt = shamtCi(half);
      return shamt >= 32 ? illegal16(half) : make(Op.SRLI, rd, rd, shamt, shamt);
    }
    case 1: {
      const shamt = shamtCi(half);
      return shamt >= 32 ? illegal16(half) : make(Op.SRAI, rd, rd, shamt, shamt);
    }
    case 2:
      return make(Op.ANDI, rd, rd, 0, immCi(half));
    default: {
      // Bit 12 set: C.SUBW and C.ADDW (RV64) or reserved.
      if ((half & 0x1000) !== 0) return illegal16(half);
      const ops = [Op.SUB, Op.XOR, Op.OR, Op.AND] as const;
      return make(ops[(half >>> 5) & 3]!, rd, rd, prime(half >>> 2), 0);
    }
  }
}

/** Quadrant 2, funct3 = 100: C.JR, C.MV, C.EBREAK, C.JALR, C.ADD. */
function decodeJumpMoveAdd(half: number, rd: number, rs2: number): Decoded {
  if ((half & 0x1000) === 0) {
    if (rs2 !== 0) return make(Op.ADD, rd, 0, rs2, 0); // C.MV
    return rd === 0 ? illegal16(half) : make(Op.JALR, 0, rd, 0, 0); // C.JR; rs1 = 0 is reserved
  }
  if (rs2 !== 0) return make(Op.ADD, rd, rd, rs2, 0); // C.ADD
  if (rd === 0) return make(Op.EBREAK, 0, 0, 0, 0); // C.EBREAK
  return make(Op.JALR, ra, rd, 0, 0); // C.JALR
}

/** The offset of C.LD: uimm[5:3] in bits 12:10, uimm[7:6] in 6:5. */
const uimmCld = (half: number): number => (((half >>> 10) & 7) << 3) | (((half >>> 5) & 3) << 6);

/**
 * The byte offset of a compressed floating-point load or store (the 16 bits `half`), which
 * the decoded form keeps as its immediate.
 */
export function compressedFloatOffset(half: number): number {
  switch (((half & 3) << 3) | ((half >>> 13) & 7)) {
    case 0x01: case 0x05: return uimmCld(half); // C.FLD, C.FSD
    case 0x03: case 0x07: return uimmClw(half); // C.FLW, C.FSW
    case 0x11: return bit(half, 12, 5) | (((half >>> 5) & 3) << 3) | (((half >>> 2) & 7) << 6); // C.FLDSP
    case 0x13: return bit(half, 12, 5) | (((half >>> 4) & 7) << 2) | (((half >>> 2) & 3) << 6); // C.FLWSP
    case 0x15: return (((half >>> 10) & 7) << 3) | (((half >>> 7) & 7) << 6); // C.FSDSP
    case 0x17: return (((half >>> 9) & 15) << 2) | (((half >>> 7) & 3) << 6); // C.FSWSP
    default: throw new Error(`not a compressed floating-point load or store: 0x${half.toString(16)}`);
  }
}
