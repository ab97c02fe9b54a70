/* realm-wasm-http: wasi:io (error, poll, streams), wasi:clocks, wasi:random and wasi:cli's stdio.
 * Streams are the request's body (read) and the response's body or the app's log (written); a wait
 * on a clock never outlasts the request's deadline. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <time.h>

#include "wasm-http.h"

enum {
  I_ERROR_DEBUG = IO_FIRST, I_READY, I_BLOCK, I_POLL, I_READ, I_SKIP, I_IN_SUBSCRIBE, I_CHECK_WRITE, I_WRITE, I_FLUSH,
  I_ZEROES, I_SPLICE, I_OUT_SUBSCRIBE, C_NOW, C_RESOLUTION, C_SUB_INSTANT, C_SUB_DURATION, W_NOW, W_RESOLUTION,
  RND_BYTES, RND_U64, CLI_STDOUT, CLI_STDERR, CLI_STDIN,
};

struct def { const char *name; int id; const char *sig; };
static const struct def ERROR_FNS[] = {{"[method]error.to-debug-string", I_ERROR_DEBUG, "r"}, {0, 0, 0}};
static const struct def POLL_FNS[] = {
    {"[method]pollable.ready", I_READY, "r"}, {"[method]pollable.block", I_BLOCK, "r"}, {"poll", I_POLL, "L"}, {0, 0, 0}};
static const struct def STREAM_FNS[] = {
    {"[method]input-stream.read", I_READ, "rq"},
    {"[method]input-stream.blocking-read", I_READ, "rq"},
    {"[method]input-stream.skip", I_SKIP, "rq"},
    {"[method]input-stream.blocking-skip", I_SKIP, "rq"},
    {"[method]input-stream.subscribe", I_IN_SUBSCRIBE, "r"},
    {"[method]output-stream.check-write", I_CHECK_WRITE, "r"},
    {"[method]output-stream.write", I_WRITE, "rb"},
    {"[method]output-stream.blocking-write-and-flush", I_WRITE, "rb"},
    {"[method]output-stream.flush", I_FLUSH, "r"},
    {"[method]output-stream.blocking-flush", I_FLUSH, "r"},
    {"[method]output-stream.write-zeroes", I_ZEROES, "rq"},
    {"[method]output-stream.blocking-write-zeroes-and-flush", I_ZEROES, "rq"},
    {"[method]output-stream.splice", I_SPLICE, "rrq"},
    {"[method]output-stream.blocking-splice", I_SPLICE, "rrq"},
    {"[method]output-stream.subscribe", I_OUT_SUBSCRIBE, "r"},
    {0, 0, 0}};
static const struct def MONO_FNS[] = {{"now", C_NOW, ""}, {"resolution", C_RESOLUTION, ""}, {"subscribe-instant", C_SUB_INSTANT, "q"},
                                      {"subscribe-duration", C_SUB_DURATION, "q"}, {0, 0, 0}};
static const struct def WALL_FNS[] = {{"now", W_NOW, ""}, {"resolution", W_RESOLUTION, ""}, {0, 0, 0}};
static const struct def RANDOM_FNS[] = {{"get-random-bytes", RND_BYTES, "q"}, {"get-random-u64", RND_U64, ""}, {0, 0, 0}};
static const struct def STDOUT_FNS[] = {{"get-stdout", CLI_STDOUT, ""}, {0, 0, 0}};
static const struct def STDERR_FNS[] = {{"get-stderr", CLI_STDERR, ""}, {0, 0, 0}};
static const struct def STDIN_FNS[] = {{"get-stdin", CLI_STDIN, ""}, {0, 0, 0}};

static void *instance(void *root, const char *name, const char *r1, int t1, const char *r2, int t2,
                      const struct def *fns) {
  void *inst = NULL, *err;
  if ((err = wasmtime_component_linker_instance_add_instance(root, name, strlen(name), &inst))) return err;
  if (r1 && (err = add_resource(inst, r1, t1))) return err;
  if (r2 && (err = add_resource(inst, r2, t2))) return err;
  for (; fns->name; fns++)
    if ((err = add_func(inst, fns->name, fns->id, fns->sig))) return err;
  wasmtime_component_linker_instance_delete(inst);
  return NULL;
}

void *define_io(void *root) {
  void *err;
  if ((err = instance(root, "wasi:io/error@" VERSION, "error", RT_ERROR, NULL, 0, ERROR_FNS))) return err;
  if ((err = instance(root, "wasi:io/poll@" VERSION, "pollable", RT_POLLABLE, NULL, 0, POLL_FNS))) return err;
  if ((err = instance(root, "wasi:io/streams@" VERSION, "input-stream", RT_INPUT_STREAM, "output-stream",
                      RT_OUTPUT_STREAM, STREAM_FNS)))
    return err;
  if ((err = instance(root, "wasi:clocks/monotonic-clock@" VERSION, NULL, 0, NULL, 0, MONO_FNS))) return err;
  if ((err = instance(root, "wasi:clocks/wall-clock@" VERSION, NULL, 0, NULL, 0, WALL_FNS))) return err;
  if ((err = instance(root, "wasi:random/random@" VERSION, NULL, 0, NULL, 0, RANDOM_FNS))) return err;
  if ((err = instance(root, "wasi:cli/stdout@" VERSION, NULL, 0, NULL, 0, STDOUT_FNS))) return err;
  if ((err = instance(root, "wasi:cli/stderr@" VERSION, NULL, 0, NULL, 0, STDERR_FNS))) return err;
  return instance(root, "wasi:cli/stdin@" VERSION, NULL, 0, NULL, 0, STDIN_FNS);
}

static void sleep_ns(int64_t ns) {
  if (ns <= 0) return;
  struct timespec t = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  while (nanosleep(&t, &t) != 0) {
  }
}

/* Sleep to a monotonic ns instant, but not past the request's deadline (which ends it). */
static void *wait_until(int64_t at) {
  if (at < 0) return NULL;
  flush_out(); /* what the component wrote so far goes out while it waits */
  int64_t now = now_ns();
  if (at > R->deadline_ns) {
    sleep_ns(R->deadline_ns - now);
    return host_fail("deadline", "past its deadline (waiting on a clock)");
  }
  sleep_ns(at - now);
  return NULL;
}

