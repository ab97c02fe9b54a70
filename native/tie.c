/*
 * realm-helper tie --parent PPID --target PID --start-time TICKS
 *
 * Kill PID (SIGKILL, through a pidfd: no reused pid can take it) when this helper's parent dies,
 * even by kill -9 (PR_SET_PDEATHSIG) — or has died already (the parent is no longer PPID). Exit
 * 0 when PID ends on its own, or at once when PID is not the process that started at TICKS
 * (/proc/PID/stat field 22): then it is gone already.
 *
 * The daemon starts it as its own child for each exec that must not outlive it (a job's attempt)
 * on the drivers whose sandbox lives in one host process — gVisor's sandbox process (the Sentry,
 * which holds every process of the sandbox) and a microVM's QEMU (which holds the guest) — and
 * kills it when the exec ends. The namespace driver has the same in `enter --die-with-parent`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "helper-util.h"
#include "tie.h"

static int target_fd = -1;

/* The parent is gone: end the target. A plain system call, safe in a handler. */
static void end_target(int sig) {
  (void)sig;
  syscall(SYS_pidfd_send_signal, target_fd, SIGKILL, NULL, 0);
}

/* Field 22 of /proc/PID/stat (its start time in clock ticks), or -1 when it is gone. */
static long long start_time(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  p += 2; /* field 3 */
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p) return -1;
    p++;
  }
  return atoll(p);
}

int do_tie(int argc, char **argv) {
  long parent = -1, target = -1;
  long long ticks = -1;
  for (int i = 0; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--parent")) parent = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--target")) target = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--start-time")) ticks = atoll(argv[i + 1]);
    else fail("tie: unknown option");
  }
  if (argc % 2 || parent <= 0 || target <= 0 || ticks < 0) fail("usage: tie --parent PPID --target PID --start-time TICKS");
  target_fd = (int)syscall(SYS_pidfd_open, (pid_t)target, 0);
  if (target_fd < 0) {
    if (errno == ESRCH) return 0;
    die("pidfd_open");
  }
  /* Read after the pidfd is held: the process it names is the one checked. */
  if (start_time(target) != ticks) return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = end_target;
  /* SIGPWR: a signal nobody sends us; the check after catches a parent that died before. */
  sigaction(SIGPWR, &sa, NULL);
  if (prctl(PR_SET_PDEATHSIG, SIGPWR, 0, 0, 0) < 0) die("PR_SET_PDEATHSIG");
  if (getppid() != (pid_t)parent) end_target(SIGPWR);
  /* A pidfd polls readable once its process has ended. */
  for (;;) {
    struct pollfd p = {target_fd, POLLIN, 0};
    int r = poll(&p, 1, -1);
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) die("poll");
  }
}
