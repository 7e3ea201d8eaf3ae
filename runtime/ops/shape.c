/*
 * shape.c -- ops that rearrange elements: tril/triu, repeat/tile, flip,
 * roll, diagonal/diag, unfold, and the running product cumprod and the
 * reductions amax/amin.  Most are written with differentiable ops (views,
 * expand, index_select, cat, index_add), so their gradients are too;
 * tril/triu, diagonal, cumprod and amax/amin have their own nodes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

/* ---- tril / triu ---- */

struct tri_state {
  int64_t k;
  bool upper;
};
#define TRI(n) LG_NODE_STATE(n, struct tri_state)

static int tri_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  grads[0] = lg_tri(g, TRI(n)->k, TRI(n)->upper);
  return grads[0] ? 0 : -1;
}

/* keeps the elements with j - i <= k (tril) or j - i >= k (triu) of the
 * last two dims; the rest become 0 */
lg_tensor *lg_tri(lg_tensor *t, int64_t k, bool upper) {
  const char *name = upper ? "triu" : "tril";
  if (t->ndim < 2) {
    char b[200];
    lg_seterr("%s: needs a tensor of at least 2 dimensions, got %s", name,
              lg_shape_str(t, b, sizeof b));
    return NULL;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c = lg_clone(t);
  lg_set_grad_enabled(was);
  if (!c)
    return NULL;
  int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
  int64_t mat = rows * cols, nb = mat ? lg_numel(t) / mat : 0;
  if (k > cols) /* the same triangle, and i + k cannot overflow */
    k = cols;
  else if (k < -rows)
    k = -rows;
  size_t es = lg_dtype_size(t->dtype);
  char *p = lg_data_ptr(c);
  for (int64_t b = 0; b < nb; b++)
    for (int64_t i = 0; i < rows; i++) {
      char *row = p + (b * mat + i * cols) * es;
      int64_t lo, hi; /* the zeroed columns [lo, hi) */
      if (upper) {
        lo = 0;
        hi = i + k < 0 ? 0 : i + k > cols ? cols : i + k;
      } else {
        lo = i + k + 1 < 0 ? 0 : i + k + 1 > cols ? cols : i + k + 1;
        hi = cols;
      }
      if (hi > lo)
        memset(row + lo * es, 0, (size_t)(hi - lo) * es);
    }
  lg_node *n = lg_record(c, name, tri_backward, 1, &t);
  if (n)
    *TRI(n) = (struct tri_state){k, upper};
  return c;
}

/* ---- repeat / tile: a reshape, an expand and a reshape ---- */

static lg_tensor *repeat_as(const char *name, lg_tensor *t, int n,
                            const int64_t *reps) {
  if (n < t->ndim || n > LG_MAX_DIMS) {
    lg_seterr("%s: %d repeat counts for a %d-d tensor (give at least "
              "one per dimension, at most %d)",
              name, n, t->ndim, LG_MAX_DIMS);
    return NULL;
  }
  int64_t s[LG_MAX_DIMS], a[LG_MAX_DIMS], e[LG_MAX_DIMS], f[LG_MAX_DIMS];
  int pad = n - t->ndim, na = 0;
  for (int i = 0; i < n; i++) {
    s[i] = i < pad ? 1 : t->shape[i - pad];
    if (reps[i] < 0) {
      lg_seterr("%s: repeat count %lld of dimension %d is negative",
                name, (long long)reps[i], i + 1);
      return NULL;
    }
    if (s[i] && reps[i] > ((int64_t)1 << 40) / s[i]) {
      lg_seterr("%s: size too large", name);
      return NULL;
    }
    f[i] = s[i] * reps[i];
    int need = reps[i] != 1 && s[i] != 1 ? 2 : 1;
    if (na + need > LG_MAX_DIMS) {
      lg_seterr("%s: too many repeated dimensions at once (at most %d "
                "dimensions in between); repeat in two steps",
                name, LG_MAX_DIMS);
      return NULL;
    }
    if (need == 2) {
      a[na] = 1;
      e[na++] = reps[i];
      a[na] = s[i];
      e[na++] = s[i];
    } else {
      a[na] = s[i];
      e[na++] = reps[i] != 1 ? reps[i] : s[i];
    }
  }
  if (lg_check_shape(name, n, f))
    return NULL;
  lg_tensor *v = lg_reshape(t, na, a);
  lg_tensor *x = v ? lg_expand(v, na, e) : NULL;
  lg_release(v);
  lg_tensor *out = x ? lg_reshape(x, n, f) : NULL;
  lg_release(x);
  if (out && out->storage == t->storage) { /* never a view of the input */
    lg_tensor *c = lg_clone(out);
    lg_release(out);
    out = c;
  }
  return out;
}

lg_tensor *lg_repeat(lg_tensor *t, int n, const int64_t *reps) {
  return repeat_as("repeat", t, n, reps);
}

lg_tensor *lg_tile(lg_tensor *t, int n, const int64_t *reps) {
  if (n >= t->ndim)
    return repeat_as("tile", t, n, reps);
  int64_t r[LG_MAX_DIMS];
  int pad = t->ndim - n;
  for (int i = 0; i < t->ndim; i++)
    r[i] = i < pad ? 1 : reps[i - pad];
  return repeat_as("tile", t, t->ndim, r);
}

/* ---- flip / roll ---- */

lg_tensor *lg_flip(lg_tensor *t, int n, const int *dims) {
  bool seen[LG_MAX_DIMS] = {0};
  int d[LG_MAX_DIMS];
  if (n > LG_MAX_DIMS) {
    lg_seterr("flip: too many dimensions");
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    if ((d[i] = lg_wrap_dim("flip", dims[i], t->ndim)) < 0)
      return NULL;
    if (seen[d[i]]) {
      lg_seterr("flip: dimension %d given twice", d[i] + 1);
      return NULL;
    }
    seen[d[i]] = true;
  }
  if (t->ndim == 0 || n == 0)
    return lg_clone(t);
  lg_tensor *cur = lg_retain(t);
  for (int i = 0; i < n && cur; i++) {
    int64_t len = t->shape[d[i]];
    lg_tensor *idx = lg_empty(LG_INT64, 1, &len);
    if (!idx) {
      lg_release(cur);
      return NULL;
    }
    int64_t *p = lg_data_ptr(idx);
    for (int64_t j = 0; j < len; j++)
      p[j] = len - 1 - j;
    lg_tensor *next = lg_index_select(cur, d[i], idx);
    lg_release(idx);
    lg_release(cur);
    cur = next;
  }
  return cur;
}

lg_tensor *lg_roll(lg_tensor *t, int n, const int64_t *shifts,
                   const int *dims) {
  if (n == 0 || !dims) { /* over the flattened tensor */
    if (n != 1) {
      lg_seterr("roll: without dims, give one shift");
      return NULL;
    }
    lg_tensor *f = lg_flatten(t, 0, -1);
    int zero = 0;
    lg_tensor *r = f ? lg_roll(f, 1, shifts, &zero) : NULL;
    lg_release(f);
    lg_tensor *out = r ? lg_reshape(r, t->ndim, t->shape) : NULL;
    lg_release(r);
    return out;
  }
  lg_tensor *cur = lg_retain(t);
  bool copied = false;
  for (int i = 0; i < n && cur; i++) {
    int d = lg_wrap_dim("roll", dims[i], t->ndim);
    if (d < 0 || t->ndim == 0) {
      if (t->ndim == 0)
        lg_seterr("roll: cannot roll a 0-d tensor along a dimension");
      lg_release(cur);
      return NULL;
    }
    int64_t size = t->shape[d];
    if (size == 0)
      continue;
    int64_t s = ((shifts[i] % size) + size) % size;
    if (s == 0)
      continue;
    lg_tensor *a = lg_narrow(cur, d, size - s, s);
    lg_tensor *b = a ? lg_narrow(cur, d, 0, size - s) : NULL;
    lg_tensor *parts[2] = {a, b};
    lg_tensor *next = b ? lg_cat(2, parts, d) : NULL;
    lg_release(a);
    lg_release(b);
    lg_release(cur);
    cur = next;
    copied = true;
  }
  if (cur && !copied) {
    lg_tensor *c = lg_clone(cur);
    lg_release(cur);
    cur = c;
  }
  return cur;
}

/* ---- diagonal (a view) and its transpose, placing a diagonal ---- */

static lg_tensor *place_diagonal(lg_tensor *g, int ndim, const int64_t *shape,
                                 int64_t off, int d1, int d2);

/* a diagonal: offset off of dims d1, d2 */
struct diag_state {
  int64_t off;
  int d1, d2;
};
#define DIAG(n) LG_NODE_STATE(n, struct diag_state)

static int diagonal_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  grads[0] = place_diagonal(g, n->ninput_shape, n->input_shape, DIAG(n)->off,
                            DIAG(n)->d1, DIAG(n)->d2);
  return grads[0] ? 0 : -1;
}

