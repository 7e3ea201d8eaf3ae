/*
 * o_ops.c -- tensor op methods (and their lg.NAME twins): arithmetic with
 * broadcasting and metamethods, math, comparisons, reductions, views,
 * gather/scatter, sorting and matrix products.  Dims and indices arrive
 * 1-based from Lua and leave 1-based.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "l_anomaly.h"

#define CHECK(L, fname, expr)                                                 \
  do {                                                                        \
    if (expr)                                                                 \
      return lgL_fail(L, fname);                                              \
  } while (0)

static int push_self(lua_State *L) {
  lua_settop(L, 1);
  return 1;
}

/* ---- index conversion ---- */

lg_tensor *lgL_index_in(lua_State *L, int idx, const char *fname) {
  lg_tensor *t = lgL_totensor(L, idx);
  if (!t && lua_istable(L, idx)) {
    /* a Lua list of integers */
    lua_Integer n = luaL_len(L, idx);
    if (n < 0 || n > ((lua_Integer)1 << 30))
      luaL_error(L, "%s: bad index list", fname);
    int64_t len = n;
    lg_tensor **box = lgL_newbox(L);
    if (!(*box = lg_empty(LG_INT64, 1, &len)))
      lgL_fail(L, fname);
    int64_t *p = lg_data_ptr(*box);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, idx, i);
      int isint;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (!isint)
        luaL_error(L, "%s: indices must be integers", fname);
      /* unsigned: math.mininteger wraps to an index refused later */
      p[i - 1] = (int64_t)((uint64_t)v - 1);
      lua_pop(L, 1);
    }
    lua_replace(L, idx);
    return *box;
  }
  if (!t)
    luaL_typeerror(L, idx, "index tensor");
  if (t->dtype != LG_INT64)
    luaL_error(L, "%s: indices must be an int64 tensor, got %s", fname,
               lg_dtype_name(t->dtype));
  lg_tensor **box = lgL_newbox(L);
  bool was = lg_set_grad_enabled(false);
  *box = lg_binary_scalar(LG_OP_SUB, t, 1, false);
  lg_set_grad_enabled(was);
  if (!*box)
    lgL_fail(L, fname);
  lua_replace(L, idx);
  return *box;
}

void lgL_push_index_out(lua_State *L, lg_tensor *idx0, const char *fname) {
  lg_tensor **box = lgL_newbox(L);
  *box = idx0; /* collected with the box if what follows fails */
  /* a new tensor: idx0 may be saved by a graph node */
  lg_tensor *one_based = lg_binary_scalar(LG_OP_ADD, idx0, 1, false);
  if (!one_based)
    lgL_fail(L, fname);
  lg_release(idx0);
  *box = one_based;
}

int lgL_push_index_result(lua_State *L, const char *fname, lg_tensor *idx0) {
  if (!idx0)
    return lgL_fail(L, fname);
  lgL_push_index_out(L, idx0, fname);
  return 1;
}

/* ---- binary ---- */

static int binary_impl(lua_State *L, lg_binop op) {
  const char *fname = lg_binop_name(op);
  lg_tensor *a = lgL_totensor(L, 1);
  /* the common cases first, each argument checked once */
  if (a && lua_type(L, 2) == LUA_TNUMBER)
    return lgL_pushresult(L, fname,
                          lg_binary_scalar(op, a, lua_tonumber(L, 2), false));
  lg_tensor *b = lgL_totensor(L, 2);
  if (a && b)
    return lgL_pushresult(L, fname, lg_binary(op, a, b));
  if (!a && !b) {
    lgL_checktensor(L, lua_isuserdata(L, 1) ? 1 : 2);
    return luaL_error(L, "%s: needs a tensor", fname);
  }
  int si = a ? 2 : 1;
  lg_tensor *t = a ? a : b;
  double s;
  if (lua_type(L, si) == LUA_TNUMBER)
    s = lua_tonumber(L, si);
  else if (lua_isboolean(L, si))
    s = lua_toboolean(L, si);
  else
    return luaL_error(L, "%s: expects a tensor or a number, got %s", fname,
                      luaL_typename(L, si));
  /* an integer tensor with a non-integer scalar promotes like PyTorch */
  return lgL_pushresult(L, fname, lg_binary_scalar(op, t, s, si == 1));
}

static int binary_inplace(lua_State *L, lg_binop op, const char *fname) {
  lg_tensor *a = lgL_checktensor(L, 1);
  lg_tensor *b = lgL_totensor(L, 2);
  if (b)
    CHECK(L, fname, lg_binary_(op, a, b));
  else if (lua_type(L, 2) == LUA_TNUMBER)
    CHECK(L, fname, lg_binary_scalar_(op, a, lua_tonumber(L, 2)));
  else
    return luaL_error(L, "%s: expects a tensor or a number, got %s", fname,
                      luaL_typename(L, 2));
  LGL_ANOMALY(L, fname, 1);
  return push_self(L);
}

static int o_unm(lua_State *L) {
  return lgL_pushresult(L, "neg", lg_unary(LG_OP_NEG, lgL_checktensor(L, 1)));
}

/* ---- unary ---- */

static int unary_impl(lua_State *L, lg_unop op) {
  return lgL_pushresult(L, lg_unop_name(op),
                        lg_unary(op, lgL_checktensor(L, 1)));
}

