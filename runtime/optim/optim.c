/*
 * optim.c -- the optimizer object: algorithms by name, parameter groups
 * and their hyperparameters, per-parameter state, step and zero_grad.
 * The update rules live in optim/sgd.c, optim/adam.c, optim/misc.c,
 * optim/factored.c and optim/lbfgs.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "optim.h"

static const lg_optim_kind *const kinds[] = {&lg_optim_gd,
                                             &lg_optim_sgd,
                                             &lg_optim_adam,
                                             &lg_optim_adamw,
                                             &lg_optim_rmsprop,
                                             &lg_optim_adagrad,
                                             &lg_optim_adadelta,
                                             &lg_optim_adamax,
                                             &lg_optim_nadam,
                                             &lg_optim_radam,
                                             &lg_optim_rprop,
                                             &lg_optim_asgd,
                                             &lg_optim_adafactor,
                                             &lg_optim_muon,
                                             &lg_optim_lion,
                                             &lg_optim_lbfgs,
                                             &lg_optim_sparse_adam,
                                             NULL};

/* ---- construction ---- */

lg_optim *lg_optim_new(const char *name) {
  if (!name) {
    lg_seterr("lg_optim_new: argument %d is NULL", 1);
    return NULL;
  }
  const lg_optim_kind *kind = NULL;
  for (int i = 0; kinds[i]; i++)
    if (!strcmp(kinds[i]->name, name))
      kind = kinds[i];
  if (!kind) {
    lg_seterr("optim: unknown optimizer '%s'", name);
    return NULL;
  }
  lg_optim *o = calloc(1, sizeof *o);
  if (!o) {
    lg_seterr("%s: out of memory", name);
    return NULL;
  }
  o->kind = kind;
  return o;
}

static void free_param_state(lg_opt_param *p) {
  size_t es = lg_dtype_size(p->t->dtype);
  for (int k = 0; k < LG_OPT_MAXBUF; k++) {
    if (p->buf[k])
      lg_free(p->buf[k], (size_t)p->buflen[k] * es);
    p->buf[k] = NULL;
    p->buflen[k] = 0;
  }
  lg_opt_rows_free(p);
  p->has_state = false;
  p->step = 0;
  p->scal[0] = p->scal[1] = 0;
}

void lg_optim_free(lg_optim *o) {
  if (!o)
    return;
  for (int i = 0; i < o->nparams; i++) {
    free_param_state(&o->params[i]);
    lg_release(o->params[i].t);
  }
  for (int g = 0; g < o->ngroups; g++)
    free(o->groups[g].extra);
  free(o->params);
  free(o->groups);
  if (o->work)
    lg_free(o->work, o->work_bytes);
  lg_lbfgs_free(o);
  free(o);
}

const char *lg_optim_name(const lg_optim *o) { return o->kind->name; }
const lg_hp_spec *lg_optim_specs(const lg_optim *o) { return o->kind->specs; }

const lg_hp_spec *lg_optim_find_spec(const lg_optim *o, const char *name) {
  for (const lg_hp_spec *s = o->kind->specs; s->name; s++)
    if (!strcmp(s->name, name) || (s->alias && !strcmp(s->alias, name)))
      return s;
  return NULL;
}

void lg_optim_defaults(const lg_optim *o, double *hp) {
  for (int i = 0; i < LG_HP_COUNT; i++)
    hp[i] = NAN;
  for (const lg_hp_spec *s = o->kind->specs; s->name; s++)
    for (int k = 0; k < s->n; k++)
      hp[s->id + k] = (s->flags & LG_HPF_REQUIRED) ? NAN : s->def[k];
}

/* "lr" or "betas[2]" for messages */
static const char *elem_name(const lg_hp_spec *s, int k, char *buf, size_t n) {
  if (s->n == 1)
    snprintf(buf, n, "%s", s->name);
  else
    snprintf(buf, n, "%s[%d]", s->name, k + 1);
  return buf;
}

static int nchoices(const lg_hp_spec *s) {
  int n = 0;
  while (s->choices && s->choices[n])
    n++;
  return n;
}

