/*
 * l_sched.c -- lg.sched: learning-rate schedulers as userdata.
 *
 *   local s = lg.sched.Step(opt, {step_size = 10, gamma = 0.5})
 *   for epoch = 1, n do train(); s:step() end
 *   s:get_lr()      -- {lr of group 1, lr of group 2, ...}
 *   s.last_step     -- PyTorch's last_epoch
 *   local sd = s:state_dict(); s2:load_state_dict(sd)
 *
 * A scheduler box keeps its optimizer alive in user value 1 and, in user
 * value 2, the child schedulers (Sequential, Chained) or the functions
 * (Lambda, Multiplicative).  The runtime calls those functions through
 * lambda_call, which finds them in a weak registry table keyed by the box's
 * address and runs them under lua_pcall, so a Lua error inside one comes
 * back as an ordinary runtime error and never unwinds through C.
 */
#include <math.h>
#include <string.h>

#include "../runtime/sched/sched.h"
#include "binding.h"
#include "l_optim.h"

#define LGL_SCHED "lgrad.Scheduler"

typedef struct {
  lg_sched *s;
} sched_box;

static const char lambda_registry_key = 'L';

static lg_sched *check_sched(lua_State *L, int idx) {
  sched_box *b = luaL_checkudata(L, idx, LGL_SCHED);
  if (!b->s)
    luaL_error(L, "scheduler is closed");
  return b->s;
}

/* raises when the scheduler's optimizer (user value 1) was closed, before
 * the runtime touches it */
static void check_optim_open(lua_State *L, int idx) {
  lua_getiuservalue(L, idx, 1);
  lgL_checkoptim(L, -1);
  lua_pop(L, 1);
}

/* ---- option parsing (errors name the scheduler and the option) ---- */

typedef struct {
  lua_State *L;
  int idx; /* the options table, or 0 when none was given */
  const char *fname;
  int ngroups;
} opts_reader;

static int field(opts_reader *r, const char *k) {
  if (!r->idx) {
    lua_pushnil(r->L);
    return LUA_TNIL;
  }
  return lua_getfield(r->L, r->idx, k);
}

static double opt_num(opts_reader *r, const char *k, double def) {
  int t = field(r, k);
  double v = def;
  if (t == LUA_TNUMBER)
    v = lua_tonumber(r->L, -1);
  else if (t != LUA_TNIL)
    luaL_error(r->L, "%s: %s must be a number, got %s", r->fname, k,
               luaL_typename(r->L, -1));
  lua_pop(r->L, 1);
  return v;
}

static int64_t opt_int(opts_reader *r, const char *k, int64_t def) {
  int t = field(r, k);
  int64_t v = def;
  if (t != LUA_TNIL) {
    int ok = 0;
    if (t == LUA_TNUMBER)
      v = (int64_t)lua_tointegerx(r->L, -1, &ok);
    if (!ok)
      luaL_error(r->L, "%s: %s must be an integer, got %s", r->fname, k,
                 t == LUA_TNUMBER ? "a fraction" : luaL_typename(r->L, -1));
  }
  lua_pop(r->L, 1);
  return v;
}

static bool opt_bool(opts_reader *r, const char *k, bool def) {
  int t = field(r, k);
  bool v = def;
  if (t == LUA_TBOOLEAN)
    v = lua_toboolean(r->L, -1);
  else if (t != LUA_TNIL)
    luaL_error(r->L, "%s: %s must be a boolean, got %s", r->fname, k,
               luaL_typename(r->L, -1));
  lua_pop(r->L, 1);
  return v;
}

