/* gpt2: the model itself — parameter layout and naming, initialisation,
 * activation memory, forward with masked cross-entropy, backward, AdamW and
 * gradient clipping.
 *
 * Invariants: parameters, gradients, AdamW m and v are each one block of
 * n_params floats laid out identically (so one offset addresses the same
 * element in all four).  Activations live in one block sized by
 * gpt2_reserve() for (max_B, max_T); a forward over a smaller (B, T) lays
 * its tensors out densely from the start of that block.  Forward, backward
 * and the optimizer step never allocate.
 *
 * Big products go through cblas_sgemm (row-major); the rest are OpenMP
 * loops, kept single-threaded below GPT2_PAR_MIN_WORK so that tiny models
 * and decode steps do not pay fork/join costs. */
#include "gpt2_impl.h"

#include <cblas.h>
#include <math.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#ifdef __clang__
/* `omp simd` is a request; clang warns when it cannot honour one at -O1. */
#pragma clang diagnostic ignored "-Wpass-failed"
#endif
#include <omp.h>
#include <stdlib.h>
#include <string.h>

// ---- parameter naming ----

/* Per tensor kind: HF name suffix, whether it is per layer, decay rule. */
static const struct {
    const char *hf;     /* name after "h.<l>." for per-layer tensors */
    int per_layer;
    int no_decay;
} kinds[GPT2_N_PARAM_TENSORS] = {
    {"wte.weight", 0, 0},          {"wpe.weight", 0, 0},
    {"ln_1.weight", 1, 1},         {"ln_1.bias", 1, 1},
    {"attn.c_attn.weight", 1, 0},  {"attn.c_attn.bias", 1, 1},
    {"attn.c_proj.weight", 1, 0},  {"attn.c_proj.bias", 1, 1},
    {"ln_2.weight", 1, 1},         {"ln_2.bias", 1, 1},
    {"mlp.c_fc.weight", 1, 0},     {"mlp.c_fc.bias", 1, 1},
    {"mlp.c_proj.weight", 1, 0},   {"mlp.c_proj.bias", 1, 1},
    {"ln_f.weight", 0, 1},         {"ln_f.bias", 0, 1},
};

/* Shape of one layer's slice (or the whole tensor) of kind k. */
static int kind_shape(const Gpt2Config *c, int k, int64_t shape[2]) {
    int64_t C = c->n_embd, NI = c->n_inner, V = c->vocab_size, P = c->n_positions;
    switch (k) {
    case 0: shape[0] = V; shape[1] = C; return 2;
    case 1: shape[0] = P; shape[1] = C; return 2;
    case 4: shape[0] = C; shape[1] = 3 * C; return 2;
    case 5: shape[0] = 3 * C; return 1;
    case 6: shape[0] = C; shape[1] = C; return 2;
    case 10: shape[0] = C; shape[1] = NI; return 2;
    case 11: shape[0] = NI; return 1;
    case 12: shape[0] = NI; shape[1] = C; return 2;
    default: shape[0] = C; return 1;
    }
}

static void fill_param_sizes(const Gpt2Config *c, size_t sizes[GPT2_N_PARAM_TENSORS]) {
    for (int k = 0; k < GPT2_N_PARAM_TENSORS; k++) {
        int64_t sh[2] = {1, 1};
        int nd = kind_shape(c, k, sh);
        size_t n = (size_t)sh[0] * (nd == 2 ? (size_t)sh[1] : 1);
        sizes[k] = kinds[k].per_layer ? n * (size_t)c->n_layer : n;
    }
}

static void point_params(Gpt2Params *p, float *base, const size_t sizes[GPT2_N_PARAM_TENSORS]) {
    float **ptrs[GPT2_N_PARAM_TENSORS] = {
        &p->wte, &p->wpe, &p->ln1w, &p->ln1b, &p->qkvw, &p->qkvb, &p->attprojw, &p->attprojb,
        &p->ln2w, &p->ln2b, &p->fcw, &p->fcb, &p->fcprojw, &p->fcprojb, &p->lnfw, &p->lnfb};
    for (int k = 0; k < GPT2_N_PARAM_TENSORS; k++) {
        *ptrs[k] = base;
        base += sizes[k];
    }
}

int gpt2_n_named_tensors(const Gpt2Config *cfg) { return 2 + 12 * cfg->n_layer + 2; }

int gpt2_tensor_info(const Gpt2Config *cfg, int i, Gpt2TensorInfo *info) {
    int L = cfg->n_layer;
    if (i < 0 || i >= gpt2_n_named_tensors(cfg)) return 0;
    size_t sizes[GPT2_N_PARAM_TENSORS];
    fill_param_sizes(cfg, sizes);
    int k, layer = -1;
    if (i < 2) {
        k = i;
    } else if (i < 2 + 12 * L) {
        layer = (i - 2) / 12;
        k = 2 + (i - 2) % 12;
    } else {
        k = 14 + (i - 2 - 12 * L);
    }
    size_t off = 0;
    for (int j = 0; j < k; j++) off += sizes[j];
    memset(info, 0, sizeof *info);
    info->ndim = kind_shape(cfg, k, info->shape);
    info->numel = (size_t)info->shape[0] * (info->ndim == 2 ? (size_t)info->shape[1] : 1);
    if (layer >= 0) {
        off += (size_t)layer * info->numel;
        snprintf(info->name, sizeof info->name, "h.%d.%s", layer, kinds[k].hf);
    } else {
        snprintf(info->name, sizeof info->name, "%s", kinds[k].hf);
    }
    info->offset = off;
    info->no_decay = kinds[k].no_decay;
    return 1;
}

