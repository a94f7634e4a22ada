/**
 * Random instruction sequences for differential testing against QEMU.
 *
 * A seed makes one bare-metal program (assembly text, built with the Debian cross toolchain)
 * of several blocks. Each block picks a privilege mode (M, S or U), mstatus bits (MPRV, SUM,
 * MXR, TVM, TW, TSR) and page tables: an identity superpage for code and data, and an alias window
 * that maps the data page eight times with random permissions and A/D bits. It sets every
 * free register to a random value, fills a 2 KiB data area from a seeded generator, enters
 * the mode with MRET and runs a few hundred random instructions (RV32IMAC, Zicsr, Zifencei:
 * arithmetic on edge values, loads and stores aligned or not, AMOs, LR/SC, forward branches
 * and jumps, CSR accesses, accesses through the alias window, instructions that trap;
 * compressed instructions of every kind and random 16-bit words, in blocks assembled with C
 * and some without; F and D instructions on edge values (float-fuzz.ts) in blocks with the
 * FPU on, and the same instructions trapping in blocks with mstatus.FS = Off; calls into code that straddles a page boundary, whose second page a
 * block maps with random permissions). Every trap goes to an M-mode handler that counts it,
 * hashes mcause, mtval and mepc, and resumes after the trapping instruction (2 or 4 bytes
 * on; a fetch fault in the straddling code resumes where its caller continues); the ECALL
 * at the block's end returns to the harness,
 * which prints the registers, mstatus.FS and SD, fcsr and the f registers, a checksum of the
 * data area, the traps, the page-table entries (the walks set A and D) and the instructions
 * the block retired (minstret). The same program
 * on understudy and on QEMU must print the same text, block for block.
 *
 * Two registers are the harness's: s0 (x8) points at the data area, and s1 (x9) is the trap
 * handler's and the harness's scratch register. Random instructions never write either.
 * The generator steers clear of the QEMU 7.2 deviations in guests/tests/README.md; each
 * place that does says which.
 */
import { Prng } from '../../src/simulator/prng.js';
import { decode, Op } from '../../src/machine/cpu/decode.js';
import { FloatGenerator, floatRegisterTable, fpCsrs } from './float-fuzz.js';

/** The registers random instructions may write (all but x8 and x9; x0 now and then). */
const writable = [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31];
const dataBytes = 2048;

const edgeValues = [0, 1, 2, 0xffffffff, 0xfffffffe, 0x80000000, 0x7fffffff, 0x80000001, 0x7ffffffe, 0xffff, 0x10000, 0xff, 0x80, 0xffff8000, 0xffffff80, 31, 32, 33];

/**
 * CSRs that random code may read and write in M-mode without taking the harness apart. Not
 * mepc and sepc: QEMU 7.2 keeps their low bits (guests/tests/README.md); traps still write
 * and hash mepc.
 */
const csrs = ['sscratch', 'scause', 'stval', 'stvec', 'satp', 'mcause', 'mtval', 'mcounteren', 'scounteren'];
/** CSR numbers that do not exist on this machine: accessing one is an illegal instruction. */
const absentCsrs = [0x7c0, 0x5ff, 0xbff, 0x3ff];
/** Read-only CSRs: a write is an illegal instruction (a read is compared too). */
const readOnlyCsrs = ['mhartid', 'misa'];

const rType = ['add', 'sub', 'sll', 'slt', 'sltu', 'xor', 'srl', 'sra', 'or', 'and', 'mul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu'];
const iType = ['addi', 'slti', 'sltiu', 'xori', 'ori', 'andi'];
const shifts = ['slli', 'srli', 'srai'];
const loads: [string, number][] = [['lb', 1], ['lbu', 1], ['lh', 2], ['lhu', 2], ['lw', 4]];
const stores: [string, number][] = [['sb', 1], ['sh', 2], ['sw', 4]];
const amos = ['amoswap.w', 'amoadd.w', 'amoxor.w', 'amoand.w', 'amoor.w', 'amomin.w', 'amomax.w', 'amominu.w', 'amomaxu.w'];
const branches = ['beq', 'bne', 'blt', 'bge', 'bltu', 'bgeu'];
/**
 * Words that are not instructions of RV32IMAC: all zeros (two illegal 16-bit halfwords), all
 * ones, an OP with funct7 0x7f, the 48/64-bit opcode 0x7f, a SYSTEM word next to MRET's
 * encoding (0x300 with rd = x1), and reserved 16-bit encodings followed by c.nop: C.SUBW
 * (RV64), C.JR x0, C.LUI x0 with 0, C.FLD f8, 0(x8) (illegal with FS = Off, else a load from
 * the data area), C.SLLI with shamt[5] = 1. (0x0000_0001 and 0x0000_4502 were here before C:
 * they are c.nop and c.lwsp now.)
 */
const illegalWords = [
  0x0000_0000, 0xffff_ffff, 0xfe00_7033, 0x0000_707f, 0x3000_00f3,
  0x0001_9c01, 0x0001_8002, 0x0001_6001, 0x0001_2000, 0x0001_1282,
];

