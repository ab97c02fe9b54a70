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
 *                    or, for an interpreter started ahead whose main file comes late (python,
 *                    which starts in ~10 ms before it opens its script): E and A, then L the
 *                    main file's name, start it now; later the request whole, as for any
 *                    program (F/D, I, X), after which the main file is put in place;
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
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "init-records.h"
#include "init-serve.h"

extern char **environ;

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
  /* A late main file's FIFO (the pipe): an inotify descriptor that says when the program opened
   * it, -1 once it did (or for a stdin pipe), and its watch. Our end is kept till then: were it
   * closed first, the bytes written into it would go with it. */
  int opened, watch;
};

/* The program has opened its main file: stop watching. The inotify descriptor itself is left to
 * our exit: closing it waits out an RCU grace period (~15 ms) for the watch's removal, which by
 * then is long done. */
static int watched(int opened, int watch) {
  inotify_rm_watch(opened, watch);
  return -1;
}

/* Close the pipe once the request is whole, all of it is written, and the program has it open. */
static void feed_done(struct feed *f) {
  if (!f->reading && !f->pend && f->pipe >= 0 && f->opened < 0) close(f->pipe), f->pipe = -1;
}

/* One record of the streamed rest; 0, or -1 when the request is broken (the sandbox ends). */
static int feed_record(int fd, struct feed *f) {
  char tag, *data;
  size_t len;
  if (read_record(fd, &tag, &data, &len) < 0) return -1;
  if (tag == 'F') {
    free(f->path);
    f->path = data;
  } else if (tag == 'D' && f->path) {
    if (take_file(fd, &f->path, data, len) < 0) return -1;
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
  feed_done(f);
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
  feed_done(f);
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
    struct pollfd p[6] = {{out, POLLIN, 0}, {err, POLLIN, 0}, {sfd, POLLIN, 0},
                          {-1, POLLIN, 0},  {-1, POLLOUT, 0}, {-1, POLLIN, 0}};
    if (f && f->reading && !f->pend) p[3].fd = fd;
    if (f && f->pend) p[4].fd = f->pipe;
    if (f) p[5].fd = f->opened;
    if (poll(p, 6, -1) < 0 && errno != EINTR) return 125;
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
    if (p[5].revents) {
      f->opened = watched(f->opened, f->watch);
      feed_done(f);
    }
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

/* Write the late main file beside its FIFO and rename it over it; 0 on success. */
static int place_late(const char *path, const char *data, size_t len) {
  char tmp[] = ".realm-late-XXXXXX";
  int t = mkostemp(tmp, O_CLOEXEC);
  if (t < 0) return -1;
  mode_t mask = umask(0);
  umask(mask);
  int r = write_all(t, data, len) < 0 || fchmod(t, 0644 & ~mask) < 0 ? -1 : 0;
  if (close(t) < 0 || r < 0 || rename(tmp, path) < 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

/*
 * An interpreter started ahead whose main file comes late: the file is a FIFO it blocks on once
 * it has started (we hold the FIFO's other end, so its open returns and its first read waits),
 * its stdin a memfd. The request then comes whole (F/D, I, X), as for a program started with
 * it: the other files are written, the stdin filled; then the main file is written beside the
 * FIFO and renamed over it (what the program reads later by its name is the file), and its
 * bytes go through the FIFO, which we close once the program has it open. An interpreter that
 * opens its main file only after the rename reads the file itself.
 */
static int serve_late(int fd, char **argv, char **env, char *main_path, const sigset_t *blocked) {
  if (!main_path[0] || strchr(main_path, '/') || !strcmp(main_path, ".") || !strcmp(main_path, "..")) return 125;
  int fifo = -1, opened = -1, watch = -1, in = -1;
  if (mkfifo(main_path, 0644) < 0 || (fifo = open(main_path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0 ||
      (opened = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
      (watch = inotify_add_watch(opened, main_path, IN_OPEN)) < 0 ||
      (in = (int)syscall(SYS_memfd_create, "stdin", MFD_CLOEXEC)) < 0) {
    dprintf(fd, "error cannot set up %s: %s\n", main_path, strerror(errno));
    return 125;
  }
  int out, err;
  pid_t child = start_program(fd, argv, env, fcntl(in, F_DUPFD_CLOEXEC, 3), &out, &err, blocked);
  if (child < 0) return 125;
  /* Until the request comes, wait for the program to open its main file (it has then started: a
   * warm sandbox's usual case), so that the request's end need not wait for it. */
  if (!in_held()) {
    struct pollfd p[2] = {{opened, POLLIN, 0}, {fd, POLLIN, 0}};
    while (poll(p, 2, -1) < 0 && errno == EINTR) {}
    if (p[0].revents) opened = watched(opened, watch);
  }
  /* The request, whole. The program waits on its main file meanwhile: it reads nothing else. */
  char *path = NULL, *main_data = NULL;
  size_t main_len = 0;
  for (;;) {
    char tag, *data;
    size_t len;
    if (read_record(fd, &tag, &data, &len) < 0) return 125;
    if (tag == 'X') {
      free(data);
      break;
    }
    if (tag == 'F') {
      free(path);
      path = data;
    } else if (tag == 'D' && path && !strcmp(path, main_path)) {
      if (main_data) { /* a second file of that name: refused, as write_file refuses it */
        dprintf(fd, "error cannot write %s: %s\n", path, strerror(EEXIST));
        return 125;
      }
      main_data = data;
      main_len = len;
      free(path);
      path = NULL;
    } else if (tag == 'D' && path) {
      if (take_file(fd, &path, data, len) < 0) return 125;
    } else if (tag == 'I') {
      if (write_all(in, data, len) < 0) return 125;
      free(data);
    } else return 125;
  }
  shutdown(fd, SHUT_RD);
  /* The program's stdin shares our file position: back to its start before the program can read
   * it (it reads nothing until its main file comes, below), as stdin_of leaves a cold one's. */
  if (lseek(in, 0, SEEK_SET) < 0) return 125;
  close(in);
  if (place_late(main_path, main_data ? main_data : "", main_len) < 0) {
    dprintf(fd, "error cannot write %s: %s\n", main_path, strerror(errno));
    return 125;
  }
  struct feed f = {.pipe = fifo, .reading = false, .opened = opened, .watch = watch};
  if (main_len > 0) f.pend = main_data, f.pend_len = main_len;
  else free(main_data);
  feed_pipe(&f);
  return relay_until_end(fd, child, out, err, &f, blocked);
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
    if (tag == 'L') return argc > 0 && !path && !input ? serve_late(fd, argv, env, data, blocked) : 125;
    if (tag == 'A' && argc < 4096) argv[argc++] = data;
    else if (tag == 'E' && envc < 1024) env[envc++] = data;
    else if (tag == 'F') path = data;
    else if (tag == 'I') {
      input = data;
      input_len = len;
    } else if (tag == 'D' && path) {
      if (take_file(fd, &path, data, len) < 0) return 125;
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
    struct feed f = {.pipe = in[1], .reading = true, .path = path, .opened = -1, .watch = -1};
    return relay_until_end(fd, child, out, err, &f, blocked);
  }
  shutdown(fd, SHUT_RD);
  pid_t child = start_program(fd, argv, env, stdin_of(input, input_len), &out, &err, blocked);
  if (child < 0) return 125;
  free(input);
  return relay_until_end(fd, child, out, err, NULL, blocked);
}
