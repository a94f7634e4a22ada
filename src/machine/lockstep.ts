/**
 * Lockstep verification of the translation tier (`--cpu lockstep`, a test and debug mode):
 * the machine runs with the tier, and a reference machine, a copy of it made by save and
 * restore, runs the same instructions on the interpreter alone. At every exit from translated
 * code the reference catches up by exactly as many instructions and the two harts' whole
 * architectural state must be equal (registers, pc, privilege, every CSR, the f registers,
 * the instruction count); after every `Machine.run` RAM and every device must be equal too.
 * The first difference throws a {@link LockstepDivergence} naming the field and where.
 *
 * The reference gets the same inputs: the machine's environment reads are recorded and
 * replayed to it at the same instruction counts (checked, as a backup replays them), and every
 * event is applied to both, after the reference has caught up. Its outputs are dropped.
 */
import type { EnvironmentPort, EnvironmentReadKind } from './environment.js';
import type { Hart } from './cpu/cpu.js';
import type { ExecutionTier } from './cpu/execution-tier.js';
import type { TranslationCache } from './cpu/translation-cache.js';
import { pendingInterrupt, takeException } from './cpu/traps.js';
import type { Machine } from './board.js';

/** How often `verify` compares the whole of RAM (in instructions; it compares the rest after every run). */
export const ramComparisonInstructions = 20_000_000;

/** The two machines differ: a bug of the translation tier (or of this check). */
export class LockstepDivergence extends Error {
  override readonly name = 'LockstepDivergence';
}

interface RecordedRead {
  readonly kind: EnvironmentReadKind;
  readonly retired: number;
  readonly value: bigint;
}

/** Wraps the machine's environment: answers from it and keeps each answer for the reference. */
export class RecordingEnvironment implements EnvironmentPort {
  readonly reads: RecordedRead[] = [];
  constructor(private readonly inner: EnvironmentPort) {}

  read(kind: EnvironmentReadKind, retiredInstructions: number): bigint {
    const value = this.inner.read(kind, retiredInstructions);
    this.reads.push({ kind, retired: retiredInstructions, value });
    return value;
  }
}

/** The reference machine's environment: the recorded answers, in order, at the same counts. */
class ReplayEnvironment implements EnvironmentPort {
  constructor(private readonly recording: RecordingEnvironment) {}

  read(kind: EnvironmentReadKind, retiredInstructions: number): bigint {
    const next = this.recording.reads.shift();
    if (next === undefined || next.kind !== kind || next.retired !== retiredInstructions) {
      throw new LockstepDivergence(`the reference read ${kind} at instruction ${retiredInstructions}; the machine read ${next === undefined ? 'nothing more' : `${next.kind} at ${next.retired}`}`);
    }
    return next.value;
  }
}

/** The hart's architectural state as named values (what must be equal after every block). */
function hartState(hart: Hart): [string, number | bigint | boolean][] {
  const state: [string, number | bigint | boolean][] = [];
  for (let i = 1; i < 32; i++) state.push([`x${i}`, hart.x[i]!]);
  for (let i = 0; i < 64; i++) state.push([`f${i >> 1}.${i & 1 ? 'high' : 'low'}`, hart.f[i]!]);
  state.push(
    ['pc', hart.pc], ['priv', hart.priv], ['retired', hart.currentRetired], ['waiting', hart.waiting], ['halted', hart.halted],
    ['mstatus', hart.mstatus], ['mie', hart.mie], ['mipSoftware', hart.mipSoftware], ['mipHardware', hart.mipHardware],
    ['medeleg', hart.medeleg], ['mideleg', hart.mideleg], ['mtvec', hart.mtvec], ['stvec', hart.stvec],
    ['mscratch', hart.mscratch], ['sscratch', hart.sscratch], ['mepc', hart.mepc], ['sepc', hart.sepc],
    ['mcause', hart.mcause], ['scause', hart.scause], ['mtval', hart.mtval], ['stval', hart.stval], ['satp', hart.satp],
    ['mcounteren', hart.mcounteren], ['scounteren', hart.scounteren], ['instretOffset', hart.instretOffset], ['cycleOffset', hart.cycleOffset],
    ['reservationAddress', hart.reservationAddress], ['reservationValue', hart.reservationValue], ['fflags', hart.fpu.flags], ['frm', hart.frm],
  );
  return state;
}

