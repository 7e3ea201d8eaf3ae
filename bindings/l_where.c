/*
 * l_where.c -- the position an error message starts with.  luaL_error puts
 * the line of the Lua function that called the C function; when that is a
 * line of lgrad's own Lua modules (bindings/lgrad/nn.lua calling
 * lg.F.linear), the user's line that called into them is the useful one.
 * binding.h routes every luaL_error of the binding through lgL_error,
 * which walks up past those frames.  Only the error path pays.
 */
#include <stdarg.h>
#include <string.h>

#include "binding.h"

/* "@.../lgrad/nn.lua": a file of the package's Lua half */
static bool in_library(const char *source) {
  const char *p = strstr(source, "lgrad/");
  if (!p || source[0] != '@')
    return false;
  const char *name = p + 6;
  size_t n = strlen(name);
  return n > 4 && !strchr(name, '/') && !strcmp(name + n - 4, ".lua");
}

/* the first Lua frame from level up that is not one of lgrad's files; a C
 * frame (pcall(m.add_module, ...)) ends the walk with no position, as
 * luaL_where gives none for a function called from C */
void lgL_where(lua_State *L, int level) {
  lua_Debug ar;
  for (; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline <= 0)
      break;
    if (!in_library(ar.source)) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

int lgL_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lgL_where(L, 1);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* errpos.where(level): the same position for errors raised in Lua */
static int l_where(lua_State *L) {
  lgL_where(L, (int)luaL_optinteger(L, 1, 1) + 1);
  return 1;
}

void lgL_open_where(lua_State *L) {
  lua_pushcfunction(L, l_where);
  lua_setfield(L, -2, "_where");
}
