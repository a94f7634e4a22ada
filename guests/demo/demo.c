/*
 * The demo guest (`npm run demo`): a bare-metal program that shows the machine's pieces at
 * work: console output, the wall clock from the RTC, timer interrupts while the hart sleeps
 * in WFI, and exact instruction counting.
 */
#include "runtime.h"

#define TICKS_PER_SECOND 10000000u
#define TICKS 5

static volatile uint32_t timer_interrupts;

static void on_trap(struct trap_frame *frame, uint32_t mcause, uint32_t mepc, uint32_t mtval) {
    (void)frame;
    (void)mepc;
    (void)mtval;
    if (mcause == 0x80000007u) {
        timer_interrupts++;
        set_mtimecmp(~0ull); /* one shot: main sets the next deadline */
        return;
    }
    rt_printf("demo: unexpected trap mcause=0x%x\n", mcause);
    rt_exit(1);
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil_from_days(int32_t days, int32_t *year, uint32_t *month, uint32_t *day) {
    days += 719468;
    int32_t era = (days >= 0 ? days : days - 146096) / 146097;
    uint32_t doe = (uint32_t)(days - era * 146097);
    uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint32_t mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (int32_t)yoe + era * 400 + (*month <= 2);
}

int main(void) {
    rt_printf("understudy demo: a bare-metal RV32IMA guest on the virt board\n");

    uint32_t low = MMIO32(RTC_BASE + 0x00); /* reading TIME_LOW latches TIME_HIGH */
    uint32_t high = MMIO32(RTC_BASE + 0x04);
    uint64_t seconds = (((uint64_t)high << 32) | low) / 1000000000ull;
    int32_t year;
    uint32_t month, day;
    civil_from_days((int32_t)(seconds / 86400), &year, &month, &day);
    uint32_t in_day = (uint32_t)(seconds % 86400);
    rt_printf("wall clock (goldfish RTC): %d-%02u-%02u %02u:%02u:%02u UTC\n", (int)year, month, day, in_day / 3600,
              in_day / 60 % 60, in_day % 60);

    rt_set_trap_hook(on_trap);
    csr_set(mie, MIP_MTIP);
    csr_set(mstatus, MSTATUS_MIE);
    for (uint32_t tick = 1; tick <= TICKS; tick++) {
        uint64_t start = read_mtime();
        set_mtimecmp(start + TICKS_PER_SECOND / 5);
        uint32_t before = rdinstret();
        while (timer_interrupts < tick) __asm__ volatile("wfi");
        uint32_t slept = (uint32_t)(read_mtime() - start);
        rt_printf("tick %u: slept in WFI for %u ms of machine time, %u instructions\n", tick, slept / 10000,
                  rdinstret() - before);
    }
    csr_clear(mstatus, MSTATUS_MIE);

    uint32_t before = rdinstret();
    volatile uint32_t sum = 0;
    for (uint32_t i = 0; i < 1000; i++) sum += i;
    uint32_t counted = rdinstret() - before;
    rt_printf("a loop of 1000 additions: sum %u, %u instructions retired\n", (uint32_t)sum, counted);
    rt_printf("demo done\n");
    return 0;
}
