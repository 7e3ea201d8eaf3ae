/*
 * l_functional.c -- lg.F: the functional ops and losses of runtime/nn.h,
 * and the activations of the core, with PyTorch's argument order and
 * keyword arguments in one trailing options table.
 *
 * Class labels, embedding indices, padding_idx, ignore_index and dims are
 * 1-based here; max_pool2d's return_indices gives 1-based flat indices.
 */
#include <stdint.h>
#include <string.h>

#include "../runtime/nn.h"
#include "binding.h"

/* ---- option helpers ---- */

/* raises when the options at idx are not a table or have a key not in
 * allowed (a misspelt option would otherwise be ignored silently) */
static void check_opts(lua_State *L, int idx, const char *fn,
                       const char *const *allowed) {
  if (!idx || lua_isnoneornil(L, idx))
    return;
  if (!lua_istable(L, idx) || lgL_totensor(L, idx))
    luaL_error(L, "%s: options must be a table (got %s)", fn,
               luaL_typename(L, idx));
  lgL_checkopts(L, idx, fn, allowed);
}

/* index of the options table when the argument at idx is one (not a
 * tensor), else 0 */
static int opts_at(lua_State *L, int idx) {
  return lua_istable(L, idx) && !lgL_totensor(L, idx) ? idx : 0;
}

static double opt_number(lua_State *L, int opts, const char *fn, const char *k,
                         double def) {
  if (!opts)
    return def;
  lua_getfield(L, opts, k);
  double v = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "%s: option '%s' must be a number (got %s)", fn, k,
                 luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static int64_t opt_integer(lua_State *L, int opts, const char *fn,
                           const char *k, int64_t def) {
  if (!opts)
    return def;
  lua_getfield(L, opts, k);
  int64_t v = def;
  if (!lua_isnil(L, -1)) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok && lua_type(L, -1) == LUA_TNUMBER)
      luaL_error(L, "%s: option '%s' must be an integer (got %s)", fn, k,
                 lua_tostring(L, -1));
    if (!ok)
      luaL_error(L, "%s: option '%s' must be an integer (got %s)", fn, k,
                 luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

static bool opt_bool(lua_State *L, int opts, const char *fn, const char *k,
                     bool def) {
  if (!opts)
    return def;
  lua_getfield(L, opts, k);
  bool v = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isboolean(L, -1))
      luaL_error(L, "%s: option '%s' must be a boolean (got %s)", fn, k,
                 luaL_typename(L, -1));
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/* an optional tensor option; it stays referenced by the options table */
static lg_tensor *opt_tensor(lua_State *L, int opts, const char *fn,
                             const char *k) {
  if (!opts)
    return NULL;
  lua_getfield(L, opts, k);
  lg_tensor *t = NULL;
  if (!lua_isnil(L, -1)) {
    t = lgL_totensor(L, -1);
    if (!t)
      luaL_error(L, "%s: option '%s' must be a tensor (got %s)", fn, k,
                 luaL_typename(L, -1));
    lgL_checktensor(L, -1); /* raises when closed */
  }
  lua_pop(L, 1);
  return t;
}

/* the value at idx as a pair of integers: a number gives (n, n), a table
 * {h, w} gives (h, w) */
static void to_pair(lua_State *L, int idx, const char *fn, const char *what,
                    int64_t out[2]) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    int ok;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (!ok)
      luaL_error(L, "%s: %s must be an integer or a pair {h, w}", fn, what);
    out[0] = out[1] = v;
    return;
  }
  if (lua_istable(L, idx) && !lgL_totensor(L, idx) && luaL_len(L, idx) == 2) {
    for (int k = 0; k < 2; k++) {
      lua_geti(L, idx, k + 1);
      int ok;
      lua_Integer v = lua_tointegerx(L, -1, &ok);
      lua_pop(L, 1);
      if (!ok)
        luaL_error(L, "%s: %s must be an integer or a pair {h, w}", fn, what);
      out[k] = v;
    }
    return;
  }
  luaL_error(L, "%s: %s must be an integer or a pair {h, w} (got %s)", fn, what,
             luaL_typename(L, idx));
}

