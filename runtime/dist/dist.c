/*
 * dist.c -- the communication layer: joining the job, collectives with
 * deadlines, splitting of large counts, naming of missing ranks.
 *
 * libmpi is reached only through the table of lgrad_mpi.so (mpi_api.h),
 * which is loaded when the environment says that mpirun started us.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/internal.h"
#include "dist.h"
#include "mpi_api.h"

static struct {
  const lg_mpi_api *api;
  void *handle;
  bool inited, broken;
  int rank, size;
  double timeout;
  int64_t seq;       /* collectives started */
  int64_t max_count; /* elements per MPI call */
  int64_t *left;     /* per rank: collectives it did before leaving, or -1 */
  int64_t *peer;     /* per rank: pid, host hash (2 words) */
  char broken_msg[400];
} D = {.rank = 0, .size = 1, .timeout = 300, .max_count = INT_MAX};

/* MPI runs at MPI_THREAD_SERIALIZED: the progress thread and the caller's
 * thread take turns through this lock; every call into the MPI piece goes
 * through CALL */
static pthread_mutex_t mpi_mu = PTHREAD_MUTEX_INITIALIZER;
#define CALL(expr)                                                             \
  ({                                                                           \
    pthread_mutex_lock(&mpi_mu);                                               \
    __typeof__(expr) call_rc_ = (expr);                                        \
    pthread_mutex_unlock(&mpi_mu);                                             \
    call_rc_;                                                                  \
  })

/* ---- the progress thread ----
 * Open MPI moves a non-blocking collective on only inside MPI calls, and
 * the caller's thread makes none while it computes the rest of backward.
 * While an all-reduce started by lg_dist_iall_reduce is in flight, this
 * thread pokes MPI every 50 us (LGRAD_DIST_PROGRESS=0 turns it off). */
static struct {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int inflight;
  bool started, stop;
  /* all-reduces to start, in order: the caller's thread never waits for
   * the MPI lock in the middle of backward */
  lg_dist_work *queue_head, *queue_tail;
} P = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *progress_main(void *arg);
static void start_queued(void);

static void inflight_add(int d) {
  if (!P.started)
    return;
  pthread_mutex_lock(&P.mu);
  P.inflight += d;
  if (P.inflight > 0)
    pthread_cond_signal(&P.cv);
  pthread_mutex_unlock(&P.mu);
}

static void progress_stop(void) {
  if (!P.started)
    return;
  pthread_mutex_lock(&P.mu);
  P.stop = true;
  pthread_cond_signal(&P.cv);
  pthread_mutex_unlock(&P.mu);
  pthread_join(P.thread, NULL);
  P.started = false;
}

