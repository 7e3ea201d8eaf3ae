/*
 * reg.c -- regularizers and gradient clipping (see reg.h).
 *
 * The penalty is a graph of ordinary ops so autograd differentiates it;
 * everything else is a fused loop over raw data: a contiguous fast path per
 * dtype, and a strided walk for views.
 */
#include <math.h>

#include "reg.h"

/* ---- element access and strided walks (float32 / float64 only) ---- */

static inline double load(lg_dtype d, const char *base, int64_t i) {
  return d == LG_FLOAT32 ? (double)((const float *)base)[i]
                         : ((const double *)base)[i];
}

static inline void store(lg_dtype d, char *base, int64_t i, double v) {
  if (d == LG_FLOAT32)
    ((float *)base)[i] = (float)v;
  else
    ((double *)base)[i] = v;
}

/* element offsets (from the storage's start) of a strided view, in
 * row-major order */
typedef struct {
  int ndim;
  int64_t shape[LG_MAX_DIMS], strides[LG_MAX_DIMS], idx[LG_MAX_DIMS];
  int64_t off;
} walk;

static void walk_init(walk *w, int ndim, const int64_t *shape,
                      const int64_t *strides, int64_t off) {
  w->ndim = ndim;
  for (int d = 0; d < ndim; d++) {
    w->shape[d] = shape[d];
    w->strides[d] = strides[d];
    w->idx[d] = 0;
  }
  w->off = off;
}

static void walk_tensor(walk *w, const lg_tensor *t) {
  walk_init(w, t->ndim, t->shape, t->strides, t->offset);
}

static void walk_next(walk *w) {
  for (int d = w->ndim - 1; d >= 0; d--) {
    if (++w->idx[d] < w->shape[d]) {
      w->off += w->strides[d];
      return;
    }
    w->off -= w->strides[d] * (w->shape[d] - 1);
    w->idx[d] = 0;
  }
}

static char *storage_base(const lg_tensor *t) {
  return (char *)t->storage->data;
}

static int check_float(const char *fname, const char *what, int i,
                       const lg_tensor *t) {
  if (!t) {
    lg_seterr("%s: parameter %I is NULL", fname, (long long)i);
    return -1;
  }
  if (t->dtype != LG_FLOAT32 && t->dtype != LG_FLOAT64) {
    lg_seterr("%s: %s of parameter %I is %s, not floating point", fname, what,
              (long long)i, lg_dtype_name(t->dtype));
    return -1;
  }
  return 0;
}

static void bump(lg_tensor *t) { t->storage->version++; }

/* ---- penalty ---- */

/* coef * sum(op(p)) */
static lg_tensor *scaled_sum(lg_unop op, lg_tensor *p, double coef) {
  lg_tensor *a = lg_unary(op, p);
  if (!a)
    return NULL;
  lg_tensor *s = lg_sum(a);
  lg_release(a);
  if (!s)
    return NULL;
  lg_tensor *t = lg_binary_scalar(LG_OP_MUL, s, coef, false);
  lg_release(s);
  return t;
}

/* *total += t (takes t's reference) */
static int accumulate(lg_tensor **total, lg_tensor *t) {
  if (!t)
    return -1;
  if (!*total) {
    *total = t;
    return 0;
  }
  lg_tensor *u = lg_binary(LG_OP_ADD, *total, t);
  lg_release(t);
  if (!u)
    return -1;
  lg_release(*total);
  *total = u;
  return 0;
}

lg_tensor *lg_reg_penalty(double l1, double l2, int n, lg_tensor **params) {
  lg_tensor *total = NULL;
  for (int i = 0; i < n; i++) {
    if (check_float("penalty", "the dtype", i, params[i]) < 0)
      goto fail;
    /* d/dp l1 |p| = l1 sign(p);  d/dp l2/2 p^2 = l2 p */
    if (l1 != 0 && accumulate(&total, scaled_sum(LG_OP_ABS, params[i], l1)) < 0)
      goto fail;
    if (l2 != 0 &&
        accumulate(&total, scaled_sum(LG_OP_SQUARE, params[i], l2 / 2)) < 0)
      goto fail;
  }
  if (!total)
    total = lg_scalar(n ? params[0]->dtype : lg_default_dtype(), 0);
  return total;
fail:
  lg_release(total);
  return NULL;
}

/* ---- apply: grad += l1 sign(p) + l2 p ---- */

static inline double sgn(double x) { return (double)((x > 0) - (x < 0)); }

