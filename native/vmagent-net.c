/*
 * realm-vmagent's network. Network "all": eth0 (virtio-net on QEMU's user-mode network, which
 * runs in a network namespace of the sandbox's own on the host) gets 10.0.2.100/24 and a default
 * route via 10.0.2.2, as slirp4netns's tap0 under the namespace driver. An allow-list: the VM has
 * no NIC; a forwarder listens on 127.0.0.1:PORT and carries each connection over the port
 * "realm-net" to the host, which connects it to the daemon's filtering proxy:
 *
 *   frame = type u8 | id u32be | len u32be | payload
 *   guest -> host: 'C' a new connection, 'H' "realm-net-1" (answering the host's 'H')
 *   host -> guest: 'H' a new host session (every connection of an earlier one is gone)
 *   both ways:     'D' bytes, 'A' u32be bytes taken (at most WINDOW unacknowledged), 'Z' closed
 *
 * The forwarder runs as nobody with no capabilities, no_new_privs and the sandbox's seccomp
 * filter; the sandbox's user can neither signal it nor reach its port.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/seccomp.h>
#include "proxy-connect.h"
#include "vmagent.h"

static void set_addr(struct sockaddr *sa, const char *ip) {
  struct sockaddr_in *a = (struct sockaddr_in *)sa;
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a->sin_addr);
}

void eth0_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "eth0");
  /* The NIC's driver probes as its module loads; allow it a moment all the same. */
  int tries = 0;
  while (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 && tries++ < 400) usleep(5000);
  if (tries > 400) die("no eth0 (virtio-net)");
  set_addr(&ifr.ifr_addr, "10.0.2.100");
  if (ioctl(s, SIOCSIFADDR, &ifr) < 0) die("eth0 address");
  set_addr(&ifr.ifr_netmask, "255.255.255.0");
  if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) die("eth0 netmask");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("eth0 flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("eth0 up");
  struct rtentry rt;
  memset(&rt, 0, sizeof rt);
  set_addr(&rt.rt_dst, "0.0.0.0");
  set_addr(&rt.rt_genmask, "0.0.0.0");
  set_addr(&rt.rt_gateway, "10.0.2.2");
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  rt.rt_dev = "eth0";
  if (ioctl(s, SIOCADDRT, &rt) < 0) die("default route");
  close(s);
}

/* ---- the allow-list forwarder ---- */

#define NCONN 128
#define CHUNK 65536
#define MAGIC "realm-net-1"

struct conn {
  uint32_t id;
  int fd;
  /* The host closed ('Z'): close once `q` (bytes from the host) is written. */
  int closing;
  unsigned char *q;
  size_t qlen;
  /* Bytes sent to the host that it has not acknowledged. */
  size_t sent;
};
static struct conn cs[NCONN];
static int net = NETFD;
static uint32_t next_id = 1;

/* Write all of it to the host; -1 once the host is gone (its connections are then dropped). */
static int put(const void *b, size_t n) {
  const unsigned char *p = b;
  while (n) {
    ssize_t w = write(net, p, n);
    if (w > 0) { p += w; n -= (size_t)w; continue; }
    if (w < 0 && errno != EINTR && errno != EAGAIN) return -1;
    struct pollfd q = {net, POLLOUT, 0};
    if (poll(&q, 1, 1000) > 0 && (q.revents & POLLHUP)) return -1;
  }
  return 0;
}

static int frame(char type, uint32_t id, const void *data, uint32_t len) {
  unsigned char h[9] = {(unsigned char)type, id >> 24, id >> 16, id >> 8, id, len >> 24, len >> 16, len >> 8, len};
  return put(h, 9) < 0 || (len && put(data, len) < 0) ? -1 : 0;
}

static int frame32(char type, uint32_t id, size_t n) {
  unsigned char b[4] = {n >> 24, n >> 16, n >> 8, n};
  return frame(type, id, b, 4);
}

