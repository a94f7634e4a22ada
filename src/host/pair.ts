/**
 * `pair`: a fault-tolerant VM on this host, as child processes of this one on loopback: a
 * primary and t backups (`--backups`, default 1), and after every failure new backups, so that
 * the VM is protected again (VMware FT restores redundancy the same way). This process owns the terminal (console
 * input goes to whichever replica is live), says every change of protection, serves the pair's
 * status, and kills replicas on request (Ctrl-A k / b, or the --kill-* options).
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FailoverReport } from '../replication/backup.js';
import type { ReplicaStatus } from '../replication/replica.js';
import { TerminalConsole } from './console.js';
import { ExitStatus } from './exit-status.js';
import { openDisks, planBoot, projectRoot, type MachineSettings } from './guest-image.js';
import type { ChildMessage, ParentMessage } from './ipc-console.js';
import { reportOutcome } from './run-guest.js';
import { serveStatus, type ControlAction, type ControlAnswer, type PairStatus, type ReplicaView } from './status.js';
import { initClusterKeys } from './replica/keys.js';
import { UnprotectedAlarm } from './alarm.js';
import { NetworkSwitch } from './network/switch.js';
import { formatNetSpec } from './network/option.js';
import { assert } from '../machine/assert.js';

/** How often console input is handed to the live replica. */
const inputForwardIntervalMs = 10;
/** Console input handed to a replica in one message, at most. */
const inputChunkBytes = 4096;
/** Backups started in a row that fail to join before the pair gives up on protection. */
const joinAttemptsMax = 5;
/** A second Ctrl-A k or b within this long confirms the kill of the only live copy. */
const confirmWindowMs = 5000;

export interface PairSettings {
  readonly machine: MachineSettings;
  /** The command line for the replicas: the machine and replication options, as given. */
  readonly replicaArguments: readonly string[];
  readonly arbiter: string | undefined;
  /** The replicas' channel: given keys, plain TCP, or (undefined) keys made for this run. */
  readonly channel: { readonly kind: 'tls'; readonly directory: string } | { readonly kind: 'insecure' } | undefined;
  readonly statusPort: number | undefined;
  /** t: the backups the pair runs (the replicas get the same option: a primary keeps this many). */
  readonly backups: number;
  readonly verbose: boolean;
  /** The alarm hook: run whenever the VM becomes unprotected. */
  readonly onUnprotected: string | undefined;
  /** SIGKILL the primary this long after the backup first joined (once), or after every join. */
  readonly killPrimaryAfterMs: number | undefined;
  readonly killPrimaryEveryMs: number | undefined;
  /** The same for the backup. */
  readonly killBackupAfterMs: number | undefined;
  readonly killBackupEveryMs: number | undefined;
}

interface PairChild {
  /** 1, 2, 3...: the order the pair started them in. */
  readonly number: number;
  readonly process: ChildProcess;
  role: ReplicaStatus['role'] | 'starting';
  /** The roles it has had: a backup that never was 'backup' failed to join. */
  readonly roles: Set<string>;
  /** Where it listens for a backup (a primary at once; a backup once promoted). */
  listenPort: number | undefined;
  /** A backup: the replica it was started to follow. */
  follows: PairChild | undefined;
  status: ReplicaView | undefined;
  finished: { status: number; reason: string; guestFinished: boolean } | undefined;
  readonly exited: Promise<number | null>;
}

