/*
 * optim.h -- optimizers of the lgrad runtime (internal to runtime/ and the
 * Lua binding; the public part is the lg_optim_* block of lgrad.h).
 *
 * Overview
 *   An optimizer (lg_optim) holds parameter groups.  Each group has a
 *   vector of hyperparameters indexed by LG_HP_* (only the slots its
 *   algorithm declares are meaningful) and any number of extra named
 *   numbers ("initial_lr", "max_lr", ... stored by schedulers, as
 *   PyTorch's param_group dict does).  Parameters are retained tensors,
 *   numbered 0..n-1 across groups in order (a group's parameters are a
 *   contiguous range).  Each parameter has its state: a step count, two
 *   scalars and up to LG_OPT_MAXBUF buffers of the parameter's dtype,
 *   allocated on first use.  A step runs one fused kernel per parameter.
 *
 *     lg_optim *o = lg_optim_new("Adam");
 *     double hp[LG_HP_COUNT];
 *     lg_optim_defaults(o, hp);
 *     hp[LG_HP_LR] = 0.01;
 *     if (lg_optim_add_group(o, 2, params, hp) < 0) ... lg_errmsg() ...
 *     for (...) { ...backward...; lg_optim_step(o, NULL, NULL, NULL); }
 *     lg_optim_free(o);
 *
 *   Options are described by lg_hp_spec tables (one per algorithm), which
 *   the binding walks to read Lua options and to build param_groups.  A
 *   tuple option ("betas") fills n consecutive slots; its C key for
 *   lg_optim_get/set is the name followed by the 1-based position
 *   ("betas1", "betas2").  Booleans are 0/1, choices are their index,
 *   and "nil" is NaN for options that allow it.
 */
#ifndef LGRAD_OPTIM_H
#define LGRAD_OPTIM_H

#include <math.h>

#include "../lgrad.h"

/* hyperparameter slots (shared by every algorithm) */
enum {
  LG_HP_LR,
  LG_HP_MOMENTUM,
  LG_HP_DAMPENING,
  LG_HP_WEIGHT_DECAY,
  LG_HP_NESTEROV,
  LG_HP_MAXIMIZE,
  LG_HP_BETA1,
  LG_HP_BETA2,
  LG_HP_EPS,
  LG_HP_AMSGRAD,
  LG_HP_ALPHA,
  LG_HP_CENTERED,
  LG_HP_LR_DECAY,
  LG_HP_INIT_ACC,
  LG_HP_RHO,
  LG_HP_MOMENTUM_DECAY,
  LG_HP_ETA_MINUS,
  LG_HP_ETA_PLUS,
  LG_HP_STEP_MIN,
  LG_HP_STEP_MAX,
  LG_HP_LAMBD,
  LG_HP_T0,
  LG_HP_BETA2_DECAY,
  LG_HP_EPS1,
  LG_HP_EPS2,
  LG_HP_D,
  LG_HP_NS_A,
  LG_HP_NS_B,
  LG_HP_NS_C,
  LG_HP_NS_STEPS,
  LG_HP_ADJUST_LR,
  LG_HP_MAX_ITER,
  LG_HP_MAX_EVAL,
  LG_HP_TOL_GRAD,
  LG_HP_TOL_CHANGE,
  LG_HP_HISTORY,
  LG_HP_LINE_SEARCH,
  LG_HP_COUNT
};

typedef enum {
  LG_HPT_NUM,  /* a real number */
  LG_HPT_INT,  /* an integer */
  LG_HPT_BOOL, /* stored as 0 or 1 */
  LG_HPT_ENUM  /* a string among choices, stored as its index */
} lg_hp_type;

#define LG_HPF_NILOK 1u    /* may be nil (stored as NaN) */
#define LG_HPF_REQUIRED 2u /* no default: the user must give it */
#define LG_HP_LO_OPEN 1u   /* per element: the lower bound is excluded */
#define LG_HP_HI_OPEN 2u   /* per element: the upper bound is excluded */

