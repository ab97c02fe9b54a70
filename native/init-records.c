/*
 * The records a one-shot sandbox's PID 1 reads from the daemon's socket (see init-serve.c), and
 * the files they carry.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "init-records.h"

int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, data, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    data += w;
    len -= (size_t)w;
  }
  return 0;
}

/* What came from the daemon's socket and is not taken yet: it is read in pieces as large as
 * come, so a record's head, taken a byte at a time, costs no system call per byte. */
static struct {
  char buf[65536];
  size_t off, len;
} in;

bool in_held(void) { return in.off < in.len; }

/* Read exactly n bytes of the socket; 0 on success. */
static int read_full(int fd, char *buf, size_t n) {
  while (n > 0) {
    if (in_held()) {
      size_t k = in.len - in.off < n ? in.len - in.off : n;
      memcpy(buf, in.buf + in.off, k);
      in.off += k;
      buf += k;
      n -= k;
      continue;
    }
    /* A large piece goes straight where it belongs; a small one fills the buffer. */
    bool direct = n >= sizeof in.buf;
    ssize_t r = direct ? read(fd, buf, n) : read(fd, in.buf, sizeof in.buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    if (direct) {
      buf += r;
      n -= (size_t)r;
    } else {
      in.off = 0;
      in.len = (size_t)r;
    }
  }
  return 0;
}

/* One record: its tag, and its bytes (NUL-terminated, malloc'd). */
int read_record(int fd, char *tag, char **data, size_t *len) {
  char head[32];
  size_t i = 0;
  for (;;) {
    if (i >= sizeof head - 1 || read_full(fd, head + i, 1) < 0) return -1;
    if (head[i] == '\n') break;
    i++;
  }
  head[i] = 0;
  char *end;
  unsigned long n = strtoul(head + 2, &end, 10);
  if (head[1] != ' ' || *end != 0 || n > (1UL << 30)) return -1;
  *tag = head[0];
  *len = n;
  *data = malloc(n + 1);
  if (!*data || read_full(fd, *data, n) < 0) return -1;
  (*data)[n] = 0;
  return 0;
}

/* Write a file the daemon sent, creating parent directories; never through a link. */
int write_file(const char *path, const char *data, size_t len) {
  char *p = strdup(path);
  if (!p || path[0] == '/' || strstr(path, "..")) return -1;
  for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
    *s = 0;
    if (mkdir(p, 0755) < 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  free(p);
  if (fd < 0) return -1;
  if (write_all(fd, data, len) < 0) return -1;
  return close(fd);
}

int take_file(int fd, char **path, char *data, size_t len) {
  int r = write_file(*path, data, len);
  if (r < 0) dprintf(fd, "error cannot write %s: %s\n", *path, strerror(errno));
  free(*path);
  free(data);
  *path = NULL;
  return r;
}
