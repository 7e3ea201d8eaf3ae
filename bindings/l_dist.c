/*
 * l_dist.c -- lg._dist, the C half of lg.dist: collectives on tensors, the
 * non-blocking all-reduce's work handle and the DDP bucket engine.  The
 * public API (1-based ranks, options, DistributedDataParallel,
 * ZeroOptimizer) is in bindings/lgrad/dist.lua.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "../runtime/dist/dist.h"
#include "binding.h"

#define LGL_DIST_WORK "lgrad.dist.Work"
#define LGL_DDP "lgrad.dist.Buckets"
#define LGL_DIST_JOB "lgrad.dist.Job"

void lgL_open_dist(lua_State *L);

/* runtime messages start with the collective's name */
static int dist_fail(lua_State *L) {
  return luaL_error(L, "lg.dist.%s", lg_errmsg());
}

static lg_dist_op check_op(lua_State *L, int idx) {
  static const char *const names[] = {"sum", "mean", "max", "min", NULL};
  static const lg_dist_op ops[] = {LG_DIST_SUM, LG_DIST_MEAN, LG_DIST_MAX,
                                   LG_DIST_MIN};
  return ops[luaL_checkoption(L, idx, "sum", names)];
}

/* the job's end: a userdata kept in the registry whose __gc (at
 * lua_close) finalizes MPI or says why it could not */
static int job_gc(lua_State *L) {
  char msg[600];
  if (lg_dist_finalize(msg, sizeof msg))
    fprintf(stderr, "lg.dist: %s\n", msg);
  return 0;
}

static int l_init(lua_State *L) {
  double timeout = luaL_optnumber(L, 1, 0);
  luaL_argcheck(L, timeout >= 0, 1, "timeout must be a positive number");
  bool was = lg_dist_initialized();
  if (lg_dist_init(timeout))
    return dist_fail(L);
  if (!was && lg_dist_mpi()) {
    lua_newuserdatauv(L, 1, 0);
    if (luaL_newmetatable(L, LGL_DIST_JOB)) {
      lua_pushcfunction(L, job_gc);
      lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, LGL_DIST_JOB);
  }
  return 0;
}

static int l_info(lua_State *L) {
  lua_createtable(L, 0, 6);
  lua_pushboolean(L, lg_dist_initialized());
  lua_setfield(L, -2, "initialized");
  lua_pushboolean(L, lg_dist_mpi());
  lua_setfield(L, -2, "mpi");
  lua_pushinteger(L, lg_dist_rank() + 1);
  lua_setfield(L, -2, "rank");
  lua_pushinteger(L, lg_dist_size());
  lua_setfield(L, -2, "size");
  lua_pushnumber(L, lg_dist_timeout());
  lua_setfield(L, -2, "timeout");
  lua_pushinteger(L, (lua_Integer)lg_dist_seq());
  lua_setfield(L, -2, "collectives");
  return 1;
}

static int l_set_timeout(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s > 0, 1, "timeout must be a positive number");
  lg_dist_set_timeout(s);
  return 0;
}

static int l_set_max_count(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1, 1, "count must be positive");
  lg_dist_set_max_count(n);
  return 0;
}

static int l_barrier(lua_State *L) {
  if (lg_dist_barrier())
    return dist_fail(L);
  return 0;
}

static int l_all_reduce(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (lg_dist_all_reduce(t, check_op(L, 2)))
    return dist_fail(L);
  lua_settop(L, 1);
  return 1;
}

static int l_broadcast(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lua_Integer root = luaL_checkinteger(L, 2);
  if (lg_dist_broadcast(t, (int)(root - 1)))
    return dist_fail(L);
  lua_settop(L, 1);
  return 1;
}

static int l_all_gather(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_tensor **box = lgL_newbox(L);
  if (!(*box = lg_dist_all_gather(t)))
    return dist_fail(L);
  lgL_account(L);
  return 1;
}

static int l_reduce_scatter(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_dist_op op = check_op(L, 2);
  lg_tensor **box = lgL_newbox(L);
  if (!(*box = lg_dist_reduce_scatter(t, op)))
    return dist_fail(L);
  lgL_account(L);
  return 1;
}

/* ---- the non-blocking all-reduce's handle ---- */

static lg_dist_work **check_work(lua_State *L) {
  lg_dist_work **w = luaL_checkudata(L, 1, LGL_DIST_WORK);
  return w;
}

static int l_iall_reduce(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_dist_op op = check_op(L, 2);
  lg_dist_work **w = lua_newuserdatauv(L, sizeof *w, 1);
  *w = NULL;
  luaL_setmetatable(L, LGL_DIST_WORK);
  lua_pushvalue(L, 1); /* the tensor lives as long as the handle */
  lua_setiuservalue(L, -2, 1);
  if (!(*w = lg_dist_iall_reduce(t, op)))
    return dist_fail(L);
  return 1;
}

