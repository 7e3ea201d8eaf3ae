/*
 * optim/lbfgs.c -- limited-memory BFGS with an optional strong-Wolfe line
 * search, following the algorithm of PyTorch 1.13's torch.optim.LBFGS
 * (itself after minFunc and Torch7's optim.lbfgs / lswolfe).
 *
 * The parameters are seen as one flat float64 vector x (their gradients
 * as g).  Each step() runs up to max_iter iterations:
 *   d = -H g, with H the two-loop product over the last history_size
 *       pairs (s, y) = (x_k+1 - x_k, g_k+1 - g_k) kept when y.s > 1e-10,
 *       scaled by y.s / y.y;
 *   x += t d, with t = lr (the very first iteration: min(1, 1/|g|_1) lr),
 *       or t from the strong-Wolfe search (c1 = 1e-4, c2 = 0.9);
 * and stops on max_iter, max_eval closure calls, |g|_inf <= tolerance_grad,
 * or a change of x or of the loss below tolerance_change.
 * Scratch vectors are allocated once and kept with the state.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "optim.h"

#define WOLFE_C1 1e-4
#define WOLFE_C2 0.9
#define WOLFE_TOL 1e-9 /* PyTorch calls the search with its default */
#define WOLFE_MAX_LS 25

typedef struct {
  int64_t n;
  double func_evals, n_iter;
  bool have_d, have_prev;
  double t, H_diag, prev_loss;
  double *d, *prev_g;
  /* history: dirs (y) and stps (s), oldest first */
  int ndirs, nstps, nro, hist_cap;
  double **dirs, **stps, *ro, *al;
  double *y_spare, *s_spare;
  /* scratch */
  double *g, *g0, *g_new, *g_prev, *br_g[2];
  unsigned char *x0;
  size_t x0_bytes;
} lbfgs_state;

/* Python's max/min of two numbers, NaN handling included */
static double py_max(double a, double b) { return b > a ? b : a; }
static double py_min(double a, double b) { return b < a ? b : a; }

static double *vec_new(int64_t n) {
  double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
  if (!v)
    lg_seterr("LBFGS: out of memory");
  return v;
}

static double dot(const double *a, const double *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

static double absmax(const double *a, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++) {
    double v = fabs(a[i]);
    if (v > m || v != v)
      m = v;
  }
  return m;
}

void lg_lbfgs_free(lg_optim *o) {
  lbfgs_state *s = o->lbfgs;
  if (!s)
    return;
  for (int i = 0; i < s->ndirs; i++)
    free(s->dirs[i]);
  for (int i = 0; i < s->nstps; i++)
    free(s->stps[i]);
  free(s->dirs);
  free(s->stps);
  free(s->ro);
  free(s->al);
  double *vs[] = {s->d,  s->prev_g, s->y_spare, s->s_spare, s->g,
                  s->g0, s->g_new,  s->g_prev,  s->br_g[0], s->br_g[1]};
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
    free(vs[i]);
  free(s->x0);
  free(s);
  o->lbfgs = NULL;
}

static lbfgs_state *get_state(lg_optim *o) {
  if (o->lbfgs)
    return o->lbfgs;
  lbfgs_state *s = calloc(1, sizeof *s);
  if (!s) {
    lg_seterr("LBFGS: out of memory");
    return NULL;
  }
  o->lbfgs = s;
  s->H_diag = 1;
  for (int i = 0; i < o->nparams; i++) {
    s->n += lg_numel(o->params[i].t);
    s->x0_bytes +=
        (size_t)lg_numel(o->params[i].t) * lg_dtype_size(o->params[i].t->dtype);
  }
  double **vs[] = {&s->d,     &s->prev_g, &s->g,       &s->g0,
                   &s->g_new, &s->g_prev, &s->br_g[0], &s->br_g[1]};
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
    if (!(*vs[i] = vec_new(s->n)))
      goto fail;
  if (!(s->x0 = malloc(s->x0_bytes ? s->x0_bytes : 1))) {
    lg_seterr("LBFGS: out of memory");
    goto fail;
  }
  return s;
fail:
  lg_lbfgs_free(o);
  return NULL;
}

