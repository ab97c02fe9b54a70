/*
 * realm-helper idmap-mount SRC DST FROM TO [ro]
 *
 * Make DST (an existing, empty directory) an idmapped bind mount of the directory SRC: what is
 * owned on disk by uid FROM (gid FROM) appears owned by uid TO (gid TO), and what uid TO creates
 * through DST is stored as FROM. Root stays root (so a server that runs as root, such as gVisor's
 * gofer, may create a file and then give it to TO). Every other id appears as the overflow id
 * (65534) and cannot be given to a file through DST; a process of another uid is "other" to DST's files. So volumes
 * stay on disk owned by one storage uid, and each sandbox sees them owned by its own uid.
 *
 * SRC and DST are absolute paths, opened with openat2 RESOLVE_NO_SYMLINKS (a link anywhere in
 * either is refused). FROM and TO are ids other than 0 (no host root files are ever handed to a
 * sandbox uid). The mount is SRC's own mount only (not what is mounted below SRC), nosuid,
 * nodev, and with "ro" read-only. Steps: open_tree(OPEN_TREE_CLONE) of SRC (a detached copy);
 * a user namespace whose uid_map and gid_map are "FROM TO 1" (a child unshares it and waits;
 * we, root, write its maps, keep its /proc/PID/ns/user, then kill and reap it); mount_setattr
 * MOUNT_ATTR_IDMAP with that namespace; move_mount onto DST. Nothing is mounted until the last
 * step, so a failure leaves nothing behind. Undo with `realm-helper umount DST`.
 *
 * The kernel maps an on-disk id through the namespace's map from "inside" to "outside" (on disk
 * FROM, seen as TO) and a writer's id back from "outside" to "inside" (TO writes FROM).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "helper-util.h"
#include "idmap-mount.h"

static void refuse(const char *what, const char *path, const char *why) {
  fprintf(stderr, "realm-helper: idmap-mount: %s %s: %s\n", what, path, why);
  exit(125);
}

static unsigned long parse_id(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v == 0 || v >= 4294967295UL) refuse(what, s, "not an id between 1 and 4294967294");
  return v;
}

/* An O_PATH descriptor of the directory at the absolute path, through no symbolic link. */
static int open_dir(const char *path, const char *what) {
  if (path[0] != '/') refuse(what, path, "not an absolute path");
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
  long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
  if (fd >= 0) return (int)fd;
  if (errno == ELOOP) refuse(what, path, "a symbolic link is in the path (refused)");
  if (errno == ENOTDIR) refuse(what, path, "not a directory");
  refuse(what, path, strerror(errno));
  return -1;
}

static void require_empty(int dirfd, const char *path) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd < 0 ? NULL : fdopendir(fd);
  if (!d) refuse("DST", path, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) refuse("DST", path, "not an empty directory");
  closedir(d);
}

static int write_map(pid_t pid, const char *file, const char *map) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, map, strlen(map));
  int saved = errno;
  close(fd);
  errno = saved;
  return n == (ssize_t)strlen(map) ? 0 : -1;
}

/* A descriptor of a new user namespace mapping uid and gid FROM (inside) to TO (outside). */
static int idmap_userns(unsigned long from, unsigned long to) {
  int ready[2], hold[2];
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) die("idmap-mount: pipe");
  pid_t pid = fork();
  if (pid < 0) die("idmap-mount: fork");
  if (pid == 0) {
    close(ready[0]);
    close(hold[1]);
    int err = unshare(CLONE_NEWUSER) < 0 ? errno : 0;
    if (write(ready[1], &err, sizeof err) != sizeof err) _exit(1);
    char c;
    while (read(hold[0], &c, 1) < 0 && errno == EINTR) {}
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  int err = 0;
  const char *step = "new user namespace";
  ssize_t got = read(ready[0], &err, sizeof err);
  int ns = -1;
  if (got != sizeof err) err = ECHILD;
  if (!err) {
    char map[96], nspath[64];
    /* Root stays root: a root-run server of the mount (gVisor's gofer) creates, then chowns to TO. */
    snprintf(map, sizeof map, "0 0 1\n%lu %lu 1\n", from, to);
    snprintf(nspath, sizeof nspath, "/proc/%d/ns/user", (int)pid);
    if (write_map(pid, "uid_map", map) < 0) step = "uid_map", err = errno;
    else if (write_map(pid, "gid_map", map) < 0) step = "gid_map", err = errno;
    else if ((ns = open(nspath, O_RDONLY | O_CLOEXEC)) < 0) step = "open the user namespace", err = errno;
  }
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
  close(ready[0]);
  close(hold[1]);
  if (err) {
    fprintf(stderr, "realm-helper: idmap-mount: %s: %s\n", step, strerror(err));
    exit(125);
  }
  return ns;
}

int do_idmap_mount(int argc, char **argv) {
  if (argc != 4 && !(argc == 5 && !strcmp(argv[4], "ro"))) fail("usage: idmap-mount SRC DST FROM TO [ro]");
  const char *src = argv[0], *dst = argv[1];
  unsigned long from = parse_id(argv[2], "FROM"), to = parse_id(argv[3], "TO");
  int srcfd = open_dir(src, "SRC");
  int dstfd = open_dir(dst, "DST");
  require_empty(dstfd, dst);
  int tree = (int)syscall(SYS_open_tree, srcfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
  if (tree < 0) refuse("open_tree of SRC", src, strerror(errno));
  int ns = idmap_userns(from, to);
  struct mount_attr attr = {
    .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (argc == 5 ? MOUNT_ATTR_RDONLY : 0),
    .userns_fd = (unsigned long long)ns,
  };
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
    int e = errno;
    fprintf(stderr, "realm-helper: idmap-mount: SRC %s: mount_setattr MOUNT_ATTR_IDMAP: %s%s\n", src, strerror(e),
            e == EINVAL ? " (its filesystem may not support idmapped mounts)" : e == EPERM ? " (SRC may be idmapped already)" : "");
    exit(125);
  }
  close(ns);
  if (syscall(SYS_move_mount, tree, "", dstfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    refuse("move_mount onto DST", dst, strerror(errno));
  close(tree);
  close(srcfd);
  close(dstfd);
  return 0;
}
