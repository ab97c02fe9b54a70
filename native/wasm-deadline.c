/* Deadlines of wasm runs (see wasm-deadline.h). */
#include "wasm-deadline.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* A request's end moves `generation` on under the lock: a timer ticks only for its own request. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t generation;

struct deadline {
  void *engine;
  void (*tick)(void *);
  uint64_t ms, generation;
};

static void *timer(void *arg) {
  struct deadline *d = arg;
  struct timespec t = {(time_t)(d->ms / 1000), (long)(d->ms % 1000) * 1000000};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
  pthread_mutex_lock(&lock);
  if (generation == d->generation) d->tick(d->engine);
  pthread_mutex_unlock(&lock);
  free(d);
  return NULL;
}

void deadline_start(void *engine, uint64_t ms, void (*tick)(void *)) {
  struct deadline *d = malloc(sizeof *d);
  if (!d) _exit(1);
  pthread_mutex_lock(&lock);
  *d = (struct deadline){engine, tick, ms, generation};
  pthread_mutex_unlock(&lock);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  if (pthread_create(&t, &attr, timer, d) != 0) free(d);
  pthread_attr_destroy(&attr);
}

void deadline_next(void) {
  pthread_mutex_lock(&lock);
  generation++;
  pthread_mutex_unlock(&lock);
}
