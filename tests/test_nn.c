/* Tests of the GPT-2 engine (model half of nn): reference vectors made by
 * PyTorch, a model saved by Hugging Face, finite-difference gradients, the
 * loss mask, AdamW details, save/load round trips, KV-cache generation, and
 * refusal of bad files with messages that name file and field. */
#include "nn.h"
#include "test.h"

#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

#define DATA DP_TEST_DATA

static Gpt2 *load(const char *dir) {
    Gpt2 *m = NULL;
    DpError err = {0};
    if (gpt2_load_dir(dir, &m, &err) != DP_OK) fprintf(stderr, "  load %s: %s\n", dir, err.msg);
    return m;
}

static void run_vectors(const char *dir) {
    char mdir[512], vec[512];
    snprintf(mdir, sizeof mdir, "%s/%s", DATA, dir);
    snprintf(vec, sizeof vec, "%s/%s/expected.safetensors", DATA, dir);
    Gpt2 *m = load(mdir);
    REQUIRE(m != NULL);
    Gpt2CheckReport rep;
    DpError err = {0};
    DpStatus s = gpt2_check_vectors(m, vec, 1.0, &rep, &err);
    EXPECT_MSG(s == DP_OK, "%s", err.msg);
    if (s == DP_OK) {
        if (!rep.pass) gpt2_check_print(&rep, stderr);
        EXPECT(rep.pass);
        EXPECT(rep.n_groups >= 14);
    }
    gpt2_free(m);
}

static void test_reference_vectors(void) { run_vectors("gpt2-tiny"); }
static void test_vectors_noprefix_maskbuffer(void) { run_vectors("nn-noprefix-maskbuf"); }
static void test_vectors_full_context(void) { run_vectors("nn-fullctx"); }
static void test_vectors_vocab50257(void) { run_vectors("nn-vocab50257"); }

/* The check must fail when the model is wrong. */
static void test_check_detects_errors(void) {
    Gpt2 *m = load(DATA "/gpt2-tiny");
    REQUIRE(m != NULL);
    m->params.lnfb[0] += 1e-3f;
    Gpt2CheckReport rep;
    DpError err = {0};
    REQUIRE(gpt2_check_vectors(m, DATA "/gpt2-tiny/expected.safetensors", 1.0, &rep, &err) == DP_OK);
    EXPECT(!rep.pass);
    /* and the check restores the weights it trains */
    EXPECT_NEAR(m->params.lnfb[0] - 1e-3f, 0.0f, 1.0);
    gpt2_free(m);
}

static char *read_text(const char *path) {
    char *t = NULL;
    DpError err;
    if (dp_read_file(path, &t, NULL, &err)) return NULL;
    return t;
}

/* A model saved by Hugging Face itself, without config.json. */
static void test_hf_golden(void) {
    char *text = read_text(DATA "/tiny-gpt2-golden/gpt2_tiny_golden.json");
    REQUIRE(text != NULL);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    REQUIRE(root != NULL);
    char *cfg_text = json_dumps(json_object_get(root, "config"), 0);
    Gpt2Config cfg;
    DpError err = {0};
    EXPECT_MSG(gpt2_config_parse(cfg_text, "golden config", &cfg, &err) == DP_OK, "%s", err.msg);
    free(cfg_text);
    EXPECT_EQ_INT(cfg.n_inner, 64);
    EXPECT_EQ_INT(cfg.n_positions, 16);
    Gpt2 *m = NULL;
    DpStatus s = gpt2_load_files(&cfg, DATA "/tiny-gpt2-golden/model.safetensors", &m, &err);
    EXPECT_MSG(s == DP_OK, "%s", err.msg);
    if (s == DP_OK) {
        json_t *ids = json_object_get(root, "input_ids"), *lg = json_object_get(root, "logits");
        int T = (int)json_array_size(ids), V = cfg.vocab_size;
        int in[64];
        for (int i = 0; i < T; i++) in[i] = (int)json_integer_value(json_array_get(ids, (size_t)i));
        REQUIRE(gpt2_reserve(m, 1, T, GPT2_RESERVE_INFER, &err) == DP_OK);
        REQUIRE(gpt2_forward(m, in, NULL, NULL, 1, T, NULL, &err) == DP_OK);
        REQUIRE((int)json_array_size(lg) == T * V);
        double worst = 0.0;
        for (int i = 0; i < T * V; i++) {
            double r = json_number_value(json_array_get(lg, (size_t)i));
            double d = fabs(m->logits[i] - r);
            if (d > worst) worst = d;
        }
        EXPECT_MSG(worst < 1e-5, "max logit error %g", worst);
        int best = 0;
        for (int v = 1; v < V; v++)
            if (m->logits[(size_t)(T - 1) * V + v] > m->logits[(size_t)(T - 1) * V + best]) best = v;
        EXPECT_EQ_INT(best, 12);
    }
    gpt2_free(m);
    json_decref(root);
}

