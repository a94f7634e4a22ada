/* The F and D extensions (unprivileged spec, chapters 11 and 12; privileged spec 3.1.6.6
 * for mstatus.FS), built with -march=rv32imafdc: every operation is written in assembly
 * on bit patterns (singles as uint32_t, doubles as uint64_t in memory), so the compiler
 * never emits an FP instruction of its own while FS is Off.
 *
 * Checked: FS = Off at reset and with it every FP instruction (32- and 16-bit) and the
 * fcsr CSRs trapping as illegal with mtval = the instruction bits; FS becoming Dirty on
 * writes of f registers and of fcsr but not on stores, moves to x registers or reads, SD
 * following FS in mstatus and sstatus; each instruction class on edge values with the
 * exact result and fflags; static and dynamic rounding, reserved rounding modes trapping;
 * NaN-boxing; FLD/FSD aligned, misaligned and across a page, faulting with mtval = the
 * address; the compressed loads and stores at their largest offsets.
 *
 * Not checked (QEMU 7.2 differs from the spec): FS after an instruction that only raises
 * flags (feq, flt, fle, fcvt.w) from Initial or Clean: QEMU leaves FS alone. */
#include "runtime.h"

#define MSTATUS_FS (3u << 13)
#define MSTATUS_SD (1u << 31)
#define FS_OFF 0u
#define FS_INITIAL 1u
#define FS_CLEAN 2u
#define FS_DIRTY 3u

#define NV 0x10u
#define DZ 0x08u
#define OF 0x04u
#define UF 0x02u
#define NX 0x01u

static void set_fs(uint32_t fs) {
    csr_clear(mstatus, MSTATUS_FS);
    csr_set(mstatus, fs << 13);
}
static uint32_t get_fs(void) { return (csr_read(mstatus) >> 13) & 3; }

/* ---------------------------------------------------------------- FS = Off */

ASM_STUB(off_fadd, "", "fadd.s ft0, ft1, ft2");
ASM_STUB(off_fmadd_d, "", "fmadd.d ft0, ft1, ft2, ft3");
ASM_STUB(off_flw, "", "flw ft0, 0(a0)");
ASM_STUB(off_fsd, "", "fsd ft0, 0(a0)");
ASM_STUB(off_fmv_x_w, "", "fmv.x.w a0, ft0");
ASM_STUB(off_fmv_w_x, "", "fmv.w.x ft0, a0");
ASM_STUB(off_fcsr, "", "csrr a0, fcsr");
ASM_STUB(off_frm_write, "", "csrw frm, a0");
ASM_STUB(off_c_fld, "", ".option rvc\nc.fld fa0, 0(a0)\nc.nop");
ASM_STUB(off_c_fswsp, "", ".option rvc\nc.fswsp fa0, 0(sp)\nc.nop");

static uint64_t scratch[4] __attribute__((aligned(8)));

static void expect_illegal(const char *what, uint32_t (*stub)(uint32_t), const uint32_t *at, int compressed) {
    rt_clear_notes();
    stub((uint32_t)(uintptr_t)scratch);
    uint32_t bits = compressed ? (*(const uint16_t *)at) : *at;
    rt_expect(what, "traps", rt_mnote.count, 1);
    rt_expect(what, "mcause", rt_mnote.cause, CAUSE_ILLEGAL);
    rt_expect(what, "mtval", rt_mnote.tval, bits);
}
#define EXPECT_ILLEGAL(name, compressed) expect_illegal(#name, name, name##_at, compressed)

static void test_fs_off(void) {
    rt_printf("FS at reset: %u\n", get_fs());
    CHECK_EQ(get_fs(), FS_OFF);
    CHECK_EQ(csr_read(mstatus) & MSTATUS_SD, 0);
    rt_note_mtraps();
    EXPECT_ILLEGAL(off_fadd, 0);
    EXPECT_ILLEGAL(off_fmadd_d, 0);
    EXPECT_ILLEGAL(off_flw, 0);
    EXPECT_ILLEGAL(off_fsd, 0);
    EXPECT_ILLEGAL(off_fmv_x_w, 0);
    EXPECT_ILLEGAL(off_fmv_w_x, 0);
    EXPECT_ILLEGAL(off_fcsr, 0);
    EXPECT_ILLEGAL(off_frm_write, 0);
    EXPECT_ILLEGAL(off_c_fld, 1);
    EXPECT_ILLEGAL(off_c_fswsp, 1);
    CHECK_EQ(get_fs(), FS_OFF); /* nothing turned it on */
    rt_set_trap_hook(0);
}

/* ---------------------------------------------------------------- FS tracking */

