/*
 * realm-wasm: the wasm driver's runner for WASI preview 1 modules, on Wasmtime's C API (the
 * libwasmtime inside the Python wheel realm's set-up installs, opened with dlopen). It runs inside
 * a namespace sandbox, never in the daemon; a preview 2 component is handed to runner.py (Python
 * bindings, which have the component model), with the job on fd 3.
 *
 *   realm-wasm LIBWASMTIME WASMTIME_PY_DIR RUNNER_PY
 *
 * stdin:  the job, records of u8 tag + u32 length (big-endian) + bytes, up to an 'X' record
 *         (see src/drivers/wasm/protocol.ts); the rest of stdin is the program's. A one-shot's
 *         runner is started with its warm sandbox, before its run exists: it loads Wasmtime and
 *         makes its engine, then waits here, on a pipe its run's job later streams into.
 * stdout: frames of u8 kind + u32 length + payload: 1 stdout, 2 stderr, 3 result (JSON, last),
 *         4 the compiled module (only when asked, before anything of it ran).
 *
 * Serve mode (a 'V' record; the gateway's runners): the module is compiled and linked once, then
 * each request is a job of its own on stdin ('E' environment, 'B' stdin bytes, up to 'X'), run
 * with a fresh store and instance and the first job's limits, its frames ending with its result;
 * the runner answers one request at a time and ends when its stdin does. Instances come from
 * Wasmtime's pooling allocator (one slot, wiped between requests), so a request costs no mmap,
 * munmap or TLB shootdown; the memory cap is still each store's limiter.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "wasm-deadline.h"
#include "wasm-job.h"
#include "wasm-json.h"
#include "wasmtime-api.h"

/* ---- the C API (v49): what both hosts call is in wasmtime-api.h; what this one alone calls ---- */
typedef struct { uint64_t store_id; size_t priv; } instance_t;
typedef struct { uint8_t kind; uint8_t pad[7]; uint64_t of[3]; } extern_t; /* wasmtime_extern_t: kind, then a 24-byte union */
enum { EXTERN_FUNC = 0, EXTERN_MEMORY = 3 };
enum { TRAP_INTERRUPT = 10, TRAP_OUT_OF_FUEL = 11 };

#define WASM_API(X)                                                                              \
  X(void *, wasmtime_context_get_fuel, (void *, uint64_t *))                                     \
  X(void *, wasmtime_context_set_wasi, (void *, void *))                                         \
  X(void *, wasi_config_new, (void))                                                             \
  X(bool, wasi_config_set_argv, (void *, size_t, const char **))                                 \
  X(bool, wasi_config_set_env, (void *, size_t, const char **, const char **))                   \
  X(void, wasi_config_inherit_stdin, (void *))                                                   \
  X(void, wasi_config_set_stdin_bytes, (void *, vec_t *))                                        \
  X(void, wasi_config_set_stdout_custom, (void *, long (*)(void *, const uint8_t *, size_t), void *, void (*)(void *))) \
  X(void, wasi_config_set_stderr_custom, (void *, long (*)(void *, const uint8_t *, size_t), void *, void (*)(void *))) \
  X(bool, wasi_config_preopen_dir, (void *, const char *, const char *, bool))                   \
  X(void *, wasmtime_module_new, (void *, const uint8_t *, size_t, void **))                     \
  X(void *, wasmtime_module_deserialize, (void *, const uint8_t *, size_t, void **))             \
  X(void *, wasmtime_module_serialize, (void *, vec_t *))                                        \
  X(void *, wasmtime_linker_new, (void *))                                                       \
  X(void *, wasmtime_linker_define_wasi, (void *))                                               \
  X(void *, wasmtime_linker_instantiate, (void *, void *, void *, instance_t *, void **))        \
  X(bool, wasmtime_instance_export_get, (void *, instance_t *, const char *, size_t, extern_t *)) \
  X(void *, wasmtime_func_call, (void *, void *, void *, size_t, void *, size_t, void **))       \
  X(size_t, wasmtime_memory_data_size, (void *, void *))                                         \
  X(bool, wasmtime_error_exit_status, (void *, int *))                                           \
  X(bool, wasmtime_trap_code, (void *, uint8_t *))                                               \
  X(void, wasm_trap_message, (void *, vec_t *))                                                  \
  X(void *, wasmtime_linker_instantiate_pre, (void *, void *, void **))                          \
  X(void *, wasmtime_instance_pre_instantiate, (void *, void *, instance_t *, void **))         \
  X(void *, wasmtime_pooling_allocation_config_new, (void))                                      \
  X(void, wasmtime_pooling_allocation_config_total_core_instances_set, (void *, uint32_t))       \
  X(void, wasmtime_pooling_allocation_config_total_memories_set, (void *, uint32_t))             \
  X(void, wasmtime_pooling_allocation_config_total_tables_set, (void *, uint32_t))               \
  X(void, wasmtime_pooling_allocation_config_total_gc_heaps_set, (void *, uint32_t))             \
  X(void, wasmtime_pooling_allocation_config_max_memory_size_set, (void *, size_t))              \
  X(void, wasmtime_pooling_allocation_config_table_elements_set, (void *, size_t))               \
  X(void, wasmtime_pooling_allocation_config_linear_memory_keep_resident_set, (void *, size_t))  \
  X(void, wasmtime_pooling_allocation_config_table_keep_resident_set, (void *, size_t))          \
  X(void, wasmtime_pooling_allocation_strategy_set, (void *, void *))                            \
  X(void, wasmtime_pooling_allocation_config_delete, (void *))