static void tmpdir(char *out, size_t cap, const char *what) {
    snprintf(out, cap, "/tmp/test_nn_%s_%ld", what, (long)getpid());
}

static void test_save_load_roundtrip(void) {
    Gpt2 *m = load(DATA "/gpt2-tiny");
    REQUIRE(m != NULL);
    char dir[256], tok[256], path[512], path2[512];
    tmpdir(dir, sizeof dir, "save");
    tmpdir(tok, sizeof tok, "tok");
    DpError err = {0};
    REQUIRE(dp_mkdirs(tok, &err) == DP_OK);
    snprintf(path, sizeof path, "%s/vocab.json", tok);
    REQUIRE(dp_write_file_atomic(path, "{\"a\": 0}", 8, &err) == DP_OK);
    snprintf(path, sizeof path, "%s/merges.txt", tok);
    REQUIRE(dp_write_file_atomic(path, "#version: 0.2\na b\n", 18, &err) == DP_OK);
    EXPECT_MSG(gpt2_save_dir(m, dir, tok, &err) == DP_OK, "%s", err.msg);
    Gpt2 *m2 = load(dir);
    REQUIRE(m2 != NULL);
    EXPECT(memcmp(&m->config, &m2->config, sizeof m->config) == 0);
    EXPECT_EQ_INT(m2->n_params, m->n_params);
    EXPECT(memcmp(m->params_memory, m2->params_memory, m->n_params * sizeof(float)) == 0);
    /* saving the loaded copy again gives the same bytes */
    char dir2[256];
    tmpdir(dir2, sizeof dir2, "save2");
    EXPECT(gpt2_save_dir(m2, dir2, NULL, &err) == DP_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(path2, sizeof path2, "%s/model.safetensors", dir2);
    char h1[65], h2[65];
    EXPECT(dp_sha256_file(path, h1, &err) == DP_OK && dp_sha256_file(path2, h2, &err) == DP_OK);
    EXPECT_STREQ(h1, h2);
    /* HF conventions in the header */
    Safetensors st;
    REQUIRE(safetensors_open(path, &st, &err) == DP_OK);
    EXPECT(safetensors_find(&st, "transformer.h.1.mlp.c_proj.weight") != NULL);
    EXPECT(safetensors_find(&st, "lm_head.weight") == NULL);
    const SafetensorsTensor *t = safetensors_find(&st, "transformer.h.0.attn.c_attn.weight");
    EXPECT(t && t->shape[0] == 32 && t->shape[1] == 96 && t->dtype == SAFETENSORS_F32);
    safetensors_free(&st);
    char *cfg = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    cfg = read_text(path);
    EXPECT(cfg && strstr(cfg, "\"eos_token_id\": 96") && strstr(cfg, "GPT2LMHeadModel"));
    free(cfg);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    cfg = read_text(path);
    EXPECT(cfg && !strcmp(cfg, "#version: 0.2\na b\n"));
    free(cfg);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", dir, dir2, tok);
    EXPECT(system(cmd) == 0);
    gpt2_free(m);
    gpt2_free(m2);
}

static double masked_loss(Gpt2 *m, const int *in, const int *tg, const float *mask, int B, int T) {
    float loss = 0.0f;
    DpError err;
    if (gpt2_forward(m, in, tg, mask, B, T, &loss, &err) != DP_OK) return NAN;
    return loss;
}

/* Central differences on a few coordinates of every tensor, with a mask. */
static void test_finite_differences(void) {
    Gpt2 *m = load(DATA "/gpt2-tiny");
    REQUIRE(m != NULL);
    enum { B = 2, T = 6 };
    int in[B * T], tg[B * T];
    float mask[B * T];
    DpRng rng;
    dp_rng_seed(&rng, 7);
    for (int i = 0; i < B * T; i++) {
        in[i] = (int)dp_rng_below(&rng, 97);
        tg[i] = (int)dp_rng_below(&rng, 97);
        mask[i] = (i % 3 == 0) ? 0.0f : (float)(0.5 + dp_rng_uniform(&rng));
    }
    DpError err = {0};
    REQUIRE(gpt2_reserve(m, B, T, GPT2_RESERVE_TRAIN, &err) == DP_OK);
    masked_loss(m, in, tg, mask, B, T);
    gpt2_zero_grad(m);
    REQUIRE(gpt2_backward(m, &err) == DP_OK);
    float *grads = malloc(m->n_params * sizeof(float));
    memcpy(grads, m->grads_memory, m->n_params * sizeof(float));
    int n = gpt2_n_named_tensors(&m->config), bad = 0, checked = 0;
    for (int i = 0; i < n; i++) {
        Gpt2TensorInfo ti;
        gpt2_tensor_info(&m->config, i, &ti);
        size_t pick[3];
        pick[0] = 0;
        for (size_t j = 1; j < ti.numel; j++) /* largest gradient, so the check means something */
            if (fabsf(grads[ti.offset + j]) > fabsf(grads[ti.offset + pick[0]])) pick[0] = j;
        pick[1] = dp_rng_below(&rng, ti.numel);
        pick[2] = dp_rng_below(&rng, ti.numel);
        for (int k = 0; k < 3; k++) {
            size_t at = ti.offset + pick[k];
            float orig = m->params_memory[at];
            double h = 2e-3;
            m->params_memory[at] = orig + (float)h;
            double lp = masked_loss(m, in, tg, mask, B, T);
            m->params_memory[at] = orig - (float)h;
            double lm = masked_loss(m, in, tg, mask, B, T);
            m->params_memory[at] = orig;
            double fd = (lp - lm) / (2 * h), g = grads[at];
            checked++;
            if (fabs(fd - g) > 2e-3 + 3e-2 * fabs(g)) {
                bad++;
                fprintf(stderr, "  fd %s[%zu]: finite difference %g, backward %g\n", ti.name,
                        pick[k], fd, g);
            }
        }
    }
    EXPECT_EQ_INT(bad, 0);
    EXPECT_EQ_INT(checked, 3 * n);
    free(grads);
    gpt2_free(m);
}

static void test_loss_mask(void) {
    Gpt2 *m = load(DATA "/gpt2-tiny");
    REQUIRE(m != NULL);
    enum { B = 2, T = 5 };
    int in[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) {
        in[i] = (i * 7 + 3) % 97;
        tg[i] = (i * 11 + 5) % 97;
    }
    DpError err = {0};
    REQUIRE(gpt2_reserve(m, B, T, GPT2_RESERVE_TRAIN, &err) == DP_OK);
    /* per-position nll from the logits */
    REQUIRE(gpt2_forward(m, in, NULL, NULL, B, T, NULL, &err) == DP_OK);
    double nll[B * T];
    for (int i = 0; i < B * T; i++) {
        const float *lg = m->logits + (size_t)i * 97;
        double mx = lg[0], s = 0.0;
        for (int v = 0; v < 97; v++) mx = lg[v] > mx ? lg[v] : mx;
        for (int v = 0; v < 97; v++) s += exp(lg[v] - mx);
        nll[i] = log(s) + mx - lg[tg[i]];
    }
    float mask[B * T] = {0, 0, 1, 1, 1, 0, 0, 0, 2, 0};
    double want = (nll[2] + nll[3] + nll[4] + 2 * nll[8]) / 5.0;
    EXPECT_NEAR(masked_loss(m, in, tg, mask, B, T), want, 1e-5);
    /* masked positions get no gradient through their logits: compare with the
     * same batch where masked targets are changed */
    gpt2_zero_grad(m);
    REQUIRE(gpt2_backward(m, &err) == DP_OK);
    float *g1 = malloc(m->n_params * sizeof(float));
    memcpy(g1, m->grads_memory, m->n_params * sizeof(float));
    int tg2[B * T];
    memcpy(tg2, tg, sizeof tg);
    tg2[0] = 1;
    tg2[9] = 2;
    masked_loss(m, in, tg2, mask, B, T);
    gpt2_zero_grad(m);
    REQUIRE(gpt2_backward(m, &err) == DP_OK);
    double diff = 0.0;
    for (size_t i = 0; i < m->n_params; i++) diff = fmax(diff, fabs(g1[i] - m->grads_memory[i]));
    EXPECT_NEAR(diff, 0.0, 1e-9);
    /* all-ones mask equals no mask */
    float ones[B * T];
    for (int i = 0; i < B * T; i++) ones[i] = 1.0f;
    EXPECT_NEAR(masked_loss(m, in, tg, ones, B, T), masked_loss(m, in, tg, NULL, B, T), 1e-6);
    /* all-zero mask: loss 0 and no gradient */
    float zeros[B * T] = {0};
    EXPECT_NEAR(masked_loss(m, in, tg, zeros, B, T), 0.0, 0.0);
    gpt2_zero_grad(m);
    REQUIRE(gpt2_backward(m, &err) == DP_OK);
    EXPECT_NEAR(gpt2_clip_grad_norm(m, 0.0f), 0.0, 0.0);
    /* backward without a fresh forward with targets is refused */
    EXPECT(gpt2_backward(m, &err) == DP_ERR_STATE);
    /* bad ids are refused */
    in[3] = 97;
    EXPECT(gpt2_forward(m, in, tg, NULL, B, T, NULL, &err) == DP_ERR_INVAL);
    free(g1);
    gpt2_free(m);
}

static void test_adamw_decay_and_clip(void) {
    Gpt2 *m = load(DATA "/gpt2-tiny");
    REQUIRE(m != NULL);
    DpError err = {0};
    REQUIRE(gpt2_reserve(m, 1, 4, GPT2_RESERVE_TRAIN, &err) == DP_OK);
    float wte0 = m->params.wte[5], b0 = m->params.qkvb[3], ln0 = m->params.ln1w[2];
    float fc0 = m->params.fcw[7];
    Gpt2AdamW opt = gpt2_adamw_default();
    opt.decay_all = 0;
    opt.weight_decay = 0.1f;
    gpt2_zero_grad(m); /* zero gradients: only weight decay moves anything */
    gpt2_adamw_step(m, &opt, 1);
    EXPECT_NEAR(m->params.wte[5], wte0 * (1.0f - 1e-4f), 1e-9);
    EXPECT_NEAR(m->params.fcw[7], fc0 * (1.0f - 1e-4f), 1e-9);
    EXPECT(m->params.qkvb[3] == b0);
    EXPECT(m->params.ln1w[2] == ln0);
    Gpt2TensorInfo ti;
    EXPECT(gpt2_tensor_info(&m->config, 2, &ti) && !strcmp(ti.name, "h.0.ln_1.weight") && ti.no_decay);
    EXPECT(gpt2_tensor_info(&m->config, 0, &ti) && !strcmp(ti.name, "wte.weight") && !ti.no_decay);
    /* clipping */
    for (size_t i = 0; i < m->n_params; i++) m->grads_memory[i] = 0.01f;
    float norm = gpt2_clip_grad_norm(m, 0.5f);
    EXPECT_NEAR(norm, 0.01 * sqrt((double)m->n_params), 1e-3);
    EXPECT_NEAR(gpt2_clip_grad_norm(m, 0.0f), 0.5, 1e-4);
    gpt2_free(m);
}

/* Greedy by full forward over the growing sequence. */
static void greedy_full(Gpt2 *m, const int *prompt, int P, int n, int *out) {
    int seq[64];
    memcpy(seq, prompt, (size_t)P * sizeof(int));
    DpError err;
    int V = m->config.vocab_size;
    for (int k = 0; k < n; k++) {
        int T = P + k;
        if (gpt2_forward(m, seq, NULL, NULL, 1, T, NULL, &err)) return;
        const float *lg = m->logits + (size_t)(T - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (lg[v] > lg[best]) best = v;
        out[k] = seq[T] = best;
    }
}

static void test_generate_kv_cache(void) {
    Gpt2 *m = load(DATA "/gpt2-tiny");
    REQUIRE(m != NULL);
    DpError err = {0};
    REQUIRE(gpt2_reserve(m, 1, 40, GPT2_RESERVE_INFER, &err) == DP_OK);
    int p0[] = {5, 17, 3}, p1[] = {90, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, p2[] = {42};
    const int *prompts[3] = {p0, p1, p2};
    int plen[3] = {3, 11, 1};
    enum { NEW = 12 };
    int full[3][NEW], one[3][NEW], batch[3][NEW];
    Gpt2Generator *g = NULL;
    REQUIRE(gpt2_generator_create(m, 3, 0, 4, &g, &err) == DP_OK); /* max_rows 4: chunked prefill */
    Gpt2Sampling s = gpt2_sampling_default();
    s.max_new_tokens = NEW;
    for (int i = 0; i < 3; i++) {
        greedy_full(m, prompts[i], plen[i], NEW, full[i]);
        int len = 0;
        int *o[1] = {one[i]};
        REQUIRE(gpt2_generate(g, 1, &prompts[i], &plen[i], &s, NULL, o, &len, &err) == DP_OK);
        EXPECT_EQ_INT(len, NEW);
    }
    int *outs[3] = {batch[0], batch[1], batch[2]};
    int lens[3];
    REQUIRE(gpt2_generate(g, 3, prompts, plen, &s, NULL, outs, lens, &err) == DP_OK);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < NEW; k++) {
            EXPECT_EQ_INT(one[i][k], full[i][k]);
            EXPECT_EQ_INT(batch[i][k], full[i][k]);
        }
    /* KV-cache logits equal full-forward logits */
    const float *lg = NULL;
    gpt2_generator_reset(g, -1);
    int seqs[11] = {0};
    REQUIRE(gpt2_generator_feed(g, 11, seqs, p1, &lg, &err) == DP_OK);
    EXPECT_EQ_INT(gpt2_generator_length(g, 0), 11);
    REQUIRE(gpt2_forward(m, p1, NULL, NULL, 1, 11, NULL, &err) == DP_OK);
    double worst = 0.0;
    for (int v = 0; v < 97; v++) worst = fmax(worst, fabs(lg[v] - m->logits[10 * 97 + v]));
    EXPECT_MSG(worst < 1e-4, "kv vs full logits differ by %g", worst);
    /* eos stops a sequence and is included */
    s.eos_id = full[0][2];
    int len0 = 0;
    int *o0[1] = {one[0]};
    REQUIRE(gpt2_generate(g, 1, &prompts[0], &plen[0], &s, NULL, o0, &len0, &err) == DP_OK);
    int first = 0;
    while (full[0][first] != s.eos_id) first++;
    EXPECT_EQ_INT(len0, first + 1);
    /* context limit: feeding past n_positions is refused */
    gpt2_generator_reset(g, -1);
    int many[70], zs[70] = {0};
    for (int i = 0; i < 70; i++) many[i] = i % 97;
    EXPECT(gpt2_generator_feed(g, 70, zs, many, &lg, &err) == DP_ERR_INVAL);
    EXPECT_EQ_INT(gpt2_generator_length(g, 0), 0);
    gpt2_generator_destroy(g);
    gpt2_free(m);
}

static int stop_after_two(void *ctx, int seq, const int *tokens, int n) {
    (void)ctx;
    (void)seq;
    (void)tokens;
    return n >= 2;
}

static void test_sampling(void) {
    enum { V = 10 };
    float lg[V] = {0.1f, 2.0f, 1.9f, -1.0f, 0.5f, 1.8f, -3.0f, 0.0f, 1.0f, 0.2f};
    void *scratch = malloc(GPT2_SAMPLE_SCRATCH(V));
    DpRng rng;
    dp_rng_seed(&rng, 3);
    Gpt2Sampling s = gpt2_sampling_default();
    EXPECT_EQ_INT(gpt2_sample(lg, V, &s, &rng, scratch), 1);
    s.temperature = 1.0f;
    s.top_k = 1;
    EXPECT_EQ_INT(gpt2_sample(lg, V, &s, &rng, scratch), 1);
    s.top_k = 3;
    int seen[V] = {0};
    for (int i = 0; i < 2000; i++) seen[gpt2_sample(lg, V, &s, &rng, scratch)]++;
    EXPECT(seen[1] > 0 && seen[2] > 0 && seen[5] > 0);
    EXPECT_EQ_INT(seen[1] + seen[2] + seen[5], 2000);
    /* top-p: probabilities of the top 3 are about .262 .237 .214 -> 0.45 keeps 2 */
    s.top_k = 0;
    s.top_p = 0.45f;
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 2000; i++) seen[gpt2_sample(lg, V, &s, &rng, scratch)]++;
    EXPECT_EQ_INT(seen[1] + seen[2], 2000);
    EXPECT(seen[2] > 700);
    /* plain temperature sampling reaches the tail */
    s.top_p = 1.0f;
    s.temperature = 2.0f;
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 4000; i++) seen[gpt2_sample(lg, V, &s, &rng, scratch)]++;
    for (int v = 0; v < V; v++) EXPECT(seen[v] > 0);
    free(scratch);

    /* stop callback through gpt2_generate, with sampling */
    Gpt2 *m = load(DATA "/gpt2-tiny");
    REQUIRE(m != NULL);
    Gpt2Generator *g = NULL;
    DpError err = {0};
    REQUIRE(gpt2_generator_create(m, 2, 32, 8, &g, &err) == DP_OK);
    Gpt2Sampling s2 = gpt2_sampling_default();
    s2.temperature = 0.8f;
    s2.top_k = 20;
    s2.top_p = 0.9f;
    s2.max_new_tokens = 30;
    s2.stop = stop_after_two;
    int p[] = {1, 2, 3};
    const int *prompts[2] = {p, p};
    int plen[2] = {3, 3}, a[30], b[30], lens[2];
    int *outs[2] = {a, b};
    REQUIRE(gpt2_generate(g, 2, prompts, plen, &s2, &rng, outs, lens, &err) == DP_OK);
    EXPECT_EQ_INT(lens[0], 2);
    EXPECT_EQ_INT(lens[1], 2);
    /* the same seed gives the same sampled continuation */
    s2.stop = NULL;
    s2.max_new_tokens = 10;
    int c1[10], c2[10], l1, l2;
    int *o1[1] = {c1}, *o2[1] = {c2};
    DpRng r1, r2;
    dp_rng_seed(&r1, 11);
    dp_rng_seed(&r2, 11);
    REQUIRE(gpt2_generate(g, 1, prompts, plen, &s2, &r1, o1, &l1, &err) == DP_OK);
    REQUIRE(gpt2_generate(g, 1, prompts, plen, &s2, &r2, o2, &l2, &err) == DP_OK);
    EXPECT_EQ_INT(l1, l2);
    EXPECT(memcmp(c1, c2, sizeof(int) * (size_t)l1) == 0);
    /* max_ctx 32 limits generation */
    s2.stop = NULL;
    s2.max_new_tokens = 30;
    REQUIRE(gpt2_generate(g, 1, prompts, plen, &s2, &rng, outs, lens, &err) == DP_OK);
    EXPECT_EQ_INT(lens[0], 30);
    int longp[31];
    for (int i = 0; i < 31; i++) longp[i] = i;
    const int *lp[1] = {longp};
    int ll = 31;
    REQUIRE(gpt2_generate(g, 1, lp, &ll, &s2, &rng, outs, lens, &err) == DP_OK);
    EXPECT_EQ_INT(lens[0], 2); /* 31 + 1 fed = 32 = max_ctx, one more sampled */
    gpt2_generator_destroy(g);
    gpt2_free(m);
}

