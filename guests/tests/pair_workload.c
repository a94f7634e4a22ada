/* pair_workload: the guest that the primary/backup replication tests run while they inject
 * failures. It exercises, deterministically, everything replication must carry: console
 * output, timer interrupts (sleeps in WFI), disk writes and reads with polling and with
 * interrupt-driven waits, flushes, several requests in flight, environment reads (mtime),
 * atomic instructions, and CPU work between I/O, so that epochs also end mid-computation.
 * It checks itself, and its console output and final disk image are pure functions of the
 * program, which test/support/pair-workload.ts computes independently.
 *
 * Harness contract:
 * - exactly one disk, read-write, the first (virtio slot 7): a 1 MiB image (2048 sectors)
 *   that holds zeros at the start (createBlankDiskImage in test/support/pair-workload.ts);
 * - any clock (host or virtual): nothing printed depends on time.
 *
 * Console contract: every line but the last is "line NNNN <text>\n", numbered from 0001
 * without gaps. The text depends only on the program: never on times, instruction counts,
 * wake-ups or polling rounds, so every correct run prints byte-identical output. A correct run
 * ends with "pair_workload: PASS lines=N disk=OK\n" (N = numbered lines) and exit status 0.
 * A failed check prints "pair_workload: FAIL <what>" at once, and the run ends with
 * "pair_workload: FAIL lines=N failures=F" and exit status F (at most 89); a device that
 * cannot be used ends the run at once with exit status 90; an unexpected trap with 99.
 *
 * Disk contract: a sector holds zeros (round 0) or the record of (sector s, round r >= 1),
 * in 32-bit little-endian words:
 *     word 0 = 0x52494150 ("PAIR"), word 1 = s, word 2 = r, word k >= 3 = record_word(s, r, k).
 * Round by round: 1 writes sectors 0..511; 2 rewrites those of 0..511 with s % 3 == 0 and
 * writes 512..1535; 3 rewrites those of 0..511 with s % 7 == 0; 4 rewrites those of 512..1535
 * with s % 5 == 0; 5 writes sector 2047. So after a run sector s holds round final_round(s):
 *     s == 2047 -> 5;  1536 <= s < 2047 -> 0;  512 <= s < 1536 -> (s % 5 == 0 ? 4 : 2);
 *     s < 512 -> (s % 7 == 0 ? 3 : s % 3 == 0 ? 2 : 1).
 *
 * Failover (P8): an uncertain interrupt may show as a request that completes with IOERR. The
 * workload then repeats the request (silently, so the console stays the same), up to
 * ATTEMPTS_MAX times in all. Repeats, and requests the environment performs twice, leave
 * the same image: every write is idempotent (its content depends only on sector and round),
 * no two requests in flight touch the same sector, and a sector is written again only after
 * every earlier request touching it has completed.
 *
 * Time: a fixed number of sleeps in WFI of 1..5 ms each (the cycle 1, 4, 2, 5, 3), about 0.4 s
 * in all, and about 46 million instructions on understudy: some 10 million of work, as many
 * spinning in polling waits (understudy's runner completes requests between slices of a
 * million instructions), the rest filling, checking and digesting sectors.
 *
 * Polling waits spin without reading the clock (timeout_ticks = 0): each mtime read is an
 * environment read that a primary must log, and a spin of a million instructions would log
 * tens of thousands. The harness's own timeout bounds a device that never answers. */
#include "runtime.h"
#include "virtio.h"

