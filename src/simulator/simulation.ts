/**
 * The seeded simulator: a primary and t backups (1 to 3), the links between them, the shared
 * disk, the console and the arbiter, in one process with virtual time. The replicas are the
 * production classes (`PrimaryReplica`, `BackupReplica`) driving real `Machine`s; only their
 * `ReplicaIo` is simulated. Faults come from the seed: crashes of any replica at a named point
 * of the protocol or at a moment in time (several at once, and the live one again and again),
 * partitions and resets of the links, latency and jitter; lost backups are replaced by new ones
 * that join whichever replica is live (as `pair` does). Invariants are checked while the run
 * goes on; a failing seed replays exactly.
 *
 * Invariants (docs/REPLICATION.md; ../shared/PAPER.md "Invariants our tests check"):
 *  1. each backup's execution is a prefix of its primary's (equal digests at sampled epochs);
 *  2. at most one replica ever performs output at a time: once a replica has gone live after
 *     another, the other never outputs again; each generation has one holder;
 *  3. the console the world saw is a failure-free machine's, except for repeats after a
 *     failover (P8); the disk ends exactly as a failure-free run leaves it. Only when crashes
 *     left no replica holding the guest may it end early: then the console is such a run's
 *     beginning (with repeats), and nothing was lost that a replica still held;
 *  4. a protected primary releases no output before every backup that follows it has
 *     acknowledged its epoch, except disk reads (they change nothing outside); and no read
 *     overtakes a write that its machine issued before it to a sector it reads;
 *  5. the guest finishes (progress after failover) within a bound of virtual time;
 *  6. no log entry outgrows its budget (entry-budget.ts), except by a single queued event
 *     larger than the budget, carried alone;
 *  7. no replica ever reports divergence (the simulator corrupts no machine: a digest that
 *     differs, or a replay that does, is a bug of ours); a backup its primary dropped may
 *     differ, and must say it was dropped.
 */
import { createHash } from 'node:crypto';
import { Machine, type BoardConfig, type CpuMode } from '../machine/board.js';
import type { DiskReadRequest, DiskRequest, MachineEvent } from '../machine/environment.js';
import type { LoadedImage } from '../machine/loader/elf.js';
import { ReplicaEnvironment } from '../replication/environment.js';
import type { EnvironmentPort } from '../machine/environment.js';
import { encodeMessage, epochEntryWireBytes, FrameDecoder, framePayloadBytesMax, sharedReadDataWireBytes, type EpochEntry, type Message, type ReplicaIdentity } from '../replication/messages.js';
import { epochEntryBytesDefault } from '../replication/entry-budget.js';
import { PrimaryReplica } from '../replication/primary.js';
import { BackupReplica } from '../replication/backup.js';
import {
  backupCrashPoints, epochMergeMax, optionsKey, primaryCrashPoints,
  type ArbiterAnswer, type ArbiterRecord, type CrashPoint, type PeerId, type ReplicaEnd, type ReplicaIo, type ReplicationOptions, type StepResult,
} from '../replication/replica.js';
import { Prng } from './prng.js';
import { fixedEntropy, VirtualClock, virtualEpochNs } from '../machine/clock.js';
import { mtimeTicksPerMs } from '../machine/time.js';
import { assert } from '../machine/assert.js';


/**
 * A replica's name: `primary` (the first), `backup`, `backup2`, `backup3` (the first backups),
 * `joiner1`, `joiner2`, ... (replacements). It is also its replicaId.
 */
type ReplicaName = string;

export interface FaultPlan {
  /** The backups at the start, and the most a primary keeps (the option `backups`); 1 when absent. */
  readonly backups?: number;
  readonly crash?: {
    readonly replica: ReplicaName;
    readonly at: { readonly point: string; readonly occurrence: number } | { readonly timeMs: number };
  };
  /**
   * More crashes at moments: of a replica by name, or of whichever replica is `live` then (a
   * primary, again and again); several may share a moment.
   */
  readonly crashes?: readonly { readonly replica: ReplicaName | 'live'; readonly timeMs: number }[];
  /** Every link is cut at this time (every replica stays up). */
  readonly partitionAtMs?: number;
  /** One replica's links are cut at this time (it stays up, alone). */
  readonly isolate?: { readonly replica: ReplicaName | 'live'; readonly atMs: number };
  /** Every connection is reset at this time: the replicas stay up and each side sees it close, at different moments. */
  readonly resetAtMs?: number;
  readonly linkLatencyMs: number;
  readonly linkJitterMs: number;
  readonly diskLatencyMs: number;
  /**
   * The backups connect from this time to a primary whose guest has run alone since the start
   * (a join of a running guest: a live copy, or the whole state at a boundary). Absent: they
   * connect at once to a primary that waits for its first.
   */
  readonly joinAtMs?: number;
  /**
   * A backup that is lost (crashed, stopped, refused while another joined) is replaced this
   * long after by a new one that joins the live replica, as `pair` does; absent: none is.
   */
  readonly rejoinAfterMs?: number;
  /**
   * A supervisor (as `pair` is, the replicas' parent) tells the backups of a primary that
   * crashed that its process has ended, this long after the crash: they need not wait out its
   * lease. Absent: nobody knows (separate hosts); a partition never brings a notice.
   */
  readonly exitNoticeAfterMs?: number;
  /**
   * A replica stops running for a while, alive (a frozen process, a host swapping): it takes no
   * step and reads nothing meanwhile; what arrived is read when it resumes. What the lease is
   * for, with a reset of the connections during the pause.
   */
  readonly pause?: { readonly replica: ReplicaName | 'live'; readonly atMs: number; readonly forMs: number };
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
  /** The disk answers writes at once (`DiskConfig.writeBack`); only with the reissue policy. Default false. */
  readonly writeBack?: boolean;
}

