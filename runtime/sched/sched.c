/*
 * sched.c -- learning-rate schedulers (see sched.h).
 *
 * The arithmetic follows PyTorch 1.13's lr_scheduler.py operation for
 * operation, so a schedule that is defined recursively there (each lr
 * computed from the group's current lr) is recursive here too and rounds
 * the same way.  A step computes every new value into scratch space first
 * and commits only when nothing failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../optim/optim.h"
#include "sched.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

struct lg_sched {
  int64_t refcount;
  lg_sched_kind kind;
  lg_optim *opt;
  int ngroups;
  int64_t last_epoch;
  int64_t step_count;
  double *base_lrs, *last_lrs, *scratch, *scratch2; /* ngroups each */
  /* hyperparameters */
  double factor, gamma, start_factor, end_factor, power, eta_min, T_max;
  int64_t total_iters, step_size, T_0, T_mult;
  int nmilestones;
  int64_t *milestones;
  /* CosineWarmRestarts state (fractional after a fractional step_epoch) */
  double T_i, T_cur;
  /* OneCycle */
  int64_t total_steps, nphases, anneal_linear, three_phase;
  double phase_end[3];
  int64_t cycle_momentum, use_beta1; /* also Cyclic */
  /* Cyclic */
  double *max_lrs, *base_moms, *max_moms; /* ngroups each */
  double total_size, step_ratio;
  int64_t cyclic_mode;
  /* Plateau */
  int64_t mode_max, threshold_abs, patience, cooldown;
  int64_t cooldown_counter, num_bad_epochs;
  double threshold, eps, best;
  double *min_lrs; /* ngroups */
  /* Lambda, Multiplicative */
  lg_sched_fn fn;
  void *fn_ctx;
  /* Sequential, Chained */
  int nchildren;
  lg_sched **children;
};

static const char *const kind_names[LG_SCHED_NKINDS] = {
    "Constant",       "Step",       "MultiStep",
    "Exponential",    "Cosine",     "CosineWarmRestarts",
    "Linear",         "Polynomial", "OneCycle",
    "Cyclic",         "Plateau",    "Lambda",
    "Multiplicative", "Sequential", "Chained"};

/* the key OneCycle cycles for optimizers with betas (Adam and kin) */
#define BETA1_KEY "beta1"

const char *lg_sched_kind_name(lg_sched_kind kind) {
  return (unsigned)kind < LG_SCHED_NKINDS ? kind_names[kind] : "?";
}

int lg_sched_kind_from_name(const char *name, lg_sched_kind *kind) {
  for (int k = 0; k < LG_SCHED_NKINDS; k++)
    if (strcmp(name, kind_names[k]) == 0) {
      *kind = (lg_sched_kind)k;
      return 0;
    }
  lg_seterr("sched: unknown scheduler '%s'", name);
  return -1;
}

void lg_sched_defaults(lg_sched_kind kind, lg_sched_opts *o) {
  memset(o, 0, sizeof *o);
  o->factor = kind == LG_SCHED_PLATEAU ? 0.1 : 1.0 / 3;
  o->total_iters = 5;
  o->start_factor = 1.0 / 3;
  o->end_factor = 1.0;
  o->power = 1.0;
  o->step_size = 0;
  o->gamma = kind == LG_SCHED_CYCLIC        ? 1.0
             : kind == LG_SCHED_EXPONENTIAL ? NAN
                                            : 0.1;
  o->T_max = NAN;
  o->eta_min = 0;
  o->T_0 = 0;
  o->T_mult = 1;
  o->max_lr.all = NAN;
  o->pct_start = 0.3;
  o->div_factor = 25;
  o->final_div_factor = 1e4;
  o->cycle_momentum = true;
  o->base_momentum.all = kind == LG_SCHED_CYCLIC ? 0.8 : 0.85;
  o->max_momentum.all = kind == LG_SCHED_CYCLIC ? 0.9 : 0.95;
  o->base_lr.all = NAN;
  o->step_size_up = 2000;
  o->step_size_down = NAN;
  o->cyclic_mode = LG_CYCLIC_TRIANGULAR;
  o->patience = 10;
  o->threshold = 1e-4;
  o->eps = 1e-8;
  o->min_lr.all = 0;
}

/* ---- group access ---- */

static int group_get(lg_sched *s, int g, const char *key, double *v) {
  if (lg_optim_get(s->opt, g, key, v) < 0) {
    lg_seterr("sched.%s: parameter group %I has no '%s'", kind_names[s->kind],
              (long long)g, key);
    return -1;
  }
  return 0;
}

static bool group_has(lg_optim *o, int g, const char *key) {
  double v;
  return lg_optim_get(o, g, key, &v) == 0;
}

static int group_set(lg_sched *s, int g, const char *key, double v) {
  int rc = lg_optim_is_option(s->opt, key)
               ? lg_optim_set(s->opt, g, key, v)
               : lg_optim_set_extra(s->opt, g, key, v);
  if (rc < 0) {
    lg_seterr("sched.%s: cannot set '%s' of parameter group %I: %s",
              kind_names[s->kind], key, (long long)g, lg_errmsg());
    return -1;
  }
  return 0;
}

static int read_lrs(lg_sched *s, double *lrs) {
  for (int g = 0; g < s->ngroups; g++)
    if (group_get(s, g, "lr", &lrs[g]) < 0)
      return -1;
  return 0;
}

