/**
 * Guest RAM: one ArrayBuffer with typed views for every access width.
 *
 * The views assume a little-endian host, like the guest; this is checked when the module loads.
 * Writes that bypass the CPU's fast path (device DMA, loaders) are reported to a watcher, so
 * that the interpreter's cache of decoded instructions never goes stale.
 *
 * Ram also keeps the set of pages written since it was last asked (for incremental state
 * digests): writes outside the CPU's fast path mark their pages as they are reported; the
 * fast path is covered by arming every page ({@link PageFlag.trackWrites}), so that the first
 * store to each takes the slow path and reports it, and by counting as written the pages the
 * CPU's store TLB maps at that moment (the only ones it writes without the slow path).
 * Emptying the TLBs instead would cost the guest far more than hashing those pages again: the
 * translation tier's compiled blocks give up their optimized code when they first take a slow
 * path (docs/BENCHMARKS.md).
 *
 * Ram also knows which pages may hold data ({@link Ram.mayHoldData}): a page never written since
 * the buffer was new is zeros, and is not read to find that out. The operating system hands
 * out a new buffer's pages on first touch, and a scan of every page of 128 MiB (the first state
 * digest, a state copy) cost some 0.4 s of page faults on a virtual host, paid by the guest
 * (at a join) or by a backup (which then starts that far behind).
 */
import { createWasmArena, type WasmArena } from '../cpu/wasm-arena.js';
import { SnapshotError, type SnapshotReader, type SnapshotWriter, type Snapshottable } from '../snapshot.js';

export const ramBaseAddress = 0x8000_0000;
export const pageBytes = 4096;
export const ramBytesMin = 1 << 20;
/** RAM ends below 2^32 because the board maps it at 2 GiB. */
export const ramBytesMax = 2 ** 31 - pageBytes * 256;

const zeroPage = new Uint8Array(pageBytes);

{
  const probe = new Uint8Array(new Uint16Array([0x0102]).buffer);
  if (probe[0] !== 0x02) throw new Error('understudy needs a little-endian host');
}

/** Bits of `Ram.pageFlags`: a page with any set never enters the CPU's store TLB, and its stores are reported. */
export const PageFlag = {
  /** Every store is reported (the HTIF tohost page). */
  watched: 1,
  /** The next store is reported, and clears this bit (write tracking, see `armWriteTracking`). */
  trackWrites: 2,
} as const;

/** The pages written since the last `take` (see `Ram.trackWrites`). */
export interface RamWriteTracker {
  /** The pages written since the tracker started or since the last take, in order; tracks afresh (see Ram.trackWrites). */
  take(): number[];
  stop(): void;
}

/**
 * Receives notice that guest RAM bytes changed by anything but the CPU: device DMA, loaders,
 * HTIF replies, state copies and restores. (The CPU's own slow-path writes, stores and a
 * walk's A/D updates, tell the CPU's caches themselves.)
 */
export interface CodeWatcher {
  /** Bytes [offset, offset + length) of RAM, within page `page`, were written. */
  ramWritten(page: number, offset: number, length: number): void;
}

export class Ram implements Snapshottable {
  readonly sizeBytes: number;
  readonly pages: number;
  // The views are replaced together when a snapshot is restored (a fresh, zeroed buffer).
  u8!: Uint8Array;
  i8!: Int8Array;
  u16!: Uint16Array;
  i16!: Int16Array;
  i32!: Int32Array;
  /** Per page: {@link PageFlag} bits; stores to a page with any set take the slow path. */
  readonly pageFlags: Uint8Array;
  /** Per page: written since the last `takeWrittenPages` (complete only while armed; see above). */
  private readonly written: Uint8Array;
  /**
   * Per page: 1 if it may hold a non-zero byte, 0 if it is known to be zeros: set by every write
   * (the CPU's slow-path stores, through which every page enters the store TLB; DMA, loaders,
   * HTIF, state copies) and cleared only when the buffer is replaced.
   */
  readonly mayHoldData: Uint8Array;
  /** The pages with {@link PageFlag.watched} (few: the HTIF tohost page). */
  private readonly watched = new Set<number>();
  /** Further written-page sets (a live state copy's), kept like `written`. */
  private readonly trackers = new Set<Uint8Array>();
  watcher: CodeWatcher | undefined;

