/*
 * realm-helper sandbox: build a one-shot sandbox and run CMD as its PID 1 — what bwrap does for
 * the namespace driver's one-shot runs, in one process of the fork server, without bwrap's exec,
 * dynamic loading and mount-table rereads (it rereads /proc/self/mountinfo for every bind).
 *
 *   realm-helper sandbox [--mkdir DIR]... [--write[-opt] FILE=VALUE]... [--cgroup PROCS]...
 *                        [--stat-cpu F --stat-peak F --stat-oom F --stats-fd N]
 *                        --uid U [--groups G1[,G2...]] --seccomp FILE --base DIR
 *                        --root host|DIR [--etc DIR] [--resolv FILE] --init FILE
 *                        --tmp BYTES --home BYTES --hostname NAME [--info-fd N]
 *                        [--keep-fd N]... -- CMD...
 *
 * As root: make the cgroups (directories, then limit files; --write-opt ones may be missing) and
 * join them, start a new session, read the filter; then as host uid U (gid U, supplementary
 * groups those of --groups, else none; they stay, unmapped, in the user namespace), with no
 * capability left outside: a new user namespace mapping uid/gid 1000 inside to U, and new mount,
 * PID, network, IPC, UTS and cgroup namespaces. A child, PID 1 of the new PID namespace, builds
 * the root on a tmpfs mounted at DIR (an empty directory nothing else uses):
 *
 *   host image: /usr read-only (with the /bin, /lib... symlinks), /etc = --etc read-only,
 *               empty /var /var/tmp /run /opt /srv;  DIR image: its top-level entries,
 *               read-only;  both: /proc of the new PID namespace, a minimal /dev (null, zero,
 *               full, random, urandom, tty, a private devpts, /dev/shm), /tmp, /home/user
 *               (tmpfs of --tmp and --home bytes), /.realm/init = --init read-only;
 *               --resolv bound at /etc/resolv.conf;
 *
 * then pivots into it (the host's tree is detached), makes the root read-only, brings up lo,
 * forbids user namespaces, drops every capability and the bounding set, sets no_new_privs,
 * loads the filter and runs CMD with an empty environment in /home/user. The parent stays
 * outside the PID namespace, reports the child's host pid on --info-fd as {"child-pid": N}, and
 * once the child has ended writes "stats CPU PEAK OOM\n" to --stats-fd (the figures named by
 * --stat-*: a file's number, or FILE:KEY for a "KEY N" line; -1 when unreadable), then exits as
 * the child did. Every step that fails ends the sandbox with a message on stderr.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "helper-util.h"
#include "launch.h"

#define MAX_CG 16
#define MAX_WRITES 32

struct spec {
  const char *cgroups[MAX_CG];
  int ncg;
  const char *mkdirs[MAX_CG];
  int nmkdir;
  const char *writes[MAX_WRITES];
  char write_optional[MAX_WRITES];
  int nwrite;
  const char *stat_cpu, *stat_peak, *stat_oom;
  int stats_fd;
  int keep[HELPER_MAX_KEEP];
  int nkeep;
  long uid;
  gid_t groups[HELPER_MAX_GROUPS];
  int ngroups;
  const char *seccomp, *base, *root, *etc, *resolv, *init, *hostname;
  long long tmp, home;
  int info_fd;
  char **cmd;
};

static void parse(int argc, char **argv, struct spec *s) {
  memset(s, 0, sizeof *s);
  s->uid = -1;
  s->info_fd = -1;
  s->stats_fd = -1;
  int i = 0;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (i + 1 >= argc) fail("sandbox: option without value");
    const char *v = argv[++i];
    if (!strcmp(a, "--cgroup") && s->ncg < MAX_CG) s->cgroups[s->ncg++] = v;
    else if (!strcmp(a, "--mkdir") && s->nmkdir < MAX_CG) s->mkdirs[s->nmkdir++] = v;
    else if ((!strcmp(a, "--write") || !strcmp(a, "--write-opt")) && s->nwrite < MAX_WRITES) {
      s->write_optional[s->nwrite] = a[7] == '-';
      s->writes[s->nwrite++] = v;
    }
    else if (!strcmp(a, "--stat-cpu")) s->stat_cpu = v;
    else if (!strcmp(a, "--stat-peak")) s->stat_peak = v;
    else if (!strcmp(a, "--stat-oom")) s->stat_oom = v;
    else if (!strcmp(a, "--stats-fd")) s->stats_fd = atoi(v);
    else if (!strcmp(a, "--keep-fd") && s->nkeep < HELPER_MAX_KEEP) s->keep[s->nkeep++] = atoi(v);
    else if (!strcmp(a, "--uid")) s->uid = atol(v);
    else if (!strcmp(a, "--groups")) s->ngroups = parse_groups(v, s->groups);
    else if (!strcmp(a, "--seccomp")) s->seccomp = v;
    else if (!strcmp(a, "--base")) s->base = v;
    else if (!strcmp(a, "--root")) s->root = v;
    else if (!strcmp(a, "--etc")) s->etc = v;
    else if (!strcmp(a, "--resolv")) s->resolv = v;
    else if (!strcmp(a, "--init")) s->init = v;
    else if (!strcmp(a, "--hostname")) s->hostname = v;
    else if (!strcmp(a, "--tmp")) s->tmp = atoll(v);
    else if (!strcmp(a, "--home")) s->home = atoll(v);
    else if (!strcmp(a, "--info-fd")) s->info_fd = atoi(v);
    else fail("sandbox: unknown option");
  }
  if (i >= argc) fail("sandbox: no command");
  if (s->uid <= 0 || !s->seccomp || !s->base || !s->root || !s->init || !s->hostname || s->tmp <= 0 || s->home <= 0)
    fail("sandbox: --uid (not 0), --seccomp, --base, --root, --init, --hostname, --tmp and --home are required");
  if (!strcmp(s->root, "host") && !s->etc) fail("sandbox: the host image needs --etc");
  s->cmd = argv + i;
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die(path);
  size_t n = strlen(text);
  if (write(fd, text, n) != (ssize_t)n) die(path);
  close(fd);
}

/* ---------- cgroups ---------- */

