/**
 * How the replica loop lets the event loop run between steps of the guest.
 *
 * A `setImmediate` queued from an I/O callback (the loop woke for a socket, and runs on in the
 * callback's microtasks) runs in the same turn of the event loop, before libuv polls its
 * sockets again: the loop then runs steps for another yield interval before it sees an
 * acknowledgement that arrived meanwhile. Queued from the check phase (after an earlier
 * yield), the next turn polls first. So the first yield after a wake-up takes two.
 */
import { setImmediate } from 'node:timers/promises';

/**
 * Resolves once the event loop has polled its sockets (and run what they delivered).
 * `fromIoCallback`: the caller may be running in an I/O callback's turn (it has not yielded
 * since it woke).
 */
export async function yieldToSockets(fromIoCallback: boolean): Promise<void> {
  await setImmediate();
  if (fromIoCallback) await setImmediate();
}
