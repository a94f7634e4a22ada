/**
 * Where a synchronous disk request's time goes under protection (`--trace-io`): the primary's
 * run loop notes, for every disk request, the moments it passes on its way out and back:
 *
 *   entry sent     the epoch that issued the request ended, its log entry left for the backup
 *   acknowledged   the backup's acknowledgement of that epoch arrived (the round trip)
 *   released       the request went to the disk image (the output rule allowed it)
 *   performed      the host's I/O finished
 *   delivered      the completion entered the guest, at an epoch boundary (its entry left);
 *                  for a write completed early (before its release), before it was released
 *   next issued    the entry of the epoch that issued the guest's next request left (or the
 *                  request's release, if that came first)
 *
 * A request released before its epoch's acknowledgement (a read goes out with the step that
 * issued it, before the entry has even left) gets its entry and acknowledgement times when
 * they come, and the summary counts it apart: the guest did not wait for that round trip.
 *
 * and, for every frame the guest sends: when the frames it answers arrived from the network,
 * when their entry delivered them, when the answer's entry left, was acknowledged, and the
 * frame was released.
 *
 * Every gap but the round trip is a wait the protocol does not need (issue 14). Times are the
 * host's monotonic milliseconds; nothing here reaches the machine or the protocol core.
 */

/** A disk request: its virtio slot and its id there. */
export interface RequestKey {
  readonly slot: number;
  readonly requestId: number;
}

/** A released request: its key and what it does. */
export interface TracedRequestKey extends RequestKey {
  readonly op: 'read' | 'write' | 'flush';
  /** A write the write-back disk answered at its instruction: the guest had it with its epoch. */
  readonly completed?: true;
}

/** One request's way, in host milliseconds (undefined: not reached, or not applicable). */
export interface TracedRequest {
  readonly requestId: number;
  readonly op: 'read' | 'write' | 'flush';
  readonly epoch: number;
  entrySentMs: number | undefined;
  acknowledgedMs: number | undefined;
  releasedMs: number | undefined;
  performedMs: number | undefined;
  deliveredMs: number | undefined;
  deliveredEpoch: number | undefined;
  /** Its completion reached the guest before it was released (a write completed early, or answered by a write-back disk). */
  early: boolean;
}

/** The gaps of a traced request, in the order it meets them. */
export const traceGaps = [
  ['round trip', 'entrySentMs', 'acknowledgedMs'],
  ['acknowledged -> released', 'acknowledgedMs', 'releasedMs'],
  ['host I/O', 'releasedMs', 'performedMs'],
  ['performed -> delivered', 'performedMs', 'deliveredMs'],
] as const;

/** Epoch entries remembered at most (older ones are forgotten: a request of theirs is not traced). */
const epochsKeptMax = 4096;
/** Requests kept for the summary at most (the first ones). */
const requestsKeptMax = 100_000;

export class IoTrace {
  /** When each recent epoch's entry left, and when its acknowledgement came. */
  private readonly epochs = new Map<number, { sentMs: number; acknowledgedMs: number | undefined }>();
  private readonly requests: TracedRequest[] = [];
  /** Frames sent by the guest, in the order they went out. */
  private readonly frames: {
    epoch: number;
    entrySentMs: number | undefined;
    acknowledgedMs: number | undefined;
    releasedMs: number;
    deliveredMs: number | undefined;
    arrivedMs: number | undefined;
  }[] = [];
  private lastDelivery: { epoch: number; atMs: number; arrivedMs: number | undefined } | undefined;
  /** When the first frame taken for the next entry arrived from the network (at this process). */
  private nextDeliveryArrivedMs: number | undefined;
  /** Epochs sent and not acknowledged yet, oldest first. */
  private readonly unacknowledged: number[] = [];
  /** Requests released and not delivered yet, by slot and id. */
  private readonly open = new Map<string, TracedRequest>();
  /** Completions delivered before their request was released (writes completed early), by slot and id. */
  private readonly deliveredEarly = new Map<string, { atMs: number; epoch: number }>();
  /**
   * Requests released before their epoch's entry left (a read goes out with the step that
   * issued it) or before its acknowledgement came, by epoch: their times are filled in then.
   */
  private readonly beforeEntry = new Map<number, TracedRequest[]>();
  private readonly beforeAcknowledgement = new Map<number, TracedRequest[]>();

