/**
 * `pair`: a primary and a backup as two child processes of this one, on loopback. This
 * process owns the terminal (console input goes to whichever replica is live), prints the
 * failover, serves the pair's status, and kills a replica on request (Ctrl-A k / b, or the
 * --kill-*-after options).
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ReplicaStatus } from '../replication/replica.js';
import { TerminalConsole, type ConsolePort } from './console.js';
import { ExitStatus } from './exit-status.js';
import { openDisks, planBoot, projectRoot, type MachineSettings } from './guest-image.js';
import type { ChildMessage, ParentMessage } from './ipc-console.js';
import { reportOutcome } from './run-guest.js';
import { serveStatus, type PairStatus } from './status.js';
import { NetworkSwitch } from './network/switch.js';
import { formatNetSpec } from './network/option.js';

/** How often console input is handed to the live replica. */
const inputForwardIntervalMs = 10;
/** Console input handed to a replica in one message, at most. */
const inputChunkBytes = 4096;
/** Backups started in a row that fail to join before the pair gives up on protection. */
const joinAttemptsMax = 5;

export interface PairSettings {
  readonly machine: MachineSettings;
  /** The command line for the replicas: the machine and replication options, as given. */
  readonly replicaArguments: readonly string[];
  readonly arbiter: string | undefined;
  readonly statusPort: number | undefined;
  readonly verbose: boolean;
  readonly killPrimaryAfterMs: number | undefined;
  readonly killBackupAfterMs: number | undefined;
}

interface PairChild {
  readonly name: 'primary' | 'backup';
  readonly process: ChildProcess;
  role: ReplicaStatus['role'] | 'starting';
  /** The roles it has had: a backup that never was 'backup' failed to join. */
  readonly roles: Set<string>;
  finished: { status: number; reason: string; guestFinished: boolean } | undefined;
  exited: Promise<number | null>;
}

