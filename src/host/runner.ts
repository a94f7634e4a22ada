/**
 * The host loop for one machine running alone (`understudy run`).
 *
 * It runs the machine in slices, performs the outputs between slices (console bytes to the
 * terminal, disk requests on the image files), and applies the results as events at the next
 * boundary: disk completions, console input, and the clock. Its disks are write-back
 * (`DiskConfig.writeBack`): the guest has a write's answer at once, and the write reaches the
 * image at the end of the slice, in order with the other requests. While the guest waits in WFI it
 * sleeps until the next timer deadline or input.
 */
import { setImmediate as yieldToHost } from 'node:timers/promises';
import type { Machine } from '../machine/board.js';
import { answeredByDevice, type DiskReadRequest, type DiskRequest, type EnvironmentPort, type MachineEvent } from '../machine/environment.js';
import type { MachineClock } from '../machine/clock.js';
import type { ConsolePort } from './console.js';
import { readImageRange, type DiskImage } from './disk-image.js';
import type { NetworkPort } from './network/port.js';
import { assert } from '../machine/assert.js';

/** Instructions per slice: about 10 ms of guest time at 100 MIPS. */
export const sliceInstructions = 1_000_000;
/**
 * A shorter slice after the guest issued disk requests: their completions are applied at the
 * next boundary, and a guest that polls for them would otherwise spin a whole slice.
 */
export const ioSliceInstructions = 20_000;
/** Longest stretch of guest execution before the host looks at its I/O again. */
const hostYieldIntervalMs = 20;
/**
 * Console output waiting for a slow reader beyond which the machine pauses until it drains:
 * a guest that prints without end must not fill the host's memory (QEMU's UART stalls the
 * same way behind a full character device).
 */
export const consoleBacklogMaxBytes = 1 << 20;

export type RunOutcome =
  | { readonly kind: 'poweroff'; readonly status: number }
  | { readonly kind: 'reset' }
  | { readonly kind: 'panic' }
  /** Ctrl-A x, or the console's reader went away (`outputClosed`). */
  | { readonly kind: 'quit'; readonly outputClosed?: boolean }
  | { readonly kind: 'timeout'; readonly seconds: number }
  | { readonly kind: 'instruction-limit' }
  | { readonly kind: 'stuck'; readonly reason: string };

export interface RunnerOptions {
  readonly machine: Machine;
  readonly clock: MachineClock;
  readonly console: ConsolePort;
  /** Virtio slot -> image. */
  readonly disks: ReadonlyMap<number, DiskImage>;
  /** Virtio slot -> the NIC's back-end; every NIC of the machine has one. */
  readonly networks?: ReadonlyMap<number, NetworkPort>;
  readonly timeoutSeconds?: number;
  readonly instructionLimit?: number;
}

/**
 * Performs a disk request on its image; returns the completion to deliver, if any. A write the
 * write-back disk answered already (`completed`) has none: if it fails, the disk's next flush
 * fails instead (`failedWrites`, by slot), so that a guest that flushes learns of it.
 */
export function performDiskRequest(disk: Pick<DiskImage, 'perform'>, request: DiskRequest, failedWrites: Set<number>): MachineEvent | undefined {
  const completion = disk.perform(request);
  assert(completion.kind === 'disk-completion', () => `a ${completion.kind} event as a disk completion`);
  if (answeredByDevice(request)) {
    if (completion.status !== 'ok') failedWrites.add(request.slot);
    return undefined;
  }
  if (request.op === 'flush' && failedWrites.delete(request.slot)) return { ...completion, status: 'io-error' };
  return completion;
}

/**
 * `run`'s environment port: `clock`, and disk reads answered at once from the images
 * (`EnvironmentPort.readDisk`), as a pair's primary answers them: the runner performs every
 * write it takes before the machine runs on, and the machine asks only with no write to those
 * sectors among its outputs not yet taken. A read the image cannot serve goes out as a
 * request, which reports the error.
 */
export function imagePort(clock: EnvironmentPort, disks: ReadonlyMap<number, Pick<DiskImage, 'read' | 'capacityBytes'>>): EnvironmentPort {
  return {
    read: (kind, retired) => clock.read(kind, retired),
    readDisk: (request: DiskReadRequest) => {
      const data = readImageRange(disks, request.slot, request.offsetBytes, request.lengthBytes);
      return data instanceof Uint8Array ? data : undefined;
    },
  };
}

