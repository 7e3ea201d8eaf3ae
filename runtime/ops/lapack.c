/*
 * lapack.c -- lg.linalg over the LAPACK routines of the BLAS library
 * found at run time (OpenBLAS exports them; dlopen'd as blas.c does for
 * cblas_sgemm): inv solve cholesky qr svd svdvals eigh det slogdet lstsq.
 *
 * Every op works on the last two dims and batches over the others.  The
 * matrices are copied into float64 column-major buffers (LAPACK's layout)
 * and the double-precision routines run on them, for float32 inputs too;
 * results come back in the input's dtype.  A failure (singular matrix,
 * not positive definite, no convergence) is an error naming the op and
 * the batch element, never NaNs.
 *
 * Gradients follow PyTorch's formulas and are written with differentiable
 * ops (matmul, the linalg ops themselves), so inv, solve, cholesky, det
 * and slogdet are differentiable again; eigh, qr, svd values and lstsq
 * give first-order gradients and refuse create_graph.
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

/* ---- the routines, found at first use ---- */

typedef void (*getrf_t)(const int *, const int *, double *, const int *,
                        int *, int *);
typedef void (*getri_t)(const int *, double *, const int *, const int *,
                        double *, const int *, int *);
typedef void (*gesv_t)(const int *, const int *, double *, const int *, int *,
                       double *, const int *, int *);
typedef void (*potrf_t)(const char *, const int *, double *, const int *,
                        int *, size_t);
typedef void (*geqrf_t)(const int *, const int *, double *, const int *,
                        double *, double *, const int *, int *);
typedef void (*orgqr_t)(const int *, const int *, const int *, double *,
                        const int *, const double *, double *, const int *,
                        int *);
typedef void (*gesdd_t)(const char *, const int *, const int *, double *,
                        const int *, double *, double *, const int *,
                        double *, const int *, double *, const int *, int *,
                        int *, size_t);
typedef void (*syevd_t)(const char *, const char *, const int *, double *,
                        const int *, double *, double *, const int *, int *,
                        const int *, int *, size_t, size_t);
typedef void (*gelsd_t)(const int *, const int *, const int *, double *,
                        const int *, double *, const int *, double *,
                        const double *, int *, double *, const int *, int *,
                        int *);

static struct {
  getrf_t getrf;
  getri_t getri;
  gesv_t gesv;
  potrf_t potrf;
  geqrf_t geqrf;
  orgqr_t orgqr;
  gesdd_t gesdd;
  syevd_t syevd;
  gelsd_t gelsd;
} lapack;
static pthread_once_t lapack_once = PTHREAD_ONCE_INIT;

static void lapack_load(void) {
  static const char *const names[] = {"libopenblas.so.0", "libopenblas.so",
                                      "liblapack.so.3", NULL};
  for (int i = 0; names[i]; i++) {
    void *h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!h)
      continue;
    *(void **)&lapack.getrf = dlsym(h, "dgetrf_");
    *(void **)&lapack.getri = dlsym(h, "dgetri_");
    *(void **)&lapack.gesv = dlsym(h, "dgesv_");
    *(void **)&lapack.potrf = dlsym(h, "dpotrf_");
    *(void **)&lapack.geqrf = dlsym(h, "dgeqrf_");
    *(void **)&lapack.orgqr = dlsym(h, "dorgqr_");
    *(void **)&lapack.gesdd = dlsym(h, "dgesdd_");
    *(void **)&lapack.syevd = dlsym(h, "dsyevd_");
    *(void **)&lapack.gelsd = dlsym(h, "dgelsd_");
    if (lapack.getrf && lapack.getri && lapack.gesv && lapack.potrf &&
        lapack.geqrf && lapack.orgqr && lapack.gesdd && lapack.syevd &&
        lapack.gelsd)
      return;
    memset(&lapack, 0, sizeof lapack);
  }
}

static int need_lapack(const char *name) {
  pthread_once(&lapack_once, lapack_load);
  if (!lapack.getrf) {
    lg_seterr("%s: LAPACK not found (install libopenblas0 or liblapack3; "
              "lgrad looks for dgetrf_ and friends in libopenblas.so.0 and "
              "liblapack.so.3 at run time)",
              name);
    return -1;
  }
  return 0;
}

/* ---- batches of matrices in column-major float64 ---- */

typedef struct {
  int64_t nb, m, n; /* nb matrices of m x n */
  int bnd;          /* batch dims */
  int64_t bshape[LG_MAX_DIMS];
  double *data; /* nb * m * n, column-major per matrix */
} mats;

static void mats_free(mats *a) {
  free(a->data);
  a->data = NULL;
}

static int check_matrix(const char *name, const lg_tensor *t, bool square) {
  char b[200];
  if (t->ndim < 2) {
    lg_seterr("%s: needs a matrix or a batch of matrices (..., m, n), got "
              "%s",
              name, lg_shape_str(t, b, sizeof b));
    return -1;
  }
  if (!lg_dtype_is_float(t->dtype)) {
    lg_seterr("%s: needs a float32 or float64 tensor, got %s", name,
              lg_dtype_name(t->dtype));
    return -1;
  }
  if (square && t->shape[t->ndim - 1] != t->shape[t->ndim - 2]) {
    lg_seterr("%s: needs square matrices, got %s", name,
              lg_shape_str(t, b, sizeof b));
    return -1;
  }
  if (t->shape[t->ndim - 1] > (1 << 20) || t->shape[t->ndim - 2] > (1 << 20)) {
    lg_seterr("%s: matrix too large", name);
    return -1;
  }
  return 0;
}

static int mats_alloc(mats *a, const char *name, int bnd,
                      const int64_t *bshape, int64_t m, int64_t n) {
  a->bnd = bnd;
  a->nb = 1;
  for (int i = 0; i < bnd; i++) {
    a->bshape[i] = bshape[i];
    a->nb *= bshape[i];
  }
  a->m = m;
  a->n = n;
  size_t count = (size_t)(a->nb * m * n);
  a->data = malloc((count ? count : 1) * sizeof(double));
  if (!a->data) {
    lg_seterr("%s: out of memory", name);
    return -1;
  }
  return 0;
}

