/*
 * The gateway fast lane's relay thread (src/gateway/lane-relay.ts; its N-API side is
 * lane-relay-js.c): on a kept-alive client connection whose requests repeat byte for byte, it
 * passes each request to the replica and the response back, with no turn of Node's event loop in
 * between. It decides nothing: the lane in JavaScript served the same exchange first and hands
 * over what it made of it — the request bytes the client sends, the head the replica gets
 * instead, the response head the replica sends, the head the client gets instead, and the body's
 * length. Each request must be exactly that request alone (no byte more: pipelining is the
 * lane's), each response head exactly that head, each body exactly that length. Anything else — a
 * different byte, a close, an error, a byte nobody asked for, a response head slower than
 * RESPONSE_WAIT_MS, the lease run out, a revoke — hands the connection back to the lane with every
 * byte read and not yet passed on, and the lane carries on from there as if it had read them
 * itself.
 *
 * The thread works on its own duplicates of the two sockets (dup), so a socket the lane closes
 * meanwhile can never be mistaken for another that reuses its number; the lane stops Node reading
 * them first (readStop) and starts it again on the hand-back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "lane-relay.h"

/* A response head that has not come whole within this is the lane's to wait for (its deadline). */
#define RESPONSE_WAIT_MS 1000
/* How often lanes are looked at for a lease run out or a slow head. */
#define SCAN_MS 50
#define IO_MAX 65536
/* Bytes a client may send past the request the thread expects (a longer one, pipelined ones): read
 * whole, so the lane gets whole requests back (it hands a head split across reads to Node). */
#define CLIENT_AHEAD 16384

enum state { IDLE, SENT, BODY };

typedef struct lane lane;
struct end {
  lane *l;
  int upstream;
};

