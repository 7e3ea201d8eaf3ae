/*
 * lgrad.h -- the public C API of the lgrad runtime (no Lua here).
 *
 * Overview
 *   A tensor (lg_tensor) is a reference-counted header: dtype, shape and
 *   strides (in elements), an offset, and a reference-counted storage.
 *   Views share the storage.  Every function that returns a new tensor
 *   returns it with one reference owned by the caller; release it with
 *   lg_release().  On failure a function returns NULL (or a negative
 *   status) and lg_errmsg() gives the reason; nothing exits or aborts.
 *
 *   Autograd: an op on inputs that require grad (while grad mode is on)
 *   records a node; lg_backward() walks the graph in reverse.  Backward
 *   functions are written with the same ops, so create_graph gives
 *   differentiable gradients.
 *
 *   Example:
 *     lg_tensor *w = lg_randn(LG_FLOAT32, 2, (int64_t[]){3, 4}, NULL);
 *     lg_set_requires_grad(w, true);
 *     lg_tensor *y = lg_unary(LG_OP_TANH, w);
 *     lg_tensor *s = lg_sum(y);
 *     lg_backward(s, NULL, false, false);    -- w->grad now holds dsum/dw
 *     lg_release(s); lg_release(y); lg_release(w);
 *
 * Indices and dimensions in this C API are 0-based; the Lua binding
 * converts from Lua's 1-based convention.
 */
#ifndef LGRAD_H
#define LGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The package version: kept in the file VERSION, passed by the Makefile
 * with -DLG_VERSION and written into the installed copy of this header. */
#ifndef LG_VERSION
#define LG_VERSION "unreleased"
#endif
#define LG_MAX_DIMS 8
/* as a dim argument: every dimension (reductions, squeeze) */
#define LG_ALL_DIMS (-100)

typedef enum {
  LG_FLOAT32 = 0,
  LG_FLOAT64 = 1,
  LG_INT64 = 2,
  LG_BOOL = 3,
  LG_NDTYPES = 4
} lg_dtype;

typedef struct lg_storage lg_storage;
typedef struct lg_tensor lg_tensor;
typedef struct lg_node lg_node;
typedef struct lg_generator lg_generator;

typedef void (*lg_release_fn)(void *data, void *ctx);

struct lg_storage {
  int64_t refcount;
  void *data;
  size_t nbytes;
  lg_release_fn release; /* NULL: memory came from lgrad's allocator */
  void *release_ctx;
  uint64_t version; /* bumped by every in-place write */
  bool revoked;     /* the host took the memory back (lg_storage_revoke) */
};

struct lg_tensor {
  int64_t refcount;
  lg_dtype dtype;
  int ndim;
  int64_t shape[LG_MAX_DIMS];
  int64_t strides[LG_MAX_DIMS];
  int64_t offset;
  lg_storage *storage;
  /* autograd */
  bool requires_grad;
  bool retains_grad;
  lg_tensor *grad;
  lg_node *grad_fn;
  bool grad_fn_weak;    /* saved output of its own grad_fn: not retained */
  bool is_view;         /* shares another tensor's storage (lg_make_view) */
  lg_tensor *next_free; /* header free list */
  /* the kind of a gradient: when sparse_rows is set this tensor is
   * row-sparse, holding only the rows listed there (int64, sorted, unique,
   * 0-based) of a tensor whose dim 0 has sparse_dim0 rows */
  lg_tensor *sparse_rows;
  int64_t sparse_dim0;
};

/* ---- version: the header's, and the library's at run time ---- */
#define LG_VERSION_MAJOR 0
#define LG_VERSION_MINOR 1
#define LG_VERSION_PATCH 0
#define LG_VERSION_NUM                                                         \
  (LG_VERSION_MAJOR * 10000 + LG_VERSION_MINOR * 100 + LG_VERSION_PATCH)
/* LG_VERSION_NUM of the library linked in; a host compiled against another
 * major version should refuse to run */
int lg_version(void);

