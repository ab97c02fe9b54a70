/* Small pieces every mode of realm-helper uses. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "helper-util.h"

void die(const char *what) {
  fprintf(stderr, "realm-helper: %s: %s\n", what, strerror(errno));
  exit(125);
}

void fail(const char *msg) {
  fprintf(stderr, "realm-helper: %s\n", msg);
  exit(125);
}

/* Close every descriptor above 2 but those in keep[]: nothing the daemon happens to hold open
 * (sockets, files, the tool that started it) may reach a sandbox. */
void close_others(const int *keep, int nkeep) {
  int sorted[HELPER_MAX_KEEP + 1];
  if (nkeep > HELPER_MAX_KEEP) fail("too many descriptors to keep");
  int n = 0;
  for (int i = 0; i < nkeep; i++)
    if (keep[i] > 2) sorted[n++] = keep[i];
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
      int t = sorted[j];
      sorted[j] = sorted[j - 1];
      sorted[j - 1] = t;
    }
  unsigned int from = 3;
  for (int i = 0; i < n; i++) {
    if ((unsigned int)sorted[i] > from && syscall(SYS_close_range, from, (unsigned int)sorted[i] - 1, 0) < 0) die("close_range");
    from = (unsigned int)sorted[i] + 1;
  }
  if (syscall(SYS_close_range, from, ~0U, 0) < 0) die("close_range");
}

/* --groups G1[,G2...]: decimal gids only (no sign, no space, no empty item). */
int parse_groups(const char *list, gid_t *out) {
  int n = 0;
  const char *p = list;
  for (;;) {
    char *end;
    errno = 0;
    unsigned long g = strtoul(p, &end, 10);
    if (errno || end == p || *p < '0' || *p > '9' || g >= 4294967295UL || (*end && *end != ',')) fail("--groups wants G1[,G2...] (numeric gids)");
    if (n >= HELPER_MAX_GROUPS) fail("--groups: too many groups");
    out[n++] = (gid_t)g;
    if (!*end) return n;
    p = end + 1;
  }
}