bool lg_dist_initialized(void) { return D.inited; }
bool lg_dist_progress_thread(void) { return P.started; }
bool lg_dist_mpi(void) { return D.api != NULL; }
int lg_dist_rank(void) { return D.rank; }
int lg_dist_size(void) { return D.size; }
int64_t lg_dist_seq(void) { return D.seq; }
double lg_dist_timeout(void) { return D.timeout; }
void lg_dist_set_timeout(double s) { D.timeout = s; }
void lg_dist_set_max_count(int64_t n) {
  D.max_count = n < 1 ? 1 : n > INT_MAX ? INT_MAX : n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mpi_fail(const char *what, int code) {
  char s[256];
  pthread_mutex_lock(&mpi_mu);
  D.api->error_string(code, s, sizeof s);
  pthread_mutex_unlock(&mpi_mu);
  lg_seterr("%s: MPI error %d: %s", what, code, s);
  return -1;
}

/* ---- loading lgrad_mpi.so ---- */

static bool under_mpirun(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") ||
         getenv("PMI_SIZE");
}

/* LGRAD_MPI_LIB, else beside the file this code was loaded from (the
 * lgrad binary or lgrad.so), else ../lib/lgrad/ from it, else the linker's
 * search path */
static void *load_piece(char *why, size_t n) {
  const char *env = getenv("LGRAD_MPI_LIB");
  char path[4096];
  void *h = NULL;
  int flags = RTLD_NOW | RTLD_GLOBAL; /* Open MPI's plugins need libmpi's
                                         symbols global */
  if (env && *env) {
    if (!(h = dlopen(env, flags)))
      snprintf(why, n, "%s", dlerror());
    return h;
  }
  Dl_info info;
  if (dladdr((void *)&lg_dist_init, &info) && info.dli_fname) {
    const char *slash = strrchr(info.dli_fname, '/');
    int dir = slash ? (int)(slash - info.dli_fname) : 1;
    const char *base = slash ? info.dli_fname : ".";
    static const char *const rel[] = {"/lgrad_mpi.so",
                                      "/../lib/lgrad/lgrad_mpi.so"};
    for (int i = 0; i < 2 && !h; i++) {
      snprintf(path, sizeof path, "%.*s%s", dir, base, rel[i]);
      h = dlopen(path, flags);
      if (!h)
        snprintf(why, n, "%s", dlerror());
    }
  }
  if (!h && !(h = dlopen("lgrad_mpi.so", flags)) && !why[0])
    snprintf(why, n, "%s", dlerror());
  return h;
}

static uint64_t host_hash(void) {
  char name[256] = {0};
  gethostname(name, sizeof name - 1);
  uint64_t h = 1469598103934665603ULL;
  for (char *p = name; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  return h & INT64_MAX;
}

static int wait_all(const char *fname, lg_mpi_req *reqs, int n);

int lg_dist_init(double timeout) {
  if (timeout > 0)
    D.timeout = timeout;
  if (D.inited)
    return 0;
  if (!under_mpirun()) {
    D.inited = true;
    return 0;
  }
  char why[512] = {0};
  void *h = load_piece(why, sizeof why);
  const lg_mpi_api *api = h ? dlsym(h, LG_MPI_ENTRY) : NULL;
  if (!api || api->version != LG_MPI_API_VERSION) {
    lg_seterr("init: started by mpirun but lgrad_mpi.so %s (lgrad builds "
              "it where mpicc is installed; LGRAD_MPI_LIB names another "
              "path): %s",
              h ? "is of another version" : "could not be loaded",
              h ? "" : why);
    if (h)
      dlclose(h);
    return -1;
  }
  int rank, size, serialized = 0, rc = api->init(&rank, &size, &serialized);
  D.api = api;
  if (rc) {
    mpi_fail("init", rc);
    D.api = NULL;
    return -1;
  }
  D.handle = h;
  D.rank = rank;
  D.size = size;
  D.left = malloc(size * sizeof *D.left);
  D.peer = malloc(2 * size * sizeof *D.peer);
  if (!D.left || !D.peer) {
    lg_seterr("init: out of memory");
    return -1;
  }
  for (int r = 0; r < size; r++)
    D.left[r] = -1;
  D.inited = true;
  /* who is where, to tell a dead process from a slow one later */
  int64_t mine[2] = {(int64_t)getpid(), (int64_t)host_hash()};
  lg_mpi_req req = 0;
  if ((rc = api->iallgather(mine, D.peer, 2, LG_MPI_I64, &req)))
    return mpi_fail("init", rc);
  D.seq++;
  if (wait_all("init", &req, 1))
    return -1;
  const char *env = getenv("LGRAD_DIST_PROGRESS");
  if (serialized && !(env && !strcmp(env, "0")))
    P.started = !pthread_create(&P.thread, NULL, progress_main, NULL);
  return 0;
}

static void *progress_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&P.mu);
  while (!P.stop) {
    if (P.inflight <= 0) {
      pthread_cond_wait(&P.cv, &P.mu);
      continue;
    }
    pthread_mutex_unlock(&P.mu);
    start_queued();
    pthread_mutex_lock(&mpi_mu);
    D.api->progress();
    pthread_mutex_unlock(&mpi_mu);
    usleep(50);
    pthread_mutex_lock(&P.mu);
  }
  pthread_mutex_unlock(&P.mu);
  return NULL;
}

/* ---- waiting with a deadline ---- */

static void send_all(int64_t kind, int64_t a, int64_t b) {
  int64_t msg[LG_CTL_WORDS] = {kind, D.rank, a, b};
  for (int r = 0; r < D.size; r++)
    if (r != D.rank)
      CALL(D.api->send_ctl(r, msg));
}

/* answers pings and records leavers; pongs go to *pong (per rank: its
 * collective count) when given */
