/**
 * The virtio network device (virtio 1.2, section 5.1) on a virtio-mmio slot: one receive queue,
 * one transmit queue, a MAC address from the machine's configuration, and link status.
 *
 * Like the disk, this device is a determinism boundary and never touches the host:
 * - A frame the guest transmits becomes one `net-transmit` output, a copy taken when the device
 *   takes the chain; the buffer goes back to the driver at once (a transmit completion says the
 *   device has the frame, not that the wire has). The host holds the output until the protocol
 *   lets it out (after the backup's acknowledgement).
 * - A frame from the network arrives as a `net-receive` event between two instructions (at an
 *   epoch boundary, P1) and is written into the next receive buffer the driver offered. The host
 *   offers at most {@link VirtioNetDevice.receiveRoom} frames at a time, so a frame is dropped
 *   here only when a guest takes its buffers back meanwhile.
 * - The link goes up or down by a `net-link` event (the back-end went away or came back).
 *
 * No offloads and no mergeable receive buffers: every frame and its header fit one receive buffer
 * of the size Linux offers without them (5.1.6.3.1); see docs/BENCHMARKS.md for why that is enough.
 * The MTU is announced (VIRTIO_NET_F_MTU) so that a guest never sends a frame this device would
 * have to refuse.
 *
 * Guest mistakes never become host exceptions: a broken ring or chain sets DEVICE_NEEDS_RESET; a
 * frame that is too long, too short or carries offload requests nobody negotiated is dropped and
 * noted, and its buffer returned.
 */
import type { OutputSink } from '../environment.js';
import type { Ram } from '../memory/ram.js';
import { SnapshotError, type SnapshotReader, type SnapshotWriter } from '../snapshot.js';
import type { AccessWidth, InterruptLine, MmioDevice } from './device.js';
import { assert } from '../assert.js';
import {
  VirtioFeature, VirtioMmioTransport, featureWords, rangesBytes, readConfigSpace, sliceSegments, virtioMmioWindowBytes,
  type DescriptorChain, type RamRange, type VirtioBackend,
} from './virtio-mmio.js';

/** 5.1.1: "Device ID 1". */
export const virtioNetDeviceId = 1;
/** Network device feature bits (5.1.3). */
export const NetFeature = { MTU: 3, MAC: 5, STATUS: 16 } as const;
/** Bits of the config space's status field (5.1.4). */
export const NetLinkStatus = { LINK_UP: 1 } as const;
/** Queue indices (5.1.2): receiveq1, transmitq1 (no control queue: VIRTIO_NET_F_CTRL_VQ is not offered). */
export const NetQueue = { receive: 0, transmit: 1 } as const;
/** QueueNumMax of both queues. */
export const netQueueSizeEntries = 256;
/** The MTU announced to the guest (IP packet bytes). */
export const netMtuBytes = 1500;
/** Ethernet header: destination, source, ethertype. */
export const ethernetHeaderBytes = 14;
/** An 802.1Q tag a guest may add on top of the MTU. */
const vlanTagBytes = 4;
/** The longest frame either way: MTU, Ethernet header and one VLAN tag (Linux's GOOD_PACKET_LEN). */
export const frameBytesMax = netMtuBytes + ethernetHeaderBytes + vlanTagBytes;
/** The shortest: an Ethernet header (padding to 60 bytes is the sender's business). */
export const frameBytesMin = ethernetHeaderBytes;
/**
 * 5.1.6: struct virtio_net_hdr. With VIRTIO_F_VERSION_1 it always includes num_buffers: flags (1),
 * gso_type (1), hdr_len (2), gso_size (2), csum_start (2), csum_offset (2), num_buffers (2).
 */
export const netHeaderBytes = 12;
/** 5.1.6: "VIRTIO_NET_HDR_GSO_NONE 0". */
const gsoNone = 0;
/** The MAC address QEMU gives its first NIC when none is set. */
export const defaultMacAddress = '52:54:00:12:34:56';

/** Offsets in struct virtio_net_config (5.1.4): mac[6], status, max_virtqueue_pairs, mtu. */
const NetConfigField = { mac: 0, status: 6, mtu: 10 } as const;
/** The structure through mtu; speed and duplex belong to a feature not offered. */
const configSpaceBytes = 12;
const snapshotFormatVersion = 1;
const ethertypeIpv4 = 0x0800;
const ethertypeArp = 0x0806;