#ifndef DISK_SECTORS /* pair_small.c sets a smaller shape */
#define DISK_SECTORS   2048u
#endif
#define SECTOR_BYTES   512u
#define SECTOR_WORDS   (SECTOR_BYTES / 4u)
#ifndef LOW_END /* pair_small.c sets a smaller shape */
#define LOW_END        512u  /* the low region: sectors 0..511 */
#endif
#ifndef MIDDLE_END /* pair_small.c sets a smaller shape */
#define MIDDLE_END     1536u /* the middle region: sectors 512..1535 */
#endif
#define LAST_SECTOR    (DISK_SECTORS - 1u)
#define RECORD_MAGIC   0x52494150u /* "PAIR" in little-endian bytes */
#define BATCH_MAX      8u          /* requests in flight at once: with indirect tables, 1 descriptor each */
#define DIRECT_MAX     4u          /* ... without: 3 descriptors each, in a queue of 16 */
#define BUFFER_SECTORS 1024u       /* the largest batch: 8 requests of 128 sectors */
#define ATTEMPTS_MAX   4u          /* tries per request before it counts as failed */
#define TICKS_PER_MS   10000u      /* mtime runs at 10 MHz */
#define WAKEUPS_MAX    100000u     /* wake-ups per sleep before it counts as stuck */
#ifndef TICKS /* pair_small.c sets a smaller shape */
#define TICKS          24u         /* the sleeps of the timer section */
#endif
#ifndef WORK_ITERATIONS /* pair_small.c sets a smaller shape */
#define WORK_ITERATIONS 14000u     /* about 0.4 million instructions per work item */
#endif
#define FAILURE_STATUS_MAX 89
#define FATAL_STATUS   90

#define CAUSE_MACHINE_TIMER (CAUSE_INTERRUPT | 7u)

static struct vblk disk;
static uint32_t write_buffer[64u * SECTOR_WORDS] __attribute__((aligned(4096)));
static uint32_t read_buffer[BUFFER_SECTORS * SECTOR_WORDS] __attribute__((aligned(4096)));
/* The round each sector holds now, as far as this program knows. */
static uint8_t rounds[DISK_SECTORS];
static uint32_t lines, failures, sleeps, work_items;
static volatile uint32_t timer_fired;

/* --- console ------------------------------------------------------------------------------ */

/* Prints the next numbered line. */
static void line(const char *fmt, ...) {
    char text[160];
    va_list ap;
    va_start(ap, fmt);
    rt_vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    rt_printf("line %04u %s\n", ++lines, text);
}

static void fail(const char *fmt, ...) {
    char text[160];
    va_list ap;
    va_start(ap, fmt);
    rt_vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    rt_printf("pair_workload: FAIL %s\n", text);
    failures++;
}

/* A device the workload cannot use: no point going on. */
__attribute__((noreturn)) static void fatal(const char *fmt, ...) {
    char text[160];
    va_list ap;
    va_start(ap, fmt);
    rt_vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    rt_printf("pair_workload: FAIL %s\n", text);
    rt_exit(FATAL_STATUS);
}

/* --- records -------------------------------------------------------------------------------- */

/* A 32-bit mix of (sector, round, word index), so that a word from the wrong sector, round or
 * offset shows. */
