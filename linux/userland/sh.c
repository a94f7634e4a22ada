/*
 * /bin/sh for understudy's Linux guest: a small interactive shell whose commands are all built
 * in, so the initramfs needs no other program.
 *
 * Input is read from standard input in whatever chunks arrive (a terminal line, a pipe, bytes
 * fed one at a time); a line ends at LF or CR. Backspace (^H) and DEL remove the previous
 * character, for input that does not pass through the kernel's terminal line editing. Words
 * are split at blanks; "double" and 'single' quotes group words, a backslash quotes the next
 * character outside single quotes, and # starts a comment. `> FILE` and `>> FILE` send a
 * command's standard output to a file (truncating or appending).
 *
 * Every limit is a named constant below; input beyond one is reported, never overflowed. The
 * prompt is exactly PROMPT, printed when the shell is ready for the next line.
 */
#include "rv32-nolibc.h"

#define PROMPT "understudy$ "
#define LINE_BYTES_MAX 1024
#define WORDS_MAX 64
#define INPUT_CHUNK_BYTES 256
#define OUTPUT_BUFFER_BYTES 2048
#define LS_ENTRIES_MAX 512
#define LS_NAME_BYTES_TOTAL (32 * 1024)
#define DIRENT_BUFFER_BYTES 2048
#define PATH_BYTES_MAX 1024
#define FILE_CHUNK_BYTES 4096
#define DISKBENCH_CHUNK_BYTES (64 * 1024)
#define DISKBENCH_MIB_DEFAULT 4u
#define DISKBENCH_MIB_MAX 1024u
#define DISKBENCH_PATH_DEFAULT "/data/bench.bin"
#define CPUBENCH_ROUNDS_DEFAULT 10u
#define CPUBENCH_ROUNDS_MAX 100000u
#define SLEEP_SECONDS_MAX 3600u
#define NANOSECONDS_PER_SECOND 1000000000ull
#define BYTES_PER_MIB (1024u * 1024u)

/* ===== Output: buffered, to standard output or to a redirection target ================= */

static int output_fd = 1;
static char output_buffer[OUTPUT_BUFFER_BYTES];
static size_t output_used;

static void write_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t written = write(fd, data, length);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return;  /* nowhere to report it: the output is what failed */
        data += written;
        length -= (size_t)written;
    }
}

static void out_flush(void) {
    write_all(output_fd, output_buffer, output_used);
    output_used = 0;
}

static void out_bytes(const char *data, size_t length) {
    if (length >= OUTPUT_BUFFER_BYTES) {
        out_flush();
        write_all(output_fd, data, length);
        return;
    }
    if (output_used + length > OUTPUT_BUFFER_BYTES) out_flush();
    memcpy(output_buffer + output_used, data, length);
    output_used += length;
}

static void out_str(const char *text) {
    out_bytes(text, strlen(text));
}

static void out_char(char c) {
    out_bytes(&c, 1);
}

static void out_unsigned(unsigned long long value) {
    char digits[24];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (count > 0) out_char(digits[--count]);
}

/* At least `width` digits, padded on the left with `pad`. */
static void out_unsigned_padded(unsigned long long value, int width, char pad) {
    char digits[24];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    for (int i = count; i < width; i++) out_char(pad);
    while (count > 0) out_char(digits[--count]);
}

static void out_hex32(unsigned int value) {
    out_str("0x");
    for (int shift = 28; shift >= 0; shift -= 4) out_char("0123456789abcdef"[(value >> shift) & 0xfu]);
}

/* value / scale with `decimals` digits after the point, truncated. */
static void out_decimal(unsigned long long value, unsigned long long scale, int decimals) {
    out_unsigned(value / scale);
    if (decimals == 0) return;
    unsigned long long fraction = value % scale;
    unsigned long long divisor = scale;
    for (int i = 0; i < decimals; i++) divisor /= 10;
    out_char('.');
    out_unsigned_padded(divisor == 0 ? 0 : fraction / divisor, decimals, '0');
}

/* ===== Errors: to standard error, never redirected =========================================== */

