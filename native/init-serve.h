#ifndef REALM_INIT_SERVE_H
#define REALM_INIT_SERVE_H
#include <signal.h>
/* realm-init serve FD: a warm one-shot sandbox's PID 1 (see init-serve.c). All signals are blocked. */
int serve_one(int fd, const sigset_t *blocked);
#endif
