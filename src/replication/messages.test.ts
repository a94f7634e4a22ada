/** The protocol's framing: every message round-trips, streams split anywhere, bad input is refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotWriter } from '../machine/snapshot.js';
import {
  decodeFrame, diskReadOf, diskReadValue, encodeMessage, epochEntryFixedBytes, epochEntryWireBytes, FrameDecoder, frameHeaderBytes, framePayloadBytesMax, identityFieldBytesMax,
  ProtocolError, protocolVersion, rejectReasonCharactersMax, type Message,
} from './messages.js';
import type { MachineEvent } from '../machine/environment.js';
import { requestDataBytesMax } from '../machine/devices/virtio-blk.js';
import { diskBytesMax } from '../machine/board-config.js';
import { AssertionError } from '../machine/assert.js';
import { Prng } from '../simulator/prng.js';

const samples: Message[] = [
  { type: 'hello', identity: { configKey: 'ram=134217728;disks=[]', imageDigest: 'ab'.repeat(32), optionsKey: 'epoch=100000', replicaId: 'backup-1a2b' } },
  { type: 'welcome', clusterId: 'c0ffee', primaryId: 'primary-3c4d', generation: 3, epoch: 17 },
  { type: 'reject', code: 'image', reason: 'different guest image' },
  { type: 'state', epoch: 0, index: 1, total: 3, bytes: Uint8Array.from([1, 2, 3, 250]) },
  {
    type: 'epoch',
    entry: {
      epoch: 42,
      endRetired: 4_200_000,
      stop: 'wfi',
      releasedThrough: 40,
      reads: [
        { retired: 4_100_000, kind: 'mtime', value: 123456789n },
        { retired: 4_100_007, kind: 'wall-clock-ns', value: 1_795_538_072_000_000_000n },
      ],
      events: [
        { kind: 'disk-completion', slot: 7, requestId: 9, status: 'ok', data: Uint8Array.from({ length: 512 }, (_, i) => i & 0xff) },
        { kind: 'disk-completion', slot: 7, requestId: 10, status: 'io-error' },
        { kind: 'net-link', slot: 6, up: false },
        { kind: 'net-receive', slot: 6, frame: Uint8Array.from({ length: 60 }, (_, i) => (i * 7) & 0xff) },
        { kind: 'console-input', bytes: Uint8Array.from([104, 105, 10]) },
        { kind: 'clock', mtime: 2n ** 63n + 5n },
      ],
    },
  },
  { type: 'ack', epoch: 42, heartbeat: 7, catchUpMs: 1500 },
  { type: 'heartbeat', sequence: 8, releasedThrough: 41 },
  { type: 'goodbye', status: 0 },
  { type: 'pages', pages: [{ page: 3, bytes: new Uint8Array(0) }, { page: 9, bytes: Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff) }] },
  { type: 'copied', bytes: 123_456_789 },
];

test('every message survives encoding and decoding', () => {
  for (const message of samples) assert.deepEqual(decodeFrame(encodeMessage(message)), message);
});

test('a stream split at every byte offset decodes to the same messages', () => {
  const stream = Buffer.concat(samples.map(encodeMessage));
  for (let cut = 0; cut <= stream.length; cut++) {
    const decoder = new FrameDecoder();
    const messages = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
    assert.deepEqual(messages, samples, `cut at ${cut}`);
    assert.equal(decoder.bufferedBytes, 0);
  }
});

test('a stream fed one byte at a time decodes to the same messages', () => {
  const stream = Buffer.concat(samples.map(encodeMessage));
  const decoder = new FrameDecoder();
  const messages: Message[] = [];
  for (const byte of stream) messages.push(...decoder.push(Uint8Array.of(byte)));
  assert.deepEqual(messages, samples);
});

function refusal(bytes: Uint8Array): ProtocolError {
  try {
    new FrameDecoder().push(bytes);
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
    return error;
  }
  assert.fail('the decoder accepted bad input');
}

test('a stranger on the port is refused at once, naming what it sent', () => {
  const error = refusal(Buffer.from('GET /status HTTP/1.1\r\n'));
  assert.equal(error.code, 'not-understudy');
  assert.match(error.message, /GET \/sta/);
  assert.equal(refusal(Uint8Array.of(0x55, 0x00)).code, 'not-understudy');
});

test('a frame of another protocol version is refused with both versions named', () => {
  const frame = encodeMessage(samples[5]!);
  frame[2] = protocolVersion + 1;
  const error = refusal(frame);
  assert.equal(error.code, 'version');
  assert.match(error.message, new RegExp(`version ${protocolVersion + 1}.*version ${protocolVersion}`));
  assert.equal(refusal(frame.subarray(0, 3)).code, 'version', 'the version is checked as soon as it arrives');
});

test('unknown types and oversized frames are refused', () => {
  const frame = encodeMessage(samples[5]!);
  frame[3] = 99;
  assert.equal(refusal(frame).code, 'type');
  const huge = encodeMessage(samples[7]!);
  new DataView(huge.buffer).setUint32(4, framePayloadBytesMax + 1, true);
  assert.equal(refusal(huge.subarray(0, 8)).code, 'oversized');
});

test('truncated or padded payloads are malformed, never a crash', () => {
  for (const message of samples) {
    const frame = encodeMessage(message);
    const payloadBytes = frame.length - 8;
    for (const delta of [-1, 1]) {
      if (payloadBytes + delta < 0) continue;
      const altered = new Uint8Array(frame.length + Math.max(delta, 0));
      altered.set(frame.subarray(0, Math.min(frame.length, altered.length)));
      new DataView(altered.buffer).setUint32(4, payloadBytes + delta, true);
      const body = altered.subarray(0, 8 + payloadBytes + delta);
      assert.equal(refusal(body).code, 'malformed', `${message.type} with ${delta} bytes`);
    }
  }
});

test('random garbage inside valid frames is refused or decoded, never anything else', () => {
  const prng = new Prng(2024);
  for (let round = 0; round < 3000; round++) {
    const frame = encodeMessage(prng.pick(samples));
    const flips = prng.int(1, 4);
    for (let i = 0; i < flips; i++) frame[prng.int(8, frame.length - 1)] = prng.int(0, 255);
    try {
      new FrameDecoder().push(frame);
    } catch (error) {
      assert.ok(error instanceof ProtocolError, `round ${round}: ${String(error)}`);
    }
  }
});

test('after an error the decoder stays failed', () => {
  const decoder = new FrameDecoder();
  assert.throws(() => decoder.push(Buffer.from('nope')), ProtocolError);
  assert.throws(() => decoder.push(encodeMessage(samples[5]!)), ProtocolError);
});

test('the size of an entry, counted by epochEntryWireBytes, is exactly its payload on the wire', () => {
  const prng = new Prng(77);
  for (let round = 0; round < 200; round++) {
    const reads = Array.from({ length: prng.int(0, 50) }, () => ({ retired: prng.int(0, 2 ** 40), kind: prng.pick(['mtime', 'wall-clock-ns', 'entropy'] as const), value: BigInt(prng.int(0, 2 ** 30)) }));
    const events: MachineEvent[] = Array.from({ length: prng.int(0, 6) }, (): MachineEvent => {
      switch (prng.int(0, 3)) {
        case 0: return { kind: 'clock', mtime: BigInt(prng.int(0, 2 ** 40)) };
        case 1: return { kind: 'console-input', bytes: new Uint8Array(prng.int(0, 300)) };
        case 2: return { kind: 'disk-completion', slot: prng.int(0, 7), requestId: prng.int(0, 1000), status: 'io-error' };
        default: return { kind: 'disk-completion', slot: prng.int(0, 7), requestId: prng.int(0, 1000), status: 'ok', data: new Uint8Array(prng.int(0, 5000)) };
      }
    });
    const entry = { epoch: prng.int(1, 1e9), endRetired: prng.int(0, 2 ** 50), stop: 'budget' as const, releasedThrough: 0, reads, events };
    const frame = encodeMessage({ type: 'epoch', entry });
    assert.equal(frame.length - frameHeaderBytes, epochEntryWireBytes(reads.length, events), `round ${round}`);
  }
  assert.equal(epochEntryWireBytes(0, []), epochEntryFixedBytes);
});

test('a reject quoting a huge peer field is cut short; a hello with a huge field is refused', () => {
  const reason = `different machine configuration (primary a, backup ${'x'.repeat(9_000_000)})`;
  const reject = decodeFrame(encodeMessage({ type: 'reject', code: 'config', reason }));
  assert.ok(reject.type === 'reject' && reject.reason.length < rejectReasonCharactersMax + 50 && reject.reason.endsWith(`(${reason.length} characters)`));
  const hello = encodeMessage({ type: 'hello', identity: { configKey: 'c'.repeat(identityFieldBytesMax + 1), imageDigest: 'd', optionsKey: 'o', replicaId: 'r' } });
  const error = refusal(hello);
  assert.equal(error.code, 'malformed');
  assert.match(error.message, /hello with a configuration of 4097 characters/);
});

test('a message too large for a frame is a bug of ours: an assertion, not a RangeError a guest could cause', () => {
  assert.throws(() => encodeMessage({ type: 'state', epoch: 0, index: 0, total: 1, bytes: new Uint8Array(framePayloadBytesMax) }), AssertionError);
});

test('a large frame fed in small chunks decodes in linear time', () => {
  const frame = encodeMessage({ type: 'state', epoch: 0, index: 0, total: 1, bytes: new Uint8Array(framePayloadBytesMax - 64) });
  const decoder = new FrameDecoder();
  const started = performance.now();
  let messages: Message[] = [];
  for (let offset = 0; offset < frame.length; offset += 1024) messages = [...messages, ...decoder.push(frame.subarray(offset, offset + 1024))];
  assert.equal(messages.length, 1);
  // Joining the buffer at each chunk (as the decoder once did) copies 32 GiB here: minutes, not this.
  assert.ok(performance.now() - started < 20_000, `${Math.round(performance.now() - started)} ms`);
});

test('a live copy message with a page of the wrong size, or too many pages, is malformed', () => {
  /** A frame of type `pages` (11) around a payload written by hand. */
  const pagesFrame = (write: (w: SnapshotWriter) => void): Uint8Array => {
    const writer = new SnapshotWriter();
    write(writer);
    const payload = writer.finish();
    const frame = encodeMessage({ type: 'pages', pages: [] }).subarray(0, frameHeaderBytes);
    const whole = new Uint8Array(frameHeaderBytes + payload.length);
    whole.set(frame);
    new DataView(whole.buffer).setUint32(4, payload.length, true);
    whole.set(payload, frameHeaderBytes);
    return whole;
  };
  assert.throws(() => decodeFrame(pagesFrame((w) => w.uint(1).uint(5).bytes(new Uint8Array(4095)))), /a copied page of 4095 bytes/);
  assert.throws(() => decodeFrame(pagesFrame((w) => w.uint(65))), /65 pages in one message \(at most 64\)/);
});

