/* The machine's own rate: one 1024^3 cblas_sgemm called directly from C,
 * the reference for lgrad's matmul and wide-mlp figures.
 * Usage: sgemm [threads]  -- prints GFLOP/s */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
  int n = 1024, threads = argc > 1 ? atoi(argv[1]) : 2, reps = 10;
  openblas_set_num_threads(threads);
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
        *c = malloc(sizeof(float) * n * n);
  if (!a || !b || !c)
    return 1;
  for (int i = 0; i < n * n; i++)
    a[i] = b[i] = (float)((i % 13) - 6) / 7.0f;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b,
              n, 0, c, n);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int r = 0; r < reps; r++)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n,
                b, n, 0, c, n);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double dt = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  printf("%.2f\n", 2.0 * n * n * n * reps / dt / 1e9);
  free(a);
  free(b);
  free(c);
  return 0;
}
