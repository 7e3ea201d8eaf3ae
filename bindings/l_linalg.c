/*
 * l_linalg.c -- lg.linalg: inv solve cholesky qr svd svdvals eigh det
 * slogdet lstsq over LAPACK (runtime/ops/lapack.c), and norm(x, ord, dim)
 * (vector and matrix norms written with differentiable ops).
 */
#include <math.h>
#include <string.h>

#include "binding.h"

#define CHECK(L, fname, expr)                                                 \
  do {                                                                        \
    if (expr)                                                                 \
      return lgL_fail(L, fname);                                              \
  } while (0)

static const char *const no_keys[] = {NULL};

/* the functions of one or two matrices that return one or two tensors and
 * take no options: one entry each, one dispatcher (the entry is the
 * closure's upvalue) */
typedef struct {
  const char *name;
  int nin, nout;
  lg_tensor *(*one)(lg_tensor *);                            /* 1 -> 1 */
  lg_tensor *(*two)(lg_tensor *, lg_tensor *);               /* 2 -> 1 */
  int (*pair)(lg_tensor *, lg_tensor **, lg_tensor **);      /* 1 -> 2 */
} plain_fn;

static const plain_fn plain_fns[] = {
    {"inv", 1, 1, .one = lg_linalg_inv},
    {"svdvals", 1, 1, .one = lg_linalg_svdvals},
    {"det", 1, 1, .one = lg_linalg_det},
    {"solve", 2, 1, .two = lg_linalg_solve},
    {"lstsq", 2, 1, .two = lg_linalg_lstsq},
    {"eigh", 1, 2, .pair = lg_linalg_eigh},
    {"slogdet", 1, 2, .pair = lg_linalg_slogdet},
};

static int la_plain(lua_State *L) {
  const plain_fn *f = lua_touserdata(L, lua_upvalueindex(1));
  lg_tensor *a = lgL_checktensor(L, 1);
  lg_tensor *b = f->nin == 2 ? lgL_checktensor(L, 2) : NULL;
  lgL_checknargs(L, f->nin, f->name);
  if (f->nout == 1)
    return lgL_pushresult(L, f->name, f->one ? f->one(a) : f->two(a, b));
  lg_tensor **xb = lgL_newbox(L), **yb = lgL_newbox(L);
  CHECK(L, f->name, f->pair(a, xb, yb));
  return 2;
}

static int la_cholesky(lua_State *L) {
  static const char *const keys[] = {"upper", NULL};
  lg_tensor *a = lgL_checktensor(L, 1);
  int opts = lua_istable(L, 2) ? 2 : 0;
  lgL_checkopts(L, opts, "cholesky", keys);
  lgL_checknargs(L, opts ? 2 : 1, "cholesky");
  bool upper = lgL_optbooleanfield(L, opts, "upper", 0);
  return lgL_pushresult(L, "cholesky", lg_linalg_cholesky(a, upper));
}

static int la_qr(lua_State *L) {
  static const char *const keys[] = {"mode", NULL};
  lg_tensor *a = lgL_checktensor(L, 1);
  int opts = lua_istable(L, 2) ? 2 : 0;
  lgL_checkopts(L, opts, "qr", keys);
  lgL_checknargs(L, opts ? 2 : 1, "qr");
  if (opts) {
    lua_getfield(L, opts, "mode");
    const char *mode = lua_tostring(L, -1);
    if (mode && strcmp(mode, "reduced"))
      return luaL_error(L, "qr: only mode = \"reduced\" is supported, got "
                           "'%s'",
                        mode);
    lua_pop(L, 1);
  }
  lg_tensor **qb = lgL_newbox(L), **rb = lgL_newbox(L);
  CHECK(L, "qr", lg_linalg_qr(a, qb, rb));
  return 2;
}

static int la_svd(lua_State *L) {
  static const char *const keys[] = {"full_matrices", NULL};
  lg_tensor *a = lgL_checktensor(L, 1);
  int opts = lua_istable(L, 2) ? 2 : 0;
  lgL_checkopts(L, opts, "svd", keys);
  lgL_checknargs(L, opts ? 2 : 1, "svd");
  if (lgL_optbooleanfield(L, opts, "full_matrices", 0))
    return luaL_error(L, "svd: only full_matrices = false (the reduced "
                         "SVD) is supported");
  lg_tensor **ub = lgL_newbox(L), **sb = lgL_newbox(L), **vb = lgL_newbox(L);
  CHECK(L, "svd", lg_linalg_svd(a, ub, sb, vb));
  return 3;
}

