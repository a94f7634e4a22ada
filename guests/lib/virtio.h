/* A small bare-metal driver for virtio block devices on virtio-mmio, register layout
 * version 2 ("modern": virtio 1.x, VIRTIO_F_VERSION_1), with one split virtqueue.
 *
 * References are to the virtio 1.2 specification: 3.1.1 (driver initialization), 4.2.2
 * (MMIO registers), 4.2.3 (MMIO initialization and notifications), 2.7 (split virtqueues)
 * and 5.2 (the block device).
 *
 * Typical use, from M-mode:
 *
 *     static struct vblk disk;                     // .bss: holds the rings (4 KiB aligned)
 *     int slot = vblk_find(0);                     // the first block device given to the machine
 *     if (slot < 0 || vblk_init(&disk, slot, VBLK_WANT_DEFAULT) != VBLK_OK) ...
 *     vblk_set_wait_mode(&disk, VBLK_WAIT_IRQ);    // or VBLK_WAIT_POLL (the default)
 *     int status = vblk_read(&disk, sector, buffer, count);  // VIRTIO_BLK_S_OK, _IOERR, ...
 *
 * Every request is a descriptor chain: the 16-byte header (device-readable), the data
 * (one or more descriptors; device-writable for IN and GET_ID, device-readable for OUT),
 * and the 1-byte status (device-writable), optionally all inside one indirect table.
 * Several requests may be in flight (vblk_submit, then vblk_wait for each).
 *
 * Waiting for completion:
 * - VBLK_WAIT_POLL: the driver sets VIRTQ_AVAIL_F_NO_INTERRUPT and spins on the used ring's
 *   index, reading the clock; it gives up after `timeout_ticks` mtime ticks.
 * - VBLK_WAIT_IRQ: the device's PLIC source is enabled for hart 0's M-mode context and the
 *   driver sleeps in WFI. The driver's trap hook claims the PLIC source, reads
 *   InterruptStatus, writes it to InterruptAck and completes the source. The driver then
 *   takes used elements only up to the used index it reads after the latest used-buffer
 *   interrupt: a request that completes is always seen through its interrupt, even when the
 *   device (QEMU's runs in another thread) publishes the used element a moment before it
 *   raises the interrupt. This cannot wait for ever: the device notifies after every used
 *   element it publishes (2.7.7.2) unless told not to, which this mode does not. With a non-zero
 *   `timeout_ticks` a CLINT timer bounds the wait (beware: QEMU's -icount sleep=off jumps
 *   the clock to the next timer deadline whenever the hart sleeps, so on QEMU such a
 *   timeout can expire before a slow host completes a request; the default is no timeout).
 * Either way a wait ends early when the device sets DEVICE_NEEDS_RESET (2.1.2).
 *
 * Physical addresses equal C pointers: use this in M-mode, or under an identity mapping.
 * Not reentrant; one hart. QEMU 7.2's virtio-mmio is legacy (Version 1) unless started
 * with -global virtio-mmio.force-legacy=false; this driver ignores legacy devices. */
#ifndef UNDERSTUDY_VIRTIO_H
#define UNDERSTUDY_VIRTIO_H

#include <stdint.h>
#include "runtime.h"

/* --- the virtio-mmio transport (4.2.2) --------------------------------------------------- */

#define VIRTIO_MMIO_MAGIC_VALUE         0x000u
#define VIRTIO_MMIO_VERSION             0x004u
#define VIRTIO_MMIO_DEVICE_ID           0x008u
#define VIRTIO_MMIO_VENDOR_ID           0x00cu
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010u
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014u
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020u
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024u
#define VIRTIO_MMIO_QUEUE_SEL           0x030u
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034u
#define VIRTIO_MMIO_QUEUE_NUM           0x038u
#define VIRTIO_MMIO_QUEUE_READY         0x044u
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050u
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060u
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064u
#define VIRTIO_MMIO_STATUS              0x070u
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080u
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084u
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090u
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094u
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0u
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4u
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fcu
#define VIRTIO_MMIO_CONFIG              0x100u