/* ---- errors ----
 * A function that fails returns NULL or a negative status and leaves a
 * message for lg_error(); the message stays until the next failure or
 * lg_clear_error(), so a chain of calls can be checked once at its end
 * (a NULL tensor passed on fails with "NAME: argument N is NULL"). */
const char *lg_errmsg(void); /* the last message, or "unknown error" */
const char *lg_error(void);  /* the last message, or NULL when cleared */
/* the message with indices counted from base (the Lua binding uses 1) */
const char *lg_errmsg_based(int base);
void lg_clear_error(void);
void lg_seterr(const char *fmt, ...);

/* ---- cancellation ----
 * A token that a host sets from another thread or a signal handler
 * (lg_cancel_request is one atomic store) to stop the computation running
 * on the thread where the token is current.  Long kernels check it between
 * blocks and fail with "interrupted", or "time limit exceeded" once the
 * deadline (monotonic seconds, lg_monotonic(); 0: none) has passed. */
typedef struct lg_cancel {
  int flag;
  double deadline;
  /* called (on the computing thread) when a kernel finds the token fired,
   * so that a host can make its interpreter stop too; may be NULL */
  void (*fired)(void *ctx);
  void *fired_ctx;
} lg_cancel;
void lg_cancel_init(lg_cancel *c);
lg_cancel *lg_cancel_set_current(lg_cancel *c); /* returns the previous */
lg_cancel *lg_cancel_current(void);
void lg_cancel_request(lg_cancel *c);
double lg_monotonic(void);
/* what a token says: 0, LG_CANCEL_INTERRUPTED or LG_CANCEL_TIMEOUT */
enum { LG_CANCEL_INTERRUPTED = 1, LG_CANCEL_TIMEOUT = 2 };
int lg_cancel_state(const lg_cancel *c);
/* 0, or -1 with the message set when the current token has fired */
int lg_cancel_check(void);
/* formats a shape as "[2,3]" into buf (at least 8 * 21 + 3 bytes). */
char *lg_shape_str(const lg_tensor *t, char *buf, size_t n);

/* ---- dtypes ---- */
size_t lg_dtype_size(lg_dtype d);
const char *lg_dtype_name(lg_dtype d);
int lg_dtype_from_name(const char *name, lg_dtype *out);
bool lg_dtype_is_float(lg_dtype d);
lg_dtype lg_default_dtype(void);
void lg_set_default_dtype(lg_dtype d);
lg_dtype lg_promote(lg_dtype a, lg_dtype b);

/* ---- memory ---- */
void *lg_alloc(size_t nbytes);              /* caching allocator */
void lg_free(void *p, size_t nbytes);
size_t lg_mem_live(void);                   /* bytes held by live storages */
void lg_mem_trim(void);                     /* return cached blocks to libc */
/* frees this thread's caches (tensor headers, graph nodes, blocks); runs
 * by itself when a thread that used lgrad exits, and at unload */
void lg_thread_cleanup(void);
/* A host's allocator for tensor memory, below lgrad's block cache: alloc
 * returns size bytes aligned to `align` (64, or 2 MB for blocks of 2 MB and
 * more; at least 64 is required) or NULL; free gets the same size back.
 * Set it before the first tensor is made (later: -1); both NULL restores
 * libc's.  Wrapped memory (lg_wrap) is the host's own and never passes
 * here. */
typedef void *(*lg_block_alloc_fn)(size_t size, size_t align, void *ctx);
typedef void (*lg_block_free_fn)(void *p, size_t size, void *ctx);
int lg_set_allocator(lg_block_alloc_fn alloc, lg_block_free_fn free_fn,
                     void *ctx);
lg_storage *lg_storage_new(size_t nbytes);  /* refcount 1, uninitialized */
lg_storage *lg_storage_wrap(void *data, size_t nbytes, lg_release_fn rel,
                            void *ctx);