static int pack(mats *a, const char *name, lg_tensor *t) {
  int nd = t->ndim;
  if (mats_alloc(a, name, nd - 2, t->shape, t->shape[nd - 2],
                 t->shape[nd - 1]))
    return -1;
  bool was = lg_set_grad_enabled(false);
  lg_tensor *d = lg_to_dtype(t, LG_FLOAT64);
  lg_tensor *c = d ? lg_contiguous(d) : NULL;
  lg_release(d);
  lg_set_grad_enabled(was);
  if (!c) {
    mats_free(a);
    return -1;
  }
  const double *p = lg_data_ptr(c);
  int64_t m = a->m, n = a->n;
  for (int64_t b = 0; b < a->nb; b++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++)
        a->data[b * m * n + j * m + i] = p[b * m * n + i * n + j];
  lg_release(c);
  return 0;
}

/* the start of most functions here: a (square) float matrix or batch of
 * them, LAPACK present, packed column-major into m */
static int pack_matrix(mats *m, const char *name, lg_tensor *a, bool square) {
  if (check_matrix(name, a, square) || need_lapack(name))
    return -1;
  return pack(m, name, a);
}

/* o (float64, owned) as dtype d, outside the graph */
static lg_tensor *as_dtype(lg_tensor *o, lg_dtype d) {
  if (!o || d == LG_FLOAT64)
    return o;
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c = lg_to_dtype(o, d);
  lg_set_grad_enabled(was);
  lg_release(o);
  return c;
}

/* the solution of a system whose right-hand side was a vector: drops the
 * column dimension it was solved with */
static lg_tensor *as_vector_if(lg_tensor *out, bool vec) {
  if (!out || !vec)
    return out;
  lg_tensor *sq = lg_squeeze(out, -1);
  lg_release(out);
  return sq;
}

/* a tensor of dtype d, shape (batch..., rows, cols) from the top-left
 * rows x cols of each column-major matrix (leading dimension ld) */
static lg_tensor *unpack(const mats *a, lg_dtype d, int64_t rows,
                         int64_t cols, int64_t ld, int64_t stride) {
  int64_t shape[LG_MAX_DIMS];
  memcpy(shape, a->bshape, a->bnd * sizeof *shape);
  shape[a->bnd] = rows;
  shape[a->bnd + 1] = cols;
  lg_tensor *o = lg_empty(LG_FLOAT64, a->bnd + 2, shape);
  if (!o)
    return NULL;
  double *p = lg_data_ptr(o);
  for (int64_t b = 0; b < a->nb; b++)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++)
        p[(b * rows + i) * cols + j] = a->data[b * stride + j * ld + i];
  return as_dtype(o, d);
}

/* a (batch..., len) tensor of dtype d from nb vectors of len doubles */
static lg_tensor *unpack_vec(const mats *a, lg_dtype d, const double *v,
                             int64_t len) {
  int64_t shape[LG_MAX_DIMS];
  memcpy(shape, a->bshape, a->bnd * sizeof *shape);
  shape[a->bnd] = len;
  lg_tensor *o = lg_empty(LG_FLOAT64, a->bnd + 1, shape);
  if (!o)
    return NULL;
  memcpy(lg_data_ptr(o), v, (size_t)(a->nb * len) * sizeof *v);
  return as_dtype(o, d);
}

/* "the matrix" or "batch element 3" for messages */
static const char *which(const mats *a, int64_t b) {
  static LG_THREAD char buf[64];
  if (a->bnd == 0)
    return "the matrix";
  snprintf(buf, sizeof buf, "batch element %lld", (long long)b + 1);
  return buf;
}

static int lapack_int(const char *name, int64_t v) {
  if (v > 0x7fffffff) {
    lg_seterr("%s: matrix too large for LAPACK", name);
    return -1;
  }
  return 0;
}

/* helpers written with differentiable ops */
static lg_tensor *mT(lg_tensor *t) { return lg_transpose(t, -2, -1); }

static lg_tensor *mm3(lg_tensor *a, lg_tensor *b, lg_tensor *c) {
  lg_tensor *ab = lg_matmul(a, b);
  lg_tensor *r = ab ? lg_matmul(ab, c) : NULL;
  lg_release(ab);
  return r;
}

static int no_double_backward(const char *name) {
  if (lg_grad_enabled()) {
    lg_seterr("%s: this gradient is not differentiable again "
              "(create_graph)",
              name);
    return -1;
  }
  return 0;
}

/* saves a detached header of t: one output saving its sibling must not
 * hold the sibling's node (the two would keep each other alive) */
static int save_plain(lg_node *node, lg_tensor *t) {
  lg_tensor *d = lg_detach(t);
  int rc = d ? lg_node_save(node, d) : -1;
  lg_release(d);
  return rc;
}

/* (..., n) -> (..., n, n) with v on the diagonal */
static lg_tensor *diag_embed_last(lg_tensor *v) {
  int64_t n = v->shape[v->ndim - 1];
  lg_tensor *eye = lg_eye(v->dtype, n, n);
  lg_tensor *row = eye ? lg_unsqueeze(v, -2) : NULL;
  lg_tensor *out = row ? lg_binary(LG_OP_MUL, row, eye) : NULL;
  lg_release(eye);
  lg_release(row);
  return out;
}

/* ---- inv ---- */

/* d inv(A) = -inv(A) dA inv(A): gA = -inv^T g inv^T */
static int inv_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *x = lg_node_saved(n, 0);
  lg_tensor *xt = x ? mT(x) : NULL;
  lg_tensor *p = xt ? mm3(xt, g, xt) : NULL;
  grads[0] = p ? lg_unary(LG_OP_NEG, p) : NULL;
  lg_release(p);
  lg_release(xt);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_linalg_inv(lg_tensor *a) {
  const char *name = "inv";
  mats m;
  if (pack_matrix(&m, name, a, true))
    return NULL;
  int n = (int)m.n, info = 0, lwork = -1;
  int *ipiv = malloc((n ? n : 1) * sizeof *ipiv);
  double wq, *work = NULL;
  int rc = ipiv ? 0 : -1;
  if (!rc && n > 0) {
    lapack.getri(&n, m.data, &n, ipiv, &wq, &lwork, &info);
    lwork = (int)wq > n ? (int)wq : n;
    if (!(work = malloc(lwork * sizeof *work)))
      rc = -1;
  }
  if (rc)
    lg_seterr("%s: out of memory", name);
  for (int64_t b = 0; !rc && b < m.nb && n > 0; b++) {
    double *p = m.data + b * n * n;
    lapack.getrf(&n, &n, p, &n, ipiv, &info);
    if (info > 0) {
      lg_seterr("%s: %s is singular (U[%d,%d] is zero)", name, which(&m, b),
                info, info);
      rc = -1;
      break;
    }
    lapack.getri(&n, p, &n, ipiv, work, &lwork, &info);
    if (info) {
      lg_seterr("%s: %s is singular", name, which(&m, b));
      rc = -1;
    }
  }
  free(work);
  free(ipiv);
  lg_tensor *out = rc ? NULL : unpack(&m, a->dtype, n, n, n, (int64_t)n * n);
  mats_free(&m);
  if (out) {
    lg_node *node = lg_record(out, "inv", inv_backward, 1, &a);
    if (node && lg_node_save(node, out)) {
      lg_release(out);
      return NULL;
    }
  }
  return out;
}

