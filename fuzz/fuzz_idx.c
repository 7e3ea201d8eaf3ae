/*
 * fuzz_idx.c -- libFuzzer harness for the IDX reader, plain and gzip
 * (lg_idx_load_mem and lg_idx_load).  Each input is read as it is stored
 * and, scaled to float32 with a limit on the items, as lg.data.read_idx
 * and fashion_mnist read it.  See fuzz_common.h for the checks.
 */
#include "fuzz_common.h"

static void one(const uint8_t *data, size_t size, int as_dtype, double scale,
                double shift, int64_t limit) {
  lg_tensor *a =
      lg_idx_load_mem(data, size, "input", as_dtype, scale, shift, limit);
  fuzz_check_result(a, "input");
  const char *path = fuzz_scratch_file(data, size, ".idx");
  if (path) {
    lg_tensor *b = lg_idx_load(path, as_dtype, scale, shift, limit);
    fuzz_check_result(b, path);
    /* With a limit the memory reader stops inflating at the last item it
     * keeps, while zlib's gzread decompresses a buffer ahead and may meet
     * corrupt data past it.  And gzread does not report some truncated
     * streams (it returns 0 with no error once the output it could make
     * is used up) where the memory reader's inflate says "truncated".
     * Only those two ways may they differ. */
    bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    bool lenient_gzread = gz && !a && b &&
                          strstr(fuzz_last_error, "truncated gzip stream");
    if (!a != !b && !(limit >= 0 && gz && a && !b) && !lenient_gzread)
      FUZZ_DISAGREE(a);
    if (a && b)
      fuzz_check_same(a, b);
    if (b)
      lg_release(b);
  }
  if (a)
    lg_release(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  one(data, size, -1, 1.0, 0.0, -1);
  one(data, size, LG_FLOAT32, 1.0 / 255, 0.0, 3);
  return 0;
}
