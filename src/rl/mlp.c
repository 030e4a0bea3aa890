/* The multilayer perceptron behind the actor and the critic: one allocation
 * of parameters, batch-major forward and hand-written backward, orthogonal
 * initialisation, plus the categorical distribution helpers.
 *
 * The hot path of PPO on small problems is many minibatches of a few hundred
 * samples through 64-wide layers, so the kernels are plain loops the compiler
 * vectorises: weights are stored input-major (W[i*out + o]) so both the
 * forward pass and the weight gradient are axpy's over contiguous outputs,
 * and the input gradient is a dot product over contiguous outputs.  At these
 * sizes a BLAS call costs more in overhead than it saves. */
#include "rl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ISO C (-std=c11) turns off contraction of a*b+c into fused multiply-adds;
 * the blocked kernels below rely on it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

/* ISO C mode turns off fused multiply-add contraction; ask for it where the
 * CPU has it (the result is still deterministic for a given build). */
#if defined(__FMA__) || defined(__AVX512F__)
#define MADD(a, b, c) fmaf((a), (b), (c))
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

DpStatus rl_mlp_init(RlMlp *m, int n_layers, const int *sizes, RlActivation act, DpError *err) {
    memset(m, 0, sizeof *m);
    if (n_layers < 1 || n_layers > RL_MLP_MAX_LAYERS)
        return dp_fail(err, DP_ERR_INVAL, "mlp: %d layers (1..%d)", n_layers, RL_MLP_MAX_LAYERS);
    size_t n = 0;
    for (int l = 0; l <= n_layers; l++) {
        if (sizes[l] < 1 || sizes[l] > RL_MLP_MAX_WIDTH)
            return dp_fail(err, DP_ERR_INVAL, "mlp: layer width %d out of [1, %d]", sizes[l],
                           RL_MLP_MAX_WIDTH);
        m->sizes[l] = sizes[l];
    }
    for (int l = 0; l < n_layers; l++) {
        m->w_off[l] = n;
        n += (size_t)sizes[l] * (size_t)sizes[l + 1];
        m->b_off[l] = n;
        n += (size_t)sizes[l + 1];
    }
    m->n_layers = n_layers;
    m->act = act;
    m->n_params = n;
    m->params = dp_aligned_alloc(n * sizeof(float));
    if (!m->params) return dp_fail(err, DP_ERR_NOMEM, "mlp: out of memory");
    memset(m->params, 0, n * sizeof(float));
    return DP_OK;
}

void rl_mlp_free(RlMlp *m) {
    if (!m) return;
    dp_aligned_free(m->params);
    memset(m, 0, sizeof *m);
}

/* Fills an (n, k) column-major matrix (n >= k) with orthonormal columns:
 * Gaussian entries, then modified Gram-Schmidt, which is QR with a positive
 * diagonal R, the sign convention torch.nn.init.orthogonal_ uses. */
static void orthonormal_columns(double *q, int n, int k, DpRng *rng) {
    for (int i = 0; i < n * k; i++) q[i] = dp_rng_normal(rng);
    for (int j = 0; j < k; j++) {
        double *cj = q + (size_t)j * n;
        for (int p = 0; p < j; p++) {
            const double *cp = q + (size_t)p * n;
            double d = 0;
            for (int r = 0; r < n; r++) d += cp[r] * cj[r];
            for (int r = 0; r < n; r++) cj[r] -= d * cp[r];
        }
        double nrm = 0;
        for (int r = 0; r < n; r++) nrm += cj[r] * cj[r];
        nrm = sqrt(nrm);
        if (nrm < 1e-12) { /* astronomically unlikely: redraw this column */
            for (int r = 0; r < n; r++) cj[r] = dp_rng_normal(rng);
            j--;
            continue;
        }
        for (int r = 0; r < n; r++) cj[r] /= nrm;
    }
}

