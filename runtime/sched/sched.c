/*
 * sched.c -- the scheduler engine (see sched.h and kind.h): kinds, options,
 * creation, stepping, group access and state fields.  The kinds themselves
 * are in decay.c, cyclic.c, plateau.c and compose.c.
 *
 * The arithmetic follows PyTorch 1.13's lr_scheduler.py operation for
 * operation, so a schedule that is defined recursively there (each lr
 * computed from the group's current lr) is recursive here too and rounds
 * the same way.  A step computes every new value into scratch space first
 * and commits only when nothing failed.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../optim/optim.h"
#include "kind.h"

static const lg_sched_kind_def *const kinds[LG_SCHED_NKINDS] = {
#define LG_SCHED_KIND_ENTRY(ID, var, name) [LG_SCHED_##ID] = &lg_schedk_##var,
    LG_SCHED_KINDS(LG_SCHED_KIND_ENTRY)
#undef LG_SCHED_KIND_ENTRY
};

static const lg_sched_kind_def *kind_def(lg_sched_kind kind) {
  return (unsigned)kind < LG_SCHED_NKINDS ? kinds[kind] : NULL;
}

const char *lg_sched_kind_name(lg_sched_kind kind) {
  const lg_sched_kind_def *d = kind_def(kind);
  return d ? d->name : "?";
}

const lg_sched_opt *lg_sched_kind_opts(lg_sched_kind kind) {
  static const lg_sched_opt none[] = {LG_SO_END};
  const lg_sched_kind_def *d = kind_def(kind);
  return d ? d->opts : none;
}

int lg_sched_kind_from_name(const char *name, lg_sched_kind *kind) {
  for (int k = 0; k < LG_SCHED_NKINDS; k++)
    if (strcmp(name, kinds[k]->name) == 0) {
      *kind = (lg_sched_kind)k;
      return 0;
    }
  lg_seterr("sched: unknown scheduler '%s'", name);
  return -1;
}

/* ---- options ---- */

void lg_sched_defaults(lg_sched_kind kind, lg_sched_opts *o) {
  memset(o, 0, sizeof *o);
  for (const lg_sched_opt *d = lg_sched_kind_opts(kind); d->name; d++) {
    char *at = (char *)o + d->at;
    switch (d->type) {
    case LG_SOPT_NUM:
      *(double *)at = d->def;
      break;
    case LG_SOPT_INT:
      *(int64_t *)at = (int64_t)d->def;
      break;
    case LG_SOPT_BOOL:
      *(bool *)at = d->def != 0;
      break;
    case LG_SOPT_CHOICE:
      *(int *)at = (int)d->def;
      break;
    case LG_SOPT_PERGROUP:
      ((lg_sched_pergroup *)at)->all = d->def;
      break;
    default:
      break;
    }
  }
}

/* the range of d in words: "in (0, 1]", ">= 0", or d->must */
static const char *range_words(const lg_sched_opt *d, char *buf, size_t n) {
  bool lo = isfinite(d->lo), hi = isfinite(d->hi);
  bool lo_open = d->flags & LG_SOPT_LO_OPEN, hi_open = d->flags & LG_SOPT_HI_OPEN;
  if (d->must)
    return d->must;
  if (lo && hi)
    snprintf(buf, n, "in %c%g, %g%c", lo_open ? '(' : '[', d->lo, d->hi,
             hi_open ? ')' : ']');
  else if (lo)
    snprintf(buf, n, "%s %g", lo_open ? ">" : ">=", d->lo);
  else if (hi)
    snprintf(buf, n, "%s %g", hi_open ? "<" : "<=", d->hi);
  else
    snprintf(buf, n, "finite");
  return buf;
}

/* the declared checks: required values given, numbers in range */
static int check_declared(const lg_sched_kind_def *k, const lg_sched_opts *o) {
  for (const lg_sched_opt *d = k->opts; d->name; d++) {
    const char *at = (const char *)o + d->at;
    if (d->flags & LG_SOPT_REQUIRED) {
      bool given = true;
      if (d->type == LG_SOPT_NUM)
        given = !isnan(*(const double *)at);
      else if (d->type == LG_SOPT_PERGROUP)
        given = lg_sched_pergroup_given((const lg_sched_pergroup *)at);
      else if (d->type == LG_SOPT_FN)
        given = *(const lg_sched_fn *)at != NULL;
      else if (d->type == LG_SOPT_INTLIST)
        given = *(const int *)((const char *)o + d->count_at) == 0 ||
                *(const int64_t *const *)at;
      LG_SCHED_CHECK(given, "sched.%s: %s is required", k->name, d->name);
    }
    if (!(d->flags & LG_SOPT_RANGE))
      continue;
    double v = d->type == LG_SOPT_INT ? (double)*(const int64_t *)at
                                      : *(const double *)at;
    if (isnan(v) && (d->flags & LG_SOPT_NIL_OK))
      continue;
    bool ok = (d->flags & LG_SOPT_LO_OPEN) ? v > d->lo : v >= d->lo;
    ok = ok && ((d->flags & LG_SOPT_HI_OPEN) ? v < d->hi : v <= d->hi);
    if (!ok) {
      char buf[64];
      const char *words = range_words(d, buf, sizeof buf);
      if (d->type == LG_SOPT_INT)
        lg_seterr("sched.%s: %s must be %s, got %lld", k->name, d->name,
                  words, (long long)*(const int64_t *)at);
      else
        lg_seterr("sched.%s: %s must be %s, got %g", k->name, d->name, words,
                  v);
      return -1;
    }
  }
  return 0;
}

