/* The virtio-mmio block driver described in virtio.h. */
#include "virtio.h"

/* The PLIC of the virt board, context 0 (hart 0, M-mode). */
#define PLIC_ENABLE_M         (PLIC_BASE + 0x2000u)
#define PLIC_THRESHOLD_M      (PLIC_BASE + 0x200000u)
#define PLIC_CLAIM_M          (PLIC_BASE + 0x200004u)

#define CAUSE_MACHINE_TIMER    (CAUSE_INTERRUPT | 7u)
#define CAUSE_MACHINE_EXTERNAL (CAUSE_INTERRUPT | 11u)

/* Reads of Status while waiting for a reset to finish (QEMU and understudy finish at once). */
#define RESET_POLLS_MAX 1000

/* The devices waiting by interrupt, by slot, for the trap handler. */
static struct vblk *irq_devices[VIRTIO_SLOTS];
static volatile uint32_t timer_fired;
volatile uint32_t vblk_stray_interrupts;

/* Orders the driver's ring and buffer accesses against the device's (2.7.13: memory barriers). */
static inline void fence(void) { __asm__ volatile("fence rw, rw" ::: "memory"); }

static uintptr_t slot_base(int slot) { return VIRTIO_BASE + (uint32_t)slot * VIRTIO_STRIDE; }

static int is_block_device(uintptr_t base) {
    /* 4.2.2: magic "virt", Version 2 for the modern layout; DeviceID 0 is an empty slot. */
    return MMIO32(base + VIRTIO_MMIO_MAGIC_VALUE) == VIRTIO_MMIO_MAGIC &&
           MMIO32(base + VIRTIO_MMIO_VERSION) == 2u &&
           MMIO32(base + VIRTIO_MMIO_DEVICE_ID) == VIRTIO_DEVICE_BLOCK;
}

int vblk_find(int index) {
    if (index < 0) return -1;
    for (int slot = VIRTIO_SLOTS - 1; slot >= 0; slot--) {
        if (!is_block_device(slot_base(slot))) continue;
        if (index-- == 0) return slot;
    }
    return -1;
}

static uint32_t read_status(const struct vblk *d) { return vblk_reg_read(d, VIRTIO_MMIO_STATUS); }

static int needs_reset(const struct vblk *d) { return (read_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET) != 0; }

/* Forgets everything the driver knew about the queue (the device forgets it on reset). */
static void forget_queue(struct vblk *d) {
    memset(d->descriptors, 0, sizeof d->descriptors);
    memset((void *)&d->available, 0, sizeof d->available);
    memset((void *)&d->used, 0, sizeof d->used);
    memset((void *)d->in_flight, 0, sizeof d->in_flight);
    for (uint32_t i = 0; i < VBLK_QUEUE_SIZE; i++) d->descriptor_free[i] = 1;
    d->available_index = 0;
    d->used_seen = 0;
    d->used_limit = 0;
    d->used_interrupts_latched = d->used_interrupts;
}

static void stop_interrupts(struct vblk *d) {
    if (d->slot < 0 || d->slot >= VIRTIO_SLOTS) return;
    if (irq_devices[d->slot] == d) irq_devices[d->slot] = 0;
    MMIO32(PLIC_ENABLE_M) &= ~(1u << d->irq);
}

void vblk_reset(struct vblk *d) {
    /* 4.2.2: "Writing zero (0x0) to this register triggers a device reset." */
    vblk_reg_write(d, VIRTIO_MMIO_STATUS, 0);
    for (int i = 0; i < RESET_POLLS_MAX && read_status(d) != 0; i++) {
    }
    forget_queue(d);
}

static uint64_t read_device_features(const struct vblk *d) {
    vblk_reg_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    uint64_t high = vblk_reg_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
    vblk_reg_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t low = vblk_reg_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
    return high << 32 | low;
}

static void write_driver_features(const struct vblk *d, uint64_t features) {
    vblk_reg_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    vblk_reg_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
    vblk_reg_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    vblk_reg_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
}

/* A 64-bit config field as two 32-bit reads, repeated until ConfigGeneration holds still
 * (4.2.2: the driver reads it before and after a multi-access read). */
static uint64_t read_config64(const struct vblk *d, uint32_t offset) {
    uint32_t generation, low, high;
    do {
        generation = vblk_reg_read(d, VIRTIO_MMIO_CONFIG_GENERATION);
        low = vblk_reg_read(d, VIRTIO_MMIO_CONFIG + offset);
        high = vblk_reg_read(d, VIRTIO_MMIO_CONFIG + offset + 4);
    } while (generation != vblk_reg_read(d, VIRTIO_MMIO_CONFIG_GENERATION));
    return (uint64_t)high << 32 | low;
}

