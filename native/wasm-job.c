/* Reading the wasm runner's jobs from stdin (see wasm-job.h). */
#include "wasm-job.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Serve mode's stdin holds jobs alone: read in large chunks (a job of ten records is not twenty
 * reads). Before it, reads take only the job's bytes: the rest of stdin is the program's. */
static bool buffered;
static uint8_t inbuf[1 << 16];
static size_t in_pos, in_len;

void job_buffered(void) { buffered = true; }

static size_t read_some(uint8_t *to, size_t n) {
  if (buffered) {
    if (in_pos == in_len) {
      ssize_t r;
      do r = read(0, inbuf, sizeof inbuf);
      while (r < 0 && errno == EINTR);
      if (r <= 0) _exit(2);
      in_pos = 0, in_len = (size_t)r;
    }
    size_t k = in_len - in_pos < n ? in_len - in_pos : n;
    memcpy(to, inbuf + in_pos, k);
    in_pos += k;
    return k;
  }
  ssize_t r;
  do r = read(0, to, n);
  while (r < 0 && errno == EINTR);
  if (r <= 0) _exit(2);
  return (size_t)r;
}

static uint8_t *read_exact(size_t n) {
  uint8_t *buf = malloc(n + 1);
  if (!buf) _exit(1);
  for (size_t got = 0; got < n;) got += read_some(buf + got, n - got);
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
    if (!buffered) keep_raw(j, h, 5), keep_raw(j, v, len);
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
