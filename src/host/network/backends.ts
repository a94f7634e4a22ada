/**
 * The network back-ends: how a {@link NetworkPort} reaches each kind of `--net`.
 *
 * - user: Debian's passt, started by this process with a private UNIX socket. passt answers the
 *   guest's DHCP and ARP itself, carries its TCP and UDP through host sockets, and listens on the
 *   forwarded host ports. It keeps a forwarded connection's data in the host socket until the
 *   guest has acknowledged it, so frames lost between passt and the guest are sent again.
 * - tap: a TAP device, through tap-relay (native/tap-relay.c, built at set-up): the relay opens
 *   the device and carries its frames on its standard input and output, length-prefixed.
 * - stream: a UNIX socket that carries frames the same way (QEMU's -netdev stream; `pair`'s
 *   switch offers one to each replica).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Duplex } from 'node:stream';
import { netMtuBytes } from '../../machine/devices/virtio-net.js';
import { nicSlot, type BoardConfig } from '../../machine/board-config.js';
import { projectRoot } from '../guest-image.js';
import { NetworkBackendError, NetworkPort, type BackendConnector } from './port.js';
import type { NetSpec, PortForward } from './option.js';

/** The guest's network under passt: QEMU's user-mode addresses (the guest 10.0.2.15, the host 10.0.2.2). */
export const userNetwork = { guest: '10.0.2.15', prefixBits: 24, gateway: '10.0.2.2' } as const;
/** How long a starting back-end may take to offer its socket. */
const backendStartTimeoutMs = 10_000;
/** How long a stream's server may take to appear. */
const streamConnectPatienceMs = 5000;
/** How often a starting back-end's socket is tried. */
const connectPollMs = 20;
/** The last bytes of a back-end's output kept for an error message. */
const outputTailBytes = 2000;
/** Where set-up builds the TAP relay. */
export const tapRelayPath = path.join(projectRoot, 'native/build/tap-relay');


/** Virtio slot -> connected port, for every NIC of `config` (its specs in the same order). */
export async function openNetworks(config: BoardConfig, specs: readonly NetSpec[], log: (line: string) => void): Promise<Map<number, NetworkPort>> {
  const ports = new Map<number, NetworkPort>();
  try {
    for (const [index, spec] of specs.entries()) ports.set(nicSlot(config, index), await openNetworkPort(spec, log));
  } catch (error) {
    for (const port of ports.values()) port.close();
    throw error;
  }
  return ports;
}

/** The port of one NIC, connected; a back-end that cannot start is a NetworkBackendError. */
export async function openNetworkPort(spec: NetSpec, log: (line: string) => void): Promise<NetworkPort> {
  const connector = connectorFor(spec);
  const port = new NetworkPort(connector, log);
  try {
    await port.start();
  } catch (error) {
    connector.close();
    throw error;
  }
  return port;
}

export function connectorFor(spec: NetSpec): BackendConnector {
  const backend = spec.backend;
  switch (backend.kind) {
    case 'user': return new PasstConnector(backend.forwards);
    case 'tap': return new TapConnector(backend.ifname);
    case 'stream': return new StreamConnector(backend.path);
  }
}

/** Keeps the end of a child's output, for the message when it fails. */
function collectOutput(child: ChildProcess): () => string {
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-outputTailBytes);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  // passt's help and start-up text mention syslog when there is none; that is no news.
  return () => tail.split('\n').filter((line) => line.trim() !== '' && !line.includes('syslog')).slice(-5).join(' / ');
}

/** Connects to a UNIX socket, trying again while `stillStarting()` says the server may yet appear. */
function connectUnix(socketPath: string, stillStarting: () => string | undefined, patienceMs: number): Promise<Duplex> {
  const deadline = performance.now() + patienceMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const socket = net.connect(socketPath);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        socket.destroy();
        const gone = stillStarting();
        if (gone !== undefined) return reject(new NetworkBackendError(gone));
        if ((error.code === 'ENOENT' || error.code === 'ECONNREFUSED') && performance.now() < deadline) {
          setTimeout(attempt, connectPollMs);
          return;
        }
        reject(new NetworkBackendError(`cannot connect to ${socketPath}: ${error.code ?? error.message}`));
      });
    };
    attempt();
  });
}

