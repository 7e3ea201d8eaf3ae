/*
 * optim/factored.c -- optimizers whose update looks at a parameter as a
 * whole: Adafactor (Shazeer and Stern 2018, with PyTorch 2.5's choices of
 * lr, eps1 and weight decay) and Muon (Keller Jordan 2024, as in PyTorch
 * 2.9: momentum, Newton-Schulz orthogonalization, decoupled decay).
 */
#include <float.h>

#include "optim.h"

/* ---- Adafactor ----
 * t-th step, w = t^beta2_decay, rho = min(lr, 1/sqrt(t)),
 * alpha = max(eps2, RMS(theta)) rho
 * a (..., R, C) parameter keeps row and column means of g^2:
 *   r = lerp(r, mean_c g^2, w) ; c = lerp(c, mean_r g^2, w)
 *   v = r c / max(mean(r), eps1)
 * a vector keeps v = lerp(v, g^2, w)
 * u = g / sqrt(max(v, eps1^2)) ; theta = theta (1 - lr wd)
 *   - alpha / max(1, RMS(u) / d) u
 * eps1 nil means the dtype's machine epsilon. */

typedef struct {
  int64_t batch, rows, cols; /* a vector is 1 x 1 x n */
  double eps1;
  const double *rowmean; /* per batch: max(mean of row_var, eps1) */
} fact_shape;

/* update element (b, r, c) from the variance estimate */
static inline double fact_v(const fact_shape *s, const void *rv, const void *cv,
                            const void *var, int64_t b, int64_t r, int64_t c,
                            int64_t i, bool dbl) {
  if (var)
    return dbl ? ((const double *)var)[i] : ((const float *)var)[i];
  double rr = dbl ? ((const double *)rv)[b * s->rows + r]
                  : ((const float *)rv)[b * s->rows + r];
  double cc = dbl ? ((const double *)cv)[b * s->cols + c]
                  : ((const float *)cv)[b * s->cols + c];
  return rr * cc / s->rowmean[b];
}

static int adafactor_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                            const lg_tensor *grad) {
  const double *hp = grp->hp;
  lg_tensor *t = p->t;
  int64_t n = lg_numel(t);
  bool dbl = t->dtype == LG_FLOAT64;
  bool maximize = hp[LG_HP_MAXIMIZE] != 0;
  double lr = hp[LG_HP_LR], wd = hp[LG_HP_WEIGHT_DECAY];
  fact_shape s = {1, 1, n, hp[LG_HP_EPS1], NULL};
  if (isnan(s.eps1))
    s.eps1 = dbl ? DBL_EPSILON : FLT_EPSILON;
  bool factored = t->ndim >= 2;
  if (factored) {
    s.rows = t->shape[t->ndim - 2];
    s.cols = t->shape[t->ndim - 1];
    s.batch = s.rows && s.cols ? n / (s.rows * s.cols) : 0;
  }
  void *rv = NULL, *cv = NULL, *var = NULL;
  if (factored) {
    if (!(rv = lg_opt_buf(p, 0, s.batch * s.rows, 0, NULL)) ||
        !(cv = lg_opt_buf(p, 1, s.batch * s.cols, 0, NULL)))
      return -1;
  } else if (!(var = lg_opt_buf(p, 2, n, 0, NULL))) {
    return -1;
  }
  double *work = NULL;
  if (factored &&
      !(work = lg_opt_work(o, (size_t)(s.cols + s.batch) * sizeof(double))))
    return -1;
  p->has_state = true;
  double step = ++p->step;
  double w = pow(step, hp[LG_HP_BETA2_DECAY]);
  double rho = fmin(lr, 1 / sqrt(step));
  double sumsq = 0, unorm = 0;
  LG_OPT_TYPED(t->dtype, {
    const real *x = lg_data_ptr(t);
    for (int64_t i = 0; i < n; i++)
      sumsq += (double)x[i] * x[i];
  });
  double alpha = fmax(hp[LG_HP_EPS2], sqrt(sumsq) / sqrt((double)n)) * rho;
  /* second moments */
  LG_OPT_TYPED(t->dtype, {
    const real *g = lg_data_ptr(grad);
    if (factored) {
      real *r = rv, *c = cv;
      double *colsum = work, *rowmean = work + s.cols;
      for (int64_t b = 0; b < s.batch; b++) {
        const real *gb = g + b * s.rows * s.cols;
        for (int64_t j = 0; j < s.cols; j++)
          colsum[j] = 0;
        double rsum = 0;
        for (int64_t i = 0; i < s.rows; i++) {
          double acc = 0;
          for (int64_t j = 0; j < s.cols; j++) {
            double gg = (double)gb[i * s.cols + j] * gb[i * s.cols + j];
            acc += gg;
            colsum[j] += gg;
          }
          real *ri = &r[b * s.rows + i];
          *ri = (real)lg_lerp(*ri, (real)(acc / s.cols), w);
          rsum += *ri;
        }
        for (int64_t j = 0; j < s.cols; j++) {
          real *cj = &c[b * s.cols + j];
          *cj = (real)lg_lerp(*cj, (real)(colsum[j] / s.rows), w);
        }
        rowmean[b] = fmax((real)(rsum / s.rows), s.eps1);
      }
      s.rowmean = rowmean;
    } else {
      real *v = var;
      for (int64_t i = 0; i < n; i++)
        v[i] = (real)lg_lerp(v[i], (real)((double)g[i] * g[i]), w);
    }
  });
  /* RMS of the update, then the update itself */
  double floor_v = s.eps1 * s.eps1;
  for (int pass = 0; pass < 2; pass++) {
    double coef = 0, decay = 1 - lr * wd;
    if (pass == 1)
      coef = -alpha / fmax(1.0, sqrt(unorm) / (sqrt((double)n) * hp[LG_HP_D]));
    LG_OPT_TYPED(t->dtype, {
      real *x = lg_data_ptr(t);
      const real *g = lg_data_ptr(grad);
      int64_t i = 0;
      for (int64_t b = 0; b < s.batch; b++)
        for (int64_t r = 0; r < s.rows; r++)
          for (int64_t c = 0; c < s.cols; c++, i++) {
            double v = (real)fact_v(&s, rv, cv, var, b, r, c, i, dbl);
            double gi = maximize ? -(double)g[i] : (double)g[i];
            double u = (real)((real)(1 / sqrt(fmax(v, floor_v))) * gi);
            if (pass == 0) {
              unorm += u * u;
            } else {
              double xi = x[i];
              if (wd != 0)
                xi = (real)(xi * decay);
              x[i] = (real)(xi + coef * u);
            }
          }
    });
  }
  return 0;
}

