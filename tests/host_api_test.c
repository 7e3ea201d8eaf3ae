/*
 * host_api_test.c -- checks of the embedding API (lgrad_host.h): wrapping
 * and copying host memory, ownership and release callbacks, reading
 * tensors back, and errors returned as strings with a balanced stack.
 * Prints one line per check and "N passed, N failed"; exit status 0 when
 * all pass.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lgrad_host.h"

static int passed, failed;

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, what);                    \
    }                                                                          \
  } while (0)

static int releases;
static void *released_data;
static void *released_ctx;

static void on_release(void *data, void *ctx) {
  releases++;
  released_data = data;
  released_ctx = ctx;
}

/* runs code and returns its single result as a number (NaN on error) */
static double eval(lua_State *L, const char *code) {
  char *err = NULL;
  if (luaL_loadstring(L, code) != LUA_OK) {
    printf("  load error: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0.0 / 0.0;
  }
  if (lgrad_call(L, 0, 1, &err) != LUA_OK) {
    printf("  error: %s\n", err);
    free(err);
    return 0.0 / 0.0;
  }
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

int main(void) {
  lua_State *L = luaL_newstate();
  CHECK(lgrad_open(L) == LUA_OK, "lgrad_open");
  CHECK(lua_gettop(L) == 0, "lgrad_open leaves the stack empty");
  lua_getglobal(L, "lg");
  CHECK(lua_istable(L, -1), "global lg is set");
  lua_pop(L, 1);
  CHECK(eval(L, "return require('lgrad') == lg and 1 or 0") == 1,
        "require 'lgrad' gives lg");

  /* zero-copy wrap: Lua sees and writes the host's memory */
  static float host[6] = {1, 2, 3, 4, 5, 6};
  int ctx_token;
  int64_t shape[2] = {2, 3};
  CHECK(lgrad_push_wrap(L, LG_FLOAT32, 2, shape, host, on_release,
                        &ctx_token) == 0,
        "push_wrap");
  lua_setglobal(L, "h");
  CHECK(eval(L, "return h:sum():item()") == 21, "Lua reads host memory");
  CHECK(eval(L, "h[2][3] = 60; return 0") == 0, "Lua writes a tensor");
  CHECK(host[5] == 60, "the write lands in host memory");
  CHECK(eval(L, "return h:t():contiguous():view(6)[2]") == 4,
        "views of a wrapped tensor");

  /* reading it back without copying */
  lua_getglobal(L, "h");
  lgrad_info info;
  CHECK(lgrad_tensor_info(L, -1, &info) == 0, "tensor_info");
  CHECK(info.data == (void *)host, "the data pointer is the host's");
  CHECK(info.dtype == LG_FLOAT32 && info.ndim == 2 && info.shape[0] == 2 &&
            info.shape[1] == 3 && info.strides[0] == 3 &&
            info.strides[1] == 1 && info.numel == 6 && info.elem_size == 4 &&
            info.contiguous,
        "tensor_info geometry");
  CHECK(lgrad_to_tensor(L, -1) == info.tensor, "to_tensor");
  lg_tensor *kept = lg_retain(lgrad_to_tensor(L, -1));
  lua_pop(L, 1);

  /* a transposed view: strides tell how to walk it */
  CHECK(eval(L, "ht = h:t(); return 0") == 0, "transpose");
  lua_getglobal(L, "ht");
  CHECK(lgrad_tensor_info(L, -1, &info) == 0 && !info.contiguous &&
            info.shape[0] == 3 && info.strides[0] == 1 &&
            info.strides[1] == 3 && info.data == (void *)host,
        "a view's strides and data");
  lua_pop(L, 1);

  /* the release callback: not while anything refers to the memory */
  CHECK(eval(L, "h = nil; ht = nil; collectgarbage(); return 0") == 0,
        "drop the Lua references");
  CHECK(releases == 0, "no release while the host retains the tensor");
  lg_release(kept);
  CHECK(releases == 1 && released_data == (void *)host &&
            released_ctx == &ctx_token,
        "released once, with data and ctx, at the last reference");

  /* rel NULL: never called, never freed by lgrad (static memory here) */
  static double fixed[3] = {1.5, 2.5, 3.5};
  int64_t n3[1] = {3};
  CHECK(lgrad_push_wrap(L, LG_FLOAT64, 1, n3, fixed, NULL, NULL) == 0,
        "push_wrap without a release function");
  lua_setglobal(L, "f");
  CHECK(eval(L, "local s = f:sum():item(); f = nil; collectgarbage(); "
                "return s") == 7.5,
        "a wrapped tensor without release is collected safely");

  /* explicit strides: every other element of a buffer */
  static int64_t every_other[6] = {1, -1, 2, -1, 3, -1};
  int64_t stride2[1] = {2};
  CHECK(lgrad_push_wrap_strided(L, LG_INT64, 1, n3, stride2, every_other, NULL,
                                NULL) == 0,
        "push_wrap_strided");
  lua_setglobal(L, "s");
  CHECK(eval(L, "return s:sum():item()") == 6, "strided wrap reads right");

  /* copies: independent of the source */
  int64_t src[4] = {10, 20, 30, 40};
  int64_t n4[1] = {4};
  CHECK(lgrad_push_copy(L, LG_INT64, 1, n4, src) == 0, "push_copy");
  src[0] = 0;
  lua_setglobal(L, "c");
  CHECK(eval(L, "return c:sum():item()") == 100, "the copy is a copy");
  CHECK(eval(L, "return c:dtype() == 'int64' and 1 or 0") == 1,
        "the copy's dtype");

  /* a C-made tensor pushed into Lua: both hold references */
  lg_tensor *z = lg_zeros(LG_FLOAT32, 1, n4);
  lgrad_push_tensor(L, z);
  lua_setglobal(L, "z");
  CHECK(eval(L, "z:add_(2); return z:sum():item()") == 8,
        "push_tensor shares the tensor");
  CHECK(((float *)lg_data_ptr(z))[3] == 2, "C sees Lua's in-place write");
  lg_release(z);
  CHECK(eval(L, "return z:sum():item()") == 8, "Lua's reference lives on");

  /* bad input: -1, nothing pushed, a message in lg_errmsg */
  int top = lua_gettop(L);
  int64_t bad[1] = {-3};
  CHECK(lgrad_push_wrap(L, LG_FLOAT32, 1, bad, host, on_release, NULL) == -1,
        "negative size refused");
  CHECK(lua_gettop(L) == top, "nothing pushed on failure");
  CHECK(strlen(lg_errmsg()) > 0, "a reason is given");
  CHECK(releases == 1, "no release call on failure");
  CHECK(lgrad_push_wrap(L, (lg_dtype)99, 1, n3, host, NULL, NULL) == -1,
        "bad dtype refused");
  CHECK(lgrad_push_copy(L, LG_FLOAT32, 9, bad, host) == -1,
        "too many dims refused");
  CHECK(lua_gettop(L) == top, "still nothing pushed");

  /* not a tensor */
  lua_pushinteger(L, 3);
  CHECK(lgrad_to_tensor(L, -1) == NULL, "to_tensor of a number is NULL");
  CHECK(lgrad_tensor_info(L, -1, &info) == -1, "tensor_info of a number");
  lua_pop(L, 1);
  CHECK(eval(L, "do local t <close> = lg.ones(2); closed = t end; "
                "return 0") == 0,
        "close a tensor");
  lua_getglobal(L, "closed");
  CHECK(lgrad_to_tensor(L, -1) == NULL, "to_tensor of a closed tensor");
  lua_pop(L, 1);

  /* errors come back as strings, the stack balanced */
  char *err = NULL;
  top = lua_gettop(L);
  CHECK(lgrad_dostring(L, "x = 1 +", &err) == LUA_ERRSYNTAX && err &&
            strstr(err, "unexpected symbol"),
        "dostring: a syntax error");
  free(err);
  CHECK(lgrad_dostring(L, "lg.matmul(lg.zeros(2, 3), lg.zeros(4, 5))", &err) ==
                LUA_ERRRUN &&
            err && strstr(err, "[2,3]") && strstr(err, "[4,5]") &&
            strstr(err, "stack traceback"),
        "dostring: a runtime error with shapes and a traceback");
  free(err);
  CHECK(lgrad_dofile(L, "/nonexistent/file.lua", 0, NULL, &err) == LUA_ERRFILE && err &&
            strstr(err, "cannot open"),
        "dofile: a missing file");
  free(err);
  CHECK(lgrad_dostring(L, "ok_var = 5", &err) == LUA_OK && err == NULL,
        "dostring: success sets *err to NULL");
  CHECK(lgrad_dostring(L, "error('x')", NULL) == LUA_ERRRUN, "err may be NULL");
  CHECK(lua_gettop(L) == top, "dostring/dofile leave the stack as it was");

  CHECK(lgrad_dostring(L,
                       "function twice(t) return t * 2, 'ok' end "
                       "function fails(t) return t + lg.zeros(7) end",
                       NULL) == LUA_OK,
        "define functions");
  lua_getglobal(L, "twice");
  lgrad_push_copy(L, LG_INT64, 1, n4, src);
  CHECK(lgrad_call(L, 1, 2, &err) == LUA_OK, "call");
  CHECK(lua_gettop(L) == top + 2 && lua_isstring(L, -1), "two results");
  CHECK(lgrad_tensor_info(L, -2, &info) == 0 && ((int64_t *)info.data)[1] == 40,
        "a tensor result");
  lua_settop(L, top);
  lua_getglobal(L, "fails");
  lgrad_push_copy(L, LG_INT64, 1, n4, src);
  CHECK(lgrad_call(L, 1, 1, &err) == LUA_ERRRUN && err && strstr(err, "[4]") &&
            strstr(err, "[7]"),
        "call: an error");
  free(err);
  CHECK(lua_gettop(L) == top, "a failed call pops the function and args");

  lua_close(L);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
