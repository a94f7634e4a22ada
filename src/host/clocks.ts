/**
 * The host's real clock for a machine: the monotonic clock for mtime, the wall clock for the
 * RTC, and the host's random numbers for a boot's seed ('entropy'). What a primary records
 * and a machine run alone reads. (The virtual clock, which derives time from the instruction
 * count, is src/machine/clock.ts.)
 */
import { randomBytes } from 'node:crypto';
import type { EnvironmentReadKind } from '../machine/environment.js';
import { ticksToMs, type MachineClock } from '../machine/clock.js';
import { nanosecondsPerMtimeTick } from '../machine/time.js';

export class HostClock implements MachineClock {
  private readonly startNs = process.hrtime.bigint();
  private latest = 0n;

  constructor(private readonly wallClockNs: () => bigint = () => BigInt(Date.now()) * 1_000_000n) {}

  mtimeNow(): bigint {
    const now = (process.hrtime.bigint() - this.startNs) / nanosecondsPerMtimeTick;
    if (now > this.latest) this.latest = now;
    return this.latest;
  }

  read(kind: EnvironmentReadKind): bigint {
    if (kind === 'entropy') return randomBytes(8).readBigUInt64LE(0);
    return kind === 'mtime' ? this.mtimeNow() : this.wallClockNs();
  }

  msUntil(deadline: bigint): number {
    const ticks = deadline - this.mtimeNow();
    return ticks <= 0n ? 0 : ticksToMs(ticks);
  }

  skipTo(): boolean {
    return false;
  }
}