void rl_mlp_init_orthogonal(RlMlp *m, float hidden_gain, float out_gain, DpRng *rng) {
    for (int l = 0; l < m->n_layers; l++) {
        int in = m->sizes[l], out = m->sizes[l + 1];
        float gain = l == m->n_layers - 1 ? out_gain : hidden_gain;
        int n = in > out ? in : out, k = in > out ? out : in;
        double *q = dp_malloc((size_t)n * (size_t)k * sizeof(double));
        DP_ASSERT(q);
        orthonormal_columns(q, n, k, rng);
        float *W = m->params + m->w_off[l];
        /* torch's weight is (out, in); ours is its transpose, W[i*out + o]. */
        for (int i = 0; i < in; i++)
            for (int o = 0; o < out; o++) {
                double v = out >= in ? q[(size_t)i * out + o] : q[(size_t)o * in + i];
                W[(size_t)i * out + o] = (float)(gain * v);
            }
        memset(m->params + m->b_off[l], 0, (size_t)out * sizeof(float));
        free(q);
    }
}

static int max_width(const RlMlp *m) {
    int w = 0;
    for (int l = 0; l <= m->n_layers; l++)
        if (m->sizes[l] > w) w = m->sizes[l];
    return w;
}

DpStatus rl_mlp_cache_init(RlMlpCache *c, const RlMlp *m, int cap, DpError *err) {
    memset(c, 0, sizeof *c);
    if (cap < 1) return dp_fail(err, DP_ERR_INVAL, "mlp cache: capacity %d", cap);
    /* Round each buffer up to 16 floats so every one starts 64-byte aligned. */
    size_t total = 0, off[RL_MLP_MAX_LAYERS + 3];
    for (int l = 1; l <= m->n_layers; l++) {
        off[l] = total;
        total += ((size_t)cap * (size_t)m->sizes[l] + 15) & ~(size_t)15;
    }
    size_t dsz = ((size_t)cap * (size_t)max_width(m) + 15) & ~(size_t)15;
    size_t wmax = 0;
    for (int l = 0; l < m->n_layers; l++) {
        size_t w = (size_t)m->sizes[l] * (size_t)m->sizes[l + 1];
        if (w > wmax) wmax = w;
    }
    wmax = (wmax + 15) & ~(size_t)15;
    size_t d0 = total, d1 = total + dsz, wt = total + 2 * dsz, gt = wt + wmax;
    total += 2 * dsz + 2 * wmax;
    c->mem = dp_aligned_alloc(total * sizeof(float));
    if (!c->mem) return dp_fail(err, DP_ERR_NOMEM, "mlp cache: out of memory");
    memset(c->mem, 0, total * sizeof(float));
    for (int l = 1; l <= m->n_layers; l++) c->act[l] = c->mem + off[l];
    c->d0 = c->mem + d0;
    c->d1 = c->mem + d1;
    c->wt = c->mem + wt;
    c->gt = c->mem + gt;
    c->cap = cap;
    return DP_OK;
}

void rl_mlp_cache_free(RlMlpCache *c) {
    if (!c) return;
    dp_aligned_free(c->mem);
    memset(c, 0, sizeof *c);
}

// ---- kernels ----

/* Register-blocked products for widths that are multiples of 16: a 4-row by
 * 64-column tile of the output stays in 16 vector registers while the inner
 * dimension streams past, so each loaded weight vector feeds four FMAs.
 * GNU vector extensions keep this portable across SSE/AVX2/AVX-512 (the
 * compiler splits 16-float vectors where registers are narrower). */
#if defined(__GNUC__) && !defined(RL_NO_VECTOR_EXT)
#define RL_BLOCKED 1
typedef float RlV16 __attribute__((vector_size(64)));

/* Macros, not functions: passing vectors by value changes the ABI on
 * targets without AVX-512 (and -Wpsabi says so). */
#define V16_LOAD(v, p) memcpy(&(v), (p), sizeof(RlV16))
#define V16_STORE(p, v) memcpy((p), &(v), sizeof(RlV16))

/* C (M, N) = [bias +] A (M, K) . W (K, N), for rows [0, M4) with M4 % 4 == 0
 * and columns [0, N64) with N64 % 64 == 0. */
