/*
 * ops/loss.c -- loss functions with PyTorch's reductions: mse, l1,
 * smooth_l1, huber, cross_entropy (fused log-softmax), nll,
 * binary_cross_entropy, bce_with_logits, kl_div.
 *
 * Each loss computes its value with raw loops (sums in double) and
 * records one node; its backward stands right after it with the formula
 * in a comment.  With reduction "mean" or "sum" the output is 0-d; with
 * "none" it has the per-element shape.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "../nn.h"

#define SHAPE_BUF 192

/* ---- shared helpers ---- */

static inline double ld(lg_dtype d, const void *p, int64_t i) {
  return d == LG_FLOAT32 ? (double)((const float *)p)[i]
                         : ((const double *)p)[i];
}

static inline void st(lg_dtype d, void *p, int64_t i, double v) {
  if (d == LG_FLOAT32)
    ((float *)p)[i] = (float)v;
  else
    ((double *)p)[i] = v;
}

static lg_tensor *contig(lg_tensor *t) {
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c = lg_contiguous(t);
  lg_set_grad_enabled(was);
  return c;
}

/* t converted to dtype d and made contiguous, without recording */
static lg_tensor *contig_as(lg_tensor *t, lg_dtype d) {
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c;
  if (t->dtype != d) {
    lg_tensor *u = lg_to_dtype(t, d);
    c = u ? lg_contiguous(u) : NULL;
    lg_release(u);
  } else {
    c = lg_contiguous(t);
  }
  lg_set_grad_enabled(was);
  return c;
}

/* w broadcast to the shape of like, contiguous, of like's dtype; no
 * gradient flows into it */
