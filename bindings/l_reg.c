/*
 * l_reg.c -- lg.reg: regularizers and gradient clipping.
 *
 *   local r = lg.reg.L1(1e-3)        -- or L2(lambda), ElasticNet(l1, l2)
 *   local loss = data_loss + r:penalty(params)   -- differentiable
 *   r:apply(params)                  -- or: grad += dR/dtheta in place
 *   r:prox(params, lr)               -- or: proximal step after opt:step()
 *   lg.reg.MaxNorm(3):apply(params)  -- after opt:step()
 *   local norm = lg.reg.clip_grad_norm(params, 1.0)
 *
 * R(theta) = l1 * sum |theta| + l2 / 2 * sum theta^2 (see runtime/reg.h):
 * L2(lambda) has gradient lambda * theta, PyTorch's weight_decay = lambda.
 * `params` is a tensor, a list of tensors, or anything with a
 * :parameters() method returning such a list (a module).
 */
#include <math.h>
#include <string.h>

#include "../runtime/optim/reg.h"
#include "binding.h"

#define LGL_REG "lgrad.Regularizer"

typedef enum { REG_L1, REG_L2, REG_ELASTIC, REG_MAXNORM } reg_kind;

static const char *const reg_names[] = {"L1", "L2", "ElasticNet", "MaxNorm"};

typedef struct {
  reg_kind kind;
  double l1, l2; /* coefficients of R */
  double c;      /* MaxNorm's bound */
  int dim;       /* MaxNorm's dim, 0-based (C) */
} reg_box;

static reg_box *check_reg(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, LGL_REG);
}

/* the tensors of the params argument at idx, as a userdata array pushed on
 * the stack (the list that holds the tensors stays referenced below it) */
