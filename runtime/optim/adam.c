/*
 * optim/adam.c -- the Adam family, with PyTorch 1.13's update rules:
 * Adam and AdamW (amsgrad), Adamax, NAdam and RAdam.  Each parameter is
 * updated in one pass; moments are kept in the parameter's dtype.
 */
#include "optim.h"

/* One step over one parameter: what every member of the family reads, and
 * each algorithm's own coefficients under its name. */
typedef struct {
  lg_dtype dt;
  void *p, *m, *v, *vmax; /* parameter, first and second moments, amsgrad */
  const void *g;
  double b1, b2, eps, wd;
  bool maximize;
  union {
    struct {
      double step_size, bc2_sqrt, decay; /* lr / (1 - b1^t), ... */
      bool decoupled;                    /* AdamW */
    } adam;
    struct {
      double step_size; /* lr / (1 - b1^t) */
    } adamax;
    struct {
      double bc2, c1, c2; /* 1 - b2^t; the d and m coefficients */
    } nadam;
    struct {
      double lr, bc1, bc2_sqrt, rect; /* rect used when rectify */
      bool rectify;
    } radam;
  } k;
} adam_ctx;

/* fills the shared part of c and the two moment buffers; returns the new
 * step count, or -1 */
static double adam_begin(adam_ctx *c, const lg_opt_group *grp, lg_opt_param *p,
                         const lg_tensor *grad) {
  const double *hp = grp->hp;
  int64_t n = lg_numel(p->t);
  *c = (adam_ctx){.dt = p->t->dtype,
                  .p = lg_data_ptr(p->t),
                  .g = lg_data_ptr(grad),
                  .b1 = hp[LG_HP_BETA1],
                  .b2 = hp[LG_HP_BETA2],
                  .eps = hp[LG_HP_EPS],
                  .wd = hp[LG_HP_WEIGHT_DECAY],
                  .maximize = hp[LG_HP_MAXIMIZE] != 0};
  if (!(c->m = lg_opt_buf(p, 0, n, 0, NULL)) ||
      !(c->v = lg_opt_buf(p, 1, n, 0, NULL)))
    return -1;
  return p->step + 1;
}

/* the coupled-decay gradient d and the new moments mi, vi of element i
 * (Adam without decoupling, NAdam, RAdam); in a LG_OPT_TYPED block */
#define ADAM_MOMENTS(c, d, x, mi, vi)                                          \
  double d = (c)->maximize ? -(double)g[i] : (double)g[i];                     \
  double x = p[i];                                                             \
  if ((c)->wd != 0)                                                            \
    d = d + (c)->wd * x;                                                       \
  real mi = (real)(m[i] * (c)->b1 + (1 - (c)->b1) * d);                        \
  real vi = (real)(v[i] * (c)->b2 + (1 - (c)->b2) * d * d);                    \
  m[i] = mi;                                                                   \
  v[i] = vi

/* the typed pointers of c, inside LG_OPT_TYPED */
#define ADAM_PTRS(c)                                                           \
  real *p = (c)->p, *m = (c)->m, *v = (c)->v;                                  \
  const real *g = (c)->g

/* the state entries of the two moments */
#define ADAM_STATE_MOMENTS(second)                                             \
  {"step", LG_ST_STEP, 0}, {"exp_avg", LG_ST_BUF0, LG_SHAPE_PARAM},            \
      {second, LG_ST_BUF1, LG_SHAPE_PARAM}

/* ---- Adam / AdamW ----
 * d = grad (+ weight_decay * theta, Adam) ; theta *= 1 - lr * wd (AdamW)
 * m = beta1 m + (1 - beta1) d ;  v = beta2 v + (1 - beta2) d^2
 * vmax = max(vmax, v) (amsgrad)
 * theta -= lr / (1 - beta1^t) * m / (sqrt(v or vmax) / sqrt(1 - beta2^t)
 *          + eps) */

/* float32 without amsgrad, the common case: float arithmetic in the order
 * of PyTorch's float32 kernels, branch-free so the loop vectorizes */
