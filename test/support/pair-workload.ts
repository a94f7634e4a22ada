/**
 * The host side of guests/tests/pair_workload.c, the guest that replication tests run while
 * they inject failures: the disk image it starts from, the exact console output and disk image
 * of a failure-free run (computed here from the same rules as the C code, not recorded from a
 * run), and a checker for console output that a failover may have repeated in part.
 *
 * Keep the two in step: a change to what the guest prints or writes changes this file too,
 * and test/pair-workload.test.ts (which runs the guest) fails until it does.
 */
import * as fs from 'node:fs';

// --- the disk contract (the top of pair_workload.c) --------------------------------------------

export const diskSectors = 2048;
export const sectorBytes = 512;
/** The workload needs exactly this image size: 1 MiB. */
export const diskBytes = diskSectors * sectorBytes;

const sectorWords = sectorBytes / 4;
/** Word 0 of every record: "PAIR" in little-endian bytes. */
const recordMagic = 0x52494150;
/**
 * The workload's size. `full` is guests/tests/pair_workload.c as it stands; `small` is
 * guests/tests/pair_small.c, the same program with smaller regions, fewer sleeps and lighter
 * work items, for the seeded simulator, which runs it thousands of times.
 */
export interface WorkloadShape {
  /** The disk's size in sectors; the last one gets round 5. */
  readonly diskSectors: number;
  /** Sectors 0..lowEnd-1: rounds 1, 2 where s % 3 == 0, 3 where s % 7 == 0. */
  readonly lowEnd: number;
  /** Sectors lowEnd..middleEnd-1: round 2, then 4 where s % 5 == 0. */
  readonly middleEnd: number;
  /** The sleeps of the timer section. */
  readonly ticks: number;
  /** work() in C: iterations per work item. */
  readonly workIterations: number;
}
export const fullShape: WorkloadShape = { diskSectors, lowEnd: 512, middleEnd: 1536, ticks: 24, workIterations: 14000 };
export const smallShape: WorkloadShape = { diskSectors: 1024, lowEnd: 64, middleEnd: 320, ticks: 4, workIterations: 1000 };

