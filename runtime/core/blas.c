/*
 * blas.c -- the one GEMM wrapper (transposes passed as flags, never
 * copied) and the thread setting, over OpenBLAS loaded at first use.
 *
 * OpenBLAS picks its kernels from the CPU's model number; on virtual
 * machines that report a generic model it falls back to its oldest x86-64
 * kernels (SSE3), several times slower than what the CPU can do.  Loading
 * it ourselves lets us name the kernel family from the CPU's feature
 * flags first (OPENBLAS_CORETYPE), unless the user has set it.  When the
 * library is already in the process (a host linked it), that copy is used
 * as it is.  Without OpenBLAS, GEMM falls back to the plain C loops.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "dnnl.h"
#include "internal.h"

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *,
                         int, const float *, int, float, float *, int);
typedef void (*dgemm_fn)(int, int, int, int, int, int, double,
                         const double *, int, const double *, int, double,
                         double *, int);

static struct {
  sgemm_fn sgemm;
  dgemm_fn dgemm;
  void (*set_threads)(int);
  int (*get_threads)(void);
  char *(*corename)(void);
  char *(*config)(void);
} blas;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static int num_threads = 0;

static const char *core_for_this_cpu(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return "Haswell";
#endif
  return NULL;
}

static void blas_load(void) {
  const char *core = core_for_this_cpu();
  if (core && !getenv("OPENBLAS_CORETYPE"))
    setenv("OPENBLAS_CORETYPE", core, 0);
  static const char *const names[] = {"libopenblas.so.0", "libopenblas.so",
                                      NULL};
  void *h = NULL;
  for (int i = 0; names[i] && !h; i++)
    h = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
  if (!h)
    return;
  blas.sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
  blas.dgemm = (dgemm_fn)dlsym(h, "cblas_dgemm");
  *(void **)&blas.set_threads = dlsym(h, "openblas_set_num_threads");
  *(void **)&blas.get_threads = dlsym(h, "openblas_get_num_threads");
  *(void **)&blas.corename = dlsym(h, "openblas_get_corename");
  *(void **)&blas.config = dlsym(h, "openblas_get_config");
  if (num_threads && blas.set_threads)
    blas.set_threads(num_threads);
}

static void blas_init(void) { pthread_once(&blas_once, blas_load); }

void lg_set_num_threads(int n) {
  if (n < 1)
    n = 1;
  num_threads = n;
  blas_init();
  if (blas.set_threads)
    blas.set_threads(n);
  lg_dnnl_set_threads(n);
}

int lg_get_num_threads(void) {
  blas_init();
  if (num_threads)
    return num_threads;
  return blas.get_threads ? blas.get_threads() : 1;
}

const char *lg_blas_info(void) {
  blas_init();
  if (!blas.sgemm)
    return "no BLAS (plain C loops)";
  static char buf[256];
  snprintf(buf, sizeof buf, "%s, kernels %s",
           blas.config ? blas.config() : "OpenBLAS",
           blas.corename ? blas.corename() : "?");
  return buf;
}

/* C (m x n) = alpha op(A) op(B) + beta C; row-major, leading dims given */
static void gemm_once(lg_dtype d, bool ta, bool tb, int64_t m,
                                int64_t n, int64_t k, double alpha,
                                const void *a, int64_t lda, const void *b,
                                int64_t ldb, double beta, void *c,
                                int64_t ldc);

/* GEMMs of at least this many multiply-adds are cut into blocks of rows
 * when a cancellation token is current, so that a host's interrupt or time
 * limit stops them within one block */
#define CANCEL_GEMM_WORK ((int64_t)1 << 27)
#define CANCEL_GEMM_BLOCK_WORK ((int64_t)1 << 31) /* 10-20 ms a block */
#define CANCEL_GEMM_MIN_ROWS 256

void lg_gemm(lg_dtype d, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
             double alpha, const void *a, int64_t lda, const void *b,
             int64_t ldb, double beta, void *c, int64_t ldc) {
  if (m == 0 || n == 0)
    return;
  if (lg_cancel_current() && m >= 2 * CANCEL_GEMM_MIN_ROWS &&
      m * n > CANCEL_GEMM_WORK / (k > 0 ? k : 1)) {
    size_t es = lg_dtype_size(d);
    int64_t rows = CANCEL_GEMM_BLOCK_WORK / (n * (k > 0 ? k : 1));
    if (rows < CANCEL_GEMM_MIN_ROWS)
      rows = CANCEL_GEMM_MIN_ROWS;
    for (int64_t i = 0; i < m; i += rows) {
      if (lg_cancel_check() < 0)
        return; /* the caller's op is cut short; the check after it fails */
      int64_t r = m - i < rows ? m - i : rows;
      /* rows i.. of op(A): row i of A, or column i of the stored A^T */
      const char *ai = (const char *)a + (size_t)(ta ? i : i * lda) * es;
      gemm_once(d, ta, tb, r, n, k, alpha, ai, lda, b, ldb, beta,
                          (char *)c + (size_t)(i * ldc) * es, ldc);
    }
    return;
  }
  gemm_once(d, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c,
                      ldc);
}

/* one BLAS call (or the naive twin for other dtypes) */
static void gemm_once(lg_dtype d, bool ta, bool tb, int64_t m,
                                int64_t n, int64_t k, double alpha,
                                const void *a, int64_t lda, const void *b,
                                int64_t ldb, double beta, void *c,
                                int64_t ldc) {
  blas_init();
  if (d == LG_FLOAT32 && blas.sgemm)
    blas.sgemm(ROW_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, (int)m,
               (int)n, (int)k, (float)alpha, a, (int)lda, b, (int)ldb,
               (float)beta, c, (int)ldc);
  else if (d == LG_FLOAT64 && blas.dgemm)
    blas.dgemm(ROW_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, (int)m,
               (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c,
               (int)ldc);
  else
    lg_gemm_naive(d, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
