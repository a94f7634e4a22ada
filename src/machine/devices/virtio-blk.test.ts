/**
 * Unit tests for the virtio-mmio transport and the virtio block device, driven from the guest
 * side by a small driver that lays out a split virtqueue in RAM the way Linux does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DiskReadRequest, DiskRequest, MachineOutput } from '../environment.js';
import { Ram, ramBaseAddress } from '../memory/ram.js';
import { SnapshotError, SnapshotReader, SnapshotWriter } from '../snapshot.js';
import type { InterruptLine } from './device.js';
import {
  BlockFeature, BlockRequestType, BlockStatus, VirtioBlockDevice, blockQueueSizeEntries, requestDataBytesMax,
  segmentBytesMax, segmentsPerRequestMax, type VirtioBlockConfig,
} from './virtio-blk.js';
import {
  DescriptorFlag, DeviceStatus, InterruptReason, VirtioEmptySlot, VirtioFeature, VirtioMmioRegister as R,
  featureWords, virtioMagicValue, virtioVendorIdQemu, type FeatureWords,
} from './virtio-mmio.js';

// ---------------------------------------------------------------------------------------------
// Test rig: fake interrupt line, array output sink, and a driver-side virtqueue.

class FakeIrq implements InterruptLine {
  level = false;
  set(level: boolean): void {
    this.level = level;
  }
}

interface GuestBuffer {
  readonly address: number;
  readonly length: number;
  readonly writable: boolean;
  /** High 32 bits of the 64-bit descriptor address. */
  readonly addressHigh?: number;
  /** Extra descriptor flags (INDIRECT, or a hostile WRITE on an indirect descriptor). */
  readonly flags?: number;
}

interface UsedElement {
  readonly id: number;
  readonly len: number;
}

const statusInit = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER;
const linuxFeatures = featureWords([
  VirtioFeature.VERSION_1, VirtioFeature.RING_INDIRECT_DESC,
  BlockFeature.SIZE_MAX, BlockFeature.SEG_MAX, BlockFeature.BLK_SIZE, BlockFeature.FLUSH,
]);
const diskSectors = 64;

/** The guest half of the protocol: registers, ring layout, descriptor allocation. */
class Driver {
  readonly descAddress = ramBaseAddress + 0x1000;
  readonly availAddress = ramBaseAddress + 0x3000;
  readonly usedAddress = ramBaseAddress + 0x4000;
  queueSize = 0;
  heap = ramBaseAddress + 0x1_0000;
  nextDescriptor = 0;
  availIndex = 0;
  usedSeen = 0;

  constructor(readonly ram: Ram, readonly device: VirtioBlockDevice) {}

  /** The same driver state, talking to another device and RAM (for restored snapshots). */
  cloneFor(ram: Ram, device: VirtioBlockDevice): Driver {
    const clone = new Driver(ram, device);
    clone.queueSize = this.queueSize;
    clone.heap = this.heap;
    clone.nextDescriptor = this.nextDescriptor;
    clone.availIndex = this.availIndex;
    clone.usedSeen = this.usedSeen;
    return clone;
  }

  reg(offset: number): number {
    return this.device.read(offset, 4);
  }

  setReg(offset: number, value: number): void {
    this.device.write(offset, 4, value);
  }

  get status(): number {
    return this.reg(R.Status);
  }

  /** Reset, ACKNOWLEDGE, DRIVER, write features, FEATURES_OK; true if FEATURES_OK stuck (3.1.1). */
  negotiate(features: FeatureWords = linuxFeatures): boolean {
    this.setReg(R.Status, 0);
    this.setReg(R.Status, DeviceStatus.ACKNOWLEDGE);
    this.setReg(R.Status, statusInit);
    this.setReg(R.DriverFeaturesSel, 0);
    this.setReg(R.DriverFeatures, features[0]);
    this.setReg(R.DriverFeaturesSel, 1);
    this.setReg(R.DriverFeatures, features[1]);
    this.setReg(R.Status, statusInit | DeviceStatus.FEATURES_OK);
    return (this.status & DeviceStatus.FEATURES_OK) !== 0;
  }

  setupQueue(size = 16, rings?: { desc?: number; avail?: number; used?: number; descHigh?: number }): void {
    this.setReg(R.QueueSel, 0);
    this.setReg(R.QueueNum, size);
    this.setReg(R.QueueDescLow, rings?.desc ?? this.descAddress);
    this.setReg(R.QueueDescHigh, rings?.descHigh ?? 0);
    this.setReg(R.QueueDriverLow, rings?.avail ?? this.availAddress);
    this.setReg(R.QueueDriverHigh, 0);
    this.setReg(R.QueueDeviceLow, rings?.used ?? this.usedAddress);
    this.setReg(R.QueueDeviceHigh, 0);
    this.setReg(R.QueueReady, 1);
    this.queueSize = size;
    this.nextDescriptor = 0;
    this.availIndex = 0;
    this.usedSeen = 0;
  }

  driverOk(): void {
    this.setReg(R.Status, this.status | DeviceStatus.DRIVER_OK);
  }

  init(options: { features?: FeatureWords; queueSize?: number } = {}): void {
    assert.equal(this.negotiate(options.features), true, 'FEATURES_OK accepted');
    this.setupQueue(options.queueSize);
    this.driverOk();
    assert.equal(this.status, statusInit | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
  }

  alloc(lengthBytes: number, fill = 0): number {
    const address = this.heap;
    this.heap += Math.ceil(Math.max(lengthBytes, 1) / 16) * 16;
    assert.ok(this.ram.contains(address, lengthBytes), 'test heap exhausted');
    this.ram.writeBytes(address, new Uint8Array(lengthBytes).fill(fill));
    return address;
  }

  writeDescriptor(table: number, index: number, buffer: GuestBuffer, next: number | undefined): void {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, buffer.address >>> 0, true);
    view.setUint32(4, buffer.addressHigh ?? 0, true);
    view.setUint32(8, buffer.length >>> 0, true);
    let flags = (buffer.writable ? DescriptorFlag.WRITE : 0) | (buffer.flags ?? 0);
    if (next !== undefined) flags |= DescriptorFlag.NEXT;
    view.setUint16(12, flags, true);
    view.setUint16(14, next ?? 0, true);
    this.ram.writeBytes(table + index * 16, bytes);
  }

  /** Writes `buffers` as a chain into the next free descriptors; returns the head index. */
  chain(buffers: readonly GuestBuffer[]): number {
    const indices = buffers.map(() => {
      const index = this.nextDescriptor;
      this.nextDescriptor = (this.nextDescriptor + 1) % this.queueSize;
      return index;
    });
    buffers.forEach((buffer, i) => this.writeDescriptor(this.descAddress, indices[i]!, buffer, indices[i + 1]));
    return indices[0]!;
  }

  publish(head: number): void {
    const slot = this.availIndex % this.queueSize;
    this.write16(this.availAddress + 4 + 2 * slot, head);
    this.availIndex = (this.availIndex + 1) & 0xffff;
    this.write16(this.availAddress + 2, this.availIndex);
  }

  notify(): void {
    this.setReg(R.QueueNotify, 0);
  }

  submit(buffers: readonly GuestBuffer[]): number {
    const head = this.chain(buffers);
    this.publish(head);
    this.notify();
    return head;
  }

  write16(address: number, value: number): void {
    this.ram.writeBytes(address, new Uint8Array([value & 0xff, (value >>> 8) & 0xff]));
  }

  read16(address: number): number {
    const bytes = this.ram.readBytes(address, 2);
    return bytes[0]! | (bytes[1]! << 8);
  }

  read32(address: number): number {
    return new DataView(this.ram.readBytes(address, 4).buffer).getUint32(0, true);
  }

