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
import { epochEntryBytesTarget, eventWireBytes, stateChunkBytes, type EpochEntry, type Message, type ReplicaIdentity } from './messages.js';
import { describeGuestEnd, pendingEpochsMax, validateOptions, type ReplicaEnd, type ReplicaIo, type ReplicaStatus, type ReplicationOptions, type StepResult } from './replica.js';

/** How often a primary whose console is backlogged looks again. */
const consolePollMs = 10;

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
  private readonly heartbeatSentAtMs = new Map<number, number>();
  private heartbeatSequence = 0;
  private leaseUntilMs = -Infinity;
  private lastSentMs = -Infinity;
  private lastHeardMs = -Infinity;
  /** A backup has joined but not acknowledged anything yet: it may still be loading the state. */
  private backupJoining = false;
  private completions: MachineEvent[];
  private finished: { end: ReplicaEnd; reason: string } | undefined;
  private logBytesSent = 0;
  private outputsReleased = 0;
  private readonly clusterId: string;

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
    if (this.role === 'protected' || this.role === 'halted') {
      this.io.send({ type: 'reject', code: 'busy', reason: this.role === 'halted' ? 'this primary has stopped' : 'this primary already has a backup' });
      return false;
    }
    // A new backup starts from the state at this boundary: outputs already waiting belong to
    // epochs it will never replay, so they go out now (this replica is the only live one).
    this.releaseAll();
    const snapshot = this.machine.save();
    const total = Math.max(1, Math.ceil(snapshot.length / stateChunkBytes));
    this.sendMessage({ type: 'welcome', clusterId: this.clusterId, generation: this.generation, epoch: this.epoch });
    for (let index = 0; index < total; index++) {
      const bytes = snapshot.subarray(index * stateChunkBytes, (index + 1) * stateChunkBytes);
      this.sendMessage({ type: 'state', epoch: this.epoch, index, total, bytes });
    }
    this.role = 'protected';
    this.backupJoining = true;
    this.ackedThrough = this.epoch;
    this.lastHeardMs = this.io.nowMs();
    this.leaseUntilMs = -Infinity;
    this.io.log(`backup joined at epoch ${this.epoch} (state: ${snapshot.length} bytes)`);
    return true;
  }

  onMessage(message: Message): void {
    this.lastHeardMs = this.io.nowMs();
    if (message.type === 'ack') {
      this.backupJoining = false; // it has loaded the state
      this.onAck(message.epoch, message.heartbeat);
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

    const power = this.machine.power;
    if (power !== undefined && power.kind !== 'reset') {
      if (this.pending.length > 0) return this.waitForAcks(now);
      this.io.crashPoint('primary:before-goodbye');
      if (this.role === 'protected') this.sendMessage({ type: 'goodbye', status: power.kind === 'poweroff' ? power.status : 0 });
      return this.finish({ kind: 'guest', guest: power }, describeGuestEnd(power));
    }
    if (this.role === 'protected') {
      if (this.options.protocol === 'original' && this.ackedThrough < this.epoch) return this.waitForAcks(now); // P2
      if (this.pending.length >= pendingEpochsMax) return this.waitForAcks(now);
    }
    if (this.io.consoleBacklogged || this.io.networkBacklogged) {
      // The console's reader (or the network) lags: the guest waits, heartbeats and acknowledgements go on.
      return { kind: 'blocked', untilMs: now + consolePollMs };
    }
    if (power?.kind === 'reset') {
      // Both replicas reboot at the same boundary: the backup does so when it replays it.
      this.machine = this.reboot();
    }
    if (this.machine.isIdle && !this.eventsWaiting()) return this.idle(now);
    this.runEpoch(now);
    return { kind: 'progress' };
  }

  private runEpoch(now: number): void {
    const machine = this.machine;
    const epoch = this.epoch + 1;
    this.environment.beginRecording();
    const result = machine.run(machine.isIdle ? 0 : this.options.epochInstructions);
    const reads = this.environment.takeRecorded();
    const outputs = machine.takeOutputs();
    const stop: StopReason = machine.power !== undefined ? 'halt' : result.reason;
    const events = machine.power !== undefined ? [] : this.boundaryEvents();
    for (const event of events) machine.applyEvent(event);
    const entry: EpochEntry = { epoch, endRetired: machine.retiredInstructions, stop, reads, events, releasedThrough: this.releasedThrough };
    this.epoch = epoch;
    this.io.epochDone(epoch, machine);
    if (this.role === 'protected') {
      this.pending.push({ epoch, outputs });
      this.io.crashPoint('primary:before-send-epoch');
      this.sendMessage({ type: 'epoch', entry });
      this.entrySentAtMs.set(epoch, now);
      this.io.crashPoint('primary:after-send-epoch');
    } else {
      this.release(epoch, outputs);
      this.releasedThrough = epoch;
    }
  }

  /** The events for this boundary: completions (up to the entry size), console input, the clock. */
  private boundaryEvents(): MachineEvent[] {
    const events: MachineEvent[] = [];
    let bytes = 0;
    while (this.completions.length > 0) {
      const next = this.completions[0]!;
      if (events.length > 0 && bytes + eventWireBytes(next) > epochEntryBytesTarget) break;
      bytes += eventWireBytes(next);
      events.push(this.completions.shift()!);
    }
    bytes = this.networkEvents(events, bytes);
    const room = this.machine.consoleInputRoom;
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
   * NIC has buffers for and the entry has room for (the rest wait in the back-end). Returns the
   * entry's bytes so far.
   */
  private networkEvents(events: MachineEvent[], entryBytes: number): number {
    let bytes = entryBytes;
    for (const [slot, nic] of this.machine.nics) {
      const up = this.io.networkLinkUp(slot);
      if (up !== nic.isLinkUp) {
        const event: MachineEvent = { kind: 'net-link', slot, up };
        events.push(event);
        bytes += eventWireBytes(event);
      }
      const room = nic.receiveRoom;
      if (room === 0 || !this.io.networkInputWaiting(slot)) continue;
      for (const frame of this.io.takeNetworkFrames(slot, room, Math.max(0, epochEntryBytesTarget - bytes))) {
        const event: MachineEvent = { kind: 'net-receive', slot, frame };
        events.push(event);
        bytes += eventWireBytes(event);
      }
    }
    return bytes;
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

  private sendMessage(message: Message): void {
    this.lastSentMs = this.io.nowMs();
    const bytes = this.io.send(message);
    if (message.type === 'epoch' || message.type === 'state') this.logBytesSent += bytes;
  }

  /** The backup is gone (timeout or closed connection): go solo if the arbiter agrees, else halt. */
  private loseBackup(reason: string): void {
    this.io.log(`backup lost (${reason})`);
    this.io.crashPoint('primary:before-go-solo');
    if (this.io.tryGoLive(this.generation + 1)) {
      this.generation++;
      this.role = 'solo';
      this.entrySentAtMs.clear();
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
      logBytesSent: this.logBytesSent,
      logBytesReceived: 0,
      outputsWaiting: this.pending.reduce((sum, entry) => sum + entry.outputs.length, 0),
      generation: this.generation,
      lastFailover: undefined,
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
    return { code: 'image', reason: `different guest image (primary ${mine.imageDigest.slice(0, 12)}, backup ${theirs.imageDigest.slice(0, 12)})` };
  }
  if (mine.configKey !== theirs.configKey) return { code: 'config', reason: `different machine configuration (primary ${mine.configKey}, backup ${theirs.configKey})` };
  if (mine.optionsKey !== theirs.optionsKey) return { code: 'options', reason: `different replication options (primary ${mine.optionsKey}, backup ${theirs.optionsKey})` };
  return undefined;
}
