/*
 * realm-helper serve SOCKET: a fork server, so the daemon never forks itself.
 *
 * Forking the daemon costs it in proportion to its memory (page tables copied, then torn down
 * again by the child's exec): about 1 ms at 50 MB of RSS, 10 ms at 350 MB, paid for every
 * sandbox start and every exec. This process is small and static, so its forks are cheap; each
 * child carries out one realm-helper command (spawn, enter, mount-tmpfs, ...) as if it had been
 * started with it.
 *
 * Requests come on stdin, events go to stdout, one line each (and a payload):
 *
 *   R ID NSTDIO NARGS LEN [NCLEAN]\n
 *                            then LEN bytes: NSTDIO stdio specs, NARGS arguments and NCLEAN
 *                            directories (default 0) to remove once the child is reaped (a
 *                            one-shot sandbox's cgroups), each NUL-terminated. A spec is "p" (a socket connected back to the
 *                            daemon), "n" (/dev/null), "fPATH" (PATH opened for writing,
 *                            created 0600, truncated) or "dN" (the same as descriptor N,
 *                            which is not itself a copy). The arguments are a realm-helper command
 *                            line without the program name ("spawn --uid ... -- bwrap ...").
 *   K ID SIG\n               send SIG to that child, if it has not been reaped.
 *
 *   E ID x CODE\n            the child of request ID exited with CODE; "E ID s SIG\n": it was
 *                            killed by SIG; " busy" at the end: a directory to remove was
 *                            still in use (left for the daemon). (Nothing is said when it starts: the daemon learns
 *                            that from its connections, and signals it by request id.)
 *
 * A "p" descriptor is a unix stream socket the child connects to SOCKET (the daemon listens
 * there, 0600 root) before it runs the command; it first writes "%08x%02d\n" (request id and
 * descriptor number) so the daemon can tell its connections apart. The daemon's end is an
 * ordinary stream socket, as a pipe made by Node's spawn is.
 *
 * When stdin ends (the daemon is gone) the server exits; its children carry on, reparented,
 * exactly as children of a dead daemon would. It holds nothing a child must not inherit: each
 * child closes every descriptor but its stdio before running anything (see close_others).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "forkserver.h"

#define MAX_STDIO 16
#define MAX_ARGS 4096
#define MAX_PAYLOAD (4 << 20)

struct child {
  pid_t pid;
  unsigned id;
  char *clean; /* NUL-separated directories to remove after the child, or NULL */
  size_t clean_len;
};

static struct child *kids;
static size_t nkids, capkids;
static struct sockaddr_un addr;

static void say(const char *line, int n) {
  for (int off = 0; off < n;) {
    ssize_t w = write(1, line + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) exit(0); /* the daemon is gone */
    off += (int)w;
  }
}

static void say_ended(unsigned id, char how, int n, int busy) {
  char line[64];
  say(line, snprintf(line, sizeof line, "E %u %c %d%s\n", id, how, n, busy ? " busy" : ""));
}

/* Remove the directories, last first; 1 if one was still in use. */
static int clean_up(const char *dirs, size_t len) {
  const char *list[64];
  int n = 0;
  for (size_t off = 0; off < len && n < 64; off += strlen(dirs + off) + 1) list[n++] = dirs + off;
  int busy = 0;
  for (int i = n - 1; i >= 0; i--)
    if (rmdir(list[i]) < 0 && errno != ENOENT) busy = 1;
  return busy;
}

static void track(pid_t pid, unsigned id, char *clean, size_t clean_len) {
  if (nkids == capkids) {
    capkids = capkids ? capkids * 2 : 64;
    kids = realloc(kids, capkids * sizeof *kids);
    if (!kids) exit(125);
  }
  kids[nkids].pid = pid;
  kids[nkids].id = id;
  kids[nkids].clean = clean;
  kids[nkids].clean_len = clean_len;
  nkids++;
}

static void reap(void) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return;
    for (size_t i = 0; i < nkids; i++) {
      if (kids[i].pid != pid) continue;
      int busy = kids[i].clean ? clean_up(kids[i].clean, kids[i].clean_len) : 0;
      free(kids[i].clean);
      if (WIFEXITED(st)) say_ended(kids[i].id, 'x', WEXITSTATUS(st), busy);
      else say_ended(kids[i].id, 's', WTERMSIG(st), busy);
      kids[i] = kids[--nkids];
      break;
    }
  }
}

/* In the child: a descriptor for one stdio spec, well above the stdio range. */
static int open_spec(const char *spec, unsigned id, int index) {
  int fd;
  if (spec[0] == 'p') {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) return -1;
    char hello[16];
    int n = snprintf(hello, sizeof hello, "%08x%02d\n", id, index);
    if (write(fd, hello, (size_t)n) != n) return -1;
  } else if (spec[0] == 'n') {
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  } else if (spec[0] == 'f') {
    fd = open(spec + 1, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  } else {
    errno = EINVAL;
    return -1;
  }
  if (fd < 0) return -1;
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 100);
  close(fd);
  return high;
}

