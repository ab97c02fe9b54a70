/*
 * rmtree and chowntree: recursive removal and chown, as root, of trees a sandbox could write
 * (volumes, a workspace's clone, a sandbox's state dir), immune to a racing process that swaps a
 * directory for a symbolic link.
 *
 * Every step is relative to a directory descriptor held open; a name is resolved one component
 * at a time with no link followed (openat2 RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|
 * RESOLVE_BENEATH, O_NOFOLLOW): a directory swapped for a link mid-walk is removed or chowned as
 * the link it now is, never entered. No mount is crossed (RESOLVE_NO_XDEV; on kernels without
 * openat2, st_dev differs): what is mounted inside the tree is left alone and reported.
 * A tree deeper than MAX_HELD levels is flattened as it goes (its deep directories are moved up
 * to the top, within the tree), so the walk never holds more than MAX_HELD descriptors.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "helper-util.h"
#include "safe-tree.h"

#define MAX_HELD 200 /* descriptors held at once while removing */
#define MAX_DEPTH_CHOWN 4000 /* chown cannot flatten: deeper trees are refused */
#define MAX_TRIES 64 /* a name that keeps changing under us is given up on (and reported) */

struct walk {
  const char *root;
  int top;        /* the tree's own directory */
  int errors;
  int deferred;   /* directories moved up to the top during this pass */
  unsigned long moved;
  uid_t uid;
  gid_t gid;
};

static void report(struct walk *w, const char *name, const char *what) {
  if (w->errors++ < 20) fprintf(stderr, "realm-helper: %s: %s: %s\n", w->root, name, what);
}

/* Open directory `name` of `dirfd`, never through a link and never across a mount. */
static int open_below(int dirfd, const char *name) {
  static int no_openat2;
  if (!no_openat2) {
    struct open_how how = {
      .flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
      .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV,
    };
    long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS) return (int)fd;
    no_openat2 = 1;
  }
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat a, b;
  if (fstat(dirfd, &a) < 0 || fstat(fd, &b) < 0 || a.st_dev != b.st_dev) {
    close(fd);
    errno = EXDEV;
    return -1;
  }
  return fd;
}

/* The name changed kind under us (a link or file where a directory was, or gone). */
static int swapped(int e) {
  return e == ELOOP || e == ENOTDIR || e == ENOENT || e == EMLINK;
}

/* ---------- rmtree ---------- */

static int empty_dir(struct walk *w, int fd, int depth);

/* Move directory `name` of `dirfd` to the top of the tree under a fresh name. */
static int move_up(struct walk *w, int dirfd, const char *name) {
  for (int i = 0; i < MAX_TRIES; i++) {
    char fresh[64];
    snprintf(fresh, sizeof fresh, ".realm-rmtree-%d-%lu", getpid(), w->moved++);
    if (syscall(SYS_renameat2, dirfd, name, w->top, fresh, RENAME_NOREPLACE) == 0) {
      w->deferred = 1;
      return 0;
    }
    if (errno != EEXIST) return -1;
  }
  return -1;
}

/* Remove `name` of `dirfd`, whatever it is; a directory with everything in it. */
static void remove_entry(struct walk *w, int dirfd, const char *name, int depth) {
  for (int tries = 0; tries < MAX_TRIES; tries++) {
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
    if (errno != EISDIR) break;
    if (depth >= MAX_HELD) {
      if (move_up(w, dirfd, name) == 0 || errno == ENOENT) return;
      break;
    }
    int fd = open_below(dirfd, name);
    if (fd < 0) {
      if (swapped(errno)) continue; /* not a directory any more: unlink what it is now */
      if (errno == EXDEV) {
        report(w, name, "a mount point; left in place");
        return;
      }
      break;
    }
    int before = w->errors;
    empty_dir(w, fd, depth + 1);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return;
    if (w->errors > before) return; /* what is left inside was reported */
    if (errno != ENOTDIR && errno != ENOTEMPTY && errno != EEXIST) break;
    /* swapped or refilled meanwhile: look again */
  }
  report(w, name, strerror(errno));
}

/* Remove everything in the directory `fd` (consumed). */
static int empty_dir(struct walk *w, int fd, int depth) {
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return -1;
  }
  int dfd = dirfd(d);
  /* Again until a pass finds nothing: entries added or moved in meanwhile are removed too. */
  for (int pass = 0; pass < MAX_TRIES; pass++) {
    int seen = 0;
    struct dirent *e;
    rewinddir(d);
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      seen = 1;
      remove_entry(w, dfd, e->d_name, depth);
    }
    if (!seen) break;
    if (w->errors) break; /* what is left is reported */
  }
  closedir(d);
  return 0;
}

