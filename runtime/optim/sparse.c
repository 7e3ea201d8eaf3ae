/*
 * optim/sparse.c -- updates from row-sparse gradients (embedding tables),
 * with PyTorch 1.13's rules; each touches only the rows the gradient lists
 * (SGD with momentum: the rows its momentum buffer holds), so a step costs
 * the batch's rows, not the table's size.
 *
 *   SGD: torch keeps the momentum buffer of a sparse gradient sparse and
 *     adds the whole buffer to the parameter each step, so every row ever
 *     touched keeps moving as momentum decays: exactly dense momentum.  We
 *     keep a dense buffer and the sorted list of rows it may hold nonzero,
 *     and update those rows only.  weight_decay is refused (torch's
 *     sparse.add(dense) fails too).
 *   Adagrad: sum[r] += g^2; theta[r] -= clr g / (sqrt(sum[r]) + eps) for the
 *     rows r of the gradient; weight_decay is refused, as in torch.
 *   SparseAdam (torch's lazy Adam): for the rows of the gradient only,
 *     m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v);
 *     theta -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
 */
#include <string.h>

#include "../core/internal.h"
#include "optim.h"

/* elements per row of a (rows, ...) tensor */
static int64_t row_len(const lg_tensor *t) {
  int64_t n = 1;
  for (int i = 1; i < t->ndim; i++)
    n *= t->shape[i];
  return n;
}

/* A step's rows lie far apart in a big table, each a cache miss in the
 * parameter and in every state buffer: the loops ask for the row
 * PREFETCH_AHEAD positions ahead while they work on this one. */
#define PREFETCH_AHEAD 8
static inline void prefetch_rows(const void *a, const void *b, const void *c,
                                 int64_t row, size_t nbytes) {
  for (size_t o = 0; o < nbytes; o += 64) {
    __builtin_prefetch((const char *)a + row * nbytes + o, 1);
    if (b)
      __builtin_prefetch((const char *)b + row * nbytes + o, 1);
    if (c)
      __builtin_prefetch((const char *)c + row * nbytes + o, 1);
  }
}

/* rows per parallel chunk: about 64K elements each */
static int64_t row_grain(int64_t m) {
  int64_t g = ((int64_t)1 << 16) / (m ? m : 1);
  return g < 1 ? 1 : g;
}

static int refuse_weight_decay(const lg_optim *o, const lg_opt_group *grp,
                               const lg_opt_param *p) {
  if (grp->hp[LG_HP_WEIGHT_DECAY] == 0)
    return 0;
  lg_seterr("%s.step: weight_decay is not compatible with the sparse "
            "gradient of parameter %d",
            lg_optim_name(o), (int)(p - o->params) + 1);
  return -1;
}

void lg_opt_rows_free(lg_opt_param *p) {
  if (p->rows)
    lg_free(p->rows, (size_t)p->rows_cap * sizeof(int64_t));
  p->rows = NULL;
  p->nrows = p->rows_cap = 0;
  p->rows_known = false;
}

/* ---- SGD ---- */

typedef struct {
  lg_dtype dt;
  int64_t m;           /* row length */
  const int64_t *rows; /* active rows */
  const int64_t *src;  /* active row -> gradient row, or -1 */
  void *p, *buf;
  const void *g;
  double lr, momentum, dampening, sign;
  bool nesterov, first;
} sgd_rows_ctx;

static void sgd_rows_range(void *vc, int64_t u0, int64_t u1) {
  const sgd_rows_ctx *c = vc;
  int64_t m = c->m;
  LG_OPT_TYPED(c->dt, {
    for (int64_t u = u0; u < u1; u++) {
      if (u + PREFETCH_AHEAD < u1)
        prefetch_rows(c->p, c->buf, NULL, c->rows[u + PREFETCH_AHEAD],
                      m * sizeof(real));
      real *p = (real *)c->p + c->rows[u] * m;
      real *buf = c->buf ? (real *)c->buf + c->rows[u] * m : NULL;
      const real *g =
          c->src[u] >= 0 ? (const real *)c->g + c->src[u] * m : NULL;
      for (int64_t k = 0; k < m; k++) {
        double d = g ? c->sign * g[k] : 0.0;
        if (buf) {
          double b =
              c->first ? d : buf[k] * c->momentum + (1 - c->dampening) * d;
          buf[k] = (real)b;
          b = buf[k];
          d = c->nesterov ? d + c->momentum * b : b;
        }
        p[k] = (real)(p[k] + -c->lr * d);
      }
    }
  });
}

