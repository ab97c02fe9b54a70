/*
 * realm-init serve FD: PID 1 of a warm one-shot sandbox, talking to the daemon over one socket.
 *
 *   to the daemon:   "ready\n" once the sandbox is built;
 *   from it:         records "<tag> <length>\n<bytes>": F a file path, D the content of the last
 *                    F (written into the fresh, empty working directory), E a NAME=value, A an
 *                    argument, I the program's stdin, X go;
 *                    or, for a program started ahead of its request (the wasm runner, which
 *                    loads its engine while the sandbox waits in the pool): E and A, then P
 *                    start it now; later F/D, I chunks streamed into its stdin (a pipe), X the
 *                    end of its stdin;
 *   to the daemon:   while the program runs, "o <length>\n<bytes>" (its stdout) and
 *                    "e <length>\n<bytes>" (its stderr); at its end "exit N\n" or "signal N\n".
 *
 * Then PID 1 exits, which takes every leftover process with it. The program's stdout and stderr
 * are pipes of its own (what it wrote before it ended is sent before the end is reported); its
 * stdin is the I bytes (a memfd, read from the start) or /dev/null, or after P a pipe. One
 * socket instead of one per stream: each connection costs the daemon more than the relaying
 * costs here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "init-serve.h"

extern char **environ;

static int write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, data, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    data += w;
    len -= (size_t)w;
  }
  return 0;
}

/* What came from the daemon's socket and is not taken yet: it is read in pieces as large as
 * come, so a record's head, taken a byte at a time, costs no system call per byte. */
static struct {
  char buf[65536];
  size_t off, len;
} in;

static bool in_held(void) { return in.off < in.len; }

