/*
 * vmath.c -- see vmath.h.  The plain loops here are the reference the
 * vector versions are checked against.
 */
#include <math.h>

#include "vmath.h"

void lg_vexp_f32(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = expf(x[i]);
}

void lg_vexp_f64(double *y, const double *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = exp(x[i]);
}

void lg_vlog_f32(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = logf(x[i]);
}

void lg_vtanh_f32(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = tanhf(x[i]);
}

void lg_verf_f32(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = erff(x[i]);
}