/* index of the string option's value in choices (NULL-terminated) */
static int opt_choice(opts_reader *r, const char *k, const char *const *choices,
                      int def) {
  int t = field(r, k);
  int v = def;
  if (t != LUA_TNIL) {
    const char *s = t == LUA_TSTRING ? lua_tostring(r->L, -1) : NULL;
    v = -1;
    for (int i = 0; s && choices[i]; i++)
      if (strcmp(s, choices[i]) == 0)
        v = i;
    if (v < 0) {
      luaL_Buffer buf;
      luaL_buffinit(r->L, &buf);
      for (int i = 0; choices[i]; i++) {
        luaL_addstring(&buf, i ? ", " : "");
        luaL_addstring(&buf, choices[i]);
      }
      luaL_pushresult(&buf);
      luaL_error(r->L, "%s: %s must be one of %s, got %s", r->fname, k,
                 lua_tostring(r->L, -1), s ? s : luaL_typename(r->L, -2));
    }
  }
  lua_pop(r->L, 1);
  return v;
}

/* a number, or a list with one number per parameter group; the list's
 * values are copied into a userdata buffer left on the stack */
static lg_sched_pergroup opt_pergroup(opts_reader *r, const char *k,
                                      double def) {
  lua_State *L = r->L;
  lg_sched_pergroup p = {NULL, def};
  int t = field(r, k);
  if (t == LUA_TNUMBER) {
    p.all = lua_tonumber(L, -1);
  } else if (t == LUA_TTABLE) {
    int n = (int)luaL_len(L, -1);
    if (n != r->ngroups)
      luaL_error(L, "%s: %s has %d values for %d parameter groups", r->fname, k,
                 n, r->ngroups);
    double *v = lua_newuserdatauv(L, sizeof(double) * (n ? n : 1), 0);
    for (int i = 0; i < n; i++) {
      if (lua_geti(L, -2, i + 1) != LUA_TNUMBER)
        luaL_error(L, "%s: %s[%d] must be a number", r->fname, k, i + 1);
      v[i] = lua_tonumber(L, -1);
      lua_pop(L, 1);
    }
    lua_insert(L, -2); /* keep the buffer below, drop the list */
    p.v = v;
  } else if (t != LUA_TNIL) {
    luaL_error(L, "%s: %s must be a number or a list of numbers, got %s",
               r->fname, k, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return p;
}

/* a list of integers copied into a userdata buffer left on the stack */
static int opt_intlist(opts_reader *r, const char *k, const int64_t **out,
                       bool required) {
  lua_State *L = r->L;
  int t = field(r, k);
  *out = NULL;
  if (t == LUA_TNIL) {
    lua_pop(L, 1);
    if (required)
      luaL_error(L, "%s: %s is required", r->fname, k);
    return 0;
  }
  if (t != LUA_TTABLE)
    luaL_error(L, "%s: %s must be a list of integers, got %s", r->fname, k,
               luaL_typename(L, -1));
  int n = (int)luaL_len(L, -1);
  int64_t *v = lua_newuserdatauv(L, sizeof(int64_t) * (n ? n : 1), 0);
  for (int i = 0; i < n; i++) {
    int ok = 0;
    lua_geti(L, -2, i + 1);
    v[i] = (int64_t)lua_tointegerx(L, -1, &ok);
    if (!ok)
      luaL_error(L, "%s: %s[%d] must be an integer", r->fname, k, i + 1);
    if (v[i] < 0)
      luaL_error(L, "%s: %s[%d] must be >= 0, got %I", r->fname, k, i + 1,
                 (lua_Integer)v[i]);
    lua_pop(L, 1);
  }
  lua_insert(L, -2);
  lua_pop(L, 1);
  *out = v;
  return n;
}

static const char *const allowed[LG_SCHED_NKINDS] = {
    [LG_SCHED_CONSTANT] = " factor total_iters ",
    [LG_SCHED_STEP] = " step_size gamma ",
    [LG_SCHED_MULTISTEP] = " milestones gamma ",
    [LG_SCHED_EXPONENTIAL] = " gamma ",
    [LG_SCHED_COSINE] = " T_max eta_min ",
    [LG_SCHED_COSINE_RESTARTS] = " T_0 T_mult eta_min ",
    [LG_SCHED_LINEAR] = " start_factor end_factor total_iters ",
    [LG_SCHED_POLYNOMIAL] = " total_iters power ",
    [LG_SCHED_ONECYCLE] =
        " max_lr total_steps epochs steps_per_epoch pct_start "
        "anneal_strategy cycle_momentum base_momentum max_momentum "
        "div_factor final_div_factor three_phase ",
    [LG_SCHED_CYCLIC] = " base_lr max_lr step_size_up step_size_down mode "
                        "gamma cycle_momentum base_momentum max_momentum ",
    [LG_SCHED_PLATEAU] = " mode factor patience threshold threshold_mode "
                         "cooldown min_lr eps ",
    [LG_SCHED_LAMBDA] = " fn ",
    [LG_SCHED_MULTIPLICATIVE] = " fn ",
    [LG_SCHED_SEQUENTIAL] = " schedulers milestones ",
    [LG_SCHED_CHAINED] = " schedulers ",
};

/* rejects option names the scheduler does not know (typos) */
static void check_keys(opts_reader *r, lg_sched_kind kind) {
  lua_State *L = r->L;
  if (!r->idx)
    return;
  lua_pushnil(L);
  while (lua_next(L, r->idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: option names must be strings", r->fname);
    const char *k = lua_tostring(L, -1);
    size_t n = strlen(k);
    const char *hit = n && !strchr(k, ' ') ? strstr(allowed[kind], k) : NULL;
    while (hit && !(hit[-1] == ' ' && hit[n] == ' '))
      hit = strstr(hit + 1, k);
    if (!hit)
      luaL_error(L, "%s: unknown option '%s'", r->fname, k);
  }
}

/* ---- Lambda and Multiplicative: calling the Lua functions ---- */

/* pushes the weak table mapping box addresses to function lists */
static void push_lambda_registry(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lambda_registry_key) == LUA_TTABLE)
    return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lambda_registry_key);
}