export interface FuzzProgram {
  readonly seed: number;
  /** The whole program, GNU assembler syntax. */
  readonly source: string;
  /** Each block's random instructions, for a report when a block differs. */
  readonly blocks: readonly string[];
}

const hex = (value: number): string => `0x${(value >>> 0).toString(16)}`;

type Mode = 'M' | 'S' | 'U';
const modeBits: Record<Mode, number> = { M: 3 << 11, S: 1 << 11, U: 0 };
const Status = { MPRV: 1 << 17, SUM: 1 << 18, MXR: 1 << 19, TVM: 1 << 20, TW: 1 << 21, TSR: 1 << 22 } as const;
const Pte = { V: 1, R: 2, W: 4, X: 8, U: 16, G: 32, A: 64, D: 128 } as const;
/** Where the data page is mapped again, through 4 KiB pages with random permissions. */
const aliasBase = 0x4000_0000;
const aliasPages = 8;
/** The data area's offset inside its page (see the .bss layout below). */
const dataPageOffset = 256;

/** S-mode blocks: supervisor CSRs; satp only read (a write would move the page tables). */
const supervisorCsrs = ['sscratch', 'scause', 'stval', 'stvec', 'sstatus', 'sie', 'sip'];

/** The code page pair whose boundary a straddling instruction crosses, mapped at this address in S and U blocks. */
const straddleBase = 0x4001_0000;
/** Where the caller of the straddling code stores its return address, below the data. */
const straddleReturnOffset = -48;

/** Blocks in a program, unless the caller asks for another number. */
export const defaultBlockCount = 16;

