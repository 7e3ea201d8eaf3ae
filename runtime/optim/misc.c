/*
 * optim/misc.c -- adaptive-rate and sign-based optimizers with PyTorch
 * 1.13's update rules: RMSprop, Adagrad, Adadelta, Rprop and ASGD.
 */
#include "optim.h"

typedef struct {
  lg_dtype dt;
  void *p, *a, *b, *c;
  const void *g;
  double lr, wd, alpha, eps, momentum, rho, decay;
  double eta_minus, eta_plus, step_min, step_max, mu;
  bool maximize, centered;
} misc_ctx;

static double grad_at(const misc_ctx *c, double g, double x) {
  double d = c->maximize ? -g : g;
  return c->wd != 0 ? d + c->wd * x : d;
}

/* the context's common part: the parameter, its gradient, lr, weight
 * decay and maximize */
static misc_ctx ctx_of(const double *hp, lg_opt_param *p,
                       const lg_tensor *grad) {
  return (misc_ctx){.dt = p->t->dtype,
                    .p = lg_data_ptr(p->t),
                    .g = lg_data_ptr(grad),
                    .lr = hp[LG_HP_LR],
                    .wd = hp[LG_HP_WEIGHT_DECAY],
                    .maximize = hp[LG_HP_MAXIMIZE] != 0};
}

/* An update's range function over elements [i0, i1): the body runs per
 * element i with p and g the parameter and its gradient, and the
 * context's buffers a, b and c under the names A, B and C. */
#define MISC_RANGE(fname, A, B, C, ...)                                        \
  static void fname(void *vc, int64_t i0, int64_t i1) {                        \
    const misc_ctx *c = vc;                                                    \
    LG_OPT_TYPED(c->dt, {                                                      \
      real *p = c->p, *A = c->a, *B = c->b, *C = c->c;                         \
      const real *g = c->g;                                                    \
      (void)A, (void)B, (void)C;                                               \
      for (int64_t i = i0; i < i1; i++)                                        \
        __VA_ARGS__                                                            \
    });                                                                        \
  }

/* ---- RMSprop ----
 * s = alpha s + (1 - alpha) d^2 ;  centered: a = alpha a + (1 - alpha) d,
 * den = sqrt(s - a^2) + eps, else sqrt(s) + eps
 * momentum: b = momentum b + d / den, theta -= lr b ; else theta -= lr d/den */

MISC_RANGE(rmsprop_range, sq, buf, ga, {
  double x = p[i], d = grad_at(c, g[i], x);
  real si = (real)(sq[i] * c->alpha + (1 - c->alpha) * d * d);
  sq[i] = si;
  double avg;
  if (ga) {
    real gi = (real)(ga[i] * c->alpha + (1 - c->alpha) * d);
    ga[i] = gi;
    avg = sqrt((real)(si + -1.0 * gi * gi));
  } else {
    avg = sqrt(si);
  }
  avg = (real)avg + c->eps;
  if (buf) {
    real bi = (real)(buf[i] * c->momentum + d / avg);
    buf[i] = bi;
    p[i] = (real)(x + -c->lr * bi);
  } else {
    p[i] = (real)(x + -c->lr * (d / avg));
  }
})

static int rmsprop_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                          const lg_tensor *grad) {
  const double *hp = grp->hp;
  int64_t n = lg_numel(p->t);
  misc_ctx c = ctx_of(hp, p, grad);
  c.alpha = hp[LG_HP_ALPHA];
  c.eps = hp[LG_HP_EPS];
  c.momentum = hp[LG_HP_MOMENTUM];
  if (!(c.a = lg_opt_buf(p, 0, n, 0, NULL)))
    return -1;
  if (c.momentum > 0 && !(c.b = lg_opt_buf(p, 1, n, 0, NULL)))
    return -1;
  if (hp[LG_HP_CENTERED] != 0 && !(c.c = lg_opt_buf(p, 2, n, 0, NULL)))
    return -1;
  p->has_state = true;
  p->step++;
  lg_opt_parallel(n, rmsprop_range, &c);
  return 0;
}

