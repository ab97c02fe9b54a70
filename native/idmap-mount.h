#ifndef REALM_IDMAP_MOUNT_H
#define REALM_IDMAP_MOUNT_H
/* realm-helper idmap-mount SRC DST FROM TO [ro]: an idmapped bind mount of SRC at DST (see idmap-mount.c). */
int do_idmap_mount(int argc, char **argv);
#endif