static int place_diagonal_backward(lg_node *n, lg_tensor *g,
                                   lg_tensor **grads) {
  grads[0] = lg_diagonal(g, DIAG(n)->off, DIAG(n)->d1, DIAG(n)->d2);
  return grads[0] ? 0 : -1;
}

/* the geometry of the diagonal view of t; -1 on bad arguments */
static int diagonal_geom(const char *name, const lg_tensor *t, int64_t off,
                         int *d1, int *d2, int64_t *shape, int64_t *strides,
                         int64_t *offset) {
  if (t->ndim < 2) {
    char b[200];
    lg_seterr("%s: needs at least 2 dimensions, got %s", name,
              lg_shape_str(t, b, sizeof b));
    return -1;
  }
  if ((*d1 = lg_wrap_dim(name, *d1, t->ndim)) < 0 ||
      (*d2 = lg_wrap_dim(name, *d2, t->ndim)) < 0)
    return -1;
  if (*d1 == *d2) {
    lg_seterr("%s: the two dimensions must differ (both %d)", name, *d1 + 1);
    return -1;
  }
  int64_t s1 = t->shape[*d1], s2 = t->shape[*d2], len;
  if (off >= 0)
    len = s2 - off < s1 ? s2 - off : s1;
  else
    len = s1 + off < s2 ? s1 + off : s2;
  if (len < 0)
    len = 0;
  int k = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != *d1 && i != *d2) {
      shape[k] = t->shape[i];
      strides[k++] = t->strides[i];
    }
  shape[k] = len;
  strides[k] = t->strides[*d1] + t->strides[*d2];
  *offset = t->offset;
  if (len > 0)
    *offset += off >= 0 ? off * t->strides[*d2] : -off * t->strides[*d1];
  return 0;
}

