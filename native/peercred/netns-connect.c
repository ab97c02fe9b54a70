/*
 * A TCP connection to 127.0.0.1:PORT inside another network namespace (a sandbox's own
 * loopback), for the gateway (process services, preview URLs). A socket belongs to the namespace
 * it was made in for its whole life, and setns with CLONE_NEWNET changes only the calling thread:
 * so the calling thread steps into the sandbox's namespace for the one socket() call and at once
 * back into its own, then connects from there. No thread is made per dial: on a busy host a new
 * thread waited for a CPU, which cost a connection-per-request server up to a millisecond per
 * request. Should the step back ever fail the daemon aborts, never to go on in a sandbox's namespace.
 * The socket is non-blocking; on loopback its connect ends at once (accepted, or refused), and
 * is waited for up to CONNECT_MS when the server's accept queue is full.
 * netnsConnect(nsPath, port[, pid, startTime]) -> fd, or -errno (ECONNREFUSED: nothing listens;
 * ETIMEDOUT: no room; ESRCH: process `pid` is not the one that started at `startTime`). With a pid,
 * the namespace file is opened first and the process checked after: a pid reused in between shows
 * a different start time, so the namespace entered is the checked process's (no race, and no
 * separate read of /proc/PID/stat from JavaScript per dial).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <node_api.h>

#define CONNECT_MS 1000

/* The namespace the calling (main) thread is in, opened on the first dial; -errno when it cannot be. */
static int home_ns = -1;

/* Whether process `pid` started at `start` (field 22 of /proc/PID/stat, clock ticks since boot). */
static int same_process(int pid, long long start) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  /* The command name (field 2) may hold spaces and parentheses: count from the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  p += 2; /* field 3 */
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p) return 0;
    p++;
  }
  return strtoll(p, NULL, 10) == start;
}

/* A socket made inside the namespace at `path` (of process `pid` started at `start`, when pid > 0), or -errno. */
static int socket_in(const char *path, int pid, long long start) {
  if (home_ns < 0) {
    home_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_ns < 0) return -errno;
  }
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) return -errno;
  if (pid > 0 && !same_process(pid, start)) {
    close(ns);
    return -ESRCH;
  }
  if (setns(ns, CLONE_NEWNET) != 0) {
    int e = errno;
    close(ns);
    return -e;
  }
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int e = errno;
  while (setns(home_ns, CLONE_NEWNET) != 0)
    if (errno != EINTR) abort();
  close(ns);
  return s < 0 ? -e : s;
}

/* Milliseconds on the monotonic clock. */
static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * Connect `s` (non-blocking) to 127.0.0.1:port: 0, or -errno. On loopback connect() mostly ends
 * at once; else the handshake is waited for (a full accept queue) up to CONNECT_MS, through any
 * signal (the profiler's SIGPROF, SIGCHLD) that interrupts the wait.
 */
static int connect_loopback(int s, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR) return -errno;
  long long deadline = now_ms() + CONNECT_MS;
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return -ETIMEDOUT;
    struct pollfd p = {s, POLLOUT, 0};
    int n = poll(&p, 1, (int)left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return -ETIMEDOUT;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
    return -err;
  }
}

static int dial(const char *path, int port, int pid, long long start) {
  int s = socket_in(path, pid, start);
  if (s < 0) return s;
  int r = connect_loopback(s, port);
  if (r != 0) {
    close(s);
    return r;
  }
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

static napi_value netns_connect(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char path[256];
  size_t len = 0;
  int32_t port = 0, pid = 0;
  int64_t start = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || (argc != 2 && argc != 4) ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 ||
      len >= sizeof path - 1 || napi_get_value_int32(env, argv[1], &port) != napi_ok || port < 1 || port > 65535 ||
      (argc == 4 && (napi_get_value_int32(env, argv[2], &pid) != napi_ok || pid < 1 ||
                     napi_get_value_int64(env, argv[3], &start) != napi_ok || start < 1))) {
    napi_throw_type_error(env, NULL,
                          "netnsConnect(nsPath, port[, pid, startTime]): a namespace file, a port 1-65535, and the "
                          "process whose namespace it is");
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, dial(path, port, argc == 4 ? pid : 0, start), &out);
  return out;
}

napi_value netns_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "netnsConnect", NAPI_AUTO_LENGTH, netns_connect, NULL, &fn);
  napi_set_named_property(env, exports, "netnsConnect", fn);
  return exports;
}
