/*
 * ops/reduce.c -- reductions over every element or along one dimension
 * (sum, mean, prod, max, min, any, all, var, norm, logsumexp), softmax,
 * log_softmax, cumsum, sum_to (undoing a broadcast), with backward.
 *
 * Kernels see the input as contiguous (outer, R, inner) and reduce R.
 */
#include <math.h>
#include <string.h>

#include "../core/internal.h"

static const char *red_names[] = {"sum", "mean", "prod", "max",
                                  "min", "any",  "all"};

/* geometry of a reduction of t along dim (LG_ALL_DIMS: everything) */
typedef struct {
  int64_t outer, r, inner;
  int ndim;                   /* of the result */
  int64_t shape[LG_MAX_DIMS]; /* of the result */
  int keep_ndim;              /* the result with keepdim */
  int64_t keep_shape[LG_MAX_DIMS];
} red_geom;

static int red_geometry(const char *fname, const lg_tensor *t, int dim,
                        bool keepdim, red_geom *g) {
  int nd = t->ndim;
  if (dim == LG_ALL_DIMS) {
    g->outer = 1;
    g->r = lg_numel(t);
    g->inner = 1;
    g->keep_ndim = nd;
    for (int i = 0; i < nd; i++)
      g->keep_shape[i] = 1;
    if (keepdim) {
      g->ndim = nd;
      memcpy(g->shape, g->keep_shape, sizeof g->shape);
    } else {
      g->ndim = 0;
    }
    return LG_ALL_DIMS;
  }
  if ((dim = lg_wrap_dim(fname, dim, nd)) < 0)
    return -1;
  g->outer = 1;
  g->inner = 1;
  g->r = nd ? t->shape[dim] : 1;
  /* in unsigned arithmetic: a shape holding a 0 may have huge other dims;
   * a product with a 0 among its factors is still exactly 0 */
  for (int i = 0; i < dim; i++)
    g->outer = (int64_t)((uint64_t)g->outer * (uint64_t)t->shape[i]);
  for (int i = dim + 1; i < nd; i++)
    g->inner = (int64_t)((uint64_t)g->inner * (uint64_t)t->shape[i]);
  if (g->r != 0 && lg_numel(t) == 0) /* the 0 is outside dim */
    g->outer = g->inner = 0;
  g->keep_ndim = nd;
  memcpy(g->keep_shape, t->shape, sizeof g->keep_shape);
  if (nd)
    g->keep_shape[dim] = 1;
  if (keepdim || nd == 0) {
    g->ndim = nd;
    memcpy(g->shape, g->keep_shape, sizeof g->shape);
  } else {
    g->ndim = 0;
    for (int i = 0; i < nd; i++)
      if (i != dim)
        g->shape[g->ndim++] = t->shape[i];
  }
  return dim;
}

static lg_dtype red_dtype(lg_redop op, lg_dtype d) {
  if (op == LG_RED_ANY || op == LG_RED_ALL)
    return LG_BOOL;
  if (op == LG_RED_MEAN)
    return lg_dtype_is_float(d) ? d : lg_default_dtype();
  if ((op == LG_RED_SUM || op == LG_RED_PROD) && d == LG_BOOL)
    return LG_INT64;
  return d;
}

#define RED_LOOP(T, ACC, INIT, STEP, FINISH)                                  \
  do {                                                                        \
    const T *x = src;                                                         \
    for (int64_t o = 0; o < g.outer; o++)                                     \
      for (int64_t i = 0; i < g.inner; i++) {                                 \
        ACC acc = INIT;                                                       \
        const T *p = x + o * g.r * g.inner + i;                               \
        for (int64_t k = 0; k < g.r; k++) {                                   \
          T v = p[k * g.inner];                                               \
          STEP;                                                               \
        }                                                                     \
        FINISH;                                                               \
      }                                                                       \
  } while (0)

