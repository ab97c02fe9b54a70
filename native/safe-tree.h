#ifndef REALM_SAFE_TREE_H
#define REALM_SAFE_TREE_H
/* realm-helper rmtree PATH: remove PATH and everything under it, following no link, crossing no mount. */
int do_rmtree(int argc, char **argv);
/* realm-helper chowntree PATH UID GID: chown PATH and everything under it (links themselves), following no link, crossing no mount. */
int do_chowntree(int argc, char **argv);
#endif