static void test_fs_tracking(void) {
    uint32_t v;
    /* A write of an f register: Initial -> Dirty, and SD follows. */
    set_fs(FS_INITIAL);
    CHECK_EQ(csr_read(mstatus) & MSTATUS_SD, 0);
    __asm__ volatile("fmv.w.x ft0, %0" ::"r"(0x3f800000u));
    CHECK_EQ(get_fs(), FS_DIRTY);
    CHECK_EQ(csr_read(mstatus) & MSTATUS_SD, MSTATUS_SD);
    CHECK_EQ(csr_read(sstatus) & MSTATUS_SD, MSTATUS_SD);
    CHECK_EQ((csr_read(sstatus) >> 13) & 3, FS_DIRTY);
    /* Stores, moves to x registers, quiet compares and CSR reads leave Clean alone. */
    set_fs(FS_CLEAN);
    CHECK_EQ(csr_read(mstatus) & MSTATUS_SD, 0);
    CHECK_EQ(csr_read(sstatus) & MSTATUS_SD, 0);
    __asm__ volatile("fsw ft0, 0(%0)" ::"r"(scratch) : "memory");
    __asm__ volatile("fsd ft0, 8(%0)" ::"r"(scratch) : "memory");
    __asm__ volatile("fmv.x.w %0, ft0" : "=r"(v));
    CHECK_EQ(v, 0x3f800000u);
    __asm__ volatile("feq.s %0, ft0, ft0" : "=r"(v));
    CHECK_EQ(v, 1);
    __asm__ volatile("fclass.s %0, ft0" : "=r"(v));
    CHECK_EQ(v, 0x40);
    v = csr_read(fcsr);
    v = csr_read(frm);
    CHECK_EQ(get_fs(), FS_CLEAN);
    /* Loads write f registers; CSR writes change fcsr. */
    __asm__ volatile("flw ft1, 0(%0)" ::"r"(scratch));
    CHECK_EQ(get_fs(), FS_DIRTY);
    set_fs(FS_CLEAN);
    csr_write(frm, 0);
    CHECK_EQ(get_fs(), FS_DIRTY);
    set_fs(FS_CLEAN);
    csr_write(fflags, 0);
    CHECK_EQ(get_fs(), FS_DIRTY);
    set_fs(FS_CLEAN);
    __asm__ volatile("fld ft2, 8(%0)" ::"r"(scratch));
    CHECK_EQ(get_fs(), FS_DIRTY);
    /* An arithmetic result. */
    set_fs(FS_INITIAL);
    __asm__ volatile("fadd.s ft3, ft0, ft0");
    CHECK_EQ(get_fs(), FS_DIRTY);
    /* mstatus writes of FS and SD: SD is read-only, computed. */
    csr_write(mstatus, (csr_read(mstatus) & ~MSTATUS_FS) | MSTATUS_SD | (FS_CLEAN << 13));
    CHECK_EQ(csr_read(mstatus) & MSTATUS_SD, 0);
    set_fs(FS_DIRTY);
}

/* ---------------------------------------------------------------- fcsr */

ASM_STUB(rm5_fadd, "", ".word 0x0020d053"); /* fadd.s ft0, ft1, ft2 with rm = 5 */
ASM_STUB(rm6_fmul_d, "", ".word 0x1220e053"); /* fmul.d ft0, ft1, ft2 with rm = 6 */
ASM_STUB(dyn_fadd, "", "fadd.s ft0, ft1, ft2, dyn");
ASM_STUB(dyn_fcvt_d_w, "", ".word 0xd2057053"); /* fcvt.d.w ft0, a0 with rm = DYN */
ASM_STUB(rne_fadd, "", "fadd.s ft0, ft1, ft2, rne");

static void test_fcsr(void) {
    csr_write(fcsr, 0xffffffffu);
    CHECK_EQ(csr_read(fcsr), 0xff);
    CHECK_EQ(csr_read(fflags), 0x1f);
    CHECK_EQ(csr_read(frm), 7);
    csr_write(frm, 0xfffffffau);
    CHECK_EQ(csr_read(frm), 2);
    CHECK_EQ(csr_read(fcsr), 0x5f);
    csr_write(fflags, 0x23);
    CHECK_EQ(csr_read(fcsr), 0x43);
    CHECK_EQ(csr_swap(fcsr, 0), 0x43);
    CHECK_EQ(csr_read(fcsr), 0);

    /* Reserved modes: rm = 5 and 6 always; DYN when frm is 5, 6 or 7. Not retired, no flags. */
    rt_note_mtraps();
    expect_illegal("rm=5", rm5_fadd, rm5_fadd_at, 0);
    expect_illegal("rm=6", rm6_fmul_d, rm6_fmul_d_at, 0);
    for (uint32_t mode = 5; mode <= 7; mode++) {
        csr_write(frm, mode);
        expect_illegal("dyn with a reserved frm", dyn_fadd, dyn_fadd_at, 0);
        expect_illegal("fcvt.d.w dyn with a reserved frm", dyn_fcvt_d_w, dyn_fcvt_d_w_at, 0);
        rt_clear_notes();
        rne_fadd(0); /* a static mode is fine */
        CHECK_EQ(rt_mnote.count, 0);
    }
    csr_write(frm, 0);
    CHECK_EQ(csr_read(fflags), 0);
    rt_set_trap_hook(0);
}

/* ---------------------------------------------------------------- singles */

/* One instruction on singles: operands moved in with fmv.w.x (NaN-boxed), the result out
 * with fmv.x.w (or the x register), fflags cleared before and returned in *flags. */
#define S2(insn, a, b, flags)                                                                           \
    ({                                                                                                  \
        uint32_t r_;                                                                                    \
        csr_write(fflags, 0);                                                                           \
        __asm__ volatile("fmv.w.x ft1, %1\nfmv.w.x ft2, %2\n" insn " ft0, ft1, ft2\nfmv.x.w %0, ft0"   \
                         : "=r"(r_) : "r"(a), "r"(b) : "ft0", "ft1", "ft2");                            \
        *(flags) = csr_read(fflags);                                                                    \
        r_;                                                                                             \
    })
#define S1(insn, a, flags)                                                                              \
    ({                                                                                                  \
        uint32_t r_;                                                                                    \
        csr_write(fflags, 0);                                                                           \
        __asm__ volatile("fmv.w.x ft1, %1\n" insn " ft0, ft1\nfmv.x.w %0, ft0" : "=r"(r_) : "r"(a) : "ft0", "ft1"); \
        *(flags) = csr_read(fflags);                                                                    \
        r_;                                                                                             \
    })