  /** Set when RAM lives in a WebAssembly memory (the tier's WebAssembly blocks, wasm-arena.ts): its views never change. */
  readonly arena: WasmArena | undefined;

  constructor(sizeBytes: number, options: { readonly wasm?: boolean } = {}) {
    if (!Number.isInteger(sizeBytes) || sizeBytes < ramBytesMin || sizeBytes > ramBytesMax || sizeBytes % pageBytes !== 0) {
      throw new RangeError(`RAM size ${sizeBytes} bytes is out of range (${ramBytesMin} to ${ramBytesMax}, a multiple of 4 KiB)`);
    }
    this.sizeBytes = sizeBytes;
    this.pages = sizeBytes / pageBytes;
    this.arena = options.wasm === true ? createWasmArena(sizeBytes) : undefined;
    this.useFreshBuffer();
    this.mayHoldData = new Uint8Array(this.pages);
    this.pageFlags = new Uint8Array(this.pages);
    this.written = new Uint8Array(this.pages).fill(1);
  }

  /** Points every view at a new zeroed buffer (the operating system zeroes it lazily). */
  private useFreshBuffer(): void {
    const buffer = this.arena?.buffer ?? new ArrayBuffer(this.sizeBytes);
    const bytes = this.sizeBytes;
    this.u8 = new Uint8Array(buffer, 0, bytes);
    this.i8 = new Int8Array(buffer, 0, bytes);
    this.u16 = new Uint16Array(buffer, 0, bytes / 2);
    this.i16 = new Int16Array(buffer, 0, bytes / 2);
    this.i32 = new Int32Array(buffer, 0, bytes / 4);
  }

  /** True when [physical, physical + length) lies inside RAM. */
  contains(physical: number, length: number): boolean {
    return physical >= ramBaseAddress && length >= 0 && physical + length <= ramBaseAddress + this.sizeBytes;
  }

  /** Copies guest bytes out (for devices); the range must be inside RAM. */
  readBytes(physical: number, length: number): Uint8Array {
    if (!this.contains(physical, length)) throw new RangeError(`RAM read outside RAM at 0x${physical.toString(16)}`);
    const offset = physical - ramBaseAddress;
    return this.u8.slice(offset, offset + length);
  }

  /** Copies bytes into guest RAM (device DMA, loaders); notifies the code cache. */
  writeBytes(physical: number, data: Uint8Array): void {
    if (!this.contains(physical, data.length)) throw new RangeError(`RAM write outside RAM at 0x${physical.toString(16)}`);
    const offset = physical - ramBaseAddress;
    this.u8.set(data, offset);
    this.noteWritten(offset, data.length);
  }

  /** Tells the code cache (and the written-page set) about a write to [offset, offset + length) of RAM. */
  noteWritten(offset: number, length: number): void {
    if (length <= 0) return;
    this.mayHoldData.fill(1, Math.floor(offset / pageBytes), Math.floor((offset + length - 1) / pageBytes) + 1);
    this.changed(offset, length);
  }

  /** Tells the code cache and the written-page sets of a change to [offset, offset + length), whose pages `mayHoldData` has right. */
  private changed(offset: number, length: number): void {
    const first = Math.floor(offset / pageBytes);
    const last = Math.floor((offset + length - 1) / pageBytes);
    this.markWritten(first, last);
    if (this.watcher === undefined) return;
    for (let page = first; page <= last; page++) {
      const start = Math.max(offset, page * pageBytes);
      const end = Math.min(offset + length, (page + 1) * pageBytes);
      this.watcher.ramWritten(page, start - page * pageBytes, end - start);
    }
  }

  /**
   * The CPU itself wrote [offset, offset + length) of RAM outside its fast path (a page walk
   * setting A or D): the written-page sets hear of it, the watcher does not (the CPU keeps its
   * own caches; see `CodeWatcher`).
   */
  noteWrittenByCpu(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(offset / pageBytes);
    const last = Math.floor((offset + length - 1) / pageBytes);
    this.mayHoldData.fill(1, first, last + 1);
    this.markWritten(first, last);
  }

