/**
 * The primary (rules P0, P1, P2 and the output rule), as a sans-IO state machine.
 *
 * Its driver calls `step()` whenever something may have changed (a message, a disk
 * completion, console input, the time it asked to be woken at); each step runs at most one
 * epoch. Messages from the backup arrive through `onMessage`, disk completions through
 * `onDiskCompletion`. Everything the primary does to the world goes through `ReplicaIo`.
 */
import type { Machine } from '../machine/board.js';
import { ticksToMs } from '../machine/clock.js';
import type { StopReason } from '../machine/cpu/cpu.js';
import { answeredByDevice, outputsWriteTo, type DiskReadRequest, type DiskRequest, type MachineEvent, type MachineOutput } from '../machine/environment.js';
import type { ReplicaEnvironment } from './environment.js';
import { copyPagesPerMessageMax, diskReadBytes, epochEntryWireBytes, eventWireBytes, stateChunkBytes, type EpochEntry, type Message, type ReplicaIdentity, type SharedRead } from './messages.js';
import { consoleInputPerEntryBytesMax, planEntry, runWithinReads } from './entry-budget.js';
import {
  describeGuestEnd, diskReadBytesPerEpochMax, digestDue, epochMergeChunkInstructions, epochMergeHostMs, epochMergeQuietChunkInstructions, epochMergeMax, epochMergeQuietHostMs, epochMergeLookMs, heldWriteBytesMax, nextEpochStart, pendingEpochsMax, quietAfterMs, stepInstructionsMin, unacknowledgedLogBytesMax, validateOptions,
  type PeerId, type ReplicaEnd, type ReplicaIo, type ReplicaStatus, type ReplicationOptions, type StepResult,
} from './replica.js';
import { assert } from '../machine/assert.js';
import { scrubWindow, StateDigester } from '../machine/state-digest.js';
import { pageBytes, type RamWriteTracker } from '../machine/memory/ram.js';

/** The longest epoch while outputs wait for acknowledgements (about 0.05 ms of guest time). */
const heldOutputsEpochInstructions = 10_000;
/** How often a primary whose console is backlogged looks again. */
const consolePollMs = 10;

// A live copy (a backup joining a running guest): RAM pages go out between epochs while the
// guest runs on; each round re-sends the pages written during the one before; when few are
// left (or rounds stop helping), the guest pauses at a boundary for the rest and the CPU and
// device state.
/** Copy bytes sent and not yet confirmed by the backup (`copied`), at most: the copy's window. */
const copyWindowBytes = 8 * 1024 * 1024;
/** Copy bytes sent in one step at most, so that the guest runs between batches. */
const copyBytesPerStep = 1024 * 1024;
/** Pause for the rest once this few pages are left to send... */
const copyFinalPagesMax = 256;
/** ... or after this many rounds, or when a round left at least as many as the one before. */
const copyRoundsMax = 8;

// Lag control: a backup whose replay falls behind (a slower or busier host) would make a
// failover wait for it; the primary slows the guest, a little more at each report that the
// backup is still too far behind, and less again once it has caught up.
/** The smallest slowing: a pause of this long after each epoch. */
const slowStepMs = 1;
/** The largest: the guest runs at least an epoch in this long. */
const slowMaxMs = 200;
/** Each report of a backup still too far behind lengthens the pause by this factor... */
const slowGrowth = 1.5;
/** ... and each report of one well within the bound shortens it by this one. */
const slowDecay = 0.5;

/** A live copy in progress. */
interface LiveCopy {
  readonly tracker: RamWriteTracker;
  /** This round's pages, and how many of them have gone out. */
  queue: number[];
  sent: number;
  round: number;
  /** Copy bytes sent, and confirmed by the backup. */
  bytesSent: number;
  bytesConfirmed: number;
  pagesSent: number;
  readonly startedMs: number;
}

/**
 * One backup of this primary: joining (a live copy under way) or a member (it has the state;
 * outputs wait for its acknowledgements, and its lease).
 */
interface Follower {
  readonly peer: PeerId;
  readonly replicaId: string;
  /** Its live copy, while it joins by one. */
  copy: LiveCopy | undefined;
  /**
   * Its join's last step is due (after a live copy: with the pages written in the last round):
   * it waits for a quiet boundary (see `quiet`).
   */
  final: { readonly copy: LiveCopy | undefined; readonly pages: number[] | undefined } | undefined;
  /** It has the state: outputs wait for it, and dropping it takes the arbiter (fencing). */
  member: boolean;
  /** A member that has not acknowledged anything yet: it may still be loading the state. */
  loading: boolean;
  ackedThrough: number;
  /** When each entry it has not acknowledged was sent, and its wire bytes (and their sum). */
  readonly entrySentAtMs: Map<number, number>;
  readonly entryBytesUnacknowledged: Map<number, number>;
  unacknowledgedLogBytes: number;
  readonly heartbeatSentAtMs: Map<number, number>;
  /** Outputs may go out until then, as far as this backup is concerned. */
  leaseUntilMs: number;
  lastSentMs: number;
  lastHeardMs: number;
  /** Its last estimate of its catch-up time (lag control). */
  catchUpMs: number;
}

export type PrimaryRole =
  /** No backup yet: nothing runs until one joins (an unprotected start is not the point). */
  | 'waiting'
  /** Backups follow: outputs wait for every one's acknowledgements. */
  | 'protected'
  /** No backup follows and this replica won the arbiter: outputs go out at once. */
  | 'solo'
  /** This replica lost the arbiter (a backup went live) or the guest finished. */
  | 'halted';

export interface PrimaryStart {
  /** The last epoch already completed (0 at boot; the failover epoch after a promotion). */
  readonly epoch: number;
  readonly generation: number;
  readonly role: 'waiting' | 'solo';
  /** Names this pair on the arbiter's storage; the backup learns it from the welcome. */
  readonly clusterId: string;
  /** Completions already waiting for the next boundary (re-issued I/O after a failover). */
  readonly completions?: readonly MachineEvent[];
  /** The outputs this replica released last (for the piggyback after a promotion). */
  readonly releasedThrough?: number;
  /**
   * Disk requests already out (re-issued after a failover), in the order submitted; `early`
   * for a write the guest has had the completion of already (its completion from the disk is
   * not delivered again).
   */
  readonly diskRequestsOutstanding?: readonly SubmittedRequest[];
  /**
   * After a promotion: the backup's digests of this machine, kept up to date while it
   * followed, so that the next digest (a new backup's join) hashes only what changed since.
   */
  readonly digester?: StateDigester;
}

/** A disk request submitted to the host, whose completion has not come back yet. */
export interface SubmittedRequest {
  readonly slot: number;
  readonly requestId: number;
  readonly op: DiskRequest['op'];
  /**
   * Its completion is not delivered: a write completed to the guest before it was performed
   * (`completeWritesEarly`), or a request of a machine since rebooted.
   */
  readonly early: boolean;
}

/** The data bytes of the disk writes among `outputs`. */
function writeBytes(outputs: readonly MachineOutput[]): number {
  let bytes = 0;
  for (const output of outputs) if (output.kind === 'disk-request' && output.request.op === 'write') bytes += output.request.data.length;
  return bytes;
}

/** A disk read issued before its epoch's acknowledgement (`issueReads`). */
type EarlyRead = DiskReadRequest;

/** Creates a fresh machine for a guest that asked for a reset (both replicas do the same). */
export type Reboot = () => Machine;


