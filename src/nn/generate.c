/* generate: inference with a KV cache — prefill and batched decode through
 * one routine, and sampling (greedy, temperature, top-k, top-p).
 *
 * A call to gpt2_generator_feed takes any list of (sequence, token) rows: a
 * prompt is many rows of one sequence, a decode step is one row per
 * sequence.  Each row's position is its sequence's current length.  All rows
 * of a chunk first write their keys and values into the cache, then attend
 * over their own sequence's cache up to their position, so rows of the same
 * sequence in one chunk see each other causally.  Only the last row of each
 * sequence goes through ln_f and the lm_head, since only it is sampled. */
#include "gpt2_impl.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct Gpt2Generator {
    const Gpt2 *model;
    int max_seqs, max_ctx, max_rows;
    int *len;               /* (max_seqs) tokens cached per sequence */
    float *kcache, *vcache; /* (L, max_seqs, max_ctx, C) */
    float *x, *ln, *qkv, *atty, *tmp; /* (R,C) except qkv (R,3C) */
    float *fch;             /* (R,I) */
    float *scores;          /* (R, NH, max_ctx) */
    float *logits;          /* (max_seqs, V) */
    float *head_out;        /* (max_seqs, V) scratch for the lm_head product */
    int *last_row;          /* (max_seqs) row of the chunk that ends each sequence */
    int *row_pos;           /* (R) */
    void *sample_scratch;
};

void gpt2_generator_destroy(Gpt2Generator *g) {
    if (!g) return;
    free(g->len);
    dp_aligned_free(g->kcache);
    dp_aligned_free(g->vcache);
    dp_aligned_free(g->x);
    dp_aligned_free(g->ln);
    dp_aligned_free(g->qkv);
    dp_aligned_free(g->atty);
    dp_aligned_free(g->tmp);
    dp_aligned_free(g->fch);
    dp_aligned_free(g->scores);
    dp_aligned_free(g->logits);
    dp_aligned_free(g->head_out);
    free(g->last_row);
    free(g->row_pos);
    free(g->sample_scratch);
    free(g);
}

DpStatus gpt2_generator_create(const Gpt2 *model, int max_seqs, int max_ctx, int max_rows,
                               Gpt2Generator **out, DpError *err) {
    *out = NULL;
    const Gpt2Config *c = &model->config;
    if (max_seqs < 1 || max_rows < 1)
        return dp_fail(err, DP_ERR_INVAL, "gpt2_generator_create: max_seqs=%d max_rows=%d must be >= 1",
                       max_seqs, max_rows);
    if (max_ctx <= 0 || max_ctx > c->n_positions) max_ctx = c->n_positions;
    Gpt2Generator *g = dp_calloc(1, sizeof *g);
    if (!g) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    g->model = model;
    g->max_seqs = max_seqs;
    g->max_ctx = max_ctx;
    g->max_rows = max_rows;
    size_t C = c->n_embd, R = max_rows, S = max_seqs;
    size_t cache = (size_t)c->n_layer * S * max_ctx * C;
    g->len = dp_calloc(S, sizeof(int));
    g->kcache = dp_aligned_alloc(cache * sizeof(float));
    g->vcache = dp_aligned_alloc(cache * sizeof(float));
    g->x = dp_aligned_alloc(R * C * sizeof(float));
    g->ln = dp_aligned_alloc(R * C * sizeof(float));
    g->qkv = dp_aligned_alloc(R * 3 * C * sizeof(float));
    g->atty = dp_aligned_alloc(R * C * sizeof(float));
    g->tmp = dp_aligned_alloc(R * C * sizeof(float));
    g->fch = dp_aligned_alloc(R * (size_t)c->n_inner * sizeof(float));
    g->scores = dp_aligned_alloc(R * (size_t)c->n_head * max_ctx * sizeof(float));
    g->logits = dp_aligned_alloc(S * (size_t)c->vocab_size * sizeof(float));
    g->head_out = dp_aligned_alloc(S * (size_t)c->vocab_size * sizeof(float));
    g->last_row = dp_calloc(S, sizeof(int));
    g->row_pos = dp_calloc(R, sizeof(int));
    g->sample_scratch = dp_malloc(GPT2_SAMPLE_SCRATCH(c->vocab_size));
    if (!g->len || !g->kcache || !g->vcache || !g->x || !g->ln || !g->qkv || !g->atty ||
        !g->tmp || !g->fch || !g->scores || !g->logits || !g->head_out || !g->last_row ||
        !g->row_pos || !g->sample_scratch) {
        gpt2_generator_destroy(g);
        return dp_fail(err, DP_ERR_NOMEM, "out of memory for a KV cache of %d x %d tokens",
                       max_seqs, max_ctx);
    }
    memset(g->logits, 0, S * (size_t)c->vocab_size * sizeof(float));
    *out = g;
    return DP_OK;
}

