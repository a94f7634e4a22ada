/**
 * The CSR file: the Zicsr instructions, who may access which CSR, and what reading and
 * writing each implemented CSR does (privileged spec 1.12, chapters 2 and 3): the counters,
 * mstatus and its sstatus view, the trap CSRs, satp, and the PMP configuration registers
 * with their locks. The registers themselves are fields of the {@link Hart}, which the board
 * and the SBI firmware also set directly. An access the hart does not allow raises an
 * illegal-instruction exception.
 */
import { Op } from './decode.js';
import {
  Csr, Mip, PmpCfg, Priv, Status, interruptsImplemented, medelegWritable, mipWritable, misaValue,
  mstatusWritable, pmpEntries, sstatusMask, supervisorInterrupts,
} from './csr.js';
import { sinkRegister } from './code-cache.js';
import { raiseIllegal } from './traps.js';
import { flushTlb } from './mmu.js';
import type { Hart } from './cpu.js';

/** CSRRW/S/C and their immediate forms (Zicsr): `csr` is the decoded immediate. */
export function executeCsrInstruction(hart: Hart, op: number, rd: number, rs1: number, csr: number): void {
  const immediateForm = op >= Op.CSRRWI;
  const operand = immediateForm ? rs1 : hart.x[rs1]!;
  const kind = immediateForm ? op - 3 : op;
  const writes = kind === Op.CSRRW || rs1 !== 0;
  const reads = kind !== Op.CSRRW || rd !== sinkRegister;
  checkCsrAccess(hart, csr, writes);
  const old = reads || kind !== Op.CSRRW ? readCsr(hart, csr) : 0;
  if (writes) {
    const value = kind === Op.CSRRW ? operand : kind === Op.CSRRS ? old | operand : old & ~operand;
    writeCsr(hart, csr, value | 0);
  }
  hart.x[rd] = old;
  // A CSR write can enable an interrupt or change what translation depends on.
  hart.attention = true;
}

/** Privilege and read-only CSRs (privileged spec 2.1), mstatus.TVM, mcounteren and scounteren. */
function checkCsrAccess(hart: Hart, csr: number, writes: boolean): void {
  const required = (csr >>> 8) & 3;
  if (hart.priv < required) raiseIllegal(hart);
  if (writes && (csr >>> 10) === 3) raiseIllegal(hart);
  if (csr === Csr.satp && hart.priv === Priv.S && (hart.mstatus & Status.TVM) !== 0) raiseIllegal(hart);
  // fflags, frm and fcsr exist only while the FPU is on (privileged spec 3.1.6.6: FS = Off).
  if (csr >= Csr.fflags && csr <= Csr.fcsr && (hart.mstatus & Status.FS) === 0) raiseIllegal(hart);
  if ((csr >= Csr.cycle && csr <= Csr.hpmcounter31) || (csr >= Csr.cycleh && csr <= Csr.hpmcounter31h)) {
    const bit = 1 << (csr & 31);
    if (hart.priv < Priv.M && (hart.mcounteren & bit) === 0) raiseIllegal(hart);
    if (hart.priv < Priv.S && (hart.scounteren & bit) === 0) raiseIllegal(hart);
  }
}

/** A 64-bit counter (mcycle or minstret) at the instruction being executed. */
function counter(hart: Hart, offset: bigint): bigint {
  return BigInt.asUintN(64, BigInt(hart.currentRetired) + offset);
}