static void run_child(unsigned id, char **specs, int nstdio, char **args, int nargs, int (*dispatch)(int, char **)) {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  signal(SIGPIPE, SIG_DFL);
  int fds[MAX_STDIO];
  int n = nstdio < 3 ? 3 : nstdio;
  /* Connections and files first, then the copies ("dN") of them. */
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < n; i++) {
      const char *spec = i < nstdio ? specs[i] : "n";
      if ((spec[0] == 'd') != (pass == 1)) continue;
      int of = spec[0] == 'd' ? atoi(spec + 1) : -1;
      int ok = of >= 0 && of < n && !(of < nstdio && specs[of][0] == 'd');
      if (spec[0] == 'd') fds[i] = ok ? fcntl(fds[of], F_DUPFD_CLOEXEC, 100) : (errno = EINVAL, -1);
      else fds[i] = open_spec(spec, id, i);
      if (fds[i] < 0) {
        fprintf(stderr, "realm-helper serve: request %u: stdio %d (%s): %s\n", id, i, spec, strerror(errno));
        _exit(125);
      }
    }
  /* dup2 leaves the copies without close-on-exec; every other descriptor of ours has it or is
   * closed by the command (close_others). */
  for (int i = 0; i < n; i++) {
    if (dup2(fds[i], i) < 0) _exit(125);
    close(fds[i]);
  }
  if (syscall(SYS_close_range, (unsigned)n, ~0U, 0) < 0) _exit(125);
  _exit(dispatch(nargs, args));
}

static void handle_request(char *line, char *payload, size_t len, int (*dispatch)(int, char **)) {
  unsigned id;
  int nstdio, nargs, nclean = 0;
  unsigned long ignored;
  if (sscanf(line, "R %u %d %d %lu %d", &id, &nstdio, &nargs, &ignored, &nclean) < 4 || nstdio < 0 || nstdio > MAX_STDIO || nargs < 1 || nargs > MAX_ARGS || nclean < 0 || nclean > 64) {
    fprintf(stderr, "realm-helper serve: bad request: %s\n", line);
    exit(125);
  }
  static char *fields[MAX_STDIO + MAX_ARGS + 1];
  int nf = 0;
  size_t off = 0;
  for (; off < len && nf < nstdio + nargs;) {
    fields[nf++] = payload + off;
    off += strnlen(payload + off, len - off) + 1;
  }
  /* What is left are the directories to clean up: kept (a copy) until the child is reaped. */
  char *clean = NULL;
  size_t clean_len = 0;
  if (nclean > 0 && off < len) {
    clean_len = len - off;
    clean = malloc(clean_len);
    if (!clean) exit(125);
    memcpy(clean, payload + off, clean_len);
  }
  if (nf != nstdio + nargs || payload[len - 1] != 0) {
    fprintf(stderr, "realm-helper serve: request %u: payload does not hold its fields\n", id);
    exit(125);
  }
  fields[nf] = NULL;
  pid_t pid = fork();
  if (pid < 0) {
    say_ended(id, 'x', 125, clean ? clean_up(clean, clean_len) : 0);
    free(clean);
    return;
  }
  if (pid == 0) run_child(id, fields, nstdio, fields + nstdio, nargs, dispatch);
  track(pid, id, clean, clean_len);
}

static void handle_kill(const char *line) {
  unsigned id;
  int sig;
  if (sscanf(line, "K %u %d", &id, &sig) != 2) return;
  for (size_t i = 0; i < nkids; i++)
    if (kids[i].id == id) kill(kids[i].pid, sig);
}

int forkserver(int argc, char **argv, int (*dispatch)(int, char **)) {
  if (argc != 1 || strlen(argv[0]) >= sizeof addr.sun_path) {
    fprintf(stderr, "realm-helper serve: usage: serve SOCKET (shorter than %zu bytes)\n", sizeof addr.sun_path);
    return 125;
  }
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, argv[0]);
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 125;
  fcntl(0, F_SETFD, FD_CLOEXEC);
  fcntl(1, F_SETFD, FD_CLOEXEC);

  size_t cap = 1 << 16, used = 0;
  char *buf = malloc(cap);
  if (!buf) return 125;
  for (;;) {
    struct pollfd p[2] = {{0, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 125;
    }
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {}
      reap();
    }
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    if (used == cap) {
      if (cap >= MAX_PAYLOAD * 2) return 125;
      cap *= 2;
      buf = realloc(buf, cap);
      if (!buf) return 125;
    }
    ssize_t r = read(0, buf + used, cap - used);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return 0; /* the daemon closed our stdin: it is gone or done */
    used += (size_t)r;
    /* Carry out every complete message in the buffer. */
    size_t off = 0;
    for (;;) {
      char *nl = memchr(buf + off, '\n', used - off);
      if (!nl) break;
      *nl = 0;
      char *line = buf + off;
      size_t after = (size_t)(nl + 1 - buf);
      if (line[0] == 'K') {
        handle_kill(line);
        off = after;
        continue;
      }
      unsigned long len = 0;
      unsigned id;
      int a, b;
      if (line[0] != 'R' || sscanf(line, "R %u %d %d %lu", &id, &a, &b, &len) < 4 || len == 0 || len > MAX_PAYLOAD) {
        fprintf(stderr, "realm-helper serve: bad message: %.80s\n", line);
        return 125;
      }
      if (used - after < len) {
        *nl = '\n'; /* incomplete: wait for the rest */
        break;
      }
      handle_request(line, buf + after, len, dispatch);
      off = after + len;
    }
    memmove(buf, buf + off, used - off);
    used -= off;
    reap();
  }
}
