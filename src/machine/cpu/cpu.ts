/**
 * The hart: RV32IMA + Zicsr + Zifencei, privilege modes M/S/U, Sv32, PMP.
 *
 * This interpreter is the reference implementation. `run(budget)` executes decoded
 * instructions from a per-page cache (see decode.ts) and retires exactly `budget` instructions
 * unless the guest powers off or waits in WFI. Everything here is synchronous and pure:
 * devices are reached through the bus, and the one value from outside the VM, the time CSR,
 * through `ports.readTime` (an environment read, see environment.ts).
 *
 * Hot-path conventions: registers live in an Int32Array with a 33rd "sink" register that
 * decoded instructions with rd = x0 write to; values are kept int32; loads and stores hit a
 * software TLB whose entries map a virtual page straight to an index into RAM, and a store
 * into a page with decoded instructions empties the stored word's slot itself. Anything else
 * (TLB misses, MMIO, faults, page walks, misaligned accesses, stores to watched pages) takes
 * the slow path, which may throw a {@link TrapSignal}.
 */
import { Bus } from '../memory/bus.js';
import { Ram, ramBaseAddress, pageBytes } from '../memory/ram.js';
import type { AccessWidth } from '../devices/device.js';
import { SnapshotError, type SnapshotReader, type SnapshotWriter } from '../snapshot.js';
import { decode, Op } from './decode.js';
import {
  Cause, Csr, Mip, Priv, Status, interruptPriority, interruptsImplemented, medelegWritable,
  mipWritable, misaValue, mstatusWritable, pmpEntries, sstatusMask, supervisorInterrupts, type PrivilegeLevel,
} from './csr.js';

/** Entries in each software TLB (fetch, load, store); a power of two. */
export const tlbEntries = 512;
const tlbMask = tlbEntries - 1;
/** Most RAM pages with decoded instructions (8 KiB each) before the whole cache is dropped. */
export const codePagesMax = 8192;
/** Interrupts taken back to back without an instruction between them; more is a bug of ours. */
const interruptsInARowMax = 8;
/** Exceptions in a row at the first instruction of the handler just entered: the guest is dead. */
export const trapLoopMax = 10_000;
/** The sink register index that decoded instructions use for rd = x0. */
const sinkRegister = 32;

/** Why `run` returned. */
export type StopReason = 'budget' | 'wfi' | 'halt';

export interface RunResult {
  readonly reason: StopReason;
  /** Instructions retired by this call. */
  readonly retired: number;
}

/** What the hart needs from the board. */
export interface HartPorts {
  readonly ram: Ram;
  readonly bus: Bus;
  /** The time CSR: the CLINT's mtime, an environment read (P0/P6). */
  readTime(): bigint;
  /** A store to a watched RAM page (HTIF tohost) has completed. */
  watchedStore(physical: number, width: AccessWidth): void;
  /** The guest can never run again: every trap handler faults on its first instruction. */
  trapLoop?(description: string): void;
}

/**
 * M-mode firmware implemented by the host program (the SBI for Linux). When installed, a trap
 * that would enter M-mode calls `trap` instead, which returns where the hart continues.
 */
export interface MachineModeFirmware {
  trap(hart: Hart, cause: number, tval: number, pc: number): number;
}

/** A synchronous exception on its way to the trap handler. One instance, reused. */
export class TrapSignal {
  cause = 0;
  tval = 0;
}
const trapSignal = new TrapSignal();
function raise(cause: number, tval: number): never {
  trapSignal.cause = cause;
  trapSignal.tval = tval | 0;
  throw trapSignal;
}

const enum Access {
  Fetch = 0,
  Load = 1,
  Store = 2,
}

const pageFaultCause = [Cause.InstructionPageFault, Cause.LoadPageFault, Cause.StorePageFault];
const accessFaultCause = [Cause.InstructionAccessFault, Cause.LoadAccessFault, Cause.StoreAccessFault];

const Pte = { V: 1, R: 2, W: 4, X: 8, U: 16, G: 32, A: 64, D: 128 } as const;
const PmpCfg = { R: 1, W: 2, X: 4, A: 0x18, L: 0x80 } as const;
const pmpPermission = [PmpCfg.X, PmpCfg.R, PmpCfg.W];

export class Hart {
  /** x0..x31 plus the sink register. x0 always reads 0. */
  readonly x = new Int32Array(33);
  pc = 0;
  priv: PrivilegeLevel = Priv.M;
  /** Instructions retired since reset (exact; a double is exact to 2^53). */
  retired = 0;
  /** Set by WFI: the hart sleeps until an interrupt is pending and enabled. */
  waiting = false;
  /** Set when the board powers off; `run` returns 'halt' until reset. */
  halted = false;
  /** Native M-mode firmware, if the board boots an OS that expects one (see firmware/sbi.ts). */
  firmware: MachineModeFirmware | undefined;

  // CSR state
  mstatus = 0;
  mie = 0;
  /** Software-writable pending bits (SSIP, STIP, SEIP). */
  mipSoftware = 0;
  /** Pending bits driven by the CLINT and PLIC (MSIP, MTIP, MEIP, SEIP). */
  mipHardware = 0;
  medeleg = 0;
  mideleg = 0;
  mtvec = 0;
  stvec = 0;
  mscratch = 0;
  sscratch = 0;
  mepc = 0;
  sepc = 0;
  mcause = 0;
  scause = 0;
  mtval = 0;
  stval = 0;
  satp = 0;
  mcounteren = 0;
  scounteren = 0;
  /** minstret - retired and mcycle - retired, mod 2^64 (writes to the counters move them). */
  instretOffset = 0n;
  cycleOffset = 0n;
  readonly pmpcfg = new Uint8Array(pmpEntries);
  readonly pmpaddr = new Int32Array(pmpEntries);
  /** LR/SC reservation: address (or -1) and the value LR loaded; SC compares both, as QEMU does. */
  reservationAddress = -1;
  reservationValue = 0;

  // Software TLBs: tag = vpn | context << 20 (-1 = empty), add = RAM index - virtual address;
  // the fetch TLB maps straight to the page's decoded instructions.
  readonly fetchTag = new Int32Array(tlbEntries).fill(-1);
  readonly fetchWordBase = new Int32Array(tlbEntries);
  readonly fetchCode: (Int32Array | undefined)[] = new Array<Int32Array | undefined>(tlbEntries).fill(undefined);
  readonly loadTag = new Int32Array(tlbEntries).fill(-1);
  readonly loadAdd = new Int32Array(tlbEntries);
  readonly storeTag = new Int32Array(tlbEntries).fill(-1);
  readonly storeAdd = new Int32Array(tlbEntries);

  /** Decoded instructions per RAM page: 1024 slots of [word, imm]. */
  private readonly codePages: (Int32Array | undefined)[];
  private codePageCount = 0;
  /** Instructions retired so far in the current `run` call, published before slow-path calls. */
  private runRetired = 0;
  /** Set by slow paths when the run loop must stop and look (interrupts, fetch state, halt). */
  private attention = false;
  /** Where the last trap went, and how many exceptions in a row have hit exactly there. */
  private lastHandler = -1;
  private faultsAtHandler = 0;

  constructor(private readonly ports: HartPorts) {
    this.codePages = new Array<Int32Array | undefined>(ports.ram.pages).fill(undefined);
    ports.ram.watcher = { ramWritten: (page, offset, length) => this.invalidateCode(page, offset, length) };
  }

