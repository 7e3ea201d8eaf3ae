/*
 * l_autograd.c -- lg.grad, no_grad, set_grad_enabled, anomaly detection,
 * and lg.autograd.Function: ops whose forward and backward are Lua
 * functions, recorded as graph nodes whose backward calls back into Lua.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

__thread lua_State *lgL_active_state;

static int l_grad(lua_State *L) {
  /* outputs and inputs: a tensor or a list of tensors */
  lg_tensor *outs[64], *ins[64], *gouts[64] = {0}, *res[64];
  int nout = 0, nin = 0;
  for (int arg = 1; arg <= 2; arg++) {
    lg_tensor **dst = arg == 1 ? outs : ins;
    int *n = arg == 1 ? &nout : &nin;
    if (lgL_totensor(L, arg)) {
      dst[(*n)++] = lgL_checktensor(L, arg);
    } else {
      luaL_checktype(L, arg, LUA_TTABLE);
      lua_Integer len = luaL_len(L, arg);
      if (len < 1 || len > 64)
        return luaL_error(L, "grad: expects 1 to 64 tensors");
      for (lua_Integer i = 1; i <= len; i++) {
        lua_geti(L, arg, i);
        dst[(*n)++] = lgL_checktensor(L, -1);
        lua_pop(L, 1); /* still referenced by the list */
      }
    }
  }
  int opts = lua_istable(L, 3) ? 3 : 0;
  bool create = lgL_optbooleanfield(L, opts, "create_graph", 0);
  bool retain = lgL_optbooleanfield(L, opts, "retain_graph", create);
  bool unused = lgL_optbooleanfield(L, opts, "allow_unused", 0);
  if (opts) {
    lua_getfield(L, opts, "grad_outputs");
    if (lgL_totensor(L, -1)) {
      gouts[0] = lgL_checktensor(L, -1);
    } else if (lua_istable(L, -1)) {
      for (int i = 0; i < nout; i++) {
        lua_geti(L, -1, i + 1);
        gouts[i] = lua_isnil(L, -1) ? NULL : lgL_checktensor(L, -1);
        lua_pop(L, 1);
      }
    }
    /* the options table keeps grad_outputs referenced */
    lua_pop(L, 1);
  }
  lua_State *prev = lgL_active_state;
  lgL_active_state = L;
  int rc = lg_grad(nout, outs, gouts, nin, ins, res, retain, create, unused);
  lgL_active_state = prev;
  if (rc)
    return lgL_fail(L, "grad");
  bool single = lgL_totensor(L, 2) != NULL;
  if (!single)
    lua_createtable(L, nin, 0);
  for (int i = 0; i < nin; i++) {
    if (res[i])
      lgL_pushtensor(L, res[i]);
    else
      lua_pushnil(L);
    if (!single)
      lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int restore_grad(lua_State *L, bool was, int status) {
  lg_set_grad_enabled(was);
  if (status != LUA_OK)
    return lua_error(L);
  return lua_gettop(L) - 1;
}

/* lg.no_grad(fn, ...): runs fn without recording, returns its results */
static int l_no_grad(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  bool was = lg_set_grad_enabled(false);
  int n = lua_gettop(L) - 1;
  int base = 1;
  int st = lua_pcall(L, n, LUA_MULTRET, 0);
  (void)base;
  return restore_grad(L, was, st) + 1;
}

static int l_enable_grad(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  bool was = lg_set_grad_enabled(true);
  int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  return restore_grad(L, was, st) + 1;
}

static int l_set_grad_enabled(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, lg_set_grad_enabled(lua_toboolean(L, 1)));
  return 1;
}

static int l_is_grad_enabled(lua_State *L) {
  lua_pushboolean(L, lg_grad_enabled());
  return 1;
}

static int l_detect_anomaly(lua_State *L) {
  bool was = lg_anomaly_detection();
  if (!lua_isnone(L, 1))
    lg_set_anomaly_detection(lua_toboolean(L, 1));
  lua_pushboolean(L, was);
  return 1;
}

/* ---- Lua-defined functions ---- */

#define LGL_FUNCTION "lgrad.Function"

typedef struct {
  int backward_ref; /* the backward function, in the registry */
  int ctx_ref;      /* the ctx table */
  lua_State *owner; /* main thread, for releasing the references */
  int ninputs;
  struct {
    int ndim;
    lg_dtype dtype;
    int64_t shape[LG_MAX_DIMS];
  } in[]; /* each argument's shape (ndim -1: not a tensor) */
} lua_fn_ctx;

