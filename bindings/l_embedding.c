/*
 * l_embedding.c -- lg.F.embedding_bag, the Lua face of ops/embedding.c.
 *
 *   F.embedding_bag(indices, weight [, offsets] [, {mode = "mean", sparse,
 *                   per_sample_weights, padding_idx}])
 *
 * indices are 1-based rows of weight; offsets the 1-based position of each
 * bag's first index (indices 1-d), or no offsets and indices (B, L), one
 * bag per row.  mode defaults to "mean", as torch's.
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "binding.h"

static int f_embedding_bag(lua_State *L) {
  static const char *const keys[] = {"mode", "sparse", "per_sample_weights",
                                     "padding_idx", NULL};
  static const char *const modes[] = {"sum", "mean", "max", NULL};
  const char *fn = "embedding_bag";
  lg_tensor *idx = lgL_checktensor(L, 1), *w = lgL_checktensor(L, 2);
  lg_tensor *offsets = NULL;
  int opts = 0;
  if (lgL_istensor(L, 3)) {
    offsets = lgL_checktensor(L, 3);
    if (lua_istable(L, 4))
      opts = 4;
    else if (!lua_isnoneornil(L, 4))
      return luaL_typeerror(L, 4, "options table");
  } else if (lua_istable(L, 3)) {
    opts = 3;
  } else if (!lua_isnoneornil(L, 3)) {
    return luaL_typeerror(L, 3, "offsets tensor or options table");
  } else if (lua_istable(L, 4)) {
    opts = 4;
  }
  lg_bag_mode mode = LG_BAG_MEAN;
  lg_tensor *psw = NULL;
  int64_t pad = INT64_MIN;
  bool sparse = false;
  if (opts) {
    lua_pushnil(L);
    while (lua_next(L, opts)) {
      lua_pop(L, 1);
      const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      int i = 0;
      while (keys[i] && strcmp(keys[i], k))
        i++;
      if (!keys[i])
        return luaL_error(L, "%s: unknown option '%s'", fn,
                          lua_type(L, -1) == LUA_TSTRING ? k : "?");
    }
    lua_getfield(L, opts, "mode");
    if (!lua_isnil(L, -1)) {
      const char *m = lua_tostring(L, -1);
      int i = 0;
      while (m && modes[i] && strcmp(modes[i], m))
        i++;
      if (!m || !modes[i] || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L,
                          "%s: mode must be \"sum\", \"mean\" or \"max\" "
                          "(got %s)",
                          fn, luaL_tolstring(L, -1, NULL));
      mode = (lg_bag_mode)i;
    }
    lua_pop(L, 1);
    sparse = lgL_optbooleanfield(L, opts, "sparse", 0);
    lua_getfield(L, opts, "per_sample_weights");
    if (!lua_isnil(L, -1)) {
      psw = lgL_totensor(L, -1);
      if (!psw)
        return luaL_error(L,
                          "%s: per_sample_weights must be a tensor (got "
                          "%s)",
                          fn, luaL_typename(L, -1));
    }
    lua_pop(L, 1); /* psw stays alive: the options table holds it */
    lua_getfield(L, opts, "padding_idx");
    if (!lua_isnil(L, -1)) {
      int64_t V = w->ndim == 2 ? w->shape[0] : 0;
      if (!lua_isinteger(L, -1))
        return luaL_error(L, "%s: padding_idx must be an integer", fn);
      pad = lua_tointeger(L, -1);
      if (pad == 0 || pad > V || pad < -V)
        return luaL_error(L,
                          "%s: padding_idx %I out of range for %I "
                          "embeddings",
                          fn, (lua_Integer)pad, (lua_Integer)V);
      if (pad < 0)
        pad += V + 1;
    }
    lua_pop(L, 1);
  }
  return lgL_pushresult(
      L, fn, lg_embedding_bag(w, idx, offsets, psw, mode, pad, sparse, 1));
}

void lgL_open_embedding(lua_State *L) {
  lua_getfield(L, -1, "F");
  lua_pushcfunction(L, f_embedding_bag);
  lua_setfield(L, -2, "embedding_bag");
  lua_pop(L, 1);
}