static int optim_still_open(lua_State *L) {
  lgL_checkoptim(L, 1);
  return 0;
}

/* the runtime's callback: fns[group] (or fns[1] for all) of the epoch */
static int lambda_call(void *call_ctx, void *fn_ctx, int group, int64_t epoch,
                       double *factor) {
  lua_State *L = call_ctx;
  if (!lua_checkstack(L, 6)) {
    lg_seterr("sched: Lua stack overflow");
    return -1;
  }
  int top = lua_gettop(L);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lambda_registry_key) != LUA_TTABLE ||
      lua_rawgetp(L, -1, fn_ctx) != LUA_TTABLE) {
    lua_settop(L, top);
    lg_seterr("sched: the scheduler's functions are gone");
    return -1;
  }
  int n = (int)lua_rawlen(L, -1);
  lua_rawgeti(L, -1, n == 1 ? 1 : group + 1);
  lua_pushinteger(L, (lua_Integer)epoch);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    lg_seterr("fn failed at epoch %lld: %s", (long long)epoch,
              msg ? msg : "(error object is not a string)");
    lua_settop(L, top);
    return -1;
  }
  int ok = lua_type(L, -1) == LUA_TNUMBER;
  if (ok)
    *factor = lua_tonumber(L, -1);
  else
    lg_seterr("fn must return a number, returned %s at epoch %lld",
              luaL_typename(L, -1), (long long)epoch);
  /* the function may have closed the optimizer the runtime is using */
  lua_pushcfunction(L, optim_still_open);
  lua_getfield(L, top + 2, "optimizer");
  if (ok && lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lg_seterr("fn closed the optimizer at epoch %lld", (long long)epoch);
    ok = 0;
  }
  lua_settop(L, top);
  return ok ? 0 : -1;
}

/* the functions of opts.fn (or a function given instead of opts) as a
 * list at the top of the stack */
