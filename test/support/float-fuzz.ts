/**
 * The ISA fuzzer's F and D part (isa-fuzz.ts calls it): random F and D instructions on
 * registers that hold edge values (zeros, subnormals, infinities, quiet and signalling NaNs,
 * ties, values at the integer conversions' limits, singles not NaN-boxed), with every
 * rounding mode (static, DYN, and now and then a reserved one, which traps), loads and
 * stores aligned and not, the compressed forms, and fcsr accesses.
 *
 * Instructions are emitted as `.word`/`.half` built by the project's encoder (with the
 * mnemonic in a comment), so that the assembler's choices (its default rm, which exact
 * conversions take one) do not matter. Like the rest of the fuzzer, nothing writes x8 or x9
 * and memory is reached only through the data area (x8) and the alias window.
 */
import type { Prng } from '../../src/simulator/prng.js';
import { cfasm, fasm, rmDynamic } from '../../src/machine/cpu/encode.js';

/** fflags, frm, fcsr: CSRs that exist only while FS is not Off. */
export const fpCsrs = [0x001, 0x002, 0x003];

const hex = (value: number): string => `0x${(value >>> 0).toString(16)}`;
const dataBytes = 2048;

const singleEdges = [
  0x0000_0000, 0x8000_0000, 0x3f80_0000, 0xbf80_0000, 0x7f80_0000, 0xff80_0000, 0x7fc0_0000, 0xffc0_0001, 0x7f80_0001,
  0x7fa0_0000, 0x0000_0001, 0x807f_ffff, 0x0080_0000, 0x8080_0000, 0x7f7f_ffff, 0xff7f_ffff, 0x3f00_0000, 0x4040_0000,
  0x4f00_0000, 0xcf00_0000, 0x4f80_0000, 0x3eaa_aaab, 0x3400_0000, 0x4b00_0000, 0x3fc0_0000, 0x4020_0000, 0xbfc0_0000,
  0x3f80_0001, 0x0040_0000, 0x4effffff, 0xcf000001, 0x5f80_0000,
];
/** Doubles as [high, low]. */
const doubleEdges: [number, number][] = [
  [0, 0], [0x8000_0000, 0], [0x3ff0_0000, 0], [0xbff0_0000, 0], [0x7ff0_0000, 0], [0xfff0_0000, 0], [0x7ff8_0000, 0],
  [0x7ff0_0000, 1], [0xfff4_0000, 0], [0, 1], [0x800f_ffff, 0xffff_ffff], [0x0010_0000, 0], [0x7fef_ffff, 0xffff_ffff],
  [0xffef_ffff, 0xffff_ffff], [0x3fe0_0000, 0], [0x4008_0000, 0], [0x41e0_0000, 0], [0xc1e0_0000, 0], [0x41df_ffff, 0xffc0_0000],
  [0xc1e0_0000, 0x0010_0000], [0x41f0_0000, 0], [0x41ef_ffff, 0xffe0_0000], [0x3ff8_0000, 0], [0x4004_0000, 0],
  [0x3fd5_5555, 0x5555_5555], [0x3ff0_0000, 1], [0x47ef_ffff, 0xe000_0000], [0x47ef_ffff, 0xf000_0000], [0x36a0_0000, 0],
  [0x3690_0000, 0], [0x3800_0000, 0], [0x4340_0000, 0], [0x4330_0000, 1],
];
const roundingModes = [0, 1, 2, 3, 4, rmDynamic, rmDynamic, rmDynamic];
const roundingNames = ['rne', 'rtz', 'rdn', 'rup', 'rmm', 'rm5', 'rm6', 'dyn'];

/**
 * A `.rodata` table of 32 doubles for f0..f31 (each 8-aligned): NaN-boxed singles, doubles
 * and now and then 64 random bits (a single read from those is the canonical NaN).
 */
export function floatRegisterTable(random: Prng, label: string): string {
  const words: number[] = [];
  for (let r = 0; r < 32; r++) {
    const kind = random.int(0, 19);
    if (kind < 9) words.push(random.chance(0.85) ? random.pick(singleEdges) : random.next(), 0xffff_ffff);
    else if (kind < 18) {
      const [high, low] = random.chance(0.85) ? random.pick(doubleEdges) : [random.next(), random.next()];
      words.push(low, high);
    } else words.push(random.next(), random.next());
  }
  return `${label}:\n  .word ${words.map(hex).join(', ')}`;
}

export class FloatGenerator {
  constructor(
    private readonly random: Prng,
    /** An x register random code may write. */
    private readonly xd: () => string,
    /** Any x register, to read. */
    private readonly xs: () => string,
  ) {}