static const lg_hp_spec rmsprop_specs[] = {
    LG_OPT_LR(1e-2),
    LG_OPT_NUM("alpha", LG_HP_ALPHA, 0.99, LG_R_NONNEG),
    LG_OPT_EPS(1e-8),
    LG_OPT_WD(0),
    LG_OPT_NUM("momentum", LG_HP_MOMENTUM, 0, LG_R_NONNEG),
    LG_OPT_BOOL("centered", LG_HP_CENTERED, 0),
    LG_OPT_MAXIMIZE,
    LG_OPT_END};

static const lg_state_spec rmsprop_state[] = {
    {"step", LG_ST_STEP, 0},
    {"square_avg", LG_ST_BUF0, LG_SHAPE_PARAM},
    {"momentum_buffer", LG_ST_BUF1, LG_SHAPE_PARAM},
    {"grad_avg", LG_ST_BUF2, LG_SHAPE_PARAM},
    {NULL, 0, 0}};

const lg_optim_kind lg_optim_rmsprop = {.name = "RMSprop",
                                        .specs = rmsprop_specs,
                                        .state = rmsprop_state,
                                        .update = rmsprop_update};

/* ---- Adagrad ----
 * sum += d^2 ;  theta -= lr / (1 + (t - 1) lr_decay) * d / (sqrt(sum) + eps)
 * The sum starts at initial_accumulator_value when the group is added. */

MISC_RANGE(adagrad_range, sum, _b, _c, {
  double x = p[i], d = grad_at(c, g[i], x);
  real s = (real)(sum[i] + 1.0 * d * d);
  sum[i] = s;
  double std = (real)sqrt(s) + c->eps;
  p[i] = (real)(x + -c->lr * (d / std));
})

static int adagrad_init(lg_optim *o, lg_opt_group *grp, lg_opt_param *p) {
  if (!lg_opt_buf(p, 0, lg_numel(p->t), grp->hp[LG_HP_INIT_ACC], NULL))
    return -1;
  p->step = 0;
  p->has_state = true;
  return 0;
}

static int adagrad_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                          const lg_tensor *grad) {
  const double *hp = grp->hp;
  int64_t n = lg_numel(p->t);
  if (!p->buf[0] && adagrad_init(o, grp, p) < 0)
    return -1;
  double t = ++p->step;
  misc_ctx c = ctx_of(hp, p, grad);
  c.a = p->buf[0];
  c.lr = hp[LG_HP_LR] / (1 + (t - 1) * hp[LG_HP_LR_DECAY]);
  c.eps = hp[LG_HP_EPS];
  p->has_state = true;
  lg_opt_parallel(n, adagrad_range, &c);
  return 0;
}

static const lg_hp_spec adagrad_specs[] = {
    LG_OPT_LR(1e-2),
    LG_OPT_NUM("lr_decay", LG_HP_LR_DECAY, 0, LG_R_NONNEG),
    LG_OPT_WD(0),
    LG_OPT_NUM("initial_accumulator_value", LG_HP_INIT_ACC, 0, LG_R_NONNEG),
    LG_OPT_EPS(1e-10),
    LG_OPT_MAXIMIZE,
    LG_OPT_END};

static const lg_state_spec adagrad_state[] = {
    {"step", LG_ST_STEP, 0}, {"sum", LG_ST_BUF0, LG_SHAPE_PARAM}, {NULL, 0, 0}};

const lg_optim_kind lg_optim_adagrad = {.name = "Adagrad",
                                        .specs = adagrad_specs,
                                        .state = adagrad_state,
                                        .init_param = adagrad_init,
                                        .update = adagrad_update,
                                        .update_sparse =
                                            lg_adagrad_update_sparse};

/* ---- Adadelta ----
 * s = rho s + (1 - rho) d^2 ;  delta = sqrt(a + eps) / sqrt(s + eps) * d
 * a = rho a + (1 - rho) delta^2 ;  theta -= lr delta */

