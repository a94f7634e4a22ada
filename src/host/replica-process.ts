/**
 * One replica process (`understudy primary` or `understudy backup`, alone or forked by
 * `pair`): builds its machine from the settings, runs the replica, and reports to its parent
 * over IPC when it has one.
 */
import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Machine } from '../machine/board.js';
import { diskSlot } from '../machine/board.js';
import { VirtualClock } from '../machine/clock.js';
import type { EnvironmentPort } from '../machine/environment.js';
import { ReplicaEnvironment } from '../replication/environment.js';
import { optionsKey, type ReplicaEnd, type ReplicationOptions, type ReplicaStatus } from '../replication/replica.js';
import { HostClock } from './clocks.js';
import { TerminalConsole, type ConsolePort } from './console.js';
import { boardConfig, boot, bootDigest, createMachine, openDisks, planBoot, type MachineSettings } from './guest-image.js';
import { warmsUp, warmUpCpu } from './warm-up.js';
import { IpcConsole, type ChildMessage, type ParentMessage } from './ipc-console.js';
import { openArbiter } from './replica/arbiter.js';
import { UnprotectedAlarm } from './alarm.js';
import { runReplica, type ReplicaProcessResult } from './replica/runtime.js';
import { ReplicaStartError, type ChannelSecurity, type Endpoint } from './replica/transport.js';
import type { ReplicaProcessStatus } from './status.js';
import { openNetworks } from './network/backends.js';
import { configKey } from '../machine/board.js';

export interface ReplicaSettings {
  readonly role: 'primary' | 'backup';
  /** Where a primary listens, or a backup connects. */
  readonly endpoint: Endpoint;
  /** A backup: where it listens for a backup of its own once promoted. */
  readonly listenWhenPromoted: Endpoint | undefined;
  /** The replication channel: mutual TLS with the cluster's keys, or plain TCP. */
  readonly security: ChannelSecurity;
  readonly machine: MachineSettings;
  readonly options: ReplicationOptions;
  /** The arbiter's shared directory (default: beside the first disk image). */
  readonly arbiter: string | undefined;
  readonly statusPort: number | undefined;
  readonly connectTimeoutMs: number | undefined;
  /** A primary waits for its first backup before it runs the guest. */
  readonly waitForBackup: boolean;
  readonly verbose: boolean;
  /** --trace-io: a primary reports where its disk requests' time went (issue 14). */
  readonly traceIo?: boolean;
  /** The alarm hook: run whenever this replica, live, loses its protection. */
  readonly onUnprotected: string | undefined;
  /** Forked by `pair`: console and reports over IPC. */
  readonly viaIpc: boolean;
}

/** Runs the replica to its end; returns the process's exit status. */
export async function runReplicaProcess(settings: ReplicaSettings): Promise<number> {
  return (await runReplicaOnce(settings)).status;
}

/** How long a standby waits between rounds of its replicas' addresses. */
const standbyRetryMs = 1000;
/** How long a standby keeps trying one address before it tries the next. */
const standbyConnectMs = 500;

/**
 * `understudy standby`: a backup-to-be on a host of its own. It tries each replica address
 * in turn until one is live without a backup (an unprotected VM) and takes it; busy replicas
 * and addresses where nothing listens are tried again, quietly, every second. Once it has
 * joined it is an ordinary backup (promoted, it listens at its own --listen for the next).
 */
export async function runStandby(settings: ReplicaSettings, replicas: readonly Endpoint[]): Promise<number> {
  const where = replicas.map((endpoint) => `${endpoint.host}:${endpoint.port}`).join(', ');
  process.stderr.write(`understudy standby: waiting to become the backup of whichever of ${where} runs the VM unprotected\n`);
  // Opened once for all attempts: a backup neither writes its disks nor listens to its
  // network back-ends before it is live, so a refused attempt leaves them as they were (and
  // passt is not started again every second).
  const resources = await openResources({ ...settings, role: 'backup' });
  try {
    for (;;) {
      for (const endpoint of replicas) {
        let attempt: ReplicaAttempt;
        try {
          attempt = await runReplicaOnce({ ...settings, role: 'backup', endpoint, connectTimeoutMs: standbyConnectMs, standby: true }, resources);
        } catch (error) {
          if (error instanceof ReplicaStartError && error.code === 'unreachable') continue;
          throw error;
        }
        if (attempt.followed) return attempt.status;
        // Refused because it has a backup, or gone during the join: another round. Anything
        // else (another image, configuration, options, keys) will not change by waiting.
        const retry = (attempt.end?.kind === 'refused' && attempt.end.code === 'busy') || attempt.end?.kind === 'no-state';
        if (!retry) {
          process.stderr.write(`understudy standby: ${attempt.reason}\n`);
          return attempt.status;
        }
        if (settings.verbose) process.stderr.write(`[standby ${process.pid}] ${endpoint.host}:${endpoint.port}: ${attempt.reason}\n`);
      }
      await new Promise((resolve) => setTimeout(resolve, standbyRetryMs));
    }
  } finally {
    resources.close();
  }
}

