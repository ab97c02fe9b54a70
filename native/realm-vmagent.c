/*
 * realm-vmagent: PID 1 of a realm microVM. Stage 1 (as /init of the initramfs) loads the virtio
 * modules, builds the sandbox's root (the image over virtiofs, read-only; the home directory on
 * a virtio-blk ext4 disk; /tmp a sized tmpfs), moves into it and re-executes itself as
 * /.realm/init. Stage 2 serves the host over the virtio-serial port "realm" with framed messages:
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

#define UID 1000
#define MAXX 64
/* The sandbox's cgroup (relative to the cgroup2 root, fd CGFD): the sandbox-wide limits; each exec gets a child of its own. */
#define CG "sb"
/* Descriptors stage 1 hands to stage 2: the virtio-serial port and the cgroup2 root. */
#define PORTFD 3
#define CGFD 4
#define SECCOMP_FILE "/.realm/seccomp"

static void die(const char *what) {
  fprintf(stderr, "realm-vmagent: %s: %s\n", what, strerror(errno));
  sync();
  reboot(RB_POWER_OFF);
  _exit(1);
}

static char cmdline[4096];
static const char *param(const char *key) {
  static char val[512];
  size_t k = strlen(key);
  for (char *p = cmdline; (p = strstr(p, key));) {
    if ((p == cmdline || p[-1] == ' ') && p[k] == '=') {
      size_t n = strcspn(p + k + 1, " \n");
      if (n >= sizeof val) n = sizeof val - 1;
      memcpy(val, p + k + 1, n);
      val[n] = 0;
      return val;
    }
    p += k;
  }
  return NULL;
}

static void load_modules(void) {
  static const char *mods[] = {"virtio", "virtio_ring", "virtio_mmio", "virtio_console", "virtio_blk", "fuse", "virtiofs"};
  int done[7] = {0};
  for (int pass = 0; pass < 3; pass++)
    for (int i = 0; i < 7; i++) {
      if (done[i]) continue;
      char path[128];
      snprintf(path, sizeof path, "/lib/modules/%s.ko", mods[i]);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) { done[i] = 1; continue; }
      if (syscall(SYS_finit_module, fd, "", 0) == 0 || errno == EEXIST) done[i] = 1;
      close(fd);
    }
}

/* The /dev node of the virtio-serial port named `name` (devices appear asynchronously). */
static int open_port(const char *name) {
  for (int tries = 0; tries < 2000; tries++) {
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char p[512], buf[64] = {0};
      snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
      int fd = open(p, O_RDONLY);
      if (fd < 0) continue;
      ssize_t n = read(fd, buf, sizeof buf - 1);
      close(fd);
      if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = 0;
      if (strcmp(buf, name) == 0) {
        snprintf(p, sizeof p, "/dev/%s", e->d_name);
        int pfd = open(p, O_RDWR | O_CLOEXEC);
        if (pfd >= 0) { closedir(d); return pfd; }
      }
    }
    if (d) closedir(d);
    usleep(5000);
  }
  return -1;
}

static int wait_for(const char *path) {
  for (int i = 0; i < 2000; i++) {
    if (access(path, F_OK) == 0) return 0;
    usleep(5000);
  }
  return -1;
}

static void mkdirs(const char *p, mode_t m) {
  char b[512];
  snprintf(b, sizeof b, "%s", p);
  for (char *s = b + 1; *s; s++)
    if (*s == '/') { *s = 0; mkdir(b, m); *s = '/'; }
  mkdir(b, m);
}

/* A minimal /dev for the sandbox (as the namespace driver's): the harmless character devices, a
 * private devpts for pseudo-terminals, /dev/shm sized like /tmp; not the guest's devtmpfs with its
 * disks, memory, consoles and the agent's port. */