  /** The exact instruction count at the instruction being executed. */
  get currentRetired(): number {
    return this.retired + this.runRetired;
  }

  reset(entry: number): void {
    this.x.fill(0);
    this.pc = entry | 0;
    this.priv = Priv.M;
    this.retired = 0;
    this.waiting = false;
    this.halted = false;
    this.mstatus = 0;
    this.mie = 0;
    this.mipSoftware = 0;
    this.medeleg = 0;
    this.mideleg = 0;
    this.mtvec = 0;
    this.stvec = 0;
    this.mscratch = 0;
    this.sscratch = 0;
    this.mepc = 0;
    this.sepc = 0;
    this.mcause = 0;
    this.scause = 0;
    this.mtval = 0;
    this.stval = 0;
    this.satp = 0;
    this.mcounteren = 0;
    this.scounteren = 0;
    this.instretOffset = 0n;
    this.cycleOffset = 0n;
    this.pmpcfg.fill(0);
    this.pmpaddr.fill(0);
    this.reservationAddress = -1;
    this.pmpChanged();
  }

  /** Drives a hardware interrupt-pending bit (CLINT: MSIP, MTIP; PLIC: MEIP, SEIP). */
  setInterruptLine(bit: number, level: boolean): void {
    if (level) this.mipHardware |= bit;
    else this.mipHardware &= ~bit;
    this.attention = true;
  }

  /** Asks a running loop to stop after the current instruction (power-off). */
  halt(): void {
    this.halted = true;
    this.attention = true;
  }

  get mip(): number {
    return this.mipSoftware | this.mipHardware;
  }

  // ---------------------------------------------------------------------------------------
  // The run loop