#define DECLARE(ret, name, args) static WASMTIME_POINTER(ret, name, args)
WASMTIME_CORE_API(DECLARE)
WASM_API(DECLARE)
WASMTIME_DEFINE_LOADER(WASM_API)

/* ---- output ---- */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void write_all(int fd, const void *buf, size_t n) {
  const uint8_t *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    p += w;
    n -= (size_t)w;
  }
}

/* A frame in one writev (one read for the daemon, mostly); write_all finishes a short one. */
static void frame(uint8_t kind, const void *data, size_t n) {
  uint8_t h[5] = {kind, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
  struct iovec iov[2] = {{h, 5}, {(void *)data, n}};
  pthread_mutex_lock(&out_lock);
  ssize_t w;
  do w = writev(1, iov, 2);
  while (w < 0 && errno == EINTR);
  if (w < 0) _exit(1);
  if ((size_t)w < 5) {
    write_all(1, h + w, 5 - (size_t)w);
    write_all(1, data, n);
  } else if ((size_t)w - 5 < n) {
    write_all(1, (const uint8_t *)data + (w - 5), n - ((size_t)w - 5));
  }
  pthread_mutex_unlock(&out_lock);
}

static long emit(void *kind, const uint8_t *data, size_t n) {
  frame((uint8_t)(uintptr_t)kind, data, n);
  return (long)n;
}

static double cpu_start;
static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec * 1000 + (double)t.tv_nsec / 1e6;
}

#ifndef KEEP_RESIDENT
#define KEEP_RESIDENT (1u << 20)
#endif

/* Serve mode: where a request's end (finish) goes back to, instead of exiting. */
static bool serving;
static jmp_buf request_done;

static uint64_t memory_bytes;
static uint64_t fuel_given;
static void *ctx_for_fuel;

/* Send the result frame and end with the program's exit code (a trap or a load error: 1). */
static void finish(const char *status, int code, const char *extra) {
  char buf[65536];
  int n = snprintf(buf, sizeof buf, "{\"status\":\"%s\",\"code\":%d,\"memoryBytes\":%llu,\"cpuMs\":%ld", status, code,
                   (unsigned long long)memory_bytes, (long)(cpu_now() - cpu_start + 0.5));
  if (fuel_given && ctx_for_fuel) {
    uint64_t left = 0;
    if (!wasmtime_context_get_fuel(ctx_for_fuel, &left))
      n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"fuelUsed\":%llu", (unsigned long long)(fuel_given - left));
  }
  n += snprintf(buf + n, sizeof buf - (size_t)n, "%s}", extra ? extra : "");
  frame(3, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1));
  if (serving) longjmp(request_done, 1);
  _exit(strcmp(status, "exit") == 0 && code >= 0 && code < 256 ? code : 1);
}

