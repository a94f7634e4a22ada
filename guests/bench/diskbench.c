/* diskbench: the paper's synchronous disk workloads (Bressoud & Schneider, section 5): 2048
 * writes of random blocks of a pre-allocated region, one request at a time, each waited for
 * by interrupt in WFI before the next; then 2048 reads of random blocks, each checked against
 * what the writes left there. For `understudy bench replication`, under `run` and under a
 * primary and backup.
 *
 * Harness contract:
 * - one disk, read-write, the first (virtio slot 7), of at least REGION_BLOCKS blocks of
 *   BLOCK_BYTES (8 MiB), holding zeros (the pre-allocated region);
 * - the host clock (`--clock host`, the default): the phases are timed with mtime.
 *
 * Console: "diskbench: a region of N blocks of B bytes", then one line per phase,
 *     "diskbench: write 2048 ops of 8192 bytes in T us"
 *     "diskbench: read 2048 ops of 8192 bytes in T us, verified"
 * (T: mtime ticks at 10 MHz, as microseconds), then "diskbench: PASS" and exit status 0.
 * Built with ROUNDS = N (build/diskbench-rounds.elf: 8), the two phases run N times, each
 * printing its line: the later rounds show the host's steady state.
 * A block read back that differs from what was written prints "diskbench: FAIL ..." and the
 * run ends with exit status 1; a device that cannot be used, with 2.
 *
 * Environment reads: four mtime reads (two per phase) and none in the waits, so that the log
 * carries the requests and their completions, not the clock.
 *
 * The blocks are 8 KiB, as the paper's reads (a write request carries its data to the host;
 * a read's completion carries it back in the replication log). A block's content is a
 * function of (block, the number of the write that wrote it last), so a stale or misplaced
 * block cannot pass for the right one. */
#include "runtime.h"
#include "virtio.h"

#ifndef ROUNDS
#define ROUNDS         1u    /* the phases, this many times (build/diskbench-rounds.elf: 8) */
#endif
#define OPERATIONS     2048u
#define BLOCK_BYTES    8192u
#define BLOCK_WORDS    (BLOCK_BYTES / 4u)
#define BLOCK_SECTORS  (BLOCK_BYTES / VIRTIO_BLK_SECTOR_BYTES)
#define REGION_BLOCKS  1024u /* 8 MiB */
#define TICKS_PER_US   10u   /* mtime runs at 10 MHz */
#define STATUS_FAIL    1
#define STATUS_DEVICE  2

static struct vblk disk;
static uint32_t buffer[BLOCK_WORDS] __attribute__((aligned(4096)));
/* The write (1..OPERATIONS) that wrote each block last; 0: never written (zeros). */
static uint16_t last_write[REGION_BLOCKS];
static uint32_t prng_state = 0x2545f491u;

/* xorshift32: the same sequence on every machine. */
static uint32_t next_random(void) {
    uint32_t x = prng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return prng_state = x;
}

static uint32_t content_word(uint32_t block, uint32_t write, uint32_t word) {
    if (write == 0) return 0;
    uint32_t x = (block * 0x9e3779b1u) ^ (write * 0x85ebca6bu) ^ (word * 0xc2b2ae35u);
    return x ^ (x >> 15);
}

static void device_failure(const char *what, int status) {
    rt_printf("diskbench: FAIL %s: %d\n", what, status);
    rt_exit(STATUS_DEVICE);
}

static uint32_t elapsed_us(uint64_t from) {
    return (uint32_t)((read_mtime() - from) / TICKS_PER_US);
}

static void write_phase(void) {
    uint64_t started = read_mtime();
    for (uint32_t write = 1; write <= OPERATIONS; write++) {
        uint32_t block = next_random() % REGION_BLOCKS;
        for (uint32_t word = 0; word < BLOCK_WORDS; word++) buffer[word] = content_word(block, write, word);
        int status = vblk_write(&disk, block * BLOCK_SECTORS, buffer, BLOCK_SECTORS);
        if (status != VIRTIO_BLK_S_OK) device_failure("a write", status);
        last_write[block] = (uint16_t)write;
    }
    rt_printf("diskbench: write %u ops of %u bytes in %u us\n", OPERATIONS, BLOCK_BYTES, elapsed_us(started));
}

/* Returns the number of blocks that did not hold what was written. */
static uint32_t read_phase(void) {
    uint32_t bad = 0;
    uint64_t started = read_mtime();
    for (uint32_t read = 0; read < OPERATIONS; read++) {
        uint32_t block = next_random() % REGION_BLOCKS;
        for (uint32_t word = 0; word < BLOCK_WORDS; word++) buffer[word] = 0xeeeeeeeeu; /* a read that transferred nothing fails */
        int status = vblk_read(&disk, block * BLOCK_SECTORS, buffer, BLOCK_SECTORS);
        if (status != VIRTIO_BLK_S_OK) device_failure("a read", status);
        for (uint32_t word = 0; word < BLOCK_WORDS; word++) {
            if (buffer[word] != content_word(block, last_write[block], word)) {
                if (bad++ == 0) rt_printf("diskbench: FAIL block %u word %u holds %08x, not what write %u wrote\n", block, word, buffer[word], last_write[block]);
                break;
            }
        }
    }
    rt_printf("diskbench: read %u ops of %u bytes in %u us, %s\n", OPERATIONS, BLOCK_BYTES, elapsed_us(started), bad == 0 ? "verified" : "DIFFERENT");
    return bad;
}

int main(void) {
    int slot = vblk_find(0);
    if (slot < 0) device_failure("no disk", slot);
    int result = vblk_init(&disk, slot, VBLK_WANT_DEFAULT);
    if (result != VBLK_OK) device_failure("the disk did not start", result);
    if (disk.features & VIRTIO_FEATURE(VIRTIO_BLK_F_RO)) device_failure("the disk is read-only", 0);
    if (disk.capacity_sectors < (uint64_t)REGION_BLOCKS * BLOCK_SECTORS) device_failure("the disk is smaller than 8 MiB", (int)disk.capacity_sectors);
    vblk_set_wait_mode(&disk, VBLK_WAIT_IRQ);
    rt_printf("diskbench: a region of %u blocks of %u bytes\n", REGION_BLOCKS, BLOCK_BYTES);
    uint32_t bad = 0;
    for (uint32_t round = 0; round < ROUNDS; round++) {
        write_phase();
        bad += read_phase();
    }
    if (bad != 0) {
        rt_printf("diskbench: FAIL %u blocks differ\n", bad);
        return STATUS_FAIL;
    }
    rt_puts("diskbench: PASS\n");
    return 0;
}
