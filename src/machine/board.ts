/**
 * The `virt` board: QEMU's riscv32 virt memory map with one hart.
 *
 *   0x0010_0000  sifive,test0 exit device
 *   0x0010_1000  goldfish RTC                   IRQ 11
 *   0x0010_2000  pvpanic (qemu,pvpanic-mmio): the guest kernel reports panics here
 *   0x0200_0000  CLINT (mtime at 10 MHz)
 *   0x0c00_0000  PLIC (context 0 = M, 1 = S)
 *   0x1000_0000  NS16550A UART                  IRQ 10
 *   0x1000_1000 + k * 0x1000, k = 0..7          virtio-mmio slots, IRQ 1 + k: disks from the top, then NICs
 *   0x8000_0000  RAM
 *
 * The Machine is the whole deterministic state machine: it runs instructions, takes events
 * between runs, and hands out the outputs it wants performed. It never touches the host; see
 * environment.ts for the boundary.
 */
import { createHash } from 'node:crypto';
import { Hart, type RunResult } from './cpu/cpu.js';
import { Bus } from './memory/bus.js';
import { Ram, ramBaseAddress, pageBytes } from './memory/ram.js';
import { Clint } from './devices/clint.js';
import { Plic } from './devices/plic.js';
import { Uart16550 } from './devices/uart.js';
import { GoldfishRtc } from './devices/rtc.js';
import { TestDevice, type PowerRequest } from './devices/test-device.js';
import { PvpanicDevice } from './devices/pvpanic.js';
import { SbiFirmware } from './firmware/sbi.js';
import { linuxDeviceTree, rngSeedBytes } from './firmware/device-tree.js';
import { Mip, Priv, Status } from './cpu/csr.js';
import { VirtioBlockDevice, VirtioEmptySlot } from './devices/virtio-blk.js';
import { VirtioNetDevice, frameBytesMax, frameBytesMin } from './devices/virtio-net.js';
import { BoardIrq, BoardMap, configKey, diskSlot, nicSlot, validateConfig, virtioSlots, type BoardConfig } from './board-config.js';
import type { MmioDevice } from './devices/device.js';
import { ImageError, type LoadedImage } from './loader/elf.js';
import { answeredByDevice, environmentReadsPerInstructionMax, outputsWriteTo, type DiskReadRequest, type EnvironmentPort, type EnvironmentReadKind, type MachineEvent, type MachineOutput } from './environment.js';
import { SnapshotError, SnapshotReader, SnapshotWriter, type Snapshottable } from './snapshot.js';
import { TranslationCache, type TierBackend } from './cpu/translation-cache.js';
import { Lockstep, RecordingEnvironment } from './lockstep.js';

/**
 * How the machine executes guest code (docs/ARCHITECTURE.md, "The CPU"): the interpreter
 * alone, with the translation tier for hot code, or (a test and debug mode) with the tier
 * checked against a copy of the machine on the interpreter at every exit from translated code.
 */
export type CpuMode = 'interp' | 'jit' | 'wasm' | 'lockstep';
export const cpuModes: readonly CpuMode[] = ['interp', 'jit', 'wasm', 'lockstep'];

/** Entries of a block head before the tier compiles it, in lockstep mode. */
const lockstepHotEntries = 2;

export interface MachineOptions {
  /** Default 'interp'. Nothing of it is machine state: snapshots and digests do not depend on it. */
  readonly cpu?: CpuMode;
  /**
   * What the translation tier compiles to in lockstep mode ('wasm' is what `cpu: 'wasm'`
   * runs); default 'js'.
   */
  readonly lockstepBackend?: TierBackend;
}

export { BoardIrq, BoardMap, configKey, diskBytesMax, diskSlot, nicSlot, virtioSlots, type BoardConfig, type DiskConfig, type NicConfig } from './board-config.js';

/**
 * Data of the writes the write-back disks answered that the host has not taken yet, beyond
 * which the run ends (at the instruction that passed it) so that the host takes them: a guest
 * that writes without end cannot fill the host's memory within one run or epoch.
 */
export const writeBackBytesMax = 4 * 1024 * 1024;

const snapshotMagic = 'understudy-machine';
const snapshotVersion = 4; // 4: the board's pending boot seed; 3: the hart's f registers and fcsr

