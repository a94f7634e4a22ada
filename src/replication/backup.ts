/**
 * The backup (rules P3–P8), as a sans-IO state machine.
 *
 * It joins with a hello, restores the primary's state, acknowledges each epoch entry on
 * receipt (P4) and executes it one epoch behind with the primary's values (P5, P6), its own
 * outputs suppressed (P3). When the primary fails it finishes the epochs it has (P7), wins
 * the arbiter, waits out the primary's lease, runs the failover epoch, settles the I/O left
 * in flight (P8), and hands its machine to a {@link PrimaryReplica} running alone.
 */
import type { Machine } from '../machine/board.js';
import { SnapshotError } from '../machine/snapshot.js';
import { assert } from '../machine/assert.js';
import { answeredByDevice, type DiskRequest, type EnvironmentPort, type MachineEvent, type MachineOutput } from '../machine/environment.js';
import { DivergenceError, type ReplicaEnvironment } from './environment.js';
import { diskReadBytes, diskReadOf, type EpochEntry, type Message, type ReplicaIdentity } from './messages.js';
import { PrimaryReplica, type Reboot, type SubmittedRequest } from './primary.js';
import { compareDigests, describeMismatch, scrubWindow, StateDigester, type LocalDigest, type MachineDigest } from '../machine/state-digest.js';
import {
  backupQueueBytesLimit, backupQueueBytesMax, backupQueueEpochsLimit, backupQueueEpochsMax, describeGuestEnd, digestDue, epochMergeMax, generationsSkippedMax, leaseMarginMs, nextEpochStart, validateOptions,
  type ArbiterRecord, type ReplicaEnd, type ReplicaIo, type ReplicaStatus, type ReplicationOptions, type StepResult,
} from './replica.js';

export type BackupRole = 'joining' | 'following' | 'failing-over' | 'promoted' | 'finished';

/** The most chunks a machine's state can take (RAM at most 2 GiB, 1 MiB chunks, room for devices). */
const stateChunksMax = 2048 + 64;
/** How much each epoch's replay time moves the smoothed replay rate (an exponential average). */
const replayRateSmoothing = 0.05;
/** Own digests kept while the primary's for the same epoch is on its way (it follows the entry at once). */
const ownDigestsMax = 8;

/** A disk request's key: request ids are counted per disk. */
function requestKey(slot: number, requestId: number): string {
  return `${slot}:${requestId}`;
}


export interface FailoverReport {
  /** When the primary was declared failed, and why. */
  readonly detectedAtMs: number;
  readonly reason: string;
  /** How long the primary had been silent when it was declared failed. */
  readonly silenceMs: number;
  /** When the failover epoch started (the new primary's first instruction). */
  readonly liveAtMs: number;
  /**
   * Where the time from detection to the end of the failover went, in ms: replaying the epochs
   * received (`epochsCaughtUp` of them), the arbiter, waiting out the old primary's lease (none
   * when its process was known to have ended), the failover epoch, the I/O re-issued (P8).
   */
  readonly phasesMs: { readonly catchUp: number; readonly arbiter: number; readonly lease: number; readonly failoverEpoch: number; readonly reissue: number };
  readonly epochsCaughtUp: number;
  /** The old primary's process was known to have ended (`onPrimaryExited`): no lease to wait out. */
  readonly primaryExited: boolean;
  readonly epoch: number;
  readonly pendingRequests: number;
  /**
   * Of those, requests the machine had in flight that this backup never saw issued (issued
   * before it joined at `joinedAtEpoch`), completed as uncertain. None when it joined at 0.
   */
  readonly requestsNeverSeen: number;
  readonly joinedAtEpoch: number;
  readonly consoleBytesRepeated: number;
  /** Network frames sent again: the old primary may or may not have sent them. */
  readonly framesRepeated: number;
}

