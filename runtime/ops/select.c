/*
 * select.c -- ops that pick elements by value: masked_fill_ (in place,
 * recorded in a graph), masked_select, nonzero, argsort, unique, isclose
 * and allclose, and the samplers multinomial and bernoulli.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

int lg_masked_fill_(lg_tensor *t, lg_tensor *mask, double v) {
  if (lg_inplace_records(t, 0, NULL)) {
    lg_tensor *c = lg_inplace_begin("masked_fill_", t);
    return c ? lg_inplace_end(t, c, lg_masked_fill(c, mask, v)) : -1;
  }
  if (lg_check_inplace("masked_fill_", t))
    return -1;
  lg_tensor *out = lg_masked_fill(t, mask, v);
  if (!out)
    return -1;
  int rc = lg_copy_(t, out);
  lg_release(out);
  return rc;
}

/* a and b expanded to their broadcast shape, made contiguous; -1 on a
 * shape clash */
static int broadcast_pair(const char *name, lg_tensor *a, lg_tensor *b,
                          lg_tensor **ae, lg_tensor **be) {
  int nd;
  int64_t shape[LG_MAX_DIMS];
  *ae = *be = NULL;
  if (lg_broadcast_shape(name, a, b, &nd, shape))
    return -1;
  *ae = lg_expand(a, nd, shape);
  *be = *ae ? lg_expand(b, nd, shape) : NULL;
  return *be ? 0 : -1;
}

/* 0-based flat positions of the true elements of a contiguous bool mask */
static lg_tensor *true_positions(lg_tensor *mc) {
  const uint8_t *m = lg_data_ptr(mc);
  int64_t n = lg_numel(mc), k = 0;
  for (int64_t i = 0; i < n; i++)
    k += m[i] != 0;
  lg_tensor *idx = lg_empty(LG_INT64, 1, &k);
  if (!idx)
    return NULL;
  int64_t *p = lg_data_ptr(idx);
  for (int64_t i = 0, j = 0; i < n; i++)
    if (m[i])
      p[j++] = i;
  return idx;
}