static void lua_fn_free(void *p) {
  lua_fn_ctx *c = p;
  if (c->owner) {
    luaL_unref(c->owner, LUA_REGISTRYINDEX, c->backward_ref);
    luaL_unref(c->owner, LUA_REGISTRYINDEX, c->ctx_ref);
  }
  free(c);
}

static int lua_fn_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lua_fn_ctx *c = n->ctx;
  lua_State *L = lgL_active_state;
  if (!L) {
    lg_seterr("%s: a Lua-defined backward must be run from Lua", n->name);
    return -1;
  }
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8 + n->ninputs)) {
    lg_seterr("%s: Lua stack overflow", n->name);
    return -1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->backward_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ctx_ref);
  lgL_pushtensor(L, lg_retain(g));
  if (lua_pcall(L, 2, n->ninputs, 0) != LUA_OK) {
    lg_seterr("%s backward: %s", n->name, lua_tostring(L, -1));
    lua_settop(L, top);
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < n->ninputs; i++) {
    int idx = top + 1 + i;
    if (lua_isnil(L, idx) || !n->needs_grad[i])
      continue;
    lg_tensor *t = lgL_totensor(L, idx);
    if (!t) {
      lg_seterr("%s backward: result %d is a %s, not a tensor", n->name, i + 1,
                luaL_typename(L, idx));
      rc = -1;
      break;
    }
    if (t->ndim != c->in[i].ndim ||
        memcmp(t->shape, c->in[i].shape, t->ndim * sizeof(int64_t))) {
      char a[200], b[200];
      lg_tensor want = {.ndim = c->in[i].ndim};
      memcpy(want.shape, c->in[i].shape, sizeof want.shape);
      lg_seterr("%s backward: gradient %d has shape %s, but input %d has "
                "shape %s",
                n->name, i + 1, lg_shape_str(t, a, sizeof a), i + 1,
                lg_shape_str(&want, b, sizeof b));
      rc = -1;
      break;
    }
    /* a gradient of another dtype is converted to the input's */
    grads[i] = t->dtype == c->in[i].dtype ? lg_retain(t)
                                          : lg_to_dtype(t, c->in[i].dtype);
    if (!grads[i]) {
      rc = -1;
      break;
    }
  }
  if (rc)
    for (int i = 0; i < n->ninputs; i++) {
      lg_release(grads[i]);
      grads[i] = NULL;
    }
  lua_settop(L, top);
  return rc;
}

/* Node names must outlive the node's Lua strings (and the Lua state): a
 * Function's name is copied once into this process-wide list and kept, one
 * entry per distinct name, at most 1024 of them. */
typedef struct fn_name {
  struct fn_name *next;
  char name[];
} fn_name;
static fn_name *fn_names;
static int nfn_names;
static pthread_mutex_t fn_names_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *intern_name(const char *name) {
  if (!name || !*name || strlen(name) > 64)
    return "lua_function";
  const char *found = "lua_function";
  pthread_mutex_lock(&fn_names_lock);
  fn_name *f;
  for (f = fn_names; f; f = f->next)
    if (!strcmp(f->name, name))
      break;
  if (!f && nfn_names < 1024 &&
      (f = malloc(sizeof *f + strlen(name) + 1))) {
    strcpy(f->name, name);
    f->next = fn_names;
    fn_names = f;
    nfn_names++;
  }
  if (f)
    found = f->name;
  pthread_mutex_unlock(&fn_names_lock);
  return found;
}

/* when the module is unloaded (after the Lua state, and every node, is
 * gone) */
__attribute__((destructor)) static void free_fn_names(void) {
  while (fn_names) {
    fn_name *f = fn_names;
    fn_names = f->next;
    free(f);
  }
  nfn_names = 0;
}

static int ctx_save(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = lua_gettop(L) - 1;
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, i + 1);
    lua_rawseti(L, -2, i);
  }
  lua_setfield(L, 1, "saved");
  return 0;
}

