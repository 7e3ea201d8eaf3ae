/*
 * lgrad_host.h -- embedding lgrad in a host program.
 *
 * A host program creates a lua_State, loads lgrad into it, hands tensors
 * over its own memory to Lua scripts, runs them, and reads the tensors
 * they return -- without copying data either way.
 *
 * (spec/host_spec.lua compiles and runs this example as it stands)
 *   #include <stdio.h>
 *   #include <stdlib.h>
 *   #include <lauxlib.h>
 *   #include <lualib.h>
 *   #include "lgrad_host.h"
 *
 *   static void release(void *data, void *ctx) { (void)ctx; free(data); }
 *
 *   int main(void) {
 *     lua_State *L = luaL_newstate();
 *     char *err = NULL;
 *     if (lgrad_open(L) != LUA_OK)
 *       return fprintf(stderr, "%s\n", lua_tostring(L, -1)), 1;
 *     if (lgrad_dostring(L, "function train(x) return x:sum(2) * 2 end",
 *                        &err))
 *       return fprintf(stderr, "%s\n", err), 1;
 *     float *x = malloc(100 * 2 * sizeof *x);
 *     for (int i = 0; i < 200; i++)
 *       x[i] = (float)i;
 *     lua_getglobal(L, "train");                    // a Lua function
 *     lgrad_push_wrap(L, LG_FLOAT32, 2, (int64_t[]){100, 2}, x, release,
 *                     NULL);                        // x now owned by lgrad
 *     if (lgrad_call(L, 1, 1, &err))
 *       return fprintf(stderr, "%s\n", err), 1;
 *     lgrad_info w;
 *     if (lgrad_tensor_info(L, -1, &w) != 0)        // the result, in place
 *       return 1;
 *     lg_tensor *keep = lg_retain(lgrad_to_tensor(L, -1));
 *     lua_pop(L, 1);
 *     lua_close(L);                    // release(x) runs here at the latest
 *     printf("%g %g\n", ((float *)w.data)[0], ((float *)w.data)[99]);
 *     lg_release(keep);                // keep's data was valid until here
 *     return 0;
 *   }
 *
 * Build against an installed lgrad (make install, the rock, the .deb):
 *   cc host.c $(pkg-config --cflags --libs lgrad)
 * or in the source tree, after make (liblgrad.a holds the runtime and
 * this API; -Lbuild -llgrad links liblgrad.so.0 instead):
 *   cc -I/usr/include/lua5.4 -Ibindings host.c build/liblgrad.a -llua5.4
 *      -ldl -lz -lm -lpthread
 *
 * Ownership
 *   - A tensor in Lua is a userdata holding one reference; Lua's collector
 *     (or lua_close, or `local t <close>`) drops it.
 *   - lgrad_push_wrap: lgrad does not copy `data`.  On success the tensor
 *     owns it: `rel(data, ctx)` is called exactly once, when the last
 *     reference goes (a collection, lua_close, or the host's own
 *     lg_release of a retained pointer), on whatever thread drops it.
 *     The host must keep `data` valid and not free it until then.  With
 *     rel == NULL nothing is called and the host frees `data` itself,
 *     after it knows no tensor uses it (after lua_close and after
 *     releasing any pointer it retained).  On failure (-1) nothing was
 *     pushed, rel is never called, and `data` still belongs to the host.
 *   - lgrad_push_copy copies; `data` may be freed when it returns.
 *   - lgrad_push_tensor pushes a tensor the host made with the C API; it
 *     takes a new reference, so the host still releases its own.
 *   - lgrad_to_tensor returns a borrowed pointer: valid while the Lua
 *     value is referenced (on the stack, in a table, a global...) and not
 *     closed.  To keep it longer, lg_retain() it and lg_release() it when
 *     done; a retained tensor outlives lua_close.
 *   - lgrad_tensor_info's `data` points into the tensor's storage: valid
 *     as long as the tensor (or a retained reference to it or one of its
 *     views) is.  In-place operations (optimizer steps, `x:add_(...)`)
 *     write through the same pointer; they never move the storage.
 *   - Error strings (*err) are malloc'd: the caller free()s them.  They
 *     hold the message and a Lua traceback.
 *
 * Threads
 *   - One lua_State (and the tensors in it) belongs to one thread at a
 *     time; Lua itself is not thread-safe within a state.
 *   - Independent lua_States may run lgrad on different threads at the
 *     same time: the error message, grad mode, anomaly detection, the
 *     default random generator (lg.manual_seed) and the caches of tensor
 *     headers and graph nodes are per thread;
 *     the memory allocator is locked; storage reference counts are atomic.
 *   - Not thread-safe: sharing one tensor header between threads
 *     (its reference count is not atomic: lg_retain/lg_release of the
 *     same tensor must not race; a host may share the *memory* by
 *     wrapping it once per state), writing a tensor another thread reads,
 *     and the process-wide settings lg_set_num_threads and
 *     lg_set_default_dtype, which must be called before threads start.
 *   - The default generator is per thread and starts from the same seed
 *     in every thread: seed each thread (lg.manual_seed) for distinct
 *     streams.
 *   - A thread that used lgrad calls lg_mem_trim() before it ends, so
 *     that the memory blocks it cached go back to libc.
 */