/* raw reduction of contiguous src into out (contiguous, g's count) */
static void reduce_kernel(lg_redop op, lg_dtype d, const void *src,
                          lg_tensor *out, red_geom g) {
  void *dst = out->storage->data;
  lg_dtype od = out->dtype;
  int64_t oi;
#define OUTIDX (oi = o * g.inner + i)
  switch (op) {
  case LG_RED_SUM:
  case LG_RED_MEAN: {
    double scale = op == LG_RED_MEAN ? 1.0 / (double)g.r : 1.0;
    if (d == LG_FLOAT32 && g.inner == 1) {
      const float *x = src;
      float *o_ = dst;
      for (int64_t o = 0; o < g.outer; o++) {
        const float *p = x + o * g.r;
        double acc = 0;
        for (int64_t k = 0; k < g.r; k++)
          acc += p[k];
        o_[o] = (float)(acc * scale);
      }
    } else if (d == LG_FLOAT32) {
      RED_LOOP(float, double, 0, acc += v,
               ((float *)dst)[OUTIDX] = (float)(acc * scale));
    } else if (d == LG_FLOAT64) {
      RED_LOOP(double, double, 0, acc += v,
               ((double *)dst)[OUTIDX] = acc * scale);
    } else if (d == LG_INT64 && op == LG_RED_SUM) {
      /* int64 wraps around as in PyTorch, done in uint64_t (defined) */
      RED_LOOP(int64_t, uint64_t, 0, acc += (uint64_t)v,
               ((int64_t *)dst)[OUTIDX] = (int64_t)acc);
    } else if (d == LG_INT64) {
      RED_LOOP(int64_t, double, 0, acc += (double)v,
               lg_store(od, dst, OUTIDX, acc * scale));
    } else {
      RED_LOOP(uint8_t, double, 0, acc += v,
               lg_store(od, dst, OUTIDX, acc * scale));
    }
    break;
  }
  case LG_RED_PROD:
    if (d == LG_FLOAT32)
      RED_LOOP(float, double, 1, acc *= v,
               ((float *)dst)[OUTIDX] = (float)acc);
    else if (d == LG_FLOAT64)
      RED_LOOP(double, double, 1, acc *= v, ((double *)dst)[OUTIDX] = acc);
    else if (d == LG_INT64)
      RED_LOOP(int64_t, uint64_t, 1, acc *= (uint64_t)v,
               ((int64_t *)dst)[OUTIDX] = (int64_t)acc);
    else
      RED_LOOP(uint8_t, int64_t, 1, acc *= v, ((int64_t *)dst)[OUTIDX] = acc);
    break;
  case LG_RED_MAX:
  case LG_RED_MIN: {
    bool mx = op == LG_RED_MAX;
    if (d == LG_FLOAT32)
      RED_LOOP(float, float, mx ? -INFINITY : INFINITY,
               if (v != v || acc != acc) acc = NAN;
               else if (mx ? v > acc : v < acc) acc = v,
               ((float *)dst)[OUTIDX] = acc);
    else if (d == LG_FLOAT64)
      RED_LOOP(double, double, mx ? -INFINITY : INFINITY,
               if (v != v || acc != acc) acc = NAN;
               else if (mx ? v > acc : v < acc) acc = v,
               ((double *)dst)[OUTIDX] = acc);
    else if (d == LG_INT64)
      RED_LOOP(int64_t, int64_t, mx ? INT64_MIN : INT64_MAX,
               if (mx ? v > acc : v < acc) acc = v,
               ((int64_t *)dst)[OUTIDX] = acc);
    else
      RED_LOOP(uint8_t, int, mx ? 0 : 1, if (mx ? v > acc : v < acc) acc = v,
               ((uint8_t *)dst)[OUTIDX] = (uint8_t)acc);
    break;
  }
  case LG_RED_ANY:
  case LG_RED_ALL: {
    bool any = op == LG_RED_ANY;
    for (int64_t o = 0; o < g.outer; o++)
      for (int64_t i = 0; i < g.inner; i++) {
        bool acc = !any;
        for (int64_t k = 0; k < g.r; k++) {
          bool v = lg_load(d, src, (o * g.r + k) * g.inner + i) != 0;
          acc = any ? (acc || v) : (acc && v);
        }
        ((uint8_t *)dst)[o * g.inner + i] = acc;
      }
    break;
  }
  }
#undef OUTIDX
}

/* what sum/mean/prod/max/min over dims keep for backward; keep (the
 * output's shape with keepdim) comes first, as norm_state has it too */
struct reduce_state {
  lg_shape keep;
  lg_redop op;
  int dim;      /* or LG_ALL_DIMS */
  double count; /* elements reduced into each output (mean) */
};
struct norm_state {
  lg_shape keep;
  double p;
};

static void keep_shape(lg_shape *s, int ndim, const int64_t *shape) {
  s->ndim = ndim;
  memcpy(s->dim, shape, ndim * sizeof(int64_t));
}

/* grad of a reduction seen with keepdim, expanded to the input's shape */
static lg_tensor *expand_back(lg_tensor *g, lg_node *n, const lg_shape *keep) {
  lg_tensor *k = lg_reshape(g, keep->ndim, keep->dim);
  if (!k)
    return NULL;
  lg_tensor *e = lg_expand(k, n->ninput_shape, n->input_shape);
  lg_release(k);
  return e;
}

/* The product of the other elements of x's reduced slice, for each element
 * (out: the product with keepdim).  Without zeros it is out / x.  With
 * zeros, out / x is NaN at a zero: there the product of the others is the
 * product of the non-zero elements when the zero is the only one of its
 * slice, else 0.  Written with differentiable ops; at a slice with two or
 * more zeros the second derivative between the zeros is taken as 0. */