static lg_tensor *expand_as(const char *fn, const char *what, lg_tensor *w,
                            lg_tensor *like) {
  char sa[SHAPE_BUF], sb[SHAPE_BUF];
  bool ok = w->ndim <= like->ndim;
  for (int k = 1; ok && k <= w->ndim; k++) {
    int64_t a = w->shape[w->ndim - k], b = like->shape[like->ndim - k];
    ok = a == b || a == 1;
  }
  if (!ok) {
    lg_seterr("%s: %s %s does not broadcast to the input %s", fn, what,
              lg_shape_str(w, sa, sizeof sa),
              lg_shape_str(like, sb, sizeof sb));
    return NULL;
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *e = lg_expand(w, like->ndim, like->shape);
  lg_tensor *c = e ? contig_as(e, like->dtype) : NULL;
  lg_release(e);
  lg_set_grad_enabled(was);
  return c;
}

static int check_float(const char *fn, const char *what, lg_tensor *t) {
  if (lg_dtype_is_float(t->dtype))
    return 0;
  lg_seterr("%s: %s must be float32 or float64 (got %s)", fn, what,
            lg_dtype_name(t->dtype));
  return -1;
}

static int check_same_shape(const char *fn, lg_tensor *input,
                            lg_tensor *target) {
  if (lg_same_shape(input, target))
    return 0;
  char sa[SHAPE_BUF], sb[SHAPE_BUF];
  lg_seterr("%s: input %s and target %s have different shapes", fn,
            lg_shape_str(input, sa, sizeof sa),
            lg_shape_str(target, sb, sizeof sb));
  return -1;
}

/* the target as the input's dtype: converted through a (differentiable)
 * cast when it differs, else retained */
static lg_tensor *target_as_input(const char *fn, lg_tensor *input,
                                  lg_tensor *target) {
  if (target->dtype == input->dtype)
    return lg_retain(target);
  if (target->dtype == LG_BOOL) {
    lg_seterr("%s: target must be a number tensor (got bool)", fn);
    return NULL;
  }
  return lg_to_dtype(target, input->dtype);
}

/* a 0-d tensor of dtype d holding v, or the per-element tensor out */
static lg_tensor *scalar_out(lg_dtype d, double v) { return lg_scalar(d, v); }

/* the output gradient as a contiguous tensor of dtype d (reduction none)
 * or its value times scale (mean, sum) */
typedef struct {
  lg_tensor *t; /* per element, or NULL */
  const void *p;
  double s;
} grad_view;

static int grad_open(grad_view *gv, lg_tensor *grad_out, lg_dtype d,
                     bool per_element, double scale) {
  gv->t = NULL;
  gv->p = NULL;
  gv->s = 0;
  if (per_element) {
    if (!(gv->t = contig_as(grad_out, d)))
      return -1;
    gv->p = lg_data_ptr(gv->t);
    gv->s = scale;
    return 0;
  }
  gv->s = lg_item(grad_out) * scale;
  return 0;
}

static inline double grad_at(const grad_view *gv, lg_dtype d, int64_t i) {
  return gv->p ? ld(d, gv->p, i) * gv->s : gv->s;
}


int lg_reduction_from_name(const char *name, bool allow_batchmean) {
  if (!name) {
    lg_seterr("lg_reduction_from_name: argument %d is NULL", 1);
    return -1;
  }
  if (!strcmp(name, "none"))
    return LG_REDUCTION_NONE;
  if (!strcmp(name, "mean"))
    return LG_REDUCTION_MEAN;
  if (!strcmp(name, "sum"))
    return LG_REDUCTION_SUM;
  if (allow_batchmean && !strcmp(name, "batchmean"))
    return LG_REDUCTION_BATCHMEAN;
  return -1;
}

const char *lg_reduction_name(lg_reduction r) {
  switch (r) {
  case LG_REDUCTION_NONE:
    return "none";
  case LG_REDUCTION_MEAN:
    return "mean";
  case LG_REDUCTION_SUM:
    return "sum";
  case LG_REDUCTION_BATCHMEAN:
    return "batchmean";
  }
  return "?";
}

static int check_reduction(const char *fn, lg_reduction r,
                           bool allow_batchmean) {
  if (r == LG_REDUCTION_NONE || r == LG_REDUCTION_MEAN ||
      r == LG_REDUCTION_SUM || (allow_batchmean && r == LG_REDUCTION_BATCHMEAN))
    return 0;
  lg_seterr("%s: unknown reduction (%d)", fn, (int)r);
  return -1;
}

static lg_node *record(lg_tensor *out, const char *name, lg_backward_fn bw,
                       int n, lg_tensor **inputs) {
  if (!lg_grad_enabled() || !lg_any_requires_grad(n, inputs))
    return NULL;
  return lg_record(out, name, bw, n, inputs);
}

/* ==== element-wise regression losses ==== */

typedef enum { PW_MSE, PW_L1, PW_SMOOTH_L1, PW_HUBER } pw_kind;

/* the element-wise losses keep which one, the reduction and beta/delta */
struct pw_state {
  pw_kind kind;
  lg_reduction r;
  double prm;
};
#define PW(n) LG_NODE_STATE(n, struct pw_state)
static const char *const pw_names[] = {"mse_loss", "l1_loss", "smooth_l1_loss",
                                       "huber_loss"};

/* loss of one difference r = input - target:
 *   mse r^2;  l1 |r|;
 *   smooth_l1 (beta) 0.5 r^2 / beta if |r| < beta else |r| - 0.5 beta;
 *   huber (delta)    0.5 r^2 if |r| < delta else delta (|r| - 0.5 delta) */
static inline double pw_value(pw_kind k, double r, double prm) {
  double a = fabs(r);
  switch (k) {
  case PW_MSE:
    return r * r;
  case PW_L1:
    return a;
  case PW_SMOOTH_L1:
    return a < prm ? 0.5 * r * r / prm : a - 0.5 * prm;
  case PW_HUBER:
    return a < prm ? 0.5 * r * r : prm * (a - 0.5 * prm);
  }
  return 0;
}

/* d loss / d r:  mse 2r;  l1 sign(r);  smooth_l1 r / beta inside, else
 * sign(r);  huber r inside, else delta sign(r) */
static inline double pw_deriv(pw_kind k, double r, double prm) {
  double sg = (r > 0) - (r < 0);
  switch (k) {
  case PW_MSE:
    return 2 * r;
  case PW_L1:
    return sg;
  case PW_SMOOTH_L1:
    return r < -prm ? -1.0 : r > prm ? 1.0 : r / prm;
  case PW_HUBER:
    return r < -prm ? -prm : r > prm ? prm : r;
  }
  return 0;
}

/* The same gradient through differentiable ops, for create_graph:
 * deriv(r) is 2r, sign(r), clamp(r / beta, -1, 1) or clamp(r, -delta,
 * delta). */
static int pw_backward_graph(lg_node *node, lg_tensor *a, lg_tensor *b,
                             lg_tensor *grad_out, lg_tensor **grads) {
  pw_kind k = PW(node)->kind;
  lg_reduction r = PW(node)->r;
  double prm = PW(node)->prm;
  lg_tensor *diff = lg_binary(LG_OP_SUB, a, b), *dv = NULL, *g = NULL;
  lg_tensor *t = NULL;
  int rc = -1;
  if (!diff)
    return -1;
  switch (k) {
  case PW_MSE:
    dv = lg_binary_scalar(LG_OP_MUL, diff, 2.0, false);
    break;
  case PW_L1:
    dv = lg_unary(LG_OP_SIGN, diff);
    break;
  case PW_SMOOTH_L1:
    if ((t = lg_binary_scalar(LG_OP_DIV, diff, prm, false)))
      dv = lg_clamp(t, -1.0, 1.0);
    break;
  case PW_HUBER:
    dv = lg_clamp(diff, -prm, prm);
    break;
  }
  if (!dv)
    goto out;
  if (r == LG_REDUCTION_MEAN)
    g = lg_binary_scalar(LG_OP_DIV, grad_out, (double)lg_numel(a), false);
  else
    g = lg_retain(grad_out);
  if (!g || !(grads[0] = lg_binary(LG_OP_MUL, dv, g)))
    goto out;
  if (node->needs_grad[1] && !(grads[1] = lg_unary(LG_OP_NEG, grads[0])))
    goto out;
  if (!node->needs_grad[0]) {
    lg_release(grads[0]);
    grads[0] = NULL;
  }
  rc = 0;
out:
  lg_release(diff);
  lg_release(dv);
  lg_release(g);
  lg_release(t);
  return rc;
}

/* d input = g * deriv(r), d target = -d input (g already includes 1/n for
 * the mean) */
static int pw_backward(lg_node *node, lg_tensor *grad_out, lg_tensor **grads) {
  lg_tensor *a = lg_node_saved(node, 0), *b = lg_node_saved(node, 1);
  if (!a || !b)
    return -1;
  if (lg_grad_enabled())
    return pw_backward_graph(node, a, b, grad_out, grads);
  pw_kind k = PW(node)->kind;
  lg_reduction r = PW(node)->r;
  double prm = PW(node)->prm;
  lg_dtype d = a->dtype;
  int64_t n = lg_numel(a);
  lg_tensor *ac = contig(a), *bc = contig(b);
  grad_view gv = {0};
  int rc = -1;
  if (!ac || !bc ||
      grad_open(&gv, grad_out, d, r == LG_REDUCTION_NONE,
                r == LG_REDUCTION_MEAN ? 1.0 / (double)n : 1.0))
    goto out;
  lg_tensor *da = NULL, *db = NULL;
  if (node->needs_grad[0] && !(da = grads[0] = lg_empty(d, a->ndim, a->shape)))
    goto out;
  if (node->needs_grad[1] && !(db = grads[1] = lg_empty(d, b->ndim, b->shape)))
    goto out;
  const void *ap = lg_data_ptr(ac), *bp = lg_data_ptr(bc);
  void *dap = da ? lg_data_ptr(da) : NULL, *dbp = db ? lg_data_ptr(db) : NULL;
  for (int64_t i = 0; i < n; i++) {
    double v =
        grad_at(&gv, d, i) * pw_deriv(k, ld(d, ap, i) - ld(d, bp, i), prm);
    if (dap)
      st(d, dap, i, v);
    if (dbp)
      st(d, dbp, i, -v);
  }
  rc = 0;
out:
  lg_release(gv.t);
  lg_release(ac);
  lg_release(bc);
  return rc;
}

static lg_tensor *pw_loss(pw_kind k, lg_tensor *input, lg_tensor *target,
                          double prm, lg_reduction r) {
  const char *fn = pw_names[k];
  if (check_reduction(fn, r, false) || check_float(fn, "input", input) ||
      check_same_shape(fn, input, target))
    return NULL;
  lg_tensor *t = target_as_input(fn, input, target);
  if (!t)
    return NULL;
  lg_dtype d = input->dtype;
  int64_t n = lg_numel(input);
  lg_tensor *ac = contig(input), *bc = contig(t), *y = NULL;
  if (!ac || !bc)
    goto fail;
  const void *ap = lg_data_ptr(ac), *bp = lg_data_ptr(bc);
  if (r == LG_REDUCTION_NONE) {
    if (!(y = lg_empty(d, input->ndim, input->shape)))
      goto fail;
    void *yp = lg_data_ptr(y);
    for (int64_t i = 0; i < n; i++)
      st(d, yp, i, pw_value(k, ld(d, ap, i) - ld(d, bp, i), prm));
  } else {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
      s += pw_value(k, ld(d, ap, i) - ld(d, bp, i), prm);
    if (r == LG_REDUCTION_MEAN)
      s /= (double)n;
    if (!(y = scalar_out(d, s)))
      goto fail;
  }
  lg_release(ac);
  lg_release(bc);
  ac = bc = NULL;
  lg_tensor *in[2] = {input, t};
  lg_node *node = record(y, fn, pw_backward, 2, in);
  if (node) {
    *PW(node) = (struct pw_state){k, r, prm};
    if (lg_node_save(node, input) || lg_node_save(node, t))
      goto fail;
  }
  lg_release(t);
  return y;
fail:
  lg_release(ac);
  lg_release(bc);
  lg_release(t);
  lg_release(y);
  return NULL;
}

lg_tensor *lg_mse_loss(lg_tensor *input, lg_tensor *target, lg_reduction r) {
  if (LG_UNUSABLE(input) || LG_UNUSABLE(target)) {
    lg_seterr("lg_mse_loss: argument %d is NULL or revoked",
              (LG_UNUSABLE(input)) ? 1 : 2);
    return NULL;
  }
  return pw_loss(PW_MSE, input, target, 0.0, r);
}

lg_tensor *lg_l1_loss(lg_tensor *input, lg_tensor *target, lg_reduction r) {
  if (LG_UNUSABLE(input) || LG_UNUSABLE(target)) {
    lg_seterr("lg_l1_loss: argument %d is NULL or revoked",
              (LG_UNUSABLE(input)) ? 1 : 2);
    return NULL;
  }
  return pw_loss(PW_L1, input, target, 0.0, r);
}

lg_tensor *lg_smooth_l1_loss(lg_tensor *input, lg_tensor *target, double beta,
                             lg_reduction r) {
  if (LG_UNUSABLE(input) || LG_UNUSABLE(target)) {
    lg_seterr("lg_smooth_l1_loss: argument %d is NULL or revoked",
              (LG_UNUSABLE(input)) ? 1 : 2);
    return NULL;
  }
  if (!(beta >= 0)) {
    lg_seterr("smooth_l1_loss: beta must be non-negative (got %g)", beta);
    return NULL;
  }
  if (beta == 0)
    return pw_loss(PW_L1, input, target, 0.0, r);
  return pw_loss(PW_SMOOTH_L1, input, target, beta, r);
}

lg_tensor *lg_huber_loss(lg_tensor *input, lg_tensor *target, double delta,
                         lg_reduction r) {
  if (LG_UNUSABLE(input) || LG_UNUSABLE(target)) {
    lg_seterr("lg_huber_loss: argument %d is NULL or revoked",
              (LG_UNUSABLE(input)) ? 1 : 2);
    return NULL;
  }
  if (!(delta > 0)) {
    lg_seterr("huber_loss: delta must be positive (got %g)", delta);
    return NULL;
  }
  return pw_loss(PW_HUBER, input, target, delta, r);
}

/* ==== classification losses: cross_entropy and nll ==== */

/* logits (N, C, S...) or (C): rows (n, s) of C values at stride S */
typedef struct {
  int64_t N, C, S;
  bool unbatched;
} cls_geom;

static int cls_geometry(const char *fn, lg_tensor *x, lg_tensor *target,
                        lg_tensor *weight, cls_geom *g, bool *probs) {
  char sa[SHAPE_BUF], sb[SHAPE_BUF];
  if (check_float(fn, "input", x))
    return -1;
  if (x->ndim < 1) {
    lg_seterr("%s: input must be (C), (N, C) or (N, C, d...), got a 0-d "
              "tensor",
              fn);
    return -1;
  }
  g->unbatched = x->ndim == 1;
  g->N = g->unbatched ? 1 : x->shape[0];
  g->C = g->unbatched ? x->shape[0] : x->shape[1];
  g->S = 1;
  for (int k = 2; k < x->ndim; k++)
    g->S *= x->shape[k];
  if (target->dtype == LG_INT64) {
    *probs = false;
    bool ok = target->ndim == x->ndim - 1;
    if (ok && !g->unbatched) {
      ok = target->shape[0] == x->shape[0];
      for (int k = 2; ok && k < x->ndim; k++)
        ok = target->shape[k - 1] == x->shape[k];
    }
    if (!ok) {
      lg_seterr("%s: input %s and target %s do not match (class labels "
                "need the input's shape without its class dim)",
                fn, lg_shape_str(x, sa, sizeof sa),
                lg_shape_str(target, sb, sizeof sb));
      return -1;
    }
  } else if (lg_dtype_is_float(target->dtype)) {
    *probs = true;
    if (!lg_same_shape(x, target)) {
      lg_seterr("%s: input %s and target %s do not match (probabilities "
                "need the input's shape; labels must be int64)",
                fn, lg_shape_str(x, sa, sizeof sa),
                lg_shape_str(target, sb, sizeof sb));
      return -1;
    }
  } else {
    lg_seterr("%s: target must be int64 labels or float probabilities "
              "(got %s)",
              fn, lg_dtype_name(target->dtype));
    return -1;
  }
  if (weight) {
    if (check_float(fn, "weight", weight))
      return -1;
    if (weight->ndim != 1 || weight->shape[0] != g->C) {
      lg_seterr("%s: weight must have shape [%lld] (one per class), got %s", fn,
                (long long)g->C, lg_shape_str(weight, sa, sizeof sa));
      return -1;
    }
  }
  return 0;
}

/* class weights as doubles (1 when weight is NULL); caller frees */
static double *load_weights(const char *fn, lg_tensor *weight, int64_t C) {
  double *w = malloc(sizeof(double) * (size_t)(C ? C : 1));
  if (!w) {
    lg_seterr("%s: out of memory", fn);
    return NULL;
  }
  if (!weight) {
    for (int64_t c = 0; c < C; c++)
      w[c] = 1.0;
    return w;
  }
  lg_tensor *wc = contig(weight);
  if (!wc) {
    free(w);
    return NULL;
  }
  for (int64_t c = 0; c < C; c++)
    w[c] = ld(wc->dtype, lg_data_ptr(wc), c);
  lg_release(wc);
  return w;
}

/* checks every label is in range or equals ignore_index */
static int check_labels(const char *fn, const int64_t *y, int64_t n, int64_t C,
                        int64_t base, int64_t ignore) {
  for (int64_t i = 0; i < n; i++)
    if (y[i] != ignore && (y[i] < base || y[i] >= base + C)) {
      lg_seterr("%s: label %lld out of range %lld..%lld", fn, (long long)y[i],
                (long long)base, (long long)(base + C - 1));
      return -1;
    }
  return 0;
}

/* the per-row output shape: the target's for labels, the input's without
 * its class dim for probabilities */
static lg_tensor *rows_tensor(lg_dtype d, lg_tensor *x, bool unbatched) {
  int64_t shape[LG_MAX_DIMS];
  int nd = 0;
  if (!unbatched) {
    shape[nd++] = x->shape[0];
    for (int k = 2; k < x->ndim; k++)
      shape[nd++] = x->shape[k];
  }
  return lg_empty(d, nd, shape);
}

/* what cross_entropy and nll_loss keep for backward */
struct ce_state {
  lg_reduction r;
  int64_t index_base, ignore_index;
  bool probs, has_weight; /* class probabilities as target; a weight */
  double eps;             /* label_smoothing */
  double Dn, Ds; /* denominators of the nll and the smoothing terms */
};
#define CE(n) LG_NODE_STATE(n, struct ce_state)

/* ---- the same gradients through differentiable ops (create_graph) ---- */

/* per-row values v (R) as a tensor that broadcasts against the logits:
 * (N, 1, d...) or (1) unbatched */
static lg_tensor *row_tensor(lg_dtype d, lg_tensor *x, bool unbatched,
                             const double *v, int64_t R) {
  int64_t shape[LG_MAX_DIMS];
  int nd = unbatched ? 1 : x->ndim;
  for (int k = 0; k < nd; k++)
    shape[k] = unbatched || k == 1 ? 1 : x->shape[k];
  lg_tensor *t = lg_empty(d, nd, shape);
  if (t)
    for (int64_t i = 0; i < R; i++)
      st(d, lg_data_ptr(t), i, v[i]);
  return t;
}

/* class weights (C) shaped to broadcast along the class dim of x */
static lg_tensor *class_tensor(lg_dtype d, lg_tensor *x, bool unbatched,
                               const double *w, int64_t C) {
  int64_t shape[LG_MAX_DIMS];
  int nd = unbatched ? 1 : x->ndim;
  for (int k = 0; k < nd; k++)
    shape[k] = unbatched || k == 1 ? C : 1;
  lg_tensor *t = lg_empty(d, nd, shape);
  if (t)
    for (int64_t c = 0; c < C; c++)
      st(d, lg_data_ptr(t), c, w[c]);
  return t;
}

/* collects the temporaries of a graph backward, released together */
typedef struct {
  lg_tensor *t[24];
  int n;
} tmp_list;

static lg_tensor *keep(tmp_list *l, lg_tensor *t) {
  if (t)
    l->t[l->n++] = t;
  return t;
}

static void tmp_release(tmp_list *l) {
  for (int i = 0; i < l->n; i++)
    lg_release(l->t[i]);
  l->n = 0;
}

/*
 * cross_entropy's and nll_loss's gradients as differentiable ops, with the
 * row coefficients (weights, ignored rows, the mean's divisor) and the
 * one-hot labels as constants:
 *   labels   dx = A g (p - onehot) + S g (W p - w)      (cross_entropy)
 *            dx = -A g onehot                           (nll_loss)
 *   probs    dx = g' (p sum_c w t' - w t'),  dt = -g' (1 - e) w logp
 */
static int cls_backward_graph(lg_node *node, bool is_nll, lg_tensor *x,
                              lg_tensor *target, lg_tensor *weight,
                              lg_tensor *grad_out, lg_tensor **grads) {
  const char *fn = is_nll ? "nll_loss" : "cross_entropy";
  cls_geom g;
  bool probs;
  if (cls_geometry(fn, x, target, weight, &g, &probs))
    return -1;
  lg_reduction r = CE(node)->r;
  int64_t base = CE(node)->index_base, ignore = CE(node)->ignore_index;
  double eps = CE(node)->eps, D = CE(node)->Dn;
  int64_t C = g.C, S = g.S, R = g.N * g.S;
  int cdim = g.unbatched ? 0 : 1;
  lg_dtype d = x->dtype;
  tmp_list tl = {{0}, 0};
  double *w = load_weights(fn, weight, C);
  double *coef = malloc(sizeof(double) * (size_t)(2 * R + 1));
  lg_tensor *gg, *wv, *dx = NULL, *dt = NULL;
  int rc = -1;
  if (!w || !coef)
    goto out;
  double Wsum = 0;
  for (int64_t c = 0; c < C; c++)
    Wsum += w[c];
  /* the output gradient, with a unit class dim when per row */
  if (r == LG_REDUCTION_NONE && !g.unbatched)
    gg = keep(&tl, lg_unsqueeze(grad_out, 1));
  else
    gg = keep(&tl, lg_retain(grad_out));
  if (!gg || !(wv = keep(&tl, class_tensor(d, x, g.unbatched, w, C))))
    goto out;
  if (!probs) {
    lg_tensor *tc = keep(&tl, contig(target));
    lg_tensor *onehot = keep(&tl, lg_zeros(d, x->ndim, x->shape));
    if (!tc || !onehot)
      goto out;
    const int64_t *tp = lg_data_ptr(tc);
    double div = r == LG_REDUCTION_MEAN ? D : 1.0;
    for (int64_t row = 0; row < R; row++) {
      int64_t y = tp[row], n = row / S, s = row % S;
      bool kept = y != ignore;
      coef[row] = kept ? (is_nll ? 1.0 : 1 - eps) * w[y - base] / div : 0;
      coef[R + row] = kept ? eps / (double)C / div : 0;
      if (kept)
        st(d, lg_data_ptr(onehot), (n * C + y - base) * S + s, 1.0);
    }
    lg_tensor *A = keep(&tl, row_tensor(d, x, g.unbatched, coef, R));
    lg_tensor *Ag = A ? keep(&tl, lg_binary(LG_OP_MUL, A, gg)) : NULL;
    if (!Ag)
      goto out;
    if (is_nll) {
      lg_tensor *t = keep(&tl, lg_binary(LG_OP_MUL, Ag, onehot));
      if (!t || !(dx = lg_unary(LG_OP_NEG, t)))
        goto out;
    } else {
      lg_tensor *p = keep(&tl, lg_softmax(x, cdim));
      lg_tensor *pm = p ? keep(&tl, lg_binary(LG_OP_SUB, p, onehot)) : NULL;
      lg_tensor *t1 = pm ? keep(&tl, lg_binary(LG_OP_MUL, Ag, pm)) : NULL;
      if (!t1)
        goto out;
      if (eps > 0) {
        lg_tensor *Sr = keep(&tl, row_tensor(d, x, g.unbatched, coef + R, R));
        lg_tensor *Sg = Sr ? keep(&tl, lg_binary(LG_OP_MUL, Sr, gg)) : NULL;
        lg_tensor *q =
            Sg ? keep(&tl, lg_binary_scalar(LG_OP_MUL, p, Wsum, false)) : NULL;
        lg_tensor *q2 = q ? keep(&tl, lg_binary(LG_OP_SUB, q, wv)) : NULL;
        lg_tensor *t2 = q2 ? keep(&tl, lg_binary(LG_OP_MUL, Sg, q2)) : NULL;
        if (!t2 || !(dx = lg_binary(LG_OP_ADD, t1, t2)))
          goto out;
      } else {
        dx = lg_retain(t1);
      }
    }
  } else {
    /* t' = (1 - e) t + e / C;  g' = g / rows for the mean */
    lg_tensor *a =
        keep(&tl, lg_binary_scalar(LG_OP_MUL, target, 1 - eps, false));
    lg_tensor *tp =
        a ? keep(&tl, lg_binary_scalar(LG_OP_ADD, a, eps / (double)C, false))
          : NULL;
    lg_tensor *wt = tp ? keep(&tl, lg_binary(LG_OP_MUL, wv, tp)) : NULL;
    lg_tensor *sw =
        wt ? keep(&tl, lg_reduce(LG_RED_SUM, wt, cdim, true)) : NULL;
    lg_tensor *gs =
        sw ? keep(&tl, r == LG_REDUCTION_MEAN
                           ? lg_binary_scalar(LG_OP_DIV, gg, (double)R, false)
                           : lg_retain(gg))
           : NULL;
    lg_tensor *p = gs ? keep(&tl, lg_softmax(x, cdim)) : NULL;
    lg_tensor *ps = p ? keep(&tl, lg_binary(LG_OP_MUL, p, sw)) : NULL;
    lg_tensor *u = ps ? keep(&tl, lg_binary(LG_OP_SUB, ps, wt)) : NULL;
    if (!u || !(dx = lg_binary(LG_OP_MUL, gs, u)))
      goto out;
    if (node->needs_grad[1]) {
      lg_tensor *lp = keep(&tl, lg_log_softmax(x, cdim));
      lg_tensor *lw = lp ? keep(&tl, lg_binary(LG_OP_MUL, lp, wv)) : NULL;
      lg_tensor *lg2 = lw ? keep(&tl, lg_binary(LG_OP_MUL, lw, gs)) : NULL;
      if (!lg2 || !(dt = lg_binary_scalar(LG_OP_MUL, lg2, -(1 - eps), false)))
        goto out;
    }
  }
  rc = 0;
out:
  if (!rc) {
    if (node->needs_grad[0])
      grads[0] = dx;
    else
      lg_release(dx);
    if (node->ninputs > 1)
      grads[1] = dt;
    else
      lg_release(dt);
  } else {
    lg_release(dx);
    lg_release(dt);
  }
  tmp_release(&tl);
  free(w);
  free(coef);
  return rc;
}

/*
 * cross_entropy with labels, per row i (logits x, lse = logsumexp x,
 * p = softmax x, label y, smoothing e over C classes, weights w, W = sum w):
 *   loss_i = (1 - e) w_y (lse - x_y) + e / C (W lse - sum_c w_c x_c)
 *   dx_c = a (p_c - [c = y]) + s (W p_c - w_c),
 *   a = (1 - e) g_i w_y / Dn,  s = e / C g_i / Ds
 * (ignored rows contribute nothing).  "mean" divides both terms by
 * D = sum of w_y over kept rows (their count when unweighted).
 * With probability targets t' = (1 - e) t + e / C:
 *   loss_i = -sum_c w_c t'_c (x_c - lse),  "mean" divides by the rows;
 *   dx_c = g_i (p_c sum_c' w_c' t'_c' - w_c t'_c),
 *   dt_c = -g_i (1 - e) w_c (x_c - lse).
 */
static int cross_entropy_backward(lg_node *node, lg_tensor *grad_out,
                                  lg_tensor **grads) {
  const char *fn = "cross_entropy";
  lg_tensor *x = lg_node_saved(node, 0), *target = lg_node_saved(node, 1);
  lg_tensor *lse_t = lg_node_saved(node, 2);
  lg_tensor *weight = CE(node)->has_weight ? lg_node_saved(node, 3) : NULL;
  if (!x || !target || !lse_t || (CE(node)->has_weight && !weight))
    return -1;
  if (lg_grad_enabled())
    return cls_backward_graph(node, false, x, target, weight, grad_out, grads);
  cls_geom g;
  bool probs;
  if (cls_geometry(fn, x, target, weight, &g, &probs))
    return -1;
  lg_reduction r = CE(node)->r;
  int64_t base = CE(node)->index_base, ignore = CE(node)->ignore_index;
  double eps = CE(node)->eps, Dn = CE(node)->Dn, Ds = CE(node)->Ds;
  int64_t N = g.N, C = g.C, S = g.S;
  lg_dtype d = x->dtype;
  lg_tensor *xc = contig(x), *tc = NULL;
  double *w = load_weights(fn, weight, C);
  grad_view gv = {0};
  int rc = -1;
  if (!xc || !w || !(tc = contig_as(target, probs ? d : LG_INT64)) ||
      grad_open(&gv, grad_out, d, r == LG_REDUCTION_NONE, 1.0))
    goto out;
  double Wsum = 0;
  for (int64_t c = 0; c < C; c++)
    Wsum += w[c];
  lg_tensor *dx = NULL, *dt = NULL;
  if (node->needs_grad[0] && !(dx = grads[0] = lg_empty(d, x->ndim, x->shape)))
    goto out;
  if (probs && node->needs_grad[1] &&
      !(dt = grads[1] = lg_empty(d, x->ndim, x->shape)))
    goto out;
  const void *xp = lg_data_ptr(xc), *tp = lg_data_ptr(tc);
  const double *lse = lg_data_ptr(lse_t);
  void *dxp = dx ? lg_data_ptr(dx) : NULL, *dtp = dt ? lg_data_ptr(dt) : NULL;
  double rows = (double)(N * S), sm = eps / (double)C;
  for (int64_t n = 0; n < N; n++)
    for (int64_t s = 0; s < S; s++) {
      int64_t row = n * S + s, o = n * C * S + s;
      double gi = grad_at(&gv, d, row), L = lse[row];
      if (!probs) {
        int64_t y = ((const int64_t *)tp)[row];
        if (!dxp)
          continue;
        if (y == ignore) {
          for (int64_t c = 0; c < C; c++)
            st(d, dxp, o + c * S, 0.0);
          continue;
        }
        y -= base;
        double a = (1 - eps) * gi * w[y], sc = sm * gi;
        if (r == LG_REDUCTION_MEAN) {
          a /= Dn;
          sc /= Ds;
        }
        for (int64_t c = 0; c < C; c++) {
          double p = exp(ld(d, xp, o + c * S) - L);
          double v = a * (p - (c == y)) + sc * (Wsum * p - w[c]);
          st(d, dxp, o + c * S, v);
        }
      } else {
        double gs = r == LG_REDUCTION_MEAN ? gi / rows : gi;
        double wt = 0;
        for (int64_t c = 0; c < C; c++)
          wt += w[c] * ((1 - eps) * ld(d, tp, o + c * S) + sm);
        for (int64_t c = 0; c < C; c++) {
          double xv = ld(d, xp, o + c * S);
          double t = (1 - eps) * ld(d, tp, o + c * S) + sm;
          if (dxp)
            st(d, dxp, o + c * S, gs * (exp(xv - L) * wt - w[c] * t));
          if (dtp)
            st(d, dtp, o + c * S, -gs * (1 - eps) * w[c] * (xv - L));
        }
      }
    }
  rc = 0;
out:
  free(w);
  lg_release(gv.t);
  lg_release(xc);
  lg_release(tc);
  return rc;
}

lg_tensor *lg_cross_entropy(lg_tensor *logits, lg_tensor *target,
                            lg_tensor *weight, double label_smoothing,
                            int64_t ignore_index, int64_t index_base,
                            lg_reduction r) {
  if (LG_UNUSABLE(logits) || LG_UNUSABLE(target) ||
      (weight && weight->storage->revoked)) {
    lg_seterr("lg_cross_entropy: argument %d is NULL or revoked",
              (LG_UNUSABLE(logits))   ? 1
              : (LG_UNUSABLE(target)) ? 2
                                      : 3);
    return NULL;
  }
  const char *fn = "cross_entropy";
  cls_geom g;
  bool probs;
  if (check_reduction(fn, r, false) ||
      cls_geometry(fn, logits, target, weight, &g, &probs))
    return NULL;
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
    lg_seterr("%s: label_smoothing must be between 0 and 1 (got %g)", fn,
              label_smoothing);
    return NULL;
  }
  int64_t N = g.N, C = g.C, S = g.S, R = N * S;
  lg_dtype d = logits->dtype;
  double eps = label_smoothing, sm = eps / (double)C;
  lg_tensor *xc = contig(logits), *tc = NULL, *lse_t = NULL, *y = NULL;
  lg_tensor *tconv = NULL;
  double *w = load_weights(fn, weight, C);
  if (!xc || !w)
    goto fail;
  if (probs) {
    /* a differentiable cast when the dtypes differ */
    if (!(tconv = target_as_input(fn, logits, target)) || !(tc = contig(tconv)))
      goto fail;
  } else {
    if (!(tc = contig(target)))
      goto fail;
    if (check_labels(fn, lg_data_ptr(tc), R, C, index_base, ignore_index))
      goto fail;
  }
  if (!(lse_t = lg_empty(LG_FLOAT64, 1, &R)))
    goto fail;
  if (r == LG_REDUCTION_NONE && !(y = rows_tensor(d, logits, g.unbatched)))
    goto fail;
  const void *xp = lg_data_ptr(xc), *tp = lg_data_ptr(tc);
  double *lse = lg_data_ptr(lse_t);
  double Wsum = 0;
  for (int64_t c = 0; c < C; c++)
    Wsum += w[c];
  double tot_nll = 0, tot_sm = 0, Dn = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t s = 0; s < S; s++) {
      int64_t row = n * S + s, o = n * C * S + s;
      double mx = -INFINITY;
      for (int64_t c = 0; c < C; c++) {
        double v = ld(d, xp, o + c * S);
        if (v > mx || isnan(v))
          mx = v;
      }
      double se = 0;
      if (isfinite(mx))
        for (int64_t c = 0; c < C; c++)
          se += exp(ld(d, xp, o + c * S) - mx);
      double L = isfinite(mx) ? mx + log(se) : mx;
      lse[row] = L;
      double li;
      if (!probs) {
        int64_t lab = ((const int64_t *)tp)[row];
        if (lab == ignore_index) {
          li = 0;
        } else {
          lab -= index_base;
          double nll = w[lab] * (L - ld(d, xp, o + lab * S)), smooth = 0;
          if (eps > 0) {
            double wx = 0;
            for (int64_t c = 0; c < C; c++)
              wx += w[c] * ld(d, xp, o + c * S);
            smooth = Wsum * L - wx;
          }
          Dn += w[lab];
          tot_nll += nll;
          tot_sm += smooth;
          li = (1 - eps) * nll + sm * smooth;
        }
      } else {
        li = 0;
        for (int64_t c = 0; c < C; c++) {
          double t = (1 - eps) * ld(d, tp, o + c * S) + sm;
          li += w[c] * t * (L - ld(d, xp, o + c * S));
        }
        tot_nll += li;
      }
      if (y)
        st(d, lg_data_ptr(y), row, li);
    }
  double Ds = Dn;
  if (r != LG_REDUCTION_NONE) {
    double v;
    if (probs)
      v = r == LG_REDUCTION_MEAN ? tot_nll / (double)R : tot_nll;
    else if (r == LG_REDUCTION_MEAN)
      v = (1 - eps) * tot_nll / Dn + (eps > 0 ? sm * tot_sm / Ds : 0);
    else
      v = (1 - eps) * tot_nll + sm * tot_sm;
    if (!(y = lg_scalar(d, v)))
      goto fail;
  }
  lg_release(xc);
  lg_release(tc);
  xc = tc = NULL;
  free(w);
  w = NULL;
  lg_tensor *tin = probs ? tconv : target;
  lg_tensor *in[2] = {logits, tin};
  lg_node *node = record(y, fn, cross_entropy_backward, 2, in);
  if (node) {
    CE(node)->r = r;
    CE(node)->index_base = index_base;
    CE(node)->ignore_index = ignore_index;
    CE(node)->probs = probs;
    CE(node)->has_weight = weight != NULL;
    CE(node)->eps = eps;
    CE(node)->Dn = Dn;
    CE(node)->Ds = Ds;
    if (lg_node_save(node, logits) || lg_node_save(node, tin) ||
        lg_node_save(node, lse_t) || (weight && lg_node_save(node, weight)))
      goto fail;
  }
  lg_release(lse_t);
  lg_release(tconv);
  return y;
