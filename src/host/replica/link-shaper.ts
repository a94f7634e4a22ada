/**
 * A slower link than loopback, for tests and benchmarks (`--link-rate`, `--link-latency`):
 * the sending side of a replica's channel passes each frame through a token bucket (the rate)
 * and a one-way delay, so that two replicas on one host see the link of the paper's 10 Mbit/s
 * Ethernet or 155 Mbit/s ATM (PAPER.md, "What they measured").
 *
 * The model is a wire: a frame of n bytes occupies the link for n / rate once the frames
 * before it have left, then arrives `latencyMs` later. Frames leave strictly in the order they
 * were sent (the link is FIFO, as the protocol assumes), each at its own due time; lateness of
 * the host's timers never accumulates, because due times follow from the schedule, not from
 * when earlier frames were actually written.
 *
 * Host layer only: it reads the host clock and sets timers. The replication core never sees
 * it: to the core a shaped link is just a slower one.
 */
import { assert } from '../../machine/assert.js';

/** A link's shape: its rate (undefined: as fast as the socket) and one-way delay. */
export interface LinkShape {
  readonly rateMbitPerSecond: number | undefined;
  readonly latencyMs: number;
}

/** The clock and timers a shaper uses; tests give it a fake one. */
export interface ShaperClock {
  nowMs(): number;
  /** Calls `callback` once, `delayMs` from now; returns what cancels it. */
  after(delayMs: number, callback: () => void): () => void;
}

/** Below this, a host timer (setTimeout's 1 ms) is too coarse: the wait is a turn of the event loop. */
const timerGranularityMs = 1;

/** The host's clock: setTimeout for waits of a millisecond or more, the next turn of the event loop for shorter ones. */
export const hostShaperClock: ShaperClock = {
  nowMs: () => performance.now(),
  after(delayMs, callback) {
    if (delayMs < timerGranularityMs) {
      const immediate = setImmediate(callback);
      return () => clearImmediate(immediate);
    }
    const timer = setTimeout(callback, Math.floor(delayMs));
    return () => clearTimeout(timer);
  },
};

/** Bytes per millisecond of a rate in Mbit/s (10^6 bits). */
export function bytesPerMs(rateMbitPerSecond: number): number {
  return (rateMbitPerSecond * 1e6) / 8 / 1000;
}

export class LinkShaper {
  /** Frames not yet written, in order, with the moment each is due. */
  private readonly queue: { readonly bytes: Uint8Array; readonly dueMs: number }[] = [];
  /** When the link has finished sending everything handed to it so far. */
  private linkFreeAtMs = -Infinity;
  private cancelTimer: (() => void) | undefined;
  private whenEmpty: (() => void) | undefined;
  private readonly bytesPerMs: number | undefined;

  constructor(
    readonly shape: LinkShape,
    /** Writes a frame to the socket (called in the order frames were sent). */
    private readonly write: (bytes: Uint8Array) => void,
    private readonly clock: ShaperClock = hostShaperClock,
  ) {
    assert(shape.latencyMs >= 0 && Number.isFinite(shape.latencyMs), () => `a link latency of ${shape.latencyMs} ms`);
    assert(shape.rateMbitPerSecond === undefined || shape.rateMbitPerSecond > 0, () => `a link rate of ${shape.rateMbitPerSecond} Mbit/s`);
    this.bytesPerMs = shape.rateMbitPerSecond === undefined ? undefined : bytesPerMs(shape.rateMbitPerSecond);
  }

  /** Frames waiting for their due time. */
  get queuedFrames(): number {
    return this.queue.length;
  }

  /** Hands a frame to the link: it is written when the rate and the delay allow, after every frame sent before it. */
  send(bytes: Uint8Array): void {
    const now = this.clock.nowMs();
    const departsMs = Math.max(now, this.linkFreeAtMs) + (this.bytesPerMs === undefined ? 0 : bytes.length / this.bytesPerMs);
    this.linkFreeAtMs = departsMs;
    const dueMs = departsMs + this.shape.latencyMs;
    if (this.queue.length === 0 && dueMs <= now) {
      this.write(bytes);
      return;
    }
    this.queue.push({ bytes, dueMs });
    if (this.queue.length === 1) this.schedule(now);
  }

  /** Calls `callback` once every frame handed over has been written (at once if none waits). */
  drained(callback: () => void): void {
    if (this.queue.length === 0) callback();
    else this.whenEmpty = callback;
  }

  /** Drops what waits and stops the timer: the connection is gone. */
  close(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.queue.length = 0;
    this.whenEmpty = undefined;
  }

  private schedule(now: number): void {
    const head = this.queue[0];
    if (head === undefined) return;
    this.cancelTimer = this.clock.after(Math.max(0, head.dueMs - now), () => this.flush());
  }

  /** Writes every frame that is due, in order; waits for the next one. */
  private flush(): void {
    this.cancelTimer = undefined;
    const now = this.clock.nowMs();
    while (this.queue.length > 0 && this.queue[0]!.dueMs <= now) this.write(this.queue.shift()!.bytes);
    if (this.queue.length > 0) {
      this.schedule(now);
      return;
    }
    const callback = this.whenEmpty;
    this.whenEmpty = undefined;
    callback?.();
  }
}