static const char *error_text(int number) {
    switch (number) {
    case EPERM: return "operation not permitted";
    case ENOENT: return "no such file or directory";
    case EIO: return "input/output error";
    case ENXIO: return "no such device or address";
    case EBADF: return "bad file descriptor";
    case ENOMEM: return "out of memory";
    case EACCES: return "permission denied";
    case EBUSY: return "device or resource busy";
    case EEXIST: return "file exists";
    case ENODEV: return "no such device";
    case ENOTDIR: return "not a directory";
    case EISDIR: return "is a directory";
    case EINVAL: return "invalid argument";
    case ENOSPC: return "no space left on device";
    case EROFS: return "read-only file system";
    case ENAMETOOLONG: return "file name too long";
    case ENOTEMPTY: return "directory not empty";
    case ENOSYS: return "function not implemented";
    case EFBIG: return "file too large";
    case EMFILE: return "too many open files";
    default: return NULL;
    }
}

static void report(const char *command, const char *subject, const char *message) {
    out_flush();
    char line[256];
    line[0] = '\0';
    strlcat(line, command, sizeof line);
    strlcat(line, ": ", sizeof line);
    if (subject != NULL) {
        strlcat(line, subject, sizeof line);
        strlcat(line, ": ", sizeof line);
    }
    strlcat(line, message, sizeof line);
    strlcat(line, "\n", sizeof line);
    write_all(2, line, strlen(line));
}

static int report_errno(const char *command, const char *subject, int number) {
    const char *text = error_text(number);
    char fallback[32];
    if (text == NULL) {
        strlcpy(fallback, "error ", sizeof fallback);
        char digits[12];
        int count = 0;
        unsigned int value = (unsigned int)number;
        do {
            digits[count++] = (char)('0' + value % 10);
            value /= 10;
        } while (value != 0 && count < 11);
        size_t at = strlen(fallback);
        while (count > 0 && at + 1 < sizeof fallback) fallback[at++] = digits[--count];
        fallback[at] = '\0';
        text = fallback;
    }
    report(command, subject, text);
    return 1;
}

static int usage(const char *command, const char *text) {
    char message[128];
    strlcpy(message, "usage: ", sizeof message);
    strlcat(message, text, sizeof message);
    report(command, NULL, message);
    return 2;
}

/* ===== Small helpers ============================================================================ */

/* Decimal number in [minimum, maximum]; returns 0 when `text` is not one. */
static int parse_unsigned(const char *text, unsigned int minimum, unsigned int maximum, unsigned int *value) {
    unsigned long long result = 0;
    if (*text == '\0') return 0;
    for (; *text != '\0'; text++) {
        if (*text < '0' || *text > '9') return 0;
        result = result * 10 + (unsigned int)(*text - '0');
        if (result > maximum) return 0;
    }
    if (result < minimum) return 0;
    *value = (unsigned int)result;
    return 1;
}

static unsigned long long monotonic_nanoseconds(void) {
    return clock_nanoseconds(CLOCK_MONOTONIC);
}

/* Reads a whole small file (e.g. under /proc) into `buffer`, NUL-terminated. */
static ssize_t read_small_file(const char *path, char *buffer, size_t size) {
    int fd = open(path, O_RDONLY, 0);
    if (fd < 0) return -1;
    size_t used = 0;
    while (used + 1 < size) {
        ssize_t got = read(fd, buffer + used, size - 1 - used);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        used += (size_t)got;
    }
    close(fd);
    buffer[used] = '\0';
    return (ssize_t)used;
}

/* ===== Commands ================================================================================== */

typedef int (*command_function)(int argc, char **argv);

struct command {
    const char *name;
    command_function run;
    const char *usage;
    const char *summary;
};

static const struct command *find_command(const char *name);
static int cmd_help(int argc, char **argv);

static int cmd_echo(int argc, char **argv) {
    int first = 1, newline = 1;
    if (argc > 1 && strcmp(argv[1], "-n") == 0) {
        newline = 0;
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        if (i > first) out_char(' ');
        out_str(argv[i]);
    }
    if (newline) out_char('\n');
    return 0;
}

static char file_type_letter(unsigned int mode) {
    if (S_ISDIR(mode)) return 'd';
    if (S_ISLNK(mode)) return 'l';
    if (S_ISCHR(mode)) return 'c';
    if (S_ISBLK(mode)) return 'b';
    if (S_ISFIFO(mode)) return 'p';
    if (S_ISSOCK(mode)) return 's';
    return '-';
}

/* One `ls` line: type letter, size right-aligned, name. */
static void ls_line(const struct statx *info, const char *name) {
    out_char(file_type_letter(info->stx_mode));
    out_char(' ');
    out_unsigned_padded(info->stx_size, 10, ' ');
    out_char(' ');
    out_str(name);
    out_char('\n');
}

