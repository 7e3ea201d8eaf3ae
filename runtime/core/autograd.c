/*
 * autograd.c -- the reverse-mode engine: recording nodes, saved tensors
 * with version checks, and backward over an iterative topological order.
 *
 * A node is owned by its output tensor (grad_fn) and by the edges of the
 * nodes downstream of it.  Releasing a node is iterative so that a graph
 * with a million steps cannot overflow the C stack.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "anomaly.h"
#include "internal.h"

static LG_THREAD bool grad_disabled;
static LG_THREAD bool anomaly;
/* nonzero while a node's backward runs: the ops it is written with do not
 * report anomalies as forward ones; the engine names the node instead */
static LG_THREAD int in_backward;

bool lg_grad_enabled(void) { return !grad_disabled; }
bool lg_set_grad_enabled(bool on) {
  bool was = !grad_disabled;
  grad_disabled = !on;
  return was;
}
int lg_anomaly_threads;

void lg_set_anomaly_detection(bool on) {
  if (on == anomaly)
    return;
  anomaly = on;
  __atomic_add_fetch(&lg_anomaly_threads, on ? 1 : -1, __ATOMIC_RELAXED);
}
bool lg_anomaly_detection(void) { return anomaly; }
bool lg_anomaly_forward(void) { return anomaly && !in_backward; }

int lg_set_requires_grad(lg_tensor *t, bool on) {
  if (!t) {
    lg_seterr("requires_grad_: argument 1 is NULL");
    return -1;
  }
  if (on && !lg_dtype_is_float(t->dtype)) {
    lg_seterr("requires_grad_: only floating-point tensors can require "
              "gradients, not %s",
              lg_dtype_name(t->dtype));
    return -1;
  }
  t->requires_grad = on;
  return 0;
}

bool lg_is_leaf(const lg_tensor *t) { return t->grad_fn == NULL; }

const char *lg_grad_fn_name(const lg_tensor *t) {
  return t->grad_fn ? t->grad_fn->name : NULL;
}

bool lg_any_requires_grad(int n, lg_tensor **ts) {
  if (grad_disabled)
    return false;
  for (int i = 0; i < n; i++)
    if (ts[i] && ts[i]->requires_grad)
      return true;
  return false;
}

/* ---- node pool ---- */

static LG_THREAD lg_node *free_nodes;
static LG_THREAD int nfree_nodes;

static lg_node *node_alloc(void) {
  lg_node *n = free_nodes;
  if (n) {
    free_nodes = n->topo_next;
    nfree_nodes--;
  } else if (!(n = malloc(sizeof *n))) {
    lg_seterr("out of memory");
    return NULL;
  }
  /* zero what ops and the engine read; edges and saved slots are
   * written before they are read */
  memset(&n->state, 0, sizeof n->state);
  n->refcount = 1;
  n->name = NULL;
  n->backward = NULL;
  n->ninputs = 0;
  n->edges = NULL;
  n->needs_grad = NULL;
  n->nsaved = 0;
  n->saved_cap = LG_NODE_INLINE;
  n->saved = n->saved_inline;
  n->saved_version = n->saved_version_inline;
  n->released = false;
  n->ninput_shape = 0;
  n->input_dtype = LG_FLOAT32;
  n->retained_out = NULL;
  n->ctx = NULL;
  n->ctx_free = NULL;
  n->deps = 0;
  n->grad_accum = NULL;
  n->topo_next = NULL;
  return n;
}

static void node_free_saved(lg_node *n) {
  for (int i = 0; i < n->nsaved; i++) {
    lg_release(n->saved[i]);
    n->saved[i] = NULL;
  }
  if (n->ctx_free && n->ctx) {
    n->ctx_free(n->ctx);
    n->ctx = NULL;
  }
  n->released = true;
}

