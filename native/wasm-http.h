/*
 * realm-wasm-http: the gateway's host of the wasi:http/proxy world (see realm-wasm-http.c). This
 * header has the part of Wasmtime's C API only it calls (what realm-wasm calls too is in
 * wasmtime-api.h, declared the same way), and what the host's files share: the request's state
 * and its resource table.
 */
#ifndef REALM_WASM_HTTP_H
#define REALM_WASM_HTTP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wasmtime-api.h"

/* ---- Wasmtime's C API (v49): what both hosts call is in wasmtime-api.h ---- */
typedef struct cval cval_t;                          /* wasmtime_component_val_t */
typedef struct { size_t size; cval_t *data; } cvallist_t; /* list, tuple (and flags' layout) */
typedef struct { vec_t discriminant; cval_t *val; } cvariant_t;
typedef struct { bool is_ok; cval_t *val; } cresult_t;
typedef struct { size_t size; struct crecord_entry *data; } crecord_t;
struct cval {
  uint8_t kind;
  union {
    bool boolean;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    vec_t string;
    cvallist_t list;
    crecord_t record;
    cvallist_t tuple;
    cvariant_t variant;
    vec_t enumeration;
    cval_t *option;
    cresult_t result;
    void *resource; /* wasmtime_component_resource_any_t * */
    uint8_t pad[24];
  } of;
};
struct crecord_entry { vec_t name; cval_t val; };
_Static_assert(sizeof(cval_t) == 32, "wasmtime_component_val_t is 32 bytes");

enum {
  CV_BOOL = 0, CV_U8 = 2, CV_U16 = 4, CV_U32 = 6, CV_U64 = 8, CV_STRING = 12, CV_LIST = 13, CV_RECORD = 14,
  CV_TUPLE = 15, CV_VARIANT = 16, CV_ENUM = 17, CV_OPTION = 18, CV_RESULT = 19, CV_RESOURCE = 21,
};

typedef struct { uint64_t store_id; uint32_t priv; } cinstance_t;          /* wasmtime_component_instance_t */
typedef struct { _Alignas(8) uint8_t bytes[32]; } cfunc_t;                   /* wasmtime_component_func_t */

typedef void *(*host_fn)(void *data, void *ctx, const void *ty, cval_t *args, size_t nargs, cval_t *results,
                         size_t nresults);
typedef void *(*drop_fn)(void *data, void *ctx, uint32_t rep);

#define WASM_HTTP_API(X)                                                                                    \
  X(void, wasmtime_config_wasm_component_model_set, (void *, bool))                                         \
  X(void *, wasmtime_error_new, (const char *))                                                             \
  X(void, wasm_byte_vec_new, (vec_t *, size_t, const void *))                                               \
  X(void *, wasmtime_component_new, (void *, const uint8_t *, size_t, void **))                             \
  X(void *, wasmtime_component_type, (void *))                                                              \
  X(void, wasmtime_component_type_delete, (void *))                                                         \
  X(size_t, wasmtime_component_type_export_count, (void *, void *))                                         \
  X(bool, wasmtime_component_type_export_nth, (void *, void *, size_t, const char **, size_t *, void **))    \
  X(void, wasmtime_component_extern_delete, (void *))                                                       \
  X(void *, wasmtime_component_get_export_index, (void *, void *, const char *, size_t))                    \
  X(void *, wasmtime_component_linker_new, (void *))                                                        \
  X(void *, wasmtime_component_linker_root, (void *))                                                       \
  X(void *, wasmtime_component_linker_instance_add_instance, (void *, const char *, size_t, void **))       \
  X(void *, wasmtime_component_linker_instance_add_func, (void *, const char *, size_t, host_fn, void *, void (*)(void *))) \
  X(void *, wasmtime_component_linker_instance_add_resource, (void *, const char *, size_t, void *, drop_fn, void *, void (*)(void *))) \
  X(void, wasmtime_component_linker_instance_delete, (void *))                                              \
  X(void *, wasmtime_component_linker_instantiate, (void *, void *, void *, cinstance_t *))                 \
  X(void *, wasmtime_component_resource_type_new_host, (uint32_t))                                          \
  X(void, wasmtime_component_resource_type_delete, (void *))                                                \
  X(bool, wasmtime_component_instance_get_func, (cinstance_t *, void *, void *, cfunc_t *))                 \
  X(void *, wasmtime_component_func_call, (cfunc_t *, void *, const cval_t *, size_t, cval_t *, size_t))    \
  X(void *, wasmtime_component_func_post_return, (cfunc_t *, void *))                                       \
  X(void *, wasmtime_component_resource_host_new, (bool, uint32_t, uint32_t))                               \
  X(uint32_t, wasmtime_component_resource_host_rep, (const void *))                                         \
  X(uint32_t, wasmtime_component_resource_host_type, (const void *))                                        \
  X(void, wasmtime_component_resource_host_delete, (void *))                                                \
  X(void *, wasmtime_component_resource_any_to_host, (void *, const void *, void **))                       \
  X(void *, wasmtime_component_resource_host_to_any, (void *, const void *, void **))                       \
  X(void, wasmtime_component_vallist_new_uninit, (cvallist_t *, size_t))                                    \
  X(void, wasmtime_component_valtuple_new_uninit, (cvallist_t *, size_t))                                   \
  X(void, wasmtime_component_valrecord_new_uninit, (crecord_t *, size_t))                                   \
  X(cval_t *, wasmtime_component_val_new, (cval_t *))                                                       \
  X(void, wasmtime_component_val_clone, (const cval_t *, cval_t *))                                         \
  X(void, wasmtime_component_val_delete, (cval_t *))

