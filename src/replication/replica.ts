/**
 * What the primary and the backup share: options, limits, and the small interface through
 * which the protocol acts on the world. The protocol classes do no I/O and read no clock of
 * their own; production (TCP, files, the terminal) and the simulator (virtual time, a seeded
 * link) implement {@link ReplicaIo}.
 */
import type { RejectCode } from './messages.js';
import type { DiskReadRequest, DiskRequest, MachineEvent } from '../machine/environment.js';
import type { Machine } from '../machine/board.js';
import type { PowerRequest } from '../machine/devices/test-device.js';
import { epochEntryBytesMax, frameHeaderBytes, framePayloadBytesMax, type Message } from './messages.js';
import { epochEntryBytesMin } from './entry-budget.js';

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
  /**
   * A join (the hello, the state transfer, the backup loading it) is judged by this longer
   * silence: a large state takes the primary a while to save and send and the backup a while
   * to load, all the more on a busy host; a peer that dies meanwhile closes the connection
   * and is noticed at once anyway.
   */
  readonly joinTimeoutMs: number;
  /**
   * Every this many epochs' instructions (`digestDue`) the primary sends a digest of its
   * machine's state and the backup compares its own (src/machine/state-digest.ts); 0 turns
   * digests off. Both sides must agree.
   */
  readonly digestEveryEpochs: number;
  /**
   * Every epoch ends after exactly `epochInstructions` (or early), as in the paper. Off (the
   * default), a boundary with nothing to deliver is skipped: the epoch goes on, to at most
   * {@link epochMergeMax} epochs' instructions and about {@link epochMergeHostMs} of host time
   * ({@link epochMergeQuietHostMs} once the guest has computed undisturbed for a while),
   * and ends at the first boundary where something waits (a completion, input, a frame, the
   * clock past a timer's deadline) or the guest has produced output. Interrupts are still
   * delivered only on the epoch grid (multiples of `epochInstructions` from where the epoch
   * began); the boundaries skipped are ones where the primary had nothing to deliver.
   */
  readonly fixedEpochs?: boolean;
  /**
   * Every read's data travels in the log, as in the paper, instead of each backup reading it
   * from the shared disk (messages.ts, `SharedRead`): for shared storage whose hosts may read
   * stale data for a moment (NFS without close-to-open consistency across them).
   */
  readonly readsInLog?: boolean;
  /**
   * The largest log entry the primary builds (payload bytes; default `epochEntryBytesDefault`,
   * at most `epochEntryBytesMax`, the frame's limit). Smaller in tests and the simulator, so
   * that guests with few environment reads still end epochs early.
   */
  readonly epochEntryBytesMax?: number;
  /**
   * A backup joining a running primary gets the RAM by a live copy while the guest runs, the
   * guest pausing only for the rest (default); false: the guest pauses for the whole state.
   */
  readonly liveCopy?: boolean;
  /**
   * A live copy's bytes per step at most (default 1 MiB), and the pages left at which the
   * guest pauses for the rest (default 256): smaller in the simulator, so that its copies take
   * many steps and several rounds.
   */
  readonly liveCopyStepBytes?: number;
  readonly liveCopyFinalPages?: number;
  /**
   * Lag control: when the backup reports it would take longer than this to replay what it
   * holds, the primary slows the guest until it has caught up (default: the failure timeout,
   * so that a failover never waits longer for the backup than for the failure's detection).
   */
  readonly catchUpBoundMs?: number;
  /**
   * t: the backups a primary keeps at most (default 1, at most `backupsMax`). Outputs wait
   * for every one that follows; another that says hello is refused as busy.
   */
  readonly backups?: number;
}

/** The most backups one primary keeps (each costs a copy of the log on the wire). */
export const backupsMax = 8;
/**
 * A backup failing over skips at most this many generations its primary took while keeping it
 * (membership changes it may not have heard of); more is an arbiter it cannot make sense of.
 */