/** The CSR fields, read into `into` (no allocation: this runs after every block). */
function readCsrs(hart: Hart, into: (number | bigint | boolean)[]): void {
  into[0] = hart.priv; into[1] = hart.waiting; into[2] = hart.halted; into[3] = hart.mstatus; into[4] = hart.mie;
  into[5] = hart.mipSoftware; into[6] = hart.mipHardware; into[7] = hart.medeleg; into[8] = hart.mideleg; into[9] = hart.mtvec;
  into[10] = hart.stvec; into[11] = hart.mscratch; into[12] = hart.sscratch; into[13] = hart.mepc; into[14] = hart.sepc;
  into[15] = hart.mcause; into[16] = hart.scause; into[17] = hart.mtval; into[18] = hart.stval; into[19] = hart.satp;
  into[20] = hart.mcounteren; into[21] = hart.scounteren; into[22] = hart.instretOffset; into[23] = hart.cycleOffset;
  into[24] = hart.reservationAddress; into[25] = hart.reservationValue; into[26] = hart.fpu.flags; into[27] = hart.frm;
}
const ourCsrs: (number | bigint | boolean)[] = [];
const referenceCsrs: (number | bigint | boolean)[] = [];

function csrsEqual(ours: Hart, reference: Hart): boolean {
  readCsrs(ours, ourCsrs);
  readCsrs(reference, referenceCsrs);
  for (let i = 0; i < ourCsrs.length; i++) if (ourCsrs[i] !== referenceCsrs[i]) return false;
  return true;
}

function compareHarts(ours: Hart, reference: Hart, where: string): void {
  // The common case first, cheaply: the registers equal and the CSRs as one list.
  let equal = ours.pc === reference.pc && ours.currentRetired === reference.currentRetired;
  for (let i = 1; i < 32 && equal; i++) equal = ours.x[i] === reference.x[i];
  if (equal && Buffer.compare(new Uint8Array(ours.f.buffer), new Uint8Array(reference.f.buffer)) === 0 && csrsEqual(ours, reference)) return;
  const a = hartState(ours);
  const b = hartState(reference);
  for (let i = 0; i < a.length; i++) {
    const [name, value] = a[i]!;
    const expected = b[i]![1];
    if (value !== expected) throw new LockstepDivergence(`${where}: ${name} is ${String(value)} with the tier, ${String(expected)} on the interpreter`);
  }
}

/**
 * The tier as the machine's hart sees it in lockstep mode: runs the real tier, then the
 * reference by as many instructions, and compares.
 */
export class Lockstep implements ExecutionTier {
  private reference: Machine | undefined;
  /** Exits from translated code compared so far. */
  blockExits = 0;
  private calls = 0;
  /** The instruction count at which RAM was last compared. */
  private ramComparedAt = 0;

  constructor(
    private readonly machine: Machine,
    private readonly recording: RecordingEnvironment,
    private readonly tier: TranslationCache,
    private readonly createReference: (environment: EnvironmentPort) => Machine,
  ) {}

  run(hart: Hart, budget: number): number {
    const start = hart.pc;
    const base = hart.runRetired;
    // Every other call one block only, compared at its exit; the others go from block to block
    // as the tier does outside lockstep (its links between blocks), compared at the end.
    this.tier.chains = (this.calls++ & 1) === 1;
    const ran = this.tier.run(hart, budget);
    if (ran === 0) return 0;
    // The tier leaves its count to the caller (the interpreter publishes it again before using it).
    hart.runRetired = base + ran;
    // The reference runs what the interpreter ran before and what the tier ran, in one go: a
    // budget that ended just before an instruction that traps would leave it short of the trap
    // the machine took there.
    const reference = this.catchUp();
    const trap = this.tier.lastTrap;
    if (trap !== undefined) {
      // The tier took a trap after `ran` instructions; the reference, stopped by its budget
      // just before that instruction, must be there, and takes the same trap.
      if (reference.hart.pc !== trap.pc) throw new LockstepDivergence(`the tier trapped at pc 0x${(trap.pc >>> 0).toString(16)}, the interpreter is at 0x${(reference.hart.pc >>> 0).toString(16)}`);
      reference.hart.pc = takeException(reference.hart, trap.cause, trap.tval, trap.pc);
      reference.hart.attention = true;
    }
    // An instruction that made an interrupt deliverable (an MMIO access that raised a line)
    // ended the translated code; the reference's run loop has already taken the interrupt
    // (it looks for interrupts before its budget), the machine's takes it next: compared at
    // the next exit, when both have.
    if (trap === undefined && hart.attention && pendingInterrupt(hart) >= 0) return ran;
    compareHarts(hart, reference.hart, `after ${ran} translated instructions from pc 0x${(start >>> 0).toString(16)}`);
    this.blockExits++;
    return ran;
  }

