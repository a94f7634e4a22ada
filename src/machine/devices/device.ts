/**
 * What a device model is to the machine.
 *
 * A device sees only offsets into its own window: the bus owns the address map, rejects
 * overlaps, and turns accesses outside every window into access faults. A device never touches
 * the host: values from outside come through the environment (see ../environment.ts) and
 * requests for the outside leave as outputs.
 */
import type { Snapshottable } from '../snapshot.js';

export type AccessWidth = 1 | 2 | 4;

export interface MmioDevice extends Snapshottable {
  /** Short name for the address map and error messages, e.g. "uart0". */
  readonly name: string;
  /** Size of the device's window in bytes. */
  readonly windowBytes: number;
  /** Reads `width` bytes at `offset` (naturally aligned); returns the value zero-extended. */
  read(offset: number, width: AccessWidth): number;
  /** Writes the low `width` bytes of `value` at `offset` (naturally aligned). */
  write(offset: number, width: AccessWidth, value: number): void;
}

/** A level-triggered interrupt line into the PLIC (or a CPU interrupt pin). */
export interface InterruptLine {
  set(level: boolean): void;
}
