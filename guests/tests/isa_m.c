/* The M extension: products on every sign combination and at the extremes, and the
 * division results the spec fixes instead of trapping (unprivileged spec, "M" chapter,
 * table "Semantics for division by zero and division overflow"):
 *   x / 0 = -1 (all ones, divu too), x % 0 = x; INT_MIN / -1 = INT_MIN, INT_MIN % -1 = 0. */
#include "runtime.h"

#define RR(op, a, b) ({ uint32_t r_; __asm__ volatile(op " %0, %1, %2" : "=r"(r_) : "r"((uint32_t)(a)), "r"((uint32_t)(b))); r_; })

#define MIN 0x80000000u
#define MAX 0x7fffffffu
#define ONES 0xffffffffu

/* Reference products by shift-and-add, without any multiply instruction (the compiler
 * would turn a 64-bit C product into mul/mulhu, the very instructions under test). The
 * signed high halves follow from the unsigned one: reading a negative 32-bit value as
 * unsigned adds 2^32 to it, which adds the other operand times 2^32 to the product. */
static uint64_t product_unsigned(uint32_t a, uint32_t b) {
    uint64_t sum = 0, addend = a;
    for (; b != 0; b >>= 1, addend <<= 1)
        if (b & 1) sum += addend;
    return sum;
}
static uint32_t high_signed(uint32_t a, uint32_t b) {
    uint32_t high = (uint32_t)(product_unsigned(a, b) >> 32);
    if (a & MIN) high -= b;
    if (b & MIN) high -= a;
    return high;
}
static uint32_t high_signed_unsigned(uint32_t a, uint32_t b) {
    uint32_t high = (uint32_t)(product_unsigned(a, b) >> 32);
    if (a & MIN) high -= b;
    return high;
}

static void test_products(void) {
    static const uint32_t values[] = {0, 1, 2, 3, ONES, 0xfffffffe, MIN, MAX, 0x80000001, 0x12345678, 0xedcba988, 0x0000ffff, 0xffff0000};
    const unsigned n = sizeof values / sizeof values[0];
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j < n; j++) {
            uint32_t a = values[i], b = values[j];
            uint32_t mul = RR("mul", a, b), mulh = RR("mulh", a, b);
            uint32_t mulhsu = RR("mulhsu", a, b), mulhu = RR("mulhu", a, b);
            uint64_t u = product_unsigned(a, b);
            if (mul != (uint32_t)u || mulh != high_signed(a, b) || mulhsu != high_signed_unsigned(a, b) ||
                mulhu != (uint32_t)(u >> 32)) {
                rt_printf("FAIL products of 0x%x and 0x%x: mul 0x%x mulh 0x%x mulhsu 0x%x mulhu 0x%x\n", a, b,
                          mul, mulh, mulhsu, mulhu);
                rt_failures++;
            }
        }
    }
    /* Values worked out by hand, so that the reference above is checked too. */
    CHECK_EQ(RR("mul", MIN, ONES), MIN);
    CHECK_EQ(RR("mulh", MIN, ONES), 0);
    CHECK_EQ(RR("mulh", MIN, MIN), 0x40000000);
    CHECK_EQ(RR("mulhu", MIN, MIN), 0x40000000);
    CHECK_EQ(RR("mulh", ONES, ONES), 0);
    CHECK_EQ(RR("mulhu", ONES, ONES), 0xfffffffe);
    CHECK_EQ(RR("mul", ONES, ONES), 1);
    CHECK_EQ(RR("mulhsu", ONES, ONES), ONES);    /* -1 * (2^32 - 1) = -2^32 + 1 */
    CHECK_EQ(RR("mulhsu", MIN, ONES), 0x80000000); /* -2^31 * (2^32 - 1) */
    CHECK_EQ(RR("mulhsu", 1, ONES), 0);
    CHECK_EQ(RR("mulhsu", MAX, MIN), 0x3fffffff);
    CHECK_EQ(RR("mulh", MAX, MIN), 0xc0000000);
    CHECK_EQ(RR("mulh", 0x12345678, 0xedcba988), 0xfeb49923);  /* -(0x12345678^2) >> 32 */
    CHECK_EQ(RR("mul", 0x12345678, 0x12345678), 0x1df4d840);
    CHECK_EQ(RR("mulhu", 0x12345678, 0x12345678), 0x014b66dc);
    /* The destination may be a source. */
    uint32_t x = 7;
    __asm__ volatile("mul %0, %0, %0" : "+r"(x));
    CHECK_EQ(x, 49);
}

static void test_division(void) {
    CHECK_EQ(RR("div", 20, 6), 3);
    CHECK_EQ(RR("div", (uint32_t)-20, 6), (uint32_t)-3);  /* rounds toward zero */
    CHECK_EQ(RR("div", 20, (uint32_t)-6), (uint32_t)-3);
    CHECK_EQ(RR("div", (uint32_t)-20, (uint32_t)-6), 3);
    CHECK_EQ(RR("rem", 20, 6), 2);
    CHECK_EQ(RR("rem", (uint32_t)-20, 6), (uint32_t)-2);  /* the sign of the dividend */
    CHECK_EQ(RR("rem", 20, (uint32_t)-6), 2);
    CHECK_EQ(RR("rem", (uint32_t)-20, (uint32_t)-6), (uint32_t)-2);
    CHECK_EQ(RR("divu", 20, 6), 3);
    CHECK_EQ(RR("divu", (uint32_t)-20, 6), 0x2aaaaaa7);
    CHECK_EQ(RR("remu", (uint32_t)-20, 6), 2);
    CHECK_EQ(RR("divu", ONES, 1), ONES);
    CHECK_EQ(RR("divu", ONES, ONES), 1);
    CHECK_EQ(RR("remu", 5, ONES), 5);
    CHECK_EQ(RR("divu", MIN, 2), 0x40000000);
    CHECK_EQ(RR("div", MIN, 2), 0xc0000000);
    CHECK_EQ(RR("div", MIN, 1), MIN);
    CHECK_EQ(RR("div", MAX, ONES), 0x80000001);
    CHECK_EQ(RR("rem", MIN, 3), (uint32_t)-2);

    /* Division by zero: quotient all ones, remainder the dividend. */
    CHECK_EQ(RR("div", 1234, 0), ONES);
    CHECK_EQ(RR("div", (uint32_t)-1234, 0), ONES);
    CHECK_EQ(RR("div", 0, 0), ONES);
    CHECK_EQ(RR("div", MIN, 0), ONES);
    CHECK_EQ(RR("divu", 1234, 0), ONES);
    CHECK_EQ(RR("divu", 0, 0), ONES);
    CHECK_EQ(RR("rem", 1234, 0), 1234);
    CHECK_EQ(RR("rem", (uint32_t)-1234, 0), (uint32_t)-1234);
    CHECK_EQ(RR("rem", MIN, 0), MIN);
    CHECK_EQ(RR("remu", 1234, 0), 1234);
    CHECK_EQ(RR("remu", ONES, 0), ONES);

    /* Signed overflow: INT_MIN / -1. */
    CHECK_EQ(RR("div", MIN, ONES), MIN);
    CHECK_EQ(RR("rem", MIN, ONES), 0);
    /* The unsigned forms see no overflow there. */
    CHECK_EQ(RR("divu", MIN, ONES), 0);
    CHECK_EQ(RR("remu", MIN, ONES), MIN);
}

int main(void) {
    test_products();
    test_division();
    return rt_check_done("isa_m");
}
