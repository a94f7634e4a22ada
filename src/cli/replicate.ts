/**
 * The replication commands: `primary`, `backup`, `pair` (both as child processes of this one,
 * on loopback), and `status`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { diskSlot } from '../machine/board.js';
import { HostClock, VirtualClock } from '../host/clocks.js';
import { ConsoleOutput, TerminalConsole, type ConsolePort } from '../host/console.js';
import { FileArbiter, parseEndpoint, runReplica, type Endpoint, type ReplicaProcessStatus } from '../host/replica-runtime.js';
import { ReplicaEnvironment, type LiveEnvironment } from '../replication/environment.js';
import { defaultReplicationOptions, optionsKey, validateOptions, type ReplicationOptions } from '../replication/replica.js';
import type { FailoverReport } from '../replication/backup.js';
import {
  boardConfig, boot, bootDigest, configKey, createMachine, machineOptionSpec, machineSettings, openDisks, parseCount,
  parseOptions, parsePositive, planBoot, projectRoot, UsageError, type MachineSettings,
} from './machine-options.js';
import { Machine } from '../machine/board.js';
import { reportOutcome } from './run.js';

export const replicationOptionsHelp = `replication options (pair, primary, backup):
  --epoch N                    instructions per epoch (default ${defaultReplicationOptions.epochInstructions})
  --protocol relaxed|original  relaxed (default): outputs wait for the backup's acknowledgement,
                               the guest runs on; original: the primary waits at every epoch end
  --pending-io reissue|uncertain  at failover, I/O in flight is re-issued (default) or completed
                               with an error for the guest's driver to retry
  --failure-timeout MS         declare the peer failed after this much silence (default ${defaultReplicationOptions.failureTimeoutMs})
  --arbiter DIR                shared directory for the go-live test-and-set (default: beside
                               the first disk image)
  --status-port N              serve the status view as JSON on 127.0.0.1:N
  --verbose                    log the protocol's events on stderr
primary:  --listen HOST:PORT   where the backup connects
backup:   --connect HOST:PORT  the primary (--connect-timeout MS: keep trying this long, default 15000)
pair:     --kill-primary-after MS / --kill-backup-after MS
                               SIGKILL that process this long after the backup has joined;
                               on a terminal, Ctrl-A k kills the primary, Ctrl-A b the backup
status:   --port N             the replica's (or pair's) status port; --json for the raw data
`;

const replicationOptionSpec = {
  epoch: { type: 'string' },
  protocol: { type: 'string' },
  'pending-io': { type: 'string' },
  'failure-timeout': { type: 'string' },
  arbiter: { type: 'string' },
  'status-port': { type: 'string' },
  verbose: { type: 'boolean' },
} as const;

interface ReplicationSettings {
  options: ReplicationOptions;
  arbiter: string | undefined;
  statusPort: number | undefined;
  verbose: boolean;
}

function replicationSettings(values: {
  epoch?: string | undefined;
  protocol?: string | undefined;
  'pending-io'?: string | undefined;
  'failure-timeout'?: string | undefined;
  arbiter?: string | undefined;
  'status-port'?: string | undefined;
  verbose?: boolean | undefined;
}): ReplicationSettings {
  const protocol = values.protocol ?? defaultReplicationOptions.protocol;
  if (protocol !== 'relaxed' && protocol !== 'original') throw new UsageError(`--protocol must be relaxed or original, not "${protocol}"`);
  const pendingIo = values['pending-io'] ?? defaultReplicationOptions.pendingIo;
  if (pendingIo !== 'reissue' && pendingIo !== 'uncertain') throw new UsageError(`--pending-io must be reissue or uncertain, not "${pendingIo}"`);
  const failureTimeoutMs = values['failure-timeout'] === undefined ? defaultReplicationOptions.failureTimeoutMs : parsePositive(values['failure-timeout'], '--failure-timeout');
  // The lease and the heartbeat follow the failure timeout (see docs/REPLICATION.md).
  const leaseMs = Math.min(defaultReplicationOptions.leaseMs, failureTimeoutMs * 0.4);
  const options: ReplicationOptions = {
    epochInstructions: values.epoch === undefined ? defaultReplicationOptions.epochInstructions : parseCount(values.epoch, '--epoch'),
    protocol,
    pendingIo,
    failureTimeoutMs,
    leaseMs,
    heartbeatIntervalMs: leaseMs / 4,
  };
  try {
    validateOptions(options);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  return {
    options,
    arbiter: values.arbiter,
    statusPort: values['status-port'] === undefined ? undefined : parseCount(values['status-port'], '--status-port'),
    verbose: values.verbose ?? false,
  };
}

// -------------------------------------------------------------------------------------------
// primary and backup

type ChildMessage =
  | { type: 'listening'; port: number }
  | { type: 'role'; role: string }
  | { type: 'status'; status: ReplicaProcessStatus }
  | { type: 'failover'; report: FailoverReport; wallClockMs: number }
  | { type: 'finished'; status: number; reason: string }
  | { type: 'log'; line: string }
  /** The shared console's reader went away (EPIPE). */
  | { type: 'output-closed' };

