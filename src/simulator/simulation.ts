/**
 * The seeded simulator: a primary, a backup, the link between them, the shared disk, the
 * console and the arbiter, in one process with virtual time. The replicas are the production
 * classes (`PrimaryReplica`, `BackupReplica`) driving real `Machine`s; only their `ReplicaIo`
 * is simulated. Faults come from the seed: a crash of either replica at a named point of the
 * protocol or at a moment in time, a partition of the link, latency and jitter. Invariants are
 * checked while the run goes on; a failing seed replays exactly.
 *
 * Invariants (docs/REPLICATION.md; ../shared/PAPER.md "Invariants our tests check"):
 *  1. the backup's execution is a prefix of the primary's (equal digests at sampled epochs);
 *  2. at most one replica ever performs output at a time: once a replica has gone live after
 *     another, the other never outputs again;
 *  3. the console the world saw is a failure-free machine's, except for repeats after a
 *     failover (P8); the disk ends exactly as a failure-free run leaves it;
 *  4. a protected primary releases no output before the backup has acknowledged its epoch;
 *  5. the guest finishes (progress after failover) within a bound of virtual time;
 *  6. no log entry outgrows its budget (entry-budget.ts), except by a single queued event
 *     larger than the budget, carried alone;
 *  7. no replica ever reports divergence (the simulator corrupts no machine: a digest that
 *     differs, or a replay that does, is a bug of ours).
 */
import { createHash } from 'node:crypto';
import { Machine, type BoardConfig, type CpuMode } from '../machine/board.js';
import type { DiskRequest, MachineEvent } from '../machine/environment.js';
import type { LoadedImage } from '../machine/loader/elf.js';
import { ReplicaEnvironment } from '../replication/environment.js';
import type { EnvironmentPort } from '../machine/environment.js';
import { encodeMessage, epochEntryWireBytes, FrameDecoder, framePayloadBytesMax, type EpochEntry, type Message, type ReplicaIdentity } from '../replication/messages.js';
import { epochEntryBytesDefault } from '../replication/entry-budget.js';
import { PrimaryReplica } from '../replication/primary.js';
import { BackupReplica } from '../replication/backup.js';
import { backupCrashPoints, optionsKey, primaryCrashPoints, type CrashPoint, type ReplicaEnd, type ReplicaIo, type ReplicationOptions, type StepResult } from '../replication/replica.js';
import { Prng } from './prng.js';
import { VirtualClock, virtualEpochNs } from '../machine/clock.js';
import { mtimeTicksPerMs } from '../machine/time.js';
import { assert } from '../machine/assert.js';


type ReplicaName = 'primary' | 'backup';

export interface FaultPlan {
  readonly crash?: {
    readonly replica: ReplicaName;
    readonly at: { readonly point: string; readonly occurrence: number } | { readonly timeMs: number };
  };
  /** The link is cut at this time (both replicas stay up). */
  readonly partitionAtMs?: number;
  /** The connection is reset at this time: both replicas stay up and each sees it close, at different moments. */
  readonly resetAtMs?: number;
  readonly linkLatencyMs: number;
  readonly linkJitterMs: number;
  readonly diskLatencyMs: number;
  /**
   * The backup connects at this time to a primary whose guest has run alone since the start
   * (a join of a running guest: a live copy, or the whole state at a boundary). Absent: it
   * connects at once to a primary that waits for it.
   */
  readonly joinAtMs?: number;
}

export interface SimulationSetup {
  readonly seed: number;
  readonly kernel: LoadedImage;
  /** The shared disk's starting content. */
  readonly disk: Uint8Array;
  readonly ramBytes: number;
  readonly options: ReplicationOptions;
  /** What a failure-free machine leaves, and its console. */
  readonly expected: { readonly disk: Uint8Array; readonly console: string };
  /** Checks the console the world saw (repeats allowed after a failover). */
  readonly checkConsole: (observed: string) => { ok: boolean; reason?: string };
  /** The faults; chosen from the seed when absent. */
  readonly plan?: FaultPlan;
  /** Virtual time after which a run that has not finished is a failure. */
  readonly timeLimitMs?: number;
  /** How the first primary's CPU runs (default the interpreter; backups always use it): a primary with the tier must stay identical to them. */
  readonly primaryCpu?: CpuMode;
}

