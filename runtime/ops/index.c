/*
 * ops/index.c -- index_select, gather, scatter, index_add, masked_fill,
 * cat, stack, topk and sort, with backward.  Indices here are 0-based
 * int64; the Lua binding converts from 1-based.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

/* what the index ops (index_select, index_add, gather, scatter_add, cat,
 * sort/topk) keep for backward: the dimension they index along */
struct dim_state {
  int dim;
};
#define DIM(n) (LG_NODE_STATE(n, struct dim_state)->dim)

static int check_index(const char *fname, lg_tensor *idx) {
  if (idx->dtype != LG_INT64) {
    lg_seterr("%s: indices must be an int64 tensor, got %s", fname,
              lg_dtype_name(idx->dtype));
    return -1;
  }
  return 0;
}

/* v is 0-based: the message gives it 1-based, in two's complement as the
 * binding's conversion from 1-based wraps (INT64_MAX + 1 is the INT64_MIN
 * the caller gave), without signed overflow */
static int index_oob(const char *fname, int64_t v, int64_t size, int dim) {
  lg_seterr("%s: index %lld out of range for size %lld of dimension %I", fname,
            (long long)(int64_t)((uint64_t)v + 1), (long long)size,
            (long long)dim);
  return -1;
}

/* ---- index_select ---- */

/* the gradient of an op that picked input elements by the saved index
 * along the node's dim: g added into zeros of the input's shape at them */
static int put_back(lg_node *n, lg_tensor *g, lg_tensor **grads,
                    lg_tensor *(*add)(lg_tensor *, int, lg_tensor *,
                                      lg_tensor *)) {
  lg_tensor *idx = lg_node_saved(n, 0);
  lg_tensor *z =
      idx ? lg_zeros(g->dtype, n->ninput_shape, n->input_shape) : NULL;
  grads[0] = z ? add(z, DIM(n), idx, g) : NULL;
  lg_release(z);
  return grads[0] ? 0 : -1;
}

static int index_select_backward(lg_node *n, lg_tensor *g,
                                 lg_tensor **grads) {
  return put_back(n, g, grads, lg_index_add);
}

lg_tensor *lg_index_select(lg_tensor *t, int dim, lg_tensor *index) {
  if (lg_args_unusable("lg_index_select", LG_ARG(1, t), LG_ARG(3, index), 0))
    return NULL;
  if (check_index("index_select", index))
    return NULL;
  if (index->ndim > 1) {
    lg_seterr("index_select: indices must be 0-d or 1-d");
    return NULL;
  }
  if (t->ndim == 0) {
    lg_seterr("index_select: cannot index a 0-d tensor");
    return NULL;
  }
  if ((dim = lg_wrap_dim("index_select", dim, t->ndim)) < 0)
    return NULL;
  lg_tensor *ic = lg_contiguous(index);
  if (!ic)
    return NULL;
  int64_t k = lg_numel(ic);
  const int64_t *ip = lg_data_ptr(ic);
  for (int64_t i = 0; i < k; i++)
    if (ip[i] < 0 || ip[i] >= t->shape[dim]) {
      index_oob("index_select", ip[i], t->shape[dim], dim);
      lg_release(ic);
      return NULL;
    }
  int64_t shape[LG_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[dim] = k;
  lg_tensor *c = lg_contiguous(t);
  lg_tensor *out = c ? lg_empty(t->dtype, t->ndim, shape) : NULL;
  if (out) {
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < dim; i++)
      outer *= t->shape[i];
    for (int i = dim + 1; i < t->ndim; i++)
      inner *= t->shape[i];
    size_t es = lg_dtype_size(t->dtype), row = inner * es;
    const char *src = lg_data_ptr(c);
    char *dst = out->storage->data;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < k; i++)
        memcpy(dst + (o * k + i) * row,
               src + (o * t->shape[dim] + ip[i]) * row, row);
    lg_node *n = lg_record(out, "index_select", index_select_backward, 1, &t);
    if (n) {
      DIM(n) = dim;
      n->ninput_shape = t->ndim;
      memcpy(n->input_shape, t->shape, sizeof n->input_shape);
      if (lg_node_save(n, ic)) {
        lg_release(out);
        out = NULL;
      }
    }
  }
  lg_release(c);
  lg_release(ic);
  return out;
}

/* ---- index_add (out of place): t with src rows added at index ---- */

