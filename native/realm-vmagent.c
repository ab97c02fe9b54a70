/*
 * realm-vmagent: PID 1 of a realm microVM. Stage 1 (vmagent-boot.c, as /init of the initramfs)
 * builds the sandbox's root, moves into it and re-executes itself as /.realm/init. Stage 2 (this
 * file) serves the host over the virtio-serial port "realm" with framed messages:
 *
 *   frame = type u8 | id u32be | len u32be | payload
 *   host -> guest: 'X' exec (NUL-separated: cwd, nproc, memory bytes, cpu quota per 100 ms, argc, argv..., envc, env...)
 *                  'Y' the same for a one-shot run (its cgroup is killed when the program exits),
 *                  'I' stdin bytes, 'E' stdin end, 'S' signal (u8 signo) to the exec's process,
 *                  'K' kill the exec's whole tree, 'A' signal (u8) every process but PID 1,
 *                  'H' halt the VM, 'P' ping (answered with 'R'), 'U' new sandbox limits ("bytes pids"),
 *                  'Q' what runs in the guest (answered with 'q')
 *   guest -> host: 'R' ready, 'O' stdout, 'e' stderr, 'x' exit ("exit N|signal N oom cpu_ms rss"),
 *                  'F' failure text, 'q' the sandbox cgroup's "pids.current pids.peak memory.current\n"
 *                  then per process "pid uid len\n" and its cmdline (len bytes, NUL-separated)
 *
 * Every exec runs in a cgroup of its own (pids.max, memory.max, cgroup.kill for the tree, and
 * memory.events for OOM) as uid 1000 with no capabilities, no_new_privs and realm's seccomp
 * filter (the namespace driver's, /.realm/seccomp). The sandbox's root holds no /sys and a
 * minimal /dev: the agent reaches the cgroup tree and its port through descriptors it opened
 * before switching root (fds 3 and 4), which no program it starts inherits.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include "vmagent.h"

#define MAXX 64
/* The sandbox's cgroup (relative to the cgroup2 root, fd CGFD): the sandbox-wide limits; each exec gets a child of its own. */
#define CG "sb"

/* ---- stage 2: serve the host ---- */

struct xc {
  uint32_t id;
  pid_t pid;
  int in, out, err;
  int exited, status, oneshot;
  char cg[64];
};
static struct xc xs[MAXX];
static int port;

static void put32(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint32_t get32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

static void writeall(int fd, const void *b, size_t n) {
  const char *p = b;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR || errno == EAGAIN) { struct pollfd q = {fd, POLLOUT, 0}; poll(&q, 1, 100); continue; } die("write to host"); }
    p += w;
    n -= w;
  }
}

static void send_frame(char type, uint32_t id, const void *data, uint32_t len) {
  unsigned char h[9];
  h[0] = type;
  put32(h + 1, id);
  put32(h + 5, len);
  writeall(port, h, 9);
  if (len) writeall(port, data, len);
}

/* The cgroup tree (fd CGFD in stage 2); files under it are named relative to it. */
static int cgfd = -1;

static void writestr(const char *path, const char *v) {
  int fd = openat(path[0] == '/' ? AT_FDCWD : cgfd, path, O_WRONLY | O_CLOEXEC);
  if (fd >= 0) { if (write(fd, v, strlen(v)) < 0) {} close(fd); }
}

static long long readkey(const char *path, const char *key) {
  char buf[4096];
  int fd = openat(path[0] == '/' ? AT_FDCWD : cgfd, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  if (!key) return atoll(buf);
  size_t k = strlen(key);
  for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (!strncmp(p, key, k) && p[k] == ' ') return atoll(p + k + 1);
  return 0;
}

/* 'q': the sandbox cgroup's counters, then every user process (kernel threads have no cmdline). */
static void query(uint32_t id) {
  static char out[1 << 19];
  size_t n = (size_t)snprintf(out, sizeof out, "%lld %lld %lld\n", readkey(CG "/pids.current", NULL), readkey(CG "/pids.peak", NULL), readkey(CG "/memory.current", NULL));
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    int pid = atoi(e->d_name);
    if (pid <= 0) continue;
    char p[64], cmd[4096];
    snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t len = read(fd, cmd, sizeof cmd);
    close(fd);
    if (len <= 0) continue;
    struct stat st;
    snprintf(p, sizeof p, "/proc/%d", pid);
    if (stat(p, &st) < 0) continue;
    if (n + 64 + (size_t)len > sizeof out) break;
    n += (size_t)snprintf(out + n, sizeof out - n, "%d %u %zd\n", pid, st.st_uid, len);
    memcpy(out + n, cmd, (size_t)len);
    n += (size_t)len;
  }
  if (d) closedir(d);
  send_frame('q', id, out, (uint32_t)n);
}

