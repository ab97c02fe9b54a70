/*
 * realm-wasm-http: the gateway's runner of wasi:http/incoming-handler components (WASI preview 2,
 * the wasi:http/proxy world), on Wasmtime's C API (the libwasmtime inside the Python wheel realm's
 * set-up installs, opened with dlopen). Wasmtime's C API adds wasi:http's types but gives a host no
 * way to make the incoming-request and response-outparam that `handle` takes, so this runner is the
 * host of the whole proxy world itself: wasi:http/types, wasi:io (error, poll, streams),
 * wasi:clocks, wasi:random and wasi:cli's stdio, as host resources and functions (wasm-http-*.c).
 * No file system, sockets or environment are offered, and outgoing requests are denied, so a
 * component importing them is refused at push. Every request gets a fresh store and instance with
 * the app's memory cap (the store's limiter), fuel and an epoch deadline. It runs inside a
 * `namespace` sandbox (no network, read-only root, seccomp, its own cgroup and uid), never in the
 * daemon:
 *
 *   realm-wasm-http LIBWASMTIME
 *
 * Records in (u8 tag + u32 big-endian length + bytes), on stdin:
 *   the app: W component · M memory cap · F fuel · T deadline ms · C check only · X end;
 *   then each request: R method · P path and query · S scheme · U authority · H name\0value · B body · X end.
 * Frames out (u8 kind + u32 length + payload), on stdout:
 *   5 the response head (JSON {status, headers}) · 1 body bytes · 2 the component's stdout and stderr ·
 *   3 the result (JSON), last: after the app's load {status: ready|error}, after a request
 *   {status: exit|trap|error, reason?: fuel|deadline|trap, message?, memoryBytes?}.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wasm-deadline.h"
#include "wasm-http.h"
#include "wasm-json.h"

WASMTIME_CORE_API(WASMTIME_POINTER)
WASM_HTTP_API(WASMTIME_POINTER)
WASMTIME_DEFINE_LOADER(WASM_HTTP_API)

struct request *R;

/* ---- frames out: buffered, one write per request for a small answer ---- */
static uint8_t *out_buf;
static size_t out_len, out_cap;

