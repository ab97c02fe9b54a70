/*
 * realm-vmagent: PID 1 of a realm microVM. Stage 1 (vmagent-boot.c, as /init of the initramfs)
 * builds the sandbox's root, moves into it and re-executes itself as /.realm/init. Stage 2 (this
 * file) serves the host over the virtio-serial port "realm" with framed messages:
 *
 *   frame = type u8 | id u32be | len u32be | payload
 *   host -> guest: 'X' exec (NUL-separated: cwd, nproc, memory bytes, cpu quota per 100 ms, argc, argv..., envc, env...)
 *                  'Y' the same for a one-shot run (its cgroup is killed when the program exits),
 *                  'T' the same on a new pseudo-terminal (rows and cols first, NUL-separated),
 *                  'I' stdin bytes, 'E' stdin end, 'S' signal (u8 signo) to the exec's process
 *                  (a terminal's: its process group), 'W' a terminal's new size ("rows cols"),
 *                  'K' kill the exec's whole tree, 'A' signal (u8) every process but PID 1 and
 *                  the forwarder, 'H' halt the VM, 'P' ping (answered with 'R'), 'U' new sandbox
 *                  limits ("bytes pids"), 'Q' what runs in the guest (answered with 'q'),
 *                  'C' the host's clock ("seconds nanoseconds": the VM has no RTC)
 *   guest -> host: 'R' ready (payload: the protocol version), 'O' stdout, 'e' stderr,
 *                  'a' stdin taken (u32be bytes: the host keeps at most WINDOW unacknowledged),
 *                  'x' exit ("exit N|signal N oom cpu_ms rss"),
 *                  'F' failure text, 'q' the sandbox cgroup's "pids.current pids.peak memory.current\n"
 *                  then per process "pid uid len\n" and its cmdline (len bytes, NUL-separated)
 *
 * Execs are vmagent-exec.c's; network "all" and an allow-list's forwarder (its own port
 * "realm-net") are vmagent-net.c's. The sandbox's root holds no /sys and a minimal /dev: the
 * agent reaches the cgroup tree and its port through descriptors it opened before switching
 * root (fds 3 and 4), which no program it starts inherits.
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
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include "vmagent.h"

/* ---- stage 2: serve the host ---- */

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

void send_frame(char type, uint32_t id, const void *data, uint32_t len) {
  unsigned char h[9];
  h[0] = type;
  put32(h + 1, id);
  put32(h + 5, len);
  writeall(port, h, 9);
  if (len) writeall(port, data, len);
}

int cgfd = -1;

void writestr(const char *path, const char *v) {
  int fd = openat(path[0] == '/' ? AT_FDCWD : cgfd, path, O_WRONLY | O_CLOEXEC);
  if (fd >= 0) { if (write(fd, v, strlen(v)) < 0) {} close(fd); }
}