int lg_optim_check_value(const lg_optim *o, const lg_hp_spec *s, int k,
                         double v) {
  char nm[48];
  const char *on = o->kind->name;
  elem_name(s, k, nm, sizeof nm);
  if (isnan(v)) {
    if (s->flags & LG_HPF_NILOK)
      return 0;
    if (s->flags & LG_HPF_REQUIRED)
      lg_seterr("%s: %s is required", on, nm);
    else
      lg_seterr("%s: %s must be a number (got nan)", on, nm);
    return -1;
  }
  switch (s->type) {
  case LG_HPT_BOOL:
    if (v != 0 && v != 1) {
      lg_seterr("%s: %s must be a boolean", on, nm);
      return -1;
    }
    return 0;
  case LG_HPT_ENUM:
    if (v != floor(v) || v < 0 || v >= nchoices(s)) {
      lg_seterr("%s: invalid %s", on, nm);
      return -1;
    }
    return 0;
  case LG_HPT_INT:
    if (v != floor(v) || fabs(v) > 9007199254740992.0) {
      lg_seterr("%s: %s must be an integer (got %.17g)", on, nm, v);
      return -1;
    }
    break;
  case LG_HPT_NUM:
    break;
  }
  double lo = s->lo[k], hi = s->hi[k];
  bool lo_open = s->open[k] & LG_HP_LO_OPEN,
       hi_open = s->open[k] & LG_HP_HI_OPEN;
  bool ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (ok)
    return 0;
  if (isinf(hi))
    lg_seterr("%s: %s must be %s %g (got %.17g)", on, nm,
              lo_open ? ">" : ">=", lo, v);
  else if (isinf(lo))
    lg_seterr("%s: %s must be %s %g (got %.17g)", on, nm,
              hi_open ? "<" : "<=", hi, v);
  else
    lg_seterr("%s: %s must be in %s%g, %g%s (got %.17g)", on, nm,
              lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]", v);
  return -1;
}

static int check_hp(const lg_optim *o, const double *hp) {
  for (const lg_hp_spec *s = o->kind->specs; s->name; s++)
    for (int k = 0; k < s->n; k++)
      if (lg_optim_check_value(o, s, k, hp[s->id + k]) < 0)
        return -1;
  return 0;
}

static int check_param(const lg_optim *o, int index, lg_tensor *t,
                       lg_tensor **list, int n) {
  const char *on = o->kind->name;
  if (!t) {
    lg_seterr("%s: parameter %I is not a tensor", on, (long long)index);
    return -1;
  }
  if (!lg_dtype_is_float(t->dtype)) {
    lg_seterr("%s: parameter %I has dtype %s; optimizers need float32 or "
              "float64 parameters",
              on, (long long)index, lg_dtype_name(t->dtype));
    return -1;
  }
  if (!lg_is_contiguous(t)) {
    lg_seterr("%s: parameter %I is not contiguous (call :contiguous() before "
              "making it a parameter)",
              on, (long long)index);
    return -1;
  }
  if (t->grad_fn) {
    lg_seterr("%s: parameter %I is not a leaf tensor (it was computed by %s); "
              "optimize the leaf it comes from",
              on, (long long)index, lg_grad_fn_name(t));
    return -1;
  }
  for (int i = 0; i < o->nparams; i++)
    if (o->params[i].t == t) {
      lg_seterr("%s: parameter %I is already in parameter group %I", on,
                (long long)index, (long long)o->params[i].group);
      return -1;
    }
  for (int i = 0; i < n; i++)
    if (list[i] == t) {
      lg_seterr("%s: parameter %I appears twice in its group", on,
                (long long)index);
      return -1;
    }
  if (o->kind->check_param && o->kind->check_param(o, index, t) < 0)
    return -1;
  return 0;
}

