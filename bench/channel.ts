/**
 * What TLS itself costs on the replication channel, measured where it happens: the same
 * exchange of an entry and its acknowledgement, round after round, over loopback TCP with and
 * without TLS 1.3 (the cluster's keys, mutual authentication, as transport.ts sets it up).
 * Both ends run in this process, so its CPU time is the channel's whole CPU cost; the round
 * trip is the latency that TLS adds to every acknowledgement an output waits for.
 *
 * Whole-pair comparisons (bench/replication.ts, `tlsCost`) move by ±10% between identical runs
 * on a shared two-core machine; this isolates the part that differs between them.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { TlsIdentity } from '../src/host/replica/keys.js';

/** One kind of traffic: `rounds` entries of `entryBytes`, each answered by `ackBytes`. */
export interface ChannelTraffic {
  readonly rounds: number;
  readonly entryBytes: number;
  readonly ackBytes: number;
}

export interface ChannelCost {
  /** CPU milliseconds of this process (both ends) for the whole exchange. */
  readonly cpuMs: number;
  /** Round-trip times, microseconds, in order. */
  readonly roundTripsUs: number[];
}

/** Frames of a 4-byte length and a body, as on the real channel (messages.ts). */
function frame(bytes: number): Buffer {
  const buffer = Buffer.alloc(4 + bytes, 0x5a);
  buffer.writeUInt32BE(bytes, 0);
  return buffer;
}

/** Calls `onFrame` once for every whole frame that arrives on `socket`. */
function onFrames(socket: net.Socket, onFrame: () => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      pending = pending.subarray(4 + pending.readUInt32BE(0));
      onFrame();
    }
  });
}

/**
 * Runs `traffic` over a fresh connection, TLS when `identities` are given (the primary's and
 * the backup's), plain TCP otherwise. The connection's set-up is not counted.
 */
export function measureChannel(traffic: ChannelTraffic, identities?: { primary: TlsIdentity; backup: TlsIdentity }): Promise<ChannelCost> {
  return new Promise((resolve, reject) => {
    const entry = frame(traffic.entryBytes);
    const ack = frame(traffic.ackBytes);
    // The primary listens and sends entries; the backup connects and acknowledges them.
    const serve = (socket: net.Socket): void => {
      socket.setNoDelay(true);
      const roundTripsUs: number[] = [];
      let sentAt = 0n;
      let started = process.cpuUsage();
      const send = (): void => {
        sentAt = process.hrtime.bigint();
        socket.write(entry);
      };
      onFrames(socket, () => {
        roundTripsUs.push(Number(process.hrtime.bigint() - sentAt) / 1000);
        if (roundTripsUs.length < traffic.rounds) return send();
        const used = process.cpuUsage(started);
        socket.end();
        server.close();
        resolve({ cpuMs: (used.user + used.system) / 1000, roundTripsUs });
      });
      started = process.cpuUsage();
      send();
    };
    const server =
      identities === undefined
        ? net.createServer(serve)
        : tls.createServer(
            { ca: identities.primary.ca, cert: identities.primary.cert, key: identities.primary.key, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true },
            serve,
          );
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      const socket =
        identities === undefined
          ? net.connect(port, '127.0.0.1')
          : tls.connect({
              host: '127.0.0.1',
              port,
              ca: identities.backup.ca,
              cert: identities.backup.cert,
              key: identities.backup.key,
              minVersion: 'TLSv1.3',
              checkServerIdentity: () => undefined,
            });
      socket.setNoDelay(true);
      socket.on('error', reject);
      onFrames(socket, () => void socket.write(ack));
    });
  });
}