#define DECLARE_API(ret, name, args) extern WASMTIME_POINTER(ret, name, args)
WASMTIME_CORE_API(DECLARE_API)
WASM_HTTP_API(DECLARE_API)

/* ---- the host's resources: each a rep (an index into the request's table) of one type ---- */
enum rt {
  RT_POLLABLE = 1, RT_ERROR, RT_INPUT_STREAM, RT_OUTPUT_STREAM, RT_FIELDS, RT_INCOMING_REQUEST, RT_OUTGOING_REQUEST,
  RT_REQUEST_OPTIONS, RT_RESPONSE_OUTPARAM, RT_INCOMING_RESPONSE, RT_INCOMING_BODY, RT_FUTURE_TRAILERS,
  RT_OUTGOING_RESPONSE, RT_OUTGOING_BODY, RT_FUTURE_INCOMING_RESPONSE,
};

struct field { char *name; size_t nlen; uint8_t *value; size_t vlen; };
struct fields { size_t n, cap; struct field *e; bool immutable; };
struct outgoing_body { bool stream_taken, finished; };
/* One object: what a rep stands for. Fields and bodies are shared (a response's headers handle,
 * its body), so objects are counted: the table holds one reference, an owner another. */
struct obj {
  int type, refs;
  union {
    struct fields fields;
    struct { int64_t at; } pollable;                   /* monotonic ns when ready; -1: always */
    struct { const uint8_t *data; size_t len, pos; } in; /* input-stream */
    struct { int sink; bool closed; } out;             /* output-stream: 0 body, 2 log */
    struct { bool consumed; } inreq;
    struct { bool stream_taken; } inbody;
    struct { int status; struct obj *headers, *body; } resp;
    struct outgoing_body obody;
    struct { struct obj *headers; bool body_taken; cval_t method, path, scheme, authority; } oreq;
    struct { cval_t t[3]; } opts;
  } u;
};

struct request {
  const char *method, *path, *scheme, *authority;
  size_t method_len, path_len, scheme_len, authority_len;
  struct fields headers; /* names lowercased */
  const uint8_t *body;
  size_t body_len;
  int64_t deadline_ns;
  uint64_t memory;
  /* the table: reps index it */
  struct obj **table;
  uint32_t next, cap;
  bool head_sent, finished;
  int answered; /* 0 none, 1 ok, 2 error */
  int status;
  struct obj *answered_body, *answered_headers;
  char *error_message;
  uint8_t *pending; /* body written before the head went out */
  size_t pending_len, pending_cap;
  /* a host-side end of the request (its reason: "trap" or "deadline"), set before the error is returned */
  const char *fail_reason;
  char fail_message[512];
};

extern struct request *R;

/* frames out: 1 body, 2 log, 3 result, 5 head; flush() writes what is buffered */
void frame(uint8_t kind, const void *data, size_t n);
void flush_out(void);
int64_t now_ns(void);

/* host.c: the table and values */
void *host_fail(const char *reason, const char *fmt, ...);
struct obj *obj_new(int type);
void obj_unref(struct obj *o);
uint32_t table_add(struct obj *o);
struct obj *arg_obj(void *ctx, const cval_t *v, int type, bool take, void **err);
void *ret_own(void *ctx, cval_t *out, int type, struct obj *o);
void *drop_rep(void *data, void *ctx, uint32_t rep);
void set_string(cval_t *v, const void *s, size_t n);
void set_bytes(cval_t *v, const uint8_t *s, size_t n);
cval_t *boxed(cval_t v);
void set_variant(cval_t *v, const char *name, cval_t *payload);
void set_result(cval_t *v, bool ok, cval_t *payload);
void set_option(cval_t *v, cval_t *payload);
void fields_add(struct fields *f, const char *name, size_t nlen, const uint8_t *value, size_t vlen);
void fields_free(struct fields *f);
void *emit(int sink, const uint8_t *data, size_t n);
void send_head(void);

/* defining functions */
/* `sig`: the shape of its arguments, checked before each call (a component declares its imports'
 * types itself, and a host function takes what it declared): r resource, s string, b list<u8>,
 * B list<list<u8>>, E list<tuple<string, list<u8>>>, L list<resource>, o option<resource>,
 * R result<resource, variant>, w u16, q u64, V any value (kept and given back as it came), * any. */
void *add_func(void *inst, const char *name, int id, const char *sig);
void *add_resource(void *inst, const char *name, int type);
void *define_io(void *root);
void *define_http(void *root);
void *call_io(int id, void *ctx, cval_t *args, size_t nargs, cval_t *res);
void *call_http(int id, void *ctx, cval_t *args, size_t nargs, cval_t *res);
#define VERSION "0.2.12" /* Wasmtime's linker takes any 0.2.x import for a 0.2.y definition */
#define MAX_READ (1u << 20)
#define MAX_PENDING (64u << 20)
#define IO_FIRST 1000 /* ids of wasi:io, clocks, random and cli functions; below: wasi:http */

#endif