int lg_optim_add_group(lg_optim *o, int n, lg_tensor **params,
                       const double *hp_in) {
  const char *on = o->kind->name;
  if (o->busy) {
    lg_seterr("%s: cannot add a parameter group inside step()", on);
    return -1;
  }
  if (n <= 0) {
    lg_seterr("%s: got an empty parameter list", on);
    return -1;
  }
  if (o->kind == &lg_optim_lbfgs && o->ngroups > 0) {
    lg_seterr("LBFGS: doesn't support per-parameter options "
              "(parameter groups)");
    return -1;
  }
  double hp[LG_HP_COUNT];
  memcpy(hp, hp_in, sizeof hp);
  if (o->kind->check_group && o->kind->check_group(o, hp) < 0)
    return -1;
  if (check_hp(o, hp) < 0)
    return -1;
  for (int i = 0; i < n; i++)
    if (check_param(o, o->nparams + i, params[i], params, i) < 0)
      return -1;
  if (o->ngroups == o->groups_cap) {
    int cap = o->groups_cap ? 2 * o->groups_cap : 4;
    lg_opt_group *g = realloc(o->groups, (size_t)cap * sizeof *g);
    if (!g)
      goto oom;
    o->groups = g;
    o->groups_cap = cap;
  }
  if (o->nparams + n > o->params_cap) {
    int cap = o->params_cap ? 2 * o->params_cap : 8;
    while (cap < o->nparams + n)
      cap *= 2;
    lg_opt_param *p = realloc(o->params, (size_t)cap * sizeof *p);
    if (!p)
      goto oom;
    o->params = p;
    o->params_cap = cap;
  }
  lg_opt_group *g = &o->groups[o->ngroups];
  memset(g, 0, sizeof *g);
  memcpy(g->hp, hp, sizeof hp);
  g->first = o->nparams;
  g->count = n;
  for (int i = 0; i < n; i++) {
    lg_opt_param *p = &o->params[o->nparams + i];
    memset(p, 0, sizeof *p);
    p->t = lg_retain(params[i]);
    p->group = o->ngroups;
  }
  o->nparams += n;
  o->ngroups++;
  if (o->kind->init_param)
    for (int i = 0; i < n; i++)
      if (o->kind->init_param(o, g, &o->params[g->first + i]) < 0)
        return -1;
  return 0;
oom:
  lg_seterr("%s: out of memory", on);
  return -1;
}

int lg_optim_nparams(const lg_optim *o) { return o->nparams; }
int lg_optim_ngroups(const lg_optim *o) { return o->ngroups; }
int lg_optim_group_first(const lg_optim *o, int g) {
  return o->groups[g].first;
}
int lg_optim_group_count(const lg_optim *o, int g) {
  return o->groups[g].count;
}
lg_tensor *lg_optim_param(const lg_optim *o, int i) { return o->params[i].t; }

/* ---- hyperparameters by key ---- */

/* finds "lr" or a tuple element "betas2"; k gets the element */
static const lg_hp_spec *find_key(const lg_optim *o, const char *key, int *k) {
  for (const lg_hp_spec *s = o->kind->specs; s->name; s++) {
    size_t len = strlen(s->name);
    if (s->n == 1) {
      if (!strcmp(s->name, key)) {
        *k = 0;
        return s;
      }
    } else {
      /* "betas2", or for a plural name the singular "beta2" */
      for (int form = 0; form < 2; form++) {
        size_t l = form ? len - 1 : len;
        if (form && s->name[len - 1] != 's')
          break;
        if (!strncmp(s->name, key, l) && key[l] >= '1' && key[l] < '1' + s->n &&
            key[l + 1] == 0) {
          *k = key[l] - '1';
          return s;
        }
      }
    }
  }
  return NULL;
}

static lg_opt_extra *find_extra(const lg_opt_group *g, const char *key) {
  for (int i = 0; i < g->nextra; i++)
    if (!strcmp(g->extra[i].name, key))
      return &g->extra[i];
  return NULL;
}

static int check_group_index(const lg_optim *o, int group, const char *fn) {
  if (group < 0 || group >= o->ngroups) {
    lg_seterr("%s: %s has no parameter group %I", fn, o->kind->name,
              (long long)group);
    return -1;
  }
  return 0;
}

int lg_optim_get(const lg_optim *o, int group, const char *key, double *v) {
  if (!o || !key) {
    lg_seterr("lg_optim_get: argument %d is NULL", (!o) ? 1 : 3);
    return -1;
  }
  if (check_group_index(o, group, "lg_optim_get") < 0)
    return -1;
  const lg_opt_group *g = &o->groups[group];
  int k;
  const lg_hp_spec *s = find_key(o, key, &k);
  if (s) {
    *v = g->hp[s->id + k];
    return 0;
  }
  const lg_opt_extra *e = find_extra(g, key);
  if (e) {
    *v = e->value;
    return 0;
  }
  lg_seterr("%s: parameter group %I has no key '%s'", o->kind->name,
            (long long)group, key);
  return -1;
}

