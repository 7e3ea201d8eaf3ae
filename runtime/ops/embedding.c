/*
 * ops/embedding.c -- embedding bags (sum, mean or max of the rows each bag
 * names, with optional per-sample weights and a padding index) and
 * embeddings with row-sparse gradients, as one fused kernel each way.
 *
 * Bags: indices (N) int64, bounds from offsets (each bag's first index;
 * bag b is [off[b], off[b+1]) and the last runs to N) or from a (B, L)
 * indices tensor (bag b is its row b).  An empty bag, or one holding only
 * padding, gives zeros.  The single mode is nn.Embedding with a sparse
 * gradient: every index is its own bag and padding rows are read as they
 * are (torch's embedding), only their gradient is dropped.
 *
 * Backward: for sum and mean, dW[idx[i]] += c_i gy[bag(i)] with c_i the
 * sample's weight, 1, or 1 / (non-padding count of the bag); for max,
 * dW[argmax[b][k]][k] += gy[b][k]; dpsw[i] = <gy[bag(i)], W[idx[i]]>.
 * The sparse form sorts the (row, contribution) pairs by row (radix sort,
 * O(entries)), sums each row's contributions in parallel, and returns the
 * rows used and their values: O(entries x D), whatever the table's size.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

#define SHAPE_BUF 192

/* what a bag node keeps besides its saved tensors (LG_NODE_STATE) */
typedef struct {
  int64_t mode;   /* lg_bag_mode */
  int64_t pad;    /* padding index in the indices' base, or outside */
  int64_t base;   /* index base of indices */
  int64_t V, D;   /* weight's shape */
  int64_t nbags;  /* B */
  int64_t sparse; /* give weight a row-sparse gradient */
  int64_t has_psw;
} bag_state;

/* Rows of a big table are far apart in memory: each is a cache miss, which
 * the loops hide by asking for the row PREFETCH_AHEAD entries ahead.
 * (Index values are checked before any loop runs.) */
#define PREFETCH_AHEAD 8
static inline void prefetch_row(const void *p, size_t nbytes) {
  for (size_t o = 0; o < nbytes; o += 64)
    __builtin_prefetch((const char *)p + o);
}

/* saved tensor slots */
enum { SV_INDICES, SV_BOUNDS, SV_EXTRA, SV_WEIGHT };

/* ---- forward ---- */

typedef struct {
  lg_dtype dt;
  bag_state s;
  const int64_t *idx, *bounds; /* bounds (B + 1), 0-based */
  const void *w, *psw;
  void *out;
  int64_t *argmax; /* max mode: (B, D) row chosen, -1 for none */
} fwd_ctx;

#define BAG_FWD(real)                                                          \
  do {                                                                         \
    const real *W = c->w, *psw = c->psw;                                       \
    real *Y = c->out;                                                          \
    int64_t nidx = c->bounds[s->nbags];                                        \
    for (int64_t b = b0; b < b1; b++) {                                        \
      real *y = Y + b * D;                                                     \
      int64_t *am = c->argmax ? c->argmax + b * D : NULL;                      \
      int64_t lo = c->bounds[b], hi = c->bounds[b + 1], count = 0;             \
      for (int64_t k = 0; k < D; k++)                                          \
        y[k] = 0;                                                              \
      if (am)                                                                  \
        for (int64_t k = 0; k < D; k++)                                        \
          am[k] = -1;                                                          \
      for (int64_t i = lo; i < hi; i++) {                                      \
        if (c->idx[i] == s->pad && s->mode != LG_BAG_SINGLE)                   \
          continue;                                                            \
        int64_t r = c->idx[i] - s->base;                                       \
        const real *w = W + r * D;                                             \
        if (i + PREFETCH_AHEAD < nidx)                                         \
          prefetch_row(W + (c->idx[i + PREFETCH_AHEAD] - s->base) * D,         \
                       D * sizeof(real));                                      \
        if (s->mode == LG_BAG_MAX) {                                           \
          for (int64_t k = 0; k < D; k++)                                      \
            if (count == 0 || w[k] > y[k]) {                                   \
              y[k] = w[k];                                                     \
              am[k] = r;                                                       \
            }                                                                  \
        } else if (psw) {                                                      \
          real a = psw[i];                                                     \
          for (int64_t k = 0; k < D; k++)                                      \
            y[k] += a * w[k];                                                  \
        } else {                                                               \
          for (int64_t k = 0; k < D; k++)                                      \
            y[k] += w[k];                                                      \
        }                                                                      \
        count++;                                                               \
      }                                                                        \
      if (s->mode == LG_BAG_MEAN && count > 1) {                               \
        real inv = (real)1 / (real)count;                                      \
        for (int64_t k = 0; k < D; k++)                                        \
          y[k] *= inv;                                                         \
      }                                                                        \
    }                                                                          \
  } while (0)

