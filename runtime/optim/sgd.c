/*
 * optim/sgd.c -- plain gradient descent, SGD with momentum and Nesterov
 * (PyTorch 1.13's rule), and Lion (Chen et al. 2023, "Symbolic Discovery
 * of Optimization Algorithms", Algorithm 2 with decoupled weight decay).
 */
#include "optim.h"

/* ---- GD: theta <- theta - lr * (grad + weight_decay * theta) ---- */

typedef struct {
  lg_dtype dt;
  void *p;
  const void *g;
  void *buf;
  double lr, wd, momentum, dampening;
  bool maximize, nesterov, first;
} sgd_ctx;

static void gd_range(void *vc, int64_t i0, int64_t i1) {
  const sgd_ctx *c = vc;
  LG_OPT_TYPED(c->dt, {
    real *p = c->p;
    const real *g = c->g;
    for (int64_t i = i0; i < i1; i++) {
      double d = c->maximize ? -(double)g[i] : (double)g[i];
      if (c->wd != 0)
        d = d + c->wd * p[i];
      p[i] = (real)(p[i] + -c->lr * d);
    }
  });
}

static int gd_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                     const lg_tensor *grad) {
  const double *hp = grp->hp;
  sgd_ctx c = {.dt = p->t->dtype,
               .p = lg_data_ptr(p->t),
               .g = lg_data_ptr(grad),
               .lr = hp[LG_HP_LR],
               .wd = hp[LG_HP_WEIGHT_DECAY],
               .maximize = hp[LG_HP_MAXIMIZE] != 0};
  lg_opt_parallel(lg_numel(p->t), gd_range, &c);
  return 0;
}

static const lg_hp_spec gd_specs[] = {LG_OPT_LR_REQUIRED, LG_OPT_WD(0),
                                      LG_OPT_MAXIMIZE, LG_OPT_END};

const lg_optim_kind lg_optim_gd = {
    .name = "GD", .specs = gd_specs, .update = gd_update};

/* ---- SGD ----
 * d = grad (+ weight_decay * theta)
 * buf = d on the first step, else momentum * buf + (1 - dampening) * d
 * d = d + momentum * buf (nesterov) or buf
 * theta = theta - lr * d */

static void sgd_range(void *vc, int64_t i0, int64_t i1) {
  const sgd_ctx *c = vc;
  if (c->dt == LG_FLOAT32 && c->buf && !c->first && c->wd == 0 &&
      !c->maximize && !c->nesterov) {
    /* the usual momentum step without a branch in the loop, so it
     * vectorizes; the same operations in the same order as below */
    float *p = c->p, *buf = c->buf;
    const float *g = c->g;
    double m = c->momentum, a = 1 - c->dampening, nlr = -c->lr;
    for (int64_t i = i0; i < i1; i++) {
      float b = (float)(buf[i] * m + a * g[i]);
      buf[i] = b;
      p[i] = (float)(p[i] + nlr * b);
    }
    return;
  }
  LG_OPT_TYPED(c->dt, {
    real *p = c->p, *buf = c->buf;
    const real *g = c->g;
    for (int64_t i = i0; i < i1; i++) {
      double d = c->maximize ? -(double)g[i] : (double)g[i];
      if (c->wd != 0)
        d = d + c->wd * p[i];
      if (buf) {
        double b;
        if (c->first)
          b = d;
        else
          b = buf[i] * c->momentum + (1 - c->dampening) * d;
        buf[i] = (real)b;
        b = buf[i];
        d = c->nesterov ? d + c->momentum * b : b;
      }
      p[i] = (real)(p[i] + -c->lr * d);
    }
  });
}

static int sgd_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                      const lg_tensor *grad) {
  const double *hp = grp->hp;
  int64_t n = lg_numel(p->t);
  sgd_ctx c = {.dt = p->t->dtype,
               .p = lg_data_ptr(p->t),
               .g = lg_data_ptr(grad),
               .lr = hp[LG_HP_LR],
               .wd = hp[LG_HP_WEIGHT_DECAY],
               .momentum = hp[LG_HP_MOMENTUM],
               .dampening = hp[LG_HP_DAMPENING],
               .maximize = hp[LG_HP_MAXIMIZE] != 0,
               .nesterov = hp[LG_HP_NESTEROV] != 0};
  if (c.momentum != 0) {
    c.buf = lg_opt_buf(p, 0, n, 0, &c.first);
    if (!c.buf)
      return -1;
    p->has_state = true;
  }
  lg_opt_parallel(n, sgd_range, &c);
  return 0;
}

