/**
 * The two sources of environment values for a machine that runs alone.
 *
 * HostClock answers from the host's monotonic and wall clocks: the real thing, and what a
 * primary records. VirtualClock derives time from the instruction count, like QEMU's
 * `-icount shift=0` (one instruction per nanosecond, so 100 instructions per 10 MHz tick),
 * skipping ahead while the guest waits: runs are then exactly repeatable.
 */
import type { EnvironmentPort, EnvironmentReadKind } from '../machine/environment.js';

export const nanosecondsPerMtimeTick = 100n;

export interface MachineClock extends EnvironmentPort {
  /** The host mtime now (for clock events). */
  mtimeNow(retiredInstructions: number): bigint;
  /** Milliseconds of host time until host mtime reaches `deadline` (0 if passed). */
  msUntil(deadline: bigint, retiredInstructions: number): number;
  /** The guest sleeps with nothing else to wake it: let time reach `deadline` at once, if this clock can. */
  skipTo(deadline: bigint, retiredInstructions: number): boolean;
}

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
    return kind === 'mtime' ? this.mtimeNow() : this.wallClockNs();
  }

  msUntil(deadline: bigint): number {
    const ticks = deadline - this.mtimeNow();
    return ticks <= 0n ? 0 : Number(ticks) / 10_000;
  }

  skipTo(): boolean {
    return false;
  }
}

/** 2025-01-01T00:00:00Z: the wall clock of a virtual-time run. */
export const virtualEpochNs = 1_735_689_600_000_000_000n;
export const instructionsPerMtimeTick = 100;

export class VirtualClock implements MachineClock {
  private skippedTicks = 0n;

  mtimeNow(retiredInstructions: number): bigint {
    return BigInt(Math.floor(retiredInstructions / instructionsPerMtimeTick)) + this.skippedTicks;
  }

  read(kind: EnvironmentReadKind, retiredInstructions: number): bigint {
    const mtime = this.mtimeNow(retiredInstructions);
    return kind === 'mtime' ? mtime : virtualEpochNs + mtime * nanosecondsPerMtimeTick;
  }

  msUntil(): number {
    return 0;
  }

  skipTo(deadline: bigint, retiredInstructions: number): boolean {
    const now = this.mtimeNow(retiredInstructions);
    if (deadline > now) this.skippedTicks += deadline - now;
    return true;
  }
}