/* ---- solve: A X = B ---- */

/* B is a vector (batch) when vec; its shape for reducing gB */
struct solve_state {
  bool vec;
  int bndim;
  int64_t bshape[LG_MAX_DIMS];
};
#define SOLVE(n) LG_NODE_STATE(n, struct solve_state)

/* gB = solve(A^T, g); gA = -gB X^T */
static int solve_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *a = lg_node_saved(n, 0), *x = lg_node_saved(n, 1);
  if (!a || !x)
    return -1;
  bool vec = SOLVE(n)->vec;
  lg_tensor *at = mT(a);
  lg_tensor *gb = at ? lg_linalg_solve(at, g) : NULL;
  lg_release(at);
  if (!gb)
    return -1;
  if (n->needs_grad[0]) {
    lg_tensor *gbm = vec ? lg_unsqueeze(gb, -1) : lg_retain(gb);
    lg_tensor *xm = vec ? lg_unsqueeze(x, -1) : lg_retain(x);
    lg_tensor *xt = xm ? mT(xm) : NULL;
    lg_tensor *p = gbm && xt ? lg_matmul(gbm, xt) : NULL;
    lg_tensor *neg = p ? lg_unary(LG_OP_NEG, p) : NULL;
    grads[0] = neg ? lg_sum_to(neg, n->ninput_shape, n->input_shape) : NULL;
    lg_release(gbm);
    lg_release(xm);
    lg_release(xt);
    lg_release(p);
    lg_release(neg);
    if (!grads[0]) {
      lg_release(gb);
      return -1;
    }
  }
  if (n->needs_grad[1]) {
    grads[1] = lg_sum_to(gb, SOLVE(n)->bndim, SOLVE(n)->bshape);
    lg_release(gb);
    return grads[1] ? 0 : -1;
  }
  lg_release(gb);
  return 0;
}

lg_tensor *lg_linalg_solve(lg_tensor *a, lg_tensor *b) {
  const char *name = "solve";
  char s1[200], s2[200];
  if (check_matrix(name, a, true) || need_lapack(name))
    return NULL;
  if (!lg_dtype_is_float(b->dtype) || b->ndim < 1) {
    lg_seterr("%s: B must be a float vector or matrix, got %s %s", name,
              lg_shape_str(b, s2, sizeof s2), lg_dtype_name(b->dtype));
    return NULL;
  }
  /* B is a (batch of) vector(s) when it has one dim less than A */
  bool vec = b->ndim == a->ndim - 1 || b->ndim == 1;
  int64_t n = a->shape[a->ndim - 1];
  lg_tensor *bm = vec ? lg_unsqueeze(b, -1) : lg_retain(b);
  if (!bm)
    return NULL;
  if (bm->shape[bm->ndim - 2] != n) {
    lg_seterr("%s: A %s and B %s do not fit (A's size %lld against B's "
              "%lld)",
              name, lg_shape_str(a, s1, sizeof s1),
              lg_shape_str(b, s2, sizeof s2), (long long)n,
              (long long)bm->shape[bm->ndim - 2]);
    lg_release(bm);
    return NULL;
  }
  /* broadcast the batch dims */
  lg_tensor ab = *a, bb = *bm;
  ab.ndim = a->ndim - 2;
  bb.ndim = bm->ndim - 2;
  int nd;
  int64_t bs[LG_MAX_DIMS];
  int rc = lg_broadcast_shape(name, &ab, &bb, &nd, bs);
  lg_tensor *ae = NULL, *be = NULL;
  if (!rc) {
    int64_t sa[LG_MAX_DIMS], sb[LG_MAX_DIMS];
    memcpy(sa, bs, nd * sizeof *bs);
    memcpy(sb, bs, nd * sizeof *bs);
    sa[nd] = sa[nd + 1] = n;
    sb[nd] = n;
    sb[nd + 1] = bm->shape[bm->ndim - 1];
    bool was = lg_set_grad_enabled(false);
    ae = lg_expand(a, nd + 2, sa);
    be = ae ? lg_expand(bm, nd + 2, sb) : NULL;
    lg_set_grad_enabled(was);
  }
  mats ma = {0}, mb = {0};
  lg_tensor *out = NULL;
  if (be && !pack(&ma, name, ae) && !pack(&mb, name, be) &&
      !lapack_int(name, n)) {
    int ni = (int)n, k = (int)mb.n, info = 0;
    int *ipiv = malloc((ni ? ni : 1) * sizeof *ipiv);
    rc = ipiv ? 0 : -1;
    for (int64_t i = 0; !rc && i < ma.nb && ni > 0; i++) {
      lapack.gesv(&ni, &k, ma.data + i * n * n, &ni, ipiv,
                  mb.data + i * n * k, &ni, &info);
      if (info > 0) {
        lg_seterr("%s: %s of A is singular (U[%d,%d] is zero)", name,
                  which(&ma, i), info, info);
        rc = -1;
      }
    }
    if (!ipiv)
      lg_seterr("%s: out of memory", name);
    free(ipiv);
    if (!rc) {
      lg_dtype d = lg_promote(a->dtype, b->dtype);
      out = as_vector_if(unpack(&mb, d, n, mb.n, n, n * mb.n), vec);
    }
  }
  mats_free(&ma);
  mats_free(&mb);
  lg_release(ae);
  lg_release(be);
  lg_release(bm);
  if (out) {
    lg_tensor *in[2] = {a, b};
    lg_node *node = lg_record(out, "solve", solve_backward, 2, in);
    if (node) {
      SOLVE(node)->vec = vec;
      SOLVE(node)->bndim = b->ndim;
      memcpy(SOLVE(node)->bshape, b->shape, b->ndim * sizeof *b->shape);
      node->ninput_shape = a->ndim;
      memcpy(node->input_shape, a->shape, a->ndim * sizeof *a->shape);
      if (lg_node_save(node, a) || lg_node_save(node, out)) {
        lg_release(out);
        return NULL;
      }
    }
  }
  return out;
}

