/**
 * The replication channel between two replica processes: protocol frames (messages.ts) on a
 * TCP stream, mutual TLS 1.3 when the replicas have keys (keys.ts), connection set-up, and the
 * join handshake (the backup's hello). The replica's run loop (runtime.ts) sees only
 * {@link PeerLink}s and the handlers it passes in.
 *
 * With TLS, both sides prove membership of the cluster (a certificate signed by the cluster
 * CA) before a single frame passes: a stranger learns nothing, and what an attacker injects
 * into or replays on the stream fails TLS's integrity check and ends the connection. Nothing a
 * peer sends can crash the process: a frame that does not parse closes that connection with
 * a reason, sent to the peer in a reject frame when it can still read us.
 */
import { X509Certificate } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { appendMessage, encodeMessage, FrameDecoder, ProtocolError, type Message, type ReplicaIdentity } from '../../replication/messages.js';
import { SnapshotWriter } from '../../machine/snapshot.js';
import type { TlsIdentity } from './keys.js';
import { LinkShaper, type LinkShape } from './link-shaper.js';

/** How long a backup keeps trying, by default, to reach a primary that is not listening yet. */
export const connectRetryMs = 15_000;
/** Between two attempts to reach a primary that refused the connection. */
const connectRetryIntervalMs = 100;
/** How long a closed link waits for what it wrote to leave, and for the peer to close its side. */
const closeLingerMs = 2000;
/** A connection to the primary must finish its TLS handshake and say hello within this long. */
const helloTimeoutMs = 5000;
/**
 * Connections that have not said hello yet, at most. A new one beyond this closes the oldest,
 * so that idle or slow connections cannot lock the real backup out (it says hello at once).
 */
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

/**
 * How the channel is secured: mutual TLS with the cluster's keys, or nothing (`--insecure`);
 * and, for tests and benchmarks, a slower link on this replica's sending side (link-shaper.ts).
 */
export type ChannelSecurity = ({ readonly kind: 'tls'; readonly identity: TlsIdentity } | { readonly kind: 'insecure' }) & { readonly linkShape?: LinkShape };

const tlsVersion = 'TLSv1.3';

/** Why a peer's certificate does not make it a member of the cluster, if it does not. */
function refusePeerCertificate(socket: tls.TLSSocket, ca: X509Certificate, nowMs = Date.now()): string | undefined {
  const peer = socket.getPeerX509Certificate();
  if (peer === undefined) return 'it presented no certificate';
  if (!peer.checkIssued(ca) || !peer.verify(ca.publicKey)) return `its certificate (${peer.subject.replace(/\n/g, ', ')}) is not signed by this cluster's CA`;
  if (nowMs < Date.parse(peer.validFrom) || nowMs > Date.parse(peer.validTo)) return `its certificate is valid from ${peer.validFrom} to ${peer.validTo}, not now`;
  return undefined;
}

/** A TLS failure, in words for the operator. */
function describeTlsError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
    case 'ERR_SSL_HTTP_REQUEST':
      return 'it does not speak TLS (is it run with --insecure? give both sides --tls DIR)';
    case 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE':
      return 'it presented no certificate';
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
      return 'the peer wants a certificate from this replica';
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return `its certificate is not signed by this cluster's CA (${error.code})`;
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
      return `it does not accept this replica's certificate: another cluster's keys? (${error.code})`;
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return `its certificate is not valid now (${error.code})`;
    default:
      return `TLS failed: ${error.code ?? error.message}`;
  }
}

/** The replica could not start (the primary is unreachable, the port is taken...). */
export class ReplicaStartError extends Error {
  override readonly name = 'ReplicaStartError';

  /**
   * `unreachable`: nothing listens there (yet), or the connection was reset while it opened (a
   * replica going down, or too busy to take it): worth trying again later, as a standby does.
   */
  constructor(message: string, readonly code: 'unreachable' | 'other' = 'other') {
    super(message);
  }
}