static lg_tensor *prod_others(lg_tensor *x, lg_tensor *out, int dim) {
  lg_tensor *zero = lg_binary_scalar(LG_OP_EQ, x, 0, false);
  if (!zero)
    return NULL;
  bool was = lg_set_grad_enabled(false);
  lg_tensor *anyz = lg_reduce(LG_RED_ANY, zero, LG_ALL_DIMS, false);
  lg_set_grad_enabled(was);
  if (!anyz) {
    lg_release(zero);
    return NULL;
  }
  bool has_zero = lg_item(anyz) != 0;
  lg_release(anyz);
  if (!has_zero) {
    lg_release(zero);
    return lg_binary(LG_OP_DIV, out, x);
  }
  lg_tensor *one = lg_scalar(x->dtype, 1);
  lg_tensor *safe = one ? lg_where(zero, one, x) : NULL; /* zeros -> 1 */
  lg_tensor *nonzero_prod =
      safe ? lg_reduce(LG_RED_PROD, safe, dim, true) : NULL;
  lg_tensor *nzeros = lg_reduce(LG_RED_SUM, zero, dim, true);
  lg_tensor *lone = nzeros ? lg_binary_scalar(LG_OP_EQ, nzeros, 1, false)
                           : NULL;
  lg_tensor *at_lone = lone ? lg_binary(LG_OP_AND, zero, lone) : NULL;
  lg_tensor *at_lone_f = at_lone ? lg_to_dtype(at_lone, x->dtype) : NULL;
  /* out / x at non-zeros; 0 at zeros, where out / safe would carry out's
   * own derivative into the second order */
  lg_tensor *quot = safe ? lg_binary(LG_OP_DIV, out, safe) : NULL;
  lg_tensor *nil = lg_scalar(x->dtype, 0);
  lg_tensor *rest = quot && nil ? lg_where(zero, nil, quot) : NULL;
  lg_tensor *fill = nonzero_prod && at_lone_f
                        ? lg_binary(LG_OP_MUL, nonzero_prod, at_lone_f)
                        : NULL;
  lg_tensor *r = rest && fill ? lg_binary(LG_OP_ADD, rest, fill) : NULL;
  lg_release(zero);
  lg_release(one);
  lg_release(safe);
  lg_release(nonzero_prod);
  lg_release(nzeros);
  lg_release(lone);
  lg_release(at_lone);
  lg_release(at_lone_f);
  lg_release(quot);
  lg_release(nil);
  lg_release(rest);
  lg_release(fill);
  return r;
}

static int reduce_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  const struct reduce_state *st = LG_NODE_STATE(n, struct reduce_state);
  lg_redop op = st->op;
  lg_tensor *e = expand_back(g, n, &st->keep);
  if (!e)
    return -1;
  lg_tensor *r = NULL;
  if (op == LG_RED_SUM) {
    r = lg_retain(e);
  } else if (op == LG_RED_MEAN) {
    r = lg_binary_scalar(LG_OP_DIV, e, st->count, false);
  } else {
    lg_tensor *x = lg_node_saved(n, 0), *out = lg_node_saved(n, 1);
    lg_tensor *ok = NULL;
    if (x && out) {
      lg_tensor *ko = lg_reshape(out, st->keep.ndim, st->keep.dim);
      if (op == LG_RED_PROD) {
        lg_tensor *t = ko ? prod_others(x, ko, st->dim) : NULL;
        r = t ? lg_binary(LG_OP_MUL, e, t) : NULL;
        lg_release(t);
      } else { /* max/min: spread evenly over the tied positions */
        lg_tensor *m = ko ? lg_binary(LG_OP_EQ, x, ko) : NULL;
        lg_tensor *mf = m ? lg_to_dtype(m, g->dtype) : NULL;
        int dim = st->dim;
        lg_tensor *cnt =
            mf ? lg_reduce(LG_RED_SUM, mf, dim == LG_ALL_DIMS ? LG_ALL_DIMS
                                                              : dim,
                           true)
               : NULL;
        lg_tensor *w = cnt ? lg_binary(LG_OP_DIV, mf, cnt) : NULL;
        r = w ? lg_binary(LG_OP_MUL, e, w) : NULL;
        lg_release(m);
        lg_release(mf);
        lg_release(cnt);
        lg_release(w);
      }
      lg_release(ko);
      ok = r;
    }
    (void)ok;
  }
  lg_release(e);
  grads[0] = r;
  return r ? 0 : -1;
}