static int work_wait(lua_State *L) {
  lg_dist_work **w = check_work(L);
  if (!*w) /* already waited: nothing to do */
    return 0;
  lg_dist_work *work = *w;
  *w = NULL;
  if (lg_dist_wait(work))
    return dist_fail(L);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int work_test(lua_State *L) {
  lg_dist_work **w = check_work(L);
  bool done = true;
  if (*w && lg_dist_test(*w, &done))
    return dist_fail(L);
  lua_pushboolean(L, done);
  return 1;
}

static int work_gc(lua_State *L) {
  lg_dist_work **w = check_work(L);
  lg_dist_work_free(*w);
  *w = NULL;
  return 0;
}

/* ---- buckets for DistributedDataParallel ---- */

static lg_ddp **check_ddp(lua_State *L) {
  lg_ddp **d = luaL_checkudata(L, 1, LGL_DDP);
  if (!*d)
    luaL_error(L, "DistributedDataParallel: the wrapper is closed");
  return d;
}

/* buckets(params, bucket_bytes) */
static int l_buckets(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  double bytes = luaL_checknumber(L, 2);
  int n = (int)luaL_len(L, 1);
  lg_ddp **d = lua_newuserdatauv(L, sizeof *d, 0);
  *d = NULL;
  luaL_setmetatable(L, LGL_DDP);
  lg_tensor **ps = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ps, 0);
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    ps[i] = lgL_checktensor(L, -1);
    lua_pop(L, 1);
  }
  if (!(*d = lg_ddp_new(n, ps, bytes)))
    return luaL_error(L, "DistributedDataParallel: %s", lg_errmsg());
  lua_pop(L, 1);
  return 1;
}

static int ddp_set_sync(lua_State *L) {
  lg_ddp **d = check_ddp(L);
  lg_ddp_set_sync(*d, lua_toboolean(L, 2));
  return 0;
}

static int ddp_finish(lua_State *L) {
  lg_ddp **d = check_ddp(L);
  if (lg_ddp_finish(*d))
    return dist_fail(L);
  return 0;
}

/* the buckets as lists of 1-based parameter indices */
static int ddp_layout(lua_State *L) {
  lg_ddp **d = check_ddp(L);
  int nb = lg_ddp_nbuckets(*d);
  lua_createtable(L, nb, 0);
  for (int b = 0; b < nb; b++) {
    int count = lg_ddp_bucket(*d, b, NULL, 0);
    int *idx = lua_newuserdatauv(L, (count ? count : 1) * sizeof *idx, 0);
    lg_ddp_bucket(*d, b, idx, count);
    lua_createtable(L, count, 0);
    for (int k = 0; k < count; k++) {
      lua_pushinteger(L, idx[k] + 1);
      lua_rawseti(L, -2, k + 1);
    }
    lua_rawseti(L, -3, b + 1);
    lua_pop(L, 1);
  }
  return 1;
}

static int ddp_stats(lua_State *L) {
  lg_ddp **d = check_ddp(L);
  lg_ddp_stats s = lg_ddp_get_stats(*d);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)s.backwards);
  lua_setfield(L, -2, "backwards");
  lua_pushinteger(L, (lua_Integer)s.launched_early);
  lua_setfield(L, -2, "launched_early");
  lua_pushinteger(L, (lua_Integer)s.launched_late);
  lua_setfield(L, -2, "launched_late");
  lua_pushnumber(L, s.wait_seconds);
  lua_setfield(L, -2, "wait_seconds");
  lua_pushnumber(L, s.hook_seconds);
  lua_setfield(L, -2, "hook_seconds");
  return 1;
}

static int ddp_gc(lua_State *L) {
  lg_ddp **d = luaL_checkudata(L, 1, LGL_DDP);
  lg_ddp_free(*d);
  *d = NULL;
  return 0;
}

static const luaL_Reg funcs[] = {{"init", l_init},
                                 {"info", l_info},
                                 {"set_timeout", l_set_timeout},
                                 {"set_max_count", l_set_max_count},
                                 {"barrier", l_barrier},
                                 {"all_reduce", l_all_reduce},
                                 {"iall_reduce", l_iall_reduce},
                                 {"broadcast", l_broadcast},
                                 {"all_gather", l_all_gather},
                                 {"reduce_scatter", l_reduce_scatter},
                                 {"buckets", l_buckets},
                                 {NULL, NULL}};

static const luaL_Reg work_methods[] = {
    {"wait", work_wait}, {"test", work_test}, {NULL, NULL}};

static const luaL_Reg ddp_methods[] = {{"set_sync", ddp_set_sync},
                                       {"finish", ddp_finish},
                                       {"layout", ddp_layout},
                                       {"stats", ddp_stats},
                                       {NULL, NULL}};

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

void lgL_open_dist(lua_State *L) {
  new_class(L, LGL_DIST_WORK, work_methods, work_gc);
  new_class(L, LGL_DDP, ddp_methods, ddp_gc);
  luaL_newlib(L, funcs);
  lua_setfield(L, -2, "_dist");
}
