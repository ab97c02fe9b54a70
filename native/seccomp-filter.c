/*
 * The seccomp filter every sandboxed program runs under, written as classic BPF for bwrap
 * (--seccomp) and for realm-helper enter. See write_seccomp for what it refuses and why.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>
#include "helper-util.h"
#include "seccomp-filter.h"

static const char *const blocked[] = {
    "mount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv", "process_vm_writev",
    "pidfd_getfd", "process_madvise", "kexec_load", "kexec_file_load", "reboot", "bpf",
    "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "open_by_handle_at", "name_to_handle_at", "init_module",
    "finit_module", "delete_module", "create_module", "swapon", "swapoff", "acct", "quotactl",
    "quotactl_fd", "syslog", "lookup_dcookie", "nfsservctl", "uselib", "vhangup", "iopl", "ioperm",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "mount_setattr", "setns", "get_kernel_syms",
    "query_module", "afs_syscall", "vserver", "_sysctl", "fanotify_init", "landlock_create_ruleset",
    NULL};

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
static const unsigned long ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET,
                                         CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWTIME};

int write_seccomp(const char *path) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) fail("seccomp_init failed");
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (int i = 0; blocked[i]; i++) {
    int nr = seccomp_syscall_resolve_name(blocked[i]);
    if (nr == __NR_SCMP_ERROR) continue; /* not on this architecture */
    if (seccomp_rule_add(ctx, eperm, nr, 0) < 0) fail("seccomp_rule_add failed");
  }
  /* New namespaces of any kind: no. clone3 hides its flags in memory, so it answers ENOSYS
   * and libc falls back to clone, whose flags we can see. */
  for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0]; i++) {
    seccomp_rule_add(ctx, eperm, SCMP_SYS(unshare), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
    seccomp_rule_add(ctx, eperm, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
  }
  seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  /* Faking input into a terminal, or poking the console. */
  seccomp_rule_add(ctx, eperm, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TIOCSTI));
  seccomp_rule_add(ctx, eperm, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, TIOCLINUX));
  /* Socket families: only unix, inet, inet6 and netlink. Others (vsock, which ignores network
   * namespaces; alg; bluetooth; …) are kernel surface a program in a sandbox has no use for. */
  /* As ranges rather than one rule per family: every syscall pays for the filter's length. */
  static const struct { uint64_t mask, value; } refused[] = {
      {~0ULL, AF_UNSPEC}, {~0ULL, 3}, {~3ULL, 4}, {~1ULL, 8}, /* 0, 3..9: below inet6 but unix and inet */
      {~0ULL, 11}, {~3ULL, 12},                              /* 11..15: between inet6 and netlink */
  };
  _Static_assert(AF_UNIX == 1 && AF_INET == 2 && AF_INET6 == 10 && AF_NETLINK == 16 && AF_PACKET == 17, "socket family numbers");
  const int calls[] = {SCMP_SYS(socket), SCMP_SYS(socketpair)};
  for (size_t c = 0; c < 2; c++) {
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
      seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), calls[c], 1, SCMP_A0(SCMP_CMP_MASKED_EQ, refused[i].mask, refused[i].value));
    seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), calls[c], 1, SCMP_A0(SCMP_CMP_GE, (scmp_datum_t)AF_PACKET + 1));
  }
  /* Raw and packet sockets (already denied by the missing CAP_NET_RAW; this is the second wall). */
  seccomp_rule_add(ctx, eperm, SCMP_SYS(socket), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW));

  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die(path);
  if (seccomp_export_bpf(ctx, fd) < 0) fail("seccomp_export_bpf failed");
  close(fd);
  seccomp_release(ctx);
  return 0;
}
