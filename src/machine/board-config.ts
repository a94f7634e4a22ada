/**
 * The virt board's address map, interrupt numbers and configuration: what the board builds
 * and the device tree describes (both import it from here).
 */
import { ramBaseAddress } from './memory/ram.js';
import { sectorBytes } from './devices/virtio-blk.js';
import { parseMacAddress } from './devices/virtio-net.js';

export const BoardMap = {
  test: 0x0010_0000,
  rtc: 0x0010_1000,
  pvpanic: 0x0010_2000,
  clint: 0x0200_0000,
  plic: 0x0c00_0000,
  uart: 0x1000_0000,
  virtio: 0x1000_1000,
  virtioStride: 0x1000,
  ram: ramBaseAddress,
} as const;
export const BoardIrq = { virtioFirst: 1, uart: 10, rtc: 11 } as const;
export const virtioSlots = 8;
/** Largest disk: offsets must stay exact in a double. */
export const diskBytesMax = 2 ** 40;

export interface DiskConfig {
  readonly capacityBytes: number;
  readonly readOnly: boolean;
  readonly serial: string;
  /**
   * A volatile write cache (as QEMU's cache=writeback): the device answers a write as soon as
   * it has the data, and the host writes it later; a flush still completes only once the
   * writes before it are on the disk. Guest-visible (when interrupts come), so part of the
   * configuration key: two replicas must agree on it. Default false.
   */
  readonly writeBack?: boolean;
}

export interface NicConfig {
  /** Unicast MAC address, "52:54:00:12:34:56": the same on both replicas and after a failover. */
  readonly mac: string;
}

export interface BoardConfig {
  readonly ramBytes: number;
  readonly disks: readonly DiskConfig[];
  /** Network interfaces (virtio-net); none if absent. */
  readonly nics?: readonly NicConfig[];
}

/** Which virtio slot the n-th disk occupies: like QEMU, the first device takes the highest slot. */
export function diskSlot(index: number): number {
  return virtioSlots - 1 - index;
}

/** Which virtio slot the n-th NIC occupies: the next free one below the disks (QEMU fills slots in creation order). */
export function nicSlot(config: BoardConfig, index: number): number {
  return virtioSlots - 1 - config.disks.length - index;
}

export function validateConfig(config: BoardConfig): void {
  const nics = config.nics ?? [];
  if (config.disks.length + nics.length > virtioSlots) throw new RangeError(`at most ${virtioSlots} virtio devices (disks and NICs), got ${config.disks.length + nics.length}`);
  const macs = new Set<string>();
  for (const nic of nics) {
    const mac = parseMacAddress(nic.mac);
    if (mac === undefined) throw new RangeError(`${JSON.stringify(nic.mac)} is not a unicast MAC address like 52:54:00:12:34:56`);
    const key = nic.mac.toLowerCase();
    if (macs.has(key)) throw new RangeError(`two NICs with the MAC address ${key}`);
    macs.add(key);
  }
  for (const disk of config.disks) {
    if (!Number.isInteger(disk.capacityBytes) || disk.capacityBytes < sectorBytes || disk.capacityBytes > diskBytesMax || disk.capacityBytes % sectorBytes !== 0) {
      throw new RangeError(`disk size ${disk.capacityBytes} bytes: must be a multiple of ${sectorBytes} between ${sectorBytes} and ${diskBytesMax}`);
    }
  }
}

/** A canonical description of the configuration, part of every snapshot. */
export function configKey(config: BoardConfig): string {
  const disks = config.disks.map((d) => `${d.capacityBytes}${d.readOnly ? 'r' : 'w'}${d.writeBack === true ? 'b' : ''}:${d.serial}`).join(',');
  const nics = config.nics ?? [];
  // Without NICs the key stays what it was before they existed.
  const nicPart = nics.length === 0 ? '' : `;nics=[${nics.map((nic) => nic.mac.toLowerCase()).join(',')}]`;
  return `ram=${config.ramBytes};disks=[${disks}]${nicPart}`;
}

