/*
 * ops/attention.c -- scaled dot-product attention as one fused op.
 *
 *   out = softmax(q k^T * scale + mask) v      per (batch..., head)
 *   q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv), out (..., Tq, Dv)
 *
 * Forward (FlashAttention-2's order): for each block of Br queries, walk
 * the blocks of Bc keys keeping each row's running maximum m and sum l of
 * exp(s - m); the output block is rescaled by exp(m_old - m_new) when the
 * maximum grows, and divided by l at the end.  Only a Br x Bc block of
 * scores exists at a time; each row's log-sum-exp lse = m + log l is
 * saved for backward.
 *
 * Backward: with P = exp(s - lse), Z the dropout mask scaled by 1/(1-p),
 * dO the output gradient and Delta_i = sum_d dO_id O_id:
 *   dV = (P Z)^T dO
 *   dS = P * (Z * (dO V^T) - Delta)        (elementwise, Delta per row)
 *   dQ = scale * dS K,  dK = scale * dS^T Q
 * computed block by block (keys outer, queries inner), recomputing each
 * block of P from q, k and lse.  All block products go through lg_gemm.
 *
 * Heads run in parallel on the thread pool (each writes only its own
 * slices).  The block sizes keep each GEMM small enough that OpenBLAS
 * runs it on the calling thread.  Dropout draws element (head, i, j) from
 * its own Philox position, so forward and backward agree and the numbers
 * do not depend on the thread count.
 *
 * The typed kernels below are compiled twice, for float and double, by
 * including this file into itself with ATTN_REAL defined.
 */
#ifdef ATTN_REAL

#define CAT2(a, b) a##_##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(name, ATTN_SUF)
#define real ATTN_REAL
#define EXP(x) (sizeof(real) == sizeof(float) ? expf(x) : exp(x))

/* scores of one block: s[r][c] = scale * q_(i0+r) . k_(j0+c) + mask, and
 * -inf where masked */
static void FN(block_scores)(const struct attn *a, int64_t bh, int64_t i0,
                             int64_t br, int64_t j0, int64_t bc, real *s) {
  const real *qh = (const real *)a->q + bh * a->Tq * a->D;
  const real *kh = (const real *)a->k + bh * a->Tk * a->D;
  lg_gemm(a->dtype, false, true, br, bc, a->D, a->scale, qh + i0 * a->D, a->D,
          kh + j0 * a->D, a->D, 0.0, s, a->Bc);
  int64_t moff = a->mask ? mask_offset(a, bh) : 0;
  for (int64_t r = 0; r < br; r++) {
    int64_t i = i0 + r;
    real *row = s + r * a->Bc;
    if (a->mask) {
      int64_t off = moff + i * a->msi + j0 * a->msj;
      if (a->mask_bool) {
        const bool *mb = a->mask;
        for (int64_t c = 0; c < bc; c++)
          if (!mb[off + c * a->msj])
            row[c] = -INFINITY;
      } else {
        const real *mf = a->mask;
        for (int64_t c = 0; c < bc; c++)
          row[c] += mf[off + c * a->msj];
      }
    }
    if (a->causal)
      for (int64_t c = i - j0 + 1 < 0 ? 0 : i - j0 + 1; c < bc; c++)
        row[c] = -INFINITY;
  }
}

/* multiplies a row of probabilities by the dropout factors */
static void FN(apply_dropout)(const struct attn *a, const unsigned char *keep,
                              int64_t bc, real *row) {
  real keep_scale = (real)(1.0 / (1.0 - a->p));
  for (int64_t c = 0; c < bc; c++)
    row[c] *= keep[c] ? keep_scale : (real)0;
}

