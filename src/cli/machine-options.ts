/**
 * The machine options every command that builds a machine shares (run, primary, backup,
 * pair), how they are read, and how a machine is booted from them.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Machine, configKey, type BoardConfig, type DiskConfig } from '../machine/board.js';
import type { EnvironmentPort } from '../machine/environment.js';
import { ramBytesMax, ramBytesMin } from '../machine/memory/ram.js';
import { ImageError, isElf, parseElf, rawImage, type LoadedImage } from '../machine/loader/elf.js';
import { DiskImage } from '../host/disk-image.js';
import { checkInitramfs, defaultBootargs, ensureDataDisk, linuxDefaults, readBootFile } from '../host/linux-guest.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const defaultMemoryBytes = 128 * 1024 * 1024;

export const machineOptionsHelp = `machine options:
  --kernel FILE        RV32 ELF executable (or a raw image loaded at 0x80000000), started in M-mode
  --guest linux        boot the Linux guest (kernel and initramfs from linux/build.sh) to its
                       shell; its ext4 data disk is --disk, or .cache/linux/data.img, created
                       if missing. --kernel, --initrd and --append override its parts
  --disk FILE          a raw disk image as a virtio block device (read-write); repeatable
  --disk-ro FILE       the same, read-only
  --memory SIZE        RAM size, e.g. 128M or 1G (default 128M)
  --clock host|virtual host: real time (default); virtual: time from the instruction count
                       (exactly repeatable, like QEMU's -icount shift=0)
  --initrd FILE        (Linux) the initramfs
  --append TEXT        (Linux) the kernel command line (default "${defaultBootargs}")
`;

/** parseArgs specifications of the machine options. */
export const machineOptionSpec = {
  kernel: { type: 'string' },
  guest: { type: 'string' },
  initrd: { type: 'string' },
  append: { type: 'string' },
  disk: { type: 'string', multiple: true },
  'disk-ro': { type: 'string', multiple: true },
  memory: { type: 'string' },
  clock: { type: 'string' },
} as const;

export interface MachineSettings {
  guest: 'bare' | 'linux';
  kernel: string;
  initrd?: string;
  bootargs: string;
  disks: { path: string; readOnly: boolean }[];
  memoryBytes: number;
  clock: 'host' | 'virtual';
}

type Token = { kind: string; name?: string; value?: string | undefined };

/** Runs parseArgs with one-line errors, as UsageError. */
export function parseOptions<const T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false, tokens: true });
  } catch (error) {
    // Some of parseArgs' messages span several lines; ours are one line.
    throw new UsageError((error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' '));
  }
}

export function machineSettings(
  values: { kernel?: string | undefined; guest?: string | undefined; initrd?: string | undefined; append?: string | undefined; memory?: string | undefined; clock?: string | undefined },
  tokens: readonly Token[],
  command: string,
): MachineSettings {
  const guest = values.guest ?? 'bare';
  if (guest !== 'bare' && guest !== 'linux') throw new UsageError(`--guest must be linux, not "${guest}"`);
  if (guest === 'bare' && values.kernel === undefined) throw new UsageError(`${command} needs --kernel FILE (or --guest linux)`);
  if (guest === 'bare' && (values.initrd !== undefined || values.append !== undefined)) throw new UsageError('--initrd and --append go with --guest linux');
  const linux = linuxDefaults(projectRoot);
  const disks: { path: string; readOnly: boolean }[] = [];
  for (const token of tokens) {
    if (token.kind === 'option' && (token.name === 'disk' || token.name === 'disk-ro') && token.value !== undefined) {
      disks.push({ path: token.value, readOnly: token.name === 'disk-ro' });
    }
  }
  const clock = values.clock ?? 'host';
  if (clock !== 'host' && clock !== 'virtual') throw new UsageError(`--clock must be host or virtual, not "${clock}"`);
  if (guest === 'linux' && disks.length === 0) disks.push({ path: linux.dataDisk, readOnly: false });
  const settings: MachineSettings = {
    guest,
    kernel: values.kernel ?? linux.kernel,
    bootargs: values.append ?? defaultBootargs,
    disks,
    memoryBytes: values.memory === undefined ? defaultMemoryBytes : parseSize(values.memory),
    clock,
  };
  if (guest === 'linux') settings.initrd = values.initrd ?? linux.initrd;
  return settings;
}

