/*
 * l_rnn.c -- the Lua face of ops/rnn.c (lg._rnn), called by the recurrent
 * modules of bindings/lgrad/nn_rnn.lua:
 *
 *   lg._rnn.layer(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse)
 *
 * mode "rnn_tanh" | "rnn_relu" | "lstm" | "gru"; x (T, B, I) time-major;
 * c0, b_ih, b_hh and lengths (an int64 tensor of B lengths, longest first)
 * may be nil.  Returns one tensor (T + 1, B, H), (T + 2, B, H) for LSTM:
 * the outputs, then h_n (and c_n); see runtime/ops/rnn.h.
 */
#include "../runtime/ops/rnn.h"
#include "binding.h"

static lg_tensor *opt_tensor(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ? NULL : lgL_checktensor(L, idx);
}

static int r_layer(lua_State *L) {
  static const char *const modes[] = {"rnn_tanh", "rnn_relu", "lstm", "gru",
                                      NULL};
  int mode = luaL_checkoption(L, 1, NULL, modes);
  const char *fn = modes[mode];
  lg_tensor *x = lgL_checktensor(L, 2), *h0 = lgL_checktensor(L, 3);
  lg_tensor *c0 = opt_tensor(L, 4);
  lg_tensor *w_ih = lgL_checktensor(L, 5), *w_hh = lgL_checktensor(L, 6);
  lg_tensor *b_ih = opt_tensor(L, 7), *b_hh = opt_tensor(L, 8);
  lg_tensor *len = opt_tensor(L, 9);
  bool reverse = lua_toboolean(L, 10);
  if (mode == LG_RNN_LSTM && !c0)
    return luaL_error(L, "%s: c0 is required", fn);
  int64_t *lengths = NULL;
  if (len) {
    char s1[200], s2[200];
    if (len->dtype != LG_INT64 || len->ndim != 1)
      return luaL_error(L, "%s: lengths must be a 1-d int64 tensor (got %s %s)",
                        fn, lg_dtype_name(len->dtype),
                        lg_shape_str(len, s1, sizeof s1));
    if (x->ndim != 3 || len->shape[0] != x->shape[1])
      return luaL_error(L,
                        "%s: lengths %s must have one value per sequence "
                        "of the input %s (dim 2)",
                        fn, lg_shape_str(len, s1, sizeof s1),
                        lg_shape_str(x, s2, sizeof s2));
    int64_t B = len->shape[0];
    /* a Lua-owned copy: nothing leaks if an error is raised below */
    lengths = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(B ? B : 1), 0);
    const int64_t *p = lg_data_ptr(len);
    for (int64_t b = 0; b < B; b++)
      lengths[b] = p[b * len->strides[0]];
  }
  lg_tensor *out = lg_rnn_layer((lg_rnn_mode)mode, x, h0, c0, w_ih, w_hh, b_ih,
                                b_hh, lengths, reverse);
  return lgL_pushresult(L, fn, out);
}

static const luaL_Reg rnn_funcs[] = {{"layer", r_layer}, {NULL, NULL}};

void lgL_open_rnn(lua_State *L) {
  luaL_newlib(L, rnn_funcs);
  lua_setfield(L, -2, "_rnn");
}