/* grows the history arrays to hold cap pairs */
static int hist_reserve(lbfgs_state *s, int cap) {
  if (cap <= s->hist_cap)
    return 0;
  double **d = realloc(s->dirs, (size_t)cap * sizeof *d);
  if (d)
    s->dirs = d;
  double **p = realloc(s->stps, (size_t)cap * sizeof *p);
  if (p)
    s->stps = p;
  double *r = realloc(s->ro, (size_t)cap * sizeof *r);
  if (r)
    s->ro = r;
  double *a = realloc(s->al, (size_t)cap * sizeof *a);
  if (a)
    s->al = a;
  if (!d || !p || !r || !a) {
    lg_seterr("LBFGS: out of memory");
    return -1;
  }
  s->hist_cap = cap;
  return 0;
}

/* ---- the flat view of the parameters ---- */

static int gather_grad(lg_optim *o, double *out) {
  int64_t off = 0;
  for (int i = 0; i < o->nparams; i++) {
    lg_tensor *p = o->params[i].t, *g = p->grad;
    int64_t n = lg_numel(p);
    if (!g) {
      memset(out + off, 0, (size_t)n * sizeof *out);
    } else {
      if (g->dtype != p->dtype || lg_numel(g) != n || !lg_is_contiguous(g)) {
        lg_seterr("LBFGS.step: the gradient of parameter %I does not match the "
                  "parameter (dtype, size) or is not contiguous",
                  (long long)i);
        return -1;
      }
      LG_OPT_TYPED(g->dtype, {
        const real *x = lg_data_ptr(g);
        for (int64_t k = 0; k < n; k++)
          out[off + k] = x[k];
      });
    }
    off += n;
  }
  return 0;
}

/* x += t d */
static void add_dir(lg_optim *o, double t, const double *d) {
  int64_t off = 0;
  for (int i = 0; i < o->nparams; i++) {
    lg_tensor *p = o->params[i].t;
    int64_t n = lg_numel(p);
    LG_OPT_TYPED(p->dtype, {
      real *x = lg_data_ptr(p);
      for (int64_t k = 0; k < n; k++)
        x[k] = (real)(x[k] + t * d[off + k]);
    });
    lg_bump_version(p);
    off += n;
  }
}

static void save_params(lg_optim *o, unsigned char *to) {
  for (int i = 0; i < o->nparams; i++) {
    lg_tensor *p = o->params[i].t;
    size_t nb = (size_t)lg_numel(p) * lg_dtype_size(p->dtype);
    memcpy(to, lg_data_ptr(p), nb);
    to += nb;
  }
}

static void restore_params(lg_optim *o, const unsigned char *from) {
  for (int i = 0; i < o->nparams; i++) {
    lg_tensor *p = o->params[i].t;
    size_t nb = (size_t)lg_numel(p) * lg_dtype_size(p->dtype);
    memcpy(lg_data_ptr(p), from, nb);
    lg_bump_version(p);
    from += nb;
  }
}

typedef struct {
  lg_optim *o;
  lbfgs_state *s;
  lg_closure_fn closure;
  void *ctx;
} lbfgs_run;

static int eval_closure(lbfgs_run *r, double *loss) {
  bool prev = lg_set_grad_enabled(true);
  int rc = r->closure(r->ctx, loss);
  lg_set_grad_enabled(prev);
  return rc;
}

/* loss and gradient (into g_out) at x0 + t d; the parameters end at x0 */
static int eval_at(lbfgs_run *r, double t, const double *d, double *loss,
                   double *g_out) {
  add_dir(r->o, t, d);
  int rc = eval_closure(r, loss);
  if (rc == 0)
    rc = gather_grad(r->o, g_out);
  restore_params(r->o, r->s->x0);
  return rc;
}

/* ---- line search ---- */

/* minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped
 * to the bounds (by default the interval between the points) */
static double cubic_min(double x1, double f1, double g1, double x2, double f2,
                        double g2, const double *bounds) {
  double lo, hi;
  if (bounds) {
    lo = bounds[0];
    hi = bounds[1];
  } else if (x1 <= x2) {
    lo = x1;
    hi = x2;
  } else {
    lo = x2;
    hi = x1;
  }
  double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
  double d2sq = d1 * d1 - g1 * g2;
  if (!(d2sq >= 0))
    return (lo + hi) / 2.;
  double d2 = sqrt(d2sq), at;
  if (x1 <= x2)
    at = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2));
  else
    at = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
  return py_min(py_max(at, lo), hi);
}

