/*
 * A CPU-bound workload for `npm run bench`: integer arithmetic, multiplies and divides, loads
 * and stores over a working set bigger than a page, branches and calls. It prints a checksum
 * so that a wrong answer is caught, and the instructions it took (minstret delta).
 * Built with TIMED (build/cpubench-timed.elf, for `understudy bench replication`), it also
 * times its work with its own clock (mtime, 10 MHz) and prints "cpubench: T us": a protected
 * run and a `run` are then compared on the guest's work alone, not on processes' start-up.
 * That build does 200 rounds (about a second on the translation tier), so that what it
 * measures is the steady state of a computing guest, not the first tenth of a second of two
 * new processes.
 */
#include "runtime.h"

#ifndef ROUNDS
#define ROUNDS 40
#endif
#define N 64

static uint32_t matrix_a[N][N], matrix_b[N][N], matrix_c[N][N];
static uint32_t array[4096];

static uint32_t crc32(const uint8_t *data, uint32_t length, uint32_t crc) {
    crc = ~crc;
    for (uint32_t i = 0; i < length; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static void matmul(void) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            uint32_t sum = 0;
            for (int k = 0; k < N; k++) sum += matrix_a[i][k] * matrix_b[k][j];
            matrix_c[i][j] = sum;
        }
}

static void shell_sort(uint32_t *a, int n) {
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++) {
            uint32_t value = a[i];
            int j = i;
            for (; j >= gap && a[j - gap] > value; j -= gap) a[j] = a[j - gap];
            a[j] = value;
        }
}

static uint32_t divisions(uint32_t seed) {
    uint32_t acc = 0;
    for (uint32_t i = 1; i < 2000; i++) {
        acc += (seed / i) ^ (seed % (i + 7));
        seed = seed * 1664525u + 1013904223u;
    }
    return acc;
}

int main(void) {
    uint32_t seed = 12345, checksum = 0;
    uint32_t start = rdinstret();
#ifdef TIMED
    uint64_t started = read_mtime();
#endif
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                seed = seed * 1103515245u + 12345u;
                matrix_a[i][j] = seed >> 16;
                matrix_b[i][j] = (seed >> 8) & 0xff;
            }
        matmul();
        checksum += crc32((const uint8_t *)matrix_c, sizeof matrix_c, checksum);
        for (int i = 0; i < 4096; i++) {
            seed = seed * 1103515245u + 12345u;
            array[i] = seed;
        }
        shell_sort(array, 4096);
        for (int i = 1; i < 4096; i++)
            if (array[i - 1] > array[i]) checksum = 0xdead;
        checksum ^= array[round * 7] + divisions(seed);
    }
    uint32_t instructions = rdinstret() - start;
#ifdef TIMED
    rt_printf("cpubench: %u us\n", (uint32_t)((read_mtime() - started) / 10u));
#endif
    rt_printf("cpubench checksum %08x instructions %u\n", checksum, instructions);
    return 0;
}