static int unary_inplace(lua_State *L, lg_unop op) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (lg_unary_(op, t)) {
    char name[32]; /* errors name the method as called: "exp_" */
    snprintf(name, sizeof name, "%s_", lg_unop_name(op));
    return lgL_fail(L, name);
  }
  LGL_ANOMALY(L, lg_unop_name(op), 1);
  return push_self(L);
}

/* ---- the generic dispatcher: every ops.def entry bound the same way ---- */

/* one plain C function per entry and variant, so that a call costs no
 * more than a hand-written binding would */
#define LG_BINOP(ID, name, family, flags)                                     \
  static int o_bin_##ID(lua_State *L) { return binary_impl(L, LG_OP_##ID); } \
  static int o_bin_##ID##_(lua_State *L) { /* errors name "add_" */        \
    return binary_inplace(L, LG_OP_##ID, #name "_");                          \
  }
#define LG_UNOP(ID, name, family, flags, Module)                              \
  static int o_un_##ID(lua_State *L) { return unary_impl(L, LG_OP_##ID); }   \
  static int o_un_##ID##_(lua_State *L) {                                     \
    return unary_inplace(L, LG_OP_##ID);                                      \
  }
#include "../runtime/ops/ops.def"
/* [op][0] the function, [op][1] the in-place twin */
#define LG_BINOP(ID, name, family, flags) {o_bin_##ID, o_bin_##ID##_},
static const lua_CFunction binop_fn[][2] = {
#include "../runtime/ops/ops.def"
};
#define LG_UNOP(ID, name, family, flags, Module) {o_un_##ID, o_un_##ID##_},
static const lua_CFunction unop_fn[][2] = {
#include "../runtime/ops/ops.def"
};

/* sets t[name] = f in each of the tables at the given indices (0 ends) */
static void set_function(lua_State *L, lua_CFunction f, const char *name,
                         const int *tables) {
  lua_pushcfunction(L, f);
  for (; *tables; tables++) {
    lua_pushvalue(L, -1);
    lua_setfield(L, *tables, name);
  }
  lua_pop(L, 1);
}

/* registers every ops.def entry: the method, the lg. function (the same
 * function), the in-place twin and, for activations, lg.F's function; fills
 * lg.ops, the op table as Lua sees it ({name, arity, family, flags...}) */
static void register_pointwise(lua_State *L, int methods, int module) {
  lua_getfield(L, module, "F");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, module, "F");
  }
  int F = lua_gettop(L);
  lua_newtable(L);
  int list = lua_gettop(L);
  const int both[] = {methods, module, 0}, with_f[] = {methods, module, F, 0};
  char name[40];
  for (int arity = 1; arity <= 2; arity++) {
    int n = arity == 1 ? LG_NUNOPS : LG_NBINOPS;
    for (int op = 0; op < n; op++) {
      const lg_op_info *o =
          arity == 1 ? lg_unop_info((lg_unop)op) : lg_binop_info((lg_binop)op);
      if (o->flags & LG_OPF_MANUAL)
        continue;
      const lua_CFunction *fn = arity == 1 ? unop_fn[op] : binop_fn[op];
      set_function(L, fn[0], o->name, o->flags & LG_OPF_F ? with_f : both);
      snprintf(name, sizeof name, "%s_", o->name);
      if (o->flags & LG_OPF_INPLACE)
        set_function(L, fn[1], name, both);
      lua_createtable(L, 0, 8);
      lua_pushstring(L, o->name);
      lua_setfield(L, -2, "name");
      lua_pushinteger(L, arity);
      lua_setfield(L, -2, "arity");
      lua_pushstring(L, o->family);
      lua_setfield(L, -2, "family");
      static const struct { unsigned flag; const char *key; } keys[] = {
          {LG_OPF_DIFF, "differentiable"}, {LG_OPF_COMPARE, "comparison"},
          {LG_OPF_INPLACE, "inplace"},     {LG_OPF_INT, "integer"},
          {LG_OPF_F, "activation"}};
      for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        lua_pushboolean(L, (o->flags & keys[k].flag) != 0);
        lua_setfield(L, -2, keys[k].key);
      }
      if (o->module[0]) {
        lua_pushstring(L, o->module);
        lua_setfield(L, -2, "module");
      }
      lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
    }
  }
  lua_setfield(L, module, "ops");
  lua_pop(L, 1);
}

static int o_gelu(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_unop op = LG_OP_GELU;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "approximate");
    const char *a = lua_tostring(L, -1);
    if (a && !strcmp(a, "tanh"))
      op = LG_OP_GELU_TANH;
    else if (a && strcmp(a, "none"))
      return luaL_error(L, "gelu: approximate must be 'none' or 'tanh'");
    lua_pop(L, 1);
  } else if (lua_isstring(L, 2) && !strcmp(lua_tostring(L, 2), "tanh")) {
    op = LG_OP_GELU_TANH;
  }
  return lgL_pushresult(L, "gelu", lg_unary(op, t));
}

static int o_gelu_(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_unop op = LG_OP_GELU;
  const char *a = NULL;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "approximate");
    a = lua_tostring(L, -1);
    lua_pop(L, 1);
  } else if (lua_isstring(L, 2)) {
    a = lua_tostring(L, 2);
  }
  if (a && !strcmp(a, "tanh"))
    op = LG_OP_GELU_TANH;
  else if (a && strcmp(a, "none"))
    return luaL_error(L, "gelu_: approximate must be 'none' or 'tanh'");
  CHECK(L, "gelu_", lg_unary_(op, t));
  return push_self(L);
}

