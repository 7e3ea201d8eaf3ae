/*
 * c_api_fuzz.c -- calls the public C functions of runtime/lgrad.h and
 * runtime/nn.h with random arguments: tensors of every dtype and many
 * shapes (0-d, empty, non-contiguous views, broadcastable and not), NULL
 * tensors, revoked tensors, dims and indices in and out of range (negative,
 * huge), NaN and infinite numbers, bad enum values.  Every call must return
 * a result or fail with a message; a crash, a sanitizer report, or a
 * failure without a message ends the run.  Usage: c_api_fuzz [calls [seed]];
 * prints "calls: N, failed with a message: M, functions: F".
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/lgrad.h"

static uint64_t rng_state;
static uint64_t next_u64(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static int rnd(int n) { return (int)(next_u64() % (uint64_t)n); }

#define POOL 24
static lg_tensor *pool[POOL];
static float revoked_data[6];
static lg_tensor *pool_revoked;
static void drop(void *data, void *ctx) {
  (void)data;
  (void)ctx;
}

/* a fresh random tensor for the pool */
static lg_tensor *make_tensor(void) {
  static const int64_t shapes[][4] = {{0},       {1, 3},    {1, 4},
                                      {2, 3, 4}, {2, 1, 4}, {3, 3},
                                      {1, 0},    {2, 2, 2}, {1, 4}};
  int k = rnd(9);
  int ndim = (int)shapes[k][0];
  const int64_t *shape = shapes[k] + 1;
  lg_dtype d = (lg_dtype)rnd(LG_NDTYPES);
  lg_tensor *t = lg_rand(LG_FLOAT64, ndim, shape, NULL);
  if (!t)
    return NULL;
  lg_tensor *c = lg_to_dtype(t, d);
  lg_release(t);
  if (c && rnd(4) == 0 && c->ndim >= 2) { /* a non-contiguous view */
    lg_tensor *v = lg_transpose(c, 0, 1);
    lg_release(c);
    c = v;
  }
  if (c && rnd(6) == 0 && lg_dtype_is_float(c->dtype))
    lg_set_requires_grad(c, true);
  return c;
}

static lg_tensor *pick(void) {
  int k = rnd(POOL + 3);
  if (k == POOL)
    return NULL;       /* a NULL tensor */
  if (k == POOL + 1) { /* a revoked one (made once, kept to the end) */
    static lg_tensor *revoked;
    if (!revoked) {
      revoked = lg_wrap(LG_FLOAT32, 2, (int64_t[]){2, 3}, NULL, revoked_data,
                        drop, NULL);
      if (revoked)
        lg_storage_revoke(revoked->storage);
      pool_revoked = revoked;
    }
    return revoked;
  }
  if (k == POOL + 2)
    k = rnd(POOL);
  return pool[k % POOL];
}

static int pick_dim(void) {
  static const int dims[] = {
      0,   1,    2,           3,          -1,
      -2,  -4,   7,           8,          -9,
      100, -100, LG_ALL_DIMS, 2147483647, -2147483647 - 1};
  return dims[rnd(15)];
}
static int64_t pick_i64(void) {
  static const int64_t v[] = {
      0, 1, 2, 3, -1, -3, 5, 100, INT64_MAX, INT64_MIN, (int64_t)1 << 40, 4};
  return v[rnd(12)];
}
static double pick_num(void) {
  static const double v[] = {0,      1,   -1,       0.5,       2,      1e300,
                             -1e300, NAN, INFINITY, -INFINITY, 1e-300, 3};
  return v[rnd(12)];
}
static int64_t shape_buf[LG_MAX_DIMS + 2];
static int pick_shape(const int64_t **shape) {
  int nd = rnd(12) == 0 ? LG_MAX_DIMS + 1 - rnd(2) * 10 : rnd(4);
  for (int i = 0; i < LG_MAX_DIMS + 2; i++)
    shape_buf[i] = rnd(8) == 0 ? pick_i64() : rnd(4);
  if (rnd(8) == 0)
    shape_buf[0] = -1;
  *shape = rnd(16) == 0 ? NULL : shape_buf;
  return nd;
}

static long calls, failures;
static int current_f;
static lg_tensor *cur_args[3];

static void describe(const char *what, lg_tensor *t) {
  char b[200];
  if (!t)
    printf("  %s: NULL\n", what);
  else
    printf("  %s: %s %s%s\n", what, lg_dtype_name(t->dtype),
           lg_shape_str(t, b, sizeof b), t->storage->revoked ? " revoked" : "");
}
static int nfunctions;

