/* realm-vmagent's two halves: boot (stage 1, vmagent-boot.c) and serving the host (stage 2, realm-vmagent.c). */
#ifndef REALM_VMAGENT_H
#define REALM_VMAGENT_H
#include <stddef.h>
#include <linux/filter.h>

#define UID 1000
/* Descriptors stage 1 hands to stage 2: the virtio-serial port and the cgroup2 root. */
#define PORTFD 3
#define CGFD 4
#define SECCOMP_FILE "/.realm/seccomp"

/* Report, power off. */
void die(const char *what);
/* The kernel command line, read once per stage; param() answers in one static buffer. */
void read_cmdline(void);
const char *param(const char *key);
void stage1(void);
/* The seccomp program every exec runs under, read from SECCOMP_FILE. */
extern struct sock_filter filter[BPF_MAXINSNS];
extern size_t filter_len;
void load_filter(void);
void loopback_up(void);

#endif