fail:
  free(w);
  lg_release(xc);
  lg_release(tc);
  lg_release(tconv);
  lg_release(lse_t);
  lg_release(y);
  return NULL;
}

/*
 * nll_loss: loss_i = -w_y logp[i, y] (0 for ignored rows); "mean" divides
 * the sum by the sum of w_y over kept rows.  d logp[i, y] = -g_i w_y / D.
 */
static int nll_loss_backward(lg_node *node, lg_tensor *grad_out,
                             lg_tensor **grads) {
  const char *fn = "nll_loss";
  lg_tensor *x = lg_node_saved(node, 0), *target = lg_node_saved(node, 1);
  lg_tensor *weight = CE(node)->has_weight ? lg_node_saved(node, 2) : NULL;
  if (!x || !target || (CE(node)->has_weight && !weight))
    return -1;
  if (lg_grad_enabled())
    return cls_backward_graph(node, true, x, target, weight, grad_out, grads);
  cls_geom g;
  bool probs;
  if (cls_geometry(fn, x, target, weight, &g, &probs))
    return -1;
  lg_reduction r = CE(node)->r;
  int64_t base = CE(node)->index_base, ignore = CE(node)->ignore_index;
  double D = CE(node)->Dn;
  lg_dtype d = x->dtype;
  lg_tensor *tc = contig(target);
  double *w = load_weights(fn, weight, g.C);
  grad_view gv = {0};
  int rc = -1;
  if (!tc || !w || grad_open(&gv, grad_out, d, r == LG_REDUCTION_NONE, 1.0))
    goto out;
  if (!(grads[0] = lg_zeros(d, x->ndim, x->shape)))
    goto out;
  void *dxp = lg_data_ptr(grads[0]);
  const int64_t *tp = lg_data_ptr(tc);
  for (int64_t n = 0; n < g.N; n++)
    for (int64_t s = 0; s < g.S; s++) {
      int64_t row = n * g.S + s, lab = tp[row];
      if (lab == ignore)
        continue;
      lab -= base;
      double v = -grad_at(&gv, d, row) * w[lab];
      if (r == LG_REDUCTION_MEAN)
        v /= D;
      st(d, dxp, n * g.C * g.S + lab * g.S + s, v);
    }
  rc = 0;
out:
  free(w);
  lg_release(gv.t);
  lg_release(tc);
  return rc;
}