int lg_optim_set(lg_optim *o, int group, const char *key, double v) {
  if (!o || !key) {
    lg_seterr("lg_optim_set: argument %d is NULL", (!o) ? 1 : 3);
    return -1;
  }
  if (check_group_index(o, group, "lg_optim_set") < 0)
    return -1;
  lg_opt_group *g = &o->groups[group];
  int k;
  const lg_hp_spec *s = find_key(o, key, &k);
  if (s) {
    if (lg_optim_check_value(o, s, k, v) < 0)
      return -1;
    g->hp[s->id + k] = v;
    return 0;
  }
  if (!strcmp(key, "params") || lg_optim_find_spec(o, key)) {
    lg_seterr("%s: '%s' cannot be set to a number", o->kind->name, key);
    return -1;
  }
  lg_seterr("%s: unknown option '%s'", o->kind->name, key);
  return -1;
}

bool lg_optim_is_option(const lg_optim *o, const char *key) {
  int k;
  return key && find_key(o, key, &k) != NULL;
}

int lg_optim_set_extra(lg_optim *o, int group, const char *key, double v) {
  if (check_group_index(o, group, "lg_optim_set_extra") < 0)
    return -1;
  if (!key) {
    lg_seterr("lg_optim_set_extra: argument 3 is NULL");
    return -1;
  }
  if (!strcmp(key, "params") || lg_optim_find_spec(o, key) ||
      find_key(o, key, &(int){0})) {
    lg_seterr("%s: '%s' is an option, not an extra key", o->kind->name, key);
    return -1;
  }
  lg_opt_group *g = &o->groups[group];
  lg_opt_extra *e = find_extra(g, key);
  if (e) {
    e->value = v;
    return 0;
  }
  size_t len = strlen(key);
  if (len == 0 || len >= sizeof e->name) {
    lg_seterr("%s: key '%s' is empty or longer than %d characters",
              o->kind->name, key, (int)sizeof e->name - 1);
    return -1;
  }
  if (g->nextra == g->extra_cap) {
    int cap = g->extra_cap ? 2 * g->extra_cap : 4;
    lg_opt_extra *x = realloc(g->extra, (size_t)cap * sizeof *x);
    if (!x) {
      lg_seterr("%s: out of memory", o->kind->name);
      return -1;
    }
    g->extra = x;
    g->extra_cap = cap;
  }
  e = &g->extra[g->nextra++];
  memcpy(e->name, key, len + 1);
  e->value = v;
  return 0;
}

int lg_optim_nextras(const lg_optim *o, int group) {
  return o->groups[group].nextra;
}
const char *lg_optim_extra_name(const lg_optim *o, int group, int i) {
  return o->groups[group].extra[i].name;
}
void lg_optim_clear_extras(lg_optim *o, int group) {
  o->groups[group].nextra = 0;
}
void lg_optim_remove_extra(lg_optim *o, int group, const char *key) {
  lg_opt_group *g = &o->groups[group];
  lg_opt_extra *e = find_extra(g, key);
  if (e) {
    *e = g->extra[g->nextra - 1];
    g->nextra--;
  }
}

/* ---- helpers for the algorithms ---- */

void *lg_opt_buf(lg_opt_param *p, int k, int64_t numel, double fill,
                 bool *fresh) {
  if (fresh)
    *fresh = false;
  if (p->buf[k])
    return p->buf[k];
  size_t es = lg_dtype_size(p->t->dtype);
  void *b = lg_alloc((size_t)numel * es);
  if (!b)
    return NULL;
  LG_OPT_TYPED(p->t->dtype, {
    real *x = b;
    for (int64_t i = 0; i < numel; i++)
      x[i] = (real)fill;
  });
  p->buf[k] = b;
  p->buflen[k] = numel;
  if (fresh)
    *fresh = true;
  return b;
}

void *lg_opt_work(lg_optim *o, size_t nbytes) {
  if (o->work && o->work_bytes >= nbytes)
    return o->work;
  if (o->work)
    lg_free(o->work, o->work_bytes);
  o->work = lg_alloc(nbytes);
  o->work_bytes = o->work ? nbytes : 0;
  return o->work;
}

int64_t lg_opt_state_numel(const lg_tensor *t, lg_state_shape shape) {
  int64_t n = lg_numel(t);
  if (shape == LG_SHAPE_PARAM || t->ndim < 2)
    return n;
  int64_t r = t->shape[t->ndim - 2], c = t->shape[t->ndim - 1];
  if (r == 0 || c == 0)
    return 0;
  return shape == LG_SHAPE_ROW ? n / c : n / r;
}