export interface SimulationResult {
  readonly seed: number;
  readonly plan: FaultPlan;
  readonly failures: string[];
  readonly virtualMs: number;
  readonly console: string;
  readonly outcome: Partial<Record<ReplicaName, string>>;
  readonly trace: string[];
  /** The first failover's time, from the primary's last word to the new primary's first instruction. */
  readonly failoverMs: number | undefined;
  /** Failovers in the run (promotions). */
  readonly failovers: number;
  /** Instructions each replica executed (its final machine's count). */
  readonly instructions: Partial<Record<ReplicaName, number>>;
  /** Epochs the primaries ended early because their log entry was full. */
  readonly epochsEndedEarly: number;
  /** Epochs that went on past boundaries with nothing to deliver (ReplicationOptions.fixedEpochs). */
  readonly epochsMerged: number;
  /** Steps of a primary that sent more than one entry (PrimaryReplica's `runsOn`). */
  readonly stepsRunOn: number;
  /** Reads whose data a backup took from the shared disk itself (messages.ts, `SharedRead`). */
  readonly sharedReads: number;
  /** Reads a live replica answered at once, inside the guest's instruction (messages.ts, 'disk-read'). */
  readonly readsAtOnce: number;
  /** The crashes left no replica holding the guest: it ended early (allowed, and checked as such). */
  readonly guestLost: boolean;
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
/** Replacement backups one run starts at most (each lost backup is replaced once, as in `pair`). */
const replacementsMax = 8;
/** A replacement waiting for the live replica to be promoted looks again this often. */
const connectRetryMs = 1;
/** Reads remembered per machine for invariant 4 (a write can only be overtaken by recent ones). */
const readsRememberedMax = 256;

class SimulatedCrash extends Error {
  override readonly name = 'SimulatedCrash';
}

/** The first backups' names. */
function backupName(index: number): ReplicaName {
  return index === 0 ? 'backup' : `backup${index + 1}`;
}

/**
 * The faults of a seed. A run of the simulator workload lasts about 80 ms of virtual time
 * (more under the original protocol) and some hundreds of epochs, so crash times and crash-point occurrences are drawn from
 * ranges that land inside it: before the backups have joined, during, and near the end.
 */
export function chooseFaultPlan(prng: Prng): FaultPlan {
  // A quarter of the seeds have a disk with no latency, as a local image file in the page
  // cache: a request completes within the step that issued it (ReplicaIo.takeDiskCompletions).
  // Taken from the same draw, so that the seeds' other draws stay as they were.
  const diskLatencyMs = prng.between(0.02, 0.3);
  const link = { linkLatencyMs: prng.between(0.05, 0.5), linkJitterMs: prng.between(0, 0.5), diskLatencyMs: diskLatencyMs < 0.09 ? 0 : diskLatencyMs };
  // One seed in three: the backups join the running guest at a moment of the run, so that
  // faults land before, during and after the join.
  const joined: FaultPlan = prng.chance(1 / 3) ? { ...link, joinAtMs: prng.between(0.5, 50) } : link;
  // One seed in three has two or three backups, and lost ones replaced (pair's behaviour);
  // one in five of the others replaces its lost backup too.
  const backups = prng.chance(1 / 3) ? prng.int(2, 3) : 1;
  const base: FaultPlan =
    backups > 1 ? { ...joined, backups, rejoinAfterMs: prng.between(0.5, 10) } : prng.chance(0.2) ? { ...joined, rejoinAfterMs: prng.between(0.5, 10) } : joined;
  // A crash at a moment: for a join, often during it (the copy takes a few milliseconds).
  const moment = (): number => (base.joinAtMs !== undefined && prng.chance(0.5) ? base.joinAtMs + prng.between(0, 4) : prng.between(2, 85));
  const anyBackup = (): ReplicaName => backupName(prng.int(0, backups - 1));
  if (backups > 1 && prng.chance(0.5)) return { ...base, ...severalFailures(prng, backups, moment) };
  const kind = prng.int(0, 9);
  if (kind === 0) return base; // no fault
  if (kind <= 3) return { ...base, crash: { replica: 'primary', at: { point: prng.pick(primaryCrashPoints), occurrence: prng.int(1, 40) } } };
  if (kind <= 5) return { ...base, crash: { replica: 'primary', at: { timeMs: moment() } } };
  if (kind === 6) return { ...base, crash: { replica: anyBackup(), at: { point: prng.pick(backupCrashPoints), occurrence: prng.int(1, 40) } } };
  if (kind === 7) return { ...base, crash: { replica: anyBackup(), at: { timeMs: moment() } } };
  if (kind === 8) return prng.chance(0.5) || backups === 1 ? { ...base, partitionAtMs: moment() } : { ...base, isolate: { replica: prng.chance(0.5) ? 'live' : anyBackup(), atMs: moment() } };
  return { ...base, resetAtMs: moment() };
}

/**
 * One seed in five also pauses the primary (from the stream `prng`, so that the other faults
 * stay as they were): for less than the lease or longer than the failure timeout, and in half
 * of them every connection is reset during the pause (the backup hears of it at once and may
 * go live while the primary still holds acknowledgements it has not read).
 */
function withPause(prng: Prng, plan: FaultPlan): FaultPlan {
  if (!prng.chance(0.2)) return plan;
  const atMs = plan.joinAtMs !== undefined && prng.chance(0.5) ? plan.joinAtMs + prng.between(1, 10) : prng.between(2, 85);
  const forMs = prng.chance(0.5) ? prng.between(5, 150) : prng.between(200, 900);
  const pause = { replica: prng.chance(0.5) ? ('primary' as const) : ('live' as const), atMs, forMs };
  const reset = plan.resetAtMs === undefined && prng.chance(0.5) ? { resetAtMs: atMs + prng.between(0, Math.min(forMs, 50)) } : {};
  return { ...plan, pause, ...reset };
}

/**
 * Failures of t > 1: the primary and backups together (at most t at once), or the live replica again and again, each time once the last failover is done
 * (a backup waits out the lease, about 220 ms, before it is live) and new backups have joined.
 */
function severalFailures(prng: Prng, backups: number, moment: () => number): Pick<FaultPlan, 'crashes'> {
  if (prng.chance(0.5)) {
    const at = moment();
    const victims = ['live', ...Array.from({ length: backups }, (_, index) => backupName(index))].slice(0, prng.int(2, backups));
    // At once: before any replica can have noticed the first (the link's latency is at least 0.05 ms).
    return { crashes: victims.map((replica) => ({ replica, timeMs: at + (prng.chance(0.5) ? 0 : prng.between(0, 0.04)) })) };
  }
  const crashes: { replica: ReplicaName | 'live'; timeMs: number }[] = [];
  let at = moment();
  for (let count = prng.int(2, 4); count > 0; count--) {
    crashes.push({ replica: 'live', timeMs: at });
    // Sometimes a backup too, at the same moment.
    if (prng.chance(0.3)) crashes.push({ replica: backupName(prng.int(0, backups - 1)), timeMs: at });
    at += prng.between(240, 300);
  }
  return { crashes };
}

interface OutputRecord {
  readonly atMs: number;
  readonly replica: ReplicaName;
  readonly epoch: number;
  readonly kind: 'console' | 'disk';
}

/** A connection from a backup to the replica it follows (or joins): FIFO each way. */
interface Connection {
  readonly id: PeerId;
  readonly primary: ReplicaName;
  readonly backup: ReplicaName;
  /** Cut: everything sent is lost, and nobody is told. */
  cut: boolean;
  /** Closed: by a side, or by a crash; the other side is told (unless cut). */
  closed: boolean;
  readonly lastArrivalMs: { toPrimary: number; toBackup: number };
  readonly decoders: { atPrimary: FrameDecoder; atBackup: FrameDecoder };
}

export class Simulation {
  now = 0;
  /** 'entropy' values the hosts' clocks have handed out (a fixed sequence: runs repeat). */
  private entropyTaken = 0;
  private readonly prng: Prng;
  readonly plan: FaultPlan;
  private readonly options: ReplicationOptions;
  private readonly queue = new EventQueue();
  private readonly replicas = new Map<ReplicaName, SimulatedReplica>();
  private readonly connections = new Map<PeerId, Connection>();
  private nextConnection = 1;
  private replacements = 0;
  private readonly disk: Uint8Array;
  private diskBusyUntil = 0;
  private readonly generations = new Map<number, ArbiterRecord>();
  /** Backups that read the shared disk once fenced (`readSharedDisk`). */
  private readonly staleReaders = new Set<ReplicaName>();
  private readonly consoleChunks: Uint8Array[] = [];
  private readonly outputs: OutputRecord[] = [];
  readonly failures: string[] = [];
  readonly trace: string[] = [];
  /** The state digests of each primary at the sampled epochs, by primary. */
  private readonly primaryDigests = new Map<ReplicaName, Map<number, string>>();
  /** What each backup has acknowledged to the primary it follows (`backup@primary`). */
  private readonly ackedThrough = new Map<string, number>();
  private readonly sampledEpochs: Set<number>;
  /** The end of the last entry each primary sent, and the epochs ended early. */
  private readonly lastEntry = new Map<ReplicaName, { epoch: number; end: number }>();
  private epochsEndedEarly = 0;
  private epochsMerged = 0;
  private stepsRunOn = 0;
  private sharedReads = 0;
  private readsAtOnce = 0;
  /** Entries the replica stepping now has sent in this step. */
  private entriesThisStep = 0;
  private guestLost = false;
  private readonly config: BoardConfig;
  private readonly identity: Omit<ReplicaIdentity, 'replicaId'>;