  /** Used elements published since the last call. */
  takeUsed(): UsedElement[] {
    const usedIndex = this.read16(this.usedAddress + 2);
    const result: UsedElement[] = [];
    while (this.usedSeen !== usedIndex) {
      const at = this.usedAddress + 4 + 8 * (this.usedSeen % this.queueSize);
      result.push({ id: this.read32(at), len: this.read32(at + 4) });
      this.usedSeen = (this.usedSeen + 1) & 0xffff;
    }
    return result;
  }

  /** A block request header (5.2.6) in its own device-readable buffer. */
  header(type: number, sector: number | bigint): GuestBuffer {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, type, true);
    view.setBigUint64(8, BigInt(sector), true);
    const address = this.alloc(16);
    this.ram.writeBytes(address, bytes);
    return { address, length: 16, writable: false };
  }

  statusBuffer(): GuestBuffer {
    return { address: this.alloc(1, 0xee), length: 1, writable: true };
  }

  /** A read of `segments` buffers of the given sizes; returns where everything is. */
  read(sector: number, segmentBytes: readonly number[]): { head: number; data: GuestBuffer[]; status: GuestBuffer } {
    const data = segmentBytes.map((length) => ({ address: this.alloc(length, 0xaa), length, writable: true }));
    const status = this.statusBuffer();
    const head = this.submit([this.header(BlockRequestType.IN, sector), ...data, status]);
    return { head, data, status };
  }

  write(sector: number, payload: Uint8Array, segments = 1): { head: number; data: GuestBuffer[]; status: GuestBuffer } {
    const segmentLength = payload.length / segments;
    const data: GuestBuffer[] = [];
    for (let i = 0; i < segments; i++) {
      const address = this.alloc(segmentLength);
      this.ram.writeBytes(address, payload.subarray(i * segmentLength, (i + 1) * segmentLength));
      data.push({ address, length: segmentLength, writable: false });
    }
    const status = this.statusBuffer();
    const head = this.submit([this.header(BlockRequestType.OUT, sector), ...data, status]);
    return { head, data, status };
  }

  statusByte(status: GuestBuffer): number {
    return this.ram.readBytes(status.address, 1)[0]!;
  }
}

interface Rig {
  readonly ram: Ram;
  readonly irq: FakeIrq;
  readonly outputs: MachineOutput[];
  readonly device: VirtioBlockDevice;
  readonly driver: Driver;
}

const defaultConfig: VirtioBlockConfig = { slot: 3, capacityBytes: diskSectors * 512, readOnly: false, serial: 'understudy-disk-0001' };

function makeRig(config: Partial<VirtioBlockConfig> = {}, readNow?: (request: DiskReadRequest) => Uint8Array | undefined): Rig {
  const ram = new Ram(1 << 20);
  const irq = new FakeIrq();
  const outputs: MachineOutput[] = [];
  const device = new VirtioBlockDevice({ ...defaultConfig, ...config }, { ram, irq, outputs: { emit: (output) => outputs.push(output) }, ...(readNow === undefined ? {} : { readNow }) });
  return { ram, irq, outputs, device, driver: new Driver(ram, device) };
}

function readyRig(
  config: Partial<VirtioBlockConfig> = {},
  options: { features?: FeatureWords; queueSize?: number; readNow?: (request: DiskReadRequest) => Uint8Array | undefined } = {},
): Rig {
  const rig = makeRig(config, options.readNow);
  rig.driver.init(options);
  return rig;
}

function diskRequests(outputs: readonly MachineOutput[]): DiskRequest[] {
  return outputs.flatMap((output) => (output.kind === 'disk-request' ? [output.request] : []));
}

function pattern(lengthBytes: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) bytes[i] = (i * 7 + seed * 13 + (i >>> 8)) & 0xff;
  return bytes;
}

function needsReset(rig: Rig): boolean {
  return (rig.driver.status & DeviceStatus.DEVICE_NEEDS_RESET) !== 0;
}

function saveDevice(device: VirtioBlockDevice): Uint8Array {
  const writer = new SnapshotWriter();
  device.save(writer);
  return writer.finish();
}

/** Asserts the device answered the request itself: one used element with `status` and `len`, and no output. */
function assertAnsweredAtOnce(rig: Rig, request: { head: number; status: GuestBuffer }, status: number, len = 1): void {
  assert.deepEqual(rig.driver.takeUsed(), [{ id: request.head, len }]);
  assert.equal(rig.driver.statusByte(request.status), status);
  assert.deepEqual(diskRequests(rig.outputs), []);
  assert.equal(rig.irq.level, true);
  assert.equal(needsReset(rig), false);
}

// ---------------------------------------------------------------------------------------------
// Registers and the empty slot

test('an empty slot identifies itself as virtio with device ID 0 and ignores writes', () => {
  const slot = new VirtioEmptySlot();
  assert.equal(slot.windowBytes, 0x200);
  assert.equal(slot.read(R.MagicValue, 4), virtioMagicValue);
  assert.equal(slot.read(R.Version, 4), 2);
  assert.equal(slot.read(R.DeviceId, 4), 0);
  assert.equal(slot.read(R.VendorId, 4), 0x554d4551);
  for (let offset = 0x10; offset < 0x200; offset += 4) {
    if (offset !== R.VendorId) assert.equal(slot.read(offset, 4), 0, `offset 0x${offset.toString(16)}`);
  }
  slot.write(R.Status, 4, 0xf);
  slot.write(R.QueueNotify, 4, 0);
  assert.equal(slot.read(R.Status, 4), 0);
  const writer = new SnapshotWriter();
  slot.save(writer);
  new VirtioEmptySlot().restore(new SnapshotReader(writer.finish()));
});

test('identification, feature and configuration registers', () => {
  const { device, driver } = makeRig();
  assert.equal(device.windowBytes, 0x200);
  assert.equal(driver.reg(R.MagicValue), virtioMagicValue);
  assert.equal(driver.reg(R.Version), 2);
  assert.equal(driver.reg(R.DeviceId), 2);
  assert.equal(driver.reg(R.VendorId), virtioVendorIdQemu);
  driver.setReg(R.DeviceFeaturesSel, 0);
  const low = driver.reg(R.DeviceFeatures);
  for (const bit of [BlockFeature.SIZE_MAX, BlockFeature.SEG_MAX, BlockFeature.BLK_SIZE, BlockFeature.FLUSH, VirtioFeature.RING_INDIRECT_DESC]) {
    assert.equal((low >>> bit) & 1, 1, `feature ${bit} offered`);
  }
  assert.equal((low >>> BlockFeature.RO) & 1, 0, 'a writable disk does not offer RO');
  assert.equal((low >>> VirtioFeature.RING_EVENT_IDX) & 1, 0, 'EVENT_IDX not offered');
  driver.setReg(R.DeviceFeaturesSel, 1);
  assert.equal(driver.reg(R.DeviceFeatures), 1, 'VERSION_1 is bit 32');
  driver.setReg(R.DeviceFeaturesSel, 2);
  assert.equal(driver.reg(R.DeviceFeatures), 0);
  assert.equal(driver.reg(R.QueueNumMax), blockQueueSizeEntries);
  driver.setReg(R.QueueSel, 1);
  assert.equal(driver.reg(R.QueueNumMax), 0, 'only queue 0 exists');
  driver.setReg(R.QueueSel, 0);
  assert.equal(driver.reg(R.ConfigGeneration), 0);
  assert.equal(driver.reg(R.ShmLenLow), 0xffffffff, 'no shared memory regions');

  // struct virtio_blk_config: capacity (sectors), size_max, seg_max, blk_size.
  assert.equal(device.read(0x100, 4), diskSectors);
  assert.equal(device.read(0x104, 4), 0);
  assert.equal(device.read(0x108, 4), segmentBytesMax);
  assert.equal(device.read(0x10c, 4), segmentsPerRequestMax);
  assert.equal(device.read(0x114, 4), 512);
  assert.equal(device.read(0x114, 2), 512);
  assert.equal(device.read(0x115, 1), 2);
  assert.equal(device.read(0x100, 1), diskSectors);
  assert.equal(device.read(0x1fc, 4), 0xffff_ffff, 'beyond the structure: all ones, as QEMU');
  assert.equal(device.read(0x1fe, 2), 0xffff);
  assert.equal(segmentsPerRequestMax * segmentBytesMax, requestDataBytesMax);

  // Config writes and writes to read-only registers are ignored; narrow register accesses read 0.
  device.write(0x100, 4, 0x1234);
  assert.equal(device.read(0x100, 4), diskSectors);
  driver.setReg(R.DeviceId, 7);
  driver.setReg(R.MagicValue, 0);
  assert.equal(driver.reg(R.DeviceId), 2);
  assert.equal(device.read(R.MagicValue, 1), 0);
  assert.equal(device.read(R.MagicValue, 2), 0);
  // Write-only registers read 0.
  driver.setReg(R.QueueNum, 8);
  driver.setReg(R.QueueDescLow, 0x8000_1000);
  assert.equal(driver.reg(R.QueueNum), 0);
  assert.equal(driver.reg(R.QueueDescLow), 0);
});