lg_tensor *lg_reduce(lg_redop op, lg_tensor *t, int dim, bool keepdim) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_reduce: argument %d is NULL or revoked", 2);
    return NULL;
  }
  if ((unsigned)op > LG_RED_ALL) {
    lg_seterr("reduce: bad op");
    return NULL;
  }
  const char *name = red_names[op];
  red_geom g;
  int d = red_geometry(name, t, dim, keepdim, &g);
  if (d == -1)
    return NULL;
  if ((op == LG_RED_MAX || op == LG_RED_MIN) && g.r == 0) {
    lg_seterr("%s: cannot reduce an empty dimension", name);
    return NULL;
  }
  lg_dtype od = red_dtype(op, t->dtype);
  lg_tensor *c = lg_contiguous(t);
  if (!c)
    return NULL;
  lg_tensor *out = lg_empty(od, g.ndim, g.shape);
  if (out) {
    reduce_kernel(op, t->dtype, lg_data_ptr(c), out, g);
    lg_node *n = lg_dtype_is_float(od) && op != LG_RED_ANY && op != LG_RED_ALL
                     ? lg_record(out, name, reduce_backward, 1, &t)
                     : NULL;
    if (n) {
      struct reduce_state *st = LG_NODE_STATE(n, struct reduce_state);
      keep_shape(&st->keep, g.keep_ndim, g.keep_shape);
      st->op = op;
      st->dim = d;
      st->count = (double)g.r;
      n->ninput_shape = t->ndim;
      memcpy(n->input_shape, t->shape, sizeof n->input_shape);
      if (op == LG_RED_PROD || op == LG_RED_MAX || op == LG_RED_MIN) {
        if (lg_node_save(n, t) || lg_node_save(n, out)) {
          lg_release(out);
          out = NULL;
        }
      }
    }
  }
  lg_release(c);
  return out;
}

lg_tensor *lg_sum(lg_tensor *t) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_sum: argument %d is NULL or revoked", 1);
    return NULL;
  }
  return lg_reduce(LG_RED_SUM, t, LG_ALL_DIMS, false);
}

/* ---- sum_to: the reverse of a broadcast ---- */

static int sum_to_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  grads[0] = lg_expand(g, n->ninput_shape, n->input_shape);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_sum_to(lg_tensor *t, int ndim, const int64_t *shape) {
  if (LG_UNUSABLE(t) || (ndim > 0 && !shape)) {
    lg_seterr("lg_sum_to: argument %d is NULL or revoked",
              (LG_UNUSABLE(t)) ? 1 : 3);
    return NULL;
  }
  if (ndim > t->ndim) {
    lg_seterr("sum_to: cannot reduce %d dims to %d", t->ndim, ndim);
    return NULL;
  }
  int lead = t->ndim - ndim;
  int64_t ost[LG_MAX_DIMS], cst[LG_MAX_DIMS];
  for (int i = 0; i < ndim; i++)
    if (shape[i] != 1 && shape[i] != t->shape[lead + i]) {
      char b[200];
      lg_seterr("sum_to: %s does not reduce to the target shape",
                lg_shape_str(t, b, sizeof b));
      return NULL;
    }
  lg_dtype od = t->dtype == LG_BOOL ? LG_INT64 : t->dtype;
  lg_tensor *out = lg_zeros(od, ndim, shape);
  if (!out)
    return NULL;
  lg_contiguous_strides(ndim, shape, cst);
  for (int i = 0; i < t->ndim; i++) {
    int j = i - lead;
    ost[i] = (j < 0 || shape[j] == 1) ? 0 : cst[j];
  }
  const int64_t *strides[2] = {ost, t->strides};
  lg_iter it;
  lg_iter_init(&it, t->ndim, t->shape, 2, strides);
  int64_t n = lg_iter_inner(&it), so = lg_iter_istride(&it, 0),
          si = lg_iter_istride(&it, 1);
  if (it.remaining > 0) {
    if (od == LG_FLOAT32) {
      float *o = out->storage->data;
      const float *x = (const float *)t->storage->data + t->offset;
      do {
        float *po = o + it.offs[0];
        const float *px = x + it.offs[1];
        if (so == 0) {
          double acc = 0;
          for (int64_t i = 0; i < n; i++)
            acc += px[i * si];
          *po += (float)acc;
        } else {
          for (int64_t i = 0; i < n; i++)
            po[i * so] += px[i * si];
        }
      } while (lg_iter_next(&it));
    } else if (od == LG_INT64) {
      /* exact, wrapping around (in uint64_t: defined) */
      int64_t *o = out->storage->data;
      do {
        for (int64_t i = 0; i < n; i++) {
          int64_t oo = it.offs[0] + i * so,
                  xi = t->offset + it.offs[1] + i * si;
          uint64_t v = t->dtype == LG_INT64
                           ? (uint64_t)((const int64_t *)t->storage->data)[xi]
                           : ((const uint8_t *)t->storage->data)[xi] != 0;
          o[oo] = (int64_t)((uint64_t)o[oo] + v);
        }
      } while (lg_iter_next(&it));
    } else {
      void *o = out->storage->data;
      do {
        for (int64_t i = 0; i < n; i++) {
          int64_t oo = it.offs[0] + i * so;
          lg_store(od, o, oo,
                   lg_load(od, o, oo) +
                       lg_load(t->dtype, t->storage->data,
                               t->offset + it.offs[1] + i * si));
        }
      } while (lg_iter_next(&it));
    }
  }
  lg_node *node = lg_record(out, "sum_to", sum_to_backward, 1, &t);
  if (node) {
    node->ninput_shape = t->ndim;
    memcpy(node->input_shape, t->shape, sizeof node->input_shape);
  }
  return out;
}

