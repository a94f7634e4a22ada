/* The virtio block device, read-write (virtio 1.2, 5.2), through guests/lib/virtio.c.
 *
 * Contract with the harness (test/disk.test.ts prepares the image and checks it afterwards):
 * - exactly one disk, the first one (virtio slot 7, 0x1000_8000, PLIC source 8), read-write;
 * - the image is 1 MiB (2048 sectors) and holds the pattern of lib/disk_pattern.h with tag
 *   DISK_TAG_ORIGINAL: 32-bit little-endian word k of sector n = 0x5d000000 | n << 8 | k;
 * - its serial (the GET_ID answer) is "understudy-disk0": understudy names its first disk so,
 *   QEMU needs -drive ...,serial=understudy-disk0.
 * Afterwards sectors 100, 200..202, 1500..1507 and 2047 hold the pattern with tag
 * DISK_TAG_WRITTEN (0xc3) and every other sector is unchanged.
 *
 * It checks discovery and the handshake, the capacity, GET_ID, reads of one and many
 * sectors, a chain whose data is split across descriptors at odd sizes, an indirect table,
 * several requests in flight at once, IOERR for requests beyond the capacity or not a
 * whole number of sectors (nothing transferred), UNSUPP for an unknown type, writes of
 * several sizes, FLUSH, and finally the whole disk. The first half polls the used ring with
 * notifications suppressed; the second half sleeps in WFI until the device interrupts.
 *
 * The console output is the same on QEMU and understudy: nothing printed depends on timing,
 * on features one machine offers and the other not, or on addresses. */
#include "runtime.h"
#include "virtio.h"
#include "disk_pattern.h"

#define DISK_SECTORS     2048u
#define EXPECTED_SLOT    7
#define EXPECTED_ID      "understudy-disk0"
#define BUFFER_SECTORS   64u
#define STATUS_LIVE      (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)

static struct vblk disk;
static uint8_t buffer[BUFFER_SECTORS * DISK_SECTOR_BYTES] __attribute__((aligned(4096)));
static uint8_t scratch[BUFFER_SECTORS * DISK_SECTOR_BYTES] __attribute__((aligned(4096)));
/* 1 for each sector this program has written: what the disk should hold now. */
static uint8_t written[DISK_SECTORS];
static int step;

static void progress(const char *fmt, ...) {
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    rt_vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    rt_printf("disk %02d: %s\n", ++step, line);
}

static void expect_status(const char *what, int actual, int expected) { rt_expect(what, "status", (uint32_t)actual, (uint32_t)expected); }

static uint32_t tag_of(uint32_t sector) { return written[sector] ? DISK_TAG_WRITTEN : DISK_TAG_ORIGINAL; }

/* Checks `count` sectors read from `sector` against what the disk should hold. */
static int check_contents(const char *what, const uint8_t *data, uint32_t sector, uint32_t count) {
    for (uint32_t s = 0; s < count; s++) {
        int32_t at = disk_pattern_mismatch(data + s * DISK_SECTOR_BYTES, tag_of(sector + s), sector + s, 1);
        if (at >= 0) {
            rt_failures++;
            rt_printf("FAIL %s: sector %u differs at byte %d\n", what, sector + s, at);
            return 0;
        }
    }
    return 1;
}

/* Reads `count` sectors at `sector` with one data descriptor and checks them. */
static int read_and_check(const char *what, uint32_t sector, uint32_t count) {
    memset(buffer, 0xee, count * DISK_SECTOR_BYTES);
    int status = vblk_read(&disk, sector, buffer, count);
    expect_status(what, status, VIRTIO_BLK_S_OK);
    return status == VIRTIO_BLK_S_OK && check_contents(what, buffer, sector, count);
}

/* Writes the new pattern to `count` sectors at `sector`, split into `segment_count` equal
 * descriptors (directly or through an indirect table), and records them as written. */