static void serve_ctl(int64_t *pong) {
  int64_t m[LG_CTL_WORDS];
  while (CALL(D.api->poll_ctl(m))) {
    int from = (int)m[1];
    if (from < 0 || from >= D.size)
      continue;
    if (m[0] == LG_CTL_PING) {
      int64_t reply[LG_CTL_WORDS] = {LG_CTL_PONG, D.rank, D.seq, 0};
      CALL(D.api->send_ctl(from, reply));
    } else if (m[0] == LG_CTL_PONG && pong) {
      pong[from] = m[2];
    } else if (m[0] == LG_CTL_LEAVING) {
      D.left[from] = m[2];
    }
  }
}

static void set_broken(void) {
  D.broken = true;
  snprintf(D.broken_msg, sizeof D.broken_msg, "%s", lg_errmsg());
}

/* a rank that left before the collective we wait for (number seq, 1-based
 * count) can never join it */
static int check_leavers(const char *fname) {
  for (int r = 0; r < D.size; r++)
    if (D.left[r] >= 0 && D.left[r] < D.seq) {
      lg_seterr("%s: rank %d left the job (its script ended or raised an "
                "error) after %lld collectives; this rank waits in "
                "collective %lld",
                fname, r + 1, (long long)D.left[r], (long long)D.seq);
      set_broken();
      return -1;
    }
  return 0;
}

/* After a timeout: ask everyone where they are, give them a moment to
 * answer, and name the ranks that are behind, gone or silent. */
static int name_missing(const char *fname, double waited) {
  int64_t *pong = malloc(D.size * sizeof *pong);
  char list[300] = {0};
  size_t used = 0;
  if (pong) {
    for (int r = 0; r < D.size; r++)
      pong[r] = -1;
    pong[D.rank] = D.seq;
    /* a dead process on this host needs no answer */
    int64_t mine_host = D.peer[2 * D.rank + 1];
    bool *dead = calloc(D.size, sizeof *dead);
    for (int r = 0; r < D.size && dead; r++)
      dead[r] = r != D.rank && D.peer[2 * r + 1] == mine_host &&
                kill((pid_t)D.peer[2 * r], 0) && errno == ESRCH;
    send_all(LG_CTL_PING, D.seq, 0);
    double grace = D.timeout < 2 ? D.timeout : 2, t0 = now();
    while (now() - t0 < grace) {
      serve_ctl(pong);
      bool all = true;
      for (int r = 0; r < D.size; r++)
        all = all && (pong[r] >= 0 || (dead && dead[r]));
      if (all)
        break;
      usleep(1000);
    }
    for (int r = 0; r < D.size && used < sizeof list - 80; r++) {
      if (r == D.rank || (pong[r] >= D.seq && D.left[r] < 0))
        continue;
      pid_t pid = (pid_t)D.peer[2 * r];
      bool local = D.peer[2 * r + 1] == mine_host;
      const char *state;
      char buf[120];
      if (D.left[r] >= 0) {
        snprintf(buf, sizeof buf, "left after %lld collectives",
                 (long long)D.left[r]);
        state = buf;
      } else if ((dead && dead[r]) ||
                 (local && kill(pid, 0) && errno == ESRCH)) {
        snprintf(buf, sizeof buf, "process %d has died", (int)pid);
        state = buf;
      } else if (pong[r] < 0) {
        state = "does not answer";
      } else {
        snprintf(buf, sizeof buf, "is at collective %lld", (long long)pong[r]);
        state = buf;
      }
      used += snprintf(list + used, sizeof list - used, "%srank %d (%s)",
                       used ? ", " : "", r + 1, state);
    }
    free(pong);
    free(dead);
  }
  lg_seterr("%s: collective %lld did not complete within %g s: missing %s",
            fname, (long long)D.seq, waited, used ? list : "rank unknown");
  set_broken();
  return -1;
}

static int wait_all(const char *fname, lg_mpi_req *reqs, int n) {
  double t0 = now(), deadline = t0 + D.timeout;
  for (;;) {
    bool all = true;
    for (int i = 0; i < n; i++) {
      if (!reqs[i])
        continue;
      int done = 0, rc = CALL(D.api->test(&reqs[i], &done));
      if (rc) {
        mpi_fail(fname, rc);
        set_broken();
        return -1;
      }
      all = all && done;
    }
    if (all)
      return 0;
    serve_ctl(NULL);
    if (check_leavers(fname))
      return -1;
    double t = now();
    if (t > deadline)
      return name_missing(fname, t - t0);
    /* MPI moves a non-blocking collective on only inside MPI_Test: poll
     * flat out for a few milliseconds, as blocking MPI calls do (a yield
     * on a busy machine can cost a whole time slice per message round),
     * then yielding the core up to a second, then at a calmer pace while
     * a slow or missing rank is awaited */
    if (t - t0 > 1.0)
      usleep(100);
    else if (t - t0 > 0.005)
      sched_yield();
  }
}

