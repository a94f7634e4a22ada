/**
 * Goldfish RTC at 0x0010_1000 (IRQ 11), as on QEMU's virt board.
 *
 * The RTC's time is environment. To keep one clock in the machine, it is derived from the
 * CLINT's host mtime: the first time the guest needs it, the RTC reads the wall clock once
 * (an environment read) and fixes `wall-clock at mtime 0`; afterwards every TIME_LOW read is
 * an mtime read (also environment). The alarm is thus a deadline in host mtime, checked when
 * the clock advances, like the CLINT timer.
 */
import type { AccessWidth, InterruptLine, MmioDevice } from './device.js';
import type { EnvironmentReader } from '../environment.js';
import type { SnapshotReader, SnapshotWriter } from '../snapshot.js';
import { nanosecondsPerMtimeTick } from '../time.js';

const Reg = {
  TIME_LOW: 0x00, TIME_HIGH: 0x04, ALARM_LOW: 0x08, ALARM_HIGH: 0x0c,
  IRQ_ENABLED: 0x10, CLEAR_ALARM: 0x14, ALARM_STATUS: 0x18, CLEAR_INTERRUPT: 0x1c,
} as const;

export interface RtcClock {
  /** Host mtime, read through the environment (as the CLINT does). */
  readHostMtime(): bigint;
  /** The latest host mtime known without a new read. */
  readonly latestHostMtime: bigint;
}

export class GoldfishRtc implements MmioDevice {
  readonly name = 'rtc';
  readonly windowBytes = 0x1000;

  /** Wall-clock nanoseconds at host mtime 0 (plus guest adjustments); undefined until first needed. */
  private baseNs: bigint | undefined;
  private timeHighLatch = 0;
  private alarmHigh = 0;
  private alarmNs = 0n;
  private alarmArmed = false;
  private irqEnabled = false;
  private irqPending = false;

  constructor(private readonly deps: { environment: EnvironmentReader; clock: RtcClock; irq: InterruptLine }) {}

  /** The RTC's time now: one mtime read, plus one wall-clock read the first time. */
  private nowNs(): bigint {
    const mtime = this.deps.clock.readHostMtime();
    if (this.baseNs === undefined) this.baseNs = this.deps.environment.readEnvironment('wall-clock-ns') - mtime * nanosecondsPerMtimeTick;
    return BigInt.asUintN(64, this.baseNs + mtime * nanosecondsPerMtimeTick);
  }

  /** The clock advanced (a clock event): fire the alarm if its time has come. */
  advanceClock(): void {
    if (!this.alarmArmed || this.baseNs === undefined) return;
    const now = this.baseNs + this.deps.clock.latestHostMtime * nanosecondsPerMtimeTick;
    if (now >= this.alarmNs) this.fire();
  }

  /** Host mtime at which the alarm fires, or undefined. */
  get alarmDeadlineHostMtime(): bigint | undefined {
    if (!this.alarmArmed || this.baseNs === undefined) return undefined;
    const delta = this.alarmNs - this.baseNs;
    return delta <= 0n ? 0n : (delta + nanosecondsPerMtimeTick - 1n) / nanosecondsPerMtimeTick;
  }

  private fire(): void {
    this.alarmArmed = false;
    this.irqPending = true;
    this.updateIrq();
  }

  /** The line is pending AND enabled, as in QEMU's goldfish_rtc_update. */
  private updateIrq(): void {
    this.deps.irq.set(this.irqPending && this.irqEnabled);
  }

  read(offset: number, _width: AccessWidth): number {
    switch (offset) {
      case Reg.TIME_LOW: {
        const now = this.nowNs();
        this.timeHighLatch = Number(now >> 32n);
        return Number(now & 0xffff_ffffn);
      }
      case Reg.TIME_HIGH:
        return this.timeHighLatch;
      case Reg.ALARM_LOW:
        return Number(this.alarmNs & 0xffff_ffffn);
      case Reg.ALARM_HIGH:
        return Number(this.alarmNs >> 32n);
      case Reg.IRQ_ENABLED:
        return this.irqEnabled ? 1 : 0;
      case Reg.ALARM_STATUS:
        return this.alarmArmed ? 1 : 0;
      default:
        return 0;
    }
  }

  write(offset: number, _width: AccessWidth, value: number): void {
    switch (offset) {
      case Reg.TIME_HIGH:
        this.timeHighLatch = value >>> 0;
        break;
      case Reg.TIME_LOW: {
        // Setting the time: TIME_HIGH was written first (the goldfish protocol).
        const wanted = (BigInt(this.timeHighLatch) << 32n) | BigInt(value >>> 0);
        const now = this.nowNs();
        this.baseNs = this.baseNs! + (wanted - now);
        break;
      }
      case Reg.ALARM_HIGH:
        this.alarmHigh = value >>> 0;
        break;
      case Reg.ALARM_LOW: {
        this.alarmNs = (BigInt(this.alarmHigh) << 32n) | BigInt(value >>> 0);
        this.alarmArmed = true;
        if (this.nowNs() >= this.alarmNs) this.fire();
        break;
      }
      case Reg.IRQ_ENABLED:
        this.irqEnabled = (value & 1) !== 0;
        this.updateIrq();
        break;
      case Reg.CLEAR_ALARM:
        this.alarmArmed = false;
        break;
      case Reg.CLEAR_INTERRUPT:
        this.irqPending = false;
        this.updateIrq();
        break;
    }
  }

  save(writer: SnapshotWriter): void {
    writer.section('rtc').bool(this.baseNs !== undefined).u64(this.baseNs ?? 0n);
    writer.u32(this.timeHighLatch).u32(this.alarmHigh).u64(this.alarmNs).bool(this.alarmArmed).bool(this.irqEnabled).bool(this.irqPending);
  }

  restore(reader: SnapshotReader): void {
    reader.section('rtc');
    const known = reader.bool();
    const base = BigInt.asIntN(64, reader.u64());
    this.baseNs = known ? base : undefined;
    this.timeHighLatch = reader.u32();
    this.alarmHigh = reader.u32();
    this.alarmNs = reader.u64();
    this.alarmArmed = reader.bool();
    this.irqEnabled = reader.bool();
    this.irqPending = reader.bool();
    this.updateIrq();
  }
}
