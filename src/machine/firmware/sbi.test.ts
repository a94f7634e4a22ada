/**
 * The hypervisor's SBI firmware and the Linux boot path, driven by a tiny "kernel": a valid
 * RISC-V Image header followed by hand-encoded S-mode code that makes SBI calls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Machine, parseLinuxImageHeader } from '../board.js';
import { asm, li, linuxImage, linuxImageTextOffset } from '../cpu/encode.js';
import { Csr, Priv } from '../cpu/csr.js';
import { VirtualClock } from '../clock.js';
import type { EnvironmentReadKind } from '../environment.js';
import { decodeFdt, type FdtNode } from './fdt.js';
import { SbiExtension } from './sbi.js';
import { ImageError } from '../loader/elf.js';

/** An SBI call: a7 = extension, a6 = function, a0/a1 = arguments. */
function sbi(extension: number, fn: number, a0 = 0, a1 = 0): number[] {
  return [...li(17, extension), ...li(16, fn), ...li(10, a0), ...li(11, a1), asm.ecall()];
}

function boot(code: number[], initrd?: Uint8Array): { machine: Machine; layout: ReturnType<Machine['bootLinux']> } {
  const machine = new Machine({ ramBytes: 64 * 1024 * 1024, disks: [] }, new VirtualClock());
  const layout = machine.bootLinux(linuxImage(code), initrd === undefined ? { bootargs: 'console=ttyS0' } : { bootargs: 'console=ttyS0', initrd });
  return { machine, layout };
}

function text(machine: Machine): string {
  return machine.takeOutputs().map((o) => (o.kind === 'console-output' ? Buffer.from(o.bytes).toString() : '')).join('');
}

function property(root: FdtNode, path: string[], name: string): Uint8Array | undefined {
  let current: FdtNode | undefined = root;
  for (const part of path) current = current?.children.find((child) => child.name === part);
  const value = current?.properties.find(([key]) => key === name)?.[1];
  return value?.kind === 'bytes' ? value.bytes : undefined;
}

test('the kernel starts in S-mode with a0 = hart id and a1 = a device tree describing the board', () => {
  const { machine, layout } = boot([asm.jal(0, 0)], new Uint8Array(4096).fill(7));
  assert.equal(machine.hart.priv, Priv.S);
  assert.equal(machine.hart.pc >>> 0, 0x8000_0000 + linuxImageTextOffset);
  assert.equal(machine.hart.x[10], 0);
  assert.equal(machine.hart.x[11]! >>> 0, layout.dtbAddress);
  assert.equal(layout.dtbAddress % (2 * 1024 * 1024), 0);
  const tree = decodeFdt(machine.ram.readBytes(layout.dtbAddress, layout.deviceTree.length));
  const memory = property(tree, ['memory@80000000'], 'reg');
  assert.deepEqual([...memory!], [0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0]);
  assert.equal(Buffer.from(property(tree, ['chosen'], 'bootargs')!).toString(), 'console=ttyS0\0');
  const initrdStart = new DataView(property(tree, ['chosen'], 'linux,initrd-start')!.buffer).getUint32(4, false);
  assert.equal(initrdStart, layout.initrd!.start);
  assert.deepEqual([...machine.ram.readBytes(layout.initrd!.start, 4)], [7, 7, 7, 7]);
  assert.ok(layout.initrd!.end <= layout.dtbAddress);
});

/** An environment that answers 'entropy' with 1, 2, 3, ... and logs every read. */
class CountingEntropy extends VirtualClock {
  readonly reads: { kind: EnvironmentReadKind; retired: number }[] = [];
  private next = 0n;
  override read(kind: EnvironmentReadKind, retired: number): bigint {
    this.reads.push({ kind, retired });
    return kind === 'entropy' ? ++this.next * 0x0101_0101_0101_0101n : super.read(kind, retired);
  }
}

function seedOf(machine: Machine, layout: ReturnType<Machine['bootLinux']>): number[] {
  return [...property(decodeFdt(machine.ram.readBytes(layout.dtbAddress, layout.deviceTree.length)), ['chosen'], 'rng-seed')!];
}

