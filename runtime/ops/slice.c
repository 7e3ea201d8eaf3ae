/*
 * slice.c -- Torch7's t[{...}] indexing: a view made of selects and
 * strided slices, and the assignment t[{...}] = v, which in a graph is the
 * out-of-place op index_assign (t with the region replaced) written back
 * into t.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

lg_tensor *lg_index_view(lg_tensor *t, int n, const lg_slice_dim *r) {
  if (n > t->ndim) {
    char b[200];
    lg_seterr("index: %d indices for a tensor of shape %s", n,
              lg_shape_str(t, b, sizeof b));
    return NULL;
  }
  lg_tensor *cur = lg_retain(t);
  int d = 0;
  for (int k = 0; k < n && cur; k++) {
    lg_tensor *next = r[k].select
                          ? lg_select(cur, d, r[k].start)
                          : lg_slice(cur, d++, r[k].start, r[k].len,
                                     r[k].step);
    lg_release(cur);
    cur = next;
  }
  return cur;
}

typedef struct {
  int n;
  lg_slice_dim r[LG_MAX_DIMS];
} index_state;

static lg_tensor *assign_out(lg_tensor *t, const index_state *st,
                             lg_tensor *src);

/* out = t with out[r] = src.  grad t: g with the region zeroed (the same
 * op with src 0); grad src: g[r] summed to src's shape */
static int assign_backward(lg_node *n, lg_tensor *g, lg_tensor **grads) {
  const index_state *st = n->ctx;
  if (n->needs_grad[0]) {
    lg_tensor *zero = lg_scalar(g->dtype, 0);
    if (!zero)
      return -1;
    grads[0] = assign_out(g, st, zero);
    lg_release(zero);
    if (!grads[0])
      return -1;
  }
  if (n->needs_grad[1]) {
    lg_tensor *v = lg_index_view(g, st->n, st->r);
    if (!v)
      return -1;
    lg_tensor *s = lg_sum_to(v, n->ninput_shape, n->input_shape);
    lg_release(v);
    if (!s)
      return -1;
    grads[1] = lg_to_dtype(s, n->input_dtype);
    lg_release(s);
    if (!grads[1])
      return -1;
  }
  return 0;
}

static lg_tensor *assign_out(lg_tensor *t, const index_state *st,
                             lg_tensor *src) {
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c = lg_clone(t);
  lg_tensor *region = c ? lg_index_view(c, st->n, st->r) : NULL;
  int rc = region ? lg_copy_(region, src) : -1;
  lg_release(region);
  lg_set_grad_enabled(was);
  if (rc) {
    lg_release(c);
    return NULL;
  }
  lg_tensor *in[2] = {t, src};
  if (!lg_any_requires_grad(2, in))
    return c;
  index_state *keep = malloc(sizeof *keep);
  if (!keep) {
    lg_release(c);
    lg_seterr("index: out of memory");
    return NULL;
  }
  *keep = *st;
  lg_node *n = lg_record(c, "index_assign", assign_backward, 2, in);
  if (!n) {
    free(keep);
    return c;
  }
  n->ctx = keep;
  n->ctx_free = free;
  n->ninput_shape = src->ndim;
  memcpy(n->input_shape, src->shape, src->ndim * sizeof *src->shape);
  n->input_dtype = src->dtype;
  return c;
}

int lg_index_assign(lg_tensor *t, int n, const lg_slice_dim *r,
                    lg_tensor *src) {
  if (n < 0 || n > LG_MAX_DIMS) {
    lg_seterr("index: at most %d indices", LG_MAX_DIMS);
    return -1;
  }
  if (lg_inplace_records(t, 1, &src) && lg_dtype_is_float(src->dtype)) {
    if (lg_inplace_check("index", t))
      return -1;
    index_state st;
    st.n = n;
    if (n > 0)
      memcpy(st.r, r, n * sizeof *r);
    return lg_inplace_end(t, NULL, assign_out(t, &st, src));
  }
  bool was = lg_set_grad_enabled(false);
  lg_tensor *v = lg_index_view(t, n, r);
  lg_set_grad_enabled(was);
  if (!v)
    return -1;
  int rc = lg_copy_(v, src);
  lg_release(v);
  return rc;
}