static int o_clamp(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  double lo, hi;
  if (lua_istable(L, 2)) {
    lo = lgL_optnumberfield(L, 2, "min", NAN);
    hi = lgL_optnumberfield(L, 2, "max", NAN);
  } else {
    lo = lua_isnoneornil(L, 2) ? NAN : luaL_checknumber(L, 2);
    hi = lua_isnoneornil(L, 3) ? NAN : luaL_checknumber(L, 3);
  }
  return lgL_pushresult(L, "clamp", lg_clamp(t, lo, hi));
}

static int o_clamp_(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  double lo = lua_isnoneornil(L, 2) ? NAN : luaL_checknumber(L, 2);
  double hi = lua_isnoneornil(L, 3) ? NAN : luaL_checknumber(L, 3);
  if (lg_inplace_records(t, 0, NULL)) {
    lg_tensor *c = lg_inplace_begin("clamp_", t);
    CHECK(L, "clamp_", !c || lg_inplace_end(t, c, lg_clamp(c, lo, hi)));
    return push_self(L);
  }
  lg_tensor **box = lgL_newbox(L);
  CHECK(L, "clamp_", !(*box = lg_clamp(t, lo, hi)));
  CHECK(L, "clamp_", lg_copy_(t, *box));
  return push_self(L);
}

static int o_leaky_relu(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  double s = luaL_optnumber(L, 2, 0.01);
  return lgL_pushresult(L, "leaky_relu", lg_leaky_relu(t, s));
}

/* t[{}] = src recorded in the graph (t or src requires grad) */
static int assign_whole(lua_State *L, const char *fname, lg_tensor *t,
                        lg_tensor *src) {
  if (t->requires_grad)
    CHECK(L, fname, lg_inplace_check(fname, t));
  CHECK(L, fname, lg_index_assign(t, 0, NULL, src));
  return push_self(L);
}

static int fill_impl(lua_State *L, const char *fname, double v) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (lg_inplace_records(t, 0, NULL)) {
    lg_tensor **box = lgL_newbox(L);
    CHECK(L, fname, !(*box = lg_scalar(t->dtype, v)));
    return assign_whole(L, fname, t, *box);
  }
  CHECK(L, fname, lg_fill_(t, v));
  return push_self(L);
}

static int o_fill_(lua_State *L) {
  lgL_checktensor(L, 1);
  double v = lua_isboolean(L, 2) ? lua_toboolean(L, 2) : luaL_checknumber(L, 2);
  return fill_impl(L, "fill_", v);
}

static int o_zero_(lua_State *L) { return fill_impl(L, "zero_", 0); }

static int o_copy_(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_tensor *s = lgL_checktensorlike(L, 2, t->dtype);
  if (lg_inplace_records(t, 1, &s))
    return assign_whole(L, "copy_", t, s);
  CHECK(L, "copy_", lg_copy_(t, s));
  return push_self(L);
}

/* uniform_(lo, hi) and normal_(mean, std): two numbers with defaults, then
 * an optional {generator} */
static int fill_random(lua_State *L, const char *fname, double a0, double b0,
                       int (*fill)(lg_tensor *, double, double,
                                   lg_generator *)) {
  lg_tensor *t = lgL_checktensor(L, 1);
  double a = luaL_optnumber(L, 2, a0), b = luaL_optnumber(L, 3, b0);
  int opts = lua_istable(L, lua_gettop(L)) ? lua_gettop(L) : 0;
  if (!lg_dtype_is_float(t->dtype))
    return luaL_error(L, "%s: needs a float tensor", fname);
  CHECK(L, fname, fill(t, a, b, lgL_optgenerator(L, opts)));
  return push_self(L);
}

static int o_uniform_(lua_State *L) {
  return fill_random(L, "uniform_", 0, 1, lg_uniform_);
}

static int o_normal_(lua_State *L) {
  return fill_random(L, "normal_", 0, 1, lg_normal_);
}

static int o_bernoulli_(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  double p = luaL_optnumber(L, 2, 0.5);
  int opts = lua_istable(L, lua_gettop(L)) ? lua_gettop(L) : 0;
  CHECK(L, "bernoulli_", lg_bernoulli_(t, p, lgL_optgenerator(L, opts)));
  return push_self(L);
}

/* ---- reductions ---- */

static int reduce_impl(lua_State *L, lg_redop op, const char *fname) {
  lg_tensor *t = lgL_checktensor(L, 1);
  bool keep;
  int dim = lgL_reduce_args(L, 2, t, fname, &keep, NULL, NULL);
  return lgL_pushresult(L, fname, lg_reduce(op, t, dim, keep));
}

static int o_sum(lua_State *L) { return reduce_impl(L, LG_RED_SUM, "sum"); }
static int o_mean(lua_State *L) { return reduce_impl(L, LG_RED_MEAN, "mean"); }
static int o_prod(lua_State *L) { return reduce_impl(L, LG_RED_PROD, "prod"); }
static int o_any(lua_State *L) { return reduce_impl(L, LG_RED_ANY, "any"); }
static int o_all(lua_State *L) { return reduce_impl(L, LG_RED_ALL, "all"); }