export class Machine {
  readonly config: BoardConfig;
  readonly ram: Ram;
  readonly bus = new Bus();
  readonly hart: Hart;
  readonly clint: Clint;
  readonly plic: Plic;
  readonly uart: Uart16550;
  readonly rtc: GoldfishRtc;
  /** Virtio slot index -> block device. */
  readonly disks = new Map<number, VirtioBlockDevice>();
  /** Virtio slot index -> network device. */
  readonly nics = new Map<number, VirtioNetDevice>();
  /** Set when the guest asked to power off or reset; the hart is halted. */
  power: PowerRequest | undefined;

  private readonly outputs: MachineOutput[] = [];
  /** Data bytes of the answered writes among `outputs` (`writeBackBytesMax`). */
  private writeBackBytes = 0;
  private consoleBytes: number[] = [];
  /** The current `run` ends after this instruction because the guest handed the outside a request. */
  private outputStop = false;
  /** Environment readings the current `run` may still make (its `readingsMax`, less those made). */
  private readingsLeft = Infinity;
  private htif: { tohost: number; fromhost: number | undefined } | undefined;
  /** Every device's state, by name (the name says which device differs when digests do). */
  private readonly stateful: { readonly name: string; readonly part: Snapshottable }[] = [];

  private readonly environment: EnvironmentPort;
  /** Set in lockstep mode (lockstep.ts): the reference machine's keeper. */
  private readonly lockstep: Lockstep | undefined;

  constructor(config: BoardConfig, environment: EnvironmentPort, options: MachineOptions = {}) {
    validateConfig(config);
    this.config = config;
    const cpu = options.cpu ?? 'interp';
    const recording = cpu === 'lockstep' ? new RecordingEnvironment(environment) : undefined;
    this.environment = recording ?? environment;
    const backend: TierBackend = cpu === 'wasm' || cpu === 'lockstep' && options.lockstepBackend === 'wasm' ? 'wasm' : 'js';
    this.ram = new Ram(config.ramBytes, { wasm: backend === 'wasm' });
    this.hart = new Hart({
      ram: this.ram,
      bus: this.bus,
      readTime: () => this.clint.readMtime(),
      watchedStore: (physical) => {
        this.ram.noteStored(physical);
        this.htifStore(physical);
      },
      trapLoop: (reason) => this.requestPower({ kind: 'stuck', reason }),
    });
    if (cpu === 'jit' || cpu === 'wasm') this.hart.tier = new TranslationCache(this.hart, { backend });
    if (recording !== undefined) {
      // Checked code is compiled at its second entry, so that nearly everything runs translated.
      this.lockstep = new Lockstep(this, recording, new TranslationCache(this.hart, { hotEntries: lockstepHotEntries, everyBranchHeads: true, compileCostInstructions: 0, entryIntervalMax: Infinity, headCallInterval: 1, backend }), (reference) => new Machine(config, reference));
      this.hart.tier = this.lockstep;
    }
    const reader = { readEnvironment: (kind: EnvironmentReadKind) => this.readEnvironment(kind) };
    const sink = { emit: (output: MachineOutput) => this.emit(output) };
    this.clint = new Clint({
      environment: reader,
      pins: {
        setSoftware: (level) => this.hart.setInterruptLine(Mip.MSIP, level),
        setTimer: (level) => this.hart.setInterruptLine(Mip.MTIP, level),
      },
    });
    this.plic = new Plic({ setContext: (context, level) => this.hart.setInterruptLine(context === 0 ? Mip.MEIP : Mip.SEIP, level) });
    this.uart = new Uart16550({ irq: this.plic.line(BoardIrq.uart), outputs: sink });
    const clint = this.clint;
    this.rtc = new GoldfishRtc({
      environment: reader,
      clock: { readHostMtime: () => this.readHostMtime(), get latestHostMtime() { return clint.latestHostMtime; } },
      irq: this.plic.line(BoardIrq.rtc),
    });
    const test = new TestDevice((request) => this.requestPower(request));
    this.mapDevice(BoardMap.test, test, 'test device');
    this.mapDevice(BoardMap.rtc, this.rtc, 'rtc');
    this.mapDevice(BoardMap.pvpanic, new PvpanicDevice(() => this.requestPower({ kind: 'panic' })), 'pvpanic');
    this.mapDevice(BoardMap.clint, this.clint, 'clint');
    this.mapDevice(BoardMap.plic, this.plic, 'plic');
    this.mapDevice(BoardMap.uart, this.uart, 'uart');
    const slotDevices = new Map<number, MmioDevice>();
    config.disks.forEach((disk, index) => {
      const slot = diskSlot(index);
      const device = new VirtioBlockDevice(
        { slot, capacityBytes: disk.capacityBytes, readOnly: disk.readOnly, serial: disk.serial, writeBack: disk.writeBack === true },
        { ram: this.ram, irq: this.plic.line(BoardIrq.virtioFirst + slot), outputs: sink, readNow: (request) => this.readDiskNow(request) },
      );
      this.disks.set(slot, device);
      slotDevices.set(slot, device);
    });
    (config.nics ?? []).forEach((nic, index) => {
      const slot = nicSlot(config, index);
      const device = new VirtioNetDevice({ slot, mac: nic.mac }, { ram: this.ram, irq: this.plic.line(BoardIrq.virtioFirst + slot), outputs: sink });
      this.nics.set(slot, device);
      slotDevices.set(slot, device);
    });
    for (let slot = 0; slot < virtioSlots; slot++) {
      this.mapDevice(BoardMap.virtio + slot * BoardMap.virtioStride, slotDevices.get(slot) ?? new VirtioEmptySlot(), `virtio slot ${slot}`);
    }
  }

