/**
 * The replication protocol's messages and their framing on a byte stream.
 *
 * Frame: magic "US" (2 bytes), protocol version (1), message type (1), payload length (u32,
 * little-endian), payload. Payloads use the snapshot encoding (src/machine/snapshot.ts). The
 * decoder accepts input split at any byte, and rejects a frame that is not ours, of another
 * version, of an unknown type, oversized, or whose payload does not parse, with a
 * {@link ProtocolError} naming the cause. Nothing a peer sends can throw anything else.
 */
import { SnapshotError, SnapshotReader, SnapshotWriter } from '../machine/snapshot.js';
import type { DiskCompletionStatus, DiskReadRequest, EnvironmentReadKind, MachineEvent } from '../machine/environment.js';
import type { StopReason } from '../machine/cpu/cpu.js';
import { requestDataBytesMax, sectorBytes } from '../machine/devices/virtio-blk.js';
import { assert } from '../machine/assert.js';
import { hartFieldNames, type MachineDigest } from '../machine/state-digest.js';
import { pageBytes, ramBytesMax } from '../machine/memory/ram.js';

/**
 * 8: readings of kind 'entropy' (a Linux boot's device-tree seed), and the board's snapshot
 * carries the seed still to be filled. 7: state digests hash pages and parts with
 * `wordsHash`, not SHA-256 (the values differ). 6: disk reads answered at once (a reading of
 * kind 'disk-read', `diskReadValue`). 5: shared reads, write-back. 4: t backups: a hello
 * names the replica (`replicaId`), a welcome its primary (`primaryId`), for the arbiter's
 * membership records. 3: live state copy (pages, copied), the backup's catch-up time in acks.
 * 2: bounded entries with deferred acknowledgements, state digests, divergence reports.
 */
export const protocolVersion = 8;
const frameMagic = [0x55, 0x53]; // "US"
export const frameHeaderBytes = 8;
/** Largest payload: a state chunk or an epoch entry with disk data, with room to spare. */
export const framePayloadBytesMax = 8 * 1024 * 1024;
/** Size of the chunks a machine snapshot travels in. */
export const stateChunkBytes = 1024 * 1024;
/**
 * An epoch entry's payload never exceeds this, whatever the guest does: the primary ends an
 * epoch early, at an exact instruction count, before its environment reads could outgrow the
 * room its events leave (src/replication/entry-budget.ts).
 */
export const epochEntryBytesMax = framePayloadBytesMax;
/** RAM pages in one `pages` message of a live copy, at most. */
export const copyPagesPerMessageMax = 64;
/** A reject's reason is cut to this many characters (it may quote what a peer sent). */
export const rejectReasonCharactersMax = 1000;
/** A hello's identity fields are at most this long (ours are far shorter). */
export const identityFieldBytesMax = 4096;

export type ProtocolErrorCode = 'not-understudy' | 'version' | 'type' | 'oversized' | 'malformed' | 'unauthorized';

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** P0: one environment read, at an exact instruction count. */
export interface EnvironmentReading {
  readonly retired: number;
  readonly kind: ReadingKind;
  readonly value: bigint;
}

/**
 * What a reading reads: an environment value, or a disk read the primary was asked to answer
 * at once (`EnvironmentPort.readDisk`), its value `diskReadValue`: the sectors asked for and
 * whether it answered. The data does not travel: the backup reads those sectors from the shared
 * disk when the entry arrives, before it acknowledges it, as for a shared read (below), and
 * for the same reasons nothing can have changed them meanwhile: the primary answers only with
 * no write to them held, and the machine asks only with none among its outputs not yet taken.
 */
export type ReadingKind = EnvironmentReadKind | 'disk-read';

/** The value of a 'disk-read' reading: offset in sectors, length in sectors, slot, answered. */
export function diskReadValue(request: DiskReadRequest, answered: boolean): bigint {
  // The board's bounds (diskBytesMax, requestDataBytesMax, virtio slots) keep every field in its bits.
  assert(request.offsetBytes / sectorBytes < 2 ** 32 && request.lengthBytes / sectorBytes < 2 ** 23 && request.slot < 256, () => `a disk read of ${request.lengthBytes} bytes at ${request.offsetBytes} on slot ${request.slot} out of range`);
  return (
    (BigInt(request.offsetBytes / sectorBytes) << 32n) |
    (BigInt(request.lengthBytes / sectorBytes) << 9n) |
    (BigInt(request.slot) << 1n) |
    (answered ? 1n : 0n)
  );
}