export interface SimulationResult {
  readonly seed: number;
  readonly plan: FaultPlan;
  readonly failures: string[];
  readonly virtualMs: number;
  readonly console: string;
  readonly outcome: Partial<Record<ReplicaName, string>>;
  readonly trace: string[];
  readonly failoverMs: number | undefined;
  /** Instructions each replica executed (its final machine's count). */
  readonly instructions: Partial<Record<ReplicaName, number>>;
  /** Epochs the primary ended early because their log entry was full. */
  readonly epochsEndedEarly: number;
}

/**
 * Instructions a simulated replica executes per virtual millisecond (20 MIPS). Slower than
 * the real interpreter on purpose: a guest polling for a disk completion spins for the
 * disk's latency times this rate, and those instructions cost real time in every seed.
 */
const instructionsPerMs = 20_000;
/** Virtual time a step costs beyond its instructions. */
const stepOverheadMs = 0.005;
/** Between the end of a step and the next one, where waiting input is taken. */
const stepGapMs = 1e-6;

class SimulatedCrash extends Error {
  override readonly name = 'SimulatedCrash';
}

/**
 * The faults of a seed. A run of the simulator workload lasts about 100 ms of virtual time
 * and some hundreds of epochs, so crash times and crash-point occurrences are drawn from
 * ranges that land inside it: before the backup has joined, during, and near the end.
 */
export function chooseFaultPlan(prng: Prng): FaultPlan {
  const link = { linkLatencyMs: prng.between(0.05, 0.5), linkJitterMs: prng.between(0, 0.5), diskLatencyMs: prng.between(0.02, 0.3) };
  // One seed in three: the backup joins the running guest at a moment of the run, so that
  // faults land before, during and after the join.
  const base: FaultPlan = prng.chance(1 / 3) ? { ...link, joinAtMs: prng.between(0.5, 60) } : link;
  // A crash at a moment: for a join, often during it (the copy takes a few milliseconds).
  const moment = (): number => (base.joinAtMs !== undefined && prng.chance(0.5) ? base.joinAtMs + prng.between(0, 4) : prng.between(2, 110));
  const kind = prng.int(0, 9);
  if (kind === 0) return base; // no fault
  if (kind <= 3) return { ...base, crash: { replica: 'primary', at: { point: prng.pick(primaryCrashPoints), occurrence: prng.int(1, 40) } } };
  if (kind <= 5) return { ...base, crash: { replica: 'primary', at: { timeMs: moment() } } };
  if (kind === 6) return { ...base, crash: { replica: 'backup', at: { point: prng.pick(backupCrashPoints), occurrence: prng.int(1, 40) } } };
  if (kind === 7) return { ...base, crash: { replica: 'backup', at: { timeMs: moment() } } };
  if (kind === 8) return { ...base, partitionAtMs: moment() };
  return { ...base, resetAtMs: moment() };
}

interface OutputRecord {
  readonly atMs: number;
  readonly replica: ReplicaName;
  readonly epoch: number;
  readonly kind: 'console' | 'disk';
}

export class Simulation {
  now = 0;
  private readonly prng: Prng;
  readonly plan: FaultPlan;
  private readonly queue = new EventQueue();
  private readonly replicas = new Map<ReplicaName, SimulatedReplica>();
  private readonly disk: Uint8Array;
  private diskBusyUntil = 0;
  private readonly generations = new Map<number, ReplicaName>();
  private linkCut = false;
  private readonly consoleChunks: Uint8Array[] = [];
  private readonly outputs: OutputRecord[] = [];
  readonly failures: string[] = [];
  readonly trace: string[] = [];
  private readonly primaryDigests = new Map<number, string>();
  private backupAckedThrough = 0;
  private readonly sampledEpochs: Set<number>;
  /** The end of the last entry the primary sent, and the epochs it ended early. */
  private lastEntryEnd = 0;
  private epochsEndedEarly = 0;