static uint32_t record_word(uint32_t sector, uint32_t round, uint32_t k) {
    uint32_t x = sector * 0x9e3779b1u + round * 0x85ebca77u + k * 0xc2b2ae3du;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static uint32_t expected_word(uint32_t sector, uint32_t round, uint32_t k) {
    if (round == 0) return 0;
    if (k == 0) return RECORD_MAGIC;
    if (k == 1) return sector;
    if (k == 2) return round;
    return record_word(sector, round, k);
}

static uint32_t final_round(uint32_t sector) {
    if (sector == LAST_SECTOR) return 5;
    if (sector >= MIDDLE_END) return 0;
    if (sector >= LOW_END) return sector % 5 == 0 ? 4 : 2;
    return sector % 7 == 0 ? 3 : sector % 3 == 0 ? 2 : 1;
}

static void fill_record(uint32_t *words, uint32_t sector, uint32_t round) {
    for (uint32_t k = 0; k < SECTOR_WORDS; k++) words[k] = expected_word(sector, round, k);
}

/* FNV-1a over 32-bit words: what the console prints of the data a step wrote or read. */
static uint32_t digest(const uint32_t *words, uint32_t count) {
    uint32_t h = 0x811c9dc5u;
    for (uint32_t i = 0; i < count; i++) h = (h ^ words[i]) * 0x01000193u;
    return h;
}

/* Checks `count` sectors read from `first` against rounds[]; prints the first difference. */
static int verify(const uint32_t *words, uint32_t first, uint32_t count) {
    for (uint32_t s = 0; s < count; s++) {
        uint32_t sector = first + s, round = rounds[sector];
        for (uint32_t k = 0; k < SECTOR_WORDS; k++) {
            uint32_t seen = words[s * SECTOR_WORDS + k], expected = expected_word(sector, round, k);
            if (seen != expected) {
                fail("sector %u (round %u) word %u = 0x%08x, expected 0x%08x", sector, round, k, seen, expected);
                return 0;
            }
        }
    }
    return 1;
}

/* --- time ----------------------------------------------------------------------------------- */

static void trap_hook_workload(struct trap_frame *frame, uint32_t mcause, uint32_t mepc, uint32_t mtval) {
    (void)frame;
    if (mcause == CAUSE_MACHINE_TIMER) {
        set_mtimecmp(UINT64_MAX);
        timer_fired = 1;
        return;
    }
    if (vblk_handle_trap(mcause)) return; /* the disk's completions */
    rt_printf("pair_workload: unexpected trap mcause=0x%x mepc=0x%x mtval=0x%x\n", mcause, mepc, mtval);
    rt_exit(99);
}

/* Sleeps in WFI until mtime passes a deadline `ms` milliseconds ahead. MIE stays clear except
 * for a moment after each wake-up, so no interrupt slips in between the check and the WFI;
 * disk completions that wake it are handled and the sleep goes on. */
static void sleep_ms(uint32_t ms) {
    uint32_t saved_mstatus = csr_read(mstatus);
    csr_clear(mstatus, MSTATUS_MIE);
    timer_fired = 0;
    uint64_t deadline = read_mtime() + (uint64_t)ms * TICKS_PER_MS;
    set_mtimecmp(deadline);
    csr_set(mie, MIP_MTIP);
    uint32_t wakeups = 0;
    while (!timer_fired && wakeups++ < WAKEUPS_MAX) {
        __asm__ volatile("wfi" ::: "memory");
        csr_set(mstatus, MSTATUS_MIE);
        csr_clear(mstatus, MSTATUS_MIE);
    }
    csr_clear(mie, MIP_MTIP);
    if (!timer_fired) fail("sleep %u: no timer interrupt after %u wake-ups", sleeps, WAKEUPS_MAX);
    else if (read_mtime() < deadline) fail("sleep %u: woke before its deadline", sleeps);
    sleeps++;
    csr_set(mstatus, MSTATUS_MIE); /* let a completion that came meanwhile be handled now */
    csr_write(mstatus, saved_mstatus);
}

/* The program's sleeps follow a fixed cycle of 1..5 ms (3 ms on average). */
static void sleep_next(void) { sleep_ms(1u + sleeps * 3u % 5u); }

/* --- work ----------------------------------------------------------------------------------- */

static uint32_t work_table[256];
static uint32_t work_total; /* updated with amoadd.w; carried from item to item */

/* Work item `item`: multiplies, signed and unsigned divisions, remainders, rotations, loads
 * and stores over a 1 KiB table, and an atomic add every 64 iterations. */
static uint32_t work(uint32_t item) {
    uint32_t x = item * 0x9e3779b9u + 1u;
    for (uint32_t i = 0; i < 256; i++) work_table[i] = x = x * 1664525u + 1013904223u;
    uint32_t acc = item;
    for (uint32_t i = 0; i < WORK_ITERATIONS; i++) {
        x = x * 1664525u + 1013904223u;
        uint32_t slot = x >> 24, entry = work_table[slot];
        acc += x / ((i & 0xffu) + 1u);
        acc ^= entry % 251u;
        acc += (uint32_t)((int32_t)acc / (int32_t)((entry >> 1) | 1u));
        work_table[slot] = (entry ^ acc) * 0x2545f491u;
        acc = acc << 5 | acc >> 27;
        if ((i & 63u) == 0) __atomic_fetch_add(&work_total, acc, __ATOMIC_RELAXED);
    }
    return acc ^ __atomic_load_n(&work_total, __ATOMIC_RELAXED);
}

static void work_line(void) {
    uint32_t item = work_items++;
    line("work %02u: %08x", item, work(item));
}

/* --- disk requests -------------------------------------------------------------------------- */

struct transfer {
    uint32_t type; /* VIRTIO_BLK_T_IN or _OUT */
    uint32_t sector;
    uint32_t count;
    uint32_t *words;
    int head;
};

static int submit(struct transfer *t, int indirect) {
    struct vblk_segment segment = {t->words, t->count * SECTOR_BYTES};
    struct vblk_request r = {t->type, t->sector, &segment, 1, indirect};
    return vblk_submit(&disk, &r);
}

/* Puts every transfer in flight at once (one request each). */
static void submit_all(struct transfer *batch, uint32_t n, int indirect) {
    for (uint32_t i = 0; i < n; i++) {
        batch[i].head = submit(&batch[i], indirect);
        if (batch[i].head < 0) fatal("cannot submit a request: %d", batch[i].head);
    }
}

/* Waits for every transfer of a batch, then repeats the ones that failed (P8), one by one. */
static void wait_all(struct transfer *batch, uint32_t n) {
    int status[BATCH_MAX];
    for (uint32_t i = 0; i < n; i++) {
        status[i] = vblk_wait(&disk, batch[i].head, 0);
        if (status[i] < 0) fatal("a request got no answer: %d", status[i]);
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t attempt = 1; status[i] != VIRTIO_BLK_S_OK && attempt < ATTEMPTS_MAX; attempt++) {
            int head = submit(&batch[i], 0);
            status[i] = head < 0 ? head : vblk_wait(&disk, head, 0);
            if (status[i] < 0) fatal("a repeated request got no answer: %d", status[i]);
        }
        if (status[i] != VIRTIO_BLK_S_OK) {
            fail("%s of %u sectors at %u: status %d after %u attempts", batch[i].type == VIRTIO_BLK_T_OUT ? "write" : "read",
                 batch[i].count, batch[i].sector, status[i], ATTEMPTS_MAX);
        } else if (batch[i].type == VIRTIO_BLK_T_OUT) {
            for (uint32_t s = 0; s < batch[i].count; s++) rounds[batch[i].sector + s] = (uint8_t)batch[i].words[s * SECTOR_WORDS + 2];
        }
    }
}

