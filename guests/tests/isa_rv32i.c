/* RV32I, instruction by instruction, at the edges the base ISA spec (chapter "RV32I Base
 * Integer Instruction Set") pins down: wrap-around arithmetic, signed against unsigned
 * compares, shift amounts taken from the low 5 bits, sign and zero extension, link values,
 * jalr clearing bit 0, little-endian stores, misaligned accesses to RAM (which QEMU and
 * understudy complete without a trap), writes to x0, and fence.i after storing code. */
#include "runtime.h"

/* One instruction, two register sources or a register and an immediate. */
#define RR(op, a, b) ({ uint32_t r_; __asm__ volatile(op " %0, %1, %2" : "=r"(r_) : "r"((uint32_t)(a)), "r"((uint32_t)(b))); r_; })
#define RI(op, a, imm) ({ uint32_t r_; __asm__ volatile(op " %0, %1, %2" : "=r"(r_) : "r"((uint32_t)(a)), "i"(imm)); r_; })
/* A conditional branch: 1 when taken. */
#define TAKEN(op, a, b) ({ uint32_t t_ = 1; \
    __asm__ volatile(op " %1, %2, 1f\n li %0, 0\n1:" : "+r"(t_) : "r"((uint32_t)(a)), "r"((uint32_t)(b))); t_; })
/* A load at a constant offset from a base pointer. */
#define LOAD(op, base, offset) ({ uint32_t r_; __asm__ volatile(op " %0, %2(%1)" : "=r"(r_) : "r"(base), "i"(offset) : "memory"); r_; })
#define STORE(op, value, base, offset) __asm__ volatile(op " %0, %2(%1)" ::"r"((uint32_t)(value)), "r"(base), "i"(offset) : "memory")

static void test_arithmetic(void) {
    CHECK_EQ(RR("add", 0x7fffffff, 1), 0x80000000);
    CHECK_EQ(RR("add", 0xffffffff, 1), 0);
    CHECK_EQ(RR("add", 0x80000000, 0x80000000), 0);
    CHECK_EQ(RR("sub", 0x80000000, 1), 0x7fffffff);
    CHECK_EQ(RR("sub", 0, 1), 0xffffffff);
    CHECK_EQ(RR("sub", 0x7fffffff, 0xffffffff), 0x80000000);
    CHECK_EQ(RI("addi", 0, -2048), 0xfffff800);
    CHECK_EQ(RI("addi", 0, 2047), 0x7ff);
    CHECK_EQ(RI("addi", 0x7fffffff, 1), 0x80000000);
    CHECK_EQ(RI("addi", 0x80000000, -1), 0x7fffffff);

    CHECK_EQ(RR("and", 0xf0f0ff00, 0x0ff0f0f0), 0x00f0f000);
    CHECK_EQ(RR("or", 0xf0f0ff00, 0x0ff0f0f0), 0xfff0fff0);
    CHECK_EQ(RR("xor", 0xf0f0ff00, 0x0ff0f0f0), 0xff000ff0);
    /* 12-bit immediates are sign-extended before the logic operation. */
    CHECK_EQ(RI("andi", 0x12345678, -16), 0x12345670);
    CHECK_EQ(RI("andi", 0x12345678, 0x7ff), 0x678);
    CHECK_EQ(RI("ori", 0x12345678, -2048), 0xfffffe78);
    CHECK_EQ(RI("xori", 0x12345678, -1), 0xedcba987);
    CHECK_EQ(RI("xori", 0x12345678, 0x700), 0x12345178);
}

static void test_compares(void) {
    CHECK_EQ(RR("slt", 0x7fffffff, 0x80000000), 0);
    CHECK_EQ(RR("slt", 0x80000000, 0x7fffffff), 1);
    CHECK_EQ(RR("slt", 0xffffffff, 0), 1);
    CHECK_EQ(RR("slt", 5, 5), 0);
    CHECK_EQ(RR("sltu", 0x7fffffff, 0x80000000), 1);
    CHECK_EQ(RR("sltu", 0x80000000, 0x7fffffff), 0);
    CHECK_EQ(RR("sltu", 0xffffffff, 0), 0);
    CHECK_EQ(RR("sltu", 0, 0xffffffff), 1);
    CHECK_EQ(RR("sltu", 5, 5), 0);
    CHECK_EQ(RI("slti", 0xffffffff, 0), 1);
    CHECK_EQ(RI("slti", 0, -1), 0);
    CHECK_EQ(RI("slti", 0x80000000, -2048), 1);
    CHECK_EQ(RI("slti", 0xfffff800, -2048), 0);
    CHECK_EQ(RI("slti", 0x7fffffff, 2047), 0);
    /* sltiu sign-extends the immediate, then compares unsigned: -1 is 0xffffffff. */
    CHECK_EQ(RI("sltiu", 0xfffffffe, -1), 1);
    CHECK_EQ(RI("sltiu", 0xffffffff, -1), 0);
    CHECK_EQ(RI("sltiu", 0, 1), 1);
    CHECK_EQ(RI("sltiu", 1, 1), 0);
    CHECK_EQ(RI("sltiu", 0x80000000, -2048), 1);
}

