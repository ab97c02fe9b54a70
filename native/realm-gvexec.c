/*
 * realm-gvexec: how the gvisor driver runs one exec inside a gVisor sandbox.
 *
 *   realm-gvexec STATUSFILE UID GID [--nproc N] [--tty ROWSxCOLS SIZEFILE] -- CMD...
 *   realm-gvexec --signal-all SIGNO     (signal every process of the sandbox but PID 1 and its
 *                                        allow-list proxy forwarder, "realm-proxy")
 *
 * `runsc exec` starts it as uid 0 of the sandbox with CAP_SETUID, CAP_SETGID, CAP_KILL and
 * CAP_SYS_ADMIN (gVisor's own root: no host privilege). It makes a new PID namespace whose init
 * (a fork of ours, still root) forks CMD, which drops to UID:GID with no capabilities,
 * no_new_privs and the namespace driver's seccomp filter (/.realm/seccomp). Everything CMD starts — setsid'd and double-forked children included — lives in
 * that namespace, so (gVisor 20221219 has no PR_SET_CHILD_SUBREAPER):
 *   - signals sent to us are forwarded through the init to CMD (its process group on a terminal);
 *   - SIGSTKFLT ("kill the tree"; unused by programs, and a name runsc kill knows) SIGKILLs the namespace's init, which takes every process of
 *     the namespace with it; then we exit;
 *   - when CMD ends we write "exit N CPU_MS" or "signal N CPU_MS" to STATUSFILE (a directory the
 *     sandbox user cannot write) and exit like CMD — `runsc exec` alone cannot tell a signal
 *     from an exit code of 128+N. The init stays, reaping CMD's leftovers, until they are gone.
 * With --tty, CMD runs on a new pseudo-terminal and we relay stdin/stdout; on SIGWINCH we read
 * "ROWS COLS" from SIZEFILE (written by the daemon) and resize the terminal.
 * Built static so it runs in any image.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KILL_TREE SIGSTKFLT
/* The filter program (classic BPF, written by `realm-helper seccomp`), bound in read-only. */
#define SECCOMP_FILE "/.realm/seccomp"

static pid_t child = -1;
static int done = 0, child_status = 0;
static long cpu_ms = 0;

static void die(const char *what) {
  fprintf(stderr, "realm-gvexec: %s: %s\n", what, strerror(errno));
  _exit(125);
}

static void noop(int sig) {
  (void)sig;
}

/* Reap whatever ended; note CMD's status (with the CPU time of CMD and what it waited for). */
static int reap(void) {
  for (;;) {
    int st;
    struct rusage ru;
    pid_t p = wait4(-1, &st, WNOHANG, &ru);
    if (p == 0) return 0;
    if (p < 0) return errno == ECHILD ? -1 : 0;
    if (p == child) {
      done = 1;
      child_status = st;
      cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
    }
  }
}