static void test_create_random(void) {
    Gpt2Config c = {.n_layer = 4, .n_head = 2, .n_embd = 16, .n_inner = 64, .n_positions = 8,
                    .vocab_size = 11, .layer_norm_epsilon = 1e-5f, .bos_token_id = -1,
                    .eos_token_id = -1};
    Gpt2 *a = NULL, *b = NULL;
    DpError err = {0};
    REQUIRE(gpt2_create(&c, 5, &a, &err) == DP_OK);
    REQUIRE(gpt2_create(&c, 5, &b, &err) == DP_OK);
    EXPECT(memcmp(a->params_memory, b->params_memory, a->n_params * sizeof(float)) == 0);
    EXPECT_EQ_INT(a->n_params, 11 * 16 + 8 * 16 + 4 * (4 * 16 * 16 + 2 * 16 * 64 + 9 * 16 + 64) + 32);
    EXPECT(a->params.ln1w[3] == 1.0f && a->params.qkvb[0] == 0.0f);
    double ss = 0.0;
    size_t n = 4 * 16 * 16;
    for (size_t i = 0; i < n; i++) ss += (double)a->params.attprojw[i] * a->params.attprojw[i];
    EXPECT_NEAR(sqrt(ss / n), 0.02 / sqrt(8.0), 0.002);
    /* a short training run lowers the loss */
    int in[16], tg[16];
    for (int i = 0; i < 16; i++) {
        in[i] = i % 11;
        tg[i] = (i + 1) % 11;
    }
    REQUIRE(gpt2_reserve(a, 2, 8, GPT2_RESERVE_TRAIN, &err) == DP_OK);
    Gpt2AdamW opt = gpt2_adamw_default();
    opt.lr = 1e-2f;
    float first = 0.0f, last = 0.0f;
    for (int step = 1; step <= 30; step++) {
        REQUIRE(gpt2_forward(a, in, tg, NULL, 2, 8, &last, &err) == DP_OK);
        if (step == 1) first = last;
        gpt2_zero_grad(a);
        REQUIRE(gpt2_backward(a, &err) == DP_OK);
        gpt2_clip_grad_norm(a, 1.0f);
        gpt2_adamw_step(a, &opt, step);
    }
    EXPECT_MSG(last < 0.5f * first, "loss %g -> %g", first, last);
    gpt2_free(a);
    gpt2_free(b);
}

