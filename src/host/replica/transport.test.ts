/**
 * The replication channel's link over a socket: what `holding` tells the run loop. A TLS
 * socket hands one write at a time to the kernel and the next only after the event loop has
 * seen the previous one done, so a replica that sends and runs on without yielding holds back
 * what it sends next; the run loop yields while a link is holding (runtime.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { setImmediate as yieldToHost } from 'node:timers/promises';
import { initClusterKeys, loadTlsIdentity } from './keys.js';
import { SocketLink } from './transport.js';
import { FrameDecoder, type Message } from '../../replication/messages.js';

/** A connected pair of sockets, TLS with the cluster's keys or plain TCP; the sender's side is `sender`. */
async function connectedPair(secure: boolean): Promise<{ sender: net.Socket; receiver: net.Socket; close(): void }> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-link-'));
  const [a, b] = secure ? initClusterKeys(directory, ['a', 'b']).map((dir) => loadTlsIdentity(dir)) : [undefined, undefined];
  return new Promise((resolve, reject) => {
    const onConnection = async (receiver: net.Socket): Promise<void> => {
      if (!senderReady) await once(sender, secure ? 'secureConnect' : 'connect');
      resolve({
        sender,
        receiver,
        close: () => {
          sender.destroy();
          receiver.destroy();
          server.close();
          fs.rmSync(directory, { recursive: true, force: true });
        },
      });
    };
    const handle = (receiver: net.Socket): void => void onConnection(receiver);
    const server = secure
      ? tls.createServer({ ca: a!.ca, cert: a!.cert, key: a!.key, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: true }, handle)
      : net.createServer(handle);
    let sender: net.Socket;
    let senderReady = false;
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      sender = secure
        ? tls.connect({ host: '127.0.0.1', port, ca: b!.ca, cert: b!.cert, key: b!.key, minVersion: 'TLSv1.3', checkServerIdentity: () => undefined })
        : net.connect(port, '127.0.0.1');
      sender.on('error', reject);
      sender.once(secure ? 'secureConnect' : 'connect', () => (senderReady = true));
    });
  });
}

const heartbeat = { type: 'heartbeat', sequence: 1, releasedThrough: 0 } as const;

test('a TLS link holds what it sent until the event loop turns; then it holds nothing', async () => {
  const pair = await connectedPair(true);
  try {
    const link = new SocketLink(pair.sender);
    assert.equal(link.holding, false);
    link.send(heartbeat);
    assert.equal(link.holding, true, 'the write waits for the event loop to see it done');
    // Once the event loop has turned (a bound, not a duration: each turn is an event).
    for (let turns = 0; turns < 1000 && link.holding; turns++) await yieldToHost();
    assert.equal(link.holding, false);
  } finally {
    pair.close();
  }
});

test('a plain TCP link hands a small message to the kernel at once', async () => {
  const pair = await connectedPair(false);
  try {
    const link = new SocketLink(pair.sender);
    link.send(heartbeat);
    assert.equal(link.holding, false);
  } finally {
    pair.close();
  }
});

test('messages sent while a link is corked leave in one write at the last uncork, in order; close sends what is corked', async () => {
  for (const secure of [false, true]) {
    const pair = await connectedPair(secure);
    try {
      const link = new SocketLink(pair.sender);
      const writes: number[] = [];
      const write = pair.sender.write.bind(pair.sender);
      pair.sender.write = ((chunk: Uint8Array, ...rest: never[]) => {
        writes.push(chunk.length);
        return write(chunk, ...rest);
      }) as typeof pair.sender.write;
      const decoder = new FrameDecoder();
      const received: Message[] = [];
      pair.receiver.on('data', (chunk: Buffer) => received.push(...decoder.pushFrames(chunk).map((frame) => frame.message)));
      const heartbeats = (from: number, count: number): Message[] => Array.from({ length: count }, (_, i) => ({ type: 'heartbeat', sequence: from + i, releasedThrough: 0 }));
      link.cork();
      link.cork(); // nested, as a socket handler inside the run loop's batch
      let bytes = 0;
      for (const message of heartbeats(1, 3)) bytes += link.send(message);
      link.uncork();
      assert.equal(link.holding, true, 'still corked once: the batch waits');
      assert.deepEqual(writes, [], 'nothing written yet');
      link.uncork();
      assert.deepEqual(writes, [bytes], 'the three frames in one write');
      link.send(heartbeats(4, 1)[0]!);
      assert.equal(writes.length, 2, 'uncorked: a write per message');
      link.cork();
      link.send(heartbeats(5, 1)[0]!);
      link.close();
      assert.equal(writes.length, 3, 'close wrote what was corked');
      for (let turns = 0; turns < 10_000 && received.length < 5; turns++) await yieldToHost();
      assert.deepEqual(received, heartbeats(1, 5), `every frame arrived, in order (${secure ? 'TLS' : 'TCP'})`);
    } finally {
      pair.close();
    }
  }
});
