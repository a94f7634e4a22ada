/**
 * The machine's one timebase: CLINT mtime, the `time` CSR and the device tree's
 * `timebase-frequency` all run at 10 MHz, as on QEMU's virt board. Everything that converts
 * between mtime ticks and other units imports it from here.
 */
import { assert } from './assert.js';

/** mtime ticks per second. */
export const mtimeHz = 10_000_000;
/** mtime ticks per millisecond (host waits are scheduled in milliseconds). */
export const mtimeTicksPerMs = mtimeHz / 1000;
/** Nanoseconds per mtime tick (the RTC and wall-clock readings are in nanoseconds). */
export const nanosecondsPerMtimeTick = BigInt(1_000_000_000 / mtimeHz);

assert(Number.isInteger(mtimeTicksPerMs) && 1_000_000_000 % mtimeHz === 0, 'mtimeHz must divide a second into whole milliseconds and nanoseconds');
