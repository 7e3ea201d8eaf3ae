/*
 * tensor_api.h -- slicing, in-place ops recorded in a graph, and the
 * shape, selection, sampling and LAPACK-backed ops of the tensor API
 * (included by lgrad.h; 0-based indices and dims, as the rest of the C API).
 *
 *   lg_slice_dim r[2] = {{.select = true, .start = 1},
 *                        {.start = 0, .len = 3, .step = 2}};
 *   lg_tensor *v = lg_index_view(t, 2, r);       -- t[{2, {1, 5, 2}}]
 *   lg_index_assign(t, 2, r, src);               -- t[{2, {1, 5, 2}}] = src
 */
#ifndef LGRAD_TENSOR_API_H
#define LGRAD_TENSOR_API_H

/* ---- slicing ---- */
/* view of len elements start, start + step, ... of dim (step >= 1) */
lg_tensor *lg_slice(lg_tensor *t, int dim, int64_t start, int64_t len,
                    int64_t step);
/* what one entry of an index does to the next dimension: select index
 * start (the dimension goes), or keep len elements from start by step */
typedef struct {
  bool select;
  int64_t start, len, step;
} lg_slice_dim;
/* the view t[r] (dimensions after the n entries are kept whole) */
lg_tensor *lg_index_view(lg_tensor *t, int n, const lg_slice_dim *r);
/* t[r] = src (broadcast), in place; recorded in the graph when t or src
 * requires grad (t must then not be a leaf or a view) */
int lg_index_assign(lg_tensor *t, int n, const lg_slice_dim *r,
                    lg_tensor *src);

/* ---- in-place ops inside a graph ----
 * An in-place op on a tensor that requires grad (or with an operand that
 * does) is computed out of place on a clone carrying the target's history,
 * then written into the target, whose grad_fn becomes the new node; the
 * storage version goes up, so a node that saved the old values refuses
 * to run backward.  A leaf that requires grad, and a view of another
 * tensor, refuse. */
/* true when an in-place write of inputs into t must be recorded (inline:
 * every in-place op asks, and the answer is usually no) */
static inline bool lg_inplace_records(const lg_tensor *t, int n,
                                      lg_tensor *const *inputs) {
  bool any = t->requires_grad;
  for (int i = 0; i < n && !any; i++)
    any = inputs[i] && inputs[i]->requires_grad;
  return any && lg_grad_enabled();
}
/* 0 when t may be written in place in a graph, else -1 (leaf, view) */
int lg_inplace_check(const char *fname, lg_tensor *t);
/* a differentiable clone of t to compute on, or NULL (leaf, view) */
lg_tensor *lg_inplace_begin(const char *fname, lg_tensor *t);
/* writes r into t, moves r's history onto t; releases r and clone */
int lg_inplace_end(lg_tensor *t, lg_tensor *clone, lg_tensor *r);

/* ---- shape ops (ops/shape.c) ---- */
/* tril (upper false) or triu of the last two dims, diagonal offset k */
lg_tensor *lg_tri(lg_tensor *t, int64_t k, bool upper);
lg_tensor *lg_repeat(lg_tensor *t, int n, const int64_t *reps);
lg_tensor *lg_tile(lg_tensor *t, int n, const int64_t *reps);
lg_tensor *lg_flip(lg_tensor *t, int n, const int *dims);
/* dims NULL (n 1): over the flattened tensor */
lg_tensor *lg_roll(lg_tensor *t, int n, const int64_t *shifts,
                   const int *dims);
/* a view: the diagonal (offset off) of dims d1, d2 as the last dim */
lg_tensor *lg_diagonal(lg_tensor *t, int64_t off, int d1, int d2);
/* 1-d: a square matrix with t on diagonal k; 2-d: a copy of diagonal k */
lg_tensor *lg_diag(lg_tensor *t, int64_t k);
/* a view: windows of size elements every step along dim, as a new last
 * dim */
lg_tensor *lg_unfold(lg_tensor *t, int dim, int64_t size, int64_t step);
lg_tensor *lg_cumprod(lg_tensor *t, int dim);
/* max (or min) over dim or LG_ALL_DIMS; ties share the gradient */
lg_tensor *lg_amax(lg_tensor *t, int dim, bool keepdim, bool is_min);

/* ---- selection and sampling (ops/select.c) ---- */
int lg_masked_fill_(lg_tensor *t, lg_tensor *mask, double v);
/* the elements where mask (broadcast) is true, as a 1-d tensor */
lg_tensor *lg_masked_select(lg_tensor *t, lg_tensor *mask);
/* (N, ndim) int64 0-based coordinates of the non-zero elements */
lg_tensor *lg_nonzero(lg_tensor *t);
lg_tensor *lg_argsort(lg_tensor *t, int dim, bool descending);
/* sorted distinct values; inverse (t's shape) and counts when not NULL */
int lg_unique(lg_tensor *t, lg_tensor **values, lg_tensor **inverse,
              lg_tensor **counts);
/* |a - b| <= atol + rtol |b| elementwise (bool); allclose: 1, 0 or -1 */
lg_tensor *lg_isclose(lg_tensor *a, lg_tensor *b, double rtol, double atol,
                      bool equal_nan);
int lg_allclose(lg_tensor *a, lg_tensor *b, double rtol, double atol,
                bool equal_nan);
/* n 0-based category draws per row of probs (1-d or 2-d, unnormalized) */
lg_tensor *lg_multinomial(lg_tensor *probs, int64_t n, bool replacement,
                          lg_generator *g);
/* 0/1 draws with the probabilities of p, in p's dtype */
lg_tensor *lg_bernoulli(lg_tensor *p, lg_generator *g);

/* ---- lg.linalg over LAPACK found at run time (ops/lapack.c) ----
 * last two dims are the matrix, the others a batch; singular or
 * non-positive-definite inputs are errors naming the batch element */
lg_tensor *lg_linalg_inv(lg_tensor *a);
/* X with A X = B; B (..., n) or (..., n, k), batch dims broadcast */
lg_tensor *lg_linalg_solve(lg_tensor *a, lg_tensor *b);
/* lower L with A = L L^T (upper: U with A = U^T U); reads A's lower
 * triangle */
lg_tensor *lg_linalg_cholesky(lg_tensor *a, bool upper);
int lg_linalg_qr(lg_tensor *a, lg_tensor **q, lg_tensor **r); /* reduced */
int lg_linalg_svd(lg_tensor *a, lg_tensor **u, lg_tensor **s,
                  lg_tensor **vh); /* reduced; values descending */
lg_tensor *lg_linalg_svdvals(lg_tensor *a);
/* ascending eigenvalues and eigenvectors (columns) from the lower
 * triangle */
int lg_linalg_eigh(lg_tensor *a, lg_tensor **w, lg_tensor **v);
lg_tensor *lg_linalg_det(lg_tensor *a);
int lg_linalg_slogdet(lg_tensor *a, lg_tensor **sign, lg_tensor **logabs);
/* least-squares (minimum-norm) X of A X = B through an SVD (gelsd) */
lg_tensor *lg_linalg_lstsq(lg_tensor *a, lg_tensor *b);

#endif