type ParentMessage = { type: 'input'; bytes: number[] };

export function primaryCommand(argv: string[]): Promise<number> {
  return replicaCommand('primary', argv);
}

export function backupCommand(argv: string[]): Promise<number> {
  return replicaCommand('backup', argv);
}

async function replicaCommand(role: 'primary' | 'backup', argv: string[]): Promise<number> {
  const { values, tokens } = parseOptions(argv, {
    ...machineOptionSpec,
    ...replicationOptionSpec,
    listen: { type: 'string' },
    connect: { type: 'string' },
    'connect-timeout': { type: 'string' },
    ipc: { type: 'boolean' },
  });
  const machine = machineSettings(values, tokens, role);
  const replication = replicationSettings(values);
  const address = role === 'primary' ? values.listen : values.connect;
  if (address === undefined) throw new UsageError(role === 'primary' ? 'primary needs --listen HOST:PORT' : 'backup needs --connect HOST:PORT');
  let endpoint: Endpoint;
  try {
    endpoint = parseEndpoint(address);
  } catch (error) {
    throw new UsageError(`${role === 'primary' ? '--listen' : '--connect'}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const viaIpc = values.ipc === true && process.send !== undefined;
  const tell = (message: ChildMessage): void => {
    if (viaIpc && process.connected) process.send!(message);
  };
  const plan = planBoot(machine);
  const { images, configs } = openDisks(machine);
  const config = boardConfig(machine, configs);
  const live: LiveEnvironment = machine.clock === 'virtual' ? new VirtualClock() : new HostClock();
  const environment = new ReplicaEnvironment(live);
  const terminal: ConsolePort = viaIpc ? new IpcConsole() : new TerminalConsole();
  const arbiterDirectory = replication.arbiter ?? defaultArbiterDirectory(machine);
  const say = (line: string): void => {
    // Under `pair` the parent prints the log; alone, this process does.
    if (replication.verbose && !viaIpc) process.stderr.write(`[${role} ${process.pid}] ${line}\n`);
    tell({ type: 'log', line });
  };
  try {
    const result = await runReplica({
      role,
      endpoint,
      createMachine: () => createMachine(config, environment),
      boot: (fresh: Machine) => boot(fresh, plan, machine),
      environment,
      liveClock: live,
      disks: new Map(images.map((image, index) => [diskSlot(index), image])),
      console: terminal,
      options: replication.options,
      identity: { configKey: configKey(config), imageDigest: bootDigest(plan), optionsKey: optionsKey(replication.options) },
      arbiter: new FileArbiter(arbiterDirectory),
      clusterId: randomUUID(),
      ...(replication.statusPort === undefined || viaIpc ? {} : { statusPort: replication.statusPort }),
      ...(values['connect-timeout'] === undefined ? {} : { connectTimeoutMs: parsePositive(values['connect-timeout'], '--connect-timeout') }),
      events: {
        ...(viaIpc ? { status: (status: ReplicaProcessStatus) => tell({ type: 'status', status }) } : {}),
        listening: (port) => tell({ type: 'listening', port }),
        role: (newRole) => {
          say(`role: ${newRole}`);
          tell({ type: 'role', role: newRole });
        },
        failover: (report) => tell({ type: 'failover', report, wallClockMs: Date.now() }),
        log: say,
      },
    });
    await terminal.drain();
    tell({ type: 'finished', status: result.status, reason: result.reason });
    if (!viaIpc && !/powered off/.test(result.reason)) process.stderr.write(`understudy ${role}: ${result.reason}\n`);
    return exitStatus(result.status);
  } finally {
    terminal.close();
    for (const image of images) image.close();
  }
}

function defaultArbiterDirectory(settings: MachineSettings): string {
  const first = settings.disks[0];
  if (first !== undefined) return `${path.resolve(first.path)}.understudy-arbiter`;
  return path.join(os.tmpdir(), 'understudy-arbiter');
}

function exitStatus(status: number): number {
  return status === 0 ? 0 : status % 256 === 0 ? 1 : status % 256;
}

/** The console of a replica run by `pair`: output straight to stdout, input from the parent. */
class IpcConsole implements ConsolePort {
  private readonly pending: number[] = [];
  private waiters: (() => void)[] = [];
  private closing = false;
  readonly quitRequested = false;
  readonly inputEnded = false;
  // The reader of the pair's console went away: output goes nowhere from now on, and the
  // parent, told, stops the pair.
  private readonly output = new ConsoleOutput(process.stdout, () => {
    if (process.connected) process.send!({ type: 'output-closed' } satisfies ChildMessage);
  });

  constructor() {
    // The `pair` process is this replica's only way to the world (console input, the output
    // it tells about): if it dies, even by SIGKILL, the replica must not live on unseen.
    process.on('disconnect', () => {
      if (this.closing) return;
      process.stderr.write(`understudy: replica ${process.pid}: its pair process is gone; stopping\n`);
      process.exit(1);
    });
    process.on('message', (message: ParentMessage) => {
      if (message.type !== 'input' || !Array.isArray(message.bytes)) return;
      for (const byte of message.bytes) if (Number.isInteger(byte) && byte >= 0 && byte < 256) this.pending.push(byte);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  write(bytes: Uint8Array): void {
    this.output.write(bytes);
  }

  get outputClosed(): boolean {
    return this.output.closed;
  }

  get outputBacklogBytes(): number {
    return this.output.backlogBytes;
  }

  takeInput(max: number): Uint8Array {
    return Uint8Array.from(this.pending.splice(0, Math.max(0, max)));
  }

  get hasInput(): boolean {
    return this.pending.length > 0;
  }

  inputReady(): Promise<void> {
    if (this.pending.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  drain(): Promise<void> {
    return this.output.drain();
  }

  close(): void {
    this.closing = true;
    this.output.close();
    process.removeAllListeners('message');
    if (process.connected) process.disconnect();
  }
}

// -------------------------------------------------------------------------------------------
// pair

interface PairChild {
  readonly name: 'primary' | 'backup';
  readonly process: ChildProcess;
  role: string;
  finished: { status: number; reason: string } | undefined;
  exited: Promise<number | null>;
}

export async function pairCommand(argv: string[]): Promise<number> {
  const { values, tokens } = parseOptions(argv, {
    ...machineOptionSpec,
    ...replicationOptionSpec,
    'kill-primary-after': { type: 'string' },
    'kill-backup-after': { type: 'string' },
  });
  const machine = machineSettings(values, tokens, 'pair');
  const replication = replicationSettings(values);
  const killPrimaryAfterMs = values['kill-primary-after'] === undefined ? undefined : parsePositive(values['kill-primary-after'], '--kill-primary-after');
  const killBackupAfterMs = values['kill-backup-after'] === undefined ? undefined : parsePositive(values['kill-backup-after'], '--kill-backup-after');
  // Check the machine options here, so that bad input fails once, before any process starts.
  planBoot(machine);
  for (const image of openDisks(machine).images) image.close();

  const arbiter = replication.arbiter ?? fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-pair-'));
  const passOn = childArguments(argv, ['kill-primary-after', 'kill-backup-after', 'arbiter', 'status-port']);
  const terminal = new TerminalConsole();
  const status: PairStatus = { primary: undefined, backup: undefined, failover: undefined };
  const statusServer = replication.statusPort === undefined ? undefined : servePairStatus(replication.statusPort, () => status);
  try {
    let killsScheduled = false;
    let outputClosed = false;
    let killedAtMs: number | undefined;
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
          if (child.name === 'backup' && message.role === 'backup') scheduleKills();
        } else if (message.type === 'finished') {
          child.finished = { status: message.status, reason: message.reason };
        } else if (message.type === 'failover') {
          status.failover = message.report;
          const leaseMs = Math.round(message.report.liveAtMs - message.report.detectedAtMs);
          const when = killedAtMs === undefined ? `${leaseMs} ms after detecting it` : `${Math.round(message.wallClockMs - killedAtMs)} ms after the kill`;
          process.stderr.write(`\nunderstudy: the primary failed (${message.report.reason}); the backup went live ${when} (of which ${leaseMs} ms waiting out the old primary's lease)\n`);
        } else if (message.type === 'output-closed') {
          outputClosed = true;
        } else if (message.type === 'log') {
          if (replication.verbose) process.stderr.write(`[${child.name}] ${message.line}\n`);
        }
      });
    };
    const primary = spawnReplica('primary', ['--listen', '127.0.0.1:0', '--arbiter', arbiter, ...passOn]);
    const port = await new Promise<number>((resolve, reject) => {
      listen(primary, resolve);
      void primary.exited.then((code) => reject(new UsageError(`the primary stopped before it listened (status ${code})`)));
    });
    const backup = spawnReplica('backup', ['--connect', `127.0.0.1:${port}`, '--arbiter', arbiter, ...passOn]);
    listen(backup, () => {});
    const children = [primary, backup];
    const scheduleKills = (): void => {
      if (killsScheduled) return;
      killsScheduled = true;
      if (killPrimaryAfterMs !== undefined) {
        setTimeout(() => {
          killedAtMs = Date.now();
          kill(primary);
        }, killPrimaryAfterMs).unref();
      }
      if (killBackupAfterMs !== undefined) setTimeout(() => kill(backup), killBackupAfterMs).unref();
    };
    terminal.escapeCommands.set('k', () => {
      killedAtMs = Date.now();
      kill(primary);
    });
    terminal.escapeCommands.set('b', () => kill(backup));
    let quitting = false;
    const forwardInput = setInterval(() => {
      if ((terminal.quitRequested || outputClosed) && !quitting) {
        // Ctrl-A x: the user stops the whole pair, as `run` stops its machine; the backup
        // first, so that it does not take the primary's end for a failure to take over.
        quitting = true;
        for (const child of [backup, primary]) if (child.process.exitCode === null) child.process.kill('SIGTERM');
        return;
      }
      forward(terminal, children);
    }, 10);
    for (const child of children) {
      void child.exited.then((code) => {
        const last = status[child.name];
        if (last !== undefined) status[child.name] = { ...last, exited: true, exitCode: code };
      });
    }
    const codes = await Promise.all(children.map((child) => child.exited));
    clearInterval(forwardInput);
    if (quitting) return reportOutcome({ kind: 'quit', outputClosed: outputClosed || terminal.outputClosed });
    const guestDone = children.find((child) => child.finished !== undefined && /powered off|panicked|stuck/.test(child.finished.reason));
    if (guestDone?.finished !== undefined) return exitStatus(guestDone.finished.status);
    const reasons = children.map((child, index) => `${child.name}: ${child.finished?.reason ?? `exited with ${codes[index]}`}`).join('; ');
    process.stderr.write(`understudy: the pair stopped without the guest finishing (${reasons})\n`);
    return 1;
  } finally {
    terminal.close();
    statusServer?.close();
    if (replication.arbiter === undefined) fs.rmSync(arbiter, { recursive: true, force: true });
  }
}

