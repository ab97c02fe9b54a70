/* realm-vmagent's parts: boot (stage 1, vmagent-boot.c), serving the host (stage 2,
 * realm-vmagent.c), execs (vmagent-exec.c) and the network (vmagent-net.c); shared declarations. */
#ifndef REALM_VMAGENT_H
#define REALM_VMAGENT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <linux/filter.h>

#define UID 1000
/* Descriptors stage 1 hands to stage 2: the virtio-serial port, the cgroup2 root and, in an
 * allow-list sandbox, the proxy's port "realm-net". */
#define PORTFD 3
#define CGFD 4
#define NETFD 5
#define SECCOMP_FILE "/.realm/seccomp"
/* The protocol's version, told to the host in 'R' (2: terminals, stdin acknowledgements). */
#define PROTOCOL "2"
/* Bytes a stream may have in flight unacknowledged (stdin of an exec, each proxy connection):
 * the sender waits for 'a'/'A' frames past this, so no side buffers without bound. */
#define WINDOW (256 * 1024)

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

/* ---- stage 2 ---- */
#define MAXX 64
/* The sandbox's cgroup (relative to the cgroup2 root, fd CGFD): the sandbox-wide limits; each exec gets a child of its own. */
#define CG "sb"

struct xc {
  uint32_t id;
  pid_t pid;
  int in, out, err;
  /* A terminal exec: `out` is the terminal's master, `in` a descriptor of the same, no `err`. */
  int tty;
  int exited, status, oneshot;
  /* Stdin the program has not taken yet (at most WINDOW: the host waits for acknowledgements),
   * and whether its end ('E') came behind it. */
  unsigned char *q;
  size_t qlen;
  int in_end;
  char cg[64];
};
extern struct xc xs[MAXX];
/* The cgroup tree (fd CGFD); files under it are named relative to it. */
extern int cgfd;

void send_frame(char type, uint32_t id, const void *data, uint32_t len);
void writestr(const char *path, const char *v);
long long readkey(const char *path, const char *key);
/* Start an exec from its frame's fields; rows > 0 runs it on a new pseudo-terminal of that size. */
void start_exec(uint32_t id, char *pl, uint32_t len, int oneshot, int rows, int cols);
/* Queue stdin bytes for the program, and write what it takes now ('a' acknowledges them). */
void exec_input(struct xc *x, const unsigned char *p, uint32_t len);
void exec_flush(struct xc *x);
void exec_input_end(struct xc *x);
void exec_resize(struct xc *x, int rows, int cols);
/* Report the exit ('x') and forget the exec. */
void finish(struct xc *x);

/* eth0 for network "all": 10.0.2.100/24, gateway 10.0.2.2 (QEMU's user-mode network). */
void eth0_up(void);
/* The allow-list forwarder on 127.0.0.1:port (listening when this returns); its pid. */
pid_t proxy_start(int port);
/* `/.realm/init connect HOST PORT` inside the sandbox: a CONNECT tunnel through the forwarder. */
int proxy_connect_main(const char *host, const char *port);

#endif
