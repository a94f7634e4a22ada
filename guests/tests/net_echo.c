/* net_echo: a bare-metal network peer on virtio-net (virtio 1.2, 5.1), for a side-by-side run
 * on QEMU (-netdev stream) and understudy (--net stream). It finds the first network device,
 * checks its configuration (MAC, link status), and then answers, as 10.0.2.15:
 *   - ARP requests for 10.0.2.15 (RFC 826), with its own MAC;
 *   - UDP datagrams to port 7 (the echo service, RFC 862): the same datagram back, addresses
 *     and ports swapped (both checksums stay valid: their sums do not depend on the order);
 *   - a datagram "quit" to port 7 is echoed, then the counts are printed and the run ends;
 *   - a datagram "flood N" to port 7 is echoed, then followed by N datagrams of 1400 bytes.
 * Everything else is counted and ignored. The driver sleeps in WFI on the device's PLIC source
 * (M-mode, interrupts globally off: WFI wakes on a pending enabled interrupt) and offers eight
 * receive buffers of 1530 bytes (a header and a 1518-byte frame). */
#include <stdint.h>
#include "runtime.h"

#define VIRTIO_BASE   0x10001000u
#define VIRTIO_STRIDE 0x1000u
#define MMIO16(addr) (*(volatile uint16_t *)(uintptr_t)(addr))
#define REG(slot, offset) MMIO32(VIRTIO_BASE + (uint32_t)(slot) * VIRTIO_STRIDE + (offset))
#define R_MAGIC 0x000u
#define R_VERSION 0x004u
#define R_DEVICE_ID 0x008u
#define R_DEVICE_FEATURES 0x010u
#define R_DEVICE_FEATURES_SEL 0x014u
#define R_DRIVER_FEATURES 0x020u
#define R_DRIVER_FEATURES_SEL 0x024u
#define R_QUEUE_SEL 0x030u
#define R_QUEUE_NUM_MAX 0x034u
#define R_QUEUE_NUM 0x038u
#define R_QUEUE_READY 0x044u
#define R_QUEUE_NOTIFY 0x050u
#define R_INTERRUPT_STATUS 0x060u
#define R_INTERRUPT_ACK 0x064u
#define R_STATUS 0x070u
#define R_DESC_LOW 0x080u
#define R_DRIVER_LOW 0x090u
#define R_DEVICE_LOW 0x0a0u
#define R_CONFIG 0x100u

#define PLIC_ENABLE0      (PLIC_BASE + 0x2000u)
#define PLIC_THRESHOLD0   (PLIC_BASE + 0x200000u)
#define PLIC_CLAIM0       (PLIC_BASE + 0x200004u)

#define F_MAC 5u
#define F_STATUS 16u
#define QUEUE_SIZE 8u
#define HEADER_BYTES 12u
#define FRAME_BYTES_MAX 1518u
#define BUFFER_BYTES (HEADER_BYTES + FRAME_BYTES_MAX)

struct desc { uint32_t addr_lo, addr_hi, len; uint16_t flags, next; };
struct avail { uint16_t flags, idx, ring[QUEUE_SIZE], used_event; };
struct used_elem { uint32_t id, len; };
struct used { uint16_t flags, idx; struct used_elem ring[QUEUE_SIZE]; uint16_t avail_event; };

struct queue {
    struct desc desc[QUEUE_SIZE] __attribute__((aligned(16)));
    struct avail avail __attribute__((aligned(2)));
    struct used used __attribute__((aligned(4)));
    uint16_t avail_idx, used_seen;
};

static struct queue rxq __attribute__((aligned(4096)));
static struct queue txq __attribute__((aligned(4096)));
static uint8_t rx_buffers[QUEUE_SIZE][BUFFER_BYTES] __attribute__((aligned(16)));
static uint8_t tx_buffer[BUFFER_BYTES] __attribute__((aligned(16)));
static int slot = -1;
static uint8_t mac[6];
static const uint8_t my_ip[4] = {10, 0, 2, 15};
static uint32_t arp_answered, udp_echoed, ignored;

static inline void fence(void) { __asm__ volatile("fence rw, rw" ::: "memory"); }

static int find_device(void) {
    for (int s = 7; s >= 0; s--)
        if (REG(s, R_MAGIC) == 0x74726976u && REG(s, R_VERSION) == 2u && REG(s, R_DEVICE_ID) == 1u) return s;
    return -1;
}

