/*
 * rowsparse.c -- row-sparse gradients: a dense block of rows plus the
 * sorted list of which rows of a bigger tensor they are (see lgrad.h).
 *
 * The embedding ops make them; the engine accumulates them into leaves
 * with lg_grad_accumulate (sparse + sparse merges the two sorted row
 * lists, summing rows present in both; anything with a dense side turns
 * dense); the sparse-aware optimizers read them row by row.  Nothing here
 * touches a row the gradient does not list, except densifying.
 */
#include <string.h>

#include "internal.h"

lg_tensor *lg_rowsparse_attach(lg_tensor *values, lg_tensor *rows,
                               int64_t dim0) {
  if (LG_UNUSABLE(values) || LG_UNUSABLE(rows)) {
    lg_seterr("lg_rowsparse_attach: argument %d is NULL or revoked",
              (LG_UNUSABLE(values)) ? 1 : 2);
    return NULL;
  }
  lg_release(values->sparse_rows);
  values->sparse_rows = lg_retain(rows);
  values->sparse_dim0 = dim0;
  return values;
}

/* elements per row: the product of dims 2.. */
static int64_t row_len(const lg_tensor *v) {
  int64_t n = 1;
  for (int i = 1; i < v->ndim; i++)
    n *= v->shape[i];
  return n;
}

/* a contiguous version of a row-sparse tensor's values */
static lg_tensor *values_of(const lg_tensor *g) {
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c = lg_contiguous((lg_tensor *)g);
  lg_set_grad_enabled(was);
  return c;
}

lg_tensor *lg_rowsparse_to_dense(const lg_tensor *g) {
  if (LG_UNUSABLE(g)) {
    lg_seterr("lg_rowsparse_to_dense: argument %d is NULL or revoked", 1);
    return NULL;
  }
  int64_t shape[LG_MAX_DIMS];
  memcpy(shape, g->shape, sizeof(int64_t) * g->ndim);
  shape[0] = g->sparse_dim0;
  lg_tensor *v = values_of(g);
  lg_tensor *d = v ? lg_zeros(g->dtype, g->ndim, shape) : NULL;
  if (!d) {
    lg_release(v);
    return NULL;
  }
  int64_t nnz = g->shape[0];
  size_t row = (size_t)row_len(g) * lg_dtype_size(g->dtype);
  const int64_t *rows = lg_data_ptr(g->sparse_rows);
  const char *src = lg_data_ptr(v);
  char *dst = lg_data_ptr(d);
  for (int64_t i = 0; i < nnz; i++)
    memcpy(dst + rows[i] * row, src + i * row, row);
  lg_release(v);
  return d;
}

/* dst[0..n) += src[0..n) */
static void add_row(lg_dtype d, void *dst, const void *src, int64_t n) {
  if (d == LG_FLOAT32) {
    float *y = dst;
    const float *x = src;
    for (int64_t k = 0; k < n; k++)
      y[k] += x[k];
  } else {
    double *y = dst;
    const double *x = src;
    for (int64_t k = 0; k < n; k++)
      y[k] += x[k];
  }
}

