/**
 * The hart: RV32IMAFDC + Zicsr + Zifencei, privilege modes M/S/U, Sv32, PMP. This file holds its
 * architectural state, the run loop and its snapshots; the rest of the CPU, by concern:
 * - rare-instructions.ts: atomics and system instructions, which the loop hands off;
 * - fp-instructions.ts: the F and D instructions, which the loop hands off too (fpu/: their arithmetic);
 * - csr-file.ts: CSR access checks, reads and writes (counters, mstatus, PMP registers);
 * - traps.ts: exceptions and interrupts, trap entry, MRET/SRET, the trap-loop watch;
 * - mmu.ts: Sv32 translation, the software TLBs, the slow load and store paths; pmp.ts: PMP;
 * - code-cache.ts: decoded instructions per RAM page, kept in step with every RAM write;
 * - execution-tier.ts: where a faster tier plugs in, and its contract; translation-cache.ts and
 *   translator.ts: the translation tier (hot guest code compiled to JavaScript functions);
 * - decode.ts, csr.ts: instruction decoding, CSR numbers and bits.
 *
 * This interpreter is the reference implementation. `run(budget)` executes decoded
 * instructions from a per-page cache (code-cache.ts) and retires exactly `budget`
 * instructions unless the guest powers off or waits in WFI. Everything here is synchronous and
 * pure: devices are reached through the bus, and the one value from outside the VM, the time
 * CSR, through `ports.readTime` (an environment read, see environment.ts).
 *
 * Hot-path conventions: registers live in an Int32Array with a 33rd "sink" register that
 * decoded instructions with rd = x0 write to; values are kept int32; loads and stores hit a
 * software TLB whose entries map a virtual page straight to an index into RAM, and a store
 * into a page with decoded instructions empties the slots it overlaps itself. Instructions
 * are 2 or 4 bytes (C): the decoded word says which, and the loop advances pc by it. Anything else
 * (TLB misses, MMIO, faults, page walks, misaligned accesses, stores to watched pages) takes
 * the MMU's slow path, which may throw the {@link TrapSignal}.
 */
import type { Bus } from '../memory/bus.js';
import type { Ram } from '../memory/ram.js';
import type { AccessWidth } from '../devices/device.js';
import { SnapshotError, type SnapshotReader, type SnapshotWriter } from '../snapshot.js';
import { Op } from './decode.js';
import { Priv, pmpEntries, type PrivilegeLevel } from './csr.js';
import { decodedWordMask, emptyCodePage, headSkipMask, headSkipShift, sinkRegister } from './code-cache.js';
import { dataPrivilege, dataTlbContext, fetchInstruction, fetchTlbContext, fillFetch, flushStoreTlb, flushTlb, loadSlow, pmpChanged, ramWrittenOutside, storeSlow, storeTlbPages, tlbEntries } from './mmu.js';
import type { PmpRegion } from './pmp.js';
import { trapSignal } from './trap-signal.js';
import { TrapLoopWatch, enterTrap, pendingInterrupt, takeException, trapToSupervisor } from './traps.js';
import { executeRare } from './rare-instructions.js';
import { executeFloat } from './fp-instructions.js';
import { arenaTlbEntries, hartArenaViews, type HartArenaViews } from './wasm-arena.js';
import { assert } from '../assert.js';
import { FpuState } from './fpu/index.js';
import type { ExecutionTier } from './execution-tier.js';

// The CPU's public names, importable from here as before the split.
export { TrapSignal } from './trap-signal.js';
export { trapLoopMax } from './traps.js';
export { tlbEntries } from './mmu.js';
export { codePagesMax } from './code-cache.js';