int lg_opt_state_shape(const lg_tensor *t, lg_state_shape shape,
                       int64_t *dims) {
  for (int i = 0; i < t->ndim; i++)
    dims[i] = t->shape[i];
  if (shape != LG_SHAPE_PARAM && t->ndim >= 2)
    dims[t->ndim - (shape == LG_SHAPE_ROW ? 1 : 2)] = 1;
  return t->ndim;
}

void lg_opt_parallel(int64_t n, void (*fn)(void *, int64_t, int64_t),
                     void *ctx) {
  /* element-wise updates: any split gives the same bits */
  if (n > 0)
    lg_parallel_for(n, (int64_t)1 << 15, fn, ctx);
}

/* ---- step and zero_grad ---- */

static int check_grad(const lg_optim *o, int index, const lg_tensor *p,
                      const lg_tensor *g) {
  const char *on = o->kind->name;
  if (lg_is_row_sparse(g)) {
    if (!o->kind->update_sparse) {
      lg_seterr("%s.step: parameter %d has a sparse gradient, which %s does "
                "not support (use SparseAdam, SGD or Adagrad for it, or an "
                "embedding with sparse = false)",
                on, index + 1, on);
      return -1;
    }
    if (g->dtype != p->dtype || g->sparse_dim0 != (p->ndim ? p->shape[0] : 1) ||
        g->ndim != p->ndim || !lg_is_contiguous(g) ||
        !lg_is_contiguous(p)) {
      lg_seterr("%s.step: the sparse gradient of parameter %d does not fit "
                "the parameter",
                on, index + 1);
      return -1;
    }
    return 0;
  }
  if (!o->kind->update) {
    lg_seterr("%s.step: parameter %d has a dense gradient; %s does not "
              "support dense gradients, please consider Adam instead",
              on, index + 1, on);
    return -1;
  }
  if (g->dtype != p->dtype) {
    lg_seterr(
        "%s.step: the gradient of parameter %I has dtype %s, the parameter %s",
        on, (long long)index, lg_dtype_name(g->dtype), lg_dtype_name(p->dtype));
    return -1;
  }
  if (lg_numel(g) != lg_numel(p)) {
    char a[200], b[200];
    lg_seterr(
        "%s.step: the gradient of parameter %I has shape %s, the parameter %s",
        on, (long long)index, lg_shape_str(g, a, sizeof a),
        lg_shape_str(p, b, sizeof b));
    return -1;
  }
  if (!lg_is_contiguous(g)) {
    lg_seterr("%s.step: the gradient of parameter %I is not contiguous", on,
              (long long)index);
    return -1;
  }
  if (!lg_is_contiguous(p)) {
    lg_seterr("%s.step: parameter %I is no longer contiguous", on,
              (long long)index);
    return -1;
  }
  return 0;
}

static int run_closure(lg_closure_fn closure, void *ctx, double *loss) {
  bool prev = lg_set_grad_enabled(true);
  int rc = closure(ctx, loss);
  lg_set_grad_enabled(prev);
  return rc;
}

int lg_optim_step(lg_optim *o, lg_closure_fn closure, void *ctx, double *loss) {
  if (!o) {
    lg_seterr("lg_optim_step: argument %d is NULL", 1);
    return -1;
  }
  const char *on = o->kind->name;
  double l = NAN;
  if (o->busy) {
    lg_seterr("%s.step: called again from inside its closure", on);
    return -1;
  }
  if (o->kind->needs_closure && !closure) {
    lg_seterr("%s.step: a closure that re-evaluates the loss is required", on);
    return -1;
  }
  o->busy = true;
  int rc = 0;
  if (o->kind->step) {
    for (int i = 0; i < o->nparams; i++)
      if (lg_is_row_sparse(o->params[i].t->grad) &&
          (rc = check_grad(o, i, o->params[i].t, o->params[i].t->grad)) < 0)
        goto done;
    rc = o->kind->step(o, closure, ctx, &l);
    goto done;
  }
  if (closure && (rc = run_closure(closure, ctx, &l)) < 0)
    goto done;
  for (int i = 0; i < o->nparams; i++) {
    lg_opt_param *p = &o->params[i];
    if (p->t->grad && (rc = check_grad(o, i, p->t, p->t->grad)) < 0)
      goto done;
  }
  for (int i = 0; i < o->nparams; i++) {
    lg_opt_param *p = &o->params[i];
    if (!p->t->grad)
      continue;
    if (lg_is_row_sparse(p->t->grad)) {
      rc = o->kind->update_sparse(o, &o->groups[p->group], p, p->t->grad);
    } else {
      rc = o->kind->update(o, &o->groups[p->group], p, p->t->grad);
      p->rows_known = false; /* a dense step may have touched any row */
    }
    if (rc < 0)
      goto done;
    lg_bump_version(p->t);
  }
done:
  o->busy = false;
  if (loss)
    *loss = l;
  return rc < 0 ? -1 : 0;
}