void flush_out(void) {
  size_t done = 0;
  while (done < out_len) {
    ssize_t w = write(1, out_buf + done, out_len - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    done += (size_t)w;
  }
  out_len = 0;
}

void frame(uint8_t kind, const void *data, size_t n) {
  if (out_len + n + 5 > out_cap) {
    out_cap = (out_len + n + 5) * 2;
    out_buf = realloc(out_buf, out_cap);
    if (!out_buf) _exit(1);
  }
  uint8_t *h = out_buf + out_len;
  h[0] = kind, h[1] = (uint8_t)(n >> 24), h[2] = (uint8_t)(n >> 16), h[3] = (uint8_t)(n >> 8), h[4] = (uint8_t)n;
  memcpy(h + 5, data, n);
  out_len += n + 5;
  if (out_len >= (64u << 10)) flush_out();
}

int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* ---- records in ---- */
static uint8_t in_buf[1 << 16];
static size_t in_pos, in_len;

/* n bytes of stdin into `to`; false when it ends first */
static bool read_in(uint8_t *to, size_t n) {
  while (n) {
    if (in_pos == in_len) {
      ssize_t r = read(0, in_buf, sizeof in_buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      in_pos = 0, in_len = (size_t)r;
    }
    size_t k = in_len - in_pos < n ? in_len - in_pos : n;
    memcpy(to, in_buf + in_pos, k);
    in_pos += k, to += k, n -= k;
  }
  return true;
}

struct rec { uint8_t tag; uint8_t *v; size_t n; };
static struct rec *recs;
static size_t nrecs, recs_cap;

/* One batch of records, up to 'X' (the previous batch's freed); false at the end of stdin. */
static bool records(void) {
  for (size_t i = 0; i < nrecs; i++) free(recs[i].v);
  nrecs = 0;
  for (;;) {
    uint8_t h[5];
    if (!read_in(h, 5)) return false;
    size_t n = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
    uint8_t *v = malloc(n + 1);
    if (!v) _exit(1);
    if (!read_in(v, n)) return false;
    v[n] = 0;
    if (h[0] == 'X') return free(v), true;
    if (nrecs == recs_cap) {
      recs_cap = recs_cap ? recs_cap * 2 : 16;
      recs = realloc(recs, recs_cap * sizeof *recs);
      if (!recs) _exit(1);
    }
    recs[nrecs++] = (struct rec){h[0], v, n};
  }
}

static struct rec *find(uint8_t tag) {
  for (size_t i = 0; i < nrecs; i++)
    if (recs[i].tag == tag) return &recs[i];
  return NULL;
}

/* ---- host functions: one callback, the function (its id and argument shape) as its data ---- */
struct host_func { int id; const char *name, *sig; };

static bool is_bytes(const cval_t *v) {
  if (v->kind != CV_LIST) return false;
  for (size_t i = 0; i < v->of.list.size; i++)
    if (v->of.list.data[i].kind != CV_U8) return false;
  return true;
}

/* A value with no resource in it (kept by the host and given back later as it came). */
static bool plain(const cval_t *v) {
  switch (v->kind) {
    case CV_RESOURCE: return false;
    case CV_OPTION: return !v->of.option || plain(v->of.option);
    case CV_RESULT: return !v->of.result.val || plain(v->of.result.val);
    case CV_VARIANT: return !v->of.variant.val || plain(v->of.variant.val);
    case CV_LIST:
    case CV_TUPLE:
      for (size_t i = 0; i < v->of.list.size; i++)
        if (!plain(&v->of.list.data[i])) return false;
      return true;
    case CV_RECORD:
      for (size_t i = 0; i < v->of.record.size; i++)
        if (!plain(&v->of.record.data[i].val)) return false;
      return true;
    default: return v->kind <= 22;
  }
}

static bool shape(char c, const cval_t *v) {
  switch (c) {
    case 'r': return v->kind == CV_RESOURCE && v->of.resource;
    case 's': return v->kind == CV_STRING;
    case 'b': return is_bytes(v);
    case 'w': return v->kind == CV_U16;
    case 'q': return v->kind == CV_U64;
    case 'V': return plain(v);
    case 'o': return v->kind == CV_OPTION && (!v->of.option || shape('r', v->of.option));
    case 'R':
      return v->kind == CV_RESULT && v->of.result.val &&
             (v->of.result.is_ok ? shape('r', v->of.result.val) : v->of.result.val->kind == CV_VARIANT);
    case 'B':
    case 'E':
    case 'L':
      if (v->kind != CV_LIST) return false;
      for (size_t i = 0; i < v->of.list.size; i++) {
        const cval_t *e = &v->of.list.data[i];
        bool ok = c == 'B' ? is_bytes(e)
                  : c == 'L' ? shape('r', e)
                             : e->kind == CV_TUPLE && e->of.tuple.size == 2 && shape('s', &e->of.tuple.data[0]) &&
                                   is_bytes(&e->of.tuple.data[1]);
        if (!ok) return false;
      }
      return true;
    default: return false;
  }
}

static void *host_call(void *data, void *ctx, const void *ty, cval_t *args, size_t nargs, cval_t *results,
                       size_t nresults) {
  (void)ty;
  const struct host_func *f = data;
  if (!R) return wasmtime_error_new("a host function called outside a request");
  if (strcmp(f->sig, "*") != 0) {
    bool ok = nargs == strlen(f->sig);
    for (size_t i = 0; ok && i < nargs; i++) ok = shape(f->sig[i], &args[i]);
    if (!ok) return host_fail("trap", "%s called with arguments of another type than its WIT's", f->name);
  }
  cval_t none = {.kind = CV_BOOL};
  cval_t *res = nresults ? results : &none;
  void *err = f->id >= IO_FIRST ? call_io(f->id, ctx, args, nargs, res) : call_http(f->id, ctx, args, nargs, res);
  if (!nresults) wasmtime_component_val_delete(&none); /* a function declared without its result */
  return err;
}

void *add_func(void *inst, const char *name, int id, const char *sig) {
  struct host_func *f = malloc(sizeof *f); /* lives as long as the linker: the runner's life */
  if (!f) _exit(1);
  *f = (struct host_func){id, name, sig};
  return wasmtime_component_linker_instance_add_func(inst, name, strlen(name), host_call, f, free);
}

void *add_resource(void *inst, const char *name, int type) {
  void *ty = wasmtime_component_resource_type_new_host((uint32_t)type);
  void *err = wasmtime_component_linker_instance_add_resource(inst, name, strlen(name), ty, drop_rep, NULL, NULL);
  wasmtime_component_resource_type_delete(ty);
  return err;
}

/* ---- results ---- */
/* The result frame: {"status": …, then `key: text` pairs (NULL-ended), and memoryBytes when ≥ 0}, flushed. */
static void result(const char *status, long long memory, ...) {
  size_t cap = 256, len = 0;
  char *buf = malloc(cap);
  if (!buf) _exit(1);
  len = (size_t)sprintf(buf, "{\"status\":\"%s\"", status);
  va_list ap;
  va_start(ap, memory);
  for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *)) {
    const char *v = va_arg(ap, const char *);
    char *j = json_string(v, strlen(v));
    size_t need = len + strlen(k) + strlen(j) + 8;
    if (need > cap) buf = realloc(buf, cap = need * 2);
    if (!buf) _exit(1);
    len += (size_t)sprintf(buf + len, ",\"%s\":%s", k, j);
    free(j);
  }
  va_end(ap);
  if (len + 64 > cap) buf = realloc(buf, cap = len + 64);
  if (!buf) _exit(1);
  if (strcmp(status, "exit") == 0) len += (size_t)sprintf(buf + len, ",\"code\":0");
  if (memory >= 0) len += (size_t)sprintf(buf + len, ",\"memoryBytes\":%lld", memory);
  buf[len++] = '}';
  frame(3, buf, len);
  flush_out();
  free(buf);
}

