/*
 * tap-relay: carries the frames of a TAP device on standard input and output, each after its
 * length as a 32-bit big-endian number (the framing of QEMU's -netdev stream and of passt), so
 * that Node, which cannot open a TAP device itself, keeps every frame's boundaries.
 *
 *   tap-relay IFNAME
 *
 * Opens (or creates) the TAP device IFNAME without packet information, sets it up, says
 * "ready" on standard error, then relays until standard input ends. Frames from the device go
 * to standard output (a blocking write: when the reader lags, the kernel's TAP queue fills and
 * the kernel drops and counts, as with any NIC); frames from standard input go to the device.
 * Every error is one line on standard error and a non-zero status; nothing is dropped silently.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* The longest frame either way: what passt and the stream framing allow. */
#define FRAME_BYTES_MAX 65536

static int fail(const char *what, const char *name) {
  fprintf(stderr, "tap-relay: %s %s: %s\n", what, name, strerror(errno));
  return 1;
}

/* Reads exactly n bytes; 0 at a clean end before the first byte, -1 on error or a short end. */
static int read_full(int fd, uint8_t *buffer, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = read(fd, buffer + done, n - done);
    if (got == 0) return done == 0 ? 0 : -1;
    if (got < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    done += (size_t)got;
  }
  return 1;
}

static int write_full(int fd, const uint8_t *buffer, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t put = write(fd, buffer + done, n - done);
    if (put < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    done += (size_t)put;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2 || strlen(argv[1]) >= IFNAMSIZ) {
    fprintf(stderr, "usage: tap-relay IFNAME (at most %d characters)\n", IFNAMSIZ - 1);
    return 2;
  }
  const char *name = argv[1];
  int tap = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (tap < 0) return fail("cannot open", "/dev/net/tun");
  struct ifreq request;
  memset(&request, 0, sizeof request);
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  strncpy(request.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(tap, TUNSETIFF, &request) < 0) return fail("cannot attach to TAP device", name);
  /* Bring the link up (a persistent device made by `ip tuntap add` starts down). */
  int control = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (control < 0) return fail("cannot open a control socket for", name);
  struct ifreq flags;
  memset(&flags, 0, sizeof flags);
  strncpy(flags.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(control, SIOCGIFFLAGS, &flags) < 0) return fail("cannot read the flags of", name);
  flags.ifr_flags |= IFF_UP;
  if (ioctl(control, SIOCSIFFLAGS, &flags) < 0) return fail("cannot bring up", name);
  close(control);
  fprintf(stderr, "ready\n");

  static uint8_t frame[4 + FRAME_BYTES_MAX];
  unsigned long refused = 0;
  struct pollfd watched[2] = { { .fd = 0, .events = POLLIN }, { .fd = tap, .events = POLLIN } };
  for (;;) {
    if (poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return fail("poll failed on", name);
    }
    if (watched[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      int got = read_full(0, frame, 4);
      if (got == 0) return 0; /* our parent closed the stream: done */
      if (got < 0) return fail("standard input ended in the middle of a frame for", name);
      uint32_t length = (uint32_t)frame[0] << 24 | (uint32_t)frame[1] << 16 | (uint32_t)frame[2] << 8 | frame[3];
      if (length > FRAME_BYTES_MAX) {
        fprintf(stderr, "tap-relay: a frame of %u bytes for %s (at most %d)\n", length, name, FRAME_BYTES_MAX);
        return 1;
      }
      if (read_full(0, frame + 4, length) != 1) return fail("standard input ended in the middle of a frame for", name);
      /* A TAP device takes a whole frame per write or refuses it (EIO when down, EINVAL when malformed). */
      if (write(tap, frame + 4, length) < 0) {
        if (errno != EIO && errno != EINVAL) return fail("cannot write a frame to", name);
        refused++;
        if (refused == 1 || refused % 1000 == 0) fprintf(stderr, "tap-relay: %s refused %lu frame(s): %s\n", name, refused, strerror(errno));
      }
    }
    if (watched[1].revents & POLLIN) {
      ssize_t got = read(tap, frame + 4, FRAME_BYTES_MAX);
      if (got < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return fail("cannot read a frame from", name);
      }
      frame[0] = (uint8_t)(got >> 24);
      frame[1] = (uint8_t)(got >> 16);
      frame[2] = (uint8_t)(got >> 8);
      frame[3] = (uint8_t)got;
      if (write_full(1, frame, 4 + (size_t)got) < 0) {
        if (errno == EPIPE) return 0;
        return fail("cannot write to standard output for", name);
      }
    }
  }
}