/* The sandbox's cgroups, as the daemon planned them: directories, then limit files ("FILE=VALUE"). */
static void make_cgroups(const struct spec *s) {
  for (int i = 0; i < s->nmkdir; i++)
    if (mkdir(s->mkdirs[i], 0755) < 0 && errno != EEXIST) die(s->mkdirs[i]);
  for (int i = 0; i < s->nwrite; i++) {
    char file[4096];
    const char *eq = strchr(s->writes[i], '=');
    if (!eq || (size_t)(eq - s->writes[i]) >= sizeof file) fail("sandbox: --write wants FILE=VALUE");
    memcpy(file, s->writes[i], (size_t)(eq - s->writes[i]));
    file[eq - s->writes[i]] = 0;
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    size_t n = strlen(eq + 1);
    if (fd < 0 || write(fd, eq + 1, n) != (ssize_t)n) {
      if (!s->write_optional[i]) die(file);
    }
    if (fd >= 0) close(fd);
  }
}

/* A figure's file, opened now: PID 1's pivot takes the host's tree from this process too. The
 * key (FILE:KEY) is returned through *key. -1 if it cannot be opened. */
static int open_figure(const char *spec, const char **key) {
  char file[4096];
  const char *colon = strrchr(spec, ':');
  size_t flen = colon ? (size_t)(colon - spec) : strlen(spec);
  *key = colon ? colon + 1 : NULL;
  if (flen >= sizeof file) return -1;
  memcpy(file, spec, flen);
  file[flen] = 0;
  return open(file, O_RDONLY | O_CLOEXEC);
}

/* The number in the file, or after "KEY " on a line of it; -1 if unreadable. */
static long long figure(int fd, const char *key) {
  char buf[4096];
  if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  if (n <= 0) return -1;
  buf[n] = 0;
  if (!key) return atoll(buf);
  size_t klen = strlen(key);
  for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
    if (!strncmp(line, key, klen) && line[klen] == ' ') return atoll(line + klen + 1);
  return 0;
}

/* ---------- the root, built under the base directory (our cwd) ---------- */

static void bind_ro(const char *src, const char *dst) {
  if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0) die(dst);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
  if (syscall(SYS_mount_setattr, AT_FDCWD, dst, AT_RECURSIVE, &attr, sizeof attr) < 0) die(dst);
}

/* A mount point of the same kind as src: an empty directory, or an empty file. */
static void make_point(const char *src, const char *dst) {
  struct stat st;
  if (stat(src, &st) < 0) die(src);
  if (S_ISDIR(st.st_mode)) {
    if (mkdir(dst, 0755) < 0 && errno != EEXIST) die(dst);
  } else {
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) die(dst);
    close(fd);
  }
}

static void tmpfs(const char *dst, long long bytes, const char *mode, int owner) {
  char data[128];
  if (owner) snprintf(data, sizeof data, "size=%lld,mode=%s,uid=1000,gid=1000", bytes, mode);
  else snprintf(data, sizeof data, "size=%lld,mode=%s", bytes, mode);
  if (mkdir(dst, 0755) < 0 && errno != EEXIST) die(dst);
  if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, data) < 0) die(dst);
}

