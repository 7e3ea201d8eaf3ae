/*
 * cancel.c -- cancellation tokens: how a host stops a long computation.
 *
 * A token holds a flag that another thread (or a signal handler) sets, and
 * an optional deadline on the monotonic clock.  The thread that runs
 * lgrad code makes a token current (lg_cancel_set_current); long kernels
 * call lg_cancel_check() between blocks (the thread pool between chunks,
 * GEMM between blocks of rows, LBFGS between iterations) and stop early
 * when it fires.  The op then fails with "interrupted" or "time limit
 * exceeded"; its partial result is never returned.  With no current token
 * a check costs one thread-local load.
 */
#include <time.h>

#include "internal.h"

static LG_THREAD lg_cancel *current;

void lg_cancel_init(lg_cancel *c) {
  __atomic_store_n(&c->flag, 0, __ATOMIC_RELAXED);
  c->deadline = 0;
  c->fired = NULL;
  c->fired_ctx = NULL;
}

lg_cancel *lg_cancel_set_current(lg_cancel *c) {
  lg_cancel *old = current;
  current = c;
  return old;
}

lg_cancel *lg_cancel_current(void) { return current; }

/* async-signal-safe: one atomic store */
void lg_cancel_request(lg_cancel *c) {
  if (c)
    __atomic_store_n(&c->flag, 1, __ATOMIC_RELEASE);
}

double lg_monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int lg_cancel_state(const lg_cancel *c) {
  if (!c)
    return 0;
  if (__atomic_load_n(&c->flag, __ATOMIC_ACQUIRE))
    return LG_CANCEL_INTERRUPTED;
  if (c->deadline > 0 && lg_monotonic() > c->deadline)
    return LG_CANCEL_TIMEOUT;
  return 0;
}

int lg_cancel_check(void) {
  int s = lg_cancel_state(current);
  if (s == 0)
    return 0;
  lg_seterr("%s",
            s == LG_CANCEL_TIMEOUT ? "time limit exceeded" : "interrupted");
  if (current->fired)
    current->fired(current->fired_ctx);
  return -1;
}
