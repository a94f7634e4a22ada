/**
 * A replica as a real process: the protocol core (src/replication) driven by real TCP, a real
 * disk image, the host clock, the terminal and a file-based arbiter.
 *
 * The core is synchronous; this loop calls `step()` whenever something may have changed and
 * sleeps while it is blocked, so socket data, disk completions and console input are taken
 * between steps. Nothing a peer sends can crash the process: a frame that does not parse
 * closes that connection with a reason.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { setImmediate as yieldToHost } from 'node:timers/promises';
import type { Machine } from '../machine/board.js';
import type { DiskRequest, MachineEvent } from '../machine/environment.js';
import { ReplicaEnvironment, type LiveEnvironment } from '../replication/environment.js';
import { encodeMessage, FrameDecoder, ProtocolError, type Message, type ReplicaIdentity } from '../replication/messages.js';
import { PrimaryReplica, type Reboot } from '../replication/primary.js';
import { BackupReplica, ReplicaExit, type FailoverReport } from '../replication/backup.js';
import type { ReplicaIo, ReplicaStatus, ReplicationOptions, StepResult } from '../replication/replica.js';
import type { ConsolePort } from './console.js';
import { consoleBacklogMaxBytes } from './runner.js';
import type { DiskImage } from './disk-image.js';

/** Longest stretch of guest execution before the loop looks at sockets and timers. */
const hostYieldIntervalMs = 5;
/** How long a backup keeps trying, by default, to reach a primary that is not listening yet. */
export const connectRetryMs = 15_000;
/** A connection to the primary must say hello within this long. */
const helloTimeoutMs = 5000;
/** Connections that have not said hello yet, at most (more are closed at once). */
const unjoinedConnectionsMax = 8;
/** How often a replica reports its status to its parent (`pair`). */
const statusReportIntervalMs = 250;
/** The status view's log rate covers about this much recent time... */
const rateWindowMs = 1000;
/** ... from samples taken at most this often (so at most rateWindowMs / rateSampleIntervalMs + 2 are kept). */
const rateSampleIntervalMs = 100;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export function parseEndpoint(text: string): Endpoint {
  const match = /^(.*):(\d+)$/.exec(text);
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || !(port >= 0 && port < 65536)) throw new RangeError(`"${text}" is not HOST:PORT`);
  return { host: match[1] === '' ? '127.0.0.1' : match[1]!, port };
}

/** The go-live test-and-set on shared storage: one file per generation, created exclusively. */
export class FileArbiter {
  constructor(private readonly directory: string) {
    fs.mkdirSync(directory, { recursive: true });
  }

  tryGoLive(clusterId: string, generation: number, replica: string): boolean {
    const file = path.join(this.directory, `${clusterId}.live-${generation}`);
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, `${replica} ${process.pid}\n`);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  }
}

export interface ReplicaEvents {
  listening?(port: number): void;
  role?(role: string): void;
  status?(status: ReplicaProcessStatus): void;
  failover?(report: FailoverReport): void;
  log?(line: string): void;
}

export interface ReplicaProcessOptions {
  readonly role: 'primary' | 'backup';
  readonly endpoint: Endpoint;
  readonly createMachine: () => Machine;
  /** A booted machine (primary) and the reboot used after a guest reset. */
  readonly boot: (machine: Machine) => void;
  readonly environment: ReplicaEnvironment;
  readonly liveClock: LiveEnvironment;
  readonly disks: ReadonlyMap<number, DiskImage>;
  readonly console: ConsolePort;
  readonly options: ReplicationOptions;
  readonly identity: ReplicaIdentity;
  readonly arbiter: FileArbiter;
  readonly clusterId: string;
  readonly statusPort?: number;
  /** How long a backup keeps trying to connect (default connectRetryMs). */
  readonly connectTimeoutMs?: number;
  readonly events?: ReplicaEvents;
}

/** Runs a replica until the guest finishes or the replica stops; returns the exit status. */
export async function runReplica(options: ReplicaProcessOptions): Promise<{ status: number; reason: string }> {
  const runtime = new ReplicaRuntime(options);
  try {
    return await runtime.run();
  } finally {
    runtime.close();
  }
}