  constructor(private readonly setup: SimulationSetup) {
    this.prng = new Prng(setup.seed);
    // Whether a supervisor announces crashes is drawn from a stream of its own, so that each
    // seed's other faults stay what they were before supervisors were simulated.
    const supervisor = new Prng(setup.seed ^ 0x5eed_0e1f);
    this.plan = setup.plan ?? withPause(supervisor, { ...chooseFaultPlan(this.prng), ...(supervisor.chance(0.5) ? { exitNoticeAfterMs: supervisor.between(0, 2) } : {}) });
    this.options = { ...setup.options, backups: this.plan.backups ?? 1 };
    this.disk = setup.disk.slice();
    this.sampledEpochs = new Set(Array.from({ length: 4 }, () => this.prng.int(1, 120)));
    this.config = { ramBytes: setup.ramBytes, disks: [{ capacityBytes: this.disk.length, readOnly: false, serial: 'understudy-disk0', writeBack: setup.writeBack === true }] };
    this.identity = { configKey: JSON.stringify(this.config), imageDigest: 'simulated', optionsKey: optionsKey(setup.options) };
  }

  run(): SimulationResult {
    const setup = this.setup;
    const plan = this.plan;
    // The primary: boots the guest, waits for its first backup (or, for a later join, runs it alone).
    const joinAtMs = plan.joinAtMs;
    const primaryIo = new SimulatedIo(this, 'primary');
    const primaryEnvironment = new ReplicaEnvironment(this.clock(0));
    const primaryBoot = (): Machine => {
      const machine = new Machine(this.config, primaryEnvironment, { cpu: setup.primaryCpu ?? 'interp' });
      machine.load(setup.kernel);
      return machine;
    };
    assert(this.goLive('primary', 1, []).won, 'the arbiter refused the first generation');
    const primary = new PrimaryReplica(primaryBoot(), primaryEnvironment, primaryIo, this.options, { ...this.identity, replicaId: 'primary' }, primaryBoot, {
      epoch: 0, generation: 1, role: joinAtMs === undefined ? 'waiting' : 'solo', clusterId: `sim-${setup.seed}`,
    });
    this.replicas.set('primary', new SimulatedReplica('primary', primary, primaryIo));

    // The backups connect, one after another (a primary takes one join at a time).
    const backups = plan.backups ?? 1;
    for (let index = 0; index < backups; index++) {
      const name = backupName(index);
      this.createBackup(name, index + 1);
      this.queue.push((joinAtMs ?? 0) + index * 3, () => {
        if (joinAtMs !== undefined) this.note(`${name} connects to the running primary`);
        this.connect(name, 'primary');
      });
    }

    if (plan.crash !== undefined && 'timeMs' in plan.crash.at) {
      const victim = plan.crash.replica;
      this.queue.push(plan.crash.at.timeMs, () => this.crash(victim, 'at a moment in time'));
    }
    for (const crash of plan.crashes ?? []) this.queue.push(crash.timeMs, () => this.crash(this.resolve(crash.replica), 'at a moment in time'));
    const pause = plan.pause;
    if (pause !== undefined) {
      this.queue.push(pause.atMs, () => {
        const replica = this.replicas.get(this.resolve(pause.replica))!;
        if (!replica.alive || replica.result !== undefined) return;
        replica.busyUntilMs = Math.max(replica.busyUntilMs, this.now + pause.forMs);
        this.note(`${replica.name} pauses for ${pause.forMs.toFixed(1)} ms`);
      });
    }
    if (plan.resetAtMs !== undefined) {
      this.queue.push(plan.resetAtMs, () => {
        this.note('every connection reset');
        for (const connection of this.connections.values()) {
          if (connection.closed || connection.cut) continue;
          connection.cut = true;
          // Each side's operating system reports the reset on its own schedule.
          for (const side of ['primary', 'backup'] as const) {
            this.queue.push(this.now + this.prng.between(0, 3), () => this.whenIdle(connection[side], () => this.tellClosed(connection, side, 'connection reset')));
          }
        }
      });
    }
    if (plan.partitionAtMs !== undefined) {
      this.queue.push(plan.partitionAtMs, () => {
        for (const connection of this.connections.values()) connection.cut = true;
        this.note('every link cut (partition)');
      });
    }
    const isolate = plan.isolate;
    if (isolate !== undefined) {
      this.queue.push(isolate.atMs, () => {
        const name = this.resolve(isolate.replica);
        for (const connection of this.connections.values()) if (connection.primary === name || connection.backup === name) connection.cut = true;
        this.note(`${name}'s links cut (partition)`);
      });
    }
    this.wake('primary', 0);

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
    const reports = [...this.replicas.values()].flatMap((replica) => (replica.core instanceof BackupReplica && replica.core.report !== undefined ? [replica.core.report] : []));
    // Only a request issued before a backup joined can be one it never saw issued (P8): the
    // failover epoch's own requests, above all, are submitted, not completed as uncertain.
    for (const report of reports) {
      if (report.joinedAtEpoch === 0 && report.requestsNeverSeen > 0) {
        this.fail(`a backup that joined at epoch 0 completed ${report.requestsNeverSeen} disk request(s) it "never saw issued" as uncertain at its failover (epoch ${report.epoch})`);
      }
    }
    const first = reports[0];
    return {
      seed: setup.seed,
      plan,
      failures: this.failures,
      virtualMs: this.now,
      console: this.consoleText(),
      outcome: Object.fromEntries([...this.replicas].map(([name, replica]) => [name, replica.describe()])),
      trace: this.trace,
      failoverMs: first === undefined ? undefined : first.liveAtMs - first.detectedAtMs + first.silenceMs,
      failovers: reports.length,
      instructions: Object.fromEntries([...this.replicas].map(([name, replica]) => [name, replica.retired()])),
      epochsEndedEarly: this.epochsEndedEarly,
      epochsMerged: this.epochsMerged,
      stepsRunOn: this.stepsRunOn,
      sharedReads: this.sharedReads,
      readsAtOnce: this.readsAtOnce,
      guestLost: this.guestLost,
    };
  }

