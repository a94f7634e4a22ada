/* The smallest check of the whole path: console output, minstret, the exit device. */
#include "runtime.h"

int main(void) {
    uint32_t before = rdinstret();
    uint32_t after = rdinstret();
    rt_printf("hello from the guest\n");
    rt_printf("minstret delta %u\n", after - before);
    CHECK(after - before >= 1);
    return rt_check_done("hello");
}