/* An error's text (freed by the caller), the error deleted. */
static char *error_text(void *err) {
  vec_t m = {0, NULL};
  wasmtime_error_message(err, &m);
  size_t n = m.size && m.data[m.size - 1] == 0 ? m.size - 1 : m.size;
  char *s = strndup(m.data ? (const char *)m.data : "", n);
  wasm_byte_vec_delete(&m);
  wasmtime_error_delete(err);
  return s;
}

/* The trap itself: Wasmtime's message is a backtrace, then "Caused by:" and the trap. */
static const char *trap_message(char *text) {
  char *c = text;
  for (char *n = strstr(c, "Caused by:"); n; n = strstr(c, "Caused by:")) c = n + 10;
  while (*c == ' ' || *c == '\n' || *c == '\t') c++;
  size_t len = strlen(c);
  while (len && (c[len - 1] == ' ' || c[len - 1] == '\n' || c[len - 1] == '\t')) c[--len] = 0;
  return strncmp(c, "wasm trap: ", 11) == 0 ? c + 11 : c;
}

static const char *trap_reason(const char *text) {
  return strstr(text, "all fuel consumed") ? "fuel" : strstr(text, "wasm trap: interrupt") ? "deadline" : "trap";
}

/* ---- the app ---- */
static void *engine, *linker, *component, *handle_index;
static uint64_t memory_cap = 64u << 20, fuel, timeout_ms = 10000;

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The component's wasi:http/incoming-handler@0.2.x export, or NULL (then `names` lists its exports). */
static char *handler_export(char **names, size_t cap) {
  void *ty = wasmtime_component_type(component);
  size_t n = wasmtime_component_type_export_count(ty, engine), listed = 0, len = 0;
  char *found = NULL, *list[256];
  static const char P[] = "wasi:http/incoming-handler@0.2.";
  for (size_t i = 0; i < n; i++) {
    const char *name = NULL;
    size_t nlen = 0;
    void *ext = NULL;
    if (!wasmtime_component_type_export_nth(ty, engine, i, &name, &nlen, &ext)) continue;
    if (ext) wasmtime_component_extern_delete(ext);
    bool digits = nlen > sizeof P - 1 && strncmp(name, P, sizeof P - 1) == 0;
    for (size_t k = sizeof P - 1; digits && k < nlen; k++) digits = name[k] >= '0' && name[k] <= '9';
    if (digits && !found) found = strndup(name, nlen);
    if (listed < 256) list[listed++] = strndup(name, nlen);
  }
  wasmtime_component_type_delete(ty);
  qsort(list, listed, sizeof *list, by_name);
  free(*names);
  *names = malloc(cap);
  if (!*names) _exit(1);
  (*names)[0] = 0;
  for (size_t i = 0; i < listed; i++) {
    int w = snprintf(*names + len, cap - len, "%s%s", i ? ", " : "", list[i]);
    if (w > 0 && len + (size_t)w < cap) len += (size_t)w;
    free(list[i]);
  }
  if (!listed) snprintf(*names, cap, "nothing");
  return found;
}