static int check_ready(const char *fname) {
  if (!D.inited) {
    lg_seterr("%s: call lg.dist.init() first", fname);
    return -1;
  }
  if (D.broken) {
    lg_seterr("%s: an earlier collective failed, the job cannot go on: %s",
              fname, D.broken_msg);
    return -1;
  }
  return 0;
}

/* ---- types ---- */

static int wire_type(lg_dtype d) {
  switch (d) {
  case LG_FLOAT32:
    return LG_MPI_F32;
  case LG_FLOAT64:
    return LG_MPI_F64;
  case LG_INT64:
    return LG_MPI_I64;
  default:
    return LG_MPI_U8;
  }
}

static int wire_op(const char *fname, lg_dtype d, lg_dist_op op) {
  if (d == LG_BOOL) {
    if (op == LG_DIST_MEAN) {
      lg_seterr("%s: mean is not defined for a bool tensor", fname);
      return -1;
    }
    return op == LG_DIST_MIN ? LG_MPI_LAND : LG_MPI_LOR;
  }
  return op == LG_DIST_MAX   ? LG_MPI_MAX
         : op == LG_DIST_MIN ? LG_MPI_MIN
                             : LG_MPI_SUM;
}

/* divides the sum in place: floats exactly by size, int64 to the floor */
static int finish_mean(lg_tensor *c) {
  if (lg_dtype_is_float(c->dtype))
    return lg_binary_scalar_(LG_OP_DIV, c, (double)D.size);
  int64_t *p = lg_data_ptr(c), n = lg_numel(c), s = D.size;
  for (int64_t i = 0; i < n; i++) {
    int64_t q = p[i] / s;
    p[i] = (p[i] % s != 0 && p[i] < 0) ? q - 1 : q;
  }
  return 0;
}

static int64_t nchunks(int64_t count) {
  return count == 0 ? 0 : (count + D.max_count - 1) / D.max_count;
}

/* ---- non-blocking all-reduce ---- */

enum { WORK_QUEUED, WORK_STARTED, WORK_FAILED };

struct lg_dist_work {
  bool tracked;   /* counted in the progress thread's in-flight work */
  int state;      /* WORK_*, written by the thread that starts it */
  int error;      /* the MPI error code when WORK_FAILED */
  int wop;
  lg_dist_work *next_queued;
  lg_tensor *t;   /* the caller's tensor */
  lg_tensor *buf; /* contiguous: t itself or a copy */
  lg_dist_op op;
  int nreq;
  lg_mpi_req *reqs;
  lg_mpi_req one;
};

static int work_state(lg_dist_work *w) {
  return __atomic_load_n(&w->state, __ATOMIC_ACQUIRE);
}

void lg_dist_work_free(lg_dist_work *w) {
  if (!w)
    return;
  if (work_state(w) == WORK_QUEUED) {
    /* still queued: take it out; being started: let that finish */
    bool removed = false;
    pthread_mutex_lock(&P.mu);
    for (lg_dist_work **q = &P.queue_head; *q; q = &(*q)->next_queued)
      if (*q == w) {
        *q = w->next_queued;
        removed = true;
        break;
      }
    P.queue_tail = NULL;
    for (lg_dist_work *q = P.queue_head; q; q = q->next_queued)
      P.queue_tail = q;
    pthread_mutex_unlock(&P.mu);
    while (!removed && work_state(w) == WORK_QUEUED)
      sched_yield();
  }
  if (w->tracked)
    inflight_add(-1);
  lg_release(w->t);
  lg_release(w->buf);
  if (w->reqs != &w->one)
    free(w->reqs);
  free(w);
}

/* track: let the progress thread move it on (the blocking form polls
 * by itself at once) */
static int start_chunks(lg_dist_work *w);

