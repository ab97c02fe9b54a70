#ifndef REALM_TIE_H
#define REALM_TIE_H
/* realm-helper tie: kill a process when the daemon dies (see tie.c). */
int do_tie(int argc, char **argv);
#endif