static void start_exec(uint32_t id, char *pl, uint32_t len, int oneshot) {
  struct xc *x = NULL;
  for (int i = 0; i < MAXX; i++) if (!xs[i].pid) { x = &xs[i]; break; }
  if (!x) { send_frame('F', id, "too many execs", 14); return; }
  /* Fields: cwd, nproc, memory, argc, argv..., envc, env... */
  char *f[4096];
  int nf = 0;
  for (char *p = pl; p < pl + len && nf < 4095; p += strlen(p) + 1) f[nf++] = p;
  if (nf < 5) { send_frame('F', id, "bad exec frame", 14); return; }
  int argc = atoi(f[4]);
  if (argc < 1 || 5 + argc >= nf) { send_frame('F', id, "bad exec argv", 13); return; }
  int envc = atoi(f[5 + argc]);
  if (envc < 0 || 6 + argc + envc > nf) { send_frame('F', id, "bad exec env", 12); return; }
  char **argv = calloc(argc + 1, sizeof *argv), **envp = calloc(envc + 1, sizeof *envp);
  for (int i = 0; i < argc; i++) argv[i] = f[5 + i];
  for (int i = 0; i < envc; i++) envp[i] = f[6 + argc + i];
  snprintf(x->cg, sizeof x->cg, CG "/x%u", id);
  mkdirat(cgfd, x->cg, 0755);
  char path[128];
  snprintf(path, sizeof path, "%s/pids.max", x->cg);
  if (atoi(f[1]) > 0) writestr(path, f[1]);
  snprintf(path, sizeof path, "%s/memory.max", x->cg);
  if (atoll(f[2]) > 0) writestr(path, f[2]);
  if (atoll(f[3]) > 0) {
    char q[64];
    snprintf(q, sizeof q, "%lld 100000", atoll(f[3]));
    snprintf(path, sizeof path, "%s/cpu.max", x->cg);
    writestr(path, q);
  }
  snprintf(path, sizeof path, "%s/memory.swap.max", x->cg);
  writestr(path, "0");
  int pi[2], po[2], pe[2];
  if (pipe2(pi, O_CLOEXEC) || pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) { send_frame('F', id, "pipe", 4); return; }
  snprintf(path, sizeof path, "%s/cgroup.procs", x->cg);
  pid_t pid = fork();
  if (pid == 0) {
    int cfd = openat(cgfd, path, O_WRONLY | O_CLOEXEC);
    if (cfd < 0 || write(cfd, "0", 1) != 1) { perror("realm-vmagent: join the exec's cgroup"); _exit(126); }
    close(cfd);
    setsid();
    dup2(pi[0], 0);
    dup2(po[1], 1);
    dup2(pe[1], 2);
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
  close(pi[0]);
  close(po[1]);
  close(pe[1]);
  if (pid < 0) { close(pi[1]); close(po[0]); close(pe[0]); unlinkat(cgfd, x->cg, AT_REMOVEDIR); send_frame('F', id, "fork", 4); return; }
  *x = (struct xc){.id = id, .pid = pid, .in = pi[1], .out = po[0], .err = pe[0], .oneshot = oneshot};
  snprintf(x->cg, sizeof x->cg, CG "/x%u", id);
  fcntl(x->in, F_SETFL, O_NONBLOCK);
}

static struct xc *find(uint32_t id) {
  for (int i = 0; i < MAXX; i++) if (xs[i].pid && xs[i].id == id) return &xs[i];
  return NULL;
}

static void finish(struct xc *x) {
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
  /* A sandbox exec's background processes live on in its cgroup; it is removed once empty. */
  unlinkat(cgfd, x->cg, AT_REMOVEDIR);
  memset(x, 0, sizeof *x);
}

static void signal_all(int sig) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    int pid = atoi(e->d_name);
    if (pid > 1) kill(pid, sig);
  }
  if (d) closedir(d);
}

static void reap_cgroups(void) {
  int dfd = openat(cgfd, CG, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] != 'x') continue;
    uint32_t id = strtoul(e->d_name + 1, NULL, 10);
    if (find(id)) continue;
    unlinkat(dfd, e->d_name, AT_REMOVEDIR);
  }
  if (d) closedir(d);
}

static void halt(void) {
  signal_all(SIGKILL);
  sync();
  reboot(RB_POWER_OFF);
  _exit(0);
}

