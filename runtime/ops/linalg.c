/*
 * ops/linalg.c -- the plain C twin of the GEMM wrapper (blas.c), used by
 * the specs as the reference, and matmul in its 1-d, 2-d, batched and
 * broadcast forms with backward.
 */
#include <string.h>

#include "../core/internal.h"

void lg_gemm_naive(lg_dtype d, bool ta, bool tb, int64_t m, int64_t n,
                   int64_t k, double alpha, const void *a, int64_t lda,
                   const void *b, int64_t ldb, double beta, void *c,
                   int64_t ldc) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double acc = 0;
      for (int64_t p = 0; p < k; p++) {
        double x = lg_load(d, a, ta ? p * lda + i : i * lda + p);
        double y = lg_load(d, b, tb ? j * ldb + p : p * ldb + j);
        acc += x * y;
      }
      double old = beta != 0 ? lg_load(d, c, i * ldc + j) * beta : 0;
      lg_store(d, c, i * ldc + j, alpha * acc + old);
    }
}

/* how a (rows x cols) matrix view can be handed to BLAS: transposed flag
 * and leading dimension, or -1 when it must be copied first */
static int64_t blas_layout(const lg_tensor *t, bool *trans) {
  int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
  int64_t rs = t->strides[t->ndim - 2], cs = t->strides[t->ndim - 1];
  if ((cs == 1 || cols == 1) && rs >= (cols > 1 ? cols : 1)) {
    *trans = false;
    return rs > 0 ? rs : 1;
  }
  if ((rs == 1 || rows == 1) && cs >= (rows > 1 ? rows : 1)) {
    *trans = true;
    return cs > 0 ? cs : 1;
  }
  return -1;
}

static int matmul_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *a = lg_node_saved(n, 0), *b = lg_node_saved(n, 1);
  if (!a || !b)
    return -1;
  if (n->needs_grad[0]) { /* g b^T, reduced over broadcast batch dims */
    lg_tensor *bt = lg_transpose(b, -1, -2);
    lg_tensor *p = bt ? lg_matmul(g, bt) : NULL;
    grads[0] = p ? lg_grad_reduce_to(p, &LG_BCAST(n)->a) : NULL;
    lg_release(bt);
    lg_release(p);
    if (!grads[0])
      return -1;
  }
  if (n->needs_grad[1]) { /* a^T g */
    lg_tensor *at = lg_transpose(a, -1, -2);
    lg_tensor *p = at ? lg_matmul(at, g) : NULL;
    grads[1] = p ? lg_grad_reduce_to(p, &LG_BCAST(n)->b) : NULL;
    lg_release(at);
    lg_release(p);
    if (!grads[1])
      return -1;
  }
  return 0;
}

static int align_error(const char *fname, const lg_tensor *a,
                       const lg_tensor *b) {
  char x[200], y[200];
  lg_seterr("%s: shapes %s and %s do not align", fname,
            lg_shape_str(a, x, sizeof x), lg_shape_str(b, y, sizeof y));
  return -1;
}