function spawnReplica(name: 'primary' | 'backup', args: string[]): PairChild {
  const child = fork(path.join(projectRoot, 'bin/understudy.js'), [name, '--ipc', ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { name, process: child, role: 'starting', finished: undefined, exited };
}

function kill(child: PairChild): void {
  if (child.process.exitCode !== null || child.finished !== undefined) return;
  process.stderr.write(`\nunderstudy: killing the ${child.name} (pid ${child.process.pid}) with SIGKILL\n`);
  child.process.kill('SIGKILL');
}

/** Console input goes to the replica that is live now; it waits while none is. */
function forward(terminal: ConsolePort, children: PairChild[]): void {
  if (!terminal.hasInput) return;
  const live = children.find((child) => child.process.connected && child.finished === undefined && (child.role === 'primary' || child.role === 'solo'));
  if (live === undefined) return;
  live.process.send({ type: 'input', bytes: Array.from(terminal.takeInput(4096)) } satisfies ParentMessage);
}

/** The command line for a child: the parent's, minus what only the parent uses. */
function childArguments(argv: string[], parentOnly: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = arg.startsWith('--') ? arg.slice(2).split('=')[0]! : '';
    if (parentOnly.includes(name)) {
      if (!arg.includes('=')) i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}

interface PairStatus {
  primary: (ReplicaProcessStatus & { exited: boolean; exitCode?: number | null }) | undefined;
  backup: (ReplicaProcessStatus & { exited: boolean; exitCode?: number | null }) | undefined;
  failover: FailoverReport | undefined;
}

function servePairStatus(port: number, snapshot: () => unknown): http.Server {
  const server = http.createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    // A replica with no report yet is null, not left out, so that the view still names it.
    response.end(JSON.stringify(snapshot(), (_key, value: unknown) => (value === undefined ? null : value), 2) + '\n');
  });
  server.listen(port, '127.0.0.1');
  return server;
}

// -------------------------------------------------------------------------------------------
// status

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions(argv, { port: { type: 'string' }, json: { type: 'boolean' } });
  if (values.port === undefined) throw new UsageError("status needs --port N (a replica's or a pair's --status-port)");
  const port = parseCount(values.port, '--port');
  const body = await new Promise<string>((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/status', timeout: 2000 }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve(text));
    });
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  }).catch((error: unknown) => {
    throw new UsageError(`no status at 127.0.0.1:${port}: ${error instanceof Error ? error.message : String(error)}`);
  });
  if (values.json === true) {
    process.stdout.write(body);
    return 0;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new UsageError(`127.0.0.1:${port} did not answer with a status (is it an understudy status port?)`);
  }
  process.stdout.write(formatStatus(parsed));
  return 0;
}

