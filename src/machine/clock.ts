/**
 * Clocks for a machine that runs alone: the interface its runner needs, and the virtual clock.
 *
 * VirtualClock derives time from the instruction count, like QEMU's `-icount shift=0` (one
 * instruction per nanosecond, so 100 instructions per 10 MHz tick), skipping ahead while the
 * guest waits: runs are then exactly repeatable, randomness included (its 'entropy' is a fixed
 * sequence, {@link fixedEntropy}). It is a pure function of what it is told, so
 * it lives with the machine (the simulator uses it too); the host's real clock is in
 * src/host/clocks.ts.
 */
import type { EnvironmentPort, EnvironmentReadKind } from './environment.js';
import { mtimeTicksPerMs, nanosecondsPerMtimeTick } from './time.js';

export interface MachineClock extends EnvironmentPort {
  /** The host mtime now (for clock events). */
  mtimeNow(retiredInstructions: number): bigint;
  /** Milliseconds of host time until host mtime reaches `deadline` (0 if passed). */
  msUntil(deadline: bigint, retiredInstructions: number): number;
  /** The guest sleeps with nothing else to wake it: let time reach `deadline` at once, if this clock can. */
  skipTo(deadline: bigint, retiredInstructions: number): boolean;
}

/** 2025-01-01T00:00:00Z: the wall clock of a virtual-time run. */
export const virtualEpochNs = 1_735_689_600_000_000_000n;
export const instructionsPerMtimeTick = 100;

/**
 * The `index`th value of a fixed 64-bit sequence (SplitMix64's output function over a Weyl
 * sequence): the 'entropy' of a run that must repeat exactly (the virtual clock, the
 * simulator). Not random: a guest's seed from it is the same on every such run.
 */
export function fixedEntropy(index: number): bigint {
  let z = BigInt.asUintN(64, BigInt(index + 1) * 0x9e3779b97f4a7c15n);
  z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
  z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
  return z ^ (z >> 31n);
}

export class VirtualClock implements MachineClock {
  private skippedTicks = 0n;
  private entropyTaken = 0;

  mtimeNow(retiredInstructions: number): bigint {
    return BigInt(Math.floor(retiredInstructions / instructionsPerMtimeTick)) + this.skippedTicks;
  }

  read(kind: EnvironmentReadKind, retiredInstructions: number): bigint {
    if (kind === 'entropy') return fixedEntropy(this.entropyTaken++);
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

/** Milliseconds for a number of mtime ticks. */
export function ticksToMs(ticks: bigint | number): number {
  return Number(ticks) / mtimeTicksPerMs;
}