#define S3(insn, a, b, c, flags)                                                                        \
    ({                                                                                                  \
        uint32_t r_;                                                                                    \
        csr_write(fflags, 0);                                                                           \
        __asm__ volatile("fmv.w.x ft1, %1\nfmv.w.x ft2, %2\nfmv.w.x ft3, %3\n" insn " ft0, ft1, ft2, ft3\nfmv.x.w %0, ft0" \
                         : "=r"(r_) : "r"(a), "r"(b), "r"(c) : "ft0", "ft1", "ft2", "ft3");            \
        *(flags) = csr_read(fflags);                                                                    \
        r_;                                                                                             \
    })
/* To an x register. */
#define SX2(insn, a, b, flags)                                                                          \
    ({                                                                                                  \
        uint32_t r_;                                                                                    \
        csr_write(fflags, 0);                                                                           \
        __asm__ volatile("fmv.w.x ft1, %1\nfmv.w.x ft2, %2\n" insn " %0, ft1, ft2" : "=r"(r_) : "r"(a), "r"(b) : "ft1", "ft2"); \
        *(flags) = csr_read(fflags);                                                                    \
        r_;                                                                                             \
    })
#define SX1(insn, a, flags)                                                                             \
    ({                                                                                                  \
        uint32_t r_;                                                                                    \
        csr_write(fflags, 0);                                                                           \
        __asm__ volatile("fmv.w.x ft1, %1\n" insn " %0, ft1" : "=r"(r_) : "r"(a) : "ft1");              \
        *(flags) = csr_read(fflags);                                                                    \
        r_;                                                                                             \
    })
/* From an x register. */
#define XS1(insn, a, flags)                                                                             \
    ({                                                                                                  \
        uint32_t r_;                                                                                    \
        csr_write(fflags, 0);                                                                           \
        __asm__ volatile(insn " ft0, %1\nfmv.x.w %0, ft0" : "=r"(r_) : "r"(a) : "ft0");                \
        *(flags) = csr_read(fflags);                                                                    \
        r_;                                                                                             \
    })

static void expect(const char *what, uint32_t result, uint32_t flags, uint32_t want, uint32_t want_flags) {
    rt_expect(what, "result", result, want);
    rt_expect(what, "fflags", flags, want_flags);
}
#define EXPECT(what, call, want, want_flags)           \
    do {                                               \
        uint32_t fl_;                                  \
        uint32_t r_ = call;                            \
        expect(what, r_, fl_, want, want_flags);       \
    } while (0)

#define ONE 0x3f800000u
#define TWO 0x40000000u
#define THREE 0x40400000u
#define HALF 0x3f000000u
#define INF 0x7f800000u
#define NINF 0xff800000u
#define QNAN 0x7fc00000u
#define SNAN 0x7f800001u
#define MAXF 0x7f7fffffu
#define MINSUB 0x00000001u
#define NZERO 0x80000000u

