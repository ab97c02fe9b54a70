/* The gateway fast lane's relay thread (lane-relay.c), as its N-API side (lane-relay-js.c) uses it. */
#ifndef REALM_LANE_RELAY_H
#define REALM_LANE_RELAY_H
#include <stddef.h>
#include <stdint.h>

/* A request was out: its response is the lane's to read (`upstream` holds its start). */
#define FLAG_SENT 1
/* The replica's connection is not to be used again. */
#define FLAG_DROP_UPSTREAM 2
/* The client's connection must close. */
#define FLAG_CUT 4

/* A connection going back to the lane: what was read and not passed on, and output not yet written. */
struct relay_back {
  uint32_t id;
  int flags;
  unsigned char *client, *upstream, *out;
  size_t client_len, upstream_len, out_len;
};

/* The exchange a lane repeats (copied by relay_add). */
struct relay_repeat {
  const void *req, *fwd, *rhead, *rout;
  size_t req_len, fwd_len, rhead_len, rout_len;
  long long body_len;
};

/* Called on the relay thread for each hand-back; `b` is the callee's (relay_back_free). */
typedef void (*relay_deliver)(struct relay_back *b);

/* Start the thread (once; later calls do nothing): 0, or -1. */
int relay_start(relay_deliver deliver);
/* Give the thread a client connection and its replica's (duplicated): the lane's id, or 0 when not taken. */
uint32_t relay_add(int client_fd, int upstream_fd, const struct relay_repeat *x, int lease_ms);
/* Hand the lane back as soon as it can go (a request out: as SENT; a response under way: cut). */
void relay_revoke(uint32_t id);
/* Lanes held now, exchanges relayed, hand-backs. */
void relay_figures(long long out[3]);
void relay_back_free(struct relay_back *b);

#endif