static const lg_hp_spec adafactor_specs[] = {
    LG_OPT_LR(1e-2),
    LG_OPT_NUM("beta2_decay", LG_HP_BETA2_DECAY, -0.8, .lo = {-INFINITY},
               .hi = {0}),
    {.name = "eps",
     .id = LG_HP_EPS1,
     .n = 2,
     .type = LG_HPT_NUM,
     .flags = LG_HPF_NILOK,
     .def = {NAN, 1e-3},
     LG_R_NONNEG},
    LG_OPT_NUM("d", LG_HP_D, 1.0, .lo = {1}, .hi = {INFINITY}),
    LG_OPT_WD(0),
    LG_OPT_MAXIMIZE,
    LG_OPT_END};

static int adafactor_check(const lg_optim *o, double *hp) {
  if (isnan(hp[LG_HP_EPS2])) {
    lg_seterr("Adafactor: eps[2] must be a number");
    return -1;
  }
  return 0;
}

static const lg_state_spec adafactor_state[] = {
    {"step", LG_ST_STEP, 0},
    {"row_var", LG_ST_BUF0, LG_SHAPE_ROW},
    {"col_var", LG_ST_BUF1, LG_SHAPE_COL},
    {"variance", LG_ST_BUF2, LG_SHAPE_PARAM},
    {NULL, 0, 0}};

const lg_optim_kind lg_optim_adafactor = {.name = "Adafactor",
                                          .specs = adafactor_specs,
                                          .state = adafactor_state,
                                          .check_group = adafactor_check,
                                          .update = adafactor_update};

/* ---- Muon ----
 * B = lerp(B, g, 1 - mu) ;  U = lerp(g, B, mu) (nesterov) or B
 * O = NS(U): X = U / max(|U|_F, eps) (transposed so that rows <= cols),
 *   then ns_steps times: A = X X^T ; X = a X + (b A + c A A) X
 * theta = theta (1 - lr wd) - lr s O, s = sqrt(max(1, rows / cols))
 *   ("original") or 0.2 sqrt(max(rows, cols)) ("match_rms_adamw")
 * PyTorch runs Newton-Schulz in bfloat16; this runs it in the parameter's
 * dtype (float32 or float64). */

static const char *const muon_adjust[] = {"original", "match_rms_adamw", NULL};