static bool same_dense_shape(const lg_tensor *a, const lg_tensor *b) {
  if (a->ndim != b->ndim || a->sparse_dim0 != b->sparse_dim0 ||
      a->dtype != b->dtype)
    return false;
  for (int i = 1; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return false;
  return true;
}

lg_tensor *lg_rowsparse_add(const lg_tensor *a, const lg_tensor *b) {
  if (LG_UNUSABLE(a) || LG_UNUSABLE(b)) {
    lg_seterr("lg_rowsparse_add: argument %d is NULL or revoked",
              (LG_UNUSABLE(a)) ? 1 : 2);
    return NULL;
  }
  if (!same_dense_shape(a, b)) {
    lg_seterr("sparse gradient: adding gradients of different shapes or "
              "dtypes");
    return NULL;
  }
  int64_t na = a->shape[0], nb = b->shape[0], nu = 0;
  const int64_t *ra = lg_data_ptr(a->sparse_rows),
                *rb = lg_data_ptr(b->sparse_rows);
  for (int64_t i = 0, j = 0; i < na || j < nb; nu++) {
    if (j == nb || (i < na && ra[i] < rb[j]))
      i++;
    else if (i == na || rb[j] < ra[i])
      j++;
    else
      i++, j++;
  }
  int64_t shape[LG_MAX_DIMS];
  memcpy(shape, a->shape, sizeof(int64_t) * a->ndim);
  shape[0] = nu;
  lg_tensor *va = values_of(a), *vb = values_of(b);
  lg_tensor *rows = va && vb ? lg_empty(LG_INT64, 1, &nu) : NULL;
  lg_tensor *vals = rows ? lg_empty(a->dtype, a->ndim, shape) : NULL;
  if (!vals) {
    lg_release(va);
    lg_release(vb);
    lg_release(rows);
    return NULL;
  }
  int64_t m = row_len(a);
  size_t es = lg_dtype_size(a->dtype), row = (size_t)m * es;
  const char *pa = lg_data_ptr(va), *pb = lg_data_ptr(vb);
  char *out = lg_data_ptr(vals);
  int64_t *ro = lg_data_ptr(rows);
  for (int64_t i = 0, j = 0, k = 0; k < nu; k++) {
    char *dst = out + k * row;
    if (j == nb || (i < na && ra[i] < rb[j])) {
      ro[k] = ra[i];
      memcpy(dst, pa + i++ * row, row);
    } else if (i == na || rb[j] < ra[i]) {
      ro[k] = rb[j];
      memcpy(dst, pb + j++ * row, row);
    } else {
      ro[k] = ra[i];
      memcpy(dst, pa + i++ * row, row);
      add_row(a->dtype, dst, pb + j++ * row, m);
    }
  }
  lg_release(va);
  lg_release(vb);
  lg_rowsparse_attach(vals, rows, a->sparse_dim0);
  lg_release(rows);
  return vals;
}

int lg_rowsparse_add_into(lg_tensor *dense, const lg_tensor *sp) {
  if (LG_UNUSABLE(dense) || LG_UNUSABLE(sp)) {
    lg_seterr("lg_rowsparse_add_into: argument %d is NULL or revoked",
              (LG_UNUSABLE(dense)) ? 1 : 2);
    return -1;
  }
  bool fits = dense->dtype == sp->dtype && dense->ndim == sp->ndim &&
              dense->shape[0] == sp->sparse_dim0 && lg_is_contiguous(dense);
  for (int i = 1; fits && i < sp->ndim; i++)
    fits = dense->shape[i] == sp->shape[i];
  if (!fits) {
    /* a view or another dtype: the general in-place add */
    lg_tensor *d = lg_rowsparse_to_dense(sp);
    if (!d)
      return -1;
    bool was = lg_set_grad_enabled(false);
    int rc = lg_binary_(LG_OP_ADD, dense, d);
    lg_set_grad_enabled(was);
    lg_release(d);
    return rc;
  }
  lg_tensor *v = values_of(sp);
  if (!v)
    return -1;
  int64_t nnz = sp->shape[0], m = row_len(sp);
  size_t row = (size_t)m * lg_dtype_size(sp->dtype);
  const int64_t *rows = lg_data_ptr(sp->sparse_rows);
  const char *src = lg_data_ptr(v);
  char *dst = lg_data_ptr(dense);
  for (int64_t i = 0; i < nnz; i++)
    add_row(sp->dtype, dst + rows[i] * row, src + i * row, m);
  lg_release(v);
  lg_bump_version(dense);
  return 0;
}

int lg_grad_accumulate(lg_tensor **acc, lg_tensor *g) {
  if (!acc || (g && g->storage->revoked)) {
    lg_seterr("lg_grad_accumulate: argument %d is NULL or revoked",
              (!acc) ? 1 : 2);
    return -1;
  }
  lg_tensor *a = *acc;
  if (!a) {
    *acc = lg_retain(g);
    return 0;
  }
  bool sa = lg_is_row_sparse(a), sg = lg_is_row_sparse(g);
  if (sa && sg) {
    lg_tensor *s = lg_rowsparse_add(a, g);
    if (!s)
      return -1;
    lg_release(a);
    *acc = s;
    return 0;
  }
  if (sg)
    return lg_rowsparse_add_into(a, g);
  if (sa) {
    lg_tensor *d = lg_rowsparse_to_dense(a);
    if (!d)
      return -1;
    lg_release(a);
    *acc = d;
  }
  bool was = lg_set_grad_enabled(false);
  int rc = lg_binary_(LG_OP_ADD, *acc, g);
  lg_set_grad_enabled(was);
  return rc;
}
