/*
 * l_flazy.c -- lg.F's functions written in Lua (bindings/lgrad/functional.lua:
 * conv1d, rms_norm, group_norm, adaptive_avg_pool2d, elu, selu, mish,
 * hardtanh): the first lookup of a name lg.F does not hold loads that
 * module, which adds its functions to lg.F itself.
 */
#include "binding.h"

static int f_index(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "lgrad.functional.loading");
  bool loading = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (loading)
    return 0;
  lua_pushboolean(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "lgrad.functional.loading");
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lgrad.functional");
  int rc = lua_pcall(L, 1, 0, 0);
  lua_pushboolean(L, 0);
  lua_setfield(L, LUA_REGISTRYINDEX, "lgrad.functional.loading");
  if (rc != LUA_OK)
    return lua_error(L);
  lua_settop(L, 2);
  lua_rawget(L, 1);
  return 1;
}

/* sets the metatable of the lg.F table at the top of the stack */
void lgL_functional_lazy(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, f_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
}
