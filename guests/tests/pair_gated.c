/* pair_gated: pair_workload that waits for a byte on the console before its last line (see
 * wait_for_gate), so that tests which kill a replica at a moment of the guest's progress
 * never find the guest finished first. The same console and disk contracts. */
#define GATED 1
#include "pair_workload.c"