/* a result: released; a failure: must carry a message */
static void check_t(lg_tensor *t) {
  calls++;
  if (t) {
    if (rnd(8) == 0) { /* keep some results as inputs */
      int k = 1 + rnd(POOL - 1);
      lg_release(pool[k]);
      pool[k] = t;
    } else {
      lg_release(t);
    }
    return;
  }
  failures++;
  if (!lg_error()) {
    printf("a call failed without a message (call %ld, case %d)\n", calls,
           current_f);
    describe("a", cur_args[0]), describe("b", cur_args[1]),
        describe("c", cur_args[2]);
    exit(1);
  }
}
static void check_rc(int rc) {
  calls++;
  if (rc >= 0)
    return;
  failures++;
  if (!lg_error()) {
    printf("a call failed without a message (call %ld, case %d)\n", calls,
           current_f);
    exit(1);
  }
}

static void one_call(int f) {
  current_f = f;
  lg_tensor *a = pick(), *b = pick(), *c = pick();
  cur_args[0] = a, cur_args[1] = b, cur_args[2] = c;
  const int64_t *shape;
  int nd;
  lg_dtype d = (lg_dtype)(rnd(10) == 0 ? 7 : rnd(LG_NDTYPES));
  lg_tensor *v = NULL, *ix = NULL;
  lg_clear_error();
  switch (f) {
  case 0:
    nd = pick_shape(&shape);
    check_t(lg_empty(d, nd, shape));
    break;
  case 1:
    nd = pick_shape(&shape);
    check_t(lg_zeros(d, nd, shape));
    break;
  case 2:
    nd = pick_shape(&shape);
    check_t(lg_full(d, nd, shape, pick_num()));
    break;
  case 3:
    check_t(lg_eye(d, pick_i64() % 64, pick_i64() % 64));
    break;
  case 4:
    check_t(lg_range(d, pick_num(), pick_num(), pick_num()));
    break;
  case 5:
    check_t(lg_linspace(d, pick_num(), pick_num(), pick_i64() % 64));
    break;
  case 6:
    check_t(lg_empty_like(a));
    break;
  case 7:
    check_t(lg_zeros_like(a));
    break;
  case 8:
    check_rc(lg_uniform_(a, pick_num(), pick_num(), NULL));
    break;
  case 9:
    check_rc(lg_normal_(a, pick_num(), pick_num(), NULL));
    break;
  case 10:
    check_rc(lg_randint_(a, pick_i64(), pick_i64(), NULL));
    break;
  case 11:
    check_rc(lg_bernoulli_(a, pick_num(), NULL));
    break;
  case 12:
    nd = pick_shape(&shape);
    check_t(lg_rand(d, nd, shape, NULL));
    break;
  case 13:
    check_t(lg_randperm(pick_i64() % 100, NULL));
    break;
  case 14: {
    int64_t idx[LG_MAX_DIMS];
    for (int i = 0; i < LG_MAX_DIMS; i++)
      idx[i] = pick_i64() % 5;
    check_rc(lg_set(a, rnd(8) ? idx : NULL, pick_num()));
    double out;
    check_rc(lg_get_value(a, rnd(8) ? idx : NULL, &out));
    break;
  }
  case 15: {
    double out;
    check_rc(lg_item_value(a, &out));
    break;
  }
  case 16:
    nd = pick_shape(&shape);
    check_t(lg_view(a, nd, shape));
    break;
  case 17:
    nd = pick_shape(&shape);
    check_t(lg_reshape(a, nd, shape));
    break;
  case 18:
    check_t(lg_transpose(a, pick_dim(), pick_dim()));
    break;
  case 19: {
    int dims[LG_MAX_DIMS];
    for (int i = 0; i < LG_MAX_DIMS; i++)
      dims[i] = pick_dim();
    check_t(lg_permute(a, rnd(8) ? dims : NULL));
    break;
  }
  case 20:
    nd = pick_shape(&shape);
    check_t(lg_expand(a, nd, shape));
    break;
  case 21:
    check_t(lg_narrow(a, pick_dim(), pick_i64(), pick_i64()));
    break;
  case 22:
    check_t(lg_select(a, pick_dim(), pick_i64()));
    break;
  case 23:
    check_t(lg_squeeze(a, pick_dim()));
    break;
  case 24:
    check_t(lg_unsqueeze(a, pick_dim()));
    break;
  case 25:
    check_t(lg_flatten(a, pick_dim(), pick_dim()));
    break;
  case 26:
    check_t(lg_contiguous(a));
    break;
  case 27:
    check_t(lg_clone(a));
    break;
  case 28:
    check_t(lg_to_dtype(a, d));
    break;
  case 29:
    check_t(lg_detach(a));
    break;
  case 30:
    check_rc(lg_copy_(a, b));
    break;
  case 31:
    check_rc(lg_fill_(a, pick_num()));
    break;
  case 32:
    check_rc(lg_zero_(a));
    break;
  case 33:
    check_t(lg_binary((lg_binop)rnd(LG_NBINOPS + 2), a, b));
    break;
  case 34:
    check_t(
        lg_binary_scalar((lg_binop)rnd(LG_NBINOPS + 2), a, pick_num(), rnd(2)));
    break;
  case 35:
    check_rc(lg_binary_((lg_binop)rnd(LG_NBINOPS + 2), a, b));
    break;
  case 36:
    check_rc(lg_binary_scalar_((lg_binop)rnd(LG_NBINOPS + 2), a, pick_num()));
    break;
  case 37:
    check_t(lg_unary((lg_unop)rnd(LG_NUNOPS + 2), a));
    break;
  case 38:
    check_rc(lg_unary_((lg_unop)rnd(LG_NUNOPS + 2), a));
    break;
  case 39:
    check_t(lg_clamp(a, pick_num(), pick_num()));
    break;
  case 40:
    check_t(lg_leaky_relu(a, pick_num()));
    break;
  case 41:
    check_t(lg_where(a, b, c));
    break;
  case 42:
    check_rc(lg_axpy_(a, pick_num(), b));
    break;
  case 43:
    check_t(lg_reduce((lg_redop)rnd(9), a, pick_dim(), rnd(2)));
    break;
  case 44:
    check_t(lg_sum(a));
    break;
  case 45:
    nd = pick_shape(&shape);
    check_t(lg_sum_to(a, nd, shape));
    break;
  case 46:
    check_t(lg_var(a, pick_dim(), rnd(2), rnd(2)));
    break;
  case 47:
    check_t(lg_norm(a, pick_num(), pick_dim(), rnd(2)));
    break;
  case 48:
    check_t(lg_logsumexp(a, pick_dim(), rnd(2)));
    break;
  case 49:
    check_t(lg_softmax(a, pick_dim()));
    break;
  case 50:
    check_t(lg_log_softmax(a, pick_dim()));
    break;
  case 51:
    check_t(lg_cumsum(a, pick_dim()));
    break;
  case 52:
    check_rc(lg_max_dim(a, pick_dim(), rnd(2), rnd(2), &v, &ix));
    lg_release(v);
    lg_release(ix);
    break;
  case 53:
    check_t(lg_argmax(a, pick_dim(), rnd(2), rnd(2)));
    break;
  case 54:
    check_t(lg_index_select(a, pick_dim(), b));
    break;
  case 55:
    check_t(lg_gather(a, pick_dim(), b));
    break;
  case 56:
    check_rc(lg_scatter_(a, pick_dim(), b, c));
    break;
  case 57:
    check_t(lg_scatter_add(a, pick_dim(), b, c));
    break;
  case 58:
    check_t(lg_index_add(a, pick_dim(), b, c));
    break;
  case 59:
    check_t(lg_masked_fill(a, b, pick_num()));
    break;
  case 60: {
    lg_tensor *ts[3] = {a, b, c};
    check_t(lg_cat(rnd(4) - (rnd(8) == 0), rnd(8) ? ts : NULL, pick_dim()));
    break;
  }
  case 61: {
    lg_tensor *ts[3] = {a, b, c};
    check_t(lg_stack(rnd(4), rnd(8) ? ts : NULL, pick_dim()));
    break;
  }
  case 62:
    check_rc(lg_topk(a, pick_i64(), pick_dim(), rnd(2), rnd(2), &v, &ix));
    lg_release(v);
    lg_release(ix);
    break;
  case 63:
    check_rc(lg_sort(a, pick_dim(), rnd(2), &v, &ix));
    lg_release(v);
    lg_release(ix);
    break;
  case 64:
    check_t(lg_matmul(a, b));
    break;
  case 65:
    check_t(lg_mm(a, b));
    break;
  case 66:
    check_t(lg_dot(a, b));
    break;
  case 67:
    check_t(lg_outer(a, b));
    break;
  case 68:
    check_rc(lg_set_requires_grad(a, rnd(2)));
    break;
  case 69: {
    lg_tensor *s = lg_sum(a);
    if (s) {
      check_rc(lg_backward(s, rnd(4) ? NULL : b, rnd(2), false));
      lg_release(s);
    } else {
      check_rc(lg_backward(NULL, NULL, false, false));
    }
    break;
  }
  case 70: {
    lg_tensor *grads[1] = {NULL};
    lg_tensor *outs[1] = {b};
    lg_tensor *ins[1] = {a};
    check_rc(lg_grad(1, rnd(8) ? outs : NULL, NULL, 1, rnd(8) ? ins : NULL,
                     grads, false, false, rnd(2)));
    lg_release(grads[0]);
    break;
  }
  case 71:
    check_t(lg_linear(a, b, rnd(2) ? c : NULL));
    break;
  case 72: {
    lg_conv2d_opts o = LG_CONV2D_DEFAULTS;
    o.stride[0] = pick_i64() % 4;
    o.padding[1] = pick_i64() % 3;
    o.groups = rnd(4) ? 1 : pick_i64();
    check_t(lg_conv2d(a, b, rnd(2) ? c : NULL, rnd(8) ? &o : NULL));
    break;
  }
  case 73: {
    lg_pool2d_opts o = LG_POOL2D_DEFAULTS;
    o.kernel[0] = pick_i64() % 4;
    o.kernel[1] = 1 + rnd(2);
    check_t(lg_max_pool2d(a, rnd(8) ? &o : NULL, rnd(2) ? &ix : NULL));
    lg_release(ix);
    check_t(lg_avg_pool2d(a, rnd(8) ? &o : NULL));
    break;
  }
  case 74:
    check_t(lg_embedding(a, b, pick_i64(), rnd(2)));
    break;
  case 75:
    check_t(lg_dropout(a, pick_num(), rnd(2), NULL));
    break;
  case 76:
    check_t(lg_one_hot(a, pick_i64() % 10, rnd(2)));
    break;
  case 77:
    nd = pick_shape(&shape);
    check_t(lg_layer_norm(a, nd, shape, rnd(2) ? b : NULL, rnd(2) ? c : NULL,
                          pick_num()));
    break;
  case 78:
    check_t(lg_batch_norm(a, rnd(2) ? b : NULL, rnd(2) ? c : NULL, NULL, NULL,
                          rnd(2), pick_num(), pick_num()));
    break;
  case 79:
    check_t(lg_mse_loss(a, b, (lg_reduction)rnd(5)));
    break;
  case 80:
    check_t(lg_l1_loss(a, b, (lg_reduction)rnd(5)));
    break;
  case 81:
    check_t(lg_smooth_l1_loss(a, b, pick_num(), (lg_reduction)rnd(5)));
    break;
  case 82:
    check_t(lg_huber_loss(a, b, pick_num(), (lg_reduction)rnd(5)));
    break;
  case 83:
    check_t(lg_cross_entropy(a, b, rnd(2) ? c : NULL, pick_num(), pick_i64(),
                             rnd(2), (lg_reduction)rnd(5)));
    break;
  case 84:
    check_t(lg_nll_loss(a, b, rnd(2) ? c : NULL, pick_i64(), rnd(2),
                        (lg_reduction)rnd(5)));
    break;
  case 85:
    check_t(
        lg_binary_cross_entropy(a, b, rnd(2) ? c : NULL, (lg_reduction)rnd(5)));
    break;
  case 86:
    check_t(lg_bce_with_logits(a, b, rnd(2) ? c : NULL, NULL,
                               (lg_reduction)rnd(5)));
    break;
  case 87:
    check_t(lg_kl_div(a, b, rnd(2), (lg_reduction)rnd(5)));
    break;
  case 88: {
    lg_optim *o = lg_optim_new(rnd(8) ? "SGD" : "Nope");
    if (!o) {
      check_rc(-1);
      break;
    }
    lg_tensor *ps[2] = {a, b};
    check_rc(
        lg_optim_add_params(o, 1 + rnd(2), rnd(8) ? ps : NULL, pick_num()));
    check_rc(lg_optim_set(o, rnd(3) - 1, rnd(2) ? "lr" : "lrr", pick_num()));
    double x;
    check_rc(lg_optim_get(o, rnd(3) - 1, rnd(2) ? "momentum" : "nope", &x));
    check_rc(lg_optim_step(o, NULL, NULL, NULL));
    check_rc(lg_optim_zero_grad(o, rnd(2)));
    lg_optim_free(o);
    break;
  }
  default:
    break;
  }
}

#define NFUNCS 89

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000;
  rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
  nfunctions = NFUNCS;
  for (int i = 0; i < POOL; i++)
    pool[i] = make_tensor();
  for (long i = 0; i < n; i++) {
    if (rnd(50) == 0) { /* refresh part of the pool */
      int k = rnd(POOL);
      lg_release(pool[k]);
      pool[k] = make_tensor();
    }
    one_call(rnd(NFUNCS));
  }
  for (int i = 0; i < POOL; i++)
    lg_release(pool[i]);
  lg_release(pool_revoked);
  printf("calls: %ld, failed with a message: %ld, functions: %d\n", calls,
         failures, nfunctions);
  return 0;
}
