/*
 * l_optim.c -- lg.optim: optimizers as userdata.
 *
 *   local opt = lg.optim.Adam({w, b}, {lr = 1e-3, betas = {0.9, 0.999}})
 *   local opt = lg.optim.SGD({{params = {w}}, {params = {b}, lr = 0.1}},
 *                            {lr = 0.01, momentum = 0.9})
 *   opt:zero_grad(); loss:backward(); opt:step()
 *   opt:step(function() opt:zero_grad(); local l = f(); l:backward();
 *            return l end)          -- returns the closure's loss
 *   opt.param_groups[1].lr = 0.1    -- read and written through to C
 *   local sd = opt:state_dict(); opt2:load_state_dict(sd)
 *
 * An optimizer box holds the runtime object; user value 1 is a list (one
 * per group) of lists of the parameter tensors as the user passed them, so
 * param_groups[g].params gives back the same userdata; user value 2
 * caches the param_groups proxies.  A proxy (lgrad.ParamGroup) holds its
 * group's index and keeps the optimizer alive in its user value.
 *
 * A closure given to step() runs under lua_pcall from a C callback the
 * runtime calls, so an error inside it never unwinds through the runtime;
 * it is raised again once step() has returned.
 */
#include <math.h>
#include <string.h>

#include "../runtime/optim/optim.h"
#include "binding.h"
#include "l_optim.h"

#define LGL_GROUP "lgrad.ParamGroup"

typedef struct {
  lg_optim *o;
} optim_box;

typedef struct {
  int group; /* 0-based */
} group_box;

static const char *const kind_names[] = {
    "GD",        "SGD",    "Adam",  "AdamW", "RMSprop", "Adagrad",
    "Adadelta",  "Adamax", "NAdam", "RAdam", "Rprop",   "ASGD",
    "Adafactor", "Muon",   "Lion",  "LBFGS", "SparseAdam", NULL};

lg_optim *lgL_checkoptim(lua_State *L, int idx) {
  optim_box *b = luaL_checkudata(L, idx, LGL_OPTIM);
  if (!b->o)
    luaL_error(L, "optimizer is closed");
  return b->o;
}

static int raise_runtime(lua_State *L) {
  return luaL_error(L, "%s", lg_errmsg_based(1));
}

/* the type of the value at idx, with a userdata's __name ("lgrad.Tensor") */
static const char *type_name(lua_State *L, int idx) {
  int t = luaL_getmetafield(L, idx, "__name");
  if (t == LUA_TSTRING) {
    const char *n = lua_tostring(L, -1); /* kept alive by the metatable */
    lua_pop(L, 1);
    return n;
  }
  if (t != LUA_TNIL)
    lua_pop(L, 1);
  return luaL_typename(L, idx);
}

/* ---- options ---- */

/* reads element value at idx for option s, element k, into *v */
static void read_elem(lua_State *L, int idx, const char *on,
                      const lg_hp_spec *s, int k, double *v) {
  char nm[48];
  if (s->n == 1)
    snprintf(nm, sizeof nm, "%s", s->name);
  else
    snprintf(nm, sizeof nm, "%s[%d]", s->name, k + 1);
  int t = lua_type(L, idx);
  if (t == LUA_TNIL) {
    if (!(s->flags & LG_HPF_NILOK))
      luaL_error(L, "%s: %s must not be nil", on, nm);
    *v = NAN;
    return;
  }
  switch (s->type) {
  case LG_HPT_BOOL:
    if (t != LUA_TBOOLEAN)
      luaL_error(L, "%s: %s must be a boolean, not a %s", on, nm,
                 lua_typename(L, t));
    *v = lua_toboolean(L, idx);
    return;
  case LG_HPT_ENUM: {
    const char *str = t == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
    for (int i = 0; str && s->choices[i]; i++)
      if (!strcmp(str, s->choices[i])) {
        *v = i;
        return;
      }
    luaL_error(L, "%s: %s must be %s'%s'%s", on, nm,
               s->flags & LG_HPF_NILOK ? "nil or " : "", s->choices[0],
               s->choices[1] ? " (or another listed choice)" : "");
    return;
  }
  default:
    if (t != LUA_TNUMBER)
      luaL_error(L, "%s: %s must be a number, not a %s", on, nm,
                 lua_typename(L, t));
    *v = lua_tonumber(L, idx);
  }
}

