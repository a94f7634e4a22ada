/**
 * Guest images and boot planning: reading a kernel (an RV32 ELF, a raw image, or a Linux
 * Image with its initramfs), what a fresh machine is booted with, the digest a backup's image
 * must match, and the machine's disks. Every command that builds a machine uses these.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { diskSlot, Machine, type BoardConfig, type CpuMode, type DiskConfig } from '../machine/board.js';
import type { EnvironmentPort } from '../machine/environment.js';
import { ImageError, isElf, loadImage, type LoadedImage } from '../machine/loader/elf.js';
import { ramBaseAddress } from '../machine/memory/ram.js';
import { DiskImage } from './disk-image.js';
import { checkInitramfs, ensureDataDisk, readBootFile } from './linux-guest.js';
import type { NetSpec } from './network/option.js';

/** The repository root (this file runs from dist/src/host/). */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** What a machine is made of, as the command line described it. */
export interface MachineSettings {
  guest: 'bare' | 'linux';
  kernel: string;
  initrd?: string;
  bootargs: string;
  disks: { path: string; readOnly: boolean }[];
  memoryBytes: number;
  clock: 'host' | 'virtual';
  /** How the CPU executes guest code (board.ts): the interpreter alone, or with the translation tier. */
  cpu: CpuMode;
  /** Network interfaces, in slot order after the disks. */
  nets: NetSpec[];
}

/** Reads a file that is to be booted, with a one-line error that says what is wrong. */
export function readKernelBytes(file: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ImageError(`cannot read kernel ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (code ?? String(error))}`);
  }
  if (bytes.length === 0) throw new ImageError(`kernel ${file} is empty`);
  return bytes;
}

/** Reads a kernel file (unless its bytes are given): an RV32 ELF, or a raw image to load at the start of RAM. */
export function readKernel(file: string, bytes = readKernelBytes(file)): LoadedImage {
  try {
    return loadImage(bytes);
  } catch (error) {
    if (error instanceof ImageError) throw new ImageError(`kernel ${file}: ${error.message}`);
    throw error;
  }
}

/**
 * What to put in a fresh machine: a bare-metal program, or Linux with its initramfs; `notes`
 * are what the user should be told about it (the process the user started prints them).
 */
export type BootPlan = ({ kind: 'bare'; image: LoadedImage } | { kind: 'linux'; kernel: Uint8Array; initrd: Uint8Array | undefined; bootargs: string }) & {
  readonly notes: readonly string[];
};

export function planBoot(settings: MachineSettings): BootPlan {
  if (settings.guest === 'bare') {
    const bytes = readKernelBytes(settings.kernel);
    // As QEMU's -kernel does, a file that is not an ELF is loaded as it is: say so, since a
    // wrong file would otherwise just run as garbage.
    const notes = isElf(bytes) ? [] : [`kernel ${settings.kernel} is not an ELF file: loading it as a raw image at 0x${ramBaseAddress.toString(16)}, entered there`];
    return { kind: 'bare', image: readKernel(settings.kernel, bytes), notes };
  }
  const kernel = readBootFile(settings.kernel, 'kernel');
  let initrd: Uint8Array | undefined;
  if (settings.initrd !== undefined) {
    initrd = readBootFile(settings.initrd, 'initramfs');
    checkInitramfs(initrd, settings.initrd);
  }
  for (const disk of settings.disks) if (!disk.readOnly) ensureDataDisk(disk.path);
  return { kind: 'linux', kernel, initrd, bootargs: settings.bootargs, notes: [] };
}

export function boot(machine: Machine, plan: BootPlan, settings: MachineSettings): void {
  try {
    if (plan.kind === 'bare') machine.load(plan.image);
    else machine.bootLinux(plan.kernel, plan.initrd === undefined ? { bootargs: plan.bootargs } : { bootargs: plan.bootargs, initrd: plan.initrd });
  } catch (error) {
    if (error instanceof ImageError) throw new ImageError(`kernel ${settings.kernel}: ${error.message}`);
    throw error;
  }
}


/**
 * The machine's disks, opened, with their board configuration. `writeBack`: the disks answer
 * writes at once (`DiskConfig.writeBack`), as under `run` and under `pair` with the reissue
 * policy (a write the guest was told is done is written again after a failover).
 */
export function openDisks(settings: MachineSettings, writeBack: boolean): { images: DiskImage[]; configs: DiskConfig[] } {
  const images = settings.disks.map((disk) => new DiskImage(disk.path, disk.readOnly));
  const configs = images.map((image, index) => ({ capacityBytes: image.capacityBytes, readOnly: image.readOnly, serial: `understudy-disk${index}`, writeBack }));
  return { images, configs };
}

export function boardConfig(settings: MachineSettings, disks: readonly DiskConfig[]): BoardConfig {
  return { ramBytes: settings.memoryBytes, disks, nics: settings.nets.map((spec) => ({ mac: spec.mac })) };
}

/** Virtio slot -> image, in the order the board placed the disks. */
export function diskSlots(images: readonly DiskImage[]): Map<number, DiskImage> {
  return new Map(images.map((image, index) => [diskSlot(index), image]));
}

/** SHA-256 of what is booted: the image, and for Linux the initramfs and command line. */
export function bootDigest(plan: BootPlan): string {
  const hash = createHash('sha256');
  if (plan.kind === 'bare') {
    hash.update(`bare entry=${plan.image.entry}`);
    for (const segment of plan.image.segments) hash.update(`${segment.physicalAddress}:${segment.memoryBytes}`).update(segment.data);
  } else {
    hash.update('linux').update(plan.kernel).update(plan.initrd ?? new Uint8Array(0)).update(plan.bootargs);
  }
  return hash.digest('hex');
}

export function createMachine(config: BoardConfig, environment: EnvironmentPort, cpu: CpuMode): Machine {
  return new Machine(config, environment, { cpu });
}
