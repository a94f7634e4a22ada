/**
 * Unit tests for the virtio network device, driven from the guest side by a small driver that
 * lays out the receive and transmit queues in RAM the way Linux does (virtio 1.2, 5.1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MachineOutput } from '../environment.js';
import { Ram, ramBaseAddress } from '../memory/ram.js';
import { SnapshotReader, SnapshotWriter } from '../snapshot.js';
import { Machine, configKey, nicSlot, BoardMap } from '../board.js';
import { VirtualClock } from '../clock.js';
import type { InterruptLine } from './device.js';
import {
  NetFeature, NetLinkStatus, NetQueue, VirtioNetDevice, frameBytesMax, netHeaderBytes, netMtuBytes,
} from './virtio-net.js';
import { DescriptorFlag, DeviceStatus, InterruptReason, VirtioFeature, VirtioMmioRegister as R, featureWords } from './virtio-mmio.js';

class FakeIrq implements InterruptLine {
  level = false;
  set(level: boolean): void {
    this.level = level;
  }
}

interface Segment {
  readonly address: number;
  readonly length: number;
  readonly writable: boolean;
}

const queueSize = 16;
const driverFeatures = featureWords([VirtioFeature.VERSION_1, VirtioFeature.RING_INDIRECT_DESC, NetFeature.MAC, NetFeature.STATUS, NetFeature.MTU]);

/** One queue's rings, as the driver keeps them. */
class DriverQueue {
  nextDescriptor = 0;
  availIndex = 0;
  usedSeen = 0;
  constructor(readonly ram: Ram, readonly desc: number, readonly avail: number, readonly used: number) {}

  /** Writes a chain into the descriptor table and publishes its head. */
  offer(segments: readonly Segment[], options: { indirectAt?: number } = {}): number {
    const head = this.nextDescriptor % queueSize;
    if (options.indirectAt !== undefined) {
      segments.forEach((segment, index) => writeDescriptor(this.ram, options.indirectAt!, index, segment, index + 1 < segments.length ? index + 1 : undefined));
      writeDescriptor(this.ram, this.desc, head, { address: options.indirectAt, length: 16 * segments.length, writable: false }, undefined, DescriptorFlag.INDIRECT);
      this.nextDescriptor++;
    } else {
      segments.forEach((segment, index) => {
        const slot = (this.nextDescriptor + index) % queueSize;
        writeDescriptor(this.ram, this.desc, slot, segment, index + 1 < segments.length ? (slot + 1) % queueSize : undefined);
      });
      this.nextDescriptor += segments.length;
    }
    const view = new DataView(this.ram.u8.buffer);
    view.setUint16(this.avail - ramBaseAddress + 4 + 2 * (this.availIndex % queueSize), head, true);
    this.availIndex = (this.availIndex + 1) & 0xffff;
    view.setUint16(this.avail - ramBaseAddress + 2, this.availIndex, true);
    return head;
  }

  /** Used elements not seen yet. */
  takeUsed(): { id: number; len: number }[] {
    const view = new DataView(this.ram.u8.buffer);
    const usedIndex = view.getUint16(this.used - ramBaseAddress + 2, true);
    const out: { id: number; len: number }[] = [];
    while (this.usedSeen !== usedIndex) {
      const at = this.used - ramBaseAddress + 4 + 8 * (this.usedSeen % queueSize);
      out.push({ id: view.getUint32(at, true), len: view.getUint32(at + 4, true) });
      this.usedSeen = (this.usedSeen + 1) & 0xffff;
    }
    return out;
  }
}

function writeDescriptor(ram: Ram, table: number, index: number, segment: Segment, next: number | undefined, extraFlags = 0): void {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, segment.address >>> 0, true);
  view.setUint32(8, segment.length, true);
  view.setUint16(12, (next === undefined ? 0 : DescriptorFlag.NEXT) | (segment.writable ? DescriptorFlag.WRITE : 0) | extraFlags, true);
  view.setUint16(14, next ?? 0, true);
  ram.writeBytes(table + index * 16, bytes);
}

