/**
 * The budget of an epoch's log entry: how the primary keeps every entry within a frame,
 * whatever the guest does.
 *
 * An entry carries the epoch's environment readings (P0) and the events delivered at its end
 * (P1/P2). The events are known before the epoch runs (completions and other queued inputs
 * arrive between steps, never during one), so the primary picks them first: queued events up
 * to half of the entry (always at least one, so that none starves), then room for console
 * input and the clock event. What is left bounds the readings. The guest decides how often it
 * reads the environment, so the machine counts the epoch's readings as it runs and stops at
 * an exact instruction count when the next instruction might not fit (an instruction makes at
 * most {@link environmentReadsPerInstructionMax} of them): the epoch ends early there. The
 * backup needs no such care: it runs to the recorded end (`endRetired`), and `run(a)` then
 * `run(b)` is exactly `run(a + b)` (test/determinism.test.ts), so its single run stops where
 * the primary's did.
 */
import type { Machine } from '../machine/board.js';
import type { RunResult } from '../machine/cpu/cpu.js';
import { environmentReadsPerInstructionMax, type MachineEvent } from '../machine/environment.js';
import { assert } from '../machine/assert.js';
import {
  diskCompletionWireBytesMax, epochEntryBytesMax, epochEntryWireBytes, eventWireBytes, framePayloadBytesMax, readingWireBytes,
} from './messages.js';

/**
 * The entry budget a primary uses unless told otherwise: big enough for two of the largest
 * disk completions and over a hundred thousand readings, small enough to cross a 100 Mbit/s
 * link well within the failure timeout (a frame is read whole before the backup hears it).
 */
export const epochEntryBytesDefault = 4 * 1024 * 1024;

/** Console bytes one entry carries at most (the UART takes 16 at a time; the rest waits a boundary). */
export const consoleInputPerEntryBytesMax = 256;

/** What every entry keeps room for: its console input and its clock event (P2). */
const boundaryEventsBytesMax =
  eventWireBytes({ kind: 'console-input', bytes: new Uint8Array(consoleInputPerEntryBytesMax) }) + eventWireBytes({ kind: 'clock', mtime: 0n });

/** The smallest entry budget that still lets an epoch read: the fixed part, the boundary events, one instruction's readings. */
export const epochEntryBytesMin = epochEntryWireBytes(environmentReadsPerInstructionMax, []) + boundaryEventsBytesMax;

// An entry with the largest single event and nothing else fits a frame, whatever the budget.
assert(epochEntryWireBytes(0, []) + boundaryEventsBytesMax + diskCompletionWireBytesMax <= framePayloadBytesMax, 'the largest disk completion does not fit a frame');
// With the default budget, half of it holds the largest completion, and the readings' half
// stays large enough to be useful.
assert(diskCompletionWireBytesMax <= epochEntryBytesDefault / 2, 'the largest disk completion does not fit half an entry');
assert(epochEntryBytesMin <= epochEntryBytesDefault && epochEntryBytesDefault <= epochEntryBytesMax, 'the default entry budget is out of range');

export interface EntryPlan {
  /** How many of the queued events (from the front) this entry delivers. */
  readonly queuedEvents: number;
  /** The most environment readings the epoch may record. */
  readonly readsMax: number;
  /** The entry's payload will not exceed this: the budget, or more for one event larger than it. */
  readonly bytesMax: number;
}

/**
 * Plans an entry of at most `entryBytesMax` payload bytes: which queued events it delivers,
 * and how many readings the epoch may make. An entry always takes at least one queued event
 * (an event larger than the budget travels in an epoch of its own, with no instructions).
 */
export function planEntry(queue: readonly MachineEvent[], entryBytesMax: number = epochEntryBytesDefault): EntryPlan {
  assert(entryBytesMax >= epochEntryBytesMin && entryBytesMax <= epochEntryBytesMax, () => `entry budget ${entryBytesMax} is out of range`);
  const queuedShareBytes = Math.floor(entryBytesMax / 2);
  let queuedBytes = 0;
  let queuedEvents = 0;
  for (const event of queue) {
    const bytes = eventWireBytes(event);
    if (queuedEvents > 0 && queuedBytes + bytes > queuedShareBytes) break;
    assert(epochEntryWireBytes(0, []) + boundaryEventsBytesMax + bytes <= framePayloadBytesMax, () => `a ${event.kind} event of ${bytes} bytes cannot fit any frame`);
    queuedBytes += bytes;
    queuedEvents++;
  }
  const needed = epochEntryWireBytes(0, []) + boundaryEventsBytesMax + queuedBytes;
  return { queuedEvents, readsMax: Math.max(0, Math.floor((entryBytesMax - needed) / readingWireBytes)), bytesMax: Math.max(entryBytesMax, needed) };
}

/**
 * Runs up to `instructions` instructions of `machine`, in one call, so that the environment
 * readings recorded meanwhile (`readsRecorded()`, counted from the start of the epoch) never
 * exceed `readsMax`: the machine counts them and stops itself (Machine.run's `readingsMax`).
 * Returns why it stopped: as `run` would, with 'budget' early, at an exact instruction count,
 * when the readings' room ran out or the guest handed the outside a request.
 */
export function runWithinReads(machine: Machine, instructions: number, readsMax: number, readsRecorded: () => number): RunResult {
  const readsBefore = readsRecorded();
  const result = machine.run(instructions, readsMax - readsBefore);
  const readsAfter = readsRecorded();
  assert(readsAfter - readsBefore <= result.retired * environmentReadsPerInstructionMax, () =>
    `${result.retired} instructions made ${readsAfter - readsBefore} environment reads, more than ${environmentReadsPerInstructionMax} each`);
  assert(readsAfter <= readsMax, () => `the epoch recorded ${readsAfter} readings, room for ${readsMax}`);
  return result;
}
