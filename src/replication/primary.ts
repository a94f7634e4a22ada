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
import type { MachineEvent, MachineOutput } from '../machine/environment.js';
import type { ReplicaEnvironment } from './environment.js';
import { copyPagesPerMessageMax, epochEntryWireBytes, eventWireBytes, stateChunkBytes, type EpochEntry, type Message, type ReplicaIdentity } from './messages.js';
import { consoleInputPerEntryBytesMax, planEntry, runWithinReads } from './entry-budget.js';
import {
  describeGuestEnd, pendingEpochsMax, unacknowledgedLogBytesMax, validateOptions,
  type ReplicaEnd, type ReplicaIo, type ReplicaStatus, type ReplicationOptions, type StepResult,
} from './replica.js';
import { assert } from '../machine/assert.js';
import { scrubWindow, StateDigester } from '../machine/state-digest.js';
import { pageBytes, type RamWriteTracker } from '../machine/memory/ram.js';

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

export type PrimaryRole =
  /** No backup yet: nothing runs until one joins (an unprotected start is not the point). */
  | 'waiting'
  /** A backup follows: outputs wait for its acknowledgements. */
  | 'protected'
  /** The backup is gone and this replica won the arbiter: outputs go out at once. */
  | 'solo'
  /** This replica lost the arbiter (the backup went live) or the guest finished. */
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
}

/** Creates a fresh machine for a guest that asked for a reset (both replicas do the same). */
export type Reboot = () => Machine;


