/**
 * The arbiter: the atomic test-and-set that decides which replica may be live in a
 * generation (VMware FT's go-live test on shared storage), and remembers, for each generation,
 * who won it and which backups it kept following (a primary that drops a backup takes the next
 * generation, naming the others: docs/REPLICATION.md, "t backups"). The protocol core asks it
 * through `ReplicaIo.tryGoLive`; only the failure path consults it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ArbiterAnswer, ArbiterRecord } from '../../replication/replica.js';
import { EtcdArbiter, parseEtcdAddress } from './etcd-arbiter.js';

export interface Arbiter {
  /**
   * May `replica` be the live one of `clusterId` in `generation`, keeping `members` as its
   * backups? Won by exactly one caller; the others learn the record, if it can be read.
   */
  tryGoLive(clusterId: string, generation: number, replica: string, members: readonly string[]): ArbiterAnswer;
  /** Who holds `generation` of `clusterId`, read only: its record, or undefined if no one does (or it cannot be read). */
  holder(clusterId: string, generation: number): ArbiterRecord | undefined;
}

/** A file arbiter on a shared directory, or an etcd arbiter for an `etcd://` address. */
export function openArbiter(where: string, log: (line: string) => void): Arbiter & { close?(): void } {
  return where.startsWith('etcd://') ? new EtcdArbiter(parseEtcdAddress(where), log) : new FileArbiter(where);
}

/** A generation's record as the arbiters store it: one line of JSON. */
export function encodeArbiterRecord(record: ArbiterRecord, pid: number, host?: string): string {
  return `${JSON.stringify({ replica: record.replica, members: record.members, pid, ...(host === undefined ? {} : { host }) })}\n`;
}

/** A stored record, or undefined if it is not one (another program's, or an older format): then nobody may count on it. */
export function decodeArbiterRecord(text: string): ArbiterRecord | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null) return undefined;
    const { replica, members } = value as { replica?: unknown; members?: unknown };
    if (typeof replica !== 'string' || !Array.isArray(members) || !members.every((member) => typeof member === 'string')) return undefined;
    return { replica, members: members as string[] };
  } catch {
    return undefined;
  }
}

/**
 * The test-and-set on a shared directory: one file per generation, `<cluster>.live-<g>`,
 * holding its record. The file appears whole or not at all: the record is written to a file of
 * this process's own and linked to its name (link(2) fails if the name exists), so a reader
 * never sees a half-written one.
 */
export class FileArbiter implements Arbiter {
  constructor(private readonly directory: string) {
    fs.mkdirSync(directory, { recursive: true });
  }

  tryGoLive(clusterId: string, generation: number, replica: string, members: readonly string[]): ArbiterAnswer {
    const file = path.join(this.directory, `${clusterId}.live-${generation}`);
    const draft = path.join(this.directory, `.${clusterId}.draft-${generation}-${process.pid}`);
    const fd = fs.openSync(draft, 'w');
    try {
      fs.writeSync(fd, encodeArbiterRecord({ replica, members }, process.pid));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.linkSync(draft, file);
      return { won: true };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      return { won: false, holder: this.read(file) };
    } finally {
      fs.rmSync(draft, { force: true });
    }
  }

  holder(clusterId: string, generation: number): ArbiterRecord | undefined {
    return this.read(path.join(this.directory, `${clusterId}.live-${generation}`));
  }

  private read(file: string): ArbiterRecord | undefined {
    try {
      return decodeArbiterRecord(fs.readFileSync(file, 'utf8'));
    } catch {
      return undefined;
    }
  }
}
