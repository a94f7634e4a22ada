/**
 * The virtio block device (virtio 1.2, section 5.2) on a virtio-mmio slot.
 *
 * This device is a determinism boundary: it never touches the host. When the driver notifies
 * the request queue, the device walks the available ring, checks each descriptor chain, and
 * turns every valid read, write or flush into one `disk-request` output (a write carries a copy
 * of the guest's bytes taken at that moment). The host performs it whenever it likes; its answer
 * comes back through {@link VirtioBlockDevice.complete}, which the machine calls between two
 * instructions, in any order. Only then does the guest see data, a status byte, a used-ring
 * element and an interrupt. Requests the device can answer from its own state (GET_ID, bad
 * sectors, writes to a read-only disk, unsupported types) complete at once, with no output.
 * A write-back disk (`writeBack`, a volatile write cache) answers a write at once too, and
 * hands the host the write marked `completed`: no answer comes back for it.
 *
 * Requests in flight are part of the device state: each keeps the guest RAM ranges its answer
 * will be written to, so that a completion after a snapshot restore lands exactly where it would
 * have without one.
 */
import { environmentReadsPerInstructionMax, type DiskCompletionStatus, type DiskReadRequest, type DiskRequest, type OutputSink } from '../environment.js';
import type { Ram } from '../memory/ram.js';
import { SnapshotError, type SnapshotReader, type SnapshotWriter } from '../snapshot.js';
import type { AccessWidth, InterruptLine, MmioDevice } from './device.js';
import { assert } from '../assert.js';
import {
  DeviceStatus, VirtioFeature, VirtioMmioTransport, featureWords, rangesBytes, readConfigSpace, sliceSegments, virtioMmioWindowBytes,
  type DescriptorChain, type RamRange, type VirtioBackend,
} from './virtio-mmio.js';

// The board takes both kinds of virtio slot from here.
export { VirtioEmptySlot } from './virtio-mmio.js';

/** 5.2.1: "Device ID 2". */
export const virtioBlockDeviceId = 2;
/** 5.2.6: the protocol's unit is always the 512-byte sector, whatever blk_size says. */
export const sectorBytes = 512;
/** QueueNumMax of the request queue: Linux sizes its ring from it. */
export const blockQueueSizeEntries = 256;
/** seg_max: data descriptors per request that the driver may use (header and status come on top). */
export const segmentsPerRequestMax = 128;
/** size_max: bytes per data descriptor (Linux requires at least a 4 KiB page). */
export const segmentBytesMax = 8 * 1024;
/**
 * The most data one request may move: seg_max * size_max, so a driver that honours the two fields
 * (Linux does) never exceeds it. A larger request is answered with IOERR. 1 MiB keeps the copy a
 * write output carries modest (at most a queue's worth, 256 MiB, can wait for the host) while
 * staying near Linux's default max_sectors_kb of 1280.
 */
export const requestDataBytesMax = segmentsPerRequestMax * segmentBytesMax;
/** 5.2.6: "The device ID string is a NUL-padded ASCII string up to 20 bytes long." */
export const deviceIdBytes = 20;

const requestHeaderBytes = 16;
const statusByteBytes = 1;
const snapshotFormatVersion = 1;
/** Data ranges of one read in flight: one per descriptor, direct or indirect. */
const rangesPerRequestMax = 2 * blockQueueSizeEntries;

assert(requestDataBytesMax % sectorBytes === 0, 'requestDataBytesMax must be whole sectors');
assert(segmentsPerRequestMax + 2 <= blockQueueSizeEntries, 'a request of seg_max data descriptors, a header and a status must fit the queue without indirect descriptors');
assert(segmentBytesMax >= 4096, 'Linux rejects a size_max below its page size');

/** Block device feature bits (5.2.3). */
export const BlockFeature = { SIZE_MAX: 1, SEG_MAX: 2, RO: 5, BLK_SIZE: 6, FLUSH: 9 } as const;
/** Request types (5.2.6). */
export const BlockRequestType = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8 } as const;
/** Status byte values (5.2.6). */
export const BlockStatus = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;