  /** Reads answered at once, inside the guest's instruction: no epoch end, no round trip, nothing to trace. */
  private readsAtOnce = 0;
  private readBytesAtOnce = 0;

  constructor(private readonly nowMs: () => number) {}

  /** The primary answered a read at once (messages.ts, 'disk-read'). */
  readAtOnce(request: { readonly lengthBytes: number }): void {
    this.readsAtOnce++;
    this.readBytesAtOnce += request.lengthBytes;
  }

  /** The entry of `epoch` left; it delivers the completions of `completed`. */
  entrySent(epoch: number, completed: readonly RequestKey[]): void {
    if (this.epochs.has(epoch)) return; // sent to another backup: the first send counts
    const now = this.nowMs();
    this.epochs.set(epoch, { sentMs: now, acknowledgedMs: undefined });
    this.unacknowledged.push(epoch);
    if (this.epochs.size > epochsKeptMax) this.epochs.delete(this.epochs.keys().next().value!);
    const released = this.beforeEntry.get(epoch);
    if (released !== undefined) {
      this.beforeEntry.delete(epoch);
      for (const request of released) request.entrySentMs = now;
      this.beforeAcknowledgement.set(epoch, released);
    }
    for (const { slot, requestId } of completed) {
      const key = `${slot}:${requestId}`;
      const request = this.open.get(key);
      if (request === undefined) {
        if (this.deliveredEarly.size < requestsKeptMax) this.deliveredEarly.set(key, { atMs: now, epoch });
        continue;
      }
      this.open.delete(key);
      request.deliveredMs = now;
      request.deliveredEpoch = epoch;
    }
  }

  /** A backup acknowledged everything through `epoch` (the first acknowledgement of an epoch counts). */
  acknowledged(epoch: number): void {
    const now = this.nowMs();
    // Epochs are sent, and acknowledged, in order: only those not acknowledged yet are looked at.
    while (this.unacknowledged.length > 0 && this.unacknowledged[0]! <= epoch) {
      const acknowledged = this.unacknowledged.shift()!;
      const times = this.epochs.get(acknowledged);
      if (times !== undefined) times.acknowledgedMs = now;
      for (const request of this.beforeAcknowledgement.get(acknowledged) ?? []) request.acknowledgedMs = now;
      this.beforeAcknowledgement.delete(acknowledged);
    }
  }

  /** The request, issued in `epoch`, went to the disk image. */
  released({ slot, requestId, op, completed }: TracedRequestKey, epoch: number): void {
    const times = this.epochs.get(epoch);
    const key = `${slot}:${requestId}`;
    // Answered by the write-back disk: delivered, as far as the guest is concerned, when its entry left.
    const early = completed === true ? (times === undefined ? undefined : { atMs: times.sentMs, epoch }) : this.deliveredEarly.get(key);
    this.deliveredEarly.delete(key);
    const request: TracedRequest = {
      requestId, op, epoch, entrySentMs: times?.sentMs, acknowledgedMs: times?.acknowledgedMs, releasedMs: this.nowMs(),
      performedMs: undefined, deliveredMs: early?.atMs, deliveredEpoch: early?.epoch, early: early !== undefined,
    };
    if (this.requests.length < requestsKeptMax) {
      this.requests.push(request);
      // Released ahead of its entry or of the acknowledgement: those times come later.
      const waiting = times === undefined ? this.beforeEntry : times.acknowledgedMs === undefined ? this.beforeAcknowledgement : undefined;
      const same = waiting?.get(epoch);
      if (same !== undefined) same.push(request);
      else waiting?.set(epoch, [request]);
    }
    this.open.set(key, request);
  }

  /** The host's I/O for the request finished. */
  performed({ slot, requestId }: RequestKey): void {
    const key = `${slot}:${requestId}`;
    const request = this.open.get(key);
    if (request === undefined) return;
    request.performedMs = this.nowMs();
    if (request.early) this.open.delete(key); // delivered already
  }

