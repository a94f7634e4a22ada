/* sim_workload: the small guest the seeded replication simulator runs thousands of times
 * (src/replication/simulator, test/simulator.test.ts). It does, in about half a million
 * instructions, what replication must carry: numbered console lines, sleeps in WFI until a
 * timer interrupt, disk writes and reads with polling and with interrupt-driven waits (two
 * requests in flight at a time: two writes, or a write and a read of the same sectors), flushes, environment reads (mtime), and CPU work between I/O.
 *
 * Contracts:
 * - one read-write disk of at least SECTORS_USED sectors; its starting content does not matter;
 * - the console output and the final content of sectors 0..SECTORS_USED-1 are pure functions
 *   of the program: nothing printed depends on time, so every correct run, on any clock,
 *   prints the same bytes. The simulator learns both from one failure-free reference run;
 * - a request that completes with IOERR (the paper's uncertain interrupt after a failover,
 *   with --pending-io uncertain) is repeated silently, up to ATTEMPTS times: every write is
 *   idempotent (its content depends only on sector and round), so repeats change nothing;
 * - "sim_workload: PASS" and exit status 0 at the end; a failed check prints FAIL and exits 1.
 */
#include "runtime.h"
#include "virtio.h"

#define SECTORS_USED 48u
#define BATCH        4u   /* sectors per request */
#define ROUNDS       3u
#define ATTEMPTS     4u
#define TICKS_PER_MS 10000u
#define CAUSE_MACHINE_TIMER 0x80000007u

static struct vblk disk;
static uint32_t buffers[2][BATCH * 128] __attribute__((aligned(64)));
static uint32_t readback[SECTORS_USED * 128] __attribute__((aligned(64)));
static volatile uint32_t timer_fired;
static uint32_t lines;

static void line(const char *text, uint32_t a, uint32_t b) {
    rt_printf("line %03u ", ++lines);
    rt_printf(text, a, b);
    rt_putchar('\n');
}

static void fail(const char *what, uint32_t value) {
    rt_printf("sim_workload: FAIL %s (%u)\n", what, value);
    rt_exit(1);
}

static void on_trap(struct trap_frame *frame, uint32_t mcause, uint32_t mepc, uint32_t mtval) {
    (void)frame;
    if (mcause == CAUSE_MACHINE_TIMER) {
        set_mtimecmp(~0ull);
        timer_fired = 1;
        return;
    }
    if (vblk_handle_trap(mcause)) return;
    rt_printf("sim_workload: unexpected trap mcause=0x%x mepc=0x%x mtval=0x%x\n", mcause, mepc, mtval);
    rt_exit(99);
}

/* Sleeps in WFI until a timer interrupt `ms` milliseconds ahead. */
static void sleep_ms(uint32_t ms) {
    csr_clear(mstatus, MSTATUS_MIE);
    timer_fired = 0;
    set_mtimecmp(read_mtime() + (uint64_t)ms * TICKS_PER_MS);
    csr_set(mie, MIP_MTIP);
    while (!timer_fired) {
        __asm__ volatile("wfi" ::: "memory");
        csr_set(mstatus, MSTATUS_MIE); /* take the pending interrupt(s) */
        csr_clear(mstatus, MSTATUS_MIE);
    }
    csr_clear(mie, MIP_MTIP);
}

static uint32_t word(uint32_t sector, uint32_t round, uint32_t k) {
    uint32_t x = sector * 0x9e3779b1u + round * 0x85ebca77u + k * 0xc2b2ae3du;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    return x;
}

static void fill(uint32_t *buffer, uint32_t first, uint32_t round) {
    for (uint32_t s = 0; s < BATCH; s++)
        for (uint32_t k = 0; k < 128; k++) buffer[s * 128 + k] = word(first + s, round, k);
}

/* The round each sector holds after `round` rounds: round r rewrites the sectors s with s % r == 0. */
static uint32_t round_of(uint32_t sector, uint32_t round) {
    for (uint32_t r = round; r > 1; r--)
        if (sector % (BATCH * r) < BATCH) return r;
    return 1;
}

/* Submits a request, and waits, repeating it after an IOERR (an uncertain completion). */
static void request(uint32_t type, uint32_t sector, void *buffer, uint32_t count) {
    for (uint32_t attempt = 0; attempt < ATTEMPTS; attempt++) {
        int status = type == VIRTIO_BLK_T_OUT ? vblk_write(&disk, sector, buffer, count)
                     : type == VIRTIO_BLK_T_IN ? vblk_read(&disk, sector, buffer, count)
                                               : vblk_flush(&disk);
        if (status == VIRTIO_BLK_S_OK) return;
        if (status != VIRTIO_BLK_S_IOERR) fail("request status", (uint32_t)status);
    }
    fail("request failed every attempt, sector", sector);
}

/* Two writes in flight at once. */
static void write_pair(uint32_t first, uint32_t round) {
    struct vblk_segment segments[2];
    struct vblk_request requests[2];
    int heads[2];
    for (uint32_t i = 0; i < 2; i++) {
        fill(buffers[i], first + i * BATCH, round);
        segments[i] = (struct vblk_segment){buffers[i], BATCH * 512};
        requests[i] = (struct vblk_request){VIRTIO_BLK_T_OUT, first + i * BATCH, &segments[i], 1, 0};
        heads[i] = vblk_submit(&disk, &requests[i]);
        if (heads[i] < 0) fail("submit", (uint32_t)-heads[i]);
    }
    for (uint32_t i = 0; i < 2; i++) {
        int status = vblk_wait(&disk, heads[i], 0);
        if (status == VIRTIO_BLK_S_IOERR) request(VIRTIO_BLK_T_OUT, first + i * BATCH, buffers[i], BATCH);
        else if (status != VIRTIO_BLK_S_OK) fail("write status", (uint32_t)status);
    }
}

