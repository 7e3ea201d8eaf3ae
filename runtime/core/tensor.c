/*
 * tensor.c -- errors, dtypes, tensor headers, creation, element access
 * and strided iteration.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- errors ----
 * Messages name indices and dimensions in the caller's numbering: a site
 * writes "%I" for an index (passed as long long, 0-based), stored between
 * markers, and the message is rendered 0-based for C callers (lg_errmsg)
 * and 1-based for Lua (lg_errmsg_based(1)). */

#define IDX_OPEN '\x01'
#define IDX_CLOSE '\x02'

static LG_THREAD char errbuf[512];
static LG_THREAD char rendered[512];
static LG_THREAD bool have_error;

int lg_version(void) { return LG_VERSION_NUM; }

const char *lg_errmsg_based(int base) {
  if (!errbuf[0])
    return "unknown error";
  size_t k = 0;
  for (const char *p = errbuf; *p && k + 24 < sizeof rendered; p++) {
    if (*p != IDX_OPEN) {
      rendered[k++] = *p;
      continue;
    }
    char *end;
    long long v = strtoll(p + 1, &end, 10);
    if (*end != IDX_CLOSE) { /* cut by the buffer's end */
      break;
    }
    /* v + base without overflow at the extremes */
    if (base > 0 && v == LLONG_MAX)
      k += (size_t)snprintf(rendered + k, sizeof rendered - k, "%llu",
                            (unsigned long long)v + (unsigned long long)base);
    else
      k += (size_t)snprintf(rendered + k, sizeof rendered - k, "%lld",
                            v + base);
    p = end;
  }
  rendered[k] = '\0';
  return rendered;
}

const char *lg_errmsg(void) { return lg_errmsg_based(0); }

const char *lg_error(void) { return have_error ? lg_errmsg() : NULL; }

void lg_clear_error(void) {
  errbuf[0] = '\0';
  have_error = false;
}

void lg_seterr(const char *fmt, ...) {
  char f[256];
  const char *use = fmt;
  if (strstr(fmt, "%I")) {
    size_t k = 0;
    for (const char *p = fmt; *p && k + 8 < sizeof f; p++) {
      if (p[0] == '%' && p[1] == 'I') {
        memcpy(f + k, "\x01%lld\x02", 6);
        k += 6;
        p++;
      } else {
        f[k++] = *p;
      }
    }
    f[k] = '\0';
    use = f;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, sizeof errbuf, use, ap);
  va_end(ap);
  have_error = true;
}

char *lg_shape_str(const lg_tensor *t, char *buf, size_t n) {
  size_t k = 0;
  k += snprintf(buf + k, n - k, "[");
  for (int i = 0; i < t->ndim && k < n; i++)
    k += snprintf(buf + k, n - k, i ? ",%lld" : "%lld",
                  (long long)t->shape[i]);
  if (k < n)
    snprintf(buf + k, n - k, "]");
  return buf;
}

/* ---- dtypes ---- */

static const char *dtype_names[] = {"float32", "float64", "int64", "bool"};
static const size_t dtype_sizes[] = {4, 8, 8, 1};
static LG_THREAD int default_dtype_set;
static lg_dtype default_dtype = LG_FLOAT32;

size_t lg_dtype_size(lg_dtype d) { return dtype_sizes[d]; }
const char *lg_dtype_name(lg_dtype d) {
  return (unsigned)d < LG_NDTYPES ? dtype_names[d] : "?";
}

int lg_dtype_from_name(const char *name, lg_dtype *out) {
  for (int i = 0; i < LG_NDTYPES; i++)
    if (!strcmp(name, dtype_names[i])) {
      *out = (lg_dtype)i;
      return 0;
    }
  if (!strcmp(name, "float") || !strcmp(name, "float32")) {
    *out = LG_FLOAT32;
    return 0;
  }
  if (!strcmp(name, "double")) {
    *out = LG_FLOAT64;
    return 0;
  }
  if (!strcmp(name, "long") || !strcmp(name, "int")) {
    *out = LG_INT64;
    return 0;
  }
  lg_seterr("unknown dtype '%s'", name);
  return -1;
}

