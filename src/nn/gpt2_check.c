/* gpt2_check: compares the engine with reference vectors written by
 * tools/gpt2_reference.py (PyTorch), so `driftpilot nn check`, the demo and
 * the unit tests run one and the same check.
 *
 * Sequence: forward (logits, loss), backward (every gradient), two AdamW
 * steps from the original weights with fresh optimizer state (weights after
 * each), then greedy decoding through the KV cache.  The model's weights,
 * gradients and optimizer state are restored to what they were before. */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Gradient/AdamW groups: tensors whose HF name contains the key. */
static const struct {
    const char *label;
    const char *match;
} grad_groups[] = {
    {"wte", "wte."},          {"wpe", "wpe."},          {"ln_1", ".ln_1."},
    {"attn.c_attn", ".attn.c_attn."}, {"attn.c_proj", ".attn.c_proj."}, {"ln_2", ".ln_2."},
    {"mlp.c_fc", ".mlp.c_fc."}, {"mlp.c_proj", ".mlp.c_proj."}, {"ln_f", "ln_f."},
};
#define N_GRAD_GROUPS ((int)(sizeof grad_groups / sizeof grad_groups[0]))

static Gpt2CheckGroup *new_group(Gpt2CheckReport *r, const char *name, double rtol, double atol) {
    Gpt2CheckGroup *g = &r->groups[r->n_groups++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    g->tol_rel = rtol;
    g->tol_abs = atol;
    g->pass = 1;
    return g;
}

#define ADAM_LR 1e-3
#define ADAM_EPS 1e-8

/* Adam's first step per unit of lr: g / (|g| + eps). */
static double adam_dir(double g) { return g / (fabs(g) + ADAM_EPS); }

/* Compares n values.  A value passes when |d| <= atol or |d| <= rtol*|ref|
 * (rtol 0: absolute only).  With gradients (ours gq, reference gr), atol
 * grows by steps * lr * |adam_dir(gq) - adam_dir(gr)| (see nn.h). */
static void compare_grad(Gpt2CheckGroup *g, const float *ours, const float *ref, size_t n,
                         const float *gq, const float *gr, int steps, size_t skip_lo,
                         size_t skip_hi) {
    size_t skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (i >= skip_lo && i < skip_hi) {
            skipped++;
            continue;
        }
        double d = fabs((double)ours[i] - (double)ref[i]), r = fabs((double)ref[i]);
        if (!(d == d)) d = INFINITY; /* NaN fails */
        if (d > g->max_abs) g->max_abs = d;
        if (r > g->tol_abs && d / r > g->max_rel) g->max_rel = d / r;
        double atol = g->tol_abs;
        if (gq && gr) {
            double extra = steps * ADAM_LR * fabs(adam_dir(gq[i]) - adam_dir(gr[i]));
            if (extra > 0.1 * atol) g->n_widened++;
            atol += extra;
        }
        double w = d / atol;
        if (g->tol_rel > 0.0 && r > 0.0) {
            double wr = d / (g->tol_rel * r);
            if (wr < w) w = wr;
        }
        if (w > g->worst) g->worst = w;
    }
    g->n += n - skipped;
    g->n_skipped += skipped;
    g->pass = g->worst <= 1.0;
}

static void compare(Gpt2CheckGroup *g, const float *ours, const float *ref, size_t n) {
    compare_grad(g, ours, ref, n, NULL, NULL, 0, 0, 0);
}

static DpStatus get(const Safetensors *st, const char *name, const SafetensorsTensor **t,
                    DpError *err) {
    *t = safetensors_find(st, name);
    if (!*t) return dp_fail(err, DP_ERR_PARSE, "%s: tensor '%s' is missing", st->source, name);
    return DP_OK;
}

/* Compares every named tensor (prefix+name) of the model block `ours`
 * against vectors "<what>.<prefix><name>", grouped.  For AdamW, our_grads
 * (the whole gradient block of step 1) and gref_tmp (scratch for the
 * reference gradient) set the per-weight tolerance. */
