/**
 * Console output with the repeats a failover may cause (P8): the observed stream must be the
 * expected one, except that it may "rewind" a bounded number of times, a bounded distance, and
 * repeat what it had printed. Used by the seeded simulator and by the real-process tests.
 */

/**
 * How far back output may be repeated by default: a restart point lies at most this many
 * bytes before the furthest point printed so far. A failover repeats what the backup
 * re-executes of what the primary had already printed, about two epochs' worth of output. The
 * workload prints under 1 KB in any million instructions (measured on understudy; its lines
 * are spread over sleeps, I/O waits and work), so this leaves room for epochs of a million
 * instructions and more, and still rejects a restart from far back (the whole output is about
 * 11 KB). Tests with longer epochs pass their own bound.
 */
export const consoleRewindBytesMax = 4096;

/**
 * How many rewinds the output may hold by default: each failover repeats output at most once
 * (the new primary re-emits what the failover epoch printed), so this is the number of
 * failovers one run may go through. Tests that cause more pass their count.
 */
export const consoleRewindsMax = 4;

export interface RepeatCheckOptions {
  /** Overrides consoleRewindBytesMax. */
  readonly maxRewindBytes?: number;
  /** Overrides consoleRewindsMax. Time and memory grow in proportion to it. */
  readonly maxRewinds?: number;
}

export interface RepeatCheck {
  readonly ok: boolean;
  readonly reason?: string;
}

/**
 * Whether `observed` is `expected`, except that at one or more points the stream rewinds and
 * repeats what it had printed before. Precisely: `observed` must split into segments
 *
 *     expected[0, a_1) + expected[b_1, a_2) + expected[b_2, a_3) + ... + expected[b_k, n)
 *
 * (n = expected.length) with k <= maxRewinds rewinds, where each rewind goes back (b_i < a_i,
 * never a skip forward), every segment after the first is non-empty, and
 * b_i >= max(a_1, ..., a_i) - maxRewindBytes: no restart lies more than maxRewindBytes before
 * the furthest point printed so far. So nothing is missing (every byte of `expected` appears),
 * nothing is invented (every byte is the expected one at its offset), and the output ends with
 * the complete expected tail. With k = 0 this is `observed === expected`. Rewinds may land
 * anywhere, mid-line included: epochs end anywhere.
 *
 * Note: segments may be short, so with two rewinds or more allowed, an output that rewinds a
 * few bytes further than maxRewindBytes can still pass, as a rewind into the window plus short
 * ones that print its first bytes from pieces inside it. With maxRewinds = 1 the bound is exact.
 *
 * Usually a greedy search finds a split at once; when it gives up, an automaton decides
 * exactly (and explains a failure), in time about proportional to
 * observed.length * (maxRewinds + 1) * maxRewindBytes / (the expected text's alphabet size).
 */
export function checkOutputWithRepeats(expected: string, observed: string, options: RepeatCheckOptions = {}): RepeatCheck {
  const rewindBytesMax = options.maxRewindBytes ?? consoleRewindBytesMax;
  const rewindsMax = options.maxRewinds ?? consoleRewindsMax;
  if (!Number.isSafeInteger(rewindBytesMax) || rewindBytesMax < 0) throw new RangeError(`maxRewindBytes must be a whole number >= 0, not ${rewindBytesMax}`);
  if (!Number.isSafeInteger(rewindsMax) || rewindsMax < 0) throw new RangeError(`maxRewinds must be a whole number >= 0, not ${rewindsMax}`);
  if (observed === expected || greedyFindsSplit(expected, observed, rewindBytesMax, rewindsMax)) return { ok: true };
  return runAutomaton(expected, observed, rewindBytesMax, rewindsMax);
}

/** checkOutputWithRepeats against the console of a failure-free pair_workload run. */

/**
 * The fast way, for the usual output of a failover: follows `expected` while `observed` does,
 * and where it stops (so a rewind must have happened, here or a little before: the rewind may
 * be moved to this point without changing its distance), restarts at the offset in the window
 * that matches the most of what follows. True if that finds a split as checkOutputWithRepeats
 * defines it; false if it gives up, which proves nothing.
 */