static char ls_names[LS_NAME_BYTES_TOTAL];
static const char *ls_entries[LS_ENTRIES_MAX];

static void sort_names(const char **names, int count) {
    for (int i = 1; i < count; i++) {
        const char *name = names[i];
        int j = i;
        for (; j > 0 && strcmp(names[j - 1], name) > 0; j--) names[j] = names[j - 1];
        names[j] = name;
    }
}

/* Collects a directory's names (except . and ..) into ls_entries; returns the count, or -1. */
static int read_directory(int fd, const char *path, int *truncated) {
    static char dirents[DIRENT_BUFFER_BYTES] __attribute__((aligned(8)));
    size_t names_used = 0;
    int count = 0;
    *truncated = 0;
    for (;;) {
        int got = getdents64(fd, (struct linux_dirent64 *)dirents, sizeof dirents);
        if (got < 0) {
            report_errno("ls", path, errno);
            return -1;
        }
        if (got == 0) return count;
        for (int offset = 0; offset < got;) {
            const struct linux_dirent64 *entry = (const struct linux_dirent64 *)(dirents + offset);
            offset += entry->d_reclen;
            const char *name = entry->d_name;
            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
            size_t length = strlen(name) + 1;
            if (count == LS_ENTRIES_MAX || names_used + length > sizeof ls_names) {
                *truncated = 1;
                continue;
            }
            memcpy(ls_names + names_used, name, length);
            ls_entries[count++] = ls_names + names_used;
            names_used += length;
        }
    }
}

static int list_path(const char *path) {
    struct statx info;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &info) < 0) return report_errno("ls", path, errno);
    if (!S_ISDIR(info.stx_mode)) {
        ls_line(&info, path);
        return 0;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) return report_errno("ls", path, errno);
    int truncated;
    int count = read_directory(fd, path, &truncated);
    int status = count < 0 ? 1 : 0;
    if (count > 0) sort_names(ls_entries, count);
    for (int i = 0; i < count; i++) {
        if (statx(fd, ls_entries[i], AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &info) < 0) {
            report_errno("ls", ls_entries[i], errno);
            status = 1;
            continue;
        }
        ls_line(&info, ls_entries[i]);
    }
    if (truncated) {
        report("ls", path, "too many entries; the rest are not shown");
        status = 1;
    }
    close(fd);
    return status;
}

static int cmd_ls(int argc, char **argv) {
    if (argc == 1) return list_path(".");
    int status = 0;
    for (int i = 1; i < argc; i++) {
        if (argc > 2) {
            if (i > 1) out_char('\n');
            out_str(argv[i]);
            out_str(":\n");
        }
        status |= list_path(argv[i]);
    }
    return status;
}

static int cmd_cat(int argc, char **argv) {
    static char chunk[FILE_CHUNK_BYTES];
    if (argc < 2) return usage("cat", "cat FILE...");
    int status = 0;
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY, 0);
        if (fd < 0) {
            status = report_errno("cat", argv[i], errno);
            continue;
        }
        for (;;) {
            ssize_t got = read(fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) status = report_errno("cat", argv[i], errno);
            if (got <= 0) break;
            out_bytes(chunk, (size_t)got);
        }
        close(fd);
    }
    return status;
}

static int cmd_write(int argc, char **argv) {
    if (argc < 2) return usage("write", "write FILE [TEXT...]");
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return report_errno("write", argv[1], errno);
    /* The text goes through the output buffer so that a long line is written in few calls. */
    out_flush();
    int saved_fd = output_fd;
    output_fd = fd;
    for (int i = 2; i < argc; i++) {
        if (i > 2) out_char(' ');
        out_str(argv[i]);
    }
    out_char('\n');
    out_flush();
    output_fd = saved_fd;
    return close(fd) < 0 ? report_errno("write", argv[1], errno) : 0;
}

static int cmd_rm(int argc, char **argv) {
    if (argc < 2) return usage("rm", "rm PATH...");
    int status = 0;
    for (int i = 1; i < argc; i++) {
        if (unlink(argv[i]) == 0) continue;
        /* unlink(2) refuses directories; remove an empty one like rmdir. */
        if (errno == EISDIR && rmdir(argv[i]) == 0) continue;
        status = report_errno("rm", argv[i], errno);
    }
    return status;
}

static int cmd_rmdir(int argc, char **argv) {
    if (argc < 2) return usage("rmdir", "rmdir DIR...");
    int status = 0;
    for (int i = 1; i < argc; i++)
        if (rmdir(argv[i]) < 0) status = report_errno("rmdir", argv[i], errno);
    return status;
}