static int muon_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                       const lg_tensor *grad) {
  const double *hp = grp->hp;
  lg_tensor *t = p->t;
  int64_t m = t->shape[0], n = t->shape[1], numel = m * n;
  double mu = hp[LG_HP_MOMENTUM], lr = hp[LG_HP_LR];
  bool nesterov = hp[LG_HP_NESTEROV] != 0, tr = m > n;
  int64_t r = tr ? n : m, c = tr ? m : n;
  void *buf = lg_opt_buf(p, 0, numel, 0, NULL);
  if (!buf)
    return -1;
  p->has_state = true;
  if (numel == 0)
    return 0;
  double ca = hp[LG_HP_NS_A], cb = hp[LG_HP_NS_B], cc = hp[LG_HP_NS_C];
  int steps = (int)hp[LG_HP_NS_STEPS];
  double adj;
  if (hp[LG_HP_ADJUST_LR] == 1)
    adj = 0.2 * sqrt((double)(m > n ? m : n));
  else
    adj = sqrt(fmax(1.0, (double)m / (double)n));
  double decay = 1 - lr * hp[LG_HP_WEIGHT_DECAY], step = -lr * adj;
  /* Newton-Schulz runs in the parameter's dtype, through BLAS */
  size_t es = lg_dtype_size(t->dtype);
  void *work = lg_opt_work(o, (size_t)(2 * r * c + 2 * r * r) * es);
  if (!work)
    return -1;
  LG_OPT_TYPED(t->dtype, {
    real *X = work, *Xn = X + r * c, *A = Xn + r * c, *B = A + r * r;
    real *b = buf, *x = lg_data_ptr(t);
    const real *g = lg_data_ptr(grad);
    double ss = 0;
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        int64_t k = i * n + j;
        b[k] = (real)lg_lerp(b[k], g[k], 1 - mu);
        real u = nesterov ? (real)lg_lerp(g[k], b[k], mu) : b[k];
        X[tr ? j * c + i : k] = u;
        ss += (double)u * u;
      }
    double scale = 1 / fmax(sqrt(ss), hp[LG_HP_EPS]);
    for (int64_t k = 0; k < numel; k++)
      X[k] = (real)(X[k] * scale);
    for (int it = 0; it < steps; it++) {
      /* A = X X^T (r x r) */
      lg_gemm(t->dtype, false, true, r, r, c, 1.0, X, c, X, c, 0.0, A, r);
      /* B = b A + c A A */
      for (int64_t k = 0; k < r * r; k++)
        B[k] = (real)(cb * A[k]);
      lg_gemm(t->dtype, false, false, r, r, r, cc, A, r, A, r, 1.0, B, r);
      /* X = a X + B X */
      for (int64_t k = 0; k < r * c; k++)
        Xn[k] = (real)(ca * X[k]);
      lg_gemm(t->dtype, false, false, r, c, r, 1.0, B, r, X, c, 1.0, Xn, c);
      real *sw = X;
      X = Xn;
      Xn = sw;
    }
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        int64_t k = i * n + j;
        real xi = (real)(x[k] * decay);
        x[k] = (real)(xi + step * X[tr ? j * c + i : k]);
      }
  });
  return 0;
}

static int muon_check_param(const lg_optim *o, int index, const lg_tensor *t) {
  if (t->ndim != 2) {
    lg_seterr("Muon: parameter %I has %d dimensions; Muon only optimizes 2-d "
              "parameters (give biases and embeddings to AdamW)",
              (long long)index, t->ndim);
    return -1;
  }
  return 0;
}

static const lg_hp_spec muon_specs[] = {
    LG_OPT_LR(1e-3),
    LG_OPT_WD(0.1),
    LG_OPT_NUM("momentum", LG_HP_MOMENTUM, 0.95, LG_R_NONNEG),
    LG_OPT_BOOL("nesterov", LG_HP_NESTEROV, 1),
    {.name = "ns_coefficients",
     .id = LG_HP_NS_A,
     .n = 3,
     .type = LG_HPT_NUM,
     .def = {3.4445, -4.7750, 2.0315},
     LG_R_ANY},
    LG_OPT_EPS(1e-7),
    {.name = "ns_steps",
     .id = LG_HP_NS_STEPS,
     .n = 1,
     .type = LG_HPT_INT,
     .def = {5},
     .lo = {0},
     .hi = {100},
     .open = {LG_HP_HI_OPEN}},
    {.name = "adjust_lr_fn",
     .id = LG_HP_ADJUST_LR,
     .n = 1,
     .type = LG_HPT_ENUM,
     .flags = LG_HPF_NILOK,
     .def = {NAN},
     LG_R_ANY,
     .choices = muon_adjust},
    LG_OPT_END};

static const lg_state_spec muon_state[] = {
    {"momentum_buffer", LG_ST_BUF0, LG_SHAPE_PARAM}, {NULL, 0, 0}};

const lg_optim_kind lg_optim_muon = {.name = "Muon",
                                     .specs = muon_specs,
                                     .state = muon_state,
                                     .check_param = muon_check_param,
                                     .update = muon_update};
