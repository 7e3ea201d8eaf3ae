/*
 * inplace.c -- in-place ops recorded in a graph.  The op runs out of place
 * on a clone of the target (so what it saves is never overwritten), the
 * result is copied into the target's storage, and the target's history is
 * rebased onto the op's node.  The copy bumps the storage version: a node
 * that saved the target's old values (tanh's output, mul's input) then
 * refuses to run backward, as torch's version counter does.
 */
#include <stdlib.h>

#include "internal.h"

int lg_inplace_check(const char *fname, lg_tensor *t) {
  if (t->requires_grad && !t->grad_fn) {
    lg_seterr("%s: a leaf Variable that requires grad is being used in an "
              "in-place operation.",
              fname);
    return -1;
  }
  if (t->is_view) {
    lg_seterr("%s: in-place write into a view inside a graph is not "
              "recorded (write through t[{...}] = v on the tensor itself, "
              "or clone() the view first)",
              fname);
    return -1;
  }
  if (!lg_dtype_is_float(t->dtype)) {
    lg_seterr("%s: only float tensors can be written in place in a graph",
              fname);
    return -1;
  }
  return 0;
}

lg_tensor *lg_inplace_begin(const char *fname, lg_tensor *t) {
  return lg_inplace_check(fname, t) ? NULL : lg_clone(t);
}

int lg_inplace_end(lg_tensor *t, lg_tensor *clone, lg_tensor *r) {
  lg_release(clone);
  if (!r)
    return -1;
  if (!lg_same_shape(r, t)) {
    char a[200], b[200];
    lg_seterr("in-place: result of shape %s does not fit the target %s",
              lg_shape_str(r, a, sizeof a), lg_shape_str(t, b, sizeof b));
    lg_release(r);
    return -1;
  }
  bool was = lg_set_grad_enabled(false);
  bool rg = t->requires_grad;
  t->requires_grad = false; /* the copy itself is not recorded */
  int rc = lg_copy_(t, r);
  t->requires_grad = rg;
  lg_set_grad_enabled(was);
  if (rc) {
    lg_release(r);
    return -1;
  }
  lg_node *node = r->grad_fn;
  if (node) {
    node->refcount++;
    lg_node *old = t->grad_fn;
    bool weak = t->grad_fn_weak;
    if (old && old->retained_out == t)
      old->retained_out = NULL;
    t->grad_fn = node;
    t->grad_fn_weak = false;
    t->requires_grad = true;
    if (t->retains_grad)
      node->retained_out = t;
    if (old && !weak)
      lg_node_release(old);
  }
  lg_release(r);
  return 0;
}
