/*
 * ops/pointwise.c -- element-wise unary and binary ops with NumPy
 * broadcasting, their in-place twins, and their backward functions.
 *
 * Dispatch: the result dtype is decided once, inputs of another dtype are
 * converted, then one of three kernels runs: contiguous same-shape, a
 * scalar on one side, or the general strided iterator.
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"

/* the op tables, from ops/ops.def; a missing entry does not compile */
#define LG_BINOP(ID, name, family, flags) {#name, #family, flags, ""},
static const lg_op_info binop_info[] = {
#include "ops.def"
};
#define LG_UNOP(ID, name, family, flags, Module)                              \
  {#name, #family, flags, #Module},
static const lg_op_info unop_info[] = {
#include "ops.def"
};
_Static_assert(sizeof binop_info / sizeof binop_info[0] == LG_NBINOPS,
               "binop_info: one entry per lg_binop");
_Static_assert(sizeof unop_info / sizeof unop_info[0] == LG_NUNOPS,
               "unop_info: one entry per lg_unop");

const lg_op_info *lg_binop_info(lg_binop op) {
  return (unsigned)op < LG_NBINOPS ? &binop_info[op] : NULL;
}
const lg_op_info *lg_unop_info(lg_unop op) {
  return (unsigned)op < LG_NUNOPS ? &unop_info[op] : NULL;
}
const char *lg_binop_name(lg_binop op) {
  return (unsigned)op < LG_NBINOPS ? binop_info[op].name : "?";
}
const char *lg_unop_name(lg_unop op) {
  return (unsigned)op < LG_NUNOPS ? unop_info[op].name : "?";
}

/* the comparisons as a bit set, a constant, so the hot paths test one bit */
#define LG_BINOP(ID, name, family, flags)                                     \
  | ((flags) & LG_OPF_COMPARE ? UINT64_C(1) << LG_OP_##ID : 0)
static const uint64_t compare_ops = 0
#include "ops.def"
    ;
_Static_assert(LG_NBINOPS <= 64, "compare_ops: one bit per lg_binop");
static bool is_compare(lg_binop op) { return (compare_ops >> op) & 1; }

/* a unary op with a bool result (logical_not): un_d gives 0 or 1 */
static bool is_predicate(lg_unop op) {
  return unop_info[op].flags & LG_OPF_COMPARE;
}

/* ---- scalar formulas ---- */

#define SQRT1_2 0.70710678118654752440
#define GELU_K 0.79788456080286535588 /* sqrt(2/pi) */

static inline double bin_d(lg_binop op, double x, double y) {
  switch (op) {
  case LG_OP_ADD: return x + y;
  case LG_OP_SUB: return x - y;
  case LG_OP_MUL: return x * y;
  case LG_OP_DIV: return x / y;
  case LG_OP_POW: return pow(x, y);
  case LG_OP_MAXIMUM: return (x != x || y != y) ? NAN : x > y ? x : y;
  case LG_OP_MINIMUM: return (x != x || y != y) ? NAN : x < y ? x : y;
  case LG_OP_ATAN2: return atan2(x, y);
  default: return 0;
  }
}

static inline float bin_f(lg_binop op, float x, float y) {
  switch (op) {
  case LG_OP_ADD: return x + y;
  case LG_OP_SUB: return x - y;
  case LG_OP_MUL: return x * y;
  case LG_OP_DIV: return x / y;
  case LG_OP_POW: return y == 2.0f ? x * x : powf(x, y);
  case LG_OP_MAXIMUM: return (x != x || y != y) ? NAN : x > y ? x : y;
  case LG_OP_MINIMUM: return (x != x || y != y) ? NAN : x < y ? x : y;
  case LG_OP_ATAN2: return atan2f(x, y);
  default: return 0;
  }
}

/* int64 arithmetic wraps around (two's complement) as in PyTorch: it is
 * done in uint64_t, where overflow is defined, and converted back */
static inline int64_t wrap_mul(int64_t x, int64_t y) {
  return (int64_t)((uint64_t)x * (uint64_t)y);
}
static inline int64_t wrap_neg(int64_t x) {
  return (int64_t)(0 - (uint64_t)x);
}

static inline int64_t ipow(int64_t b, int64_t e) {
  if (e < 0)
    return b == 1 ? 1 : b == -1 ? (e & 1 ? -1 : 1) : 0;
  uint64_t r = 1, ub = (uint64_t)b;
  while (e) {
    if (e & 1) r *= ub;
    ub *= ub;
    e >>= 1;
  }
  return (int64_t)r;
}

static inline int64_t bin_i(lg_binop op, int64_t x, int64_t y) {
  switch (op) {
  case LG_OP_ADD: return (int64_t)((uint64_t)x + (uint64_t)y);
  case LG_OP_SUB: return (int64_t)((uint64_t)x - (uint64_t)y);
  case LG_OP_MUL: return wrap_mul(x, y);
  case LG_OP_POW: return ipow(x, y);
  case LG_OP_MAXIMUM: return x > y ? x : y;
  case LG_OP_MINIMUM: return x < y ? x : y;
  default: return 0;
  }
}

static inline uint8_t cmp_d(lg_binop op, double x, double y) {
  switch (op) {
  case LG_OP_EQ: return x == y;
  case LG_OP_NE: return x != y;
  case LG_OP_LT: return x < y;
  case LG_OP_LE: return x <= y;
  case LG_OP_GT: return x > y;
  case LG_OP_GE: return x >= y;
  case LG_OP_AND: return x != 0 && y != 0;
  case LG_OP_OR: return x != 0 || y != 0;
  default: return 0;
  }
}

/* int64 compared as int64: doubles would round values beyond 2^53 */
static inline uint8_t cmp_i(lg_binop op, int64_t x, int64_t y) {
  switch (op) {
  case LG_OP_EQ: return x == y;
  case LG_OP_NE: return x != y;
  case LG_OP_LT: return x < y;
  case LG_OP_LE: return x <= y;
  case LG_OP_GT: return x > y;
  case LG_OP_GE: return x >= y;
  case LG_OP_AND: return x != 0 && y != 0;
  case LG_OP_OR: return x != 0 || y != 0;
  default: return 0;
  }
}

static inline double un_d(lg_unop op, double x) {
  switch (op) {
  case LG_OP_NEG: return -x;
  case LG_OP_EXP: return exp(x);
  case LG_OP_LOG: return log(x);
  case LG_OP_LOG1P: return log1p(x);
  case LG_OP_SQRT: return sqrt(x);
  case LG_OP_RSQRT: return 1 / sqrt(x);
  case LG_OP_ABS: return fabs(x);
  case LG_OP_SIGN: return (x > 0) - (x < 0);
  case LG_OP_SIN: return sin(x);
  case LG_OP_COS: return cos(x);
  case LG_OP_TANH: return tanh(x);
  case LG_OP_SIGMOID: return 1 / (1 + exp(-x));
  case LG_OP_RELU: return x > 0 ? x : (x != x ? x : 0);
  case LG_OP_GELU: return 0.5 * x * (1 + erf(x * SQRT1_2));
  case LG_OP_GELU_TANH:
    return 0.5 * x * (1 + tanh(GELU_K * (x + 0.044715 * x * x * x)));
  case LG_OP_SOFTPLUS: return x > 20 ? x : log1p(exp(x));
  case LG_OP_SQUARE: return x * x;
  case LG_OP_RECIPROCAL: return 1 / x;
  case LG_OP_FLOOR: return floor(x);
  case LG_OP_CEIL: return ceil(x);
  case LG_OP_ROUND: return nearbyint(x);
  case LG_OP_NOT: return x == 0;
  case LG_OP_EXPM1: return expm1(x);
  case LG_OP_ERF: return erf(x);
  case LG_OP_SILU: return x / (1 + exp(-x));
  case LG_OP_LOG2: return log2(x);
  default: return 0;
  }
}

static inline float un_f(lg_unop op, float x) {
  switch (op) {
  case LG_OP_NEG: return -x;
  case LG_OP_EXP: return expf(x);
  case LG_OP_LOG: return logf(x);
  case LG_OP_LOG1P: return log1pf(x);
  case LG_OP_SQRT: return sqrtf(x);
  case LG_OP_RSQRT: return 1 / sqrtf(x);
  case LG_OP_ABS: return fabsf(x);
  case LG_OP_SIGN: return (float)((x > 0) - (x < 0));
  case LG_OP_SIN: return sinf(x);
  case LG_OP_COS: return cosf(x);
  case LG_OP_TANH: return tanhf(x);
  case LG_OP_SIGMOID: return 1 / (1 + expf(-x));
  case LG_OP_RELU: return x > 0 ? x : (x != x ? x : 0);
  case LG_OP_GELU: return 0.5f * x * (1 + erff(x * (float)SQRT1_2));
  case LG_OP_GELU_TANH:
    return 0.5f * x *
           (1 + tanhf((float)GELU_K * (x + 0.044715f * x * x * x)));
  case LG_OP_SOFTPLUS: return x > 20 ? x : log1pf(expf(x));
  case LG_OP_SQUARE: return x * x;
  case LG_OP_RECIPROCAL: return 1 / x;
  case LG_OP_FLOOR: return floorf(x);
  case LG_OP_CEIL: return ceilf(x);
  case LG_OP_ROUND: return nearbyintf(x);
  case LG_OP_NOT: return x == 0;
  case LG_OP_EXPM1: return expm1f(x);
  case LG_OP_ERF: return erff(x);
  case LG_OP_SILU: return x / (1 + expf(-x));
  case LG_OP_LOG2: return log2f(x);
  default: return 0;
  }
}

static inline int64_t un_i(lg_unop op, int64_t x) {
  switch (op) {
  case LG_OP_NEG: return wrap_neg(x); /* -INT64_MIN is INT64_MIN */
  case LG_OP_ABS: return x < 0 ? wrap_neg(x) : x;
  case LG_OP_SIGN: return (x > 0) - (x < 0);
  case LG_OP_SQUARE: return wrap_mul(x, x);
  case LG_OP_RELU: return x > 0 ? x : 0;
  case LG_OP_NOT: return x == 0;
  default: return x; /* floor, ceil, round */
  }
}

/* ---- kernels ---- */

/* loops over the iterator; BODY sees o, x, y (pointers) and i, so, sx, sy */
#define ITER3(it, TO, TX, TY, out, a, b, BODY)                                \
  do {                                                                        \
    TO *ob = (TO *)(out)->storage->data + (out)->offset;                      \
    const TX *xb = (const TX *)(a)->storage->data + (a)->offset;              \
    const TY *yb = (const TY *)(b)->storage->data + (b)->offset;              \
    int64_t n = lg_iter_inner(&it), so = lg_iter_istride(&it, 0),             \
            sx = lg_iter_istride(&it, 1), sy = lg_iter_istride(&it, 2);       \
    if (it.remaining > 0)                                                     \
      do {                                                                    \
        TO *o = ob + it.offs[0];                                              \
        const TX *x = xb + it.offs[1];                                        \
        const TY *y = yb + it.offs[2];                                        \
        (void)x;                                                              \
        (void)y;                                                              \
        if (so == 1 && sx == 1 && sy == 1) {                                  \
          for (int64_t i = 0; i < n; i++) {                                   \
            const int64_t io = i, ix = i, iy = i; (void)ix; (void)iy;       \
            BODY;                                                             \
          }                                                                   \
        } else if (so == 1 && sx == 1 && sy == 0) {                           \
          for (int64_t i = 0; i < n; i++) {                                   \
            const int64_t io = i, ix = i, iy = 0; (void)ix; (void)iy;       \
            BODY;                                                             \
          }                                                                   \
        } else {                                                              \
          for (int64_t i = 0; i < n; i++) {                                   \
            const int64_t io = i * so, ix = i * sx, iy = i * sy; (void)ix; (void)iy; \
            BODY;                                                             \
          }                                                                   \
        }                                                                     \
      } while (lg_iter_next(&it));                                            \
  } while (0)

/* out[i] = a[i] OP b[i] over broadcast shape; all of the compute dtype
 * except out, which is bool for comparisons */
static void binary_kernel(lg_binop op, lg_tensor *out, lg_tensor *a,
                          lg_tensor *b) {
  if (a->dtype == LG_FLOAT32 && !is_compare(op) && lg_same_shape(a, b) &&
      lg_same_shape(a, out) && lg_is_contiguous(a) && lg_is_contiguous(b) &&
      lg_is_contiguous(out)) { /* the common case, without the iterator */
    float *o = lg_data_ptr(out);
    const float *x = lg_data_ptr(a), *y = lg_data_ptr(b);
    int64_t n = lg_numel(out);
    switch (op) {
    case LG_OP_ADD:
      for (int64_t i = 0; i < n; i++)
        o[i] = x[i] + y[i];
      return;
    case LG_OP_SUB:
      for (int64_t i = 0; i < n; i++)
        o[i] = x[i] - y[i];
      return;
    case LG_OP_MUL:
      for (int64_t i = 0; i < n; i++)
        o[i] = x[i] * y[i];
      return;
    default:
      for (int64_t i = 0; i < n; i++)
        o[i] = bin_f(op, x[i], y[i]);
      return;
    }
  }
  int64_t sa[LG_MAX_DIMS], sb[LG_MAX_DIMS];
  lg_broadcast_strides(a, out->ndim, out->shape, sa);
  lg_broadcast_strides(b, out->ndim, out->shape, sb);
  const int64_t *strides[3] = {out->strides, sa, sb};
  lg_iter it;
  lg_iter_init(&it, out->ndim, out->shape, 3, strides);
  lg_dtype d = a->dtype;
  if (is_compare(op)) {
    switch (d) {
    case LG_FLOAT32:
      ITER3(it, uint8_t, float, float, out, a, b,
            o[io] = cmp_d(op, x[ix], y[iy]));
      break;
    case LG_FLOAT64:
      ITER3(it, uint8_t, double, double, out, a, b,
            o[io] = cmp_d(op, x[ix], y[iy]));
      break;
    case LG_INT64:
      ITER3(it, uint8_t, int64_t, int64_t, out, a, b,
            o[io] = cmp_i(op, x[ix], y[iy]));
      break;
    default:
      ITER3(it, uint8_t, uint8_t, uint8_t, out, a, b,
            o[io] = cmp_d(op, x[ix], y[iy]));
    }
    return;
  }
  switch (d) {
  case LG_FLOAT32:
    switch (op) { /* the hot ones get their own loops */
    case LG_OP_ADD:
      ITER3(it, float, float, float, out, a, b, o[io] = x[ix] + y[iy]);
      break;
    case LG_OP_SUB:
      ITER3(it, float, float, float, out, a, b, o[io] = x[ix] - y[iy]);
      break;
    case LG_OP_MUL:
      ITER3(it, float, float, float, out, a, b, o[io] = x[ix] * y[iy]);
      break;
    case LG_OP_DIV:
      ITER3(it, float, float, float, out, a, b, o[io] = x[ix] / y[iy]);
      break;
    default:
      ITER3(it, float, float, float, out, a, b,
            o[io] = bin_f(op, x[ix], y[iy]));
    }
    break;
  case LG_FLOAT64:
    ITER3(it, double, double, double, out, a, b,
          o[io] = bin_d(op, x[ix], y[iy]));
    break;
  default:
    ITER3(it, int64_t, int64_t, int64_t, out, a, b,
          o[io] = bin_i(op, x[ix], y[iy]));
  }
}

/* out[i] = a[i] OP s, or s OP a[i] */
static void scalar_kernel(lg_binop op, lg_tensor *out, lg_tensor *a, double s,
                          bool first) {
  if (a->dtype == LG_FLOAT32 && !is_compare(op) && out != a &&
      lg_is_contiguous(a) && lg_is_contiguous(out)) {
    /* contiguous float32, without the iterator */
    float *o = lg_data_ptr(out), fs = (float)s;
    const float *x = lg_data_ptr(a);
    int64_t n = lg_numel(out);
    if (!first && op == LG_OP_MUL)
      for (int64_t i = 0; i < n; i++)
        o[i] = x[i] * fs;
    else if (!first && op == LG_OP_ADD)
      for (int64_t i = 0; i < n; i++)
        o[i] = x[i] + fs;
    else if (first)
      for (int64_t i = 0; i < n; i++)
        o[i] = bin_f(op, fs, x[i]);
    else
      for (int64_t i = 0; i < n; i++)
        o[i] = bin_f(op, x[i], fs);
    return;
  }
  int64_t zero[LG_MAX_DIMS] = {0};
  const int64_t *strides[3] = {out->strides, a->strides, zero};
  lg_iter it;
  lg_iter_init(&it, out->ndim, out->shape, 3, strides);
  lg_dtype d = a->dtype;
  if (is_compare(op) && d == LG_FLOAT32 && lg_is_contiguous(a) &&
      lg_is_contiguous(out)) {
    uint8_t *o = lg_data_ptr(out);
    const float *x = lg_data_ptr(a);
    int64_t n = lg_numel(out);
    for (int64_t i = 0; i < n; i++)
      o[i] = first ? cmp_d(op, s, x[i]) : cmp_d(op, x[i], s);
    return;
  }
  if (is_compare(op)) {
    if (first)
      ITER3(it, uint8_t, uint8_t, uint8_t, out, out, out,
            o[io] = cmp_d(op, s, lg_load(d, a->storage->data,
                                         a->offset + it.offs[1] + i * sx)));
    else
      ITER3(it, uint8_t, uint8_t, uint8_t, out, out, out,
            o[io] = cmp_d(op, lg_load(d, a->storage->data,
                                      a->offset + it.offs[1] + i * sx),
                          s));
    return;
  }
  if (d == LG_FLOAT32) {
    float fs = (float)s;
    if (!first && op == LG_OP_ADD)
      ITER3(it, float, float, float, out, a, out, o[io] = x[ix] + fs);
    else if (!first && op == LG_OP_MUL)
      ITER3(it, float, float, float, out, a, out, o[io] = x[ix] * fs);
    else if (!first && op == LG_OP_SUB)
      ITER3(it, float, float, float, out, a, out, o[io] = x[ix] - fs);
    else if (first)
      ITER3(it, float, float, float, out, a, out,
            o[io] = bin_f(op, fs, x[ix]));
    else
      ITER3(it, float, float, float, out, a, out,
            o[io] = bin_f(op, x[ix], fs));
  } else if (d == LG_FLOAT64) {
    if (first)
      ITER3(it, double, double, double, out, a, out,
            o[io] = bin_d(op, s, x[ix]));
    else
      ITER3(it, double, double, double, out, a, out,
            o[io] = bin_d(op, x[ix], s));
  } else { /* s passed int64_scalar (scalar_compute_dtype) */
    int64_t is = (int64_t)s;
    if (first)
      ITER3(it, int64_t, int64_t, int64_t, out, a, out,
            o[io] = bin_i(op, is, x[ix]));
    else
      ITER3(it, int64_t, int64_t, int64_t, out, a, out,
            o[io] = bin_i(op, x[ix], is));
  }
}

/* contiguous float32: one loop per op, so each can be vectorized */
static bool unary_f32_fast(lg_unop op, lg_tensor *out, lg_tensor *a) {
  if (a->dtype != LG_FLOAT32 || !lg_is_contiguous(a) ||
      !lg_is_contiguous(out))
    return false;
  float *o = lg_data_ptr(out);
  const float *x = lg_data_ptr(a);
  int64_t n = lg_numel(out);
  switch (op) {
  case LG_OP_RELU: /* NaN stays NaN: the comparison is false */
    for (int64_t i = 0; i < n; i++)
      o[i] = x[i] < 0 ? 0.0f : x[i];
    return true;
  case LG_OP_NEG:
    for (int64_t i = 0; i < n; i++)
      o[i] = -x[i];
    return true;
  case LG_OP_ABS:
    for (int64_t i = 0; i < n; i++)
      o[i] = fabsf(x[i]);
    return true;
  case LG_OP_SQUARE:
    for (int64_t i = 0; i < n; i++)
      o[i] = x[i] * x[i];
    return true;
  case LG_OP_SQRT:
    for (int64_t i = 0; i < n; i++)
      o[i] = sqrtf(x[i]);
    return true;
  case LG_OP_EXP:
    for (int64_t i = 0; i < n; i++)
      o[i] = expf(x[i]);
    return true;
  case LG_OP_SIGMOID:
    for (int64_t i = 0; i < n; i++)
      o[i] = 1 / (1 + expf(-x[i]));
    return true;
  case LG_OP_TANH:
    for (int64_t i = 0; i < n; i++)
      o[i] = tanhf(x[i]);
    return true;
  case LG_OP_LOG:
    for (int64_t i = 0; i < n; i++)
      o[i] = logf(x[i]);
    return true;
  default:
    for (int64_t i = 0; i < n; i++)
      o[i] = un_f(op, x[i]);
    return true;
  }
}

static void unary_kernel(lg_unop op, lg_tensor *out, lg_tensor *a) {
  if (!is_predicate(op) && unary_f32_fast(op, out, a))
    return;
  const int64_t *strides[3] = {out->strides, a->strides, a->strides};
  lg_iter it;
  lg_iter_init(&it, out->ndim, out->shape, 3, strides);
  if (is_predicate(op)) { /* any input dtype, a bool out */
    lg_dtype d = a->dtype;
    ITER3(it, uint8_t, uint8_t, uint8_t, out, out, out,
          o[io] = un_d(op, lg_load(d, a->storage->data,
                                   a->offset + it.offs[1] + i * sx)) != 0);
    return;
  }
  switch (a->dtype) {
  case LG_FLOAT32:
    if (op == LG_OP_RELU) /* NaN stays NaN: the comparison is false */
      ITER3(it, float, float, float, out, a, a,
            o[io] = x[ix] < 0 ? 0.0f : x[ix]);
    else
      ITER3(it, float, float, float, out, a, a, o[io] = un_f(op, x[ix]));
    break;
  case LG_FLOAT64:
    ITER3(it, double, double, double, out, a, a, o[io] = un_d(op, x[ix]));
    break;
  default:
    ITER3(it, int64_t, int64_t, int64_t, out, a, a, o[io] = un_i(op, x[ix]));
  }
}

/* ---- one-element tensors ----
 * A scalar loop (one loss, one weight) spends more in shape checks,
 * broadcasting and the strided iterator than in its one multiply.  A
 * tensor whose every dimension is 1 (a 0-d tensor among them) takes a
 * path without them: the header and storage straight from the pools, and
 * the same scalar formula the kernels use, so results are bit-identical. */

lg_tensor *lg_tiny_like(const lg_tensor *t, lg_dtype d) {
  lg_tensor *o = lg_tensor_header();
  if (!o)
    return NULL;
  if (!(o->storage = lg_storage_new(lg_dtype_size(d)))) {
    lg_header_free(o);
    return NULL;
  }
  o->dtype = d;
  o->ndim = t->ndim;
  for (int i = 0; i < t->ndim; i++) {
    o->shape[i] = 1;
    o->strides[i] = 1;
  }
  return o;
}

/* out = x OP y for one-element float operands of out's dtype */
static inline void tiny_binary(lg_binop op, lg_tensor *out, double x,
                               double y) {
  if (out->dtype == LG_FLOAT32)
    *(float *)out->storage->data = bin_f(op, (float)x, (float)y);
  else
    *(double *)out->storage->data = bin_d(op, x, y);
}


/* ---- dtype decisions ---- */

static lg_dtype binary_compute_dtype(lg_binop op, lg_dtype a, lg_dtype b) {
  lg_dtype d = lg_promote(a, b);
  if (d == LG_BOOL && !is_compare(op))
    d = LG_INT64;
  if (!lg_dtype_is_float(d) && (op == LG_OP_DIV || op == LG_OP_ATAN2))
    d = lg_default_dtype();
  return d;
}

/* a scalar an int64 computation can take: integral and within int64's
 * range (converting any other double to int64_t is undefined) */
static bool int64_scalar(double s) {
  return s == floor(s) && s >= -0x1p63 && s < 0x1p63;
}

static lg_dtype scalar_compute_dtype(lg_binop op, lg_dtype a, double s) {
  lg_dtype d = a == LG_BOOL && !is_compare(op) ? LG_INT64 : a;
  if (!lg_dtype_is_float(d) &&
      (op == LG_OP_DIV || op == LG_OP_ATAN2 || !int64_scalar(s)))
    d = is_compare(op) ? LG_FLOAT64 : lg_default_dtype();
  if (d == LG_BOOL && is_compare(op))
    d = LG_FLOAT64;
  return d;
}

static bool unary_keeps_int(lg_unop op) {
  return unop_info[op].flags & LG_OPF_INT;
}

/* ---- backward ---- */

static lg_tensor *mul3(lg_tensor *a, lg_tensor *b, lg_tensor *c) {
  lg_tensor *t = lg_binary(LG_OP_MUL, a, b);
  if (!t || !c)
    return t;
  lg_tensor *r = lg_binary(LG_OP_MUL, t, c);
  lg_release(t);
  return r;
}

/* gradient g * mask, mask = (cmp(x, s)) as g's dtype */
static lg_tensor *masked_grad(lg_tensor *g, lg_tensor *x, lg_binop cmp,
                              double s) {
  lg_tensor *m = lg_binary_scalar(cmp, x, s, false);
  if (!m)
    return NULL;
  lg_tensor *mf = lg_to_dtype(m, g->dtype);
  lg_release(m);
  if (!mf)
    return NULL;
  lg_tensor *r = lg_binary(LG_OP_MUL, g, mf);
  lg_release(mf);
  return r;
}

static lg_tensor *relu_grad(lg_tensor *g, lg_tensor *x);

static int relu_grad_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *x = lg_node_saved(n, 0);
  grads[0] = x ? relu_grad(g, x) : NULL;
  return grads[0] ? 0 : -1;
}

/* g where x > 0, else 0: relu's backward in one pass; differentiable in g
 * (its own derivative), so double backward through relu works */
static lg_tensor *relu_grad(lg_tensor *g, lg_tensor *x) {
  if (g->dtype != x->dtype || !lg_same_shape(g, x) || !lg_is_contiguous(g) ||
      !lg_is_contiguous(x) || !lg_dtype_is_float(g->dtype))
    return masked_grad(g, x, LG_OP_GT, 0);
  lg_tensor *out = lg_empty_like(g);
  if (!out)
    return NULL;
  int64_t n = lg_numel(g);
  if (g->dtype == LG_FLOAT32) {
    const float *gp = lg_data_ptr(g), *xp = lg_data_ptr(x);
    float *o = out->storage->data;
    for (int64_t i = 0; i < n; i++) {
      float gv = gp[i]; /* loaded either way, so the loop is branch-free */
      o[i] = xp[i] > 0 ? gv : 0.0f;
    }
  } else {
    const double *gp = lg_data_ptr(g), *xp = lg_data_ptr(x);
    double *o = out->storage->data;
    for (int64_t i = 0; i < n; i++) {
      double gv = gp[i];
      o[i] = xp[i] > 0 ? gv : 0.0;
    }
  }
  lg_node *node = lg_record(out, "relu_backward", relu_grad_backward, 1, &g);
  if (node && lg_node_save(node, x)) {
    lg_release(out);
    return NULL;
  }
  return out;
}

static int binary_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_binop op = (lg_binop)LG_BCAST(n)->op;
  lg_tensor *a = NULL, *b = NULL, *out = NULL;
  if (n->nsaved >= 2) {
    if (!(a = lg_node_saved(n, 0)) || !(b = lg_node_saved(n, 1)))
      return -1;
  }
  if (n->nsaved >= 3 && !(out = lg_node_saved(n, 2)))
    return -1;
  lg_tensor *ga = NULL, *gb = NULL;
  switch (op) {
  case LG_OP_ADD:
    ga = lg_retain(g);
    gb = lg_retain(g);
    break;
  case LG_OP_SUB:
    ga = lg_retain(g);
    if (n->needs_grad[1])
      gb = lg_unary(LG_OP_NEG, g);
    break;
  case LG_OP_MUL:
    if (n->needs_grad[0])
      ga = lg_binary(LG_OP_MUL, g, b);
    if (n->needs_grad[1])
      gb = lg_binary(LG_OP_MUL, g, a);
    break;
  case LG_OP_DIV:
    if (n->needs_grad[0])
      ga = lg_binary(LG_OP_DIV, g, b);
    if (n->needs_grad[1]) { /* -g * a / b^2 */
      lg_tensor *t = lg_binary(LG_OP_DIV, a, b);
      lg_tensor *u = t ? lg_binary(LG_OP_DIV, t, b) : NULL;
      lg_tensor *v = u ? lg_binary(LG_OP_MUL, g, u) : NULL;
      gb = v ? lg_unary(LG_OP_NEG, v) : NULL;
      lg_release(t);
      lg_release(u);
      lg_release(v);
    }
    break;
  case LG_OP_POW:
    if (n->needs_grad[0]) { /* g * b * a^(b-1) */
      lg_tensor *bm1 = lg_binary_scalar(LG_OP_SUB, b, 1, false);
      lg_tensor *p = bm1 ? lg_binary(LG_OP_POW, a, bm1) : NULL;
      ga = p ? mul3(g, b, p) : NULL;
      lg_release(bm1);
      lg_release(p);
    }
    if (n->needs_grad[1]) { /* g * out * log(a), 0 where a == 0 */
      lg_tensor *la = lg_unary(LG_OP_LOG, a);
      lg_tensor *t = la ? mul3(g, out, la) : NULL;
      lg_tensor *z = lg_binary_scalar(LG_OP_EQ, a, 0, false);
      lg_tensor *zero = lg_scalar(g->dtype, 0);
      gb = t && z && zero ? lg_where(z, zero, t) : NULL;
      lg_release(la);
      lg_release(t);
      lg_release(z);
      lg_release(zero);
    }
    break;
  case LG_OP_MAXIMUM:
  case LG_OP_MINIMUM: { /* the larger (smaller) side; ties split */
    lg_binop c = op == LG_OP_MAXIMUM ? LG_OP_GT : LG_OP_LT;
    lg_tensor *wa = lg_binary(c, a, b), *eq = lg_binary(LG_OP_EQ, a, b);
    lg_tensor *fa = wa ? lg_to_dtype(wa, g->dtype) : NULL;
    lg_tensor *fe = eq ? lg_to_dtype(eq, g->dtype) : NULL;
    lg_tensor *half = fe ? lg_binary_scalar(LG_OP_MUL, fe, 0.5, false) : NULL;
    lg_tensor *ma = fa && half ? lg_binary(LG_OP_ADD, fa, half) : NULL;
    lg_tensor *mb = ma ? lg_binary_scalar(LG_OP_SUB, ma, 1, true) : NULL;
    if (ma && n->needs_grad[0])
      ga = lg_binary(LG_OP_MUL, g, ma);
    if (mb && n->needs_grad[1])
      gb = lg_binary(LG_OP_MUL, g, mb);
    lg_release(wa);
    lg_release(eq);
    lg_release(fa);
    lg_release(fe);
    lg_release(half);
    lg_release(ma);
    lg_release(mb);
    break;
  }
  case LG_OP_ATAN2: { /* d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2) */
    lg_tensor *a2 = lg_unary(LG_OP_SQUARE, a), *b2 = lg_unary(LG_OP_SQUARE, b);
    lg_tensor *den = a2 && b2 ? lg_binary(LG_OP_ADD, a2, b2) : NULL;
    lg_tensor *gd = den ? lg_binary(LG_OP_DIV, g, den) : NULL;
    if (gd && n->needs_grad[0])
      ga = lg_binary(LG_OP_MUL, gd, b);
    if (gd && n->needs_grad[1]) {
      lg_tensor *t = lg_binary(LG_OP_MUL, gd, a);
      gb = t ? lg_unary(LG_OP_NEG, t) : NULL;
      lg_release(t);
    }
    lg_release(a2);
    lg_release(b2);
    lg_release(den);
    lg_release(gd);
    break;
  }
  default:
    return 0;
  }
  if ((n->needs_grad[0] && !ga) || (n->needs_grad[1] && !gb)) {
    lg_release(ga);
    lg_release(gb);
    return -1;
  }
  if (ga && n->needs_grad[0]) {
    grads[0] = lg_grad_reduce_to(ga, &LG_BCAST(n)->a);
    if (!grads[0]) {
      lg_release(ga);
      lg_release(gb);
      return -1;
    }
  }
  if (gb && n->needs_grad[1])
    grads[1] = lg_grad_reduce_to(gb, &LG_BCAST(n)->b);
  lg_release(ga);
  lg_release(gb);
  return n->needs_grad[1] && !grads[1] ? -1 : 0;
}