/* Finds t along d from x0 (loss f, gradient g, slope gtd) satisfying the
 * strong Wolfe conditions: first brackets an interval, then shrinks it by
 * cubic interpolation.  Returns the loss, gradient (into s->g) and step of
 * the best point and the number of closure calls. */
static int strong_wolfe(lbfgs_run *r, double *t_io, const double *d,
                        double *f_io, double gtd, int *evals) {
  lbfgs_state *s = r->s;
  int64_t n = s->n;
  size_t vb = (size_t)n * sizeof(double);
  double f = *f_io, t = *t_io;
  double d_norm = absmax(d, n);
  memcpy(s->g0, s->g, vb);
  double f_new;
  if (eval_at(r, t, d, &f_new, s->g_new) < 0)
    return -1;
  *evals = 1;
  double gtd_new = dot(s->g_new, d, n);

  double t_prev = 0, f_prev = f, gtd_prev = gtd;
  memcpy(s->g_prev, s->g0, vb);
  bool done = false;
  int ls_iter = 0, nb = 0;
  double br[2] = {0, 0}, br_f[2] = {0, 0}, br_gtd[2] = {0, 0};
  while (ls_iter < WOLFE_MAX_LS) {
    bool armijo_fail =
        f_new > f + WOLFE_C1 * t * gtd || (ls_iter > 1 && f_new >= f_prev);
    if (!armijo_fail && fabs(gtd_new) <= -WOLFE_C2 * gtd) {
      /* both conditions hold at t */
      nb = 1;
      br[0] = t;
      br_f[0] = f_new;
      memcpy(s->br_g[0], s->g_new, vb);
      done = true;
      break;
    }
    if (armijo_fail || gtd_new >= 0) {
      /* the minimum lies between t_prev and t */
      nb = 2;
      br[0] = t_prev;
      br[1] = t;
      br_f[0] = f_prev;
      br_f[1] = f_new;
      br_gtd[0] = gtd_prev;
      br_gtd[1] = gtd_new;
      memcpy(s->br_g[0], s->g_prev, vb);
      memcpy(s->br_g[1], s->g_new, vb);
      break;
    }
    /* extrapolate */
    double bounds[2] = {t + 0.01 * (t - t_prev), t * 10};
    double t_old = t;
    t = cubic_min(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds);
    t_prev = t_old;
    f_prev = f_new;
    memcpy(s->g_prev, s->g_new, vb);
    gtd_prev = gtd_new;
    if (eval_at(r, t, d, &f_new, s->g_new) < 0)
      return -1;
    (*evals)++;
    gtd_new = dot(s->g_new, d, n);
    ls_iter++;
  }
  if (ls_iter == WOLFE_MAX_LS) {
    nb = 2;
    br[0] = 0;
    br[1] = t;
    br_f[0] = f;
    br_f[1] = f_new;
    memcpy(s->br_g[0], s->g0, vb);
    memcpy(s->br_g[1], s->g_new, vb);
  }

  /* zoom: shrink the bracket [br[0], br[1]] */
  bool insuf = false;
  int lo = br_f[0] <= br_f[nb - 1] ? 0 : 1, hi = 1 - lo;
  while (!done && ls_iter < WOLFE_MAX_LS) {
    if (fabs(br[1] - br[0]) * d_norm < WOLFE_TOL)
      break;
    t = cubic_min(br[0], br_f[0], br_gtd[0], br[1], br_f[1], br_gtd[1], NULL);
    double bmax = py_max(br[0], br[1]), bmin = py_min(br[0], br[1]);
    double eps = 0.1 * (bmax - bmin);
    if (py_min(bmax - t, t - bmin) < eps) {
      /* too close to an end: move inside unless it is the first time */
      if (insuf || t >= bmax || t <= bmin) {
        t = fabs(t - bmax) < fabs(t - bmin) ? bmax - eps : bmin + eps;
        insuf = false;
      } else {
        insuf = true;
      }
    } else {
      insuf = false;
    }
    if (eval_at(r, t, d, &f_new, s->g_new) < 0)
      return -1;
    (*evals)++;
    gtd_new = dot(s->g_new, d, n);
    ls_iter++;
    if (f_new > f + WOLFE_C1 * t * gtd || f_new >= br_f[lo]) {
      br[hi] = t;
      br_f[hi] = f_new;
      memcpy(s->br_g[hi], s->g_new, vb);
      br_gtd[hi] = gtd_new;
      lo = br_f[0] <= br_f[1] ? 0 : 1;
      hi = 1 - lo;
    } else {
      if (fabs(gtd_new) <= -WOLFE_C2 * gtd) {
        done = true;
      } else if (gtd_new * (br[hi] - br[lo]) >= 0) {
        br[hi] = br[lo];
        br_f[hi] = br_f[lo];
        memcpy(s->br_g[hi], s->br_g[lo], vb);
        br_gtd[hi] = br_gtd[lo];
      }
      br[lo] = t;
      br_f[lo] = f_new;
      memcpy(s->br_g[lo], s->g_new, vb);
      br_gtd[lo] = gtd_new;
    }
  }
  *t_io = br[lo];
  *f_io = br_f[lo];
  memcpy(s->g, s->br_g[lo], vb);
  return 0;
}