test("an entry's shared reads: round trip and exact size; one naming anything but a successful completion without data, in order, of some bytes, is malformed", () => {
  const completion = (requestId: number): MachineEvent => ({ kind: 'disk-completion', slot: 7, requestId, status: 'ok' });
  const events: MachineEvent[] = [completion(1), { kind: 'clock', mtime: 5n }, completion(2), { kind: 'disk-completion', slot: 7, requestId: 3, status: 'io-error' }];
  const entry = { epoch: 9, endRetired: 1000, stop: 'budget' as const, releasedThrough: 8, reads: [], events, sharedReads: [{ event: 0, offsetBytes: 4096, lengthBytes: 8192 }, { event: 2, offsetBytes: 0, lengthBytes: 512 }] };
  const frame = encodeMessage({ type: 'epoch', entry });
  assert.equal(frame.length - frameHeaderBytes, epochEntryWireBytes(0, events, 2));
  assert.deepEqual(decodeFrame(frame), { type: 'epoch', entry });
  const plain = { epoch: entry.epoch, endRetired: entry.endRetired, stop: entry.stop, releasedThrough: entry.releasedThrough, reads: entry.reads, events };
  assert.deepEqual(decodeFrame(encodeMessage({ type: 'epoch', entry: plain })), { type: 'epoch', entry: plain }, 'none: no field');
  const refused = (sharedReads: { event: number; offsetBytes: number; lengthBytes: number }[], withEvents = events): string => refusal(encodeMessage({ type: 'epoch', entry: { ...entry, events: withEvents, sharedReads } })).message;
  assert.match(refused([{ event: 1, offsetBytes: 0, lengthBytes: 512 }]), /names event 1, not a successful completion/);
  assert.match(refused([{ event: 3, offsetBytes: 0, lengthBytes: 512 }]), /names event 3/);
  assert.match(refused([{ event: 4, offsetBytes: 0, lengthBytes: 512 }]), /names event 4/);
  assert.match(refused([{ event: 2, offsetBytes: 0, lengthBytes: 512 }, { event: 0, offsetBytes: 0, lengthBytes: 512 }]), /in order/);
  assert.match(refused([{ event: 0, offsetBytes: 0, lengthBytes: 0 }]), /shared read of 0 bytes/);
  assert.match(refused([{ event: 0, offsetBytes: 0, lengthBytes: 512 }], [{ ...completion(1), data: new Uint8Array(512) } as MachineEvent]), /without data/);
  assert.match(refused(Array.from({ length: 5 }, (_, event) => ({ event, offsetBytes: 0, lengthBytes: 512 }))), /claims 5 shared reads for 4 events/);
});

