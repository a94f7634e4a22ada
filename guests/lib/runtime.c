#include "runtime.h"

#define UART_THR 0
#define UART_LSR 5
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

int rt_failures;
static trap_hook current_hook, current_strap_hook;
volatile struct trap_note rt_mnote, rt_snote;

void rt_putchar(int c) {
    while ((MMIO8(UART_BASE + UART_LSR) & UART_LSR_THRE) == 0) {
    }
    MMIO8(UART_BASE + UART_THR) = (uint8_t)c;
}

void rt_puts(const char *s) {
    while (*s) rt_putchar(*s++);
}

void rt_exit(int code) {
    /* Let the UART drain first: QEMU's may still be sending the last byte, and loses it if
       the machine stops under it. */
    while ((MMIO8(UART_BASE + UART_LSR) & UART_LSR_TEMT) == 0) {
    }
    MMIO32(TEST_BASE) = code == 0 ? 0x5555u : (((uint32_t)code << 16) | 0x3333u);
    for (;;) {
    }
}

void rt_set_trap_hook(trap_hook hook) { current_hook = hook; }

void rt_set_strap_hook(trap_hook hook) { current_strap_hook = hook; }

void rt_trap(struct trap_frame *frame) {
    uint32_t mcause = csr_read(mcause), mepc = csr_read(mepc), mtval = csr_read(mtval);
    /* Lower-mode code handing control back to rt_run_in_mode's caller (modes.S). */
    if ((mcause == CAUSE_ECALL_U || mcause == CAUSE_ECALL_S) && frame->a7 == RT_ECALL_RETURN)
        rt_mode_return(frame->a0);
    if (current_hook) {
        current_hook(frame, mcause, mepc, mtval);
        return;
    }
    rt_printf("unexpected trap: mcause=0x%x mepc=0x%x mtval=0x%x\n", mcause, mepc, mtval);
    rt_exit(99);
}

void rt_strap(struct trap_frame *frame) {
    uint32_t scause = csr_read(scause), sepc = csr_read(sepc), stval = csr_read(stval);
    if (current_strap_hook) {
        current_strap_hook(frame, scause, sepc, stval);
        return;
    }
    rt_printf("unexpected S-mode trap: scause=0x%x sepc=0x%x stval=0x%x\n", scause, sepc, stval);
    rt_exit(98);
}

static int is_fetch_fault(uint32_t cause) {
    return cause == CAUSE_FETCH_ACCESS || cause == CAUSE_FETCH_PAGE;
}

static void note_trap(volatile struct trap_note *note, uint32_t cause, uint32_t epc, uint32_t tval,
                      uint32_t from_mode, uint32_t status) {
    if (cause & CAUSE_INTERRUPT) {
        rt_printf("unexpected interrupt: cause=0x%x epc=0x%x\n", cause, epc);
        rt_exit(97);
    }
    note->count++;
    note->cause = cause;
    note->epc = epc;
    note->tval = tval;
    note->from_mode = from_mode;
    note->status = status;
}

static void note_mtrap(struct trap_frame *frame, uint32_t cause, uint32_t epc, uint32_t tval) {
    uint32_t status = csr_read(mstatus);
    note_trap(&rt_mnote, cause, epc, tval, (status & MSTATUS_MPP) >> 11, status);
    csr_write(mepc, is_fetch_fault(cause) ? frame->ra : epc + 4);
}

static void note_strap(struct trap_frame *frame, uint32_t cause, uint32_t epc, uint32_t tval) {
    uint32_t status = csr_read(sstatus);
    note_trap(&rt_snote, cause, epc, tval, (status & MSTATUS_SPP) ? MODE_S : MODE_U, status);
    csr_write(sepc, is_fetch_fault(cause) ? frame->ra : epc + 4);
}

void rt_clear_notes(void) {
    memset((void *)&rt_mnote, 0, sizeof rt_mnote);
    memset((void *)&rt_snote, 0, sizeof rt_snote);
}