static void test_shifts(void) {
    CHECK_EQ(RI("slli", 0x12345678, 0), 0x12345678);
    CHECK_EQ(RI("slli", 0x12345679, 31), 0x80000000);
    CHECK_EQ(RI("srli", 0x80000000, 31), 1);
    CHECK_EQ(RI("srli", 0x87654321, 0), 0x87654321);
    CHECK_EQ(RI("srai", 0x80000000, 31), 0xffffffff);
    CHECK_EQ(RI("srai", 0x80000000, 4), 0xf8000000);
    CHECK_EQ(RI("srai", 0x7fffffff, 30), 1);
    CHECK_EQ(RI("srai", 0x87654321, 0), 0x87654321);
    /* Register shifts use only the low 5 bits of rs2. */
    CHECK_EQ(RR("sll", 1, 31), 0x80000000);
    CHECK_EQ(RR("sll", 1, 32), 1);
    CHECK_EQ(RR("sll", 1, 33), 2);
    CHECK_EQ(RR("sll", 3, 0xffffffe1), 6);
    CHECK_EQ(RR("srl", 0x80000000, 31), 1);
    CHECK_EQ(RR("srl", 0x80000000, 32), 0x80000000);
    CHECK_EQ(RR("srl", 0x80000000, 0xffffffff), 1);
    CHECK_EQ(RR("sra", 0x80000000, 31), 0xffffffff);
    CHECK_EQ(RR("sra", 0x80000000, 63), 0xffffffff);
    CHECK_EQ(RR("sra", 0x80000000, 64), 0x80000000);
    CHECK_EQ(RR("sra", 0x40000000, 0x1e), 1);
    CHECK_EQ(RR("sra", 0xc0000000, 0x3e), 0xffffffff);
}

static void test_upper_immediates(void) {
    uint32_t value, here, pc;
    __asm__ volatile("lui %0, 0xfffff" : "=r"(value));
    CHECK_EQ(value, 0xfffff000);
    __asm__ volatile("lui %0, 0x80000" : "=r"(value));
    CHECK_EQ(value, 0x80000000);
    __asm__ volatile("lui %0, 0x12345\n addi %0, %0, -1" : "=r"(value));
    CHECK_EQ(value, 0x12344fff);
    /* auipc adds to its own address. */
    __asm__ volatile("1: auipc %0, 0\n la %1, 1b" : "=r"(pc), "=r"(here));
    CHECK_EQ(pc, here);
    __asm__ volatile("1: auipc %0, 1\n la %1, 1b" : "=r"(pc), "=r"(here));
    CHECK_EQ(pc - here, 0x1000);
    __asm__ volatile("1: auipc %0, 0xfffff\n la %1, 1b" : "=r"(pc), "=r"(here));
    CHECK_EQ(here - pc, 0x1000);
}

static void test_branches(void) {
    static const uint32_t pairs[][2] = {
        {0x7fffffff, 0x80000000}, {0x80000000, 0x7fffffff}, {0xffffffff, 0}, {0, 0xffffffff},
        {5, 5}, {0x80000000, 0x80000000}, {0, 1}, {0xfffffffe, 0xffffffff},
    };
    for (unsigned i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        uint32_t a = pairs[i][0], b = pairs[i][1];
        CHECK_EQ(TAKEN("beq", a, b), a == b);
        CHECK_EQ(TAKEN("bne", a, b), a != b);
        CHECK_EQ(TAKEN("blt", a, b), (int32_t)a < (int32_t)b);
        CHECK_EQ(TAKEN("bge", a, b), (int32_t)a >= (int32_t)b);
        CHECK_EQ(TAKEN("bltu", a, b), a < b);
        CHECK_EQ(TAKEN("bgeu", a, b), a >= b);
    }
    /* A backward branch: count down a loop. */
    uint32_t count = 0, n = 7;
    __asm__ volatile("1: addi %0, %0, 1\n addi %1, %1, -1\n bnez %1, 1b" : "+r"(count), "+r"(n));
    CHECK_EQ(count, 7);
}

