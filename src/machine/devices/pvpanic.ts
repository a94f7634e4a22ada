/**
 * pvpanic (MMIO flavour, `qemu,pvpanic-mmio`): the guest kernel writes here when it panics,
 * so the host learns of a panic at once instead of watching a hung console. Reads return the
 * events the device supports (bit 0 PANICKED, bit 1 CRASH_LOADED).
 */
import type { AccessWidth, MmioDevice } from './device.js';
import type { SnapshotReader, SnapshotWriter } from '../snapshot.js';

export const PvpanicEvent = { PANICKED: 1, CRASH_LOADED: 2 } as const;

export class PvpanicDevice implements MmioDevice {
  readonly name = 'pvpanic';
  readonly windowBytes = 0x1000;

  constructor(private readonly panicked: () => void) {}

  read(offset: number, _width: AccessWidth): number {
    return offset === 0 ? PvpanicEvent.PANICKED | PvpanicEvent.CRASH_LOADED : 0;
  }

  write(offset: number, _width: AccessWidth, value: number): void {
    if (offset === 0 && (value & PvpanicEvent.PANICKED) !== 0) this.panicked();
  }

  save(writer: SnapshotWriter): void {
    writer.section('pvpanic');
  }

  restore(reader: SnapshotReader): void {
    reader.section('pvpanic');
  }
}
