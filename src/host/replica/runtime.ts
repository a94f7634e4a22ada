/**
 * A replica as a real process: the protocol core (src/replication) driven by the replication
 * channel (transport.ts), real disk images, the host clock, a console and an arbiter.
 *
 * The core is synchronous; this loop calls `step()` whenever something may have changed and
 * sleeps while it is blocked, so socket data, disk completions and console input are taken
 * between steps.
 */
import type { Machine } from '../../machine/board.js';
import type { DiskReadRequest, DiskRequest, EnvironmentPort, MachineEvent } from '../../machine/environment.js';
import type { ReplicaEnvironment } from '../../replication/environment.js';
import { encodeMessage, type Message, type ReplicaIdentity } from '../../replication/messages.js';
import { PrimaryReplica, type Reboot } from '../../replication/primary.js';
import { BackupReplica, type FailoverReport } from '../../replication/backup.js';
import type { ArbiterAnswer, ArbiterRecord, GuestEnd, PeerId, ReplicaEnd, ReplicaIo, ReplicationOptions, ReplicaStatus, StepResult } from '../../replication/replica.js';
import type { ConsolePort } from '../console.js';
import { consoleBacklogMaxBytes } from '../runner.js';
import { readImageRange, type DiskImage } from '../disk-image.js';
import type { NetworkPort } from '../network/port.js';
import type { ReplicaProcessStatus } from '../status.js';
import { serveStatus } from '../status.js';
import { ExitStatus, replicaExitStatus } from '../exit-status.js';
import type { Arbiter } from './arbiter.js';
import { connectRetryMs, connectToPrimary, ReplicaListener, ReplicaStartError, type ChannelSecurity, type Endpoint, type PeerLink } from './transport.js';
import { assert } from '../../machine/assert.js';
import { IoTrace } from './io-trace.js';
import { yieldToSockets } from './yield.js';

/**
 * Longest stretch of guest execution before the loop looks at sockets and timers. An
 * acknowledgement (the primary) or an entry (the backup) waits at most about this long to be
 * read (a primary whose outputs wait for one looks after every step); a look costs about a
 * microsecond.
 */
const hostYieldIntervalMs = 0.25;
/**
 * A primary's entries that no output waits for leave in batches at least this often (each
 * batch is a system call; at 1K-instruction epochs one per yield was 6% of the primary's time).
 */
const entryBatchIntervalMs = 1;
/** How often a replica reports its status to its parent (`pair`). */
const statusReportIntervalMs = 250;
/** Longest sleep while blocked with no deadline: the loop looks again at least this often. */
const idleSleepMaxMs = 1000;
/** The status view's log rate covers about this much recent time... */
const rateWindowMs = 1000;
/** ... from samples taken at most this often (so at most rateWindowMs / rateSampleIntervalMs + 2 are kept). */
const rateSampleIntervalMs = 100;

export interface ReplicaEvents {
  listening?(port: number): void;
  role?(role: ReplicaStatus['role']): void;
  status?(status: ReplicaProcessStatus): void;
  failover?(report: FailoverReport): void;
  /** The backup found that its execution had left this primary's: not protected any more. */
  divergence?(divergence: { readonly epoch: number; readonly reason: string }): void;
  log?(line: string): void;
}