void lg_node_release(lg_node *n) {
  /* iterative: nodes whose count drops to zero go on a pending chain */
  lg_node *pending = NULL;
  if (!n || --n->refcount > 0)
    return;
  n->topo_next = NULL;
  pending = n;
  while (pending) {
    lg_node *cur = pending;
    pending = cur->topo_next;
    node_free_saved(cur);
    lg_release(cur->grad_accum);
    for (int i = 0; i < cur->ninputs; i++) {
      lg_edge *e = &cur->edges[i];
      if (e->leaf)
        lg_release(e->leaf);
      if (e->fn && --e->fn->refcount == 0) {
        e->fn->topo_next = pending;
        pending = e->fn;
      }
    }
    if (cur->edges != cur->edges_inline) {
      free(cur->edges);
      free(cur->needs_grad);
    }
    if (cur->saved != cur->saved_inline) {
      free(cur->saved);
      free(cur->saved_version);
    }
    if (nfree_nodes < 4096) {
      cur->topo_next = free_nodes;
      free_nodes = cur;
      nfree_nodes++;
    } else {
      free(cur);
    }
  }
}

lg_node *lg_record(lg_tensor *out, const char *name, lg_backward_fn bw,
                   int n, lg_tensor **inputs) {
  if (!lg_any_requires_grad(n, inputs))
    return NULL;
  lg_node *node = node_alloc();
  if (!node)
    return NULL; /* the op still succeeds, without a graph */
  node->name = name;
  node->backward = bw;
  node->ninputs = n;
  if (n <= LG_NODE_INLINE) {
    node->edges = node->edges_inline;
    node->needs_grad = node->needs_grad_inline;
  } else {
    node->edges = calloc(n, sizeof *node->edges);
    node->needs_grad = calloc(n, sizeof *node->needs_grad);
    if (!node->edges || !node->needs_grad) {
      free(node->edges);
      free(node->needs_grad);
      node->edges = node->edges_inline;
      node->needs_grad = node->needs_grad_inline;
      node->ninputs = 0;
      lg_node_release(node);
      return NULL;
    }
  }
  for (int i = 0; i < n; i++) {
    lg_tensor *t = inputs[i];
    node->edges[i].fn = NULL;
    node->edges[i].leaf = NULL;
    node->needs_grad[i] = false;
    if (!t || !t->requires_grad)
      continue;
    node->needs_grad[i] = true;
    if (t->grad_fn) {
      node->edges[i].fn = t->grad_fn;
      t->grad_fn->refcount++;
    } else {
      node->edges[i].leaf = lg_retain(t);
    }
  }
  out->requires_grad = true;
  out->grad_fn = node;
  out->grad_fn_weak = false;
  return node;
}

int lg_node_save(lg_node *node, lg_tensor *t) {
  if (node->nsaved == node->saved_cap) { /* spill out of the node */
    int cap = node->saved_cap * 2;
    lg_tensor **sv = malloc(cap * sizeof *sv);
    uint64_t *ver = malloc(cap * sizeof *ver);
    if (!sv || !ver) {
      free(sv);
      free(ver);
      lg_seterr("%s: out of memory saving tensors", node->name);
      return -1;
    }
    memcpy(sv, node->saved, node->nsaved * sizeof *sv);
    memcpy(ver, node->saved_version, node->nsaved * sizeof *ver);
    if (node->saved != node->saved_inline) {
      free(node->saved);
      free(node->saved_version);
    }
    node->saved = sv;
    node->saved_version = ver;
    node->saved_cap = cap;
  }
  lg_tensor *s;
  if (t->grad_fn == node) {
    /* the node's own output: keep a header that does not own the node */
    s = lg_make_view(t, t->ndim, t->shape, t->strides, t->offset);
    if (!s)
      return -1;
    s->requires_grad = true;
    s->grad_fn = node;
    s->grad_fn_weak = true;
  } else {
    s = lg_retain(t);
  }
  node->saved_version[node->nsaved] = t->storage->version;
  node->saved[node->nsaved++] = s;
  return 0;
}

lg_tensor *lg_node_saved(lg_node *node, int i) {
  if (node->released || i >= node->nsaved || !node->saved[i]) {
    lg_seterr("backward through %s a second time: its saved tensors were "
              "freed (pass retain_graph = true to the first backward)",
              node->name);
    return NULL;
  }
  lg_tensor *t = node->saved[i];
  if (t->storage->version != node->saved_version[i]) {
    lg_seterr("backward: a tensor saved by %s was modified in place "
              "after it was used (version %llu, expected %llu)",
              node->name, (unsigned long long)t->storage->version,
              (unsigned long long)node->saved_version[i]);
    return NULL;
  }
  return t;
}

