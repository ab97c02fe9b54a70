/*
 * What realm's two Wasmtime hosts (realm-wasm, realm-wasm-http) share of Wasmtime's C API: the
 * functions both call, declared as wasmtime.h v49 declares them (the wheel ships the library
 * without headers; the layouts are the ones the wheel's own ctypes bindings use), and the loader
 * that opens libwasmtime with dlopen and resolves them. Each host keeps its own X-list of the
 * functions only it calls and hands it to WASMTIME_DEFINE_LOADER.
 */
#ifndef REALM_WASMTIME_API_H
#define REALM_WASMTIME_API_H
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct { size_t size; uint8_t *data; } vec_t; /* wasm_byte_vec_t, wasm_name_t, wasm_message_t */

/* X(return type, name, (argument types)) for each function both hosts call. */
#define WASMTIME_CORE_API(X)                                                                     \
  X(void *, wasm_config_new, (void))                                                             \
  X(void, wasmtime_config_consume_fuel_set, (void *, bool))                                      \
  X(void, wasmtime_config_epoch_interruption_set, (void *, bool))                                \
  X(void, wasmtime_config_cranelift_opt_level_set, (void *, uint8_t))                            \
  X(void, wasmtime_config_parallel_compilation_set, (void *, bool))                              \
  X(void *, wasm_engine_new_with_config, (void *))                                               \
  X(void, wasmtime_engine_increment_epoch, (void *))                                             \
  X(void *, wasmtime_store_new, (void *, void *, void *))                                        \
  X(void *, wasmtime_store_context, (void *))                                                    \
  X(void, wasmtime_store_delete, (void *))                                                       \
  X(void, wasmtime_store_limiter, (void *, int64_t, int64_t, int64_t, int64_t, int64_t))         \
  X(void *, wasmtime_context_set_fuel, (void *, uint64_t))                                       \
  X(void, wasmtime_context_set_epoch_deadline, (void *, uint64_t))                               \
  X(void, wasmtime_error_message, (void *, vec_t *))                                             \
  X(void, wasmtime_error_delete, (void *))                                                       \
  X(void, wasm_byte_vec_delete, (vec_t *))

/* For an X-list: a function pointer of each name (put `static` or `extern` ahead as needed). */
#define WASMTIME_POINTER(ret, name, args) ret(*name) args;

#define WASMTIME_RESOLVE_(ret, name, args)                                                       \
  if (!(name = (ret(*) args)dlsym(lib, #name))) {                                                \
    fprintf(stderr, "%s: %s is missing from %s\n", prog, #name, path);                           \
    return false;                                                                                \
  }

/*
 * Defines `static bool load_wasmtime(const char *prog, const char *path)`: opens the libwasmtime at
 * PATH and sets the pointer of each function of WASMTIME_CORE_API and then of EXTRA (the host's
 * own X-list). On a failure it says why on stderr, after "PROG: ", and returns false.
 */
#define WASMTIME_DEFINE_LOADER(EXTRA)                                                            \
  static bool load_wasmtime(const char *prog, const char *path) {                               \
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);                                             \
    if (!lib) {                                                                                  \
      fprintf(stderr, "%s: %s\n", prog, dlerror());                                              \
      return false;                                                                              \
    }                                                                                            \
    WASMTIME_CORE_API(WASMTIME_RESOLVE_)                                                         \
    EXTRA(WASMTIME_RESOLVE_)                                                                     \
    return true;                                                                                 \
  }

#endif