export class BackupReplica {
  private role: BackupRole = 'joining';
  private machine: Machine | undefined;
  private generation = 0;
  private clusterIdentifier = '';
  /** The primary this backup follows (its replicaId, from the welcome): the holder it looks for in the arbiter's records. */
  private primaryId = '';
  /** Entries received and not yet executed, with their size on the wire; bounded (replica.ts). */
  /** Entries received, not yet executed; `diskData` is the data of their reads answered at once, in order. */
  private readonly queue: { entry: EpochEntry; diskData: readonly Uint8Array[]; wireBytes: number; receivedAtMs: number }[] = [];
  private queueBytes = 0;
  private receivedThrough = 0;
  /** What this backup has acknowledged: it lags `receivedThrough` while the queue is full. */
  private acknowledgedThrough = 0;
  private executedThrough = 0;
  /** The epoch of the state this backup joined with. */
  private joinedAtEpoch = 0;
  private releasedThrough = 0;
  private state: { epoch: number; total: number; chunks: Uint8Array[] } | undefined;
  /** A live copy's machine, its RAM filled page by page until the state completes it; the bytes received for it. */
  private copyMachine: Machine | undefined;
  private copiedBytes = 0;
  /** Milliseconds this backup takes to replay an epoch, smoothed over recent epochs. */
  private replayMsPerEpoch = 0;
  private lastHeardMs: number;
  private lastAckSentMs = -Infinity;
  /** Entries arrived that the acknowledgement at the end of their batch covers (`onMessages`). */
  private entriesToAcknowledge = false;
  /** The primary said goodbye: the guest finished after the last epoch it sent. */
  private primaryFinished = false;
  private disconnected: string | undefined;
  private failover:
    | { detectedAtMs: number; reason: string; silenceMs: number; arbiterWon: boolean; epochsCaughtUp: number; caughtUpAtMs: number | undefined; arbiterDoneAtMs: number | undefined }
    | undefined;
  /** The primary's process has ended, as its supervisor saw (`onPrimaryExited`). */
  private primaryExited = false;
  /**
   * Disk requests our machine issued with no completion in the log yet (P8), by slot and request
   * id, with their place in the order issued.
   */
  private readonly inFlight = new Map<string, { request: DiskRequest; issued: number }>();
  /**
   * Writes of epochs whose release by the primary is not known yet, in the order issued: the
   * guest may have had their completion before they reached the disk (the primary completes
   * writes early, `PrimaryReplica.completeWritesEarly`, and a write-back disk answers them
   * itself, `DiskConfig.writeBack`), so a failover writes them again.
   */
  private unreleasedWrites: { epoch: number; request: DiskRequest; issued: number }[] = [];
  /** Disk requests issued so far by this replica's machines (their order, across reboots). */
  private requestsIssued = 0;
  /** Console bytes of epochs whose release by the primary is not known yet. */
  private unreleasedConsole: { epoch: number; bytes: Uint8Array }[] = [];
  /** Network frames of epochs whose release by the primary is not known yet. */
  private unreleasedFrames: { epoch: number; slot: number; frame: Uint8Array }[] = [];
  private promotedPrimary: PrimaryReplica | undefined;
  private finishedWith: { end: ReplicaEnd; reason: string } | undefined;
  private logBytesReceived = 0;
  private messagesSent = 0;
  /** Keeps this machine's state digest, when digests are on; and digests awaiting their counterpart, by epoch. */
  private digester: StateDigester | undefined;
  private readonly ownDigests = new Map<number, LocalDigest>();
  /** A digest has been compared since digests (re)started here. */
  private comparedSinceStart = false;
  private readonly primaryDigests = new Map<number, { digest: MachineDigest; wireBytes: number }>();
  /** Epochs received that take a digest (`digestDue`), with its sequence, until compared. */
  private readonly digestsDue = new Map<number, number>();
  /** Where the epoch after the last one received starts counting: with its end, whether a digest is due. */
  private nextStartRetired = 0;
  private readonly digests = { taken: 0, ms: 0 };
  report: FailoverReport | undefined;

  constructor(
    /** A machine of the agreed configuration, into which the primary's state is restored. */
    private readonly createMachine: () => Machine,
    private readonly environment: ReplicaEnvironment,
    /** The clock this replica uses once it is live. */
    private readonly liveEnvironment: EnvironmentPort,
    private readonly io: ReplicaIo,
    private readonly options: ReplicationOptions,
    private readonly identity: ReplicaIdentity,
    private readonly reboot: Reboot,
  ) {
    validateOptions(options);
    this.lastHeardMs = io.nowMs();
    // Until promoted, this replica answers no disk read at once (its failover epoch neither:
    // the writes it re-issues are not on the disk yet).
    environment.answerDiskReads(undefined);
  }

  get currentRole(): BackupRole {
    return this.role;
  }

  /** After promotion: the primary this backup became. */
  get promoted(): PrimaryReplica | undefined {
    return this.promotedPrimary;
  }

  get clusterId(): string {
    return this.clusterIdentifier;
  }

  /** The role as `status()` reports it (cheap: the run loop asks after every step). */
  get statusRole(): ReplicaStatus['role'] {
    if (this.promotedPrimary !== undefined) return this.promotedPrimary.statusRole;
    return this.role === 'joining' ? 'joining' : this.role === 'finished' ? 'halted' : 'backup';
  }

  /** Promoted: the last divergence its backup reported (a backup itself reports none: it stops). */
  get lastDivergence(): { readonly epoch: number; readonly reason: string } | undefined {
    return this.promotedPrimary?.lastDivergence;
  }

  /** Promoted: its outputs wait for acknowledgements (see PrimaryReplica.holdsOutputs). */
  get holdsOutputs(): boolean {
    return this.promotedPrimary?.holdsOutputs ?? false;
  }

  get currentMachine(): Machine | undefined {
    return this.promotedPrimary?.currentMachine ?? this.machine;
  }