/* ---- the step ---- */

/* the two-loop recursion: d = -H g */
static void two_loop(lbfgs_state *s) {
  int64_t n = s->n;
  int k = s->ndirs;
  double *q = s->d;
  for (int64_t i = 0; i < n; i++)
    q[i] = -s->g[i];
  for (int i = k - 1; i >= 0; i--) {
    s->al[i] = dot(s->stps[i], q, n) * s->ro[i];
    for (int64_t j = 0; j < n; j++)
      q[j] += -s->al[i] * s->dirs[i][j];
  }
  for (int64_t j = 0; j < n; j++)
    q[j] = q[j] * s->H_diag;
  for (int i = 0; i < k; i++) {
    double be = dot(s->dirs[i], q, n) * s->ro[i];
    for (int64_t j = 0; j < n; j++)
      q[j] += (s->al[i] - be) * s->stps[i][j];
  }
}

/* stores the pair (y, s) = (g - prev_g, t d) when y.s > 1e-10 */
static int update_memory(lbfgs_state *s, int history) {
  int64_t n = s->n;
  if (!s->y_spare && !(s->y_spare = vec_new(n)))
    return -1;
  if (!s->s_spare && !(s->s_spare = vec_new(n)))
    return -1;
  double *y = s->y_spare, *st = s->s_spare;
  for (int64_t i = 0; i < n; i++) {
    y[i] = s->g[i] - s->prev_g[i];
    st[i] = s->d[i] * s->t;
  }
  double ys = dot(y, st, n);
  if (ys > 1e-10) {
    if (s->ndirs == history) {
      /* drop the oldest pair; its vectors become the spares */
      s->y_spare = s->dirs[0];
      s->s_spare = s->stps[0];
      memmove(s->dirs, s->dirs + 1, (size_t)(s->ndirs - 1) * sizeof *s->dirs);
      memmove(s->stps, s->stps + 1, (size_t)(s->nstps - 1) * sizeof *s->stps);
      memmove(s->ro, s->ro + 1, (size_t)(s->nro - 1) * sizeof *s->ro);
      s->ndirs--;
      s->nstps--;
      s->nro--;
    } else {
      s->y_spare = s->s_spare = NULL;
      if (hist_reserve(s, s->ndirs + 1) < 0) {
        s->y_spare = y;
        s->s_spare = st;
        return -1;
      }
    }
    s->dirs[s->ndirs++] = y;
    s->stps[s->nstps++] = st;
    s->ro[s->nro++] = 1. / ys;
    s->H_diag = ys / dot(y, y, n);
  }
  return 0;
}

