/* realm-wasm-http: wasi:http/types and wasi:http/outgoing-handler — the incoming request, fields,
 * the response and its body. Outgoing requests can be built but never sent (apps have no network). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "wasm-http.h"

enum {
  F_ERROR_CODE = 1, F_FIELDS_NEW, F_FIELDS_FROM_LIST, F_FIELDS_GET, F_FIELDS_HAS, F_FIELDS_SET, F_FIELDS_DELETE,
  F_FIELDS_APPEND, F_FIELDS_ENTRIES, F_FIELDS_CLONE, F_REQ_METHOD, F_REQ_PATH, F_REQ_SCHEME, F_REQ_AUTHORITY,
  F_REQ_HEADERS, F_REQ_CONSUME, F_INBODY_STREAM, F_INBODY_FINISH, F_TRAILERS_SUBSCRIBE, F_TRAILERS_GET, F_RESP_NEW,
  F_RESP_STATUS, F_RESP_SET_STATUS, F_RESP_HEADERS, F_RESP_BODY, F_BODY_WRITE, F_BODY_FINISH, F_OUTPARAM_SET,
  F_OREQ_NEW, F_OREQ_BODY, F_OREQ_GET, F_OREQ_SET = F_OREQ_GET + 4, F_OREQ_HEADERS = F_OREQ_SET + 4, F_OPTS_NEW,
  F_OPTS_GET, F_OPTS_SET = F_OPTS_GET + 3, F_NEVER = F_OPTS_SET + 3, F_OUTGOING_HANDLE,
};

static const char *RESOURCES[] = {"fields", "incoming-request", "outgoing-request", "request-options",
                                  "response-outparam", "incoming-response", "incoming-body", "future-trailers",
                                  "outgoing-response", "outgoing-body", "future-incoming-response"};
static const int RESOURCE_TYPES[] = {RT_FIELDS, RT_INCOMING_REQUEST, RT_OUTGOING_REQUEST, RT_REQUEST_OPTIONS,
                                     RT_RESPONSE_OUTPARAM, RT_INCOMING_RESPONSE, RT_INCOMING_BODY,
                                     RT_FUTURE_TRAILERS, RT_OUTGOING_RESPONSE, RT_OUTGOING_BODY,
                                     RT_FUTURE_INCOMING_RESPONSE};
static const struct { const char *name; int id; const char *sig; } FUNCS[] = {
    {"http-error-code", F_ERROR_CODE, "r"},
    {"[constructor]fields", F_FIELDS_NEW, ""},
    {"[static]fields.from-list", F_FIELDS_FROM_LIST, "E"},
    {"[method]fields.get", F_FIELDS_GET, "rs"},
    {"[method]fields.has", F_FIELDS_HAS, "rs"},
    {"[method]fields.set", F_FIELDS_SET, "rsB"},
    {"[method]fields.delete", F_FIELDS_DELETE, "rs"},
    {"[method]fields.append", F_FIELDS_APPEND, "rsb"},
    {"[method]fields.entries", F_FIELDS_ENTRIES, "r"},
    {"[method]fields.clone", F_FIELDS_CLONE, "r"},
    {"[method]incoming-request.method", F_REQ_METHOD, "r"},
    {"[method]incoming-request.path-with-query", F_REQ_PATH, "r"},
    {"[method]incoming-request.scheme", F_REQ_SCHEME, "r"},
    {"[method]incoming-request.authority", F_REQ_AUTHORITY, "r"},
    {"[method]incoming-request.headers", F_REQ_HEADERS, "r"},
    {"[method]incoming-request.consume", F_REQ_CONSUME, "r"},
    {"[method]incoming-body.stream", F_INBODY_STREAM, "r"},
    {"[static]incoming-body.finish", F_INBODY_FINISH, "r"},
    {"[method]future-trailers.subscribe", F_TRAILERS_SUBSCRIBE, "r"},
    {"[method]future-trailers.get", F_TRAILERS_GET, "r"},
    {"[constructor]outgoing-response", F_RESP_NEW, "r"},
    {"[method]outgoing-response.status-code", F_RESP_STATUS, "r"},
    {"[method]outgoing-response.set-status-code", F_RESP_SET_STATUS, "rw"},
    {"[method]outgoing-response.headers", F_RESP_HEADERS, "r"},
    {"[method]outgoing-response.body", F_RESP_BODY, "r"},
    {"[method]outgoing-body.write", F_BODY_WRITE, "r"},
    {"[static]outgoing-body.finish", F_BODY_FINISH, "ro"},
    {"[static]response-outparam.set", F_OUTPARAM_SET, "rR"},
    {"[constructor]outgoing-request", F_OREQ_NEW, "r"},
    {"[method]outgoing-request.body", F_OREQ_BODY, "r"},
    {"[method]outgoing-request.method", F_OREQ_GET + 0, "r"},
    {"[method]outgoing-request.path-with-query", F_OREQ_GET + 1, "r"},
    {"[method]outgoing-request.scheme", F_OREQ_GET + 2, "r"},
    {"[method]outgoing-request.authority", F_OREQ_GET + 3, "r"},
    {"[method]outgoing-request.set-method", F_OREQ_SET + 0, "rV"},
    {"[method]outgoing-request.set-path-with-query", F_OREQ_SET + 1, "rV"},
    {"[method]outgoing-request.set-scheme", F_OREQ_SET + 2, "rV"},
    {"[method]outgoing-request.set-authority", F_OREQ_SET + 3, "rV"},
    {"[method]outgoing-request.headers", F_OREQ_HEADERS, "r"},
    {"[constructor]request-options", F_OPTS_NEW, ""},
    {"[method]request-options.connect-timeout", F_OPTS_GET + 0, "r"},
    {"[method]request-options.first-byte-timeout", F_OPTS_GET + 1, "r"},
    {"[method]request-options.between-bytes-timeout", F_OPTS_GET + 2, "r"},
    {"[method]request-options.set-connect-timeout", F_OPTS_SET + 0, "rV"},
    {"[method]request-options.set-first-byte-timeout", F_OPTS_SET + 1, "rV"},
    {"[method]request-options.set-between-bytes-timeout", F_OPTS_SET + 2, "rV"},
    /* Never made (no request is ever sent), but part of the interface. */
    {"[method]incoming-response.status", F_NEVER, "*"},
    {"[method]incoming-response.headers", F_NEVER, "*"},
    {"[method]incoming-response.consume", F_NEVER, "*"},
    {"[method]future-incoming-response.subscribe", F_NEVER, "*"},
    {"[method]future-incoming-response.get", F_NEVER, "*"},
};

