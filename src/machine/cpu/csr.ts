/** CSR numbers, status bits and trap causes (RISC-V privileged spec 1.12, RV32). */

export const enum Csr {
  fflags = 0x001,
  frm = 0x002,
  fcsr = 0x003,
  cycle = 0xc00,
  time = 0xc01,
  instret = 0xc02,
  hpmcounter3 = 0xc03,
  hpmcounter31 = 0xc1f,
  cycleh = 0xc80,
  timeh = 0xc81,
  instreth = 0xc82,
  hpmcounter3h = 0xc83,
  hpmcounter31h = 0xc9f,
  sstatus = 0x100,
  sie = 0x104,
  stvec = 0x105,
  scounteren = 0x106,
  senvcfg = 0x10a,
  sscratch = 0x140,
  sepc = 0x141,
  scause = 0x142,
  stval = 0x143,
  sip = 0x144,
  satp = 0x180,
  mvendorid = 0xf11,
  marchid = 0xf12,
  mimpid = 0xf13,
  mhartid = 0xf14,
  mconfigptr = 0xf15,
  mstatus = 0x300,
  misa = 0x301,
  medeleg = 0x302,
  mideleg = 0x303,
  mie = 0x304,
  mtvec = 0x305,
  mcounteren = 0x306,
  mstatush = 0x310,
  menvcfg = 0x30a,
  menvcfgh = 0x31a,
  mcountinhibit = 0x320,
  mhpmevent3 = 0x323,
  mhpmevent31 = 0x33f,
  mscratch = 0x340,
  mepc = 0x341,
  mcause = 0x342,
  mtval = 0x343,
  mip = 0x344,
  pmpcfg0 = 0x3a0,
  pmpcfg3 = 0x3a3,
  pmpaddr0 = 0x3b0,
  pmpaddr15 = 0x3bf,
  mcycle = 0xb00,
  minstret = 0xb02,
  mhpmcounter3 = 0xb03,
  mhpmcounter31 = 0xb1f,
  mcycleh = 0xb80,
  minstreth = 0xb82,
  mhpmcounter3h = 0xb83,
  mhpmcounter31h = 0xb9f,
}

export const enum Priv {
  U = 0,
  S = 1,
  M = 3,
}
export type PrivilegeLevel = Priv;

export const enum Status {
  SIE = 1 << 1,
  MIE = 1 << 3,
  SPIE = 1 << 5,
  UBE = 1 << 6,
  MPIE = 1 << 7,
  SPP = 1 << 8,
  MPP_SHIFT = 11,
  MPP = 3 << 11,
  FS = 3 << 13,
  XS = 3 << 15,
  MPRV = 1 << 17,
  SUM = 1 << 18,
  MXR = 1 << 19,
  TVM = 1 << 20,
  TW = 1 << 21,
  TSR = 1 << 22,
  SD = 1 << 31,
}

/** mstatus bits that exist on this machine (no V or big-endian support; SD is computed on reads). */
export const mstatusWritable =
  Status.SIE | Status.MIE | Status.SPIE | Status.MPIE | Status.SPP | Status.MPP | Status.FS |
  Status.MPRV | Status.SUM | Status.MXR | Status.TVM | Status.TW | Status.TSR;
/** The view of mstatus that sstatus gives. */
export const sstatusMask = Status.SIE | Status.SPIE | Status.UBE | Status.SPP | Status.FS | Status.XS | Status.SUM | Status.MXR | Status.SD;

/** Interrupt bit numbers in mip/mie, and their cause codes. */
export const enum Irq {
  SSI = 1,
  MSI = 3,
  STI = 5,
  MTI = 7,
  SEI = 9,
  MEI = 11,
}
export const enum Mip {
  SSIP = 1 << Irq.SSI,
  MSIP = 1 << Irq.MSI,
  STIP = 1 << Irq.STI,
  MTIP = 1 << Irq.MTI,
  SEIP = 1 << Irq.SEI,
  MEIP = 1 << Irq.MEI,
}
export const interruptsImplemented = Mip.SSIP | Mip.MSIP | Mip.STIP | Mip.MTIP | Mip.SEIP | Mip.MEIP;
export const supervisorInterrupts = Mip.SSIP | Mip.STIP | Mip.SEIP;
/** Bits of mip that M-mode software may write; MSIP, MTIP and MEIP follow the CLINT and PLIC. */
export const mipWritable = Mip.SSIP | Mip.STIP | Mip.SEIP;
/** Priority order for taking interrupts (privileged spec 3.1.9): MEI, MSI, MTI, SEI, SSI, STI. */
export const interruptPriority: readonly number[] = [Irq.MEI, Irq.MSI, Irq.MTI, Irq.SEI, Irq.SSI, Irq.STI];

export const enum Cause {
  InstructionMisaligned = 0,
  InstructionAccessFault = 1,
  IllegalInstruction = 2,
  Breakpoint = 3,
  LoadMisaligned = 4,
  LoadAccessFault = 5,
  StoreMisaligned = 6,
  StoreAccessFault = 7,
  EcallFromU = 8,
  EcallFromS = 9,
  EcallFromM = 11,
  InstructionPageFault = 12,
  LoadPageFault = 13,
  StorePageFault = 15,
}
/** Exceptions that medeleg can delegate (ecall from M cannot be). */
export const medelegWritable = 0xb3ff;

/**
 * misa: MXL=1 (RV32), extensions A, C, D, F, I, M, S, U (read-only: none can be switched off;
 * mstatus.FS = Off is how software turns the FPU off).
 */
export const misaValue = (1 << 30) | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20);

export const pmpEntries = 16;

/** Bits of one pmpNcfg byte (privileged spec 3.7.1); A is the address-matching mode. */
export const enum PmpCfg {
  R = 1,
  W = 2,
  X = 4,
  A = 0x18,
  /** A = TOR: the region is [pmpaddr(N-1), pmpaddr(N)). */
  TOR = 0x08,
  L = 0x80,
}
