/*
 * alloc.c -- the caching allocator for tensor data, storage and header
 * free lists, and the live-byte count the Lua binding reports to its
 * collector.
 *
 * Sizes are rounded up to a power of two (at least 64 bytes) and freed
 * blocks are kept per size class, so a training loop that makes the same
 * temporaries each step reuses them instead of calling malloc.  The cache
 * holds at most LG_CACHE_MAX bytes; past that, blocks go back to libc.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define LG_NBINS 48
#define LG_MIN_SHIFT 6
#define LG_CACHE_MAX ((size_t)256 << 20)
#define LG_HEADERS_MAX 4096

typedef struct lg_block {
  struct lg_block *next;
} lg_block;

/* shared cache, behind a lock */
static pthread_mutex_t bins_lock = PTHREAD_MUTEX_INITIALIZER;
static lg_block *bins[LG_NBINS];
static size_t cached_bytes;
static size_t live_bytes; /* atomic */

/* a small per-thread cache in front of it: no lock on the hot path */
#define LG_TL_SHIFT_MAX 20 /* blocks up to 1 MB */
/* up to 256 KB of each small class (a young collection frees a few
 * hundred boxes' headers and scalars at once), and 16 blocks of the
 * large ones */
#define LG_TL_BYTES ((size_t)1 << 18)
#define LG_TL_MIN 16
static int tl_limit(int c) {
  size_t n = LG_TL_BYTES >> c;
  return n > LG_TL_MIN ? (int)n : LG_TL_MIN;
}
static LG_THREAD lg_block *tl_bins[LG_TL_SHIFT_MAX + 1];
static LG_THREAD int tl_count[LG_TL_SHIFT_MAX + 1];

static int size_class(size_t n) {
  if (n <= ((size_t)1 << LG_MIN_SHIFT))
    return LG_MIN_SHIFT;
  return 64 - __builtin_clzll((unsigned long long)(n - 1));
}

/* requests above this many bytes fail at once with "out of memory":
 * $LGRAD_MAX_BYTES, else the machine's physical memory */
static size_t max_bytes;
static pthread_once_t max_once = PTHREAD_ONCE_INIT;

static void read_max_bytes(void) {
  const char *env = getenv("LGRAD_MAX_BYTES");
  if (env && *env) {
    char *end;
    unsigned long long v = strtoull(env, &end, 10);
    if (*end == 0 && v > 0) {
      __atomic_store_n(&max_bytes, (size_t)v, __ATOMIC_RELEASE);
      return;
    }
  }
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  __atomic_store_n(&max_bytes,
                   pages > 0 && psize > 0 ? (size_t)pages * (size_t)psize
                                          : ((size_t)1 << 46),
                   __ATOMIC_RELEASE);
}

/* A block from libc.  Blocks of 2 MB and more are aligned to 2 MB and
 * marked for transparent huge pages: the first touch of a fresh block (a
 * GEMM's output, say) then costs one page fault per 2 MB instead of one
 * per 4 KB, which slowed a 1024^3 matmul from Lua by a fifth. */
#define LG_HUGE_SHIFT 21

/* a host's allocator for storage blocks (lg_set_allocator), or libc's */
static lg_block_alloc_fn host_alloc;
static lg_block_free_fn host_free;
static void *host_ctx;
static int blocks_made; /* a block was ever made: too late to switch */

int lg_set_allocator(lg_block_alloc_fn alloc, lg_block_free_fn free_fn,
                     void *ctx) {
  if ((alloc == NULL) != (free_fn == NULL)) {
    lg_seterr("lg_set_allocator: give both functions or neither");
    return -1;
  }
  if (__atomic_load_n(&blocks_made, __ATOMIC_ACQUIRE)) {
    lg_seterr("lg_set_allocator: tensor memory was already allocated; set "
              "the allocator before the first tensor");
    return -1;
  }
  host_alloc = alloc;
  host_free = free_fn;
  host_ctx = ctx;
  return 0;
}

static void block_free(void *p, size_t sz) {
  if (host_free)
    host_free(p, sz, host_ctx);
  else
    free(p);
}