struct lane {
  uint32_t id;
  int cfd, ufd;
  struct end cend, uend;
  uint32_t cmask, umask; /* epoll interest now */
  unsigned char *req, *fwd, *rhead, *rout;
  size_t req_len, fwd_len, rhead_len, rout_len;
  long long body_len, body_left;
  long long lease_end, sent_at;
  enum state st;
  unsigned char *cbuf; /* what the client sent, not yet passed on */
  size_t clen, ccap;
  unsigned char *rbuf; /* a response's first bytes, until its head is known */
  size_t rlen, rcap;
  unsigned char *pend; /* output the client has not taken yet */
  size_t pend_len, pend_off;
  int client_eof, up_gone, revoked, done;
  lane *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int ep = -1, wake_fd = -1;
static relay_deliver deliver;
static lane *lanes;
static uint32_t next_id;
static int any_revoked;
/* For relay_figures(): lanes held now, exchanges relayed, hand-backs (under mu). */
static long long n_lanes, n_relayed, n_backs;

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void set_mask(lane *l, int upstream, uint32_t mask) {
  uint32_t *cur = upstream ? &l->umask : &l->cmask;
  if (*cur == mask) return;
  struct epoll_event e = {.events = mask, .data.ptr = upstream ? &l->uend : &l->cend};
  epoll_ctl(ep, EPOLL_CTL_MOD, upstream ? l->ufd : l->cfd, &e);
  *cur = mask;
}

/* What each socket is watched for, from the lane's state. */
static void arm(lane *l) {
  uint32_t c = 0, u = 0;
  if (!l->client_eof && l->clen < l->ccap) c |= EPOLLIN;
  if (l->pend) c |= EPOLLOUT;
  else if (!l->up_gone) u |= EPOLLIN;
  set_mask(l, 0, c);
  if (!l->up_gone) set_mask(l, 1, u);
}

static unsigned char *dup_bytes(const void *p, size_t n) {
  unsigned char *c = malloc(n ? n : 1);
  if (c) memcpy(c, p, n);
  return c;
}

/* The lane goes back to the lane in JavaScript with what it holds; freed after the batch of events. */
static void hand_back(lane *l, int flags) {
  if (l->done) return;
  l->done = 1;
  n_lanes--;
  n_backs++;
  epoll_ctl(ep, EPOLL_CTL_DEL, l->cfd, NULL);
  if (!l->up_gone) epoll_ctl(ep, EPOLL_CTL_DEL, l->ufd, NULL);
  close(l->cfd);
  close(l->ufd);
  struct relay_back *b = calloc(1, sizeof *b);
  if (!b) return; /* no memory: the lane's sockets stay stopped; nothing better to do */
  b->id = l->id;
  b->flags = flags | (l->up_gone ? FLAG_DROP_UPSTREAM : 0);
  b->client = dup_bytes(l->cbuf, b->client_len = l->clen);
  if (flags & FLAG_SENT) b->upstream = dup_bytes(l->rbuf, b->upstream_len = l->rlen);
  if (l->pend) b->out = dup_bytes(l->pend + l->pend_off, b->out_len = l->pend_len - l->pend_off);
  deliver(b);
}

/* Given up where it stands: a request out is the lane's to answer; a response under way is cut. */
static void give_up(lane *l) {
  hand_back(l, l->st == IDLE ? 0 : l->st == SENT ? FLAG_SENT : FLAG_CUT | FLAG_DROP_UPSTREAM);
}

static int dup_fd(int fd) {
  return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

static void free_lane(lane *l) {
  free(l->req);
  free(l->fwd);
  free(l->rhead);
  free(l->rout);
  free(l->cbuf);
  free(l->rbuf);
  free(l->pend);
  free(l);
}

/* Write to the client what it can take now; the rest waits for EPOLLOUT. 0, or -1 when it went. */
static int to_client(lane *l, const unsigned char *a, size_t an, const unsigned char *b, size_t bn) {
  struct iovec iov[2] = {{(void *)a, an}, {(void *)b, bn}};
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = bn ? 2 : 1};
  ssize_t w;
  do w = sendmsg(l->cfd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (w < 0 && errno == EINTR);
  if (w < 0 && errno != EAGAIN) return -1;
  size_t done = w < 0 ? 0 : (size_t)w, total = an + bn;
  if (done == total) return 0;
  size_t rest = total - done;
  l->pend = malloc(rest);
  if (!l->pend) return -1;
  l->pend_len = rest;
  l->pend_off = 0;
  size_t off = 0;
  if (done < an) {
    memcpy(l->pend, a + done, an - done);
    off = an - done;
    done = 0;
  } else done -= an;
  memcpy(l->pend + off, b + done, bn - done);
  return 0;
}

static void serve_idle(lane *l, long long now);

/* The replica's connection is done with (closed, or it sent what nobody asked for): no longer watched. */
static void upstream_gone(lane *l) {
  l->up_gone = 1;
  epoll_ctl(ep, EPOLL_CTL_DEL, l->ufd, NULL);
}

/* The exchange ended cleanly: the next request, or the lane goes back. */
static void exchange_over(lane *l, long long now) {
  l->st = IDLE;
  n_relayed++;
  if (l->up_gone) return hand_back(l, 0);
  serve_idle(l, now);
}

/* In IDLE: a whole request that is the one request exactly goes to the replica. */
static void serve_idle(lane *l, long long now) {
  if (l->clen < l->req_len) {
    if (memcmp(l->cbuf, l->req, l->clen) != 0 || l->client_eof || l->revoked) hand_back(l, 0);
    else arm(l);
    return;
  }
  if (l->clen > l->req_len || memcmp(l->cbuf, l->req, l->req_len) != 0 || now >= l->lease_end || l->revoked)
    return hand_back(l, 0);
  ssize_t w;
  do w = send(l->ufd, l->fwd, l->fwd_len, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (w < 0 && errno == EINTR);
  if (w != (ssize_t)l->fwd_len) {
    /* Nothing went: the lane tries itself (on another connection). Part went: no way back. */
    if (w <= 0) {
      upstream_gone(l);
      return hand_back(l, 0);
    }
    return hand_back(l, FLAG_CUT);
  }
  l->clen = 0;
  l->rlen = 0;
  l->st = SENT;
  l->sent_at = now;
  arm(l);
}

static void on_client(lane *l, uint32_t ev, long long now) {
  if (ev & EPOLLOUT && l->pend) {
    ssize_t w;
    do w = send(l->cfd, l->pend + l->pend_off, l->pend_len - l->pend_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN) return hand_back(l, FLAG_CUT | FLAG_DROP_UPSTREAM);
    if (w > 0) l->pend_off += (size_t)w;
    if (l->pend_off == l->pend_len) {
      free(l->pend);
      l->pend = NULL;
      if (l->st == BODY && l->body_left == 0) return exchange_over(l, now);
      if (l->st == BODY && l->up_gone) return hand_back(l, FLAG_CUT);
    }
    arm(l);
  }
  if (l->done) return;
  /* Broken (a reset, or closed both ways): nothing more is read from it or can be written to it. */
  if (ev & (EPOLLHUP | EPOLLERR) && (l->client_eof || !(ev & EPOLLIN))) return give_up(l);
  if (!(ev & EPOLLIN) || l->client_eof) return;
  size_t room = l->ccap - l->clen;
  if (!room) return arm(l);
  ssize_t n;
  do n = read(l->cfd, l->cbuf + l->clen, room);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    /* The client ended or failed: the lane hears it again when Node reads once more. */
    l->client_eof = 1;
    if (l->st == IDLE) return hand_back(l, 0);
    return arm(l);
  }
  l->clen += (size_t)n;
  if (l->st == IDLE) serve_idle(l, now);
  else arm(l);
}

static void on_upstream(lane *l, uint32_t ev, long long now) {
  static unsigned char io[IO_MAX];
  if (l->pend) {
    /* Only a close is heard while the client is behind (the replica is not read meanwhile). */
    if (ev & (EPOLLHUP | EPOLLERR)) {
      upstream_gone(l);
    }
    return;
  }
  if (l->st == IDLE) {
    /* Bytes nobody asked for, or the replica closing: that connection is done with. */
    upstream_gone(l);
    return hand_back(l, 0);
  }
  if (l->st == SENT) {
    ssize_t n;
    do n = read(l->ufd, l->rbuf + l->rlen, l->rcap - l->rlen);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return hand_back(l, FLAG_SENT);
    l->rlen += (size_t)n;
    size_t cmp = l->rlen < l->rhead_len ? l->rlen : l->rhead_len;
    if (memcmp(l->rbuf, l->rhead, cmp) != 0) return hand_back(l, FLAG_SENT);
    if (l->rlen < l->rhead_len) return;
    size_t got = l->rlen - l->rhead_len;
    if ((long long)got > l->body_len) return hand_back(l, FLAG_SENT);
    l->st = BODY;
    l->body_left = l->body_len - (long long)got;
    l->rlen = 0;
    if (to_client(l, l->rout, l->rout_len, l->rbuf + l->rhead_len, got) < 0)
      return hand_back(l, FLAG_CUT | FLAG_DROP_UPSTREAM);
    if (l->body_left == 0 && !l->pend) return exchange_over(l, now);
    return arm(l);
  }
  /* BODY */
  size_t want = l->body_left + 1 < IO_MAX ? (size_t)l->body_left + 1 : IO_MAX;
  ssize_t n;
  do n = read(l->ufd, io, want);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) return hand_back(l, FLAG_CUT | FLAG_DROP_UPSTREAM);
  size_t take = (long long)n > l->body_left ? (size_t)l->body_left : (size_t)n;
  l->body_left -= (long long)take;
  if (to_client(l, io, take, NULL, 0) < 0) return hand_back(l, FLAG_CUT | FLAG_DROP_UPSTREAM);
  if (take < (size_t)n) {
    /* A byte past the end of the response: the replica's connection is not used again. */
    upstream_gone(l);
    if (!l->pend) return hand_back(l, 0);
    return arm(l);
  }
  if (l->body_left == 0 && !l->pend) return exchange_over(l, now);
  arm(l);
}

static void scan(long long now) {
  for (lane *l = lanes; l; l = l->next) {
    if (l->done) continue;
    if (l->revoked) give_up(l);
    else if (l->st == IDLE && now >= l->lease_end) hand_back(l, 0);
    else if (l->st == SENT && now - l->sent_at >= RESPONSE_WAIT_MS) hand_back(l, FLAG_SENT);
  }
}

static void *run(void *arg) {
  (void)arg;
  struct epoll_event evs[64];
  long long last_scan = 0;
  for (;;) {
    pthread_mutex_lock(&mu);
    int busy = lanes != NULL;
    pthread_mutex_unlock(&mu);
    int n = epoll_wait(ep, evs, 64, busy ? SCAN_MS : -1);
    if (n < 0 && errno != EINTR) break;
    pthread_mutex_lock(&mu);
    long long now = now_ms();
    for (int i = 0; i < n; i++) {
      struct end *e = evs[i].data.ptr;
      if (!e) {
        uint64_t v;
        if (read(wake_fd, &v, sizeof v) < 0) { /* nothing to do */ }
        continue;
      }
      if (e->l->done) continue;
      if (e->upstream) on_upstream(e->l, evs[i].events, now);
      else on_client(e->l, evs[i].events, now);
    }
    if (any_revoked || now - last_scan >= SCAN_MS) {
      any_revoked = 0;
      last_scan = now;
      scan(now);
    }
    for (lane **p = &lanes; *p;) {
      lane *l = *p;
      if (l->done) {
        *p = l->next;
        free_lane(l);
      } else p = &l->next;
    }
    pthread_mutex_unlock(&mu);
  }
  return NULL;
}

int relay_start(relay_deliver d) {
  if (ep >= 0) return 0;
  ep = epoll_create1(EPOLL_CLOEXEC);
  wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  deliver = d;
  if (ep < 0 || wake_fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &e) != 0 || pthread_create(&th, &attr, run, NULL) != 0) {
    if (ep >= 0) close(ep);
    if (wake_fd >= 0) close(wake_fd);
    ep = wake_fd = -1;
    return -1;
  }
  return 0;
}

