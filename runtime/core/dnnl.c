/*
 * dnnl.c -- loads oneDNN at first use (see dnnl.h).
 *
 * Debian's libdnnl runs its threads on GNU OpenMP.  Beside OpenBLAS's own
 * threads, OpenMP's spinning waits starve them on small machines, so the
 * passive wait policy is set (unless the user chose one) before libgomp is
 * loaded with it.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "dnnl.h"
#include "internal.h"

static lg_dnnl_api api;
static const lg_dnnl_api *loaded;
static const char *why_not = "oneDNN not loaded yet";
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int want_threads;

static void load(void) {
  if (getenv("LGRAD_NO_DNNL")) {
    why_not = "oneDNN disabled (LGRAD_NO_DNNL)";
    return;
  }
  setenv("OMP_WAIT_POLICY", "passive", 0);
  void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    why_not = "no oneDNN (libdnnl.so.2 not found)";
    return;
  }
#define LG_DNNL_SYM(f)                                                         \
  if (!(*(void **)&api.f = dlsym(h, #f))) {                                    \
    why_not = "oneDNN without " #f;                                            \
    return;                                                                    \
  }
  LG_DNNL_FUNCS(LG_DNNL_SYM)
#undef LG_DNNL_SYM
  *(void **)&api.omp_set_num_threads = dlsym(h, "omp_set_num_threads");
  if (api.dnnl_engine_create(&api.engine, dnnl_cpu, 0) != dnnl_success ||
      api.dnnl_stream_create(&api.stream, api.engine,
                             dnnl_stream_default_flags) != dnnl_success) {
    why_not = "oneDNN found, but its CPU engine could not be created";
    return;
  }
  if (api.omp_set_num_threads)
    api.omp_set_num_threads(want_threads ? want_threads
                                         : lg_get_num_threads());
  loaded = &api;
}

const lg_dnnl_api *lg_dnnl(void) {
  pthread_once(&once, load);
  return loaded;
}

void lg_dnnl_set_threads(int n) {
  want_threads = n;
  if (loaded && api.omp_set_num_threads)
    api.omp_set_num_threads(n);
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
  case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
  case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
  case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
  case dnnl_cpu_isa_avx512_core: return "avx512_core";
  case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
  case dnnl_cpu_isa_avx2: return "avx2";
  case dnnl_cpu_isa_avx: return "avx";
  case dnnl_cpu_isa_sse41: return "sse41";
  default: return "other";
  }
}

const char *lg_dnnl_info(void) {
  const lg_dnnl_api *d = lg_dnnl();
  if (!d)
    return why_not;
  static char buf[96];
  const dnnl_version_t *v = d->dnnl_version();
  snprintf(buf, sizeof buf, "oneDNN %d.%d.%d, kernels %s", v->major, v->minor,
           v->patch, isa_name(d->dnnl_get_effective_cpu_isa()));
  return buf;
}