// ---- bad input ----

/* Builds a safetensors buffer from a header text and data size. */
static unsigned char *make_st(const char *hdr, size_t data_len, size_t *len) {
    size_t hl = strlen(hdr);
    *len = 8 + hl + data_len;
    unsigned char *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(((uint64_t)hl >> (8 * i)) & 0xff);
    memcpy(b + 8, hdr, hl);
    return b;
}

static void expect_parse_error(const char *hdr, size_t data_len, const char *needle) {
    size_t len;
    unsigned char *b = make_st(hdr, data_len, &len);
    Safetensors st;
    DpError err = {0};
    DpStatus s = safetensors_parse(b, len, "x.safetensors", &st, &err);
    EXPECT_MSG(s != DP_OK && strstr(err.msg, needle) && strstr(err.msg, "x.safetensors"),
               "header %s: got '%s', wanted '%s'", hdr, s ? err.msg : "ok", needle);
    if (s == DP_OK) safetensors_free(&st);
    free(b);
}

static void test_safetensors_errors(void) {
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                       "out of range");
    expect_parse_error("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                       "unknown dtype 'Q4'");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                       "tensor 'a'");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                       12, "overlap");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                       "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                       16, "overlap");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                       "shape[0]");
    expect_parse_error("{\"a\": [1,2", 0, "header JSON");
    expect_parse_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
                       "\"data_offsets\":[0,8]}}", 8, "too large");
    /* header length beyond the file, and absurd */
    unsigned char small[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    Safetensors st;
    DpError err = {0};
    EXPECT(safetensors_parse(small, 10, "t.st", &st, &err) == DP_ERR_PARSE && strstr(err.msg, "truncated"));
    unsigned char huge[10] = {0, 0, 0, 0, 0, 0, 0, 0x10, '{', '}'};
    EXPECT(safetensors_parse(huge, 10, "t.st", &st, &err) == DP_ERR_PARSE && strstr(err.msg, "limit"));
    EXPECT(safetensors_parse(huge, 5, "t.st", &st, &err) == DP_ERR_PARSE);
    /* a valid file with metadata and a zero-size tensor parses */
    size_t len;
    unsigned char *b = make_st("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"I32\","
                               "\"shape\":[2],\"data_offsets\":[0,8]},\"e\":{\"dtype\":\"F32\","
                               "\"shape\":[0],\"data_offsets\":[8,8]}}", 8, &len);
    b[len - 8] = 7;
    b[len - 4] = 0xff; b[len - 3] = 0xff; b[len - 2] = 0xff; b[len - 1] = 0xff;
    EXPECT(safetensors_parse(b, len, "ok.st", &st, &err) == DP_OK);
    const SafetensorsTensor *t = safetensors_find(&st, "a");
    int v[2] = {0, 0};
    EXPECT(t && safetensors_to_i32(&st, t, v, 2, &err) == DP_OK && v[0] == 7 && v[1] == -1);
    EXPECT(t && safetensors_to_i32(&st, t, v, 1, &err) == DP_ERR_INVAL);
    safetensors_free(&st);
    safetensors_free(&st); /* twice is fine: zeroed */
    free(b);
    EXPECT(safetensors_open("/nonexistent/model.safetensors", &st, &err) == DP_ERR_IO &&
           strstr(err.msg, "/nonexistent/model.safetensors"));
}

