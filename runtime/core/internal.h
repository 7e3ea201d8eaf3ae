/*
 * internal.h -- helpers shared by the runtime's own files (not public).
 */
#ifndef LGRAD_INTERNAL_H
#define LGRAD_INTERNAL_H

#include "../lgrad.h"

#define LG_THREAD __thread

/* Strided iteration over up to three operands sharing one shape.  Dims
 * are coalesced where every operand is contiguous across them; the
 * innermost dimension is left to the caller's loop. */
typedef struct {
  int ndim;
  int nops;
  int64_t shape[LG_MAX_DIMS];
  int64_t strides[3][LG_MAX_DIMS];
  int64_t counter[LG_MAX_DIMS];
  int64_t offs[3];
  int64_t remaining; /* outer iterations left */
} lg_iter;

/* shape/strides per operand (strides 0 where broadcast) */
void lg_iter_init(lg_iter *it, int ndim, const int64_t *shape, int nops,
                  const int64_t *const *strides);
/* the inner length and inner strides */
static inline int64_t lg_iter_inner(const lg_iter *it) {
  return it->ndim ? it->shape[it->ndim - 1] : 1;
}
static inline int64_t lg_iter_istride(const lg_iter *it, int k) {
  return it->ndim ? it->strides[k][it->ndim - 1] : 0;
}
/* advances to the next inner row; false at the end */
bool lg_iter_next(lg_iter *it);

/* -1 with "fname: tensor i of the list is NULL or revoked" for the first
 * unusable tensor of ts[0 .. n-1] */
int lg_check_list(const char *fname, int n, lg_tensor *const *ts);

/* The check every public function starts with: its pointer arguments, each
 * as LG_ARG (a tensor that must be there and not revoked), LG_ARG_OPT (a
 * tensor that may be NULL, but not revoked) or LG_ARG_PTR (any other
 * pointer that must not be NULL) with its 1-based position in the C
 * signature, the list ended by 0.  Nonzero, with "fname: argument N is NULL
 * or revoked" for the first that fails:
 *   if (lg_args_unusable("lg_linear", LG_ARG(1, x), LG_ARG(2, w),
 *                        LG_ARG_OPT(3, b), 0))
 *     return NULL; */
enum { LG_ARGK_END, LG_ARGK_TENSOR, LG_ARGK_TENSOR_OPT, LG_ARGK_PTR };
#define LG_ARG(pos, t) LG_ARGK_TENSOR, (int)(pos), (const void *)(t)
#define LG_ARG_OPT(pos, t) LG_ARGK_TENSOR_OPT, (int)(pos), (const void *)(t)
#define LG_ARG_PTR(pos, p) LG_ARGK_PTR, (int)(pos), (const void *)(p)
int lg_args_unusable(const char *fname, ...);

/* broadcast shape of a and b into out; -1 with an error when they clash */
int lg_broadcast_shape(const char *fname, const lg_tensor *a,
                       const lg_tensor *b, int *ndim, int64_t *shape);
/* strides of t seen with shape (ndim), 0 for broadcast dims */
void lg_broadcast_strides(const lg_tensor *t, int ndim, const int64_t *shape,
                          int64_t *strides);
void lg_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
int64_t lg_shape_numel(int ndim, const int64_t *shape);
/* checks sizes are non-negative and the product fits; -1 on error */
int lg_check_shape(const char *fname, int ndim, const int64_t *shape);


/* a view header over t's storage with the given geometry (no autograd) */
lg_tensor *lg_make_view(lg_tensor *t, int ndim, const int64_t *shape,
                        const int64_t *strides, int64_t offset);
/* a fresh contiguous tensor of t's shape with dtype d */
lg_tensor *lg_empty_shape_of(const lg_tensor *t, lg_dtype d);
/* refuses in-place writes that autograd cannot follow */
int lg_check_inplace(const char *fname, lg_tensor *t);
/* src shares memory with dst other than element for element: an in-place
 * write into dst must read src through a temporary */
bool lg_partial_overlap(const lg_tensor *dst, const lg_tensor *src);
static inline void lg_bump_version(lg_tensor *t) { t->storage->version++; }
/* normalize a 0-based dim allowing negatives (C: -1 last); -1 on error */
int lg_wrap_dim(const char *fname, int dim, int ndim);

/* autograd helpers for op files */
/* keeps t's shape (for undoing a broadcast in backward) */
void lg_shape_of(lg_shape *s, const lg_tensor *t);
/* the state of an op with two broadcast inputs (binary ops, where,
 * matmul): their shapes, and which op */
typedef struct lg_bcast_state {
  lg_shape a, b;
  int op;
} lg_bcast_state;
#define LG_BCAST(n) LG_NODE_STATE(n, lg_bcast_state)
/* keeps a's and b's shapes in the node's lg_bcast_state */
void lg_node_set_shapes2(lg_node *n, const lg_tensor *a, const lg_tensor *b);
/* g summed down to the kept shape s (g itself, retained, when equal) */
lg_tensor *lg_grad_reduce_to(lg_tensor *g, const lg_shape *s);
/* Backward functions written with raw kernels give gradients that are not
 * differentiable again.  Under create_graph, ONCE_DIFFERENTIABLE(fn) makes
 * fn_once, which records a node on each gradient it returns so that
 * differentiating through it raises instead of silently giving zero. */
void lg_mark_once(lg_node *node, const char *name, lg_tensor *grad_out,
                  lg_tensor **grads);
#define ONCE_DIFFERENTIABLE(fn)                                                \
  static int fn##_once(lg_node *node, lg_tensor *grad_out,                     \
                       lg_tensor **grads) {                                    \
    int rc = fn(node, grad_out, grads);                                        \
    if (!rc)                                                                   \
      lg_mark_once(node, #fn, grad_out, grads);                                \
    return rc;                                                                 \
  }
/* called when an op's output has NaN/Inf under anomaly detection */
int lg_anomaly_check(const char *opname, lg_tensor *t, bool backward);

void lg_header_free(lg_tensor *t);

/* one-element tensors (every dimension 1, 0-d among them): the scalar
 * fast paths of ops/pointwise.c and the autograd engine */
static inline bool lg_is_tiny(const lg_tensor *t) {
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] != 1)
      return false;
  return true;
}
/* its value (float32 or float64) */
static inline double lg_tiny_load(const lg_tensor *t) {
  return t->dtype == LG_FLOAT32
             ? ((const float *)t->storage->data)[t->offset]
             : ((const double *)t->storage->data)[t->offset];
}
/* a fresh contiguous one-element tensor of t's shape and dtype d, its
 * element not set */
lg_tensor *lg_tiny_like(const lg_tensor *t, lg_dtype d);
/* marks this thread as using lgrad, so its caches are freed at exit */
void lg_thread_register(void);
void lg_autograd_thread_cleanup(void);

/* Kernels that draw random numbers on several threads reserve a run of
 * Philox blocks of g (NULL: the default generator) and compute block
 * c0 + i themselves: the numbers depend only on the seed and position */
uint64_t lg_generator_reserve(lg_generator *g, uint64_t nblocks,
                              uint64_t *seed);
void lg_philox_block(uint64_t seed, uint64_t ctr, uint32_t out[4]);

/* threading for big element-wise loops */
typedef void (*lg_range_fn)(void *ctx, int64_t begin, int64_t end);
void lg_parallel_for(int64_t n, int64_t grain, lg_range_fn fn, void *ctx);

#endif
