/*
 * l_attention.c -- lg.F.scaled_dot_product_attention, the fused attention
 * op of runtime/ops/attention.c:
 *
 *   local out = lg.F.scaled_dot_product_attention(q, k, v,
 *     {attn_mask = m, dropout_p = 0.1, is_causal = false, scale = 0.125,
 *      generator = g})
 *
 * q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv).  attn_mask is bool
 * (true: take part in attention, as PyTorch 2's) or an additive float
 * tensor, broadcasting to (..., Tq, Tk).
 */
#include <math.h>
#include <string.h>

#include "../runtime/nn.h"
#include "binding.h"

#define SDPA "scaled_dot_product_attention"

/* the options table at idx (a table that is not a tensor), every key
 * known, read into o */
static void read_sdpa_opts(lua_State *L, int idx, lg_sdpa_opts *o) {
  static const char *const known[] = {"attn_mask", "dropout_p", "is_causal",
                                      "scale", "generator", NULL};
  if (lua_isnoneornil(L, idx))
    return;
  if (!lua_istable(L, idx) || lgL_totensor(L, idx))
    luaL_error(L, SDPA ": argument 4 must be an options table (got %s)",
               luaL_typename(L, idx));
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int i = 0;
    while (known[i] && strcmp(known[i], k))
      i++;
    if (!known[i])
      luaL_error(L, SDPA ": unknown option '%s'",
                 lua_type(L, -2) == LUA_TSTRING ? k : luaL_typename(L, -2));
    int t = lua_type(L, -1);
    if (i == 0) {
      o->attn_mask = lgL_totensor(L, -1);
      if (!o->attn_mask)
        luaL_error(L, SDPA ": option 'attn_mask' must be a tensor (got %s)",
                   luaL_typename(L, -1));
    } else if (i == 1 || i == 3) {
      if (t != LUA_TNUMBER)
        luaL_error(L, SDPA ": option '%s' must be a number (got %s)", k,
                   luaL_typename(L, -1));
      if (i == 1)
        o->dropout_p = lua_tonumber(L, -1);
      else
        o->scale = lua_tonumber(L, -1);
      if (i == 3 && isnan(o->scale))
        luaL_error(L, SDPA ": option 'scale' must be a number, not NaN");
    } else if (i == 2) {
      if (t != LUA_TBOOLEAN)
        luaL_error(L, SDPA ": option 'is_causal' must be a boolean (got %s)",
                   luaL_typename(L, -1));
      o->is_causal = lua_toboolean(L, -1);
    }
  }
  o->gen = lgL_optgenerator(L, idx);
}

/* scaled_dot_product_attention(q, k, v [, opts]) */
static int f_sdpa(lua_State *L) {
  lg_tensor *q = lgL_checktensor(L, 1), *k = lgL_checktensor(L, 2),
            *v = lgL_checktensor(L, 3);
  lg_sdpa_opts o = LG_SDPA_DEFAULTS;
  read_sdpa_opts(L, 4, &o);
  /* the mask stays referenced by the options table during the call */
  return lgL_pushresult(L, SDPA, lg_scaled_dot_product_attention(q, k, v, &o));
}

static const luaL_Reg attention_funcs[] = {{SDPA, f_sdpa}, {NULL, NULL}};

/* adds the attention functions to the lg.F table at the top of the stack */
void lgL_open_attention(lua_State *L) { luaL_setfuncs(L, attention_funcs, 0); }