static void bag_forward_range(void *vc, int64_t b0, int64_t b1) {
  const fwd_ctx *c = vc;
  const bag_state *s = &c->s;
  int64_t D = s->D;
  if (c->dt == LG_FLOAT32)
    BAG_FWD(float);
  else
    BAG_FWD(double);
}

/* bags per parallel chunk: about 64K multiply-adds each (less work than
 * two chunks is not worth waking a thread for, least of all on a loaded
 * machine) */
static int64_t bag_grain(int64_t nidx, int64_t nbags, int64_t D) {
  int64_t per_bag = (nbags ? nidx / nbags : 1) * D + D;
  int64_t g = ((int64_t)1 << 16) / (per_bag ? per_bag : 1);
  return g < 1 ? 1 : g;
}

/* ---- sparse and dense backward ---- */

typedef struct {
  int64_t key; /* the row */
  int64_t src; /* the entry (sum, mean, single) or b * D + k (max) */
} pair;

/* sorts n pairs by key (0 <= key < nkeys), LSD radix by bytes; tmp holds
 * n pairs; returns the sorted array (p or tmp) */
static pair *radix_sort(pair *p, pair *tmp, int64_t n, int64_t nkeys) {
  int64_t count[256];
  for (int shift = 0; ((nkeys - 1) >> shift) > 0; shift += 8) {
    memset(count, 0, sizeof count);
    for (int64_t i = 0; i < n; i++)
      count[(p[i].key >> shift) & 255]++;
    int64_t sum = 0;
    for (int d = 0; d < 256; d++) {
      int64_t c = count[d];
      count[d] = sum;
      sum += c;
    }
    for (int64_t i = 0; i < n; i++)
      tmp[count[(p[i].key >> shift) & 255]++] = p[i];
    pair *t = p;
    p = tmp;
    tmp = t;
  }
  return p;
}

typedef struct {
  lg_dtype dt;
  const bag_state *s;
  const pair *pairs;
  const int64_t *starts; /* (nnz + 1): unique row u owns pairs[starts[u]..] */
  const int64_t *bag_of; /* entry -> bag (sum, mean, single) */
  const double *coef;    /* entry -> c_i */
  const void *gy;
  void *vals; /* (nnz, D) */
} rows_ctx;

#define ROWS_SUM(real)                                                         \
  do {                                                                         \
    const real *G = c->gy;                                                     \
    real *V = c->vals;                                                         \
    for (int64_t u = u0; u < u1; u++) {                                        \
      real *v = V + u * D;                                                     \
      for (int64_t k = 0; k < D; k++)                                          \
        v[k] = 0;                                                              \
      for (int64_t j = c->starts[u]; j < c->starts[u + 1]; j++) {              \
        int64_t src = c->pairs[j].src;                                         \
        if (c->s->mode == LG_BAG_MAX) {                                        \
          v[src % D] += G[src];                                                \
          continue;                                                            \
        }                                                                      \
        const real *g = G + c->bag_of[src] * D;                                \
        real a = (real)c->coef[src];                                           \
        for (int64_t k = 0; k < D; k++)                                        \
          v[k] += a * g[k];                                                    \
      }                                                                        \
    }                                                                          \
  } while (0)

static void rows_range(void *vc, int64_t u0, int64_t u1) {
  const rows_ctx *c = vc;
  int64_t D = c->s->D;
  if (c->dt == LG_FLOAT32)
    ROWS_SUM(float);
  else
    ROWS_SUM(double);
}

/* per entry: its bag and its coefficient (0 for padding) */
static void entry_coefs(const bag_state *s, const int64_t *idx,
                        const int64_t *bounds, lg_dtype dt, const void *psw,
                        int64_t *bag_of, double *coef) {
  for (int64_t b = 0; b < s->nbags; b++) {
    int64_t lo = bounds[b], hi = bounds[b + 1], count = 0;
    for (int64_t i = lo; i < hi; i++)
      count += idx[i] != s->pad;
    double mean = count ? 1.0 / (double)count : 0;
    for (int64_t i = lo; i < hi; i++) {
      bag_of[i] = b;
      if (idx[i] == s->pad)
        coef[i] = 0;
      else if (s->mode == LG_BAG_MEAN)
        coef[i] = mean;
      else if (psw)
        coef[i] = lg_load(dt, psw, i);
      else
        coef[i] = 1;
    }
  }
}