/** A 'disk-read' reading's value taken apart (`diskReadValue`). */
export function diskReadOf(value: bigint): { slot: number; offsetBytes: number; lengthBytes: number; answered: boolean } {
  return {
    offsetBytes: Number(value >> 32n) * sectorBytes,
    lengthBytes: Number((value >> 9n) & 0x7fffffn) * sectorBytes,
    slot: Number((value >> 1n) & 0xffn),
    answered: (value & 1n) === 1n,
  };
}

/** The data bytes of the disk reads answered at once among `readings` (a backup holds them with the entry). */
export function diskReadBytes(readings: readonly EnvironmentReading[]): number {
  let bytes = 0;
  for (const reading of readings) {
    if (reading.kind !== 'disk-read') continue;
    const read = diskReadOf(reading.value);
    if (read.answered) bytes += read.lengthBytes;
  }
  return bytes;
}

/** Everything the backup needs to execute epoch `epoch` exactly as the primary did. */
export interface EpochEntry {
  readonly epoch: number;
  /** The machine's instruction count at the end of the epoch. */
  readonly endRetired: number;
  readonly stop: StopReason;
  readonly reads: readonly EnvironmentReading[];
  /** Delivered at the boundary after the epoch, in this order (P1/P2). */
  readonly events: readonly MachineEvent[];
  /** The primary has released the outputs of every epoch up to this one. */
  readonly releasedThrough: number;
  /** Reads whose data the backup takes from the shared disk itself (their completions travel without it). */
  readonly sharedReads?: readonly SharedRead[];
}

/**
 * A disk read that completed at the boundary of the epoch that issued it, whose data the
 * backup reads from the shared disk itself when the entry arrives, before it acknowledges it,
 * instead of from the log (VMware FT's alternative for shared disks). Nothing can have
 * changed those sectors since the primary read them: the primary's reads go early only with
 * no write to them held (`issueReads`), and the writes of this epoch and later reach the
 * disk only after the acknowledgement. `event` is the index of its completion in the entry's
 * events, where it travels without data.
 */
