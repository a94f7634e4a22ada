/**
 * `understudy <command>`: the command line.
 *
 * Bad input (a missing file, a wrong option, an image that is not an RV32 ELF) ends in one
 * line on stderr and a non-zero status, never a stack trace; only a bug of our own shows one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Machine, type DiskConfig } from '../machine/board.js';
import { ramBaseAddress, ramBytesMax, ramBytesMin } from '../machine/memory/ram.js';
import { ImageError, isElf, parseElf, type LoadedImage } from '../machine/loader/elf.js';
import { HostClock, VirtualClock, type MachineClock } from '../host/clocks.js';
import { TerminalConsole } from '../host/console.js';
import { DiskImage, DiskImageError } from '../host/disk-image.js';
import { runMachine, type RunOutcome } from '../host/runner.js';
import { checkInitramfs, defaultBootargs, ensureDataDisk, linuxDefaults, readBootFile } from '../host/linux-guest.js';
import { SnapshotError } from '../machine/snapshot.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const defaultMemoryBytes = 128 * 1024 * 1024;

const usage = `usage: understudy <command> [options]

commands:
  run     run a guest on one machine
  demo    run the bundled demo guest
  help    show this text

run options:
  --kernel FILE        RV32 ELF executable (or a raw image loaded at 0x80000000), started in M-mode
  --guest linux        boot the Linux guest (kernel and initramfs from linux/build.sh) to its
                       shell; its ext2 data disk is --disk, or .cache/linux/data.img, created
                       if missing. --kernel, --initrd and --append override its parts
  --disk FILE          a raw disk image as a virtio block device (read-write); repeatable
  --disk-ro FILE       the same, read-only
  --memory SIZE        RAM size, e.g. 128M or 1G (default 128M)
  --clock host|virtual host: real time (default); virtual: time from the instruction count
                       (exactly repeatable, like QEMU's -icount shift=0)
  --initrd FILE        (Linux) the initramfs
  --append TEXT        (Linux) the kernel command line (default "${defaultBootargs}")
  --timeout SECONDS    stop a run that takes longer (exit status 124)
  --max-instructions N stop after N instructions (exit status 125)
`;

export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    switch (command) {
      case 'run':
        return await runCommand(rest);
      case 'demo':
        return await runCommand(['--kernel', path.join(projectRoot, 'guests/build/demo.elf'), ...rest]);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(usage);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}" (try: understudy help)`);
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof ImageError || error instanceof DiskImageError || error instanceof SnapshotError) {
      process.stderr.write(`understudy: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}

interface RunSettings {
  guest: 'bare' | 'linux';
  kernel: string;
  initrd?: string;
  bootargs: string;
  disks: { path: string; readOnly: boolean }[];
  memoryBytes: number;
  clock: 'host' | 'virtual';
  timeoutSeconds?: number;
  instructionLimit?: number;
}

function parseRunOptions(argv: string[]): RunSettings {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        kernel: { type: 'string' },
        guest: { type: 'string' },
        initrd: { type: 'string' },
        append: { type: 'string' },
        disk: { type: 'string', multiple: true },
        'disk-ro': { type: 'string', multiple: true },
        memory: { type: 'string' },
        clock: { type: 'string' },
        timeout: { type: 'string' },
        'max-instructions': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
      tokens: true,
    });
  } catch (error) {
    // Some of parseArgs' messages span several lines; ours are one line.
    throw new UsageError((error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' '));
  }
  const { values, tokens } = parsed;
  const guest = values.guest ?? 'bare';
  if (guest !== 'bare' && guest !== 'linux') throw new UsageError(`--guest must be linux, not "${guest}"`);
  if (guest === 'bare' && values.kernel === undefined) throw new UsageError('run needs --kernel FILE (or --guest linux)');
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
  const settings: RunSettings = {
    guest,
    kernel: values.kernel ?? linux.kernel,
    bootargs: values.append ?? defaultBootargs,
    disks,
    memoryBytes: values.memory === undefined ? defaultMemoryBytes : parseSize(values.memory),
    clock,
  };
  if (guest === 'linux') settings.initrd = values.initrd ?? linux.initrd;
  if (values.timeout !== undefined) settings.timeoutSeconds = parsePositive(values.timeout, '--timeout');
  if (values['max-instructions'] !== undefined) settings.instructionLimit = parseCount(values['max-instructions'], '--max-instructions');
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

function parsePositive(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`${option} needs a positive number, not "${text}"`);
  return value;
}

/** An instruction count: the machine runs whole instructions, so fractions are a usage error. */
function parseCount(text: string, option: string): number {
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
  return { entry: ramBaseAddress, segments: [{ physicalAddress: ramBaseAddress, data: bytes, memoryBytes: bytes.length }], symbols: new Map() };
}