static void drop(struct conn *c) {
  close(c->fd);
  free(c->q);
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

static void drop_all(void) {
  for (int i = 0; i < NCONN; i++) if (cs[i].fd >= 0) drop(&cs[i]);
}

static struct conn *find_conn(uint32_t id) {
  for (int i = 0; i < NCONN; i++) if (cs[i].fd >= 0 && cs[i].id == id) return &cs[i];
  return NULL;
}

/* Write what the program's connection takes now; 'A' tells the host. -1: the host is gone. */
static int flush_conn(struct conn *c) {
  size_t done = 0;
  while (done < c->qlen) {
    ssize_t w = write(c->fd, c->q + done, c->qlen - done);
    if (w > 0) { done += (size_t)w; continue; }
    if (w < 0 && (errno == EINTR)) continue;
    if (w < 0 && errno == EAGAIN) break;
    uint32_t id = c->id;
    drop(c);
    return frame('Z', id, NULL, 0);
  }
  if (done) {
    memmove(c->q, c->q + done, c->qlen - done);
    c->qlen -= done;
    if (frame32('A', c->id, done) < 0) return -1;
  }
  if (c->closing && c->qlen == 0) drop(c);
  return 0;
}

/* One frame from the host; -1: the host is gone. */
static int from_host(char type, uint32_t id, const unsigned char *p, uint32_t len) {
  struct conn *c = find_conn(id);
  switch (type) {
  case 'H':
    drop_all();
    return frame('H', 0, MAGIC, sizeof MAGIC - 1);
  case 'D':
    if (!c) return frame('Z', id, NULL, 0);
    /* A host that sends past the window is not followed. */
    if (c->qlen + len > 2 * WINDOW) { drop(c); return frame('Z', id, NULL, 0); }
    unsigned char *q = realloc(c->q, c->qlen + len);
    if (!q) { drop(c); return frame('Z', id, NULL, 0); }
    memcpy(q + c->qlen, p, len);
    c->q = q;
    c->qlen += len;
    return flush_conn(c);
  case 'A':
    if (c && len == 4) {
      size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
      c->sent = n > c->sent ? 0 : c->sent - n;
    }
    return 0;
  case 'Z':
    if (c) { c->closing = 1; return flush_conn(c); }
    return 0;
  default:
    return 0;
  }
}

static void serve(int l) {
  static unsigned char in[CHUNK + 4096], buf[CHUNK];
  size_t have = 0;
  for (int i = 0; i < NCONN; i++) cs[i].fd = -1;
  for (;;) {
    struct pollfd p[2 + NCONN];
    p[0] = (struct pollfd){net, POLLIN, 0};
    p[1] = (struct pollfd){l, POLLIN, 0};
    for (int i = 0; i < NCONN; i++)
      p[2 + i] = (struct pollfd){cs[i].fd, (short)((cs[i].sent < WINDOW && !cs[i].closing ? POLLIN : 0) | (cs[i].qlen ? POLLOUT : 0)), 0};
    if (poll(p, 2 + NCONN, -1) < 0) continue;
    int gone = 0;
    if (p[1].revents & POLLIN) {
      int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      struct conn *c = NULL;
      for (int i = 0; fd >= 0 && i < NCONN; i++) if (cs[i].fd < 0) { c = &cs[i]; break; }
      if (fd >= 0 && (!c || (p[0].revents & POLLHUP))) close(fd);
      else if (c) {
        *c = (struct conn){.id = next_id++, .fd = fd};
        if (frame('C', c->id, NULL, 0) < 0) gone = 1;
      }
    }
    for (int i = 0; i < NCONN && !gone; i++) {
      struct conn *c = &cs[i];
      if (c->fd < 0 || p[2 + i].fd != c->fd || !p[2 + i].revents) continue;
      if (c->qlen && flush_conn(c) < 0) { gone = 1; break; }
      if (c->fd < 0 || !(p[2 + i].revents & (POLLIN | POLLHUP | POLLERR)) || c->sent >= WINDOW || c->closing) continue;
      size_t room = WINDOW - c->sent;
      ssize_t n = read(c->fd, buf, room < sizeof buf ? room : sizeof buf);
      if (n > 0) {
        c->sent += (size_t)n;
        if (frame('D', c->id, buf, (uint32_t)n) < 0) gone = 1;
      } else if (n == 0 || errno != EAGAIN) {
        /* Either side's end closes both, as realm-init's forwarder does. */
        uint32_t id = c->id;
        drop(c);
        if (frame('Z', id, NULL, 0) < 0) gone = 1;
      }
    }
    if (!gone && (p[0].revents & POLLIN)) {
      ssize_t n = read(net, in + have, sizeof in - have);
      if (n > 0) have += (size_t)n;
      /* End of file: the host is away (a daemon restarting). Its connections are gone, and so is
       * any half frame; its next session starts with 'H'. */
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) { gone = 1; usleep(50000); }
      while (!gone && have >= 9) {
        uint32_t id = (uint32_t)in[1] << 24 | in[2] << 16 | in[3] << 8 | in[4], len = (uint32_t)in[5] << 24 | in[6] << 16 | in[7] << 8 | in[8];
        if (len > CHUNK) { gone = 1; break; }
        if (have < 9 + len) break;
        if (from_host((char)in[0], id, in + 9, len) < 0) gone = 1;
        memmove(in, in + 9 + len, have - 9 - len);
        have -= 9 + len;
      }
    }
    if (gone) { drop_all(); have = 0; }
  }
}

pid_t proxy_start(int port) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 128) < 0) die("the proxy forwarder's listener");
  pid_t pid = fork();
  if (pid < 0) die("fork the proxy forwarder");
  if (pid == 0) {
    /* Nothing of the agent's but the listener and the port "realm-net". */
    close(PORTFD);
    close(CGFD);
    prctl(PR_SET_NAME, "realm-proxy", 0, 0, 0);
    if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0) _exit(1);
    struct sock_fprog prog = {.len = (unsigned short)filter_len, .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) _exit(1);
    fcntl(net, F_SETFL, O_NONBLOCK);
    fcntl(l, F_SETFL, O_NONBLOCK);
    serve(l);
    _exit(0);
  }
  close(l);
  close(NETFD);
  return pid;
}

int proxy_connect_main(const char *host, const char *port) {
  /* The forwarder's port, from the kernel's command line (realm.proxy=PORT), which /proc shows. */
  read_cmdline();
  const char *p = param("realm.proxy");
  int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)(p ? atoi(p) : 0)), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (!p || u < 0 || connect(u, (struct sockaddr *)&a, sizeof a) != 0) {
    fprintf(stderr, "realm: no network proxy in this sandbox (%s)\n", p ? strerror(errno) : "no allow-list");
    return 1;
  }
  return proxy_tunnel(u, host, port);
}
