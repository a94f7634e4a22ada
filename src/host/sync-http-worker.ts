/**
 * The worker of sync-http.ts: performs each POST it is sent and reports through the shared
 * arrays (status, length, then the state flag that wakes the waiting thread).
 */
import { parentPort, workerData } from 'node:worker_threads';

const control = new Int32Array((workerData as { control: SharedArrayBuffer }).control);
const body = new Uint8Array((workerData as { body: SharedArrayBuffer }).body);

parentPort?.on('message', (request: { url: string; json: string; timeoutMs: number }) => {
  void answer(request);
});

async function answer({ url, json, timeoutMs }: { url: string; json: string; timeoutMs: number }): Promise<void> {
  let status = -1;
  let bytes = new Uint8Array(0);
  try {
    const response = await fetch(url, { method: 'POST', body: json, headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
    status = response.status;
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    bytes = new TextEncoder().encode(cause ?? (error instanceof Error ? error.name : String(error)));
  }
  const length = Math.min(bytes.length, body.length);
  body.set(bytes.subarray(0, length));
  Atomics.store(control, 1, status);
  Atomics.store(control, 2, length);
  Atomics.store(control, 0, 1);
  Atomics.notify(control, 0);
}