lg_tensor *lg_nll_loss(lg_tensor *logp, lg_tensor *target, lg_tensor *weight,
                       int64_t ignore_index, int64_t index_base,
                       lg_reduction r) {
  if (LG_UNUSABLE(logp) || LG_UNUSABLE(target) ||
      (weight && weight->storage->revoked)) {
    lg_seterr("lg_nll_loss: argument %d is NULL or revoked",
              (LG_UNUSABLE(logp))     ? 1
              : (LG_UNUSABLE(target)) ? 2
                                      : 3);
    return NULL;
  }
  const char *fn = "nll_loss";
  cls_geom g;
  bool probs;
  if (check_reduction(fn, r, false) ||
      cls_geometry(fn, logp, target, weight, &g, &probs))
    return NULL;
  if (probs) {
    lg_seterr("%s: target must be int64 class labels (got %s)", fn,
              lg_dtype_name(target->dtype));
    return NULL;
  }
  int64_t N = g.N, C = g.C, S = g.S, R = N * S;
  lg_dtype d = logp->dtype;
  lg_tensor *xc = contig(logp), *tc = contig(target), *y = NULL;
  double *w = load_weights(fn, weight, C);
  if (!xc || !tc || !w ||
      check_labels(fn, lg_data_ptr(tc), R, C, index_base, ignore_index))
    goto fail;
  if (r == LG_REDUCTION_NONE && !(y = rows_tensor(d, logp, g.unbatched)))
    goto fail;
  const void *xp = lg_data_ptr(xc);
  const int64_t *tp = lg_data_ptr(tc);
  double tot = 0, D = 0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t s = 0; s < S; s++) {
      int64_t row = n * S + s, lab = tp[row];
      double li = 0;
      if (lab != ignore_index) {
        lab -= index_base;
        li = -w[lab] * ld(d, xp, n * C * S + lab * S + s);
        D += w[lab];
        tot += li;
      }
      if (y)
        st(d, lg_data_ptr(y), row, li);
    }
  if (r != LG_REDUCTION_NONE &&
      !(y = lg_scalar(d, r == LG_REDUCTION_MEAN ? tot / D : tot)))
    goto fail;
  free(w);
  w = NULL;
  lg_release(xc);
  lg_release(tc);
  xc = tc = NULL;
  lg_tensor *in[1] = {logp};
  lg_node *node = record(y, fn, nll_loss_backward, 1, in);
  if (node) {
    CE(node)->r = r;
    CE(node)->index_base = index_base;
    CE(node)->ignore_index = ignore_index;
    CE(node)->has_weight = weight != NULL;
    CE(node)->Dn = D;
    if (lg_node_save(node, logp) || lg_node_save(node, target) ||
        (weight && lg_node_save(node, weight)))
      goto fail;
  }
  return y;
