/*
 * l_tensor.c -- the Tensor userdata: its metatable, creation functions,
 * inspection, t[i] indexing, conversion to Lua tables and printing.
 * The op methods are in l_ops.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

/* ---- lifetime ---- */

static int t_gc(lua_State *L) {
  lgL_box *b = lua_touserdata(L, 1); /* only ever a tensor box */
  if (!b || lua_rawlen(L, 1) != sizeof *b || b->tag != LGL_BOX_TAG)
    return luaL_typeerror(L, 1, "tensor");
  lg_tensor **box = &b->tensor;
  if (*box) {
    lg_release(*box);
    *box = NULL;
  }
  return 0;
}

static int t_close(lua_State *L) {
  luaL_checkudata(L, 1, LGL_TENSOR);
  return t_gc(L);
}

/* ---- options ---- */

/* dtype from opts.dtype or def */
static lg_dtype opt_dtype(lua_State *L, int opts, lg_dtype def) {
  if (!opts || !lua_istable(L, opts))
    return def;
  lua_getfield(L, opts, "dtype");
  lg_dtype d = def;
  if (!lua_isnil(L, -1)) {
    const char *name = lua_tostring(L, -1);
    if (!name || lg_dtype_from_name(name, &d))
      luaL_error(L, "%s: unknown dtype '%s' (float32, float64, int64 or bool)",
                 lgL_fname(L), name ? name : luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return d;
}

/* applies opts.requires_grad to the tensor on top of the stack */
static void apply_requires_grad(lua_State *L, int opts, const char *fname) {
  if (!lgL_optbooleanfield(L, opts, "requires_grad", 0))
    return;
  lg_tensor *t = lgL_checktensor(L, -1);
  if (!lg_dtype_is_float(t->dtype))
    luaL_error(L, "%s: only float tensors can require grad", fname);
  lg_set_requires_grad(t, true);
}

/* parses "shape [, opts]" from idx; returns ndim, sets *opts */
static int shape_args(lua_State *L, int idx, int64_t *shape, int *opts,
                      const char *fname) {
  int ndim = lgL_checkshape(L, idx, shape, fname);
  int top = lua_gettop(L);
  *opts = 0;
  /* the last argument is the options when it is a table after the shape,
   * or the only table when it has an option key (checked below) */
  if (top >= idx && lua_istable(L, top) &&
      !(top == idx && luaL_len(L, idx) > 0))
    *opts = top;
  if (*opts == idx && lua_istable(L, idx)) {
    /* a lone table: a shape unless it has option keys */
    lua_getfield(L, idx, "dtype");
    lua_getfield(L, idx, "requires_grad");
    lua_getfield(L, idx, "generator");
    bool has = !lua_isnil(L, -1) || !lua_isnil(L, -2) || !lua_isnil(L, -3);
    lua_pop(L, 3);
    if (!has)
      *opts = 0;
  }
  return ndim;
}

typedef lg_tensor *(*shape_ctor)(lg_dtype, int, const int64_t *);

static int make_shaped(lua_State *L, shape_ctor ctor, const char *fname) {
  int64_t shape[LG_MAX_DIMS];
  int opts;
  int ndim = shape_args(L, 1, shape, &opts, fname);
  lg_dtype d = opt_dtype(L, opts, lg_default_dtype());
  lgL_pushresult(L, fname, ctor(d, ndim, shape));
  apply_requires_grad(L, opts, fname);
  return 1;
}

static lg_tensor *ones_ctor(lg_dtype d, int n, const int64_t *s) {
  return lg_full(d, n, s, 1);
}
static int l_zeros(lua_State *L) { return make_shaped(L, lg_zeros, "zeros"); }
static int l_ones(lua_State *L) { return make_shaped(L, ones_ctor, "ones"); }
static int l_empty(lua_State *L) { return make_shaped(L, lg_empty, "empty"); }

static int l_full(lua_State *L) {
  int64_t shape[LG_MAX_DIMS];
  int ndim = lgL_checkshape(L, 1, shape, "full");
  int vidx = lua_istable(L, 1) ? 2 : ndim + 1;
  double v;
  lg_dtype def = lg_default_dtype();
  if (lua_isboolean(L, vidx)) {
    v = lua_toboolean(L, vidx);
    def = LG_BOOL;
  } else {
    v = luaL_checknumber(L, vidx);
  }
  int opts = lua_istable(L, vidx + 1) ? vidx + 1 : 0;
  lg_dtype d = opt_dtype(L, opts, def);
  lgL_pushresult(L, "full", lg_full(d, ndim, shape, v));
  apply_requires_grad(L, opts, "full");
  return 1;
}

static int l_eye(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  lua_Integer m = lua_isinteger(L, 2) ? lua_tointeger(L, 2) : n;
  luaL_argcheck(L, n >= 0 && m >= 0 && n <= (1 << 20) && m <= (1 << 20), 1,
                "sizes must be in 0..2^20");
  int opts = lua_istable(L, lua_gettop(L)) ? lua_gettop(L) : 0;
  lgL_pushresult(L, "eye", lg_eye(opt_dtype(L, opts, lg_default_dtype()),
                                   n, m));
  apply_requires_grad(L, opts, "eye");
  return 1;
}

static int l_range(lua_State *L) {
  double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
  int ints = lua_isinteger(L, 1) && lua_isinteger(L, 2);
  double step = 1;
  int opts = 0;
  if (lua_isnumber(L, 3)) {
    step = lua_tonumber(L, 3);
    ints = ints && lua_isinteger(L, 3);
    opts = lua_istable(L, 4) ? 4 : 0;
  } else if (lua_istable(L, 3)) {
    opts = 3;
  }
  lg_dtype d = opt_dtype(L, opts, ints ? LG_INT64 : lg_default_dtype());
  lgL_pushresult(L, "range", lg_range(d, a, b, step));
  apply_requires_grad(L, opts, "range");
  return 1;
}

static int l_linspace(lua_State *L) {
  double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
  lua_Integer n = luaL_checkinteger(L, 3);
  luaL_argcheck(L, n >= 0 && n <= ((lua_Integer)1 << 36), 3,
                "number of points must be non-negative");
  int opts = lua_istable(L, 4) ? 4 : 0;
  lgL_pushresult(L, "linspace",
                 lg_linspace(opt_dtype(L, opts, lg_default_dtype()), a, b, n));
  apply_requires_grad(L, opts, "linspace");
  return 1;
}

static int make_random(lua_State *L, bool normal, const char *fname) {
  int64_t shape[LG_MAX_DIMS];
  int opts;
  int ndim = shape_args(L, 1, shape, &opts, fname);
  lg_dtype d = opt_dtype(L, opts, lg_default_dtype());
  lg_generator *g = lgL_optgenerator(L, opts);
  lgL_pushresult(L, fname, normal ? lg_randn(d, ndim, shape, g)
                                  : lg_rand(d, ndim, shape, g));
  apply_requires_grad(L, opts, fname);
  return 1;
}
static int l_rand(lua_State *L) { return make_random(L, false, "rand"); }
static int l_randn(lua_State *L) { return make_random(L, true, "randn"); }

static int l_randint(lua_State *L) {
  lua_Integer lo = luaL_checkinteger(L, 1), hi = luaL_checkinteger(L, 2);
  if (lo > hi)
    return luaL_error(L, "randint: empty range %I..%I", lo, hi);
  int64_t shape[LG_MAX_DIMS];
  int opts;
  int ndim = shape_args(L, 3, shape, &opts, "randint");
  lg_dtype d = opt_dtype(L, opts, LG_INT64);
  lg_tensor **box = lgL_newbox(L);
  if (!(*box = lg_empty(d, ndim, shape)) ||
      lg_randint_(*box, lo, hi, lgL_optgenerator(L, opts)))
    return lgL_fail(L, "randint");
  lgL_account(L);
  return 1;
}

static int l_randperm(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 0 || n > ((lua_Integer)1 << 36))
    return luaL_error(L, "randperm: n must be in 0..2^36, got %I", n);
  int opts = lua_istable(L, 2) ? 2 : 0;
  lg_tensor **box = lgL_newbox(L);
  if (!(*box = lg_randperm(n, lgL_optgenerator(L, opts))))
    return lgL_fail(L, "randperm");
  int64_t *p = lg_data_ptr(*box);
  for (lua_Integer i = 0; i < n; i++)
    p[i]++;
  return 1;
}

static int like(lua_State *L, const char *fname, int kind) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int opts = lua_istable(L, 2) ? 2 : 0;
  lg_dtype d = opt_dtype(L, opts, t->dtype);
  lg_tensor **box = lgL_newbox(L);
  lg_generator *g = lgL_optgenerator(L, opts);
  switch (kind) {
  case 0:
    *box = lg_zeros(d, t->ndim, t->shape);
    break;
  case 1:
    *box = lg_full(d, t->ndim, t->shape, 1);
    break;
  case 2:
    *box = lg_rand(d, t->ndim, t->shape, g);
    break;
  default:
    *box = lg_randn(d, t->ndim, t->shape, g);
  }
  if (!*box)
    return lgL_fail(L, fname);
  apply_requires_grad(L, opts, fname);
  return 1;
}
static int l_zeros_like(lua_State *L) { return like(L, "zeros_like", 0); }
static int l_ones_like(lua_State *L) { return like(L, "ones_like", 1); }
static int l_rand_like(lua_State *L) { return like(L, "rand_like", 2); }
static int l_randn_like(lua_State *L) { return like(L, "randn_like", 3); }