/* both at least 2-d, same float dtype */
static lg_tensor *matmul_nd(const char *fname, lg_tensor *a, lg_tensor *b) {
  int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
  int64_t k2 = b->shape[b->ndim - 2], n = b->shape[b->ndim - 1];
  if (k != k2) {
    align_error(fname, a, b);
    return NULL;
  }
  /* batch shapes broadcast */
  lg_tensor ba, bb;
  memset(&ba, 0, sizeof ba);
  memset(&bb, 0, sizeof bb);
  ba.ndim = a->ndim - 2;
  bb.ndim = b->ndim - 2;
  memcpy(ba.shape, a->shape, ba.ndim * sizeof(int64_t));
  memcpy(bb.shape, b->shape, bb.ndim * sizeof(int64_t));
  int bnd;
  int64_t bshape[LG_MAX_DIMS];
  if (lg_broadcast_shape(fname, &ba, &bb, &bnd, bshape)) {
    align_error(fname, a, b);
    return NULL;
  }
  int64_t oshape[LG_MAX_DIMS];
  memcpy(oshape, bshape, bnd * sizeof(int64_t));
  oshape[bnd] = m;
  oshape[bnd + 1] = n;
  if (bnd + 2 > LG_MAX_DIMS) {
    lg_seterr("%s: too many dimensions", fname);
    return NULL;
  }
  lg_tensor *out = lg_empty(a->dtype, bnd + 2, oshape);
  if (!out)
    return NULL;
  lg_tensor *ca = lg_retain(a), *cb = lg_retain(b);
  bool ta, tb;
  int64_t lda = blas_layout(ca, &ta), ldb = blas_layout(cb, &tb);
  if (lda < 0) {
    lg_release(ca);
    ca = lg_contiguous(a);
    lda = ca ? blas_layout(ca, &ta) : 0;
  }
  if (ldb < 0) {
    lg_release(cb);
    cb = lg_contiguous(b);
    ldb = cb ? blas_layout(cb, &tb) : 0;
  }
  if (!ca || !cb) {
    lg_release(ca);
    lg_release(cb);
    lg_release(out);
    return NULL;
  }
  size_t es = lg_dtype_size(a->dtype);
  char *pc = out->storage->data;
  int64_t nbatch = lg_shape_numel(bnd, bshape);
  if (k == 0) {
    memset(pc, 0, lg_numel(out) * es);
  } else if (cb->ndim == 2 && !ta && lg_is_contiguous(ca)) {
    /* (..., m, k) @ (k, n): one GEMM over all rows */
    lg_gemm(a->dtype, false, tb, nbatch * m, n, k, 1, lg_data_ptr(ca), k,
            lg_data_ptr(cb), ldb, 0, pc, n);
  } else {
    int64_t sa[LG_MAX_DIMS], sb[LG_MAX_DIMS], pos[LG_MAX_DIMS] = {0};
    lg_broadcast_strides(&ba, bnd, bshape, sa);
    lg_broadcast_strides(&bb, bnd, bshape, sb);
    /* the strides above came from headers without strides: recompute */
    for (int i = 0; i < bnd; i++) {
      int ia = i - (bnd - ba.ndim), ib = i - (bnd - bb.ndim);
      sa[i] = (ia < 0 || ca->shape[ia] == 1) ? 0 : ca->strides[ia];
      sb[i] = (ib < 0 || cb->shape[ib] == 1) ? 0 : cb->strides[ib];
    }
    for (int64_t t = 0; t < nbatch; t++) {
      int64_t oa = ca->offset, ob = cb->offset;
      for (int i = 0; i < bnd; i++) {
        oa += pos[i] * sa[i];
        ob += pos[i] * sb[i];
      }
      lg_gemm(a->dtype, ta, tb, m, n, k, 1,
              (char *)ca->storage->data + oa * es, lda,
              (char *)cb->storage->data + ob * es, ldb, 0,
              pc + t * m * n * es, n);
      for (int i = bnd - 1; i >= 0; i--) {
        if (++pos[i] < bshape[i])
          break;
        pos[i] = 0;
      }
    }
  }
  lg_release(ca);
  lg_release(cb);
  lg_tensor *in[2] = {a, b};
  lg_node *node = lg_record(out, "matmul", matmul_backward, 2, in);
  if (node) {
    lg_node_set_shapes2(node, a, b);
    if (lg_node_save(node, a) || lg_node_save(node, b)) {
      lg_release(out);
      return NULL;
    }
  }
  return out;
}

