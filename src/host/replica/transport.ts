/**
 * The replication channel between two replica processes: protocol frames (messages.ts) on a
 * TCP stream, connection set-up, and the join handshake (the backup's hello). The replica's
 * run loop (runtime.ts) sees only {@link PeerLink}s and the handlers it passes in; TLS, when
 * it comes, wraps the stream here and nowhere else.
 *
 * Nothing a peer sends can crash the process: a frame that does not parse closes that
 * connection with a reason, sent to the peer in a reject frame when it can still read us.
 */
import * as net from 'node:net';
import { encodeMessage, FrameDecoder, ProtocolError, type Message, type ReplicaIdentity } from '../../replication/messages.js';

/** How long a backup keeps trying, by default, to reach a primary that is not listening yet. */
export const connectRetryMs = 15_000;
/** Between two attempts to reach a primary that refused the connection. */
const connectRetryIntervalMs = 100;
/** A connection to the primary must say hello within this long. */
const helloTimeoutMs = 5000;
/** Connections that have not said hello yet, at most (more are closed at once). */
const unjoinedConnectionsMax = 8;
/** A refused connection gets this long to read its reject frame before it is destroyed. */
const refusalLingerMs = 1000;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export function parseEndpoint(text: string): Endpoint {
  const match = /^(.*):(\d+)$/.exec(text);
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || !(port >= 0 && port < 65536)) throw new RangeError(`"${text}" is not HOST:PORT`);
  return { host: match[1] === '' ? '127.0.0.1' : match[1]!, port };
}

/** The replica could not start (the primary is unreachable, the port is taken...). */
export class ReplicaStartError extends Error {
  override readonly name = 'ReplicaStartError';
}

/** The connection to the peer, once joined. */
export interface PeerLink {
  /** Sends one message; returns its size on the wire. */
  send(message: Message): number;
  /** What is sent between cork and uncork leaves in one write. */
  cork(): void;
  uncork(): void;
  /** Closes the connection; no handler is called for it any more. */
  close(): void;
}

class SocketLink implements PeerLink {
  constructor(readonly socket: net.Socket) {}

  send(message: Message): number {
    const bytes = encodeMessage(message);
    this.socket.write(bytes);
    return bytes.length;
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    this.socket.removeAllListeners('data');
    this.socket.on('error', () => {});
    this.socket.destroy();
  }
}

/** What a listening replica (a primary) does with the backups that connect. */
export interface ListenerHandlers {
  /**
   * A connection said hello. Return true to take it as the peer; false if it was refused (the
   * handler may have sent a reject frame on `link` first; the connection is then ended).
   */
  hello(link: PeerLink, identity: ReplicaIdentity): boolean;
  /** A message from the joined peer. */
  message(message: Message): void;
  /** The joined peer's connection closed or failed, or it sent something unreadable. */
  closed(reason: string): void;
  log(line: string): void;
}

/** A primary's listening socket and its joined peer, if any. */
export class ReplicaListener {
  private server: net.Server | undefined;
  private peer: net.Socket | undefined;
  private unjoined = 0;

  private constructor(private readonly handlers: ListenerHandlers) {}

