/*
 * realm-init: PID 1 of a namespace sandbox (bwrap --as-pid-1). Two modes:
 *
 *   realm-init READYFD
 *       A long-lived sandbox: say "ready" on READYFD once bwrap has built everything, then
 *       reap orphans forever. The daemon kills it (and all else) through the sandbox's cgroup.
 *   realm-init run STATUSFD CMD...
 *       A one-shot run: start CMD, reap orphans, and when CMD ends write "exit N" or
 *       "signal N" to STATUSFD and exit — which, as PID 1, takes every leftover process with it.
 *
 * It holds no privileges. Built static so it runs in any image, even one without a libc.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int run(int statusfd, char **cmd, const sigset_t *blocked) {
  pid_t child = fork();
  if (child < 0) return 125;
  if (child == 0) {
    close(statusfd);
    sigprocmask(SIG_UNBLOCK, blocked, NULL);
    execvp(cmd[0], cmd);
    fprintf(stderr, "realm: cannot run %s: %s\n", cmd[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, 0);
    if (p == child) {
      if (WIFEXITED(st)) dprintf(statusfd, "exit %d\n", WEXITSTATUS(st));
      else dprintf(statusfd, "signal %d\n", WTERMSIG(st));
      return 0;
    }
    if (p < 0 && errno != EINTR) return 125;
  }
}

int main(int argc, char **argv) {
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  if (argc > 3 && strcmp(argv[1], "run") == 0) return run(atoi(argv[2]), argv + 3, &all);

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
