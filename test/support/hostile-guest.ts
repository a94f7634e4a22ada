/**
 * Hostile guest programs (test/hostile-guest.test.ts): seeded random programs that poke every
 * device register with random values, set up virtqueues over semi-valid and garbage
 * descriptor chains and change them while requests are in flight, write random CSRs, execute
 * random words and jump about. `buildHostileGuest` makes the machine and its disk images.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { BoardMap, Machine, diskSlot, nicSlot, type BoardConfig } from '../../src/machine/board.js';
import { NetworkPort } from '../../src/host/network/port.js';
import { asm, assemble, li } from '../../src/machine/cpu/encode.js';
import { rawImage } from '../../src/machine/loader/elf.js';
import { Csr } from '../../src/machine/cpu/csr.js';
import { ramBaseAddress } from '../../src/machine/memory/ram.js';
import { VirtioMmioRegister as Reg } from '../../src/machine/devices/virtio-mmio.js';
import { VirtualClock } from '../../src/machine/clock.js';
import { DiskImage } from '../../src/host/disk-image.js';
import { Prng } from '../../src/simulator/prng.js';

const ramBytes = 4 * 1024 * 1024;
const diskBytes = 1024 * 1024;

/** RAM layout: code at the start; a virtqueue area; buffers the descriptors point into. */
const queueArea = ramBaseAddress + 0x10_0000;
const queueEntries = 256;
const availRing = queueArea + 0x1000;
const usedRing = queueArea + 0x2000;
const bufferArea = ramBaseAddress + 0x11_0000;
const bufferBytes = 0x1_0000;
const handlerAddress = ramBaseAddress + 0x8_0000;

/** Registers: x5 the trap handler's; the rest of the program uses x6, x7 and x28..x31. */
const [t0, t1, t2, t3, t4, t5] = [5, 6, 7, 28, 29, 30];

/** The NIC's virtio slot: below the two disks. */
const netSlot = nicSlot({ ramBytes, disks: [{ capacityBytes: 512, readOnly: false, serial: '' }, { capacityBytes: 512, readOnly: true, serial: '' }] }, 0);
/** The virtio slots with a device: the two disks and the NIC. */
const deviceSlots = [diskSlot(0), diskSlot(1), netSlot];

const deviceWindows = [
  { base: BoardMap.test, bytes: 0x1000 },
  { base: BoardMap.rtc, bytes: 0x1000 },
  { base: BoardMap.pvpanic, bytes: 0x1000 },
  { base: BoardMap.clint, bytes: 0x1_0000 },
  { base: BoardMap.plic, bytes: 0x40_0000 },
  { base: BoardMap.uart, bytes: 0x100 },
  ...Array.from({ length: 8 }, (_, k) => ({ base: BoardMap.virtio + k * BoardMap.virtioStride, bytes: 0x200 })),
];
/** Registers worth hitting more often than a uniform offset would. */
const hotOffsets: Record<number, number[]> = {
  [BoardMap.clint]: [0, 0x4000, 0x4004, 0xbff8, 0xbffc],
  [BoardMap.plic]: [4, 40, 0x1000, 0x2000, 0x2080, 0x20_0000, 0x20_0004, 0x20_1000, 0x20_1004],
  [BoardMap.uart]: [0, 1, 2, 3, 4, 5, 7],
  [BoardMap.rtc]: [0, 4, 8, 0xc, 0x10, 0x14, 0x18, 0x1c],
};

function u32(value: number): number {
  return value >>> 0;
}

/**
 * Descriptor tables and request headers: well-formed three-descriptor requests (header, data,
 * status; a read or a write of one or two sectors, now and then past the disk's end), many
 * with one field spoiled, among garbage chains (loops, wild addresses, huge lengths).
 */