/* ---- cholesky ---- */

/* P = tril(L^T gL) with its diagonal halved; S = L^-T P L^-1;
 * gA = (S + S^T) / 2 */
/* cholesky's upper, qr's output (0: Q, 1: R), lstsq's vector B */
struct flag_state {
  bool flag;
};
#define FLAG(n) LG_NODE_STATE(n, struct flag_state)

static int cholesky_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *l = lg_node_saved(n, 0);
  if (!l)
    return -1;
  bool upper = FLAG(n)->flag;
  lg_tensor *lo = upper ? mT(l) : lg_retain(l);
  lg_tensor *gl = upper ? mT(g) : lg_retain(g);
  lg_tensor *lt = lo ? mT(lo) : NULL;
  lg_tensor *p = lt && gl ? lg_matmul(lt, gl) : NULL;
  lg_tensor *pl = p ? lg_tri(p, 0, false) : NULL;
  lg_tensor *ps = p ? lg_tri(p, -1, false) : NULL;
  lg_tensor *sum = pl && ps ? lg_binary(LG_OP_ADD, pl, ps) : NULL;
  lg_tensor *phi = sum ? lg_binary_scalar(LG_OP_MUL, sum, 0.5, false) : NULL;
  lg_tensor *li = phi ? lg_linalg_inv(lo) : NULL;
  lg_tensor *lit = li ? mT(li) : NULL;
  lg_tensor *s = lit ? mm3(lit, phi, li) : NULL;
  lg_tensor *st = s ? mT(s) : NULL;
  lg_tensor *ss = st ? lg_binary(LG_OP_ADD, s, st) : NULL;
  grads[0] = ss ? lg_binary_scalar(LG_OP_MUL, ss, 0.5, false) : NULL;
  lg_tensor *tmp[] = {lo, gl, lt, p, pl, ps, sum, phi, li, lit, s, st, ss};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++)
    lg_release(tmp[i]);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_linalg_cholesky(lg_tensor *a, bool upper) {
  const char *name = "cholesky";
  mats m;
  if (pack_matrix(&m, name, a, true))
    return NULL;
  int n = (int)m.n, info = 0, rc = 0;
  for (int64_t b = 0; b < m.nb && n > 0; b++) {
    double *p = m.data + b * n * n;
    lapack.potrf("L", &n, p, &n, &info, 1);
    if (info > 0) {
      lg_seterr("%s: %s is not positive definite (the leading minor of "
                "order %d is not positive)",
                name, which(&m, b), info);
      rc = -1;
      break;
    }
    for (int j = 0; j < n; j++) /* zero the upper triangle */
      for (int i = 0; i < j; i++)
        p[j * n + i] = 0;
  }
  lg_tensor *out = rc ? NULL : unpack(&m, a->dtype, n, n, n, (int64_t)n * n);
  mats_free(&m);
  if (out && upper) {
    bool was = lg_set_grad_enabled(false);
    lg_tensor *t = mT(out);
    lg_tensor *c = t ? lg_contiguous(t) : NULL;
    lg_set_grad_enabled(was);
    lg_release(t);
    lg_release(out);
    out = c;
  }
  if (out) {
    lg_node *node = lg_record(out, "cholesky", cholesky_backward, 1, &a);
    if (node) {
      FLAG(node)->flag = upper;
      if (lg_node_save(node, out)) {
        lg_release(out);
        return NULL;
      }
    }
  }
  return out;
}

/* ---- det and slogdet, from an LU factorization ---- */

/* sign and log|det| of each matrix (log -inf, sign 0 when singular) */
static int lu_logdet(const char *name, lg_tensor *a, mats *m, double **sign,
                     double **logabs) {
  if (pack_matrix(m, name, a, true))
    return -1;
  int n = (int)m->n, info = 0;
  int *ipiv = malloc((n ? n : 1) * sizeof *ipiv);
  *sign = malloc((m->nb ? m->nb : 1) * sizeof **sign);
  *logabs = malloc((m->nb ? m->nb : 1) * sizeof **logabs);
  if (!ipiv || !*sign || !*logabs) {
    free(ipiv);
    free(*sign);
    free(*logabs);
    mats_free(m);
    lg_seterr("%s: out of memory", name);
    return -1;
  }
  for (int64_t b = 0; b < m->nb; b++) {
    double *p = m->data + b * n * n, s = 1, la = 0;
    if (n > 0)
      lapack.getrf(&n, &n, p, &n, ipiv, &info);
    for (int i = 0; i < n; i++) {
      double u = p[i * n + i];
      if (ipiv[i] != i + 1)
        s = -s;
      if (u < 0)
        s = -s;
      la += log(fabs(u));
    }
    if (n > 0 && info > 0) {
      s = 0;
      la = -INFINITY;
    }
    (*sign)[b] = s;
    (*logabs)[b] = la;
  }
  free(ipiv);
  return 0;
}

/* g_A = g det A^-T (through inv, so differentiable again) */
static int det_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *a = lg_node_saved(n, 0), *d = lg_node_saved(n, 1);
  if (!a || !d)
    return -1;
  lg_tensor *inv = lg_linalg_inv(a);
  if (!inv) {
    lg_seterr("det: backward of a singular matrix is not supported (%s)",
              lg_errmsg());
    return -1;
  }
  lg_tensor *it = mT(inv);
  lg_tensor *gd = it ? lg_binary(LG_OP_MUL, g, d) : NULL;
  lg_tensor *u1 = gd ? lg_unsqueeze(gd, -1) : NULL;
  lg_tensor *u2 = u1 ? lg_unsqueeze(u1, -1) : NULL;
  grads[0] = u2 ? lg_binary(LG_OP_MUL, u2, it) : NULL;
  lg_tensor *tmp[] = {inv, it, gd, u1, u2};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++)
    lg_release(tmp[i]);
  return grads[0] ? 0 : -1;
}

