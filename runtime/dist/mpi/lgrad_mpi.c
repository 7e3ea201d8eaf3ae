/*
 * lgrad_mpi.c -- the only file that includes mpi.h.  Built with mpicc into
 * build/lgrad_mpi.so when Open MPI is installed; runtime/dist/dist.c loads
 * it with dlopen and reaches everything through lg_mpi_api_v1.
 *
 * Two communicators: "data" (a dup of MPI_COMM_WORLD) carries the
 * collectives, "ctl" (another dup) the small control messages with which
 * ranks tell each other that they leave or answer "where are you" when a
 * collective times out.  Both return errors instead of aborting.
 */
#include <mpi.h>
#include <string.h>

#include "../mpi_api.h"

_Static_assert(sizeof(MPI_Request) <= sizeof(lg_mpi_req),
               "an MPI_Request must fit a request slot");

static MPI_Comm data_comm = MPI_COMM_NULL, ctl_comm = MPI_COMM_NULL;
#define CTL_TAG 7
#define CTL_SLOTS 256
static int64_t ctl_in[LG_CTL_WORDS];
static MPI_Request ctl_recv = MPI_REQUEST_NULL;
/* send buffers stay valid until the send is done: a ring of slots, each
 * reused only once its request has completed */
static int64_t ctl_out[CTL_SLOTS][LG_CTL_WORDS];
static MPI_Request ctl_sreq[CTL_SLOTS];
static int ctl_next;

static MPI_Datatype type_of(int t) {
  switch (t) {
  case LG_MPI_F32:
    return MPI_FLOAT;
  case LG_MPI_F64:
    return MPI_DOUBLE;
  case LG_MPI_I64:
    return MPI_INT64_T;
  default:
    return MPI_UNSIGNED_CHAR;
  }
}

static MPI_Op op_of(int op) {
  switch (op) {
  case LG_MPI_SUM:
    return MPI_SUM;
  case LG_MPI_MAX:
    return MPI_MAX;
  case LG_MPI_MIN:
    return MPI_MIN;
  case LG_MPI_LOR:
    return MPI_LOR;
  default:
    return MPI_LAND;
  }
}

static void put_req(lg_mpi_req *slot, MPI_Request r) {
  *slot = 0;
  memcpy(slot, &r, sizeof r);
}

static MPI_Request get_req(const lg_mpi_req *slot) {
  MPI_Request r;
  memcpy(&r, slot, sizeof r);
  return r;
}

static int do_init(int *rank, int *size, int *serialized) {
  int inited = 0, provided = MPI_THREAD_SINGLE, rc;
  MPI_Initialized(&inited);
  if (!inited &&
      (rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided)))
    return rc;
  if (inited)
    MPI_Query_thread(&provided);
  *serialized = provided >= MPI_THREAD_SERIALIZED;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &data_comm)) ||
      (rc = MPI_Comm_dup(MPI_COMM_WORLD, &ctl_comm)))
    return rc;
  MPI_Comm_set_errhandler(data_comm, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(ctl_comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(data_comm, rank);
  MPI_Comm_size(data_comm, size);
  for (int i = 0; i < CTL_SLOTS; i++)
    ctl_sreq[i] = MPI_REQUEST_NULL;
  return MPI_Irecv(ctl_in, LG_CTL_WORDS, MPI_INT64_T, MPI_ANY_SOURCE, CTL_TAG,
                   ctl_comm, &ctl_recv);
}

static int do_finalize(void) {
  if (ctl_recv != MPI_REQUEST_NULL) {
    MPI_Cancel(&ctl_recv);
    MPI_Request_free(&ctl_recv);
  }
  for (int i = 0; i < CTL_SLOTS; i++)
    if (ctl_sreq[i] != MPI_REQUEST_NULL)
      MPI_Wait(&ctl_sreq[i], MPI_STATUS_IGNORE);
  MPI_Comm_free(&ctl_comm);
  MPI_Comm_free(&data_comm);
  return MPI_Finalize();
}

static void error_string(int code, char *buf, size_t n) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, s, &len) != MPI_SUCCESS)
    len = 0;
  s[len] = 0;
  if (n) {
    strncpy(buf, len ? s : "unknown MPI error", n - 1);
    buf[n - 1] = 0;
  }
}