lg_tensor *lg_diagonal(lg_tensor *t, int64_t off, int d1, int d2) {
  int64_t shape[LG_MAX_DIMS], strides[LG_MAX_DIMS], offset;
  if (diagonal_geom("diagonal", t, off, &d1, &d2, shape, strides, &offset))
    return NULL;
  lg_tensor *v = lg_make_view(t, t->ndim - 1, shape, strides, offset);
  if (!v)
    return NULL;
  lg_node *n = lg_record(v, "diagonal", diagonal_backward, 1, &t);
  if (n) {
    n->ninput_shape = t->ndim;
    memcpy(n->input_shape, t->shape, t->ndim * sizeof *t->shape);
    *DIAG(n) = (struct diag_state){off, d1, d2};
  }
  return v;
}

/* zeros of shape with g on the diagonal (off, d1, d2) */
static lg_tensor *place_diagonal(lg_tensor *g, int ndim, const int64_t *shape,
                                 int64_t off, int d1, int d2) {
  lg_tensor *z = lg_zeros(g->dtype, ndim, shape);
  if (!z)
    return NULL;
  int64_t s[LG_MAX_DIMS], st[LG_MAX_DIMS], o;
  lg_tensor *slot = NULL;
  if (!diagonal_geom("diag", z, off, &d1, &d2, s, st, &o))
    slot = lg_make_view(z, ndim - 1, s, st, o);
  bool was = lg_set_grad_enabled(false);
  int rc = slot ? lg_copy_(slot, g) : -1;
  lg_set_grad_enabled(was);
  lg_release(slot);
  if (rc) {
    lg_release(z);
    return NULL;
  }
  lg_node *n = lg_record(z, "diag", place_diagonal_backward, 1, &g);
  if (n)
    *DIAG(n) = (struct diag_state){off, d1, d2};
  return z;
}