// ---- activations ----

typedef struct {
    float *encoded;                 /* (N,C) */
    float *ln1, *ln1_mean, *ln1_rstd; /* (L,N,C) (L,N) (L,N) */
    float *qkv;                     /* (L,N,3C) */
    float *atty;                    /* (L,N,C) */
    float *att;                     /* (L,B,NH,T,T) softmax probabilities */
    float *res2;                    /* (L,N,C) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch;                     /* (L,N,NI) before GELU */
    float *fch_gelu;                /* (L,N,NI) */
    float *res3;                    /* (L,N,C) */
    float *lnf, *lnf_mean, *lnf_rstd;
    float *logits;                  /* (N,V) */
    float *losses;                  /* (N) */
} Acts;

typedef struct {
    float *dres, *dln, *datty;      /* (N,C) */
    float *dqkv;                    /* (N,3C) */
    float *dfc;                     /* (N,NI) */
    float *datt_row;                /* (B*NH, T) */
} Scratch;

struct Gpt2Work {
    float *acts_memory;
    size_t acts_floats;
    float *scratch_memory;
    size_t scratch_floats;
    int *inputs, *targets;          /* copies of the last forward's ids (max_B*max_T) */
    float *mask;                    /* normalised loss weights of the last forward */
    int have_targets;
    Acts a;
};

/* Lays out activations for (B,T) from base (or only counts with base NULL). */
static size_t acts_layout(const Gpt2Config *c, int B, int T, float *base, Acts *a) {
    size_t N = (size_t)B * T, C = c->n_embd, L = c->n_layer, NI = c->n_inner, V = c->vocab_size;
    size_t NH = c->n_head;
    struct {
        float **p;
        size_t n;
    } t[] = {
        {&a->encoded, N * C},  {&a->ln1, L * N * C}, {&a->ln1_mean, L * N},
        {&a->ln1_rstd, L * N}, {&a->qkv, L * N * 3 * C}, {&a->atty, L * N * C},
        {&a->att, L * B * NH * T * T}, {&a->res2, L * N * C}, {&a->ln2, L * N * C},
        {&a->ln2_mean, L * N}, {&a->ln2_rstd, L * N}, {&a->fch, L * N * NI},
        {&a->fch_gelu, L * N * NI}, {&a->res3, L * N * C}, {&a->lnf, N * C},
        {&a->lnf_mean, N},     {&a->lnf_rstd, N},     {&a->logits, N * V},
        {&a->losses, N},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (base) *t[i].p = base + total;
        total += (t[i].n + 15) & ~(size_t)15; /* keep every tensor 64-byte aligned */
    }
    return total;
}

static size_t scratch_layout(const Gpt2Config *c, int B, int T, float *base, Scratch *s) {
    size_t N = (size_t)B * T, C = c->n_embd, NI = c->n_inner, NH = c->n_head;
    struct {
        float **p;
        size_t n;
    } t[] = {{&s->dres, N * C}, {&s->dln, N * C},  {&s->datty, N * C},
             {&s->dqkv, N * 3 * C}, {&s->dfc, N * NI}, {&s->datt_row, B * NH * T}};
    size_t total = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (base) *t[i].p = base + total;
        total += (t[i].n + 15) & ~(size_t)15;
    }
    return total;
}

// ---- create / free / reserve ----

static DpStatus alloc_model(const Gpt2Config *cfg, Gpt2 **out, DpError *err) {
    *out = NULL;
    DpStatus s = gpt2_config_validate(cfg, "config", err);
    if (s) return s;
    Gpt2 *m = dp_calloc(1, sizeof *m);
    if (!m) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    m->config = *cfg;
    fill_param_sizes(cfg, m->param_sizes);
    for (int k = 0; k < GPT2_N_PARAM_TENSORS; k++) m->n_params += m->param_sizes[k];
    m->params_memory = dp_aligned_alloc(m->n_params * sizeof(float));
    if (!m->params_memory) {
        size_t np = m->n_params;
        gpt2_free(m);
        return dp_fail(err, DP_ERR_NOMEM, "out of memory for %zu parameters", np);
    }
    point_params(&m->params, m->params_memory, m->param_sizes);
    m->loss = -1.0f;
    *out = m;
    return DP_OK;
}

DpStatus gpt2_alloc_(const Gpt2Config *cfg, Gpt2 **out, DpError *err) {
    return alloc_model(cfg, out, err);
}

DpStatus gpt2_create(const Gpt2Config *cfg, uint64_t seed, Gpt2 **out, DpError *err) {
    DpStatus s = alloc_model(cfg, out, err);
    if (s) return s;
    Gpt2 *m = *out;
    DpRng rng;
    dp_rng_seed(&rng, seed);
    float resid_std = 0.02f / sqrtf(2.0f * (float)cfg->n_layer);
    int n = gpt2_n_named_tensors(cfg);
    for (int i = 0; i < n; i++) {
        Gpt2TensorInfo ti;
        gpt2_tensor_info(cfg, i, &ti);
        float *p = m->params_memory + ti.offset;
        int is_ln = strstr(ti.name, "ln_") != NULL;
        int is_bias = strstr(ti.name, ".bias") != NULL;
        if (is_ln && !is_bias) {
            for (size_t j = 0; j < ti.numel; j++) p[j] = 1.0f;
        } else if (is_bias) {
            memset(p, 0, ti.numel * sizeof(float));
        } else {
            float std = strstr(ti.name, "c_proj.weight") ? resid_std : 0.02f;
            for (size_t j = 0; j < ti.numel; j++) p[j] = (float)dp_rng_normal(&rng) * std;
        }
    }
    return DP_OK;
}