static void opt_pair(lua_State *L, int opts, const char *fn, const char *k,
                     int64_t out[2]) {
  if (!opts)
    return;
  lua_getfield(L, opts, k);
  if (!lua_isnil(L, -1))
    to_pair(L, lua_gettop(L), fn, k, out);
  lua_pop(L, 1);
}

static lg_reduction opt_reduction(lua_State *L, int opts, const char *fn,
                                  const char *def, bool allow_batchmean) {
  const char *name = def;
  if (opts) {
    lua_getfield(L, opts, "reduction");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: option 'reduction' must be a string", fn);
      name = lua_tostring(L, -1);
    }
  }
  int r = lg_reduction_from_name(name, allow_batchmean);
  if (r < 0)
    luaL_error(L, "%s: unknown reduction '%s' (expected %s)", fn, name,
               allow_batchmean ? "\"none\", \"mean\", \"sum\" or "
                                 "\"batchmean\""
                               : "\"none\", \"mean\" or \"sum\"");
  if (opts)
    lua_pop(L, 1);
  return (lg_reduction)r;
}

/* the optional tensor at idx (nil or none: NULL) */
static lg_tensor *opt_tensor_arg(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx))
    return NULL;
  return lgL_checktensor(L, idx);
}

/* ---- linear and convolution ---- */

/* linear(x, w [, b]) */
static int f_linear(lua_State *L) {
  lg_tensor *x = lgL_checktensor(L, 1), *w = lgL_checktensor(L, 2);
  lg_tensor *b = opt_tensor_arg(L, 3);
  return lgL_pushresult(L, "linear", lg_linear(x, w, b));
}

/* conv2d(x, w [, b] [, {stride, padding, dilation, groups}]) */
static int f_conv2d(lua_State *L) {
  static const char *const keys[] = {"stride", "padding", "dilation", "groups",
                                     NULL};
  const char *fn = "conv2d";
  lg_tensor *x = lgL_checktensor(L, 1), *w = lgL_checktensor(L, 2);
  int opts = opts_at(L, 3) ? 3 : opts_at(L, 4);
  lg_tensor *b = opts == 3 ? NULL : opt_tensor_arg(L, 3);
  check_opts(L, opts, fn, keys);
  lg_conv2d_opts o = LG_CONV2D_DEFAULTS;
  opt_pair(L, opts, fn, "stride", o.stride);
  opt_pair(L, opts, fn, "padding", o.padding);
  opt_pair(L, opts, fn, "dilation", o.dilation);
  o.groups = opt_integer(L, opts, fn, "groups", 1);
  return lgL_pushresult(L, fn, lg_conv2d(x, w, b, &o));
}

/* ---- pooling ---- */

/* (x, kernel [, stride] [, opts]): a number or pair in the third place is
 * the stride */
static int pool_args(lua_State *L, const char *fn, lg_pool2d_opts *o) {
  to_pair(L, 2, fn, "kernel_size", o->kernel);
  int opts = 0;
  if (lua_type(L, 3) == LUA_TNUMBER || (opts_at(L, 3) && luaL_len(L, 3) > 0)) {
    to_pair(L, 3, fn, "stride", o->stride);
    opts = opts_at(L, 4);
  } else {
    opts = opts_at(L, 3);
  }
  opt_pair(L, opts, fn, "stride", o->stride);
  opt_pair(L, opts, fn, "padding", o->padding);
  o->ceil_mode = opt_bool(L, opts, fn, "ceil_mode", false);
  return opts;
}

/* max_pool2d(x, k [, stride] [, {stride, padding, dilation, ceil_mode,
 * return_indices}]) */
static int f_max_pool2d(lua_State *L) {
  static const char *const keys[] = {"stride",    "padding",        "dilation",
                                     "ceil_mode", "return_indices", NULL};
  const char *fn = "max_pool2d";
  lg_tensor *x = lgL_checktensor(L, 1);
  lg_pool2d_opts o = LG_POOL2D_DEFAULTS;
  int opts = pool_args(L, fn, &o);
  check_opts(L, opts, fn, keys);
  opt_pair(L, opts, fn, "dilation", o.dilation);
  bool ret_idx = opt_bool(L, opts, fn, "return_indices", false);
  if (!ret_idx)
    return lgL_pushresult(L, fn, lg_max_pool2d(x, &o, NULL));
  lg_tensor **ybox = lgL_newbox(L);
  lg_tensor **ibox = lgL_newbox(L);
  lg_tensor *idx = NULL;
  if (!(*ybox = lg_max_pool2d(x, &o, &idx)))
    return lgL_fail(L, fn);
  /* a 1-based copy: the node keeps the 0-based indices for backward */
  *ibox = lg_binary_scalar(LG_OP_ADD, idx, 1.0, false);
  lg_release(idx);
  if (!*ibox)
    return lgL_fail(L, fn);
  lgL_account(L);
  return 2;
}