void lg_shape_of(lg_shape *s, const lg_tensor *t) {
  s->ndim = t->ndim;
  for (int i = 0; i < t->ndim; i++)
    s->dim[i] = t->shape[i];
}

void lg_node_set_shapes2(lg_node *n, const lg_tensor *a, const lg_tensor *b) {
  lg_shape_of(&LG_BCAST(n)->a, a);
  lg_shape_of(&LG_BCAST(n)->b, b);
}

lg_tensor *lg_grad_reduce_to(lg_tensor *g, const lg_shape *s) {
  bool same = s->ndim == g->ndim;
  for (int i = 0; same && i < s->ndim; i++)
    same = g->shape[i] == s->dim[i];
  if (same)
    return lg_retain(g);
  return lg_sum_to(g, s->ndim, s->dim);
}

/* ---- backward functions that are not differentiable again ---- */

static int twice_backward(lg_node *node, lg_tensor *grad_out,
                          lg_tensor **grads) {
  lg_seterr("%s: differentiating a gradient of this op again (double "
            "backward) is not supported",
            node->name);
  return -1;
}

void lg_mark_once(lg_node *node, const char *name, lg_tensor *grad_out,
                  lg_tensor **grads) {
  if (!lg_grad_enabled())
    return;
  lg_tensor *in[node->nsaved + 1];
  int n = 0;
  in[n++] = grad_out;
  for (int i = 0; i < node->nsaved; i++)
    if (node->saved[i])
      in[n++] = node->saved[i];
  for (int i = 0; i < node->ninputs; i++)
    if (grads[i] && !grads[i]->grad_fn)
      lg_record(grads[i], name, twice_backward, n, in);
}

int lg_accumulate(lg_tensor **acc, lg_tensor *g) {
  if (lg_is_row_sparse(g)) {
    /* only a leaf's .grad stays sparse; anything else sees it dense */
    lg_tensor *d = lg_rowsparse_to_dense(g);
    int rc = d ? lg_accumulate(acc, d) : -1;
    lg_release(d);
    return rc;
  }
  if (!*acc) {
    *acc = lg_retain(g);
    return 0;
  }
  lg_tensor *s = lg_binary(LG_OP_ADD, *acc, g);
  if (!s)
    return -1;
  lg_release(*acc);
  *acc = s;
  return 0;
}

#define NONFINITE_LOOP(T)                                                     \
  do {                                                                        \
    const T *p = (const T *)t->storage->data + t->offset + it.offs[0];       \
    for (int64_t i = 0; i < n; i++) {                                         \
      T v = p[i * s];                                                         \
      if (!isfinite(v))                                                       \
        found |= isnan(v) ? LG_HAS_NAN : LG_HAS_INF;                          \
    }                                                                         \
  } while (0)

int lg_nonfinite(const lg_tensor *t) {
  if (!lg_dtype_is_float(t->dtype))
    return 0;
  /* each stored element once: broadcast dims (stride 0) are dropped */
  int nd = 0;
  int64_t shape[LG_MAX_DIMS], strides[LG_MAX_DIMS];
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] == 0)
      return 0;
    if (t->strides[d] == 0)
      continue;
    shape[nd] = t->shape[d];
    strides[nd++] = t->strides[d];
  }
  const int64_t *st = strides;
  lg_iter it;
  lg_iter_init(&it, nd, shape, 1, &st);
  int64_t n = lg_iter_inner(&it), s = lg_iter_istride(&it, 0);
  int found = 0;
  if (it.remaining <= 0)
    return 0;
  do {
    if (t->dtype == LG_FLOAT32)
      NONFINITE_LOOP(float);
    else
      NONFINITE_LOOP(double);
  } while (found != (LG_HAS_NAN | LG_HAS_INF) && lg_iter_next(&it));
  return found;
}

int lg_anomaly_check(const char *opname, lg_tensor *t, bool backward) {
  if (!anomaly || (!backward && in_backward))
    return 0;
  int found = lg_nonfinite(t);
  if (found) {
    lg_seterr("anomaly: %s %s produced %s", opname,
              backward ? "backward" : "forward",
              found & LG_HAS_NAN ? "NaN" : "Inf");
    return -1;
  }
  return 0;
}