static int write_lrs(lg_sched *s, const double *lrs) {
  for (int g = 0; g < s->ngroups; g++)
    if (group_set(s, g, "lr", lrs[g]) < 0)
      return -1;
  return 0;
}

static double pergroup(const lg_sched_pergroup *p, int g) {
  return p->v ? p->v[g] : p->all;
}

static bool pergroup_given(const lg_sched_pergroup *p) {
  return p->v || !isnan(p->all);
}

/* the momentum key OneCycle and Cyclic write */
static const char *momentum_key(const lg_sched *s) {
  return s->use_beta1 ? BETA1_KEY : "momentum";
}

/* ---- the chainable forms (PyTorch's get_lr) at s->last_epoch ---- */

/* the callback's factor; its error message gets the scheduler's name */
static int lambda_factor(lg_sched *s, void *cc, int g, int64_t e, double *f) {
  if (s->fn(cc, s->fn_ctx, g, e, f) < 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", lg_errmsg());
    lg_seterr("sched.%s: %s", kind_names[s->kind], msg);
    return -1;
  }
  return 0;
}

static int onecycle_lrs(lg_sched *s, double *out, double *moms) {
  static const char *const lr2[2][2] = {{"initial_lr", "max_lr"},
                                        {"max_lr", "min_lr"}};
  static const char *const mom2[2][2] = {{"max_momentum", "base_momentum"},
                                         {"base_momentum", "max_momentum"}};
  static const char *const lr3[3][2] = {{"initial_lr", "max_lr"},
                                        {"max_lr", "initial_lr"},
                                        {"initial_lr", "min_lr"}};
  static const char *const mom3[3][2] = {{"max_momentum", "base_momentum"},
                                         {"base_momentum", "max_momentum"},
                                         {"max_momentum", "max_momentum"}};
  int64_t step = s->last_epoch;
  if (step > s->total_steps) {
    lg_seterr("sched.OneCycle: tried to step %I times; total_steps is %lld",
              (long long)step, (long long)s->total_steps);
    return -1;
  }
  for (int g = 0; g < s->ngroups; g++) {
    double start_step = 0;
    for (int i = 0; i < s->nphases; i++) {
      double end_step = s->phase_end[i];
      if (step <= end_step || i == s->nphases - 1) {
        const char *const *lk = s->three_phase ? lr3[i] : lr2[i];
        const char *const *mk = s->three_phase ? mom3[i] : mom2[i];
        if (end_step - start_step == 0) {
          lg_seterr("sched.OneCycle: phase %I has no steps (total_steps %lld "
                    "is too small for pct_start)",
                    (long long)i, (long long)s->total_steps);
          return -1;
        }
        double pct = (step - start_step) / (end_step - start_step);
        double a, b;
        if (group_get(s, g, lk[0], &a) < 0 || group_get(s, g, lk[1], &b) < 0)
          return -1;
        out[g] = s->anneal_linear ? (b - a) * pct + a
                                  : b + (a - b) / 2.0 * (cos(M_PI * pct) + 1);
        if (s->cycle_momentum) {
          if (group_get(s, g, mk[0], &a) < 0 || group_get(s, g, mk[1], &b) < 0)
            return -1;
          moms[g] = s->anneal_linear
                        ? (b - a) * pct + a
                        : b + (a - b) / 2.0 * (cos(M_PI * pct) + 1);
        }
        break;
      }
      start_step = end_step;
    }
  }
  return 0;
}

static void cyclic_lrs(lg_sched *s, double *out, double *moms) {
  double e = (double)s->last_epoch;
  double cycle = floor(1 + e / s->total_size);
  double x = 1. + e / s->total_size - cycle;
  double scale_factor =
      x <= s->step_ratio ? x / s->step_ratio : (x - 1) / (s->step_ratio - 1);
  double scale;
  if (s->cyclic_mode == LG_CYCLIC_TRIANGULAR)
    scale = 1.;
  else if (s->cyclic_mode == LG_CYCLIC_TRIANGULAR2)
    scale = 1 / pow(2., cycle - 1);
  else
    scale = pow(s->gamma, e);
  for (int g = 0; g < s->ngroups; g++) {
    double height = (s->max_lrs[g] - s->base_lrs[g]) * scale_factor;
    out[g] = s->base_lrs[g] + height * scale;
    if (s->cycle_momentum) {
      height = (s->max_moms[g] - s->base_moms[g]) * scale_factor;
      moms[g] = s->max_moms[g] - height * scale;
    }
  }
}

/* PyTorch's get_lr for the kinds built on _LRScheduler; moms receives the
 * momentum OneCycle and Cyclic write (has_moms set) */