export class PrimaryReplica {
  private role: PrimaryRole;
  private epoch: number;
  private generation: number;
  private readonly pending: { epoch: number; outputs: MachineOutput[] }[] = [];
  private ackedThrough: number;
  private releasedThrough: number;
  private readonly entrySentAtMs = new Map<number, number>();
  /** Wire bytes of each entry sent and not yet acknowledged, and their sum. */
  private readonly entryBytesUnacknowledged = new Map<number, number>();
  private unacknowledgedLogBytes = 0;
  private readonly heartbeatSentAtMs = new Map<number, number>();
  private heartbeatSequence = 0;
  private leaseUntilMs = -Infinity;
  private lastSentMs = -Infinity;
  private lastHeardMs = -Infinity;
  /** A backup has joined but not acknowledged anything yet: it may still be loading the state. */
  private backupJoining = false;
  private completions: MachineEvent[];
  /** The backup's last estimate of its catch-up time, new since the slowing was last adjusted. */
  private backupCatchUpMs = 0;
  private catchUpReported = false;
  /** Lag control: the guest pauses this long after each epoch, until `slowUntilMs`. */
  private slowMs = 0;
  private slowUntilMs = -Infinity;
  /** A backup joining while the guest runs: its live copy. */
  private copy: LiveCopy | undefined;
  private finished: { end: ReplicaEnd; reason: string } | undefined;
  private logBytesSent = 0;
  private outputsReleased = 0;
  private readonly clusterId: string;
  /** Keeps the machine's state digest up to date, when digests are on. */
  private digester: StateDigester | undefined;
  /** The last backup found it had diverged: this primary is not protected, for this reason. */
  private divergence: { epoch: number; reason: string } | undefined;
  private readonly digests = { taken: 0, ms: 0 };

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
    this.role = start.role;
    this.epoch = start.epoch;
    this.generation = start.generation;
    this.ackedThrough = start.epoch;
    this.releasedThrough = start.releasedThrough ?? start.epoch;
    this.completions = [...(start.completions ?? [])];
    this.clusterId = start.clusterId;
    this.digester = this.startDigests(machine);
  }

  /** A digester for `machine`, if digests are on. */
  private startDigests(machine: Machine): StateDigester | undefined {
    return this.options.digestEveryEpochs > 0 ? new StateDigester(machine) : undefined;
  }

  get currentMachine(): Machine {
    return this.machine;
  }

  get currentRole(): PrimaryRole {
    return this.role;
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  /** A backup said hello: refuse it, or welcome it with the machine's state at this boundary. */
  onHello(identity: ReplicaIdentity): boolean {
    const mismatch = compareIdentity(this.identity, identity);
    if (mismatch !== undefined) {
      this.io.send({ type: 'reject', code: mismatch.code, reason: mismatch.reason });
      this.io.log(`refused a backup: ${mismatch.reason}`);
      return false;
    }
    // A primary that has finished (its guest ended, or it lost the arbiter) has nothing to
    // hand on: a backup that joined it would follow a machine nobody runs, and take silence for
    // a failure.
    if (this.finished !== undefined || this.role === 'protected' || this.role === 'halted' || this.copy !== undefined) {
      const reason = this.finished !== undefined || this.role === 'halted' ? 'this primary has stopped' : 'this primary already has a backup';
      this.io.send({ type: 'reject', code: 'busy', reason });
      return false;
    }
    this.sendMessage({ type: 'welcome', clusterId: this.clusterId, generation: this.generation, epoch: this.epoch });
    this.lastHeardMs = this.io.nowMs();
    if (this.role === 'solo' && this.options.liveCopy !== false) {
      // The guest runs: copy its RAM while it does (step), pausing only for the rest.
      const queue = this.machine.ram.nonZeroPages();
      this.copy = { tracker: this.machine.ram.trackWrites(), queue, sent: 0, round: 1, bytesSent: 0, bytesConfirmed: 0, pagesSent: 0, startedMs: this.io.nowMs() };
      this.machine.hart.flushTlb(); // the tracker armed every page: stores must take the slow path once
      this.io.log(`a backup is joining: copying ${queue.length} pages while the guest runs`);
      return true;
    }
    this.completeJoin(undefined);
    return true;
  }

  /**
   * The join's last part, at this boundary, the guest paused: the state (after a live copy,
   * only the pages written since they were sent, with the CPU and devices), then protection.
   */
  private completeJoin(copy: { copy: LiveCopy; pages: number[] } | undefined): void {
    // A new backup starts from the state at this boundary: outputs already waiting belong to
    // epochs it will never replay, so they go out now (this replica is the only live one).
    this.releaseAll();
    const pauseStartMs = this.io.nowMs();
    // Both sides start digests from this boundary: the backup hashes the state it loads and
    // re-arms write tracking; this side brings its hashes up to date and does the same. Both
    // start with empty TLBs, so that they empty them at the same instruction counts from here on.
    this.digester?.take();
    this.machine.hart.flushTlb();
    const snapshot = this.machine.save(copy?.pages);
    const total = Math.max(1, Math.ceil(snapshot.length / stateChunkBytes));
    for (let index = 0; index < total; index++) {
      const bytes = snapshot.subarray(index * stateChunkBytes, (index + 1) * stateChunkBytes);
      this.sendMessage({ type: 'state', epoch: this.epoch, index, total, bytes });
    }
    this.role = 'protected';
    this.backupJoining = true;
    this.ackedThrough = this.epoch;
    this.lastHeardMs = this.io.nowMs();
    this.leaseUntilMs = -Infinity;
    const paused = Math.round(this.io.nowMs() - pauseStartMs);
    if (copy === undefined) {
      this.io.log(`backup joined at epoch ${this.epoch} (state: ${snapshot.length} bytes; the guest paused ${paused} ms)`);
      return;
    }
    const { copy: live, pages } = copy;
    live.tracker.stop();
    this.copy = undefined;
    this.io.log(
      `backup joined at epoch ${this.epoch} (live copy: ${live.pagesSent} pages, ${live.bytesSent} bytes in ${live.round} round(s), ` +
        `${Math.round(this.io.nowMs() - live.startedMs)} ms; then ${pages.length} pages and the rest of the state: ${snapshot.length} bytes; the guest paused ${paused} ms)`,
    );
  }

  /** The live copy's work for this step: a batch of pages, or the next round, or the end. */
  private continueCopy(copy: LiveCopy, now: number): void {
    if (now - this.lastHeardMs > this.options.joinTimeoutMs) {
      this.abandonCopy(`nothing heard for ${Math.round(now - this.lastHeardMs)} ms`);
      return;
    }
    let budget = this.options.liveCopyStepBytes ?? copyBytesPerStep;
    while (budget > 0 && copy.bytesSent - copy.bytesConfirmed < copyWindowBytes) {
      if (copy.sent === copy.queue.length) {
        const written = copy.tracker.take();
        this.machine.hart.flushTlb(); // the take re-armed every page
        if (written.length <= (this.options.liveCopyFinalPages ?? copyFinalPagesMax) || copy.round >= copyRoundsMax || written.length >= copy.queue.length) {
          this.completeJoin({ copy, pages: written });
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
      const bytes = this.sendMessage({ type: 'pages', pages: batch });
      copy.bytesSent += bytes;
      copy.pagesSent += batch.length;
      budget -= bytes;
    }
  }

  /** The joining backup is gone: this replica runs on alone, as before it came. */
  private abandonCopy(reason: string): void {
    this.copy?.tracker.stop();
    this.copy = undefined;
    this.io.log(`the backup did not finish joining (${reason}): running alone`);
  }

  /** The live copy may go on now (or must end): step again at once rather than sleep. */
  private get copyCanSend(): boolean {
    const copy = this.copy;
    return copy !== undefined && copy.bytesSent - copy.bytesConfirmed < copyWindowBytes;
  }

  onMessage(message: Message): void {
    this.lastHeardMs = this.io.nowMs();
    if (message.type === 'copied') {
      if (this.copy !== undefined && message.bytes <= this.copy.bytesSent) this.copy.bytesConfirmed = Math.max(this.copy.bytesConfirmed, message.bytes);
    } else if (message.type === 'ack') {
      this.backupJoining = false; // it has loaded the state
      this.backupCatchUpMs = message.catchUpMs;
      this.catchUpReported = true;
      this.onAck(message.epoch, message.heartbeat);
    } else if (message.type === 'divergence' && this.role === 'protected') {
      // The backup's execution left this one's: it stops, and this replica is not protected.
      this.divergence = { epoch: message.epoch, reason: message.reason };
      this.io.log(`NOT PROTECTED: the backup diverged at epoch ${message.epoch}: ${message.reason}`);
      this.loseBackup(`divergence at epoch ${message.epoch}`);
    }
    // Anything else from a backup is ignored: it has nothing else to say to a primary.
  }

  private onAck(epoch: number, heartbeat: number): void {
    if (this.role !== 'protected') return;
    // The lease runs from the send of the newest thing acknowledged.
    let sentAt = -Infinity;
    for (const [sent, at] of this.entrySentAtMs) {
      if (sent <= epoch) {
        sentAt = Math.max(sentAt, at);
        this.entrySentAtMs.delete(sent);
      }
    }
    for (const [sent, bytes] of this.entryBytesUnacknowledged) {
      if (sent <= epoch) {
        this.unacknowledgedLogBytes -= bytes;
        this.entryBytesUnacknowledged.delete(sent);
      }
    }
    for (const [sequence, at] of this.heartbeatSentAtMs) {
      if (sequence <= heartbeat) {
        sentAt = Math.max(sentAt, at);
        this.heartbeatSentAtMs.delete(sequence);
      }
    }
    if (epoch > this.epoch) return; // an acknowledgement of something never sent: ignore it
    if (epoch > this.ackedThrough) this.ackedThrough = epoch;
    if (sentAt + this.options.leaseMs > this.leaseUntilMs) this.leaseUntilMs = sentAt + this.options.leaseMs;
  }

  /** How long the backup may be silent before it is declared failed. */
  private silenceLimitMs(): number {
    return this.backupJoining ? this.options.joinTimeoutMs : this.options.failureTimeoutMs;
  }

  /** The connection to the backup closed. */
  onDisconnect(reason: string): void {
    if (this.copy !== undefined) this.abandonCopy(`connection closed: ${reason}`);
    if (this.role === 'protected' && this.finished === undefined) this.loseBackup(`connection closed: ${reason}`);
  }

  onDiskCompletion(event: MachineEvent): void {
    this.completions.push(event);
  }

  // -------------------------------------------------------------------------------------------
  // The step

  step(): StepResult {
    const now = this.io.nowMs();
    if (this.finished !== undefined) return { kind: 'finished', ...this.finished };
    if (this.role === 'halted') return this.finish({ kind: 'not-live' }, 'this replica lost the arbiter: the other one is live');
    if (this.role === 'protected' && now - this.lastHeardMs > this.silenceLimitMs()) {
      this.loseBackup(`nothing heard for ${Math.round(now - this.lastHeardMs)} ms`);
      return this.step(); // now solo or halted
    }
    this.releaseAcknowledged(now);
    this.heartbeat(now);
    if (this.role === 'waiting') return { kind: 'blocked' };
    if (this.copy !== undefined) this.continueCopy(this.copy, now);

    const power = this.machine.power;
    if (power !== undefined && power.kind !== 'reset') {
      if (this.pending.length > 0) return this.waitForAcks(now);
      this.io.crashPoint('primary:before-goodbye');
      if (this.role === 'protected') this.sendMessage({ type: 'goodbye', status: power.kind === 'poweroff' ? power.status : 0 });
      return this.finish({ kind: 'guest', guest: power }, describeGuestEnd(power));
    }
    if (this.role === 'protected') {
      if (this.options.protocol === 'original' && this.ackedThrough < this.epoch) return this.waitForAcks(now); // P2
      // The backup's queue is bounded by what this side may leave unacknowledged (replica.ts).
      if (this.pending.length >= pendingEpochsMax || this.unacknowledgedLogBytes >= unacknowledgedLogBytesMax) return this.waitForAcks(now);
    }
    if (this.io.consoleBacklogged || this.io.networkBacklogged) {
      // The console's reader (or the network) lags: the guest waits, heartbeats and acknowledgements go on.
      return { kind: 'blocked', untilMs: now + consolePollMs };
    }
    if (power?.kind === 'reset') {
      // Both replicas reboot at the same boundary: the backup does so when it replays it.
      this.machine = this.reboot();
      this.digester = this.startDigests(this.machine);
      this.digester?.take();
      const copy = this.copy;
      if (copy !== undefined) {
        // The live copy was of the old machine's RAM: the joining backup gets the whole new one.
        copy.tracker.stop();
        this.copy = undefined;
        this.completeJoin(undefined);
      }
    }
    if (this.machine.isIdle && !this.eventsWaiting()) {
      // A live copy goes on while the guest sleeps.
      if (this.copyCanSend) return { kind: 'progress' };
      return this.idle(now);
    }
    if (this.role === 'protected' && now < this.slowUntilMs) return { kind: 'blocked', untilMs: this.slowUntilMs };
    this.runEpoch(now);
    if (this.role === 'protected') this.controlLag(now);
    return { kind: 'progress' };
  }

  /**
   * Lag control (VMware FT slows its primary the same way): the backup must never hold more
   * than it can replay within the failure timeout, or a failover would take that much longer.
   * Adjusted once for each new report from the backup.
   */
  private controlLag(now: number): void {
    if (this.catchUpReported) {
      this.catchUpReported = false;
      const boundMs = this.options.catchUpBoundMs ?? this.options.failureTimeoutMs;
      const before = this.slowMs;
      if (this.backupCatchUpMs > boundMs) this.slowMs = Math.min(slowMaxMs, Math.max(slowStepMs, this.slowMs * slowGrowth));
      else if (this.backupCatchUpMs < boundMs / 2) this.slowMs = this.slowMs * slowDecay < slowStepMs ? 0 : this.slowMs * slowDecay;
      if (before === 0 && this.slowMs > 0) this.io.log(`the backup is ${this.backupCatchUpMs} ms behind (the bound is ${boundMs} ms): slowing the guest until it catches up`);
      else if (before > 0 && this.slowMs === 0) this.io.log(`the backup has caught up (${this.backupCatchUpMs} ms behind): the guest runs at full speed`);
    }
    if (this.slowMs > 0) this.slowUntilMs = now + this.slowMs;
  }

  private runEpoch(now: number): void {
    const machine = this.machine;
    const epoch = this.epoch + 1;
    // The entry's budget (entry-budget.ts): the completions it delivers come first; what they
    // leave bounds the environment readings, and the epoch ends early, at an exact
    // instruction count, rather than outgrow it. The backup runs to the recorded end.
    const plan = planEntry(this.completions, this.options.epochEntryBytesMax);
    this.environment.beginRecording();
    const instructions = machine.isIdle ? 0 : this.options.epochInstructions;
    const result = runWithinReads(machine, instructions, plan.readsMax, () => this.environment.recordedCount);
    const reads = this.environment.takeRecorded();
    const outputs = machine.takeOutputs();
    const stop: StopReason = machine.power !== undefined ? 'halt' : result.reason;
    const events = machine.power !== undefined ? [] : this.boundaryEvents(plan.queuedEvents, plan.bytesMax - epochEntryWireBytes(reads.length, []) - boundaryReserveBytes);
    for (const event of events) machine.applyEvent(event);
    const entry: EpochEntry = { epoch, endRetired: machine.retiredInstructions, stop, reads, events, releasedThrough: this.releasedThrough };
    assert(epochEntryWireBytes(reads.length, events) <= plan.bytesMax, () => `epoch ${epoch}'s entry outgrew its budget of ${plan.bytesMax} bytes`);
    this.epoch = epoch;
    this.io.epochDone(epoch, machine);
    if (this.role === 'protected') {
      this.pending.push({ epoch, outputs });
      this.io.crashPoint('primary:before-send-epoch');
      let bytes = this.sendMessage({ type: 'epoch', entry });
      if (this.digester !== undefined && epoch % this.options.digestEveryEpochs === 0) {
        // The state after the boundary events, as the backup will have it after replaying E.
        const startedMs = this.io.nowMs();
        const { hart, parts, ramHash, pages } = this.digester.take(scrubWindow(epoch / this.options.digestEveryEpochs, machine.ram.pages));
        this.digests.taken++;
        this.digests.ms += this.io.nowMs() - startedMs;
        bytes += this.sendMessage({ type: 'digest', epoch, digest: { hart, parts, ramHash, pages } });
      }
      this.entrySentAtMs.set(epoch, now);
      this.entryBytesUnacknowledged.set(epoch, bytes);
      this.unacknowledgedLogBytes += bytes;
      this.io.crashPoint('primary:after-send-epoch');
    } else {
      this.release(epoch, outputs);
      this.releasedThrough = epoch;
    }
  }

  /**
   * The events for this boundary: the first `queuedEvents` completions (as planned), the
   * network's (within what the entry has left: `roomBytes`, after the readings and room for
   * console input and the clock), console input, the clock.
   */
  private boundaryEvents(queuedEvents: number, roomBytes: number): MachineEvent[] {
    const events: MachineEvent[] = this.completions.splice(0, queuedEvents);
    this.networkEvents(events, roomBytes - queuedEventsBytes(events));
    const room = Math.min(this.machine.consoleInputRoom, consoleInputPerEntryBytesMax);
    if (room > 0) {
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
    const heartbeatAt = this.role === 'protected' ? this.lastSentMs + this.options.heartbeatIntervalMs : Infinity;
    let wakeAt = heartbeatAt;
    // A live copy waiting for the backup's confirmation: give up on it when the join times out.
    if (this.copy !== undefined) wakeAt = Math.min(wakeAt, this.lastHeardMs + this.options.joinTimeoutMs + 1);
    if (deadline !== undefined) {
      const ticks = Number(deadline - this.environment.clockNow(this.machine.retiredInstructions));
      wakeAt = Math.min(wakeAt, now + Math.max(0, ticksToMs(ticks)));
    }
    return Number.isFinite(wakeAt) ? { kind: 'blocked', untilMs: wakeAt } : { kind: 'blocked' };
  }

  private waitForAcks(now: number): StepResult {
    // Wake for the next heartbeat, or when the backup would be declared failed.
    return { kind: 'blocked', untilMs: Math.min(this.lastSentMs + this.options.heartbeatIntervalMs, this.lastHeardMs + this.silenceLimitMs() + 1, now + this.options.leaseMs) };
  }

  // -------------------------------------------------------------------------------------------
  // Outputs

  private releaseAcknowledged(now: number): void {
    if (this.role === 'solo') {
      this.releaseAll();
      return;
    }
    if (this.role !== 'protected' || now >= this.leaseUntilMs) return;
    let printed = false;
    while (this.pending.length > 0 && this.pending[0]!.epoch <= this.ackedThrough) {
      const { epoch, outputs } = this.pending.shift()!;
      this.io.crashPoint('primary:before-release');
      this.release(epoch, outputs);
      this.releasedThrough = epoch;
      printed ||= outputs.some((output) => output.kind === 'console-output');
      this.io.crashPoint('primary:after-release');
    }
    // Tell the backup at once, so that a failover repeats as little console output as possible.
    if (printed) this.lastSentMs = -Infinity;
  }

  private releaseAll(): void {
    for (const { epoch, outputs } of this.pending.splice(0)) {
      this.release(epoch, outputs);
      this.releasedThrough = epoch;
    }
  }

  private release(epoch: number, outputs: readonly MachineOutput[]): void {
    for (const output of outputs) {
      this.outputsReleased++;
      if (output.kind === 'console-output') this.io.consoleWrite(output.bytes, epoch);
      else if (output.kind === 'net-transmit') this.io.networkSend(output.slot, output.frame, epoch);
      else this.io.diskSubmit(output.request, epoch);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The link

  private heartbeat(now: number): void {
    if (this.role !== 'protected' || now - this.lastSentMs < this.options.heartbeatIntervalMs) return;
    const sequence = ++this.heartbeatSequence;
    this.heartbeatSentAtMs.set(sequence, now);
    this.sendMessage({ type: 'heartbeat', sequence, releasedThrough: this.releasedThrough });
  }

  private sendMessage(message: Message): number {
    this.lastSentMs = this.io.nowMs();
    const bytes = this.io.send(message);
    if (message.type === 'epoch' || message.type === 'state' || message.type === 'digest' || message.type === 'pages') this.logBytesSent += bytes;
    return bytes;
  }

  /** The backup is gone (timeout or closed connection): go solo if the arbiter agrees, else halt. */
  private loseBackup(reason: string): void {
    this.io.log(`backup lost (${reason})`);
    this.slowMs = 0;
    this.slowUntilMs = -Infinity;
    this.backupCatchUpMs = 0;
    this.io.crashPoint('primary:before-go-solo');
    if (this.io.tryGoLive(this.generation + 1)) {
      this.generation++;
      this.role = 'solo';
      this.entrySentAtMs.clear();
      this.entryBytesUnacknowledged.clear();
      this.unacknowledgedLogBytes = 0;
      this.heartbeatSentAtMs.clear();
      this.releaseAll();
      this.io.log(`running alone (generation ${this.generation})`);
    } else {
      this.role = 'halted';
      this.pending.length = 0;
      this.io.log('the backup went live first: stopping');
    }
  }

  private finish(end: ReplicaEnd, reason: string): StepResult {
    this.finished = { end, reason };
    return { kind: 'finished', end, reason };
  }

  status(): ReplicaStatus {
    return {
      role: this.role === 'protected' ? 'primary' : this.role === 'solo' ? 'solo' : this.role === 'waiting' ? 'waiting' : 'halted',
      epoch: this.epoch,
      lagEpochs: this.role === 'protected' ? this.epoch - this.ackedThrough : 0,
      // Entries are sent, and acknowledged, in epoch order: the map's first is the oldest.
      lagMs: this.role === 'protected' && this.entrySentAtMs.size > 0 ? Math.round(this.io.nowMs() - this.entrySentAtMs.values().next().value!) : 0,
      slowedMs: this.role === 'protected' ? Math.round(this.slowMs) : 0,
      joining: this.copy === undefined ? undefined : { round: this.copy.round, pagesSent: this.copy.pagesSent, bytesSent: this.copy.bytesSent, ms: Math.round(this.io.nowMs() - this.copy.startedMs) },
      logBytesSent: this.logBytesSent,
      logBytesReceived: 0,
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
