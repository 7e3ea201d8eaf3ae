/*
 * host.c -- the embedding API (lgrad_host.h): loading lgrad into a
 * lua_State, moving tensors between a host program and Lua, and running
 * Lua code with errors returned as strings.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "binding.h"
#include "lgrad_host.h"

/* ---- package paths ---- */

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* adds "dir/?.lua;" to the buffer at the top of the stack when dir holds
 * lgrad's Lua submodules (dir/lgrad/) */
static int add_luadir(luaL_Buffer *b, const char *dir) {
  char probe[PATH_MAX + 64];
  if (snprintf(probe, sizeof probe, "%s/lgrad", dir) >= (int)sizeof probe ||
      !is_dir(probe))
    return 0;
  luaL_addstring(b, dir);
  luaL_addstring(b, "/?.lua;");
  return 1;
}

/* the directories next to the executable: its parents (up to three
 * levels) holding bindings/lgrad (the build tree) or
 * share/lua/5.4/lgrad (an installed prefix) */
static void add_exe_dirs(luaL_Buffer *b) {
  char exe[PATH_MAX], dir[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return;
  exe[n] = '\0';
  for (int up = 0; up < 3; up++) {
    char *slash = strrchr(exe, '/');
    if (!slash || slash == exe)
      return;
    *slash = '\0'; /* exe is now the parent directory */
    snprintf(dir, sizeof dir, "%s/bindings", exe);
    if (add_luadir(b, dir))
      return;
    snprintf(dir, sizeof dir, "%s/share/lua/5.4", exe);
    if (add_luadir(b, dir))
      return;
  }
}

static int open_protected(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_LOADLIBNAME) == LUA_TNIL)
    luaL_openlibs(L);
  lua_pop(L, 2);
  lua_getfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  int noenv = lua_toboolean(L, -1);
  lua_pop(L, 1);

  /* package.path = <lgrad's dirs> .. package.path */
  lua_getglobal(L, LUA_LOADLIBNAME);
  luaL_checktype(L, -1, LUA_TTABLE);
  int package = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  const char *env = noenv ? NULL : getenv("LGRAD_LUADIR");
  if (env && *env)
    add_luadir(&b, env);
#ifdef LGRAD_LUADIR
  add_luadir(&b, LGRAD_LUADIR);
#endif
  add_exe_dirs(&b);
  if (lua_getfield(L, package, "path") == LUA_TSTRING)
    luaL_addvalue(&b);
  else
    lua_pop(L, 1);
  luaL_pushresult(&b);
  lua_setfield(L, package, "path");
  lua_pop(L, 1);

  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_lgrad);
  lua_setfield(L, -2, "lgrad");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lgrad");
  lua_call(L, 1, 1);
  lua_setglobal(L, "lg");
  return 0;
}

int lgrad_open(lua_State *L) {
  lua_pushcfunction(L, open_protected);
  return lua_pcall(L, 0, 0, 0);
}

/* ---- tensors in and out ---- */

static void release_nothing(void *data, void *ctx) {
  (void)data;
  (void)ctx;
}

int lgrad_push_wrap_strided(lua_State *L, lg_dtype dtype, int ndim,
                            const int64_t *shape, const int64_t *strides,
                            void *data, lg_release_fn rel, void *ctx) {
  if (ndim < 0 || ndim > LG_MAX_DIMS || (ndim > 0 && !shape) || !data) {
    lg_seterr("lgrad_push_wrap: bad arguments");
    return -1;
  }
  /* the box first: a Lua memory error here leaves the data untouched */
  lg_tensor **box = lgL_newbox(L);
  /* a NULL release would mean "lgrad's allocator" to the storage */
  *box = lg_wrap(dtype, ndim, shape, strides, data, rel ? rel : release_nothing,
                 rel ? ctx : NULL);
  if (!*box) {
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

int lgrad_push_wrap(lua_State *L, lg_dtype dtype, int ndim,
                    const int64_t *shape, void *data, lg_release_fn rel,
                    void *ctx) {
  return lgrad_push_wrap_strided(L, dtype, ndim, shape, NULL, data, rel, ctx);
}

int lgrad_push_copy(lua_State *L, lg_dtype dtype, int ndim,
                    const int64_t *shape, const void *data) {
  if (ndim < 0 || ndim > LG_MAX_DIMS || (ndim > 0 && !shape) || !data) {
    lg_seterr("lgrad_push_copy: bad arguments");
    return -1;
  }
  lg_tensor **box = lgL_newbox(L);
  *box = lg_from_data(dtype, ndim, shape, data);
  if (!*box) {
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

void lgrad_push_tensor(lua_State *L, lg_tensor *t) {
  if (!t) {
    lua_pushnil(L);
    return;
  }
  lg_tensor **box = lgL_newbox(L);
  *box = lg_retain(t);
}

lg_tensor *lgrad_to_tensor(lua_State *L, int idx) {
  return lgL_testtensor(L, idx);
}

int lgrad_tensor_info(lua_State *L, int idx, lgrad_info *info) {
  lg_tensor *t = lgL_testtensor(L, idx);
  if (!t)
    return -1;
  memset(info, 0, sizeof *info);
  info->dtype = t->dtype;
  info->ndim = t->ndim;
  memcpy(info->shape, t->shape, (size_t)t->ndim * sizeof *t->shape);
  memcpy(info->strides, t->strides, (size_t)t->ndim * sizeof *t->strides);
  info->numel = lg_numel(t);
  info->elem_size = lg_dtype_size(t->dtype);
  info->contiguous = lg_is_contiguous(t);
  info->data = lg_data_ptr(t);
  info->tensor = t;
  return 0;
}

/* ---- running code ---- */

/* pops the error message into *err (malloc'd) */
static void take_error(lua_State *L, char **err) {
  if (err) {
    const char *msg = lua_tostring(L, -1);
    if (!msg)
      msg = "(error object is not a string)";
    *err = strdup(msg);
  }
  lua_pop(L, 1);
}

int lgrad_call(lua_State *L, int nargs, int nresults, char **err) {
  if (err)
    *err = NULL;
  int base = lua_gettop(L) - nargs; /* the function */
  lua_pushcfunction(L, lgL_traceback);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status != LUA_OK)
    take_error(L, err);
  return status;
}

static int run_loaded(lua_State *L, int status, char **err) {
  if (status != LUA_OK) {
    take_error(L, err);
    return status;
  }
  return lgrad_call(L, 0, 0, err);
}

int lgrad_dofile(lua_State *L, const char *path, char **err) {
  if (err)
    *err = NULL;
  return run_loaded(L, luaL_loadfile(L, path), err);
}

int lgrad_dostring(lua_State *L, const char *code, char **err) {
  if (err)
    *err = NULL;
  return run_loaded(L, luaL_loadstring(L, code), err);
}
