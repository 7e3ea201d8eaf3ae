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

/* ---- per-state data of a host's state ----
 * lgrad_open keeps one of these in a userdata anchored in the registry
 * (freed by lua_close) and in a table of slots keyed by the state's
 * address, so that lgrad_interrupt can reach it from another thread or a
 * signal handler without touching the Lua stack. */

#define EXT_MAGIC 0x6c677264u /* "lgrd" */

typedef struct lgrad_ext {
  unsigned magic;
  lg_cancel cancel;  /* current on the thread while a call runs */
  double time_limit; /* seconds per outermost call; 0: none */
  int depth;         /* nesting of lgrad_call & co. */
  lg_cancel *outer;  /* the token that was current before the call */
  lgrad_log_fn log;  /* where lg.log and fit's progress go */
  void *log_ctx;
  int nthreads; /* per state; 0: the process-wide setting */
  int saved_threads;
} lgrad_ext;

static const char EXT_KEY = 'x';

/* states opened by lgrad_open, found by address without locks (a signal
 * handler may look one up): slots are claimed and freed atomically */
#define EXT_SLOTS 256
static struct {
  lua_State *L;
  lgrad_ext *x;
} ext_slots[EXT_SLOTS];

static lgrad_ext *ext_of(lua_State *L) {
  for (int i = 0; i < EXT_SLOTS; i++)
    if (__atomic_load_n(&ext_slots[i].L, __ATOMIC_ACQUIRE) == L) {
      lgrad_ext *x = __atomic_load_n(&ext_slots[i].x, __ATOMIC_ACQUIRE);
      return x && x->magic == EXT_MAGIC ? x : NULL;
    }
  return NULL;
}

static int ext_register(lua_State *L, lgrad_ext *x) {
  for (int i = 0; i < EXT_SLOTS; i++) {
    lua_State *none = NULL;
    if (__atomic_compare_exchange_n(&ext_slots[i].L, &none, L, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      __atomic_store_n(&ext_slots[i].x, x, __ATOMIC_RELEASE);
      return 0;
    }
  }
  return -1; /* more live states than slots: they run without cancellation */
}

/* __gc of the extension's userdata (at lua_close) */
static int ext_gc(lua_State *L) {
  lgrad_ext *x = lua_touserdata(L, 1);
  for (int i = 0; i < EXT_SLOTS; i++)
    if (__atomic_load_n(&ext_slots[i].x, __ATOMIC_ACQUIRE) == x) {
      __atomic_store_n(&ext_slots[i].x, NULL, __ATOMIC_RELEASE);
      __atomic_store_n(&ext_slots[i].L, NULL, __ATOMIC_RELEASE);
    }
  x->magic = 0;
  return 0;
}

static void cancel_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lgrad_ext *x = ext_of(L);
  if (!x)
    return;
  int why = lg_cancel_state(&x->cancel);
  if (why == 0)
    return; /* a time-limit hook that has not fired yet */
  lua_sethook(L, NULL, 0, 0);
  __atomic_store_n(&x->cancel.flag, 0, __ATOMIC_RELEASE);
  x->cancel.deadline = 0;
  luaL_error(L,
             why == LG_CANCEL_TIMEOUT ? "time limit exceeded" : "interrupted");
}

