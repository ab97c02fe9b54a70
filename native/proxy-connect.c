/* A CONNECT tunnel through a sandbox's proxy on stdin/stdout (see proxy-connect.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "proxy-connect.h"

int proxy_tunnel(int u, const char *host, const char *port) {
  char req[1024];
  int n = snprintf(req, sizeof req, "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", host, port, host, port);
  if (n <= 0 || (size_t)n >= sizeof req || write(u, req, (size_t)n) != n) return 1;
  /* The answer's head, byte by byte so nothing of the tunnel is read past it. */
  char head[4096];
  size_t len = 0;
  while (len < sizeof head - 1) {
    if (read(u, head + len, 1) != 1) return 1;
    len++;
    if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0) break;
  }
  head[len] = 0;
  if (strncmp(head, "HTTP/1.1 200", 12) != 0 && strncmp(head, "HTTP/1.0 200", 12) != 0) {
    char *eol = strstr(head, "\r\n");
    if (eol) *eol = 0;
    fprintf(stderr, "realm: the proxy refused %s:%s: %s\n", host, port, head);
    return 1;
  }
  char buf[16384];
  int in_open = 1;
  for (;;) {
    struct pollfd p[2] = {{in_open ? 0 : -1, POLLIN, 0}, {u, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(0, buf, sizeof buf);
      /* No half-close: proxies end both ways on it; the far end closes when it is done. */
      if (r <= 0) in_open = 0;
      else if (write(u, buf, (size_t)r) != r) return 1;
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(u, buf, sizeof buf);
      if (r <= 0) return 0;
      for (ssize_t off = 0; off < r;) {
        ssize_t w = write(1, buf + off, (size_t)(r - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 1;
        off += w;
      }
    }
  }
}

