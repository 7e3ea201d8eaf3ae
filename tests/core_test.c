/*
 * core_test.c -- the runtime used from C alone, linked with liblgrad.a and
 * no Lua: tensors over host memory, ops, backward, an optimizer fitting a
 * linear regression, and errors as NULL plus lg_errmsg().
 * Prints "N passed, N failed"; exit status 0 when all pass.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/lgrad.h" /* the public header only */

static int passed, failed;

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      printf("FAIL %s:%d: %s%s%s\n", __FILE__, __LINE__, what,                 \
             lg_errmsg()[0] ? " -- last error: " : "", lg_errmsg());           \
    }                                                                          \
  } while (0)

static int releases;
static void count_release(void *data, void *ctx) {
  (void)data;
  (void)ctx;
  releases++;
}

/* a matmul against plain loops, on a wrapped buffer */
static void test_matmul(void) {
  float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
  lg_tensor *ta =
      lg_wrap(LG_FLOAT32, 2, (int64_t[]){2, 3}, NULL, a, count_release, NULL);
  lg_tensor *tb = lg_from_data(LG_FLOAT32, 2, (int64_t[]){3, 2}, b);
  lg_tensor *c = lg_matmul(ta, tb);
  CHECK(c && c->ndim == 2 && c->shape[0] == 2 && c->shape[1] == 2,
        "matmul shape");
  int ok = c != NULL;
  for (int i = 0; ok && i < 2; i++)
    for (int j = 0; j < 2; j++) {
      float s = 0;
      for (int k = 0; k < 3; k++)
        s += a[i * 3 + k] * b[k * 2 + j];
      ok &= lg_get(c, (int64_t[]){i, j}) == s;
    }
  CHECK(ok, "matmul values");
  /* a view of the wrapped buffer writes through */
  lg_tensor *row = lg_select(ta, 0, 1);
  CHECK(row && lg_fill_(row, 0.5) == 0 && a[3] == 0.5f && a[5] == 0.5f &&
            a[2] == 3,
        "a view writes into host memory");
  lg_release(c);
  lg_release(tb);
  lg_release(ta);
  CHECK(releases == 0, "the view keeps the wrapped storage");
  lg_release(row);
  CHECK(releases == 1, "released at the last reference");
}

/* d/dw sum(tanh(w) * w) = tanh(w) + w (1 - tanh(w)^2) */
static void test_backward(void) {
  double init[4] = {-1.5, -0.2, 0.3, 2.0};
  lg_tensor *w = lg_from_data(LG_FLOAT64, 1, (int64_t[]){4}, init);
  lg_set_requires_grad(w, true);
  lg_tensor *t = lg_unary(LG_OP_TANH, w);
  lg_tensor *p = lg_binary(LG_OP_MUL, t, w);
  lg_tensor *s = lg_sum(p);
  CHECK(s && lg_backward(s, NULL, false, false) == 0, "backward runs");
  CHECK(w->grad != NULL, "the leaf has a gradient");
  int ok = w->grad != NULL;
  for (int i = 0; ok && i < 4; i++) {
    double th = tanh(init[i]);
    double want = th + init[i] * (1 - th * th);
    ok &= fabs(lg_get(w->grad, (int64_t[]){i}) - want) < 1e-12;
  }
  CHECK(ok, "gradient values");
  CHECK(strcmp(lg_grad_fn_name(s), "") != 0 && !lg_is_leaf(s) && lg_is_leaf(w),
        "graph bookkeeping");
  /* no_grad: nothing recorded */
  bool was = lg_set_grad_enabled(false);
  lg_tensor *q = lg_unary(LG_OP_EXP, w);
  CHECK(q && !q->requires_grad && q->grad_fn == NULL, "grad mode off");
  lg_set_grad_enabled(was);
  lg_release(q);
  lg_release(s);
  lg_release(p);
  lg_release(t);
  lg_release(w);
}

/* an op written from C against the public header: y = k * sum_i x_i over
 * six inputs, all six saved (more than LG_NODE_INLINE) and k kept in a
 * state struct of the op's own */
struct scaled_sum_state {
  double k;
};

static int scaled_sum_backward(lg_node *node, lg_tensor *g, lg_tensor **grads) {
  double k = LG_NODE_STATE(node, struct scaled_sum_state)->k;
  for (int i = 0; i < node->ninputs; i++) {
    if (!lg_node_saved(node, i)) /* each saved input comes back */
      return -1;
    if (node->needs_grad[i] &&
        !(grads[i] = lg_binary_scalar(LG_OP_MUL, g, k, false)))
      return -1;
  }
  return 0;
}