  /** `live`: the holder of the newest generation (if alive); else the name itself. */
  private resolve(replica: ReplicaName | 'live'): ReplicaName {
    if (replica !== 'live') return replica;
    const newest = Math.max(...this.generations.keys());
    return this.generations.get(newest)!.replica;
  }

  /** Each host has its own clock: virtual time plus a per-host offset. */
  private clock(host: number): EnvironmentPort {
    const offsetTicks = host * 7_777_777;
    return {
      read: (kind) => {
        if (kind === 'entropy') return fixedEntropy(this.entropyTaken++);
        const ticks = BigInt(Math.floor(this.now * mtimeTicksPerMs)) + BigInt(offsetTicks);
        return kind === 'mtime' ? ticks : virtualEpochNs + BigInt(Math.floor(this.now * 1_000_000));
      },
    };
  }

  /** A backup replica (not connected yet): a machine of the same configuration, filled from its primary's state. */
  private createBackup(name: ReplicaName, host: number): SimulatedReplica {
    const io = new SimulatedIo(this, name);
    const environment = new ReplicaEnvironment(this.clock(host));
    const createMachine = (): Machine => new Machine(this.config, environment);
    const boot = (): Machine => {
      const machine = createMachine();
      machine.load(this.setup.kernel);
      return machine;
    };
    const backup = new BackupReplica(createMachine, environment, this.clock(host), io, this.options, { ...this.identity, replicaId: name }, boot);
    const replica = new SimulatedReplica(name, backup, io);
    this.replicas.set(name, replica);
    return replica;
  }

  /**
   * A backup connects to `primary` and says hello. Where nothing is live to take it (the
   * replica has stopped), the connection is refused at once, as by an operating system.
   */
  private connect(name: ReplicaName, primary: ReplicaName): void {
    const backup = this.replicas.get(name)!;
    if (!backup.alive || backup.result !== undefined) return;
    const connection: Connection = {
      id: this.nextConnection++, primary, backup: name, cut: false, closed: false,
      lastArrivalMs: { toPrimary: 0, toBackup: 0 }, decoders: { atPrimary: new FrameDecoder(), atBackup: new FrameDecoder() },
    };
    this.connections.set(connection.id, connection);
    backup.upstream = connection;
    const target = this.replicas.get(primary)!;
    if (!target.alive || target.result !== undefined || target.primaryCore === undefined) {
      connection.closed = true;
      this.invoke(backup, () => backup.backupCore!.onDisconnect('connection refused'));
      this.wake(name, this.now);
      return;
    }
    this.invoke(backup, () => backup.backupCore!.sayHello());
    this.wake(name, this.now);
  }

  /**
   * A backup was lost: a replacement joins the live replica a moment later, as `pair` starts
   * one (bounded: each run replaces at most `replacementsMax`).
   */
  private replaceLost(name: ReplicaName): void {
    const after = this.plan.rejoinAfterMs;
    if (after === undefined || this.replacements >= replacementsMax || this.guestLost) return;
    if ([...this.replicas.values()].some((replica) => replica.result?.end.kind === 'guest')) return;
    this.replacements++;
    const joiner = `joiner${this.replacements}`;
    this.note(`${name} is replaced by ${joiner}`);
    this.createBackup(joiner, 10 + this.replacements);
    this.queue.push(this.now + after, () => this.connectToLive(joiner, 0));
  }

