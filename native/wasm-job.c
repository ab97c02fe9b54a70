/* Reading the wasm runner's jobs from stdin (see wasm-job.h). */
#include "wasm-job.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint8_t *read_exact(size_t n) {
  uint8_t *buf = malloc(n + 1);
  if (!buf) _exit(1);
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(0, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) _exit(2);
    got += (size_t)r;
  }
  buf[n] = 0;
  return buf;
}



static void keep_raw(struct job *j, const uint8_t *b, size_t n) {
  if (!j->raw || j->raw_len + n > j->raw_cap) {
    j->raw_cap = (j->raw_len + n) * 2;
    j->raw = realloc(j->raw, j->raw_cap);
  }
  if (!j->raw) _exit(1);
  memcpy(j->raw + j->raw_len, b, n);
  j->raw_len += n;
}

void read_job(struct job *j) {
  for (;;) {
    uint8_t *h = read_exact(5);
    uint8_t tag = h[0];
    size_t len = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
    if (len > (256u << 20)) _exit(2);
    uint8_t *v = read_exact(len);
    keep_raw(j, h, 5), keep_raw(j, v, len);
    free(h);
    switch (tag) {
      case 'X': free(v); return;
      case 'A': if (j->argc < MAX_ITEMS - 1) j->argv[j->argc++] = (char *)v; break;
      case 'E': {
        char *eq = strchr((char *)v, '=');
        if (eq && j->envc < MAX_ITEMS) *eq = 0, j->env_k[j->envc] = (char *)v, j->env_v[j->envc++] = eq + 1;
        break;
      }
      case 'C': j->cwd = (char *)v; break;
      case 'D': /* "r" or "w", the host path, NUL, the guest path */
        if (len > 1 && j->ndirs < 64) {
          j->dirs[j->ndirs].rw = v[0] == 'w';
          j->dirs[j->ndirs].host = (char *)v + 1;
          j->dirs[j->ndirs].guest = (char *)v + 1 + strlen((char *)v + 1) + 1;
          if ((size_t)(j->dirs[j->ndirs].guest - (char *)v) <= len) j->ndirs++;
        }
        break;
      case 'M': j->memory = strtoull((char *)v, NULL, 10); break;
      case 'F': j->fuel = strtoull((char *)v, NULL, 10); break;
      case 'T': j->timeout_ms = strtoull((char *)v, NULL, 10); break;
      case 'I': j->inherit_stdin = true; break;
      case 'S': j->serialize = true; break;
      case 'K': j->compiled = v, j->compiled_len = len; break;
      case 'W': j->module = v, j->module_len = len; break;
      case 'V': j->serve = true; break;
      case 'B': j->body = v, j->body_len = len, j->has_body = true; break;
      default: break;
    }
  }
}
