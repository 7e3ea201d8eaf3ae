/*
 * views.c -- views that share storage (view, reshape, transpose, permute,
 * expand, narrow, select, squeeze, unsqueeze, flatten) with their
 * backward functions, plus contiguous, clone, dtype conversion, detach
 * and the in-place copy and fill.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

lg_tensor *lg_make_view(lg_tensor *t, int ndim, const int64_t *shape,
                        const int64_t *strides, int64_t offset) {
  lg_tensor *v = lg_tensor_header();
  if (!v)
    return NULL;
  v->dtype = t->dtype;
  v->ndim = ndim;
  if (ndim > 0)
    memcpy(v->shape, shape, ndim * sizeof *shape);
  if (ndim > 0)
    memcpy(v->strides, strides, ndim * sizeof *strides);
  v->offset = offset;
  v->storage = t->storage;
  __atomic_add_fetch(&t->storage->refcount, 1, __ATOMIC_RELAXED);
  return v;
}

static void save_input_shape(lg_node *n, const lg_tensor *t) {
  n->ninput_shape = t->ndim;
  memcpy(n->input_shape, t->shape, t->ndim * sizeof *t->shape);
  n->input_dtype = t->dtype;
}

/* grad of a reshape-like view: the gradient reshaped back */
static int reshape_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  grads[0] = lg_reshape(g, n->ninput_shape, n->input_shape);
  return grads[0] ? 0 : -1;
}

static lg_tensor *record_reshape(lg_tensor *v, lg_tensor *t,
                                 const char *name) {
  lg_node *n = lg_record(v, name, reshape_backward, 1, &t);
  if (n)
    save_input_shape(n, t);
  return v;
}

