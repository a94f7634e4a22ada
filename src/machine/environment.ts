/**
 * The determinism boundary.
 *
 * Everything the guest can observe that does not follow from the machine's own state enters
 * through this module's types, by exactly two routes:
 *
 * 1. Environment reads (the paper's environment instructions, rules P0/P6). When the guest
 *    executes an instruction whose value comes from outside the VM (CLINT mtime, the time CSR,
 *    the RTC), the machine asks its {@link EnvironmentPort} synchronously, passing the exact
 *    instruction count. The primary answers from the host and records; the backup replays.
 * 2. Events (rules P1/P4). Asynchronous happenings (the clock advanced past a deadline, console
 *    bytes arrived, a disk request completed, a network frame arrived) are applied by the machine's caller between two
 *    instructions with `Machine.applyEvent`. Never from inside a run.
 *
 * What the machine wants done in the world (console bytes, disk requests, network frames) leaves as
 * {@link MachineOutput}s that the caller drains; the machine itself never performs I/O.
 */

/** Which environment value an instruction reads. */
export type EnvironmentReadKind =
  /** CLINT mtime or the time CSR: the 10 MHz machine timer, 64 bits. */
  | 'mtime'
  /** The goldfish RTC: wall-clock nanoseconds since the Unix epoch, 64 bits. */
  | 'wall-clock-ns'
  /**
   * 64 bits of the host's randomness: the seed a Linux boot finds in its device tree
   * (`/chosen/rng-seed`, Machine.bootLinux), taken just before the boot's first instruction.
   */
  | 'entropy';

/**
 * The most environment reads one instruction can make. The worst case: the first instruction
 * of a Linux boot, before which the board takes the device tree's 32-byte seed as four
 * 'entropy' reads. Next: an AMO on the goldfish RTC's TIME_LOW register, the first time the
 * RTC is read: its read takes mtime and the wall clock, its write mtime again. (A CLINT mtime
 * AMO takes two; a load or `rdtime` one.) Only instructions that retire read: every check
 * that can fault comes before the device access. The primary sizes its log entries on this
 * bound (src/replication/entry-budget.ts).
 */
export const environmentReadsPerInstructionMax = 4;

/**
 * The machine's only window on the host for values (P0 at the primary, P6 at the backup).
 * `retiredInstructions` is the machine's exact instruction count at the reading instruction,
 * so a recorder can log it and a replayer can check it.
 */
export interface EnvironmentPort {
  read(kind: EnvironmentReadKind, retiredInstructions: number): bigint;
  /**
   * A disk read answered at once, inside the instruction that asked (the guest's queue notify):
   * the `lengthBytes` bytes at `offsetBytes` of the disk on `request.slot`, or undefined to
   * decline, and the read then goes out as a request like any other. The machine asks only
   * when none of its own outputs not yet taken writes to those sectors, and at most
   * {@link environmentReadsPerInstructionMax} times an instruction. A port without it (the
   * lockstep reference, the warm-up machine) has every read go out as a request. A recorder
   * logs each answer, or that it declined; a replayer gives the same.
   */
  readDisk?(request: DiskReadRequest, retiredInstructions: number): Uint8Array | undefined;
}

/** An asynchronous input, applied between two instructions by the machine's caller. */
export type MachineEvent =
  /** The clock has advanced to `mtime` (P2's clock state): timer interrupts follow from it. */
  | { readonly kind: 'clock'; readonly mtime: bigint }
  /** Bytes typed on the console; at most `Machine.consoleInputRoom()` of them. */
  | { readonly kind: 'console-input'; readonly bytes: Uint8Array }
  /** A disk request finished; `data` carries what a read returned. */
  | {
      readonly kind: 'disk-completion';
      readonly slot: number;
      readonly requestId: number;
      readonly status: DiskCompletionStatus;
      readonly data?: Uint8Array;
    }
  /** A frame arrived from the network for the NIC on virtio slot `slot` (P1: logged like console input). */
  | { readonly kind: 'net-receive'; readonly slot: number; readonly frame: Uint8Array }
  /** The NIC's link went up or down: its back-end went away or came back. */
  | { readonly kind: 'net-link'; readonly slot: number; readonly up: boolean };

export type DiskCompletionStatus = 'ok' | 'io-error';

/** A disk operation the machine asks the host to perform on the image of virtio slot `slot`. */
export type DiskRequest =
  | { readonly op: 'read'; readonly slot: number; readonly requestId: number; readonly offsetBytes: number; readonly lengthBytes: number }
  /**
   * `completed`: the device has answered the guest already (a write-back disk, `DiskConfig.writeBack`):
   * the host performs the write, and no completion is delivered for it.
   */
  | { readonly op: 'write'; readonly slot: number; readonly requestId: number; readonly offsetBytes: number; readonly data: Uint8Array; readonly completed?: true }
  | { readonly op: 'flush'; readonly slot: number; readonly requestId: number };

export type DiskReadRequest = DiskRequest & { readonly op: 'read' };

/** Whether `write` writes any byte that `read` reads (the same disk, overlapping bytes). */
export function writeOverlapsRead(write: DiskRequest & { readonly op: 'write' }, read: DiskReadRequest): boolean {
  return write.slot === read.slot && write.offsetBytes < read.offsetBytes + read.lengthBytes && read.offsetBytes < write.offsetBytes + write.data.length;
}

/** Whether any of `outputs` writes to a sector `read` reads (a read must not be answered past it). */
export function outputsWriteTo(outputs: readonly MachineOutput[], read: DiskReadRequest): boolean {
  for (const output of outputs) if (output.kind === 'disk-request' && output.request.op === 'write' && writeOverlapsRead(output.request, read)) return true;
  return false;
}

/** A write the device answered itself (a write-back disk): the host only performs it. */
export function answeredByDevice(request: DiskRequest): request is DiskRequest & { readonly op: 'write'; readonly completed: true } {
  return request.op === 'write' && request.completed === true;
}

/** What the machine wants done outside the VM, in the order the guest asked for it. */
export type MachineOutput =
  | { readonly kind: 'console-output'; readonly bytes: Uint8Array }
  | { readonly kind: 'disk-request'; readonly request: DiskRequest }
  /** A frame the guest transmitted on the NIC of virtio slot `slot`. */
  | { readonly kind: 'net-transmit'; readonly slot: number; readonly frame: Uint8Array };

/** Where device models put their outputs; the machine owns the one instance. */
export interface OutputSink {
  emit(output: MachineOutput): void;
}

/** A value read that lets devices reach the environment port with the current instruction count. */
export interface EnvironmentReader {
  readEnvironment(kind: EnvironmentReadKind): bigint;
}
