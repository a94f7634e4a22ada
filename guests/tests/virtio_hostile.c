/* A virtio block device handed hostile queues and chains (virtio 1.2, 2.7 and 5.2).
 *
 * Each case starts from a freshly initialized device, does one bad thing, and checks that
 * the device answers as hardware would and as understudy's device model promises:
 * - a request it can parse but not perform: the status byte says VIRTIO_BLK_S_IOERR and the
 *   chain comes back in the used ring (data outside RAM, data in the wrong direction, a
 *   short header, more data than the device takes in one request);
 * - a broken ring or chain, which leaves no status byte to write: Status gets
 *   DEVICE_NEEDS_RESET and the device sends a configuration change interrupt (2.1.2);
 * - a bad handshake: FEATURES_OK refused (3.1.1), a queue refused at QueueReady.
 * After each case the driver resets the device and reads a sector to show it works again.
 *
 * Contract with the harness (test/disk.test.ts): the only disk is read-write, at least
 * 4 MiB (so that the oversized request lies inside the capacity) and holds the pattern of
 * lib/disk_pattern.h with tag DISK_TAG_ORIGINAL; no case writes anything, so the image is
 * unchanged afterwards.
 *
 * QEMU reacts to several of these differently (it performs some, and marks the device
 * broken for others): this program passes on understudy only. On QEMU it prints what
 * happened in each case, which docs compare. */
#include "runtime.h"
#include "virtio.h"
#include "disk_pattern.h"

#define DISK_SECTORS_MIN 8192u        /* 4 MiB */
#define OUTSIDE_RAM      0xc0000000u  /* nothing there on the virt board with 128 MiB */
#define SCRATCH_RAM      0x81000000u  /* 16 MiB into RAM: past this program and its stack */
#define TIMEOUT_TICKS    100000u      /* 10 ms of guest time, then polling for another 100 ms */
#define FEATURE_NEVER_OFFERED 55      /* a reserved bit no device offers */

enum outcome {
    ANSWER_OK, ANSWER_IOERR, ANSWER_UNSUPP, ANSWER_OTHER, ANSWER_NO_STATUS, ANSWER_WRONG_HEAD,
    NEEDS_RESET, NEEDS_RESET_SILENT, NO_ANSWER, FEATURES_REFUSED, FEATURES_KEPT, QUEUE_ACCEPTED,
};

static const char *const outcome_names[] = {
    [ANSWER_OK] = "status OK",
    [ANSWER_IOERR] = "status IOERR",
    [ANSWER_UNSUPP] = "status UNSUPP",
    [ANSWER_OTHER] = "another status byte",
    [ANSWER_NO_STATUS] = "returned with the status byte not written",
    [ANSWER_WRONG_HEAD] = "a used element for another head",
    [NEEDS_RESET] = "DEVICE_NEEDS_RESET and a config change interrupt",
    [NEEDS_RESET_SILENT] = "DEVICE_NEEDS_RESET without a config change interrupt",
    [NO_ANSWER] = "no answer",
    [FEATURES_REFUSED] = "FEATURES_OK refused",
    [FEATURES_KEPT] = "FEATURES_OK kept",
    [QUEUE_ACCEPTED] = "queue accepted",
};

static struct vblk disk;
static int slot;
static struct virtio_blk_req_header header __attribute__((aligned(16)));
static volatile uint8_t status_byte;
static uint8_t data[2 * DISK_SECTOR_BYTES] __attribute__((aligned(512)));
static uint8_t check_buffer[DISK_SECTOR_BYTES] __attribute__((aligned(512)));
static struct virtq_desc tables[2][4] __attribute__((aligned(16)));

static uint64_t address_of(const volatile void *p) { return (uint64_t)(uintptr_t)p; }

static void put(volatile struct virtq_desc *table, uint16_t index, uint64_t address, uint32_t length, uint16_t flags, uint16_t next) {
    table[index].addr = address;
    table[index].len = length;
    table[index].flags = flags;
    table[index].next = next;
}

