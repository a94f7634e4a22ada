/**
 * The arbiter: the atomic test-and-set that decides which replica may be live in a
 * generation (VMware FT's go-live test on shared storage). The protocol core asks it through
 * `ReplicaIo.tryGoLive`; only the failure path consults it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EtcdArbiter, parseEtcdAddress } from './etcd-arbiter.js';

export interface Arbiter {
  /** May `replica` be the live one of `clusterId` in `generation`? True for exactly one caller. */
  tryGoLive(clusterId: string, generation: number, replica: string): boolean;
}

/** A file arbiter on a shared directory, or an etcd arbiter for an `etcd://` address. */
export function openArbiter(where: string, log: (line: string) => void): Arbiter & { close?(): void } {
  return where.startsWith('etcd://') ? new EtcdArbiter(parseEtcdAddress(where), log) : new FileArbiter(where);
}

/** The test-and-set on a shared directory: one file per generation, created exclusively. */
export class FileArbiter implements Arbiter {
  constructor(private readonly directory: string) {
    fs.mkdirSync(directory, { recursive: true });
  }

  tryGoLive(clusterId: string, generation: number, replica: string): boolean {
    const file = path.join(this.directory, `${clusterId}.live-${generation}`);
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, `${replica} ${process.pid}\n`);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  }
}
