/**
 * The virtio-mmio transport, register layout version 2 ("modern", virtio 1.x with
 * VIRTIO_F_VERSION_1), and the split virtqueue it carries.
 *
 * The transport owns what every virtio device has in common: identification registers, feature
 * negotiation, the device status state machine, queue configuration, the interrupt status and
 * the configuration generation. A device model (see virtio-blk.ts) plugs in as a
 * {@link VirtioBackend}: it answers configuration-space accesses and is told when the driver
 * notifies a queue. It then reads descriptor chains from a {@link SplitVirtqueue} and hands
 * buffers back with {@link VirtioMmioTransport.returnUsed}.
 *
 * Guest mistakes never become host exceptions. A malformed ring or chain puts the device into
 * DEVICE_NEEDS_RESET (virtio 1.2, 2.1.2: "The device SHOULD set DEVICE_NEEDS_RESET when it enters
 * an error state that a reset is needed"); a malformed register access is ignored, as QEMU does.
 * The latest such mistake is kept in `lastGuestError` for diagnostics; it is not guest-visible
 * and not part of the snapshot.
 *
 * References: virtio 1.2 (section numbers are its own), section 4.2 (Virtio Over MMIO) and 2.7 (Split Virtqueues).
 */
import { ramBaseAddress, type Ram } from '../memory/ram.js';
import { SnapshotError, type SnapshotReader, type SnapshotWriter } from '../snapshot.js';
import type { AccessWidth, InterruptLine, MmioDevice } from './device.js';

/** Each virtio-mmio slot decodes 0x200 bytes, as on QEMU (the rest of its 4 KiB faults); the device tree says 4 KiB. */
export const virtioMmioWindowBytes = 0x200;
/** 4.2.2: "0x74726976 (a Little Endian equivalent of the "virt" string)". */
export const virtioMagicValue = 0x7472_6976;
/** 4.2.2: "The device MUST return value 0x2 in Version." */
export const virtioMmioVersion = 2;
/** QEMU's vendor ID, "QEMU" in little-endian ASCII; Linux only prints it. */
export const virtioVendorIdQemu = 0x554d_4551;

/** Register offsets from the slot base (4.2.2, table "MMIO Device Register Layout"). */
export const VirtioMmioRegister = {
  MagicValue: 0x000, Version: 0x004, DeviceId: 0x008, VendorId: 0x00c,
  DeviceFeatures: 0x010, DeviceFeaturesSel: 0x014, DriverFeatures: 0x020, DriverFeaturesSel: 0x024,
  QueueSel: 0x030, QueueNumMax: 0x034, QueueNum: 0x038, QueueReady: 0x044, QueueNotify: 0x050,
  InterruptStatus: 0x060, InterruptAck: 0x064, Status: 0x070,
  QueueDescLow: 0x080, QueueDescHigh: 0x084, QueueDriverLow: 0x090, QueueDriverHigh: 0x094,
  QueueDeviceLow: 0x0a0, QueueDeviceHigh: 0x0a4,
  ShmSel: 0x0ac, ShmLenLow: 0x0b0, ShmLenHigh: 0x0b4, ShmBaseLow: 0x0b8, ShmBaseHigh: 0x0bc,
  ConfigGeneration: 0x0fc, Config: 0x100,
} as const;

/** Device status bits (2.1). */
export const DeviceStatus = {
  ACKNOWLEDGE: 0x01, DRIVER: 0x02, DRIVER_OK: 0x04, FEATURES_OK: 0x08, DEVICE_NEEDS_RESET: 0x40, FAILED: 0x80,
} as const;

/** InterruptStatus bits (4.2.2). */
export const InterruptReason = { UsedBuffer: 0x1, ConfigChange: 0x2 } as const;
const interruptReasonsAll = InterruptReason.UsedBuffer | InterruptReason.ConfigChange;

/** Transport and ring feature bit numbers (6, "Reserved Feature Bits"). */
export const VirtioFeature = { RING_INDIRECT_DESC: 28, RING_EVENT_IDX: 29, VERSION_1: 32 } as const;

/** Descriptor flags (2.7.5). */
export const DescriptorFlag = { NEXT: 1, WRITE: 2, INDIRECT: 4 } as const;
/** 2.7.6: "#define VIRTQ_AVAIL_F_NO_INTERRUPT 1". */
const availFlagNoInterrupt = 1;

const descriptorBytes = 16;
const availHeaderBytes = 4;
const usedHeaderBytes = 4;
const usedElementBytes = 8;
/** The avail ring's trailing used_event, and the used ring's avail_event: counted in the sizes of 2.7 even when unused. */
const ringTrailerBytes = 2;
/** 2.7: "The maximum Queue Size value is 32768." */
const splitQueueSizeLimit = 32768;

/** Status bits the snapshot may hold; anything else is a corrupt snapshot. */
const deviceStatusKnownBits =
  DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK | DeviceStatus.FEATURES_OK |
  DeviceStatus.DEVICE_NEEDS_RESET | DeviceStatus.FAILED;