static int cmd_mkdir(int argc, char **argv) {
    if (argc < 2) return usage("mkdir", "mkdir DIR...");
    int status = 0;
    for (int i = 1; i < argc; i++)
        if (mkdir(argv[i], 0755) < 0) status = report_errno("mkdir", argv[i], errno);
    return status;
}

static int cmd_cd(int argc, char **argv) {
    const char *target = argc > 1 ? argv[1] : "/";
    if (argc > 2) return usage("cd", "cd [DIR]");
    return chdir(target) < 0 ? report_errno("cd", target, errno) : 0;
}

static int cmd_pwd(int argc, char **argv) {
    (void)argc;
    (void)argv;
    char path[PATH_BYTES_MAX];
    if (getcwd_checked(path, sizeof path) < 0) return report_errno("pwd", NULL, errno);
    out_str(path);
    out_char('\n');
    return 0;
}

static int cmd_sync(int argc, char **argv) {
    (void)argc;
    (void)argv;
    sync();
    return 0;
}

static int cmd_mount(int argc, char **argv) {
    if (argc == 1) {
        char *cat_argv[] = {"cat", "/proc/mounts", NULL};
        return cmd_cat(2, cat_argv);
    }
    if (argc != 4) return usage("mount", "mount [SOURCE TARGET TYPE]");
    return mount(argv[1], argv[2], argv[3], 0, NULL) < 0 ? report_errno("mount", argv[2], errno) : 0;
}

static int cmd_umount(int argc, char **argv) {
    if (argc != 2) return usage("umount", "umount TARGET");
    return umount2(argv[1], 0) < 0 ? report_errno("umount", argv[1], errno) : 0;
}

static int cmd_uptime(int argc, char **argv) {
    (void)argc;
    (void)argv;
    char text[128];
    if (read_small_file("/proc/uptime", text, sizeof text) <= 0) return report_errno("uptime", "/proc/uptime", errno);
    /* "12.34 10.00\n": seconds since boot, then seconds spent idle. */
    char *space = strchr(text, ' ');
    if (space == NULL) return usage("uptime", "uptime (and /proc mounted)");
    *space = '\0';
    char *idle = space + 1;
    char *newline = strchr(idle, '\n');
    if (newline != NULL) *newline = '\0';
    out_str("up ");
    out_str(text);
    out_str(" s, idle ");
    out_str(idle);
    out_str(" s\n");
    return 0;
}

/* Civil date from days since 1970-01-01 (proleptic Gregorian, 400-year eras). */
static void civil_from_days(long long days, long long *year, unsigned int *month, unsigned int *day) {
    days += 719468;  /* shift the epoch to 0000-03-01 */
    long long era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned int day_of_era = (unsigned int)(days - era * 146097);
    unsigned int year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    unsigned int day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    unsigned int month_index = (5 * day_of_year + 2) / 153;  /* 0 = March */
    *day = day_of_year - (153 * month_index + 2) / 5 + 1;
    *month = month_index < 10 ? month_index + 3 : month_index - 9;
    *year = (long long)year_of_era + era * 400 + (*month <= 2);
}

static int cmd_date(int argc, char **argv) {
    (void)argc;
    (void)argv;
    struct __kernel_timespec now;
    if (clock_gettime64(CLOCK_REALTIME, &now) < 0) return report_errno("date", NULL, errno);
    long long seconds = now.tv_sec;
    long long days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
    unsigned int second_of_day = (unsigned int)(seconds - days * 86400);
    long long year;
    unsigned int month, day;
    civil_from_days(days, &year, &month, &day);
    if (year < 0) {
        out_char('-');
        year = -year;
    }
    out_unsigned_padded((unsigned long long)year, 4, '0');
    out_char('-');
    out_unsigned_padded(month, 2, '0');
    out_char('-');
    out_unsigned_padded(day, 2, '0');
    out_char(' ');
    out_unsigned_padded(second_of_day / 3600, 2, '0');
    out_char(':');
    out_unsigned_padded(second_of_day / 60 % 60, 2, '0');
    out_char(':');
    out_unsigned_padded(second_of_day % 60, 2, '0');
    out_str(" UTC (");
    if (seconds < 0) {
        out_char('-');
        out_unsigned((unsigned long long)-seconds);
    } else {
        out_unsigned((unsigned long long)seconds);
    }
    out_str(" s since 1970)\n");
    return 0;
}

