/*
 * cpubench [ROUNDS]: a fixed integer workload (CRC-32, divisions, a sort, a matrix product)
 * for understudy's Linux guest. The checksum depends only on the number of rounds, so it must
 * be the same on every machine, QEMU included (10 rounds: 0xc9589fca); the time is what is
 * measured.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROUNDS_DEFAULT 10u
#define ROUNDS_MAX 100000u
#define WORDS 2048
#define MATRIX 24

static unsigned int bench_words[WORDS];
static unsigned int matrix_a[MATRIX][MATRIX], matrix_b[MATRIX][MATRIX];

static unsigned int xorshift32(unsigned int *state) {
    unsigned int x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static unsigned int crc32_bytes(const unsigned char *data, size_t length) {
    unsigned int crc = 0xffffffffu;
    for (size_t i = 0; i < length; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void shell_sort(unsigned int *values, int count) {
    for (int gap = count / 2; gap > 0; gap /= 2)
        for (int i = gap; i < count; i++) {
            unsigned int value = values[i];
            int j = i;
            for (; j >= gap && values[j - gap] > value; j -= gap) values[j] = values[j - gap];
            values[j] = value;
        }
}

/* One round's result; 0 means the sort left the array unsorted (a broken CPU). */
static unsigned int bench_round(unsigned int round) {
    unsigned int state = 0x9e3779b9u ^ (round * 0x85ebca6bu);
    if (state == 0) state = 1;
    for (int i = 0; i < WORDS; i++) bench_words[i] = xorshift32(&state);
    unsigned int crc = crc32_bytes((const unsigned char *)bench_words, sizeof bench_words);

    unsigned int quotients = 0;
    for (int i = 0; i < WORDS; i++) quotients += bench_words[i] / ((unsigned int)i | 1u) + bench_words[i] % 1000u;

    shell_sort(bench_words, WORDS);
    for (int i = 1; i < WORDS; i++)
        if (bench_words[i - 1] > bench_words[i]) return 0;

    for (int i = 0; i < MATRIX; i++)
        for (int j = 0; j < MATRIX; j++) {
            matrix_a[i][j] = xorshift32(&state) & 0xffffu;
            matrix_b[i][j] = xorshift32(&state) & 0xffffu;
        }
    unsigned int trace = 0;
    for (int i = 0; i < MATRIX; i++)
        for (int j = 0; j < MATRIX; j++) {
            unsigned int sum = 0;
            for (int k = 0; k < MATRIX; k++) sum += matrix_a[i][k] * matrix_b[k][j];
            trace ^= sum + (unsigned int)(i * 31 + j);
        }
    return crc ^ (quotients * 3u) ^ (trace << 1) ^ bench_words[WORDS / 2];
}

static unsigned long long monotonic_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (unsigned long long)now.tv_sec * 1000000000ull + (unsigned long long)now.tv_nsec;
}

int main(int argc, char **argv) {
    unsigned long rounds = ROUNDS_DEFAULT;
    char *end = NULL;
    if (argc == 2) rounds = strtoul(argv[1], &end, 10);
    if (argc > 2 || (argc == 2 && (*argv[1] == '\0' || *end != '\0' || rounds < 1 || rounds > ROUNDS_MAX))) {
        fprintf(stderr, "cpubench: usage: cpubench [ROUNDS] (1..%u, default %u)\n", ROUNDS_MAX, ROUNDS_DEFAULT);
        return 2;
    }
    unsigned long long start = monotonic_nanoseconds();
    unsigned int checksum = 0;
    for (unsigned int round = 0; round < rounds; round++) {
        unsigned int result = bench_round(round);
        if (result == 0) {
            fprintf(stderr, "cpubench: FAIL: sorting produced an unsorted array\n");
            return 1;
        }
        checksum = ((checksum << 5) | (checksum >> 27)) ^ result;
    }
    unsigned long long elapsed = monotonic_nanoseconds() - start;
    printf("cpubench: %lu rounds, checksum 0x%08x, %llu.%03llu ms\n", rounds, checksum, elapsed / 1000000ull,
           elapsed / 1000ull % 1000ull);
    return 0;
}