bool lg_dtype_is_float(lg_dtype d) {
  return d == LG_FLOAT32 || d == LG_FLOAT64;
}
lg_dtype lg_default_dtype(void) {
  (void)default_dtype_set;
  return default_dtype;
}
void lg_set_default_dtype(lg_dtype d) {
  if (lg_dtype_is_float(d))
    default_dtype = d;
}

/* float64 > float32 > int64 > bool */
lg_dtype lg_promote(lg_dtype a, lg_dtype b) {
  static const int rank[] = {2, 3, 1, 0};
  return rank[a] >= rank[b] ? a : b;
}

/* ---- shapes ---- */

int64_t lg_shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  return n;
}

int lg_check_shape(const char *fname, int ndim, const int64_t *shape) {
  if (ndim > 0 && !shape) { /* every creator passes here */
    lg_seterr("%s: the shape is NULL", fname);
    return -1;
  }
  if (ndim < 0 || ndim > LG_MAX_DIMS) {
    lg_seterr("%s: at most %d dimensions are supported (got %d)", fname,
              LG_MAX_DIMS, ndim);
    return -1;
  }
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      lg_seterr("%s: negative size %lld in dimension %I", fname,
                (long long)shape[i], (long long)i);
      return -1;
    }
    if (shape[i] && n > ((int64_t)1 << 46) / shape[i]) {
      lg_seterr("%s: size too large (more than 2^46 elements)", fname);
      return -1;
    }
    n *= shape[i];
  }
  return 0;
}

void lg_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    strides[i] = s;
    /* wraps (defined) only for shapes holding a 0, whose strides never
     * address anything */
    s = (int64_t)((uint64_t)s * (uint64_t)(shape[i] ? shape[i] : 1));
  }
}

int lg_wrap_dim(const char *fname, int dim, int ndim) {
  int n = ndim ? ndim : 1;
  if (dim < -n || dim >= n) {
    if (dim >= 0)
      lg_seterr("%s: dimension %I out of range for a %d-d tensor", fname,
                (long long)dim, ndim);
    else /* negative dims read the same in C and Lua */
      lg_seterr("%s: dimension %d out of range for a %d-d tensor", fname,
                dim, ndim);
    return -1;
  }
  return dim < 0 ? dim + n : dim;
}

/* ---- lifetime ---- */

lg_tensor *lg_retain(lg_tensor *t) {
  if (t)
    t->refcount++;
  return t;
}

void lg_release(lg_tensor *t) {
  if (!t || --t->refcount > 0)
    return;
  lg_storage_release(t->storage);
  if (t->grad)
    lg_release(t->grad);
  lg_release(t->sparse_rows);
  if (t->grad_fn) {
    if (t->grad_fn->retained_out == t)
      t->grad_fn->retained_out = NULL;
    if (!t->grad_fn_weak)
      lg_node_release(t->grad_fn);
  }
  lg_header_free(t);
}

/* ---- creation ---- */

lg_tensor *lg_empty(lg_dtype d, int ndim, const int64_t *shape) {
  if ((unsigned)d >= LG_NDTYPES) {
    lg_seterr("empty: bad dtype");
    return NULL;
  }
  if (lg_check_shape("empty", ndim, shape))
    return NULL;
  int64_t n = lg_shape_numel(ndim, shape);
  lg_tensor *t = lg_tensor_header();
  if (!t)
    return NULL;
  t->storage = lg_storage_new((size_t)n * dtype_sizes[d]);
  if (!t->storage) {
    lg_header_free(t);
    return NULL;
  }
  t->dtype = d;
  t->ndim = ndim;
  if (ndim > 0)
    memcpy(t->shape, shape, ndim * sizeof *shape);
  lg_contiguous_strides(ndim, shape, t->strides);
  return t;
}

lg_tensor *lg_zeros(lg_dtype d, int ndim, const int64_t *shape) {
  lg_tensor *t = lg_empty(d, ndim, shape);
  if (t)
    memset(t->storage->data, 0, lg_numel(t) * dtype_sizes[d]);
  return t;
}

lg_tensor *lg_full(lg_dtype d, int ndim, const int64_t *shape, double v) {
  lg_tensor *t = lg_empty(d, ndim, shape);
  if (t)
    lg_fill_(t, v);
  return t;
}

lg_tensor *lg_scalar(lg_dtype d, double v) {
  lg_tensor *t = lg_empty(d, 0, NULL);
  if (t)
    lg_store(d, t->storage->data, 0, v);
  return t;
}