static int chain_lrs(lg_sched *s, void *cc, double *out, double *moms,
                     bool *has_moms) {
  int64_t e = s->last_epoch;
  int n = s->ngroups;
  *has_moms = false;
  switch (s->kind) {
  case LG_SCHED_ONECYCLE:
    *has_moms = s->cycle_momentum;
    return onecycle_lrs(s, out, moms);
  case LG_SCHED_CYCLIC:
    *has_moms = s->cycle_momentum;
    cyclic_lrs(s, out, moms);
    return 0;
  case LG_SCHED_LAMBDA:
    for (int g = 0; g < n; g++) {
      double f;
      if (lambda_factor(s, cc, g, e, &f) < 0)
        return -1;
      out[g] = s->base_lrs[g] * f;
    }
    return 0;
  default:
    break;
  }
  if (read_lrs(s, out) < 0)
    return -1;
  for (int g = 0; g < n; g++) {
    double lr = out[g];
    switch (s->kind) {
    case LG_SCHED_CONSTANT:
      if (e == 0)
        lr = lr * s->factor;
      else if (e == s->total_iters)
        lr = lr * (1.0 / s->factor);
      break;
    case LG_SCHED_STEP:
      if (e != 0 && e % s->step_size == 0)
        lr = lr * s->gamma;
      break;
    case LG_SCHED_MULTISTEP: {
      int count = 0;
      for (int i = 0; i < s->nmilestones; i++)
        count += s->milestones[i] == e;
      if (count)
        lr = lr * pow(s->gamma, count);
      break;
    }
    case LG_SCHED_EXPONENTIAL:
      if (e != 0)
        lr = lr * s->gamma;
      break;
    case LG_SCHED_COSINE: {
      double T = s->T_max, base = s->base_lrs[g];
      if (e == 0)
        break;
      if (s->step_count == 1 && e > 0)
        lr = s->eta_min + (base - s->eta_min) * (1 + cos(e * M_PI / T)) / 2;
      else if (fmod((double)(e - 1) - T, 2 * T) == 0)
        lr = lr + (base - s->eta_min) * (1 - cos(M_PI / T)) / 2;
      else
        lr = (1 + cos(M_PI * e / T)) / (1 + cos(M_PI * (e - 1) / T)) *
                 (lr - s->eta_min) +
             s->eta_min;
      break;
    }
    case LG_SCHED_LINEAR:
      if (e == 0)
        lr = lr * s->start_factor;
      else if (e <= s->total_iters)
        lr = lr * (1. + (s->end_factor - s->start_factor) /
                            (s->total_iters * s->start_factor +
                             (e - 1) * (s->end_factor - s->start_factor)));
      break;
    case LG_SCHED_POLYNOMIAL:
      if (e != 0 && e <= s->total_iters) {
        double ti = (double)s->total_iters;
        double decay = pow((1.0 - e / ti) / (1.0 - (e - 1) / ti), s->power);
        lr = lr * decay;
      }
      break;
    case LG_SCHED_MULTIPLICATIVE:
      if (e > 0) {
        double f;
        if (lambda_factor(s, cc, g, e, &f) < 0)
          return -1;
        lr = lr * f;
      }
      break;
    default:
      break;
    }
    out[g] = lr;
  }
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* PyTorch's _get_closed_form_lr at s->last_epoch; 1 when the kind has
 * one, 0 when it falls back to the chainable form */
static int closed_lrs(lg_sched *s, double *out) {
  double e = (double)s->last_epoch;
  for (int g = 0; g < s->ngroups; g++) {
    double base = s->base_lrs[g];
    switch (s->kind) {
    case LG_SCHED_CONSTANT:
      out[g] = base * (s->factor + (e >= s->total_iters) * (1 - s->factor));
      break;
    case LG_SCHED_STEP:
      out[g] =
          base * pow(s->gamma, (double)(s->last_epoch / s->step_size -
                                        (s->last_epoch % s->step_size < 0)));
      break;
    case LG_SCHED_MULTISTEP: {
      /* bisect_right over the sorted milestones */
      int64_t *sorted = s->milestones;
      int k = 0;
      while (k < s->nmilestones && sorted[k] <= s->last_epoch)
        k++;
      out[g] = base * pow(s->gamma, k);
      break;
    }
    case LG_SCHED_EXPONENTIAL:
      out[g] = base * pow(s->gamma, e);
      break;
    case LG_SCHED_COSINE:
      out[g] =
          s->eta_min + (base - s->eta_min) * (1 + cos(M_PI * e / s->T_max)) / 2;
      break;
    case LG_SCHED_LINEAR: {
      double m = e < s->total_iters ? e : (double)s->total_iters;
      out[g] = base * (s->start_factor +
                       (s->end_factor - s->start_factor) * m / s->total_iters);
      break;
    }
    case LG_SCHED_POLYNOMIAL: {
      double m = e < s->total_iters ? e : (double)s->total_iters;
      out[g] = base * pow(1.0 - m / s->total_iters, s->power);
      break;
    }
    default:
      return 0;
    }
  }
  return 1;
}

/* commits new lrs (and momentum) and records them as the last lrs */
static int commit(lg_sched *s, const double *lrs, const double *moms,
                  bool has_moms) {
  if (has_moms)
    for (int g = 0; g < s->ngroups; g++)
      if (group_set(s, g, momentum_key(s), moms[g]) < 0)
        return -1;
  if (write_lrs(s, lrs) < 0)
    return -1;
  memcpy(s->last_lrs, lrs, sizeof(double) * s->ngroups);
  return 0;
}

/* PyTorch's _LRScheduler.step(epoch): epoch NULL for the usual step */
static int lr_step(lg_sched *s, const double *epoch, void *cc) {
  int64_t saved_epoch = s->last_epoch, saved_count = s->step_count;
  bool has_moms = false;
  int closed = 0;
  s->step_count++;
  if (!epoch) {
    s->last_epoch++;
  } else {
    s->last_epoch = (int64_t)floor(*epoch);
    closed = closed_lrs(s, s->scratch);
  }
  if (!closed && chain_lrs(s, cc, s->scratch, s->scratch2, &has_moms) < 0)
    goto fail;
  if (commit(s, s->scratch, s->scratch2, has_moms) < 0)
    goto fail;
  return 0;
fail:
  s->last_epoch = saved_epoch;
  s->step_count = saved_count;
  return -1;
}

/* CosineAnnealingWarmRestarts.step(epoch) */
static int restarts_step(lg_sched *s, const double *epoch) {
  double T_i = s->T_i, T_cur = s->T_cur, e;
  if (!epoch && s->last_epoch < 0) {
    e = 0;
    epoch = &e;
  }
  if (!epoch) {
    e = (double)(s->last_epoch + 1);
    T_cur = T_cur + 1;
    if (T_cur >= T_i) {
      T_cur = T_cur - T_i;
      T_i = T_i * s->T_mult;
    }
  } else {
    e = *epoch;
    if (e < 0) {
      lg_seterr("sched.CosineWarmRestarts: expected a non-negative epoch, "
                "got %g",
                e);
      return -1;
    }
    if (e >= s->T_0) {
      if (s->T_mult == 1) {
        T_cur = fmod(e, (double)s->T_0);
      } else {
        double m = (double)s->T_mult;
        int n = (int)(log(e / s->T_0 * (m - 1) + 1) / log(m));
        T_cur = e - s->T_0 * (pow(m, n) - 1) / (m - 1);
        T_i = s->T_0 * pow(m, n);
      }
    } else {
      T_i = (double)s->T_0;
      T_cur = e;
    }
  }
  for (int g = 0; g < s->ngroups; g++)
    s->scratch[g] = s->eta_min + (s->base_lrs[g] - s->eta_min) *
                                     (1 + cos(M_PI * T_cur / T_i)) / 2;
  if (commit(s, s->scratch, NULL, false) < 0)
    return -1;
  s->T_i = T_i;
  s->T_cur = T_cur;
  s->last_epoch = (int64_t)floor(e);
  return 0;
}

static bool plateau_better(const lg_sched *s, double a, double best) {
  if (!s->mode_max)
    return s->threshold_abs ? a < best - s->threshold
                            : a < best * (1. - s->threshold);
  return s->threshold_abs ? a > best + s->threshold
                          : a > best * (s->threshold + 1.);
}

/* ReduceLROnPlateau.step(metrics) */
static int plateau_step(lg_sched *s, double metric) {
  double best = s->best;
  int64_t bad = s->num_bad_epochs, cooldown = s->cooldown_counter;
  if (plateau_better(s, metric, best)) {
    best = metric;
    bad = 0;
  } else {
    bad++;
  }
  if (cooldown > 0) {
    cooldown--;
    bad = 0;
  }
  if (read_lrs(s, s->scratch) < 0)
    return -1;
  if (bad > s->patience) {
    for (int g = 0; g < s->ngroups; g++) {
      double old_lr = s->scratch[g], new_lr = old_lr * s->factor;
      if (s->min_lrs[g] > new_lr)
        new_lr = s->min_lrs[g];
      if (old_lr - new_lr > s->eps)
        s->scratch[g] = new_lr;
    }
    cooldown = s->cooldown;
    bad = 0;
  }
  if (commit(s, s->scratch, NULL, false) < 0)
    return -1;
  s->best = best;
  s->num_bad_epochs = bad;
  s->cooldown_counter = cooldown;
  s->last_epoch++;
  s->step_count++;
  return 0;
}

/* SequentialLR.step() */
static int sequential_step(lg_sched *s, void *cc) {
  int64_t e = s->last_epoch + 1;
  int idx = 0;
  while (idx < s->nmilestones && s->milestones[idx] <= e)
    idx++;
  lg_sched *child = s->children[idx];
  int rc;
  if (idx > 0 && s->milestones[idx - 1] == e)
    rc = lg_sched_step_epoch(child, 0, cc);
  else
    rc = lg_sched_step(child, cc);
  if (rc < 0)
    return -1;
  s->last_epoch = e;
  s->step_count++;
  memcpy(s->last_lrs, child->last_lrs, sizeof(double) * s->ngroups);
  return 0;
}

static int chained_step(lg_sched *s, void *cc) {
  for (int i = 0; i < s->nchildren; i++)
    if (lg_sched_step(s->children[i], cc) < 0)
      return -1;
  s->last_epoch++;
  s->step_count++;
  return read_lrs(s, s->last_lrs);
}

static int step_any(lg_sched *s, const double *epoch, void *cc) {
  if (lg_optim_ngroups(s->opt) != s->ngroups) {
    lg_seterr("sched.%s: the optimizer has %d parameter groups, the "
              "scheduler was made for %d",
              kind_names[s->kind], lg_optim_ngroups(s->opt), s->ngroups);
    return -1;
  }
  switch (s->kind) {
  case LG_SCHED_PLATEAU:
    lg_seterr("sched.Plateau: step needs the metric");
    return -1;
  case LG_SCHED_COSINE_RESTARTS:
    return restarts_step(s, epoch);
  case LG_SCHED_SEQUENTIAL:
  case LG_SCHED_CHAINED:
    if (epoch) {
      lg_seterr("sched.%s: cannot step to a given epoch", kind_names[s->kind]);
      return -1;
    }
    return s->kind == LG_SCHED_SEQUENTIAL ? sequential_step(s, cc)
                                          : chained_step(s, cc);
  default:
    return lr_step(s, epoch, cc);
  }
}

int lg_sched_step(lg_sched *s, void *call_ctx) {
  return step_any(s, NULL, call_ctx);
}

int lg_sched_step_epoch(lg_sched *s, double epoch, void *call_ctx) {
  if (!isfinite(epoch)) {
    lg_seterr("sched.%s: epoch must be a finite number", kind_names[s->kind]);
    return -1;
  }
  return step_any(s, &epoch, call_ctx);
}

int lg_sched_step_metric(lg_sched *s, double metric, void *call_ctx) {
  if (s->kind != LG_SCHED_PLATEAU)
    return lg_sched_step(s, call_ctx);
  if (lg_optim_ngroups(s->opt) != s->ngroups) {
    lg_seterr("sched.Plateau: the optimizer has %d parameter groups, the "
              "scheduler was made for %d",
              lg_optim_ngroups(s->opt), s->ngroups);
    return -1;
  }
  return plateau_step(s, metric);
}

/* ---- creation ---- */

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      lg_seterr(__VA_ARGS__);                                                  \
      return -1;                                                               \
    }                                                                          \
  } while (0)