/* the weight's gradient: row-sparse (sorted unique rows) or dense */
static lg_tensor *weight_grad(const bag_state *s, lg_dtype dt,
                              const int64_t *idx, const int64_t *bounds,
                              int64_t nidx, const void *psw,
                              const int64_t *argmax, const void *gy) {
  int64_t D = s->D, B = s->nbags;
  bool max = s->mode == LG_BAG_MAX;
  int64_t n = max ? B * D : nidx;
  size_t pbytes = (size_t)(n ? n : 1) * sizeof(pair);
  size_t ebytes = max ? 0 : (size_t)(nidx ? nidx : 1) * sizeof(int64_t);
  pair *pairs = lg_alloc(pbytes), *tmp = lg_alloc(pbytes);
  int64_t *bag_of = ebytes ? lg_alloc(ebytes) : NULL;
  double *coef = ebytes ? lg_alloc(ebytes) : NULL;
  int64_t *starts = NULL;
  size_t sbytes = 0;
  lg_tensor *out = NULL, *rows = NULL;
  if (!pairs || !tmp || (ebytes && (!bag_of || !coef))) {
    lg_seterr("embedding_bag: out of memory");
    goto done;
  }
  int64_t m = 0;
  if (max) {
    for (int64_t j = 0; j < n; j++)
      if (argmax[j] >= 0)
        pairs[m++] = (pair){argmax[j], j};
  } else {
    entry_coefs(s, idx, bounds, dt, psw, bag_of, coef);
    for (int64_t i = 0; i < nidx; i++)
      if (idx[i] != s->pad)
        pairs[m++] = (pair){idx[i] - s->base, i};
  }
  if (!s->sparse) {
    /* dense: one pass of scatter-adds in entry order */
    int64_t shape[2] = {s->V, D};
    if (!(out = lg_zeros(dt, 2, shape)))
      goto done;
    for (int64_t j = 0; j < m; j++) {
      int64_t r = pairs[j].key, src = pairs[j].src;
      if (max) {
        double v = lg_load(dt, lg_data_ptr(out), r * D + src % D) +
                   lg_load(dt, gy, src);
        lg_store(dt, lg_data_ptr(out), r * D + src % D, v);
      } else if (dt == LG_FLOAT32) {
        float *o = (float *)lg_data_ptr(out) + r * D, a = (float)coef[src];
        const float *g = (const float *)gy + bag_of[src] * D;
        for (int64_t k = 0; k < D; k++)
          o[k] += a * g[k];
      } else {
        double *o = (double *)lg_data_ptr(out) + r * D, a = coef[src];
        const double *g = (const double *)gy + bag_of[src] * D;
        for (int64_t k = 0; k < D; k++)
          o[k] += a * g[k];
      }
    }
    goto done;
  }
  pair *sorted = radix_sort(pairs, tmp, m, s->V);
  int64_t nnz = 0;
  for (int64_t j = 0; j < m; j++)
    nnz += j == 0 || sorted[j].key != sorted[j - 1].key;
  sbytes = (size_t)(nnz + 1) * sizeof(int64_t);
  int64_t vshape[2] = {nnz, D};
  if (!(starts = lg_alloc(sbytes)) || !(rows = lg_empty(LG_INT64, 1, &nnz)) ||
      !(out = lg_empty(dt, 2, vshape)))
    goto done;
  int64_t *rp = lg_data_ptr(rows);
  for (int64_t j = 0, u = 0; j < m; j++)
    if (j == 0 || sorted[j].key != sorted[j - 1].key) {
      rp[u] = sorted[j].key;
      starts[u++] = j;
    }
  starts[nnz] = m;
  rows_ctx rc = {.dt = dt,
                 .s = s,
                 .pairs = sorted,
                 .starts = starts,
                 .bag_of = bag_of,
                 .coef = coef,
                 .gy = gy,
                 .vals = lg_data_ptr(out)};
  int64_t per_row = (nnz ? m / nnz : 1) * D + D;
  int64_t grain = ((int64_t)1 << 16) / per_row;
  lg_parallel_for(nnz, grain < 1 ? 1 : grain, rows_range, &rc);
  lg_rowsparse_attach(out, rows, s->V);
done:
  lg_release(rows);
  if (pairs)
    lg_free(pairs, pbytes);
  if (tmp)
    lg_free(tmp, pbytes);
  if (bag_of)
    lg_free(bag_of, ebytes);
  if (coef)
    lg_free(coef, ebytes);
  if (starts)
    lg_free(starts, sbytes);
  return out;
}