lg_tensor *lg_masked_select(lg_tensor *t, lg_tensor *mask) {
  if (mask->dtype != LG_BOOL) {
    lg_seterr("masked_select: the mask must be a bool tensor, got %s",
              lg_dtype_name(mask->dtype));
    return NULL;
  }
  lg_tensor *te, *me;
  if (broadcast_pair("masked_select", t, mask, &te, &me)) {
    lg_release(te);
    return NULL;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *mc = lg_contiguous(me);
  lg_set_grad_enabled(was);
  lg_tensor *idx = mc ? true_positions(mc) : NULL;
  int64_t all = -1;
  lg_tensor *flat = idx ? lg_reshape(te, 1, &all) : NULL;
  lg_tensor *out = flat ? lg_index_select(flat, 0, idx) : NULL;
  lg_release(flat);
  lg_release(idx);
  lg_release(mc);
  lg_release(me);
  lg_release(te);
  return out;
}

lg_tensor *lg_nonzero(lg_tensor *t) {
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c = lg_contiguous(t);
  lg_set_grad_enabled(was);
  if (!c)
    return NULL;
  int64_t n = lg_numel(c), k = 0;
  const void *p = lg_data_ptr(c);
  for (int64_t i = 0; i < n; i++)
    k += lg_load(c->dtype, p, i) != 0;
  int64_t shape[2] = {k, t->ndim};
  lg_tensor *out = lg_empty(LG_INT64, 2, shape);
  if (out) {
    int64_t *o = lg_data_ptr(out);
    for (int64_t i = 0, j = 0; i < n; i++) {
      if (lg_load(c->dtype, p, i) == 0)
        continue;
      int64_t rem = i;
      for (int d = t->ndim - 1; d >= 0; d--) {
        o[j * t->ndim + d] = rem % t->shape[d];
        rem /= t->shape[d];
      }
      j++;
    }
  }
  lg_release(c);
  return out;
}

lg_tensor *lg_argsort(lg_tensor *t, int dim, bool descending) {
  lg_tensor *v, *i;
  bool was = lg_set_grad_enabled(false);
  int rc = lg_sort(t, dim, descending, &v, &i);
  lg_set_grad_enabled(was);
  if (rc)
    return NULL;
  lg_release(v);
  return i;
}

int lg_unique(lg_tensor *t, lg_tensor **values, lg_tensor **inverse,
              lg_tensor **counts) {
  *values = NULL;
  if (inverse)
    *inverse = NULL;
  if (counts)
    *counts = NULL;
  bool was = lg_set_grad_enabled(false);
  int64_t all = -1;
  lg_tensor *flat = lg_reshape(t, 1, &all);
  lg_tensor *sv = NULL, *si = NULL;
  int rc = flat ? lg_sort(flat, 0, false, &sv, &si) : -1;
  lg_release(flat);
  lg_tensor *svc = rc ? NULL : lg_contiguous(sv);
  lg_set_grad_enabled(was);
  int64_t n = lg_numel(t), k = 0;
  if (!svc) {
    lg_release(sv);
    lg_release(si);
    return -1;
  }
  const void *vp = lg_data_ptr(svc);
  for (int64_t i = 0; i < n; i++)
    if (i == 0 || lg_load(t->dtype, vp, i) != lg_load(t->dtype, vp, i - 1) ||
        isnan(lg_load(t->dtype, vp, i)))
      k++;
  lg_tensor *u = lg_empty(t->dtype, 1, &k);
  lg_tensor *cnt = u ? lg_zeros(LG_INT64, 1, &k) : NULL;
  lg_tensor *inv = cnt ? lg_empty(LG_INT64, t->ndim, t->shape) : NULL;
  if (inv) {
    size_t es = lg_dtype_size(t->dtype);
    const int64_t *order = lg_data_ptr(si);
    int64_t *c = lg_data_ptr(cnt), *iv = lg_data_ptr(inv), j = -1;
    for (int64_t i = 0; i < n; i++) {
      if (i == 0 ||
          lg_load(t->dtype, vp, i) != lg_load(t->dtype, vp, i - 1) ||
          isnan(lg_load(t->dtype, vp, i))) {
        j++;
        memcpy((char *)lg_data_ptr(u) + j * es, (const char *)vp + i * es,
               es);
      }
      c[j]++;
      iv[order[i * si->strides[0]]] = j;
    }
  }
  lg_release(svc);
  lg_release(sv);
  lg_release(si);
  if (!inv) {
    lg_release(u);
    lg_release(cnt);
    return -1;
  }
  *values = u;
  if (counts)
    *counts = cnt;
  else
    lg_release(cnt);
  if (inverse)
    *inverse = inv;
  else
    lg_release(inv);
  return 0;
}

lg_tensor *lg_isclose(lg_tensor *a, lg_tensor *b, double rtol, double atol,
                      bool equal_nan) {
  if (!(rtol >= 0) || !(atol >= 0)) {
    lg_seterr("isclose: rtol and atol must be non-negative");
    return NULL;
  }
  lg_tensor *ae, *be;
  if (broadcast_pair("isclose", a, b, &ae, &be)) {
    lg_release(ae);
    return NULL;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *ad = lg_to_dtype(ae, LG_FLOAT64);
  lg_tensor *bd = ad ? lg_to_dtype(be, LG_FLOAT64) : NULL;
  lg_tensor *ac = bd ? lg_contiguous(ad) : NULL;
  lg_tensor *bc = ac ? lg_contiguous(bd) : NULL;
  lg_set_grad_enabled(was);
  lg_tensor *out = bc ? lg_empty(LG_BOOL, ae->ndim, ae->shape) : NULL;
  if (out) {
    const double *x = lg_data_ptr(ac), *y = lg_data_ptr(bc);
    uint8_t *o = lg_data_ptr(out);
    for (int64_t i = 0, n = lg_numel(out); i < n; i++) {
      if (isnan(x[i]) || isnan(y[i]))
        o[i] = equal_nan && isnan(x[i]) && isnan(y[i]);
      else
        o[i] = x[i] == y[i] ||
               fabs(x[i] - y[i]) <= atol + rtol * fabs(y[i]);
    }
  }
  lg_release(ae);
  lg_release(be);
  lg_release(ad);
  lg_release(bd);
  lg_release(ac);
  lg_release(bc);
  return out;
}

int lg_allclose(lg_tensor *a, lg_tensor *b, double rtol, double atol,
                bool equal_nan) {
  lg_tensor *c = lg_isclose(a, b, rtol, atol, equal_nan);
  if (!c)
    return -1;
  const uint8_t *o = lg_data_ptr(c);
  int all = 1;
  for (int64_t i = 0, n = lg_numel(c); i < n && all; i++)
    all = o[i] != 0;
  lg_release(c);
  return all;
}

/* ---- sampling ---- */

lg_tensor *lg_multinomial(lg_tensor *probs, int64_t n, bool replacement,
                          lg_generator *g) {
  if (probs->ndim < 1 || probs->ndim > 2 || !lg_dtype_is_float(probs->dtype)) {
    char b[200];
    lg_seterr("multinomial: probs must be a 1-d or 2-d float tensor, got %s "
              "%s",
              lg_shape_str(probs, b, sizeof b), lg_dtype_name(probs->dtype));
    return NULL;
  }
  int64_t rows = probs->ndim == 2 ? probs->shape[0] : 1;
  int64_t k = probs->shape[probs->ndim - 1];
  if (n < 0 || (!replacement && n > k) || k == 0) {
    lg_seterr("multinomial: cannot draw %lld samples from %lld categories "
              "%s replacement",
              (long long)n, (long long)k, replacement ? "with" : "without");
    return NULL;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *pd = lg_to_dtype(probs, LG_FLOAT64);
  lg_tensor *pc = pd ? lg_clone(pd) : NULL;
  lg_set_grad_enabled(was);
  lg_release(pd);
  if (!pc)
    return NULL;
  double *w = lg_data_ptr(pc);
  for (int64_t r = 0; r < rows; r++) {
    double s = 0;
    int64_t nz = 0;
    for (int64_t j = 0; j < k; j++) {
      double v = w[r * k + j];
      if (!(v >= 0) || isinf(v)) {
        lg_seterr("multinomial: row %lld has a negative, infinite or NaN "
                  "probability",
                  (long long)r + 1);
        lg_release(pc);
        return NULL;
      }
      s += v;
      nz += v > 0;
    }
    if (!(s > 0) || (!replacement && n > nz)) {
      lg_seterr("multinomial: row %lld has %s", (long long)r + 1,
                s > 0 ? "fewer non-zero categories than samples asked "
                        "without replacement"
                      : "no positive probability");
      lg_release(pc);
      return NULL;
    }
  }
  int64_t shape[2] = {rows, n};
  lg_tensor *out = probs->ndim == 2 ? lg_empty(LG_INT64, 2, shape)
                                    : lg_empty(LG_INT64, 1, &n);
  if (out) {
    int64_t *o = lg_data_ptr(out);
    for (int64_t r = 0; r < rows; r++) {
      double *p = w + r * k;
      for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < k; j++)
          s += p[j];
        double u = lg_random_uniform(g) * s, acc = 0;
        int64_t pick = -1;
        for (int64_t j = 0; j < k; j++) {
          if (p[j] <= 0)
            continue;
          pick = j;
          acc += p[j];
          if (u < acc)
            break;
        }
        o[r * n + i] = pick;
        if (!replacement)
          p[pick] = 0;
      }
    }
  }
  lg_release(pc);
  return out;
}

lg_tensor *lg_bernoulli(lg_tensor *p, lg_generator *g) {
  if (!lg_dtype_is_float(p->dtype)) {
    lg_seterr("bernoulli: probabilities must be a float tensor, got %s",
              lg_dtype_name(p->dtype));
    return NULL;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c = lg_clone(p);
  lg_set_grad_enabled(was);
  if (!c)
    return NULL;
  void *d = lg_data_ptr(c);
  for (int64_t i = 0, n = lg_numel(c); i < n; i++) {
    double q = lg_load(c->dtype, d, i);
    if (!(q >= 0 && q <= 1)) {
      lg_seterr("bernoulli: probability %g at element %lld is not in "
                "[0, 1]",
                q, (long long)i + 1);
      lg_release(c);
      return NULL;
    }
    lg_store(c->dtype, d, i, lg_random_uniform(g) < q ? 1 : 0);
  }
  return c;
}
