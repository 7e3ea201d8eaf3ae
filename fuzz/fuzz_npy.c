/*
 * fuzz_npy.c -- libFuzzer harness for the NumPy .npy reader
 * (lg_npy_load_mem and lg_npy_load).  See fuzz_common.h for the checks.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lg_tensor *a = lg_npy_load_mem(data, size, "input");
  if (!a)
    fuzz_check_error("input");
  else
    fuzz_check_tensor(a);
  const char *path = fuzz_scratch_file(data, size, ".npy");
  if (path) {
    lg_tensor *b = lg_npy_load(path);
    if (!b)
      fuzz_check_error(path);
    else
      fuzz_check_tensor(b);
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