/* avg_pool2d(x, k [, stride] [, {stride, padding, ceil_mode,
 * count_include_pad, divisor_override}]) */
static int f_avg_pool2d(lua_State *L) {
  static const char *const keys[] = {"stride",           "padding",
                                     "ceil_mode",        "count_include_pad",
                                     "divisor_override", NULL};
  const char *fn = "avg_pool2d";
  lg_tensor *x = lgL_checktensor(L, 1);
  lg_pool2d_opts o = LG_POOL2D_DEFAULTS;
  int opts = pool_args(L, fn, &o);
  check_opts(L, opts, fn, keys);
  o.count_include_pad = opt_bool(L, opts, fn, "count_include_pad", true);
  o.divisor_override = opt_integer(L, opts, fn, "divisor_override", 0);
  if (opts) {
    lua_getfield(L, opts, "divisor_override");
    bool given = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (given && o.divisor_override <= 0)
      luaL_error(L, "%s: divisor_override must be positive", fn);
  }
  return lgL_pushresult(L, fn, lg_avg_pool2d(x, &o));
}

/* ---- embedding, dropout, one_hot ---- */

/* embedding(idx, weight [, {padding_idx, sparse}]) */
static int f_embedding(lua_State *L) {
  static const char *const keys[] = {"padding_idx", "sparse", NULL};
  const char *fn = "embedding";
  lg_tensor *idx = lgL_checktensor(L, 1), *w = lgL_checktensor(L, 2);
  int opts = opts_at(L, 3);
  check_opts(L, opts, fn, keys);
  int64_t pad = INT64_MIN;
  if (opts) {
    lua_getfield(L, opts, "padding_idx");
    bool given = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (given) {
      pad = opt_integer(L, opts, fn, "padding_idx", 0);
      int64_t V = w->ndim == 2 ? w->shape[0] : 0;
      if (pad == 0 || pad > V || pad < -V)
        luaL_error(L, "%s: padding_idx %d out of range for %d embeddings", fn,
                   (int)pad, (int)V);
      if (pad < 0)
        pad += V + 1;
    }
  }
  if (opts && lgL_optbooleanfield(L, opts, "sparse", 0)) /* row-sparse grad */
    return lgL_pushresult(L, fn, lg_embedding_rows(idx, w, pad, true, 1));
  return lgL_pushresult(L, fn, lg_embedding(idx, w, pad, 1));
}

/* dropout(x [, p = 0.5 [, training = true]] [, {generator}]) */
static int f_dropout(lua_State *L) {
  static const char *const keys[] = {"p", "training", "generator", NULL};
  const char *fn = "dropout";
  lg_tensor *x = lgL_checktensor(L, 1);
  int opts = 0;
  for (int i = 2; i <= 4 && !opts; i++)
    opts = opts_at(L, i);
  check_opts(L, opts, fn, keys);
  double p = opt_number(L, opts, fn, "p", 0.5);
  bool training = opt_bool(L, opts, fn, "training", true);
  if (lua_type(L, 2) == LUA_TNUMBER)
    p = lua_tonumber(L, 2);
  else if (!lua_isnoneornil(L, 2) && opts != 2)
    luaL_argerror(L, 2, "number expected");
  if (lua_isboolean(L, 3))
    training = lua_toboolean(L, 3);
  lg_generator *g = lgL_optgenerator(L, opts);
  return lgL_pushresult(L, fn, lg_dropout(x, p, training, g));
}

/* one_hot(labels [, num_classes]) */
static int f_one_hot(lua_State *L) {
  lg_tensor *labels = lgL_checktensor(L, 1);
  lua_Integer C = luaL_optinteger(L, 2, -1);
  if (C == 0 || C < -1)
    luaL_error(L, "one_hot: num_classes must be positive (got %d)", (int)C);
  return lgL_pushresult(L, "one_hot", lg_one_hot(labels, C, 1));
}