/* one option of an algorithm; a tuple of n numbers uses slots id..id+n-1 */
typedef struct lg_hp_spec {
  const char *name;
  int id;
  int n;
  lg_hp_type type;
  unsigned flags;
  double def[3];
  double lo[3], hi[3]; /* allowed range per element */
  unsigned char open[3];
  const char *const *choices; /* LG_HPT_ENUM: NULL-terminated */
  const char *alias;          /* another accepted option name, or NULL */
} lg_hp_spec;

/* where a state entry lives */
typedef enum {
  LG_ST_STEP, /* the step counter */
  LG_ST_SCAL0,
  LG_ST_SCAL1,
  LG_ST_BUF0,
  LG_ST_BUF1,
  LG_ST_BUF2,
  LG_ST_BUF3
} lg_state_slot;

/* the shape of a state buffer */
typedef enum {
  LG_SHAPE_PARAM, /* the parameter's shape */
  LG_SHAPE_ROW,   /* (..., R, 1) for a (..., R, C) parameter */
  LG_SHAPE_COL    /* (..., 1, C) */
} lg_state_shape;

typedef struct lg_state_spec {
  const char *name; /* PyTorch's name: "exp_avg" */
  lg_state_slot slot;
  lg_state_shape shape;
} lg_state_spec;

#define LG_OPT_MAXBUF 4

typedef struct lg_opt_param {
  lg_tensor *t; /* retained */
  int group;
  bool has_state; /* state was created (first step or load) */
  double step;
  double scal[2];
  void *buf[LG_OPT_MAXBUF]; /* lg_alloc'd, the parameter's dtype */
  int64_t buflen[LG_OPT_MAXBUF];
  /* sparse updates (optim/sparse.c): the rows a state buffer may hold
   * nonzero (SGD's momentum), sorted; rows_known false means unknown */
  int64_t *rows;
  int64_t nrows, rows_cap;
  bool rows_known;
} lg_opt_param;

typedef struct lg_opt_extra {
  char name[32];
  double value;
} lg_opt_extra;

typedef struct lg_opt_group {
  double hp[LG_HP_COUNT];
  int first, count; /* its parameters: params[first .. first + count) */
  int nextra, extra_cap;
  lg_opt_extra *extra;
} lg_opt_group;

typedef struct lg_optim_kind {
  const char *name;
  const lg_hp_spec *specs;    /* terminated by a NULL name */
  const lg_state_spec *state; /* terminated by a NULL name */
  /* checks a group's values beyond ranges and fills derived defaults
   * (NULL: none) */
  int (*check_group)(const lg_optim *o, double *hp);
  /* checks a parameter when added (NULL: none) */
  int (*check_param)(const lg_optim *o, int index, const lg_tensor *t);
  /* creates state at group creation (Adagrad) (NULL: on first step) */
  int (*init_param)(lg_optim *o, lg_opt_group *g, lg_opt_param *p);
  /* updates one parameter whose gradient g is checked */
  int (*update)(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                const lg_tensor *grad);
  /* updates one parameter from a row-sparse gradient (NULL: the
   * algorithm takes dense gradients only; update NULL: sparse only) */
  int (*update_sparse)(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                       const lg_tensor *grad);
  /* a whole step instead of per-parameter updates (LBFGS) */
  int (*step)(lg_optim *o, int (*closure)(void *ctx, double *loss), void *ctx,
              double *loss);
  bool needs_closure;
} lg_optim_kind;

struct lg_optim {
  const lg_optim_kind *kind;
  int ngroups, groups_cap;
  lg_opt_group *groups;
  int nparams, params_cap;
  lg_opt_param *params;
  void *work; /* scratch (Muon's Newton-Schulz matrices) */
  size_t work_bytes;
  void *lbfgs;                  /* LBFGS's global state */
  double defaults[LG_HP_COUNT]; /* the constructor's options, for groups
                                   added later */
  bool busy;                    /* inside step(): structure must not change */
};