  /** Frames were taken from the network for the next entry; the first of them arrived at `arrivedMs`. */
  framesTaken(arrivedMs: number): void {
    this.nextDeliveryArrivedMs ??= arrivedMs;
  }

  /** The entry of `epoch` delivered frames from the network to the guest. */
  framesDelivered(epoch: number): void {
    this.lastDelivery = { epoch, atMs: this.nowMs(), arrivedMs: this.nextDeliveryArrivedMs };
    this.nextDeliveryArrivedMs = undefined;
  }

  /** A frame the guest sent in `epoch` went out to the network. */
  frameReleased(epoch: number): void {
    if (this.frames.length >= requestsKeptMax) return;
    const times = this.epochs.get(epoch);
    const delivery = this.lastDelivery;
    this.frames.push({
      epoch, entrySentMs: times?.sentMs, acknowledgedMs: times?.acknowledgedMs, releasedMs: this.nowMs(),
      // The guest's answer to the last frames delivered before it (a request, for a server).
      deliveredMs: delivery !== undefined && delivery.epoch <= epoch ? delivery.atMs : undefined,
      arrivedMs: delivery !== undefined && delivery.epoch <= epoch ? delivery.arrivedMs : undefined,
    });
  }

  /** The requests traced so far, in the order they were released. */
  get traced(): readonly TracedRequest[] {
    return this.requests;
  }

  /** A few lines for each kind of request: the median of each gap, the guest's turn-around, and one request's whole way. */
  summary(): string[] {
    const lines: string[] = [];
    for (const op of ['write', 'read', 'flush'] as const) {
      const requests = this.requests.filter((request) => request.op === op);
      if (requests.length > 0) lines.push(...summarize(`${op}s`, requests));
    }
    if (this.readsAtOnce > 0) lines.push(`io trace: ${this.readsAtOnce} reads (${this.readBytesAtOnce} bytes) answered at once, inside the guest's instruction: no epoch end, no round trip`);
    if (this.frames.length > 0) {
      const gap = (pick: (frame: (typeof this.frames)[number]) => number | undefined): string => {
        const values = this.frames.flatMap((frame) => {
          const value = pick(frame);
          return value === undefined ? [] : [value];
        });
        return values.length === 0 ? '-' : formatMs(median(values));
      };
      lines.push(
        `io trace: ${this.frames.length} frames sent; median: frames arrived -> delivered (their entry sent) ${gap((f) => (f.deliveredMs === undefined || f.arrivedMs === undefined ? undefined : f.deliveredMs - f.arrivedMs))}, ` +
          `delivered -> the answer's entry sent ${gap((f) => (f.entrySentMs === undefined || f.deliveredMs === undefined ? undefined : f.entrySentMs - f.deliveredMs))}, ` +
          `round trip ${gap((f) => (f.entrySentMs === undefined || f.acknowledgedMs === undefined ? undefined : f.acknowledgedMs - f.entrySentMs))}, ` +
          `acknowledged -> released ${gap((f) => (f.acknowledgedMs === undefined ? undefined : f.releasedMs - f.acknowledgedMs))}`,
      );
    }
    return lines.length > 0 ? lines : ['io trace: no disk request went its whole way, no read was answered at once, and no frame went out'];
  }
}