/* Split PATH into its parent (opened, following links: the daemon's own directories) and its last name. */
static int open_parent(const char *path, char *name, size_t size) {
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') len--;
  size_t slash = len;
  while (slash > 0 && path[slash - 1] != '/') slash--;
  size_t nlen = len - slash;
  if (nlen == 0 || nlen >= size) {
    errno = EINVAL;
    return -1;
  }
  memcpy(name, path + slash, nlen);
  name[nlen] = 0;
  if (!strcmp(name, ".") || !strcmp(name, "..")) {
    errno = EINVAL;
    return -1;
  }
  char parent[4096];
  if (slash == 0) strcpy(parent, ".");
  else if (slash == 1) strcpy(parent, "/");
  else {
    if (slash >= sizeof parent) {
      errno = ENAMETOOLONG;
      return -1;
    }
    memcpy(parent, path, slash - 1);
    parent[slash - 1] = 0;
  }
  return open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int do_rmtree(int argc, char **argv) {
  if (argc != 1) fail("usage: rmtree PATH");
  char name[256];
  int parent = open_parent(argv[0], name, sizeof name);
  if (parent < 0) {
    if (errno == ENOENT) return 0;
    die(argv[0]);
  }
  struct walk w = {.root = argv[0], .top = -1};
  for (int tries = 0; tries < MAX_TRIES; tries++) {
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT) return w.errors ? 1 : 0;
    if (errno != EISDIR) die(argv[0]);
    w.top = open_below(parent, name);
    if (w.top < 0) {
      if (swapped(errno)) continue;
      if (errno == EXDEV) fail("the tree is a mount point; unmount it first");
      die(argv[0]);
    }
    /* Each pass empties what it can reach within MAX_HELD levels and moves deeper directories up. */
    for (unsigned long passes = 0;; passes++) {
      w.deferred = 0;
      int fd = fcntl(w.top, F_DUPFD_CLOEXEC, 3);
      if (fd < 0) die("dup");
      empty_dir(&w, fd, 0);
      if (!w.deferred || w.errors || passes > 1000000) break;
    }
    close(w.top);
    if (w.errors) return 1;
    if (unlinkat(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT) return 0;
    if (errno != ENOTDIR && errno != ENOTEMPTY && errno != EEXIST) die(argv[0]);
  }
  fail("the tree kept changing; not removed");
}

/* ---------- chowntree ---------- */

static void chown_dir(struct walk *w, int fd, int depth);

/* Chown `name` of `dirfd` (a directory with everything in it); a link is chowned itself. */
static void chown_entry(struct walk *w, int dirfd, const char *name, int depth) {
  for (int tries = 0; tries < MAX_TRIES; tries++) {
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
      if (errno == ENOENT) return;
      break;
    }
    if (!S_ISDIR(st.st_mode)) {
      /* Resolves `name` in dirfd alone and changes a link, never what it points to. A hard link
       * can only join names of one mount, and a sandbox's mounts hold no host file. */
      if (fchownat(dirfd, name, w->uid, w->gid, AT_SYMLINK_NOFOLLOW) == 0 || errno == ENOENT) return;
      break;
    }
    if (depth >= MAX_DEPTH_CHOWN) {
      errno = ELOOP;
      break;
    }
    int fd = open_below(dirfd, name);
    if (fd < 0) {
      if (swapped(errno)) continue;
      if (errno == EXDEV) {
        report(w, name, "a mount point; left as it was");
        return;
      }
      break;
    }
    if (fchown(fd, w->uid, w->gid) < 0) {
      close(fd);
      break;
    }
    chown_dir(w, fd, depth + 1);
    return;
  }
  report(w, name, strerror(errno));
}

/* Chown everything in the directory `fd` (consumed). */
static void chown_dir(struct walk *w, int fd, int depth) {
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    report(w, ".", strerror(errno));
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    chown_entry(w, dirfd(d), e->d_name, depth);
  }
  closedir(d);
}

int do_chowntree(int argc, char **argv) {
  if (argc != 3) fail("usage: chowntree PATH UID GID");
  char *end;
  long uid = strtol(argv[1], &end, 10);
  if (*end || uid < 0) fail("chowntree: UID is a number");
  long gid = strtol(argv[2], &end, 10);
  if (*end || gid < 0) fail("chowntree: GID is a number");
  /* A descriptor per level of the tree: take all the host allows. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  char name[256];
  int parent = open_parent(argv[0], name, sizeof name);
  if (parent < 0) die(argv[0]);
  int top = open_below(parent, name);
  if (top < 0) {
    if (errno == ELOOP || errno == ENOTDIR) fail("the tree is not a directory (a link is never followed)");
    if (errno == EXDEV) fail("the tree is a mount point");
    die(argv[0]);
  }
  close(parent);
  struct walk w = {.root = argv[0], .top = top, .uid = (uid_t)uid, .gid = (gid_t)gid};
  if (fchown(top, w.uid, w.gid) < 0) die(argv[0]);
  chown_dir(&w, top, 0);
  return w.errors ? 1 : 0;
}
