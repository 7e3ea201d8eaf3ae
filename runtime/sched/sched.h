/*
 * sched.h -- learning-rate schedulers over an optimizer's parameter groups.
 *
 * A scheduler is a formula over its step count (last_epoch, PyTorch's name)
 * that reads and writes each group's "lr" (and for OneCycle and Cyclic the
 * group's momentum) through lg_optim_get / lg_optim_set.  Every kind gives
 * the learning rates of the PyTorch 1.13 scheduler of the same name step
 * for step, in float64: the constructor performs the initial step, groups
 * get an "initial_lr" the first time a scheduler sees them, and the
 * chainable (recursive) forms are used where PyTorch uses them.
 *
 *   lg_sched_opts o;
 *   lg_sched_defaults(LG_SCHED_STEP, &o);
 *   o.step_size = 10; o.gamma = 0.5;
 *   lg_sched *s = lg_sched_new(LG_SCHED_STEP, opt, &o, NULL);
 *   for (epoch ...) { train(); lg_sched_step(s, NULL); }
 *   lg_sched_release(s);
 *
 * Lambda and Multiplicative call opts.fn(call_ctx, fn_ctx, group, epoch,
 * &factor); call_ctx is whatever the caller passes to lg_sched_new and
 * lg_sched_step (the Lua binding passes its lua_State), fn_ctx is fixed at
 * creation.  A callback returns 0, or -1 after lg_seterr().
 *
 * Sequential and Chained retain their children.  The optimizer is not
 * owned: it must outlive the scheduler.  Errors are a NULL or negative
 * return with lg_errmsg() set; a failed step leaves the scheduler's counters
 * as they were.
 */
#ifndef LGRAD_SCHED_H
#define LGRAD_SCHED_H

#include "../lgrad.h"

/* Every kind, named once: X(ID, var, "Name").  ID gives LG_SCHED_<ID>,
 * var the kind's table lg_schedk_<var> (a sched/<family>.c file), Name the
 * Lua constructor lg.sched.Name.  The order is the enum order. */
#define LG_SCHED_KINDS(X)                                                      \
  X(CONSTANT, constant, "Constant")                                           \
  X(STEP, step, "Step")                                                       \
  X(MULTISTEP, multistep, "MultiStep")                                        \
  X(EXPONENTIAL, exponential, "Exponential")                                  \
  X(COSINE, cosine, "Cosine")                                                 \
  X(COSINE_RESTARTS, restarts, "CosineWarmRestarts")                          \
  X(LINEAR, linear, "Linear")                                                 \
  X(POLYNOMIAL, polynomial, "Polynomial")                                     \
  X(ONECYCLE, onecycle, "OneCycle")                                           \
  X(CYCLIC, cyclic, "Cyclic")                                                 \
  X(PLATEAU, plateau, "Plateau")                                              \
  X(LAMBDA, lambda, "Lambda")                                                 \
  X(MULTIPLICATIVE, multiplicative, "Multiplicative")                         \
  X(SEQUENTIAL, sequential, "Sequential")                                     \
  X(CHAINED, chained, "Chained")

typedef enum {
#define LG_SCHED_ENUM(ID, var, name) LG_SCHED_##ID,
  LG_SCHED_KINDS(LG_SCHED_ENUM)
#undef LG_SCHED_ENUM
  LG_SCHED_NKINDS
} lg_sched_kind;

typedef struct lg_sched lg_sched;

typedef int (*lg_sched_fn)(void *call_ctx, void *fn_ctx, int group,
                           int64_t epoch, double *factor);

/* Cyclic's amplitude policies */
enum { LG_CYCLIC_TRIANGULAR, LG_CYCLIC_TRIANGULAR2, LG_CYCLIC_EXP_RANGE };

/* A per-group value: v[ngroups] when v is not NULL, else `all` for every
 * group (NaN in `all` with v NULL means "not given"). */
typedef struct {
  const double *v;
  double all;
} lg_sched_pergroup;

/* The options a caller fills; each kind declares the ones it reads (name,
 * type, place in this struct, default, range: lg_sched_kind_opts), and
 * lg_sched_defaults() fills that kind's declared defaults, marking required
 * ones as not given (NaN or 0). */
typedef struct {
  /* Constant, Linear, Polynomial, Step, MultiStep, Exponential */
  double factor;                   /* Constant, Plateau */
  int64_t total_iters;             /* Constant, Linear, Polynomial */
  double start_factor, end_factor; /* Linear */
  double power;                    /* Polynomial */
  int64_t step_size;               /* Step (required) */
  double gamma;                    /* Step, MultiStep, Exponential, Cyclic */
  int nmilestones;                 /* MultiStep, Sequential */
  const int64_t *milestones;
  /* Cosine, CosineWarmRestarts */
  double T_max; /* required */
  double eta_min;
  int64_t T_0; /* required */
  int64_t T_mult;
  /* OneCycle */
  lg_sched_pergroup max_lr; /* also Cyclic (required) */
  int64_t total_steps, epochs, steps_per_epoch;
  double pct_start;
  int anneal_linear; /* a choice: 0 cos, 1 linear */
  double div_factor, final_div_factor;
  bool three_phase;
  bool cycle_momentum; /* also Cyclic */
  lg_sched_pergroup base_momentum, max_momentum;
  /* Cyclic */
  lg_sched_pergroup base_lr;           /* required */
  double step_size_up, step_size_down; /* down NaN: equal to up */
  int cyclic_mode;
  /* Plateau */
  int mode_max, threshold_abs; /* choices: min/max, rel/abs */
  int64_t patience, cooldown;
  double threshold, eps;
  lg_sched_pergroup min_lr;
  /* Lambda, Multiplicative */
  lg_sched_fn fn;
  void *fn_ctx;
  /* Sequential, Chained */
  int nchildren;
  lg_sched *const *children;
} lg_sched_opts;

