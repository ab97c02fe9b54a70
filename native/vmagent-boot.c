/*
 * realm-vmagent, stage 1 (as /init of the initramfs): load the virtio modules, build the
 * sandbox's root (the image over virtiofs, read-only; the home directory on a virtio-blk ext4
 * disk; /tmp a sized tmpfs; a minimal /dev; the volumes), open the agent's port and the cgroup
 * tree as descriptors, move into the root and re-execute as /.realm/init (stage 2). Also the
 * guest set-up stage 2 does before serving (the seccomp program, lo up).
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

void die(const char *what) {
  fprintf(stderr, "realm-vmagent: %s: %s\n", what, strerror(errno));
  sync();
  reboot(RB_POWER_OFF);
  _exit(1);
}

static char cmdline[4096];

void read_cmdline(void) {
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) { ssize_t n = read(fd, cmdline, sizeof cmdline - 1); if (n > 0) cmdline[n] = 0; close(fd); }
}

const char *param(const char *key) {
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

static void load_modules(int nic) {
  /* The NIC's (virtio_net needs net_failover, which needs failover) only for network "all". */
  static const char *mods[] = {"virtio", "virtio_ring", "virtio_mmio", "virtio_console", "virtio_blk", "fuse", "virtiofs", "failover", "net_failover", "virtio_net"};
  enum { N = sizeof mods / sizeof *mods, NIC_MODS = 3 };
  int done[N] = {0};
  for (int pass = 0; pass < 3; pass++)
    for (int i = 0; i < (nic ? N : N - NIC_MODS); i++) {
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

void stage1(void) {
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  mount("proc", "/proc", "proc", 0, NULL);
  mount("sysfs", "/sys", "sysfs", 0, NULL);
  read_cmdline();
  const char *net = param("realm.net");
  int nic = net && strcmp(net, "all") == 0;
  int proxy = param("realm.proxy") != NULL;
  load_modules(nic);
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
    /* Network "all": QEMU's DNS forwarder, as slirp4netns's under the namespace driver (an image of its own keeps its resolv.conf). */
    if (nic) {
      int fd = open("/etc/resolv.conf", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0 || write(fd, "nameserver 10.0.2.3\n", 20) != 20) die("/etc/resolv.conf");
      close(fd);
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
  /* An allow-list's proxy directory (its CA files), read-only, where the namespace driver binds it. */
  if (proxy) {
    mkdirs("/r/.realm/net", 0755);
    if (mount("net", "/r/.realm/net", "virtiofs", MS_RDONLY | MS_NODEV | MS_NOSUID | MS_NOEXEC, NULL) < 0) die("mount /.realm/net");
  }
  make_dev(tmp);
  /* The agent's own handles, outside the sandbox's root: its port and the cgroup tree (no /sys inside). */
  int port = open_port("realm");
  if (port < 0) die("open the realm port");
  if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) die("mount cgroup2");
  int cg = open("/sys/fs/cgroup", O_RDONLY | O_DIRECTORY);
  if (cg < 0) die("open the cgroup tree");
  /* The forwarder's own port in an allow-list sandbox. */
  int netport = -1;
  if (proxy && (netport = open_port("realm-net")) < 0) die("open the realm-net port");
  /* Each moved above the targets first, so no dup2 overwrites another. */
  int hp = fcntl(port, F_DUPFD, 10), hc = fcntl(cg, F_DUPFD, 10), hn = netport >= 0 ? fcntl(netport, F_DUPFD, 10) : -1;
  if (hp < 0 || hc < 0 || (netport >= 0 && hn < 0)) die("dup");
  close(port);
  close(cg);
  if (netport >= 0) close(netport);
  if (dup2(hp, PORTFD) < 0 || dup2(hc, CGFD) < 0 || (hn >= 0 && dup2(hn, NETFD) < 0)) die("dup2");
  close(hp);
  close(hc);
  if (hn >= 0) close(hn);
  if (mount(NULL, "/r", NULL, MS_REMOUNT | MS_RDONLY, "size=1m") < 0) die("remount / read-only");
  if (chdir("/r") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) die("switch root");
  char *argv[] = {"/.realm/init", NULL};
  execv(argv[0], argv);
  die("exec /.realm/init");
}


/* The seccomp program every exec runs under (classic BPF, written by `realm-helper seccomp`). */
struct sock_filter filter[BPF_MAXINSNS];
size_t filter_len;

void load_filter(void) {
  int fd = open(SECCOMP_FILE, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(SECCOMP_FILE);
  ssize_t n = read(fd, filter, sizeof filter);
  close(fd);
  if (n <= 0 || n % (ssize_t)sizeof(struct sock_filter) != 0) { errno = EINVAL; die("bad seccomp program " SECCOMP_FILE); }
  filter_len = (size_t)n / sizeof(struct sock_filter);
}

/* lo up, as in a namespace sandbox: programs may serve each other on 127.0.0.1 (the VM has no other interface). */
void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("lo up");
  close(s);
}