/* work: s (Br x Bc), o (Br x Dv), m (Br), l (Br) */
static void FN(forward_head)(const struct attn *a, int64_t bh, real *work) {
  int64_t Br = a->Br, Bc = a->Bc, Dv = a->Dv, Tk = a->Tk;
  real *s = work, *o = s + Br * Bc, *m = o + Br * Dv, *l = m + Br;
  const real *vh = (const real *)a->v + bh * Tk * Dv;
  real *out = (real *)a->out + bh * a->Tq * Dv;
  real *lse = (real *)a->lse + bh * a->Tq;
  for (int64_t i0 = 0; i0 < a->Tq; i0 += Br) {
    int64_t br = a->Tq - i0 < Br ? a->Tq - i0 : Br;
    for (int64_t r = 0; r < br; r++) {
      m[r] = -INFINITY;
      l[r] = 0;
    }
    memset(o, 0, (size_t)(br * Dv) * sizeof(real));
    int64_t jend = a->causal && i0 + br < Tk ? i0 + br : Tk;
    for (int64_t j0 = 0; j0 < jend; j0 += Bc) {
      int64_t bc = jend - j0 < Bc ? jend - j0 : Bc;
      FN(block_scores)(a, bh, i0, br, j0, bc, s);
      for (int64_t r = 0; r < br; r++) {
        real *row = s + r * Bc, mx = m[r];
        for (int64_t c = 0; c < bc; c++)
          if (row[c] > mx)
            mx = row[c];
        if (mx == -INFINITY) { /* every key so far masked */
          memset(row, 0, (size_t)bc * sizeof(real));
          continue;
        }
        real alpha = EXP(m[r] - mx), sum = 0;
        for (int64_t c = 0; c < bc; c++) {
          row[c] = EXP(row[c] - mx);
          sum += row[c];
        }
        l[r] = l[r] * alpha + sum;
        m[r] = mx;
        if (alpha != 1)
          for (int64_t d = 0; d < Dv; d++)
            o[r * Dv + d] *= alpha;
        if (a->p > 0) {
          unsigned char keep[BLOCK_KEYS];
          dropout_row(a, bh, i0 + r, j0, bc, keep);
          FN(apply_dropout)(a, keep, bc, row);
        }
      }
      lg_gemm(a->dtype, false, false, br, Dv, bc, 1.0, s, Bc, vh + j0 * Dv,
              Dv, 1.0, o, Dv);
    }
    for (int64_t r = 0; r < br; r++) {
      real inv = l[r] > 0 ? 1 / l[r] : 0;
      for (int64_t d = 0; d < Dv; d++)
        out[(i0 + r) * Dv + d] = o[r * Dv + d] * inv;
      /* +inf for a fully masked row: exp(s - lse) is 0 in backward */
      lse[i0 + r] = l[r] > 0 ? m[r] + log(l[r]) : INFINITY;
    }
  }
}

