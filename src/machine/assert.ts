/**
 * Invariants of our own, checked in production as in tests (a broken one is a bug of ours,
 * never a guest's or a peer's doing: those are answered as data). Any layer may use this.
 */

/** A broken invariant: understudy has a bug. */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

/** Throws an AssertionError saying `what` unless `condition` holds. */
export function assert(condition: boolean, what: string | (() => string)): asserts condition {
  if (!condition) throw new AssertionError(typeof what === 'string' ? what : what());
}