/* ---- one-element tensors ----
 * The seed gradient of a scalar loss and the copy a leaf keeps of its
 * first gradient are one element each: made straight from the header and
 * storage pools, without lg_full's and lg_clone's general paths. */

static bool tiny_float(const lg_tensor *t) {
  return lg_dtype_is_float(t->dtype) && lg_is_tiny(t);
}

/* a contiguous tensor of t's shape and dtype holding v (t: tiny_float) */
static lg_tensor *tiny_full(const lg_tensor *t, double v) {
  lg_tensor *o = lg_tiny_like(t, t->dtype);
  if (!o)
    return NULL;
  if (t->dtype == LG_FLOAT32)
    *(float *)o->storage->data = (float)v;
  else
    *(double *)o->storage->data = v;
  return o;
}

/* ---- leaf accumulation ---- */

static int accumulate_leaf(lg_tensor *leaf, lg_tensor *g, bool create_graph) {
  if (lg_is_row_sparse(g) || lg_is_row_sparse(leaf->grad)) {
    if (!create_graph && (lg_is_row_sparse(g) || lg_same_shape(g, leaf)))
      return lg_grad_accumulate(&leaf->grad, g);
    /* a differentiable .grad, or a dense g to reduce first: go dense */
    lg_tensor *d = lg_is_row_sparse(g) ? lg_rowsparse_to_dense(g) : NULL;
    if (lg_is_row_sparse(leaf->grad)) {
      lg_tensor *old = leaf->grad;
      leaf->grad = lg_rowsparse_to_dense(old);
      lg_release(old);
      if (!leaf->grad) {
        lg_release(d);
        return -1;
      }
    }
    if (lg_is_row_sparse(g) && !d)
      return -1;
    int rc = accumulate_leaf(leaf, d ? d : g, create_graph);
    lg_release(d);
    return rc;
  }
  if (g->dtype != leaf->dtype || !lg_same_shape(g, leaf)) {
    lg_tensor *r = lg_sum_to(g, leaf->ndim, leaf->shape);
    if (!r)
      return -1;
    lg_tensor *c = lg_to_dtype(r, leaf->dtype);
    lg_release(r);
    if (!c)
      return -1;
    int rc = accumulate_leaf(leaf, c, create_graph);
    lg_release(c);
    return rc;
  }
  if (!leaf->grad) {
    if (create_graph || (g->refcount == 1 && g->storage->refcount == 1 &&
                         lg_is_contiguous(g) && !g->requires_grad)) {
      leaf->grad = lg_retain(g);
      if (!create_graph && g->grad_fn) {
        /* never keep a graph in .grad unless asked to */
        lg_tensor *d = lg_detach(g);
        lg_release(leaf->grad);
        leaf->grad = d;
      }
      return leaf->grad ? 0 : -1;
    }
    if (tiny_float(g)) {
      leaf->grad = tiny_full(g, lg_tiny_load(g));
      return leaf->grad ? 0 : -1;
    }
    bool was = lg_set_grad_enabled(false);
    leaf->grad = lg_clone(g);
    lg_set_grad_enabled(was);
    return leaf->grad ? 0 : -1;
  }
  if (create_graph || leaf->grad->requires_grad) {
    lg_tensor *s = lg_binary(LG_OP_ADD, leaf->grad, g);
    if (!s)
      return -1;
    lg_release(leaf->grad);
    leaf->grad = s;
    return 0;
  }
  bool was = lg_set_grad_enabled(false);
  int rc = lg_binary_(LG_OP_ADD, leaf->grad, g);
  lg_set_grad_enabled(was);
  return rc;
}

/* ---- the engine ---- */

typedef struct {
  lg_node **items;
  int64_t n, cap;
} node_vec;

static int vec_push(node_vec *v, lg_node *n) {
  if (v->n == v->cap) {
    int64_t cap = v->cap ? v->cap * 2 : 64;
    lg_node **p = realloc(v->items, cap * sizeof *p);
    if (!p) {
      lg_seterr("backward: out of memory");
      return -1;
    }
    v->items = p;
    v->cap = cap;
  }
  v->items[v->n++] = n;
  return 0;
}