/** The connection to the peer, once joined. */
export interface PeerLink {
  /** Sends one message; returns its size on the wire. */
  send(message: Message): number;
  /** What is sent between cork and uncork leaves in one write. */
  cork(): void;
  uncork(): void;
  /**
   * Something sent is still in this process, not yet handed to the kernel. A TLS socket hands
   * over one write at a time, the next only once the event loop has seen the previous one done:
   * whoever sends and then runs on without yielding holds back what it sends next.
   */
  readonly holding: boolean;
  /** Closes the connection; no handler is called for it any more. */
  close(): void;
}

export class SocketLink implements PeerLink {
  /** --link-rate, --link-latency: what this side sends passes through a shaper first. */
  private readonly shaper: LinkShaper | undefined;

  constructor(readonly socket: net.Socket, shape?: LinkShape) {
    this.shaper = shape === undefined ? undefined : new LinkShaper(shape, (bytes) => {
      if (!this.socket.destroyed) this.socket.write(bytes);
    });
  }

  /**
   * Frames sent while corked, one after the other in one buffer: they leave in one write at
   * the last uncork. (The socket's own cork queues each frame as a write of its own, whose
   * stream bookkeeping cost a primary more than encoding the entry.)
   */
  private readonly batch = new SnapshotWriter();
  private corks = 0;

  send(message: Message): number {
    if (this.corks > 0) return appendMessage(this.batch, message);
    const bytes = encodeMessage(message);
    this.write(bytes);
    return bytes.length;
  }

  cork(): void {
    this.corks++;
  }

  uncork(): void {
    if (this.corks === 0) return;
    this.corks--;
    if (this.corks === 0) this.flush();
  }

  /** Writes the batch, if any. */
  private flush(): void {
    if (this.batch.size === 0) return;
    const bytes = this.batch.finish();
    this.batch.reset();
    this.write(bytes);
  }

  private write(bytes: Uint8Array): void {
    if (this.shaper === undefined) this.socket.write(bytes);
    else this.shaper.send(bytes);
  }

  get holding(): boolean {
    return this.batch.size > 0 || this.socket.writableLength > 0 || (this.shaper?.queuedFrames ?? 0) > 0;
  }

  /**
   * Ends the connection after what was written: a primary's last words (its goodbye) must
   * reach the backup, or it would take the closed connection for a failure. A TLS socket
   * writes asynchronously, and destroy() would drop them. A peer that never closes its side
   * is cut off after a moment.
   */
  close(): void {
    // What was sent while corked goes first (a primary's goodbye may be among it).
    this.corks = 0;
    this.flush();
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    this.socket.removeAllListeners('data');
    this.socket.on('error', () => {});
    this.socket.resume(); // what still arrives is read and dropped, up to the peer's end
    if (this.shaper === undefined) this.socket.end();
    else this.shaper.drained(() => this.socket.end());
    setTimeout(() => this.socket.destroy(), closeLingerMs).unref();
  }
}

/** What a listening replica (a primary) does with the backups that connect. */
export interface ListenerHandlers {
  /**
   * A connection said hello. Return true to take it as a peer; false if it was refused (the
   * handler may have sent a reject frame on `link` first; the connection is then ended).
   */
  hello(link: PeerLink, identity: ReplicaIdentity): boolean;
  /** A message from a joined peer. */
  message(link: PeerLink, message: Message): void;
  /** A joined peer's connection closed or failed, or it sent something unreadable. */
  closed(link: PeerLink, reason: string): void;
  log(line: string): void;
}

/** A primary's listening socket and its joined peers (its backups: the core decides how many). */
export class ReplicaListener {
  private server: net.Server | undefined;
  private readonly peers = new Map<net.Socket, PeerLink>();
  private closed = false;
  /** Connections that have not said hello yet, oldest first, with what closes each. */
  private readonly unjoined = new Map<net.Socket, () => void>();
  private readonly tlsContext: { context: tls.SecureContext; ca: X509Certificate } | undefined;

  private constructor(
    private readonly handlers: ListenerHandlers,
    private readonly security: ChannelSecurity,
  ) {
    this.tlsContext =
      security.kind === 'tls'
        ? {
            context: tls.createSecureContext({ ca: security.identity.ca, cert: security.identity.cert, key: security.identity.key, minVersion: tlsVersion }),
            ca: new X509Certificate(security.identity.ca),
          }
        : undefined;
  }

