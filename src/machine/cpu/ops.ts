/**
 * The decoded form of an instruction, shared by the 32-bit decoder (decode.ts) and the 16-bit
 * one (decode-compressed.ts): op numbers, their mnemonics, and the fields. A compressed
 * instruction decodes to the op of the 32-bit instruction it expands to; only its length differs.
 */

export const enum Op {
  LUI = 1,
  AUIPC = 2,
  JAL = 3,
  JALR = 4,
  BEQ = 5,
  BNE = 6,
  BLT = 7,
  BGE = 8,
  BLTU = 9,
  BGEU = 10,
  LB = 11,
  LH = 12,
  LW = 13,
  LBU = 14,
  LHU = 15,
  SB = 16,
  SH = 17,
  SW = 18,
  ADDI = 19,
  SLTI = 20,
  SLTIU = 21,
  XORI = 22,
  ORI = 23,
  ANDI = 24,
  SLLI = 25,
  SRLI = 26,
  SRAI = 27,
  ADD = 28,
  SUB = 29,
  SLL = 30,
  SLT = 31,
  SLTU = 32,
  XOR = 33,
  SRL = 34,
  SRA = 35,
  OR = 36,
  AND = 37,
  FENCE = 38,
  FENCE_I = 39,
  ECALL = 40,
  EBREAK = 41,
  MRET = 42,
  SRET = 43,
  WFI = 44,
  SFENCE_VMA = 45,
  CSRRW = 46,
  CSRRS = 47,
  CSRRC = 48,
  CSRRWI = 49,
  CSRRSI = 50,
  CSRRCI = 51,
  MUL = 52,
  MULH = 53,
  MULHSU = 54,
  MULHU = 55,
  DIV = 56,
  DIVU = 57,
  REM = 58,
  REMU = 59,
  LR_W = 60,
  SC_W = 61,
  AMOSWAP_W = 62,
  AMOADD_W = 63,
  AMOXOR_W = 64,
  AMOAND_W = 65,
  AMOOR_W = 66,
  AMOMIN_W = 67,
  AMOMAX_W = 68,
  AMOMINU_W = 69,
  AMOMAXU_W = 70,
  ILLEGAL = 71,
  // The code cache's forms of the compressed instructions that the run loop finishes itself
  // (code-cache.ts, `cachedOp`): the same operations, after which the loop advances pc by 2
  // (and links pc + 2) with a constant, as it advances by 4 after the others, so that no
  // instruction pays for reading its length. decode() never returns them.
  C_ADDI = 72,
  C_LUI = 73,
  C_ANDI = 74,
  C_SLLI = 75,
  C_SRLI = 76,
  C_SRAI = 77,
  C_ADD = 78,
  C_SUB = 79,
  C_XOR = 80,
  C_OR = 81,
  C_AND = 82,
  C_LW = 83,
  C_SW = 84,
  C_JAL = 85,
  C_JALR = 86,
  C_BEQ = 87,
  C_BNE = 88,
  // The F and D extensions (fp-instructions.ts executes them all, the loop only hands them
  // over): their immediate is the instruction's bits (16 of them for a compressed load or
  // store), from which the executor takes the offset, rm, rs3 and funct7, and which become
  // mtval when FS is Off.
  FLW = 89,
  FSW = 90,
  FLD = 91,
  FSD = 92,
  /** Every other F or D instruction (OP-FP and the fused multiply-adds). */
  FP = 93,
}
export type OpCode = Op;
export const opCount = 94;

/** Mnemonics by op number (the enum itself does not exist at run time). */
export const opNames: readonly string[] = [
  '?', 'lui', 'auipc', 'jal', 'jalr', 'beq', 'bne', 'blt',
  'bge', 'bltu', 'bgeu', 'lb', 'lh', 'lw', 'lbu', 'lhu',
  'sb', 'sh', 'sw', 'addi', 'slti', 'sltiu', 'xori', 'ori',
  'andi', 'slli', 'srli', 'srai', 'add', 'sub', 'sll', 'slt',
  'sltu', 'xor', 'srl', 'sra', 'or', 'and', 'fence', 'fence.i',
  'ecall', 'ebreak', 'mret', 'sret', 'wfi', 'sfence.vma', 'csrrw', 'csrrs',
  'csrrc', 'csrrwi', 'csrrsi', 'csrrci', 'mul', 'mulh', 'mulhsu', 'mulhu',
  'div', 'divu', 'rem', 'remu', 'lr.w', 'sc.w', 'amoswap.w', 'amoadd.w',
  'amoxor.w', 'amoand.w', 'amoor.w', 'amomin.w', 'amomax.w', 'amominu.w', 'amomaxu.w', 'illegal',
  'c.addi', 'c.lui', 'c.andi', 'c.slli', 'c.srli', 'c.srai', 'c.add', 'c.sub',
  'c.xor', 'c.or', 'c.and', 'c.lw', 'c.sw', 'c.jal', 'c.jalr', 'c.beq', 'c.bne',
  'flw', 'fsw', 'fld', 'fsd', 'fp',
];

export interface Decoded {
  readonly op: OpCode;
  readonly rd: number;
  readonly rs1: number;
  readonly rs2: number;
  readonly imm: number;
  /** Bytes: 4, or 2 for a compressed instruction (the loop advances pc by it; links get pc + it). */
  readonly length: 2 | 4;
}