int lg_optim_zero_grad(lg_optim *o, bool set_to_none) {
  if (!o) {
    lg_seterr("lg_optim_zero_grad: argument %d is NULL", 1);
    return -1;
  }
  for (int i = 0; i < o->nparams; i++) {
    lg_tensor *t = o->params[i].t, *g = t->grad;
    if (!g)
      continue;
    if (set_to_none) {
      t->grad = NULL;
      lg_release(g);
    } else if (lg_is_row_sparse(g)) {
      /* zeros of a sparse gradient: no rows */
      int64_t shape[LG_MAX_DIMS], none = 0;
      memcpy(shape, g->shape, sizeof(int64_t) * g->ndim);
      shape[0] = 0;
      lg_tensor *rows = lg_empty(LG_INT64, 1, &none);
      lg_tensor *z = rows ? lg_empty(g->dtype, g->ndim, shape) : NULL;
      if (!z) {
        lg_release(rows);
        return -1;
      }
      lg_rowsparse_attach(z, rows, g->sparse_dim0);
      lg_release(rows);
      t->grad = z;
      lg_release(g);
    } else if (g->grad_fn || g->requires_grad || !lg_is_contiguous(g)) {
      /* a gradient with history is replaced by detached zeros */
      lg_tensor *z = lg_zeros(g->dtype, g->ndim, g->shape);
      if (!z)
        return -1;
      t->grad = z;
      lg_release(g);
    } else if (lg_zero_(g) < 0) {
      return -1;
    }
  }
  return 0;
}

/* ---- state ---- */

static const lg_state_spec *find_state(const lg_optim *o, const char *key) {
  if (!o->kind->state)
    return NULL;
  for (const lg_state_spec *s = o->kind->state; s->name; s++)
    if (!strcmp(s->name, key))
      return s;
  return NULL;
}

static int check_index(const lg_optim *o, int index, const char *fn) {
  if (index < 0 || index >= o->nparams) {
    lg_seterr("%s: %s has no parameter %I", fn, o->kind->name,
              (long long)index);
    return -1;
  }
  return 0;
}

int lg_optim_state_keys(const lg_optim *o, int index, const char **keys,
                        int max) {
  if (index < 0 || index >= o->nparams)
    return 0;
  if (o->kind == &lg_optim_lbfgs)
    return index == 0 ? lg_lbfgs_state_keys(o, keys, max) : 0;
  const lg_opt_param *p = &o->params[index];
  int n = 0;
  if (!p->has_state || !o->kind->state)
    return 0;
  for (const lg_state_spec *s = o->kind->state; s->name && n < max; s++) {
    if (s->slot >= LG_ST_BUF0 && !p->buf[s->slot - LG_ST_BUF0])
      continue;
    keys[n++] = s->name;
  }
  return n;
}

int lg_optim_state_get(const lg_optim *o, int index, const char *key,
                       double *num, lg_tensor **t) {
  if (check_index(o, index, "state_dict") < 0)
    return -1;
  if (o->kind == &lg_optim_lbfgs) {
    if (index == 0)
      return lg_lbfgs_state_get(o, key, num, t);
    lg_seterr("state_dict: LBFGS keeps its state on parameter 1");
    return -1;
  }
  const lg_opt_param *p = &o->params[index];
  const lg_state_spec *s = find_state(o, key);
  if (!s || !p->has_state) {
    lg_seterr("state_dict: parameter %I has no state '%s'", (long long)index,
              key);
    return -1;
  }
  switch (s->slot) {
  case LG_ST_STEP:
    *num = p->step;
    return 0;
  case LG_ST_SCAL0:
  case LG_ST_SCAL1:
    *num = p->scal[s->slot - LG_ST_SCAL0];
    return 0;
  default:
    break;
  }
  const void *b = p->buf[s->slot - LG_ST_BUF0];
  if (!b) {
    lg_seterr("state_dict: parameter %I has no state '%s'", (long long)index,
              key);
    return -1;
  }
  int64_t dims[LG_MAX_DIMS];
  int nd = lg_opt_state_shape(p->t, s->shape, dims);
  *t = lg_from_data(p->t->dtype, nd, dims, b);
  return *t ? 1 : -1;
}