class Rig {
  readonly ram = new Ram(1 << 20);
  readonly irq = new FakeIrq();
  readonly outputs: MachineOutput[] = [];
  readonly device: VirtioNetDevice;
  readonly rx: DriverQueue;
  readonly tx: DriverQueue;
  heap = ramBaseAddress + 0x2_0000;

  constructor() {
    this.device = new VirtioNetDevice({ slot: 6, mac: '52:54:00:ab:cd:ef' }, { ram: this.ram, irq: this.irq, outputs: { emit: (output) => this.outputs.push(output) } });
    this.rx = new DriverQueue(this.ram, ramBaseAddress + 0x1000, ramBaseAddress + 0x2000, ramBaseAddress + 0x3000);
    this.tx = new DriverQueue(this.ram, ramBaseAddress + 0x5000, ramBaseAddress + 0x6000, ramBaseAddress + 0x7000);
  }

  reg(offset: number): number {
    return this.device.read(offset, 4);
  }

  setReg(offset: number, value: number): void {
    this.device.write(offset, 4, value);
  }

  init(): void {
    this.setReg(R.Status, 0);
    this.setReg(R.Status, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
    this.setReg(R.DriverFeaturesSel, 0);
    this.setReg(R.DriverFeatures, driverFeatures[0]);
    this.setReg(R.DriverFeaturesSel, 1);
    this.setReg(R.DriverFeatures, driverFeatures[1]);
    this.setReg(R.Status, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
    for (const [index, queue] of [[NetQueue.receive, this.rx], [NetQueue.transmit, this.tx]] as const) {
      this.setReg(R.QueueSel, index);
      this.setReg(R.QueueNum, queueSize);
      this.setReg(R.QueueDescLow, queue.desc);
      this.setReg(R.QueueDriverLow, queue.avail);
      this.setReg(R.QueueDeviceLow, queue.used);
      this.setReg(R.QueueReady, 1);
    }
    this.setReg(R.Status, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
    assert.equal(this.reg(R.Status) & DeviceStatus.DEVICE_NEEDS_RESET, 0);
  }

  alloc(bytes: Uint8Array | number): number {
    const address = this.heap;
    const data = typeof bytes === 'number' ? new Uint8Array(bytes) : bytes;
    this.heap += Math.ceil(Math.max(data.length, 1) / 16) * 16;
    this.ram.writeBytes(address, data);
    return address;
  }

  /** A transmit chain: the header and the frame, in one buffer or split at `splitAt`. */
  send(frame: Uint8Array, options: { header?: Uint8Array; splitAt?: number; indirect?: boolean } = {}): void {
    const bytes = new Uint8Array(netHeaderBytes + frame.length);
    bytes.set(options.header ?? new Uint8Array(netHeaderBytes));
    bytes.set(frame, netHeaderBytes);
    const split = options.splitAt ?? bytes.length;
    const first = this.alloc(bytes.subarray(0, split));
    const segments: Segment[] = [{ address: first, length: split, writable: false }];
    if (split < bytes.length) segments.push({ address: this.alloc(bytes.subarray(split)), length: bytes.length - split, writable: false });
    this.tx.offer(segments, options.indirect === true ? { indirectAt: this.alloc(16 * segments.length) } : {});
    this.setReg(R.QueueNotify, NetQueue.transmit);
  }

  /** Offers a receive buffer of `length` bytes; returns its address. */
  offerReceive(length = netHeaderBytes + 1518, writable = true): number {
    const address = this.alloc(length);
    this.rx.offer([{ address, length, writable }]);
    this.setReg(R.QueueNotify, NetQueue.receive);
    return address;
  }

  transmitted(): Uint8Array[] {
    return this.outputs.splice(0).map((output) => {
      assert.equal(output.kind, 'net-transmit');
      return output.kind === 'net-transmit' ? output.frame : new Uint8Array(0);
    });
  }
}

function ethernet(length: number, ethertype = 0x0800, fill = 0xa5): Uint8Array {
  const frame = new Uint8Array(length).fill(fill);
  frame.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef], 0);
  new DataView(frame.buffer).setUint16(12, ethertype);
  return frame;
}

test('identity and configuration: device 1, MAC, link up, MTU, the features offered', () => {
  const rig = new Rig();
  assert.equal(rig.reg(R.DeviceId), 1);
  rig.setReg(R.DeviceFeaturesSel, 0);
  const low = rig.reg(R.DeviceFeatures);
  for (const bit of [NetFeature.MAC, NetFeature.STATUS, NetFeature.MTU, VirtioFeature.RING_INDIRECT_DESC]) assert.equal((low >>> bit) & 1, 1, `feature ${bit}`);
  rig.setReg(R.DeviceFeaturesSel, 1);
  assert.equal(rig.reg(R.DeviceFeatures), 1, 'VERSION_1 and nothing else above bit 31');
  const mac = Array.from({ length: 6 }, (_, i) => rig.device.read(R.Config + i, 1));
  assert.deepEqual(mac, [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
  assert.equal(rig.device.read(R.Config + 6, 2), NetLinkStatus.LINK_UP);
  assert.equal(rig.device.read(R.Config + 10, 2), netMtuBytes);
  assert.equal(rig.device.read(R.Config + 12, 4), 0xffff_ffff, 'past the structure');
  rig.setReg(R.QueueSel, 2);
  assert.equal(rig.reg(R.QueueNumMax), 0, 'no control queue');
  assert.throws(() => new VirtioNetDevice({ slot: 0, mac: '01:00:5e:00:00:01' }, { ram: rig.ram, irq: rig.irq, outputs: { emit: () => {} } }), /unicast/);
});

test('transmit: the frame leaves as an output, the buffer comes back at once, whatever the layout', () => {
  const rig = new Rig();
  rig.init();
  const frames = [ethernet(60), ethernet(frameBytesMax), ethernet(100, 0x86dd)];
  rig.send(frames[0]!);
  rig.send(frames[1]!, { splitAt: netHeaderBytes });
  rig.send(frames[2]!, { splitAt: 5, indirect: true });
  assert.deepEqual(rig.transmitted(), frames);
  assert.deepEqual(rig.tx.takeUsed().map((element) => element.len), [0, 0, 0]);
  assert.equal(rig.reg(R.InterruptStatus) & InterruptReason.UsedBuffer, InterruptReason.UsedBuffer);
  assert.equal(rig.irq.level, true);
});

test('transmit: frames too long, too short, with offloads nobody negotiated, or writable are dropped; the queue goes on', () => {
  const rig = new Rig();
  rig.init();
  rig.send(ethernet(frameBytesMax + 1));
  assert.match(rig.device.lastGuestError ?? '', /frame of 1519 bytes/);
  rig.send(new Uint8Array(10));
  const gso = new Uint8Array(netHeaderBytes);
  gso[1] = 1; // GSO_TCPV4
  rig.send(ethernet(60), { header: gso });
  assert.match(rig.device.lastGuestError ?? '', /gso_type 1/);
  const writable = rig.alloc(netHeaderBytes + 60);
  rig.tx.offer([{ address: writable, length: netHeaderBytes + 60, writable: true }]);
  rig.setReg(R.QueueNotify, NetQueue.transmit);
  assert.equal(rig.transmitted().length, 0);
  assert.equal(rig.tx.takeUsed().length, 4, 'every buffer came back');
  rig.send(ethernet(60));
  assert.equal(rig.transmitted().length, 1, 'and the next good frame still goes');
  assert.equal(rig.reg(R.Status) & DeviceStatus.DEVICE_NEEDS_RESET, 0);
});

test('receive: room follows the buffers offered; a frame lands after a header with num_buffers 1', () => {
  const rig = new Rig();
  assert.equal(rig.device.receiveRoom, 0, 'nothing before DRIVER_OK');
  rig.init();
  assert.equal(rig.device.receiveRoom, 0);
  const first = rig.offerReceive();
  rig.offerReceive();
  assert.equal(rig.device.receiveRoom, 2);
  const frame = ethernet(1514, 0x0800, 0x3c);
  assert.equal(rig.device.receive(frame), 'delivered');
  assert.equal(rig.device.receiveRoom, 1);
  const header = rig.ram.readBytes(first, netHeaderBytes);
  assert.deepEqual(Array.from(header), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
  assert.deepEqual(rig.ram.readBytes(first + netHeaderBytes, frame.length), frame);
  assert.deepEqual(rig.rx.takeUsed(), [{ id: 0, len: netHeaderBytes + frame.length }]);
  assert.equal(rig.device.receive(ethernet(60)), 'delivered');
  assert.equal(rig.device.receive(ethernet(60)), 'no-buffer');
  assert.equal(rig.device.receiveDropped, 1);
  assert.throws(() => rig.device.receive(ethernet(frameBytesMax + 1)), RangeError);
});

test('receive: a buffer too small comes back empty; a device-readable one breaks the queue', () => {
  const rig = new Rig();
  rig.init();
  rig.offerReceive(100);
  assert.equal(rig.device.receive(ethernet(200)), 'bad-buffer');
  assert.deepEqual(rig.rx.takeUsed(), [{ id: 0, len: 0 }]);
  assert.equal(rig.reg(R.Status) & DeviceStatus.DEVICE_NEEDS_RESET, 0);
  rig.offerReceive(2000, false);
  assert.equal(rig.device.receive(ethernet(60)), 'bad-buffer');
  assert.equal(rig.reg(R.Status) & DeviceStatus.DEVICE_NEEDS_RESET, DeviceStatus.DEVICE_NEEDS_RESET);
  assert.equal(rig.reg(R.InterruptStatus) & InterruptReason.ConfigChange, InterruptReason.ConfigChange);
  assert.equal(rig.device.receiveRoom, 0, 'a broken device takes nothing');
  rig.init();
  rig.offerReceive();
  assert.equal(rig.device.receive(ethernet(60)), 'delivered', 'after a reset it works again');
});

test('receive: an available index more than a queue ahead breaks the queue, no exception', () => {
  const rig = new Rig();
  rig.init();
  new DataView(rig.ram.u8.buffer).setUint16(rig.rx.avail - ramBaseAddress + 2, 1000, true);
  assert.equal(rig.device.receiveRoom, 0);
  assert.equal(rig.device.receive(ethernet(60)), 'bad-buffer');
  assert.equal(rig.reg(R.Status) & DeviceStatus.DEVICE_NEEDS_RESET, DeviceStatus.DEVICE_NEEDS_RESET);
});

test('link status: down and up again are configuration changes; a link down neither sends nor takes', () => {
  const rig = new Rig();
  rig.init();
  rig.offerReceive();
  const generation = rig.reg(R.ConfigGeneration);
  rig.device.setLink(false);
  assert.equal(rig.device.read(R.Config + 6, 2), 0);
  assert.notEqual(rig.reg(R.ConfigGeneration), generation);
  assert.equal(rig.reg(R.InterruptStatus) & InterruptReason.ConfigChange, InterruptReason.ConfigChange);
  assert.equal(rig.device.receiveRoom, 0);
  assert.equal(rig.device.receive(ethernet(60)), 'link-down');
  rig.send(ethernet(60));
  assert.equal(rig.transmitted().length, 0);
  rig.setReg(R.InterruptAck, 3);
  rig.device.setLink(true);
  assert.equal(rig.device.read(R.Config + 6, 2), NetLinkStatus.LINK_UP);
  assert.equal(rig.reg(R.InterruptStatus) & InterruptReason.ConfigChange, InterruptReason.ConfigChange);
  assert.equal(rig.device.receiveRoom, 1);
});

test('the guest\'s IPv4 address is learnt from what it sends (ARP sender, IPv4 source), for announcements', () => {
  const rig = new Rig();
  rig.init();
  assert.equal(rig.device.guestIpv4, undefined);
  const arp = ethernet(42, 0x0806);
  arp.set([0, 1, 8, 0, 6, 4, 0, 1], 14);
  arp.set([10, 0, 2, 15], 28);
  rig.send(arp);
  assert.deepEqual(Array.from(rig.device.guestIpv4 ?? []), [10, 0, 2, 15]);
  const ip = ethernet(60);
  ip.set([192, 0, 2, 7], 26);
  rig.send(ip);
  assert.deepEqual(Array.from(rig.device.guestIpv4 ?? []), [192, 0, 2, 7]);
});

test('snapshot: link, learnt address and queues survive a save and restore; a restored device carries on', () => {
  const rig = new Rig();
  rig.init();
  rig.offerReceive();
  rig.offerReceive();
  rig.device.receive(ethernet(60));
  const ip = ethernet(60);
  ip.set([10, 0, 2, 15], 26);
  rig.send(ip);
  rig.device.setLink(false);
  const writer = new SnapshotWriter();
  rig.device.save(writer);
  const copy = new VirtioNetDevice({ slot: 6, mac: '52:54:00:ab:cd:ef' }, { ram: rig.ram, irq: new FakeIrq(), outputs: { emit: () => {} } });
  copy.restore(new SnapshotReader(writer.finish()));
  assert.equal(copy.isLinkUp, false);
  assert.deepEqual(Array.from(copy.guestIpv4 ?? []), [10, 0, 2, 15]);
  copy.setLink(true);
  assert.equal(copy.receiveRoom, 1);
  assert.equal(copy.receive(ethernet(60)), 'delivered');
  const other = new VirtioNetDevice({ slot: 6, mac: '52:54:00:ab:cd:00' }, { ram: rig.ram, irq: new FakeIrq(), outputs: { emit: () => {} } });
  assert.throws(() => other.restore(new SnapshotReader(writer.finish())), /52:54:00:ab:cd:ef/);
});

test('the board: a NIC takes the slot below the disks, its MAC is part of the configuration, events reach it', () => {
  const config = { ramBytes: 1 << 20, disks: [{ capacityBytes: 4096, readOnly: false, serial: 'd' }], nics: [{ mac: '52:54:00:12:34:56' }] };
  const machine = new Machine(config, new VirtualClock());
  const slot = nicSlot(config, 0);
  assert.equal(slot, 6);
  const window = BoardMap.virtio + slot * BoardMap.virtioStride;
  assert.equal(machine.bus.find(window)?.device.read(R.DeviceId, 4), 1);
  assert.match(configKey(config), /nics=\[52:54:00:12:34:56\]/);
  assert.equal(configKey({ ramBytes: 1 << 20, disks: [] }), 'ram=1048576;disks=[]', 'without NICs the key is as before');
  assert.throws(() => new Machine({ ...config, nics: [{ mac: '52:54:00:12:34:56' }, { mac: '52:54:00:12:34:56' }] }, new VirtualClock()), /two NICs/);
  assert.equal(machine.networkReceiveRoom(slot), 0);
  machine.applyEvent({ kind: 'net-link', slot, up: false });
  assert.equal(machine.nics.get(slot)?.isLinkUp, false);
  assert.throws(() => machine.applyEvent({ kind: 'net-receive', slot, frame: new Uint8Array(5) }), RangeError);
  assert.throws(() => machine.applyEvent({ kind: 'net-link', slot: 2, up: true }), /no NIC/);
  const copy = new Machine(config, new VirtualClock());
  copy.restore(machine.save());
  assert.equal(copy.digest(), machine.digest());
});
