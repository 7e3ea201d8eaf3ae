/*
 * ops/rnn.c -- recurrent layers (RNN, LSTM, GRU) over a whole sequence as
 * one autograd op per layer and direction; see rnn.h.
 *
 * Layout.  Sequences are time-major, x (T, B, I).  With lengths sorted
 * longest first, the sequences still running at time t are the first
 * bt(t) of the batch, so the work of step t is on contiguous rows.  Every
 * per-step quantity is kept "packed" as torch's PackedSequence keeps it:
 * the rows of time t are rows off(t) .. off(t) + bt(t) - 1 of an (N, .)
 * matrix, N = sum of the lengths, and nothing is computed past the ends.
 *
 * Forward, per layer and direction:
 *   XP (N, G H) = X W_ih^T + b_ih                       one GEMM
 *   for each step t (from T-1 down in reverse):
 *     HH (bt, G H) = Hprev W_hh^T                       one GEMM
 *     gates, c_t, h_t from XP, HH, b_hh, Hprev, Cprev   one fused kernel
 * Backward walks the steps the other way:
 *   fused kernel: dh, dc, saved gates -> dA (pre-activation gradients)
 *   dHprev (bt, H) = dA_h W_hh                          one GEMM
 * and then dX = dA_x W_ih, dW_ih = dA_x^T X, dW_hh = dA_h^T Hprev (one
 * GEMM each over all N rows), db = column sums.  dA_x and dA_h are the
 * gradients of the input-side and hidden-side pre-activations; they are
 * equal except for the GRU's n gate, where dA_h = dA_x * r.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "rnn.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif

#define SHAPE_BUF 192

int lg_rnn_gates(lg_rnn_mode mode) {
  return mode == LG_RNN_LSTM ? 4 : mode == LG_RNN_GRU ? 3 : 1;
}

static const char *mode_name(lg_rnn_mode mode) {
  static const char *const names[] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};
  return names[mode];
}

/* ==== fused gate kernels, forward and backward side by side ====
 *
 * One call covers the rows of one step: xp (rows, G H) the input
 * projection with b_ih, hh (rows, G H) = Hprev W_hh^T, bh (G H) b_hh or
 * NULL, hp/cp (rows, H) the previous states.  The backward kernels take
 * dh (rows, H) the total gradient of h_t and dc (rows, H) the gradient of
 * c_t carried from the step after (replaced by that of c_{t-1}), and
 * write the pre-activation gradients dax (and dah for the GRU). */