static void test_singles(void) {
    EXPECT("fadd.s 1+2", S2("fadd.s", ONE, TWO, &fl_), THREE, 0);
    EXPECT("fadd.s max+max", S2("fadd.s", MAXF, MAXF, &fl_), INF, OF | NX);
    EXPECT("fsub.s inf-inf", S2("fsub.s", INF, INF, &fl_), QNAN, NV);
    EXPECT("fsub.s 1-1", S2("fsub.s", ONE, ONE, &fl_), 0, 0);
    EXPECT("fmul.s snan*1", S2("fmul.s", SNAN, ONE, &fl_), QNAN, NV);
    EXPECT("fmul.s qnan*1", S2("fmul.s", 0x7fc12345u, ONE, &fl_), QNAN, 0);
    EXPECT("fmul.s minsub*0.5", S2("fmul.s", MINSUB, HALF, &fl_), 0, UF | NX);
    EXPECT("fdiv.s 1/0", S2("fdiv.s", ONE, 0, &fl_), INF, DZ);
    EXPECT("fdiv.s 0/0", S2("fdiv.s", 0, 0, &fl_), QNAN, NV);
    EXPECT("fdiv.s 1/3", S2("fdiv.s", ONE, THREE, &fl_), 0x3eaaaaabu, NX);
    EXPECT("fsqrt.s 4", S1("fsqrt.s", 0x40800000u, &fl_), TWO, 0);
    EXPECT("fsqrt.s -1", S1("fsqrt.s", 0xbf800000u, &fl_), QNAN, NV);
    EXPECT("fsqrt.s -0", S1("fsqrt.s", NZERO, &fl_), NZERO, 0);
    EXPECT("fmadd.s 1*2+3", S3("fmadd.s", ONE, TWO, THREE, &fl_), 0x40a00000u, 0);
    EXPECT("fmsub.s 1*2-3", S3("fmsub.s", ONE, TWO, THREE, &fl_), 0xbf800000u, 0);
    EXPECT("fnmsub.s -(1*2)+3", S3("fnmsub.s", ONE, TWO, THREE, &fl_), ONE, 0);
    EXPECT("fnmadd.s -(1*2)-3", S3("fnmadd.s", ONE, TWO, THREE, &fl_), 0xc0a00000u, 0);
    EXPECT("fmadd.s inf*0+qnan", S3("fmadd.s", INF, 0, QNAN, &fl_), QNAN, NV);
    EXPECT("fmadd.s max*2-inf", S3("fmadd.s", MAXF, TWO, NINF, &fl_), NINF, 0);
    EXPECT("fmin.s -0,+0", S2("fmin.s", NZERO, 0, &fl_), NZERO, 0);
    EXPECT("fmax.s -0,+0", S2("fmax.s", NZERO, 0, &fl_), 0, 0);
    EXPECT("fmin.s qnan,1", S2("fmin.s", QNAN, ONE, &fl_), ONE, 0);
    EXPECT("fmax.s snan,1", S2("fmax.s", SNAN, ONE, &fl_), ONE, NV);
    EXPECT("fmin.s qnan,qnan", S2("fmin.s", 0x7fc00001u, 0xffc00000u, &fl_), QNAN, 0);
    EXPECT("fsgnj.s 1,-3", S2("fsgnj.s", ONE, 0xc0400000u, &fl_), 0xbf800000u, 0);
    EXPECT("fsgnjn.s 1,1", S2("fsgnjn.s", ONE, ONE, &fl_), 0xbf800000u, 0);
    EXPECT("fsgnjx.s -1,-1", S2("fsgnjx.s", 0xbf800000u, 0xbf800000u, &fl_), ONE, 0);
    EXPECT("fsgnj.s snan", S2("fsgnj.s", SNAN, ONE, &fl_), SNAN, 0); /* bit work: no NV */
    EXPECT("feq.s qnan,1", SX2("feq.s", QNAN, ONE, &fl_), 0, 0);
    EXPECT("feq.s snan,1", SX2("feq.s", SNAN, ONE, &fl_), 0, NV);
    EXPECT("feq.s -0,+0", SX2("feq.s", NZERO, 0, &fl_), 1, 0);
    EXPECT("flt.s qnan,1", SX2("flt.s", QNAN, ONE, &fl_), 0, NV);
    EXPECT("flt.s -0,+0", SX2("flt.s", NZERO, 0, &fl_), 0, 0);
    EXPECT("flt.s 1,2", SX2("flt.s", ONE, TWO, &fl_), 1, 0);
    EXPECT("fle.s 1,1", SX2("fle.s", ONE, ONE, &fl_), 1, 0);
    EXPECT("fle.s 2,1", SX2("fle.s", TWO, ONE, &fl_), 0, 0);
    static const uint32_t class_in[10] = {NINF, 0xbf800000u, 0x80000001u, NZERO, 0, MINSUB, ONE, INF, SNAN, QNAN};
    for (int i = 0; i < 10; i++) EXPECT("fclass.s", SX1("fclass.s", class_in[i], &fl_), 1u << i, 0);
    EXPECT("fcvt.w.s 1.5", SX1("fcvt.w.s", 0x3fc00000u, &fl_), 2, NX);
    EXPECT("fcvt.w.s 2.5", SX1("fcvt.w.s", 0x40200000u, &fl_), 2, NX);
    EXPECT("fcvt.w.s -1.5", SX1("fcvt.w.s", 0xbfc00000u, &fl_), 0xfffffffeu, NX);
    EXPECT("fcvt.w.s 3e9", SX1("fcvt.w.s", 0x4f32d05eu, &fl_), 0x7fffffffu, NV);
    EXPECT("fcvt.w.s -inf", SX1("fcvt.w.s", NINF, &fl_), 0x80000000u, NV);
    EXPECT("fcvt.w.s nan", SX1("fcvt.w.s", QNAN, &fl_), 0x7fffffffu, NV);
    EXPECT("fcvt.wu.s -1", SX1("fcvt.wu.s", 0xbf800000u, &fl_), 0, NV);
    EXPECT("fcvt.wu.s nan", SX1("fcvt.wu.s", QNAN, &fl_), 0xffffffffu, NV);
    EXPECT("fcvt.wu.s 2^31", SX1("fcvt.wu.s", 0x4f000000u, &fl_), 0x80000000u, 0);
    EXPECT("fcvt.s.w int_max", XS1("fcvt.s.w", 0x7fffffffu, &fl_), 0x4f000000u, NX);
    EXPECT("fcvt.s.w -1", XS1("fcvt.s.w", 0xffffffffu, &fl_), 0xbf800000u, 0);
    EXPECT("fcvt.s.wu uint_max", XS1("fcvt.s.wu", 0xffffffffu, &fl_), 0x4f800000u, NX);
    EXPECT("fmv.w.x/fmv.x.w snan", XS1("fmv.w.x", SNAN, &fl_), SNAN, 0);
}

/* ---------------------------------------------------------------- doubles */

static uint64_t da, db, dc, dr;
#define D2(insn, a, b, flags)                                                                 \
    ({                                                                                        \
        da = (a);                                                                             \
        db = (b);                                                                             \
        csr_write(fflags, 0);                                                                 \
        __asm__ volatile("fld ft1, %1\nfld ft2, %2\n" insn " ft0, ft1, ft2\nfsd ft0, %0"      \
                         : "=m"(dr) : "m"(da), "m"(db) : "ft0", "ft1", "ft2");                \
        *(flags) = csr_read(fflags);                                                          \
        dr;                                                                                   \
    })
#define D1(insn, a, flags)                                                                    \
    ({                                                                                        \
        da = (a);                                                                             \
        csr_write(fflags, 0);                                                                 \
        __asm__ volatile("fld ft1, %1\n" insn " ft0, ft1\nfsd ft0, %0" : "=m"(dr) : "m"(da) : "ft0", "ft1"); \
        *(flags) = csr_read(fflags);                                                          \
        dr;                                                                                   \
    })
#define D3(insn, a, b, c, flags)                                                              \
    ({                                                                                        \
        da = (a);                                                                             \
        db = (b);                                                                             \
        dc = (c);                                                                             \
        csr_write(fflags, 0);                                                                 \
        __asm__ volatile("fld ft1, %1\nfld ft2, %2\nfld ft3, %3\n" insn " ft0, ft1, ft2, ft3\nfsd ft0, %0" \
                         : "=m"(dr) : "m"(da), "m"(db), "m"(dc) : "ft0", "ft1", "ft2", "ft3");  \
        *(flags) = csr_read(fflags);                                                          \
        dr;                                                                                   \
    })
