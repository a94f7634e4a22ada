/**
 * `npm run bench:linux`: time from start to the Linux shell prompt, and the instructions
 * retired on the way, on understudy (with each CPU tier) and on QEMU (same kernel and initramfs; QEMU boots it with
 * linux/firmware, understudy with its built-in SBI). Each figure is the median of several
 * fresh processes, measured from spawn to the prompt on the console. UNDERSTUDY_LINUX_CACHE
 * names another build's directory (Image, initramfs.cpio, understudy-sbi.bin) to compare;
 * BENCH_KERNEL another kernel Image with the same initramfs and firmware (the standard one:
 * BENCH_KERNEL=.cache/linux-defconfig/Image).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootToPrompt, shellPrompt } from './boot-to-prompt.js';
import { dataDiskMkfsArguments } from '../src/host/linux-guest.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cache = process.env['UNDERSTUDY_LINUX_CACHE'] ?? path.join(root, '.cache/linux');
const kernel = process.env['BENCH_KERNEL'] ?? path.join(cache, 'Image');
const initramfs = path.join(cache, 'initramfs.cpio');
const firmware = path.join(cache, 'understudy-sbi.bin');
const prompt = shellPrompt;
const runs = Number(process.env['BENCH_RUNS'] ?? 5);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Spawns `command`, resolves with the seconds until `prompt` appears on its stdout, then kills it. */
function timeToPrompt(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'ignore'] });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command}: no prompt after 120 s:\n${output.slice(-500)}`));
    }, 120_000);
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes(prompt)) {
        clearTimeout(timer);
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        child.kill('SIGKILL');
        resolve(seconds);
      }
    });
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-boot-'));
const disk = path.join(dir, 'data.img');
spawnSync('mkfs.ext4', dataDiskMkfsArguments(disk, 32 * 1024 * 1024));
try {
  console.log(`Linux boot to the shell prompt (${kernel}, ${initramfs}, ${fs.statSync(initramfs).size} bytes): ${runs} runs each, median; ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}`);
  // The tiers alternate, so that the machine's changing load falls on all alike.
  const ours: number[] = [];
  const translated: number[] = [];
  const wasm: number[] = [];
  const understudy = (cpu: string): string[] => [path.join(root, 'bin/understudy.js'), 'run', '--guest', 'linux', '--cpu', cpu, '--kernel', kernel, '--initrd', initramfs, '--disk', disk];
  for (let i = 0; i < runs; i++) {
    ours.push(await timeToPrompt(process.execPath, understudy('interp')));
    translated.push(await timeToPrompt(process.execPath, understudy('jit')));
    wasm.push(await timeToPrompt(process.execPath, understudy('wasm')));
  }
  const qemu: number[] = [];
  for (let i = 0; i < runs; i++) {
    qemu.push(
      await timeToPrompt('qemu-system-riscv32', [
        '-M', 'virt', '-cpu', 'rv32,c=true,f=true,d=true,h=false,sstc=false,zba=false,zbb=false,zbc=false,zbs=false', '-m', '128M',
        '-nographic', '-bios', firmware, '-kernel', kernel, '-initrd', initramfs, '-append', 'console=ttyS0 earlycon=sbi',
        '-drive', `file=${disk},if=none,format=raw,id=d0`, '-device', 'virtio-blk-device,drive=d0', '-global', 'virtio-mmio.force-legacy=false',
      ]),
    );
  }
  const instructions = bootToPrompt({ kernel, initramfs, disk }, 'interp').instructions;
  console.log(`understudy   ${median(ours).toFixed(2)} s to the prompt (host clock), the interpreter`);
  console.log(`understudy   ${median(translated).toFixed(2)} s to the prompt (host clock), --cpu jit   jit/interpreter time = ${(median(translated) / median(ours)).toFixed(2)}`);
  console.log(`understudy   ${median(wasm).toFixed(2)} s to the prompt (host clock), --cpu wasm   wasm/interpreter time = ${(median(wasm) / median(ours)).toFixed(2)}`);
  console.log(`QEMU TCG     ${median(qemu).toFixed(2)} s to the prompt   understudy/QEMU time = ${(median(ours) / median(qemu)).toFixed(2)}`);
  console.log(`instructions to the prompt on understudy (virtual clock): ${(instructions / 1e6).toFixed(1)} million`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
