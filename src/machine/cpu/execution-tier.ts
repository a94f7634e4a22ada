/**
 * Where a faster execution tier plugs in: the translation tier that is still to come (hot guest
 * code compiled to JavaScript functions). Nothing implements this interface yet and the run
 * loop does not call it: a check at every taken branch for a tier that is not there cost 4%
 * of the interpreter's steady-state speed (docs/BENCHMARKS.md). This file names the seam and
 * states the contract.
 *
 * The interpreter (cpu.ts) stays the reference. A tier is an optimization that neither the
 * guest nor replication may notice: a machine that runs some of its code through a tier must
 * end every `Hart.run` call in exactly the state the interpreter alone would have reached
 * (registers, CSRs, RAM, devices, `retired`), so that snapshots and digests cannot tell them
 * apart and a primary with a tier stays identical to a backup without one. Tests run the same
 * programs both ways and compare digests (the ISA fuzzer, the guest programs).
 *
 * Where the run loop would consult it: at a taken branch or jump, when the target's decoded
 * page (code-cache.ts) has a translation for the target's slot, the loop publishes `pc` and
 * its count (`Hart.pc`, the count behind `Hart.currentRetired`) and calls {@link
 * ExecutionTier.run} with what is left of the budget; then it goes on from `Hart.pc`, through
 * its between-instructions checks if `Hart.attention` is set.
 */
import type { Hart } from './cpu.js';

/**
 * A tier must guarantee:
 * - Exact retired counts: it counts instructions exactly as the interpreter does (including
 *   ECALL, EBREAK and decode-time illegal instructions, see docs/ARCHITECTURE.md, "Counting
 *   instructions"), and publishes the count before anything can observe it: CSR reads of the
 *   counters, MMIO (device reads and writes, environment reads), the SBI firmware.
 * - The budget is never overrun: it retires at most `budget` instructions, so epochs end at
 *   exactly the instruction the replication protocol asked for. A block longer than what is
 *   left is not entered, or leaves early.
 * - Precise traps: an exception leaves `Hart.pc` at the faulting instruction, with every
 *   earlier instruction complete and nothing of the faulting one done. It throws the
 *   TrapSignal (trap-signal.ts) after publishing pc and count, and the run loop takes the trap.
 *   Interrupts are taken only between instructions where the interpreter would take them: the
 *   tier returns as soon as `Hart.attention` is set (MMIO, CSR writes, xRET, TLB flushes).
 * - Code writes invalidate translations through the same paths that empty decoded slots
 *   (code-cache.ts): RAM's watcher, which reports slow-path stores, DMA, loaders, page-table
 *   A/D updates and restored snapshots, and the run loop's fast-path stores, which empty the
 *   slot themselves. A translation is valid only while every slot it was built from is
 *   unchanged; self-modifying code and code loaded by DMA must run as written.
 * - Translations depend on the address mapping: a translation is looked up by decoded page,
 *   under the fetch TLB's context, and dropped when the fetch TLB is flushed (satp,
 *   SFENCE.VMA, PMP changes) or the code cache is dropped.
 * - Nothing of it is machine state: never in snapshots or digests, no host time or randomness
 *   (a tier may decide what is hot only from guest execution); a restored machine starts with
 *   no translations.
 */
export interface ExecutionTier {
  /**
   * Runs translated code from `hart.pc` at `hart.priv`, retiring at most `budget` (> 0)
   * instructions, and leaves `hart.pc` at the next instruction to execute. Returns how many
   * instructions retired; 0 when nothing is translated there (the interpreter executes it).
   */
  run(hart: Hart, budget: number): number;

  /**
   * The interpreter has just decoded the instruction at virtual `pc` into `slot` of `code`, the
   * decoded page of RAM page `page`: the tier may mark it, or the heads it leads to, by setting
   * bit 31 of a slot's word 0, which makes the interpreter call {@link run} there.
   */
  decoded(page: number, code: Int32Array, slot: number, pc: number): void;

  /** Whether RAM page `page` has translations: then it must stay out of the store TLB. */
  translates(page: number): boolean;

  /** RAM bytes [offset, offset + length) of RAM page `page` were written: drop what read them. */
  codeWritten(page: number, offset: number, length: number): void;

  /** The fetch TLB was flushed or the code cache dropped: drop every translation. */
  flush(): void;
}
