/* The virtio block device, read-only (virtio 1.2, 5.2.5: "If the VIRTIO_BLK_F_RO feature is
 * set by the device, any write requests will fail"; 5.2.6.2: the device "MUST set the status
 * byte to VIRTIO_BLK_S_IOERR for a write request if the VIRTIO_BLK_F_RO feature if offered,
 * and MUST NOT write any data").
 *
 * Contract with the harness (test/disk.test.ts): the same image as tests/disk.c (1 MiB,
 * lib/disk_pattern.h with tag DISK_TAG_ORIGINAL, serial "understudy-disk0"), given as the
 * only disk, read-only (understudy --disk-ro; QEMU -drive ...,readonly=on). The image must
 * be byte-for-byte unchanged afterwards.
 *
 * It checks that the device offers VIRTIO_BLK_F_RO, that reads (one and many sectors, by
 * polling and by interrupt) return the pattern, that writes of one and of several sectors
 * and a write beyond the capacity complete with IOERR, that the sectors read back
 * unchanged, and that FLUSH succeeds (there is nothing to flush). The console output is the
 * same on QEMU and understudy. */
#include "runtime.h"
#include "virtio.h"
#include "disk_pattern.h"

#define DISK_SECTORS 2048u
#define STATUS_LIVE  (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)

static struct vblk disk;
static uint8_t buffer[16 * DISK_SECTOR_BYTES] __attribute__((aligned(4096)));
static int step;

static void progress(const char *fmt, ...) {
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    rt_vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    rt_printf("disk_ro %02d: %s\n", ++step, line);
}

static void expect_status(const char *what, int actual, int expected) { rt_expect(what, "status", (uint32_t)actual, (uint32_t)expected); }

/* Reads `count` sectors at `sector` and checks that they hold the original pattern. */
static int read_original(const char *what, uint32_t sector, uint32_t count) {
    memset(buffer, 0xee, count * DISK_SECTOR_BYTES);
    int status = vblk_read(&disk, sector, buffer, count);
    expect_status(what, status, VIRTIO_BLK_S_OK);
    if (status != VIRTIO_BLK_S_OK) return 0;
    int32_t at = disk_pattern_mismatch(buffer, DISK_TAG_ORIGINAL, sector, count);
    if (at < 0) return 1;
    rt_failures++;
    rt_printf("FAIL %s: differs at byte %d\n", what, at);
    return 0;
}

/* A write the device must refuse: IOERR, and the sectors still hold the original pattern. */
static void refused_write(const char *what, uint32_t sector, uint32_t count) {
    disk_pattern_fill(buffer, DISK_TAG_WRITTEN, sector, count);
    uint32_t used = 0xffffffffu;
    struct vblk_segment segment = {buffer, count * DISK_SECTOR_BYTES};
    struct vblk_request r = {VIRTIO_BLK_T_OUT, sector, &segment, 1, 0};
    int status = vblk_do(&disk, &r, &used);
    expect_status(what, status, VIRTIO_BLK_S_IOERR);
    rt_expect(what, "used len", used, 1);
    if (status == VIRTIO_BLK_S_IOERR && read_original(what, sector, count))
        progress("write of %u sector%s at %u: IOERR, the disk unchanged", count, count == 1 ? "" : "s", sector);
}

static void run(int slot) {
    int result = vblk_init(&disk, slot, VBLK_WANT_DEFAULT);
    CHECK_EQ(result, VBLK_OK);
    if (result != VBLK_OK) return;
    CHECK((disk.offered_features & VIRTIO_FEATURE(VIRTIO_BLK_F_RO)) != 0);
    CHECK((disk.features & VIRTIO_FEATURE(VIRTIO_BLK_F_RO)) != 0);
    CHECK_EQ(vblk_reg_read(&disk, VIRTIO_MMIO_STATUS), STATUS_LIVE);
    progress("read-only block device in slot %d: VIRTIO_BLK_F_RO offered and accepted", slot);
    CHECK_EQ((uint32_t)disk.capacity_sectors, DISK_SECTORS);
    progress("capacity %u sectors", (uint32_t)disk.capacity_sectors);

    char id[VIRTIO_BLK_ID_BYTES + 1];
    expect_status("GET_ID", vblk_get_id(&disk, id), VIRTIO_BLK_S_OK);
    CHECK(strcmp(id, "understudy-disk0") == 0);
    progress("GET_ID: \"%s\"", id);

    if (read_original("read sector 0", 0, 1)) progress("read 1 sector ok");
    if (read_original("read 16 sectors at 40", 40, 16)) progress("read 16 sectors ok");
    refused_write("write sector 5", 5, 1);

    vblk_set_wait_mode(&disk, VBLK_WAIT_IRQ);
    progress("now waiting in WFI for PLIC source %u", disk.irq);
    refused_write("write 8 sectors at 40", 40, 8);
    refused_write("write the last sector", DISK_SECTORS - 1, 1);
    disk_pattern_fill(buffer, DISK_TAG_WRITTEN, DISK_SECTORS, 1);
    expect_status("write beyond the capacity", vblk_write(&disk, DISK_SECTORS, buffer, 1), VIRTIO_BLK_S_IOERR);
    progress("write beyond the capacity: IOERR");
    expect_status("flush", vblk_flush(&disk), VIRTIO_BLK_S_OK);
    progress("flush ok");
    if (read_original("read 16 sectors at 2032", DISK_SECTORS - 16, 16)) progress("read the last 16 sectors ok");
    CHECK(disk.interrupts > 0);
    CHECK_EQ(disk.config_interrupts, 0);
    CHECK_EQ(vblk_reg_read(&disk, VIRTIO_MMIO_STATUS), STATUS_LIVE);
    vblk_set_wait_mode(&disk, VBLK_WAIT_POLL);
    vblk_reset(&disk);
}

int main(void) {
    int slot = vblk_find(0);
    CHECK_EQ(slot, 7);
    if (slot >= 0) run(slot);
    return rt_check_done("disk_ro");
}
