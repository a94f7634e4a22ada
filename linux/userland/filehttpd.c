/*
 * filehttpd: the guest's service, an HTTP/1.1 server with keep-alive on port 80 (or argv[1]).
 *
 *   GET /NAME   the file /data/NAME: 200 with its bytes, or 404
 *   PUT /NAME   stores the body as /data/NAME, answered once it is on the disk (written to a
 *               temporary file, fdatasync, renamed over the old one: a GET never sees half a
 *               file, and an answered PUT survives a crash of the guest as well as a failover)
 *
 * NAME is letters, digits, '.', '_' and '-', not starting with '.'. Bodies up to 1 MiB; a
 * client that sends "Expect: 100-continue" (curl, for bodies over 1 KiB) gets its 100 first.
 * One process, poll() over at most 64 connections; every request is answered in full before
 * the next is read from the same connection (pipelining works, in order).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA_DIRECTORY "/data"
#define CONNECTIONS_MAX 64
#define HEADER_BYTES_MAX 8192
#define BODY_BYTES_MAX (1024 * 1024)
#define NAME_BYTES_MAX 128

struct connection {
    int fd;
    char *buffer;         /* the request being read: header, then body */
    size_t used;          /* bytes in buffer */
    size_t capacity;
    size_t header_bytes;  /* 0 until the header is complete */
    size_t body_bytes;    /* Content-Length of the request */
    int keep_alive;
    int continue_sent;
};

static struct connection connections[CONNECTIONS_MAX];
static unsigned long requests_served;

static int write_all(int fd, const char *data, size_t length) {
    while (length > 0) {
        ssize_t written = write(fd, data, length);
        if (written < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        data += written;
        length -= (size_t)written;
    }
    return 0;
}

static int respond(struct connection *c, int status, const char *reason, const char *body, size_t body_length) {
    char header[256];
    int length = snprintf(header, sizeof header, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nContent-Type: application/octet-stream\r\n%s\r\n",
                          status, reason, body_length, c->keep_alive ? "" : "Connection: close\r\n");
    /* One write when it fits, so that a small answer is one TCP segment. */
    if (body_length <= 4096) {
        char whole[256 + 4096];
        memcpy(whole, header, (size_t)length);
        if (body_length > 0) memcpy(whole + length, body, body_length);
        return write_all(c->fd, whole, (size_t)length + body_length);
    }
    if (write_all(c->fd, header, (size_t)length) < 0) return -1;
    return write_all(c->fd, body, body_length);
}

static int respond_text(struct connection *c, int status, const char *reason, const char *text) {
    return respond(c, status, reason, text, strlen(text));
}

static int valid_name(const char *name) {
    size_t length = strlen(name);
    if (length == 0 || length > NAME_BYTES_MAX || name[0] == '.') return 0;
    for (size_t i = 0; i < length; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok) return 0;
    }
    return 1;
}

static int handle_get(struct connection *c, const char *name) {
    char path[sizeof DATA_DIRECTORY + NAME_BYTES_MAX + 2];
    snprintf(path, sizeof path, DATA_DIRECTORY "/%s", name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return respond_text(c, 404, "Not Found", "no such file\n");
    struct stat info;
    if (fstat(fd, &info) < 0 || !S_ISREG(info.st_mode) || info.st_size > BODY_BYTES_MAX) {
        close(fd);
        return respond_text(c, 404, "Not Found", "not a file this server serves\n");
    }
    size_t size = (size_t)info.st_size;
    char *data = malloc(size + 1);
    size_t done = 0;
    while (data != NULL && done < size) {
        ssize_t got = read(fd, data + done, size - done);
        if (got <= 0) break;
        done += (size_t)got;
    }
    close(fd);
    int result = data == NULL ? respond_text(c, 500, "Internal Server Error", "out of memory\n") : respond(c, 200, "OK", data, done);
    free(data);
    return result;
}

static int handle_put(struct connection *c, const char *name, const char *body, size_t length) {
    char path[sizeof DATA_DIRECTORY + NAME_BYTES_MAX + 2];
    char temporary[sizeof path + 8];
    snprintf(path, sizeof path, DATA_DIRECTORY "/%s", name);
    snprintf(temporary, sizeof temporary, DATA_DIRECTORY "/.%s.new", name);
    int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return respond_text(c, 500, "Internal Server Error", "cannot create the file\n");
    int ok = write_all(fd, body, length) == 0 && fdatasync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(temporary, path) < 0) {
        unlink(temporary);
        return respond_text(c, 500, "Internal Server Error", "cannot write the file\n");
    }
    char answer[64];
    snprintf(answer, sizeof answer, "stored %zu bytes\n", length);
    return respond_text(c, 200, "OK", answer);
}

/* The value of header `name` in the header block, copied into `out`; 0 if absent. */
static int header_value(const char *header, const char *name, char *out, size_t out_bytes) {
    size_t name_length = strlen(name);
    const char *line = strstr(header, "\r\n");
    while (line != NULL && line[2] != '\r') {
        line += 2;
        if (strncasecmp(line, name, name_length) == 0 && line[name_length] == ':') {
            const char *value = line + name_length + 1;
            while (*value == ' ' || *value == '\t') value++;
            const char *end = strstr(value, "\r\n");
            size_t length = end == NULL ? strlen(value) : (size_t)(end - value);
            if (length >= out_bytes) length = out_bytes - 1;
            memcpy(out, value, length);
            out[length] = 0;
            return 1;
        }
        line = strstr(line, "\r\n");
    }
    return 0;
}

