/*
 * The guest userland's C library: the kernel tree's nolibc (tools/include/nolibc in Linux 6.1)
 * plus the pieces it lacks on 32-bit RISC-V. Include this instead of nolibc.h.
 *
 * Why mending is needed. rv32 Linux was born after the year-2038 work, so its system call
 * table (include/uapi/asm-generic/unistd.h with __BITS_PER_LONG == 32 and no
 * __ARCH_WANT_TIME32_SYSCALLS) has none of the calls that carry a 32-bit time or offset:
 *     lseek        -> only llseek (offset as two halves, result through a pointer)
 *     gettimeofday -> only clock_gettime64
 *     ppoll/pselect6 -> only ppoll_time64/pselect6_time64
 *     stat/fstatat -> only statx
 *     wait4        -> only waitid
 * nolibc 6.1 was written for rv64 and so refers to the missing numbers: some of its functions
 * do not compile for rv32, others would stop with "#error". Support for rv32 arrived in later
 * nolibc releases; we keep the 6.1 headers untouched and mend them here:
 *
 *   1. Before nolibc is included, each affected function name is redirected by a
 *      function-like macro to a "nolibc_rv32_unusable_*" name, and the missing syscall numbers
 *      are defined as an invalid number. nolibc's broken definitions then compile under those
 *      names, are never called, and (being static and unused) are dropped by the compiler.
 *      Function-like macros leave `struct stat` and other type names alone.
 *   2. After nolibc is included, the macros are removed and working versions with the usual
 *      names are defined on top of the calls rv32 does have.
 *
 * The redirected set is exactly the nolibc functions that reach a missing call, directly or
 * through another one: gettimeofday and time; lseek; poll; select, sleep, msleep and usleep;
 * stat; wait, wait4 and waitpid (each with its sys_ form where nolibc has one).
 *
 * Also here: a few calls nolibc 6.1 does not wrap at all (clock_gettime, statx, sync, rmdir
 * through unlinkat, getcwd, fadvise-free direct I/O flags, nanosleep), and the 64-bit division
 * helpers that GCC calls on rv32 (riscv64-linux-gnu-gcc ships no rv32 libgcc).
 */
#ifndef UNDERSTUDY_RV32_NOLIBC_H
#define UNDERSTUDY_RV32_NOLIBC_H

#if !defined(__riscv) || __riscv_xlen != 32
#error "rv32-nolibc.h is for 32-bit RISC-V only"
#endif

#include <asm/unistd.h>

/* Any number past the end of the table: the kernel answers -ENOSYS. Only dead code uses it. */
#define UNDERSTUDY_NR_MISSING 0x7fff
#if defined(__NR_lseek) || defined(__NR_gettimeofday) || defined(__NR_wait4) || defined(__NR_ppoll)
#error "these headers have the 32-bit time/offset calls: this mending layer is not needed"
#endif
#define __NR_lseek UNDERSTUDY_NR_MISSING
#define __NR_gettimeofday UNDERSTUDY_NR_MISSING
#define __NR_wait4 UNDERSTUDY_NR_MISSING
#define __NR_ppoll UNDERSTUDY_NR_MISSING
#define __NR_pselect6 UNDERSTUDY_NR_MISSING
#define __NR_newfstatat UNDERSTUDY_NR_MISSING