static void write_queue_address(const struct vblk *d, uint32_t low_register, const volatile void *address) {
    vblk_reg_write(d, low_register, (uint32_t)(uintptr_t)address);
    vblk_reg_write(d, low_register + 4, 0);
}

/* 4.2.3.2: select the queue, check it is not in use, read QueueNumMax, write QueueNum
 * and the three ring addresses, then QueueReady = 1. */
static int setup_queue(struct vblk *d) {
    vblk_reg_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
    if (vblk_reg_read(d, VIRTIO_MMIO_QUEUE_READY) != 0) return VBLK_ERR_QUEUE;
    d->queue_size_max = vblk_reg_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (d->queue_size_max == 0) return VBLK_ERR_QUEUE;
    uint32_t size = VBLK_QUEUE_SIZE;
    while (size > d->queue_size_max) size >>= 1;
    d->queue_size = size;
    forget_queue(d);
    d->available.flags = VIRTQ_AVAIL_F_NO_INTERRUPT; /* polling until told otherwise */
    fence();
    vblk_reg_write(d, VIRTIO_MMIO_QUEUE_NUM, size);
    write_queue_address(d, VIRTIO_MMIO_QUEUE_DESC_LOW, d->descriptors);
    write_queue_address(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, &d->available);
    write_queue_address(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, &d->used);
    vblk_reg_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
    return vblk_reg_read(d, VIRTIO_MMIO_QUEUE_READY) == 1 ? VBLK_OK : VBLK_ERR_QUEUE;
}

int vblk_init(struct vblk *d, int slot, uint64_t wanted) {
    if (slot >= 0 && slot < VIRTIO_SLOTS && irq_devices[slot] != 0) stop_interrupts(irq_devices[slot]);
    memset(d, 0, sizeof *d);
    d->slot = slot;
    if (slot < 0 || slot >= VIRTIO_SLOTS) {
        d->slot = -1;
        return VBLK_ERR_NO_DEVICE;
    }
    d->base = slot_base(slot);
    d->irq = VIRTIO_IRQ_FIRST + (uint32_t)slot;
    d->wait_mode = VBLK_WAIT_POLL;
    d->timeout_ticks = VBLK_POLL_TIMEOUT_TICKS;
    if (!is_block_device(d->base)) return VBLK_ERR_NO_DEVICE;

    /* 3.1.1, steps 1-3: reset, then ACKNOWLEDGE ("found a device") and DRIVER ("can drive it"). */
    vblk_reset(d);
    uint32_t status = VIRTIO_STATUS_ACKNOWLEDGE;
    vblk_reg_write(d, VIRTIO_MMIO_STATUS, status);
    status |= VIRTIO_STATUS_DRIVER;
    vblk_reg_write(d, VIRTIO_MMIO_STATUS, status);

    /* Steps 4-6: a subset of the offered features, then FEATURES_OK, which the device
     * clears again if it cannot work with that subset. This driver has no EVENT_IDX code. */
    int error = VBLK_OK;
    d->offered_features = read_device_features(d);
    if (!(d->offered_features & VIRTIO_FEATURE(VIRTIO_F_VERSION_1))) {
        error = VBLK_ERR_NO_VERSION_1;
        goto failed;
    }
    d->features = d->offered_features & (wanted | VIRTIO_FEATURE(VIRTIO_F_VERSION_1)) &
                  ~VIRTIO_FEATURE(VIRTIO_F_EVENT_IDX);
    write_driver_features(d, d->features);
    status |= VIRTIO_STATUS_FEATURES_OK;
    vblk_reg_write(d, VIRTIO_MMIO_STATUS, status);
    if (!(read_status(d) & VIRTIO_STATUS_FEATURES_OK)) {
        error = VBLK_ERR_FEATURES;
        goto failed;
    }

    /* Step 7: device-specific setup (the queue, the configuration); step 8: DRIVER_OK. */
    error = setup_queue(d);
    if (error != VBLK_OK) goto failed;
    d->capacity_sectors = read_config64(d, 0);
    status |= VIRTIO_STATUS_DRIVER_OK;
    vblk_reg_write(d, VIRTIO_MMIO_STATUS, status);
    if (needs_reset(d)) {
        error = VBLK_ERR_NEEDS_RESET;
        goto failed;
    }
    return VBLK_OK;

failed:
    /* 3.1.1: "If any of these steps go irrecoverably wrong, the driver SHOULD set the FAILED status bit". */
    vblk_reg_write(d, VIRTIO_MMIO_STATUS, read_status(d) | VIRTIO_STATUS_FAILED);
    return error;
}