export const generationsSkippedMax = 1024;

/**
 * Digests come every this many instructions unless told otherwise: one costs 0.2 to a few
 * milliseconds (the pages written since the last, hashed; docs/BENCHMARKS.md), about 1% of the
 * time eighty million instructions take on the WebAssembly tier (some 0.2% on the
 * interpreter), and finds a divergence within a tenth of a second of guest time on the tier,
 * half a second on the interpreter. (Ten million, sized for the interpreter, cost cpubench
 * some 15% of its time on the tier; forty million still 2-3%.)
 */
export const digestIntervalInstructionsDefault = 80_000_000;

/**
 * Whether an epoch from instruction `startRetired` to `endRetired` takes a state digest: the
 * first epoch to cross each multiple of `digestEveryEpochs` epochs' instructions. Counted in
 * instructions, not epochs, so that a guest whose epochs end early (at every I/O request, in a
 * sleep) is not digested more often for it. Both replicas decide from the logged end counts
 * (`nextEpochStart`). Returns the digest's sequence number (its scrub window), or undefined.
 */
export function digestDue(options: ReplicationOptions, startRetired: number, endRetired: number): number | undefined {
  if (options.digestEveryEpochs === 0) return undefined;
  const interval = options.digestEveryEpochs * options.epochInstructions;
  const sequence = Math.floor(endRetired / interval);
  return sequence !== Math.floor(startRetired / interval) ? sequence : undefined;
}

/**
 * Where the epoch after one that ended at `endRetired` starts counting: after a halt (an entry
 * that stopped for 'halt', a machine with a power request), on a fresh machine (a reset; after
 * any other halt no epoch follows).
 */
export function nextEpochStart(halted: boolean, endRetired: number): number {
  return halted ? 0 : endRetired;
}

/** The default `digestEveryEpochs` for an epoch length: a digest about every `digestIntervalInstructionsDefault`. */
export function defaultDigestEveryEpochs(epochInstructions: number): number {
  return Math.max(1, Math.round(digestIntervalInstructionsDefault / epochInstructions));
}

export const epochInstructionsMin = 1_000;
export const epochInstructionsMax = 100_000_000;
/** Safety margin a backup adds to the lease before going live (clock rate differences). */
export const leaseMarginMs = 20;
/**
 * An epoch whose boundaries had nothing to deliver (see `fixedEpochs`) spans at most this many
 * epochs' instructions: what a backup accepts in one entry.
 */
export const epochMergeMax = 1024;
/**
 * ... and goes on past a boundary only while the primary's step has lasted less than this.
 * What arrives meanwhile (input, a frame, a completion) waits for the step's end: for a guest
 * that computes, up to this much longer than with fixed epochs (an idle guest's epochs end at
 * once, and an output ends one anyway). Each step costs the primary some 100-200 µs of cold
 * caches in the protocol's code, its sockets and the event loop (docs/BENCHMARKS.md): 0.25 ms
 * steps cost the translation tier's cpubench 8% more than 1 ms steps, and 1 ms steps left
 * the guest 78-85% of the primary's time against 83-88% with 2 ms.
 */
export const epochMergeHostMs = 2;
/**
 * ... or this long, once the guest has computed undisturbed for {@link quietAfterMs}: no
 * boundary delivered anything but the clock, and the guest produced no output (reads answered
 * at once are neither). Such a guest is expected to go on computing, and a longer step costs
 * it fewer turns of the loop (each some 150-250 µs of cold caches, acknowledgements and entries:
 * with 2 ms steps, a tenth of a computing guest's time on the translation tier; with 8 ms,
 * still some 3% of it). The first input after a quiet spell waits up to this long for the
 * step's end, not 2 ms: a keystroke's echo or a request to a guest that has computed alone
 * for 20 ms comes up to 16 ms later, once.
 */
