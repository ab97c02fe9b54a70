/* The wasm runner's jobs: records of u8 tag + u32 length (big-endian) + bytes, up to 'X' (see
 * src/drivers/wasm/protocol.ts). */
#ifndef REALM_WASM_JOB_H
#define REALM_WASM_JOB_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_ITEMS 4096
struct job {
  const char *argv[MAX_ITEMS], *env_k[MAX_ITEMS], *env_v[MAX_ITEMS];
  size_t argc, envc;
  struct { const char *host, *guest; bool rw; } dirs[64];
  size_t ndirs;
  const char *cwd;
  uint64_t memory, fuel, timeout_ms;
  bool inherit_stdin, serialize, serve, has_body;
  uint8_t *compiled, *module, *body;
  size_t compiled_len, module_len, body_len;
  /* the job's bytes as read, for a hand-over to runner.py (a compiled component included) */
  uint8_t *raw;
  size_t raw_len, raw_cap;
};

/* Read one job from stdin (exits 2 when stdin ends first). */
void read_job(struct job *j);
/* From now on stdin holds jobs alone (serve mode): read it in large chunks; jobs keep no raw copy. */
void job_buffered(void);

#endif
