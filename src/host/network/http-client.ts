/**
 * A deliberately plain HTTP/1.1 client on ONE keep-alive TCP connection, for the demo, the
 * network failover tests and the benchmark: it never reconnects, so a connection that breaks
 * (reset, closed) shows as an error instead of being papered over by a retry.
 */
import * as net from 'node:net';

export interface HttpResponse {
  readonly status: number;
  readonly body: Buffer;
}

export class ConnectionLost extends Error {
  override readonly name = 'ConnectionLost';
}

export class KeepAliveClient {
  private buffer: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  /** Why the connection ended, once it has. */
  lost: string | undefined;
  requests = 0;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.waiter?.();
    });
    socket.on('error', (error) => {
      this.lost ??= error.message;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.lost ??= 'the connection was closed';
      this.waiter?.();
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<KeepAliveClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, host);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(new KeepAliveClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** One request, answered in full before it returns; `timeoutMs` bounds the wait for the answer. */
  async request(method: 'GET' | 'PUT', target: string, body: Uint8Array | undefined, timeoutMs: number): Promise<HttpResponse> {
    if (this.lost !== undefined) throw new ConnectionLost(this.lost);
    this.requests++;
    const head = `${method} ${target} HTTP/1.1\r\nHost: guest\r\n${body === undefined ? '' : `Content-Length: ${body.length}\r\n`}\r\n`;
    this.socket.write(body === undefined ? head : Buffer.concat([Buffer.from(head, 'latin1'), body]));
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const response = this.parse();
      if (response !== undefined) return response;
      if (this.lost !== undefined) throw new ConnectionLost(`${this.lost} (waiting for the answer to ${method} ${target})`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no answer to ${method} ${target} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve();
        };
      });
    }
  }

  private parse(): HttpResponse | undefined {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = this.buffer.subarray(0, end).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? NaN);
    if (!Number.isInteger(status)) throw new Error(`not an HTTP answer: ${JSON.stringify(head.slice(0, 80))}`);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.buffer.length < end + 4 + length) return undefined;
    const body = Buffer.from(this.buffer.subarray(end + 4, end + 4 + length));
    this.buffer = this.buffer.subarray(end + 4 + length);
    return { status, body };
  }

  close(): void {
    this.socket.destroy();
  }
}
