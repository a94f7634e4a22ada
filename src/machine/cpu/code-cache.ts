/**
 * Decoded instructions per RAM page: what the run loop executes from (QEMU's translation
 * blocks, in small). The pages live in the hart (`Hart.codePages`); this file says what is in
 * them and keeps them in step with RAM.
 *
 * With the C extension an instruction may start at any halfword (IALIGN = 16), so a RAM page
 * that has been fetched from gets 2048 slots of two int32 words, one slot per halfword of the
 * page (the slot of the halfword at page offset o is at index o), filled the first time the
 * instruction that starts there runs:
 *   word 0: op (bits 0-7; for most compressed instructions the op's C_ twin, see
 *           {@link cachedOp}) | rd (8-13; rd = x0 becomes the sink register) | rs1 (14-18)
 *           | rs2 (19-23) | the instruction's length in bytes, 2 or 4 (24-26)
 *           | at a block head the tier watches: entries the interpreter makes without calling
 *           the tier (27-30, see {@link headSkipShift}) and the head mark (31)
 *   word 1: the immediate (decode.ts: for CSR instructions the CSR number, for ILLEGAL the bits)
 * Word 0 is never 0 for a decoded instruction (decode.ts never yields op 0), so 0 marks an
 * empty slot; and it is positive, except that the translation tier sets bit 31 on the block
 * heads it watches (execution-tier.ts), so the run loop's one test `w <= 0` finds both. Every write to a RAM page with decoded instructions empties the slots of the
 * instructions it may have changed: those that start in the written halfwords and a 32-bit
 * one that starts at the halfword before them. So code always runs as written:
 * - stores on the run loop's fast path empty the slots themselves (cpu.ts);
 * - every other write (slow-path stores, device DMA, loaders, page-table A/D updates, a
 *   restored snapshot) reaches {@link invalidateCode} through RAM's watcher (ram.ts).
 * A 32-bit instruction that starts in a page's last halfword and so straddles into the next
 * virtual page is never kept in a slot (mmu.ts, `fetchInstruction`): its upper half belongs
 * to another page, whose writes and remappings this page's slots do not follow.
 */
import { decode, Op, type Decoded } from './decode.js';
import type { Hart } from './cpu.js';

/** Most RAM pages with decoded instructions (16 KiB each) before the whole cache is dropped. */
export const codePagesMax = 8192;
/** Int32 words per decoded page: two per halfword of a 4 KiB page. */
export const codePageWords = 4096;
/** Where word 0 of a decoded instruction holds its length in bytes. */
export const lengthShift = 24;
/**
 * Bits 27-30 of word 0 at a block head the translation tier watches (bit 31 set) but has
 * nothing compiled for: how many more entries the interpreter makes without calling the tier
 * (it counts them down; the tier sets them after a call that found nothing to run). Zero
 * everywhere else: the run loop clears bits 27-31 before it executes a word.
 */
export const headSkipShift = 27;
export const headSkipMask = 0xf << headSkipShift;
/** Word 0 without the tier's bits (27-31). */
export const decodedWordMask = 0x07ff_ffff;
/** The register index that decoded instructions with rd = x0 write to (x[32], never read). */
export const sinkRegister = 32;

/** A decoded page that no RAM page uses: where the run loop points before its first fetch. */
export const emptyCodePage = new Int32Array(codePageWords);

/** RAM page `page`'s decoded instructions, created empty if it has none. */
export function codePage(hart: Hart, page: number): Int32Array {
  const existing = hart.codePages[page];
  if (existing !== undefined) return existing;
  if (hart.codePageCount >= codePagesMax) dropCodeCache(hart);
  const code = new Int32Array(codePageWords);
  hart.codePages[page] = code;
  // Its flag for WebAssembly blocks' stores is set when an instruction is decoded into it
  // (mmu.ts, fetchInstruction), not here: an empty page has nothing for them to empty.
  hart.codePageCount++;
  return code;
}

/** Drops every decoded page (the cache is full): QEMU's tb_flush, in small. */
function dropCodeCache(hart: Hart): void {
  hart.codePages.fill(undefined);
  hart.arena?.codePageFlags.fill(0);
  hart.codePageCount = 0;
  // The fetch TLB points into the dropped pages.
  hart.fetchTag.fill(-1);
  hart.fetchCode.fill(undefined);
  hart.attention = true;
  // The tier's head marks were in the dropped pages.
  if (hart.tier !== undefined) hart.tier.flush();
}

/**
 * RAM bytes [offset, offset + length) of `page` changed behind the run loop's fast path:
 * empties the slots of the halfwords written and of the halfword before them (a 32-bit
 * instruction starting there overlaps the write).
 */
export function invalidateCode(hart: Hart, page: number, offset: number, length: number): void {
  if (hart.tier !== undefined) hart.tier.codeWritten(page, offset, length);
  const code = hart.codePages[page];
  if (code === undefined) return;
  const first = Math.max(0, (offset & ~1) - 2);
  const last = Math.min(codePageWords - 2, (offset + length - 1) & ~1);
  for (let slot = first; slot <= last; slot += 2) code[slot] = 0;
}

/**
 * The op a decoded page holds for a compressed instruction of op `op`: its C_ twin (ops.ts) if
 * the run loop finishes it in its switch, else the op itself (the rare path reads the length).
 */
const compressedTwins: ReadonlyMap<number, Op> = new Map<number, Op>([
  [Op.ADDI, Op.C_ADDI], [Op.LUI, Op.C_LUI], [Op.ANDI, Op.C_ANDI], [Op.SLLI, Op.C_SLLI], [Op.SRLI, Op.C_SRLI],
  [Op.SRAI, Op.C_SRAI], [Op.ADD, Op.C_ADD], [Op.SUB, Op.C_SUB], [Op.XOR, Op.C_XOR], [Op.OR, Op.C_OR],
  [Op.AND, Op.C_AND], [Op.LW, Op.C_LW], [Op.SW, Op.C_SW], [Op.JAL, Op.C_JAL], [Op.JALR, Op.C_JALR],
  [Op.BEQ, Op.C_BEQ], [Op.BNE, Op.C_BNE],
]);

/** The op number a decoded page holds for `d`. */
export function cachedOp(d: Decoded): number {
  return d.length === 2 ? (compressedTwins.get(d.op) ?? d.op) : d.op;
}

/** Decodes the instruction at the start of `insn` into `slot` (an even index) of a decoded page. */
export function decodeInto(code: Int32Array, slot: number, insn: number): void {
  const d = decode(insn);
  code[slot] = cachedOp(d) | ((d.rd === 0 ? sinkRegister : d.rd) << 8) | (d.rs1 << 14) | (d.rs2 << 19) | (d.length << lengthShift);
  code[slot + 1] = d.imm;
}