static int write_pattern(const char *what, uint32_t sector, uint32_t count, uint32_t segment_count, int indirect) {
    struct vblk_segment segments[VBLK_SEGMENTS_MAX];
    uint32_t bytes = count * DISK_SECTOR_BYTES, piece = bytes / segment_count;
    disk_pattern_fill(buffer, DISK_TAG_WRITTEN, sector, count);
    for (uint32_t i = 0; i < segment_count; i++) segments[i] = (struct vblk_segment){buffer + i * piece, piece};
    struct vblk_request r = {VIRTIO_BLK_T_OUT, sector, segments, segment_count, indirect};
    uint32_t used = 0;
    int status = vblk_do(&disk, &r, &used);
    expect_status(what, status, VIRTIO_BLK_S_OK);
    /* 2.7.8: len counts the bytes written into device-writable buffers: the status byte. */
    rt_expect(what, "used len", used, 1);
    if (status != VIRTIO_BLK_S_OK) return 0;
    for (uint32_t s = 0; s < count; s++) written[sector + s] = 1;
    return 1;
}

static int test_discovery(void) {
    int slot = vblk_find(0);
    CHECK_EQ(slot, EXPECTED_SLOT);
    CHECK_EQ(vblk_find(1), -1);
    if (slot < 0) return 0;
    progress("block device in slot %d at 0x%x, the only one", slot, VIRTIO_BASE + (uint32_t)slot * VIRTIO_STRIDE);

    int result = vblk_init(&disk, slot, VBLK_WANT_DEFAULT);
    CHECK_EQ(result, VBLK_OK);
    if (result != VBLK_OK) return 0;
    uint64_t offered = disk.offered_features;
    CHECK((offered & VIRTIO_FEATURE(VIRTIO_F_VERSION_1)) != 0);
    CHECK((offered & VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH)) != 0);
    CHECK((offered & VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC)) != 0);
    CHECK((offered & VIRTIO_FEATURE(VIRTIO_BLK_F_RO)) == 0);
    CHECK_EQ(vblk_reg_read(&disk, VIRTIO_MMIO_STATUS), STATUS_LIVE);
    CHECK_EQ(vblk_reg_read(&disk, VIRTIO_MMIO_VENDOR_ID), 0x554d4551u); /* "QEMU" */
    progress("handshake done: VERSION_1, INDIRECT_DESC and FLUSH accepted, status 0x%x", vblk_reg_read(&disk, VIRTIO_MMIO_STATUS));
    /* QueueNumMax is not printed: QEMU's virtio-mmio says 1024 whatever the device's queue
     * size, understudy says 256. */
    CHECK(disk.queue_size_max >= VBLK_QUEUE_SIZE);
    progress("queue of %u entries", disk.queue_size);
    CHECK_EQ((uint32_t)disk.capacity_sectors, DISK_SECTORS);
    CHECK_EQ((uint32_t)(disk.capacity_sectors >> 32), 0);
    progress("capacity %u sectors", (uint32_t)disk.capacity_sectors);
    return 1;
}

static void test_get_id(void) {
    char id[VIRTIO_BLK_ID_BYTES + 1];
    memset(scratch, 0xee, VIRTIO_BLK_ID_BYTES);
    struct vblk_segment segment = {scratch, VIRTIO_BLK_ID_BYTES};
    struct vblk_request r = {VIRTIO_BLK_T_GET_ID, 0, &segment, 1, 0};
    uint32_t used = 0;
    int status = vblk_do(&disk, &r, &used);
    expect_status("GET_ID", status, VIRTIO_BLK_S_OK);
    rt_expect("GET_ID", "used len", used, VIRTIO_BLK_ID_BYTES + 1);
    memcpy(id, scratch, VIRTIO_BLK_ID_BYTES);
    id[VIRTIO_BLK_ID_BYTES] = 0;
    /* 5.2.6: "a NUL-padded ASCII string up to 20 bytes long". QEMU writes the string and one
     * NUL and leaves the rest of the buffer alone; understudy pads all 20 bytes. */
    size_t length = strlen(id);
    if (length < VIRTIO_BLK_ID_BYTES) CHECK_EQ(scratch[length], 0);
    CHECK(strcmp(id, EXPECTED_ID) == 0);
    progress("GET_ID: \"%s\"", id);
}