/* --- interrupts ------------------------------------------------------------------------- */

/* Silences a claimed source's device; returns 0 for a source that is no device of ours. */
static int handle_source(uint32_t source) {
    uint32_t slot = source - VIRTIO_IRQ_FIRST;
    struct vblk *d = slot < VIRTIO_SLOTS ? irq_devices[slot] : 0;
    if (d == 0) return 0;
    /* 4.2.2: InterruptStatus says why; writing those bits to InterruptAck lowers the line. */
    uint32_t reasons = vblk_reg_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
    vblk_reg_write(d, VIRTIO_MMIO_INTERRUPT_ACK, reasons);
    d->interrupts++;
    if (reasons & VIRTIO_INT_USED_BUFFER) d->used_interrupts++;
    if (reasons & VIRTIO_INT_CONFIG_CHANGE) d->config_interrupts++;
    d->interrupt_status_seen |= reasons;
    return 1;
}

int vblk_handle_trap(uint32_t mcause) {
    if (mcause == CAUSE_MACHINE_EXTERNAL) {
        /* Claim, silence the device, complete: the source stays quiet once its line is low.
         * A source nobody here can silence is disabled after its completion (the PLIC
         * ignores the completion of a source that is not enabled). */
        uint32_t source;
        while ((source = MMIO32(PLIC_CLAIM_M)) != 0) {
            int ours = handle_source(source);
            MMIO32(PLIC_CLAIM_M) = source;
            if (!ours) {
                MMIO32(PLIC_ENABLE_M) &= ~(1u << source);
                vblk_stray_interrupts++;
            }
        }
        return 1;
    }
    if (mcause == CAUSE_MACHINE_TIMER) {
        set_mtimecmp(UINT64_MAX);
        timer_fired = 1;
        return 1;
    }
    return 0;
}

static void driver_trap_hook(struct trap_frame *frame, uint32_t mcause, uint32_t mepc, uint32_t mtval) {
    (void)frame;
    if (vblk_handle_trap(mcause)) return;
    rt_printf("unexpected trap: mcause=0x%x mepc=0x%x mtval=0x%x\n", mcause, mepc, mtval);
    rt_exit(99);
}

void vblk_set_wait_mode(struct vblk *d, enum vblk_wait_mode mode) {
    d->wait_mode = mode;
    if (mode == VBLK_WAIT_POLL) {
        stop_interrupts(d);
        d->available.flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
        d->timeout_ticks = VBLK_POLL_TIMEOUT_TICKS;
        fence();
        return;
    }
    if (d->slot < 0 || d->slot >= VIRTIO_SLOTS) return;
    irq_devices[d->slot] = d;
    rt_set_trap_hook(driver_trap_hook);
    MMIO32(PLIC_PRIORITY(d->irq)) = 1;
    MMIO32(PLIC_THRESHOLD_M) = 0;
    MMIO32(PLIC_ENABLE_M) |= 1u << d->irq;
    d->available.flags = 0;
    d->timeout_ticks = 0;
    fence();
    /* What the device published while polling had no interrupt: it may be taken as it is. */
    d->used_interrupts_latched = d->used_interrupts;
    d->used_limit = ((volatile struct virtq_used *)&d->used)->idx;
    csr_set(mie, MIP_MEIP);
}

/* --- the rings -------------------------------------------------------------------------- */

