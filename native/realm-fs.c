/*
 * realm-fs: file operations for the files API, run inside a sandbox (at /.realm/fs) as the
 * sandbox's user, under its seccomp filter, like any other exec. Paths therefore resolve in the
 * sandbox's own root with its user's rights: no link can lead out of it. Built static so it
 * works in any image.
 *
 *   cat PATH                       the file's bytes on stdout
 *   write PATH MODE PARENTS        stdin into the file (PARENTS=1: create missing directories)
 *   ls PATH                        a record per entry (PATH itself may be a link; entries are not followed)
 *   stat PATH                      one record (a link's content is its target)
 *   mkdir PATH PARENTS
 *   rm PATH RECURSIVE              never follows links
 *   mv FROM TO
 *   pack PATH                      records of PATH and everything under it, with contents
 *   unpack DEST                    records from stdin, created under DEST
 *
 * A record is "<type> <mode> <size> <mtime> <namelen>\n<name>[<content>]" with type f (file),
 * d (directory), l (link) or o (other); mode in octal; content (files and links) only for
 * pack, unpack and stat of a link. Exit status says what went wrong: 2 not found, 3 wrong kind
 * (a directory where a file was wanted, a bad name…), 4 not allowed, 5 no space, 6 exists or not
 * empty, 1 anything else; stderr says it in words.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static const char *op = "";

static int code_of(int e) {
  switch (e) {
    case ENOENT: return 2;
    case EISDIR: case ENOTDIR: case EINVAL: case ELOOP: case ENAMETOOLONG: case EXDEV: return 3;
    case EACCES: case EPERM: case EROFS: return 4;
    case ENOSPC: case EDQUOT: case EFBIG: return 5;
    case EEXIST: case ENOTEMPTY: return 6;
    default: return 1;
  }
}

static void fail(const char *path, int e) {
  fprintf(stderr, "realm-fs: %s %s: %s\n", op, path, strerror(e));
  exit(code_of(e));
}

static void bad(const char *path, const char *why) {
  fprintf(stderr, "realm-fs: %s %s: %s\n", op, path, why);
  exit(3);
}

static void write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("(output)", errno);
    p += w;
    n -= (size_t)w;
  }
}

static int read_full(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static char type_of(mode_t m) {
  return S_ISREG(m) ? 'f' : S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : 'o';
}

static void header(char type, mode_t mode, long long size, long long mtime, const char *name) {
  char h[128];
  int n = snprintf(h, sizeof h, "%c %o %lld %lld %zu\n", type, (unsigned)(mode & 07777), size, mtime, strlen(name));
  write_all(1, h, (size_t)n);
  write_all(1, name, strlen(name));
}

/* Copy a file's bytes to stdout. */
static void copy_out(int fd, const char *path) {
  char buf[65536];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(path, errno);
    if (r == 0) break;
    write_all(1, buf, (size_t)r);
  }
}

static void emit(const char *path, const char *name, const struct stat *st, int with_content) {
  if (S_ISLNK(st->st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) fail(path, errno);
    target[n] = 0;
    header('l', st->st_mode, n, st->st_mtime, name);
    write_all(1, target, (size_t)n);
  } else if (S_ISREG(st->st_mode) && with_content) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) fail(path, errno);
    header('f', st->st_mode, st->st_size, st->st_mtime, name);
    /* Send exactly the size announced, even if the file changes under us. */
    long long left = st->st_size;
    char buf[65536];
    while (left > 0) {
      ssize_t r = read(fd, buf, left < (long long)sizeof buf ? (size_t)left : sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        memset(buf, 0, sizeof buf);
        r = left < (long long)sizeof buf ? (ssize_t)left : (ssize_t)sizeof buf;
      }
      write_all(1, buf, (size_t)r);
      left -= r;
    }
    close(fd);
  } else {
    header(type_of(st->st_mode), st->st_mode, S_ISDIR(st->st_mode) ? 0 : st->st_size, st->st_mtime, name);
  }
}

