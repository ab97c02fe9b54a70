/*
 * realm-helper: the few privileged steps the daemon cannot do from Node.
 *
 *   realm-helper seccomp FILE
 *       Write the sandbox seccomp filter (classic BPF) to FILE.
 *   realm-helper mount-tmpfs PATH BYTES UID GID
 *       Mount a size-limited tmpfs owned by UID:GID at PATH (a sandbox's writable layer).
 *   realm-helper umount PATH
 *       Unmount PATH (lazily if busy).
 *   realm-helper idmap-mount SRC DST FROM TO [ro]
 *       Make the empty directory DST an idmapped bind mount of SRC (nosuid, nodev, read-only with
 *       ro): files owned on disk by uid/gid FROM appear owned by TO, and what TO creates there is
 *       stored as FROM; other ids appear as 65534. No link is followed (see idmap-mount.c).
 *   realm-helper spawn [--cgroup PROCS]... --uid U --gid G [--groups G1[,G2...]] [--fd N=FILE]...
 *                      [--keep-fd N]... [--env K=V]... -- CMD...
 *       Join cgroups, start a new session, close every fd above 2 but the --fd and --keep-fd ones,
 *       drop to U:G with no capabilities and the supplementary groups of --groups (none without
 *       it), exec CMD (bwrap, which builds the sandbox's namespaces unprivileged).
 *   realm-helper enter --target PID --seccomp FILE [--cgroup PROCS]... --uid U --gid G
 *                      [--cwd DIR] [--env K=V]... [--tty ROWSxCOLS] -- CMD...
 *       Join cgroups and every namespace of PID, fork, then in the child drop to U:G (ids inside
 *       the sandbox), drop all capabilities, close every fd above 2, set no_new_privs, load the
 *       seccomp filter, exec CMD.
 *       The parent forwards signals and exits like the child (same code, or same signal).
 *       With --tty the command gets a new pseudo-terminal (see run_tty); fd 3 carries resizes.
 *       With --die-with-parent, the sandbox's PID 1 (PID) is killed when this helper's parent
 *       dies (the fork server, which ends with the daemon), and with it every process of the
 *       sandbox: for work that must not outlive the daemon that runs it (a job's attempt).
 *   realm-helper rmtree PATH
 *       Remove PATH and everything under it; no link is followed, no mount crossed (safe-tree.c).
 *   realm-helper chowntree PATH UID GID
 *       Give UID:GID PATH and everything under it (links themselves); no link is followed, no mount crossed.
 *   realm-helper tie --parent PPID --target PID --start-time TICKS
 *       Kill PID when this helper's parent (the daemon) dies: a job attempt's gVisor sandbox or
 *       microVM (see tie.c).
 *   realm-helper serve SOCKET
 *       A fork server that runs the commands above in children of its own, so the daemon never
 *       has to fork (see forkserver.c).
 *
 * It is built static, so no LD_* variable or library of the host shapes what runs as root.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include "forkserver.h"
#include "helper-util.h"
#include "idmap-mount.h"
#include "launch.h"
#include "safe-tree.h"
#include "seccomp-filter.h"
#include "tie.h"

#define MAX_LIST 64

/* ---------- shared option parsing ---------- */

struct opts {
  const char *cgroups[MAX_LIST];
  int ncgroups;
  const char *fds[MAX_LIST];
  int nfds;
  char *env[MAX_LIST * 4 + 1];
  int nenv;
  int keep[MAX_LIST];
  int nkeep;
  long uid, gid;
  gid_t groups[HELPER_MAX_GROUPS];
  int ngroups; /* --groups: supplementary groups (spawn only) */
  long target;
  int tty_rows, tty_cols; /* > 0: run the command on a new pseudo-terminal */
  const char *seccomp;
  const char *cwd;
  int die_with_parent; /* enter: end the sandbox when our parent (the fork server) dies */
  char **cmd;
};