static void test_reads(void) {
    if (read_and_check("read sector 0", 0, 1)) progress("read 1 sector ok");
    if (read_and_check("read 8 sectors at 16", 16, 8)) progress("read 8 sectors ok");
    if (read_and_check("read 64 sectors at 1000", 1000, 64)) progress("read 64 sectors ok");
    if (read_and_check("read the last sector", DISK_SECTORS - 1, 1)) progress("read the last sector ok");

    /* 4 sectors at 300 into five descriptors of odd sizes, scattered 1 KiB apart: the device
     * must find the data by byte position, not by descriptor (2.7.4.1). */
    static const uint32_t sizes[] = {100, 412, 1024, 7, 505};
    struct vblk_segment segments[5];
    memset(scratch, 0xee, sizeof scratch);
    for (uint32_t i = 0; i < 5; i++) segments[i] = (struct vblk_segment){scratch + i * 2048, sizes[i]};
    struct vblk_request r = {VIRTIO_BLK_T_IN, 300, segments, 5, 0};
    uint32_t used = 0;
    int status = vblk_do(&disk, &r, &used);
    expect_status("scattered read", status, VIRTIO_BLK_S_OK);
    rt_expect("scattered read", "used len", used, 4 * DISK_SECTOR_BYTES + 1);
    uint32_t position = 0;
    for (uint32_t i = 0; i < 5; i++) {
        memcpy(buffer + position, scratch + i * 2048, sizes[i]);
        position += sizes[i];
    }
    if (status == VIRTIO_BLK_S_OK && check_contents("scattered read", buffer, 300, 4))
        progress("read 4 sectors through 5 descriptors of 100, 412, 1024, 7 and 505 bytes ok");

    /* 8 sectors at 500 through an indirect table, sector i landing in slot 7 - i. */
    struct vblk_segment reversed[8];
    memset(scratch, 0xee, sizeof scratch);
    for (uint32_t i = 0; i < 8; i++) reversed[i] = (struct vblk_segment){scratch + (7 - i) * DISK_SECTOR_BYTES, DISK_SECTOR_BYTES};
    struct vblk_request indirect = {VIRTIO_BLK_T_IN, 500, reversed, 8, 1};
    status = vblk_do(&disk, &indirect, &used);
    expect_status("indirect read", status, VIRTIO_BLK_S_OK);
    for (uint32_t i = 0; i < 8; i++) memcpy(buffer + i * DISK_SECTOR_BYTES, scratch + (7 - i) * DISK_SECTOR_BYTES, DISK_SECTOR_BYTES);
    if (status == VIRTIO_BLK_S_OK && check_contents("indirect read", buffer, 500, 8))
        progress("read 8 sectors through an indirect table of 10 descriptors ok");
}

/* Four reads in flight at once, collected in another order than submitted. */
static void test_in_flight(void) {
    static const uint32_t sectors[4] = {10, 700, DISK_SECTORS - 1, 1234}, counts[4] = {2, 3, 1, 4};
    static const int wait_order[4] = {3, 1, 0, 2};
    struct vblk_segment segments[4];
    int heads[4];
    memset(scratch, 0xee, sizeof scratch);
    for (int i = 0; i < 4; i++) {
        segments[i] = (struct vblk_segment){scratch + (uint32_t)i * 8 * DISK_SECTOR_BYTES, counts[i] * DISK_SECTOR_BYTES};
        struct vblk_request r = {VIRTIO_BLK_T_IN, sectors[i], &segments[i], 1, 0};
        heads[i] = vblk_submit(&disk, &r);
        CHECK(heads[i] >= 0);
    }
    int good = 1;
    for (int j = 0; j < 4; j++) {
        int i = wait_order[j];
        if (heads[i] < 0) continue;
        int status = vblk_wait(&disk, heads[i], 0);
        expect_status("read in flight", status, VIRTIO_BLK_S_OK);
        good &= status == VIRTIO_BLK_S_OK && check_contents("read in flight", scratch + (uint32_t)i * 8 * DISK_SECTOR_BYTES, sectors[i], counts[i]);
    }
    if (good) progress("4 reads in flight at once, collected out of order, ok");
}