#define DX2(insn, a, b, flags)                                                                \
    ({                                                                                        \
        uint32_t r_;                                                                          \
        da = (a);                                                                             \
        db = (b);                                                                             \
        csr_write(fflags, 0);                                                                 \
        __asm__ volatile("fld ft1, %1\nfld ft2, %2\n" insn " %0, ft1, ft2" : "=r"(r_) : "m"(da), "m"(db) : "ft1", "ft2"); \
        *(flags) = csr_read(fflags);                                                          \
        r_;                                                                                   \
    })
#define DX1(insn, a, flags)                                                                   \
    ({                                                                                        \
        uint32_t r_;                                                                          \
        da = (a);                                                                             \
        csr_write(fflags, 0);                                                                 \
        __asm__ volatile("fld ft1, %1\n" insn " %0, ft1" : "=r"(r_) : "m"(da) : "ft1");       \
        *(flags) = csr_read(fflags);                                                          \
        r_;                                                                                   \
    })
#define XD1(insn, a, flags)                                                                   \
    ({                                                                                        \
        csr_write(fflags, 0);                                                                 \
        __asm__ volatile(insn " ft0, %1\nfsd ft0, %0" : "=m"(dr) : "r"(a) : "ft0");           \
        *(flags) = csr_read(fflags);                                                          \
        dr;                                                                                   \
    })

static void expect64(const char *what, uint64_t result, uint32_t flags, uint64_t want, uint32_t want_flags) {
    rt_expect(what, "result high", (uint32_t)(result >> 32), (uint32_t)(want >> 32));
    rt_expect(what, "result low", (uint32_t)result, (uint32_t)want);
    rt_expect(what, "fflags", flags, want_flags);
}
#define EXPECT64(what, call, want, want_flags)         \
    do {                                               \
        uint32_t fl_;                                  \
        uint64_t r_ = call;                            \
        expect64(what, r_, fl_, want, want_flags);     \
    } while (0)

#define D_ONE 0x3ff0000000000000ull
#define D_TWO 0x4000000000000000ull
#define D_THREE 0x4008000000000000ull
#define D_INF 0x7ff0000000000000ull
#define D_NINF 0xfff0000000000000ull
#define D_QNAN 0x7ff8000000000000ull
#define D_SNAN 0x7ff0000000000001ull
#define D_MAX 0x7fefffffffffffffull
#define D_MINSUB 0x0000000000000001ull
#define D_NZERO 0x8000000000000000ull

