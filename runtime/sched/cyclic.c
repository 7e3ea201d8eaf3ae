/*
 * sched/cyclic.c -- the schedulers that go up and down: CosineWarmRestarts,
 * OneCycle and Cyclic (PyTorch's CosineAnnealingWarmRestarts, OneCycleLR,
 * CyclicLR).  OneCycle and Cyclic also move the groups' momentum (beta1 for
 * OneCycle over Adam and kin) unless cycle_momentum is false.
 */
#include "kind.h"

/* the key OneCycle cycles for optimizers with betas (Adam and kin) */
#define BETA1_KEY "beta1"

/* OneCycle and Cyclic: the optimizer must have what they cycle */
static int check_momentum(const char *name, bool cycle, bool beta_ok,
                          lg_optim *opt) {
  if (!cycle)
    return 0;
  bool beta = beta_ok && lg_sched_group_has(opt, 0, BETA1_KEY);
  LG_SCHED_CHECK(beta || lg_sched_group_has(opt, 0, "momentum"),
                 "sched.%s: the optimizer has no momentum to cycle (pass "
                 "cycle_momentum = false)",
                 name);
  return 0;
}

/* ---- CosineWarmRestarts ---- */

struct restarts_state {
  int64_t T_0, T_mult;
  double eta_min;
  double T_i, T_cur; /* fractional after a fractional step_epoch */
};

static int restarts_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  *LG_SCHED_STATE(s, struct restarts_state) = (struct restarts_state){
      o->T_0, o->T_mult, o->eta_min, (double)o->T_0, -1};
  return lg_sched_lr_init(s, cc);
}

/* CosineAnnealingWarmRestarts.step(epoch) */
static int restarts_step(lg_sched *s, const double *epoch, void *cc) {
  struct restarts_state *st = s->state;
  double T_i = st->T_i, T_cur = st->T_cur, e;
  (void)cc;
  if (!epoch && s->last_epoch < 0) {
    e = 0;
    epoch = &e;
  }
  if (!epoch) {
    e = (double)(s->last_epoch + 1);
    T_cur = T_cur + 1;
    if (T_cur >= T_i) {
      T_cur = T_cur - T_i;
      T_i = T_i * st->T_mult;
    }
  } else {
    e = *epoch;
    LG_SCHED_CHECK(e >= 0,
                   "sched.CosineWarmRestarts: expected a non-negative epoch, "
                   "got %g",
                   e);
    if (e >= st->T_0) {
      if (st->T_mult == 1) {
        T_cur = fmod(e, (double)st->T_0);
      } else {
        double m = (double)st->T_mult;
        int n = (int)(log(e / st->T_0 * (m - 1) + 1) / log(m));
        T_cur = e - st->T_0 * (pow(m, n) - 1) / (m - 1);
        T_i = st->T_0 * pow(m, n);
      }
    } else {
      T_i = (double)st->T_0;
      T_cur = e;
    }
  }
  for (int g = 0; g < s->ngroups; g++)
    s->scratch[g] = st->eta_min + (s->base_lrs[g] - st->eta_min) *
                                      (1 + cos(M_PI * T_cur / T_i)) / 2;
  if (lg_sched_commit(s, s->scratch, NULL, NULL) < 0)
    return -1;
  st->T_i = T_i;
  st->T_cur = T_cur;
  s->last_epoch = (int64_t)floor(e);
  return 0;
}

static int restarts_fields(lg_sched *s, lg_sched_field *out) {
  struct restarts_state *st = s->state;
  out[0] = LG_SF_I64("T_0", st->T_0);
  out[1] = LG_SF_I64("T_mult", st->T_mult);
  out[2] = LG_SF_F64("eta_min", st->eta_min);
  out[3] = LG_SF_F64("T_i", st->T_i);
  out[4] = LG_SF_F64("T_cur", st->T_cur);
  return 5;
}

static const lg_sched_opt restarts_opts[] = {
    LG_SO_INT_R("T_0", T_0, 0, 0, INFINITY, LG_SOPT_REQUIRED | LG_SOPT_LO_OPEN,
                "a positive integer"),
    LG_SO_INT_R("T_mult", T_mult, 1, 1, INFINITY, 0, "an integer >= 1"),
    LG_SO_NUM("eta_min", eta_min, 0), LG_SO_END};

const lg_sched_kind_def lg_schedk_restarts = {
    .name = "CosineWarmRestarts",
    .opts = restarts_opts,
    .state_size = sizeof(struct restarts_state),
    .init = restarts_init,
    .step = restarts_step,
    .fields = restarts_fields};