/* `n` transfers of `count` consecutive sectors each from `first`, in `buffer`. */
static void plan(struct transfer *batch, uint32_t n, uint32_t type, uint32_t first, uint32_t count, uint32_t *buffer) {
    for (uint32_t i = 0; i < n; i++) batch[i] = (struct transfer){type, first + i * count, count, buffer + i * count * SECTOR_WORDS, -1};
}

static void flush(const char *mode) {
    int status = VIRTIO_BLK_S_IOERR;
    for (uint32_t attempt = 0; status != VIRTIO_BLK_S_OK && attempt < ATTEMPTS_MAX; attempt++) {
        status = vblk_flush(&disk);
        if (status < 0) fatal("a flush got no answer: %d", status);
    }
    if (status != VIRTIO_BLK_S_OK) fail("%s flush: status %d", mode, status);
    line("%s flush: %s", mode, status == VIRTIO_BLK_S_OK ? "ok" : "failed");
}

/* Fills a read buffer with a value no record holds, so that a read that transferred nothing
 * cannot pass for one that did. */
static void poison(uint32_t *words, uint32_t sectors) {
    for (uint32_t i = 0; i < sectors * SECTOR_WORDS; i++) words[i] = 0xeeeeeeeeu;
}

/* Reads `n` * `count` sectors from `first` into read_buffer as `n` requests (at most
 * BATCH_MAX) in flight together. */
static void read_sectors(uint32_t first, uint32_t n, uint32_t count, int indirect) {
    struct transfer batch[BATCH_MAX];
    poison(read_buffer, n * count);
    plan(batch, n, VIRTIO_BLK_T_IN, first, count, read_buffer);
    submit_all(batch, n, indirect);
    wait_all(batch, n);
}