static void fail(const char *error, const char *msg, size_t len) {
  char *m = json_string(msg, len);
  char *extra = malloc(strlen(m) + 64);
  sprintf(extra, ",\"error\":\"%s\",\"message\":%s", error, m);
  finish("error", 1, extra);
}

/* Whether _start was called: errors before it are load errors. */
static bool running;

/*
 * A load error's whole chain on one line: Wasmtime's outer error names what failed ("incompatible
 * import type for `wasi_snapshot_preview1::fd_close`"), its causes say why.
 */
static void fail_chain(const char *all, size_t n) {
  char *one = malloc(n + 1);
  size_t o = 0;
  if (!one) _exit(1);
  for (size_t i = 0; i < n; i++) {
    char c = all[i];
    if (n - i >= 10 && memcmp(all + i, "Caused by:", 10) == 0) {
      while (o && one[o - 1] == ' ') o--;
      one[o++] = ':';
      i += 9;
    } else if (c == '\n' || c == ' ' || c == '\t') {
      if (o && one[o - 1] != ' ') one[o++] = ' ';
    } else {
      one[o++] = c;
    }
  }
  while (o && one[o - 1] == ' ') o--;
  fail("WASM_INVALID", one, o);
}

/* The trap or error `err`/`trap` as the result: an exit, fuel, deadline, or another trap. */
static void ended(void *err, void *trap) {
  vec_t msg = {0, NULL};
  const char *reason = "trap";
  if (err) {
    int status;
    if (wasmtime_error_exit_status(err, &status)) finish("exit", status, NULL);
    wasmtime_error_message(err, &msg);
  } else {
    uint8_t code;
    if (wasmtime_trap_code(trap, &code)) reason = code == TRAP_OUT_OF_FUEL ? "fuel" : code == TRAP_INTERRUPT ? "deadline" : "trap";
    wasm_trap_message(trap, &msg);
  }
  /* wasm_trap_message's text is NUL-terminated. After a backtrace, Wasmtime says the trap itself
   * after "Caused by:"; that is the message, without its "wasm trap: " prefix. */
  size_t len = msg.size && msg.data[msg.size - 1] == 0 ? msg.size - 1 : msg.size;
  const char *text = msg.data ? (const char *)msg.data : "";
  if (err && !trap && !running) fail_chain(text, len);
  for (const char *c = memmem(text, len, "Caused by:", 10); c; c = memmem(text, len, "Caused by:", 10)) {
    len -= (size_t)(c + 10 - text);
    text = c + 10;
  }
  while (len && (*text == ' ' || *text == '\n')) text++, len--;
  while (len && (text[len - 1] == ' ' || text[len - 1] == '\n')) len--;
  if (len >= 11 && memcmp(text, "wasm trap: ", 11) == 0) text += 11, len -= 11;
  if (err && !trap) {
    fail("WASM_INVALID", text, len);
  }
  char *m = json_string(text, len);
  char *extra = malloc(strlen(m) + 64);
  sprintf(extra, ",\"reason\":\"%s\",\"message\":%s", reason, m);
  finish("trap", 1, extra);
}

/* A component: runner.py (the Python bindings have the component model), the job on fd 3. */
static void hand_over(struct job *j, const char *py_dir, const char *runner_py) {
  int p[2];
  if (pipe(p) != 0) _exit(1);
  pid_t pid = fork();
  if (pid == 0) { /* the writer: the job may be larger than the pipe */
    close(p[0]);
    write_all(p[1], j->raw, j->raw_len);
    _exit(0);
  }
  close(p[1]);
  if (p[0] != 3) {
    dup2(p[0], 3);
    close(p[0]);
  }
  execl("/usr/bin/python3", "python3", "-I", "-S", runner_py, py_dir, "--job-fd", "3", (char *)NULL);
  fail("WASM_UNSUPPORTED", "components need /usr/bin/python3", 34);
}


