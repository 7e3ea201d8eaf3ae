/*
 * l_shape.c -- the shape, selection and sampling ops of the tensor API as
 * Tensor methods and lg.NAME functions: tril triu masked_fill_ repeat
 * tile flip roll cumprod amax amin argsort nonzero masked_select unique
 * diag diagonal unfold isclose allclose multinomial bernoulli, and
 * nan_to_num's options (the op itself is a line of runtime/ops/ops.def).
 * Dims and indices are 1-based here.
 */
#include <math.h>
#include <string.h>

#include "binding.h"

#define CHECK(L, fname, expr)                                                 \
  do {                                                                        \
    if (expr)                                                                 \
      return lgL_fail(L, fname);                                              \
  } while (0)

/* integers from idx..top, or one table at idx; returns the count */
static int int_list(lua_State *L, int idx, int64_t *out, const char *fname,
                    const char *what) {
  int n = 0;
  if (lua_istable(L, idx) && !lgL_testtensor(L, idx)) {
    lua_Integer len = luaL_len(L, idx);
    if (len > LG_MAX_DIMS)
      luaL_error(L, "%s: at most %d %s", fname, LG_MAX_DIMS, what);
    for (int i = 1; i <= len; i++) {
      lua_geti(L, idx, i);
      int ok;
      out[n++] = lua_tointegerx(L, -1, &ok);
      if (!ok)
        luaL_error(L, "%s: %s must be integers", fname, what);
      lua_pop(L, 1);
    }
    lgL_checknargs(L, idx, fname);
    return n;
  }
  int top = lua_gettop(L);
  for (int i = idx; i <= top; i++) {
    int ok;
    if (n >= LG_MAX_DIMS)
      luaL_error(L, "%s: at most %d %s", fname, LG_MAX_DIMS, what);
    out[n++] = lua_tointegerx(L, i, &ok);
    if (!ok)
      luaL_error(L, "%s: %s must be integers, got %s", fname, what,
                 luaL_typename(L, i));
  }
  return n;
}

/* 1-based (or negative) dims at idx into 0-based-or-negative C dims */
static int dim_list(lua_State *L, int idx, int *dims, int ndim,
                    const char *fname) {
  int64_t d[LG_MAX_DIMS];
  int n = int_list(L, idx, d, fname, "dims");
  for (int i = 0; i < n; i++) {
    int m = ndim ? ndim : 1;
    if (d[i] == 0 || d[i] > m || d[i] < -m)
      luaL_error(L, "%s: dimension %d out of range for a %d-d tensor "
                    "(dimensions are 1..%d or negative)",
                 fname, (int)d[i], ndim, m);
    dims[i] = d[i] > 0 ? (int)d[i] - 1 : (int)(d[i] + m);
  }
  return n;
}

static lua_Integer opt_int(lua_State *L, int idx, lua_Integer def,
                           const char *fname, const char *what) {
  if (lua_isnoneornil(L, idx))
    return def;
  int ok;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (!ok)
    luaL_error(L, "%s: %s must be an integer, got %s", fname, what,
               luaL_typename(L, idx));
  return v;
}

static int tri(lua_State *L, bool upper) {
  const char *fname = upper ? "triu" : "tril";
  lg_tensor *t = lgL_checktensor(L, 1);
  lua_Integer k = opt_int(L, 2, 0, fname, "diagonal");
  lgL_checknargs(L, 2, fname);
  return lgL_pushresult(L, fname, lg_tri(t, k, upper));
}
static int s_tril(lua_State *L) { return tri(L, false); }
static int s_triu(lua_State *L) { return tri(L, true); }

static int s_masked_fill_(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_tensor *mask = lgL_checktensor(L, 2);
  double v;
  lg_tensor *vt = lgL_totensor(L, 3);
  if (vt) {
    if (lg_numel(vt) != 1)
      return luaL_error(L, "masked_fill_: the value must be a number or a "
                           "one-element tensor");
    v = lg_item(vt);
  } else if (lua_isboolean(L, 3)) {
    v = lua_toboolean(L, 3);
  } else {
    v = luaL_checknumber(L, 3);
  }
  lgL_checknargs(L, 3, "masked_fill_");
  CHECK(L, "masked_fill_", lg_masked_fill_(t, mask, v));
  lua_settop(L, 1);
  return 1;
}