  /** The first message on a new connection. */
  sayHello(): void {
    // The wait for an answer starts now (connecting may have taken a while).
    this.lastHeardMs = this.io.nowMs();
    this.sendToPrimary({ type: 'hello', identity: this.identity });
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  onMessage(message: Message, wireBytes = 0): void {
    this.receive(message, wireBytes);
    this.acknowledgeReceived();
  }

  /**
   * Messages that arrived together (one read from the socket): one acknowledgement covers the
   * entries among them (an acknowledgement says "everything through E"), so the primary reads
   * one instead of one per entry.
   */
  onMessages(messages: readonly { readonly message: Message; readonly wireBytes: number }[]): void {
    for (const { message, wireBytes } of messages) this.receive(message, wireBytes);
    this.acknowledgeReceived();
  }

  private acknowledgeReceived(): void {
    if (!this.entriesToAcknowledge) return;
    this.entriesToAcknowledge = false;
    if (this.role === 'following') this.acknowledge();
  }

  private receive(message: Message, wireBytes: number): void {
    if (this.role === 'promoted' || this.role === 'finished') return; // the old primary, still talking
    this.lastHeardMs = this.io.nowMs();
    switch (message.type) {
      case 'welcome':
        // The generation decides this backup's arbiter claim: only the join's one welcome sets it.
        if (this.role === 'following') {
          this.diverge(this.receivedThrough, 'the primary sent a second welcome');
          return;
        }
        if (this.role !== 'joining') return;
        if (this.state !== undefined) {
          this.finish({ kind: 'no-state' }, 'could not join the primary: it sent a second welcome during the state transfer');
          return;
        }
        this.generation = message.generation;
        this.clusterIdentifier = message.clusterId;
        this.primaryId = message.primaryId;
        return;
      case 'reject':
        this.finish({ kind: 'refused', code: message.code }, `the primary refused this backup: ${message.reason}`);
        return;
      case 'state':
        this.logBytesReceived += wireBytes;
        this.onState(message.epoch, message.index, message.total, message.bytes);
        return;
      case 'pages':
        this.logBytesReceived += wireBytes;
        this.onPages(message.pages, wireBytes);
        return;
      case 'epoch':
        this.logBytesReceived += wireBytes;
        this.onEntry(message.entry, wireBytes);
        return;
      case 'heartbeat':
        this.noteReleased(message.releasedThrough);
        this.sendAck(message.sequence);
        return;
      case 'goodbye':
        this.primaryFinished = true;
        return;
      case 'digest':
        this.logBytesReceived += wireBytes;
        this.onDigest(message.epoch, message.digest, wireBytes);
        return;
      default:
        return; // hello and ack mean nothing to a backup
    }
  }

  /** Part of a live copy: RAM pages into the machine the state will complete. */
  private onPages(pages: readonly { page: number; bytes: Uint8Array }[], wireBytes: number): void {
    if (this.role === 'following') {
      this.diverge(this.receivedThrough, 'the primary sent RAM pages after the join');
      return;
    }
    if (this.role !== 'joining') return;
    if (this.generation === 0 || this.state !== undefined) {
      this.finish({ kind: 'no-state' }, `could not join the primary: it sent RAM pages ${this.generation === 0 ? 'before its welcome' : 'during the final state'}`);
      return;
    }
    const machine = (this.copyMachine ??= this.createMachine());
    for (const { page, bytes } of pages) {
      if (!machine.ram.setPageFromCopy(page, bytes)) {
        this.finish({ kind: 'no-state' }, `could not join the primary: it sent RAM page ${page}, which this machine does not have`);
        return;
      }
    }
    this.copiedBytes += wireBytes;
    this.sendToPrimary({ type: 'copied', bytes: this.copiedBytes });
  }

  private onState(epoch: number, index: number, total: number, bytes: Uint8Array): void {
    if (this.role === 'following') {
      this.diverge(this.receivedThrough, `the primary sent state chunk ${index} of ${total} after the join`);
      return;
    }
    if (this.role !== 'joining') return;
    if (total > stateChunksMax) {
      this.finish({ kind: 'no-state' }, `the primary announced a state of ${total} chunks, more than any machine needs`);
      return;
    }
    if (this.state === undefined || this.state.epoch !== epoch || this.state.total !== total) this.state = { epoch, total, chunks: [] };
    if (index !== this.state.chunks.length) {
      this.finish({ kind: 'no-state' }, `state chunk ${index} arrived out of order (expected ${this.state.chunks.length})`);
      return;
    }
    this.state.chunks.push(bytes);
    if (this.state.chunks.length < total) return;
    // After a live copy, the state completes the RAM it filled.
    const machine = this.copyMachine ?? this.createMachine();
    this.copyMachine = undefined;
    try {
      machine.restore(Buffer.concat(this.state.chunks));
    } catch (error) {
      if (!(error instanceof SnapshotError)) throw error;
      this.finish({ kind: 'no-state' }, `the primary's state does not load here: ${error.message}`);
      return;
    }
    this.machine = machine;
    this.startDigests(machine);
    // Loading the state kept this replica busy, not the primary silent: count from now.
    this.lastHeardMs = this.io.nowMs();
    this.receivedThrough = epoch;
    this.nextStartRetired = nextEpochStart(machine.power !== undefined, machine.retiredInstructions);
    this.acknowledgedThrough = epoch;
    this.executedThrough = epoch;
    this.releasedThrough = epoch;
    this.state = undefined;
    this.joinedAtEpoch = epoch;
    this.role = 'following';
    this.sendAck(0);
    this.io.log(`following from epoch ${epoch}`);
  }

  /**
   * Digests start where the primary's state was taken (or the machine rebooted): hash it all,
   * and arm write tracking at this boundary, as the primary does at the same one.
   */
  private startDigests(machine: Machine): void {
    this.digester = this.options.digestEveryEpochs > 0 ? new StateDigester(machine) : undefined;
    this.digester?.take();
    this.ownDigests.clear();
    for (const epoch of this.digestsDue.keys()) if (epoch <= this.executedThrough) this.digestsDue.delete(epoch);
    this.comparedSinceStart = false;
  }

  private onDigest(epoch: number, digest: MachineDigest, wireBytes: number): void {
    if (this.role !== 'following' || this.digester === undefined) return;
    // Due: at a digest epoch this backup has received and not yet compared (a correct primary
    // sends each once, right after its entry; none for epochs before this backup started).
    const compared = epoch <= this.executedThrough && !this.ownDigests.has(epoch);
    if (compared || epoch > this.receivedThrough || !this.digestsDue.has(epoch) || this.primaryDigests.has(epoch)) {
      this.diverge(epoch, `the primary sent a digest for epoch ${epoch}, which is not due (received through epoch ${this.receivedThrough})`);
      return;
    }
    this.primaryDigests.set(epoch, { digest, wireBytes });
    this.queueBytes += wireBytes; // held with the entries, and bounded with them
    this.compareAt(epoch);
  }

  /** Compares this machine's digest with the primary's for `epoch` once both are here. */
  private compareAt(epoch: number): void {
    const own = this.ownDigests.get(epoch);
    const theirs = this.primaryDigests.get(epoch);
    if (own === undefined || theirs === undefined) return;
    this.ownDigests.delete(epoch);
    this.primaryDigests.delete(epoch);
    this.digestsDue.delete(epoch);
    this.queueBytes -= theirs.wireBytes;
    // The first digest after the state loaded: the primary's previous one may be older (it keeps
    // its digests going for other backups across this one's join).
    const mismatch = compareDigests(own, theirs.digest, !this.comparedSinceStart);
    this.comparedSinceStart = true;
    if (mismatch !== undefined) this.diverge(epoch, `the state after epoch ${epoch} differs: ${describeMismatch(mismatch, { mine: 'backup', theirs: 'primary' })}`);
  }

  /**
   * This backup's execution has left the primary's: tell it (it is not protected any more), and
   * stop. Unless the primary has dropped this backup already: a backup it dropped may still
   * replay entries sent before, and read the shared disk for them after the primary went on
   * without it and released writes those reads should not see. Its state then differs,
   * harmlessly, for it is fenced (the primary took the next generation without it, before it
   * released anything more): that is said, not reported as a divergence of the pair.
   */
  private diverge(epoch: number, reason: string): void {
    const fence = this.droppedIn();
    if (fence !== undefined) {
      const line =
        `dropped by the primary: generation ${fence.generation} is ${fence.holder.replica}'s, which keeps ${fence.holder.members.length === 0 ? 'no backup' : fence.holder.members.join(', ')}; ` +
        `this backup's state then left the primary's at epoch ${epoch} (${reason}), as a dropped backup's may`;
      this.io.log(line);
      this.finish({ kind: 'not-live' }, line);
      return;
    }
    this.sendToPrimary({ type: 'divergence', epoch, reason });
    this.io.log(`divergence at epoch ${epoch}: ${reason}`);
    this.finish({ kind: 'divergence' }, `divergence at epoch ${epoch}: ${reason}`);
  }

  private onEntry(received: EpochEntry, wireBytes: number): void {
    if (this.role !== 'following') return;
    if (received.epoch !== this.receivedThrough + 1) {
      this.diverge(this.receivedThrough + 1, `log gap: epoch ${received.epoch} arrived after epoch ${this.receivedThrough}`);
      return;
    }
    const entry = this.readShared(received);
    if (entry === undefined) return;
    const diskData = this.readAtOnceData(entry);
    if (diskData === undefined) return;
    // What this backup holds for the entry, as the primary counts it: with the data of its
    // shared reads and of its reads answered at once.
    const heldBytes = wireBytes + (entry.sharedReads ?? []).reduce((sum, read) => sum + read.lengthBytes, 0) + diskReadBytes(entry.reads);
    this.queue.push({ entry, diskData, wireBytes: heldBytes, receivedAtMs: this.io.nowMs() });
    this.queueBytes += heldBytes;
    this.receivedThrough = entry.epoch;
    const sequence = digestDue(this.options, this.nextStartRetired, entry.endRetired);
    if (sequence !== undefined && this.digester !== undefined) this.digestsDue.set(entry.epoch, sequence);
    this.nextStartRetired = nextEpochStart(entry.stop === 'halt', entry.endRetired);
    if (this.queue.length > backupQueueEpochsLimit || this.queueBytes > backupQueueBytesLimit) {
      // A primary that keeps its limits cannot get here: it has ignored this backup's deferred acknowledgements.
      this.diverge(entry.epoch, `the primary sent ${this.queue.length} entries (${this.queueBytes} bytes) beyond what this backup acknowledged`);
      return;
    }
    this.entriesToAcknowledge = true; // once the messages that came with it are in (`onMessages`)
  }

  /**
   * The entry's shared reads (messages.ts, `SharedRead`): their data, read from the shared disk
   * now, before this backup acknowledges the entry (no write that could change those sectors
   * reaches the disk before then). Undefined if a read failed: this backup cannot follow.
   */
  private readShared(entry: EpochEntry): EpochEntry | undefined {
    if (entry.sharedReads === undefined) return entry;
    const events = [...entry.events];
    for (const read of entry.sharedReads) {
      const completion = events[read.event]!;
      assert(completion.kind === 'disk-completion', () => `a shared read of a ${completion.kind} event`); // the decoder refuses those
      const data = this.io.readSharedDisk(completion.slot, read.offsetBytes, read.lengthBytes);
      if (!(data instanceof Uint8Array)) {
        this.diverge(entry.epoch, `cannot read the ${read.lengthBytes} bytes at ${read.offsetBytes} of the shared disk on virtio slot ${completion.slot} that the primary read: ${data.error}`);
        return undefined;
      }
      events[read.event] = { ...completion, data };
    }
    return { ...entry, events };
  }

  /**
   * The data of the entry's disk reads answered at once (messages.ts, 'disk-read'), read from
   * the shared disk now, before this backup acknowledges the entry, as for shared reads.
   * Undefined if a read failed: this backup cannot follow.
   */
  private readAtOnceData(entry: EpochEntry): Uint8Array[] | undefined {
    const data: Uint8Array[] = [];
    for (const reading of entry.reads) {
      if (reading.kind !== 'disk-read') continue;
      const read = diskReadOf(reading.value);
      if (!read.answered) continue;
      const bytes = this.io.readSharedDisk(read.slot, read.offsetBytes, read.lengthBytes);
      if (!(bytes instanceof Uint8Array)) {
        this.diverge(entry.epoch, `cannot read the ${read.lengthBytes} bytes at ${read.offsetBytes} of the shared disk on virtio slot ${read.slot} that the primary read at once: ${bytes.error}`);
        return undefined;
      }
      data.push(bytes);
    }
    return data;
  }

  /** The queue is full: acknowledgements wait until it drains (the primary pauses meanwhile). */
  private get queueFull(): boolean {
    return this.queue.length >= backupQueueEpochsMax || this.queueBytes >= backupQueueBytesMax;
  }

  /** P4: acknowledges everything received, unless the queue is full. */
  private acknowledge(): void {
    if (this.queueFull || this.acknowledgedThrough === this.receivedThrough) return;
    this.io.crashPoint('backup:before-ack');
    this.acknowledgedThrough = this.receivedThrough;
    this.sendAck(0);
    this.io.crashPoint('backup:after-ack');
  }

  private sendToPrimary(message: Message): void {
    this.messagesSent++;
    this.io.send(message);
  }

  private sendAck(heartbeat: number): void {
    if (this.role !== 'following') return;
    this.lastAckSentMs = this.io.nowMs();
    this.sendToPrimary({ type: 'ack', epoch: this.acknowledgedThrough, heartbeat, catchUpMs: Math.round(this.queue.length * this.replayMsPerEpoch) });
  }

  /**
   * Bytes of a frame arrived: the primary is alive. A large frame (a state chunk, an entry
   * with disk data) on a slow link takes a while to arrive whole; it must not be taken for silence.
   */
  onActivity(): void {
    if (this.role === 'joining' || this.role === 'following') this.lastHeardMs = this.io.nowMs();
  }

  onDisconnect(reason: string): void {
    if (this.disconnected === undefined) this.disconnected = reason;
  }

  /**
   * The primary's process has ended: its supervisor (the `pair` process, its parent) saw it
   * exit. A process that has ended releases nothing more, so this backup need not wait out its
   * lease: it fails over at once (the arbiter still decides who goes live).
   */
  onPrimaryExited(): void {
    if (this.role !== 'following' && this.role !== 'failing-over') return;
    this.primaryExited = true;
    this.onDisconnect("the primary's process ended");
  }

  onDiskCompletion(event: MachineEvent): void {
    // Only a live replica performs I/O, so only the promoted primary can get completions.
    this.promotedPrimary?.onDiskCompletion(event);
  }

  // -------------------------------------------------------------------------------------------
  // The step

  step(): StepResult {
    if (this.promotedPrimary !== undefined) return this.promotedPrimary.step();
    if (this.finishedWith !== undefined) return { kind: 'finished', ...this.finishedWith };
    const now = this.io.nowMs();
    if (this.role === 'joining') {
      if (this.disconnected !== undefined) return this.finish({ kind: 'no-state' }, `could not join the primary: ${this.disconnected}`);
      const limitMs = this.options.joinTimeoutMs;
      if (now - this.lastHeardMs > limitMs) {
        return this.finish({ kind: 'no-state' }, `could not join the primary: nothing heard for ${Math.round(now - this.lastHeardMs)} ms`);
      }
      return { kind: 'blocked', untilMs: this.lastHeardMs + limitMs + 1 };
    }
    if (this.role === 'following') {
      if (this.queue.length > 0) {
        this.executeNext();
        return { kind: 'progress' };
      }
      const machine = this.machine!;
      if (this.primaryFinished && machine.power !== undefined && machine.power.kind !== 'reset') {
        return this.finish({ kind: 'guest', guest: machine.power }, describeGuestEnd(machine.power));
      }
      const silence = now - this.lastHeardMs;
      if (this.disconnected === undefined && silence <= this.options.failureTimeoutMs) {
        return { kind: 'blocked', untilMs: this.lastHeardMs + this.options.failureTimeoutMs + 1 };
      }
      this.role = 'failing-over';
      const reason = this.disconnected !== undefined ? `connection closed: ${this.disconnected}` : `nothing heard for ${Math.round(silence)} ms`;
      this.failover = { detectedAtMs: now, reason, silenceMs: silence, arbiterWon: false, epochsCaughtUp: 0, caughtUpAtMs: undefined, arbiterDoneAtMs: undefined };
      this.io.log(`primary failed (${reason}) after epoch ${this.executedThrough}`);
    }
    return this.continueFailover(now);
  }

  /** P5/P6: executes the next logged epoch exactly as the primary did. */
  private executeNext(): void {
    const { entry, diskData, wireBytes } = this.queue.shift()!;
    this.queueBytes -= wireBytes;
    if (this.role === 'following') this.acknowledge(); // room again: acknowledgements deferred while full go out
    let machine = this.machine!;
    try {
      if (machine.power?.kind === 'reset') {
        machine = this.reboot();
        this.machine = machine;
        this.inFlight.clear();
        this.startDigests(machine);
      }
      const budget = entry.endRetired - machine.retiredInstructions;
      if (budget < 0) throw new DivergenceError(`the epoch ends at instruction ${entry.endRetired}, but this machine is already at ${machine.retiredInstructions}`);
      if (budget > this.options.epochInstructions * epochMergeMax) {
        throw new DivergenceError(`the entry claims ${budget} instructions, more than ${epochMergeMax} epochs of the agreed ${this.options.epochInstructions}`);
      }
      this.environment.beginReplay(entry.reads, diskData);
      const startedMs = this.io.nowMs();
      const result = machine.run(budget);
      // The replay rate, smoothed: with the queue's length, the catch-up time the acks report.
      this.replayMsPerEpoch += (this.io.nowMs() - startedMs - this.replayMsPerEpoch) * replayRateSmoothing;
      this.environment.endReplay();
      const stop = machine.power !== undefined ? 'halt' : result.reason;
      if (machine.retiredInstructions !== entry.endRetired || stop !== entry.stop) {
        throw new DivergenceError(
          `the primary stopped at instruction ${entry.endRetired} (${entry.stop}), this machine at ${machine.retiredInstructions} (${stop})`,
        );
      }
    } catch (error) {
      if (!(error instanceof DivergenceError)) throw error;
      this.diverge(entry.epoch, error.message);
      return;
    }
    this.track(entry.epoch, machine.takeOutputs());
    for (const read of entry.sharedReads ?? []) {
      // A shared read names the sectors the primary read: those of the read this machine issued.
      const completion = entry.events[read.event]!;
      const request = completion.kind === 'disk-completion' ? this.inFlight.get(requestKey(completion.slot, completion.requestId))?.request : undefined;
      if (request?.op !== 'read' || request.offsetBytes !== read.offsetBytes || request.lengthBytes !== read.lengthBytes) {
        this.diverge(entry.epoch, `the primary's shared read of ${read.lengthBytes} bytes at ${read.offsetBytes} is not a read this machine has in flight`);
        return;
      }
    }
    for (const event of entry.events) {
      try {
        machine.applyEvent(event);
      } catch (error) {
        // An event the primary's machine could not have produced (more console bytes than the
        // UART takes, a completion for a disk that does not exist): refuse it, do not crash.
        if (!(error instanceof RangeError)) throw error;
        this.diverge(entry.epoch, `the primary's ${event.kind} event does not apply here (${error.message})`);
        return;
      }
      if (event.kind === 'disk-completion') this.inFlight.delete(requestKey(event.slot, event.requestId));
      else if (event.kind === 'clock') this.environment.noteClock(event.mtime);
    }
    this.executedThrough = entry.epoch;
    this.noteReleased(entry.releasedThrough);
    this.io.epochDone(entry.epoch, machine);
    const sequence = this.digestsDue.get(entry.epoch);
    if (this.digester !== undefined && sequence !== undefined && this.role === 'following') {
      const startedMs = this.io.nowMs();
      this.ownDigests.set(entry.epoch, this.digester.take(scrubWindow(sequence, machine.ram.pages)));
      this.digests.taken++;
      this.digests.ms += this.io.nowMs() - startedMs;
      // The primary's digest follows its entry at once: own ones wait only briefly.
      for (const epoch of this.ownDigests.keys()) {
        if (this.ownDigests.size <= ownDigestsMax) break;
        this.ownDigests.delete(epoch);
        this.digestsDue.delete(epoch);
      }
      this.compareAt(entry.epoch);
    }
  }

  /** The primary says it has released the outputs of every epoch up to `epoch`. */
  private noteReleased(epoch: number): void {
    if (epoch > this.releasedThrough) this.releasedThrough = epoch;
    if (this.unreleasedConsole.length > 0 && this.unreleasedConsole[0]!.epoch <= this.releasedThrough) {
      this.unreleasedConsole = this.unreleasedConsole.filter((chunk) => chunk.epoch > this.releasedThrough);
    }
    if (this.unreleasedFrames.length > 0 && this.unreleasedFrames[0]!.epoch <= this.releasedThrough) {
      this.unreleasedFrames = this.unreleasedFrames.filter((sent) => sent.epoch > this.releasedThrough);
    }
    if (this.unreleasedWrites.length > 0 && this.unreleasedWrites[0]!.epoch <= this.releasedThrough) {
      this.unreleasedWrites = this.unreleasedWrites.filter((write) => write.epoch > this.releasedThrough);
    }
  }

  /** P3: the backup's outputs go nowhere, but it remembers what it would need after a failover. */
  private track(epoch: number, outputs: readonly MachineOutput[]): void {
    for (const output of outputs) {
      if (output.kind === 'disk-request') {
        const issued = this.requestsIssued++;
        const request = output.request;
        // A write the write-back disk answered itself has no completion to come: never in flight.
        if (!answeredByDevice(request)) this.inFlight.set(requestKey(request.slot, request.requestId), { request, issued });
        if (request.op === 'write' && this.options.pendingIo === 'reissue') this.unreleasedWrites.push({ epoch, request, issued });
      }
      else if (output.kind === 'net-transmit') this.unreleasedFrames.push({ epoch, slot: output.slot, frame: output.frame });
      else this.unreleasedConsole.push({ epoch, bytes: output.bytes });
    }
  }

  private continueFailover(now: number): StepResult {
    const failover = this.failover!;
    // P7: first the epochs already received (none arrive any more: the primary is failed).
    if (this.queue.length > 0) {
      this.executeNext();
      failover.epochsCaughtUp++;
      return { kind: 'progress' };
    }
    if (this.finishedWith !== undefined) return { kind: 'finished', ...this.finishedWith };
    failover.caughtUpAtMs ??= now;
    if (!failover.arbiterWon) {
      this.io.crashPoint('backup:before-go-live');
      const refusal = this.claimGeneration();
      if (refusal !== undefined) return this.finish({ kind: 'not-live' }, `the arbiter did not let this replica go live: ${refusal}`);
      failover.arbiterWon = true;
      failover.arbiterDoneAtMs = this.io.nowMs();
    }
    // The old primary may release outputs until its lease ends; only then may this one start
    // (at once if its process is known to have ended).
    const liveAfter = this.primaryExited ? -Infinity : this.lastAckSentMs + this.options.leaseMs + leaseMarginMs;
    if (now < liveAfter) return { kind: 'blocked', untilMs: liveAfter };
    this.promote(now);
    return { kind: 'progress' };
  }

  /**
   * Takes the first generation after this backup's own from the arbiter. One already taken by
   * the primary it followed, naming this backup among those it kept, is skipped (the primary
   * dropped another backup then, and this one may not have heard); any other holder means
   * another replica is live, or this backup was dropped (fenced): it must not go live, as it
   * may lack epochs whose outputs were released since. Sets `generation` to the one before the
   * generation won; returns why not, if not.
   */
  private claimGeneration(): string | undefined {
    for (let skipped = 0; skipped <= generationsSkippedMax; skipped++) {
      const generation = this.generation + 1;
      const answer = this.io.tryGoLive(generation, []);
      if (answer.won) return undefined;
      const holder = answer.holder;
      if (holder === undefined) return `generation ${generation} is taken (or the arbiter could not be reached)`;
      if (!this.keptBy(holder)) {
        return holder.replica !== this.primaryId ? `generation ${generation} is held by ${holder.replica}, which is live` : `the primary dropped this backup in generation ${generation}`;
      }
      this.generation = generation;
    }
    return `the primary took more than ${generationsSkippedMax} generations after this backup's`;
  }

  /**
   * The generation after this backup's own in which its primary dropped it, read from the
   * arbiter (as claimGeneration reads it, without taking one), or undefined if it was not
   * dropped, or the arbiter cannot say.
   */
  private droppedIn(): { readonly generation: number; readonly holder: ArbiterRecord } | undefined {
    if (this.io.arbiterHolder === undefined || this.primaryId === '') return undefined;
    for (let generation = this.generation + 1; generation <= this.generation + 1 + generationsSkippedMax; generation++) {
      const holder = this.io.arbiterHolder(generation);
      if (holder === undefined) return undefined;
      if (!this.keptBy(holder)) return { generation, holder };
    }
    return undefined;
  }

  /** Whether a generation's record is the primary this backup followed, naming it among the backups it kept. */
  private keptBy(holder: ArbiterRecord): boolean {
    return holder.replica === this.primaryId && holder.members.includes(this.identity.replicaId);
  }

  /** The failover epoch, P8, and the hand-over to a primary running alone. */
  private promote(stepStartMs: number): void {
    const failover = this.failover!;
    const now = Math.max(stepStartMs, this.io.nowMs());
    let machine = this.machine!;
    if (machine.power?.kind === 'reset') {
      machine = this.reboot();
      this.machine = machine;
      this.inFlight.clear();
    }
    this.environment.goLive(this.liveEnvironment, machine.retiredInstructions);
    const epoch = this.executedThrough + 1;
    // The failover epoch: the backup's own execution, with no events delivered (P7).
    this.environment.beginRecording();
    this.io.crashPoint('backup:failover-epoch');
    if (machine.power === undefined) machine.run(machine.isIdle ? 0 : this.options.epochInstructions);
    this.environment.takeRecorded();
    const failoverEpochDoneMs = this.io.nowMs();
    const failoverOutputs = machine.takeOutputs();
    // P8: the requests in flight, and under `reissue` the writes not known released whose
    // completion the guest has had already (written again; the disk's completion is not
    // delivered twice), in the order the guest issued them, so that the last write to a
    // sector stays the last.
    const completedEarly = this.unreleasedWrites.filter((write) => !this.inFlight.has(requestKey(write.request.slot, write.request.requestId)));
    const toSubmit = [
      ...[...this.inFlight.values()].map(({ request, issued }) => ({ request, issued, early: false })),
      ...completedEarly.map(({ request, issued }) => ({ request, issued, early: true })),
    ].sort((a, b) => a.issued - b.issued);
    const pending = toSubmit.filter((request) => !request.early).map(({ request }) => request);
    this.unreleasedWrites = [];
    // Repeats, never losses: console bytes the old primary may not have printed come first.
    let repeated = 0;
    for (const chunk of this.unreleasedConsole) {
      this.io.consoleWrite(chunk.bytes, chunk.epoch);
      repeated += chunk.bytes.length;
    }
    this.unreleasedConsole = [];
    // Frames too: TCP and the like take a duplicate for a retransmission; a lost frame of an
    // acknowledged epoch would be a loss the guest cannot see.
    for (const sent of this.unreleasedFrames) this.io.networkSend(sent.slot, sent.frame, sent.epoch);
    const framesRepeated = this.unreleasedFrames.length;
    this.unreleasedFrames = [];
    // P8: the I/O the old primary may or may not have done.
    const submitted: SubmittedRequest[] = [];
    if (this.options.pendingIo === 'reissue') {
      for (const { request, early } of toSubmit) {
        submitted.push({ slot: request.slot, requestId: request.requestId, op: request.op, early });
        this.io.diskSubmit(request, epoch);
      }
    } else {
      for (const request of pending) machine.applyEvent({ kind: 'disk-completion', slot: request.slot, requestId: request.requestId, status: 'io-error' });
    }
    this.inFlight.clear();
    // Requests the machine has in flight that this backup never saw issued: the guest issued
    // them before this backup joined, and their completions were still to come in the log. Only
    // the old primary knew them: they complete as uncertain (P8, IO2), and the driver retries.
    // (The failover epoch's own requests are known too: they are submitted just below.)
    const known = new Set(pending.map((request) => `${request.slot}:${request.requestId}`));
    for (const output of failoverOutputs) if (output.kind === 'disk-request') known.add(`${output.request.slot}:${output.request.requestId}`);
    let unknown = 0;
    for (const [slot, disk] of machine.disks) {
      for (const requestId of disk.inFlightRequestIds) {
        if (known.has(`${slot}:${requestId}`)) continue;
        machine.applyEvent({ kind: 'disk-completion', slot, requestId, status: 'io-error' });
        unknown++;
      }
    }
    for (const output of failoverOutputs) {
      if (output.kind === 'console-output') this.io.consoleWrite(output.bytes, epoch);
      else if (output.kind === 'net-transmit') this.io.networkSend(output.slot, output.frame, epoch);
      else {
        const request = output.request;
        submitted.push({ slot: request.slot, requestId: request.requestId, op: request.op, early: answeredByDevice(request) });
        this.io.diskSubmit(request, epoch);
      }
    }
    const caughtUpAtMs = failover.caughtUpAtMs ?? now;
    const arbiterDoneAtMs = failover.arbiterDoneAtMs ?? caughtUpAtMs;
    this.report = {
      detectedAtMs: failover.detectedAtMs,
      reason: failover.reason,
      silenceMs: failover.silenceMs,
      liveAtMs: now,
      phasesMs: {
        catchUp: Math.max(0, caughtUpAtMs - failover.detectedAtMs),
        arbiter: Math.max(0, arbiterDoneAtMs - caughtUpAtMs),
        lease: Math.max(0, now - arbiterDoneAtMs),
        failoverEpoch: Math.max(0, failoverEpochDoneMs - now),
        reissue: Math.max(0, this.io.nowMs() - failoverEpochDoneMs),
      },
      epochsCaughtUp: failover.epochsCaughtUp,
      primaryExited: this.primaryExited,
      epoch,
      pendingRequests: pending.length + unknown,
      requestsNeverSeen: unknown,
      joinedAtEpoch: this.joinedAtEpoch,
      consoleBytesRepeated: repeated,
      framesRepeated,
    };
    this.role = 'promoted';
    this.promotedPrimary = new PrimaryReplica(machine, this.environment, this.io, this.options, this.identity, this.reboot, {
      epoch,
      generation: this.generation + 1,
      role: 'solo',
      clusterId: this.clusterIdentifier,
      releasedThrough: epoch,
      diskRequestsOutstanding: submitted,
      ...(this.digester === undefined ? {} : { digester: this.digester }),
    });
    this.io.log(
      `promoted: live from epoch ${epoch} (generation ${this.generation + 1}); ${pending.length} disk request(s) ${this.options.pendingIo === 'reissue' ? 're-issued' : 'completed as uncertain'}` +
        `${completedEarly.length > 0 ? `, ${completedEarly.length} write(s) completed early written again` : ''}` +
        `${unknown > 0 ? ` (and ${unknown} issued before this backup joined, completed as uncertain)` : ''}, ${repeated} console byte(s) and ${framesRepeated} network frame(s) repeated`,
    );
  }

  private finish(end: ReplicaEnd, reason: string): StepResult {
    this.role = 'finished';
    this.finishedWith = { end, reason };
    return { kind: 'finished', end, reason };
  }

  status(): ReplicaStatus {
    if (this.promotedPrimary !== undefined) {
      const status = this.promotedPrimary.status();
      return {
        ...status,
        logBytesReceived: this.logBytesReceived,
        lastFailover: this.report === undefined ? undefined : { atMs: this.report.detectedAtMs, tookMs: this.report.liveAtMs - this.report.detectedAtMs, detectionMs: this.report.silenceMs },
      };
    }
    return {
      role: this.statusRole,
      epoch: this.executedThrough,
      lagEpochs: this.receivedThrough - this.executedThrough,
      lagMs: this.queue.length === 0 ? 0 : Math.round(this.io.nowMs() - this.queue[0]!.receivedAtMs),
      logBytesSent: 0,
      logBytesReceived: this.logBytesReceived,
      messagesSent: this.messagesSent,
      outputsWaiting: 0,
      generation: this.generation,
      lastFailover: undefined,
      divergence: undefined,
      digests: { ...this.digests },
    };
  }
}