/* reads the value at idx for option s into hp (validated) */
static void read_option(lua_State *L, int idx, lg_optim *o, const lg_hp_spec *s,
                        double *hp) {
  const char *on = lg_optim_name(o);
  idx = lua_absindex(L, idx);
  if (s->n == 1) {
    read_elem(L, idx, on, s, 0, &hp[s->id]);
  } else {
    if (!lua_istable(L, idx))
      luaL_error(L, "%s: %s must be a table of %d numbers", on, s->name, s->n);
    for (int k = 0; k < s->n; k++) {
      lua_geti(L, idx, k + 1);
      read_elem(L, -1, on, s, k, &hp[s->id + k]);
      lua_pop(L, 1);
    }
  }
  for (int k = 0; k < s->n; k++)
    if (lg_optim_check_value(o, s, k, hp[s->id + k]) < 0)
      raise_runtime(L);
}

static void push_elem(lua_State *L, const lg_hp_spec *s, double v) {
  if (isnan(v) && (s->flags & (LG_HPF_NILOK | LG_HPF_REQUIRED)))
    lua_pushnil(L);
  else if (s->type == LG_HPT_BOOL)
    lua_pushboolean(L, v != 0);
  else if (s->type == LG_HPT_ENUM)
    lua_pushstring(L, s->choices[(int)v]);
  else if (s->type == LG_HPT_INT)
    lua_pushinteger(L, (lua_Integer)v);
  else
    lua_pushnumber(L, v);
}

static void push_option(lua_State *L, const lg_hp_spec *s, const double *hp) {
  if (s->n == 1) {
    push_elem(L, s, hp[s->id]);
    return;
  }
  lua_createtable(L, s->n, 0);
  for (int k = 0; k < s->n; k++) {
    push_elem(L, s, hp[s->id + k]);
    lua_seti(L, -2, k + 1);
  }
}

/* ---- construction ---- */

/* the tensors of the list at idx into a scratch array (a userdata left on
 * the stack, so it is collected if anything raises); returns the count */
static int collect_params(lua_State *L, int idx, const char *on,
                          lg_tensor ***out) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx))
    luaL_error(L, "%s: params must be a list of tensors, not a %s", on,
               type_name(L, idx));
  lua_Integer n = luaL_len(L, idx);
  if (n <= 0)
    luaL_error(L, "%s: got an empty parameter list", on);
  if (n > 1 << 24)
    luaL_error(L, "%s: too many parameters", on);
  lg_tensor **arr = lua_newuserdatauv(L, (size_t)n * sizeof *arr, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    lg_tensor *t = lgL_totensor(L, -1);
    if (!t) {
      if (lua_isuserdata(L, -1) && luaL_testudata(L, -1, LGL_TENSOR))
        luaL_error(L, "%s: parameter %d is a closed tensor", on, (int)i);
      luaL_error(L, "%s: parameter %d is a %s, not a tensor", on, (int)i,
                 type_name(L, -1));
    }
    arr[i - 1] = t;
    lua_pop(L, 1);
  }
  *out = arr;
  return (int)n;
}

/* adds the group whose parameter list is at list_idx and whose own
 * options are in the table at group_idx (0: none), over base */