export function generateProgram(seed: number, blockCount = defaultBlockCount, instructionsPerBlock = 250): FuzzProgram {
  const random = new Prng(seed);
  const reg = (): string => `x${random.chance(0.03) ? 0 : random.pick(writable)}`;
  const anyReg = (): string => `x${random.int(0, 31)}`;
  const value = (): number => (random.chance(0.4) ? random.pick(edgeValues) : random.next());
  const imm12 = (): number => (random.chance(0.4) ? random.pick([0, 1, -1, 2047, -2048, 0x7f, -0x80]) : random.int(-2048, 2047));
  let label = 0;
  const blocks: string[] = [];
  const compressed = new CompressedGenerator(random, () => `L${label++}`);
  const float = new FloatGenerator(random, reg, anyReg);
  const registerTables: string[] = [];
  // The straddling code, one per program: a 16-bit instruction in the first page's last word,
  // a 32-bit one at its last halfword (its upper half opens the second page), then c.jr x9.
  const straddleText = [
    '.section .text',
    '.balign 4096',
    'straddle_page:',
    `  .fill ${(4096 - 4) / 4}, 4, 0`,
    'straddle_entry:',
    '  .option push',
    '  .option rvc',
    `  ${compressed.alu()}`,
    '  .option norvc',
    `  ${random.pick(rType)} ${reg()}, ${anyReg()}, ${anyReg()}`,
    '  .option rvc',
    '  c.jr x9',
    '  .option pop',
    '  .balign 4096',
  ];
  const lines: string[] = [
    '.section .text.init, "ax"',
    '.globl _start',
    '_start:',
    '  la x9, trap',
    '  csrw mtvec, x9',
    '  la x8, data',
    // One PMP entry over everything, as firmware sets: S and U may access memory at all.
    '  li x9, -1',
    '  csrw pmpaddr0, x9',
    '  li x9, 0x1f',
    '  csrw pmpcfg0, x9',
    // The page tables' addresses, satp, root[256] -> l2 (VA 0x4000_0000), the data page's PPN.
    '  la x9, root',
    '  sw x9, -44(x8)',
    '  srli x10, x9, 12',
    '  li x11, 0x80000000',
    '  or x10, x10, x11',
    '  sw x10, -36(x8)',
    '  la x10, l2',
    '  sw x10, -40(x8)',
    '  srli x11, x10, 12',
    '  slli x11, x11, 10',
    '  ori x11, x11, 1',
    `  sw x11, ${4 * (aliasBase >>> 22)}(x9)`,
    '  srli x11, x8, 12',
    '  slli x11, x11, 10',
    '  sw x11, -32(x8)',
    '  li a0, 0',
    '  call fill',
  ];
  for (let block = 0; block < blockCount; block++) {
    const mode: Mode = random.pick(['M', 'M', 'S', 'U']);
    const pageFlags: number[] = [];
    for (let page = 0; page < aliasPages; page++) pageFlags.push(random.int(0, 0xff) | (random.chance(0.6) ? Pte.V : 0));
    let status = modeBits[mode];
    for (const bit of [Status.SUM, Status.MXR, Status.TVM, Status.TW, Status.TSR]) if (random.chance(0.4)) status |= bit;
    // An M-mode block with MPRV: after the MRET that enters it MPP is U, so its loads and
    // stores are translated as U-mode's, until a trap sets MPP to M (and the handler's MRET
    // back to U again). Its superpage has A and D set: QEMU 7.2 keeps TLB entries across
    // those MPP changes, so it may skip the walk that would set them.
    const mprv = mode === 'M' && random.chance(0.4);
    if (mprv) status |= Status.MPRV;
    /**
     * Alias pages where a store succeeds. AMOs go only there: QEMU 7.2 does an AMO as a load
     * and then a store, so on a page the store may not write it sets A, or reports a load
     * fault, where the spec (and understudy) report a store/AMO fault and leave A alone.
     */
    const writablePages = pageFlags.flatMap((flags, page) => {
      const userOk = mode === 'U' ? (flags & Pte.U) !== 0 : (flags & Pte.U) === 0 || (status & Status.SUM) !== 0;
      return (flags & (Pte.V | Pte.R | Pte.W)) === (Pte.V | Pte.R | Pte.W) && userOk ? [page] : [];
    });
    // The FPU: Off in one block in five (every F and D instruction and fcsr access traps),
    // Initial or Clean in one in five (the first write of an f register or fcsr makes it
    // Dirty; stores, moves to x registers and CSR reads do not), else Dirty. With Initial or
    // Clean no instruction changes only fflags: QEMU 7.2 leaves FS alone there, where the
    // spec (and understudy) make it Dirty.
    const floatStatus = random.pick([0, 1, 2, 3, 3, 3, 3, 3, 0, 3]);
    // Most blocks are assembled with C (the assembler compresses what it can), some without.
    const body: string[] = [random.chance(0.7) ? '  .option rvc' : '  .option norvc'];
    let remaining = instructionsPerBlock;
    /** An access to the data page through the alias window (S and U blocks only). */
    const aliasAddress = (size: number, pages?: readonly number[]): string =>
      hex(aliasBase + (pages === undefined ? random.int(0, aliasPages - 1) : random.pick(pages)) * 4096 + dataPageOffset + Math.floor(random.int(0, dataBytes - size) / size) * size);
    while (remaining > 0) {
      const kind = random.int(0, 99);
      if (random.chance(0.15)) {
        // Compressed instructions, said explicitly (c.* mnemonics), or a random 16-bit word.
        const lines = random.chance(0.15) ? [compressed.randomHalf()] : compressed.any();
        body.push('  .option push', '  .option rvc', ...lines.map((line) => (line.endsWith(':') ? line : `  ${line}`)), '  .option pop');
        remaining -= lines.filter((line) => !line.endsWith(':')).length;
        continue;
      }
      if (random.chance(0.2)) {
        // F and D: arithmetic, conversions, moves, loads and stores (through the alias
        // window too in S and U blocks), fcsr accesses.
        const aliasFor = mode === 'M' ? undefined : (size: number): string => aliasAddress(size, random.chance(0.5) && writablePages.length > 0 ? writablePages : undefined);
        const lines = float.any(aliasFor, floatStatus === 1 || floatStatus === 2);
        body.push(...lines.map((line) => `  ${line}`));
        remaining -= lines.filter((line) => !line.startsWith('#')).length;
        continue;
      }
      if (random.chance(0.02)) {
        // A call into the straddling code: through its virtual mapping in S and U blocks
        // (the second page's permissions are the block's choice), at its address in M.
        const target = `x${random.pick(writable)}`;
        const returnLabel = `L${label++}`;
        body.push(
          mode === 'M' ? `  la ${target}, straddle_entry` : `  li ${target}, ${hex(straddleBase + 0xffc)}`,
          `  la x9, ${returnLabel}`,
          `  sw x9, ${straddleReturnOffset}(x8)`,
          `  jr ${target}`,
          `${returnLabel}:`,
        );
        remaining -= 4;
        continue;
      }
      if (mode !== 'M' && kind < 12) {
        // Through the alias window: loads, stores, AMOs and LR/SC under the block's page
        // permissions, SUM and MXR (page faults with the virtual address in tval).
        const shape = writablePages.length > 0 ? random.int(0, 3) : random.pick([0, 1, 3]);
        body.push(`  li x9, ${aliasAddress(4, shape === 2 ? writablePages : undefined)}`);
        if (shape === 0) body.push(`  ${random.pick(loads)[0]} ${reg()}, 0(x9)`);
        else if (shape === 1) body.push(`  ${random.pick(stores)[0]} ${anyReg()}, 0(x9)`);
        else if (shape === 2) body.push(`  ${random.pick(amos)} ${reg()}, ${anyReg()}, (x9)`);
        else body.push(`  lr.w ${reg()}, (x9)`, `  sc.w ${reg()}, ${anyReg()}, (x9)`);
        remaining -= shape === 3 ? 3 : 2;
      } else if (kind < 30) {
        body.push(`  ${random.pick(rType)} ${reg()}, ${anyReg()}, ${anyReg()}`);
      } else if (kind < 40) {
        body.push(`  ${random.pick(iType)} ${reg()}, ${anyReg()}, ${imm12()}`);
      } else if (kind < 45) {
        body.push(`  ${random.pick(shifts)} ${reg()}, ${anyReg()}, ${random.int(0, 31)}`);
      } else if (kind < 48) {
        body.push(`  ${random.pick(['lui', 'auipc'])} ${reg()}, ${random.int(0, 0xfffff)}`);
      } else if (kind < 58) {
        const [op, size] = random.pick(loads);
        body.push(`  ${op} ${reg()}, ${dataOffset(random, size)}(x8)`);
      } else if (kind < 68) {
        const [op, size] = random.pick(stores);
        body.push(`  ${op} ${anyReg()}, ${dataOffset(random, size)}(x8)`);
      } else if (kind < 73) {
        // An AMO on an aligned word of the data area. (A misaligned AMO traps with a cause
        // QEMU 7.2 gets wrong: guests/tests/README.md, "QEMU 7.2 deviations".)
        const offset = random.int(0, dataBytes / 4 - 1) * 4;
        const suffix = random.pick(['', '.aq', '.rl', '.aqrl']);
        body.push(`  addi x9, x8, ${offset}`, `  ${random.pick(amos)}${suffix} ${reg()}, ${anyReg()}, (x9)`);
        remaining--;
      } else if (kind < 76) {
        // LR/SC: a constrained sequence (succeeds on any implementation), or an SC to
        // another address, or an SC with no reservation (both fail, the same way).
        const offset = random.int(0, dataBytes / 4 - 1) * 4;
        const shape = random.int(0, 2);
        if (shape === 0) {
          const between = random.int(0, 3);
          body.push(`  addi x9, x8, ${offset}`, `  lr.w ${reg()}, (x9)`);
          for (let i = 0; i < between; i++) body.push(`  ${random.pick(['add', 'xor', 'or', 'sub'])} ${reg()}, ${anyReg()}, ${anyReg()}`);
          body.push(`  sc.w ${reg()}, ${anyReg()}, (x9)`);
          remaining -= 2 + between;
        } else if (shape === 1) {
          body.push(`  addi x9, x8, ${offset}`, `  lr.w ${reg()}, (x9)`, `  addi x9, x8, ${(offset + 4 * random.int(1, 8)) % dataBytes}`, `  sc.w ${reg()}, ${anyReg()}, (x9)`);
          remaining -= 3;
        } else {
          body.push(`  addi x9, x8, ${offset}`, `  sc.w ${reg()}, ${anyReg()}, (x9)`);
          remaining--;
        }
      } else if (kind < 82) {
        // A forward branch over 0 to 3 instructions.
        const target = `L${label++}`;
        body.push(`  ${random.pick(branches)} ${anyReg()}, ${anyReg()}, ${target}`);
        const skipped = random.int(0, 3);
        for (let i = 0; i < skipped; i++) body.push(`  addi ${reg()}, ${anyReg()}, ${imm12()}`);
        body.push(`${target}:`);
        remaining -= skipped;
      } else if (kind < 85) {
        // jal or jalr forward; jalr clears bit 0 of its target. (With C every target is
        // 2-aligned: no misaligned-target traps are left. The target is a label: in a block
        // with C, instructions before it may be 2 or 4 bytes.)
        const target = `L${label++}`;
        if (random.chance(0.5)) {
          body.push(`  jal ${reg()}, ${target}`, `  addi ${reg()}, ${anyReg()}, 1`, `${target}:`);
        } else {
          body.push(`  la x9, ${target}`, `  jalr ${reg()}, ${random.pick([0, 0, 0, 1])}(x9)`, `  addi ${reg()}, ${anyReg()}, 1`, `${target}:`);
          remaining--;
        }
        remaining--;
      } else if (kind < 93) {
        const op = random.pick(['csrrw', 'csrrs', 'csrrc']);
        const which = random.int(0, 9);
        // In S-mode mostly its own CSRs (the machine's trap); in U-mode every one traps.
        // Not satp under MPRV: a walk from a random root reads outside RAM, which QEMU 7.2
        // reports as a page fault where the spec says access fault.
        const list = mode === 'M' ? (mprv ? csrs.filter((csr) => csr !== 'satp') : csrs) : mode === 'S' && random.chance(0.7) ? supervisorCsrs : [...supervisorCsrs, ...csrs.filter((csr) => csr !== 'satp')];
        const csr = random.pick(list);
        if (mode !== 'M' && which === 0) body.push(`  csrrs ${reg()}, satp, x0`);
        else if (csr === 'sstatus' && which < 7) {
          // Not FS and VS: QEMU 7.2 lets VS be written without the V extension. Not SUM: the
          // choice of pages for AMOs depends on it.
          const bits = (value() & ~(0x6600 | Status.SUM)) | (op === 'csrrw' ? status & Status.SUM : 0);
          body.push(`  li x9, ${hex(bits)}`, `  ${op} ${reg()}, sstatus, x9`);
          remaining--;
        }
        else if (which < 7) body.push(`  ${op} ${reg()}, ${csr}, ${anyReg()}`);
        else if (which < 8) body.push(`  ${csr === 'sstatus' && op === 'csrrw' ? 'csrrs' : op}i ${reg()}, ${csr}, ${random.int(0, 31)}`);
        // fflags, frm, fcsr too, but not with FS Initial or Clean: a CSRRS/CSRRC whose register
        // holds 0 writes on understudy (the spec) and not on QEMU 7.2, which decides FS Dirty.
        else if (which < 9) body.push(`  ${op} ${reg()}, ${hex(random.pick(random.chance(0.3) && (floatStatus === 0 || floatStatus === 3) ? fpCsrs : absentCsrs))}, ${anyReg()}`);
        // A read, or a CSRRW (a write: illegal). Not CSRRS/CSRRC with rs1 != x0: QEMU 7.2
        // lets them through when rs1 holds 0 (guests/tests/README.md).
        else if (random.chance(0.5)) body.push(`  csrrw ${reg()}, ${random.pick(readOnlyCsrs)}, ${anyReg()}`);
        else body.push(`  ${random.pick(['csrrs', 'csrrc'])} ${reg()}, ${random.pick(readOnlyCsrs)}, x0`);
      } else if (kind < 95) {
        body.push(`  .word ${hex(random.pick(illegalWords))}`);
      } else if (kind < 97) {
        body.push(`  ${random.pick(['ecall', 'ebreak'])}`);
      } else {
        body.push(`  ${random.pick(['fence', 'fence.i', 'fence rw, rw', 'fence r, w', 'sfence.vma', `sfence.vma ${anyReg()}, ${anyReg()}`])}`);
      }
      remaining--;
    }
    body.push('  .option rvc');
    blocks.push(body.join('\n'));
    lines.push(`# block ${block}: ${mode}-mode`);
    // The code and data superpage (identity, at 0x8000_0000): user pages for a U block; A
    // and D now and then clear, for the walk to set.
    const superpage = 0x2000_0000 | Pte.V | Pte.R | Pte.W | Pte.X | (mode === 'U' || mprv ? Pte.U : 0) | (mprv || random.chance(0.7) ? Pte.A : 0) | (mprv || random.chance(0.7) ? Pte.D : 0);
    lines.push('  lw x9, -44(x8)', `  li x10, ${hex(superpage)}`, '  addi x9, x9, 2047', `  sw x10, ${4 * (0x8000_0000 >>> 22) - 2047}(x9)`);
    // The alias window: the data page eight times, each with random permissions.
    lines.push('  lw x9, -40(x8)', '  lw x11, -32(x8)');
    pageFlags.forEach((flags, page) => lines.push(`  ori x10, x11, ${flags}`, `  sw x10, ${4 * page}(x9)`));
    // The straddling code's two pages at straddleBase: the first executable in the block's
    // mode, the second with random permissions (or none), like the alias pages.
    const straddleFirst = Pte.V | Pte.R | Pte.X | Pte.A | (mode === 'U' ? Pte.U : 0);
    const straddleSecond = random.int(0, 0xff) | (random.chance(0.6) ? Pte.V : 0);
    const straddleIndex = (straddleBase >>> 12) & 0x3ff;
    lines.push(
      '  la x11, straddle_page', '  srli x11, x11, 12', '  slli x11, x11, 10',
      `  ori x10, x11, ${straddleFirst}`, `  sw x10, ${4 * straddleIndex}(x9)`,
      '  li x10, 0x400', '  add x11, x11, x10',
      `  ori x10, x11, ${straddleSecond}`, `  sw x10, ${4 * straddleIndex + 4}(x9)`,
    );
    lines.push('  lw x9, -36(x8)', '  csrw satp, x9', '  sfence.vma');
    // The f registers from the block's table of edge values and fcsr (FS on for that), then
    // the block's FS.
    registerTables.push(floatRegisterTable(random, `B${block}_fregs`));
    lines.push(
      '  li x9, 0x6000', '  csrs mstatus, x9', `  la x9, B${block}_fregs`,
      ...Array.from({ length: 32 }, (_, r) => `  fld f${r}, ${8 * r}(x9)`),
      `  li x9, ${hex(float.initialFcsr())}`, '  csrw fcsr, x9',
      '  li x9, 0x6000', '  csrc mstatus, x9', `  li x9, ${hex(floatStatus << 13)}`, '  csrs mstatus, x9',
    );
    lines.push(
      `  li x9, ${hex((3 << 11) | Status.MPRV | Status.SUM | Status.MXR | Status.TVM | Status.TW | Status.TSR)}`,
      '  csrc mstatus, x9',
      `  li x9, ${hex(status)}`,
      '  csrs mstatus, x9',
      `  la x9, B${block}_body`,
      '  csrw mepc, x9',
      `  la x9, B${block}_end`,
      '  sw x9, -24(x8)',
      `  la x9, B${block}_exit`,
      '  sw x9, -28(x8)',
    );
    for (const r of [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]) {
      lines.push(`  li x${r}, ${hex(value())}`);
    }
    // x9 may be read by random instructions: it must not hold minstret (QEMU's differs).
    lines.push('  csrr x9, minstret', '  sw x9, -20(x8)', `  li x9, ${hex(value())}`, '  mret', `B${block}_body:`, ...body);
    // The block ends at its ECALL (or whatever traps there): the handler leaves for the exit.
    lines.push(`B${block}_end:`, '  ecall', `B${block}_exit:`, `  li x9, ${block}`, '  sw x9, -16(x8)', '  jal x9, dump');
  }
  lines.push(
    // Wait until the UART has sent everything (LSR.TEMT): QEMU loses a byte still in flight.
    '  li x9, 0x10000000',
    '2: lbu x10, 5(x9)',
    '  andi x10, x10, 0x40',
    '  beqz x10, 2b',
    '  li x9, 0x100000',
    '  li x10, 0x5555',
    '  sw x10, 0(x9)',
    '1: j 1b',
    '',
    harness,
    ...straddleText,
    '.section .rodata',
    '.balign 8',
    ...registerTables,
  );
  return { seed, source: lines.join('\n') + '\n', blocks };
}