static int cmd_sleep(int argc, char **argv) {
    unsigned int seconds;
    if (argc != 2 || !parse_unsigned(argv[1], 0, SLEEP_SECONDS_MAX, &seconds)) return usage("sleep", "sleep SECONDS (0..3600)");
    out_flush();
    return sleep(seconds) == 0 ? 0 : report_errno("sleep", NULL, errno);
}

/* ----- cpubench: a fixed integer workload; the checksum must match on every machine -------- */
#define CPUBENCH_WORDS 2048
#define CPUBENCH_MATRIX 24

static unsigned int bench_words[CPUBENCH_WORDS];
static unsigned int matrix_a[CPUBENCH_MATRIX][CPUBENCH_MATRIX], matrix_b[CPUBENCH_MATRIX][CPUBENCH_MATRIX];

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

static unsigned int cpubench_round(unsigned int round) {
    unsigned int state = 0x9e3779b9u ^ (round * 0x85ebca6bu);
    if (state == 0) state = 1;
    for (int i = 0; i < CPUBENCH_WORDS; i++) bench_words[i] = xorshift32(&state);
    unsigned int crc = crc32_bytes((const unsigned char *)bench_words, sizeof bench_words);

    unsigned int quotients = 0;
    for (int i = 0; i < CPUBENCH_WORDS; i++) quotients += bench_words[i] / ((unsigned int)i | 1u) + bench_words[i] % 1000u;

    shell_sort(bench_words, CPUBENCH_WORDS);
    for (int i = 1; i < CPUBENCH_WORDS; i++)
        if (bench_words[i - 1] > bench_words[i]) return 0;  /* a broken CPU, not a checksum */

    for (int i = 0; i < CPUBENCH_MATRIX; i++)
        for (int j = 0; j < CPUBENCH_MATRIX; j++) {
            matrix_a[i][j] = xorshift32(&state) & 0xffffu;
            matrix_b[i][j] = xorshift32(&state) & 0xffffu;
        }
    unsigned int trace = 0;
    for (int i = 0; i < CPUBENCH_MATRIX; i++)
        for (int j = 0; j < CPUBENCH_MATRIX; j++) {
            unsigned int sum = 0;
            for (int k = 0; k < CPUBENCH_MATRIX; k++) sum += matrix_a[i][k] * matrix_b[k][j];
            trace ^= sum + (unsigned int)(i * 31 + j);
        }
    return crc ^ (quotients * 3u) ^ (trace << 1) ^ bench_words[CPUBENCH_WORDS / 2];
}

static int cmd_cpubench(int argc, char **argv) {
    unsigned int rounds = CPUBENCH_ROUNDS_DEFAULT;
    if (argc > 2 || (argc == 2 && !parse_unsigned(argv[1], 1, CPUBENCH_ROUNDS_MAX, &rounds)))
        return usage("cpubench", "cpubench [ROUNDS] (1..100000, default 10)");
    out_flush();
    unsigned long long start = monotonic_nanoseconds();
    unsigned int checksum = 0;
    for (unsigned int round = 0; round < rounds; round++) {
        unsigned int result = cpubench_round(round);
        if (result == 0) {
            report("cpubench", NULL, "FAIL: sorting produced an unsorted array");
            return 1;
        }
        checksum = ((checksum << 5) | (checksum >> 27)) ^ result;
    }
    unsigned long long elapsed = monotonic_nanoseconds() - start;
    out_str("cpubench: ");
    out_unsigned(rounds);
    out_str(" rounds, checksum ");
    out_hex32(checksum);
    out_str(", ");
    out_decimal(elapsed, 1000000ull, 3);
    out_str(" ms\n");
    return 0;
}

/* ----- diskbench: write, fsync, read back and verify N MiB ----------------------------------- */
static unsigned char disk_chunk[DISKBENCH_CHUNK_BYTES] __attribute__((aligned(4096)));

/* The word at index `index` of the benchmark file: a fixed function, so the host can check it. */
static unsigned int pattern_word(unsigned int index) {
    unsigned int x = index * 0x9e3779b1u + 0x7f4a7c15u;
    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    return x;
}

static void fill_chunk(unsigned int first_word) {
    unsigned int *words = (unsigned int *)disk_chunk;
    for (unsigned int i = 0; i < DISKBENCH_CHUNK_BYTES / 4; i++) words[i] = pattern_word(first_word + i);
}