  private requestPower(request: PowerRequest): void {
    this.power = request;
    this.hart.halt();
  }

  private mapDevice(base: number, device: MmioDevice, name: string): void {
    this.bus.map(base, device);
    this.stateful.push({ name, part: device });
  }

  /** P0/P6: every environment read goes through here with the exact instruction count. */
  private readEnvironment(kind: EnvironmentReadKind): bigint {
    const value = this.environment.read(kind, this.hart.currentRetired);
    this.countReading();
    return value;
  }

  /**
   * Counts a reading against the current run's room (`run`'s `readingsMax`): once the next
   * instruction might not fit, the run ends after this one.
   */
  private countReading(): void {
    if (--this.readingsLeft < environmentReadsPerInstructionMax) this.hart.requestStop();
  }

  /**
   * A disk read answered at once (`EnvironmentPort.readDisk`), unless a write among the outputs
   * not yet taken changes its sectors: the host has not performed that write yet.
   */
  private readDiskNow(request: DiskReadRequest): Uint8Array | undefined {
    if (this.environment.readDisk === undefined || outputsWriteTo(this.outputs, request)) return undefined;
    const data = this.environment.readDisk(request, this.hart.currentRetired);
    this.countReading();
    return data;
  }

  private readHostMtime(): bigint {
    this.clint.readMtime();
    return this.clint.latestHostMtime;
  }

  private emit(output: MachineOutput): void {
    if (output.kind === 'console-output') {
      for (const byte of output.bytes) this.consoleBytes.push(byte);
      return;
    }
    this.flushConsole();
    this.outputs.push(output);
    // A write the device has answered already keeps nobody waiting: it leaves with the epoch's
    // other outputs, as console bytes do, up to writeBackBytesMax of them.
    if (output.kind === 'disk-request' && answeredByDevice(output.request)) {
      this.writeBackBytes += output.request.data.length;
      if (this.writeBackBytes < writeBackBytesMax) return;
    }
    // A disk request or a frame: the run ends after this instruction, so that its caller can
    // send it on at once (a primary ends the epoch here; the backup follows the recorded end).
    this.outputStop = true;
    this.hart.requestStop();
  }

  private flushConsole(): void {
    if (this.consoleBytes.length === 0) return;
    this.outputs.push({ kind: 'console-output', bytes: Uint8Array.from(this.consoleBytes) });
    this.consoleBytes = [];
  }