/* strides for viewing t as shape without copying, or -1 (TH's rule) */
static int view_strides(const lg_tensor *t, int ndim, const int64_t *shape,
                        int64_t *strides) {
  if (lg_numel(t) == 0 && ndim == t->ndim &&
      !memcmp(shape, t->shape, ndim * sizeof *shape)) {
    /* PyTorch keeps an empty tensor's strides when the shape stays */
    memcpy(strides, t->strides, ndim * sizeof *strides);
    return 0;
  }
  if (lg_numel(t) == 0 || lg_is_contiguous(t)) {
    lg_contiguous_strides(ndim, shape, strides);
    return 0;
  }
  int view_d = ndim - 1;
  int64_t chunk_base_stride = t->strides[t->ndim - 1];
  int64_t tensor_numel = 1, view_numel = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    tensor_numel *= t->shape[d];
    if (d == 0 || (t->shape[d - 1] != 1 &&
                   t->strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 &&
             (view_numel < tensor_numel || shape[view_d] == 1)) {
        strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        view_d--;
      }
      if (view_numel != tensor_numel)
        return -1;
      if (d > 0) {
        chunk_base_stride = t->strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1 ? 0 : -1;
}

/* resolves one -1 in shape; checks the element count */
static int infer_shape(const char *fname, const lg_tensor *t, int ndim,
                       const int64_t *in, int64_t *out) {
  if (ndim < 0 || ndim > LG_MAX_DIMS) {
    lg_seterr("%s: at most %d dimensions", fname, LG_MAX_DIMS);
    return -1;
  }
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    out[i] = in[i];
    if (in[i] == -1) {
      if (infer >= 0) {
        lg_seterr("%s: only one dimension can be -1", fname);
        return -1;
      }
      infer = i;
    } else if (in[i] < 0) {
      lg_seterr("%s: invalid size %lld", fname, (long long)in[i]);
      return -1;
    } else {
      if (in[i] && known > ((int64_t)1 << 46) / in[i]) {
        lg_seterr("%s: size too large", fname);
        return -1;
      }
      known *= in[i];
    }
  }
  int64_t n = lg_numel(t);
  if (infer >= 0) {
    if (known == 0 || n % known) {
      char b[200];
      lg_seterr("%s: shape with -1 does not fit %lld elements of %s", fname,
                (long long)n, lg_shape_str(t, b, sizeof b));
      return -1;
    }
    out[infer] = n / known;
  } else if (known != n) {
    char b[200];
    lg_tensor tmp;
    tmp.ndim = ndim;
    memcpy(tmp.shape, out, ndim * sizeof *out);
    char c[200];
    lg_seterr("%s: cannot view a tensor of shape %s (%lld elements) as %s",
              fname, lg_shape_str(t, b, sizeof b), (long long)n,
              lg_shape_str(&tmp, c, sizeof c));
    return -1;
  }
  return 0;
}

lg_tensor *lg_view(lg_tensor *t, int ndim, const int64_t *shape) {
  if (LG_UNUSABLE(t) || (ndim > 0 && !shape)) {
    lg_seterr("lg_view: argument %d is NULL or revoked",
              (LG_UNUSABLE(t)) ? 1 : 3);
    return NULL;
  }
  int64_t s[LG_MAX_DIMS], st[LG_MAX_DIMS];
  if (infer_shape("view", t, ndim, shape, s))
    return NULL;
  if (view_strides(t, ndim, s, st)) {
    lg_seterr("view: the tensor's strides do not allow this view; "
              "use reshape (or contiguous first)");
    return NULL;
  }
  lg_tensor *v = lg_make_view(t, ndim, s, st, t->offset);
  return v ? record_reshape(v, t, "view") : NULL;
}

lg_tensor *lg_reshape(lg_tensor *t, int ndim, const int64_t *shape) {
  if (LG_UNUSABLE(t) || (ndim > 0 && !shape)) {
    lg_seterr("lg_reshape: argument %d is NULL or revoked",
              (LG_UNUSABLE(t)) ? 1 : 3);
    return NULL;
  }
  int64_t s[LG_MAX_DIMS], st[LG_MAX_DIMS];
  if (infer_shape("reshape", t, ndim, shape, s))
    return NULL;
  if (!view_strides(t, ndim, s, st)) {
    lg_tensor *v = lg_make_view(t, ndim, s, st, t->offset);
    return v ? record_reshape(v, t, "reshape") : NULL;
  }
  lg_tensor *c = lg_contiguous(t);
  if (!c)
    return NULL;
  lg_tensor *v = lg_view(c, ndim, s);
  lg_release(c);
  return v;
}

lg_tensor *lg_flatten(lg_tensor *t, int start, int end) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_flatten: argument %d is NULL or revoked", 1);
    return NULL;
  }
  int nd = t->ndim;
  if (nd == 0) {
    int64_t one = 1;
    return lg_reshape(t, 1, &one);
  }
  if ((start = lg_wrap_dim("flatten", start, nd)) < 0 ||
      (end = lg_wrap_dim("flatten", end, nd)) < 0)
    return NULL;
  if (start > end) {
    lg_seterr("flatten: start dimension after end dimension");
    return NULL;
  }
  int64_t s[LG_MAX_DIMS];
  int k = 0;
  for (int i = 0; i < start; i++)
    s[k++] = t->shape[i];
  int64_t m = 1;
  for (int i = start; i <= end; i++)
    m *= t->shape[i];
  s[k++] = m;
  for (int i = end + 1; i < nd; i++)
    s[k++] = t->shape[i];
  return lg_reshape(t, k, s);
}

lg_tensor *lg_squeeze(lg_tensor *t, int dim) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_squeeze: argument %d is NULL or revoked", 1);
    return NULL;
  }
  int64_t s[LG_MAX_DIMS];
  int k = 0;
  if (dim == LG_ALL_DIMS) {
    for (int i = 0; i < t->ndim; i++)
      if (t->shape[i] != 1)
        s[k++] = t->shape[i];
  } else {
    if ((dim = lg_wrap_dim("squeeze", dim, t->ndim)) < 0)
      return NULL;
    for (int i = 0; i < t->ndim; i++)
      if (i != dim || t->shape[i] != 1)
        s[k++] = t->shape[i];
  }
  return lg_reshape(t, k, s);
}

lg_tensor *lg_unsqueeze(lg_tensor *t, int dim) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_unsqueeze: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (t->ndim >= LG_MAX_DIMS) {
    lg_seterr("unsqueeze: at most %d dimensions", LG_MAX_DIMS);
    return NULL;
  }
  if (dim < 0)
    dim += t->ndim + 1;
  if (dim < 0 || dim > t->ndim) {
    lg_seterr("unsqueeze: dimension out of range for a %d-d tensor",
              t->ndim);
    return NULL;
  }
  int64_t s[LG_MAX_DIMS], st[LG_MAX_DIMS];
  int k = 0;
  for (int i = 0; i <= t->ndim; i++) {
    if (i == dim) {
      s[k] = 1;
      st[k] = i < t->ndim ? t->strides[i] * t->shape[i] : 1;
      k++;
    }
    if (i < t->ndim) {
      s[k] = t->shape[i];
      st[k] = t->strides[i];
      k++;
    }
  }
  lg_tensor *v = lg_make_view(t, k, s, st, t->offset);
  return v ? record_reshape(v, t, "unsqueeze") : NULL;
}