/* ---- composite reductions (differentiable through their parts) ---- */

lg_tensor *lg_var(lg_tensor *t, int dim, bool keepdim, bool unbiased) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_var: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (!lg_dtype_is_float(t->dtype)) {
    lg_seterr("var: needs a float tensor, got %s", lg_dtype_name(t->dtype));
    return NULL;
  }
  red_geom g;
  if (red_geometry("var", t, dim, keepdim, &g) == -1)
    return NULL;
  double n = (double)g.r - (unbiased ? 1 : 0);
  lg_tensor *mean = lg_reduce(LG_RED_MEAN, t, dim, true);
  lg_tensor *dev = mean ? lg_binary(LG_OP_SUB, t, mean) : NULL;
  lg_tensor *sq = dev ? lg_unary(LG_OP_SQUARE, dev) : NULL;
  lg_tensor *s = sq ? lg_reduce(LG_RED_SUM, sq, dim, keepdim) : NULL;
  lg_tensor *r = s ? lg_binary_scalar(LG_OP_DIV, s, n, false) : NULL;
  lg_release(mean);
  lg_release(dev);
  lg_release(sq);
  lg_release(s);
  return r;
}

/* d|x|_p/dx = sign(x) |x|^(p-1) / |x|_p^(p-1) (x / |x|_2 for p = 2), and
 * 0 where the norm is 0, as PyTorch has it (the composite form would give
 * 0 * inf = NaN there).  Written with differentiable ops. */
static int norm_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *x = lg_node_saved(n, 0), *out = lg_node_saved(n, 1);
  if (!x || !out)
    return -1;
  const struct norm_state *st = LG_NODE_STATE(n, struct norm_state);
  double p = st->p;
  lg_tensor *ko = lg_reshape(out, st->keep.ndim, st->keep.dim);
  lg_tensor *gk = lg_reshape(g, st->keep.ndim, st->keep.dim);
  lg_tensor *zero = ko ? lg_binary_scalar(LG_OP_EQ, ko, 0, false) : NULL;
  lg_tensor *one = lg_scalar(x->dtype, 1), *nil = lg_scalar(x->dtype, 0);
  lg_tensor *safe = zero && one ? lg_where(zero, one, ko) : NULL;
  lg_tensor *den = NULL, *num = NULL;
  if (p == 2) {
    den = safe ? lg_retain(safe) : NULL;
    num = lg_retain(x);
  } else {
    den = safe ? lg_binary_scalar(LG_OP_POW, safe, p - 1, false) : NULL;
    lg_tensor *a = lg_unary(LG_OP_ABS, x);
    lg_tensor *ap = a ? lg_binary_scalar(LG_OP_POW, a, p - 1, false) : NULL;
    lg_tensor *sg = lg_unary(LG_OP_SIGN, x);
    num = ap && sg ? lg_binary(LG_OP_MUL, sg, ap) : NULL;
    lg_release(a);
    lg_release(ap);
    lg_release(sg);
  }
  lg_tensor *q = gk && den ? lg_binary(LG_OP_DIV, gk, den) : NULL;
  lg_tensor *qz = q && nil ? lg_where(zero, nil, q) : NULL;
  grads[0] = qz && num ? lg_binary(LG_OP_MUL, num, qz) : NULL;
  lg_release(ko);
  lg_release(gk);
  lg_release(zero);
  lg_release(one);
  lg_release(nil);
  lg_release(safe);
  lg_release(den);
  lg_release(num);
  lg_release(q);
  lg_release(qz);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_norm(lg_tensor *t, double p, int dim, bool keepdim) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_norm: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (!lg_dtype_is_float(t->dtype)) {
    lg_seterr("norm: needs a float tensor, got %s", lg_dtype_name(t->dtype));
    return NULL;
  }
  if (!isinf(p) && p != 0 && p != 1) {
    /* one node with its own backward, so that a zero norm has gradient 0 */
    red_geom geo;
    int d = red_geometry("norm", t, dim, keepdim, &geo);
    if (d == -1)
      return NULL;
    bool was = lg_set_grad_enabled(false);
    lg_tensor *r = NULL;
    if (p == 2) {
      lg_tensor *sq = lg_unary(LG_OP_SQUARE, t);
      lg_tensor *s = sq ? lg_reduce(LG_RED_SUM, sq, dim, keepdim) : NULL;
      r = s ? lg_unary(LG_OP_SQRT, s) : NULL;
      lg_release(sq);
      lg_release(s);
    } else {
      lg_tensor *a = lg_unary(LG_OP_ABS, t);
      lg_tensor *pw = a ? lg_binary_scalar(LG_OP_POW, a, p, false) : NULL;
      lg_tensor *s = pw ? lg_reduce(LG_RED_SUM, pw, dim, keepdim) : NULL;
      r = s ? lg_binary_scalar(LG_OP_POW, s, 1 / p, false) : NULL;
      lg_release(a);
      lg_release(pw);
      lg_release(s);
    }
    lg_set_grad_enabled(was);
    if (!r)
      return NULL;
    lg_node *n = lg_record(r, "norm", norm_backward, 1, &t);
    if (n) {
      struct norm_state *st = LG_NODE_STATE(n, struct norm_state);
      keep_shape(&st->keep, geo.keep_ndim, geo.keep_shape);
      st->p = p;
      if (lg_node_save(n, t) || lg_node_save(n, r)) {
        lg_release(r);
        return NULL;
      }
    }
    return r;
  }
  lg_tensor *a = lg_unary(LG_OP_ABS, t), *r = NULL;
  if (!a)
    return NULL;
  /* inf, 1 and 0: composites of max/min, sum and a count */
  if (isinf(p)) {
    r = lg_reduce(p > 0 ? LG_RED_MAX : LG_RED_MIN, a, dim, keepdim);
  } else if (p == 1) {
    r = lg_reduce(LG_RED_SUM, a, dim, keepdim);
  } else {
    lg_tensor *nz = lg_binary_scalar(LG_OP_NE, t, 0, false);
    lg_tensor *f = nz ? lg_to_dtype(nz, t->dtype) : NULL;
    r = f ? lg_reduce(LG_RED_SUM, f, dim, keepdim) : NULL;
    lg_release(nz);
    lg_release(f);
  }
  lg_release(a);
  return r;
}

