/*
 * sched/kind.h -- what a scheduler kind provides (internal to runtime/sched).
 *
 * The engine (sched.c) owns what every scheduler has: the optimizer, the
 * step counters, base and last lrs, scratch space, children.  A kind is an
 * lg_sched_kind_def: its declared options, the size of its own state
 * struct (s->state, zeroed), and hooks.  A kind built on PyTorch's
 * _LRScheduler gives get_lr (the chainable form) and, if it has one,
 * closed (the closed form used by step(epoch)); the engine's lr_step does
 * the rest.  A kind that steps differently (Plateau, Sequential...) gives
 * step and step_metric.  Adding a kind: a line in LG_SCHED_KINDS
 * (sched.h), its table in a sched/<family>.c file, a spec.
 */
#ifndef LGRAD_SCHED_KIND_H
#define LGRAD_SCHED_KIND_H

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define LG_SCHEDF_METRIC 1u    /* steps on a metric: cannot be a child */
#define LG_SCHEDF_COMPOSITE 2u /* steps children: cannot be restarted */

#define LG_SCHED_MAXARRAYS 4 /* per-group arrays a kind may keep */

typedef struct lg_sched_kind_def lg_sched_kind_def;

struct lg_sched {
  int64_t refcount;
  lg_sched_kind kind;
  const lg_sched_kind_def *def;
  lg_optim *opt;
  int ngroups;
  int64_t last_epoch;
  int64_t step_count;
  double *base_lrs, *last_lrs, *scratch, *scratch2; /* ngroups each */
  double *arrays[LG_SCHED_MAXARRAYS]; /* def->narrays, ngroups each */
  int nchildren;                      /* Sequential, Chained */
  lg_sched **children;
  void *state; /* the kind's struct, def->state_size bytes */
};

struct lg_sched_kind_def {
  const char *name;
  const lg_sched_opt *opts; /* terminated by a NULL name */
  size_t state_size;
  int narrays;
  unsigned flags;
  /* rules across options, after the declared ranges (NULL: none) */
  int (*check)(const lg_sched_opts *o, lg_optim *opt);
  /* fills the state and performs the initial step (NULL: lr_init) */
  int (*init)(lg_sched *s, const lg_sched_opts *o, void *cc);
  /* the chainable lrs at s->last_epoch into out; a kind that also moves
   * momentum fills moms and sets *mom_key to the group key it writes */
  int (*get_lr)(lg_sched *s, void *cc, double *out, double *moms,
                const char **mom_key);
  /* the closed form at s->last_epoch (NULL: step(epoch) chains) */
  void (*closed)(lg_sched *s, double *out);
  /* a step of its own (NULL: lr_step); epoch NULL for the usual step */
  int (*step)(lg_sched *s, const double *epoch, void *cc);
  /* a step on a metric (NULL: the metric is ignored) */
  int (*step_metric)(lg_sched *s, double metric);
  /* the kind's named state after the common fields; returns the count */
  int (*fields)(lg_sched *s, lg_sched_field *out);
  /* frees what init allocated in the state (NULL: nothing) */
  void (*release)(lg_sched *s);
};

#define LG_SCHED_KIND_DECL(ID, var, name)                                      \
  extern const lg_sched_kind_def lg_schedk_##var;
LG_SCHED_KINDS(LG_SCHED_KIND_DECL)
#undef LG_SCHED_KIND_DECL

/* ---- the engine's helpers for kinds ---- */
int lg_sched_group_get(lg_sched *s, int g, const char *key, double *v);
int lg_sched_group_set(lg_sched *s, int g, const char *key, double v);
bool lg_sched_group_has(lg_optim *o, int g, const char *key);
int lg_sched_read_lrs(lg_sched *s, double *lrs);
/* writes lrs (and momentum under key when moms is not NULL), records them
 * as the last lrs */
int lg_sched_commit(lg_sched *s, const double *lrs, const double *moms,
                    const char *mom_key);
/* _LRScheduler.__init__: initial_lr, base_lrs and the initial step */
int lg_sched_lr_init(lg_sched *s, void *cc);
/* the option callback's factor; its error names the scheduler */
int lg_sched_call_fn(lg_sched *s, lg_sched_fn fn, void *fn_ctx, void *cc,
                     int g, int64_t e, double *f);