static int l_manual_seed(lua_State *L) {
  lua_Integer s = luaL_checkinteger(L, 1);
  lg_manual_seed((uint64_t)s);
  return 0;
}

/* ---- lg.tensor from nested tables ---- */

typedef struct {
  int ndim;
  int64_t shape[LG_MAX_DIMS];
  bool has_float, has_bool, has_number;
} nested_info;

static void nested_shape(lua_State *L, int idx, nested_info *info) {
  info->ndim = 0;
  lua_pushvalue(L, idx);
  while (lua_istable(L, -1) && !lgL_totensor(L, -1)) {
    if (info->ndim >= LG_MAX_DIMS)
      luaL_error(L, "tensor: nesting deeper than %d levels", LG_MAX_DIMS);
    lua_Integer n = luaL_len(L, -1);
    info->shape[info->ndim++] = n;
    if (n == 0)
      break;
    lua_geti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
}

/* writes the elements in order; nested_kinds has checked them all */
static void nested_fill(lua_State *L, int idx, nested_info *info, int depth,
                        lg_tensor *t, int64_t *pos) {
  if (depth == info->ndim) {
    double v = lua_isboolean(L, idx) ? lua_toboolean(L, idx)
                                     : lua_tonumber(L, idx);
    if (t->dtype == LG_INT64 && lua_isinteger(L, idx))
      ((int64_t *)lg_data_ptr(t))[(*pos)++] = lua_tointeger(L, idx);
    else
      lg_store(t->dtype, lg_data_ptr(t), (*pos)++, v);
    return;
  }
  lua_Integer n = info->shape[depth];
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    nested_fill(L, lua_gettop(L), info, depth + 1, t, pos);
    lua_pop(L, 1);
  }
}