  /** Listens on `endpoint`; resolves with the port (useful when it was 0). */
  static async listen(endpoint: Endpoint, handlers: ListenerHandlers): Promise<{ listener: ReplicaListener; port: number }> {
    const listener = new ReplicaListener(handlers);
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer((socket) => listener.accept(socket));
      // A port in use or an address not on this host is bad input: one line, no stack trace.
      server.on('error', (error: NodeJS.ErrnoException) => {
        reject(new ReplicaStartError(`cannot listen on ${endpoint.host}:${endpoint.port}: ${error.code ?? error.message}`));
      });
      server.listen(endpoint.port, endpoint.host, () => {
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : endpoint.port);
      });
      listener.server = server;
    });
    handlers.log(`listening on ${endpoint.host}:${port}`);
    return { listener, port };
  }

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    const peer = socket.remoteAddress ?? '?';
    if (this.unjoined >= unjoinedConnectionsMax) {
      this.handlers.log(`refused a connection from ${peer}: ${unjoinedConnectionsMax} others have not said hello yet`);
      socket.destroy();
      return;
    }
    this.unjoined++;
    let counted = true;
    const settle = (): void => {
      if (counted) this.unjoined--;
      counted = false;
    };
    const decoder = new FrameDecoder();
    let joined = false;
    /** This connection has been refused with a reason already. */
    let refused = false;
    const helloTimer = setTimeout(() => {
      if (joined || refused) return;
      refused = true;
      this.refuse(socket, new ProtocolError('malformed', `no hello within ${helloTimeoutMs} ms`));
    }, helloTimeoutMs);
    helloTimer.unref();
    socket.on('data', (chunk: Buffer) => {
      let messages: Message[];
      try {
        messages = decoder.push(chunk);
      } catch (error) {
        refused = true;
        this.refuse(socket, error);
        return;
      }
      for (const message of messages) {
        if (!joined) {
          if (message.type !== 'hello') {
            refused = true;
            this.refuse(socket, new ProtocolError('malformed', `expected a hello, got ${message.type}`));
            return;
          }
          if (this.peer !== undefined) {
            socket.end(encodeMessage({ type: 'reject', code: 'busy', reason: 'this primary already has a backup' }));
            return;
          }
          this.peer = socket;
          if (!this.handlers.hello(new SocketLink(socket), message.identity)) {
            this.peer = undefined;
            socket.end();
            return;
          }
          joined = true;
          settle();
          continue;
        }
        this.handlers.message(message);
      }
    });
    const closed = (reason: string): void => {
      clearTimeout(helloTimer);
      settle();
      if (this.peer === socket) {
        this.peer = undefined;
        this.handlers.closed(reason);
      } else if (!joined && !refused && decoder.bufferedBytes > 0) {
        // A peer that hung up in the middle of its first frame: say so, or it leaves no trace.
        refused = true;
        const how = reason === 'closed' ? 'closed' : `failed (${reason})`;
        this.handlers.log(`refused a connection from ${peer}: a truncated frame (the connection ${how} after ${decoder.bufferedBytes} bytes of it)`);
      }
    };
    socket.on('error', (error) => closed(error.message));
    socket.on('close', () => closed('closed'));
  }

  /** Closes a connection that sent something wrong, telling the peer why (if it can read us). */
  private refuse(socket: net.Socket, error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    this.handlers.log(`refused a connection from ${socket.remoteAddress ?? '?'}: ${reason}`);
    if (this.peer === socket) {
      this.peer = undefined;
      this.handlers.closed(reason);
    }
    const code = error instanceof ProtocolError && error.code === 'version' ? 'version' : 'malformed';
    socket.end(encodeMessage({ type: 'reject', code, reason }));
    setTimeout(() => socket.destroy(), refusalLingerMs).unref();
  }

  close(): void {
    if (this.peer !== undefined) new SocketLink(this.peer).close();
    this.peer = undefined;
    this.server?.close();
  }
}

/** What a connecting replica (a backup) does with its primary's messages. */
export interface ConnectHandlers {
  message(message: Message, wireBytes: number): void;
  /** The connection closed or failed, or the primary sent something unreadable. */
  closed(reason: string): void;
  log(line: string): void;
}

/**
 * Connects to a primary, retrying while it refuses (it may not be listening yet) for up to
 * `timeoutMs`; then hands every frame to `handlers`.
 */
export async function connectToPrimary(endpoint: Endpoint, timeoutMs: number, handlers: ConnectHandlers): Promise<PeerLink> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connectOnce(endpoint, handlers);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ECONNREFUSED' || Date.now() > deadline) {
        throw new ReplicaStartError(`cannot reach the primary at ${endpoint.host}:${endpoint.port}: ${code ?? String(error)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, connectRetryIntervalMs));
    }
  }
}

function connectOnce(endpoint: Endpoint, handlers: ConnectHandlers): Promise<PeerLink> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(endpoint.port, endpoint.host);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder();
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      const link = new SocketLink(socket);
      let open = true;
      const closed = (reason: string): void => {
        if (!open) return;
        open = false;
        handlers.closed(reason);
      };
      socket.on('data', (chunk: Buffer) => {
        let frames: { message: Message; wireBytes: number }[];
        try {
          frames = decoder.pushFrames(chunk);
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          handlers.log(`the primary sent something this backup cannot read: ${reason}`);
          link.close();
          closed(reason);
          return;
        }
        for (const frame of frames) handlers.message(frame.message, frame.wireBytes);
      });
      socket.on('error', (error) => closed(error.message));
      // A primary that hung up in the middle of a frame: say so, or the truncation leaves no trace.
      socket.on('close', () => closed(decoder.bufferedBytes > 0 ? `closed in the middle of a frame (after ${decoder.bufferedBytes} bytes of it)` : 'closed'));
      resolve(link);
    });
  });
}