  decoded(page: number, code: Int32Array, slot: number, pc: number): void {
    this.tier.decoded(page, code, slot, pc);
  }

  translates(page: number): boolean {
    return this.tier.translates(page);
  }

  codeWritten(page: number, offset: number, length: number): void {
    this.tier.codeWritten(page, offset, length);
  }

  flush(): void {
    this.tier.flush();
  }

  /** The machine is about to take an event (or changed outside a run): the reference follows. */
  beforeEvent(apply: (machine: Machine) => void): void {
    if (this.reference === undefined) return;
    apply(this.catchUp());
  }

  /** The machine's state was replaced (load, boot, restore): the reference is made again from it. */
  forget(): void {
    this.reference = undefined;
    this.recording.reads.length = 0;
  }

  /** After `Machine.run`: the reference catches up, and the whole machines must be equal. */
  verify(): void {
    if (this.reference === undefined) return;
    const reference = this.catchUp();
    compareHarts(this.machine.hart, reference.hart, 'at the end of a run');
    const ours = this.machine.stateParts();
    const theirs = reference.stateParts();
    for (let i = 0; i < ours.length; i++) {
      const part = ours[i]!;
      if (part.name === 'board') continue; // holds outputs not yet taken, which the reference drops
      if (Buffer.compare(part.bytes, theirs[i]!.bytes) !== 0) throw new LockstepDivergence(`at instruction ${this.machine.retiredInstructions}: the ${part.name} differs`);
    }
    if (JSON.stringify(this.machine.power) !== JSON.stringify(reference.power)) throw new LockstepDivergence('the power state differs');
    // RAM, the largest part, every so many instructions (and whenever the caller compares digests).
    if (this.machine.retiredInstructions - this.ramComparedAt < ramComparisonInstructions) return;
    this.ramComparedAt = this.machine.retiredInstructions;
    if (Buffer.compare(this.machine.ram.u8, reference.ram.u8) !== 0) {
      throw new LockstepDivergence(`at instruction ${this.machine.retiredInstructions}: RAM differs (page ${firstDifferentPage(this.machine.ram.u8, reference.ram.u8)})`);
    }
  }

  /**
   * Before `Machine.run`: makes the reference, a copy of the machine, if there is none (the
   * machine is between instructions, so its snapshot is exact).
   */
  prepare(): void {
    if (this.reference !== undefined) return;
    const reference = this.createReference(new ReplayEnvironment(this.recording));
    reference.restore(this.machine.save());
    this.recording.reads.length = 0;
    this.reference = reference;
  }

  /** The reference, run up to the machine's current instruction count. */
  private catchUp(): Machine {
    const reference = this.reference;
    if (reference === undefined) throw new LockstepDivergence('no reference machine: Machine.run makes it');
    const behind = this.machine.hart.currentRetired - reference.hart.retired;
    if (behind < 0) throw new LockstepDivergence(`the reference is ${-behind} instructions ahead`);
    if (behind > 0) this.runReference(reference, behind);
    return reference;
  }

  private runReference(reference: Machine, count: number): void {
    const goal = reference.hart.retired + count;
    // The interpreter stops early only in WFI or at a halt; then the machine must be there too.
    while (reference.hart.retired < goal) {
      const result = reference.run(goal - reference.hart.retired);
      if (result.reason !== 'budget') break;
    }
    reference.takeOutputs();
  }
}

function firstDifferentPage(a: Uint8Array, b: Uint8Array): number {
  for (let page = 0; page * 4096 < a.length; page++) {
    if (Buffer.compare(a.subarray(page * 4096, (page + 1) * 4096), b.subarray(page * 4096, (page + 1) * 4096)) !== 0) return page;
  }
  return -1;
}
