/*
 * sched/decay.c -- the schedulers that scale each group's lr by a formula
 * of the step: Constant, Step, MultiStep, Exponential, Cosine, Linear,
 * Polynomial, Lambda, Multiplicative (PyTorch's ConstantLR, StepLR, ...).
 *
 * Each kind gives its chainable form as a function of one group's current
 * lr (chain_each runs it over the groups) and, where PyTorch has one, the
 * closed form used by step(epoch).
 */
#include "kind.h"

/* one group's new lr from its current one at epoch e */
typedef int (*chain_fn)(lg_sched *s, void *cc, int g, int64_t e, double *lr);

static int chain_each(lg_sched *s, void *cc, double *out, chain_fn fn) {
  if (lg_sched_read_lrs(s, out) < 0)
    return -1;
  for (int g = 0; g < s->ngroups; g++)
    if (fn(s, cc, g, s->last_epoch, &out[g]) < 0)
      return -1;
  return 0;
}

/* the get_lr hook of a kind whose chainable form is NAME_chain */
#define CHAIN_HOOK(name)                                                       \
  static int name##_get_lr(lg_sched *s, void *cc, double *out, double *moms,  \
                           const char **mom_key) {                             \
    (void)moms;                                                                \
    (void)mom_key;                                                             \
    return chain_each(s, cc, out, name##_chain);                               \
  }

static const char *const words_number = "a number";
static const char *const words_pos_int = "a positive integer";

/* ---- Constant ---- */

struct constant_state {
  double factor;
  int64_t total_iters;
};

static int constant_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  *LG_SCHED_STATE(s, struct constant_state) =
      (struct constant_state){o->factor, o->total_iters};
  return lg_sched_lr_init(s, cc);
}

static int constant_chain(lg_sched *s, void *cc, int g, int64_t e, double *lr) {
  struct constant_state *st = s->state;
  (void)cc, (void)g;
  if (e == 0)
    *lr = *lr * st->factor;
  else if (e == st->total_iters)
    *lr = *lr * (1.0 / st->factor);
  return 0;
}
CHAIN_HOOK(constant)

static void constant_closed(lg_sched *s, double *out) {
  struct constant_state *st = s->state;
  double e = (double)s->last_epoch;
  for (int g = 0; g < s->ngroups; g++)
    out[g] = s->base_lrs[g] *
             (st->factor + (e >= st->total_iters) * (1 - st->factor));
}

static int constant_fields(lg_sched *s, lg_sched_field *out) {
  struct constant_state *st = s->state;
  out[0] = LG_SF_F64("factor", st->factor);
  out[1] = LG_SF_I64("total_iters", st->total_iters);
  return 2;
}

static const lg_sched_opt constant_opts[] = {
    LG_SO_NUM_R("factor", factor, 1.0 / 3, 0, 1, LG_SOPT_LO_OPEN, NULL),
    LG_SO_INT_R("total_iters", total_iters, 5, 0, INFINITY, 0, NULL),
    LG_SO_END};

const lg_sched_kind_def lg_schedk_constant = {
    .name = "Constant",
    .opts = constant_opts,
    .state_size = sizeof(struct constant_state),
    .init = constant_init,
    .get_lr = constant_get_lr,
    .closed = constant_closed,
    .fields = constant_fields};

/* ---- Step ---- */

struct step_state {
  int64_t step_size;
  double gamma;
};

static int step_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  *LG_SCHED_STATE(s, struct step_state) =
      (struct step_state){o->step_size, o->gamma};
  return lg_sched_lr_init(s, cc);
}

static int step_chain(lg_sched *s, void *cc, int g, int64_t e, double *lr) {
  struct step_state *st = s->state;
  (void)cc, (void)g;
  if (e != 0 && e % st->step_size == 0)
    *lr = *lr * st->gamma;
  return 0;
}
CHAIN_HOOK(step)

static void step_closed(lg_sched *s, double *out) {
  struct step_state *st = s->state;
  int64_t e = s->last_epoch;
  for (int g = 0; g < s->ngroups; g++)
    out[g] = s->base_lrs[g] *
             pow(st->gamma,
                 (double)(e / st->step_size - (e % st->step_size < 0)));
}

static int step_fields(lg_sched *s, lg_sched_field *out) {
  struct step_state *st = s->state;
  out[0] = LG_SF_I64("step_size", st->step_size);
  out[1] = LG_SF_F64("gamma", st->gamma);
  return 2;
}