  constructor(private readonly setup: SimulationSetup) {
    this.prng = new Prng(setup.seed);
    this.plan = setup.plan ?? chooseFaultPlan(this.prng);
    this.disk = setup.disk.slice();
    this.sampledEpochs = new Set(Array.from({ length: 4 }, () => this.prng.int(1, 120)));
  }

  run(): SimulationResult {
    const setup = this.setup;
    const config: BoardConfig = { ramBytes: setup.ramBytes, disks: [{ capacityBytes: this.disk.length, readOnly: false, serial: 'understudy-disk0' }] };
    const identity: ReplicaIdentity = { configKey: JSON.stringify(config), imageDigest: 'simulated', optionsKey: optionsKey(setup.options) };

    // The primary: boots the guest, waits for its backup (or, for a later join, runs it alone).
    const joinAtMs = this.plan.joinAtMs;
    const primaryIo = new SimulatedIo(this, 'primary');
    const primaryEnvironment = new ReplicaEnvironment(this.clock('primary'));
    const primaryBoot = (): Machine => {
      const machine = new Machine(config, primaryEnvironment, { cpu: setup.primaryCpu ?? 'interp' });
      machine.load(setup.kernel);
      return machine;
    };
    assert(this.goLive('primary', 1), 'the arbiter refused the first generation');
    const primary = new PrimaryReplica(primaryBoot(), primaryEnvironment, primaryIo, setup.options, identity, primaryBoot, {
      epoch: 0, generation: 1, role: joinAtMs === undefined ? 'waiting' : 'solo', clusterId: `sim-${setup.seed}`,
    });
    this.replicas.set('primary', new SimulatedReplica('primary', primary, primaryIo));

    // The backup: a machine of the same configuration, filled from the primary's state.
    const backupIo = new SimulatedIo(this, 'backup');
    const backupEnvironment = new ReplicaEnvironment(this.clock('backup'));
    const backupMachine = (): Machine => new Machine(config, backupEnvironment);
    const backupBoot = (): Machine => {
      const machine = backupMachine();
      machine.load(setup.kernel);
      return machine;
    };
    const backup = new BackupReplica(backupMachine, backupEnvironment, this.clock('backup'), backupIo, setup.options, identity, backupBoot);
    this.replicas.set('backup', new SimulatedReplica('backup', backup, backupIo));

    if (this.plan.crash !== undefined && 'timeMs' in this.plan.crash.at) {
      const victim = this.plan.crash.replica;
      this.queue.push(this.plan.crash.at.timeMs, () => this.crash(victim, 'at a moment in time'));
    }
    if (this.plan.resetAtMs !== undefined) {
      this.queue.push(this.plan.resetAtMs, () => {
        this.linkCut = true;
        this.note('connection reset');
        // Each side's operating system reports the reset on its own schedule.
        for (const name of ['primary', 'backup'] as const) {
          const replica = this.replicas.get(name)!;
          this.queue.push(this.now + this.prng.between(0, 3), () => this.whenIdle(name, () => replica.core.onDisconnect('connection reset')));
        }
      });
    }
    if (this.plan.partitionAtMs !== undefined) {
      this.queue.push(this.plan.partitionAtMs, () => {
        this.linkCut = true;
        this.note('link cut (partition)');
      });
    }
    // The backup connects.
    this.queue.push(joinAtMs ?? 0, () => {
      if (!this.replicas.get('backup')!.alive) return;
      if (joinAtMs !== undefined) this.note('the backup connects to the running primary');
      backup.sayHello();
      backupIo.flush();
    });
    this.wake('primary', 0);
    this.wake('backup', 0);

    const limit = setup.timeLimitMs ?? 60_000;
    while (this.failures.length === 0) {
      const next = this.queue.pop();
      if (next === undefined) break;
      if (next.atMs > limit) {
        this.fail(`no progress: the run had not finished after ${limit} ms of virtual time`);
        break;
      }
      this.now = Math.max(this.now, next.atMs);
      next.action();
      if ([...this.replicas.values()].every((replica) => !replica.alive || replica.result !== undefined)) break;
    }
    this.finalChecks();
    const backupReport = backup.report;
    return {
      seed: setup.seed,
      plan: this.plan,
      failures: this.failures,
      virtualMs: this.now,
      console: this.consoleText(),
      outcome: Object.fromEntries([...this.replicas].map(([name, replica]) => [name, replica.describe()])),
      trace: this.trace,
      failoverMs: backupReport === undefined ? undefined : backupReport.liveAtMs - backupReport.detectedAtMs + backupReport.silenceMs,
      instructions: Object.fromEntries([...this.replicas].map(([name, replica]) => [name, replica.retired()])),
      epochsEndedEarly: this.epochsEndedEarly,
    };
  }