/* a kernel found the token fired: stop the interpreter at once too */
static void arm_hook(void *ctx) {
  lua_sethook((lua_State *)ctx, cancel_hook,
              LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

int lgrad_interrupt(lua_State *L) {
  lgrad_ext *x = L ? ext_of(L) : NULL;
  if (!x)
    return -1;
  lg_cancel_request(&x->cancel);
  /* as lua.c's SIGINT handler does: the next instruction runs the hook */
  lua_sethook(L, cancel_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  return 0;
}

int lgrad_set_time_limit(lua_State *L, double seconds) {
  lgrad_ext *x = L ? ext_of(L) : NULL;
  if (!x || !(seconds >= 0)) {
    lg_seterr("lgrad_set_time_limit: %s",
              x ? "seconds must be >= 0" : "not a state opened by lgrad_open");
    return -1;
  }
  x->time_limit = seconds;
  return 0;
}

int lgrad_set_num_threads(lua_State *L, int n) {
  lgrad_ext *x = L ? ext_of(L) : NULL;
  if (!x || n < 0) {
    lg_seterr("lgrad_set_num_threads: %s",
              x ? "n must be >= 0" : "not a state opened by lgrad_open");
    return -1;
  }
  x->nthreads = n;
  return 0;
}

/* entering and leaving a host call: the state's token becomes current
 * on this thread, a stale interrupt is dropped, the time limit starts */
static void call_enter(lua_State *L) {
  lgrad_ext *x = ext_of(L);
  if (!x || x->depth++ > 0)
    return;
  __atomic_store_n(&x->cancel.flag, 0, __ATOMIC_RELEASE);
  x->cancel.deadline = 0;
  lua_sethook(L, NULL, 0, 0);
  if (x->time_limit > 0) {
    x->cancel.deadline = lg_monotonic() + x->time_limit;
    lua_sethook(L, cancel_hook, LUA_MASKCOUNT, 1000);
  }
  x->outer = lg_cancel_set_current(&x->cancel);
  x->saved_threads = 0;
  if (x->nthreads > 0 && x->nthreads != lg_get_num_threads()) {
    x->saved_threads = lg_get_num_threads();
    lg_set_num_threads(x->nthreads);
  }
}

static void call_leave(lua_State *L) {
  lgrad_ext *x = ext_of(L);
  if (!x || --x->depth > 0)
    return;
  lua_sethook(L, NULL, 0, 0);
  x->cancel.deadline = 0;
  __atomic_store_n(&x->cancel.flag, 0, __ATOMIC_RELEASE);
  lg_cancel_set_current(x->outer);
  if (x->saved_threads > 0)
    lg_set_num_threads(x->saved_threads);
}

/* lg.output:write(...): fit's progress and epoch lines, to the host */
static int l_host_write(lua_State *L) {
  lgrad_ext *x = ext_of(L);
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (lua_type(L, i) == LUA_TTABLE && i == 1)
      continue; /* called as writer:write(...) */
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  if (x && x->log)
    x->log(x->log_ctx, lua_tostring(L, -1));
  lua_settop(L, 1);
  return 1; /* file:write returns the file */
}

int lgrad_set_log(lua_State *L, lgrad_log_fn fn, void *ctx) {
  lgrad_ext *x = L ? ext_of(L) : NULL;
  if (!x) {
    lg_seterr("lgrad_set_log: not a state opened by lgrad_open");
    return -1;
  }
  x->log = fn;
  x->log_ctx = ctx;
  /* lg.output: the object fit and lg.log write to (io.stdout by default) */
  lua_getglobal(L, "lg");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (fn) {
    lua_newtable(L);
    lua_pushcfunction(L, l_host_write);
    lua_setfield(L, -2, "write");
    lua_pushcfunction(L, l_host_write); /* flush: nothing to do */
    lua_setfield(L, -2, "flush");
  } else {
    lua_pushnil(L);
  }
  lua_setfield(L, -2, "output");
  lua_pop(L, 1);
  return 0;
}

int lgrad_version(void) { return lg_version(); }

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

  /* the Lua half must be there now, not at the first lg.nn use */
  lua_getglobal(L, LUA_LOADLIBNAME);
  lua_getfield(L, -1, "searchpath");
  lua_pushliteral(L, "lgrad.nn");
  lua_getfield(L, -3, "path");
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2))
    return luaL_error(L,
                      "lgrad_open: lgrad's Lua modules (lgrad/nn.lua) "
                      "were not found; set LGRAD_LUADIR to the directory "
                      "holding lgrad/ (looked in:%s)",
                      lua_tostring(L, -1));
  lua_pop(L, 3);

  if (!ext_of(L)) {
    lgrad_ext *x = lua_newuserdatauv(L, sizeof *x, 0);
    memset(x, 0, sizeof *x);
    x->magic = EXT_MAGIC;
    lg_cancel_init(&x->cancel);
    x->cancel.fired = arm_hook;
    x->cancel.fired_ctx = L;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, ext_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &EXT_KEY);
    ext_register(L, x);
  }

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

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;
    msg =
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

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
  if (!L || nargs < 0 || lua_gettop(L) < nargs + 1) {
    lg_seterr("lgrad_call: %s", L ? "fewer values on the stack than nargs + 1"
                                  : "argument 1 is NULL");
    if (err)
      *err = strdup(lg_errmsg());
    return LUA_ERRRUN;
  }
  int base = lua_gettop(L) - nargs; /* the function */
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  call_enter(L);
  int status = lua_pcall(L, nargs, nresults, base);
  call_leave(L);
  lua_remove(L, base);
  if (status != LUA_OK)
    take_error(L, err);
  return status;
}