/* ---- normalization ---- */

/* layer_norm(x, normalized_shape [, weight [, bias]] [, {eps}]) */
static int f_layer_norm(lua_State *L) {
  static const char *const keys[] = {"eps", NULL};
  const char *fn = "layer_norm";
  lg_tensor *x = lgL_checktensor(L, 1);
  int64_t shape[LG_MAX_DIMS];
  int nnorm;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    shape[0] = luaL_checkinteger(L, 2);
    nnorm = 1;
  } else if (lua_istable(L, 2) && !lgL_totensor(L, 2)) {
    nnorm = lgL_checkshape(L, 2, shape, fn);
    if (nnorm == 0)
      luaL_error(L, "%s: normalized_shape must not be empty", fn);
  } else {
    return luaL_error(L,
                      "%s: normalized_shape must be an integer or a "
                      "table of sizes (got %s)",
                      fn, luaL_typename(L, 2));
  }
  int opts = 0;
  for (int i = 3; i <= 5 && !opts; i++)
    opts = opts_at(L, i);
  check_opts(L, opts, fn, keys);
  lg_tensor *w = opts == 3 ? NULL : opt_tensor_arg(L, 3);
  lg_tensor *b = opts == 3 || opts == 4 ? NULL : opt_tensor_arg(L, 4);
  double eps = opt_number(L, opts, fn, "eps", 1e-5);
  return lgL_pushresult(L, fn, lg_layer_norm(x, nnorm, shape, w, b, eps));
}

/* batch_norm(x, running_mean, running_var [, weight [, bias]]
 * [, {training = false, momentum = 0.1, eps = 1e-5}]) */
static int f_batch_norm(lua_State *L) {
  static const char *const keys[] = {"training", "momentum", "eps", NULL};
  const char *fn = "batch_norm";
  lg_tensor *x = lgL_checktensor(L, 1);
  lg_tensor *rm = opt_tensor_arg(L, 2), *rv = opt_tensor_arg(L, 3);
  int opts = 0;
  for (int i = 4; i <= 6 && !opts; i++)
    opts = opts_at(L, i);
  check_opts(L, opts, fn, keys);
  lg_tensor *w = opts == 4 ? NULL : opt_tensor_arg(L, 4);
  lg_tensor *b = opts == 4 || opts == 5 ? NULL : opt_tensor_arg(L, 5);
  bool training = opt_bool(L, opts, fn, "training", false);
  double momentum = opt_number(L, opts, fn, "momentum", 0.1);
  double eps = opt_number(L, opts, fn, "eps", 1e-5);
  return lgL_pushresult(
      L, fn, lg_batch_norm(x, rm, rv, w, b, training, momentum, eps));
}

/* ---- activations (the core's differentiable ops) ---- */

/* gelu(x [, {approximate = "none" | "tanh"}]) or gelu(x, "tanh") */
static int f_gelu(lua_State *L) {
  static const char *const keys[] = {"approximate", NULL};
  lg_tensor *x = lgL_checktensor(L, 1);
  const char *approx = "none";
  if (lua_type(L, 2) == LUA_TSTRING) {
    approx = lua_tostring(L, 2);
  } else if (!lua_isnoneornil(L, 2) && !opts_at(L, 2)) {
    return luaL_argerror(L, 2,
                         "\"none\", \"tanh\" or an options table "
                         "expected");
  } else if (opts_at(L, 2)) {
    check_opts(L, 2, "gelu", keys);
    lua_getfield(L, 2, "approximate");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "gelu: option 'approximate' must be a string");
      approx = lua_tostring(L, -1);
    }
  }
  lg_unop op;
  if (!strcmp(approx, "none"))
    op = LG_OP_GELU;
  else if (!strcmp(approx, "tanh"))
    op = LG_OP_GELU_TANH;
  else
    return luaL_error(L,
                      "gelu: approximate must be \"none\" or \"tanh\" "
                      "(got \"%s\")",
                      approx);
  return lgL_pushresult(L, "gelu", lg_unary(op, x));
}