/* One declared option of a kind.  The binding reads options by walking
 * this list (unknown names are rejected); lg_sched_new checks the declared
 * ranges, then the kind's own rules across options. */
typedef enum {
  LG_SOPT_NUM,      /* double */
  LG_SOPT_INT,      /* int64_t */
  LG_SOPT_BOOL,     /* bool */
  LG_SOPT_CHOICE,   /* int: the index of a string among choices */
  LG_SOPT_PERGROUP, /* lg_sched_pergroup: a number or one per group */
  LG_SOPT_INTLIST,  /* const int64_t * with its int count at count_at */
  LG_SOPT_FN,       /* lg_sched_fn: the caller supplies it */
  LG_SOPT_CHILDREN  /* lg_sched *const * with its count at count_at */
} lg_sched_opt_type;

#define LG_SOPT_REQUIRED 1u  /* no default: must be given */
#define LG_SOPT_RANGE 2u     /* [lo, hi] is checked */
#define LG_SOPT_LO_OPEN 4u   /* lo excluded */
#define LG_SOPT_HI_OPEN 8u   /* hi excluded */
#define LG_SOPT_NIL_OK 16u   /* NaN (not given) passes the range check */
#define LG_SOPT_ZERO_SET 32u /* INT: 0 means not given, so a given 0 is
                                stored as -1 for the range check to see */

typedef struct {
  const char *name;
  lg_sched_opt_type type;
  size_t at;       /* offsetof(lg_sched_opts, field) */
  size_t count_at; /* INTLIST, CHILDREN: offsetof the int count */
  unsigned flags;
  double def; /* NUM, INT, BOOL, CHOICE, PERGROUP */
  double lo, hi;
  const char *must; /* the range in words ("a positive integer"), or NULL */
  const char *const *choices; /* CHOICE: NULL-terminated */
} lg_sched_opt;

const char *lg_sched_kind_name(lg_sched_kind kind); /* "Step", ... */
/* the kind's declared options, terminated by a NULL name */
const lg_sched_opt *lg_sched_kind_opts(lg_sched_kind kind);
int lg_sched_kind_from_name(const char *name, lg_sched_kind *kind);
void lg_sched_defaults(lg_sched_kind kind, lg_sched_opts *o);

/* creates the scheduler and performs PyTorch's initial step; the optimizer
 * may be NULL for Chained (it is the children's) */
lg_sched *lg_sched_new(lg_sched_kind kind, lg_optim *opt,
                       const lg_sched_opts *o, void *call_ctx);
lg_sched *lg_sched_retain(lg_sched *s);
void lg_sched_release(lg_sched *s);

/* one step (PyTorch's step()); Plateau needs lg_sched_step_metric */
int lg_sched_step(lg_sched *s, void *call_ctx);
int lg_sched_step_metric(lg_sched *s, double metric, void *call_ctx);
/* PyTorch's deprecated step(epoch): jumps to `epoch` using the closed form
 * where the kind has one (CosineWarmRestarts accepts fractional epochs) */
int lg_sched_step_epoch(lg_sched *s, double epoch, void *call_ctx);

lg_sched_kind lg_sched_kind_of(const lg_sched *s);
/* whether steps read a metric (lg_sched_step_metric): Plateau */
bool lg_sched_takes_metric(const lg_sched *s);
lg_optim *lg_sched_optim(const lg_sched *s);
int lg_sched_ngroups(const lg_sched *s);
int64_t lg_sched_last_epoch(const lg_sched *s);
/* the lrs written by the last step (PyTorch's get_last_lr) */
const double *lg_sched_last_lrs(const lg_sched *s);
const double *lg_sched_base_lrs(const lg_sched *s);
int lg_sched_nchildren(const lg_sched *s);
lg_sched *lg_sched_child(const lg_sched *s, int i);

/* The state, hyperparameters included, as named fields that point into
 * the scheduler, for state_dict / load_state_dict: n values of i64 or f64
 * (array true: a list even when n is 1).  Returns the field count. */
typedef struct {
  const char *name;
  int n;
  bool array;
  int64_t *i64; /* one of these two is set */
  double *f64;
} lg_sched_field;
#define LG_SCHED_MAXFIELDS 40
int lg_sched_fields(lg_sched *s, lg_sched_field *out);

#endif