static lg_dist_work *start_all_reduce(lg_tensor *t, lg_dist_op op, bool track) {
  const char *fname = "all_reduce";
  if (check_ready(fname))
    return NULL;
  int wop = wire_op(fname, t->dtype, op);
  if (wop < 0)
    return NULL;
  lg_dist_work *w = calloc(1, sizeof *w);
  if (!w) {
    lg_seterr("%s: out of memory", fname);
    return NULL;
  }
  w->t = lg_retain(t);
  w->op = op;
  w->reqs = &w->one;
  w->state = WORK_STARTED;
  if (!D.api)
    return w; /* one rank: the identity */
  if (!(w->buf = lg_contiguous(t))) {
    lg_dist_work_free(w);
    return NULL;
  }
  int64_t count = lg_numel(t), k = nchunks(count);
  if (k > 1 && !(w->reqs = calloc(k, sizeof *w->reqs))) {
    w->reqs = &w->one;
    lg_dist_work_free(w);
    lg_seterr("%s: out of memory", fname);
    return NULL;
  }
  w->wop = wop;
  w->nreq = (int)k;
  D.seq++;
  w->tracked = track;
  if (track && P.started) {
    /* the progress thread starts it */
    w->state = WORK_QUEUED;
    pthread_mutex_lock(&P.mu);
    if (P.queue_tail)
      P.queue_tail->next_queued = w;
    else
      P.queue_head = w;
    P.queue_tail = w;
    pthread_mutex_unlock(&P.mu);
    inflight_add(1);
    return w;
  }
  if (start_chunks(w)) {
    mpi_fail(fname, w->error);
    set_broken();
    lg_dist_work_free(w);
    return NULL;
  }
  return w;
}

/* starts the MPI calls of w (one per chunk); WORK_STARTED or WORK_FAILED */
static int start_chunks(lg_dist_work *w) {
  int64_t count = lg_numel(w->buf);
  char *p = lg_data_ptr(w->buf);
  size_t es = lg_dtype_size(w->buf->dtype);
  int rc = 0;
  for (int i = 0; i < w->nreq && !rc; i++) {
    int64_t off = i * D.max_count;
    int64_t c = count - off < D.max_count ? count - off : D.max_count;
    rc = CALL(D.api->iallreduce(NULL, p + off * es, (int)c,
                                wire_type(w->buf->dtype), w->wop,
                                &w->reqs[i]));
  }
  w->error = rc;
  __atomic_store_n(&w->state, rc ? WORK_FAILED : WORK_STARTED,
                   __ATOMIC_RELEASE);
  return rc ? -1 : 0;
}

static void start_queued(void) {
  for (;;) {
    pthread_mutex_lock(&P.mu);
    lg_dist_work *w = P.queue_head;
    if (w) {
      P.queue_head = w->next_queued;
      if (!P.queue_head)
        P.queue_tail = NULL;
    }
    pthread_mutex_unlock(&P.mu);
    if (!w)
      return;
    start_chunks(w);
  }
}

/* waits (within the deadline) until the progress thread has started w */
static int wait_started(lg_dist_work *w) {
  double t0 = now();
  while (work_state(w) == WORK_QUEUED) {
    if (now() - t0 > D.timeout) {
      lg_seterr("all_reduce: not started within %g s", D.timeout);
      set_broken();
      return -1;
    }
    sched_yield();
  }
  if (work_state(w) == WORK_FAILED) {
    mpi_fail("all_reduce", w->error);
    set_broken();
    return -1;
  }
  return 0;
}

lg_dist_work *lg_dist_iall_reduce(lg_tensor *t, lg_dist_op op) {
  return start_all_reduce(t, op, true);
}

int lg_dist_test(lg_dist_work *w, bool *done) {
  *done = !D.api || work_state(w) != WORK_QUEUED;
  if (!*done)
    return 0;
  if (work_state(w) == WORK_FAILED)
    return wait_started(w);
  for (int i = 0; i < w->nreq; i++) {
    if (!w->reqs[i])
      continue;
    int d = 0, rc = CALL(D.api->test(&w->reqs[i], &d));
    if (rc) {
      mpi_fail("all_reduce", rc);
      set_broken();
      return -1;
    }
    *done = *done && d;
  }
  return 0;
}