static void walk(const char *path, const char *name) {
  struct stat st;
  if (lstat(path, &st) < 0) fail(path, errno);
  emit(path, name, &st, 1);
  if (!S_ISDIR(st.st_mode)) return;
  DIR *d = opendir(path);
  if (!d) fail(path, errno);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[PATH_MAX], n[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p || snprintf(n, sizeof n, "%s/%s", name, e->d_name) >= (int)sizeof n) bad(path, "path too long");
    walk(p, n);
  }
  closedir(d);
}

static void mkdirs(char *path, mode_t mode) {
  for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = 0;
    if (mkdir(path, mode) < 0 && errno != EEXIST) fail(path, errno);
    *s = '/';
  }
}

static void rm_tree(int dirfd, const char *name, const char *shown) {
  if (unlinkat(dirfd, name, 0) == 0) return;
  if (errno != EISDIR && errno != EPERM) fail(shown, errno);
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail(shown, errno);
  DIR *d = fdopendir(fd);
  if (!d) fail(shown, errno);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    rm_tree(fd, e->d_name, shown);
  }
  closedir(d);
  if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0) fail(shown, errno);
}

/* A name from a record: relative, no "." or ".." parts, no empty parts. */
static int safe_name(const char *n) {
  if (!*n || n[0] == '/') return 0;
  const char *p = n;
  while (*p) {
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return 0;
    p += len;
    if (*p == '/') p++;
  }
  return 1;
}

/* Every directory on the way to name (under dest) must be a real directory, not a link. */
static void parents_real(const char *dest, const char *name) {
  char p[PATH_MAX];
  if (snprintf(p, sizeof p, "%s/%s", dest, name) >= (int)sizeof p) bad(name, "path too long");
  size_t base = strlen(dest) + 1;
  for (char *s = strchr(p + base, '/'); s; s = strchr(s + 1, '/')) {
    *s = 0;
    struct stat st;
    if (lstat(p, &st) < 0) {
      if (errno != ENOENT) fail(p, errno);
      if (mkdir(p, 0755) < 0) fail(p, errno);
    } else if (!S_ISDIR(st.st_mode)) {
      bad(p, "is not a directory (an earlier entry made it a link or a file)");
    }
    *s = '/';
  }
}