static void parse(int argc, char **argv, struct opts *o) {
  memset(o, 0, sizeof *o);
  o->uid = o->gid = o->target = -1;
  int i = 0;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (!strcmp(a, "--die-with-parent")) {
      o->die_with_parent = 1;
      continue;
    }
    if (i + 1 >= argc) fail("option without value");
    const char *v = argv[++i];
    if (!strcmp(a, "--cgroup") && o->ncgroups < MAX_LIST) o->cgroups[o->ncgroups++] = v;
    else if (!strcmp(a, "--fd") && o->nfds < MAX_LIST) o->fds[o->nfds++] = v;
    else if (!strcmp(a, "--env") && o->nenv < MAX_LIST * 4) o->env[o->nenv++] = (char *)v;
    else if (!strcmp(a, "--keep-fd") && o->nkeep < MAX_LIST) o->keep[o->nkeep++] = atoi(v);
    else if (!strcmp(a, "--tty")) {
      if (sscanf(v, "%dx%d", &o->tty_rows, &o->tty_cols) != 2 || o->tty_rows <= 0 || o->tty_cols <= 0) fail("--tty wants ROWSxCOLS");
    }
    else if (!strcmp(a, "--uid")) o->uid = atol(v);
    else if (!strcmp(a, "--gid")) o->gid = atol(v);
    else if (!strcmp(a, "--groups")) o->ngroups = parse_groups(v, o->groups);
    else if (!strcmp(a, "--target")) o->target = atol(v);
    else if (!strcmp(a, "--seccomp")) o->seccomp = v;
    else if (!strcmp(a, "--cwd")) o->cwd = v;
    else fail("unknown option");
  }
  o->env[o->nenv] = NULL;
  if (i >= argc) fail("no command");
  if (o->uid < 0 || o->gid < 0) fail("--uid and --gid are required");
  o->cmd = argv + i;
}

static void join_cgroups(const struct opts *o) {
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%d\n", getpid());
  for (int i = 0; i < o->ncgroups; i++) {
    int fd = open(o->cgroups[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0) die(o->cgroups[i]);
    if (write(fd, pid, (size_t)len) != len) die(o->cgroups[i]);
    close(fd);
  }
}

static void drop_to(long uid, long gid) {
  /* The bounding set first, while we still hold CAP_SETPCAP. */
  for (int c = 0; c <= CAP_LAST_CAP; c++) prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0) die("setresgid");
  if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0) die("setresuid");
  /* A non-zero uid clears permitted and effective capabilities; make sure. */
  if (uid != 0) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capset, &h, d) < 0) die("capset");
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
  struct rlimit core = {0, 0};
  setrlimit(RLIMIT_CORE, &core);
}

static void exec_cmd(const struct opts *o) {
  execvpe(o->cmd[0], o->cmd, o->env);
  int code = errno == ENOENT ? 127 : 126;
  fprintf(stderr, "realm: cannot run %s: %s\n", o->cmd[0], strerror(errno));
  _exit(code);
}

/* ---------- spawn ---------- */

static int do_spawn(int argc, char **argv) {
  struct opts o;
  parse(argc, argv, &o);
  join_cgroups(&o);
  if (setsid() < 0) die("setsid");
  for (int i = 0; i < o.nfds; i++) {
    char *spec = strdup(o.fds[i]);
    char *eq = strchr(spec, '=');
    if (!eq) fail("--fd wants N=FILE");
    *eq = 0;
    int want = atoi(spec);
    if (o.nkeep >= MAX_LIST) fail("too many fds");
    int fd = open(eq + 1, O_RDONLY);
    if (fd < 0) die(eq + 1);
    if (fd != want) {
      if (dup2(fd, want) < 0) die("dup2");
      close(fd);
    }
    o.keep[o.nkeep++] = want;
    free(spec);
  }
  close_others(o.keep, o.nkeep);
  if (setgroups((size_t)o.ngroups, o.groups) < 0) die("setgroups");
  drop_to(o.uid, o.gid);
  exec_cmd(&o);
  return 127;
}

/* ---------- tty ---------- */

static pid_t tty_child = -1;

static void tty_forward(int sig) {
  if (tty_child > 0) kill(-tty_child, sig);
}

/*
 * Run the command on a new pseudo-terminal of the sandbox's own devpts, and relay: our stdin to
 * the terminal, the terminal to our stdout, "ROWS COLS" lines on fd 3 to its window size. Runs
 * inside the sandbox as its user, under its filter. Exits like the command.
 */