export async function runMachine(options: RunnerOptions): Promise<RunOutcome> {
  const { machine, clock, console: terminal } = options;
  const startedMs = performance.now();
  let lastYieldMs = startedMs;
  const events: MachineEvent[] = [];
  const networks = options.networks ?? new Map<number, NetworkPort>();
  for (const [slot, nic] of machine.nics) {
    const port = networks.get(slot);
    assert(port !== undefined, () => `the NIC on virtio slot ${slot} has no back-end`);
    port.announceAs = () => ({ mac: nic.macAddress, ipv4: nic.guestIpv4 });
  }
  let diskBusy = false;
  /** Slots whose write-back disk failed a write the guest was told was done: its next flush fails. */
  const failedWrites = new Set<number>();
  for (;;) {
    const slice = diskBusy ? ioSliceInstructions : sliceInstructions;
    diskBusy = false;
    const budget = options.instructionLimit === undefined ? slice : Math.min(slice, options.instructionLimit - machine.retiredInstructions);
    const result = machine.run(Math.max(0, budget));
    for (const output of machine.takeOutputs()) {
      if (output.kind === 'console-output') {
        terminal.write(output.bytes);
        continue;
      }
      if (output.kind === 'net-transmit') {
        networks.get(output.slot)!.send(output.frame);
        // An answer may come back soon: look again after a short slice, as for the disk.
        diskBusy = true;
        continue;
      }
      const disk = options.disks.get(output.request.slot);
      assert(disk !== undefined, () => `disk request for slot ${output.request.slot}, which has no image`);
      const completion = performDiskRequest(disk, output.request, failedWrites);
      if (completion === undefined) continue;
      events.push(completion);
      diskBusy = true;
    }
    if (machine.power !== undefined) {
      return machine.power.kind === 'stuck' ? { kind: 'stuck', reason: `the guest is stuck: ${machine.power.reason}` } : machine.power;
    }
    if (terminal.outputBacklogBytes > consoleBacklogMaxBytes) {
      await terminal.drain();
      lastYieldMs = performance.now();
    }
    for (const port of networks.values()) {
      if (port.backlogged) {
        await port.drained();
        lastYieldMs = performance.now();
      }
    }
    if (terminal.quitRequested) return { kind: 'quit', outputClosed: terminal.outputClosed };
    if (options.instructionLimit !== undefined && machine.retiredInstructions >= options.instructionLimit) return { kind: 'instruction-limit' };

    // The boundary: apply what happened meanwhile.
    for (const event of events.splice(0)) machine.applyEvent(event);
    const room = machine.consoleInputRoom;
    if (room > 0 && terminal.hasInput) machine.applyEvent({ kind: 'console-input', bytes: terminal.takeInput(room) });
    if (applyNetworkInput(machine, networks)) diskBusy = true;
    machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });

    const nowMs = performance.now();
    if (options.timeoutSeconds !== undefined && nowMs - startedMs > options.timeoutSeconds * 1000) {
      return { kind: 'timeout', seconds: options.timeoutSeconds };
    }
    if (result.reason === 'wfi' && machine.isIdle) {
      const idle = await waitWhileIdle(options);
      if (idle === 'waited') {
        lastYieldMs = performance.now();
        continue;
      }
      if (idle !== 'no-wait') return idle;
    }
    // A busy guest, or an idle one whose clock skipped ahead to its deadline instead of
    // waiting (--clock virtual): either way the host's own events (console input, signals)
    // must get their turn, or a guest that idles with a timer always ahead never sees input.
    if (nowMs - lastYieldMs > hostYieldIntervalMs) {
      await yieldToHost();
      lastYieldMs = performance.now();
    }
  }
}

/**
 * The guest sleeps: wait for its next deadline or input ('waited'); go on at once ('no-wait')
 * when a virtual clock jumps to the deadline or a network frame can be delivered; or say why
 * it never wakes.
 */
async function waitWhileIdle(options: RunnerOptions): Promise<RunOutcome | 'waited' | 'no-wait'> {
  const { machine, clock, console: terminal } = options;
  const deadline = machine.clockDeadline;
  if (deadline !== undefined && clock.skipTo(deadline, machine.retiredInstructions)) return 'no-wait';
  const networks = options.networks ?? new Map<number, NetworkPort>();
  // A frame can wake the guest only into a receive buffer it offered; a link change always can.
  const networkCanWake = [...networks].some(([slot, port]) => {
    const nic = machine.nics.get(slot)!;
    return port.linkUp !== nic.isLinkUp || (nic.receiveRoom > 0 && port.mayDeliver);
  });
  if (deadline === undefined && terminal.inputEnded && !networkCanWake) {
    return { kind: 'stuck', reason: `the guest waits for an interrupt (WFI) that nothing will raise: no timer ahead and no more console input${networks.size > 0 ? ', and no network frame can arrive' : ''}` };
  }
  // Input that has ended would wake us at once, for ever: then only the network and the timer can.
  const waits: Promise<unknown>[] = terminal.inputEnded ? [] : [terminal.inputReady()];
  for (const [slot, port] of networks) {
    if (port.linkUp !== machine.nics.get(slot)?.isLinkUp || (port.inputWaiting && machine.networkReceiveRoom(slot) > 0)) return 'no-wait';
    waits.push(port.changed());
  }
  let timer: NodeJS.Timeout | undefined;
  const limitMs = options.timeoutSeconds === undefined ? Infinity : options.timeoutSeconds * 1000;
  const sleepMs = Math.min(deadline === undefined ? Infinity : clock.msUntil(deadline, machine.retiredInstructions), limitMs, 1000);
  waits.push(new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, sleepMs)))));
  await Promise.race(waits);
  if (timer !== undefined) clearTimeout(timer);
  return 'waited';
}

/** The boundary's network input: link changes, then as many frames as each NIC has buffers for. Returns whether any came. */
function applyNetworkInput(machine: Machine, networks: ReadonlyMap<number, NetworkPort>): boolean {
  let any = false;
  for (const [slot, port] of networks) {
    const nic = machine.nics.get(slot)!;
    if (port.linkUp !== nic.isLinkUp) machine.applyEvent({ kind: 'net-link', slot, up: port.linkUp });
    for (const frame of port.take(nic.receiveRoom, Infinity)) {
      machine.applyEvent({ kind: 'net-receive', slot, frame });
      any = true;
    }
  }
  return any;
}