static void add_group(lua_State *L, int box_idx, lg_optim *o, int list_idx,
                      int group_idx, const double *base) {
  const char *on = lg_optim_name(o);
  double hp[LG_HP_COUNT];
  memcpy(hp, base, sizeof hp);
  int top = lua_gettop(L);
  if (group_idx) {
    lua_pushnil(L);
    while (lua_next(L, group_idx)) {
      if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "%s: parameter group keys must be strings", on);
      const char *k = lua_tostring(L, -2);
      const lg_hp_spec *s = lg_optim_find_spec(o, k);
      if (s)
        read_option(L, -1, o, s, hp);
      else if (strcmp(k, "params") && lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "%s: unknown option '%s' in a parameter group", on, k);
      lua_pop(L, 1);
    }
  }
  lg_tensor **arr;
  int n = collect_params(L, list_idx, on, &arr);
  if (lg_optim_add_group(o, n, arr, hp) < 0)
    raise_runtime(L);
  int g = lg_optim_ngroups(o) - 1;
  /* extra numeric keys, as PyTorch's group dict keeps them */
  if (group_idx) {
    lua_pushnil(L);
    while (lua_next(L, group_idx)) {
      const char *k = lua_tostring(L, -2);
      if (strcmp(k, "params") && !lg_optim_find_spec(o, k) &&
          lg_optim_set_extra(o, g, k, lua_tonumber(L, -1)) < 0)
        raise_runtime(L);
      lua_pop(L, 1);
    }
  }
  /* remember the tensors as given */
  lua_getiuservalue(L, box_idx, 1);
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_geti(L, list_idx, i);
    lua_seti(L, -2, i);
  }
  lua_seti(L, -2, g + 1);
  lua_pop(L, 1);
  /* the param_groups cache is stale */
  lua_pushnil(L);
  lua_setiuservalue(L, box_idx, 2);
  lua_settop(L, top);
}

static int optim_new(lua_State *L) {
  const char *name = lua_tostring(L, lua_upvalueindex(1));
  if (!lua_istable(L, 1))
    return luaL_error(L,
                      "%s: params must be a list of tensors or of "
                      "parameter groups, not a %s",
                      name, type_name(L, 1));
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  optim_box *b = lua_newuserdatauv(L, sizeof *b, 2); /* 3 */
  b->o = NULL;
  luaL_setmetatable(L, LGL_OPTIM);
  lua_newtable(L);
  lua_setiuservalue(L, 3, 1);
  if (!(b->o = lg_optim_new(name)))
    return raise_runtime(L);
  lg_optim *o = b->o;
  double base[LG_HP_COUNT];
  lg_optim_defaults(o, base);
  if (lua_istable(L, 2)) {
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      const char *k =
          lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      const lg_hp_spec *s = k ? lg_optim_find_spec(o, k) : NULL;
      if (!s)
        return luaL_error(L, "%s: unknown option '%s'", name,
                          k ? k : luaL_typename(L, -2));
      read_option(L, -1, o, s, base);
      lua_pop(L, 1);
    }
  }
  memcpy(o->defaults, base, sizeof base);
  if (luaL_len(L, 1) == 0)
    return luaL_error(L, "%s: got an empty parameter list", name);
  lua_geti(L, 1, 1); /* 4 */
  if (lgL_totensor(L, 4) || luaL_testudata(L, 4, LGL_TENSOR)) {
    add_group(L, 3, o, 1, 0, base);
  } else if (lua_istable(L, 4)) {
    lua_Integer ng = luaL_len(L, 1);
    for (lua_Integer g = 1; g <= ng; g++) {
      lua_settop(L, 3);
      if (lua_geti(L, 1, g) != LUA_TTABLE) /* 4 */
        return luaL_error(L, "%s: parameter group %d is a %s, not a table",
                          name, (int)g, luaL_typename(L, 4));
      if (lua_getfield(L, 4, "params") != LUA_TTABLE) { /* 5 */
        if (lgL_totensor(L, 5)) {                       /* params = tensor */
          lua_createtable(L, 1, 0);
          lua_rotate(L, 5, 1);
          lua_seti(L, 5, 1);
        } else {
          return luaL_error(L, "%s: parameter group %d has no 'params' list",
                            name, (int)g);
        }
      }
      add_group(L, 3, o, 5, 4, base);
    }
  } else {
    return luaL_error(L,
                      "%s: params[1] is a %s; expected a tensor or a "
                      "parameter group table",
                      name, luaL_typename(L, 4));
  }
  lua_settop(L, 3);
  return 1;
}