static void *fresh_block(size_t sz) {
  void *p = NULL;
  size_t align = sz >= ((size_t)1 << LG_HUGE_SHIFT) ? (size_t)1 << LG_HUGE_SHIFT
                                                    : 64;
  __atomic_store_n(&blocks_made, 1, __ATOMIC_RELEASE);
  if (host_alloc) {
    p = host_alloc(sz, align, host_ctx);
    if (p && ((uintptr_t)p & 63)) { /* kernels rely on 64-byte alignment */
      host_free(p, sz, host_ctx);
      return NULL;
    }
    return p;
  }
  if (posix_memalign(&p, align, sz) != 0)
    return NULL;
#ifdef MADV_HUGEPAGE
  if (align > 64)
    madvise(p, sz, MADV_HUGEPAGE);
#endif
  return p;
}

void *lg_alloc(size_t nbytes) {
  if (nbytes == 0)
    nbytes = 1;
  size_t limit = __atomic_load_n(&max_bytes, __ATOMIC_ACQUIRE);
  if (!limit) {
    pthread_once(&max_once, read_max_bytes);
    limit = __atomic_load_n(&max_bytes, __ATOMIC_ACQUIRE);
  }
  int c = size_class(nbytes);
  if (c >= LG_NBINS || nbytes > limit) {
    lg_seterr("out of memory (%zu bytes requested)", nbytes);
    return NULL;
  }
  size_t sz = (size_t)1 << c;
  void *p = NULL;
  __atomic_add_fetch(&live_bytes, sz, __ATOMIC_RELAXED);
  if (c <= LG_TL_SHIFT_MAX && tl_bins[c]) {
    p = tl_bins[c];
    tl_bins[c] = tl_bins[c]->next;
    tl_count[c]--;
    return p;
  }
  pthread_mutex_lock(&bins_lock);
  if (bins[c]) {
    p = bins[c];
    bins[c] = bins[c]->next;
    cached_bytes -= sz;
  }
  pthread_mutex_unlock(&bins_lock);
  if (p)
    return p;
  if (!(p = fresh_block(sz))) {
    /* give the cache back to libc and try once more */
    lg_mem_trim();
    if (!(p = fresh_block(sz))) {
      __atomic_sub_fetch(&live_bytes, sz, __ATOMIC_RELAXED);
      lg_seterr("out of memory (%zu bytes requested)", nbytes);
      return NULL;
    }
  }
  return p;
}

void lg_free(void *p, size_t nbytes) {
  if (!p)
    return;
  if (nbytes == 0)
    nbytes = 1;
  int c = size_class(nbytes);
  size_t sz = (size_t)1 << c;
  __atomic_sub_fetch(&live_bytes, sz, __ATOMIC_RELAXED);
  if (c <= LG_TL_SHIFT_MAX && tl_count[c] < tl_limit(c)) {
    lg_block *b = p;
    b->next = tl_bins[c];
    tl_bins[c] = b;
    tl_count[c]++;
    return;
  }
  pthread_mutex_lock(&bins_lock);
  if (cached_bytes + sz <= LG_CACHE_MAX) {
    lg_block *b = p;
    b->next = bins[c];
    bins[c] = b;
    cached_bytes += sz;
    p = NULL;
  }
  pthread_mutex_unlock(&bins_lock);
  if (p)
    block_free(p, sz);
}

size_t lg_mem_live(void) {
  return __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
}

/* gives this thread's cached blocks back */
static void flush_thread_bins(void) {
  for (int c = 0; c <= LG_TL_SHIFT_MAX; c++) {
    while (tl_bins[c]) {
      lg_block *b = tl_bins[c];
      tl_bins[c] = b->next;
      block_free(b, (size_t)1 << c);
    }
    tl_count[c] = 0;
  }
}

void lg_mem_trim(void) {
  flush_thread_bins();
  pthread_mutex_lock(&bins_lock);
  for (int c = 0; c < LG_NBINS; c++) {
    while (bins[c]) {
      lg_block *b = bins[c];
      bins[c] = b->next;
      block_free(b, (size_t)1 << c);
    }
  }
  cached_bytes = 0;
  pthread_mutex_unlock(&bins_lock);
}

