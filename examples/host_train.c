/*
 * host_train.c -- a host program embedding lgrad (see lgrad_host.h).
 *
 * It generates a 2-class "two moons" dataset in its own memory, hands it
 * to a Lua training script without copying (the runtime frees it through
 * a release callback when Lua is done with it), gets the trained weights
 * back as pointers into the tensors' storage (no copy either), and runs
 * inference in plain C on a held-out set, printing the accuracy.
 *
 *   host_train [script.lua [epochs]]     (default examples/host_train.lua)
 *
 * Build (from the top of the repository, after `make`):
 *   cc -std=gnu99 -O2 -pthread -I/usr/include/lua5.4 -Ibindings \
 *     examples/host_train.c BINDING_OBJECTS build/liblgrad.a \
 *     -llua5.4 -ldl -lz -lm -o build/host_train
 * where BINDING_OBJECTS are the objects in build/bindings but main.o.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lgrad_host.h"

#define N_TRAIN 1024
#define N_TEST 512
#define NOISE 0.15

/* ---- the dataset, generated in C ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static double uniform01(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return (double)(z >> 11) / 9007199254740992.0;
}

static double gaussian(void) { /* Box-Muller */
  double u = uniform01(), v = uniform01();
  return sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v);
}

/* two interleaved half circles: x (n x 2), labels 1 and 2 */
static void two_moons(int64_t n, float *x, int64_t *y) {
  for (int64_t i = 0; i < n; i++) {
    int upper = i % 2 == 0;
    double t = M_PI * uniform01();
    double a = upper ? cos(t) : 1.0 - cos(t);
    double b = upper ? sin(t) : 0.5 - sin(t);
    x[2 * i] = (float)(a + NOISE * gaussian());
    x[2 * i + 1] = (float)(b + NOISE * gaussian());
    y[i] = upper ? 1 : 2;
  }
}

/* ---- ownership bookkeeping for the wrapped buffers ---- */

typedef struct {
  int released; /* how many buffers lgrad gave back */
} release_log;

/* called by the runtime once, when the last reference to a buffer goes */
static void release_buffer(void *data, void *ctx) {
  release_log *log = ctx;
  log->released++;
  free(data);
}

/* ---- reading the weights ---- */

typedef struct {
  lgrad_info info; /* shape, strides and the data pointer */
  lg_tensor *t;    /* retained: stays valid after lua_close */
} weight;

static int get_weight(lua_State *L, int table, const char *name, int ndim,
                      weight *w) {
  lua_getfield(L, table, name);
  int ok = lgrad_tensor_info(L, -1, &w->info) == 0 &&
           w->info.dtype == LG_FLOAT32 && w->info.ndim == ndim;
  if (ok)
    w->t = lg_retain(w->info.tensor);
  else
    fprintf(stderr, "host_train: '%s' is not a %d-d float32 tensor\n", name,
            ndim);
  lua_pop(L, 1);
  return ok;
}

/* element (i, j) of a 2-d weight, or i of a 1-d one, through strides */
static float at2(const weight *w, int64_t i, int64_t j) {
  const float *p = w->info.data;
  return p[i * w->info.strides[0] + j * w->info.strides[1]];
}
static float at1(const weight *w, int64_t i) {
  const float *p = w->info.data;
  return p[i * w->info.strides[0]];
}

/* logits = W2 relu(W1 x + b1) + b2; returns the 1-based predicted class */
static int64_t predict(const weight *w, const float *x) {
  int64_t hidden = w[0].info.shape[0], d = w[0].info.shape[1];
  int64_t classes = w[2].info.shape[0];
  float h[256], best = -INFINITY;
  int64_t arg = 0;
  for (int64_t k = 0; k < hidden && k < 256; k++) {
    float s = at1(&w[1], k);
    for (int64_t j = 0; j < d; j++)
      s += at2(&w[0], k, j) * x[j];
    h[k] = s > 0 ? s : 0;
  }
  for (int64_t c = 0; c < classes; c++) {
    float s = at1(&w[3], c);
    for (int64_t k = 0; k < hidden && k < 256; k++)
      s += at2(&w[2], c, k) * h[k];
    if (s > best) {
      best = s;
      arg = c + 1;
    }
  }
  return arg;
}