static void test_half_precision(void) {
    /* F16: 1, -2, 0.5, 65504, 2^-24 (subnormal), inf; BF16: 1, -3.5 */
    size_t len;
    unsigned char *b = make_st("{\"h\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]},"
                               "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]}}",
                               16, &len);
    uint16_t hv[6] = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00}, bv[2] = {0x3f80, 0xc060};
    unsigned char *d = b + len - 16;
    for (int i = 0; i < 6; i++) {
        d[2 * i] = hv[i] & 0xff;
        d[2 * i + 1] = hv[i] >> 8;
    }
    for (int i = 0; i < 2; i++) {
        d[12 + 2 * i] = bv[i] & 0xff;
        d[12 + 2 * i + 1] = bv[i] >> 8;
    }
    Safetensors st;
    DpError err = {0};
    REQUIRE(safetensors_parse(b, len, "half", &st, &err) == DP_OK);
    float f[6];
    REQUIRE(safetensors_to_f32(&st, safetensors_find(&st, "h"), f, 6, &err) == DP_OK);
    EXPECT(f[0] == 1.0f && f[1] == -2.0f && f[2] == 0.5f && f[3] == 65504.0f);
    EXPECT(f[4] == ldexpf(1.0f, -24) && isinf(f[5]));
    REQUIRE(safetensors_to_f32(&st, safetensors_find(&st, "b"), f, 2, &err) == DP_OK);
    EXPECT(f[0] == 1.0f && f[1] == -3.5f);
    safetensors_free(&st);
    free(b);
}