static int maxmin(lua_State *L, bool is_min) {
  const char *fname = is_min ? "min" : "max";
  lg_tensor *t = lgL_checktensor(L, 1);
  if (lgL_totensor(L, 2))
    return binary_impl(L, is_min ? LG_OP_MINIMUM : LG_OP_MAXIMUM);
  bool keep;
  int dim = lgL_reduce_args(L, 2, t, fname, &keep, NULL, NULL);
  if (dim == LG_ALL_DIMS)
    return lgL_pushresult(L, fname,
                          lg_reduce(is_min ? LG_RED_MIN : LG_RED_MAX, t,
                                    LG_ALL_DIMS, keep));
  lg_tensor **vbox = lgL_newbox(L);
  lg_tensor *idx;
  CHECK(L, fname, lg_max_dim(t, dim, keep, is_min, vbox, &idx));
  lgL_push_index_out(L, idx, fname);
  return 2;
}
static int o_max(lua_State *L) { return maxmin(L, false); }
static int o_min(lua_State *L) { return maxmin(L, true); }

static int argmaxmin(lua_State *L, bool is_min) {
  const char *fname = is_min ? "argmin" : "argmax";
  lg_tensor *t = lgL_checktensor(L, 1);
  bool keep;
  int dim = lgL_reduce_args(L, 2, t, fname, &keep, NULL, NULL);
  return lgL_push_index_result(L, fname, lg_argmax(t, dim, keep, is_min));
}
static int o_argmax(lua_State *L) { return argmaxmin(L, false); }
static int o_argmin(lua_State *L) { return argmaxmin(L, true); }

static int varstd(lua_State *L, bool sd) {
  const char *fname = sd ? "std" : "var";
  lg_tensor *t = lgL_checktensor(L, 1);
  static const char *const extra[] = {"unbiased", NULL};
  bool keep;
  int oi;
  int dim = lgL_reduce_args(L, 2, t, fname, &keep, &oi, extra);
  bool unbiased = true;
  if (oi) {
    unbiased = lgL_optbooleanfield(L, oi, "unbiased", 1);
    lgL_checknargs(L, oi, fname);
  } else {
    /* var(dim, keepdim, unbiased) */
    int ui = dim == LG_ALL_DIMS ? 3 : 4;
    if (lua_isboolean(L, ui))
      unbiased = lua_toboolean(L, ui);
    lgL_checknargs(L, lua_isboolean(L, ui) ? ui : ui - 1, fname);
  }
  lg_tensor **box = lgL_newbox(L);
  CHECK(L, fname, !(*box = lg_var(t, dim, keep, unbiased)));
  if (sd) {
    lg_tensor *s = lg_unary(LG_OP_SQRT, *box);
    CHECK(L, fname, !s);
    lg_release(*box);
    *box = s;
  }
  LGL_ANOMALY(L, fname, -1);
  return 1;
}
static int o_var(lua_State *L) { return varstd(L, false); }
static int o_std(lua_State *L) { return varstd(L, true); }

static int o_norm(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  double p = 2;
  if (lua_type(L, 2) == LUA_TNUMBER)
    p = lua_tonumber(L, 2);
  else if (lua_isstring(L, 2) && !strcmp(lua_tostring(L, 2), "inf"))
    p = INFINITY;
  else if (!lua_isnoneornil(L, 2))
    return luaL_argerror(L, 2, "p must be a number");
  bool keep;
  int dim = lgL_reduce_args(L, 3, t, "norm", &keep, NULL, NULL);
  return lgL_pushresult(L, "norm", lg_norm(t, p, dim, keep));
}

static int o_logsumexp(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  bool keep;
  int dim = lgL_reduce_args(L, 2, t, "logsumexp", &keep, NULL, NULL);
  return lgL_pushresult(L, "logsumexp", lg_logsumexp(t, dim, keep));
}

static int softmax_impl(lua_State *L, bool lg) {
  const char *fname = lg ? "log_softmax" : "softmax";
  lg_tensor *t = lgL_checktensor(L, 1);
  int dim = lua_isnoneornil(L, 2) ? (t->ndim ? t->ndim - 1 : 0)
                                  : lgL_checkdim(L, 2, t->ndim, fname);
  return lgL_pushresult(L, fname,
                        lg ? lg_log_softmax(t, dim) : lg_softmax(t, dim));
}
static int o_softmax(lua_State *L) { return softmax_impl(L, false); }
static int o_log_softmax(lua_State *L) { return softmax_impl(L, true); }

static int o_cumsum(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int dim = lua_isnoneornil(L, 2) ? 0 : lgL_checkdim(L, 2, t->ndim, "cumsum");
  return lgL_pushresult(L, "cumsum", lg_cumsum(t, dim));
}

/* ---- views and conversions ---- */

/* view/reshape(t, d1, d2, ...) or (t, {d1, d2, ...}): the shape into
 * shape, its length returned */
static int check_shape_args(lua_State *L, const char *fname,
                            int64_t shape[LG_MAX_DIMS]) {
  int n = 0;
  bool table = lua_istable(L, 2);
  int len = table ? (int)luaL_len(L, 2) : lua_gettop(L) - 1;
  if (len > LG_MAX_DIMS)
    return luaL_error(L, "%s: at most %d dimensions", fname, LG_MAX_DIMS);
  for (int i = 1; i <= len; i++) {
    if (table) {
      lua_geti(L, 2, i);
      shape[n++] = luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    } else {
      shape[n++] = luaL_checkinteger(L, i + 1);
    }
  }
  return n;
}