int main(int argc, char **argv) {
  const char *script = argc > 1 ? argv[1] : "examples/host_train.lua";
  int epochs = argc > 2 ? atoi(argv[2]) : 60;

  float *x_train = malloc(N_TRAIN * 2 * sizeof *x_train);
  int64_t *y_train = malloc(N_TRAIN * sizeof *y_train);
  float *x_test = malloc(N_TEST * 2 * sizeof *x_test);
  int64_t *y_test = malloc(N_TEST * sizeof *y_test);
  if (!x_train || !y_train || !x_test || !y_test) {
    fprintf(stderr, "host_train: out of memory\n");
    return 1;
  }
  two_moons(N_TRAIN, x_train, y_train);
  two_moons(N_TEST, x_test, y_test);

  lua_State *L = luaL_newstate();
  char *err = NULL;
  release_log log = {0};
  weight w[4] = {{{0}, NULL}};
  int status = 1;
  if (!L || lgrad_open(L) != LUA_OK) {
    fprintf(stderr, "host_train: cannot load lgrad: %s\n",
            L ? lua_tostring(L, -1) : "out of memory");
    goto done;
  }
  if (lgrad_dofile(L, script, 0, NULL, &err) != LUA_OK)
    goto fail;

  /* train(x, y, {epochs = ...}) with x and y over our buffers */
  lua_getglobal(L, "train");
  int64_t xshape[2] = {N_TRAIN, 2}, yshape[1] = {N_TRAIN};
  if (lgrad_push_wrap(L, LG_FLOAT32, 2, xshape, x_train, release_buffer,
                      &log) != 0) {
    fprintf(stderr, "host_train: %s\n", lg_errmsg());
    goto done;
  }
  x_train = NULL; /* lgrad owns it now: release_buffer frees it */
  if (lgrad_push_wrap(L, LG_INT64, 1, yshape, y_train, release_buffer, &log) !=
      0) {
    fprintf(stderr, "host_train: %s\n", lg_errmsg());
    goto done;
  }
  y_train = NULL;
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, epochs);
  lua_setfield(L, -2, "epochs");
  lua_pushinteger(L, 1);
  lua_setfield(L, -2, "seed");
  if (lgrad_call(L, 3, 2, &err) != LUA_OK)
    goto fail;
  printf("final minibatch loss: %.4f\n", lua_tonumber(L, -1));

  /* the weights: pointers into the tensors, retained past lua_close */
  int table = lua_gettop(L) - 1;
  if (!lua_istable(L, table) || !get_weight(L, table, "w1", 2, &w[0]) ||
      !get_weight(L, table, "b1", 1, &w[1]) ||
      !get_weight(L, table, "w2", 2, &w[2]) ||
      !get_weight(L, table, "b2", 1, &w[3]))
    goto done;
  lua_settop(L, 0);
  lua_close(L); /* frees everything Lua held: our buffers come back */
  L = NULL;
  printf("dataset buffers released by lgrad: %d of 2\n", log.released);

  /* inference in C on the held-out set */
  int correct = 0;
  for (int64_t i = 0; i < N_TEST; i++)
    correct += predict(w, x_test + 2 * i) == y_test[i];
  printf("weights: w1 %lldx%lld, w2 %lldx%lld (read in place)\n",
         (long long)w[0].info.shape[0], (long long)w[0].info.shape[1],
         (long long)w[2].info.shape[0], (long long)w[2].info.shape[1]);
  printf("test accuracy: %.4f (%d/%d)\n", (double)correct / N_TEST, correct,
         N_TEST);
  status = log.released == 2 ? 0 : 1;
  goto done;

fail:
  fprintf(stderr, "host_train: %s\n", err ? err : "error");
done:
  free(err);
  for (int i = 0; i < 4; i++)
    lg_release(w[i].t);
  if (L)
    lua_close(L);
  free(x_train);
  free(y_train);
  free(x_test);
  free(y_test);
  return status;
}
