/*
 * The N-API side of the gateway fast lane's relay thread (lane-relay.c, which says what it does).
 * relayInit(callback) -> whether this thread of Node owns the relay; relayOffload(clientFd,
 * upstreamFd, request, forwarded, responseHead, clientHead, bodyLength, leaseMs) -> id (0: not
 * taken); relayRevoke(id); relayStats() -> { lanes (held now), relayed (exchanges passed on),
 * handBacks }. The callback is callback(id, flags, clientBytes, upstreamBytes, pendingOut): flags
 * 1 SENT (a request is out: its response is the lane's to read, upstreamBytes its start), 2
 * DROP_UPSTREAM (the replica's connection is not to be used again), 4 CUT (the client's connection
 * must close); pendingOut is output for the client not yet written, to write before anything else.
 */
#include <stdlib.h>
#include <node_api.h>
#include "lane-relay.h"

static napi_threadsafe_function tsfn;
static napi_env home_env;

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  struct relay_back *b = data;
  if (env && cb) {
    napi_value argv[5], undef;
    napi_get_undefined(env, &undef);
    napi_create_uint32(env, b->id, &argv[0]);
    napi_create_int32(env, b->flags, &argv[1]);
    napi_create_buffer_copy(env, b->client_len, b->client ? (void *)b->client : (void *)"", NULL, &argv[2]);
    napi_create_buffer_copy(env, b->upstream_len, b->upstream ? (void *)b->upstream : (void *)"", NULL, &argv[3]);
    napi_create_buffer_copy(env, b->out_len, b->out ? (void *)b->out : (void *)"", NULL, &argv[4]);
    napi_call_function(env, undef, cb, 5, argv, NULL);
  }
  relay_back_free(b);
}

static void deliver(struct relay_back *b) {
  if (napi_call_threadsafe_function(tsfn, b, napi_tsfn_nonblocking) != napi_ok) relay_back_free(b);
}

static napi_value relay_init(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name, out;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "relayInit(callback): one function");
    return NULL;
  }
  if (home_env) {
    napi_get_boolean(env, env == home_env, &out);
    return out;
  }
  napi_get_boolean(env, 0, &out);
  napi_create_string_utf8(env, "realm-lane-relay", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &tsfn) != napi_ok)
    return out;
  napi_unref_threadsafe_function(env, tsfn);
  if (relay_start(deliver) != 0) {
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    return out;
  }
  home_env = env;
  napi_get_boolean(env, 1, &out);
  return out;
}

static napi_value relay_offload(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], out;
  int32_t cfd, ufd, lease;
  int64_t body;
  struct relay_repeat x;
  void *p[4];
  size_t n[4];
  napi_create_uint32(env, 0, &out);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 8 ||
      napi_get_value_int32(env, argv[0], &cfd) != napi_ok || napi_get_value_int32(env, argv[1], &ufd) != napi_ok ||
      napi_get_buffer_info(env, argv[2], &p[0], &n[0]) != napi_ok ||
      napi_get_buffer_info(env, argv[3], &p[1], &n[1]) != napi_ok ||
      napi_get_buffer_info(env, argv[4], &p[2], &n[2]) != napi_ok ||
      napi_get_buffer_info(env, argv[5], &p[3], &n[3]) != napi_ok ||
      napi_get_value_int64(env, argv[6], &body) != napi_ok || napi_get_value_int32(env, argv[7], &lease) != napi_ok ||
      cfd < 0 || ufd < 0 || body < 0 || lease < 1) {
    napi_throw_type_error(env, NULL,
                          "relayOffload(clientFd, upstreamFd, request, forwarded, responseHead, clientHead, "
                          "bodyLength, leaseMs): two sockets, four buffers, a length and a lease");
    return NULL;
  }
  if (env != home_env) return out;
  x = (struct relay_repeat){p[0], p[1], p[2], p[3], n[0], n[1], n[2], n[3], body};
  napi_create_uint32(env, relay_add(cfd, ufd, &x, lease), &out);
  return out;
}

static napi_value relay_revoke_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t id;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_uint32(env, argv[0], &id) != napi_ok) {
    napi_throw_type_error(env, NULL, "relayRevoke(id): a lane's id");
    return NULL;
  }
  if (env == home_env) relay_revoke(id);
  return NULL;
}

static napi_value relay_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out, v;
  long long figures[3] = {0, 0, 0};
  const char *names[3] = {"lanes", "relayed", "handBacks"};
  if (home_env) relay_figures(figures);
  napi_create_object(env, &out);
  for (int i = 0; i < 3; i++) {
    napi_create_int64(env, figures[i], &v);
    napi_set_named_property(env, out, names[i], v);
  }
  return out;
}

napi_value relay_init_exports(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"relayInit", relay_init},
             {"relayOffload", relay_offload},
             {"relayRevoke", relay_revoke_js},
             {"relayStats", relay_stats}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn);
    napi_set_named_property(env, exports, fns[i].name, fn);
  }
  return exports;
}