#define DEF_GATES(T, SFX, EXP, TANH)                                           \
  static inline T sigm_##SFX(T v) { return (T)1 / ((T)1 + EXP(-v)); }          \
                                                                               \
  /* LSTM: i, f, g, o = sig, sig, tanh, sig of the four pre-activations;       \
   * c = f cp + i g; h = o TANH(c).  gates (rows, 4H) keeps i f g o. */        \
  static void lstm_fw_##SFX(int64_t rows, int64_t H, const T *xp, const T *hh, \
                            const T *bh, const T *cp, T *gates, T *c, T *h) {  \
    int64_t GH = 4 * H;                                                        \
    for (int64_t r = 0; r < rows; r++) {                                       \
      const T *x = xp + r * GH, *u = hh + r * GH;                              \
      T *gt = gates + r * GH;                                                  \
      for (int64_t j = 0; j < H; j++) {                                        \
        T ai = x[j] + u[j], af = x[H + j] + u[H + j];                          \
        T ag = x[2 * H + j] + u[2 * H + j], ao = x[3 * H + j] + u[3 * H + j];  \
        if (bh) {                                                              \
          ai += bh[j];                                                         \
          af += bh[H + j];                                                     \
          ag += bh[2 * H + j];                                                 \
          ao += bh[3 * H + j];                                                 \
        }                                                                      \
        T i = sigm_##SFX(ai), f = sigm_##SFX(af), g = TANH(ag);                \
        T o = sigm_##SFX(ao);                                                  \
        T cn = f * cp[r * H + j] + i * g;                                      \
        gt[j] = i;                                                             \
        gt[H + j] = f;                                                         \
        gt[2 * H + j] = g;                                                     \
        gt[3 * H + j] = o;                                                     \
        c[r * H + j] = cn;                                                     \
        h[r * H + j] = o * TANH(cn);                                           \
      }                                                                        \
    }                                                                          \
  }                                                                            \
                                                                               \
  /* dc_t = dc + dh o (1 - tanh(c)^2); da_i = dc_t g i (1 - i);                \
   * da_f = dc_t cp f (1 - f); da_g = dc_t i (1 - g^2);                        \
   * da_o = dh tanh(c) o (1 - o); dc <- dc_t f (the gradient of cp) */         \
  static void lstm_bw_##SFX(int64_t rows, int64_t H, const T *gates,           \
                            const T *c, const T *cp, const T *dh, T *dc,       \
                            T *dax) {                                          \
    int64_t GH = 4 * H;                                                        \
    for (int64_t r = 0; r < rows; r++) {                                       \
      const T *gt = gates + r * GH;                                            \
      T *da = dax + r * GH;                                                    \
      for (int64_t j = 0; j < H; j++) {                                        \
        T i = gt[j], f = gt[H + j], g = gt[2 * H + j], o = gt[3 * H + j];      \
        T tc = TANH(c[r * H + j]), d = dh[r * H + j];                          \
        T dct = dc[r * H + j] + d * o * ((T)1 - tc * tc);                      \
        da[j] = dct * g * i * ((T)1 - i);                                      \
        da[H + j] = dct * cp[r * H + j] * f * ((T)1 - f);                      \
        da[2 * H + j] = dct * i * ((T)1 - g * g);                              \
        da[3 * H + j] = d * tc * o * ((T)1 - o);                               \
        dc[r * H + j] = dct * f;                                               \
      }                                                                        \
    }                                                                          \
  }                                                                            \
                                                                               \
  /* GRU: r = sig(ax_r + ah_r), z = sig(ax_z + ah_z), hn = ah_n (with          \
   * b_hn), n = tanh(ax_n + r hn), h = (1 - z) n + z hp.  gates keeps r z n,   \
   * hnl keeps hn. */                                                          \
  static void gru_fw_##SFX(int64_t rows, int64_t H, const T *xp, const T *hh,  \
                           const T *bh, const T *hp, T *gates, T *hnl, T *h) { \
    int64_t GH = 3 * H;                                                        \
    for (int64_t r = 0; r < rows; r++) {                                       \
      const T *x = xp + r * GH, *u = hh + r * GH;                              \
      T *gt = gates + r * GH;                                                  \
      for (int64_t j = 0; j < H; j++) {                                        \
        T ur = u[j], uz = u[H + j], un = u[2 * H + j];                         \
        if (bh) {                                                              \
          ur += bh[j];                                                         \
          uz += bh[H + j];                                                     \
          un += bh[2 * H + j];                                                 \
        }                                                                      \
        T rg = sigm_##SFX(x[j] + ur), z = sigm_##SFX(x[H + j] + uz);           \
        T n = TANH(x[2 * H + j] + rg * un);                                    \
        gt[j] = rg;                                                            \
        gt[H + j] = z;                                                         \
        gt[2 * H + j] = n;                                                     \
        hnl[r * H + j] = un;                                                   \
        h[r * H + j] = ((T)1 - z) * n + z * hp[r * H + j];                     \
      }                                                                        \
    }                                                                          \
  }                                                                            \
                                                                               \
  /* dz = dh (hp - n), dn = dh (1 - z), da_n = dn (1 - n^2),                   \
   * da_r = da_n hn r (1 - r), da_z = dz z (1 - z); dax = (da_r, da_z, da_n),  \
   * dah = (da_r, da_z, da_n r); dhp (the direct part, dh z) is written        \
   * into dhp */                                                               \
  static void gru_bw_##SFX(int64_t rows, int64_t H, const T *gates,            \
                           const T *hnl, const T *hp, const T *dh, T *dhp,     \
                           T *dax, T *dah) {                                   \
    int64_t GH = 3 * H;                                                        \
    for (int64_t r = 0; r < rows; r++) {                                       \
      const T *gt = gates + r * GH;                                            \
      T *dx = dax + r * GH, *du = dah + r * GH;                                \
      for (int64_t j = 0; j < H; j++) {                                        \
        T rg = gt[j], z = gt[H + j], n = gt[2 * H + j];                        \
        T d = dh[r * H + j];                                                   \
        T dan = d * ((T)1 - z) * ((T)1 - n * n);                               \
        T dar = dan * hnl[r * H + j] * rg * ((T)1 - rg);                       \
        T daz = d * (hp[r * H + j] - n) * z * ((T)1 - z);                      \
        dx[j] = du[j] = dar;                                                   \
        dx[H + j] = du[H + j] = daz;                                           \
        dx[2 * H + j] = dan;                                                   \
        du[2 * H + j] = dan * rg;                                              \
        dhp[r * H + j] = d * z;                                                \
      }                                                                        \
    }                                                                          \
  }                                                                            \
                                                                               \
  /* Elman: h = tanh(a) or relu(a), a = xp + hh + bh */                        \
  static void elman_fw_##SFX(int64_t rows, int64_t H, bool relu, const T *xp,  \
                             const T *hh, const T *bh, T *h) {                 \
    for (int64_t r = 0; r < rows; r++)                                         \
      for (int64_t j = 0; j < H; j++) {                                        \
        T a = xp[r * H + j] + hh[r * H + j] + (bh ? bh[j] : (T)0);             \
        h[r * H + j] = relu ? (a > 0 ? a : (T)0) : TANH(a);                    \
      }                                                                        \
  }                                                                            \
                                                                               \
  /* da = dh (1 - h^2) for tanh, dh [h > 0] for relu */                        \
  static void elman_bw_##SFX(int64_t rows, int64_t H, bool relu, const T *h,   \
                             const T *dh, T *dax) {                            \
    for (int64_t i = 0; i < rows * H; i++)                                     \
      dax[i] =                                                                 \
          relu ? (h[i] > 0 ? dh[i] : (T)0) : dh[i] * ((T)1 - h[i] * h[i]);     \
  }                                                                            \
                                                                               \
  /* one step of the forward: the kernel of the mode */                        \
  static void step_fw_##SFX(lg_rnn_mode mode, int64_t rows, int64_t H,         \
                            const void *xp, const void *hh, const void *bh,    \
                            const void *hp, const void *cp, void *gates,       \
                            void *c, void *hnl, void *h) {                     \
    if (mode == LG_RNN_LSTM)                                                   \
      lstm_fw_##SFX(rows, H, xp, hh, bh, cp, gates, c, h);                     \
    else if (mode == LG_RNN_GRU)                                               \
      gru_fw_##SFX(rows, H, xp, hh, bh, hp, gates, hnl, h);                    \
    else                                                                       \
      elman_fw_##SFX(rows, H, mode == LG_RNN_RELU, xp, hh, bh, h);             \
  }                                                                            \
                                                                               \
  /* one step of the backward: dh (rows, H) is the carried gradient of h_t,    \
   * gy that of the output; for the GRU dh is left holding dh_t z */           \
  static void step_bw_##SFX(lg_rnn_mode mode, int64_t rows, int64_t H,         \
                            const void *gates, const void *c, const void *cp,  \
                            const void *hnl, const void *hp, const void *h,    \
                            const void *gy, void *dh, void *dhtot, void *dc,   \
                            void *dax, void *dah) {                            \
    T *tot = dhtot;                                                            \
    const T *carry = dh, *g = gy;                                              \
    for (int64_t i = 0; i < rows * H; i++)                                     \
      tot[i] = carry[i] + g[i];                                                \
    if (mode == LG_RNN_LSTM)                                                   \
      lstm_bw_##SFX(rows, H, gates, c, cp, tot, dc, dax);                      \
    else if (mode == LG_RNN_GRU)                                               \
      gru_bw_##SFX(rows, H, gates, hnl, hp, tot, dh, dax, dah);                \
    else                                                                       \
      elman_bw_##SFX(rows, H, mode == LG_RNN_RELU, h, tot, dax);               \
  }