  /** Each host has its own clock: virtual time plus a per-host offset. */
  private clock(name: ReplicaName): EnvironmentPort {
    const offsetTicks = name === 'primary' ? 0 : 7_777_777;
    return {
      read: (kind) => {
        const ticks = BigInt(Math.floor(this.now * mtimeTicksPerMs)) + BigInt(offsetTicks);
        return kind === 'mtime' ? ticks : virtualEpochNs + BigInt(Math.floor(this.now * 1_000_000));
      },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Scheduling

  wake(name: ReplicaName, atMs: number): void {
    const replica = this.replicas.get(name)!;
    if (!replica.alive || replica.result !== undefined) return;
    if (replica.wakeAtMs <= atMs) return;
    replica.wakeAtMs = atMs;
    const token = ++replica.wakeToken;
    this.queue.push(atMs, () => {
      if (replica.wakeToken !== token) return;
      replica.wakeAtMs = Infinity;
      this.step(replica);
    });
  }

  private step(replica: SimulatedReplica): void {
    if (!replica.alive || replica.result !== undefined) return;
    const before = replica.retired();
    let result: StepResult;
    try {
      result = replica.core.step();
    } catch (error) {
      if (error instanceof SimulatedCrash) {
        this.crash(replica.name, error.message);
        return;
      }
      throw error;
    }
    const cost = stepOverheadMs + Math.max(0, replica.retired() - before) / instructionsPerMs;
    replica.busyUntilMs = this.now + cost;
    replica.io.flush(cost);
    if (result.kind === 'finished') {
      replica.result = result;
      this.note(`${replica.name} finished: ${result.reason} (${describeEnd(result.end)})`);
      return;
    }
    // The next step comes a moment after this one ends, so that input that arrived meanwhile
    // is taken first (a real replica reads its socket between steps).
    if (result.kind === 'progress') this.wake(replica.name, this.now + cost + stepGapMs);
    else if (result.untilMs !== undefined) this.wake(replica.name, Math.max(result.untilMs, this.now + cost + stepGapMs));
  }

  private crash(name: ReplicaName, how: string): void {
    const replica = this.replicas.get(name)!;
    if (!replica.alive || replica.result !== undefined) return;
    replica.alive = false;
    replica.io.flush(0); // what it had written to its socket before dying still goes out
    this.note(`${name} crashed (${how})`);
    // The peer's operating system sees the connection close, unless the link is cut.
    const peer = name === 'primary' ? 'backup' : 'primary';
    this.deliverLater(peer, this.now + this.plan.linkLatencyMs, () => this.replicas.get(peer)!.core.onDisconnect('peer closed the connection'));
  }

  // -------------------------------------------------------------------------------------------
  // The world: link, disk, console, arbiter

  /** Sends `bytes` from `from` to its peer, FIFO, arriving after the link's latency. */
  transmit(from: ReplicaName, bytes: Uint8Array, sendAtMs: number): void {
    if (this.linkCut) return;
    const to: ReplicaName = from === 'primary' ? 'backup' : 'primary';
    const link = this.replicas.get(from)!.outgoing;
    const arrival = Math.max(link.lastArrivalMs, sendAtMs + this.plan.linkLatencyMs + this.prng.float() * this.plan.linkJitterMs);
    link.lastArrivalMs = arrival;
    this.deliverLater(to, arrival, () => {
      const target = this.replicas.get(to)!;
      // Arbitrary splits: the decoder must take a stream cut anywhere.
      const cut = this.prng.int(0, bytes.length);
      for (const part of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
        for (const frame of target.incoming.pushFrames(part)) target.receive(frame.message, frame.wireBytes);
      }
    });
  }

  private deliverLater(to: ReplicaName, atMs: number, deliver: () => void): void {
    this.queue.push(atMs, () => {
      if (this.linkCut) return;
      this.whenIdle(to, deliver);
    });
  }

  /**
   * Runs `call` on a replica once it is not busy executing a step: a real replica runs an
   * epoch to completion before it reads its socket again, so what arrives meanwhile waits.
   */
  private whenIdle(name: ReplicaName, call: () => void): void {
    const replica = this.replicas.get(name)!;
    if (!replica.alive || replica.result !== undefined) return;
    if (replica.busyUntilMs > this.now) {
      this.queue.push(replica.busyUntilMs, () => this.whenIdle(name, call));
      return;
    }
    this.invoke(replica, call);
    this.wake(name, this.now);
  }

  /** Calls into a replica; a crash point reached on the way kills it there. */
  private invoke(replica: SimulatedReplica, call: () => void): void {
    try {
      call();
      replica.io.flush(0);
    } catch (error) {
      if (!(error instanceof SimulatedCrash)) throw error;
      this.crash(replica.name, error.message);
    }
  }

  /** Invariant 6, for each entry the primary sends; counts the epochs that ended early. */
  checkEntry(entry: EpochEntry): void {
    const bytes = epochEntryWireBytes(entry.reads.length, entry.events);
    const budget = this.setup.options.epochEntryBytesMax ?? epochEntryBytesDefault;
    const alone = entry.reads.length === 0 && entry.events.filter((event) => event.kind === 'disk-completion').length === 1;
    if (bytes > budget && !alone) this.fail(`epoch ${entry.epoch}'s log entry has ${bytes} bytes, more than its budget of ${budget}`);
    if (bytes > framePayloadBytesMax) this.fail(`epoch ${entry.epoch}'s log entry has ${bytes} bytes, more than a frame holds`);
    if (entry.stop === 'budget' && entry.endRetired - this.lastEntryEnd < this.setup.options.epochInstructions) this.epochsEndedEarly++;
    this.lastEntryEnd = entry.endRetired;
  }

  recordAck(epoch: number): void {
    if (epoch > this.backupAckedThrough) this.backupAckedThrough = epoch;
  }

  consoleWrite(from: ReplicaName, bytes: Uint8Array, epoch: number, protectedPrimary: boolean): void {
    this.checkOutput(from, epoch, 'console', protectedPrimary);
    this.consoleChunks.push(bytes.slice());
  }

  diskSubmit(from: ReplicaName, request: DiskRequest, epoch: number, protectedPrimary: boolean): void {
    this.checkOutput(from, epoch, 'disk', protectedPrimary);
    // One disk, requests in order: each starts when the previous one is done.
    const start = Math.max(this.now, this.diskBusyUntil);
    const done = start + this.plan.diskLatencyMs;
    this.diskBusyUntil = done;
    const completion = this.perform(request);
    this.queue.push(done, () => this.whenIdle(from, () => this.replicas.get(from)!.core.onDiskCompletion(completion)));
  }

  private perform(request: DiskRequest): MachineEvent {
    const base = { kind: 'disk-completion' as const, slot: request.slot, requestId: request.requestId };
    switch (request.op) {
      case 'read':
        return { ...base, status: 'ok', data: this.disk.slice(request.offsetBytes, request.offsetBytes + request.lengthBytes) };
      case 'write':
        this.disk.set(request.data, request.offsetBytes);
        return { ...base, status: 'ok' };
      case 'flush':
        return { ...base, status: 'ok' };
    }
  }

  goLive(name: ReplicaName, generation: number): boolean {
    const holder = this.generations.get(generation);
    if (holder !== undefined) return holder === name;
    this.generations.set(generation, name);
    this.note(`${name} holds generation ${generation}`);
    return true;
  }

  /** Invariants 2 and 4, at the moment of each output. */
  private checkOutput(from: ReplicaName, epoch: number, kind: 'console' | 'disk', protectedPrimary: boolean): void {
    if (protectedPrimary && epoch > this.backupAckedThrough) {
      this.fail(`${from} released ${kind} output of epoch ${epoch} before the backup acknowledged it (acknowledged through ${this.backupAckedThrough})`);
    }
    const last = this.outputs[this.outputs.length - 1];
    if (last !== undefined && last.replica !== from) {
      if (this.outputs.some((record) => record.replica === from)) {
        this.fail(`${from} performed output again after ${last.replica} had gone live: two live replicas`);
      }
    }
    this.outputs.push({ atMs: this.now, replica: from, epoch, kind });
  }

  /** Invariant 1: the backup's state at the end of a sampled epoch equals the primary's. */
  epochDone(from: ReplicaName, epoch: number, machine: Machine, promoted: boolean): void {
    if (!this.sampledEpochs.has(epoch) || promoted) return;
    const digest = machine.digest();
    if (from === 'primary') {
      this.primaryDigests.set(epoch, digest);
      return;
    }
    const expected = this.primaryDigests.get(epoch);
    if (expected !== undefined && expected !== digest) this.fail(`the backup's state after epoch ${epoch} differs from the primary's`);
  }

  private finalChecks(): void {
    if (this.failures.length > 0) return;
    const results = [...this.replicas.values()];
    for (const replica of results) {
      if (replica.result?.end.kind === 'divergence') this.fail(`the ${replica.name} reported divergence: ${replica.result.reason}`);
    }
    const guestFinished = results.filter((replica) => replica.result?.end.kind === 'guest');
    const backup = this.replicas.get('backup')!;
    if (guestFinished.length === 0 && backup.result?.end.kind === 'no-state' && this.outputs.length === 0) {
      // The primary died before its backup had the state: the guest was never protected, and
      // (outputs waiting for acknowledgements the backup could not yet give) the world saw nothing.
      this.note('the primary died before the backup had its state: nothing to fail over, nothing was seen');
      return;
    }
    const primary = this.replicas.get('primary')!;
    if (guestFinished.length === 0 && this.plan.joinAtMs !== undefined && !primary.alive && backup.result?.end.kind === 'no-state') {
      // The guest ran alone until the join, and its primary died before the join was done:
      // the guest is lost, as on any unprotected machine. The world saw a failure-free run's start.
      if (!this.setup.expected.console.startsWith(this.consoleText())) this.fail('the console of a guest lost before its backup joined is not a failure-free run\'s beginning');
      this.note('the primary died before the backup had joined: the guest was not protected yet');
      return;
    }
    if (guestFinished.length === 0) {
      this.fail(`the guest did not finish: ${results.map((replica) => `${replica.name} ${replica.describe()}`).join('; ')}`);
      return;
    }
    for (const replica of guestFinished) {
      const end = replica.result!.end;
      if (end.kind !== 'guest' || end.guest.kind !== 'poweroff' || end.guest.status !== 0) this.fail(`the guest failed on the ${replica.name}: ${describeEnd(end)}`);
    }
    const consoleCheck = this.setup.checkConsole(this.consoleText());
    if (!consoleCheck.ok) this.fail(`console: ${consoleCheck.reason ?? 'differs from a failure-free run'}`);
    if (!equalBytes(this.disk, this.setup.expected.disk)) {
      const differing = firstDifference(this.disk, this.setup.expected.disk);
      this.fail(`the shared disk differs from a failure-free run's, first at byte ${differing}`);
    }
  }

  private consoleText(): string {
    return Buffer.concat(this.consoleChunks).toString('latin1');
  }

  fail(message: string): void {
    this.failures.push(`${message} (at ${this.now.toFixed(3)} ms)`);
  }

  note(line: string): void {
    this.trace.push(`${this.now.toFixed(3)} ms  ${line}`);
  }

  crashPointReached(name: ReplicaName, point: CrashPoint, count: number): boolean {
    const crash = this.plan.crash;
    return crash !== undefined && crash.replica === name && 'point' in crash.at && crash.at.point === point && crash.at.occurrence === count;
  }
}

class SimulatedReplica {
  alive = true;
  result: Extract<StepResult, { kind: 'finished' }> | undefined;
  wakeAtMs = Infinity;
  wakeToken = 0;
  /** The end of the step it is executing: input waits until then. */
  busyUntilMs = 0;
  readonly incoming = new FrameDecoder();
  readonly outgoing = { lastArrivalMs: 0 };

  constructor(
    readonly name: ReplicaName,
    readonly core: PrimaryReplica | BackupReplica,
    readonly io: SimulatedIo,
  ) {
    io.attach(this);
  }

  retired(): number {
    return this.core.currentMachine?.retiredInstructions ?? 0;
  }

  receive(message: Message, wireBytes: number): void {
    if (this.core instanceof PrimaryReplica) {
      if (message.type === 'hello') this.core.onHello(message.identity);
      else this.core.onMessage(message);
    } else {
      this.core.onMessage(message, wireBytes);
    }
  }

  /** Is this replica a primary whose outputs must wait for acknowledgements? */
  get protectedPrimary(): boolean {
    return this.core instanceof PrimaryReplica && this.core.currentRole === 'protected';
  }

  get promoted(): boolean {
    return this.core instanceof BackupReplica && this.core.promoted !== undefined;
  }

  describe(): string {
    if (!this.alive) return 'crashed';
    if (this.result === undefined) return 'still running';
    return `${this.result.reason} (${describeEnd(this.result.end)})`;
  }
}

class SimulatedIo implements ReplicaIo {
  private replica: SimulatedReplica | undefined;
  private readonly crashCounts = new Map<CrashPoint, number>();
  private outbox: Uint8Array[] = [];

  constructor(
    private readonly simulation: Simulation,
    private readonly name: ReplicaName,
  ) {}

  attach(replica: SimulatedReplica): void {
    this.replica = replica;
  }

  nowMs(): number {
    return this.simulation.now;
  }

  send(message: Message): number {
    const bytes = encodeMessage(message);
    if (this.name === 'backup' && message.type === 'ack') this.simulation.recordAck(message.epoch);
    if (this.name === 'primary' && message.type === 'epoch') this.simulation.checkEntry(message.entry);
    this.outbox.push(bytes);
    return bytes.length;
  }

  /** Messages written during a step leave when the step's work is done. */
  flush(costMs = 0): void {
    const sendAt = this.simulation.now + costMs;
    for (const bytes of this.outbox.splice(0)) this.simulation.transmit(this.name, bytes, sendAt);
  }

  consoleWrite(bytes: Uint8Array, epoch: number): void {
    this.simulation.consoleWrite(this.name, bytes, epoch, this.replica!.protectedPrimary);
  }

  diskSubmit(request: DiskRequest, epoch: number): void {
    this.simulation.diskSubmit(this.name, request, epoch, this.replica!.protectedPrimary);
  }

  takeConsoleInput(): Uint8Array {
    return new Uint8Array(0);
  }

  readonly consoleInputWaiting = false;
  readonly consoleBacklogged = false;

  // The simulated workloads have no NIC: the network is tested with real processes (test/net*.test.ts).
  networkSend(): void {
    throw new Error('the simulated machine has no NIC');
  }

  takeNetworkFrames(): Uint8Array[] {
    return [];
  }

  networkInputWaiting(): boolean {
    return false;
  }

  networkLinkUp(): boolean {
    return true;
  }

  readonly networkBacklogged = false;

  tryGoLive(generation: number): boolean {
    return this.simulation.goLive(this.name, generation);
  }

  crashPoint(point: CrashPoint): void {
    const count = (this.crashCounts.get(point) ?? 0) + 1;
    this.crashCounts.set(point, count);
    if (this.simulation.crashPointReached(this.name, point, count)) throw new SimulatedCrash(`at ${point} #${count}`);
  }

  epochDone(epoch: number, machine: Machine): void {
    this.simulation.epochDone(this.name, epoch, machine, this.replica?.promoted ?? false);
  }

  log(line: string): void {
    this.simulation.note(`${this.name}: ${line}`);
  }
}

/** A binary heap of timed actions; equal times run in insertion order (determinism). */
class EventQueue {
  private readonly heap: { atMs: number; order: number; action: () => void }[] = [];
  private counter = 0;

  push(atMs: number, action: () => void): void {
    const heap = this.heap;
    heap.push({ atMs, order: this.counter++, action });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  pop(): { atMs: number; action: () => void } | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left;
        if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right;
        if (smallest === i) break;
        [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
        i = smallest;
      }
    }
    return top;
  }
}

function before(a: { atMs: number; order: number }, b: { atMs: number; order: number }): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && createHash('sha256').update(a).digest('hex') === createHash('sha256').update(b).digest('hex');
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return i;
  return length;
}