static void out_rate(unsigned int mib, unsigned long long nanoseconds) {
    if (nanoseconds == 0) nanoseconds = 1;
    /* hundredths of a MiB per second */
    out_decimal((unsigned long long)mib * NANOSECONDS_PER_SECOND * 100ull / nanoseconds, 100, 2);
    out_str(" MiB/s");
}

static int write_fully(int fd, const unsigned char *data, size_t length) {
    while (length > 0) {
        ssize_t written = write(fd, data, length);
        if (written < 0 && errno == EINTR) continue;
        if (written < 0) return -1;
        if (written == 0) {
            SET_ERRNO(ENOSPC);
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

static int diskbench_write(const char *path, unsigned int chunks) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return report_errno("diskbench", path, errno);
    for (unsigned int chunk = 0; chunk < chunks; chunk++) {
        fill_chunk(chunk * (DISKBENCH_CHUNK_BYTES / 4));
        if (write_fully(fd, disk_chunk, DISKBENCH_CHUNK_BYTES) < 0) {
            int number = errno;
            close(fd);
            return report_errno("diskbench", path, number);
        }
    }
    if (fsync(fd) < 0) {
        int number = errno;
        close(fd);
        return report_errno("diskbench: fsync", path, number);
    }
    return close(fd) < 0 ? report_errno("diskbench", path, errno) : 0;
}

/* Reads the file back and counts words that differ from the pattern. */
static int diskbench_verify(const char *path, unsigned int chunks, int *direct, unsigned long long *bad_words,
                            unsigned long long *first_bad_byte) {
    /* Direct I/O bypasses the page cache, so the data really comes from the disk again. */
    int fd = open(path, O_RDONLY | O_DIRECT, 0);
    *direct = fd >= 0;
    if (fd < 0) fd = open(path, O_RDONLY, 0);
    if (fd < 0) return report_errno("diskbench", path, errno);
    *bad_words = 0;
    for (unsigned int chunk = 0; chunk < chunks; chunk++) {
        ssize_t got = read_fully(fd, disk_chunk, DISKBENCH_CHUNK_BYTES);
        if (got < 0) {
            int number = errno;
            close(fd);
            return report_errno("diskbench: read", path, number);
        }
        const unsigned int *words = (const unsigned int *)disk_chunk;
        unsigned int first_word = chunk * (DISKBENCH_CHUNK_BYTES / 4);
        for (unsigned int i = 0; i < DISKBENCH_CHUNK_BYTES / 4; i++) {
            int wrong = (size_t)got < (i + 1) * 4u || words[i] != pattern_word(first_word + i);
            if (wrong && (*bad_words)++ == 0) *first_bad_byte = ((unsigned long long)first_word + i) * 4u;
        }
    }
    close(fd);
    return 0;
}

static int cmd_diskbench(int argc, char **argv) {
    unsigned int mib = DISKBENCH_MIB_DEFAULT;
    const char *path = argc > 2 ? argv[2] : DISKBENCH_PATH_DEFAULT;
    if (argc > 3 || (argc >= 2 && !parse_unsigned(argv[1], 1, DISKBENCH_MIB_MAX, &mib)))
        return usage("diskbench", "diskbench [MiB] [FILE] (1..1024, default 4 MiB to " DISKBENCH_PATH_DEFAULT ")");
    unsigned int chunks = mib * (BYTES_PER_MIB / DISKBENCH_CHUNK_BYTES);
    out_flush();

    unsigned long long start = monotonic_nanoseconds();
    if (diskbench_write(path, chunks) != 0) {
        report("diskbench", NULL, "FAIL");
        return 1;
    }
    unsigned long long written = monotonic_nanoseconds();
    int direct;
    unsigned long long bad_words = 0, first_bad_byte = 0;
    if (diskbench_verify(path, chunks, &direct, &bad_words, &first_bad_byte) != 0) {
        report("diskbench", NULL, "FAIL");
        return 1;
    }
    unsigned long long verified = monotonic_nanoseconds();

    out_str("diskbench: wrote ");
    out_unsigned(mib);
    out_str(" MiB to ");
    out_str(path);
    out_str(" in ");
    out_decimal(written - start, 1000000ull, 1);
    out_str(" ms incl. fsync (");
    out_rate(mib, written - start);
    out_str(")\ndiskbench: read back in ");
    out_decimal(verified - written, 1000000ull, 1);
    out_str(" ms (");
    out_rate(mib, verified - written);
    out_str(direct ? ", direct I/O)\n" : ", through the page cache)\n");
    if (bad_words == 0) {
        out_str("diskbench: OK\n");
        return 0;
    }
    out_str("diskbench: FAIL: ");
    out_unsigned(bad_words);
    out_str(" words differ, the first at byte ");
    out_unsigned(first_bad_byte);
    out_char('\n');
    return 1;
}

/* ----- power --------------------------------------------------------------------------------- */
static int power(const char *command, int how) {
    out_flush();
    sync();
    /* Read-only marks the ext2 file system clean, so the next boot mounts it without the
     * "unchecked fs" warning; the kernel's power-off path unmounts nothing itself. */
    mount(NULL, "/data", NULL, MS_REMOUNT | MS_RDONLY, NULL);
    reboot(how);
    return report_errno(command, NULL, errno);  /* only reached when the kernel refused */
}

static int cmd_poweroff(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return power("poweroff", LINUX_REBOOT_CMD_POWER_OFF);
}

static int cmd_reboot(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return power("reboot", LINUX_REBOOT_CMD_RESTART);
}

static int cmd_exit(int argc, char **argv) {
    unsigned int status = 0;
    if (argc > 2 || (argc == 2 && !parse_unsigned(argv[1], 0, 255, &status))) return usage("exit", "exit [STATUS]");
    out_flush();
    exit((int)status);
}

static const struct command commands[] = {
    {"help", cmd_help, "help", "list the commands"},
    {"echo", cmd_echo, "echo [-n] [TEXT...]", "print TEXT"},
    {"ls", cmd_ls, "ls [PATH...]", "list directories: type, size, name"},
    {"cat", cmd_cat, "cat FILE...", "print files"},
    {"write", cmd_write, "write FILE [TEXT...]", "replace FILE's contents with TEXT and a newline"},
    {"rm", cmd_rm, "rm PATH...", "remove files and empty directories"},
    {"mkdir", cmd_mkdir, "mkdir DIR...", "make directories"},
    {"rmdir", cmd_rmdir, "rmdir DIR...", "remove empty directories"},
    {"cd", cmd_cd, "cd [DIR]", "change the working directory (default /)"},
    {"pwd", cmd_pwd, "pwd", "print the working directory"},
    {"sync", cmd_sync, "sync", "write cached data to the disks"},
    {"mount", cmd_mount, "mount [SOURCE TARGET TYPE]", "list mounts, or mount a file system"},
    {"umount", cmd_umount, "umount TARGET", "unmount a file system"},
    {"uptime", cmd_uptime, "uptime", "time since boot"},
    {"date", cmd_date, "date", "wall-clock time (UTC)"},
    {"sleep", cmd_sleep, "sleep SECONDS", "wait"},
    {"cpubench", cmd_cpubench, "cpubench [ROUNDS]", "fixed integer workload: checksum and time"},
    {"diskbench", cmd_diskbench, "diskbench [MiB] [FILE]", "write, fsync, read back and check data"},
    {"poweroff", cmd_poweroff, "poweroff", "sync and power the machine off"},
    {"reboot", cmd_reboot, "reboot", "sync and restart the machine"},
    {"exit", cmd_exit, "exit [STATUS]", "leave the shell (init then powers off)"},
};
#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static const struct command *find_command(const char *name) {
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv) {
    (void)argc;
    (void)argv;
    out_str("Commands (all built in):\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        out_str("  ");
        out_str(commands[i].usage);
        for (size_t pad = strlen(commands[i].usage); pad < 28; pad++) out_char(' ');
        out_str(commands[i].summary);
        out_char('\n');
    }
    out_str("Any command's output can go to a file: COMMAND > FILE, or COMMAND >> FILE to append.\n");
    return 0;
}

/* ===== Parsing =================================================================================== */

enum redirect_mode { REDIRECT_NONE, REDIRECT_TRUNCATE, REDIRECT_APPEND };

struct parsed_line {
    int word_count;
    char *words[WORDS_MAX + 1];
    enum redirect_mode redirect;
    char *redirect_path;
};

/* Splits `line` into words in `storage` (at least as large as the line plus one byte per word).
 * Returns NULL on success or a message describing the syntax error. */
static const char *parse_line(const char *line, char *storage, struct parsed_line *parsed) {
    parsed->word_count = 0;
    parsed->redirect = REDIRECT_NONE;
    parsed->redirect_path = NULL;
    int expecting_path = 0;
    const char *p = line;
    char *out = storage;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0' || *p == '#') break;
        if (*p == '>') {
            if (parsed->redirect != REDIRECT_NONE || expecting_path) return "only one > or >> per command";
            parsed->redirect = p[1] == '>' ? REDIRECT_APPEND : REDIRECT_TRUNCATE;
            p += parsed->redirect == REDIRECT_APPEND ? 2 : 1;
            expecting_path = 1;
            continue;
        }
        char *word = out;
        char quote = 0;
        while (*p != '\0') {
            char c = *p;
            if (quote != 0) {
                if (c == quote) {
                    quote = 0;
                    p++;
                    continue;
                }
                if (c == '\\' && quote == '"' && p[1] != '\0') c = *++p;
            } else if (c == ' ' || c == '\t' || c == '>') {
                break;
            } else if (c == '"' || c == '\'') {
                quote = c;
                p++;
                continue;
            } else if (c == '\\' && p[1] != '\0') {
                c = *++p;
            }
            *out++ = c;
            p++;
        }
        if (quote != 0) return "unterminated quote";
        *out++ = '\0';
        if (expecting_path) {
            parsed->redirect_path = word;
            expecting_path = 0;
        } else {
            if (parsed->word_count == WORDS_MAX) return "too many words";
            parsed->words[parsed->word_count++] = word;
        }
    }
    if (expecting_path) return "missing file name after > or >>";
    parsed->words[parsed->word_count] = NULL;
    return NULL;
}

