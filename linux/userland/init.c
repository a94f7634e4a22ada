/*
 * /init for understudy's Linux guest: the first process the kernel runs from the initramfs.
 *
 * It mounts the kernel's file systems, attaches the data disk at /data, brings up the network
 * and the guest's service (/etc/network.sh: an address by DHCP, filehttpd), and starts BusyBox's
 * ash as a login shell in a session of its own whose controlling terminal is the console, so
 * that Ctrl-C, Ctrl-Z and job control work. When the shell ends, or when BusyBox's poweroff,
 * reboot or halt signals process 1, it stops every other process, syncs, remounts /data
 * read-only (so the file system is left clean) and powers off or restarts. Each step prints
 * one line starting with "understudy: " so that a test can follow the boot.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHELL_PATH "/bin/sh"
#define DATA_DEVICE "/dev/vda"
#define DATA_MOUNT_POINT "/data"
/* The console's own device: /dev/console cannot be a controlling terminal worth having (the
 * kernel never makes it one on open, and job control on it is refused by the shell). */
#define TERMINAL_DEVICE "/dev/ttyS0"
#define CONSOLE_DEVICE "/dev/console"
#define NETWORK_SCRIPT "/etc/network.sh"

/* What BusyBox's halt, poweroff and reboot ask of process 1 (init/halt.c: signals[]). */
static volatile sig_atomic_t requested_signal;

static void on_request(int signal_number) {
    requested_signal = signal_number;
}

static void say_error(const char *what, int number) {
    printf("understudy: %s failed: %s (errno %d)\n", what, strerror(number), number);
    fflush(stdout);
}

/* stdin, stdout and stderr on the console, reopened from devtmpfs so that they stay valid. */
static void attach_console(void) {
    int fd = open(CONSOLE_DEVICE, O_RDWR | O_NOCTTY);
    if (fd < 0) return; /* keep whatever the kernel gave us */
    for (int target = 0; target <= 2; target++)
        if (fd != target) dup2(fd, target);
    if (fd > 2) close(fd);
}

static void mount_or_report(const char *source, const char *target, const char *type) {
    mkdir(target, 0755); /* normally already in the initramfs; EEXIST is fine */
    if (mount(source, target, type, 0, NULL) < 0) {
        char what[64];
        snprintf(what, sizeof what, "mounting %s on %s", type, target);
        say_error(what, errno);
    }
}

/* ext4 with a journal (what the host creates): after a crash or a failover the kernel replays
 * the journal while mounting, so the disk is consistent again without a check. */
static void mount_data_disk(void) {
    struct stat device;
    if (stat(DATA_DEVICE, &device) < 0 || !S_ISBLK(device.st_mode)) {
        printf("understudy: no data disk (" DATA_DEVICE "); " DATA_MOUNT_POINT " is not mounted\n");
        return;
    }
    mkdir(DATA_MOUNT_POINT, 0755);
    if (mount(DATA_DEVICE, DATA_MOUNT_POINT, "ext4", 0, NULL) == 0) {
        printf("understudy: /data mounted (" DATA_DEVICE ", ext4)\n");
        return;
    }
    say_error("mounting " DATA_DEVICE " on " DATA_MOUNT_POINT " (ext4)", errno);
}

/* The network and the service (/etc/network.sh), waited for, so that the shell's prompt comes
 * after the address is known. What the script starts in the background outlives it. */
static void start_network(void) {
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *const argv[] = {"/bin/sh", NETWORK_SCRIPT, NULL};
        char *const envp[] = {"PATH=/bin:/sbin:/usr/bin:/usr/sbin", NULL};
        execve("/bin/sh", argv, envp);
        _exit(127);
    }
    if (pid < 0) {
        say_error("fork", errno);
        return;
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) continue;
    fflush(stdout);
}