/* fn(...): forward without recording, then one node over tensor inputs */
static int function_call(lua_State *L) {
  int nargs = lua_gettop(L) - 1;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "forward");
  int fwd = lua_gettop(L);
  lua_getfield(L, 1, "backward");
  int bwd = lua_gettop(L);
  lua_getfield(L, 1, "name");
  const char *name = intern_name(lua_tostring(L, -1));
  lua_pop(L, 1);
  /* ctx */
  lua_newtable(L);
  int ctx = lua_gettop(L);
  lua_pushcfunction(L, ctx_save);
  lua_setfield(L, ctx, "save");
  lua_createtable(L, nargs, 0);
  for (int i = 0; i < nargs; i++) {
    lg_tensor *t = lgL_totensor(L, i + 2);
    lua_pushboolean(L, t && t->requires_grad);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, ctx, "needs_input_grad");
  lua_pushvalue(L, fwd);
  lua_pushvalue(L, ctx);
  for (int i = 0; i < nargs; i++)
    lua_pushvalue(L, i + 2);
  bool was = lg_set_grad_enabled(false);
  int st = lua_pcall(L, nargs + 1, 1, 0);
  lg_set_grad_enabled(was);
  if (st != LUA_OK)
    return lua_error(L);
  lg_tensor *out = lgL_totensor(L, -1);
  if (!out)
    return luaL_error(L, "Function: forward must return a tensor, got %s",
                      luaL_typename(L, -1));
  lgL_checktensor(L, -1);
  /* inputs: every argument, tensors or not, so backward's results line up */
  lg_tensor *ins[64];
  if (nargs > 64)
    return luaL_error(L, "Function: at most 64 arguments");
  for (int i = 0; i < nargs; i++)
    ins[i] = lgL_totensor(L, i + 2);
  lg_tensor **box = lgL_newbox(L);
  if (!(*box = lg_detach(out)))
    return lgL_fail(L, "Function");
  if (!lg_any_requires_grad(nargs, ins))
    return 1;
  /* the references first: luaL_ref may raise, malloc'd memory must not
   * be held across it */
  lua_pushvalue(L, bwd);
  int backward_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, ctx);
  int ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *owner = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_fn_ctx *c = malloc(sizeof *c + nargs * sizeof c->in[0]);
  if (!c) {
    luaL_unref(L, LUA_REGISTRYINDEX, backward_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, ctx_ref);
    return luaL_error(L, "Function: out of memory");
  }
  c->backward_ref = backward_ref;
  c->ctx_ref = ctx_ref;
  c->owner = owner;
  c->ninputs = nargs;
  for (int i = 0; i < nargs; i++) {
    c->in[i].ndim = ins[i] ? ins[i]->ndim : -1;
    c->in[i].dtype = ins[i] ? ins[i]->dtype : LG_FLOAT32;
    if (ins[i])
      memcpy(c->in[i].shape, ins[i]->shape, sizeof c->in[i].shape);
  }
  lg_node *n = lg_record(*box, name, lua_fn_backward, nargs, ins);
  if (!n) {
    lua_fn_free(c);
    return 1;
  }
  n->ctx = c;
  n->ctx_free = lua_fn_free;
  return 1;
}

/* F.apply(...) as torch spells it (F:apply(...) too): F(...) */
static int function_apply(lua_State *L) {
  if (lua_rawequal(L, 1, lua_upvalueindex(1)))
    lua_remove(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  return function_call(L);
}

static int l_function(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "forward");
  lua_getfield(L, 1, "backward");
  if (!lua_isfunction(L, -2) || !lua_isfunction(L, -1))
    return luaL_error(L, "Function: needs forward and backward functions");
  lua_pop(L, 2);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_settable(L, -4);
  }
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, function_apply, 1);
  lua_setfield(L, -2, "apply");
  luaL_setmetatable(L, LGL_FUNCTION);
  return 1;
}

static const luaL_Reg module_funcs[] = {
    {"grad", l_grad},
    {"no_grad", l_no_grad},
    {"enable_grad", l_enable_grad},
    {"set_grad_enabled", l_set_grad_enabled},
    {"is_grad_enabled", l_is_grad_enabled},
    {NULL, NULL}};

static const luaL_Reg autograd_funcs[] = {{"grad", l_grad},
                                          {"Function", l_function},
                                          {"detect_anomaly", l_detect_anomaly},
                                          {NULL, NULL}};

void lgL_open_autograd(lua_State *L) {
  luaL_setfuncs(L, module_funcs, 0);
  /* lg.einsum is written in Lua over permute, sum and matmul */
  lua_pushliteral(L, "lgrad.einsum");
  lua_pushcclosure(L, lgL_call_module, 1);
  lua_setfield(L, -2, "einsum");
  luaL_newlib(L, autograd_funcs);
  lua_pushliteral(L, "lgrad.gradcheck");
  lua_pushcclosure(L, lgL_call_module, 1);
  lua_setfield(L, -2, "gradcheck");
  lua_setfield(L, -2, "autograd");
  luaL_newmetatable(L, LGL_FUNCTION);
  lua_pushcfunction(L, function_call);
  lua_setfield(L, -2, "__call");
  lua_pop(L, 1);
}