DEF_GATES(float, f32, expf, tanhf)
DEF_GATES(double, f64, exp, tanh)

typedef void (*step_fw_fn)(lg_rnn_mode, int64_t, int64_t, const void *,
                           const void *, const void *, const void *,
                           const void *, void *, void *, void *, void *);
typedef void (*step_bw_fn)(lg_rnn_mode, int64_t, int64_t, const void *,
                           const void *, const void *, const void *,
                           const void *, const void *, const void *, void *,
                           void *, void *, void *, void *);
/* by dtype: [0] float32, [1] float64 */
static const step_fw_fn step_fw[2] = {step_fw_f32, step_fw_f64};
static const step_bw_fn step_bw[2] = {step_bw_f32, step_bw_f64};

/* ==== the op's state between forward and backward ==== */

typedef struct {
  lg_rnn_mode mode;
  bool reverse;
  lg_dtype dtype;
  int64_t T, B, I, H, G, N;
  int64_t *bt;  /* (T) sequences running at time t */
  int64_t *off; /* (T) first packed row of time t */
  /* packed (N, .) results of the forward, kept for backward */
  void *gates; /* (N, G H) activated gates (LSTM, GRU) */
  void *hs;    /* (N, H) h_t */
  void *cs;    /* (N, H) c_t (LSTM) */
  void *hnl;   /* (N, H) W_hn h + b_hn (GRU) */
  size_t gates_bytes, state_bytes;
} rnn_state;