/* read_sectors, then the check: 1 if the sectors hold what rounds[] says. */
static int read_checked(uint32_t first, uint32_t n, uint32_t count, int indirect) {
    read_sectors(first, n, count, indirect);
    return verify(read_buffer, first, n * count);
}

static const char *ok(int good) { return good ? "ok" : "bad"; }

static void use_polling(void) {
    vblk_set_wait_mode(&disk, VBLK_WAIT_POLL);
    disk.timeout_ticks = 0; /* see the top of this file */
    rt_set_trap_hook(trap_hook_workload);
}

static void use_interrupts(void) {
    vblk_set_wait_mode(&disk, VBLK_WAIT_IRQ);
    rt_set_trap_hook(trap_hook_workload); /* which passes the disk's interrupts to the driver */
}

/* Writes single-sector records of `round` to every sector of [first, end) with
 * sector % modulus == 0, `per_batch` requests in flight at a time; pauses during each batch
 * when `sleep_in_flight`. Returns the number of sectors. */
static uint32_t rewrite_multiples(uint32_t first, uint32_t end, uint32_t modulus, uint32_t round, uint32_t per_batch,
                                  int sleep_in_flight) {
    struct transfer batch[BATCH_MAX];
    uint32_t n = 0, total = 0;
    for (uint32_t sector = first; sector < end; sector++) {
        if (sector % modulus == 0) {
            uint32_t *words = write_buffer + n * SECTOR_WORDS;
            fill_record(words, sector, round);
            batch[n++] = (struct transfer){VIRTIO_BLK_T_OUT, sector, 1, words, -1};
        }
        if (n == per_batch || (sector + 1 == end && n > 0)) {
            submit_all(batch, n, per_batch > DIRECT_MAX);
            if (sleep_in_flight) sleep_next();
            wait_all(batch, n);
            total += n;
            n = 0;
        }
    }
    return total;
}

/* --- the phases ----------------------------------------------------------------------------- */

static void start(void) {
    int slot = vblk_find(0);
    if (slot < 0) fatal("no disk");
    int result = vblk_init(&disk, slot, VBLK_WANT_DEFAULT);
    if (result != VBLK_OK) fatal("the disk did not start: %d", result);
    if ((uint32_t)disk.capacity_sectors != DISK_SECTORS || (uint32_t)(disk.capacity_sectors >> 32) != 0) {
        fatal("the disk has %u sectors, not %u", (uint32_t)disk.capacity_sectors, DISK_SECTORS);
    }
    if (!(disk.features & VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC))) fatal("the disk offers no indirect descriptors");
    if (!(disk.features & VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH))) fatal("the disk offers no flush");
    if (disk.features & VIRTIO_FEATURE(VIRTIO_BLK_F_RO)) fatal("the disk is read-only");
    use_polling();
    line("pair_workload: a read-write disk of %u sectors, with indirect descriptors and flush", DISK_SECTORS);
    /* The contract: a blank image. 2 batches of 8 requests of 128 sectors. */
    int blank = 1;
    for (uint32_t first = 0; first < DISK_SECTORS; first += BUFFER_SECTORS) blank &= read_checked(first, BATCH_MAX, 128, 1);
    line("poll read 0..%u: %s, all zero", DISK_SECTORS - 1, ok(blank));
}

/* The timer alone: sleeps with no I/O in flight. */
static void ticks(void) {
    for (uint32_t t = 1; t <= TICKS; t++) {
        sleep_next();
        line("tick %02u of %u", t, TICKS);
    }
}

/* Round 1, polling: sectors 0..511, 64 at a time as 4 requests of 16, in flight together with
 * the 4 requests that read back the 64 written one step before. On odd steps the guest sleeps
 * while they are in flight and the poll finds them done; on even steps it works, then spins. */