#define VIRTIO_MMIO_MAGIC   0x74726976u /* "virt", little-endian */
#define VIRTIO_DEVICE_BLOCK 2u
/* The virt board's virtio slots raise PLIC sources 1..8 (QEMU's VIRTIO_IRQ + slot). */
#define VIRTIO_IRQ_FIRST 1u

/* Device status bits (2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE        0x01u
#define VIRTIO_STATUS_DRIVER             0x02u
#define VIRTIO_STATUS_DRIVER_OK          0x04u
#define VIRTIO_STATUS_FEATURES_OK        0x08u
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40u
#define VIRTIO_STATUS_FAILED             0x80u

/* InterruptStatus bits (4.2.2). */
#define VIRTIO_INT_USED_BUFFER   0x1u
#define VIRTIO_INT_CONFIG_CHANGE 0x2u

/* Feature bit numbers (5.2.3 and 6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32
#define VIRTIO_BLK_F_SIZE_MAX  1
#define VIRTIO_BLK_F_SEG_MAX   2
#define VIRTIO_BLK_F_RO        5
#define VIRTIO_BLK_F_BLK_SIZE  6
#define VIRTIO_BLK_F_FLUSH     9
/* A feature bit as a 64-bit mask. */
#define VIRTIO_FEATURE(bit) (1ull << (bit))

/* --- split virtqueues (2.7) ------------------------------------------------------------- */

#define VIRTQ_DESC_F_NEXT     1u
#define VIRTQ_DESC_F_WRITE    2u
#define VIRTQ_DESC_F_INDIRECT 4u
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1u

/* The driver's queue size: a power of two, at most 2.7's 32768 (smaller if the device's
 * QueueNumMax is). Small, so that hostile tests can name an index past the end cheaply. */
#define VBLK_QUEUE_SIZE 16u
/* Data descriptors one request may use: inside an indirect table, or directly (which also
 * needs the header and status descriptors, so at most VBLK_QUEUE_SIZE - 2 there). */
#define VBLK_SEGMENTS_MAX 32u
#define VBLK_INDIRECT_ENTRIES (VBLK_SEGMENTS_MAX + 2u)

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[VBLK_QUEUE_SIZE];
    uint16_t used_event; /* only with VIRTIO_F_EVENT_IDX, which this driver never accepts */
};

struct virtq_used_elem {
    uint32_t id;  /* head descriptor index of the chain */
    uint32_t len; /* bytes the device wrote into the chain's device-writable buffers */
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[VBLK_QUEUE_SIZE];
    uint16_t avail_event;
};

/* --- the block device (5.2) ------------------------------------------------------------- */

#define VIRTIO_BLK_T_IN     0u
#define VIRTIO_BLK_T_OUT    1u
#define VIRTIO_BLK_T_FLUSH  4u
#define VIRTIO_BLK_T_GET_ID 8u

#define VIRTIO_BLK_S_OK     0u
#define VIRTIO_BLK_S_IOERR  1u
#define VIRTIO_BLK_S_UNSUPP 2u

#define VIRTIO_BLK_SECTOR_BYTES 512u
#define VIRTIO_BLK_ID_BYTES     20u

struct virtio_blk_req_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

/* --- the driver -------------------------------------------------------------------------- */

/* Results of the driver's own functions; request results are the status byte (0..255). */
#define VBLK_OK                0
#define VBLK_ERR_NO_DEVICE     (-1) /* bad magic or version, or DeviceID is not 2 */
#define VBLK_ERR_NO_VERSION_1  (-2) /* the device does not offer VIRTIO_F_VERSION_1 */
#define VBLK_ERR_FEATURES      (-3) /* the device did not keep FEATURES_OK set */
#define VBLK_ERR_QUEUE         (-4) /* queue 0 is missing, already live, or too small */
#define VBLK_ERR_NEEDS_RESET   (-5) /* the device set DEVICE_NEEDS_RESET */
#define VBLK_ERR_TIMEOUT       (-6) /* no answer within timeout_ticks */
#define VBLK_ERR_ARGUMENT      (-7) /* a request the driver cannot express (too many segments, ...) */
#define VBLK_ERR_NO_DESCRIPTORS (-8) /* the queue is full: wait for requests in flight first */