static void run_tty(const struct opts *o) {
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) die("pseudo-terminal");
  char slave[64];
  if (ptsname_r(master, slave, sizeof slave) != 0) die("ptsname");
  struct winsize ws = {.ws_row = (unsigned short)o->tty_rows, .ws_col = (unsigned short)o->tty_cols};
  ioctl(master, TIOCSWINSZ, &ws);
  tty_child = fork();
  if (tty_child < 0) die("fork");
  if (tty_child == 0) {
    if (setsid() < 0) die("setsid");
    int s = open(slave, O_RDWR);
    if (s < 0) die(slave);
    ioctl(s, TIOCSCTTY, 0);
    dup2(s, 0);
    dup2(s, 1);
    dup2(s, 2);
    if (s > 2) close(s);
    close_others(NULL, 0);
    exec_cmd(o);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = tty_forward;
  int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT};
  for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaction(fwd[i], &sa, NULL);
  char buf[16384], ctl[64];
  size_t ctl_len = 0;
  int in_open = 1, ctl_open = 1;
  for (;;) {
    struct pollfd p[3] = {{master, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}, {ctl_open ? 3 : -1, POLLIN, 0}};
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(master, buf, sizeof buf);
      if (r <= 0) break; /* EIO: the terminal's last user is gone */
      if (write(1, buf, (size_t)r) < 0) break;
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(0, buf, sizeof buf);
      if (r <= 0) in_open = 0;
      else if (write(master, buf, (size_t)r) < 0) break;
    }
    if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(3, ctl + ctl_len, sizeof ctl - 1 - ctl_len);
      if (r <= 0) ctl_open = 0;
      else {
        ctl_len += (size_t)r;
        ctl[ctl_len] = 0;
        char *nl;
        while ((nl = strchr(ctl, '\n'))) {
          *nl = 0;
          int rows, cols;
          if (sscanf(ctl, "%d %d", &rows, &cols) == 2 && rows > 0 && cols > 0 && rows < 10000 && cols < 10000) {
            struct winsize w = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
            ioctl(master, TIOCSWINSZ, &w);
          }
          size_t rest = ctl_len - (size_t)(nl + 1 - ctl);
          memmove(ctl, nl + 1, rest + 1);
          ctl_len = rest;
        }
        if (ctl_len >= sizeof ctl - 1) ctl_len = 0;
      }
    }
  }
  int status;
  while (waitpid(tty_child, &status, 0) < 0 && errno == EINTR) {}
  if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
  signal(WTERMSIG(status), SIG_DFL);
  kill(getpid(), WTERMSIG(status));
  _exit(128 + WTERMSIG(status));
}

/* ---------- enter ---------- */

static pid_t child_pid = -1;
/* --die-with-parent: the sandbox's PID 1 (a pidfd, so no reused pid can take the kill) and its pid. */
static int init_fd = -1;
static pid_t init_pid = -1;

static void forward(int sig) {
  if (child_pid > 0) kill(child_pid, sig);
}

/* Our parent is gone: kill the sandbox's PID 1; the kernel then kills every process of its pid
 * namespace, whatever session, process group or double fork they used (our child included).
 * Done in the handler (a plain system call), so no signal can come between a check and a wait. */
static void end_sandbox(int sig) {
  (void)sig;
  if (init_fd >= 0) syscall(SYS_pidfd_send_signal, init_fd, SIGKILL, NULL, 0);
  else if (init_pid > 0) kill(init_pid, SIGKILL);
}

