/*
 * l_io.c -- lg.save, lg.load and the readers behind lg.data (lg._io).
 *
 * lg.save(path, value) stores a tensor, or a nested table of tensors,
 * numbers, strings and booleans, as safetensors: each tensor under its
 * dotted path ("layers.1.weight"), every other leaf as a string in
 * "__metadata__" under its dotted path, and one more metadata entry,
 * "__lgrad__", that tells lg.load how to rebuild the value exactly:
 *
 *   {"format":"lgrad","version":1,
 *    "tables":[[], ["layers"], ["layers",1]],       -- in creation order
 *    "leaves":[[["layers",1,"weight"],"t","layers.1.weight"],
 *              [["epoch"],"i","epoch"]]}
 *
 * A path is the list of keys (strings, or integers for integer keys);
 * kinds are t (tensor), i (integer), f (float), b (boolean), s (string)
 * and x (a string that is not UTF-8, stored in base64).  Dotted names
 * only label the entries for other readers: a key that holds a dot, or
 * two paths that dot to the same name (deduplicated with "~2"), come
 * back as they were.  A file without "__lgrad__" loads as a flat table
 * of its tensors.
 *
 * Scratch memory of the C side lives in userdata (boxes with __gc), so a
 * Lua error at any point leaks nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/io/io.h"
#include "binding.h"

#define STFILE_MT "lgrad.io.stfile"
#define JSONDOC_MT "lgrad.io.jsondoc"
#define CSVRES_MT "lgrad.io.csvresult"
#define SAVE_MAX_DEPTH 100
#define STRUCT_KEY "__lgrad__"

/* ---- boxes ---- */

static int stfile_gc(lua_State *L) {
  lg_st_file *f = luaL_checkudata(L, 1, STFILE_MT);
  lg_st_file_clear(f);
  return 0;
}

static int jsondoc_gc(lua_State *L) {
  lg_json_doc **d = luaL_checkudata(L, 1, JSONDOC_MT);
  lg_json_free(*d);
  *d = NULL;
  return 0;
}

static int csvres_gc(lua_State *L) {
  lg_csv_result *r = luaL_checkudata(L, 1, CSVRES_MT);
  lg_csv_result_clear(r);
  return 0;
}

static void *newbox(lua_State *L, size_t size, const char *mt,
                    lua_CFunction gc) {
  void *p = lua_newuserdatauv(L, size, 0);
  memset(p, 0, size);
  if (luaL_newmetatable(L, mt)) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return p;
}

static const char *checkpath(lua_State *L, int idx, const char *fname) {
  size_t n;
  const char *p = luaL_checklstring(L, idx, &n);
  if (strlen(p) != n)
    luaL_argerror(L, idx, "path contains a zero byte");
  if (n == 0)
    luaL_error(L, "%s: empty path", fname);
  return p;
}

/* the box of the tensor userdata at idx (possibly closed), or NULL */
static lg_tensor **tensor_box(lua_State *L, int idx) {
  lgL_box *box = lua_touserdata(L, idx);
  if (!box || lua_rawlen(L, idx) != sizeof *box || box->tag != LGL_BOX_TAG)
    return NULL;
  return &box->tensor;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* ---- base64 for strings that are not UTF-8 ---- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void push_base64(lua_State *L, const unsigned char *s, size_t n) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)s[i + 1] << 8;
    if (i + 2 < n)
      v |= s[i + 2];
    luaL_addchar(&b, b64[v >> 18]);
    luaL_addchar(&b, b64[(v >> 12) & 63]);
    luaL_addchar(&b, i + 1 < n ? b64[(v >> 6) & 63] : '=');
    luaL_addchar(&b, i + 2 < n ? b64[v & 63] : '=');
  }
  luaL_pushresult(&b);
}

/* pushes the decoded string, or returns 0 on bad input */
static int push_unbase64(lua_State *L, const char *s, size_t n) {
  if (n % 4)
    return 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      char c = s[i + k];
      const char *q = c ? strchr(b64, c) : NULL;
      if (c == '=' && i + 4 == n && k >= 2) {
        pad++;
        v <<= 6;
        continue;
      }
      if (!q || pad) {
        luaL_pushresult(&b);
        lua_pop(L, 1);
        return 0;
      }
      v = v << 6 | (uint32_t)(q - b64);
    }
    luaL_addchar(&b, (char)(v >> 16));
    if (pad < 2)
      luaL_addchar(&b, (char)(v >> 8));
    if (pad < 1)
      luaL_addchar(&b, (char)v);
  }
  luaL_pushresult(&b);
  return 1;
}