interface ReplicaAttempt {
  readonly status: number;
  readonly reason: string;
  /** How this replica's protocol core ended, if it ran to an end. */
  readonly end: ReplicaEnd | undefined;
  /** A backup that followed its primary (joined) at some point. */
  readonly followed: boolean;
}

/** What a replica process opens before its replica runs: the boot plan, disks, network back-ends. */
interface ReplicaResources {
  readonly plan: ReturnType<typeof planBoot>;
  readonly images: ReturnType<typeof openDisks>['images'];
  readonly config: ReturnType<typeof boardConfig>;
  readonly networks: Awaited<ReturnType<typeof openNetworks>>;
  close(): void;
}

async function openResources(settings: ReplicaSettings): Promise<ReplicaResources> {
  const { role, machine } = settings;
  const plan = planBoot(machine);
  const { images, configs } = openDisks(machine, settings.options.pendingIo === 'reissue');
  const config = boardConfig(machine, configs);
  // The network back-ends' news (gone, back, dropping) matters to whoever watches this replica.
  const networkLog = (line: string): boolean => process.stderr.write(`\nunderstudy ${role}: ${line}\n`);
  let networks: ReplicaResources['networks'];
  try {
    networks = await openNetworks(config, machine.nets, networkLog);
  } catch (error) {
    for (const image of images) image.close();
    throw error;
  }
  return {
    plan, images, config, networks,
    close: () => {
      for (const port of networks.values()) port.close();
      for (const image of images) image.close();
    },
  };
}

