/**
 * The memory the translation tier's WebAssembly blocks work in (translator-wasm.ts): one
 * `WebAssembly.Memory` holding guest RAM at offset 0 and, after it, the hart state a block
 * reads and writes: the x registers, the data TLBs, a flag per RAM page with decoded
 * instructions, and two words a block leaves for its caller (the pc it exits to, and whether a
 * slow path raised `Hart.attention`). The RAM's typed arrays (ram.ts) and the hart's (cpu.ts)
 * are views into it, so the interpreter, the devices and the JavaScript blocks use the same
 * bytes as the WebAssembly ones, with no copies. A block can reach only its own memory: this is
 * why one memory holds both (Node 20's WebAssembly has one memory per module).
 *
 * Nothing here is machine state: the layout is the host's, snapshots see the RAM and the
 * registers as always.
 */
/** mmu.ts's `tlbEntries` (not imported: ram.ts imports this module, and mmu.ts imports ram.ts); the hart checks they agree. */
export const arenaTlbEntries = 512;
const tlbEntries = arenaTlbEntries;

/** The few members of the WebAssembly JavaScript API used here (the project's TypeScript libraries do not declare it). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
/** A table of functions (the tier's WebAssembly blocks, called through one trampoline: translator-wasm.ts). */
export interface WasmTable {
  set(index: number, value: unknown): void;
  readonly length: number;
}
interface WebAssemblyApi {
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
  Table: new (descriptor: { element: 'anyfunc'; initial: number; maximum?: number }) => WasmTable;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}
export const WebAssembly = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

const wasmPageBytes = 65536;

/** Byte offsets of the hart's part, from the start of the header (after RAM). */
export const HeaderLayout = {
  /** x0..x31 and the sink register (33 words). */
  x: 0,
  /** The pc a block left to (a word). */
  exitPc: 33 * 4,
  /** 1 if the last slow path left `Hart.attention` set (a word). */
  attention: 34 * 4,
  /** The block table's slot of the last block a chain of WebAssembly blocks ran (a word). */
  lastSlot: 35 * 4,
  /** 1 if a chain may go on from block to block (0: lockstep compares after each block). */
  chains: 36 * 4,
  loadTag: 1024,
  loadAdd: 1024 + tlbEntries * 4,
  storeTag: 1024 + tlbEntries * 8,
  storeAdd: 1024 + tlbEntries * 12,
  /** The fetch TLB's tags and pages (`Hart.fetchTag`, `Hart.fetchWordBase`): the trampoline checks a link to another page against them. */
  fetchTag: 1024 + tlbEntries * 16,
  fetchWordBase: 1024 + tlbEntries * 20,
  /**
   * A byte per RAM page: 1 if the page may hold decoded instructions (`Hart.codePages`): set
   * when one is decoded there, cleared when the code cache is dropped or a scan finds the page
   * empty (translation-cache.ts).
   */
  codePageFlags: 1024 + tlbEntries * 24,
} as const;

/** Slots of the block table (translator-wasm.ts): at least the tier's `blocksMax`. */
export const wasmBlockSlots = 8192;
/**
 * Bytes of a slot's record in the links region: length, generation, two links of (pc, slot,
 * generation), the block's virtual page and its RAM page (translator-wasm.ts, SlotWord).
 */
export const slotRecordBytes = 64;

/** Guest RAM and the hart's header in one WebAssembly memory. */
export interface WasmArena {
  readonly memory: WasmMemory;
  readonly buffer: ArrayBuffer;
  /** Where the header starts (RAM's size, rounded up to 64 KiB). */
  readonly headerOffset: number;
  /**
   * Where the block table's slot records start (after the code-page flags): what a chain of
   * blocks follows from one to the next without returning to JavaScript (translator-wasm.ts).
   */
  readonly linksOffset: number;
}

export function createWasmArena(ramBytes: number): WasmArena {
  const headerOffset = Math.ceil(ramBytes / wasmPageBytes) * wasmPageBytes;
  const linksOffset = headerOffset + Math.ceil((HeaderLayout.codePageFlags + ramBytes / 4096) / slotRecordBytes) * slotRecordBytes;
  const pages = Math.ceil((linksOffset + wasmBlockSlots * slotRecordBytes) / wasmPageBytes);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  return { memory, buffer: memory.buffer, headerOffset, linksOffset };
}

/** The hart's arrays in an arena (see {@link HeaderLayout}). */
export interface HartArenaViews {
  readonly x: Int32Array;
  readonly loadTag: Int32Array;
  readonly loadAdd: Int32Array;
  readonly storeTag: Int32Array;
  readonly storeAdd: Int32Array;
  readonly fetchTag: Int32Array;
  readonly fetchWordBase: Int32Array;
  readonly codePageFlags: Uint8Array;
  /** The header as words: `exitPc` and `attention` at their offsets / 4. */
  readonly words: Int32Array;
}

export function hartArenaViews(arena: WasmArena, ramPages: number): HartArenaViews {
  const at = (offset: number): number => arena.headerOffset + offset;
  return {
    x: new Int32Array(arena.buffer, at(HeaderLayout.x), 33),
    loadTag: new Int32Array(arena.buffer, at(HeaderLayout.loadTag), tlbEntries),
    loadAdd: new Int32Array(arena.buffer, at(HeaderLayout.loadAdd), tlbEntries),
    storeTag: new Int32Array(arena.buffer, at(HeaderLayout.storeTag), tlbEntries),
    storeAdd: new Int32Array(arena.buffer, at(HeaderLayout.storeAdd), tlbEntries),
    fetchTag: new Int32Array(arena.buffer, at(HeaderLayout.fetchTag), tlbEntries),
    fetchWordBase: new Int32Array(arena.buffer, at(HeaderLayout.fetchWordBase), tlbEntries),
    codePageFlags: new Uint8Array(arena.buffer, at(HeaderLayout.codePageFlags), ramPages),
    words: new Int32Array(arena.buffer, arena.headerOffset, HeaderLayout.loadTag / 4),
  };
}