/** The status view, for people: one line per replica, then the last failover. */
export function formatStatus(status: unknown): string {
  const lines: string[] = [];
  const replica = (name: string, value: unknown): void => {
    if (typeof value !== 'object' || value === null) {
      lines.push(`${name}: no report yet`);
      return;
    }
    const r = value as Partial<ReplicaProcessStatus> & { exited?: boolean };
    const rate = r.logBytesPerSecond === undefined ? '?' : `${(r.logBytesPerSecond / 1024).toFixed(1)} KiB/s`;
    lines.push(
      `${name.padEnd(8)} pid ${r.pid ?? '?'}: ${r.exited === true ? 'exited (last report: ' : ''}${r.role ?? '?'}, epoch ${r.epoch ?? '?'}, ` +
        `lag ${r.lagEpochs ?? '?'} epochs, log ${rate}, outputs waiting ${r.outputsWaiting ?? '?'}, generation ${r.generation ?? '?'}${r.exited === true ? ')' : ''}`,
    );
    if (r.lastFailover !== undefined && r.lastFailover !== null) {
      lines.push(`         last failover: live ${Math.round(r.lastFailover.tookMs)} ms after the primary was declared failed (it had been silent ${Math.round(r.lastFailover.detectionMs)} ms)`);
    }
  };
  const pair = status as Partial<PairStatus>;
  if (typeof status === 'object' && status !== null && ('primary' in status || 'backup' in status)) {
    replica('primary', pair.primary);
    replica('backup', pair.backup);
    const failover = pair.failover;
    lines.push(
      failover === undefined || failover === null
        ? 'no failover so far'
        : `failover: ${failover.reason}; the backup was live ${Math.round(failover.liveAtMs - failover.detectedAtMs)} ms later, from epoch ${failover.epoch} ` +
            `(${failover.pendingRequests} disk request(s) settled, ${failover.consoleBytesRepeated} console byte(s) repeated)`,
    );
  } else {
    replica('replica', status);
  }
  return `${lines.join('\n')}\n`;
}