void *define_http(void *root) {
  void *t = NULL, *o = NULL, *err;
  const char *types = "wasi:http/types@" VERSION, *handler = "wasi:http/outgoing-handler@" VERSION;
  if ((err = wasmtime_component_linker_instance_add_instance(root, types, strlen(types), &t))) return err;
  for (size_t i = 0; i < sizeof RESOURCES / sizeof *RESOURCES; i++)
    if ((err = add_resource(t, RESOURCES[i], RESOURCE_TYPES[i]))) return err;
  for (size_t i = 0; i < sizeof FUNCS / sizeof *FUNCS; i++)
    if ((err = add_func(t, FUNCS[i].name, FUNCS[i].id, FUNCS[i].sig))) return err;
  wasmtime_component_linker_instance_delete(t);
  if ((err = wasmtime_component_linker_instance_add_instance(root, handler, strlen(handler), &o))) return err;
  if ((err = add_func(o, "handle", F_OUTGOING_HANDLE, "ro"))) return err;
  wasmtime_component_linker_instance_delete(o);
  return NULL;
}

/* ---- fields ---- */

static bool token(const uint8_t *s, size_t n) {
  if (!n) return false;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || strchr("!#$%&'*+-.^_`|~", c)) ||
        c == 0)
      return false;
  }
  return true;
}

static bool valid_value(const cval_t *v) {
  for (size_t i = 0; i < v->of.list.size; i++) {
    uint8_t c = v->of.list.data[i].of.u8;
    if (c == '\r' || c == '\n' || c == 0) return false;
  }
  return true;
}

/* Hop-by-hop headers the gateway's own HTTP server sets; a component may not. */
static bool forbidden(const uint8_t *s, size_t n) {
  static const char *NAMES[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
                                "te", "host", "http2-settings"};
  for (size_t i = 0; i < sizeof NAMES / sizeof *NAMES; i++)
    if (strlen(NAMES[i]) == n && strncasecmp(NAMES[i], (const char *)s, n) == 0) return true;
  return false;
}

/* The header-error for setting `name` to `values` (n of them), or NULL. */
static const char *check_field(const struct fields *f, const vec_t *name, const cval_t *values, size_t n) {
  if (f->immutable) return "immutable";
  if (!token(name->data, name->size)) return "invalid-syntax";
  for (size_t i = 0; i < n; i++)
    if (!valid_value(&values[i])) return "invalid-syntax";
  if (forbidden(name->data, name->size)) return "forbidden";
  return NULL;
}