  /** Listens on `endpoint`; resolves with the port (useful when it was 0). */
  static async listen(endpoint: Endpoint, handlers: ListenerHandlers, security: ChannelSecurity): Promise<{ listener: ReplicaListener; port: number }> {
    const listener = new ReplicaListener(handlers, security);
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

  private accept(raw: net.Socket): void {
    if (this.closed) {
      raw.destroy();
      return;
    }
    raw.setNoDelay(true);
    const peer = raw.remoteAddress ?? '?';
    if (this.unjoined.size >= unjoinedConnectionsMax) {
      const [oldest, close] = this.unjoined.entries().next().value as [net.Socket, () => void];
      this.handlers.log(`closed a connection from ${oldest.remoteAddress ?? '?'} that had not said hello: ${unjoinedConnectionsMax} connections were waiting`);
      close();
    }
    const decoder = new FrameDecoder();
    let joined = false;
    /** This connection has been refused with a reason already. */
    let refused = false;
    const settle = (): void => {
      this.unjoined.delete(raw);
    };
    const helloTimer = setTimeout(() => {
      if (joined || refused) return;
      refused = true;
      if (this.tlsContext !== undefined && !(socket as tls.TLSSocket).encrypted) {
        this.handlers.log(`refused a connection from ${peer}: no TLS handshake within ${helloTimeoutMs} ms`);
        raw.destroy();
        return;
      }
      this.refuse(socket, new ProtocolError('malformed', `no hello within ${helloTimeoutMs} ms`));
    }, helloTimeoutMs);
    helloTimer.unref();
    this.unjoined.set(raw, () => {
      refused = true;
      clearTimeout(helloTimer);
      settle();
      raw.destroy();
    });
    let socket: net.Socket = raw;
    let verifiedTls = false;
    if (this.tlsContext !== undefined) {
      const { context, ca } = this.tlsContext;
      const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context, requestCert: true, rejectUnauthorized: true });
      socket = secure;
      secure.once('secure', () => {
        // The handshake proved the peer holds its certificate's key; is it one of ours?
        const reason = refusePeerCertificate(secure, ca);
        if (reason !== undefined) {
          // It learns only that it was refused, and why.
          refused = true;
          this.refuse(secure, new ProtocolError('unauthorized', reason));
          return;
        }
        verifiedTls = true;
      });
      secure.on('error', (error: NodeJS.ErrnoException) => {
        if (verifiedTls || refused) return;
        refused = true;
        this.handlers.log(`refused a connection from ${peer}: ${describeTlsError(error)}`);
      });
    }
    socket.on('data', (chunk: Buffer) => {
      // No frame from a peer that is not (yet) verified, or already refused, is read.
      if (refused || (this.tlsContext !== undefined && !verifiedTls)) return;
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
          if (this.closed) {
            socket.end(encodeMessage({ type: 'reject', code: 'busy', reason: 'this primary has stopped' }));
            return;
          }
          const link = new SocketLink(socket, this.security.linkShape);
          this.peers.set(socket, link);
          if (!this.handlers.hello(link, message.identity)) {
            this.peers.delete(socket);
            socket.end();
            return;
          }
          joined = true;
          settle();
          continue;
        }
        const link = this.peers.get(socket);
        if (link !== undefined) this.handlers.message(link, message);
      }
    });
    const closed = (reason: string): void => {
      clearTimeout(helloTimer);
      settle();
      const link = this.peers.get(socket);
      if (link !== undefined) {
        this.peers.delete(socket);
        this.handlers.closed(link, reason);
      } else if (this.tlsContext !== undefined && !verifiedTls && !refused) {
        // A client that finds our certificate foreign just hangs up, mid-handshake.
        refused = true;
        this.handlers.log(`refused a connection from ${peer}: it closed during the TLS handshake (it does not accept this replica's certificate: another cluster's keys?)`);
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
    const link = this.peers.get(socket);
    if (link !== undefined) {
      this.peers.delete(socket);
      this.handlers.closed(link, reason);
    }
    const code = error instanceof ProtocolError && (error.code === 'version' || error.code === 'unauthorized') ? error.code : 'malformed';
    socket.end(encodeMessage({ type: 'reject', code, reason }));
    setTimeout(() => socket.destroy(), refusalLingerMs).unref();
  }

  /** Closes a joined peer's connection (the primary dropped that backup); no handler is called for it. */
  drop(link: PeerLink): void {
    for (const [socket, joined] of this.peers) if (joined === link) this.peers.delete(socket);
    link.close();
  }

  /**
   * Stops listening, and closes the backups' connections and every connection still on its way
   * to a hello (one in its TLS handshake too): nothing that arrives later is handed on.
   */
  close(): void {
    this.closed = true;
    for (const close of [...this.unjoined.values()]) close();
    for (const link of this.peers.values()) link.close();
    this.peers.clear();
    this.server?.close();
  }
}