static int o_view(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int64_t shape[LG_MAX_DIMS];
  int n = check_shape_args(L, "view", shape);
  return lgL_pushresult(L, "view", lg_view(t, n, shape));
}

static int o_reshape(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int64_t shape[LG_MAX_DIMS];
  int n = check_shape_args(L, "reshape", shape);
  return lgL_pushresult(L, "reshape", lg_reshape(t, n, shape));
}

static int o_view_as(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1), *o = lgL_checktensor(L, 2);
  return lgL_pushresult(L, "view_as", lg_reshape(t, o->ndim, o->shape));
}

static int o_flatten(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int s = lua_isnoneornil(L, 2) ? 0 : lgL_checkdim(L, 2, t->ndim, "flatten");
  int e = lua_isnoneornil(L, 3) ? (t->ndim ? t->ndim - 1 : 0)
                                : lgL_checkdim(L, 3, t->ndim, "flatten");
  return lgL_pushresult(L, "flatten", lg_flatten(t, s, e));
}

static int o_squeeze(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lua_isnoneornil(L, 2) ? LG_ALL_DIMS
                                : lgL_checkdim(L, 2, t->ndim, "squeeze");
  return lgL_pushresult(L, "squeeze", lg_squeeze(t, d));
}

static int o_unsqueeze(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lua_Integer d = luaL_checkinteger(L, 2);
  int n = t->ndim + 1;
  if (d == 0 || d > n || d < -n)
    return luaL_error(L, "unsqueeze: dimension %d out of range for a %d-d "
                         "tensor",
                      (int)d, t->ndim);
  return lgL_pushresult(L, "unsqueeze",
                        lg_unsqueeze(t, d > 0 ? (int)d - 1 : (int)d + n));
}

static int o_transpose(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (t->ndim < 2 && lua_isnoneornil(L, 2))
    return lgL_pushresult(L, "transpose", lg_transpose(t, 0, 0));
  int a = lua_isnoneornil(L, 2) ? 0 : lgL_checkdim(L, 2, t->ndim, "transpose");
  int b = lua_isnoneornil(L, 3) ? 1 : lgL_checkdim(L, 3, t->ndim, "transpose");
  return lgL_pushresult(L, "transpose", lg_transpose(t, a, b));
}

static int o_t(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (t->ndim > 2)
    return luaL_error(L, "t: expects a tensor with at most 2 dimensions, got "
                         "%d (use transpose)",
                      t->ndim);
  if (t->ndim < 2)
    return lgL_pushresult(L, "t", lg_transpose(t, 0, 0));
  return lgL_pushresult(L, "t", lg_transpose(t, 0, 1));
}

static int o_permute(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int dims[LG_MAX_DIMS];
  int n = 0;
  if (lua_istable(L, 2)) {
    n = (int)luaL_len(L, 2);
    if (n != t->ndim)
      return luaL_error(L, "permute: %d dims given for a %d-d tensor", n,
                        t->ndim);
    for (int i = 0; i < n; i++) {
      lua_geti(L, 2, i + 1);
      dims[i] = lgL_checkdim(L, -1, t->ndim, "permute");
      lua_pop(L, 1);
    }
  } else {
    n = lua_gettop(L) - 1;
    if (n != t->ndim)
      return luaL_error(L, "permute: %d dims given for a %d-d tensor", n,
                        t->ndim);
    for (int i = 0; i < n; i++)
      dims[i] = lgL_checkdim(L, i + 2, t->ndim, "permute");
  }
  return lgL_pushresult(L, "permute", lg_permute(t, dims));
}

static int o_expand(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int64_t shape[LG_MAX_DIMS];
  int n = 0;
  if (lua_istable(L, 2)) {
    n = (int)luaL_len(L, 2);
    if (n > LG_MAX_DIMS)
      return luaL_error(L, "expand: at most %d dimensions", LG_MAX_DIMS);
    for (int i = 0; i < n; i++) {
      lua_geti(L, 2, i + 1);
      shape[i] = luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    }
  } else {
    n = lua_gettop(L) - 1;
    if (n > LG_MAX_DIMS)
      return luaL_error(L, "expand: at most %d dimensions", LG_MAX_DIMS);
    for (int i = 0; i < n; i++)
      shape[i] = luaL_checkinteger(L, i + 2);
  }
  return lgL_pushresult(L, "expand", lg_expand(t, n, shape));
}

static int o_expand_as(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1), *o = lgL_checktensor(L, 2);
  return lgL_pushresult(L, "expand_as", lg_expand(t, o->ndim, o->shape));
}

static int o_narrow(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lgL_checkdim(L, 2, t->ndim, "narrow");
  lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
  if (start < 0)
    start += t->shape[d] + 1;
  return lgL_pushresult(L, "narrow", lg_narrow(t, d, start - 1, len));
}

static int o_select(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lgL_checkdim(L, 2, t->ndim, "select");
  lua_Integer given = luaL_checkinteger(L, 3), i = given;
  if (t->ndim && i < 0)
    i += t->shape[d] + 1;
  if (i <= 0)
    return luaL_error(L, "select: index %I out of range for size %I of "
                         "dimension %d (indices are 1-based)",
                      given, (lua_Integer)(t->ndim ? t->shape[d] : 0), d + 1);
  return lgL_pushresult(L, "select", lg_select(t, d, i - 1));
}