#define GAMMA_FINITE(d)                                                        \
  LG_SO_NUM_R("gamma", gamma, d, -INFINITY, INFINITY,                          \
              LG_SOPT_LO_OPEN | LG_SOPT_HI_OPEN, words_number)

static const lg_sched_opt step_opts[] = {
    LG_SO_INT_R("step_size", step_size, 0, 0, INFINITY,
                LG_SOPT_REQUIRED | LG_SOPT_LO_OPEN, words_pos_int),
    GAMMA_FINITE(0.1), LG_SO_END};

const lg_sched_kind_def lg_schedk_step = {.name = "Step",
                                         .opts = step_opts,
                                         .state_size = sizeof(struct step_state),
                                         .init = step_init,
                                         .get_lr = step_get_lr,
                                         .closed = step_closed,
                                         .fields = step_fields};

/* ---- MultiStep ---- */

struct multistep_state {
  int64_t *milestones; /* sorted */
  int nmilestones;
  double gamma;
};

static int multistep_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  struct multistep_state *st = s->state;
  st->milestones = lg_sched_copy_list(s, o->milestones, o->nmilestones, true);
  if (!st->milestones)
    return -1;
  st->nmilestones = o->nmilestones;
  st->gamma = o->gamma;
  return lg_sched_lr_init(s, cc);
}

static void multistep_release(lg_sched *s) {
  free(LG_SCHED_STATE(s, struct multistep_state)->milestones);
}

static int multistep_chain(lg_sched *s, void *cc, int g, int64_t e,
                           double *lr) {
  struct multistep_state *st = s->state;
  int count = 0;
  (void)cc, (void)g;
  for (int i = 0; i < st->nmilestones; i++)
    count += st->milestones[i] == e;
  if (count)
    *lr = *lr * pow(st->gamma, count);
  return 0;
}
CHAIN_HOOK(multistep)

static void multistep_closed(lg_sched *s, double *out) {
  struct multistep_state *st = s->state;
  int k = 0; /* bisect_right over the sorted milestones */
  while (k < st->nmilestones && st->milestones[k] <= s->last_epoch)
    k++;
  for (int g = 0; g < s->ngroups; g++)
    out[g] = s->base_lrs[g] * pow(st->gamma, k);
}

static int multistep_fields(lg_sched *s, lg_sched_field *out) {
  struct multistep_state *st = s->state;
  out[0] = LG_SF_I64S("milestones", st->milestones, st->nmilestones);
  out[1] = LG_SF_F64("gamma", st->gamma);
  return 2;
}

static const lg_sched_opt multistep_opts[] = {
    LG_SO_MILESTONES(LG_SOPT_REQUIRED), GAMMA_FINITE(0.1), LG_SO_END};

const lg_sched_kind_def lg_schedk_multistep = {
    .name = "MultiStep",
    .opts = multistep_opts,
    .state_size = sizeof(struct multistep_state),
    .init = multistep_init,
    .get_lr = multistep_get_lr,
    .closed = multistep_closed,
    .fields = multistep_fields,
    .release = multistep_release};

/* ---- Exponential ---- */

struct exponential_state {
  double gamma;
};

static int exponential_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  LG_SCHED_STATE(s, struct exponential_state)->gamma = o->gamma;
  return lg_sched_lr_init(s, cc);
}

static int exponential_chain(lg_sched *s, void *cc, int g, int64_t e,
                             double *lr) {
  (void)cc, (void)g;
  if (e != 0)
    *lr = *lr * LG_SCHED_STATE(s, struct exponential_state)->gamma;
  return 0;
}
CHAIN_HOOK(exponential)

static void exponential_closed(lg_sched *s, double *out) {
  double gamma = LG_SCHED_STATE(s, struct exponential_state)->gamma;
  for (int g = 0; g < s->ngroups; g++)
    out[g] = s->base_lrs[g] * pow(gamma, (double)s->last_epoch);
}

static int exponential_fields(lg_sched *s, lg_sched_field *out) {
  out[0] = LG_SF_F64("gamma", LG_SCHED_STATE(s, struct exponential_state)->gamma);
  return 1;
}

static const lg_sched_opt exponential_opts[] = {
    LG_SO_NUM_R("gamma", gamma, NAN, -INFINITY, INFINITY,
                LG_SOPT_REQUIRED | LG_SOPT_LO_OPEN | LG_SOPT_HI_OPEN,
                "finite"),
    LG_SO_END};

const lg_sched_kind_def lg_schedk_exponential = {
    .name = "Exponential",
    .opts = exponential_opts,
    .state_size = sizeof(struct exponential_state),
    .init = exponential_init,
    .get_lr = exponential_get_lr,
    .closed = exponential_closed,
    .fields = exponential_fields};