static void setup_queue(uint32_t index, struct queue *q) {
    REG(slot, R_QUEUE_SEL) = index;
    CHECK(REG(slot, R_QUEUE_NUM_MAX) >= QUEUE_SIZE);
    REG(slot, R_QUEUE_NUM) = QUEUE_SIZE;
    REG(slot, R_DESC_LOW) = (uint32_t)(uintptr_t)q->desc;
    REG(slot, R_DRIVER_LOW) = (uint32_t)(uintptr_t)&q->avail;
    REG(slot, R_DEVICE_LOW) = (uint32_t)(uintptr_t)&q->used;
    REG(slot, R_QUEUE_READY) = 1;
}

static void offer_rx(uint16_t i) {
    rxq.desc[i].addr_lo = (uint32_t)(uintptr_t)rx_buffers[i];
    rxq.desc[i].addr_hi = 0;
    rxq.desc[i].len = BUFFER_BYTES;
    rxq.desc[i].flags = 2; /* VIRTQ_DESC_F_WRITE */
    rxq.avail.ring[rxq.avail_idx % QUEUE_SIZE] = i;
    fence();
    rxq.avail.idx = ++rxq.avail_idx;
    fence();
}

static void init(void) {
    slot = find_device();
    CHECK(slot >= 0);
    if (slot < 0) rt_exit(rt_check_done("net_echo"));
    REG(slot, R_STATUS) = 0;
    REG(slot, R_STATUS) = 1;
    REG(slot, R_STATUS) = 3;
    REG(slot, R_DEVICE_FEATURES_SEL) = 0;
    uint32_t offered = REG(slot, R_DEVICE_FEATURES);
    CHECK(offered & (1u << F_MAC));
    CHECK(offered & (1u << F_STATUS));
    REG(slot, R_DRIVER_FEATURES_SEL) = 0;
    REG(slot, R_DRIVER_FEATURES) = (1u << F_MAC) | (1u << F_STATUS);
    REG(slot, R_DRIVER_FEATURES_SEL) = 1;
    REG(slot, R_DRIVER_FEATURES) = 1; /* VIRTIO_F_VERSION_1 */
    REG(slot, R_STATUS) = 11;
    CHECK(REG(slot, R_STATUS) & 8);
    setup_queue(0, &rxq);
    setup_queue(1, &txq);
    for (uint16_t i = 0; i < QUEUE_SIZE; i++) offer_rx(i);
    txq.avail.flags = 1; /* no interrupts for sent frames: their buffer is ours again when used moves */
    REG(slot, R_STATUS) = 15;
    REG(slot, R_QUEUE_NOTIFY) = 0;
    for (int i = 0; i < 6; i++) mac[i] = MMIO8(VIRTIO_BASE + (uint32_t)slot * VIRTIO_STRIDE + R_CONFIG + (uint32_t)i);
    uint16_t status = MMIO16(VIRTIO_BASE + (uint32_t)slot * VIRTIO_STRIDE + R_CONFIG + 6);
    rt_printf("net_echo: slot %d mac %02x:%02x:%02x:%02x:%02x:%02x link %s\n", slot, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], (status & 1) ? "up" : "down");
    uint32_t irq = 1u + (uint32_t)slot;
    MMIO32(PLIC_PRIORITY(irq)) = 1;
    MMIO32(PLIC_THRESHOLD0) = 0;
    MMIO32(PLIC_ENABLE0) = 1u << irq;
    csr_set(mie, 1u << 11); /* MEIE; mstatus.MIE stays off: WFI wakes, no trap is taken */
}