  /** Copies an image into RAM and points the hart at its entry, in M-mode, as after reset. */
  load(image: LoadedImage): void {
    if (this.lockstep !== undefined) this.lockstep.forget();
    this.rngSeedAddress = undefined;
    for (const segment of image.segments) {
      if (!this.ram.contains(segment.physicalAddress, segment.memoryBytes)) {
        const end = segment.physicalAddress + segment.memoryBytes;
        throw new ImageError(
          `segment at 0x${segment.physicalAddress.toString(16)}..0x${end.toString(16)} lies outside RAM ` +
            `(0x${ramBaseAddress.toString(16)}..0x${(ramBaseAddress + this.ram.sizeBytes).toString(16)})`,
        );
      }
    }
    for (const segment of image.segments) {
      this.ram.writeBytes(segment.physicalAddress, segment.data);
      const zeroStart = segment.physicalAddress + segment.data.length;
      const zeroBytes = segment.memoryBytes - segment.data.length;
      if (zeroBytes > 0) this.ram.u8.fill(0, zeroStart - ramBaseAddress, zeroStart - ramBaseAddress + zeroBytes);
    }
    if (!this.ram.contains(image.entry, 4)) throw new ImageError(`entry point 0x${image.entry.toString(16)} is outside RAM`);
    this.hart.reset(image.entry);
    this.hart.x[10] = 0; // a0: hart id, as QEMU's reset code passes
    const tohost = image.symbols.get('tohost');
    if (tohost !== undefined && this.ram.contains(tohost, 8) && tohost % 8 === 0) {
      this.htif = { tohost, fromhost: image.symbols.get('fromhost') };
      this.ram.watchPage(Math.floor((tohost - ramBaseAddress) / pageBytes));
    }
  }

  /**
   * Boots a Linux kernel `Image` the way QEMU's virt board does with its default firmware:
   * the kernel at RAM + text_offset, the initrd halfway into RAM (at most 128 MiB above the
   * kernel), the device tree in the last 2 MiB-aligned slot of RAM; the hart enters the kernel
   * in S-mode with a0 = hart id and a1 = the device tree, and the hypervisor's SBI firmware
   * owns M-mode.
   */
  bootLinux(kernel: Uint8Array, options: { readonly initrd?: Uint8Array; readonly bootargs: string }): LinuxLayout {
    if (this.lockstep !== undefined) this.lockstep.forget();
    const header = parseLinuxImageHeader(kernel);
    const kernelStart = ramBaseAddress + header.textOffset;
    const kernelEnd = kernelStart + Math.max(header.imageBytes, kernel.length);
    const ramEnd = ramBaseAddress + this.ram.sizeBytes;
    let initrd: { start: number; end: number } | undefined;
    if (options.initrd !== undefined) {
      const start = pageAlignUp(kernelStart + Math.min(this.ram.sizeBytes / 2, 128 * 1024 * 1024));
      initrd = { start: Math.max(start, pageAlignUp(kernelEnd)), end: 0 };
      initrd.end = initrd.start + options.initrd.length;
    }
    const { blob, rngSeedOffset } = linuxDeviceTree(this.config, initrd === undefined ? { bootargs: options.bootargs } : { bootargs: options.bootargs, initrd });
    const dtbAddress = Math.floor((ramEnd - blob.length) / deviceTreeAlignBytes) * deviceTreeAlignBytes;
    const used = initrd?.end ?? kernelEnd;
    if (used > dtbAddress) {
      throw new ImageError(`kernel and initrd (${Math.ceil((used - ramBaseAddress) / 2 ** 20)} MiB) do not fit in ${this.ram.sizeBytes / 2 ** 20} MiB of RAM`);
    }
    this.ram.writeBytes(kernelStart, kernel);
    if (initrd !== undefined && options.initrd !== undefined) this.ram.writeBytes(initrd.start, options.initrd);
    this.ram.writeBytes(dtbAddress, blob);
    this.rngSeedAddress = dtbAddress + rngSeedOffset;

    const hart = this.hart;
    hart.reset(kernelStart);
    this.installFirmware();
    hart.priv = Priv.S;
    hart.x[10] = 0; // a0: hart id
    hart.x[11] = dtbAddress; // a1: the device tree
    // What OpenSBI leaves behind for the kernel: everything delegable delegated to S except
    // the ecalls that are SBI calls, counters readable, and PMP opening all memory to S/U.
    hart.medeleg = 0xb1ff;
    hart.mideleg = Mip.SSIP | Mip.STIP | Mip.SEIP;
    hart.mcounteren = -1;
    hart.pmpaddr[0] = -1;
    hart.pmpcfg[0] = 0x1f;
    hart.pmpChanged();
    hart.mstatus = Priv.S << Status.MPP_SHIFT;
    return { kernelStart, dtbAddress, initrd, deviceTree: blob };
  }

