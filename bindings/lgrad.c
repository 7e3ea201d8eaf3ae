/*
 * lgrad.c -- luaopen_lgrad: the module table, dtypes, settings, and the
 * lazily loaded Lua submodules (nn, data, train, exp, plot, explain,
 * privacy).
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>
#include <time.h>

#include "binding.h"

static int l_set_num_threads(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 1024, 1, "thread count must be 1..1024");
  lg_set_num_threads((int)n);
  return 0;
}

static int l_get_num_threads(lua_State *L) {
  lua_pushinteger(L, lg_get_num_threads());
  return 1;
}

static int l_set_default_dtype(lua_State *L) {
  lg_dtype d = lgL_checkdtype(L, 1);
  if (!lg_dtype_is_float(d))
    return luaL_argerror(L, 1, "the default dtype must be float32 or float64");
  lg_set_default_dtype(d);
  return 0;
}

static int l_get_default_dtype(lua_State *L) {
  lua_pushstring(L, lg_dtype_name(lg_default_dtype()));
  return 1;
}

/* monotonic wall clock in seconds, for timing from scripts */
static int l_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
  return 1;
}

static int l_memory(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lg_mem_live());
  return 1;
}

/* lg.nn and friends are Lua modules loaded on first use: the field and
 * its module (lg.experiment is lgrad/exp.lua) */
static const char *const lazy[][2] = {
    {"nn", "nn"},     {"data", "data"},         {"train", "train"},
    {"plot", "plot"}, {"experiment", "exp"}, {"dist", "dist"},
    {"explain", "explain"}, {"privacy", "privacy"}, {NULL, NULL}};

static int module_index(lua_State *L) {
  const char *k = luaL_checkstring(L, 2);
  for (int i = 0; lazy[i][0]; i++)
    if (!strcmp(k, lazy[i][0])) {
      lua_getglobal(L, "require");
      lua_pushfstring(L, "lgrad.%s", lazy[i][1]);
      lua_call(L, 1, 1);
      lua_pushvalue(L, -1);
      lua_setfield(L, 1, k);
      return 1;
    }
  return 0;
}

/* lg.exp is the elementwise exponential; the experiment module is
 * lg.experiment.  For the scripts written when lg.exp was both, lg.exp is a
 * table that calls like the function and forwards field reads to
 * lg.experiment (lg.exp.lr_find). */
static int exp_call(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_replace(L, 1); /* the function takes the place of the table */
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static int exp_index(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lgrad.exp");
  lua_call(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  return 1;
}

static void make_exp_proxy(lua_State *L, int module) {
  lua_getfield(L, module, "exp");
  int fn = lua_gettop(L);
  lua_newtable(L);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, fn);
  lua_pushcclosure(L, exp_call, 1);
  lua_setfield(L, -2, "__call");
  lua_pushcfunction(L, exp_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_setfield(L, module, "exp");
  lua_pop(L, 1);
}

static const luaL_Reg funcs[] = {{"set_num_threads", l_set_num_threads},
                                 {"get_num_threads", l_get_num_threads},
                                 {"set_default_dtype", l_set_default_dtype},
                                 {"get_default_dtype", l_get_default_dtype},
                                 {"memory_allocated", l_memory},
                                 {"clock", l_clock},
                                 {NULL, NULL}};

LUALIB_API int luaopen_lgrad(lua_State *L);
void lgL_open_dist(lua_State *L); /* l_dist.c: lg._dist */

LUALIB_API int luaopen_lgrad(lua_State *L) {
  luaL_newlib(L, funcs);
  lua_pushliteral(L, LG_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushliteral(L, LG_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lgL_open_tensor(L);
  make_exp_proxy(L, lua_gettop(L));
  /* dtype names (after the ops, whose float/double/long/bool methods
   * would otherwise take these names in the module table) */
  static const char *const dtypes[] = {"float32", "float64", "int64", "bool"};
  for (int i = 0; i < 4; i++) {
    lua_pushstring(L, dtypes[i]);
    lua_setfield(L, -2, dtypes[i]);
  }
  lua_pushliteral(L, "float32");
  lua_setfield(L, -2, "float");
  lua_pushliteral(L, "float64");
  lua_setfield(L, -2, "double");
  lua_pushliteral(L, "int64");
  lua_setfield(L, -2, "long");
  lgL_open_autograd(L);
  lgL_open_functional(L);
  lgL_open_embedding(L);
  lgL_open_optim(L);
  lgL_open_sched(L);
  lgL_open_reg(L);
  lgL_open_io(L);
  lgL_open_shape(L);
  lgL_open_linalg(L);
  lgL_open_where(L);
  lgL_open_text(L);
  lgL_open_rnn(L);
  lgL_open_dist(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, module_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  return 1;
}