/* Writes a copy of gpt2-tiny with one change to the config or the weights. */
static void write_variant(const char *dir, const char *config, const char *weights_from) {
    DpError err;
    char p[512], cmd[2048];
    dp_mkdirs(dir, &err);
    snprintf(p, sizeof p, "%s/config.json", dir);
    dp_write_file_atomic(p, config, strlen(config), &err);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/model.safetensors'", weights_from, dir);
    if (system(cmd) != 0) fprintf(stderr, "  cp failed\n");
}

static void expect_load_error(const char *dir, const char *needle) {
    Gpt2 *m = NULL;
    DpError err = {0};
    DpStatus s = gpt2_load_dir(dir, &m, &err);
    EXPECT_MSG(s != DP_OK && strstr(err.msg, needle), "got '%s', wanted '%s'",
               s ? err.msg : "ok", needle);
    EXPECT(m == NULL);
    gpt2_free(m);
}

static void test_load_errors(void) {
    char dir[256];
    tmpdir(dir, sizeof dir, "bad");
    const char *w = DATA "/gpt2-tiny/model.safetensors";
    const char *base = "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 32, \"n_positions\": 64, "
                       "\"vocab_size\": 97%s}";
    char cfg[512];
    struct {
        const char *extra, *needle;
    } cases[] = {
        {", \"activation_function\": \"relu\"", "activation_function"},
        {", \"scale_attn_by_inverse_layer_idx\": true", "scale_attn_by_inverse_layer_idx"},
        {", \"reorder_and_upcast_attn\": true", "reorder_and_upcast_attn"},
        {", \"tie_word_embeddings\": false", "tie_word_embeddings"},
        {", \"n_inner\": 100", "h.0.mlp.c_fc.weight"},
        {", \"n_head\": 3", "n_head"},
        {", \"model_type\": \"llama\"", "model_type"},
        {", \"n_embd\": \"big\"", "n_embd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cfg, sizeof cfg, base, cases[i].extra);
        write_variant(dir, cfg, w);
        expect_load_error(dir, cases[i].needle);
    }
    write_variant(dir, "{\"n_layer\": 3, \"n_head\": 2, \"n_embd\": 32, \"n_positions\": 64, "
                       "\"vocab_size\": 97}", w);
    expect_load_error(dir, "'transformer.h.2.ln_1.weight' is missing");
    /* shape disagreeing with config names the tensor and the file */
    snprintf(cfg, sizeof cfg, base, ", \"vocab_size\": 98");
    write_variant(dir, "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 32, \"n_positions\": 64, "
                       "\"vocab_size\": 98}", w);
    expect_load_error(dir, "transformer.wte.weight");
    expect_load_error(dir, "model.safetensors");
    /* malformed config.json gives line and column */
    write_variant(dir, "{\"n_layer\": 2,,}", w);
    expect_load_error(dir, "config.json: line 1");
    /* truncated weights */
    snprintf(cfg, sizeof cfg, base, "");
    write_variant(dir, cfg, w);
    char p[512], cmd[1024];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    EXPECT(truncate(p, 100000) == 0);
    expect_load_error(dir, "out of range");
    /* missing directory */
    expect_load_error("/nonexistent/model", "/nonexistent/model/config.json");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    EXPECT(system(cmd) == 0);
}

/* The CLI runs the same check (when the driftpilot binary is built). */
static void test_cli(void) {
    REQUIRE_BINARY(DP_BINARY);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' nn check --model '%s/nn-fullctx' --vectors '%s/nn-fullctx/expected.safetensors' "
             "> /dev/null 2>&1",
             DP_BINARY, DATA, DATA);
    EXPECT_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "'%s' nn check --model '%s/nn-fullctx' --vectors '%s/nn-fullctx/expected.safetensors' "
             "--tolerance-scale 1e-6 > /dev/null 2>&1",
             DP_BINARY, DATA, DATA);
    int rc = system(cmd);
    EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    snprintf(cmd, sizeof cmd, "'%s' nn check --model '%s/nn-fullctx' > /dev/null 2>&1", DP_BINARY, DATA);
    rc = system(cmd);
    EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    snprintf(cmd, sizeof cmd, "'%s' nn --help > /dev/null && '%s' demo --help > /dev/null", DP_BINARY,
             DP_BINARY);
    EXPECT_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' demo --model '%s/gpt2-tiny' --tokens 4 > /dev/null 2>&1",
             DP_BINARY, DATA);
    EXPECT_EQ_INT(system(cmd), 0);
}