/** Word k (3..127) of the record of (sector, round): a 32-bit mix, as record_word() in C. */
export function recordWord(sector: number, round: number, k: number): number {
  let x = (Math.imul(sector, 0x9e3779b1) + Math.imul(round, 0x85ebca77) + Math.imul(k, 0xc2b2ae3d)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** Word k of a sector that holds `round`: zeros for round 0, else the record's header and body. */
export function expectedWord(sector: number, round: number, k: number): number {
  if (round === 0) return 0;
  if (k === 0) return recordMagic;
  if (k === 1) return sector;
  if (k === 2) return round;
  return recordWord(sector, round, k);
}

/** The round sector `sector` holds after a run (0: never written, zeros). */
export function finalRound(sector: number, shape: WorkloadShape = fullShape): number {
  if (sector === shape.diskSectors - 1) return 5;
  if (sector >= shape.middleEnd) return 0;
  if (sector >= shape.lowEnd) return sector % 5 === 0 ? 4 : 2;
  return sector % 7 === 0 ? 3 : sector % 3 === 0 ? 2 : 1;
}

/** The exact image a run leaves: sector s holds round finalRound(s). */
export function expectedDiskImage(shape: WorkloadShape = fullShape): Uint8Array {
  const image = new Uint8Array(shape.diskSectors * sectorBytes);
  const view = new DataView(image.buffer);
  for (let sector = 0; sector < shape.diskSectors; sector++) {
    const round = finalRound(sector, shape);
    if (round === 0) continue;
    for (let k = 0; k < sectorWords; k++) view.setUint32(sector * sectorBytes + k * 4, expectedWord(sector, round, k), true);
  }
  return image;
}

/** Writes the image the workload starts from: 1 MiB of zeros. */
export function createBlankDiskImage(path: string, shape: WorkloadShape = fullShape): void {
  fs.writeFileSync(path, new Uint8Array(shape.diskSectors * sectorBytes));
}

// --- the console of a failure-free run -----------------------------------------------------------


const hex8 = (value: number): string => (value >>> 0).toString(16).padStart(8, '0');
const pad = (value: number, digits: number): string => String(value).padStart(digits, '0');

/** The number of sectors in [first, end) that are multiples of `modulus`. */
function multiples(first: number, end: number, modulus: number): number {
  let count = 0;
  for (let sector = first; sector < end; sector++) if (sector % modulus === 0) count++;
  return count;
}

/**
 * The guest's run, step by step, as far as its console is concerned: what each sector holds,
 * the sleeps and work items so far, and the lines printed. Each method mirrors the C function
 * of the same name.
 */
class WorkloadModel {
  constructor(private readonly shape: WorkloadShape) {
    this.rounds = new Uint8Array(shape.diskSectors);
  }
  private readonly rounds: Uint8Array;
  private readonly workTable = new Uint32Array(256);
  private workTotal = 0;
  private workItems = 0;
  private sleeps = 0;
  private readonly lines: string[] = [];

  get sleepCount(): number {
    return this.sleeps;
  }

  run(): string {
    this.start();
    this.ticks();
    this.polledWrites();
    this.interruptWrites();
    this.polledRewrites();
    this.interruptRewrites();
    this.lastSector();
    this.finalCheck();
    return `${this.lines.join('')}pair_workload: PASS lines=${this.lines.length} disk=OK\n`;
  }

  private line(text: string): void {
    this.lines.push(`line ${pad(this.lines.length + 1, 4)} ${text}\n`);
  }

  /** FNV-1a over the 32-bit words of `count` sectors from `first`, as they are now. */
  private digest(first: number, count: number): string {
    let h = 0x811c9dc5;
    for (let sector = first; sector < first + count; sector++) {
      const round = this.rounds[sector]!;
      for (let k = 0; k < sectorWords; k++) h = Math.imul(h ^ expectedWord(sector, round, k), 0x01000193) >>> 0;
    }
    return hex8(h);
  }

  private write(first: number, count: number, round: number): void {
    this.rounds.fill(round, first, first + count);
  }

  private work(item: number): number {
    const table = this.workTable;
    let x = (Math.imul(item, 0x9e3779b9) + 1) >>> 0;
    for (let i = 0; i < 256; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      table[i] = x;
    }
    let acc = item >>> 0;
    for (let i = 0; i < this.shape.workIterations; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      const slot = x >>> 24;
      const entry = table[slot]!;
      acc = (acc + Math.floor(x / ((i & 0xff) + 1))) >>> 0;
      acc = (acc ^ entry % 251) >>> 0;
      // C: (int32_t)acc / (int32_t)((entry >> 1) | 1), truncating; the divisor is positive.
      acc = (acc + Math.trunc((acc | 0) / ((entry >>> 1) | 1))) >>> 0;
      table[slot] = Math.imul(entry ^ acc, 0x2545f491) >>> 0;
      acc = ((acc << 5) | (acc >>> 27)) >>> 0;
      if ((i & 63) === 0) this.workTotal = (this.workTotal + acc) >>> 0;
    }
    return (acc ^ this.workTotal) >>> 0;
  }

  private workLine(): void {
    const item = this.workItems++;
    this.line(`work ${pad(item, 2)}: ${hex8(this.work(item))}`);
  }

  /** rewrite_multiples() in C: returns the sectors written; sleeps once per batch if asked. */
  private rewriteMultiples(first: number, end: number, modulus: number, round: number, perBatch: number, sleepInFlight: boolean): number {
    const count = multiples(first, end, modulus);
    for (let sector = first; sector < end; sector++) if (sector % modulus === 0) this.rounds[sector] = round;
    if (sleepInFlight) this.sleeps += Math.ceil(count / perBatch);
    return count;
  }

  private readLine(mode: string, first: number, count: number): void {
    this.line(`${mode} read ${first}..${first + count - 1}: ok, digest ${this.digest(first, count)}`);
  }

  private start(): void {
    this.line(`pair_workload: a read-write disk of ${this.shape.diskSectors} sectors, with indirect descriptors and flush`);
    this.line(`poll read 0..${this.shape.diskSectors - 1}: ok, all zero`);
  }

  private ticks(): void {
    for (let t = 1; t <= this.shape.ticks; t++) {
      this.sleeps++;
      this.line(`tick ${pad(t, 2)} of ${this.shape.ticks}`);
    }
  }

  private polledWrites(): void {
    for (let step = 0; step <= this.shape.lowEnd / 64; step++) {
      const first = step * 64;
      if (step % 2 === 1) this.sleeps++;
      else this.workLine();
      if (first < this.shape.lowEnd) {
        this.write(first, 64, 1);
        this.line(`poll write ${first}..${first + 63} round 1: 4 requests, digest ${this.digest(first, 64)}`);
      }
      if (step > 0) this.readLine('poll', first - 64, 64);
    }
    this.line('poll flush: ok');
  }

  private interruptWrites(): void {
    this.line('wait mode: interrupts');
    for (let group = 0; group < this.shape.lowEnd / 32; group++) {
      const first = group * 32;
      const count = this.rewriteMultiples(first, first + 32, 3, 2, 4, false);
      this.line(`irq rewrite ${first}..${first + 31} where s % 3 == 0: ${count} sectors, round 2`);
      this.sleeps++;
      if (group % 4 === 3) this.workLine();
    }
    for (let first = this.shape.lowEnd; first < this.shape.middleEnd; first += 64) {
      this.sleeps++;
      this.write(first, 64, 2);
      this.line(`irq write ${first}..${first + 63} round 2: 4 requests, digest ${this.digest(first, 64)}`);
      if ((first - this.shape.lowEnd) % 128 === 64) this.workLine();
    }
    for (let first = 0; first < this.shape.middleEnd; first += 64) {
      this.readLine('irq', first, 64);
      if (first % 192 === 128) this.sleeps++;
    }
    this.line('irq flush: ok');
  }

  private polledRewrites(): void {
    this.line('wait mode: polling');
    for (let first = 0, chunk = 0; first < this.shape.lowEnd; first += 8 * 7, chunk++) {
      const sleeping = chunk % 2 === 1;
      const end = Math.min(first + 8 * 7, this.shape.lowEnd);
      const count = this.rewriteMultiples(first, end, 7, 3, 8, sleeping);
      this.line(`poll rewrite ${first}..${end - 1} where s % 7 == 0: ${count} sectors, round 3`);
      if (!sleeping) {
        this.workLine();
        this.sleeps++;
      }
    }
    for (let first = 0; first < this.shape.lowEnd; first += 64) this.readLine('poll', first, 64);
  }

  private interruptRewrites(): void {
    this.line('wait mode: interrupts');
    for (let first = this.shape.lowEnd; first < this.shape.middleEnd; first += 64) {
      const count = this.rewriteMultiples(first, first + 64, 5, 4, 4, true);
      this.line(`irq rewrite ${first}..${first + 63} where s % 5 == 0: ${count} sectors, round 4`);
      if ((first - this.shape.lowEnd) % 256 === 192) this.workLine();
    }
    for (let first = this.shape.lowEnd; first < this.shape.middleEnd; first += 64) this.readLine('irq', first, 64);
  }

  private lastSector(): void {
    const lastSector = this.shape.diskSectors - 1;
    this.write(lastSector, 1, 5);
    this.line(`irq write ${lastSector} round 5: digest ${this.digest(lastSector, 1)}`);
    this.line(`irq read ${lastSector}: ok, digest ${this.digest(lastSector, 1)}`);
    this.line('irq flush: ok');
  }

  private finalCheck(): void {
    for (let first = 0; first < this.shape.diskSectors; first += 64) this.readLine('final', first, 64);
    for (let sector = 0; sector < this.shape.diskSectors; sector++) {
      if (this.rounds[sector] !== finalRound(sector, this.shape)) throw new Error(`the model disagrees with finalRound at sector ${sector}`);
    }
    this.line('final rounds: as documented');
    this.line(`timer: ${this.sleeps} sleeps, each woke at or after its deadline`);
  }
}

/** The guest's sleeps follow a fixed cycle: sleep number i (from 0) asks for this many ms. */
function sleepMs(index: number): number {
  return 1 + ((index * 3) % 5);
}

const modelRuns = new Map<WorkloadShape, { readonly console: string; readonly sleeps: number }>();

function runModel(shape: WorkloadShape = fullShape): { readonly console: string; readonly sleeps: number } {
  let run = modelRuns.get(shape);
  if (run === undefined) {
    const model = new WorkloadModel(shape);
    run = { console: model.run(), sleeps: model.sleepCount };
    modelRuns.set(shape, run);
  }
  return run;
}

/** The exact console output of a failure-free run (ending with the PASS line). */
export function expectedConsole(shape: WorkloadShape = fullShape): string {
  return runModel(shape).console;
}

/** The sleeps a run takes in WFI, and their total: with the host clock a run lasts at least that long. */
export function expectedSleeps(): { readonly count: number; readonly totalMs: number } {
  const count = runModel().sleeps;
  let totalMs = 0;
  for (let index = 0; index < count; index++) totalMs += sleepMs(index);
  return { count, totalMs };
}

// --- console output with the repeats a failover may cause ----------------------------------------

export {
  checkOutputWithRepeats, consoleRewindBytesMax, consoleRewindsMax, repeatCheckInternals,
  type RepeatCheck, type RepeatCheckOptions,
} from '../../src/simulator/console-check.js';
import { checkOutputWithRepeats, type RepeatCheck, type RepeatCheckOptions } from '../../src/simulator/console-check.js';

export function checkConsoleWithRepeats(observed: string, options: RepeatCheckOptions & { readonly shape?: WorkloadShape } = {}): RepeatCheck {
  return checkOutputWithRepeats(expectedConsole(options.shape ?? fullShape), observed, options);
}