/** Offsets in struct virtio_blk_config (5.2.4). */
const BlockConfigField = { capacity: 0x00, sizeMax: 0x08, segMax: 0x0c, blkSize: 0x14 } as const;
/** The structure through num_queues; later fields belong to features not offered and read as zero. */
const configSpaceBytes = 0x24;

type RequestOp = 'read' | 'write' | 'flush';
const opCodes: Readonly<Record<RequestOp, number>> = { read: 0, write: 1, flush: 2 };
const opsByCode: readonly RequestOp[] = ['read', 'write', 'flush'];

/** A request handed to the host and not yet completed. */
interface InFlightRequest {
  readonly requestId: number;
  /** The chain's head: the id of its used-ring element. */
  readonly headIndex: number;
  readonly op: RequestOp;
  /** For a read, where the data goes, in order; empty otherwise. */
  readonly dataRanges: readonly RamRange[];
  readonly dataBytes: number;
  /** Guest-physical address of the status byte (inside RAM). */
  readonly statusAddress: number;
}

export interface VirtioBlockConfig {
  /** The virtio-mmio slot index; names the disk image in DiskRequests. */
  readonly slot: number;
  /** Disk size; a whole number of 512-byte sectors. */
  readonly capacityBytes: number;
  readonly readOnly: boolean;
  /** Answer to GET_ID: printable ASCII, at most 20 characters. */
  readonly serial: string;
  /** Writes are answered at once, and carried out by the host later (`DiskConfig.writeBack`). Default false. */
  readonly writeBack?: boolean;
}

export interface VirtioBlockContext {
  readonly ram: Ram;
  readonly irq: InterruptLine;
  readonly outputs: OutputSink;
  /**
   * Reads answered at once (`EnvironmentPort.readDisk`): the data, or undefined and the read
   * goes out as a request. Asked only while a queue notify is handled, inside its instruction.
   */
  readonly readNow?: (request: DiskReadRequest) => Uint8Array | undefined;
}

/** Reads one queue notify may ask to have answered at once: within the environment reads one instruction may make. */
export const readsAtOncePerNotifyMax = 3;
assert(readsAtOncePerNotifyMax <= environmentReadsPerInstructionMax, 'a notify may make more environment reads than an instruction');

export class VirtioBlockDevice implements MmioDevice, VirtioBackend {
  readonly name: string;
  readonly windowBytes = virtioMmioWindowBytes;
  readonly slot: number;
  readonly capacityBytes: number;
  readonly readOnly: boolean;
  readonly serial: string;
  readonly writeBack: boolean;
  private readonly capacitySectors: number;
  private readonly deviceIdString = new Uint8Array(deviceIdBytes);
  private readonly configSpace = new Uint8Array(configSpaceBytes);
  private readonly ram: Ram;
  private readonly outputs: OutputSink;
  private readonly readNow: ((request: DiskReadRequest) => Uint8Array | undefined) | undefined;
  /** Reads this notify may still ask to have answered at once; zero outside a notify. */
  private readsAtOnceLeft = 0;
  private readonly transport: VirtioMmioTransport;
  /** Requests handed to the host, by request id, in issue order. */
  private inFlight = new Map<number, InFlightRequest>();
  /** The id of the next request; never reset, so that a completion for a dropped request can't match a new one. */
  private nextRequestId = 1;
  /** Set while the available ring is being walked, so that a completion arriving from inside an output sink doesn't walk it again. */
  private walking = false;

  constructor(config: VirtioBlockConfig, context: VirtioBlockContext) {
    const { slot, capacityBytes, readOnly, serial } = config;
    if (!Number.isInteger(slot) || slot < 0) throw new RangeError(`virtio slot ${slot} is not a non-negative integer`);
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 0 || capacityBytes % sectorBytes !== 0) {
      throw new RangeError(`disk capacity ${capacityBytes} bytes is not a whole number of ${sectorBytes}-byte sectors`);
    }
    if (serial.length > deviceIdBytes || !/^[\x20-\x7e]*$/.test(serial)) {
      throw new RangeError(`disk serial ${JSON.stringify(serial)} is not printable ASCII of at most ${deviceIdBytes} characters`);
    }
    this.slot = slot;
    this.name = `virtio-blk${slot}`;
    this.capacityBytes = capacityBytes;
    this.capacitySectors = capacityBytes / sectorBytes;
    this.readOnly = readOnly;
    this.serial = serial;
    this.writeBack = config.writeBack === true;
    for (let i = 0; i < serial.length; i++) this.deviceIdString[i] = serial.charCodeAt(i);
    this.ram = context.ram;
    this.outputs = context.outputs;
    this.readNow = context.readNow;

