/* realm-wasm-http: the request's resource table, component values, and the response's body as
 * frames (see wasm-http.h). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wasm-http.h"

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) _exit(1);
  return p;
}

/* A host-side end of the request: its reason and message kept, the error returned traps the call. */
void *host_fail(const char *reason, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (R && !R->fail_reason) {
    R->fail_reason = reason;
    vsnprintf(R->fail_message, sizeof R->fail_message, fmt, ap);
  }
  va_end(ap);
  return wasmtime_error_new(R && R->fail_reason ? R->fail_message : "host failure");
}

struct obj *obj_new(int type) {
  struct obj *o = calloc(1, sizeof *o);
  if (!o) _exit(1);
  o->type = type, o->refs = 1;
  return o;
}

void fields_free(struct fields *f) {
  for (size_t i = 0; i < f->n; i++) free(f->e[i].name), free(f->e[i].value);
  free(f->e);
  f->e = NULL, f->n = f->cap = 0;
}

void obj_unref(struct obj *o) {
  if (!o || --o->refs > 0) return;
  switch (o->type) {
    case RT_FIELDS: fields_free(&o->u.fields); break;
    case RT_OUTGOING_RESPONSE: obj_unref(o->u.resp.headers), obj_unref(o->u.resp.body); break;
    case RT_OUTGOING_REQUEST:
      obj_unref(o->u.oreq.headers);
      wasmtime_component_val_delete(&o->u.oreq.method), wasmtime_component_val_delete(&o->u.oreq.path);
      wasmtime_component_val_delete(&o->u.oreq.scheme), wasmtime_component_val_delete(&o->u.oreq.authority);
      break;
    case RT_REQUEST_OPTIONS:
      for (int i = 0; i < 3; i++) wasmtime_component_val_delete(&o->u.opts.t[i]);
      break;
    default: break;
  }
  free(o);
}

uint32_t table_add(struct obj *o) {
  if (R->next >= R->cap) {
    R->cap = R->cap ? R->cap * 2 : 64;
    R->table = realloc(R->table, R->cap * sizeof *R->table);
    if (!R->table) _exit(1);
  }
  R->table[R->next] = o;
  return R->next++;
}

static const char WRONG[] = "a resource handle of the wrong kind or already dropped";

/* A resource argument's object (its type checked); `take`: an own<> the guest gave up, which leaves
 * the table (the caller has the table's reference). */
struct obj *arg_obj(void *ctx, const cval_t *v, int type, bool take, void **err) {
  void *host = NULL;
  if (v->kind != CV_RESOURCE || !v->of.resource) {
    *err = host_fail("trap", WRONG);
    return NULL;
  }
  void *e = wasmtime_component_resource_any_to_host(ctx, v->of.resource, &host);
  if (e) {
    *err = e;
    return NULL;
  }
  uint32_t rep = wasmtime_component_resource_host_rep(host);
  wasmtime_component_resource_host_delete(host);
  struct obj *o = rep < R->next ? R->table[rep] : NULL;
  if (!o || (type && o->type != type)) {
    *err = host_fail("trap", WRONG);
    return NULL;
  }
  if (take) R->table[rep] = NULL;
  return o;
}

/* A new own<> handle of `o` (whose reference the table takes) as the value `out`. */
void *ret_own(void *ctx, cval_t *out, int type, struct obj *o) {
  uint32_t rep = table_add(o);
  void *host = wasmtime_component_resource_host_new(true, rep, (uint32_t)type), *any = NULL;
  void *err = wasmtime_component_resource_host_to_any(ctx, host, &any);
  wasmtime_component_resource_host_delete(host);
  if (err) return err;
  out->kind = CV_RESOURCE;
  out->of.resource = any;
  return NULL;
}

/* A resource's destructor: the guest dropped its handle. */
void *drop_rep(void *data, void *ctx, uint32_t rep) {
  (void)data, (void)ctx;
  if (!R || rep >= R->next || !R->table[rep]) return NULL;
  struct obj *o = R->table[rep];
  R->table[rep] = NULL;
  if (o->type == RT_OUTPUT_STREAM) o->u.out.closed = true;
  obj_unref(o);
  return NULL;
}

void set_string(cval_t *v, const void *s, size_t n) {
  v->kind = CV_STRING;
  wasm_byte_vec_new(&v->of.string, n, s);
}