int lg_dist_wait(lg_dist_work *w) {
  int rc = 0;
  if (D.api) {
    rc = wait_started(w);
    if (!rc)
      rc = wait_all("all_reduce", w->reqs, w->nreq);
    if (!rc && w->op == LG_DIST_MEAN)
      rc = finish_mean(w->buf);
    if (!rc && w->buf != w->t)
      rc = lg_copy_(w->t, w->buf);
    else if (!rc)
      lg_bump_version(w->t);
  }
  lg_dist_work_free(w);
  return rc;
}

int lg_dist_all_reduce(lg_tensor *t, lg_dist_op op) {
  lg_dist_work *w = start_all_reduce(t, op, false);
  return w ? lg_dist_wait(w) : -1;
}

/* ---- the other collectives ---- */

int lg_dist_barrier(void) {
  if (check_ready("barrier"))
    return -1;
  if (!D.api)
    return 0;
  lg_mpi_req req = 0;
  int rc = CALL(D.api->ibarrier(0, &req));
  if (rc) {
    mpi_fail("barrier", rc);
    set_broken();
    return -1;
  }
  D.seq++;
  return wait_all("barrier", &req, 1);
}

int lg_dist_broadcast(lg_tensor *t, int root) {
  const char *fname = "broadcast";
  if (check_ready(fname))
    return -1;
  if (root < 0 || root >= D.size) {
    lg_seterr("%s: root %d is not a rank (1..%d)", fname, root + 1, D.size);
    return -1;
  }
  if (!D.api)
    return 0;
  lg_tensor *buf = lg_contiguous(t);
  if (!buf)
    return -1;
  int64_t count = lg_numel(t);
  size_t es = lg_dtype_size(t->dtype);
  char *p = lg_data_ptr(buf);
  D.seq++;
  int rc = 0;
  /* one chunk at a time: a chunk's request is waited before the next */
  for (int64_t off = 0; off < count && !rc; off += D.max_count) {
    int64_t c = count - off < D.max_count ? count - off : D.max_count;
    lg_mpi_req req = 0;
    int e = CALL(
        D.api->ibcast(p + off * es, (int)c, wire_type(t->dtype), root, &req));
    if (e) {
      mpi_fail(fname, e);
      set_broken();
      rc = -1;
    } else {
      rc = wait_all(fname, &req, 1);
    }
  }
  if (!rc) {
    if (buf != t)
      rc = lg_copy_(t, buf);
    else
      lg_bump_version(t);
  }
  lg_release(buf);
  return rc;
}

/* t's contiguous data and a new result tensor of the given shape */
static int src_and_out(lg_tensor *t, int ndim, const int64_t *shape,
                       lg_tensor **src, lg_tensor **out) {
  *src = lg_contiguous(t);
  *out = *src ? lg_empty(t->dtype, ndim, shape) : NULL;
  if (*out)
    return 0;
  lg_release(*src);
  return -1;
}

lg_tensor *lg_dist_all_gather(lg_tensor *t) {
  const char *fname = "all_gather";
  if (check_ready(fname))
    return NULL;
  if (t->ndim + 1 > LG_MAX_DIMS) {
    lg_seterr("%s: a tensor of %d dims cannot get one more", fname, t->ndim);
    return NULL;
  }
  int64_t shape[LG_MAX_DIMS];
  shape[0] = D.size;
  memcpy(shape + 1, t->shape, t->ndim * sizeof *shape);
  lg_tensor *src, *out;
  if (src_and_out(t, t->ndim + 1, shape, &src, &out))
    return NULL;
  int64_t n = lg_numel(t);
  size_t es = lg_dtype_size(t->dtype);
  char *o = lg_data_ptr(out), *s = lg_data_ptr(src);
  if (!D.api) {
    memcpy(o, s, n * es);
    lg_release(src);
    return out;
  }
  D.seq++;
  int rc = 0;
  if (n <= D.max_count) {
    lg_mpi_req req = 0;
    int e = CALL(D.api->iallgather(s, o, (int)n, wire_type(t->dtype), &req));
    rc = e ? mpi_fail(fname, e) : wait_all(fname, &req, 1);
  } else {
    /* chunk by chunk through a buffer of size x chunk elements */
    int64_t k = D.max_count;
    char *tmp = malloc((size_t)D.size * k * es);
    if (!tmp) {
      lg_seterr("%s: out of memory", fname);
      rc = -1;
    }
    for (int64_t off = 0; off < n && !rc; off += k) {
      int64_t c = n - off < k ? n - off : k;
      lg_mpi_req req = 0;
      int e = CALL(D.api->iallgather(s + off * es, tmp, (int)c,
                                     wire_type(t->dtype), &req));
      rc = e ? mpi_fail(fname, e) : wait_all(fname, &req, 1);
      for (int r = 0; r < D.size && !rc; r++)
        memcpy(o + (r * n + off) * es, tmp + r * c * es, c * es);
    }
    free(tmp);
  }
  lg_release(src);
  if (rc) {
    if (!D.broken)
      set_broken();
    lg_release(out);
    return NULL;
  }
  return out;
}