/* Features the driver accepts when the device offers them (VERSION_1 is always required). */
#define VBLK_WANT_DEFAULT \
    (VIRTIO_FEATURE(VIRTIO_F_VERSION_1) | VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC) | \
     VIRTIO_FEATURE(VIRTIO_BLK_F_FLUSH) | VIRTIO_FEATURE(VIRTIO_BLK_F_BLK_SIZE) | \
     VIRTIO_FEATURE(VIRTIO_BLK_F_RO))

/* Polling gives up after this many mtime ticks (0.1 s of guest time at 10 MHz). */
#define VBLK_POLL_TIMEOUT_TICKS 1000000u

enum vblk_wait_mode { VBLK_WAIT_POLL, VBLK_WAIT_IRQ };

/* One data buffer of a request. */
struct vblk_segment {
    void *address;
    uint32_t length_bytes;
};

struct vblk_request {
    uint32_t type;   /* VIRTIO_BLK_T_* (any value may be sent: unknown ones get UNSUPP) */
    uint64_t sector; /* in 512-byte units, whatever blk_size says (5.2.6) */
    const struct vblk_segment *segments;
    uint32_t segment_count; /* 0 for FLUSH */
    int indirect;           /* put the chain in an indirect table (needs INDIRECT_DESC) */
};

/* A request handed to the device, by its head descriptor. */
struct vblk_in_flight {
    struct virtio_blk_req_header header;
    volatile uint8_t status; /* 0xff until the device writes it */
    uint8_t busy;            /* submitted and not yet collected by vblk_wait */
    uint8_t done;            /* the device returned it in the used ring */
    uint32_t used_bytes;     /* the used element's len */
};

struct vblk {
    /* The rings come first so that the struct's alignment places them: the descriptor
     * table needs 16 bytes, the available ring 2 and the used ring 4 (2.7). */
    struct virtq_desc descriptors[VBLK_QUEUE_SIZE] __attribute__((aligned(4096)));
    struct virtq_avail available __attribute__((aligned(16)));
    struct virtq_used used __attribute__((aligned(16)));
    struct virtq_desc indirect[VBLK_QUEUE_SIZE][VBLK_INDIRECT_ENTRIES] __attribute__((aligned(16)));
    struct vblk_in_flight in_flight[VBLK_QUEUE_SIZE];
    uint8_t descriptor_free[VBLK_QUEUE_SIZE];

    uintptr_t base;             /* MMIO base of the slot */
    int slot;                   /* 0..7 */
    uint32_t irq;               /* PLIC source */
    uint64_t offered_features;  /* DeviceFeatures, all 64 bits */
    uint64_t features;          /* what was negotiated */
    uint64_t capacity_sectors;  /* config space: capacity */
    uint32_t queue_size;        /* entries in use (QueueNum) */
    uint32_t queue_size_max;    /* QueueNumMax */
    uint16_t available_index;   /* the driver's next available-ring index (free-running) */
    uint16_t used_seen;         /* used-ring entries consumed (free-running) */
    uint16_t used_limit;        /* VBLK_WAIT_IRQ: the used index as of the latest used-buffer interrupt */
    uint32_t used_interrupts_latched; /* used_interrupts when used_limit was read */
    enum vblk_wait_mode wait_mode;
    uint64_t timeout_ticks;     /* 0: wait for ever (VBLK_WAIT_IRQ only) */
    /* Written by the interrupt handler. */
    volatile uint32_t interrupts;            /* PLIC claims for this device */
    volatile uint32_t config_interrupts;     /* ... of which had VIRTIO_INT_CONFIG_CHANGE */
    volatile uint32_t used_interrupts;       /* ... of which had VIRTIO_INT_USED_BUFFER */
    volatile uint32_t interrupt_status_seen; /* InterruptStatus bits seen, OR-ed together */
    volatile uint32_t timer_expired;
    uint32_t bad_used_elements; /* used elements naming no request in flight */
};

/* MMIO access to the device's registers. */
static inline uint32_t vblk_reg_read(const struct vblk *d, uint32_t offset) { return MMIO32(d->base + offset); }
static inline void vblk_reg_write(const struct vblk *d, uint32_t offset, uint32_t value) { MMIO32(d->base + offset) = value; }