lg_tensor *lg_diag(lg_tensor *t, int64_t k) {
  if (t->ndim == 1) {
    if (k < -((int64_t)1 << 40) || k > ((int64_t)1 << 40)) {
      lg_seterr("diag: diagonal %lld too far from the main one",
                (long long)k);
      return NULL;
    }
    int64_t n = t->shape[0] + (k < 0 ? -k : k);
    int64_t shape[2] = {n, n};
    return place_diagonal(t, 2, shape, k, 0, 1);
  }
  if (t->ndim == 2) {
    lg_tensor *v = lg_diagonal(t, k, 0, 1);
    lg_tensor *c = v ? lg_clone(v) : NULL;
    lg_release(v);
    return c;
  }
  char b[200];
  lg_seterr("diag: needs a 1-d or 2-d tensor, got %s",
            lg_shape_str(t, b, sizeof b));
  return NULL;
}

/* ---- unfold: windows as a view; backward adds each window back ---- */

struct unfold_state {
  int dim;
  int64_t size, step;
};
#define UNFOLD(n) LG_NODE_STATE(n, struct unfold_state)

static int unfold_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  int d = UNFOLD(n)->dim;
  int64_t size = UNFOLD(n)->size, step = UNFOLD(n)->step, nw = g->shape[d];
  int nd = g->ndim; /* input ndim + 1 */
  int perm[LG_MAX_DIMS], k = 0;
  for (int i = 0; i < nd - 1; i++) {
    perm[k++] = i;
    if (i == d)
      perm[k++] = nd - 1;
  }
  lg_tensor *p = lg_permute(g, perm); /* (..., nw, size, ...) */
  lg_tensor *f = p ? lg_flatten(p, d, d + 1) : NULL;
  lg_release(p);
  int64_t len = nw * size;
  lg_tensor *idx = f ? lg_empty(LG_INT64, 1, &len) : NULL;
  if (idx) {
    int64_t *ip = lg_data_ptr(idx);
    for (int64_t w = 0; w < nw; w++)
      for (int64_t j = 0; j < size; j++)
        ip[w * size + j] = w * step + j;
  }
  lg_tensor *z = idx ? lg_zeros(g->dtype, n->ninput_shape, n->input_shape)
                     : NULL;
  grads[0] = z ? lg_index_add(z, d, idx, f) : NULL;
  lg_release(z);
  lg_release(idx);
  lg_release(f);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_unfold(lg_tensor *t, int dim, int64_t size, int64_t step) {
  if (t->ndim == 0 || t->ndim >= LG_MAX_DIMS) {
    lg_seterr("unfold: needs a tensor of 1 to %d dimensions",
              LG_MAX_DIMS - 1);
    return NULL;
  }
  if ((dim = lg_wrap_dim("unfold", dim, t->ndim)) < 0)
    return NULL;
  if (size < 0 || size > t->shape[dim] || step < 1) {
    lg_seterr("unfold: size %lld (0..%lld) and step %lld (at least 1) do "
              "not fit dimension %d",
              (long long)size, (long long)t->shape[dim], (long long)step,
              dim + 1);
    return NULL;
  }
  int64_t shape[LG_MAX_DIMS], strides[LG_MAX_DIMS];
  memcpy(shape, t->shape, t->ndim * sizeof *shape);
  memcpy(strides, t->strides, t->ndim * sizeof *strides);
  shape[dim] = (t->shape[dim] - size) / step + 1;
  if (shape[dim] > 1) /* one window: its stride is never used */
    strides[dim] = t->strides[dim] * step;
  shape[t->ndim] = size;
  strides[t->ndim] = t->strides[dim];
  lg_tensor *v = lg_make_view(t, t->ndim + 1, shape, strides, t->offset);
  if (!v)
    return NULL;
  lg_node *n = lg_record(v, "unfold", unfold_backward, 1, &t);
  if (n) {
    n->ninput_shape = t->ndim;
    memcpy(n->input_shape, t->shape, t->ndim * sizeof *t->shape);
    *UNFOLD(n) = (struct unfold_state){dim, size, step};
  }
  return v;
}

