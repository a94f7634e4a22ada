/**
 * `pair`'s network switch. The network back-end belongs to the pair process, as the console
 * does: it runs passt (or holds the TAP device, or the stream), so the guest's network identity
 * — its MAC, passt's forwarded host ports and the TCP connections through them — lives in a
 * process that no failover touches. Each replica reaches the switch through a UNIX socket of
 * its own (`--net stream,path=...` with the NIC's MAC), one per NIC and replica.
 *
 * - Frames from the network go to the replica that is live now (the primary, or the backup once
 *   it has been promoted). While none is (between the primary's death and the backup's
 *   promotion), they wait in the back-end's bounded queue and go to the new primary when it
 *   says it is live. A frame handed to a primary that dies before logging it would be lost (its
 *   sender's retransmission would cover it, but passt retransmits only after 2 s): so the
 *   switch hands the new primary the frames of the last moments again first, those the old
 *   one may not have logged. Some arrive twice, as a duplicate on a wire does; TCP and the
 *   like take them as one.
 * - Frames from a replica go to the network whichever replica sent them: the protocol lets only
 *   the live one send (P3, the output rule, the lease), and a promoted backup sends the frames
 *   of unacknowledged epochs again before the pair has heard of its promotion.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { NetSpec } from './option.js';
import type { NetworkPort } from './port.js';
import { openNetworkPort } from './backends.js';
import { FrameStreamDecoder, FrameStreamError, encodeFrame } from './frames.js';

/** Names a replica of the pair (its number). */
export type ReplicaId = string;
/** Bytes waiting to be written to the live replica beyond which frames stay in the back-end's queue. */
const replicaBacklogBytesMax = 1 << 20;
/**
 * How far back frames are handed to a new primary again: longer than a failure is detected
 * and the lease waited out (by default 500 + 200 ms), so every frame the old primary may have
 * taken and not logged is in it.
 */
const replayWindowMs = 2000;
/** ... and at most this many frames of it. */
const replayFramesMax = 512;

/** One NIC: its real back-end and one socket per replica. */
class SwitchPort {
  private readonly servers = new Map<ReplicaId, { server: net.Server; socketPath: string }>();
  private readonly connections = new Map<ReplicaId, net.Socket>();
  private live: ReplicaId | undefined;
  private closed = false;
  /** Frames handed to the live replica lately, oldest first (for a new primary: see above). */
  private recent: { atMs: number; frame: Uint8Array }[] = [];

  constructor(
    readonly spec: NetSpec,
    private readonly port: NetworkPort,
    private readonly directory: string,
    private readonly index: number,
    private readonly log: (line: string) => void,
  ) {
    void this.pump();
  }

  /** The socket replica `id` connects to (made now: a UNIX socket binds as listen is called). */
  socketFor(id: ReplicaId): string {
    const known = this.servers.get(id);
    if (known !== undefined) return known.socketPath;
    const socketPath = path.join(this.directory, `nic${this.index}-replica${id}.sock`);
    const server = net.createServer((socket) => this.accept(id, socket));
    server.on('error', (error) => this.log(`the network switch's socket ${socketPath}: ${error.message}`));
    server.listen(socketPath);
    this.servers.set(id, { server, socketPath });
    return socketPath;
  }

  /** Replica `id` is gone: its socket too. */
  forget(id: ReplicaId): void {
    const known = this.servers.get(id);
    if (known === undefined) return;
    known.server.close();
    fs.rmSync(known.socketPath, { force: true });
    this.servers.delete(id);
  }

  setLive(name: ReplicaId | undefined): void {
    const previous = this.live;
    this.live = name;
    if (name !== undefined && previous !== undefined && name !== previous) {
      const socket = this.connections.get(name);
      const since = performance.now() - replayWindowMs;
      for (const { atMs, frame } of this.recent) if (atMs >= since) socket?.write(encodeFrame(frame));
      this.recent = [];
    }
    this.forward();
  }

  private accept(name: ReplicaId, socket: net.Socket): void {
    // A replica started again (a new backup) replaces the one before it.
    this.connections.get(name)?.destroy();
    this.connections.set(name, socket);
    const decoder = new FrameStreamDecoder();
    socket.on('data', (chunk: Buffer) => {
      let frames: Uint8Array[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        if (!(error instanceof FrameStreamError)) throw error;
        this.log(`replica ${name} sent ${error.message} to the network switch; disconnecting it`);
        socket.destroy();
        return;
      }
      for (const frame of frames) this.port.send(frame);
      if (this.port.backlogged) {
        // The network is slower than the guest: stop reading, so the replica's guest pauses.
        socket.pause();
        void this.port.drained().then(() => socket.resume());
      }
    });
    socket.on('drain', () => this.forward());
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.connections.get(name) === socket) this.connections.delete(name);
    });
    this.forward();
  }

  /** Hands what the back-end received to the live replica, while it keeps up. */
  private forward(): void {
    if (this.live === undefined) return;
    const socket = this.connections.get(this.live);
    if (socket === undefined || socket.destroyed) return;
    while (this.port.inputWaiting && socket.writableLength < replicaBacklogBytesMax) {
      const now = performance.now();
      for (const frame of this.port.take(64, Infinity)) {
        socket.write(encodeFrame(frame));
        this.recent.push({ atMs: now, frame });
      }
    }
    while (this.recent.length > replayFramesMax || (this.recent.length > 0 && this.recent[0]!.atMs < performance.now() - replayWindowMs)) this.recent.shift();
  }

  private async pump(): Promise<void> {
    while (!this.closed) {
      await this.port.changed();
      this.forward();
    }
  }

  close(): void {
    this.closed = true;
    for (const socket of this.connections.values()) socket.destroy();
    for (const id of [...this.servers.keys()]) this.forget(id);
    this.port.close();
  }
}

export class NetworkSwitch {
  private constructor(private readonly ports: readonly SwitchPort[]) {}

  /** Starts the NICs' back-ends; the replicas' sockets go in `directory` (which must exist and be private). */
  static async open(specs: readonly NetSpec[], directory: string, log: (line: string) => void): Promise<NetworkSwitch> {
    const ports: SwitchPort[] = [];
    try {
      for (const [index, spec] of specs.entries()) ports.push(new SwitchPort(spec, await openNetworkPort(spec, log), directory, index, log));
    } catch (error) {
      for (const port of ports) port.close();
      throw error;
    }
    return new NetworkSwitch(ports);
  }

  /** The `--net` options of replica `id`: stream sockets to this switch, with the NICs' MACs. */
  replicaSpecs(id: ReplicaId): NetSpec[] {
    return this.ports.map((port) => ({ mac: port.spec.mac, backend: { kind: 'stream', path: port.socketFor(id) } }));
  }

  /** Which replica gets the frames from the network now (none: they wait). */
  setLive(id: ReplicaId | undefined): void {
    for (const port of this.ports) port.setLive(id);
  }

  /** Replica `id` has exited. */
  forget(id: ReplicaId): void {
    for (const port of this.ports) port.forget(id);
  }

  close(): void {
    for (const port of this.ports) port.close();
  }
}