static void free_work(Gpt2Work *w) {
    if (!w) return;
    dp_aligned_free(w->acts_memory);
    dp_aligned_free(w->scratch_memory);
    free(w->inputs);
    free(w->targets);
    free(w->mask);
    free(w);
}

void gpt2_free(Gpt2 *m) {
    if (!m) return;
    dp_aligned_free(m->params_memory);
    dp_aligned_free(m->grads_memory);
    dp_aligned_free(m->adam_m);
    dp_aligned_free(m->adam_v);
    free(m->config_json);
    free_work(m->work);
    free(m);
}

DpStatus gpt2_reserve(Gpt2 *m, int B, int T, int flags, DpError *err) {
    const Gpt2Config *c = &m->config;
    if (B < 1 || T < 1 || T > c->n_positions)
        return dp_fail(err, DP_ERR_INVAL, "gpt2_reserve: need B >= 1 and 1 <= T <= %d, got B=%d T=%d",
                       c->n_positions, B, T);
    int training = (flags & GPT2_RESERVE_TRAIN) != 0;
    if (training && !m->grads_memory) {
        m->grads_memory = dp_aligned_alloc(m->n_params * sizeof(float));
        m->adam_m = dp_aligned_alloc(m->n_params * sizeof(float));
        m->adam_v = dp_aligned_alloc(m->n_params * sizeof(float));
        if (!m->grads_memory || !m->adam_m || !m->adam_v) {
            dp_aligned_free(m->grads_memory);
            dp_aligned_free(m->adam_m);
            dp_aligned_free(m->adam_v);
            m->grads_memory = m->adam_m = m->adam_v = NULL;
            return dp_fail(err, DP_ERR_NOMEM, "out of memory for gradients and AdamW state");
        }
        memset(m->grads_memory, 0, m->n_params * sizeof(float));
        memset(m->adam_m, 0, m->n_params * sizeof(float));
        memset(m->adam_v, 0, m->n_params * sizeof(float));
        point_params(&m->grads, m->grads_memory, m->param_sizes);
    }
    if (training) m->training = 1;
    int nB = B > m->max_B ? B : m->max_B, nT = T > m->max_T ? T : m->max_T;
    int need_scratch = m->training && (!m->work || !m->work->scratch_memory);
    if (m->work && nB == m->max_B && nT == m->max_T && !need_scratch) return DP_OK;
    Gpt2Work *w = dp_calloc(1, sizeof *w);
    if (!w) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    Acts tmp;
    Scratch stmp;
    w->acts_floats = acts_layout(c, nB, nT, NULL, &tmp);
    w->acts_memory = dp_aligned_alloc(w->acts_floats * sizeof(float));
    size_t N = (size_t)nB * nT;
    w->inputs = dp_calloc(N, sizeof(int));
    w->targets = dp_calloc(N, sizeof(int));
    w->mask = dp_calloc(N, sizeof(float));
    if (m->training) {
        w->scratch_floats = scratch_layout(c, nB, nT, NULL, &stmp);
        w->scratch_memory = dp_aligned_alloc(w->scratch_floats * sizeof(float));
    }
    if (!w->acts_memory || !w->inputs || !w->targets || !w->mask ||
        (m->training && !w->scratch_memory)) {
        free_work(w);
        return dp_fail(err, DP_ERR_NOMEM, "out of memory for activations (B=%d, T=%d)", nB, nT);
    }
    free_work(m->work);
    m->work = w;
    m->max_B = nB;
    m->max_T = nT;
    m->logits = NULL;
    m->B = m->T = 0;
    return DP_OK;
}

// ---- kernels ----

void gpt2_k_layernorm(float *out, float *mean, float *rstd, const float *inp, const float *w,
                      const float *b, int N, int C, float eps) {
#pragma omp parallel for if ((size_t)N * C >= GPT2_PAR_MIN_WORK)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *o = out + (size_t)i * C;
        double sum = 0.0;
        for (int j = 0; j < C; j++) sum += x[j];
        float mu = (float)(sum / C);
        double var = 0.0;
        for (int j = 0; j < C; j++) {
            float d = x[j] - mu;
            var += (double)d * d;
        }
        float rs = (float)(1.0 / sqrt(var / C + eps));
        for (int j = 0; j < C; j++) o[j] = (x[j] - mu) * rs * w[j] + b[j];
        if (mean) mean[i] = mu;
        if (rstd) rstd[i] = rs;
    }
}

/* Few rows (batched decode): OpenBLAS's sgemm packs the whole weight matrix
 * for every call and runs at a fraction of memory speed when N is small, so
 * this streams W once, in column tiles whose accumulators stay in L1, four
 * input rows of W per pass so each accumulator load feeds four FMAs. */
#define SMALL_N_MAX 16
#define SMALL_TILE 256

