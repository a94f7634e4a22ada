/**
 * The physical address map for memory-mapped devices.
 *
 * The bus owns address ranges: each device is mapped once, at a base aligned to its window,
 * and overlapping windows are rejected when the board is built. The CPU asks the bus only on
 * its slow path; RAM never goes through here.
 */
import type { MmioDevice } from '../devices/device.js';

export interface MappedDevice {
  readonly base: number;
  readonly end: number;
  readonly device: MmioDevice;
}

export class Bus {
  private readonly mapped: MappedDevice[] = [];

  map(base: number, device: MmioDevice): void {
    const end = base + device.windowBytes;
    if (!Number.isInteger(base) || base < 0 || end > 2 ** 32 || device.windowBytes <= 0) {
      throw new RangeError(`device ${device.name}: window 0x${base.toString(16)}+${device.windowBytes} is outside the 32-bit space`);
    }
    for (const other of this.mapped) {
      if (base < other.end && other.base < end) {
        throw new RangeError(`device ${device.name} at 0x${base.toString(16)} overlaps ${other.device.name} at 0x${other.base.toString(16)}`);
      }
    }
    this.mapped.push({ base, end, device });
    this.mapped.sort((a, b) => a.base - b.base);
  }

  /** The device whose window holds `physical`, or undefined. */
  find(physical: number): MappedDevice | undefined {
    for (const entry of this.mapped) {
      if (physical < entry.base) return undefined;
      if (physical < entry.end) return entry;
    }
    return undefined;
  }

  get devices(): readonly MappedDevice[] {
    return this.mapped;
  }
}