static int repeat_impl(lua_State *L, bool tile) {
  const char *fname = tile ? "tile" : "repeat";
  lg_tensor *t = lgL_checktensor(L, 1);
  int64_t reps[LG_MAX_DIMS];
  int n = int_list(L, 2, reps, fname, "repeat counts");
  return lgL_pushresult(L, fname, tile ? lg_tile(t, n, reps)
                                       : lg_repeat(t, n, reps));
}
static int s_repeat(lua_State *L) { return repeat_impl(L, false); }
static int s_tile(lua_State *L) { return repeat_impl(L, true); }

static int s_flip(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int dims[LG_MAX_DIMS];
  if (lua_isnoneornil(L, 2))
    return luaL_error(L, "flip: give the dims to flip (a number or a "
                         "table)");
  int n = dim_list(L, 2, dims, t->ndim, "flip");
  return lgL_pushresult(L, "flip", lg_flip(t, n, dims));
}

/* one integer or a table of them at idx (nothing else is read) */
static int one_or_list(lua_State *L, int idx, int64_t *out, const char *fname,
                       const char *what) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    out[0] = opt_int(L, idx, 0, fname, what);
    return 1;
  }
  if (!lua_istable(L, idx) || lgL_testtensor(L, idx))
    luaL_error(L, "%s: %s must be an integer or a table of integers", fname,
               what);
  lua_pushvalue(L, idx); /* alone at the top for int_list */
  int top = lua_gettop(L);
  int n = int_list(L, top, out, fname, what);
  lua_pop(L, 1);
  return n;
}

static int s_roll(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int64_t shifts[LG_MAX_DIMS], d[LG_MAX_DIMS];
  int dims[LG_MAX_DIMS];
  lgL_checknargs(L, 3, "roll");
  int ns = one_or_list(L, 2, shifts, "roll", "shifts");
  if (lua_isnoneornil(L, 3))
    return lgL_pushresult(L, "roll", lg_roll(t, ns, shifts, NULL));
  int nd = one_or_list(L, 3, d, "roll", "dims");
  if (nd != ns)
    return luaL_error(L, "roll: %d shifts for %d dims", ns, nd);
  for (int i = 0; i < nd; i++) {
    int m = t->ndim ? t->ndim : 1;
    if (d[i] == 0 || d[i] > m || d[i] < -m)
      return luaL_error(L, "roll: dimension %d out of range for a %d-d "
                           "tensor",
                        (int)d[i], t->ndim);
    dims[i] = d[i] > 0 ? (int)d[i] - 1 : (int)(d[i] + m);
  }
  return lgL_pushresult(L, "roll", lg_roll(t, ns, shifts, dims));
}

static int s_cumprod(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int dim = lua_isnoneornil(L, 2) ? 0 : lgL_checkdim(L, 2, t->ndim, "cumprod");
  lgL_checknargs(L, 2, "cumprod");
  return lgL_pushresult(L, "cumprod", lg_cumprod(t, dim));
}

static int amax_impl(lua_State *L, bool is_min) {
  const char *fname = is_min ? "amin" : "amax";
  lg_tensor *t = lgL_checktensor(L, 1);
  bool keep;
  int dim = lgL_reduce_args(L, 2, t, fname, &keep, NULL, NULL);
  return lgL_pushresult(L, fname, lg_amax(t, dim, keep, is_min));
}
static int s_amax(lua_State *L) { return amax_impl(L, false); }
static int s_amin(lua_State *L) { return amax_impl(L, true); }

static int s_argsort(lua_State *L) {
  static const char *const keys[] = {"dim", "descending", NULL};
  lg_tensor *t = lgL_checktensor(L, 1);
  int opts = 0, dim = t->ndim ? t->ndim - 1 : 0;
  bool desc = false;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    dim = lgL_checkdim(L, 2, t->ndim, "argsort");
    opts = lua_istable(L, 3) ? 3 : 0;
    if (lua_isboolean(L, 3))
      desc = lua_toboolean(L, 3);
    lgL_checknargs(L, 3, "argsort");
  } else if (lua_istable(L, 2)) {
    opts = 2;
    lgL_checknargs(L, 2, "argsort");
  } else {
    lgL_checknargs(L, 1, "argsort");
  }
  if (opts) {
    lgL_checkopts(L, opts, "argsort", keys);
    lua_getfield(L, opts, "dim");
    if (!lua_isnil(L, -1))
      dim = lgL_checkdim(L, lua_gettop(L), t->ndim, "argsort");
    lua_pop(L, 1);
    desc = lgL_optbooleanfield(L, opts, "descending", 0);
  }
  return lgL_push_index_result(L, "argsort", lg_argsort(t, dim, desc));
}

static int s_nonzero(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lgL_checknargs(L, 1, "nonzero");
  return lgL_push_index_result(L, "nonzero", lg_nonzero(t));
}