static int lbfgs_step(lg_optim *o, lg_closure_fn closure, void *ctx,
                      double *ret_loss) {
  const double *hp = o->groups[0].hp;
  double lr = hp[LG_HP_LR], tol_grad = hp[LG_HP_TOL_GRAD];
  double tol_change = hp[LG_HP_TOL_CHANGE];
  int max_iter = (int)hp[LG_HP_MAX_ITER];
  double max_eval = hp[LG_HP_MAX_EVAL];
  int history = (int)hp[LG_HP_HISTORY];
  bool wolfe = hp[LG_HP_LINE_SEARCH] == 0;
  if (isnan(max_eval))
    max_eval = floor(max_iter * 5.0 / 4.0);
  lbfgs_state *s = get_state(o);
  if (!s)
    return -1;
  if (s->ndirs != s->nstps || s->ndirs != s->nro) {
    lg_seterr("LBFGS.step: the loaded state has %d old_dirs, %d old_stps "
              "and %d ro",
              s->ndirs, s->nstps, s->nro);
    return -1;
  }
  if (hist_reserve(s, s->ndirs > 1 ? s->ndirs : 1) < 0)
    return -1;
  lbfgs_run r = {o, s, closure, ctx};
  int64_t n = s->n;
  size_t vb = (size_t)n * sizeof(double);

  double loss;
  if (eval_closure(&r, &loss) < 0)
    return -1;
  *ret_loss = loss;
  int current_evals = 1;
  s->func_evals += 1;
  if (gather_grad(o, s->g) < 0)
    return -1;
  bool opt_cond = absmax(s->g, n) <= tol_grad;
  if (opt_cond)
    return 0;

  int n_iter = 0;
  while (n_iter < max_iter) {
    if (lg_cancel_check() < 0)
      return -1; /* interrupted by the host: the state stays consistent */
    n_iter++;
    s->n_iter++;
    /* direction */
    if (s->n_iter == 1) {
      for (int64_t i = 0; i < n; i++)
        s->d[i] = -s->g[i];
      for (int i = 0; i < s->ndirs; i++) {
        free(s->dirs[i]);
        free(s->stps[i]);
      }
      s->ndirs = s->nstps = s->nro = 0;
      s->H_diag = 1;
    } else {
      if (!s->have_d || !s->have_prev) {
        lg_seterr("LBFGS.step: the state lacks 'd' or 'prev_flat_grad'");
        return -1;
      }
      if (update_memory(s, history) < 0)
        return -1;
      two_loop(s);
    }
    s->have_d = true;
    memcpy(s->prev_g, s->g, vb);
    s->have_prev = true;
    s->prev_loss = loss;

    /* step length */
    if (s->n_iter == 1) {
      double l1 = 0;
      for (int64_t i = 0; i < n; i++)
        l1 += fabs(s->g[i]);
      s->t = py_min(1., 1. / l1) * lr;
    } else {
      s->t = lr;
    }
    double gtd = dot(s->g, s->d, n);
    if (gtd > -tol_change)
      break;

    int ls_evals = 0;
    if (wolfe) {
      save_params(o, s->x0);
      if (strong_wolfe(&r, &s->t, s->d, &loss, gtd, &ls_evals) < 0)
        return -1;
      add_dir(o, s->t, s->d);
      opt_cond = absmax(s->g, n) <= tol_grad;
    } else {
      add_dir(o, s->t, s->d);
      if (n_iter != max_iter) {
        if (eval_closure(&r, &loss) < 0 || gather_grad(o, s->g) < 0)
          return -1;
        opt_cond = absmax(s->g, n) <= tol_grad;
        ls_evals = 1;
      }
    }
    current_evals += ls_evals;
    s->func_evals += ls_evals;

    /* stopping tests */
    if (n_iter == max_iter)
      break;
    if (current_evals >= max_eval)
      break;
    if (opt_cond)
      break;
    double dmax = 0;
    for (int64_t i = 0; i < n; i++) {
      double v = fabs(s->d[i] * s->t);
      if (v > dmax || v != v)
        dmax = v;
    }
    if (dmax <= tol_change)
      break;
    if (fabs(loss - s->prev_loss) < tol_change)
      break;
  }
  return 0;
}

/* ---- state entries ---- */