static void *work_alloc(size_t nbytes) {
  void *p = lg_alloc(nbytes ? nbytes : 1);
  if (!p)
    lg_seterr("rnn: out of memory (%zu bytes)", nbytes);
  return p;
}

static void work_free(void *p, size_t nbytes) {
  if (p)
    lg_free(p, nbytes ? nbytes : 1);
}

static void state_free(void *ctx) {
  rnn_state *s = ctx;
  if (!s)
    return;
  free(s->bt);
  free(s->off);
  work_free(s->gates, s->gates_bytes);
  work_free(s->hs, s->state_bytes);
  work_free(s->cs, s->state_bytes);
  work_free(s->hnl, s->state_bytes);
  free(s);
}

/* the step schedule: bt(t) and off(t) from the lengths */
static int state_schedule(rnn_state *s, const int64_t *lengths) {
  int64_t T = s->T, B = s->B;
  s->bt = malloc(sizeof(int64_t) * (size_t)(T ? T : 1));
  s->off = malloc(sizeof(int64_t) * (size_t)(T ? T : 1));
  if (!s->bt || !s->off) {
    lg_seterr("%s: out of memory", mode_name(s->mode));
    return -1;
  }
  int64_t n = 0, k = B;
  for (int64_t t = 0; t < T; t++) {
    if (lengths)
      while (k > 0 && lengths[k - 1] <= t)
        k--;
    s->bt[t] = k;
    s->off[t] = n;
    n += k;
  }
  s->N = n;
  return 0;
}

/* a contiguous version of t made without recording */
static lg_tensor *dense(lg_tensor *t, lg_dtype d) {
  if (!t)
    return NULL;
  bool was = lg_set_grad_enabled(false);
  lg_tensor *c;
  if (t->dtype != d) {
    lg_tensor *conv = lg_to_dtype(t, d);
    c = conv ? lg_contiguous(conv) : NULL;
    lg_release(conv);
  } else {
    c = lg_contiguous(t);
  }
  lg_set_grad_enabled(was);
  return c;
}

/* the rows of x (T, B, W) at the packed positions, into p (N, W) */
static void pack_rows(const rnn_state *s, size_t es, int64_t W, const char *x,
                      char *p) {
  for (int64_t t = 0; t < s->T; t++)
    memcpy(p + s->off[t] * W * es, x + t * s->B * W * es,
           (size_t)(s->bt[t] * W) * es);
}

/* the previous state of the rows of time t, into prev (bt, H): the state
 * of the neighbouring step in processing order where that sequence ran,
 * else the initial state s0 (B, H) */
static void prev_rows(const rnn_state *s, size_t es, int64_t t,
                      const char *states, const char *s0, char *prev) {
  int64_t H = s->H, bt = s->bt[t];
  int64_t u = s->reverse ? t + 1 : t - 1, from = 0;
  if (u >= 0 && u < s->T) {
    from = s->bt[u] < bt ? s->bt[u] : bt;
    memcpy(prev, states + s->off[u] * H * es, (size_t)(from * H) * es);
  }
  memcpy(prev + from * H * es, s0 + from * H * es,
         (size_t)((bt - from) * H) * es);
}

/* column sums of a (N, C) matrix into out (C), accumulating */
static void colsum_add(lg_dtype d, int64_t N, int64_t C, const void *a,
                       void *out) {
  if (d == LG_FLOAT32) {
    const float *p = a;
    float *o = out;
    for (int64_t n = 0; n < N; n++)
      for (int64_t c = 0; c < C; c++)
        o[c] += p[n * C + c];
  } else {
    const double *p = a;
    double *o = out;
    for (int64_t n = 0; n < N; n++)
      for (int64_t c = 0; c < C; c++)
        o[c] += p[n * C + c];
  }
}

/* ==== checks ==== */