fail:
  free(w);
  lg_release(xc);
  lg_release(tc);
  lg_release(y);
  return NULL;
}

/* ==== binary cross-entropy ==== */

/* reduces per-element values v (n) into the output per r */
static lg_tensor *reduce_out(lg_dtype d, lg_tensor *like, lg_reduction r,
                             int64_t n, lg_tensor *per_elem, double total) {
  if (r == LG_REDUCTION_NONE)
    return lg_retain(per_elem);
  double v = total;
  if (r == LG_REDUCTION_MEAN)
    v /= (double)n;
  else if (r == LG_REDUCTION_BATCHMEAN && like->ndim > 0)
    v /= (double)like->shape[0];
  return lg_scalar(d, v);
}

/* the scale that reduction r applies to each element's gradient */
static double reduce_scale(lg_reduction r, lg_tensor *like) {
  if (r == LG_REDUCTION_MEAN)
    return 1.0 / (double)lg_numel(like);
  if (r == LG_REDUCTION_BATCHMEAN && like->ndim > 0)
    return 1.0 / (double)like->shape[0];
  return 1.0;
}

/*
 * binary_cross_entropy: loss = -w (y max(log p, -100) + (1 - y)
 * max(log(1 - p), -100));
 *   dp = g w (p - y) / max(p (1 - p), 1e-12)
 *   dy = g w (max(log(1 - p), -100) - max(log p, -100))
 */