function fillQueueMemory(random: Prng, ram: DataView): void {
  const at = (address: number): number => address - ramBaseAddress;
  const descriptor = (index: number, address: number, bytes: number, flags: number, next: number): void => {
    const offset = at(queueArea) + index * 16;
    ram.setUint32(offset, u32(address), true);
    ram.setUint32(offset + 4, 0, true);
    ram.setUint32(offset + 8, u32(bytes), true);
    ram.setUint16(offset + 12, flags, true);
    ram.setUint16(offset + 14, next & 0xffff, true);
  };
  const chainBytes = 768;
  for (let head = 0; head + 3 <= queueEntries; head += 3) {
    const header = bufferArea + (head / 3) * chainBytes;
    if (random.chance(0.2)) {
      // A frame for the NIC's transmit queue: a network header (zero, now and then not) and
      // 0..1600 bytes, in one or two readable descriptors (or a receive buffer, writable).
      for (let i = 0; i < 12; i++) ram.setUint8(at(header) + i, random.chance(0.9) ? 0 : random.int(0, 255));
      const frameBytes = random.pick([60, 14, 13, 1518, 1519, random.int(0, 1600)]);
      const flags = random.chance(0.85) ? 0 : 2;
      if (random.chance(0.5)) {
        descriptor(head, header, 12 + frameBytes, flags, 0);
      } else {
        descriptor(head, header, 12, flags | 1, head + 1);
        descriptor(head + 1, header + 12, frameBytes, flags, 0);
      }
    } else if (random.chance(0.85)) {
      const write = random.chance(0.5);
      const sectors = random.pick([1, 1, 1, 0]);
      ram.setUint32(at(header), write ? 1 : 0, true);
      ram.setUint32(at(header) + 4, 0, true);
      ram.setUint32(at(header) + 8, random.chance(0.9) ? random.int(0, diskBytes / 512 - 1) : random.int(diskBytes / 512 - 1, diskBytes / 512 + 8), true);
      ram.setUint32(at(header) + 12, 0, true);
      descriptor(head, header, 16, 1, head + 1);
      descriptor(head + 1, header + 16, Math.max(1, sectors) * 512, write ? 1 : 3, head + 2);
      descriptor(head + 2, header + 16 + 512, 1, 2, 0);
      if (random.chance(0.15)) {
        // Spoil one field of one of the three.
        const offset = at(queueArea) + (head + random.int(0, 2)) * 16 + random.pick([0, 4, 8, 12, 14]);
        ram.setUint16(offset, random.int(0, 0xffff), true);
      }
    } else {
      for (let index = head; index < head + 3; index++) {
        const address = random.chance(0.85) ? bufferArea + random.int(0, bufferBytes / 16 - 1) * 16 : random.pick([0, 0x1000, ramBaseAddress + ramBytes - 8, 0xffff_fff0, random.next()]);
        const bytes = random.pick([16, 512, 1024, 1, 0, 4096, 0x1_0000, 0xffff_ffff, random.int(0, 70_000)]);
        const flags = random.chance(0.8) ? random.int(0, 7) : random.int(0, 0xffff);
        const next = random.chance(0.6) ? (index + 1) % queueEntries : random.chance(0.5) ? index : random.int(0, 0xffff);
        descriptor(index, address, bytes, flags, next);
        ram.setUint32(at(header) + 16 * (index - head), u32(random.pick([0, 1, 4, 8, 11, random.next()])), true);
      }
    }
  }
}