static pid_t start_shell(void) {
    pid_t pid = fork();
    if (pid != 0) {
        if (pid < 0) say_error("fork", errno);
        return pid;
    }
    /* A new session, then the terminal: the first terminal a session leader opens becomes its
     * controlling terminal, and TIOCSCTTY makes sure of it. */
    setsid();
    int fd = open(TERMINAL_DEVICE, O_RDWR);
    if (fd < 0) fd = open(CONSOLE_DEVICE, O_RDWR);
    if (fd >= 0) {
        ioctl(fd, TIOCSCTTY, 0);
        for (int target = 0; target <= 2; target++)
            if (fd != target) dup2(fd, target);
        if (fd > 2) close(fd);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* "-sh": a login shell, which reads /etc/profile (PATH, HOME, the prompt). */
    char *const argv[] = {"-sh", NULL};
    char *const envp[] = {"HOME=/root", "PATH=/bin:/sbin:/usr/bin:/usr/sbin", "TERM=vt100", "SHELL=/bin/sh", NULL};
    chdir("/root");
    execve(SHELL_PATH, argv, envp);
    say_error("starting " SHELL_PATH, errno);
    _exit(127);
}

/* Waits for the shell or a request from poweroff/reboot/halt, reaping any other child that
 * the kernel hands to process 1. Returns the shell's status, or -1 on a request. */
static int wait_for(pid_t shell, const sigset_t *waiting_mask) {
    for (;;) {
        int status = 0;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            if (pid == shell) return status;
        if (requested_signal != 0) return -1;
        /* Signals are blocked except inside sigsuspend: no request can slip in between the
         * check above and the wait. SIGCHLD (handled) wakes it too. */
        sigsuspend(waiting_mask);
    }
}

static void on_child(int signal_number) {
    (void)signal_number;
}

int main(void) {
    mount_or_report("devtmpfs", "/dev", "devtmpfs");
    attach_console();
    mount_or_report("proc", "/proc", "proc");
    mount_or_report("sysfs", "/sys", "sysfs");
    mount_or_report("tmpfs", "/tmp", "tmpfs");
    mount_or_report("tmpfs", "/run", "tmpfs");
    mount_data_disk();
    fflush(stdout);

    sigset_t blocked, waiting_mask;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGUSR2);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGCHLD);
    sigprocmask(SIG_BLOCK, &blocked, &waiting_mask);
    struct sigaction action = {0};
    action.sa_handler = on_request;
    sigaction(SIGUSR1, &action, NULL);
    sigaction(SIGUSR2, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    action.sa_handler = on_child;
    sigaction(SIGCHLD, &action, NULL);

    start_network();
    int how = RB_POWER_OFF;
    pid_t shell = start_shell();
    if (shell > 0) {
        int status = wait_for(shell, &waiting_mask);
        if (status == -1 && requested_signal == SIGTERM) {
            how = RB_AUTOBOOT;
            printf("understudy: restarting\n");
        } else if (status == -1) {
            printf("understudy: powering off\n");
        } else if (WIFEXITED(status)) {
            printf("understudy: shell exited with status %d; powering off\n", WEXITSTATUS(status));
        } else if (WIFSIGNALED(status)) {
            printf("understudy: shell killed by signal %d; powering off\n", WTERMSIG(status));
        }
    } else {
        printf("understudy: no shell; powering off\n");
    }
    fflush(stdout);
    /* Everything else stops now; nothing holds a file on /data open for writing after this. */
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, 0) > 0) continue;
    sync();
    /* Read-only leaves the file system clean (journal committed, no orphans) for the next boot;
     * the kernel's power-off path unmounts nothing itself. */
    mount(NULL, DATA_MOUNT_POINT, NULL, MS_REMOUNT | MS_RDONLY, NULL);
    reboot(how);
    /* Still here: the kernel could not power off. Exiting makes it panic, and a panic restarts
     * the machine (CONFIG_PANIC_TIMEOUT=-1): either way the host sees the guest stop. */
    say_error("power off", errno);
    return 1;
}
