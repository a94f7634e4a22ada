/*
 * The second CPU workload of `npm run bench`, of another kind than cpubench: a byte-wise,
 * table-driven CRC-32 (a load per byte), a sieve of Eratosthenes (byte stores with strides),
 * walks of a linked list shuffled over 256 KiB (a dependent load per step, poor locality) and
 * division-heavy number theory (gcd by remainders, modular exponentiation). It prints a
 * checksum, which must equal QEMU's, and the instructions it took (minstret delta).
 */
#include "runtime.h"

#define ROUNDS 20
#define SIEVE_BYTES 200000
#define NODES 16384
#define DATA_BYTES 65536

struct node {
    struct node *next;
    uint32_t value;
};

static uint32_t crc_table[256];
static uint8_t data[DATA_BYTES];
static uint8_t composite[SIEVE_BYTES];
static struct node nodes[NODES];
static uint32_t order[NODES];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int bit = 0; bit < 8; bit++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32(const uint8_t *bytes, uint32_t length, uint32_t crc) {
    crc = ~crc;
    for (uint32_t i = 0; i < length; i++) crc = crc_table[(crc ^ bytes[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t sieve(void) {
    for (uint32_t i = 0; i < SIEVE_BYTES; i++) composite[i] = 0;
    uint32_t primes = 0;
    for (uint32_t i = 2; i < SIEVE_BYTES; i++) {
        if (composite[i]) continue;
        primes++;
        for (uint32_t j = i * 2; j < SIEVE_BYTES; j += i) composite[j] = 1;
    }
    return primes;
}

static uint32_t next_random(uint32_t *seed) {
    *seed = *seed * 1664525u + 1013904223u;
    return *seed;
}

static void shuffle_list(uint32_t *seed) {
    for (uint32_t i = 0; i < NODES; i++) order[i] = i;
    for (uint32_t i = NODES - 1; i > 0; i--) {
        uint32_t j = next_random(seed) % (i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint32_t i = 0; i < NODES; i++) {
        nodes[order[i]].next = &nodes[order[(i + 1) % NODES]];
        nodes[order[i]].value = next_random(seed) >> 8;
    }
}

static uint32_t walk(uint32_t steps) {
    const struct node *p = &nodes[order[0]];
    uint32_t sum = 0;
    for (uint32_t i = 0; i < steps; i++) {
        sum = (sum << 1 | sum >> 31) ^ p->value;
        p = p->next;
    }
    return sum;
}

static uint32_t gcd(uint32_t a, uint32_t b) {
    while (b != 0) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static uint32_t power_mod(uint32_t base, uint32_t exponent, uint32_t modulus) {
    uint32_t result = 1 % modulus;
    base %= modulus;
    while (exponent != 0) {
        if (exponent & 1) result = (uint32_t)(((uint64_t)result * base) % modulus);
        base = (uint32_t)(((uint64_t)base * base) % modulus);
        exponent >>= 1;
    }
    return result;
}

static uint32_t number_theory(uint32_t *seed) {
    uint32_t acc = 0;
    for (uint32_t i = 0; i < 3000; i++) {
        uint32_t a = next_random(seed) >> 4, b = next_random(seed) >> 12;
        acc += gcd(a, b | 1) + a / (b | 1) + (a % 1000003u);
    }
    for (uint32_t i = 1; i < 200; i++) acc ^= power_mod(i + 2, 65537u + i, 1000000007u);
    return acc;
}

int main(void) {
    uint32_t seed = 2026, checksum = 0;
    uint32_t start = rdinstret();
    crc_init();
    for (int round = 0; round < ROUNDS; round++) {
        for (uint32_t i = 0; i < DATA_BYTES; i++) data[i] = (uint8_t)(next_random(&seed) >> 24);
        checksum = crc32(data, DATA_BYTES, checksum);
        checksum += sieve();
        shuffle_list(&seed);
        checksum ^= walk(NODES * 8);
        checksum += number_theory(&seed);
    }
    uint32_t instructions = rdinstret() - start;
    rt_printf("mixbench checksum %08x instructions %u\n", checksum, instructions);
    return 0;
}