static bool same_name(const struct field *e, const vec_t *name) {
  return e->nlen == name->size && strncasecmp(e->name, (const char *)name->data, e->nlen) == 0;
}

static void fields_remove(struct fields *f, const vec_t *name) {
  size_t k = 0;
  for (size_t i = 0; i < f->n; i++) {
    if (same_name(&f->e[i], name)) free(f->e[i].name), free(f->e[i].value);
    else f->e[k++] = f->e[i];
  }
  f->n = k;
}

static void add_value(struct fields *f, const vec_t *name, const cval_t *v) {
  size_t n = v->of.list.size;
  uint8_t *b = malloc(n ? n : 1);
  if (!b) _exit(1);
  for (size_t i = 0; i < n; i++) b[i] = v->of.list.data[i].of.u8;
  fields_add(f, (const char *)name->data, name->size, b, n);
  free(b);
}

/* result<_, header-error> */
static void header_result(cval_t *res, const char *error) {
  cval_t e = {0};
  if (error) set_variant(&e, error, NULL);
  set_result(res, error == NULL, error ? boxed(e) : NULL);
}

static void entries_list(cval_t *res, const struct fields *f) {
  res->kind = CV_LIST;
  wasmtime_component_vallist_new_uninit(&res->of.list, f->n);
  for (size_t i = 0; i < f->n; i++) {
    cval_t *t = &res->of.list.data[i];
    t->kind = CV_TUPLE;
    wasmtime_component_valtuple_new_uninit(&t->of.tuple, 2);
    set_string(&t->of.tuple.data[0], f->e[i].name, f->e[i].nlen);
    set_bytes(&t->of.tuple.data[1], f->e[i].value, f->e[i].vlen);
  }
}

static struct obj *fields_copy(const struct fields *from, bool immutable) {
  struct obj *o = obj_new(RT_FIELDS);
  for (size_t i = 0; i < from->n; i++)
    fields_add(&o->u.fields, from->e[i].name, from->e[i].nlen, from->e[i].value, from->e[i].vlen);
  o->u.fields.immutable = immutable;
  return o;
}

static const char *KNOWN_METHODS[] = {"get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"};

/* option<string> of bytes */
static void some_string(cval_t *res, const char *s, size_t n) {
  cval_t v = {0};
  set_string(&v, s, n);
  set_option(res, boxed(v));
}

static void *stored(cval_t *res, const cval_t *v) {
  wasmtime_component_val_clone(v, res);
  return NULL;
}

#define ARG(i, type, take)                                          \
  ({                                                                \
    struct obj *o_ = arg_obj(ctx, &args[i], type, take, &err);      \
    if (!o_) return err;                                            \
    o_;                                                             \
  })

