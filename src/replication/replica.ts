/**
 * What the primary and the backup share: options, limits, and the small interface through
 * which the protocol acts on the world. The protocol classes do no I/O and read no clock of
 * their own; production (TCP, files, the terminal) and the simulator (virtual time, a seeded
 * link) implement {@link ReplicaIo}.
 */
import type { DiskRequest } from '../machine/environment.js';
import type { Machine } from '../machine/board.js';
import type { PowerRequest } from '../machine/devices/test-device.js';
import type { Message } from './messages.js';

export type ProtocolVariant = 'relaxed' | 'original';
export type PendingIoPolicy = 'reissue' | 'uncertain';

export interface ReplicationOptions {
  /** Instructions per epoch (the paper's recovery register). */
  readonly epochInstructions: number;
  readonly protocol: ProtocolVariant;
  readonly pendingIo: PendingIoPolicy;
  /** Send a heartbeat when nothing else has been sent for this long. */
  readonly heartbeatIntervalMs: number;
  /** Declare the peer failed when nothing has come from it for this long. */
  readonly failureTimeoutMs: number;
  /** The primary's output lease, counted from the send of what the backup acknowledged. */
  readonly leaseMs: number;
}

export const epochInstructionsMin = 1_000;
export const epochInstructionsMax = 100_000_000;
/** Safety margin a backup adds to the lease before going live (clock rate differences). */
export const leaseMarginMs = 20;
/** Most epochs whose outputs may wait for acknowledgement before the primary pauses. */
export const pendingEpochsMax = 4096;

export const defaultReplicationOptions: ReplicationOptions = {
  epochInstructions: 100_000,
  protocol: 'relaxed',
  pendingIo: 'reissue',
  heartbeatIntervalMs: 50,
  failureTimeoutMs: 500,
  leaseMs: 200,
};

export function validateOptions(options: ReplicationOptions): void {
  const { epochInstructions, heartbeatIntervalMs, failureTimeoutMs, leaseMs } = options;
  if (!Number.isSafeInteger(epochInstructions) || epochInstructions < epochInstructionsMin || epochInstructions > epochInstructionsMax) {
    throw new RangeError(`epoch length ${epochInstructions} is out of range (${epochInstructionsMin} to ${epochInstructionsMax} instructions)`);
  }
  if (!(heartbeatIntervalMs > 0)) throw new RangeError('the heartbeat interval must be positive');
  // The lease must outlive a heartbeat round trip, and end well before the peer gives up.
  if (!(leaseMs >= 2 * heartbeatIntervalMs)) throw new RangeError(`the lease (${leaseMs} ms) must be at least two heartbeat intervals (${2 * heartbeatIntervalMs} ms)`);
  if (!(failureTimeoutMs > leaseMs)) throw new RangeError(`the failure timeout (${failureTimeoutMs} ms) must exceed the lease (${leaseMs} ms)`);
}

/** The options a backup must share with its primary, as one comparable string. */
export function optionsKey(options: ReplicationOptions): string {
  return `epoch=${options.epochInstructions}`;
}

export interface ReplicaIo {
  /** Milliseconds on a monotonic clock (virtual in the simulator). */
  nowMs(): number;
  /** Queues a message for the peer (dropped if there is no connection); returns its size on the wire. */
  send(message: Message): number;
  /** Console bytes for the world. `epoch` is the epoch that produced them (for checkers). */
  consoleWrite(bytes: Uint8Array, epoch: number): void;
  /** Performs a disk request; its completion comes back through `onDiskCompletion`. */
  diskSubmit(request: DiskRequest, epoch: number): void;
  /** Up to `max` bytes of console input waiting for the machine. */
  takeConsoleInput(max: number): Uint8Array;
  /** Whether console input is waiting. */
  readonly consoleInputWaiting: boolean;
  /**
   * The console's reader lags far behind: the live replica pauses its guest (not the
   * protocol) until it catches up, so that a guest printing without end cannot fill memory.
   */
  readonly consoleBacklogged: boolean;
  /** Atomic test-and-set on shared storage: may this replica be the live one for `generation`? */
  tryGoLive(generation: number): boolean;
  /** A point where the simulator may crash this replica; nothing in production. */
  crashPoint(name: string): void;
  /** Epoch `epoch` is complete on this replica (boundary events applied): for invariant checks. */
  epochDone(epoch: number, machine: Machine): void;
  /** A line for the operator's log. */
  log(line: string): void;
}

/** What a step of a replica achieved, so its driver knows when to call it again. */
export type StepResult =
  | { readonly kind: 'progress' }
  /** Nothing to do until a message, a completion, input, or `untilMs` (if set). */
  | { readonly kind: 'blocked'; readonly untilMs?: number }
  | { readonly kind: 'finished'; readonly status: number; readonly reason: string };

/** The status view's data. */
export interface ReplicaStatus {
  readonly role: 'primary' | 'backup' | 'solo' | 'halted' | 'joining';
  readonly epoch: number;
  readonly lagEpochs: number;
  readonly logBytesSent: number;
  readonly logBytesReceived: number;
  readonly outputsWaiting: number;
  readonly generation: number;
  readonly lastFailover: { readonly atMs: number; readonly tookMs: number; readonly detectionMs: number } | undefined;
}

/** Exit status and reason for a guest that stopped (powered off, panicked, or stuck). */
export function guestOutcome(power: PowerRequest): { status: number; reason: string } {
  switch (power.kind) {
    case 'poweroff': return { status: power.status, reason: 'the guest powered off' };
    case 'panic': return { status: 4, reason: 'the guest kernel panicked' };
    case 'stuck': return { status: 3, reason: `the guest is stuck: ${power.reason}` };
    case 'reset': return { status: 0, reason: 'the guest asked for a reset' };
  }
}

