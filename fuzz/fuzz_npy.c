/*
 * fuzz_npy.c -- libFuzzer harness for the NumPy .npy reader
 * (lg_npy_load_mem and lg_npy_load).  See fuzz_common.h for the checks.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lg_tensor *a = lg_npy_load_mem(data, size, "input");
  fuzz_check_result(a, "input");
  const char *path = fuzz_scratch_file(data, size, ".npy");
  if (path) {
    lg_tensor *b = lg_npy_load(path);
    fuzz_check_result(b, path);
    if (!a != !b)
      FUZZ_DISAGREE(a);
    if (a && b)
      fuzz_check_same(a, b);
    if (b)
      lg_release(b);
  }
  if (a)
    lg_release(a);
  return 0;
}