/* deps of a node that lg.grad does not need to run: never reaches 0 */
#define DEPS_PRUNED (INT64_MIN / 2)

static bool is_captured(lg_tensor *t, int ncap, lg_tensor **capture_for) {
  for (int c = 0; c < ncap; c++)
    if (capture_for[c] == t)
      return true;
  return false;
}

/* For lg.grad: marks the nodes of all (deps already counted) that lead to
 * none of the captured inputs by setting their deps to DEPS_PRUNED, so that
 * they are neither run nor freed.  A node is kept when it produced a
 * captured input or when one of its edges goes to a captured leaf or to a
 * kept node; every parent of a kept node is then kept, so the dependency
 * counts of kept nodes stay right. */
static int prune_for_capture(node_vec *all, int ncap, lg_tensor **capture_for) {
  int64_t n = all->n;
  int64_t *saved = malloc((n ? n : 1) * sizeof *saved);
  int64_t *order = malloc((n ? n : 1) * sizeof *order);
  bool *keep = calloc(n ? n : 1, sizeof *keep);
  if (!saved || !order || !keep) {
    free(saved);
    free(order);
    free(keep);
    lg_seterr("grad: out of memory");
    return -1;
  }
  /* deps holds each node's index while the counts wait in saved */
  for (int64_t i = 0; i < n; i++) {
    saved[i] = all->items[i]->deps;
    all->items[i]->deps = i;
  }
  /* a topological order (parents first), counting down a copy */
  int64_t head = 0, tail = 0;
  int64_t *left = malloc((n ? n : 1) * sizeof *left);
  if (!left) {
    for (int64_t i = 0; i < n; i++)
      all->items[i]->deps = saved[i];
    free(saved);
    free(order);
    free(keep);
    lg_seterr("grad: out of memory");
    return -1;
  }
  memcpy(left, saved, n * sizeof *left);
  for (int64_t i = 0; i < n; i++)
    if (left[i] == 0)
      order[tail++] = i;
  while (head < tail) {
    lg_node *nd = all->items[order[head++]];
    for (int k = 0; k < nd->ninputs; k++) {
      lg_node *m = nd->edges[k].fn;
      if (m && --left[m->deps] == 0)
        order[tail++] = m->deps;
    }
  }
  free(left);
  /* children before parents */
  for (int64_t j = tail - 1; j >= 0; j--) {
    int64_t i = order[j];
    lg_node *nd = all->items[i];
    bool kept = false;
    for (int c = 0; c < ncap && !kept; c++)
      kept = capture_for[c]->grad_fn == nd;
    for (int k = 0; k < nd->ninputs && !kept; k++) {
      lg_edge *e = &nd->edges[k];
      kept = (e->leaf && is_captured(e->leaf, ncap, capture_for)) ||
             (e->fn && keep[e->fn->deps]);
    }
    keep[i] = kept;
  }
  for (int64_t i = 0; i < n; i++)
    all->items[i]->deps = keep[i] ? saved[i] : DEPS_PRUNED;
  free(saved);
  free(order);
  free(keep);
  return 0;
}

/* ---- the grad-ready hook: counts the edges into each leaf so that the
 * last accumulation of a backward can be told ---- */

static lg_grad_ready_fn grad_hook;
static void *grad_hook_ctx;

void lg_set_grad_ready_hook(lg_grad_ready_fn fn, void *ctx) {
  grad_hook = fn;
  grad_hook_ctx = ctx;
}

typedef struct {
  lg_tensor **leaf; /* sorted, unique */
  int64_t *left;    /* edges not yet processed */
  int64_t n;
} leaf_counts;

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (lg_tensor *const *)a;
  uintptr_t y = (uintptr_t) * (lg_tensor *const *)b;
  return x < y ? -1 : x > y;
}