/* what binary backward needs saved: a and b for most ops, out for pow */
static int save_binary(lg_node *n, lg_binop op, lg_tensor *a, lg_tensor *b,
                       lg_tensor *out) {
  LG_BCAST(n)->op = op;
  lg_node_set_shapes2(n, a, b);
  if (op == LG_OP_ADD || op == LG_OP_SUB)
    return 0;
  if (lg_node_save(n, a) || lg_node_save(n, b))
    return -1;
  if (op == LG_OP_POW && lg_node_save(n, out))
    return -1;
  return 0;
}

lg_tensor *lg_binary(lg_binop op, lg_tensor *a, lg_tensor *b) {
  if (LG_UNUSABLE(a) || LG_UNUSABLE(b)) {
    lg_seterr("lg_binary: argument %d is NULL or revoked",
              (LG_UNUSABLE(a)) ? 2 : 3);
    return NULL;
  }
  if ((unsigned)op >= LG_NBINOPS) {
    lg_seterr("binary: bad op");
    return NULL;
  }
  const char *name = binop_info[op].name;
  if (a->dtype == b->dtype && lg_dtype_is_float(a->dtype) &&
      !is_compare(op) && a->ndim == b->ndim && lg_is_tiny(a) && lg_is_tiny(b)) {
    lg_tensor *out = lg_tiny_like(a, a->dtype);
    if (!out)
      return NULL;
    tiny_binary(op, out, lg_tiny_load(a), lg_tiny_load(b));
    lg_tensor *in[2] = {a, b};
    lg_node *n = lg_record(out, name, binary_backward, 2, in);
    if (n && save_binary(n, op, a, b, out)) {
      lg_release(out);
      return NULL;
    }
    return out;
  }
  lg_dtype cd = binary_compute_dtype(op, a->dtype, b->dtype);
  lg_dtype od = is_compare(op) ? LG_BOOL : cd;
  int nd;
  int64_t shape[LG_MAX_DIMS];
  if (lg_broadcast_shape(name, a, b, &nd, shape))
    return NULL;
  /* a one-element operand of the same dtype becomes a scalar: fast path */
  lg_tensor *ca = a, *cb = b;
  if (a->dtype != cd && !(ca = lg_to_dtype(a, cd)))
    return NULL;
  if (b->dtype != cd && !(cb = lg_to_dtype(b, cd))) {
    if (ca != a)
      lg_release(ca);
    return NULL;
  }
  lg_tensor *out = lg_empty(od, nd, shape);
  if (out) {
    /* (not for int64: a double does not hold every int64 value) */
    if (cb->ndim == 0 && !cb->requires_grad && nd == ca->ndim &&
        lg_dtype_is_float(cd))
      scalar_kernel(op, out, ca,
                    lg_load(cd, cb->storage->data, cb->offset), false);
    else
      binary_kernel(op, out, ca, cb);
    if (!is_compare(op)) {
      lg_tensor *in[2] = {ca, cb};
      lg_node *n = lg_record(out, name, binary_backward, 2, in);
      if (n && save_binary(n, op, ca, cb, out)) {
        lg_release(out);
        out = NULL;
      }
    }
  }
  if (ca != a)
    lg_release(ca);
  if (cb != b)
    lg_release(cb);
  return out;
}