static void gemm_nn_tiles(const float *restrict A, const float *restrict W,
                          const float *restrict bias, float *restrict C, int M4, int K, int N,
                          int N64) {
    for (int n0 = 0; n0 < N64; n0 += 64) {
        for (int m0 = 0; m0 < M4; m0 += 4) {
            RlV16 c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
            if (bias) {
                V16_LOAD(c30, bias + n0);
                V16_LOAD(c31, bias + n0 + 16);
                V16_LOAD(c32, bias + n0 + 32);
                V16_LOAD(c33, bias + n0 + 48);
                c00 = c10 = c20 = c30;
                c01 = c11 = c21 = c31;
                c02 = c12 = c22 = c32;
                c03 = c13 = c23 = c33;
            } else {
                RlV16 z = {0};
                c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = z;
                c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = z;
            }
            const float *a0 = A + (size_t)m0 * K, *a1 = a0 + K, *a2 = a1 + K, *a3 = a2 + K;
            for (int k = 0; k < K; k++) {
                const float *w = W + (size_t)k * N + n0;
                RlV16 w0, w1, w2, w3;
                V16_LOAD(w0, w);
                V16_LOAD(w1, w + 16);
                V16_LOAD(w2, w + 32);
                V16_LOAD(w3, w + 48);
                float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
                c00 += x0 * w0; c01 += x0 * w1; c02 += x0 * w2; c03 += x0 * w3;
                c10 += x1 * w0; c11 += x1 * w1; c12 += x1 * w2; c13 += x1 * w3;
                c20 += x2 * w0; c21 += x2 * w1; c22 += x2 * w2; c23 += x2 * w3;
                c30 += x3 * w0; c31 += x3 * w1; c32 += x3 * w2; c33 += x3 * w3;
            }
            float *c = C + (size_t)m0 * N + n0;
            V16_STORE(c, c00); V16_STORE(c + 16, c01); V16_STORE(c + 32, c02); V16_STORE(c + 48, c03);
            c += N;
            V16_STORE(c, c10); V16_STORE(c + 16, c11); V16_STORE(c + 32, c12); V16_STORE(c + 48, c13);
            c += N;
            V16_STORE(c, c20); V16_STORE(c + 16, c21); V16_STORE(c + 32, c22); V16_STORE(c + 48, c23);
            c += N;
            V16_STORE(c, c30); V16_STORE(c + 16, c31); V16_STORE(c + 32, c32); V16_STORE(c + 48, c33);
        }
    }
}

/* C (M, N) += X^T . D with X (K, M), D (K, N), for rows [0, M4) of C with
 * M4 % 4 == 0 and columns [0, N64). */
static void gemm_tn_tiles(const float *restrict X, const float *restrict D, float *restrict C,
                          int K, int M, int M4, int N, int N64) {
    for (int n0 = 0; n0 < N64; n0 += 64) {
        for (int m0 = 0; m0 < M4; m0 += 4) {
            RlV16 z = {0};
            RlV16 c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
            RlV16 c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
            for (int k = 0; k < K; k++) {
                const float *d = D + (size_t)k * N + n0;
                RlV16 d0, d1, d2, d3;
                V16_LOAD(d0, d);
                V16_LOAD(d1, d + 16);
                V16_LOAD(d2, d + 32);
                V16_LOAD(d3, d + 48);
                const float *x = X + (size_t)k * M + m0;
                float x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
                c00 += x0 * d0; c01 += x0 * d1; c02 += x0 * d2; c03 += x0 * d3;
                c10 += x1 * d0; c11 += x1 * d1; c12 += x1 * d2; c13 += x1 * d3;
                c20 += x2 * d0; c21 += x2 * d1; c22 += x2 * d2; c23 += x2 * d3;
                c30 += x3 * d0; c31 += x3 * d1; c32 += x3 * d2; c33 += x3 * d3;
            }
            float *c = C + (size_t)m0 * N + n0;
            RlV16 *acc[4][4] = {{&c00, &c01, &c02, &c03},
                                {&c10, &c11, &c12, &c13},
                                {&c20, &c21, &c22, &c23},
                                {&c30, &c31, &c32, &c33}};
            for (int r = 0; r < 4; r++)
                for (int j = 0; j < 4; j++) {
                    float *cp = c + (size_t)r * N + 16 * j;
                    RlV16 t;
                    V16_LOAD(t, cp);
                    t += *acc[r][j];
                    V16_STORE(cp, t);
                }
        }
    }
}
#endif