lg_tensor *lg_logsumexp(lg_tensor *t, int dim, bool keepdim) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_logsumexp: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (!lg_dtype_is_float(t->dtype)) {
    lg_seterr("logsumexp: needs a float tensor, got %s",
              lg_dtype_name(t->dtype));
    return NULL;
  }
  /* m + log(sum(exp(x - m))), m the max held constant */
  bool was = lg_set_grad_enabled(false);
  lg_tensor *m = lg_reduce(LG_RED_MAX, t, dim, true);
  if (m) { /* all -inf rows: use 0 so the result is -inf, not NaN */
    int64_t n = lg_numel(m);
    for (int64_t i = 0; i < n; i++) {
      double v = lg_load(m->dtype, m->storage->data, i);
      if (isinf(v))
        lg_store(m->dtype, m->storage->data, i, 0);
    }
  }
  lg_set_grad_enabled(was);
  lg_tensor *d = m ? lg_binary(LG_OP_SUB, t, m) : NULL;
  lg_tensor *e = d ? lg_unary(LG_OP_EXP, d) : NULL;
  lg_tensor *s = e ? lg_reduce(LG_RED_SUM, e, dim, true) : NULL;
  lg_tensor *l = s ? lg_unary(LG_OP_LOG, s) : NULL;
  lg_tensor *r = l ? lg_binary(LG_OP_ADD, l, m) : NULL;
  if (r && !keepdim && dim != LG_ALL_DIMS) {
    lg_tensor *q = lg_squeeze(r, dim);
    lg_release(r);
    r = q;
  } else if (r && !keepdim) {
    lg_tensor *q = lg_reshape(r, 0, NULL);
    lg_release(r);
    r = q;
  }
  lg_release(m);
  lg_release(d);
  lg_release(e);
  lg_release(s);
  lg_release(l);
  return r;
}

/* softmax over dim of contiguous (outer, r, inner) data */
#define SOFTMAX_KERNEL(T, EXP, LOG)                                           \
  static void softmax_##T(const T *x, T *y, red_geom g, bool log_out) {       \
    for (int64_t o = 0; o < g.outer; o++)                                     \
      for (int64_t i = 0; i < g.inner; i++) {                                 \
        const T *p = x + o * g.r * g.inner + i;                               \
        T *q = y + o * g.r * g.inner + i;                                     \
        T m = -INFINITY;                                                      \
        for (int64_t k = 0; k < g.r; k++)                                     \
          if (p[k * g.inner] > m)                                             \
            m = p[k * g.inner];                                               \
        if (isinf(m))                                                         \
          m = 0;                                                              \
        double s = 0;                                                         \
        for (int64_t k = 0; k < g.r; k++) {                                   \
          T e = EXP(p[k * g.inner] - m);                                      \
          if (!log_out)                                                       \
            q[k * g.inner] = e;                                               \
          s += e;                                                             \
        }                                                                     \
        if (log_out) {                                                        \
          T ls = (T)LOG(s) + m;                                               \
          for (int64_t k = 0; k < g.r; k++)                                   \
            q[k * g.inner] = p[k * g.inner] - ls;                             \
        } else {                                                              \
          T inv = (T)(1.0 / s);                                               \
          for (int64_t k = 0; k < g.r; k++)                                   \
            q[k * g.inner] *= inv;                                            \
        }                                                                     \
      }                                                                       \
  }
SOFTMAX_KERNEL(float, expf, log)
SOFTMAX_KERNEL(double, exp, log)