/* a binary op with a number on one side */
struct scalar_state {
  lg_binop op;
  bool first; /* the number is the left operand */
  double s;
};

static int scalar_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  const struct scalar_state *st = LG_NODE_STATE(n, struct scalar_state);
  lg_binop op = st->op;
  bool first = st->first;
  double s = st->s;
  lg_tensor *a = NULL, *out = NULL;
  if (n->nsaved >= 1 && !(a = lg_node_saved(n, 0)))
    return -1;
  if (n->nsaved >= 2 && !(out = lg_node_saved(n, 1)))
    return -1;
  switch (op) {
  case LG_OP_ADD:
    grads[0] = lg_retain(g);
    break;
  case LG_OP_SUB:
    grads[0] = first ? lg_unary(LG_OP_NEG, g) : lg_retain(g);
    break;
  case LG_OP_MUL:
    grads[0] = lg_binary_scalar(LG_OP_MUL, g, s, false);
    break;
  case LG_OP_DIV:
    if (!first) {
      grads[0] = lg_binary_scalar(LG_OP_DIV, g, s, false);
    } else { /* d(s / a) = -s / a^2 = -out / a */
      lg_tensor *t = lg_binary(LG_OP_DIV, out, a);
      lg_tensor *u = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
      grads[0] = u ? lg_unary(LG_OP_NEG, u) : NULL;
      lg_release(t);
      lg_release(u);
    }
    break;
  case LG_OP_POW:
    if (!first) { /* s * a^(s-1) */
      lg_tensor *p;
      if (s == 2 && !lg_grad_enabled() && g->dtype == a->dtype &&
          lg_dtype_is_float(g->dtype) && g->ndim == a->ndim && lg_is_tiny(g) &&
          lg_is_tiny(a)) { /* g * (a * 2) in one step, without a graph */
        lg_tensor *r = lg_tiny_like(g, g->dtype);
        if (r && g->dtype == LG_FLOAT32)
          *(float *)r->storage->data =
              bin_f(LG_OP_MUL, (float)lg_tiny_load(g),
                    bin_f(LG_OP_MUL, (float)lg_tiny_load(a), 2.0f));
        else if (r)
          *(double *)r->storage->data =
              bin_d(LG_OP_MUL, lg_tiny_load(g), bin_d(LG_OP_MUL, lg_tiny_load(a), 2));
        grads[0] = r;
        break;
      }
      if (s == 2)
        p = lg_binary_scalar(LG_OP_MUL, a, 2, false);
      else {
        lg_tensor *q = lg_binary_scalar(LG_OP_POW, a, s - 1, false);
        p = q ? lg_binary_scalar(LG_OP_MUL, q, s, false) : NULL;
        lg_release(q);
      }
      grads[0] = p ? lg_binary(LG_OP_MUL, g, p) : NULL;
      lg_release(p);
    } else { /* d(s^a) = out * log(s) */
      lg_tensor *t = lg_binary_scalar(LG_OP_MUL, out, log(s), false);
      grads[0] = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
      lg_release(t);
    }
    break;
  case LG_OP_MAXIMUM:
  case LG_OP_MINIMUM: {
    lg_tensor *m = lg_binary_scalar(op == LG_OP_MAXIMUM ? LG_OP_GT : LG_OP_LT,
                                    a, s, false);
    lg_tensor *e = lg_binary_scalar(LG_OP_EQ, a, s, false);
    lg_tensor *mf = m ? lg_to_dtype(m, g->dtype) : NULL;
    lg_tensor *ef = e ? lg_to_dtype(e, g->dtype) : NULL;
    lg_tensor *h = ef ? lg_binary_scalar(LG_OP_MUL, ef, 0.5, false) : NULL;
    lg_tensor *w = mf && h ? lg_binary(LG_OP_ADD, mf, h) : NULL;
    grads[0] = w ? lg_binary(LG_OP_MUL, g, w) : NULL;
    lg_release(m);
    lg_release(e);
    lg_release(mf);
    lg_release(ef);
    lg_release(h);
    lg_release(w);
    break;
  }
  case LG_OP_ATAN2: {
    lg_tensor *a2 = lg_unary(LG_OP_SQUARE, a);
    lg_tensor *den = a2 ? lg_binary_scalar(LG_OP_ADD, a2, s * s, false) : NULL;
    lg_tensor *t = den ? lg_binary_scalar(LG_OP_DIV, den, first ? -1 : 1, true)
                       : NULL; /* first: d/da atan2(s, a) = -s/(..) */
    lg_tensor *u = NULL;
    if (t && first)
      u = lg_binary_scalar(LG_OP_MUL, t, s, false);
    else if (t)
      u = lg_binary_scalar(LG_OP_MUL, t, s, false);
    grads[0] = u ? lg_binary(LG_OP_MUL, g, u) : NULL;
    lg_release(a2);
    lg_release(den);
    lg_release(t);
    lg_release(u);
    break;
  }
  default:
    return 0;
  }
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_binary_scalar(lg_binop op, lg_tensor *a, double s,
                            bool scalar_first) {
  if (LG_UNUSABLE(a)) {
    lg_seterr("lg_binary_scalar: argument %d is NULL or revoked", 2);
    return NULL;
  }
  if ((unsigned)op >= LG_NBINOPS) {
    lg_seterr("binary: bad op");
    return NULL;
  }
  const char *name = binop_info[op].name;
  lg_dtype cd = scalar_compute_dtype(op, a->dtype, s);
  lg_tensor *ca = a;
  if (a->dtype != cd && !(ca = lg_to_dtype(a, cd)))
    return NULL;
  bool tiny = ca == a && lg_dtype_is_float(cd) && !is_compare(op) &&
              lg_is_tiny(a);
  lg_tensor *out = tiny ? lg_tiny_like(a, cd)
                        : lg_empty(is_compare(op) ? LG_BOOL : cd, ca->ndim,
                                   ca->shape);
  if (out) {
    if (tiny && scalar_first)
      tiny_binary(op, out, s, lg_tiny_load(a));
    else if (tiny)
      tiny_binary(op, out, lg_tiny_load(a), s);
    else
      scalar_kernel(op, out, ca, s, scalar_first);
    lg_node *n = is_compare(op) ? NULL
                                : lg_record(out, name, scalar_backward, 1, &ca);
    if (n) {
      *LG_NODE_STATE(n, struct scalar_state) =
          (struct scalar_state){op, scalar_first, s};
      int rc = 0;
      if (op != LG_OP_ADD && op != LG_OP_SUB && op != LG_OP_MUL &&
          !(op == LG_OP_DIV && !scalar_first))
        rc = lg_node_save(n, ca);
      if (!rc && scalar_first && (op == LG_OP_DIV || op == LG_OP_POW))
        rc = lg_node_save(n, out);
      if (rc) {
        lg_release(out);
        out = NULL;
      }
    }
  }
  if (ca != a)
    lg_release(ca);
  return out;
}