long long readkey(const char *path, const char *key) {
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

static struct xc *find(uint32_t id) {
  for (int i = 0; i < MAXX; i++) if (xs[i].pid && xs[i].id == id) return &xs[i];
  return NULL;
}

/* The allow-list forwarder (vmagent-net.c): not the sandbox's, so no signal to all reaches it. */
static pid_t forwarder;

static void signal_all(int sig) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d))) {
    int pid = atoi(e->d_name);
    if (pid > 1 && pid != forwarder) kill(pid, sig);
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
  const char *v;
  if ((v = param("realm.net")) && !strcmp(v, "all")) eth0_up();
  /* The forwarder listens before "ready": the first exec finds it there. */
  if ((v = param("realm.proxy"))) forwarder = proxy_start(atoi(v));
  writestr("cgroup.subtree_control", "+memory +pids +cpu");
  mkdirat(cgfd, CG, 0755);
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
  send_frame('R', 0, PROTOCOL, sizeof PROTOCOL - 1);
  static unsigned char in[1 << 20];
  size_t have = 0;
  for (;;) {
    /* Per exec: its output (stdout, stderr: a terminal's master is the first), and its stdin
     * while bytes wait for the program to take them. */
    struct pollfd p[2 + 3 * MAXX];
    int np = 0;
    p[np++] = (struct pollfd){port, POLLIN, 0};
    p[np++] = (struct pollfd){sfd, POLLIN, 0};
    for (int i = 0; i < MAXX; i++) {
      p[np++] = (struct pollfd){xs[i].pid ? xs[i].out : -1, POLLIN, 0};
      p[np++] = (struct pollfd){xs[i].pid ? xs[i].err : -1, POLLIN, 0};
      p[np++] = (struct pollfd){xs[i].pid && xs[i].qlen ? xs[i].in : -1, POLLOUT, 0};
    }
    if (poll(p, np, -1) < 0 && errno != EINTR) die("poll");
    static char buf[65536];
    for (int i = 0; i < MAXX; i++) {
      for (int k = 0; k < 2; k++) {
        struct pollfd *q = &p[2 + 3 * i + k];
        if (q->fd < 0 || !(q->revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = read(q->fd, buf, sizeof buf);
        if (n > 0) send_frame(k ? 'e' : 'O', xs[i].id, buf, n);
        /* EIO from a terminal's master: the last holder of the terminal is gone. */
        else if (n == 0 || errno != EAGAIN) { close(q->fd); if (k) xs[i].err = -1; else xs[i].out = -1; }
      }
      if (p[2 + 3 * i + 2].fd >= 0 && p[2 + 3 * i + 2].revents) exec_flush(&xs[i]);
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
    /* End of file while the host is away (a daemon restarting): wait for it, not spin. */
    if (n == 0) usleep(20000);
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
      case 'X': case 'Y': if (!len) break; pl[len - 1] = 0; start_exec(id, (char *)pl, len, type == 'Y', 0, 0); break;
      case 'T': {
        if (!len) break;
        pl[len - 1] = 0;
        /* rows\0cols\0, then the fields of 'X'. */
        char *rows = (char *)pl, *cols = rows + strlen(rows) + 1;
        char *rest = cols < (char *)pl + len ? cols + strlen(cols) + 1 : (char *)pl + len;
        if (rest >= (char *)pl + len || atoi(rows) <= 0 || atoi(cols) <= 0) { send_frame('F', id, "bad terminal frame", 18); break; }
        start_exec(id, rest, (uint32_t)((char *)pl + len - rest), 0, atoi(rows), atoi(cols));
        break;
      }
      case 'I': if (x) exec_input(x, pl, len); break;
      case 'E': if (x) exec_input_end(x); break;
      case 'S': if (x && !x->exited && len) kill(x->tty ? -x->pid : x->pid, pl[0]); break;
      case 'W': {
        char sz[32];
        int r, c;
        snprintf(sz, sizeof sz, "%.*s", (int)(len < 31 ? len : 31), (char *)pl);
        if (x && sscanf(sz, "%d %d", &r, &c) == 2) exec_resize(x, r, c);
        break;
      }
      case 'K': if (x) { char c[128]; snprintf(c, sizeof c, "%s/cgroup.kill", x->cg); writestr(c, "1"); } break;
      case 'A': if (len) signal_all(pl[0]); break;
      case 'H': halt(); break;
      case 'P': send_frame('R', 0, PROTOCOL, sizeof PROTOCOL - 1); break;
      case 'Q': query(id); break;
      case 'C': {
        /* The wall clock, which certificates and file times need (without it the guest starts in 1970). */
        char t[64];
        struct timespec ts;
        long long sec;
        long nsec;
        snprintf(t, sizeof t, "%.*s", (int)(len < 63 ? len : 63), (char *)pl);
        if (sscanf(t, "%lld %ld", &sec, &nsec) == 2 && sec > 0 && nsec >= 0 && nsec < 1000000000L) {
          ts.tv_sec = (time_t)sec;
          ts.tv_nsec = nsec;
          clock_settime(CLOCK_REALTIME, &ts);
        }
        break;
      }
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
  /* Inside the sandbox, /.realm/init is this program too: `connect` is ssh's ProxyCommand (GIT_SSH_COMMAND) there. */
  if (argc == 4 && strcmp(argv[1], "connect") == 0 && getpid() != 1) return proxy_connect_main(argv[2], argv[3]);
  if (getpid() != 1) { fprintf(stderr, "realm-vmagent: runs only as PID 1 of a realm microVM\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  if (strcmp(argv[0], "/.realm/init") == 0) stage2();
  else stage1();
  return 0;
}