static void host_image(const struct spec *s) {
  if (mkdir("usr", 0755) < 0) die("usr");
  bind_ro("/usr", "usr");
  static const char *const links[] = {"bin", "sbin", "lib", "lib64", "lib32", "libx32"};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    char target[32], probe[40];
    snprintf(target, sizeof target, "usr/%s", links[i]);
    snprintf(probe, sizeof probe, "/usr/%s", links[i]);
    if (access(probe, F_OK) == 0 && symlink(target, links[i]) < 0) die(links[i]);
  }
  if (mkdir("etc", 0755) < 0) die("etc");
  bind_ro(s->etc, "etc");
  if (s->resolv) bind_ro(s->resolv, "etc/resolv.conf");
  static const char *const dirs[] = {"var", "var/tmp", "run", "opt", "srv"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    if (mkdir(dirs[i], 0755) < 0) die(dirs[i]);
}

/* Top-level directories the sandbox gets fresh, never from the image (as layout.ts's OWN_DIRS). */
static int own_dir(const char *name) {
  static const char *const own[] = {"proc", "dev", "tmp", "sys", "home", ".realm", ".", ".."};
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (!strcmp(name, own[i])) return 1;
  return 0;
}

static void dir_image(const struct spec *s) {
  DIR *d = opendir(s->root);
  if (!d) die(s->root);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (own_dir(e->d_name)) continue;
    char src[4096];
    snprintf(src, sizeof src, "%s/%s", s->root, e->d_name);
    struct stat st;
    if (lstat(src, &st) < 0) die(src);
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlink(src, target, sizeof target - 1);
      if (n < 0) die(src);
      target[n] = 0;
      if (symlink(target, e->d_name) < 0) die(e->d_name);
      continue;
    }
    make_point(src, e->d_name);
    bind_ro(src, e->d_name);
  }
  closedir(d);
}

static void dev_tree(const struct spec *s) {
  tmpfs("dev", 1 << 20, "0755", 0);
  static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
    char src[32], dst[32];
    snprintf(src, sizeof src, "/dev/%s", nodes[i]);
    snprintf(dst, sizeof dst, "dev/%s", nodes[i]);
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) die(dst);
    close(fd);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0) die(dst);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC};
    if (syscall(SYS_mount_setattr, AT_FDCWD, dst, 0, &attr, sizeof attr) < 0) die(dst);
  }
  static const char *const links[][2] = {{"/proc/self/fd", "dev/fd"}, {"/proc/self/fd/0", "dev/stdin"}, {"/proc/self/fd/1", "dev/stdout"}, {"/proc/self/fd/2", "dev/stderr"}, {"pts/ptmx", "dev/ptmx"}};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    if (symlink(links[i][0], links[i][1]) < 0) die(links[i][1]);
  if (mkdir("dev/pts", 0755) < 0) die("dev/pts");
  if (mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620") < 0) die("dev/pts");
  tmpfs("dev/shm", s->tmp, "1777", 0);
}

static void build_root(const struct spec *s) {
  if (!strcmp(s->root, "host")) host_image(s);
  else dir_image(s);
  if (mkdir("proc", 0555) < 0 && errno != EEXIST) die("proc");
  if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("proc");
  dev_tree(s);
  tmpfs("tmp", s->tmp, "1777", 0);
  if (mkdir("home", 0755) < 0) die("home");
  tmpfs("home/user", s->home, "0755", 1);
  if (mkdir(".realm", 0755) < 0) die(".realm");
  make_point(s->init, ".realm/init");
  bind_ro(s->init, ".realm/init");
}

/* ---------- the rest of PID 1's set-up ---------- */

static void loopback_up(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  /* Up is enough: the kernel gives a namespace's lo 127.0.0.1/8 and ::1 itself. */
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) die("lo flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) die("lo up");
  close(fd);
}

static void drop_everything(void) {
  for (int c = 0; c <= CAP_LAST_CAP; c++)
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) die("capability bounding set");
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capset, &h, d) < 0) die("capset");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
}

/* The monitor only waits: its capabilities (in the sandbox's user namespace) go, and with
 * no_new_privs they cannot come back; its bounding set does not matter to anything it runs. */
static void drop_caps_only(void) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capset, &h, d) < 0) die("capset");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
}