export function readCsr(hart: Hart, csr: number): number {
  switch (csr) {
    case Csr.fflags: return hart.fpu.flags;
    case Csr.frm: return hart.frm;
    case Csr.fcsr: return (hart.frm << 5) | hart.fpu.flags;
    case Csr.cycle: case Csr.mcycle: return Number(counter(hart, hart.cycleOffset) & 0xffff_ffffn) | 0;
    case Csr.cycleh: case Csr.mcycleh: return Number(counter(hart, hart.cycleOffset) >> 32n) | 0;
    case Csr.instret: case Csr.minstret: return Number(counter(hart, hart.instretOffset) & 0xffff_ffffn) | 0;
    case Csr.instreth: case Csr.minstreth: return Number(counter(hart, hart.instretOffset) >> 32n) | 0;
    case Csr.time: return Number(hart.ports.readTime() & 0xffff_ffffn) | 0;
    case Csr.timeh: return Number(hart.ports.readTime() >> 32n) | 0;
    case Csr.sstatus: return withSd(hart.mstatus) & sstatusMask;
    case Csr.sie: return hart.mie & hart.mideleg;
    case Csr.stvec: return hart.stvec;
    case Csr.scounteren: return hart.scounteren;
    case Csr.senvcfg: return 0;
    case Csr.sscratch: return hart.sscratch;
    case Csr.sepc: return hart.sepc;
    case Csr.scause: return hart.scause;
    case Csr.stval: return hart.stval;
    case Csr.sip: return hart.mip & hart.mideleg;
    case Csr.satp: return hart.satp;
    case Csr.mvendorid: case Csr.marchid: case Csr.mimpid: case Csr.mhartid: case Csr.mconfigptr: return 0;
    case Csr.mstatus: return withSd(hart.mstatus);
    case Csr.misa: return misaValue;
    case Csr.medeleg: return hart.medeleg;
    case Csr.mideleg: return hart.mideleg;
    case Csr.mie: return hart.mie;
    case Csr.mtvec: return hart.mtvec;
    case Csr.mcounteren: return hart.mcounteren;
    case Csr.mstatush: case Csr.menvcfg: case Csr.menvcfgh: case Csr.mcountinhibit: return 0;
    case Csr.mscratch: return hart.mscratch;
    case Csr.mepc: return hart.mepc;
    case Csr.mcause: return hart.mcause;
    case Csr.mtval: return hart.mtval;
    case Csr.mip: return hart.mip;
  }
  if (csr >= Csr.pmpcfg0 && csr <= Csr.pmpcfg3) {
    const base = (csr - Csr.pmpcfg0) * 4;
    const c = hart.pmpcfg;
    return c[base]! | (c[base + 1]! << 8) | (c[base + 2]! << 16) | (c[base + 3]! << 24);
  }
  if (csr >= Csr.pmpaddr0 && csr <= Csr.pmpaddr15) return hart.pmpaddr[csr - Csr.pmpaddr0]!;
  if (isZeroCounter(csr)) return 0;
  return raiseIllegal(hart);
}

export function writeCsr(hart: Hart, csr: number, value: number): void {
  switch (csr) {
    // Writing the FPU's CSRs changes its state: FS becomes Dirty (privileged spec 3.1.6.6).
    case Csr.fflags: hart.fpu.flags = value & fflagsMask; hart.mstatus |= Status.FS; return;
    case Csr.frm: hart.frm = value & 7; hart.mstatus |= Status.FS; return;
    case Csr.fcsr:
      hart.fpu.flags = value & fflagsMask;
      hart.frm = (value >>> 5) & 7;
      hart.mstatus |= Status.FS;
      return;
    case Csr.mcycle: hart.cycleOffset = counterWrite(hart, hart.cycleOffset, value, false); return;
    case Csr.mcycleh: hart.cycleOffset = counterWrite(hart, hart.cycleOffset, value, true); return;
    case Csr.minstret: hart.instretOffset = counterWrite(hart, hart.instretOffset, value, false); return;
    case Csr.minstreth: hart.instretOffset = counterWrite(hart, hart.instretOffset, value, true); return;
    case Csr.sstatus: writeMstatus(hart, (hart.mstatus & ~sstatusMask) | (value & sstatusMask)); return;
    case Csr.sie: hart.mie = (hart.mie & ~hart.mideleg) | (value & hart.mideleg); return;
    case Csr.stvec: hart.stvec = legalTvec(hart.stvec, value); return;
    case Csr.scounteren: hart.scounteren = value; return;
    case Csr.senvcfg: return;
    case Csr.sscratch: hart.sscratch = value; return;
    case Csr.sepc: hart.sepc = value & ~1; return; // IALIGN = 16: bit 0 is always zero
    case Csr.scause: hart.scause = value; return;
    case Csr.stval: hart.stval = value; return;
    case Csr.sip: {
      const writable = Mip.SSIP & hart.mideleg;
      hart.mipSoftware = (hart.mipSoftware & ~writable) | (value & writable);
      return;
    }
    case Csr.satp:
      // Sv32 or Bare, and all nine ASID bits hold what is written, as on QEMU. The TLBs are
      // not tagged by ASID: every satp write flushes them (always correct, never stale).
      hart.satp = value;
      flushTlb(hart);
      return;
    case Csr.mstatus: writeMstatus(hart, value); return;
    case Csr.misa: case Csr.mstatush: case Csr.menvcfg: case Csr.menvcfgh: case Csr.mcountinhibit: return;
    case Csr.medeleg: hart.medeleg = value & medelegWritable; return;
    case Csr.mideleg: hart.mideleg = value & supervisorInterrupts; return;
    case Csr.mie: hart.mie = value & interruptsImplemented; return;
    case Csr.mtvec: hart.mtvec = legalTvec(hart.mtvec, value); return;
    case Csr.mcounteren: hart.mcounteren = value; return;
    case Csr.mscratch: hart.mscratch = value; return;
    case Csr.mepc: hart.mepc = value & ~1; return; // IALIGN = 16: bit 0 is always zero
    case Csr.mcause: hart.mcause = value; return;
    case Csr.mtval: hart.mtval = value; return;
    case Csr.mip: hart.mipSoftware = (hart.mipSoftware & ~mipWritable) | (value & mipWritable); return;
  }
  if (csr >= Csr.pmpcfg0 && csr <= Csr.pmpcfg3) {
    for (let i = 0; i < 4; i++) writePmpcfg(hart, (csr - Csr.pmpcfg0) * 4 + i, (value >>> (8 * i)) & 0xff);
    hart.pmpChanged();
    return;
  }
  if (csr >= Csr.pmpaddr0 && csr <= Csr.pmpaddr15) {
    const index = csr - Csr.pmpaddr0;
    // A locked entry, or the address below a locked TOR entry, ignores writes (privileged spec 3.7.1).
    const locked = (hart.pmpcfg[index]! & PmpCfg.L) !== 0;
    const nextLockedTor = index + 1 < pmpEntries && (hart.pmpcfg[index + 1]! & (PmpCfg.L | PmpCfg.A)) === (PmpCfg.L | PmpCfg.TOR);
    if (!locked && !nextLockedTor) hart.pmpaddr[index] = value;
    hart.pmpChanged();
    return;
  }
  if (isZeroCounter(csr)) return;
  raiseIllegal(hart);
}