/* y (B, O) = x (B, I) . W (I, O) + bias */
static void linear_forward(const float *restrict x, const float *restrict W,
                           const float *restrict bias, float *restrict y, int B, int I, int O) {
    int b0 = 0;
#ifdef RL_BLOCKED
    if (O % 64 == 0 && B >= 4) {
        b0 = B & ~3;
        gemm_nn_tiles(x, W, bias, y, b0, I, O, O);
    }
#endif
    for (int b = b0; b < B; b++) {
        const float *xb = x + (size_t)b * I;
        float *restrict yb = y + (size_t)b * O;
        for (int o = 0; o < O; o++) yb[o] = bias[o];
        int i = 0;
        /* four inputs at a time: one load/store of y per four FMAs */
        for (; i + 4 <= I; i += 4) {
            const float x0 = xb[i], x1 = xb[i + 1], x2 = xb[i + 2], x3 = xb[i + 3];
            const float *w0 = W + (size_t)i * O, *w1 = w0 + O, *w2 = w1 + O, *w3 = w2 + O;
            for (int o = 0; o < O; o++) yb[o] = MADD(x3, w3[o], MADD(x2, w2[o], MADD(x1, w1[o], MADD(x0, w0[o], yb[o]))));
        }
        for (; i < I; i++) {
            const float xi = xb[i];
            const float *wi = W + (size_t)i * O;
            for (int o = 0; o < O; o++) yb[o] = MADD(xi, wi[o], yb[o]);
        }
    }
}

/* dW (I, O) += x^T . dy;  db (O) += sum_b dy */
static void linear_backward_params(const float *restrict x, const float *restrict dy,
                                   float *restrict dW, float *restrict db, int B, int I, int O) {
#ifdef RL_BLOCKED
    if (O % 64 == 0) {
        int I4 = I & ~3;
        gemm_tn_tiles(x, dy, dW, B, I, I4, O, O);
        for (int b = 0; b < B; b++) {
            const float *d = dy + (size_t)b * O, *xb = x + (size_t)b * I;
            for (int o = 0; o < O; o++) db[o] += d[o];
            for (int i = I4; i < I; i++) {
                float *restrict wi = dW + (size_t)i * O;
                for (int o = 0; o < O; o++) wi[o] = MADD(xb[i], d[o], wi[o]);
            }
        }
        return;
    }
#endif
    int b = 0;
    for (; b + 4 <= B; b += 4) {
        const float *d0 = dy + (size_t)b * O, *d1 = d0 + O, *d2 = d1 + O, *d3 = d2 + O;
        const float *x0 = x + (size_t)b * I, *x1 = x0 + I, *x2 = x1 + I, *x3 = x2 + I;
        for (int o = 0; o < O; o++) db[o] += d0[o] + d1[o] + d2[o] + d3[o];
        for (int i = 0; i < I; i++) {
            const float a0 = x0[i], a1 = x1[i], a2 = x2[i], a3 = x3[i];
            float *restrict wi = dW + (size_t)i * O;
            for (int o = 0; o < O; o++) wi[o] = MADD(a3, d3[o], MADD(a2, d2[o], MADD(a1, d1[o], MADD(a0, d0[o], wi[o]))));
        }
    }
    for (; b < B; b++) {
        const float *db_ = dy + (size_t)b * O, *xb = x + (size_t)b * I;
        for (int o = 0; o < O; o++) db[o] += db_[o];
        for (int i = 0; i < I; i++) {
            const float a = xb[i];
            float *restrict wi = dW + (size_t)i * O;
            for (int o = 0; o < O; o++) wi[o] = MADD(a, db_[o], wi[o]);
        }
    }
}

/* The same products for narrow outputs (the action and value heads): with
 * only a few outputs the loops above would run over 1 or 2 lanes, so these
 * work on the transposed weights Wt (O, I) and run over the inputs. */
#define RL_NARROW 16