/* Requests the device must refuse with a status byte, transferring nothing (5.2.6.1). */
static void test_refusals(void) {
    memset(buffer, 0xee, 2 * DISK_SECTOR_BYTES);
    expect_status("read at the capacity", vblk_read(&disk, DISK_SECTORS, buffer, 1), VIRTIO_BLK_S_IOERR);
    expect_status("read across the end", vblk_read(&disk, DISK_SECTORS - 1, buffer, 2), VIRTIO_BLK_S_IOERR);
    expect_status("read at sector 2^32 + 5", vblk_read(&disk, 0x100000005ull, buffer, 1), VIRTIO_BLK_S_IOERR);
    int untouched = 1;
    for (uint32_t i = 0; i < 2 * DISK_SECTOR_BYTES; i++) untouched &= buffer[i] == 0xee;
    CHECK(untouched);
    progress("reads beyond the capacity: IOERR, buffer untouched");

    disk_pattern_fill(buffer, DISK_TAG_WRITTEN, DISK_SECTORS - 8, 16);
    expect_status("write at the capacity", vblk_write(&disk, DISK_SECTORS, buffer, 1), VIRTIO_BLK_S_IOERR);
    expect_status("write across the end", vblk_write(&disk, DISK_SECTORS - 8, buffer, 16), VIRTIO_BLK_S_IOERR);
    if (read_and_check("sectors before the end after a refused write", DISK_SECTORS - 8, 8))
        progress("writes beyond the capacity: IOERR, nothing written");

    struct vblk_segment partial = {buffer, 100};
    struct vblk_request r = {VIRTIO_BLK_T_IN, 0, &partial, 1, 0};
    expect_status("read of 100 bytes", vblk_do(&disk, &r, 0), VIRTIO_BLK_S_IOERR);
    progress("read of 100 bytes (not whole sectors): IOERR");

    struct vblk_segment data = {buffer, DISK_SECTOR_BYTES};
    struct vblk_request unknown = {0x54, 0, &data, 1, 0};
    expect_status("request type 0x54", vblk_do(&disk, &unknown, 0), VIRTIO_BLK_S_UNSUPP);
    progress("request type 0x54: UNSUPP");
}

static void test_writes_polling(void) {
    if (write_pattern("write sector 100", 100, 1, 1, 0) && read_and_check("read back sector 100", 99, 3))
        progress("wrote 1 sector, read it back with its neighbours ok");
    /* Notifications were suppressed (VIRTQ_AVAIL_F_NO_INTERRUPT) all along. */
    CHECK_EQ(vblk_reg_read(&disk, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    progress("no interrupt raised while polling with VIRTQ_AVAIL_F_NO_INTERRUPT");
}

static void test_with_interrupts(void) {
    vblk_set_wait_mode(&disk, VBLK_WAIT_IRQ);
    progress("now waiting in WFI for PLIC source %u", disk.irq);

    if (write_pattern("write 3 sectors at 200", 200, 3, 3, 0) && read_and_check("read back 200..202", 199, 5))
        progress("wrote 3 sectors through 3 descriptors, read back ok");
    if (write_pattern("write 8 sectors at 1500", 1500, 8, 16, 1) && read_and_check("read back 1500..1507", 1499, 10))
        progress("wrote 8 sectors through an indirect table of 16 x 256 bytes, read back ok");
    if (write_pattern("write the last sector", DISK_SECTORS - 1, 1, 1, 0) && read_and_check("read back the last sector", DISK_SECTORS - 2, 2))
        progress("wrote the last sector, read back ok");

    uint32_t used = 0;
    struct vblk_request flush = {VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0};
    expect_status("flush", vblk_do(&disk, &flush, &used), VIRTIO_BLK_S_OK);
    rt_expect("flush", "used len", used, 1);
    progress("flush ok");

    int good = 1;
    uint32_t written_count = 0;
    for (uint32_t sector = 0; sector < DISK_SECTORS; sector += BUFFER_SECTORS)
        good &= read_and_check("whole-disk read", sector, BUFFER_SECTORS);
    for (uint32_t sector = 0; sector < DISK_SECTORS; sector++) written_count += written[sector];
    if (good) progress("read the whole disk: %u sectors written, the rest unchanged", written_count);

    CHECK(disk.interrupts > 0);
    CHECK_EQ(disk.interrupt_status_seen, VIRTIO_INT_USED_BUFFER);
    CHECK_EQ(disk.config_interrupts, 0);
    CHECK_EQ(disk.bad_used_elements, 0);
    CHECK_EQ(vblk_stray_interrupts, 0);
    CHECK_EQ(vblk_reg_read(&disk, VIRTIO_MMIO_STATUS), STATUS_LIVE);
    progress("interrupts: used-buffer notifications only, each acknowledged");
}

int main(void) {
    if (test_discovery()) {
        test_get_id();
        test_reads();
        test_in_flight();
        test_refusals();
        test_writes_polling();
        test_with_interrupts();
        vblk_set_wait_mode(&disk, VBLK_WAIT_POLL);
        vblk_reset(&disk);
    }
    return rt_check_done("disk");
}