static int optim_add_param_group(lua_State *L) {
  lg_optim *o = lgL_checkoptim(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  double base[LG_HP_COUNT];
  memcpy(base, o->defaults, sizeof base); /* the constructor's options */
  if (lua_getfield(L, 2, "params") != LUA_TTABLE) { /* 3 */
    if (!lgL_totensor(L, 3))
      return luaL_error(L, "add_param_group: the group has no 'params' "
                           "list");
    lua_createtable(L, 1, 0);
    lua_rotate(L, 3, 1);
    lua_seti(L, 3, 1);
  }
  add_group(L, 1, o, 3, 2, base);
  return 0;
}

/* ---- step, zero_grad ---- */

typedef struct {
  lua_State *L;
  int fidx;    /* the closure */
  int errslot; /* where a Lua error from it is kept */
  bool lua_failed;
  bool need_loss;
  const char *on;
} closure_ctx;

static int call_closure(void *vctx, double *loss) {
  closure_ctx *c = vctx;
  lua_State *L = c->L;
  lua_pushvalue(L, c->fidx);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    lua_replace(L, c->errslot);
    c->lua_failed = true;
    lg_seterr("%s.step: the closure raised an error", c->on);
    return -1;
  }
  int rc = 0;
  lg_tensor *t;
  if (lua_type(L, -1) == LUA_TNUMBER) {
    *loss = lua_tonumber(L, -1);
  } else if ((t = lgL_totensor(L, -1)) && lg_numel(t) == 1) {
    *loss = lg_item(t);
  } else if (lua_isnil(L, -1) && !c->need_loss) {
    *loss = NAN;
  } else {
    lg_seterr("%s.step: the closure must return the loss (a number or a "
              "one-element tensor), not a %s",
              c->on, luaL_typename(L, -1));
    rc = -1;
  }
  lua_pop(L, 1);
  return rc;
}

static int optim_step(lua_State *L) {
  lg_optim *o = lgL_checkoptim(L, 1);
  bool has = !lua_isnoneornil(L, 2);
  if (has)
    luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  lua_pushnil(L); /* 3: error slot */
  closure_ctx c = {L, 2, 3, false, o->kind->needs_closure, lg_optim_name(o)};
  double loss = NAN;
  int rc = lg_optim_step(o, has ? call_closure : NULL, &c, &loss);
  if (rc < 0) {
    if (c.lua_failed) {
      lua_pushvalue(L, 3);
      return lua_error(L);
    }
    return raise_runtime(L);
  }
  if (!has || isnan(loss))
    return 0;
  lua_pushnumber(L, loss);
  return 1;
}

static int optim_zero_grad(lua_State *L) {
  lg_optim *o = lgL_checkoptim(L, 1);
  bool to_none = lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2);
  if (lg_optim_zero_grad(o, to_none) < 0)
    return raise_runtime(L);
  return 0;
}

/* ---- param_groups ---- */

static int push_group_proxy(lua_State *L, int box_idx, int g) {
  group_box *gb = lua_newuserdatauv(L, sizeof *gb, 1);
  gb->group = g;
  luaL_setmetatable(L, LGL_GROUP);
  lua_pushvalue(L, box_idx);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static void push_param_groups(lua_State *L, int box_idx) {
  lg_optim *o = lgL_checkoptim(L, box_idx);
  box_idx = lua_absindex(L, box_idx);
  if (lua_getiuservalue(L, box_idx, 2) == LUA_TTABLE &&
      luaL_len(L, -1) == lg_optim_ngroups(o))
    return;
  lua_pop(L, 1);
  int ng = lg_optim_ngroups(o);
  lua_createtable(L, ng, 0);
  for (int g = 0; g < ng; g++) {
    push_group_proxy(L, box_idx, g);
    lua_seti(L, -2, g + 1);
  }
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, box_idx, 2);
}