static int o_contiguous(lua_State *L) {
  return lgL_pushresult(L, "contiguous", lg_contiguous(lgL_checktensor(L, 1)));
}

static int o_clone(lua_State *L) {
  return lgL_pushresult(L, "clone", lg_clone(lgL_checktensor(L, 1)));
}

static int o_detach(lua_State *L) {
  return lgL_pushresult(L, "detach", lg_detach(lgL_checktensor(L, 1)));
}

static int o_to(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_tensor *o = lgL_totensor(L, 2);
  lg_dtype d = o ? o->dtype : lgL_checkdtype(L, 2);
  return lgL_pushresult(L, "to", lg_to_dtype(t, d));
}
static int o_float(lua_State *L) {
  return lgL_pushresult(L, "float",
                        lg_to_dtype(lgL_checktensor(L, 1), LG_FLOAT32));
}
static int o_double(lua_State *L) {
  return lgL_pushresult(L, "double",
                        lg_to_dtype(lgL_checktensor(L, 1), LG_FLOAT64));
}
static int o_long(lua_State *L) {
  return lgL_pushresult(L, "long",
                        lg_to_dtype(lgL_checktensor(L, 1), LG_INT64));
}
static int o_bool(lua_State *L) {
  return lgL_pushresult(L, "bool", lg_to_dtype(lgL_checktensor(L, 1), LG_BOOL));
}

/* ---- gather / scatter / sort ---- */

static int o_index_select(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lgL_checkdim(L, 2, t->ndim, "index_select");
  lg_tensor *idx = lgL_index_in(L, 3, "index_select");
  return lgL_pushresult(L, "index_select", lg_index_select(t, d, idx));
}

static int o_gather(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lgL_checkdim(L, 2, t->ndim, "gather");
  lg_tensor *idx = lgL_index_in(L, 3, "gather");
  return lgL_pushresult(L, "gather", lg_gather(t, d, idx));
}

static int o_scatter_(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lgL_checkdim(L, 2, t->ndim, "scatter_");
  lg_tensor *idx = lgL_index_in(L, 3, "scatter_");
  lg_tensor *src;
  if (lua_type(L, 4) == LUA_TNUMBER) {
    lg_tensor **box = lgL_newbox(L);
    CHECK(L, "scatter_",
          !(*box = lg_full(t->dtype, idx->ndim, idx->shape,
                           lua_tonumber(L, 4))));
    src = *box;
  } else {
    src = lgL_checktensor(L, 4);
  }
  CHECK(L, "scatter_", lg_scatter_(t, d, idx, src));
  return push_self(L);
}

static int o_scatter_add(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lgL_checkdim(L, 2, t->ndim, "scatter_add");
  lg_tensor *idx = lgL_index_in(L, 3, "scatter_add");
  lg_tensor *src = lgL_checktensor(L, 4);
  return lgL_pushresult(L, "scatter_add", lg_scatter_add(t, d, idx, src));
}

static int o_index_add(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lgL_checkdim(L, 2, t->ndim, "index_add");
  lg_tensor *idx = lgL_index_in(L, 3, "index_add");
  lg_tensor *src = lgL_checktensor(L, 4);
  return lgL_pushresult(L, "index_add", lg_index_add(t, d, idx, src));
}

static int o_masked_fill(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1), *m = lgL_checktensor(L, 2);
  double v = lua_isboolean(L, 3) ? lua_toboolean(L, 3) : luaL_checknumber(L, 3);
  return lgL_pushresult(L, "masked_fill", lg_masked_fill(t, m, v));
}

/* lg.where(cond, a, b) and t:where(cond, other) */
static int o_where(lua_State *L) {
  lg_tensor *c = lgL_checktensor(L, 1);
  if (c->dtype != LG_BOOL && lgL_totensor(L, 2) &&
      lgL_totensor(L, 2)->dtype == LG_BOOL) {
    /* method form: x:where(cond, other) */
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_replace(L, 1);
    lua_replace(L, 2);
    c = lgL_checktensor(L, 1);
  }
  lg_tensor *a = lgL_totensor(L, 2), *b = lgL_totensor(L, 3);
  lg_dtype like = a ? a->dtype : b ? b->dtype : lg_default_dtype();
  a = lgL_checktensorlike(L, 2, like);
  b = lgL_checktensorlike(L, 3, like);
  return lgL_pushresult(L, "where", lg_where(c, a, b));
}

static int list_of_tensors(lua_State *L, int idx, lg_tensor ***out,
                           const char *fname) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = luaL_len(L, idx);
  if (n <= 0 || n > 100000)
    return luaL_error(L, "%s: expects a non-empty list of tensors", fname);
  lg_tensor **ts = lua_newuserdatauv(L, n * sizeof *ts, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    lg_tensor *t = lgL_totensor(L, -1);
    if (!t || !*(lg_tensor **)lua_touserdata(L, -1))
      return luaL_error(L, "%s: element %d of the list is not an open tensor",
                        fname, (int)i);
    ts[i - 1] = t;
    lua_pop(L, 1);
  }
  *out = ts;
  return (int)n;
}