static lg_tensor **check_params(lua_State *L, int idx, const char *fname,
                                int *n) {
  idx = lua_absindex(L, idx);
  lg_tensor *t = lgL_totensor(L, idx);
  if (t) {
    lg_tensor **v = lua_newuserdatauv(L, sizeof(lg_tensor *), 0);
    v[0] = t;
    *n = 1;
    return v;
  }
  if (lua_type(L, idx) != LUA_TTABLE && lua_type(L, idx) != LUA_TUSERDATA)
    luaL_error(L,
               "%s: params must be a tensor, a list of tensors or a "
               "module, got %s",
               fname, luaL_typename(L, idx));
  if (lua_getfield(L, idx, "parameters") == LUA_TFUNCTION) {
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) != LUA_TTABLE)
      luaL_error(L, "%s: params:parameters() did not return a list", fname);
    lua_replace(L, idx); /* keep the list alive in the argument's slot */
  } else {
    lua_pop(L, 1);
  }
  int m = (int)luaL_len(L, idx);
  lg_tensor **v = lua_newuserdatauv(L, sizeof(lg_tensor *) * (m ? m : 1), 0);
  for (int i = 0; i < m; i++) {
    lua_geti(L, idx, i + 1);
    v[i] = lgL_totensor(L, -1);
    if (!v[i])
      luaL_error(L, "%s: params[%d] is %s, not a tensor", fname, i + 1,
                 luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  *n = m;
  return v;
}

static double check_coef(lua_State *L, int idx, const char *fname,
                         const char *what) {
  double v = luaL_checknumber(L, idx);
  if (!(v >= 0) || isinf(v))
    luaL_error(L, "%s: %s must be a finite number >= 0, got %f", fname, what,
               v);
  return v;
}

static reg_box *new_reg(lua_State *L, reg_kind kind) {
  reg_box *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->kind = kind;
  luaL_setmetatable(L, LGL_REG);
  return r;
}

static int reg_l1(lua_State *L) {
  double l = check_coef(L, 1, "reg.L1", "lambda");
  new_reg(L, REG_L1)->l1 = l;
  return 1;
}

static int reg_l2(lua_State *L) {
  double l = check_coef(L, 1, "reg.L2", "lambda");
  new_reg(L, REG_L2)->l2 = l;
  return 1;
}

static int reg_elastic(lua_State *L) {
  double a = check_coef(L, 1, "reg.ElasticNet", "l1");
  double b = check_coef(L, 2, "reg.ElasticNet", "l2");
  reg_box *r = new_reg(L, REG_ELASTIC);
  r->l1 = a;
  r->l2 = b;
  return 1;
}

/* MaxNorm(c [, dim = 1]) */
static int reg_maxnorm(lua_State *L) {
  double c = check_coef(L, 1, "reg.MaxNorm", "the bound c");
  lua_Integer dim = luaL_optinteger(L, 2, 1);
  if (dim == 0 || dim > LG_MAX_DIMS || dim < -LG_MAX_DIMS)
    luaL_error(L, "reg.MaxNorm: dim must be 1..%d or negative, got %I",
               LG_MAX_DIMS, dim);
  reg_box *r = new_reg(L, REG_MAXNORM);
  r->c = c;
  r->dim = dim > 0 ? (int)dim - 1 : (int)dim;
  return 1;
}

/* raises "fname: reason", dropping the runtime's own "name: " prefix */
static int fail_as(lua_State *L, const char *fname) {
  const char *msg = lg_errmsg_based(1);
  static const char *const own[] = {
      "penalty: ", "apply: ", "prox: ", "MaxNorm: ", NULL};
  for (int i = 0; own[i]; i++)
    if (strncmp(msg, own[i], strlen(own[i])) == 0)
      msg += strlen(own[i]);
  return luaL_error(L, "%s: %s", fname, msg);
}

/* what each method starts with: the regularizer at 1, its name for
 * messages ("reg.L1:apply") in fname, the parameter list at 2; a method
 * MaxNorm lacks gives its refusal first */
static lg_tensor **method_args(lua_State *L, const char *method,
                               const char *maxnorm_refusal, char fname[48],
                               reg_box **r, int *n) {
  *r = check_reg(L, 1);
  snprintf(fname, 48, "reg.%s:%s", reg_names[(*r)->kind], method);
  if ((*r)->kind == REG_MAXNORM && maxnorm_refusal)
    luaL_error(L, "%s: %s", fname, maxnorm_refusal);
  return check_params(L, 2, fname, n);
}

/* r:penalty(params): the differentiable 0-d tensor lambda * R(params) */
static int reg_penalty(lua_State *L) {
  reg_box *r;
  char fname[48];
  int n;
  lg_tensor **ps = method_args(L, "penalty",
                               "MaxNorm is a constraint without a penalty; "
                               "call apply after the optimizer's step",
                               fname, &r, &n);
  lg_tensor **box = lgL_newbox(L);
  *box = lg_reg_penalty(r->l1, r->l2, n, ps);
  if (!*box)
    return fail_as(L, fname);
  lgL_account(L);
  return 1;
}

/* r:apply(params): adds the (sub)gradient of the penalty to each .grad;
 * MaxNorm projects the parameters instead */
static int reg_apply(lua_State *L) {
  reg_box *r;
  char fname[48];
  int n;
  lg_tensor **ps = method_args(L, "apply", NULL, fname, &r, &n);
  int rc = r->kind == REG_MAXNORM ? lg_reg_max_norm(r->c, r->dim, n, ps)
                                  : lg_reg_apply(r->l1, r->l2, n, ps);
  if (rc < 0)
    return fail_as(L, fname);
  lgL_account(L);
  return 0;
}

/* r:prox(params, lr): the proximal step of lr * R, applied after a plain
 * gradient step (ISTA); L1 sets small weights to exactly zero */
static int reg_prox(lua_State *L) {
  reg_box *r;
  char fname[48];
  int n;
  lg_tensor **ps = method_args(L, "prox",
                               "MaxNorm has no proximal step; call apply",
                               fname, &r, &n);
  double lr = check_coef(L, 3, fname, "lr");
  if (lg_reg_prox(lr * r->l1, lr * r->l2, n, ps) < 0)
    return fail_as(L, fname);
  return 0;
}

static int reg_index(lua_State *L) {
  reg_box *r = check_reg(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k) {
    if (strcmp(k, "kind") == 0) {
      lua_pushstring(L, reg_names[r->kind]);
      return 1;
    }
    if (r->kind != REG_MAXNORM &&
        (strcmp(k, "l1") == 0 || strcmp(k, "l2") == 0)) {
      lua_pushnumber(L, k[1] == '1' ? r->l1 : r->l2);
      return 1;
    }
    if (strcmp(k, "lambda") == 0 && (r->kind == REG_L1 || r->kind == REG_L2)) {
      lua_pushnumber(L, r->kind == REG_L1 ? r->l1 : r->l2);
      return 1;
    }
    if (r->kind == REG_MAXNORM && strcmp(k, "c") == 0) {
      lua_pushnumber(L, r->c);
      return 1;
    }
    if (r->kind == REG_MAXNORM && strcmp(k, "dim") == 0) {
      lua_pushinteger(L, r->dim >= 0 ? r->dim + 1 : r->dim);
      return 1;
    }
  }
  return lgL_method(L);
}

static int reg_tostring(lua_State *L) {
  reg_box *r = check_reg(L, 1);
  switch (r->kind) {
  case REG_L1:
    lua_pushfstring(L, "lgrad.reg.L1(%f)", r->l1);
    break;
  case REG_L2:
    lua_pushfstring(L, "lgrad.reg.L2(%f)", r->l2);
    break;
  case REG_ELASTIC:
    lua_pushfstring(L, "lgrad.reg.ElasticNet(%f, %f)", r->l1, r->l2);
    break;
  default:
    lua_pushfstring(L, "lgrad.reg.MaxNorm(%f, dim = %d)", r->c,
                    r->dim >= 0 ? r->dim + 1 : r->dim);
    break;
  }
  return 1;
}

/* clip_grad_norm(params, max_norm [, p [, {error_if_nonfinite}]]) */
static int clip_grad_norm(lua_State *L) {
  const char *fname = "reg.clip_grad_norm";
  double max_norm = luaL_checknumber(L, 2);
  if (!(max_norm >= 0))
    luaL_error(L, "%s: max_norm must be >= 0, got %f", fname, max_norm);
  double p = 2;
  if (lua_type(L, 3) == LUA_TSTRING) {
    if (strcmp(lua_tostring(L, 3), "inf") != 0)
      return luaL_argerror(L, 3, "p must be a number or \"inf\"");
    p = INFINITY;
  } else if (!lua_isnoneornil(L, 3)) {
    p = luaL_checknumber(L, 3);
  }
  bool err = false;
  if (lua_type(L, 4) == LUA_TTABLE)
    err = lgL_optbooleanfield(L, 4, "error_if_nonfinite", 0);
  else if (!lua_isnoneornil(L, 4))
    luaL_typeerror(L, 4, "table of options");
  int n;
  lg_tensor **ps = check_params(L, 1, fname, &n);
  double total;
  if (lg_clip_grad_norm(n, ps, max_norm, p, err, &total) < 0)
    return luaL_error(L, "reg.%s", lg_errmsg_based(1));
  lua_pushnumber(L, total);
  return 1;
}

static int clip_grad_value(lua_State *L) {
  const char *fname = "reg.clip_grad_value";
  double v = luaL_checknumber(L, 2);
  int n;
  lg_tensor **ps = check_params(L, 1, fname, &n);
  if (lg_clip_grad_value(n, ps, v) < 0)
    return luaL_error(L, "reg.%s", lg_errmsg_based(1));
  return 0;
}

static const luaL_Reg reg_methods[] = {{"penalty", reg_penalty},
                                       {"apply", reg_apply},
                                       {"prox", reg_prox},
                                       {NULL, NULL}};

static const luaL_Reg reg_meta[] = {
    {"__index", reg_index}, {"__tostring", reg_tostring}, {NULL, NULL}};

static const luaL_Reg reg_funcs[] = {{"L1", reg_l1},
                                     {"L2", reg_l2},
                                     {"ElasticNet", reg_elastic},
                                     {"MaxNorm", reg_maxnorm},
                                     {"clip_grad_norm", clip_grad_norm},
                                     {"clip_grad_value", clip_grad_value},
                                     {NULL, NULL}};

void lgL_open_reg(lua_State *L) {
  if (luaL_newmetatable(L, LGL_REG)) {
    luaL_setfuncs(L, reg_meta, 0);
    luaL_newlib(L, reg_methods);
    lua_setfield(L, -2, "methods");
  }
  lua_pop(L, 1);
  luaL_newlib(L, reg_funcs);
  lua_setfield(L, -2, "reg");
}