  private installFirmware(): void {
    this.firmware = new SbiFirmware({
      setTimerCompare: (value) => this.clint.setTimerCompare(value),
      putchar: (byte) => this.emit({ kind: 'console-output', bytes: Uint8Array.of(byte) }),
      getchar: () => this.uart.takeInputByte(),
      power: (request) => this.requestPower(request),
    });
    this.hart.firmware = this.firmware;
  }

  /** The hypervisor's SBI firmware, when the machine booted Linux. */
  firmware: SbiFirmware | undefined;

  /**
   * Where the device tree's `/chosen/rng-seed` waits to be filled (Linux boots), until the
   * boot's first instruction runs. The seed is an environment input like any other, so it is
   * taken through the port, inside a run: a primary records it with that epoch, and a backup,
   * which booted the same image without it, replays the same bytes.
   */
  private rngSeedAddress: number | undefined;

  /** Fills the device tree's seed: four 'entropy' reads, made by the first instruction of the boot. */
  private fillRngSeed(address: number): void {
    this.rngSeedAddress = undefined;
    const seed = new Uint8Array(rngSeedBytes);
    const view = new DataView(seed.buffer);
    for (let at = 0; at < rngSeedBytes; at += 8) view.setBigUint64(at, this.readEnvironment('entropy'), true);
    this.ram.writeBytes(address, seed);
  }

  /**
   * Runs up to `budget` instructions (see Hart.run), and makes at most `readingsMax`
   * environment readings: the run ends early, at an exact count (reason 'budget', as when
   * the guest hands the outside a request), once the next instruction might make more than
   * are left (an instruction makes at most {@link environmentReadsPerInstructionMax}). A
   * primary bounds its log entries so (src/replication/entry-budget.ts).
   */
  run(budget: number, readingsMax = Infinity): RunResult {
    this.outputStop = false;
    this.readingsLeft = readingsMax;
    if (this.lockstep !== undefined) this.lockstep.prepare();
    // No room for one instruction's readings: nothing runs (pending interrupts are still taken).
    let allowed = readingsMax < environmentReadsPerInstructionMax ? 0 : budget;
    if (this.rngSeedAddress !== undefined && allowed > 0) {
      this.fillRngSeed(this.rngSeedAddress);
      // Its readings count as the first instruction's (the worst instruction, entry-budget.test.ts),
      // which still runs. A stop asked for before the hart runs is forgotten: the budget says it.
      if (this.readingsLeft < environmentReadsPerInstructionMax) allowed = 1;
    }
    const result = this.hart.run(allowed);
    if (this.lockstep !== undefined) this.lockstep.verify();
    return result;
  }

  /** Applies an asynchronous input between two instructions (P1/P4 at the backup). */
  applyEvent(event: MachineEvent): void {
    if (this.lockstep !== undefined) this.lockstep.beforeEvent((reference) => reference.applyEvent(event));
    switch (event.kind) {
      case 'clock':
        this.clint.advanceClock(event.mtime);
        this.rtc.advanceClock();
        return;
      case 'console-input':
        this.uart.receive(event.bytes);
        return;
      case 'disk-completion': {
        const disk = this.disks.get(event.slot);
        if (disk === undefined) throw new RangeError(`disk completion for empty virtio slot ${event.slot}`);
        disk.complete(event.requestId, event.status, event.data);
        return;
      }
      case 'net-receive': {
        const nic = this.nic(event.slot);
        // The host offers only what fits (see receiveRoom); a frame no Ethernet carries is not an input.
        if (event.frame.length < frameBytesMin || event.frame.length > frameBytesMax) {
          throw new RangeError(`a network frame of ${event.frame.length} bytes (${frameBytesMin}..${frameBytesMax} allowed)`);
        }
        nic.receive(event.frame);
        return;
      }
      case 'net-link':
        this.nic(event.slot).setLink(event.up);
        return;
    }
  }