/* ---- norm(x [, ord [, dim]] [, {keepdim}]) ---- */

/* releases what it is given and returns r; keeps going on NULL */
static lg_tensor *step(lg_tensor *r, lg_tensor *drop) {
  lg_release(drop);
  return r;
}

/* vector norm of ord along dim (or all) */
static lg_tensor *vector_norm(lg_tensor *x, double ord, int dim, bool keep) {
  if (isinf(ord) || ord == 0) {
    lg_tensor *a = lg_unary(LG_OP_ABS, x);
    if (!a)
      return NULL;
    if (ord == 0) {
      lg_tensor *nz = lg_binary_scalar(LG_OP_NE, a, 0, false);
      lg_tensor *f = nz ? lg_to_dtype(nz, x->dtype) : NULL;
      lg_release(nz);
      lg_release(a);
      return f ? step(lg_reduce(LG_RED_SUM, f, dim, keep), f) : NULL;
    }
    return step(lg_amax(a, dim, keep, ord < 0), a);
  }
  return lg_norm(x, ord, dim, keep);
}

/* matrix norm over the last two dims of x */
static lg_tensor *matrix_norm(lg_tensor *x, const char *sord, double ord) {
  if (sord && !strcmp(sord, "fro")) {
    lg_tensor *sq = lg_unary(LG_OP_SQUARE, x);
    lg_tensor *s1 = sq ? step(lg_reduce(LG_RED_SUM, sq, -1, false), sq) : NULL;
    lg_tensor *s2 = s1 ? step(lg_reduce(LG_RED_SUM, s1, -1, false), s1) : NULL;
    return s2 ? step(lg_unary(LG_OP_SQRT, s2), s2) : NULL;
  }
  if (sord && !strcmp(sord, "nuc")) {
    lg_tensor *s = lg_linalg_svdvals(x);
    return s ? step(lg_reduce(LG_RED_SUM, s, -1, false), s) : NULL;
  }
  if (ord == 2 || ord == -2) {
    lg_tensor *s = lg_linalg_svdvals(x);
    return s ? step(lg_amax(s, -1, false, ord < 0), s) : NULL;
  }
  /* 1: the largest column sum of |x|; inf: the largest row sum */
  int sum_dim = fabs(ord) == 1 ? -2 : -1;
  lg_tensor *a = lg_unary(LG_OP_ABS, x);
  lg_tensor *s = a ? step(lg_reduce(LG_RED_SUM, a, sum_dim, false), a) : NULL;
  return s ? step(lg_amax(s, -1, false, ord < 0), s) : NULL;
}

