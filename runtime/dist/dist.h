/*
 * dist.h -- collectives over many processes (Open MPI), no Lua here.
 *
 * Overview
 *   lg_dist_init(timeout) joins the job when the process was started by
 *   mpirun: it loads lgrad_mpi.so (the one piece linked with libmpi) and
 *   calls MPI_Init_thread.  Started any other way, the process is rank 0 of
 *   1 and every collective is an identity.  Ranks are 0-based here; the Lua
 *   binding adds one.
 *
 *   Every collective is non-blocking underneath and its wait polls
 *   MPI_Test against a deadline (timeout seconds, default 300).  A rank
 *   that does not join in time is named in the error: the others ask every
 *   rank where it is over a control channel and check whether its process
 *   still exists.  After such an error the job is "broken": later
 *   collectives fail at once and lg_dist_finalize skips MPI_Finalize.
 *
 *     lg_dist_init(300);
 *     lg_dist_all_reduce(t, LG_DIST_MEAN);            -- in place
 *     lg_dist_work *w = lg_dist_iall_reduce(g, LG_DIST_SUM);
 *     ... compute ...
 *     lg_dist_wait(w);                                -- frees w
 *     lg_dist_finalize();
 *
 *   Counts past INT_MAX (or lg_dist_set_max_count) are split into several
 *   MPI calls.  Any dtype, contiguous or not; bools reduce as or (sum, max)
 *   and and (min); int64 mean is the floor of the sum over the ranks.
 */
#ifndef LG_DIST_H
#define LG_DIST_H

#include "../lgrad.h"

typedef enum { LG_DIST_SUM, LG_DIST_MEAN, LG_DIST_MAX, LG_DIST_MIN } lg_dist_op;

int lg_dist_init(double timeout); /* 0, or -1 with lg_errmsg */
bool lg_dist_initialized(void);
bool lg_dist_mpi(void); /* true when running under MPI */
int lg_dist_rank(void);
int lg_dist_size(void);
void lg_dist_set_timeout(double seconds);
double lg_dist_timeout(void);
/* the largest element count of one MPI call (tests lower it) */
void lg_dist_set_max_count(int64_t n);
/* collectives started so far (the same on every rank of a correct job) */
int64_t lg_dist_seq(void);
/* true while a thread moves non-blocking all-reduces on by itself */
bool lg_dist_progress_thread(void);
/* ends the job: a normal MPI_Finalize when every rank agrees; msg gets a
 * reason when it could not (a rank missing or broken); 0 or -1 */
int lg_dist_finalize(char *msg, size_t n);

int lg_dist_barrier(void);
int lg_dist_all_reduce(lg_tensor *t, lg_dist_op op);
int lg_dist_broadcast(lg_tensor *t, int root);
/* a new tensor (size, ...t's shape) holding every rank's t */
lg_tensor *lg_dist_all_gather(lg_tensor *t);
/* reduces t over ranks, returns this rank's 1/size slice along dim 0 */
lg_tensor *lg_dist_reduce_scatter(lg_tensor *t, lg_dist_op op);

/* non-blocking all-reduce in place on t (retained until the wait) */
typedef struct lg_dist_work lg_dist_work;
lg_dist_work *lg_dist_iall_reduce(lg_tensor *t, lg_dist_op op);
int lg_dist_test(lg_dist_work *w, bool *done); /* drives progress */
int lg_dist_wait(lg_dist_work *w);             /* and frees w */
void lg_dist_work_free(lg_dist_work *w);       /* without waiting */

/* ---- data parallelism: buckets of gradients reduced during backward ----
 * lg_ddp_new groups the parameters (retained) in reverse order into
 * buckets of about bucket_bytes of one dtype (the first closes at 1 MB).  While
 * it lives, the autograd engine tells it when each parameter's gradient is
 * final; a complete bucket starts its all-reduce at once (buckets launch in
 * order, the same on every rank), and the end of backward waits for all and
 * writes the averaged gradients back.  Parameters without a gradient send
 * zeros. */
typedef struct lg_ddp lg_ddp;
typedef struct {
  int64_t backwards;      /* synchronised backward passes */
  int64_t launched_early; /* buckets started before backward ended */
  int64_t launched_late;  /* buckets started at the end (unused params) */
  double wait_seconds;    /* time spent waiting at the end of backward */
  double hook_seconds;    /* time in the hook during backward (copies into
                             buckets, starting and nudging all-reduces) */
} lg_ddp_stats;
lg_ddp *lg_ddp_new(int n, lg_tensor **params, double bucket_bytes);
void lg_ddp_free(lg_ddp *d);
void lg_ddp_set_sync(lg_ddp *d, bool on);
int lg_ddp_nbuckets(const lg_ddp *d);
/* the 0-based parameter indices of bucket b, in bucket order; returns the
 * count, fills at most cap */
int lg_ddp_bucket(const lg_ddp *d, int b, int *idx, int cap);
lg_ddp_stats lg_ddp_get_stats(const lg_ddp *d);
/* waits for every bucket now (the end of backward does it by itself) */
int lg_ddp_finish(lg_ddp *d);

#endif