/* The engine, linker and component, `handle`'s index; false after an error result. */
static bool load(void) {
  struct rec *w = find('W'), *m = find('M'), *f = find('F'), *t = find('T');
  if (m) memory_cap = strtoull((char *)m->v, NULL, 10);
  if (f) fuel = strtoull((char *)f->v, NULL, 10);
  if (t) timeout_ms = strtoull((char *)t->v, NULL, 10);
  void *config = wasm_config_new();
  wasmtime_config_epoch_interruption_set(config, true);
  wasmtime_config_consume_fuel_set(config, fuel > 0);
  wasmtime_config_cranelift_opt_level_set(config, 1 /* speed */);
  wasmtime_config_parallel_compilation_set(config, false);
  wasmtime_config_wasm_component_model_set(config, true);
  engine = wasm_engine_new_with_config(config);
  void *err = wasmtime_component_new(engine, w ? w->v : (const uint8_t *)"", w ? w->n : 0, &component);
  if (err) {
    char *text = error_text(err);
    result("error", -1, "error", "WASM_INVALID", "message", trap_message(text), NULL);
    return false;
  }
  char *names = NULL, *export = handler_export(&names, 4096);
  if (!export) {
    char msg[4300];
    snprintf(msg, sizeof msg, "the component exports %s, not wasi:http/incoming-handler@0.2.x (the wasi:http/proxy world)", names);
    result("error", -1, "error", "WASM_UNSUPPORTED", "message", msg, NULL);
    return false;
  }
  free(names);
  void *iface = wasmtime_component_get_export_index(component, NULL, export, strlen(export));
  free(export);
  handle_index = iface ? wasmtime_component_get_export_index(component, iface, "handle", 6) : NULL;
  if (!handle_index) {
    result("error", -1, "error", "WASM_UNSUPPORTED", "message", "the component's incoming-handler has no handle", NULL);
    return false;
  }
  linker = wasmtime_component_linker_new(engine);
  void *root = wasmtime_component_linker_root(linker);
  if (!(err = define_io(root))) err = define_http(root);
  wasmtime_component_linker_instance_delete(root);
  if (err) {
    char *text = error_text(err);
    result("error", -1, "error", "WASM_UNSUPPORTED", "message", text, NULL);
    return false;
  }
  return true;
}

static void *new_store(void) {
  void *store = wasmtime_store_new(engine, NULL, NULL);
  wasmtime_store_limiter(store, (int64_t)memory_cap, 1 << 20, 64, 64, 16);
  void *ctx = wasmtime_store_context(store);
  if (fuel) {
    void *err = wasmtime_context_set_fuel(ctx, fuel);
    if (err) wasmtime_error_delete(err);
  }
  /* The deadline: one epoch tick, given by the timer thread (wasm-deadline.c); Wasmtime checks at
   * function entries and loop headers, so a loop with no calls stops too. */
  wasmtime_context_set_epoch_deadline(ctx, 1);
  return store;
}

static void request_free(struct request *q) {
  for (uint32_t i = 1; q->table && i < q->next; i++) obj_unref(q->table[i]);
  free(q->table);
  fields_free(&q->headers);
  obj_unref(q->answered_headers);
  obj_unref(q->answered_body);
  free(q->pending);
  free(q->error_message);
}

/* Link the component once (no request): every import must be one this runner provides. Its start
 * functions run, with a request's limits. */
static void check(void) {
  struct request q = {.method = "GET", .method_len = 3, .path = "/", .path_len = 1, .scheme = "http", .scheme_len = 4,
                      .authority = "", .next = 1, .memory = memory_cap};
  q.deadline_ns = now_ns() + (int64_t)timeout_ms * 1000000;
  R = &q;
  void *store = new_store();
  cinstance_t inst;
  deadline_start(engine, timeout_ms, wasmtime_engine_increment_epoch);
  void *err = wasmtime_component_linker_instantiate(linker, wasmtime_store_context(store), component, &inst);
  deadline_next();
  wasmtime_store_delete(store);
  if (err) {
    char *text = error_text(err);
    if (q.fail_reason) {
      char msg[600];
      snprintf(msg, sizeof msg, "while instantiated: %s", q.fail_message);
      result("error", -1, "error", "WASM_INVALID", "message", msg, NULL);
    } else if (strstr(text, "wasm trap") || strstr(text, "fuel")) {
      result("error", -1, "error", "WASM_INVALID", "message", trap_message(text), NULL);
    } else {
      char *nl = strchr(text, '\n');
      if (nl) *nl = 0;
      result("error", -1, "error", "WASM_UNSUPPORTED", "message", text, NULL);
    }
    _exit(0);
  }
  R = NULL;
  request_free(&q);
  result("ready", -1, NULL);
}

