/* Deadlines of wasm runs: after the run's time, a timer thread ticks Wasmtime's epoch (the run's
 * deadline is one tick away); Wasmtime checks at function entries and loop headers, so a loop with
 * no calls stops too. In serve mode a request's end disarms its deadline: the next request's own
 * is the only one pending. */
#ifndef REALM_WASM_DEADLINE_H
#define REALM_WASM_DEADLINE_H
#include <stdint.h>

/* After `ms`, `tick(engine)` — unless deadline_next() or another deadline_start() comes first. */
void deadline_start(void *engine, uint64_t ms, void (*tick)(void *));
/* The run that set the pending timers has ended: they tick nothing. */
void deadline_next(void);

#endif
