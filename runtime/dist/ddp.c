/*
 * ddp.c -- gradient buckets all-reduced while backward runs.
 *
 * Parameters are taken in reverse order (backward produces the last
 * layers' gradients first) and cut into buckets of one dtype and about
 * bucket_bytes each; the cut depends only on the parameters, so every rank
 * has the same buckets.  The autograd engine's grad-ready hook copies each
 * final gradient into its bucket's flat buffer; when a bucket is full it
 * starts an MPI_Iallreduce (sum), but only after every bucket before it
 * has started, so that collectives are issued in the same order on every
 * rank whatever the timing.  The end of backward starts what is left
 * (a parameter without a gradient contributes zeros), waits for all,
 * divides by the number of ranks and writes the gradients back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/internal.h"
#include "dist.h"

typedef struct {
  lg_dtype dtype;
  int first, count; /* slots [first, first + count) of d->order */
  int64_t numel;
  lg_tensor *flat; /* 1-d, numel */
  int ready;
  bool launched;
  lg_dist_work *work;
} bucket;

typedef struct {
  lg_tensor *param;
  int index; /* in the caller's list */
  int bucket;
  int64_t offset; /* in the bucket's flat buffer */
  bool ready;
} slot;

struct lg_ddp {
  int n, nbuckets;
  slot *order;   /* bucket order */
  slot **by_ptr; /* sorted by parameter address, for the hook */
  bucket *buckets;
  int next_launch;
  bool sync, active;
  lg_ddp_stats stats;
  lg_ddp *next_ddp;
};

static lg_ddp *all_ddp; /* the live ones, which the engine hook serves */
#define FIRST_BUCKET_BYTES (1024.0 * 1024.0)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_slot(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)(*(slot *const *)a)->param;
  uintptr_t y = (uintptr_t)(*(slot *const *)b)->param;
  return x < y ? -1 : x > y;
}

static slot *find(lg_ddp *d, lg_tensor *p) {
  slot key = {.param = p}, *kp = &key;
  slot **s = bsearch(&kp, d->by_ptr, d->n, sizeof *d->by_ptr, cmp_slot);
  return s ? *s : NULL;
}

/* the bucket's slice for slot s, as a view shaped like the parameter */
static lg_tensor *slice_of(lg_ddp *d, slot *s) {
  bucket *b = &d->buckets[s->bucket];
  lg_tensor *p = s->param;
  int64_t strides[LG_MAX_DIMS];
  lg_contiguous_strides(p->ndim, p->shape, strides);
  return lg_wrap(b->dtype, p->ndim, p->shape, strides,
                 (char *)lg_data_ptr(b->flat) +
                     s->offset * lg_dtype_size(b->dtype),
                 NULL, NULL);
}

/* copies the parameter's gradient (or zeros) into its slice */
static int fill_slot(lg_ddp *d, slot *s) {
  lg_tensor *view = slice_of(d, s);
  if (!view)
    return -1;
  int rc = s->param->grad ? lg_copy_(view, s->param->grad) : lg_zero_(view);
  lg_release(view);
  if (!rc) {
    s->ready = true;
    d->buckets[s->bucket].ready++;
  }
  return rc;
}

static int launch_ready(lg_ddp *d, bool early) {
  while (d->next_launch < d->nbuckets) {
    bucket *b = &d->buckets[d->next_launch];
    if (b->ready < b->count)
      return 0;
    if (!(b->work = lg_dist_iall_reduce(b->flat, LG_DIST_SUM)))
      return -1;
    b->launched = true;
    if (early)
      d->stats.launched_early++;
    else
      d->stats.launched_late++;
    d->next_launch++;
  }
  return 0;
}

/* MPI progresses only inside MPI calls: nudge the running ones, unless
 * the progress thread does (waiting for its lock would stall backward) */
static int progress(lg_ddp *d) {
  if (lg_dist_progress_thread())
    return 0;
  for (int i = 0; i < d->next_launch; i++) {
    bool done;
    if (d->buckets[i].work && lg_dist_test(d->buckets[i].work, &done))
      return -1;
  }
  return 0;
}

static void reset_round(lg_ddp *d) {
  for (int i = 0; i < d->nbuckets; i++) {
    lg_dist_work_free(d->buckets[i].work);
    d->buckets[i].work = NULL;
    d->buckets[i].ready = 0;
    d->buckets[i].launched = false;
  }
  for (int i = 0; i < d->n; i++)
    d->order[i].ready = false;
  d->next_launch = 0;
  d->active = false;
}

