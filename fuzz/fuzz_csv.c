/*
 * fuzz_csv.c -- libFuzzer harness for the numeric CSV reader
 * (lg_csv_load_mem and lg_csv_load).  The first byte of the input picks
 * the options (delimiter, header, dtype); the rest is the file.  See
 * fuzz_common.h for the checks.
 */
#include "fuzz_common.h"

static void check_result(const lg_csv_result *r, bool header) {
  fuzz_check_tensor(r->tensor);
  if (r->tensor->ndim != 2 || (size_t)r->tensor->shape[1] != r->ncols)
    FUZZ_FAIL("a CSV table is not rows x %zu", r->ncols);
  if (header && r->ncols && !r->names)
    FUZZ_FAIL("a header without names");
  for (size_t i = 0; r->names && i < r->ncols; i++)
    if (!r->names[i])
      FUZZ_FAIL("column %zu has no name", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  static const char delims[4] = {0, ';', '\t', ' '};
  static const lg_dtype dtypes[4] = {LG_FLOAT32, LG_FLOAT64, LG_INT64,
                                     LG_FLOAT32};
  lg_csv_opts o;
  o.delimiter = delims[data[0] & 3];
  o.header = (data[0] >> 2) & 1;
  o.dtype = dtypes[(data[0] >> 3) & 3];
  data++, size--;
  lg_csv_result a, b;
  int ra = lg_csv_load_mem((const char *)data, size, "input", &o, &a);
  if (ra < 0)
    fuzz_check_error("input");
  else
    check_result(&a, o.header);
  const char *path = fuzz_scratch_file(data, size, ".csv");
  if (path) {
    int rb = lg_csv_load(path, &o, &b);
    if (rb < 0)
      fuzz_check_error(path);
    else
      check_result(&b, o.header);
    if ((ra < 0) != (rb < 0))
      FUZZ_DISAGREE(ra == 0);
    if (ra == 0)
      fuzz_check_same(a.tensor, b.tensor);
    if (rb == 0)
      lg_csv_result_clear(&b);
  }
  if (ra == 0)
    lg_csv_result_clear(&a);
  return 0;
}
