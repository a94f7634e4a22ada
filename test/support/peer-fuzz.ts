/**
 * Hostile peers for the frame fuzzer (test/peer-fuzz.test.ts): seeded streams of random,
 * mutated, replayed, reordered and truncated frames; a raw connection that feeds one to a
 * live primary; a fake primary that serves one to a live backup; and recordings of what a
 * real backup and a real primary say, to mutate and replay.
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { encodeMessage, FrameDecoder, frameHeaderBytes, protocolVersion, type Message } from '../../src/replication/messages.js';
import type { Prng } from '../../src/simulator/prng.js';
import { cliPath, repoRoot } from '../helpers.js';

/** One hostile stream and what it is, for the failure message. */
export interface FuzzCase {
  readonly description: string;
  readonly bytes: Uint8Array;
}

const concat = (parts: readonly Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));

/** Random bytes; sometimes behind a plausible frame header, so that they get past the first checks. */
export function randomBytes(prng: Prng): FuzzCase {
  const body = Uint8Array.from({ length: prng.int(1, 400) }, () => prng.int(0, 255));
  if (prng.chance(0.5)) return { description: `${body.length} random bytes`, bytes: body };
  const header = new Uint8Array(frameHeaderBytes);
  header.set([0x55, 0x53, protocolVersion, prng.int(1, 12)]);
  new DataView(header.buffer).setUint32(4, prng.chance(0.5) ? body.length : prng.int(0, 2 * body.length), true);
  return { description: `a frame header (type ${header[3]}) and ${body.length} random bytes`, bytes: concat([header, body]) };
}

/** `frame` with 1-4 of its bytes changed (never to the same value), or its length field rewritten. */
export function mutateFrame(frame: Uint8Array, prng: Prng): { bytes: Uint8Array; how: string } {
  const bytes = frame.slice();
  if (prng.chance(0.2)) {
    const length = prng.pick([0, 1, bytes.length - frameHeaderBytes - 1, bytes.length - frameHeaderBytes + 1, prng.int(0, 0xffff_ffff)]);
    new DataView(bytes.buffer).setUint32(4, Math.max(0, length), true);
    return { bytes, how: `length field set to ${Math.max(0, length)}` };
  }
  const changes: string[] = [];
  for (let i = prng.int(1, 4); i > 0; i--) {
    const at = prng.int(0, bytes.length - 1);
    bytes[at] = bytes[at]! ^ prng.int(1, 255);
    changes.push(String(at));
  }
  return { bytes, how: `bytes ${changes.join(', ')} changed` };
}

/** A stream of `frames` with one mutated, one replayed, two swapped, or cut short. */
export function hostileStream(frames: readonly Uint8Array[], prng: Prng, name: string): FuzzCase {
  const list = [...frames];
  const pick = (): number => prng.int(0, list.length - 1);
  switch (prng.int(0, 3)) {
    case 0: {
      const index = pick();
      const { bytes, how } = mutateFrame(list[index]!, prng);
      list[index] = bytes;
      return { description: `${name}: frame ${index} of ${frames.length} mutated (${how})`, bytes: concat(list) };
    }
    case 1: {
      const index = pick();
      const at = prng.int(index + 1, list.length);
      list.splice(at, 0, list[index]!);
      return { description: `${name}: frame ${index} of ${frames.length} replayed after frame ${at - 1}`, bytes: concat(list) };
    }
    case 2: {
      const a = pick();
      const b = pick();
      [list[a], list[b]] = [list[b]!, list[a]!];
      return { description: `${name}: frames ${a} and ${b} of ${frames.length} swapped`, bytes: concat(list) };
    }
    default: {
      const whole = concat(list);
      const cut = prng.int(1, whole.length - 1);
      return { description: `${name}: cut after ${cut} of ${whole.length} bytes`, bytes: whole.subarray(0, cut) };
    }
  }
}

/** Writes `bytes` to `socket` in random pieces (a stream may be split anywhere). */
export async function writeInPieces(socket: net.Socket, bytes: Uint8Array, prng: Prng): Promise<void> {
  let offset = 0;
  while (offset < bytes.length && !socket.destroyed) {
    const size = Math.min(bytes.length - offset, prng.chance(0.3) ? prng.int(1, 16) : prng.int(1, 64 * 1024));
    const piece = bytes.subarray(offset, offset + size);
    offset += size;
    await new Promise<void>((resolve) => {
      if (!socket.write(piece)) socket.once('drain', resolve);
      else resolve();
    });
  }
}

/** Connects to a listening replica; resolves with the socket and everything it receives as frames. */
export function connect(port: number): Promise<{ socket: net.Socket; received: Message[]; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const decoder = new FrameDecoder();
    const received: Message[] = [];
    const closed = new Promise<void>((done) => socket.on('close', () => done()));
    socket.on('data', (chunk: Buffer) => {
      try {
        received.push(...decoder.push(chunk));
      } catch {
        // a replica's frames always parse; a test that sent garbage may get garbage back: ignore
      }
    });
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, received, closed }));
    socket.once('error', reject);
  });
}

/**
 * What a real backup says first: runs `understudy backup ARGS --connect` against a listener
 * of ours, takes its hello frame and hangs up (the backup then gives up on its own).
 */
export async function recordHello(backupArgs: readonly string[]): Promise<Uint8Array> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const child = spawn(process.execPath, [cliPath, 'backup', '--connect', `127.0.0.1:${port}`, '--insecure', ...backupArgs], { cwd: repoRoot, stdio: 'ignore' });
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      child.on('exit', (code) => reject(new Error(`the backup exited (${code}) before it said hello`)));
      server.on('connection', (socket) => {
        const decoder = new FrameDecoder();
        socket.on('data', (chunk: Buffer) => {
          const [hello] = decoder.push(chunk);
          if (hello === undefined) return;
          socket.destroy();
          resolve(encodeMessage(hello));
        });
      });
    });
  } finally {
    child.kill('SIGKILL');
    server.close();
  }
}

/**
 * What a real primary sends a backup that joins it: connects to `port` with a recorded
 * `hello`, acknowledges as a backup would, and keeps every frame until `epochs` entries have
 * come (or the primary said goodbye); then hangs up. Returns the frames as sent.
 */
export async function recordPrimary(port: number, hello: Uint8Array, epochs: number): Promise<Uint8Array[]> {
  const { socket, received, closed } = await connect(port);
  socket.write(hello);
  const frames: Uint8Array[] = [];
  let answered = 0;
  const deadline = performance.now() + 30_000;
  for (;;) {
    for (; answered < received.length; answered++) {
      const message = received[answered]!;
      frames.push(encodeMessage(message));
      if (message.type === 'state' && message.index === message.total - 1) socket.write(encodeMessage({ type: 'ack', epoch: message.epoch, heartbeat: 0, catchUpMs: 0 }));
      if (message.type === 'epoch') socket.write(encodeMessage({ type: 'ack', epoch: message.entry.epoch, heartbeat: 0, catchUpMs: 0 }));
      if (message.type === 'heartbeat') socket.write(encodeMessage({ type: 'ack', epoch: 0, heartbeat: message.sequence, catchUpMs: 0 }));
    }
    const entries = received.filter((message) => message.type === 'epoch').length;
    if (entries >= epochs || received.some((message) => message.type === 'goodbye' || message.type === 'reject')) break;
    if (performance.now() > deadline) throw new Error(`the primary sent ${entries} entries in 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  socket.destroy();
  await closed;
  return frames;
}