/* per-sample weights' gradient: dpsw[i] = <gy[bag(i)], W[idx[i]]> */
static lg_tensor *psw_grad(const bag_state *s, const lg_tensor *psw,
                           const int64_t *idx, const int64_t *bounds,
                           const void *w, const void *gy) {
  lg_dtype dt = psw->dtype;
  lg_tensor *out = lg_zeros(dt, psw->ndim, psw->shape);
  if (!out)
    return NULL;
  int64_t D = s->D;
  for (int64_t b = 0; b < s->nbags; b++)
    for (int64_t i = bounds[b]; i < bounds[b + 1]; i++) {
      if (idx[i] == s->pad)
        continue;
      int64_t r = idx[i] - s->base;
      double acc = 0;
      for (int64_t k = 0; k < D; k++)
        acc += lg_load(dt, w, r * D + k) * lg_load(dt, gy, b * D + k);
      lg_store(dt, lg_data_ptr(out), i, acc);
    }
  return out;
}

static int bag_backward(lg_node *node, lg_tensor *grad_out, lg_tensor **grads) {
  bag_state s = *LG_NODE_STATE(node, bag_state);
  lg_tensor *idx = lg_node_saved(node, SV_INDICES);
  lg_tensor *bounds = idx ? lg_node_saved(node, SV_BOUNDS) : NULL;
  if (!bounds)
    return -1;
  lg_dtype dt = node->input_dtype;
  lg_tensor *extra = NULL, *w = NULL;
  if (s.mode == LG_BAG_MAX || s.has_psw)
    if (!(extra = lg_node_saved(node, SV_EXTRA)))
      return -1;
  bool want_psw = node->ninputs > 1 && node->needs_grad[1];
  if (want_psw && !(w = lg_node_saved(node, SV_WEIGHT)))
    return -1;
  bool was = lg_set_grad_enabled(false);
  lg_tensor *t =
      grad_out->dtype == dt ? lg_retain(grad_out) : lg_to_dtype(grad_out, dt);
  lg_tensor *gy = t ? lg_contiguous(t) : NULL; /* contiguous, weight's dtype */
  lg_release(t);
  lg_set_grad_enabled(was);
  if (!gy)
    return -1;
  /* a gradient that may be differentiated again (create_graph) is dense */
  if (lg_grad_enabled())
    s.sparse = 0;
  const int64_t *ip = lg_data_ptr(idx), *bp = lg_data_ptr(bounds);
  int64_t nidx = lg_numel(idx);
  int rc = 0;
  if (node->needs_grad[0]) {
    const void *psw = s.has_psw ? lg_data_ptr(extra) : NULL;
    const int64_t *am = s.mode == LG_BAG_MAX ? lg_data_ptr(extra) : NULL;
    if (!(grads[0] =
              weight_grad(&s, dt, ip, bp, nidx, psw, am, lg_data_ptr(gy))))
      rc = -1;
  }
  if (!rc && want_psw &&
      !(grads[1] =
            psw_grad(&s, extra, ip, bp, lg_data_ptr(w), lg_data_ptr(gy))))
    rc = -1;
  lg_release(gy);
  return rc;
}
ONCE_DIFFERENTIABLE(bag_backward)

/* ---- checks ---- */

static int check_indices(const char *fn, const int64_t *ip, int64_t n,
                         int64_t base, int64_t V, int64_t pad) {
  for (int64_t i = 0; i < n; i++)
    if ((ip[i] < base || ip[i] >= base + V) && ip[i] != pad) {
      lg_seterr("%s: indices[%lld] = %lld is out of range %lld..%lld", fn,
                (long long)(i + base), (long long)ip[i], (long long)base,
                (long long)(base + V - 1));
      return -1;
    }
  return 0;
}