MISC_RANGE(adadelta_range, sq, acc, _c, {
  double x = p[i], d = grad_at(c, g[i], x);
  real si = (real)(sq[i] * c->rho + (1 - c->rho) * d * d);
  sq[i] = si;
  double std = (real)sqrt((real)(si + c->eps));
  real delta = (real)((real)((real)sqrt((real)(acc[i] + c->eps)) / std) * d);
  acc[i] = (real)(acc[i] * c->rho + (1 - c->rho) * delta * delta);
  p[i] = (real)(x + -c->lr * delta);
})

static int adadelta_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                           const lg_tensor *grad) {
  const double *hp = grp->hp;
  int64_t n = lg_numel(p->t);
  misc_ctx c = ctx_of(hp, p, grad);
  c.rho = hp[LG_HP_RHO];
  c.eps = hp[LG_HP_EPS];
  if (!(c.a = lg_opt_buf(p, 0, n, 0, NULL)) ||
      !(c.b = lg_opt_buf(p, 1, n, 0, NULL)))
    return -1;
  p->has_state = true;
  p->step++;
  lg_opt_parallel(n, adadelta_range, &c);
  return 0;
}

static const lg_hp_spec adadelta_specs[] = {
    LG_OPT_LR(1.0),   LG_OPT_NUM("rho", LG_HP_RHO, 0.9, .lo = {0}, .hi = {1}),
    LG_OPT_EPS(1e-6), LG_OPT_WD(0),
    LG_OPT_MAXIMIZE,  LG_OPT_END};

static const lg_state_spec adadelta_state[] = {
    {"step", LG_ST_STEP, 0},
    {"square_avg", LG_ST_BUF0, LG_SHAPE_PARAM},
    {"acc_delta", LG_ST_BUF1, LG_SHAPE_PARAM},
    {NULL, 0, 0}};

const lg_optim_kind lg_optim_adadelta = {.name = "Adadelta",
                                         .specs = adadelta_specs,
                                         .state = adadelta_state,
                                         .update = adadelta_update};

/* ---- Rprop ----
 * s = sign(d * prev): the step size grows by eta_plus (s > 0) or shrinks
 * by eta_minus (s < 0), clamped to step_sizes; where s < 0 the gradient is
 * taken as 0 ;  theta -= sign(d) * step ;  prev = d */

MISC_RANGE(rprop_range, prev, step, _c, {
  double d = c->maximize ? -(double)g[i] : (double)g[i];
  double s = d * prev[i];
  double f = s > 0 ? c->eta_plus : s < 0 ? c->eta_minus : 1.0;
  double st = (real)(step[i] * f);
  if (st < c->step_min)
    st = c->step_min;
  if (st > c->step_max)
    st = c->step_max;
  step[i] = (real)st;
  if (f == c->eta_minus)
    d = 0;
  double sg = d > 0 ? 1.0 : d < 0 ? -1.0 : d; /* keeps NaN */
  p[i] = (real)(p[i] + -1.0 * sg * step[i]);
  prev[i] = (real)d;
})

static int rprop_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                        const lg_tensor *grad) {
  const double *hp = grp->hp;
  int64_t n = lg_numel(p->t);
  misc_ctx c = ctx_of(hp, p, grad);
  c.eta_minus = hp[LG_HP_ETA_MINUS];
  c.eta_plus = hp[LG_HP_ETA_PLUS];
  c.step_min = hp[LG_HP_STEP_MIN];
  c.step_max = hp[LG_HP_STEP_MAX];
  if (!(c.a = lg_opt_buf(p, 0, n, 0, NULL)) ||
      !(c.b = lg_opt_buf(p, 1, n, hp[LG_HP_LR], NULL)))
    return -1;
  p->has_state = true;
  p->step++;
  lg_opt_parallel(n, rprop_range, &c);
  return 0;
}