static int count_leaves(const node_vec *all, leaf_counts *lc) {
  int64_t m = 0;
  for (int64_t i = 0; i < all->n; i++)
    for (int k = 0; k < all->items[i]->ninputs; k++)
      m += all->items[i]->edges[k].leaf != NULL;
  lc->leaf = malloc((m ? m : 1) * sizeof *lc->leaf);
  lc->left = malloc((m ? m : 1) * sizeof *lc->left);
  if (!lc->leaf || !lc->left) {
    lg_seterr("backward: out of memory");
    return -1;
  }
  m = 0;
  for (int64_t i = 0; i < all->n; i++)
    for (int k = 0; k < all->items[i]->ninputs; k++)
      if (all->items[i]->edges[k].leaf)
        lc->leaf[m++] = all->items[i]->edges[k].leaf;
  qsort(lc->leaf, m, sizeof *lc->leaf, cmp_ptr);
  lc->n = 0;
  for (int64_t i = 0; i < m; i++) {
    if (lc->n && lc->leaf[lc->n - 1] == lc->leaf[i]) {
      lc->left[lc->n - 1]++;
      continue;
    }
    lc->leaf[lc->n] = lc->leaf[i];
    lc->left[lc->n++] = 1;
  }
  return 0;
}

/* one edge into leaf has been processed: the hook hears of the last one */
static int leaf_edge_done(leaf_counts *lc, lg_tensor *leaf) {
  lg_tensor **p = bsearch(&leaf, lc->leaf, lc->n, sizeof *lc->leaf, cmp_ptr);
  if (!p || --lc->left[p - lc->leaf] || !leaf->grad)
    return 0;
  return grad_hook(leaf, grad_hook_ctx);
}

/* Runs the graph from roots (with their gradients).  When capture is
 * non-NULL, gradients for the tensors in capture_for are stored there
 * instead of accumulating into leaves, and only the nodes that lead to
 * them run. */
/* the work lists, kept between calls (a nested backward gets its own) */
static LG_THREAD node_vec spare_all, spare_ready;
static LG_THREAD bool spare_busy;