/* softmax/log_softmax (flag: log), max/min with indices (flag: keepdim),
 * cumsum: a dimension and a flag */
struct dim_state {
  int dim;
  bool flag;
};
#define DIMST(n) LG_NODE_STATE(n, struct dim_state)

static int softmax_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *y = lg_node_saved(n, 0);
  if (!y)
    return -1;
  int dim = DIMST(n)->dim;
  bool log_out = DIMST(n)->flag;
  lg_tensor *r = NULL;
  if (log_out) { /* g - exp(y) * sum(g) */
    lg_tensor *s = lg_reduce(LG_RED_SUM, g, dim, true);
    lg_tensor *e = s ? lg_unary(LG_OP_EXP, y) : NULL;
    lg_tensor *es = e ? lg_binary(LG_OP_MUL, e, s) : NULL;
    r = es ? lg_binary(LG_OP_SUB, g, es) : NULL;
    lg_release(s);
    lg_release(e);
    lg_release(es);
  } else { /* y * (g - sum(g * y)) */
    lg_tensor *gy = lg_binary(LG_OP_MUL, g, y);
    lg_tensor *s = gy ? lg_reduce(LG_RED_SUM, gy, dim, true) : NULL;
    lg_tensor *d = s ? lg_binary(LG_OP_SUB, g, s) : NULL;
    r = d ? lg_binary(LG_OP_MUL, y, d) : NULL;
    lg_release(gy);
    lg_release(s);
    lg_release(d);
  }
  grads[0] = r;
  return r ? 0 : -1;
}

static lg_tensor *softmax_impl(lg_tensor *t, int dim, bool log_out) {
  const char *name = log_out ? "log_softmax" : "softmax";
  if (!lg_dtype_is_float(t->dtype)) {
    lg_seterr("%s: needs a float tensor, got %s", name,
              lg_dtype_name(t->dtype));
    return NULL;
  }
  red_geom g;
  int d = red_geometry(name, t, dim, true, &g);
  if (d == LG_ALL_DIMS)
    lg_seterr("%s: needs one dimension, not all of them", name);
  if (d < 0)
    return NULL;
  lg_tensor *c = lg_contiguous(t);
  lg_tensor *out = c ? lg_empty_like(t) : NULL;
  if (out) {
    if (t->dtype == LG_FLOAT32)
      softmax_float(lg_data_ptr(c), out->storage->data, g, log_out);
    else
      softmax_double(lg_data_ptr(c), out->storage->data, g, log_out);
    lg_node *n = lg_record(out, name, softmax_backward, 1, &t);
    if (n) {
      *DIMST(n) = (struct dim_state){d, log_out};
      if (lg_node_save(n, out)) {
        lg_release(out);
        out = NULL;
      }
    }
  }
  lg_release(c);
  return out;
}

lg_tensor *lg_softmax(lg_tensor *t, int dim) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_softmax: argument %d is NULL or revoked", 1);
    return NULL;
  }
  return softmax_impl(t, dim, false);
}
lg_tensor *lg_log_softmax(lg_tensor *t, int dim) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_log_softmax: argument %d is NULL or revoked", 1);
    return NULL;
  }
  return softmax_impl(t, dim, true);
}

static lg_tensor *cumsum_raw(lg_tensor *t, int d) {
  red_geom g;
  red_geometry("cumsum", t, d, true, &g);
  lg_dtype od = lg_dtype_is_float(t->dtype) ? t->dtype : LG_INT64;
  lg_tensor *c = lg_contiguous(t);
  lg_tensor *out = c ? lg_empty(od, t->ndim, t->shape) : NULL;
  if (out && od == LG_INT64) {
    /* exact, wrapping around as in PyTorch (in uint64_t: defined) */
    const void *x = lg_data_ptr(c);
    int64_t *y = out->storage->data;
    for (int64_t o = 0; o < g.outer; o++)
      for (int64_t i = 0; i < g.inner; i++) {
        uint64_t acc = 0;
        for (int64_t k = 0; k < g.r; k++) {
          int64_t j = (o * g.r + k) * g.inner + i;
          acc += t->dtype == LG_INT64 ? (uint64_t)((const int64_t *)x)[j]
                                      : ((const uint8_t *)x)[j] != 0;
          y[j] = (int64_t)acc;
        }
      }
  } else if (out) {
    const void *x = lg_data_ptr(c);
    for (int64_t o = 0; o < g.outer; o++)
      for (int64_t i = 0; i < g.inner; i++) {
        double acc = 0;
        for (int64_t k = 0; k < g.r; k++) {
          int64_t j = (o * g.r + k) * g.inner + i;
          acc += lg_load(t->dtype, x, j);
          lg_store(od, out->storage->data, j, acc);
        }
      }
  }
  lg_release(c);
  return out;
}