/* binary_cross_entropy (with or without logits): the reduction and which
 * of the optional weights were saved after input and target */
struct bce_state {
  lg_reduction r;
  bool has_weight, has_pos_weight;
};
#define BCE(n) LG_NODE_STATE(n, struct bce_state)
struct kl_state {
  lg_reduction r;
  bool log_target;
};

static int binary_cross_entropy_backward(lg_node *node, lg_tensor *grad_out,
                                         lg_tensor **grads) {
  lg_tensor *p = lg_node_saved(node, 0), *t = lg_node_saved(node, 1);
  lg_tensor *w = node->nsaved > 2 ? lg_node_saved(node, 2) : NULL;
  if (!p || !t || (node->nsaved > 2 && !w))
    return -1;
  lg_reduction r = BCE(node)->r;
  lg_dtype d = p->dtype;
  int64_t n = lg_numel(p);
  lg_tensor *pc = contig(p), *tc = contig(t);
  grad_view gv = {0};
  int rc = -1;
  if (!pc || !tc ||
      grad_open(&gv, grad_out, d, r == LG_REDUCTION_NONE, reduce_scale(r, p)))
    goto out;
  if (node->needs_grad[0] && !(grads[0] = lg_empty(d, p->ndim, p->shape)))
    goto out;
  if (node->needs_grad[1] && !(grads[1] = lg_empty(d, p->ndim, p->shape)))
    goto out;
  const void *pp = lg_data_ptr(pc), *tp = lg_data_ptr(tc);
  const void *wp = w ? lg_data_ptr(w) : NULL;
  void *dp = grads[0] ? lg_data_ptr(grads[0]) : NULL;
  void *dt = grads[1] ? lg_data_ptr(grads[1]) : NULL;
  for (int64_t i = 0; i < n; i++) {
    double pv = ld(d, pp, i), yv = ld(d, tp, i);
    double gw = grad_at(&gv, d, i) * (wp ? ld(d, wp, i) : 1.0);
    if (dp)
      st(d, dp, i, gw * (pv - yv) / fmax(pv * (1 - pv), 1e-12));
    if (dt)
      st(d, dt, i, gw * (fmax(log1p(-pv), -100.0) - fmax(log(pv), -100.0)));
  }
  rc = 0;
out:
  lg_release(gv.t);
  lg_release(pc);
  lg_release(tc);
  return rc;
}
ONCE_DIFFERENTIABLE(binary_cross_entropy_backward)