int lg_optim_state_set_number(lg_optim *o, int index, const char *key,
                              double v) {
  if (check_index(o, index, "load_state_dict") < 0)
    return -1;
  if (o->kind == &lg_optim_lbfgs) {
    if (index == 0)
      return lg_lbfgs_state_set(o, key, v, NULL);
    lg_seterr("load_state_dict: LBFGS keeps its state on parameter 1");
    return -1;
  }
  lg_opt_param *p = &o->params[index];
  const lg_state_spec *s = find_state(o, key);
  if (!s || s->slot >= LG_ST_BUF0) {
    lg_seterr("load_state_dict: %s has no number '%s' in its state",
              o->kind->name, key);
    return -1;
  }
  if (s->slot == LG_ST_STEP)
    p->step = v;
  else
    p->scal[s->slot - LG_ST_SCAL0] = v;
  p->has_state = true;
  return 0;
}

int lg_optim_state_set_tensor(lg_optim *o, int index, const char *key,
                              lg_tensor *src) {
  if (check_index(o, index, "load_state_dict") < 0)
    return -1;
  if (o->kind == &lg_optim_lbfgs) {
    if (index == 0)
      return lg_lbfgs_state_set(o, key, 0, src);
    lg_seterr("load_state_dict: LBFGS keeps its state on parameter 1");
    return -1;
  }
  lg_opt_param *p = &o->params[index];
  const lg_state_spec *s = find_state(o, key);
  if (!s || s->slot < LG_ST_BUF0) {
    lg_seterr("load_state_dict: %s has no tensor '%s' in its state",
              o->kind->name, key);
    return -1;
  }
  int64_t n = lg_opt_state_numel(p->t, s->shape);
  if (lg_numel(src) != n) {
    lg_seterr("load_state_dict: state '%s' of parameter %I has %lld elements, "
              "expected %lld",
              key, (long long)index, (long long)lg_numel(src), (long long)n);
    return -1;
  }
  if (!lg_dtype_is_float(src->dtype) || !lg_is_contiguous(src)) {
    lg_seterr("load_state_dict: state '%s' of parameter %I must be a "
              "contiguous float tensor",
              key, (long long)index);
    return -1;
  }
  int k = s->slot - LG_ST_BUF0;
  void *b = lg_opt_buf(p, k, n, 0, NULL);
  if (!b)
    return -1;
  p->rows_known = false;
  const void *from = lg_data_ptr(src);
  if (src->dtype == p->t->dtype) {
    memcpy(b, from, (size_t)n * lg_dtype_size(src->dtype));
  } else {
    LG_OPT_TYPED(p->t->dtype, {
      real *x = b;
      if (src->dtype == LG_FLOAT32)
        for (int64_t i = 0; i < n; i++)
          x[i] = (real)((const float *)from)[i];
      else
        for (int64_t i = 0; i < n; i++)
          x[i] = (real)((const double *)from)[i];
    });
  }
  p->has_state = true;
  return 0;
}

void lg_optim_state_clear(lg_optim *o) {
  for (int i = 0; i < o->nparams; i++)
    free_param_state(&o->params[i]);
  lg_lbfgs_free(o);
}

/* the public shorthand: a group with the defaults and a learning rate */
int lg_optim_add_params(lg_optim *o, int n, lg_tensor **params, double lr) {
  if (!o || !params) {
    lg_seterr("lg_optim_add_params: argument %d is NULL",
              (!o) ? 1 : 3);
    return -1;
  }
  double hp[LG_HP_COUNT];
  lg_optim_defaults(o, hp);
  hp[LG_HP_LR] = lr;
  if (lg_optim_add_group(o, n, params, hp) < 0)
    return -1;
  return lg_optim_ngroups(o) - 1;
}