static void make_dev(const char *shm_bytes) {
  mkdir("/r/dev", 0755);
  if (mount("tmpfs", "/r/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755") < 0) die("mount /dev");
  static const struct { const char *name; unsigned maj, min; } devs[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) {
    char p[64];
    snprintf(p, sizeof p, "/r/dev/%s", devs[i].name);
    if (mknod(p, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)) < 0 || chmod(p, 0666) < 0) die("mknod");
  }
  mkdir("/r/dev/pts", 0755);
  if (mount("devpts", "/r/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0) die("mount /dev/pts");
  char opts[64];
  snprintf(opts, sizeof opts, "size=%s,mode=1777", shm_bytes);
  mkdir("/r/dev/shm", 01777);
  if (mount("tmpfs", "/r/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) die("mount /dev/shm");
  static const char *links[][2] = {{"pts/ptmx", "/r/dev/ptmx"}, {"/proc/self/fd", "/r/dev/fd"}, {"/proc/self/fd/0", "/r/dev/stdin"}, {"/proc/self/fd/1", "/r/dev/stdout"}, {"/proc/self/fd/2", "/r/dev/stderr"}};
  for (size_t i = 0; i < sizeof links / sizeof *links; i++)
    if (symlink(links[i][0], links[i][1]) < 0) die("symlink in /dev");
  if (mount(NULL, "/r/dev", NULL, MS_REMOUNT | MS_NOSUID | MS_NOEXEC | MS_RDONLY, "size=64k,nr_inodes=64,mode=0755") < 0) die("remount /dev read-only");
}

/* Named volumes: realm.vol<i>=ro|rw:<path in hex> is virtiofs tag vol<i>, mounted at that path
 * (its mount point made on the sandbox's root tmpfs or in the home disk). */
static void mount_volumes(void) {
  for (int i = 0; i < 8; i++) {
    char key[32], tag[16], path[300] = "/r";
    snprintf(key, sizeof key, "realm.vol%d", i);
    const char *v = param(key);
    if (!v) break;
    int ro = strncmp(v, "ro:", 3) == 0;
    const char *hex = v + 3;
    size_t n = strlen(hex) / 2;
    if (n == 0 || n > sizeof path - 3) { errno = EINVAL; die("volume path"); }
    for (size_t k = 0; k < n; k++) {
      unsigned c;
      if (sscanf(hex + 2 * k, "%2x", &c) != 1 || c == 0) { errno = EINVAL; die("volume path"); }
      path[2 + k] = (char)c;
    }
    path[2 + n] = 0;
    if (path[2] != '/' || strstr(path, "/../") || strstr(path, "/./")) { errno = EINVAL; die("volume path"); }
    mkdirs(path, 0755);
    snprintf(tag, sizeof tag, "vol%d", i);
    if (mount(tag, path, "virtiofs", MS_NODEV | MS_NOSUID | (ro ? MS_RDONLY : 0), NULL) < 0) die(path);
  }
}

static void stage1(void) {
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  mount("proc", "/proc", "proc", 0, NULL);
  mount("sysfs", "/sys", "sysfs", 0, NULL);
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd >= 0) { ssize_t n = read(fd, cmdline, sizeof cmdline - 1); if (n > 0) cmdline[n] = 0; close(fd); }
  load_modules();
  const char *image = param("realm.image");
  int host = image && strcmp(image, "host") == 0;
  if (mount("tmpfs", "/r", "tmpfs", 0, "size=1m,mode=0755") < 0) die("mount /r");
  if (mount("img", "/img", "virtiofs", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0) die("mount the image (virtiofs)");
  if (host) {
    /* The host's /usr plus realm's generated /etc (carried in the initramfs). */
    static const char *links[] = {"bin", "sbin", "lib", "lib64", "lib32", "libx32"};
    mkdir("/r/usr", 0755);
    if (mount("/img", "/r/usr", NULL, MS_BIND | MS_REC, NULL) < 0) die("bind /usr");
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
      char t[64], l[64];
      snprintf(t, sizeof t, "/img/%s", links[i]);
      snprintf(l, sizeof l, "usr/%s", links[i]);
      if (access(t, F_OK) == 0) { snprintf(t, sizeof t, "/r/%s", links[i]); if (symlink(l, t) < 0) die("symlink"); }
    }
    mkdir("/r/etc", 0755);
    if (mount("/etc", "/r/etc", NULL, MS_BIND | MS_REC, NULL) < 0 || mount(NULL, "/r/etc", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) die("bind /etc");
    for (const char *const *p = (const char *const[]){"/r/var/tmp", "/r/run", "/r/opt", "/r/srv", NULL}; *p; p++) mkdirs(*p, 0755);
  } else {
    /* The image's top-level entries on a fresh root, so mount points can be made without writing into it. */
    DIR *d = opendir("/img");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
      if (!strcmp(e->d_name, "proc") || !strcmp(e->d_name, "dev") || !strcmp(e->d_name, "tmp") || !strcmp(e->d_name, "sys") || !strcmp(e->d_name, "home") || !strcmp(e->d_name, ".realm")) continue;
      char a[512], b[512];
      snprintf(a, sizeof a, "/img/%.400s", e->d_name);
      snprintf(b, sizeof b, "/r/%.400s", e->d_name);
      struct stat st;
      if (lstat(a, &st) < 0) continue;
      if (S_ISLNK(st.st_mode)) {
        char t[512];
        ssize_t n = readlink(a, t, sizeof t - 1);
        if (n > 0) { t[n] = 0; if (symlink(t, b) < 0) die("symlink"); }
        continue;
      }
      if (S_ISDIR(st.st_mode)) mkdir(b, 0755);
      else close(open(b, O_CREAT | O_WRONLY, 0644));
      mount(a, b, NULL, MS_BIND | MS_REC, NULL);
    }
    if (d) closedir(d);
  }
  /* realm's tools, the home disk, /tmp, /proc, /dev. */
  mkdirs("/r/.realm", 0755);
  if (mount("/realm", "/r/.realm", NULL, MS_BIND, NULL) < 0) die("bind /.realm");
  mkdirs("/r/home/user", 0755);
  if (wait_for("/dev/vda") < 0) die("no home disk");
  if (mount("/dev/vda", "/r/home/user", "ext4", MS_NODEV | MS_NOSUID, NULL) < 0) die("mount home");
  char opts[64];
  /* Copied: param() answers in one static buffer, which the next call (mount_volumes) reuses. */
  char tmp_bytes[32];
  snprintf(tmp_bytes, sizeof tmp_bytes, "%s", param("realm.tmp") ? param("realm.tmp") : "16777216");
  const char *tmp = tmp_bytes;
  snprintf(opts, sizeof opts, "size=%s,mode=1777", tmp);
  mkdir("/r/tmp", 01777);
  if (mount("tmpfs", "/r/tmp", "tmpfs", MS_NODEV | MS_NOSUID, opts) < 0) die("mount /tmp");
  mkdir("/r/proc", 0555);
  if (mount("proc", "/r/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount /proc");
  mount_volumes();
  make_dev(tmp);
  /* The agent's own handles, outside the sandbox's root: its port and the cgroup tree (no /sys inside). */
  int port = open_port("realm");
  if (port < 0) die("open the realm port");
  if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount cgroup2");
  int cg = open("/sys/fs/cgroup", O_RDONLY | O_DIRECTORY);
  if (cg < 0) die("open the cgroup tree");
  /* Each moved above the two targets first, so neither dup2 overwrites the other. */
  int hp = fcntl(port, F_DUPFD, 10), hc = fcntl(cg, F_DUPFD, 10);
  if (hp < 0 || hc < 0 || dup2(hp, PORTFD) < 0 || dup2(hc, CGFD) < 0) die("dup2");
  close(hp);
  close(hc);
  if (port != PORTFD && port != CGFD) close(port);
  if (cg != PORTFD && cg != CGFD) close(cg);
  if (mount(NULL, "/r", NULL, MS_REMOUNT | MS_RDONLY, "size=1m") < 0) die("remount / read-only");
  if (chdir("/r") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) die("switch root");
  char *argv[] = {"/.realm/init", NULL};
  execv(argv[0], argv);
  die("exec /.realm/init");
}

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

/* The seccomp program every exec runs under (classic BPF, written by `realm-helper seccomp`). */
static struct sock_filter filter[BPF_MAXINSNS];
static size_t filter_len;

static void load_filter(void) {
  int fd = open(SECCOMP_FILE, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(SECCOMP_FILE);
  ssize_t n = read(fd, filter, sizeof filter);
  close(fd);
  if (n <= 0 || n % (ssize_t)sizeof(struct sock_filter) != 0) { errno = EINVAL; die("bad seccomp program " SECCOMP_FILE); }
  filter_len = (size_t)n / sizeof(struct sock_filter);
}

/* lo up, as in a namespace sandbox: programs may serve each other on 127.0.0.1 (the VM has no other interface). */
static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("lo up");
  close(s);
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
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd >= 0) { ssize_t n = read(fd, cmdline, sizeof cmdline - 1); if (n > 0) cmdline[n] = 0; close(fd); }
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
