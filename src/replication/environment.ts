/**
 * The replica's environment port: the one place where values from outside enter a replicated
 * machine (P0/P6).
 *
 * - record (the primary): answer from the live clock and keep every reading for the epoch's log entry;
 * - replay (the backup): answer from the primary's log, checking that each value is taken at
 *   the same instruction count and for the same kind of read; any mismatch is divergence;
 * - after promotion the backup records again, from its own clock, continued so that the guest
 *   never sees time go backwards.
 */
import type { DiskReadRequest, EnvironmentPort, EnvironmentReadKind } from '../machine/environment.js';
import type { MachineClock } from '../machine/clock.js';
import { assert } from '../machine/assert.js';
import { diskReadOf, diskReadValue, type EnvironmentReading, type ReadingKind } from './messages.js';

/** Answers a disk read at once for a primary (`EnvironmentPort.readDisk`), or declines (undefined). */
export type DiskReader = (request: DiskReadRequest) => Uint8Array | undefined;

/** The backup's execution left the primary's: a bug, or a machine that is not deterministic. */
export class DivergenceError extends Error {
  override readonly name = 'DivergenceError';
}

export class ReplicaEnvironment implements EnvironmentPort {
  private mode: 'record' | 'replay' = 'record';
  private recorded: EnvironmentReading[] = [];
  private replaying: readonly EnvironmentReading[] = [];
  private next = 0;
  /** Backup: the data of the epoch's disk reads answered at once, in order, and the next one. */
  private replayingData: readonly Uint8Array[] = [];
  private nextData = 0;
  /** Primary: answers disk reads at once; without one (a backup's failover epoch), every read is declined. */
  private diskReader: DiskReader | undefined;
  /** Added to live mtime readings (clock continuity after a failover). */
  private mtimeOffset = 0n;
  /** The largest mtime this machine has been given, recorded or replayed. */
  private latestMtime = 0n;

  constructor(private live: EnvironmentPort) {}

  read(kind: EnvironmentReadKind, retired: number): bigint {
    if (this.mode === 'replay') {
      const { value } = this.nextReading(kind, retired);
      if (kind === 'mtime' && value > this.latestMtime) this.latestMtime = value;
      return value;
    }
    let value = this.live.read(kind, retired);
    if (kind === 'mtime') {
      value += this.mtimeOffset;
      if (value < this.latestMtime) value = this.latestMtime;
      this.latestMtime = value;
    }
    this.recorded.push({ retired, kind, value });
    return value;
  }

  /**
   * A disk read answered at once (messages.ts, 'disk-read'). Recording: the primary's reader
   * answers or declines, and the reading says which. Replaying: the same answer, the data read
   * from the shared disk when the entry arrived.
   */
  readDisk(request: DiskReadRequest, retired: number): Uint8Array | undefined {
    if (this.mode === 'record') {
      const data = this.diskReader?.(request);
      this.recorded.push({ retired, kind: 'disk-read', value: diskReadValue(request, data !== undefined) });
      return data;
    }
    const primary = diskReadOf(this.nextReading('disk-read', retired).value);
    if (primary.slot !== request.slot || primary.offsetBytes !== request.offsetBytes || primary.lengthBytes !== request.lengthBytes) {
      throw new DivergenceError(
        `the machine read ${request.lengthBytes} bytes at ${request.offsetBytes} of disk ${request.slot} at instruction ${retired}; ` +
          `the primary ${primary.lengthBytes} bytes at ${primary.offsetBytes} of disk ${primary.slot}`,
      );
    }
    if (!primary.answered) return undefined;
    const data = this.replayingData[this.nextData++];
    if (data?.length !== request.lengthBytes) throw new DivergenceError(`the machine's disk read at instruction ${retired} has no data of ${request.lengthBytes} bytes from the primary's log`);
    return data;
  }

  /** Primary: answers disk reads at once from now on (none: declines them all). */
  answerDiskReads(reader: DiskReader | undefined): void {
    this.diskReader = reader;
  }

  /** Replaying: the primary's next reading, which must be of `kind` at instruction `retired`. */
  private nextReading(kind: ReadingKind, retired: number): EnvironmentReading {
    const reading = this.replaying[this.next];
    if (reading === undefined) {
      throw new DivergenceError(`the machine read ${kind} at instruction ${retired}, but the primary's log has no more values`);
    }
    if (reading.retired !== retired || reading.kind !== kind) {
      throw new DivergenceError(
        `the machine read ${kind} at instruction ${retired}; the primary read ${reading.kind} at instruction ${reading.retired}`,
      );
    }
    this.next++;
    return reading;
  }

  /** The host mtime for a clock event (primary), continued like the readings. */
  clockNow(retired: number): bigint {
    let value = this.live.read('mtime', retired) + this.mtimeOffset;
    if (value < this.latestMtime) value = this.latestMtime;
    this.latestMtime = value;
    return value;
  }

  /**
   * Primary, its guest asleep with nothing else to wake it: lets a live clock that can (virtual
   * time) reach `deadline` at once, as `run` does. False for the host's clock, which must be
   * waited for. The skip shows only in readings, which the log carries.
   */
  skipTo(deadline: bigint, retired: number): boolean {
    const live = this.live as Partial<MachineClock>;
    return live.skipTo?.(deadline - this.mtimeOffset, retired) ?? false;
  }

  /** Primary: starts recording the readings of a new epoch. */
  beginRecording(): void {
    this.mode = 'record';
    this.recorded = [];
  }

  /** Primary: how many readings the epoch has recorded so far. */
  get recordedCount(): number {
    return this.recorded.length;
  }

  /** Primary: the readings of the epoch just run. */
  takeRecorded(): EnvironmentReading[] {
    const readings = this.recorded;
    this.recorded = [];
    return readings;
  }

  /** Backup: serve `readings` for the next epoch, and `diskData` for its disk reads answered at once. */
  beginReplay(readings: readonly EnvironmentReading[], diskData: readonly Uint8Array[] = []): void {
    this.mode = 'replay';
    this.replaying = readings;
    this.next = 0;
    this.replayingData = diskData;
    this.nextData = 0;
  }

  /** Backup: the epoch is over; every value must have been used. */
  endReplay(): void {
    const left = this.replaying.length - this.next;
    if (left !== 0) {
      const first = this.replaying[this.next]!;
      throw new DivergenceError(`${left} environment values were not used (the first: ${first.kind} at instruction ${first.retired})`);
    }
    assert(this.nextData === this.replayingData.length, () => `${this.replayingData.length - this.nextData} disk reads' data left over with every reading used`);
    this.replaying = [];
    this.replayingData = [];
  }

  /** Notes mtime values that reached the machine as clock events (replayed or recorded). */
  noteClock(mtime: bigint): void {
    if (mtime > this.latestMtime) this.latestMtime = mtime;
  }

  /**
   * After promotion: record again, from `live`, offset so that its mtime continues from the
   * latest value this machine has seen: another host's clock reads differently, and the guest
   * must see neither a jump back nor a jump ahead (the failover looks like a short pause).
   */
  goLive(live: EnvironmentPort, retired: number): void {
    this.live = live;
    this.mtimeOffset = this.latestMtime - live.read('mtime', retired);
    this.mode = 'record';
    this.recorded = [];
  }

  get latestMtimeSeen(): bigint {
    return this.latestMtime;
  }
}