/* leaky_relu(x [, negative_slope = 0.01]) */
static int f_leaky_relu(lua_State *L) {
  lg_tensor *x = lgL_checktensor(L, 1);
  double slope = 0.01;
  if (opts_at(L, 2)) {
    static const char *const keys[] = {"negative_slope", NULL};
    check_opts(L, 2, "leaky_relu", keys);
    slope = opt_number(L, 2, "leaky_relu", "negative_slope", 0.01);
  } else {
    slope = luaL_optnumber(L, 2, 0.01);
  }
  return lgL_pushresult(L, "leaky_relu", lg_leaky_relu(x, slope));
}

/* softmax(x [, dim = -1]) and log_softmax */
static int f_softmax(lua_State *L) {
  lg_tensor *x = lgL_checktensor(L, 1);
  int dim = lgL_optdim(L, 2, x->ndim, x->ndim ? x->ndim - 1 : 0, "softmax");
  return lgL_pushresult(L, "softmax", lg_softmax(x, dim));
}

static int f_log_softmax(lua_State *L) {
  lg_tensor *x = lgL_checktensor(L, 1);
  int dim = lgL_optdim(L, 2, x->ndim, x->ndim ? x->ndim - 1 : 0, "log_softmax");
  return lgL_pushresult(L, "log_softmax", lg_log_softmax(x, dim));
}

/* ---- losses ---- */

static const char *const reduction_only[] = {"reduction", NULL};