export interface ReplicaProcessOptions {
  readonly role: 'primary' | 'backup';
  readonly endpoint: Endpoint;
  readonly createMachine: () => Machine;
  /** A booted machine (primary) and the reboot used after a guest reset. */
  readonly boot: (machine: Machine) => void;
  readonly environment: ReplicaEnvironment;
  readonly liveClock: EnvironmentPort;
  readonly disks: ReadonlyMap<number, DiskImage>;
  /** Virtio slot -> the NIC's back-end (a backup's is not listened to until it is live: P3). */
  readonly networks: ReadonlyMap<number, NetworkPort>;
  readonly console: ConsolePort;
  readonly options: ReplicationOptions;
  readonly identity: ReplicaIdentity;
  readonly arbiter: Arbiter;
  readonly clusterId: string;
  /** How the replication channel is secured. */
  readonly security: ChannelSecurity;
  /**
   * A primary runs its guest at once, not protected, and takes a backup whenever one joins
   * (VMware FT is switched on for a VM that is already running); with this it waits for its
   * first backup, so that the guest starts protected.
   */
  readonly waitForBackup?: boolean;
  readonly statusPort?: number;
  /**
   * A backup under a supervisor (`pair`): it calls the listener when the replica listening at
   * a port has exited. If that is the primary this backup follows, it need not wait out its lease.
   */
  readonly primaryExits?: (listener: (port: number) => void) => void;
  /** Trace where each disk request's time goes (io-trace.ts); a summary at the end. */
  readonly traceIo?: boolean;
  /**
   * A backup listens here for a backup of its own once it is promoted (a primary always
   * listens at `endpoint`), so that a pair can be protected again after a failover.
   */
  readonly listenWhenPromoted?: Endpoint;
  /** How long a backup keeps trying to connect (default connectRetryMs). */
  readonly connectTimeoutMs?: number;
  readonly events?: ReplicaEvents;
}

/** How a replica process ended: its exit status and why. */
export interface ReplicaProcessResult {
  readonly status: number;
  readonly reason: string;
  /** How the guest ended, if it did (the whole VM is then done); undefined if only this replica stopped. */
  readonly guest: GuestEnd | undefined;
  /** How the protocol core ended, if it did (not when the replica was quit). */
  readonly end?: ReplicaEnd;
}

/** Runs a replica until the guest finishes or the replica stops. */
export async function runReplica(options: ReplicaProcessOptions): Promise<ReplicaProcessResult> {
  const runtime = new ReplicaRuntime(options);
  try {
    return await runtime.run();
  } finally {
    runtime.close();
  }
}

/** The protocol core, by role: a primary listens for its backup, a backup follows its primary. */
type Core = { readonly role: 'primary'; readonly replica: PrimaryReplica } | { readonly role: 'backup'; readonly replica: BackupReplica };

class ReplicaRuntime implements ReplicaIo {
  private core: Core | undefined;
  private listener: ReplicaListener | undefined;
  /** A backup's connection to its primary. */
  private link: PeerLink | undefined;
  /** A primary's connections to its backups, by the handle the core knows them by. */
  private readonly peers = new Map<PeerId, PeerLink>();
  private readonly peerIds = new Map<PeerLink, PeerId>();
  private nextPeer = 1;
  private statusServer: { close(): void } | undefined;
  private wakeUp: (() => void) | undefined;
  private readonly completions: MachineEvent[] = [];
  private reportedFailover = false;
  private reportedDivergence: unknown;
  private lastRole = '';
  private readonly trace: IoTrace | undefined;
  /** Time the loop slept with the core blocked (waiting for the guest's deadline, an acknowledgement, input). */
  private readonly slept = { ms: 0, times: 0 };

  constructor(private readonly options: ReplicaProcessOptions) {
    this.trace = options.traceIo === true ? new IoTrace(() => this.nowMs()) : undefined;
  }