/* ---- saving ---- */

/* stack slots of the walk's accumulators */
typedef struct {
  int names;   /* list of entry names (tensors first, then metadata) */
  int tensors; /* list of tensors, parallel to the first names */
  int mkeys;   /* metadata keys and values */
  int mvals;
  int used;   /* set of names taken */
  int tables; /* list of JSON texts of table paths */
  int leaves; /* list of JSON texts of leaves */
  int path;   /* the current path (list of keys) */
  int seen;   /* tables on the current path */
  int depth;
} save_state;

static void append(lua_State *L, int list) {
  lua_rawseti(L, list, (lua_Integer)luaL_len(L, list) + 1);
}

/* pushes s as a JSON string literal */
static void push_json_string(lua_State *L, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      luaL_addchar(&b, '\\');
      luaL_addchar(&b, (char)c);
    } else if (c < 0x20) {
      luaL_addstring(&b, "\\u00");
      luaL_addchar(&b, hex[c >> 4]);
      luaL_addchar(&b, hex[c & 15]);
    } else {
      luaL_addchar(&b, (char)c);
    }
  }
  luaL_addchar(&b, '"');
  luaL_pushresult(&b);
}

/* pushes the current path in dotted form, for names and messages */
static void push_dotted(lua_State *L, const save_state *st) {
  lua_Integer n = luaL_len(L, st->path);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1)
      luaL_addchar(&b, '.');
    lua_rawgeti(L, st->path, i);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
      lua_remove(L, -2);
    }
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

/* pushes the current path as a JSON array */
static void push_path_json(lua_State *L, const save_state *st) {
  lua_Integer n = luaL_len(L, st->path);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '[');
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1)
      luaL_addchar(&b, ',');
    lua_rawgeti(L, st->path, i);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
    } else {
      size_t kl;
      const char *k = lua_tolstring(L, -1, &kl);
      push_json_string(L, k, kl);
    }
    lua_remove(L, -2);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, ']');
  luaL_pushresult(&b);
}

static int where_error(lua_State *L, const save_state *st, const char *what) {
  push_dotted(L, st);
  const char *p = lua_tostring(L, -1);
  return luaL_error(L, "lg.save: %s at '%s'", what, *p ? p : "(root)");
}

/* pushes a fresh entry name for the current path and marks it used */
static void push_entry_name(lua_State *L, save_state *st, bool tensor) {
  if (luaL_len(L, st->path) == 0)
    lua_pushstring(L, tensor ? "tensor" : "value");
  else
    push_dotted(L, st);
  int base = lua_gettop(L);
  lua_pushvalue(L, base);
  for (int k = 2;; k++) {
    const char *name = lua_tostring(L, -1);
    bool reserved = !strcmp(name, "__metadata__") || !strcmp(name, STRUCT_KEY);
    lua_pushvalue(L, -1);
    lua_rawget(L, st->used);
    bool taken = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!taken && !reserved)
      break;
    lua_pop(L, 1);
    lua_pushfstring(L, "%s~%d", lua_tostring(L, base), k);
  }
  lua_remove(L, base);
  lua_pushvalue(L, -1);
  lua_pushboolean(L, 1);
  lua_rawset(L, st->used);
}

typedef struct {
  int isint;
  lua_Integer i;
  const char *s;
  size_t n;
} keyref;

static int cmp_keys(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  if (x->isint != y->isint)
    return x->isint ? -1 : 1;
  if (x->isint)
    return (x->i > y->i) - (x->i < y->i);
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

static void add_leaf(lua_State *L, save_state *st, const char *kind,
                     int name_idx) {
  luaL_Buffer b;
  push_path_json(L, st);
  size_t nl;
  const char *name = lua_tolstring(L, name_idx, &nl);
  push_json_string(L, name, nl);
  /* stack: path json, name json */
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '[');
  lua_pushvalue(L, -3);
  luaL_addvalue(&b);
  luaL_addstring(&b, ",\"");
  luaL_addstring(&b, kind);
  luaL_addstring(&b, "\",");
  lua_pushvalue(L, -2);
  luaL_addvalue(&b);
  luaL_addchar(&b, ']');
  luaL_pushresult(&b);
  append(L, st->leaves);
  lua_pop(L, 2);
}

static void save_value(lua_State *L, save_state *st, int idx);