static void matmul_small(float *out, const float *inp, const float *W, const float *bias, int N,
                         int IC, int OC) {
    int n_tiles = (OC + SMALL_TILE - 1) / SMALL_TILE;
#pragma omp parallel for schedule(static) if ((size_t)N * IC * OC >= 8 * GPT2_PAR_MIN_WORK)
    for (int tile = 0; tile < n_tiles; tile++) {
        int o0 = tile * SMALL_TILE, ob = OC - o0 < SMALL_TILE ? OC - o0 : SMALL_TILE;
        float acc[SMALL_N_MAX][SMALL_TILE];
        for (int m = 0; m < N; m++)
            for (int o = 0; o < ob; o++) acc[m][o] = bias ? bias[o0 + o] : 0.0f;
        int i = 0;
        for (; i + 4 <= IC; i += 4) {
            const float *w0 = W + (size_t)i * OC + o0, *w1 = w0 + OC, *w2 = w1 + OC, *w3 = w2 + OC;
            for (int m = 0; m < N; m++) {
                const float *x = inp + (size_t)m * IC + i;
                float x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
                float *a = acc[m];
#pragma omp simd
                for (int o = 0; o < ob; o++) a[o] += x0 * w0[o] + x1 * w1[o] + x2 * w2[o] + x3 * w3[o];
            }
        }
        for (; i < IC; i++) {
            const float *w0 = W + (size_t)i * OC + o0;
            for (int m = 0; m < N; m++) {
                float x0 = inp[(size_t)m * IC + i];
#pragma omp simd
                for (int o = 0; o < ob; o++) acc[m][o] += x0 * w0[o];
            }
        }
        for (int m = 0; m < N; m++)
            memcpy(out + (size_t)m * OC + o0, acc[m], (size_t)ob * sizeof(float));
    }
}

/* logits (N,V) = x (N,C) @ wte^T for few rows: four wte rows at a time, each
 * read once for all N inputs. */
static void lm_head_small(float *logits, const float *x, const float *wte, int N, int C, int V) {
#pragma omp parallel for schedule(static) if ((size_t)N * C * V >= 8 * GPT2_PAR_MIN_WORK)
    for (int v0 = 0; v0 < V; v0 += 4) {
        int nv = V - v0 < 4 ? V - v0 : 4;
        if (nv == 4) { /* each x load feeds four FMAs */
            const float *r0 = wte + (size_t)v0 * C, *r1 = r0 + C, *r2 = r1 + C, *r3 = r2 + C;
            for (int m = 0; m < N; m++) {
                const float *xm = x + (size_t)m * C;
                float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
                for (int c = 0; c < C; c++) {
                    float xv = xm[c];
                    s0 += xv * r0[c];
                    s1 += xv * r1[c];
                    s2 += xv * r2[c];
                    s3 += xv * r3[c];
                }
                float *o = logits + (size_t)m * V + v0;
                o[0] = s0;
                o[1] = s1;
                o[2] = s2;
                o[3] = s3;
            }
            continue;
        }
        for (int k = 0; k < nv; k++) {
            const float *r = wte + (size_t)(v0 + k) * C;
            for (int m = 0; m < N; m++) {
                const float *xm = x + (size_t)m * C;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int c = 0; c < C; c++) s += xm[c] * r[c];
                logits[(size_t)m * V + v0 + k] = s;
            }
        }
    }
}

void gpt2_k_matmul(float *out, const float *inp, const float *W, const float *bias, int N, int IC,
                   int OC) {
    if (N > 1 && N <= SMALL_N_MAX) {
        matmul_small(out, inp, W, bias, N, IC, OC);
        return;
    }
    if (bias) {
#pragma omp parallel for if ((size_t)N * OC >= GPT2_PAR_MIN_WORK)
        for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, bias, (size_t)OC * sizeof(float));
    }
    if (N == 1) { /* one token (decode): gemv streams W once at memory speed */
        cblas_sgemv(CblasRowMajor, CblasTrans, IC, OC, 1.0f, W, OC, inp, 1, bias ? 1.0f : 0.0f,
                    out, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, IC, 1.0f, inp, IC, W, OC,
                bias ? 1.0f : 0.0f, out, OC);
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* e^x for float, written so that loops over it vectorise (glibc's expf and
 * tanhf are scalar calls): Cody-Waite reduction x = n*ln2 + r and a degree-6
 * polynomial for e^r, about 1 ulp.  Inputs are clamped to the finite range. */
static inline float exp_fast(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale;
    scale.i = ((int32_t)n + 127) << 23;
    return y * scale.f;
}

/* tanh(u) = 1 - 2/(e^(2u) + 1); absolute error ~1e-7, which is what GELU needs. */
static inline float tanh_fast(float u) { return 1.0f - 2.0f / (exp_fast(2.0f * u) + 1.0f); }

void gpt2_k_gelu(float *out, const float *inp, size_t n, Gpt2Activation act) {
    if (act == GPT2_ACT_GELU_ERF) {
#pragma omp parallel for if (n >= GPT2_PAR_MIN_WORK)
        for (size_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * 0.70710678f));
    } else {
#pragma omp parallel for simd if (n >= GPT2_PAR_MIN_WORK)
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + 0.044715f * x * x * x)));
        }
    }
}