/* ---- cumprod ---- */

/* y_j = prod_{i<=j} x_i.  dL/dx_k = sum_{j>=k} g_j prod_{i<=j, i!=k} x_i,
 * computed per row in O(n) and exactly at zeros: before the first zero z
 * it is sum_{k<=j<z} g_j y_j / x_k, at z the running product over i!=z,
 * after z nothing (first-order: the kernel does not record a graph) */
static void cumprod_grad_row(const double *x, const double *g, double *dx,
                             int64_t n) {
  int64_t z = n;
  for (int64_t i = 0; i < n; i++)
    if (x[i] == 0) {
      z = i;
      break;
    }
  double acc = 0, y = 1;
  double *ys = dx; /* y_j stored first, overwritten from the end */
  for (int64_t j = 0; j < z; j++)
    ys[j] = y *= x[j];
  for (int64_t k = z - 1; k >= 0; k--) {
    acc += g[k] * ys[k];
    dx[k] = acc / x[k];
  }
  if (z < n) {
    double pre = 1;
    for (int64_t i = 0; i < z; i++)
      pre *= x[i];
    double s = 0, run = pre;
    for (int64_t j = z; j < n; j++) {
      if (j > z)
        run *= x[j];
      s += g[j] * run;
    }
    dx[z] = s;
    for (int64_t j = z + 1; j < n; j++)
      dx[j] = 0;
  }
}

/* rows of t along dim as contiguous float64 (outer, n, inner) */
static lg_tensor *rows_f64(lg_tensor *t, int dim) {
  lg_tensor *m = lg_transpose(t, dim, t->ndim - 1);
  lg_tensor *c = m ? lg_to_dtype(m, LG_FLOAT64) : NULL;
  lg_tensor *k = c ? lg_contiguous(c) : NULL;
  lg_release(m);
  lg_release(c);
  return k;
}

/* cumprod and amax/amin: the dim (LG_ALL_DIMS for amax over all) */
struct dim_state {
  int dim;
  bool keepdim;
};
#define DIM(n) LG_NODE_STATE(n, struct dim_state)