lg_tensor *lg_linalg_det(lg_tensor *a) {
  mats m;
  double *sign, *logabs;
  if (lu_logdet("det", a, &m, &sign, &logabs))
    return NULL;
  for (int64_t b = 0; b < m.nb; b++)
    sign[b] = sign[b] * exp(logabs[b]);
  lg_tensor *out = unpack_vec(&m, a->dtype, sign, 1);
  free(sign);
  free(logabs);
  mats_free(&m);
  lg_tensor *sq = out ? lg_squeeze(out, -1) : NULL;
  lg_release(out);
  if (sq) {
    lg_node *node = lg_record(sq, "det", det_backward, 1, &a);
    if (node && (lg_node_save(node, a) || lg_node_save(node, sq))) {
      lg_release(sq);
      return NULL;
    }
  }
  return sq;
}

/* g_A = g A^-T for log|det A| */
static int slogdet_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_tensor *a = lg_node_saved(n, 0);
  if (!a)
    return -1;
  lg_tensor *inv = lg_linalg_inv(a);
  if (!inv)
    return -1;
  lg_tensor *it = mT(inv);
  lg_tensor *u1 = it ? lg_unsqueeze(g, -1) : NULL;
  lg_tensor *u2 = u1 ? lg_unsqueeze(u1, -1) : NULL;
  grads[0] = u2 ? lg_binary(LG_OP_MUL, u2, it) : NULL;
  lg_tensor *tmp[] = {inv, it, u1, u2};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++)
    lg_release(tmp[i]);
  return grads[0] ? 0 : -1;
}

int lg_linalg_slogdet(lg_tensor *a, lg_tensor **sign, lg_tensor **logabs) {
  mats m;
  double *s, *la;
  *sign = *logabs = NULL;
  if (lu_logdet("slogdet", a, &m, &s, &la))
    return -1;
  lg_tensor *so = unpack_vec(&m, a->dtype, s, 1);
  lg_tensor *lo = so ? unpack_vec(&m, a->dtype, la, 1) : NULL;
  free(s);
  free(la);
  mats_free(&m);
  *sign = so ? lg_squeeze(so, -1) : NULL;
  *logabs = lo ? lg_squeeze(lo, -1) : NULL;
  lg_release(so);
  lg_release(lo);
  if (!*sign || !*logabs) {
    lg_release(*sign);
    lg_release(*logabs);
    *sign = *logabs = NULL;
    return -1;
  }
  lg_node *node = lg_record(*logabs, "slogdet", slogdet_backward, 1, &a);
  if (node && lg_node_save(node, a))
    return -1;
  return 0;
}

/* ---- qr (reduced) ---- */

/* for m >= n (PyTorch's formula): M = R gR^T - gQ^T Q,
 * gA = (gQ + Q copyltu(M)) R^-T, copyltu(M) = tril(M, -1) + tril(M)^T.
 * Linear in (gQ, gR): Q's node runs it with gR = 0, R's with gQ = 0. */
static int qr_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  if (no_double_backward("qr"))
    return -1;
  lg_tensor *q = lg_node_saved(n, 0), *r = lg_node_saved(n, 1);
  if (!q || !r)
    return -1;
  if (q->shape[q->ndim - 2] < r->shape[r->ndim - 1]) {
    lg_seterr("qr: the gradient needs m >= n (a tall or square matrix)");
    return -1;
  }
  bool for_r = FLAG(n)->flag;
  lg_tensor *zq = for_r ? lg_zeros_like(q) : lg_retain(g);
  lg_tensor *zr = for_r ? lg_retain(g) : lg_zeros_like(r);
  lg_tensor *grt = zr && zq ? mT(zr) : NULL;
  lg_tensor *rg = grt ? lg_matmul(r, grt) : NULL;
  lg_tensor *gqt = rg ? mT(zq) : NULL;
  lg_tensor *gqq = gqt ? lg_matmul(gqt, q) : NULL;
  lg_tensor *mm = gqq ? lg_binary(LG_OP_SUB, rg, gqq) : NULL;
  lg_tensor *low = mm ? lg_tri(mm, -1, false) : NULL;
  lg_tensor *lt = mm ? lg_tri(mm, 0, false) : NULL;
  lg_tensor *ltt = lt ? mT(lt) : NULL;
  lg_tensor *cm = ltt ? lg_binary(LG_OP_ADD, low, ltt) : NULL;
  lg_tensor *qc = cm ? lg_matmul(q, cm) : NULL;
  lg_tensor *b = qc ? lg_binary(LG_OP_ADD, zq, qc) : NULL;
  /* b R^-T = solve(R, b^T)^T */
  lg_tensor *bt = b ? mT(b) : NULL;
  lg_tensor *x = bt ? lg_linalg_solve(r, bt) : NULL;
  grads[0] = x ? mT(x) : NULL;
  lg_tensor *tmp[] = {zq, zr, grt, rg, gqt, gqq, mm, low, lt, ltt, cm, qc,
                      b, bt, x};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++)
    lg_release(tmp[i]);
  return grads[0] ? 0 : -1;
}