static struct obj *pollable(int64_t at) {
  struct obj *p = obj_new(RT_POLLABLE);
  p->u.pollable.at = at;
  return p;
}

/* result<T, stream-error>: ok(payload) or err(closed) */
static void stream_result(cval_t *res, cval_t *ok_payload, bool closed) {
  if (closed) {
    cval_t e = {0};
    set_variant(&e, "closed", NULL);
    set_result(res, false, boxed(e));
  } else {
    set_result(res, true, ok_payload);
  }
}

static cval_t *u64_val(uint64_t n) {
  cval_t v = {0};
  v.kind = CV_U64, v.of.u64 = n;
  return boxed(v);
}

static void datetime(cval_t *res, uint64_t s, uint32_t ns) {
  res->kind = CV_RECORD;
  wasmtime_component_valrecord_new_uninit(&res->of.record, 2);
  struct crecord_entry *e = res->of.record.data;
  wasm_byte_vec_new(&e[0].name, 7, "seconds");
  e[0].val.kind = CV_U64, e[0].val.of.u64 = s;
  wasm_byte_vec_new(&e[1].name, 11, "nanoseconds");
  e[1].val.kind = CV_U32, e[1].val.of.u32 = ns;
}

#define ARG(i, type)                                                \
  ({                                                                \
    struct obj *o_ = arg_obj(ctx, &args[i], type, false, &err);     \
    if (!o_) return err;                                            \
    o_;                                                             \
  })

/* Bytes read from an input stream (at most n), or NULL at its end; *len their length. */
static const uint8_t *take_input(struct obj *in, uint64_t n, size_t *len) {
  if (in->u.in.pos >= in->u.in.len) return NULL;
  size_t k = in->u.in.len - in->u.in.pos;
  if (n < k) k = (size_t)n;
  if (k > MAX_READ) k = MAX_READ;
  const uint8_t *p = in->u.in.data + in->u.in.pos;
  in->u.in.pos += k;
  *len = k;
  return p;
}