static DpStatus compare_named(const Gpt2 *m, const Safetensors *st, const char *what,
                              const char *prefix, const float *ours, Gpt2CheckGroup *groups,
                              float *tmp, const float *our_grads, float *gref_tmp, int steps,
                              DpError *err) {
    int n = gpt2_n_named_tensors(&m->config);
    for (int i = 0; i < n; i++) {
        Gpt2TensorInfo ti;
        gpt2_tensor_info(&m->config, i, &ti);
        char key[128];
        snprintf(key, sizeof key, "%s.%s%s", what, prefix, ti.name);
        const SafetensorsTensor *t;
        DpStatus s = get(st, key, &t, err);
        if (!s) s = safetensors_to_f32(st, t, tmp, ti.numel, err);
        if (s) return s;
        if (our_grads) {
            snprintf(key, sizeof key, "grad.%s%s", prefix, ti.name);
            if ((s = get(st, key, &t, err)) ||
                (s = safetensors_to_f32(st, t, gref_tmp, ti.numel, err)))
                return s;
        }
        char padded[80];
        snprintf(padded, sizeof padded, ".%s", ti.name);
        int gi = 0;
        for (int k = 0; k < N_GRAD_GROUPS; k++)
            if (strstr(padded, grad_groups[k].match)) gi = k;
        /* AdamW groups leave out the attention key bias (see nn.h). */
        size_t lo = 0, hi = 0;
        if (our_grads && strstr(ti.name, "attn.c_attn.bias")) {
            lo = (size_t)m->config.n_embd;
            hi = 2 * lo;
        }
        compare_grad(&groups[gi], ours + ti.offset, tmp, ti.numel,
                     our_grads ? our_grads + ti.offset : NULL, our_grads ? gref_tmp : NULL, steps,
                     lo, hi);
        if (getenv("NN_CHECK_DEBUG")) {
            size_t w = 0;
            for (size_t j = 0; j < ti.numel; j++)
                if (fabsf(ours[ti.offset + j] - tmp[j]) > fabsf(ours[ti.offset + w] - tmp[w])) w = j;
            fprintf(stderr, "%s %s: worst [%zu] ours %.9g ref %.9g\n", what, ti.name, w,
                    ours[ti.offset + w], tmp[w]);
        }
    }
    return DP_OK;
}