  private nic(slot: number): VirtioNetDevice {
    const nic = this.nics.get(slot);
    if (nic === undefined) throw new RangeError(`network event for virtio slot ${slot}, which has no NIC`);
    return nic;
  }

  /** How many received frames the NIC on `slot` can take now (its free receive buffers). */
  networkReceiveRoom(slot: number): number {
    return this.nic(slot).receiveRoom;
  }

  /** The outputs produced since the last call, in order. */
  takeOutputs(): MachineOutput[] {
    this.flushConsole();
    this.writeBackBytes = 0;
    return this.outputs.splice(0, this.outputs.length);
  }

  /** Whether the guest produced outputs (console bytes included) that `takeOutputs` has not taken. */
  get hasOutputs(): boolean {
    return this.outputs.length > 0 || this.consoleBytes.length > 0;
  }

  /** How many console bytes the machine can take in one console-input event now. */
  get consoleInputRoom(): number {
    return this.uart.inputRoom;
  }

  /** The earliest host mtime at which a clock event changes something (timer, RTC alarm). */
  get clockDeadline(): bigint | undefined {
    const timer = this.clint.timerDeadlineHostMtime;
    const alarm = this.rtc.alarmDeadlineHostMtime;
    if (timer === undefined) return alarm;
    if (alarm === undefined) return timer;
    return timer < alarm ? timer : alarm;
  }

  /**
   * The last `run` ended early because the guest handed the outside a request (a disk request
   * or a frame): its caller may send it on now.
   */
  get stoppedForOutput(): boolean {
    return this.outputStop;
  }

  /** The hart waits in WFI and nothing pending would wake it: only an event can. */
  get isIdle(): boolean {
    return this.hart.waiting && (this.hart.mip & this.hart.mie) === 0;
  }

  /** In lockstep mode: how many exits from translated code were compared so far (else 0). */
  get lockstepComparisons(): number {
    return this.lockstep?.blockExits ?? 0;
  }

  get retiredInstructions(): number {
    return this.hart.retired;
  }

  // HTIF (Spike's host-target interface): tohost = 1 passes, (n << 1) | 1 fails with n; an
  // even value points at a syscall block whose SYS_write prints to the console.
  private htifStore(physical: number): void {
    const htif = this.htif;
    if (htif === undefined || physical < htif.tohost || physical >= htif.tohost + 4) return;
    const index = (htif.tohost - ramBaseAddress) >>> 2;
    const low = this.ram.i32[index]! >>> 0;
    const high = this.ram.i32[index + 1]! >>> 0;
    if (low === 0 && high === 0) return;
    this.ram.i32[index] = 0;
    this.ram.i32[index + 1] = 0;
    const device = high >>> 24;
    const command = (high >>> 16) & 0xff;
    if (device === 0 && command === 0) {
      if (low & 1) {
        this.requestPower({ kind: 'poweroff', status: low >>> 1 });
        return;
      }
      this.htifSyscall(low);
    } else if (device === 1 && command === 1) {
      this.emit({ kind: 'console-output', bytes: Uint8Array.of(low & 0xff) });
    }
    if (htif.fromhost !== undefined && this.ram.contains(htif.fromhost, 8)) {
      const from = (htif.fromhost - ramBaseAddress) >>> 2;
      this.ram.i32[from] = 1;
      this.ram.i32[from + 1] = 0;
      this.ram.noteWritten(htif.fromhost - ramBaseAddress, 8);
    }
  }

  private htifSyscall(block: number): void {
    const sysWrite = 64;
    const enosys = -38;
    if (!this.ram.contains(block, 64)) return;
    const word = (i: number): number => this.ram.i32[((block - ramBaseAddress) >>> 2) + i * 2]! >>> 0;
    let result = enosys;
    if (word(0) === sysWrite) {
      const buffer = word(2);
      const length = word(3);
      if ((word(1) === 1 || word(1) === 2) && this.ram.contains(buffer, length)) {
        this.emit({ kind: 'console-output', bytes: this.ram.readBytes(buffer, length) });
        result = length;
      } else {
        result = -14; // EFAULT
      }
    }
    const index = (block - ramBaseAddress) >>> 2;
    this.ram.i32[index] = result;
    this.ram.i32[index + 1] = result < 0 ? -1 : 0;
    this.ram.noteWritten(block - ramBaseAddress, 8);
  }