/** Registers a compressed instruction's 3-bit field names that random code may write (not x8, x9). */
const primeWritable = [10, 11, 12, 13, 14, 15];
/** What a random 16-bit word may decode to: no memory access, no control flow (so no wild jumps or stores). */
const safeHalfOps: ReadonlySet<number> = new Set([Op.ILLEGAL, Op.ADDI, Op.ANDI, Op.SLLI, Op.SRLI, Op.SRAI, Op.LUI, Op.ADD, Op.SUB, Op.XOR, Op.OR, Op.AND]);

/**
 * Compressed instructions (RV32C) with random operands, in the assembler's c.* mnemonics
 * (which it accepts only when the instruction fits 16 bits). They keep the harness's rules:
 * nothing writes x8 or x9, memory is reached only through the data area, jumps go forward.
 */
class CompressedGenerator {
  constructor(private readonly random: Prng, private readonly newLabel: () => string) {}

  private rd(): string {
    return `x${this.random.pick(writable)}`;
  }
  private rdPrime(): string {
    return `x${this.random.pick(primeWritable)}`;
  }
  private rsPrime(): string {
    return `x${this.random.int(8, 15)}`;
  }
  private rs(): string {
    return `x${this.random.int(1, 31)}`;
  }
  private imm6(): number {
    return this.random.chance(0.4) ? this.random.pick([0, 1, -1, 31, -32]) : this.random.int(-32, 31);
  }
  private nonZero6(): number {
    return this.random.pick([1, -1, 31, -32, this.random.int(1, 31), -this.random.int(1, 32)]);
  }
  private shamt(): number {
    return this.random.pick([1, 31, this.random.int(1, 31)]);
  }

