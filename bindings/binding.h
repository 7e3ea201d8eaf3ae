/*
 * binding.h -- shared helpers of the Lua 5.4 binding (internal).
 *
 * A tensor reaches Lua as a full userdata box holding one lg_tensor
 * pointer (metatable "lgrad.Tensor").  The box owns one reference; __gc and
 * __close release it once and leave NULL, so later use raises
 * "tensor is closed".
 *
 * Pattern for a function returning a new tensor:
 *   lg_tensor **box = lgL_newbox(L);          -- empty box, safe to collect
 *   *box = lg_something(...);                 -- runtime call, no Lua error
 *   if (!*box) return lgL_fail(L, "name");    -- raises "name: <reason>"
 *   lgL_account(L);                           -- lets the GC see C bytes
 *   return 1;
 * or simply lgL_pushresult(L, "name", lg_something(...)) when no Lua error
 * can happen between the runtime call and the push.
 *
 * Each binding file exports one lgL_open_xxx(lua_State *L) that adds its
 * functions to the module table at the top of the stack.
 */
#ifndef LGRAD_BINDING_H
#define LGRAD_BINDING_H

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/lgrad.h"

/* errors start with the user's line, not one of lgrad's Lua modules
 * (l_where.c) */
int lgL_error(lua_State *L, const char *fmt, ...);
void lgL_where(lua_State *L, int level);
#define luaL_error lgL_error

#define LGL_TENSOR "lgrad.Tensor"
extern char lgL_tensor_mt_key; /* registry key of the Tensor metatable */

/* the userdata behind a tensor: the pointer first, so a box's address is
 * also the address of its lg_tensor pointer */
typedef struct {
  lg_tensor *tensor;
  uint64_t tag;
} lgL_box;
#define LGL_BOX_TAG 0xC0DEFACE7E450A5DULL

/* the tensor at idx (errors on a non-tensor or a closed tensor) */
lg_tensor *lgL_checktensor(lua_State *L, int idx);
/* NULL if not a tensor; raises "tensor is closed" for a closed one */
lg_tensor *lgL_totensor(lua_State *L, int idx);
bool lgL_istensor(lua_State *L, int idx); /* open or closed */
/* the tensor, or NULL when not one or closed; never raises */
lg_tensor *lgL_testtensor(lua_State *L, int idx);
/* the name the running C function was called by, for messages */
const char *lgL_fname(lua_State *L);
/* a tensor, or a number/table converted to a new tensor of dtype like;
 * the converted tensor is kept on the stack at idx's place */
lg_tensor *lgL_checktensorlike(lua_State *L, int idx, lg_dtype like);
lg_tensor **lgL_newbox(lua_State *L);
int lgL_fail(lua_State *L, const char *fname);
/* a lua_pcall message handler: the message (or the error object's
 * __tostring) with a traceback */
int lgL_traceback(lua_State *L);
/* a function written in Lua: a C closure whose upvalue 1 names the module
 * (require'd on each call, cached by require) that is called with the
 * arguments */
int lgL_call_module(lua_State *L);
/* the tail of an __index: metatable(arg 1).methods[arg 2] */
int lgL_method(lua_State *L);
/* pushes t (taking its reference) or raises fname's error when t is NULL */
int lgL_pushresult(lua_State *L, const char *fname, lg_tensor *t);
void lgL_pushtensor(lua_State *L, lg_tensor *t); /* takes the reference */
/* runs a GC step when C-side bytes have grown past the threshold */
void lgL_account(lua_State *L);
/* a dimension argument, 1-based/negative in Lua, returned 0-based */
int lgL_checkdim(lua_State *L, int idx, int ndim, const char *fname);
int lgL_optdim(lua_State *L, int idx, int ndim, int def, const char *fname);
/* a shape given as integers or one table at idx..top; returns ndim */
int lgL_checkshape(lua_State *L, int idx, int64_t *shape, const char *fname);
lg_dtype lgL_checkdtype(lua_State *L, int idx);
/* an option field of the table at idx */
double lgL_optnumberfield(lua_State *L, int idx, const char *k, double def);
int lgL_optbooleanfield(lua_State *L, int idx, const char *k, int def);
lg_generator *lgL_optgenerator(lua_State *L, int opts_idx);
/* raises "fname: unknown option 'k' (valid options: ...)" for a key of the
 * table at idx not in the NULL-ended list */
void lgL_checkopts(lua_State *L, int idx, const char *fname,
                   const char *const *allowed);
/* raises when a non-nil argument follows position last */
void lgL_checknargs(lua_State *L, int last, const char *fname);
/* a reduction's (dim [, keepdim] [, opts]) or ({dim =, keepdim =, ...})
 * from idx: returns the 0-based dim or LG_ALL_DIMS; extra lists option
 * keys besides dim and keepdim; with opts NULL, arguments after these
 * raise, else *opts gets the table's index (0: none) */
int lgL_reduce_args(lua_State *L, int idx, const lg_tensor *t,
                    const char *fname, bool *keep, int *opts,
                    const char *const *extra);

void lgL_open_tensor(lua_State *L);
void lgL_open_autograd(lua_State *L);
void lgL_open_functional(lua_State *L);
void lgL_open_optim(lua_State *L);
void lgL_open_sched(lua_State *L);
void lgL_open_reg(lua_State *L);
void lgL_open_io(lua_State *L);
void lgL_open_shape(lua_State *L);
void lgL_open_where(lua_State *L);
void lgL_open_linalg(lua_State *L);
void lgL_open_attention(lua_State *L); /* into the lg.F table on top */
void lgL_open_text(lua_State *L);
void lgL_open_rnn(lua_State *L);
void lgL_functional_lazy(lua_State *L); /* lg.F's Lua half */
void lgL_open_embedding(lua_State *L); /* after lgL_open_functional */



/* l_ops.c adds the op methods to the Tensor methods table (at methods)
 * and the same functions to the module table (at module) */
void lgL_register_ops(lua_State *L, int methods, int module);
/* pushes a 0-based int64 index tensor converted to 1-based, and back */
lg_tensor *lgL_index_in(lua_State *L, int idx, const char *fname);
void lgL_push_index_out(lua_State *L, lg_tensor *idx0, const char *fname);
/* the same for a result that may be NULL (the runtime's error raised then);
 * returns 1 */
int lgL_push_index_result(lua_State *L, const char *fname, lg_tensor *idx0);
/* the Lua state running the current backward (Lua-defined functions
 * call back into it); set by whoever starts a backward from Lua */
extern __thread lua_State *lgL_active_state;
#endif