/* checks the options of kind k before anything is allocated */
static int check_opts(lg_sched_kind k, lg_optim *opt, const lg_sched_opts *o) {
  const char *name = kind_names[k];
  if (k == LG_SCHED_SEQUENTIAL || k == LG_SCHED_CHAINED)
    CHECK(o->nchildren > 0 && o->children,
          "sched.%s: schedulers must be a non-empty list", name);
  CHECK(opt, "sched.%s: an optimizer is required", name);
  CHECK(lg_optim_ngroups(opt) > 0,
        "sched.%s: the optimizer has no parameter groups", name);
  switch (k) {
  case LG_SCHED_CONSTANT:
    CHECK(o->factor > 0 && o->factor <= 1,
          "sched.Constant: factor must be in (0, 1], got %g", o->factor);
    CHECK(o->total_iters >= 0,
          "sched.Constant: total_iters must be >= 0, got %lld",
          (long long)o->total_iters);
    break;
  case LG_SCHED_STEP:
    CHECK(o->step_size > 0,
          "sched.Step: step_size must be a positive integer, got %lld",
          (long long)o->step_size);
    CHECK(isfinite(o->gamma), "sched.Step: gamma must be a number");
    break;
  case LG_SCHED_MULTISTEP:
    CHECK(o->nmilestones >= 0 && (o->nmilestones == 0 || o->milestones),
          "sched.MultiStep: milestones are required");
    CHECK(isfinite(o->gamma), "sched.MultiStep: gamma must be a number");
    break;
  case LG_SCHED_EXPONENTIAL:
    CHECK(!isnan(o->gamma), "sched.Exponential: gamma is required");
    CHECK(isfinite(o->gamma), "sched.Exponential: gamma must be finite");
    break;
  case LG_SCHED_COSINE:
    CHECK(!isnan(o->T_max), "sched.Cosine: T_max is required");
    CHECK(o->T_max > 0 && isfinite(o->T_max),
          "sched.Cosine: T_max must be positive, got %g", o->T_max);
    break;
  case LG_SCHED_COSINE_RESTARTS:
    CHECK(o->T_0 > 0,
          "sched.CosineWarmRestarts: T_0 must be a positive integer, got "
          "%lld",
          (long long)o->T_0);
    CHECK(o->T_mult >= 1,
          "sched.CosineWarmRestarts: T_mult must be an integer >= 1, got "
          "%lld",
          (long long)o->T_mult);
    break;
  case LG_SCHED_LINEAR:
    CHECK(o->start_factor > 0 && o->start_factor <= 1,
          "sched.Linear: start_factor must be in (0, 1], got %g",
          o->start_factor);
    CHECK(o->end_factor >= 0 && o->end_factor <= 1,
          "sched.Linear: end_factor must be in [0, 1], got %g", o->end_factor);
    CHECK(o->total_iters > 0,
          "sched.Linear: total_iters must be a positive integer, got %lld",
          (long long)o->total_iters);
    break;
  case LG_SCHED_POLYNOMIAL:
    CHECK(o->total_iters > 0,
          "sched.Polynomial: total_iters must be a positive integer, got "
          "%lld",
          (long long)o->total_iters);
    CHECK(isfinite(o->power), "sched.Polynomial: power must be a number");
    break;
  case LG_SCHED_ONECYCLE:
    CHECK(pergroup_given(&o->max_lr), "sched.OneCycle: max_lr is required");
    if (o->total_steps == 0) {
      CHECK(o->epochs != 0 || o->steps_per_epoch != 0,
            "sched.OneCycle: give total_steps, or epochs and "
            "steps_per_epoch");
      CHECK(o->epochs > 0,
            "sched.OneCycle: epochs must be a positive integer, got %lld",
            (long long)o->epochs);
      CHECK(o->steps_per_epoch > 0,
            "sched.OneCycle: steps_per_epoch must be a positive integer, "
            "got %lld",
            (long long)o->steps_per_epoch);
    } else {
      CHECK(o->total_steps > 0,
            "sched.OneCycle: total_steps must be a positive integer, got "
            "%lld",
            (long long)o->total_steps);
    }
    CHECK(o->pct_start >= 0 && o->pct_start <= 1,
          "sched.OneCycle: pct_start must be in [0, 1], got %g", o->pct_start);
    CHECK(o->div_factor != 0 && o->final_div_factor != 0,
          "sched.OneCycle: div_factor and final_div_factor must not be 0");
    break;
  case LG_SCHED_CYCLIC:
    CHECK(pergroup_given(&o->base_lr), "sched.Cyclic: base_lr is required");
    CHECK(pergroup_given(&o->max_lr), "sched.Cyclic: max_lr is required");
    CHECK(o->step_size_up > 0,
          "sched.Cyclic: step_size_up must be positive, got %g",
          o->step_size_up);
    CHECK(isnan(o->step_size_down) || o->step_size_down > 0,
          "sched.Cyclic: step_size_down must be positive, got %g",
          o->step_size_down);
    CHECK(o->cyclic_mode >= LG_CYCLIC_TRIANGULAR &&
              o->cyclic_mode <= LG_CYCLIC_EXP_RANGE,
          "sched.Cyclic: unknown mode");
    break;
  case LG_SCHED_PLATEAU:
    CHECK(o->factor < 1.0, "sched.Plateau: factor must be < 1, got %g",
          o->factor);
    CHECK(o->patience >= 0, "sched.Plateau: patience must be >= 0");
    CHECK(o->cooldown >= 0, "sched.Plateau: cooldown must be >= 0");
    break;
  case LG_SCHED_LAMBDA:
  case LG_SCHED_MULTIPLICATIVE:
    CHECK(o->fn, "sched.%s: fn is required", name);
    break;
  case LG_SCHED_SEQUENTIAL:
  case LG_SCHED_CHAINED:
    for (int i = 0; i < o->nchildren; i++) {
      lg_sched *c = o->children[i];
      CHECK(c->opt == opt,
            "sched.%s: scheduler %d belongs to another optimizer", name, i + 1);
      CHECK(c->kind != LG_SCHED_PLATEAU,
            "sched.%s: Plateau needs a metric and cannot be a child", name);
      CHECK(k == LG_SCHED_CHAINED ||
                (c->kind != LG_SCHED_SEQUENTIAL && c->kind != LG_SCHED_CHAINED),
            "sched.Sequential: scheduler %d is a %s, which cannot be "
            "restarted",
            i + 1, kind_names[c->kind]);
    }
    if (k == LG_SCHED_SEQUENTIAL) {
      CHECK(o->nmilestones == o->nchildren - 1,
            "sched.Sequential: expected %d milestones for %d schedulers, "
            "got %d",
            o->nchildren - 1, o->nchildren, o->nmilestones);
      for (int i = 1; i < o->nmilestones; i++)
        CHECK(o->milestones[i] >= o->milestones[i - 1],
              "sched.Sequential: milestones must be increasing");
    }
    break;
  default:
    CHECK(0, "sched: unknown scheduler kind %d", (int)k);
  }
  if (k == LG_SCHED_ONECYCLE || k == LG_SCHED_CYCLIC) {
    if (o->cycle_momentum) {
      bool beta = k == LG_SCHED_ONECYCLE && group_has(opt, 0, BETA1_KEY);
      CHECK(beta || group_has(opt, 0, "momentum"),
            "sched.%s: the optimizer has no momentum to cycle (pass "
            "cycle_momentum = false)",
            name);
    }
  }
  return 0;
}

