/*
 * l_text.c -- the C half of lgrad.text (lg._text): listing a corpus
 * directory and turning byte strings into int64 id tensors and back, so
 * that a few megabytes of text never pass through a Lua table.
 *
 *   lg._text.list_files(dir)        sorted names of the regular files in
 *                                   dir whose names have no '.', or nil,
 *                                   message when dir cannot be read
 *   lg._text.encode(s, lut)         lut: a 512-byte string, bytes 2b and
 *                                   2b+1 the id of byte b, little-endian
 *                                   (0: not in the vocabulary)
 *                                   -> int64 tensor of #s ids, 1-based
 *   lg._text.decode(ids, chars)     chars: the vocabulary, chars[i] the
 *                                   byte of id i -> string
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "binding.h"

/* the names are collected into a Lua table (no C memory is held across a
 * call that can raise), then sorted with table.sort (byte order) */
static int t_list_files(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", dir, strerror(e));
    lua_pushinteger(L, e);
    return 3;
  }
  lua_newtable(L);
  int n = 0;
  struct dirent *ent;
  luaL_Buffer path;
  while ((ent = readdir(d)) != NULL) {
    if (strchr(ent->d_name, '.'))
      continue; /* ".", "..", "x.dat", "x.u8" */
    luaL_buffinit(L, &path);
    luaL_addstring(&path, dir);
    luaL_addchar(&path, '/');
    luaL_addstring(&path, ent->d_name);
    luaL_pushresult(&path);
    struct stat st;
    int ok = stat(lua_tostring(L, -1), &st) == 0 && S_ISREG(st.st_mode);
    lua_pop(L, 1);
    if (!ok)
      continue;
    lua_pushstring(L, ent->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "sort");
  lua_remove(L, -2);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 0);
  return 1;
}

static int t_encode(lua_State *L) {
  size_t n, nlut;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  const unsigned char *lut =
      (const unsigned char *)luaL_checklstring(L, 2, &nlut);
  luaL_argcheck(L, nlut == 512, 2, "the lookup table must have 512 bytes");
#define LUT_ID(b) (lut[2 * (b)] | (lut[2 * (b) + 1] << 8))
  for (size_t i = 0; i < n; i++)
    if (!LUT_ID(s[i]))
      return luaL_error(L,
                        "encode: byte %d at position %d is not in the "
                        "vocabulary",
                        (int)s[i], (int)(i + 1));
  int64_t len = (int64_t)n;
  lg_tensor **box = lgL_newbox(L);
  if (!(*box = lg_empty(LG_INT64, 1, &len)))
    return lgL_fail(L, "encode");
  int64_t *ids = lg_data_ptr(*box);
  for (size_t i = 0; i < n; i++)
    ids[i] = LUT_ID(s[i]);
#undef LUT_ID
  lgL_account(L);
  return 1;
}

static int t_decode(lua_State *L) {
  lg_tensor *ids = lgL_checktensor(L, 1);
  size_t nchars;
  const char *chars = luaL_checklstring(L, 2, &nchars);
  if (ids->dtype != LG_INT64)
    return luaL_error(L, "decode: ids must be int64 (got %s)",
                      lg_dtype_name(ids->dtype));
  if (ids->ndim > 1) {
    char s[200];
    return luaL_error(L, "decode: ids must be 1-d (got %s)",
                      lg_shape_str(ids, s, sizeof s));
  }
  int64_t n = lg_numel(ids);
  int64_t stride = ids->ndim ? ids->strides[0] : 0;
  const int64_t *p = lg_data_ptr(ids);
  for (int64_t i = 0; i < n; i++) {
    int64_t v = p[i * stride];
    if (v < 1 || v > (int64_t)nchars)
      return luaL_error(L, "decode: id %d at position %d is outside 1..%d",
                        (int)v, (int)(i + 1), (int)nchars);
  }
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, (size_t)n);
  for (int64_t i = 0; i < n; i++)
    out[i] = chars[p[i * stride] - 1];
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

static const luaL_Reg text_funcs[] = {{"list_files", t_list_files},
                                      {"encode", t_encode},
                                      {"decode", t_decode},
                                      {NULL, NULL}};

void lgL_open_text(lua_State *L) {
  luaL_newlib(L, text_funcs);
  lua_setfield(L, -2, "_text");
}