static int index_add_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  if (n->needs_grad[0])
    grads[0] = lg_retain(g);
  if (n->needs_grad[1]) {
    lg_tensor *idx = lg_node_saved(n, 0);
    grads[1] = idx ? lg_index_select(g, DIM(n), idx) : NULL;
    if (!grads[1])
      return -1;
  }
  return 0;
}

lg_tensor *lg_index_add(lg_tensor *t, int dim, lg_tensor *index,
                        lg_tensor *src) {
  if (lg_args_unusable("lg_index_add", LG_ARG(1, t), LG_ARG(3, index),
                       LG_ARG(4, src), 0))
    return NULL;
  if (check_index("index_add", index))
    return NULL;
  if ((dim = lg_wrap_dim("index_add", dim, t->ndim)) < 0)
    return NULL;
  int64_t k = lg_numel(index);
  bool ok = src->ndim == t->ndim && index->ndim <= 1;
  for (int i = 0; ok && i < t->ndim; i++)
    ok = src->shape[i] == (i == dim ? k : t->shape[i]);
  if (!ok) {
    char a[200], b[200];
    lg_seterr("index_add: source %s does not fit target %s with %lld indices",
              lg_shape_str(src, b, sizeof b), lg_shape_str(t, a, sizeof a),
              (long long)k);
    return NULL;
  }
  lg_tensor *ic = lg_contiguous(index);
  lg_tensor *sc = ic ? lg_to_dtype(src, t->dtype) : NULL;
  lg_tensor *scc = sc ? lg_contiguous(sc) : NULL;
  bool was = lg_set_grad_enabled(false);
  lg_tensor *out = scc ? lg_clone(t) : NULL;
  lg_set_grad_enabled(was);
  if (out) {
    const int64_t *ip = lg_data_ptr(ic);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < dim; i++)
      outer *= t->shape[i];
    for (int i = dim + 1; i < t->ndim; i++)
      inner *= t->shape[i];
    int64_t size = t->ndim ? t->shape[dim] : 1;
    for (int64_t i = 0; i < k && out; i++)
      if (ip[i] < 0 || ip[i] >= size) {
        index_oob("index_add", ip[i], size, dim);
        lg_release(out);
        out = NULL;
      }
    if (out && t->dtype == LG_FLOAT32) {
      float *o = out->storage->data;
      const float *s = lg_data_ptr(scc);
      for (int64_t a = 0; a < outer; a++)
        for (int64_t i = 0; i < k; i++) {
          float *po = o + (a * size + ip[i]) * inner;
          const float *ps = s + (a * k + i) * inner;
          for (int64_t j = 0; j < inner; j++)
            po[j] += ps[j];
        }
    } else if (out) {
      void *o = out->storage->data;
      const void *s = lg_data_ptr(scc);
      for (int64_t a = 0; a < outer; a++)
        for (int64_t i = 0; i < k; i++)
          for (int64_t j = 0; j < inner; j++) {
            int64_t oi = (a * size + ip[i]) * inner + j;
            lg_store(t->dtype, o, oi,
                     lg_load(t->dtype, o, oi) +
                         lg_load(t->dtype, s, (a * k + i) * inner + j));
          }
    }
    if (out) {
      lg_tensor *in[2] = {t, sc};
      lg_node *n = lg_record(out, "index_add", index_add_backward, 2, in);
      if (n) {
        DIM(n) = dim;
        if (lg_node_save(n, ic)) {
          lg_release(out);
          out = NULL;
        }
      }
    }
  }
  lg_release(ic);
  lg_release(sc);
  lg_release(scc);
  return out;
}

/* ---- gather / scatter ---- */

/* walks every element of index (shape of index), giving the offset in
 * index, in t (with the index value substituted at dim) and in src */
static int check_gather_shapes(const char *fname, lg_tensor *t, int dim,
                               lg_tensor *index) {
  if (index->ndim != t->ndim) {
    char a[200], b[200];
    lg_seterr("%s: index %s and input %s must have the same number of "
              "dimensions",
              fname, lg_shape_str(index, b, sizeof b),
              lg_shape_str(t, a, sizeof a));
    return -1;
  }
  for (int i = 0; i < t->ndim; i++)
    if (i != dim && index->shape[i] > t->shape[i]) {
      char a[200], b[200];
      lg_seterr("%s: index %s is larger than input %s in dimension %I", fname,
                lg_shape_str(index, b, sizeof b), lg_shape_str(t, a, sizeof a),
                (long long)i);
      return -1;
    }
  return 0;
}

static int gather_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  return put_back(n, g, grads, lg_scatter_add);
}