/* the optimizer and group index behind the proxy at 1 */
static lg_optim *check_group(lua_State *L, int *g) {
  group_box *gb = luaL_checkudata(L, 1, LGL_GROUP);
  lua_getiuservalue(L, 1, 1);
  lg_optim *o = lgL_checkoptim(L, -1);
  lua_pop(L, 1);
  if (gb->group >= lg_optim_ngroups(o))
    luaL_error(L, "param_groups: the group no longer exists");
  *g = gb->group;
  return o;
}

static void push_group_params(lua_State *L, int g) {
  lua_getiuservalue(L, 1, 1); /* the optimizer */
  lua_getiuservalue(L, -1, 1);
  lua_geti(L, -1, g + 1);
  lua_Integer n = luaL_len(L, -1);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, -2, i);
    lua_seti(L, -2, i);
  }
  lua_replace(L, -4);
  lua_pop(L, 2);
}

static int group_index(lua_State *L) {
  int g;
  lg_optim *o = check_group(L, &g);
  const char *k = luaL_checkstring(L, 2);
  if (!strcmp(k, "params")) {
    push_group_params(L, g);
    return 1;
  }
  const lg_hp_spec *s = lg_optim_find_spec(o, k);
  if (s) {
    push_option(L, s, o->groups[g].hp);
    return 1;
  }
  double v;
  if (lg_optim_get(o, g, k, &v) == 0)
    lua_pushnumber(L, v);
  else
    lua_pushnil(L);
  return 1;
}

static int group_newindex(lua_State *L) {
  int g;
  lg_optim *o = check_group(L, &g);
  const char *k = luaL_checkstring(L, 2);
  if (!strcmp(k, "params"))
    return luaL_error(L, "param_groups: 'params' cannot be assigned (use "
                         "add_param_group)");
  const lg_hp_spec *s = lg_optim_find_spec(o, k);
  if (s) {
    double hp[LG_HP_COUNT];
    memcpy(hp, o->groups[g].hp, sizeof hp);
    read_option(L, 3, o, s, hp);
    memcpy(o->groups[g].hp, hp, sizeof hp);
    return 0;
  }
  if (lua_isnil(L, 3)) {
    double v;
    lg_optim_remove_extra(o, g, k);
    if (lg_optim_get(o, g, k, &v) == 0) /* "betas1" and the like */
      return luaL_error(L, "param_groups: '%s' cannot be nil", k);
    return 0;
  }
  if (lua_type(L, 3) != LUA_TNUMBER)
    return luaL_error(L, "param_groups: '%s' must be a number, not a %s", k,
                      luaL_typename(L, 3));
  if (lg_optim_set_extra(o, g, k, lua_tonumber(L, 3)) < 0)
    return raise_runtime(L);
  return 0;
}

/* every field of group g of o into a new table (params as indices when
 * base >= 0, else the tensors of the proxy at 1) */
static void push_group_table(lua_State *L, lg_optim *o, int g, int base) {
  lua_newtable(L);
  for (const lg_hp_spec *s = lg_optim_specs(o); s->name; s++) {
    push_option(L, s, o->groups[g].hp);
    lua_setfield(L, -2, s->name);
  }
  for (int i = 0; i < lg_optim_nextras(o, g); i++) {
    const char *k = lg_optim_extra_name(o, g, i);
    double v;
    lg_optim_get(o, g, k, &v);
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
  }
  if (base >= 0) {
    int n = lg_optim_group_count(o, g);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
      lua_pushinteger(L, base + i + 1);
      lua_seti(L, -2, i + 1);
    }
  } else {
    push_group_params(L, g);
  }
  lua_setfield(L, -2, "params");
}