#ifndef LGRAD_HOST_H
#define LGRAD_HOST_H

#include <lua.h>

/* in the source tree, or installed beside lgrad.h */
#if defined(__has_include)
#if __has_include("../runtime/lgrad.h")
#include "../runtime/lgrad.h"
#else
#include "lgrad.h"
#endif
#else
#include "../runtime/lgrad.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* the Lua module's entry point (what `require "lgrad"` calls) */
int luaopen_lgrad(lua_State *L);

/* Loads lgrad into L: opens Lua's standard libraries unless `package` is
 * already loaded, puts lgrad's Lua submodules on package.path (found
 * from $LGRAD_LUADIR, then the install directory compiled in, then next
 * to the executable: ../bindings for the build tree, ../share/lua/5.4 for
 * an installed prefix), registers `require "lgrad"` and sets the global
 * `lg`.  Returns LUA_OK, or an error status with the message pushed on
 * the stack; when lgrad/nn.lua is found nowhere it fails at once, naming
 * every place it looked. */
int lgrad_open(lua_State *L);

/* Pushes a tensor over the host's memory (contiguous, row-major; no
 * copy).  Returns 0, or -1 with nothing pushed (reason in lg_errmsg()).
 * See Ownership above. */
int lgrad_push_wrap(lua_State *L, lg_dtype dtype, int ndim,
                    const int64_t *shape, void *data, lg_release_fn rel,
                    void *ctx);
/* the same with explicit strides (in elements; NULL for contiguous) */
int lgrad_push_wrap_strided(lua_State *L, lg_dtype dtype, int ndim,
                            const int64_t *shape, const int64_t *strides,
                            void *data, lg_release_fn rel, void *ctx);

/* Pushes a new tensor holding a copy of `data` (contiguous).  Returns 0,
 * or -1 with nothing pushed. */
int lgrad_push_copy(lua_State *L, lg_dtype dtype, int ndim,
                    const int64_t *shape, const void *data);

/* Pushes t (taking a new reference; NULL pushes nil). */
void lgrad_push_tensor(lua_State *L, lg_tensor *t);

/* The tensor at idx (borrowed), or NULL when the value is not a tensor
 * or was closed. */
lg_tensor *lgrad_to_tensor(lua_State *L, int idx);

typedef struct lgrad_info {
  lg_dtype dtype;
  int ndim;
  int64_t shape[LG_MAX_DIMS];
  int64_t strides[LG_MAX_DIMS]; /* in elements */
  int64_t numel;
  size_t elem_size;  /* bytes per element */
  int contiguous;    /* row-major without gaps */
  void *data;        /* the first element */
  lg_tensor *tensor; /* borrowed, as lgrad_to_tensor */
} lgrad_info;

/* Fills *info for the tensor at idx; 0, or -1 when it is not a tensor. */
int lgrad_tensor_info(lua_State *L, int idx, lgrad_info *info);