void lg_storage_release(lg_storage *s);
/* Takes wrapped memory back from every tensor and view over it: the
 * release callback runs now (once), and the Lua binding raises "tensor is
 * closed" on any later use.  C code must not touch the data of a revoked
 * storage's tensors (it is NULL). */
void lg_storage_revoke(lg_storage *s);

/* true for a NULL tensor or one whose memory the host revoked: public
 * functions refuse both with "NAME: argument N is NULL or revoked" */
#define LG_UNUSABLE(t) (!(t) || (t)->storage->revoked)

/* ---- tensor lifetime ---- */
lg_tensor *lg_retain(lg_tensor *t);
void lg_release(lg_tensor *t);
lg_tensor *lg_tensor_header(void); /* zeroed header from the free list */

/* ---- creation ---- */
lg_tensor *lg_empty(lg_dtype d, int ndim, const int64_t *shape);
lg_tensor *lg_zeros(lg_dtype d, int ndim, const int64_t *shape);
lg_tensor *lg_full(lg_dtype d, int ndim, const int64_t *shape, double v);
lg_tensor *lg_scalar(lg_dtype d, double v); /* 0-d */
lg_tensor *lg_from_data(lg_dtype d, int ndim, const int64_t *shape,
                        const void *data); /* copies */
lg_tensor *lg_wrap(lg_dtype d, int ndim, const int64_t *shape,
                   const int64_t *strides, void *data, lg_release_fn rel,
                   void *ctx); /* no copy; rel(data, ctx) at last release,
                                  rel NULL: the memory is never freed */
lg_tensor *lg_eye(lg_dtype d, int64_t n, int64_t m);
lg_tensor *lg_range(lg_dtype d, double a, double b, double step);
lg_tensor *lg_linspace(lg_dtype d, double a, double b, int64_t n);
lg_tensor *lg_empty_like(const lg_tensor *t);
lg_tensor *lg_zeros_like(const lg_tensor *t);

/* ---- random (counter-based; same seed, same numbers) ---- */
lg_generator *lg_generator_new(uint64_t seed);
void lg_generator_free(lg_generator *g);
lg_generator *lg_default_generator(void);
void lg_manual_seed(uint64_t seed);
void lg_generator_seed(lg_generator *g, uint64_t seed);
void lg_generator_get_state(const lg_generator *g, uint64_t state[2]);
void lg_generator_set_state(lg_generator *g, const uint64_t state[2]);
double lg_random_uniform(lg_generator *g);  /* [0, 1) */
double lg_random_normal(lg_generator *g);
/* in place; g NULL means the default generator */
int lg_uniform_(lg_tensor *t, double lo, double hi, lg_generator *g);
int lg_normal_(lg_tensor *t, double mean, double std, lg_generator *g);
int lg_randint_(lg_tensor *t, int64_t lo, int64_t hi, lg_generator *g);
int lg_bernoulli_(lg_tensor *t, double p, lg_generator *g);
lg_tensor *lg_rand(lg_dtype d, int ndim, const int64_t *shape, lg_generator *g);
lg_tensor *lg_randn(lg_dtype d, int ndim, const int64_t *shape,
                    lg_generator *g);
lg_tensor *lg_randperm(int64_t n, lg_generator *g); /* int64, 0-based */

/* ---- inspection ---- */
int64_t lg_numel(const lg_tensor *t);
bool lg_is_contiguous(const lg_tensor *t);
void *lg_data_ptr(const lg_tensor *t); /* storage data + offset */
/* element access with 0-based indices, checked against the shape: the
 * _value forms return 0 or -1 (error set) and write *out; lg_get and
 * lg_item return NaN on failure, with the error set */
int lg_get_value(const lg_tensor *t, const int64_t *idx, double *out);
double lg_get(const lg_tensor *t, const int64_t *idx);
int lg_set(lg_tensor *t, const int64_t *idx, double v);
/* stores v at storage element off (checked by the caller), an in-place
 * write: the storage version moves */