test('a Linux boot finds a 32-byte rng-seed, taken through the environment port just before its first instruction', () => {
  const environment = new CountingEntropy();
  const machine = new Machine({ ramBytes: 64 * 1024 * 1024, disks: [] }, environment);
  const layout = machine.bootLinux(linuxImage([asm.addi(5, 0, 1), asm.jal(0, 0)]), { bootargs: 'x' });
  assert.deepEqual(seedOf(machine, layout), new Array(32).fill(0), 'room for the seed, not filled yet');
  machine.run(0);
  assert.deepEqual(environment.reads, [], 'a run of no instructions reads nothing');
  // A snapshot taken now carries the seed still to be taken: a copy takes its own.
  const copyEnvironment = new CountingEntropy();
  const copy = new Machine({ ramBytes: 64 * 1024 * 1024, disks: [] }, copyEnvironment);
  copy.restore(machine.save());

  machine.run(1);
  assert.deepEqual(environment.reads, [0, 0, 0, 0].map((retired) => ({ kind: 'entropy', retired })));
  const expected = [1, 2, 3, 4].flatMap((n) => new Array(8).fill(n));
  assert.deepEqual(seedOf(machine, layout), expected, 'four 64-bit values, little-endian');
  machine.run(100);
  assert.equal(environment.reads.length, 4, 'taken once');
  // A snapshot after the first instruction has nothing left to take.
  const later = new Machine({ ramBytes: 64 * 1024 * 1024, disks: [] }, new CountingEntropy());
  later.restore(machine.save());
  later.run(10);
  assert.deepEqual(seedOf(later, layout), expected);

  copy.run(5);
  assert.equal(copyEnvironment.reads.length, 4);
  assert.deepEqual(seedOf(copy, layout), expected);
  assert.equal(copy.digest(), (() => {
    const again = new Machine({ ramBytes: 64 * 1024 * 1024, disks: [] }, new CountingEntropy());
    again.bootLinux(linuxImage([asm.addi(5, 0, 1), asm.jal(0, 0)]), { bootargs: 'x' });
    again.run(5);
    return again.digest();
  })(), 'the same seed, the same machine');
});

test('the virtual clock seeds every run alike; different seeds make different machines', () => {
  const bootWith = (environment: VirtualClock): Machine => {
    const machine = new Machine({ ramBytes: 64 * 1024 * 1024, disks: [] }, environment);
    machine.bootLinux(linuxImage([asm.jal(0, 0)]), { bootargs: 'x' });
    machine.run(3);
    return machine;
  };
  assert.equal(bootWith(new VirtualClock()).digest(), bootWith(new VirtualClock()).digest());
  assert.notEqual(bootWith(new VirtualClock()).digest(), bootWith(new CountingEntropy()).digest());
});

test('the device tree follows the configuration: more memory, more disks', () => {
  const machine = new Machine({ ramBytes: 256 * 1024 * 1024, disks: [{ capacityBytes: 1 << 20, readOnly: false, serial: 'd0' }] }, new VirtualClock());
  const layout = machine.bootLinux(linuxImage([asm.jal(0, 0)]), { bootargs: 'x' });
  const tree = decodeFdt(layout.deviceTree);
  const memory = property(tree, ['memory@80000000'], 'reg')!;
  assert.equal(new DataView(memory.buffer).getUint32(12, false), 256 * 1024 * 1024);
  const soc = tree.children.find((child) => child.name === 'soc')!;
  assert.equal(soc.children.filter((child) => child.name.startsWith('virtio_mmio@')).length, 8);
  assert.ok(soc.children.some((child) => child.name === 'serial@10000000'));
  assert.ok(soc.children.some((child) => child.name === 'pvpanic@102000'));
});

test('SBI BASE answers version, implementation and probes', () => {
  const code = [
    ...sbi(SbiExtension.BASE, 0), asm.addi(20, 10, 0), asm.addi(21, 11, 0),
    ...sbi(SbiExtension.BASE, 3, SbiExtension.TIME), asm.addi(22, 11, 0),
    ...sbi(SbiExtension.BASE, 3, 0x12345), asm.addi(23, 11, 0),
    ...sbi(0x7777777, 0), asm.addi(24, 10, 0),
    asm.jal(0, 0),
  ];
  const { machine } = boot(code);
  machine.run(200);
  const x = machine.hart.x;
  assert.equal(x[20], 0);
  assert.equal(x[21], 1 << 24); // spec v1.0
  assert.equal(x[22], 1);
  assert.equal(x[23], 0);
  assert.equal(x[24], -2); // SBI_ERR_NOT_SUPPORTED
});