/* a copy of n milestones, sorted when sort is set (NULL after an error) */
int64_t *lg_sched_copy_list(lg_sched *s, const int64_t *v, int n, bool sort);

static inline double lg_sched_pergroup_at(const lg_sched_pergroup *p, int g) {
  return p->v ? p->v[g] : p->all;
}

static inline bool lg_sched_pergroup_given(const lg_sched_pergroup *p) {
  return p->v || !isnan(p->all);
}

/* the kind's state struct */
#define LG_SCHED_STATE(s, T) ((T *)(s)->state)

/* option declarations */
#define LG_SO_AT(field) offsetof(lg_sched_opts, field)
#define LG_SO_NUM(nm, field, d)                                                \
  { .name = nm, .type = LG_SOPT_NUM, .at = LG_SO_AT(field), .def = (d) }
#define LG_SO_NUM_R(nm, field, d, l, h, fl, words)                            \
  {                                                                            \
    .name = nm, .type = LG_SOPT_NUM, .at = LG_SO_AT(field),                    \
    .flags = LG_SOPT_RANGE | (fl), .def = (d), .lo = (l), .hi = (h),           \
    .must = words                                                              \
  }
#define LG_SO_INT(nm, field, d)                                                \
  { .name = nm, .type = LG_SOPT_INT, .at = LG_SO_AT(field), .def = (d) }
#define LG_SO_INT_R(nm, field, d, l, h, fl, words)                            \
  {                                                                            \
    .name = nm, .type = LG_SOPT_INT, .at = LG_SO_AT(field),                    \
    .flags = LG_SOPT_RANGE | (fl), .def = (d), .lo = (l), .hi = (h),           \
    .must = words                                                              \
  }
#define LG_SO_BOOL(nm, field, d)                                               \
  { .name = nm, .type = LG_SOPT_BOOL, .at = LG_SO_AT(field), .def = (d) }
#define LG_SO_CHOICE(nm, field, list)                                          \
  {                                                                            \
    .name = nm, .type = LG_SOPT_CHOICE, .at = LG_SO_AT(field),                 \
    .choices = (list)                                                          \
  }
#define LG_SO_PERGROUP(nm, field, d, fl)                                       \
  {                                                                            \
    .name = nm, .type = LG_SOPT_PERGROUP, .at = LG_SO_AT(field),               \
    .flags = (fl), .def = (d)                                                  \
  }
#define LG_SO_MILESTONES(fl)                                                   \
  {                                                                            \
    .name = "milestones", .type = LG_SOPT_INTLIST,                             \
    .at = LG_SO_AT(milestones), .count_at = LG_SO_AT(nmilestones),             \
    .flags = (fl)                                                              \
  }
#define LG_SO_FN                                                               \
  {                                                                            \
    .name = "fn", .type = LG_SOPT_FN, .at = LG_SO_AT(fn),                      \
    .flags = LG_SOPT_REQUIRED                                                  \
  }
#define LG_SO_CHILDREN                                                         \
  {                                                                            \
    .name = "schedulers", .type = LG_SOPT_CHILDREN, .at = LG_SO_AT(children),  \
    .count_at = LG_SO_AT(nchildren), .flags = LG_SOPT_REQUIRED                 \
  }
#define LG_SO_END                                                              \
  { .name = NULL }

/* state fields: named values in the kind's struct st */
#define LG_SF_I64(nm, p) ((lg_sched_field){nm, 1, false, &(p), NULL})
#define LG_SF_F64(nm, p) ((lg_sched_field){nm, 1, false, NULL, &(p)})
#define LG_SF_ARR(nm, p, cnt) ((lg_sched_field){nm, cnt, true, NULL, (p)})
#define LG_SF_I64S(nm, p, cnt) ((lg_sched_field){nm, cnt, true, (p), NULL})

#define LG_SCHED_CHECK(cond, ...)                                              \
  do {                                                                         \
    if (!(cond)) {                                                             \
      lg_seterr(__VA_ARGS__);                                                  \
      return -1;                                                               \
    }                                                                          \
  } while (0)

#endif