static void sched_free(lg_sched *s) {
  if (!s)
    return;
  for (int i = 0; i < s->nchildren; i++)
    lg_sched_release(s->children[i]);
  free(s->children);
  free(s->milestones);
  free(s->base_lrs); /* the block holding every per-group array */
  free(s);
}

lg_sched *lg_sched_retain(lg_sched *s) {
  if (s)
    s->refcount++;
  return s;
}

void lg_sched_release(lg_sched *s) {
  if (s && --s->refcount == 0)
    sched_free(s);
}

/* _LRScheduler.__init__: initial_lr, base_lrs and the initial step */
static int lr_init(lg_sched *s, void *cc) {
  for (int g = 0; g < s->ngroups; g++) {
    double v;
    if (lg_optim_get(s->opt, g, "initial_lr", &v) < 0) {
      if (group_get(s, g, "lr", &v) < 0 || group_set(s, g, "initial_lr", v) < 0)
        return -1;
    }
    s->base_lrs[g] = v;
  }
  s->last_epoch = -1;
  s->step_count = 0;
  return lg_sched_step(s, cc);
}

static int onecycle_init(lg_sched *s, const lg_sched_opts *o) {
  s->total_steps =
      o->total_steps ? o->total_steps : o->epochs * o->steps_per_epoch;
  s->anneal_linear = o->anneal_linear;
  s->three_phase = o->three_phase;
  s->cycle_momentum = o->cycle_momentum;
  double T = (double)s->total_steps;
  if (o->three_phase) {
    s->nphases = 3;
    s->phase_end[0] = o->pct_start * T - 1;
    s->phase_end[1] = 2 * o->pct_start * T - 2;
    s->phase_end[2] = T - 1;
  } else {
    s->nphases = 2;
    s->phase_end[0] = o->pct_start * T - 1;
    s->phase_end[1] = T - 1;
  }
  for (int g = 0; g < s->ngroups; g++) {
    double max_lr = pergroup(&o->max_lr, g);
    double initial = max_lr / o->div_factor;
    if (group_set(s, g, "initial_lr", initial) < 0 ||
        group_set(s, g, "max_lr", max_lr) < 0 ||
        group_set(s, g, "min_lr", initial / o->final_div_factor) < 0)
      return -1;
  }
  if (s->cycle_momentum) {
    s->use_beta1 = group_has(s->opt, 0, BETA1_KEY);
    for (int g = 0; g < s->ngroups; g++) {
      double mx = pergroup(&o->max_momentum, g);
      if (group_set(s, g, momentum_key(s), mx) < 0 ||
          group_set(s, g, "max_momentum", mx) < 0 ||
          group_set(s, g, "base_momentum", pergroup(&o->base_momentum, g)) < 0)
        return -1;
    }
  }
  return 0;
}

