/**
 * A Linux boot to the shell prompt in this process, on the virtual clock, the disk served from
 * a file: the instructions it took and this process's CPU time for it, the CPU warm-up
 * (src/host/warm-up.ts; UNDERSTUDY_WARMUP=0 turns it off) included (bench/linux-boot.ts,
 * bench/tiers.ts).
 */
import * as fs from 'node:fs';
import { Machine, type CpuMode } from '../src/machine/board.js';
import { VirtualClock } from '../src/machine/clock.js';
import { ReplicaEnvironment } from '../src/replication/environment.js';
import { warmUpCpu } from '../src/host/warm-up.js';

export const shellPrompt = 'understudy$ ';

export interface BootFiles {
  readonly kernel: string;
  readonly initramfs: string;
  /** A data disk image (written by the boot: ext4 notes its mounts). */
  readonly disk: string;
}

export function bootToPrompt(files: BootFiles, cpu: CpuMode): { instructions: number; cpuSeconds: number } {
  const size = fs.statSync(files.disk).size;
  const kernel = fs.readFileSync(files.kernel);
  const initrd = fs.readFileSync(files.initramfs);
  const start = process.cpuUsage();
  // As `understudy run` does, and inside the measurement: the boot's figure includes its cost.
  warmUpCpu(cpu);
  const environment = new ReplicaEnvironment(new VirtualClock());
  const machine = new Machine({ ramBytes: 128 * 1024 * 1024, disks: [{ capacityBytes: size, readOnly: false, serial: 'understudy-disk0' }] }, environment, { cpu });
  machine.bootLinux(kernel, { bootargs: 'console=ttyS0 earlycon=sbi', initrd });
  const clock = new VirtualClock();
  const fd = fs.openSync(files.disk, 'r+');
  let output = '';
  try {
    while (!output.includes(shellPrompt) && machine.power === undefined) {
      const result = machine.run(1_000_000);
      for (const out of machine.takeOutputs()) {
        if (out.kind === 'console-output') output += Buffer.from(out.bytes).toString('latin1');
        else if (out.kind === 'disk-request') {
          const request = out.request;
          if (request.op === 'read') {
            const data = new Uint8Array(request.lengthBytes);
            fs.readSync(fd, data, 0, data.length, request.offsetBytes);
            machine.applyEvent({ kind: 'disk-completion', slot: request.slot, requestId: request.requestId, status: 'ok', data });
          } else {
            if (request.op === 'write') fs.writeSync(fd, request.data, 0, request.data.length, request.offsetBytes);
            machine.applyEvent({ kind: 'disk-completion', slot: request.slot, requestId: request.requestId, status: 'ok' });
          }
        }
      }
      if (result.reason === 'wfi' && machine.isIdle && machine.clockDeadline !== undefined) clock.skipTo(machine.clockDeadline, machine.retiredInstructions);
      machine.applyEvent({ kind: 'clock', mtime: clock.mtimeNow(machine.retiredInstructions) });
    }
  } finally {
    fs.closeSync(fd);
  }
  const used = process.cpuUsage(start);
  return { instructions: machine.retiredInstructions, cpuSeconds: (used.user + used.system) / 1e6 };
}