/** What Linux offers per receive buffer without offloads or mergeable buffers: a header and GOOD_PACKET_LEN (1518). */
const linuxReceiveBufferBytes = netHeaderBytes + 1518;
assert(netHeaderBytes + frameBytesMax <= linuxReceiveBufferBytes, 'the longest frame and its header fit the receive buffer Linux offers');

/** Parses "52:54:00:12:34:56" into six bytes; undefined if it is not a unicast MAC address. */
export function parseMacAddress(text: string): Uint8Array | undefined {
  const match = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  if (match === null) return undefined;
  const bytes = Uint8Array.from(match.slice(1), (part) => parseInt(part, 16));
  // The group bit (bit 0 of the first byte) marks multicast and broadcast addresses.
  return (bytes[0]! & 1) === 0 ? bytes : undefined;
}

export function formatMacAddress(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join(':');
}

export interface VirtioNetConfig {
  readonly slot: number;
  /** Unicast MAC address, "52:54:00:12:34:56". */
  readonly mac: string;
}

export interface VirtioNetContext {
  readonly ram: Ram;
  readonly irq: InterruptLine;
  readonly outputs: OutputSink;
}

/** What became of a received frame. */
export type ReceiveResult = 'delivered' | 'no-buffer' | 'not-ready' | 'link-down' | 'bad-buffer';

export class VirtioNetDevice implements MmioDevice, VirtioBackend {
  readonly name: string;
  readonly windowBytes = virtioMmioWindowBytes;
  readonly slot: number;
  readonly mac: string;
  private readonly macBytes: Uint8Array;
  private readonly configSpace = new Uint8Array(configSpaceBytes);
  private readonly ram: Ram;
  private readonly outputs: OutputSink;
  private readonly transport: VirtioMmioTransport;
  private linkUp = true;
  /** The IPv4 address the guest last sent from (0: none yet): what the host announces after a failover. */
  private lastSourceIpv4 = 0;
  /** Frames the guest lost because it had no receive buffer, for diagnostics (not saved: not guest-visible). */
  receiveDropped = 0;