export class PrimaryReplica {
  private role: PrimaryRole;
  private epoch: number;
  private generation: number;
  private readonly pending: { epoch: number; outputs: MachineOutput[] }[] = [];
  /** Data bytes of the disk writes among `pending`'s outputs (`heldWriteBytesMax`). */
  private heldWriteBytes = 0;
  private releasedThrough: number;
  /** The last epoch with outputs held for acknowledgements that someone waits for (all but writes completed early). */
  private heldOutputsThrough = 0;
  /** Its backups, by connection: at most `options.backups`, at most one of them joining by a live copy. */
  private readonly followers = new Map<PeerId, Follower>();
  private heartbeatSequence = 0;
  private completions: MachineEvent[];
  /**
   * Disk requests released whose completion has not come back yet, in the order submitted (the
   * disk performs them in that order).
   */
  private readonly diskRequestsOutstanding: SubmittedRequest[];
  /** Writes held whose completion the guest has had already (`completeWritesEarly`). */
  private readonly completedEarly = new WeakSet<DiskRequest>();
  /** A write completed early failed at the disk: the next flush of that disk reports it (by slot). */
  private readonly failedEarlyWrites = new Set<number>();
  /** A new catch-up report since the slowing was last adjusted. */
  private catchUpReported = false;
  /** Lag control: the guest pauses this long after each epoch, until `slowUntilMs`. */
  private slowMs = 0;
  private slowUntilMs = -Infinity;
  /**
   * When a boundary last delivered more than the clock or took an output (the first step's time
   * until then): the guest has been quiet since (`epochMergeQuietHostMs`).
   */
  private lastDisturbedMs: number | undefined;
  /** How fast the last chunk of a merged epoch ran, instructions per host millisecond (0: not yet known). */
  private chunkInstructionsPerMs = 0;
  private finished: { end: ReplicaEnd; reason: string } | undefined;
  private logBytesSent = 0;
  private messagesSent = 0;
  private outputsReleased = 0;
  private readonly clusterId: string;
  /** Keeps the machine's state digest up to date, when digests are on. */
  private digester: StateDigester | undefined;
  /** The last backup found it had diverged: this primary is not protected, for this reason. */
  private divergence: { epoch: number; reason: string } | undefined;
  private readonly digests = { taken: 0, ms: 0 };
  /** Where the next epoch starts counting (digests are due by instructions, `digestDue`). */
  private nextStartRetired: number;
  /** Data bytes of the disk reads answered at once in the epoch running (`readDiskNow`). */
  private diskReadBytesThisEpoch = 0;

  constructor(
    private machine: Machine,
    private readonly environment: ReplicaEnvironment,
    private readonly io: ReplicaIo,
    private readonly options: ReplicationOptions,
    private readonly identity: ReplicaIdentity,
    private readonly reboot: Reboot,
    start: PrimaryStart,
  ) {
    validateOptions(options);
    // A write the disk answered itself could not be reported as failed after a failover.
    if (options.pendingIo !== 'reissue' && [...machine.disks.values()].some((disk) => disk.writeBack)) throw new RangeError('a write-back disk needs the reissue policy for pending I/O');
    this.role = start.role;
    this.epoch = start.epoch;
    this.generation = start.generation;
    this.releasedThrough = start.releasedThrough ?? start.epoch;
    this.completions = [...(start.completions ?? [])];
    this.diskRequestsOutstanding = [...(start.diskRequestsOutstanding ?? [])];
    this.clusterId = start.clusterId;
    this.digester = start.digester ?? this.startDigests(machine);
    this.nextStartRetired = nextEpochStart(machine.power !== undefined, machine.retiredInstructions);
    environment.answerDiskReads((request) => this.readDiskNow(request));
  }

  /**
   * A disk read the machine asks to have answered at once (messages.ts, 'disk-read'): read
   * now, unless a write held for an acknowledgement changes its sectors (the disk does not
   * have it yet, and a backup reading the disk when the entry arrives would not either), or
   * the epoch has answered its share already (`diskReadBytesPerEpochMax`: each backup holds
   * the data until it has replayed the epoch). Not under `readsInLog`, whose shared storage
   * may show a backup stale data.
   */
  private readDiskNow(request: DiskReadRequest): Uint8Array | undefined {
    if (this.io.readDiskNow === undefined || this.options.readsInLog === true) return undefined;
    if (this.diskReadBytesThisEpoch + request.lengthBytes > diskReadBytesPerEpochMax) return undefined;
    if (this.writeHeldTo(request)) return undefined;
    const data = this.io.readDiskNow(request);
    if (data !== undefined) this.diskReadBytesThisEpoch += data.length;
    return data;
  }

  /** Whether a write held for an acknowledgement changes a sector `read` reads: the disk does not have it yet. */
  private writeHeldTo(read: DiskReadRequest): boolean {
    return this.heldWriteBytes > 0 && this.pending.some((pending) => outputsWriteTo(pending.outputs, read));
  }

  /** A digester for `machine`, if digests are on. */
  private startDigests(machine: Machine): StateDigester | undefined {
    return this.options.digestEveryEpochs > 0 ? new StateDigester(machine) : undefined;
  }

  /** The role as `status()` reports it (cheap: the run loop asks after every step). */
  get statusRole(): ReplicaStatus['role'] {
    return this.role === 'protected' ? 'primary' : this.role === 'solo' ? 'solo' : this.role === 'waiting' ? 'waiting' : 'halted';
  }

  /** The last divergence a backup reported, as `status()` has it. */
  get lastDivergence(): { readonly epoch: number; readonly reason: string } | undefined {
    return this.divergence;
  }

  /** Outputs wait for acknowledgements: what this replica sends should leave at once, not with the next batch. */
  get holdsOutputs(): boolean {
    return this.pending.length > 0 && this.heldOutputsThrough > this.releasedThrough;
  }

  get currentMachine(): Machine {
    return this.machine;
  }

  get currentRole(): PrimaryRole {
    return this.role;
  }

  get currentGeneration(): number {
    return this.generation;
  }

  /** The backups whose acknowledgements outputs wait for. */
  private members(): Follower[] {
    return [...this.followers.values()].filter((follower) => follower.member);
  }