  async run(): Promise<ReplicaProcessResult> {
    const o = this.options;
    const reboot: Reboot = () => {
      const machine = o.createMachine();
      o.boot(machine);
      return machine;
    };
    if (o.role === 'primary') {
      const machine = o.createMachine();
      o.boot(machine);
      // A new cluster's first generation: only an arbiter that cannot be reached says no.
      if (!o.arbiter.tryGoLive(o.clusterId, 1, o.identity.replicaId, []).won) throw new ReplicaStartError(`the arbiter did not let this primary start (cluster ${o.clusterId}): is it reachable?`);
      const primary = new PrimaryReplica(machine, o.environment, this, o.options, o.identity, reboot, {
        epoch: 0,
        generation: 1,
        role: o.waitForBackup === true ? 'waiting' : 'solo',
        clusterId: o.clusterId,
      });
      this.core = { role: 'primary', replica: primary };
      await this.listen(primary, o.endpoint);
    } else {
      const backup = new BackupReplica(o.createMachine, o.environment, o.liveClock, this, o.options, o.identity, reboot);
      this.core = { role: 'backup', replica: backup };
      for (const port of o.networks.values()) port.accepting = false;
      o.primaryExits?.((port) => {
        if (port !== o.endpoint.port) return;
        backup.onPrimaryExited();
        this.wake();
      });
      await this.connect(backup);
    }
    for (const [slot, port] of o.networks) {
      port.announceAs = () => {
        const nic = this.core?.replica.currentMachine?.nics.get(slot);
        return nic === undefined ? undefined : { mac: nic.macAddress, ipv4: nic.guestIpv4 };
      };
    }
    if (o.statusPort !== undefined) this.statusServer = serveStatus(o.statusPort, () => this.status(), (line) => this.log(line));
    const startedMs = performance.now();
    const result = await this.loop(this.core);
    this.logSummary(performance.now() - startedMs);
    return result;
  }

  /** One line on the log traffic of the whole run (the benchmark reads it). */
  private logSummary(elapsedMs: number): void {
    const status = this.core!.replica.status();
    const bytes = status.logBytesSent + status.logBytesReceived;
    const seconds = elapsedMs / 1000;
    this.log(
      `log summary: ${bytes} bytes ${status.logBytesSent > 0 ? 'sent' : 'received'} over ${status.epoch} epochs in ${seconds.toFixed(2)} s ` +
        `(${status.epoch > 0 ? Math.round(bytes / status.epoch) : 0} bytes/epoch, ${Math.round(bytes / Math.max(seconds, 1e-3))} bytes/s); ` +
        `${status.digests.taken} state digests in ${status.digests.ms.toFixed(1)} ms; ${status.messagesSent} messages sent; ` +
        `slept ${Math.round(this.slept.ms)} ms in ${this.slept.times} waits`,
    );
    if (this.trace !== undefined) for (const line of this.trace.summary()) this.log(line);
  }