static void adam_range_f32(const adam_ctx *c, int64_t i0, int64_t i1) {
  float *restrict p = c->p, *restrict m = c->m, *restrict v = c->v;
  const float *restrict g = c->g;
  const float b1 = (float)c->b1, omb1 = (float)(1 - c->b1);
  const float b2 = (float)c->b2, omb2 = (float)(1 - c->b2);
  const float bc2s = (float)c->k.adam.bc2_sqrt, eps = (float)c->eps;
  const float neg_step = (float)-c->k.adam.step_size;
  const float sign = c->maximize ? -1 : 1;
  const float wd = c->k.adam.decoupled ? 0 : (float)c->wd;
  const float decay = c->k.adam.decoupled ? (float)c->k.adam.decay : 1;
#define ADAM_F32_LOOP(COUPLED)                                                \
  for (int64_t i = i0; i < i1; i++) {                                         \
    float x = p[i] * decay;                                                   \
    float d = sign * g[i];                                                    \
    if (COUPLED)                                                              \
      d = d + wd * x;                                                         \
    float mi = m[i] * b1 + omb1 * d;                                          \
    float vi = v[i] * b2 + omb2 * d * d;                                      \
    m[i] = mi;                                                                \
    v[i] = vi;                                                                \
    p[i] = x + neg_step * (mi / (sqrtf(vi) / bc2s + eps));                    \
  }
  if (wd != 0)
    ADAM_F32_LOOP(1)
  else
    ADAM_F32_LOOP(0)
#undef ADAM_F32_LOOP
}

static void adam_range(void *vc, int64_t i0, int64_t i1) {
  const adam_ctx *c = vc;
  if (c->dt == LG_FLOAT32 && !c->vmax) {
    adam_range_f32(c, i0, i1);
    return;
  }
  LG_OPT_TYPED(c->dt, {
    real *p = c->p, *m = c->m, *v = c->v, *vmax = c->vmax;
    const real *g = c->g;
    for (int64_t i = i0; i < i1; i++) {
      double d = c->maximize ? -(double)g[i] : (double)g[i];
      double x = p[i];
      if (c->k.adam.decoupled)
        x = x * c->k.adam.decay;
      else if (c->wd != 0)
        d = d + c->wd * x;
      real mi = (real)(m[i] * c->b1 + (1 - c->b1) * d);
      real vi = (real)(v[i] * c->b2 + (1 - c->b2) * d * d);
      m[i] = mi;
      v[i] = vi;
      double s = vi;
      if (vmax) {
        if (vmax[i] > vi || vmax[i] != vmax[i])
          s = vmax[i];
        else
          vmax[i] = vi;
      }
      double den = sqrt(s) / c->k.adam.bc2_sqrt + c->eps;
      p[i] = (real)(x + -c->k.adam.step_size * (mi / den));
    }
  });
}

static int adam_common(lg_opt_group *grp, lg_opt_param *p,
                       const lg_tensor *grad, bool decoupled) {
  const double *hp = grp->hp;
  double lr = hp[LG_HP_LR];
  adam_ctx c;
  double t = adam_begin(&c, grp, p, grad);
  if (t < 0)
    return -1;
  if (hp[LG_HP_AMSGRAD] != 0 &&
      !(c.vmax = lg_opt_buf(p, 2, lg_numel(p->t), 0, NULL)))
    return -1;
  p->has_state = true;
  p->step = t;
  c.k.adam.decoupled = decoupled;
  c.k.adam.decay = 1 - lr * hp[LG_HP_WEIGHT_DECAY];
  c.k.adam.step_size = lr / (1 - pow(c.b1, t));
  c.k.adam.bc2_sqrt = sqrt(1 - pow(c.b2, t));
  lg_opt_parallel(lg_numel(p->t), adam_range, &c);
  return 0;
}

static int adam_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                       const lg_tensor *grad) {
  return adam_common(grp, p, grad, false);
}

static int adamw_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                        const lg_tensor *grad) {
  return adam_common(grp, p, grad, true);
}

static const lg_hp_spec adam_specs[] = {
    LG_OPT_LR(1e-3),
    LG_OPT_BETAS(0.9, 0.999),
    LG_OPT_EPS(1e-8),
    LG_OPT_WD(0),
    LG_OPT_BOOL("amsgrad", LG_HP_AMSGRAD, 0),
    LG_OPT_MAXIMIZE,
    LG_OPT_END};

