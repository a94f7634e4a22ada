/*
 * diskbench [MiB] [FILE]: writes N MiB (default 4) of a fixed pattern to FILE (default
 * /data/bench.bin), fsyncs, reads it back with direct I/O (past the page cache), checks every
 * word, and prints both rates and "diskbench: OK" or "diskbench: FAIL".
 *
 * The pattern, so that the host can check the file: the 32-bit little-endian word at index i
 * is x = i*0x9e3779b1 + 0x7f4a7c15; x ^= x>>15; x *= 0x2c1b3c6d; x ^= x>>12 (mod 2^32).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB_DEFAULT 4u
#define MIB_MAX 1024u
#define PATH_DEFAULT "/data/bench.bin"
#define CHUNK_BYTES (64 * 1024)
#define BYTES_PER_MIB (1024u * 1024u)

/* Aligned for O_DIRECT. */
static unsigned char chunk_buffer[CHUNK_BYTES] __attribute__((aligned(4096)));

static unsigned int pattern_word(unsigned int index) {
    unsigned int x = index * 0x9e3779b1u + 0x7f4a7c15u;
    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    return x;
}

static void fill_chunk(unsigned int first_word) {
    unsigned int *words = (unsigned int *)chunk_buffer;
    for (unsigned int i = 0; i < CHUNK_BYTES / 4; i++) words[i] = pattern_word(first_word + i);
}

static unsigned long long monotonic_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (unsigned long long)now.tv_sec * 1000000000ull + (unsigned long long)now.tv_nsec;
}

static int fail(const char *what, const char *path, int number) {
    fprintf(stderr, "diskbench: %s%s: %s\n", what, path, strerror(number));
    fprintf(stderr, "diskbench: FAIL\n");
    return 1;
}

static int write_fully(int fd, const unsigned char *data, size_t length) {
    while (length > 0) {
        ssize_t written = write(fd, data, length);
        if (written < 0 && errno == EINTR) continue;
        if (written < 0) return -1;
        if (written == 0) {
            errno = ENOSPC;
            return -1;
        }
        data += written;
        length -= (size_t)written;
    }
    return 0;
}

static ssize_t read_fully(int fd, unsigned char *data, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t got = read(fd, data + done, length - done);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -1;
        if (got == 0) break;
        done += (size_t)got;
    }
    return (ssize_t)done;
}

static int write_file(const char *path, unsigned int chunks) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail("", path, errno);
    for (unsigned int chunk = 0; chunk < chunks; chunk++) {
        fill_chunk(chunk * (CHUNK_BYTES / 4));
        if (write_fully(fd, chunk_buffer, CHUNK_BYTES) < 0) {
            int number = errno;
            close(fd);
            return fail("", path, number);
        }
    }
    if (fsync(fd) < 0) {
        int number = errno;
        close(fd);
        return fail("fsync: ", path, number);
    }
    return close(fd) < 0 ? fail("", path, errno) : 0;
}

struct verdict {
    int direct;
    unsigned long long bad_words;
    unsigned long long first_bad_byte;
};

static int verify_file(const char *path, unsigned int chunks, struct verdict *verdict) {
    /* Direct I/O bypasses the page cache, so the data really comes from the disk again. */
    int fd = open(path, O_RDONLY | O_DIRECT);
    verdict->direct = fd >= 0;
    if (fd < 0) fd = open(path, O_RDONLY);
    if (fd < 0) return fail("", path, errno);
    for (unsigned int chunk = 0; chunk < chunks; chunk++) {
        ssize_t got = read_fully(fd, chunk_buffer, CHUNK_BYTES);
        if (got < 0) {
            int number = errno;
            close(fd);
            return fail("read: ", path, number);
        }
        const unsigned int *words = (const unsigned int *)chunk_buffer;
        unsigned int first_word = chunk * (CHUNK_BYTES / 4);
        for (unsigned int i = 0; i < CHUNK_BYTES / 4; i++) {
            int wrong = (size_t)got < (i + 1) * 4u || words[i] != pattern_word(first_word + i);
            if (wrong && verdict->bad_words++ == 0) verdict->first_bad_byte = ((unsigned long long)first_word + i) * 4u;
        }
    }
    close(fd);
    return 0;
}

/* "12.3 ms (4.56 MiB/s" */
static void print_time_and_rate(unsigned int mib, unsigned long long nanoseconds) {
    if (nanoseconds == 0) nanoseconds = 1;
    unsigned long long hundredths = (unsigned long long)mib * 100000000000ull / nanoseconds;
    printf("%llu.%llu ms (%llu.%02llu MiB/s", nanoseconds / 1000000ull, nanoseconds / 100000ull % 10ull,
           hundredths / 100ull, hundredths % 100ull);
}

int main(int argc, char **argv) {
    unsigned long mib = MIB_DEFAULT;
    const char *path = argc > 2 ? argv[2] : PATH_DEFAULT;
    char *end = NULL;
    if (argc >= 2) mib = strtoul(argv[1], &end, 10);
    if (argc > 3 || (argc >= 2 && (*argv[1] == '\0' || *end != '\0' || mib < 1 || mib > MIB_MAX))) {
        fprintf(stderr, "diskbench: usage: diskbench [MiB] [FILE] (1..%u, default %u MiB to %s)\n", MIB_MAX, MIB_DEFAULT,
                PATH_DEFAULT);
        return 2;
    }
    unsigned int chunks = (unsigned int)mib * (BYTES_PER_MIB / CHUNK_BYTES);

    unsigned long long start = monotonic_nanoseconds();
    if (write_file(path, chunks) != 0) return 1;
    unsigned long long written = monotonic_nanoseconds();
    struct verdict verdict = {0, 0, 0};
    if (verify_file(path, chunks, &verdict) != 0) return 1;
    unsigned long long verified = monotonic_nanoseconds();

    printf("diskbench: wrote %lu MiB to %s in ", mib, path);
    print_time_and_rate((unsigned int)mib, written - start);
    printf(") incl. fsync\ndiskbench: read back in ");
    print_time_and_rate((unsigned int)mib, verified - written);
    printf(verdict.direct ? ", direct I/O)\n" : ", through the page cache)\n");
    if (verdict.bad_words == 0) {
        printf("diskbench: OK\n");
        return 0;
    }
    printf("diskbench: FAIL: %llu words differ, the first at byte %llu\n", verdict.bad_words, verdict.first_bad_byte);
    return 1;
}