test('a disk read answered at once travels as a reading: its sectors and whether the primary answered, in one value; one of no bytes, or more than a request moves, is malformed', () => {
  const request = { op: 'read' as const, slot: 2, requestId: 77, offsetBytes: diskBytesMax - requestDataBytesMax, lengthBytes: requestDataBytesMax };
  for (const answered of [true, false]) {
    assert.deepEqual(diskReadOf(diskReadValue(request, answered)), { slot: 2, offsetBytes: request.offsetBytes, lengthBytes: request.lengthBytes, answered });
  }
  const reads = [{ retired: 12, kind: 'disk-read' as const, value: diskReadValue(request, true) }, { retired: 12, kind: 'mtime' as const, value: 9n }];
  const entry = { epoch: 3, endRetired: 40, stop: 'budget' as const, releasedThrough: 2, reads, events: [] };
  const frame = encodeMessage({ type: 'epoch', entry });
  assert.equal(frame.length - frameHeaderBytes, epochEntryWireBytes(2, []));
  assert.deepEqual(decodeFrame(frame), { type: 'epoch', entry });
  const withValue = (value: bigint): Uint8Array => encodeMessage({ type: 'epoch', entry: { ...entry, reads: [{ retired: 12, kind: 'disk-read', value }] } });
  assert.match(refusal(withValue(diskReadValue({ ...request, lengthBytes: 0 }, true))).message, /a disk read at once of 0 bytes/);
  assert.match(refusal(withValue(diskReadValue({ ...request, lengthBytes: requestDataBytesMax + 512 }, false))).message, /of 1049088 bytes/);
});