class ReplicaRuntime implements ReplicaIo {
  private core: PrimaryReplica | BackupReplica | undefined;
  private server: net.Server | undefined;
  private socket: net.Socket | undefined;
  private statusServer: http.Server | undefined;
  private wakeUp: (() => void) | undefined;
  private readonly completions: MachineEvent[] = [];
  private readonly clusterId: string;
  private reportedFailover = false;
  private lastRole = '';

  constructor(private readonly options: ReplicaProcessOptions) {
    this.clusterId = options.clusterId;
  }

  async run(): Promise<{ status: number; reason: string }> {
    const o = this.options;
    const reboot: Reboot = () => {
      const machine = o.createMachine();
      o.boot(machine);
      return machine;
    };
    if (o.role === 'primary') {
      const machine = o.createMachine();
      o.boot(machine);
      if (!o.arbiter.tryGoLive(this.clusterId, 1, 'primary')) throw new Error(`the arbiter already has a live replica for cluster ${this.clusterId}`);
      this.core = new PrimaryReplica(machine, o.environment, this, o.options, o.identity, reboot, { epoch: 0, generation: 1, role: 'waiting', clusterId: this.clusterId });
      await this.listen();
    } else {
      this.core = new BackupReplica(o.createMachine, o.environment, o.liveClock, this, o.options, o.identity, reboot);
      await this.connect();
    }
    if (o.statusPort !== undefined) this.serveStatus(o.statusPort);
    const startedMs = performance.now();
    const result = await this.loop();
    this.logSummary(performance.now() - startedMs);
    return result;
  }

  /** One line on the log traffic of the whole run (the benchmark reads it). */
  private logSummary(elapsedMs: number): void {
    const status = this.core!.status();
    const bytes = status.logBytesSent + status.logBytesReceived;
    const seconds = elapsedMs / 1000;
    this.log(
      `log summary: ${bytes} bytes ${status.logBytesSent > 0 ? 'sent' : 'received'} over ${status.epoch} epochs in ${seconds.toFixed(2)} s ` +
        `(${status.epoch > 0 ? Math.round(bytes / status.epoch) : 0} bytes/epoch, ${Math.round(bytes / Math.max(seconds, 1e-3))} bytes/s)`,
    );
  }

  private async loop(): Promise<{ status: number; reason: string }> {
    let lastYieldMs = performance.now();
    let lastStatusMs = -Infinity;
    for (;;) {
      if (this.options.events?.status !== undefined && performance.now() - lastStatusMs > statusReportIntervalMs) {
        lastStatusMs = performance.now();
        this.options.events.status(this.status());
      }
      const terminal = this.options.console;
      if (terminal.quitRequested) {
        // Ctrl-A x on this replica's terminal, or its reader went away: this replica stops,
        // as if its host had; a peer that follows or leads carries on without it.
        return terminal.outputClosed
          ? { status: 141, reason: "the console's output was closed: this replica stops" }
          : { status: 0, reason: 'quit (Ctrl-A x): this replica stops' };
      }
      const core = this.core!;
      for (const event of this.completions.splice(0)) core.onDiskCompletion(event);
      // What one step sends leaves in one write.
      const socket = this.socket;
      socket?.cork();
      const result: StepResult = core.step();
      socket?.uncork();
      this.noticeRole();
      if (result.kind === 'finished') return { status: result.status, reason: result.reason };
      if (result.kind === 'progress') {
        if (performance.now() - lastYieldMs > hostYieldIntervalMs) {
          await yieldToHost();
          lastYieldMs = performance.now();
        }
        continue;
      }
      if (this.completions.length > 0) continue;
      await this.sleep(result.untilMs);
      lastYieldMs = performance.now();
    }
  }