  /** fcsr at a block's start: a valid frm mostly, a reserved one (DYN then traps) sometimes. */
  initialFcsr(): number {
    const frm = this.random.chance(0.9) ? this.random.int(0, 4) : this.random.int(5, 7);
    return (frm << 5) | this.random.int(0, 31);
  }

  private f(): number {
    return this.random.int(0, 31);
  }
  private x(text: string): number {
    return Number(text.slice(1));
  }
  /** A rounding mode field: static, DYN, and rarely 5 or 6 (illegal). */
  private rm(): number {
    return this.random.chance(0.03) ? this.random.int(5, 6) : this.random.pick(roundingModes);
  }
  private word(bits: number, text: string): string {
    return `.word ${hex(bits)} # ${text}`;
  }

  /**
   * One F or D instruction, or a few lines that make one (an address set up in x9 first).
   * `aliasAddress`, in S and U blocks, gives an address in the alias window for an access of
   * `size` bytes (page faults with the address in tval).
   */
  any(aliasAddress?: (size: number) => string, onlyFlagsAvoided = false): string[] {
    const random = this.random;
    const fmt = random.int(0, 1);
    const suffix = fmt === 0 ? 's' : 'd';
    const [rd, rs1, rs2, rs3] = [this.f(), this.f(), this.f(), this.f()];
    let kind = random.int(0, 99);
    // With FS Initial or Clean, no instruction that may change fflags and nothing else (feq,
    // flt, fle, fcvt.w[u]): QEMU 7.2 leaves FS alone there, the spec makes it Dirty. fclass
    // and fmv.x.w take their place (they change nothing of the FPU: FS stays).
    if (onlyFlagsAvoided && kind >= 50 && kind < 62) kind = random.chance(0.5) ? 71 : 55;
    if (onlyFlagsAvoided && kind === 55) {
      const xd = this.xd();
      return [this.word(fasm.fclass(fmt, this.x(xd), rs1), `fclass.${suffix} ${xd}, f${rs1}`)];
    }
    if (onlyFlagsAvoided && kind === 71) {
      const xd = this.xd();
      return [this.word(fasm.fmvXW(this.x(xd), rs1), `fmv.x.w ${xd}, f${rs1}`)];
    }
    if (kind < 30) {
      const rm = this.rm();
      const ops = [fasm.fadd, fasm.fsub, fasm.fmul, fasm.fdiv] as const;
      const which = random.int(0, 3);
      return [this.word(ops[which]!(fmt, rd, rs1, rs2, rm), `${['fadd', 'fsub', 'fmul', 'fdiv'][which]}.${suffix} f${rd}, f${rs1}, f${rs2}, ${roundingNames[rm]}`)];
    }
    if (kind < 34) {
      const rm = this.rm();
      return [this.word(fasm.fsqrt(fmt, rd, rs1, rm), `fsqrt.${suffix} f${rd}, f${rs1}, ${roundingNames[rm]}`)];
    }
    if (kind < 44) {
      const rm = this.rm();
      const ops = [fasm.fmadd, fasm.fmsub, fasm.fnmsub, fasm.fnmadd] as const;
      const which = random.int(0, 3);
      return [this.word(ops[which]!(fmt, rd, rs1, rs2, rs3, rm), `${['fmadd', 'fmsub', 'fnmsub', 'fnmadd'][which]}.${suffix} f${rd}, f${rs1}, f${rs2}, f${rs3}, ${roundingNames[rm]}`)];
    }
    if (kind < 50) {
      const ops = [fasm.fsgnj, fasm.fsgnjn, fasm.fsgnjx, fasm.fmin, fasm.fmax] as const;
      const which = random.int(0, 4);
      return [this.word(ops[which]!(fmt, rd, rs1, rs2), `${['fsgnj', 'fsgnjn', 'fsgnjx', 'fmin', 'fmax'][which]}.${suffix} f${rd}, f${rs1}, f${rs2}`)];
    }
    if (kind < 56) {
      const xd = this.xd();
      const ops = [fasm.feq, fasm.flt, fasm.fle] as const;
      const which = random.int(0, 3);
      const bits = which === 3 ? fasm.fclass(fmt, this.x(xd), rs1) : ops[which]!(fmt, this.x(xd), rs1, rs2);
      return [this.word(bits, `${['feq', 'flt', 'fle', 'fclass'][which]}.${suffix} ${xd}, f${rs1}, f${rs2}`)];
    }
    if (kind < 62) {
      const xd = this.xd();
      const rm = this.rm();
      const unsigned = random.int(0, 1);
      return [this.word(fasm.fcvtToInteger(fmt, this.x(xd), rs1, unsigned, rm), `fcvt.w${unsigned ? 'u' : ''}.${suffix} ${xd}, f${rs1}, ${roundingNames[rm]}`)];
    }
    if (kind < 67) {
      const xs = this.xs();
      const rm = this.rm();
      const unsigned = random.int(0, 1);
      return [this.word(fasm.fcvtFromInteger(fmt, rd, this.x(xs), unsigned, rm), `fcvt.${suffix}.w${unsigned ? 'u' : ''} f${rd}, ${xs}, ${roundingNames[rm]}`)];
    }
    if (kind < 71) {
      const rm = this.rm();
      return [this.word(fasm.fcvtFormat(fmt, rd, rs1, rm), `fcvt.${suffix}.${fmt === 0 ? 'd' : 's'} f${rd}, f${rs1}, ${roundingNames[rm]}`)];
    }
    if (kind < 75) {
      if (random.chance(0.5)) {
        const xd = this.xd();
        return [this.word(fasm.fmvXW(this.x(xd), rs1), `fmv.x.w ${xd}, f${rs1}`)];
      }
      const xs = this.xs();
      return [this.word(fasm.fmvWX(rd, this.x(xs)), `fmv.w.x f${rd}, ${xs}`)];
    }
    if (kind < 87) return this.memory(fmt, rd, aliasAddress);
    if (kind < 95) return this.compressed();
    return this.csr(onlyFlagsAvoided);
  }

