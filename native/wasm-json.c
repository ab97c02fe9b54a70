/* The wasm runners' JSON strings: see wasm-json.h. */
#include "wasm-json.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

char *json_string(const char *s, size_t n) {
  char *out = malloc(n * 6 + 3), *o = out;
  if (!out) _exit(1);
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') *o++ = '\\', *o++ = (char)c;
    else if (c == '\n') *o++ = '\\', *o++ = 'n';
    else if (c < 0x20) o += sprintf(o, "\\u%04x", c);
    else *o++ = (char)c;
  }
  *o++ = '"';
  *o = 0;
  return out;
}
