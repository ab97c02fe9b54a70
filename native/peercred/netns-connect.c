/*
 * A TCP connection to 127.0.0.1:PORT inside another network namespace (a sandbox's own
 * loopback), for the preview proxy. The namespace is entered by a short-lived thread: setns
 * with CLONE_NEWNET changes only the calling thread, and a socket belongs to the namespace it
 * was made in for its whole life, so the daemon's own threads never leave the host's namespace.
 * The connect is blocking: on loopback it ends at once (accepted, or refused).
 * netnsConnect(nsPath, port) -> fd, or -errno (ECONNREFUSED: nothing listens).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <node_api.h>

struct dial {
  char path[256];
  int port;
  int result; /* fd, or -errno */
};

static void *dial_thread(void *arg) {
  struct dial *d = arg;
  int ns = open(d->path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) {
    d->result = -errno;
    return NULL;
  }
  if (setns(ns, CLONE_NEWNET) != 0) {
    d->result = -errno;
    close(ns);
    return NULL;
  }
  close(ns);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    d->result = -errno;
    return NULL;
  }
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)d->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
    d->result = -errno;
    close(s);
    return NULL;
  }
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  d->result = s;
  return NULL;
}

static napi_value netns_connect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  struct dial d;
  size_t len = 0;
  int32_t port = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_string_utf8(env, argv[0], d.path, sizeof d.path, &len) != napi_ok || len == 0 ||
      len >= sizeof d.path - 1 || napi_get_value_int32(env, argv[1], &port) != napi_ok || port < 1 || port > 65535) {
    napi_throw_type_error(env, NULL, "netnsConnect(nsPath, port): a namespace file and a port 1-65535");
    return NULL;
  }
  d.port = port;
  d.result = -EIO;
  pthread_t t;
  int err = pthread_create(&t, NULL, dial_thread, &d);
  if (err != 0) d.result = -err;
  else pthread_join(t, NULL);
  napi_value out;
  napi_create_int32(env, d.result, &out);
  return out;
}

napi_value netns_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "netnsConnect", NAPI_AUTO_LENGTH, netns_connect, NULL, &fn);
  napi_set_named_property(env, exports, "netnsConnect", fn);
  return exports;
}
