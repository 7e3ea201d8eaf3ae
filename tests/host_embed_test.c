/*
 * host_embed_test.c -- what a C host meets on its first day: bad arguments
 * to the public C functions (indices, NULLs, unknown option keys, int64
 * tensors asked to require grad), errors that stay until cleared and count
 * indices from 0, scripts run with arguments, cancellation and time limits
 * from another thread (with their latency on a long GEMM and an LBFGS
 * step), revoked wrapped memory, checkpoints and tables of tensors read
 * from C, the version check and the log hook.  Prints one line per failed
 * check, the latencies, and "N passed, N failed"; exit status 0 when all
 * pass.
 */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* true when the pending error contains s */
static int err_has(const char *s) {
  const char *e = lg_error();
  if (!e || !strstr(e, s)) {
    printf("  error was: %s\n", e ? e : "(none)");
    return 0;
  }
  return 1;
}

static void core_checks(void) {
  lg_clear_error();
  CHECK(lg_error() == NULL, "no error after lg_clear_error");
  lg_tensor *t = lg_zeros(LG_FLOAT32, 2, (int64_t[]){2, 3});
  /* bug 1: indices are checked */
  CHECK(lg_set(t, (int64_t[]){5, 5}, 1.0) == -1 &&
            err_has("lg_set: index 5 is out of range for dimension 0"),
        "lg_set out of range fails, counting from 0");
  CHECK(lg_set(t, (int64_t[]){1, -1}, 1.0) == -1, "negative index fails");
  double v = 0;
  CHECK(lg_get_value(t, (int64_t[]){2, 0}, &v) == -1, "lg_get_value checks");
  CHECK(isnan(lg_get(t, (int64_t[]){0, 3})), "lg_get out of range is NaN");
  CHECK(lg_set(t, (int64_t[]){1, 2}, 7.0) == 0 &&
            lg_get_value(t, (int64_t[]){1, 2}, &v) == 0 && v == 7.0,
        "in-range set and get");
  CHECK(lg_set(t, NULL, 1.0) == -1 && err_has("NULL"), "NULL index list");
  /* bug 5: item reports failure by status */
  CHECK(lg_item_value(t, &v) == -1 && err_has("6 elements, not one"),
        "lg_item_value on 6 elements");
  lg_clear_error();
  CHECK(lg_error() == NULL, "error cleared");
  /* bug 3: NULLs are refused with a message */
  CHECK(lg_from_data(LG_FLOAT32, 1, (int64_t[]){3}, NULL) == NULL &&
            err_has("NULL"),
        "lg_from_data(NULL) fails");
  CHECK(lg_wrap(LG_FLOAT32, 1, (int64_t[]){3}, NULL, NULL, NULL, NULL) ==
                NULL &&
            err_has("NULL"),
        "lg_wrap(NULL) fails");
  /* bug 4: C messages count from 0 */
  lg_tensor *s = lg_select(t, 5, 0);
  CHECK(s == NULL && err_has("dimension 5") && !strstr(lg_error(), "6"),
        "lg_select names dimension 5, as C counts");
  lg_release(s);
  /* bug 5: an int64 tensor cannot require grad */
  lg_tensor *ix = lg_zeros(LG_INT64, 1, (int64_t[]){3});
  CHECK(lg_set_requires_grad(ix, true) == -1 && !ix->requires_grad &&
            err_has("floating-point"),
        "int64 requires_grad refused");
  CHECK(lg_set_requires_grad(t, true) == 0 && t->requires_grad,
        "float requires_grad accepted");
  lg_release(ix);
  /* bug 2: unknown optimizer keys */
  lg_optim *o = lg_optim_new("Adam");
  CHECK(lg_optim_add_params(o, 1, &t, 1e-3) == 0, "optimizer group");
  CHECK(lg_optim_set(o, 0, "weight_decy", 0.1) == -1 &&
            err_has("Adam: unknown option 'weight_decy'"),
        "lg_optim_set refuses a misspelled key as Lua does");
  CHECK(lg_optim_set(o, 0, "weight_decay", 0.1) == 0, "known key accepted");
  CHECK(lg_optim_set(o, 7, "lr", 0.1) == -1 && err_has("group 7"),
        "group numbers count from 0");
  CHECK(lg_optim_set_extra(o, 0, "my_tag", 3) == 0 &&
            lg_optim_get(o, 0, "my_tag", &v) == 0 && v == 3,
        "host keys go through lg_optim_set_extra");
  lg_optim_free(o);
  /* checkpoints from C */
  char path[] = "/tmp/lgrad_embed_XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  lg_tensor *w = lg_range(LG_FLOAT32, 0, 5, 1);
  CHECK(lg_checkpoint_save(path, 2, (const char *[]){"fc.weight", "t"},
                           (lg_tensor *[]){w, t}) == 0,
        "checkpoint saved");
  int n = 0;
  char **names = NULL;
  lg_tensor **ts = NULL;
  CHECK(lg_checkpoint_load(path, &n, &names, &ts) == 0 && n == 2 &&
            !strcmp(names[0], "fc.weight") && lg_numel(ts[0]) == 6 &&
            lg_get(ts[0], (int64_t[]){5}) == 5.0 &&
            lg_get(ts[1], (int64_t[]){1, 2}) == 7.0,
        "checkpoint loaded with names and values");
  lg_checkpoint_free(n, names, ts);
  CHECK(lg_checkpoint_load("/nonexistent/x.safetensors", &n, &names, &ts) ==
                -1 &&
            err_has("/nonexistent/x.safetensors"),
        "a missing checkpoint fails naming the path");
  unlink(path);
  lg_release(w);
  lg_release(t);
  CHECK(lgrad_version() == LGRAD_VERSION_NUM &&
            LGRAD_VERSION_NUM / 10000 == LGRAD_VERSION_MAJOR,
        "library and header versions agree");
}