static int s_masked_select(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lg_tensor *m = lgL_checktensor(L, 2);
  lgL_checknargs(L, 2, "masked_select");
  return lgL_pushresult(L, "masked_select", lg_masked_select(t, m));
}

/* values [, inverse] [, counts] */
static int s_unique(lua_State *L) {
  static const char *const keys[] = {"sorted", "return_inverse",
                                     "return_counts", NULL};
  lg_tensor *t = lgL_checktensor(L, 1);
  int opts = lua_istable(L, 2) ? 2 : 0;
  lgL_checkopts(L, opts, "unique", keys);
  lgL_checknargs(L, opts ? 2 : 1, "unique");
  bool inv = lgL_optbooleanfield(L, opts, "return_inverse", 0);
  bool cnt = lgL_optbooleanfield(L, opts, "return_counts", 0);
  lg_tensor **vb = lgL_newbox(L);
  lg_tensor *i = NULL, *c = NULL;
  CHECK(L, "unique", lg_unique(t, vb, inv ? &i : NULL, cnt ? &c : NULL));
  if (inv)
    lgL_push_index_out(L, i, "unique");
  if (cnt)
    lgL_pushtensor(L, c);
  return 1 + inv + cnt;
}

static int s_diag(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  lua_Integer k = opt_int(L, 2, 0, "diag", "diagonal");
  lgL_checknargs(L, 2, "diag");
  return lgL_pushresult(L, "diag", lg_diag(t, k));
}

static int s_diagonal(lua_State *L) {
  static const char *const keys[] = {"offset", "dim1", "dim2", NULL};
  lg_tensor *t = lgL_checktensor(L, 1);
  lua_Integer off = 0;
  int d1 = 0, d2 = 1;
  if (lua_istable(L, 2)) {
    lgL_checkopts(L, 2, "diagonal", keys);
    lgL_checknargs(L, 2, "diagonal");
    lua_getfield(L, 2, "offset");
    off = opt_int(L, -1, 0, "diagonal", "offset");
    lua_getfield(L, 2, "dim1");
    if (!lua_isnil(L, -1))
      d1 = lgL_checkdim(L, lua_gettop(L), t->ndim, "diagonal");
    lua_getfield(L, 2, "dim2");
    if (!lua_isnil(L, -1))
      d2 = lgL_checkdim(L, lua_gettop(L), t->ndim, "diagonal");
    lua_pop(L, 3);
  } else {
    off = opt_int(L, 2, 0, "diagonal", "offset");
    if (!lua_isnoneornil(L, 3))
      d1 = lgL_checkdim(L, 3, t->ndim, "diagonal");
    if (!lua_isnoneornil(L, 4))
      d2 = lgL_checkdim(L, 4, t->ndim, "diagonal");
    lgL_checknargs(L, 4, "diagonal");
  }
  return lgL_pushresult(L, "diagonal", lg_diagonal(t, off, d1, d2));
}

static int s_unfold(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int d = lgL_checkdim(L, 2, t->ndim, "unfold");
  lua_Integer size = luaL_checkinteger(L, 3);
  lua_Integer step = luaL_checkinteger(L, 4);
  lgL_checknargs(L, 4, "unfold");
  return lgL_pushresult(L, "unfold", lg_unfold(t, d, size, step));
}

static void close_opts(lua_State *L, int idx, const char *fname, double *rtol,
                       double *atol, bool *equal_nan) {
  static const char *const keys[] = {"rtol", "atol", "equal_nan", NULL};
  int opts = lua_istable(L, idx) && !lgL_testtensor(L, idx) ? idx : 0;
  lgL_checkopts(L, opts, fname, keys);
  lgL_checknargs(L, opts ? idx : idx - 1, fname);
  *rtol = lgL_optnumberfield(L, opts, "rtol", 1e-5);
  *atol = lgL_optnumberfield(L, opts, "atol", 1e-8);
  *equal_nan = lgL_optbooleanfield(L, opts, "equal_nan", 0);
}

static int s_isclose(lua_State *L) {
  lg_tensor *a = lgL_checktensor(L, 1);
  lg_tensor *b = lgL_checktensorlike(L, 2, a->dtype);
  double rtol, atol;
  bool en;
  close_opts(L, 3, "isclose", &rtol, &atol, &en);
  return lgL_pushresult(L, "isclose", lg_isclose(a, b, rtol, atol, en));
}