void lg_set_at(lg_tensor *t, int64_t off, double v);
int lg_item_value(const lg_tensor *t, double *out); /* one element */
double lg_item(const lg_tensor *t);
bool lg_same_shape(const lg_tensor *a, const lg_tensor *b);
/* element i of raw data of dtype d, as a double, and the reverse */
double lg_load(lg_dtype d, const void *base, int64_t i);
void lg_store(lg_dtype d, void *base, int64_t i, double v);

/* ---- views (share storage; differentiable) ---- */
lg_tensor *lg_view(lg_tensor *t, int ndim, const int64_t *shape); /* -1 ok */
lg_tensor *lg_reshape(lg_tensor *t, int ndim, const int64_t *shape);
lg_tensor *lg_transpose(lg_tensor *t, int d0, int d1);
lg_tensor *lg_permute(lg_tensor *t, const int *dims);
lg_tensor *lg_expand(lg_tensor *t, int ndim, const int64_t *shape);
lg_tensor *lg_narrow(lg_tensor *t, int dim, int64_t start, int64_t len);
lg_tensor *lg_select(lg_tensor *t, int dim, int64_t index);
lg_tensor *lg_squeeze(lg_tensor *t, int dim); /* LG_ALL_DIMS: every 1 */
lg_tensor *lg_unsqueeze(lg_tensor *t, int dim);
lg_tensor *lg_flatten(lg_tensor *t, int start, int end);
lg_tensor *lg_contiguous(lg_tensor *t); /* retains t if already so */
lg_tensor *lg_clone(lg_tensor *t);
lg_tensor *lg_to_dtype(lg_tensor *t, lg_dtype d);
lg_tensor *lg_detach(lg_tensor *t);

/* ---- in-place writes (bump the storage version) ---- */
int lg_copy_(lg_tensor *dst, lg_tensor *src); /* src broadcasts to dst */
int lg_fill_(lg_tensor *t, double v);
int lg_zero_(lg_tensor *t);

/* ---- pointwise ---- */
/* the element-wise ops, each named once in ops/ops.def; their flags */
enum {
  LG_OPF_DIFF = 1 << 0,      /* has a backward */
  LG_OPF_COMPARE = 1 << 1,   /* bool result, never differentiable */
  LG_OPF_INPLACE = 1 << 2,   /* has the in-place twin name_ */
  LG_OPF_INT = 1 << 3,       /* int64 stays int64 */
  LG_OPF_SAVES_OUT = 1 << 4, /* the backward reads the output */
  LG_OPF_F = 1 << 5,         /* an activation, also in lg.F */
  LG_OPF_MANUAL = 1 << 6     /* bound by hand (takes options) */
};
typedef enum {
#define LG_BINOP(ID, name, family, flags) LG_OP_##ID,
#include "ops/ops.def"
  LG_NBINOPS
} lg_binop;

typedef enum {
#define LG_UNOP(ID, name, family, flags, Module) LG_OP_##ID,
#include "ops/ops.def"
  LG_NUNOPS
} lg_unop;

/* one entry of the op table; index it with the op */
typedef struct lg_op_info {
  const char *name;   /* Lua and grad_fn name */
  const char *family; /* "arith", "compare", "activation", ... */
  unsigned flags;     /* LG_OPF_* */
  const char *module; /* the nn class of an activation, or "" */
} lg_op_info;
const lg_op_info *lg_binop_info(lg_binop op); /* NULL when out of range */
const lg_op_info *lg_unop_info(lg_unop op);

const char *lg_binop_name(lg_binop op);
const char *lg_unop_name(lg_unop op);
/* broadcasting binary op; comparisons give bool */
lg_tensor *lg_binary(lg_binop op, lg_tensor *a, lg_tensor *b);
/* a OP s (or s OP a when scalar_first) */
lg_tensor *lg_binary_scalar(lg_binop op, lg_tensor *a, double s,
                            bool scalar_first);