// What the run loop uses from other modules between and inside instructions, as module-local
// constants: V8 folds a module's own constants into optimized code, but guards every use of an
// imported binding (a load from its module cell and a check that it is initialized). Measured
// on cpubench: the imported TLB mask cost 10%, the imported context functions another 10%
// (docs/BENCHMARKS.md). Rarely taken paths call the imports directly.
const tlbMask = tlbEntries - 1;
const fetchContextOf = fetchTlbContext;
const dataContextOf = dataTlbContext;
const dataPrivilegeOf = dataPrivilege;
const executeFloatOf = executeFloat;
const headSkipMaskOf = headSkipMask;
const headSkipUnit = 1 << headSkipShift;
const decodedWordMaskOf = decodedWordMask;
/** Interrupts taken back to back without an instruction between them; more is a bug of ours. */
const interruptsInARowMax = 8;

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

export class Hart {
  /** x0..x31 plus the sink register. x0 always reads 0. In the RAM's WebAssembly memory when it has one (wasm-arena.ts). */
  readonly x: Int32Array;
  pc = 0;
  priv: PrivilegeLevel = Priv.M;
  /** Instructions retired since reset (exact; a double is exact to 2^53). */
  retired = 0;
  /** Set by WFI: the hart sleeps until an interrupt is pending and enabled. */
  waiting = false;
  /** Set when the board powers off; `run` returns 'halt' until reset. */
  halted = false;
  /** `requestStop` was called during this `run` call. */
  stopRequested = false;
  /** Native M-mode firmware, if the board boots an OS that expects one (see firmware/sbi.ts). */
  firmware: MachineModeFirmware | undefined;

  // CSR state (csr-file.ts reads and writes it; the board and the SBI set some directly)
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

  // The F and D state (fp-instructions.ts): f0..f31, 64 bits each as two uint32 halves (f[2i]
  // the low half, f[2i + 1] the high half; a single is NaN-boxed in the high half), and fcsr:
  // fflags is `fpu.flags` (every FPU operation ORs its exception flags into it), frm is `frm`.
  // mstatus.FS says whether any of it may be used (Off traps) and whether it changed (Dirty).
  readonly f = new Uint32Array(64);
  readonly fpu = new FpuState();
  /** fcsr.frm, 0..7 (5, 6 and 7 are reserved: an instruction with rm = DYN then traps). */
  frm = 0;

  // The MMU's state (mmu.ts writes it): software TLBs, tag = vpn | context (-1 = empty),
  // add = RAM index - virtual address; the fetch TLB maps straight to the page's decoded
  // instructions and the index of its first word in RAM. Kept here, not in an object of their
  // own, because the run loop compiles measurably faster that way (docs/BENCHMARKS.md).
  readonly fetchTag: Int32Array;
  readonly fetchWordBase: Int32Array;
  readonly fetchCode: (Int32Array | undefined)[] = new Array<Int32Array | undefined>(tlbEntries).fill(undefined);
  readonly loadTag: Int32Array;
  readonly loadAdd: Int32Array;
  readonly storeTag: Int32Array;
  readonly storeAdd: Int32Array;
  /** With a WebAssembly memory: the hart's part of it (wasm-arena.ts), which the tier's WebAssembly blocks use. */
  readonly arena: HartArenaViews | undefined;
  /**
   * Per 4 MiB region of virtual addresses: 1 if a page walk there ended at a megapage since
   * the TLBs were last emptied, so that entries of the region may come from one leaf (see
   * `fencePage`).
   */
  readonly megapageRegions = new Uint8Array(1024);
  /**
   * Per RAM page: bit `1 << level` set if a page walk read a level-`level` page-table entry
   * from it since the TLBs were last emptied; `walkedPageList` names the pages with any. A
   * write to such a page drops the TLB entries that may derive from the written entry (mmu.ts,
   * "Page-table pages"). Host state like the TLBs: in no snapshot or digest.
   */
  readonly walkedPages: Uint8Array;
  readonly walkedPageList: number[] = [];
  /** Active PMP regions in priority order, rebuilt whenever pmpcfg or pmpaddr change. */
  pmpRegions: readonly PmpRegion[] = [];

  /** Decoded instructions per RAM page (code-cache.ts), and how many pages have them. */
  readonly codePages: (Int32Array | undefined)[];
  codePageCount = 0;