/* ---- OneCycle ---- */

struct onecycle_state {
  int64_t total_steps, nphases, anneal_linear, three_phase;
  int64_t cycle_momentum, use_beta1;
  double phase_end[3];
};

static int onecycle_check(const lg_sched_opts *o, lg_optim *opt) {
  if (o->total_steps == 0) {
    LG_SCHED_CHECK(o->epochs != 0 || o->steps_per_epoch != 0,
                   "sched.OneCycle: give total_steps, or epochs and "
                   "steps_per_epoch");
    LG_SCHED_CHECK(o->epochs > 0,
                   "sched.OneCycle: epochs must be a positive integer, got "
                   "%lld",
                   (long long)o->epochs);
    LG_SCHED_CHECK(o->steps_per_epoch > 0,
                   "sched.OneCycle: steps_per_epoch must be a positive "
                   "integer, got %lld",
                   (long long)o->steps_per_epoch);
  } else {
    LG_SCHED_CHECK(o->total_steps > 0,
                   "sched.OneCycle: total_steps must be a positive integer, "
                   "got %lld",
                   (long long)o->total_steps);
  }
  LG_SCHED_CHECK(
      o->div_factor != 0 && o->final_div_factor != 0,
      "sched.OneCycle: div_factor and final_div_factor must not be 0");
  return check_momentum("OneCycle", o->cycle_momentum, true, opt);
}

static const char *onecycle_mom_key(const struct onecycle_state *st) {
  return st->use_beta1 ? BETA1_KEY : "momentum";
}

static int onecycle_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  struct onecycle_state *st = s->state;
  st->total_steps =
      o->total_steps ? o->total_steps : o->epochs * o->steps_per_epoch;
  st->anneal_linear = o->anneal_linear;
  st->three_phase = o->three_phase;
  st->cycle_momentum = o->cycle_momentum;
  double T = (double)st->total_steps;
  st->nphases = o->three_phase ? 3 : 2;
  st->phase_end[0] = o->pct_start * T - 1;
  if (o->three_phase)
    st->phase_end[1] = 2 * o->pct_start * T - 2;
  st->phase_end[st->nphases - 1] = T - 1;
  for (int g = 0; g < s->ngroups; g++) {
    double max_lr = lg_sched_pergroup_at(&o->max_lr, g);
    double initial = max_lr / o->div_factor;
    if (lg_sched_group_set(s, g, "initial_lr", initial) < 0 ||
        lg_sched_group_set(s, g, "max_lr", max_lr) < 0 ||
        lg_sched_group_set(s, g, "min_lr", initial / o->final_div_factor) < 0)
      return -1;
  }
  if (st->cycle_momentum) {
    st->use_beta1 = lg_sched_group_has(s->opt, 0, BETA1_KEY);
    for (int g = 0; g < s->ngroups; g++) {
      double mx = lg_sched_pergroup_at(&o->max_momentum, g);
      double base = lg_sched_pergroup_at(&o->base_momentum, g);
      if (lg_sched_group_set(s, g, onecycle_mom_key(st), mx) < 0 ||
          lg_sched_group_set(s, g, "max_momentum", mx) < 0 ||
          lg_sched_group_set(s, g, "base_momentum", base) < 0)
        return -1;
    }
  }
  return lg_sched_lr_init(s, cc);
}

/* from a (pct 0) to b (pct 1), linearly or along a half cosine */
static double anneal(bool linear, double a, double b, double pct) {
  return linear ? (b - a) * pct + a : b + (a - b) / 2.0 * (cos(M_PI * pct) + 1);
}