static void test_doubles(void) {
    EXPECT64("fadd.d 1+2", D2("fadd.d", D_ONE, D_TWO, &fl_), D_THREE, 0);
    EXPECT64("fadd.d max+max", D2("fadd.d", D_MAX, D_MAX, &fl_), D_INF, OF | NX);
    EXPECT64("fsub.d inf-inf", D2("fsub.d", D_INF, D_INF, &fl_), D_QNAN, NV);
    EXPECT64("fmul.d snan*1", D2("fmul.d", D_SNAN, D_ONE, &fl_), D_QNAN, NV);
    EXPECT64("fmul.d minsub*0.5", D2("fmul.d", D_MINSUB, 0x3fe0000000000000ull, &fl_), 0, UF | NX);
    EXPECT64("fdiv.d 1/3", D2("fdiv.d", D_ONE, D_THREE, &fl_), 0x3fd5555555555555ull, NX);
    EXPECT64("fdiv.d -1/0", D2("fdiv.d", 0xbff0000000000000ull, 0, &fl_), D_NINF, DZ);
    EXPECT64("fsqrt.d 2", D1("fsqrt.d", D_TWO, &fl_), 0x3ff6a09e667f3bcdull, NX);
    EXPECT64("fsqrt.d -inf", D1("fsqrt.d", D_NINF, &fl_), D_QNAN, NV);
    EXPECT64("fmadd.d 1*2+3", D3("fmadd.d", D_ONE, D_TWO, D_THREE, &fl_), 0x4014000000000000ull, 0);
    EXPECT64("fmsub.d 1*2-3", D3("fmsub.d", D_ONE, D_TWO, D_THREE, &fl_), 0xbff0000000000000ull, 0);
    EXPECT64("fnmsub.d -(1*2)+3", D3("fnmsub.d", D_ONE, D_TWO, D_THREE, &fl_), D_ONE, 0);
    EXPECT64("fnmadd.d -(1*2)-3", D3("fnmadd.d", D_ONE, D_TWO, D_THREE, &fl_), 0xc014000000000000ull, 0);
    EXPECT64("fmadd.d 0*inf+1", D3("fmadd.d", 0, D_INF, D_ONE, &fl_), D_QNAN, NV);
    EXPECT64("fmin.d -0,+0", D2("fmin.d", D_NZERO, 0, &fl_), D_NZERO, 0);
    EXPECT64("fmax.d snan,qnan", D2("fmax.d", D_SNAN, D_QNAN, &fl_), D_QNAN, NV);
    EXPECT64("fmax.d 1,snan", D2("fmax.d", D_ONE, D_SNAN, &fl_), D_ONE, NV);
    EXPECT64("fsgnj.d", D2("fsgnj.d", D_ONE, D_NINF, &fl_), 0xbff0000000000000ull, 0);
    EXPECT64("fsgnjn.d", D2("fsgnjn.d", D_SNAN, D_ONE, &fl_), 0xfff0000000000001ull, 0);
    EXPECT64("fsgnjx.d", D2("fsgnjx.d", 0xbff0000000000123ull, D_NINF, &fl_), 0x3ff0000000000123ull, 0);
    EXPECT("feq.d -0,+0", DX2("feq.d", D_NZERO, 0, &fl_), 1, 0);
    EXPECT("feq.d snan", DX2("feq.d", D_ONE, D_SNAN, &fl_), 0, NV);
    EXPECT("flt.d qnan", DX2("flt.d", D_QNAN, D_ONE, &fl_), 0, NV);
    EXPECT("fle.d 1,2", DX2("fle.d", D_ONE, D_TWO, &fl_), 1, 0);
    static const uint64_t class_in[10] = {D_NINF, 0xbff0000000000000ull, 0x800fffffffffffffull, D_NZERO, 0, D_MINSUB,
                                          D_ONE, D_INF, D_SNAN, D_QNAN};
    for (int i = 0; i < 10; i++) EXPECT("fclass.d", DX1("fclass.d", class_in[i], &fl_), 1u << i, 0);
    EXPECT("fcvt.w.d 2^31", DX1("fcvt.w.d", 0x41e0000000000000ull, &fl_), 0x7fffffffu, NV);
    EXPECT("fcvt.w.d -2^31", DX1("fcvt.w.d", 0xc1e0000000000000ull, &fl_), 0x80000000u, 0);
    EXPECT("fcvt.w.d -0.5", DX1("fcvt.w.d", 0xbfe0000000000000ull, &fl_), 0, NX);
    EXPECT("fcvt.wu.d 2^32-1", DX1("fcvt.wu.d", 0x41efffffffe00000ull, &fl_), 0xffffffffu, 0);
    EXPECT("fcvt.wu.d -inf", DX1("fcvt.wu.d", D_NINF, &fl_), 0, NV);
    EXPECT64("fcvt.d.w -1", XD1("fcvt.d.w", 0xffffffffu, &fl_), 0xbff0000000000000ull, 0);
    EXPECT64("fcvt.d.wu uint_max", XD1("fcvt.d.wu", 0xffffffffu, &fl_), 0x41efffffffe00000ull, 0);
    EXPECT64("fcvt.d.w int_min", XD1("fcvt.d.w", 0x80000000u, &fl_), 0xc1e0000000000000ull, 0);
    /* Between the formats. */
    EXPECT("fcvt.s.d 1/3", ({ uint32_t r_; da = 0x3fd5555555555555ull; csr_write(fflags, 0);
        __asm__ volatile("fld ft1, %1\nfcvt.s.d ft0, ft1\nfmv.x.w %0, ft0" : "=r"(r_) : "m"(da) : "ft0", "ft1");
        fl_ = csr_read(fflags); r_; }), 0x3eaaaaabu, NX);
    EXPECT("fcvt.s.d max", ({ uint32_t r_; da = D_MAX; csr_write(fflags, 0);
        __asm__ volatile("fld ft1, %1\nfcvt.s.d ft0, ft1\nfmv.x.w %0, ft0" : "=r"(r_) : "m"(da) : "ft0", "ft1");
        fl_ = csr_read(fflags); r_; }), INF, OF | NX);
    EXPECT("fcvt.s.d snan", ({ uint32_t r_; da = D_SNAN; csr_write(fflags, 0);
        __asm__ volatile("fld ft1, %1\nfcvt.s.d ft0, ft1\nfmv.x.w %0, ft0" : "=r"(r_) : "m"(da) : "ft0", "ft1");
        fl_ = csr_read(fflags); r_; }), QNAN, NV);
    EXPECT64("fcvt.d.s 1", ({ csr_write(fflags, 0);
        __asm__ volatile("fmv.w.x ft1, %1\nfcvt.d.s ft0, ft1\nfsd ft0, %0" : "=m"(dr) : "r"(ONE) : "ft0", "ft1");
        fl_ = csr_read(fflags); dr; }), D_ONE, 0);
    EXPECT64("fcvt.d.s snan", ({ csr_write(fflags, 0);
        __asm__ volatile("fmv.w.x ft1, %1\nfcvt.d.s ft0, ft1\nfsd ft0, %0" : "=m"(dr) : "r"(SNAN) : "ft0", "ft1");
        fl_ = csr_read(fflags); dr; }), D_QNAN, NV);
    EXPECT64("fcvt.d.s minsub", ({ csr_write(fflags, 0);
        __asm__ volatile("fmv.w.x ft1, %1\nfcvt.d.s ft0, ft1\nfsd ft0, %0" : "=m"(dr) : "r"(MINSUB) : "ft0", "ft1");
        fl_ = csr_read(fflags); dr; }), 0x36a0000000000000ull, 0);
}

