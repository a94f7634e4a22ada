/**
 * PLIC (platform-level interrupt controller) with QEMU virt's layout: one hart, context 0 =
 * M-mode (drives mip.MEIP), context 1 = S-mode (drives mip.SEIP).
 *
 * Sources are level-triggered. A source is pending while its line is high and it is not
 * claimed; claiming takes the highest-priority enabled pending source above the context's
 * threshold (lowest id on ties); completing releases it, and if its line is still high it is
 * pending again (PLIC spec, gateway behaviour for level-triggered sources).
 */
import type { AccessWidth, InterruptLine, MmioDevice } from './device.js';
import { SnapshotError, type SnapshotReader, type SnapshotWriter } from '../snapshot.js';

/** Interrupt sources 1..plicSources-1 exist (QEMU 7.2 virt's riscv,ndev is 96). */
export const plicSources = 97;
export const plicContexts = 2;
/** Priorities 0..7 (QEMU virt: 7 priority levels besides "never"). */
export const plicPriorityMax = 7;

const Layout = {
  PRIORITY: 0x0,
  PENDING: 0x1000,
  ENABLE: 0x2000,
  ENABLE_STRIDE: 0x80,
  CONTEXT: 0x20_0000,
  CONTEXT_STRIDE: 0x1000,
} as const;
const words = Math.ceil(plicSources / 32);

export interface PlicOutputs {
  /** Sets the external-interrupt pin of `context` (0: MEIP, 1: SEIP). */
  setContext(context: number, level: boolean): void;
}

export class Plic implements MmioDevice {
  readonly name = 'plic';
  readonly windowBytes = 0x60_0000;

  private readonly priority = new Uint8Array(plicSources);
  private readonly level = new Uint8Array(plicSources);
  private readonly claimed = new Uint8Array(plicSources);
  private readonly enable = new Uint32Array(plicContexts * words);
  private readonly threshold = new Uint8Array(plicContexts);
  private readonly contextLevel = [false, false];

  constructor(private readonly outputs: PlicOutputs) {}

  /** The line for source `id` (1 <= id < plicSources), for a device to drive. */
  line(id: number): InterruptLine {
    if (!Number.isInteger(id) || id < 1 || id >= plicSources) throw new RangeError(`no PLIC source ${id}`);
    return { set: (level: boolean) => this.setLevel(id, level) };
  }

  private setLevel(id: number, level: boolean): void {
    const value = level ? 1 : 0;
    if (this.level[id] === value) return;
    this.level[id] = value;
    this.update();
  }

  private pending(id: number): boolean {
    return this.level[id] === 1 && this.claimed[id] === 0;
  }

  private enabled(context: number, id: number): boolean {
    return ((this.enable[context * words + (id >>> 5)]! >>> (id & 31)) & 1) === 1;
  }

  /** The source a claim by `context` would return now, or 0. */
  private best(context: number): number {
    let best = 0;
    let bestPriority = this.threshold[context]!;
    for (let id = 1; id < plicSources; id++) {
      const priority = this.priority[id]!;
      if (priority > bestPriority && this.pending(id) && this.enabled(context, id)) {
        best = id;
        bestPriority = priority;
      }
    }
    return best;
  }

  private update(): void {
    for (let context = 0; context < plicContexts; context++) {
      const level = this.best(context) !== 0;
      if (level !== this.contextLevel[context]) {
        this.contextLevel[context] = level;
        this.outputs.setContext(context, level);
      }
    }
  }

  read(offset: number, width: AccessWidth): number {
    if (width !== 4 || (offset & 3) !== 0) return 0;
    if (offset < Layout.PENDING) {
      const id = offset >>> 2;
      return id < plicSources ? this.priority[id]! : 0;
    }
    if (offset < Layout.PENDING + words * 4) {
      const word = (offset - Layout.PENDING) >>> 2;
      let bits = 0;
      for (let bit = 0; bit < 32; bit++) if (this.pending(word * 32 + bit)) bits |= 1 << bit;
      return bits >>> 0;
    }
    if (offset >= Layout.ENABLE && offset < Layout.CONTEXT) {
      const context = Math.floor((offset - Layout.ENABLE) / Layout.ENABLE_STRIDE);
      const word = ((offset - Layout.ENABLE) % Layout.ENABLE_STRIDE) >>> 2;
      return context < plicContexts && word < words ? this.enable[context * words + word]! : 0;
    }
    if (offset >= Layout.CONTEXT) {
      const context = Math.floor((offset - Layout.CONTEXT) / Layout.CONTEXT_STRIDE);
      const register = (offset - Layout.CONTEXT) % Layout.CONTEXT_STRIDE;
      if (context >= plicContexts) return 0;
      if (register === 0) return this.threshold[context]!;
      if (register === 4) return this.claim(context);
    }
    return 0;
  }

  write(offset: number, width: AccessWidth, value: number): void {
    if (width !== 4 || (offset & 3) !== 0) return;
    if (offset < Layout.PENDING) {
      const id = offset >>> 2;
      // Values above the maximum are ignored, as QEMU 7.2 does.
      if (id > 0 && id < plicSources && value >>> 0 <= plicPriorityMax) this.priority[id] = value;
    } else if (offset >= Layout.ENABLE && offset < Layout.CONTEXT) {
      const context = Math.floor((offset - Layout.ENABLE) / Layout.ENABLE_STRIDE);
      const word = ((offset - Layout.ENABLE) % Layout.ENABLE_STRIDE) >>> 2;
      if (context >= plicContexts || word >= words) return;
      // Source 0 and sources past the last do not exist: their enable bits stay clear.
      const existing = word === words - 1 && plicSources % 32 !== 0 ? (2 ** (plicSources % 32) - 1) | 0 : -1;
      this.enable[context * words + word] = (word === 0 ? value & ~1 : value) & existing;
    } else if (offset >= Layout.CONTEXT) {
      const context = Math.floor((offset - Layout.CONTEXT) / Layout.CONTEXT_STRIDE);
      const register = (offset - Layout.CONTEXT) % Layout.CONTEXT_STRIDE;
      if (context >= plicContexts) return;
      if (register === 0) {
        if (value >>> 0 <= plicPriorityMax) this.threshold[context] = value;
      }
      else if (register === 4) this.complete(context, value >>> 0);
      else return;
    } else {
      return; // pending bits are read-only
    }
    this.update();
  }

  private claim(context: number): number {
    const id = this.best(context);
    if (id !== 0) {
      this.claimed[id] = 1;
      this.update();
    }
    return id;
  }

  private complete(context: number, id: number): void {
    // Completion of a source not enabled for this context is ignored (PLIC spec).
    if (id === 0 || id >= plicSources || !this.enabled(context, id)) return;
    this.claimed[id] = 0;
  }

  save(writer: SnapshotWriter): void {
    writer.section('plic').bytes(this.priority).bytes(this.level).bytes(this.claimed).u32Array(this.enable).bytes(this.threshold);
  }

  restore(reader: SnapshotReader): void {
    reader.section('plic');
    const parts = [this.priority, this.level, this.claimed];
    for (const part of parts) {
      const data = reader.bytes();
      if (data.length !== part.length) throw new SnapshotError('PLIC state has the wrong number of sources');
      part.set(data);
    }
    reader.u32ArrayInto(this.enable);
    const threshold = reader.bytes();
    if (threshold.length !== plicContexts) throw new SnapshotError('PLIC state has the wrong number of contexts');
    this.threshold.set(threshold);
    this.contextLevel.fill(false);
    for (let context = 0; context < plicContexts; context++) this.outputs.setContext(context, false);
    this.update();
  }
}
