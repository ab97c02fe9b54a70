#ifndef REALM_HELPER_UTIL_H
#define REALM_HELPER_UTIL_H
#include <sys/types.h>
#define HELPER_MAX_KEEP 64
/* Print "realm-helper: WHAT: strerror(errno)" and exit 125. */
void die(const char *what) __attribute__((noreturn));
/* Print "realm-helper: MSG" and exit 125. */
void fail(const char *msg) __attribute__((noreturn));
/* Close every descriptor above 2 but those in keep[] (see helper-util.c). */
void close_others(const int *keep, int nkeep);
#define HELPER_MAX_GROUPS 32
/* Parse "G1[,G2...]" (--groups) into out[] (at most HELPER_MAX_GROUPS); exit 125 when malformed. */
int parse_groups(const char *list, gid_t *out);
#endif