/* what transpose keeps for backward */
struct transpose_state {
  int d0, d1;
};

static int transpose_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  const struct transpose_state *st = LG_NODE_STATE(n, struct transpose_state);
  grads[0] = lg_transpose(g, st->d0, st->d1);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_transpose(lg_tensor *t, int d0, int d1) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_transpose: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (t->ndim == 0)
    return lg_make_view(t, 0, t->shape, t->strides, t->offset);
  if ((d0 = lg_wrap_dim("transpose", d0, t->ndim)) < 0 ||
      (d1 = lg_wrap_dim("transpose", d1, t->ndim)) < 0)
    return NULL;
  int64_t s[LG_MAX_DIMS], st[LG_MAX_DIMS];
  memcpy(s, t->shape, sizeof s);
  memcpy(st, t->strides, sizeof st);
  s[d0] = t->shape[d1];
  s[d1] = t->shape[d0];
  st[d0] = t->strides[d1];
  st[d1] = t->strides[d0];
  lg_tensor *v = lg_make_view(t, t->ndim, s, st, t->offset);
  if (!v)
    return NULL;
  lg_node *n = lg_record(v, "transpose", transpose_backward, 1, &t);
  if (n)
    *LG_NODE_STATE(n, struct transpose_state) =
        (struct transpose_state){d0, d1};
  return v;
}

struct permute_state {
  int dims[LG_MAX_DIMS];
};

static int permute_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  const int *dims = LG_NODE_STATE(n, struct permute_state)->dims;
  int inv[LG_MAX_DIMS];
  for (int i = 0; i < g->ndim; i++)
    inv[dims[i]] = i;
  grads[0] = lg_permute(g, inv);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_permute(lg_tensor *t, const int *dims) {
  if (LG_UNUSABLE(t) || !dims) {
    lg_seterr("lg_permute: argument %d is NULL or revoked",
              (LG_UNUSABLE(t)) ? 1 : 2);
    return NULL;
  }
  int64_t s[LG_MAX_DIMS], st[LG_MAX_DIMS];
  bool seen[LG_MAX_DIMS] = {0};
  int d[LG_MAX_DIMS];
  for (int i = 0; i < t->ndim; i++) {
    if ((d[i] = lg_wrap_dim("permute", dims[i], t->ndim)) < 0)
      return NULL;
    if (seen[d[i]]) {
      lg_seterr("permute: dimension %I repeated", (long long)d[i]);
      return NULL;
    }
    seen[d[i]] = true;
    s[i] = t->shape[d[i]];
    st[i] = t->strides[d[i]];
  }
  lg_tensor *v = lg_make_view(t, t->ndim, s, st, t->offset);
  if (!v)
    return NULL;
  lg_node *n = lg_record(v, "permute", permute_backward, 1, &t);
  if (n)
    memcpy(LG_NODE_STATE(n, struct permute_state)->dims, d,
           t->ndim * sizeof d[0]);
  return v;
}

