/*
 * fuzz_safetensors.c -- libFuzzer harness for the safetensors reader
 * (lg_safetensors_load_mem and lg_safetensors_load).  See fuzz_common.h
 * for the checks.
 */
#include "fuzz_common.h"

static void check_file(const lg_st_file *f) {
  for (size_t i = 0; i < f->ntensors; i++) {
    if (!f->tensors[i].name)
      FUZZ_FAIL("tensor %zu has no name", i);
    fuzz_check_tensor(f->tensors[i].tensor);
  }
  for (size_t i = 0; i < f->nmeta; i++)
    if (!f->meta[i].key || !f->meta[i].value)
      FUZZ_FAIL("metadata entry %zu is missing its key or value", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lg_st_file a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  int ra = lg_safetensors_load_mem(data, size, "input", &a);
  if (ra < 0)
    fuzz_check_error("input");
  else
    check_file(&a);
  const char *path = fuzz_scratch_file(data, size, ".safetensors");
  if (path) {
    int rb = lg_safetensors_load(path, &b);
    if (rb < 0)
      fuzz_check_error(path);
    else
      check_file(&b);
    if ((ra < 0) != (rb < 0))
      FUZZ_DISAGREE(ra == 0);
    if (ra == 0) {
      if (a.ntensors != b.ntensors || a.nmeta != b.nmeta)
        FUZZ_FAIL("memory and file readers disagree on the entries");
      for (size_t i = 0; i < a.ntensors; i++)
        fuzz_check_same(a.tensors[i].tensor, b.tensors[i].tensor);
    }
  }
  lg_st_file_clear(&a);
  lg_st_file_clear(&b);
  return 0;
}