/** Runs the pair until the guest finishes or the user quits; returns the exit status. */
export async function runPair(settings: PairSettings): Promise<number> {
  // Check the machine settings here, so that bad input fails once, before any process starts.
  const { notes } = planBoot(settings.machine);
  for (const image of openDisks(settings.machine, false).images) image.close();
  const arbiter = settings.arbiter ?? fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-pair-'));
  // TLS by default, with a cluster CA and a certificate made for this run (every replica of
  // the run presents the same one); they live only as long as the pair.
  const runKeys = settings.channel === undefined ? fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-pair-keys-')) : undefined;
  const channelArguments = settings.channel?.kind === 'insecure' ? ['--insecure'] : ['--tls', settings.channel?.directory ?? initClusterKeys(runKeys!, ['pair'])[0]!];
  // The network back-ends run here, in the process no failover touches (network/switch.ts).
  const networkDirectory = settings.machine.nets.length === 0 ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-net-'));
  let networkSwitch: NetworkSwitch | undefined;
  try {
    if (networkDirectory !== undefined) networkSwitch = await NetworkSwitch.open(settings.machine.nets, networkDirectory, (line) => say(line));
  } catch (error) {
    if (networkDirectory !== undefined) fs.rmSync(networkDirectory, { recursive: true, force: true });
    if (settings.arbiter === undefined) fs.rmSync(arbiter, { recursive: true, force: true });
    if (runKeys !== undefined) fs.rmSync(runKeys, { recursive: true, force: true });
    throw error;
  }
  const supervisor = new PairSupervisor(settings, [...settings.replicaArguments, ...channelArguments, '--arbiter', arbiter], notes, networkSwitch);
  try {
    return await supervisor.run();
  } finally {
    supervisor.close();
    networkSwitch?.close();
    if (networkDirectory !== undefined) fs.rmSync(networkDirectory, { recursive: true, force: true });
    if (settings.arbiter === undefined) fs.rmSync(arbiter, { recursive: true, force: true });
    if (runKeys !== undefined) fs.rmSync(runKeys, { recursive: true, force: true });
  }
}

/** The pair could not start (its primary stopped before it listened). */
export class PairStartError extends Error {
  override readonly name = 'PairStartError';
}

class PairSupervisor {
  private readonly terminal = new TerminalConsole();
  private readonly children: PairChild[] = [];
  /** The replica whose console the world sees. */
  private live: PairChild | undefined;
  /** Its backups, oldest first: joining (one at a time) or following; at most `settings.backups`. */
  private followers: PairChild[] = [];
  private lastFailover: FailoverReport | undefined;
  private failovers = 0;
  private joinFailures = 0;
  private quitting = false;
  private outputClosed = false;
  private killedAtMs: number | undefined;
  /** The moment a Ctrl-A k / b waits for its confirmation, if one does. */
  private confirmUntilMs: { key: string; untilMs: number } | undefined;
  private firstJoinSeen = false;
  private readonly statusServer: { close(): void } | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  /** When the last failover was reported (performance.now()). */
  private lastFailoverAtMs: number | undefined;
  /** When this pair started (for the times in --verbose lines). */
  private readonly startedMs = performance.now();
  private childrenChanged: (() => void) | undefined;
  /** `run` waits for the first primary's port here. */
  private firstListening: ((port: number) => void) | undefined;
  private readonly alarm: UnprotectedAlarm;

  constructor(
    private readonly settings: PairSettings,
    private readonly replicaArguments: readonly string[],
    private readonly notes: readonly string[],
    /** The network's back-ends and the replicas' sockets to them, if the VM has NICs. */
    private readonly networkSwitch: NetworkSwitch | undefined,
  ) {
    this.alarm = new UnprotectedAlarm(settings.onUnprotected);
    this.statusServer =
      settings.statusPort === undefined ? undefined : serveStatus(settings.statusPort, () => this.statusView(), () => {}, (action) => this.control(action));
  }

  async run(): Promise<number> {
    const primary = this.spawn('primary', ['--listen', '127.0.0.1:0', '--wait-for-backup']);
    this.live = primary;
    this.networkSwitch?.setLive(String(primary.number));
    const port = await new Promise<number>((resolve, reject) => {
      this.firstListening = resolve;
      void primary.exited.then((code) => reject(new PairStartError(`the primary stopped before it listened (status ${code})`)));
    });
    // The primary has booted its machine: what the user should know about the boot.
    for (const note of this.notes) process.stderr.write(`understudy: ${note}\n`);
    assert(port === primary.listenPort, 'the primary listens where it said');
    this.fillBackups();
    this.terminal.escapeCommands.set('k', () => this.killCommand('k'));
    this.terminal.escapeCommands.set('b', () => this.killCommand('b'));
    const forwardInput = setInterval(() => this.tick(), inputForwardIntervalMs);
    try {
      // Until every replica started has exited (a replacement started meanwhile included).
      for (;;) {
        const running = this.children.filter((child) => child.process.exitCode === null && child.process.signalCode === null);
        if (running.length === 0) break;
        await new Promise<void>((resolve) => {
          this.childrenChanged = resolve;
          void Promise.race(running.map((child) => child.exited)).then(() => resolve());
        });
      }
    } finally {
      clearInterval(forwardInput);
    }
    if (this.quitting) return reportOutcome({ kind: 'quit', outputClosed: this.outputClosed || this.terminal.outputClosed });
    const guestDone = this.children.find((child) => child.finished?.guestFinished === true);
    if (guestDone?.finished !== undefined) return guestDone.finished.status;
    const reasons = this.children.map((child) => `${this.describe(child)}: ${child.finished?.reason ?? `exited with ${child.process.exitCode ?? child.process.signalCode}`}`).join('; ');
    process.stderr.write(`understudy: the pair stopped without the guest finishing (${reasons})\n`);
    return ExitStatus.failure;
  }