static int cumsum_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  /* reverse cumulative sum: total - cumsum(g) + g */
  int d = DIMST(n)->dim;
  lg_tensor *tot = lg_reduce(LG_RED_SUM, g, d, true);
  lg_tensor *cs = tot ? lg_cumsum(g, d) : NULL;
  lg_tensor *a = cs ? lg_binary(LG_OP_SUB, tot, cs) : NULL;
  grads[0] = a ? lg_binary(LG_OP_ADD, a, g) : NULL;
  lg_release(tot);
  lg_release(cs);
  lg_release(a);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_cumsum(lg_tensor *t, int dim) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_cumsum: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (t->ndim == 0)
    dim = 0;
  else if ((dim = lg_wrap_dim("cumsum", dim, t->ndim)) < 0)
    return NULL;
  lg_tensor *out = cumsum_raw(t, t->ndim ? dim : LG_ALL_DIMS);
  if (out) {
    lg_node *n = lg_record(out, "cumsum", cumsum_backward, 1, &t);
    if (n)
      DIMST(n)->dim = dim;
  }
  return out;
}

/* ---- max/min along a dim with indices ---- */

static int maxdim_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *idx = lg_node_saved(n, 0);
  if (!idx)
    return -1;
  int dim = DIMST(n)->dim;
  lg_tensor *gk = g, *ik = idx;
  if (!DIMST(n)->flag) { /* restore the reduced dim */
    gk = lg_unsqueeze(g, dim);
    ik = lg_unsqueeze(idx, dim);
  }
  lg_tensor *z = gk && ik ? lg_zeros(g->dtype, n->ninput_shape,
                                     n->input_shape)
                          : NULL;
  grads[0] = z ? lg_scatter_add(z, dim, ik, gk) : NULL;
  lg_release(z);
  if (gk != g)
    lg_release(gk);
  if (ik != idx)
    lg_release(ik);
  return grads[0] ? 0 : -1;
}

int lg_max_dim(lg_tensor *t, int dim, bool keepdim, bool is_min,
               lg_tensor **values, lg_tensor **indices) {
  if (LG_UNUSABLE(t) || !values) {
    lg_seterr("lg_max_dim: argument %d is NULL or revoked",
              (LG_UNUSABLE(t)) ? 1 : 5);
    return -1;
  }
  const char *name = is_min ? "min" : "max";
  *values = *indices = NULL;
  red_geom g;
  int d = red_geometry(name, t, dim, keepdim, &g);
  if (d == LG_ALL_DIMS)
    lg_seterr("%s: needs one dimension, not all of them", name);
  if (d < 0)
    return -1;
  if (g.r == 0) {
    lg_seterr("%s: cannot reduce an empty dimension", name);
    return -1;
  }
  lg_tensor *c = lg_contiguous(t);
  lg_tensor *v = c ? lg_empty(t->dtype, g.ndim, g.shape) : NULL;
  lg_tensor *ix = v ? lg_empty(LG_INT64, g.ndim, g.shape) : NULL;
  if (!ix) {
    lg_release(c);
    lg_release(v);
    return -1;
  }
  const void *x = lg_data_ptr(c);
  int64_t *ip = ix->storage->data;
  for (int64_t o = 0; o < g.outer; o++)
    for (int64_t i = 0; i < g.inner; i++) {
      double best = 0;
      int64_t bi = 0;
      for (int64_t k = 0; k < g.r; k++) {
        double val = lg_load(t->dtype, x, (o * g.r + k) * g.inner + i);
        if (k == 0 || (val != val && best == best) ||
            (is_min ? val < best : val > best)) {
          best = val;
          bi = k;
        }
        if (best != best)
          break;
      }
      lg_store(t->dtype, v->storage->data, o * g.inner + i, best);
      ip[o * g.inner + i] = bi;
    }
  lg_release(c);
  lg_node *n = lg_dtype_is_float(t->dtype)
                   ? lg_record(v, name, maxdim_backward, 1, &t)
                   : NULL;
  if (n) {
    *DIMST(n) = (struct dim_state){d, keepdim};
    n->ninput_shape = t->ndim;
    memcpy(n->input_shape, t->shape, sizeof n->input_shape);
    if (lg_node_save(n, ix)) {
      lg_release(v);
      lg_release(ix);
      return -1;
    }
  }
  *values = v;
  *indices = ix;
  return 0;
}

lg_tensor *lg_argmax(lg_tensor *t, int dim, bool keepdim, bool is_min) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_argmax: argument %d is NULL or revoked", 1);
    return NULL;
  }
  lg_tensor *v, *ix;
  bool was = lg_set_grad_enabled(false);
  int rc;
  if (dim == LG_ALL_DIMS) {
    int64_t n = lg_numel(t);
    lg_tensor *flat = lg_reshape(t, 1, &n);
    rc = flat ? lg_max_dim(flat, 0, false, is_min, &v, &ix) : -1;
    lg_release(flat);
  } else {
    rc = lg_max_dim(t, dim, keepdim, is_min, &v, &ix);
  }
  lg_set_grad_enabled(was);
  if (rc)
    return NULL;
  lg_release(v);
  return ix;
}
