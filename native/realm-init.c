/*
 * realm-init: PID 1 of a namespace sandbox.
 *
 * Runs inside the sandbox (bwrap --as-pid-1). It tells the daemon the sandbox
 * is fully set up by writing to the fd given as argv[1], then reaps orphans
 * forever. It holds no privileges and opens nothing; the daemon kills it (and
 * everything else) through the sandbox's cgroup.
 *
 * Built static so it runs in any image, even one without a libc.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);

  if (argc > 1) {
    int fd = atoi(argv[1]);
    if (fd > 2) {
      ssize_t n = write(fd, "ready\n", 6);
      (void)n;
      close(fd);
    }
  }
  /* Keep stdio from pinning any pipe of the daemon's. */
  close(0);
  close(1);
  close(2);

  for (;;) {
    int sig;
    pid_t pid = waitpid(-1, NULL, 0);
    if (pid > 0) continue;
    if (pid < 0 && errno == EINTR) continue;
    /* No children: sleep until a signal arrives (SIGCHLD when an exec'd process is orphaned to us). */
    sigwait(&all, &sig);
  }
}