/* ---- cancellation ---- */

typedef struct {
  lua_State *L;
  double after; /* seconds */
  double sent;  /* lg_monotonic() when the interrupt went out */
} interrupter;

static void *interrupt_later(void *arg) {
  interrupter *it = arg;
  struct timespec ts = {(time_t)it->after,
                        (long)((it->after - (time_t)it->after) * 1e9)};
  nanosleep(&ts, NULL);
  it->sent = lg_monotonic();
  lgrad_interrupt(it->L);
  return NULL;
}

/* runs code on L, interrupted from another thread after `after` s;
 * returns the latency from the interrupt to the call's return (or -1) */
static double run_interrupted(lua_State *L, const char *code, double after,
                              char **err) {
  interrupter it = {L, after, 0};
  pthread_t th;
  pthread_create(&th, NULL, interrupt_later, &it);
  int status = lgrad_dostring(L, code, err);
  double done = lg_monotonic();
  pthread_join(th, NULL);
  if (status == LUA_OK || it.sent == 0)
    return -1;
  return done - it.sent;
}

static int logged;
static char log_text[256];
static void on_log(void *ctx, const char *text) {
  (void)ctx;
  logged++;
  snprintf(log_text, sizeof log_text, "%s", text);
}

static int count_tensor(void *ctx, const char *name, lg_tensor *t) {
  (void)t;
  int *c = ctx;
  if (!strcmp(name, "fc.weight") || !strcmp(name, "layers.2"))
    c[1]++;
  c[0]++;
  return 0;
}