static int s_allclose(lua_State *L) {
  lg_tensor *a = lgL_checktensor(L, 1);
  lg_tensor *b = lgL_checktensorlike(L, 2, a->dtype);
  double rtol, atol;
  bool en;
  close_opts(L, 3, "allclose", &rtol, &atol, &en);
  int r = lg_allclose(a, b, rtol, atol, en);
  if (r < 0)
    return lgL_fail(L, "allclose");
  lua_pushboolean(L, r);
  return 1;
}

static int s_multinomial(lua_State *L) {
  static const char *const keys[] = {"replacement", "generator", NULL};
  lg_tensor *p = lgL_checktensor(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 0 || n > ((lua_Integer)1 << 32))
    return luaL_error(L, "multinomial: number of samples %I out of range", n);
  int opts = lua_istable(L, 3) ? 3 : 0;
  lgL_checkopts(L, opts, "multinomial", keys);
  lgL_checknargs(L, opts ? 3 : 2, "multinomial");
  bool repl = lgL_optbooleanfield(L, opts, "replacement", 0);
  return lgL_push_index_result(L, "multinomial", lg_multinomial(p, n, repl, lgL_optgenerator(L, opts)));
}

static int s_bernoulli(lua_State *L) {
  static const char *const keys[] = {"generator", NULL};
  lg_tensor *p = lgL_checktensor(L, 1);
  int opts = lua_istable(L, 2) ? 2 : 0;
  lgL_checkopts(L, opts, "bernoulli", keys);
  lgL_checknargs(L, opts ? 2 : 1, "bernoulli");
  return lgL_pushresult(L, "bernoulli",
                        lg_bernoulli(p, lgL_optgenerator(L, opts)));
}

/* nan_to_num([nan [, posinf [, neginf]]] | {nan, posinf, neginf}): the
 * defaults come from the op of ops.def, other values are put in place
 * with where */
static int s_nan_to_num(lua_State *L) {
  static const char *const keys[] = {"nan", "posinf", "neginf", NULL};
  lg_tensor *x = lgL_checktensor(L, 1);
  double v[3];
  bool given[3] = {false, false, false};
  int opts = lua_istable(L, 2) ? 2 : 0;
  lgL_checkopts(L, opts, "nan_to_num", keys);
  lgL_checknargs(L, opts ? 2 : 4, "nan_to_num");
  for (int i = 0; i < 3; i++) {
    if (opts)
      lua_getfield(L, opts, keys[i]);
    else
      lua_pushvalue(L, 2 + i);
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER)
        return luaL_error(L, "nan_to_num: %s must be a number, got %s",
                          keys[i], luaL_typename(L, -1));
      v[i] = lua_tonumber(L, -1);
      given[i] = true;
    }
    lua_pop(L, 1);
  }
  lg_tensor **box = lgL_newbox(L);
  CHECK(L, "nan_to_num", !(*box = lg_unary(LG_OP_NAN_TO_NUM, x)));
  for (int i = 0; i < 3; i++) {
    if (!given[i])
      continue;
    lg_tensor *cond = i == 0 ? lg_unary(LG_OP_ISNAN, x)
                             : lg_binary_scalar(LG_OP_EQ, x,
                                                i == 1 ? INFINITY : -INFINITY,
                                                false);
    lg_tensor *s = cond ? lg_scalar(x->dtype, v[i]) : NULL;
    lg_tensor *w = s ? lg_where(cond, s, *box) : NULL;
    lg_release(cond);
    lg_release(s);
    CHECK(L, "nan_to_num", !w);
    lg_release(*box);
    *box = w;
  }
  return 1;
}

static const luaL_Reg shape_ops[] = {
    {"nan_to_num", s_nan_to_num},
    {"tril", s_tril},         {"triu", s_triu},
    {"masked_fill_", s_masked_fill_},
    {"repeat", s_repeat},     {"repeatTensor", s_repeat},
    {"tile", s_tile},
    {"flip", s_flip},         {"roll", s_roll},
    {"cumprod", s_cumprod},   {"amax", s_amax},
    {"amin", s_amin},         {"argsort", s_argsort},
    {"nonzero", s_nonzero},   {"masked_select", s_masked_select},
    {"unique", s_unique},     {"diag", s_diag},
    {"diagonal", s_diagonal}, {"unfold", s_unfold},
    {"isclose", s_isclose},   {"allclose", s_allclose},
    {"multinomial", s_multinomial},
    {"bernoulli", s_bernoulli},
    {NULL, NULL}};

void lgL_open_shape(lua_State *L) {
  int module = lua_gettop(L);
  luaL_setfuncs(L, shape_ops, 0);
  lua_getfield(L, module, "Tensor");
  luaL_setfuncs(L, shape_ops, 0);
  lua_settop(L, module);
}