static void push_fns(lua_State *L, int idx, opts_reader *r) {
  if (lua_type(L, idx) == LUA_TFUNCTION) {
    lua_createtable(L, 1, 0);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, 1);
    return;
  }
  int t = field(r, "fn");
  if (t == LUA_TFUNCTION) {
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    return;
  }
  if (t == LUA_TNIL)
    luaL_error(L, "%s: fn is required", r->fname);
  if (t != LUA_TTABLE)
    luaL_error(L, "%s: fn must be a function or a list of functions, got %s",
               r->fname, luaL_typename(L, -1));
  int n = (int)luaL_len(L, -1);
  if (n != r->ngroups)
    luaL_error(L, "%s: fn has %d functions for %d parameter groups", r->fname,
               n, r->ngroups);
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    if (lua_geti(L, -2, i) != LUA_TFUNCTION)
      luaL_error(L, "%s: fn[%d] must be a function", r->fname, i);
    lua_rawseti(L, -2, i);
  }
  lua_remove(L, -2);
}

/* the scheduler list of opts.schedulers: a table of the boxes at the top
 * of the stack, and their runtime objects in a userdata buffer below it */
static int push_children(lua_State *L, opts_reader *r, lg_sched ***out) {
  if (field(r, "schedulers") != LUA_TTABLE)
    luaL_error(L, "%s: schedulers must be a list of schedulers", r->fname);
  int n = (int)luaL_len(L, -1);
  if (n < 1)
    luaL_error(L, "%s: schedulers is empty", r->fname);
  lg_sched **v = lua_newuserdatauv(L, sizeof(lg_sched *) * n, 0);
  lua_insert(L, -2);
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_geti(L, -2, i);
    sched_box *b = luaL_testudata(L, -1, LGL_SCHED);
    if (!b || !b->s)
      luaL_error(L, "%s: schedulers[%d] is not a scheduler", r->fname, i);
    v[i - 1] = b->s;
    lua_rawseti(L, -2, i);
  }
  lua_remove(L, -2);
  *out = v;
  return n;
}