/* ---- Cosine ---- */

struct cosine_state {
  double T_max, eta_min;
};

static int cosine_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  *LG_SCHED_STATE(s, struct cosine_state) =
      (struct cosine_state){o->T_max, o->eta_min};
  return lg_sched_lr_init(s, cc);
}

static int cosine_chain(lg_sched *s, void *cc, int g, int64_t e, double *lr) {
  struct cosine_state *st = s->state;
  double T = st->T_max, base = s->base_lrs[g];
  (void)cc;
  if (e == 0)
    return 0;
  if (s->step_count == 1 && e > 0)
    *lr = st->eta_min + (base - st->eta_min) * (1 + cos(e * M_PI / T)) / 2;
  else if (fmod((double)(e - 1) - T, 2 * T) == 0)
    *lr = *lr + (base - st->eta_min) * (1 - cos(M_PI / T)) / 2;
  else
    *lr = (1 + cos(M_PI * e / T)) / (1 + cos(M_PI * (e - 1) / T)) *
              (*lr - st->eta_min) +
          st->eta_min;
  return 0;
}
CHAIN_HOOK(cosine)

static void cosine_closed(lg_sched *s, double *out) {
  struct cosine_state *st = s->state;
  double e = (double)s->last_epoch;
  for (int g = 0; g < s->ngroups; g++)
    out[g] = st->eta_min + (s->base_lrs[g] - st->eta_min) *
                               (1 + cos(M_PI * e / st->T_max)) / 2;
}

static int cosine_fields(lg_sched *s, lg_sched_field *out) {
  struct cosine_state *st = s->state;
  out[0] = LG_SF_F64("T_max", st->T_max);
  out[1] = LG_SF_F64("eta_min", st->eta_min);
  return 2;
}

static const lg_sched_opt cosine_opts[] = {
    LG_SO_NUM_R("T_max", T_max, NAN, 0, INFINITY,
                LG_SOPT_REQUIRED | LG_SOPT_LO_OPEN | LG_SOPT_HI_OPEN,
                "positive"),
    LG_SO_NUM("eta_min", eta_min, 0), LG_SO_END};

const lg_sched_kind_def lg_schedk_cosine = {
    .name = "Cosine",
    .opts = cosine_opts,
    .state_size = sizeof(struct cosine_state),
    .init = cosine_init,
    .get_lr = cosine_get_lr,
    .closed = cosine_closed,
    .fields = cosine_fields};

/* ---- Linear ---- */

struct linear_state {
  double start_factor, end_factor;
  int64_t total_iters;
};

static int linear_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  *LG_SCHED_STATE(s, struct linear_state) =
      (struct linear_state){o->start_factor, o->end_factor, o->total_iters};
  return lg_sched_lr_init(s, cc);
}

static int linear_chain(lg_sched *s, void *cc, int g, int64_t e, double *lr) {
  struct linear_state *st = s->state;
  double a = st->start_factor, b = st->end_factor;
  (void)cc, (void)g;
  if (e == 0)
    *lr = *lr * a;
  else if (e <= st->total_iters)
    *lr = *lr * (1. + (b - a) / (st->total_iters * a + (e - 1) * (b - a)));
  return 0;
}
CHAIN_HOOK(linear)

static void linear_closed(lg_sched *s, double *out) {
  struct linear_state *st = s->state;
  double e = (double)s->last_epoch;
  double m = e < st->total_iters ? e : (double)st->total_iters;
  for (int g = 0; g < s->ngroups; g++)
    out[g] = s->base_lrs[g] *
             (st->start_factor +
              (st->end_factor - st->start_factor) * m / st->total_iters);
}

static int linear_fields(lg_sched *s, lg_sched_field *out) {
  struct linear_state *st = s->state;
  out[0] = LG_SF_F64("start_factor", st->start_factor);
  out[1] = LG_SF_F64("end_factor", st->end_factor);
  out[2] = LG_SF_I64("total_iters", st->total_iters);
  return 3;
}

static const lg_sched_opt linear_opts[] = {
    LG_SO_NUM_R("start_factor", start_factor, 1.0 / 3, 0, 1, LG_SOPT_LO_OPEN,
                NULL),
    LG_SO_NUM_R("end_factor", end_factor, 1.0, 0, 1, 0, NULL),
    LG_SO_INT_R("total_iters", total_iters, 5, 0, INFINITY, LG_SOPT_LO_OPEN,
                words_pos_int),
    LG_SO_END};