/**
 * The legal steps of the device status state machine, as written by the driver (3.1.1): each bit
 * the driver may set, and the bits that must already be set (or set by the same write, since
 * this table is applied in order). The driver may not clear bits except by writing 0 (reset);
 * DEVICE_NEEDS_RESET belongs to the device. FEATURES_OK is further subject to the feature check
 * (3.1.1 step 5: the device may refuse it).
 */
const statusSteps: ReadonlyArray<{ readonly bit: number; readonly requires: number }> = [
  { bit: DeviceStatus.ACKNOWLEDGE, requires: 0 },
  { bit: DeviceStatus.DRIVER, requires: DeviceStatus.ACKNOWLEDGE },
  { bit: DeviceStatus.FEATURES_OK, requires: DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER },
  { bit: DeviceStatus.DRIVER_OK, requires: DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK },
  { bit: DeviceStatus.FAILED, requires: 0 },
];

/** 64 feature bits as two 32-bit words: [bits 0..31, bits 32..63]. */
export type FeatureWords = readonly [low: number, high: number];

/** Packs feature bit numbers (0..63) into two words. */
/**
 * A little-endian read of `width` bytes at `offsetBytes` of a device's configuration space;
 * past its end, all ones, as QEMU answers.
 */
export function readConfigSpace(configSpace: Uint8Array, offsetBytes: number, width: AccessWidth): number {
  if (offsetBytes + width > configSpace.length) return width === 4 ? 0xffff_ffff : (1 << (8 * width)) - 1;
  let value = 0;
  for (let i = width - 1; i >= 0; i--) value = value * 256 + configSpace[offsetBytes + i]!;
  return value;
}

export function featureWords(bits: readonly number[]): FeatureWords {
  let low = 0;
  let high = 0;
  for (const bit of bits) {
    if (!Number.isInteger(bit) || bit < 0 || bit > 63) throw new RangeError(`feature bit ${bit} is not in 0..63`);
    if (bit < 32) low |= 1 << bit;
    else high |= 1 << (bit - 32);
  }
  return [low >>> 0, high >>> 0];
}

function hasFeature(words: FeatureWords, bit: number): boolean {
  const word = bit < 32 ? words[0] : words[1];
  return ((word >>> (bit & 31)) & 1) === 1;
}