/* work: p (Br x Bc), pz (Br x Bc), dp (Br x Bc), delta (Tq) */
static void FN(backward_head)(const struct attn *a, int64_t bh, real *work) {
  int64_t Br = a->Br, Bc = a->Bc, D = a->D, Dv = a->Dv, Tq = a->Tq,
          Tk = a->Tk;
  real *p = work, *pz = p + Br * Bc, *dp = pz + Br * Bc, *delta = dp + Br * Bc;
  unsigned char *keep = (unsigned char *)(delta + Tq); /* Br x Bc */
  const real *qh = (const real *)a->q + bh * Tq * D;
  const real *kh = (const real *)a->k + bh * Tk * D;
  const real *vh = (const real *)a->v + bh * Tk * Dv;
  const real *oh = (const real *)a->out + bh * Tq * Dv;
  const real *doh = (const real *)a->dout + bh * Tq * Dv;
  const real *lse = (const real *)a->lse + bh * Tq;
  real *dq = (real *)a->dq + bh * Tq * D, *dk = (real *)a->dk + bh * Tk * D,
       *dv = (real *)a->dv + bh * Tk * Dv;
  for (int64_t i = 0; i < Tq; i++) {
    real sum = 0;
    for (int64_t d = 0; d < Dv; d++)
      sum += doh[i * Dv + d] * oh[i * Dv + d];
    delta[i] = sum;
  }
  real keep_scale = a->p > 0 ? (real)(1.0 / (1.0 - a->p)) : 1;
  for (int64_t j0 = 0; j0 < Tk; j0 += Bc) {
    int64_t bc = Tk - j0 < Bc ? Tk - j0 : Bc;
    /* causal: queries before j0 see none of these keys */
    int64_t istart = a->causal ? j0 / Br * Br : 0;
    for (int64_t i0 = istart; i0 < Tq; i0 += Br) {
      int64_t br = Tq - i0 < Br ? Tq - i0 : Br;
      FN(block_scores)(a, bh, i0, br, j0, bc, p);
      for (int64_t r = 0; r < br; r++) {
        real *row = p + r * Bc, *rowz = pz + r * Bc, ls = lse[i0 + r];
        for (int64_t c = 0; c < bc; c++) {
          row[c] = EXP(row[c] - ls);
          rowz[c] = row[c];
        }
        if (a->p > 0) {
          dropout_row(a, bh, i0 + r, j0, bc, keep + r * Bc);
          FN(apply_dropout)(a, keep + r * Bc, bc, rowz);
        }
      }
      /* dV_j += (P Z)^T dO_i; dP = dO_i V_j^T */
      lg_gemm(a->dtype, true, false, bc, Dv, br, 1.0, pz, Bc, doh + i0 * Dv,
              Dv, 1.0, dv + j0 * Dv, Dv);
      lg_gemm(a->dtype, false, true, br, bc, Dv, 1.0, doh + i0 * Dv, Dv,
              vh + j0 * Dv, Dv, 0.0, dp, Bc);
      for (int64_t r = 0; r < br; r++) {
        real *row = p + r * Bc, *drow = dp + r * Bc, dl = delta[i0 + r];
        if (a->p > 0) {
          const unsigned char *kr = keep + r * Bc;
          for (int64_t c = 0; c < bc; c++)
            row[c] *= (kr[c] ? drow[c] * keep_scale : (real)0) - dl;
        } else {
          for (int64_t c = 0; c < bc; c++)
            row[c] *= drow[c] - dl;
        }
      }
      /* p now holds dS: dQ_i += scale dS K_j; dK_j += scale dS^T Q_i */
      lg_gemm(a->dtype, false, false, br, D, bc, a->scale, p, Bc,
              kh + j0 * D, D, 1.0, dq + i0 * D, D);
      lg_gemm(a->dtype, true, false, bc, D, br, a->scale, p, Bc, qh + i0 * D,
              D, 1.0, dk + j0 * D, D);
    }
  }
}

#undef EXP
#undef real
#undef FN
#undef CAT
#undef CAT2

#else /* the op itself */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "../nn.h"

#define SHAPE_BUF 192
#define BLOCK_KEYS 64
#define BLOCK_QUERIES 64
/* OpenBLAS runs a GEMM of m * n * k at most this on the calling thread */
#define GEMM_SERIAL_MNK 262144

/* what one call computes; every tensor contiguous */
struct attn {
  lg_dtype dtype;
  int64_t BH, Tq, Tk, D, Dv, Br, Bc;
  double scale;
  bool causal;
  /* mask broadcast to (batch..., Tq, Tk): offsets by strides (0 where
   * broadcast) */
  const void *mask;
  bool mask_bool;
  int nbatch;
  int64_t batch_shape[LG_MAX_DIMS], mask_bstride[LG_MAX_DIMS];
  int64_t msi, msj;
  /* dropout */
  double p;
  uint64_t seed, ctr;
  /* data */
  const void *q, *k, *v, *dout;
  void *out, *lse, *dq, *dk, *dv;
  size_t work_bytes;
  int failed; /* set (atomically) when a thread cannot get its work */
};

/* offset into the mask of head bh (its batch index, row-major) */
static int64_t mask_offset(const struct attn *a, int64_t bh) {
  int64_t off = 0;
  for (int d = a->nbatch - 1; d >= 0; d--) {
    off += (bh % a->batch_shape[d]) * a->mask_bstride[d];
    bh /= a->batch_shape[d];
  }
  return off;
}