/* in place: a = a OP b (b broadcasts to a) */
int lg_binary_(lg_binop op, lg_tensor *a, lg_tensor *b);
int lg_binary_scalar_(lg_binop op, lg_tensor *a, double s);
lg_tensor *lg_unary(lg_unop op, lg_tensor *a);
int lg_unary_(lg_unop op, lg_tensor *a);
lg_tensor *lg_clamp(lg_tensor *a, double lo, double hi); /* NaN: no bound */
lg_tensor *lg_leaky_relu(lg_tensor *a, double slope);
lg_tensor *lg_where(lg_tensor *cond, lg_tensor *a, lg_tensor *b);
/* a + alpha * b, the fused update used by optimizers on raw data */
int lg_axpy_(lg_tensor *a, double alpha, lg_tensor *b);

/* ---- reductions ---- */
typedef enum {
  LG_RED_SUM, LG_RED_MEAN, LG_RED_PROD, LG_RED_MAX, LG_RED_MIN,
  LG_RED_ANY, LG_RED_ALL
} lg_redop;
/* along dim, or over every element (a 0-d tensor) for LG_ALL_DIMS;
 * dims may be negative (from the end) */
lg_tensor *lg_reduce(lg_redop op, lg_tensor *t, int dim, bool keepdim);
lg_tensor *lg_sum(lg_tensor *t);
lg_tensor *lg_sum_to(lg_tensor *t, int ndim, const int64_t *shape);
lg_tensor *lg_var(lg_tensor *t, int dim, bool keepdim, bool unbiased);
lg_tensor *lg_norm(lg_tensor *t, double p, int dim, bool keepdim);
lg_tensor *lg_logsumexp(lg_tensor *t, int dim, bool keepdim);
lg_tensor *lg_softmax(lg_tensor *t, int dim);
lg_tensor *lg_log_softmax(lg_tensor *t, int dim);
lg_tensor *lg_cumsum(lg_tensor *t, int dim);
/* values and 0-based int64 indices of max/min along dim */
int lg_max_dim(lg_tensor *t, int dim, bool keepdim, bool is_min,
               lg_tensor **values, lg_tensor **indices);
lg_tensor *lg_argmax(lg_tensor *t, int dim, bool keepdim, bool is_min);

/* ---- indexing ---- */
lg_tensor *lg_index_select(lg_tensor *t, int dim, lg_tensor *index);
lg_tensor *lg_gather(lg_tensor *t, int dim, lg_tensor *index);
int lg_scatter_(lg_tensor *t, int dim, lg_tensor *index, lg_tensor *src);
lg_tensor *lg_scatter_add(lg_tensor *t, int dim, lg_tensor *index,
                          lg_tensor *src);
lg_tensor *lg_index_add(lg_tensor *t, int dim, lg_tensor *index,
                        lg_tensor *src); /* out-of-place */
lg_tensor *lg_masked_fill(lg_tensor *t, lg_tensor *mask, double v);
lg_tensor *lg_cat(int n, lg_tensor **ts, int dim);
lg_tensor *lg_stack(int n, lg_tensor **ts, int dim);
int lg_topk(lg_tensor *t, int64_t k, int dim, bool largest, bool sorted,
            lg_tensor **values, lg_tensor **indices);
int lg_sort(lg_tensor *t, int dim, bool descending, lg_tensor **values,
            lg_tensor **indices);

/* ---- linear algebra ---- */
lg_tensor *lg_matmul(lg_tensor *a, lg_tensor *b);
lg_tensor *lg_mm(lg_tensor *a, lg_tensor *b);
lg_tensor *lg_dot(lg_tensor *a, lg_tensor *b);
lg_tensor *lg_outer(lg_tensor *a, lg_tensor *b);
/* C (m x n) = alpha * op(A) op(B) + beta * C over raw row-major data */
void lg_gemm(lg_dtype d, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
             double alpha, const void *a, int64_t lda, const void *b,
             int64_t ldb, double beta, void *c, int64_t ldc);