static void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n,
                          Gpt2Activation act) {
    if (act == GPT2_ACT_GELU_ERF) {
#pragma omp parallel for if (n >= GPT2_PAR_MIN_WORK)
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            float cdf = 0.5f * (1.0f + erff(x * 0.70710678f));
            float pdf = expf(-0.5f * x * x) * 0.3989422804014327f;
            dinp[i] = (cdf + x * pdf) * dout[i];
        }
    } else {
#pragma omp parallel for simd if (n >= GPT2_PAR_MIN_WORK)
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            float u = GELU_K * (x + 0.044715f * x * x * x);
            float th = tanh_fast(u);
            float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
            dinp[i] = (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du) * dout[i];
        }
    }
}

void gpt2_k_lm_head(float *logits, const float *x, const float *wte, int N, int C, int V) {
    if (N == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, V, C, 1.0f, wte, C, x, 1, 0.0f, logits, 1);
        return;
    }
    if (N <= SMALL_N_MAX) {
        lm_head_small(logits, x, wte, N, C, V);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, V, C, 1.0f, x, C, wte, C, 0.0f,
                logits, V);
}

/* Causal self-attention forward.  qkv (B,T,3C) -> out (B,T,C); att (B,NH,T,T)
 * receives the softmax probabilities (upper triangle left untouched). */
static void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                              int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t C3 = (size_t)C * 3;
#pragma omp parallel for collapse(3) if ((size_t)B * T * T * C >= GPT2_PAR_MIN_WORK)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
                float *row = att + (((size_t)b * NH + h) * T + t) * T;
                float maxv = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                    dot *= scale;
                    row[t2] = dot;
                    if (dot > maxv) maxv = dot;
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    row[t2] = expf(row[t2] - maxv);
                    sum += row[t2];
                }
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) row[t2] *= inv;
                float *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + ((size_t)b * T + t2) * C3 + 2 * C + (size_t)h * hs;
                    float a = row[t2];
                    for (int i = 0; i < hs; i++) o[i] += a * v[i];
                }
            }
}

/* dqkv (B,T,3C) must be zeroed; accumulates.  datt_row is (B*NH, T) scratch. */
static void attention_backward(float *dqkv, float *datt_row, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t C3 = (size_t)C * 3;
#pragma omp parallel for collapse(2) if ((size_t)B * T * T * C >= GPT2_PAR_MIN_WORK)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *da = datt_row + ((size_t)b * NH + h) * T;
            for (int t = 0; t < T; t++) {
                const float *row = att + (((size_t)b * NH + h) * T + t) * T;
                const float *dy = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
                const float *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
                float *dq = dqkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
                float dot_sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + ((size_t)b * T + t2) * C3 + 2 * C + (size_t)h * hs;
                    float *dv = dqkv + ((size_t)b * T + t2) * C3 + 2 * C + (size_t)h * hs;
                    float d = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        d += dy[i] * v[i];
                        dv[i] += row[t2] * dy[i];
                    }
                    da[t2] = d;
                    dot_sum += d * row[t2];
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    float dpre = row[t2] * (da[t2] - dot_sum) * scale;
                    const float *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
                    float *dk = dqkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += dpre * k[i];
                        dk[i] += dpre * q[i];
                    }
                }
            }
        }
}

/* dinp (N,C) += LayerNorm backward; dw, db (C) accumulate. */
static void layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                               const float *inp, const float *w, const float *mean,
                               const float *rstd, int N, int C) {
    /* dinp rows are independent; dw/db sum over rows, done after in a column
     * pass so the parallel loop needs no reduction. */
#pragma omp parallel for if ((size_t)N * C >= GPT2_PAR_MIN_WORK)
    for (int i = 0; i < N; i++) {
        const float *dy = dout + (size_t)i * C, *x = inp + (size_t)i * C;
        float *dx = dinp + (size_t)i * C;
        float mu = mean[i], rs = rstd[i];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int j = 0; j < C; j++) {
            float dn = w[j] * dy[j];
            dnorm_mean += dn;
            dnorm_norm_mean += dn * (x[j] - mu) * rs;
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
        for (int j = 0; j < C; j++) {
            float nrm = (x[j] - mu) * rs;
            float dn = w[j] * dy[j];
            dx[j] += (dn - dnorm_mean - nrm * dnorm_norm_mean) * rs;
        }
    }
    /* column blocks per thread, rows in order inside: contiguous reads */
    enum { CB = 64 };
#pragma omp parallel for if ((size_t)N * C >= GPT2_PAR_MIN_WORK)
    for (int j0 = 0; j0 < C; j0 += CB) {
        int jn = C - j0 < CB ? C - j0 : CB;
        float sw[CB] = {0}, sb[CB] = {0};
        for (int i = 0; i < N; i++) {
            const float *dy = dout + (size_t)i * C + j0, *x = inp + (size_t)i * C + j0;
            float mu = mean[i], rs = rstd[i];
            for (int j = 0; j < jn; j++) {
                sw[j] += dy[j] * ((x[j] - mu) * rs);
                sb[j] += dy[j];
            }
        }
        for (int j = 0; j < jn; j++) {
            dw[j0 + j] += sw[j];
            db[j0 + j] += sb[j];
        }
    }
}

/* Linear layer backward: out = inp (N,IC) @ W (IC,OC) + b.
 * dinp (N,IC) = dout @ W^T (overwritten), dW += inp^T @ dout, db += colsum. */
