/**
 * Where a faster execution tier plugs in: the translation tier (translation-cache.ts, hot
 * guest code compiled to JavaScript functions by translator.ts). This file names the seam and
 * states the contract; lockstep.ts checks a tier against the interpreter.
 *
 * The interpreter (cpu.ts) stays the reference. A tier is an optimization that neither the
 * guest nor replication may notice: a machine that runs some of its code through a tier must
 * end every `Hart.run` call in exactly the state the interpreter alone would have reached
 * (registers, CSRs, RAM, devices, `retired`), so that snapshots and digests cannot tell them
 * apart and a primary with a tier stays identical to a backup without one. Tests run the same
 * programs both ways and compare digests (the ISA fuzzer, the guest programs).
 *
 * Where the run loop consults it: at an instruction whose decoded slot has bit 31 set (a
 * block head the tier marked, see {@link ExecutionTier.decoded}). The loop's test for an empty
 * slot (`w <= 0`) catches it, so the interpreter pays nothing else for the tier (a check at
 * every taken branch had cost 4%, docs/BENCHMARKS.md). There the loop publishes `pc` and its
 * count (`Hart.pc`, `Hart.runRetired`) and calls {@link ExecutionTier.run} with what is left
 * of the budget; if that ran nothing, the loop executes the instruction itself; else it goes
 * on from `Hart.pc`, through its between-instructions checks if `Hart.attention` is set. A
 * marked slot may also carry a skip count (bits 27-30, code-cache.ts `headSkipShift`), which a
 * tier sets where it has nothing to run yet: the loop then counts it down and executes the
 * instruction without calling.
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
 * - Translations depend on the address mapping: a translation is entered only through the
 *   fetch TLB, under its context (privilege), for the RAM page the TLB maps the virtual page
 *   to, and only for the virtual page it was translated for. So satp writes, SFENCE.VMA and
 *   PMP changes, which flush the fetch TLB, need not drop translations: a page is entered
 *   again only after a new walk and permission check. They are dropped with the code cache.
 * - A trap in translated code: if it is at the first instruction the call would execute, the
 *   TrapSignal goes on to the run loop, which takes it as if the tier had not been called;
 *   later ones the tier takes itself (traps.ts, `takeException`, with pc and count published),
 *   and it returns with `attention` set.
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
   * bit 31 of a slot's word 0, which makes the interpreter call {@link run} there (bits 27-30,
   * a skip count, only ever together with bit 31).
   */
  decoded(page: number, code: Int32Array, slot: number, pc: number): void;

  /** Whether RAM page `page` has translations: then it must stay out of the store TLB. */
  translates(page: number): boolean;

  /** RAM bytes [offset, offset + length) of RAM page `page` were written: drop what read them. */
  codeWritten(page: number, offset: number, length: number): void;

  /** The fetch TLB was flushed or the code cache dropped: drop every translation. */
  flush(): void;
}