static int check_shape(const char *fn, const char *what, const lg_tensor *t,
                       int ndim, const int64_t *shape, lg_dtype d) {
  char got[SHAPE_BUF], want[SHAPE_BUF];
  bool ok = t->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++)
    ok = t->shape[i] == shape[i];
  if (!ok) {
    int n = snprintf(want, sizeof want, "[");
    for (int i = 0; i < ndim; i++)
      n += snprintf(want + n, sizeof want - (size_t)n, "%s%lld", i ? "," : "",
                    (long long)shape[i]);
    snprintf(want + n, sizeof want - (size_t)n, "]");
    lg_seterr("%s: %s must have shape %s (got %s)", fn, what, want,
              lg_shape_str(t, got, sizeof got));
    return -1;
  }
  if (t->dtype != d) {
    lg_seterr("%s: %s is %s but the input is %s", fn, what,
              lg_dtype_name(t->dtype), lg_dtype_name(d));
    return -1;
  }
  return 0;
}

static int check_args(lg_rnn_mode mode, lg_tensor *x, lg_tensor *h0,
                      lg_tensor *c0, lg_tensor *w_ih, lg_tensor *w_hh,
                      lg_tensor *b_ih, lg_tensor *b_hh,
                      const int64_t *lengths) {
  const char *fn = mode_name(mode);
  char s1[SHAPE_BUF];
  if (!x || !h0 || !w_ih || !w_hh || (mode == LG_RNN_LSTM && !c0)) {
    lg_seterr("%s: missing input, state or weight", fn);
    return -1;
  }
  if (!lg_dtype_is_float(x->dtype)) {
    lg_seterr("%s: input must be float32 or float64 (got %s)", fn,
              lg_dtype_name(x->dtype));
    return -1;
  }
  if (x->ndim != 3 || x->shape[0] < 1) {
    lg_seterr("%s: input must be (T, B, input_size) with T >= 1 (got %s)", fn,
              lg_shape_str(x, s1, sizeof s1));
    return -1;
  }
  if (w_hh->ndim != 2) {
    lg_seterr("%s: weight_hh must be 2-d (got %s)", fn,
              lg_shape_str(w_hh, s1, sizeof s1));
    return -1;
  }
  int64_t T = x->shape[0], B = x->shape[1], I = x->shape[2];
  int64_t H = w_hh->shape[1], GH = lg_rnn_gates(mode) * H;
  lg_dtype d = x->dtype;
  if (check_shape(fn, "weight_hh", w_hh, 2, (int64_t[]){GH, H}, d) ||
      check_shape(fn, "weight_ih", w_ih, 2, (int64_t[]){GH, I}, d) ||
      (b_ih && check_shape(fn, "bias_ih", b_ih, 1, &GH, d)) ||
      (b_hh && check_shape(fn, "bias_hh", b_hh, 1, &GH, d)) ||
      check_shape(fn, "h0", h0, 2, (int64_t[]){B, H}, d) ||
      (c0 && check_shape(fn, "c0", c0, 2, (int64_t[]){B, H}, d)))
    return -1;
  for (int64_t b = 0; lengths && b < B; b++) {
    if (lengths[b] < 1 || lengths[b] > T) {
      lg_seterr("%s: length %lld of sequence %lld is outside 1..%lld (the "
                "input has %lld steps)",
                fn, (long long)lengths[b], (long long)b, (long long)T,
                (long long)T);
      return -1;
    }
    if (b > 0 && lengths[b] > lengths[b - 1]) {
      lg_seterr("%s: lengths must be sorted longest first (sequence %lld "
                "has %lld steps, the one before it %lld)",
                fn, (long long)b, (long long)lengths[b],
                (long long)lengths[b - 1]);
      return -1;
    }
  }
  return 0;
}

/* ==== backward ==== */

