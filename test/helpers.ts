/** Shared helpers for the test suite: paths, running guests in-process and on QEMU. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine, type BoardConfig, type CpuMode } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import { BufferConsole } from '../src/host/console.js';
import { DiskImage } from '../src/host/disk-image.js';
import { runMachine, type RunOutcome } from '../src/host/runner.js';
import { readKernel } from '../src/host/guest-image.js';
import { defaultCpu } from '../src/cli/options.js';
import type { Ram } from '../src/machine/memory/ram.js';
import type { TierBackend } from '../src/machine/cpu/translation-cache.js';

/** The repository root (this file runs from dist/test/). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const guestBuild = path.join(repoRoot, 'guests/build');
export const cliPath = path.join(repoRoot, 'bin/understudy.js');

export function guestElf(name: string): string {
  const file = path.join(guestBuild, `${name}.elf`);
  if (!fs.existsSync(file)) throw new Error(`guest ${name} is not built (${file}); run make -C guests`);
  return file;
}

export interface GuestRun {
  readonly outcome: RunOutcome;
  readonly output: string;
  readonly machine: Machine;
}

export interface GuestRunOptions {
  readonly disks?: { path: string; readOnly: boolean }[];
  readonly ramBytes?: number;
  readonly instructionLimit?: number;
  readonly input?: string;
  /** How the CPU runs (default: as the command line's, $UNDERSTUDY_CPU or the default tier). */
  readonly cpu?: CpuMode;
  /** In lockstep mode, what the tier compiles to (MachineOptions.lockstepBackend). */
  readonly lockstepBackend?: TierBackend;
}

/** Runs one of the project's guests (guests/build/NAME.elf); see runElf. */
export function runGuest(name: string, options: GuestRunOptions = {}): Promise<GuestRun> {
  return runElf(guestElf(name), options);
}

/** Runs a guest ELF on a fresh machine with virtual time, in this process. */
export async function runElf(elf: string, options: GuestRunOptions = {}): Promise<GuestRun> {
  const images = (options.disks ?? []).map((disk) => new DiskImage(disk.path, disk.readOnly));
  try {
    const config: BoardConfig = {
      ramBytes: options.ramBytes ?? 128 * 1024 * 1024,
      disks: images.map((image, index) => ({ capacityBytes: image.capacityBytes, readOnly: image.readOnly, serial: `understudy-disk${index}` })),
    };
    const clock = new VirtualClock();
    const machine = new Machine(config, clock, { cpu: options.cpu ?? defaultCpu(), ...(options.lockstepBackend === undefined ? {} : { lockstepBackend: options.lockstepBackend }) });
    machine.load(readKernel(elf));
    const terminal = new BufferConsole(options.input ?? '');
    const disks = new Map([...machine.disks.keys()].map((slot, index) => [slot, images[index]!]));
    const outcome = await runMachine({ machine, clock, console: terminal, disks, instructionLimit: options.instructionLimit ?? 500_000_000 });
    return { outcome, output: terminal.text, machine };
  } finally {
    for (const image of images) image.close();
  }
}

export const qemuBinary = 'qemu-system-riscv32';
/**
 * QEMU's CPU shaped like understudy's: RV32IMAC with S and U, and without what QEMU 7.2's
 * generic rv32 adds by default (F, D, the hypervisor, Sstc, the bit-manipulation parts).
 */
export const qemuCpu = 'rv32,c=true,f=true,d=true,h=false,sstc=false,zba=false,zbb=false,zbc=false,zbs=false';

export function haveQemu(): boolean {
  return spawnSync(qemuBinary, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Runs a guest ELF on QEMU's virt board with exact instruction counting; returns its console output. */
export function runOnQemu(elf: string, extraArgs: string[] = [], timeoutMs = 60_000): { status: number | null; output: string } {
  const result = spawnSync(
    qemuBinary,
    [
      '-M', 'virt', '-bios', 'none', '-nographic', '-icount', 'shift=0,sleep=off',
      '-cpu', qemuCpu, '-global', 'virtio-mmio.force-legacy=false',
      ...extraArgs, '-kernel', elf,
    ],
    { timeout: timeoutMs, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return { status: result.status, output: result.stdout };
}

/**
 * Every RAM page that holds a non-zero byte is marked in `Ram.mayHoldData`: the state digests
 * and copies skip the pages not marked, unread, so a write that a path forgot to mark would
 * leave a replica's state without it unnoticed. Reads every page.
 */
export function assertDataPagesMarked(ram: Ram, where: string): void {
  for (let page = 0; page < ram.pages; page++) {
    if (ram.mayHoldData[page] !== 0) continue;
    const words = ram.i32.subarray(page * 1024, (page + 1) * 1024);
    const word = words.findIndex((value) => value !== 0);
    assert.equal(word, -1, `${where}: RAM page ${page} holds data (word ${word}) but is not marked as possibly holding data`);
  }
}
