/*
 * args.c -- the NULL/revoked check of public functions' pointer arguments
 * (see lg_args_unusable in internal.h).
 */
#include <stdarg.h>

#include "internal.h"

int lg_args_unusable(const char *fname, ...) {
  va_list ap;
  va_start(ap, fname);
  int bad = 0;
  for (int kind; !bad && (kind = va_arg(ap, int)) != LG_ARGK_END;) {
    int pos = va_arg(ap, int);
    const void *p = va_arg(ap, const void *);
    const lg_tensor *t = p;
    if (kind == LG_ARGK_PTR ? !p
        : kind == LG_ARGK_TENSOR ? LG_UNUSABLE(t)
                                 : t && t->storage->revoked)
      bad = pos;
  }
  va_end(ap);
  if (bad)
    lg_seterr("%s: argument %d is NULL or revoked", fname, bad);
  return bad;
}