static void *current_store;
/* Serve mode: the module linked once (imports resolved), each request's instance made from it. */
static void *instance_pre;

/*
 * The directory `path` (absolute), opened without following a symbolic link anywhere on the way
 * (and no `..`): a preopen is the directory realm named, never where a link planted in a volume or
 * the home points (/proc, /etc). Wasmtime opens a preopen by path, so it is handed this descriptor's
 * /proc/self/fd name; -1 when the path leads through a link or does not exist.
 */
static int open_dir_nofollow(const char *path) {
  if (path[0] != '/') return -1;
  int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  char *copy = strdup(path), *save = NULL;
  if (!copy) _exit(1);
  for (char *part = strtok_r(copy, "/", &save); part && fd >= 0; part = strtok_r(NULL, "/", &save)) {
    int next = strcmp(part, "..") == 0 ? -1 : openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    fd = next;
  }
  free(copy);
  return fd;
}

/* One run of the module: a fresh store and instance with the job's limits; ends in finish(). */
static void run_one(struct job *j, void *engine, void *linker, void *module);

/*
 * Serve mode: answer request jobs until stdin ends, each with a fresh store and instance (run_one,
 * whose finish() comes back here after the result frame); the store goes after each, and with it
 * the instance's memory (back to the pooling allocator, wiped).
 */
static void serve(struct job *j, void *engine, void *linker, void *module) {
  serving = true;
  void *err = wasmtime_linker_instantiate_pre(linker, module, &instance_pre);
  if (err) ended(err, NULL);
  job_buffered();
  static struct job r;
  for (;;) {
    r.envc = 0, r.body = NULL, r.body_len = 0;
    read_job(&r);
    j->envc = r.envc;
    memcpy(j->env_k, r.env_k, r.envc * sizeof *r.env_k);
    memcpy(j->env_v, r.env_v, r.envc * sizeof *r.env_v);
    /* The body goes to the instance's stdin, which takes the bytes (freed with the store). */
    j->body = r.body, j->body_len = r.body_len, j->has_body = true;
    memory_bytes = 0, fuel_given = 0, ctx_for_fuel = NULL, running = false;
    cpu_start = cpu_now();
    if (setjmp(request_done) == 0) run_one(j, engine, linker, module);
    deadline_next();
    if (current_store) wasmtime_store_delete(current_store);
    current_store = NULL;
    for (size_t i = 0; i < r.envc; i++) free((void *)r.env_k[i]);
  }
}

/*
 * The engine for a job: epoch deadlines, fuel when it has a budget, and for serve mode Wasmtime's
 * pooling allocator. NULL: the one-shot engine made ahead (no fuel, no pool).
 */
static void *new_engine(const struct job *j) {
  void *config = wasm_config_new();
  wasmtime_config_epoch_interruption_set(config, true);
  wasmtime_config_consume_fuel_set(config, j && j->fuel > 0);
  wasmtime_config_cranelift_opt_level_set(config, 1 /* speed */);
  wasmtime_config_parallel_compilation_set(config, false);
  if (j && j->serve) {
    /* One instance at a time, its memory and table slots kept and wiped between requests: no
     * mmap, munmap and page-table work per request. The cap stays the store limiter's. */
    uint64_t cap = j->memory ? j->memory : (256u << 20);
    void *pool = wasmtime_pooling_allocation_config_new();
    wasmtime_pooling_allocation_config_total_core_instances_set(pool, 1);
    wasmtime_pooling_allocation_config_total_memories_set(pool, 1);
    wasmtime_pooling_allocation_config_total_tables_set(pool, 1);
    wasmtime_pooling_allocation_config_total_gc_heaps_set(pool, 1);
    wasmtime_pooling_allocation_config_max_memory_size_set(pool, (size_t)((cap + 65535) & ~(uint64_t)65535));
    wasmtime_pooling_allocation_config_table_elements_set(pool, 1 << 20);
    /* The first KEEP bytes are reset in place (memset, the image copied back) instead of given
     * back with madvise: no TLB shootdown per request, no page faults in the next one. */
    wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(pool, KEEP_RESIDENT);
    wasmtime_pooling_allocation_config_table_keep_resident_set(pool, 64 << 10);
    wasmtime_pooling_allocation_strategy_set(config, pool);
    wasmtime_pooling_allocation_config_delete(pool);
  }
  return wasm_engine_new_with_config(config);
}