function generateProgram(random: Prng, actions: number): number[] {
  const code: number[] = [];
  const store = (address: number, value: number, width: 1 | 2 | 4 = 4): void => {
    code.push(...li(t1, address), ...li(t2, value));
    code.push(width === 1 ? asm.sb(t2, t1, 0) : width === 2 ? asm.sh(t2, t1, 0) : asm.sw(t2, t1, 0));
  };
  code.push(...li(t1, handlerAddress), asm.csrrw(0, Csr.mtvec, t1));
  for (let action = 0; action < actions; action++) {
    const kind = random.int(0, 99);
    if (kind < 30) {
      // A register of some device, at a random width, with a random value; or a read.
      const window = random.pick(deviceWindows);
      const hot = hotOffsets[window.base];
      const width = random.pick([1, 2, 4, 4, 4] as const);
      let offset = hot !== undefined && random.chance(0.5) ? random.pick(hot) : random.int(0, window.bytes - 1);
      if (random.chance(0.9)) offset &= ~(width - 1);
      const value = random.chance(0.5) ? random.pick([0, 1, 2, 3, 0xff, 0xffff_ffff, 0x8000_0000]) : random.next();
      if (window.base === BoardMap.test && random.chance(0.9)) continue; // powering off ends the run early
      if (random.chance(0.3)) {
        code.push(...li(t1, window.base + offset), width === 1 ? asm.lbu(t2, t1, 0) : width === 2 ? asm.lhu(t2, t1, 0) : asm.lw(t2, t1, 0));
      } else {
        store(window.base + offset, value, width);
      }
    } else if (kind < 45) {
      // Set up queue 0 (or another) of a virtio slot: sometimes correctly, sometimes not.
      const slot = random.chance(0.8) ? BoardMap.virtio + random.pick(deviceSlots) * BoardMap.virtioStride : random.pick(deviceWindows.slice(6)).base;
      const reg = (offset: number, value: number): void => store(slot + offset, value);
      reg(Reg.Status, 0);
      reg(Reg.Status, 1);
      reg(Reg.Status, 3);
      reg(Reg.DriverFeaturesSel, 1);
      reg(Reg.DriverFeatures, random.chance(0.9) ? 1 : random.next());
      reg(Reg.DriverFeaturesSel, 0);
      reg(Reg.DriverFeatures, random.chance(0.8) ? 0 : random.next());
      reg(Reg.Status, random.chance(0.9) ? 11 : random.int(0, 255));
      // The NIC has two queues (receive, transmit): mostly both are set up, over the same rings.
      const isNic = slot === BoardMap.virtio + netSlot * BoardMap.virtioStride;
      const queues = isNic && random.chance(0.8) ? [0, 1] : [random.chance(0.9) ? 0 : random.int(0, 3)];
      // A fresh queue starts with empty rings (a device that met a bad chain needs a reset,
      // and a reset device starts again from avail index 0).
      if (random.chance(0.9)) {
        store(availRing, 0);
        store(usedRing, 0);
      }
      for (const queue of queues) {
        reg(Reg.QueueSel, queue);
        reg(Reg.QueueNum, random.pick([1, 2, 8, 16, 256, 256, 256, 0, 257, 1024, random.next()]));
        reg(Reg.QueueDescLow, random.chance(0.85) ? queueArea : random.next());
        reg(Reg.QueueDescHigh, random.chance(0.9) ? 0 : random.next());
        reg(Reg.QueueDriverLow, random.chance(0.85) ? availRing : random.next());
        reg(Reg.QueueDeviceLow, random.chance(0.85) ? usedRing : random.next());
        reg(Reg.QueueReady, random.chance(0.9) ? 1 : random.next());
      }
      reg(Reg.Status, random.chance(0.9) ? 15 : random.int(0, 255));
    } else if (kind < 50) {
      // The NIC from scratch, both queues over the shared rings, then one head offered and the
      // transmit queue notified (most heads are no frame; some are).
      const slot = BoardMap.virtio + netSlot * BoardMap.virtioStride;
      const reg = (offset: number, value: number): void => store(slot + offset, value);
      for (const value of [0, 1, 3]) reg(Reg.Status, value);
      reg(Reg.DriverFeaturesSel, 1);
      reg(Reg.DriverFeatures, 1);
      reg(Reg.DriverFeaturesSel, 0);
      reg(Reg.DriverFeatures, random.chance(0.8) ? 0 : 1 << 16);
      reg(Reg.Status, 11);
      store(availRing, 0);
      store(usedRing, 0);
      for (const queue of [0, 1]) {
        reg(Reg.QueueSel, queue);
        reg(Reg.QueueNum, 256);
        reg(Reg.QueueDescLow, queueArea);
        reg(Reg.QueueDriverLow, availRing);
        reg(Reg.QueueDeviceLow, usedRing);
        reg(Reg.QueueReady, 1);
      }
      reg(Reg.Status, 15);
      store(availRing + 4, 3 * random.int(0, queueEntries / 3 - 1), 2);
      store(availRing + 2, random.int(1, 3), 2);
      reg(Reg.QueueNotify, random.chance(0.8) ? 1 : 0);
    } else if (kind < 65) {
      // Offer a descriptor head in the avail ring (the index bumped by one, or by anything)
      // and notify.
      const slot = BoardMap.virtio + random.pick(deviceSlots) * BoardMap.virtioStride;
      code.push(...li(t1, availRing + 2), asm.lhu(t2, t1, 0));
      code.push(asm.andi(t3, t2, queueEntries - 1), asm.slli(t3, t3, 1), ...li(t4, availRing + 4), asm.add(t4, t4, t3));
      const head = random.chance(0.95) ? 3 * random.int(0, queueEntries / 3 - 1) : random.chance(0.5) ? random.int(0, queueEntries - 1) : random.int(0, 0xffff);
      code.push(...li(t5, head), asm.sh(t5, t4, 0));
      code.push(asm.addi(t2, t2, random.chance(0.9) ? 1 : random.int(-2048, 2047)), asm.sh(t2, t1, 0));
      store(slot + Reg.QueueNotify, random.chance(0.6) ? 0 : random.chance(0.75) ? 1 : random.int(0, 0xffff));
    } else if (kind < 80) {
      // Change a descriptor or a header under the device's feet.
      const area = random.chance(0.6) ? queueArea + random.int(0, 0x2fff) : bufferArea + random.int(0, bufferBytes - 1);
      store(area & ~3, random.next());
    } else if (kind < 85) {
      // A CSR: mostly without MPRV and without locking PMP, which would end the program's
      // reach early (it still happens now and then).
      const csr = random.pick([Csr.mstatus, Csr.mie, Csr.mip, Csr.mideleg, Csr.medeleg, Csr.satp, Csr.mscratch, Csr.mcounteren, Csr.pmpcfg0, Csr.pmpaddr0]);
      const tame = csr === Csr.mstatus ? ~(1 << 17) : csr === Csr.pmpcfg0 ? 0x7f7f7f7f : -1;
      code.push(...li(t1, random.chance(0.9) ? random.next() & tame : random.next()), asm.csrrw(0, csr, t1));
    } else if (kind < 88) {
      code.push(...li(t1, random.next()), asm.csrrw(0, random.pick([Csr.sscratch, Csr.stvec, Csr.sepc, Csr.mtval]), t1));
    } else if (kind < 92) {
      code.push(random.next());
    } else if (kind < 93) {
      // WFI, mostly with the timer due (mtimecmp 0, MTIE on) so that it does not end the run.
      if (random.chance(0.8)) {
        store(BoardMap.clint + 0x4000, 0);
        store(BoardMap.clint + 0x4004, 0);
        code.push(...li(t1, 0x80), asm.csrrs(0, Csr.mie, t1));
      }
      code.push(asm.wfi());
    } else {
      code.push(asm.jal(0, 4 * random.int(1, 16)));
    }
  }
  // Round again, from the top.
  code.push(asm.jal(0, -4 * code.length));
  return code;
}