int lg_linalg_qr(lg_tensor *a, lg_tensor **q, lg_tensor **r) {
  const char *name = "qr";
  *q = *r = NULL;
  mats m;
  if (pack_matrix(&m, name, a, false))
    return -1;
  int mm = (int)m.m, nn = (int)m.n, k = mm < nn ? mm : nn, info = 0;
  int lwork = -1;
  double wq = 0, wq2 = 0;
  double *tau = malloc((k ? k : 1) * sizeof *tau), *work = NULL;
  int rc = tau ? 0 : -1;
  if (!rc && k > 0) {
    lapack.geqrf(&mm, &nn, m.data, &mm, tau, &wq, &lwork, &info);
    lapack.orgqr(&mm, &k, &k, m.data, &mm, tau, &wq2, &lwork, &info);
    lwork = (int)(wq > wq2 ? wq : wq2);
    if (lwork < nn)
      lwork = nn;
    if (!(work = malloc(lwork * sizeof *work)))
      rc = -1;
  }
  /* R from the upper triangle, then Q in place */
  mats rm = m;
  rm.data = NULL;
  if (!rc && mats_alloc(&rm, name, m.bnd, m.bshape, k, nn))
    rc = -1;
  for (int64_t b = 0; !rc && b < m.nb && k > 0; b++) {
    double *p = m.data + b * mm * nn;
    lapack.geqrf(&mm, &nn, p, &mm, tau, work, &lwork, &info);
    double *rp = rm.data + b * k * nn;
    for (int j = 0; j < nn; j++)
      for (int i = 0; i < k; i++)
        rp[j * k + i] = i <= j ? p[j * mm + i] : 0;
    lapack.orgqr(&mm, &k, &k, p, &mm, tau, work, &lwork, &info);
    if (info) {
      lg_seterr("%s: LAPACK failed on %s", name, which(&m, b));
      rc = -1;
    }
  }
  if (rc && !tau)
    lg_seterr("%s: out of memory", name);
  free(tau);
  free(work);
  if (!rc) {
    *q = unpack(&m, a->dtype, mm, k, mm, (int64_t)mm * nn);
    *r = *q ? unpack(&rm, a->dtype, k, nn, k, (int64_t)k * nn) : NULL;
  }
  mats_free(&m);
  mats_free(&rm);
  if (!*r) {
    lg_release(*q);
    *q = NULL;
    return -1;
  }
  for (int i = 0; i < 2; i++) {
    lg_node *node = lg_record(i ? *r : *q, "qr", qr_backward, 1, &a);
    if (node) {
      FLAG(node)->flag = i;
      if (save_plain(node, *q) || save_plain(node, *r))
        return -1;
    }
  }
  return 0;
}

/* ---- svd (reduced) and svdvals ---- */

static int svd_raw(const char *name, lg_tensor *a, bool vectors,
                   lg_tensor **u, lg_tensor **s, lg_tensor **vh) {
  *s = NULL;
  if (u)
    *u = *vh = NULL;
  mats m;
  if (pack_matrix(&m, name, a, false))
    return -1;
  int mm = (int)m.m, nn = (int)m.n, k = mm < nn ? mm : nn, info = 0;
  int lwork = -1;
  double wq = 0;
  const char *job = vectors ? "S" : "N";
  mats um = m, vm = m;
  um.data = vm.data = NULL;
  double *sv = malloc((size_t)(m.nb * k > 0 ? m.nb * k : 1) * sizeof *sv), *work = NULL;
  int *iwork = malloc((k ? 8 * k : 1) * sizeof *iwork);
  int rc = sv && iwork ? 0 : -1;
  if (!rc && (mats_alloc(&um, name, m.bnd, m.bshape, mm, k) ||
              mats_alloc(&vm, name, m.bnd, m.bshape, k, nn)))
    rc = -1;
  int ldvt = k ? k : 1, ldu = mm ? mm : 1;
  if (!rc && k > 0) {
    lapack.gesdd(job, &mm, &nn, m.data, &ldu, sv, um.data, &ldu, vm.data,
                 &ldvt, &wq, &lwork, iwork, &info, 1);
    lwork = (int)wq > 1 ? (int)wq : 1;
    if (!(work = malloc(lwork * sizeof *work)))
      rc = -1;
  }
  if (rc && !um.data)
    lg_seterr("%s: out of memory", name);
  for (int64_t b = 0; !rc && b < m.nb && k > 0; b++) {
    lapack.gesdd(job, &mm, &nn, m.data + b * mm * nn, &ldu, sv + b * k,
                 um.data + b * mm * k, &ldu, vm.data + b * k * nn, &ldvt,
                 work, &lwork, iwork, &info, 1);
    if (info) {
      lg_seterr("%s: the SVD of %s did not converge", name, which(&m, b));
      rc = -1;
    }
  }
  free(work);
  free(iwork);
  if (!rc) {
    *s = unpack_vec(&m, a->dtype, sv, k);
    if (*s && vectors) {
      *u = unpack(&um, a->dtype, mm, k, mm, (int64_t)mm * k);
      *vh = *u ? unpack(&vm, a->dtype, k, nn, k, (int64_t)k * nn) : NULL;
      if (!*vh)
        rc = -1;
    } else if (!*s) {
      rc = -1;
    }
  }
  free(sv);
  mats_free(&m);
  mats_free(&um);
  mats_free(&vm);
  if (rc) {
    lg_release(*s);
    *s = NULL;
    if (u) {
      lg_release(*u);
      lg_release(*vh);
      *u = *vh = NULL;
    }
  }
  return rc;
}

/* gA = U diag(gS) Vh (values only) */
static int svdvals_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  if (no_double_backward("svd"))
    return -1;
  lg_tensor *a = lg_node_saved(n, 0);
  if (!a)
    return -1;
  lg_tensor *u, *s, *vh;
  bool was = lg_set_grad_enabled(false);
  int rc = svd_raw("svd", a, true, &u, &s, &vh);
  lg_set_grad_enabled(was);
  if (rc)
    return -1;
  lg_tensor *gu = lg_unsqueeze(g, -2); /* scales U's columns */
  lg_tensor *ug = gu ? lg_binary(LG_OP_MUL, u, gu) : NULL;
  grads[0] = ug ? lg_matmul(ug, vh) : NULL;
  lg_release(gu);
  lg_release(ug);
  lg_release(u);
  lg_release(s);
  lg_release(vh);
  return grads[0] ? 0 : -1;
}

static int no_vectors_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  lg_seterr("%s: gradients through the singular vectors (U, Vh) are not "
            "supported; only the singular values are differentiable",
            n->name);
  return -1;
}

lg_tensor *lg_linalg_svdvals(lg_tensor *a) {
  lg_tensor *s;
  if (svd_raw("svdvals", a, false, NULL, &s, NULL))
    return NULL;
  lg_node *node = lg_record(s, "svdvals", svdvals_backward, 1, &a);
  if (node && lg_node_save(node, a)) {
    lg_release(s);
    return NULL;
  }
  return s;
}