/* Rounding: static modes in the instruction, and DYN from frm. */
#define SR(insn, a, b) ({ uint32_t fl_; S2(insn, a, b, &fl_); })
static void test_rounding(void) {
    CHECK_EQ(SR("fdiv.s", ONE, THREE), 0x3eaaaaabu);
    uint32_t r;
    static const uint32_t third[5] = {0x3eaaaaabu, 0x3eaaaaaau, 0x3eaaaaaau, 0x3eaaaaabu, 0x3eaaaaabu};
    static const uint32_t minus_third[5] = {0xbeaaaaabu, 0xbeaaaaaau, 0xbeaaaaabu, 0xbeaaaaaau, 0xbeaaaaabu};
#define STATIC_DIV(rm, i)                                                                                     \
    __asm__ volatile("fmv.w.x ft1, %1\nfmv.w.x ft2, %2\nfdiv.s ft0, ft1, ft2, " rm "\nfmv.x.w %0, ft0"        \
                     : "=r"(r) : "r"(ONE), "r"(THREE) : "ft0", "ft1", "ft2");                                  \
    rt_expect("fdiv.s 1/3 " rm, "result", r, third[i]);                                                       \
    __asm__ volatile("fmv.w.x ft1, %1\nfmv.w.x ft2, %2\nfdiv.s ft0, ft1, ft2, " rm "\nfmv.x.w %0, ft0"        \
                     : "=r"(r) : "r"(0xbf800000u), "r"(THREE) : "ft0", "ft1", "ft2");                         \
    rt_expect("fdiv.s -1/3 " rm, "result", r, minus_third[i])
    STATIC_DIV("rne", 0);
    STATIC_DIV("rtz", 1);
    STATIC_DIV("rdn", 2);
    STATIC_DIV("rup", 3);
    STATIC_DIV("rmm", 4);
    for (uint32_t mode = 0; mode < 5; mode++) {
        csr_write(frm, mode);
        __asm__ volatile("fmv.w.x ft1, %1\nfmv.w.x ft2, %2\nfdiv.s ft0, ft1, ft2, dyn\nfmv.x.w %0, ft0"
                         : "=r"(r) : "r"(ONE), "r"(THREE) : "ft0", "ft1", "ft2");
        rt_expect("fdiv.s 1/3 dyn", "result", r, third[mode]);
        /* A static mode ignores frm. */
        __asm__ volatile("fmv.w.x ft1, %1\nfmv.w.x ft2, %2\nfdiv.s ft0, ft1, ft2, rne\nfmv.x.w %0, ft0"
                         : "=r"(r) : "r"(ONE), "r"(THREE) : "ft0", "ft1", "ft2");
        rt_expect("fdiv.s 1/3 rne under frm", "result", r, third[0]);
    }
    /* Overflow in RTZ gives the largest finite number; a tie in RMM rounds away. */
    csr_write(frm, 1);
    CHECK_EQ(SR("fadd.s", MAXF, MAXF), MAXF);
    csr_write(frm, 4);
    CHECK_EQ(SR("fmul.s", MINSUB, HALF), MINSUB);
    csr_write(frm, 2);
    CHECK_EQ(SR("fsub.s", ONE, ONE), NZERO); /* x - x is -0 in RDN */
    EXPECT("fcvt.w.s -1.5 dyn rdn", SX1("fcvt.w.s", 0xbfc00000u, &fl_), 0xfffffffeu, NX);
    /* Doubles in RUP, dynamically (the assembler's default rm is DYN). */
    csr_write(frm, 3);
    EXPECT64("fdiv.d 1/3 rup", D2("fdiv.d", D_ONE, D_THREE, &fl_), 0x3fd5555555555556ull, NX);
    csr_write(frm, 0);
}

/* ---------------------------------------------------------------- NaN-boxing */

static void test_nan_boxing(void) {
    uint32_t r, fl;
    /* A single written to a register fills the upper half with ones. */
    __asm__ volatile("fmv.w.x ft0, %1\nfsd ft0, %0" : "=m"(dr) : "r"(ONE) : "ft0");
    CHECK_EQ((uint32_t)(dr >> 32), 0xffffffffu);
    CHECK_EQ((uint32_t)dr, ONE);
    __asm__ volatile("flw ft0, %1\nfsd ft0, %0" : "=m"(dr) : "m"(scratch[0]) : "ft0");
    CHECK_EQ((uint32_t)(dr >> 32), 0xffffffffu);
    /* A double's bits read as a single (upper half not all ones): the canonical NaN. */
    da = 0x000000003f800000ull;
    csr_write(fflags, 0);
    __asm__ volatile("fld ft1, %1\nfadd.s ft0, ft1, ft1\nfmv.x.w %0, ft0" : "=r"(r) : "m"(da) : "ft0", "ft1");
    fl = csr_read(fflags);
    CHECK_EQ(r, QNAN);
    CHECK_EQ(fl, 0); /* a quiet NaN: no NV */
    __asm__ volatile("fld ft1, %1\nfmv.s ft0, ft1\nfmv.x.w %0, ft0" : "=r"(r) : "m"(da) : "ft0", "ft1");
    CHECK_EQ(r, QNAN);
    __asm__ volatile("fld ft1, %1\nfclass.s %0, ft1" : "=r"(r) : "m"(da) : "ft1");
    CHECK_EQ(r, 0x200);
    __asm__ volatile("fld ft1, %1\nfeq.s %0, ft1, ft1" : "=r"(r) : "m"(da) : "ft1");
    CHECK_EQ(r, 0);
    /* fmv.x.w and fsw move the low bits as they are. */
    __asm__ volatile("fld ft1, %1\nfmv.x.w %0, ft1" : "=r"(r) : "m"(da) : "ft1");
    CHECK_EQ(r, ONE);
    __asm__ volatile("fld ft1, %1\nfsw ft1, %0" : "=m"(scratch[1]) : "m"(da) : "ft1");
    CHECK_EQ((uint32_t)scratch[1], ONE);
    /* An upper half of all ones but one bit is not a box either. */
    da = 0xfffffffe3f800000ull;
    __asm__ volatile("fld ft1, %1\nfcvt.d.s ft0, ft1\nfsd ft0, %0" : "=m"(dr) : "m"(da) : "ft0", "ft1");
    CHECK_EQ((uint32_t)(dr >> 32), 0x7ff80000u);
    csr_write(fflags, 0);
}

/* ---------------------------------------------------------------- FLD/FSD */

static uint8_t pages[2 * 4096] __attribute__((aligned(4096)));

ASM_STUB(fld_fault, "", "fld ft0, 0(a0)");
ASM_STUB(fsd_fault, "", "fsd ft0, 0(a0)");
ASM_STUB(flw_fault, "", "flw ft0, 0(a0)");

static uint64_t load_at(uintptr_t address) {
    __asm__ volatile("fld ft0, 0(%1)\nfsd ft0, %0" : "=m"(dr) : "r"(address) : "ft0", "memory");
    return dr;
}
static void store_at(uintptr_t address, uint64_t value) {
    da = value;
    __asm__ volatile("fld ft0, %0\nfsd ft0, 0(%1)" ::"m"(da), "r"(address) : "ft0", "memory");
}