  private async loop(core: Core): Promise<ReplicaProcessResult> {
    let lastYieldMs = performance.now();
    /** Links corked for the current batch (see below), and when the last batch left. */
    const corked = new Set<PeerLink>();
    let lastFlushMs = lastYieldMs;
    let lastStatusMs = -Infinity;
    /** The loop has not yielded since it woke (see yield.ts). */
    let sinceWake = true;
    for (;;) {
      if (this.options.events?.status !== undefined && performance.now() - lastStatusMs > statusReportIntervalMs) {
        lastStatusMs = performance.now();
        this.options.events.status(this.status());
      }
      const terminal = this.options.console;
      if (terminal.quitRequested) {
        for (const link of corked) link.uncork();
        // Ctrl-A x on this replica's terminal, or its reader went away: this replica stops,
        // as if its host had; a peer that follows or leads carries on without it.
        return terminal.outputClosed
          ? { status: ExitStatus.outputClosed, reason: "the console's output was closed: this replica stops", guest: undefined }
          : { status: ExitStatus.ok, reason: 'quit (Ctrl-A x): this replica stops', guest: undefined };
      }
      for (const event of this.completions.splice(0)) core.replica.onDiskCompletion(event);
      // What a run of steps sends leaves in one write on each connection: short epochs cost
      // a system call per batch, not per entry. The batch goes when the loop yields or sleeps,
      // or at once when outputs wait for the acknowledgement of what it holds.
      const links = this.link === undefined ? [...this.peers.values()] : [this.link, ...this.peers.values()];
      for (const link of links) {
        if (corked.has(link)) continue;
        link.cork();
        corked.add(link);
      }
      const result: StepResult = core.replica.step();
      const nowMs = performance.now();
      const yieldDue = nowMs - lastYieldMs > hostYieldIntervalMs;
      // A primary's batch of entries may stay corked across yields (it answers nothing from
      // its socket handlers); a backup's may not: its acknowledgements are sent from them.
      const flushDue = core.role === 'primary' ? nowMs - lastFlushMs > entryBatchIntervalMs : yieldDue;
      if (result.kind !== 'progress' || flushDue || core.replica.holdsOutputs) {
        for (const link of corked) link.uncork();
        corked.clear();
        lastFlushMs = nowMs;
      }
      this.noticeRole(core);
      if (result.kind === 'finished') return { status: replicaExitStatus(result.end), reason: result.reason, guest: result.end.kind === 'guest' ? result.end.guest : undefined, end: result.end };
      if (result.kind === 'progress') {
        // What was sent must leave now, not at the next yield: with TLS, a message sent
        // while an earlier one is still being handed to the kernel waits for the event loop
        // (an entry's acknowledgement, and the outputs behind it, came milliseconds late).
        // While outputs wait for an acknowledgement (the epochs are short then), the loop looks
        // at its sockets after every step: the acknowledgement, and the outputs behind it, go
        // as soon as it is there, not a yield interval later.
        if (yieldDue || core.replica.holdsOutputs || (corked.size === 0 && links.some((link) => link.holding))) {
          await yieldToSockets(sinceWake);
          sinceWake = false;
          lastYieldMs = performance.now();
        }
        continue;
      }
      if (this.completions.length > 0) continue;
      await this.sleep(result.untilMs);
      sinceWake = true;
      lastYieldMs = performance.now();
      this.slept.ms += lastYieldMs - nowMs;
      this.slept.times++;
    }
  }