/* Read exactly n bytes of the socket; 0 on success. */
static int read_full(int fd, char *buf, size_t n) {
  while (n > 0) {
    if (in_held()) {
      size_t k = in.len - in.off < n ? in.len - in.off : n;
      memcpy(buf, in.buf + in.off, k);
      in.off += k;
      buf += k;
      n -= k;
      continue;
    }
    /* A large piece goes straight where it belongs; a small one fills the buffer. */
    bool direct = n >= sizeof in.buf;
    ssize_t r = direct ? read(fd, buf, n) : read(fd, in.buf, sizeof in.buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    if (direct) {
      buf += r;
      n -= (size_t)r;
    } else {
      in.off = 0;
      in.len = (size_t)r;
    }
  }
  return 0;
}

/* One record: its tag, and its bytes (NUL-terminated, malloc'd). */
static int read_record(int fd, char *tag, char **data, size_t *len) {
  char head[32];
  size_t i = 0;
  for (;;) {
    if (i >= sizeof head - 1 || read_full(fd, head + i, 1) < 0) return -1;
    if (head[i] == '\n') break;
    i++;
  }
  head[i] = 0;
  char *end;
  unsigned long n = strtoul(head + 2, &end, 10);
  if (head[1] != ' ' || *end != 0 || n > (1UL << 30)) return -1;
  *tag = head[0];
  *len = n;
  *data = malloc(n + 1);
  if (!*data || read_full(fd, *data, n) < 0) return -1;
  (*data)[n] = 0;
  return 0;
}

/* Write a file the daemon sent, creating parent directories; never through a link. */
static int write_file(const char *path, const char *data, size_t len) {
  char *p = strdup(path);
  if (!p || path[0] == '/' || strstr(path, "..")) return -1;
  for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
    *s = 0;
    if (mkdir(p, 0755) < 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  free(p);
  if (fd < 0) return -1;
  if (write_all(fd, data, len) < 0) return -1;
  return close(fd);
}

/* The program's stdin: the bytes sent, or nothing. */
static int stdin_of(const char *data, size_t len) {
  if (!data) return open("/dev/null", O_RDONLY | O_CLOEXEC);
  int fd = (int)syscall(SYS_memfd_create, "stdin", MFD_CLOEXEC);
  if (fd < 0 || write_all(fd, data, len) < 0 || lseek(fd, 0, SEEK_SET) < 0) return -1;
  return fd;
}

/* Send what a pipe holds as one record per read; 0 at end of file, 1 when it would block. */
static int forward(int from, char tag, int to) {
  static char buf[65536];
  for (;;) {
    ssize_t r = read(from, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return 1;
    if (r <= 0) return 0;
    char head[32];
    int h = snprintf(head, sizeof head, "%c %zd\n", tag, r);
    struct iovec iov[2] = {{head, (size_t)h}, {buf, (size_t)r}};
    size_t want = (size_t)h + (size_t)r;
    ssize_t w = writev(to, iov, 2);
    if (w < 0 || (size_t)w < want) {
      /* A short write (a full socket): send the rest plainly. */
      size_t done = w < 0 ? 0 : (size_t)w;
      if (done < (size_t)h && write_all(to, head + done, (size_t)h - done) < 0) return -1;
      size_t body = done > (size_t)h ? done - (size_t)h : 0;
      if (write_all(to, buf + body, (size_t)r - body) < 0) return -1;
    }
  }
}


/*
 * After a P record the request's rest streams in while the program runs: F/D files, I chunks of
 * its stdin (written to its stdin pipe as the pipe takes them), X the end of its stdin. One
 * chunk is held at a time: the socket is not read while it waits, so a program that does not
 * read its stdin holds the daemon's writes back, not this process's memory.
 */
struct feed {
  int pipe;         /* the program's stdin (non-blocking), -1 once closed */
  bool reading;     /* records still to come (no X yet) */
  char *path;       /* the last F */
  char *pend;       /* the I chunk being written */
  size_t pend_len, pend_off;
};

/* One record of the streamed rest; 0, or -1 when the request is broken (the sandbox ends). */
static int feed_record(int fd, struct feed *f) {
  char tag, *data;
  size_t len;
  if (read_record(fd, &tag, &data, &len) < 0) return -1;
  if (tag == 'F') {
    free(f->path);
    f->path = data;
  } else if (tag == 'D' && f->path) {
    if (write_file(f->path, data, len) < 0) {
      dprintf(fd, "error cannot write %s: %s\n", f->path, strerror(errno));
      return -1;
    }
    free(f->path);
    free(data);
    f->path = NULL;
  } else if (tag == 'I') {
    if (f->pipe >= 0 && len > 0) f->pend = data, f->pend_len = len, f->pend_off = 0;
    else free(data); /* the program closed its stdin: the rest is dropped */
  } else if (tag == 'X') {
    free(data);
    f->reading = false;
    shutdown(fd, SHUT_RD);
  } else {
    return -1;
  }
  if (!f->reading && !f->pend && f->pipe >= 0) close(f->pipe), f->pipe = -1;
  return 0;
}

/* Write what the pipe takes of the held chunk. */
static void feed_pipe(struct feed *f) {
  while (f->pend && f->pend_off < f->pend_len) {
    ssize_t w = write(f->pipe, f->pend + f->pend_off, f->pend_len - f->pend_off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return;
    if (w < 0) { /* EPIPE: the program will read no more */
      close(f->pipe);
      f->pipe = -1;
      break;
    }
    f->pend_off += (size_t)w;
  }
  free(f->pend);
  f->pend = NULL;
  if (!f->reading && f->pipe >= 0) close(f->pipe), f->pipe = -1;
}

static int relay_until_end(int fd, pid_t child, int out, int err, struct feed *f, const sigset_t *blocked) {
  int sfd = signalfd(-1, blocked, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 125;
  int status = -1;
  for (;;) {
    /* A record already read in is taken before the socket is polled again (it may say no more). */
    if (f && f->reading && !f->pend && in_held()) {
      if (feed_record(fd, f) < 0) return 125;
      continue;
    }
    struct pollfd p[5] = {{out, POLLIN, 0}, {err, POLLIN, 0}, {sfd, POLLIN, 0}, {-1, POLLIN, 0}, {-1, POLLOUT, 0}};
    if (f && f->reading && !f->pend) p[3].fd = fd;
    if (f && f->pend) p[4].fd = f->pipe;
    if (poll(p, 5, -1) < 0 && errno != EINTR) return 125;
    if (p[0].revents) {
      int r = forward(out, 'o', fd);
      if (r < 0) return 125; /* the daemon is gone: so is the sandbox */
      if (r == 0) out = -1;
    }
    if (p[1].revents) {
      int r = forward(err, 'e', fd);
      if (r < 0) return 125;
      if (r == 0) err = -1;
    }
    if (p[3].revents && feed_record(fd, f) < 0) return 125;
    if (p[4].revents) feed_pipe(f);
    if (p[2].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {}
      int st;
      pid_t w;
      while ((w = waitpid(-1, &st, WNOHANG)) > 0)
        if (w == child) status = st;
    }
    if (status >= 0) break;
  }
  /* The program is gone: what it wrote is in the pipes. Children it left may hold them open;
   * they end with us. */
  if (out >= 0) forward(out, 'o', fd);
  if (err >= 0) forward(err, 'e', fd);
  if (WIFEXITED(status)) dprintf(fd, "exit %d\n", WEXITSTATUS(status));
  else dprintf(fd, "signal %d\n", WTERMSIG(status));
  /* A program that ended before its request did (it read no more stdin): take the rest, to its
   * X, before our end of the socket closes. Else the daemon's next write fails, and Node drops
   * with the broken socket what it had not read yet: the end just reported. */
  if (f) {
    if (f->pipe >= 0) close(f->pipe), f->pipe = -1;
    free(f->pend);
    f->pend = NULL;
    while (f->reading && feed_record(fd, f) == 0) {}
  }
  return 0;
}

/* Start the program with `in` as its stdin; its stdout and stderr are pipes of ours (non-blocking). */
static pid_t start_program(int fd, char **argv, char **env, int in, int *out_r, int *err_r, const sigset_t *blocked) {
  int out[2], err[2];
  if (in < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
    dprintf(fd, "error cannot set up the program's stdio: %s\n", strerror(errno));
    return -1;
  }
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    if (dup2(in, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) _exit(125);
    /* Only stdio goes to the program: not the daemon's socket, nor anything passed along. */
    syscall(SYS_close_range, 3U, ~0U, 0);
    sigprocmask(SIG_UNBLOCK, blocked, NULL);
    environ = env;
    execvp(argv[0], argv);
    fprintf(stderr, "realm: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  close(in);
  close(out[1]);
  close(err[1]);
  /* Our own stdio: nothing may write to the daemon's socket but the relay. */
  for (int i = 0; i < 3; i++)
    if (i != fd) close(i);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  *out_r = out[0];
  *err_r = err[0];
  return child;
}

int serve_one(int fd, const sigset_t *blocked) {
  if (write_all(fd, "ready\n", 6) < 0) return 125;
  char **argv = calloc(4097, sizeof *argv);
  char **env = calloc(1025, sizeof *env);
  int argc = 0, envc = 0;
  char *path = NULL, *input = NULL;
  size_t input_len = 0;
  char tag;
  for (;;) {
    char *data;
    size_t len;
    if (!argv || !env || read_record(fd, &tag, &data, &len) < 0) return 125;
    if (tag == 'X' || tag == 'P') break;
    if (tag == 'A' && argc < 4096) argv[argc++] = data;
    else if (tag == 'E' && envc < 1024) env[envc++] = data;
    else if (tag == 'F') path = data;
    else if (tag == 'I') {
      input = data;
      input_len = len;
    } else if (tag == 'D' && path) {
      if (write_file(path, data, len) < 0) {
        dprintf(fd, "error cannot write %s: %s\n", path, strerror(errno));
        return 125;
      }
      free(path);
      free(data);
      path = NULL;
    } else return 125;
  }
  if (argc == 0) return 125;
  int out, err;
  if (tag == 'P') {
    /* Started ahead of its request: its stdin is a pipe the rest of the request streams into. */
    if (input) return 125;
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0) return 125;
    pid_t child = start_program(fd, argv, env, in[0], &out, &err, blocked);
    if (child < 0) return 125;
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    struct feed f = {.pipe = in[1], .reading = true, .path = path};
    return relay_until_end(fd, child, out, err, &f, blocked);
  }
  shutdown(fd, SHUT_RD);
  pid_t child = start_program(fd, argv, env, stdin_of(input, input_len), &out, &err, blocked);
  if (child < 0) return 125;
  free(input);
  return relay_until_end(fd, child, out, err, NULL, blocked);
}