/* ---- group access ---- */

int lg_sched_group_get(lg_sched *s, int g, const char *key, double *v) {
  if (lg_optim_get(s->opt, g, key, v) < 0) {
    lg_seterr("sched.%s: parameter group %I has no '%s'", s->def->name,
              (long long)g, key);
    return -1;
  }
  return 0;
}

bool lg_sched_group_has(lg_optim *o, int g, const char *key) {
  double v;
  return lg_optim_get(o, g, key, &v) == 0;
}

int lg_sched_group_set(lg_sched *s, int g, const char *key, double v) {
  int rc = lg_optim_is_option(s->opt, key)
               ? lg_optim_set(s->opt, g, key, v)
               : lg_optim_set_extra(s->opt, g, key, v);
  if (rc < 0) {
    lg_seterr("sched.%s: cannot set '%s' of parameter group %I: %s",
              s->def->name, key, (long long)g, lg_errmsg());
    return -1;
  }
  return 0;
}

int lg_sched_read_lrs(lg_sched *s, double *lrs) {
  for (int g = 0; g < s->ngroups; g++)
    if (lg_sched_group_get(s, g, "lr", &lrs[g]) < 0)
      return -1;
  return 0;
}

int lg_sched_commit(lg_sched *s, const double *lrs, const double *moms,
                    const char *mom_key) {
  if (moms)
    for (int g = 0; g < s->ngroups; g++)
      if (lg_sched_group_set(s, g, mom_key, moms[g]) < 0)
        return -1;
  for (int g = 0; g < s->ngroups; g++)
    if (lg_sched_group_set(s, g, "lr", lrs[g]) < 0)
      return -1;
  memcpy(s->last_lrs, lrs, sizeof(double) * s->ngroups);
  return 0;
}