static int cyclic_init(lg_sched *s, const lg_sched_opts *o) {
  double up = o->step_size_up;
  double down = isnan(o->step_size_down) ? up : o->step_size_down;
  s->total_size = up + down;
  s->step_ratio = up / s->total_size;
  s->cyclic_mode = o->cyclic_mode;
  s->gamma = o->gamma;
  s->cycle_momentum = o->cycle_momentum;
  for (int g = 0; g < s->ngroups; g++) {
    s->min_lrs[g] = pergroup(&o->base_lr, g); /* kept until after init */
    s->max_lrs[g] = pergroup(&o->max_lr, g);
    if (group_set(s, g, "lr", s->min_lrs[g]) < 0)
      return -1;
  }
  if (s->cycle_momentum) {
    for (int g = 0; g < s->ngroups; g++) {
      if (group_set(s, g, "momentum", pergroup(&o->base_momentum, g)) < 0 ||
          group_get(s, g, "momentum", &s->base_moms[g]) < 0)
        return -1;
      s->max_moms[g] = pergroup(&o->max_momentum, g);
    }
  }
  return 0;
}

/* SequentialLR.__init__ after the children were made */
static int sequential_init(lg_sched *s, void *cc) {
  s->last_epoch = 0;
  s->step_count = 0;
  for (int g = 0; g < s->ngroups; g++) {
    double v;
    if (group_get(s, g, "initial_lr", &v) < 0 || group_set(s, g, "lr", v) < 0)
      return -1;
    s->base_lrs[g] = v;
  }
  for (int i = 0; i < s->nchildren; i++)
    s->children[i]->last_epoch -= 1;
  lg_sched *first = s->children[0];
  first->step_count = 0;
  if (lg_sched_step(first, cc) < 0)
    return -1;
  memcpy(s->last_lrs, first->last_lrs, sizeof(double) * s->ngroups);
  return 0;
}