/* y (B, O) = x (B, I) . Wt^T + bias, with Wt (O, I) */
static void linear_forward_narrow(const float *restrict x, const float *restrict Wt,
                                  const float *restrict bias, float *restrict y, int B, int I,
                                  int O) {
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * I;
        for (int o = 0; o < O; o++) {
            const float *w = Wt + (size_t)o * I;
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < I; i++) s = MADD(xb[i], w[i], s);
            y[(size_t)b * O + o] = bias[o] + s;
        }
    }
}

/* dWt (O, I) += dy^T . x;  db (O) += sum_b dy */
static void linear_backward_params_narrow(const float *restrict x, const float *restrict dy,
                                          float *restrict dWt, float *restrict db, int B, int I,
                                          int O) {
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * I;
        for (int o = 0; o < O; o++) {
            const float d = dy[(size_t)b * O + o];
            float *restrict g = dWt + (size_t)o * I;
            db[o] += d;
            for (int i = 0; i < I; i++) g[i] = MADD(d, xb[i], g[i]);
        }
    }
}

/* dx (B, I) = dy (B, O) . Wt, with Wt (O, I): an axpy per output */
static void linear_backward_input(const float *restrict dy, const float *restrict Wt,
                                  float *restrict dx, int B, int I, int O) {
    int b0 = 0;
#ifdef RL_BLOCKED
    if (I % 64 == 0 && B >= 4) {
        b0 = B & ~3;
        gemm_nn_tiles(dy, Wt, NULL, dx, b0, O, I, I);
    }
#endif
    for (int b = b0; b < B; b++) {
        const float *d = dy + (size_t)b * O;
        float *restrict xb = dx + (size_t)b * I;
        for (int i = 0; i < I; i++) xb[i] = 0;
        int o = 0;
        for (; o + 4 <= O; o += 4) {
            const float d0 = d[o], d1 = d[o + 1], d2 = d[o + 2], d3 = d[o + 3];
            const float *w0 = Wt + (size_t)o * I, *w1 = w0 + I, *w2 = w1 + I, *w3 = w2 + I;
            for (int i = 0; i < I; i++)
                xb[i] = MADD(d3, w3[i], MADD(d2, w2[i], MADD(d1, w1[i], MADD(d0, w0[i], xb[i]))));
        }
        for (; o < O; o++) {
            const float d0 = d[o];
            const float *w0 = Wt + (size_t)o * I;
            for (int i = 0; i < I; i++) xb[i] = MADD(d0, w0[i], xb[i]);
        }
    }
}

static void transpose(const float *restrict W, float *restrict Wt, int I, int O) {
    for (int i = 0; i < I; i++)
        for (int o = 0; o < O; o++) Wt[(size_t)o * I + i] = W[(size_t)i * O + o];
}

/* tanh that vectorises: tanh|x| = -m / (2 + m) with m = expm1(-2|x|),
 * which has no cancellation near 0.  expm1 by range reduction y = n ln2 + r,
 * |r| <= ln2/2, a degree-7 polynomial for expm1(r), and
 * expm1(y) = 2^n expm1(r) + (2^n - 1).  Relative error ~2e-7. */