lg_tensor *lg_from_data(lg_dtype d, int ndim, const int64_t *shape,
                        const void *data) {
  if (!data) {
    lg_seterr("from_data: argument 4 (data) is NULL");
    return NULL;
  }
  lg_tensor *t = lg_empty(d, ndim, shape);
  if (t && lg_numel(t) > 0)
    memcpy(t->storage->data, data, lg_numel(t) * dtype_sizes[d]);
  return t;
}

/* the release of wrapped memory nobody asked to free */
static void release_nothing(void *data, void *ctx) {
  (void)data;
  (void)ctx;
}

lg_tensor *lg_wrap(lg_dtype d, int ndim, const int64_t *shape,
                   const int64_t *strides, void *data, lg_release_fn rel,
                   void *ctx) {
  if ((unsigned)d >= LG_NDTYPES) {
    lg_seterr("wrap: bad dtype");
    return NULL;
  }
  if (lg_check_shape("wrap", ndim, shape))
    return NULL;
  if (!data) {
    lg_seterr("wrap: argument 5 (data) is NULL");
    return NULL;
  }
  lg_tensor *t = lg_tensor_header();
  if (!t)
    return NULL;
  int64_t extent = 1;
  t->dtype = d;
  t->ndim = ndim;
  if (ndim > 0)
    memcpy(t->shape, shape, ndim * sizeof *shape);
  if (strides && ndim > 0)
    memcpy(t->strides, strides, ndim * sizeof *strides);
  else if (!strides)
    lg_contiguous_strides(ndim, shape, t->strides);
  for (int i = 0; i < ndim; i++)
    if (shape[i] > 0)
      extent += (shape[i] - 1) * (t->strides[i] < 0 ? 0 : t->strides[i]);
  t->storage = lg_storage_wrap(data, (size_t)extent * dtype_sizes[d],
                               rel ? rel : release_nothing, ctx);
  if (!t->storage) {
    lg_header_free(t);
    return NULL;
  }
  return t;
}

lg_tensor *lg_eye(lg_dtype d, int64_t n, int64_t m) {
  int64_t shape[2] = {n, m};
  lg_tensor *t = lg_zeros(d, 2, shape);
  if (!t)
    return NULL;
  for (int64_t i = 0; i < n && i < m; i++)
    lg_store(d, t->storage->data, i * m + i, 1);
  return t;
}

lg_tensor *lg_range(lg_dtype d, double a, double b, double step) {
  if (step == 0 || isnan(step) || isnan(a) || isnan(b) || isinf(a) ||
      isinf(b)) {
    lg_seterr("range: step must be nonzero and bounds finite");
    return NULL;
  }
  double nf = floor((b - a) / step + 1e-9) + 1;
  if (nf < 0)
    nf = 0;
  if (nf > (double)((int64_t)1 << 40)) {
    lg_seterr("range: too many elements");
    return NULL;
  }
  int64_t n = (int64_t)nf;
  lg_tensor *t = lg_empty(d, 1, &n);
  if (!t)
    return NULL;
  for (int64_t i = 0; i < n; i++)
    lg_store(d, t->storage->data, i, a + i * step);
  return t;
}

lg_tensor *lg_linspace(lg_dtype d, double a, double b, int64_t n) {
  if (n < 0) {
    lg_seterr("linspace: number of points must be non-negative");
    return NULL;
  }
  lg_tensor *t = lg_empty(d, 1, &n);
  if (!t)
    return NULL;
  double step = n > 1 ? (b - a) / (n - 1) : 0;
  for (int64_t i = 0; i < n; i++) {
    /* PyTorch fills the second half from the end for symmetry */
    double v = i < n / 2 ? a + step * i : b - step * (n - 1 - i);
    lg_store(d, t->storage->data, i, v);
  }
  return t;
}

lg_tensor *lg_empty_shape_of(const lg_tensor *t, lg_dtype d) {
  return lg_empty(d, t->ndim, t->shape);
}
lg_tensor *lg_empty_like(const lg_tensor *t) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_empty_like: argument %d is NULL or revoked", 1);
    return NULL;
  }
  return lg_empty(t->dtype, t->ndim, t->shape);
}
lg_tensor *lg_zeros_like(const lg_tensor *t) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_zeros_like: argument %d is NULL or revoked", 1);
    return NULL;
  }
  return lg_zeros(t->dtype, t->ndim, t->shape);
}