static const lg_hp_spec rprop_specs[] = {
    LG_OPT_LR(1e-2),
    {.name = "etas",
     .id = LG_HP_ETA_MINUS,
     .n = 2,
     .type = LG_HPT_NUM,
     .def = {0.5, 1.2},
     .lo = {0, 1},
     .hi = {1, INFINITY},
     .open = {LG_HP_LO_OPEN | LG_HP_HI_OPEN, LG_HP_LO_OPEN}},
    {.name = "step_sizes",
     .id = LG_HP_STEP_MIN,
     .n = 2,
     .type = LG_HPT_NUM,
     .def = {1e-6, 50},
     LG_R_NONNEG},
    LG_OPT_MAXIMIZE,
    LG_OPT_END};

static const lg_state_spec rprop_state[] = {
    {"step", LG_ST_STEP, 0},
    {"prev", LG_ST_BUF0, LG_SHAPE_PARAM},
    {"step_size", LG_ST_BUF1, LG_SHAPE_PARAM},
    {NULL, 0, 0}};

const lg_optim_kind lg_optim_rprop = {.name = "Rprop",
                                      .specs = rprop_specs,
                                      .state = rprop_state,
                                      .update = rprop_update};

/* ---- ASGD ----
 * theta = theta (1 - lambd eta) - eta d ;  ax = theta (mu = 1) or
 * ax + mu (theta - ax) ;  then eta = lr / (1 + lambd lr t)^alpha and
 * mu = 1 / max(1, t - t0).  eta starts at lr, mu at 1. */

MISC_RANGE(asgd_range, ax, _b, _c, {
  double x = p[i], d = grad_at(c, g[i], x);
  real xi = (real)(x * c->decay);
  xi = (real)(xi + -c->lr * d);
  p[i] = xi;
  if (c->mu != 1)
    ax[i] = (real)(ax[i] + (real)(xi - ax[i]) * c->mu);
  else
    ax[i] = xi;
})

static int asgd_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                       const lg_tensor *grad) {
  const double *hp = grp->hp;
  int64_t n = lg_numel(p->t);
  double lr = hp[LG_HP_LR], lambd = hp[LG_HP_LAMBD];
  misc_ctx c = ctx_of(hp, p, grad);
  if (!(c.a = lg_opt_buf(p, 0, n, 0, NULL)))
    return -1;
  if (!p->has_state) {
    p->scal[0] = lr; /* eta */
    p->scal[1] = 1;  /* mu */
    p->has_state = true;
  }
  double t = ++p->step;
  c.lr = p->scal[0];
  c.decay = 1 - lambd * p->scal[0];
  c.mu = p->scal[1];
  lg_opt_parallel(n, asgd_range, &c);
  p->scal[0] = lr / pow(1 + lambd * lr * t, hp[LG_HP_ALPHA]);
  p->scal[1] = 1 / fmax(1, t - hp[LG_HP_T0]);
  return 0;
}

static const lg_hp_spec asgd_specs[] = {
    LG_OPT_LR(1e-2),
    LG_OPT_NUM("lambd", LG_HP_LAMBD, 1e-4, LG_R_ANY),
    LG_OPT_NUM("alpha", LG_HP_ALPHA, 0.75, LG_R_ANY),
    LG_OPT_NUM("t0", LG_HP_T0, 1e6, LG_R_ANY),
    LG_OPT_WD(0),
    LG_OPT_MAXIMIZE,
    LG_OPT_END};

static const lg_state_spec asgd_state[] = {{"step", LG_ST_STEP, 0},
                                           {"eta", LG_ST_SCAL0, 0},
                                           {"mu", LG_ST_SCAL1, 0},
                                           {"ax", LG_ST_BUF0, LG_SHAPE_PARAM},
                                           {NULL, 0, 0}};

const lg_optim_kind lg_optim_asgd = {.name = "ASGD",
                                     .specs = asgd_specs,
                                     .state = asgd_state,
                                     .update = asgd_update};