int lg_reg_apply(double l1, double l2, int n, lg_tensor **params) {
  for (int i = 0; i < n; i++)
    if (check_float("apply", "the dtype", i, params[i]) < 0)
      return -1;
  for (int i = 0; i < n; i++) {
    lg_tensor *p = params[i];
    if (!p->requires_grad)
      continue;
    if (!p->grad) {
      p->grad = lg_zeros_like(p);
      if (!p->grad)
        return -1;
    }
    lg_tensor *g = p->grad;
    if (check_float("apply", "the grad", i, g) < 0)
      return -1;
    if (lg_is_row_sparse(g)) {
      /* a row-sparse gradient gets the penalty of the rows it holds only
       * (lazy regularization: a step stays O(rows used)) */
      if (!lg_is_contiguous(p) || p->dtype != g->dtype) {
        lg_seterr("apply: parameter %d must be contiguous and of its sparse "
                  "gradient's dtype",
                  i + 1);
        return -1;
      }
      int64_t nnz = g->shape[0], m = nnz ? lg_numel(g) / nnz : 0;
      const int64_t *rows = lg_data_ptr(g->sparse_rows);
      const char *xb = lg_data_ptr(p);
      char *gb = lg_data_ptr(g);
      for (int64_t r = 0; r < nnz; r++)
        for (int64_t k = 0; k < m; k++) {
          double x = load(p->dtype, xb, rows[r] * m + k);
          double v = load(g->dtype, gb, r * m + k) + l1 * sgn(x) + l2 * x;
          store(g->dtype, gb, r * m + k, v);
        }
      bump(g);
      continue;
    }
    if (!lg_same_shape(p, g)) {
      char a[200], b[200];
      lg_seterr("apply: parameter %I has shape %s but its grad %s",
                (long long)i, lg_shape_str(p, a, sizeof a),
                lg_shape_str(g, b, sizeof b));
      return -1;
    }
    int64_t m = lg_numel(p);
    if (p->dtype == g->dtype && lg_is_contiguous(p) && lg_is_contiguous(g)) {
      if (p->dtype == LG_FLOAT32) {
        const float *x = lg_data_ptr(p);
        float *dx = lg_data_ptr(g);
        float a = (float)l1, b = (float)l2;
        for (int64_t k = 0; k < m; k++)
          dx[k] += a * (float)((x[k] > 0) - (x[k] < 0)) + b * x[k];
      } else {
        const double *x = lg_data_ptr(p);
        double *dx = lg_data_ptr(g);
        for (int64_t k = 0; k < m; k++)
          dx[k] += l1 * sgn(x[k]) + l2 * x[k];
      }
    } else {
      walk wp, wg;
      walk_tensor(&wp, p);
      walk_tensor(&wg, g);
      const char *xb = storage_base(p);
      char *gb = storage_base(g);
      for (int64_t k = 0; k < m; k++) {
        double x = load(p->dtype, xb, wp.off);
        double v = load(g->dtype, gb, wg.off) + l1 * sgn(x) + l2 * x;
        store(g->dtype, gb, wg.off, v);
        walk_next(&wp);
        walk_next(&wg);
      }
    }
    bump(g);
  }
  return 0;
}

/* ---- proximal step: soft-threshold by t1, shrink by 1 + t2 ---- */

static inline double prox1(double x, double t1, double shrink) {
  double a = fabs(x) - t1;
  return a > 0 ? sgn(x) * a / shrink : 0.0;
}

int lg_reg_prox(double t1, double t2, int n, lg_tensor **params) {
  if (!(t1 >= 0) || !(t2 >= 0)) {
    lg_seterr("prox: thresholds must be >= 0, got %g and %g", t1, t2);
    return -1;
  }
  for (int i = 0; i < n; i++)
    if (check_float("prox", "the dtype", i, params[i]) < 0)
      return -1;
  double shrink = 1 + t2;
  for (int i = 0; i < n; i++) {
    lg_tensor *p = params[i];
    int64_t m = lg_numel(p);
    if (lg_is_contiguous(p) && p->dtype == LG_FLOAT64) {
      double *x = lg_data_ptr(p);
      for (int64_t k = 0; k < m; k++)
        x[k] = prox1(x[k], t1, shrink);
    } else if (lg_is_contiguous(p)) {
      float *x = lg_data_ptr(p);
      for (int64_t k = 0; k < m; k++)
        x[k] = (float)prox1(x[k], t1, shrink);
    } else {
      walk w;
      walk_tensor(&w, p);
      char *b = storage_base(p);
      for (int64_t k = 0; k < m; k++, walk_next(&w))
        store(p->dtype, b, w.off, prox1(load(p->dtype, b, w.off), t1, shrink));
    }
    bump(p);
  }
  return 0;
}

/* ---- max-norm projection ---- */

/* scales the elements of one slice (geometry in w) to norm <= c */
static void renorm_slice(lg_dtype d, char *base, const walk *slice, int64_t m,
                         double c) {
  walk w = *slice;
  double ss = 0;
  for (int64_t k = 0; k < m; k++, walk_next(&w)) {
    double x = load(d, base, w.off);
    ss += x * x;
  }
  double norm = sqrt(ss);
  if (!(norm > c))
    return;
  double scale = c / (norm + 1e-7);
  w = *slice;
  for (int64_t k = 0; k < m; k++, walk_next(&w))
    store(d, base, w.off, load(d, base, w.off) * scale);
}