/* bounds (B + 1) 0-based from offsets (B) in the index base */
static lg_tensor *bounds_from_offsets(const char *fn, lg_tensor *offsets,
                                      int64_t nidx, int64_t base) {
  char sa[SHAPE_BUF];
  if (offsets->dtype != LG_INT64 || offsets->ndim != 1) {
    lg_seterr("%s: offsets must be a 1-d int64 tensor (got %s %s)", fn,
              lg_dtype_name(offsets->dtype),
              lg_shape_str(offsets, sa, sizeof sa));
    return NULL;
  }
  int64_t B = offsets->shape[0], nb = B + 1;
  lg_tensor *bounds = lg_empty(LG_INT64, 1, &nb);
  if (!bounds)
    return NULL;
  int64_t *bp = lg_data_ptr(bounds);
  for (int64_t b = 0; b < B; b++) {
    int64_t o = (int64_t)lg_get(offsets, &b) - base;
    if (b == 0 && o != 0) {
      lg_seterr("%s: offsets[%lld] = %lld must be %lld (the first bag starts "
                "at the first index)",
                fn, (long long)base, (long long)(o + base), (long long)base);
      goto fail;
    }
    if (b > 0 && o < bp[b - 1]) {
      lg_seterr("%s: offsets must not decrease (offsets[%lld] = %lld after "
                "%lld)",
                fn, (long long)(b + base), (long long)(o + base),
                (long long)(bp[b - 1] + base));
      goto fail;
    }
    if (o > nidx) {
      lg_seterr("%s: offsets[%lld] = %lld is past the end of indices (%lld "
                "indices)",
                fn, (long long)(b + base), (long long)(o + base),
                (long long)nidx);
      goto fail;
    }
    bp[b] = o;
  }
  bp[B] = nidx;
  return bounds;
fail:
  lg_release(bounds);
  return NULL;
}

/* ---- the op ---- */

static lg_tensor *bag_op(const char *fn, lg_tensor *weight, lg_tensor *indices,
                         lg_tensor *offsets, lg_tensor *psw, lg_bag_mode mode,
                         int64_t padding_idx, bool sparse, int64_t index_base) {
  char sa[SHAPE_BUF], sb[SHAPE_BUF];
  if (!lg_dtype_is_float(weight->dtype) || weight->ndim != 2) {
    lg_seterr("%s: weight must be a 2-d float tensor (num_embeddings, dim), "
              "got %s %s",
              fn, lg_dtype_name(weight->dtype),
              lg_shape_str(weight, sa, sizeof sa));
    return NULL;
  }
  if (indices->dtype != LG_INT64) {
    lg_seterr("%s: indices must be int64 (got %s)", fn,
              lg_dtype_name(indices->dtype));
    return NULL;
  }
  if (mode != LG_BAG_SINGLE) {
    if (offsets && indices->ndim != 1) {
      lg_seterr("%s: indices must be 1-d when offsets are given (got %s)", fn,
                lg_shape_str(indices, sa, sizeof sa));
      return NULL;
    }
    if (!offsets && indices->ndim != 2) {
      lg_seterr("%s: indices must be 2-d (bags, length) without offsets, or "
                "1-d with offsets (got %s)",
                fn, lg_shape_str(indices, sa, sizeof sa));
      return NULL;
    }
  } else if (indices->ndim >= LG_MAX_DIMS) {
    lg_seterr("%s: indices have too many dimensions (%d)", fn, indices->ndim);
    return NULL;
  }
  if (psw) {
    if (mode != LG_BAG_SUM) {
      lg_seterr("%s: per_sample_weights are only supported for mode 'sum'", fn);
      return NULL;
    }
    if (psw->dtype != weight->dtype || !lg_same_shape(psw, indices)) {
      lg_seterr("%s: per_sample_weights (%s %s) must have the dtype of "
                "weight (%s) and the shape of indices (%s)",
                fn, lg_dtype_name(psw->dtype), lg_shape_str(psw, sa, sizeof sa),
                lg_dtype_name(weight->dtype),
                lg_shape_str(indices, sb, sizeof sb));
      return NULL;
    }
  }
  int64_t V = weight->shape[0], D = weight->shape[1];
  int64_t nidx = lg_numel(indices);
  bool was = lg_set_grad_enabled(false);
  lg_tensor *ic = lg_contiguous(indices);
  lg_tensor *wc = ic ? lg_contiguous(weight) : NULL;
  lg_tensor *pc = wc && psw ? lg_contiguous(psw) : NULL;
  lg_set_grad_enabled(was);
  lg_tensor *bounds = NULL, *argmax = NULL, *y = NULL;
  if (!wc || (psw && !pc))
    goto fail;
  const int64_t *ip = lg_data_ptr(ic);
  if (check_indices(fn, ip, nidx, index_base, V,
                    mode == LG_BAG_SINGLE ? INT64_MIN : padding_idx))
    goto fail;
  int64_t B;
  if (mode == LG_BAG_SINGLE || !offsets) {
    B = mode == LG_BAG_SINGLE ? nidx : indices->shape[0];
    int64_t L = mode == LG_BAG_SINGLE ? 1 : indices->shape[1], nb = B + 1;
    if (!(bounds = lg_empty(LG_INT64, 1, &nb)))
      goto fail;
    int64_t *bp = lg_data_ptr(bounds);
    for (int64_t b = 0; b <= B; b++)
      bp[b] = b * L;
  } else {
    if (!(bounds = bounds_from_offsets(fn, offsets, nidx, index_base)))
      goto fail;
    B = offsets->shape[0];
  }
  int64_t yshape[LG_MAX_DIMS], yndim = 2;
  yshape[0] = B;
  yshape[1] = D;
  if (mode == LG_BAG_SINGLE) {
    yndim = indices->ndim + 1;
    memcpy(yshape, indices->shape, sizeof(int64_t) * indices->ndim);
    yshape[indices->ndim] = D;
  }
  int64_t ashape[2] = {B, D};
  if (!(y = lg_empty(weight->dtype, (int)yndim, yshape)) ||
      (mode == LG_BAG_MAX && !(argmax = lg_empty(LG_INT64, 2, ashape))))
    goto fail;
  fwd_ctx c = {.dt = weight->dtype,
               .s = {.mode = mode,
                     .pad = padding_idx,
                     .base = index_base,
                     .V = V,
                     .D = D,
                     .nbags = B,
                     .sparse = sparse,
                     .has_psw = psw != NULL},
               .idx = ip,
               .bounds = lg_data_ptr(bounds),
               .w = lg_data_ptr(wc),
               .psw = pc ? lg_data_ptr(pc) : NULL,
               .out = lg_data_ptr(y),
               .argmax = argmax ? lg_data_ptr(argmax) : NULL};
  lg_parallel_for(B, bag_grain(nidx, B, D), bag_forward_range, &c);
  lg_tensor *inputs[2] = {weight, psw};
  lg_node *node = lg_record(y, fn, bag_backward_once, psw ? 2 : 1, inputs);
  if (node) {
    *LG_NODE_STATE(node, bag_state) = c.s;
    node->input_dtype = weight->dtype;
    if (lg_node_save(node, ic) || lg_node_save(node, bounds) ||
        (mode == LG_BAG_MAX && lg_node_save(node, argmax)) ||
        (psw && (lg_node_save(node, pc) || lg_node_save(node, wc))))
      goto fail;
  }
  lg_release(ic);
  lg_release(wc);
  lg_release(pc);
  lg_release(bounds);
  lg_release(argmax);
  return y;
fail:
  lg_release(ic);
  lg_release(wc);
  lg_release(pc);
  lg_release(bounds);
  lg_release(argmax);
  lg_release(y);
  return NULL;
}