  /**
   * Set by slow paths when the run loop must stop and look between instructions: an interrupt
   * may have become deliverable, or what the loop cached (privilege, TLB contexts, the fetch
   * page) may be stale, or the board halted the hart.
   */
  attention = false;
  /**
   * Instructions retired so far in the current `run` call, published before slow-path calls
   * (by the translation tier too, which adds what its code has retired).
   */
  runRetired = 0;
  /** The translation tier, if this hart uses one (execution-tier.ts); the interpreter alone if not. */
  tier: ExecutionTier | undefined;
  readonly trapLoopWatch: TrapLoopWatch;

  constructor(readonly ports: HartPorts) {
    const arena = ports.ram.arena;
    this.arena = arena === undefined ? undefined : hartArenaViews(arena, ports.ram.pages);
    assert(arenaTlbEntries === tlbEntries, () => `the WebAssembly arena has ${arenaTlbEntries} TLB entries, the MMU ${tlbEntries}`);
    this.x = this.arena?.x ?? new Int32Array(33);
    this.fetchTag = (this.arena?.fetchTag ?? new Int32Array(tlbEntries)).fill(-1);
    this.fetchWordBase = this.arena?.fetchWordBase ?? new Int32Array(tlbEntries);
    this.loadTag = (this.arena?.loadTag ?? new Int32Array(tlbEntries)).fill(-1);
    this.loadAdd = this.arena?.loadAdd ?? new Int32Array(tlbEntries);
    this.storeTag = (this.arena?.storeTag ?? new Int32Array(tlbEntries)).fill(-1);
    this.storeAdd = this.arena?.storeAdd ?? new Int32Array(tlbEntries);
    this.codePages = new Array<Int32Array | undefined>(ports.ram.pages).fill(undefined);
    this.walkedPages = new Uint8Array(ports.ram.pages);
    ports.ram.watcher = { ramWritten: (page, offset, length) => ramWrittenOutside(this, page, offset, length) };
    this.trapLoopWatch = new TrapLoopWatch((description) => {
      if (ports.trapLoop !== undefined) ports.trapLoop(description);
      else this.halt();
    });
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
    // QEMU 7.2 (-bios none) starts with mstatus.FS = Off and fcsr = 0 (mstatus = 0 above).
    this.f.fill(0);
    this.fpu.flags = 0;
    this.frm = 0;
    this.trapLoopWatch.reset();
    this.pmpChanged();
  }

  /** Drives a hardware interrupt-pending bit (CLINT: MSIP, MTIP; PLIC: MEIP, SEIP). */
  setInterruptLine(bit: number, level: boolean): void {
    if (level) this.mipHardware |= bit;
    else this.mipHardware &= ~bit;
    this.attention = true;
  }

