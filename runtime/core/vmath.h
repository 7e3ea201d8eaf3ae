/*
 * vmath.h -- element-wise math over contiguous arrays, y[i] = f(x[i]),
 * for the kernels that need a transcendental inside a larger loop
 * (softmax, logsumexp, cross-entropy, fused activations).  y may equal x.
 * vmath.c picks the widest vector code the CPU runs; results stay within
 * the accuracy the scalar C library gives.
 */
#ifndef LG_VMATH_H
#define LG_VMATH_H

#include <stdint.h>

void lg_vexp_f32(float *y, const float *x, int64_t n);
void lg_vexp_f64(double *y, const double *x, int64_t n);
void lg_vlog_f32(float *y, const float *x, int64_t n);
void lg_vtanh_f32(float *y, const float *x, int64_t n);
void lg_verf_f32(float *y, const float *x, int64_t n);

#endif