/** Parses "128M", "1G", "65536K", "64MiB" or a byte count. */
export function parseSize(text: string): number {
  const match = /^(\d+)\s*([KMG]?)(?:i?B)?$/i.exec(text.trim());
  if (match === null) throw new UsageError(`--memory: cannot read "${text}" as a size (try 128M)`);
  const units: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };
  const bytes = Number(match[1]) * units[match[2]!.toUpperCase()]!;
  if (bytes < ramBytesMin || bytes > ramBytesMax) {
    throw new UsageError(`--memory ${text} is out of range: between ${ramBytesMin / 1024 ** 2} MiB and ${Math.floor(ramBytesMax / 1024 ** 2)} MiB`);
  }
  if (bytes % 4096 !== 0) throw new UsageError(`--memory ${text}: must be a multiple of 4 KiB`);
  return bytes;
}

export function parsePositive(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`${option} needs a positive number, not "${text}"`);
  return value;
}

/** An instruction count: the machine runs whole instructions, so fractions are a usage error. */
export function parseCount(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new UsageError(`${option} needs a positive whole number, not "${text}"`);
  return value;
}

/** Reads a kernel file: an RV32 ELF, or a raw image to load at the start of RAM. */
export function readKernel(file: string): LoadedImage {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ImageError(`cannot read kernel ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (code ?? String(error))}`);
  }
  if (bytes.length === 0) throw new ImageError(`kernel ${file} is empty`);
  if (isElf(bytes)) {
    try {
      return parseElf(bytes);
    } catch (error) {
      if (error instanceof ImageError) throw new ImageError(`kernel ${file}: ${error.message}`);
      throw error;
    }
  }
  return rawImage(bytes);
}

/** What to put in a fresh machine: a bare-metal program, or Linux with its initramfs. */
export type BootPlan = { kind: 'bare'; image: LoadedImage } | { kind: 'linux'; kernel: Uint8Array; initrd: Uint8Array | undefined; bootargs: string };

export function planBoot(settings: MachineSettings): BootPlan {
  if (settings.guest === 'bare') return { kind: 'bare', image: readKernel(settings.kernel) };
  const kernel = readBootFile(settings.kernel, 'kernel');
  let initrd: Uint8Array | undefined;
  if (settings.initrd !== undefined) {
    initrd = readBootFile(settings.initrd, 'initramfs');
    checkInitramfs(initrd, settings.initrd);
  }
  for (const disk of settings.disks) if (!disk.readOnly) ensureDataDisk(disk.path);
  return { kind: 'linux', kernel, initrd, bootargs: settings.bootargs };
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


/** The machine's disks, opened, with their board configuration. */
export function openDisks(settings: MachineSettings): { images: DiskImage[]; configs: DiskConfig[] } {
  const images = settings.disks.map((disk) => new DiskImage(disk.path, disk.readOnly));
  const configs = images.map((image, index) => ({ capacityBytes: image.capacityBytes, readOnly: image.readOnly, serial: `understudy-disk${index}` }));
  return { images, configs };
}

export function boardConfig(settings: MachineSettings, disks: readonly DiskConfig[]): BoardConfig {
  return { ramBytes: settings.memoryBytes, disks };
}

/** Virtio slot -> image, in the order the board placed the disks. */
export function diskSlots(machine: Machine, images: readonly DiskImage[]): Map<number, DiskImage> {
  return new Map([...machine.disks.keys()].map((slot, index) => [slot, images[index]!]));
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

export function createMachine(config: BoardConfig, environment: EnvironmentPort): Machine {
  return new Machine(config, environment);
}

export { configKey, defaultBootargs };