void *call_io(int id, void *ctx, cval_t *args, size_t nargs, cval_t *res) {
  void *err = NULL;
  (void)nargs;
  switch (id) {
    case I_ERROR_DEBUG: ARG(0, RT_ERROR); set_string(res, "", 0); return NULL;
    case I_READY: {
      int64_t at = ARG(0, RT_POLLABLE)->u.pollable.at;
      res->kind = CV_BOOL, res->of.boolean = at < 0 || now_ns() >= at;
      return NULL;
    }
    case I_BLOCK: return wait_until(ARG(0, RT_POLLABLE)->u.pollable.at);
    case I_POLL: {
      size_t n = args[0].of.list.size;
      if (!n) return host_fail("trap", "poll of an empty list");
      int64_t *ats = malloc(n * sizeof *ats), now = now_ns(), first = -1;
      if (!ats) _exit(1);
      size_t ready = 0;
      for (size_t i = 0; i < n; i++) {
        struct obj *p = arg_obj(ctx, &args[0].of.list.data[i], RT_POLLABLE, false, &err);
        if (!p) return free(ats), err;
        ats[i] = p->u.pollable.at;
        if (ats[i] < 0 || ats[i] <= now) ready++;
        else if (first < 0 || ats[i] < first) first = ats[i];
      }
      if (!ready) {
        if ((err = wait_until(first))) return free(ats), err;
        now = first;
      }
      res->kind = CV_LIST;
      size_t k = 0;
      for (size_t i = 0; i < n; i++) k += ats[i] < 0 || ats[i] <= now;
      wasmtime_component_vallist_new_uninit(&res->of.list, k);
      k = 0;
      for (size_t i = 0; i < n; i++)
        if (ats[i] < 0 || ats[i] <= now) res->of.list.data[k].kind = CV_U32, res->of.list.data[k++].of.u32 = (uint32_t)i;
      free(ats);
      return NULL;
    }
    case I_READ: {
      size_t len = 0;
      const uint8_t *p = take_input(ARG(0, RT_INPUT_STREAM), args[1].of.u64, &len);
      cval_t v = {0};
      if (p) set_bytes(&v, p, len);
      stream_result(res, p ? boxed(v) : NULL, !p);
      return NULL;
    }
    case I_SKIP: {
      size_t len = 0;
      const uint8_t *p = take_input(ARG(0, RT_INPUT_STREAM), args[1].of.u64, &len);
      stream_result(res, p ? u64_val(len) : NULL, !p);
      return NULL;
    }
    case I_IN_SUBSCRIBE:
      ARG(0, RT_INPUT_STREAM);
      return ret_own(ctx, res, RT_POLLABLE, pollable(-1));
    case I_OUT_SUBSCRIBE:
      ARG(0, RT_OUTPUT_STREAM);
      return ret_own(ctx, res, RT_POLLABLE, pollable(-1));
    case I_CHECK_WRITE: {
      bool closed = ARG(0, RT_OUTPUT_STREAM)->u.out.closed;
      stream_result(res, closed ? NULL : u64_val(MAX_READ), closed);
      return NULL;
    }
    case I_WRITE:
    case I_ZEROES: {
      struct obj *out = ARG(0, RT_OUTPUT_STREAM);
      if (out->u.out.closed) return stream_result(res, NULL, true), NULL;
      size_t n = id == I_WRITE ? args[1].of.list.size : (size_t)args[1].of.u64;
      if (n > MAX_READ)
        return host_fail("trap", id == I_WRITE ? "a write of more than check-write allowed"
                                               : "write-zeroes of more than check-write allowed");
      uint8_t *buf = calloc(n ? n : 1, 1);
      if (!buf) _exit(1);
      if (id == I_WRITE)
        for (size_t i = 0; i < n; i++) buf[i] = args[1].of.list.data[i].of.u8;
      err = emit(out->u.out.sink, buf, n);
      free(buf);
      if (err) return err;
      return stream_result(res, NULL, false), NULL;
    }
    case I_FLUSH: return stream_result(res, NULL, ARG(0, RT_OUTPUT_STREAM)->u.out.closed), NULL;
    case I_SPLICE: {
      struct obj *out = ARG(0, RT_OUTPUT_STREAM), *in = ARG(1, RT_INPUT_STREAM);
      size_t len = 0;
      const uint8_t *p = take_input(in, args[2].of.u64, &len);
      if (!p || out->u.out.closed) return stream_result(res, NULL, true), NULL;
      if ((err = emit(out->u.out.sink, p, len))) return err;
      stream_result(res, u64_val(len), false);
      return NULL;
    }
    case C_NOW: res->kind = CV_U64, res->of.u64 = (uint64_t)now_ns(); return NULL;
    case C_RESOLUTION: res->kind = CV_U64, res->of.u64 = 1; return NULL;
    case C_SUB_INSTANT: return ret_own(ctx, res, RT_POLLABLE, pollable((int64_t)args[0].of.u64));
    case C_SUB_DURATION: {
      uint64_t d = args[0].of.u64, at = (uint64_t)now_ns() + d;
      return ret_own(ctx, res, RT_POLLABLE, pollable(at > INT64_MAX || at < d ? INT64_MAX : (int64_t)at));
    }
    case W_NOW: {
      struct timespec t;
      clock_gettime(CLOCK_REALTIME, &t);
      datetime(res, (uint64_t)t.tv_sec, (uint32_t)t.tv_nsec);
      return NULL;
    }
    case W_RESOLUTION: datetime(res, 0, 1); return NULL;
    case RND_BYTES: {
      uint64_t n = args[0].of.u64;
      if (n > R->memory) return host_fail("trap", "asked for more random bytes than its memory cap");
      uint8_t *buf = malloc(n ? n : 1);
      if (!buf) _exit(1);
      for (size_t got = 0; got < n;) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r > 0) got += (size_t)r;
      }
      set_bytes(res, buf, n);
      free(buf);
      return NULL;
    }
    case RND_U64: {
      uint64_t v = 0;
      while (getrandom(&v, sizeof v, 0) != sizeof v) {
      }
      res->kind = CV_U64, res->of.u64 = v;
      return NULL;
    }
    case CLI_STDOUT:
    case CLI_STDERR: {
      struct obj *s = obj_new(RT_OUTPUT_STREAM);
      s->u.out.sink = 2;
      return ret_own(ctx, res, RT_OUTPUT_STREAM, s);
    }
    case CLI_STDIN: return ret_own(ctx, res, RT_INPUT_STREAM, obj_new(RT_INPUT_STREAM));
    default: return host_fail("trap", "an unknown host function");
  }
}
