/*
 * nn.h -- functional neural-network ops and losses (runtime/ops_nn.c,
 * runtime/ops_loss.c).
 *
 * Every function returns a new tensor (one reference owned by the caller)
 * or NULL with lg_errmsg() set.  Each op is differentiable: it computes its
 * output with raw kernels on contiguous data, then records one autograd
 * node whose backward stands beside the forward.
 *
 * Under create_graph, linear, dropout, the regression losses (mse, l1,
 * smooth_l1, huber), cross_entropy and nll_loss build their gradients from
 * differentiable ops, so they can be differentiated again.  The others
 * (conv2d, pooling, embedding, the norms, binary_cross_entropy,
 * bce_with_logits, kl_div) compute gradients with raw kernels; their
 * gradients carry a node that raises when differentiated again, rather
 * than silently contributing zero.
 *
 * Indices here are 0-based as in the rest of the C API, except class
 * labels and embedding indices, which are read relative to `index_base`
 * (0 from C, 1 from the Lua binding) so that no shifted copy is made and
 * error messages quote the caller's own numbers.
 *
 * Example:
 *   lg_conv2d_opts o = LG_CONV2D_DEFAULTS;
 *   o.padding[0] = o.padding[1] = 1;
 *   lg_tensor *y = lg_conv2d(x, w, b, &o);     -- x (N,C,H,W), w (O,C,3,3)
 *   lg_tensor *l = lg_cross_entropy(y2, labels, NULL, 0.0, -100, 0,
 *                                   LG_REDUCTION_MEAN);
 */
#ifndef LGRAD_NN_H
#define LGRAD_NN_H

#include "lgrad.h"

typedef enum {
  LG_REDUCTION_NONE = 0,
  LG_REDUCTION_MEAN = 1,
  LG_REDUCTION_SUM = 2,
  LG_REDUCTION_BATCHMEAN = 3 /* kl_div only: sum / batch size */
} lg_reduction;

/* ---- linear ---- */
/* x (..., in), w (out, in), b (out) or NULL: y (..., out) = x w^T + b;
 * differentiable twice (its backward uses lg_matmul under create_graph) */
lg_tensor *lg_linear(lg_tensor *x, lg_tensor *w, lg_tensor *b);

/* ---- convolution ---- */
typedef struct {
  int64_t stride[2];
  int64_t padding[2];
  int64_t dilation[2];
  int64_t groups;
} lg_conv2d_opts;
#define LG_CONV2D_DEFAULTS                                                     \
  { {1, 1}, {0, 0}, {1, 1}, 1 }
/* x (N, C, H, W) or (C, H, W), w (O, C / groups, kh, kw), b (O) or NULL;
 * float32 or float64 */
lg_tensor *lg_conv2d(lg_tensor *x, lg_tensor *w, lg_tensor *b,
                     const lg_conv2d_opts *o);

/* ---- pooling ---- */
typedef struct {
  int64_t kernel[2];
  int64_t stride[2]; /* 0: the kernel size */
  int64_t padding[2];
  int64_t dilation[2]; /* max pooling only */
  bool ceil_mode;
  bool count_include_pad;   /* avg pooling only */
  int64_t divisor_override; /* avg pooling only; 0: none */
} lg_pool2d_opts;
#define LG_POOL2D_DEFAULTS                                                     \
  { {1, 1}, {0, 0}, {0, 0}, {1, 1}, false, true, 0 }
/* x (N, C, H, W) or (C, H, W).  When indices is not NULL it receives the
 * int64 flat index (h * W + w, 0-based) of each maximum. */
lg_tensor *lg_max_pool2d(lg_tensor *x, const lg_pool2d_opts *o,
                         lg_tensor **indices);
lg_tensor *lg_avg_pool2d(lg_tensor *x, const lg_pool2d_opts *o);

/* ---- embedding, dropout, one_hot ---- */
/* idx int64 of any shape (values index_base .. index_base + V - 1),
 * weight (V, D): out (idx.shape..., D); rows equal to padding_idx get no
 * gradient (pass a value outside the range for none) */
lg_tensor *lg_embedding(lg_tensor *idx, lg_tensor *weight, int64_t padding_idx,
                        int64_t index_base);
/* inverted dropout: zeroes elements with probability p and scales the rest
 * by 1 / (1 - p); identity (x retained) when not training or p == 0.
 * g NULL: the default generator. */
lg_tensor *lg_dropout(lg_tensor *x, double p, bool training, lg_generator *g);
/* labels int64 (values index_base ..), out int64 (labels.shape..., C);
 * C < 0: the largest label + 1 - index_base */