  /** The backup joining (by a live copy, or waiting for its join's last step), if one is. */
  private joiner(): Follower | undefined {
    for (const follower of this.followers.values()) if (follower.copy !== undefined || follower.final !== undefined) return follower;
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  /** A backup said hello on connection `peer`: refuse it, or welcome it and start its join. */
  onHello(identity: ReplicaIdentity, peer: PeerId): boolean {
    const mismatch = compareIdentity(this.identity, identity);
    if (mismatch !== undefined) {
      this.io.send({ type: 'reject', code: mismatch.code, reason: mismatch.reason }, peer);
      this.io.log(`refused a backup: ${mismatch.reason}`);
      return false;
    }
    const busy = this.busyReason(identity.replicaId, peer);
    if (busy !== undefined) {
      this.io.send({ type: 'reject', code: 'busy', reason: busy }, peer);
      return false;
    }
    const now = this.io.nowMs();
    const follower: Follower = {
      peer, replicaId: identity.replicaId, copy: undefined, final: undefined, member: false, loading: false, ackedThrough: this.epoch,
      entrySentAtMs: new Map(), entryBytesUnacknowledged: new Map(), unacknowledgedLogBytes: 0, heartbeatSentAtMs: new Map(),
      leaseUntilMs: -Infinity, lastSentMs: -Infinity, lastHeardMs: now, catchUpMs: 0,
    };
    this.followers.set(peer, follower);
    this.sendMessage({ type: 'welcome', clusterId: this.clusterId, primaryId: this.identity.replicaId, generation: this.generation, epoch: this.epoch }, follower);
    if (this.role !== 'waiting' && this.options.liveCopy !== false) {
      // The guest runs: copy its RAM while it does (step), pausing only for the rest.
      const queue = this.machine.ram.nonZeroPages();
      // The copy sends again what the guest writes meanwhile: every store must be seen, so the
      // store TLB is emptied (counting its pages as written would send pages that were only
      // written before, and a copy would seem never to converge).
      this.machine.hart.flushStoreTlb();
      follower.copy = { tracker: this.machine.ram.trackWrites(), queue, sent: 0, round: 1, bytesSent: 0, bytesConfirmed: 0, pagesSent: 0, startedMs: now };
      this.io.log(`a backup is joining: copying ${queue.length} pages while the guest runs`);
      return true;
    }
    this.finishJoin(follower, undefined, undefined);
    return true;
  }

  /**
   * A boundary where a new backup may take the state: no outputs wait (with other backups
   * following, those of epochs before the join are held only by them: all of them lost, the new
   * one could not repeat them), and no disk request is out without its completion (the new one
   * did not see it issued, and could not re-issue it, P8; it would complete it as uncertain).
   */
  private get quiet(): boolean {
    return this.pending.length === 0 && this.diskRequestsOutstanding.length === 0;
  }

  /** The join's last step now if this boundary is quiet, else at the first quiet one (the guest waits meanwhile). */
  private finishJoin(follower: Follower, copy: LiveCopy | undefined, pages: number[] | undefined): void {
    if (this.members().length === 0) this.releaseAll(); // the only live replica: nothing to keep
    if (this.quiet) this.completeJoin(follower, copy === undefined ? undefined : { copy, pages: pages ?? [] });
    else follower.final = { copy, pages };
  }

  /** Why a backup named `replicaId` may not join now, if it may not. */
  private busyReason(replicaId: string, peer: PeerId): string | undefined {
    // A primary that has finished (its guest ended, or it lost the arbiter) has nothing to
    // hand on: a backup that joined it would follow a machine nobody runs, and take silence for
    // a failure.
    if (this.finished !== undefined || this.role === 'halted') return 'this primary has stopped';
    const backups = this.options.backups ?? 1;
    if (this.followers.size >= backups) return backups === 1 ? 'this primary already has a backup' : `this primary already has ${backups} backups`;
    if (this.joiner() !== undefined) return 'another backup is joining this primary';
    // The arbiter's records name backups: two of one name could not be told apart.
    if (replicaId === this.identity.replicaId || [...this.followers.values()].some((follower) => follower.replicaId === replicaId) || this.followers.has(peer)) {
      return `a replica named ${replicaId} follows this primary already`;
    }
    return undefined;
  }

  /**
   * The join's last part, at this boundary, the guest paused: the state (after a live copy,
   * only the pages written since they were sent, with the CPU and devices); from here on,
   * outputs wait for this backup too.
   */
  private completeJoin(follower: Follower, copy: { copy: LiveCopy; pages: number[] } | undefined): void {
    const alone = this.members().length === 0;
    if (alone) {
      // A first backup starts from the state at this boundary: outputs already waiting belong
      // to epochs it will never replay, so they go out now (this replica is the only live one).
      this.releaseAll();
    }
    // The guest is paused from here until the state has gone out.
    const pauseStartMs = this.io.nowMs();
    // Both sides start digests from this boundary: the backup hashes the state it loads and
    // re-arms write tracking; this side brings its hashes up to date and does the same.
    // (With backups following, this side's digests go on unchanged for them: the new one
    // hashed everything it loaded, and compares the pages written since.)
    if (alone) this.digester?.take();
    // The new backup starts with an empty TLB, and so does this side. Not needed for equal RAM
    // (the backups already following keep theirs: TLB contents are unobservable, mmu.ts,
    // "Page-table pages"), but the two then go on alike.
    this.machine.hart.flushTlb();
    // After a live copy: the pages written in its last round, and any written since (an epoch
    // may have run while the join waited for a quiet boundary).
    const pages = copy === undefined ? undefined : [...new Set([...copy.pages, ...copy.copy.tracker.take()])].sort((a, b) => a - b);
    const snapshot = this.machine.save(pages);
    const total = Math.max(1, Math.ceil(snapshot.length / stateChunkBytes));
    for (let index = 0; index < total; index++) {
      const bytes = snapshot.subarray(index * stateChunkBytes, (index + 1) * stateChunkBytes);
      this.sendMessage({ type: 'state', epoch: this.epoch, index, total, bytes }, follower);
    }
    this.role = 'protected';
    follower.member = true;
    follower.final = undefined;
    follower.loading = true;
    follower.ackedThrough = this.epoch;
    follower.lastHeardMs = this.io.nowMs();
    follower.leaseUntilMs = -Infinity;
    const paused = Math.round(this.io.nowMs() - pauseStartMs);
    const count = this.members().length;
    const of = count > 1 ? ` (${count} backups follow)` : '';
    if (copy === undefined) {
      this.io.log(`backup joined at epoch ${this.epoch} (state: ${snapshot.length} bytes; the guest paused ${paused} ms)${of}`);
      return;
    }
    const live = copy.copy;
    live.tracker.stop();
    follower.copy = undefined;
    this.io.log(
      `backup joined at epoch ${this.epoch} (live copy: ${live.pagesSent} pages, ${live.bytesSent} bytes in ${live.round} round(s), ` +
        `${Math.round(this.io.nowMs() - live.startedMs)} ms; then ${pages!.length} pages and the rest of the state: ${snapshot.length} bytes; the guest paused ${paused} ms)${of}`,
    );
  }

  /** The live copy's work for this step: a batch of pages, or the next round, or the end. */
  private continueCopy(follower: Follower, copy: LiveCopy, now: number): void {
    if (now - follower.lastHeardMs > this.options.joinTimeoutMs) {
      this.dropFollower(follower, `it did not finish joining: nothing heard for ${Math.round(now - follower.lastHeardMs)} ms`);
      return;
    }
    let budget = this.options.liveCopyStepBytes ?? copyBytesPerStep;
    while (budget > 0 && copy.bytesSent - copy.bytesConfirmed < copyWindowBytes) {
      if (copy.sent === copy.queue.length) {
        this.machine.hart.flushStoreTlb(); // as at the copy's start
        const written = copy.tracker.take();
        if (written.length <= (this.options.liveCopyFinalPages ?? copyFinalPagesMax) || copy.round >= copyRoundsMax || written.length >= copy.queue.length) {
          this.finishJoin(follower, copy, written);
          return;
        }
        copy.queue = written;
        copy.sent = 0;
        copy.round++;
      }
      const batch: { page: number; bytes: Uint8Array }[] = [];
      while (batch.length < copyPagesPerMessageMax && copy.sent < copy.queue.length && (batch.length === 0 || (batch.length + 1) * pageBytes <= budget)) {
        const page = copy.queue[copy.sent++]!;
        batch.push({ page, bytes: this.machine.ram.pageForCopy(page) });
      }
      const bytes = this.sendMessage({ type: 'pages', pages: batch }, follower);
      copy.bytesSent += bytes;
      copy.pagesSent += batch.length;
      budget -= bytes;
    }
  }

  /** The live copy may go on now (or must end): step again at once rather than sleep. */
  private get copyCanSend(): boolean {
    const copy = this.joiner()?.copy;
    return copy !== undefined && copy.bytesSent - copy.bytesConfirmed < copyWindowBytes;
  }

  /** A message from the backup on connection `peer`. */
  onMessage(message: Message, peer: PeerId): void {
    const follower = this.followers.get(peer);
    if (follower === undefined) return; // a backup already dropped, still talking
    follower.lastHeardMs = this.io.nowMs();
    if (message.type === 'copied') {
      const copy = follower.copy;
      if (copy !== undefined && message.bytes <= copy.bytesSent) copy.bytesConfirmed = Math.max(copy.bytesConfirmed, message.bytes);
    } else if (message.type === 'ack' && follower.member) {
      follower.loading = false; // it has loaded the state
      follower.catchUpMs = message.catchUpMs;
      this.catchUpReported = true;
      this.onAck(follower, message.epoch, message.heartbeat);
    } else if (message.type === 'divergence' && follower.member && this.role === 'protected') {
      // The backup's execution left this one's: it stops, and this replica is not protected by it.
      this.divergence = { epoch: message.epoch, reason: message.reason };
      this.io.log(`NOT PROTECTED: the backup diverged at epoch ${message.epoch}: ${message.reason}`);
      this.loseFollower(follower, `divergence at epoch ${message.epoch}`);
    }
    // Anything else from a backup is ignored: it has nothing else to say to a primary.
  }

  private onAck(follower: Follower, epoch: number, heartbeat: number): void {
    // The lease runs from the send of the newest thing acknowledged. (Each map holds its keys
    // in the order they were sent, ascending: the acknowledged ones come first.)
    let sentAt = -Infinity;
    for (const [sent, at] of follower.entrySentAtMs) {
      if (sent > epoch) break;
      sentAt = Math.max(sentAt, at);
      follower.entrySentAtMs.delete(sent);
    }
    for (const [sent, bytes] of follower.entryBytesUnacknowledged) {
      if (sent > epoch) break;
      follower.unacknowledgedLogBytes -= bytes;
      follower.entryBytesUnacknowledged.delete(sent);
    }
    for (const [sequence, at] of follower.heartbeatSentAtMs) {
      if (sequence > heartbeat) break;
      sentAt = Math.max(sentAt, at);
      follower.heartbeatSentAtMs.delete(sequence);
    }
    if (epoch > this.epoch) return; // an acknowledgement of something never sent: ignore it
    if (epoch > follower.ackedThrough) follower.ackedThrough = epoch;
    if (sentAt + this.options.leaseMs > follower.leaseUntilMs) follower.leaseUntilMs = sentAt + this.options.leaseMs;
  }

  /** How long a backup may be silent before it is declared failed. */
  private silenceLimitMs(follower: Follower): number {
    return follower.loading || !follower.member ? this.options.joinTimeoutMs : this.options.failureTimeoutMs;
  }

  /** The connection to the backup on `peer` closed. */
  onDisconnect(reason: string, peer: PeerId): void {
    const follower = this.followers.get(peer);
    if (follower === undefined) return;
    if (!follower.member) this.dropFollower(follower, `it did not finish joining: connection closed: ${reason}`);
    else if (this.finished === undefined && this.role === 'protected') this.loseFollower(follower, `connection closed: ${reason}`);
    else this.followers.delete(peer);
  }

  onDiskCompletion(event: MachineEvent): void {
    assert(event.kind === 'disk-completion', () => `a ${event.kind} event as a disk completion`);
    // The disk performs requests in the order submitted: this is nearly always the first.
    const index = this.diskRequestsOutstanding.findIndex((request) => request.slot === event.slot && request.requestId === event.requestId);
    assert(index >= 0, () => `a completion of disk request ${event.requestId}, which this replica did not submit`);
    const submitted = this.diskRequestsOutstanding.splice(index, 1)[0]!;
    let completion = event;
    if (submitted.early) {
      // The guest has had this write's completion; a failure is reported by its disk's next flush.
      if (event.status !== 'ok' && submitted.op === 'write') {
        this.failedEarlyWrites.add(event.slot);
        this.io.log(`a write to the disk on virtio slot ${event.slot} failed after the guest was told it was done: its next flush reports the error`);
      }
      return;
    }
    if (submitted.op === 'flush' && this.failedEarlyWrites.delete(event.slot)) completion = { ...event, status: 'io-error' };
    this.completions.push(completion);
  }

  // -------------------------------------------------------------------------------------------
  // The step

  step(): StepResult {
    const now = this.io.nowMs();
    if (this.finished !== undefined) return { kind: 'finished', ...this.finished };
    if (this.role === 'halted') return this.finish({ kind: 'not-live' }, 'this replica lost the arbiter: another one is live');
    for (const follower of this.members()) {
      if (this.role === 'protected' && now - follower.lastHeardMs > this.silenceLimitMs(follower)) {
        this.loseFollower(follower, `nothing heard for ${Math.round(now - follower.lastHeardMs)} ms`);
      }
    }
    if (this.currentRole === 'halted') return this.step(); // it lost the arbiter while dropping one
    this.releaseAcknowledged(now);
    this.heartbeat(now);
    if (this.role === 'waiting') return { kind: 'blocked' };
    const joiner = this.joiner();
    if (joiner?.final !== undefined) {
      // The join's last step waits for a quiet boundary: acknowledgements and completions come meanwhile; the guest waits.
      if (!this.quiet) return this.waitForAcks(now);
      this.completeJoin(joiner, joiner.final.copy === undefined ? undefined : { copy: joiner.final.copy, pages: joiner.final.pages ?? [] });
    } else if (joiner?.copy !== undefined) {
      this.continueCopy(joiner, joiner.copy, now);
    }

    const power = this.machine.power;
    if (power !== undefined && power.kind !== 'reset') {
      if (this.pending.length > 0) return this.waitForAcks(now);
      this.io.crashPoint('primary:before-goodbye');
      for (const member of this.members()) this.sendMessage({ type: 'goodbye', status: power.kind === 'poweroff' ? power.status : 0 }, member);
      return this.finish({ kind: 'guest', guest: power }, describeGuestEnd(power));
    }
    if (this.role === 'protected') {
      if (this.options.protocol === 'original' && this.ackedThroughAll() < this.epoch) return this.waitForAcks(now); // P2
      if (this.logFull) return this.waitForAcks(now);
    }
    if (this.io.consoleBacklogged || this.io.networkBacklogged) {
      // The console's reader (or the network) lags: the guest waits, heartbeats and acknowledgements go on.
      return { kind: 'blocked', untilMs: now + consolePollMs };
    }
    if (power?.kind === 'reset') {
      // Both replicas reboot at the same boundary: the backups do so when they replay it.
      this.machine = this.reboot();
      // Completions for the old machine's requests are not the new one's (its request ids start
      // again): those queued go, and those to come are not delivered.
      this.completions.length = 0;
      for (const [index, request] of this.diskRequestsOutstanding.entries()) this.diskRequestsOutstanding[index] = { ...request, early: true };
      this.digester = this.startDigests(this.machine);
      this.digester?.take();
      const copying = this.joiner();
      if (copying?.copy !== undefined) {
        // The live copy was of the old machine's RAM: the joining backup gets the whole new one.
        copying.copy.tracker.stop();
        copying.copy = undefined;
        this.finishJoin(copying, undefined, undefined);
      }
    }
    if (this.machine.isIdle && !this.eventsWaiting()) {
      // A live copy goes on while the guest sleeps.
      if (this.copyCanSend) return { kind: 'progress' };
      return this.idle(now);
    }
    if (this.role === 'protected' && now < this.slowUntilMs) return { kind: 'blocked', untilMs: this.slowUntilMs };
    this.lastDisturbedMs ??= now;
    const quiet = now - this.lastDisturbedMs >= quietAfterMs;
    const untilMs = now + (quiet ? epochMergeQuietHostMs : epochMergeHostMs);
    const startRetired = this.machine.retiredInstructions;
    let goesOn = this.runEpoch(now, untilMs, quiet);
    while (goesOn && this.runsOn(untilMs, startRetired)) goesOn = this.runEpoch(this.io.nowMs(), untilMs, quiet);
    if (this.role === 'protected') this.controlLag(now);
    return { kind: 'progress' };
  }

  /**
   * After an epoch that ended at an output this step dealt with at once (a read performed, a
   * write completed early: nothing waits for an acknowledgement), or whose boundary delivered
   * nothing but the clock (an entry that merged as many epochs as one may, {@link epochMergeMax}:
   * 1 M instructions at 1K-instruction epochs, a millisecond of the translation tier; a timer's
   * deadline, as Linux's tick; readings that filled the entry), the next epoch runs in the
   * same step, its entry joining the batch, while nothing needs the host's loop first: no
   * output waits (only the loop reads acknowledgements), no backup joins, the log's bounds
   * leave room, neither console nor network lags, the guest is not slowed, asleep or stopped,
   * and the step has lasted less than about {@link epochMergeHostMs} (or
   * {@link epochMergeQuietHostMs}) and run fewer than {@link epochMergeMax} epochs' instructions
   * or {@link stepInstructionsMin}, whichever is more. A guest that does I/O every few ten
   * thousand instructions then costs a turn of the loop (and its cold caches) per millisecond,
   * not per request. Not with fixed epochs, nor under the original protocol (P2: an epoch waits for the
   * last one's acknowledgement).
   */
  private runsOn(untilMs: number, startRetired: number): boolean {
    const machine = this.machine;
    if (this.role !== 'protected' || this.options.fixedEpochs === true || this.options.protocol !== 'relaxed') return false;
    if (machine.power !== undefined || machine.isIdle || this.holdsOutputs || this.slowMs > 0 || this.joiner() !== undefined) return false;
    if (machine.retiredInstructions - startRetired >= Math.max(this.options.epochInstructions * epochMergeMax, stepInstructionsMin)) return false;
    if (this.logFull || this.io.consoleBacklogged || this.io.networkBacklogged) return false;
    return this.io.nowMs() < untilMs;
  }

  /**
   * The log's bounds are reached: as many epochs wait for acknowledgement as this side keeps,
   * or as many bytes of disk writes, or a backup holds as many unacknowledged bytes as its
   * queue may (replica.ts).
   */
  private get logFull(): boolean {
    if (this.pending.length >= pendingEpochsMax || this.heldWriteBytes >= heldWriteBytesMax) return true;
    for (const member of this.members()) if (member.unacknowledgedLogBytes >= unacknowledgedLogBytesMax) return true;
    return false;
  }

  /** The epoch every following backup has acknowledged (this epoch if none follows). */
  private ackedThroughAll(): number {
    return Math.min(this.epoch, ...this.members().map((member) => member.ackedThrough));
  }

  /**
   * Lag control (VMware FT slows its primary the same way): no backup may hold more than it
   * can replay within the failure timeout, or a failover would take that much longer. Adjusted
   * once for each new report; the slowest backup decides.
   */
  private controlLag(now: number): void {
    if (this.catchUpReported) {
      this.catchUpReported = false;
      const boundMs = this.options.catchUpBoundMs ?? this.options.failureTimeoutMs;
      const catchUpMs = Math.max(0, ...this.members().map((member) => member.catchUpMs));
      const before = this.slowMs;
      if (catchUpMs > boundMs) this.slowMs = Math.min(slowMaxMs, Math.max(slowStepMs, this.slowMs * slowGrowth));
      else if (catchUpMs < boundMs / 2) this.slowMs = this.slowMs * slowDecay < slowStepMs ? 0 : this.slowMs * slowDecay;
      if (before === 0 && this.slowMs > 0) this.io.log(`the backup is ${catchUpMs} ms behind (the bound is ${boundMs} ms): slowing the guest until it catches up`);
      else if (before > 0 && this.slowMs === 0) this.io.log(`the backup has caught up (${catchUpMs} ms behind): the guest runs at full speed`);
    }
    if (this.slowMs > 0) this.slowUntilMs = now + this.slowMs;
  }

  /**
   * Runs an epoch and sends its entry; true if the step may go on (`runsOn`): the epoch ended at
   * an output dealt with at once, or its boundary delivered only the clock. `quiet`: the step
   * began with the guest quiet (`quietAfterMs`): its epochs merge in longer chunks.
   */
  private runEpoch(now: number, untilMs: number, quiet: boolean): boolean {
    const machine = this.machine;
    const epoch = this.epoch + 1;
    // The entry's budget (entry-budget.ts): the completions it delivers come first; what they
    // leave bounds the environment readings, and the epoch ends early, at an exact
    // instruction count, rather than outgrow it. The backup runs to the recorded end.
    const plan = planEntry(this.completions, this.options.epochEntryBytesMax);
    this.environment.beginRecording();
    this.diskReadBytesThisEpoch = 0;
    // While outputs wait for an acknowledgement, epochs are short: the loop reads its socket
    // only between steps, so the acknowledgement (and the outputs behind it) would otherwise
    // wait for the rest of a long epoch. The backup follows the recorded end, as for any early end.
    const instructions = machine.isIdle ? 0 : this.holdsOutputs ? Math.min(this.options.epochInstructions, heldOutputsEpochInstructions) : this.options.epochInstructions;
    const recorded = (): number => this.environment.recordedCount;
    // A boundary with nothing to deliver is skipped (ReplicationOptions.fixedEpochs): only
    // what this step can know of changes meanwhile (the clock, the guest's outputs), and the
    // step lasts no longer than the run loop goes between looks at its sockets anyway. Not
    // while a backup joins: its copy goes on between steps.
    const merging = instructions === this.options.epochInstructions && this.options.fixedEpochs !== true && this.joiner() === undefined;
    // Epochs go on several at a time (whole epochs, so that the boundary stays on the grid):
    // each look costs a return from the CPU tier, whose blocks never run past a budget (the
    // interpreter runs the rest of the block, and the next call starts in the middle of one).
    // What a look finds that the chunk hid is only the clock past a deadline, and a guest's
    // output that does not stop the hart: each waits at most a chunk more. A chunk is what the
    // last one ran in epochMergeLookMs, up to epochMergeChunkInstructions, or
    // epochMergeQuietChunkInstructions once the guest has computed undisturbed for a while:
    // the translation tier's million instructions, the interpreter's two hundred thousand
    // (Linux's kernel, whose timers a long chunk would hold back). The first chunk is one
    // epoch, unless the guest is quiet and nothing waits for its boundary already (input that
    // came between steps).
    const chunkInstructions = quiet ? epochMergeQuietChunkInstructions : epochMergeChunkInstructions;
    const chunkEpochsMax = merging ? Math.min(epochMergeMax, Math.max(1, Math.floor(chunkInstructions / instructions))) : 1;
    const chunkEpochs = (): number => Math.min(chunkEpochsMax, Math.max(1, Math.floor((this.chunkInstructionsPerMs * epochMergeLookMs) / instructions)));
    let length = merging && quiet && !this.eventsWaiting() ? instructions * chunkEpochs() : instructions;
    let lookedMs = this.io.nowMs();
    let result = runWithinReads(machine, length, plan.readsMax, recorded);
    if (merging) {
      for (let epochs = length / instructions; epochs < epochMergeMax && result.reason === 'budget' && result.retired === length; epochs += length / instructions) {
        const lookMs = this.io.nowMs();
        this.chunkInstructionsPerMs = length / Math.max(lookMs - lookedMs, 1e-3);
        if (machine.power !== undefined || machine.stoppedForOutput || machine.hasOutputs || this.eventsWaiting() || lookMs >= untilMs) break;
        lookedMs = lookMs;
        length = instructions * Math.min(chunkEpochs(), epochMergeMax - epochs);
        result = runWithinReads(machine, length, plan.readsMax, recorded);
      }
    }
    const endedAtOutput = result.reason === 'budget' && machine.stoppedForOutput;
    const reads = this.environment.takeRecorded();
    const outputs = machine.takeOutputs();
    const stop: StopReason = machine.power !== undefined ? 'halt' : result.reason;
    // Protected: reads may go at once, and writes complete at this very boundary when their
    // completions fit (the guest need not wait an epoch more for them).
    const { waiting: held, early } = this.role === 'protected' ? this.issueReads(epoch, outputs) : { waiting: outputs, early: [] };
    if (this.role === 'protected' && machine.power === undefined) this.completeWritesEarly(held);
    // Reads the host performed at once (issueReads) complete at this boundary, as under `run`,
    // not one step later with an epoch of their own.
    for (const event of this.io.takeDiskCompletions()) this.onDiskCompletion(event);
    const events = machine.power !== undefined ? [] : this.boundaryEvents(plan.queuedEvents, plan.bytesMax - epochEntryWireBytes(reads.length, []) - boundaryReserveBytes);
    for (const event of events) machine.applyEvent(event);
    const onlyTheClock = outputs.length === 0 && events.every((event) => event.kind === 'clock');
    if (!onlyTheClock) this.lastDisturbedMs = now;
    const shared = this.shareReads(events, early);
    const entry: EpochEntry = {
      epoch, endRetired: machine.retiredInstructions, stop, reads, events: shared.events, releasedThrough: this.releasedThrough,
      ...(shared.reads.length > 0 ? { sharedReads: shared.reads } : {}),
    };
    assert(epochEntryWireBytes(reads.length, shared.events, shared.reads.length) <= plan.bytesMax, () => `epoch ${epoch}'s entry outgrew its budget of ${plan.bytesMax} bytes`);
    this.epoch = epoch;
    this.io.epochDone(epoch, machine);
    const startRetired = this.nextStartRetired;
    this.nextStartRetired = nextEpochStart(entry.stop === 'halt', entry.endRetired);
    if (this.role === 'protected') {
      this.pending.push({ epoch, outputs: held });
      this.heldWriteBytes += writeBytes(held);
      // A write completed early keeps nobody waiting: the guest has its completion, and its
      // entry may go with the next batch (a read of its sectors, held behind it, does wait).
      if (held.some((output) => output.kind !== 'disk-request' || !this.answeredAlready(output.request))) this.heldOutputsThrough = epoch;
      this.io.crashPoint('primary:before-send-epoch');
      let digest: Message | undefined;
      const sequence = digestDue(this.options, startRetired, entry.endRetired);
      if (this.digester !== undefined && sequence !== undefined) {
        // The state after the boundary events, as the backups will have it after replaying E.
        const startedMs = this.io.nowMs();
        const { hart, parts, ramHash, pages } = this.digester.take(scrubWindow(sequence, machine.ram.pages));
        this.digests.taken++;
        this.digests.ms += this.io.nowMs() - startedMs;
        digest = { type: 'digest', epoch, digest: { hart, parts, ramHash, pages } };
      }
      // What a backup holds for the entry: the data of its shared reads and of its reads
      // answered at once too (the log's bounds are of memory).
      const dataBytes = shared.dataBytes + diskReadBytes(reads);
      for (const member of this.members()) {
        let bytes = this.sendMessage({ type: 'epoch', entry }, member) + dataBytes;
        if (digest !== undefined) bytes += this.sendMessage(digest, member);
        member.entrySentAtMs.set(epoch, now);
        member.entryBytesUnacknowledged.set(epoch, bytes);
        member.unacknowledgedLogBytes += bytes;
      }
      this.io.crashPoint('primary:after-send-epoch');
    } else {
      this.release(epoch, outputs);
      this.releasedThrough = epoch;
      // Alone, the digests are kept up to date all the same, on the same schedule: a backup
      // that joins then waits only for the pages written since the last one to be hashed
      // (after a failover, a Linux guest's 12 MB took 45 ms of the join's pause).
      if (this.digester !== undefined && digestDue(this.options, startRetired, entry.endRetired) !== undefined) this.digester.take();
    }
    // Nor does a boundary that delivered only the clock: one at the cap of merged epochs, at a
    // timer's deadline (Linux's tick), or where the readings filled the entry.
    return endedAtOutput || (onlyTheClock && result.reason === 'budget');
  }

  /**
   * The entry's events as sent (`SharedRead`): the completion of a read issued early at this
   * boundary and performed at once goes without its data, which the backups read from the
   * shared disk themselves before they acknowledge the entry. Only then: a read performed
   * later, or one whose completion waits for a later entry, may be followed by writes to its
   * sectors that reach the disk before a backup could read them (those of epochs acknowledged
   * meanwhile). The entry's budget still counts the data: what a backup holds is bounded alike.
   */
  private shareReads(events: readonly MachineEvent[], early: readonly EarlyRead[]): { events: readonly MachineEvent[]; reads: SharedRead[]; dataBytes: number } {
    const reads: SharedRead[] = [];
    if (early.length === 0 || this.options.readsInLog === true) return { events, reads, dataBytes: 0 };
    let dataBytes = 0;
    const sent = events.map((event, index): MachineEvent => {
      if (event.kind !== 'disk-completion' || event.status !== 'ok' || event.data === undefined) return event;
      const read = early.find((request) => request.slot === event.slot && request.requestId === event.requestId);
      if (read === undefined) return event;
      assert(event.data.length === read.lengthBytes, () => `read ${read.requestId} returned ${event.data!.length} bytes, not ${read.lengthBytes}`);
      reads.push({ event: index, offsetBytes: read.offsetBytes, lengthBytes: read.lengthBytes });
      dataBytes += read.lengthBytes;
      return { kind: 'disk-completion', slot: event.slot, requestId: event.requestId, status: 'ok' };
    });
    return { events: reads.length > 0 ? sent : events, reads, dataBytes };
  }

  /**
   * The events for this boundary, within what the entry has left (`roomBytes`, after the
   * readings and room for console input and the clock): the first `queuedEvents` completions
   * (as planned) and any further ones that fit, the network's, console input, the clock.
   */
  private boundaryEvents(queuedEvents: number, roomBytes: number): MachineEvent[] {
    const events: MachineEvent[] = this.completions.splice(0, queuedEvents);
    let roomLeft = roomBytes - queuedEventsBytes(events);
    // Completions queued since the plan (writes of this epoch, completed early), as many as fit.
    while (this.completions.length > 0 && eventWireBytes(this.completions[0]!) <= roomLeft) {
      const completion = this.completions.shift()!;
      events.push(completion);
      roomLeft -= eventWireBytes(completion);
    }
    this.networkEvents(events, roomLeft);
    const room = Math.min(this.machine.consoleInputRoom, consoleInputPerEntryBytesMax);
    if (room > 0 && this.io.consoleInputWaiting) {
      const input = this.io.takeConsoleInput(room);
      if (input.length > 0) events.push({ kind: 'console-input', bytes: input });
    }
    // P2: the clock state, from which timer interrupts follow on both replicas.
    events.push({ kind: 'clock', mtime: this.environment.clockNow(this.machine.retiredInstructions) });
    return events;
  }

  /**
   * P1 for the network: a change of a back-end's link, then the frames received, as many as the
   * NIC has buffers for and `roomBytes` holds (each counted with eventWireBytes, so that the
   * entry's budget covers them; the rest wait in the back-end for a later boundary).
   */
  private networkEvents(events: MachineEvent[], roomBytes: number): void {
    let room = roomBytes;
    for (const [slot, nic] of this.machine.nics) {
      const up = this.io.networkLinkUp(slot);
      const link: MachineEvent = { kind: 'net-link', slot, up };
      if (up !== nic.isLinkUp && eventWireBytes(link) <= room) {
        events.push(link);
        room -= eventWireBytes(link);
      }
      if (!this.io.networkInputWaiting(slot)) continue;
      const overhead = eventWireBytes({ kind: 'net-receive', slot, frame: new Uint8Array(0) });
      for (let frames = nic.receiveRoom; frames > 0 && room > overhead; frames--) {
        const [frame] = this.io.takeNetworkFrames(slot, 1, room - overhead);
        if (frame === undefined) break;
        const event: MachineEvent = { kind: 'net-receive', slot, frame };
        events.push(event);
        room -= eventWireBytes(event);
      }
    }
  }

  private networkEventsWaiting(): boolean {
    for (const [slot, nic] of this.machine.nics) {
      if (this.io.networkLinkUp(slot) !== nic.isLinkUp) return true;
      if (nic.receiveRoom > 0 && this.io.networkInputWaiting(slot)) return true;
    }
    return false;
  }

  private eventsWaiting(): boolean {
    if (this.completions.length > 0 || (this.io.consoleInputWaiting && this.machine.consoleInputRoom > 0)) return true;
    if (this.networkEventsWaiting()) return true;
    const deadline = this.machine.clockDeadline;
    return deadline !== undefined && this.environment.clockNow(this.machine.retiredInstructions) >= deadline;
  }

  /** The guest sleeps: wake at its next deadline (console input and completions wake the driver anyway). */
  private idle(now: number): StepResult {
    const deadline = this.machine.clockDeadline;
    // Virtual time does not pass while the guest sleeps: it jumps to the deadline.
    if (deadline !== undefined && this.environment.skipTo(deadline, this.machine.retiredInstructions)) return { kind: 'progress' };
    let wakeAt = Infinity;
    for (const member of this.members()) wakeAt = Math.min(wakeAt, member.lastSentMs + this.options.heartbeatIntervalMs);
    // A live copy waiting for the backup's confirmation: give up on it when the join times out.
    const joiner = this.joiner();
    if (joiner !== undefined) wakeAt = Math.min(wakeAt, joiner.lastHeardMs + this.options.joinTimeoutMs + 1);
    if (deadline !== undefined) {
      const ticks = Number(deadline - this.environment.clockNow(this.machine.retiredInstructions));
      wakeAt = Math.min(wakeAt, now + Math.max(0, ticksToMs(ticks)));
    }
    return Number.isFinite(wakeAt) ? { kind: 'blocked', untilMs: wakeAt } : { kind: 'blocked' };
  }

  private waitForAcks(now: number): StepResult {
    // Wake for the next heartbeat, or when a backup would be declared failed.
    let wakeAt = now + this.options.leaseMs;
    for (const member of this.members()) {
      wakeAt = Math.min(wakeAt, member.lastSentMs + this.options.heartbeatIntervalMs, member.lastHeardMs + this.silenceLimitMs(member) + 1);
    }
    return { kind: 'blocked', untilMs: wakeAt };
  }

  // -------------------------------------------------------------------------------------------
  // Outputs

  private releaseAcknowledged(now: number): void {
    if (this.role === 'solo') {
      this.releaseAll();
      return;
    }
    if (this.role !== 'protected') return;
    // Every following backup must hold the epoch (the output rule), and every one's lease must
    // hold: each promises not to go live before its lease has ended.
    const members = this.members();
    if (members.some((member) => now >= member.leaseUntilMs)) return;
    const acked = this.ackedThroughAll();
    let printed = false;
    while (this.pending.length > 0 && this.pending[0]!.epoch <= acked) {
      const { epoch, outputs } = this.pending.shift()!;
      this.heldWriteBytes -= writeBytes(outputs);
      this.io.crashPoint('primary:before-release');
      this.release(epoch, outputs);
      this.releasedThrough = epoch;
      printed ||= outputs.some((output) => output.kind === 'console-output');
      this.io.crashPoint('primary:after-release');
    }
    assert(this.pending.length > 0 || this.heldWriteBytes === 0, () => `${this.heldWriteBytes} bytes of writes counted held with none pending`);
    // Tell the backups at once, so that a failover repeats as little console output as possible.
    if (printed) for (const member of members) member.lastSentMs = -Infinity;
  }

  /**
   * Disk reads go out before the acknowledgement: a read changes nothing outside, and its
   * completion reaches the guest only through a later entry, which the backups receive after
   * this one (a backup that never gets it issues the read again itself, P8). Only a read with no
   * write held before it to a sector it reads, whose data it must see (the disk performs
   * requests in the order submitted, so a held write to other sectors, and a flush, do not
   * matter). Returns the outputs that wait for the acknowledgement, and the reads issued.
   */
  private issueReads(epoch: number, outputs: MachineOutput[]): { waiting: MachineOutput[]; early: EarlyRead[] } {
    const early: EarlyRead[] = [];
    if (!outputs.some((output) => output.kind === 'disk-request' && output.request.op === 'read')) return { waiting: outputs, early };
    const waiting: MachineOutput[] = [];
    for (const output of outputs) {
      if (output.kind !== 'disk-request') {
        waiting.push(output);
        continue;
      }
      const request = output.request;
      // A write of this epoch before it waits among `waiting`.
      if (request.op !== 'read' || this.writeHeldTo(request) || outputsWriteTo(waiting, request)) {
        waiting.push(output);
        continue;
      }
      this.io.crashPoint('primary:before-early-read');
      early.push(request);
      this.releaseOutput(epoch, output);
    }
    return { waiting, early };
  }

  /**
   * A write waits for the acknowledgement before it reaches the disk, but the guest need not
   * wait with it (Remus buffers its disk writes the same way): its completion goes into this
   * epoch's entry if it fits (`boundaryEvents`), else the next one. Nothing outside can tell:
   * every output that follows from the guest having seen the completion belongs to a later
   * epoch, released only after this one, and a backup that goes live having replayed the
   * completion writes the data itself (P8: it keeps the writes of epochs not known released,
   * `BackupReplica`). A read of the written sectors waits behind the held write
   * (`issueReads`), and a flush completes only once the disk has done it, after the writes
   * before it: a flush still means the data is on the disk. Only under the `reissue` policy:
   * under `uncertain` a backup reports requests in flight as failed, which a write the guest
   * was told is done could not be.
   */
  private completeWritesEarly(held: readonly MachineOutput[]): void {
    if (this.options.pendingIo !== 'reissue') return;
    for (const output of held) {
      if (output.kind !== 'disk-request' || output.request.op !== 'write' || answeredByDevice(output.request)) continue;
      this.completedEarly.add(output.request);
      this.completions.push({ kind: 'disk-completion', slot: output.request.slot, requestId: output.request.requestId, status: 'ok' });
    }
  }

  /**
   * The guest has had this request's answer: a write completed early, or one a write-back disk
   * answered itself (`DiskConfig.writeBack`). Its completion from the disk is not delivered.
   */
  private answeredAlready(request: DiskRequest): boolean {
    return answeredByDevice(request) || this.completedEarly.has(request);
  }

  private releaseAll(): void {
    this.heldWriteBytes = 0;
    for (const { epoch, outputs } of this.pending.splice(0)) {
      this.release(epoch, outputs);
      this.releasedThrough = epoch;
    }
  }

  private release(epoch: number, outputs: readonly MachineOutput[]): void {
    for (const output of outputs) this.releaseOutput(epoch, output);
  }

  private releaseOutput(epoch: number, output: MachineOutput): void {
    this.outputsReleased++;
    if (output.kind === 'console-output') this.io.consoleWrite(output.bytes, epoch);
    else if (output.kind === 'net-transmit') this.io.networkSend(output.slot, output.frame, epoch);
    else {
      const { slot, requestId, op } = output.request;
      const early = this.answeredAlready(output.request);
      this.completedEarly.delete(output.request);
      this.diskRequestsOutstanding.push({ slot, requestId, op, early });
      this.io.diskSubmit(output.request, epoch);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The links

  private heartbeat(now: number): void {
    if (this.role !== 'protected') return;
    for (const member of this.members()) {
      if (now - member.lastSentMs < this.options.heartbeatIntervalMs) continue;
      const sequence = ++this.heartbeatSequence;
      member.heartbeatSentAtMs.set(sequence, now);
      this.sendMessage({ type: 'heartbeat', sequence, releasedThrough: this.releasedThrough }, member);
    }
  }

  private sendMessage(message: Message, to: Follower): number {
    to.lastSentMs = this.io.nowMs();
    const bytes = this.io.send(message, to.peer);
    this.messagesSent++;
    if (message.type === 'epoch' || message.type === 'state' || message.type === 'digest' || message.type === 'pages') this.logBytesSent += bytes;
    return bytes;
  }

  /** A backup that never had the state goes (its join failed): it cannot go live, so nothing to fence. */
  private dropFollower(follower: Follower, reason: string): void {
    follower.copy?.tracker.stop();
    follower.copy = undefined;
    follower.final = undefined;
    this.followers.delete(follower.peer);
    this.io.disconnect(follower.peer);
    this.io.log(`the backup did not finish joining (${reason}): ${this.members().length > 0 ? 'the others follow on' : 'running alone'}`);
  }

  /**
   * A following backup is gone (timeout, closed connection, divergence). It may be alive behind
   * a partition and go live once its lease has ended, lacking the epochs released from now on:
   * so this replica takes the next generation from the arbiter, naming the backups it keeps. A
   * backup failing over later finds that generation taken: it goes on to the next one only if it
   * is named there (safety: only a backup holding every released epoch can win). Solo if none is
   * left; halted if the arbiter was taken already (a backup went live).
   */
  private loseFollower(follower: Follower, reason: string): void {
    follower.copy?.tracker.stop();
    this.followers.delete(follower.peer);
    this.io.disconnect(follower.peer);
    const kept = [...this.followers.values()];
    const alone = !kept.some((other) => other.member);
    this.io.log(`backup lost (${reason})${alone ? '' : `: ${kept.filter((other) => other.member).length} follow on`}`);
    if (alone) {
      this.slowMs = 0;
      this.slowUntilMs = -Infinity;
    }
    this.io.crashPoint(alone ? 'primary:before-go-solo' : 'primary:before-fence');
    // Joining backups are named too: once they have the state they are members of this generation.
    const answer = this.io.tryGoLive(this.generation + 1, kept.map((other) => other.replicaId));
    if (!answer.won) {
      this.role = 'halted';
      this.pending.length = 0;
      this.heldWriteBytes = 0;
      this.io.log('a backup went live first: stopping');
      return;
    }
    this.generation++;
    if (alone) {
      this.role = 'solo';
      this.releaseAll();
      this.io.log(`running alone (generation ${this.generation})`);
    } else {
      this.io.log(`generation ${this.generation}: the backups that follow on are ${kept.map((other) => other.replicaId).join(', ')}`);
    }
  }

  private finish(end: ReplicaEnd, reason: string): StepResult {
    this.finished = { end, reason };
    return { kind: 'finished', end, reason };
  }

  status(): ReplicaStatus {
    const now = this.io.nowMs();
    const members = this.role === 'protected' ? this.members() : [];
    // Entries are sent, and acknowledged, in epoch order: each map's first is the oldest.
    const lagMs = (follower: Follower): number => (follower.entrySentAtMs.size > 0 ? Math.round(now - follower.entrySentAtMs.values().next().value!) : 0);
    const copy = this.joiner()?.copy;
    return {
      role: this.statusRole,
      epoch: this.epoch,
      lagEpochs: Math.max(0, ...members.map((member) => this.epoch - member.ackedThrough)),
      lagMs: Math.max(0, ...members.map(lagMs)),
      slowedMs: this.role === 'protected' ? Math.round(this.slowMs) : 0,
      backups: [...this.followers.values()].map((follower) => ({
        replicaId: follower.replicaId,
        state: follower.member ? 'following' : 'joining',
        lagEpochs: follower.member ? this.epoch - follower.ackedThrough : 0,
        lagMs: follower.member ? lagMs(follower) : 0,
      })),
      joining: copy === undefined ? undefined : { round: copy.round, pagesSent: copy.pagesSent, bytesSent: copy.bytesSent, ms: Math.round(now - copy.startedMs) },
      logBytesSent: this.logBytesSent,
      logBytesReceived: 0,
      messagesSent: this.messagesSent,
      outputsWaiting: this.pending.reduce((sum, entry) => sum + entry.outputs.length, 0),
      generation: this.generation,
      lastFailover: undefined,
      divergence: this.divergence,
      digests: { ...this.digests },
    };
  }

  /** Total outputs released to the world (for tests and the status view). */
  get releasedOutputs(): number {
    return this.outputsReleased;
  }
}

/** Why a backup may not follow this primary, if it may not. */
export function compareIdentity(
  mine: ReplicaIdentity,
  theirs: ReplicaIdentity,
): { code: 'config' | 'image' | 'options'; reason: string } | undefined {
  if (mine.imageDigest !== theirs.imageDigest) {
    // Twelve characters tell two digests apart, unless they differ only further on.
    let from = 0;
    while (from < 12 || mine.imageDigest.slice(from - 12, from) === theirs.imageDigest.slice(from - 12, from)) from += 12;
    const shown = (digest: string): string => `${from > 12 ? '...' : ''}${digest.slice(from - 12, from)}`;
    return { code: 'image', reason: `different guest image (primary ${shown(mine.imageDigest)}, backup ${shown(theirs.imageDigest)})` };
  }
  if (mine.configKey !== theirs.configKey) return { code: 'config', reason: `different machine configuration (primary ${mine.configKey}, backup ${theirs.configKey})` };
  if (mine.optionsKey !== theirs.optionsKey) return { code: 'options', reason: `different replication options (primary ${mine.optionsKey}, backup ${theirs.optionsKey})` };
  return undefined;
}

/** What every entry keeps for its console input and its clock event (entry-budget.ts reserves the same). */
const boundaryReserveBytes =
  eventWireBytes({ kind: 'console-input', bytes: new Uint8Array(consoleInputPerEntryBytesMax) }) + eventWireBytes({ kind: 'clock', mtime: 0n });

function queuedEventsBytes(events: readonly MachineEvent[]): number {
  let bytes = 0;
  for (const event of events) bytes += eventWireBytes(event);
  return bytes;
}