/* sets the global `arg` as the lgrad program does (arg[0] the script,
 * arg[1..] its arguments) and pushes the arguments for `...` */
static int push_args(lua_State *L, const char *path, int argc, char **argv) {
  lua_createtable(L, argc, 1);
  lua_pushstring(L, path);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i] ? argv[i] : "");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  luaL_checkstack(L, argc, "too many arguments");
  for (int i = 0; i < argc; i++)
    lua_pushstring(L, argv[i] ? argv[i] : "");
  return argc;
}

int lgrad_dofile(lua_State *L, const char *path, int argc, char **argv,
                 char **err) {
  if (err)
    *err = NULL;
  if (!L || !path || argc < 0 || (argc > 0 && !argv)) {
    lg_seterr("lgrad_dofile: %s", !L      ? "argument 1 is NULL"
                                  : !path ? "argument 2 (path) is NULL"
                                          : "argc/argv do not agree");
    if (err)
      *err = strdup(lg_errmsg());
    return LUA_ERRRUN;
  }
  int status = luaL_loadfile(L, path);
  if (status != LUA_OK) {
    take_error(L, err);
    return status;
  }
  return lgrad_call(L, push_args(L, path, argc, argv), 0, err);
}

int lgrad_dostring(lua_State *L, const char *code, char **err) {
  if (err)
    *err = NULL;
  if (!L || !code) {
    lg_seterr("lgrad_dostring: argument %d is NULL", L ? 2 : 1);
    if (err)
      *err = strdup(lg_errmsg());
    return LUA_ERRRUN;
  }
  int status = luaL_loadstring(L, code);
  if (status != LUA_OK) {
    take_error(L, err);
    return status;
  }
  return lgrad_call(L, 0, 0, err);
}

/* ---- revoking wrapped memory ---- */

int lgrad_revoke(lg_tensor *t) {
  if (!t) {
    lg_seterr("lgrad_revoke: argument 1 is NULL");
    return -1;
  }
  lg_storage_revoke(t->storage);
  return 0;
}

/* ---- reading a table of tensors ---- */

/* walks the table at idx depth-first (keys in lua_next order), calling fn
 * with dotted names ("layer.weight", "blocks.1.bias") for every tensor;
 * returns fn's first non-zero result, or 0 */
#define WALK_MAX_DEPTH 32

static int walk_table(lua_State *L, int idx, char *name, size_t len, int depth,
                      lgrad_tensor_fn fn, void *ctx) {
  if (depth > WALK_MAX_DEPTH) {
    lg_seterr("lgrad_foreach_tensor: tables nest more than %d deep",
              WALK_MAX_DEPTH);
    return -1;
  }
  luaL_checkstack(L, 4, "lgrad_foreach_tensor");
  int rc = 0;
  lua_pushnil(L);
  while (rc == 0 && lua_next(L, idx)) {
    char key[64];
    const char *k;
    size_t klen;
    if (lua_type(L, -2) == LUA_TNUMBER) {
      snprintf(key, sizeof key, LUA_INTEGER_FMT, lua_tointeger(L, -2));
      k = key;
      klen = strlen(key);
    } else if (lua_type(L, -2) == LUA_TSTRING) {
      k = lua_tolstring(L, -2, &klen);
    } else {
      lua_pop(L, 1);
      continue;
    }
    size_t n = len + (len ? 1 : 0) + klen;
    if (n < 1024) {
      if (len)
        name[len] = '.';
      memcpy(name + len + (len ? 1 : 0), k, klen);
      name[n] = '\0';
      lg_tensor *t = lgL_testtensor(L, -1);
      if (t)
        rc = fn(ctx, name, t);
      else if (lua_istable(L, -1))
        rc = walk_table(L, lua_gettop(L), name, n, depth + 1, fn, ctx);
      name[len] = '\0';
    }
    lua_pop(L, 1);
  }
  if (rc != 0)
    lua_pop(L, 1); /* the key lua_next left */
  return rc;
}

int lgrad_foreach_tensor(lua_State *L, int idx, lgrad_tensor_fn fn, void *ctx) {
  if (!L || !fn) {
    lg_seterr("lgrad_foreach_tensor: argument %d is NULL", L ? 3 : 1);
    return -1;
  }
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) {
    lg_seterr("lgrad_foreach_tensor: value %d is not a table", idx);
    return -1;
  }
  char name[1024];
  return walk_table(L, idx, name, 0, 0, fn, ctx);
}