static int cat_stack(lua_State *L, bool stack) {
  const char *fname = stack ? "stack" : "cat";
  lua_settop(L, 2); /* the list's scratch array goes above the dim */
  lg_tensor **ts = NULL;
  int n = list_of_tensors(L, 1, &ts, fname);
  int nd = ts[0]->ndim + (stack ? 1 : 0);
  int d = 0;
  if (!lua_isnil(L, 2))
    d = lgL_checkdim(L, 2, nd, fname);
  lg_tensor *r = stack ? lg_stack(n, ts, d) : lg_cat(n, ts, d);
  return lgL_pushresult(L, fname, r);
}
static int o_cat(lua_State *L) { return cat_stack(L, false); }
static int o_stack(lua_State *L) { return cat_stack(L, true); }

static int o_split(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (t->ndim == 0)
    return luaL_error(L, "split: cannot split a 0-d tensor");
  int d = lua_isnoneornil(L, 3) ? 0 : lgL_checkdim(L, 3, t->ndim, "split");
  int64_t size = t->shape[d];
  lua_newtable(L);
  int out = lua_gettop(L);
  if (lua_istable(L, 2)) { /* explicit sizes */
    lua_Integer n = luaL_len(L, 2);
    int64_t start = 0;
    for (lua_Integer i = 1; i <= n; i++) {
      lua_geti(L, 2, i);
      lua_Integer len = luaL_checkinteger(L, -1);
      lua_pop(L, 1);
      lgL_pushresult(L, "split", lg_narrow(t, d, start, len));
      lua_rawseti(L, out, i);
      start += len;
    }
    if (start != size)
      return luaL_error(L, "split: sizes add up to %I, not %I",
                        (lua_Integer)start, (lua_Integer)size);
    return 1;
  }
  lua_Integer step = luaL_checkinteger(L, 2);
  if (step <= 0)
    return luaL_error(L, "split: size must be positive, got %I", step);
  int k = 1;
  for (int64_t s = 0; s < size; s += step) {
    int64_t len = s + step <= size ? step : size - s;
    lgL_pushresult(L, "split", lg_narrow(t, d, s, len));
    lua_rawseti(L, out, k++);
  }
  return 1;
}

static int o_chunk(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n <= 0)
    return luaL_error(L, "chunk: number of chunks must be positive");
  if (t->ndim == 0)
    return luaL_error(L, "chunk: cannot split a 0-d tensor");
  int d = lua_isnoneornil(L, 3) ? 0 : lgL_checkdim(L, 3, t->ndim, "chunk");
  int64_t size = t->shape[d];
  /* ceil(size / n) without forming size + n - 1 (n may be near 2^63) */
  int64_t step = size / n + (size % n != 0);
  if (step == 0)
    step = 1;
  lua_settop(L, 1);
  lua_pushinteger(L, step);
  lua_pushinteger(L, d + 1);
  return o_split(L);
}

static int o_topk(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lua_Integer k = luaL_checkinteger(L, 2);
  int d = lua_isnoneornil(L, 3) || lua_istable(L, 3)
              ? (t->ndim ? t->ndim - 1 : 0)
              : lgL_checkdim(L, 3, t->ndim, "topk");
  int opts = lua_istable(L, lua_gettop(L)) ? lua_gettop(L) : 0;
  bool largest = lgL_optbooleanfield(L, opts, "largest", 1);
  lg_tensor **vbox = lgL_newbox(L);
  lg_tensor *idx;
  CHECK(L, "topk", lg_topk(t, k, d, largest, true, vbox, &idx));
  lgL_push_index_out(L, idx, "topk");
  return 2;
}

static int o_sort(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lua_isnoneornil(L, 2) || lua_isboolean(L, 2) || lua_istable(L, 2)
              ? (t->ndim ? t->ndim - 1 : 0)
              : lgL_checkdim(L, 2, t->ndim, "sort");
  bool desc = false;
  int top = lua_gettop(L);
  if (lua_isboolean(L, top))
    desc = lua_toboolean(L, top);
  else if (lua_istable(L, top))
    desc = lgL_optbooleanfield(L, top, "descending", 0);
  lg_tensor **vbox = lgL_newbox(L);
  lg_tensor *idx;
  CHECK(L, "sort", lg_sort(t, d, desc, vbox, &idx));
  lgL_push_index_out(L, idx, "sort");
  return 2;
}

/* ---- matrix products ---- */

static int o_matmul(lua_State *L) {
  return lgL_pushresult(L, "matmul", lg_matmul(lgL_checktensor(L, 1),
                                               lgL_checktensor(L, 2)));
}
static int o_mm(lua_State *L) {
  return lgL_pushresult(L, "mm", lg_mm(lgL_checktensor(L, 1),
                                       lgL_checktensor(L, 2)));
}
static int o_mv(lua_State *L) {
  lg_tensor *a = lgL_checktensor(L, 1), *v = lgL_checktensor(L, 2);
  if (a->ndim != 2 || v->ndim != 1) {
    char x[200], y[200];
    return luaL_error(L, "mv: needs a matrix and a vector, got %s and %s",
                      lg_shape_str(a, x, sizeof x),
                      lg_shape_str(v, y, sizeof y));
  }
  return lgL_pushresult(L, "mv", lg_matmul(a, v));
}
static int o_dot(lua_State *L) {
  return lgL_pushresult(L, "dot", lg_dot(lgL_checktensor(L, 1),
                                         lgL_checktensor(L, 2)));
}
static int o_outer(lua_State *L) {
  return lgL_pushresult(L, "outer", lg_outer(lgL_checktensor(L, 1),
                                             lgL_checktensor(L, 2)));
}