static void matmul_backward(float *dinp, float *dW, float *db, const float *dout,
                            const float *inp, const float *W, int N, int IC, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, IC, OC, 1.0f, dout, OC, W, OC, 0.0f,
                dinp, IC);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, N, 1.0f, inp, IC, dout, OC, 1.0f,
                dW, OC);
    if (db) {
#pragma omp parallel for if ((size_t)N * OC >= GPT2_PAR_MIN_WORK)
        for (int o = 0; o < OC; o++) {
            float s = 0.0f;
            for (int i = 0; i < N; i++) s += dout[(size_t)i * OC + o];
            db[o] += s;
        }
    }
}

static void residual_add(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for if (n >= GPT2_PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// ---- forward ----

DpStatus gpt2_forward(Gpt2 *m, const int *inputs, const int *targets, const float *mask, int B,
                      int T, float *loss_out, DpError *err) {
    const Gpt2Config *c = &m->config;
    if (!m->work)
        return dp_fail(err, DP_ERR_STATE, "gpt2_forward: call gpt2_reserve first");
    if (B < 1 || T < 1 || B > m->max_B || T > m->max_T)
        return dp_fail(err, DP_ERR_INVAL,
                       "gpt2_forward: B=%d T=%d outside the reserved B<=%d, T<=%d", B, T, m->max_B,
                       m->max_T);
    int C = c->n_embd, L = c->n_layer, NH = c->n_head, NI = c->n_inner, V = c->vocab_size;
    int N = B * T;
    Gpt2Work *w = m->work;
    for (int i = 0; i < N; i++) {
        if (inputs[i] < 0 || inputs[i] >= V)
            return dp_fail(err, DP_ERR_INVAL, "gpt2_forward: inputs[%d] = %d outside [0, %d)", i,
                           inputs[i], V);
        if (targets && (targets[i] < 0 || targets[i] >= V))
            return dp_fail(err, DP_ERR_INVAL, "gpt2_forward: targets[%d] = %d outside [0, %d)", i,
                           targets[i], V);
        if (mask && !(mask[i] >= 0.0f && isfinite(mask[i])))
            return dp_fail(err, DP_ERR_INVAL, "gpt2_forward: mask[%d] = %g is not a finite weight >= 0",
                           i, (double)mask[i]);
    }
    Acts *a = &w->a;
    acts_layout(c, B, T, w->acts_memory, a);
    memcpy(w->inputs, inputs, (size_t)N * sizeof(int));
    const Gpt2Params *p = &m->params;

    // encoded (N,C) = wte[token] + wpe[t]
#pragma omp parallel for if ((size_t)N * C >= GPT2_PAR_MIN_WORK)
    for (int i = 0; i < N; i++) {
        const float *te = p->wte + (size_t)inputs[i] * C, *pe = p->wpe + (size_t)(i % T) * C;
        float *o = a->encoded + (size_t)i * C;
        for (int j = 0; j < C; j++) o[j] = te[j] + pe[j];
    }
    size_t NC = (size_t)N * C;
    for (int l = 0; l < L; l++) {
        const float *x = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * NC * 3, *atty = a->atty + l * NC;
        float *att = a->att + (size_t)l * B * NH * T * T;
        float *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC, *res3 = a->res3 + l * NC;
        float *fch = a->fch + (size_t)l * N * NI, *fchg = a->fch_gelu + (size_t)l * N * NI;
        gpt2_k_layernorm(ln1, a->ln1_mean + (size_t)l * N, a->ln1_rstd + (size_t)l * N, x,
                         p->ln1w + (size_t)l * C, p->ln1b + (size_t)l * C, N, C,
                         c->layer_norm_epsilon);
        gpt2_k_matmul(qkv, ln1, p->qkvw + (size_t)l * C * 3 * C, p->qkvb + (size_t)l * 3 * C, N,
                      C, 3 * C);
        attention_forward(atty, att, qkv, B, T, C, NH);
        // res2 = x + atty @ Wproj + b (the product lands in res2, then x is added)
        gpt2_k_matmul(res2, atty, p->attprojw + (size_t)l * C * C, p->attprojb + (size_t)l * C, N,
                      C, C);
        residual_add(res2, res2, x, NC);
        gpt2_k_layernorm(ln2, a->ln2_mean + (size_t)l * N, a->ln2_rstd + (size_t)l * N, res2,
                         p->ln2w + (size_t)l * C, p->ln2b + (size_t)l * C, N, C,
                         c->layer_norm_epsilon);
        gpt2_k_matmul(fch, ln2, p->fcw + (size_t)l * C * NI, p->fcb + (size_t)l * NI, N, C, NI);
        gpt2_k_gelu(fchg, fch, (size_t)N * NI, c->activation);
        gpt2_k_matmul(res3, fchg, p->fcprojw + (size_t)l * NI * C, p->fcprojb + (size_t)l * C, N,
                      NI, C);
        residual_add(res3, res3, res2, NC);
    }
    gpt2_k_layernorm(a->lnf, a->lnf_mean, a->lnf_rstd, a->res3 + (size_t)(L - 1) * NC, p->lnfw,
                     p->lnfb, N, C, c->layer_norm_epsilon);
    gpt2_k_lm_head(a->logits, a->lnf, p->wte, N, C, V);
    m->logits = a->logits;
    m->B = B;
    m->T = T;
    m->loss = -1.0f;
    w->have_targets = 0;
    if (!targets) {
        if (loss_out) *loss_out = -1.0f;
        return DP_OK;
    }
    // masked cross-entropy: nll per position, weights normalised by their sum
    memcpy(w->targets, targets, (size_t)N * sizeof(int));
    double wsum = 0.0;
    for (int i = 0; i < N; i++) wsum += mask ? mask[i] : 1.0f;
    for (int i = 0; i < N; i++)
        w->mask[i] = wsum > 0.0 ? (float)((mask ? mask[i] : 1.0f) / wsum) : 0.0f;
#pragma omp parallel for if ((size_t)N * V >= GPT2_PAR_MIN_WORK)
    for (int i = 0; i < N; i++) {
        const float *lg = a->logits + (size_t)i * V;
        float maxv = -INFINITY;
        for (int v = 0; v < V; v++)
            if (lg[v] > maxv) maxv = lg[v];
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int v = 0; v < V; v++) sum += exp_fast(lg[v] - maxv);
        a->losses[i] = (float)(log(sum) + maxv - lg[targets[i]]);
    }
    double loss = 0.0;
    for (int i = 0; i < N; i++) loss += (double)w->mask[i] * a->losses[i];
    m->loss = (float)loss;
    w->have_targets = 1;
    if (loss_out) *loss_out = m->loss;
    return DP_OK;
}

// ---- backward ----

void gpt2_zero_grad(Gpt2 *m) {
    if (m->grads_memory) memset(m->grads_memory, 0, m->n_params * sizeof(float));
}

DpStatus gpt2_backward(Gpt2 *m, DpError *err) {
    if (!m->training || !m->grads_memory || !m->work || !m->work->scratch_memory)
        return dp_fail(err, DP_ERR_STATE,
                       "gpt2_backward: reserve with GPT2_RESERVE_TRAIN before training");
    if (!m->work->have_targets)
        return dp_fail(err, DP_ERR_STATE,
                       "gpt2_backward: the last gpt2_forward had no targets (or was already "
                       "used by a backward)");
    const Gpt2Config *c = &m->config;
    int B = m->B, T = m->T, N = B * T;
    int C = c->n_embd, L = c->n_layer, NH = c->n_head, NI = c->n_inner, V = c->vocab_size;
    Gpt2Work *w = m->work;
    Acts *a = &w->a;
    Scratch s;
    scratch_layout(c, B, T, w->scratch_memory, &s);
    const Gpt2Params *p = &m->params;
    Gpt2Params *g = &m->grads;
    size_t NC = (size_t)N * C;

    // dlogits = (softmax - onehot) * weight, in place over the logits
#pragma omp parallel for if ((size_t)N * V >= GPT2_PAR_MIN_WORK)
    for (int i = 0; i < N; i++) {
        float *lg = a->logits + (size_t)i * V;
        float wt = w->mask[i];
        if (wt == 0.0f) {
            memset(lg, 0, (size_t)V * sizeof(float));
            continue;
        }
        float maxv = -INFINITY;
        for (int v = 0; v < V; v++)
            if (lg[v] > maxv) maxv = lg[v];
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int v = 0; v < V; v++) {
            lg[v] = exp_fast(lg[v] - maxv);
            sum += lg[v];
        }
        float scale = (float)(wt / sum);
        for (int v = 0; v < V; v++) lg[v] *= scale;
        lg[w->targets[i]] -= wt;
    }
    w->have_targets = 0;
    const float *dlogits = a->logits;
    // lm_head: logits = lnf @ wte^T
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, N, 1.0f, dlogits, V, a->lnf, C, 1.0f,
                g->wte, C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, V, 1.0f, dlogits, V, p->wte, C,
                0.0f, s.dln, C);
    memset(s.dres, 0, NC * sizeof(float));
    layernorm_backward(s.dres, g->lnfw, g->lnfb, s.dln, a->res3 + (size_t)(L - 1) * NC, p->lnfw,
                       a->lnf_mean, a->lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const float *x = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * NC;
        const float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * NC * 3, *atty = a->atty + l * NC;
        const float *att = a->att + (size_t)l * B * NH * T * T;
        const float *res2 = a->res2 + l * NC, *ln2 = a->ln2 + l * NC;
        const float *fch = a->fch + (size_t)l * N * NI, *fchg = a->fch_gelu + (size_t)l * N * NI;
        // MLP: res3 = res2 + gelu(ln2 @ Wfc + bfc) @ Wfcproj + bfcproj
        matmul_backward(s.dfc, g->fcprojw + (size_t)l * NI * C, g->fcprojb + (size_t)l * C, s.dres,
                        fchg, p->fcprojw + (size_t)l * NI * C, N, NI, C);
        gelu_backward(s.dfc, fch, s.dfc, (size_t)N * NI, c->activation);
        matmul_backward(s.dln, g->fcw + (size_t)l * C * NI, g->fcb + (size_t)l * NI, s.dfc, ln2,
                        p->fcw + (size_t)l * C * NI, N, C, NI);
        layernorm_backward(s.dres, g->ln2w + (size_t)l * C, g->ln2b + (size_t)l * C, s.dln, res2,
                           p->ln2w + (size_t)l * C, a->ln2_mean + (size_t)l * N,
                           a->ln2_rstd + (size_t)l * N, N, C);
        // attention: res2 = x + attn(ln1) @ Wproj + bproj
        matmul_backward(s.datty, g->attprojw + (size_t)l * C * C, g->attprojb + (size_t)l * C,
                        s.dres, atty, p->attprojw + (size_t)l * C * C, N, C, C);
        memset(s.dqkv, 0, NC * 3 * sizeof(float));
        attention_backward(s.dqkv, s.datt_row, s.datty, qkv, att, B, T, C, NH);
        matmul_backward(s.dln, g->qkvw + (size_t)l * C * 3 * C, g->qkvb + (size_t)l * 3 * C,
                        s.dqkv, ln1, p->qkvw + (size_t)l * C * 3 * C, N, C, 3 * C);
        layernorm_backward(s.dres, g->ln1w + (size_t)l * C, g->ln1b + (size_t)l * C, s.dln, x,
                           p->ln1w + (size_t)l * C, a->ln1_mean + (size_t)l * N,
                           a->ln1_rstd + (size_t)l * N, N, C);
    }
    // embeddings; serial over rows because tokens repeat (wte rows collide)
    for (int i = 0; i < N; i++) {
        const float *d = s.dres + (size_t)i * C;
        float *gt = g->wte + (size_t)w->inputs[i] * C, *gp = g->wpe + (size_t)(i % T) * C;
        for (int j = 0; j < C; j++) {
            gt[j] += d[j];
            gp[j] += d[j];
        }
    }
    return DP_OK;
}