static void run_line(const char *line) {
    static char storage[LINE_BYTES_MAX * 2 + 2];
    struct parsed_line parsed;
    const char *problem = parse_line(line, storage, &parsed);
    if (problem != NULL) {
        report("sh", "syntax error", problem);
        return;
    }
    if (parsed.word_count == 0) {
        if (parsed.redirect != REDIRECT_NONE) report("sh", "syntax error", "nothing to redirect");
        return;
    }
    const struct command *command = find_command(parsed.words[0]);
    if (command == NULL) {
        report("sh", parsed.words[0], "unknown command (type help for the list)");
        return;
    }
    if (parsed.redirect != REDIRECT_NONE) {
        int flags = O_WRONLY | O_CREAT | (parsed.redirect == REDIRECT_APPEND ? O_APPEND : O_TRUNC);
        int fd = open(parsed.redirect_path, flags, 0644);
        if (fd < 0) {
            report_errno("sh", parsed.redirect_path, errno);
            return;
        }
        out_flush();
        output_fd = fd;
        command->run(parsed.word_count, parsed.words);
        out_flush();
        output_fd = 1;
        if (close(fd) < 0) report_errno("sh", parsed.redirect_path, errno);
        return;
    }
    command->run(parsed.word_count, parsed.words);
    out_flush();
}