/** A replica's end, in a word or two (traces and outcome summaries). */
function describeEnd(end: ReplicaEnd): string {
  if (end.kind !== 'guest') return end.kind;
  return end.guest.kind === 'poweroff' ? `guest status ${end.guest.status}` : `guest ${end.guest.kind}`;
}

/**
 * A failure-free run of `kernel` on one machine, disk requests completed at the next
 * boundary, time from the instruction count: what the world should see from a pair.
 */
export function referenceRun(kernel: LoadedImage, disk: Uint8Array, ramBytes: number, instructionLimit = 1_000_000_000): { console: string; disk: Uint8Array; status: number } {
  const image = disk.slice();
  const clock = new VirtualClock();
  const machine = new Machine({ ramBytes, disks: [{ capacityBytes: image.length, readOnly: false, serial: 'understudy-disk0' }] }, clock);
  machine.load(kernel);
  const chunks: Uint8Array[] = [];
  const completions: MachineEvent[] = [];
  while (machine.power === undefined && machine.retiredInstructions < instructionLimit) {
    const result = machine.run(20_000);
    for (const output of machine.takeOutputs()) {
      if (output.kind === 'console-output') {
        chunks.push(output.bytes);
        continue;
      }
      if (output.kind === 'net-transmit') continue; // no NIC in the simulated workloads
      const request = output.request;
      const base = { kind: 'disk-completion' as const, slot: request.slot, requestId: request.requestId, status: 'ok' as const };
      if (request.op === 'read') completions.push({ ...base, data: image.slice(request.offsetBytes, request.offsetBytes + request.lengthBytes) });
      else {
        if (request.op === 'write') image.set(request.data, request.offsetBytes);
        completions.push(base);
      }
    }
    for (const event of completions.splice(0)) machine.applyEvent(event);
    if (result.reason === 'wfi' && machine.isIdle && machine.clockDeadline !== undefined) clock.skipTo(machine.clockDeadline, machine.retiredInstructions);
    machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
  }
  const power = machine.power;
  return { console: Buffer.concat(chunks).toString('latin1'), disk: image, status: power?.kind === 'poweroff' ? power.status : -1 };
}