const lg_sched_kind_def lg_schedk_linear = {
    .name = "Linear",
    .opts = linear_opts,
    .state_size = sizeof(struct linear_state),
    .init = linear_init,
    .get_lr = linear_get_lr,
    .closed = linear_closed,
    .fields = linear_fields};

/* ---- Polynomial ---- */

struct polynomial_state {
  int64_t total_iters;
  double power;
};

static int polynomial_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  *LG_SCHED_STATE(s, struct polynomial_state) =
      (struct polynomial_state){o->total_iters, o->power};
  return lg_sched_lr_init(s, cc);
}

static int polynomial_chain(lg_sched *s, void *cc, int g, int64_t e,
                            double *lr) {
  struct polynomial_state *st = s->state;
  (void)cc, (void)g;
  if (e != 0 && e <= st->total_iters) {
    double ti = (double)st->total_iters;
    *lr = *lr * pow((1.0 - e / ti) / (1.0 - (e - 1) / ti), st->power);
  }
  return 0;
}
CHAIN_HOOK(polynomial)

static void polynomial_closed(lg_sched *s, double *out) {
  struct polynomial_state *st = s->state;
  double e = (double)s->last_epoch;
  double m = e < st->total_iters ? e : (double)st->total_iters;
  for (int g = 0; g < s->ngroups; g++)
    out[g] = s->base_lrs[g] * pow(1.0 - m / st->total_iters, st->power);
}

static int polynomial_fields(lg_sched *s, lg_sched_field *out) {
  struct polynomial_state *st = s->state;
  out[0] = LG_SF_I64("total_iters", st->total_iters);
  out[1] = LG_SF_F64("power", st->power);
  return 2;
}

static const lg_sched_opt polynomial_opts[] = {
    LG_SO_INT_R("total_iters", total_iters, 5, 0, INFINITY, LG_SOPT_LO_OPEN,
                words_pos_int),
    LG_SO_NUM_R("power", power, 1.0, -INFINITY, INFINITY,
                LG_SOPT_LO_OPEN | LG_SOPT_HI_OPEN, words_number),
    LG_SO_END};

const lg_sched_kind_def lg_schedk_polynomial = {
    .name = "Polynomial",
    .opts = polynomial_opts,
    .state_size = sizeof(struct polynomial_state),
    .init = polynomial_init,
    .get_lr = polynomial_get_lr,
    .closed = polynomial_closed,
    .fields = polynomial_fields};

/* ---- Lambda, Multiplicative: a caller's function of the epoch ---- */

struct lambda_state {
  lg_sched_fn fn;
  void *fn_ctx;
};

static int lambda_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  *LG_SCHED_STATE(s, struct lambda_state) =
      (struct lambda_state){o->fn, o->fn_ctx};
  return lg_sched_lr_init(s, cc);
}

static int lambda_factor(lg_sched *s, void *cc, int g, int64_t e, double *f) {
  struct lambda_state *st = s->state;
  return lg_sched_call_fn(s, st->fn, st->fn_ctx, cc, g, e, f);
}

/* LambdaLR: base_lr times the factor */
static int lambda_get_lr(lg_sched *s, void *cc, double *out, double *moms,
                         const char **mom_key) {
  (void)moms, (void)mom_key;
  for (int g = 0; g < s->ngroups; g++) {
    double f;
    if (lambda_factor(s, cc, g, s->last_epoch, &f) < 0)
      return -1;
    out[g] = s->base_lrs[g] * f;
  }
  return 0;
}

/* MultiplicativeLR: the current lr times the factor */
static int multiplicative_chain(lg_sched *s, void *cc, int g, int64_t e,
                                double *lr) {
  double f;
  if (e <= 0)
    return 0;
  if (lambda_factor(s, cc, g, e, &f) < 0)
    return -1;
  *lr = *lr * f;
  return 0;
}
CHAIN_HOOK(multiplicative)

static const lg_sched_opt lambda_opts[] = {LG_SO_FN, LG_SO_END};

const lg_sched_kind_def lg_schedk_lambda = {
    .name = "Lambda",
    .opts = lambda_opts,
    .state_size = sizeof(struct lambda_state),
    .init = lambda_init,
    .get_lr = lambda_get_lr};

const lg_sched_kind_def lg_schedk_multiplicative = {
    .name = "Multiplicative",
    .opts = lambda_opts,
    .state_size = sizeof(struct lambda_state),
    .init = lambda_init,
    .get_lr = multiplicative_get_lr};