  /** Sleeps until `untilMs` (monotonic ms) or until something arrives. */
  private sleep(untilMs: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      const limit = untilMs === undefined ? 1000 : Math.max(0, Math.min(1000, untilMs - this.nowMs()));
      const done = (): void => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, limit);
      this.wakeUp = done;
      void this.options.console.inputReady().then(() => {
        if (this.options.console.hasInput || this.options.console.quitRequested) this.wakeUp?.();
      });
    });
  }

  private wake(): void {
    this.wakeUp?.();
  }

  private noticeRole(): void {
    const status = this.core!.status();
    const role = status.role;
    if (role !== this.lastRole) {
      this.lastRole = role;
      this.options.events?.role?.(role);
    }
    const core = this.core;
    if (!this.reportedFailover && core instanceof BackupReplica && core.report !== undefined) {
      this.reportedFailover = true;
      this.options.events?.failover?.(core.report);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The connection

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((socket) => this.accept(socket));
      // A port in use or an address not on this host is bad input: one line, no stack trace.
      server.on('error', (error: NodeJS.ErrnoException) => {
        const { host, port } = this.options.endpoint;
        reject(new ReplicaStartError(`cannot listen on ${host}:${port}: ${error.code ?? error.message}`));
      });
      server.listen(this.options.endpoint.port, this.options.endpoint.host, () => {
        const address = server.address();
        const port = typeof address === 'object' && address !== null ? address.port : this.options.endpoint.port;
        this.log(`listening on ${this.options.endpoint.host}:${port}`);
        this.options.events?.listening?.(port);
        resolve();
      });
      this.server = server;
    });
  }

  /** A backup connects: its first frame must be a hello. */
  private unjoined = 0;

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    const peer = socket.remoteAddress ?? '?';
    if (this.unjoined >= unjoinedConnectionsMax) {
      this.log(`refused a connection from ${peer}: ${unjoinedConnectionsMax} others have not said hello yet`);
      socket.destroy();
      return;
    }
    this.unjoined++;
    let counted = true;
    const settle = (): void => {
      if (counted) this.unjoined--;
      counted = false;
    };
    const decoder = new FrameDecoder();
    let joined = false;
    /** This connection has been refused with a reason already. */
    let refused = false;
    const helloTimer = setTimeout(() => {
      if (joined || refused) return;
      refused = true;
      this.refuse(socket, new ProtocolError('malformed', `no hello within ${helloTimeoutMs} ms`));
    }, helloTimeoutMs);
    helloTimer.unref();
    socket.on('data', (chunk: Buffer) => {
      let messages: Message[];
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        refused = true;
        this.refuse(socket, error);
        return;
      }
      const primary = this.core as PrimaryReplica;
      for (const message of messages) {
        if (!joined) {
          if (message.type !== 'hello') {
            refused = true;
            this.refuse(socket, new ProtocolError('malformed', `expected a hello, got ${message.type}`));
            return;
          }
          if (this.socket !== undefined) {
            socket.end(encodeMessage({ type: 'reject', code: 'busy', reason: 'this primary already has a backup' }));
            return;
          }
          this.socket = socket;
          if (!primary.onHello(message.identity)) {
            this.socket = undefined;
            socket.end();
            return;
          }
          joined = true;
          settle();
          continue;
        }
        primary.onMessage(message);
      }
      this.wake();
    });
    const closed = (reason: string): void => {
      clearTimeout(helloTimer);
      settle();
      if (this.socket === socket) {
        this.socket = undefined;
        (this.core as PrimaryReplica).onDisconnect(reason);
        this.wake();
      } else if (!joined && !refused && decoder.bufferedBytes > 0) {
        // A peer that hung up in the middle of its first frame: say so, or it leaves no trace.
        refused = true;
        const how = reason === 'closed' ? 'closed' : `failed (${reason})`;
        this.log(`refused a connection from ${peer}: a truncated frame (the connection ${how} after ${decoder.bufferedBytes} bytes of it)`);
      }
    };
    socket.on('error', (error) => closed(error.message));
    socket.on('close', () => closed('closed'));
  }

  /** Closes a connection that sent something wrong, telling the peer why (if it can read us). */
  private refuse(socket: net.Socket, error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    this.log(`refused a connection from ${socket.remoteAddress ?? '?'}: ${reason}`);
    if (this.socket === socket) {
      this.socket = undefined;
      (this.core as PrimaryReplica).onDisconnect(reason);
    }
    const code = error instanceof ProtocolError && error.code === 'version' ? 'version' : 'malformed';
    socket.end(encodeMessage({ type: 'reject', code, reason }));
    setTimeout(() => socket.destroy(), 1000).unref();
    this.wake();
  }

  private async connect(): Promise<void> {
    const deadline = Date.now() + (this.options.connectTimeoutMs ?? connectRetryMs);
    for (;;) {
      try {
        await this.connectOnce();
        return;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ECONNREFUSED' || Date.now() > deadline) {
          throw new ReplicaStartError(`cannot reach the primary at ${this.options.endpoint.host}:${this.options.endpoint.port}: ${code ?? String(error)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  private connectOnce(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.options.endpoint.port, this.options.endpoint.host);
      socket.setNoDelay(true);
      const decoder = new FrameDecoder();
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        this.socket = socket;
        const backup = this.core as BackupReplica;
        socket.on('data', (chunk: Buffer) => {
          let frames: { message: Message; wireBytes: number }[];
          try {
            frames = decoder.pushFrames(chunk);
          } catch (error) {
            this.log(`the primary sent something this backup cannot read: ${error instanceof Error ? error.message : String(error)}`);
            this.socket = undefined;
            socket.destroy();
            backup.onDisconnect(error instanceof Error ? error.message : String(error));
            this.wake();
            return;
          }
          for (const frame of frames) backup.onMessage(frame.message, frame.wireBytes);
          this.wake();
        });
        const closed = (reason: string): void => {
          if (this.socket === socket) this.socket = undefined;
          backup.onDisconnect(reason);
          this.wake();
        };
        socket.on('error', (error) => closed(error.message));
        socket.on('close', () => closed('closed'));
        backup.sayHello();
        resolve();
      });
    });
  }

  // -------------------------------------------------------------------------------------------
  // ReplicaIo

  nowMs(): number {
    return performance.now();
  }

  send(message: Message): number {
    const bytes = encodeMessage(message);
    this.socket?.write(bytes);
    return bytes.length;
  }

  consoleWrite(bytes: Uint8Array): void {
    this.options.console.write(bytes);
  }

  diskSubmit(request: DiskRequest): void {
    const disk = this.options.disks.get(request.slot);
    if (disk === undefined) throw new Error(`disk request for virtio slot ${request.slot}, which has no image`);
    // Completions are delivered between steps, never inside the step that issued the request.
    this.completions.push(disk.perform(request));
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

  tryGoLive(generation: number): boolean {
    const core = this.core;
    const clusterId = core instanceof BackupReplica ? core.clusterId : this.clusterId;
    return this.options.arbiter.tryGoLive(clusterId, generation, this.options.role);
  }

  crashPoint(): void {}

  epochDone(): void {}

  log(line: string): void {
    this.options.events?.log?.(line);
  }

  // -------------------------------------------------------------------------------------------
  // Status

  private serveStatus(port: number): void {
    const server = http.createServer((request, response) => {
      if (request.url !== '/status' && request.url !== '/') {
        response.writeHead(404).end('not found\n');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(this.status(), null, 2) + '\n');
    });
    server.on('error', (error) => this.log(`status endpoint: ${error.message}`));
    server.listen(port, '127.0.0.1');
    this.statusServer = server;
  }

  /** Log byte counts at recent status calls, oldest first: at most one per rateSampleIntervalMs, none older than needed. */
  private readonly rateSamples: { atMs: number; bytes: number }[] = [];

  status(): ReplicaProcessStatus {
    const core = this.core!.status();
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
    return { ...core, logBytesPerSecond: Math.round(rate), pid: process.pid, uptimeMs: Math.round(now) };
  }

  /** The replica is done: late socket events must change nothing any more. */
  close(): void {
    this.socket?.removeAllListeners('close');
    this.socket?.removeAllListeners('error');
    this.socket?.on('error', () => {});
    this.socket?.destroy();
    this.server?.close();
    this.statusServer?.close();
  }
}

export type ReplicaProcessStatus = ReplicaStatus & { logBytesPerSecond: number; pid: number; uptimeMs: number };

/** The replica could not start (the primary is unreachable, the port is taken...). */
export class ReplicaStartError extends Error {
  override readonly name = 'ReplicaStartError';
}

export { ReplicaExit };