export const epochMergeQuietHostMs = 16;
/**
 * A step goes on from entry to entry (`PrimaryReplica.runsOn`) until it has run this many
 * instructions or {@link epochMergeMax} epochs' worth, whichever is more, besides its host
 * time: 16 ms of the translation tier. (At 1K-instruction epochs an entry holds 1 M.)
 */
export const stepInstructionsMin = 16 * 1024 * 1024;
/** How long a guest must have gone without input or output for {@link epochMergeQuietHostMs} steps. */
export const quietAfterMs = 20;
/**
 * Epochs shorter than this go on past skipped boundaries several at a time, up to this many
 * instructions (whole epochs), between looks at what waits: a timer's deadline passed is
 * delivered at most this much later than at the first boundary after it (`run` looks every
 * million instructions).
 */
export const epochMergeChunkInstructions = 65_536;
/**
 * ... and up to this many once the guest has computed undisturbed for {@link quietAfterMs}:
 * as often as `run` looks (src/host/runner.ts), a timer's deadline delivered up to a
 * millisecond of the translation tier late. Every return from the tier costs: it ends its
 * chain of blocks, the interpreter runs the rest of the block, and the next call starts in
 * the middle of one. Linux's cpubench under `run` in 50K-instruction slices instead of 1M took
 * 6% longer, and a primary returned every 50K instructions (100K epochs in two chunks each)
 * until this.
 */
export const epochMergeQuietChunkInstructions = 1_048_576;
/**
 * A chunk is at most as many instructions as the last one ran in this long (it is the quiet
 * steps' chunks it bounds): a million instructions of the translation tier, two hundred
 * thousand of the interpreter. A million on the interpreter (Linux's kernel, some 100 MIPS)
 * took ten milliseconds, and the timers it held back slowed Linux's writes to disk by some 5%.
 */
export const epochMergeLookMs = 2;
/** Most epochs whose outputs may wait for acknowledgement before the primary pauses. */
export const pendingEpochsMax = 4096;
/**
 * Most bytes of log entries the primary has sent and the backup not yet acknowledged; beyond
 * it the primary pauses (as at `pendingEpochsMax`), so that neither the link nor the backup
 * holds an unbounded log.
 */
export const unacknowledgedLogBytesMax = 64 * 1024 * 1024;
/**
 * Most bytes of disk writes the primary holds for acknowledgements (each backup holds about
 * as much until it learns of their release); beyond it the primary pauses too. A write-back
 * disk answers writes at once, so without it a guest that writes without end would fill the
 * host's memory while the backup falls behind.
 */
export const heldWriteBytesMax = 64 * 1024 * 1024;
/**
 * Most bytes of disk reads a primary answers at once in one epoch (messages.ts, 'disk-read');
 * beyond, reads go out as requests. Their data does not travel, but each backup holds it with
 * the entry until it has replayed it.
 */
export const diskReadBytesPerEpochMax = 1024 * 1024;
/**
 * The backup acknowledges entries on receipt (P4) only while fewer than these wait to be
 * executed; beyond, it defers its acknowledgements (it still answers heartbeats, so the lease
 * and failure detection go on), and the primary soon pauses at its limits above.
 */
export const backupQueueEpochsMax = 1024;
export const backupQueueBytesMax = 64 * 1024 * 1024;
/**
 * What the backup's queue can hold at most when the primary keeps its limits: its own
 * thresholds plus everything the primary may send unacknowledged (plus the one entry that
 * crosses the byte limit). More is a primary breaking the protocol.
 */
export const backupQueueEpochsLimit = backupQueueEpochsMax + pendingEpochsMax;
export const backupQueueBytesLimit = backupQueueBytesMax + unacknowledgedLogBytesMax + frameHeaderBytes + framePayloadBytesMax + diskReadBytesPerEpochMax;

