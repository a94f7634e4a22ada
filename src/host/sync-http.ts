/**
 * A blocking HTTP POST for the few host calls that the synchronous protocol core makes on its
 * failure path (the arbiter's test-and-set): a worker thread does the request while the
 * calling thread waits on a shared flag, with a deadline. The file arbiter blocks on fsync in
 * the same place; nothing on the normal path uses this.
 */
import { Worker } from 'node:worker_threads';

/** The largest response body kept (the arbiter's answers are a few hundred bytes). */
const responseBytesMax = 64 * 1024;

/** Slots of the shared control array (sync-http-worker.ts writes them in this order). */
const Slot = { state: 0, status: 1, length: 2 } as const;
const State = { idle: 0, done: 1 } as const;


export interface SyncResponse {
  /** The HTTP status, or -1 if there was no answer (then `text` says why). */
  readonly status: number;
  readonly text: string;
}

export class SyncHttpClient {
  private readonly control = new Int32Array(new SharedArrayBuffer(4 * 3));
  private readonly body = new Uint8Array(new SharedArrayBuffer(responseBytesMax));
  private worker: Worker | undefined;

  /** POSTs `json` to `url` and waits for the answer, at most `timeoutMs` (plus a little). */
  post(url: string, json: string, timeoutMs: number): SyncResponse {
    const worker = (this.worker ??= this.startWorker());
    Atomics.store(this.control, Slot.state, State.idle);
    worker.postMessage({ url, json, timeoutMs });
    // The worker gives up at timeoutMs itself; the margin covers its start and its report.
    const outcome = Atomics.wait(this.control, Slot.state, State.idle, timeoutMs + 1000);
    if (outcome === 'timed-out') {
      // A worker that does not report is beyond use: start a new one next time.
      void worker.terminate();
      this.worker = undefined;
      return { status: -1, text: `no answer within ${timeoutMs} ms` };
    }
    const length = Atomics.load(this.control, Slot.length);
    return { status: Atomics.load(this.control, Slot.status), text: new TextDecoder().decode(this.body.slice(0, length)) };
  }

  private startWorker(): Worker {
    // No inherited execArgv: flags meant for the main script (--input-type, --eval...) do not apply here.
    const worker = new Worker(new URL('./sync-http-worker.js', import.meta.url), { execArgv: [], workerData: { control: this.control.buffer, body: this.body.buffer } });
    // The process may end while the worker idles; a worker that fails is replaced next time.
    worker.unref();
    worker.on('error', () => {
      if (this.worker === worker) this.worker = undefined;
    });
    return worker;
  }

  close(): void {
    void this.worker?.terminate();
    this.worker = undefined;
  }
}