static int onecycle_get_lr(lg_sched *s, void *cc, double *out, double *moms,
                           const char **mom_key) {
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
  struct onecycle_state *st = s->state;
  int64_t step = s->last_epoch;
  (void)cc;
  LG_SCHED_CHECK(step <= st->total_steps,
                 "sched.OneCycle: tried to step %I times; total_steps is "
                 "%lld",
                 (long long)step, (long long)st->total_steps);
  *mom_key = st->cycle_momentum ? onecycle_mom_key(st) : NULL;
  for (int g = 0; g < s->ngroups; g++) {
    double start_step = 0;
    for (int i = 0; i < st->nphases; i++) {
      double end_step = st->phase_end[i];
      if (step <= end_step || i == st->nphases - 1) {
        const char *const *lk = st->three_phase ? lr3[i] : lr2[i];
        const char *const *mk = st->three_phase ? mom3[i] : mom2[i];
        LG_SCHED_CHECK(end_step - start_step != 0,
                       "sched.OneCycle: phase %d has no steps (total_steps "
                       "%lld is too small for pct_start)",
                       i + 1, (long long)st->total_steps);
        double pct = (step - start_step) / (end_step - start_step);
        double a, b;
        if (lg_sched_group_get(s, g, lk[0], &a) < 0 ||
            lg_sched_group_get(s, g, lk[1], &b) < 0)
          return -1;
        out[g] = anneal(st->anneal_linear, a, b, pct);
        if (st->cycle_momentum) {
          if (lg_sched_group_get(s, g, mk[0], &a) < 0 ||
              lg_sched_group_get(s, g, mk[1], &b) < 0)
            return -1;
          moms[g] = anneal(st->anneal_linear, a, b, pct);
        }
        break;
      }
      start_step = end_step;
    }
  }
  return 0;
}

static int onecycle_fields(lg_sched *s, lg_sched_field *out) {
  struct onecycle_state *st = s->state;
  out[0] = LG_SF_I64("total_steps", st->total_steps);
  out[1] = LG_SF_I64("anneal_linear", st->anneal_linear);
  out[2] = LG_SF_I64("three_phase", st->three_phase);
  out[3] = LG_SF_I64("cycle_momentum", st->cycle_momentum);
  out[4] = LG_SF_I64("use_beta1", st->use_beta1);
  out[5] = LG_SF_ARR("phase_end", st->phase_end, (int)st->nphases);
  return 6;
}

static const char *const anneal_choices[] = {"cos", "linear", NULL};

static const lg_sched_opt onecycle_opts[] = {
    LG_SO_PERGROUP("max_lr", max_lr, NAN, LG_SOPT_REQUIRED),
    {.name = "total_steps",
     .type = LG_SOPT_INT,
     .at = LG_SO_AT(total_steps),
     .flags = LG_SOPT_ZERO_SET},
    LG_SO_INT("epochs", epochs, 0),
    LG_SO_INT("steps_per_epoch", steps_per_epoch, 0),
    LG_SO_NUM_R("pct_start", pct_start, 0.3, 0, 1, 0, NULL),
    LG_SO_CHOICE("anneal_strategy", anneal_linear, anneal_choices),
    LG_SO_BOOL("cycle_momentum", cycle_momentum, 1),
    LG_SO_PERGROUP("base_momentum", base_momentum, 0.85, 0),
    LG_SO_PERGROUP("max_momentum", max_momentum, 0.95, 0),
    LG_SO_NUM("div_factor", div_factor, 25),
    LG_SO_NUM("final_div_factor", final_div_factor, 1e4),
    LG_SO_BOOL("three_phase", three_phase, 0),
    LG_SO_END};

const lg_sched_kind_def lg_schedk_onecycle = {
    .name = "OneCycle",
    .opts = onecycle_opts,
    .state_size = sizeof(struct onecycle_state),
    .check = onecycle_check,
    .init = onecycle_init,
    .get_lr = onecycle_get_lr,
    .fields = onecycle_fields};

/* ---- Cyclic ---- */

struct cyclic_state {
  double total_size, step_ratio, gamma;
  int64_t mode, cycle_momentum;
};

/* the per-group arrays */
enum { CYC_MAX_LRS, CYC_BASE_MOMS, CYC_MAX_MOMS, CYC_NARRAYS };

static int cyclic_check(const lg_sched_opts *o, lg_optim *opt) {
  LG_SCHED_CHECK(o->cyclic_mode >= LG_CYCLIC_TRIANGULAR &&
                     o->cyclic_mode <= LG_CYCLIC_EXP_RANGE,
                 "sched.Cyclic: unknown mode");
  return check_momentum("Cyclic", o->cycle_momentum, false, opt);
}