/* ---- construction ---- */
/* a new optimizer of the named algorithm ("Adam"), with no groups */
lg_optim *lg_optim_new(const char *kind);
void lg_optim_free(lg_optim *o);
const char *lg_optim_name(const lg_optim *o);
const lg_hp_spec *lg_optim_specs(const lg_optim *o);
const lg_hp_spec *lg_optim_find_spec(const lg_optim *o, const char *name);
/* fills hp with the defaults (NaN where required or nil) */
void lg_optim_defaults(const lg_optim *o, double *hp);
/* adds a group (validated; parameters retained); -1 on error */
int lg_optim_add_group(lg_optim *o, int n, lg_tensor **params,
                       const double *hp);
int lg_optim_nparams(const lg_optim *o);
int lg_optim_group_first(const lg_optim *o, int group);
int lg_optim_group_count(const lg_optim *o, int group);
lg_tensor *lg_optim_param(const lg_optim *o, int index); /* borrowed */
/* checks v for the spec's element k; -1 with an error naming the option */
int lg_optim_check_value(const lg_optim *o, const lg_hp_spec *s, int k,
                         double v);

/* ---- stepping ---- */
/* calls closure (if any) with grad enabled, then updates every parameter
 * that has a gradient; *loss gets the closure's loss (if loss given) */
int lg_optim_step(lg_optim *o, lg_closure_fn closure, void *ctx, double *loss);
/* set_to_none: release each .grad; else zero it in place */
int lg_optim_zero_grad(lg_optim *o, bool set_to_none);

/* ---- extra group keys ---- */
int lg_optim_nextras(const lg_optim *o, int group);
const char *lg_optim_extra_name(const lg_optim *o, int group, int i);
void lg_optim_clear_extras(lg_optim *o, int group);
void lg_optim_remove_extra(lg_optim *o, int group, const char *key);

/* ---- state (for state_dict / load_state_dict) ---- */
/* names of the state entries parameter index holds now; returns count */
int lg_optim_state_keys(const lg_optim *o, int index, const char **keys,
                        int max);
/* 0: *num holds a number; 1: *t is a new tensor (a copy); -1 error */
int lg_optim_state_get(const lg_optim *o, int index, const char *key,
                       double *num, lg_tensor **t);
int lg_optim_state_set_number(lg_optim *o, int index, const char *key,
                              double v);
/* copies src (converted to the buffer's dtype) into the entry */
int lg_optim_state_set_tensor(lg_optim *o, int index, const char *key,
                              lg_tensor *src);
/* forgets every parameter's state */
void lg_optim_state_clear(lg_optim *o);

/* ---- helpers for the algorithm files ---- */
/* the buffer k of p (numel elements), allocated and filled with fill on
 * first use; *fresh (may be NULL) tells whether it was just created */
void *lg_opt_buf(lg_opt_param *p, int k, int64_t numel, double fill,
                 bool *fresh);
/* scratch of at least nbytes, kept for later steps */
void *lg_opt_work(lg_optim *o, size_t nbytes);
/* the number of elements of a LG_SHAPE_* buffer, and its shape */
int64_t lg_opt_state_numel(const lg_tensor *t, lg_state_shape shape);
int lg_opt_state_shape(const lg_tensor *t, lg_state_shape shape, int64_t *dims);
/* runs fn over [0, n) in parallel chunks when n is large */
void lg_opt_parallel(int64_t n, void (*fn)(void *, int64_t, int64_t),
                     void *ctx);
/* torch.lerp's formula: a + w (b - a), computed from b's side when w >= .5 */
static inline double lg_lerp(double a, double b, double w) {
  return w < 0.5 ? a + w * (b - a) : b - (b - a) * (1.0 - w);
}

/* the typed loop: runs the statement block with `real` as the C type of
 * dtype (float32 or float64) */
#define LG_OPT_TYPED(dtype, ...)                                               \
  do {                                                                         \
    if ((dtype) == LG_FLOAT32) {                                               \
      typedef float real;                                                      \
      __VA_ARGS__                                                              \
    } else {                                                                   \
      typedef double real;                                                     \
      __VA_ARGS__                                                              \
    }                                                                          \
  } while (0)