/* The virtio-mmio slot (0..7) of the index-th block device, counting from the highest
 * slot down: QEMU's virt board (and understudy's) puts the first -device / --disk at
 * 0x1000_8000, the next at 0x1000_7000, and so on. -1 if there is no such device. */
int vblk_find(int index);

/* Initializes the block device in `slot` (3.1.1, 4.2.3.1): reset, ACKNOWLEDGE, DRIVER,
 * features (the offered ones in `wanted`; VERSION_1 is required), FEATURES_OK (checked),
 * queue 0 (min(VBLK_QUEUE_SIZE, QueueNumMax) entries), reads the capacity, DRIVER_OK.
 * The wait mode becomes VBLK_WAIT_POLL. On failure the driver sets FAILED (except for
 * VBLK_ERR_NO_DEVICE) and returns a VBLK_ERR_* code. */
int vblk_init(struct vblk *d, int slot, uint64_t wanted);

/* Writes 0 to Status (device reset: the device forgets the queue) and forgets every
 * request in flight. vblk_init starts the device again. */
void vblk_reset(struct vblk *d);

/* Selects how vblk_wait waits (see the top of this file); call it with no request in
 * flight (the device may still be deciding whether to notify). VBLK_WAIT_IRQ installs the
 * driver's trap hook (rt_set_trap_hook) and enables the PLIC source and mie.MEIE; a
 * program with its own hook calls vblk_handle_trap from it instead. */
void vblk_set_wait_mode(struct vblk *d, enum vblk_wait_mode mode);

/* PLIC claims (VBLK_WAIT_IRQ) of sources that belong to no device here; the handler
 * disables each such source. */
extern volatile uint32_t vblk_stray_interrupts;

/* Handles a machine external or timer interrupt on behalf of the devices in
 * VBLK_WAIT_IRQ mode; returns 1 if it did, 0 for a trap it does not know. */
int vblk_handle_trap(uint32_t mcause);

/* Builds the chain for `r`, publishes it in the available ring and notifies the device.
 * Returns the head descriptor index (the request's handle) or a VBLK_ERR_* code. */
int vblk_submit(struct vblk *d, const struct vblk_request *r);

/* Waits for the request with head `head` and returns its status byte, or VBLK_ERR_TIMEOUT
 * or VBLK_ERR_NEEDS_RESET (the request then stays in flight until vblk_reset). If
 * `used_bytes` is not null it receives the used element's len. */
int vblk_wait(struct vblk *d, int head, uint32_t *used_bytes);

/* vblk_submit then vblk_wait. */
int vblk_do(struct vblk *d, const struct vblk_request *r, uint32_t *used_bytes);

/* Whole-sector requests on one buffer (sector_count * 512 bytes), and the others. */
int vblk_read(struct vblk *d, uint64_t sector, void *buffer, uint32_t sector_count);
int vblk_write(struct vblk *d, uint64_t sector, const void *buffer, uint32_t sector_count);
int vblk_flush(struct vblk *d);
/* GET_ID into id[0..19], NUL-terminated at id[20] (the device pads with NULs, 5.2.6). */
int vblk_get_id(struct vblk *d, char id[VIRTIO_BLK_ID_BYTES + 1]);

/* --- raw queue access, for tests that build chains themselves ----------------------------- */

/* Puts `head` in the next available-ring slot, publishes the index and notifies queue 0.
 * The descriptors are the caller's; do not mix with vblk_submit before the next reset. */
void vblk_publish(struct vblk *d, uint16_t head);
/* Takes the next used element, if the device has returned one (in VBLK_WAIT_IRQ mode: and
 * announced it by an interrupt that has been handled): 1 if it did, else 0. */
int vblk_take_used(struct vblk *d, struct virtq_used_elem *element);
/* Waits (as vblk_wait does) until the used ring holds an element the driver has not taken,
 * and returns VBLK_OK, or VBLK_ERR_NEEDS_RESET or VBLK_ERR_TIMEOUT. */
int vblk_wait_used(struct vblk *d);

#endif