static int expand_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  grads[0] = lg_sum_to(g, n->ninput_shape, n->input_shape);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_expand(lg_tensor *t, int ndim, const int64_t *shape) {
  if (LG_UNUSABLE(t) || (ndim > 0 && !shape)) {
    lg_seterr("lg_expand: argument %d is NULL or revoked",
              (LG_UNUSABLE(t)) ? 1 : 3);
    return NULL;
  }
  if (ndim < t->ndim || ndim > LG_MAX_DIMS) {
    char b[200];
    lg_seterr("expand: cannot expand %s to %d dimensions",
              lg_shape_str(t, b, sizeof b), ndim);
    return NULL;
  }
  int64_t s[LG_MAX_DIMS], st[LG_MAX_DIMS];
  for (int i = 0; i < ndim; i++) {
    int j = i - (ndim - t->ndim);
    int64_t want = shape[i];
    if (j < 0) {
      if (want < 0) {
        lg_seterr("expand: -1 not allowed for a new leading dimension");
        return NULL;
      }
      s[i] = want;
      st[i] = 0;
    } else if (want == -1 || want == t->shape[j]) {
      s[i] = t->shape[j];
      st[i] = t->strides[j];
    } else if (t->shape[j] == 1 && want >= 0) {
      s[i] = want;
      st[i] = 0;
    } else {
      char b[200];
      lg_seterr("expand: size %lld of dimension %I of %s is not 1 and cannot "
                "become %lld",
                (long long)t->shape[j], (long long)j,
                lg_shape_str(t, b, sizeof b), (long long)want);
      return NULL;
    }
  }
  if (lg_check_shape("expand", ndim, s))
    return NULL;
  lg_tensor *v = lg_make_view(t, ndim, s, st, t->offset);
  if (!v)
    return NULL;
  lg_node *n = lg_record(v, "expand", expand_backward, 1, &t);
  if (n)
    save_input_shape(n, t);
  return v;
}

/* ---- narrow / select and the "place into zeros" op they need ---- */

/* narrow, select and their backward: a range along one dimension */
struct slice_state {
  int dim;
  int64_t start, len;
};
#define SLICE(n) LG_NODE_STATE(n, struct slice_state)

static int place_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  grads[0] = lg_narrow(g, SLICE(n)->dim, SLICE(n)->start, SLICE(n)->len);
  return grads[0] ? 0 : -1;
}

/* zeros of shape with g written at [start, start+len) along dim */
static lg_tensor *place_into_zeros(lg_tensor *g, int ndim,
                                   const int64_t *shape, int dim,
                                   int64_t start) {
  lg_tensor *z = lg_zeros(g->dtype, ndim, shape);
  if (!z)
    return NULL;
  int64_t len = g->shape[dim];
  lg_tensor *slot = lg_make_view(z, z->ndim, z->shape, z->strides,
                                 start * z->strides[dim]);
  if (!slot) {
    lg_release(z);
    return NULL;
  }
  slot->shape[dim] = len;
  bool was = lg_set_grad_enabled(false);
  int rc = lg_copy_(slot, g);
  lg_set_grad_enabled(was);
  lg_release(slot);
  if (rc) {
    lg_release(z);
    return NULL;
  }
  lg_node *n = lg_record(z, "narrow_backward", place_backward, 1, &g);
  if (n)
    *SLICE(n) = (struct slice_state){dim, start, len};
  return z;
}

static int narrow_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  grads[0] = place_into_zeros(g, n->ninput_shape, n->input_shape,
                              SLICE(n)->dim, SLICE(n)->start);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_narrow(lg_tensor *t, int dim, int64_t start, int64_t len) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_narrow: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if ((dim = lg_wrap_dim("narrow", dim, t->ndim)) < 0)
    return NULL;
  if (t->ndim == 0) {
    lg_seterr("narrow: cannot narrow a 0-d tensor");
    return NULL;
  }
  if (start < 0 || len < 0 || start > t->shape[dim] ||
      len > t->shape[dim] - start) {
    lg_seterr(
        "narrow: range [%I, %lld] out of bounds for size %lld of dimension %I",
        (long long)start, (long long)((uint64_t)start + (uint64_t)len),
        (long long)t->shape[dim], (long long)dim);
    return NULL;
  }
  lg_tensor *v = lg_make_view(t, t->ndim, t->shape, t->strides,
                              t->offset + start * t->strides[dim]);
  if (!v)
    return NULL;
  v->shape[dim] = len;
  lg_node *n = lg_record(v, "narrow", narrow_backward, 1, &t);
  if (n) {
    save_input_shape(n, t);
    *SLICE(n) = (struct slice_state){dim, start, len};
  }
  return v;
}

