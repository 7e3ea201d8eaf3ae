/*
 * util.c -- helpers shared by the binding files: tensor boxes, argument
 * checks, shapes, dtypes, options, and the byte accounting that lets
 * Lua's collector see memory allocated in C.
 */
#include <math.h>
#include <string.h>

#include "binding.h"
#include "l_anomaly.h"

/* The Tensor metatable is also kept in the registry under this address:
 * a light-userdata key avoids interning the name for every new box. */
char lgL_tensor_mt_key;

static void account(lua_State *L, size_t extra);
/* C bytes behind a box that lg_mem_live() does not count */
#define LGL_BOX_BYTES (sizeof(lg_tensor) + sizeof(lg_storage))

/* The box at idx when it is a tensor userdata, else NULL.  A box carries
 * a 64-bit tag beside its pointer, so recognizing one costs a size and a
 * tag comparison instead of a metatable lookup; the tag is not a valid
 * address, so no other library's userdata of that size carries it. */
static lg_tensor **tobox(lua_State *L, int idx) {
  lgL_box *box = lua_touserdata(L, idx);
  if (!box || lua_rawlen(L, idx) != sizeof *box || box->tag != LGL_BOX_TAG)
    return NULL;
  return &box->tensor;
}

/* a closed box, or a tensor whose memory the host revoked */
static inline bool is_closed(lg_tensor *t) {
  return !t || t->storage->revoked;
}

lg_tensor *lgL_totensor(lua_State *L, int idx) {
  lg_tensor **box = tobox(L, idx);
  if (box && is_closed(*box))
    luaL_error(L, "tensor is closed");
  return box ? *box : NULL;
}

bool lgL_istensor(lua_State *L, int idx) { return tobox(L, idx) != NULL; }

lg_tensor *lgL_testtensor(lua_State *L, int idx) {
  lg_tensor **box = tobox(L, idx);
  return box && !is_closed(*box) ? *box : NULL;
}

const char *lgL_fname(lua_State *L) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name)
    return ar.name;
  return "lgrad";
}

lg_tensor *lgL_checktensor(lua_State *L, int idx) {
  lg_tensor **box = tobox(L, idx);
  if (!box)
    luaL_typeerror(L, idx, "tensor");
  if (is_closed(*box))
    luaL_error(L, "tensor is closed");
  return *box;
}

lg_tensor **lgL_newbox(lua_State *L) {
  account(L, LGL_BOX_BYTES); /* every result passes here */
  lgL_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->tensor = NULL;
  box->tag = LGL_BOX_TAG;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lgL_tensor_mt_key);
  lua_setmetatable(L, -2);
  return &box->tensor;
}

int lgL_fail(lua_State *L, const char *fname) {
  const char *msg = lg_errmsg_based(1);
  size_t n = strlen(fname);
  /* runtime messages usually start with the function's name already */
  if (!strncmp(msg, fname, n) && msg[n] == ':')
    return luaL_error(L, "%s", msg);
  /* "add_" reporting the runtime's "add: ..." */
  if (n > 1 && fname[n - 1] == '_' && !strncmp(msg, fname, n - 1) &&
      msg[n - 1] == ':')
    return luaL_error(L, "%s%s", fname, msg + n - 1);
  return luaL_error(L, "%s: %s", fname, msg);
}

void lgL_pushtensor(lua_State *L, lg_tensor *t) {
  lg_tensor **box = lgL_newbox(L);
  *box = t;
}

int lgL_pushresult(lua_State *L, const char *fname, lg_tensor *t) {
  if (!t)
    return lgL_fail(L, fname);
  lgL_pushtensor(L, t);
  LGL_ANOMALY(L, fname, -1);
  return 1;
}

/* Lua's collector paces itself by the bytes Lua allocates, and a tensor
 * box is a few dozen of them whatever the tensor holds.  The C side's
 * growth is handed to it as debt (lua_gc LUA_GCSTEP with the kilobytes
 * allocated since the last step), so a cycle (in generational mode, a
 * young collection) comes after a share of C bytes as it would after the
 * same share of Lua bytes, and short-lived tensors go as fast as they
 * come.  Each box adds the bytes of its header and storage record, which
 * lg_mem_live() does not count.  Boxes that lived long enough to turn
 * old in generational mode wait for a major collection, which Lua starts
 * by its own bytes only: a full collection runs when C bytes double from
 * what the last one left (and pass LGL_FULL_MIN).  The cost per call is
 * a load, two additions and a comparison. */
#define LGL_STEP_BYTES ((size_t)32 << 10)
#define LGL_STEP_MAX_KB (1 << 30)
#define LGL_FULL_MIN ((size_t)32 << 20)

static __thread size_t acct_live; /* lg_mem_live() when last seen */
static __thread size_t acct_debt; /* bytes not yet handed to Lua */
static __thread size_t acct_full = LGL_FULL_MIN; /* next full collection */

static void account(lua_State *L, size_t extra) {
  size_t live = lg_mem_live();
  size_t debt = acct_debt + extra;
  if (live > acct_live)
    debt += live - acct_live;
  acct_live = live;
  if (debt < LGL_STEP_BYTES) {
    acct_debt = debt;
    return;
  }
  size_t kb = debt >> 10;
  acct_debt = debt & 1023;
  /* a step would run even after collectgarbage("stop") */
  if (!lua_gc(L, LUA_GCISRUNNING))
    return;
  if (live < acct_full) {
    lua_gc(L, LUA_GCSTEP, (int)(kb < LGL_STEP_MAX_KB ? kb : LGL_STEP_MAX_KB));
    return;
  }
  lua_gc(L, LUA_GCCOLLECT);
  acct_live = lg_mem_live();
  acct_full = acct_live > LGL_FULL_MIN / 2 ? acct_live * 2 : LGL_FULL_MIN;
}