/** What a connecting replica (a backup) does with its primary's messages. */
export interface ConnectHandlers {
  /** The messages of one read from the socket, in order. */
  messages(messages: readonly { readonly message: Message; readonly wireBytes: number }[]): void;
  /** Bytes arrived (perhaps only part of a frame): the primary is alive, however slow the link. */
  activity?(): void;
  /** The connection closed or failed, or the primary sent something unreadable. */
  closed(reason: string): void;
  log(line: string): void;
}

/**
 * Connects to a primary, retrying while it refuses (it may not be listening yet) for up to
 * `timeoutMs`; then hands every frame to `handlers`.
 */
export async function connectToPrimary(endpoint: Endpoint, timeoutMs: number, handlers: ConnectHandlers, security: ChannelSecurity): Promise<PeerLink> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connectOnce(endpoint, handlers, security);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (error instanceof ReplicaStartError) throw error;
      if (code !== 'ECONNREFUSED' || Date.now() > deadline) {
        throw new ReplicaStartError(`cannot reach the primary at ${endpoint.host}:${endpoint.port}: ${code ?? String(error)}`, code === 'ECONNREFUSED' || code === 'ECONNRESET' ? 'unreachable' : 'other');
      }
      await new Promise((resolve) => setTimeout(resolve, connectRetryIntervalMs));
    }
  }
}

function connectOnce(endpoint: Endpoint, handlers: ConnectHandlers, security: ChannelSecurity): Promise<PeerLink> {
  return new Promise((resolve, reject) => {
    const where = `${endpoint.host}:${endpoint.port}`;
    const socket: net.Socket =
      security.kind === 'tls'
        ? tls.connect({
            host: endpoint.host,
            port: endpoint.port,
            ca: security.identity.ca,
            cert: security.identity.cert,
            key: security.identity.key,
            minVersion: tlsVersion,
            // Any certificate of the cluster's CA is a member; replicas change hosts and roles.
            checkServerIdentity: () => undefined,
          })
        : net.connect(endpoint.port, endpoint.host);
    socket.setNoDelay(true);
    const decoder = new FrameDecoder();
    const failed = (error: NodeJS.ErrnoException): void => {
      // A refused TCP connection may be retried; a TLS failure is the peer's or the keys' fault.
      if (error.code === 'ECONNREFUSED' || security.kind === 'insecure') reject(error);
      else reject(new ReplicaStartError(`cannot join the primary at ${where}: ${describeTlsError(error)}`));
    };
    socket.once('error', failed);
    socket.once(security.kind === 'tls' ? 'secureConnect' : 'connect', () => {
      socket.off('error', failed);
      const link = new SocketLink(socket, security.linkShape);
      let open = true;
      const closed = (reason: string): void => {
        if (!open) return;
        open = false;
        handlers.closed(reason);
      };
      socket.on('data', (chunk: Buffer) => {
        handlers.activity?.();
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
        // What the handlers answer to these frames (a backup's acknowledgements) leaves in one write.
        link.cork();
        handlers.messages(frames);
        link.uncork();
      });
      socket.on('error', (error: NodeJS.ErrnoException) => closed(security.kind === 'tls' && error.code?.startsWith('ERR_SSL') === true ? describeTlsError(error) : error.message));
      // A primary that hung up in the middle of a frame: say so, or the truncation leaves no trace.
      socket.on('close', () => closed(decoder.bufferedBytes > 0 ? `closed in the middle of a frame (after ${decoder.bufferedBytes} bytes of it)` : 'closed'));
      resolve(link);
    });
  });
}