  /** One instruction that computes: no memory, no control flow. */
  alu(): string {
    const random = this.random;
    switch (random.int(0, 12)) {
      case 0: return `c.addi ${this.rd()}, ${this.nonZero6()}`;
      case 1: return `c.li ${this.rd()}, ${this.imm6()}`;
      case 2: {
        const rd = `x${random.pick(writable.filter((r) => r !== 2))}`;
        return `c.lui ${rd}, ${hex(random.chance(0.5) ? random.int(1, 31) : random.int(0xfffe0, 0xfffff))}`;
      }
      case 3: return `c.addi16sp sp, ${16 * random.pick([1, -1, 31, -32, random.int(1, 31)])}`;
      case 4: return `c.addi4spn ${this.rdPrime()}, sp, ${4 * random.pick([1, 255, random.int(1, 255)])}`;
      case 5: return `c.slli ${this.rd()}, ${this.shamt()}`;
      case 6: return `c.srli ${this.rdPrime()}, ${this.shamt()}`;
      case 7: return `c.srai ${this.rdPrime()}, ${this.shamt()}`;
      case 8: return `c.andi ${this.rdPrime()}, ${this.imm6()}`;
      case 9: return `c.mv ${this.rd()}, ${this.rs()}`;
      case 10: return `c.add ${this.rd()}, ${this.rs()}`;
      case 11: return `c.${random.pick(['sub', 'xor', 'or', 'and'])} ${this.rdPrime()}, ${this.rsPrime()}`;
      default: return 'c.nop';
    }
  }