  /** Pages `first` to `last` count as written for the digests and every tracker. */
  private markWritten(first: number, last: number): void {
    this.written.fill(1, first, last + 1);
    for (const tracker of this.trackers) tracker.fill(1, first, last + 1);
  }

  /** The CPU stored to a page with flags set (physical address inside RAM): note the page written, and disarm it. */
  noteStored(physical: number): void {
    const page = (physical - ramBaseAddress) >>> 12;
    this.mayHoldData[page] = 1;
    this.written[page] = 1;
    for (const tracker of this.trackers) tracker[page] = 1;
    this.pageFlags[page] = this.pageFlags[page]! & ~PageFlag.trackWrites;
  }

  /** Reports every store to `page` (its stores always take the slow path). */
  watchPage(page: number): void {
    this.watched.add(page);
    this.pageFlags[page] = this.pageFlags[page]! | PageFlag.watched;
  }

  /** No page is watched or armed any more. */
  clearPageFlags(): void {
    this.watched.clear();
    this.pageFlags.fill(0);
  }

  /**
   * Arms every page, so that the first CPU store to each reports it (except to the pages the
   * CPU's store TLB already maps: see the take methods).
   */
  private armWriteTracking(): void {
    this.pageFlags.fill(PageFlag.trackWrites);
    for (const page of this.watched) this.pageFlags[page] = PageFlag.trackWrites | PageFlag.watched;
  }

  /** Whether page `page` holds only zero bytes (a page never written is not read: `mayHoldData`). */
  pageIsZero(page: number): boolean {
    return this.mayHoldData[page] === 0 || Buffer.compare(this.u8.subarray(page * pageBytes, (page + 1) * pageBytes), zeroPage) === 0;
  }

  /** Counts every page as written (a new tracker starts from everything). */
  markAllWritten(): void {
    this.written.fill(1);
  }

  /** Whether `page` was written since the last `takeWrittenPages`. */
  writtenSince(page: number): boolean {
    return this.written[page] === 1;
  }

  /**
   * The pages written since the last call (in order), and forgets them; tracks writes afresh
   * from here. `storeMapped`: the pages the CPU's store TLB maps now (Hart.storeTlbPages),
   * which it may write unseen: they count as written from here.
   */
  takeWrittenPages(storeMapped: readonly number[]): number[] {
    return takePages(this.written, () => this.armWriteTracking(), storeMapped);
  }

  /**
   * A second record of the pages written, from now on, for a consumer of its own (a live
   * state copy), beside the digests' (`takeWrittenPages`). Its consumer needs the pages really
   * written, not those the store TLB might write: the caller empties the CPU's store TLB when
   * the tracker starts and at each take, so that every store to a page is seen.
   */
  trackWrites(): RamWriteTracker {
    const written = new Uint8Array(this.pages);
    this.trackers.add(written);
    this.armWriteTracking();
    return {
      take: () => takePages(written, () => this.armWriteTracking(), []),
      stop: () => {
        this.trackers.delete(written);
      },
    };
  }

  /** The pages that hold a non-zero byte, in order. */
  nonZeroPages(): number[] {
    const pages: number[] = [];
    for (let page = 0; page < this.pages; page++) if (!this.pageIsZero(page)) pages.push(page);
    return pages;
  }

  /** Page `page`'s bytes as a state copy sends them: empty for a page of zeros. */
  pageForCopy(page: number): Uint8Array {
    return this.pageIsZero(page) ? new Uint8Array(0) : this.u8.slice(page * pageBytes, (page + 1) * pageBytes);
  }

  /** Sets page `page` from a state copy (`pageForCopy`'s form); false if the page or its size is wrong. */
  setPageFromCopy(page: number, bytes: Uint8Array): boolean {
    if (!Number.isInteger(page) || page < 0 || page >= this.pages) return false;
    if (bytes.length === 0) this.u8.fill(0, page * pageBytes, (page + 1) * pageBytes);
    else if (bytes.length === pageBytes) this.u8.set(bytes, page * pageBytes);
    else return false;
    this.noteWritten(page * pageBytes, pageBytes);
    return true;
  }

