/*
 * l_anomaly.h -- the forward check of anomaly detection at the point
 * where an op's result is handed to Lua (internal).
 */
#ifndef LGRAD_L_ANOMALY_H
#define LGRAD_L_ANOMALY_H

#include "../runtime/core/anomaly.h"
#include "binding.h"

/* Under lg.autograd.detect_anomaly: raises "fname: anomaly: fname forward
 * produced NaN" (or Inf) when the tensor at stack index idx (the op's
 * result pushed on top, idx -1, or an in-place op's self, idx 1; the old
 * values of self are not known) holds a NaN (an Inf)
 * that none of the other tensors on the stack (the op's arguments, and the
 * tensors listed in table arguments) held: the first op that makes one is
 * named, not the ones that pass it on, and an Inf turned into NaN counts.
 * Functions with no tensor argument (constructors) are not checked; an
 * in-place op is named with its trailing '_'. */
void lgL_anomaly_result(lua_State *L, const char *fname, int idx);

/* the hook: one test while anomaly detection is off everywhere */
#define LGL_ANOMALY(L, fname, idx)                                            \
  do {                                                                        \
    if (LG_ANOMALY_MAYBE())                                                   \
      lgL_anomaly_result(L, fname, idx);                                      \
  } while (0)

#endif
