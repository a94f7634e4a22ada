/**
 * A NIC's back-end as the host loops see it (`run`'s runner, a replica's runtime, `pair`'s
 * switch): frames out, frames in, and whether the back-end is there (the guest's link status).
 *
 * The back-end is a stream of length-prefixed frames (frames.ts) from a connector: passt's
 * socket, the TAP relay's pipes, a UNIX socket. Received frames wait in a bounded queue until
 * the machine has buffers for them; beyond the bound they are dropped and counted, as a NIC
 * drops what its ring cannot hold. Frames to send wait in the stream's buffer; past a bound the
 * port says it is backlogged and the caller pauses the guest. A back-end that goes away takes
 * the link down and, if it is one we started, is started again; each of these is said once on
 * the log, never thrown.
 */
import type { Duplex } from 'node:stream';
import { frameBytesMax, frameBytesMin } from '../../machine/devices/virtio-net.js';
import { announcementFrames } from './announce.js';
import { FrameStreamDecoder, FrameStreamError, encodeFrame } from './frames.js';

/** Received frames waiting for the guest, at most (about 780 KiB of full-size frames). */
export const receiveQueueFramesMax = 512;
/** Bytes waiting to be written to the back-end beyond which the guest pauses. */
export const sendBacklogBytesMax = 1 << 20;
/** Restarts in a row of a back-end that keeps failing before the port gives up. */
export const restartAttemptsMax = 5;
/** The wait before the n-th restart in a row is n times this. */
const restartDelayMs = 200;

export class NetworkBackendError extends Error {
  override readonly name = 'NetworkBackendError';
}

/** How a port reaches its back-end. */
export interface BackendConnector {
  /** For messages: "passt", "tap tap0", "stream /run/x.sock". */
  readonly description: string;
  /** Connects, starting the back-end's process first if it has one; rejects with NetworkBackendError. */
  connect(): Promise<Duplex>;
  /** Whether a back-end that went away may be started again (one this process runs). */
  readonly restartable: boolean;
  /** Stops what connect() started. */
  close(): void;
}

export interface PortCounters {
  framesReceived: number;
  framesSent: number;
  /** Received frames dropped: the queue was full, or the frame was no Ethernet frame the NIC takes. */
  receiveDropped: number;
  /** Frames to send dropped because the back-end was not there. */
  sendDropped: number;
}

export class NetworkPort {
  private stream: Duplex | undefined;
  private readonly queue: Uint8Array[] = [];
  /** When each frame of the queue arrived (monotonic ms), for --trace-io. */
  private readonly arrivedMs: number[] = [];
  private waiters: (() => void)[] = [];
  private closing = false;
  private restarts = 0;
  private readonly said = new Set<string>();
  /** A backup's own back-end is not listened to (P3): what arrives is dropped at once. */
  accepting = true;
  /**
   * The guest's addresses, for announcing them to a back-end that came back (a new passt knows
   * no MAC to send the guest's frames to until the guest speaks; TCP drops what arrives
   * broadcast). Set by whoever runs the machine; undefined: nothing to announce.
   */
  announceAs: (() => { readonly mac: Uint8Array; readonly ipv4: Uint8Array | undefined } | undefined) | undefined;
  readonly counters: PortCounters = { framesReceived: 0, framesSent: 0, receiveDropped: 0, sendDropped: 0 };

  constructor(
    private readonly connector: BackendConnector,
    private readonly log: (line: string) => void,
  ) {}

  get description(): string {
    return this.connector.description;
  }

  /** Connects for the first time; a back-end that cannot start is an error for the user. */
  async start(): Promise<void> {
    this.attach(await this.connector.connect());
  }

  get linkUp(): boolean {
    return this.stream !== undefined;
  }

  /** Whether frames may still come: the back-end is there, or one we run is being started again. */
  get mayDeliver(): boolean {
    return this.stream !== undefined || (this.connector.restartable && !this.closing && this.restarts < restartAttemptsMax);
  }

  get inputWaiting(): boolean {
    return this.queue.length > 0;
  }

  /** When the oldest frame waiting arrived (monotonic ms), if one waits. */
  get oldestArrivalMs(): number | undefined {
    return this.arrivedMs[0];
  }

  get backlogBytes(): number {
    return this.stream?.writableLength ?? 0;
  }

  get backlogged(): boolean {
    return this.backlogBytes > sendBacklogBytesMax;
  }