function greedyFindsSplit(expected: string, observed: string, rewindBytesMax: number, rewindsMax: number): boolean {
  const n = expected.length;
  const m = observed.length;
  let at = 0;
  let p = 0;
  let furthest = 0;
  for (let rewinds = 0; ; rewinds++) {
    while (at < m && p < n && observed.charCodeAt(at) === expected.charCodeAt(p)) {
      at++;
      p++;
    }
    furthest = Math.max(furthest, p);
    if (at === m) return p === n;
    if (rewinds === rewindsMax) return false;
    let best = -1;
    let bestLength = 0;
    for (let b = Math.max(0, furthest - rewindBytesMax); b < p; b++) {
      let length = 0;
      while (at + length < m && b + length < n && observed.charCodeAt(at + length) === expected.charCodeAt(b + length)) length++;
      if (length > bestLength) [best, bestLength] = [b, length];
    }
    if (best < 0) return false;
    p = best;
  }
}

/** The exact way: runs the automaton over all of `observed`, and says why it fails. */
function runAutomaton(expected: string, observed: string, rewindBytesMax: number, rewindsMax: number): RepeatCheck {
  const automaton = new RepeatAutomaton(expected, rewindBytesMax, rewindsMax);
  for (let index = 0; index < observed.length; index++) {
    if (!automaton.step(observed.charCodeAt(index), index)) return { ok: false, reason: automaton.describeDeadEnd(observed, index) };
  }
  if (automaton.accepts()) return { ok: true };
  return { ok: false, reason: automaton.describeEarlyEnd(observed) };
}

/** The two ways checkOutputWithRepeats decides, each on its own, for its tests. */
export const repeatCheckInternals = { greedyFindsSplit, runAutomaton };

/** Automaton states (p, h), sorted by p, descending, with distinct p. */
class StateList {
  readonly offsets: Int32Array;
  readonly heights: Int32Array;
  count = 0;

  constructor(capacity: number) {
    this.offsets = new Int32Array(capacity);
    this.heights = new Int32Array(capacity);
  }

  push(p: number, h: number): void {
    this.offsets[this.count] = p;
    this.heights[this.count++] = h;
  }
}

/**
 * The automaton behind checkOutputWithRepeats. A state is (p, h) after k rewinds: the expected
 * offset of the next byte and the furthest offset printed so far. An observed byte c either
 * continues (expected[p] = c: to (p + 1, max(h, p + 1)), still k) or restarts at a b in
 * [h - maxRewindBytes, p) with expected[b] = c (to (b + 1, h), k + 1 <= maxRewinds).
 *
 * For one p, a state with a smaller or equal h and no more rewinds allows all that another
 * allows (a lower floor, as many rewinds left, a smaller h passed on), so the other is dropped.
 * The states are kept by k (layer k: exactly k rewinds), each layer at most n + 1 states in
 * two arrays sorted by p, descending; each step merges a layer's continuations with the
 * restarts from the layer below, both produced in that order.
 */
class RepeatAutomaton {
  private readonly text: Uint16Array;
  private readonly offsetsOf = new Map<number, Int32Array>();
  private layers: StateList[];
  private nextLayers: StateList[];
  private readonly continued: StateList;
  private readonly restarted: StateList;
  /** Per p, the least h kept this step in a layer below (valid where bestStep equals step). */
  private readonly bestHeight: Int32Array;
  private readonly bestStep: Int32Array;
  private stepNumber = 0;
  /** The furthest expected offset any state has printed, and the observed bytes it took. */
  private furthest = 0;
  private furthestAfterBytes = 0;

  constructor(
    private readonly expected: string,
    private readonly rewindBytesMax: number,
    private readonly rewindsMax: number,
  ) {
    const n = expected.length;
    this.text = new Uint16Array(n);
    const lists = new Map<number, number[]>();
    for (let offset = 0; offset < n; offset++) {
      const c = expected.charCodeAt(offset);
      this.text[offset] = c;
      let list = lists.get(c);
      if (list === undefined) lists.set(c, (list = []));
      list.push(offset);
    }
    for (const [c, list] of lists) this.offsetsOf.set(c, Int32Array.from(list));
    const layers = (): StateList[] => Array.from({ length: rewindsMax + 1 }, () => new StateList(n + 1));
    this.layers = layers();
    this.nextLayers = layers();
    this.continued = new StateList(n + 1);
    this.restarted = new StateList(n + 1);
    this.bestHeight = new Int32Array(n + 1);
    this.bestStep = new Int32Array(n + 1);
    this.layers[0]!.push(0, 0);
  }