int lg_reg_max_norm(double c, int dim, int n, lg_tensor **params) {
  if (!(c >= 0)) {
    lg_seterr("MaxNorm: the bound must be >= 0, got %g", c);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    lg_tensor *p = params[i];
    if (check_float("MaxNorm", "the dtype", i, p) < 0)
      return -1;
    if (p->ndim >= 2) {
      int d = dim < 0 ? dim + p->ndim : dim;
      if (d < 0 || d >= p->ndim) {
        lg_seterr(
            "MaxNorm: dim %I is out of range for parameter %I with %d dims",
            (long long)dim, (long long)i, p->ndim);
        return -1;
      }
    }
  }
  for (int i = 0; i < n; i++) {
    lg_tensor *p = params[i];
    char *base = storage_base(p);
    walk w;
    if (p->ndim < 2) {
      walk_tensor(&w, p);
      renorm_slice(p->dtype, base, &w, lg_numel(p), c);
    } else {
      int d = dim < 0 ? dim + p->ndim : dim;
      int64_t shape[LG_MAX_DIMS], strides[LG_MAX_DIMS], m = 1;
      int k = 0;
      for (int j = 0; j < p->ndim; j++)
        if (j != d) {
          shape[k] = p->shape[j];
          strides[k++] = p->strides[j];
          m *= p->shape[j];
        }
      for (int64_t s = 0; s < p->shape[d]; s++) {
        walk_init(&w, k, shape, strides, p->offset + s * p->strides[d]);
        renorm_slice(p->dtype, base, &w, m, c);
      }
    }
    bump(p);
  }
  return 0;
}

/* ---- gradient clipping ---- */

static int check_grads(const char *fname, int n, lg_tensor **params) {
  for (int i = 0; i < n; i++) {
    if (!params[i]) {
      lg_seterr("%s: parameter %I is NULL", fname, (long long)i);
      return -1;
    }
    if (params[i]->grad &&
        check_float(fname, "the grad", i, params[i]->grad) < 0)
      return -1;
  }
  return 0;
}

/* multiplies every element of g by s */
static void scale_tensor(lg_tensor *g, double s) {
  int64_t m = lg_numel(g);
  if (lg_is_contiguous(g) && g->dtype == LG_FLOAT32) {
    float *x = lg_data_ptr(g);
    float f = (float)s;
    for (int64_t k = 0; k < m; k++)
      x[k] *= f;
  } else if (lg_is_contiguous(g)) {
    double *x = lg_data_ptr(g);
    for (int64_t k = 0; k < m; k++)
      x[k] *= s;
  } else {
    walk w;
    walk_tensor(&w, g);
    char *b = storage_base(g);
    for (int64_t k = 0; k < m; k++, walk_next(&w))
      store(g->dtype, b, w.off, load(g->dtype, b, w.off) * s);
  }
  bump(g);
}

int lg_clip_grad_norm(int n, lg_tensor **params, double max_norm, double p,
                      bool error_if_nonfinite, double *total) {
  if (!(p > 0)) {
    lg_seterr("clip_grad_norm: p must be > 0 (or math.huge), got %g", p);
    return -1;
  }
  if (check_grads("clip_grad_norm", n, params) < 0)
    return -1;
  bool inf = isinf(p);
  double acc = 0;
  for (int i = 0; i < n; i++) {
    lg_tensor *g = params[i]->grad;
    if (!g)
      continue;
    int64_t m = lg_numel(g);
    walk w;
    walk_tensor(&w, g);
    const char *b = storage_base(g);
    for (int64_t k = 0; k < m; k++, walk_next(&w)) {
      double a = fabs(load(g->dtype, b, w.off));
      if (inf)
        acc = a > acc || isnan(a) ? a : acc;
      else if (p == 2)
        acc += a * a;
      else if (p == 1)
        acc += a;
      else
        acc += pow(a, p);
    }
  }
  double norm = inf ? acc : p == 2 ? sqrt(acc) : p == 1 ? acc : pow(acc, 1 / p);
  *total = norm;
  if (error_if_nonfinite && !isfinite(norm)) {
    lg_seterr("clip_grad_norm: the total norm of order %g is %s; set "
              "error_if_nonfinite = false to clip anyway",
              p,
              isnan(norm) ? "nan"
              : norm > 0  ? "inf"
                          : "-inf");
    return -1;
  }
  double coef = max_norm / (norm + 1e-6);
  if (coef < 1)
    for (int i = 0; i < n; i++)
      if (params[i]->grad)
        scale_tensor(params[i]->grad, coef);
  return 0;
}

int lg_clip_grad_value(int n, lg_tensor **params, double v) {
  if (!(v >= 0)) {
    lg_seterr("clip_grad_value: the bound must be >= 0, got %g", v);
    return -1;
  }
  if (check_grads("clip_grad_value", n, params) < 0)
    return -1;
  for (int i = 0; i < n; i++) {
    lg_tensor *g = params[i]->grad;
    if (!g)
      continue;
    int64_t m = lg_numel(g);
    walk w;
    walk_tensor(&w, g);
    char *b = storage_base(g);
    for (int64_t k = 0; k < m; k++, walk_next(&w)) {
      double x = load(g->dtype, b, w.off);
      if (x > v)
        store(g->dtype, b, w.off, v);
      else if (x < -v)
        store(g->dtype, b, w.off, -v);
    }
    bump(g);
  }
  return 0;
}