void *call_http(int id, void *ctx, cval_t *args, size_t nargs, cval_t *res) {
  void *err = NULL;
  (void)nargs;
  switch (id) {
    case F_ERROR_CODE: set_option(res, NULL); return NULL;
    case F_FIELDS_NEW: return ret_own(ctx, res, RT_FIELDS, obj_new(RT_FIELDS));
    case F_FIELDS_FROM_LIST: {
      struct fields probe = {0};
      const cvallist_t *l = &args[0].of.list;
      for (size_t i = 0; i < l->size; i++) {
        const char *e = check_field(&probe, &l->data[i].of.tuple.data[0].of.string, &l->data[i].of.tuple.data[1], 1);
        if (e) return header_result(res, e), NULL;
      }
      struct obj *o = obj_new(RT_FIELDS);
      for (size_t i = 0; i < l->size; i++) add_value(&o->u.fields, &l->data[i].of.tuple.data[0].of.string, &l->data[i].of.tuple.data[1]);
      cval_t v = {0};
      if ((err = ret_own(ctx, &v, RT_FIELDS, o))) return err;
      set_result(res, true, boxed(v));
      return NULL;
    }
    case F_FIELDS_GET:
    case F_FIELDS_HAS: {
      struct fields *f = &ARG(0, RT_FIELDS, false)->u.fields;
      const vec_t *name = &args[1].of.string;
      size_t n = 0;
      for (size_t i = 0; i < f->n; i++) n += same_name(&f->e[i], name);
      if (id == F_FIELDS_HAS) {
        res->kind = CV_BOOL, res->of.boolean = n > 0;
        return NULL;
      }
      res->kind = CV_LIST;
      wasmtime_component_vallist_new_uninit(&res->of.list, n);
      for (size_t i = 0, k = 0; i < f->n; i++)
        if (same_name(&f->e[i], name)) set_bytes(&res->of.list.data[k++], f->e[i].value, f->e[i].vlen);
      return NULL;
    }
    case F_FIELDS_SET: {
      struct fields *f = &ARG(0, RT_FIELDS, false)->u.fields;
      const char *e = check_field(f, &args[1].of.string, args[2].of.list.data, args[2].of.list.size);
      if (!e) {
        fields_remove(f, &args[1].of.string);
        for (size_t i = 0; i < args[2].of.list.size; i++) add_value(f, &args[1].of.string, &args[2].of.list.data[i]);
      }
      return header_result(res, e), NULL;
    }
    case F_FIELDS_DELETE: {
      struct fields *f = &ARG(0, RT_FIELDS, false)->u.fields;
      if (!f->immutable) fields_remove(f, &args[1].of.string);
      return header_result(res, f->immutable ? "immutable" : NULL), NULL;
    }
    case F_FIELDS_APPEND: {
      struct fields *f = &ARG(0, RT_FIELDS, false)->u.fields;
      const char *e = check_field(f, &args[1].of.string, &args[2], 1);
      if (!e) add_value(f, &args[1].of.string, &args[2]);
      return header_result(res, e), NULL;
    }
    case F_FIELDS_ENTRIES: entries_list(res, &ARG(0, RT_FIELDS, false)->u.fields); return NULL;
    case F_FIELDS_CLONE: {
      struct obj *o = fields_copy(&ARG(0, RT_FIELDS, false)->u.fields, false);
      return ret_own(ctx, res, RT_FIELDS, o);
    }
    case F_REQ_METHOD: {
      ARG(0, RT_INCOMING_REQUEST, false);
      char lower[16] = {0};
      const char *known = NULL;
      if (R->method_len < sizeof lower) {
        for (size_t i = 0; i < R->method_len; i++) lower[i] = (char)(R->method[i] | (R->method[i] >= 'A' && R->method[i] <= 'Z' ? 32 : 0));
        for (size_t i = 0; i < sizeof KNOWN_METHODS / sizeof *KNOWN_METHODS; i++)
          if (strcmp(lower, KNOWN_METHODS[i]) == 0) known = KNOWN_METHODS[i];
      }
      if (known) {
        set_variant(res, known, NULL);
      } else {
        cval_t s = {0};
        set_string(&s, R->method, R->method_len);
        set_variant(res, "other", boxed(s));
      }
      return NULL;
    }
    case F_REQ_PATH: ARG(0, RT_INCOMING_REQUEST, false); some_string(res, R->path, R->path_len); return NULL;
    case F_REQ_AUTHORITY:
      ARG(0, RT_INCOMING_REQUEST, false);
      some_string(res, R->authority, R->authority_len);
      return NULL;
    case F_REQ_SCHEME: {
      ARG(0, RT_INCOMING_REQUEST, false);
      cval_t v = {0};
      set_variant(&v, R->scheme_len == 5 && memcmp(R->scheme, "https", 5) == 0 ? "HTTPS" : "HTTP", NULL);
      set_option(res, boxed(v));
      return NULL;
    }
    case F_REQ_HEADERS:
      ARG(0, RT_INCOMING_REQUEST, false);
      return ret_own(ctx, res, RT_FIELDS, fields_copy(&R->headers, true));
    case F_REQ_CONSUME: {
      struct obj *req = ARG(0, RT_INCOMING_REQUEST, false);
      if (req->u.inreq.consumed) return set_result(res, false, NULL), NULL;
      req->u.inreq.consumed = true;
      cval_t v = {0};
      if ((err = ret_own(ctx, &v, RT_INCOMING_BODY, obj_new(RT_INCOMING_BODY)))) return err;
      set_result(res, true, boxed(v));
      return NULL;
    }
    case F_INBODY_STREAM: {
      struct obj *b = ARG(0, RT_INCOMING_BODY, false);
      if (b->u.inbody.stream_taken) return set_result(res, false, NULL), NULL;
      b->u.inbody.stream_taken = true;
      struct obj *in = obj_new(RT_INPUT_STREAM);
      in->u.in.data = R->body, in->u.in.len = R->body_len;
      cval_t v = {0};
      if ((err = ret_own(ctx, &v, RT_INPUT_STREAM, in))) return err;
      set_result(res, true, boxed(v));
      return NULL;
    }
    case F_INBODY_FINISH:
      obj_unref(ARG(0, RT_INCOMING_BODY, true));
      return ret_own(ctx, res, RT_FUTURE_TRAILERS, obj_new(RT_FUTURE_TRAILERS));
    case F_TRAILERS_SUBSCRIBE: {
      ARG(0, RT_FUTURE_TRAILERS, false);
      struct obj *p = obj_new(RT_POLLABLE);
      p->u.pollable.at = -1;
      return ret_own(ctx, res, RT_POLLABLE, p);
    }
    case F_TRAILERS_GET: { /* some(ok(ok(none))): the request had no trailers */
      ARG(0, RT_FUTURE_TRAILERS, false);
      cval_t none = {0}, inner = {0}, outer = {0};
      set_option(&none, NULL);
      set_result(&inner, true, boxed(none));
      set_result(&outer, true, boxed(inner));
      set_option(res, boxed(outer));
      return NULL;
    }
    case F_RESP_NEW: {
      struct obj *h = ARG(0, RT_FIELDS, true), *r = obj_new(RT_OUTGOING_RESPONSE);
      r->u.resp.status = 200, r->u.resp.headers = h;
      return ret_own(ctx, res, RT_OUTGOING_RESPONSE, r);
    }
    case F_RESP_STATUS:
      res->kind = CV_U16, res->of.u16 = (uint16_t)ARG(0, RT_OUTGOING_RESPONSE, false)->u.resp.status;
      return NULL;
    case F_RESP_SET_STATUS: {
      struct obj *r = ARG(0, RT_OUTGOING_RESPONSE, false);
      uint16_t code = args[1].of.u16;
      if (code < 100 || code > 999) return set_result(res, false, NULL), NULL;
      r->u.resp.status = code;
      return set_result(res, true, NULL), NULL;
    }
    case F_RESP_HEADERS: {
      struct obj *h = ARG(0, RT_OUTGOING_RESPONSE, false)->u.resp.headers;
      h->refs++;
      return ret_own(ctx, res, RT_FIELDS, h);
    }
    case F_RESP_BODY: {
      struct obj *r = ARG(0, RT_OUTGOING_RESPONSE, false);
      if (r->u.resp.body) return set_result(res, false, NULL), NULL;
      r->u.resp.body = obj_new(RT_OUTGOING_BODY);
      r->u.resp.body->refs++;
      cval_t v = {0};
      if ((err = ret_own(ctx, &v, RT_OUTGOING_BODY, r->u.resp.body))) return err;
      set_result(res, true, boxed(v));
      return NULL;
    }
    case F_BODY_WRITE: {
      struct obj *b = ARG(0, RT_OUTGOING_BODY, false);
      if (b->u.obody.stream_taken) return set_result(res, false, NULL), NULL;
      b->u.obody.stream_taken = true;
      struct obj *s = obj_new(RT_OUTPUT_STREAM);
      s->u.out.sink = 0;
      cval_t v = {0};
      if ((err = ret_own(ctx, &v, RT_OUTPUT_STREAM, s))) return err;
      set_result(res, true, boxed(v));
      return NULL;
    }
    case F_BODY_FINISH: {
      struct obj *b = ARG(0, RT_OUTGOING_BODY, true);
      if (args[1].of.option) {
        struct obj *t = arg_obj(ctx, args[1].of.option, RT_FIELDS, true, &err);
        if (!t) return obj_unref(b), err;
        obj_unref(t); /* HTTP/1.1 responses here carry no trailers */
      }
      b->u.obody.finished = true;
      if (R->answered == 1 && R->answered_body == b) R->finished = true;
      obj_unref(b);
      return set_result(res, true, NULL), NULL;
    }
    case F_OUTPARAM_SET: {
      obj_unref(ARG(0, RT_RESPONSE_OUTPARAM, true));
      if (R->answered) return host_fail("trap", "response-outparam.set called twice");
      const cresult_t *r = &args[1].of.result;
      if (!r->is_ok) {
        char msg[600];
        const cval_t *e = r->val;
        int n = snprintf(msg, sizeof msg, "the component answered with error-code %.*s", e ? (int)e->of.variant.discriminant.size : 0,
                         e ? (const char *)e->of.variant.discriminant.data : "");
        const cval_t *p = e ? e->of.variant.val : NULL;
        if (p && p->kind == CV_OPTION) p = p->of.option;
        if (p && p->kind == CV_STRING && n > 0 && (size_t)n < sizeof msg)
          snprintf(msg + n, sizeof msg - (size_t)n, ": %.*s", (int)p->of.string.size, (const char *)p->of.string.data);
        R->answered = 2;
        R->error_message = strdup(msg);
        return NULL;
      }
      struct obj *resp = arg_obj(ctx, r->val, RT_OUTGOING_RESPONSE, true, &err);
      if (!resp) return err;
      R->answered = 1;
      R->status = resp->u.resp.status;
      R->answered_headers = resp->u.resp.headers, resp->u.resp.headers = NULL;
      R->answered_body = resp->u.resp.body, resp->u.resp.body = NULL;
      obj_unref(resp);
      /* A response whose body was never asked for has none (a 204, a redirect). */
      if (!R->answered_body || R->answered_body->u.obody.finished) R->finished = true;
      send_head();
      return NULL;
    }
    case F_OREQ_NEW: {
      struct obj *h = ARG(0, RT_FIELDS, true), *q = obj_new(RT_OUTGOING_REQUEST);
      q->u.oreq.headers = h;
      set_variant(&q->u.oreq.method, "get", NULL);
      set_option(&q->u.oreq.path, NULL), set_option(&q->u.oreq.scheme, NULL), set_option(&q->u.oreq.authority, NULL);
      return ret_own(ctx, res, RT_OUTGOING_REQUEST, q);
    }
    case F_OREQ_BODY: {
      struct obj *q = ARG(0, RT_OUTGOING_REQUEST, false);
      if (q->u.oreq.body_taken) return set_result(res, false, NULL), NULL;
      q->u.oreq.body_taken = true;
      cval_t v = {0};
      if ((err = ret_own(ctx, &v, RT_OUTGOING_BODY, obj_new(RT_OUTGOING_BODY)))) return err;
      set_result(res, true, boxed(v));
      return NULL;
    }
    case F_OREQ_GET + 0: case F_OREQ_GET + 1: case F_OREQ_GET + 2: case F_OREQ_GET + 3:
    case F_OREQ_SET + 0: case F_OREQ_SET + 1: case F_OREQ_SET + 2: case F_OREQ_SET + 3: {
      struct obj *q = ARG(0, RT_OUTGOING_REQUEST, false);
      cval_t *slots[] = {&q->u.oreq.method, &q->u.oreq.path, &q->u.oreq.scheme, &q->u.oreq.authority};
      if (id < F_OREQ_SET) return stored(res, slots[id - F_OREQ_GET]);
      cval_t *slot = slots[id - F_OREQ_SET];
      wasmtime_component_val_delete(slot);
      wasmtime_component_val_clone(&args[1], slot);
      return set_result(res, true, NULL), NULL;
    }
    case F_OREQ_HEADERS: {
      struct obj *h = ARG(0, RT_OUTGOING_REQUEST, false)->u.oreq.headers;
      h->refs++;
      return ret_own(ctx, res, RT_FIELDS, h);
    }
    case F_OPTS_NEW: {
      struct obj *o = obj_new(RT_REQUEST_OPTIONS);
      for (int i = 0; i < 3; i++) set_option(&o->u.opts.t[i], NULL);
      return ret_own(ctx, res, RT_REQUEST_OPTIONS, o);
    }
    case F_OPTS_GET + 0: case F_OPTS_GET + 1: case F_OPTS_GET + 2:
    case F_OPTS_SET + 0: case F_OPTS_SET + 1: case F_OPTS_SET + 2: {
      struct obj *o = ARG(0, RT_REQUEST_OPTIONS, false);
      if (id < F_OPTS_SET) return stored(res, &o->u.opts.t[id - F_OPTS_GET]);
      cval_t *slot = &o->u.opts.t[id - F_OPTS_SET];
      wasmtime_component_val_delete(slot);
      wasmtime_component_val_clone(&args[1], slot);
      return set_result(res, true, NULL), NULL;
    }
    case F_OUTGOING_HANDLE: {
      obj_unref(ARG(0, RT_OUTGOING_REQUEST, true));
      if (args[1].of.option) {
        struct obj *o = arg_obj(ctx, args[1].of.option, RT_REQUEST_OPTIONS, true, &err);
        if (!o) return err;
        obj_unref(o);
      }
      cval_t e = {0};
      set_variant(&e, "HTTP-request-denied", NULL);
      set_result(res, false, boxed(e));
      return NULL;
    }
    default: return host_fail("trap", "a resource handle of the wrong kind or already dropped");
  }
}
