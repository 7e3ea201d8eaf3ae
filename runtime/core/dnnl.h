/*
 * dnnl.h -- oneDNN (Debian's libdnnl2, 2.x C API) loaded at first use, as
 * blas.c loads OpenBLAS: lgrad and its hosts never link it, and without it
 * the reduced-precision paths fall back to conversion plus sgemm.
 *
 * Each function lgrad calls is named once in LG_DNNL_FUNCS; the loader
 * resolves them all or none.  Add a line to call a new one.
 */
#ifndef LG_DNNL_H
#define LG_DNNL_H

#include <oneapi/dnnl/dnnl.h>

#define LG_DNNL_FUNCS(X)                                                       \
  X(dnnl_engine_create)                                                        \
  X(dnnl_engine_destroy)                                                       \
  X(dnnl_stream_create)                                                        \
  X(dnnl_stream_wait)                                                          \
  X(dnnl_memory_desc_init_by_strides)                                          \
  X(dnnl_memory_desc_init_by_tag)                                              \
  X(dnnl_memory_desc_get_size)                                                 \
  X(dnnl_memory_create)                                                        \
  X(dnnl_memory_set_data_handle)                                               \
  X(dnnl_memory_destroy)                                                       \
  X(dnnl_matmul_desc_init)                                                     \
  X(dnnl_primitive_desc_create)                                                \
  X(dnnl_primitive_desc_query_md)                                              \
  X(dnnl_primitive_desc_destroy)                                               \
  X(dnnl_reorder_primitive_desc_create)                                        \
  X(dnnl_primitive_create)                                                     \
  X(dnnl_primitive_execute)                                                    \
  X(dnnl_primitive_destroy)                                                    \
  X(dnnl_primitive_attr_create)                                                \
  X(dnnl_primitive_attr_destroy)                                               \
  X(dnnl_primitive_attr_set_output_scales)                                     \
  X(dnnl_primitive_attr_set_zero_points)                                       \
  X(dnnl_primitive_attr_set_post_ops)                                          \
  X(dnnl_primitive_attr_set_scratchpad_mode)                                   \
  X(dnnl_post_ops_create)                                                      \
  X(dnnl_post_ops_destroy)                                                     \
  X(dnnl_post_ops_append_eltwise)                                              \
  X(dnnl_get_effective_cpu_isa)                                                \
  X(dnnl_version)

typedef struct lg_dnnl_api {
#define LG_DNNL_FIELD(f) __typeof__(&f) f;
  LG_DNNL_FUNCS(LG_DNNL_FIELD)
#undef LG_DNNL_FIELD
  dnnl_engine_t engine; /* the CPU engine, made once */
  dnnl_stream_t stream; /* in-order stream on it, made once */
  void (*omp_set_num_threads)(int); /* oneDNN's OpenMP threads, or NULL */
} lg_dnnl_api;

/* the loaded API with its engine and stream, or NULL when libdnnl cannot be
 * loaded; threads follow lg_set_num_threads() */
const lg_dnnl_api *lg_dnnl(void);

/* oneDNN's thread count: set by lg_set_num_threads */
void lg_dnnl_set_threads(int n);

#endif