/* A write and a read of the same sectors in flight together: the read sees the write (the
 * machine performs requests in the order the guest makes them available; a primary may let a
 * read out before its epoch is acknowledged, but never past a write it still holds). Then the
 * sectors get back the content of `round`. */
static void write_then_read(uint32_t round) {
    struct vblk_segment segments[2] = {{buffers[0], BATCH * 512}, {buffers[1], BATCH * 512}};
    struct vblk_request requests[2] = {
        {VIRTIO_BLK_T_OUT, 0, &segments[0], 1, 0},
        {VIRTIO_BLK_T_IN, 0, &segments[1], 1, 0},
    };
    int heads[2];
    fill(buffers[0], 0, round + 100);
    for (uint32_t k = 0; k < BATCH * 128; k++) buffers[1][k] = 0;
    for (uint32_t i = 0; i < 2; i++) {
        heads[i] = vblk_submit(&disk, &requests[i]);
        if (heads[i] < 0) fail("submit", (uint32_t)-heads[i]);
    }
    int wrote = vblk_wait(&disk, heads[0], 0);
    int read = vblk_wait(&disk, heads[1], 0);
    if (wrote != VIRTIO_BLK_S_OK && wrote != VIRTIO_BLK_S_IOERR) fail("write status", (uint32_t)wrote);
    if (read != VIRTIO_BLK_S_OK && read != VIRTIO_BLK_S_IOERR) fail("read status", (uint32_t)read);
    /* An uncertain completion (after a failover): do it again, one after the other. */
    if (wrote == VIRTIO_BLK_S_IOERR) request(VIRTIO_BLK_T_OUT, 0, buffers[0], BATCH);
    if (wrote == VIRTIO_BLK_S_IOERR || read == VIRTIO_BLK_S_IOERR) request(VIRTIO_BLK_T_IN, 0, buffers[1], BATCH);
    for (uint32_t k = 0; k < BATCH * 128; k++)
        if (buffers[1][k] != buffers[0][k]) fail("a read in flight with a write missed it, word", k);
    fill(buffers[0], 0, round);
    request(VIRTIO_BLK_T_OUT, 0, buffers[0], BATCH);
    line("round %u: a read in flight with a write saw it", round, 0);
}

static uint32_t work(uint32_t seed) {
    uint32_t acc = seed;
    for (uint32_t i = 1; i < 3000; i++) acc = (acc * 1664525u + 1013904223u) ^ (acc / i) ^ (acc % (i + 3));
    return acc;
}

int main(void) {
    rt_set_trap_hook(on_trap);
    int slot = vblk_find(0);
    if (slot < 0 || vblk_init(&disk, slot, VBLK_WANT_DEFAULT) != VBLK_OK) fail("no disk", 0);
    if (disk.capacity_sectors < SECTORS_USED) fail("disk too small", (uint32_t)disk.capacity_sectors);
    line("sim_workload: %u sectors, %u rounds", SECTORS_USED, ROUNDS);
    for (uint32_t round = 1; round <= ROUNDS; round++) {
        vblk_set_wait_mode(&disk, round % 2 == 1 ? VBLK_WAIT_POLL : VBLK_WAIT_IRQ);
        rt_set_trap_hook(on_trap); /* ours passes the disk's interrupts on to the driver */
        disk.timeout_ticks = 0;    /* poll without reading the clock: no time-dependent outcome */
        for (uint32_t first = 0; first < SECTORS_USED; first += 2 * BATCH) {
            if (round > 1 && round_of(first, round) != round && round_of(first + BATCH, round) != round) continue;
            write_pair(first, round);
            line("round %u: wrote sectors %u..", round, first);
            if ((first / (2 * BATCH)) % 3 == round % 3) sleep_ms(1 + first % 3);
            if ((first / (2 * BATCH)) % 4 == 1) line("work %08x", work(first * round), 0);
        }
        request(VIRTIO_BLK_T_FLUSH, 0, 0, 0);
        // After round r every sector holds its last round; later rounds rewrite whole pairs.
        request(VIRTIO_BLK_T_IN, 0, readback, SECTORS_USED);
        uint32_t digest = 0x811c9dc5u;
        for (uint32_t i = 0; i < SECTORS_USED * 128; i++) digest = (digest ^ readback[i]) * 0x01000193u;
        line("round %u: read back, digest %08x", round, digest);
        write_then_read(round);
        sleep_ms(2);
    }
    for (uint32_t s = 0; s < SECTORS_USED; s++) {
        uint32_t pair_round = 1;
        for (uint32_t r = 2; r <= ROUNDS; r++) {
            uint32_t first = s - s % (2 * BATCH);
            if (round_of(first, r) == r || round_of(first + BATCH, r) == r) pair_round = r;
        }
        for (uint32_t k = 0; k < 128; k++)
            if (readback[s * 128 + k] != word(s, pair_round, k)) fail("sector content", s);
    }
    line("checked %u sectors", SECTORS_USED, 0);
    rt_printf("sim_workload: PASS\n");
    return 0;
}