/* inputs: 0 x, 1 h0, 2 c0, 3 w_ih, 4 w_hh, 5 b_ih, 6 b_hh */
static int rnn_backward(lg_node *node, lg_tensor *grad_out, lg_tensor **grads) {
  rnn_state *s = node->ctx;
  lg_tensor *x = lg_node_saved(node, 0), *w_ih = lg_node_saved(node, 1);
  lg_tensor *w_hh = lg_node_saved(node, 2), *h0 = lg_node_saved(node, 3);
  bool lstm = s && s->mode == LG_RNN_LSTM;
  lg_tensor *c0 = lstm ? lg_node_saved(node, 4) : NULL; /* after the others */
  if (!s || !x || !w_ih || !w_hh || !h0 || (lstm && !c0))
    return -1;
  lg_dtype d = s->dtype;
  size_t es = lg_dtype_size(d);
  int64_t T = s->T, B = s->B, I = s->I, H = s->H, G = s->G, N = s->N;
  int64_t GH = G * H;
  bool gru = s->mode == LG_RNN_GRU;
  lg_tensor *g = dense(grad_out, d), *xc = dense(x, d);
  lg_tensor *wihc = dense(w_ih, d), *whhc = dense(w_hh, d);
  lg_tensor *h0c = dense(h0, d), *c0c = lstm ? dense(c0, d) : NULL;
  size_t bytes_ga = (size_t)(N * GH) * es, bytes_h = (size_t)(N * H) * es;
  size_t bytes_x = (size_t)(N * I) * es, bytes_bh = (size_t)(B * H) * es;
  char *dax = NULL, *dah = NULL, *hprev = NULL, *xp = NULL, *dxp = NULL;
  char *dh = NULL, *dc = NULL, *dhtot = NULL, *cprev = NULL;
  int rc = -1;
  if (!g || !xc || !wihc || !whhc || !h0c || (lstm && !c0c))
    goto out;
  if (!(dax = work_alloc(bytes_ga)) || (gru && !(dah = work_alloc(bytes_ga))) ||
      !(hprev = work_alloc(bytes_h)) || !(dh = work_alloc(bytes_bh)) ||
      !(dhtot = work_alloc(bytes_bh)) ||
      (lstm &&
       (!(dc = work_alloc(bytes_bh)) || !(cprev = work_alloc(bytes_bh)))))
    goto out;
  if (!gru)
    dah = dax;
  const char *gp = lg_data_ptr(g), *whh = lg_data_ptr(whhc);
  const char *h0p = lg_data_ptr(h0c);
  /* dh, dc: the gradients of h_n and c_n to start the carry with */
  memcpy(dh, gp + T * B * H * es, bytes_bh);
  if (lstm)
    memcpy(dc, gp + (T + 1) * B * H * es, bytes_bh);
  for (int64_t k = 0; k < T; k++) {
    int64_t t = s->reverse ? k : T - 1 - k, bt = s->bt[t], o = s->off[t];
    if (bt == 0)
      continue;
    char *hp = hprev + o * H * es;
    prev_rows(s, es, t, s->hs, h0p, hp);
    if (lstm)
      prev_rows(s, es, t, s->cs, lg_data_ptr(c0c), cprev);
    char *dx_t = dax + o * GH * es, *dh_t = dah + o * GH * es;
    step_bw[d == LG_FLOAT64](s->mode, bt, H, (char *)s->gates + o * GH * es,
                             lstm ? (char *)s->cs + o * H * es : NULL, cprev,
                             gru ? (char *)s->hnl + o * H * es : NULL, hp,
                             (char *)s->hs + o * H * es, gp + t * B * H * es,
                             dh, dhtot, dc, dx_t, dh_t);
    double beta = 0.0;
    if (gru)
      beta = 1.0; /* dh already holds the direct part dh z */
    /* dHprev (bt, H) = dA_h (bt, G H) W_hh (G H, H) */
    lg_gemm(d, false, false, bt, H, GH, 1.0, dh_t, GH, whh, H, beta, dh, H);
  }
  /* the input side: dX, dW_ih, db_ih over all packed rows at once */
  if (node->needs_grad[0] || node->needs_grad[3]) {
    if (!(xp = work_alloc(bytes_x)))
      goto out;
    pack_rows(s, es, I, lg_data_ptr(xc), xp);
  }
  if (node->needs_grad[0]) {
    if (!(dxp = work_alloc(bytes_x)) || !(grads[0] = lg_zeros(d, 3, x->shape)))
      goto out;
    lg_gemm(d, false, false, N, I, GH, 1.0, dax, GH, lg_data_ptr(wihc), I, 0.0,
            dxp, I);
    char *dxo = lg_data_ptr(grads[0]);
    for (int64_t t = 0; t < T; t++)
      memcpy(dxo + t * B * I * es, dxp + s->off[t] * I * es,
             (size_t)(s->bt[t] * I) * es);
  }
  if (node->needs_grad[1]) {
    if (!(grads[1] = lg_from_data(d, 2, h0->shape, dh)))
      goto out;
  }
  if (node->needs_grad[2] && lstm) {
    if (!(grads[2] = lg_from_data(d, 2, c0->shape, dc)))
      goto out;
  }
  if (node->needs_grad[3]) {
    if (!(grads[3] = lg_empty(d, 2, w_ih->shape)))
      goto out;
    lg_gemm(d, true, false, GH, I, N, 1.0, dax, GH, xp, I, 0.0,
            lg_data_ptr(grads[3]), I);
  }
  if (node->needs_grad[4]) {
    if (!(grads[4] = lg_empty(d, 2, w_hh->shape)))
      goto out;
    lg_gemm(d, true, false, GH, H, N, 1.0, dah, GH, hprev, H, 0.0,
            lg_data_ptr(grads[4]), H);
  }
  for (int k = 5; k <= 6; k++) {
    if (!node->needs_grad[k])
      continue;
    if (!(grads[k] = lg_zeros(d, 1, &GH)))
      goto out;
    colsum_add(d, N, GH, k == 5 ? dax : dah, lg_data_ptr(grads[k]));
  }
  rc = 0;
out:
  work_free(dax, bytes_ga);
  if (gru)
    work_free(dah, bytes_ga);
  work_free(hprev, bytes_h);
  work_free(xp, bytes_x);
  work_free(dxp, bytes_x);
  work_free(dh, bytes_bh);
  work_free(dc, bytes_bh);
  work_free(dhtot, bytes_bh);
  work_free(cprev, bytes_bh);
  lg_release(g);
  lg_release(xc);
  lg_release(wihc);
  lg_release(whhc);
  lg_release(h0c);
  lg_release(c0c);
  return rc;
}