static inline float fast_tanh(float x) {
    float ax = fabsf(x);
    float y = -2.0f * (ax < 20.0f ? ax : 20.0f); /* tanh(20) is 1 in float */
    /* round to nearest by the 1.5*2^23 trick (vectorises, unlike nearbyintf) */
    float n = (y * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = y - n * 0.693359375f + n * 2.12194440e-4f; /* ln2 in two parts */
    float q = 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    q = r + r * r * q;
    union {
        int32_t i;
        float f;
    } scale;
    scale.i = ((int32_t)n + 127) << 23;
    float m = scale.f * q + (scale.f - 1.0f);
    float t = -m / (m + 2.0f);
    return x < 0 ? -t : t;
}

static void activate(RlActivation act, float *restrict y, size_t n) {
    if (act == RL_ACT_TANH)
        for (size_t k = 0; k < n; k++) y[k] = fast_tanh(y[k]);
    else
        for (size_t k = 0; k < n; k++) y[k] = y[k] > 0 ? y[k] : 0;
}

/* d *= activation'(pre), given the activation's output a. */
static void activate_backward(RlActivation act, const float *restrict a, float *restrict d,
                              size_t n) {
    if (act == RL_ACT_TANH)
        for (size_t k = 0; k < n; k++) d[k] *= 1.0f - a[k] * a[k];
    else
        for (size_t k = 0; k < n; k++) d[k] = a[k] > 0 ? d[k] : 0;
}

float rl_tanh(float x) { return fast_tanh(x); }

const float *rl_mlp_forward(const RlMlp *m, RlMlpCache *c, const float *x, int B) {
    DP_ASSERT(B <= c->cap);
    const float *in = x;
    for (int l = 0; l < m->n_layers; l++) {
        int I = m->sizes[l], O = m->sizes[l + 1];
        float *y = c->act[l + 1];
        const float *W = m->params + m->w_off[l], *bias = m->params + m->b_off[l];
        if (O < RL_NARROW) {
            transpose(W, c->wt, I, O);
            linear_forward_narrow(in, c->wt, bias, y, B, I, O);
        } else {
            linear_forward(in, W, bias, y, B, I, O);
        }
        if (l < m->n_layers - 1) activate(m->act, y, (size_t)B * O);
        in = y;
    }
    return c->act[m->n_layers];
}

void rl_mlp_backward(const RlMlp *m, RlMlpCache *c, const float *x, const float *dout, int B,
                     float *grad, float *dx) {
    const float *dcur = dout;
    int flip = 0;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        int I = m->sizes[l], O = m->sizes[l + 1];
        const float *in = l == 0 ? x : c->act[l];
        float *gW = grad + m->w_off[l], *gb = grad + m->b_off[l];
        if (O < RL_NARROW) {
            memset(c->gt, 0, (size_t)I * O * sizeof(float));
            linear_backward_params_narrow(in, dcur, c->gt, gb, B, I, O);
            for (int i = 0; i < I; i++)
                for (int o = 0; o < O; o++) gW[(size_t)i * O + o] += c->gt[(size_t)o * I + i];
        } else {
            linear_backward_params(in, dcur, gW, gb, B, I, O);
        }
        if (l == 0 && !dx) break;
        transpose(m->params + m->w_off[l], c->wt, I, O);
        float *dprev = l == 0 ? dx : flip ? c->d1 : c->d0;
        flip ^= 1;
        linear_backward_input(dcur, c->wt, dprev, B, I, O);
        if (l == 0) break;
        activate_backward(m->act, c->act[l], dprev, (size_t)B * I);
        dcur = dprev;
    }
}

void rl_mlp_forward1(const RlMlp *m, const float *x, float *out) {
    float buf[2][RL_MLP_MAX_WIDTH];
    const float *in = x;
    for (int l = 0; l < m->n_layers; l++) {
        int I = m->sizes[l], O = m->sizes[l + 1];
        float *y = l == m->n_layers - 1 ? out : buf[l & 1];
        linear_forward(in, m->params + m->w_off[l], m->params + m->b_off[l], y, 1, I, O);
        if (l < m->n_layers - 1) activate(m->act, y, (size_t)O);
        in = y;
    }
}

// ---- categorical ----

float rl_categorical_logp(const float *logits, int n, float *logp) {
    float mx = logits[0];
    for (int j = 1; j < n; j++)
        if (logits[j] > mx) mx = logits[j];
    float s = 0;
    for (int j = 0; j < n; j++) s += expf(logits[j] - mx);
    float lse = mx + logf(s);
    float h = 0;
    for (int j = 0; j < n; j++) {
        logp[j] = logits[j] - lse;
        h -= expf(logp[j]) * logp[j];
    }
    return h;
}

int rl_categorical_sample(const float *logits, int n, double u) {
    float lp[RL_MLP_MAX_WIDTH];
    rl_categorical_logp(logits, n, lp);
    double c = 0;
    for (int j = 0; j < n; j++) {
        c += exp((double)lp[j]);
        if (u < c) return j;
    }
    return n - 1; /* rounding left u above the last partial sum */
}

int rl_argmax(const float *x, int n) {
    int best = 0;
    for (int j = 1; j < n; j++)
        if (x[j] > x[best]) best = j;
    return best;
}