  // ---------------------------------------------------------------------------------------
  // Snapshots and digests

  /**
   * The complete machine state: CPU, RAM, devices, requests in flight, undrained outputs.
   * With `ramPages`, RAM holds only those pages: the state restores over a machine whose RAM
   * already has every other page as it is here (the final part of a live copy).
   */
  save(ramPages?: readonly number[]): Uint8Array {
    const writer = new SnapshotWriter();
    writer.section(snapshotMagic).u32(snapshotVersion);
    writer.string(configKey(this.config));
    this.hart.save(writer);
    this.ram.save(writer, ramPages);
    for (const { part } of this.stateful) part.save(writer);
    this.saveBoard(writer);
    return writer.finish();
  }

  /** The board's own state: power, firmware, HTIF, a boot seed still to be filled, outputs not yet taken. */
  private saveBoard(writer: SnapshotWriter): void {
    writer.section('board');
    writer.u8(powerCode(this.power)).u32(this.power?.kind === 'poweroff' ? this.power.status : 0).string(this.power?.kind === 'stuck' ? this.power.reason : '');
    writer.bool(this.firmware !== undefined);
    writer.bool(this.htif !== undefined).u32(this.htif?.tohost ?? 0).bool(this.htif?.fromhost !== undefined).u32(this.htif?.fromhost ?? 0);
    writer.bool(this.rngSeedAddress !== undefined).u32(this.rngSeedAddress ?? 0);
    this.flushConsole();
    writer.uint(this.outputs.length);
    for (const output of this.outputs) writeOutput(writer, output);
  }

  /**
   * The state of every part but RAM, by name, as its snapshot encoding: the hart, each
   * device, the board. With RAM's pages, this is everything `save` writes.
   */
  stateParts(): { readonly name: string; readonly bytes: Uint8Array }[] {
    const encode = (save: (writer: SnapshotWriter) => void): Uint8Array => {
      const writer = new SnapshotWriter();
      save(writer);
      return writer.finish();
    };
    return [
      { name: 'hart', bytes: encode((writer) => this.hart.save(writer)) },
      ...this.stateful.map(({ name, part }) => ({ name, bytes: encode((writer) => part.save(writer)) })),
      { name: 'board', bytes: encode((writer) => this.saveBoard(writer)) },
    ];
  }

  /**
   * Restores a state from `save`; the snapshot must come from a machine of the same
   * configuration. One saved with `ramPages` changes only those pages of this machine's RAM.
   */
  restore(snapshot: Uint8Array): void {
    if (this.lockstep !== undefined) this.lockstep.forget();
    const reader = new SnapshotReader(snapshot);
    reader.section(snapshotMagic);
    const version = reader.u32();
    if (version !== snapshotVersion) throw new SnapshotError(`snapshot version ${version}, this build reads ${snapshotVersion}`);
    const key = reader.string();
    if (key !== configKey(this.config)) throw new SnapshotError(`snapshot is of a different machine configuration (${key})`);
    this.hart.restore(reader);
    this.ram.restore(reader);
    for (const { part } of this.stateful) part.restore(reader);
    reader.section('board');
    const code = reader.u8();
    const status = reader.u32();
    this.power = powerFromCode(code, status, reader.string());
    if (reader.bool()) this.installFirmware();
    else {
      this.firmware = undefined;
      this.hart.firmware = undefined;
    }
    const hasHtif = reader.bool();
    const tohost = reader.u32();
    const hasFromhost = reader.bool();
    const fromhost = reader.u32();
    this.htif = hasHtif ? { tohost, fromhost: hasFromhost ? fromhost : undefined } : undefined;
    const seedPending = reader.bool();
    const seedAddress = reader.u32();
    this.rngSeedAddress = seedPending ? seedAddress : undefined;
    this.ram.clearPageFlags();
    if (this.htif !== undefined) this.ram.watchPage(Math.floor((this.htif.tohost - ramBaseAddress) / pageBytes));
    this.outputs.length = 0;
    this.consoleBytes = [];
    const count = reader.uint();
    for (let i = 0; i < count; i++) this.outputs.push(readOutput(reader));
    this.writeBackBytes = 0;
    for (const output of this.outputs) if (output.kind === 'disk-request' && answeredByDevice(output.request)) this.writeBackBytes += output.request.data.length;
    reader.expectEnd();
  }