int lg_linalg_svd(lg_tensor *a, lg_tensor **u, lg_tensor **s,
                  lg_tensor **vh) {
  if (svd_raw("svd", a, true, u, s, vh))
    return -1;
  lg_node *node = lg_record(*s, "svd", svdvals_backward, 1, &a);
  if (node && lg_node_save(node, a))
    return -1;
  lg_record(*u, "svd", no_vectors_backward, 1, &a);
  lg_record(*vh, "svd", no_vectors_backward, 1, &a);
  return 0;
}

/* ---- eigh ---- */

/* gA = V (diag(gw) + (V^T gV) / E) V^T, E_ij = w_j - w_i (0 on the
 * diagonal's place) */
static int eigh_backward_common(lg_node *n, lg_tensor *gw, lg_tensor *gv,
                                lg_tensor **grads) {
  if (no_double_backward("eigh"))
    return -1;
  lg_tensor *w = lg_node_saved(n, 0), *v = lg_node_saved(n, 1);
  if (!w || !v)
    return -1;
  lg_tensor *inner = NULL;
  if (gv) {
    lg_tensor *vt = mT(v);
    lg_tensor *vg = vt ? lg_matmul(vt, gv) : NULL;
    lg_tensor *wr = vg ? lg_unsqueeze(w, -2) : NULL; /* w_j */
    lg_tensor *wc = wr ? lg_unsqueeze(w, -1) : NULL; /* w_i */
    lg_tensor *e = wc ? lg_binary(LG_OP_SUB, wr, wc) : NULL;
    lg_tensor *f = NULL;
    if (e) { /* 1 / E off the diagonal, 0 on it */
      lg_tensor *ec = lg_contiguous(e);
      f = ec ? lg_empty_like(ec) : NULL;
      if (f) {
        int64_t k = ec->shape[ec->ndim - 1], nb = lg_numel(ec) / (k * k);
        for (int64_t b = 0; b < nb; b++)
          for (int64_t i = 0; i < k; i++)
            for (int64_t j = 0; j < k; j++) {
              int64_t o = (b * k + i) * k + j;
              double x = lg_load(ec->dtype, lg_data_ptr(ec), o);
              lg_store(f->dtype, lg_data_ptr(f), o,
                       i == j || x == 0 ? 0 : 1 / x);
            }
      }
      lg_release(ec);
    }
    inner = f ? lg_binary(LG_OP_MUL, vg, f) : NULL;
    lg_tensor *tmp[] = {vt, vg, wr, wc, e, f};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++)
      lg_release(tmp[i]);
    if (!inner)
      return -1;
  }
  if (gw) {
    lg_tensor *d = diag_embed_last(gw);
    if (!d) {
      lg_release(inner);
      return -1;
    }
    if (inner) {
      lg_tensor *s = lg_binary(LG_OP_ADD, inner, d);
      lg_release(inner);
      lg_release(d);
      inner = s;
    } else {
      inner = d;
    }
    if (!inner)
      return -1;
  }
  lg_tensor *vt = mT(v);
  grads[0] = vt ? mm3(v, inner, vt) : NULL;
  lg_release(vt);
  lg_release(inner);
  return grads[0] ? 0 : -1;
}

/* the formula is linear in (gw, gV): w's node runs it with gV = 0, V's
 * with gw = 0, and the engine adds the two */
static int eigh_w_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  return eigh_backward_common(n, g, NULL, grads);
}

static int eigh_v_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  return eigh_backward_common(n, NULL, g, grads);
}

int lg_linalg_eigh(lg_tensor *a, lg_tensor **w, lg_tensor **v) {
  const char *name = "eigh";
  *w = *v = NULL;
  mats m;
  if (pack_matrix(&m, name, a, true))
    return -1;
  int n = (int)m.n, info = 0, lwork = -1, liwork = -1, iwq = 0;
  double wq = 0;
  double *ev = malloc((size_t)(m.nb * n > 0 ? m.nb * n : 1) * sizeof *ev), *work = NULL;
  int *iwork = NULL, rc = ev ? 0 : -1;
  if (!rc && n > 0) {
    lapack.syevd("V", "L", &n, m.data, &n, ev, &wq, &lwork, &iwq, &liwork,
                 &info, 1, 1);
    lwork = (int)wq > 1 ? (int)wq : 1;
    liwork = iwq > 1 ? iwq : 1;
    work = malloc(lwork * sizeof *work);
    iwork = malloc(liwork * sizeof *iwork);
    if (!work || !iwork)
      rc = -1;
  }
  if (rc)
    lg_seterr("%s: out of memory", name);
  for (int64_t b = 0; !rc && b < m.nb && n > 0; b++) {
    lapack.syevd("V", "L", &n, m.data + b * n * n, &n, ev + b * n, work,
                 &lwork, iwork, &liwork, &info, 1, 1);
    if (info) {
      lg_seterr("%s: the eigenvalues of %s did not converge", name,
                which(&m, b));
      rc = -1;
    }
  }
  free(work);
  free(iwork);
  if (!rc) {
    *w = unpack_vec(&m, a->dtype, ev, n);
    *v = *w ? unpack(&m, a->dtype, n, n, n, (int64_t)n * n) : NULL;
  }
  free(ev);
  mats_free(&m);
  if (!*v) {
    lg_release(*w);
    *w = NULL;
    return -1;
  }
  lg_node *nw = lg_record(*w, "eigh", eigh_w_backward, 1, &a);
  lg_node *nv = lg_record(*v, "eigh", eigh_v_backward, 1, &a);
  for (int i = 0; i < 2; i++) {
    lg_node *node = i ? nv : nw;
    if (node && (save_plain(node, *w) || save_plain(node, *v)))
      return -1;
  }
  return 0;
}

/* ---- lstsq ---- */

/* for a tall full-rank A (m >= n): X = (A^T A)^-1 A^T B, Y = solve(A^T A,
 * g): gB = A Y, gA = (B - A X) Y^T - A Y X^T */