/* ---- per-thread caches and their cleanup ---- */

static pthread_key_t thread_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static LG_THREAD bool thread_registered;

static void thread_exit(void *unused) {
  (void)unused;
  lg_thread_cleanup();
}

static void make_key(void) { pthread_key_create(&thread_key, thread_exit); }

void lg_thread_register(void) {
  if (thread_registered)
    return;
  thread_registered = true;
  pthread_once(&key_once, make_key);
  pthread_setspecific(thread_key, (void *)1);
}

/* ---- storage ---- */

static LG_THREAD lg_storage *free_storages;
static LG_THREAD int nfree_storages;

lg_storage *lg_storage_new(size_t nbytes) {
  lg_storage *s = free_storages;
  if (s) {
    free_storages = s->release_ctx;
    nfree_storages--;
  } else if (!(s = malloc(sizeof *s))) {
    lg_seterr("out of memory");
    return NULL;
  }
  s->data = lg_alloc(nbytes);
  if (!s->data) {
    free(s);
    return NULL;
  }
  s->refcount = 1;
  s->nbytes = nbytes;
  s->release = NULL;
  s->release_ctx = NULL;
  s->version = 0;
  s->revoked = false;
  return s;
}

lg_storage *lg_storage_wrap(void *data, size_t nbytes, lg_release_fn rel,
                            void *ctx) {
  lg_storage *s = malloc(sizeof *s);
  if (!s) {
    lg_seterr("out of memory");
    return NULL;
  }
  s->refcount = 1;
  s->data = data;
  s->nbytes = nbytes;
  s->release = rel;
  s->release_ctx = ctx;
  s->version = 0;
  s->revoked = false;
  return s;
}

static void release_revoked(void *data, void *ctx) {
  (void)data;
  (void)ctx;
}

void lg_storage_revoke(lg_storage *s) {
  if (!s || s->revoked)
    return;
  s->revoked = true;
  if (s->release) { /* wrapped memory goes back to its owner now */
    lg_release_fn rel = s->release;
    s->release = release_revoked;
    rel(s->data, s->release_ctx);
    s->data = NULL;
  }
}

void lg_storage_release(lg_storage *s) {
  if (!s || __atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  if (s->release) {
    s->release(s->data, s->release_ctx);
    free(s);
    return;
  }
  lg_free(s->data, s->nbytes);
  if (nfree_storages < LG_HEADERS_MAX) {
    s->release_ctx = free_storages;
    free_storages = s;
    nfree_storages++;
  } else {
    free(s);
  }
}

/* ---- tensor headers ---- */

static LG_THREAD lg_tensor *free_headers;
static LG_THREAD int nfree_headers;

lg_tensor *lg_tensor_header(void) {
  lg_thread_register();
  lg_tensor *t = free_headers;
  if (t) {
    free_headers = t->next_free;
    nfree_headers--;
  } else if (!(t = malloc(sizeof *t))) {
    lg_seterr("out of memory");
    return NULL;
  }
  memset(t, 0, sizeof *t);
  t->refcount = 1;
  return t;
}

void lg_header_free(lg_tensor *t) {
  if (nfree_headers < LG_HEADERS_MAX) {
    t->next_free = free_headers;
    free_headers = t;
    nfree_headers++;
  } else {
    free(t);
  }
}

void lg_thread_cleanup(void) {
  while (free_headers) {
    lg_tensor *t = free_headers;
    free_headers = t->next_free;
    free(t);
  }
  nfree_headers = 0;
  while (free_storages) {
    lg_storage *st = free_storages;
    free_storages = st->release_ctx;
    free(st);
  }
  nfree_storages = 0;
  lg_autograd_thread_cleanup();
  flush_thread_bins();
}

/* when the library is unloaded (lua_close, dlclose, exit): give the
 * caches back so memory checkers see no lost blocks */
__attribute__((destructor)) static void unload(void) {
  lg_thread_cleanup();
  lg_mem_trim();
}