test('legacy console putchar (earlycon=sbi) reaches the console output', () => {
  const code = [...[...'hi\n'].flatMap((c) => sbi(SbiExtension.LEGACY_CONSOLE_PUTCHAR, 0, c.charCodeAt(0))), asm.jal(0, 0)];
  const { machine } = boot(code);
  machine.run(100);
  assert.equal(text(machine), 'hi\n');
});

test('set_timer raises the S-mode timer interrupt (STIP) when mtime reaches the deadline', () => {
  // S-mode: stvec = handler, enable STIE and SIE, set a timer 1000 ticks ahead, spin; the handler records scause.
  const handler = 0x8000_0000 + linuxImageTextOffset + 64 + 4 * 40;
  const code = [
    ...li(5, handler), asm.csrrw(0, Csr.stvec, 5),
    ...li(6, 1 << 5), asm.csrrs(0, Csr.sie, 6), asm.csrrsi(0, Csr.sstatus, 2),
    asm.csrrs(7, Csr.time, 0),
    asm.addi(7, 7, 1000),
    ...li(17, SbiExtension.TIME), ...li(16, 0), asm.addi(10, 7, 0), asm.addi(11, 0, 0), asm.ecall(),
    asm.addi(8, 8, 1), asm.jal(0, -4),
  ];
  while (code.length < 40) code.push(asm.jal(0, 0));
  code.push(asm.csrrs(9, Csr.scause, 0), asm.jal(0, 0));
  const { machine } = boot(code);
  machine.run(5000);
  assert.equal(machine.hart.x[9], 0, 'no interrupt before the deadline');
  // The host clock passes the deadline: a clock event at the boundary (P2's clock state).
  machine.applyEvent({ kind: 'clock', mtime: 10_000n });
  machine.run(10);
  assert.equal(machine.hart.x[9]! >>> 0, 0x8000_0005, 'the timer interrupt reached S-mode');
  assert.ok(machine.hart.x[8]! > 0, 'the kernel ran until the deadline');
});

test('SRST shutdown powers off; reboot asks for a reset', () => {
  const off = boot([...sbi(SbiExtension.SRST, 0, 0, 0), asm.jal(0, 0)]).machine;
  assert.equal(off.run(100).reason, 'halt');
  assert.deepEqual(off.power, { kind: 'poweroff', status: 0 });
  const reboot = boot([...sbi(SbiExtension.SRST, 0, 1, 0), asm.jal(0, 0)]).machine;
  reboot.run(100);
  assert.deepEqual(reboot.power, { kind: 'reset' });
});

test('a write to the pvpanic device reports a kernel panic', () => {
  const { machine } = boot([...li(5, 0x0010_2000), ...li(6, 1), asm.sb(6, 5, 0), asm.jal(0, 0)]);
  assert.equal(machine.run(100).reason, 'halt');
  assert.deepEqual(machine.power, { kind: 'panic' });
});

test('a file that is not a RISC-V Linux Image is refused with a clear error', () => {
  assert.throws(() => parseLinuxImageHeader(new Uint8Array(10)), ImageError);
  assert.throws(() => parseLinuxImageHeader(new Uint8Array(4096)), /not a RISC-V Linux Image/);
  const machine = new Machine({ ramBytes: 8 * 1024 * 1024, disks: [] }, new VirtualClock());
  assert.throws(() => machine.bootLinux(linuxImage([]), { bootargs: '', initrd: new Uint8Array(8 * 1024 * 1024) }), /do not fit/);
});

test('a machine booted with the firmware keeps it across save and restore', () => {
  const code = [...sbi(SbiExtension.LEGACY_CONSOLE_PUTCHAR, 0, 65), ...sbi(SbiExtension.LEGACY_CONSOLE_PUTCHAR, 0, 66), asm.jal(0, 0)];
  const { machine } = boot(code);
  machine.run(8);
  const copy = new Machine({ ramBytes: 64 * 1024 * 1024, disks: [] }, new VirtualClock());
  copy.restore(machine.save());
  machine.run(100);
  copy.run(100);
  assert.equal(copy.digest(), machine.digest());
  assert.equal(text(copy), text(machine));
});