  /** FLW, FLD, FSW, FSD in the data area (aligned mostly, misaligned sometimes) or the alias window. */
  private memory(fmt: number, reg: number, aliasAddress?: (size: number) => string): string[] {
    const random = this.random;
    const size = fmt === 0 ? 4 : 8;
    const store = random.chance(0.5);
    const name = `${store ? 'fs' : 'fl'}${fmt === 0 ? 'w' : 'd'}`;
    const encode = store ? (fmt === 0 ? fasm.fsw : fasm.fsd) : fmt === 0 ? fasm.flw : fasm.fld;
    if (aliasAddress !== undefined && random.chance(0.3)) {
      return [`li x9, ${aliasAddress(size)}`, this.word(encode(reg, 9, 0), `${name} f${reg}, 0(x9)`)];
    }
    const offset = random.chance(0.8) ? random.int(0, dataBytes / size - 1) * size : random.int(0, dataBytes - size);
    return [this.word(encode(reg, 8, offset), `${name} f${reg}, ${offset}(x8)`)];
  }

  /** The compressed loads and stores: through x8 (C.FLD...), or sp pointed into the data area first. */
  private compressed(): string[] {
    const random = this.random;
    const double = random.chance(0.5);
    const store = random.chance(0.5);
    const name = `c.${store ? 'fs' : 'fl'}${double ? 'd' : 'w'}`;
    if (random.chance(0.5)) {
      const reg = random.int(8, 15);
      const offset = double ? 8 * random.int(0, 31) : 4 * random.int(0, 31);
      const encode = double ? (store ? cfasm.fsd : cfasm.fld) : store ? cfasm.fsw : cfasm.flw;
      return [`.half ${hex(encode(reg, 8, offset))} # ${name} f${reg}, ${offset}(x8)`];
    }
    // The SP forms reach 504 (D) or 252 (W) bytes: sp first points low enough in the data.
    const reg = this.f();
    const offset = double ? 8 * random.int(0, 63) : 4 * random.int(0, 63);
    const encode = double ? (store ? cfasm.fsdsp : cfasm.fldsp) : store ? cfasm.fswsp : cfasm.flwsp;
    return [`addi sp, x8, ${8 * random.int(0, (dataBytes - 512) / 8)}`, `.half ${hex(encode(reg, offset))} # ${name}sp f${reg}, ${offset}(sp)`];
  }

  /**
   * fflags, frm, fcsr: reads, writes, set and clear, immediate forms; frm now and then
   * reserved. With FS Initial or Clean (`fsKept`) not CSRRS/CSRRC with a register: QEMU 7.2
   * skips the write (and so FS Dirty) when the register holds 0, where the spec writes.
   */
  private csr(fsKept: boolean): string[] {
    const random = this.random;
    const csr = random.pick(['fflags', 'frm', 'fcsr']);
    const op = random.pick(fsKept ? ['csrrw', 'csrrwi', 'csrrsi', 'csrrci'] : ['csrrw', 'csrrs', 'csrrc', 'csrrwi', 'csrrsi', 'csrrci']);
    if (op.endsWith('i')) {
      const immediate = csr === 'frm' && random.chance(0.8) ? random.int(0, 4) : random.int(0, 31);
      return [`${op} ${this.xd()}, ${csr}, ${immediate}`];
    }
    return [`${op} ${this.xd()}, ${csr}, ${this.xs()}`];
  }
}