lg_tensor *lg_matmul(lg_tensor *a, lg_tensor *b) {
  if (LG_UNUSABLE(a) || LG_UNUSABLE(b)) {
    lg_seterr("lg_matmul: argument %d is NULL or revoked",
              (LG_UNUSABLE(a)) ? 1 : 2);
    return NULL;
  }
  const char *fname = "matmul";
  if (a->ndim == 0 || b->ndim == 0) {
    lg_seterr("%s: both arguments need at least one dimension", fname);
    return NULL;
  }
  if (a->dtype == LG_BOOL || b->dtype == LG_BOOL) {
    lg_seterr("%s: not defined for bool tensors", fname);
    return NULL;
  }
  lg_dtype d = lg_promote(a->dtype, b->dtype);
  lg_tensor *ca = lg_to_dtype(a, d), *cb = ca ? lg_to_dtype(b, d) : NULL;
  lg_tensor *ua = NULL, *ub = NULL, *r = NULL, *out = NULL;
  if (!cb)
    goto done;
  if (a->ndim == 1 && b->ndim == 1 && a->shape[0] != b->shape[0]) {
    align_error(fname, a, b);
    goto done;
  }
  ua = a->ndim == 1 ? lg_unsqueeze(ca, 0) : lg_retain(ca);
  ub = b->ndim == 1 ? lg_unsqueeze(cb, 1) : lg_retain(cb);
  if (!ua || !ub)
    goto done;
  if (ua->shape[ua->ndim - 1] != ub->shape[ub->ndim - 2]) {
    align_error(fname, a, b);
    goto done;
  }
  r = matmul_nd(fname, ua, ub);
  if (!r)
    goto done;
  if (a->ndim == 1 && b->ndim == 1) {
    out = lg_reshape(r, 0, NULL);
  } else if (a->ndim == 1) {
    out = lg_squeeze(r, -2);
  } else if (b->ndim == 1) {
    out = lg_squeeze(r, -1);
  } else {
    out = lg_retain(r);
  }
done:
  lg_release(ca);
  lg_release(cb);
  lg_release(ua);
  lg_release(ub);
  lg_release(r);
  return out;
}

lg_tensor *lg_mm(lg_tensor *a, lg_tensor *b) {
  if (LG_UNUSABLE(a) || LG_UNUSABLE(b)) {
    lg_seterr("lg_mm: argument %d is NULL or revoked",
              (LG_UNUSABLE(a)) ? 1 : 2);
    return NULL;
  }
  if (a->ndim != 2 || b->ndim != 2) {
    char x[200], y[200];
    lg_seterr("mm: needs two 2-d tensors, got %s and %s",
              lg_shape_str(a, x, sizeof x), lg_shape_str(b, y, sizeof y));
    return NULL;
  }
  return lg_matmul(a, b);
}

lg_tensor *lg_dot(lg_tensor *a, lg_tensor *b) {
  if (LG_UNUSABLE(a) || LG_UNUSABLE(b)) {
    lg_seterr("lg_dot: argument %d is NULL or revoked",
              (LG_UNUSABLE(a)) ? 1 : 2);
    return NULL;
  }
  if (a->ndim != 1 || b->ndim != 1 || a->shape[0] != b->shape[0]) {
    char x[200], y[200];
    lg_seterr("dot: needs two 1-d tensors of the same size, got %s and %s",
              lg_shape_str(a, x, sizeof x), lg_shape_str(b, y, sizeof y));
    return NULL;
  }
  return lg_matmul(a, b);
}

lg_tensor *lg_outer(lg_tensor *a, lg_tensor *b) {
  if (LG_UNUSABLE(a) || LG_UNUSABLE(b)) {
    lg_seterr("lg_outer: argument %d is NULL or revoked",
              (LG_UNUSABLE(a)) ? 1 : 2);
    return NULL;
  }
  if (a->ndim != 1 || b->ndim != 1) {
    char x[200], y[200];
    lg_seterr("outer: needs two 1-d tensors, got %s and %s",
              lg_shape_str(a, x, sizeof x), lg_shape_str(b, y, sizeof y));
    return NULL;
  }
  lg_tensor *ua = lg_unsqueeze(a, 1), *ub = ua ? lg_unsqueeze(b, 0) : NULL;
  lg_tensor *r = ub ? lg_binary(LG_OP_MUL, ua, ub) : NULL;
  lg_release(ua);
  lg_release(ub);
  return r;
}