lg_tensor *lg_dist_reduce_scatter(lg_tensor *t, lg_dist_op op) {
  const char *fname = "reduce_scatter";
  if (check_ready(fname))
    return NULL;
  if (t->ndim == 0 || t->shape[0] % D.size) {
    char b[200];
    lg_seterr("%s: dim 1 of a tensor of shape %s must be a multiple of the "
              "number of ranks (%d)",
              fname, lg_shape_str(t, b, sizeof b), D.size);
    return NULL;
  }
  int wop = wire_op(fname, t->dtype, op);
  if (wop < 0)
    return NULL;
  int64_t shape[LG_MAX_DIMS];
  memcpy(shape, t->shape, t->ndim * sizeof *shape);
  shape[0] /= D.size;
  lg_tensor *src, *out;
  if (src_and_out(t, t->ndim, shape, &src, &out))
    return NULL;
  int64_t n = lg_numel(out);
  size_t es = lg_dtype_size(t->dtype);
  char *o = lg_data_ptr(out), *s = lg_data_ptr(src);
  int rc = 0;
  if (!D.api) {
    memcpy(o, s, n * es);
  } else {
    D.seq++;
    int64_t k = n <= D.max_count ? n : D.max_count;
    char *tmp = n <= D.max_count ? s : malloc((size_t)D.size * k * es);
    if (!tmp) {
      lg_seterr("%s: out of memory", fname);
      rc = -1;
    }
    for (int64_t off = 0; off < n && !rc; off += k) {
      int64_t c = n - off < k ? n - off : k;
      if (tmp != s) /* gather chunk off of every rank's block */
        for (int r = 0; r < D.size; r++)
          memcpy(tmp + r * c * es, s + (r * n + off) * es, c * es);
      lg_mpi_req req = 0;
      int e = CALL(D.api->ireduce_scatter(tmp, o + off * es, (int)c,
                                          wire_type(t->dtype), wop, &req));
      rc = e ? mpi_fail(fname, e) : wait_all(fname, &req, 1);
    }
    if (tmp != s)
      free(tmp);
    if (!rc && op == LG_DIST_MEAN)
      rc = finish_mean(out);
    if (rc && !D.broken)
      set_broken();
  }
  lg_release(src);
  if (rc) {
    lg_release(out);
    return NULL;
  }
  return out;
}

/* ---- leaving ---- */

int lg_dist_finalize(char *msg, size_t n) {
  if (n)
    msg[0] = 0;
  if (!D.api) {
    D.inited = false;
    return 0;
  }
  /* tell everyone how far we got, then agree on whether all are well:
   * only then is MPI_Finalize safe (it waits for every rank) */
  send_all(LG_CTL_LEAVING, D.seq, D.broken);
  int64_t flag = D.broken ? 1 : 0;
  lg_mpi_req req = 0;
  int rc = CALL(D.api->iagree(&flag, &req));
  double limit = D.timeout;
  if (D.broken && limit > 2)
    limit = 2; /* a missing rank will not come: do not hold the exit */
  double t0 = now();
  while (!rc && req && now() - t0 < limit) {
    int done = 0;
    rc = CALL(D.api->test(&req, &done));
    serve_ctl(NULL);
    if (!done)
      usleep(200);
  }
  progress_stop();
  const lg_mpi_api *api = D.api;
  D.api = NULL;
  D.inited = false;
  if (!rc && !req && !flag) {
    api->finalize();
    return 0;
  }
  snprintf(msg, n, "rank %d leaves without MPI_Finalize: %s", D.rank + 1,
           D.broken ? D.broken_msg
           : req    ? "not every rank reached the end in time"
                    : "another rank failed");
  return -1;
}
