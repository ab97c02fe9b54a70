/* Deadlines of wasm runs (see wasm-deadline.h). */
#include "wasm-deadline.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

/* One timer thread for the process, made at the first deadline: a run sets when, the thread waits
 * for it (or for the run's end) on a condition variable of the monotonic clock. A thread per run
 * would pile up in serve mode (each sleeping out its deadline), past the sandbox's pids limit. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static bool started, armed;
static struct timespec due;
/* When the thread wakes next by itself (it was told nothing since), or `forever`. A run's start
 * wakes it only when its deadline comes sooner, a run's end not at all: a thread that wakes to
 * find its run over or another one's later deadline waits on. No system call per request. */
static struct timespec wakes;
static bool forever = true;

static bool before(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}
static void *engine_of;
static void (*tick_of)(void *);

static void *timer(void *arg) {
  (void)arg;
  pthread_mutex_lock(&lock);
  for (;;) {
    if (!armed) {
      forever = true;
      pthread_cond_wait(&changed, &lock);
      continue;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!before(&now, &due)) {
      armed = false;
      tick_of(engine_of);
      continue;
    }
    forever = false, wakes = due;
    pthread_cond_timedwait(&changed, &lock, &wakes);
  }
  return NULL;
}

void deadline_start(void *engine, uint64_t ms, void (*tick)(void *)) {
  pthread_mutex_lock(&lock);
  if (!started) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t t;
    /* Without its timer a run would have no deadline: better no run. */
    if (pthread_create(&t, NULL, timer, NULL) != 0) _exit(1);
    pthread_detach(t);
    started = true;
  }
  clock_gettime(CLOCK_MONOTONIC, &due);
  due.tv_sec += (time_t)(ms / 1000);
  due.tv_nsec += (long)(ms % 1000) * 1000000;
  if (due.tv_nsec >= 1000000000) due.tv_sec++, due.tv_nsec -= 1000000000;
  engine_of = engine, tick_of = tick, armed = true;
  if (forever || before(&due, &wakes)) pthread_cond_signal(&changed);
  pthread_mutex_unlock(&lock);
}

void deadline_next(void) {
  pthread_mutex_lock(&lock);
  armed = false;
  pthread_mutex_unlock(&lock);
}
