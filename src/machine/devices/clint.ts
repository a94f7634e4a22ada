/**
 * CLINT (SiFive core-local interruptor) at 0x0200_0000: msip, mtimecmp and mtime for hart 0.
 *
 * mtime is environment: every guest read of it is an environment read (P0/P6) that the
 * primary answers from the host clock and the backup replays. The CLINT remembers the latest
 * host time it has learned, from reads and from clock events, and MTIP is the level
 * `mtime >= mtimecmp` evaluated against that — a function of machine state, so both replicas
 * raise the timer interrupt at the same instruction. Guest writes to mtime move an offset.
 */
import type { AccessWidth, MmioDevice } from './device.js';
import type { EnvironmentReader } from '../environment.js';
import type { SnapshotReader, SnapshotWriter } from '../snapshot.js';

const u64Max = 0xffff_ffff_ffff_ffffn;

const Offset = { MSIP: 0x0, MTIMECMP: 0x4000, MTIME: 0xbff8 } as const;

export interface ClintPins {
  /** Machine software interrupt (mip.MSIP). */
  setSoftware(level: boolean): void;
  /** Machine timer interrupt (mip.MTIP). */
  setTimer(level: boolean): void;
}

export class Clint implements MmioDevice {
  readonly name = 'clint';
  readonly windowBytes = 0x10000;

  private msip = false;
  private mtimecmp = u64Max;
  /** Guest-visible mtime minus host mtime, mod 2^64. */
  private offset = 0n;
  /** The latest host mtime this machine has seen. */
  private hostMtime = 0n;

  constructor(private readonly deps: { environment: EnvironmentReader; pins: ClintPins }) {}

  /** A clock event (P2's clock state): the host clock has reached `hostMtime`. */
  advanceClock(hostMtime: bigint): void {
    if (hostMtime > this.hostMtime) this.hostMtime = hostMtime;
    this.updateTimer();
  }

  /** Reads mtime through the environment (an environment instruction). Used by the time CSR too. */
  readMtime(): bigint {
    // The guest never sees time go backwards, even if the environment's answer did.
    const host = BigInt.asUintN(64, this.deps.environment.readEnvironment('mtime'));
    if (host > this.hostMtime) {
      this.hostMtime = host;
      this.updateTimer();
    }
    return BigInt.asUintN(64, this.hostMtime + this.offset);
  }

  /** Programs mtimecmp (the SBI firmware's set_timer). */
  setTimerCompare(value: bigint): void {
    this.mtimecmp = BigInt.asUintN(64, value);
    this.updateTimer();
  }

  /**
   * The host time at which MTIP will rise, or undefined if the timer is off or that time has
   * passed already (MTIP is up, and no later clock event changes anything: a guest that waits
   * with MTIE masked waits for something else).
   */
  get timerDeadlineHostMtime(): bigint | undefined {
    if (this.mtimecmp === u64Max) return undefined;
    const deadline = BigInt.asUintN(64, this.mtimecmp - this.offset);
    return deadline > this.hostMtime ? deadline : undefined;
  }

  get latestHostMtime(): bigint {
    return this.hostMtime;
  }

  read(offset: number, width: AccessWidth): number {
    if (offset < 4) return offset === 0 && this.msip ? 1 : 0;
    if (offset >= Offset.MTIMECMP && offset < Offset.MTIMECMP + 8) return extract(this.mtimecmp, offset - Offset.MTIMECMP, width);
    if (offset >= Offset.MTIME && offset < Offset.MTIME + 8) return extract(this.readMtime(), offset - Offset.MTIME, width);
    return 0;
  }

  write(offset: number, width: AccessWidth, value: number): void {
    if (offset === Offset.MSIP) {
      this.msip = (value & 1) !== 0;
      this.deps.pins.setSoftware(this.msip);
    } else if (offset >= Offset.MTIMECMP && offset < Offset.MTIMECMP + 8) {
      this.mtimecmp = insert(this.mtimecmp, offset - Offset.MTIMECMP, width, value);
      this.updateTimer();
    } else if (offset >= Offset.MTIME && offset < Offset.MTIME + 8) {
      const visible = insert(this.readMtime(), offset - Offset.MTIME, width, value);
      this.offset = BigInt.asUintN(64, visible - this.hostMtime);
      this.updateTimer();
    }
  }

  private updateTimer(): void {
    this.deps.pins.setTimer(BigInt.asUintN(64, this.hostMtime + this.offset) >= this.mtimecmp);
  }

  save(writer: SnapshotWriter): void {
    writer.section('clint').bool(this.msip).u64(this.mtimecmp).u64(this.offset).u64(this.hostMtime);
  }

  restore(reader: SnapshotReader): void {
    reader.section('clint');
    this.msip = reader.bool();
    this.mtimecmp = reader.u64();
    this.offset = reader.u64();
    this.hostMtime = reader.u64();
    this.deps.pins.setSoftware(this.msip);
    this.updateTimer();
  }
}

/** The `width` bytes at byte `index` of a 64-bit value. */
export function extract(value: bigint, index: number, width: AccessWidth): number {
  if (width === 4) return index === 0 ? Number(BigInt.asUintN(32, value)) : Number(BigInt.asUintN(32, value >> 32n));
  const mask = (1n << BigInt(width * 8)) - 1n;
  return Number((value >> BigInt(index * 8)) & mask);
}

/** `value` with the `width` bytes at byte `index` replaced by `part`. */
export function insert(value: bigint, index: number, width: AccessWidth, part: number): bigint {
  const shift = BigInt(index * 8);
  const mask = ((1n << BigInt(width * 8)) - 1n) << shift;
  return (value & ~mask) | ((BigInt(part >>> 0) << shift) & mask);
}