static int do_enter(int argc, char **argv) {
  struct opts o;
  parse(argc, argv, &o);
  if (o.target <= 0 || !o.seccomp) fail("--target and --seccomp are required");
  if (o.ngroups) fail("enter: --groups is for spawn and sandbox only");
  /* Join as host root first (we hold every capability over the sandbox's namespaces), the user
   * namespace last: bwrap --disable-userns nests a second one that owns none of the others.
   * Everything that reads the host's filesystem happens before we leave it. */
  static const char *const kinds[] = {"ipc", "uts", "net", "pid", "cgroup", "mnt", "user"};
  int nsfd[7];
  for (int i = 0; i < 7; i++) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/ns/%s", o.target, kinds[i]);
    nsfd[i] = open(p, O_RDONLY | O_CLOEXEC);
    if (nsfd[i] < 0 && !(errno == ENOENT && !strcmp(kinds[i], "cgroup"))) die(p);
  }
  int sfd = open(o.seccomp, O_RDONLY | O_CLOEXEC);
  if (sfd < 0) die(o.seccomp);
  pid_t parent = getppid();
  if (o.die_with_parent) {
    init_fd = (int)syscall(SYS_pidfd_open, (pid_t)o.target, 0);
    if (init_fd < 0 && errno != ENOSYS) die("pidfd_open");
    init_pid = (pid_t)o.target;
  }

  join_cgroups(&o);
  if (setsid() < 0) die("setsid");
  if (setgroups(0, NULL) < 0) die("setgroups");
  for (int i = 0; i < 7; i++) {
    if (nsfd[i] < 0) continue;
    if (setns(nsfd[i], 0) < 0) die(kinds[i]);
    close(nsfd[i]);
  }
  /* Load the filter program now: after the fork the child's /proc is the sandbox's. */
  static struct sock_filter insns[BPF_MAXINSNS];
  ssize_t n = read(sfd, insns, sizeof insns);
  close(sfd);
  if (n <= 0 || n % (ssize_t)sizeof(struct sock_filter) != 0) fail("bad seccomp program");

  child_pid = fork();
  if (child_pid < 0) die("fork");
  if (child_pid == 0) {
    drop_to(o.uid, o.gid);
    if (chdir(o.cwd ? o.cwd : "/") < 0) {
      fprintf(stderr, "realm: cannot enter directory %s: %s\n", o.cwd ? o.cwd : "/", strerror(errno));
      _exit(126);
    }
    int keep_ctl = 3;
    close_others(&keep_ctl, o.tty_rows > 0 ? 1 : 0); /* a terminal's resize channel is fd 3 */
    struct sock_fprog prog = {.len = (unsigned short)(n / (ssize_t)sizeof(struct sock_filter)), .filter = insns};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) die("seccomp");
    if (o.tty_rows > 0) run_tty(&o);
    exec_cmd(&o);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward;
  int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH, SIGALRM};
  for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaction(fwd[i], &sa, NULL);
  if (o.die_with_parent) {
    /* SIGPWR: a signal nobody forwards; the check after catches a parent that died before. */
    sa.sa_handler = end_sandbox;
    sigaction(SIGPWR, &sa, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGPWR, 0, 0, 0) < 0 || getppid() != parent) end_sandbox(SIGPWR);
  }
  int status;
  for (;;) {
    pid_t w = waitpid(child_pid, &status, 0);
    if (w == child_pid) break;
    if (w < 0 && errno != EINTR) die("waitpid");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  int sig = WTERMSIG(status);
  /* Die of the same signal so the daemon sees it; no core dump of ours. */
  struct rlimit core = {0, 0};
  setrlimit(RLIMIT_CORE, &core);
  signal(sig, SIG_DFL);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, sig);
  sigprocmask(SIG_UNBLOCK, &s, NULL);
  kill(getpid(), sig);
  return 128 + sig;
}

/* ---------- mounts ---------- */

static int do_mount_tmpfs(int argc, char **argv) {
  if (argc != 4) fail("usage: mount-tmpfs PATH BYTES UID GID");
  char data[128];
  snprintf(data, sizeof data, "size=%s,mode=0700,uid=%s,gid=%s", argv[1], argv[2], argv[3]);
  if (mount("tmpfs", argv[0], "tmpfs", MS_NOSUID | MS_NODEV, data) < 0) die("mount");
  return 0;
}

static int do_umount(int argc, char **argv) {
  if (argc != 1) fail("usage: umount PATH");
  if (umount2(argv[0], UMOUNT_NOFOLLOW) == 0) return 0;
  if (errno == EINVAL || errno == ENOENT) return 0; /* not mounted: nothing to do */
  if (umount2(argv[0], MNT_DETACH | UMOUNT_NOFOLLOW) < 0) die("umount");
  return 0;
}

/* One command: argv[0] is the mode. Also what each child of the fork server runs. */
static int dispatch(int argc, char **argv) {
  const char *mode = argv[0];
  if (!strcmp(mode, "seccomp") && argc == 2) return write_seccomp(argv[1]);
  if (!strcmp(mode, "spawn")) return do_spawn(argc - 1, argv + 1);
  if (!strcmp(mode, "enter")) return do_enter(argc - 1, argv + 1);
  if (!strcmp(mode, "sandbox")) return do_sandbox(argc - 1, argv + 1);
  if (!strcmp(mode, "mount-tmpfs")) return do_mount_tmpfs(argc - 1, argv + 1);
  if (!strcmp(mode, "umount")) return do_umount(argc - 1, argv + 1);
  if (!strcmp(mode, "idmap-mount")) return do_idmap_mount(argc - 1, argv + 1);
  if (!strcmp(mode, "rmtree")) return do_rmtree(argc - 1, argv + 1);
  if (!strcmp(mode, "chowntree")) return do_chowntree(argc - 1, argv + 1);
  if (!strcmp(mode, "tie")) return do_tie(argc - 1, argv + 1);
  fail("unknown mode");
  return 125;
}

int main(int argc, char **argv) {
  if (argc < 2) fail("usage: realm-helper seccomp|spawn|enter|sandbox|mount-tmpfs|umount|idmap-mount|rmtree|chowntree|serve ...");
  if (!strcmp(argv[1], "serve")) return forkserver(argc - 2, argv + 2, dispatch);
  return dispatch(argc - 1, argv + 1);
}
