/*
 * reg.h -- regularizers and gradient clipping over lists of parameters.
 *
 * Conventions (one place): with coefficients l1 and l2,
 *   R(theta) = l1 * sum |theta|  +  l2 / 2 * sum theta^2
 * so L1(lambda) is l1 = lambda, L2(lambda) is l2 = lambda (its gradient
 * lambda * theta is PyTorch's weight_decay = lambda), and ElasticNet gives
 * both.  The subgradient of |x| is taken as sign(x), with sign(0) = 0.
 *
 *   lg_tensor *pen = lg_reg_penalty(l1, l2, n, params);  -- add to the loss
 *   lg_reg_apply(l1, l2, n, params);   -- or: grad += dR/dtheta, no graph
 *   lg_reg_prox(l1 * lr, l2 * lr, n, params); -- or: proximal step after
 *                                      -- the optimizer's step
 *
 * Every in-place function writes raw data (no autograd record), bumps the
 * storage version, and skips parameters that are not floating point only
 * where it says so; the others are errors.
 */
#ifndef LGRAD_REG_H
#define LGRAD_REG_H

#include "../lgrad.h"

/* l1 * sum |p| + l2 / 2 * sum p^2 over every parameter, built from
 * differentiable ops; a term whose coefficient is 0 is left out.  A 0-d
 * tensor (0 of the default dtype for no parameters). */
lg_tensor *lg_reg_penalty(double l1, double l2, int n, lg_tensor **params);

/* p.grad += l1 * sign(p) + l2 * p for every parameter that requires grad
 * (a missing grad starts at zeros) */
int lg_reg_apply(double l1, double l2, int n, lg_tensor **params);

/* the proximal step of R with coefficients t1, t2 (lr times l1, l2):
 * p = sign(p) * max(|p| - t1, 0) / (1 + t2); exact zeros for L1 */
int lg_reg_prox(double t1, double t2, int n, lg_tensor **params);

/* scales each slice p.select(dim, i) whose 2-norm exceeds c to norm c
 * (factor c / (norm + 1e-7), as torch.renorm); 1-d and 0-d parameters as a
 * whole.  dim is 0-based, negative from the end. */
int lg_reg_max_norm(double c, int dim, int n, lg_tensor **params);

/* the p-norm of all gradients together (p = INFINITY: the largest |g|);
 * when max_norm / (total + 1e-6) < 1 every gradient is multiplied by it.
 * Parameters without grad are skipped.  With error_if_nonfinite a NaN or
 * infinite total is an error (nothing is scaled). */
int lg_clip_grad_norm(int n, lg_tensor **params, double max_norm, double p,
                      bool error_if_nonfinite, double *total);

/* clamps every gradient element to [-v, v] (v >= 0) */
int lg_clip_grad_value(int n, lg_tensor **params, double v);

#endif