static int la_norm(lua_State *L) {
  static const char *const keys[] = {"keepdim", "dim", "ord", NULL};
  lg_tensor *x = lgL_checktensor(L, 1);
  int top = lua_gettop(L);
  while (top > 1 && lua_isnil(L, top))
    top--;
  /* a trailing table without list entries is the options; a dims list
   * has them */
  int opts = top >= 2 && lua_istable(L, top) && !lgL_testtensor(L, top) &&
                     luaL_len(L, top) == 0
                 ? top
                 : 0;
  if (opts)
    lgL_checkopts(L, opts, "norm", keys);
  int last = opts ? opts - 1 : top;
  if (last > 3)
    lgL_checknargs(L, 3, "norm");
  bool keep = lgL_optbooleanfield(L, opts, "keepdim", 0);
  int ord_i = 2, dim_i = 3;
  if (opts) {
    lua_getfield(L, opts, "ord");
    if (!lua_isnil(L, -1)) {
      if (last >= 2 && !lua_isnil(L, 2))
        return luaL_error(L, "norm: ord given twice");
      lua_replace(L, 2);
    } else {
      lua_pop(L, 1);
    }
    lua_getfield(L, opts, "dim");
    if (!lua_isnil(L, -1)) {
      if (last >= 3 && !lua_isnil(L, 3))
        return luaL_error(L, "norm: dim given twice");
      lua_replace(L, 3);
    } else {
      lua_pop(L, 1);
    }
    if (last < 3)
      last = 3;
  }
  /* ord */
  const char *sord = NULL;
  double ord = 2;
  bool has_ord = last >= ord_i && !lua_isnil(L, ord_i);
  if (has_ord) {
    if (lua_type(L, ord_i) == LUA_TNUMBER) {
      ord = lua_tonumber(L, ord_i);
    } else if (lua_type(L, ord_i) == LUA_TSTRING) {
      sord = lua_tostring(L, ord_i);
      if (!strcmp(sord, "inf"))
        ord = INFINITY, sord = NULL;
      else if (!strcmp(sord, "-inf"))
        ord = -INFINITY, sord = NULL;
      else if (strcmp(sord, "fro") && strcmp(sord, "nuc"))
        return luaL_error(L, "norm: unknown ord '%s' (a number, math.huge, "
                             "\"fro\" or \"nuc\")",
                          sord);
    } else {
      return luaL_error(L, "norm: ord must be a number or a string, got %s",
                        luaL_typename(L, ord_i));
    }
    if (isnan(ord))
      return luaL_error(L, "norm: ord is NaN");
  }
  /* dim: nil, a number, or a table of one or two */
  int dims[2], nd = 0;
  if (last >= dim_i && !lua_isnil(L, dim_i)) {
    if (lua_type(L, dim_i) == LUA_TNUMBER) {
      dims[nd++] = lgL_checkdim(L, dim_i, x->ndim, "norm");
    } else if (lua_istable(L, dim_i)) {
      lua_Integer len = luaL_len(L, dim_i);
      if (len < 1 || len > 2)
        return luaL_error(L, "norm: dim must be one dimension or two");
      for (int i = 1; i <= len; i++) {
        lua_geti(L, dim_i, i);
        dims[nd++] = lgL_checkdim(L, lua_gettop(L), x->ndim, "norm");
        lua_pop(L, 1);
      }
      if (nd == 2 && dims[0] == dims[1])
        return luaL_error(L, "norm: the two dims must differ");
    } else {
      return luaL_error(L, "norm: dim must be a number or a table, got %s",
                        luaL_typename(L, dim_i));
    }
  } else if (has_ord) {
    /* ord without dim: the tensor is a vector or a matrix */
    if (x->ndim == 1) {
      dims[nd++] = 0;
    } else if (x->ndim == 2) {
      dims[0] = 0;
      dims[1] = 1;
      nd = 2;
    } else {
      char b[200];
      return luaL_error(L, "norm: with ord and no dim, the input must be "
                           "1-d or 2-d, got %s",
                        lg_shape_str(x, b, sizeof b));
    }
  }
  if (!lg_dtype_is_float(x->dtype))
    return luaL_error(L, "norm: needs a float tensor, got %s",
                      lg_dtype_name(x->dtype));
  if (nd <= 1) {
    if (sord)
      return luaL_error(L, "norm: ord '%s' is a matrix norm; give two dims",
                        sord);
    int dim = nd ? dims[0] : LG_ALL_DIMS;
    return lgL_pushresult(L, "norm", vector_norm(x, ord, dim, keep));
  }
  if (!sord && ord != 1 && ord != -1 && ord != 2 && ord != -2 && !isinf(ord))
    return luaL_error(L, "norm: a matrix norm takes ord \"fro\", \"nuc\", "
                         "1, -1, 2, -2, math.huge or -math.huge, got %f",
                      ord);
  if (!has_ord)
    sord = "fro";
  /* move the two dims last, in order */
  int perm[LG_MAX_DIMS], k = 0;
  for (int i = 0; i < x->ndim; i++)
    if (i != dims[0] && i != dims[1])
      perm[k++] = i;
  perm[k++] = dims[0];
  perm[k++] = dims[1];
  lg_tensor **box = lgL_newbox(L);
  CHECK(L, "norm", !(*box = lg_permute(x, perm)));
  lg_tensor *r = matrix_norm(*box, sord, ord);
  if (r && keep) {
    int lo = dims[0] < dims[1] ? dims[0] : dims[1];
    int hi = dims[0] < dims[1] ? dims[1] : dims[0];
    lg_tensor *u = step(lg_unsqueeze(r, lo), r);
    r = u ? step(lg_unsqueeze(u, hi), u) : NULL;
  }
  if (!r)
    return lgL_fail(L, "norm");
  lg_release(*box);
  *box = r;
  return 1;
}

static const luaL_Reg linalg_funcs[] = {{"cholesky", la_cholesky},
                                         {"qr", la_qr},
                                         {"svd", la_svd},
                                         {"norm", la_norm},
                                         {NULL, NULL}};

void lgL_open_linalg(lua_State *L) {
  (void)no_keys;
  luaL_newlib(L, linalg_funcs);
  for (size_t i = 0; i < sizeof plain_fns / sizeof *plain_fns; i++) {
    lua_pushlightuserdata(L, (void *)&plain_fns[i]);
    lua_pushcclosure(L, la_plain, 1);
    lua_setfield(L, -2, plain_fns[i].name);
  }
  lua_setfield(L, -2, "linalg");
}