static void host_checks(void) {
  lua_State *L = luaL_newstate();
  CHECK(lgrad_open(L) == LUA_OK, "lgrad_open");
  char *err = NULL;

  /* arguments and results */
  char script[] = "/tmp/lgrad_args_XXXXXX";
  int fd = mkstemp(script);
  const char *src = "local a, b = ...\n"
                    "result = a .. '+' .. b .. '|' .. arg[0]:sub(-6) ..\n"
                    "  '|' .. arg[2] .. '|' .. #arg\n";
  CHECK(write(fd, src, strlen(src)) == (ssize_t)strlen(src), "script");
  close(fd);
  CHECK(lgrad_dofile(L, script, 2, (char *[]){"x", "y"}, &err) == LUA_OK,
        "dofile with arguments");
  lua_getglobal(L, "result");
  char want[64];
  snprintf(want, sizeof want, "x+y|%s|y|2", script + strlen(script) - 6);
  CHECK(lua_isstring(L, -1) && !strcmp(lua_tostring(L, -1), want),
        "arg and ... as the lgrad program sets them");
  lua_pop(L, 1);
  fd = open(script, O_WRONLY | O_TRUNC);
  CHECK(write(fd, "x = = 1", 7) == 7, "bad script");
  close(fd);
  CHECK(lgrad_dofile(L, script, 0, NULL, &err) == LUA_ERRSYNTAX && err &&
            strstr(err, "unexpected symbol"),
        "a syntax error lands in *err");
  free(err);
  unlink(script);
  CHECK(lgrad_dofile(L, NULL, 0, NULL, &err) != LUA_OK && err &&
            strstr(err, "NULL"),
        "NULL path refused");
  free(err);
  CHECK(lgrad_dostring(L, "return 1, 'two'", NULL) == LUA_OK, "dostring");
  CHECK(luaL_loadstring(L, "return 40 + 2, 'two'") == LUA_OK &&
            lgrad_call(L, 0, 2, &err) == LUA_OK && lua_tointeger(L, -2) == 42 &&
            !strcmp(lua_tostring(L, -1), "two"),
        "lgrad_call returns results to the host");
  lua_pop(L, 2);

  /* cancellation (the inputs are made first: randn is one serial loop) */
  CHECK(lgrad_dostring(L,
                       "A1 = lg.randn(1024, 1024); A4 = lg.randn(4096, 4096)\n"
                       "LA = lg.randn(4000, 2000); LY = lg.randn(4000)",
                       &err) == LUA_OK,
        "inputs");
  double lat = run_interrupted(L,
                               "local a = A1\n"
                               "for i = 1, 1e9 do a = a:matmul(a):tanh() end",
                               0.3, &err);
  CHECK(lat >= 0 && err && strstr(err, "interrupted"),
        "a GEMM loop raises 'interrupted'");
  printf("interrupt latency, 1024^3 GEMM loop: %.1f ms\n", lat * 1e3);
  free(err);
  /* one big GEMM, cut in blocks of rows */
  lat = run_interrupted(L, "while true do local c = A4:matmul(A4) end", 0.3,
                        &err);
  CHECK(lat >= 0 && err && strstr(err, "interrupted"),
        "a 4096^3 GEMM is interrupted");
  printf("interrupt latency, 4096^3 GEMMs: %.1f ms\n", lat * 1e3);
  free(err);
  /* an LBFGS step with many iterations */
  lat = run_interrupted(
      L,
      "local w = lg.zeros(2000, {requires_grad = true})\n"
      "local A, y = LA, LY\n"
      "local o = lg.optim.LBFGS({w}, {max_iter = 100000, history_size = 20,\n"
      "  tolerance_grad = 0, tolerance_change = 0})\n"
      "while true do o:step(function()\n"
      "  o:zero_grad(); local l = ((A:mv(w) - y) ^ 2):mean()\n"
      "  l:backward(); return l end) end",
      0.5, &err);
  CHECK(lat >= 0 && err && strstr(err, "interrupted"),
        "an LBFGS step is interrupted");
  printf("interrupt latency, LBFGS step: %.1f ms\n", lat * 1e3);
  free(err);
  CHECK(lgrad_dostring(L, "assert(lg.ones(3):sum():item() == 3)", &err) ==
            LUA_OK,
        "the state is usable after an interrupt");
  free(err);
  /* a time limit */
  CHECK(lgrad_set_time_limit(L, 0.2) == 0, "time limit set");
  double t0 = lg_monotonic();
  CHECK(lgrad_dostring(L, "while true do end", &err) == LUA_ERRRUN && err &&
            strstr(err, "time limit exceeded"),
        "a Lua loop stops at the time limit");
  free(err);
  int st =
      lgrad_dostring(L, "local c = A4:matmul(A4):matmul(A4):matmul(A4)", &err);
  CHECK(st == LUA_ERRRUN && err && strstr(err, "time limit exceeded"),
        "GEMMs stop at the time limit");
  if (st != LUA_ERRRUN || !err || !strstr(err, "time limit exceeded"))
    printf("  status %d: %s\n", st, err ? err : "(no error)");
  printf("time limit 0.2 s: two calls returned after %.2f s\n",
         lg_monotonic() - t0);
  free(err);
  lgrad_set_time_limit(L, 0);
  CHECK(lgrad_dostring(L, "x = lg.ones(2):sum():item()", &err) == LUA_OK,
        "no limit afterwards");
  free(err);

  /* revoking wrapped memory */
  float *buf = malloc(6 * sizeof *buf);
  for (int i = 0; i < 6; i++)
    buf[i] = (float)i;
  CHECK(lgrad_push_wrap(L, LG_FLOAT32, 2, (int64_t[]){2, 3}, buf, NULL, NULL) ==
            0,
        "wrap");
  lua_setglobal(L, "host");
  CHECK(lgrad_dostring(L, "view = host:narrow(2, 2, 2); s = view:sum()",
                       &err) == LUA_OK,
        "views of host memory");
  lua_getglobal(L, "host");
  lg_tensor *ht = lgrad_to_tensor(L, -1);
  lua_pop(L, 1);
  CHECK(lgrad_revoke(ht) == 0, "revoke");
  free(buf); /* the host takes its memory back */
  CHECK(lgrad_dostring(L, "return host:sum()", &err) == LUA_ERRRUN && err &&
            strstr(err, "tensor is closed"),
        "the revoked tensor raises 'tensor is closed'");
  free(err);
  CHECK(lgrad_dostring(L, "return view + 1", &err) == LUA_ERRRUN && err &&
            strstr(err, "tensor is closed"),
        "its views too");
  free(err);
  CHECK(lgrad_dostring(L, "return s:item()", &err) == LUA_OK,
        "results computed before stay valid");
  CHECK(lgrad_revoke(NULL) == -1, "revoke(NULL) fails");

  /* a table of tensors read from C */
  CHECK(
      lgrad_dostring(L,
                     "sd = {fc = {weight = lg.ones(2, 2), bias = lg.zeros(2)},"
                     " layers = {lg.ones(1), lg.ones(2)}, note = 'x'}",
                     &err) == LUA_OK,
      "a nested table");
  lua_getglobal(L, "sd");
  int counts[2] = {0, 0};
  CHECK(lgrad_foreach_tensor(L, -1, count_tensor, counts) == 0 &&
            counts[0] == 4 && counts[1] == 2,
        "foreach visits every tensor with dotted names");
  lua_pop(L, 1);

  /* the log hook */
  CHECK(lgrad_set_log(L, on_log, NULL) == 0, "log hook");
  CHECK(lgrad_dostring(L, "lg.output:write('epoch ', 1, '\\n')", &err) ==
                LUA_OK &&
            logged == 1 && !strcmp(log_text, "epoch 1\n"),
        "lg.output goes to the host");
  CHECK(lgrad_dostring(
            L,
            "local nn = lg.nn\n"
            "local m = nn.Linear(2, 1)\n"
            "local x, y = lg.randn(8, 2), lg.randn(8, 1)\n"
            "lg.train.fit{model = m, loss = lg.F.mse_loss, optimizer =\n"
            "  lg.optim.SGD(m:parameters(), {lr = 0.1}), data =\n"
            "  lg.data.DataLoader(lg.data.TensorDataset(x, y),\n"
            "  {batch_size = 4}), epochs = 2}",
            &err) == LUA_OK &&
            logged >= 3,
        "fit reports through the hook");
  if (err)
    printf("  %s\n", err);
  free(err);
  lgrad_set_log(L, NULL, NULL);

  /* threads per state */
  int before = lg_get_num_threads();
  CHECK(lgrad_set_num_threads(L, 1) == 0, "per-state threads");
  CHECK(lgrad_dostring(L, "n_inside = lg.get_num_threads()", &err) == LUA_OK,
        "run with them");
  lua_getglobal(L, "n_inside");
  CHECK(lua_tointeger(L, -1) == 1 && lg_get_num_threads() == before,
        "the state's count inside, the process's after");
  lua_pop(L, 1);

  /* states not opened by lgrad_open */
  lua_State *plain = luaL_newstate();
  CHECK(lgrad_interrupt(plain) == -1 && lgrad_set_time_limit(plain, 1) == -1,
        "a plain state has no cancellation");
  lua_close(plain);
  lua_close(L);
}

int main(void) {
  core_checks();
  host_checks();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