  /** One hash of the whole state: equal digests mean equal machines. */
  digest(): string {
    return createHash('sha256').update(this.save()).digest('hex');
  }
}

export interface LinuxLayout {
  readonly kernelStart: number;
  readonly dtbAddress: number;
  readonly initrd: { readonly start: number; readonly end: number } | undefined;
  readonly deviceTree: Uint8Array;
}

/** QEMU puts the device tree at a 2 MiB boundary near the end of RAM. */
const deviceTreeAlignBytes = 2 * 1024 * 1024;

function pageAlignUp(address: number): number {
  return Math.ceil(address / pageBytes) * pageBytes;
}

/** The RISC-V Linux image header (Documentation/riscv/boot-image-header.rst). */
export function parseLinuxImageHeader(image: Uint8Array): { textOffset: number; imageBytes: number } {
  const headerBytes = 64;
  if (image.length < headerBytes) throw new ImageError(`not a RISC-V Linux Image: ${image.length} bytes is shorter than its header`);
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const magic2 = view.getUint32(0x38, true);
  if (magic2 !== 0x05435352) throw new ImageError('not a RISC-V Linux Image (no "RSC\\x05" magic at offset 0x38)');
  const textOffset = Number(view.getBigUint64(0x08, true));
  const imageBytes = Number(view.getBigUint64(0x10, true));
  if (textOffset % pageBytes !== 0 || textOffset > 64 * 1024 * 1024) throw new ImageError(`Linux Image has an implausible text_offset 0x${textOffset.toString(16)}`);
  return { textOffset, imageBytes };
}

function powerCode(power: PowerRequest | undefined): number {
  if (power === undefined) return 0;
  return power.kind === 'poweroff' ? 1 : power.kind === 'reset' ? 2 : power.kind === 'panic' ? 3 : 4;
}

function powerFromCode(code: number, status: number, reason: string): PowerRequest | undefined {
  switch (code) {
    case 0: return undefined;
    case 1: return { kind: 'poweroff', status };
    case 2: return { kind: 'reset' };
    case 3: return { kind: 'panic' };
    case 4: return { kind: 'stuck', reason };
    default: throw new SnapshotError(`bad power state ${code}`);
  }
}

function writeOutput(writer: SnapshotWriter, output: MachineOutput): void {
  if (output.kind === 'console-output') {
    writer.u8(0).bytes(output.bytes);
    return;
  }
  if (output.kind === 'net-transmit') {
    writer.u8(2).u8(output.slot).bytes(output.frame);
    return;
  }
  const request = output.request;
  writer.u8(1).u8(request.slot).uint(request.requestId);
  if (request.op === 'read') writer.u8(0).uint(request.offsetBytes).uint(request.lengthBytes);
  else if (request.op === 'write') writer.u8(request.completed === true ? 3 : 1).uint(request.offsetBytes).bytes(request.data);
  else writer.u8(2);
}

function readOutput(reader: SnapshotReader): MachineOutput {
  const kind = reader.u8();
  if (kind === 0) return { kind: 'console-output', bytes: reader.bytes() };
  if (kind === 2) return { kind: 'net-transmit', slot: reader.u8(), frame: reader.bytes() };
  if (kind !== 1) throw new SnapshotError(`bad output kind ${kind}`);
  const slot = reader.u8();
  const requestId = reader.uint();
  const op = reader.u8();
  if (op === 0) return { kind: 'disk-request', request: { op: 'read', slot, requestId, offsetBytes: reader.uint(), lengthBytes: reader.uint() } };
  if (op === 1) return { kind: 'disk-request', request: { op: 'write', slot, requestId, offsetBytes: reader.uint(), data: reader.bytes() } };
  if (op === 2) return { kind: 'disk-request', request: { op: 'flush', slot, requestId } };
  if (op === 3) return { kind: 'disk-request', request: { op: 'write', slot, requestId, offsetBytes: reader.uint(), data: reader.bytes(), completed: true } };
  throw new SnapshotError(`bad disk request op ${op}`);
}