static void set_header(uint32_t type, uint64_t sector) {
    header.type = type;
    header.reserved = 0;
    header.sector = sector;
}

/* A well-formed one-sector read of sector 1 in entries 0, 1, 2 of `table`. */
static void good_read(volatile struct virtq_desc *table) {
    set_header(VIRTIO_BLK_T_IN, 1);
    put(table, 0, address_of(&header), sizeof header, VIRTQ_DESC_F_NEXT, 1);
    put(table, 1, address_of(data), DISK_SECTOR_BYTES, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    put(table, 2, address_of(&status_byte), 1, VIRTQ_DESC_F_WRITE, 0);
}

/* Lets the interrupt handler run if anything is pending (mie holds MEIE in IRQ mode). */
static void take_interrupts(void) {
    csr_set(mstatus, MSTATUS_MIE);
    csr_clear(mstatus, MSTATUS_MIE);
}

static int reset_outcome(void) {
    take_interrupts();
    CHECK(vblk_reg_read(&disk, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    return disk.config_interrupts > 0 && (disk.interrupt_status_seen & VIRTIO_INT_CONFIG_CHANGE) ? NEEDS_RESET : NEEDS_RESET_SILENT;
}

/* Waits for the device's answer to the chain at head 0: by interrupt first, then (in case
 * a slow host meets QEMU's clock warp, see virtio.h) by polling. */
static int await_answer(void) {
    struct virtq_used_elem element = {0xffffffffu, 0};
    int result = vblk_wait_used(&disk);
    if (result == VBLK_OK) {
        vblk_take_used(&disk, &element);
    } else if (result == VBLK_ERR_TIMEOUT) {
        disk.wait_mode = VBLK_WAIT_POLL;
        disk.timeout_ticks = VBLK_POLL_TIMEOUT_TICKS;
        result = vblk_wait_used(&disk);
        if (result == VBLK_OK) vblk_take_used(&disk, &element);
        disk.wait_mode = VBLK_WAIT_IRQ;
        disk.timeout_ticks = TIMEOUT_TICKS;
    }
    if (result == VBLK_ERR_NEEDS_RESET) return reset_outcome();
    if (result != VBLK_OK) return NO_ANSWER;
    if (element.id != 0) return ANSWER_WRONG_HEAD;
    switch (status_byte) {
    case VIRTIO_BLK_S_OK: return ANSWER_OK;
    case VIRTIO_BLK_S_IOERR: return ANSWER_IOERR;
    case VIRTIO_BLK_S_UNSUPP: return ANSWER_UNSUPP;
    case 0xff: return ANSWER_NO_STATUS;
    default: return ANSWER_OTHER;
    }
}

static int publish_and_wait(void) {
    vblk_publish(&disk, 0);
    return await_answer();
}

/* --- the cases: chains ---------------------------------------------------------------------- */

static int descriptor_loop(void) {
    good_read(disk.descriptors);
    put(disk.descriptors, 2, address_of(&status_byte), 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    return publish_and_wait();
}

static int data_outside_ram(void) {
    good_read(disk.descriptors);
    disk.descriptors[1].addr = OUTSIDE_RAM;
    return publish_and_wait();
}

static int header_outside_ram(void) {
    good_read(disk.descriptors);
    disk.descriptors[0].addr = OUTSIDE_RAM;
    return publish_and_wait();
}

static int status_outside_ram(void) {
    good_read(disk.descriptors);
    disk.descriptors[2].addr = OUTSIDE_RAM;
    return publish_and_wait();
}

static int read_into_readable_buffer(void) {
    good_read(disk.descriptors);
    disk.descriptors[1].flags = VIRTQ_DESC_F_NEXT;
    return publish_and_wait();
}

static int write_from_writable_buffer(void) {
    good_read(disk.descriptors);
    header.type = VIRTIO_BLK_T_OUT;
    disk_pattern_fill(data, DISK_TAG_WRITTEN, 1, 1);
    return publish_and_wait();
}

static int readable_after_writable(void) {
    good_read(disk.descriptors);
    disk.descriptors[1].next = 3;
    put(disk.descriptors, 3, address_of(&header), sizeof header, VIRTQ_DESC_F_NEXT, 2);
    return publish_and_wait();
}

static int writable_header(void) {
    good_read(disk.descriptors);
    disk.descriptors[0].flags |= VIRTQ_DESC_F_WRITE;
    return publish_and_wait();
}

static int readable_status(void) {
    good_read(disk.descriptors);
    header.type = VIRTIO_BLK_T_OUT;
    disk.descriptors[1].flags = VIRTQ_DESC_F_NEXT;
    disk.descriptors[2].flags = 0;
    return publish_and_wait();
}

static int short_header(void) {
    good_read(disk.descriptors);
    disk.descriptors[0].len = 8;
    return publish_and_wait();
}

static int oversized_request(void) {
    /* 1 MiB + 512 bytes at sector 0 (inside a 4 MiB disk): more than understudy's device
     * takes in one request (seg_max * size_max). The buffers alias one scratch area. */
    good_read(disk.descriptors);
    set_header(VIRTIO_BLK_T_IN, 0);
    put(disk.descriptors, 1, SCRATCH_RAM, 512 * 1024, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
    put(disk.descriptors, 3, SCRATCH_RAM, 512 * 1024, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 4);
    put(disk.descriptors, 4, SCRATCH_RAM, DISK_SECTOR_BYTES, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    return publish_and_wait();
}

/* --- the cases: the rings --------------------------------------------------------------------- */

static int head_outside_table(void) {
    good_read(disk.descriptors);
    vblk_publish(&disk, (uint16_t)(disk.queue_size + 4));
    return await_answer();
}

static int next_outside_table(void) {
    good_read(disk.descriptors);
    disk.descriptors[1].next = (uint16_t)(disk.queue_size + 24);
    return publish_and_wait();
}

static int available_index_far_ahead(void) {
    good_read(disk.descriptors);
    volatile struct virtq_avail *available = &disk.available;
    available->ring[0] = 0;
    __asm__ volatile("fence rw, rw" ::: "memory");
    available->idx = 1000;
    __asm__ volatile("fence rw, rw" ::: "memory");
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    return await_answer();
}

static int notify_missing_queue(void) {
    /* A notification for queue 5, which does not exist, then a good request. */
    good_read(disk.descriptors);
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_NOTIFY, 5);
    return publish_and_wait();
}

/* --- the cases: indirect tables --------------------------------------------------------------- */

static int indirect_not_negotiated(void) {
    good_read(tables[0]);
    put(disk.descriptors, 0, address_of(tables[0]), 3 * sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT, 0);
    return publish_and_wait();
}

static int indirect_with_next(void) {
    good_read(tables[0]);
    put(disk.descriptors, 0, address_of(tables[0]), 3 * sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    put(disk.descriptors, 1, address_of(check_buffer), 16, 0, 0);
    return publish_and_wait();
}

static int indirect_inside_indirect(void) {
    good_read(tables[1]);
    put(tables[0], 0, address_of(tables[1]), 3 * sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT, 0);
    put(disk.descriptors, 0, address_of(tables[0]), sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT, 0);
    return publish_and_wait();
}

static int indirect_odd_length(void) {
    good_read(tables[0]);
    put(disk.descriptors, 0, address_of(tables[0]), 40, VIRTQ_DESC_F_INDIRECT, 0);
    return publish_and_wait();
}

/* --- the cases: the handshake ----------------------------------------------------------------- */

/* Reset, ACKNOWLEDGE, DRIVER, the given features, FEATURES_OK: whether the device kept it. */
static int offer_features(uint64_t features) {
    vblk_reg_write(&disk, VIRTIO_MMIO_STATUS, 0);
    vblk_reg_write(&disk, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    vblk_reg_write(&disk, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    vblk_reg_write(&disk, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    vblk_reg_write(&disk, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
    vblk_reg_write(&disk, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    vblk_reg_write(&disk, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
    vblk_reg_write(&disk, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    return vblk_reg_read(&disk, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK ? FEATURES_KEPT : FEATURES_REFUSED;
}

static int features_without_version_1(void) {
    return offer_features(disk.offered_features & VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH));
}

static int features_never_offered(void) {
    return offer_features(VIRTIO_FEATURE(VIRTIO_F_VERSION_1) | VIRTIO_FEATURE(FEATURE_NEVER_OFFERED));
}

/* A handshake with queue 0 configured as given, then QueueReady and DRIVER_OK. */
static int configure_queue(uint32_t size, uint32_t descriptors_address) {
    if (offer_features(VIRTIO_FEATURE(VIRTIO_F_VERSION_1)) != FEATURES_KEPT) return FEATURES_REFUSED;
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_SEL, 0);
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_NUM, size);
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_DESC_LOW, descriptors_address);
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(uintptr_t)&disk.available);
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(uintptr_t)&disk.used);
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
    vblk_reg_write(&disk, VIRTIO_MMIO_QUEUE_READY, 1);
    uint32_t ready = vblk_reg_read(&disk, VIRTIO_MMIO_QUEUE_READY);
    vblk_reg_write(&disk, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    if (vblk_reg_read(&disk, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET) {
        /* A refused queue never becomes ready. */
        CHECK_EQ(ready, 0);
        return reset_outcome();
    }
    return ready ? QUEUE_ACCEPTED : NO_ANSWER;
}

static int queue_size_not_power_of_two(void) {
    return configure_queue(12, (uint32_t)(uintptr_t)disk.descriptors);
}

static int queue_size_above_maximum(void) {
    return configure_queue(disk.queue_size_max * 2, (uint32_t)(uintptr_t)disk.descriptors);
}

static int queue_outside_ram(void) {
    return configure_queue(disk.queue_size, OUTSIDE_RAM);
}

/* --- the driver of the cases ------------------------------------------------------------------- */

struct hostile_case {
    const char *name;
    int (*run)(void);
    int expected; /* understudy's answer */
    uint64_t features;
};

#define DEFAULT_FEATURES VBLK_WANT_DEFAULT
static const struct hostile_case cases[] = {
    {"descriptor loop", descriptor_loop, NEEDS_RESET, DEFAULT_FEATURES},
    {"data buffer outside RAM", data_outside_ram, ANSWER_IOERR, DEFAULT_FEATURES},
    {"header outside RAM", header_outside_ram, ANSWER_IOERR, DEFAULT_FEATURES},
    {"status byte outside RAM", status_outside_ram, NEEDS_RESET, DEFAULT_FEATURES},
    {"read into a device-readable buffer", read_into_readable_buffer, ANSWER_IOERR, DEFAULT_FEATURES},
    {"write from a device-writable buffer", write_from_writable_buffer, ANSWER_IOERR, DEFAULT_FEATURES},
    {"device-readable descriptor after a writable one", readable_after_writable, ANSWER_IOERR, DEFAULT_FEATURES},
    {"device-writable header", writable_header, ANSWER_IOERR, DEFAULT_FEATURES},
    {"no device-writable status byte", readable_status, NEEDS_RESET, DEFAULT_FEATURES},
    {"header of 8 bytes", short_header, ANSWER_IOERR, DEFAULT_FEATURES},
    {"request of 1 MiB + 512 bytes", oversized_request, ANSWER_IOERR, DEFAULT_FEATURES},
    {"head index >= queue size", head_outside_table, NEEDS_RESET, DEFAULT_FEATURES},
    {"next index >= queue size", next_outside_table, NEEDS_RESET, DEFAULT_FEATURES},
    {"available index 1000 entries ahead", available_index_far_ahead, NEEDS_RESET, DEFAULT_FEATURES},
    {"notification for a missing queue, then a good read", notify_missing_queue, ANSWER_OK, DEFAULT_FEATURES},
    {"indirect table without INDIRECT_DESC negotiated", indirect_not_negotiated, NEEDS_RESET,
     DEFAULT_FEATURES & ~VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC)},
    {"indirect descriptor with NEXT", indirect_with_next, NEEDS_RESET, DEFAULT_FEATURES},
    {"indirect descriptor inside an indirect table", indirect_inside_indirect, NEEDS_RESET, DEFAULT_FEATURES},
    {"indirect table of 40 bytes", indirect_odd_length, NEEDS_RESET, DEFAULT_FEATURES},
    {"FEATURES_OK without VERSION_1", features_without_version_1, FEATURES_REFUSED, DEFAULT_FEATURES},
    {"FEATURES_OK with a feature never offered", features_never_offered, FEATURES_REFUSED, DEFAULT_FEATURES},
    {"queue size 12 (not a power of two)", queue_size_not_power_of_two, NEEDS_RESET, DEFAULT_FEATURES},
    {"queue size twice QueueNumMax", queue_size_above_maximum, NEEDS_RESET, DEFAULT_FEATURES},
    {"descriptor table outside RAM", queue_outside_ram, NEEDS_RESET, DEFAULT_FEATURES},
};
#define CASE_COUNT (sizeof cases / sizeof cases[0])

static int start_device(uint64_t features) {
    int result = vblk_init(&disk, slot, features);
    if (result != VBLK_OK) return result;
    vblk_set_wait_mode(&disk, VBLK_WAIT_IRQ);
    disk.timeout_ticks = TIMEOUT_TICKS;
    return VBLK_OK;
}

/* Reset, initialize again, and read a sector: the device has forgotten the bad case. */
static int works_again(uint32_t sector) {
    vblk_reset(&disk);
    if (start_device(VBLK_WANT_DEFAULT) != VBLK_OK) return 0;
    /* No time limit: QEMU's clock jumps to a timer deadline as soon as the hart sleeps. */
    disk.timeout_ticks = 0;
    memset(check_buffer, 0xee, sizeof check_buffer);
    int status = vblk_read(&disk, sector, check_buffer, 1);
    return status == VIRTIO_BLK_S_OK && disk_pattern_mismatch(check_buffer, DISK_TAG_ORIGINAL, sector, 1) < 0 &&
           (vblk_reg_read(&disk, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET) == 0;
}

int main(void) {
    slot = vblk_find(0);
    CHECK(slot >= 0);
    if (slot < 0) return rt_check_done("virtio_hostile");
    CHECK_EQ(start_device(VBLK_WANT_DEFAULT), VBLK_OK);
    CHECK(disk.capacity_sectors >= DISK_SECTORS_MIN);
    for (uint32_t i = 0; i < CASE_COUNT; i++) {
        const struct hostile_case *c = &cases[i];
        rt_printf("hostile %02u: %s: ", i + 1, c->name);
        if (start_device(c->features) != VBLK_OK) {
            rt_printf("the device did not start\n");
            rt_failures++;
            continue;
        }
        status_byte = 0xff;
        memset(data, 0xee, sizeof data);
        int outcome = c->run();
        int again = works_again(i + 2);
        rt_printf("%s; %s\n", outcome_names[outcome], again ? "works after a reset" : "BROKEN after a reset");
        rt_expect(c->name, "outcome", (uint32_t)outcome, (uint32_t)c->expected);
        CHECK(again);
    }
    CHECK_EQ(disk.bad_used_elements, 0);
    vblk_set_wait_mode(&disk, VBLK_WAIT_POLL);
    vblk_reset(&disk);
    return rt_check_done("virtio_hostile");
}
