/**
 * The `sifive,test0` exit device at 0x0010_0000: a 32-bit write of 0x5555 powers off with
 * status 0, (code << 16) | 0x3333 with status `code`, 0x7777 resets the machine.
 */
import type { AccessWidth, MmioDevice } from './device.js';
import type { SnapshotReader, SnapshotWriter } from '../snapshot.js';

export type PowerRequest =
  | { readonly kind: 'poweroff'; readonly status: number }
  | { readonly kind: 'reset' }
  /** The guest kernel reported a panic (pvpanic). */
  | { readonly kind: 'panic' }
  /** The guest can never run again (see Hart's trap-loop check). */
  | { readonly kind: 'stuck'; readonly reason: string };

const Command = { FAIL: 0x3333, PASS: 0x5555, RESET: 0x7777 } as const;

export class TestDevice implements MmioDevice {
  readonly name = 'test';
  readonly windowBytes = 0x1000;

  constructor(private readonly power: (request: PowerRequest) => void) {}

  read(): number {
    return 0;
  }

  write(offset: number, width: AccessWidth, value: number): void {
    // QEMU's sifive_test takes 16- and 32-bit writes; a 16-bit write carries no failure code.
    if (offset !== 0 || width === 1) return;
    const command = value & 0xffff;
    if (command === Command.PASS) this.power({ kind: 'poweroff', status: 0 });
    else if (command === Command.FAIL) this.power({ kind: 'poweroff', status: value >>> 16 });
    else if (command === Command.RESET) this.power({ kind: 'reset' });
  }

  save(writer: SnapshotWriter): void {
    writer.section('test');
  }

  restore(reader: SnapshotReader): void {
    reader.section('test');
  }
}