static int group_pairs(lua_State *L) {
  int g;
  lg_optim *o = check_group(L, &g);
  lua_getglobal(L, "next");
  if (!lua_isfunction(L, -1))
    return luaL_error(L, "param_groups: pairs needs the global 'next'");
  push_group_table(L, o, g, -1);
  lua_pushnil(L);
  return 3;
}

static void fmt_elem(char *buf, size_t n, const lg_hp_spec *s, double v) {
  if (isnan(v) && (s->flags & (LG_HPF_NILOK | LG_HPF_REQUIRED)))
    snprintf(buf, n, "nil");
  else if (s->type == LG_HPT_BOOL)
    snprintf(buf, n, "%s", v != 0 ? "true" : "false");
  else if (s->type == LG_HPT_ENUM)
    snprintf(buf, n, "\"%s\"", s->choices[(int)v]);
  else
    snprintf(buf, n, "%.14g", v);
}

/* "lr = 0.1, betas = {0.9, 0.999}, ..., params = 2" into b */
static void add_group_str(luaL_Buffer *b, lg_optim *o, int g) {
  char piece[96];
  const double *hp = o->groups[g].hp;
  for (const lg_hp_spec *s = lg_optim_specs(o); s->name; s++) {
    luaL_addstring(b, s->name);
    luaL_addstring(b, s->n > 1 ? " = {" : " = ");
    for (int k = 0; k < s->n; k++) {
      fmt_elem(piece, sizeof piece, s, hp[s->id + k]);
      luaL_addstring(b, piece);
      if (k + 1 < s->n)
        luaL_addstring(b, ", ");
    }
    luaL_addstring(b, s->n > 1 ? "}, " : ", ");
  }
  for (int i = 0; i < lg_optim_nextras(o, g); i++) {
    const char *k = lg_optim_extra_name(o, g, i);
    double v;
    lg_optim_get(o, g, k, &v);
    snprintf(piece, sizeof piece, "%s = %.14g, ", k, v);
    luaL_addstring(b, piece);
  }
  snprintf(piece, sizeof piece, "params = %d", lg_optim_group_count(o, g));
  luaL_addstring(b, piece);
}

static int group_tostring(lua_State *L) {
  int g;
  lg_optim *o = check_group(L, &g);
  char head[64];
  snprintf(head, sizeof head, "%s param group %d {", lg_optim_name(o), g + 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, head);
  add_group_str(&b, o, g);
  luaL_addstring(&b, "}");
  luaL_pushresult(&b);
  return 1;
}

/* ---- state_dict ---- */

static int optim_state_dict(lua_State *L) {
  lg_optim *o = lgL_checkoptim(L, 1);
  lua_createtable(L, 0, 2);
  lua_newtable(L); /* state */
  for (int i = 0; i < lg_optim_nparams(o); i++) {
    const char *keys[16];
    int nk = lg_optim_state_keys(o, i, keys, 16);
    if (nk == 0)
      continue;
    lua_createtable(L, 0, nk);
    for (int k = 0; k < nk; k++) {
      lg_tensor **box = lgL_newbox(L);
      double num;
      int rc = lg_optim_state_get(o, i, keys[k], &num, box);
      if (rc < 0)
        return raise_runtime(L);
      if (rc == 0) {
        lua_pop(L, 1);
        lua_pushnumber(L, num);
      }
      lua_setfield(L, -2, keys[k]);
    }
    lua_seti(L, -2, i + 1);
  }
  lgL_account(L);
  lua_setfield(L, -2, "state");
  int ng = lg_optim_ngroups(o);
  lua_createtable(L, ng, 0);
  for (int g = 0; g < ng; g++) {
    push_group_table(L, o, g, lg_optim_group_first(o, g));
    lua_seti(L, -2, g + 1);
  }
  lua_setfield(L, -2, "param_groups");
  return 1;
}

