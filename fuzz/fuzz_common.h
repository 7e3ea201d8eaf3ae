/*
 * fuzz_common.h -- checks shared by the libFuzzer harnesses of the file
 * readers (fuzz_*.c).  Each harness hands the input to a reader from
 * memory and, through a scratch file, from disk, then checks what came
 * back:
 *   - a failure sets an error message that starts with the name it gave
 *     the reader (so a hostile file always gets a clear error);
 *   - a success is a contiguous tensor with a sane shape whose every data
 *     byte can be read (so AddressSanitizer sees any short allocation);
 *   - both paths agree on success or failure and on the shape.
 * A broken check calls abort(), which libFuzzer reports as a crash and
 * saves the input.
 */
#ifndef LGRAD_FUZZ_COMMON_H
#define LGRAD_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/io/io.h"

#define FUZZ_FAIL(...)                                                         \
  do {                                                                         \
    fprintf(stderr, "fuzz check failed: " __VA_ARGS__);                        \
    fputc('\n', stderr);                                                       \
    abort();                                                                   \
  } while (0)

/* the error of a failed read names the source it was given; the
 * message of the last failure is kept for the disagreement report */
static char fuzz_last_error[512];
static void fuzz_check_error(const char *what) {
  const char *msg = lg_errmsg();
  if (!msg || !*msg)
    FUZZ_FAIL("a reader failed without a message");
  if (strncmp(msg, what, strlen(what)) != 0)
    FUZZ_FAIL("error \"%s\" does not start with \"%s\"", msg, what);
  snprintf(fuzz_last_error, sizeof fuzz_last_error, "%s", msg);
}

/* one path read the input and the other failed */
#define FUZZ_DISAGREE(mem_ok)                                                  \
  FUZZ_FAIL("the %s reader failed (%s), the %s reader read it",               \
            (mem_ok) ? "file" : "memory", fuzz_last_error,                     \
            (mem_ok) ? "memory" : "file")

/* a loaded tensor: sane header, and all its bytes readable */
static volatile unsigned char fuzz_sink;
static void fuzz_check_tensor(const lg_tensor *t) {
  if (!t)
    FUZZ_FAIL("a reader succeeded with a NULL tensor");
  if (t->ndim < 0 || t->ndim > LG_MAX_DIMS)
    FUZZ_FAIL("ndim %d", t->ndim);
  if ((int)t->dtype < 0 || t->dtype >= LG_NDTYPES)
    FUZZ_FAIL("dtype %d", (int)t->dtype);
  /* (lg_is_contiguous says no for some empty shapes, such as [2,0]) */
  if (lg_numel(t) > 0 && !lg_is_contiguous(t))
    FUZZ_FAIL("a loaded tensor is not contiguous");
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] < 0)
      FUZZ_FAIL("negative dimension");
  size_t nbytes = (size_t)lg_numel(t) * lg_dtype_size(t->dtype);
  if (t->storage->nbytes < nbytes)
    FUZZ_FAIL("storage of %zu bytes for %zu bytes of data",
              t->storage->nbytes, nbytes);
  const unsigned char *p = lg_data_ptr(t);
  unsigned char acc = 0;
  for (size_t i = 0; i < nbytes; i++)
    acc ^= p[i];
  fuzz_sink = acc;
}

/* a reader's result: the tensor's metadata, or its error, checked */
static inline void fuzz_check_result(const lg_tensor *t, const char *what) {
  if (t)
    fuzz_check_tensor(t);
  else
    fuzz_check_error(what);
}

static void fuzz_check_same(const lg_tensor *a, const lg_tensor *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim)
    FUZZ_FAIL("memory and file readers disagree on dtype or rank");
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      FUZZ_FAIL("memory and file readers disagree on the shape");
  size_t nbytes = (size_t)lg_numel(a) * lg_dtype_size(a->dtype);
  if (nbytes && memcmp(lg_data_ptr(a), lg_data_ptr(b), nbytes) != 0) {
    /* NaN payloads may differ after conversion; compare as values */
    for (int64_t i = 0; i < lg_numel(a); i++) {
      double x = lg_load(a->dtype, lg_data_ptr(a), i);
      double y = lg_load(b->dtype, lg_data_ptr(b), i);
      if (x != y && !(x != x && y != y))
        FUZZ_FAIL("memory and file readers disagree on element %lld",
                  (long long)i);
    }
  }
}

/* writes the input to a scratch file (one per process) and returns its
 * path, or NULL when the file cannot be written (the file path is then
 * skipped) */
static char fuzz_path[256];
static void fuzz_unlink_scratch(void) { unlink(fuzz_path); }

static const char *fuzz_scratch_file(const uint8_t *data, size_t size,
                                     const char *suffix) {
  char *path = fuzz_path;
  if (!path[0]) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path - 16, "%s/lgrad-fuzz-%ld",
             dir && *dir ? dir : "/tmp", (long)getpid());
    strcat(path, suffix);
    atexit(fuzz_unlink_scratch);
  }
  FILE *f = fopen(path, "wb");
  if (!f)
    return NULL;
  size_t w = size ? fwrite(data, 1, size, f) : 0;
  if (fclose(f) != 0 || w != size) {
    unlink(path);
    return NULL;
  }
  return path;
}

#endif