/* lg.sched.NAME(opt, opts): upvalue 1 is the kind */
static int sched_new(lua_State *L) {
  lg_sched_kind kind = (lg_sched_kind)lua_tointeger(L, lua_upvalueindex(1));
  char fname[48];
  snprintf(fname, sizeof fname, "sched.%s", lg_sched_kind_name(kind));
  lg_optim *opt = NULL;
  int opts_idx = 2;
  if (kind == LG_SCHED_CHAINED && lua_type(L, 1) == LUA_TTABLE &&
      lua_isnoneornil(L, 2))
    opts_idx = 1; /* Chained{schedulers = ...}: the children's optimizer */
  else
    opt = lgL_checkoptim(L, 1);
  int ot = lua_type(L, opts_idx);
  if (!(ot == LUA_TTABLE || ot == LUA_TNONE || ot == LUA_TNIL ||
        (ot == LUA_TFUNCTION &&
         (kind == LG_SCHED_LAMBDA || kind == LG_SCHED_MULTIPLICATIVE))))
    luaL_typeerror(L, opts_idx, "table of options");
  opts_reader r = {L, ot == LUA_TTABLE ? opts_idx : 0, fname,
                   opt ? lg_optim_ngroups(opt) : 0};
  lua_settop(L, 2);
  check_keys(&r, kind);

  lg_sched_opts o;
  lg_sched_defaults(kind, &o);
  int extra = 0; /* user value 2: children or functions */
  switch (kind) {
  case LG_SCHED_CONSTANT:
    o.factor = opt_num(&r, "factor", o.factor);
    o.total_iters = opt_int(&r, "total_iters", o.total_iters);
    break;
  case LG_SCHED_STEP:
    o.step_size = opt_int(&r, "step_size", 0);
    if (field(&r, "step_size") == LUA_TNIL)
      luaL_error(L, "%s: step_size is required", fname);
    lua_pop(L, 1);
    o.gamma = opt_num(&r, "gamma", o.gamma);
    break;
  case LG_SCHED_MULTISTEP:
    o.nmilestones = opt_intlist(&r, "milestones", &o.milestones, true);
    o.gamma = opt_num(&r, "gamma", o.gamma);
    break;
  case LG_SCHED_EXPONENTIAL:
    o.gamma = opt_num(&r, "gamma", o.gamma);
    break;
  case LG_SCHED_COSINE:
    o.T_max = opt_num(&r, "T_max", o.T_max);
    o.eta_min = opt_num(&r, "eta_min", o.eta_min);
    break;
  case LG_SCHED_COSINE_RESTARTS:
    o.T_0 = opt_int(&r, "T_0", 0);
    if (field(&r, "T_0") == LUA_TNIL)
      luaL_error(L, "%s: T_0 is required", fname);
    lua_pop(L, 1);
    o.T_mult = opt_int(&r, "T_mult", o.T_mult);
    o.eta_min = opt_num(&r, "eta_min", o.eta_min);
    break;
  case LG_SCHED_LINEAR:
    o.start_factor = opt_num(&r, "start_factor", o.start_factor);
    o.end_factor = opt_num(&r, "end_factor", o.end_factor);
    o.total_iters = opt_int(&r, "total_iters", o.total_iters);
    break;
  case LG_SCHED_POLYNOMIAL:
    o.total_iters = opt_int(&r, "total_iters", o.total_iters);
    o.power = opt_num(&r, "power", o.power);
    break;
  case LG_SCHED_ONECYCLE: {
    static const char *const anneal[] = {"cos", "linear", NULL};
    o.max_lr = opt_pergroup(&r, "max_lr", o.max_lr.all);
    if (field(&r, "total_steps") != LUA_TNIL) {
      o.total_steps = opt_int(&r, "total_steps", 0);
      if (o.total_steps == 0)
        o.total_steps = -1; /* given as 0: rejected by the runtime */
    }
    lua_pop(L, 1);
    o.epochs = opt_int(&r, "epochs", 0);
    o.steps_per_epoch = opt_int(&r, "steps_per_epoch", 0);
    o.pct_start = opt_num(&r, "pct_start", o.pct_start);
    o.anneal_linear = opt_choice(&r, "anneal_strategy", anneal, 0) == 1;
    o.div_factor = opt_num(&r, "div_factor", o.div_factor);
    o.final_div_factor = opt_num(&r, "final_div_factor", o.final_div_factor);
    o.three_phase = opt_bool(&r, "three_phase", false);
    o.cycle_momentum = opt_bool(&r, "cycle_momentum", true);
    o.base_momentum = opt_pergroup(&r, "base_momentum", o.base_momentum.all);
    o.max_momentum = opt_pergroup(&r, "max_momentum", o.max_momentum.all);
    break;
  }
  case LG_SCHED_CYCLIC: {
    static const char *const modes[] = {"triangular", "triangular2",
                                        "exp_range", NULL};
    o.base_lr = opt_pergroup(&r, "base_lr", o.base_lr.all);
    o.max_lr = opt_pergroup(&r, "max_lr", o.max_lr.all);
    o.step_size_up = opt_num(&r, "step_size_up", o.step_size_up);
    o.step_size_down = opt_num(&r, "step_size_down", o.step_size_down);
    o.cyclic_mode = opt_choice(&r, "mode", modes, 0);
    o.gamma = opt_num(&r, "gamma", o.gamma);
    o.cycle_momentum = opt_bool(&r, "cycle_momentum", true);
    o.base_momentum = opt_pergroup(&r, "base_momentum", o.base_momentum.all);
    o.max_momentum = opt_pergroup(&r, "max_momentum", o.max_momentum.all);
    break;
  }
  case LG_SCHED_PLATEAU: {
    static const char *const modes[] = {"min", "max", NULL};
    static const char *const tmodes[] = {"rel", "abs", NULL};
    o.mode_max = opt_choice(&r, "mode", modes, 0) == 1;
    o.factor = opt_num(&r, "factor", o.factor);
    o.patience = opt_int(&r, "patience", o.patience);
    o.threshold = opt_num(&r, "threshold", o.threshold);
    o.threshold_abs = opt_choice(&r, "threshold_mode", tmodes, 0) == 1;
    o.cooldown = opt_int(&r, "cooldown", o.cooldown);
    o.min_lr = opt_pergroup(&r, "min_lr", o.min_lr.all);
    o.eps = opt_num(&r, "eps", o.eps);
    break;
  }
  case LG_SCHED_LAMBDA:
  case LG_SCHED_MULTIPLICATIVE:
    push_fns(L, 2, &r);
    o.fn = lambda_call;
    extra = lua_gettop(L);
    break;
  case LG_SCHED_SEQUENTIAL:
  case LG_SCHED_CHAINED: {
    lg_sched **children;
    o.nchildren = push_children(L, &r, &children);
    o.children = children;
    extra = lua_gettop(L);
    if (kind == LG_SCHED_SEQUENTIAL)
      o.nmilestones = opt_intlist(&r, "milestones", &o.milestones, true);
    if (!opt)
      opt = lg_sched_optim(children[0]);
    break;
  }
  default:
    break;
  }

  sched_box *b = lua_newuserdatauv(L, sizeof *b, 2);
  b->s = NULL;
  luaL_setmetatable(L, LGL_SCHED);
  if (lua_type(L, 1) == LUA_TUSERDATA) {
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
  } else if (extra) { /* the first child's optimizer */
    lua_rawgeti(L, extra, 1);
    lua_getiuservalue(L, -1, 1);
    lua_setiuservalue(L, -3, 1);
    lua_pop(L, 1);
  }
  if (extra) {
    lua_pushvalue(L, extra);
    lua_setiuservalue(L, -2, 2);
  }
  if (o.fn) {
    push_lambda_registry(L);
    lua_pushvalue(L, extra);
    lua_getiuservalue(L, -3, 1); /* the optimizer, checked after calls */
    lua_setfield(L, -2, "optimizer");
    lua_rawsetp(L, -2, b);
    lua_pop(L, 1);
    o.fn_ctx = b;
  }
  b->s = lg_sched_new(kind, opt, &o, L);
  if (!b->s)
    return luaL_error(L, "%s", lg_errmsg_based(1));
  return 1;
}

