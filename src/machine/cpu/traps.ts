/**
 * Traps and interrupts: which interrupt to take (privileged spec 3.1.6.1, 3.1.9), entering a
 * trap in M-mode, in S-mode when delegated (3.1.8), or in the host's M-mode firmware, MRET and
 * SRET (3.3.2), and the watch for a guest that can never run again.
 *
 * An exception found while an instruction executes is thrown as the TrapSignal
 * (trap-signal.ts) and taken here by the run loop, at the instruction's pc. Exceptions that
 * the decoded instruction is (ECALL, EBREAK, ILLEGAL) are taken directly by
 * {@link takeException}.
 */
import { Cause, Priv, Status, interruptPriority, type PrivilegeLevel } from './csr.js';
import { instructionBits } from './mmu.js';
import { raise } from './trap-signal.js';
import type { Hart } from './cpu.js';
import type { SnapshotReader, SnapshotWriter } from '../snapshot.js';

/** Exceptions in a row at the first instruction of the handler just entered: the guest is dead. */
export const trapLoopMax = 10_000;

/** Illegal instruction found at run time, with the instruction's bits in tval (as QEMU does). */
export function raiseIllegal(hart: Hart): never {
  return raise(Cause.IllegalInstruction, instructionBits(hart, hart.pc));
}

/** The interrupt to take now, or -1 (privileged spec 3.1.6.1 and 3.1.9). */
export function pendingInterrupt(hart: Hart): number {
  const pending = hart.mip & hart.mie;
  if (pending === 0) return -1;
  const machineEnabled = hart.priv < Priv.M || (hart.mstatus & Status.MIE) !== 0;
  const machinePending = pending & ~hart.mideleg;
  if (machinePending !== 0 && machineEnabled) return highestPriority(machinePending);
  const supervisorEnabled = hart.priv < Priv.S || (hart.priv === Priv.S && (hart.mstatus & Status.SIE) !== 0);
  const supervisorPending = pending & hart.mideleg;
  if (supervisorPending !== 0 && supervisorEnabled) return highestPriority(supervisorPending);
  return -1;
}

function highestPriority(pending: number): number {
  for (const irq of interruptPriority) if (pending & (1 << irq)) return irq;
  throw new Error(`no known interrupt in pending set 0x${pending.toString(16)}`);
}

/**
 * Takes an exception at the instruction at `pc` and returns the handler's address; counts
 * it towards the trap-loop watch. Interrupts go to {@link enterTrap} directly.
 */
export function takeException(hart: Hart, cause: number, tval: number, pc: number): number {
  hart.trapLoopWatch.exceptionAt(cause, pc);
  const handler = enterTrap(hart, cause, tval, pc);
  hart.trapLoopWatch.handlerEntered(handler);
  return handler;
}

/** Takes a trap (cause < 0: an interrupt) with `epc` = `pc`; returns the handler's address. */
export function enterTrap(hart: Hart, cause: number, tval: number, pc: number): number {
  const interrupt = cause < 0;
  const code = cause & 0x7fff_ffff;
  const delegated = hart.priv <= Priv.S && ((interrupt ? hart.mideleg : hart.medeleg) >>> code) & 1;
  hart.attention = true;
  if (delegated) return trapToSupervisor(hart, cause, tval, pc);
  if (hart.firmware !== undefined) return hart.firmware.trap(hart, cause, tval, pc);
  hart.mcause = cause;
  hart.mepc = pc;
  hart.mtval = tval;
  let status = hart.mstatus & ~(Status.MPP | Status.MPIE | Status.MIE);
  if (hart.mstatus & Status.MIE) status |= Status.MPIE;
  status |= hart.priv << Status.MPP_SHIFT;
  hart.mstatus = status;
  hart.priv = Priv.M;
  return trapVector(hart.mtvec, interrupt, code);
}

/** Enters the S-mode handler: scause, sepc, stval, and sstatus SPP, SPIE, SIE (privileged spec 4.1.1). */
export function trapToSupervisor(hart: Hart, cause: number, tval: number, pc: number): number {
  hart.attention = true;
  hart.scause = cause;
  hart.sepc = pc;
  hart.stval = tval;
  let status = hart.mstatus & ~(Status.SPP | Status.SPIE | Status.SIE);
  if (hart.mstatus & Status.SIE) status |= Status.SPIE;
  if (hart.priv === Priv.S) status |= Status.SPP;
  hart.mstatus = status;
  hart.priv = Priv.S;
  return trapVector(hart.stvec, cause < 0, cause & 0x7fff_ffff);
}

/** MRET: back to MPP with MIE from MPIE; returns mepc. */
export function mret(hart: Hart): number {
  const status = hart.mstatus;
  const previous = ((status & Status.MPP) >>> Status.MPP_SHIFT) as PrivilegeLevel;
  let next = status & ~(Status.MIE | Status.MPP);
  if (status & Status.MPIE) next |= Status.MIE;
  next |= Status.MPIE;
  if (previous !== Priv.M) next &= ~Status.MPRV;
  hart.mstatus = next;
  hart.priv = previous;
  hart.attention = true;
  return hart.mepc;
}

/** SRET: back to SPP with SIE from SPIE; returns sepc. */
export function sret(hart: Hart): number {
  const status = hart.mstatus;
  const previous: PrivilegeLevel = status & Status.SPP ? Priv.S : Priv.U;
  let next = status & ~(Status.SIE | Status.SPP | Status.MPRV);
  if (status & Status.SPIE) next |= Status.SIE;
  next |= Status.SPIE;
  hart.mstatus = next;
  hart.priv = previous;
  hart.attention = true;
  return hart.sepc;
}

function trapVector(tvec: number, interrupt: boolean, code: number): number {
  const base = tvec & ~3;
  return interrupt && (tvec & 3) === 1 ? (base + 4 * code) | 0 : base;
}

/**
 * An exception at the very instruction the previous trap jumped to, many times in a row,
 * means no handler can ever run (a vector into nowhere, a corrupt kernel): the watch reports
 * it so that the machine stops instead of spinning for ever. Not architectural state, but it
 * decides at which instruction the machine stops, so it is in snapshots: a backup started
 * from a primary's state in the middle of such a loop must stop where the primary stops.
 */
export class TrapLoopWatch {
  /** Where the last exception's trap went, and how many exceptions in a row have hit exactly there. */
  private lastHandler = -1;
  private faultsAtHandler = 0;

  constructor(private readonly report: (description: string) => void) {}

  reset(): void {
    this.lastHandler = -1;
    this.faultsAtHandler = 0;
  }

  save(writer: SnapshotWriter): void {
    writer.i32(this.lastHandler).uint(this.faultsAtHandler);
  }

  restore(reader: SnapshotReader): void {
    // Any count is a state some machine had (a stuck one's has reached trapLoopMax and goes on).
    this.lastHandler = reader.i32();
    this.faultsAtHandler = reader.uint();
  }

  /** An exception with `cause` is being taken at `pc`. */
  exceptionAt(cause: number, pc: number): void {
    if (pc !== this.lastHandler) {
      this.faultsAtHandler = 0;
      return;
    }
    if (++this.faultsAtHandler < trapLoopMax) return;
    this.report(`every trap faults at once: cause ${cause} at pc 0x${(pc >>> 0).toString(16)}, ${trapLoopMax} times in a row`);
  }

  /** The exception's trap went to `handler`. */
  handlerEntered(handler: number): void {
    this.lastHandler = handler;
  }
}
