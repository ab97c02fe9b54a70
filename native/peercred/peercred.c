/*
 * SO_PEERCRED for Node: the uid, gid and pid of the process at the other end of a connected
 * unix socket, as the kernel recorded them at connect() time (so not racy: the peer cannot
 * change them afterwards). Node has no API for it. peercred(fd) -> { uid, gid, pid }.
 * The addon also dials into a sandbox's network namespace (netns-connect.c) and runs the gateway
 * fast lane's relay thread (lane-relay.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value peercred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) {
    napi_throw_type_error(env, NULL, "peercred(fd): one argument, a socket's file descriptor");
    return NULL;
  }
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "peercred(fd): fd must be a non-negative integer");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  if (len != sizeof cred) return throw_errno(env, "getsockopt(SO_PEERCRED)", EPROTO);
  napi_value out, uid, gid, pid;
  napi_create_object(env, &out);
  napi_create_uint32(env, cred.uid, &uid);
  napi_create_uint32(env, cred.gid, &gid);
  napi_create_int32(env, cred.pid, &pid);
  napi_set_named_property(env, out, "uid", uid);
  napi_set_named_property(env, out, "gid", gid);
  napi_set_named_property(env, out, "pid", pid);
  return out;
}

napi_value netns_init(napi_env env, napi_value exports);
napi_value relay_init_exports(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "peercred", NAPI_AUTO_LENGTH, peercred, NULL, &fn);
  napi_set_named_property(env, exports, "peercred", fn);
  return relay_init_exports(env, netns_init(env, exports));
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