void lg_gemm_naive(lg_dtype d, bool ta, bool tb, int64_t m, int64_t n,
                   int64_t k, double alpha, const void *a, int64_t lda,
                   const void *b, int64_t ldb, double beta, void *c,
                   int64_t ldc);

/* ---- threads ---- */
void lg_set_num_threads(int n);
int lg_get_num_threads(void);
/* which BLAS and kernels GEMM uses, e.g. "OpenBLAS 0.3.21 ..., kernels
 * SkylakeX" */
const char *lg_blas_info(void);
/* "oneDNN 2.6.3, kernels avx512_core_bf16", or why reduced-precision products
 * fall back to conversion plus sgemm */
const char *lg_dnnl_info(void);

/* ---- autograd ---- */
/* grad mode is per thread */
bool lg_grad_enabled(void);
bool lg_set_grad_enabled(bool on); /* returns the previous state */
/* 0, or -1 for a tensor whose dtype cannot carry gradients (int64, bool)
 * or a non-leaf asked to stop requiring grad */
int lg_set_requires_grad(lg_tensor *t, bool on);
/* keeps .grad of a non-leaf t after backward (PyTorch's retain_grad) */
void lg_retain_grad(lg_tensor *t);
/* true when grad mode is on and one of the n tensors requires grad */
bool lg_any_requires_grad(int n, lg_tensor **ts);
int lg_backward(lg_tensor *root, lg_tensor *grad, bool retain_graph,
                bool create_graph);
/* gradients of outputs w.r.t. inputs; grads[i] NULL when unreachable */
int lg_grad(int nout, lg_tensor **outputs, lg_tensor **grad_outputs,
            int nin, lg_tensor **inputs, lg_tensor **grads,
            bool retain_graph, bool create_graph, bool allow_unused);
const char *lg_grad_fn_name(const lg_tensor *t);
bool lg_is_leaf(const lg_tensor *t);
void lg_set_anomaly_detection(bool on);
bool lg_anomaly_detection(void);
/* A process-wide hook for lg_backward (not lg_grad): called with each leaf
 * once its gradient is final for this backward, then with NULL when the
 * backward has finished; a nonzero return fails the backward (set
 * lg_seterr).  NULL removes it.  lg.dist's data parallelism starts its
 * all-reduces from here while backward goes on. */
typedef int (*lg_grad_ready_fn)(lg_tensor *leaf, void *ctx);
void lg_set_grad_ready_hook(lg_grad_ready_fn fn, void *ctx);

/* Writing a differentiable op: compute the output without recording, then
 * call lg_record(); when it returns a node, save what backward needs with
 * lg_node_save() (any number of tensors) and the op's parameters in a
 * struct of its own kept in the node:
 *     struct narrow_state { int dim; int64_t start, len; };
 *     LG_NODE_STATE(node, struct narrow_state)->dim = dim;
 * (zeroed when the node is recorded; its size is checked at compile time
 * against LG_NODE_STATE_SIZE; larger state goes in ctx).  backward
 * receives the output gradient and fills grads[i] (new references, or NULL
 * for no gradient) for every input i where node->needs_grad[i]. */
#define LG_NODE_INLINE 4
#define LG_NODE_STATE_SIZE 160
typedef int (*lg_backward_fn)(lg_node *node, lg_tensor *grad_out,
                              lg_tensor **grads);