#define sys_gettimeofday(tv, tz) nolibc_rv32_unusable_sys_gettimeofday(tv, tz)
#define gettimeofday(tv, tz) nolibc_rv32_unusable_gettimeofday(tv, tz)
#define time(t) nolibc_rv32_unusable_time(t)
#define sys_lseek(fd, offset, whence) nolibc_rv32_unusable_sys_lseek(fd, offset, whence)
#define lseek(fd, offset, whence) nolibc_rv32_unusable_lseek(fd, offset, whence)
#define sys_poll(fds, count, timeout) nolibc_rv32_unusable_sys_poll(fds, count, timeout)
#define poll(fds, count, timeout) nolibc_rv32_unusable_poll(fds, count, timeout)
#define sys_select(n, r, w, e, t) nolibc_rv32_unusable_sys_select(n, r, w, e, t)
#define select(n, r, w, e, t) nolibc_rv32_unusable_select(n, r, w, e, t)
#define sleep(seconds) nolibc_rv32_unusable_sleep(seconds)
#define msleep(msecs) nolibc_rv32_unusable_msleep(msecs)
#define usleep(usecs) nolibc_rv32_unusable_usleep(usecs)
#define sys_stat(path, buf) nolibc_rv32_unusable_sys_stat(path, buf)
#define stat(path, buf) nolibc_rv32_unusable_stat(path, buf)
#define sys_wait4(pid, status, options, usage) nolibc_rv32_unusable_sys_wait4(pid, status, options, usage)
#define wait4(pid, status, options, usage) nolibc_rv32_unusable_wait4(pid, status, options, usage)
#define wait(status) nolibc_rv32_unusable_wait(status)
#define waitpid(pid, status, options) nolibc_rv32_unusable_waitpid(pid, status, options)

#include "nolibc.h"

#undef sys_gettimeofday
#undef gettimeofday
#undef time
#undef sys_lseek
#undef lseek
#undef sys_poll
#undef poll
#undef sys_select
#undef select
#undef sleep
#undef msleep
#undef usleep
#undef sys_stat
#undef stat
#undef sys_wait4
#undef wait4
#undef wait
#undef waitpid
#undef __NR_lseek
#undef __NR_gettimeofday
#undef __NR_wait4
#undef __NR_ppoll
#undef __NR_pselect6
#undef __NR_newfstatat

/* struct statx and STATX_*: the kernel's file mode macros replace nolibc's equivalent ones. */
#undef S_IFMT
#undef S_IFSOCK
#undef S_IFLNK
#undef S_IFREG
#undef S_IFBLK
#undef S_IFDIR
#undef S_IFCHR
#undef S_IFIFO
#undef S_ISLNK
#undef S_ISREG
#undef S_ISDIR
#undef S_ISCHR
#undef S_ISBLK
#undef S_ISFIFO
#undef S_ISSOCK
#include <linux/stat.h>
#include <linux/time_types.h>  /* struct __kernel_timespec (64-bit seconds) */

/* errno-setting wrapper for a raw syscall result. */
static __attribute__((unused)) long rv32_result(long ret) {
    if (ret < 0) {
        SET_ERRNO(-ret);
        return -1;
    }
    return ret;
}

/* ---- 64-bit arithmetic helpers: GCC calls these on rv32 for shifts, / and % ------------- */
union rv32_u64_halves {
    unsigned long long whole;
    struct {
        unsigned int low, high;  /* little-endian */
    } half;
};
__attribute__((weak)) unsigned long long __lshrdi3(unsigned long long value, int shift) {
    union rv32_u64_halves in = {value}, out;
    shift &= 63;
    if (shift == 0) return value;
    if (shift >= 32) {
        out.half.low = in.half.high >> (shift - 32);
        out.half.high = 0;
    } else {
        out.half.low = (in.half.low >> shift) | (in.half.high << (32 - shift));
        out.half.high = in.half.high >> shift;
    }
    return out.whole;
}
__attribute__((weak)) unsigned long long __ashldi3(unsigned long long value, int shift) {
    union rv32_u64_halves in = {value}, out;
    shift &= 63;
    if (shift == 0) return value;
    if (shift >= 32) {
        out.half.high = in.half.low << (shift - 32);
        out.half.low = 0;
    } else {
        out.half.high = (in.half.high << shift) | (in.half.low >> (32 - shift));
        out.half.low = in.half.low << shift;
    }
    return out.whole;
}
__attribute__((weak)) long long __ashrdi3(long long value, int shift) {
    union rv32_u64_halves in = {(unsigned long long)value}, out;
    shift &= 63;
    if (shift == 0) return value;
    if (shift >= 32) {
        out.half.low = (unsigned int)((int)in.half.high >> (shift - 32));
        out.half.high = (unsigned int)((int)in.half.high >> 31);
    } else {
        out.half.low = (in.half.low >> shift) | (in.half.high << (32 - shift));
        out.half.high = (unsigned int)((int)in.half.high >> shift);
    }
    return (long long)out.whole;
}

