/*
 * realm-init: PID 1 of a namespace sandbox (bwrap --as-pid-1) and of a gVisor sandbox. Modes:
 *
 *   realm-init READYFD [--proxy PORT SOCKET [UID GID]]
 *       A long-lived sandbox: say "ready" on READYFD (or into the file READYFD names, if it is
 *       an absolute path) once bwrap has built everything and the forwarder listens, then
 *       reap orphans forever. The daemon kills it (and all else) through the sandbox's cgroup.
 *       With --proxy, a child ("realm-proxy") listens on 127.0.0.1:PORT (the sandbox's own
 *       loopback) and carries each connection to the unix SOCKET, where the daemon's filtering
 *       proxy is: the only way out of a sandbox whose network is an allow-list. With UID GID
 *       (a root PID 1 given only CAP_SETUID and CAP_SETGID, as under gVisor) the child becomes
 *       that user — the socket's owner — and PID 1 then drops every capability.
 *   realm-init serve FD
 *       A warm one-shot sandbox: say "ready" on FD, take one request (files, environment,
 *       command, stdin) from it, run the program, relay its stdout and stderr and report its
 *       end there, then exit — which, as PID 1, takes every leftover process with it. See
 *       init-serve.c for the records.
 *
 * It holds no privileges (past handing the forwarder to UID GID). Built static so it runs in
 * any image, even one without a libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "init-serve.h"
#include "proxy-connect.h"


/* Copy bytes both ways until either side closes. */
static void relay(int a, int b) {
  char buf[16384];
  for (;;) {
    struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(p[i].fd, buf, sizeof buf);
      if (r <= 0) return;
      int to = i == 0 ? b : a;
      for (ssize_t off = 0; off < r;) {
        ssize_t w = write(to, buf + off, (size_t)(r - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        off += w;
      }
    }
  }
}

/* Clear every capability this process holds (effective, permitted, inheritable). */
static int drop_caps(void) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  return (int)syscall(SYS_capset, &h, d);
}

/* The forwarder's listening socket on 127.0.0.1:PORT, made by PID 1 before it says "ready", so
 * the first exec finds it listening. */
static int proxy_listen(int port) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 128) < 0) return -1;
  return l;
}

static void proxy_forwarder(int l, const char *sockpath, const char *uid, const char *gid, const sigset_t *blocked) {
  /* Nothing of init's but the listener: no stdio, no ready pipe. */
  if (l > 0) syscall(SYS_close_range, 0U, (unsigned int)l - 1, 0);
  syscall(SYS_close_range, (unsigned int)l + 1, ~0U, 0);
  /* A name the sandbox's signal-all (realm-gvexec) knows to spare, and `ps` shows. */
  prctl(PR_SET_NAME, "realm-proxy", 0, 0, 0);
  if (uid && gid) {
    /* Becoming a non-root user clears the capabilities given for this step. */
    gid_t g = (gid_t)atol(gid);
    uid_t u = (uid_t)atol(uid);
    if (setgroups(0, NULL) < 0 || setresgid(g, g, g) < 0 || setresuid(u, u, u) < 0 || drop_caps() < 0) _exit(1);
  }
  sigprocmask(SIG_UNBLOCK, blocked, NULL);
  signal(SIGCHLD, SIG_IGN); /* connection children reap themselves */
  for (;;) {
    int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) continue;
    if (fork() == 0) {
      close(l);
      int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      struct sockaddr_un ua = {.sun_family = AF_UNIX};
      strncpy(ua.sun_path, sockpath, sizeof ua.sun_path - 1);
      if (u >= 0 && connect(u, (struct sockaddr *)&ua, sizeof ua) == 0) relay(c, u);
      _exit(0);
    }
    close(c);
  }
}

/*
 * `connect HOST PORT`: a CONNECT tunnel through the sandbox's proxy on stdin/stdout, for tools
 * that take a proxy command rather than HTTP_PROXY (ssh's ProxyCommand for git over ssh).
 */
static int proxy_connect(const char *sockpath, const char *host, const char *port) {
  int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un ua = {.sun_family = AF_UNIX};
  strncpy(ua.sun_path, sockpath, sizeof ua.sun_path - 1);
  if (u < 0 || connect(u, (struct sockaddr *)&ua, sizeof ua) != 0) {
    fprintf(stderr, "realm: no network proxy in this sandbox (%s)\n", strerror(errno));
    return 1;
  }
  return proxy_tunnel(u, host, port);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "connect") == 0) return proxy_connect("/.realm/net/proxy.sock", argv[2], argv[3]);
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve_one(atoi(argv[2]), &all);

  if ((argc == 5 || argc == 7) && strcmp(argv[2], "--proxy") == 0) {
    int l = proxy_listen(atoi(argv[3]));
    if (l < 0) return 125;
    pid_t f = fork();
    if (f == 0) proxy_forwarder(l, argv[4], argc == 7 ? argv[5] : NULL, argc == 7 ? argv[6] : NULL, &all);
    close(l);
    /* PID 1 keeps no capability of those it had for the forwarder's sake. */
    if (argc == 7 && drop_caps() < 0) return 125;
  }
  if (argc > 1 && argv[1][0] == '/') {
    /* READY as a path (a directory only the daemon and the sandbox's root can write). */
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ssize_t n = write(fd, "ready\n", 6);
      (void)n;
      close(fd);
    }
  } else if (argc > 1) {
    int fd = atoi(argv[1]);
    if (fd > 2) {
      ssize_t n = write(fd, "ready\n", 6);
      (void)n;
      close(fd);
    }
  }
  /* Keep stdio (and anything else passed along) from pinning any pipe of the daemon's. */
  syscall(SYS_close_range, 0U, ~0U, 0);

  for (;;) {
    int sig;
    pid_t pid = waitpid(-1, NULL, 0);
    if (pid > 0) continue;
    if (pid < 0 && errno == EINTR) continue;
    /* No children: sleep until a signal arrives (SIGCHLD when an exec'd process is orphaned to us). */
    sigwait(&all, &sig);
  }
}