static int run_backward(int nroots, lg_tensor **roots, lg_tensor **root_grads,
                        bool retain_graph, bool create_graph, int ncap,
                        lg_tensor **capture_for, lg_tensor **capture) {
  node_vec all = {0}, ready = {0};
  bool own_spare = !spare_busy;
  if (own_spare) {
    spare_busy = true;
    all = spare_all;
    ready = spare_ready;
    all.n = ready.n = 0;
  }
  int rc = -1;
  leaf_counts lc = {0};
  /* 1. collect reachable nodes and count dependencies */
  for (int r = 0; r < nroots; r++) {
    lg_node *n = roots[r]->grad_fn;
    if (n && n->deps == 0) {
      n->deps = -1; /* mark visited */
      if (vec_push(&all, n))
        goto done;
    }
  }
  for (int64_t i = 0; i < all.n; i++) {
    lg_node *n = all.items[i];
    for (int k = 0; k < n->ninputs; k++) {
      lg_node *m = n->edges[k].fn;
      if (!m)
        continue;
      if (m->deps == 0) {
        m->deps = -1;
        if (vec_push(&all, m))
          goto done;
      }
    }
  }
  for (int64_t i = 0; i < all.n; i++)
    all.items[i]->deps = 0;
  for (int64_t i = 0; i < all.n; i++) {
    lg_node *n = all.items[i];
    for (int k = 0; k < n->ninputs; k++)
      if (n->edges[k].fn)
        n->edges[k].fn->deps++;
  }
  if (capture && prune_for_capture(&all, ncap, capture_for))
    goto done;
  if (grad_hook && !capture && count_leaves(&all, &lc))
    goto done;
  /* 2. seed the roots (a captured root with a grad_fn is captured when its
   * node runs, with every other gradient it receives) */
  for (int r = 0; r < nroots; r++) {
    lg_tensor *t = roots[r];
    if (!t->grad_fn) {
      if (capture) {
        for (int c = 0; c < ncap; c++)
          if (capture_for[c] == t &&
              lg_accumulate(&capture[c], root_grads[r]))
            goto done;
      } else if (accumulate_leaf(t, root_grads[r], create_graph)) {
        goto done;
      }
      continue;
    }
    if (t->grad_fn->deps < 0)
      continue; /* pruned */
    if (lg_accumulate(&t->grad_fn->grad_accum, root_grads[r]))
      goto done;
  }
  for (int64_t i = 0; i < all.n; i++)
    if (all.items[i]->deps == 0 && vec_push(&ready, all.items[i]))
      goto done;
  /* 3. process in topological order */
  bool was = lg_set_grad_enabled(create_graph);
  while (ready.n > 0) {
    lg_node *n = ready.items[--ready.n];
    lg_tensor *g = n->grad_accum;
    n->grad_accum = NULL;
    lg_tensor *inline_grads[LG_NODE_INLINE] = {0};
    lg_tensor **grads = inline_grads;
    if (n->ninputs > LG_NODE_INLINE &&
        !(grads = calloc(n->ninputs, sizeof *grads))) {
      lg_release(g);
      lg_set_grad_enabled(was);
      lg_seterr("backward: out of memory");
      goto done;
    }
    if (n->retained_out && g && !capture) {
      lg_tensor *o = n->retained_out;
      bool w2 = lg_set_grad_enabled(false);
      if (!o->grad) {
        o->grad = create_graph ? lg_retain(g) : lg_clone(g);
      } else {
        lg_tensor *s = lg_binary(LG_OP_ADD, o->grad, g);
        lg_release(o->grad);
        o->grad = s;
      }
      lg_set_grad_enabled(w2);
    }
    int st = 0;
    bool run = true;
    if (capture) {
      for (int c = 0; c < ncap && !st; c++)
        if (capture_for[c]->grad_fn == n && g)
          st = lg_accumulate(&capture[c], g);
      /* a captured input's node runs only if it leads to another input */
      run = false;
      for (int k = 0; k < n->ninputs && !run; k++) {
        lg_edge *e = &n->edges[k];
        run = (e->fn && e->fn->deps >= 0) ||
              (e->leaf && is_captured(e->leaf, ncap, capture_for));
      }
    }
    if (!run) {
      lg_release(g);
      if (grads != inline_grads)
        free(grads);
      if (st) {
        lg_set_grad_enabled(was);
        goto done;
      }
      continue;
    }
    if (g && !st) {
      if (n->released) {
        lg_seterr("backward through %s a second time: its saved tensors "
                  "were freed (pass retain_graph = true to the first "
                  "backward)",
                  n->name);
        st = -1;
      } else {
        in_backward++;
        st = n->backward(n, g, grads);
        in_backward--;
      }
      if (!st && anomaly) {
        for (int k = 0; k < n->ninputs && !st; k++)
          if (grads[k])
            st = lg_anomaly_check(n->name, grads[k], true);
      }
    }
    lg_release(g);
    if (!st && !retain_graph)
      node_free_saved(n);
    for (int k = 0; k < n->ninputs; k++) {
      lg_edge *e = &n->edges[k];
      lg_tensor *gk = grads[k];
      if (!st && gk && n->needs_grad[k]) {
        if (e->fn) {
          if (e->fn->deps >= 0) /* not pruned */
            st = lg_accumulate(&e->fn->grad_accum, gk);
        } else if (e->leaf) {
          bool captured = false;
          if (capture)
            for (int c = 0; c < ncap; c++)
              if (capture_for[c] == e->leaf) {
                captured = true;
                st = lg_accumulate(&capture[c], gk);
              }
          if (!captured && !capture)
            st = accumulate_leaf(e->leaf, gk, create_graph);
        }
      }
      if (!st && e->leaf && lc.leaf)
        st = leaf_edge_done(&lc, e->leaf);
      lg_release(gk);
      if (e->fn && --e->fn->deps == 0 && !st && vec_push(&ready, e->fn))
        st = -1;
    }
    if (grads != inline_grads)
      free(grads);
    if (st) {
      lg_set_grad_enabled(was);
      goto done;
    }
  }
  lg_set_grad_enabled(was);
  if (lc.leaf && grad_hook && grad_hook(NULL, grad_hook_ctx))
    goto done;
  rc = 0;
done:
  free(lc.leaf);
  free(lc.left);
  for (int64_t i = 0; i < all.n; i++) {
    all.items[i]->deps = 0;
    lg_release(all.items[i]->grad_accum);
    all.items[i]->grad_accum = NULL;
  }
  if (own_spare) {
    spare_all = all;
    spare_ready = ready;
    spare_busy = false;
  } else {
    free(all.items);
    free(ready.items);
  }
  return rc;
}