static void test_loads_stores(void) {
    static const unsigned offsets[] = {0, 8, 4, 1, 2, 3, 5, 7, 4096 - 8, 4096 - 4, 4096 - 3, 4096 - 1};
    for (unsigned i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        unsigned o = offsets[i];
        for (unsigned j = o - (o > 0); j < o + 9; j++) pages[j] = (uint8_t)(j * 7 + 1);
        uint64_t want = 0;
        for (int b = 7; b >= 0; b--) want = (want << 8) | pages[o + b];
        uint64_t got = load_at((uintptr_t)&pages[o]);
        if (got != want) {
            rt_printf("FAIL fld at offset %u\n", o);
            rt_failures++;
        }
        uint64_t value = 0x0123456789abcdefull ^ ((uint64_t)o << 40);
        store_at((uintptr_t)&pages[o], value);
        for (int b = 0; b < 8; b++) {
            if (pages[o + b] != (uint8_t)(value >> (8 * b))) {
                rt_printf("FAIL fsd at offset %u byte %d\n", o, b);
                rt_failures++;
            }
        }
        CHECK_EQ(pages[o + 8], (uint8_t)((o + 8) * 7 + 1)); /* the neighbours are untouched */
        CHECK(o == 0 || pages[o - 1] == (uint8_t)((o - 1) * 7 + 1));
    }
    /* Misaligned singles. */
    for (unsigned j = 4094; j < 4098; j++) pages[j] = (uint8_t)(j * 7 + 1);
    uint32_t single;
    __asm__ volatile("flw ft0, 0(%1)\nfmv.x.w %0, ft0" : "=r"(single) : "r"(&pages[4094]) : "ft0", "memory");
    CHECK_EQ(single, pages[4094] | (pages[4095] << 8) | (pages[4096] << 16) | ((uint32_t)pages[4097] << 24));

    /* Faults: mtval = the address. */
    rt_note_mtraps();
    rt_clear_notes();
    fld_fault(0x05000000u);
    CHECK_EQ(rt_mnote.cause, CAUSE_LOAD_ACCESS);
    CHECK_EQ(rt_mnote.tval, 0x05000000u);
    rt_clear_notes();
    fsd_fault(0x05000000u);
    CHECK_EQ(rt_mnote.cause, CAUSE_STORE_ACCESS);
    CHECK_EQ(rt_mnote.tval, 0x05000000u);
    rt_clear_notes();
    flw_fault(0x05000004u);
    CHECK_EQ(rt_mnote.cause, CAUSE_LOAD_ACCESS);
    CHECK_EQ(rt_mnote.tval, 0x05000004u);
    rt_set_trap_hook(0);
}

/* ---------------------------------------------------------------- compressed */

/* a0 = a 256-byte buffer: moves values around with every compressed FP load and store at
 * small and at their largest offsets (c.fld/c.fsd 248, c.flw/c.fsw 124, c.fldsp/c.fsdsp
 * 504, c.flwsp/c.fswsp 252). */
__asm__(".text\n.balign 4\n.globl c_fp_mem\nc_fp_mem:\n.option push\n.option rvc\n"
        "addi sp, sp, -512\n"
        "c.fld fa0, 0(a0)\n"
        "c.fsd fa0, 248(a0)\n"
        "c.flw fa1, 8(a0)\n"
        "c.fsw fa1, 124(a0)\n"
        "c.fsdsp fa0, 504(sp)\n"
        "c.fldsp fa2, 504(sp)\n"
        "c.fsd fa2, 16(a0)\n"
        "c.fswsp fa1, 252(sp)\n"
        "c.flwsp fa3, 252(sp)\n"
        "c.fsw fa3, 24(a0)\n"
        "c.fld fa4, 248(a0)\n"
        "c.fsdsp fa4, 0(sp)\n"
        "c.fldsp ft5, 0(sp)\n"
        "c.fsd fa4, 32(a0)\n"
        "c.flw fa5, 124(a0)\n"
        "c.fswsp fa5, 0(sp)\n"
        "c.flwsp ft6, 0(sp)\n"
        "fmv.x.w a1, ft6\n"
        "c.sw a1, 40(a0)\n"
        "fsd ft5, 48(a0)\n"
        "addi sp, sp, 512\n"
        "ret\n.option pop\n");
extern void c_fp_mem(uint32_t *buffer);

static uint32_t cbuf[64] __attribute__((aligned(8)));

static void test_compressed(void) {
    for (int i = 0; i < 64; i++) cbuf[i] = 0x1000u * (uint32_t)i + 0x11u;
    uint32_t lo = cbuf[0], hi = cbuf[1], single = cbuf[2];
    c_fp_mem(cbuf);
    CHECK_EQ(cbuf[62], lo);
    CHECK_EQ(cbuf[63], hi);
    CHECK_EQ(cbuf[31], single);
    CHECK_EQ(cbuf[4], lo);
    CHECK_EQ(cbuf[5], hi);
    CHECK_EQ(cbuf[6], single);
    CHECK_EQ(cbuf[8], lo);
    CHECK_EQ(cbuf[9], hi);
    CHECK_EQ(cbuf[10], single);
    CHECK_EQ(cbuf[12], lo);
    CHECK_EQ(cbuf[13], hi);
    CHECK_EQ(cbuf[3], 0x3011u);
    CHECK_EQ(cbuf[7], 0x7011u);
}

int main(void) {
    test_fs_off();
    set_fs(FS_INITIAL);
    test_fs_tracking();
    test_fcsr();
    test_singles();
    test_rounding();
    test_doubles();
    test_nan_boxing();
    test_loads_stores();
    test_compressed();
    return rt_check_done("isa_fd");
}