export interface SharedRead {
  readonly event: number;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/** What a backup says about itself; the primary compares each part with its own. */
export interface ReplicaIdentity {
  /** The machine configuration (RAM, disks). */
  readonly configKey: string;
  /** SHA-256 of the guest image(s). */
  readonly imageDigest: string;
  /** Protocol options both sides must share. */
  readonly optionsKey: string;
  /**
   * Names this replica (unique in its cluster; no spaces): the arbiter's records list the
   * backups a primary keeps by these names. Not compared: every replica has its own.
   */
  readonly replicaId: string;
}

export type RejectCode = 'version' | 'config' | 'image' | 'options' | 'busy' | 'malformed' | 'unauthorized';

export type Message =
  | { readonly type: 'hello'; readonly identity: ReplicaIdentity }
  /** `primaryId`: the primary's replicaId, the holder a follower looks for in the arbiter's records. */
  | { readonly type: 'welcome'; readonly clusterId: string; readonly primaryId: string; readonly generation: number; readonly epoch: number }
  | { readonly type: 'reject'; readonly code: RejectCode; readonly reason: string }
  | { readonly type: 'state'; readonly epoch: number; readonly index: number; readonly total: number; readonly bytes: Uint8Array }
  /**
   * A live copy, while the guest runs on: RAM pages as they were when sent (empty bytes for a
   * page of zeros); pages written later come again, or in the final state.
   */
  | { readonly type: 'pages'; readonly pages: readonly { readonly page: number; readonly bytes: Uint8Array }[] }
  /** From a joining backup: the bytes of `pages` messages it has received (the copy's flow control). */
  | { readonly type: 'copied'; readonly bytes: number }
  | { readonly type: 'epoch'; readonly entry: EpochEntry }
  /**
   * Everything through `epoch` received (P4), and heartbeats through `heartbeat`; `catchUpMs`:
   * how long the backup expects to take replaying what it holds (the primary's lag control).
   */
  | { readonly type: 'ack'; readonly epoch: number; readonly heartbeat: number; readonly catchUpMs: number }
  /** Keeps the link alive and the lease renewed; also says how far outputs have been released. */
  | { readonly type: 'heartbeat'; readonly sequence: number; readonly releasedThrough: number }
  /** The guest has finished (after the last epoch sent); `status` is its power-off status, 0 if it ended otherwise. */
  | { readonly type: 'goodbye'; readonly status: number }
  /** The primary's machine state at the end of `epoch` (after its boundary events), for the backup to compare. */
  | { readonly type: 'digest'; readonly epoch: number; readonly digest: MachineDigest }
  /** From a backup that stops following: its execution left the primary's at `epoch`, for `reason`. */
  | { readonly type: 'divergence'; readonly epoch: number; readonly reason: string };

const typeCodes = { hello: 1, welcome: 2, reject: 3, state: 4, epoch: 5, ack: 6, heartbeat: 7, goodbye: 8, digest: 9, divergence: 10, pages: 11, copied: 12 } as const;
const typeNames = new Map<number, Message['type']>(Object.entries(typeCodes).map(([name, code]) => [code, name as Message['type']]));
const readKinds: readonly ReadingKind[] = ['mtime', 'wall-clock-ns', 'disk-read', 'entropy'];
/** Wire codes of the machine's stop reasons (index = code); the type checks that every reason has one. */
const stopKinds = ['budget', 'wfi', 'halt'] as const satisfies readonly StopReason[];
const _everyStopReasonCoded: StopReason extends (typeof stopKinds)[number] ? true : never = true;
void _everyStopReasonCoded;
const rejectCodes: readonly RejectCode[] = ['version', 'config', 'image', 'options', 'busy', 'malformed', 'unauthorized'];
const completionStatuses: readonly DiskCompletionStatus[] = ['ok', 'io-error'];

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Frames a message. Every message fits a frame by construction: entries are kept within
 * {@link epochEntryBytesMax} by the primary, state travels in chunks, a reject's reason is
 * cut short here, and the other messages are small and of our own making. A message too
 * large is therefore a bug of ours, never something a guest or a peer can cause.
 */
/** One writer for every message: a replica encodes several per epoch (its buffer is kept). */
const messageWriter = new SnapshotWriter();

export function encodeMessage(message: Message): Uint8Array {
  appendMessage(messageWriter.reset(), message);
  return messageWriter.finish();
}

/** Frames a message after what `writer` holds (frames sent together leave in one write); returns the frame's bytes. */
export function appendMessage(writer: SnapshotWriter, message: Message): number {
  const start = writer.size;
  // The header, with the payload's length filled in at the end.
  writer.u8(frameMagic[0]!).u8(frameMagic[1]!).u8(protocolVersion).u8(typeCodes[message.type]).u32(0);
  writePayload(writer, message);
  const payloadBytes = writer.size - start - frameHeaderBytes;
  assert(payloadBytes <= framePayloadBytesMax, () => `${message.type} message of ${payloadBytes} bytes exceeds the frame limit of ${framePayloadBytesMax}`);
  writer.patchU32(start + 4, payloadBytes);
  return frameHeaderBytes + payloadBytes;
}

function writePayload(w: SnapshotWriter, message: Message): void {
  switch (message.type) {
    case 'hello':
      w.string(message.identity.configKey).string(message.identity.imageDigest).string(message.identity.optionsKey).string(message.identity.replicaId);
      return;
    case 'welcome':
      w.string(message.clusterId).string(message.primaryId).uint(message.generation).uint(message.epoch);
      return;
    case 'reject':
      w.u8(rejectCodes.indexOf(message.code)).string(shortReason(message.reason));
      return;
    case 'state':
      w.uint(message.epoch).uint(message.index).uint(message.total).bytes(message.bytes);
      return;
    case 'epoch':
      writeEntry(w, message.entry);
      return;
    case 'ack':
      w.uint(message.epoch).uint(message.heartbeat).uint(message.catchUpMs);
      return;
    case 'heartbeat':
      w.uint(message.sequence).uint(message.releasedThrough);
      return;
    case 'goodbye':
      w.u32(message.status);
      return;
    case 'digest':
      w.uint(message.epoch);
      writeDigest(w, message.digest);
      return;
    case 'divergence':
      w.uint(message.epoch).string(shortReason(message.reason));
      return;
    case 'pages':
      assert(message.pages.length <= copyPagesPerMessageMax, () => `${message.pages.length} pages in one message`);
      w.uint(message.pages.length);
      for (const { page, bytes } of message.pages) w.uint(page).bytes(bytes);
      return;
    case 'copied':
      w.uint(message.bytes);
      return;
  }
}

function writeDigest(w: SnapshotWriter, digest: MachineDigest): void {
  w.uint(digest.hart.length);
  for (const value of digest.hart) w.u64(value);
  w.uint(digest.parts.length);
  for (const part of digest.parts) w.string(part.name).u64(part.hash);
  w.u64(digest.ramHash);
  w.uint(digest.pages.length);
  for (const { page, hash } of digest.pages) w.u32(page).u64(hash);
}

/** A reason as sent: a long one (quoting a peer's huge field, say) is cut short. */
function shortReason(reason: string): string {
  return reason.length <= rejectReasonCharactersMax ? reason : `${reason.slice(0, rejectReasonCharactersMax)}... (${reason.length} characters)`;
}

function writeEntry(w: SnapshotWriter, entry: EpochEntry): void {
  w.uint(entry.epoch).uint(entry.endRetired).u8(stopKinds.indexOf(entry.stop)).uint(entry.releasedThrough);
  w.uint(entry.reads.length);
  for (const reading of entry.reads) w.uint(reading.retired).u8(readKinds.indexOf(reading.kind)).u64(reading.value);
  w.uint(entry.events.length);
  for (const event of entry.events) writeEvent(w, event);
  const shared = entry.sharedReads ?? [];
  w.uint(shared.length);
  for (const read of shared) w.uint(read.event).uint(read.offsetBytes).uint(read.lengthBytes);
}

function writeEvent(w: SnapshotWriter, event: MachineEvent): void {
  switch (event.kind) {
    case 'clock':
      w.u8(0).u64(event.mtime);
      return;
    case 'console-input':
      w.u8(1).bytes(event.bytes);
      return;
    case 'disk-completion':
      w.u8(2).u8(event.slot).uint(event.requestId).u8(completionStatuses.indexOf(event.status)).bool(event.data !== undefined);
      if (event.data !== undefined) w.bytes(event.data);
      return;
    case 'net-receive':
      w.u8(3).u8(event.slot).bytes(event.frame);
      return;
    case 'net-link':
      w.u8(4).u8(event.slot).bool(event.up);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Sizes on the wire (the budget of an epoch entry; exact, as the tests check against the encoder)

/** An integer field (uint, u64) and a byte-array length prefix. */
const wordBytes = 8;
/** One environment reading: retired (uint), kind (u8), value (u64). */
export const readingWireBytes = wordBytes + 1 + wordBytes;
/** An entry without reads, events or shared reads: epoch, endRetired, stop, releasedThrough, and the three counts. */
export const epochEntryFixedBytes = 5 * wordBytes + 1 + wordBytes;
/** One shared read: the event's index, the offset, the length. */
export const sharedReadWireBytes = 3 * wordBytes;
/** The smallest event (a clock event): decoders bound claimed counts with it. */
const eventWireBytesMin = 1 + wordBytes;

/**
 * Bytes one event takes in an entry. Every kind of event is counted here, and only here: a
 * new kind does not compile until it is.
 */
export function eventWireBytes(event: MachineEvent): number {
  switch (event.kind) {
    case 'clock':
      return 1 + wordBytes;
    case 'console-input':
      return 1 + wordBytes + event.bytes.length;
    case 'disk-completion':
      return 1 + 1 + wordBytes + 1 + 1 + (event.data === undefined ? 0 : wordBytes + event.data.length);
    case 'net-receive':
      return 1 + 1 + wordBytes + event.frame.length;
    case 'net-link':
      return 1 + 1 + 1;
  }
}

/** What a shared read's data would add to its completion in the entry (the entry's budget counts it). */
export function sharedReadDataWireBytes(read: SharedRead): number {
  return wordBytes + read.lengthBytes;
}

/** The payload bytes of an entry with `readCount` readings, `events` (as sent) and `sharedReads` shared reads: the one measure of an entry's size. */
export function epochEntryWireBytes(readCount: number, events: readonly MachineEvent[], sharedReads = 0): number {
  let bytes = epochEntryFixedBytes + readCount * readingWireBytes + sharedReads * sharedReadWireBytes;
  for (const event of events) bytes += eventWireBytes(event);
  return bytes;
}

/** The largest disk completion (a read of the most data one virtio-blk request may move). */
export const diskCompletionWireBytesMax = eventWireBytes({ kind: 'disk-completion', slot: 0, requestId: 0, status: 'ok', data: new Uint8Array(requestDataBytesMax) });

// ---------------------------------------------------------------------------------------------
// Decoding

function readPayload(type: Message['type'], r: SnapshotReader): Message {
  switch (type) {
    case 'hello':
      return {
        type,
        identity: { configKey: identityField(r, 'configuration'), imageDigest: identityField(r, 'image digest'), optionsKey: identityField(r, 'options'), replicaId: identityField(r, 'replica id') },
      };
    case 'welcome':
      return { type, clusterId: r.string(), primaryId: identityField(r, 'primary id'), generation: r.uint(), epoch: r.uint() };
    case 'reject': {
      const code = rejectCodes[r.u8()];
      if (code === undefined) throw new ProtocolError('malformed', 'reject with an unknown code');
      return { type, code, reason: r.string() };
    }
    case 'state': {
      const epoch = r.uint();
      const index = r.uint();
      const total = r.uint();
      if (total === 0 || index >= total) throw new ProtocolError('malformed', `state chunk ${index} of ${total}`);
      return { type, epoch, index, total, bytes: r.bytes() };
    }
    case 'epoch':
      return { type, entry: readEntry(r) };
    case 'ack':
      return { type, epoch: r.uint(), heartbeat: r.uint(), catchUpMs: r.uint() };
    case 'heartbeat':
      return { type, sequence: r.uint(), releasedThrough: r.uint() };
    case 'goodbye':
      return { type, status: r.u32() };
    case 'digest':
      return { type, epoch: r.uint(), digest: readDigest(r) };
    case 'divergence':
      return { type, epoch: r.uint(), reason: r.string() };
    case 'pages': {
      const count = r.uint();
      if (count > copyPagesPerMessageMax) throw new ProtocolError('malformed', `${count} pages in one message (at most ${copyPagesPerMessageMax})`);
      const pages: { page: number; bytes: Uint8Array }[] = [];
      for (let i = 0; i < count; i++) {
        const page = r.uint();
        const bytes = r.bytes();
        if (bytes.length !== 0 && bytes.length !== pageBytes) throw new ProtocolError('malformed', `a copied page of ${bytes.length} bytes`);
        pages.push({ page, bytes });
      }
      return { type, pages };
    }
    case 'copied':
      return { type, bytes: r.uint() };
  }
}

/** Device names are short; more parts than any board has, or longer names, are refused. */
const digestPartsMax = 64;
const digestPartNameBytesMax = 64;
/** A digest page: its number (u32) and hash (u64). */
const digestPageWireBytes = 4 + wordBytes;
// A digest listing every page of the largest RAM still fits a frame.
assert(
  3 * wordBytes + hartFieldNames.length * wordBytes + wordBytes + digestPartsMax * (2 * wordBytes + digestPartNameBytesMax) + wordBytes + (ramBytesMax / pageBytes) * digestPageWireBytes <= framePayloadBytesMax,
  'a digest of the largest RAM does not fit a frame',
);

function readDigest(r: SnapshotReader): MachineDigest {
  const hartCount = r.uint();
  if (hartCount !== hartFieldNames.length) throw new ProtocolError('malformed', `digest with ${hartCount} hart values (expected ${hartFieldNames.length})`);
  const hart = Array.from({ length: hartCount }, () => r.u64());
  const partCount = r.uint();
  if (partCount > digestPartsMax) throw new ProtocolError('malformed', `digest with ${partCount} parts`);
  const parts = Array.from({ length: partCount }, () => {
    const name = r.string();
    if (name.length > digestPartNameBytesMax) throw new ProtocolError('malformed', `digest part named with ${name.length} characters`);
    return { name, hash: r.u64() };
  });
  const ramHash = r.u64();
  const pageCount = r.uint();
  if (pageCount > r.remainingBytes / digestPageWireBytes) throw new ProtocolError('malformed', `digest claims ${pageCount} pages`);
  const pages = Array.from({ length: pageCount }, () => ({ page: r.u32(), hash: r.u64() }));
  return { hart, parts, ramHash, pages };
}

/** A hello's field: short, or the hello is refused (a reason quoting it must stay readable). */
function identityField(r: SnapshotReader, what: string): string {
  const text = r.string();
  if (text.length > identityFieldBytesMax) throw new ProtocolError('malformed', `hello with a ${what} of ${text.length} characters (at most ${identityFieldBytesMax})`);
  return text;
}

function readEntry(r: SnapshotReader): EpochEntry {
  const epoch = r.uint();
  const endRetired = r.uint();
  const stop = stopKinds[r.u8()];
  if (stop === undefined) throw new ProtocolError('malformed', 'epoch entry with an unknown stop reason');
  const releasedThrough = r.uint();
  const readCount = r.uint();
  if (readCount > r.remainingBytes / readingWireBytes) throw new ProtocolError('malformed', `epoch entry claims ${readCount} reads`);
  const reads: EnvironmentReading[] = [];
  for (let i = 0; i < readCount; i++) {
    const retired = r.uint();
    const kind = readKinds[r.u8()];
    if (kind === undefined) throw new ProtocolError('malformed', 'environment read of an unknown kind');
    const value = r.u64();
    if (kind === 'disk-read') {
      const read = diskReadOf(value);
      if (read.lengthBytes === 0 || read.lengthBytes > requestDataBytesMax) throw new ProtocolError('malformed', `a disk read at once of ${read.lengthBytes} bytes`);
    }
    reads.push({ retired, kind, value });
  }
  const eventCount = r.uint();
  if (eventCount > r.remainingBytes / eventWireBytesMin) throw new ProtocolError('malformed', `epoch entry claims ${eventCount} events`);
  const events: MachineEvent[] = [];
  for (let i = 0; i < eventCount; i++) events.push(readEvent(r));
  const sharedCount = r.uint();
  if (sharedCount > events.length) throw new ProtocolError('malformed', `epoch entry claims ${sharedCount} shared reads for ${events.length} events`);
  const sharedReads: SharedRead[] = [];
  for (let i = 0; i < sharedCount; i++) {
    const read = { event: r.uint(), offsetBytes: r.uint(), lengthBytes: r.uint() };
    const event = events[read.event];
    if (event?.kind !== 'disk-completion' || event.status !== 'ok' || event.data !== undefined || (i > 0 && read.event <= sharedReads[i - 1]!.event)) {
      throw new ProtocolError('malformed', `shared read ${i} names event ${read.event}, not a successful completion without data (in order)`);
    }
    if (read.lengthBytes === 0 || read.lengthBytes > requestDataBytesMax) throw new ProtocolError('malformed', `shared read of ${read.lengthBytes} bytes`);
    sharedReads.push(read);
  }
  return sharedCount === 0 ? { epoch, endRetired, stop, reads, events, releasedThrough } : { epoch, endRetired, stop, reads, events, releasedThrough, sharedReads };
}

function readEvent(r: SnapshotReader): MachineEvent {
  const kind = r.u8();
  if (kind === 0) return { kind: 'clock', mtime: r.u64() };
  if (kind === 1) return { kind: 'console-input', bytes: r.bytes() };
  if (kind === 2) {
    const slot = r.u8();
    const requestId = r.uint();
    const status = completionStatuses[r.u8()];
    if (status === undefined) throw new ProtocolError('malformed', 'disk completion with an unknown status');
    const hasData = r.bool();
    return hasData ? { kind: 'disk-completion', slot, requestId, status, data: r.bytes() } : { kind: 'disk-completion', slot, requestId, status };
  }
  if (kind === 3) return { kind: 'net-receive', slot: r.u8(), frame: r.bytes() };
  if (kind === 4) return { kind: 'net-link', slot: r.u8(), up: r.bool() };
  throw new ProtocolError('malformed', `unknown event kind ${kind}`);
}

/**
 * Turns a byte stream into messages. Feed it chunks as they come; it returns the complete
 * messages and keeps the rest. After an error the stream is unusable (close the connection).
 */
export class FrameDecoder {
  /** Bytes received and not yet decoded, as they came (joined only once a frame is whole, so a large frame costs linear time). */
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private failed: ProtocolError | undefined;

  push(chunk: Uint8Array): Message[] {
    return this.pushFrames(chunk).map((frame) => frame.message);
  }

  /** As `push`, with each message's size on the wire. */
  pushFrames(chunk: Uint8Array): { message: Message; wireBytes: number }[] {
    if (this.failed !== undefined) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(new Uint8Array(chunk)); // a copy, as a plain Uint8Array: the caller may reuse its buffer
      this.buffered += chunk.length;
    }
    const messages: { message: Message; wireBytes: number }[] = [];
    try {
      while (this.buffered >= frameHeaderBytes) {
        const length = checkHeader(this.peek(frameHeaderBytes), 0);
        if (this.buffered < frameHeaderBytes + length) break;
        const frame = this.take(frameHeaderBytes + length);
        const type = typeNames.get(frame[3]!)!;
        messages.push({ message: decodePayload(type, frame.subarray(frameHeaderBytes)), wireBytes: frame.length });
      }
      // A partial header is checked as far as it goes, so a stranger is refused at once.
      if (this.buffered > 0 && this.buffered < frameHeaderBytes) checkPartialHeader(this.peek(this.buffered), 0);
    } catch (error) {
      this.failed = error instanceof ProtocolError ? error : new ProtocolError('malformed', String(error));
      this.chunks = [];
      throw this.failed;
    }
    return messages;
  }

  /** The first `count` buffered bytes (joining the chunks they span into the first). */
  private peek(count: number): Uint8Array {
    let first = this.chunks[0]!;
    if (first.length < count) {
      const joined = new Uint8Array(Math.min(this.buffered, Math.max(count, first.length)));
      let filled = 0;
      while (filled < count) {
        const next = this.chunks.shift()!;
        const take = Math.min(next.length, joined.length - filled);
        joined.set(next.subarray(0, take), filled);
        filled += take;
        if (take < next.length) this.chunks.unshift(next.subarray(take));
      }
      this.chunks.unshift(joined);
      first = joined;
    }
    return first.subarray(0, count);
  }

  /** Removes and returns the first `count` buffered bytes. */
  private take(count: number): Uint8Array {
    const bytes = this.peek(count);
    const first = this.chunks[0]!;
    if (first.length === count) this.chunks.shift();
    else this.chunks[0] = first.subarray(count);
    this.buffered -= count;
    return bytes;
  }

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }
}

function checkPartialHeader(bytes: Uint8Array, offset: number): void {
  for (let i = 0; i < 2 && offset + i < bytes.length; i++) {
    if (bytes[offset + i] !== frameMagic[i]) throw notUnderstudy(bytes, offset);
  }
  if (offset + 2 < bytes.length && bytes[offset + 2] !== protocolVersion) throw wrongVersion(bytes[offset + 2]!);
}

function checkHeader(bytes: Uint8Array, offset: number): number {
  checkPartialHeader(bytes, offset);
  const type = bytes[offset + 3]!;
  if (!typeNames.has(type)) throw new ProtocolError('type', `unknown message type ${type}`);
  const length = new DataView(bytes.buffer, bytes.byteOffset + offset + 4, 4).getUint32(0, true);
  if (length > framePayloadBytesMax) throw new ProtocolError('oversized', `frame of ${length} bytes exceeds the limit of ${framePayloadBytesMax}`);
  return length;
}

function notUnderstudy(bytes: Uint8Array, offset: number): ProtocolError {
  // A TLS record (handshake 0x16 or alert 0x15, version 3.x): the peer encrypts and this side does not.
  if ((bytes[offset] === 0x16 || bytes[offset] === 0x15) && bytes[offset + 1] === 0x03) {
    return new ProtocolError('not-understudy', 'the peer speaks TLS and this replica does not (give both --tls DIR)');
  }
  const start = new TextDecoder('latin1').decode(bytes.subarray(offset, offset + 8)).replace(/[^\x20-\x7e]/g, '.');
  return new ProtocolError('not-understudy', `the peer does not speak the understudy protocol (it sent "${start}")`);
}

function wrongVersion(version: number): ProtocolError {
  return new ProtocolError('version', `the peer speaks protocol version ${version}, this is version ${protocolVersion}`);
}

function decodePayload(type: Message['type'], payload: Uint8Array): Message {
  const reader = new SnapshotReader(payload);
  try {
    const message = readPayload(type, reader);
    reader.expectEnd();
    return message;
  } catch (error) {
    if (error instanceof ProtocolError) throw error;
    if (error instanceof SnapshotError) throw new ProtocolError('malformed', `malformed ${type} message: ${error.message}`);
    throw error;
  }
}

/** Decodes exactly one whole frame (for tests and tools). */
export function decodeFrame(frame: Uint8Array): Message {
  const messages = new FrameDecoder().push(frame);
  if (messages.length !== 1) throw new ProtocolError('malformed', `expected one whole frame, found ${messages.length}`);
  return messages[0]!;
}