  /**
   * Executes until `budget` instructions have retired, the hart waits in WFI with nothing
   * pending, or the board halts. Interrupts are taken between instructions.
   */
  run(budget: number): RunResult {
    if (!Number.isSafeInteger(budget) || budget < 0) throw new RangeError(`bad instruction budget ${budget}`);
    const x = this.x;
    const ram = this.ports.ram;
    const ram32 = ram.i32;
    const ramU8 = ram.u8;
    const ramI8 = ram.i8;
    const ramU16 = ram.u16;
    const ramI16 = ram.i16;
    const fetchTag = this.fetchTag;
    const fetchCode = this.fetchCode;
    const loadTag = this.loadTag;
    const loadAdd = this.loadAdd;
    const storeTag = this.storeTag;
    const storeAdd = this.storeAdd;
    const fetchWordBase = this.fetchWordBase;
    const codePages = this.codePages;

    let pc = this.pc | 0;
    let n = 0;
    let reason: StopReason = 'budget';
    let interruptsInARow = 0;
    let fetchContext = 0;
    let dataContext = 0;
    let fetchVpn = -1;
    let fetchBase = 0;
    let code: Int32Array = emptyCodePage;

    outer: for (;;) {
      // Between instructions: halt, interrupts, WFI, budget; then refresh the loop's view.
      this.attention = false;
      if (this.halted) {
        reason = 'halt';
        break;
      }
      const interrupt = this.pendingInterrupt();
      if (interrupt >= 0) {
        this.waiting = false;
        pc = this.enterTrap(interrupt | 0x8000_0000, 0, pc);
        // Taking it may make another deliverable (firmware turning MTI into STI): look again.
        if (++interruptsInARow > interruptsInARowMax) throw new Error(`interrupt ${interrupt} stays deliverable after being taken`);
        continue;
      }
      interruptsInARow = 0;
      if (this.waiting) {
        if ((this.mip & this.mie) === 0) {
          reason = 'wfi';
          break;
        }
        this.waiting = false;
      }
      if (n >= budget) break;
      fetchContext = this.priv << 20;
      dataContext = this.dataPrivilege() << 20 | (this.mstatus & (Status.SUM | Status.MXR)) << 4;
      fetchVpn = -1;

      try {
        while (n < budget) {
          if (pc >>> 12 !== fetchVpn) {
            const vpn = pc >>> 12;
            const e = vpn & tlbMask;
            if (fetchTag[e] === (vpn | fetchContext)) {
              code = fetchCode[e]!;
              fetchBase = fetchWordBase[e]!;
              fetchVpn = vpn;
            } else {
              this.runRetired = n;
              const cacheable = this.fillFetch(pc);
              code = this.fetchedCode;
              fetchBase = this.fetchedWordBase;
              // A page whose PMP rules vary inside it is looked up again for every instruction.
              fetchVpn = cacheable ? vpn : -1;
            }
          }
          const slot = (pc >>> 1) & 0x7fe;
          let w = code[slot]!;
          if (w === 0) {
            this.decodeSlot(code, slot, ram32[fetchBase + (slot >> 1)]!);
            w = code[slot]!;
          }
          const imm = code[slot + 1]!;
          const rd = (w >> 8) & 63;
          const rs1 = (w >> 14) & 31;
          const rs2 = (w >> 19) & 31;

          switch (w & 0xff) {
            case Op.LUI:
              x[rd] = imm;
              break;
            case Op.AUIPC:
              x[rd] = (pc + imm) | 0;
              break;
            case Op.JAL: {
              const target = (pc + imm) | 0;
              if ((target & 3) !== 0) raise(Cause.InstructionMisaligned, target);
              x[rd] = (pc + 4) | 0;
              pc = target;
              n++;
              continue;
            }
            case Op.JALR: {
              const target = ((x[rs1]! + imm) & ~1) | 0;
              if ((target & 3) !== 0) raise(Cause.InstructionMisaligned, target);
              x[rd] = (pc + 4) | 0;
              pc = target;
              n++;
              continue;
            }
            case Op.BEQ:
              if (x[rs1] === x[rs2]) {
                if ((imm & 2) !== 0) raise(Cause.InstructionMisaligned, (pc + imm) | 0);
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BNE:
              if (x[rs1] !== x[rs2]) {
                if ((imm & 2) !== 0) raise(Cause.InstructionMisaligned, (pc + imm) | 0);
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BLT:
              if (x[rs1]! < x[rs2]!) {
                if ((imm & 2) !== 0) raise(Cause.InstructionMisaligned, (pc + imm) | 0);
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BGE:
              if (x[rs1]! >= x[rs2]!) {
                if ((imm & 2) !== 0) raise(Cause.InstructionMisaligned, (pc + imm) | 0);
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BLTU:
              if (x[rs1]! >>> 0 < x[rs2]! >>> 0) {
                if ((imm & 2) !== 0) raise(Cause.InstructionMisaligned, (pc + imm) | 0);
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BGEU:
              if (x[rs1]! >>> 0 >= x[rs2]! >>> 0) {
                if ((imm & 2) !== 0) raise(Cause.InstructionMisaligned, (pc + imm) | 0);
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;

            case Op.LB: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (loadTag[e] === ((va >>> 12) | dataContext)) x[rd] = ramI8[(va + loadAdd[e]!) | 0]!;
              else {
                this.runRetired = n;
                x[rd] = (this.loadSlow(va, 1) << 24) >> 24;
                if (this.attention) {
                  pc = (pc + 4) | 0;
                  n++;
                  continue outer;
                }
              }
              break;
            }
            case Op.LBU: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (loadTag[e] === ((va >>> 12) | dataContext)) x[rd] = ramU8[(va + loadAdd[e]!) | 0]!;
              else {
                this.runRetired = n;
                x[rd] = this.loadSlow(va, 1) & 0xff;
                if (this.attention) {
                  pc = (pc + 4) | 0;
                  n++;
                  continue outer;
                }
              }
              break;
            }
            case Op.LH: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (loadTag[e] === ((va >>> 12) | dataContext) && (va & 1) === 0) x[rd] = ramI16[((va + loadAdd[e]!) | 0) >> 1]!;
              else {
                this.runRetired = n;
                x[rd] = (this.loadSlow(va, 2) << 16) >> 16;
                if (this.attention) {
                  pc = (pc + 4) | 0;
                  n++;
                  continue outer;
                }
              }
              break;
            }
            case Op.LHU: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (loadTag[e] === ((va >>> 12) | dataContext) && (va & 1) === 0) x[rd] = ramU16[((va + loadAdd[e]!) | 0) >> 1]!;
              else {
                this.runRetired = n;
                x[rd] = this.loadSlow(va, 2) & 0xffff;
                if (this.attention) {
                  pc = (pc + 4) | 0;
                  n++;
                  continue outer;
                }
              }
              break;
            }
            case Op.LW: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (loadTag[e] === ((va >>> 12) | dataContext) && (va & 3) === 0) x[rd] = ram32[((va + loadAdd[e]!) | 0) >> 2]!;
              else {
                this.runRetired = n;
                x[rd] = this.loadSlow(va, 4);
                if (this.attention) {
                  pc = (pc + 4) | 0;
                  n++;
                  continue outer;
                }
              }
              break;
            }
            case Op.SB: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (storeTag[e] === ((va >>> 12) | dataContext)) {
                const i = (va + storeAdd[e]!) | 0;
                ramU8[i] = x[rs2]!;
                // A store into a page with decoded instructions empties that word's slot.
                const stale = codePages[i >>> 12];
                if (stale !== undefined) stale[(i >>> 1) & 0x7fe] = 0;
              }
              else {
                this.runRetired = n;
                this.storeSlow(va, 1, x[rs2]!);
                if (this.attention) {
                  pc = (pc + 4) | 0;
                  n++;
                  continue outer;
                }
              }
              break;
            }
            case Op.SH: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (storeTag[e] === ((va >>> 12) | dataContext) && (va & 1) === 0) {
                const i = (va + storeAdd[e]!) | 0;
                ramU16[i >> 1] = x[rs2]!;
                // A store into a page with decoded instructions empties that word's slot.
                const stale = codePages[i >>> 12];
                if (stale !== undefined) stale[(i >>> 1) & 0x7fe] = 0;
              }
              else {
                this.runRetired = n;
                this.storeSlow(va, 2, x[rs2]!);
                if (this.attention) {
                  pc = (pc + 4) | 0;
                  n++;
                  continue outer;
                }
              }
              break;
            }
            case Op.SW: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (storeTag[e] === ((va >>> 12) | dataContext) && (va & 3) === 0) {
                const i = (va + storeAdd[e]!) | 0;
                ram32[i >> 2] = x[rs2]!;
                // A store into a page with decoded instructions empties that word's slot.
                const stale = codePages[i >>> 12];
                if (stale !== undefined) stale[(i >>> 1) & 0x7fe] = 0;
              }
              else {
                this.runRetired = n;
                this.storeSlow(va, 4, x[rs2]!);
                if (this.attention) {
                  pc = (pc + 4) | 0;
                  n++;
                  continue outer;
                }
              }
              break;
            }

            case Op.ADDI:
              x[rd] = (x[rs1]! + imm) | 0;
              break;
            case Op.SLTI:
              x[rd] = x[rs1]! < imm ? 1 : 0;
              break;
            case Op.SLTIU:
              x[rd] = x[rs1]! >>> 0 < imm >>> 0 ? 1 : 0;
              break;
            case Op.XORI:
              x[rd] = x[rs1]! ^ imm;
              break;
            case Op.ORI:
              x[rd] = x[rs1]! | imm;
              break;
            case Op.ANDI:
              x[rd] = x[rs1]! & imm;
              break;
            case Op.SLLI:
              x[rd] = x[rs1]! << imm;
              break;
            case Op.SRLI:
              x[rd] = x[rs1]! >>> imm;
              break;
            case Op.SRAI:
              x[rd] = x[rs1]! >> imm;
              break;
            case Op.ADD:
              x[rd] = (x[rs1]! + x[rs2]!) | 0;
              break;
            case Op.SUB:
              x[rd] = (x[rs1]! - x[rs2]!) | 0;
              break;
            case Op.SLL:
              x[rd] = x[rs1]! << (x[rs2]! & 31);
              break;
            case Op.SLT:
              x[rd] = x[rs1]! < x[rs2]! ? 1 : 0;
              break;
            case Op.SLTU:
              x[rd] = x[rs1]! >>> 0 < x[rs2]! >>> 0 ? 1 : 0;
              break;
            case Op.XOR:
              x[rd] = x[rs1]! ^ x[rs2]!;
              break;
            case Op.SRL:
              x[rd] = x[rs1]! >>> (x[rs2]! & 31);
              break;
            case Op.SRA:
              x[rd] = x[rs1]! >> (x[rs2]! & 31);
              break;
            case Op.OR:
              x[rd] = x[rs1]! | x[rs2]!;
              break;
            case Op.AND:
              x[rd] = x[rs1]! & x[rs2]!;
              break;

            case Op.MUL:
              x[rd] = Math.imul(x[rs1]!, x[rs2]!);
              break;
            case Op.MULH:
              x[rd] = mulhSigned(x[rs1]!, x[rs2]!);
              break;
            case Op.MULHSU:
              x[rd] = mulhSignedUnsigned(x[rs1]!, x[rs2]!);
              break;
            case Op.MULHU:
              x[rd] = mulhUnsigned(x[rs1]!, x[rs2]!);
              break;
            case Op.DIV: {
              const a = x[rs1]!;
              const b = x[rs2]!;
              // Division by zero gives -1; overflow (-2^31 / -1) gives -2^31: no trap (M spec).
              x[rd] = b === 0 ? -1 : b === -1 ? -a | 0 : (a / b) | 0;
              break;
            }
            case Op.DIVU: {
              const b = x[rs2]! >>> 0;
              x[rd] = b === 0 ? -1 : ((x[rs1]! >>> 0) / b) | 0;
              break;
            }
            case Op.REM: {
              const a = x[rs1]!;
              const b = x[rs2]!;
              x[rd] = b === 0 ? a : b === -1 ? 0 : a % b | 0;
              break;
            }
            case Op.REMU: {
              const b = x[rs2]! >>> 0;
              x[rd] = b === 0 ? x[rs1]! : (x[rs1]! >>> 0) % b | 0;
              break;
            }

            case Op.FENCE:
              break;

            default:
              // Everything rarer: atomics and system instructions.
              this.runRetired = n;
              this.pc = pc;
              if (this.executeRare(w, imm)) n++;
              pc = this.pc;
              continue outer;
          }
          pc = (pc + 4) | 0;
          n++;
        }
      } catch (error) {
        if (error !== trapSignal) throw error;
        // A synchronous exception at `pc`: the instruction does not retire, except a jump or
        // branch to a misaligned target, which QEMU's -icount counts (like ECALL; see
        // docs/ARCHITECTURE.md, "Counting instructions").
        if (trapSignal.cause === Cause.InstructionMisaligned) n++;
        this.noteException(pc);
        pc = this.enterTrap(trapSignal.cause, trapSignal.tval, pc);
        this.lastHandler = pc;
      }
    }
    x[0] = 0;
    this.pc = pc;
    this.retired += n;
    this.runRetired = 0;
    return { reason, retired: n };
  }

  private decodeSlot(code: Int32Array, slot: number, insn: number): void {
    const d = decode(insn);
    code[slot] = d.op | ((d.rd === 0 ? sinkRegister : d.rd) << 8) | (d.rs1 << 14) | (d.rs2 << 19);
    code[slot + 1] = d.imm;
  }

  /**
   * Atomics and system instructions, with `this.pc` at the instruction. Leaves `this.pc` at
   * the next instruction (or the trap handler) and returns whether the instruction counts as
   * retired. May throw a TrapSignal for exceptions found at run time.
   */
  private executeRare(word: number, imm: number): boolean {
    const x = this.x;
    const op = word & 0xff;
    const rd = (word >> 8) & 63;
    const rs1 = (word >> 14) & 31;
    const rs2 = (word >> 19) & 31;
    const pc = this.pc;
    const next = (pc + 4) | 0;
    switch (op) {
      case Op.LR_W: {
        const address = x[rs1]!;
        if ((address & 3) !== 0) raise(Cause.LoadMisaligned, address);
        const value = this.loadSlow(address, 4);
        x[rd] = value;
        this.reservationAddress = address;
        this.reservationValue = value;
        break;
      }
      case Op.SC_W: {
        const address = x[rs1]!;
        if ((address & 3) !== 0) raise(Cause.StoreMisaligned, address);
        let failed = 1;
        if (this.reservationAddress === address) {
          const current = this.loadSlowForStore(address);
          if (current === this.reservationValue) {
            this.storeSlow(address, 4, x[rs2]!);
            failed = 0;
          }
        }
        this.reservationAddress = -1;
        x[rd] = failed;
        break;
      }
      case Op.AMOSWAP_W: case Op.AMOADD_W: case Op.AMOXOR_W: case Op.AMOAND_W: case Op.AMOOR_W:
      case Op.AMOMIN_W: case Op.AMOMAX_W: case Op.AMOMINU_W: case Op.AMOMAXU_W: {
        const address = x[rs1]!;
        if ((address & 3) !== 0) raise(Cause.StoreMisaligned, address);
        const old = this.loadSlowForStore(address);
        const operand = x[rs2]!;
        this.storeSlow(address, 4, amo(op, old, operand));
        x[rd] = old;
        break;
      }
      case Op.FENCE_I:
        // The code cache follows every store, so there is nothing stale to drop.
        break;
      case Op.ECALL:
        // Counted as executed, as QEMU's icount does; the spec says ECALL does not retire.
        this.pc = this.decodedException(Cause.EcallFromU + this.priv, 0, pc);
        return true;
      case Op.EBREAK:
        // tval 0: the spec allows 0 or the pc; QEMU writes 0.
        this.pc = this.decodedException(Cause.Breakpoint, 0, pc);
        return true;
      case Op.ILLEGAL:
        this.pc = this.decodedException(Cause.IllegalInstruction, imm, pc);
        return true;
      case Op.MRET:
        if (this.priv !== Priv.M) this.raiseIllegal();
        this.pc = this.mret();
        return true;
      case Op.SRET:
        if (this.priv === Priv.U || (this.priv === Priv.S && (this.mstatus & Status.TSR) !== 0)) {
          this.raiseIllegal();
        }
        this.pc = this.sret();
        return true;
      case Op.WFI:
        if (this.priv === Priv.U || (this.priv === Priv.S && (this.mstatus & Status.TW) !== 0)) {
          this.raiseIllegal();
        }
        // Wake condition ignores global enables and delegation (privileged spec 3.3.3).
        if ((this.mip & this.mie) === 0) this.waiting = true;
        break;
      case Op.SFENCE_VMA:
        if (this.priv === Priv.U || (this.priv === Priv.S && (this.mstatus & Status.TVM) !== 0)) {
          this.raiseIllegal();
        }
        this.flushTlb();
        break;
      case Op.CSRRW: case Op.CSRRS: case Op.CSRRC: case Op.CSRRWI: case Op.CSRRSI: case Op.CSRRCI:
        this.executeCsr(op, rd, rs1, imm);
        break;
      default:
        throw new Error(`interpreter: unhandled decoded op ${op} at pc 0x${(pc >>> 0).toString(16)}`);
    }
    this.pc = next;
    return true;
  }

  private executeCsr(op: number, rd: number, rs1: number, csr: number): void {
    const immediateForm = op >= Op.CSRRWI;
    const operand = immediateForm ? rs1 : this.x[rs1]!;
    const kind = immediateForm ? op - 3 : op;
    const writes = kind === Op.CSRRW || rs1 !== 0;
    const reads = kind !== Op.CSRRW || rd !== sinkRegister;
    this.checkCsrAccess(csr, writes);
    const old = reads || kind !== Op.CSRRW ? this.readCsr(csr) : 0;
    if (writes) {
      const value = kind === Op.CSRRW ? operand : kind === Op.CSRRS ? old | operand : old & ~operand;
      this.writeCsr(csr, value | 0);
    }
    this.x[rd] = old;
    this.attention = true;
  }

  // ---------------------------------------------------------------------------------------
  // Traps and interrupts

  /** An exception raised by the decoded instruction itself (ECALL, EBREAK, ILLEGAL). */
  private decodedException(cause: number, tval: number, pc: number): number {
    trapSignal.cause = cause;
    this.noteException(pc);
    const handler = this.enterTrap(cause, tval, pc);
    this.lastHandler = handler;
    return handler;
  }

  /**
   * An exception at the very instruction the previous trap jumped to, many times in a row,
   * means no handler can ever run (a vector into nowhere, a corrupt kernel): stop the machine
   * instead of spinning for ever.
   */
  private noteException(pc: number): void {
    if (pc !== this.lastHandler) {
      this.faultsAtHandler = 0;
      return;
    }
    if (++this.faultsAtHandler < trapLoopMax) return;
    const description = `every trap faults at once: cause ${trapSignal.cause} at pc 0x${(pc >>> 0).toString(16)}, ${trapLoopMax} times in a row`;
    if (this.ports.trapLoop !== undefined) this.ports.trapLoop(description);
    else this.halt();
  }

  /** The interrupt to take now, or -1 (privileged spec 3.1.6.1 and 3.1.9). */
  pendingInterrupt(): number {
    const pending = this.mip & this.mie;
    if (pending === 0) return -1;
    const machineEnabled = this.priv < Priv.M || (this.mstatus & Status.MIE) !== 0;
    const machinePending = pending & ~this.mideleg;
    if (machinePending !== 0 && machineEnabled) return highestPriority(machinePending);
    const supervisorEnabled = this.priv < Priv.S || (this.priv === Priv.S && (this.mstatus & Status.SIE) !== 0);
    const supervisorPending = pending & this.mideleg;
    if (supervisorPending !== 0 && supervisorEnabled) return highestPriority(supervisorPending);
    return -1;
  }

  /** Takes a trap with `epc` = `pc` and returns the handler's address. */
  enterTrap(cause: number, tval: number, pc: number): number {
    const interrupt = cause < 0;
    const code = cause & 0x7fff_ffff;
    const delegated = this.priv <= Priv.S && ((interrupt ? this.mideleg : this.medeleg) >>> code) & 1;
    this.attention = true;
    if (delegated) return this.trapToSupervisor(cause, tval, pc);
    if (this.firmware !== undefined) return this.firmware.trap(this, cause, tval, pc);
    this.mcause = cause;
    this.mepc = pc;
    this.mtval = tval;
    let status = this.mstatus & ~(Status.MPP | Status.MPIE | Status.MIE);
    if (this.mstatus & Status.MIE) status |= Status.MPIE;
    status |= this.priv << Status.MPP_SHIFT;
    this.mstatus = status;
    this.priv = Priv.M;
    return trapVector(this.mtvec, interrupt, code);
  }

  /** For firmware: hands a trap that reached M to S-mode, as if it had been delegated. */
  redirectToSupervisor(cause: number, tval: number, pc: number): number {
    this.attention = true;
    return this.trapToSupervisor(cause, tval, pc);
  }

  private trapToSupervisor(cause: number, tval: number, pc: number): number {
    this.scause = cause;
    this.sepc = pc;
    this.stval = tval;
    let status = this.mstatus & ~(Status.SPP | Status.SPIE | Status.SIE);
    if (this.mstatus & Status.SIE) status |= Status.SPIE;
    if (this.priv === Priv.S) status |= Status.SPP;
    this.mstatus = status;
    this.priv = Priv.S;
    return trapVector(this.stvec, cause < 0, cause & 0x7fff_ffff);
  }

  private mret(): number {
    const status = this.mstatus;
    const previous = ((status & Status.MPP) >>> Status.MPP_SHIFT) as PrivilegeLevel;
    let next = status & ~(Status.MIE | Status.MPP);
    if (status & Status.MPIE) next |= Status.MIE;
    next |= Status.MPIE;
    if (previous !== Priv.M) next &= ~Status.MPRV;
    this.mstatus = next;
    this.priv = previous;
    this.attention = true;
    return this.mepc;
  }

  private sret(): number {
    const status = this.mstatus;
    const previous: PrivilegeLevel = status & Status.SPP ? Priv.S : Priv.U;
    let next = status & ~(Status.SIE | Status.SPP | Status.MPRV);
    if (status & Status.SPIE) next |= Status.SIE;
    next |= Status.SPIE;
    this.mstatus = next;
    this.priv = previous;
    this.attention = true;
    return this.sepc;
  }

  // ---------------------------------------------------------------------------------------
  // CSRs

  private checkCsrAccess(csr: number, writes: boolean): void {
    const required = (csr >>> 8) & 3;
    if (this.priv < required) this.raiseIllegal();
    if (writes && (csr >>> 10) === 3) this.raiseIllegal();
    if (csr === Csr.satp && this.priv === Priv.S && (this.mstatus & Status.TVM) !== 0) this.raiseIllegal();
    if ((csr >= Csr.cycle && csr <= Csr.hpmcounter31) || (csr >= Csr.cycleh && csr <= Csr.hpmcounter31h)) {
      const bit = 1 << (csr & 31);
      if (this.priv < Priv.M && (this.mcounteren & bit) === 0) this.raiseIllegal();
      if (this.priv < Priv.S && (this.scounteren & bit) === 0) this.raiseIllegal();
    }
  }

  /** Illegal instruction found at run time, with the instruction's bits in tval (as QEMU does). */
  private raiseIllegal(): never {
    let bits = 0;
    try {
      const physical = this.translate(this.pc, Access.Fetch, this.priv, 4);
      if (this.ports.ram.contains(physical, 4)) bits = this.ports.ram.i32[(physical - ramBaseAddress) >>> 2]!;
    } catch (error) {
      if (error !== trapSignal) throw error;
    }
    return raise(Cause.IllegalInstruction, bits);
  }

  private counter(offset: bigint): bigint {
    return BigInt.asUintN(64, BigInt(this.currentRetired) + offset);
  }

  readCsr(csr: number): number {
    switch (csr) {
      case Csr.cycle: case Csr.mcycle: return Number(this.counter(this.cycleOffset) & 0xffff_ffffn) | 0;
      case Csr.cycleh: case Csr.mcycleh: return Number(this.counter(this.cycleOffset) >> 32n) | 0;
      case Csr.instret: case Csr.minstret: return Number(this.counter(this.instretOffset) & 0xffff_ffffn) | 0;
      case Csr.instreth: case Csr.minstreth: return Number(this.counter(this.instretOffset) >> 32n) | 0;
      case Csr.time: return Number(this.ports.readTime() & 0xffff_ffffn) | 0;
      case Csr.timeh: return Number(this.ports.readTime() >> 32n) | 0;
      case Csr.sstatus: return this.readMstatus() & sstatusMask;
      case Csr.sie: return this.mie & this.mideleg;
      case Csr.stvec: return this.stvec;
      case Csr.scounteren: return this.scounteren;
      case Csr.senvcfg: return 0;
      case Csr.sscratch: return this.sscratch;
      case Csr.sepc: return this.sepc;
      case Csr.scause: return this.scause;
      case Csr.stval: return this.stval;
      case Csr.sip: return this.mip & this.mideleg;
      case Csr.satp: return this.satp;
      case Csr.mvendorid: case Csr.marchid: case Csr.mimpid: case Csr.mhartid: case Csr.mconfigptr: return 0;
      case Csr.mstatus: return this.readMstatus();
      case Csr.misa: return misaValue;
      case Csr.medeleg: return this.medeleg;
      case Csr.mideleg: return this.mideleg;
      case Csr.mie: return this.mie;
      case Csr.mtvec: return this.mtvec;
      case Csr.mcounteren: return this.mcounteren;
      case Csr.mstatush: case Csr.menvcfg: case Csr.menvcfgh: case Csr.mcountinhibit: return 0;
      case Csr.mscratch: return this.mscratch;
      case Csr.mepc: return this.mepc;
      case Csr.mcause: return this.mcause;
      case Csr.mtval: return this.mtval;
      case Csr.mip: return this.mip;
    }
    if (csr >= Csr.pmpcfg0 && csr <= Csr.pmpcfg3) {
      const base = (csr - Csr.pmpcfg0) * 4;
      const c = this.pmpcfg;
      return c[base]! | (c[base + 1]! << 8) | (c[base + 2]! << 16) | (c[base + 3]! << 24);
    }
    if (csr >= Csr.pmpaddr0 && csr <= Csr.pmpaddr15) return this.pmpaddr[csr - Csr.pmpaddr0]!;
    if (isZeroCounter(csr)) return 0;
    return this.raiseIllegal();
  }

  writeCsr(csr: number, value: number): void {
    switch (csr) {
      case Csr.mcycle: this.cycleOffset = this.counterWrite(this.cycleOffset, value, false); return;
      case Csr.mcycleh: this.cycleOffset = this.counterWrite(this.cycleOffset, value, true); return;
      case Csr.minstret: this.instretOffset = this.counterWrite(this.instretOffset, value, false); return;
      case Csr.minstreth: this.instretOffset = this.counterWrite(this.instretOffset, value, true); return;
      case Csr.sstatus: this.writeMstatus((this.mstatus & ~sstatusMask) | (value & sstatusMask)); return;
      case Csr.sie: this.mie = (this.mie & ~this.mideleg) | (value & this.mideleg); return;
      case Csr.stvec: this.stvec = legalTvec(this.stvec, value); return;
      case Csr.scounteren: this.scounteren = value; return;
      case Csr.senvcfg: return;
      case Csr.sscratch: this.sscratch = value; return;
      case Csr.sepc: this.sepc = value & ~3; return;
      case Csr.scause: this.scause = value; return;
      case Csr.stval: this.stval = value; return;
      case Csr.sip: {
        const writable = Mip.SSIP & this.mideleg;
        this.mipSoftware = (this.mipSoftware & ~writable) | (value & writable);
        return;
      }
      case Csr.satp:
        // Sv32 or Bare, and all nine ASID bits hold what is written, as on QEMU. The TLBs are
        // not tagged by ASID: every satp write flushes them (always correct, never stale).
        this.satp = value;
        this.flushTlb();
        return;
      case Csr.mstatus: this.writeMstatus(value); return;
      case Csr.misa: case Csr.mstatush: case Csr.menvcfg: case Csr.menvcfgh: case Csr.mcountinhibit: return;
      case Csr.medeleg: this.medeleg = value & medelegWritable; return;
      case Csr.mideleg: this.mideleg = value & supervisorInterrupts; return;
      case Csr.mie: this.mie = value & interruptsImplemented; return;
      case Csr.mtvec: this.mtvec = legalTvec(this.mtvec, value); return;
      case Csr.mcounteren: this.mcounteren = value; return;
      case Csr.mscratch: this.mscratch = value; return;
      case Csr.mepc: this.mepc = value & ~3; return;
      case Csr.mcause: this.mcause = value; return;
      case Csr.mtval: this.mtval = value; return;
      case Csr.mip: this.mipSoftware = (this.mipSoftware & ~mipWritable) | (value & mipWritable); return;
    }
    if (csr >= Csr.pmpcfg0 && csr <= Csr.pmpcfg3) {
      for (let i = 0; i < 4; i++) this.writePmpcfg((csr - Csr.pmpcfg0) * 4 + i, (value >>> (8 * i)) & 0xff);
      this.pmpChanged();
      return;
    }
    if (csr >= Csr.pmpaddr0 && csr <= Csr.pmpaddr15) {
      const index = csr - Csr.pmpaddr0;
      const locked = (this.pmpcfg[index]! & PmpCfg.L) !== 0;
      const nextLockedTor = index + 1 < pmpEntries && (this.pmpcfg[index + 1]! & (PmpCfg.L | PmpCfg.A)) === (PmpCfg.L | 0x08);
      if (!locked && !nextLockedTor) this.pmpaddr[index] = value;
      this.pmpChanged();
      return;
    }
    if (isZeroCounter(csr)) return;
    this.raiseIllegal();
  }

  private counterWrite(offset: bigint, value: number, high: boolean): bigint {
    // The written value is what the next instruction reads: this one does not count on top.
    const current = this.counter(offset);
    const written = high
      ? (BigInt(value >>> 0) << 32n) | (current & 0xffff_ffffn)
      : (current & 0xffff_ffff_0000_0000n) | BigInt(value >>> 0);
    return BigInt.asUintN(64, written - BigInt(this.currentRetired + 1));
  }

  private writePmpcfg(index: number, value: number): void {
    if (this.pmpcfg[index]! & PmpCfg.L) return;
    let legal = value & (PmpCfg.R | PmpCfg.W | PmpCfg.X | PmpCfg.A | PmpCfg.L);
    if ((legal & (PmpCfg.R | PmpCfg.W)) === PmpCfg.W) legal &= ~PmpCfg.W; // R=0, W=1 is reserved
    this.pmpcfg[index] = legal;
  }

  private readMstatus(): number {
    return this.mstatus;
  }

  private writeMstatus(value: number): void {
    let next = value & mstatusWritable;
    if ((next & Status.MPP) === 2 << Status.MPP_SHIFT) next = (next & ~Status.MPP) | (this.mstatus & Status.MPP);
    this.mstatus = next;
    this.attention = true;
  }

  // ---------------------------------------------------------------------------------------
  // Memory: translation, PMP, the slow paths

  /** The privilege that loads and stores use: MPP when MPRV is set in M-mode. */
  private dataPrivilege(): PrivilegeLevel {
    if (this.priv === Priv.M && (this.mstatus & Status.MPRV) !== 0) return ((this.mstatus & Status.MPP) >>> Status.MPP_SHIFT) as PrivilegeLevel;
    return this.priv;
  }

  flushTlb(): void {
    this.fetchTag.fill(-1);
    this.loadTag.fill(-1);
    this.storeTag.fill(-1);
    this.fetchCode.fill(undefined);
    this.attention = true;
  }

  /**
   * Translates `va` for an access of `width` bytes and checks PMP. Returns the physical
   * address (which may be above 4 GiB); throws the right page or access fault.
   * `cacheable` is set when the whole page may be cached in a TLB.
   */
  private translate(va: number, access: Access, priv: PrivilegeLevel, width: number): number {
    let physical: number;
    if (priv === Priv.M || (this.satp >>> 31) === 0) {
      physical = va >>> 0;
    } else {
      physical = this.walk(va, access, priv);
    }
    const pmp = this.pmpCheck(physical, width, access, priv);
    if ((pmp & 1) === 0) raise(accessFaultCause[access]!, va);
    this.lastTranslationCacheable = (pmp & 2) !== 0;
    return physical;
  }
  private lastTranslationCacheable = false;

  /** Sv32 page-table walk (privileged spec 4.3.2), setting A and D as QEMU does. */
  private walk(va: number, access: Access, priv: PrivilegeLevel): number {
    const ram = this.ports.ram;
    let table = (this.satp & 0x3f_ffff) * pageBytes;
    let level = 1;
    let pte = 0;
    let pteAddress = 0;
    for (;;) {
      const index = level === 1 ? va >>> 22 : (va >>> 12) & 0x3ff;
      pteAddress = table + index * 4;
      if ((this.pmpCheck(pteAddress, 4, Access.Load, Priv.S) & 1) === 0 || !ram.contains(pteAddress, 4)) {
        raise(accessFaultCause[access]!, va);
      }
      pte = ram.i32[(pteAddress - ramBaseAddress) >>> 2]!;
      if ((pte & Pte.V) === 0 || (pte & (Pte.R | Pte.W)) === Pte.W) raise(pageFaultCause[access]!, va);
      if (pte & (Pte.R | Pte.X)) break;
      if (level === 0) raise(pageFaultCause[access]!, va);
      level = 0;
      table = (pte >>> 10) * pageBytes;
    }
    // Leaf: permissions.
    const mxr = (this.mstatus & Status.MXR) !== 0;
    const sum = (this.mstatus & Status.SUM) !== 0;
    if (access === Access.Fetch) {
      if ((pte & Pte.X) === 0) raise(pageFaultCause[access]!, va);
    } else if (access === Access.Load) {
      if ((pte & Pte.R) === 0 && !(mxr && (pte & Pte.X) !== 0)) raise(pageFaultCause[access]!, va);
    } else if ((pte & Pte.W) === 0) {
      raise(pageFaultCause[access]!, va);
    }
    if (pte & Pte.U) {
      if (priv === Priv.S && (access === Access.Fetch || !sum)) raise(pageFaultCause[access]!, va);
    } else if (priv === Priv.U) {
      raise(pageFaultCause[access]!, va);
    }
    const ppn = pte >>> 10;
    if (level === 1 && (ppn & 0x3ff) !== 0) raise(pageFaultCause[access]!, va); // misaligned superpage
    // A and D: set by the hardware, with the PTE updated in memory.
    let updated = pte | Pte.A;
    if (access === Access.Store) updated |= Pte.D;
    if (updated !== pte) {
      ram.i32[(pteAddress - ramBaseAddress) >>> 2] = updated;
      ram.noteWritten(pteAddress - ramBaseAddress, 4);
    }
    const pageNumber = level === 1 ? (ppn & ~0x3ff) | ((va >>> 12) & 0x3ff) : ppn;
    return pageNumber * pageBytes + (va & 0xfff);
  }

  /** Active PMP regions in priority order, rebuilt whenever pmpcfg or pmpaddr change. */
  private pmpRegions: { bottom: number; top: number; cfg: number }[] = [];

  /** Rebuilds the active PMP regions (privileged spec 3.7.1: TOR, NA4, NAPOT). */
  pmpChanged(): void {
    const regions: { bottom: number; top: number; cfg: number }[] = [];
    let previousTop = 0;
    for (let i = 0; i < pmpEntries; i++) {
      const cfg = this.pmpcfg[i]!;
      const mode = (cfg & PmpCfg.A) >>> 3;
      const address = (this.pmpaddr[i]! >>> 0) * 4;
      let bottom = 0;
      let top = 0;
      if (mode === 1) {
        bottom = previousTop;
        top = address;
      } else if (mode === 2) {
        bottom = address;
        top = address + 4;
      } else if (mode === 3) {
        const size = 2 ** (countTrailingOnes(this.pmpaddr[i]! >>> 0) + 3);
        bottom = Math.floor(address / size) * size;
        top = bottom + size;
      }
      previousTop = address;
      if (mode !== 0 && bottom < top) regions.push({ bottom, top, cfg });
    }
    this.pmpRegions = regions;
    this.flushTlb();
  }

  /**
   * PMP (privileged spec 3.7): bit 0 of the result says whether the access is allowed, bit 1
   * whether that holds for its whole page (so the page may enter a TLB).
   */
  private pmpCheck(physical: number, width: number, access: Access, priv: PrivilegeLevel): number {
    const regions = this.pmpRegions;
    const pageStart = physical - (physical % pageBytes);
    const pageEnd = pageStart + pageBytes;
    for (let i = 0; i < regions.length; i++) {
      const { bottom, top, cfg } = regions[i]!;
      if (top <= physical || bottom >= physical + width) continue;
      // The first region that touches the access decides; all its bytes must be inside.
      if (!(bottom <= physical && physical + width <= top)) return 0;
      let uniform = bottom <= pageStart && pageEnd <= top;
      for (let j = 0; j < i && uniform; j++) if (regions[j]!.bottom < pageEnd && regions[j]!.top > pageStart) uniform = false;
      const allowed = (priv === Priv.M && (cfg & PmpCfg.L) === 0) || (cfg & pmpPermission[access]!) !== 0;
      return (allowed ? 1 : 0) | (uniform ? 2 : 0);
    }
    let uniform = true;
    for (let j = 0; j < regions.length && uniform; j++) if (regions[j]!.bottom < pageEnd && regions[j]!.top > pageStart) uniform = false;
    // No region matches: M-mode may, S and U may not (16 entries are implemented).
    return (priv === Priv.M ? 1 : 0) | (uniform ? 2 : 0);
  }

  /** Result of the last `fillFetch`: the page's decoded instructions and its first RAM word. */
  private fetchedCode: Int32Array = emptyCodePage;
  private fetchedWordBase = 0;

  /** Translates a fetch from `pc`'s page; returns whether the page went into the fetch TLB. */
  private fillFetch(pc: number): boolean {
    const ram = this.ports.ram;
    const physical = this.translate(pc, Access.Fetch, this.priv, 4);
    if (!ram.contains(physical, 4)) raise(Cause.InstructionAccessFault, pc);
    const page = (physical - ramBaseAddress) >>> 12;
    let code = this.codePages[page];
    if (code === undefined) {
      if (this.codePageCount >= codePagesMax) this.flushCodeCache();
      code = new Int32Array(2048);
      this.codePages[page] = code;
      this.codePageCount++;
    }
    this.fetchedCode = code;
    this.fetchedWordBase = page * 1024;
    if (!this.lastTranslationCacheable) return false;
    const vpn = pc >>> 12;
    const e = vpn & tlbMask;
    this.fetchTag[e] = vpn | (this.priv << 20);
    this.fetchCode[e] = code;
    this.fetchWordBase[e] = page * 1024;
    return true;
  }

  /** Drops every decoded page (the cache is full): QEMU's tb_flush, in small. */
  private flushCodeCache(): void {
    this.codePages.fill(undefined);
    this.codePageCount = 0;
    this.fetchTag.fill(-1);
    this.fetchCode.fill(undefined);
    this.attention = true;
  }

  /** RAM bytes changed behind the fast path (slow-path stores, DMA, page-table A/D updates). */
  private invalidateCode(page: number, offset: number, length: number): void {
    const code = this.codePages[page];
    if (code === undefined) return;
    const first = offset >>> 2;
    const last = (offset + length - 1) >>> 2;
    for (let slot = first; slot <= last; slot++) code[slot * 2] = 0;
  }

  /** Load of `width` bytes through translation, PMP, RAM or MMIO. Returns the raw value. */
  private loadSlow(va: number, width: AccessWidth): number {
    const priv = this.dataPrivilege();
    if ((va & (width - 1)) !== 0) return this.loadMisaligned(va, width);
    const physical = this.translate(va, Access.Load, priv, width);
    const ram = this.ports.ram;
    if (ram.contains(physical, width)) {
      if (this.lastTranslationCacheable) this.fillData(this.loadTag, this.loadAdd, va, physical, priv);
      const index = physical - ramBaseAddress;
      if (width === 4) return ram.i32[index >>> 2]!;
      if (width === 2) return ram.u16[index >>> 1]!;
      return ram.u8[index]!;
    }
    return this.mmioRead(va, physical, width, Access.Load);
  }

  /** Read half of a read-modify-write (AMO, SC): needs store permission, reports store faults. */
  private loadSlowForStore(va: number): number {
    const priv = this.dataPrivilege();
    const physical = this.translate(va, Access.Store, priv, 4);
    const ram = this.ports.ram;
    if (ram.contains(physical, 4)) return ram.i32[(physical - ramBaseAddress) >>> 2]!;
    return this.mmioRead(va, physical, 4, Access.Store);
  }

  private loadMisaligned(va: number, width: number): number {
    // Misaligned loads from RAM complete byte by byte; each byte is translated on its own.
    let value = 0;
    const priv = this.dataPrivilege();
    const physicals: number[] = [];
    for (let i = 0; i < width; i++) {
      const physical = this.translate((va + i) | 0, Access.Load, priv, 1);
      if (!this.ports.ram.contains(physical, 1)) raise(Cause.LoadAccessFault, va);
      physicals.push(physical);
    }
    for (let i = 0; i < width; i++) value |= this.ports.ram.u8[physicals[i]! - ramBaseAddress]! << (8 * i);
    return value;
  }

  private storeSlow(va: number, width: AccessWidth, value: number): void {
    const priv = this.dataPrivilege();
    const ram = this.ports.ram;
    if ((va & (width - 1)) !== 0) {
      this.storeMisaligned(va, width, value, priv);
      return;
    }
    const physical = this.translate(va, Access.Store, priv, width);
    if (!ram.contains(physical, width)) {
      this.mmioWrite(va, physical, width, value);
      return;
    }
    const index = physical - ramBaseAddress;
    if (width === 4) ram.i32[index >>> 2] = value;
    else if (width === 2) ram.u16[index >>> 1] = value;
    else ram.u8[index] = value;
    this.invalidateCode(index >>> 12, index & 0xfff, width);
    if (ram.pageFlags[index >>> 12] === 0) {
      if (this.lastTranslationCacheable) this.fillData(this.storeTag, this.storeAdd, va, physical, priv);
      return;
    }
    this.ports.watchedStore(physical, width);
  }

  private storeMisaligned(va: number, width: number, value: number, priv: PrivilegeLevel): void {
    const physicals: number[] = [];
    for (let i = 0; i < width; i++) {
      const physical = this.translate((va + i) | 0, Access.Store, priv, 1);
      if (!this.ports.ram.contains(physical, 1)) raise(Cause.StoreAccessFault, va);
      physicals.push(physical);
    }
    const ram = this.ports.ram;
    for (let i = 0; i < width; i++) {
      const index = physicals[i]! - ramBaseAddress;
      ram.u8[index] = value >>> (8 * i);
      this.invalidateCode(index >>> 12, index & 0xfff, 1);
      if (ram.pageFlags[index >>> 12] !== 0) this.ports.watchedStore(physicals[i]!, 1);
    }
  }

  private fillData(tag: Int32Array, add: Int32Array, va: number, physical: number, priv: PrivilegeLevel): void {
    const vpn = va >>> 12;
    const e = vpn & tlbMask;
    tag[e] = vpn | (priv << 20) | ((this.mstatus & (Status.SUM | Status.MXR)) << 4);
    add[e] = (physical - ramBaseAddress - (va & 0xfff) - (vpn << 12)) | 0;
  }

  private mmioRead(va: number, physical: number, width: AccessWidth, access: Access): number {
    const entry = physical < 2 ** 32 ? this.ports.bus.find(physical) : undefined;
    if (entry === undefined) return raise(accessFaultCause[access]!, va);
    // Device reads can change device state and interrupt lines: stop and look afterwards.
    this.attention = true;
    return entry.device.read(physical - entry.base, width) | 0;
  }

  private mmioWrite(va: number, physical: number, width: AccessWidth, value: number): void {
    const entry = physical < 2 ** 32 ? this.ports.bus.find(physical) : undefined;
    if (entry === undefined) raise(Cause.StoreAccessFault, va);
    this.attention = true;
    const mask = width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff;
    entry.device.write(physical - entry.base, width, (value & mask) >>> 0);
  }

  /** Reads guest memory as the hart would at its current privilege, for tools; no side effects on faults. */
  debugRead32(va: number): number | undefined {
    try {
      const physical = this.translate(va, Access.Load, this.dataPrivilege(), 4);
      const ram = this.ports.ram;
      return ram.contains(physical, 4) ? ram.i32[(physical - ramBaseAddress) >>> 2] : undefined;
    } catch (error) {
      if (error === trapSignal) return undefined;
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Snapshots

  save(writer: SnapshotWriter): void {
    writer.section('hart');
    for (let i = 0; i < 32; i++) writer.i32(this.x[i]!);
    writer.i32(this.pc).u8(this.priv).uint(this.retired).bool(this.waiting).bool(this.halted);
    for (const value of [
      this.mstatus, this.mie, this.mipSoftware, this.mipHardware, this.medeleg, this.mideleg, this.mtvec, this.stvec,
      this.mscratch, this.sscratch, this.mepc, this.sepc, this.mcause, this.scause, this.mtval, this.stval,
      this.satp, this.mcounteren, this.scounteren, this.reservationAddress, this.reservationValue,
    ]) {
      writer.i32(value);
    }
    writer.u64(this.instretOffset).u64(this.cycleOffset);
    writer.bytes(this.pmpcfg);
    writer.u32Array(this.pmpaddr);
  }

  restore(reader: SnapshotReader): void {
    reader.section('hart');
    for (let i = 0; i < 32; i++) this.x[i] = reader.i32();
    this.x[sinkRegister] = 0;
    this.pc = reader.i32();
    const priv = reader.u8();
    if (priv !== 0 && priv !== 1 && priv !== 3) throw new SnapshotError(`bad privilege level ${priv}`);
    this.priv = priv;
    this.retired = reader.uint();
    this.waiting = reader.bool();
    this.halted = reader.bool();
    this.mstatus = reader.i32();
    this.mie = reader.i32();
    this.mipSoftware = reader.i32();
    this.mipHardware = reader.i32();
    this.medeleg = reader.i32();
    this.mideleg = reader.i32();
    this.mtvec = reader.i32();
    this.stvec = reader.i32();
    this.mscratch = reader.i32();
    this.sscratch = reader.i32();
    this.mepc = reader.i32();
    this.sepc = reader.i32();
    this.mcause = reader.i32();
    this.scause = reader.i32();
    this.mtval = reader.i32();
    this.stval = reader.i32();
    this.satp = reader.i32();
    this.mcounteren = reader.i32();
    this.scounteren = reader.i32();
    this.reservationAddress = reader.i32();
    this.reservationValue = reader.i32();
    this.instretOffset = reader.u64();
    this.cycleOffset = reader.u64();
    const pmpcfg = reader.bytes();
    if (pmpcfg.length !== pmpEntries) throw new SnapshotError('bad PMP configuration in snapshot');
    this.pmpcfg.set(pmpcfg);
    reader.u32ArrayInto(this.pmpaddr);
    this.pmpChanged();
  }
}

const emptyCodePage = new Int32Array(2048);

function highestPriority(pending: number): number {
  for (const irq of interruptPriority) if (pending & (1 << irq)) return irq;
  throw new Error(`no known interrupt in pending set 0x${pending.toString(16)}`);
}

function trapVector(tvec: number, interrupt: boolean, code: number): number {
  const base = tvec & ~3;
  return interrupt && (tvec & 3) === 1 ? (base + 4 * code) | 0 : base;
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

function countTrailingOnes(value: number): number {
  let count = 0;
  while (count < 32 && ((value >>> count) & 1) === 1) count++;
  return count;
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

/** High 32 bits of the unsigned 64-bit product (MULHU), without BigInt: split into 16-bit halves. */
export function mulhUnsigned(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16;
  const b0 = b & 0xffff, b1 = b >>> 16;
  const low = a0 * b0;
  const mid1 = a1 * b0 + (low >>> 16);
  const mid2 = a0 * b1 + (mid1 & 0xffff);
  return (a1 * b1 + Math.floor(mid1 / 65536) + Math.floor(mid2 / 65536)) | 0;
}

export function mulhSigned(a: number, b: number): number {
  let high = mulhUnsigned(a, b);
  if (a < 0) high = (high - b) | 0;
  if (b < 0) high = (high - a) | 0;
  return high;
}

export function mulhSignedUnsigned(a: number, b: number): number {
  let high = mulhUnsigned(a, b);
  if (a < 0) high = (high - b) | 0;
  return high;
}
