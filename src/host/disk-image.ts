/**
 * A raw disk image file on the host, performing the machine's disk requests.
 *
 * This is the edge: the only place where guest disk I/O touches the host. Errors from the
 * host (EIO, ENOSPC) become an I/O-error completion for the guest, never an exception.
 */
import * as fs from 'node:fs';
import type { DiskRequest, MachineEvent } from '../machine/environment.js';
import { sectorBytes } from '../machine/devices/virtio-blk.js';

export class DiskImageError extends Error {
  override readonly name = 'DiskImageError';
}

export class DiskImage {
  readonly capacityBytes: number;
  private readonly fd: number;

  constructor(readonly path: string, readonly readOnly: boolean) {
    try {
      this.fd = fs.openSync(path, readOnly ? 'r' : 'r+');
    } catch (error) {
      throw new DiskImageError(`cannot open disk image ${path}: ${describe(error)}`);
    }
    const stat = fs.fstatSync(this.fd);
    if (!stat.isFile() && !stat.isBlockDevice()) {
      fs.closeSync(this.fd);
      throw new DiskImageError(`disk image ${path} is not a regular file`);
    }
    this.capacityBytes = Math.floor(stat.size / sectorBytes) * sectorBytes;
    if (this.capacityBytes === 0) {
      fs.closeSync(this.fd);
      throw new DiskImageError(`disk image ${path} is empty (a disk needs at least ${sectorBytes} bytes)`);
    }
  }

  /** Performs `request` synchronously and returns its completion event. */
  perform(request: DiskRequest): MachineEvent {
    const done = (status: 'ok' | 'io-error', data?: Uint8Array): MachineEvent =>
      data === undefined
        ? { kind: 'disk-completion', slot: request.slot, requestId: request.requestId, status }
        : { kind: 'disk-completion', slot: request.slot, requestId: request.requestId, status, data };
    try {
      switch (request.op) {
        case 'read':
          return done('ok', this.read(request.offsetBytes, request.lengthBytes));
        case 'write': {
          if (this.readOnly) return done('io-error');
          let written = 0;
          while (written < request.data.length) {
            written += fs.writeSync(this.fd, request.data, written, request.data.length - written, request.offsetBytes + written);
          }
          return done('ok');
        }
        case 'flush':
          if (!this.readOnly) fs.fsyncSync(this.fd);
          return done('ok');
      }
    } catch {
      return done('io-error');
    }
  }

  /** Reads `lengthBytes` at `offsetBytes` (zeros past the end of a file that shrank); throws what the system says. */
  read(offsetBytes: number, lengthBytes: number): Uint8Array {
    const data = new Uint8Array(lengthBytes);
    let done = 0;
    while (done < data.length) {
      const n = fs.readSync(this.fd, data, done, data.length - done, offsetBytes + done);
      if (n === 0) break;
      done += n;
    }
    return data;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/**
 * The `lengthBytes` at `offsetBytes` of the image on virtio slot `slot`, read now, or why they
 * cannot be (no image there, past its end, an error from the host): a backup's shared reads,
 * and reads answered at once under `run` and `pair`.
 */
export function readImageRange(
  disks: ReadonlyMap<number, Pick<DiskImage, 'read' | 'capacityBytes'>>,
  slot: number,
  offsetBytes: number,
  lengthBytes: number,
): Uint8Array | { readonly error: string } {
  const disk = disks.get(slot);
  if (disk === undefined) return { error: `virtio slot ${slot} has no disk here` };
  if (offsetBytes + lengthBytes > disk.capacityBytes) return { error: `bytes ${offsetBytes}-${offsetBytes + lengthBytes} lie past the disk's end (${disk.capacityBytes} bytes)` };
  try {
    return disk.read(offsetBytes, lengthBytes);
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

function describe(error: unknown): string {
  if (error instanceof Error && 'code' in error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'no such file';
    if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
    if (code === 'EISDIR') return 'is a directory';
    return code ?? error.message;
  }
  return String(error);
}