/** What to put in a fresh machine: a bare-metal program, or Linux with its initramfs. */
type BootPlan = { kind: 'bare'; image: LoadedImage } | { kind: 'linux'; kernel: Uint8Array; initrd: Uint8Array | undefined; bootargs: string };

function planBoot(settings: RunSettings): BootPlan {
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

function boot(machine: Machine, plan: BootPlan, settings: RunSettings): void {
  try {
    if (plan.kind === 'bare') machine.load(plan.image);
    else machine.bootLinux(plan.kernel, plan.initrd === undefined ? { bootargs: plan.bootargs } : { bootargs: plan.bootargs, initrd: plan.initrd });
  } catch (error) {
    if (error instanceof ImageError) throw new ImageError(`kernel ${settings.kernel}: ${error.message}`);
    throw error;
  }
}

async function runCommand(argv: string[]): Promise<number> {
  const settings = parseRunOptions(argv);
  const plan = planBoot(settings);
  const images = settings.disks.map((disk) => new DiskImage(disk.path, disk.readOnly));
  const diskConfigs: DiskConfig[] = images.map((image, index) => ({
    capacityBytes: image.capacityBytes,
    readOnly: image.readOnly,
    serial: `understudy-disk${index}`,
  }));
  const terminal = new TerminalConsole();
  try {
    for (;;) {
      // A reset starts the machine's clock from zero again, as a power cycle would.
      const clock: MachineClock = settings.clock === 'virtual' ? new VirtualClock() : new HostClock();
      const machine = new Machine({ ramBytes: settings.memoryBytes, disks: diskConfigs }, clock);
      boot(machine, plan, settings);
      const disks = new Map([...machine.disks.keys()].map((slot, index) => [slot, images[index]!]));
      const outcome = await runMachine({
        machine,
        clock,
        console: terminal,
        disks,
        ...(settings.timeoutSeconds === undefined ? {} : { timeoutSeconds: settings.timeoutSeconds }),
        ...(settings.instructionLimit === undefined ? {} : { instructionLimit: settings.instructionLimit }),
      });
      if (outcome.kind === 'reset') continue; // the guest asked for a reset: boot again
      await terminal.drain();
      return reportOutcome(outcome);
    }
  } finally {
    terminal.close();
    for (const image of images) image.close();
  }
}

function reportOutcome(outcome: Exclude<RunOutcome, { kind: 'reset' }>): number {
  switch (outcome.kind) {
    case 'poweroff':
      // A failure status that is a multiple of 256 must not look like success to the shell.
      return outcome.status === 0 ? 0 : outcome.status % 256 === 0 ? 1 : outcome.status % 256;
    case 'quit':
      process.stderr.write('\nunderstudy: quit\n');
      return 0;
    case 'panic':
      process.stderr.write('\nunderstudy: the guest kernel panicked\n');
      return 4;
    case 'timeout':
      process.stderr.write(`\nunderstudy: timed out after ${outcome.seconds} s\n`);
      return 124;
    case 'instruction-limit':
      process.stderr.write('\nunderstudy: instruction limit reached\n');
      return 125;
    case 'stuck':
      process.stderr.write(`\nunderstudy: ${outcome.reason}\n`);
      return 3;
  }
}
