#ifndef REALM_SECCOMP_FILTER_H
#define REALM_SECCOMP_FILTER_H
/* Write the sandbox seccomp filter (classic BPF) to path; exits the process on failure. */
int write_seccomp(const char *path);
#endif