lg_tensor *lg_gather(lg_tensor *t, int dim, lg_tensor *index) {
  if (lg_args_unusable("lg_gather", LG_ARG(1, t), LG_ARG(3, index), 0))
    return NULL;
  if (check_index("gather", index))
    return NULL;
  if ((dim = lg_wrap_dim("gather", dim, t->ndim)) < 0)
    return NULL;
  if (check_gather_shapes("gather", t, dim, index))
    return NULL;
  lg_tensor *out = lg_empty(t->dtype, index->ndim, index->shape);
  if (!out)
    return NULL;
  int64_t n = lg_numel(index), pos[LG_MAX_DIMS] = {0};
  int nd = t->ndim;
  for (int64_t e = 0; e < n; e++) {
    int64_t io = index->offset, to = t->offset;
    for (int k = 0; k < nd; k++)
      io += pos[k] * index->strides[k];
    int64_t v = ((int64_t *)index->storage->data)[io];
    int64_t size = nd ? t->shape[dim] : 1;
    if (v < 0 || v >= size) {
      lg_release(out);
      index_oob("gather", v, size, dim);
      return NULL;
    }
    for (int k = 0; k < nd; k++)
      to += (k == dim ? v : pos[k]) * t->strides[k];
    lg_store(t->dtype, out->storage->data, e,
             lg_load(t->dtype, t->storage->data, to));
    for (int k = nd - 1; k >= 0; k--) {
      if (++pos[k] < index->shape[k])
        break;
      pos[k] = 0;
    }
  }
  lg_node *node = lg_record(out, "gather", gather_backward, 1, &t);
  if (node) {
    DIM(node) = dim;
    node->ninput_shape = t->ndim;
    memcpy(node->input_shape, t->shape, sizeof node->input_shape);
    if (lg_node_save(node, index)) {
      lg_release(out);
      return NULL;
    }
  }
  return out;
}

/* dst[... index ...] (=|+=) src over index's elements; dst contiguous */
static int scatter_raw(const char *fname, lg_tensor *dst, int dim,
                       lg_tensor *index, lg_tensor *src, bool add) {
  if (check_index(fname, index) || check_gather_shapes(fname, dst, dim, index))
    return -1;
  for (int i = 0; i < index->ndim; i++)
    if (index->shape[i] > src->shape[i] || src->ndim != index->ndim) {
      char a[200], b[200];
      lg_seterr("%s: index %s is larger than source %s", fname,
                lg_shape_str(index, a, sizeof a),
                lg_shape_str(src, b, sizeof b));
      return -1;
    }
  int64_t n = lg_numel(index), pos[LG_MAX_DIMS] = {0};
  int nd = dst->ndim;
  for (int64_t e = 0; e < n; e++) {
    int64_t io = index->offset, so = src->offset, to = dst->offset;
    for (int k = 0; k < nd; k++) {
      io += pos[k] * index->strides[k];
      so += pos[k] * src->strides[k];
    }
    int64_t v = ((int64_t *)index->storage->data)[io];
    int64_t size = nd ? dst->shape[dim] : 1;
    if (v < 0 || v >= size)
      return index_oob(fname, v, size, dim);
    for (int k = 0; k < nd; k++)
      to += (k == dim ? v : pos[k]) * dst->strides[k];
    double sv = lg_load(src->dtype, src->storage->data, so);
    if (add)
      sv += lg_load(dst->dtype, dst->storage->data, to);
    lg_store(dst->dtype, dst->storage->data, to, sv);
    for (int k = nd - 1; k >= 0; k--) {
      if (++pos[k] < index->shape[k])
        break;
      pos[k] = 0;
    }
  }
  return 0;
}

int lg_scatter_(lg_tensor *t, int dim, lg_tensor *index, lg_tensor *src) {
  if (lg_args_unusable("lg_scatter_", LG_ARG(1, t), LG_ARG(3, index),
                       LG_ARG(4, src), 0))
    return -1;
  if (lg_check_inplace("scatter_", t))
    return -1;
  if ((dim = lg_wrap_dim("scatter_", dim, t->ndim)) < 0)
    return -1;
  if (lg_partial_overlap(t, src) || t->storage == index->storage) {
    /* as if through temporaries: src and index are read in full first */
    bool was = lg_set_grad_enabled(false);
    lg_tensor *s = lg_clone(src), *i = lg_clone(index);
    int rc = s && i ? lg_scatter_(t, dim, i, s) : -1;
    lg_release(s);
    lg_release(i);
    lg_set_grad_enabled(was);
    return rc;
  }
  if (scatter_raw("scatter_", t, dim, index, src, false))
    return -1;
  lg_bump_version(t);
  return 0;
}