/** The summary of `requests` (of one kind, in the order they were released). */
function summarize(kind: string, requests: readonly TracedRequest[]): string[] {
  const complete = requests.filter((request) => request.deliveredMs !== undefined && request.performedMs !== undefined);
  if (complete.length === 0) return [];
  const lines: string[] = [];
  const cells: string[] = [];
  // Requests that waited for their epoch's acknowledgement, and those that went out before it
  // (a read issued with its step), whose round trip the guest did not wait for.
  const waited = (request: TracedRequest): boolean => request.acknowledgedMs !== undefined && request.releasedMs! >= request.acknowledgedMs;
  for (const [name, from, to] of traceGaps) {
    const gaps = complete.flatMap((request) => (!request.early && waited(request) && request[from] !== undefined && request[to] !== undefined ? [request[to]! - request[from]!] : []));
    if (gaps.length > 0) cells.push(`${name} ${formatMs(median(gaps))}`);
  }
  const ahead = complete.filter((request) => !request.early && !waited(request));
  if (ahead.length > 0) {
    const gap = (from: 'releasedMs' | 'performedMs', to: 'performedMs' | 'deliveredMs'): string => formatMs(median(ahead.map((request) => request[to]! - request[from]!)));
    cells.push(`${ahead.length} issued before the acknowledgement: host I/O ${gap('releasedMs', 'performedMs')}, performed -> delivered ${gap('performedMs', 'deliveredMs')}`);
  }
  // Writes completed early, or answered by the write-back disk: the guest had the completion before the round trip was over.
  const early = complete.filter((request) => request.early && request.entrySentMs !== undefined);
  if (early.length > 0) {
    const ways = (to: 'deliveredMs' | 'acknowledgedMs'): number[] => early.flatMap((request) => (request[to] === undefined ? [] : [request[to]! - request.entrySentMs!]));
    const acknowledged = ways('acknowledgedMs');
    cells.push(`${early.length} answered before the acknowledgement: entry sent -> delivered ${formatMs(median(ways('deliveredMs')))}${acknowledged.length > 0 ? ` (round trip ${formatMs(median(acknowledged))})` : ''}`);
  }
  // The guest's part: from a completion's delivery to the entry that carries its next request.
  const turnaround: number[] = [];
  const whole: number[] = [];
  const epochsBetween: number[] = [];
  // When a request left: its entry, or its release if that came first (a read issued with its step).
  const issuedMs = (request: TracedRequest): number | undefined => (request.entrySentMs === undefined ? undefined : Math.min(request.entrySentMs, request.releasedMs ?? Infinity));
  for (let index = 1; index < requests.length; index++) {
    const before = requests[index - 1]!;
    const after = requests[index]!;
    const afterIssued = issuedMs(after);
    const beforeIssued = issuedMs(before);
    if (before.deliveredMs === undefined || afterIssued === undefined || before.deliveredEpoch === undefined) continue;
    if (after.epoch < before.deliveredEpoch) continue; // in flight together: not one after the other
    turnaround.push(afterIssued - before.deliveredMs);
    epochsBetween.push(after.epoch - before.epoch);
    if (beforeIssued !== undefined) whole.push(afterIssued - beforeIssued);
  }
  if (turnaround.length > 0) cells.push(`delivered -> next issued ${formatMs(median(turnaround))}`);
  lines.push(`io trace: ${complete.length} ${kind}; median per step: ${cells.join(', ')}`);
  if (whole.length > 0) {
    const mean = whole.reduce((sum, value) => sum + value, 0) / whole.length;
    const sorted = [...whole].sort((a, b) => a - b);
    const at = (fraction: number): string => formatMs(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!);
    lines.push(
      `io trace: ${kind} one after the other: from one issue to the next median ${formatMs(median(whole))} (p90 ${at(0.9)}, p99 ${at(0.99)}, max ${formatMs(sorted.at(-1)!)}; ` +
        `mean ${formatMs(mean)}, ${median(epochsBetween)} epochs; ${whole.length} pairs)`,
    );
  }
  // One request end to end: the one whose way took the median time.
  const byWay = complete.filter((request) => request.entrySentMs !== undefined).sort((a, b) => a.deliveredMs! - issuedMs(a)! - (b.deliveredMs! - issuedMs(b)!));
  const typical = byWay[Math.floor(byWay.length / 2)];
  if (typical !== undefined) {
    const start = issuedMs(typical)!;
    const at = (ms: number | undefined): string => (ms === undefined ? '-' : `+${formatMs(ms - start)}`);
    lines.push(
      `io trace: ${typical.op} ${typical.requestId} (issued in epoch ${typical.epoch}): entry sent ${at(typical.entrySentMs)}, acknowledged ${at(typical.acknowledgedMs)}, ` +
        `released ${at(typical.releasedMs)}, performed ${at(typical.performedMs)}, delivered ${at(typical.deliveredMs)} (epoch ${typical.deliveredEpoch})`,
    );
  }
  return lines;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function formatMs(ms: number): string {
  return `${ms.toFixed(ms < 10 ? 3 : 1)} ms`;
}
