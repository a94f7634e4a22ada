/* ticker: prints a numbered line every 2 ms of machine time for about 4 seconds, sleeping in
 * WFI between lines. The failover benchmark (bench/replication.ts) kills the primary while it
 * runs and measures how long the console stays silent. */
#include "runtime.h"

#define LINES 2000u
#define PERIOD_TICKS 20000u /* 2 ms at 10 MHz */

static volatile uint32_t fired;

static void on_trap(struct trap_frame *frame, uint32_t mcause, uint32_t mepc, uint32_t mtval) {
    (void)frame;
    (void)mepc;
    (void)mtval;
    if (mcause == 0x80000007u) {
        set_mtimecmp(~0ull);
        fired = 1;
        return;
    }
    rt_exit(99);
}

int main(void) {
    rt_set_trap_hook(on_trap);
    csr_set(mie, MIP_MTIP);
    uint64_t next = read_mtime();
    for (uint32_t line = 1; line <= LINES; line++) {
        next += PERIOD_TICKS;
        fired = 0;
        set_mtimecmp(next);
        while (!fired) {
            __asm__ volatile("wfi");
            csr_set(mstatus, MSTATUS_MIE);
            csr_clear(mstatus, MSTATUS_MIE);
        }
        rt_printf("tick %u\n", line);
    }
    return 0;
}