test('a read-only disk offers VIRTIO_BLK_F_RO and a big disk reports its capacity in two words', () => {
  const { device, driver } = makeRig({ readOnly: true, capacityBytes: 2 ** 33 + 1024 });
  driver.setReg(R.DeviceFeaturesSel, 0);
  assert.equal((driver.reg(R.DeviceFeatures) >>> BlockFeature.RO) & 1, 1);
  const sectors = (2 ** 33 + 1024) / 512;
  assert.equal(device.read(0x100, 4), sectors % 2 ** 32);
  assert.equal(device.read(0x104, 4), Math.floor(sectors / 2 ** 32));
});

test('constructor rejects impossible configurations', () => {
  assert.throws(() => makeRig({ capacityBytes: 1000 }), RangeError);
  assert.throws(() => makeRig({ serial: 'x'.repeat(21) }), RangeError);
  assert.throws(() => makeRig({ serial: 'caf\u00e9' }), RangeError);
  assert.throws(() => makeRig({ slot: -1 }), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Initialization and feature negotiation

test('feature negotiation accepts a subset with VERSION_1 and the full handshake reaches DRIVER_OK', () => {
  const { driver } = makeRig();
  assert.equal(driver.negotiate(featureWords([VirtioFeature.VERSION_1])), true);
  assert.equal(driver.negotiate(), true);
  driver.setupQueue(256);
  assert.equal(driver.reg(R.QueueReady), 1);
  driver.driverOk();
  assert.equal(driver.status, statusInit | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
});

test('feature negotiation refuses FEATURES_OK for bad feature sets', () => {
  const { driver } = makeRig();
  const cases: Array<[string, FeatureWords]> = [
    ['without VERSION_1', featureWords([BlockFeature.FLUSH])],
    ['with EVENT_IDX, never offered', featureWords([VirtioFeature.VERSION_1, VirtioFeature.RING_EVENT_IDX])],
    ['with RO on a writable disk', featureWords([VirtioFeature.VERSION_1, BlockFeature.RO])],
    ['with an unknown device bit', featureWords([VirtioFeature.VERSION_1, 7])],
    ['with a high transport bit', featureWords([VirtioFeature.VERSION_1, 40])],
  ];
  for (const [what, features] of cases) {
    assert.equal(driver.negotiate(features), false, what);
    assert.equal(driver.status, statusInit, `${what}: ACKNOWLEDGE|DRIVER kept, FEATURES_OK refused`);
    driver.driverOk();
    assert.equal(driver.status & DeviceStatus.DRIVER_OK, 0, `${what}: DRIVER_OK needs FEATURES_OK`);
  }
  // A non-zero word beyond bit 63.
  driver.setReg(R.Status, 0);
  driver.setReg(R.Status, statusInit);
  driver.setReg(R.DriverFeaturesSel, 1);
  driver.setReg(R.DriverFeatures, 1);
  driver.setReg(R.DriverFeaturesSel, 2);
  driver.setReg(R.DriverFeatures, 1);
  driver.setReg(R.Status, statusInit | DeviceStatus.FEATURES_OK);
  assert.equal(driver.status & DeviceStatus.FEATURES_OK, 0);
});

test('the status state machine ignores skipped steps and cleared bits; writing 0 resets', () => {
  const { driver } = makeRig();
  driver.setReg(R.Status, DeviceStatus.DRIVER);
  assert.equal(driver.status, 0, 'DRIVER needs ACKNOWLEDGE');
  driver.setReg(R.Status, DeviceStatus.ACKNOWLEDGE | DeviceStatus.FEATURES_OK);
  assert.equal(driver.status, DeviceStatus.ACKNOWLEDGE, 'FEATURES_OK needs DRIVER');
  driver.setReg(R.Status, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DEVICE_NEEDS_RESET);
  assert.equal(driver.status, DeviceStatus.ACKNOWLEDGE, 'DEVICE_NEEDS_RESET belongs to the device');
  driver.setReg(R.Status, DeviceStatus.DRIVER | DeviceStatus.ACKNOWLEDGE);
  driver.setReg(R.Status, DeviceStatus.DRIVER);
  assert.equal(driver.status, statusInit, 'bits cannot be cleared');
  driver.setReg(R.Status, statusInit | DeviceStatus.FAILED);
  assert.equal(driver.status, statusInit | DeviceStatus.FAILED);
  driver.setReg(R.Status, 0);
  assert.equal(driver.status, 0);
  // One write may take several legal steps at once.
  driver.setReg(R.DriverFeaturesSel, 1);
  driver.setReg(R.DriverFeatures, 1);
  driver.setReg(R.Status, statusInit | DeviceStatus.FEATURES_OK);
  assert.equal(driver.status, statusInit | DeviceStatus.FEATURES_OK);
});

test('driver features are frozen once FEATURES_OK is set', () => {
  const rig = makeRig();
  rig.driver.init({ features: featureWords([VirtioFeature.VERSION_1]) });
  rig.driver.setReg(R.DriverFeaturesSel, 0);
  rig.driver.setReg(R.DriverFeatures, linuxFeatures[0]);
  // An indirect descriptor is now a protocol error, since INDIRECT_DESC was not negotiated.
  const table = rig.driver.alloc(16);
  rig.driver.writeDescriptor(table, 0, rig.driver.header(BlockRequestType.FLUSH, 0), undefined);
  rig.driver.submit([{ address: table, length: 16, writable: false, flags: DescriptorFlag.INDIRECT }]);
  assert.equal(needsReset(rig), true);
});

// ---------------------------------------------------------------------------------------------
// Requests

test('a read emits one output, then the completion scatters data, writes status and used ring, and interrupts', () => {
  const rig = readyRig();
  const { driver, device, irq } = rig;
  const request = driver.read(2, [512, 1024]);
  assert.deepEqual(diskRequests(rig.outputs), [{ op: 'read', slot: 3, requestId: 1, offsetBytes: 1024, lengthBytes: 1536 }]);
  assert.deepEqual(device.inFlightRequestIds, [1]);
  assert.deepEqual(driver.takeUsed(), [], 'nothing used before the completion');
  assert.equal(irq.level, false);
  assert.equal(driver.statusByte(request.status), 0xee, 'status untouched');

  const data = pattern(1536, 1);
  assert.equal(device.complete(1, 'ok', data), true);
  assert.deepEqual(rig.ram.readBytes(request.data[0]!.address, 512), data.subarray(0, 512));
  assert.deepEqual(rig.ram.readBytes(request.data[1]!.address, 1024), data.subarray(512));
  assert.equal(driver.statusByte(request.status), BlockStatus.OK);
  assert.deepEqual(driver.takeUsed(), [{ id: request.head, len: 1537 }]);
  assert.equal(irq.level, true);
  assert.equal(driver.reg(R.InterruptStatus), InterruptReason.UsedBuffer);
  driver.setReg(R.InterruptAck, InterruptReason.UsedBuffer);
  assert.equal(irq.level, false);
  assert.equal(driver.reg(R.InterruptStatus), 0);
  assert.deepEqual(device.inFlightRequestIds, []);

  assert.equal(device.complete(1, 'ok', data), false, 'a second completion is unknown');
  assert.equal(device.complete(99, 'ok'), false, 'never issued');
  assert.equal(device.complete(Number.NaN, 'io-error'), false);
  assert.deepEqual(driver.takeUsed(), []);
});

test('reads answered at once: inside the notify, at most three a notify, never in a walk after a completion', () => {
  const asked: DiskReadRequest[] = [];
  const image = pattern(diskSectors * 512, 9);
  const rig = readyRig({}, { queueSize: 32, readNow: (request) => {
    asked.push(request);
    return request.offsetBytes === 0 ? undefined : image.slice(request.offsetBytes, request.offsetBytes + request.lengthBytes);
  } });
  const { driver, device } = rig;
  // Answered inside the notify: data, status, used ring, interrupt; nothing goes out or stays in flight.
  const first = driver.read(2, [512, 1024]);
  assert.deepEqual(asked, [{ op: 'read', slot: 3, requestId: 1, offsetBytes: 1024, lengthBytes: 1536 }]);
  assert.deepEqual(rig.ram.readBytes(first.data[0]!.address, 512), image.subarray(1024, 1536));
  assert.deepEqual(rig.ram.readBytes(first.data[1]!.address, 1024), image.subarray(1536, 2560));
  assertAnsweredAtOnce(rig, first, BlockStatus.OK, 1537);
  assert.deepEqual(device.inFlightRequestIds, []);
  // Declined: it goes out as a request, under the id it was asked with.
  driver.read(0, [512]);
  assert.deepEqual(diskRequests(rig.outputs), [{ op: 'read', slot: 3, requestId: 2, offsetBytes: 0, lengthBytes: 512 }]);
  assert.deepEqual(device.inFlightRequestIds, [2]);
  // Five reads behind one notify: the first three are asked (an instruction's environment reads), the rest go out.
  const heads = [1, 2, 3, 4, 5].map((sector) => driver.chain([driver.header(BlockRequestType.IN, sector), { address: driver.alloc(512, 0xaa), length: 512, writable: true }, driver.statusBuffer()]));
  for (const head of heads) driver.publish(head);
  asked.length = 0;
  driver.notify();
  assert.deepEqual(asked.map((request) => request.requestId), [3, 4, 5]);
  assert.deepEqual(diskRequests(rig.outputs).slice(1).map((request) => request.requestId), [6, 7]);
  assert.deepEqual(driver.takeUsed().map((used) => used.id), heads.slice(0, 3));
  // A completion's walk takes what waits behind the queue's cap, but asks nothing: it runs between instructions.
  const full = readyRig({}, { queueSize: 4, readNow: (request) => {
    asked.push(request);
    return undefined;
  } });
  asked.length = 0;
  const request = full.driver.read(1, [512]);
  for (let i = 0; i < 4; i++) full.driver.publish(request.head);
  full.driver.notify();
  assert.equal(asked.length, 4, 'the first read and three of the four behind the second notify');
  assert.deepEqual(full.device.inFlightRequestIds, [1, 2, 3, 4], 'the fifth waits');
  full.device.complete(1, 'ok', new Uint8Array(512));
  assert.deepEqual(full.device.inFlightRequestIds, [2, 3, 4, 5]);
  assert.equal(asked.length, 4, 'not asked from the completion');
});

test('a failed read reports IOERR and leaves the buffers alone', () => {
  const rig = readyRig();
  const request = rig.driver.read(0, [512]);
  assert.equal(rig.device.complete(1, 'io-error'), true);
  assert.equal(rig.driver.statusByte(request.status), BlockStatus.IOERR);
  assert.deepEqual(rig.ram.readBytes(request.data[0]!.address, 512), new Uint8Array(512).fill(0xaa));
  assert.deepEqual(rig.driver.takeUsed(), [{ id: request.head, len: 1 }]);
});

test('a read completed with the wrong amount of data reports IOERR', () => {
  const rig = readyRig();
  const short = rig.driver.read(0, [1024]);
  const missing = rig.driver.read(4, [512]);
  assert.equal(rig.device.complete(1, 'ok', new Uint8Array(512)), true);
  assert.equal(rig.device.complete(2, 'ok'), true);
  assert.equal(rig.driver.statusByte(short.status), BlockStatus.IOERR);
  assert.equal(rig.driver.statusByte(missing.status), BlockStatus.IOERR);
  assert.deepEqual(rig.ram.readBytes(short.data[0]!.address, 1024), new Uint8Array(1024).fill(0xaa));
});

test('a write carries a copy of the guest bytes taken at notify time', () => {
  const rig = readyRig();
  const payload = pattern(2048, 2);
  const request = rig.driver.write(10, payload, 4);
  const [output] = diskRequests(rig.outputs);
  assert.ok(output !== undefined && output.op === 'write');
  assert.equal(output.offsetBytes, 10 * 512);
  assert.equal(output.requestId, 1);
  assert.equal(output.slot, 3);
  assert.deepEqual(output.data, payload);
  // The guest scribbles over its buffers before the host gets round to the write.
  for (const buffer of request.data) rig.ram.writeBytes(buffer.address, new Uint8Array(buffer.length).fill(0x55));
  assert.deepEqual(output.data, payload, 'the output is unaffected');
  assert.equal(rig.device.complete(1, 'ok'), true);
  assert.equal(rig.driver.statusByte(request.status), BlockStatus.OK);
  assert.deepEqual(rig.driver.takeUsed(), [{ id: request.head, len: 1 }]);
});

test('a write-back disk answers a write at once and hands the host the write, marked completed; reads and flushes still wait', () => {
  const rig = readyRig({ writeBack: true });
  const payload = pattern(1024, 5);
  const write = rig.driver.write(4, payload, 2);
  // Answered now: status OK, a used element, an interrupt; nothing is in flight.
  assert.deepEqual(rig.driver.takeUsed(), [{ id: write.head, len: 1 }]);
  assert.equal(rig.driver.statusByte(write.status), BlockStatus.OK);
  assert.equal(rig.irq.level, true);
  assert.deepEqual(rig.device.inFlightRequestIds, []);
  assert.deepEqual(diskRequests(rig.outputs), [{ op: 'write', slot: 3, requestId: 1, offsetBytes: 4 * 512, data: payload, completed: true }]);
  // The host's answer for it, if one came, changes nothing.
  assert.equal(rig.device.complete(1, 'io-error'), false);
  assert.equal(rig.driver.statusByte(write.status), BlockStatus.OK);
  // A read and a flush after it are handed to the host, in order, and wait for it.
  const read = rig.driver.read(4, [1024]);
  const flushStatus = rig.driver.statusBuffer();
  const flushHead = rig.driver.submit([rig.driver.header(BlockRequestType.FLUSH, 0), flushStatus]);
  assert.deepEqual(diskRequests(rig.outputs).slice(1), [{ op: 'read', slot: 3, requestId: 2, offsetBytes: 4 * 512, lengthBytes: 1024 }, { op: 'flush', slot: 3, requestId: 3 }]);
  assert.deepEqual(rig.device.inFlightRequestIds, [2, 3]);
  assert.deepEqual(rig.driver.takeUsed(), []);
  assert.equal(rig.device.complete(2, 'ok', payload), true);
  assert.equal(rig.device.complete(3, 'ok'), true);
  assert.deepEqual(rig.driver.takeUsed(), [{ id: read.head, len: 1025 }, { id: flushHead, len: 1 }]);
  assert.deepEqual(rig.ram.readBytes(read.data[0]!.address, 1024), payload);
});

test('a write-back disk still fails bad writes itself, and a read-only one every write', () => {
  const rig = readyRig({ writeBack: true });
  assertAnsweredAtOnce(rig, rig.driver.write(diskSectors, pattern(512, 1)), BlockStatus.IOERR);
  const readOnly = readyRig({ writeBack: true, readOnly: true });
  assertAnsweredAtOnce(readOnly, readOnly.driver.write(0, pattern(512, 1)), BlockStatus.IOERR);
});

test('header, data and status may share descriptors (no framing assumptions)', () => {
  const rig = readyRig();
  const { driver } = rig;
  // A write whose header and data sit in one device-readable buffer.
  const payload = pattern(512, 3);
  const combined = driver.alloc(16 + 512);
  const header = new Uint8Array(16);
  new DataView(header.buffer).setUint32(0, BlockRequestType.OUT, true);
  new DataView(header.buffer).setUint32(8, 5, true);
  driver.ram.writeBytes(combined, header);
  driver.ram.writeBytes(combined + 16, payload);
  const writeStatus = driver.statusBuffer();
  driver.submit([{ address: combined, length: 528, writable: false }, writeStatus]);
  // A read whose header is split 10 + 6 and whose data and status share one device-writable buffer.
  const readHeader = driver.header(BlockRequestType.IN, 6);
  const dataAndStatus = driver.alloc(513, 0xaa);
  const readHead = driver.submit([
    { address: readHeader.address, length: 10, writable: false },
    { address: readHeader.address + 10, length: 6, writable: false },
    { address: dataAndStatus, length: 513, writable: true },
  ]);
  const requests = diskRequests(rig.outputs);
  assert.deepEqual(requests[0], { op: 'write', slot: 3, requestId: 1, offsetBytes: 5 * 512, data: payload });
  assert.deepEqual(requests[1], { op: 'read', slot: 3, requestId: 2, offsetBytes: 6 * 512, lengthBytes: 512 });
  const data = pattern(512, 4);
  rig.device.complete(2, 'ok', data);
  assert.deepEqual(driver.ram.readBytes(dataAndStatus, 512), data);
  assert.equal(driver.ram.readBytes(dataAndStatus + 512, 1)[0], BlockStatus.OK);
  assert.deepEqual(driver.takeUsed(), [{ id: readHead, len: 513 }]);
});

test('flush is handed to the host', () => {
  const rig = readyRig();
  const status = rig.driver.statusBuffer();
  const head = rig.driver.submit([rig.driver.header(BlockRequestType.FLUSH, 0), status]);
  assert.deepEqual(diskRequests(rig.outputs), [{ op: 'flush', slot: 3, requestId: 1 }]);
  assert.equal(rig.device.complete(1, 'ok'), true);
  assert.equal(rig.driver.statusByte(status), BlockStatus.OK);
  assert.deepEqual(rig.driver.takeUsed(), [{ id: head, len: 1 }]);
});

test('GET_ID answers the NUL-padded serial at once', () => {
  const rig = readyRig({ serial: 'disk-7' });
  const { driver } = rig;
  const idBuffer = { address: driver.alloc(20, 0xaa), length: 20, writable: true };
  const status = driver.statusBuffer();
  const head = driver.submit([driver.header(BlockRequestType.GET_ID, 0), idBuffer, status]);
  assertAnsweredAtOnce(rig, { head, status }, BlockStatus.OK, 21);
  const expected = new Uint8Array(20);
  expected.set([...'disk-7'].map((c) => c.charCodeAt(0)));
  assert.deepEqual(driver.ram.readBytes(idBuffer.address, 20), expected);

  // A shorter buffer gets the prefix that fits.
  const short = { address: driver.alloc(4, 0xaa), length: 4, writable: true };
  const shortStatus = driver.statusBuffer();
  const shortHead = driver.submit([driver.header(BlockRequestType.GET_ID, 0), short, shortStatus]);
  assert.deepEqual(driver.takeUsed(), [{ id: shortHead, len: 5 }]);
  assert.deepEqual(driver.ram.readBytes(short.address, 4), expected.subarray(0, 4));
});

test('unsupported request types are answered UNSUPP at once', () => {
  const rig = readyRig();
  for (const type of [2, 10, 11, 13, 14, 0xffffffff]) {
    const status = rig.driver.statusBuffer();
    const head = rig.driver.submit([rig.driver.header(type, 0), { address: rig.driver.alloc(16), length: 16, writable: false }, status]);
    assertAnsweredAtOnce(rig, { head, status }, BlockStatus.UNSUPP);
  }
});

test('a read-only disk fails writes with IOERR, completes flushes at once, and still reads', () => {
  const rig = readyRig({ readOnly: true }, { features: featureWords([VirtioFeature.VERSION_1, BlockFeature.RO]) });
  const write = rig.driver.write(0, pattern(512, 5));
  assertAnsweredAtOnce(rig, write, BlockStatus.IOERR);
  const flushStatus = rig.driver.statusBuffer();
  const flushHead = rig.driver.submit([rig.driver.header(BlockRequestType.FLUSH, 0), flushStatus]);
  assertAnsweredAtOnce(rig, { head: flushHead, status: flushStatus }, BlockStatus.OK);
  rig.driver.read(0, [512]);
  assert.deepEqual(diskRequests(rig.outputs), [{ op: 'read', slot: 3, requestId: 1, offsetBytes: 0, lengthBytes: 512 }]);
});

test('out-of-range sectors and lengths that are not whole sectors fail with IOERR', () => {
  const rig = readyRig();
  const { driver } = rig;
  assertAnsweredAtOnce(rig, driver.read(diskSectors, [512]), BlockStatus.IOERR);
  assertAnsweredAtOnce(rig, driver.read(diskSectors - 1, [1024]), BlockStatus.IOERR);
  assertAnsweredAtOnce(rig, driver.write(diskSectors + 5, pattern(512, 0)), BlockStatus.IOERR);
  assertAnsweredAtOnce(rig, driver.read(0, [100]), BlockStatus.IOERR);
  assertAnsweredAtOnce(rig, driver.write(0, pattern(700, 0)), BlockStatus.IOERR);
  // 64-bit sectors: a high half alone, and the largest sector of all.
  assertAnsweredAtOnce(rig, driver.read(2 ** 32, [512]), BlockStatus.IOERR);
  const status = driver.statusBuffer();
  const data = { address: driver.alloc(512), length: 512, writable: true };
  const head = driver.submit([driver.header(BlockRequestType.IN, 0xffff_ffff_ffff_ffffn), data, status]);
  assertAnsweredAtOnce(rig, { head, status }, BlockStatus.IOERR);
  // The last sector is fine, and so is an empty transfer at the very end.
  driver.read(diskSectors - 1, [512]);
  assert.equal(diskRequests(rig.outputs).length, 1);
  const empty = driver.read(diskSectors, []);
  assert.deepEqual(driver.takeUsed(), [{ id: empty.head, len: 1 }]);
  assert.equal(driver.statusByte(empty.status), BlockStatus.OK);
  assert.equal(diskRequests(rig.outputs).length, 1, 'an empty transfer needs no host');
});

test('a request moving more than the data limit fails with IOERR', () => {
  const rig = readyRig({ capacityBytes: 64 * 1024 * 1024 });
  const { driver } = rig;
  const status = driver.statusBuffer();
  // Longer than RAM too, but the size is checked first; the reason says so.
  const head = driver.submit([
    driver.header(BlockRequestType.IN, 0),
    { address: driver.alloc(16), length: requestDataBytesMax + 512, writable: true },
    status,
  ]);
  assertAnsweredAtOnce(rig, { head, status }, BlockStatus.IOERR);
  assert.match(rig.device.lastGuestError ?? '', /exceeds/);
});

test('completions may arrive in any order', () => {
  const rig = readyRig();
  const requests = [0, 1, 2].map((i) => rig.driver.read(i * 4, [512]));
  assert.deepEqual(rig.device.inFlightRequestIds, [1, 2, 3]);
  const payloads = [pattern(512, 10), pattern(512, 11), pattern(512, 12)];
  assert.equal(rig.device.complete(3, 'ok', payloads[2]), true);
  assert.equal(rig.device.complete(1, 'ok', payloads[0]), true);
  assert.deepEqual(rig.device.inFlightRequestIds, [2]);
  assert.equal(rig.device.complete(2, 'ok', payloads[1]), true);
  assert.deepEqual(rig.driver.takeUsed(), [
    { id: requests[2]!.head, len: 513 }, { id: requests[0]!.head, len: 513 }, { id: requests[1]!.head, len: 513 },
  ]);
  requests.forEach((request, i) => assert.deepEqual(rig.ram.readBytes(request.data[0]!.address, 512), payloads[i]));
});

test('indirect descriptor tables carry whole requests', () => {
  const rig = readyRig();
  const { driver } = rig;
  const table = driver.alloc(4 * 16);
  const data = [{ address: driver.alloc(512, 0xaa), length: 512, writable: true }, { address: driver.alloc(512, 0xaa), length: 512, writable: true }];
  const status = driver.statusBuffer();
  const buffers = [driver.header(BlockRequestType.IN, 1), ...data, status];
  buffers.forEach((buffer, i) => driver.writeDescriptor(table, i, buffer, i + 1 < buffers.length ? i + 1 : undefined));
  // A direct descriptor first, then the indirect one (2.7.5.3.2 allows both), whose WRITE flag is ignored.
  const head = driver.submit([{ address: table, length: 64, writable: true, flags: DescriptorFlag.INDIRECT }]);
  assert.deepEqual(diskRequests(rig.outputs), [{ op: 'read', slot: 3, requestId: 1, offsetBytes: 512, lengthBytes: 1024 }]);
  const payload = pattern(1024, 6);
  rig.device.complete(1, 'ok', payload);
  assert.deepEqual(driver.ram.readBytes(data[1]!.address, 512), payload.subarray(512));
  assert.deepEqual(driver.takeUsed(), [{ id: head, len: 1025 }]);
  assert.equal(needsReset(rig), false);
});

test('VIRTQ_AVAIL_F_NO_INTERRUPT suppresses the used buffer interrupt', () => {
  const rig = readyRig();
  rig.driver.write16(rig.driver.availAddress, 1);
  const request = rig.driver.read(0, [512]);
  rig.device.complete(1, 'ok', new Uint8Array(512));
  assert.deepEqual(rig.driver.takeUsed(), [{ id: request.head, len: 513 }]);
  assert.equal(rig.irq.level, false);
  assert.equal(rig.driver.reg(R.InterruptStatus), 0);
});

test('a device reset drops requests in flight; their completions are ignored', () => {
  const rig = readyRig();
  const request = rig.driver.read(0, [512]);
  rig.driver.write(8, pattern(512, 7));
  assert.deepEqual(rig.device.inFlightRequestIds, [1, 2]);
  rig.driver.setReg(R.Status, 0);
  assert.equal(rig.driver.status, 0);
  assert.equal(rig.driver.reg(R.QueueReady), 0);
  assert.deepEqual(rig.device.inFlightRequestIds, []);
  const usedBefore = rig.ram.readBytes(rig.driver.usedAddress, 32);
  assert.equal(rig.device.complete(1, 'ok', new Uint8Array(512)), false);
  assert.equal(rig.device.complete(2, 'ok'), false);
  assert.deepEqual(rig.ram.readBytes(rig.driver.usedAddress, 32), usedBefore, 'used ring untouched');
  assert.deepEqual(rig.ram.readBytes(request.data[0]!.address, 512), new Uint8Array(512).fill(0xaa));
  assert.equal(rig.driver.statusByte(request.status), 0xee);
  assert.equal(rig.irq.level, false);
  // Request ids keep counting, so a late completion can never match a new request.
  rig.driver.init();
  rig.driver.read(0, [512]);
  assert.deepEqual(rig.device.inFlightRequestIds, [3]);
});

test('clearing QueueReady drops requests in flight; re-enabling starts the rings at 0', () => {
  const rig = readyRig();
  rig.driver.read(0, [512]);
  rig.driver.setReg(R.QueueReady, 0);
  assert.equal(rig.driver.reg(R.QueueReady), 0);
  assert.deepEqual(rig.device.inFlightRequestIds, []);
  assert.equal(rig.device.complete(1, 'ok', new Uint8Array(512)), false);
  rig.ram.writeBytes(rig.driver.availAddress, new Uint8Array(64));
  rig.ram.writeBytes(rig.driver.usedAddress, new Uint8Array(64));
  rig.driver.setupQueue(16);
  const request = rig.driver.read(0, [512]);
  rig.device.complete(2, 'ok', new Uint8Array(512));
  assert.deepEqual(rig.driver.takeUsed(), [{ id: request.head, len: 513 }]);
});

test('queue configuration is ignored while the queue is ready', () => {
  const rig = readyRig();
  rig.driver.setReg(R.QueueDescLow, 0x1000);
  rig.driver.setReg(R.QueueNum, 3);
  const request = rig.driver.read(0, [512]);
  rig.device.complete(1, 'ok', new Uint8Array(512));
  assert.deepEqual(rig.driver.takeUsed(), [{ id: request.head, len: 513 }]);
});

test('notifications before DRIVER_OK are ignored; buffers are taken at the next notification', () => {
  const rig = makeRig();
  assert.equal(rig.driver.negotiate(), true);
  rig.driver.setupQueue(16);
  rig.driver.read(0, [512]);
  assert.deepEqual(diskRequests(rig.outputs), []);
  rig.driver.driverOk();
  assert.deepEqual(diskRequests(rig.outputs), []);
  rig.driver.notify();
  assert.equal(diskRequests(rig.outputs).length, 1);
  rig.driver.setReg(R.QueueNotify, 5);
  assert.equal(diskRequests(rig.outputs).length, 1, 'no queue 5');
});

test('requests in flight are capped at the queue size; completions make room', () => {
  const rig = readyRig({}, { queueSize: 4 });
  const { driver } = rig;
  // A hostile driver may publish the same chain again and again.
  const request = driver.read(0, [512]);
  for (let i = 0; i < 3; i++) driver.publish(request.head);
  driver.notify();
  assert.deepEqual(rig.device.inFlightRequestIds, [1, 2, 3, 4]);
  driver.publish(request.head);
  driver.notify();
  assert.deepEqual(rig.device.inFlightRequestIds, [1, 2, 3, 4], 'the fifth waits');
  assert.equal(needsReset(rig), false);
  rig.device.complete(2, 'ok', new Uint8Array(512));
  assert.deepEqual(rig.device.inFlightRequestIds, [1, 3, 4, 5], 'taken once a slot came free');
  assert.equal(diskRequests(rig.outputs).length, 5);
});

// ---------------------------------------------------------------------------------------------
// Snapshots

test('snapshot mid-request: completing after a restore equals completing without one', () => {
  const original = readyRig();
  const readRequest = original.driver.read(3, [512, 512]);
  original.driver.write(20, pattern(1024, 8), 2);
  original.driver.read(30, [1024]);
  assert.deepEqual(original.device.inFlightRequestIds, [1, 2, 3]);

  const writer = new SnapshotWriter();
  original.ram.save(writer);
  original.device.save(writer);
  const snapshot = writer.finish();

  const restored = makeRig();
  const reader = new SnapshotReader(snapshot);
  restored.ram.restore(reader);
  restored.device.restore(reader);
  reader.expectEnd();
  const restoredDriver = original.driver.cloneFor(restored.ram, restored.device);
  assert.deepEqual(restored.device.inFlightRequestIds, [1, 2, 3]);
  assert.deepEqual(saveDevice(restored.device), saveDevice(original.device));

  for (const rig of [original, restored]) {
    assert.equal(rig.device.complete(3, 'ok', pattern(1024, 9)), true);
    assert.equal(rig.device.complete(1, 'ok', pattern(1024, 10)), true);
    assert.equal(rig.device.complete(2, 'io-error'), true);
  }
  const driverFor = (rig: Rig): Driver => (rig === original ? original.driver : restoredDriver);
  for (const rig of [original, restored]) driverFor(rig).read(0, [512]);
  assert.deepEqual(restored.ram.u8, original.ram.u8);
  assert.deepEqual(saveDevice(restored.device), saveDevice(original.device));
  assert.equal(restored.irq.level, original.irq.level);
  assert.deepEqual(restored.device.inFlightRequestIds, [4]);
  assert.deepEqual(diskRequests(restored.outputs), [{ op: 'read', slot: 3, requestId: 4, offsetBytes: 0, lengthBytes: 512 }]);
  assert.deepEqual(restoredDriver.takeUsed(), original.driver.takeUsed());
  assert.deepEqual(restored.ram.readBytes(readRequest.data[1]!.address, 512), pattern(1024, 10).subarray(512));
});

test('restore rejects snapshots that do not fit or do not make sense', () => {
  const rig = readyRig();
  const request = rig.driver.read(0, [512]);
  const snapshot = saveDevice(rig.device);

  assert.throws(() => makeRig().device.restore(new SnapshotReader(snapshot.subarray(0, snapshot.length - 3))), SnapshotError);
  assert.throws(() => makeRig({ capacityBytes: 128 * 512 }).device.restore(new SnapshotReader(snapshot)), SnapshotError);
  assert.throws(() => makeRig({ readOnly: true }).device.restore(new SnapshotReader(snapshot)), SnapshotError);
  assert.throws(() => makeRig().device.restore(new SnapshotReader(new Uint8Array(64))), SnapshotError);

  // Corrupt the status address of the request in flight (a u64 in the snapshot) to point below RAM.
  const needle = new Uint8Array(8);
  new DataView(needle.buffer).setBigUint64(0, BigInt(request.status.address), true);
  const at = indexOfBytes(snapshot, needle);
  assert.ok(at > 0);
  const corrupt = snapshot.slice();
  corrupt.fill(0, at, at + 8);
  const target = makeRig();
  const before = saveDevice(target.device);
  assert.throws(() => target.device.restore(new SnapshotReader(corrupt)), SnapshotError);
  assert.deepEqual(saveDevice(target.device), before, 'a failed restore changes nothing');
});

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Hostile guests: every case ends in IOERR or DEVICE_NEEDS_RESET, never an exception.

function assertNeedsReset(rig: Rig, what: string): void {
  assert.equal(needsReset(rig), true, `${what}: DEVICE_NEEDS_RESET`);
  assert.equal(rig.driver.reg(R.InterruptStatus) & InterruptReason.ConfigChange, InterruptReason.ConfigChange, `${what}: config change interrupt`);
  assert.equal(rig.irq.level, true, `${what}: interrupt line`);
  assert.deepEqual(diskRequests(rig.outputs), [], `${what}: no output`);
  assert.ok(rig.device.lastGuestError !== undefined);
}

const chainFaults: ReadonlyArray<readonly [string, (driver: Driver) => void]> = [
  ['descriptor loop', (driver) => {
    const header = driver.header(BlockRequestType.IN, 0);
    driver.writeDescriptor(driver.descAddress, 0, header, 1);
    driver.writeDescriptor(driver.descAddress, 1, { address: driver.alloc(512), length: 512, writable: true }, 0);
    driver.publish(0);
    driver.notify();
  }],
  ['next index beyond the queue', (driver) => {
    driver.writeDescriptor(driver.descAddress, 0, driver.header(BlockRequestType.IN, 0), driver.queueSize + 3);
    driver.publish(0);
    driver.notify();
  }],
  ['head index beyond the queue', (driver) => {
    driver.publish(300);
    driver.notify();
  }],
  ['available index far ahead', (driver) => {
    driver.write16(driver.availAddress + 2, driver.queueSize + 1);
    driver.notify();
  }],
  ['missing status byte', (driver) => {
    driver.submit([driver.header(BlockRequestType.IN, 0), { address: driver.alloc(512), length: 512, writable: false }]);
  }],
  ['status byte outside RAM', (driver) => {
    driver.submit([driver.header(BlockRequestType.IN, 0), { address: 0x1000, length: 1, writable: true }]);
  }],
  ['status byte above 4 GiB', (driver) => {
    driver.submit([driver.header(BlockRequestType.FLUSH, 0), { address: driver.alloc(1), addressHigh: 1, length: 1, writable: true }]);
  }],
  ['indirect descriptor with NEXT', (driver) => {
    const table = driver.alloc(32);
    driver.writeDescriptor(table, 0, driver.header(BlockRequestType.FLUSH, 0), 1);
    driver.writeDescriptor(table, 1, driver.statusBuffer(), undefined);
    driver.submit([{ address: table, length: 32, writable: false, flags: DescriptorFlag.INDIRECT }, driver.statusBuffer()]);
  }],
  ['nested indirect table', (driver) => {
    const inner = driver.alloc(16);
    driver.writeDescriptor(inner, 0, driver.statusBuffer(), undefined);
    const outer = driver.alloc(16);
    driver.writeDescriptor(outer, 0, { address: inner, length: 16, writable: false, flags: DescriptorFlag.INDIRECT }, undefined);
    driver.submit([{ address: outer, length: 16, writable: false, flags: DescriptorFlag.INDIRECT }]);
  }],
  ['indirect table of a bad length', (driver) => {
    driver.submit([{ address: driver.alloc(32), length: 17, writable: false, flags: DescriptorFlag.INDIRECT }]);
  }],
  ['indirect table too long', (driver) => {
    driver.submit([{ address: driver.alloc(16), length: 16 * (blockQueueSizeEntries + 1), writable: false, flags: DescriptorFlag.INDIRECT }]);
  }],
  ['indirect table outside RAM', (driver) => {
    driver.submit([{ address: 0x4000_0000, length: 64, writable: false, flags: DescriptorFlag.INDIRECT }]);
  }],
  ['loop inside an indirect table', (driver) => {
    const table = driver.alloc(32);
    driver.writeDescriptor(table, 0, driver.header(BlockRequestType.FLUSH, 0), 1);
    driver.writeDescriptor(table, 1, driver.statusBuffer(), 0);
    driver.submit([{ address: table, length: 32, writable: false, flags: DescriptorFlag.INDIRECT }]);
  }],
  ['next index beyond an indirect table', (driver) => {
    const table = driver.alloc(32);
    driver.writeDescriptor(table, 0, driver.header(BlockRequestType.FLUSH, 0), 2);
    driver.writeDescriptor(table, 1, driver.statusBuffer(), undefined);
    driver.submit([{ address: table, length: 32, writable: false, flags: DescriptorFlag.INDIRECT }]);
  }],
];

for (const [what, provoke] of chainFaults) {
  test(`hostile chain: ${what} -> DEVICE_NEEDS_RESET`, () => {
    const rig = readyRig();
    provoke(rig.driver);
    assertNeedsReset(rig, what);
    // The device stays stopped until the driver resets it; then it works again.
    rig.driver.read(0, [512]);
    assert.deepEqual(diskRequests(rig.outputs), []);
    rig.driver.init();
    rig.driver.read(0, [512]);
    assert.equal(diskRequests(rig.outputs).length, 1);
    assert.equal(needsReset(rig), false);
  });
}

test('hostile chain: an indirect descriptor without the feature -> DEVICE_NEEDS_RESET', () => {
  const rig = readyRig({}, { features: featureWords([VirtioFeature.VERSION_1]) });
  const table = rig.driver.alloc(16);
  rig.driver.writeDescriptor(table, 0, rig.driver.statusBuffer(), undefined);
  rig.driver.submit([{ address: table, length: 16, writable: false, flags: DescriptorFlag.INDIRECT }]);
  assertNeedsReset(rig, 'indirect without the feature');
});

const requestFaults: ReadonlyArray<readonly [string, (driver: Driver, status: GuestBuffer) => GuestBuffer[]]> = [
  ['data buffer outside RAM', (driver, status) => [driver.header(BlockRequestType.IN, 0), { address: 0x7000_0000, length: 512, writable: true }, status]],
  ['data buffer running off the end of RAM', (driver, status) => [driver.header(BlockRequestType.IN, 0), { address: ramBaseAddress + (1 << 20) - 256, length: 512, writable: true }, status]],
  ['data buffer above 4 GiB', (driver, status) => [driver.header(BlockRequestType.IN, 0), { address: driver.alloc(512), addressHigh: 0x10, length: 512, writable: true }, status]],
  ['write data outside RAM', (driver, status) => [driver.header(BlockRequestType.OUT, 0), { address: 0x10_0000, length: 512, writable: false }, status]],
  ['header outside RAM', (_driver, status) => [{ address: 0x2000, length: 16, writable: false }, status]],
  ['header in a device-writable buffer', (driver, status) => [{ ...driver.header(BlockRequestType.IN, 0), writable: true }, { address: driver.alloc(512), length: 512, writable: true }, status]],
  ['header shorter than 16 bytes', (driver, status) => [{ ...driver.header(BlockRequestType.FLUSH, 0), length: 8 }, status]],
  ['read data in a device-readable buffer', (driver, status) => [driver.header(BlockRequestType.IN, 0), { address: driver.alloc(512), length: 512, writable: false }, status]],
  ['GET_ID buffer device-readable', (driver, status) => [driver.header(BlockRequestType.GET_ID, 0), { address: driver.alloc(20), length: 20, writable: false }, status]],
  ['write data in a device-writable buffer', (driver, status) => [driver.header(BlockRequestType.OUT, 0), { address: driver.alloc(512), length: 512, writable: true }, status]],
  ['readable buffer after a writable one', (driver, status) => [driver.header(BlockRequestType.IN, 0), { address: driver.alloc(512), length: 512, writable: true }, { address: driver.alloc(512), length: 512, writable: false }, status]],
];

for (const [what, build] of requestFaults) {
  test(`hostile request: ${what} -> IOERR`, () => {
    const rig = readyRig();
    const status = rig.driver.statusBuffer();
    const head = rig.driver.submit(build(rig.driver, status));
    assertAnsweredAtOnce(rig, { head, status }, BlockStatus.IOERR);
    assert.ok(rig.device.lastGuestError !== undefined);
    // Nothing is broken: the next request works.
    rig.driver.read(0, [512]);
    assert.equal(diskRequests(rig.outputs).length, 1);
  });
}

const queueFaults: ReadonlyArray<readonly [string, (driver: Driver) => void]> = [
  ['descriptor table below RAM', (driver) => driver.setupQueue(16, { desc: 0x1000 })],
  ['descriptor table above 4 GiB', (driver) => driver.setupQueue(16, { descHigh: 1 })],
  ['used ring running off the end of RAM', (driver) => driver.setupQueue(256, { used: ramBaseAddress + (1 << 20) - 1024 })],
  ['available ring at address 0', (driver) => driver.setupQueue(16, { avail: 0 })],
  ['queue size not a power of two', (driver) => driver.setupQueue(12)],
  ['queue size above QueueNumMax', (driver) => driver.setupQueue(512)],
  ['queue size 0', (driver) => driver.setupQueue(0)],
];

for (const [what, setup] of queueFaults) {
  test(`hostile queue: ${what} -> DEVICE_NEEDS_RESET, announced at DRIVER_OK`, () => {
    const rig = makeRig();
    assert.equal(rig.driver.negotiate(), true);
    setup(rig.driver);
    assert.equal(rig.driver.reg(R.QueueReady), 0, 'the queue stays disabled');
    assert.equal(needsReset(rig), true);
    assert.equal(rig.irq.level, false, 'no notification before DRIVER_OK');
    rig.driver.driverOk();
    assertNeedsReset(rig, what);
    rig.driver.notify();
    assert.deepEqual(diskRequests(rig.outputs), []);
  });
}

/** xorshift32: deterministic noise for the fuzz tests. */
function noise(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

test('fuzz: random register traffic never throws', () => {
  const random = noise(0x5eed);
  const rig = makeRig();
  const widths = [1, 2, 4] as const;
  for (let i = 0; i < 20_000; i++) {
    const width = widths[random() % 3]!;
    const offset = (random() % 0x200) & ~(width - 1);
    const value = random() % 4 === 0 ? random() % 8 : random();
    if (random() % 2 === 0) rig.device.write(offset, width, value);
    else {
      const read = rig.device.read(offset, width);
      assert.ok(Number.isInteger(read) && read >= 0 && read < 2 ** (8 * width));
    }
  }
});

test('fuzz: garbage rings and descriptors never throw and always end answered or reset', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const random = noise(seed);
    const rig = readyRig({}, { queueSize: 8 });
    const { driver } = rig;
    for (let round = 0; round < 20; round++) {
      // Random descriptors pointing into the heap, below RAM, or anywhere.
      for (let index = 0; index < 8; index++) {
        const where = random() % 4;
        const address = where === 0 ? random() : where === 1 ? random() % 0x1000 : ramBaseAddress + 0x1_0000 + (random() % 0x1000);
        const length = random() % 3 === 0 ? random() : random() % 600;
        const flags = random() % 8;
        driver.writeDescriptor(driver.descAddress, index, { address, length, writable: false, flags: flags & ~DescriptorFlag.NEXT }, flags & DescriptorFlag.NEXT ? random() % 10 : undefined);
      }
      // Random request headers in the heap.
      driver.ram.writeBytes(ramBaseAddress + 0x1_0000, pattern(0x1000, random()));
      driver.publish(random() % 9);
      if (random() % 16 === 0) driver.write16(driver.availAddress + 2, random() & 0xffff);
      driver.notify();
      for (const id of rig.device.inFlightRequestIds) {
        if (random() % 2 === 0) rig.device.complete(id, random() % 2 === 0 ? 'ok' : 'io-error', new Uint8Array(random() % 1024));
      }
      assert.ok(rig.device.inFlightRequestIds.length <= 8, 'in flight never exceeds the queue size');
      if (needsReset(rig)) driver.init({ queueSize: 8 });
    }
  }
});