lg_tensor *lg_binary_cross_entropy(lg_tensor *p, lg_tensor *target,
                                   lg_tensor *weight, lg_reduction r) {
  if (LG_UNUSABLE(p) || LG_UNUSABLE(target) ||
      (weight && weight->storage->revoked)) {
    lg_seterr("lg_binary_cross_entropy: argument %d is NULL or revoked",
              (LG_UNUSABLE(p))        ? 1
              : (LG_UNUSABLE(target)) ? 2
                                      : 3);
    return NULL;
  }
  const char *fn = "binary_cross_entropy";
  if (check_reduction(fn, r, false) || check_float(fn, "input", p) ||
      check_same_shape(fn, p, target))
    return NULL;
  lg_tensor *t = target_as_input(fn, p, target);
  if (!t)
    return NULL;
  lg_dtype d = p->dtype;
  int64_t n = lg_numel(p);
  lg_tensor *pc = contig(p), *tc = contig(t), *wc = NULL, *per = NULL;
  lg_tensor *y = NULL;
  if (!pc || !tc || (weight && !(wc = expand_as(fn, "weight", weight, p))))
    goto fail;
  if (r == LG_REDUCTION_NONE && !(per = lg_empty(d, p->ndim, p->shape)))
    goto fail;
  const void *pp = lg_data_ptr(pc), *tp = lg_data_ptr(tc);
  const void *wp = wc ? lg_data_ptr(wc) : NULL;
  double tot = 0;
  for (int64_t i = 0; i < n; i++) {
    double pv = ld(d, pp, i), yv = ld(d, tp, i);
    if (!(pv >= 0 && pv <= 1)) {
      lg_seterr("%s: every input must be between 0 and 1 (found %g)", fn, pv);
      goto fail;
    }
    double l =
        -(yv * fmax(log(pv), -100.0) + (1 - yv) * fmax(log1p(-pv), -100.0));
    if (wp)
      l *= ld(d, wp, i);
    tot += l;
    if (per)
      st(d, lg_data_ptr(per), i, l);
  }
  if (!(y = reduce_out(d, p, r, n, per, tot)))
    goto fail;
  lg_release(per);
  lg_release(pc);
  lg_release(tc);
  per = pc = tc = NULL;
  lg_tensor *in[2] = {p, t};
  lg_node *node = record(y, fn, binary_cross_entropy_backward_once, 2, in);
  if (node) {
    BCE(node)->r = r;
    if (lg_node_save(node, p) || lg_node_save(node, t) ||
        (wc && lg_node_save(node, wc)))
      goto fail;
  }
  lg_release(wc);
  lg_release(t);
  return y;
fail:
  lg_release(pc);
  lg_release(tc);
  lg_release(wc);
  lg_release(per);
  lg_release(t);
  lg_release(y);
  return NULL;
}

/*
 * bce_with_logits, with softplus(z) = log(1 + e^z) computed stably and
 * lw = 1 + (pw - 1) y (pw = 1 without pos_weight):
 *   loss = w ((1 - y) x + lw softplus(-x))
 *   dx = g w ((pw y + 1 - y) sigmoid(x) - pw y)
 *   dy = g w ((pw - 1) softplus(-x) - x)
 */
static inline double softplus_neg(double x) {
  return log1p(exp(-fabs(x))) + fmax(-x, 0.0);
}