/* Restoring shift-and-subtract, one quotient bit per step; division by zero yields 0 (a guest
 * program bug must not trap in a helper). Weak so that a libgcc, if ever linked, wins. */
__attribute__((weak)) unsigned long long __udivmoddi4(unsigned long long n, unsigned long long d, unsigned long long *rem) {
    unsigned long long quotient = 0, remainder = 0;
    if (d == 0) {
        if (rem) *rem = 0;
        return 0;
    }
    for (int bit = 63; bit >= 0; bit--) {
        remainder = (remainder << 1) | ((n >> bit) & 1);
        if (remainder >= d) {
            remainder -= d;
            quotient |= 1ull << bit;
        }
    }
    if (rem) *rem = remainder;
    return quotient;
}
__attribute__((weak)) unsigned long long __udivdi3(unsigned long long n, unsigned long long d) {
    return __udivmoddi4(n, d, 0);
}
__attribute__((weak)) unsigned long long __umoddi3(unsigned long long n, unsigned long long d) {
    unsigned long long remainder;
    __udivmoddi4(n, d, &remainder);
    return remainder;
}
__attribute__((weak)) long long __divdi3(long long n, long long d) {
    int negative = (n < 0) != (d < 0);
    unsigned long long q = __udivmoddi4(n < 0 ? -(unsigned long long)n : (unsigned long long)n,
                                        d < 0 ? -(unsigned long long)d : (unsigned long long)d, 0);
    return negative ? -(long long)q : (long long)q;
}
__attribute__((weak)) long long __moddi3(long long n, long long d) {
    unsigned long long r;
    __udivmoddi4(n < 0 ? -(unsigned long long)n : (unsigned long long)n,
                 d < 0 ? -(unsigned long long)d : (unsigned long long)d, &r);
    return n < 0 ? -(long long)r : (long long)r;
}

/* ---- Time --------------------------------------------------------------------------------- */
#ifndef CLOCK_REALTIME
#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#endif

static __attribute__((unused)) int clock_gettime64(int clock, struct __kernel_timespec *ts) {
    return (int)rv32_result(my_syscall2(__NR_clock_gettime64, clock, ts));
}