static int optim_load_state_dict(lua_State *L) {
  lg_optim *o = lgL_checkoptim(L, 1);
  const char *fn = "load_state_dict";
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (o->busy)
    return luaL_error(L, "%s: called from inside step()", fn);
  if (lua_getfield(L, 2, "param_groups") != LUA_TTABLE) /* 3 */
    return luaL_error(L, "%s: the state dict has no 'param_groups' list", fn);
  if (lua_getfield(L, 2, "state") != LUA_TTABLE) /* 4 */
    return luaL_error(L, "%s: the state dict has no 'state' table", fn);
  int ng = lg_optim_ngroups(o), np = lg_optim_nparams(o);
  if (luaL_len(L, 3) != ng)
    return luaL_error(L,
                      "%s: the state dict has %d parameter groups, the "
                      "optimizer %d",
                      fn, (int)luaL_len(L, 3), ng);
  /* map the saved parameter indices to ours, position by position */
  (void)np;
  lua_pushnil(L);  /* 5: unused */
  lua_newtable(L); /* 6: saved index -> ours */
  double *hps =
      lua_newuserdatauv(L, (size_t)ng * LG_HP_COUNT * sizeof *hps, 0); /* 7 */
  for (int g = 0; g < ng; g++) {
    lua_geti(L, 3, g + 1);
    int gi = lua_gettop(L);
    if (!lua_istable(L, gi))
      return luaL_error(L, "%s: param_groups[%d] is not a table", fn, g + 1);
    if (lua_getfield(L, gi, "params") != LUA_TTABLE)
      return luaL_error(L, "%s: param_groups[%d] has no 'params' list", fn,
                        g + 1);
    int n = lg_optim_group_count(o, g);
    if (luaL_len(L, -1) != n)
      return luaL_error(L,
                        "%s: parameter group %d has %d parameters in the "
                        "state dict and %d in the optimizer",
                        fn, g + 1, (int)luaL_len(L, -1), n);
    for (int i = 0; i < n; i++) {
      lua_geti(L, -1, i + 1);
      if (!lua_isinteger(L, -1))
        return luaL_error(L,
                          "%s: param_groups[%d].params must list "
                          "integers",
                          fn, g + 1);
      lua_pushinteger(L, lg_optim_group_first(o, g) + i);
      lua_settable(L, 6);
    }
    lua_pop(L, 1);
    double *hp = hps + (size_t)g * LG_HP_COUNT;
    memcpy(hp, o->groups[g].hp, LG_HP_COUNT * sizeof *hp);
    for (const lg_hp_spec *s = lg_optim_specs(o); s->name; s++) {
      if (lua_getfield(L, gi, s->name) != LUA_TNIL || (s->flags & LG_HPF_NILOK))
        read_option(L, -1, o, s, hp);
      lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, gi)) {
      if (lua_type(L, -2) != LUA_TSTRING)
        return luaL_error(L, "%s: param_groups[%d] has a non-string key", fn,
                          g + 1);
      const char *k = lua_tostring(L, -2);
      if (strcmp(k, "params") && !lg_optim_find_spec(o, k) &&
          lua_type(L, -1) != LUA_TNUMBER)
        return luaL_error(L, "%s: param_groups[%d].%s must be a number", fn,
                          g + 1, k);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  /* check the state's keys before changing anything */
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    lua_pushvalue(L, -2);
    if (lua_gettable(L, 6) == LUA_TNIL)
      return luaL_error(L,
                        "%s: state has an entry for parameter %s, which "
                        "no group lists",
                        fn, luaL_tolstring(L, -3, NULL));
    lua_pop(L, 1);
    if (!lua_istable(L, -1))
      return luaL_error(L, "%s: each state entry must be a table", fn);
    lua_pop(L, 1);
  }
  /* apply */
  for (int g = 0; g < ng; g++) {
    memcpy(o->groups[g].hp, hps + (size_t)g * LG_HP_COUNT,
           LG_HP_COUNT * sizeof *hps);
    lg_optim_clear_extras(o, g);
    lua_geti(L, 3, g + 1);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      const char *k = lua_tostring(L, -2);
      if (strcmp(k, "params") && !lg_optim_find_spec(o, k) &&
          lg_optim_set_extra(o, g, k, lua_tonumber(L, -1)) < 0)
        return raise_runtime(L);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lg_optim_state_clear(o);
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    lua_pushvalue(L, -2);
    lua_gettable(L, 6);
    int i = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      const char *k =
          lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      int rc = -1;
      lg_tensor *t;
      if (!k)
        lg_seterr("%s: state keys must be strings", fn);
      else if (lua_type(L, -1) == LUA_TNUMBER)
        rc = lg_optim_state_set_number(o, i, k, lua_tonumber(L, -1));
      else if ((t = lgL_totensor(L, -1)))
        rc = lg_optim_state_set_tensor(o, i, k, t);
      else
        lg_seterr("%s: state '%s' of parameter %d is a %s", fn, k, i + 1,
                  luaL_typename(L, -1));
      if (rc < 0) {
        lg_optim_state_clear(o);
        return raise_runtime(L);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* ---- metamethods ---- */

static int optim_gc(lua_State *L) {
  optim_box *b = luaL_checkudata(L, 1, LGL_OPTIM);
  if (b->o && b->o->busy)
    return luaL_error(L, "optimizer: cannot close it inside its step()");
  lg_optim_free(b->o);
  b->o = NULL;
  return 0;
}

static int optim_index(lua_State *L) {
  const char *k = luaL_checkstring(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  lua_pop(L, 1);
  if (!strcmp(k, "param_groups")) {
    push_param_groups(L, 1);
    return 1;
  }
  if (!strcmp(k, "name")) {
    lua_pushstring(L, lg_optim_name(lgL_checkoptim(L, 1)));
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

static int optim_newindex(lua_State *L) {
  return luaL_error(L,
                    "optimizer: cannot assign field '%s' (change "
                    "options through param_groups)",
                    luaL_tolstring(L, 2, NULL));
}

static int optim_tostring(lua_State *L) {
  optim_box *bx = luaL_checkudata(L, 1, LGL_OPTIM);
  if (!bx->o) {
    lua_pushliteral(L, "Optimizer (closed)");
    return 1;
  }
  lg_optim *o = bx->o;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, lg_optim_name(o));
  luaL_addstring(&b, " (\n");
  for (int g = 0; g < lg_optim_ngroups(o); g++) {
    char head[32];
    snprintf(head, sizeof head, "  group %d: ", g + 1);
    luaL_addstring(&b, head);
    add_group_str(&b, o, g);
    luaL_addstring(&b, "\n");
  }
  luaL_addstring(&b, ")");
  luaL_pushresult(&b);
  return 1;
}

static const luaL_Reg optim_methods[] = {
    {"step", optim_step},
    {"zero_grad", optim_zero_grad},
    {"state_dict", optim_state_dict},
    {"load_state_dict", optim_load_state_dict},
    {"add_param_group", optim_add_param_group},
    {"close", optim_gc},
    {NULL, NULL}};

void lgL_open_optim(lua_State *L) {
  if (luaL_newmetatable(L, LGL_OPTIM)) {
    luaL_newlib(L, optim_methods);
    lua_pushcclosure(L, optim_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, optim_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, optim_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, optim_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, optim_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LGL_GROUP)) {
    lua_pushcfunction(L, group_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, group_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, group_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, group_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  for (int i = 0; kind_names[i]; i++) {
    lua_pushstring(L, kind_names[i]);
    lua_pushcclosure(L, optim_new, 1);
    lua_setfield(L, -2, kind_names[i]);
  }
  lua_setfield(L, -2, "optim");
}