/* ---- inspection and element access ---- */

int64_t lg_numel(const lg_tensor *t) {
  return lg_shape_numel(t->ndim, t->shape);
}

/* PyTorch's rule: a tensor without elements is contiguous whatever its
 * strides (a fresh [2, 0] tensor has strides {1, 1}, as PyTorch's) */
bool lg_is_contiguous(const lg_tensor *t) {
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] == 0)
      return true;
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->strides[i] != s)
      return false;
    s *= t->shape[i];
  }
  return true;
}

void *lg_data_ptr(const lg_tensor *t) {
  return (char *)t->storage->data + t->offset * dtype_sizes[t->dtype];
}

double lg_load(lg_dtype d, const void *base, int64_t i) {
  switch (d) {
  case LG_FLOAT32:
    return ((const float *)base)[i];
  case LG_FLOAT64:
    return ((const double *)base)[i];
  case LG_INT64:
    return (double)((const int64_t *)base)[i];
  default:
    return ((const uint8_t *)base)[i] ? 1 : 0;
  }
}

void lg_store(lg_dtype d, void *base, int64_t i, double v) {
  switch (d) {
  case LG_FLOAT32:
    ((float *)base)[i] = (float)v;
    break;
  case LG_FLOAT64:
    ((double *)base)[i] = v;
    break;
  case LG_INT64:
    ((int64_t *)base)[i] = isnan(v) ? 0
                           : v >= 9.2233720368547758e18 ? INT64_MAX
                           : v <= -9.2233720368547758e18
                               ? INT64_MIN
                               : (int64_t)v;
    break;
  default:
    ((uint8_t *)base)[i] = v != 0;
  }
}

static int64_t elem_offset(const lg_tensor *t, const int64_t *idx) {
  int64_t o = t->offset;
  for (int i = 0; i < t->ndim; i++)
    o += idx[i] * t->strides[i];
  return o;
}

/* 0 when idx (ndim 0-based indices) lies inside t, else -1 naming the
 * first index out of range */
static int check_index(const char *fname, const lg_tensor *t,
                       const int64_t *idx) {
  if (LG_UNUSABLE(t) || (t->ndim > 0 && !idx)) {
    lg_seterr("%s: argument %d is NULL%s", fname, LG_UNUSABLE(t) ? 1 : 2,
              LG_UNUSABLE(t) ? " or revoked" : "");
    return -1;
  }
  for (int i = 0; i < t->ndim; i++)
    if (idx[i] < 0 || idx[i] >= t->shape[i]) {
      char b[200];
      lg_seterr("%s: index %I is out of range for dimension %I of a tensor "
                "of shape %s",
                fname, (long long)idx[i], (long long)i,
                lg_shape_str(t, b, sizeof b));
      return -1;
    }
  return 0;
}

int lg_check_list(const char *fname, int n, lg_tensor *const *ts) {
  for (int i = 0; i < n; i++)
    if (LG_UNUSABLE(ts[i])) {
      lg_seterr("%s: tensor %I of the list is NULL or revoked", fname,
                (long long)i);
      return -1;
    }
  return 0;
}

int lg_get_value(const lg_tensor *t, const int64_t *idx, double *out) {
  if (check_index("lg_get", t, idx) < 0)
    return -1;
  double v = lg_load(t->dtype, t->storage->data, elem_offset(t, idx));
  if (out)
    *out = v;
  return 0;
}

double lg_get(const lg_tensor *t, const int64_t *idx) {
  double v;
  return lg_get_value(t, idx, &v) < 0 ? NAN : v;
}

int lg_set(lg_tensor *t, const int64_t *idx, double v) {
  if (check_index("lg_set", t, idx) < 0)
    return -1;
  lg_store(t->dtype, t->storage->data, elem_offset(t, idx), v);
  lg_bump_version(t);
  return 0;
}

void lg_set_at(lg_tensor *t, int64_t off, double v) {
  lg_store(t->dtype, t->storage->data, off, v);
  lg_bump_version(t);
}

