/**
 * The device tree of this board, generated from its actual configuration: memory size, the
 * devices and their interrupts, the timebase, and for Linux the boot arguments and the initrd.
 * Node names, compatible strings and interrupt numbers follow QEMU's virt board, so a kernel
 * finds the same machine on both.
 */
import { BoardIrq, BoardMap, virtioSlots, type BoardConfig } from '../board-config.js';
import { mtimeHz } from '../time.js';
import { plicSources } from '../devices/plic.js';
import { ramBaseAddress } from '../memory/ram.js';
import { cells, empty, encodeFdt, node, str, u64Cells, type FdtNode, type FdtValue } from './fdt.js';

export interface BootInfo {
  readonly bootargs: string;
  /** Physical range [start, end) of the initrd, if there is one. */
  readonly initrd?: { readonly start: number; readonly end: number };
  /** `/chosen/rng-seed`, as QEMU's virt board passes one: bytes the board fills before the boot's first instruction. */
  readonly rngSeed?: FdtValue;
}

/** The bytes of `/chosen/rng-seed`: what Linux credits as 256 bits, enough to make its random generator ready at once. */
export const rngSeedBytes = 32;

const Phandle = { cpuInterruptController: 1, plic: 2, test: 3 } as const;
/** The 16550's input clock, as QEMU's virt board declares it. */
const uartClockHz = 3_686_400;
/** The ISA string Linux 6.1 parses: base, extensions, then Z extensions. */
export const isaString = 'rv32imafdc_zicsr_zifencei';

const reg = (base: number, size: number): [string, ReturnType<typeof cells>] => ['reg', cells(0, base, 0, size)];

export function buildDeviceTree(config: BoardConfig, boot: BootInfo): FdtNode {
  const chosen: [string, ReturnType<typeof cells>][] = [
    ['bootargs', str(boot.bootargs)],
    ['stdout-path', str(`/soc/serial@${BoardMap.uart.toString(16)}`)],
  ];
  if (boot.initrd !== undefined) {
    chosen.push(['linux,initrd-start', cells(...u64Cells(boot.initrd.start))]);
    chosen.push(['linux,initrd-end', cells(...u64Cells(boot.initrd.end))]);
  }
  if (boot.rngSeed !== undefined) chosen.push(['rng-seed', boot.rngSeed]);
  const cpu = node(
    'cpu@0',
    [
      ['device_type', str('cpu')],
      ['reg', cells(0)],
      ['status', str('okay')],
      ['compatible', str('riscv')],
      ['riscv,isa', str(isaString)],
      ['mmu-type', str('riscv,sv32')],
    ],
    [
      node('interrupt-controller', [
        ['#interrupt-cells', cells(1)],
        ['interrupt-controller', empty],
        ['compatible', str('riscv,cpu-intc')],
        ['phandle', cells(Phandle.cpuInterruptController)],
      ]),
    ],
  );
  const irq = (line: number): [string, ReturnType<typeof cells>][] => [
    ['interrupts', cells(line)],
    ['interrupt-parent', cells(Phandle.plic)],
  ];
  const soc: FdtNode[] = [
    node(`test@${BoardMap.test.toString(16)}`, [
      ['phandle', cells(Phandle.test)],
      reg(BoardMap.test, 0x1000),
      ['compatible', str('sifive,test1', 'sifive,test0', 'syscon')],
    ]),
    node(`pvpanic@${BoardMap.pvpanic.toString(16)}`, [reg(BoardMap.pvpanic, 2), ['compatible', str('qemu,pvpanic-mmio')]]),
    node(`rtc@${BoardMap.rtc.toString(16)}`, [...irq(BoardIrq.rtc), reg(BoardMap.rtc, 0x1000), ['compatible', str('google,goldfish-rtc')]]),
    node(`serial@${BoardMap.uart.toString(16)}`, [
      ...irq(BoardIrq.uart),
      ['clock-frequency', cells(uartClockHz)],
      reg(BoardMap.uart, 0x100),
      ['compatible', str('ns16550a')],
    ]),
    node(`plic@${BoardMap.plic.toString(16)}`, [
      ['phandle', cells(Phandle.plic)],
      ['riscv,ndev', cells(plicSources - 1)],
      reg(BoardMap.plic, 0x60_0000),
      ['interrupts-extended', cells(Phandle.cpuInterruptController, 11, Phandle.cpuInterruptController, 9)],
      ['interrupt-controller', empty],
      ['compatible', str('sifive,plic-1.0.0', 'riscv,plic0')],
      ['#address-cells', cells(0)],
      ['#interrupt-cells', cells(1)],
    ]),
    node(`clint@${BoardMap.clint.toString(16)}`, [
      ['interrupts-extended', cells(Phandle.cpuInterruptController, 3, Phandle.cpuInterruptController, 7)],
      reg(BoardMap.clint, 0x10000),
      ['compatible', str('sifive,clint0', 'riscv,clint0')],
    ]),
  ];
  // Every virtio-mmio slot is present (empty ones answer with device id 0), as on QEMU.
  for (let slot = virtioSlots - 1; slot >= 0; slot--) {
    const base = BoardMap.virtio + slot * BoardMap.virtioStride;
    soc.push(node(`virtio_mmio@${base.toString(16)}`, [...irq(BoardIrq.virtioFirst + slot), reg(base, 0x1000), ['compatible', str('virtio,mmio')]]));
  }
  return node(
    '',
    [
      ['#address-cells', cells(2)],
      ['#size-cells', cells(2)],
      ['compatible', str('riscv-virtio')],
      ['model', str('understudy,virt')],
    ],
    [
      node(
        'poweroff',
        [['value', cells(0x5555)], ['offset', cells(0)], ['regmap', cells(Phandle.test)], ['compatible', str('syscon-poweroff')]],
      ),
      node('reboot', [['value', cells(0x7777)], ['offset', cells(0)], ['regmap', cells(Phandle.test)], ['compatible', str('syscon-reboot')]]),
      node('chosen', chosen),
      node(`memory@${ramBaseAddress.toString(16)}`, [['device_type', str('memory')], ['reg', cells(0, ramBaseAddress, ...u64Cells(config.ramBytes))]]),
      node('cpus', [['#address-cells', cells(1)], ['#size-cells', cells(0)], ['timebase-frequency', cells(mtimeHz)]], [cpu]),
      node('soc', [['#address-cells', cells(2)], ['#size-cells', cells(2)], ['compatible', str('simple-bus')], ['ranges', empty]], soc),
    ],
  );
}

/** A Linux boot's device tree, with room for its seed: the blob, and where in it the seed's bytes go. */
export function linuxDeviceTree(config: BoardConfig, boot: Omit<BootInfo, 'rngSeed'>): { readonly blob: Uint8Array; readonly rngSeedOffset: number } {
  const rngSeed: FdtValue = { kind: 'bytes', bytes: new Uint8Array(rngSeedBytes) };
  const valueOffsets = new Map<FdtValue, number>([[rngSeed, -1]]);
  const blob = encodeFdt(buildDeviceTree(config, { ...boot, rngSeed }), { valueOffsets });
  return { blob, rngSeedOffset: valueOffsets.get(rngSeed)! };
}