static void wake(void) {
  uint64_t one = 1;
  if (write(wake_fd, &one, sizeof one) < 0) { /* a wake is pending already */ }
}

uint32_t relay_add(int cfd, int ufd, const struct relay_repeat *x, int lease_ms) {
  if (ep < 0 || !x->req_len || !x->fwd_len || !x->rhead_len || x->body_len < 0) return 0;
  lane *l = calloc(1, sizeof *l);
  if (!l) return 0;
  l->cfd = l->ufd = -1;
  l->req_len = x->req_len;
  l->fwd_len = x->fwd_len;
  l->rhead_len = x->rhead_len;
  l->rout_len = x->rout_len;
  if (!(l->req = dup_bytes(x->req, x->req_len)) || !(l->fwd = dup_bytes(x->fwd, x->fwd_len)) ||
      !(l->rhead = dup_bytes(x->rhead, x->rhead_len)) || !(l->rout = dup_bytes(x->rout, x->rout_len)) ||
      !(l->cbuf = malloc(l->ccap = l->req_len + CLIENT_AHEAD)) || !(l->rbuf = malloc(l->rcap = l->rhead_len + IO_MAX)) ||
      (l->cfd = dup_fd(cfd)) < 0 || (l->ufd = dup_fd(ufd)) < 0) {
    if (l->cfd >= 0) close(l->cfd);
    free_lane(l);
    return 0;
  }
  l->body_len = x->body_len;
  l->st = IDLE;
  l->cend = (struct end){l, 0};
  l->uend = (struct end){l, 1};
  l->lease_end = now_ms() + lease_ms;
  l->cmask = l->umask = EPOLLIN;
  struct epoll_event ce = {.events = EPOLLIN, .data.ptr = &l->cend}, ue = {.events = EPOLLIN, .data.ptr = &l->uend};
  pthread_mutex_lock(&mu);
  if (epoll_ctl(ep, EPOLL_CTL_ADD, l->cfd, &ce) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, l->ufd, &ue) != 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, l->cfd, NULL);
    pthread_mutex_unlock(&mu);
    close(l->cfd);
    close(l->ufd);
    free_lane(l);
    return 0;
  }
  l->id = ++next_id ? next_id : ++next_id;
  n_lanes++;
  l->next = lanes;
  lanes = l;
  uint32_t id = l->id;
  pthread_mutex_unlock(&mu);
  /* The thread may be waiting with no timeout (no lane before this one). */
  wake();
  return id;
}

void relay_revoke(uint32_t id) {
  if (ep < 0) return;
  pthread_mutex_lock(&mu);
  for (lane *l = lanes; l; l = l->next)
    if (l->id == id && !l->done) {
      l->revoked = 1;
      any_revoked = 1;
    }
  pthread_mutex_unlock(&mu);
  wake();
}

void relay_figures(long long out[3]) {
  pthread_mutex_lock(&mu);
  out[0] = n_lanes;
  out[1] = n_relayed;
  out[2] = n_backs;
  pthread_mutex_unlock(&mu);
}

void relay_back_free(struct relay_back *b) {
  free(b->client);
  free(b->upstream);
  free(b->out);
  free(b);
}