static void save_table(lua_State *L, save_state *st, int idx) {
  if (st->depth >= SAVE_MAX_DEPTH)
    where_error(L, st, "tables nested too deep");
  lua_pushvalue(L, idx);
  lua_rawget(L, st->seen);
  if (!lua_isnil(L, -1))
    where_error(L, st, "a table contains itself");
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, st->seen);
  push_path_json(L, st);
  append(L, st->tables);
  /* collect and sort the keys (integers first, then strings) */
  size_t nkeys = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    nkeys++;
  }
  keyref *keys = lua_newuserdatauv(L, (nkeys ? nkeys : 1) * sizeof *keys, 0);
  int keys_idx = lua_gettop(L);
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    keyref *r = &keys[k++];
    memset(r, 0, sizeof *r);
    if (lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1)) {
      r->isint = 1;
      r->i = lua_tointeger(L, -1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      r->s = lua_tolstring(L, -1, &r->n); /* the table keeps it alive */
      if (!lg_utf8_valid(r->s, r->n))
        where_error(L, st, "a key is not valid UTF-8");
    } else {
      lua_pop(L, 1);
      where_error(L, st, "keys must be strings or integers");
    }
  }
  qsort(keys, nkeys, sizeof *keys, cmp_keys);
  st->depth++;
  for (size_t i = 0; i < nkeys; i++) {
    keyref *r = &((keyref *)lua_touserdata(L, keys_idx))[i];
    if (r->isint)
      lua_pushinteger(L, r->i);
    else
      lua_pushlstring(L, r->s, r->n);
    lua_pushvalue(L, -1);
    append(L, st->path);
    lua_rawget(L, idx);
    save_value(L, st, lua_gettop(L));
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawseti(L, st->path, (lua_Integer)luaL_len(L, st->path));
  }
  st->depth--;
  lua_pop(L, 1); /* keys */
  lua_pushvalue(L, idx);
  lua_pushnil(L);
  lua_rawset(L, st->seen);
}

static void save_value(lua_State *L, save_state *st, int idx) {
  /* each level of nesting holds two slots and uses a few more */
  luaL_checkstack(L, LUA_MINSTACK, "lg.save: tables nested too deep");
  int top = lua_gettop(L);
  switch (lua_type(L, idx)) {
  case LUA_TTABLE:
    save_table(L, st, idx);
    break;
  case LUA_TUSERDATA: {
    lg_tensor **box = tensor_box(L, idx);
    if (!box)
      where_error(L, st, "cannot save a userdata that is not a tensor");
    if (!*box || (*box)->storage->revoked)
      where_error(L, st, "tensor is closed");
    push_entry_name(L, st, true);
    lua_pushvalue(L, -1);
    append(L, st->names);
    lua_pushvalue(L, idx);
    append(L, st->tensors);
    add_leaf(L, st, "t", lua_gettop(L));
    break;
  }
  case LUA_TNUMBER:
  case LUA_TBOOLEAN:
  case LUA_TSTRING: {
    const char *kind;
    push_entry_name(L, st, false);
    int name = lua_gettop(L);
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
      kind = "b";
      lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
    } else if (lua_type(L, idx) == LUA_TNUMBER && lua_isinteger(L, idx)) {
      kind = "i";
      lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
    } else if (lua_type(L, idx) == LUA_TNUMBER) {
      kind = "f";
      char tmp[64];
      snprintf(tmp, sizeof tmp, "%.17g", (double)lua_tonumber(L, idx));
      lua_pushstring(L, tmp);
    } else {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (lg_utf8_valid(s, n)) {
        kind = "s";
        lua_pushvalue(L, idx);
      } else {
        kind = "x";
        push_base64(L, (const unsigned char *)s, n);
      }
    }
    lua_pushvalue(L, name);
    append(L, st->mkeys);
    append(L, st->mvals);
    add_leaf(L, st, kind, name);
    break;
  }
  default: {
    char what[64];
    snprintf(what, sizeof what, "cannot save a %s", luaL_typename(L, idx));
    where_error(L, st, what);
  }
  }
  lua_settop(L, top);
}

/* pushes the "__lgrad__" structure text */
static void push_structure(lua_State *L, const save_state *st) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "{\"format\":\"lgrad\",\"version\":1,\"tables\":[");
  lua_Integer n = luaL_len(L, st->tables);
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1)
      luaL_addchar(&b, ',');
    lua_rawgeti(L, st->tables, i);
    luaL_addvalue(&b);
  }
  luaL_addstring(&b, "],\"leaves\":[");
  n = luaL_len(L, st->leaves);
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1)
      luaL_addchar(&b, ',');
    lua_rawgeti(L, st->leaves, i);
    luaL_addvalue(&b);
  }
  luaL_addstring(&b, "]}");
  luaL_pushresult(&b);
}

