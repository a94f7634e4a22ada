/* htif: the RISC-V test convention's host interface (as in Spike): the ELF defines `tohost`
 * and `fromhost`; writing an even value to tohost hands the host a syscall block (here
 * SYS_write to stdout), writing (code << 1) | 1 ends the run with status `code`.
 * understudy only (QEMU's virt board has no HTIF); test/htif.test.ts runs it. */
#include "runtime.h"

volatile uint64_t tohost __attribute__((section(".tohost"), aligned(64)));
volatile uint64_t fromhost __attribute__((section(".tohost"), aligned(64)));

static volatile uint64_t magic[8] __attribute__((aligned(64)));

static int64_t htif_syscall(uint64_t number, uint64_t a0, uint64_t a1, uint64_t a2) {
    magic[0] = number;
    magic[1] = a0;
    magic[2] = a1;
    magic[3] = a2;
    fromhost = 0;
    tohost = (uint64_t)(uintptr_t)magic;
    while (fromhost == 0) {
    }
    return (int64_t)magic[0];
}

int main(void) {
    static const char text[] = "hello through HTIF\n";
    int64_t written = htif_syscall(64 /* SYS_write */, 1, (uintptr_t)text, sizeof text - 1);
    if (written != (int64_t)(sizeof text - 1)) {
        rt_printf("htif: write returned %d\n", (int)written);
        tohost = (1 << 1) | 1;
    }
    /* Exit with status 3 through tohost: the test checks the status comes through. */
    tohost = (3 << 1) | 1;
    for (;;) {
    }
}