/* Nanoseconds on a clock as one 64-bit number; 0 if the clock cannot be read. */
static __attribute__((unused)) unsigned long long clock_nanoseconds(int clock) {
    struct __kernel_timespec ts;
    if (clock_gettime64(clock, &ts) < 0) return 0;
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static __attribute__((unused)) int sys_gettimeofday(struct timeval *tv, struct timezone *tz) {
    struct __kernel_timespec ts;
    long ret = my_syscall2(__NR_clock_gettime64, CLOCK_REALTIME, &ts);
    if (ret < 0) return (int)ret;
    if (tv) {
        tv->tv_sec = (long)ts.tv_sec;  /* nolibc's timeval is 32-bit: good until 2038 */
        tv->tv_usec = (long)(ts.tv_nsec / 1000);
    }
    if (tz) {
        tz->tz_minuteswest = 0;
        tz->tz_dsttime = 0;
    }
    return 0;
}
static __attribute__((unused)) int gettimeofday(struct timeval *tv, struct timezone *tz) {
    return (int)rv32_result(sys_gettimeofday(tv, tz));
}
static __attribute__((unused)) time_t time(time_t *out) {
    struct timeval tv;
    if (gettimeofday(&tv, NULL) < 0) return (time_t)-1;
    if (out) *out = tv.tv_sec;
    return tv.tv_sec;
}

static __attribute__((unused)) int nanosleep64(const struct __kernel_timespec *request) {
    return (int)rv32_result(my_syscall4(__NR_clock_nanosleep_time64, CLOCK_MONOTONIC, 0, request, NULL));
}
static __attribute__((unused)) int msleep(unsigned int msecs) {
    struct __kernel_timespec ts = {msecs / 1000, (long long)(msecs % 1000) * 1000000};
    return nanosleep64(&ts) < 0 ? -1 : 0;
}
static __attribute__((unused)) int usleep(unsigned int usecs) {
    struct __kernel_timespec ts = {usecs / 1000000, (long long)(usecs % 1000000) * 1000};
    return nanosleep64(&ts);
}
static __attribute__((unused)) unsigned int sleep(unsigned int seconds) {
    struct __kernel_timespec ts = {seconds, 0};
    return nanosleep64(&ts) < 0 ? seconds : 0;
}

/* ---- Files -------------------------------------------------------------------------------- */
static __attribute__((unused)) off_t sys_lseek(int fd, off_t offset, int whence) {
    long long result;
    long ret = my_syscall5(__NR_llseek, fd, (unsigned long)((long long)offset >> 32), (unsigned long)offset,
                           &result, whence);
    if (ret < 0) return ret;
    if (result != (long long)(off_t)result) return -EOVERFLOW;
    return (off_t)result;
}
static __attribute__((unused)) off_t lseek(int fd, off_t offset, int whence) {
    return (off_t)rv32_result(sys_lseek(fd, offset, whence));
}

static __attribute__((unused)) int statx(int dirfd, const char *path, int flags, unsigned int mask,
                                         struct statx *buf) {
    return (int)rv32_result(my_syscall5(__NR_statx, dirfd, path, flags, mask, buf));
}
static __attribute__((unused)) int sys_stat(const char *path, struct stat *buf) {
    struct statx sx;
    long ret = my_syscall5(__NR_statx, AT_FDCWD, path, 0, STATX_BASIC_STATS, &sx);
    if (ret < 0) return (int)ret;
    buf->st_dev = (dev_t)((sx.stx_dev_major << 8) | (sx.stx_dev_minor & 0xff));
    buf->st_ino = (ino_t)sx.stx_ino;
    buf->st_mode = sx.stx_mode;
    buf->st_nlink = sx.stx_nlink;
    buf->st_uid = sx.stx_uid;
    buf->st_gid = sx.stx_gid;
    buf->st_rdev = (dev_t)((sx.stx_rdev_major << 8) | (sx.stx_rdev_minor & 0xff));
    buf->st_size = (off_t)sx.stx_size;
    buf->st_blksize = (blksize_t)sx.stx_blksize;
    buf->st_blocks = (blkcnt_t)sx.stx_blocks;
    buf->st_atime = (time_t)sx.stx_atime.tv_sec;
    buf->st_mtime = (time_t)sx.stx_mtime.tv_sec;
    buf->st_ctime = (time_t)sx.stx_ctime.tv_sec;
    return 0;
}
static __attribute__((unused)) int stat(const char *path, struct stat *buf) {
    return (int)rv32_result(sys_stat(path, buf));
}

#ifndef AT_REMOVEDIR
#define AT_REMOVEDIR 0x200
#endif
#ifndef AT_SYMLINK_NOFOLLOW
#define AT_SYMLINK_NOFOLLOW 0x100
#endif
/* asm-generic/fcntl.h, which riscv uses. */
#ifndef O_DIRECT
#define O_DIRECT 040000
#endif

static __attribute__((unused)) int rmdir(const char *path) {
    return (int)rv32_result(my_syscall3(__NR_unlinkat, AT_FDCWD, path, AT_REMOVEDIR));
}
static __attribute__((unused)) void sync(void) {
    my_syscall0(__NR_sync);
}
static __attribute__((unused)) int getcwd_checked(char *buf, size_t size) {
    return (int)rv32_result(my_syscall2(__NR_getcwd, buf, size));
}

/* ---- Polling ---------------------------------------------------------------------------- */
static __attribute__((unused)) int sys_poll(struct pollfd *fds, int count, int timeout_ms) {
    struct __kernel_timespec ts = {timeout_ms / 1000, (long long)(timeout_ms % 1000) * 1000000};
    return (int)my_syscall5(__NR_ppoll_time64, fds, count, timeout_ms >= 0 ? &ts : NULL, NULL, 0);
}
static __attribute__((unused)) int poll(struct pollfd *fds, int count, int timeout_ms) {
    return (int)rv32_result(sys_poll(fds, count, timeout_ms));
}
static __attribute__((unused)) int sys_select(int count, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout) {
    struct __kernel_timespec ts;
    if (timeout) {
        ts.tv_sec = timeout->tv_sec;
        ts.tv_nsec = (long long)timeout->tv_usec * 1000;
    }
    return (int)my_syscall6(__NR_pselect6_time64, count, r, w, e, timeout ? &ts : NULL, NULL);
}
static __attribute__((unused)) int select(int count, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout) {
    return (int)rv32_result(sys_select(count, r, w, e, timeout));
}

/* ---- Processes: wait through waitid ---------------------------------------------------- */
/* waitid's idtype values and options (include/uapi/linux/wait.h). */
#define RV32_P_ALL 0
#define RV32_P_PID 1
#define RV32_WEXITED 4
/* si_code values for SIGCHLD (include/uapi/asm-generic/siginfo.h). */
#define RV32_CLD_EXITED 1
#define RV32_CLD_KILLED 2
#define RV32_CLD_DUMPED 3

#ifndef WIFSIGNALED
#define WIFSIGNALED(status) (((status) & 0x7f) != 0 && ((status) & 0x7f) != 0x7f)
#define WTERMSIG(status) ((status) & 0x7f)
#endif

/* The part of the kernel's 128-byte siginfo that SIGCHLD fills (32-bit layout). */
struct rv32_child_info {
    int signo, error_number, code;
    int pid;
    unsigned int uid;
    int status;
    int padding[26];
};

static __attribute__((unused)) pid_t sys_wait4(pid_t pid, int *status, int options, struct rusage *usage) {
    struct rv32_child_info info;
    memset(&info, 0, sizeof info);
    int id_type = pid > 0 ? RV32_P_PID : RV32_P_ALL;
    if (pid < -1 || pid == 0) return -EINVAL;  /* process groups are not supported here */
    long ret = my_syscall5(__NR_waitid, id_type, pid > 0 ? pid : 0, &info, options | RV32_WEXITED, NULL);
    if (ret < 0) return (pid_t)ret;
    if (usage) memset(usage, 0, sizeof *usage);
    if (info.pid == 0) return 0;  /* WNOHANG and nothing has exited yet */
    if (status) {
        if (info.code == RV32_CLD_EXITED) *status = (info.status & 0xff) << 8;
        else if (info.code == RV32_CLD_KILLED) *status = info.status & 0x7f;
        else if (info.code == RV32_CLD_DUMPED) *status = (info.status & 0x7f) | 0x80;
        else *status = 0;
    }
    return info.pid;
}
static __attribute__((unused)) pid_t wait4(pid_t pid, int *status, int options, struct rusage *usage) {
    return (pid_t)rv32_result(sys_wait4(pid, status, options, usage));
}
static __attribute__((unused)) pid_t waitpid(pid_t pid, int *status, int options) {
    return wait4(pid, status, options, NULL);
}
static __attribute__((unused)) pid_t wait(int *status) {
    return wait4(-1, status, 0, NULL);
}

#endif /* UNDERSTUDY_RV32_NOLIBC_H */