/* checks every row's length and every element, in the order nested_fill
 * reads them, before anything is allocated: a table whose # claims more
 * than it holds (a __len metamethod) fails at its first missing element
 * instead of sizing a tensor after it */
static void nested_kinds(lua_State *L, int idx, int depth, nested_info *info,
                         int64_t *pos) {
  if (depth == info->ndim) {
    if (lua_isboolean(L, idx)) {
      info->has_bool = true;
    } else if (lua_type(L, idx) == LUA_TNUMBER) {
      info->has_number = true;
      if (!lua_isinteger(L, idx))
        info->has_float = true;
    } else {
      luaL_error(L, "tensor: element %I is a %s, not a number",
                 (lua_Integer)*pos + 1, luaL_typename(L, idx));
    }
    (*pos)++;
    return;
  }
  if (!lua_istable(L, idx) || lgL_totensor(L, idx))
    luaL_error(L, "tensor: ragged nested table (expected a table at depth %d)",
               depth + 1);
  lua_Integer n = luaL_len(L, idx);
  if (n != info->shape[depth])
    luaL_error(L, "tensor: ragged nested table (a row of length %I where %I "
                  "was expected at depth %d)",
               n, (lua_Integer)info->shape[depth], depth + 1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    nested_kinds(L, lua_gettop(L), depth + 1, info, pos);
    lua_pop(L, 1);
  }
}

/* a table claiming more elements (through __len) than memory can hold
 * fails before its elements are read: the smallest tensor of that shape
 * is tried first when the shape is large */
static int check_nested_numel(lua_State *L, nested_info *info) {
  (void)L;
  int64_t n = 1;
  for (int i = 0; i < info->ndim; i++) {
    if (info->shape[i] < 0) {
      lg_seterr("tensor: a table has a negative length (%lld)",
                (long long)info->shape[i]);
      return -1;
    }
    if (info->shape[i] && n > ((int64_t)1 << 46) / info->shape[i]) {
      lg_seterr("tensor: size too large (more than 2^46 elements)");
      return -1;
    }
    n *= info->shape[i];
  }
  if (n <= ((int64_t)1 << 20))
    return 0;
  lg_tensor *probe = lg_empty(LG_BOOL, info->ndim, info->shape);
  if (!probe) {
    char why[256];
    snprintf(why, sizeof why, "%s", lg_errmsg_based(1));
    lg_seterr("tensor: the tables' lengths (#) give %lld elements, more "
              "than memory holds (%s)", (long long)n, why);
    return -1;
  }
  lg_release(probe);
  return 0;
}

static int l_tensor_new(lua_State *L) {
  int opts = lua_istable(L, 2) ? 2 : 0;
  lg_tensor *src = lgL_totensor(L, 1);
  if (src || lua_isnumber(L, 1) || lua_isboolean(L, 1)) {
    if (!src && !lua_isnumber(L, 1) && !lua_isboolean(L, 1))
      return luaL_typeerror(L, 1, "number, table or tensor");
    lg_dtype def = src                    ? src->dtype
                   : lua_isboolean(L, 1)  ? LG_BOOL
                   : lua_isinteger(L, 1)  ? LG_INT64
                                          : lg_default_dtype();
    lg_dtype d = opt_dtype(L, opts, def);
    lg_tensor **box = lgL_newbox(L);
    if (src) {
      bool was = lg_set_grad_enabled(false);
      lg_tensor *c = lg_to_dtype(src, d);
      *box = c && c == src ? lg_clone(c) : c;
      if (c == src)
        lg_release(c);
      lg_set_grad_enabled(was);
      if (*box && (*box)->grad_fn) { /* a copy is a fresh leaf */
        lg_tensor *det = lg_detach(*box);
        lg_release(*box);
        *box = det;
      }
    } else {
      double v = lua_isboolean(L, 1) ? lua_toboolean(L, 1)
                                     : lua_tonumber(L, 1);
      *box = lg_scalar(d, v);
      if (*box && d == LG_INT64 && lua_isinteger(L, 1)) /* exact */
        *(int64_t *)lg_data_ptr(*box) = lua_tointeger(L, 1);
    }
    if (!*box)
      return lgL_fail(L, "tensor");
    apply_requires_grad(L, opts, "tensor");
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  nested_info info = {0};
  nested_shape(L, 1, &info);
  if (check_nested_numel(L, &info))
    return lgL_fail(L, "tensor");
  int64_t count = 0;
  nested_kinds(L, 1, 0, &info, &count);
  lg_dtype def = info.has_float                       ? lg_default_dtype()
                 : info.has_bool && !info.has_number  ? LG_BOOL
                 : info.has_number                    ? LG_INT64
                                                      : lg_default_dtype();
  lg_dtype d = opt_dtype(L, opts, def);
  lg_tensor **box = lgL_newbox(L);
  if (!(*box = lg_empty(d, info.ndim, info.shape)))
    return lgL_fail(L, "tensor");
  int64_t pos = 0;
  nested_fill(L, 1, &info, 0, *box, &pos);
  apply_requires_grad(L, opts, "tensor");
  lgL_account(L);
  return 1;
}

/* ---- generators ---- */

#define LGL_GENERATOR "lgrad.Generator"

static int gen_new(lua_State *L) {
  lua_Integer seed = luaL_optinteger(L, 1, 0);
  lg_generator **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, LGL_GENERATOR);
  if (!(*box = lg_generator_new((uint64_t)seed)))
    return lgL_fail(L, "Generator");
  return 1;
}