static int select_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  int dim = SLICE(n)->dim;
  lg_tensor *u = lg_unsqueeze(g, dim);
  if (!u)
    return -1;
  grads[0] = place_into_zeros(u, n->ninput_shape, n->input_shape, dim,
                              SLICE(n)->start);
  lg_release(u);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_select(lg_tensor *t, int dim, int64_t index) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_select: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (t->ndim == 0) {
    lg_seterr("select: cannot index a 0-d tensor");
    return NULL;
  }
  if ((dim = lg_wrap_dim("select", dim, t->ndim)) < 0)
    return NULL;
  if (index < 0 || index >= t->shape[dim]) {
    lg_seterr("select: index %I out of range for size %lld of dimension %I",
              (long long)index, (long long)t->shape[dim], (long long)dim);
    return NULL;
  }
  int64_t s[LG_MAX_DIMS], st[LG_MAX_DIMS];
  int k = 0;
  for (int i = 0; i < t->ndim; i++)
    if (i != dim) {
      s[k] = t->shape[i];
      st[k++] = t->strides[i];
    }
  lg_tensor *v =
      lg_make_view(t, k, s, st, t->offset + index * t->strides[dim]);
  if (!v)
    return NULL;
  lg_node *n = lg_record(v, "select", select_backward, 1, &t);
  if (n) {
    save_input_shape(n, t);
    *SLICE(n) = (struct slice_state){dim, index, 1};
  }
  return v;
}

/* ---- copies ---- */

static int identity_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  grads[0] = lg_retain(g);
  return 0;
}

static lg_tensor *copy_out(lg_tensor *t, lg_dtype d, const char *name) {
  lg_tensor *c = lg_empty_shape_of(t, d);
  if (!c)
    return NULL;
  bool was = lg_set_grad_enabled(false);
  int rc = lg_copy_(c, t);
  lg_set_grad_enabled(was);
  if (rc) {
    lg_release(c);
    return NULL;
  }
  return c;
}

lg_tensor *lg_contiguous(lg_tensor *t) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_contiguous: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if (lg_is_contiguous(t))
    return lg_retain(t);
  lg_tensor *c = copy_out(t, t->dtype, "contiguous");
  if (c)
    lg_record(c, "contiguous", identity_backward, 1, &t);
  return c;
}

lg_tensor *lg_clone(lg_tensor *t) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_clone: argument %d is NULL or revoked", 1);
    return NULL;
  }
  lg_tensor *c = copy_out(t, t->dtype, "clone");
  if (c)
    lg_record(c, "clone", identity_backward, 1, &t);
  return c;
}

static int to_dtype_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  grads[0] = lg_to_dtype(g, n->input_dtype);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_to_dtype(lg_tensor *t, lg_dtype d) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_to_dtype: argument %d is NULL or revoked", 1);
    return NULL;
  }
  if ((unsigned)d >= LG_NDTYPES) {
    lg_seterr("to: bad dtype");
    return NULL;
  }
  if (d == t->dtype)
    return lg_retain(t);
  lg_tensor *c = copy_out(t, d, "to");
  if (c && lg_dtype_is_float(d) && lg_dtype_is_float(t->dtype)) {
    lg_node *n = lg_record(c, "to", to_dtype_backward, 1, &t);
    if (n)
      n->input_dtype = t->dtype;
  }
  return c;
}

lg_tensor *lg_detach(lg_tensor *t) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_detach: argument %d is NULL or revoked", 1);
    return NULL;
  }
  return lg_make_view(t, t->ndim, t->shape, t->strides, t->offset);
}

int lg_check_inplace(const char *fname, lg_tensor *t) {
  for (int i = 0; i < t->ndim; i++)
    if (t->strides[i] == 0 && t->shape[i] > 1) {
      lg_seterr("%s: several elements of the target share memory (an "
                "expanded view); clone it before writing in place",
                fname);
      return -1;
    }
  if (lg_grad_enabled() && t->requires_grad) {
    lg_seterr("%s: in-place operation on a tensor that requires grad "
              "(use the out-of-place form, or run it under no_grad)",
              fname);
    return -1;
  }
  return 0;
}

#define COPY_LOOP(TD, TS)                                                     \
  do {                                                                        \
    TD *dp = (TD *)dst->storage->data + dst->offset;                          \
    const TS *sp = (const TS *)src->storage->data + src->offset;              \
    int64_t n = lg_iter_inner(&it), sd = lg_iter_istride(&it, 0),             \
            ss = lg_iter_istride(&it, 1);                                     \
    if (it.remaining > 0)                                                     \
      do {                                                                    \
        TD *o = dp + it.offs[0];                                              \
        const TS *s = sp + it.offs[1];                                        \
        for (int64_t i = 0; i < n; i++)                                       \
          o[i * sd] = (TD)s[i * ss];                                          \
      } while (lg_iter_next(&it));                                            \
  } while (0)