/** The handler: skip the trapping instruction (or the one an interrupt stopped at) and return. */
const handler = [asm.csrrs(t0, Csr.mepc, 0), asm.addi(t0, t0, 4), asm.csrrw(0, Csr.mepc, t0), asm.mret()];


/**
 * A loopback cable: frames come back only as answers to frames sent, so a guest asleep with
 * nothing on the cable will never hear from it (the runner then calls it stuck, not idle).
 */
class LoopbackPort extends NetworkPort {
  override get mayDeliver(): boolean {
    return this.inputWaiting || this.backlogBytes > 0;
  }
}

export interface HostileGuest {
  readonly machine: Machine;
  readonly clock: VirtualClock;
  readonly config: BoardConfig;
  /** Virtio slot -> image: a read-write and a read-only disk. */
  readonly disks: ReadonlyMap<number, DiskImage>;
  /** The NIC's back-end: a loopback cable (every frame sent comes back in) that counts; `start()` it first. */
  readonly networks: ReadonlyMap<number, NetworkPort>;
  readonly network: NetworkPort;
  readonly imagePaths: readonly string[];
  close(): void;
}

export const hostileDiskBytes = diskBytes;

/** The machine for one seed, its program loaded, with two fresh disk images in `directory`. */
export function buildHostileGuest(seed: number, directory: string): HostileGuest {
  const random = new Prng(seed);
  const imagePaths = [0, 1].map((index) => path.join(directory, `disk-${seed}-${index}.img`));
  for (const file of imagePaths) fs.writeFileSync(file, Buffer.alloc(diskBytes));
  const images = imagePaths.map((file, index) => new DiskImage(file, index === 1));
  const config: BoardConfig = {
    ramBytes,
    disks: images.map((image, index) => ({ capacityBytes: image.capacityBytes, readOnly: image.readOnly, serial: `hostile-${index}` })),
    nics: [{ mac: '52:54:00:12:34:56' }],
  };
  const clock = new VirtualClock();
  const machine = new Machine(config, clock);
  const program = generateProgram(random, 400);
  const memory = new Uint8Array(0x12_0000);
  memory.set(assemble(program));
  memory.set(assemble(handler), handlerAddress - ramBaseAddress);
  fillQueueMemory(random, new DataView(memory.buffer));
  machine.load(rawImage(memory));
  const disks = new Map([...machine.disks.keys()].map((slot, index) => [slot, images[index]!]));
  const cable = new PassThrough();
  const network = new LoopbackPort({ description: 'loopback', restartable: false, connect: () => Promise.resolve(cable), close: () => cable.destroy() }, () => {});
  const close = (): void => {
    images.forEach((image) => image.close());
    network.close();
  };
  return { machine, clock, config, disks, networks: new Map([[netSlot, network]]), network, imagePaths, close };
}