lg_tensor *lg_one_hot(lg_tensor *labels, int64_t C, int64_t index_base);

/* ---- normalization ---- */
/* normalizes over the last nnorm dims, which must equal
 * normalized_shape; weight and bias of normalized_shape or NULL */
lg_tensor *lg_layer_norm(lg_tensor *x, int nnorm,
                         const int64_t *normalized_shape, lg_tensor *weight,
                         lg_tensor *bias, double eps);
/* x (N, C, ...); running_mean/var (C) or NULL (required when not
 * training), updated in place when training: rm = (1 - m) rm + m mean,
 * rv = (1 - m) rv + m var_unbiased; weight, bias (C) or NULL */
lg_tensor *lg_batch_norm(lg_tensor *x, lg_tensor *running_mean,
                         lg_tensor *running_var, lg_tensor *weight,
                         lg_tensor *bias, bool training, double momentum,
                         double eps);

/* ---- losses ---- */
/* parses "none" | "mean" | "sum" ("batchmean" when allow_batchmean);
 * -1 when unknown */
int lg_reduction_from_name(const char *name, bool allow_batchmean);
const char *lg_reduction_name(lg_reduction r);

/* input and target of one shape (a target of another dtype is converted
 * to the input's) */
lg_tensor *lg_mse_loss(lg_tensor *input, lg_tensor *target, lg_reduction r);
lg_tensor *lg_l1_loss(lg_tensor *input, lg_tensor *target, lg_reduction r);
lg_tensor *lg_smooth_l1_loss(lg_tensor *input, lg_tensor *target, double beta,
                             lg_reduction r);
lg_tensor *lg_huber_loss(lg_tensor *input, lg_tensor *target, double delta,
                         lg_reduction r);
/* logits (N, C, d...) or (C); target int64 class labels (N, d...) or ()
 * relative to index_base, or float probabilities of the logits' shape.
 * weight (C) or NULL; labels equal to ignore_index contribute nothing
 * (class-label targets only). */
lg_tensor *lg_cross_entropy(lg_tensor *logits, lg_tensor *target,
                            lg_tensor *weight, double label_smoothing,
                            int64_t ignore_index, int64_t index_base,
                            lg_reduction r);
/* logp (N, C, d...) or (C), target int64 labels (N, d...) or () */
lg_tensor *lg_nll_loss(lg_tensor *logp, lg_tensor *target, lg_tensor *weight,
                       int64_t ignore_index, int64_t index_base,
                       lg_reduction r);
/* p in [0, 1]; each log is clamped to >= -100; weight broadcasts to p */
lg_tensor *lg_binary_cross_entropy(lg_tensor *p, lg_tensor *target,
                                   lg_tensor *weight, lg_reduction r);
/* weight broadcasts to x, pos_weight along the last dim (C) */
lg_tensor *lg_bce_with_logits(lg_tensor *x, lg_tensor *target,
                              lg_tensor *weight, lg_tensor *pos_weight,
                              lg_reduction r);
/* log_q and p (or log p when log_target) of one shape; MEAN averages over
 * every element, BATCHMEAN divides the sum by the size of dim 0 */
lg_tensor *lg_kl_div(lg_tensor *log_q, lg_tensor *p, bool log_target,
                     lg_reduction r);

/* ---- attention (ops/attention.c) ---- */
typedef struct {
  lg_tensor *attn_mask; /* NULL, bool (true: attend) or additive float,
                           broadcasting to (..., Tq, Tk) */
  double dropout_p;     /* on the attention weights, from gen */
  bool is_causal;       /* key j attends query i when j <= i */
  double scale;         /* NaN: 1 / sqrt(D) */
  lg_generator *gen;    /* NULL: the default generator */
} lg_sdpa_opts;
#define LG_SDPA_DEFAULTS                                                       \
  { NULL, 0.0, false, NAN, NULL }
/* q (..., Tq, D), k (..., Tk, D), v (..., Tk, Dv): softmax(q k^T * scale +
 * mask) v, (..., Tq, Dv), fused: blocks of queries against blocks of keys
 * with an online softmax, so no Tq x Tk matrix is held; backward
 * recomputes the blocks from each row's saved log-sum-exp.  A row with
 * every key masked gives zeros.  The mask gets no gradient. */
lg_tensor *lg_scaled_dot_product_attention(lg_tensor *q, lg_tensor *k,
                                           lg_tensor *v,
                                           const lg_sdpa_opts *o);

#endif