static void test_jumps(void) {
    uint32_t link, expected, odd, reached;
    /* jal writes the address of the next instruction. */
    __asm__ volatile("jal %0, 1f\n 2: nop\n 1: la %1, 2b" : "=r"(link), "=r"(expected));
    CHECK_EQ(link, expected);
    /* jalr: the target is rs1 + imm with bit 0 cleared; rd gets the next instruction. */
    __asm__ volatile(
        "la %2, 1f\n"
        "addi %2, %2, 1\n"       /* an odd target address */
        "li %3, 0\n"
        "jalr %0, 0(%2)\n"
        "2: j 3f\n"
        "1: li %3, 1\n"
        "3: la %1, 2b\n"
        : "=&r"(link), "=&r"(expected), "=&r"(odd), "=&r"(reached));
    CHECK_EQ(reached, 1);
    CHECK_EQ(link, expected);
    /* The same with the odd bit coming from the immediate, and rd = rs1: the target uses
     * the old value of the register. */
    __asm__ volatile(
        "la %0, 1f\n"
        "addi %0, %0, -2\n"
        "li %2, 0\n"
        "jalr %0, 3(%0)\n"
        "2: j 3f\n"
        "1: li %2, 1\n"
        "3: la %1, 2b\n"
        : "=&r"(link), "=&r"(expected), "=&r"(reached));
    CHECK_EQ(reached, 1);
    CHECK_EQ(link, expected);
    /* A negative jalr offset. */
    __asm__ volatile(
        "j 2f\n"
        "1: li %1, 1\n"
        "   j 3f\n"
        "2: la %0, 1b\n"
        "   addi %0, %0, 16\n"
        "   li %1, 0\n"
        "   jalr zero, -16(%0)\n"
        "3:\n"
        : "=&r"(odd), "=&r"(reached));
    CHECK_EQ(reached, 1);
}

static uint8_t bytes[16] __attribute__((aligned(16))) = {
    0x80, 0x7f, 0xff, 0x01, 0x34, 0x12, 0x00, 0x80, 0x78, 0x56, 0x34, 0x12, 0xff, 0xff, 0xff, 0x7f,
};

static void test_loads(void) {
    uint8_t *p = bytes;
    CHECK_EQ(LOAD("lb", p, 0), 0xffffff80);
    CHECK_EQ(LOAD("lbu", p, 0), 0x80);
    CHECK_EQ(LOAD("lb", p, 1), 0x7f);
    CHECK_EQ(LOAD("lbu", p, 1), 0x7f);
    CHECK_EQ(LOAD("lb", p, 2), 0xffffffff);
    CHECK_EQ(LOAD("lbu", p, 2), 0xff);
    CHECK_EQ(LOAD("lh", p, 0), 0x7f80);
    CHECK_EQ(LOAD("lh", p, 2), 0x01ff);
    CHECK_EQ(LOAD("lh", p, 6), 0xffff8000);
    CHECK_EQ(LOAD("lhu", p, 6), 0x8000);
    CHECK_EQ(LOAD("lh", p, 4), 0x1234);
    CHECK_EQ(LOAD("lhu", p, 4), 0x1234);
    CHECK_EQ(LOAD("lw", p, 0), 0x01ff7f80);
    CHECK_EQ(LOAD("lw", p, 8), 0x12345678);
    CHECK_EQ(LOAD("lw", p, 12), 0x7fffffff);
    /* Negative offsets. */
    uint8_t *end = bytes + 16;
    CHECK_EQ(LOAD("lw", end, -4), 0x7fffffff);
    CHECK_EQ(LOAD("lb", end, -16), 0xffffff80);
    CHECK_EQ(LOAD("lhu", end, -10), 0x8000);
}

