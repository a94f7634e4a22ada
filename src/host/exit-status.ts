/**
 * Exit statuses of understudy's processes: one table, and how each way a run can end maps to
 * it. A script can tell a guest that powered off with a failure from understudy giving up.
 */
import type { GuestEnd, ReplicaEnd } from '../replication/replica.js';

export const ExitStatus = {
  ok: 0,
  /** A failure of ours that has no status of its own (the pair stopped without the guest finishing). */
  failure: 1,
  /** Bad input: options, files, a peer that refused this backup. */
  usage: 2,
  refused: 2,
  /** The guest is stuck (every trap faults), or this replica lost the arbiter to the other. */
  stuck: 3,
  notLive: 3,
  /** The guest kernel panicked (pvpanic). */
  panic: 4,
  /** The backup's execution left the primary's. */
  divergence: 5,
  /** The backup could not get the primary's state. */
  noState: 6,
  /** `run --timeout` expired, as timeout(1) reports. */
  timeout: 124,
  /** `run --max-instructions` reached. */
  instructionLimit: 125,
  /** The console's reader went away, as a process killed by SIGPIPE reports. */
  outputClosed: 141,
} as const;

/** The status for a guest's end: its own power-off status, made safe for a shell. */
export function guestExitStatus(guest: GuestEnd): number {
  switch (guest.kind) {
    // A failure status that is a multiple of 256 must not look like success to the shell.
    case 'poweroff': return guest.status === 0 ? ExitStatus.ok : guest.status % 256 === 0 ? ExitStatus.failure : guest.status % 256;
    case 'panic': return ExitStatus.panic;
    case 'stuck': return ExitStatus.stuck;
  }
}

export function replicaExitStatus(end: ReplicaEnd): number {
  switch (end.kind) {
    case 'guest': return guestExitStatus(end.guest);
    case 'refused': return ExitStatus.refused;
    case 'not-live': return ExitStatus.notLive;
    case 'divergence': return ExitStatus.divergence;
    case 'no-state': return ExitStatus.noState;
  }
}