/* grad t = g; grad src = g gathered at index, padded with zeros where src
 * is larger than index (those elements were not scattered) */
static int scatter_add_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  if (n->needs_grad[0])
    grads[0] = lg_retain(g);
  if (n->needs_grad[1]) {
    lg_tensor *idx = lg_node_saved(n, 0);
    lg_tensor *r = idx ? lg_gather(g, DIM(n), idx) : NULL;
    for (int d = 0; r && d < r->ndim; d++) {
      if (r->shape[d] == n->input_shape[d])
        continue;
      int64_t shape[LG_MAX_DIMS];
      memcpy(shape, r->shape, sizeof shape);
      shape[d] = n->input_shape[d] - r->shape[d];
      lg_tensor *pad = lg_zeros(r->dtype, r->ndim, shape);
      lg_tensor *parts[2] = {r, pad};
      lg_tensor *c = pad ? lg_cat(2, parts, d) : NULL;
      lg_release(pad);
      lg_release(r);
      r = c;
    }
    if (!(grads[1] = r))
      return -1;
  }
  return 0;
}

lg_tensor *lg_scatter_add(lg_tensor *t, int dim, lg_tensor *index,
                          lg_tensor *src) {
  if (lg_args_unusable("lg_scatter_add", LG_ARG(1, t), LG_ARG(3, index),
                       LG_ARG(4, src), 0))
    return NULL;
  if ((dim = lg_wrap_dim("scatter_add", dim, t->ndim)) < 0)
    return NULL;
  bool was = lg_set_grad_enabled(false);
  lg_tensor *out = lg_clone(t);
  lg_set_grad_enabled(was);
  if (!out)
    return NULL;
  if (scatter_raw("scatter_add", out, dim, index, src, true)) {
    lg_release(out);
    return NULL;
  }
  lg_tensor *in[2] = {t, src};
  lg_node *n = lg_record(out, "scatter_add", scatter_add_backward, 2, in);
  if (n) {
    DIM(n) = dim;
    n->ninput_shape = src->ndim;
    memcpy(n->input_shape, src->shape, sizeof n->input_shape);
    if (lg_node_save(n, index)) {
      lg_release(out);
      return NULL;
    }
  }
  return out;
}

/* ---- masked_fill ---- */

static int masked_fill_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *mask = lg_node_saved(n, 0);
  lg_tensor *mf = mask ? lg_to_dtype(mask, g->dtype) : NULL;
  lg_tensor *keep = mf ? lg_binary_scalar(LG_OP_SUB, mf, 1, true) : NULL;
  grads[0] = keep ? lg_binary(LG_OP_MUL, g, keep) : NULL;
  lg_release(mf);
  lg_release(keep);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_masked_fill(lg_tensor *t, lg_tensor *mask, double v) {
  if (lg_args_unusable("lg_masked_fill", LG_ARG(1, t), LG_ARG(2, mask), 0))
    return NULL;
  if (mask->dtype != LG_BOOL) {
    lg_seterr("masked_fill: the mask must be a bool tensor, got %s",
              lg_dtype_name(mask->dtype));
    return NULL;
  }
  int nd;
  int64_t shape[LG_MAX_DIMS];
  if (lg_broadcast_shape("masked_fill", t, mask, &nd, shape))
    return NULL;
  if (nd != t->ndim || memcmp(shape, t->shape, nd * sizeof *shape)) {
    char a[200], b[200];
    lg_seterr("masked_fill: mask %s does not broadcast to %s",
              lg_shape_str(mask, b, sizeof b), lg_shape_str(t, a, sizeof a));
    return NULL;
  }
  lg_tensor *me = lg_expand(mask, nd, shape);
  lg_tensor *mc = me ? lg_contiguous(me) : NULL;
  bool was = lg_set_grad_enabled(false);
  lg_tensor *out = mc ? lg_clone(t) : NULL;
  lg_set_grad_enabled(was);
  if (out) {
    const uint8_t *m = lg_data_ptr(mc);
    for (int64_t i = 0, n = lg_numel(out); i < n; i++)
      if (m[i])
        lg_store(out->dtype, out->storage->data, i, v);
    lg_node *node = lg_record(out, "masked_fill", masked_fill_backward, 1, &t);
    if (node && lg_node_save(node, mc)) {
      lg_release(out);
      out = NULL;
    }
  }
  lg_release(me);
  lg_release(mc);
  return out;
}