  constructor(config: VirtioNetConfig, context: VirtioNetContext) {
    if (!Number.isInteger(config.slot) || config.slot < 0) throw new RangeError(`virtio slot ${config.slot} is not a non-negative integer`);
    const mac = parseMacAddress(config.mac);
    if (mac === undefined) throw new RangeError(`${JSON.stringify(config.mac)} is not a unicast MAC address like ${defaultMacAddress}`);
    this.slot = config.slot;
    this.name = `virtio-net${config.slot}`;
    this.mac = formatMacAddress(mac);
    this.macBytes = mac;
    this.ram = context.ram;
    this.outputs = context.outputs;
    this.configSpace.set(mac, NetConfigField.mac);
    this.writeLinkStatus();
    new DataView(this.configSpace.buffer).setUint16(NetConfigField.mtu, netMtuBytes, true);
    // INDIRECT_DESC lets Linux put a frame of several pieces in one ring slot.
    const offered = [VirtioFeature.VERSION_1, VirtioFeature.RING_INDIRECT_DESC, NetFeature.MTU, NetFeature.MAC, NetFeature.STATUS];
    this.transport = new VirtioMmioTransport(
      { deviceId: virtioNetDeviceId, features: featureWords(offered), queueCount: 2, queueSizeMax: netQueueSizeEntries },
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

  /** The latest guest mistake, for diagnostics; not guest-visible. */
  get lastGuestError(): string | undefined {
    return this.transport.lastGuestError;
  }

  get isLinkUp(): boolean {
    return this.linkUp;
  }

  /** The MAC address as six bytes (a copy). */
  get macAddress(): Uint8Array {
    return this.macBytes.slice();
  }

  /** The IPv4 address the guest last used as a source (ARP or IPv4), if any: four bytes. */
  get guestIpv4(): Uint8Array | undefined {
    if (this.lastSourceIpv4 === 0) return undefined;
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, this.lastSourceIpv4);
    return bytes;
  }

  /**
   * How many frames the device can take now: the receive buffers the driver has offered and the
   * device has not used. 0 while the device or the queue is not running or the link is down.
   */
  get receiveRoom(): number {
    const queue = this.transport.queue(NetQueue.receive);
    if (!this.linkUp || !queue.ready || !this.transport.isLive) return 0;
    return queue.availableCount();
  }

  /** The link went up or down (the back-end went away or came back): a configuration change. */
  setLink(up: boolean): void {
    if (up === this.linkUp) return;
    this.linkUp = up;
    this.writeLinkStatus();
    // 5.1.4.2: the status field is valid only with VIRTIO_NET_F_STATUS; without it there is nothing to announce.
    if (this.transport.negotiated(NetFeature.STATUS)) this.transport.configChanged();
  }

  private writeLinkStatus(): void {
    new DataView(this.configSpace.buffer).setUint16(NetConfigField.status, this.linkUp ? NetLinkStatus.LINK_UP : 0, true);
  }

  /**
   * Writes `frame` (checked by the caller: frameBytesMin..frameBytesMax bytes) into the next
   * receive buffer, after a header that asks for nothing (5.1.6.4).
   */
  receive(frame: Uint8Array): ReceiveResult {
    if (frame.length < frameBytesMin || frame.length > frameBytesMax) throw new RangeError(`a received frame of ${frame.length} bytes (${frameBytesMin}..${frameBytesMax} allowed)`);
    const queue = this.transport.queue(NetQueue.receive);
    if (!queue.ready || !this.transport.isLive) return 'not-ready';
    if (!this.linkUp) return 'link-down';
    const next = queue.takeAvailable();
    if (next.kind === 'empty') {
      this.receiveDropped++;
      return 'no-buffer';
    }
    if (next.kind === 'error') {
      this.transport.enterNeedsReset(`receive queue: ${next.reason}`);
      return 'bad-buffer';
    }
    const chain = queue.readChain(next.headIndex, this.transport.negotiated(VirtioFeature.RING_INDIRECT_DESC));
    if (!chain.ok) {
      this.transport.enterNeedsReset(`receive queue: ${chain.reason}`);
      return 'bad-buffer';
    }
    return this.fill(chain.chain, frame);
  }

  private fill(chain: DescriptorChain, frame: Uint8Array): ReceiveResult {
    const head = chain.headIndex;
    // 5.1.6.3: receive buffers are device-writable; a readable one is a broken queue.
    if (chain.readableBytes !== 0) {
      this.transport.enterNeedsReset(`receive buffer at descriptor ${head}: ${chain.readableBytes} device-readable bytes`);
      return 'bad-buffer';
    }
    const totalBytes = netHeaderBytes + frame.length;
    const ranges = sliceSegments(chain.segments, 0, totalBytes);
    if (ranges === undefined) {
      // Too small (5.1.6.3.1 asks for 1526 bytes) or outside RAM: the frame is lost, the buffer returned empty.
      this.transport.noteGuestError(`receive buffer at descriptor ${head}: ${chain.writableBytes} bytes, ${totalBytes} needed (or outside RAM)`);
      this.receiveDropped++;
      this.transport.returnUsed(NetQueue.receive, head, 0);
      return 'bad-buffer';
    }
    const bytes = new Uint8Array(totalBytes);
    // 5.1.6.4.1: flags 0, gso_type NONE; "If VIRTIO_NET_F_MRG_RXBUF has not been negotiated, the
    // device MUST set num_buffers to 1."
    bytes[1] = gsoNone;
    new DataView(bytes.buffer).setUint16(10, 1, true);
    bytes.set(frame, netHeaderBytes);
    scatter(this.ram, ranges, bytes);
    this.transport.returnUsed(NetQueue.receive, head, totalBytes);
    return 'delivered';
  }

  // --- VirtioBackend ----------------------------------------------------------------------------

  readConfig(offsetBytes: number, width: AccessWidth): number {
    return readConfigSpace(this.configSpace, offsetBytes, width);
  }

  writeConfig(offsetBytes: number, _width: AccessWidth, value: number): void {
    // 5.1.4: the MAC is writable only by legacy drivers, and nothing else is writable.
    this.transport.noteGuestError(`write of 0x${(value >>> 0).toString(16)} to read-only config offset 0x${offsetBytes.toString(16)}`);
  }

  queueNotified(queueIndex: number): void {
    // New receive buffers need nothing now: frames come at the next boundary, into whatever is offered then.
    if (queueIndex === NetQueue.transmit) this.walkTransmitRing();
  }

  queueStopped(_queueIndex: number): void {
    // Nothing is held across a chain: a transmitted frame is copied and its buffer returned at once.
  }

  // --- Transmit ---------------------------------------------------------------------------------

  /** Takes every frame the driver has published; at most a queue's worth (the driver cannot be further ahead). */
  private walkTransmitRing(): void {
    const queue = this.transport.queue(NetQueue.transmit);
    for (let taken = 0; taken < queue.sizeEntries && queue.ready && this.transport.isLive; taken++) {
      const next = queue.takeAvailable();
      if (next.kind === 'empty') return;
      if (next.kind === 'error') {
        this.transport.enterNeedsReset(`transmit queue: ${next.reason}`);
        return;
      }
      const chain = queue.readChain(next.headIndex, this.transport.negotiated(VirtioFeature.RING_INDIRECT_DESC));
      if (!chain.ok) {
        this.transport.enterNeedsReset(`transmit queue: ${chain.reason}`);
        return;
      }
      this.transmit(chain.chain);
      // 5.1.6.2: the device reads the buffer only; it writes nothing back.
      this.transport.returnUsed(NetQueue.transmit, chain.chain.headIndex, 0);
    }
  }

  private transmit(chain: DescriptorChain): void {
    const head = chain.headIndex;
    const drop = (reason: string): void => this.transport.noteGuestError(`transmit at descriptor ${head}: ${reason}; frame dropped`);
    if (chain.writableBytes !== 0) return drop(`${chain.writableBytes} device-writable bytes in a transmit buffer`);
    const frameBytes = chain.readableBytes - netHeaderBytes;
    if (frameBytes < frameBytesMin || frameBytes > frameBytesMax) return drop(`a frame of ${frameBytes} bytes (${frameBytesMin}..${frameBytesMax} allowed)`);
    const ranges = sliceSegments(chain.segments, 0, chain.readableBytes);
    if (ranges === undefined) return drop('buffer outside RAM');
    const bytes = gather(this.ram, ranges);
    // No checksum or segmentation offload was offered, so the driver may ask for neither (5.1.6.2.1).
    if (bytes[0] !== 0 || bytes[1] !== gsoNone) return drop(`header asks for flags ${bytes[0]}, gso_type ${bytes[1]}, neither negotiated`);
    if (!this.linkUp) return; // a cable pulled: the frame goes nowhere, as on hardware
    const frame = bytes.slice(netHeaderBytes);
    this.noteSourceAddress(frame);
    this.outputs.emit({ kind: 'net-transmit', slot: this.slot, frame });
  }

  /** Remembers the IPv4 address the guest sends from (an ARP sender, an IPv4 source). */
  private noteSourceAddress(frame: Uint8Array): void {
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const ethertype = view.getUint16(12);
    let address = 0;
    // ARP for IPv4 over Ethernet (RFC 826): htype 1, ptype 0x0800, sender protocol address at 28.
    if (ethertype === ethertypeArp && frame.length >= 42 && view.getUint16(14) === 1 && view.getUint16(16) === ethertypeIpv4) address = view.getUint32(28);
    else if (ethertype === ethertypeIpv4 && frame.length >= 34) address = view.getUint32(26);
    if (address !== 0) this.lastSourceIpv4 = address >>> 0;
  }

  // --- Snapshot ---------------------------------------------------------------------------------

  save(writer: SnapshotWriter): void {
    writer.section('virtio-net').u32(snapshotFormatVersion).uint(this.slot).string(this.mac);
    this.transport.save(writer);
    writer.bool(this.linkUp).u32(this.lastSourceIpv4);
  }

  /** Restores a state saved by {@link save}; checks everything before changing anything. */
  restore(reader: SnapshotReader): void {
    reader.section('virtio-net');
    const version = reader.u32();
    if (version !== snapshotFormatVersion) throw new SnapshotError(`virtio-net snapshot format ${version}, expected ${snapshotFormatVersion}`);
    const slot = reader.uint();
    const mac = reader.string();
    if (slot !== this.slot || mac !== this.mac) throw new SnapshotError(`snapshot is of NIC slot ${slot} (${mac}), this one is slot ${this.slot} (${this.mac})`);
    const transport = this.transport.readSnapshot(reader);
    const linkUp = reader.bool();
    const lastSourceIpv4 = reader.u32();
    this.transport.applySnapshot(transport);
    this.linkUp = linkUp;
    this.writeLinkStatus();
    this.lastSourceIpv4 = lastSourceIpv4;
  }
}

function gather(ram: Ram, ranges: readonly RamRange[]): Uint8Array {
  const result = new Uint8Array(rangesBytes(ranges));
  let position = 0;
  for (const range of ranges) {
    result.set(ram.readBytes(range.address, range.lengthBytes), position);
    position += range.lengthBytes;
  }
  return result;
}

/** Through Ram.writeBytes, so that the code cache hears of it. */
function scatter(ram: Ram, ranges: readonly RamRange[], data: Uint8Array): void {
  let position = 0;
  for (const range of ranges) {
    ram.writeBytes(range.address, data.subarray(position, position + range.lengthBytes));
    position += range.lengthBytes;
  }
}