static void test_custom_node(void) {
  lg_tensor *xs[6];
  for (int i = 0; i < 6; i++) {
    xs[i] = lg_full(LG_FLOAT64, 1, (int64_t[]){3}, i + 1);
    lg_set_requires_grad(xs[i], true);
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *acc = lg_clone(xs[0]);
  for (int i = 1; i < 6; i++) {
    lg_tensor *t = lg_binary(LG_OP_ADD, acc, xs[i]);
    lg_release(acc);
    acc = t;
  }
  lg_tensor *y = lg_binary_scalar(LG_OP_MUL, acc, 2.5, false);
  lg_release(acc);
  lg_set_grad_enabled(was);
  lg_node *node = lg_record(y, "scaled_sum", scaled_sum_backward, 6, xs);
  CHECK(node != NULL, "custom node recorded");
  int rc = 0;
  for (int i = 0; node && i < 6; i++)
    rc |= lg_node_save(node, xs[i]);
  CHECK(node && rc == 0 && node->nsaved == 6, "six tensors saved");
  if (node)
    LG_NODE_STATE(node, struct scaled_sum_state)->k = 2.5;
  lg_tensor *s = lg_sum(y);
  CHECK(s && lg_backward(s, NULL, false, false) == 0, "custom backward runs");
  int ok = 1;
  for (int i = 0; i < 6; i++)
    ok &= xs[i]->grad && lg_get(xs[i]->grad, (int64_t[]){1}) == 2.5;
  CHECK(ok, "custom gradient from the kept state");
  CHECK(fabs(lg_get(y, (int64_t[]){0}) - 52.5) < 1e-12, "custom forward");
  lg_release(s);
  lg_release(y);
  for (int i = 0; i < 6; i++)
    lg_release(xs[i]);
}

/* y = X w + b + noise, fitted with Adam from C */
static void test_regression(void) {
  enum { N = 256, D = 3 };
  const double w_true[D] = {2.0, -3.0, 0.5}, b_true = 1.25;
  lg_manual_seed(7);
  lg_tensor *x = lg_randn(LG_FLOAT32, 2, (int64_t[]){N, D}, NULL);
  lg_tensor *noise = lg_randn(LG_FLOAT32, 2, (int64_t[]){N, 1}, NULL);
  float ydata[N];
  for (int i = 0; i < N; i++) {
    double v = b_true + 0.01 * lg_get(noise, (int64_t[]){i, 0});
    for (int j = 0; j < D; j++)
      v += w_true[j] * lg_get(x, (int64_t[]){i, j});
    ydata[i] = (float)v;
  }
  lg_tensor *y = lg_from_data(LG_FLOAT32, 2, (int64_t[]){N, 1}, ydata);
  lg_tensor *w = lg_zeros(LG_FLOAT32, 2, (int64_t[]){D, 1});
  lg_tensor *b = lg_zeros(LG_FLOAT32, 1, (int64_t[]){1});
  lg_set_requires_grad(w, true);
  lg_set_requires_grad(b, true);

  lg_optim *opt = lg_optim_new("Adam");
  CHECK(opt != NULL, "Adam created");
  if (!opt)
    return;
  CHECK(lg_optim_add_params(opt, 2, (lg_tensor *[]){w, b}, 0.05) == 0,
        "parameter group");
  double first = 0, last = 0;
  int ok = 1;
  for (int step = 0; step < 400 && ok; step++) {
    lg_tensor *xw = lg_matmul(x, w);
    lg_tensor *pred = xw ? lg_binary(LG_OP_ADD, xw, b) : NULL;
    lg_tensor *loss = pred ? lg_mse_loss(pred, y, LG_REDUCTION_MEAN) : NULL;
    ok = loss && lg_optim_zero_grad(opt, true) == 0 &&
         lg_backward(loss, NULL, false, false) == 0 &&
         lg_optim_step(opt, NULL, NULL, NULL) == 0;
    if (loss) {
      last = lg_item(loss);
      if (step == 0)
        first = last;
    }
    lg_release(loss);
    lg_release(pred);
    lg_release(xw);
  }
  CHECK(ok, "400 training steps");
  CHECK(last < 1e-3 && last < first / 1000, "the loss falls");
  int close = 1;
  for (int j = 0; j < D; j++)
    close &= fabs(lg_get(w, (int64_t[]){j, 0}) - w_true[j]) < 0.01;
  close &= fabs(lg_get(b, (int64_t[]){0}) - b_true) < 0.01;
  CHECK(close, "weights recovered");
  lg_optim_free(opt);
  lg_release(w);
  lg_release(b);
  lg_release(y);
  lg_release(noise);
  lg_release(x);
}

static void test_errors(void) {
  lg_tensor *a = lg_zeros(LG_FLOAT32, 2, (int64_t[]){2, 3});
  lg_tensor *b = lg_zeros(LG_FLOAT32, 2, (int64_t[]){4, 5});
  lg_tensor *c = lg_matmul(a, b);
  CHECK(c == NULL, "a shape mismatch returns NULL");
  CHECK(strstr(lg_errmsg(), "[2,3]") && strstr(lg_errmsg(), "[4,5]"),
        "the message has both shapes");
  CHECK(lg_binary(LG_OP_ADD, a, b) == NULL && strstr(lg_errmsg(), "[4,5]"),
        "broadcast mismatch");
  CHECK(lg_zeros(LG_FLOAT32, 1, (int64_t[]){-1}) == NULL,
        "a negative size is refused");
  CHECK(lg_optim_new("NoSuchOptimizer") == NULL, "unknown optimizer");
  lg_release(a);
  lg_release(b);
}

int main(void) {
  test_matmul();
  test_backward();
  test_custom_node();
  test_regression();
  test_errors();
  lg_mem_trim();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
