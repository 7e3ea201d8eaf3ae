/*
 * parallel.c -- lg_parallel_for: a small persistent thread pool for large
 * element-wise and memory-bound kernels (im2col, pooling, big pointwise
 * loops, optimizer updates).
 *
 * The pool has as many threads as OpenBLAS is told to use (the caller plus
 * lg_get_num_threads() - 1 workers), so that the two never run at once on
 * more cores than that: a parallel region runs to its end before the
 * calling thread goes on to a GEMM, and BLAS returns before the next
 * region starts.  A range is cut into a few contiguous chunks per thread
 * at fixed boundaries, which the threads claim one at a time; each chunk
 * writes its own outputs, so the results do not depend on which thread ran
 * it.  The caller claims chunks too and waits only for chunks already
 * claimed, so a worker that wakes late (on a loaded machine) delays
 * nothing.  Calls from inside a region, or from a second host thread while
 * the pool is busy, run serially on the caller.
 *
 * Workers spin a few microseconds after a job for the next one, then sleep
 * on a condition variable, so they do not take cores from BLAS's threads.
 * They are stopped and joined when the library is unloaded; a child made
 * by fork() starts with no workers and makes its own on first use.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

#define LG_POOL_MAX 64
#define CHUNKS_PER_THREAD 4

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* spins of a waiting worker before it sleeps, and of the caller waiting
 * for its workers; LG_POOL_NO_SPIN keeps only the locked paths, for race
 * checkers that do not follow atomics */
#ifdef LG_POOL_NO_SPIN
#define WORKER_SPINS 0
#define CALLER_SPINS 0
#else
#define WORKER_SPINS 256
#define CALLER_SPINS 4096
#endif

static struct {
  pthread_mutex_t busy; /* held by the thread running a region */
  pthread_mutex_t mu;   /* guards the job and the condition variables */
  pthread_cond_t wake, done;
  pthread_t tid[LG_POOL_MAX];
  int nworkers;
  /* the current job, written under mu before gen is advanced */
  lg_range_fn fn;
  void *ctx;
  const lg_cancel *cancel; /* the caller's token, checked between chunks */
  int64_t n;
  int nchunks;
  unsigned gen;      /* advanced (atomically) for every job */
  uint64_t next;     /* gen << 32 | next chunk to claim (atomic) */
  int finished;      /* chunks of the current job done (atomic) */
  int sleepers;      /* callers waiting on done */
  bool stop;
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER,
          .mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static LG_THREAD bool in_region;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static inline int64_t chunk_begin(int64_t n, int nchunks, int i) {
  return (int64_t)((__int128)n * i / nchunks);
}

/* runs chunks of job gen until none is left; the claim fails once the job
 * has changed, so stale parameters never run */
static void run_chunks(unsigned gen, lg_range_fn fn, void *ctx, int64_t n,
                       int nchunks, const lg_cancel *cancel) {
  for (;;) {
    uint64_t v = __atomic_load_n(&pool.next, __ATOMIC_ACQUIRE);
    int i;
    do {
      i = (int)(uint32_t)v;
      if ((unsigned)(v >> 32) != gen || i >= nchunks)
        return;
    } while (!__atomic_compare_exchange_n(&pool.next, &v, v + 1, true,
                                          __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    int64_t b = chunk_begin(n, nchunks, i), e = chunk_begin(n, nchunks, i + 1);
    /* a cancelled job claims and skips its remaining chunks */
    if (b < e && !lg_cancel_state(cancel))
      fn(ctx, b, e);
#ifdef LG_POOL_NO_SPIN
    /* every chunk's end under the lock: the hand-over a race checker sees */
    pthread_mutex_lock(&pool.mu);
    if (__atomic_add_fetch(&pool.finished, 1, __ATOMIC_ACQ_REL) == nchunks &&
        pool.sleepers)
      pthread_cond_broadcast(&pool.done);
    pthread_mutex_unlock(&pool.mu);
#else
    if (__atomic_add_fetch(&pool.finished, 1, __ATOMIC_ACQ_REL) == nchunks) {
      pthread_mutex_lock(&pool.mu);
      if (pool.sleepers)
        pthread_cond_broadcast(&pool.done);
      pthread_mutex_unlock(&pool.mu);
    }
#endif
  }
}

static void *worker(void *arg) {
  (void)arg;
  in_region = true;
  unsigned seen = 0;
  for (;;) {
    unsigned g = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE);
    for (int s = 0; s < WORKER_SPINS && g == seen; s++) {
      CPU_RELAX();
      g = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE);
    }
    pthread_mutex_lock(&pool.mu);
    while ((g = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE)) == seen &&
           !pool.stop)
      pthread_cond_wait(&pool.wake, &pool.mu);
    bool stop = pool.stop;
    lg_range_fn fn = pool.fn;
    void *ctx = pool.ctx;
    const lg_cancel *cancel = pool.cancel;
    int64_t n = pool.n;
    int nchunks = pool.nchunks;
    pthread_mutex_unlock(&pool.mu);
    if (stop)
      break;
    seen = g;
    run_chunks(g, fn, ctx, n, nchunks, cancel);
  }
  return NULL;
}