lg_sched *lg_sched_new(lg_sched_kind kind, lg_optim *opt,
                       const lg_sched_opts *o, void *call_ctx) {
  if ((unsigned)kind >= LG_SCHED_NKINDS) {
    lg_seterr("sched: unknown scheduler kind %d", (int)kind);
    return NULL;
  }
  if (kind == LG_SCHED_CHAINED && o->nchildren > 0 && o->children && !opt)
    opt = o->children[0]->opt;
  if (check_opts(kind, opt, o) < 0)
    return NULL;
  lg_sched *s = calloc(1, sizeof *s);
  if (!s) {
    lg_seterr("sched.%s: out of memory", kind_names[kind]);
    return NULL;
  }
  s->refcount = 1;
  s->kind = kind;
  s->opt = opt;
  int n = s->ngroups = lg_optim_ngroups(opt);
  /* per-group arrays in one block: base, last, scratch x2, max_lrs,
   * base_moms, max_moms, min_lrs */
  double *block = calloc((size_t)n * 8, sizeof(double));
  int nm = kind == LG_SCHED_MULTISTEP || kind == LG_SCHED_SEQUENTIAL
               ? o->nmilestones
               : 0;
  int nc = kind == LG_SCHED_SEQUENTIAL || kind == LG_SCHED_CHAINED
               ? o->nchildren
               : 0;
  s->milestones = nm ? malloc(sizeof(int64_t) * nm) : NULL;
  s->children = nc ? calloc(nc, sizeof(lg_sched *)) : NULL;
  if (!block || (nm && !s->milestones) || (nc && !s->children)) {
    free(block);
    sched_free(s);
    lg_seterr("sched.%s: out of memory", kind_names[kind]);
    return NULL;
  }
  s->base_lrs = block;
  s->last_lrs = block + n;
  s->scratch = block + 2 * n;
  s->scratch2 = block + 3 * n;
  s->max_lrs = block + 4 * n;
  s->base_moms = block + 5 * n;
  s->max_moms = block + 6 * n;
  s->min_lrs = block + 7 * n;
  s->nmilestones = nm;
  if (nm)
    memcpy(s->milestones, o->milestones, sizeof(int64_t) * nm);
  if (kind == LG_SCHED_MULTISTEP && nm)
    qsort(s->milestones, nm, sizeof(int64_t), cmp_i64);
  for (int i = 0; i < nc; i++)
    s->children[i] = lg_sched_retain(o->children[i]);
  s->nchildren = nc;
  s->factor = o->factor;
  s->gamma = o->gamma;
  s->start_factor = o->start_factor;
  s->end_factor = o->end_factor;
  s->power = o->power;
  s->eta_min = o->eta_min;
  s->T_max = o->T_max;
  s->total_iters = o->total_iters;
  s->step_size = o->step_size;
  s->T_0 = o->T_0;
  s->T_mult = o->T_mult;
  s->fn = o->fn;
  s->fn_ctx = o->fn_ctx;
  int rc = 0;
  switch (kind) {
  case LG_SCHED_PLATEAU:
    s->mode_max = o->mode_max;
    s->threshold_abs = o->threshold_abs;
    s->threshold = o->threshold;
    s->patience = o->patience;
    s->cooldown = o->cooldown;
    s->eps = o->eps;
    s->best = o->mode_max ? -INFINITY : INFINITY;
    for (int g = 0; g < n; g++)
      s->min_lrs[g] = pergroup(&o->min_lr, g);
    s->last_epoch = 0;
    rc = read_lrs(s, s->last_lrs);
    if (rc == 0)
      memcpy(s->base_lrs, s->last_lrs, sizeof(double) * n);
    break;
  case LG_SCHED_SEQUENTIAL:
    rc = sequential_init(s, call_ctx);
    break;
  case LG_SCHED_CHAINED:
    rc = read_lrs(s, s->last_lrs);
    if (rc == 0)
      memcpy(s->base_lrs, s->last_lrs, sizeof(double) * n);
    break;
  case LG_SCHED_COSINE_RESTARTS:
    s->T_i = (double)s->T_0;
    s->T_cur = -1;
    rc = lr_init(s, call_ctx);
    break;
  case LG_SCHED_ONECYCLE:
    rc = onecycle_init(s, o);
    if (rc == 0)
      rc = lr_init(s, call_ctx);
    break;
  case LG_SCHED_CYCLIC:
    rc = cyclic_init(s, o);
    if (rc == 0)
      rc = lr_init(s, call_ctx);
    /* from here on the cycle's floor is base_lr, not initial_lr */
    if (rc == 0)
      memcpy(s->base_lrs, s->min_lrs, sizeof(double) * n);
    break;
  default:
    rc = lr_init(s, call_ctx);
    break;
  }
  if (rc < 0) {
    sched_free(s);
    return NULL;
  }
  return s;
}