void lg_retain_grad(lg_tensor *t) {
  if (!t->grad_fn)
    return;
  t->retains_grad = true;
  t->grad_fn->retained_out = t;
}

int lg_item_value(const lg_tensor *t, double *out) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("item: argument 1 is NULL or revoked");
    return -1;
  }
  if (lg_numel(t) != 1) {
    char b[200];
    lg_seterr("item: a tensor of shape %s has %lld elements, not one",
              lg_shape_str(t, b, sizeof b), (long long)lg_numel(t));
    return -1;
  }
  double v = lg_load(t->dtype, t->storage->data, t->offset);
  if (out)
    *out = v;
  return 0;
}

double lg_item(const lg_tensor *t) {
  double v;
  return lg_item_value(t, &v) < 0 ? NAN : v;
}

bool lg_same_shape(const lg_tensor *a, const lg_tensor *b) {
  if (a->ndim != b->ndim)
    return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return false;
  return true;
}

/* ---- iteration ---- */

void lg_iter_init(lg_iter *it, int ndim, const int64_t *shape, int nops,
                  const int64_t *const *strides) {
  it->nops = nops;
  it->ndim = 0;
  for (int k = 0; k < 3; k++)
    it->offs[k] = 0;
  for (int d = 0; d < ndim; d++)
    if (shape[d] == 0) { /* nothing to visit (its other dims may be huge) */
      it->ndim = 1;
      it->shape[0] = 0;
      it->counter[0] = 0;
      for (int k = 0; k < nops; k++)
        it->strides[k][0] = 0;
      it->remaining = 0;
      return;
    }
  /* drop size-1 dims, coalesce dims that are contiguous for all */
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 1)
      continue;
    int n = it->ndim;
    bool merge = n > 0;
    for (int k = 0; k < nops && merge; k++)
      if (it->strides[k][n - 1] != strides[k][d] * shape[d])
        merge = false;
    if (merge) {
      it->shape[n - 1] *= shape[d];
      for (int k = 0; k < nops; k++)
        it->strides[k][n - 1] = strides[k][d];
    } else {
      it->shape[n] = shape[d];
      for (int k = 0; k < nops; k++)
        it->strides[k][n] = strides[k][d];
      it->ndim++;
    }
  }
  int64_t outer = 1;
  bool empty = false;
  for (int d = 0; d < ndim; d++)
    if (shape[d] == 0)
      empty = true;
  for (int d = 0; d + 1 < it->ndim; d++)
    outer *= it->shape[d];
  for (int d = 0; d < it->ndim; d++)
    it->counter[d] = 0;
  for (int k = 0; k < 3; k++)
    it->offs[k] = 0;
  it->remaining = empty ? 0 : outer;
}

bool lg_iter_next(lg_iter *it) {
  if (--it->remaining <= 0)
    return false;
  for (int d = it->ndim - 2; d >= 0; d--) {
    if (++it->counter[d] < it->shape[d]) {
      for (int k = 0; k < it->nops; k++)
        it->offs[k] += it->strides[k][d];
      return true;
    }
    it->counter[d] = 0;
    for (int k = 0; k < it->nops; k++)
      it->offs[k] -= it->strides[k][d] * (it->shape[d] - 1);
  }
  return true;
}

int lg_broadcast_shape(const char *fname, const lg_tensor *a,
                       const lg_tensor *b, int *ndim, int64_t *shape) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int i = 0; i < n; i++) {
    int ia = i - (n - a->ndim), ib = i - (n - b->ndim);
    int64_t sa = ia >= 0 ? a->shape[ia] : 1;
    int64_t sb = ib >= 0 ? b->shape[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      char x[200], y[200];
      lg_seterr("%s: shapes %s and %s cannot be broadcast", fname,
                lg_shape_str(a, x, sizeof x), lg_shape_str(b, y, sizeof y));
      return -1;
    }
    shape[i] = sa == 1 ? sb : sa;
  }
  *ndim = n;
  return 0;
}

void lg_broadcast_strides(const lg_tensor *t, int ndim, const int64_t *shape,
                          int64_t *strides) {
  for (int i = 0; i < ndim; i++) {
    int it = i - (ndim - t->ndim);
    strides[i] = (it < 0 || t->shape[it] == 1) ? 0 : t->strides[it];
  }
}