void vblk_publish(struct vblk *d, uint16_t head) {
    volatile struct virtq_avail *available = &d->available;
    available->ring[d->available_index & (d->queue_size - 1)] = head;
    /* 2.7.13.2: the ring entry (and the chain) before the index, the index before the notification. */
    fence();
    d->available_index++;
    available->idx = d->available_index;
    fence();
    vblk_reg_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

/* Whether the driver may take a used element now. Polling, any the device has published;
 * by interrupt, those published before the latest used-buffer interrupt was handled (see
 * virtio.h): an element published later gets an interrupt of its own. */
static int used_pending(struct vblk *d) {
    volatile struct virtq_used *used = &d->used;
    if (d->wait_mode == VBLK_WAIT_IRQ) {
        uint32_t interrupts = d->used_interrupts;
        if (interrupts != d->used_interrupts_latched) {
            d->used_interrupts_latched = interrupts;
            fence();
            d->used_limit = used->idx;
        }
        return d->used_limit != d->used_seen;
    }
    fence();
    return used->idx != d->used_seen;
}

int vblk_take_used(struct vblk *d, struct virtq_used_elem *element) {
    if (!used_pending(d)) return 0;
    volatile struct virtq_used *used = &d->used;
    /* 2.7.8.2: the device writes the element before it moves the index. */
    fence();
    uint32_t slot = d->used_seen & (d->queue_size - 1);
    element->id = used->ring[slot].id;
    element->len = used->ring[slot].len;
    d->used_seen++;
    return 1;
}

static int wait_used_polling(struct vblk *d) {
    uint64_t started = read_mtime();
    for (;;) {
        if (used_pending(d)) return VBLK_OK;
        if (needs_reset(d)) return VBLK_ERR_NEEDS_RESET;
        if (d->timeout_ticks != 0 && read_mtime() - started >= d->timeout_ticks) return VBLK_ERR_TIMEOUT;
    }
}

/* Sleeps with mstatus.MIE clear, so that no interrupt slips in between the check and the
 * WFI (WFI wakes on mip & mie whatever MIE says); each wake-up opens MIE for a moment to
 * let the handler run. */
static int wait_used_sleeping(struct vblk *d) {
    uint32_t saved_mstatus = csr_read(mstatus);
    csr_clear(mstatus, MSTATUS_MIE);
    timer_fired = 0;
    if (d->timeout_ticks != 0) {
        set_mtimecmp(read_mtime() + d->timeout_ticks);
        csr_set(mie, MIP_MTIP);
    }
    int result;
    for (;;) {
        if (used_pending(d)) {
            result = VBLK_OK;
            break;
        }
        if (needs_reset(d)) {
            result = VBLK_ERR_NEEDS_RESET;
            break;
        }
        if (timer_fired) {
            result = VBLK_ERR_TIMEOUT;
            break;
        }
        __asm__ volatile("wfi" ::: "memory");
        csr_set(mstatus, MSTATUS_MIE);
        csr_clear(mstatus, MSTATUS_MIE);
    }
    if (d->timeout_ticks != 0) {
        csr_clear(mie, MIP_MTIP);
        set_mtimecmp(UINT64_MAX);
    }
    /* Let a notification that raced with the last check be handled now. */
    csr_set(mstatus, MSTATUS_MIE);
    csr_write(mstatus, saved_mstatus);
    return result;
}

int vblk_wait_used(struct vblk *d) {
    if (used_pending(d)) return VBLK_OK;
    return d->wait_mode == VBLK_WAIT_IRQ ? wait_used_sleeping(d) : wait_used_polling(d);
}

/* --- requests --------------------------------------------------------------------------- */

static void free_chain(struct vblk *d, uint32_t head) {
    uint32_t index = head;
    for (uint32_t steps = 0; steps < d->queue_size; steps++) {
        d->descriptor_free[index] = 1;
        if (!(d->descriptors[index].flags & VIRTQ_DESC_F_NEXT)) return;
        index = d->descriptors[index].next;
        if (index >= d->queue_size) return;
    }
}

/* Takes every used element and marks its request done. */
static void collect_used(struct vblk *d) {
    struct virtq_used_elem element;
    while (vblk_take_used(d, &element)) {
        struct vblk_in_flight *request = element.id < d->queue_size ? &d->in_flight[element.id] : 0;
        if (request == 0 || !request->busy || request->done) {
            d->bad_used_elements++;
            continue;
        }
        request->done = 1;
        request->used_bytes = element.len;
        free_chain(d, element.id);
    }
}

static void set_descriptor(volatile struct virtq_desc *descriptor, const volatile void *address,
                           uint32_t length, uint16_t flags, uint16_t next) {
    descriptor->addr = (uint64_t)(uintptr_t)address;
    descriptor->len = length;
    descriptor->flags = flags;
    descriptor->next = next;
}

int vblk_submit(struct vblk *d, const struct vblk_request *r) {
    uint32_t entries = r->segment_count + 2; /* header, data..., status */
    if (r->segment_count > VBLK_SEGMENTS_MAX) return VBLK_ERR_ARGUMENT;
    if (r->indirect && !(d->features & VIRTIO_FEATURE(VIRTIO_F_INDIRECT_DESC))) return VBLK_ERR_ARGUMENT;
    uint32_t needed = r->indirect ? 1 : entries;
    if (needed > d->queue_size) return VBLK_ERR_ARGUMENT;

    uint16_t chosen[VBLK_QUEUE_SIZE];
    uint32_t found = 0;
    for (uint32_t i = 0; i < d->queue_size && found < needed; i++)
        if (d->descriptor_free[i]) chosen[found++] = (uint16_t)i;
    if (found < needed) return VBLK_ERR_NO_DESCRIPTORS;
    for (uint32_t i = 0; i < needed; i++) d->descriptor_free[chosen[i]] = 0;

    uint16_t head = chosen[0];
    struct vblk_in_flight *request = &d->in_flight[head];
    request->header.type = r->type;
    request->header.reserved = 0;
    request->header.sector = r->sector;
    request->status = 0xff;
    request->busy = 1;
    request->done = 0;
    request->used_bytes = 0;

    /* 5.2.6: only a write's data is device-readable; reads and GET_ID (and unknown types)
     * get device-writable buffers. */
    uint16_t data_flags = r->type == VIRTIO_BLK_T_OUT ? 0 : VIRTQ_DESC_F_WRITE;
    volatile struct virtq_desc *table = r->indirect ? d->indirect[head] : d->descriptors;
    /* Entry k of the chain is table[slot(k)]: consecutive in an indirect table, the chosen
     * free descriptors otherwise. */
#define CHAIN_SLOT(k) (r->indirect ? (uint16_t)(k) : chosen[k])
    set_descriptor(&table[CHAIN_SLOT(0)], &request->header, sizeof request->header, VIRTQ_DESC_F_NEXT, CHAIN_SLOT(1));
    for (uint32_t k = 1; k <= r->segment_count; k++) {
        const struct vblk_segment *segment = &r->segments[k - 1];
        set_descriptor(&table[CHAIN_SLOT(k)], segment->address, segment->length_bytes,
                       data_flags | VIRTQ_DESC_F_NEXT, CHAIN_SLOT(k + 1));
    }
    set_descriptor(&table[CHAIN_SLOT(entries - 1)], &request->status, 1, VIRTQ_DESC_F_WRITE, 0);
#undef CHAIN_SLOT
    if (r->indirect)
        set_descriptor(&d->descriptors[head], d->indirect[head], entries * sizeof(struct virtq_desc),
                       VIRTQ_DESC_F_INDIRECT, 0);
    vblk_publish(d, head);
    return head;
}

int vblk_wait(struct vblk *d, int head, uint32_t *used_bytes) {
    if (head < 0 || (uint32_t)head >= d->queue_size || !d->in_flight[head].busy) return VBLK_ERR_ARGUMENT;
    struct vblk_in_flight *request = &d->in_flight[head];
    for (;;) {
        collect_used(d);
        if (request->done) break;
        int result = vblk_wait_used(d);
        if (result != VBLK_OK) return result;
    }
    fence();
    if (used_bytes) *used_bytes = request->used_bytes;
    request->busy = 0;
    request->done = 0;
    return request->status;
}

int vblk_do(struct vblk *d, const struct vblk_request *r, uint32_t *used_bytes) {
    int head = vblk_submit(d, r);
    if (head < 0) return head;
    return vblk_wait(d, head, used_bytes);
}

static int transfer(struct vblk *d, uint32_t type, uint64_t sector, const void *buffer, uint32_t sector_count) {
    struct vblk_segment segment = {(void *)(uintptr_t)buffer, sector_count * VIRTIO_BLK_SECTOR_BYTES};
    struct vblk_request r = {type, sector, &segment, 1, 0};
    return vblk_do(d, &r, 0);
}

int vblk_read(struct vblk *d, uint64_t sector, void *buffer, uint32_t sector_count) {
    return transfer(d, VIRTIO_BLK_T_IN, sector, buffer, sector_count);
}

int vblk_write(struct vblk *d, uint64_t sector, const void *buffer, uint32_t sector_count) {
    return transfer(d, VIRTIO_BLK_T_OUT, sector, buffer, sector_count);
}

int vblk_flush(struct vblk *d) {
    struct vblk_request r = {VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0};
    return vblk_do(d, &r, 0);
}

int vblk_get_id(struct vblk *d, char id[VIRTIO_BLK_ID_BYTES + 1]) {
    memset(id, 0, VIRTIO_BLK_ID_BYTES + 1);
    struct vblk_segment segment = {id, VIRTIO_BLK_ID_BYTES};
    struct vblk_request r = {VIRTIO_BLK_T_GET_ID, 0, &segment, 1, 0};
    int status = vblk_do(d, &r, 0);
    id[VIRTIO_BLK_ID_BYTES] = 0;
    return status;
}