  /**
   * Writes RAM: every non-zero page; or, with `onlyPages`, just those pages (zero or not), to
   * be restored over a RAM that already holds the rest (a live copy's final part).
   */
  save(writer: SnapshotWriter, onlyPages?: readonly number[]): void {
    writer.section('ram').uint(this.sizeBytes).bool(onlyPages !== undefined);
    if (onlyPages !== undefined) {
      writer.uint(onlyPages.length);
      for (const page of onlyPages) writer.uint(page).bytes(this.pageForCopy(page));
      return;
    }
    // Sparse: only pages that hold a non-zero byte, as (page, bytes).
    const pages = this.nonZeroPages();
    writer.uint(pages.length);
    for (const page of pages) writer.uint(page).bytes(this.u8.subarray(page * pageBytes, (page + 1) * pageBytes));
  }

  restore(reader: SnapshotReader): void {
    reader.section('ram');
    const size = reader.uint();
    if (size !== this.sizeBytes) throw new SnapshotError(`snapshot has ${size} bytes of RAM, this machine ${this.sizeBytes}`);
    const overlay = reader.bool();
    const count = reader.uint();
    if (count > this.pages) throw new SnapshotError(`snapshot claims ${count} RAM pages, this machine has ${this.pages}`);
    // Checked whole before anything changes: a bad snapshot leaves the RAM as it was.
    const pages = this.readPages(reader, count, overlay);
    if (!overlay) {
      if (this.arena !== undefined) {
        // A WebAssembly memory keeps its views (blocks and the hart's arrays point into it):
        // the pages that may hold data are zeroed.
        for (let page = this.mayHoldData.indexOf(1); page !== -1; page = this.mayHoldData.indexOf(1, page + 1)) this.u8.fill(0, page * pageBytes, (page + 1) * pageBytes);
      } else {
        // Zeroing a fresh buffer is the operating system's job, and much faster than fill(0).
        this.useFreshBuffer();
      }
      this.mayHoldData.fill(0);
    }
    // Over the RAM a live copy filled (an overlay), or over zeros; one notice for all of it.
    for (const { page, bytes } of pages) {
      if (bytes.length === 0) this.u8.fill(0, page * pageBytes, (page + 1) * pageBytes);
      else this.u8.set(bytes, page * pageBytes);
      this.mayHoldData[page] = 1;
    }
    this.changed(0, this.sizeBytes);
  }

  /**
   * A snapshot's `count` (page, bytes) pairs, checked whole: pages in order and inside RAM, each
   * a whole page (or empty, a zero page of a live copy's overlay, when `emptyAllowed`).
   */
  private readPages(reader: SnapshotReader, count: number, emptyAllowed: boolean): { page: number; bytes: Uint8Array }[] {
    const pages: { page: number; bytes: Uint8Array }[] = [];
    let previous = -1;
    for (let i = 0; i < count; i++) {
      const page = reader.uint();
      if (page <= previous || page >= this.pages) throw new SnapshotError(`bad RAM page ${page} in snapshot`);
      const bytes = reader.bytes();
      if (bytes.length !== pageBytes && !(emptyAllowed && bytes.length === 0)) throw new SnapshotError(`RAM page ${page} has ${bytes.length} bytes`);
      previous = page;
      pages.push({ page, bytes });
    }
    return pages;
  }
}

/**
 * The pages marked in `written` (in order), which it then forgets; arms every page (`arm`),
 * and marks `storeMapped`, the pages the CPU may write without the slow path from here.
 */
function takePages(written: Uint8Array, arm: () => void, storeMapped: readonly number[]): number[] {
  const pages: number[] = [];
  for (let page = written.indexOf(1); page !== -1; page = written.indexOf(1, page + 1)) pages.push(page);
  written.fill(0);
  arm();
  for (const page of storeMapped) written[page] = 1;
  return pages;
}