/* keep[c] for keys j0 .. j0 + n - 1 of row (bh, i): element e = (bh * Tq
 * + i) * Tk + j of the weights is kept when word e % 4 of Philox block
 * ctr + e / 4, as a uniform in [0, 1), is at least p; one block serves
 * four neighbours */
static void dropout_row(const struct attn *a, int64_t bh, int64_t i,
                        int64_t j0, int64_t n, unsigned char *keep) {
  uint64_t e = ((uint64_t)bh * (uint64_t)a->Tq + (uint64_t)i) *
                   (uint64_t)a->Tk +
               (uint64_t)j0;
  uint32_t w[4];
  for (int64_t c = 0; c < n; c++, e++) {
    if (c == 0 || e % 4 == 0)
      lg_philox_block(a->seed, a->ctr + e / 4, w);
    keep[c] = (double)w[e % 4] * (1.0 / 4294967296.0) >= a->p;
  }
}

#define ATTN_REAL float
#define ATTN_SUF f32
#include "attention.c"
#undef ATTN_REAL
#undef ATTN_SUF
#define ATTN_REAL double
#define ATTN_SUF f64
#include "attention.c"
#undef ATTN_REAL
#undef ATTN_SUF

/* runs the heads begin .. end - 1 forward, or backward when a->dout is
 * set, with one work buffer */
static void heads_range(void *ctx, int64_t begin, int64_t end) {
  struct attn *a = ctx;
  lg_thread_register(); /* a pool worker's cached blocks go at its exit */
  void *work = lg_alloc(a->work_bytes);
  if (!work) {
    __atomic_store_n(&a->failed, 1, __ATOMIC_RELAXED);
    return;
  }
  bool f32 = a->dtype == LG_FLOAT32;
  for (int64_t bh = begin; bh < end; bh++) {
    if (!a->dout && f32)
      forward_head_f32(a, bh, work);
    else if (!a->dout)
      forward_head_f64(a, bh, work);
    else if (f32)
      backward_head_f32(a, bh, work);
    else
      backward_head_f64(a, bh, work);
  }
  lg_free(work, a->work_bytes);
}

/* heads per chunk, so that a chunk has some tens of thousands of
 * multiply-adds */
static int64_t head_grain(const struct attn *a) {
  int64_t per = a->Tq * a->Tk * (a->D + a->Dv);
  return per >= 65536 ? 1 : 65536 / (per > 0 ? per : 1);
}

static int run_heads(struct attn *a, size_t work_elems) {
  a->work_bytes = work_elems * lg_dtype_size(a->dtype);
  a->failed = 0;
  lg_parallel_for(a->BH, head_grain(a), heads_range, a);
  if (a->failed) {
    lg_seterr("scaled_dot_product_attention: out of memory for the work "
              "blocks");
    return -1;
  }
  return 0;
}

/* ---- node state ---- */

/* what backward needs besides q, k, v and out (saved in the node) */
struct attn_state {
  lg_tensor *lse;  /* (BH, Tq) */
  lg_tensor *mask; /* as used (converted to q's dtype when float), or NULL */
  bool causal;
  double scale, p;
  uint64_t seed, ctr;
};

static void attn_state_free(void *ctx) {
  struct attn_state *st = ctx;
  lg_release(st->lse);
  lg_release(st->mask);
  free(st);
}

/* ---- checks ---- */

static int fail_shapes(const char *what, const lg_tensor *a, const char *wb,
                       const lg_tensor *b) {
  char sa[SHAPE_BUF], sb[SHAPE_BUF];
  lg_seterr("scaled_dot_product_attention: %s %s and %s %s", what,
            lg_shape_str(a, sa, sizeof sa), wb, lg_shape_str(b, sb, sizeof sb));
  return -1;
}