static int statm = -1;
static long page;

/* The runner's private writable memory (statm's data), or -1 where /proc cannot be read. A store's
 * linear memories are mapped in it as they grow, so its growth during a request is the instance's
 * memory. */
static long long data_bytes(void) {
  char buf[256];
  if (statm < 0) statm = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  ssize_t n = statm < 0 ? -1 : pread(statm, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = 0;
  unsigned long long f[6];
  if (sscanf(buf, "%llu %llu %llu %llu %llu %llu", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]) != 6) return -1;
  return (long long)f[5] * page;
}

static void serve(void) {
  struct request q = {0};
  q.next = 1, q.memory = memory_cap;
  q.method = "GET", q.method_len = 3, q.path = "/", q.path_len = 1, q.scheme = "http", q.scheme_len = 4;
  q.authority = "", q.body = (const uint8_t *)"";
  for (size_t i = 0; i < nrecs; i++) {
    struct rec *r = &recs[i];
    switch (r->tag) {
      case 'R': q.method = (char *)r->v, q.method_len = r->n; break;
      case 'P': q.path = (char *)r->v, q.path_len = r->n; break;
      case 'S': q.scheme = (char *)r->v, q.scheme_len = r->n; break;
      case 'U': q.authority = (char *)r->v, q.authority_len = r->n; break;
      case 'B': q.body = r->v, q.body_len = r->n; break;
      case 'H': {
        uint8_t *z = memchr(r->v, 0, r->n);
        if (z) fields_add(&q.headers, (char *)r->v, (size_t)(z - r->v), z + 1, r->n - (size_t)(z - r->v) - 1);
        break;
      }
      default: break;
    }
  }
  long long before = data_bytes();
  q.deadline_ns = now_ns() + (int64_t)timeout_ms * 1000000;
  R = &q;
  void *store = new_store(), *ctx = wasmtime_store_context(store);
  deadline_start(engine, timeout_ms, wasmtime_engine_increment_epoch);
  cinstance_t inst;
  cfunc_t func;
  void *err = wasmtime_component_linker_instantiate(linker, ctx, component, &inst);
  if (!err && !wasmtime_component_instance_get_func(&inst, ctx, handle_index, &func))
    err = wasmtime_error_new("the component's handle is not a function");
  if (!err) {
    cval_t args[2] = {{0}, {0}};
    struct obj *req = obj_new(RT_INCOMING_REQUEST), *out = obj_new(RT_RESPONSE_OUTPARAM);
    if (!(err = ret_own(ctx, &args[0], RT_INCOMING_REQUEST, req)) &&
        !(err = ret_own(ctx, &args[1], RT_RESPONSE_OUTPARAM, out))) {
      err = wasmtime_component_func_call(&func, ctx, args, 2, NULL, 0);
      if (!err) err = wasmtime_component_func_post_return(&func, ctx);
    }
    /* The call took the handles, not the host's memory of them. */
    wasmtime_component_val_delete(&args[0]), wasmtime_component_val_delete(&args[1]);
  }
  deadline_next();
  long long after = data_bytes();
  long long grew = before >= 0 && after >= 0 ? (after > before ? after - before : 0) : -1;
  if (err) {
    char *text = error_text(err);
    if (q.fail_reason) result("trap", grew, "reason", q.fail_reason, "message", q.fail_message, NULL);
    else result("trap", grew, "reason", trap_reason(text), "message", trap_message(text), NULL);
    free(text);
  } else if (!q.answered) {
    result("error", grew, "error", "APP_NO_RESPONSE", "message",
           "handle returned without setting a response (response-outparam.set)", NULL);
  } else if (q.answered == 2) {
    result("error", grew, "error", "APP_ERROR_CODE", "message", q.error_message, NULL);
  } else if (!q.finished) {
    result("error", grew, "error", "APP_BODY_UNFINISHED", "message",
           "the response body was not finished (outgoing-body.finish)", NULL);
  } else {
    result("exit", grew, NULL);
  }
  wasmtime_store_delete(store);
  R = NULL;
  request_free(&q);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: realm-wasm-http LIBWASMTIME\n");
    return 2;
  }
  if (!load_wasmtime("realm-wasm-http", argv[1])) return 2;
  page = sysconf(_SC_PAGESIZE);
  if (!records()) return 2;
  bool check_only = find('C') != NULL;
  if (!load()) return 0;
  check();
  if (check_only) return 0;
  while (records()) serve();
  return 0;
}