int lg_sched_call_fn(lg_sched *s, lg_sched_fn fn, void *fn_ctx, void *cc,
                     int g, int64_t e, double *f) {
  if (fn(cc, fn_ctx, g, e, f) < 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", lg_errmsg());
    lg_seterr("sched.%s: %s", s->def->name, msg);
    return -1;
  }
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int64_t *lg_sched_copy_list(lg_sched *s, const int64_t *v, int n, bool sort) {
  int64_t *c = malloc(sizeof(int64_t) * (n ? n : 1));
  if (!c) {
    lg_seterr("sched.%s: out of memory", s->def->name);
    return NULL;
  }
  if (n)
    memcpy(c, v, sizeof(int64_t) * n);
  if (sort && n)
    qsort(c, n, sizeof(int64_t), cmp_i64);
  return c;
}

/* ---- stepping ---- */

/* PyTorch's _LRScheduler.step(epoch): epoch NULL for the usual step */
static int lr_step(lg_sched *s, const double *epoch, void *cc) {
  int64_t saved_epoch = s->last_epoch, saved_count = s->step_count;
  const char *mom_key = NULL;
  bool closed = false;
  s->step_count++;
  if (!epoch) {
    s->last_epoch++;
  } else {
    s->last_epoch = (int64_t)floor(*epoch);
    if (s->def->closed) {
      s->def->closed(s, s->scratch);
      closed = true;
    }
  }
  if (!closed &&
      s->def->get_lr(s, cc, s->scratch, s->scratch2, &mom_key) < 0)
    goto fail;
  if (lg_sched_commit(s, s->scratch, mom_key ? s->scratch2 : NULL, mom_key) <
      0)
    goto fail;
  return 0;
fail:
  s->last_epoch = saved_epoch;
  s->step_count = saved_count;
  return -1;
}

static int check_groups(lg_sched *s) {
  LG_SCHED_CHECK(lg_optim_ngroups(s->opt) == s->ngroups,
                 "sched.%s: the optimizer has %d parameter groups, the "
                 "scheduler was made for %d",
                 s->def->name, lg_optim_ngroups(s->opt), s->ngroups);
  return 0;
}

static int step_any(lg_sched *s, const double *epoch, void *cc) {
  if (check_groups(s) < 0)
    return -1;
  return s->def->step ? s->def->step(s, epoch, cc) : lr_step(s, epoch, cc);
}

int lg_sched_step(lg_sched *s, void *call_ctx) {
  return step_any(s, NULL, call_ctx);
}

int lg_sched_step_epoch(lg_sched *s, double epoch, void *call_ctx) {
  if (!isfinite(epoch)) {
    lg_seterr("sched.%s: epoch must be a finite number", s->def->name);
    return -1;
  }
  return step_any(s, &epoch, call_ctx);
}

int lg_sched_step_metric(lg_sched *s, double metric, void *call_ctx) {
  if (!s->def->step_metric)
    return lg_sched_step(s, call_ctx);
  if (check_groups(s) < 0)
    return -1;
  return s->def->step_metric(s, metric);
}

/* ---- creation ---- */

static void sched_free(lg_sched *s) {
  if (!s)
    return;
  if (s->def->release)
    s->def->release(s);
  for (int i = 0; i < s->nchildren; i++)
    lg_sched_release(s->children[i]);
  free(s->children);
  free(s->base_lrs); /* the block holding every per-group array */
  free(s->state);
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

int lg_sched_lr_init(lg_sched *s, void *cc) {
  for (int g = 0; g < s->ngroups; g++) {
    double v;
    if (lg_optim_get(s->opt, g, "initial_lr", &v) < 0) {
      if (lg_sched_group_get(s, g, "lr", &v) < 0 ||
          lg_sched_group_set(s, g, "initial_lr", v) < 0)
        return -1;
    }
    s->base_lrs[g] = v;
  }
  s->last_epoch = -1;
  s->step_count = 0;
  return lg_sched_step(s, cc);
}

lg_sched *lg_sched_new(lg_sched_kind kind, lg_optim *opt,
                       const lg_sched_opts *o, void *call_ctx) {
  const lg_sched_kind_def *k = kind_def(kind);
  if (!k) {
    lg_seterr("sched: unknown scheduler kind %d", (int)kind);
    return NULL;
  }
  bool composite = k->flags & LG_SCHEDF_COMPOSITE;
  if (composite) {
    if (!(o->nchildren > 0 && o->children)) {
      lg_seterr("sched.%s: schedulers must be a non-empty list", k->name);
      return NULL;
    }
    if (!opt)
      opt = o->children[0]->opt;
  }
  if (!opt) {
    lg_seterr("sched.%s: an optimizer is required", k->name);
    return NULL;
  }
  if (lg_optim_ngroups(opt) <= 0) {
    lg_seterr("sched.%s: the optimizer has no parameter groups", k->name);
    return NULL;
  }
  if (check_declared(k, o) < 0 || (k->check && k->check(o, opt) < 0))
    return NULL;
  lg_sched *s = calloc(1, sizeof *s);
  if (!s) {
    lg_seterr("sched.%s: out of memory", k->name);
    return NULL;
  }
  s->refcount = 1;
  s->kind = kind;
  s->def = k;
  s->opt = opt;
  int n = s->ngroups = lg_optim_ngroups(opt);
  /* per-group arrays in one block: base, last, scratch x2, the kind's */
  double *block = calloc((size_t)n * (4 + k->narrays), sizeof(double));
  int nc = composite ? o->nchildren : 0;
  s->children = nc ? calloc(nc, sizeof(lg_sched *)) : NULL;
  s->state = k->state_size ? calloc(1, k->state_size) : NULL;
  if (!block || (nc && !s->children) || (k->state_size && !s->state)) {
    free(block);
    sched_free(s);
    lg_seterr("sched.%s: out of memory", k->name);
    return NULL;
  }
  s->base_lrs = block;
  s->last_lrs = block + n;
  s->scratch = block + 2 * n;
  s->scratch2 = block + 3 * n;
  for (int i = 0; i < k->narrays; i++)
    s->arrays[i] = block + (4 + i) * n;
  for (int i = 0; i < nc; i++)
    s->children[i] = lg_sched_retain(o->children[i]);
  s->nchildren = nc;
  int rc = k->init ? k->init(s, o, call_ctx) : lg_sched_lr_init(s, call_ctx);
  if (rc < 0) {
    sched_free(s);
    return NULL;
  }
  return s;
}

/* ---- inspection ---- */

lg_sched_kind lg_sched_kind_of(const lg_sched *s) { return s->kind; }
bool lg_sched_takes_metric(const lg_sched *s) {
  return s->def->step_metric != NULL;
}
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
  int k = 0;
  out[k++] = LG_SF_I64("last_epoch", s->last_epoch);
  out[k++] = LG_SF_I64("step_count", s->step_count);
  out[k++] = LG_SF_ARR("base_lrs", s->base_lrs, s->ngroups);
  out[k++] = LG_SF_ARR("last_lr", s->last_lrs, s->ngroups);
  if (s->def->fields)
    k += s->def->fields(s, out + k);
  return k;
}