export const defaultReplicationOptions: ReplicationOptions = {
  epochInstructions: 100_000,
  protocol: 'relaxed',
  pendingIo: 'reissue',
  heartbeatIntervalMs: 50,
  // Seconds, as VMware FT: a crashed peer closes its connection and is noticed at once; the
  // timeout only decides how long a silent (hung, cut off, or starved) peer is waited for, and
  // a busy host must not fail a healthy pair over.
  failureTimeoutMs: 2000,
  leaseMs: 200,
  joinTimeoutMs: 10_000,
  digestEveryEpochs: defaultDigestEveryEpochs(100_000),
};
/** The most epochs between two digests (the option's range). */
export const digestEveryEpochsMax = 1_000_000;

export function validateOptions(options: ReplicationOptions): void {
  const { epochInstructions, heartbeatIntervalMs, failureTimeoutMs, leaseMs } = options;
  if (!Number.isSafeInteger(epochInstructions) || epochInstructions < epochInstructionsMin || epochInstructions > epochInstructionsMax) {
    throw new RangeError(`epoch length ${epochInstructions} is out of range (${epochInstructionsMin} to ${epochInstructionsMax} instructions)`);
  }
  if (!(heartbeatIntervalMs > 0)) throw new RangeError('the heartbeat interval must be positive');
  // The lease must outlive a heartbeat round trip, and end well before the peer gives up.
  if (!(leaseMs >= 2 * heartbeatIntervalMs)) throw new RangeError(`the lease (${leaseMs} ms) must be at least two heartbeat intervals (${2 * heartbeatIntervalMs} ms)`);
  if (!(failureTimeoutMs > leaseMs)) throw new RangeError(`the failure timeout (${failureTimeoutMs} ms) must exceed the lease (${leaseMs} ms)`);
  if (!(options.joinTimeoutMs >= failureTimeoutMs)) throw new RangeError(`the join timeout (${options.joinTimeoutMs} ms) must be at least the failure timeout (${failureTimeoutMs} ms)`);
  if (!Number.isSafeInteger(options.digestEveryEpochs) || options.digestEveryEpochs < 0 || options.digestEveryEpochs > digestEveryEpochsMax) {
    throw new RangeError(`the digest interval ${options.digestEveryEpochs} is out of range (0, off, to ${digestEveryEpochsMax} epochs)`);
  }
  const backups = options.backups ?? 1;
  if (!Number.isSafeInteger(backups) || backups < 1 || backups > backupsMax) throw new RangeError(`${backups} backups is out of range (1 to ${backupsMax})`);
  const entryBytes = options.epochEntryBytesMax;
  if (entryBytes !== undefined && !(Number.isSafeInteger(entryBytes) && entryBytes >= epochEntryBytesMin && entryBytes <= epochEntryBytesMax)) {
    throw new RangeError(`the log entry budget ${entryBytes} is out of range (${epochEntryBytesMin} to ${epochEntryBytesMax} bytes)`);
  }
}

/** The options a backup must share with its primary, as one comparable string. */
export function optionsKey(options: ReplicationOptions): string {
  return `epoch=${options.epochInstructions};digest-every=${options.digestEveryEpochs}`;
}

/**
 * The named points of the protocol where the simulator may crash a replica (production does
 * nothing there). Each is a step whose interruption the protocol must survive.
 */
export const primaryCrashPoints = [
  'primary:before-send-epoch', 'primary:after-send-epoch', 'primary:before-release', 'primary:after-release',
  'primary:before-early-read', 'primary:before-goodbye', 'primary:before-go-solo', 'primary:before-fence',
] as const;
export const backupCrashPoints = ['backup:before-ack', 'backup:after-ack', 'backup:before-go-live', 'backup:failover-epoch'] as const;
export type CrashPoint = (typeof primaryCrashPoints)[number] | (typeof backupCrashPoints)[number];

/**
 * A primary's handle on one of its backups' connections (the driver's numbering). A backup
 * has one connection, to its primary, and sends without one.
 */
export type PeerId = number;

