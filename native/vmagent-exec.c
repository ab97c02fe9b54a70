/*
 * realm-vmagent's execs: each in a cgroup of its own (pids.max, memory.max, cpu.max; cgroup.kill
 * for the tree, memory.events for OOM) as uid 1000 with no capabilities, no_new_privs and realm's
 * seccomp filter, on pipes or on a new pseudo-terminal of the sandbox's devpts. Stdin is queued
 * and written as the program takes it, never blocking the agent: the host keeps at most WINDOW
 * bytes unacknowledged per exec, so the queue is bounded too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <linux/seccomp.h>
#include "vmagent.h"

struct xc xs[MAXX];

static void fail(uint32_t id, const char *why) { send_frame('F', id, why, (uint32_t)strlen(why)); }

/* The exec's cgroup with its limits (fields: nproc, memory bytes, cpu quota per 100 ms). */
static void make_cgroup(const char *cg, const char *nproc, const char *mem, const char *cpu) {
  char path[128];
  mkdirat(cgfd, cg, 0755);
  snprintf(path, sizeof path, "%s/pids.max", cg);
  if (atoi(nproc) > 0) writestr(path, nproc);
  snprintf(path, sizeof path, "%s/memory.max", cg);
  if (atoll(mem) > 0) writestr(path, mem);
  if (atoll(cpu) > 0) {
    char q[64];
    snprintf(q, sizeof q, "%lld 100000", atoll(cpu));
    snprintf(path, sizeof path, "%s/cpu.max", cg);
    writestr(path, q);
  }
  snprintf(path, sizeof path, "%s/memory.swap.max", cg);
  writestr(path, "0");
}

void start_exec(uint32_t id, char *pl, uint32_t len, int oneshot, int rows, int cols) {
  struct xc *x = NULL;
  for (int i = 0; i < MAXX; i++) if (!xs[i].pid) { x = &xs[i]; break; }
  if (!x) { fail(id, "too many execs"); return; }
  /* Fields: cwd, nproc, memory, cpu, argc, argv..., envc, env... */
  char *f[4096];
  int nf = 0;
  for (char *p = pl; p < pl + len && nf < 4095; p += strlen(p) + 1) f[nf++] = p;
  if (nf < 5) { fail(id, "bad exec frame"); return; }
  int argc = atoi(f[4]);
  if (argc < 1 || 5 + argc >= nf) { fail(id, "bad exec argv"); return; }
  int envc = atoi(f[5 + argc]);
  if (envc < 0 || 6 + argc + envc > nf) { fail(id, "bad exec env"); return; }
  /* The terminal first: a failure here leaves nothing to undo. The slave belongs to the sandbox
   * user (as where the user opens it itself); the master stays with the agent. */
  int master = -1;
  char slave[64] = "";
  if (rows > 0) {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, slave, sizeof slave) != 0) {
      if (master >= 0) close(master);
      fail(id, "cannot allocate a pseudo-terminal");
      return;
    }
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(master, TIOCSWINSZ, &ws);
    if (chown(slave, UID, UID) < 0) {}
  }
  int pi[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1};
  if (master < 0 && (pipe2(pi, O_CLOEXEC) || pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC))) { fail(id, "pipe"); return; }
  char **argv = calloc(argc + 1, sizeof *argv), **envp = calloc(envc + 1, sizeof *envp);
  for (int i = 0; i < argc; i++) argv[i] = f[5 + i];
  for (int i = 0; i < envc; i++) envp[i] = f[6 + argc + i];
  char cg[64], path[128];
  snprintf(cg, sizeof cg, CG "/x%u", id);
  make_cgroup(cg, f[1], f[2], f[3]);
  snprintf(path, sizeof path, "%s/cgroup.procs", cg);
  pid_t pid = fork();
  if (pid == 0) {
    int cfd = openat(cgfd, path, O_WRONLY | O_CLOEXEC);
    if (cfd < 0 || write(cfd, "0", 1) != 1) { perror("realm-vmagent: join the exec's cgroup"); _exit(126); }
    close(cfd);
    setsid();
    if (master >= 0) {
      /* Opened after setsid, made the controlling terminal: Ctrl-C, job control, SIGWINCH. */
      int s = open(slave, O_RDWR | O_CLOEXEC);
      if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0) _exit(126);
      dup2(s, 0);
      dup2(s, 1);
      dup2(s, 2);
    } else {
      dup2(pi[0], 0);
      dup2(po[1], 1);
      dup2(pe[1], 2);
    }
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int s = 1; s < 32; s++) signal(s, SIG_DFL);
    if (setgroups(0, NULL) || setgid(UID) || setuid(UID)) { perror("realm-vmagent: drop to the sandbox user"); _exit(126); }
    if (chdir(f[0]) < 0) { fprintf(stderr, "realm-vmagent: cd %s: %s\n", f[0], strerror(errno)); _exit(126); }
    /* The namespace driver's filter: the guest kernel is the sandbox's, but no less a target. */
    struct sock_fprog prog = {.len = (unsigned short)filter_len, .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) { perror("realm-vmagent: seccomp"); _exit(126); }
    execvpe(argv[0], argv, envp);
    fprintf(stderr, "realm-vmagent: %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  free(argv);
  free(envp);
  if (master < 0) {
    close(pi[0]);
    close(po[1]);
    close(pe[1]);
  }
  if (pid < 0) {
    int fds[] = {master, pi[1], po[0], pe[0]};
    for (int i = 0; i < 4; i++) if (fds[i] >= 0) close(fds[i]);
    unlinkat(cgfd, cg, AT_REMOVEDIR);
    fail(id, "fork");
    return;
  }
  if (master >= 0) *x = (struct xc){.id = id, .pid = pid, .in = fcntl(master, F_DUPFD_CLOEXEC, 3), .out = master, .err = -1, .tty = 1, .oneshot = oneshot};
  else *x = (struct xc){.id = id, .pid = pid, .in = pi[1], .out = po[0], .err = pe[0], .oneshot = oneshot};
  snprintf(x->cg, sizeof x->cg, "%s", cg);
  if (x->in >= 0) fcntl(x->in, F_SETFL, O_NONBLOCK);
}

