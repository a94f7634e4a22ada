/* The known disk contents shared by the disk guests (tests/disk.c, tests/disk_ro.c) and the
 * host test that prepares and inspects their images (test/disk.test.ts):
 *
 *   32-bit little-endian word k (0..127) of 512-byte sector n holds (tag << 24) | (n << 8) | k,
 *
 * with tag DISK_TAG_ORIGINAL in a fresh image and DISK_TAG_WRITTEN where a guest wrote.
 * Every word of a disk up to 32 MiB (65536 sectors) is then different, so a transfer to or
 * from the wrong sector, or the wrong offset in one, shows. */
#ifndef UNDERSTUDY_DISK_PATTERN_H
#define UNDERSTUDY_DISK_PATTERN_H

#include "runtime.h"

#define DISK_TAG_ORIGINAL 0x5du
#define DISK_TAG_WRITTEN  0xc3u
#define DISK_SECTOR_BYTES 512u
#define DISK_SECTOR_WORDS (DISK_SECTOR_BYTES / 4u)

static inline uint32_t disk_pattern_word(uint32_t tag, uint32_t sector, uint32_t word) {
    return tag << 24 | (sector & 0xffffu) << 8 | word;
}

/* Fills `count` sectors starting at `sector` with the pattern of `tag`. */
static inline void disk_pattern_fill(void *buffer, uint32_t tag, uint32_t sector, uint32_t count) {
    uint8_t *bytes = buffer;
    for (uint32_t s = 0; s < count; s++)
        for (uint32_t k = 0; k < DISK_SECTOR_WORDS; k++) {
            uint32_t value = disk_pattern_word(tag, sector + s, k);
            uint8_t *at = bytes + s * DISK_SECTOR_BYTES + 4 * k;
            at[0] = (uint8_t)value;
            at[1] = (uint8_t)(value >> 8);
            at[2] = (uint8_t)(value >> 16);
            at[3] = (uint8_t)(value >> 24);
        }
}

/* The byte offset of the first difference from the pattern of `tag` in `count` sectors
 * read from `sector`, or -1 if there is none. */
static inline int32_t disk_pattern_mismatch(const void *buffer, uint32_t tag, uint32_t sector, uint32_t count) {
    const uint8_t *bytes = buffer;
    for (uint32_t s = 0; s < count; s++)
        for (uint32_t k = 0; k < DISK_SECTOR_WORDS; k++) {
            uint32_t value = disk_pattern_word(tag, sector + s, k);
            const uint8_t *at = bytes + s * DISK_SECTOR_BYTES + 4 * k;
            uint32_t seen = at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 | (uint32_t)at[3] << 24;
            if (seen != value) return (int32_t)(s * DISK_SECTOR_BYTES + 4 * k);
        }
    return -1;
}

#endif