static int l_save(lua_State *L) {
  const char *path = checkpath(L, 1, "lg.save");
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  if (ends_with(path, ".npy")) {
    lg_tensor **box = tensor_box(L, 2);
    if (!box)
      return luaL_error(L, "lg.save: a .npy file holds one tensor, got %s",
                        luaL_typename(L, 2));
    lg_tensor *t = lgL_checktensor(L, 2);
    if (lg_npy_save(path, t) < 0)
      return luaL_error(L, "lg.save: %s", lg_errmsg_based(1));
    lua_pushboolean(L, 1);
    return 1;
  }
  save_state st;
  for (int i = 0; i < 9; i++)
    lua_newtable(L);
  st.names = 3;
  st.tensors = 4;
  st.mkeys = 5;
  st.mvals = 6;
  st.used = 7;
  st.tables = 8;
  st.leaves = 9;
  st.path = 10;
  st.seen = 11;
  st.depth = 0;
  save_value(L, &st, 2);
  push_structure(L, &st);
  lua_pushstring(L, STRUCT_KEY);
  append(L, st.mkeys);
  append(L, st.mvals);
  size_t nt = (size_t)luaL_len(L, st.tensors);
  size_t nm = (size_t)luaL_len(L, st.mkeys);
  lg_named_tensor *ts = lua_newuserdatauv(L, (nt ? nt : 1) * sizeof *ts, 0);
  lg_meta_entry *ms = lua_newuserdatauv(L, nm * sizeof *ms, 0);
  for (size_t i = 0; i < nt; i++) {
    lua_rawgeti(L, st.names, (lua_Integer)i + 1);
    ts[i].name = (char *)lua_tolstring(L, -1, &ts[i].name_len);
    lua_pop(L, 1); /* the names table keeps it */
    lua_rawgeti(L, st.tensors, (lua_Integer)i + 1);
    ts[i].tensor = lgL_checktensor(L, -1);
    lua_pop(L, 1);
  }
  for (size_t i = 0; i < nm; i++) {
    lua_rawgeti(L, st.mkeys, (lua_Integer)i + 1);
    ms[i].key = (char *)lua_tolstring(L, -1, &ms[i].key_len);
    lua_pop(L, 1);
    lua_rawgeti(L, st.mvals, (lua_Integer)i + 1);
    ms[i].value = (char *)lua_tolstring(L, -1, &ms[i].value_len);
    lua_pop(L, 1);
  }
  if (lg_safetensors_save(path, nt, ts, nm, ms) < 0)
    return luaL_error(L, "lg.save: %s", lg_errmsg_based(1));
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- loading ---- */

static int bad_structure(lua_State *L, const char *path, const char *why) {
  return luaL_error(L, "lg.load: %s: bad \"" STRUCT_KEY "\" entry (%s)", path,
                    why);
}

/* pushes the Lua value of one path key */
static void push_key(lua_State *L, const char *path, const lg_json *k) {
  if (k->type == LG_JSON_INT)
    lua_pushinteger(L, (lua_Integer)k->i);
  else if (k->type == LG_JSON_STR)
    lua_pushlstring(L, k->s, k->len);
  else
    bad_structure(L, path, "a key is neither a string nor an integer");
}

/* pushes the table at path[0 .. n-1] below root (at root_idx) */
static void walk(lua_State *L, const char *path, int root_idx, const lg_json *p,
                 size_t n) {
  lua_pushvalue(L, root_idx);
  for (size_t i = 0; i < n; i++) {
    if (!lua_istable(L, -1))
      bad_structure(L, path, "a path goes through a non-table");
    push_key(L, path, &p->items[i]);
    lua_rawget(L, -2);
    lua_remove(L, -2);
  }
  if (!lua_istable(L, -1))
    bad_structure(L, path, "a path goes through a non-table");
}

/* sets the value on top of the stack at path p (the root slot is
 * root_idx, replaced when p is empty) */
static void set_at(lua_State *L, const char *path, int root_idx,
                   const lg_json *p) {
  if (p->type != LG_JSON_ARR)
    bad_structure(L, path, "a path is not an array");
  if (p->n == 0) {
    lua_replace(L, root_idx);
    return;
  }
  walk(L, path, root_idx, p, p->n - 1);
  push_key(L, path, &p->items[p->n - 1]);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

static void rebuild(lua_State *L, const char *path, int flat, int meta,
                    const lg_json *s) {
  const lg_json *fmt = lg_json_get(s, "format");
  const lg_json *ver = lg_json_get(s, "version");
  const lg_json *tables = lg_json_get(s, "tables");
  const lg_json *leaves = lg_json_get(s, "leaves");
  if (!fmt || fmt->type != LG_JSON_STR || strcmp(fmt->s, "lgrad"))
    bad_structure(L, path, "unknown format");
  if (!ver || ver->type != LG_JSON_INT || ver->i != 1)
    bad_structure(L, path, "unknown version");
  if (!tables || tables->type != LG_JSON_ARR || !leaves ||
      leaves->type != LG_JSON_ARR)
    bad_structure(L, path, "missing tables or leaves");
  lua_pushnil(L);
  int root = lua_gettop(L);
  for (size_t i = 0; i < tables->n; i++) {
    lua_newtable(L);
    set_at(L, path, root, &tables->items[i]);
  }
  for (size_t i = 0; i < leaves->n; i++) {
    const lg_json *lf = &leaves->items[i];
    if (lf->type != LG_JSON_ARR || lf->n != 3 ||
        lf->items[1].type != LG_JSON_STR || lf->items[2].type != LG_JSON_STR)
      bad_structure(L, path, "a leaf is not [path, kind, name]");
    const char *kind = lf->items[1].s;
    const lg_json *name = &lf->items[2];
    lua_pushlstring(L, name->s, name->len);
    if (!strcmp(kind, "t")) {
      lua_rawget(L, flat);
      if (lua_isnil(L, -1))
        bad_structure(L, path, "a tensor it names is missing");
    } else {
      lua_rawget(L, meta);
      if (!lua_isstring(L, -1))
        bad_structure(L, path, "a metadata entry it names is missing");
      size_t n;
      const char *v = lua_tolstring(L, -1, &n);
      if (!strcmp(kind, "i")) {
        if (!lua_stringtonumber(L, v) || !lua_isinteger(L, -1))
          bad_structure(L, path, "an integer does not parse");
      } else if (!strcmp(kind, "f")) {
        char *end;
        double d = strtod(v, &end);
        if (*end || end == v)
          bad_structure(L, path, "a number does not parse");
        lua_pushnumber(L, d);
      } else if (!strcmp(kind, "b")) {
        if (strcmp(v, "true") && strcmp(v, "false"))
          bad_structure(L, path, "a boolean does not parse");
        lua_pushboolean(L, !strcmp(v, "true"));
      } else if (!strcmp(kind, "s")) {
        lua_pushvalue(L, -1);
      } else if (!strcmp(kind, "x")) {
        if (!push_unbase64(L, v, n))
          bad_structure(L, path, "a base64 string does not parse");
      } else {
        bad_structure(L, path, "unknown leaf kind");
      }
      lua_remove(L, -2);
    }
    set_at(L, path, root, &lf->items[0]);
  }
}

static int l_load(lua_State *L) {
  const char *path = checkpath(L, 1, "lg.load");
  lua_settop(L, 1);
  if (ends_with(path, ".npy")) {
    lg_tensor **box = lgL_newbox(L);
    *box = lg_npy_load(path);
    if (!*box)
      return luaL_error(L, "lg.load: %s", lg_errmsg_based(1));
    lgL_account(L);
    return 1;
  }
  lg_st_file *f = newbox(L, sizeof *f, STFILE_MT, stfile_gc); /* 2 */
  if (lg_safetensors_load(path, f) < 0)
    return luaL_error(L, "lg.load: %s", lg_errmsg_based(1));
  lua_createtable(L, 0, (int)(f->ntensors < 1000000 ? f->ntensors : 0));
  int flat = lua_gettop(L); /* 3 */
  for (size_t i = 0; i < f->ntensors; i++) {
    lua_pushlstring(L, f->tensors[i].name, f->tensors[i].name_len);
    lg_tensor *t = f->tensors[i].tensor;
    f->tensors[i].tensor = NULL;
    lgL_pushtensor(L, t);
    lua_rawset(L, flat);
  }
  lua_newtable(L);
  int meta = lua_gettop(L); /* 4 */
  for (size_t i = 0; i < f->nmeta; i++) {
    lua_pushlstring(L, f->meta[i].key, f->meta[i].key_len);
    lua_pushlstring(L, f->meta[i].value, f->meta[i].value_len);
    lua_rawset(L, meta);
  }
  lgL_account(L);
  lua_getfield(L, meta, STRUCT_KEY);
  if (!lua_isstring(L, -1)) {
    lua_pushvalue(L, flat);
    lua_pushvalue(L, meta);
    return 2;
  }
  size_t slen;
  const char *stext = lua_tolstring(L, -1, &slen);
  lg_json_doc **doc = newbox(L, sizeof *doc, JSONDOC_MT, jsondoc_gc);
  *doc = lg_json_parse(stext, slen, 8, 0, path);
  if (!*doc)
    return luaL_error(L, "lg.load: %s", lg_errmsg_based(1));
  const lg_json *s = lg_json_root(*doc);
  if (s->type != LG_JSON_OBJ)
    bad_structure(L, path, "not an object");
  rebuild(L, path, flat, meta, s);
  lua_pushvalue(L, meta);
  return 2;
}

/* ---- readers for lg.data ---- */

static lg_dtype opt_dtype(lua_State *L, int opts, lg_dtype def, bool *given) {
  if (given)
    *given = false;
  if (lua_isnoneornil(L, opts))
    return def;
  lua_getfield(L, opts, "dtype");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  lg_dtype d = lgL_checkdtype(L, lua_gettop(L));
  lua_pop(L, 1);
  if (given)
    *given = true;
  return d;
}

/* lg._io.read_idx(path [, {dtype, scale, shift, limit}]) */
static int l_read_idx(lua_State *L) {
  const char *path = checkpath(L, 1, "read_idx");
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  bool given;
  lg_dtype d = opt_dtype(L, 2, LG_FLOAT32, &given);
  double scale = 1, shift = 0;
  lua_Integer limit = -1;
  if (lua_istable(L, 2)) {
    scale = lgL_optnumberfield(L, 2, "scale", 1);
    shift = lgL_optnumberfield(L, 2, "shift", 0);
    lua_getfield(L, 2, "limit");
    if (!lua_isnil(L, -1)) {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
        return luaL_error(L, "read_idx: limit must be a non-negative "
                             "integer");
      limit = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
  }
  lua_settop(L, 2);
  /* the file's own type unless a dtype or a conversion is asked for */
  int as = given ? (int)d : (scale != 1 || shift != 0) ? LG_FLOAT32 : -1;
  lg_tensor **box = lgL_newbox(L);
  *box = lg_idx_load(path, as, scale, shift, limit);
  if (!*box)
    return luaL_error(L, "read_idx: %s", lg_errmsg_based(1));
  lgL_account(L);
  return 1;
}

/* lg._io.read_csv(path [, {header, dtype, delimiter}]) */
static int l_read_csv(lua_State *L) {
  const char *path = checkpath(L, 1, "read_csv");
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  lg_csv_opts o = {',', false, lg_default_dtype()};
  o.dtype = opt_dtype(L, 2, o.dtype, NULL);
  if (lua_istable(L, 2)) {
    o.header = lgL_optbooleanfield(L, 2, "header", 0);
    lua_getfield(L, 2, "delimiter");
    if (!lua_isnil(L, -1)) {
      size_t n;
      const char *s = lua_tolstring(L, -1, &n);
      if (!s || n != 1)
        return luaL_error(L, "read_csv: delimiter must be one character");
      o.delimiter = s[0];
    }
    lua_pop(L, 1);
  }
  if (o.dtype == LG_BOOL)
    return luaL_error(L, "read_csv: dtype must be float32, float64 or "
                         "int64");
  lua_settop(L, 2);
  lg_csv_result *r = newbox(L, sizeof *r, CSVRES_MT, csvres_gc); /* 3 */
  if (lg_csv_load(path, &o, r) < 0)
    return luaL_error(L, "read_csv: %s", lg_errmsg_based(1));
  lg_tensor *t = r->tensor;
  r->tensor = NULL;
  lgL_pushtensor(L, t);
  lgL_account(L);
  if (!o.header)
    return 1;
  lua_createtable(L, (int)r->ncols, 0);
  for (size_t i = 0; i < r->ncols && r->names; i++) {
    lua_pushstring(L, r->names[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 2;
}

void lgL_open_io(lua_State *L) {
  static const luaL_Reg top[] = {
      {"save", l_save}, {"load", l_load}, {NULL, NULL}};
  static const luaL_Reg io[] = {
      {"read_idx", l_read_idx}, {"read_csv", l_read_csv}, {NULL, NULL}};
  luaL_setfuncs(L, top, 0);
  luaL_newlib(L, io);
  lua_setfield(L, -2, "_io");
}