static int check_inputs(lg_tensor *q, lg_tensor *k, lg_tensor *v) {
  const char *fn = "scaled_dot_product_attention";
  lg_tensor *ts[3] = {q, k, v};
  const char *names[3] = {"query", "key", "value"};
  for (int i = 0; i < 3; i++) {
    char s[SHAPE_BUF];
    if (!lg_dtype_is_float(ts[i]->dtype)) {
      lg_seterr("%s: %s must be float32 or float64 (got %s)", fn, names[i],
                lg_dtype_name(ts[i]->dtype));
      return -1;
    }
    if (ts[i]->ndim < 2) {
      lg_seterr("%s: %s must be (..., T, D), at least 2-d (got %s)", fn,
                names[i], lg_shape_str(ts[i], s, sizeof s));
      return -1;
    }
  }
  if (k->dtype != q->dtype || v->dtype != q->dtype) {
    lg_seterr("%s: query, key and value must have one dtype (got %s, %s, %s)",
              fn, lg_dtype_name(q->dtype), lg_dtype_name(k->dtype),
              lg_dtype_name(v->dtype));
    return -1;
  }
  int n = q->ndim;
  if (k->ndim != n)
    return fail_shapes("query and key need the same number of dimensions: "
                       "query",
                       q, "key", k);
  if (v->ndim != n)
    return fail_shapes("query and value need the same number of "
                       "dimensions: query",
                       q, "value", v);
  for (int d = 0; d < n - 2; d++) {
    if (k->shape[d] != q->shape[d])
      return fail_shapes("batch dimensions differ: query", q, "key", k);
    if (v->shape[d] != q->shape[d])
      return fail_shapes("batch dimensions differ: query", q, "value", v);
  }
  if (k->shape[n - 1] != q->shape[n - 1])
    return fail_shapes("query and key need the same last dimension: query",
                       q, "key", k);
  if (v->shape[n - 2] != k->shape[n - 2])
    return fail_shapes("key and value need the same length: key", k,
                       "value", v);
  if (q->shape[n - 1] < 1) {
    char s[SHAPE_BUF];
    lg_seterr("%s: the head dimension of query %s is 0", fn,
              lg_shape_str(q, s, sizeof s));
    return -1;
  }
  return 0;
}

/* the mask in the dtype the kernels read (bool, or q's float dtype), its
 * broadcast strides set in a; NULL with an error */
static lg_tensor *prepare_mask(struct attn *a, lg_tensor *mask, lg_tensor *q) {
  const char *fn = "scaled_dot_product_attention";
  int n = q->ndim;
  int64_t full[LG_MAX_DIMS];
  for (int d = 0; d < n - 2; d++)
    full[d] = q->shape[d];
  full[n - 2] = a->Tq;
  full[n - 1] = a->Tk;
  bool fits = mask->ndim <= n;
  for (int d = 0; fits && d < mask->ndim; d++) {
    int64_t ms = mask->shape[mask->ndim - 1 - d], fs = full[n - 1 - d];
    fits = ms == fs || ms == 1;
  }
  if (!fits) {
    char sm[SHAPE_BUF], sq[SHAPE_BUF], sf[SHAPE_BUF] = "[";
    for (int d = 0; d < n; d++)
      snprintf(sf + strlen(sf), sizeof sf - strlen(sf), "%s%lld",
               d ? "," : "", (long long)full[d]);
    strcat(sf, "]");
    lg_seterr("%s: attn_mask %s does not broadcast to the scores %s of "
              "query %s",
              fn, lg_shape_str(mask, sm, sizeof sm), sf,
              lg_shape_str(q, sq, sizeof sq));
    return NULL;
  }
  lg_tensor *m;
  bool was = lg_set_grad_enabled(false);
  if (mask->dtype == LG_BOOL || mask->dtype == q->dtype) {
    m = lg_retain(mask);
  } else if (lg_dtype_is_float(mask->dtype)) {
    m = lg_to_dtype(mask, q->dtype);
  } else {
    lg_seterr("%s: attn_mask must be bool or float (got %s)", fn,
              lg_dtype_name(mask->dtype));
    m = NULL;
  }
  lg_set_grad_enabled(was);
  if (!m)
    return NULL;
  int64_t strides[LG_MAX_DIMS];
  lg_broadcast_strides(m, n, full, strides);
  a->mask = (const char *)m->storage->data + m->offset * lg_dtype_size(m->dtype);
  a->mask_bool = m->dtype == LG_BOOL;
  for (int d = 0; d < n - 2; d++)
    a->mask_bstride[d] = strides[d];
  a->msi = strides[n - 2];
  a->msj = strides[n - 1];
  return m;
}