static int sgd_check(const lg_optim *o, double *hp) {
  if (hp[LG_HP_NESTEROV] != 0 &&
      (!(hp[LG_HP_MOMENTUM] > 0) || hp[LG_HP_DAMPENING] != 0)) {
    lg_seterr("SGD: Nesterov momentum requires a momentum and zero "
              "dampening");
    return -1;
  }
  return 0;
}

static const lg_hp_spec sgd_specs[] = {
    LG_OPT_LR_REQUIRED,
    LG_OPT_NUM("momentum", LG_HP_MOMENTUM, 0, LG_R_NONNEG),
    LG_OPT_NUM("dampening", LG_HP_DAMPENING, 0, LG_R_ANY),
    LG_OPT_WD(0),
    LG_OPT_BOOL("nesterov", LG_HP_NESTEROV, 0),
    LG_OPT_MAXIMIZE,
    LG_OPT_END};

static const lg_state_spec sgd_state[] = {
    {"momentum_buffer", LG_ST_BUF0, LG_SHAPE_PARAM}, {NULL, 0, 0}};

const lg_optim_kind lg_optim_sgd = {.name = "SGD",
                                    .specs = sgd_specs,
                                    .state = sgd_state,
                                    .check_group = sgd_check,
                                    .update = sgd_update,
                                    .update_sparse = lg_sgd_update_sparse};

/* ---- Lion ----
 * theta = theta * (1 - lr * weight_decay)
 * theta = theta - lr * sign(beta1 * m + (1 - beta1) * grad)
 * m = beta2 * m + (1 - beta2) * grad */

typedef struct {
  lg_dtype dt;
  void *p, *m;
  const void *g;
  double lr, wd, b1, b2;
  bool maximize;
} lion_ctx;

static void lion_range(void *vc, int64_t i0, int64_t i1) {
  const lion_ctx *c = vc;
  double decay = 1 - c->lr * c->wd;
  LG_OPT_TYPED(c->dt, {
    real *p = c->p, *m = c->m;
    const real *g = c->g;
    for (int64_t i = i0; i < i1; i++) {
      double d = c->maximize ? -(double)g[i] : (double)g[i];
      double x = p[i];
      if (c->wd != 0)
        x = x * decay;
      double u = m[i] * c->b1 + (1 - c->b1) * d;
      double s = u > 0 ? 1.0 : u < 0 ? -1.0 : 0.0;
      p[i] = (real)(x + -c->lr * s);
      m[i] = (real)(m[i] * c->b2 + (1 - c->b2) * d);
    }
  });
}

static int lion_update(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                       const lg_tensor *grad) {
  const double *hp = grp->hp;
  int64_t n = lg_numel(p->t);
  lion_ctx c = {.dt = p->t->dtype,
                .p = lg_data_ptr(p->t),
                .g = lg_data_ptr(grad),
                .lr = hp[LG_HP_LR],
                .wd = hp[LG_HP_WEIGHT_DECAY],
                .b1 = hp[LG_HP_BETA1],
                .b2 = hp[LG_HP_BETA2],
                .maximize = hp[LG_HP_MAXIMIZE] != 0};
  if (!(c.m = lg_opt_buf(p, 0, n, 0, NULL)))
    return -1;
  p->has_state = true;
  lg_opt_parallel(n, lion_range, &c);
  return 0;
}

static const lg_hp_spec lion_specs[] = {LG_OPT_LR(1e-4),
                                        LG_OPT_BETAS(0.9, 0.99), LG_OPT_WD(0),
                                        LG_OPT_MAXIMIZE, LG_OPT_END};

static const lg_state_spec lion_state[] = {
    {"exp_avg", LG_ST_BUF0, LG_SHAPE_PARAM}, {NULL, 0, 0}};

const lg_optim_kind lg_optim_lion = {.name = "Lion",
                                     .specs = lion_specs,
                                     .state = lion_state,
                                     .update = lion_update};