  /** A few lines: one compressed instruction, or a jump or branch with what it skips and its label (a line ending in ':'). */
  any(): string[] {
    const random = this.random;
    const skipped = (): string[] => Array.from({ length: random.int(0, 3) }, () => this.alu());
    switch (random.int(0, 9)) {
      case 4: {
        const offset = 4 * random.int(0, 31);
        return [random.chance(0.5) ? `c.lw ${this.rdPrime()}, ${offset}(x8)` : `c.sw ${this.rsPrime()}, ${offset}(x8)`];
      }
      case 5: {
        // sp (random) first points into the data area.
        const offset = 4 * random.int(0, 63);
        const access = random.chance(0.5) ? `c.lwsp ${this.rd()}, ${offset}(sp)` : `c.swsp x${random.int(0, 31)}, ${offset}(sp)`;
        return [`addi sp, x8, ${4 * random.int(0, (2048 - 256) / 4)}`, access];
      }
      case 6: {
        const label = this.newLabel();
        return [`${random.pick(['c.j', 'c.jal'])} ${label}`, ...skipped(), `${label}:`];
      }
      case 7: {
        const label = this.newLabel();
        return [`${random.pick(['c.beqz', 'c.bnez'])} ${this.rsPrime()}, ${label}`, ...skipped(), `${label}:`];
      }
      case 8: {
        const label = this.newLabel();
        const target = this.rd();
        return [`la ${target}, ${label}`, `${random.pick(['c.jr', 'c.jalr'])} ${target}`, ...skipped(), `${label}:`];
      }
      case 9:
        return [random.chance(0.3) ? 'c.ebreak' : 'c.nop'];
      default:
        return [this.alu()];
    }
  }