  /**
   * Asks the running loop to return after the current instruction, as if its budget were
   * spent (the board does so when the guest hands the outside a request: replication ends
   * the epoch there, so that the request leaves at once). Only for the current `run` call.
   */
  requestStop(): void {
    this.stopRequested = true;
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

  /** Empties the TLBs (SFENCE.VMA; the SBI's remote fences). */
  flushTlb(): void {
    flushTlb(this);
  }

  /** Empties the store TLB alone (see flushStoreTlb). */
  flushStoreTlb(): void {
    flushStoreTlb(this);
  }

  /** The RAM pages the store TLB maps: written without the slow path (see storeTlbPages). */
  storeTlbPages(): number[] {
    return storeTlbPages(this);
  }

  /** pmpcfg or pmpaddr changed (a CSR write, or the board setting up PMP for Linux). */
  pmpChanged(): void {
    pmpChanged(this);
  }

  /** For firmware: hands a trap that reached M to S-mode, as if it had been delegated. */
  redirectToSupervisor(cause: number, tval: number, pc: number): number {
    return trapToSupervisor(this, cause, tval, pc);
  }

  // ---------------------------------------------------------------------------------------
  // The run loop
  //
  // One long function with its fast paths written out case by case (the one place where
  // repetition is allowed): the switch on literal op numbers (const enums) compiles to a jump
  // table, and the RAM views and TLB arrays are read into locals once per call. V8's code for
  // this loop moves with edits that look neutral: the order of the locals below, an imported
  // constant, a call result assigned to `pc` without `| 0` (which made V8 carry pc tagged,
  // checked at every instruction) have each cost 3-10%. Run `npm run bench` before and after
  // any change here. The translation tier plugs in at marked block heads: execution-tier.ts.

  /**
   * Executes until `budget` instructions have retired, the hart waits in WFI with nothing
   * pending, or the board halts; or, reason 'budget' with fewer retired, until `requestStop`.
   * Interrupts are taken between instructions.
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
    this.stopRequested = false;
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
      if (this.stopRequested) break; // as if the budget were spent
      const interrupt = pendingInterrupt(this);
      if (interrupt >= 0) {
        this.waiting = false;
        pc = enterTrap(this, interrupt | 0x8000_0000, 0, pc) | 0;
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
      fetchContext = fetchContextOf(this.priv) | 0;
      dataContext = dataContextOf(dataPrivilegeOf(this), this.mstatus) | 0;
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
              const filled = fillFetch(this, pc) | 0;
              const page = filled >>> 1;
              code = codePages[page]!;
              fetchBase = page << 10;
              // A page whose PMP rules vary inside it is looked up again for every instruction.
              fetchVpn = (filled & 1) !== 0 ? vpn : -1;
            }
          }
          // One slot per halfword (code-cache.ts). Compressed instructions have ops of their own
          // (the C_ twins below) or, on the rare path, bits 24-31 of w hold their length.
          const slot = pc & 0xffe;
          let w = code[slot]!;
          // One test for both rare cases: an empty slot (0), and the head of a block the
          // translation tier watches (bit 31 set, see execution-tier.ts); the interpreter pays
          // nothing else for the tier.
          if (w <= 0) {
            if (w === 0) {
              this.runRetired = n;
              w = fetchInstruction(this, code, pc, fetchBase) | 0;
            }
            if (w < 0) {
              if ((w & headSkipMaskOf) !== 0) {
                // A watched head with nothing compiled, called lately: the tier asked to be left
                // out of its next entries (code-cache.ts, headSkipShift).
                code[slot] = (w - headSkipUnit) | 0;
              } else {
                this.runRetired = n;
                this.pc = pc;
                const ran = this.tier!.run(this, budget - n) | 0;
                if (ran !== 0) {
                  n += ran;
                  pc = this.pc | 0;
                  if (this.attention) continue outer;
                  continue;
                }
              }
              w &= decodedWordMaskOf;
            }
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
              x[rd] = (pc + 4) | 0;
              pc = target;
              n++;
              continue;
            }
            case Op.JALR: {
              const target = ((x[rs1]! + imm) & ~1) | 0;
              x[rd] = (pc + 4) | 0;
              pc = target;
              n++;
              continue;
            }
            case Op.BEQ:
              if (x[rs1] === x[rs2]) {
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BNE:
              if (x[rs1] !== x[rs2]) {
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BLT:
              if (x[rs1]! < x[rs2]!) {
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BGE:
              if (x[rs1]! >= x[rs2]!) {
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BLTU:
              if (x[rs1]! >>> 0 < x[rs2]! >>> 0) {
                pc = (pc + imm) | 0;
                n++;
                continue;
              }
              break;
            case Op.BGEU:
              if (x[rs1]! >>> 0 >= x[rs2]! >>> 0) {
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
                x[rd] = (loadSlow(this, va, 1) << 24) >> 24;
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
                x[rd] = loadSlow(this, va, 1) & 0xff;
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
                x[rd] = (loadSlow(this, va, 2) << 16) >> 16;
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
                x[rd] = loadSlow(this, va, 2) & 0xffff;
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
                x[rd] = loadSlow(this, va, 4);
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
                // A store into a page with decoded instructions empties the slots of the
                // instructions it overlaps: the one starting at its halfword and a 32-bit one
                // starting at the halfword before (at offset 0 that wraps to the page's last
                // slot, which is harmless: straddling instructions are never in a slot).
                const stale = codePages[i >>> 12];
                if (stale !== undefined) {
                  stale[i & 0xffe] = 0;
                  stale[(i - 2) & 0xffe] = 0;
                }
              }
              else {
                this.runRetired = n;
                storeSlow(this, va, 1, x[rs2]!);
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
                // A store into a page with decoded instructions empties the slots of the
                // instructions it overlaps: the one starting at its halfword and a 32-bit one
                // starting at the halfword before (at offset 0 that wraps to the page's last
                // slot, which is harmless: straddling instructions are never in a slot).
                const stale = codePages[i >>> 12];
                if (stale !== undefined) {
                  stale[i & 0xffe] = 0;
                  stale[(i - 2) & 0xffe] = 0;
                }
              }
              else {
                this.runRetired = n;
                storeSlow(this, va, 2, x[rs2]!);
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
                // A store into a page with decoded instructions empties the slots of the
                // instructions it overlaps: those starting at its two halfwords and a 32-bit
                // one starting at the halfword before (see SH).
                const stale = codePages[i >>> 12];
                if (stale !== undefined) {
                  stale[i & 0xffe] = 0;
                  stale[(i + 2) & 0xffe] = 0;
                  stale[(i - 2) & 0xffe] = 0;
                }
              }
              else {
                this.runRetired = n;
                storeSlow(this, va, 4, x[rs2]!);
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

            // The compressed instructions the loop finishes itself (their C_ twins, ops.ts): the
            // same operations, then pc + 2. Repeated here rather than reading the length after
            // every instruction, which cost the whole loop 3% (docs/BENCHMARKS.md).
            case Op.C_ADDI:
              x[rd] = (x[rs1]! + imm) | 0;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_LUI:
              x[rd] = imm;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_ANDI:
              x[rd] = x[rs1]! & imm;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_SLLI:
              x[rd] = x[rs1]! << imm;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_SRLI:
              x[rd] = x[rs1]! >>> imm;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_SRAI:
              x[rd] = x[rs1]! >> imm;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_ADD:
              x[rd] = (x[rs1]! + x[rs2]!) | 0;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_SUB:
              x[rd] = (x[rs1]! - x[rs2]!) | 0;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_XOR:
              x[rd] = x[rs1]! ^ x[rs2]!;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_OR:
              x[rd] = x[rs1]! | x[rs2]!;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_AND:
              x[rd] = x[rs1]! & x[rs2]!;
              pc = (pc + 2) | 0;
              n++;
              continue;
            case Op.C_LW: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (loadTag[e] === ((va >>> 12) | dataContext) && (va & 3) === 0) x[rd] = ram32[((va + loadAdd[e]!) | 0) >> 2]!;
              else {
                this.runRetired = n;
                x[rd] = loadSlow(this, va, 4);
                if (this.attention) {
                  pc = (pc + 2) | 0;
                  n++;
                  continue outer;
                }
              }
              pc = (pc + 2) | 0;
              n++;
              continue;
            }
            case Op.C_SW: {
              const va = (x[rs1]! + imm) | 0;
              const e = (va >>> 12) & tlbMask;
              if (storeTag[e] === ((va >>> 12) | dataContext) && (va & 3) === 0) {
                const i = (va + storeAdd[e]!) | 0;
                ram32[i >> 2] = x[rs2]!;
                // Empties the slots it overlaps, as SW does.
                const stale = codePages[i >>> 12];
                if (stale !== undefined) {
                  stale[i & 0xffe] = 0;
                  stale[(i + 2) & 0xffe] = 0;
                  stale[(i - 2) & 0xffe] = 0;
                }
              }
              else {
                this.runRetired = n;
                storeSlow(this, va, 4, x[rs2]!);
                if (this.attention) {
                  pc = (pc + 2) | 0;
                  n++;
                  continue outer;
                }
              }
              pc = (pc + 2) | 0;
              n++;
              continue;
            }
            case Op.C_JAL: {
              const target = (pc + imm) | 0;
              x[rd] = (pc + 2) | 0;
              pc = target;
              n++;
              continue;
            }
            case Op.C_JALR: {
              const target = ((x[rs1]! + imm) & ~1) | 0;
              x[rd] = (pc + 2) | 0;
              pc = target;
              n++;
              continue;
            }
            case Op.C_BEQ:
              pc = x[rs1] === x[rs2] ? (pc + imm) | 0 : (pc + 2) | 0;
              n++;
              continue;
            case Op.C_BNE:
              pc = x[rs1] !== x[rs2] ? (pc + imm) | 0 : (pc + 2) | 0;
              n++;
              continue;

            case Op.FLW:
            case Op.FSW:
            case Op.FLD:
            case Op.FSD:
            case Op.FP:
              // The F and D instructions, all in one call (fp-instructions.ts); it traps by
              // throwing, or by returning a handler's address with attention set (FS = Off).
              this.runRetired = n;
              this.pc = pc;
              pc = executeFloatOf(this, w, imm) | 0;
              n++;
              if (this.attention) continue outer;
              continue;

            default:
              // Everything rarer: atomics and system instructions.
              this.runRetired = n;
              this.pc = pc;
              pc = executeRare(this, w, imm) | 0;
              n++;
              continue outer;
          }
          pc = (pc + 4) | 0;
          n++;
        }
      } catch (error) {
        if (error !== trapSignal) throw error;
        // A synchronous exception at `pc`: the instruction does not retire (docs/ARCHITECTURE.md,
        // "Counting instructions"). With C, IALIGN = 16: no jump or branch target is misaligned.
        pc = takeException(this, trapSignal.cause, trapSignal.tval, pc) | 0;
      }
    }
    x[0] = 0;
    this.pc = pc;
    this.retired += n;
    this.runRetired = 0;
    return { reason, retired: n };
  }

  // ---------------------------------------------------------------------------------------
  // Snapshots (the order of the fields is the format; machine digests cover it)

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
    writer.u32Array(this.f);
    writer.u8(this.fpu.flags).u8(this.frm);
    this.trapLoopWatch.save(writer);
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
    reader.u32ArrayInto(this.f);
    const fflags = reader.u8();
    const frm = reader.u8();
    if (fflags > 0x1f || frm > 7) throw new SnapshotError(`bad fcsr in snapshot: fflags ${fflags}, frm ${frm}`);
    this.fpu.flags = fflags;
    this.frm = frm;
    this.trapLoopWatch.restore(reader);
    this.pmpChanged();
  }
}

/** High 32 bits of the unsigned 64-bit product (MULHU), without BigInt: split into 16-bit halves. */
export function mulhUnsigned(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16;
  const b0 = b & 0xffff, b1 = b >>> 16;
  // Each sum stays below 2^32, so `>>> 16` is exact; a division by 65536 made V8 speculate
  // on its results, and a first fractional one deoptimized the run loop it is inlined in.
  const low = a0 * b0;
  const mid1 = a1 * b0 + (low >>> 16);
  const mid2 = a0 * b1 + (mid1 & 0xffff);
  return (a1 * b1 + (mid1 >>> 16) + (mid2 >>> 16)) | 0;
}

/** High 32 bits of the signed 64-bit product (MULH). */
export function mulhSigned(a: number, b: number): number {
  let high = mulhUnsigned(a, b);
  if (a < 0) high = (high - b) | 0;
  if (b < 0) high = (high - a) | 0;
  return high;
}

/** High 32 bits of signed `a` times unsigned `b` (MULHSU). */
export function mulhSignedUnsigned(a: number, b: number): number {
  let high = mulhUnsigned(a, b);
  if (a < 0) high = (high - b) | 0;
  return high;
}