/* The linker depends on the engine only: made once, before a server's children. */
static void *new_linker(void *engine) {
  void *linker = wasmtime_linker_new(engine);
  void *err = wasmtime_linker_define_wasi(linker);
  if (err) ended(err, NULL);
  return linker;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: realm-wasm LIBWASMTIME WASMTIME_PY_DIR RUNNER_PY\n");
    return 2;
  }
  if (!load_wasmtime("realm-wasm", argv[1])) return 2;

  /* Made while the job is awaited (a one-shot runner starts ahead of its run): the first engine
   * of a process costs milliseconds of Wasmtime's own set-up, any later one next to nothing. */
  void *ahead_engine = new_engine(NULL), *ahead_linker = new_linker(ahead_engine);

  struct job j;
  memset(&j, 0, sizeof j);
  read_job(&j);
  cpu_start = cpu_now();
  if (j.argc == 0) fail("WASM_INVALID", "no module was named", 19);
  if (j.cwd && chdir(j.cwd) != 0) fail("WASM_INVALID", "the working directory is missing", 32);

  /* The module's bytes: given in the job ('W'), else the file argv[0] names. */
  const char *path = j.argv[0];
  uint8_t *wasm;
  size_t size, full_size;
  if (j.module) {
    wasm = j.module, size = full_size = j.module_len;
  } else {
    FILE *f = fopen(path, "rb");
    if (!f) {
      char m[4200];
      int n = snprintf(m, sizeof m, "%s: %s", path, strerror(errno));
      fail("WASM_INVALID", m, (size_t)n);
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > (1L << 30)) fail("WASM_INVALID", "the module is too large", 23);
    full_size = (size_t)st.st_size;
    /* With its compiled form at hand, only the preamble is read (module or component). */
    size = j.compiled && full_size > 8 ? 8 : full_size;
    wasm = malloc(size ? size : 1);
    if (!wasm || fread(wasm, 1, size, f) != size) fail("WASM_INVALID", "the module could not be read", 28);
    fclose(f);
  }
  if (size < 8 || memcmp(wasm, "\0asm", 4) != 0) {
    char m[4200];
    int n = snprintf(m, sizeof m, "%s is not a WebAssembly module or component", path);
    fail("WASM_INVALID", m, (size_t)n);
  }
  /* A component's preamble says version 0x0d, layer 1; a core module's version 1, layer 0. */
  if (wasm[6] == 1 && wasm[7] == 0) {
    if (j.serve) fail("WASM_UNSUPPORTED", "serve mode runs modules, not components", 39);
    hand_over(&j, argv[2], argv[3]);
  }

  /* A one-shot's plain engine was made while the job was awaited; fuel and serve mode want their own. */
  void *engine = ahead_engine, *linker = ahead_linker, *err = NULL;
  if (j.fuel || j.serve) {
    engine = new_engine(&j);
    linker = NULL;
  }

  void *module = NULL;
  if (j.compiled && !wasmtime_module_deserialize(engine, j.compiled, j.compiled_len, &module)) {
    /* loaded from the daemon's cache */
  } else {
    module = NULL;
    if (size < full_size) { /* the compiled form did not load: read the whole module */
      FILE *f = fopen(path, "rb");
      size = full_size;
      wasm = realloc(wasm, size);
      if (!f || !wasm || fread(wasm, 1, size, f) != size) fail("WASM_INVALID", "the module could not be read", 28);
      fclose(f);
    }
    err = wasmtime_module_new(engine, wasm, size, &module);
    if (err) ended(err, NULL);
    if (j.serialize) {
      /* Before anything of it ran: what the daemon caches is the compiler's output only. */
      vec_t out = {0, NULL};
      if (!wasmtime_module_serialize(module, &out)) {
        frame(4, out.data, out.size);
        wasm_byte_vec_delete(&out);
      }
    }
  }

  if (!linker) linker = new_linker(engine);
  if (j.serve) serve(&j, engine, linker, module);
  run_one(&j, engine, linker, module);
}

