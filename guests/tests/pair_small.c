/* pair_small: pair_workload in a smaller shape, for the seeded simulator, which runs it
 * thousands of times: the same contracts (see pair_workload.c) with a disk of 1024 sectors
 * (512 KiB), a low region of 64 sectors, a middle region of 256, 4 timer sleeps and lighter
 * work items. The host side (test/support/pair-workload.ts) knows this shape as `smallShape`. */
#define DISK_SECTORS 1024u
#define LOW_END 64u
#define MIDDLE_END 320u
#define TICKS 4u
#define WORK_ITERATIONS 1000u
#include "pair_workload.c"
