#ifndef REALM_FORKSERVER_H
#define REALM_FORKSERVER_H
/* Serve fork requests on stdin (see forkserver.c); each child runs dispatch(argc, argv) and exits
 * with what it returns. Returns when stdin ends. */
int forkserver(int argc, char **argv, int (*dispatch)(int, char **));
#endif
