/**
 * The other end of a guest's network for tests: a UNIX socket server speaking the stream
 * framing (length-prefixed Ethernet frames, as QEMU's -netdev stream and passt), to which
 * `understudy --net stream,path=...` or QEMU connects; and the frames net_echo understands
 * (ARP, UDP over IPv4), built and parsed.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { FrameStreamDecoder, encodeFrame } from '../../src/host/network/frames.js';

export const guestMac = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
export const guestIp = Uint8Array.of(10, 0, 2, 15);
export const peerMac = Uint8Array.of(0x52, 0x54, 0x00, 0x99, 0x00, 0x01);
export const peerIp = Uint8Array.of(10, 0, 2, 2);

export class FramePeer {
  private socket: net.Socket | undefined;
  private readonly received: Uint8Array[] = [];
  private waiters: (() => void)[] = [];
  connections = 0;

  private constructor(private readonly server: net.Server) {}

  static async listen(socketPath: string): Promise<FramePeer> {
    fs.rmSync(socketPath, { force: true });
    const server = net.createServer();
    const peer = new FramePeer(server);
    server.on('connection', (socket) => peer.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    return peer;
  }

  private accept(socket: net.Socket): void {
    this.socket?.destroy();
    this.socket = socket;
    this.connections++;
    const decoder = new FrameStreamDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) this.received.push(frame);
      this.wake();
    });
    socket.on('error', () => {});
    this.wake();
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  send(frame: Uint8Array): void {
    this.socket?.write(encodeFrame(frame));
  }

  /** Bytes as they are, framing or not (for a back-end that misbehaves). */
  sendRaw(bytes: Uint8Array): void {
    this.socket?.write(bytes);
  }

  /** Closes the connection (the server stays). */
  dropConnection(): void {
    this.socket?.end();
  }

  /** Stops reading (a reader that lags): what the guest sends piles up on its side. */
  pauseReading(): void {
    this.socket?.pause();
  }

  resumeReading(): void {
    this.socket?.resume();
  }

  /** Frames received so far, taken. */
  take(): Uint8Array[] {
    return this.received.splice(0);
  }

  /**
   * Waits for a received frame that `match` accepts (others are kept); undefined if none came
   * within `timeoutMs` (a client's retransmission timer, not a test's patience).
   */
  async next(match: (frame: Uint8Array) => boolean, timeoutMs: number): Promise<Uint8Array | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const index = this.received.findIndex(match);
      if (index >= 0) return this.received.splice(index, 1)[0];
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until a connection has come (`count` in all). */
  async connection(count = 1, timeoutMs = 120_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.connections < count) {
      if (performance.now() > deadline) throw new Error('no connection to the frame peer');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket?.destroy();
    this.server.close();
  }
}

function ipv4Checksum(header: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < header.length; i += 2) sum += (header[i]! << 8) | header[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function arpRequest(targetIp: Uint8Array): Uint8Array {
  const frame = new Uint8Array(42);
  const view = new DataView(frame.buffer);
  frame.fill(0xff, 0, 6);
  frame.set(peerMac, 6);
  view.setUint16(12, 0x0806);
  frame.set([0, 1, 8, 0, 6, 4, 0, 1], 14);
  frame.set(peerMac, 22);
  frame.set(peerIp, 28);
  frame.set(targetIp, 38);
  return frame;
}

export function isArpReply(frame: Uint8Array): boolean {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  return frame.length >= 42 && view.getUint16(12) === 0x0806 && view.getUint16(20) === 2;
}

export function udpDatagram(options: { destinationPort: number; sourcePort: number; payload: Uint8Array; destinationIp?: Uint8Array }): Uint8Array {
  const ipBytes = 20 + 8 + options.payload.length;
  const frame = new Uint8Array(14 + ipBytes);
  const view = new DataView(frame.buffer);
  frame.set(guestMac, 0);
  frame.set(peerMac, 6);
  view.setUint16(12, 0x0800);
  frame[14] = 0x45;
  view.setUint16(16, ipBytes);
  frame[22] = 64; // TTL
  frame[23] = 17; // UDP
  frame.set(peerIp, 26);
  frame.set(options.destinationIp ?? guestIp, 30);
  view.setUint16(24, ipv4Checksum(frame.subarray(14, 34)));
  view.setUint16(34, options.sourcePort);
  view.setUint16(36, options.destinationPort);
  view.setUint16(38, 8 + options.payload.length);
  // UDP checksum 0: none (allowed over IPv4).
  frame.set(options.payload, 42);
  return frame;
}

export interface Datagram {
  readonly sourceIp: string;
  readonly destinationIp: string;
  readonly sourcePort: number;
  readonly destinationPort: number;
  readonly payload: Uint8Array;
  readonly sourceMac: string;
}

export function parseUdp(frame: Uint8Array): Datagram | undefined {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (frame.length < 42 || view.getUint16(12) !== 0x0800 || frame[23] !== 17) return undefined;
  const ihl = (frame[14]! & 15) * 4;
  const udp = 14 + ihl;
  const length = view.getUint16(udp + 4);
  const ip = (at: number): string => Array.from(frame.subarray(at, at + 4)).join('.');
  return {
    sourceIp: ip(26),
    destinationIp: ip(30),
    sourcePort: view.getUint16(udp),
    destinationPort: view.getUint16(udp + 2),
    payload: frame.slice(udp + 8, udp + length),
    sourceMac: Array.from(frame.subarray(6, 12), (b) => b.toString(16).padStart(2, '0')).join(':'),
  };
}