  /** Resolves when what waits to be written has been handed to the back-end (or the back-end is gone). */
  drained(): Promise<void> {
    const stream = this.stream;
    if (stream === undefined || stream.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        stream.off('drain', done);
        stream.off('close', done);
        resolve();
      };
      stream.on('drain', done);
      stream.on('close', done);
    });
  }

  /** Resolves when a frame arrives or the link changes. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Up to `maxFrames` frames, oldest first, of at most `maxBytes` bytes in all. */
  take(maxFrames: number, maxBytes: number): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let bytes = 0;
    while (frames.length < maxFrames && this.queue.length > 0 && bytes + this.queue[0]!.length <= maxBytes) {
      const frame = this.queue.shift()!;
      this.arrivedMs.shift();
      bytes += frame.length;
      frames.push(frame);
    }
    return frames;
  }

  send(frame: Uint8Array): void {
    if (this.stream === undefined) {
      this.counters.sendDropped++;
      return;
    }
    this.counters.framesSent++;
    this.stream.write(encodeFrame(frame));
  }

  /** After a failover: tell the switches that the guest's MAC lives behind this port now. */
  announce(mac: Uint8Array, ipv4: Uint8Array | undefined): void {
    for (const frame of announcementFrames(mac, ipv4)) this.send(frame);
  }

  close(): void {
    this.closing = true;
    this.stream?.destroy();
    this.stream = undefined;
    this.connector.close();
    this.notify();
  }

  private sayOnce(key: string, line: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.log(line);
  }

  private attach(stream: Duplex): void {
    const decoder = new FrameStreamDecoder();
    this.stream = stream;
    let ended = false;
    const end = (reason: string): void => {
      if (ended) return;
      ended = true;
      if (this.stream === stream) this.stream = undefined;
      stream.destroy();
      if (this.closing) return;
      const partial = decoder.partialBytes > 0 ? ` in the middle of a frame (${decoder.partialBytes} bytes of it)` : '';
      this.log(`the network back-end (${this.description}) went away${partial}: ${reason}; the guest's link is down`);
      this.notify();
      this.restartLater();
    };
    stream.on('data', (chunk: Buffer) => {
      if (ended) return;
      let frames: Uint8Array[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        if (!(error instanceof FrameStreamError)) throw error;
        end(`it sent ${error.message}, which is no frame`);
        return;
      }
      for (const frame of frames) this.receive(frame);
      if (frames.length > 0 && this.accepting) this.notify();
    });
    stream.on('error', (error) => end(error.message));
    stream.on('close', () => end('the connection closed'));
  }

  private receive(frame: Uint8Array): void {
    if (!this.accepting) return;
    if (frame.length < frameBytesMin || frame.length > frameBytesMax) {
      this.counters.receiveDropped++;
      this.sayOnce('size', `the network back-end (${this.description}) sent a frame of ${frame.length} bytes; frames outside ${frameBytesMin}..${frameBytesMax} bytes are dropped`);
      return;
    }
    if (this.queue.length >= receiveQueueFramesMax) {
      this.counters.receiveDropped++;
      this.sayOnce('queue', `frames arrive faster than the guest takes them: beyond ${receiveQueueFramesMax} waiting, they are dropped`);
      return;
    }
    this.counters.framesReceived++;
    this.queue.push(frame);
    this.arrivedMs.push(performance.now());
  }

  private restartLater(): void {
    if (!this.connector.restartable || this.closing) return;
    if (this.restarts >= restartAttemptsMax) {
      this.log(`the network back-end (${this.description}) failed ${this.restarts} times in a row: giving up; the guest stays without network`);
      return;
    }
    this.restarts++;
    const timer = setTimeout(() => {
      if (this.closing) return;
      this.connector.connect().then(
        (stream) => {
          if (this.closing) {
            stream.destroy();
            return;
          }
          this.log(`the network back-end (${this.description}) is back; the guest's link is up`);
          this.attach(stream);
          const identity = this.accepting ? this.announceAs?.() : undefined;
          if (identity !== undefined) this.announce(identity.mac, identity.ipv4);
          // Counted as a success once it has stayed a while: a back-end that dies at once counts on.
          setTimeout(() => {
            if (this.stream === stream) this.restarts = 0;
          }, restartDelayMs * restartAttemptsMax).unref();
          this.notify();
        },
        (error: unknown) => {
          this.log(`the network back-end (${this.description}) could not be started again: ${error instanceof Error ? error.message : String(error)}`);
          this.restartLater();
        },
      );
    }, restartDelayMs * this.restarts);
    timer.unref();
  }
}