/** Runs the pair until the guest finishes or the user quits; returns the exit status. */
export async function runPair(settings: PairSettings): Promise<number> {
  // Check the machine settings here, so that bad input fails once, before any process starts.
  const { notes } = planBoot(settings.machine);
  for (const image of openDisks(settings.machine).images) image.close();

  const arbiter = settings.arbiter ?? fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-pair-'));
  // The network back-ends run here, in the process no failover touches (network/switch.ts).
  const networkDirectory = settings.machine.nets.length === 0 ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-net-'));
  let networkSwitch: NetworkSwitch | undefined;
  if (networkDirectory !== undefined) {
    try {
      networkSwitch = await NetworkSwitch.open(settings.machine.nets, networkDirectory, (line) => process.stderr.write(`\nunderstudy: ${line}\n`));
    } catch (error) {
      fs.rmSync(networkDirectory, { recursive: true, force: true });
      if (settings.arbiter === undefined) fs.rmSync(arbiter, { recursive: true, force: true });
      throw error;
    }
  }
  const nets = (name: 'primary' | 'backup'): string[] => (networkSwitch?.replicaSpecs(name) ?? []).flatMap((spec) => ['--net', formatNetSpec(spec)]);
  const passOn = settings.replicaArguments;
  const terminal = new TerminalConsole();
  const status: PairStatus = { primary: undefined, backup: undefined, failover: undefined };
  const statusServer = settings.statusPort === undefined ? undefined : serveStatus(settings.statusPort, () => status, () => {});
  let quitting = false;
  try {
    let killsScheduled = false;
    let outputClosed = false;
    let killedAtMs: number | undefined;
    let joinFailures = 0;
    // Assigned once the primary listens; read only by handlers that run after that.
    let backup: PairChild;
    // Each child's messages are handled from the moment it starts: its first messages may
    // arrive together (listening, then its role), and one not listened for is lost.
    const listen = (child: PairChild, onListening: (port: number) => void): void => {
      child.process.on('message', (message: ChildMessage) => {
        if (message.type === 'listening') {
          onListening(message.port);
        } else if (message.type === 'status') {
          status[child.name] = { ...message.status, exited: false };
        } else if (message.type === 'role') {
          child.role = message.role;
          child.roles.add(message.role);
          if (message.role === 'primary' || message.role === 'solo') networkSwitch?.setLive(child.name);
          if (child.name === 'backup' && message.role === 'backup') {
            joinFailures = 0;
            scheduleKills();
          }
        } else if (message.type === 'finished') {
          child.finished = { status: message.status, reason: message.reason, guestFinished: message.guestFinished };
        } else if (message.type === 'failover') {
          status.failover = message.report;
          const leaseMs = Math.round(message.report.liveAtMs - message.report.detectedAtMs);
          const when = killedAtMs === undefined ? `${leaseMs} ms after detecting it` : `${Math.round(message.wallClockMs - killedAtMs)} ms after the kill`;
          process.stderr.write(`\nunderstudy: the primary failed (${message.report.reason}); the backup went live ${when} (of which ${leaseMs} ms waiting out the old primary's lease)\n`);
        } else if (message.type === 'output-closed') {
          outputClosed = true;
        } else if (message.type === 'log') {
          if (settings.verbose) process.stderr.write(`[${child.name}] ${message.line}\n`);
        }
      });
    };
    // The guest starts protected: the primary waits for its backup.
    const primary = spawnReplica('primary', ['--listen', '127.0.0.1:0', '--wait-for-backup', '--arbiter', arbiter, ...nets('primary'), ...passOn]);
    const port = await new Promise<number>((resolve, reject) => {
      listen(primary, resolve);
      void primary.exited.then((code) => reject(new PairStartError(`the primary stopped before it listened (status ${code})`)));
    });
    // The primary has booted its machine: what the user should know about the boot.
    for (const note of notes) process.stderr.write(`understudy: ${note}\n`);
    const startBackup = (): PairChild => {
      const started = spawnReplica('backup', ['--connect', `127.0.0.1:${port}`, '--arbiter', arbiter, ...nets('backup'), ...passOn]);
      listen(started, () => {});
      void started.exited.then((code) => {
        const last = status.backup;
        if (started === backup && last !== undefined) status.backup = { ...last, exited: true, exitCode: code };
        // Ended without ever following the primary: the join failed (it said why, or it died).
        const joinFailed = started === backup && !started.roles.has('backup') && started.finished?.guestFinished !== true;
        if (joinFailed) retryJoin(started.finished?.reason ?? `it exited with ${code ?? started.process.signalCode}`);
      });
      return started;
    };
    backup = startBackup();
    // A backup that could not join is said at once and replaced: the pair must not look
    // protected when it is not, nor stay unprotected while a join can still succeed.
    const retryJoin = (reason: string): void => {
      joinFailures++;
      const primaryRunning = primary.process.exitCode === null && primary.process.signalCode === null && primary.finished === undefined;
      if (!primaryRunning || quitting) return;
      if (joinFailures >= joinAttemptsMax) {
        process.stderr.write(`\nunderstudy: the backup could not join the primary (${reason}); ${joinFailures} attempts failed: the guest is NOT protected\n`);
        return;
      }
      process.stderr.write(`\nunderstudy: the backup could not join the primary (${reason}); starting another backup\n`);
      backup = startBackup();
    };
    const children = (): PairChild[] => [primary, backup];
    const scheduleKills = (): void => {
      if (killsScheduled) return;
      killsScheduled = true;
      if (settings.killPrimaryAfterMs !== undefined) {
        setTimeout(() => {
          killedAtMs = Date.now();
          kill(primary);
        }, settings.killPrimaryAfterMs).unref();
      }
      if (settings.killBackupAfterMs !== undefined) setTimeout(() => kill(backup), settings.killBackupAfterMs).unref();
    };
    terminal.escapeCommands.set('k', () => {
      if (!running(primary)) return say('the primary is not running any more: nothing to kill');
      killedAtMs = Date.now();
      kill(primary);
    });
    let backupKillConfirmed = false;
    terminal.escapeCommands.set('b', () => {
      if (!running(backup)) return say('the backup is not running: nothing to kill');
      if (!running(primary) && !backupKillConfirmed) {
        // After a failover the old backup is the only copy of the guest.
        backupKillConfirmed = true;
        return say('the backup is the only live copy of the guest now: Ctrl-A b again kills it (and the guest with it)');
      }
      kill(backup);
    });
    const forwardInput = setInterval(() => {
      if ((terminal.quitRequested || outputClosed) && !quitting) {
        // Ctrl-A x: the user stops the whole pair, as `run` stops its machine; the backup
        // first, so that it does not take the primary's end for a failure to take over.
        quitting = true;
        for (const child of [backup, primary]) if (child.process.exitCode === null) child.process.kill('SIGTERM');
        return;
      }
      forward(terminal, children());
    }, inputForwardIntervalMs);
    void primary.exited.then((code) => {
      const last = status.primary;
      if (last !== undefined) status.primary = { ...last, exited: true, exitCode: code };
    });
    // Until both have exited; a backup replaced meanwhile (a failed join) is waited for too.
    let codes: (number | null)[];
    for (;;) {
      const current = children();
      codes = await Promise.all(current.map((child) => child.exited));
      if (current[1] === backup) break;
    }
    clearInterval(forwardInput);
    if (quitting) return reportOutcome({ kind: 'quit', outputClosed: outputClosed || terminal.outputClosed });
    const guestDone = children().find((child) => child.finished?.guestFinished === true);
    if (guestDone?.finished !== undefined) return guestDone.finished.status;
    const reasons = children().map((child, index) => `${child.name}: ${child.finished?.reason ?? `exited with ${codes[index]}`}`).join('; ');
    process.stderr.write(`understudy: the pair stopped without the guest finishing (${reasons})\n`);
    return ExitStatus.failure;
  } finally {
    terminal.close();
    statusServer?.close();
    networkSwitch?.close();
    if (networkDirectory !== undefined) fs.rmSync(networkDirectory, { recursive: true, force: true });
    if (settings.arbiter === undefined) fs.rmSync(arbiter, { recursive: true, force: true });
  }
}

/** The pair could not start (its primary stopped before listening). */
export class PairStartError extends Error {
  override readonly name = 'PairStartError';
}

function spawnReplica(name: 'primary' | 'backup', args: string[]): PairChild {
  const child = fork(path.join(projectRoot, 'bin/understudy.js'), [name, '--ipc', ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { name, process: child, role: 'starting', roles: new Set(), finished: undefined, exited };
}

function running(child: PairChild): boolean {
  return child.process.exitCode === null && child.process.signalCode === null && child.finished === undefined;
}

function say(line: string): void {
  process.stderr.write(`\nunderstudy: ${line}\n`);
}

function kill(child: PairChild): void {
  if (!running(child)) return;
  process.stderr.write(`\nunderstudy: killing the ${child.name} (pid ${child.process.pid}) with SIGKILL\n`);
  child.process.kill('SIGKILL');
}

/** Console input goes to the replica that is live now; it waits while none is. */
function forward(terminal: ConsolePort, children: PairChild[]): void {
  if (!terminal.hasInput) return;
  const live = children.find((child) => child.process.connected && child.finished === undefined && (child.role === 'primary' || child.role === 'solo'));
  if (live === undefined) return;
  live.process.send({ type: 'input', bytes: Array.from(terminal.takeInput(inputChunkBytes)) } satisfies ParentMessage);
}