/* Acknowledge `n` bytes of stdin as taken (or dropped), so the host may send more. */
static void ack(struct xc *x, size_t n) {
  unsigned char b[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n};
  if (n) send_frame('a', x->id, b, 4);
}

static void close_input(struct xc *x) {
  if (x->in >= 0) close(x->in);
  x->in = -1;
  ack(x, x->qlen);
  free(x->q);
  x->q = NULL;
  x->qlen = 0;
}

void exec_input(struct xc *x, const unsigned char *p, uint32_t len) {
  if (x->in < 0 || x->in_end) { ack(x, len); return; }
  /* More than the window means a host that does not wait: it is refused, not buffered. */
  if (x->qlen + len > 2 * WINDOW) { ack(x, len); return; }
  unsigned char *q = realloc(x->q, x->qlen + len);
  if (!q) { ack(x, len); return; }
  memcpy(q + x->qlen, p, len);
  x->q = q;
  x->qlen += len;
  exec_flush(x);
}

void exec_flush(struct xc *x) {
  size_t done = 0;
  while (x->in >= 0 && done < x->qlen) {
    ssize_t w = write(x->in, x->q + done, x->qlen - done);
    if (w > 0) { done += (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) break;
    /* The program closed its stdin: the rest is dropped (and acknowledged with what it took). */
    close_input(x);
    return;
  }
  if (done) {
    memmove(x->q, x->q + done, x->qlen - done);
    x->qlen -= done;
    ack(x, done);
  }
  /* A terminal keeps its input open: the end of the host's stdin is no end-of-file there (as under namespace). */
  if (x->in >= 0 && x->in_end && x->qlen == 0) close_input(x);
}

void exec_input_end(struct xc *x) {
  x->in_end = 1;
  exec_flush(x);
}

void exec_resize(struct xc *x, int rows, int cols) {
  if (!x->tty || x->out < 0 || rows <= 0 || cols <= 0 || rows > 9999 || cols > 9999) return;
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  ioctl(x->out, TIOCSWINSZ, &ws);
}

void finish(struct xc *x) {
  char path[128], msg[128];
  snprintf(path, sizeof path, "%s/memory.events", x->cg);
  long long oom = readkey(path, "oom_kill");
  snprintf(path, sizeof path, "%s/cpu.stat", x->cg);
  long long cpu = readkey(path, "usage_usec") / 1000;
  snprintf(path, sizeof path, "%s/memory.peak", x->cg);
  long long peak = readkey(path, NULL);
  if (!peak) { snprintf(path, sizeof path, "%s/memory.current", x->cg); peak = readkey(path, NULL); }
  int st = x->status;
  snprintf(msg, sizeof msg, "%s %d %lld %lld %lld", WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), oom, cpu, peak);
  /* Whatever the program wrote reaches the home disk now: the VM may be killed at any time. */
  sync();
  send_frame('x', x->id, msg, strlen(msg));
  if (x->in >= 0) close(x->in);
  free(x->q);
  /* A sandbox exec's background processes live on in its cgroup; it is removed once empty. */
  unlinkat(cgfd, x->cg, AT_REMOVEDIR);
  memset(x, 0, sizeof *x);
}
