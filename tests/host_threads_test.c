/*
 * host_threads_test.c -- independent lua_States training on two threads
 * at once must not interfere: each thread's result (a hash of its trained
 * weights' bytes and its last loss) must be bit-identical to the result
 * of the same training run alone.
 *
 *   host_threads_test [script.lua [epochs]]  (default examples/host_train.lua)
 *
 * The script defines train(x, y, {seed, epochs}) returning a table of
 * tensors and a loss, as examples/host_train.lua does.  Each thread gets
 * its own copy of the data (see "Threads" in lgrad_host.h).  Exit status
 * 0 when every parallel result matches its sequential twin and the two
 * seeds gave different results.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lgrad_host.h"

#define N 512
#define NTHREADS 2

typedef struct {
  const char *script;
  int epochs;
  int seed;
  uint64_t hash; /* of the weights' bytes */
  double loss;
  char error[512];
} job;

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* two noisy Gaussian blobs, labels 1 and 2 (the same for every job) */
static void make_data(float *x, int64_t *y) {
  uint64_t s = 12345;
  for (int i = 0; i < N; i++) {
    double u = (splitmix(&s) >> 11) / 9007199254740992.0 + 1e-12;
    double v = (splitmix(&s) >> 11) / 9007199254740992.0;
    double r = sqrt(-2 * log(u)), c = i % 2 ? 1.0 : -1.0;
    x[2 * i] = (float)(c + r * cos(2 * M_PI * v));
    x[2 * i + 1] = (float)(c + r * sin(2 * M_PI * v));
    y[i] = i % 2 + 1;
  }
}

static void release_free(void *data, void *ctx) {
  (void)ctx;
  free(data);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

static void *run_job(void *arg) {
  job *j = arg;
  char *err = NULL;
  float *x = malloc(N * 2 * sizeof *x);
  int64_t *y = malloc(N * sizeof *y);
  lua_State *L = luaL_newstate();
  if (!x || !y || !L) {
    snprintf(j->error, sizeof j->error, "out of memory");
    free(x);
    free(y);
    if (L)
      lua_close(L);
    return NULL;
  }
  make_data(x, y);
  if (lgrad_open(L) != LUA_OK) {
    snprintf(j->error, sizeof j->error, "%s", lua_tostring(L, -1));
    free(x);
    free(y);
    lua_close(L);
    return NULL;
  }
  if (lgrad_dofile(L, j->script, 0, NULL, &err) != LUA_OK)
    goto fail;
  lua_getglobal(L, "train");
  int64_t xs[2] = {N, 2}, ys[1] = {N};
  if (lgrad_push_wrap(L, LG_FLOAT32, 2, xs, x, release_free, NULL) != 0) {
    free(x);
    free(y);
    snprintf(j->error, sizeof j->error, "%s", lg_errmsg());
    goto done;
  }
  if (lgrad_push_wrap(L, LG_INT64, 1, ys, y, release_free, NULL) != 0) {
    free(y);
    snprintf(j->error, sizeof j->error, "%s", lg_errmsg());
    goto done;
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, j->seed);
  lua_setfield(L, -2, "seed");
  lua_pushinteger(L, j->epochs);
  lua_setfield(L, -2, "epochs");
  if (lgrad_call(L, 3, 2, &err) != LUA_OK)
    goto fail;
  j->loss = lua_tonumber(L, -1);
  /* hash the weights in a fixed order */
  static const char *const names[] = {"w1", "b1", "w2", "b2"};
  j->hash = 0xcbf29ce484222325ULL;
  for (int k = 0; k < 4; k++) {
    lgrad_info info;
    lua_getfield(L, -2, names[k]);
    if (lgrad_tensor_info(L, -1, &info) != 0 || !info.contiguous) {
      snprintf(j->error, sizeof j->error, "%s: not a contiguous tensor",
               names[k]);
      goto done;
    }
    j->hash = fnv1a(j->hash, info.data, (size_t)info.numel * info.elem_size);
    lua_pop(L, 1);
  }
  goto done;
fail:
  snprintf(j->error, sizeof j->error, "%s", err ? err : "error");
done:
  free(err);
  lua_close(L);
  lg_mem_trim(); /* this thread's cached blocks go back to libc */
  return NULL;
}

int main(int argc, char **argv) {
  const char *script = argc > 1 ? argv[1] : "examples/host_train.lua";
  int epochs = argc > 2 ? atoi(argv[2]) : 10;
  job alone[NTHREADS], together[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    alone[i] = (job){script, epochs, i + 1, 0, 0, ""};
    together[i] = alone[i];
  }
  /* each seed alone, one after the other (on a thread too, so that both
   * runs start from a fresh thread's state) */
  for (int i = 0; i < NTHREADS; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, run_job, &alone[i]) != 0) {
      fprintf(stderr, "cannot create a thread\n");
      return 1;
    }
    pthread_join(t, NULL);
  }
  /* all seeds at the same time */
  pthread_t ts[NTHREADS];
  for (int i = 0; i < NTHREADS; i++)
    if (pthread_create(&ts[i], NULL, run_job, &together[i]) != 0) {
      fprintf(stderr, "cannot create a thread\n");
      return 1;
    }
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(ts[i], NULL);

  int ok = 1;
  for (int i = 0; i < NTHREADS; i++) {
    if (alone[i].error[0] || together[i].error[0]) {
      fprintf(stderr, "seed %d: %s%s\n", i + 1, alone[i].error,
              together[i].error);
      ok = 0;
      continue;
    }
    int same =
        alone[i].hash == together[i].hash && alone[i].loss == together[i].loss;
    printf("seed %d: alone %016llx loss %.9g, in parallel %016llx loss "
           "%.9g: %s\n",
           i + 1, (unsigned long long)alone[i].hash, alone[i].loss,
           (unsigned long long)together[i].hash, together[i].loss,
           same ? "same" : "DIFFERENT");
    ok &= same;
  }
  if (ok && alone[0].hash == alone[1].hash) {
    printf("seeds 1 and 2 gave the same weights\n");
    ok = 0;
  }
  printf("%s\n", ok ? "threads: ok" : "threads: FAILED");
  return ok ? 0 : 1;
}
