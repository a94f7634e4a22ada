/* pair_small_gated: pair_small that waits for a byte on the console before its last line
 * (see wait_for_gate in pair_workload.c). */
#define GATED 1
#include "pair_small.c"