typedef struct lg_edge {
  lg_node *fn;      /* producer of the input, retained; or NULL */
  lg_tensor *leaf;  /* the input when it is a leaf requiring grad */
} lg_edge;
/* a shape kept by a node (a binary op's input shapes, to undo broadcasts) */
typedef struct lg_shape {
  int ndim;
  int64_t dim[LG_MAX_DIMS];
} lg_shape;
struct lg_node {
  int64_t refcount;
  const char *name;
  lg_backward_fn backward;
  int ninputs;
  lg_edge *edges;
  bool *needs_grad;
  lg_edge edges_inline[LG_NODE_INLINE];
  bool needs_grad_inline[LG_NODE_INLINE];
  int nsaved, saved_cap;
  lg_tensor **saved;         /* saved_inline, or a larger array */
  uint64_t *saved_version;
  lg_tensor *saved_inline[LG_NODE_INLINE];
  uint64_t saved_version_inline[LG_NODE_INLINE];
  bool released; /* saved tensors freed after backward */
  union {        /* the op's state struct, see LG_NODE_STATE */
    int64_t i;
    double d;
    void *p;
    unsigned char bytes[LG_NODE_STATE_SIZE];
  } state;
  int ninput_shape;
  int64_t input_shape[LG_MAX_DIMS]; /* often needed to undo broadcasts */
  lg_dtype input_dtype;
  lg_tensor *retained_out; /* weak: non-leaf output with retains_grad */
  void *ctx;                       /* op-specific data */
  void (*ctx_free)(void *ctx);     /* frees ctx with the node */
  /* engine bookkeeping */
  int64_t deps;
  lg_tensor *grad_accum;
  lg_node *topo_next;
};
/* the node's state as a T *; does not compile when T is too large */
#define LG_NODE_STATE(node, T)                                                \
  ((T *)(void *)((node)->state.bytes +                                        \
                 0 * sizeof(char[sizeof(T) <= LG_NODE_STATE_SIZE ? 1 : -1])))
lg_node *lg_record(lg_tensor *out, const char *name, lg_backward_fn bw,
                   int n, lg_tensor **inputs);
int lg_node_save(lg_node *node, lg_tensor *t);
/* the saved tensor i, or NULL with an error if it was modified in place
 * or already freed */
lg_tensor *lg_node_saved(lg_node *node, int i);
void lg_node_release(lg_node *n);
/* accumulate g into *acc (new tensor on first use) */
int lg_accumulate(lg_tensor **acc, lg_tensor *g);

/* ---- row-sparse gradients (core/rowsparse.c) ----
 * An embedding's gradient touches few rows of a big table.  A row-sparse
 * tensor is a dense block of values (nnz, d...) whose sparse_rows lists
 * which rows of a (sparse_dim0, d...) tensor they are.  The engine keeps
 * such a gradient sparse in a leaf's .grad (sparse + sparse merges the row
 * lists, sparse + dense gives dense); everything else sees it densified. */
static inline bool lg_is_row_sparse(const lg_tensor *t) {
  return t && t->sparse_rows != NULL;
}
/* makes values (nnz, d...) row-sparse over rows (int64 (nnz), sorted and
 * unique, retained) of a tensor with dim0 rows; returns values or NULL */
lg_tensor *lg_rowsparse_attach(lg_tensor *values, lg_tensor *rows,
                               int64_t dim0);
/* the dense tensor (dim0, d...) a row-sparse one stands for */
lg_tensor *lg_rowsparse_to_dense(const lg_tensor *g);
/* a + b for two row-sparse tensors of one shape: a new row-sparse tensor */
lg_tensor *lg_rowsparse_add(const lg_tensor *a, const lg_tensor *b);
/* dense += sparse, in place (bumps dense's version) */
int lg_rowsparse_add_into(lg_tensor *dense, const lg_tensor *sp);
/* *acc += g where either may be row-sparse (the rule of a leaf's .grad) */
int lg_grad_accumulate(lg_tensor **acc, lg_tensor *g);

/* ---- embedding bags (ops/embedding.c) ----
 * weight (V, D); indices int64 (N) with offsets (B) holding each bag's
 * first position, or indices (B, L) and offsets NULL; indices, offsets and
 * padding_idx are in index_base (1 from Lua).  per_sample_weights (N or
 * (B, L), sum mode only) or NULL.  Out (B, D); empty bags give zeros.
 * sparse: weight's gradient is row-sparse. */
typedef enum { LG_BAG_SUM, LG_BAG_MEAN, LG_BAG_MAX, LG_BAG_SINGLE } lg_bag_mode;
lg_tensor *lg_embedding_bag(lg_tensor *weight, lg_tensor *indices,
                            lg_tensor *offsets, lg_tensor *per_sample_weights,
                            lg_bag_mode mode, int64_t padding_idx, bool sparse,
                            int64_t index_base);