/* A tied lm_head.weight equal to wte loads; a different one is refused. */
static void test_lm_head_tied(void) {
    Gpt2 *m = load(DATA "/gpt2-tiny");
    REQUIRE(m != NULL);
    int n = gpt2_n_named_tensors(&m->config);
    SafetensorsWriteItem items[64];
    char names[64][80];
    REQUIRE(n + 1 <= 64);
    for (int i = 0; i < n; i++) {
        Gpt2TensorInfo ti;
        gpt2_tensor_info(&m->config, i, &ti);
        snprintf(names[i], sizeof names[i], "%s", ti.name); /* no prefix this time */
        items[i] = (SafetensorsWriteItem){names[i], m->params_memory + ti.offset, ti.ndim, {0}};
        items[i].shape[0] = ti.shape[0];
        items[i].shape[1] = ti.shape[1];
    }
    float *head = malloc(97 * 32 * sizeof(float));
    memcpy(head, m->params.wte, 97 * 32 * sizeof(float));
    items[n] = (SafetensorsWriteItem){"lm_head.weight", head, 2, {97, 32}};
    char path[256];
    snprintf(path, sizeof path, "/tmp/test_nn_head_%ld.safetensors", (long)getpid());
    DpError err = {0};
    REQUIRE(safetensors_write_f32(path, items, n + 1, &err) == DP_OK);
    Gpt2 *m2 = NULL;
    EXPECT_MSG(gpt2_load_files(&m->config, path, &m2, &err) == DP_OK, "%s", err.msg);
    if (m2) EXPECT(memcmp(m2->params_memory, m->params_memory, m->n_params * 4) == 0);
    gpt2_free(m2);
    m2 = NULL;
    head[5] += 1.0f;
    REQUIRE(safetensors_write_f32(path, items, n + 1, &err) == DP_OK);
    EXPECT(gpt2_load_files(&m->config, path, &m2, &err) == DP_ERR_INVAL && strstr(err.msg, "lm_head"));
    EXPECT(m2 == NULL);
    unlink(path);
    free(head);
    gpt2_free(m);
}

TEST_MAIN(TEST_CASE(test_lm_head_tied), TEST_CASE(test_cli), TEST_CASE(test_reference_vectors), TEST_CASE(test_vectors_noprefix_maskbuffer),
          TEST_CASE(test_vectors_full_context), TEST_CASE(test_vectors_vocab50257),
          TEST_CASE(test_check_detects_errors),
          TEST_CASE(test_hf_golden), TEST_CASE(test_save_load_roundtrip),
          TEST_CASE(test_finite_differences), TEST_CASE(test_loss_mask),
          TEST_CASE(test_adamw_decay_and_clip), TEST_CASE(test_generate_kv_cache),
          TEST_CASE(test_sampling), TEST_CASE(test_create_random),
          TEST_CASE(test_safetensors_errors), TEST_CASE(test_half_precision),
          TEST_CASE(test_load_errors))
