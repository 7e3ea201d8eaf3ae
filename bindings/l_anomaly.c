/*
 * l_anomaly.c -- the forward half of lg.autograd.detect_anomaly: every
 * op's float result is checked where the binding hands it to Lua
 * (lgL_pushresult and the few ops that fill their boxes themselves), so
 * the op is named as it was called ("anomaly: log forward produced NaN"),
 * with or without inputs that require grad.
 */
#include <string.h>

#include "l_anomaly.h"

/* the non-finite kinds held by the tensor at i, or by the tensors listed
 * in the table at i; *seen is set when there is one */
static int arg_kinds(lua_State *L, int i, bool *seen) {
  if (lua_type(L, i) == LUA_TNUMBER) {
    /* an Inf or NaN passed as a number (masked_fill(mask, -math.huge))
     * is asked for, not made */
    lua_Number v = lua_tonumber(L, i);
    return v != v ? LG_HAS_NAN : (v - v != 0 ? LG_HAS_INF : 0);
  }
  lg_tensor *t = lgL_testtensor(L, i);
  if (t) {
    *seen = true;
    return lg_nonfinite(t);
  }
  if (!lua_istable(L, i))
    return 0;
  int kinds = 0;
  lua_Integer n = (lua_Integer)lua_rawlen(L, i);
  luaL_checkstack(L, 1, "anomaly check");
  for (lua_Integer k = 1; k <= n; k++) {
    lua_rawgeti(L, i, k);
    if ((t = lgL_testtensor(L, -1))) {
      *seen = true;
      kinds |= lg_nonfinite(t);
    }
    lua_pop(L, 1);
  }
  return kinds;
}

void lgL_anomaly_result(lua_State *L, const char *fname, int idx) {
  lg_tensor *out = lgL_testtensor(L, idx);
  if (!out || !lg_anomaly_forward())
    return;
  int kinds = lg_nonfinite(out);
  if (!kinds)
    return;
  /* an in-place op's self (idx > 0) is one of its tensor arguments */
  bool inputs = idx > 0;
  /* in-place ops are named as called: "exp_", not "exp" */
  size_t n = strlen(fname);
  const char *us = idx > 0 && n && fname[n - 1] != '_' ? "_" : "";
  idx = lua_absindex(L, idx);
  int top = lua_gettop(L), had = 0;
  for (int i = 1; i <= top; i++)
    if (i != idx)
      had |= arg_kinds(L, i, &inputs);
  int made = kinds & ~had;
  if (!inputs || !made)
    return;
  luaL_error(L, "%s%s: anomaly: %s%s forward produced %s", fname, us, fname,
             us, made & LG_HAS_NAN ? "NaN" : "Inf");
}