/* ---- methods ---- */

static void push_lrs(lua_State *L, const double *v, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

/* s:step([metric]): the metric (a number or a one-element tensor) is read
 * by Plateau and ignored by the others, so a loop can pass it to any */
static int sched_step(lua_State *L) {
  lg_sched *s = check_sched(L, 1);
  int rc;
  check_optim_open(L, 1);
  if (lg_sched_kind_of(s) == LG_SCHED_PLATEAU) {
    double metric;
    lg_tensor *t = lgL_totensor(L, 2);
    if (t) {
      if (lg_numel(t) != 1)
        return luaL_argerror(L, 2, "the metric tensor must have one element");
      metric = lg_item(t);
    } else if (lua_type(L, 2) == LUA_TNUMBER) {
      metric = lua_tonumber(L, 2);
    } else {
      return luaL_error(L,
                        "sched.Plateau: step needs the metric (a number), "
                        "got %s",
                        luaL_typename(L, 2));
    }
    rc = lg_sched_step_metric(s, metric, L);
  } else {
    rc = lg_sched_step(s, L);
  }
  if (rc < 0)
    return luaL_error(L, "%s", lg_errmsg_based(1));
  return 0;
}

/* s:step_to(epoch): PyTorch's step(epoch), e.g. fractional epochs for
 * CosineWarmRestarts */
static int sched_step_to(lua_State *L) {
  lg_sched *s = check_sched(L, 1);
  double e = luaL_checknumber(L, 2);
  check_optim_open(L, 1);
  if (lg_sched_step_epoch(s, e, L) < 0)
    return luaL_error(L, "%s", lg_errmsg_based(1));
  return 0;
}

static int sched_get_lr(lua_State *L) {
  lg_sched *s = check_sched(L, 1);
  push_lrs(L, lg_sched_last_lrs(s), lg_sched_ngroups(s));
  return 1;
}

static int sched_base_lrs(lua_State *L) {
  lg_sched *s = check_sched(L, 1);
  push_lrs(L, lg_sched_base_lrs(s), lg_sched_ngroups(s));
  return 1;
}

static void push_state(lua_State *L, lg_sched *s) {
  lg_sched_field f[LG_SCHED_MAXFIELDS];
  int nf = lg_sched_fields(s, f);
  luaL_checkstack(L, 6, "state_dict");
  lua_createtable(L, 0, nf + 2);
  lua_pushstring(L, lg_sched_kind_name(lg_sched_kind_of(s)));
  lua_setfield(L, -2, "kind");
  for (int i = 0; i < nf; i++) {
    if (f[i].array)
      lua_createtable(L, f[i].n, 0);
    for (int j = 0; j < f[i].n; j++) {
      if (f[i].i64)
        lua_pushinteger(L, (lua_Integer)f[i].i64[j]);
      else
        lua_pushnumber(L, f[i].f64[j]);
      if (f[i].array)
        lua_rawseti(L, -2, j + 1);
    }
    lua_setfield(L, -2, f[i].name);
  }
  int nc = lg_sched_nchildren(s);
  if (nc) {
    lua_createtable(L, nc, 0);
    for (int i = 0; i < nc; i++) {
      push_state(L, lg_sched_child(s, i));
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "schedulers");
  }
}

static int sched_state_dict(lua_State *L) {
  push_state(L, check_sched(L, 1));
  return 1;
}

static void load_value(lua_State *L, const lg_sched_field *f, int j,
                       const char *where) {
  if (f->i64) {
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok)
      luaL_error(L, "load_state_dict: %s%s must be an integer", where, f->name);
    f->i64[j] = (int64_t)v;
  } else {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "load_state_dict: %s%s must be a number", where, f->name);
    f->f64[j] = lua_tonumber(L, -1);
  }
}