void lgL_account(lua_State *L) { account(L, 0); }

lg_tensor *lgL_checktensorlike(lua_State *L, int idx, lg_dtype like) {
  lg_tensor *t = lgL_totensor(L, idx);
  if (t)
    return t;
  if (lua_isnumber(L, idx) || lua_isboolean(L, idx)) {
    double v = lua_isboolean(L, idx) ? lua_toboolean(L, idx)
                                     : lua_tonumber(L, idx);
    lg_dtype d = like;
    if (lua_isinteger(L, idx) && like == LG_BOOL)
      d = LG_INT64;
    if (!lua_isinteger(L, idx) && !lua_isboolean(L, idx) &&
        !lg_dtype_is_float(like))
      d = lg_default_dtype();
    lg_tensor **box = lgL_newbox(L);
    if (!(*box = lg_scalar(d, v)))
      lgL_fail(L, "tensor");
    lua_replace(L, idx);
    return *box;
  }
  luaL_typeerror(L, idx, "tensor or number");
  return NULL;
}

int lgL_checkdim(lua_State *L, int idx, int ndim, const char *fname) {
  lua_Integer d = luaL_checkinteger(L, idx);
  int n = ndim ? ndim : 1;
  if (d == 0 || d > n || d < -n)
    return luaL_error(L, "%s: dimension %d out of range for a %d-d tensor "
                         "(dimensions are 1..%d or negative)",
                      fname, (int)d, ndim, n);
  return d > 0 ? (int)d - 1 : (int)(d + n);
}

int lgL_optdim(lua_State *L, int idx, int ndim, int def, const char *fname) {
  if (lua_isnoneornil(L, idx))
    return def;
  return lgL_checkdim(L, idx, ndim, fname);
}

static int64_t checksize(lua_State *L, int idx, const char *fname) {
  int isnum;
  lua_Integer v = lua_tointegerx(L, idx, &isnum);
  if (!isnum)
    luaL_error(L, "%s: sizes must be integers", fname);
  if (v < 0)
    luaL_error(L, "%s: negative size %I", fname, v);
  return v;
}

int lgL_checkshape(lua_State *L, int idx, int64_t *shape, const char *fname) {
  int n = 0;
  if (lua_istable(L, idx) && !lgL_totensor(L, idx)) {
    lua_Integer len = luaL_len(L, idx);
    if (len > LG_MAX_DIMS)
      luaL_error(L, "%s: at most %d dimensions", fname, LG_MAX_DIMS);
    for (int i = 1; i <= len; i++) {
      lua_geti(L, idx, i);
      shape[n++] = checksize(L, -1, fname);
      lua_pop(L, 1);
    }
  } else {
    int top = lua_gettop(L);
    if (idx <= top && lua_type(L, idx) != LUA_TNUMBER &&
        !lua_isnil(L, idx))
      luaL_error(L, "%s: sizes must be integers or one table, got %s", fname,
                 luaL_typename(L, idx));
    int i = idx;
    for (; i <= top && lua_type(L, i) == LUA_TNUMBER; i++) {
      if (n >= LG_MAX_DIMS)
        luaL_error(L, "%s: at most %d dimensions", fname, LG_MAX_DIMS);
      shape[n++] = checksize(L, i, fname);
    }
    /* after the sizes only an options table (or nil) may follow */
    if (i > idx && i <= top && !lua_istable(L, i) && !lua_isnil(L, i))
      luaL_error(L, "%s: sizes must be integers, got %s", fname,
                 luaL_typename(L, i));
  }
  int64_t total = 1;
  for (int i = 0; i < n; i++) {
    if (shape[i] && total > ((int64_t)1 << 40) / shape[i])
      luaL_error(L, "%s: size too large", fname);
    total *= shape[i];
  }
  return n;
}

lg_dtype lgL_checkdtype(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  lg_dtype d;
  if (lg_dtype_from_name(name, &d))
    luaL_argerror(L, idx, lg_errmsg_based(1));
  return d;
}

double lgL_optnumberfield(lua_State *L, int idx, const char *k, double def) {
  if (!idx || !lua_istable(L, idx))
    return def;
  lua_getfield(L, idx, k);
  double v = def;
  if (!lua_isnil(L, -1)) {
    if (!lua_isnumber(L, -1))
      luaL_error(L, "option '%s' must be a number", k);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

int lgL_optbooleanfield(lua_State *L, int idx, const char *k, int def) {
  if (!idx || !lua_istable(L, idx))
    return def;
  lua_getfield(L, idx, k);
  int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

#define LGL_GENERATOR "lgrad.Generator"

lg_generator *lgL_optgenerator(lua_State *L, int opts_idx) {
  if (!opts_idx || !lua_istable(L, opts_idx))
    return NULL;
  lua_getfield(L, opts_idx, "generator");
  lg_generator *g = NULL;
  if (!lua_isnil(L, -1)) {
    lg_generator **box = luaL_testudata(L, -1, LGL_GENERATOR);
    if (!box || !*box)
      luaL_error(L, "%s: option 'generator' must be an lg.Generator",
                 lgL_fname(L));
    g = *box;
  }
  lua_pop(L, 1);
  return g;
}