static int cyclic_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  struct cyclic_state *st = s->state;
  double up = o->step_size_up;
  double down = isnan(o->step_size_down) ? up : o->step_size_down;
  st->total_size = up + down;
  st->step_ratio = up / st->total_size;
  st->mode = o->cyclic_mode;
  st->gamma = o->gamma;
  st->cycle_momentum = o->cycle_momentum;
  for (int g = 0; g < s->ngroups; g++) {
    s->arrays[CYC_MAX_LRS][g] = lg_sched_pergroup_at(&o->max_lr, g);
    if (lg_sched_group_set(s, g, "lr", lg_sched_pergroup_at(&o->base_lr, g)) <
        0)
      return -1;
  }
  if (st->cycle_momentum) {
    for (int g = 0; g < s->ngroups; g++) {
      double base = lg_sched_pergroup_at(&o->base_momentum, g);
      if (lg_sched_group_set(s, g, "momentum", base) < 0 ||
          lg_sched_group_get(s, g, "momentum", &s->arrays[CYC_BASE_MOMS][g]) <
              0)
        return -1;
      s->arrays[CYC_MAX_MOMS][g] = lg_sched_pergroup_at(&o->max_momentum, g);
    }
  }
  if (lg_sched_lr_init(s, cc) < 0)
    return -1;
  /* from here on the cycle's floor is base_lr, not initial_lr */
  for (int g = 0; g < s->ngroups; g++)
    s->base_lrs[g] = lg_sched_pergroup_at(&o->base_lr, g);
  return 0;
}

static int cyclic_get_lr(lg_sched *s, void *cc, double *out, double *moms,
                         const char **mom_key) {
  struct cyclic_state *st = s->state;
  double e = (double)s->last_epoch;
  double cycle = floor(1 + e / st->total_size);
  double x = 1. + e / st->total_size - cycle;
  double scale_factor = x <= st->step_ratio ? x / st->step_ratio
                                            : (x - 1) / (st->step_ratio - 1);
  double scale;
  (void)cc;
  if (st->mode == LG_CYCLIC_TRIANGULAR)
    scale = 1.;
  else if (st->mode == LG_CYCLIC_TRIANGULAR2)
    scale = 1 / pow(2., cycle - 1);
  else
    scale = pow(st->gamma, e);
  *mom_key = st->cycle_momentum ? "momentum" : NULL;
  for (int g = 0; g < s->ngroups; g++) {
    double height = (s->arrays[CYC_MAX_LRS][g] - s->base_lrs[g]) * scale_factor;
    out[g] = s->base_lrs[g] + height * scale;
    if (st->cycle_momentum) {
      double base = s->arrays[CYC_BASE_MOMS][g], mx = s->arrays[CYC_MAX_MOMS][g];
      moms[g] = mx - (mx - base) * scale_factor * scale;
    }
  }
  return 0;
}

static int cyclic_fields(lg_sched *s, lg_sched_field *out) {
  struct cyclic_state *st = s->state;
  int n = s->ngroups;
  out[0] = LG_SF_ARR("max_lrs", s->arrays[CYC_MAX_LRS], n);
  out[1] = LG_SF_F64("total_size", st->total_size);
  out[2] = LG_SF_F64("step_ratio", st->step_ratio);
  out[3] = LG_SF_I64("mode", st->mode);
  out[4] = LG_SF_F64("gamma", st->gamma);
  out[5] = LG_SF_I64("cycle_momentum", st->cycle_momentum);
  out[6] = LG_SF_ARR("base_momentums", s->arrays[CYC_BASE_MOMS], n);
  out[7] = LG_SF_ARR("max_momentums", s->arrays[CYC_MAX_MOMS], n);
  return 8;
}

static const char *const cyclic_modes[] = {"triangular", "triangular2",
                                           "exp_range", NULL};

static const lg_sched_opt cyclic_opts[] = {
    LG_SO_PERGROUP("base_lr", base_lr, NAN, LG_SOPT_REQUIRED),
    LG_SO_PERGROUP("max_lr", max_lr, NAN, LG_SOPT_REQUIRED),
    LG_SO_NUM_R("step_size_up", step_size_up, 2000, 0, INFINITY,
                LG_SOPT_LO_OPEN, "positive"),
    LG_SO_NUM_R("step_size_down", step_size_down, NAN, 0, INFINITY,
                LG_SOPT_LO_OPEN | LG_SOPT_NIL_OK, "positive"),
    LG_SO_CHOICE("mode", cyclic_mode, cyclic_modes),
    LG_SO_NUM("gamma", gamma, 1.0),
    LG_SO_BOOL("cycle_momentum", cycle_momentum, 1),
    LG_SO_PERGROUP("base_momentum", base_momentum, 0.8, 0),
    LG_SO_PERGROUP("max_momentum", max_momentum, 0.9, 0),
    LG_SO_END};

const lg_sched_kind_def lg_schedk_cyclic = {
    .name = "Cyclic",
    .opts = cyclic_opts,
    .state_size = sizeof(struct cyclic_state),
    .narrays = CYC_NARRAYS,
    .check = cyclic_check,
    .init = cyclic_init,
    .get_lr = cyclic_get_lr,
    .fields = cyclic_fields};