  /** Consumes observed byte `c` (at observed offset `index`); false if no state survives. */
  step(c: number, index: number): boolean {
    this.stepNumber++;
    let alive = false;
    for (let k = 0; k <= this.rewindsMax; k++) {
      this.continuations(this.layers[k]!, c);
      this.restarted.count = 0;
      if (k > 0) this.restarts(this.layers[k - 1]!, c);
      this.merge(this.nextLayers[k]!, index + 1);
      alive ||= this.nextLayers[k]!.count > 0;
    }
    [this.layers, this.nextLayers] = [this.nextLayers, this.layers];
    return alive;
  }

  accepts(): boolean {
    return this.layers.some((layer) => layer.count > 0 && layer.offsets[0] === this.text.length);
  }

  private continuations(from: StateList, c: number): void {
    const n = this.text.length;
    const to = this.continued;
    to.count = 0;
    for (let k = 0; k < from.count; k++) {
      const p = from.offsets[k]!;
      if (p < n && this.text[p] === c) to.push(p + 1, Math.max(from.heights[k]!, p + 1));
    }
  }

  /**
   * Every restart at a b with expected[b] = c. Going down through the candidates, the states
   * with p > b are those that may restart at b, and the one of them with the least h is the
   * best (the lowest floor, and the least h to pass on).
   */
  private restarts(from: StateList, c: number): void {
    const candidates = this.offsetsOf.get(c);
    if (candidates === undefined || from.count === 0) return;
    let lowestFloor = Infinity;
    for (let k = 0; k < from.count; k++) lowestFloor = Math.min(lowestFloor, from.heights[k]! - this.rewindBytesMax);
    let active = 0;
    let leastHeight = Infinity;
    for (let j = lastBelow(candidates, from.offsets[0]!); j >= 0; j--) {
      const b = candidates[j]!;
      if (b < lowestFloor) break;
      while (active < from.count && from.offsets[active]! > b) leastHeight = Math.min(leastHeight, from.heights[active++]!);
      if (b >= leastHeight - this.rewindBytesMax) this.restarted.push(b + 1, leastHeight);
    }
  }

  /** Merges continued and restarted into `to` by p, descending, dropping dominated states. */
  private merge(to: StateList, observedBytes: number): void {
    const { continued, restarted } = this;
    to.count = 0;
    let i = 0;
    let j = 0;
    while (i < continued.count || j < restarted.count) {
      const p1 = i < continued.count ? continued.offsets[i]! : -1;
      const p2 = j < restarted.count ? restarted.offsets[j]! : -1;
      let p: number;
      let h: number;
      if (p1 === p2) {
        p = p1;
        h = Math.min(continued.heights[i++]!, restarted.heights[j++]!);
      } else if (p1 > p2) {
        p = p1;
        h = continued.heights[i++]!;
      } else {
        p = p2;
        h = restarted.heights[j++]!;
      }
      if (this.bestStep[p] === this.stepNumber && this.bestHeight[p]! <= h) continue;
      this.bestStep[p] = this.stepNumber;
      this.bestHeight[p] = h;
      to.push(p, h);
      if (h > this.furthest) {
        this.furthest = h;
        this.furthestAfterBytes = observedBytes;
      }
    }
  }

  describeDeadEnd(observed: string, index: number): string {
    return (
      `the output goes wrong after the expected output's first ${this.furthest} of ${this.text.length} bytes ` +
      `(printed by observed byte ${this.furthestAfterBytes}): the observed bytes from there, ${quote(observed, this.furthestAfterBytes, this.furthestAfterBytes + 50)}, ` +
      `are neither the expected ones, ${quote(this.expected, this.furthest, this.furthest + 50)}, nor, up to observed byte ${index}, ` +
      `a repeat in at most ${this.rewindsMax} rewinds of at most ${this.rewindBytesMax} bytes back`
    );
  }

  describeEarlyEnd(observed: string): string {
    const n = this.text.length;
    if (this.furthest < n) {
      return `the output ends after ${observed.length} bytes, having printed the expected output's first ${this.furthest} of ${n} bytes; missing ${quote(this.expected, this.furthest, this.furthest + 60)}`;
    }
    const reached = Math.max(0, ...this.layers.map((layer) => (layer.count > 0 ? layer.offsets[0]! : 0)));
    return `the output ends inside a repeat: after all ${n} expected bytes it restarted, and ends at expected offset ${reached}; missing ${quote(this.expected, reached, reached + 60)}`;
  }
}

/** The index of the last element of ascending `values` below `limit`, or -1. */
function lastBelow(values: Int32Array, limit: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (values[middle]! < limit) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

function quote(text: string, from: number, to: number): string {
  return JSON.stringify(text.slice(Math.max(0, from), Math.max(0, to)));
}