function isPowerOfTwo(value: number): boolean {
  return value > 0 && (value & (value - 1)) === 0;
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

// ---------------------------------------------------------------------------------------------
// Descriptor chains

/** One non-empty descriptor of a chain, as the driver described it. */
export interface ChainSegment {
  /** Guest-physical address (high half included, so never in RAM if the high half is non-zero). */
  readonly address: number;
  readonly lengthBytes: number;
  /** VIRTQ_DESC_F_WRITE: the device may write this buffer and must not read it. */
  readonly writable: boolean;
  /** The whole buffer lies inside guest RAM. */
  readonly inRam: boolean;
}

/** A contiguous range of guest RAM, checked to lie inside RAM. */
export interface RamRange {
  readonly address: number;
  readonly lengthBytes: number;
}

export interface DescriptorChain {
  readonly headIndex: number;
  /** In chain order; zero-length descriptors are left out. */
  readonly segments: readonly ChainSegment[];
  readonly readableBytes: number;
  readonly writableBytes: number;
  /**
   * A device-readable descriptor followed a device-writable one. 2.7.4.2: "The driver MUST place
   * any device-writable descriptor elements after any device-readable descriptor elements."
   */
  readonly readableAfterWritable: boolean;
}

export type ChainResult =
  | { readonly ok: true; readonly chain: DescriptorChain }
  | { readonly ok: false; readonly reason: string };

export type AvailableResult =
  | { readonly kind: 'empty' }
  | { readonly kind: 'head'; readonly headIndex: number }
  | { readonly kind: 'error'; readonly reason: string };

/**
 * The RAM ranges covering bytes [skipBytes, skipBytes + lengthBytes) of the concatenation of
 * `segments`, or undefined when those bytes run past the segments or touch a segment outside RAM.
 * 2.7.4.1: "The device MUST NOT make assumptions about the particular arrangement of descriptors",
 * so headers, data and status are found by byte position, not by descriptor.
 */
export function sliceSegments(segments: readonly ChainSegment[], skipBytes: number, lengthBytes: number): RamRange[] | undefined {
  const ranges: RamRange[] = [];
  let skip = skipBytes;
  let remaining = lengthBytes;
  for (const segment of segments) {
    if (remaining === 0) break;
    if (skip >= segment.lengthBytes) {
      skip -= segment.lengthBytes;
      continue;
    }
    const take = Math.min(segment.lengthBytes - skip, remaining);
    if (!segment.inRam) return undefined;
    ranges.push({ address: segment.address + skip, lengthBytes: take });
    remaining -= take;
    skip = 0;
  }
  return remaining === 0 ? ranges : undefined;
}

/** Sum of the lengths of `ranges`. */
export function rangesBytes(ranges: readonly RamRange[]): number {
  let total = 0;
  for (const range of ranges) total += range.lengthBytes;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Split virtqueue

/** The guest-visible configuration of one queue, plus the device's two ring positions. */
export interface QueueState {
  /** QueueNum as last written (checked when the queue is enabled). */
  sizeEntries: number;
  ready: boolean;
  descriptorLow: number;
  descriptorHigh: number;
  driverLow: number;
  driverHigh: number;
  deviceLow: number;
  deviceHigh: number;
  /** Free-running (mod 2^16) index of the next available-ring entry the device will take. */
  nextAvailableIndex: number;
  /** Free-running (mod 2^16) used ring index, as last published to the guest. */
  usedIndex: number;
}

function initialQueueState(sizeMax: number): QueueState {
  // QEMU starts every queue at its maximum size, so a driver that never writes QueueNum gets that.
  return {
    sizeEntries: sizeMax, ready: false,
    descriptorLow: 0, descriptorHigh: 0, driverLow: 0, driverHigh: 0, deviceLow: 0, deviceHigh: 0,
    nextAvailableIndex: 0, usedIndex: 0,
  };
}

/**
 * One split virtqueue (2.7) in guest RAM: the device side of the descriptor table, the available
 * ring and the used ring. Every guest address is checked before use; ring addresses once, when
 * the queue is enabled, and buffer addresses per descriptor.
 */
export class SplitVirtqueue {
  private state: QueueState;
  private cachedView: DataView | undefined;
  private readonly scratch = new Uint8Array(usedElementBytes);
  private readonly scratchView = new DataView(this.scratch.buffer);

  constructor(
    private readonly ram: Ram,
    /** QueueNumMax, and also the longest indirect table accepted. */
    readonly sizeMax: number,
  ) {
    if (!isPowerOfTwo(sizeMax) || sizeMax > splitQueueSizeLimit) throw new RangeError(`queue size ${sizeMax} is not a power of two up to ${splitQueueSizeLimit}`);
    this.state = initialQueueState(sizeMax);
  }

  /** A view of guest RAM; made again when RAM gets a new buffer (a snapshot restore). */
  private get view(): DataView {
    const bytes = this.ram.u8;
    let view = this.cachedView;
    if (view === undefined || view.buffer !== bytes.buffer) {
      view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      this.cachedView = view;
    }
    return view;
  }

  get ready(): boolean {
    return this.state.ready;
  }

  /** Queue size in entries; meaningful while ready. */
  get sizeEntries(): number {
    return this.state.sizeEntries;
  }

  private get descriptorAddress(): number {
    return this.state.descriptorLow;
  }

  private get driverAddress(): number {
    return this.state.driverLow;
  }

  private get deviceAddress(): number {
    return this.state.deviceLow;
  }

  /** QueueNum and the address registers; 4.2.2 forbids the driver to touch them while ready, so those writes are ignored. */
  writeConfig(register: number, value: number): void {
    if (this.state.ready) return;
    const state = this.state;
    switch (register) {
      case VirtioMmioRegister.QueueNum: state.sizeEntries = value >>> 0; break;
      case VirtioMmioRegister.QueueDescLow: state.descriptorLow = value >>> 0; break;
      case VirtioMmioRegister.QueueDescHigh: state.descriptorHigh = value >>> 0; break;
      case VirtioMmioRegister.QueueDriverLow: state.driverLow = value >>> 0; break;
      case VirtioMmioRegister.QueueDriverHigh: state.driverHigh = value >>> 0; break;
      case VirtioMmioRegister.QueueDeviceLow: state.deviceLow = value >>> 0; break;
      case VirtioMmioRegister.QueueDeviceHigh: state.deviceHigh = value >>> 0; break;
      default: break;
    }
  }

  /** Why the configured queue cannot be enabled, or undefined if it can. */
  private configurationProblem(state: QueueState): string | undefined {
    const size = state.sizeEntries;
    // 2.7: "Queue Size value is always a power of 2"; 4.2.2.2: QueueNum at most QueueNumMax.
    if (!isPowerOfTwo(size) || size > this.sizeMax) return `queue size ${size} is not a power of two in 1..${this.sizeMax}`;
    const parts: ReadonlyArray<readonly [string, number, number, number]> = [
      ['descriptor table', state.descriptorLow, state.descriptorHigh, descriptorBytes * size],
      ['available ring', state.driverLow, state.driverHigh, availHeaderBytes + 2 * size + ringTrailerBytes],
      ['used ring', state.deviceLow, state.deviceHigh, usedHeaderBytes + usedElementBytes * size + ringTrailerBytes],
    ];
    for (const [part, low, high, lengthBytes] of parts) {
      // RAM lies below 4 GiB, so a non-zero high half is outside it.
      if (high !== 0 || !this.ram.contains(low, lengthBytes)) {
        return `${part} at ${hex(high * 2 ** 32 + low)} (${lengthBytes} bytes) is not inside RAM`;
      }
    }
    return undefined;
  }

  /** QueueReady 0 -> 1. Returns why the queue cannot run, leaving it disabled, or undefined. */
  enable(): string | undefined {
    if (this.state.ready) return undefined;
    const problem = this.configurationProblem(this.state);
    if (problem !== undefined) return problem;
    // A freshly enabled queue starts with both rings empty: 2.7.6 and 2.7.8, "This starts at 0".
    this.state.ready = true;
    this.state.nextAvailableIndex = 0;
    this.state.usedIndex = 0;
    return undefined;
  }

  /** QueueReady 1 -> 0: the device stops using the queue (4.2.2.2: "To stop using the queue the driver MUST write zero"). */
  disable(): void {
    this.state.ready = false;
  }

  reset(): void {
    this.state = initialQueueState(this.sizeMax);
  }

  private readU16(physical: number): number {
    return this.view.getUint16(physical - ramBaseAddress, true);
  }

  private readU32(physical: number): number {
    return this.view.getUint32(physical - ramBaseAddress, true);
  }

  /**
   * How many heads the driver has published that the device has not taken yet; 0 when the
   * available index is impossible (more than a queue ahead: takeAvailable reports that). The
   * queue must be ready.
   */
  availableCount(): number {
    const pending = (this.readU16(this.driverAddress + 2) - this.state.nextAvailableIndex) & 0xffff;
    return pending > this.state.sizeEntries ? 0 : pending;
  }

  /** Takes the next head from the available ring, if the driver has published one. The queue must be ready. */
  takeAvailable(): AvailableResult {
    const state = this.state;
    const size = state.sizeEntries;
    const availableIndex = this.readU16(this.driverAddress + 2);
    const pending = (availableIndex - state.nextAvailableIndex) & 0xffff;
    if (pending === 0) return { kind: 'empty' };
    // The ring has `size` slots, so the driver can never be more than `size` entries ahead.
    if (pending > size) {
      return { kind: 'error', reason: `available index ${availableIndex} is ${pending} entries ahead of the device, more than the queue size ${size}` };
    }
    const slot = state.nextAvailableIndex & (size - 1);
    const headIndex = this.readU16(this.driverAddress + availHeaderBytes + 2 * slot);
    state.nextAvailableIndex = (state.nextAvailableIndex + 1) & 0xffff;
    if (headIndex >= size) return { kind: 'error', reason: `available ring names descriptor ${headIndex}, outside the table of ${size}` };
    return { kind: 'head', headIndex };
  }

  /**
   * Walks the descriptor chain starting at `headIndex` (< sizeEntries). Structural faults (an
   * index outside its table, a chain longer than its table, which is how a loop shows, a bad
   * indirect descriptor) make the chain unusable; buffers outside RAM are only flagged, so that the
   * device can still answer with an error status.
   */
  readChain(headIndex: number, indirectNegotiated: boolean): ChainResult {
    const segments: ChainSegment[] = [];
    let tableAddress = this.descriptorAddress;
    let tableEntries = this.state.sizeEntries;
    let inIndirectTable = false;
    let index = headIndex;
    let stepsInTable = 0;
    let readableBytes = 0;
    let writableBytes = 0;
    let sawWritable = false;
    let readableAfterWritable = false;
    const fail = (reason: string): ChainResult => ({ ok: false, reason: `chain at descriptor ${headIndex}: ${reason}` });

    for (;;) {
      const table = inIndirectTable ? 'indirect table' : 'descriptor table';
      if (index >= tableEntries) return fail(`next index ${index} is outside the ${table} of ${tableEntries}`);
      // A chain can visit each descriptor of its table at most once, so a longer one loops
      // (2.7.5.2: "this implies that loops in the descriptor chain are forbidden").
      stepsInTable++;
      if (stepsInTable > tableEntries) return fail(`longer than its ${table} of ${tableEntries} entries (a loop)`);

      const at = tableAddress + index * descriptorBytes;
      const addressLow = this.readU32(at);
      const addressHigh = this.readU32(at + 4);
      const lengthBytes = this.readU32(at + 8);
      const flags = this.readU16(at + 12);
      const next = this.readU16(at + 14);

      if ((flags & DescriptorFlag.INDIRECT) !== 0) {
        // 2.7.5.3.1: only with VIRTIO_F_INDIRECT_DESC, never within an indirect table, never with NEXT.
        if (!indirectNegotiated) return fail('indirect descriptor without VIRTIO_F_INDIRECT_DESC');
        if (inIndirectTable) return fail('indirect descriptor inside an indirect table');
        if ((flags & DescriptorFlag.NEXT) !== 0) return fail('indirect descriptor with NEXT set');
        const entries = lengthBytes / descriptorBytes;
        if (!Number.isInteger(entries) || entries === 0 || entries > this.sizeMax) {
          return fail(`indirect table of ${lengthBytes} bytes is not 1..${this.sizeMax} descriptors`);
        }
        if (addressHigh !== 0 || !this.ram.contains(addressLow, lengthBytes)) return fail('indirect table is not inside RAM');
        // 2.7.5.3.2: "The device MUST ignore the write-only flag ... in the descriptor that refers to an indirect table."
        tableAddress = addressLow;
        tableEntries = entries;
        inIndirectTable = true;
        index = 0;
        stepsInTable = 0;
        continue;
      }

      const writable = (flags & DescriptorFlag.WRITE) !== 0;
      if (lengthBytes > 0) {
        const address = addressHigh * 2 ** 32 + addressLow;
        const inRam = addressHigh === 0 && this.ram.contains(addressLow, lengthBytes);
        segments.push({ address, lengthBytes, writable, inRam });
        if (writable) {
          writableBytes += lengthBytes;
          sawWritable = true;
        } else {
          readableBytes += lengthBytes;
          if (sawWritable) readableAfterWritable = true;
        }
      }
      if ((flags & DescriptorFlag.NEXT) === 0) break;
      index = next;
    }
    return { ok: true, chain: { headIndex, segments, readableBytes, writableBytes, readableAfterWritable } };
  }

  /**
   * Publishes one used element (2.7.8) and returns whether the driver wants a notification.
   * 2.7.8.2: "The device MUST set len prior to updating the used idx."
   */
  putUsed(headIndex: number, writtenBytes: number): boolean {
    const state = this.state;
    const slot = state.usedIndex & (state.sizeEntries - 1);
    this.scratchView.setUint32(0, headIndex, true);
    this.scratchView.setUint32(4, writtenBytes, true);
    this.ram.writeBytes(this.deviceAddress + usedHeaderBytes + usedElementBytes * slot, this.scratch);
    state.usedIndex = (state.usedIndex + 1) & 0xffff;
    this.scratchView.setUint16(0, state.usedIndex, true);
    this.ram.writeBytes(this.deviceAddress + 2, this.scratch.subarray(0, 2));
    // Without VIRTIO_F_EVENT_IDX (never offered here), 2.7.7.2: "If flags is 1, the device SHOULD NOT send a notification."
    return (this.readU16(this.driverAddress) & availFlagNoInterrupt) === 0;
  }

  save(writer: SnapshotWriter): void {
    const state = this.state;
    writer.section('virtqueue')
      .u32(state.sizeEntries).bool(state.ready)
      .u32(state.descriptorLow).u32(state.descriptorHigh)
      .u32(state.driverLow).u32(state.driverHigh)
      .u32(state.deviceLow).u32(state.deviceHigh)
      .u32(state.nextAvailableIndex).u32(state.usedIndex);
  }

  /** Reads and checks a saved queue without applying it (see {@link applyState}). */
  readState(reader: SnapshotReader): QueueState {
    reader.section('virtqueue');
    const state: QueueState = {
      sizeEntries: reader.u32(), ready: reader.bool(),
      descriptorLow: reader.u32(), descriptorHigh: reader.u32(),
      driverLow: reader.u32(), driverHigh: reader.u32(),
      deviceLow: reader.u32(), deviceHigh: reader.u32(),
      nextAvailableIndex: reader.u32(), usedIndex: reader.u32(),
    };
    if (state.nextAvailableIndex > 0xffff || state.usedIndex > 0xffff) throw new SnapshotError('virtqueue ring index out of range');
    if (state.ready) {
      const problem = this.configurationProblem(state);
      if (problem !== undefined) throw new SnapshotError(`ready virtqueue is invalid: ${problem}`);
    }
    return state;
  }

  applyState(state: QueueState): void {
    this.state = { ...state };
  }
}

// ---------------------------------------------------------------------------------------------
// Transport

/** What the transport needs to know about the device behind it. */
export interface VirtioDeviceIdentity {
  /** 5: device types (2 = block). */
  readonly deviceId: number;
  /** Offered features; must include VIRTIO_F_VERSION_1. */
  readonly features: FeatureWords;
  readonly queueCount: number;
  /** QueueNumMax of every queue. */
  readonly queueSizeMax: number;
}

/** The device-type half of a virtio device. */
export interface VirtioBackend {
  /** A read of the device configuration space (offset from 0x100). */
  readConfig(offsetBytes: number, width: AccessWidth): number;
  /** A write to the device configuration space. */
  writeConfig(offsetBytes: number, width: AccessWidth, value: number): void;
  /** The driver notified queue `queueIndex`; the queue is ready and the device is live. */
  queueNotified(queueIndex: number): void;
  /** Queue `queueIndex` stopped (device reset or QueueReady cleared): forget its requests in flight. */
  queueStopped(queueIndex: number): void;
}

export interface TransportState {
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  driverFeaturesLow: number;
  driverFeaturesHigh: number;
  /** The driver wrote a non-zero word beyond bit 63: features nobody offered. */
  driverFeaturesBeyond: boolean;
  queueSel: number;
  interruptStatus: number;
  /** 4.2.2 ConfigGeneration: changes whenever the device changes its configuration space. */
  configGeneration: number;
}

function initialTransportState(): TransportState {
  return {
    status: 0, deviceFeaturesSel: 0, driverFeaturesSel: 0, driverFeaturesLow: 0, driverFeaturesHigh: 0,
    driverFeaturesBeyond: false, queueSel: 0, interruptStatus: 0, configGeneration: 0,
  };
}

/** A transport state read from a snapshot, checked, not yet applied. */
export interface TransportSnapshot {
  readonly transport: TransportState;
  readonly queues: readonly QueueState[];
}

export class VirtioMmioTransport {
  private state = initialTransportState();
  private readonly queueList: SplitVirtqueue[] = [];
  private readonly irq: InterruptLine;
  /** The latest guest mistake seen, for diagnostics (not guest-visible, not saved). */
  lastGuestError: string | undefined;

  constructor(
    private readonly identity: VirtioDeviceIdentity,
    context: { readonly ram: Ram; readonly irq: InterruptLine },
    private readonly backend: VirtioBackend,
  ) {
    if (!hasFeature(identity.features, VirtioFeature.VERSION_1)) throw new RangeError('a version 2 virtio-mmio device must offer VIRTIO_F_VERSION_1');
    if (identity.features[0] >>> 0 !== identity.features[0] || identity.features[1] >>> 0 !== identity.features[1]) {
      throw new RangeError('feature words must be unsigned 32-bit values');
    }
    if (!Number.isInteger(identity.queueCount) || identity.queueCount < 1) throw new RangeError(`bad queue count ${identity.queueCount}`);
    for (let i = 0; i < identity.queueCount; i++) this.queueList.push(new SplitVirtqueue(context.ram, identity.queueSizeMax));
    this.irq = context.irq;
  }

  /** Queue `index`; the caller passes an index below queueCount. */
  queue(index: number): SplitVirtqueue {
    const queue = this.queueList[index];
    if (queue === undefined) throw new RangeError(`no virtqueue ${index}`);
    return queue;
  }

  get status(): number {
    return this.state.status;
  }

  get interruptStatus(): number {
    return this.state.interruptStatus;
  }

  /**
   * The device may take buffers: DRIVER_OK is set (2.1.2: "The device MUST NOT consume buffers or
   * send any used buffer notifications to the driver before DRIVER_OK"), and neither side has
   * declared the device broken.
   */
  get isLive(): boolean {
    const status = this.state.status;
    return (status & DeviceStatus.DRIVER_OK) !== 0 && (status & (DeviceStatus.DEVICE_NEEDS_RESET | DeviceStatus.FAILED)) === 0;
  }

  /** Whether the driver accepted feature `bit` (meaningful once FEATURES_OK is set). */
  negotiated(bit: number): boolean {
    return hasFeature([this.state.driverFeaturesLow, this.state.driverFeaturesHigh], bit);
  }

  noteGuestError(reason: string): void {
    this.lastGuestError = reason;
  }

  /**
   * Hands a buffer back to the driver on queue `queueIndex` and sends a used buffer notification
   * unless the driver suppressed it.
   */
  returnUsed(queueIndex: number, headIndex: number, writtenBytes: number): void {
    if (this.queue(queueIndex).putUsed(headIndex, writtenBytes)) this.raiseInterrupt(InterruptReason.UsedBuffer);
  }

  /** The guest broke the queue protocol: stop processing until the driver resets the device. */
  enterNeedsReset(reason: string): void {
    this.noteGuestError(reason);
    if ((this.state.status & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) return;
    this.state.status |= DeviceStatus.DEVICE_NEEDS_RESET;
    // 2.1.2: "If DRIVER_OK is set, after it sets DEVICE_NEEDS_RESET, the device MUST send a device
    // configuration change notification to the driver."
    if ((this.state.status & DeviceStatus.DRIVER_OK) !== 0) this.raiseInterrupt(InterruptReason.ConfigChange);
  }

  /**
   * The device changed its configuration space (a network link went up or down). 4.2.2: the
   * generation changes, so a driver reading across the change reads again; 2.5.1: "the device
   * MUST send a configuration change notification" once the driver can hear it (DRIVER_OK).
   */
  configChanged(): void {
    this.state.configGeneration = (this.state.configGeneration + 1) >>> 0;
    if ((this.state.status & DeviceStatus.DRIVER_OK) !== 0) this.raiseInterrupt(InterruptReason.ConfigChange);
  }

  private raiseInterrupt(reason: number): void {
    this.state.interruptStatus |= reason;
    this.irq.set(true);
  }

  private updateInterruptLine(): void {
    this.irq.set(this.state.interruptStatus !== 0);
  }

  read(offset: number, width: AccessWidth): number {
    if (offset >= VirtioMmioRegister.Config) return this.backend.readConfig(offset - VirtioMmioRegister.Config, width) >>> 0;
    // 4.2.2.2: "The driver MUST only use 32 bit wide and aligned reads and writes to access the
    // control registers"; like QEMU, anything else reads as zero.
    if (width !== 4 || (offset & 3) !== 0) {
      this.noteGuestError(`${width}-byte read of register ${hex(offset)}`);
      return 0;
    }
    const state = this.state;
    const selected = this.queueList[state.queueSel];
    switch (offset) {
      case VirtioMmioRegister.MagicValue: return virtioMagicValue;
      case VirtioMmioRegister.Version: return virtioMmioVersion;
      case VirtioMmioRegister.DeviceId: return this.identity.deviceId;
      case VirtioMmioRegister.VendorId: return virtioVendorIdQemu;
      case VirtioMmioRegister.DeviceFeatures:
        return state.deviceFeaturesSel < 2 ? this.identity.features[state.deviceFeaturesSel]! >>> 0 : 0;
      case VirtioMmioRegister.QueueNumMax: return selected === undefined ? 0 : selected.sizeMax;
      case VirtioMmioRegister.QueueReady: return selected?.ready === true ? 1 : 0;
      case VirtioMmioRegister.InterruptStatus: return state.interruptStatus;
      case VirtioMmioRegister.Status: return state.status;
      // No shared memory regions; 4.2.2: "Reading from a non-existent region ... results in a length
      // of -1." The base reads 0, as in QEMU (Linux looks only at the length).
      case VirtioMmioRegister.ShmLenLow:
      case VirtioMmioRegister.ShmLenHigh: return 0xffff_ffff;
      case VirtioMmioRegister.ConfigGeneration: return state.configGeneration;
      default:
        // Write-only and unknown registers read as zero.
        return 0;
    }
  }

  write(offset: number, width: AccessWidth, value: number): void {
    if (offset >= VirtioMmioRegister.Config) {
      this.backend.writeConfig(offset - VirtioMmioRegister.Config, width, value);
      return;
    }
    if (width !== 4 || (offset & 3) !== 0) {
      this.noteGuestError(`${width}-byte write of register ${hex(offset)}`);
      return;
    }
    const state = this.state;
    const word = value >>> 0;
    switch (offset) {
      case VirtioMmioRegister.DeviceFeaturesSel: state.deviceFeaturesSel = word; return;
      case VirtioMmioRegister.DriverFeaturesSel: state.driverFeaturesSel = word; return;
      case VirtioMmioRegister.DriverFeatures: this.writeDriverFeatures(word); return;
      case VirtioMmioRegister.QueueSel: state.queueSel = word; return;
      case VirtioMmioRegister.QueueNum:
      case VirtioMmioRegister.QueueDescLow:
      case VirtioMmioRegister.QueueDescHigh:
      case VirtioMmioRegister.QueueDriverLow:
      case VirtioMmioRegister.QueueDriverHigh:
      case VirtioMmioRegister.QueueDeviceLow:
      case VirtioMmioRegister.QueueDeviceHigh:
        this.queueList[state.queueSel]?.writeConfig(offset, word);
        return;
      case VirtioMmioRegister.QueueReady: this.writeQueueReady(word); return;
      case VirtioMmioRegister.QueueNotify: this.notify(word); return;
      case VirtioMmioRegister.InterruptAck:
        state.interruptStatus &= ~word & interruptReasonsAll;
        this.updateInterruptLine();
        return;
      case VirtioMmioRegister.Status: this.writeStatus(word & 0xff); return;
      default:
        // Read-only and unknown registers ignore writes.
        this.noteGuestError(`write of ${hex(word)} to read-only or unknown register ${hex(offset)}`);
        return;
    }
  }

  private writeDriverFeatures(word: number): void {
    const state = this.state;
    // 3.1.1: features are settled before FEATURES_OK; QEMU ignores later writes too.
    if ((state.status & DeviceStatus.FEATURES_OK) !== 0) {
      this.noteGuestError('driver features written after FEATURES_OK');
      return;
    }
    if (state.driverFeaturesSel === 0) state.driverFeaturesLow = word;
    else if (state.driverFeaturesSel === 1) state.driverFeaturesHigh = word;
    else if (word !== 0) state.driverFeaturesBeyond = true;
  }

  /** 3.1.1 step 5: the device refuses FEATURES_OK unless the driver's features are a subset of the offer, with VERSION_1. */
  private featuresAcceptable(state: TransportState): boolean {
    const [offeredLow, offeredHigh] = this.identity.features;
    return (state.driverFeaturesLow & ~offeredLow) === 0 &&
      (state.driverFeaturesHigh & ~offeredHigh) === 0 &&
      !state.driverFeaturesBeyond &&
      hasFeature([state.driverFeaturesLow, state.driverFeaturesHigh], VirtioFeature.VERSION_1);
  }

  private writeStatus(written: number): void {
    // 4.2.2: "Writing zero (0x0) to this register triggers a device reset."
    if (written === 0) {
      this.reset();
      return;
    }
    const before = this.state.status;
    let after = before;
    for (const step of statusSteps) {
      if ((written & step.bit) === 0 || (after & step.bit) !== 0) continue;
      if ((after & step.requires) !== step.requires) {
        this.noteGuestError(`status bit ${hex(step.bit)} set before ${hex(step.requires & ~after)}`);
        continue;
      }
      if (step.bit === DeviceStatus.FEATURES_OK && !this.featuresAcceptable(this.state)) {
        this.noteGuestError(`driver features ${hex(this.state.driverFeaturesHigh)}:${hex(this.state.driverFeaturesLow)} refused`);
        continue;
      }
      after |= step.bit;
    }
    if ((before & ~written & ~DeviceStatus.DEVICE_NEEDS_RESET) !== 0) this.noteGuestError('driver tried to clear device status bits');
    this.state.status = after;
    // A fault found before DRIVER_OK (a bad queue) is announced as soon as the driver can hear it.
    const driverOkNow = (after & ~before & DeviceStatus.DRIVER_OK) !== 0;
    if (driverOkNow && (after & DeviceStatus.DEVICE_NEEDS_RESET) !== 0) this.raiseInterrupt(InterruptReason.ConfigChange);
  }

  private writeQueueReady(word: number): void {
    const index = this.state.queueSel;
    const queue = this.queueList[index];
    if (queue === undefined) {
      this.noteGuestError(`QueueReady written for missing queue ${index}`);
      return;
    }
    if (word !== 0) {
      const problem = queue.enable();
      if (problem !== undefined) this.enterNeedsReset(`queue ${index}: ${problem}`);
    } else if (queue.ready) {
      this.backend.queueStopped(index);
      queue.disable();
    }
  }

  private notify(word: number): void {
    // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index (4.2.2).
    const queue = this.queueList[word];
    if (queue === undefined || !queue.ready) {
      this.noteGuestError(`notification for queue ${word}, which is not ready`);
      return;
    }
    if (!this.isLive) {
      this.noteGuestError(`notification for queue ${word} while the device is not live (status ${hex(this.state.status)})`);
      return;
    }
    this.backend.queueNotified(word);
  }

  /** 4.2.2: "Upon reset, the device MUST clear all bits in InterruptStatus and ready bits in the QueueReady register for all queues." */
  private reset(): void {
    this.queueList.forEach((queue, index) => {
      if (queue.ready) this.backend.queueStopped(index);
      queue.reset();
    });
    this.state = initialTransportState();
    this.updateInterruptLine();
  }

  save(writer: SnapshotWriter): void {
    const state = this.state;
    writer.section('virtio-mmio')
      .u32(this.identity.deviceId)
      .u8(state.status).u32(state.deviceFeaturesSel).u32(state.driverFeaturesSel)
      .u32(state.driverFeaturesLow).u32(state.driverFeaturesHigh).bool(state.driverFeaturesBeyond)
      .u32(state.queueSel).u8(state.interruptStatus).u32(state.configGeneration)
      .uint(this.queueList.length);
    for (const queue of this.queueList) queue.save(writer);
  }

  /** Reads and checks a saved transport without changing anything (see {@link applySnapshot}). */
  readSnapshot(reader: SnapshotReader): TransportSnapshot {
    reader.section('virtio-mmio');
    const deviceId = reader.u32();
    if (deviceId !== this.identity.deviceId) throw new SnapshotError(`snapshot holds virtio device type ${deviceId}, this slot has ${this.identity.deviceId}`);
    const transport: TransportState = {
      status: reader.u8(), deviceFeaturesSel: reader.u32(), driverFeaturesSel: reader.u32(),
      driverFeaturesLow: reader.u32(), driverFeaturesHigh: reader.u32(), driverFeaturesBeyond: reader.bool(),
      queueSel: reader.u32(), interruptStatus: reader.u8(), configGeneration: reader.u32(),
    };
    if ((transport.status & ~deviceStatusKnownBits) !== 0) throw new SnapshotError(`bad virtio device status ${hex(transport.status)}`);
    if ((transport.interruptStatus & ~interruptReasonsAll) !== 0) throw new SnapshotError(`bad virtio interrupt status ${hex(transport.interruptStatus)}`);
    for (const step of statusSteps) {
      if ((transport.status & step.bit) !== 0 && (transport.status & step.requires) !== step.requires) {
        throw new SnapshotError(`virtio device status ${hex(transport.status)} skips a step of the state machine`);
      }
    }
    if ((transport.status & DeviceStatus.FEATURES_OK) !== 0 && !this.featuresAcceptable(transport)) {
      throw new SnapshotError('virtio device status has FEATURES_OK with features that were never acceptable');
    }
    const queueCount = reader.uint();
    if (queueCount !== this.queueList.length) throw new SnapshotError(`snapshot has ${queueCount} virtqueues, this device ${this.queueList.length}`);
    const queues = this.queueList.map((queue) => queue.readState(reader));
    return { transport, queues };
  }

  /**
   * Applies a checked snapshot. The interrupt line is driven to match the restored InterruptStatus,
   * since the line level is this device's state (an idempotent level for the interrupt controller).
   */
  applySnapshot(snapshot: TransportSnapshot): void {
    this.state = { ...snapshot.transport };
    snapshot.queues.forEach((state, index) => this.queue(index).applyState(state));
    this.updateInterruptLine();
  }
}

// ---------------------------------------------------------------------------------------------
// Empty slot

/**
 * A virtio-mmio slot with nothing plugged in. 4.2.2: DeviceID "Value zero (0x0) is used to define a
 * system memory map with placeholder devices at static, well known addresses"; the driver "MUST
 * ignore a device with DeviceID 0x0". Like QEMU, magic, version and vendor read normally so that
 * Linux's probe stays quiet; everything else reads 0 and writes are ignored.
 */
export class VirtioEmptySlot implements MmioDevice {
  readonly name = 'virtio-empty';
  readonly windowBytes = virtioMmioWindowBytes;

  read(offset: number, width: AccessWidth): number {
    if (width !== 4 || (offset & 3) !== 0) return 0;
    switch (offset) {
      case VirtioMmioRegister.MagicValue: return virtioMagicValue;
      case VirtioMmioRegister.Version: return virtioMmioVersion;
      case VirtioMmioRegister.VendorId: return virtioVendorIdQemu;
      default: return 0;
    }
  }

  write(_offset: number, _width: AccessWidth, _value: number): void {
    // Nothing to configure.
  }

  save(writer: SnapshotWriter): void {
    writer.section('virtio-empty');
  }

  restore(reader: SnapshotReader): void {
    reader.section('virtio-empty');
  }
}