/* checks sd (at the top) against s, then writes every field */
static void check_state(lua_State *L, lg_sched *s, const char *where,
                        bool write) {
  const char *kind = lg_sched_kind_name(lg_sched_kind_of(s));
  if (lua_type(L, -1) != LUA_TTABLE)
    luaL_error(L, "load_state_dict: %sstate must be a table", where);
  lua_getfield(L, -1, "kind");
  if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), kind))
    luaL_error(
        L, "load_state_dict: %sstate is for a %s scheduler, not %s", where,
        lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no kind)",
        kind);
  lua_pop(L, 1);
  lg_sched_field f[LG_SCHED_MAXFIELDS];
  int nf = lg_sched_fields(s, f);
  for (int i = 0; i < nf; i++) {
    int t = lua_getfield(L, -1, f[i].name);
    if (t == LUA_TNIL) {
      lua_pop(L, 1);
      continue; /* as PyTorch's dict update: absent keys stay */
    }
    if (f[i].array) {
      if (t != LUA_TTABLE || luaL_len(L, -1) != f[i].n)
        luaL_error(L, "load_state_dict: %s%s must be a list of %d numbers",
                   where, f[i].name, f[i].n);
      for (int j = 0; j < f[i].n; j++) {
        lua_geti(L, -1, j + 1);
        if (write)
          load_value(L, &f[i], j, where);
        else if (lua_type(L, -1) != LUA_TNUMBER)
          luaL_error(L, "load_state_dict: %s%s[%d] must be a number", where,
                     f[i].name, j + 1);
        lua_pop(L, 1);
      }
    } else if (write) {
      load_value(L, &f[i], 0, where);
    } else if (t != LUA_TNUMBER) {
      luaL_error(L, "load_state_dict: %s%s must be a number", where, f[i].name);
    }
    lua_pop(L, 1);
  }
  int nc = lg_sched_nchildren(s);
  if (nc) {
    if (lua_getfield(L, -1, "schedulers") != LUA_TTABLE ||
        luaL_len(L, -1) != nc)
      luaL_error(L, "load_state_dict: %sschedulers must list %d states", where,
                 nc);
    for (int i = 0; i < nc; i++) {
      char sub[64];
      snprintf(sub, sizeof sub, "%sschedulers[%d].", where, i + 1);
      lua_geti(L, -1, i + 1);
      check_state(L, lg_sched_child(s, i), sub, write);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}

/* s:load_state_dict(sd): checks everything first, then writes, so a bad
 * state leaves the scheduler as it was */
static int sched_load_state_dict(lua_State *L) {
  lg_sched *s = check_sched(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  check_state(L, s, "", false);
  check_state(L, s, "", true);
  return 0;
}

static int sched_index(lua_State *L) {
  lg_sched *s = check_sched(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "last_step") == 0) {
    lua_pushinteger(L, (lua_Integer)lg_sched_last_epoch(s));
    return 1;
  }
  if (k && strcmp(k, "optimizer") == 0) {
    lua_getiuservalue(L, 1, 1);
    return 1;
  }
  if (k && strcmp(k, "kind") == 0) {
    lua_pushstring(L, lg_sched_kind_name(lg_sched_kind_of(s)));
    return 1;
  }
  if (k && strcmp(k, "schedulers") == 0 && lg_sched_nchildren(s) > 0) {
    lua_getiuservalue(L, 1, 2);
    return 1;
  }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "methods");
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

static int sched_tostring(lua_State *L) {
  sched_box *b = luaL_checkudata(L, 1, LGL_SCHED);
  if (!b->s)
    lua_pushliteral(L, "lgrad.Scheduler (closed)");
  else
    lua_pushfstring(L, "lgrad.Scheduler(%s, last_step = %I)",
                    lg_sched_kind_name(lg_sched_kind_of(b->s)),
                    (lua_Integer)lg_sched_last_epoch(b->s));
  return 1;
}

static int sched_gc(lua_State *L) {
  sched_box *b = luaL_checkudata(L, 1, LGL_SCHED);
  if (b->s) {
    lg_sched_release(b->s);
    b->s = NULL;
  }
  return 0;
}

static const luaL_Reg sched_methods[] = {
    {"step", sched_step},
    {"step_to", sched_step_to},
    {"get_lr", sched_get_lr},
    {"get_last_lr", sched_get_lr},
    {"base_lrs", sched_base_lrs},
    {"state_dict", sched_state_dict},
    {"load_state_dict", sched_load_state_dict},
    {NULL, NULL}};

static const luaL_Reg sched_meta[] = {{"__index", sched_index},
                                      {"__tostring", sched_tostring},
                                      {"__gc", sched_gc},
                                      {NULL, NULL}};

void lgL_open_sched(lua_State *L) {
  if (luaL_newmetatable(L, LGL_SCHED)) {
    luaL_setfuncs(L, sched_meta, 0);
    luaL_newlib(L, sched_methods);
    lua_setfield(L, -2, "methods");
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, LG_SCHED_NKINDS);
  for (int k = 0; k < LG_SCHED_NKINDS; k++) {
    lua_pushinteger(L, k);
    lua_pushcclosure(L, sched_new, 1);
    lua_setfield(L, -2, lg_sched_kind_name((lg_sched_kind)k));
  }
  lua_setfield(L, -2, "sched");
}