static void run_one(struct job *jp, void *engine, void *linker, void *module) {
  struct job j = *jp;
  void *err = NULL;
  void *store = wasmtime_store_new(engine, NULL, NULL);
  current_store = store;
  void *ctx = wasmtime_store_context(store);
  wasmtime_store_limiter(store, (int64_t)(j.memory ? j.memory : (256u << 20)), 1 << 20, 16, 16, 1);
  if (j.fuel) {
    wasmtime_context_set_fuel(ctx, j.fuel);
    fuel_given = j.fuel;
    ctx_for_fuel = ctx;
  }
  /* The deadline: one epoch tick, given by a timer thread; Wasmtime checks at function entries
   * and loop headers, so a loop with no calls stops too. */
  wasmtime_context_set_epoch_deadline(ctx, 1);
  if (j.timeout_ms) deadline_start(engine, j.timeout_ms, wasmtime_engine_increment_epoch);

  void *wasi = wasi_config_new();
  j.argv[j.argc] = NULL;
  wasi_config_set_argv(wasi, j.argc, j.argv);
  wasi_config_set_env(wasi, j.envc, j.env_k, j.env_v);
  if (j.has_body) {
    vec_t in = {j.body_len, j.body};
    wasi_config_set_stdin_bytes(wasi, &in); /* takes the bytes */
  } else if (j.inherit_stdin) {
    wasi_config_inherit_stdin(wasi);
  }
  wasi_config_set_stdout_custom(wasi, emit, (void *)1, NULL);
  wasi_config_set_stderr_custom(wasi, emit, (void *)2, NULL);
  int dir_fds[64];
  for (size_t i = 0; i < j.ndirs; i++) {
    char name[64];
    dir_fds[i] = open_dir_nofollow(j.dirs[i].host);
    if (dir_fds[i] < 0) {
      char m[4200];
      int n = snprintf(m, sizeof m, "the directory %s is missing or leads through a symbolic link", j.dirs[i].host);
      fail("WASM_INVALID", m, (size_t)n);
    }
    snprintf(name, sizeof name, "/proc/self/fd/%d", dir_fds[i]);
    wasi_config_preopen_dir(wasi, name, j.dirs[i].guest, j.dirs[i].rw);
  }
  err = wasmtime_context_set_wasi(ctx, wasi);
  for (size_t i = 0; i < j.ndirs; i++) close(dir_fds[i]);
  if (err) ended(err, NULL);

  instance_t instance;
  void *trap = NULL;
  err = instance_pre ? wasmtime_instance_pre_instantiate(instance_pre, ctx, &instance, &trap)
                     : wasmtime_linker_instantiate(linker, ctx, module, &instance, &trap);
  if (err || trap) ended(err, trap);

  extern_t mem, start;
  bool has_mem = wasmtime_instance_export_get(ctx, &instance, "memory", 6, &mem) && mem.kind == EXTERN_MEMORY;
  if (!wasmtime_instance_export_get(ctx, &instance, "_start", 6, &start) || start.kind != EXTERN_FUNC) {
    const char *m = "the module exports no _start (a WASI command is needed)";
    fail("WASM_UNSUPPORTED", m, strlen(m));
  }
  running = true;
  err = wasmtime_func_call(ctx, start.of, NULL, 0, NULL, 0, &trap);
  if (has_mem) memory_bytes = wasmtime_memory_data_size(ctx, mem.of);
  if (err || trap) ended(err, trap);
  finish("exit", 0, NULL);
}
