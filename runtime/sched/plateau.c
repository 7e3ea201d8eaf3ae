/*
 * sched/plateau.c -- Plateau (PyTorch's ReduceLROnPlateau): steps on a
 * metric and cuts the lr when it stops improving.
 */
#include "kind.h"

struct plateau_state {
  int64_t mode_max, threshold_abs, patience, cooldown;
  int64_t cooldown_counter, num_bad_epochs;
  double factor, threshold, eps, best;
};

enum { PLATEAU_MIN_LRS, PLATEAU_NARRAYS };

static int plateau_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  struct plateau_state *st = s->state;
  (void)cc;
  *st = (struct plateau_state){.mode_max = o->mode_max,
                               .threshold_abs = o->threshold_abs,
                               .patience = o->patience,
                               .cooldown = o->cooldown,
                               .factor = o->factor,
                               .threshold = o->threshold,
                               .eps = o->eps,
                               .best = o->mode_max ? -INFINITY : INFINITY};
  for (int g = 0; g < s->ngroups; g++)
    s->arrays[PLATEAU_MIN_LRS][g] = lg_sched_pergroup_at(&o->min_lr, g);
  s->last_epoch = 0;
  if (lg_sched_read_lrs(s, s->last_lrs) < 0)
    return -1;
  memcpy(s->base_lrs, s->last_lrs, sizeof(double) * s->ngroups);
  return 0;
}

static bool plateau_better(const struct plateau_state *st, double a,
                           double best) {
  if (!st->mode_max)
    return st->threshold_abs ? a < best - st->threshold
                             : a < best * (1. - st->threshold);
  return st->threshold_abs ? a > best + st->threshold
                           : a > best * (st->threshold + 1.);
}

/* ReduceLROnPlateau.step(metrics) */
static int plateau_step_metric(lg_sched *s, double metric) {
  struct plateau_state *st = s->state;
  const double *min_lrs = s->arrays[PLATEAU_MIN_LRS];
  double best = st->best;
  int64_t bad = st->num_bad_epochs, cooldown = st->cooldown_counter;
  if (plateau_better(st, metric, best)) {
    best = metric;
    bad = 0;
  } else {
    bad++;
  }
  if (cooldown > 0) {
    cooldown--;
    bad = 0;
  }
  if (lg_sched_read_lrs(s, s->scratch) < 0)
    return -1;
  if (bad > st->patience) {
    for (int g = 0; g < s->ngroups; g++) {
      double old_lr = s->scratch[g], new_lr = old_lr * st->factor;
      if (min_lrs[g] > new_lr)
        new_lr = min_lrs[g];
      if (old_lr - new_lr > st->eps)
        s->scratch[g] = new_lr;
    }
    cooldown = st->cooldown;
    bad = 0;
  }
  if (lg_sched_commit(s, s->scratch, NULL, NULL) < 0)
    return -1;
  st->best = best;
  st->num_bad_epochs = bad;
  st->cooldown_counter = cooldown;
  s->last_epoch++;
  s->step_count++;
  return 0;
}

static int plateau_step(lg_sched *s, const double *epoch, void *cc) {
  (void)s, (void)epoch, (void)cc;
  lg_seterr("sched.Plateau: step needs the metric");
  return -1;
}

static int plateau_fields(lg_sched *s, lg_sched_field *out) {
  struct plateau_state *st = s->state;
  int k = 0;
  out[k++] = LG_SF_F64("factor", st->factor);
  out[k++] = LG_SF_I64("mode_max", st->mode_max);
  out[k++] = LG_SF_I64("threshold_abs", st->threshold_abs);
  out[k++] = LG_SF_F64("threshold", st->threshold);
  out[k++] = LG_SF_I64("patience", st->patience);
  out[k++] = LG_SF_I64("cooldown", st->cooldown);
  out[k++] = LG_SF_I64("cooldown_counter", st->cooldown_counter);
  out[k++] = LG_SF_I64("num_bad_epochs", st->num_bad_epochs);
  out[k++] = LG_SF_F64("best", st->best);
  out[k++] = LG_SF_F64("eps", st->eps);
  out[k++] = LG_SF_ARR("min_lrs", s->arrays[PLATEAU_MIN_LRS], s->ngroups);
  return k;
}

static const char *const plateau_modes[] = {"min", "max", NULL};
static const char *const plateau_tmodes[] = {"rel", "abs", NULL};

static const lg_sched_opt plateau_opts[] = {
    LG_SO_CHOICE("mode", mode_max, plateau_modes),
    LG_SO_NUM_R("factor", factor, 0.1, -INFINITY, 1, LG_SOPT_HI_OPEN, NULL),
    LG_SO_INT_R("patience", patience, 10, 0, INFINITY, 0, NULL),
    LG_SO_NUM("threshold", threshold, 1e-4),
    LG_SO_CHOICE("threshold_mode", threshold_abs, plateau_tmodes),
    LG_SO_INT_R("cooldown", cooldown, 0, 0, INFINITY, 0, NULL),
    LG_SO_PERGROUP("min_lr", min_lr, 0, 0),
    LG_SO_NUM("eps", eps, 1e-8),
    LG_SO_END};

const lg_sched_kind_def lg_schedk_plateau = {
    .name = "Plateau",
    .opts = plateau_opts,
    .state_size = sizeof(struct plateau_state),
    .narrays = PLATEAU_NARRAYS,
    .flags = LG_SCHEDF_METRIC,
    .init = plateau_init,
    .step = plateau_step,
    .step_metric = plateau_step_metric,
    .fields = plateau_fields};
