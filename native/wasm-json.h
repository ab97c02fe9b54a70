/* The wasm runners' JSON strings (their result frames are JSON). */
#ifndef REALM_WASM_JSON_H
#define REALM_WASM_JSON_H
#include <stddef.h>

/* A JSON string of `n` bytes of `s` (control characters and quotes escaped), malloc'd; the process
 * ends (exit status 1) when memory runs out. */
char *json_string(const char *s, size_t n);

#endif