static void stage2(void) {
  read_cmdline();
  port = PORTFD;
  cgfd = CGFD;
  fcntl(port, F_SETFD, FD_CLOEXEC);
  fcntl(cgfd, F_SETFD, FD_CLOEXEC);
  load_filter();
  loopback_up();
  writestr("cgroup.subtree_control", "+memory +pids +cpu");
  mkdirat(cgfd, CG, 0755);
  const char *v;
  if ((v = param("realm.mem"))) writestr(CG "/memory.max", v);
  if ((v = param("realm.pids"))) writestr(CG "/pids.max", v);
  writestr(CG "/memory.swap.max", "0");
  writestr(CG "/cgroup.subtree_control", "+memory +pids +cpu");
  /* Allocations past the guest's RAM succeed as on a big host: the exec's memory.max then ends
   * them with an OOM kill (reported as such), not a MemoryError that depends on the VM's size. */
  writestr("/proc/sys/vm/overcommit_memory", "1");
  /* Unprivileged user namespaces are the widest door into a kernel: closed here too, under the filter. */
  writestr("/proc/sys/user/max_user_namespaces", "0");
  writestr("/proc/sys/kernel/unprivileged_userns_clone", "0");
  fcntl(port, F_SETFL, O_NONBLOCK);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  send_frame('R', 0, NULL, 0);
  static unsigned char in[1 << 20];
  size_t have = 0;
  for (;;) {
    struct pollfd p[2 + 2 * MAXX];
    int np = 0;
    p[np++] = (struct pollfd){port, POLLIN, 0};
    p[np++] = (struct pollfd){sfd, POLLIN, 0};
    for (int i = 0; i < MAXX; i++) {
      p[np++] = (struct pollfd){xs[i].pid ? xs[i].out : -1, POLLIN, 0};
      p[np++] = (struct pollfd){xs[i].pid ? xs[i].err : -1, POLLIN, 0};
    }
    if (poll(p, np, -1) < 0 && errno != EINTR) die("poll");
    static char buf[65536];
    for (int i = 0; i < MAXX; i++) {
      for (int k = 0; k < 2; k++) {
        struct pollfd *q = &p[2 + 2 * i + k];
        if (q->fd < 0 || !(q->revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = read(q->fd, buf, sizeof buf);
        if (n > 0) send_frame(k ? 'e' : 'O', xs[i].id, buf, n);
        else if (n == 0 || errno != EAGAIN) { close(q->fd); if (k) xs[i].err = -1; else xs[i].out = -1; }
      }
    }
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {}
      int st;
      pid_t pid;
      while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
        for (int i = 0; i < MAXX; i++)
          if (xs[i].pid == pid) {
            xs[i].exited = 1;
            xs[i].status = st;
            /* A one-shot run lives and dies with its program: whatever it left behind goes now. */
            if (xs[i].oneshot) { char c[128]; snprintf(c, sizeof c, "%s/cgroup.kill", xs[i].cg); writestr(c, "1"); }
          }
      reap_cgroups();
    }
    /* An exec ends when its process exited and its output pipes closed. */
    for (int i = 0; i < MAXX; i++)
      if (xs[i].pid && xs[i].exited && xs[i].out < 0 && xs[i].err < 0) finish(&xs[i]);
    if (p[0].revents & (POLLHUP | POLLERR) && !(p[0].revents & POLLIN)) { usleep(20000); }
    if (!(p[0].revents & POLLIN)) continue;
    ssize_t n = read(port, in + have, sizeof in - have);
    if (n <= 0) continue;
    have += n;
    while (have >= 9) {
      uint32_t id = get32(in + 1), len = get32(in + 5);
      if (len > sizeof in - 9) die("frame too big");
      if (have < 9 + len) break;
      char type = in[0];
      unsigned char *pl = in + 9;
      struct xc *x = find(id);
      switch (type) {
      case 'X': case 'Y': if (!len) break; pl[len - 1] = 0; start_exec(id, (char *)pl, len, type == 'Y'); break;
      case 'I': if (x && x->in >= 0) { fcntl(x->in, F_SETFL, 0); if (write(x->in, pl, len) < 0) {} } break;
      case 'E': if (x && x->in >= 0) { close(x->in); x->in = -1; } break;
      case 'S': if (x && !x->exited && len) kill(x->pid, pl[0]); break;
      case 'K': if (x) { char c[128]; snprintf(c, sizeof c, "%s/cgroup.kill", x->cg); writestr(c, "1"); } break;
      case 'A': if (len) signal_all(pl[0]); break;
      case 'H': halt(); break;
      case 'P': send_frame('R', 0, NULL, 0); break;
      case 'Q': query(id); break;
      case 'U': {
        /* New sandbox-wide limits: "memory-bytes pids". */
        char lim[64], a[32], b[32];
        snprintf(lim, sizeof lim, "%.*s", (int)(len < 63 ? len : 63), (char *)pl);
        if (sscanf(lim, "%31s %31s", a, b) == 2) { writestr(CG "/memory.max", a); writestr(CG "/pids.max", b); }
        break;
      }
      default: break;
      }
      memmove(in, in + 9 + len, have - 9 - len);
      have -= 9 + len;
    }
  }
}

int main(int argc, char **argv) {
  (void)argc;
  if (getpid() != 1) { fprintf(stderr, "realm-vmagent: runs only as PID 1 of a realm microVM\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(argv[0], "/.realm/init") == 0) stage2();
  else stage1();
  return 0;
}
