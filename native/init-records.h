#ifndef REALM_INIT_RECORDS_H
#define REALM_INIT_RECORDS_H
#include <stdbool.h>
#include <stddef.h>
/* Write all of it (retrying short writes); 0 on success. */
int write_all(int fd, const char *data, size_t len);
/* Bytes of the socket already read in and not yet taken by read_record. */
bool in_held(void);
/* One record "<tag> <length>\n<bytes>": its tag, and its bytes (NUL-terminated, malloc'd); 0 on success. */
int read_record(int fd, char *tag, char **data, size_t *len);
/* Write a file the daemon sent into the working directory, creating parent directories; never
 * through a link, never over an existing file. */
int write_file(const char *path, const char *data, size_t len);
/* Write the last F record's file (*path) with a D record's bytes, saying on the socket fd what
 * failed; frees both and clears *path. 0 on success. */
int take_file(int fd, char **path, char *data, size_t len);
#endif