static void resize(int master, const char *size_file) {
  char buf[64];
  int fd = open(size_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  int rows, cols;
  if (n <= 0) return;
  buf[n] = 0;
  if (sscanf(buf, "%d %d", &rows, &cols) == 2 && rows > 0 && cols > 0 && rows < 10000 && cols < 10000) {
    struct winsize w = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(master, TIOCSWINSZ, &w);
  }
}

/*
 * PID 1 of the exec's namespace: start CMD, relay its terminal, forward signals, report CMD's
 * end on `report`, then reap leftovers until none is left.
 */
static void ns_init(int report, uid_t uid, gid_t gid, long nproc, int rows, int cols, const char *size_file, char **cmd, const sigset_t *all) {
  /* An init only gets signals it handles: handle them all (blocked, read from a signalfd). */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = noop;
  for (int s = 1; s < NSIG; s++) sigaction(s, &sa, NULL);
  int master = -1;
  char slave[64];
  if (rows) {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, slave, sizeof slave) != 0) die("pseudo-terminal");
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(master, TIOCSWINSZ, &ws);
  }
  /* The same seccomp filter as the namespace driver's sandboxes (inside gVisor's kernel). */
  static struct sock_filter insns[BPF_MAXINSNS];
  int ffd = open(SECCOMP_FILE, O_RDONLY | O_CLOEXEC);
  if (ffd < 0) die(SECCOMP_FILE);
  ssize_t flen = read(ffd, insns, sizeof insns);
  close(ffd);
  if (flen <= 0 || flen % (ssize_t)sizeof(struct sock_filter) != 0) {
    fprintf(stderr, "realm-gvexec: bad seccomp program %s\n", SECCOMP_FILE);
    _exit(125);
  }
  child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    if (setsid() < 0) die("setsid");
    if (rows) {
      int s = open(slave, O_RDWR);
      if (s < 0) die(slave);
      ioctl(s, TIOCSCTTY, 0);
      dup2(s, 0);
      dup2(s, 1);
      dup2(s, 2);
      if (s > 2) close(s);
    }
    syscall(SYS_close_range, 3U, ~0U, 0);
    /* The sandbox's process limit, counted by gVisor over all processes of the sandbox user. */
    struct rlimit rl = {.rlim_cur = (rlim_t)nproc, .rlim_max = (rlim_t)nproc};
    if (nproc > 0 && setrlimit(RLIMIT_NPROC, &rl) < 0) die("RLIMIT_NPROC");
    if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0) die("drop privileges");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
    struct sock_fprog prog = {.len = (unsigned short)(flen / (ssize_t)sizeof(struct sock_filter)), .filter = insns};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) die("seccomp");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) sigaction(s, &sa, NULL);
    sigprocmask(SIG_UNBLOCK, all, NULL);
    execvp(cmd[0], cmd);
    fprintf(stderr, "realm: cannot run %s: %s\n", cmd[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  /* Leftovers must not hold the exec's output open through us: only the terminal relay needs stdio. */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (!rows && null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  int sfd = signalfd(-1, all, SFD_CLOEXEC);
  if (sfd < 0) die("signalfd");
  int in_open = rows > 0, out_open = rows > 0, reported = 0;
  char buf[16384];
  for (;;) {
    struct pollfd p[3] = {{sfd, POLLIN, 0}, {out_open ? master : -1, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}};
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    int none_left = 0;
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD) none_left = reap() < 0;
        else if (sig == SIGWINCH && master >= 0 && size_file) resize(master, size_file);
        else if (!done) kill(rows ? -child : child, sig);
      }
    }
    if (out_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t r = read(master, buf, sizeof buf);
      if (r <= 0) out_open = 0; /* EIO: the terminal's last user is gone */
      else if (write(1, buf, (size_t)r) < 0) out_open = 0;
    }
    if (in_open && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t r = read(0, buf, sizeof buf);
      if (r <= 0) in_open = 0;
      else if (write(master, buf, (size_t)r) < 0) in_open = 0;
    }
    if (done && out_open) {
      /* gVisor's terminal does not always say EIO once CMD is gone: take what is left, then stop. */
      fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
      for (;;) {
        ssize_t r = read(master, buf, sizeof buf);
        if (r <= 0 || write(1, buf, (size_t)r) < 0) break;
      }
      out_open = 0;
    }
    if (done && !out_open && !reported) {
      if (rows && null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        close(master);
        in_open = 0;
      }
      if (WIFEXITED(child_status)) dprintf(report, "exit %d %ld\n", WEXITSTATUS(child_status), cpu_ms);
      else dprintf(report, "signal %d %ld\n", WTERMSIG(child_status), cpu_ms);
      close(report);
      reported = 1;
      none_left = reap() < 0;
    }
    if (reported && none_left) _exit(0);
  }
}

static void finish(const char *status_file, const char *line) {
  char kind[16] = "signal";
  int n = 9;
  long cpu = 0;
  if (sscanf(line, "%15s %d %ld", kind, &n, &cpu) < 2) {
    strcpy(kind, "signal");
    n = 9;
  }
  int fd = open(status_file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) {
    dprintf(fd, "%s %d %ld\n", kind, n, cpu);
    fsync(fd);
    close(fd);
  }
  _exit(strcmp(kind, "exit") == 0 ? n : 128 + n);
}