void gpt2_generator_reset(Gpt2Generator *g, int seq) {
    if (seq < 0) {
        memset(g->len, 0, (size_t)g->max_seqs * sizeof(int));
    } else if (seq < g->max_seqs) {
        g->len[seq] = 0;
    }
}

int gpt2_generator_length(const Gpt2Generator *g, int seq) {
    return seq >= 0 && seq < g->max_seqs ? g->len[seq] : 0;
}

/* One chunk of n <= max_rows rows, already validated. */
static void feed_chunk(Gpt2Generator *g, int n, const int *seq, const int *token) {
    const Gpt2 *m = g->model;
    const Gpt2Config *c = &m->config;
    const Gpt2Params *p = &m->params;
    int C = c->n_embd, L = c->n_layer, NH = c->n_head, I = c->n_inner, hs = C / NH;
    size_t ctx = (size_t)g->max_ctx, S = (size_t)g->max_seqs;
    float scale = 1.0f / sqrtf((float)hs);
    for (int r = 0; r < n; r++) g->row_pos[r] = g->len[seq[r]]++;
    for (int r = 0; r < n; r++) {
        const float *te = p->wte + (size_t)token[r] * C, *pe = p->wpe + (size_t)g->row_pos[r] * C;
        for (int j = 0; j < C; j++) g->x[(size_t)r * C + j] = te[j] + pe[j];
    }
    for (int l = 0; l < L; l++) {
        gpt2_k_layernorm(g->ln, NULL, NULL, g->x, p->ln1w + (size_t)l * C, p->ln1b + (size_t)l * C,
                         n, C, c->layer_norm_epsilon);
        gpt2_k_matmul(g->qkv, g->ln, p->qkvw + (size_t)l * C * 3 * C, p->qkvb + (size_t)l * 3 * C,
                      n, C, 3 * C);
        float *kc = g->kcache + (size_t)l * S * ctx * C, *vc = g->vcache + (size_t)l * S * ctx * C;
        for (int r = 0; r < n; r++) {
            size_t at = ((size_t)seq[r] * ctx + g->row_pos[r]) * C;
            memcpy(kc + at, g->qkv + (size_t)r * 3 * C + C, (size_t)C * sizeof(float));
            memcpy(vc + at, g->qkv + (size_t)r * 3 * C + 2 * C, (size_t)C * sizeof(float));
        }
        size_t work = 0;
        for (int r = 0; r < n; r++) work += (size_t)(g->row_pos[r] + 1) * C;
#pragma omp parallel for collapse(2) if (work * 2 >= GPT2_PAR_MIN_WORK)
        for (int r = 0; r < n; r++)
            for (int h = 0; h < NH; h++) {
                int pos = g->row_pos[r];
                const float *q = g->qkv + (size_t)r * 3 * C + (size_t)h * hs;
                const float *kb = kc + (size_t)seq[r] * ctx * C + (size_t)h * hs;
                const float *vb = vc + (size_t)seq[r] * ctx * C + (size_t)h * hs;
                float *sc = g->scores + ((size_t)r * NH + h) * ctx;
                float maxv = -INFINITY;
                for (int t = 0; t <= pos; t++) {
                    const float *k = kb + (size_t)t * C;
                    float d = 0.0f;
                    for (int i = 0; i < hs; i++) d += q[i] * k[i];
                    d *= scale;
                    sc[t] = d;
                    if (d > maxv) maxv = d;
                }
                float sum = 0.0f;
                for (int t = 0; t <= pos; t++) {
                    sc[t] = expf(sc[t] - maxv);
                    sum += sc[t];
                }
                float inv = 1.0f / sum;
                float *o = g->atty + (size_t)r * C + (size_t)h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0.0f;
                for (int t = 0; t <= pos; t++) {
                    const float *v = vb + (size_t)t * C;
                    float a = sc[t] * inv;
                    for (int i = 0; i < hs; i++) o[i] += a * v[i];
                }
            }
        gpt2_k_matmul(g->tmp, g->atty, p->attprojw + (size_t)l * C * C,
                      p->attprojb + (size_t)l * C, n, C, C);
        for (size_t i = 0; i < (size_t)n * C; i++) g->x[i] += g->tmp[i];
        gpt2_k_layernorm(g->ln, NULL, NULL, g->x, p->ln2w + (size_t)l * C, p->ln2b + (size_t)l * C,
                         n, C, c->layer_norm_epsilon);
        gpt2_k_matmul(g->fch, g->ln, p->fcw + (size_t)l * C * I, p->fcb + (size_t)l * I, n, C, I);
        gpt2_k_gelu(g->fch, g->fch, (size_t)n * I, c->activation);
        gpt2_k_matmul(g->tmp, g->fch, p->fcprojw + (size_t)l * I * C,
                      p->fcprojb + (size_t)l * C, n, I, C);
        for (size_t i = 0; i < (size_t)n * C; i++) g->x[i] += g->tmp[i];
    }
    /* ln_f and the head only for the last row of each sequence in the chunk */
    for (int s = 0; s < g->max_seqs; s++) g->last_row[s] = -1;
    for (int r = 0; r < n; r++) g->last_row[seq[r]] = r;
    int nl = 0;
    int *which = g->row_pos; /* row positions are no longer needed: reuse as a list */
    for (int s = 0; s < g->max_seqs; s++)
        if (g->last_row[s] >= 0) {
            memcpy(g->tmp + (size_t)nl * C, g->x + (size_t)g->last_row[s] * C,
                   (size_t)C * sizeof(float));
            which[nl++] = s;
        }
    gpt2_k_layernorm(g->ln, NULL, NULL, g->tmp, p->lnfw, p->lnfb, nl, C, c->layer_norm_epsilon);
    /* One product for all sequences (one pass over wte); rows land directly
     * in the table when the fed sequences are 0..nl-1, else are copied. */
    size_t V = (size_t)c->vocab_size;
    int direct = 1;
    for (int k = 0; k < nl; k++) direct &= which[k] == k;
    gpt2_k_lm_head(direct ? g->logits : g->head_out, g->ln, p->wte, nl, C, c->vocab_size);
    if (!direct)
        for (int k = 0; k < nl; k++)
            memcpy(g->logits + (size_t)which[k] * V, g->head_out + (size_t)k * V, V * sizeof(float));
}