/** What the arbiter holds for a generation: who won it, and the backups it kept following. */
export interface ArbiterRecord {
  readonly replica: string;
  readonly members: readonly string[];
}

/** The arbiter's answer: this replica won the generation, or who holds it (if it can tell). */
export type ArbiterAnswer = { readonly won: true } | { readonly won: false; readonly holder: ArbiterRecord | undefined };

export interface ReplicaIo {
  /** Milliseconds on a monotonic clock (virtual in the simulator). */
  nowMs(): number;
  /**
   * Queues a message for a peer (a primary names the backup's connection; dropped if it has
   * closed); returns its size on the wire.
   */
  send(message: Message, to?: PeerId): number;
  /** A primary drops a backup (silent, diverged, fenced out): its connection is closed. */
  disconnect(peer: PeerId): void;
  /** Console bytes for the world. `epoch` is the epoch that produced them (for checkers). */
  consoleWrite(bytes: Uint8Array, epoch: number): void;
  /** Performs a disk request; its completion comes back through `onDiskCompletion`. */
  diskSubmit(request: DiskRequest, epoch: number): void;
  /**
   * The completions of requests submitted during this step that the host has performed
   * already (a disk image on a local file performs them at once), which the caller takes to
   * deliver itself instead of through `onDiskCompletion` after the step; none from a disk with
   * latency.
   */
  takeDiskCompletions(): MachineEvent[];
  /**
   * A backup reads `lengthBytes` at `offsetBytes` of the shared disk on virtio slot `slot` at
   * once (a shared read, messages.ts): the bytes, or why they could not be read.
   */
  readSharedDisk(slot: number, offsetBytes: number, lengthBytes: number): Uint8Array | { readonly error: string };
  /**
   * A live replica reads the disk at once, for a read its machine answers inside the guest's
   * instruction (messages.ts, 'disk-read'): the bytes, with every write submitted so far on
   * them, or undefined if it cannot (an error: the read then goes out as a request, which
   * reports it). Without it, every read goes out as a request.
   */
  readDiskNow?(request: DiskReadRequest): Uint8Array | undefined;
  /** A frame for the network from the NIC on virtio slot `slot`; `epoch` produced it. */
  networkSend(slot: number, frame: Uint8Array, epoch: number): void;
  /**
   * Frames received for the NIC on `slot`, oldest first: at most `maxFrames`, and at most
   * `maxBytes` bytes in all. Frames not taken wait for a later boundary.
   */
  takeNetworkFrames(slot: number, maxFrames: number, maxBytes: number): Uint8Array[];
  /** Whether frames wait for the NIC on `slot`. */
  networkInputWaiting(slot: number): boolean;
  /** Whether the back-end of the NIC on `slot` is there: the guest's link status follows it. */
  networkLinkUp(slot: number): boolean;
  /**
   * The network back-end takes frames slower than the guest sends them: the live replica pauses
   * its guest (not the protocol) until it catches up, as for the console.
   */
  readonly networkBacklogged: boolean;
  /** Up to `max` bytes of console input waiting for the machine. */
  takeConsoleInput(max: number): Uint8Array;
  /** Whether console input is waiting. */
  readonly consoleInputWaiting: boolean;
  /**
   * The console's reader lags far behind: the live replica pauses its guest (not the
   * protocol) until it catches up, so that a guest printing without end cannot fill memory.
   */
  readonly consoleBacklogged: boolean;
  /**
   * Atomic test-and-set on shared storage: may this replica be the live one for `generation`,
   * with `members` (replica ids) as the backups it keeps? If not, who holds it.
   */
  tryGoLive(generation: number, members: readonly string[]): ArbiterAnswer;
  /**
   * Who holds `generation` at the arbiter, read only: the record, or undefined if no one holds
   * it (or the arbiter cannot tell). A backup asks before it reports a divergence: one its
   * primary has dropped may diverge harmlessly (Backup.diverge). Without it, it cannot tell.
   */
  arbiterHolder?(generation: number): ArbiterRecord | undefined;
  /** A point where the simulator may crash this replica; nothing in production. */
  crashPoint(point: CrashPoint): void;
  /** Epoch `epoch` is complete on this replica (boundary events applied): for invariant checks. */
  epochDone(epoch: number, machine: Machine): void;
  /** A line for the operator's log. */
  log(line: string): void;
}

