/*
 * l_optim.h -- what other binding files use of lg.optim.
 */
#ifndef LGRAD_L_OPTIM_H
#define LGRAD_L_OPTIM_H

#include <lauxlib.h>
#include <lua.h>

#include "../runtime/lgrad.h"

#define LGL_OPTIM "lgrad.Optimizer"

/* the optimizer at idx; raises on anything else or a closed optimizer */
lg_optim *lgL_checkoptim(lua_State *L, int idx);

#endif