DpStatus gpt2_check_vectors(Gpt2 *m, const char *path, double scale, Gpt2CheckReport *rep,
                            DpError *err) {
    memset(rep, 0, sizeof *rep);
    if (!(scale > 0.0)) scale = 1.0;
    const Gpt2Config *c = &m->config;
    Safetensors st;
    DpStatus s = safetensors_open(path, &st, err);
    if (s) return s;
    int *inputs = NULL, *targets = NULL, *prompt = NULL, *greedy = NULL, *gen = NULL;
    float *ref = NULL, *gref = NULL, *grads1 = NULL, *saved = NULL, *saved_g = NULL, *saved_m = NULL, *saved_v = NULL;
    Gpt2Generator *gen_ctx = NULL;
    const SafetensorsTensor *t_in, *t_tg, *t_lg, *t_loss, *t_prompt, *t_greedy;
    if ((s = get(&st, "inputs", &t_in, err)) || (s = get(&st, "targets", &t_tg, err)) ||
        (s = get(&st, "logits", &t_lg, err)) || (s = get(&st, "loss", &t_loss, err)) ||
        (s = get(&st, "prompt", &t_prompt, err)) || (s = get(&st, "greedy", &t_greedy, err)))
        goto out;
    if (t_in->ndim != 2 || t_in->shape[0] < 1 || t_in->shape[1] < 1 ||
        t_in->shape[1] > c->n_positions || t_in->shape[0] > 4096) {
        s = dp_fail(err, DP_ERR_INVAL, "%s: tensor 'inputs' must be [B, T] with T <= %d", path,
                    c->n_positions);
        goto out;
    }
    int B = (int)t_in->shape[0], T = (int)t_in->shape[1], V = c->vocab_size;
    size_t N = (size_t)B * T;
    inputs = dp_malloc(N * sizeof(int));
    targets = dp_malloc(N * sizeof(int));
    size_t ref_n = N * (size_t)V > m->n_params ? N * (size_t)V : m->n_params;
    ref = dp_malloc(ref_n * sizeof(float));
    saved = dp_malloc(m->n_params * sizeof(float));
    gref = dp_malloc(m->n_params * sizeof(float));
    grads1 = dp_malloc(m->n_params * sizeof(float));
    if (!inputs || !targets || !ref || !saved || !gref || !grads1) {
        s = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((s = safetensors_to_i32(&st, t_in, inputs, N, err)) ||
        (s = safetensors_to_i32(&st, t_tg, targets, N, err)) ||
        (s = gpt2_reserve(m, B, T, GPT2_RESERVE_TRAIN, err)))
        goto out;
    /* keep everything the check changes, to restore it at the end */
    saved_g = dp_malloc(m->n_params * sizeof(float));
    saved_m = dp_malloc(m->n_params * sizeof(float));
    saved_v = dp_malloc(m->n_params * sizeof(float));
    if (!saved_g || !saved_m || !saved_v) {
        s = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t pb = m->n_params * sizeof(float);
    memcpy(saved, m->params_memory, pb);
    memcpy(saved_g, m->grads_memory, pb);
    memcpy(saved_m, m->adam_m, pb);
    memcpy(saved_v, m->adam_v, pb);

    const char *prefix = "";
    {
        Gpt2TensorInfo ti;
        gpt2_tensor_info(c, 0, &ti);
        if (safetensors_find(&st, "grad.transformer.wte.weight")) prefix = "transformer.";
    }
    double rt = 1e-4 * scale, at = 1e-5 * scale;
    // forward
    float loss = 0.0f;
    if ((s = gpt2_forward(m, inputs, targets, NULL, B, T, &loss, err))) goto out;
    if ((s = safetensors_to_f32(&st, t_lg, ref, N * (size_t)V, err))) goto out;
    compare(new_group(rep, "logits", rt, at), m->logits, ref, N * (size_t)V);
    float ref_loss;
    if ((s = safetensors_to_f32(&st, t_loss, &ref_loss, 1, err))) goto out;
    compare(new_group(rep, "loss", 0.0, 1e-5 * scale), &loss, &ref_loss, 1);
    // backward
    gpt2_zero_grad(m);
    if ((s = gpt2_backward(m, err))) goto out;
    Gpt2CheckGroup *gg = &rep->groups[rep->n_groups];
    for (int k = 0; k < N_GRAD_GROUPS; k++) {
        char name[32];
        snprintf(name, sizeof name, "grad.%s", grad_groups[k].label);
        new_group(rep, name, rt, at);
    }
    if ((s = compare_named(m, &st, "grad", prefix, m->grads_memory, gg, ref, NULL, NULL, 0, err)))
        goto out;
    memcpy(grads1, m->grads_memory, pb);
    // two AdamW steps from the original weights, fresh state
    memset(m->adam_m, 0, pb);
    memset(m->adam_v, 0, pb);
    Gpt2AdamW opt = gpt2_adamw_default();
    for (int step = 1; step <= 2; step++) {
        gpt2_zero_grad(m);
        if ((s = gpt2_forward(m, inputs, targets, NULL, B, T, NULL, err)) ||
            (s = gpt2_backward(m, err)))
            goto out;
        gpt2_adamw_step(m, &opt, step);
        char name[32];
        snprintf(name, sizeof name, "adamw%d", step);
        Gpt2CheckGroup one[N_GRAD_GROUPS];
        for (int k = 0; k < N_GRAD_GROUPS; k++) {
            memset(&one[k], 0, sizeof one[k]);
            one[k].tol_abs = 1e-6 * scale;
            one[k].pass = 1;
        }
        if ((s = compare_named(m, &st, name, prefix, m->params_memory, one, ref, grads1, gref,
                                step, err))) goto out;
        Gpt2CheckGroup *g = new_group(rep, name, 0.0, 1e-6 * scale);
        for (int k = 0; k < N_GRAD_GROUPS; k++) {
            if (one[k].max_abs > g->max_abs) g->max_abs = one[k].max_abs;
            if (one[k].max_rel > g->max_rel) g->max_rel = one[k].max_rel;
            if (one[k].worst > g->worst) g->worst = one[k].worst;
            g->n += one[k].n;
            g->n_widened += one[k].n_widened;
            g->n_skipped += one[k].n_skipped;
        }
        g->pass = g->worst <= 1.0;
    }
    memcpy(m->params_memory, saved, pb);
    // greedy decoding via the KV cache
    {
        int P = (int)t_prompt->numel, G = (int)t_greedy->numel;
        if (P < 1 || P > c->n_positions || G < 1 || G > 4096) {
            s = dp_fail(err, DP_ERR_INVAL, "%s: tensors 'prompt'/'greedy' have bad sizes", path);
            goto out;
        }
        prompt = dp_malloc((size_t)P * sizeof(int));
        greedy = dp_malloc((size_t)G * sizeof(int));
        gen = dp_calloc((size_t)G, sizeof(int));
        if (!prompt || !greedy || !gen) {
            s = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        if ((s = safetensors_to_i32(&st, t_prompt, prompt, (size_t)P, err)) ||
            (s = safetensors_to_i32(&st, t_greedy, greedy, (size_t)G, err)) ||
            (s = gpt2_generator_create(m, 1, 0, 64, &gen_ctx, err)))
            goto out;
        Gpt2Sampling smp = gpt2_sampling_default();
        smp.max_new_tokens = G;
        int out_len = 0;
        const int *prompts[1] = {prompt};
        int *outs[1] = {gen};
        if ((s = gpt2_generate(gen_ctx, 1, prompts, &P, &smp, NULL, outs, &out_len, err)))
            goto out;
        Gpt2CheckGroup *g = new_group(rep, "greedy", 0.0, 0.0);
        g->n = (size_t)G;
        for (int i = 0; i < G; i++)
            if (i >= out_len || gen[i] != greedy[i]) g->max_abs += 1.0;
        g->worst = g->max_abs > 0.0 ? INFINITY : 0.0;
        g->pass = g->max_abs == 0.0;
    }
    rep->pass = 1;
    for (int i = 0; i < rep->n_groups; i++) rep->pass &= rep->groups[i].pass;
out:
    if (saved_v) {
        memcpy(m->params_memory, saved, m->n_params * sizeof(float));
        memcpy(m->grads_memory, saved_g, m->n_params * sizeof(float));
        memcpy(m->adam_m, saved_m, m->n_params * sizeof(float));
        memcpy(m->adam_v, saved_v, m->n_params * sizeof(float));
    }
    gpt2_generator_destroy(gen_ctx);
    free(inputs);
    free(targets);
    free(prompt);
    free(greedy);
    free(gen);
    free(ref);
    free(gref);
    free(grads1);
    free(saved);
    free(saved_g);
    free(saved_m);
    free(saved_v);
    safetensors_free(&st);
    return s;
}

void gpt2_check_print(const Gpt2CheckReport *r, FILE *out) {
    fprintf(out, "%-18s %10s %12s %12s %12s  %s\n", "group", "values", "max abs err",
            "max rel err", "tolerance", "result");
    for (int i = 0; i < r->n_groups; i++) {
        const Gpt2CheckGroup *g = &r->groups[i];
        char tol[48];
        if (!strcmp(g->name, "greedy"))
            snprintf(tol, sizeof tol, "exact");
        else if (g->tol_rel > 0.0)
            snprintf(tol, sizeof tol, "%.0e/%.0e", g->tol_rel, g->tol_abs);
        else
            snprintf(tol, sizeof tol, "%.0e abs", g->tol_abs);
        if (!strcmp(g->name, "greedy"))
            fprintf(out, "%-18s %10zu %12s %12s %12s  %s\n", g->name, g->n,
                    g->max_abs > 0 ? "mismatch" : "0", "-", tol, g->pass ? "ok" : "FAIL");
        else
            fprintf(out, "%-18s %10zu %12.3e %12.3e %12s  %s", g->name, g->n, g->max_abs,
                    g->max_rel, tol, g->pass ? "ok" : "FAIL");
        if (g->n_skipped) fprintf(out, " (key bias left out: %zu", g->n_skipped);
        if (g->n_widened)
            fprintf(out, "%s%zu widened by the gradient difference", g->n_skipped ? "; " : " (",
                    g->n_widened);
        if (g->n_skipped || g->n_widened) fputc(')', out);
        if (strcmp(g->name, "greedy")) fputc('\n', out);
    }
    fprintf(out, "%s\n", r->pass ? "all groups within tolerance" : "SOME GROUPS OUT OF TOLERANCE");
}