static const lg_hp_spec adamw_specs[] = {
    LG_OPT_LR(1e-3),
    LG_OPT_BETAS(0.9, 0.999),
    LG_OPT_EPS(1e-8),
    LG_OPT_WD(1e-2),
    LG_OPT_BOOL("amsgrad", LG_HP_AMSGRAD, 0),
    LG_OPT_MAXIMIZE,
    LG_OPT_END};

static const lg_state_spec adam_state[] = {
    ADAM_STATE_MOMENTS("exp_avg_sq"),
    {"max_exp_avg_sq", LG_ST_BUF2, LG_SHAPE_PARAM},
    {NULL, 0, 0}};

const lg_optim_kind lg_optim_adam = {.name = "Adam",
                                     .specs = adam_specs,
                                     .state = adam_state,
                                     .update = adam_update};

const lg_optim_kind lg_optim_adamw = {.name = "AdamW",
                                      .specs = adamw_specs,
                                      .state = adam_state,
                                      .update = adamw_update};

/* ---- Adamax ----
 * m = beta1 m + (1 - beta1) d ;  u = max(beta2 u, |d| + eps)
 * theta -= lr / (1 - beta1^t) * m / u */

static void adamax_range(void *vc, int64_t i0, int64_t i1) {
  const adam_ctx *c = vc;
  LG_OPT_TYPED(c->dt, {
    real *p = c->p, *m = c->m, *u = c->v;
    const real *g = c->g;
    for (int64_t i = i0; i < i1; i++) {
      double d = c->maximize ? -(double)g[i] : (double)g[i];
      double x = p[i];
      if (c->wd != 0)
        d = d + c->wd * x;
      real mi = (real)(m[i] * c->b1 + (1 - c->b1) * d);
      real a = (real)(u[i] * c->b2), b = (real)(fabs(d) + c->eps);
      real ui = (a != a || a > b) ? a : b;
      m[i] = mi;
      u[i] = ui;
      p[i] = (real)(x + -c->k.adamax.step_size * (mi / (double)ui));
    }
  });
}

static int adamax_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                         const lg_tensor *grad) {
  adam_ctx c;
  double t = adam_begin(&c, grp, p, grad);
  if (t < 0)
    return -1;
  p->has_state = true;
  p->step = t;
  c.k.adamax.step_size = grp->hp[LG_HP_LR] / (1 - pow(c.b1, t));
  lg_opt_parallel(lg_numel(p->t), adamax_range, &c);
  return 0;
}

static const lg_hp_spec adamax_specs[] = {
    LG_OPT_LR(2e-3), LG_OPT_BETAS(0.9, 0.999), LG_OPT_EPS(1e-8),
    LG_OPT_WD(0),    LG_OPT_MAXIMIZE,          LG_OPT_END};

static const lg_state_spec adamax_state[] = {ADAM_STATE_MOMENTS("exp_inf"),
                                             {NULL, 0, 0}};

const lg_optim_kind lg_optim_adamax = {.name = "Adamax",
                                       .specs = adamax_specs,
                                       .state = adamax_state,
                                       .update = adamax_update};

/* ---- NAdam ----
 * mu_t = beta1 (1 - 0.96^(t psi) / 2), psi the momentum decay
 * prod_t = prod_{i<=t} mu_i ;  next = prod_t * mu_t * mu_{t+1} (as
 *   PyTorch 1.13 writes it; 2.x uses prod_t * mu_{t+1})
 * m, v as Adam ; den = sqrt(v / (1 - beta2^t)) + eps
 * theta -= lr (1 - mu_t) / (1 - prod_t) d / den
 *        + lr mu_{t+1} / (1 - next) m / den */

static void nadam_range(void *vc, int64_t i0, int64_t i1) {
  const adam_ctx *c = vc;
  LG_OPT_TYPED(c->dt, {
    ADAM_PTRS(c);
    for (int64_t i = i0; i < i1; i++) {
      ADAM_MOMENTS(c, d, x, mi, vi);
      double den = sqrt(vi / c->k.nadam.bc2) + c->eps;
      x = x + c->k.nadam.c1 * (d / den);
      p[i] = (real)(x + c->k.nadam.c2 * (mi / den));
    }
  });
}