    const config32 = new DataView(this.configSpace.buffer);
    config32.setBigUint64(BlockConfigField.capacity, BigInt(this.capacitySectors), true);
    config32.setUint32(BlockConfigField.sizeMax, segmentBytesMax, true);
    config32.setUint32(BlockConfigField.segMax, segmentsPerRequestMax, true);
    config32.setUint32(BlockConfigField.blkSize, sectorBytes, true);

    // No EVENT_IDX: used-buffer suppression then needs only the avail flags (2.7.7). INDIRECT_DESC
    // lets Linux put a whole request in one ring slot.
    const offered: number[] = [
      VirtioFeature.VERSION_1, VirtioFeature.RING_INDIRECT_DESC,
      BlockFeature.SIZE_MAX, BlockFeature.SEG_MAX, BlockFeature.BLK_SIZE, BlockFeature.FLUSH,
    ];
    // 5.2.5: "If the VIRTIO_BLK_F_RO feature is set by the device, any write requests will fail."
    if (readOnly) offered.push(BlockFeature.RO);
    this.transport = new VirtioMmioTransport(
      { deviceId: virtioBlockDeviceId, features: featureWords(offered), queueCount: 1, queueSizeMax: blockQueueSizeEntries },
      { ram: context.ram, irq: context.irq },
      this,
    );
  }

  read(offset: number, width: AccessWidth): number {
    return this.transport.read(offset, width);
  }

  write(offset: number, width: AccessWidth, value: number): void {
    this.transport.write(offset, width, value);
  }

  /** Ids of requests handed to the host and not completed yet, in issue order. */
  get inFlightRequestIds(): number[] {
    return Array.from(this.inFlight.keys());
  }

  /** The latest guest (or completion) mistake, for diagnostics; not guest-visible. */
  get lastGuestError(): string | undefined {
    return this.transport.lastGuestError;
  }

  /**
   * The host finished request `requestId`. For a successful read, `data` holds exactly the bytes
   * asked for. Returns false, changing nothing, for an id that is not in flight (never issued,
   * already completed, or dropped by a device reset).
   */
  complete(requestId: number, status: DiskCompletionStatus, data?: Uint8Array): boolean {
    const request = this.inFlight.get(requestId);
    if (request === undefined) return false;
    this.inFlight.delete(requestId);
    let statusByte: number = status === 'ok' ? BlockStatus.OK : BlockStatus.IOERR;
    let dataWrittenBytes = 0;
    if (request.op === 'read' && statusByte === BlockStatus.OK) {
      if (data === undefined || data.length !== request.dataBytes) {
        // The host owes exactly the sectors asked for (the range was checked against the capacity);
        // anything else reaches the guest as a failed read rather than as half-filled buffers.
        this.transport.noteGuestError(`read ${requestId} completed with ${data?.length ?? 'no'} bytes, ${request.dataBytes} expected`);
        statusByte = BlockStatus.IOERR;
      } else {
        this.scatter(request.dataRanges, data);
        dataWrittenBytes = data.length;
      }
    }
    this.answer(request.headIndex, request.statusAddress, statusByte, dataWrittenBytes);
    // A slot in flight came free: take requests held back by the cap, if any.
    this.walkAvailableRing();
    return true;
  }

  // --- VirtioBackend ----------------------------------------------------------------------------

  readConfig(offsetBytes: number, width: AccessWidth): number {
    return readConfigSpace(this.configSpace, offsetBytes, width);
  }

  writeConfig(offsetBytes: number, _width: AccessWidth, value: number): void {
    // Every field is read-only without VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
    this.transport.noteGuestError(`write of 0x${(value >>> 0).toString(16)} to read-only config offset 0x${offsetBytes.toString(16)}`);
  }

  queueNotified(_queueIndex: number): void {
    // Only here, inside the guest's instruction, may reads be answered at once: a walk after a
    // completion runs between instructions, where nothing may be read from the environment.
    this.readsAtOnceLeft = this.readNow === undefined ? 0 : readsAtOncePerNotifyMax;
    try {
      this.walkAvailableRing();
    } finally {
      this.readsAtOnceLeft = 0;
    }
  }

  queueStopped(_queueIndex: number): void {
    // The driver gave the buffers up; whatever the host answers later is dropped by complete().
    this.inFlight.clear();
  }

  // --- Requests ---------------------------------------------------------------------------------

  /**
   * Takes chains from the available ring while the device is live and fewer requests than the
   * queue size are in flight. Each call does at most a queue's worth of work: the driver cannot
   * publish more than that many entries ahead of the device.
   */
  private walkAvailableRing(): void {
    if (this.walking) return;
    const queue = this.transport.queue(0);
    this.walking = true;
    try {
      while (queue.ready && this.transport.isLive && this.inFlight.size < queue.sizeEntries) {
        const next = queue.takeAvailable();
        if (next.kind === 'empty') break;
        if (next.kind === 'error') {
          this.transport.enterNeedsReset(next.reason);
          break;
        }
        const chain = queue.readChain(next.headIndex, this.transport.negotiated(VirtioFeature.RING_INDIRECT_DESC));
        if (!chain.ok) {
          this.transport.enterNeedsReset(chain.reason);
          break;
        }
        this.handleChain(chain.chain);
      }
    } finally {
      this.walking = false;
    }
  }

  /** Parses one request (5.2.6: header, data, status byte) and either answers it or hands it to the host. */
  private handleChain(chain: DescriptorChain): void {
    const head = chain.headIndex;
    const readable = chain.segments.filter((segment) => !segment.writable);
    const writable = chain.segments.filter((segment) => segment.writable);

    // The status byte is the last device-writable byte. Without one the device has no way to answer.
    const statusRange = chain.writableBytes === 0 ? undefined : sliceSegments(writable, chain.writableBytes - 1, statusByteBytes);
    if (statusRange === undefined || statusRange[0] === undefined) {
      this.transport.enterNeedsReset(`request at descriptor ${head}: no device-writable status byte inside RAM`);
      return;
    }
    const statusAddress = statusRange[0].address;
    const fail = (reason: string): void => {
      this.transport.noteGuestError(`request at descriptor ${head}: ${reason}`);
      this.answer(head, statusAddress, BlockStatus.IOERR, 0);
    };

    if (chain.readableAfterWritable) return fail('a device-readable descriptor follows a device-writable one');
    if (chain.readableBytes < requestHeaderBytes) return fail(`${chain.readableBytes} device-readable bytes, less than the ${requestHeaderBytes}-byte header`);
    const headerRanges = sliceSegments(readable, 0, requestHeaderBytes);
    if (headerRanges === undefined) return fail('header outside RAM');
    const header = new DataView(this.gather(headerRanges).buffer);
    const type = header.getUint32(0, true);
    const sectorLow = header.getUint32(8, true);
    const sectorHigh = header.getUint32(12, true);
    const writableDataBytes = chain.writableBytes - statusByteBytes;
    // 5.2.6: "data is either device-readable or device-writable, depending on the request": a read
    // (or GET_ID) carries nothing readable after the header, a write nothing writable but the status.
    const readableAfterHeader = chain.readableBytes - requestHeaderBytes;
    const needsWritableData = type === BlockRequestType.IN || type === BlockRequestType.GET_ID;
    if (needsWritableData && readableAfterHeader !== 0) return fail(`${readableAfterHeader} device-readable data bytes in a request that returns data`);
    if (type === BlockRequestType.OUT && writableDataBytes !== 0) return fail(`${writableDataBytes} device-writable data bytes in a write request`);

    switch (type) {
      case BlockRequestType.IN: {
        const problem = this.transferProblem(sectorLow, sectorHigh, writableDataBytes);
        if (problem !== undefined) return fail(problem);
        const dataRanges = sliceSegments(writable, 0, writableDataBytes);
        if (dataRanges === undefined) return fail('read buffer outside RAM');
        if (writableDataBytes === 0) return this.answer(head, statusAddress, BlockStatus.OK, 0);
        const request: DiskReadRequest = { op: 'read', slot: this.slot, requestId: this.nextId(), offsetBytes: this.offsetOf(sectorLow, sectorHigh), lengthBytes: writableDataBytes };
        if (this.readsAtOnceLeft > 0) {
          this.readsAtOnceLeft--;
          const data = this.readNow!(request);
          if (data !== undefined) {
            assert(data.length === writableDataBytes, () => `a read answered at once with ${data.length} bytes, ${writableDataBytes} asked for`);
            this.scatter(dataRanges, data);
            return this.answer(head, statusAddress, BlockStatus.OK, data.length);
          }
        }
        this.issue({ head, op: 'read', dataRanges, dataBytes: writableDataBytes, statusAddress }, request.requestId);
        return this.emit(request);
      }
      case BlockRequestType.OUT: {
        // 5.2.6.2: "A device MUST set the status byte to VIRTIO_BLK_S_IOERR for a write request if the
        // VIRTIO_BLK_F_RO feature if offered, and MUST NOT write any data."
        if (this.readOnly) return fail('write to a read-only disk');
        const dataBytes = readableAfterHeader;
        const problem = this.transferProblem(sectorLow, sectorHigh, dataBytes);
        if (problem !== undefined) return fail(problem);
        const dataRanges = sliceSegments(readable, requestHeaderBytes, dataBytes);
        if (dataRanges === undefined) return fail('write buffer outside RAM');
        if (dataBytes === 0) return this.answer(head, statusAddress, BlockStatus.OK, 0);
        // The copy is taken now: what the guest does to the buffer later cannot change the write.
        const data = this.gather(dataRanges);
        if (this.writeBack) {
          // A write cache: the guest has its answer now, and the host the write (in order with
          // the requests before and after it: a flush waits for it, a read sees it).
          const requestId = this.nextId();
          this.emit({ op: 'write', slot: this.slot, requestId, offsetBytes: this.offsetOf(sectorLow, sectorHigh), data, completed: true });
          return this.answer(head, statusAddress, BlockStatus.OK, 0);
        }
        const requestId = this.issue({ head, op: 'write', dataRanges: [], dataBytes: 0, statusAddress });
        return this.emit({ op: 'write', slot: this.slot, requestId, offsetBytes: this.offsetOf(sectorLow, sectorHigh), data });
      }
      case BlockRequestType.FLUSH: {
        // Nothing is ever written to a read-only disk, so there is nothing to make durable.
        if (this.readOnly) return this.answer(head, statusAddress, BlockStatus.OK, 0);
        const requestId = this.issue({ head, op: 'flush', dataRanges: [], dataBytes: 0, statusAddress });
        return this.emit({ op: 'flush', slot: this.slot, requestId });
      }
      case BlockRequestType.GET_ID: {
        // 5.2.6.1: the driver supplies 20 bytes; a shorter buffer gets the prefix that fits.
        const idBytes = Math.min(deviceIdBytes, writableDataBytes);
        const idRanges = sliceSegments(writable, 0, idBytes);
        if (idRanges === undefined) return fail('GET_ID buffer outside RAM');
        this.scatter(idRanges, this.deviceIdString.subarray(0, idBytes));
        return this.answer(head, statusAddress, BlockStatus.OK, idBytes);
      }
      default:
        this.transport.noteGuestError(`request at descriptor ${head}: unsupported type ${type}`);
        return this.answer(head, statusAddress, BlockStatus.UNSUPP, 0);
    }
  }

  /** Why a transfer of `lengthBytes` at the 64-bit `sector` is invalid, or undefined if it is fine. */
  private transferProblem(sectorLow: number, sectorHigh: number, lengthBytes: number): string | undefined {
    // 5.2.6.1: "The length of data MUST be a multiple of 512 bytes for VIRTIO_BLK_T_IN and VIRTIO_BLK_T_OUT requests."
    if (lengthBytes % sectorBytes !== 0) return `data length ${lengthBytes} is not a multiple of ${sectorBytes}`;
    if (lengthBytes > requestDataBytesMax) return `data length ${lengthBytes} exceeds the ${requestDataBytesMax}-byte limit`;
    // Below 2^53 sectors a Number holds the sector exactly; from there on nothing is in range anyway.
    if (sectorHigh >= 2 ** 21) return `sector ${sectorHigh}:${sectorLow} is beyond the capacity`;
    const sector = sectorHigh * 2 ** 32 + sectorLow;
    // 5.2.6.1: "A driver MUST NOT submit a request which would cause a read or write beyond capacity."
    if (sector > this.capacitySectors || (this.capacitySectors - sector) * sectorBytes < lengthBytes) {
      return `sectors ${sector}..${sector + lengthBytes / sectorBytes} are beyond the capacity of ${this.capacitySectors}`;
    }
    return undefined;
  }

  /** Byte offset of a sector already checked by transferProblem. */
  private offsetOf(sectorLow: number, sectorHigh: number): number {
    return (sectorHigh * 2 ** 32 + sectorLow) * sectorBytes;
  }

  private nextId(): number {
    const requestId = this.nextRequestId;
    assert(Number.isSafeInteger(requestId + 1), 'virtio-blk request ids exhausted');
    this.nextRequestId = requestId + 1;
    return requestId;
  }

  private issue(request: { head: number; op: RequestOp; dataRanges: readonly RamRange[]; dataBytes: number; statusAddress: number }, requestId = this.nextId()): number {
    // Recorded before the output leaves, so that a completion arriving at once finds it.
    this.inFlight.set(requestId, {
      requestId, headIndex: request.head, op: request.op, dataRanges: request.dataRanges, dataBytes: request.dataBytes, statusAddress: request.statusAddress,
    });
    return requestId;
  }

  private emit(request: DiskRequest): void {
    this.outputs.emit({ kind: 'disk-request', request });
  }

  /**
   * Writes the status byte and returns the chain to the driver. The used length counts the bytes
   * the device wrote into device-writable buffers: the data and the status byte.
   */
  private answer(headIndex: number, statusAddress: number, statusByte: number, dataWrittenBytes: number): void {
    this.ram.writeBytes(statusAddress, Uint8Array.of(statusByte));
    this.transport.returnUsed(0, headIndex, dataWrittenBytes + statusByteBytes);
  }

  /** Copies guest bytes out of checked RAM ranges. */
  private gather(ranges: readonly RamRange[]): Uint8Array {
    const result = new Uint8Array(rangesBytes(ranges));
    let position = 0;
    for (const range of ranges) {
      result.set(this.ram.readBytes(range.address, range.lengthBytes), position);
      position += range.lengthBytes;
    }
    return result;
  }

  /** Copies `data` into checked RAM ranges, in order (through Ram.writeBytes, so the code cache hears of it). */
  private scatter(ranges: readonly RamRange[], data: Uint8Array): void {
    let position = 0;
    for (const range of ranges) {
      if (position >= data.length) break;
      const take = Math.min(range.lengthBytes, data.length - position);
      this.ram.writeBytes(range.address, data.subarray(position, position + take));
      position += take;
    }
  }

  // --- Snapshot ---------------------------------------------------------------------------------

  save(writer: SnapshotWriter): void {
    writer.section('virtio-blk').u32(snapshotFormatVersion)
      .uint(this.slot).uint(this.capacityBytes).bool(this.readOnly).string(this.serial);
    this.transport.save(writer);
    writer.uint(this.nextRequestId).uint(this.inFlight.size);
    for (const request of this.inFlight.values()) {
      writer.uint(request.requestId).u32(request.headIndex).u8(opCodes[request.op]).uint(request.statusAddress);
      writer.uint(request.dataRanges.length);
      for (const range of request.dataRanges) writer.uint(range.address).uint(range.lengthBytes);
    }
  }

  /** Restores a state saved by {@link save}; checks everything before changing anything. */
  restore(reader: SnapshotReader): void {
    reader.section('virtio-blk');
    const version = reader.u32();
    if (version !== snapshotFormatVersion) throw new SnapshotError(`virtio-blk snapshot format ${version}, expected ${snapshotFormatVersion}`);
    const slot = reader.uint();
    const capacityBytes = reader.uint();
    const readOnly = reader.bool();
    const serial = reader.string();
    if (slot !== this.slot || capacityBytes !== this.capacityBytes || readOnly !== this.readOnly || serial !== this.serial) {
      throw new SnapshotError(
        `snapshot is of disk slot ${slot} (${capacityBytes} bytes, ${readOnly ? 'read-only' : 'read-write'}, serial ${JSON.stringify(serial)}), ` +
        `this one is slot ${this.slot} (${this.capacityBytes} bytes, ${this.readOnly ? 'read-only' : 'read-write'}, serial ${JSON.stringify(this.serial)})`,
      );
    }
    const transport = this.transport.readSnapshot(reader);
    const queue = transport.queues[0];
    if (queue === undefined) throw new SnapshotError('virtio-blk snapshot has no request queue');
    const nextRequestId = reader.uint();
    if (nextRequestId < 1) throw new SnapshotError('virtio-blk request id counter is 0');
    const count = reader.uint();
    const live = queue.ready && (transport.transport.status & DeviceStatus.DRIVER_OK) !== 0;
    if (count > 0 && !live) throw new SnapshotError(`${count} virtio-blk requests in flight on a queue that is not running`);
    if (count > queue.sizeEntries) throw new SnapshotError(`${count} virtio-blk requests in flight, more than the queue size ${queue.sizeEntries}`);

    const inFlight = new Map<number, InFlightRequest>();
    let previousId = 0;
    for (let i = 0; i < count; i++) {
      const request = this.readRequest(reader, queue.sizeEntries);
      if (request.requestId <= previousId || request.requestId >= nextRequestId) {
        throw new SnapshotError(`virtio-blk request id ${request.requestId} is out of order or not yet issued`);
      }
      previousId = request.requestId;
      inFlight.set(request.requestId, request);
    }

    this.transport.applySnapshot(transport);
    this.nextRequestId = nextRequestId;
    this.inFlight = inFlight;
  }

  private readRequest(reader: SnapshotReader, queueSizeEntries: number): InFlightRequest {
    const requestId = reader.uint();
    const headIndex = reader.u32();
    const op = opsByCode[reader.u8()];
    const statusAddress = reader.uint();
    const rangeCount = reader.uint();
    if (op === undefined) throw new SnapshotError(`virtio-blk request ${requestId} has an unknown operation`);
    if (headIndex >= queueSizeEntries) throw new SnapshotError(`virtio-blk request ${requestId} heads descriptor ${headIndex}, outside the queue`);
    if (!this.ram.contains(statusAddress, statusByteBytes)) throw new SnapshotError(`virtio-blk request ${requestId} has its status byte outside RAM`);
    if (rangeCount > rangesPerRequestMax || (op !== 'read' && rangeCount !== 0) || (op === 'read' && rangeCount === 0)) {
      throw new SnapshotError(`virtio-blk ${op} request ${requestId} has ${rangeCount} data ranges`);
    }
    const dataRanges: RamRange[] = [];
    for (let i = 0; i < rangeCount; i++) {
      const address = reader.uint();
      const lengthBytes = reader.uint();
      if (lengthBytes === 0 || !this.ram.contains(address, lengthBytes)) throw new SnapshotError(`virtio-blk request ${requestId} has a data range outside RAM`);
      dataRanges.push({ address, lengthBytes });
    }
    const dataBytes = rangesBytes(dataRanges);
    if (dataBytes % sectorBytes !== 0 || dataBytes > requestDataBytesMax) throw new SnapshotError(`virtio-blk request ${requestId} reads ${dataBytes} bytes`);
    return { requestId, headIndex, op, dataRanges, dataBytes, statusAddress };
  }
}