/** `--net user`: a passt process of our own, restarted if it dies. */
class PasstConnector implements BackendConnector {
  readonly description = 'passt';
  readonly restartable = true;
  private child: ChildProcess | undefined;
  private directory: string | undefined;

  constructor(private readonly forwards: readonly PortForward[]) {}

  async connect(): Promise<Duplex> {
    this.stop();
    // passt creates its socket as the user it runs as: a private directory of ours.
    this.directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-passt-'));
    const socketPath = path.join(this.directory, 'passt.sock');
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const args = [
      '--foreground', '--quiet', '--ipv4-only', '--runas', `${uid}:${gid}`, '--socket', socketPath,
      '--address', userNetwork.guest, '--netmask', String(userNetwork.prefixBits), '--gateway', userNetwork.gateway,
      '--mtu', String(netMtuBytes),
      // The guest has no business with the host's DNS or search list.
      '--no-dhcp-dns', '--no-dhcp-search',
      ...this.forwards.flatMap((forward) => [forward.protocol === 'tcp' ? '--tcp-ports' : '--udp-ports', `${forward.hostAddress}/${forward.hostPort}:${forward.guestPort}`]),
    ];
    if (this.forwards.every((forward) => forward.protocol !== 'udp')) args.push('--udp-ports', 'none');
    let child: ChildProcess;
    try {
      child = spawn('passt', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      throw new NetworkBackendError(`cannot start passt: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.child = child;
    const output = collectOutput(child);
    let failure: string | undefined;
    child.on('error', (error: NodeJS.ErrnoException) => {
      failure = error.code === 'ENOENT' ? 'passt is not installed (Debian package passt; scripts/setup.sh installs it)' : `cannot start passt: ${error.message}`;
    });
    child.on('exit', (code, signal) => {
      failure ??= `passt stopped (${signal ?? `status ${code}`}): ${output() || 'it said nothing'}`;
    });
    return connectUnix(socketPath, () => failure, backendStartTimeoutMs);
  }

  private stop(): void {
    if (this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    this.child = undefined;
    if (this.directory !== undefined) fs.rmSync(this.directory, { recursive: true, force: true });
    this.directory = undefined;
  }

  close(): void {
    this.stop();
  }
}

/** `--net tap,ifname=NAME`: tap-relay opens the device; its pipes carry the frames. */
class TapConnector implements BackendConnector {
  readonly restartable = true;
  readonly description: string;
  private child: ChildProcess | undefined;

  constructor(private readonly ifname: string) {
    this.description = `tap ${ifname}`;
  }

  connect(): Promise<Duplex> {
    this.close();
    if (!fs.existsSync(tapRelayPath)) return Promise.reject(new NetworkBackendError(`the TAP relay ${tapRelayPath} is not built (scripts/setup.sh builds it)`));
    const child = spawn(tapRelayPath, [this.ifname], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-outputTailBytes);
    });
    const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
    return new Promise((resolve, reject) => {
      // The relay says "ready" on stderr once the device is open; anything else first is its error.
      const onData = (): void => {
        if (!stderr.includes('ready\n')) return;
        child.stderr.off('data', onData);
        stderr = stderr.replace('ready\n', '');
        resolve(stream);
      };
      child.stderr.on('data', onData);
      child.on('error', (error) => reject(new NetworkBackendError(`cannot start the TAP relay: ${error.message}`)));
      child.on('exit', (code) => {
        const message = stderr.trim() === '' ? `the TAP relay exited with status ${code}` : stderr.trim().split('\n').slice(-1)[0]!;
        reject(new NetworkBackendError(`tap ${this.ifname}: ${message}`));
        stream.destroy(new Error(message));
      });
    });
  }

  close(): void {
    if (this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    this.child = undefined;
  }
}

/** `--net stream,path=SOCKET`: someone else's server (`pair`'s switch, QEMU, passt run by hand). */
class StreamConnector implements BackendConnector {
  readonly restartable = false;
  readonly description: string;

  constructor(private readonly socketPath: string) {
    this.description = `stream ${socketPath}`;
  }

  connect(): Promise<Duplex> {
    // A server that is coming up (a replica started together with its pair's switch) gets a moment.
    return connectUnix(this.socketPath, () => undefined, streamConnectPatienceMs);
  }

  close(): void {}
}