static int iallreduce(const void *send, void *buf, int count, int type, int op,
                      lg_mpi_req *req) {
  MPI_Request r;
  int rc = MPI_Iallreduce(send ? send : MPI_IN_PLACE, buf, count, type_of(type),
                          op_of(op), data_comm, &r);
  if (!rc)
    put_req(req, r);
  return rc;
}

static int ibcast(void *buf, int count, int type, int root, lg_mpi_req *req) {
  MPI_Request r;
  int rc = MPI_Ibcast(buf, count, type_of(type), root, data_comm, &r);
  if (!rc)
    put_req(req, r);
  return rc;
}

static int iallgather(const void *send, void *recv, int count, int type,
                      lg_mpi_req *req) {
  MPI_Request r;
  int rc = MPI_Iallgather(send, count, type_of(type), recv, count,
                          type_of(type), data_comm, &r);
  if (!rc)
    put_req(req, r);
  return rc;
}

static int ireduce_scatter(const void *send, void *recv, int count, int type,
                           int op, lg_mpi_req *req) {
  MPI_Request r;
  int rc = MPI_Ireduce_scatter_block(send, recv, count, type_of(type),
                                     op_of(op), data_comm, &r);
  if (!rc)
    put_req(req, r);
  return rc;
}

static int ibarrier(int unused, lg_mpi_req *req) {
  (void)unused;
  MPI_Request r;
  int rc = MPI_Ibarrier(data_comm, &r);
  if (!rc)
    put_req(req, r);
  return rc;
}

static int iagree(int64_t *flag, lg_mpi_req *req) {
  MPI_Request r;
  int rc =
      MPI_Iallreduce(MPI_IN_PLACE, flag, 1, MPI_INT64_T, MPI_MAX, ctl_comm, &r);
  if (!rc)
    put_req(req, r);
  return rc;
}

static int test(lg_mpi_req *req, int *done) {
  MPI_Request r = get_req(req);
  int flag = 0, rc = MPI_Test(&r, &flag, MPI_STATUS_IGNORE);
  *done = flag;
  if (flag)
    *req = 0;
  return rc;
}

static int send_ctl(int dest, const int64_t msg[LG_CTL_WORDS]) {
  /* find a free slot; a slot whose send is still going is skipped */
  for (int tries = 0; tries < CTL_SLOTS; tries++) {
    int i = ctl_next;
    ctl_next = (ctl_next + 1) % CTL_SLOTS;
    if (ctl_sreq[i] != MPI_REQUEST_NULL) {
      int flag = 0;
      MPI_Test(&ctl_sreq[i], &flag, MPI_STATUS_IGNORE);
      if (!flag)
        continue;
    }
    memcpy(ctl_out[i], msg, sizeof ctl_out[i]);
    return MPI_Isend(ctl_out[i], LG_CTL_WORDS, MPI_INT64_T, dest, CTL_TAG,
                     ctl_comm, &ctl_sreq[i]);
  }
  return MPI_ERR_OTHER;
}

static int poll_ctl(int64_t msg[LG_CTL_WORDS]) {
  int flag = 0;
  if (ctl_recv == MPI_REQUEST_NULL ||
      MPI_Test(&ctl_recv, &flag, MPI_STATUS_IGNORE) || !flag)
    return 0;
  memcpy(msg, ctl_in, sizeof ctl_in);
  MPI_Irecv(ctl_in, LG_CTL_WORDS, MPI_INT64_T, MPI_ANY_SOURCE, CTL_TAG,
            ctl_comm, &ctl_recv);
  return 1;
}

/* any MPI call runs Open MPI's progress engine, which moves libnbc's
 * collectives on; a probe that finds nothing is the cheapest */
static void progress(void) {
  int flag = 0;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, data_comm, &flag, MPI_STATUS_IGNORE);
}

const lg_mpi_api lg_mpi_api_v1 = {
    LG_MPI_API_VERSION, do_init, do_finalize, error_string,
    iallreduce,         ibcast,  iallgather,  ireduce_scatter,
    ibarrier,           iagree,  test,        send_ctl,
    poll_ctl,           progress};