void set_bytes(cval_t *v, const uint8_t *s, size_t n) {
  v->kind = CV_LIST;
  wasmtime_component_vallist_new_uninit(&v->of.list, n);
  for (size_t i = 0; i < n; i++) v->of.list.data[i].kind = CV_U8, v->of.list.data[i].of.u8 = s[i];
}

cval_t *boxed(cval_t v) { return wasmtime_component_val_new(&v); }

void set_variant(cval_t *v, const char *name, cval_t *payload) {
  v->kind = CV_VARIANT;
  wasm_byte_vec_new(&v->of.variant.discriminant, strlen(name), name);
  v->of.variant.val = payload;
}

void set_result(cval_t *v, bool ok, cval_t *payload) {
  v->kind = CV_RESULT;
  v->of.result.is_ok = ok;
  v->of.result.val = payload;
}

void set_option(cval_t *v, cval_t *payload) {
  v->kind = CV_OPTION;
  v->of.option = payload;
}

void fields_add(struct fields *f, const char *name, size_t nlen, const uint8_t *value, size_t vlen) {
  if (f->n == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 8;
    f->e = realloc(f->e, f->cap * sizeof *f->e);
    if (!f->e) _exit(1);
  }
  struct field *e = &f->e[f->n++];
  e->name = xmalloc(nlen + 1);
  for (size_t i = 0; i < nlen; i++) e->name[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
  e->name[nlen] = 0;
  e->nlen = nlen;
  e->value = xmalloc(vlen);
  memcpy(e->value, value, vlen);
  e->vlen = vlen;
}

/* ---- the response ---- */

static void json_escape(char **buf, size_t *len, size_t *cap, const uint8_t *s, size_t n) {
  if (*len + n * 6 + 3 > *cap) {
    *cap = (*len + n * 6 + 3) * 2;
    *buf = realloc(*buf, *cap);
    if (!*buf) _exit(1);
  }
  char *o = *buf + *len;
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (c == '"' || c == '\\') *o++ = '\\', *o++ = (char)c;
    else if (c < 0x20 || c >= 0x7f) o += sprintf(o, "\\u%04x", c); /* latin-1, as the daemon reads it */
    else *o++ = (char)c;
  }
  *o++ = '"';
  *len = (size_t)(o - *buf);
}

static void append(char **buf, size_t *len, size_t *cap, const char *s) {
  size_t n = strlen(s);
  if (*len + n + 1 > *cap) {
    *cap = (*len + n + 1) * 2;
    *buf = realloc(*buf, *cap);
    if (!*buf) _exit(1);
  }
  memcpy(*buf + *len, s, n);
  *len += n;
}

/* The head (JSON {status, headers}), then the body written before it. */
void send_head(void) {
  struct fields *h = &R->answered_headers->u.fields;
  size_t len = 0, cap = 256;
  char *buf = xmalloc(cap), num[32];
  snprintf(num, sizeof num, "{\"status\":%d,\"headers\":[", R->status);
  append(&buf, &len, &cap, num);
  for (size_t i = 0; i < h->n; i++) {
    append(&buf, &len, &cap, i ? ",[" : "[");
    json_escape(&buf, &len, &cap, (const uint8_t *)h->e[i].name, h->e[i].nlen);
    append(&buf, &len, &cap, ",");
    json_escape(&buf, &len, &cap, h->e[i].value, h->e[i].vlen);
    append(&buf, &len, &cap, "]");
  }
  append(&buf, &len, &cap, "]}");
  frame(5, buf, len);
  free(buf);
  R->head_sent = true;
  if (R->pending_len) frame(1, R->pending, R->pending_len);
  free(R->pending);
  R->pending = NULL, R->pending_len = R->pending_cap = 0;
}

/* What the component wrote: the body (held until the head went out) or its log. */
void *emit(int sink, const uint8_t *data, size_t n) {
  if (!n) return NULL;
  if (sink != 0) {
    frame(2, data, n);
  } else if (R->head_sent) {
    frame(1, data, n);
  } else {
    if (R->pending_len + n > MAX_PENDING)
      return host_fail("trap", "wrote more than %u bytes of body before setting its response", MAX_PENDING);
    if (R->pending_len + n > R->pending_cap) {
      R->pending_cap = (R->pending_len + n) * 2;
      R->pending = realloc(R->pending, R->pending_cap);
      if (!R->pending) _exit(1);
    }
    memcpy(R->pending + R->pending_len, data, n);
    R->pending_len += n;
  }
  return NULL;
}
