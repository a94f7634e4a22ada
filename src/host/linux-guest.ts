/**
 * The Linux guest: where its kernel and initramfs are (built by linux/build.sh into
 * .cache/linux/), its boot arguments, and its ext4 data disk, made with Debian's e2fsprogs
 * the first time it is needed.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageError } from '../machine/loader/elf.js';
import { DiskImageError } from './disk-image.js';

export const defaultBootargs = 'console=ttyS0 earlycon=sbi';
/** Size of a data disk created on first use. */
export const dataDiskBytesDefault = 64 * 1024 * 1024;

export interface LinuxGuestFiles {
  readonly kernel: string;
  readonly initrd: string;
  readonly dataDisk: string;
}

export function linuxDefaults(projectRoot: string): LinuxGuestFiles {
  const cache = path.join(projectRoot, '.cache/linux');
  return { kernel: path.join(cache, 'Image'), initrd: path.join(cache, 'initramfs.cpio'), dataDisk: path.join(cache, 'data.img') };
}

/** Reads a boot file, with an error that says what to do when it is missing. */
export function readBootFile(file: string, what: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ImageError(`${what} ${file} does not exist (build it with linux/build.sh, or npm run demo)`);
    throw new ImageError(`cannot read ${what} ${file}: ${code ?? String(error)}`);
  }
  if (bytes.length === 0) throw new ImageError(`${what} ${file} is empty`);
  return bytes;
}

/** Checks that an initramfs looks like a cpio archive (newc), possibly gzip-compressed. */
export function checkInitramfs(bytes: Uint8Array, file: string): void {
  const newc = new TextDecoder().decode(bytes.subarray(0, 6));
  const gzip = bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (newc !== '070701' && newc !== '070702' && !gzip) throw new ImageError(`initramfs ${file} is not a cpio archive (newc) or gzip file`);
}

/**
 * mkfs.ext4's arguments for a data disk: ext4 with a journal, so that a guest killed at any
 * moment (a crash, a failover) mounts the disk clean again by replaying the journal. The inode
 * tables and the journal are written out now rather than by the guest's kernel after its
 * first mount (lazy_itable_init), which would cost the guest time and disk traffic at boot.
 */
export function dataDiskMkfsArguments(file: string, sizeBytes: number): string[] {
  return ['-q', '-F', '-L', 'data', '-E', 'lazy_itable_init=0,lazy_journal_init=0', file, `${Math.floor(sizeBytes / 1024)}k`];
}

/** Creates an empty ext4 file system image if `file` does not exist yet. */
export function ensureDataDisk(file: string, sizeBytes = dataDiskBytesDefault): void {
  if (fs.existsSync(file)) return;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const result = spawnSync('mkfs.ext4', dataDiskMkfsArguments(file, sizeBytes), { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) {
    fs.rmSync(file, { force: true });
    const reason = result.error !== undefined ? 'mkfs.ext4 not found (install e2fsprogs)' : result.stderr.trim();
    throw new DiskImageError(`cannot create the data disk ${file}: ${reason}`);
  }
}