/* ===== Input ====================================================================================== */

static char input_chunk[INPUT_CHUNK_BYTES];
static size_t input_start, input_end;
static int input_after_cr;

/* Reads the next line into `line` (NUL-terminated). Returns 1 for a line, 0 at end of input.
 * A line longer than LINE_BYTES_MAX is consumed whole and returned empty with *too_long set. */
static int read_line(char *line, int *too_long) {
    size_t length = 0;
    *too_long = 0;
    for (;;) {
        if (input_start == input_end) {
            ssize_t got = read(0, input_chunk, sizeof input_chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                line[*too_long ? 0 : length] = '\0';
                return length > 0 || *too_long;
            }
            input_start = 0;
            input_end = (size_t)got;
        }
        char c = input_chunk[input_start++];
        int after_cr = input_after_cr;
        input_after_cr = c == '\r';
        if (c == '\n' && after_cr) continue;  /* CR LF is one line end */
        if (c == '\n' || c == '\r') {
            line[*too_long ? 0 : length] = '\0';
            return 1;
        }
        if (c == '\b' || c == 0x7f) {
            if (length > 0) length--;
            continue;
        }
        if (c == '\0') continue;
        if (length == LINE_BYTES_MAX) {
            *too_long = 1;
            continue;
        }
        line[length++] = c;
    }
}

int main(void) {
    static char line[LINE_BYTES_MAX + 1];
    for (;;) {
        out_flush();
        write_all(1, PROMPT, sizeof PROMPT - 1);
        int too_long;
        if (!read_line(line, &too_long)) break;
        if (too_long) {
            report("sh", NULL, "line too long (the limit is 1024 bytes); ignored");
            continue;
        }
        run_line(line);
    }
    out_flush();
    write_all(1, "\n", 1);
    return 0;
}
