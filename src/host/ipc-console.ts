/**
 * How `pair` and the replica processes it forks talk over Node's IPC channel, and the console
 * of such a replica: output straight to the shared stdout, input from the parent.
 */
import type { FailoverReport } from '../replication/backup.js';
import type { ReplicaStatus } from '../replication/replica.js';
import { ConsoleOutput, type ConsolePort } from './console.js';
import type { ReplicaProcessStatus } from './status.js';

/** What a replica tells its `pair` process. */
export type ChildMessage =
  | { type: 'listening'; port: number }
  | { type: 'role'; role: ReplicaStatus['role'] }
  | { type: 'status'; status: ReplicaProcessStatus }
  | { type: 'failover'; report: FailoverReport; wallClockMs: number }
  /** The primary's backup diverged (at `epoch`, for `reason`): the guest runs on, not protected. */
  | { type: 'divergence'; epoch: number; reason: string }
  | { type: 'finished'; status: number; reason: string; guestFinished: boolean }
  | { type: 'log'; line: string }
  /** The shared console's reader went away (EPIPE). */
  | { type: 'output-closed' };

/**
 * What `pair` tells a replica: console input for the guest; that the replica listening at
 * `port` (the primary a backup follows) has exited, as its parent saw.
 */
export type ParentMessage = { type: 'input'; bytes: number[] } | { type: 'primary-exited'; port: number };

/** The console of a replica run by `pair`: output straight to stdout, input from the parent. */
export class IpcConsole implements ConsolePort {
  private readonly pending: number[] = [];
  private waiters: (() => void)[] = [];
  private closing = false;
  readonly quitRequested = false;
  readonly inputEnded = false;
  // The reader of the pair's console went away: output goes nowhere from now on, and the
  // parent, told, stops the pair.
  private readonly output = new ConsoleOutput(process.stdout, () => {
    if (process.connected) process.send!({ type: 'output-closed' } satisfies ChildMessage);
  });

  constructor() {
    // The `pair` process is this replica's only way to the world (console input, the output
    // it tells about): if it dies, even by SIGKILL, the replica must not live on unseen.
    process.on('disconnect', () => {
      if (this.closing) return;
      process.stderr.write(`understudy: replica ${process.pid}: its pair process is gone; stopping\n`);
      process.exit(1);
    });
    process.on('message', (message: ParentMessage) => {
      if (message.type !== 'input' || !Array.isArray(message.bytes)) return;
      for (const byte of message.bytes) if (Number.isInteger(byte) && byte >= 0 && byte < 256) this.pending.push(byte);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  write(bytes: Uint8Array): void {
    this.output.write(bytes);
  }

  get outputClosed(): boolean {
    return this.output.closed;
  }

  get outputBacklogBytes(): number {
    return this.output.backlogBytes;
  }

  takeInput(max: number): Uint8Array {
    return Uint8Array.from(this.pending.splice(0, Math.max(0, max)));
  }

  get hasInput(): boolean {
    return this.pending.length > 0;
  }

  inputReady(): Promise<void> {
    if (this.pending.length > 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  drain(): Promise<void> {
    return this.output.drain();
  }

  close(): void {
    this.closing = true;
    this.output.close();
    process.removeAllListeners('message');
    if (process.connected) process.disconnect();
  }
}