static int nadam_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                        const lg_tensor *grad) {
  const double *hp = grp->hp;
  adam_ctx c;
  double t = adam_begin(&c, grp, p, grad);
  if (t < 0)
    return -1;
  if (!p->has_state) {
    p->scal[0] = 1; /* mu_product */
    p->has_state = true;
  }
  p->step = t;
  double lr = hp[LG_HP_LR], psi = hp[LG_HP_MOMENTUM_DECAY];
  double mu = c.b1 * (1. - 0.5 * pow(0.96, t * psi));
  double mu_next = c.b1 * (1. - 0.5 * pow(0.96, (t + 1) * psi));
  p->scal[0] *= mu;
  double prod_next = p->scal[0] * mu * mu_next;
  c.k.nadam.bc2 = 1 - pow(c.b2, t);
  c.k.nadam.c1 = -lr * (1. - mu) / (1. - p->scal[0]);
  c.k.nadam.c2 = -lr * mu_next / (1. - prod_next);
  lg_opt_parallel(lg_numel(p->t), nadam_range, &c);
  return 0;
}

static const lg_hp_spec nadam_specs[] = {
    LG_OPT_LR(2e-3),
    LG_OPT_BETAS(0.9, 0.999),
    LG_OPT_EPS(1e-8),
    LG_OPT_WD(0),
    LG_OPT_NUM("momentum_decay", LG_HP_MOMENTUM_DECAY, 4e-3, LG_R_NONNEG),
    LG_OPT_MAXIMIZE,
    LG_OPT_END};

static const lg_state_spec nadam_state[] = {
    ADAM_STATE_MOMENTS("exp_avg_sq"), {"mu_product", LG_ST_SCAL0, 0}, {NULL, 0, 0}};

const lg_optim_kind lg_optim_nadam = {.name = "NAdam",
                                      .specs = nadam_specs,
                                      .state = nadam_state,
                                      .update = nadam_update};

/* ---- RAdam ----
 * m, v as Adam ; rho_inf = 2 / (1 - beta2) - 1
 * rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
 * rho_t > 5: theta -= m / (1 - beta1^t) * lr * sqrt(1 - beta2^t)
 *                     / (sqrt(v) + eps) * rect(rho_t)
 * else:      theta -= m / (1 - beta1^t) * lr */

static void radam_range(void *vc, int64_t i0, int64_t i1) {
  const adam_ctx *c = vc;
  LG_OPT_TYPED(c->dt, {
    ADAM_PTRS(c);
    for (int64_t i = i0; i < i1; i++) {
      ADAM_MOMENTS(c, d, x, mi, vi);
      double mhat = mi / c->k.radam.bc1;
      double u;
      if (c->k.radam.rectify)
        u = mhat * c->k.radam.lr *
            (c->k.radam.bc2_sqrt / (sqrt(vi) + c->eps)) * c->k.radam.rect;
      else
        u = mhat * c->k.radam.lr;
      p[i] = (real)(x + -1.0 * u);
    }
  });
}

static int radam_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                        const lg_tensor *grad) {
  adam_ctx c;
  double t = adam_begin(&c, grp, p, grad);
  if (t < 0)
    return -1;
  p->has_state = true;
  p->step = t;
  double bc2 = 1 - pow(c.b2, t);
  double rho_inf = 2 / (1 - c.b2) - 1;
  double rho_t = rho_inf - 2 * t * pow(c.b2, t) / bc2;
  c.k.radam.lr = grp->hp[LG_HP_LR];
  c.k.radam.bc1 = 1 - pow(c.b1, t);
  c.k.radam.bc2_sqrt = sqrt(bc2);
  if (rho_t > 5.) {
    c.k.radam.rectify = true;
    c.k.radam.rect = sqrt((rho_t - 4) * (rho_t - 2) * rho_inf /
                          ((rho_inf - 4) * (rho_inf - 2) * rho_t));
  }
  lg_opt_parallel(lg_numel(p->t), radam_range, &c);
  return 0;
}

static const lg_hp_spec radam_specs[] = {
    LG_OPT_LR(1e-3), LG_OPT_BETAS(0.9, 0.999), LG_OPT_EPS(1e-8),
    LG_OPT_WD(0),    LG_OPT_MAXIMIZE,          LG_OPT_END};

static const lg_state_spec radam_state[] = {ADAM_STATE_MOMENTS("exp_avg_sq"),
                                            {NULL, 0, 0}};

const lg_optim_kind lg_optim_radam = {.name = "RAdam",
                                      .specs = radam_specs,
                                      .state = radam_state,
                                      .update = radam_update};
