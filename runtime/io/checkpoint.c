/*
 * checkpoint.c -- lg_checkpoint_save / _load: named tensors to and from a
 * safetensors file, for hosts that use the runtime from C.  The files are
 * the ones the Lua side's lg.save writes for a table of tensors (nested
 * keys dotted: "fc1.weight"), and lg.load reads what these write.
 */
#include <stdlib.h>
#include <string.h>

#include "io.h"

int lg_checkpoint_save(const char *path, int n, const char *const *names,
                       lg_tensor *const *tensors) {
  if (!path || n < 0 || (n > 0 && (!names || !tensors))) {
    lg_seterr("lg_checkpoint_save: %s", !path   ? "argument 1 (path) is NULL"
                                        : n < 0 ? "argument 2 (n) is negative"
                                                : "names or tensors is NULL");
    return -1;
  }
  lg_named_tensor *list = calloc(n > 0 ? (size_t)n : 1, sizeof *list);
  if (!list) {
    lg_seterr("lg_checkpoint_save: out of memory");
    return -1;
  }
  for (int i = 0; i < n; i++) {
    if (!names[i] || !tensors[i] || tensors[i]->storage->revoked) {
      lg_seterr("lg_checkpoint_save: %s %d is %s", names[i] ? "tensor" : "name",
                i, names[i] && tensors[i] ? "revoked" : "NULL");
      free(list);
      return -1;
    }
    list[i].name = (char *)names[i];
    list[i].name_len = strlen(names[i]);
    list[i].tensor = tensors[i];
  }
  int rc = lg_safetensors_save(path, (size_t)n, list, 0, NULL);
  free(list);
  return rc;
}

int lg_checkpoint_load(const char *path, int *n, char ***names,
                       lg_tensor ***tensors) {
  if (!path || !n || !names || !tensors) {
    lg_seterr("lg_checkpoint_load: argument %d is NULL", !path    ? 1
                                                         : !n     ? 2
                                                         : !names ? 3
                                                                  : 4);
    return -1;
  }
  *n = 0;
  *names = NULL;
  *tensors = NULL;
  lg_st_file f;
  if (lg_safetensors_load(path, &f) < 0)
    return -1;
  size_t count = f.ntensors;
  char **nm = calloc(count ? count : 1, sizeof *nm);
  lg_tensor **ts = calloc(count ? count : 1, sizeof *ts);
  if (!nm || !ts) {
    free(nm);
    free(ts);
    lg_st_file_clear(&f);
    lg_seterr("lg_checkpoint_load: out of memory");
    return -1;
  }
  for (size_t i = 0; i < count; i++) {
    nm[i] = malloc(f.tensors[i].name_len + 1);
    if (!nm[i]) {
      lg_checkpoint_free((int)i, nm, ts);
      lg_st_file_clear(&f);
      lg_seterr("lg_checkpoint_load: out of memory");
      return -1;
    }
    memcpy(nm[i], f.tensors[i].name, f.tensors[i].name_len + 1);
    ts[i] = f.tensors[i].tensor; /* ownership moves to the caller */
    f.tensors[i].tensor = NULL;
  }
  lg_st_file_clear(&f);
  *n = (int)count;
  *names = nm;
  *tensors = ts;
  return 0;
}

void lg_checkpoint_free(int n, char **names, lg_tensor **tensors) {
  for (int i = 0; i < n; i++) {
    if (names)
      free(names[i]);
    if (tensors)
      lg_release(tensors[i]);
  }
  free(names);
  free(tensors);
}