static lg_generator *check_gen(lua_State *L) {
  lg_generator **box = luaL_checkudata(L, 1, LGL_GENERATOR);
  if (!*box)
    luaL_error(L, "generator is closed");
  return *box;
}

static int gen_gc(lua_State *L) {
  lg_generator **box = luaL_checkudata(L, 1, LGL_GENERATOR);
  lg_generator_free(*box);
  *box = NULL;
  return 0;
}

/* a list of n integers */
static int push_ints(lua_State *L, const int64_t *v, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* a generator's state as Lua sees it: a list of two integers */
static int push_gen_state(lua_State *L, const lg_generator *g) {
  uint64_t st[2];
  lg_generator_get_state(g, st);
  int64_t v[2] = {(int64_t)st[0], (int64_t)st[1]};
  return push_ints(L, v, 2);
}

static int set_gen_state(lua_State *L, int idx, lg_generator *g,
                         const char *fname) {
  luaL_checktype(L, idx, LUA_TTABLE);
  uint64_t st[2];
  for (int i = 0; i < 2; i++) {
    lua_geti(L, idx, i + 1);
    if (!lua_isinteger(L, -1))
      return luaL_error(L, "%s: expects a table of two integers", fname);
    st[i] = (uint64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  lg_generator_set_state(g, st);
  return 0;
}

static int gen_seed(lua_State *L) {
  lg_generator_seed(check_gen(L), (uint64_t)luaL_checkinteger(L, 2));
  return 0;
}

static int gen_get_state(lua_State *L) {
  return push_gen_state(L, check_gen(L));
}

static int gen_set_state(lua_State *L) {
  return set_gen_state(L, 2, check_gen(L), "set_state");
}

static int default_gen_state(lua_State *L) {
  if (lua_istable(L, 1))
    return set_gen_state(L, 1, lg_default_generator(), "rng_state");
  return push_gen_state(L, lg_default_generator());
}

/* ---- inspection ---- */

static int t_shape(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  return push_ints(L, t->shape, t->ndim);
}

static int t_size(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (lua_isnoneornil(L, 2))
    return t_shape(L);
  if (t->ndim == 0)
    return luaL_error(L, "size: a 0-d tensor has no dimensions");
  int d = lgL_checkdim(L, 2, t->ndim, "size");
  lua_pushinteger(L, t->shape[d]);
  return 1;
}

static int t_stride(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  return push_ints(L, t->strides, t->ndim);
}

static int t_dim(lua_State *L) {
  lua_pushinteger(L, lgL_checktensor(L, 1)->ndim);
  return 1;
}

static int t_numel(lua_State *L) {
  lua_pushinteger(L, lg_numel(lgL_checktensor(L, 1)));
  return 1;
}

static int t_len(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (t->ndim == 0)
    return luaL_error(L, "len: a 0-d tensor has no length");
  lua_pushinteger(L, t->shape[0]);
  return 1;
}

static void push_element(lua_State *L, lg_dtype d, double v) {
  if (d == LG_INT64)
    lua_pushinteger(L, (lua_Integer)v);
  else if (d == LG_BOOL)
    lua_pushboolean(L, v != 0);
  else
    lua_pushnumber(L, v);
}

static int t_item(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (lg_numel(t) != 1) {
    char b[200];
    return luaL_error(L, "item: a tensor of shape %s has %d elements, not one",
                      lg_shape_str(t, b, sizeof b), (int)lg_numel(t));
  }
  if (t->dtype == LG_INT64)
    lua_pushinteger(L, *(int64_t *)lg_data_ptr(t));
  else
    push_element(L, t->dtype, lg_item(t));
  return 1;
}

static void push_table(lua_State *L, lg_tensor *t, int depth, int64_t off) {
  if (depth == t->ndim) {
    if (t->dtype == LG_INT64)
      lua_pushinteger(L, ((int64_t *)t->storage->data)[off]);
    else
      push_element(L, t->dtype, lg_load(t->dtype, t->storage->data, off));
    return;
  }
  luaL_checkstack(L, 4, "totable");
  lua_createtable(L, (int)t->shape[depth], 0);
  for (int64_t i = 0; i < t->shape[depth]; i++) {
    push_table(L, t, depth + 1, off + i * t->strides[depth]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int t_totable(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (lg_numel(t) > ((int64_t)1 << 28))
    return luaL_error(L, "totable: tensor too large for a Lua table");
  push_table(L, t, 0, t->offset);
  return 1;
}

/* element at a 1-based row-major position, for any strides */
static int64_t flat_offset(lua_State *L, lg_tensor *t, int idx) {
  lua_Integer i = luaL_checkinteger(L, idx);
  int64_t n = lg_numel(t);
  if (i < 1 || i > n)
    luaL_error(L, "flat index %I out of range 1..%I", i, (lua_Integer)n);
  int64_t rem = i - 1, off = t->offset;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (rem % t->shape[d]) * t->strides[d];
    rem /= t->shape[d];
  }
  return off;
}

static int t_get_flat(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  push_element(L, t->dtype,
               lg_load(t->dtype, t->storage->data, flat_offset(L, t, 2)));
  return 1;
}

static int t_set_flat(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  int64_t off = flat_offset(L, t, 2);
  lg_set_at(t, off, luaL_checknumber(L, 3));
  return 0;
}

static int t_is_contiguous(lua_State *L) {
  lua_pushboolean(L, lg_is_contiguous(lgL_checktensor(L, 1)));
  return 1;
}

static int t_dtype(lua_State *L) {
  lua_pushstring(L, lg_dtype_name(lgL_checktensor(L, 1)->dtype));
  return 1;
}

static int t_storage_id(lua_State *L) {
  lua_pushlightuserdata(L, lgL_checktensor(L, 1)->storage);
  return 1;
}

/* ---- printing (Torch7 style: values, then the shape and dtype) ---- */

typedef struct {
  luaL_Buffer *b;
  lg_tensor *t;
  char fmt[16];
  double scale;
  int width;
} printer;

/* the element at storage offset o; int64 exactly, not through a double */
static void print_value(printer *p, int64_t o) {
  char buf[64];
  const void *data = p->t->storage->data;
  if (p->t->dtype == LG_INT64) {
    snprintf(buf, sizeof buf, "%*lld", p->width,
             (long long)((const int64_t *)data)[o]);
    luaL_addstring(p->b, buf);
    return;
  }
  double v = lg_load(p->t->dtype, data, o);
  if (p->t->dtype == LG_BOOL)
    snprintf(buf, sizeof buf, "%*s", p->width, v ? "true" : "false");
  else if (isnan(v) || isinf(v))
    snprintf(buf, sizeof buf, "%*s", p->width,
             isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
  else
    snprintf(buf, sizeof buf, p->fmt, p->width, v / p->scale);
  luaL_addstring(p->b, buf);
}

static void print_matrix(printer *p, int64_t off, int d0, int d1) {
  lg_tensor *t = p->t;
  int64_t rows = d0 >= 0 ? t->shape[d0] : 1, cols = t->shape[d1];
  for (int64_t i = 0; i < rows; i++) {
    if (rows > 24 && i == 10) {
      luaL_addstring(p->b, " ...\n");
      i = rows - 10;
    }
    for (int64_t j = 0; j < cols; j++) {
      if (cols > 24 && j == 10) {
        luaL_addstring(p->b, " ...");
        j = cols - 10;
      }
      luaL_addchar(p->b, ' ');
      int64_t o = off + (d0 >= 0 ? i * t->strides[d0] : 0) +
                  j * t->strides[d1];
      print_value(p, o);
    }
    luaL_addchar(p->b, '\n');
  }
}

static void print_slices(printer *p, int depth, int64_t off, int64_t *idx) {
  lg_tensor *t = p->t;
  if (depth == t->ndim - 2) {
    char buf[200];
    int k = snprintf(buf, sizeof buf, "(");
    for (int i = 0; i < depth; i++)
      k += snprintf(buf + k, sizeof buf - k, "%lld,", (long long)idx[i] + 1);
    snprintf(buf + k, sizeof buf - k, ".,.) = \n");
    luaL_addstring(p->b, buf);
    print_matrix(p, off, depth, depth + 1);
    luaL_addchar(p->b, '\n');
    return;
  }
  for (int64_t i = 0; i < t->shape[depth]; i++) {
    idx[depth] = i;
    print_slices(p, depth + 1, off + i * t->strides[depth], idx);
  }
}

static int t_tostring(lua_State *L) {
  lg_tensor **box = luaL_checkudata(L, 1, LGL_TENSOR);
  if (!*box) {
    lua_pushliteral(L, "[lgrad.Tensor (closed)]");
    return 1;
  }
  lg_tensor *t = *box;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  printer p = {&b, t, "%*.4f", 1, 1};
  int64_t n = lg_numel(t);
  /* choose a format from the values */
  double amax = 0, amin = INFINITY;
  bool ints = true;
  int64_t pos[LG_MAX_DIMS] = {0};
  for (int64_t i = 0; i < n && i < 100000; i++) {
    int64_t o = t->offset;
    for (int k = 0; k < t->ndim; k++)
      o += pos[k] * t->strides[k];
    double v = lg_load(t->dtype, t->storage->data, o);
    if (isfinite(v)) {
      double a = fabs(v);
      if (a > amax)
        amax = a;
      if (a > 0 && a < amin)
        amin = a;
      if (v != floor(v))
        ints = false;
    }
    for (int k = t->ndim - 1; k >= 0; k--) {
      if (++pos[k] < t->shape[k])
        break;
      pos[k] = 0;
    }
  }
  if (t->dtype == LG_BOOL) {
    p.width = 5;
  } else if (t->dtype == LG_INT64 || (ints && amax < 1e9)) {
    strcpy(p.fmt, "%*.0f");
    p.width = (int)snprintf(NULL, 0, "%.0f", amax) + 1;
    if (t->dtype != LG_INT64)
      strcpy(p.fmt, "%*.0f"), p.width += 0;
  } else if (amax >= 1e5 || (amin < 1e-4 && amin > 0)) {
    strcpy(p.fmt, "%*.4e");
    p.width = 11;
  } else {
    p.width = (int)snprintf(NULL, 0, "%.4f", amax) + 1;
  }
  if (n == 0) {
    /* nothing to show */
  } else if (t->ndim == 0) {
    print_value(&p, t->offset);
    luaL_addchar(&b, '\n');
  } else if (t->ndim == 1) {
    /* a column, as Torch7 printed vectors */
    for (int64_t i = 0; i < t->shape[0]; i++) {
      if (t->shape[0] > 40 && i == 15) {
        luaL_addstring(&b, " ...\n");
        i = t->shape[0] - 15;
      }
      luaL_addchar(&b, ' ');
      print_value(&p, t->offset + i * t->strides[0]);
      luaL_addchar(&b, '\n');
    }
  } else if (t->ndim == 2) {
    print_matrix(&p, t->offset, 0, 1);
  } else {
    int64_t idx[LG_MAX_DIMS];
    print_slices(&p, 0, t->offset, idx);
  }
  char sz[300];
  int k = 0;
  for (int i = 0; i < t->ndim; i++)
    k += snprintf(sz + k, sizeof sz - k, i ? "x%lld" : "%lld",
                  (long long)t->shape[i]);
  if (t->ndim == 0)
    snprintf(sz, sizeof sz, "()");
  lua_pushfstring(L, "[lgrad.Tensor %s of size %s%s]", lg_dtype_name(t->dtype),
                  sz, t->requires_grad ? ", requires_grad" : "");
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  return 1;
}

/* ---- t[i], t.grad and friends ---- */

static int64_t check_index1(lua_State *L, lg_tensor *t, lua_Integer i) {
  if (t->ndim == 0)
    luaL_error(L, "index: cannot index a 0-d tensor (use item())");
  int64_t n = t->shape[0];
  if (i == 0)
    luaL_error(L, "index: index 0 is out of range: indices are 1-based "
                  "(1..%I, or -1 for the last)",
               (lua_Integer)n);
  if (i > n || i < -n)
    luaL_error(L, "index: index %I out of range for size %I", i,
               (lua_Integer)n);
  return i > 0 ? i - 1 : n + i;
}

/* an integer index, or a float with an integral value (as Lua tables take
 * t[1.0] for t[1]) */
static lua_Integer check_int_key(lua_State *L, int idx) {
  int isint;
  lua_Integer i = lua_tointegerx(L, idx, &isint);
  if (!isint)
    luaL_error(L, "index: tensor indices must be integers, got %s",
               lua_tostring(L, idx));
  return i;
}

/* Torch7's index table at idx (t[{2, {1, 3}, {}, {1, -1, 2}}]) into r;
 * returns the number of entries */
static int slice_spec(lua_State *L, int idx, lg_tensor *t, lg_slice_dim *r) {
  lua_Integer n = luaL_len(L, idx);
  if (n > t->ndim) {
    char b[200];
    luaL_error(L, "index: %I indices for a tensor of shape %s", n,
               lg_shape_str(t, b, sizeof b));
  }
  for (int k = 0; k < n; k++) {
    int64_t size = t->shape[k];
    lua_geti(L, idx, k + 1);
    int e = lua_gettop(L);
    if (lua_type(L, e) == LUA_TNUMBER) {
      lua_Integer i = check_int_key(L, e);
      if (i == 0 || i > size || i < -size)
        luaL_error(L, "index: index %I out of range for size %I of "
                      "dimension %d (indices are 1-based, negative from "
                      "the end)",
                   i, (lua_Integer)size, k + 1);
      r[k].select = true;
      r[k].start = i > 0 ? i - 1 : size + i;
      r[k].len = 1;
      r[k].step = 1;
    } else if (lua_istable(L, e) && !lgL_testtensor(L, e)) {
      lua_Integer m = luaL_len(L, e), v[3] = {1, -1, 1};
      if (m > 3)
        luaL_error(L, "index: a range is {a, b [, step]}, got %I entries "
                      "for dimension %d",
                   m, k + 1);
      for (int j = 0; j < m; j++) {
        lua_geti(L, e, j + 1);
        v[j] = check_int_key(L, lua_gettop(L));
        lua_pop(L, 1);
      }
      if (m == 1)
        v[1] = v[0];
      lua_Integer a = v[0] < 0 ? size + v[0] + 1 : v[0];
      lua_Integer b = v[1] < 0 ? size + v[1] + 1 : v[1];
      if (v[2] < 1)
        luaL_error(L, "index: step %I must be positive (dimension %d)",
                   v[2], k + 1);
      if (size == 0 && m == 0) {
        a = 1;
        b = 0;
      }
      if (a < 1 || a > size + 1 || b < a - 1 || b > size)
        luaL_error(L, "index: range %I..%I out of bounds for size %I of "
                      "dimension %d",
                   v[0], v[1], (lua_Integer)size, k + 1);
      r[k].select = false;
      r[k].start = a - 1;
      r[k].step = v[2];
      r[k].len = b < a ? 0 : (b - a) / v[2] + 1;
    } else {
      luaL_error(L, "index: entry %d of an index table must be a number or "
                    "a range table, got %s",
                 k + 1, luaL_typename(L, e));
    }
    lua_pop(L, 1);
  }
  return (int)n;
}

static int t_index(lua_State *L) {
  int kt = lua_type(L, 2); /* one type test: methods are the usual key */
  if (kt == LUA_TNUMBER) {
    lg_tensor *t = lgL_checktensor(L, 1);
    int64_t i = check_index1(L, t, check_int_key(L, 2));
    if (t->ndim == 1) {
      int64_t o = t->offset + i * t->strides[0];
      if (t->dtype == LG_INT64)
        lua_pushinteger(L, ((int64_t *)t->storage->data)[o]);
      else
        push_element(L, t->dtype, lg_load(t->dtype, t->storage->data, o));
      return 1;
    }
    return lgL_pushresult(L, "index", lg_select(t, 0, i));
  }
  if (kt == LUA_TTABLE) {
    lg_tensor *t = lgL_checktensor(L, 1);
    lg_slice_dim r[LG_MAX_DIMS];
    int n = slice_spec(L, 2, t, r);
    return lgL_pushresult(L, "index", lg_index_view(t, n, r));
  }
  const char *k = lua_tostring(L, 2);
  if (!k)
    return luaL_error(L, "index: tensors are indexed by integers or names");
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  lua_pop(L, 1);
  lg_tensor *t = lgL_checktensor(L, 1);
  if (!strcmp(k, "grad")) {
    if (lg_is_row_sparse(t->grad)) /* dense on demand, a fresh copy */
      return lgL_pushresult(L, "grad", lg_rowsparse_to_dense(t->grad));
    if (t->grad)
      lgL_pushtensor(L, lg_retain(t->grad));
    else
      lua_pushnil(L);
  } else if (!strcmp(k, "requires_grad")) {
    lua_pushboolean(L, t->requires_grad);
  } else if (!strcmp(k, "is_leaf")) {
    lua_pushboolean(L, lg_is_leaf(t));
  } else if (!strcmp(k, "grad_fn")) {
    const char *n = lg_grad_fn_name(t);
    if (n)
      lua_pushstring(L, n);
    else
      lua_pushnil(L);
  } else if (!strcmp(k, "ndim")) {
    lua_pushinteger(L, t->ndim);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int t_newindex(lua_State *L) {
  lg_tensor *t = lgL_checktensor(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER || lua_istable(L, 2)) {
    lg_slice_dim r[LG_MAX_DIMS];
    int n = 1;
    if (lua_istable(L, 2)) {
      n = slice_spec(L, 2, t, r);
    } else {
      r[0].select = true;
      r[0].start = check_index1(L, t, check_int_key(L, 2));
    }
    lg_tensor **box = lgL_newbox(L); /* holds a number's tensor */
    lg_tensor *src;
    if (lua_type(L, 3) == LUA_TNUMBER || lua_isboolean(L, 3)) {
      double v = lua_isboolean(L, 3) ? lua_toboolean(L, 3)
                                     : lua_tonumber(L, 3);
      if (!(*box = lg_scalar(t->dtype, v)))
        return lgL_fail(L, "index");
      if (t->dtype == LG_INT64 && lua_isinteger(L, 3)) /* exact */
        *(int64_t *)lg_data_ptr(*box) = lua_tointeger(L, 3);
      src = *box;
    } else if (!(src = lgL_totensor(L, 3))) {
      return luaL_error(L, "index: can assign a number or a tensor, "
                           "not a %s", luaL_typename(L, 3));
    }
    if (lg_index_assign(t, n, r, src))
      return lgL_fail(L, "index");
    return 0;
  }
  const char *k = luaL_checkstring(L, 2);
  if (!strcmp(k, "grad")) {
    lg_tensor *g = lua_isnil(L, 3) ? NULL : lgL_checktensor(L, 3);
    if (g && (!lg_same_shape(g, t) || g->dtype != t->dtype)) {
      char a[200], b[200];
      return luaL_error(L, "grad: assigned gradient %s %s does not match the "
                           "tensor's %s %s",
                        lg_shape_str(g, a, sizeof a), lg_dtype_name(g->dtype),
                        lg_shape_str(t, b, sizeof b), lg_dtype_name(t->dtype));
    }
    lg_retain(g);
    lg_release(t->grad);
    t->grad = g;
    return 0;
  }
  if (!strcmp(k, "requires_grad")) {
    bool on = lua_toboolean(L, 3);
    if (on && !lg_dtype_is_float(t->dtype))
      return luaL_error(L, "requires_grad: only float tensors can require "
                           "grad");
    if (!on && !lg_is_leaf(t))
      return luaL_error(L, "requires_grad: cannot turn off grad on a "
                           "non-leaf tensor (use detach)");
    lg_set_requires_grad(t, on);
    return 0;
  }
  return luaL_error(L, "tensor has no assignable field '%s'", k);
}

/* t:grad_is_sparse(): whether t.grad is kept row-sparse */
static int t_grad_is_sparse(lua_State *L) {
  lua_pushboolean(L, lg_is_row_sparse(lgL_checktensor(L, 1)->grad));
  return 1;
}

/* t:grad_sparse(): the rows (1-based int64) a row-sparse .grad holds and
 * their values (rows, ...); nil when .grad is dense or absent */
static int t_grad_sparse(lua_State *L) {
  lg_tensor *g = lgL_checktensor(L, 1)->grad;
  if (!lg_is_row_sparse(g)) {
    lua_pushnil(L);
    return 1;
  }
  lgL_push_index_out(L, lg_retain(g->sparse_rows), "grad_sparse");
  lg_tensor **box = lgL_newbox(L);
  if (!(*box = lg_detach(g)))
    return lgL_fail(L, "grad_sparse");
  return 2;
}

static const luaL_Reg tensor_methods[] = {{"grad_is_sparse", t_grad_is_sparse},
                                          {"grad_sparse", t_grad_sparse},
                                          {"shape", t_shape},
                                          {"size", t_size},
                                          {"stride", t_stride},
                                          {"dim", t_dim},
                                          {"numel", t_numel},
                                          {"nelement", t_numel},
                                          {"item", t_item},
                                          {"totable", t_totable},
                                          {"is_contiguous", t_is_contiguous},
                                          {"dtype", t_dtype},
                                          {"storage_id", t_storage_id},
                                          {"get_flat", t_get_flat},
                                          {"set_flat", t_set_flat},
                                          {"close", t_close},
                                          {NULL, NULL}};

static const luaL_Reg module_funcs[] = {{"tensor", l_tensor_new},
                                        {"zeros", l_zeros},
                                        {"ones", l_ones},
                                        {"empty", l_empty},
                                        {"full", l_full},
                                        {"eye", l_eye},
                                        {"range", l_range},
                                        {"linspace", l_linspace},
                                        {"rand", l_rand},
                                        {"randn", l_randn},
                                        {"randint", l_randint},
                                        {"randperm", l_randperm},
                                        {"zeros_like", l_zeros_like},
                                        {"ones_like", l_ones_like},
                                        {"rand_like", l_rand_like},
                                        {"randn_like", l_randn_like},
                                        {"manual_seed", l_manual_seed},
                                        {"Generator", gen_new},
                                        {"rng_state", default_gen_state},
                                        {NULL, NULL}};

static int l_is_tensor(lua_State *L) {
  lua_pushboolean(L, lgL_istensor(L, 1));
  return 1;
}

void lgL_open_tensor(lua_State *L) {
  int module = lua_gettop(L);
  luaL_setfuncs(L, module_funcs, 0);
  lua_pushcfunction(L, l_is_tensor);
  lua_setfield(L, module, "is_tensor");
  /* generator */
  luaL_newmetatable(L, LGL_GENERATOR);
  lua_pushcfunction(L, gen_gc);
  lua_setfield(L, -2, "__gc");
  static const luaL_Reg gen_methods[] = {{"manual_seed", gen_seed},
                                         {"get_state", gen_get_state},
                                         {"set_state", gen_set_state},
                                         {NULL, NULL}};
  luaL_newlib(L, gen_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  /* tensor */
  luaL_newmetatable(L, LGL_TENSOR);
  int mt = lua_gettop(L);
  lua_pushvalue(L, mt);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lgL_tensor_mt_key);
  lua_newtable(L);
  int methods = lua_gettop(L);
  luaL_setfuncs(L, tensor_methods, 0);
  lgL_register_ops(L, methods, module);
  lua_pushvalue(L, methods);
  lua_setfield(L, module, "Tensor");
  lua_pushvalue(L, methods);
  lua_pushcclosure(L, t_index, 1);
  lua_setfield(L, mt, "__index");
  lua_pushcfunction(L, t_newindex);
  lua_setfield(L, mt, "__newindex");
  lua_pushcfunction(L, t_gc);
  lua_setfield(L, mt, "__gc");
  lua_pushcfunction(L, t_gc);
  lua_setfield(L, mt, "__close");
  lua_pushcfunction(L, t_tostring);
  lua_setfield(L, mt, "__tostring");
  lua_pushcfunction(L, t_len);
  lua_setfield(L, mt, "__len");
  lua_settop(L, module);
}