static void close_connection(struct connection *c) {
    close(c->fd);
    free(c->buffer);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* The header is complete: checks it and learns the body's length. Returns -1 to close. */
static int parse_header(struct connection *c) {
    char value[64];
    c->body_bytes = 0;
    if (header_value(c->buffer, "Content-Length", value, sizeof value)) {
        char *end;
        unsigned long length = strtoul(value, &end, 10);
        if (*end != 0 || length > BODY_BYTES_MAX) {
            c->keep_alive = 0;
            respond_text(c, 413, "Payload Too Large", "at most 1 MiB\n");
            return -1;
        }
        c->body_bytes = length;
    }
    c->keep_alive = strstr(c->buffer, " HTTP/1.1\r\n") != NULL;
    if (header_value(c->buffer, "Connection", value, sizeof value)) {
        if (strcasecmp(value, "close") == 0) c->keep_alive = 0;
        if (strcasecmp(value, "keep-alive") == 0) c->keep_alive = 1;
    }
    if (c->body_bytes > 0 && !c->continue_sent && header_value(c->buffer, "Expect", value, sizeof value) && strcasecmp(value, "100-continue") == 0) {
        c->continue_sent = 1;
        if (write_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0) return -1;
    }
    return 0;
}

/* A whole request is in the buffer: answers it. Returns -1 to close the connection. */
static int serve(struct connection *c) {
    char method[8], target[NAME_BYTES_MAX + 2];
    if (sscanf(c->buffer, "%7s %129s HTTP/1.%*c", method, target) != 2 || target[0] != '/') {
        c->keep_alive = 0;
        respond_text(c, 400, "Bad Request", "bad request line\n");
        return -1;
    }
    const char *name = target + 1;
    int result;
    requests_served++;
    if (!valid_name(name)) result = respond_text(c, 404, "Not Found", "names are letters, digits, . _ -\n");
    else if (strcmp(method, "GET") == 0) result = handle_get(c, name);
    else if (strcmp(method, "PUT") == 0) result = handle_put(c, name, c->buffer + c->header_bytes, c->body_bytes);
    else result = respond_text(c, 405, "Method Not Allowed", "GET and PUT only\n");
    return result < 0 || !c->keep_alive ? -1 : 0;
}

/* Reads what has come; serves every complete request in it. Returns -1 to close. */
static int on_readable(struct connection *c) {
    if (c->capacity - c->used < 4096) {
        size_t capacity = c->capacity == 0 ? 16384 : c->capacity * 2;
        if (capacity > HEADER_BYTES_MAX + BODY_BYTES_MAX + 16384) capacity = HEADER_BYTES_MAX + BODY_BYTES_MAX + 16384;
        if (capacity <= c->used + 1) return -1;
        char *grown = realloc(c->buffer, capacity);
        if (grown == NULL) return -1;
        c->buffer = grown;
        c->capacity = capacity;
    }
    ssize_t got = read(c->fd, c->buffer + c->used, c->capacity - c->used - 1);
    if (got <= 0) return got < 0 && (errno == EINTR || errno == EAGAIN) ? 0 : -1;
    c->used += (size_t)got;
    for (;;) {
        c->buffer[c->used] = 0;
        if (c->header_bytes == 0) {
            char *end = strstr(c->buffer, "\r\n\r\n");
            if (end == NULL) {
                if (c->used > HEADER_BYTES_MAX) return -1;
                return 0;
            }
            c->header_bytes = (size_t)(end - c->buffer) + 4;
            end[2] = 0; /* the header block ends in one CRLF for the parsers */
            if (parse_header(c) < 0) return -1;
            end[2] = '\r';
        }
        size_t whole = c->header_bytes + c->body_bytes;
        if (c->used < whole) return 0;
        char saved = c->buffer[c->header_bytes - 2];
        c->buffer[c->header_bytes - 2] = 0;
        int result = serve(c);
        c->buffer[c->header_bytes - 2] = saved;
        if (result < 0) return -1;
        memmove(c->buffer, c->buffer + whole, c->used - whole);
        c->used -= whole;
        c->header_bytes = 0;
        c->body_bytes = 0;
        c->continue_sent = 0;
        if (c->used == 0) return 0;
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 80;
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = {.s_addr = htonl(INADDR_ANY)}};
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 16) < 0) {
        printf("filehttpd: cannot listen on port %d: %s\n", port, strerror(errno));
        return 1;
    }
    for (int i = 0; i < CONNECTIONS_MAX; i++) connections[i].fd = -1;
    printf("understudy: filehttpd serving " DATA_DIRECTORY " on port %d\n", port);
    fflush(stdout);
    struct pollfd watched[CONNECTIONS_MAX + 1];
    for (;;) {
        int count = 0;
        watched[count++] = (struct pollfd){.fd = listener, .events = POLLIN};
        for (int i = 0; i < CONNECTIONS_MAX; i++)
            if (connections[i].fd >= 0) watched[count++] = (struct pollfd){.fd = connections[i].fd, .events = POLLIN};
        if (poll(watched, (nfds_t)count, -1) < 0) continue;
        if (watched[0].revents & POLLIN) {
            int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                int slot = -1;
                for (int i = 0; i < CONNECTIONS_MAX && slot < 0; i++)
                    if (connections[i].fd < 0) slot = i;
                if (slot < 0) {
                    close(fd);
                } else {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
                    connections[slot].fd = fd;
                }
            }
        }
        for (int w = 1; w < count; w++) {
            if (watched[w].revents == 0) continue;
            for (int i = 0; i < CONNECTIONS_MAX; i++) {
                if (connections[i].fd != watched[w].fd) continue;
                if (on_readable(&connections[i]) < 0) close_connection(&connections[i]);
                break;
            }
        }
    }
}