/* ---- autograd on tensors ---- */

static int o_backward(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_tensor *g = NULL;
  int opts = 0;
  if (lgL_totensor(L, 2))
    g = lgL_checktensor(L, 2);
  else if (lua_type(L, 2) == LUA_TNUMBER)
    g = lgL_checktensorlike(L, 2, t->dtype);
  if (lua_istable(L, 3))
    opts = 3;
  else if (lua_istable(L, 2) && !lgL_totensor(L, 2))
    opts = 2;
  bool retain = lgL_optbooleanfield(L, opts, "retain_graph", 0);
  bool create = lgL_optbooleanfield(L, opts, "create_graph", 0);
  lua_State *prev = lgL_active_state;
  lgL_active_state = L;
  int rc = lg_backward(t, g, retain || create, create);
  lgL_active_state = prev;
  CHECK(L, "backward", rc);
  lgL_account(L);
  return 0;
}

static int o_requires_grad_(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  bool on = lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2);
  if (on && !lg_dtype_is_float(t->dtype))
    return luaL_error(L, "requires_grad_: only float tensors can require "
                         "grad, this one is %s",
                      lg_dtype_name(t->dtype));
  if (!on && !lg_is_leaf(t))
    return luaL_error(L, "requires_grad_: cannot turn off grad on a non-leaf "
                         "tensor (use detach)");
  lg_set_requires_grad(t, on);
  return push_self(L);
}

static int o_retain_grad(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (!t->requires_grad)
    return luaL_error(L, "retain_grad: the tensor does not require grad");
  lg_retain_grad(t);
  return push_self(L);
}

static const luaL_Reg ops[] = {
    {"gelu", o_gelu},
    {"gelu_", o_gelu_},
    {"clamp", o_clamp},
    {"clamp_", o_clamp_},
    {"leaky_relu", o_leaky_relu},
    {"fill_", o_fill_},
    {"zero_", o_zero_},
    {"copy_", o_copy_},
    {"uniform_", o_uniform_},
    {"normal_", o_normal_},
    {"bernoulli_", o_bernoulli_},
    {"sum", o_sum},
    {"mean", o_mean},
    {"prod", o_prod},
    {"any", o_any},
    {"all", o_all},
    {"max", o_max},
    {"min", o_min},
    {"argmax", o_argmax},
    {"argmin", o_argmin},
    {"var", o_var},
    {"std", o_std},
    {"norm", o_norm},
    {"logsumexp", o_logsumexp},
    {"softmax", o_softmax},
    {"log_softmax", o_log_softmax},
    {"cumsum", o_cumsum},
    {"view", o_view},
    {"reshape", o_reshape},
    {"view_as", o_view_as},
    {"flatten", o_flatten},
    {"squeeze", o_squeeze},
    {"unsqueeze", o_unsqueeze},
    {"transpose", o_transpose},
    {"t", o_t},
    {"permute", o_permute},
    {"expand", o_expand},
    {"expand_as", o_expand_as},
    {"narrow", o_narrow},
    {"select", o_select},
    {"contiguous", o_contiguous},
    {"clone", o_clone},
    {"detach", o_detach},
    {"to", o_to},
    {"float", o_float},
    {"double", o_double},
    {"long", o_long},
    {"bool", o_bool},
    {"index_select", o_index_select},
    {"gather", o_gather},
    {"scatter_", o_scatter_},
    {"scatter_add", o_scatter_add},
    {"index_add", o_index_add},
    {"masked_fill", o_masked_fill},
    {"where", o_where},
    {"split", o_split},
    {"chunk", o_chunk},
    {"topk", o_topk},
    {"sort", o_sort},
    {"matmul", o_matmul},
    {"mm", o_mm},
    {"mv", o_mv},
    {"dot", o_dot},
    {"outer", o_outer},
    {"backward", o_backward},
    {"requires_grad_", o_requires_grad_},
    {"retain_grad", o_retain_grad},
    {NULL, NULL}};


void lgL_register_ops(lua_State *L, int methods, int module) {
  lua_pushvalue(L, methods);
  luaL_setfuncs(L, ops, 0);
  lua_pop(L, 1);
  lua_pushvalue(L, module);
  luaL_setfuncs(L, ops, 0);
  lua_pushcfunction(L, o_cat);
  lua_setfield(L, -2, "cat");
  lua_pushcfunction(L, o_stack);
  lua_setfield(L, -2, "stack");
  lua_pop(L, 1);
  register_pointwise(L, methods, module);
  /* the arithmetic metamethods are the same functions as the methods */
  static const char *const arith[][2] = {{"__add", "add"}, {"__sub", "sub"},
                                         {"__mul", "mul"}, {"__div", "div"},
                                         {"__pow", "pow"}};
  luaL_getmetatable(L, LGL_TENSOR);
  for (int i = 0; i < 5; i++) {
    lua_getfield(L, methods, arith[i][1]);
    lua_setfield(L, -2, arith[i][0]);
  }
  lua_pushcfunction(L, o_unm);
  lua_setfield(L, -2, "__unm");
  lua_pop(L, 1);
}
