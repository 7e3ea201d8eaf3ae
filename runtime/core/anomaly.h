/*
 * anomaly.h -- the forward half of anomaly detection.  The backward half
 * lives in the engine (autograd.c), which names the node whose backward
 * produced NaN or Inf.  An op's forward result is checked where it is
 * handed to the caller (the Lua binding layer), one place for every op;
 * while no thread has anomaly detection on, that costs one test of
 * lg_anomaly_threads.
 */
#ifndef LGRAD_ANOMALY_H
#define LGRAD_ANOMALY_H

#include "../lgrad.h"

/* how many threads have anomaly detection on (changed atomically by
 * lg_set_anomaly_detection) */
extern int lg_anomaly_threads __attribute__((visibility("hidden")));

/* the one test: false on the fast path */
#define LG_ANOMALY_MAYBE()                                                    \
  (__builtin_expect(__atomic_load_n(&lg_anomaly_threads, __ATOMIC_RELAXED),  \
                    0))

/* true when this thread's forward results are to be checked: anomaly
 * detection is on and no node's backward is running (the ops a backward
 * is written with are not forward ops; the engine names the node) */
bool lg_anomaly_forward(void);

#define LG_HAS_NAN 1
#define LG_HAS_INF 2
/* which non-finite values t holds: LG_HAS_NAN | LG_HAS_INF bits, 0 for
 * none or a non-float dtype.  Reads each stored element once (an expanded
 * view is not walked along its zero strides); never fails. */
int lg_nonfinite(const lg_tensor *t);

#endif