static void unpack(const char *dest) {
  char d[PATH_MAX];
  snprintf(d, sizeof d, "%s/", dest);
  mkdirs(d, 0755);
  for (;;) {
    char h[128];
    size_t i = 0;
    int got;
    while ((got = read_full(0, h + i, 1)) == 0 && h[i] != '\n') {
      if (++i >= sizeof h - 1) bad(dest, "bad record");
    }
    if (got < 0) {
      if (i == 0) return; /* end of input */
      bad(dest, "truncated record");
    }
    h[i] = 0;
    char type;
    unsigned mode;
    long long size, mtime;
    size_t namelen;
    if (sscanf(h, "%c %o %lld %lld %zu", &type, &mode, &size, &mtime, &namelen) != 5 || namelen == 0 || namelen >= PATH_MAX || size < 0) bad(dest, "bad record");
    char name[PATH_MAX];
    if (read_full(0, name, namelen) < 0) bad(dest, "truncated record");
    name[namelen] = 0;
    if (!safe_name(name)) bad(name, "entry names must be relative, without . or .. parts");
    parents_real(dest, name);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dest, name) >= (int)sizeof path) bad(name, "path too long");
    if (type == 'd') {
      if (mkdir(path, (mode & 07777) | 0700) < 0 && errno != EEXIST) fail(path, errno);
      struct stat st;
      if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) bad(path, "exists and is not a directory");
    } else if (type == 'l') {
      char target[PATH_MAX];
      if (size >= PATH_MAX || read_full(0, target, (size_t)size) < 0) bad(name, "bad link");
      target[size] = 0;
      if (symlink(target, path) < 0) fail(path, errno);
    } else if (type == 'f') {
      int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode & 0777);
      if (fd < 0) fail(path, errno);
      char buf[65536];
      long long left = size;
      while (left > 0) {
        size_t want = left < (long long)sizeof buf ? (size_t)left : sizeof buf;
        if (read_full(0, buf, want) < 0) bad(name, "truncated content");
        ssize_t off = 0;
        while ((size_t)off < want) {
          ssize_t w = write(fd, buf + off, want - (size_t)off);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) fail(path, errno);
          off += w;
        }
        left -= (long long)want;
      }
      if (fchmod(fd, mode & 0777) < 0 || close(fd) < 0) fail(path, errno);
      struct timeval tv[2] = {{mtime, 0}, {mtime, 0}};
      utimes(path, tv);
    } else {
      bad(name, "only files, directories and links can be unpacked");
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: realm-fs cat|write|ls|stat|mkdir|rm|mv|pack|unpack PATH ...\n");
    return 3;
  }
  op = argv[1];
  char *path = argv[2];
  struct stat st;
  if (!strcmp(op, "cat")) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, errno);
    if (fstat(fd, &st) < 0) fail(path, errno);
    if (S_ISDIR(st.st_mode)) fail(path, EISDIR);
    copy_out(fd, path);
  } else if (!strcmp(op, "write") && argc == 5) {
    if (!strcmp(argv[4], "1")) mkdirs(path, 0755);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)strtol(argv[3], NULL, 8) & 0777);
    if (fd < 0) fail(path, errno);
    char buf[65536];
    for (;;) {
      ssize_t r = read(0, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail("(input)", errno);
      if (r == 0) break;
      ssize_t off = 0;
      while (off < r) {
        ssize_t w = write(fd, buf + off, (size_t)(r - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fail(path, errno);
        off += w;
      }
    }
    if (close(fd) < 0) fail(path, errno);
  } else if (!strcmp(op, "ls")) {
    if (stat(path, &st) < 0) fail(path, errno); /* a link to a directory lists the directory */
    if (!S_ISDIR(st.st_mode)) fail(path, ENOTDIR);
    DIR *d = opendir(path);
    if (!d) fail(path, errno);
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char p[PATH_MAX];
      snprintf(p, sizeof p, "%s/%s", path, e->d_name);
      if (lstat(p, &st) < 0) continue; /* gone meanwhile */
      emit(p, e->d_name, &st, 0);
    }
    closedir(d);
  } else if (!strcmp(op, "stat")) {
    if (lstat(path, &st) < 0) fail(path, errno);
    emit(path, path, &st, 0);
  } else if (!strcmp(op, "mkdir") && argc == 4) {
    if (!strcmp(argv[3], "1")) {
      size_t n = strlen(path);
      char *p = malloc(n + 2);
      snprintf(p, n + 2, "%s/", path);
      mkdirs(p, 0755);
      if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) fail(path, ENOTDIR);
    } else if (mkdir(path, 0755) < 0) fail(path, errno);
  } else if (!strcmp(op, "rm") && argc == 4) {
    if (lstat(path, &st) < 0) fail(path, errno);
    if (S_ISDIR(st.st_mode)) {
      if (!strcmp(argv[3], "1")) rm_tree(AT_FDCWD, path, path);
      else if (rmdir(path) < 0) fail(path, errno);
    } else if (unlink(path) < 0) fail(path, errno);
  } else if (!strcmp(op, "mv") && argc == 4) {
    if (rename(path, argv[3]) < 0) fail(path, errno);
  } else if (!strcmp(op, "pack")) {
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    if (!strcmp(path, "/")) base = "root";
    walk(path, base);
  } else if (!strcmp(op, "unpack")) {
    unpack(path);
  } else {
    fprintf(stderr, "realm-fs: unknown operation %s\n", op);
    return 3;
  }
  return 0;
}
