/*
 * rng.c -- counter-based random numbers (Philox 4x32-10).  A generator
 * is a key (the seed) and a counter; each block of four 32-bit words is a
 * pure function of both, so the same seed gives the same stream whatever
 * the thread count.  Its state is two integers, saved in checkpoints.
 */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

struct lg_generator {
  uint64_t seed;
  uint64_t counter; /* Philox blocks consumed */
};

static LG_THREAD lg_generator default_gen = {67280421310721ULL, 0};

lg_generator *lg_generator_new(uint64_t seed) {
  lg_generator *g = malloc(sizeof *g);
  if (!g) {
    lg_seterr("out of memory");
    return NULL;
  }
  g->seed = seed;
  g->counter = 0;
  return g;
}

void lg_generator_free(lg_generator *g) { free(g); }
lg_generator *lg_default_generator(void) { return &default_gen; }
void lg_manual_seed(uint64_t seed) { lg_generator_seed(&default_gen, seed); }

void lg_generator_seed(lg_generator *g, uint64_t seed) {
  g->seed = seed;
  g->counter = 0;
}

void lg_generator_get_state(const lg_generator *g, uint64_t state[2]) {
  state[0] = g->seed;
  state[1] = g->counter;
}

void lg_generator_set_state(lg_generator *g, const uint64_t state[2]) {
  g->seed = state[0];
  g->counter = state[1];
}

static void philox(uint64_t ctr, uint64_t key, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0;
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void lg_philox_block(uint64_t seed, uint64_t ctr, uint32_t out[4]) {
  philox(ctr, seed, out);
}

uint64_t lg_generator_reserve(lg_generator *g, uint64_t nblocks,
                              uint64_t *seed) {
  if (!g)
    g = &default_gen;
  uint64_t c0 = g->counter;
  g->counter += nblocks;
  *seed = g->seed;
  return c0;
}

/* uniform doubles in [0, 1) from 53 bits of two words */
static inline double to_unit(uint32_t hi, uint32_t lo) {
  uint64_t v = ((uint64_t)hi << 32) | lo;
  return (double)(v >> 11) * (1.0 / 9007199254740992.0);
}

/* One block (counter value) gives four words: two uniforms, or one pair
 * of normals by Box-Muller.  The counter counts blocks. */
static void block_uniform2(lg_generator *g, uint64_t c, double u[2]) {
  uint32_t w[4];
  philox(c, g->seed, w);
  u[0] = to_unit(w[0], w[1]);
  u[1] = to_unit(w[2], w[3]);
}

static void block_normal2(lg_generator *g, uint64_t c, double z[2]) {
  double u[2];
  block_uniform2(g, c, u);
  double r = sqrt(-2 * log(u[0] > 1e-300 ? u[0] : 1e-300));
  double a = 6.283185307179586477 * u[1];
  z[0] = r * cos(a);
  z[1] = r * sin(a);
}

static uint64_t next64(lg_generator *g) {
  uint32_t w[4];
  philox(g->counter++, g->seed, w);
  return ((uint64_t)w[0] << 32) | w[1];
}

double lg_random_uniform(lg_generator *g) {
  if (!g)
    g = &default_gen;
  double u[2];
  block_uniform2(g, g->counter++, u);
  return u[0];
}

double lg_random_normal(lg_generator *g) {
  if (!g)
    g = &default_gen;
  double z[2];
  block_normal2(g, g->counter++, z);
  return z[0];
}

/* value i of a bulk draw starting at block c0: element pairs share a
 * block, so the numbers depend only on the seed and position */
static int fill_random(lg_tensor *t, lg_generator *g, int kind, double a,
                       double b, int64_t ilo, int64_t ihi) {
  if (lg_check_inplace("random", t))
    return -1;
  if (!g)
    g = &default_gen;
  lg_tensor *c = lg_is_contiguous(t) ? lg_retain(t) : lg_empty_like(t);
  if (!c)
    return -1;
  void *p = lg_data_ptr(c);
  int64_t n = lg_numel(t);
  uint64_t c0 = g->counter;
  if (kind != 2) {
    double pair[2];
    for (int64_t i = 0; i < n; i += 2) {
      if (kind != 1)
        block_uniform2(g, c0 + (uint64_t)(i / 2), pair);
      else
        block_normal2(g, c0 + (uint64_t)(i / 2), pair);
      for (int k = 0; k < 2 && i + k < n; k++) {
        double v = kind == 0   ? a + (b - a) * pair[k]
                   : kind == 1 ? a + b * pair[k]
                               : (double)(pair[k] < a); /* bernoulli(a) */
        if (c->dtype == LG_FLOAT32) {
          float f = (float)v;
          if (kind == 0 && f >= (float)b && b > a)
            f = nextafterf((float)b, (float)a); /* keep [a, b) */
          ((float *)p)[i + k] = f;
        } else {
          lg_store(c->dtype, p, i + k, v);
        }
      }
    }
    g->counter = c0 + (uint64_t)((n + 1) / 2);
  } else { /* integers in [ilo, ihi], in unsigned arithmetic: the span
             * of the whole int64 range is 2^64, which wraps to 0 */
    uint64_t span = (uint64_t)ihi - (uint64_t)ilo + 1;
    for (int64_t i = 0; i < n; i++) {
      uint64_t r = next64(g);
      int64_t v = (int64_t)((uint64_t)ilo + (span ? r % span : r));
      if (c->dtype == LG_INT64)
        ((int64_t *)p)[i] = v;
      else
        lg_store(c->dtype, p, i, (double)v);
    }
  }
  int rc = 0;
  if (c != t) {
    bool was = lg_set_grad_enabled(false);
    rc = lg_copy_(t, c);
    lg_set_grad_enabled(was);
  }
  lg_release(c);
  lg_bump_version(t);
  return rc;
}

int lg_uniform_(lg_tensor *t, double lo, double hi, lg_generator *g) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_uniform_: argument %d is NULL or revoked", 1);
    return -1;
  }
  if (!(lo <= hi)) {
    lg_seterr("uniform_: expects lo <= hi, got %g and %g", lo, hi);
    return -1;
  }
  return fill_random(t, g, 0, lo, hi, 0, 0);
}