/* with busy held */
static void pool_stop(void) {
  if (!pool.nworkers)
    return;
  pthread_mutex_lock(&pool.mu);
  pool.stop = true;
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mu);
  for (int i = 0; i < pool.nworkers; i++)
    pthread_join(pool.tid[i], NULL);
  pool.nworkers = 0;
  pool.stop = false;
}

/* with busy held: nthreads - 1 workers (fewer if threads cannot be made) */
static void pool_resize(int nthreads) {
  pool_stop();
  int want = nthreads - 1;
  if (want > LG_POOL_MAX)
    want = LG_POOL_MAX;
  /* workers take no signals: they stay with the host's threads */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  unsigned g = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE);
  /* a new worker starts at gen 0: make sure that is not a job */
  if (g != 0) {
    pthread_mutex_lock(&pool.mu);
    __atomic_store_n(&pool.gen, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pool.next, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&pool.mu);
  }
  while (pool.nworkers < want &&
         pthread_create(&pool.tid[pool.nworkers], NULL, worker,
                        NULL) == 0)
    pool.nworkers++;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* after fork() only the forking thread exists in the child */
static void atfork_child(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  pool.busy = m;
  pool.mu = m;
  pool.wake = c;
  pool.done = c;
  pool.nworkers = 0;
  pool.gen = 0;
  pool.next = 0;
  pool.finished = 0;
  pool.sleepers = 0;
  pool.stop = false;
  in_region = false;
}

static void register_atfork(void) {
  pthread_atfork(NULL, NULL, atfork_child);
}

void lg_parallel_for(int64_t n, int64_t grain, lg_range_fn fn, void *ctx) {
  if (n <= 0)
    return;
  if (grain < 1)
    grain = 1;
  int nthreads = in_region ? 1 : lg_get_num_threads();
  if (nthreads > LG_POOL_MAX + 1)
    nthreads = LG_POOL_MAX + 1;
  int64_t maxchunks = (n + grain - 1) / grain;
  if (nthreads < 2 || maxchunks < 2 || pthread_mutex_trylock(&pool.busy) != 0) {
    fn(ctx, 0, n);
    return;
  }
  pthread_once(&atfork_once, register_atfork);
  if (pool.nworkers != nthreads - 1)
    pool_resize(nthreads);
  if (!pool.nworkers) {
    pthread_mutex_unlock(&pool.busy);
    fn(ctx, 0, n);
    return;
  }
  int64_t most = (int64_t)CHUNKS_PER_THREAD * (pool.nworkers + 1);
  int nchunks = (int)(maxchunks < most ? maxchunks : most);
  in_region = true;
  pthread_mutex_lock(&pool.mu);
  pool.fn = fn;
  pool.ctx = ctx;
  pool.cancel = lg_cancel_current();
  pool.n = n;
  pool.nchunks = nchunks;
  __atomic_store_n(&pool.finished, 0, __ATOMIC_RELEASE);
  unsigned gen = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE) + 1;
  if (gen == 0)
    gen = 1; /* 0 is what a new worker has seen */
  __atomic_store_n(&pool.next, (uint64_t)gen << 32, __ATOMIC_RELEASE);
  __atomic_store_n(&pool.gen, gen, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mu);
  run_chunks(gen, fn, ctx, n, nchunks, pool.cancel);
  for (int s = 0; s < CALLER_SPINS &&
                  __atomic_load_n(&pool.finished, __ATOMIC_ACQUIRE) != nchunks;
       s++)
    CPU_RELAX();
  if (CALLER_SPINS == 0 ||
      __atomic_load_n(&pool.finished, __ATOMIC_ACQUIRE) != nchunks) {
    pthread_mutex_lock(&pool.mu);
    pool.sleepers++;
    while (__atomic_load_n(&pool.finished, __ATOMIC_ACQUIRE) != nchunks)
      pthread_cond_wait(&pool.done, &pool.mu);
    pool.sleepers--;
    pthread_mutex_unlock(&pool.mu);
  }
  in_region = false;
  pthread_mutex_unlock(&pool.busy);
  if (lg_cancel_current()) /* chunks may have been skipped: tell the owner */
    (void)lg_cancel_check();
}

/* when the library is unloaded (lua_close, dlclose, exit): stop and join
 * the workers */
__attribute__((destructor)) static void pool_unload(void) {
  if (pthread_mutex_trylock(&pool.busy) != 0)
    return; /* a region is running on another thread: leave it */
  pool_stop();
  pthread_mutex_unlock(&pool.busy);
}