static void polled_writes(void) {
    struct transfer batch[BATCH_MAX];
    for (uint32_t step = 0; step <= LOW_END / 64; step++) {
        uint32_t first = step * 64, n = 0;
        if (first < LOW_END) {
            for (uint32_t s = 0; s < 64; s++) fill_record(write_buffer + s * SECTOR_WORDS, first + s, 1);
            plan(batch, 4, VIRTIO_BLK_T_OUT, first, 16, write_buffer);
            n = 4;
        }
        if (step > 0) {
            poison(read_buffer, 64);
            plan(batch + n, 4, VIRTIO_BLK_T_IN, first - 64, 16, read_buffer);
            n += 4;
        }
        submit_all(batch, n, 1);
        if (step % 2 == 1) sleep_next();
        else work_line();
        wait_all(batch, n);
        if (first < LOW_END) {
            line("poll write %u..%u round 1: 4 requests, digest %08x", first, first + 63, digest(write_buffer, 64 * SECTOR_WORDS));
        }
        if (step > 0) {
            int good = verify(read_buffer, first - 64, 64);
            line("poll read %u..%u: %s, digest %08x", first - 64, first - 1, ok(good), digest(read_buffer, 64 * SECTOR_WORDS));
        }
    }
    flush("poll");
}

/* Round 2, by interrupt. */
static void interrupt_writes(void) {
    struct transfer batch[BATCH_MAX];
    use_interrupts();
    line("wait mode: interrupts");
    for (uint32_t group = 0; group < LOW_END / 32; group++) {
        uint32_t first = group * 32;
        uint32_t count = rewrite_multiples(first, first + 32, 3, 2, DIRECT_MAX, 0);
        line("irq rewrite %u..%u where s %% 3 == 0: %u sectors, round 2", first, first + 31, count);
        sleep_next();
        if (group % 4 == 3) work_line();
    }
    for (uint32_t first = LOW_END; first < MIDDLE_END; first += 64) {
        for (uint32_t s = 0; s < 64; s++) fill_record(write_buffer + s * SECTOR_WORDS, first + s, 2);
        plan(batch, 4, VIRTIO_BLK_T_OUT, first, 16, write_buffer);
        submit_all(batch, 4, 1);
        sleep_next(); /* the completions interrupt the sleep */
        wait_all(batch, 4);
        line("irq write %u..%u round 2: 4 requests, digest %08x", first, first + 63, digest(write_buffer, 64 * SECTOR_WORDS));
        if ((first - LOW_END) % 128 == 64) work_line();
    }
    for (uint32_t first = 0; first < MIDDLE_END; first += 64) {
        int good = read_checked(first, 1, 64, 0);
        line("irq read %u..%u: %s, digest %08x", first, first + 63, ok(good), digest(read_buffer, 64 * SECTOR_WORDS));
        if (first % 192 == 128) sleep_next();
    }
    flush("irq");
}

/* Round 3, polling again: single-sector rewrites, 8 in flight, then one batch of 8 big reads. */
static void polled_rewrites(void) {
    use_polling();
    line("wait mode: polling");
    uint32_t chunk = 0;
    for (uint32_t first = 0; first < LOW_END; first += 8 * 7, chunk++) {
        /* Odd chunks sleep while their writes are in flight; even ones spin, then work. */
        int sleeping = chunk % 2 == 1;
        uint32_t end = first + 8 * 7 < LOW_END ? first + 8 * 7 : LOW_END;
        uint32_t count = rewrite_multiples(first, end, 7, 3, BATCH_MAX, sleeping);
        line("poll rewrite %u..%u where s %% 7 == 0: %u sectors, round 3", first, end - 1, count);
        if (!sleeping) {
            work_line();
            sleep_next();
        }
    }
    read_sectors(0, BATCH_MAX, 64, 1);
    for (uint32_t first = 0; first < LOW_END; first += 64) {
        int good = verify(read_buffer + first * SECTOR_WORDS, first, 64);
        line("poll read %u..%u: %s, digest %08x", first, first + 63, ok(good), digest(read_buffer + first * SECTOR_WORDS, 64 * SECTOR_WORDS));
    }
}