static void pid1(const struct spec *s, struct sock_fprog *filter) {
  /* Nothing of ours propagates to the host, and the host's unmounts still reach our copy. */
  if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) die("make / a slave");
  if (mount("tmpfs", s->base, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0) die(s->base);
  if (chdir(s->base) < 0) die(s->base);
  build_root(s);
  /* The new root over the old one, then the old one (the host's tree) detached from under it. */
  if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
  if (umount2(".", MNT_DETACH) < 0) die("detach the host's root");
  if (chdir("/") < 0) die("chdir /");
  struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
  if (syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &ro, sizeof ro) < 0) die("read-only root");
  if (sethostname(s->hostname, strlen(s->hostname)) < 0) die("sethostname");
  loopback_up();
  /* Belt and braces: the filter refuses new namespaces; the kernel's own limit does too
   * (best effort: a kernel without per-namespace limits still has the filter). */
  int lim = open("/proc/sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
  if (lim >= 0) {
    if (write(lim, "0", 1) < 0) { /* the filter still refuses them */ }
    close(lim);
  }
  if (setsid() < 0) die("setsid");
  if (chdir("/home/user") < 0) die("/home/user");
  close_others(s->keep, s->nkeep);
  drop_everything();
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, filter) < 0) die("seccomp");
  char *empty[] = {NULL};
  execve(s->cmd[0], s->cmd, empty);
  fprintf(stderr, "realm: cannot run %s: %s\n", s->cmd[0], strerror(errno));
  _exit(errno == ENOENT ? 127 : 126);
}

int do_sandbox(int argc, char **argv) {
  struct spec s;
  parse(argc, argv, &s);
  /* As root, on the host: cgroups (made, limited, joined), session, the filter program. */
  make_cgroups(&s);
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%d\n", getpid());
  for (int i = 0; i < s.ncg; i++) {
    int fd = open(s.cgroups[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, pid, (size_t)len) != len) die(s.cgroups[i]);
    close(fd);
  }
  if (setsid() < 0) die("setsid");
  static struct sock_filter insns[BPF_MAXINSNS];
  int sfd = open(s.seccomp, O_RDONLY | O_CLOEXEC);
  if (sfd < 0) die(s.seccomp);
  ssize_t n = read(sfd, insns, sizeof insns);
  close(sfd);
  if (n <= 0 || n % (ssize_t)sizeof(struct sock_filter) != 0) fail("sandbox: bad seccomp program");
  struct sock_fprog filter = {.len = (unsigned short)(n / (ssize_t)sizeof(struct sock_filter)), .filter = insns};
  struct rlimit core = {0, 0};
  setrlimit(RLIMIT_CORE, &core);

  /* The sandbox uid, with nothing of root left; then the namespaces, as bwrap makes them
   * unprivileged: uid and gid 1000 inside are the sandbox uid outside. */
  if (setgroups((size_t)s.ngroups, s.groups) < 0) die("setgroups");
  if (setresgid((gid_t)s.uid, (gid_t)s.uid, (gid_t)s.uid) < 0) die("setresgid");
  if (setresuid((uid_t)s.uid, (uid_t)s.uid, (uid_t)s.uid) < 0) die("setresuid");
  /* Changing uid made us undumpable, which makes /proc/self root's: our own maps need it. */
  if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) die("dumpable");
  if (unshare(CLONE_NEWUSER) < 0) die("new user namespace");
  char map[64];
  snprintf(map, sizeof map, "1000 %ld 1\n", s.uid);
  write_file("/proc/self/setgroups", "deny");
  write_file("/proc/self/uid_map", map);
  write_file("/proc/self/gid_map", map);
  if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP) < 0) die("new namespaces");

  const char *keys[3] = {NULL, NULL, NULL};
  int figs[3] = {-1, -1, -1};
  int stats = s.stats_fd > 2 && s.stat_cpu && s.stat_peak && s.stat_oom;
  if (stats) {
    figs[0] = open_figure(s.stat_cpu, &keys[0]);
    figs[1] = open_figure(s.stat_peak, &keys[1]);
    figs[2] = open_figure(s.stat_oom, &keys[2]);
  }
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) pid1(&s, &filter);

  /* The parent: report the child, keep nothing, wait, and end as it did. */
  if (s.info_fd >= 0) {
    char info[64];
    int m = snprintf(info, sizeof info, "{\"child-pid\": %d}\n", (int)child);
    if (write(s.info_fd, info, (size_t)m) != m) die("info fd");
    close(s.info_fd);
  }
  /* Only the socket the figures go to (after PID 1's own report of the program's end), and the
   * figures' files. */
  int keep[4] = {s.stats_fd, figs[0], figs[1], figs[2]};
  close_others(keep, stats ? 4 : 0);
  drop_caps_only();
  int st;
  while (waitpid(child, &st, 0) < 0)
    if (errno != EINTR) die("waitpid");
  if (stats) dprintf(s.stats_fd, "stats %lld %lld %lld\n", figure(figs[0], keys[0]), figure(figs[1], keys[1]), figure(figs[2], keys[2]));
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  signal(WTERMSIG(st), SIG_DFL);
  kill(getpid(), WTERMSIG(st));
  return 128 + WTERMSIG(st);
}