/* Runs a file as the lgrad program runs a script: the global `arg` holds
 * arg[0] = path and arg[1..argc] = argv[0..argc-1], which the chunk also
 * receives as `...`; its results are discarded.  Returns 0, or the Lua
 * error status (LUA_ERRFILE, LUA_ERRSYNTAX, LUA_ERRRUN ...) with *err
 * (when err is not NULL) set to the message; the stack is left as it
 * was. */
int lgrad_dofile(lua_State *L, const char *path, int argc, char **argv,
                 char **err);
/* the same for a string (no arguments) */
int lgrad_dostring(lua_State *L, const char *code, char **err);

/* lua_pcall with a traceback: the function and nargs arguments on the
 * stack are replaced by nresults results (LUA_MULTRET: all).  Returns 0,
 * or the Lua error status with nothing pushed and *err set. */
int lgrad_call(lua_State *L, int nargs, int nresults, char **err);

/* ---- cancellation and time limits ----
 * lgrad_interrupt may be called from another thread or from a signal
 * handler while lgrad_call / lgrad_dofile / lgrad_dostring runs on L: the
 * call raises "interrupted" at the next Lua instruction or op, and long C
 * kernels (thread-pool loops, large GEMMs in blocks of rows, LBFGS
 * iterations) stop at their next block.  The state stays usable.  An
 * interrupt that arrives between calls is dropped when the next one
 * starts.  Returns 0, or -1 for a state lgrad_open did not open. */
int lgrad_interrupt(lua_State *L);
/* every later outermost call on L raises "time limit exceeded" once it
 * has run `seconds` (0: no limit) */
int lgrad_set_time_limit(lua_State *L, double seconds);
/* calls on L run with n threads (0: the process-wide lg_set_num_threads);
 * the process-wide count is restored when the call returns, so states on
 * different threads should not set different counts at the same time */
int lgrad_set_num_threads(lua_State *L, int n);

/* ---- host hooks ---- */
/* What lgrad's Lua modules print (fit's progress and epoch lines, through
 * lg.output) goes to fn, one string per write, instead of standard
 * output; NULL restores standard output. */
typedef void (*lgrad_log_fn)(void *ctx, const char *text);
int lgrad_set_log(lua_State *L, lgrad_log_fn fn, void *ctx);

/* The library's version (LG_VERSION_NUM of the build); compare with the
 * header's LGRAD_VERSION_NUM to refuse a mismatched major version. */
#define LGRAD_VERSION_MAJOR LG_VERSION_MAJOR
#define LGRAD_VERSION_MINOR LG_VERSION_MINOR
#define LGRAD_VERSION_PATCH LG_VERSION_PATCH
#define LGRAD_VERSION_NUM LG_VERSION_NUM
int lgrad_version(void);

/* ---- wrapped memory taken back ----
 * After lgrad_revoke(t), t and every view over its storage are closed:
 * any use from Lua raises "tensor is closed", and the release callback of
 * wrapped memory runs now (once) so the host may free or reuse it.  What
 * is undefined: reading t's data from C after the revoke (the pointer is
 * NULL), and revoking while a call on another thread uses the tensor.
 * `t:close()` (or `local t <close>`) in Lua drops that Lua reference only;
 * views and other references keep the memory alive. */
int lgrad_revoke(lg_tensor *t);

/* ---- reading a table of tensors ----
 * Calls fn(ctx, name, tensor) for every tensor in the table at idx and in
 * its nested tables, with dotted names as lg.save writes them
 * ("fc1.weight", "layers.2.bias"); the tensor is borrowed (lg_retain it to
 * keep it).  Stops at fn's first non-zero return and returns it; 0 when
 * every tensor was visited, -1 when idx is not a table.
 *   lua_getglobal(L, "model"); lua_getfield(L, -1, "state_dict");
 *   lua_pushvalue(L, -2); lgrad_call(L, 1, 1, &err);   -- model:state_dict()
 *   lgrad_foreach_tensor(L, -1, print_one, NULL); lua_pop(L, 2); */
typedef int (*lgrad_tensor_fn)(void *ctx, const char *name, lg_tensor *t);
int lgrad_foreach_tensor(lua_State *L, int idx, lgrad_tensor_fn fn,
                         void *ctx);

#ifdef __cplusplus
}
#endif

#endif
