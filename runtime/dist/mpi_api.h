/*
 * mpi_api.h -- the table of functions that the loadable MPI piece
 * (build/lgrad_mpi.so, built from runtime/dist/mpi/lgrad_mpi.c with mpicc)
 * hands to runtime/dist/dist.c.  Nothing here needs mpi.h: requests are
 * opaque 64-bit slots, datatypes and operations small integer codes.
 *
 * lgrad itself never links libmpi; dist.c dlopens the piece only when the
 * process was started by mpirun, so the binary and lgrad.so load on a
 * machine without Open MPI.
 */
#ifndef LG_MPI_API_H
#define LG_MPI_API_H

#include <stddef.h>
#include <stdint.h>

#define LG_MPI_API_VERSION 1
#define LG_MPI_ENTRY "lg_mpi_api_v1"

/* element types that travel over MPI */
enum { LG_MPI_F32, LG_MPI_F64, LG_MPI_I64, LG_MPI_U8 };
/* reductions (U8 carries bools: LOR and LAND) */
enum { LG_MPI_SUM, LG_MPI_MAX, LG_MPI_MIN, LG_MPI_LOR, LG_MPI_LAND };
/* the control message: kind, sender rank, a counter, a detail */
enum { LG_CTL_PING = 1, LG_CTL_PONG, LG_CTL_LEAVING };
#define LG_CTL_WORDS 4

typedef uint64_t lg_mpi_req; /* 0: no request */

typedef struct lg_mpi_api {
  int version;
  /* MPI_Init_thread(SERIALIZED), errors returned, not fatal; a second
   * communicator for control messages; *serialized = 1 when MPI may be
   * called from another thread (one at a time); 0 or an MPI error code */
  int (*init)(int *rank, int *size, int *serialized);
  int (*finalize)(void);
  /* a message for an MPI error code */
  void (*error_string)(int code, char *buf, size_t n);
  /* non-blocking collectives on the data communicator; send NULL means in
   * place; counts fit an int (dist.c splits larger ones) */
  int (*iallreduce)(const void *send, void *buf, int count, int type, int op,
                    lg_mpi_req *req);
  int (*ibcast)(void *buf, int count, int type, int root, lg_mpi_req *req);
  int (*iallgather)(const void *send, void *recv, int count, int type,
                    lg_mpi_req *req);
  int (*ireduce_scatter)(const void *send, void *recv, int count, int type,
                         int op, lg_mpi_req *req);
  int (*ibarrier)(int unused, lg_mpi_req *req);
  /* the maximum of *flag over the ranks, in place, on the control
   * communicator (how ranks agree at the end that all are well) */
  int (*iagree)(int64_t *flag, lg_mpi_req *req);
  /* *done = 1 once complete (the request is then freed and zeroed) */
  int (*test)(lg_mpi_req *req, int *done);
  /* control messages: fire and forget, and a poll that returns 1 and fills
   * msg when one has arrived */
  int (*send_ctl)(int dest, const int64_t msg[LG_CTL_WORDS]);
  int (*poll_ctl)(int64_t msg[LG_CTL_WORDS]);
  /* lets MPI move its pending non-blocking operations on */
  void (*progress)(void);
} lg_mpi_api;

#endif