function counterWrite(hart: Hart, offset: bigint, value: number, high: boolean): bigint {
  // The written value is what the next instruction reads: this one does not count on top.
  const current = counter(hart, offset);
  const written = high
    ? (BigInt(value >>> 0) << 32n) | (current & 0xffff_ffffn)
    : (current & 0xffff_ffff_0000_0000n) | BigInt(value >>> 0);
  return BigInt.asUintN(64, written - BigInt(hart.currentRetired + 1));
}

function writePmpcfg(hart: Hart, index: number, value: number): void {
  if (hart.pmpcfg[index]! & PmpCfg.L) return;
  let legal = value & (PmpCfg.R | PmpCfg.W | PmpCfg.X | PmpCfg.A | PmpCfg.L);
  if ((legal & (PmpCfg.R | PmpCfg.W)) === PmpCfg.W) legal &= ~PmpCfg.W; // R=0, W=1 is reserved
  hart.pmpcfg[index] = legal;
}

/** fflags' five bits: NV DZ OF UF NX. */
const fflagsMask = 0x1f;

/** SD (bit 31) summarises FS = Dirty (XS and VS are always Off here); it is not stored. */
function withSd(mstatus: number): number {
  return (mstatus & Status.FS) === Status.FS ? mstatus | Status.SD : mstatus & ~Status.SD;
}

function writeMstatus(hart: Hart, value: number): void {
  let next = value & mstatusWritable;
  // MPP is WARL: a write of the reserved 2 keeps the old value.
  if ((next & Status.MPP) === 2 << Status.MPP_SHIFT) next = (next & ~Status.MPP) | (hart.mstatus & Status.MPP);
  hart.mstatus = next;
  hart.attention = true;
}

function legalTvec(old: number, value: number): number {
  // MODE 0 (direct) and 1 (vectored). A write of a reserved mode is ignored (WARL), as QEMU
  // does, so the same guest reads the same value back on both.
  return (value & 3) <= 1 ? value : old;
}

function isZeroCounter(csr: number): boolean {
  return (
    (csr >= Csr.hpmcounter3 && csr <= Csr.hpmcounter31) ||
    (csr >= Csr.hpmcounter3h && csr <= Csr.hpmcounter31h) ||
    (csr >= Csr.mhpmcounter3 && csr <= Csr.mhpmcounter31) ||
    (csr >= Csr.mhpmcounter3h && csr <= Csr.mhpmcounter31h) ||
    (csr >= Csr.mhpmevent3 && csr <= Csr.mhpmevent31)
  );
}