static int lstsq_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  if (no_double_backward("lstsq"))
    return -1;
  lg_tensor *a = lg_node_saved(n, 0), *b = lg_node_saved(n, 1),
            *x = lg_node_saved(n, 2);
  if (!a || !b || !x)
    return -1;
  if (a->shape[a->ndim - 2] < a->shape[a->ndim - 1]) {
    lg_seterr("lstsq: the gradient needs m >= n (a tall or square A)");
    return -1;
  }
  bool vec = FLAG(n)->flag;
  lg_tensor *gm = vec ? lg_unsqueeze(g, -1) : lg_retain(g);
  lg_tensor *bm = vec ? lg_unsqueeze(b, -1) : lg_retain(b);
  lg_tensor *xm = vec ? lg_unsqueeze(x, -1) : lg_retain(x);
  lg_tensor *at = mT(a);
  lg_tensor *ata = at ? lg_matmul(at, a) : NULL;
  lg_tensor *y = ata ? lg_linalg_solve(ata, gm) : NULL;
  lg_tensor *ay = y ? lg_matmul(a, y) : NULL;
  if (ay && n->needs_grad[0]) {
    lg_tensor *ax = lg_matmul(a, xm);
    lg_tensor *r = ax ? lg_binary(LG_OP_SUB, bm, ax) : NULL;
    lg_tensor *yt = r ? mT(y) : NULL;
    lg_tensor *ryt = yt ? lg_matmul(r, yt) : NULL;
    lg_tensor *xt = ryt ? mT(xm) : NULL;
    lg_tensor *ayx = xt ? lg_matmul(ay, xt) : NULL;
    grads[0] = ayx ? lg_binary(LG_OP_SUB, ryt, ayx) : NULL;
    lg_tensor *tmp[] = {ax, r, yt, ryt, xt, ayx};
    for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++)
      lg_release(tmp[i]);
  }
  if (ay && n->needs_grad[1])
    grads[1] = vec ? lg_squeeze(ay, -1) : lg_retain(ay);
  int ok = ay && (!n->needs_grad[0] || grads[0]) &&
           (!n->needs_grad[1] || grads[1]);
  lg_tensor *tmp[] = {gm, bm, xm, at, ata, y, ay};
  for (size_t i = 0; i < sizeof tmp / sizeof *tmp; i++)
    lg_release(tmp[i]);
  return ok ? 0 : -1;
}

lg_tensor *lg_linalg_lstsq(lg_tensor *a, lg_tensor *b) {
  const char *name = "lstsq";
  char s1[200], s2[200];
  if (check_matrix(name, a, false) || need_lapack(name))
    return NULL;
  bool vec = b->ndim == a->ndim - 1;
  if (!lg_dtype_is_float(b->dtype) || (b->ndim != a->ndim && !vec)) {
    lg_seterr("%s: B must be a float tensor with A's batch dims, got A %s "
              "and B %s",
              name, lg_shape_str(a, s1, sizeof s1),
              lg_shape_str(b, s2, sizeof s2));
    return NULL;
  }
  int64_t m = a->shape[a->ndim - 2], n = a->shape[a->ndim - 1];
  lg_tensor *bm = vec ? lg_unsqueeze(b, -1) : lg_retain(b);
  if (!bm)
    return NULL;
  bool fits = bm->shape[bm->ndim - 2] == m;
  for (int i = 0; i < a->ndim - 2; i++)
    fits = fits && bm->shape[i] == a->shape[i];
  if (!fits) {
    lg_seterr("%s: A %s and B %s do not fit", name,
              lg_shape_str(a, s1, sizeof s1), lg_shape_str(b, s2, sizeof s2));
    lg_release(bm);
    return NULL;
  }
  int64_t k = bm->shape[bm->ndim - 1], ldb = m > n ? m : n;
  mats ma, mb, mx;
  lg_tensor *out = NULL;
  if (pack(&ma, name, a)) {
    lg_release(bm);
    return NULL;
  }
  if (pack(&mb, name, bm)) {
    mats_free(&ma);
    lg_release(bm);
    return NULL;
  }
  int rc = mats_alloc(&mx, name, ma.bnd, ma.bshape, ldb, k);
  int mi = (int)m, ni = (int)n, ki = (int)k, lb = (int)(ldb ? ldb : 1);
  int mn = mi < ni ? mi : ni, info = 0, rank = 0, lwork = -1, iwq = 0;
  double wq = 0, rcond = -1;
  double *sv = malloc((mn ? mn : 1) * sizeof *sv), *work = NULL;
  int *iwork = NULL;
  if (!rc && !sv)
    rc = -1;
  if (!rc && mn > 0 && ki > 0) {
    lapack.gelsd(&mi, &ni, &ki, ma.data, &mi, mx.data, &lb, sv, &rcond,
                 &rank, &wq, &lwork, &iwq, &info);
    lwork = (int)wq > 1 ? (int)wq : 1;
    work = malloc(lwork * sizeof *work);
    iwork = malloc((iwq > 1 ? iwq : 1) * sizeof *iwork);
    if (!work || !iwork)
      rc = -1;
  }
  if (rc)
    lg_seterr("%s: out of memory", name);
  for (int64_t i = 0; !rc && i < ma.nb; i++) {
    double *xp = mx.data + i * ldb * k;
    memset(xp, 0, (size_t)(ldb * k) * sizeof *xp);
    for (int64_t j = 0; j < k; j++)
      memcpy(xp + j * ldb, mb.data + i * m * k + j * m,
             (size_t)m * sizeof *xp);
    if (mn == 0 || ki == 0)
      continue;
    lapack.gelsd(&mi, &ni, &ki, ma.data + i * m * n, &mi, xp, &lb, sv,
                 &rcond, &rank, work, &lwork, iwork, &info);
    if (info) {
      lg_seterr("%s: the SVD of %s did not converge", name, which(&ma, i));
      rc = -1;
    }
  }
  free(sv);
  free(work);
  free(iwork);
  if (!rc) {
    out = as_vector_if(
        unpack(&mx, lg_promote(a->dtype, b->dtype), n, k, ldb, ldb * k), vec);
  }
  mats_free(&ma);
  mats_free(&mb);
  mats_free(&mx);
  lg_release(bm);
  if (out) {
    lg_tensor *in[2] = {a, b};
    lg_node *node = lg_record(out, "lstsq", lstsq_backward, 2, in);
    if (node) {
      FLAG(node)->flag = vec;
      if (lg_node_save(node, a) || lg_node_save(node, b) ||
          lg_node_save(node, out)) {
        lg_release(out);
        return NULL;
      }
    }
  }
  return out;
}