static int cumprod_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  if (lg_grad_enabled()) {
    lg_seterr("cumprod: the gradient of cumprod is not differentiable "
              "again (create_graph)");
    return -1;
  }
  lg_tensor *x = lg_node_saved(n, 0);
  if (!x)
    return -1;
  int dim = DIM(n)->dim;
  lg_tensor *xr = rows_f64(x, dim), *gr = xr ? rows_f64(g, dim) : NULL;
  lg_tensor *dr = gr ? lg_empty_like(gr) : NULL;
  if (dr) {
    int64_t len = x->ndim ? x->shape[dim] : 1;
    int64_t rows = len ? lg_numel(x) / len : 0;
    const double *xp = lg_data_ptr(xr), *gp = lg_data_ptr(gr);
    double *dp = lg_data_ptr(dr);
    for (int64_t r = 0; r < rows; r++)
      cumprod_grad_row(xp + r * len, gp + r * len, dp + r * len, len);
  }
  lg_tensor *back = dr ? lg_transpose(dr, dim, x->ndim - 1) : NULL;
  grads[0] = back ? lg_to_dtype(back, x->dtype) : NULL;
  lg_release(back);
  lg_release(dr);
  lg_release(gr);
  lg_release(xr);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_cumprod(lg_tensor *t, int dim) {
  if (t->ndim == 0) {
    lg_tensor *c = lg_clone(t);
    return c;
  }
  if ((dim = lg_wrap_dim("cumprod", dim, t->ndim)) < 0)
    return NULL;
  if (t->dtype == LG_BOOL) {
    lg_seterr("cumprod: not defined for bool tensors");
    return NULL;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *m = lg_transpose(t, dim, t->ndim - 1);
  lg_tensor *c = m ? lg_clone(m) : NULL; /* contiguous, rows last */
  lg_release(m);
  if (c) {
    int64_t len = t->shape[dim], rows = len ? lg_numel(t) / len : 0;
    void *p = lg_data_ptr(c);
    for (int64_t r = 0; r < rows; r++) {
      if (t->dtype == LG_INT64) {
        int64_t *q = (int64_t *)p + r * len, y = 1;
        for (int64_t j = 0; j < len; j++)
          q[j] = y = (int64_t)((uint64_t)y * (uint64_t)q[j]);
      } else {
        double y = 1;
        for (int64_t j = 0; j < len; j++) {
          y *= lg_load(t->dtype, p, r * len + j);
          lg_store(t->dtype, p, r * len + j, y);
        }
      }
    }
  }
  lg_tensor *back = c ? lg_transpose(c, dim, t->ndim - 1) : NULL;
  lg_release(c);
  lg_tensor *out = back ? lg_contiguous(back) : NULL;
  lg_release(back);
  lg_set_grad_enabled(was);
  if (out && lg_dtype_is_float(t->dtype)) {
    lg_node *n = lg_record(out, "cumprod", cumprod_backward, 1, &t);
    if (n) {
      DIM(n)->dim = dim;
      if (lg_node_save(n, t)) {
        lg_release(out);
        return NULL;
      }
    }
  }
  return out;
}

/* ---- amax / amin: ties share the gradient evenly, as in torch ---- */

static int amax_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *w = lg_node_saved(n, 0);
  if (!w)
    return -1;
  int dim = DIM(n)->dim;
  lg_tensor *gk = g;
  if (dim != LG_ALL_DIMS && !DIM(n)->keepdim)
    gk = lg_unsqueeze(g, dim);
  grads[0] = gk ? lg_binary(LG_OP_MUL, gk, w) : NULL;
  if (gk != g)
    lg_release(gk);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_amax(lg_tensor *t, int dim, bool keepdim, bool is_min) {
  const char *name = is_min ? "amin" : "amax";
  if (dim != LG_ALL_DIMS && (dim = lg_wrap_dim(name, dim, t->ndim)) < 0)
    return NULL;
  if (t->ndim == 0)
    dim = LG_ALL_DIMS;
  if (lg_numel(t) == 0) {
    lg_seterr("%s: cannot reduce an empty tensor", name);
    return NULL;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *out = lg_reduce(is_min ? LG_RED_MIN : LG_RED_MAX, t, dim,
                             keepdim);
  lg_tensor *w = NULL;
  if (out && was && t->requires_grad) {
    /* w = (t == m) / count, broadcast against t */
    lg_tensor *m = out;
    if (dim != LG_ALL_DIMS && !keepdim)
      m = lg_unsqueeze(out, dim);
    lg_tensor *eq = m ? lg_binary(LG_OP_EQ, t, m) : NULL;
    lg_tensor *ef = eq ? lg_to_dtype(eq, t->dtype) : NULL;
    lg_tensor *cnt = ef ? lg_reduce(LG_RED_SUM, ef, dim, true) : NULL;
    w = cnt ? lg_binary(LG_OP_DIV, ef, cnt) : NULL;
    if (m != out)
      lg_release(m);
    lg_release(eq);
    lg_release(ef);
    lg_release(cnt);
    if (!w) {
      lg_release(out);
      out = NULL;
    }
  }
  lg_set_grad_enabled(was);
  if (w) {
    lg_node *n = lg_record(out, name, amax_backward, 1, &t);
    if (n) {
      *DIM(n) = (struct dim_state){dim, keepdim};
      lg_node_save(n, w);
    }
    lg_release(w);
  }
  return out;
}