int lg_normal_(lg_tensor *t, double mean, double std, lg_generator *g) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_normal_: argument %d is NULL or revoked", 1);
    return -1;
  }
  if (!(std >= 0)) {
    lg_seterr("normal_: std must be non-negative, got %g", std);
    return -1;
  }
  return fill_random(t, g, 1, mean, std, 0, 0);
}

int lg_randint_(lg_tensor *t, int64_t lo, int64_t hi, lg_generator *g) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_randint_: argument %d is NULL or revoked", 1);
    return -1;
  }
  if (lo > hi) {
    lg_seterr("randint: empty range [%lld, %lld]", (long long)lo,
              (long long)hi);
    return -1;
  }
  return fill_random(t, g, 2, 0, 0, lo, hi);
}

int lg_bernoulli_(lg_tensor *t, double p, lg_generator *g) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_bernoulli_: argument %d is NULL or revoked", 1);
    return -1;
  }
  if (!(p >= 0 && p <= 1)) {
    lg_seterr("bernoulli_: probability %g not in [0, 1]", p);
    return -1;
  }
  return fill_random(t, g, 3, p, 0, 0, 0);
}

lg_tensor *lg_rand(lg_dtype d, int ndim, const int64_t *shape,
                   lg_generator *g) {
  if (!lg_dtype_is_float(d)) {
    lg_seterr("rand: needs a float dtype, got %s", lg_dtype_name(d));
    return NULL;
  }
  lg_tensor *t = lg_empty(d, ndim, shape);
  if (t && lg_uniform_(t, 0, 1, g)) {
    lg_release(t);
    return NULL;
  }
  return t;
}

lg_tensor *lg_randn(lg_dtype d, int ndim, const int64_t *shape,
                    lg_generator *g) {
  if (!lg_dtype_is_float(d)) {
    lg_seterr("randn: needs a float dtype, got %s", lg_dtype_name(d));
    return NULL;
  }
  lg_tensor *t = lg_empty(d, ndim, shape);
  if (t && lg_normal_(t, 0, 1, g)) {
    lg_release(t);
    return NULL;
  }
  return t;
}

lg_tensor *lg_randperm(int64_t n, lg_generator *g) {
  if (n < 0) {
    lg_seterr("randperm: n must be non-negative, got %lld", (long long)n);
    return NULL;
  }
  if (!g)
    g = &default_gen;
  lg_tensor *t = lg_empty(LG_INT64, 1, &n);
  if (!t)
    return NULL;
  int64_t *p = t->storage->data;
  for (int64_t i = 0; i < n; i++)
    p[i] = i;
  for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
    int64_t j = (int64_t)(next64(g) % (uint64_t)(i + 1));
    int64_t tmp = p[i];
    p[i] = p[j];
    p[j] = tmp;
  }
  return t;
}