static lg_tensor *default_grad(lg_tensor *root, const char *fname) {
  if (lg_numel(root) != 1) {
    char b[200];
    lg_seterr("%s: grad can be implicitly created only for a tensor with "
              "one element (got shape %s); pass a gradient",
              fname, lg_shape_str(root, b, sizeof b));
    return NULL;
  }
  if (tiny_float(root))
    return tiny_full(root, 1.0);
  return lg_full(root->dtype, root->ndim, root->shape, 1.0);
}

int lg_backward(lg_tensor *root, lg_tensor *grad, bool retain_graph,
                bool create_graph) {
  if (lg_args_unusable("lg_backward", LG_ARG(1, root), LG_ARG_OPT(2, grad), 0))
    return -1;
  if (!root->requires_grad) {
    lg_seterr("backward: the tensor does not require grad and has no "
              "grad_fn");
    return -1;
  }
  lg_tensor *g;
  if (grad) {
    if (!lg_same_shape(grad, root)) {
      char a[200], b[200];
      lg_seterr("backward: gradient of shape %s does not match output %s",
                lg_shape_str(grad, a, sizeof a),
                lg_shape_str(root, b, sizeof b));
      return -1;
    }
    g = lg_retain(grad);
  } else if (!(g = default_grad(root, "backward"))) {
    return -1;
  }
  int rc = run_backward(1, &root, &g, retain_graph, create_graph, 0, NULL,
                        NULL);
  lg_release(g);
  return rc;
}

int lg_grad(int nout, lg_tensor **outputs, lg_tensor **grad_outputs,
            int nin, lg_tensor **inputs, lg_tensor **grads,
            bool retain_graph, bool create_graph, bool allow_unused) {
  if (!outputs || !inputs || !grads) {
    lg_seterr("lg_grad: argument %d is NULL", (!outputs)  ? 2
                                                         : (!inputs) ? 5
                                                                     : 6);
    return -1;
  }
  lg_tensor *gs[64];
  if (nout > 64 || nout < 1 || nin < 0) {
    lg_seterr("grad: %s", nout > 64 ? "at most 64 outputs"
                          : nout < 1 ? "needs at least one output"
                                     : "a negative number of inputs");
    return -1;
  }
  if (lg_check_list("grad", nout, outputs) < 0 ||
      lg_check_list("grad", nin, inputs) < 0)
    return -1;
  for (int i = 0; i < nin; i++) {
    grads[i] = NULL;
    if (!inputs[i]->requires_grad) {
      lg_seterr("grad: input %I does not require grad", (long long)i);
      return -1;
    }
  }
  int k;
  for (k = 0; k < nout; k++) {
    if (!outputs[k]->requires_grad) {
      lg_seterr("grad: output %I does not require grad", (long long)k);
      break;
    }
    if (grad_outputs && grad_outputs[k]) {
      gs[k] = lg_retain(grad_outputs[k]);
    } else if (!(gs[k] = default_grad(outputs[k], "grad"))) {
      break;
    }
  }
  int rc = -1;
  if (k == nout)
    rc = run_backward(nout, outputs, gs, retain_graph, create_graph, nin,
                      inputs, grads);
  for (int i = 0; i < k; i++)
    lg_release(gs[i]);
  if (!rc && !allow_unused)
    for (int i = 0; i < nin; i++)
      if (!grads[i]) {
        lg_seterr("grad: input %I was not used in the graph (pass allow_unused "
                  "= true)",
                  (long long)i);
        rc = -1;
      }
  if (rc)
    for (int i = 0; i < nin; i++) {
      lg_release(grads[i]);
      grads[i] = NULL;
    }
  return rc;
}

void lg_autograd_thread_cleanup(void) {
  while (free_nodes) {
    lg_node *n = free_nodes;
    free_nodes = n->topo_next;
    free(n);
  }
  nfree_nodes = 0;
  if (!spare_busy) {
    free(spare_all.items);
    free(spare_ready.items);
    memset(&spare_all, 0, sizeof spare_all);
    memset(&spare_ready, 0, sizeof spare_ready);
  }
}