/** Runs the replica once, with `shared` resources (kept open) or its own (closed at its end). */
async function runReplicaOnce(settings: ReplicaSettings & { readonly standby?: boolean }, shared?: ReplicaResources): Promise<ReplicaAttempt> {
  const { role, machine, viaIpc } = settings;
  const tell = (message: ChildMessage): void => {
    if (viaIpc && process.connected) process.send!(message);
  };
  const say = (line: string): void => {
    // Under `pair` the parent prints the log; alone, this process does.
    if (settings.verbose && !viaIpc) process.stderr.write(`[${role} ${process.pid}] ${line}\n`);
    tell({ type: 'log', line });
  };
  // Before the first machine runs (the primary's boot, the backup's copy), and before the
  // files are read, so that V8 compiles the loop while they are (warm-up.ts).
  if (warmsUp(machine.guest)) warmUpCpu(machine.cpu, { log: say });
  const resources = shared ?? (await openResources(settings));
  const { plan, images, config, networks } = resources;
  const live: EnvironmentPort = machine.clock === 'virtual' ? new VirtualClock() : new HostClock();
  const environment = new ReplicaEnvironment(live);
  const terminal: ConsolePort = viaIpc ? new IpcConsole() : new TerminalConsole();
  let previousRole: ReplicaStatus['role'] | undefined;
  let followed = false;
  const alarm = new UnprotectedAlarm(settings.onUnprotected);
  const arbiter = openArbiter(settings.arbiter ?? defaultArbiterDirectory(machine), (line) => {
    say(line);
    if (!viaIpc) process.stderr.write(`understudy ${role}: ${line}\n`);
  });
  try {
    const result: ReplicaProcessResult = await runReplica({
      role,
      endpoint: settings.endpoint,
      createMachine: () => createMachine(config, environment, machine.cpu),
      boot: (fresh: Machine) => boot(fresh, plan, machine),
      environment,
      liveClock: live,
      disks: new Map(images.map((image, index) => [diskSlot(index), image])),
      networks,
      console: terminal,
      options: settings.options,
      // The arbiter's records name replicas by this: unique per process, and readable in them.
      identity: { configKey: configKey(config), imageDigest: bootDigest(plan), optionsKey: optionsKey(settings.options), replicaId: `${settings.role}-${os.hostname()}-${process.pid}-${randomUUID().slice(0, 8)}` },
      arbiter,
      clusterId: randomUUID(),
      waitForBackup: settings.waitForBackup,
      ...(settings.listenWhenPromoted === undefined ? {} : { listenWhenPromoted: settings.listenWhenPromoted }),
      security: settings.security,
      traceIo: settings.traceIo === true,
      ...(viaIpc
        ? {
            primaryExits: (listener: (port: number) => void) =>
              process.on('message', (message: ParentMessage) => {
                if (message.type === 'primary-exited' && Number.isInteger(message.port)) listener(message.port);
              }),
          }
        : {}),
      ...(settings.statusPort === undefined || viaIpc ? {} : { statusPort: settings.statusPort }),
      ...(settings.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: settings.connectTimeoutMs }),
      events: {
        ...(viaIpc ? { status: (status: ReplicaProcessStatus) => tell({ type: 'status', status }) } : {}),
        listening: (port) => {
          // The machine has booted: what the user should know about the boot.
          if (!viaIpc && role === 'primary') for (const note of plan.notes) process.stderr.write(`understudy: ${note}\n`);
          tell({ type: 'listening', port });
        },
        role: (newRole) => {
          if (newRole === 'backup') followed = true;
          if (settings.standby === true && newRole === 'joining') return; // a standby's attempts are quiet
          if (settings.standby === true && newRole === 'backup') process.stderr.write(`understudy standby: joined ${settings.endpoint.host}:${settings.endpoint.port} as its backup\n`);
          say(`role: ${newRole}`);
          tell({ type: 'role', role: newRole });
          // Alone on a host, this process is the operator's only view: every change of
          // protection is said at once. (Under `pair`, the pair process says it.)
          if (!viaIpc) announceRole(role, previousRole, newRole, settings.endpoint);
          // Under `pair`, the pair raises the alarm (it knows whether a new backup is coming).
          if (!viaIpc && newRole === 'solo') alarm.raise(previousRole === 'primary' ? 'the backup is gone' : previousRole === 'backup' ? 'the primary failed: this backup is live alone' : 'no backup has joined yet');
          previousRole = newRole;
        },
        divergence: ({ epoch, reason }) => {
          // Loud, and on stderr whatever the verbosity: the replicas disagreed about the
          // guest's state, and the guest runs on with no copy.
          tell({ type: 'divergence', epoch, reason });
          if (!viaIpc) process.stderr.write(`\nunderstudy primary: NOT PROTECTED: divergence: the backup's state left this one's at epoch ${epoch} (${reason}); the guest runs on alone\n`);
        },
        failover: (report) => {
          tell({ type: 'failover', report, wallClockMs: Date.now() });
          if (!viaIpc) {
            process.stderr.write(
              `\nunderstudy backup: the primary failed (${report.reason}); this replica is live from epoch ${report.epoch}, not protected ` +
                `(${report.pendingRequests} disk request(s) settled, ${report.consoleBytesRepeated} console byte(s) repeated)\n`,
            );
          }
        },
        log: say,
      },
    });
    await terminal.drain();
    tell({ type: 'finished', status: result.status, reason: result.reason, guestFinished: result.guest !== undefined });
    const quietAttempt = settings.standby === true && !followed;
    if (!viaIpc && result.guest?.kind !== 'poweroff' && !quietAttempt) process.stderr.write(`understudy ${role}: ${result.reason}\n`);
    return { status: result.status, reason: result.reason, end: result.end, followed };
  } finally {
    terminal.close();
    arbiter.close?.();
    if (shared === undefined) resources.close();
  }
}

/** What a lone replica says on stderr when its protection changes. */
function announceRole(name: 'primary' | 'backup', before: ReplicaStatus['role'] | undefined, now: ReplicaStatus['role'], endpoint: Endpoint): void {
  const say = (line: string): boolean => process.stderr.write(`\nunderstudy ${name}: ${line}\n`);
  if (now === 'waiting') say(`waiting for a backup on ${endpoint.host}:${endpoint.port} before the guest starts`);
  else if (now === 'primary') say('protected: a backup has joined');
  else if (now === 'solo' && before === undefined) say(`the guest runs, not protected: no backup yet (backups connect to ${endpoint.host}:${endpoint.port})`);
  else if (now === 'solo' && before === 'primary') say('not protected: the backup is gone; the guest runs on alone');
}

function defaultArbiterDirectory(settings: MachineSettings): string {
  const first = settings.disks[0];
  if (first !== undefined) return `${path.resolve(first.path)}.understudy-arbiter`;
  return path.join(os.tmpdir(), 'understudy-arbiter');
}