int lg_lbfgs_state_keys(const lg_optim *o, const char **keys, int max) {
  const lbfgs_state *s = o->lbfgs;
  int n = 0;
  if (!s)
    return 0;
#define KEY(name)                                                              \
  do {                                                                         \
    if (n < max)                                                               \
      keys[n++] = name;                                                        \
  } while (0)
  KEY("func_evals");
  KEY("n_iter");
  if (s->have_d) {
    KEY("d");
    KEY("t");
    KEY("H_diag");
  }
  if (s->ndirs)
    KEY("old_dirs");
  if (s->nstps)
    KEY("old_stps");
  if (s->nro)
    KEY("ro");
  if (s->have_prev) {
    KEY("prev_flat_grad");
    KEY("prev_loss");
  }
#undef KEY
  return n;
}

static lg_tensor *rows_tensor(double *const *rows, int k, int64_t n) {
  lg_tensor *t = lg_empty(LG_FLOAT64, 2, (int64_t[]){k, n});
  if (!t)
    return NULL;
  double *to = lg_data_ptr(t);
  for (int i = 0; i < k; i++)
    memcpy(to + (int64_t)i * n, rows[i], (size_t)n * sizeof(double));
  return t;
}

int lg_lbfgs_state_get(const lg_optim *o, const char *key, double *num,
                       lg_tensor **t) {
  const lbfgs_state *s = o->lbfgs;
  if (!s)
    goto missing;
  if (!strcmp(key, "func_evals")) {
    *num = s->func_evals;
    return 0;
  }
  if (!strcmp(key, "n_iter")) {
    *num = s->n_iter;
    return 0;
  }
  if (s->have_d && !strcmp(key, "t")) {
    *num = s->t;
    return 0;
  }
  if (s->have_d && !strcmp(key, "H_diag")) {
    *num = s->H_diag;
    return 0;
  }
  if (s->have_prev && !strcmp(key, "prev_loss")) {
    *num = s->prev_loss;
    return 0;
  }
  if (s->have_d && !strcmp(key, "d"))
    *t = lg_from_data(LG_FLOAT64, 1, &s->n, s->d);
  else if (s->have_prev && !strcmp(key, "prev_flat_grad"))
    *t = lg_from_data(LG_FLOAT64, 1, &s->n, s->prev_g);
  else if (s->ndirs && !strcmp(key, "old_dirs"))
    *t = rows_tensor(s->dirs, s->ndirs, s->n);
  else if (s->nstps && !strcmp(key, "old_stps"))
    *t = rows_tensor(s->stps, s->nstps, s->n);
  else if (s->nro && !strcmp(key, "ro"))
    *t = lg_from_data(LG_FLOAT64, 1, (int64_t[]){s->nro}, s->ro);
  else
    goto missing;
  return *t ? 1 : -1;
missing:
  lg_seterr("state_dict: LBFGS has no state '%s'", key);
  return -1;
}

/* copies a float tensor of count elements into to (as float64) */
static int load_vec(const char *key, lg_tensor *src, int64_t count,
                    double *to) {
  if (!src || lg_numel(src) != count || !lg_dtype_is_float(src->dtype) ||
      !lg_is_contiguous(src)) {
    lg_seterr("load_state_dict: LBFGS state '%s' must be a contiguous float "
              "tensor of %lld elements",
              key, (long long)count);
    return -1;
  }
  const void *p = lg_data_ptr(src);
  for (int64_t i = 0; i < count; i++)
    to[i] = src->dtype == LG_FLOAT64 ? ((const double *)p)[i]
                                     : ((const float *)p)[i];
  return 0;
}

/* replaces a list of history vectors by the rows of src (k x n) */
static int load_rows(lbfgs_state *s, const char *key, lg_tensor *src,
                     double ***rows, int *count) {
  if (!src || src->ndim != 2 || src->shape[1] != s->n) {
    lg_seterr("load_state_dict: LBFGS state '%s' must be a (k, %lld) "
              "tensor",
              key, (long long)s->n);
    return -1;
  }
  int k = (int)src->shape[0];
  if (hist_reserve(s, k) < 0)
    return -1;
  for (int i = 0; i < *count; i++)
    free((*rows)[i]);
  *count = 0;
  for (int i = 0; i < k; i++) {
    double *v = vec_new(s->n);
    if (!v)
      return -1;
    (*rows)[(*count)++] = v;
  }
  lg_tensor *flat = lg_reshape(src, 1, (int64_t[]){k * s->n});
  if (!flat)
    return -1;
  int rc = 0;
  const void *p = lg_data_ptr(flat);
  if (!lg_dtype_is_float(flat->dtype) || !lg_is_contiguous(flat)) {
    lg_seterr("load_state_dict: LBFGS state '%s' must be a contiguous float "
              "tensor",
              key);
    rc = -1;
  }
  for (int i = 0; rc == 0 && i < k; i++)
    for (int64_t j = 0; j < s->n; j++) {
      int64_t at = (int64_t)i * s->n + j;
      (*rows)[i][j] = flat->dtype == LG_FLOAT64 ? ((const double *)p)[at]
                                                : ((const float *)p)[at];
    }
  lg_release(flat);
  return rc;
}

