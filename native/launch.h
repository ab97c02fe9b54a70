#ifndef REALM_LAUNCH_H
#define REALM_LAUNCH_H
/* realm-helper sandbox ARGS: build a one-shot sandbox and run its PID 1 (see launch.c). */
int do_sandbox(int argc, char **argv);
#endif