  /** A random 16-bit word that computes or is illegal (reserved); not the F and D loads and stores (float-fuzz.ts). */
  randomHalf(): string {
    for (;;) {
      const half = this.random.int(0, 0xffff);
      if ((half & 3) === 3) continue;
      const decoded = decode(half);
      if (safeHalfOps.has(decoded.op) && decoded.rd !== 8 && decoded.rd !== 9) return `.half ${hex(half)}`;
    }
  }
}

/** An offset into the data area for an access of this size: mostly aligned, sometimes not. */
function dataOffset(random: Prng, size: number): number {
  if (size === 1 || random.chance(0.85)) return random.int(0, dataBytes / size - 1) * size;
  return random.int(0, dataBytes - size);
}

/**
 * The fixed part: the trap handler (counts traps, hashes mcause, mtval and mepc, resumes after
 * the trapping instruction), the dump (registers, data checksum, traps, minstret to the UART)
 * and the data area's filler. Register save area and trap state live just below the data.
 */
const harness = String.raw`
# Harness state below the data: -44(x8) the root page table's address, -40(x8) the
# second-level table's (the alias window), -36(x8) satp, -32(x8) the data page's PPN << 10,
# -48(x8) where the straddling code's caller continues,
# -28(x8) the block's exit and -24(x8) its end (its final ECALL), -20(x8) minstret at the
# block's start (QEMU runs a few instructions of its reset vector first), -16(x8) the block's
# number, -12(x8) the instructions the block retired, -8(x8) the trap count, -4(x8) the trap
# hash; registers saved at -256(x8) + 4*n.
.balign 4
trap:
  csrw mscratch, x10
  # At the block's end: back to M-mode code, to the block's exit, with MPRV clear.
  csrr x9, mepc
  lw x10, -24(x8)
  bne x9, x10, 1f
  li x10, 0x20000
  csrc mstatus, x10
  csrr x10, mscratch
  lw x9, -28(x8)
  jr x9
1:
  lw x9, -8(x8)
  addi x9, x9, 1
  sw x9, -8(x8)
  lw x10, -4(x8)
  slli x9, x10, 5
  add x10, x10, x9
  csrr x9, mcause
  xor x10, x10, x9
  slli x9, x10, 5
  add x10, x10, x9
  csrr x9, mtval
  xor x10, x10, x9
  slli x9, x10, 5
  add x10, x10, x9
  csrr x9, mepc
  xor x10, x10, x9
  sw x10, -4(x8)
  # Resume after the trapping instruction, 2 or 4 bytes on as its low bits say (the code is
  # identity-mapped: M-mode reads it at mepc); after a fetch fault (in the straddling code's
  # second page) where the straddling code's caller continues.
  csrr x9, mcause
  addi x9, x9, -1
  beqz x9, 3f
  addi x9, x9, -11
  beqz x9, 3f
  csrr x9, mepc
  lhu x10, 0(x9)
  andi x10, x10, 3
  addi x9, x9, 2
  addi x10, x10, -3
  bnez x10, 2f
  addi x9, x9, 2
2:
  csrw mepc, x9
  # x9 (which the code after an LR may use as an SC's address) is left 4-aligned: QEMU 7.2
  # lets a misaligned SC without a reservation fail quietly (guests/tests/README.md).
  andi x9, x9, -4
  csrr x10, mscratch
  mret
3:
  lw x9, ${straddleReturnOffset}(x8)
  j 2b

# dump: entered with jal x9, the block's number at -16(x8). Prints "block N", then x1..x31
# (x8 and x9 are the harness's: not printed), the data checksum, the traps and minstret;
# refills the data area for the next block, clears the trap state and returns through x9.
dump:
  sw x10, -256+4*10(x8)
  csrr x10, minstret
  sw x9, -256+4*9(x8)
  lw x9, -20(x8)
  sub x10, x10, x9
  sw x10, -12(x8)
  .irp r, 1,2,3,4,5,6,7,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
  sw x\r, -256+4*\r(x8)
  .endr
  la a0, text_block
  call puts
  lw a0, -16(x8)
  call puthex
  call newline
  li s2, 1
1:
  li t0, 8
  beq s2, t0, 2f
  li t0, 9
  beq s2, t0, 2f
  li a0, 'x'
  call putc
  mv a0, s2
  call putdec
  li a0, '='
  call putc
  slli t0, s2, 2
  add t0, t0, x8
  lw a0, -256(t0)
  call puthex
  call newline
2:
  addi s2, s2, 1
  li t0, 32
  bne s2, t0, 1b
  # mstatus.SD and FS as the block left them, then (FS on) fcsr and f0..f31.
  la a0, text_fs
  call puts
  csrr a0, mstatus
  li t0, 0x80006000
  and a0, a0, t0
  call puthex
  call newline
  li t0, 0x6000
  csrs mstatus, t0
  la a0, text_fcsr
  call puts
  csrr a0, fcsr
  call puthex
  call newline
  la s3, fsave
  .irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
  fsd f\r, 8*\r(s3)
  .endr
  li s2, 0
5:
  li a0, 'f'
  call putc
  mv a0, s2
  call putdec
  li a0, '='
  call putc
  la s3, fsave
  slli t0, s2, 3
  add s3, s3, t0
  lw a0, 4(s3)
  call puthex
  lw a0, 0(s3)
  call putspace
  call newline
  addi s2, s2, 1
  li t0, 32
  bne s2, t0, 5b
  # data checksum: h = h * 33 + word, over the 512 words
  li t0, 0
  mv t1, x8
  addi t2, x8, 2047
  addi t2, t2, 1
3:
  lw t3, 0(t1)
  slli t4, t0, 5
  add t0, t0, t4
  add t0, t0, t3
  addi t1, t1, 4
  bne t1, t2, 3b
  mv s3, t0
  la a0, text_data
  call puts
  mv a0, s3
  call puthex
  call newline
  la a0, text_traps
  call puts
  lw a0, -8(x8)
  call puthex
  li a0, ' '
  call putc
  lw a0, -4(x8)
  call puthex
  call newline
  # The page-table entries the blocks use (the walks set A and D bits): root[256] (to the
  # alias window's table), root[512] (the superpage), then the alias window's eight.
  la a0, text_pt
  call puts
  lw s3, -44(x8)
  lw a0, 1024(s3)
  call puthex
  addi s3, s3, 2047
  lw a0, 1(s3)
  call putspace
  lw s3, -40(x8)
  addi s2, s3, 32
4:
  lw a0, 0(s3)
  call putspace
  addi s3, s3, 4
  bne s3, s2, 4b
  # ... and the straddling code's two pages (entries 16 and 17).
  lw a0, 32(s3)
  call putspace
  lw a0, 36(s3)
  call putspace
  call newline
  la a0, text_minstret
  call puts
  lw a0, -12(x8)
  call puthex
  call newline
  lw a0, -16(x8)
  addi a0, a0, 1
  call fill
  lw x9, -256+4*9(x8)
  jr x9

# fill: a0 = seed. data[i] = lcg(...), 512 words.
fill:
  li t0, 1664525
  li t1, 1013904223
  mv t2, x8
  addi t3, x8, 2047
  addi t3, t3, 1
  mul a0, a0, t0
  add a0, a0, t1
1:
  mul a0, a0, t0
  add a0, a0, t1
  sw a0, 0(t2)
  addi t2, t2, 4
  bne t2, t3, 1b
  sw x0, -8(x8)
  sw x0, -4(x8)
  ret

# UART (NS16550A at 0x1000_0000): wait for THRE, then write.
putc:
  li t5, 0x10000000
1:
  lbu t6, 5(t5)
  andi t6, t6, 0x20
  beqz t6, 1b
  sb a0, 0(t5)
  ret

puts:
  mv s4, ra
  mv s5, a0
1:
  lbu a0, 0(s5)
  beqz a0, 2f
  call putc
  addi s5, s5, 1
  j 1b
2:
  mv ra, s4
  ret

# putspace: a space, then puthex.
putspace:
  mv s7, ra
  mv s8, a0
  li a0, ' '
  call putc
  mv a0, s8
  call puthex
  mv ra, s7
  ret

newline:
  mv s4, ra
  li a0, '\n'
  call putc
  mv ra, s4
  ret

# puthex: eight hex digits of a0.
puthex:
  mv s4, ra
  mv s5, a0
  li s6, 28
1:
  srl a0, s5, s6
  andi a0, a0, 15
  li t0, 10
  blt a0, t0, 2f
  addi a0, a0, 'a' - 10
  j 3f
2:
  addi a0, a0, '0'
3:
  call putc
  addi s6, s6, -4
  bgez s6, 1b
  mv ra, s4
  ret

# putdec: a0 in 0..99.
putdec:
  mv s4, ra
  mv s5, a0
  li t0, 10
  blt s5, t0, 1f
  divu a0, s5, t0
  addi a0, a0, '0'
  call putc
  li t0, 10
  remu s5, s5, t0
1:
  addi a0, s5, '0'
  call putc
  mv ra, s4
  ret

.section .rodata
text_block: .asciz "block "
text_data: .asciz "data="
text_traps: .asciz "traps="
text_minstret: .asciz "minstret="
text_pt: .asciz "pt="
text_fs: .asciz "mstatus.SD/FS="
text_fcsr: .asciz "fcsr="

.section .bss
.balign 4096
  .space 256
data:
  .space 2048
.balign 4096
root:
  .space 4096
l2:
  .space 4096
.balign 8
fsave:
  .space 256
`;