int lg_lbfgs_state_set(lg_optim *o, const char *key, double num, lg_tensor *t) {
  lbfgs_state *s = get_state(o);
  if (!s)
    return -1;
  if (!strcmp(key, "func_evals"))
    s->func_evals = num;
  else if (!strcmp(key, "n_iter"))
    s->n_iter = num;
  else if (!strcmp(key, "t"))
    s->t = num;
  else if (!strcmp(key, "H_diag"))
    s->H_diag = num;
  else if (!strcmp(key, "prev_loss"))
    s->prev_loss = num;
  else if (!strcmp(key, "d")) {
    if (load_vec(key, t, s->n, s->d) < 0)
      return -1;
    s->have_d = true;
  } else if (!strcmp(key, "prev_flat_grad")) {
    if (load_vec(key, t, s->n, s->prev_g) < 0)
      return -1;
    s->have_prev = true;
  } else if (!strcmp(key, "old_dirs")) {
    return load_rows(s, key, t, &s->dirs, &s->ndirs);
  } else if (!strcmp(key, "old_stps")) {
    return load_rows(s, key, t, &s->stps, &s->nstps);
  } else if (!strcmp(key, "ro")) {
    int64_t k = t ? lg_numel(t) : 0;
    if (hist_reserve(s, (int)k) < 0 || load_vec(key, t, k, s->ro) < 0)
      return -1;
    s->nro = (int)k;
  } else {
    lg_seterr("load_state_dict: LBFGS has no state '%s'", key);
    return -1;
  }
  return 0;
}

/* ---- options ---- */

static const char *const line_searches[] = {"strong_wolfe", NULL};

static int lbfgs_check(const lg_optim *o, double *hp) {
  if (isnan(hp[LG_HP_MAX_EVAL]) && !isnan(hp[LG_HP_MAX_ITER]))
    hp[LG_HP_MAX_EVAL] = floor(hp[LG_HP_MAX_ITER] * 5.0 / 4.0);
  return 0;
}

#define LG_OPT_COUNT(nm, slot, d, fl)                                          \
  {                                                                            \
    .name = (nm), .id = (slot), .n = 1, .type = LG_HPT_INT, .flags = (fl),     \
    .def = {(d)}, .lo = {1}, .hi = {                                           \
      INFINITY                                                                 \
    }                                                                          \
  }

static const lg_hp_spec lbfgs_specs[] = {
    LG_OPT_LR(1),
    LG_OPT_COUNT("max_iter", LG_HP_MAX_ITER, 20, 0),
    LG_OPT_COUNT("max_eval", LG_HP_MAX_EVAL, NAN, LG_HPF_NILOK),
    LG_OPT_NUM("tolerance_grad", LG_HP_TOL_GRAD, 1e-7, LG_R_ANY),
    LG_OPT_NUM("tolerance_change", LG_HP_TOL_CHANGE, 1e-9, LG_R_ANY),
    LG_OPT_COUNT("history_size", LG_HP_HISTORY, 100, 0),
    {.name = "line_search",
     .id = LG_HP_LINE_SEARCH,
     .n = 1,
     .type = LG_HPT_ENUM,
     .flags = LG_HPF_NILOK,
     .def = {NAN},
     LG_R_ANY,
     .choices = line_searches,
     .alias = "line_search_fn"},
    LG_OPT_END};

const lg_optim_kind lg_optim_lbfgs = {.name = "LBFGS",
                                      .specs = lbfgs_specs,
                                      .check_group = lbfgs_check,
                                      .step = lbfgs_step,
                                      .needs_closure = true};