/* A process's name and parent from /proc/PID/stat; -1 when it is gone. */
static pid_t stat_of(pid_t pid, char *comm, size_t len) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *open_ = strchr(buf, '('), *close_ = strrchr(buf, ')');
  if (!open_ || !close_ || close_ < open_) return -1;
  size_t c = (size_t)(close_ - open_ - 1);
  if (c >= len) c = len - 1;
  memcpy(comm, open_ + 1, c);
  comm[c] = 0;
  int ppid;
  if (sscanf(close_ + 2, "%*c %d", &ppid) != 1) return -1;
  return (pid_t)ppid;
}

/* PID 1's proxy forwarder or one of its connections: named realm-proxy, a child of PID 1 or of
 * that child. A sandbox program cannot be either (each exec has its own PID namespace, whose
 * orphans go to that namespace's init), so renaming itself does not spare it. */
static int is_forwarder(pid_t pid) {
  char comm[32], pcomm[32];
  pid_t ppid = stat_of(pid, comm, sizeof comm);
  if (ppid < 0 || strcmp(comm, "realm-proxy")) return 0;
  if (ppid == 1) return 1;
  return stat_of(ppid, pcomm, sizeof pcomm) == 1 && !strcmp(pcomm, "realm-proxy");
}

/* Signal every process of the sandbox but PID 1, its forwarder and ourselves. */
static int signal_all(int sig) {
  DIR *d = opendir("/proc");
  if (!d) return 1;
  struct dirent *e;
  while ((e = readdir(d))) {
    pid_t pid = (pid_t)atoi(e->d_name);
    if (pid > 1 && pid != getpid() && !is_forwarder(pid)) kill(pid, sig);
  }
  closedir(d);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--signal-all")) return signal_all(atoi(argv[2]));
  if (argc < 6) {
    fprintf(stderr, "usage: realm-gvexec STATUSFILE UID GID [--nproc N] [--tty ROWSxCOLS SIZEFILE] -- CMD...\n");
    return 125;
  }
  const char *status_file = argv[1];
  uid_t uid = (uid_t)atoi(argv[2]);
  gid_t gid = (gid_t)atoi(argv[3]);
  int i = 4, rows = 0, cols = 0;
  long nproc = 0;
  const char *size_file = NULL;
  if (!strcmp(argv[i], "--nproc") && i + 1 < argc) {
    nproc = atol(argv[i + 1]);
    i += 2;
  }
  if (i < argc && !strcmp(argv[i], "--tty")) {
    if (i + 2 >= argc || sscanf(argv[i + 1], "%dx%d", &rows, &cols) != 2 || rows <= 0 || cols <= 0) {
      fprintf(stderr, "realm-gvexec: --tty wants ROWSxCOLS SIZEFILE\n");
      return 125;
    }
    size_file = argv[i + 2];
    i += 3;
  }
  if (i >= argc || strcmp(argv[i], "--") || i + 1 >= argc) {
    fprintf(stderr, "realm-gvexec: missing -- CMD\n");
    return 125;
  }
  char **cmd = argv + i + 1;

  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) die("pipe");
  if (unshare(CLONE_NEWPID) < 0) die("new pid namespace");
  pid_t init = fork();
  if (init < 0) die("fork");
  if (init == 0) {
    close(pipefd[0]);
    ns_init(pipefd[1], uid, gid, nproc, rows, cols, size_file, cmd, &all);
    _exit(125);
  }
  close(pipefd[1]);
  /* Our own stdio is CMD's: let go of it so output ends when CMD's tree is done with it. */
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  int sfd = signalfd(-1, &all, SFD_CLOEXEC);
  if (sfd < 0) die("signalfd");
  char line[128];
  size_t len = 0;
  for (;;) {
    struct pollfd p[2] = {{sfd, POLLIN, 0}, {pipefd[0], POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == KILL_TREE) {
          /* The namespace's init dies, and with it every process of the exec. */
          kill(init, SIGKILL);
          while (waitpid(init, NULL, 0) < 0 && errno == EINTR) {}
          finish(status_file, len ? line : "signal 9 0");
        } else if (sig != SIGCHLD) kill(init, sig);
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(pipefd[0], line + len, sizeof line - 1 - len);
      if (r > 0) {
        len += (size_t)r;
        line[len] = 0;
        if (strchr(line, '\n')) finish(status_file, line);
      } else finish(status_file, "signal 9 0"); /* the init died without a word */
    }
  }
}