  private spawn(command: 'primary' | 'backup', args: string[]): PairChild {
    const number = this.children.length + 1;
    // Each replica has its own socket to the network switch, with the NICs' MACs.
    const nets = (this.networkSwitch?.replicaSpecs(String(number)) ?? []).flatMap((spec) => ['--net', formatNetSpec(spec)]);
    const process = fork(path.join(projectRoot, 'bin/understudy.js'), [command, '--ipc', ...args, ...nets, ...this.replicaArguments], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const exited = new Promise<number | null>((resolve) => process.on('exit', (code) => resolve(code)));
    const child: PairChild = { number, process, role: 'starting', roles: new Set(), listenPort: undefined, follows: undefined, status: undefined, finished: undefined, exited };
    this.children.push(child);
    // Its messages are handled from the start: the first ones may arrive together, and one
    // not listened for is lost.
    process.on('message', (message: ChildMessage) => this.onMessage(child, message));
    // A replica that dies while a message to it is under way breaks the channel (EPIPE): its
    // exit is handled as any other, and the pair must not stop for it.
    process.on('error', (error) => this.onChildError(child, error));
    void exited.then((code) => this.onExit(child, code));
    this.childrenChanged?.();
    return child;
  }

  /** The backups that follow the live replica now (joined, running). */
  private following(): PairChild[] {
    return this.followers.filter((child) => child.follows === this.live && child.roles.has('backup') && running(child));
  }

  /**
   * Starts a backup for the live replica if it has fewer than `settings.backups`, one join at a
   * time (a primary takes one join at a time; the next starts once this one has joined).
   */
  private fillBackups(): void {
    const live = this.live;
    if (live === undefined || !running(live) || live.listenPort === undefined || this.quitting) return;
    if (this.joinFailures >= joinAttemptsMax || this.followers.length >= this.settings.backups) return;
    if (this.followers.some((child) => !child.roles.has('backup'))) return;
    const child = this.spawn('backup', ['--connect', `127.0.0.1:${live.listenPort}`, '--listen', '127.0.0.1:0']);
    child.follows = live;
    this.followers.push(child);
  }

  private onMessage(child: PairChild, message: ChildMessage): void {
    switch (message.type) {
      case 'listening':
        child.listenPort = message.port;
        if (child.number === 1) this.firstListening?.(message.port);
        // A promoted backup listens: it takes the next backups.
        if (child === this.live && child.roles.has('backup') && child.finished === undefined) this.fillBackups();
        return;
      case 'status':
        child.status = { ...message.status, exited: false };
        return;
      case 'role':
        child.role = message.role;
        child.roles.add(message.role);
        if (this.followers.includes(child) && message.role === 'backup') this.onJoined(child);
        return;
      case 'finished':
        child.finished = { status: message.status, reason: message.reason, guestFinished: message.guestFinished };
        this.verbose(child, `finished with status ${message.status}: ${message.reason}`);
        if (child === this.live && message.guestFinished) this.dropJoiningFollowers();
        return;
      case 'failover':
        this.onFailover(child, message.report, message.wallClockMs);
        return;
      case 'divergence':
        // The backup's state left the primary's: it stops being a backup (and exits); a new
        // one is started as after any lost backup.
        process.stderr.write(`\nunderstudy: NOT PROTECTED: divergence: the backup's state left the primary's at epoch ${message.epoch} (${message.reason}); the guest runs on, on the primary alone\n`);
        this.alarm.raise(`divergence at epoch ${message.epoch}: ${message.reason}`);
        return;
      case 'output-closed':
        this.outputClosed = true;
        return;
      case 'log':
        this.verbose(child, message.line);
        return;
    }
  }

  /**
   * The guest has ended on the live replica: a backup still on its way in has nothing to join
   * (the primary refuses it, or is gone): stop it rather than let it report a failed join.
   */
  private dropJoiningFollowers(): void {
    for (const follower of this.followers.filter((child) => !child.roles.has('backup') && running(child))) {
      this.followers = this.followers.filter((child) => child !== follower);
      follower.process.kill('SIGTERM');
    }
  }

  /**
   * A backup follows the live replica: the next one may start; with all of them, the VM is
   * protected (again).
   */
  private onJoined(child: PairChild): void {
    this.joinFailures = 0;
    const count = this.following().length;
    const backups = this.settings.backups;
    if (count < backups) {
      if (backups > 1) say(`a backup (pid ${child.process.pid}) has joined: ${count} of ${backups} backups follow`);
      this.fillBackups();
      return;
    }
    const first = !this.firstJoinSeen;
    this.firstJoinSeen = true;
    if (!first) process.stderr.write(`\nunderstudy: protected again: a new backup (pid ${child.process.pid}) has joined${backups > 1 ? ` (${backups} backups follow)` : ''}\n`);
    const { killPrimaryAfterMs, killPrimaryEveryMs, killBackupAfterMs, killBackupEveryMs } = this.settings;
    const primaryDelay = killPrimaryEveryMs ?? (first ? killPrimaryAfterMs : undefined);
    const backupDelay = killBackupEveryMs ?? (first ? killBackupAfterMs : undefined);
    const target = { live: this.live, follower: this.followers[0] };
    if (primaryDelay !== undefined) {
      this.later(primaryDelay, () => {
        if (this.live !== target.live) return;
        this.killedAtMs = Date.now();
        this.kill(target.live);
      });
    }
    if (backupDelay !== undefined) this.later(backupDelay, () => this.followers[0] === target.follower && this.kill(target.follower));
  }

  private onFailover(child: PairChild, report: FailoverReport, wallClockMs: number): void {
    this.lastFailover = report;
    this.lastFailoverAtMs = performance.now();
    this.failovers++;
    process.stderr.write(`\nunderstudy: the primary failed (${report.reason}); the backup went live ${describeFailover(report, this.killedAtMs === undefined ? undefined : wallClockMs - this.killedAtMs)}\n`);
    this.killedAtMs = undefined;
    this.live = child;
    // Frames from the network go to the new primary now (the switch first hands it the last moments again).
    this.networkSwitch?.setLive(String(child.number));
    // The other backups followed the old primary: they lose the arbiter and stop (a backup that
    // is further ahead than the winner could not follow it without a copy), and new ones join.
    this.followers = [];
    this.alarm.raise(`the primary failed (${report.reason}); the backup went live and has no backup yet`);
    if (child.listenPort !== undefined) this.fillBackups();
    else process.stderr.write('understudy: not protected until a new backup joins\n');
  }

  /** A message to a replica that has just died fails (EPIPE); anything else is said. Neither stops the pair. */
  private onChildError(child: PairChild, error: NodeJS.ErrnoException): void {
    if (error.code === 'EPIPE' || error.code === 'ERR_IPC_CHANNEL_CLOSED') return;
    process.stderr.write(`understudy: ${this.describe(child)}: ${error.message}\n`);
  }

  private onExit(child: PairChild, code: number | null): void {
    if (child.status !== undefined) child.status = { ...child.status, exited: true, exitCode: code };
    // Its process has ended, for certain (this is its parent): a process that has ended releases
    // nothing more, so its backups need not wait out its lease before they go live.
    if (child.listenPort !== undefined) {
      for (const follower of this.children) {
        if (follower.follows !== child || !running(follower) || !follower.process.connected) continue;
        follower.process.send({ type: 'primary-exited', port: child.listenPort } satisfies ParentMessage);
      }
    }
    this.networkSwitch?.forget(String(child.number));
    this.childrenChanged?.();
    if (!this.followers.includes(child)) return;
    this.followers = this.followers.filter((other) => other !== child);
    const live = this.live;
    const liveRunning = live !== undefined && running(live);
    if (!liveRunning || this.quitting || child.finished?.guestFinished === true || live.finished !== undefined) return;
    if (child.roles.has('backup')) this.alarm.raise(`the backup (pid ${child.process.pid}) is gone`);
    if (!child.roles.has('backup')) {
      // It never followed: the join failed (it said why, or it died).
      this.joinFailures++;
      const reason = child.finished?.reason ?? `it exited with ${code ?? child.process.signalCode}`;
      if (this.joinFailures >= joinAttemptsMax) {
        process.stderr.write(`\nunderstudy: the backup could not join the primary (${reason}); ${this.joinFailures} attempts failed: the guest is NOT protected\n`);
        this.alarm.raise(`no backup could join (${this.joinFailures} attempts; the last: ${reason})`);
        return;
      }
      process.stderr.write(`\nunderstudy: the backup could not join the primary (${reason}); starting another backup\n`);
    } else {
      const left = this.following().length;
      process.stderr.write(`\nunderstudy: the backup (pid ${child.process.pid}) is gone: ${left === 0 ? 'not protected' : `${left} of ${this.settings.backups} backups follow`}; starting a new backup\n`);
    }
    this.fillBackups();
  }

  private tick(): void {
    if ((this.terminal.quitRequested || this.outputClosed) && !this.quitting) {
      // Ctrl-A x: the user stops the whole pair, as `run` stops its machine; backups first,
      // so that none takes the primary's end for a failure to take over.
      this.quitting = true;
      const order = this.children.filter((child) => child !== this.live).concat(this.live === undefined ? [] : [this.live]);
      for (const child of order) if (running(child)) child.process.kill('SIGTERM');
      return;
    }
    // Console input goes to the replica that is live now; it waits while none is.
    const live = this.live;
    if (!this.terminal.hasInput || live === undefined || !live.process.connected || live.finished !== undefined) return;
    if (live.role !== 'primary' && live.role !== 'solo' && live.role !== 'waiting') return;
    live.process.send({ type: 'input', bytes: Array.from(this.terminal.takeInput(inputChunkBytes)) } satisfies ParentMessage);
  }

  /** Ctrl-A k (the primary) or b (the backup). Killing the only live copy asks twice. */
  private killCommand(key: 'k' | 'b'): void {
    const victim = key === 'k' ? this.live : this.followers[0];
    const name = key === 'k' ? 'primary' : 'backup';
    if (victim === undefined || !running(victim)) {
      say(`no ${name} is running: nothing to kill`);
      return;
    }
    const onlyCopy = key === 'k' ? this.following().length === 0 : victim === this.live;
    const confirmed = this.confirmUntilMs?.key === key && Date.now() < this.confirmUntilMs.untilMs;
    if (onlyCopy && !confirmed) {
      this.confirmUntilMs = { key, untilMs: Date.now() + confirmWindowMs };
      say(`the ${name} is the only live copy of the guest (no backup follows it): Ctrl-A ${key} again kills it, and the guest with it`);
      return;
    }
    this.confirmUntilMs = undefined;
    if (key === 'k') this.killedAtMs = Date.now();
    this.kill(victim);
  }

  /** A control action from the status port. */
  private control(action: ControlAction): ControlAnswer {
    const view = this.statusView();
    switch (action) {
      case 'test-failover': {
        // A controlled failure of the primary: only when a backup is there to take over.
        if (this.following().length === 0) return { ok: false, message: `not protected (${view.reason ?? '?'}): a failover now would end the guest` };
        say('test-failover (from the status port): the primary is killed; the backup takes over');
        this.killedAtMs = Date.now();
        this.kill(this.live);
        return { ok: true, message: `killed the primary (pid ${this.live?.process.pid}); the backup takes over, and a new backup follows` };
      }
      case 'restart-backup': {
        const follower = this.followers[0];
        if (follower === undefined || !running(follower)) return { ok: false, message: 'no backup is running (one is started after every failure)' };
        say('restart-backup (from the status port): the backup is stopped and a new one joins');
        this.kill(follower);
        return { ok: true, message: `stopped the backup (pid ${follower.process.pid}); a new one joins` };
      }
      case 'stop':
        say('stop (from the status port): the whole VM stops');
        this.quitting = true;
        for (const child of this.children.filter((c) => c !== this.live).concat(this.live === undefined ? [] : [this.live])) if (running(child)) child.process.kill('SIGTERM');
        return { ok: true, message: 'stopping the VM: every replica stops' };
    }
  }

  private kill(child: PairChild | undefined): void {
    if (child === undefined || !running(child)) return;
    process.stderr.write(`\nunderstudy: killing the ${child === this.live ? 'primary' : 'backup'} (pid ${child.process.pid}) with SIGKILL\n`);
    child.process.kill('SIGKILL');
  }

  private later(ms: number, action: () => void): void {
    this.timers.push(setTimeout(action, ms).unref());
  }

  /** With --verbose, a replica's log line: its role now, its pid and the time since the pair started. */
  private verbose(child: PairChild, line: string): void {
    if (!this.settings.verbose) return;
    const seconds = ((performance.now() - this.startedMs) / 1000).toFixed(3);
    process.stderr.write(`[${this.describe(child)} ${child.process.pid} +${seconds}s] ${line}\n`);
  }

  private describe(child: PairChild): string {
    if (child === this.live) return 'primary';
    const index = this.followers.indexOf(child);
    return index === -1 ? `replica ${child.number}` : this.settings.backups === 1 ? 'backup' : `backup ${index + 1}`;
  }

  /**
   * The pair's status: the live replica, its backups, whether the VM is protected (every one of
   * its t backups follows it) and why not.
   */
  private statusView(): PairStatus {
    const live = this.live;
    const backups = this.settings.backups;
    const following = this.following().length;
    const protectedNow = live !== undefined && running(live) && following === backups;
    let reason: string | undefined;
    if (!protectedNow) {
      const of = backups > 1 ? ` (${following} of ${backups} backups follow)` : '';
      const joiner = this.followers.find((child) => !child.roles.has('backup') && running(child));
      if (live === undefined || !running(live)) reason = 'no live replica (a failover is under way, or the guest has ended)';
      else if (joiner !== undefined) {
        const copy = live.status?.joining;
        reason = copy === undefined || copy === null ? 'a backup is joining' : `a backup is joining (live copy: round ${copy.round}, ${(copy.bytesSent / 1048576).toFixed(1)} MiB sent in ${copy.ms} ms)`;
        reason += of;
      } else if (following === 0) reason = 'no backup';
      else reason = `a backup is missing${of}`;
    }
    return {
      protected: protectedNow,
      ...(reason === undefined ? {} : { reason }),
      primary: live?.status,
      backup: this.followers[0]?.status,
      backups: this.followers.map((child) => child.status),
      failover: this.lastFailover,
      failovers: this.failovers,
      sinceFailoverMs: this.lastFailoverAtMs === undefined ? undefined : Math.round(performance.now() - this.lastFailoverAtMs),
    };
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.terminal.close();
    this.statusServer?.close();
  }
}

function running(child: PairChild): boolean {
  return child.process.exitCode === null && child.process.signalCode === null && child.finished === undefined;
}

function say(line: string): void {
  process.stderr.write(`\nunderstudy: ${line}\n`);
}

/**
 * When a backup went live and where the time went (the benchmark reads this line): from the
 * kill if this pair killed the primary (`sinceKillMs`), else from the detection.
 */
export function describeFailover(report: FailoverReport, sinceKillMs: number | undefined): string {
  const phases = report.phasesMs;
  const afterDetection = report.liveAtMs - report.detectedAtMs;
  const when = sinceKillMs === undefined ? `${Math.round(afterDetection)} ms after detecting it` : `${Math.round(sinceKillMs)} ms after the kill`;
  const detection = sinceKillMs === undefined ? report.silenceMs : Math.max(0, sinceKillMs - afterDetection);
  return (
    `${when}: detection ${Math.round(detection)} ms; ${Math.round(afterDetection)} ms from detection to live: ` +
    `catching up ${Math.round(phases.catchUp)} ms (${report.epochsCaughtUp} epochs), arbiter ${Math.round(phases.arbiter)} ms, ` +
    `lease ${Math.round(phases.lease)} ms${report.primaryExited ? " (none to wait out: the old primary's process had ended)" : ''}; ` +
    `then the failover epoch ${phases.failoverEpoch.toFixed(1)} ms, re-issued I/O ${phases.reissue.toFixed(1)} ms`
  );
}