#define SIMPLE_LOSS(NAME)                                                      \
  static int f_##NAME(lua_State *L) {                                          \
    lg_tensor *a = lgL_checktensor(L, 1), *b = lgL_checktensor(L, 2);          \
    int opts = opts_at(L, 3);                                                  \
    check_opts(L, opts, #NAME, reduction_only);                                \
    lg_reduction r = opt_reduction(L, opts, #NAME, "mean", false);             \
    return lgL_pushresult(L, #NAME, lg_##NAME(a, b, r));                       \
  }
SIMPLE_LOSS(mse_loss)
SIMPLE_LOSS(l1_loss)

/* (input, target [, param] [, {param = , reduction}]) */
static int param_loss(lua_State *L, const char *fn, const char *pname,
                      bool huber) {
  const char *const keys[] = {"reduction", pname, NULL};
  lg_tensor *a = lgL_checktensor(L, 1), *b = lgL_checktensor(L, 2);
  int opts = opts_at(L, 3) ? 3 : opts_at(L, 4);
  check_opts(L, opts, fn, keys);
  double prm = opt_number(L, opts, fn, pname, 1.0);
  if (lua_type(L, 3) == LUA_TNUMBER)
    prm = lua_tonumber(L, 3);
  else if (!lua_isnoneornil(L, 3) && opts != 3)
    luaL_argerror(L, 3, "number or options table expected");
  lg_reduction r = opt_reduction(L, opts, fn, "mean", false);
  return lgL_pushresult(L, fn,
                        huber ? lg_huber_loss(a, b, prm, r)
                              : lg_smooth_l1_loss(a, b, prm, r));
}

static int f_smooth_l1_loss(lua_State *L) {
  return param_loss(L, "smooth_l1_loss", "beta", false);
}

static int f_huber_loss(lua_State *L) {
  return param_loss(L, "huber_loss", "delta", true);
}

/* cross_entropy(logits, labels_or_probs [, {weight, label_smoothing,
 * ignore_index, reduction}]) */
static int f_cross_entropy(lua_State *L) {
  static const char *const keys[] = {"weight", "label_smoothing",
                                     "ignore_index", "reduction", NULL};
  const char *fn = "cross_entropy";
  lg_tensor *x = lgL_checktensor(L, 1), *t = lgL_checktensor(L, 2);
  int opts = opts_at(L, 3);
  check_opts(L, opts, fn, keys);
  lg_tensor *w = opt_tensor(L, opts, fn, "weight");
  double ls = opt_number(L, opts, fn, "label_smoothing", 0.0);
  int64_t ignore = opt_integer(L, opts, fn, "ignore_index", -100);
  lg_reduction r = opt_reduction(L, opts, fn, "mean", false);
  return lgL_pushresult(L, fn, lg_cross_entropy(x, t, w, ls, ignore, 1, r));
}

/* nll_loss(logp, labels [, {weight, ignore_index, reduction}]) */
static int f_nll_loss(lua_State *L) {
  static const char *const keys[] = {"weight", "ignore_index", "reduction",
                                     NULL};
  const char *fn = "nll_loss";
  lg_tensor *x = lgL_checktensor(L, 1), *t = lgL_checktensor(L, 2);
  int opts = opts_at(L, 3);
  check_opts(L, opts, fn, keys);
  lg_tensor *w = opt_tensor(L, opts, fn, "weight");
  int64_t ignore = opt_integer(L, opts, fn, "ignore_index", -100);
  lg_reduction r = opt_reduction(L, opts, fn, "mean", false);
  return lgL_pushresult(L, fn, lg_nll_loss(x, t, w, ignore, 1, r));
}

/* binary_cross_entropy(p, y [, {weight, reduction}]) */
static int f_binary_cross_entropy(lua_State *L) {
  static const char *const keys[] = {"weight", "reduction", NULL};
  const char *fn = "binary_cross_entropy";
  lg_tensor *p = lgL_checktensor(L, 1), *t = lgL_checktensor(L, 2);
  int opts = opts_at(L, 3);
  check_opts(L, opts, fn, keys);
  lg_tensor *w = opt_tensor(L, opts, fn, "weight");
  lg_reduction r = opt_reduction(L, opts, fn, "mean", false);
  return lgL_pushresult(L, fn, lg_binary_cross_entropy(p, t, w, r));
}

/* bce_with_logits(x, y [, {weight, pos_weight, reduction}]) */
static int f_bce_with_logits(lua_State *L) {
  static const char *const keys[] = {"weight", "pos_weight", "reduction", NULL};
  const char *fn = "bce_with_logits";
  lg_tensor *x = lgL_checktensor(L, 1), *t = lgL_checktensor(L, 2);
  int opts = opts_at(L, 3);
  check_opts(L, opts, fn, keys);
  lg_tensor *w = opt_tensor(L, opts, fn, "weight");
  lg_tensor *pw = opt_tensor(L, opts, fn, "pos_weight");
  lg_reduction r = opt_reduction(L, opts, fn, "mean", false);
  return lgL_pushresult(L, fn, lg_bce_with_logits(x, t, w, pw, r));
}

/* kl_div(log_q, p [, {reduction = "mean", log_target = false}]) */
static int f_kl_div(lua_State *L) {
  static const char *const keys[] = {"reduction", "log_target", NULL};
  const char *fn = "kl_div";
  lg_tensor *x = lgL_checktensor(L, 1), *t = lgL_checktensor(L, 2);
  int opts = opts_at(L, 3);
  check_opts(L, opts, fn, keys);
  bool log_target = opt_bool(L, opts, fn, "log_target", false);
  lg_reduction r = opt_reduction(L, opts, fn, "mean", true);
  return lgL_pushresult(L, fn, lg_kl_div(x, t, log_target, r));
}

static const luaL_Reg functional[] = {
    {"linear", f_linear},
    {"conv2d", f_conv2d},
    {"max_pool2d", f_max_pool2d},
    {"avg_pool2d", f_avg_pool2d},
    {"embedding", f_embedding},
    {"dropout", f_dropout},
    {"one_hot", f_one_hot},
    {"layer_norm", f_layer_norm},
    {"batch_norm", f_batch_norm},
    {"gelu", f_gelu},
    {"leaky_relu", f_leaky_relu},
    {"softmax", f_softmax},
    {"log_softmax", f_log_softmax},
    {"mse_loss", f_mse_loss},
    {"l1_loss", f_l1_loss},
    {"smooth_l1_loss", f_smooth_l1_loss},
    {"huber_loss", f_huber_loss},
    {"cross_entropy", f_cross_entropy},
    {"nll_loss", f_nll_loss},
    {"binary_cross_entropy", f_binary_cross_entropy},
    {"bce_with_logits", f_bce_with_logits},
    {"binary_cross_entropy_with_logits", f_bce_with_logits},
    {"kl_div", f_kl_div},
    {NULL, NULL}};

/* lg.F already holds the activations of ops/ops.def (l_ops.c) */
void lgL_open_functional(lua_State *L) {
  lua_getfield(L, -1, "F");
  luaL_setfuncs(L, functional, 0);
  lgL_functional_lazy(L);
  lgL_open_attention(L);
  lua_pop(L, 1);
}