/* embedding (out (indices.shape..., D)) with the choice of a row-sparse
 * gradient; padding rows are read but get no gradient */
lg_tensor *lg_embedding_rows(lg_tensor *indices, lg_tensor *weight,
                             int64_t padding_idx, bool sparse,
                             int64_t index_base);

/* ---- optimizers ----
 *   lg_optim *o = lg_optim_new("Adam");            -- any of lg.optim's names
 *   lg_optim_add_params(o, 2, (lg_tensor *[]){w, b}, 1e-3);
 *   lg_optim_set(o, 0, "weight_decay", 1e-4);      -- other options by name
 *   for (...) { forward; lg_backward(loss, NULL, false, false);
 *               lg_optim_step(o, NULL, NULL, NULL); lg_optim_zero_grad(o, true); }
 *   lg_optim_free(o);                              -- releases the params */
typedef struct lg_optim lg_optim;
/* a closure re-evaluates the loss (calling backward); 0, or -1 on error */
typedef int (*lg_closure_fn)(void *ctx, double *loss);
lg_optim *lg_optim_new(const char *kind); /* NULL for an unknown name */
void lg_optim_free(lg_optim *o);
/* a group of n parameters (retained) with the algorithm's defaults and
 * learning rate lr; returns the group's index, or -1 */
int lg_optim_add_params(lg_optim *o, int n, lg_tensor **params, double lr);
/* calls closure (if any), then updates every parameter that has a
 * gradient; *loss gets the closure's loss */
int lg_optim_step(lg_optim *o, lg_closure_fn closure, void *ctx, double *loss);
/* set_to_none: release each .grad; else zero it in place */
int lg_optim_zero_grad(lg_optim *o, bool set_to_none);
/* hyperparameter access by name for each parameter group (schedulers and
 * the Lua binding use these) */
int lg_optim_ngroups(const lg_optim *o);
int lg_optim_get(const lg_optim *o, int group, const char *key, double *v);
/* an unknown key is an error ("Adam: unknown option 'weight_decy'"), as
 * in Lua; keys of the host's own go through lg_optim_set_extra (kept with
 * the group and in state_dict, as PyTorch's group dicts keep them) */
int lg_optim_set(lg_optim *o, int group, const char *key, double v);
int lg_optim_set_extra(lg_optim *o, int group, const char *key, double v);

/* ---- checkpoints ----
 * Named tensors to and from a safetensors file: the files lg.save writes
 * for a table of tensors (nested keys dotted, "fc1.weight") and lg.load
 * reads.  lg_save writes atomically (a failed write leaves the old file).
 * lg_checkpoint_load gives n names (malloc'd strings) and n tensors
 * (owned) in the file's order; free both with lg_checkpoint_free.
 *   lg_tensor *ts[] = {w, b};
 *   lg_checkpoint_save("ckpt.safetensors", 2, (const char *[]){"w", "b"},
 *                      ts);
 *   int n; char **names; lg_tensor **loaded;
 *   if (lg_checkpoint_load("ckpt.safetensors", &n, &names, &loaded) == 0) {
 *     ... use names[i], loaded[i] ...
 *     lg_checkpoint_free(n, names, loaded);
 *   } */
int lg_checkpoint_save(const char *path, int n, const char *const *names,
            lg_tensor *const *tensors);
int lg_checkpoint_load(const char *path, int *n, char ***names,
                       lg_tensor ***tensors);
void lg_checkpoint_free(int n, char **names, lg_tensor **tensors);

/* functional ops and losses (linear, conv2d, pooling, norms, dropout,
 * cross_entropy, ...) */
#include "nn.h"
/* slicing, the shape/selection/linear-algebra ops of the tensor API and
 * in-place ops recorded in a graph */
#include "tensor_api.h"

#endif
