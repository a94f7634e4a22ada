/**
 * How an exception found in the middle of an instruction reaches the run loop: thrown as the
 * one {@link TrapSignal}, which the loop (cpu.ts) catches and turns into a trap at the
 * instruction's pc (traps.ts). Nothing of the instruction has taken effect by then, so traps
 * are precise.
 */

/** A synchronous exception on its way to the trap handler. One instance, reused. */
export class TrapSignal {
  cause = 0;
  tval = 0;
}

/** The one TrapSignal: the run loop catches exactly this object. */
export const trapSignal = new TrapSignal();

/** Throws the exception `cause` with `tval` (mtval or stval). */
export function raise(cause: number, tval: number): never {
  trapSignal.cause = cause;
  trapSignal.tval = tval | 0;
  throw trapSignal;
}