/* Round 4, by interrupt: single-sector rewrites, 4 in flight, sleeping while they complete. */
static void interrupt_rewrites(void) {
    use_interrupts();
    line("wait mode: interrupts");
    for (uint32_t first = LOW_END; first < MIDDLE_END; first += 64) {
        uint32_t count = rewrite_multiples(first, first + 64, 5, 4, DIRECT_MAX, 1);
        line("irq rewrite %u..%u where s %% 5 == 0: %u sectors, round 4", first, first + 63, count);
        if ((first - LOW_END) % 256 == 192) work_line();
    }
    for (uint32_t first = LOW_END; first < MIDDLE_END; first += 128) {
        read_sectors(first, 2, 64, 0);
        for (uint32_t half = 0; half < 2; half++) {
            const uint32_t *words = read_buffer + half * 64 * SECTOR_WORDS;
            uint32_t from = first + half * 64;
            line("irq read %u..%u: %s, digest %08x", from, from + 63, ok(verify(words, from, 64)), digest(words, 64 * SECTOR_WORDS));
        }
    }
}

/* Round 5: the last sector, read back, and a flush. */
static void last_sector(void) {
    struct transfer one;
    fill_record(write_buffer, LAST_SECTOR, 5);
    plan(&one, 1, VIRTIO_BLK_T_OUT, LAST_SECTOR, 1, write_buffer);
    submit_all(&one, 1, 0);
    wait_all(&one, 1);
    line("irq write %u round 5: digest %08x", LAST_SECTOR, digest(write_buffer, SECTOR_WORDS));
    int good = read_checked(LAST_SECTOR, 1, 1, 0);
    line("irq read %u: %s, digest %08x", LAST_SECTOR, ok(good), digest(read_buffer, SECTOR_WORDS));
    flush("irq");
}

/* The whole disk, 2 requests of 64 sectors in flight at a time, against rounds[]; then
 * rounds[] against the documented final_round(). */
static void final_check(void) {
    for (uint32_t first = 0; first < DISK_SECTORS; first += 128) {
        read_sectors(first, 2, 64, 0);
        for (uint32_t half = 0; half < 2; half++) {
            const uint32_t *words = read_buffer + half * 64 * SECTOR_WORDS;
            uint32_t from = first + half * 64;
            line("final read %u..%u: %s, digest %08x", from, from + 63, ok(verify(words, from, 64)), digest(words, 64 * SECTOR_WORDS));
        }
    }
    uint32_t differing = 0;
    for (uint32_t s = 0; s < DISK_SECTORS; s++) {
        if (rounds[s] != final_round(s)) {
            if (differing++ == 0) fail("sector %u holds round %u, final_round says %u", s, rounds[s], final_round(s));
        }
    }
    line("final rounds: %s", differing == 0 ? "as documented" : "different");
    line("timer: %u sleeps, each woke at or after its deadline", sleeps);
}

#ifdef GATED
/* The gate (pair_gated.c, pair_small_gated.c): before its last line the workload waits, in
 * WFI with 5 ms timer sleeps, until a byte arrives on the console, and prints nothing more
 * for it. A test can then take its time to kill a replica or look at the pair, and the guest
 * cannot finish first, however fast or loaded the machine. The console stays the same. */
static void wait_for_gate(void) {
    while ((*(volatile uint8_t *)(UART_BASE + 5u) & 1u) == 0) sleep_ms(5);
    (void)*(volatile uint8_t *)(UART_BASE + 0u);
}
#endif

int main(void) {
    rt_set_trap_hook(trap_hook_workload);
    start();
    ticks();
    polled_writes();
    interrupt_writes();
    polled_rewrites();
    interrupt_rewrites();
    last_sector();
    final_check();
#ifdef GATED
    wait_for_gate();
#endif
    if (failures == 0) {
        rt_printf("pair_workload: PASS lines=%u disk=OK\n", lines);
        return 0;
    }
    rt_printf("pair_workload: FAIL lines=%u failures=%u\n", lines, failures);
    return failures > FAILURE_STATUS_MAX ? FAILURE_STATUS_MAX : (int)failures;
}