DpStatus gpt2_generator_feed(Gpt2Generator *g, int n, const int *seq, const int *token,
                             const float **logits, DpError *err) {
    const Gpt2Config *c = &g->model->config;
    if (logits) *logits = g->logits;
    /* Validate everything before touching the cache. */
    for (int i = 0; i < n; i++) {
        if (seq[i] < 0 || seq[i] >= g->max_seqs)
            return dp_fail(err, DP_ERR_INVAL, "gpt2_generator_feed: seq[%d] = %d outside [0, %d)", i,
                           seq[i], g->max_seqs);
        if (token[i] < 0 || token[i] >= c->vocab_size)
            return dp_fail(err, DP_ERR_INVAL, "gpt2_generator_feed: token[%d] = %d outside [0, %d)",
                           i, token[i], c->vocab_size);
    }
    for (int s = 0; s < g->max_seqs; s++) g->last_row[s] = g->len[s];
    for (int i = 0; i < n; i++)
        if (++g->last_row[seq[i]] > g->max_ctx)
            return dp_fail(err, DP_ERR_INVAL,
                           "gpt2_generator_feed: sequence %d would exceed the context of %d tokens",
                           seq[i], g->max_ctx);
    for (int off = 0; off < n; off += g->max_rows) {
        int k = n - off < g->max_rows ? n - off : g->max_rows;
        feed_chunk(g, k, seq + off, token + off);
    }
    return DP_OK;
}

// ---- sampling ----

typedef struct {
    float p;
    int i;
} Cand;

/* Reorders c[0..n) so that a prefix holds the largest entries whose total
 * weight (p, or 1 each when by_count) first reaches need; entries tied with
 * the cut are all kept.  Returns the prefix length (>= 1).  Expected O(n). */