static void transmit(const uint8_t *frame, uint32_t length) {
    /* One frame in flight at a time: wait until the device has taken the previous one. */
    while (txq.used.idx != txq.avail_idx) fence();
    memset(tx_buffer, 0, HEADER_BYTES);
    memcpy(tx_buffer + HEADER_BYTES, frame, length);
    txq.desc[0].addr_lo = (uint32_t)(uintptr_t)tx_buffer;
    txq.desc[0].addr_hi = 0;
    txq.desc[0].len = HEADER_BYTES + length;
    txq.desc[0].flags = 0;
    txq.avail.ring[txq.avail_idx % QUEUE_SIZE] = 0;
    fence();
    txq.avail.idx = ++txq.avail_idx;
    fence();
    REG(slot, R_QUEUE_NOTIFY) = 1;
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void swap(uint8_t *a, uint8_t *b, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        uint8_t t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

/* "flood N": N more datagrams of 1400 bytes back to the sender, as fast as the device takes
 * them (for the host's backpressure test); `f` is the echo just sent, addressed already. */
static void flood(uint8_t *f, uint8_t *udp, uint32_t payload) {
    uint32_t count = 0;
    for (uint32_t i = 6; i < payload; i++) count = count * 10u + (uint32_t)(udp[8 + i] - '0');
    uint32_t ihl = (uint32_t)(udp - f) - 14u;
    for (uint32_t n = 0; n < count; n++) {
        memset(udp + 8, 'f', 1400);
        rt_snprintf((char *)udp + 8, 32, "flood %u", n);
        udp[4] = (uint8_t)((8 + 1400) >> 8);
        udp[5] = (uint8_t)(8 + 1400);
        udp[6] = udp[7] = 0; /* no UDP checksum */
        uint32_t ip_bytes = ihl + 8 + 1400;
        f[16] = (uint8_t)(ip_bytes >> 8);
        f[17] = (uint8_t)ip_bytes;
        f[24] = f[25] = 0;
        uint32_t sum = 0;
        for (uint32_t i = 0; i < ihl; i += 2) sum += (uint32_t)(f[14 + i] << 8 | f[15 + i]);
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        f[24] = (uint8_t)(~sum >> 8);
        f[25] = (uint8_t)~sum;
        transmit(f, 14 + ip_bytes);
    }
}

/* Handles one frame; returns 1 when it was the "quit" datagram. */
static int handle(uint8_t *f, uint32_t length) {
    if (length >= 42 && be16(f + 12) == 0x0806 && be16(f + 14) == 1 && be16(f + 16) == 0x0800 && be16(f + 20) == 1 && memcmp(f + 38, my_ip, 4) == 0) {
        memcpy(f, f + 6, 6);              /* to the asker */
        memcpy(f + 6, mac, 6);
        f[21] = 2;                        /* a reply */
        memcpy(f + 32, f + 22, 10);       /* target = the sender's MAC and IP */
        memcpy(f + 22, mac, 6);
        memcpy(f + 28, my_ip, 4);
        transmit(f, 42);
        arp_answered++;
        return 0;
    }
    if (length >= 42 && be16(f + 12) == 0x0800 && (f[14] >> 4) == 4 && f[23] == 17 && memcmp(f + 30, my_ip, 4) == 0) {
        uint32_t ihl = (f[14] & 15u) * 4u;
        uint8_t *udp = f + 14 + ihl;
        if (14 + ihl + 8 <= length && be16(udp + 2) == 7) {
            uint32_t total = 14u + be16(f + 16);
            if (total > length) total = length;
            swap(f, f + 6, 6);
            memcpy(f + 6, mac, 6);
            swap(f + 26, f + 30, 4);
            swap(udp, udp + 2, 2);
            transmit(f, total);
            udp_echoed++;
            uint32_t payload = be16(udp + 4) - 8u;
            if (payload > 6 && payload < 16 && memcmp(udp + 8, "flood ", 6) == 0) flood(f, udp, payload);
            return payload == 4 && memcmp(udp + 8, "quit", 4) == 0;
        }
    }
    ignored++;
    return 0;
}

int main(void) {
    init();
    for (;;) {
        while (rxq.used_seen != rxq.used.idx) {
            fence();
            struct used_elem e = rxq.used.ring[rxq.used_seen % QUEUE_SIZE];
            rxq.used_seen++;
            int quit = 0;
            if (e.id < QUEUE_SIZE && e.len >= HEADER_BYTES) {
                /* num_buffers: 1 (5.1.6.4.1); QEMU 7.2 leaves it 0 without mergeable buffers. */
                CHECK(rx_buffers[e.id][10] <= 1);
                quit = handle(rx_buffers[e.id] + HEADER_BYTES, e.len - HEADER_BYTES);
            }
            offer_rx((uint16_t)e.id);
            REG(slot, R_QUEUE_NOTIFY) = 0;
            if (quit) {
                while (txq.used.idx != txq.avail_idx) fence();
                rt_printf("net_echo: %u ARP requests answered, %u datagrams echoed, %u frames ignored\n", arp_answered, udp_echoed, ignored);
                rt_exit(rt_check_done("net_echo"));
            }
        }
        __asm__ volatile("wfi");
        uint32_t claimed = MMIO32(PLIC_CLAIM0);
        REG(slot, R_INTERRUPT_ACK) = REG(slot, R_INTERRUPT_STATUS);
        if (claimed) MMIO32(PLIC_CLAIM0) = claimed;
    }
}