ONCE_DIFFERENTIABLE(rnn_backward)

/* ==== forward ==== */

lg_tensor *lg_rnn_layer(lg_rnn_mode mode, lg_tensor *x, lg_tensor *h0,
                        lg_tensor *c0, lg_tensor *w_ih, lg_tensor *w_hh,
                        lg_tensor *b_ih, lg_tensor *b_hh,
                        const int64_t *lengths, bool reverse) {
  if (mode < LG_RNN_TANH || mode > LG_RNN_GRU) {
    lg_seterr("rnn: unknown mode %d", (int)mode);
    return NULL;
  }
  bool lstm = mode == LG_RNN_LSTM, gru = mode == LG_RNN_GRU;
  if (!lstm)
    c0 = NULL;
  if (check_args(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths))
    return NULL;
  lg_dtype d = x->dtype;
  size_t es = lg_dtype_size(d);
  rnn_state *s = calloc(1, sizeof *s);
  if (!s) {
    lg_seterr("%s: out of memory", mode_name(mode));
    return NULL;
  }
  s->mode = mode;
  s->reverse = reverse;
  s->dtype = d;
  s->T = x->shape[0];
  s->B = x->shape[1];
  s->I = x->shape[2];
  s->H = w_hh->shape[1];
  s->G = lg_rnn_gates(mode);
  int64_t T = s->T, B = s->B, I = s->I, H = s->H, GH = s->G * H;
  lg_tensor *xc = NULL, *wihc = NULL, *whhc = NULL, *bihc = NULL;
  lg_tensor *bhhc = NULL, *h0c = NULL, *c0c = NULL, *out = NULL;
  char *xpk = NULL, *xp = NULL, *hh = NULL, *hprev = NULL, *cprev = NULL;
  size_t bytes_x = 0, bytes_xp = 0, bytes_bgh = (size_t)(B * GH) * es;
  size_t bytes_bh = (size_t)(B * H) * es;
  if (state_schedule(s, lengths))
    goto fail;
  int64_t N = s->N;
  bytes_x = (size_t)(N * I) * es;
  bytes_xp = (size_t)(N * GH) * es;
  s->state_bytes = (size_t)(N * H) * es;
  s->gates_bytes = (lstm || gru) ? bytes_xp : 0;
  if (!(xc = dense(x, d)) || !(wihc = dense(w_ih, d)) ||
      !(whhc = dense(w_hh, d)) || (b_ih && !(bihc = dense(b_ih, d))) ||
      (b_hh && !(bhhc = dense(b_hh, d))) || !(h0c = dense(h0, d)) ||
      (lstm && !(c0c = dense(c0, d))))
    goto fail;
  if (!(xp = work_alloc(bytes_xp)) || !(hh = work_alloc(bytes_bgh)) ||
      !(hprev = work_alloc(bytes_bh)) || !(s->hs = work_alloc(s->state_bytes)))
    goto fail;
  if (lstm && (!(cprev = work_alloc(bytes_bh)) ||
               !(s->cs = work_alloc(s->state_bytes))))
    goto fail;
  if (gru && !(s->hnl = work_alloc(s->state_bytes)))
    goto fail;
  if ((lstm || gru) && !(s->gates = work_alloc(s->gates_bytes)))
    goto fail;
  /* XP (N, G H) = X W_ih^T + b_ih, X the packed input rows */
  const char *xrows = lg_data_ptr(xc);
  if (N != T * B) {
    if (!(xpk = work_alloc(bytes_x = (size_t)(N * I) * es)))
      goto fail;
    pack_rows(s, es, I, xrows, xpk);
    xrows = xpk;
  }
  if (bihc) {
    for (int64_t n = 0; n < N; n++)
      memcpy(xp + n * GH * es, lg_data_ptr(bihc), (size_t)GH * es);
  }
  lg_gemm(d, false, true, N, GH, I, 1.0, xrows, I, lg_data_ptr(wihc), I,
          bihc ? 1.0 : 0.0, xp, GH);
  work_free(xpk, bytes_x);
  xpk = NULL;
  const char *whh = lg_data_ptr(whhc), *h0p = lg_data_ptr(h0c);
  const void *bh = bhhc ? lg_data_ptr(bhhc) : NULL;
  for (int64_t k = 0; k < T; k++) {
    int64_t t = reverse ? T - 1 - k : k, bt = s->bt[t], o = s->off[t];
    if (bt == 0)
      continue;
    prev_rows(s, es, t, s->hs, h0p, hprev);
    if (lstm)
      prev_rows(s, es, t, s->cs, lg_data_ptr(c0c), cprev);
    /* HH (bt, G H) = Hprev W_hh^T */
    lg_gemm(d, false, true, bt, GH, H, 1.0, hprev, H, whh, H, 0.0, hh, GH);
    step_fw[d == LG_FLOAT64](
        mode, bt, H, xp + o * GH * es, hh, bh, hprev, cprev,
        s->gates ? (char *)s->gates + o * GH * es : NULL,
        lstm ? (char *)s->cs + o * H * es : NULL,
        gru ? (char *)s->hnl + o * H * es : NULL, (char *)s->hs + o * H * es);
  }
  work_free(xp, bytes_xp);
  work_free(hh, bytes_bgh);
  work_free(hprev, bytes_bh);
  work_free(cprev, bytes_bh);
  xp = hh = hprev = cprev = NULL;
  /* out: the outputs, then h_n (and c_n) */
  int64_t oshape[3] = {T + (lstm ? 2 : 1), B, H};
  if (!(out = lg_zeros(d, 3, oshape)))
    goto fail;
  char *op = lg_data_ptr(out);
  for (int64_t t = 0; t < T; t++)
    memcpy(op + t * B * H * es, (char *)s->hs + s->off[t] * H * es,
           (size_t)(s->bt[t] * H) * es);
  for (int64_t b = 0; b < B; b++) {
    /* the last processed step of sequence b */
    int64_t len = lengths ? lengths[b] : T, t = reverse ? 0 : len - 1;
    int64_t row = s->off[t] + b;
    memcpy(op + (T * B + b) * H * es, (char *)s->hs + row * H * es,
           (size_t)H * es);
    if (lstm)
      memcpy(op + ((T + 1) * B + b) * H * es, (char *)s->cs + row * H * es,
             (size_t)H * es);
  }
  lg_release(xc);
  lg_release(wihc);
  lg_release(whhc);
  lg_release(bihc);
  lg_release(bhhc);
  lg_release(h0c);
  lg_release(c0c);
  xc = wihc = whhc = bihc = bhhc = h0c = c0c = NULL;
  lg_tensor *in[7] = {x, h0, c0, w_ih, w_hh, b_ih, b_hh};
  lg_node *node = NULL;
  if (lg_grad_enabled() && lg_any_requires_grad(7, in))
    node = lg_record(out, mode_name(mode), rnn_backward_once, 7, in);
  if (!node) {
    state_free(s);
    return out;
  }
  node->ctx = s;
  node->ctx_free = state_free;
  if (lg_node_save(node, x) || lg_node_save(node, w_ih) ||
      lg_node_save(node, w_hh) || lg_node_save(node, h0) ||
      (c0 && lg_node_save(node, c0))) {
    lg_release(out);
    return NULL;
  }
  return out;
fail:
  work_free(xpk, bytes_x);
  work_free(xp, bytes_xp);
  work_free(hh, bytes_bgh);
  work_free(hprev, bytes_bh);
  work_free(cprev, bytes_bh);
  lg_release(xc);
  lg_release(wihc);
  lg_release(whhc);
  lg_release(bihc);
  lg_release(bhhc);
  lg_release(h0c);
  lg_release(c0c);
  lg_release(out);
  state_free(s);
  return NULL;
}