static int select_top(Cand *c, int n, double need, int by_count) {
    int lo = 0, hi = n;
    while (hi - lo > 1) {
        float pivot = c[lo + (hi - lo) / 2].p;
        /* three-way partition of [lo,hi): > pivot, == pivot, < pivot */
        int gt = lo, i = lo, lt = hi;
        while (i < lt) {
            if (c[i].p > pivot) {
                Cand t = c[gt]; c[gt] = c[i]; c[i] = t;
                gt++;
                i++;
            } else if (c[i].p < pivot) {
                lt--;
                Cand t = c[lt]; c[lt] = c[i]; c[i] = t;
            } else {
                i++;
            }
        }
        double wg = 0.0, we = 0.0;
        for (int j = lo; j < gt; j++) wg += by_count ? 1.0 : c[j].p;
        for (int j = gt; j < lt; j++) we += by_count ? 1.0 : c[j].p;
        if (wg >= need && gt > lo) {
            hi = gt;
        } else if (wg + we >= need) {
            return lt;
        } else {
            need -= wg + we;
            lo = lt;
            if (lo >= hi) return hi;
        }
    }
    return hi;
}

int gpt2_sample(const float *logits, int V, const Gpt2Sampling *s, DpRng *rng, void *scratch) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (s->temperature <= 0.0f || !rng) return best;
    Cand *c = scratch;
    float inv_t = 1.0f / s->temperature, maxv = logits[best];
    for (int v = 0; v < V; v++) {
        c[v].p = expf((logits[v] - maxv) * inv_t);
        c[v].i = v;
    }
    int n = V;
    if (s->top_k > 0 && s->top_k < n) n = select_top(c, n, s->top_k, 1);
    if (s->top_p > 0.0f && s->top_p < 1.0f) {
        double sum = 0.0;
        for (int k = 0; k < n; k++) sum += c[k].p;
        n = select_top(c, n, s->top_p * sum, 0);
    }
    double sum = 0.0;
    for (int k = 0; k < n; k++) sum += c[k].p;
    double u = dp_rng_uniform(rng) * sum, acc = 0.0;
    for (int k = 0; k < n; k++) {
        acc += c[k].p;
        if (u < acc) return c[k].i;
    }
    return c[n - 1].i;
}

Gpt2Sampling gpt2_sampling_default(void) {
    Gpt2Sampling s;
    memset(&s, 0, sizeof s);
    s.max_new_tokens = 32;
    s.temperature = 0.0f;
    s.top_k = 0;
    s.top_p = 1.0f;
    s.eos_id = -1;
    return s;
}

DpStatus gpt2_generate(Gpt2Generator *g, int n_seqs, const int *const *prompts,
                       const int *prompt_len, const Gpt2Sampling *s, DpRng *rng, int **out,
                       int *out_len, DpError *err) {
    if (n_seqs < 1 || n_seqs > g->max_seqs)
        return dp_fail(err, DP_ERR_INVAL, "gpt2_generate: n_seqs = %d outside [1, %d]", n_seqs,
                       g->max_seqs);
    int V = g->model->config.vocab_size;
    int total = 0;
    for (int i = 0; i < n_seqs; i++) {
        if (prompt_len[i] < 1 || prompt_len[i] > g->max_ctx)
            return dp_fail(err, DP_ERR_INVAL, "gpt2_generate: prompt %d has %d tokens (need 1..%d)",
                           i, prompt_len[i], g->max_ctx);
        total += prompt_len[i];
        out_len[i] = 0;
    }
    int *seq = dp_malloc((size_t)total * sizeof(int));
    int *tok = dp_malloc((size_t)total * sizeof(int));
    int *active = dp_calloc((size_t)n_seqs, sizeof(int));
    DpStatus st = DP_OK;
    if (!seq || !tok || !active) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    int k = 0;
    for (int i = 0; i < n_seqs; i++) {
        gpt2_generator_reset(g, i);
        for (int j = 0; j < prompt_len[i]; j++) {
            seq[k] = i;
            tok[k++] = prompts[i][j];
        }
        active[i] = s->max_new_tokens > 0;
    }
    const float *logits = NULL;
    if ((st = gpt2_generator_feed(g, total, seq, tok, &logits, err))) goto out;
    for (;;) {
        int n = 0;
        for (int i = 0; i < n_seqs; i++) {
            if (!active[i]) continue;
            int t = gpt2_sample(logits + (size_t)i * V, V, s, rng, g->sample_scratch);
            out[i][out_len[i]++] = t;
            int stop = out_len[i] >= s->max_new_tokens || t == s->eos_id ||
                       g->len[i] >= g->max_ctx ||
                       (s->stop && s->stop(s->stop_ctx, i, out[i], out_len[i]));
            if (stop) {
                active[i] = 0;
                continue;
            }
            seq[n] = i;
            tok[n++] = t;
        }
        if (n == 0) break;
        if ((st = gpt2_generator_feed(g, n, seq, tok, &logits, err))) goto out;
    }
out:
    free(seq);
    free(tok);
    free(active);
    return st;
}