static inline double sigmoid(double x) {
  if (x >= 0)
    return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

static int bce_with_logits_backward(lg_node *node, lg_tensor *grad_out,
                                    lg_tensor **grads) {
  lg_tensor *x = lg_node_saved(node, 0), *t = lg_node_saved(node, 1);
  lg_tensor *w = NULL, *pw = NULL;
  int k = 2;
  if (BCE(node)->has_weight && !(w = lg_node_saved(node, k++)))
    return -1;
  if (BCE(node)->has_pos_weight && !(pw = lg_node_saved(node, k++)))
    return -1;
  if (!x || !t)
    return -1;
  lg_reduction r = BCE(node)->r;
  lg_dtype d = x->dtype;
  int64_t n = lg_numel(x);
  lg_tensor *xc = contig(x), *tc = contig(t);
  grad_view gv = {0};
  int rc = -1;
  if (!xc || !tc ||
      grad_open(&gv, grad_out, d, r == LG_REDUCTION_NONE, reduce_scale(r, x)))
    goto out;
  if (node->needs_grad[0] && !(grads[0] = lg_empty(d, x->ndim, x->shape)))
    goto out;
  if (node->needs_grad[1] && !(grads[1] = lg_empty(d, x->ndim, x->shape)))
    goto out;
  const void *xp = lg_data_ptr(xc), *tp = lg_data_ptr(tc);
  const void *wp = w ? lg_data_ptr(w) : NULL;
  const void *pwp = pw ? lg_data_ptr(pw) : NULL;
  void *dx = grads[0] ? lg_data_ptr(grads[0]) : NULL;
  void *dt = grads[1] ? lg_data_ptr(grads[1]) : NULL;
  for (int64_t i = 0; i < n; i++) {
    double xv = ld(d, xp, i), yv = ld(d, tp, i);
    double pv = pwp ? ld(d, pwp, i) : 1.0;
    double gw = grad_at(&gv, d, i) * (wp ? ld(d, wp, i) : 1.0);
    if (dx)
      st(d, dx, i, gw * ((pv * yv + 1 - yv) * sigmoid(xv) - pv * yv));
    if (dt)
      st(d, dt, i, gw * ((pv - 1) * softplus_neg(xv) - xv));
  }
  rc = 0;
out:
  lg_release(gv.t);
  lg_release(xc);
  lg_release(tc);
  return rc;
}
ONCE_DIFFERENTIABLE(bce_with_logits_backward)

lg_tensor *lg_bce_with_logits(lg_tensor *x, lg_tensor *target,
                              lg_tensor *weight, lg_tensor *pos_weight,
                              lg_reduction r) {
  if (LG_UNUSABLE(x) || LG_UNUSABLE(target) ||
      (weight && weight->storage->revoked) ||
      (pos_weight && pos_weight->storage->revoked)) {
    lg_seterr("lg_bce_with_logits: argument %d is NULL or revoked",
              (LG_UNUSABLE(x))                         ? 1
              : (LG_UNUSABLE(target))                  ? 2
              : ((weight && weight->storage->revoked)) ? 3
                                                       : 4);
    return NULL;
  }
  const char *fn = "bce_with_logits";
  if (check_reduction(fn, r, false) || check_float(fn, "input", x) ||
      check_same_shape(fn, x, target))
    return NULL;
  lg_tensor *t = target_as_input(fn, x, target);
  if (!t)
    return NULL;
  lg_dtype d = x->dtype;
  int64_t n = lg_numel(x);
  lg_tensor *xc = contig(x), *tc = contig(t), *wc = NULL, *pwc = NULL;
  lg_tensor *per = NULL, *y = NULL;
  if (!xc || !tc || (weight && !(wc = expand_as(fn, "weight", weight, x))) ||
      (pos_weight && !(pwc = expand_as(fn, "pos_weight", pos_weight, x))))
    goto fail;
  if (r == LG_REDUCTION_NONE && !(per = lg_empty(d, x->ndim, x->shape)))
    goto fail;
  const void *xp = lg_data_ptr(xc), *tp = lg_data_ptr(tc);
  const void *wp = wc ? lg_data_ptr(wc) : NULL;
  const void *pwp = pwc ? lg_data_ptr(pwc) : NULL;
  double tot = 0;
  for (int64_t i = 0; i < n; i++) {
    double xv = ld(d, xp, i), yv = ld(d, tp, i);
    double lw = pwp ? 1 + (ld(d, pwp, i) - 1) * yv : 1.0;
    double l = (1 - yv) * xv + lw * softplus_neg(xv);
    if (wp)
      l *= ld(d, wp, i);
    tot += l;
    if (per)
      st(d, lg_data_ptr(per), i, l);
  }
  if (!(y = reduce_out(d, x, r, n, per, tot)))
    goto fail;
  lg_release(per);
  lg_release(xc);
  lg_release(tc);
  per = xc = tc = NULL;
  lg_tensor *in[2] = {x, t};
  lg_node *node = record(y, fn, bce_with_logits_backward_once, 2, in);
  if (node) {
    *BCE(node) = (struct bce_state){r, wc != NULL, pwc != NULL};
    if (lg_node_save(node, x) || lg_node_save(node, t) ||
        (wc && lg_node_save(node, wc)) || (pwc && lg_node_save(node, pwc)))
      goto fail;
  }
  lg_release(wc);
  lg_release(pwc);
  lg_release(t);
  return y;
fail:
  lg_release(xc);
  lg_release(tc);
  lg_release(wc);
  lg_release(pwc);
  lg_release(per);
  lg_release(t);
  lg_release(y);
  return NULL;
}

/* ==== kl_div ==== */

/*
 * kl_div(x = log q, t):  loss = t (log t - x)  (0 where t = 0), or with
 * log_target  e^t (t - x).
 *   dx = -g t  (or -g e^t)
 *   dt = g (log t + 1 - x)  (or g e^t (t - x + 1))
 */
static int kl_div_backward(lg_node *node, lg_tensor *grad_out,
                           lg_tensor **grads) {
  lg_tensor *x = lg_node_saved(node, 0), *t = lg_node_saved(node, 1);
  if (!x || !t)
    return -1;
  const struct kl_state *ks = LG_NODE_STATE(node, struct kl_state);
  lg_reduction r = ks->r;
  bool log_target = ks->log_target;
  lg_dtype d = x->dtype;
  int64_t n = lg_numel(x);
  lg_tensor *xc = contig(x), *tc = contig(t);
  grad_view gv = {0};
  int rc = -1;
  if (!xc || !tc ||
      grad_open(&gv, grad_out, d, r == LG_REDUCTION_NONE, reduce_scale(r, x)))
    goto out;
  if (node->needs_grad[0] && !(grads[0] = lg_empty(d, x->ndim, x->shape)))
    goto out;
  if (node->needs_grad[1] && !(grads[1] = lg_empty(d, x->ndim, x->shape)))
    goto out;
  const void *xp = lg_data_ptr(xc), *tp = lg_data_ptr(tc);
  void *dx = grads[0] ? lg_data_ptr(grads[0]) : NULL;
  void *dt = grads[1] ? lg_data_ptr(grads[1]) : NULL;
  for (int64_t i = 0; i < n; i++) {
    double xv = ld(d, xp, i), tv = ld(d, tp, i), g = grad_at(&gv, d, i);
    if (log_target) {
      double e = exp(tv);
      if (dx)
        st(d, dx, i, -g * e);
      if (dt)
        st(d, dt, i, g * e * (tv - xv + 1));
    } else {
      if (dx)
        st(d, dx, i, -g * tv);
      if (dt)
        st(d, dt, i, g * ((tv != 0 ? log(tv) + 1 : 0) - xv));
    }
  }
  rc = 0;
out:
  lg_release(gv.t);
  lg_release(xc);
  lg_release(tc);
  return rc;
}
ONCE_DIFFERENTIABLE(kl_div_backward)

lg_tensor *lg_kl_div(lg_tensor *log_q, lg_tensor *p, bool log_target,
                     lg_reduction r) {
  if (LG_UNUSABLE(log_q) || LG_UNUSABLE(p)) {
    lg_seterr("lg_kl_div: argument %d is NULL or revoked",
              (LG_UNUSABLE(log_q)) ? 1 : 2);
    return NULL;
  }
  const char *fn = "kl_div";
  if (check_reduction(fn, r, true) || check_float(fn, "input", log_q) ||
      check_same_shape(fn, log_q, p))
    return NULL;
  lg_tensor *t = target_as_input(fn, log_q, p);
  if (!t)
    return NULL;
  lg_dtype d = log_q->dtype;
  int64_t n = lg_numel(log_q);
  lg_tensor *xc = contig(log_q), *tc = contig(t), *per = NULL, *y = NULL;
  if (!xc || !tc)
    goto fail;
  if (r == LG_REDUCTION_NONE && !(per = lg_empty(d, log_q->ndim, log_q->shape)))
    goto fail;
  const void *xp = lg_data_ptr(xc), *tp = lg_data_ptr(tc);
  double tot = 0;
  for (int64_t i = 0; i < n; i++) {
    double xv = ld(d, xp, i), tv = ld(d, tp, i), l;
    if (log_target)
      l = exp(tv) * (tv - xv);
    else
      l = (tv == 0 ? 0 : tv * log(tv)) - tv * xv;
    tot += l;
    if (per)
      st(d, lg_data_ptr(per), i, l);
  }
  if (!(y = reduce_out(d, log_q, r, n, per, tot)))
    goto fail;
  lg_release(per);
  lg_release(xc);
  lg_release(tc);
  per = xc = tc = NULL;
  lg_tensor *in[2] = {log_q, t};
  lg_node *node = record(y, fn, kl_div_backward_once, 2, in);
  if (node) {
    *LG_NODE_STATE(node, struct kl_state) = (struct kl_state){r, log_target};
    if (lg_node_save(node, log_q) || lg_node_save(node, t))
      goto fail;
  }
  lg_release(t);
  return y;
fail:
  lg_release(xc);
  lg_release(tc);
  lg_release(per);
  lg_release(t);
  lg_release(y);
  return NULL;
}