int lg_binary_(lg_binop op, lg_tensor *a, lg_tensor *b) {
  if (LG_UNUSABLE(a) || LG_UNUSABLE(b)) {
    lg_seterr("lg_binary_: argument %d is NULL or revoked",
              (LG_UNUSABLE(a)) ? 2 : 3);
    return -1;
  }
  if ((unsigned)op >= LG_NBINOPS) {
    lg_seterr("binary: bad op");
    return -1;
  }
  const char *name = binop_info[op].name;
  if (lg_check_inplace(name, a))
    return -1;
  if (is_compare(op) || binary_compute_dtype(op, a->dtype, b->dtype) !=
                            a->dtype) {
    if (!is_compare(op) && lg_dtype_is_float(a->dtype)) {
      /* b converts to a's dtype below */
    } else {
      lg_seterr("%s_: result dtype %s cannot be stored in %s", name,
                lg_dtype_name(binary_compute_dtype(op, a->dtype, b->dtype)),
                lg_dtype_name(a->dtype));
      return -1;
    }
  }
  if (a->dtype == b->dtype && lg_dtype_is_float(a->dtype) &&
      b->ndim <= a->ndim && lg_is_tiny(a) && lg_is_tiny(b)) {
    /* b is read before a is written, so sharing memory is harmless */
    double x = lg_tiny_load(a), y = lg_tiny_load(b);
    if (a->dtype == LG_FLOAT32)
      ((float *)a->storage->data)[a->offset] = bin_f(op, (float)x, (float)y);
    else
      ((double *)a->storage->data)[a->offset] = bin_d(op, x, y);
    lg_bump_version(a);
    return 0;
  }
  int nd;
  int64_t shape[LG_MAX_DIMS];
  if (lg_broadcast_shape(name, a, b, &nd, shape))
    return -1;
  bool fits = nd == a->ndim;
  for (int i = 0; fits && i < nd; i++)
    fits = shape[i] == a->shape[i];
  if (!fits) {
    char x[200], y[200];
    lg_seterr("%s_: shape %s does not broadcast to the in-place target %s",
              name, lg_shape_str(b, y, sizeof y), lg_shape_str(a, x, sizeof x));
    return -1;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *cb = b;
  if (b->dtype != a->dtype && !(cb = lg_to_dtype(b, a->dtype))) {
    lg_set_grad_enabled(was);
    return -1;
  }
  /* the kernel reads and writes a; if b shares memory with a, copy b */
  if (cb->storage == a->storage && cb == b) {
    cb = lg_clone(b);
    if (!cb) {
      lg_set_grad_enabled(was);
      return -1;
    }
  }
  binary_kernel(op, a, a, cb);
  if (cb != b)
    lg_release(cb);
  lg_set_grad_enabled(was);
  lg_bump_version(a);
  return 0;
}

int lg_binary_scalar_(lg_binop op, lg_tensor *a, double s) {
  if (LG_UNUSABLE(a)) {
    lg_seterr("lg_binary_scalar_: argument %d is NULL or revoked", 2);
    return -1;
  }
  if ((unsigned)op >= LG_NBINOPS) {
    lg_seterr("binary: bad op");
    return -1;
  }
  const char *name = binop_info[op].name;
  if (lg_check_inplace(name, a))
    return -1;
  if (is_compare(op) ||
      (scalar_compute_dtype(op, a->dtype, s) != a->dtype &&
       !lg_dtype_is_float(a->dtype))) {
    lg_seterr("%s_: the result cannot be stored in a %s tensor", name,
              lg_dtype_name(a->dtype));
    return -1;
  }
  scalar_kernel(op, a, a, s, false);
  lg_bump_version(a);
  return 0;
}

int lg_axpy_(lg_tensor *a, double alpha, lg_tensor *b) {
  if (LG_UNUSABLE(a) || LG_UNUSABLE(b)) {
    lg_seterr("lg_axpy_: argument %d is NULL or revoked",
              (LG_UNUSABLE(a)) ? 1 : 3);
    return -1;
  }
  if (lg_check_inplace("axpy_", a))
    return -1;
  if (a->dtype == b->dtype && lg_same_shape(a, b) && lg_is_contiguous(a) &&
      lg_is_contiguous(b) && lg_dtype_is_float(a->dtype)) {
    int64_t n = lg_numel(a);
    if (a->dtype == LG_FLOAT32) {
      float *x = lg_data_ptr(a), al = (float)alpha;
      const float *y = lg_data_ptr(b);
      for (int64_t i = 0; i < n; i++)
        x[i] += al * y[i];
    } else {
      double *x = lg_data_ptr(a);
      const double *y = lg_data_ptr(b);
      for (int64_t i = 0; i < n; i++)
        x[i] += alpha * y[i];
    }
    lg_bump_version(a);
    return 0;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *t = lg_binary_scalar(LG_OP_MUL, b, alpha, false);
  int rc = t ? lg_binary_(LG_OP_ADD, a, t) : -1;
  lg_release(t);
  lg_set_grad_enabled(was);
  return rc;
}

/* ---- unary ---- */

struct unary_state {
  lg_unop op;
};

static int unary_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_unop op = LG_NODE_STATE(n, struct unary_state)->op;
  lg_tensor *x = NULL, *out = NULL;
  if (n->nsaved >= 1 && !(x = lg_node_saved(n, 0)))
    return -1;
  if (n->nsaved >= 2 && !(out = lg_node_saved(n, 1)))
    return -1;
  lg_tensor *r = NULL, *t = NULL, *u = NULL, *v = NULL;
  switch (op) {
  case LG_OP_NEG:
    r = lg_unary(LG_OP_NEG, g);
    break;
  case LG_OP_EXP: /* g * out */
    r = lg_binary(LG_OP_MUL, g, out);
    break;
  case LG_OP_LOG: /* g / x */
    r = lg_binary(LG_OP_DIV, g, x);
    break;
  case LG_OP_LOG2: /* g / (x ln 2) */
    t = lg_binary_scalar(LG_OP_MUL, x, M_LN2, false);
    r = t ? lg_binary(LG_OP_DIV, g, t) : NULL;
    break;
  case LG_OP_LOG1P: /* g / (1 + x) */
    t = lg_binary_scalar(LG_OP_ADD, x, 1, false);
    r = t ? lg_binary(LG_OP_DIV, g, t) : NULL;
    break;
  case LG_OP_SQRT: /* g / (2 out) */
    t = lg_binary_scalar(LG_OP_MUL, out, 2, false);
    r = t ? lg_binary(LG_OP_DIV, g, t) : NULL;
    break;
  case LG_OP_RSQRT: /* -g out^3 / 2 */
    t = lg_binary_scalar(LG_OP_POW, out, 3, false);
    u = t ? lg_binary_scalar(LG_OP_MUL, t, -0.5, false) : NULL;
    r = u ? lg_binary(LG_OP_MUL, g, u) : NULL;
    break;
  case LG_OP_ABS: /* g sign(x) */
    t = lg_unary(LG_OP_SIGN, x);
    r = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
    break;
  case LG_OP_SIN: /* g cos(x) */
    t = lg_unary(LG_OP_COS, x);
    r = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
    break;
  case LG_OP_COS: /* -g sin(x) */
    t = lg_unary(LG_OP_SIN, x);
    u = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
    r = u ? lg_unary(LG_OP_NEG, u) : NULL;
    break;
  case LG_OP_TANH: /* g (1 - out^2) */
    t = lg_unary(LG_OP_SQUARE, out);
    u = t ? lg_binary_scalar(LG_OP_SUB, t, 1, true) : NULL;
    r = u ? lg_binary(LG_OP_MUL, g, u) : NULL;
    break;
  case LG_OP_SIGMOID: /* g out (1 - out) */
    t = lg_binary_scalar(LG_OP_SUB, out, 1, true);
    r = t ? mul3(g, out, t) : NULL;
    break;
  case LG_OP_RELU:
    r = relu_grad(g, x);
    break;
  case LG_OP_GELU: { /* g (Phi(x) + x phi(x)) */
    t = lg_binary_scalar(LG_OP_MUL, x, SQRT1_2, false);
    u = t ? lg_unary(LG_OP_ERF, t) : NULL;
    lg_tensor *phi_cdf =
        u ? lg_binary_scalar(LG_OP_ADD, u, 1, false) : NULL; /* 2 Phi */
    lg_tensor *x2 = lg_unary(LG_OP_SQUARE, x);
    lg_tensor *e = x2 ? lg_binary_scalar(LG_OP_MUL, x2, -0.5, false) : NULL;
    lg_tensor *pe = e ? lg_unary(LG_OP_EXP, e) : NULL;
    lg_tensor *xp = pe ? lg_binary(LG_OP_MUL, x, pe) : NULL;
    /* 0.5 * 2Phi + x exp(-x^2/2) / sqrt(2 pi) */
    lg_tensor *a1 =
        phi_cdf ? lg_binary_scalar(LG_OP_MUL, phi_cdf, 0.5, false) : NULL;
    lg_tensor *a2 =
        xp ? lg_binary_scalar(LG_OP_MUL, xp, 0.39894228040143267794, false)
           : NULL;
    v = a1 && a2 ? lg_binary(LG_OP_ADD, a1, a2) : NULL;
    r = v ? lg_binary(LG_OP_MUL, g, v) : NULL;
    lg_release(phi_cdf);
    lg_release(x2);
    lg_release(e);
    lg_release(pe);
    lg_release(xp);
    lg_release(a1);
    lg_release(a2);
    break;
  }
  case LG_OP_GELU_TANH: { /* numeric derivative of the tanh form */
    /* y = 0.5 x (1 + tanh(k (x + c x^3))) ;
       dy/dx = 0.5 (1 + th) + 0.5 x (1 - th^2) k (1 + 3 c x^2) */
    lg_tensor *x3 = lg_binary_scalar(LG_OP_POW, x, 3, false);
    lg_tensor *in = x3 ? lg_binary_scalar(LG_OP_MUL, x3, 0.044715, false)
                       : NULL;
    lg_tensor *in2 = in ? lg_binary(LG_OP_ADD, in, x) : NULL;
    lg_tensor *in3 = in2 ? lg_binary_scalar(LG_OP_MUL, in2, GELU_K, false)
                         : NULL;
    lg_tensor *th = in3 ? lg_unary(LG_OP_TANH, in3) : NULL;
    lg_tensor *p1 = th ? lg_binary_scalar(LG_OP_ADD, th, 1, false) : NULL;
    lg_tensor *h1 = p1 ? lg_binary_scalar(LG_OP_MUL, p1, 0.5, false) : NULL;
    lg_tensor *th2 = th ? lg_unary(LG_OP_SQUARE, th) : NULL;
    lg_tensor *s = th2 ? lg_binary_scalar(LG_OP_SUB, th2, 1, true) : NULL;
    lg_tensor *x2 = lg_unary(LG_OP_SQUARE, x);
    lg_tensor *q = x2 ? lg_binary_scalar(LG_OP_MUL, x2, 3 * 0.044715, false)
                      : NULL;
    lg_tensor *q1 = q ? lg_binary_scalar(LG_OP_ADD, q, 1, false) : NULL;
    lg_tensor *m = s && q1 ? mul3(x, s, q1) : NULL;
    lg_tensor *m2 = m ? lg_binary_scalar(LG_OP_MUL, m, 0.5 * GELU_K, false)
                      : NULL;
    v = h1 && m2 ? lg_binary(LG_OP_ADD, h1, m2) : NULL;
    r = v ? lg_binary(LG_OP_MUL, g, v) : NULL;
    lg_tensor *all[] = {x3, in, in2, in3, th, p1, h1, th2, s, x2, q, q1, m,
                        m2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
      lg_release(all[i]);
    break;
  }
  case LG_OP_SOFTPLUS: /* g sigmoid(x) */
    t = lg_unary(LG_OP_SIGMOID, x);
    r = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
    break;
  case LG_OP_SQUARE: /* 2 g x */
    t = lg_binary_scalar(LG_OP_MUL, x, 2, false);
    r = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
    break;
  case LG_OP_RECIPROCAL: /* -g out^2 */
    t = lg_unary(LG_OP_SQUARE, out);
    u = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
    r = u ? lg_unary(LG_OP_NEG, u) : NULL;
    break;
  case LG_OP_EXPM1: /* g (out + 1) */
    t = lg_binary_scalar(LG_OP_ADD, out, 1, false);
    r = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
    break;
  case LG_OP_ERF: /* g 2/sqrt(pi) exp(-x^2) */
    t = lg_unary(LG_OP_SQUARE, x);
    u = t ? lg_binary_scalar(LG_OP_MUL, t, -1, false) : NULL;
    v = u ? lg_unary(LG_OP_EXP, u) : NULL;
    lg_release(t);
    t = v ? lg_binary_scalar(LG_OP_MUL, v, 1.12837916709551257390, false)
          : NULL;
    r = t ? lg_binary(LG_OP_MUL, g, t) : NULL;
    break;
  case LG_OP_SILU: { /* g s (1 + x (1 - s)), s = sigmoid(x) */
    lg_tensor *s = lg_unary(LG_OP_SIGMOID, x);
    t = s ? lg_binary_scalar(LG_OP_SUB, s, 1, true) : NULL;
    u = t ? lg_binary(LG_OP_MUL, x, t) : NULL;
    v = u ? lg_binary_scalar(LG_OP_ADD, u, 1, false) : NULL;
    r = v ? mul3(g, s, v) : NULL;
    lg_release(s);
    break;
  }
  default: /* sign, floor, ceil, round: zero gradient */
    r = lg_zeros_like(g);
  }
  lg_release(t);
  lg_release(u);
  lg_release(v);
  grads[0] = r;
  return r ? 0 : -1;
}

/* which of x and out the unary backward reads */
static bool unary_saves_out(lg_unop op) {
  return unop_info[op].flags & LG_OPF_SAVES_OUT;
}

lg_tensor *lg_unary(lg_unop op, lg_tensor *a) {
  if (LG_UNUSABLE(a)) {
    lg_seterr("lg_unary: argument %d is NULL or revoked", 2);
    return NULL;
  }
  if ((unsigned)op >= LG_NUNOPS) {
    lg_seterr("unary: bad op");
    return NULL;
  }
  const char *name = unop_info[op].name;
  lg_dtype d = a->dtype;
  if (is_predicate(op))
    d = LG_BOOL;
  else if (d == LG_BOOL)
    d = unary_keeps_int(op) ? LG_INT64 : lg_default_dtype();
  else if (d == LG_INT64 && !unary_keeps_int(op))
    d = lg_default_dtype();
  lg_tensor *ca = a;
  if (!is_predicate(op) && a->dtype != d && !(ca = lg_to_dtype(a, d)))
    return NULL;
  lg_tensor *out = lg_is_tiny(ca) ? lg_tiny_like(ca, d)
                               : lg_empty(d, ca->ndim, ca->shape);
  if (out) {
    unary_kernel(op, out, ca);
    lg_node *n = is_predicate(op) || !lg_dtype_is_float(d)
                     ? NULL
                     : lg_record(out, name, unary_backward, 1, &ca);
    if (n) {
      LG_NODE_STATE(n, struct unary_state)->op = op;
      int rc = lg_node_save(n, ca);
      if (!rc && unary_saves_out(op))
        rc = lg_node_save(n, out);
      if (rc) {
        lg_release(out);
        out = NULL;
      }
    }
  }
  if (ca != a)
    lg_release(ca);
  return out;
}

int lg_unary_(lg_unop op, lg_tensor *a) {
  if (LG_UNUSABLE(a)) {
    lg_seterr("lg_unary_: argument %d is NULL or revoked", 2);
    return -1;
  }
  if ((unsigned)op >= LG_NUNOPS) {
    lg_seterr("unary: bad op");
    return -1;
  }
  const char *name = unop_info[op].name;
  if (lg_check_inplace(name, a))
    return -1;
  if (is_predicate(op)) { /* the bool result stored back in a's dtype */
    bool was = lg_set_grad_enabled(false);
    lg_tensor *r = lg_unary(op, a);
    int rc = r ? lg_copy_(a, r) : -1;
    lg_set_grad_enabled(was);
    lg_release(r);
    return rc;
  }
  if (!lg_dtype_is_float(a->dtype) && !unary_keeps_int(op)) {
    lg_seterr("%s_: needs a float tensor, got %s", name,
              lg_dtype_name(a->dtype));
    return -1;
  }
  if (a->dtype == LG_BOOL) {
    lg_seterr("%s_: not defined for bool tensors", name);
    return -1;
  }
  unary_kernel(op, a, a);
  lg_bump_version(a);
  return 0;
}

/* ---- clamp, leaky_relu, where ---- */

struct clamp_state {
  double lo, hi; /* NaN: no bound */
};

static int clamp_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *x = lg_node_saved(n, 0);
  if (!x)
    return -1;
  const struct clamp_state *st = LG_NODE_STATE(n, struct clamp_state);
  double lo = st->lo, hi = st->hi;
  lg_tensor *m1 = isnan(lo) ? NULL : lg_binary_scalar(LG_OP_GE, x, lo, false);
  lg_tensor *m2 = isnan(hi) ? NULL : lg_binary_scalar(LG_OP_LE, x, hi, false);
  lg_tensor *m = m1 && m2 ? lg_binary(LG_OP_AND, m1, m2)
                          : lg_retain(m1 ? m1 : m2);
  lg_release(m1);
  lg_release(m2);
  lg_tensor *mf = m ? lg_to_dtype(m, g->dtype) : NULL;
  lg_release(m);
  grads[0] = mf ? lg_binary(LG_OP_MUL, g, mf) : NULL;
  lg_release(mf);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_clamp(lg_tensor *a, double lo, double hi) {
  if (LG_UNUSABLE(a)) {
    lg_seterr("lg_clamp: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (!isnan(lo) && !isnan(hi) && lo > hi) {
    lg_seterr("clamp: min %g is greater than max %g", lo, hi);
    return NULL;
  }
  lg_tensor *out = lg_empty_like(a);
  if (!out)
    return NULL;
  int64_t n = lg_numel(a);
  lg_tensor *c = lg_contiguous(a);
  if (!c) {
    lg_release(out);
    return NULL;
  }
  const void *src = lg_data_ptr(c);
  void *dst = out->storage->data;
  for (int64_t i = 0; i < n; i++) {
    double v = lg_load(a->dtype, src, i);
    if (!isnan(lo) && v < lo)
      v = lo;
    if (!isnan(hi) && v > hi)
      v = hi;
    lg_store(a->dtype, dst, i, v);
  }
  lg_release(c);
  lg_node *node = lg_record(out, "clamp", clamp_backward, 1, &a);
  if (node) {
    *LG_NODE_STATE(node, struct clamp_state) = (struct clamp_state){lo, hi};
    if (lg_node_save(node, a)) {
      lg_release(out);
      return NULL;
    }
  }
  return out;
}

struct leaky_state {
  double slope; /* negative_slope */
};

static int leaky_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *x = lg_node_saved(n, 0);
  if (!x)
    return -1;
  double slope = LG_NODE_STATE(n, struct leaky_state)->slope;
  lg_tensor *m = lg_binary_scalar(LG_OP_GT, x, 0, false);
  lg_tensor *mf = m ? lg_to_dtype(m, g->dtype) : NULL;
  /* factor = slope + (1 - slope) * (x > 0) */
  lg_tensor *f = mf ? lg_binary_scalar(LG_OP_MUL, mf, 1 - slope, false) : NULL;
  lg_tensor *f2 = f ? lg_binary_scalar(LG_OP_ADD, f, slope, false) : NULL;
  grads[0] = f2 ? lg_binary(LG_OP_MUL, g, f2) : NULL;
  lg_release(m);
  lg_release(mf);
  lg_release(f);
  lg_release(f2);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_leaky_relu(lg_tensor *a, double slope) {
  if (LG_UNUSABLE(a)) {
    lg_seterr("lg_leaky_relu: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (!lg_dtype_is_float(a->dtype)) {
    lg_seterr("leaky_relu: needs a float tensor, got %s",
              lg_dtype_name(a->dtype));
    return NULL;
  }
  lg_tensor *c = lg_contiguous(a);
  lg_tensor *out = c ? lg_empty_like(a) : NULL;
  if (!out) {
    lg_release(c);
    return NULL;
  }
  int64_t n = lg_numel(a);
  if (a->dtype == LG_FLOAT32) {
    const float *x = lg_data_ptr(c);
    float *o = out->storage->data, s = (float)slope;
    for (int64_t i = 0; i < n; i++)
      o[i] = x[i] > 0 ? x[i] : x[i] * s;
  } else {
    const double *x = lg_data_ptr(c);
    double *o = out->storage->data;
    for (int64_t i = 0; i < n; i++)
      o[i] = x[i] > 0 ? x[i] : x[i] * slope;
  }
  lg_release(c);
  lg_node *node = lg_record(out, "leaky_relu", leaky_backward, 1, &a);
  if (node) {
    LG_NODE_STATE(node, struct leaky_state)->slope = slope;
    if (lg_node_save(node, a)) {
      lg_release(out);
      return NULL;
    }
  }
  return out;
}

static int where_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *cond = lg_node_saved(n, 0);
  if (!cond)
    return -1;
  lg_tensor *cf = lg_to_dtype(cond, g->dtype);
  if (!cf)
    return -1;
  int rc = 0;
  if (n->needs_grad[1]) {
    lg_tensor *t = lg_binary(LG_OP_MUL, g, cf);
    grads[1] = t ? lg_grad_reduce_to(t, &LG_BCAST(n)->a) : NULL;
    lg_release(t);
    rc |= !grads[1];
  }
  if (n->needs_grad[2]) {
    lg_tensor *inv = lg_binary_scalar(LG_OP_SUB, cf, 1, true);
    lg_tensor *t = inv ? lg_binary(LG_OP_MUL, g, inv) : NULL;
    grads[2] = t ? lg_grad_reduce_to(t, &LG_BCAST(n)->b) : NULL;
    lg_release(inv);
    lg_release(t);
    rc |= !grads[2];
  }
  lg_release(cf);
  return rc ? -1 : 0;
}

lg_tensor *lg_where(lg_tensor *cond, lg_tensor *a, lg_tensor *b) {
  if (LG_UNUSABLE(cond) || LG_UNUSABLE(a) || LG_UNUSABLE(b)) {
    lg_seterr("lg_where: argument %d is NULL or revoked",
              (LG_UNUSABLE(cond)) ? 1
              : (LG_UNUSABLE(a))  ? 2
                                  : 3);
    return NULL;
  }
  if (cond->dtype != LG_BOOL) {
    lg_seterr("where: the condition must be a bool tensor, got %s",
              lg_dtype_name(cond->dtype));
    return NULL;
  }
  int nd, nd2;
  int64_t s1[LG_MAX_DIMS], shape[LG_MAX_DIMS];
  if (lg_broadcast_shape("where", a, b, &nd, s1))
    return NULL;
  lg_tensor tmp;
  memset(&tmp, 0, sizeof tmp);
  tmp.ndim = nd;
  memcpy(tmp.shape, s1, sizeof s1);
  if (lg_broadcast_shape("where", cond, &tmp, &nd2, shape))
    return NULL;
  lg_dtype d = lg_promote(a->dtype, b->dtype);
  lg_tensor *ca = lg_to_dtype(a, d), *cb = lg_to_dtype(b, d);
  lg_tensor *out = ca && cb ? lg_empty(d, nd2, shape) : NULL;
  if (out) {
    int64_t sc[LG_MAX_DIMS], sa[LG_MAX_DIMS], sb[LG_MAX_DIMS];
    lg_broadcast_strides(cond, nd2, shape, sc);
    lg_broadcast_strides(ca, nd2, shape, sa);
    lg_broadcast_strides(cb, nd2, shape, sb);
    int64_t n = lg_numel(out);
    int64_t idx[LG_MAX_DIMS] = {0};
    const uint8_t *cp = cond->storage->data;
    for (int64_t i = 0; i < n; i++) {
      int64_t oc = cond->offset, oa = ca->offset, ob = cb->offset;
      for (int k = 0; k < nd2; k++) {
        oc += idx[k] * sc[k];
        oa += idx[k] * sa[k];
        ob += idx[k] * sb[k];
      }
      double v = cp[oc] ? lg_load(d, ca->storage->data, oa)
                        : lg_load(d, cb->storage->data, ob);
      lg_store(d, out->storage->data, i, v);
      for (int k = nd2 - 1; k >= 0; k--) {
        if (++idx[k] < shape[k])
          break;
        idx[k] = 0;
      }
    }
    lg_tensor *in[3] = {cond, ca, cb};
    lg_node *node = lg_record(out, "where", where_backward, 3, in);
    if (node) {
      /* the condition broadcast to the output for the masks */
      lg_node_set_shapes2(node, ca, cb);
      lg_tensor *cexp = lg_expand(cond, nd2, shape);
      if (!cexp || lg_node_save(node, cexp)) {
        lg_release(out);
        out = NULL;
      }
      lg_release(cexp);
    }
  }
  lg_release(ca);
  lg_release(cb);
  return out;
}