// ---- optimizer ----

Gpt2AdamW gpt2_adamw_default(void) {
    Gpt2AdamW o = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1};
    return o;
}

/* One chunk of the AdamW update.  GCC will not vectorise sqrtf without
 * -fno-math-errno (and the optimize attribute does not reach it), so the
 * AVX-512 path spells the same operations out, in the same order and with
 * the same roundings (no FMA contraction), as the scalar loop. */
static void adamw_chunk(float *restrict p, const float *restrict gr, float *restrict mm,
                        float *restrict vv, size_t n, float decay, float b1, float b2, float eps,
                        float step_size, float bc2_sqrt) {
    size_t i = 0;
#ifdef __AVX512F__
    const __m512 vdecay = _mm512_set1_ps(decay), vb1 = _mm512_set1_ps(b1),
                 vb2 = _mm512_set1_ps(b2), v1b1 = _mm512_set1_ps(1.0f - b1),
                 v1b2 = _mm512_set1_ps(1.0f - b2), veps = _mm512_set1_ps(eps),
                 vstep = _mm512_set1_ps(step_size), vbc2 = _mm512_set1_ps(bc2_sqrt);
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gr + i);
        __m512 pi = _mm512_mul_ps(_mm512_loadu_ps(p + i), vdecay);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(mm + i), vb1), _mm512_mul_ps(g, v1b1));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(vv + i), vb2),
                                  _mm512_mul_ps(_mm512_mul_ps(g, g), v1b2));
        _mm512_storeu_ps(mm + i, mi);
        _mm512_storeu_ps(vv + i, vi);
        __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), vbc2), veps);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(pi, _mm512_mul_ps(vstep, _mm512_div_ps(mi, denom))));
    }
