/*
 * rnn.h -- recurrent layers as single autograd ops (ops/rnn.c).
 *
 * lg_rnn_layer runs one layer in one direction over a whole sequence:
 * one GEMM projects every input step up front, then each time step is one
 * GEMM for the recurrent product and one fused kernel for the gate
 * arithmetic; backward is the same walk in reverse with one fused kernel
 * per step and the weight gradients as one GEMM each at the end.
 * Bidirectional and multi-layer networks are built from it by the caller
 * (bindings/lgrad/nn_rnn.lua), as torch stacks its layers.
 *
 * Gate order and formulas are PyTorch's:
 *   LSTM  (G = 4; i, f, g, o)  c' = f c + i g,  h' = o tanh(c')
 *   GRU   (G = 3; r, z, n)     n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
 *                              h' = (1 - z) n + z h
 *   RNN   (G = 1)              h' = tanh or relu(W_ih x + b_ih + W_hh h + b_hh)
 *
 * Example (one LSTM layer, time-major x of shape (T, B, I)):
 *   lg_tensor *out = lg_rnn_layer(LG_RNN_LSTM, x, h0, c0, w_ih, w_hh, b_ih,
 *                                 b_hh, NULL, false);
 *   -- out (T + 2, B, H): rows 0..T-1 the outputs, row T h_n, row T+1 c_n
 */
#ifndef LGRAD_OPS_RNN_H
#define LGRAD_OPS_RNN_H

#include "../lgrad.h"

typedef enum {
  LG_RNN_TANH = 0,
  LG_RNN_RELU = 1,
  LG_RNN_LSTM = 2,
  LG_RNN_GRU = 3
} lg_rnn_mode;

/* gates per hidden unit: 1, 1, 4, 3 */
int lg_rnn_gates(lg_rnn_mode mode);

/* x (T, B, I), h0 (B, H), c0 (B, H) for LSTM (NULL otherwise),
 * w_ih (G H, I), w_hh (G H, H), b_ih and b_hh (G H) or NULL, all of one
 * float dtype.  lengths: NULL (every sequence has T steps) or B values in
 * 1..T, non-increasing (the longest sequence first); steps past a
 * sequence's length are not computed.  reverse runs from each sequence's
 * last real step back to its first.
 * Returns (T + 1, B, H), or (T + 2, B, H) for LSTM: rows 0..T-1 the
 * outputs h_t (zero past each length), row T h_n (the state after each
 * sequence's last processed step), row T + 1 c_n. */
lg_tensor *lg_rnn_layer(lg_rnn_mode mode, lg_tensor *x, lg_tensor *h0,
                        lg_tensor *c0, lg_tensor *w_ih, lg_tensor *w_hh,
                        lg_tensor *b_ih, lg_tensor *b_hh,
                        const int64_t *lengths, bool reverse);

#endif