/* ---- inspection ---- */

lg_sched_kind lg_sched_kind_of(const lg_sched *s) { return s->kind; }
lg_optim *lg_sched_optim(const lg_sched *s) { return s->opt; }
int lg_sched_ngroups(const lg_sched *s) { return s->ngroups; }
int64_t lg_sched_last_epoch(const lg_sched *s) { return s->last_epoch; }
const double *lg_sched_last_lrs(const lg_sched *s) { return s->last_lrs; }
const double *lg_sched_base_lrs(const lg_sched *s) { return s->base_lrs; }
int lg_sched_nchildren(const lg_sched *s) { return s->nchildren; }
lg_sched *lg_sched_child(const lg_sched *s, int i) {
  return i >= 0 && i < s->nchildren ? s->children[i] : NULL;
}

int lg_sched_fields(lg_sched *s, lg_sched_field *out) {
  int k = 0, n = s->ngroups;
#define I64(nm, p) out[k++] = (lg_sched_field){nm, 1, false, &s->p, NULL}
#define F64(nm, p)                                                             \
  out[k++] = (lg_sched_field) { nm, 1, false, NULL, &s->p }
#define ARR(nm, p, cnt)                                                        \
  out[k++] = (lg_sched_field) { nm, cnt, true, NULL, s->p }
  I64("last_epoch", last_epoch);
  I64("step_count", step_count);
  ARR("base_lrs", base_lrs, n);
  ARR("last_lr", last_lrs, n);
  switch (s->kind) {
  case LG_SCHED_CONSTANT:
    F64("factor", factor);
    I64("total_iters", total_iters);
    break;
  case LG_SCHED_STEP:
    I64("step_size", step_size);
    F64("gamma", gamma);
    break;
  case LG_SCHED_MULTISTEP:
    out[k++] = (lg_sched_field){"milestones", s->nmilestones, true,
                                s->milestones, NULL};
    F64("gamma", gamma);
    break;
  case LG_SCHED_EXPONENTIAL:
    F64("gamma", gamma);
    break;
  case LG_SCHED_COSINE:
    F64("T_max", T_max);
    F64("eta_min", eta_min);
    break;
  case LG_SCHED_COSINE_RESTARTS:
    I64("T_0", T_0);
    I64("T_mult", T_mult);
    F64("eta_min", eta_min);
    F64("T_i", T_i);
    F64("T_cur", T_cur);
    break;
  case LG_SCHED_LINEAR:
    F64("start_factor", start_factor);
    F64("end_factor", end_factor);
    I64("total_iters", total_iters);
    break;
  case LG_SCHED_POLYNOMIAL:
    I64("total_iters", total_iters);
    F64("power", power);
    break;
  case LG_SCHED_ONECYCLE:
    I64("total_steps", total_steps);
    I64("anneal_linear", anneal_linear);
    I64("three_phase", three_phase);
    I64("cycle_momentum", cycle_momentum);
    I64("use_beta1", use_beta1);
    out[k++] = (lg_sched_field){"phase_end", (int)s->nphases, true, NULL,
                                s->phase_end};
    break;
  case LG_SCHED_CYCLIC:
    ARR("max_lrs", max_lrs, n);
    F64("total_size", total_size);
    F64("step_ratio", step_ratio);
    I64("mode", cyclic_mode);
    F64("gamma", gamma);
    I64("cycle_momentum", cycle_momentum);
    ARR("base_momentums", base_moms, n);
    ARR("max_momentums", max_moms, n);
    break;
  case LG_SCHED_PLATEAU:
    F64("factor", factor);
    I64("mode_max", mode_max);
    I64("threshold_abs", threshold_abs);
    F64("threshold", threshold);
    I64("patience", patience);
    I64("cooldown", cooldown);
    I64("cooldown_counter", cooldown_counter);
    I64("num_bad_epochs", num_bad_epochs);
    F64("best", best);
    F64("eps", eps);
    ARR("min_lrs", min_lrs, n);
    break;
  case LG_SCHED_SEQUENTIAL:
    out[k++] = (lg_sched_field){"milestones", s->nmilestones, true,
                                s->milestones, NULL};
    break;
  default:
    break;
  }
#undef I64
#undef F64
#undef ARR
  return k;
}