#endif
    for (; i < n; i++) {
        float gi = gr[i];
        float pi = p[i] * decay;
        float mi = mm[i] * b1 + gi * (1.0f - b1);
        float vi = vv[i] * b2 + gi * gi * (1.0f - b2);
        mm[i] = mi;
        vv[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
    }
}

static void adamw_kernel(float *p, const float *gr, float *mm, float *vv, size_t n, float decay,
                         float b1, float b2, float eps, float step_size, float bc2_sqrt) {
    const size_t chunk = 16384;
    size_t n_chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n >= GPT2_PAR_MIN_WORK)
    for (size_t c = 0; c < n_chunks; c++) {
        size_t lo = c * chunk, len = n - lo < chunk ? n - lo : chunk;
        adamw_chunk(p + lo, gr + lo, mm + lo, vv + lo, len, decay, b1, b2, eps, step_size,
                    bc2_sqrt);
    }
}

void gpt2_adamw_step(Gpt2 *m, const Gpt2AdamW *o, int t) {
    if (!m->grads_memory || t < 1) return;
    /* The scalars are computed in double as PyTorch does in Python. */
    double bc1 = 1.0 - pow((double)o->beta1, t), bc2 = 1.0 - pow((double)o->beta2, t);
    float step_size = (float)((double)o->lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    size_t off = 0;
    for (int k = 0; k < GPT2_N_PARAM_TENSORS; k++) {
        size_t n = m->param_sizes[k];
        float decay = (o->decay_all || !kinds[k].no_decay)
                          ? (float)(1.0 - (double)o->lr * (double)o->weight_decay)
                          : 1.0f;
        adamw_kernel(m->params_memory + off, m->grads_memory + off, m->adam_m + off,
                     m->adam_v + off, n, decay, b1, b2, eps, step_size, bc2_sqrt);
        off += n;
    }
}

float gpt2_clip_grad_norm(Gpt2 *m, float max_norm) {
    if (!m->grads_memory) return 0.0f;
    double ss = 0.0;
    size_t n = m->n_params;
    const float *g = m->grads_memory;
#pragma omp parallel for reduction(+ : ss) if (n >= GPT2_PAR_MIN_WORK)
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    float norm = (float)sqrt(ss);
    if (max_norm > 0.0f && norm > max_norm) {
        float sc = max_norm / (norm + 1e-6f);
        float *gw = m->grads_memory;
#pragma omp parallel for if (n >= GPT2_PAR_MIN_WORK)
        for (size_t i = 0; i < n; i++) gw[i] *= sc;
    }
    return norm;
}