  /** Sleeps until `untilMs` (monotonic ms) or until something arrives. */
  private sleep(untilMs: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      const limit = untilMs === undefined ? idleSleepMaxMs : Math.max(0, Math.min(idleSleepMaxMs, untilMs - this.nowMs()));
      const done = (): void => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, limit);
      this.wakeUp = done;
      // Console input wakes the loop only if it arrives now: input that was already waiting
      // is not what the core waits for (it blocked with it there, e.g. for an acknowledgement
      // under the original protocol), and waking for it at once would spin in microtasks and
      // never let the acknowledgement be read.
      const inputWaiting = this.options.console.hasInput;
      void this.options.console.inputReady().then(() => {
        if (this.options.console.quitRequested || (!inputWaiting && this.options.console.hasInput)) this.wakeUp?.();
      });
      for (const port of this.options.networks.values()) void port.changed().then(() => this.wakeUp?.());
    });
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private noticeRole(core: Core): void {
    const divergence = core.replica.lastDivergence;
    if (divergence !== undefined && divergence !== this.reportedDivergence) {
      this.reportedDivergence = divergence;
      this.options.events?.divergence?.(divergence);
    }
    const role = core.replica.statusRole;
    if (role !== this.lastRole) {
      this.lastRole = role;
      this.options.events?.role?.(role);
    }
    if (!this.reportedFailover && core.role === 'backup' && core.replica.report !== undefined) {
      this.reportedFailover = true;
      this.goLiveOnNetwork(core.replica);
      this.options.events?.failover?.(core.replica.report);
      // Promoted: now the primary, this replica takes a backup of its own.
      const promoted = core.replica.promoted;
      const endpoint = this.options.listenWhenPromoted;
      if (promoted !== undefined && endpoint !== undefined) {
        this.listen(promoted, endpoint).catch((error: unknown) => this.log(`cannot take a new backup: ${error instanceof Error ? error.message : String(error)}`));
      }
    }
  }

  /**
   * This backup is the live replica now: it listens to its own back-ends, and tells the network
   * where the guest's MAC lives (a RARP and a gratuitous ARP: switches learn the new port).
   */
  private goLiveOnNetwork(backup: BackupReplica): void {
    const machine = backup.currentMachine;
    for (const [slot, port] of this.options.networks) {
      port.accepting = true;
      const nic = machine?.nics.get(slot);
      if (nic !== undefined) port.announce(nic.macAddress, nic.guestIpv4);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The channel

  private async listen(primary: PrimaryReplica, endpoint: Endpoint): Promise<void> {
    const { listener, port } = await ReplicaListener.listen(endpoint, {
      hello: (link, identity) => {
        const peer = this.nextPeer++;
        this.peers.set(peer, link);
        this.peerIds.set(link, peer);
        if (primary.onHello(identity, peer)) {
          this.wake();
          return true;
        }
        this.forget(link);
        return false;
      },
      message: (link, message) => {
        const peer = this.peerIds.get(link);
        if (message.type === 'ack') this.trace?.acknowledged(message.epoch);
        if (peer !== undefined) primary.onMessage(message, peer);
        this.wake();
      },
      closed: (link, reason) => {
        const peer = this.peerIds.get(link);
        this.forget(link);
        if (peer !== undefined) primary.onDisconnect(reason, peer);
        this.wake();
      },
      log: (line) => this.log(line),
    }, this.options.security);
    this.listener = listener;
    this.options.events?.listening?.(port);
  }

  private forget(link: PeerLink): void {
    const peer = this.peerIds.get(link);
    this.peerIds.delete(link);
    if (peer !== undefined) this.peers.delete(peer);
  }

  private async connect(backup: BackupReplica): Promise<void> {
    this.link = await connectToPrimary(this.options.endpoint, this.options.connectTimeoutMs ?? connectRetryMs, {
      messages: (messages) => {
        backup.onMessages(messages);
        this.wake();
      },
      activity: () => backup.onActivity(),
      closed: (reason) => {
        this.link = undefined;
        backup.onDisconnect(reason);
        this.wake();
      },
      log: (line) => this.log(line),
    }, this.options.security);
    backup.sayHello();
  }

  // -------------------------------------------------------------------------------------------
  // ReplicaIo

  nowMs(): number {
    return performance.now();
  }

  send(message: Message, to?: PeerId): number {
    // Without a connection the message is dropped; its size still counts (as the core expects).
    const link = to === undefined ? this.link : this.peers.get(to);
    if (message.type === 'epoch' && this.trace !== undefined) {
      const events = message.entry.events;
      this.trace.entrySent(message.entry.epoch, events.flatMap((event) => (event.kind === 'disk-completion' ? [event] : [])));
      if (events.some((event) => event.kind === 'net-receive')) this.trace.framesDelivered(message.entry.epoch);
    }
    return link?.send(message) ?? encodeMessage(message).length;
  }

  disconnect(peer: PeerId): void {
    const link = this.peers.get(peer);
    if (link === undefined) return;
    this.forget(link);
    if (this.listener !== undefined) this.listener.drop(link);
    else link.close();
  }

  consoleWrite(bytes: Uint8Array): void {
    this.options.console.write(bytes);
  }

  diskSubmit(request: DiskRequest, epoch: number): void {
    const disk = this.options.disks.get(request.slot);
    assert(disk !== undefined, () => `disk request for virtio slot ${request.slot}, which has no image`);
    this.trace?.released(request, epoch);
    // Completions are delivered between steps, unless the core takes them in the step that
    // issued the request (takeDiskCompletions); never from inside diskSubmit.
    this.completions.push(disk.perform(request));
    this.trace?.performed(request);
  }

  readSharedDisk(slot: number, offsetBytes: number, lengthBytes: number): Uint8Array | { readonly error: string } {
    return readImageRange(this.options.disks, slot, offsetBytes, lengthBytes);
  }

  readDiskNow(request: DiskReadRequest): Uint8Array | undefined {
    // The images perform every request when submitted (diskSubmit): what was submitted is on them.
    const data = this.readSharedDisk(request.slot, request.offsetBytes, request.lengthBytes);
    if (!(data instanceof Uint8Array)) return undefined;
    this.trace?.readAtOnce(request);
    return data;
  }

  takeDiskCompletions(): MachineEvent[] {
    return this.completions.splice(0);
  }

  networkSend(slot: number, frame: Uint8Array, epoch: number): void {
    this.trace?.frameReleased(epoch);
    const port = this.options.networks.get(slot);
    assert(port !== undefined, () => `a frame for virtio slot ${slot}, which has no network back-end`);
    port.send(frame);
  }

  takeNetworkFrames(slot: number, maxFrames: number, maxBytes: number): Uint8Array[] {
    const port = this.options.networks.get(slot);
    const arrivedMs = port?.oldestArrivalMs;
    const frames = port?.take(maxFrames, maxBytes) ?? [];
    if (frames.length > 0 && arrivedMs !== undefined) this.trace?.framesTaken(arrivedMs);
    return frames;
  }

  networkInputWaiting(slot: number): boolean {
    return this.options.networks.get(slot)?.inputWaiting ?? false;
  }

  networkLinkUp(slot: number): boolean {
    return this.options.networks.get(slot)?.linkUp ?? false;
  }

  get networkBacklogged(): boolean {
    for (const port of this.options.networks.values()) if (port.backlogged) return true;
    return false;
  }

  takeConsoleInput(max: number): Uint8Array {
    return this.options.console.takeInput(max);
  }

  get consoleBacklogged(): boolean {
    return this.options.console.outputBacklogBytes > consoleBacklogMaxBytes;
  }

  get consoleInputWaiting(): boolean {
    return this.options.console.hasInput;
  }

  tryGoLive(generation: number, members: readonly string[]): ArbiterAnswer {
    return this.options.arbiter.tryGoLive(this.clusterId, generation, this.options.identity.replicaId, members);
  }

  arbiterHolder(generation: number): ArbiterRecord | undefined {
    return this.options.arbiter.holder(this.clusterId, generation);
  }

  /** The cluster this replica is in: a backup's is its primary's. */
  private get clusterId(): string {
    const core = this.core;
    return core?.role === 'backup' ? core.replica.clusterId : this.options.clusterId;
  }

  crashPoint(): void {}

  epochDone(): void {}

  log(line: string): void {
    this.options.events?.log?.(line);
  }

  // -------------------------------------------------------------------------------------------
  // Status

  /** Log byte counts at recent status calls, oldest first: at most one per rateSampleIntervalMs, none older than needed. */
  private readonly rateSamples: { atMs: number; bytes: number }[] = [];

  status(): ReplicaProcessStatus {
    const core = this.core!.replica.status();
    // Log bytes per second over the last second (or since the first status call, if that is
    // more recent): from the oldest sample still inside the window to now.
    const now = performance.now();
    const bytes = core.logBytesSent + core.logBytesReceived;
    const samples = this.rateSamples;
    const newest = samples[samples.length - 1];
    if (newest === undefined || now - newest.atMs >= rateSampleIntervalMs) samples.push({ atMs: now, bytes });
    while (samples.length > 2 && now - samples[1]!.atMs >= rateWindowMs) samples.shift();
    const oldest = samples[0]!;
    const rate = now > oldest.atMs ? ((bytes - oldest.bytes) * 1000) / (now - oldest.atMs) : 0;
    return { ...core, logBytesPerSecond: Math.round(rate), pid: process.pid, uptimeMs: Math.round(now), consoleBacklogBytes: this.options.console.outputBacklogBytes };
  }

  /** The replica is done: late socket events must change nothing any more. */
  close(): void {
    this.link?.close();
    for (const link of this.peers.values()) link.close();
    this.listener?.close();
    this.statusServer?.close();
  }
}
