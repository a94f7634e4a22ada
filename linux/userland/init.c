/*
 * /init for understudy's Linux guest: the first process the kernel runs from the initramfs.
 *
 * It mounts the kernel's file systems, attaches the data disk at /data, starts the shell on
 * the console and, when the shell ends, syncs and powers the machine off. Each step prints one
 * line starting with "understudy: " so that a test can follow the boot.
 */
#include "rv32-nolibc.h"

#define SHELL_PATH "/bin/sh"
#define DATA_DEVICE "/dev/vda"
#define DATA_MOUNT_POINT "/data"

static void say(const char *text) {
    write(1, text, strlen(text));
}

/* The errno names a boot log reader is likely to meet; others print as a number. */
static const char *error_name(int number) {
    switch (number) {
    case ENOENT: return "no such file or directory";
    case ENXIO: return "no such device or address";
    case ENODEV: return "no such device";
    case EINVAL: return "invalid argument (not an ext2/ext4 file system?)";
    case EIO: return "input/output error";
    case EBUSY: return "busy";
    case EACCES: return "permission denied";
    case ENOMEM: return "out of memory";
    case EROFS: return "read-only file system";
    case EUCLEAN: return "file system needs cleaning (run e2fsck)";
    default: return "error";
    }
}

static void say_error(const char *what, int number) {
    printf("understudy: %s failed: %s (errno %d)\n", what, error_name(number), number);
}

/* stdin, stdout and stderr on /dev/console; the kernel opened it from the initramfs already,
 * but we reopen it from devtmpfs so that the descriptors stay valid in every case. */
static void attach_console(void) {
    int fd = open("/dev/console", O_RDWR | O_NOCTTY, 0);
    if (fd < 0) return;  /* keep whatever the kernel gave us */
    for (int target = 0; target <= 2; target++)
        if (fd != target) dup2(fd, target);
    if (fd > 2) close(fd);
}

static void mount_or_report(const char *source, const char *target, const char *type) {
    mkdir(target, 0755);  /* normally already in the initramfs; EEXIST is fine */
    if (mount(source, target, type, 0, NULL) < 0) {
        char what[64];
        strlcpy(what, "mounting ", sizeof what);
        strlcat(what, type, sizeof what);
        strlcat(what, " on ", sizeof what);
        strlcat(what, target, sizeof what);
        say_error(what, errno);
    }
}

static void mount_data_disk(void) {
    struct stat device;
    if (stat(DATA_DEVICE, &device) < 0 || !S_ISBLK(device.st_mode)) {
        say("understudy: no data disk (" DATA_DEVICE "); " DATA_MOUNT_POINT " is not mounted\n");
        return;
    }
    mkdir(DATA_MOUNT_POINT, 0755);
    /* ext2 first (what the host creates); ext4 for an image someone made with mkfs.ext4. */
    if (mount(DATA_DEVICE, DATA_MOUNT_POINT, "ext2", 0, NULL) == 0) {
        say("understudy: /data mounted (" DATA_DEVICE ", ext2)\n");
        return;
    }
    int ext2_error = errno;
    if (mount(DATA_DEVICE, DATA_MOUNT_POINT, "ext4", 0, NULL) == 0) {
        say("understudy: /data mounted (" DATA_DEVICE ", ext4)\n");
        return;
    }
    say_error("mounting " DATA_DEVICE " on " DATA_MOUNT_POINT, ext2_error);
}

static pid_t start_shell(void) {
    pid_t pid = fork();
    if (pid == 0) {
        char *const argv[] = {"sh", NULL};
        char *const envp[] = {"HOME=/", "PATH=/bin", "TERM=vt100", NULL};
        execve(SHELL_PATH, argv, envp);
        say_error("starting " SHELL_PATH, errno);
        exit(127);
    }
    if (pid < 0) say_error("fork", errno);
    return pid;
}

/* Waits for the shell, reaping any other child that the kernel hands to process 1. */
static int wait_for(pid_t shell) {
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid == shell) return status;
        if (pid < 0 && errno != EINTR) return -1;
    }
}

int main(void) {
    mount_or_report("devtmpfs", "/dev", "devtmpfs");
    attach_console();
    mount_or_report("proc", "/proc", "proc");
    mount_or_report("sysfs", "/sys", "sysfs");
    mount_or_report("tmpfs", "/tmp", "tmpfs");
    mount_data_disk();

    pid_t shell = start_shell();
    if (shell > 0) {
        int status = wait_for(shell);
        if (status >= 0 && WIFEXITED(status))
            printf("understudy: shell exited with status %d; powering off\n", WEXITSTATUS(status));
        else if (status >= 0 && WIFSIGNALED(status))
            printf("understudy: shell killed by signal %d; powering off\n", WTERMSIG(status));
        else
            say("understudy: lost the shell; powering off\n");
    }
    sync();
    /* Read-only marks the ext2 file system clean for the next boot (see sh.c: power). */
    mount(NULL, DATA_MOUNT_POINT, NULL, MS_REMOUNT | MS_RDONLY, NULL);
    reboot(LINUX_REBOOT_CMD_POWER_OFF);
    /* Still here: the kernel could not power off. Exiting makes it panic, and a panic restarts
     * the machine (CONFIG_PANIC_TIMEOUT=-1): either way the host sees the guest stop. */
    say_error("power off", errno);
    return 1;
}
