/**
 * The instructions that the run loop's switch leaves to its default case: atomics (A) and
 * system instructions (ECALL, EBREAK, xRET, WFI, SFENCE.VMA, FENCE.I, Zicsr) and decode-time
 * illegal instructions. They are rare enough that a call costs nothing measurable, and most
 * change state the loop has cached, so the loop stops and looks after each one.
 */
import { Op } from './decode.js';
import { Cause, Priv, Status } from './csr.js';
import { executeCsrInstruction } from './csr-file.js';
import { mret, raiseIllegal, sret, takeException } from './traps.js';
import { raise } from './trap-signal.js';
import { fencePage, flushTlb, loadForStore, loadSlow, storeSlow } from './mmu.js';
import { lengthShift } from './code-cache.js';
import type { Hart } from './cpu.js';

/**
 * Executes the decoded instruction (`word`, `imm`) at `hart.pc` (the run loop publishes the pc
 * and the instruction count first) and returns where the hart continues: the next
 * instruction (2 or 4 bytes on, as the length in `word` says), or the trap handler for ECALL, EBREAK and decode-time illegal instructions,
 * which count as retired (see docs/ARCHITECTURE.md, "Counting instructions"). Other
 * exceptions are thrown as the TrapSignal; then the instruction has not retired.
 */
export function executeRare(hart: Hart, word: number, imm: number): number {
  const x = hart.x;
  const op = word & 0xff;
  const rd = (word >> 8) & 63;
  const rs1 = (word >> 14) & 31;
  const rs2 = (word >> 19) & 31;
  const pc = hart.pc;
  switch (op) {
    case Op.LR_W: {
      const address = x[rs1]!;
      if ((address & 3) !== 0) raise(Cause.LoadMisaligned, address);
      const value = loadSlow(hart, address, 4);
      x[rd] = value;
      hart.reservationAddress = address;
      hart.reservationValue = value;
      break;
    }
    case Op.SC_W: {
      const address = x[rs1]!;
      if ((address & 3) !== 0) raise(Cause.StoreMisaligned, address);
      let failed = 1;
      if (hart.reservationAddress === address) {
        const current = loadForStore(hart, address);
        if (current === hart.reservationValue) {
          storeSlow(hart, address, 4, x[rs2]!);
          failed = 0;
        }
      }
      hart.reservationAddress = -1;
      x[rd] = failed;
      break;
    }
    case Op.AMOSWAP_W: case Op.AMOADD_W: case Op.AMOXOR_W: case Op.AMOAND_W: case Op.AMOOR_W:
    case Op.AMOMIN_W: case Op.AMOMAX_W: case Op.AMOMINU_W: case Op.AMOMAXU_W: {
      const address = x[rs1]!;
      if ((address & 3) !== 0) raise(Cause.StoreMisaligned, address);
      const old = loadForStore(hart, address);
      const operand = x[rs2]!;
      storeSlow(hart, address, 4, amo(op, old, operand));
      x[rd] = old;
      break;
    }
    case Op.FENCE_I:
      // The code cache follows every store, so there is nothing stale to drop.
      break;
    case Op.ECALL:
      // Counted as executed, as QEMU's icount does; the spec says ECALL does not retire.
      return takeException(hart, Cause.EcallFromU + hart.priv, 0, pc);
    case Op.EBREAK:
      // tval 0: the spec allows 0 or the pc; QEMU writes 0.
      return takeException(hart, Cause.Breakpoint, 0, pc);
    case Op.ILLEGAL:
      return takeException(hart, Cause.IllegalInstruction, imm, pc);
    case Op.MRET:
      if (hart.priv !== Priv.M) raiseIllegal(hart);
      return mret(hart);
    case Op.SRET:
      if (hart.priv === Priv.U || (hart.priv === Priv.S && (hart.mstatus & Status.TSR) !== 0)) {
        raiseIllegal(hart);
      }
      return sret(hart);
    case Op.WFI:
      if (hart.priv === Priv.U || (hart.priv === Priv.S && (hart.mstatus & Status.TW) !== 0)) {
        raiseIllegal(hart);
      }
      // Wake condition ignores global enables and delegation (privileged spec 3.3.3).
      if ((hart.mip & hart.mie) === 0) hart.waiting = true;
      break;
    case Op.SFENCE_VMA:
      if (hart.priv === Priv.U || (hart.priv === Priv.S && (hart.mstatus & Status.TVM) !== 0)) {
        raiseIllegal(hart);
      }
      // rs2 (an address space) is not looked at: the TLBs are not tagged by ASID.
      if (rs1 === 0) flushTlb(hart);
      else fencePage(hart, x[rs1]!);
      break;
    case Op.CSRRW: case Op.CSRRS: case Op.CSRRC: case Op.CSRRWI: case Op.CSRRSI: case Op.CSRRCI:
      executeCsrInstruction(hart, op, rd, rs1, imm);
      break;
    default:
      throw new Error(`interpreter: unhandled decoded op ${op} at pc 0x${(pc >>> 0).toString(16)}`);
  }
  return (pc + (word >>> lengthShift)) | 0;
}

function amo(op: number, old: number, operand: number): number {
  switch (op) {
    case Op.AMOSWAP_W: return operand;
    case Op.AMOADD_W: return (old + operand) | 0;
    case Op.AMOXOR_W: return old ^ operand;
    case Op.AMOAND_W: return old & operand;
    case Op.AMOOR_W: return old | operand;
    case Op.AMOMIN_W: return old < operand ? old : operand;
    case Op.AMOMAX_W: return old > operand ? old : operand;
    case Op.AMOMINU_W: return old >>> 0 < operand >>> 0 ? old : operand;
    case Op.AMOMAXU_W: return old >>> 0 > operand >>> 0 ? old : operand;
    default: throw new Error(`not an AMO: ${op}`);
  }
}