/* ---- cat / stack ---- */

typedef struct {
  int n;
  int64_t sizes[];
} cat_ctx;

static int cat_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  cat_ctx *c = n->ctx;
  int dim = DIM(n);
  int64_t start = 0;
  for (int i = 0; i < c->n; i++) {
    if (n->needs_grad[i] &&
        !(grads[i] = lg_narrow(g, dim, start, c->sizes[i])))
      return -1;
    start += c->sizes[i];
  }
  return 0;
}

lg_tensor *lg_cat(int n, lg_tensor **ts, int dim) {
  if (!ts) {
    lg_seterr("lg_cat: argument %d is NULL", 2);
    return NULL;
  }
  if (n <= 0) {
    lg_seterr("cat: needs at least one tensor");
    return NULL;
  }
  if (lg_check_list("cat", n, ts) < 0)
    return NULL;
  lg_tensor *ref = NULL;
  for (int i = 0; i < n; i++) /* 1-d empty tensors are skipped as PyTorch */
    if (!(ts[i]->ndim == 1 && ts[i]->shape[0] == 0)) {
      ref = ts[i];
      break;
    }
  if (!ref)
    ref = ts[0];
  if (ref->ndim == 0) {
    lg_seterr("cat: zero-dimensional tensors cannot be concatenated");
    return NULL;
  }
  if ((dim = lg_wrap_dim("cat", dim, ref->ndim)) < 0)
    return NULL;
  lg_dtype d = ts[0]->dtype;
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    lg_tensor *t = ts[i];
    d = lg_promote(d, t->dtype);
    if (t->ndim == 1 && t->shape[0] == 0)
      continue;
    bool ok = t->ndim == ref->ndim;
    for (int k = 0; ok && k < t->ndim; k++)
      ok = k == dim || t->shape[k] == ref->shape[k];
    if (!ok) {
      char a[200], b[200];
      lg_seterr("cat: shapes %s and %s do not match outside dimension %I",
                lg_shape_str(ref, a, sizeof a), lg_shape_str(t, b, sizeof b),
                (long long)dim);
      return NULL;
    }
    total += t->shape[dim];
  }
  int64_t shape[LG_MAX_DIMS];
  memcpy(shape, ref->shape, sizeof shape);
  shape[dim] = total;
  lg_tensor *out = lg_empty(d, ref->ndim, shape);
  cat_ctx *ctx = out ? malloc(sizeof *ctx + n * sizeof(int64_t)) : NULL;
  if (!ctx) {
    lg_release(out);
    if (out)
      lg_seterr("cat: out of memory");
    return NULL;
  }
  ctx->n = n;
  int64_t start = 0;
  bool was = lg_set_grad_enabled(false);
  for (int i = 0; i < n; i++) {
    lg_tensor *t = ts[i];
    ctx->sizes[i] = (t->ndim == 1 && t->shape[0] == 0) ? 0 : t->shape[dim];
    if (!ctx->sizes[i])
      continue;
    lg_tensor *slot = lg_narrow(out, dim, start, ctx->sizes[i]);
    int rc = slot ? lg_copy_(slot, t) : -1;
    lg_release(slot);
    if (rc) {
      lg_set_grad_enabled(was);
      lg_release(out);
      free(ctx);
      return NULL;
    }
    start += ctx->sizes[i];
  }
  lg_set_grad_enabled(was);
  lg_node *node = lg_record(out, "cat", cat_backward, n, ts);
  if (node) {
    DIM(node) = dim;
    node->ctx = ctx;
    node->ctx_free = free;
  } else {
    free(ctx);
  }
  return out;
}

lg_tensor *lg_stack(int n, lg_tensor **ts, int dim) {
  if (!ts) {
    lg_seterr("lg_stack: argument %d is NULL", 2);
    return NULL;
  }
  if (n <= 0) {
    lg_seterr("stack: needs at least one tensor");
    return NULL;
  }
  if (lg_check_list("stack", n, ts) < 0)
    return NULL;
  for (int i = 1; i < n; i++)
    if (!lg_same_shape(ts[i], ts[0])) {
      char a[200], b[200];
      lg_seterr("stack: shapes %s and %s differ",
                lg_shape_str(ts[0], a, sizeof a),
                lg_shape_str(ts[i], b, sizeof b));
      return NULL;
    }
  int nd = ts[0]->ndim + 1;
  if (dim < 0)
    dim += nd;
  if (dim < 0 || dim >= nd) {
    lg_seterr("stack: dimension out of range");
    return NULL;
  }
  lg_tensor **us = malloc(n * sizeof *us);
  if (!us) {
    lg_seterr("stack: out of memory");
    return NULL;
  }
  int k;
  for (k = 0; k < n; k++)
    if (!(us[k] = lg_unsqueeze(ts[k], dim)))
      break;
  lg_tensor *out = k == n ? lg_cat(n, us, dim) : NULL;
  for (int i = 0; i < k; i++)
    lg_release(us[i]);
  free(us);
  return out;
}