  private connectToLive(name: ReplicaName, attempts: number): void {
    const live = this.replicas.get(this.resolve('live'))!;
    if (!live.alive || live.result !== undefined) {
      // Gone, but a backup that outlived it holds the guest and may take over (it has yet to
      // notice, or to win the arbiter): a replacement keeps trying, as a real one does until
      // its join times out.
      const successor = [...this.replicas.values()].some((replica) => replica.alive && replica.result === undefined && replica.holdsGuest);
      if (successor && attempts < 1000) {
        this.queue.push(this.now + connectRetryMs, () => this.connectToLive(name, attempts + 1));
        return;
      }
      this.note(`${name}: nothing live to join`);
      this.finishReplica(this.replicas.get(name)!, { kind: 'finished', end: { kind: 'no-state' }, reason: 'nothing live to join' }, false);
      return;
    }
    // Promoted, but not yet (it waits out the lease): a real replica is not listening yet either.
    if (live.primaryCore === undefined && attempts < 1000) {
      this.queue.push(this.now + connectRetryMs, () => this.connectToLive(name, attempts + 1));
      return;
    }
    this.note(`${name} connects to ${live.name}`);
    this.connect(name, live.name);
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
      // Paused (or still busy): the step waits until it resumes.
      if (replica.busyUntilMs > this.now) this.wake(name, replica.busyUntilMs);
      else this.step(replica);
    });
  }

  private step(replica: SimulatedReplica): void {
    if (!replica.alive || replica.result !== undefined) return;
    const before = replica.retired();
    let result: StepResult;
    replica.io.stepping = before;
    this.entriesThisStep = 0;
    try {
      result = replica.core.step();
    } catch (error) {
      if (error instanceof SimulatedCrash) {
        this.crash(replica.name, error.message);
        return;
      }
      throw error;
    } finally {
      replica.io.stepping = undefined;
    }
    if (this.entriesThisStep > 1) {
      // Only after an epoch that ended at an output dealt with at once; never with fixed epochs or under P2.
      const options = this.setup.options;
      if (options.fixedEpochs === true || options.protocol === 'original') this.fail(`a step of ${replica.name} sent ${this.entriesThisStep} entries (fixed epochs: ${options.fixedEpochs === true}; protocol ${options.protocol})`);
      this.stepsRunOn++;
    }
    // Completions of a disk with no latency that the step did not take: delivered now, between
    // steps; the next step comes for them even if this one blocked (as the runtime's loop does).
    const performed = replica.io.performed.splice(0);
    for (const completion of performed) replica.core.onDiskCompletion(completion);
    const cost = stepOverheadMs + Math.max(0, replica.retired() - before) / instructionsPerMs;
    replica.busyUntilMs = this.now + cost;
    replica.io.flush(cost);
    if (result.kind === 'finished') {
      this.finishReplica(replica, result);
      return;
    }
    // The next step comes a moment after this one ends, so that input that arrived meanwhile
    // is taken first (a real replica reads its socket between steps).
    if (result.kind === 'progress' || performed.length > 0) this.wake(replica.name, this.now + cost + stepGapMs);
    else if (result.untilMs !== undefined) this.wake(replica.name, Math.max(result.untilMs, this.now + cost + stepGapMs));
  }

  /** A replica stopped: its process exits, its connections close; a backup lost is replaced. */
  private finishReplica(replica: SimulatedReplica, result: Extract<StepResult, { kind: 'finished' }>, replace = true): void {
    replica.result = result;
    this.note(`${replica.name} finished: ${result.reason} (${describeEnd(result.end)})`);
    this.closeConnectionsOf(replica.name);
    if (this.holders().length === 0 && result.end.kind !== 'guest' && !this.guestLost) {
      this.note('no replica holds the guest any more');
      // A paused primary that lost the arbiter counts as a failure too: with a crash besides,
      // more failures than backups may have lost the guest.
      if (this.plan.pause !== undefined && (this.plan.crash !== undefined || this.plan.crashes !== undefined)) this.guestLost = true;
    }
    if (replace && result.end.kind !== 'guest') this.replaceLost(replica.name);
  }

  private crash(name: ReplicaName, how: string): void {
    const replica = this.replicas.get(name);
    if (replica === undefined || !replica.alive || replica.result !== undefined) return;
    replica.alive = false;
    replica.io.flush(0); // what it had written to its socket before dying still goes out
    this.note(`${name} crashed (${how})`);
    const followers = [...this.connections.values()].filter((connection) => connection.primary === name && !connection.closed).map((connection) => ({ connection, backup: connection.backup }));
    // The peers' operating systems see the connections close, unless the link is cut.
    this.closeConnectionsOf(name);
    const noticeAfter = this.plan.exitNoticeAfterMs;
    if (noticeAfter !== undefined) {
      for (const { connection, backup } of followers) {
        this.queue.push(this.now + noticeAfter, () =>
          this.whenIdle(backup, () => {
            const replica = this.replicas.get(backup)!;
            if (replica.upstream !== connection) return; // it follows another primary by now
            this.note(`${backup} hears that ${name}'s process has ended`);
            replica.backupCore?.onPrimaryExited();
          }),
        );
      }
    }
    if (this.holders().length === 0) {
      this.guestLost = true;
      this.note('no replica holds the guest any more: it is lost');
    }
    this.replaceLost(name);
  }

  /** Replicas that hold the guest: the live one, and backups that have its state. */
  private holders(): SimulatedReplica[] {
    return [...this.replicas.values()].filter((replica) => replica.alive && replica.result === undefined && replica.holdsGuest);
  }

  private closeConnectionsOf(name: ReplicaName): void {
    for (const connection of this.connections.values()) {
      if (connection.closed || (connection.primary !== name && connection.backup !== name)) continue;
      const side = connection.primary === name ? 'backup' : 'primary';
      this.closeConnection(connection, side === 'backup' ? 'primary' : 'backup');
    }
  }

  /** One side of a connection learns that it has closed. */
  private tellClosed(connection: Connection, side: 'primary' | 'backup', reason: string): void {
    const replica = this.replicas.get(connection[side])!;
    if (side === 'backup') {
      if (replica.upstream === connection) replica.backupCore?.onDisconnect(reason);
    } else {
      replica.primaryCore?.onDisconnect(reason, connection.id);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The world: links, disk, console, arbiter

  /** Sends `bytes` on `connection` from side `from`, FIFO, arriving after the link's latency. */
  transmit(connection: Connection, from: 'primary' | 'backup', bytes: Uint8Array, sendAtMs: number): void {
    if (connection.cut || connection.closed) return;
    const to = from === 'primary' ? 'backup' : 'primary';
    const direction = to === 'primary' ? 'toPrimary' : 'toBackup';
    const arrival = Math.max(connection.lastArrivalMs[direction], sendAtMs + this.plan.linkLatencyMs + this.prng.float() * this.plan.linkJitterMs);
    connection.lastArrivalMs[direction] = arrival;
    this.deliverLater(connection, connection[to], arrival, () => {
      const target = this.replicas.get(connection[to])!;
      const decoder = to === 'primary' ? connection.decoders.atPrimary : connection.decoders.atBackup;
      // Arbitrary splits: the decoder must take a stream cut anywhere.
      const cut = this.prng.int(0, bytes.length);
      for (const part of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
        for (const frame of decoder.pushFrames(part)) target.receive(connection, to, frame.message, frame.wireBytes);
      }
    });
  }

  /** A connection closed by one side (a primary dropping a backup): the other learns it. */
  closeConnection(connection: Connection, by: 'primary' | 'backup'): void {
    if (connection.closed) return;
    connection.closed = true;
    const other = by === 'primary' ? 'backup' : 'primary';
    // After what was sent before it (FIFO): a goodbye, a reject, arrives first.
    const direction = other === 'primary' ? 'toPrimary' : 'toBackup';
    const arrival = Math.max(connection.lastArrivalMs[direction], this.now + this.plan.linkLatencyMs);
    connection.lastArrivalMs[direction] = arrival;
    this.deliverLater(connection, connection[other], arrival, () => this.tellClosed(connection, other, 'peer closed the connection'));
  }

  connection(id: PeerId): Connection | undefined {
    return this.connections.get(id);
  }

  private deliverLater(connection: Connection, to: ReplicaName, atMs: number, deliver: () => void): void {
    this.queue.push(atMs, () => {
      if (connection.cut) return;
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

  /** Invariant 6, for each entry a primary sends (once, however many backups get it); counts the epochs that ended early. */
  checkEntry(from: ReplicaName, entry: EpochEntry): void {
    const last = this.lastEntry.get(from);
    if (last?.epoch === entry.epoch) return;
    this.entriesThisStep++;
    const shared = entry.sharedReads ?? [];
    const sent = epochEntryWireBytes(entry.reads.length, entry.events, shared.length);
    // The budget counts shared reads' data as if it travelled (a backup holds it all the same).
    const bytes = epochEntryWireBytes(entry.reads.length, entry.events) + shared.reduce((sum, read) => sum + sharedReadDataWireBytes(read), 0);
    const budget = this.setup.options.epochEntryBytesMax ?? epochEntryBytesDefault;
    const alone = entry.reads.length === 0 && entry.events.filter((event) => event.kind === 'disk-completion').length === 1;
    if (bytes > budget && !alone) this.fail(`epoch ${entry.epoch}'s log entry has ${bytes} bytes, more than its budget of ${budget}`);
    if (sent > framePayloadBytesMax) this.fail(`epoch ${entry.epoch}'s log entry has ${sent} bytes, more than a frame holds`);
    if (entry.stop === 'budget' && last !== undefined && entry.endRetired - last.end < this.setup.options.epochInstructions) this.epochsEndedEarly++;
    if (last !== undefined && entry.epoch === last.epoch + 1 && entry.endRetired - last.end > this.setup.options.epochInstructions) {
      // Boundaries with nothing to deliver skipped: never with fixed epochs, never past the cap.
      const epochs = (entry.endRetired - last.end) / this.setup.options.epochInstructions;
      if (this.setup.options.fixedEpochs === true) this.fail(`epoch ${entry.epoch} spans ${epochs} epochs' instructions, with fixed epochs`);
      if (epochs > epochMergeMax) this.fail(`epoch ${entry.epoch} spans ${epochs} epochs' instructions, more than ${epochMergeMax}`);
      this.epochsMerged++;
    }
    this.lastEntry.set(from, { epoch: entry.epoch, end: entry.endRetired });
  }

  recordAck(backup: ReplicaName, primary: ReplicaName, epoch: number): void {
    const key = `${backup}@${primary}`;
    if (epoch > (this.ackedThrough.get(key) ?? 0)) this.ackedThrough.set(key, epoch);
  }

  consoleWrite(from: SimulatedReplica, bytes: Uint8Array, epoch: number): void {
    this.checkOutput(from, epoch, 'console');
    this.consoleChunks.push(bytes.slice());
  }

  diskSubmit(from: SimulatedReplica, request: DiskRequest, epoch: number): void {
    this.checkDiskOrder(from, request);
    if (request.op !== 'read') this.checkOutput(from, epoch, 'disk');
    // One disk, requests in order: each starts when the previous one is done.
    const start = Math.max(this.now, this.diskBusyUntil);
    const done = start + this.plan.diskLatencyMs;
    this.diskBusyUntil = done;
    const completion = this.perform(request);
    if (this.plan.diskLatencyMs === 0 && from.io.stepping !== undefined) {
      // Done at once: the step may take it (takeDiskCompletions), else it comes when the step ends.
      from.io.performed.push(completion);
      return;
    }
    this.queue.push(done, () => this.whenIdle(from.name, () => from.core.onDiskCompletion(completion)));
  }

  /**
   * A backup's shared read (messages.ts): the disk as it is now, not through the request queue.
   * A backup its primary has dropped may still receive entries sent before, and read for them
   * after the primary went on without it and released writes those reads should not see: its
   * state may then differ from the primary's, harmlessly, for it is fenced (the primary took
   * the next generation without it). Its state may differ from the primary's (`staleReaders`),
   * but it must not report a divergence: it finds at the arbiter that it was dropped, and says
   * so (Backup.diverge).
   */
  readSharedDisk(from: SimulatedReplica, slot: number, offsetBytes: number, lengthBytes: number): Uint8Array | { readonly error: string } {
    if (this.setup.options.readsInLog === true) this.fail('a backup read the shared disk itself, with reads in the log');
    const primaryName = from.upstream?.primary;
    const primary = primaryName === undefined ? undefined : this.replicas.get(primaryName)?.primaryCore;
    if (primary !== undefined && !this.staleReaders.has(from.name) && !(primary.status().backups ?? []).some((backup) => backup.replicaId === from.name)) {
      this.staleReaders.add(from.name);
      this.note(`${from.name} reads the shared disk after ${primaryName} dropped it: fenced, it may diverge`);
    }
    if (offsetBytes + lengthBytes > this.disk.length) return { error: `bytes ${offsetBytes}-${offsetBytes + lengthBytes} lie past the disk's end on virtio slot ${slot}` };
    this.sharedReads++;
    return this.disk.slice(offsetBytes, offsetBytes + lengthBytes);
  }

  /**
   * A live replica's read answered at once (messages.ts, 'disk-read'): the disk as it is now,
   * with every write submitted (they reach the disk when submitted, whatever the latency of
   * their completion). Every fourth read is refused, so that both ways stay in use.
   */
  readDiskNow(from: SimulatedReplica, request: DiskReadRequest): Uint8Array | undefined {
    if (request.requestId % 4 === 0) return undefined;
    this.checkDiskOrder(from, request);
    if (request.offsetBytes + request.lengthBytes > this.disk.length) return undefined;
    this.readsAtOnce++;
    return this.disk.slice(request.offsetBytes, request.offsetBytes + request.lengthBytes);
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

  /** The arbiter: each generation is won once, and remembers who won it and the backups named. */
  goLive(name: ReplicaName, generation: number, members: readonly string[]): ArbiterAnswer {
    const holder = this.generations.get(generation);
    if (holder !== undefined) return holder.replica === name ? { won: true } : { won: false, holder };
    this.generations.set(generation, { replica: name, members: [...members] });
    this.note(`${name} holds generation ${generation}${members.length > 0 ? ` (backups ${members.join(', ')})` : ''}`);
    return { won: true };
  }

  /** Who holds `generation` (a read; nothing changes). */
  holder(generation: number): ArbiterRecord | undefined {
    return this.generations.get(generation);
  }

  /** Per machine: the last reads performed (request ids grow in the order the guest issues). */
  private readonly readsPerformed = new WeakMap<Machine, (DiskRequest & { op: 'read' })[]>();

  /** Invariant 4's reads: a write performed after a later read of its sectors would have been missed by it. */
  private checkDiskOrder(from: SimulatedReplica, request: DiskRequest): void {
    const machine = from.core.currentMachine;
    if (machine === undefined) return;
    let reads = this.readsPerformed.get(machine);
    if (reads === undefined) this.readsPerformed.set(machine, (reads = []));
    if (request.op === 'read') {
      reads.push(request);
      if (reads.length > readsRememberedMax) reads.shift();
    } else if (request.op === 'write') {
      const end = request.offsetBytes + request.data.length;
      const missed = reads.find((read) => read.slot === request.slot && read.requestId > request.requestId && read.offsetBytes < end && request.offsetBytes < read.offsetBytes + read.lengthBytes);
      if (missed !== undefined) this.fail(`${from.name} performed disk write ${request.requestId} after read ${missed.requestId} of its sectors, which the guest issued later`);
    }
  }

  /** Invariants 2 and 4, at the moment of each output. */
  private checkOutput(from: SimulatedReplica, epoch: number, kind: 'console' | 'disk'): void {
    const primary = from.primaryCore;
    if (primary?.currentRole === 'protected') {
      for (const backup of primary.status().backups ?? []) {
        if (backup.state !== 'following') continue;
        const acked = this.ackedThrough.get(`${backup.replicaId}@${from.name}`) ?? 0;
        if (epoch > acked) this.fail(`${from.name} released ${kind} output of epoch ${epoch} before ${backup.replicaId} acknowledged it (acknowledged through ${acked})`);
      }
    }
    const last = this.outputs[this.outputs.length - 1];
    if (last !== undefined && last.replica !== from.name) {
      if (this.outputs.some((record) => record.replica === from.name)) {
        this.fail(`${from.name} performed output again after ${last.replica} had gone live: two live replicas`);
      }
    }
    this.outputs.push({ atMs: this.now, replica: from.name, epoch, kind });
  }

  /** Invariant 1: a backup's state at the end of a sampled epoch equals its primary's. */
  epochDone(from: SimulatedReplica, epoch: number, machine: Machine): void {
    if (!this.sampledEpochs.has(epoch)) return;
    const digest = machine.digest();
    if (from.primaryCore !== undefined) {
      let digests = this.primaryDigests.get(from.name);
      if (digests === undefined) this.primaryDigests.set(from.name, (digests = new Map()));
      digests.set(epoch, digest);
      return;
    }
    const primary = from.upstream?.primary;
    const expected = primary === undefined ? undefined : this.primaryDigests.get(primary)?.get(epoch);
    if (expected !== undefined && expected !== digest && !this.staleReaders.has(from.name)) this.fail(`${from.name}'s state after epoch ${epoch} differs from its primary's (${primary})`);
  }

  private finalChecks(): void {
    if (this.failures.length > 0) return;
    const results = [...this.replicas.values()];
    for (const replica of results) {
      if (replica.result?.end.kind === 'divergence') this.fail(`${replica.name} reported divergence: ${replica.result.reason}`);
    }
    const guestFinished = results.filter((replica) => replica.result?.end.kind === 'guest');
    if (guestFinished.length === 0 && this.guestLost) {
      // Crashes left no replica holding the guest (the primary died before any backup had its
      // state, or t + 1 crashes before new backups had joined): the world saw a failure-free
      // run's beginning, with repeats only.
      const check = checkConsolePrefix(this.setup.expected.console, this.consoleText(), this.setup.checkConsole);
      if (!check.ok) this.fail(`the console of a guest lost to crashes is not a failure-free run's beginning: ${check.reason ?? ''}`);
      return;
    }
    if (guestFinished.length === 0) {
      this.fail(`the guest did not finish: ${results.map((replica) => `${replica.name} ${replica.describe()}`).join('; ')}`);
      return;
    }
    for (const replica of guestFinished) {
      const end = replica.result!.end;
      if (end.kind !== 'guest' || end.guest.kind !== 'poweroff' || end.guest.status !== 0) this.fail(`the guest failed on ${replica.name}: ${describeEnd(end)}`);
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

/**
 * Whether `observed` is the beginning of `expected` with the repeats a failover allows: it
 * is, if some rest of `expected` completes it into a whole run that `check` accepts. The rest
 * starts where the observed text's last bytes stand in `expected`.
 */
function checkConsolePrefix(expected: string, observed: string, check: (observed: string) => { ok: boolean; reason?: string }): { ok: boolean; reason?: string } {
  if (observed.length === 0) return { ok: true };
  const tail = observed.slice(-Math.min(64, observed.length));
  let last: { ok: boolean; reason?: string } = { ok: false, reason: 'its last bytes are nowhere in the expected output' };
  for (let at = expected.indexOf(tail); at !== -1; at = expected.indexOf(tail, at + 1)) {
    last = check(observed + expected.slice(at + tail.length));
    if (last.ok) return last;
  }
  return last;
}

class SimulatedReplica {
  alive = true;
  result: Extract<StepResult, { kind: 'finished' }> | undefined;
  wakeAtMs = Infinity;
  wakeToken = 0;
  /** The end of the step it is executing: input waits until then. */
  busyUntilMs = 0;
  /** A backup's connection to the replica it follows. */
  upstream: Connection | undefined;

  constructor(
    readonly name: ReplicaName,
    readonly core: PrimaryReplica | BackupReplica,
    readonly io: SimulatedIo,
  ) {
    io.attach(this);
  }

  /** The primary this replica is (the first, or a promoted backup), if it is one. */
  get primaryCore(): PrimaryReplica | undefined {
    return this.core instanceof PrimaryReplica ? this.core : this.core.promoted;
  }

  /** The backup this replica is, if it was started as one. */
  get backupCore(): BackupReplica | undefined {
    return this.core instanceof BackupReplica ? this.core : undefined;
  }

  /** It holds the guest: a primary that may go on, or a backup with the state. */
  get holdsGuest(): boolean {
    const primary = this.primaryCore;
    if (primary !== undefined) return primary.currentRole !== 'halted';
    return this.backupCore!.currentRole !== 'joining';
  }

  retired(): number {
    return this.core.currentMachine?.retiredInstructions ?? 0;
  }

  receive(connection: Connection, side: 'primary' | 'backup', message: Message, wireBytes: number): void {
    if (side === 'backup') {
      if (this.upstream === connection) this.backupCore?.onMessage(message, wireBytes);
      return;
    }
    const primary = this.primaryCore;
    if (primary === undefined) return;
    if (message.type === 'hello') primary.onHello(message.identity, connection.id);
    else primary.onMessage(message, connection.id);
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
  private outbox: { connection: Connection; from: 'primary' | 'backup'; bytes: Uint8Array | 'close' }[] = [];

  constructor(
    private readonly simulation: Simulation,
    private readonly name: ReplicaName,
  ) {}

  /**
   * While the replica steps: its instruction count when the step began. Its own clock moves on
   * with the instructions it executes, as a real host's does (the step is charged the same
   * time when it ends); the guest's clock and everyone else's wait for the step's end.
   */
  stepping: number | undefined;

  attach(replica: SimulatedReplica): void {
    this.replica = replica;
  }

  nowMs(): number {
    if (this.stepping === undefined) return this.simulation.now;
    return this.simulation.now + Math.max(0, this.replica!.retired() - this.stepping) / instructionsPerMs;
  }

  send(message: Message, to?: PeerId): number {
    const bytes = encodeMessage(message);
    const connection = to === undefined ? this.replica!.upstream : this.simulation.connection(to);
    if (connection === undefined) return bytes.length;
    const from = to === undefined ? 'backup' : 'primary';
    if (from === 'backup' && message.type === 'ack') this.simulation.recordAck(this.name, connection.primary, message.epoch);
    if (from === 'primary' && message.type === 'epoch') this.simulation.checkEntry(this.name, message.entry);
    this.outbox.push({ connection, from, bytes });
    return bytes.length;
  }

  disconnect(peer: PeerId): void {
    const connection = this.simulation.connection(peer);
    if (connection !== undefined) this.outbox.push({ connection, from: 'primary', bytes: 'close' });
  }

  /** Messages written during a step leave when the step's work is done. */
  flush(costMs = 0): void {
    const sendAt = this.simulation.now + costMs;
    for (const { connection, from, bytes } of this.outbox.splice(0)) {
      if (bytes === 'close') this.simulation.closeConnection(connection, from);
      else this.simulation.transmit(connection, from, bytes, sendAt);
    }
  }

  consoleWrite(bytes: Uint8Array, epoch: number): void {
    this.simulation.consoleWrite(this.replica!, bytes, epoch);
  }

  /** Completions of this step's requests to a disk with no latency (see Simulation.diskSubmit). */
  readonly performed: MachineEvent[] = [];

  takeDiskCompletions(): MachineEvent[] {
    return this.performed.splice(0);
  }

  diskSubmit(request: DiskRequest, epoch: number): void {
    this.simulation.diskSubmit(this.replica!, request, epoch);
  }

  readSharedDisk(slot: number, offsetBytes: number, lengthBytes: number): Uint8Array | { readonly error: string } {
    return this.simulation.readSharedDisk(this.replica!, slot, offsetBytes, lengthBytes);
  }

  readDiskNow(request: DiskReadRequest): Uint8Array | undefined {
    return this.simulation.readDiskNow(this.replica!, request);
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

  tryGoLive(generation: number, members: readonly string[]): ArbiterAnswer {
    return this.simulation.goLive(this.name, generation, members);
  }

  arbiterHolder(generation: number): ArbiterRecord | undefined {
    return this.simulation.holder(generation);
  }

  crashPoint(point: CrashPoint): void {
    const count = (this.crashCounts.get(point) ?? 0) + 1;
    this.crashCounts.set(point, count);
    if (this.simulation.crashPointReached(this.name, point, count)) throw new SimulatedCrash(`at ${point} #${count}`);
  }

  epochDone(epoch: number, machine: Machine): void {
    this.simulation.epochDone(this.replica!, epoch, machine);
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