int lg_copy_(lg_tensor *dst, lg_tensor *src) {
  if (LG_UNUSABLE(dst) || LG_UNUSABLE(src)) {
    lg_seterr("lg_copy_: argument %d is NULL or revoked",
              (LG_UNUSABLE(dst)) ? 1 : 2);
    return -1;
  }
  if (lg_check_inplace("copy_", dst))
    return -1;
  int nd;
  int64_t shape[LG_MAX_DIMS];
  if (lg_broadcast_shape("copy_", dst, src, &nd, shape))
    return -1;
  if (nd != dst->ndim || !lg_same_shape(dst, dst)) {
    char a[200], b[200];
    lg_seterr("copy_: source of shape %s does not broadcast to %s",
              lg_shape_str(src, b, sizeof b), lg_shape_str(dst, a, sizeof a));
    return -1;
  }
  for (int i = 0; i < nd; i++)
    if (shape[i] != dst->shape[i]) {
      char a[200], b[200];
      lg_seterr("copy_: source of shape %s does not broadcast to %s",
                lg_shape_str(src, b, sizeof b),
                lg_shape_str(dst, a, sizeof a));
      return -1;
    }
  int64_t ss[LG_MAX_DIMS];
  lg_broadcast_strides(src, nd, shape, ss);
  const int64_t *strides[2] = {dst->strides, ss};
  lg_iter it;
  lg_iter_init(&it, nd, shape, 2, strides);
  if (dst->dtype == src->dtype && dst->dtype == LG_FLOAT32)
    COPY_LOOP(float, float);
  else if (dst->dtype == LG_FLOAT32 && src->dtype == LG_FLOAT64)
    COPY_LOOP(float, double);
  else if (dst->dtype == LG_FLOAT64 && src->dtype == LG_FLOAT32)
    COPY_LOOP(double, float);
  else if (dst->dtype == src->dtype && dst->dtype == LG_FLOAT64)
    COPY_LOOP(double, double);
  else if (dst->dtype == src->dtype && dst->dtype == LG_INT64)
    COPY_LOOP(int64_t, int64_t);
  else if (dst->dtype == src->dtype && dst->dtype == LG_BOOL)
    COPY_LOOP(uint8_t, uint8_t);
  else if (dst->dtype == LG_FLOAT32 && src->dtype == LG_BOOL)
    COPY_LOOP(float, uint8_t);
  else if (dst->dtype == LG_FLOAT64 && src->dtype == LG_BOOL)
    COPY_LOOP(double, uint8_t);
  else if (dst->dtype == LG_FLOAT32 && src->dtype == LG_INT64)
    COPY_LOOP(float, int64_t);
  else if (dst->dtype == LG_FLOAT64 && src->dtype == LG_INT64)
    COPY_LOOP(double, int64_t);
  else {
    void *dp = dst->storage->data, *sp = src->storage->data;
    int64_t n = lg_iter_inner(&it), sd = lg_iter_istride(&it, 0),
            s1 = lg_iter_istride(&it, 1);
    if (it.remaining > 0)
      do {
        for (int64_t i = 0; i < n; i++)
          lg_store(dst->dtype, dp, dst->offset + it.offs[0] + i * sd,
                   lg_load(src->dtype, sp, src->offset + it.offs[1] + i * s1));
      } while (lg_iter_next(&it));
  }
  lg_bump_version(dst);
  return 0;
}

int lg_fill_(lg_tensor *t, double v) {
  if (LG_UNUSABLE(t)) {
    lg_seterr("lg_fill_: argument %d is NULL or revoked", 1);
    return -1;
  }
  if (lg_check_inplace("fill_", t))
    return -1;
  lg_tensor *s = lg_scalar(t->dtype, v);
  if (!s)
    return -1;
  bool was = lg_set_grad_enabled(false);
  int rc;
  if (lg_is_contiguous(t) && t->dtype == LG_FLOAT32) {
    float *p = lg_data_ptr(t), fv = (float)v;
    for (int64_t i = 0, n = lg_numel(t); i < n; i++)
      p[i] = fv;
    lg_bump_version(t);
    rc = 0;
  } else {
    rc = lg_copy_(t, s);
  }
  lg_set_grad_enabled(was);
  lg_release(s);
  return rc;
}

int lg_zero_(lg_tensor *t) { return lg_fill_(t, 0); }