int lg_ddp_finish(lg_ddp *d) {
  if (!d->active)
    return 0;
  double t0 = now();
  int rc = 0;
  for (int i = 0; i < d->n && !rc; i++)
    if (!d->order[i].ready)
      rc = fill_slot(d, &d->order[i]);
  if (!rc)
    rc = launch_ready(d, false);
  for (int i = 0; i < d->nbuckets && !rc; i++) {
    bucket *b = &d->buckets[i];
    rc = lg_dist_wait(b->work);
    b->work = NULL;
    if (!rc && lg_dist_size() > 1)
      rc = lg_binary_scalar_(LG_OP_DIV, b->flat, (double)lg_dist_size());
    for (int k = b->first; k < b->first + b->count && !rc; k++) {
      slot *s = &d->order[k];
      lg_tensor *view = slice_of(d, s);
      if (!view) {
        rc = -1;
        break;
      }
      if (!s->param->grad) {
        bool was = lg_set_grad_enabled(false);
        s->param->grad = lg_clone(view);
        lg_set_grad_enabled(was);
        rc = s->param->grad ? 0 : -1;
      } else {
        rc = lg_copy_(s->param->grad, view);
      }
      lg_release(view);
    }
  }
  d->stats.wait_seconds += now() - t0;
  d->stats.backwards++;
  reset_round(d);
  return rc;
}

/* names the wrapper in a collective's error */
static int ddp_error(void) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s", lg_errmsg());
  lg_seterr("DistributedDataParallel: %s", msg);
  return -1;
}

/* the engine's hook: one leaf final, or (NULL) backward done */
static int on_grad_ready(lg_tensor *leaf, void *ctx) {
  (void)ctx;
  for (lg_ddp *d = all_ddp; d; d = d->next_ddp) {
    if (!d->sync)
      continue;
    if (!leaf) {
      if (lg_ddp_finish(d))
        return ddp_error();
      continue;
    }
    slot *s = find(d, leaf);
    if (!s || s->ready)
      continue;
    d->active = true;
    double t0 = now();
    if (fill_slot(d, s) || launch_ready(d, true) || progress(d)) {
      reset_round(d);
      return ddp_error();
    }
    d->stats.hook_seconds += now() - t0;
  }
  return 0;
}

lg_ddp *lg_ddp_new(int n, lg_tensor **params, double bucket_bytes) {
  lg_ddp *d = calloc(1, sizeof *d);
  if (!d || !(d->order = calloc(n ? n : 1, sizeof *d->order)) ||
      !(d->by_ptr = calloc(n ? n : 1, sizeof *d->by_ptr)) ||
      !(d->buckets = calloc(n ? n : 1, sizeof *d->buckets))) {
    if (d) {
      free(d->order);
      free(d->by_ptr);
    }
    free(d);
    lg_seterr("DistributedDataParallel: out of memory");
    return NULL;
  }
  d->sync = true;
  /* reverse order; a new bucket when the dtype changes or it is full */
  bucket *b = NULL;
  for (int i = n - 1, k = 0; i >= 0; i--, k++) {
    lg_tensor *p = params[i];
    size_t bytes = b ? b->numel * lg_dtype_size(b->dtype) : 0;
    /* the first bucket closes at 1 MB (as PyTorch's), so that the last
     * layers' gradients travel while the first layers' are computed */
    double cap = d->nbuckets == 1 && bucket_bytes > FIRST_BUCKET_BYTES
                     ? FIRST_BUCKET_BYTES
                     : bucket_bytes;
    if (!b || b->dtype != p->dtype || (double)bytes >= cap) {
      b = &d->buckets[d->nbuckets++];
      b->dtype = p->dtype;
      b->first = k;
    }
    slot *s = &d->order[k];
    s->param = lg_retain(p);
    s->index = i;
    s->bucket = d->nbuckets - 1;
    s->offset = b->numel;
    b->numel += lg_numel(p);
    b->count++;
    d->by_ptr[k] = s;
    d->n = k + 1;
  }
  qsort(d->by_ptr, d->n, sizeof *d->by_ptr, cmp_slot);
  for (int i = 0; i < d->nbuckets; i++) {
    int64_t len = d->buckets[i].numel;
    if (!(d->buckets[i].flat = lg_zeros(d->buckets[i].dtype, 1, &len))) {
      lg_ddp_free(d);
      return NULL;
    }
  }
  d->next_ddp = all_ddp;
  all_ddp = d;
  lg_set_grad_ready_hook(on_grad_ready, NULL);
  return d;
}

void lg_ddp_free(lg_ddp *d) {
  if (!d)
    return;
  for (lg_ddp **p = &all_ddp; *p; p = &(*p)->next_ddp)
    if (*p == d) {
      *p = d->next_ddp;
      break;
    }
  if (!all_ddp)
    lg_set_grad_ready_hook(NULL, NULL);
  reset_round(d);
  for (int i = 0; i < d->n; i++)
    lg_release(d->order[i].param);
  for (int i = 0; i < d->nbuckets; i++)
    lg_release(d->buckets[i].flat);
  free(d->order);
  free(d->by_ptr);
  free(d->buckets);
  free(d);
}

void lg_ddp_set_sync(lg_ddp *d, bool on) { d->sync = on; }
int lg_ddp_nbuckets(const lg_ddp *d) { return d->nbuckets; }
lg_ddp_stats lg_ddp_get_stats(const lg_ddp *d) { return d->stats; }

int lg_ddp_bucket(const lg_ddp *d, int b, int *idx, int cap) {
  if (b < 0 || b >= d->nbuckets)
    return 0;
  const bucket *bk = &d->buckets[b];
  for (int k = 0; k < bk->count && k < cap; k++)
    idx[k] = d->order[bk->first + k].index;
  return bk->count;
}