/** How the guest ended a run: it powered off (with a status), its kernel panicked, or it is stuck. */
export type GuestEnd = Exclude<PowerRequest, { kind: 'reset' }>;

/**
 * Why a replica stopped, as data (the driver chooses an exit status from it; a person reads
 * `reason`): the guest finished, so the whole VM is done; or this replica cannot go on.
 */
export type ReplicaEnd =
  | { readonly kind: 'guest'; readonly guest: GuestEnd }
  /** The primary refused this backup (another image, configuration or options; it is busy). */
  | { readonly kind: 'refused'; readonly code: RejectCode }
  /** The other replica is live (it won the arbiter): this one must stop. */
  | { readonly kind: 'not-live' }
  /** The backup's execution left the primary's. */
  | { readonly kind: 'divergence' }
  /** The backup could not get the primary's state (no answer, a state that does not load). */
  | { readonly kind: 'no-state' };

/** What a step of a replica achieved, so its driver knows when to call it again. */
export type StepResult =
  | { readonly kind: 'progress' }
  /** Nothing to do until a message, a completion, input, or `untilMs` (if set). */
  | { readonly kind: 'blocked'; readonly untilMs?: number }
  | { readonly kind: 'finished'; readonly end: ReplicaEnd; readonly reason: string };

/** The status view's data. */
export interface ReplicaStatus {
  /** primary: protected by a backup; waiting: for its first backup; solo: live, not protected. */
  readonly role: 'primary' | 'waiting' | 'backup' | 'solo' | 'halted' | 'joining';
  readonly epoch: number;
  readonly lagEpochs: number;
  /**
   * The lag in time: a primary's oldest epoch not yet acknowledged, a backup's oldest epoch
   * received and not yet replayed: how long ago it was sent or received (0 when none).
   */
  readonly lagMs: number;
  /** Lag control: the pause after each epoch while the backup catches up (0: full speed). */
  readonly slowedMs?: number;
  /** A primary's backups, one by one: following (with its lag) or joining. */
  readonly backups?: readonly BackupView[];
  /** A primary copying its state to a joining backup while the guest runs: how far it is. */
  readonly joining?: { readonly round: number; readonly pagesSent: number; readonly bytesSent: number; readonly ms: number } | undefined;
  readonly logBytesSent: number;
  readonly logBytesReceived: number;
  /** Messages this replica has sent on its links (every kind: entries, heartbeats, acknowledgements...). */
  readonly messagesSent: number;
  readonly outputsWaiting: number;
  readonly generation: number;
  readonly lastFailover: { readonly atMs: number; readonly tookMs: number; readonly detectionMs: number } | undefined;
  /** The backup found that its execution had left the primary's: not protected, for this reason. */
  readonly divergence: { readonly epoch: number; readonly reason: string } | undefined;
  /** State digests this replica has taken, and the time they took (its clock's milliseconds). */
  readonly digests: { readonly taken: number; readonly ms: number };
}

/** One backup of a primary, for the status view. */
export interface BackupView {
  readonly replicaId: string;
  readonly state: 'following' | 'joining';
  readonly lagEpochs: number;
  readonly lagMs: number;
}

/** What a person reads when the guest has ended a run. */
export function describeGuestEnd(guest: GuestEnd): string {
  switch (guest.kind) {
    case 'poweroff': return 'the guest powered off';
    case 'panic': return 'the guest kernel panicked';
    case 'stuck': return `the guest is stuck: ${guest.reason}`;
  }
}