/* the rows of buf (nrows x m) holding anything but zero */
static int rows_from_buffer(lg_opt_param *p, int64_t nrows, int64_t m) {
  lg_opt_rows_free(p);
  int64_t n = 0;
  LG_OPT_TYPED(p->t->dtype, {
    const real *b = p->buf[0];
    for (int64_t r = 0; r < nrows; r++)
      for (int64_t k = 0; k < m; k++)
        if (b[r * m + k] != 0) {
          n++;
          break;
        }
  });
  p->rows_cap = n ? n : 1;
  if (!(p->rows = lg_alloc((size_t)p->rows_cap * sizeof(int64_t))))
    return -1;
  LG_OPT_TYPED(p->t->dtype, {
    const real *b = p->buf[0];
    for (int64_t r = 0; r < nrows; r++)
      for (int64_t k = 0; k < m; k++)
        if (b[r * m + k] != 0) {
          p->rows[p->nrows++] = r;
          break;
        }
  });
  p->rows_known = true;
  return 0;
}

/* merges the gradient's rows into p->rows; src[u] gets the gradient row
 * of active row u, or -1 (src: nrows + nnz entries of scratch) */
static int merge_rows(lg_opt_param *p, const int64_t *grows, int64_t nnz,
                      int64_t *src, int64_t **out, int64_t *nout,
                      size_t *out_bytes) {
  int64_t cap = p->nrows + nnz;
  *out_bytes = (size_t)(cap ? cap : 1) * sizeof(int64_t);
  int64_t *merged = lg_alloc(*out_bytes);
  if (!merged)
    return -1;
  int64_t i = 0, j = 0, n = 0;
  while (i < p->nrows || j < nnz) {
    if (j == nnz || (i < p->nrows && p->rows[i] < grows[j])) {
      src[n] = -1;
      merged[n++] = p->rows[i++];
    } else {
      if (i < p->nrows && p->rows[i] == grows[j])
        i++;
      src[n] = j;
      merged[n++] = grows[j++];
    }
  }
  *out = merged;
  *nout = n;
  return 0;
}

int lg_sgd_update_sparse(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                         const lg_tensor *grad) {
  const double *hp = grp->hp;
  if (refuse_weight_decay(o, grp, p) < 0)
    return -1;
  int64_t nnz = grad->shape[0], m = row_len(grad);
  const int64_t *grows = lg_data_ptr(grad->sparse_rows);
  sgd_rows_ctx c = {.dt = p->t->dtype,
                    .m = m,
                    .p = lg_data_ptr(p->t),
                    .g = lg_data_ptr(grad),
                    .lr = hp[LG_HP_LR],
                    .momentum = hp[LG_HP_MOMENTUM],
                    .dampening = hp[LG_HP_DAMPENING],
                    .sign = hp[LG_HP_MAXIMIZE] != 0 ? -1.0 : 1.0,
                    .nesterov = hp[LG_HP_NESTEROV] != 0};
  if (c.momentum == 0) {
    /* plain SGD: the gradient's rows, each its own source */
    size_t sb = (size_t)(nnz ? nnz : 1) * sizeof(int64_t);
    int64_t *src = lg_alloc(sb);
    if (!src)
      return -1;
    for (int64_t j = 0; j < nnz; j++)
      src[j] = j;
    c.rows = grows;
    c.src = src;
    lg_parallel_for(nnz, row_grain(m), sgd_rows_range, &c);
    lg_free(src, sb);
    return 0;
  }
  int64_t nrows_total = p->t->ndim ? p->t->shape[0] : 1;
  c.buf = lg_opt_buf(p, 0, lg_numel(p->t), 0, &c.first);
  if (!c.buf)
    return -1;
  p->has_state = true;
  if (c.first)
    lg_opt_rows_free(p);
  else if (!p->rows_known && rows_from_buffer(p, nrows_total, m) < 0)
    return -1;
  size_t sb = (size_t)(p->nrows + nnz ? p->nrows + nnz : 1) * sizeof(int64_t);
  int64_t *src = lg_alloc(sb), *merged = NULL, nmerged = 0;
  size_t mb = 0;
  if (!src || merge_rows(p, grows, nnz, src, &merged, &nmerged, &mb) < 0) {
    if (src)
      lg_free(src, sb);
    return -1;
  }
  c.rows = merged;
  c.src = src;
  lg_parallel_for(nmerged, row_grain(m), sgd_rows_range, &c);
  lg_free(src, sb);
  lg_opt_rows_free(p);
  p->rows = merged;
  p->nrows = nmerged;
  p->rows_cap = (int64_t)(mb / sizeof(int64_t));
  p->rows_known = true;
  return 0;
}

/* ---- Adagrad ---- */

typedef struct {
  lg_dtype dt;
  int64_t m;
  const int64_t *rows;
  void *p, *a, *b;
  const void *g;
  double lr, eps, sign, b1, b2, step_size;
} rows_ctx;