/* geometry shared by forward and backward */
static void set_geometry(struct attn *a, const lg_tensor *q,
                         const lg_tensor *k, const lg_tensor *v) {
  int n = q->ndim;
  a->dtype = q->dtype;
  a->nbatch = n - 2;
  a->BH = 1;
  for (int d = 0; d < n - 2; d++) {
    a->batch_shape[d] = q->shape[d];
    a->BH *= q->shape[d];
  }
  a->Tq = q->shape[n - 2];
  a->Tk = k->shape[n - 2];
  a->D = q->shape[n - 1];
  a->Dv = v->shape[n - 1];
  int64_t widest = a->D > a->Dv ? a->D : a->Dv;
  a->Bc = BLOCK_KEYS;
  a->Br = GEMM_SERIAL_MNK / (a->Bc * (widest > 0 ? widest : 1));
  if (a->Br > BLOCK_QUERIES)
    a->Br = BLOCK_QUERIES;
  if (a->Br < 8)
    a->Br = 8;
}

static lg_tensor *contig_nograd(lg_tensor *t, lg_dtype d) {
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c;
  if (t->dtype != d) {
    lg_tensor *x = lg_to_dtype(t, d);
    c = x ? lg_contiguous(x) : NULL;
    lg_release(x);
  } else {
    c = lg_contiguous(t);
  }
  lg_set_grad_enabled(was);
  return c;
}

/* ---- backward ---- */

static int attention_backward(lg_node *node, lg_tensor *grad_out,
                              lg_tensor **grads) {
  struct attn_state *st = node->ctx;
  lg_tensor *q = lg_node_saved(node, 0), *k = lg_node_saved(node, 1),
            *v = lg_node_saved(node, 2), *out = lg_node_saved(node, 3);
  if (!q || !k || !v || !out)
    return -1;
  struct attn a = {0};
  set_geometry(&a, q, k, v);
  a.scale = st->scale;
  a.causal = st->causal;
  a.p = st->p;
  a.seed = st->seed;
  a.ctr = st->ctr;
  if (st->mask) { /* sets a's mask fields; st keeps the mask alive */
    lg_tensor *m = prepare_mask(&a, st->mask, q);
    if (!m)
      return -1;
    lg_release(m);
  }
  lg_tensor *dout = contig_nograd(grad_out, q->dtype);
  lg_tensor *dq = lg_zeros_like(q), *dk = lg_zeros_like(k),
            *dv = lg_zeros_like(v);
  int rc = -1;
  if (dout && dq && dk && dv) {
    a.q = lg_data_ptr(q);
    a.k = lg_data_ptr(k);
    a.v = lg_data_ptr(v);
    a.out = lg_data_ptr(out);
    a.lse = lg_data_ptr(st->lse);
    a.dout = lg_data_ptr(dout);
    a.dq = lg_data_ptr(dq);
    a.dk = lg_data_ptr(dk);
    a.dv = lg_data_ptr(dv);
    /* p, pz, dp, delta, then Br x Bc bytes of dropout decisions */
    size_t elems = (size_t)(3 * a.Br * a.Bc + a.Tq) +
                   ((size_t)(a.Br * a.Bc) + lg_dtype_size(a.dtype) - 1) /
                       lg_dtype_size(a.dtype);
    rc = run_heads(&a, elems);
  }
  lg_tensor *res[3] = {dq, dk, dv};
  for (int i = 0; i < 3; i++) {
    if (rc == 0 && node->needs_grad[i])
      grads[i] = res[i];
    else
      lg_release(res[i]);
  }
  lg_release(dout);
  return rc;
}
/* under create_graph, a second derivative raises instead of being 0 */
ONCE_DIFFERENTIABLE(attention_backward)

/* ---- forward ---- */