static void test_stores(void) {
    static uint32_t words[4] __attribute__((aligned(16)));
    uint8_t *p = (uint8_t *)words;
    for (int i = 0; i < 4; i++) words[i] = 0xaaaaaaaa;
    STORE("sb", 0x12345678, p, 1);
    CHECK_EQ(words[0], 0xaaaa78aa);
    STORE("sh", 0xcafef00d, p, 6);
    CHECK_EQ(words[1], 0xf00daaaa);
    STORE("sw", 0x01020304, p, 8);
    CHECK_EQ(words[2], 0x01020304);
    CHECK_EQ(p[8], 4);
    CHECK_EQ(p[11], 1);
    STORE("sb", 0xff, p, 15);
    CHECK_EQ(words[3], 0xffaaaaaa);
    CHECK_EQ(words[0], 0xaaaa78aa);
    uint8_t *end = p + 16;
    STORE("sh", 0x5555, end, -16);
    CHECK_EQ(words[0], 0xaaaa5555);
}

static void test_misaligned(void) {
    /* Two pages, so that one access can cross a page boundary. */
    static uint8_t area[8192] __attribute__((aligned(4096)));
    for (int i = 0; i < 16; i++) area[i] = (uint8_t)(0x10 * i + i);          /* 00 11 22 .. ff */
    for (int i = 0; i < 8; i++) area[4092 + i] = (uint8_t)(0xa0 + i);
    uint8_t *p = area;
    CHECK_EQ(LOAD("lw", p, 1), 0x44332211);
    CHECK_EQ(LOAD("lw", p, 2), 0x55443322);
    CHECK_EQ(LOAD("lw", p, 3), 0x66554433);
    CHECK_EQ(LOAD("lh", p, 1), 0x2211);
    CHECK_EQ(LOAD("lh", p, 3), 0x4433);
    CHECK_EQ(LOAD("lh", p, 15), 0x00ff);
    CHECK_EQ(LOAD("lhu", p, 7), 0x8877);
    CHECK_EQ(LOAD("lh", p, 9), 0xffffaa99);
    uint8_t *page_end = area + 4092;
    CHECK_EQ(LOAD("lw", page_end, 2), 0xa5a4a3a2);
    CHECK_EQ(LOAD("lh", page_end, 3), 0xffffa4a3);

    STORE("sw", 0xdeadbeef, p, 5);
    CHECK_EQ(((uint32_t *)area)[1], 0xadbeef44);
    CHECK_EQ(((uint32_t *)area)[2], 0xbbaa99de);
    STORE("sh", 0x1357, p, 3);
    CHECK_EQ(((uint32_t *)area)[0], 0x57221100);
    CHECK_EQ(((uint32_t *)area)[1], 0xadbeef13);
    STORE("sw", 0x0badcafe, page_end, 3);
    CHECK_EQ(((uint32_t *)area)[1023], 0xfea2a1a0);
    CHECK_EQ(((uint32_t *)area)[1024], 0xa70badca);
}

static void test_x0(void) {
    uint32_t value = 0x1234;
    __asm__ volatile(
        "addi x0, x0, 5\n"
        "lui x0, 0x12345\n"
        "auipc x0, 1\n"
        "add x0, %0, %0\n"
        "lw x0, 0(%1)\n"
        "jal x0, 1f\n"
        "1: mv %0, x0\n"
        : "+r"(value)
        : "r"(bytes));
    CHECK_EQ(value, 0);
}

/* Code written as data, then run after fence.i (Zifencei): `li a0, N; ret`. */
static void test_fence_i(void) {
    static uint32_t code[2] __attribute__((aligned(8)));
    uint32_t result;
    for (uint32_t n = 42; n <= 43; n++) {
        code[0] = 0x00000513u | (n << 20); /* addi a0, zero, n */
        code[1] = 0x00008067u;             /* jalr zero, 0(ra) */
        __asm__ volatile(
            "fence.i\n"
            "jalr ra, 0(%1)\n"
            "mv %0, a0\n"
            : "=r"(result)
            : "r"(code)
            : "ra", "a0", "memory");
        CHECK_EQ(result, n);
    }
    __asm__ volatile("fence\n fence rw, rw\n fence iorw, iorw\n fence w, r" ::: "memory");
}

int main(void) {
    test_arithmetic();
    test_compares();
    test_shifts();
    test_upper_immediates();
    test_branches();
    test_jumps();
    test_loads();
    test_stores();
    test_misaligned();
    test_x0();
    test_fence_i();
    return rt_check_done("isa_rv32i");
}