static void adagrad_rows_range(void *vc, int64_t u0, int64_t u1) {
  const rows_ctx *c = vc;
  int64_t m = c->m;
  LG_OPT_TYPED(c->dt, {
    for (int64_t u = u0; u < u1; u++) {
      if (u + PREFETCH_AHEAD < u1)
        prefetch_rows(c->p, c->a, NULL, c->rows[u + PREFETCH_AHEAD],
                      m * sizeof(real));
      real *p = (real *)c->p + c->rows[u] * m;
      real *sum = (real *)c->a + c->rows[u] * m;
      const real *g = (const real *)c->g + u * m;
      for (int64_t k = 0; k < m; k++) {
        real d = (real)(c->sign * g[k]);
        real s = sum[k] + d * d;
        sum[k] = s;
        real std = (real)sqrt(s) + (real)c->eps;
        p[k] = (real)(p[k] + -c->lr * (d / std));
      }
    }
  });
}

int lg_adagrad_update_sparse(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                             const lg_tensor *grad) {
  const double *hp = grp->hp;
  if (refuse_weight_decay(o, grp, p) < 0)
    return -1;
  if (!p->buf[0] && !lg_opt_buf(p, 0, lg_numel(p->t), hp[LG_HP_INIT_ACC], NULL))
    return -1;
  p->has_state = true;
  double t = ++p->step;
  int64_t m = row_len(grad);
  rows_ctx c = {.dt = p->t->dtype,
                .m = m,
                .rows = lg_data_ptr(grad->sparse_rows),
                .p = lg_data_ptr(p->t),
                .a = p->buf[0],
                .g = lg_data_ptr(grad),
                .lr = hp[LG_HP_LR] / (1 + (t - 1) * hp[LG_HP_LR_DECAY]),
                .eps = hp[LG_HP_EPS],
                .sign = hp[LG_HP_MAXIMIZE] != 0 ? -1.0 : 1.0};
  lg_parallel_for(grad->shape[0], row_grain(m), adagrad_rows_range, &c);
  return 0;
}

/* ---- SparseAdam ---- */

static void sparse_adam_rows_range(void *vc, int64_t u0, int64_t u1) {
  const rows_ctx *c = vc;
  int64_t m = c->m;
  LG_OPT_TYPED(c->dt, {
    real omb1 = (real)(1 - c->b1), omb2 = (real)(1 - c->b2);
    real eps = (real)c->eps, neg_step = (real)-c->step_size;
    for (int64_t u = u0; u < u1; u++) {
      if (u + PREFETCH_AHEAD < u1)
        prefetch_rows(c->p, c->a, c->b, c->rows[u + PREFETCH_AHEAD],
                      m * sizeof(real));
      real *p = (real *)c->p + c->rows[u] * m;
      real *ma = (real *)c->a + c->rows[u] * m;
      real *va = (real *)c->b + c->rows[u] * m;
      const real *g = (const real *)c->g + u * m;
      for (int64_t k = 0; k < m; k++) {
        real d = (real)(c->sign * g[k]);
        real old_m = ma[k], old_v = va[k];
        real up_m = (d - old_m) * omb1;
        real up_v = (d * d - old_v) * omb2;
        ma[k] = old_m + up_m;
        va[k] = old_v + up_v;
        real den = (real)sqrt(up_v + old_v) + eps;
        p[k] = p[k] + neg_step * ((up_m + old_m) / den);
      }
    }
  });
}

static int sparse_adam_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                              const lg_tensor *grad) {
  const double *hp = grp->hp;
  int64_t n = lg_numel(p->t), m = row_len(grad);
  rows_ctx c = {.dt = p->t->dtype,
                .m = m,
                .rows = lg_data_ptr(grad->sparse_rows),
                .p = lg_data_ptr(p->t),
                .g = lg_data_ptr(grad),
                .eps = hp[LG_HP_EPS],
                .b1 = hp[LG_HP_BETA1],
                .b2 = hp[LG_HP_BETA2],
                .sign = hp[LG_HP_MAXIMIZE] != 0 ? -1.0 : 1.0};
  if (!(c.a = lg_opt_buf(p, 0, n, 0, NULL)) ||
      !(c.b = lg_opt_buf(p, 1, n, 0, NULL)))
    return -1;
  p->has_state = true;
  double t = ++p->step;
  c.step_size = hp[LG_HP_LR] * sqrt(1 - pow(c.b2, t)) / (1 - pow(c.b1, t));
  lg_parallel_for(grad->shape[0], row_grain(m), sparse_adam_rows_range, &c);
  return 0;
}

static const lg_hp_spec sparse_adam_specs[] = {
    LG_OPT_LR(1e-3), LG_OPT_BETAS(0.9, 0.999), LG_OPT_EPS(1e-8),
    LG_OPT_MAXIMIZE, LG_OPT_END};

static const lg_state_spec sparse_adam_state[] = {
    {"step", LG_ST_STEP, 0},
    {"exp_avg", LG_ST_BUF0, LG_SHAPE_PARAM},
    {"exp_avg_sq", LG_ST_BUF1, LG_SHAPE_PARAM},
    {NULL, 0, 0}};

const lg_optim_kind lg_optim_sparse_adam = {.name = "SparseAdam",
                                            .specs = sparse_adam_specs,
                                            .state = sparse_adam_state,
                                            .update_sparse =
                                                sparse_adam_update};