lg_tensor *lg_scaled_dot_product_attention(lg_tensor *q, lg_tensor *k,
                                           lg_tensor *v,
                                           const lg_sdpa_opts *o) {
  const char *fn = "scaled_dot_product_attention";
  lg_sdpa_opts defaults = LG_SDPA_DEFAULTS;
  if (!o)
    o = &defaults;
  if (check_inputs(q, k, v))
    return NULL;
  if (!(o->dropout_p >= 0 && o->dropout_p <= 1)) {
    lg_seterr("%s: dropout_p must be in [0, 1] (got %g)", fn, o->dropout_p);
    return NULL;
  }
  if (o->is_causal && o->attn_mask) {
    lg_seterr("%s: pass either attn_mask or is_causal, not both", fn);
    return NULL;
  }
  if (!isnan(o->scale) && !isfinite(o->scale)) {
    lg_seterr("%s: scale must be finite (got %g)", fn, o->scale);
    return NULL;
  }
  struct attn a = {0};
  set_geometry(&a, q, k, v);
  a.scale = isnan(o->scale) ? 1.0 / sqrt((double)a.D) : o->scale;
  a.causal = o->is_causal;
  a.p = o->dropout_p;
  int64_t oshape[LG_MAX_DIMS];
  for (int d = 0; d < q->ndim - 1; d++)
    oshape[d] = q->shape[d];
  oshape[q->ndim - 1] = a.Dv;
  if (lg_check_shape(fn, q->ndim, oshape))
    return NULL;
  lg_tensor *mask = NULL;
  if (o->attn_mask && !(mask = prepare_mask(&a, o->attn_mask, q)))
    return NULL;
  if (a.p >= 1) { /* every weight dropped: a masked-out output */
    lg_tensor *z = lg_zeros(q->dtype, q->ndim, oshape);
    lg_release(mask);
    return z;
  }
  if (a.p > 0) {
    uint64_t n = (uint64_t)a.BH * (uint64_t)a.Tq * (uint64_t)a.Tk;
    a.ctr = lg_generator_reserve(o->gen, (n + 3) / 4, &a.seed);
  }
  lg_tensor *qc = contig_nograd(q, q->dtype), *kc = contig_nograd(k, q->dtype),
            *vc = contig_nograd(v, q->dtype);
  lg_tensor *out = lg_empty(q->dtype, q->ndim, oshape);
  lg_tensor *lse = lg_empty(q->dtype, 2, (int64_t[]){a.BH, a.Tq});
  if (!qc || !kc || !vc || !out || !lse)
    goto fail;
  a.q = lg_data_ptr(qc);
  a.k = lg_data_ptr(kc);
  a.v = lg_data_ptr(vc);
  a.out = lg_data_ptr(out);
  a.lse = lg_data_ptr(lse);
  if (run_heads(&a, (size_t)(a.Br * a.Bc + a.Br * a.Dv + 2 * a.Br)))
    goto fail;
  lg_tensor *ins[3] = {q, k, v};
  if (lg_grad_enabled() && lg_any_requires_grad(3, ins)) {
    struct attn_state *st = calloc(1, sizeof *st);
    lg_node *node = st ? lg_record(out, fn, attention_backward_once, 3, ins) : NULL;
    if (!node) {
      if (!st)
        lg_seterr("%s: out of memory", fn);
      free(st);
      goto fail;
    }
    st->lse = lse;
    st->mask = mask;
    st->causal = a.causal;
    st->scale = a.scale;
    st->p = a.p;
    st->seed = a.seed;
    st->ctr = a.ctr;
    node->ctx = st;
    node->ctx_free = attn_state_free;
    lse = mask = NULL;
    if (lg_node_save(node, qc) || lg_node_save(node, kc) ||
        lg_node_save(node, vc) || lg_node_save(node, out))
      goto fail;
  }
  lg_release(qc);
  lg_release(kc);
  lg_release(vc);
  lg_release(lse);
  lg_release(mask);
  return out;
fail:
  lg_release(qc);
  lg_release(kc);
  lg_release(vc);
  lg_release(out);
  lg_release(lse);
  lg_release(mask);
  return NULL;
}

#endif