lg_tensor *lg_embedding_bag(lg_tensor *weight, lg_tensor *indices,
                            lg_tensor *offsets, lg_tensor *per_sample_weights,
                            lg_bag_mode mode, int64_t padding_idx, bool sparse,
                            int64_t index_base) {
  if (LG_UNUSABLE(weight) || LG_UNUSABLE(indices) ||
      (offsets && offsets->storage->revoked) ||
      (per_sample_weights && per_sample_weights->storage->revoked)) {
    lg_seterr("lg_embedding_bag: argument %d is NULL or revoked",
              LG_UNUSABLE(weight) ? 1 : LG_UNUSABLE(indices) ? 2
                                    : (offsets && offsets->storage->revoked)
                                        ? 3
                                        : 4);
    return NULL;
  }
  if (mode != LG_BAG_SUM && mode != LG_BAG_MEAN && mode != LG_BAG_MAX) {
    lg_seterr("embedding_bag: mode must be sum, mean or max");
    return NULL;
  }
  return bag_op("embedding_bag", weight, indices, offsets, per_sample_weights,
                mode, padding_idx, sparse, index_base);
}

lg_tensor *lg_embedding_rows(lg_tensor *indices, lg_tensor *weight,
                             int64_t padding_idx, bool sparse,
                             int64_t index_base) {
  if ((indices && indices->storage->revoked) ||
      (weight && weight->storage->revoked)) {
    lg_seterr("lg_embedding_rows: argument %d is NULL or revoked",
              ((indices && indices->storage->revoked)) ? 1 : 2);
    return NULL;
  }
  return bag_op("embedding", weight, indices, NULL, NULL, LG_BAG_SINGLE,
                padding_idx, sparse, index_base);
}