/* option tables: ranges and one-line entries */
#define LG_R_ANY                                                               \
  .lo = {-INFINITY, -INFINITY, -INFINITY}, .hi = {INFINITY, INFINITY, INFINITY}
#define LG_R_NONNEG .lo = {0, 0, 0}, .hi = {INFINITY, INFINITY, INFINITY}
#define LG_OPT_NUM(nm, slot, d, ...)                                           \
  {                                                                            \
    .name = (nm), .id = (slot), .n = 1, .type = LG_HPT_NUM, .def = {(d)},      \
    __VA_ARGS__                                                                \
  }
#define LG_OPT_BOOL(nm, slot, d)                                               \
  {                                                                            \
    .name = (nm), .id = (slot), .n = 1, .type = LG_HPT_BOOL, .def = {(d)},     \
    LG_R_ANY                                                                   \
  }
#define LG_OPT_LR(d) LG_OPT_NUM("lr", LG_HP_LR, d, LG_R_NONNEG)
#define LG_OPT_LR_REQUIRED                                                     \
  {                                                                            \
    .name = "lr", .id = LG_HP_LR, .n = 1, .type = LG_HPT_NUM,                  \
    .flags = LG_HPF_REQUIRED, .def = {NAN}, LG_R_NONNEG                        \
  }
#define LG_OPT_WD(d)                                                           \
  LG_OPT_NUM("weight_decay", LG_HP_WEIGHT_DECAY, d, LG_R_NONNEG)
#define LG_OPT_EPS(d) LG_OPT_NUM("eps", LG_HP_EPS, d, LG_R_NONNEG)
#define LG_OPT_MAXIMIZE LG_OPT_BOOL("maximize", LG_HP_MAXIMIZE, 0)
#define LG_OPT_BETAS(d1, d2)                                                   \
  {                                                                            \
    .name = "betas", .id = LG_HP_BETA1, .n = 2, .type = LG_HPT_NUM,            \
    .def = {(d1), (d2)}, .lo = {0, 0}, .hi = {1, 1}, .open = {                 \
      LG_HP_HI_OPEN,                                                           \
      LG_HP_HI_OPEN                                                            \
    }                                                                          \
  }
#define LG_OPT_END                                                             \
  { .name = NULL }

/* the algorithms */
extern const lg_optim_kind lg_optim_gd, lg_optim_sgd, lg_optim_lion;
extern const lg_optim_kind lg_optim_adam, lg_optim_adamw, lg_optim_adamax,
    lg_optim_nadam, lg_optim_radam;
extern const lg_optim_kind lg_optim_rmsprop, lg_optim_adagrad,
    lg_optim_adadelta, lg_optim_rprop, lg_optim_asgd;
extern const lg_optim_kind lg_optim_adafactor, lg_optim_muon;
extern const lg_optim_kind lg_optim_lbfgs;
extern const lg_optim_kind lg_optim_sparse_adam;

/* the row-sparse rules of SGD and Adagrad (optim/sparse.c) */
int lg_sgd_update_sparse(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                         const lg_tensor *grad);
int lg_adagrad_update_sparse(lg_optim *o, lg_opt_group *grp, lg_opt_param *p,
                             const lg_tensor *grad);
/* frees p's row list (with its state) */
void lg_opt_rows_free(lg_opt_param *p);

/* LBFGS's state entries (optim/lbfgs.c) */
int lg_lbfgs_state_keys(const lg_optim *o, const char **keys, int max);
int lg_lbfgs_state_get(const lg_optim *o, const char *key, double *num,
                       lg_tensor **t);
int lg_lbfgs_state_set(lg_optim *o, const char *key, double num, lg_tensor *t);
void lg_lbfgs_free(lg_optim *o);

/* true for the algorithm's hyperparameter names ("lr", "betas1" ...) */
bool lg_optim_is_option(const lg_optim *o, const char *key);

#endif
