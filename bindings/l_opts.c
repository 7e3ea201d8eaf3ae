/*
 * l_opts.c -- option tables and the argument lists of reductions: an
 * unknown option key or a stray argument is an error naming the function,
 * never silently ignored.
 */
#include <string.h>

#include "binding.h"

void lgL_checkopts(lua_State *L, int idx, const char *fname,
                   const char *const *allowed) {
  if (!idx || !lua_istable(L, idx))
    return;
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    bool ok = false;
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (int i = 0; allowed[i] && !ok; i++)
        ok = !strcmp(k, allowed[i]);
    }
    if (!ok) {
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (int i = 0; allowed[i]; i++) {
        if (i)
          luaL_addstring(&b, ", ");
        luaL_addstring(&b, allowed[i]);
      }
      luaL_pushresult(&b);
      const char *key = lua_type(L, -2) == LUA_TSTRING
                            ? lua_tostring(L, -2)
                            : luaL_typename(L, -2);
      luaL_error(L, "%s: unknown option '%s' (valid options: %s)", fname,
                 key, allowed[0] ? lua_tostring(L, -1) : "none");
    }
  }
}

void lgL_checknargs(lua_State *L, int last, const char *fname) {
  int top = lua_gettop(L);
  while (top > last && lua_isnil(L, top))
    top--;
  if (top > last)
    luaL_error(L, "%s: unexpected argument #%d (a %s)", fname, last + 1,
               luaL_typename(L, last + 1));
}

int lgL_reduce_args(lua_State *L, int idx, const lg_tensor *t,
                    const char *fname, bool *keep, int *opts,
                    const char *const *extra) {
  int top = lua_gettop(L);
  *keep = false;
  if (opts)
    *opts = 0;
  /* the common calls first: t:f() and t:f(dim) */
  if (top < idx)
    return LG_ALL_DIMS;
  if (top == idx && lua_type(L, idx) == LUA_TNUMBER)
    return lgL_checkdim(L, idx, t->ndim, fname);
  int dim = LG_ALL_DIMS, o = 0, last = idx - 1;
  if (lua_istable(L, idx) && !lgL_testtensor(L, idx)) {
    o = idx;
    last = idx;
  } else if (lua_isboolean(L, idx)) {
    *keep = lua_toboolean(L, idx);
    last = idx;
    if (lua_istable(L, idx + 1))
      o = last = idx + 1;
  } else if (!lua_isnoneornil(L, idx)) {
    dim = lgL_checkdim(L, idx, t->ndim, fname);
    last = idx;
    if (lua_isboolean(L, idx + 1)) {
      *keep = lua_toboolean(L, idx + 1);
      last = idx + 1;
    }
    if (lua_istable(L, last + 1))
      o = last = last + 1;
  } else if (lua_istable(L, idx + 1)) {
    o = last = idx + 1;
  }
  if (o) {
    static const char *const base[] = {"dim", "keepdim", NULL};
    const char *keys[12];
    int n = 0;
    for (int i = 0; base[i]; i++)
      keys[n++] = base[i];
    for (int i = 0; extra && extra[i] && n < 11; i++)
      keys[n++] = extra[i];
    keys[n] = NULL;
    lgL_checkopts(L, o, fname, keys);
    lua_getfield(L, o, "dim");
    if (!lua_isnil(L, -1)) {
      if (dim != LG_ALL_DIMS)
        luaL_error(L, "%s: dim given twice (as an argument and an option)",
                   fname);
      dim = lgL_checkdim(L, lua_gettop(L), t->ndim, fname);
    }
    lua_pop(L, 1);
    lua_getfield(L, o, "keepdim");
    if (!lua_isnil(L, -1)) {
      if (!lua_isboolean(L, -1))
        luaL_error(L, "%s: option 'keepdim' must be a boolean", fname);
      *keep = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
  }
  if (opts)
    *opts = o;
  else
    lgL_checknargs(L, last, fname);
  return dim;
}