/* ---- sort / topk ---- */

typedef struct {
  double v;
  int64_t i;
} keyed;

static int cmp_asc(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  /* NaN sorts last, as in PyTorch; stable on the index */
  bool xn = x->v != x->v, yn = y->v != y->v;
  if (xn != yn)
    return xn ? 1 : -1;
  if (x->v < y->v)
    return -1;
  if (x->v > y->v)
    return 1;
  return (x->i > y->i) - (x->i < y->i);
}

static int cmp_desc(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  bool xn = x->v != x->v, yn = y->v != y->v;
  if (xn != yn)
    return xn ? -1 : 1;
  if (x->v > y->v)
    return -1;
  if (x->v < y->v)
    return 1;
  return (x->i > y->i) - (x->i < y->i);
}

static int sort_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  return put_back(n, g, grads, lg_scatter_add);
}

int lg_topk(lg_tensor *t, int64_t k, int dim, bool largest, bool sorted,
            lg_tensor **values, lg_tensor **indices) {
  if (lg_args_unusable("lg_topk", LG_ARG(1, t), LG_ARG_PTR(6, values), 0))
    return -1;
  *values = *indices = NULL;
  const char *name = "topk";
  int nd = t->ndim;
  if (nd == 0) {
    lg_seterr("%s: needs at least one dimension", name);
    return -1;
  }
  if ((dim = lg_wrap_dim(name, dim, nd)) < 0)
    return -1;
  int64_t r = t->shape[dim];
  if (k < 0 || k > r) {
    lg_seterr("%s: k = %lld out of range for size %lld", name, (long long)k,
              (long long)r);
    return -1;
  }
  (void)sorted;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < dim; i++)
    outer *= t->shape[i];
  for (int i = dim + 1; i < nd; i++)
    inner *= t->shape[i];
  int64_t shape[LG_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[dim] = k;
  lg_tensor *c = lg_contiguous(t);
  lg_tensor *v = c ? lg_empty(t->dtype, nd, shape) : NULL;
  lg_tensor *ix = v ? lg_empty(LG_INT64, nd, shape) : NULL;
  keyed *buf = ix ? malloc((r ? r : 1) * sizeof *buf) : NULL;
  if (!buf) {
    if (ix)
      lg_seterr("%s: out of memory", name);
    lg_release(c);
    lg_release(v);
    lg_release(ix);
    return -1;
  }
  const void *x = lg_data_ptr(c);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      for (int64_t j = 0; j < r; j++) {
        buf[j].v = lg_load(t->dtype, x, (o * r + j) * inner + i);
        buf[j].i = j;
      }
      qsort(buf, r, sizeof *buf, largest ? cmp_desc : cmp_asc);
      for (int64_t j = 0; j < k; j++) {
        int64_t oi = (o * k + j) * inner + i;
        lg_store(t->dtype, v->storage->data, oi, buf[j].v);
        ((int64_t *)ix->storage->data)[oi] = buf[j].i;
      }
    }
  free(buf);
  lg_release(c);
  lg_node *n = lg_dtype_is_float(t->dtype)
                   ? lg_record(v, name, sort_backward, 1, &t)
                   : NULL;
  if (n) {
    DIM(n) = dim;
    n->ninput_shape = nd;
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

int lg_sort(lg_tensor *t, int dim, bool descending, lg_tensor **values,
            lg_tensor **indices) {
  if (lg_args_unusable("lg_sort", LG_ARG(1, t), LG_ARG_PTR(4, values), 0))
    return -1;
  if (t->ndim == 0) {
    *values = lg_clone(t);
    *indices = lg_zeros(LG_INT64, 0, NULL);
    return *values && *indices ? 0 : -1;
  }
  int d = lg_wrap_dim("sort", dim, t->ndim);
  if (d < 0)
    return -1;
  return lg_topk(t, t->shape[d], d, descending, true, values, indices);
}