void rt_note_mtraps(void) {
    memset((void *)&rt_mnote, 0, sizeof rt_mnote);
    rt_set_trap_hook(note_mtrap);
}

void rt_note_straps(void) {
    memset((void *)&rt_snote, 0, sizeof rt_snote);
    rt_set_strap_hook(note_strap);
    csr_write(stvec, (uint32_t)(uintptr_t)rt_strap_entry);
}

void rt_check(int ok, const char *what, const char *file, int line) {
    if (ok) return;
    rt_failures++;
    rt_printf("FAIL %s:%d: %s\n", file, line, what);
}

void rt_check_eq(uint32_t actual, uint32_t expected, const char *what, const char *file, int line) {
    if (actual == expected) return;
    rt_failures++;
    rt_printf("FAIL %s:%d: %s = 0x%x, expected 0x%x\n", file, line, what, actual, expected);
}

void rt_expect(const char *what, const char *field, uint32_t actual, uint32_t expected) {
    if (actual == expected) return;
    rt_failures++;
    rt_printf("FAIL %s: %s = 0x%x, expected 0x%x\n", what, field, actual, expected);
}

int rt_check_done(const char *name) {
    if (rt_failures == 0) {
        rt_printf("PASS %s\n", name);
        return 0;
    }
    rt_printf("FAILED %s: %d check(s)\n", name, rt_failures);
    return rt_failures;
}

/* --- formatted output ------------------------------------------------------------------- */

struct out {
    char *buf;
    size_t size, len;
};

static void emit(struct out *o, char c) {
    if (o->buf) {
        if (o->len + 1 < o->size) o->buf[o->len] = c;
    } else {
        rt_putchar(c);
    }
    o->len++;
}

static void emit_number(struct out *o, uint64_t value, unsigned base, int negative, int width, char pad, int upper) {
    char digits[24];
    int count = 0;
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        digits[count++] = set[value % base];
        value /= base;
    } while (value != 0);
    int length = count + (negative ? 1 : 0);
    if (negative && pad == '0') emit(o, '-');
    for (; length < width; length++) emit(o, pad);
    if (negative && pad != '0') emit(o, '-');
    while (count > 0) emit(o, digits[--count]);
}

static int format(struct out *o, const char *fmt, va_list ap) {
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = longs >= 2 ? va_arg(ap, int64_t) : va_arg(ap, int32_t);
            emit_number(o, v < 0 ? (uint64_t)(-v) : (uint64_t)v, 10, v < 0, width, pad, 0);
            break;
        }
        case 'u':
            emit_number(o, longs >= 2 ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t), 10, 0, width, pad, 0);
            break;
        case 'x':
        case 'X':
            emit_number(o, longs >= 2 ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t), 16, 0, width, pad, *fmt == 'X');
            break;
        case 'p':
            emit(o, '0');
            emit(o, 'x');
            emit_number(o, (uintptr_t)va_arg(ap, void *), 16, 0, 8, '0', 0);
            break;
        case 'c':
            emit(o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            int length = (int)strlen(s);
            for (; length < width; length++) emit(o, ' ');
            while (*s) emit(o, *s++);
            break;
        }
        case '%':
            emit(o, '%');
            break;
        default:
            emit(o, '%');
            if (*fmt) emit(o, *fmt);
            else fmt--;
        }
    }
    return (int)o->len;
}

int rt_printf(const char *fmt, ...) {
    struct out o = {0, 0, 0};
    va_list ap;
    va_start(ap, fmt);
    int n = format(&o, fmt, ap);
    va_end(ap);
    return n;
}

int rt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap) {
    struct out o = {buf, size, 0};
    int n = format(&o, fmt, ap);
    if (size > 0) buf[o.len < size ? o.len : size - 1] = 0;
    return n;
}

int rt_snprintf(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = rt_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* --- the C library functions the compiler may call -------------------------------------- */

void *memset(void *dst, int value, size_t n) {
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)value;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

int strcmp(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return (uint8_t)*a - (uint8_t)*b;
}
