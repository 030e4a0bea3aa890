/* The pieces pretraining and the retrain job share: tokenized QA rows in the
 * one prompt format, the padded/masked training step, the LR schedule, and
 * evaluation by real greedy decoding scored with the qa metrics. */
#include "train.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *train_cat_name(int cat) {
    switch (cat) {
    case TRAIN_CAT_FACT: return "fact";
    case TRAIN_CAT_COMPREHENSION: return "comprehension";
    case TRAIN_CAT_ARITHMETIC: return "arithmetic";
    default: return "other";
    }
}

int train_cat_of_kind(QaKind kind) {
    switch (kind) {
    case QA_KIND_FACT: return TRAIN_CAT_FACT;
    case QA_KIND_COMPREHENSION: return TRAIN_CAT_COMPREHENSION;
    case QA_KIND_ARITHMETIC: return TRAIN_CAT_ARITHMETIC;
    default: return TRAIN_CAT_OTHER;
    }
}

// ---- rows ----

static DpStatus encode(const BpeTokenizer *tok, const char *s, int **ids, size_t *n, DpError *err) {
    return bpe_encode(tok, s, strlen(s), 0, ids, n, err);
}

DpStatus train_rows_add(TrainRows *rows, const BpeTokenizer *tok, const char *question,
                        const char *context, const char *answer, int cat, int max_len,
                        DpError *err) {
    size_t plen = qa_prompt_format(question, context, NULL, 0);
    size_t alen = qa_answer_format(answer, NULL, 0);
    char *p = dp_malloc(plen + 1), *a = dp_malloc(alen + 1);
    int *pid = NULL, *aid = NULL;
    size_t np = 0, na = 0;
    DpStatus st = DP_OK;
    if (!p || !a) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    qa_prompt_format(question, context, p, plen + 1);
    qa_answer_format(answer, a, alen + 1);
    if ((st = encode(tok, p, &pid, &np, err)) || (st = encode(tok, a, &aid, &na, err))) goto out;
    if (na == 0 || (int)na >= max_len || np == 0) {
        rows->n_truncated++;
        goto out;
    }
    size_t skip = 0;
    if ((int)(np + na) > max_len) {
        skip = np + na - (size_t)max_len;
        rows->n_truncated++;
    }
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 256;
        TrainRow *r = dp_realloc_array(rows->rows, cap, sizeof *r);
        if (!r) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        rows->rows = r;
        rows->cap = cap;
    }
    TrainRow *r = &rows->rows[rows->n];
    r->n_prompt = (int)(np - skip);
    r->n_ids = (int)(np - skip + na);
    r->cat = cat;
    r->ids = dp_malloc((size_t)r->n_ids * sizeof(int));
    if (!r->ids) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(r->ids, pid + skip, (np - skip) * sizeof(int));
    memcpy(r->ids + r->n_prompt, aid, na * sizeof(int));
    rows->n++;
out:
    free(p);
    free(a);
    free(pid);
    free(aid);
    return st;
}

DpStatus train_rows_add_dataset(TrainRows *rows, const BpeTokenizer *tok, const QaDataset *ds,
                                int max_len, DpError *err) {
    for (size_t i = 0; i < ds->n_items; i++) {
        const QaItem *it = &ds->items[i];
        if (it->n_answers < 1) continue;
        DpStatus st = train_rows_add(rows, tok, it->question, it->context, it->answers[0].text,
                                     train_cat_of_kind(it->kind), max_len, err);
        if (st) return st;
    }
    return DP_OK;
}

void train_rows_free(TrainRows *rows) {
    if (!rows) return;
    for (size_t i = 0; i < rows->n; i++) free(rows->rows[i].ids);
    free(rows->rows);
    memset(rows, 0, sizeof *rows);
}

// ---- optimisation ----

float train_lr_at(float peak, float warmup_frac, float min_frac, double progress) {
    if (progress < 0) progress = 0;
    if (progress > 1) progress = 1;
    if (warmup_frac > 0 && progress < (double)warmup_frac) {
        double f = progress / (double)warmup_frac;
        return peak * (float)(f > 0.01 ? f : 0.01);  // never exactly 0: step 1 moves
    }
    double x = warmup_frac < 1 ? (progress - (double)warmup_frac) / (1.0 - (double)warmup_frac) : 1.0;
    if (x < 0) x = 0;
    double c = 0.5 * (1.0 + cos(M_PI * x));
    return peak * (float)(min_frac + (1.0 - min_frac) * c);
}

/* Fills inputs/targets/mask (B x T) from rows; returns T (longest row - 1). */
static int fill_batch(const TrainRow *const *batch, int n, int pad_id, int *inputs, int *targets,
                      float *mask, int *n_answer) {
    int T = 1;
    for (int b = 0; b < n; b++)
        if (batch[b]->n_ids - 1 > T) T = batch[b]->n_ids - 1;
    int na = 0;
    for (int b = 0; b < n; b++) {
        const TrainRow *r = batch[b];
        for (int t = 0; t < T; t++) {
            size_t k = (size_t)b * T + t;
            if (t + 1 < r->n_ids) {
                inputs[k] = r->ids[t];
                targets[k] = r->ids[t + 1];
                /* predict position t+1: an answer token when t+1 >= n_prompt */
                mask[k] = (t + 1 >= r->n_prompt) ? 1.0f : 0.0f;
                na += t + 1 >= r->n_prompt;
            } else {
                inputs[k] = pad_id;
                targets[k] = pad_id;
                mask[k] = 0.0f;
            }
        }
    }
    if (n_answer) *n_answer = na;
    return T;
}

typedef struct {
    int *inputs, *targets;
    float *mask;
    size_t cap;
} BatchBuf;

static DpStatus batch_buf_fit(BatchBuf *bb, size_t need, DpError *err) {
    if (bb->cap >= need) return DP_OK;
    free(bb->inputs);
    free(bb->targets);
    free(bb->mask);
    bb->inputs = dp_malloc(need * sizeof(int));
    bb->targets = dp_malloc(need * sizeof(int));
    bb->mask = dp_malloc(need * sizeof(float));
    bb->cap = need;
    if (!bb->inputs || !bb->targets || !bb->mask) {
        bb->cap = 0;
        return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    }
    return DP_OK;
}

static void batch_buf_free(BatchBuf *bb) {
    free(bb->inputs);
    free(bb->targets);
    free(bb->mask);
    memset(bb, 0, sizeof *bb);
}

DpStatus train_step(Gpt2 *model, const TrainRow *const *batch, int n, const Gpt2AdamW *opt,
                    int step, float clip, int pad_id, float *loss, long *tokens, DpError *err) {
    int maxlen = 0;
    for (int b = 0; b < n; b++)
        if (batch[b]->n_ids > maxlen) maxlen = batch[b]->n_ids;
    BatchBuf bb = {0};
    DpStatus st = batch_buf_fit(&bb, (size_t)n * (size_t)(maxlen > 1 ? maxlen : 2), err);
    if (st) return st;
    int T = fill_batch(batch, n, pad_id, bb.inputs, bb.targets, bb.mask, NULL);
    float l = 0;
    if ((st = gpt2_forward(model, bb.inputs, bb.targets, bb.mask, n, T, &l, err))) goto out;
    gpt2_zero_grad(model);
    if ((st = gpt2_backward(model, err))) goto out;
    if (clip > 0) gpt2_clip_grad_norm(model, clip);
    gpt2_adamw_step(model, opt, step);
    if (loss) *loss = l;
    if (tokens) *tokens = (long)n * T;
out:
    batch_buf_free(&bb);
    return st;
}

DpStatus train_loss(Gpt2 *model, const TrainRows *rows, int batch, int pad_id, double *loss,
                    DpError *err) {
    BatchBuf bb = {0};
    const TrainRow **ptrs = dp_malloc((size_t)(batch > 0 ? batch : 1) * sizeof *ptrs);
    double sum = 0;
    long cnt = 0;
    DpStatus st = DP_OK;
    if (!ptrs) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < rows->n; i += (size_t)batch) {
        int n = (int)(rows->n - i < (size_t)batch ? rows->n - i : (size_t)batch);
        int maxlen = 2;
        for (int b = 0; b < n; b++) {
            ptrs[b] = &rows->rows[i + b];
            if (ptrs[b]->n_ids > maxlen) maxlen = ptrs[b]->n_ids;
        }
        if ((st = batch_buf_fit(&bb, (size_t)n * maxlen, err))) goto out;
        int na = 0;
        int T = fill_batch(ptrs, n, pad_id, bb.inputs, bb.targets, bb.mask, &na);
        float l = 0;
        if ((st = gpt2_forward(model, bb.inputs, bb.targets, bb.mask, n, T, &l, err))) goto out;
        sum += (double)l * na;
        cnt += na;
    }
    *loss = cnt ? sum / cnt : 0;
out:
    free(ptrs);
    batch_buf_free(&bb);
    return st;
}

// ---- evaluation by greedy decoding ----

typedef struct {
    const BpeTokenizer *tok;
} StopCtx;

/* Stops a sequence once its latest token holds a newline: the answer ends
 * there in the prompt format. */
static int stop_at_newline(void *ctx, int seq, const int *tokens, int n) {
    (void)seq;
    const StopCtx *c = ctx;
    size_t len = 0;
    const char *b = bpe_token_bytes(c->tok, tokens[n - 1], &len);
    return b && memchr(b, '\n', len) != NULL;
}

#define EVAL_CHUNK 64
#define EVAL_MAX_NEW 24

DpStatus train_evaluate(const Gpt2 *model, const BpeTokenizer *tok, const QaDataset *ds,
                        TrainEval *out, int *correct, char ***predictions, DpError *err) {
    double t0 = dp_time_mono();
    memset(out, 0, sizeof *out);
    QaCorpus all, cat[TRAIN_N_CATS];
    qa_corpus_init(&all);
    for (int c = 0; c < TRAIN_N_CATS; c++) qa_corpus_init(&cat[c]);
    int ctx_len = model->config.n_positions;
    int max_prompt = ctx_len - EVAL_MAX_NEW;
    if (max_prompt < 8) max_prompt = ctx_len / 2;
    Gpt2Generator *g = NULL;
    int *prompt_ids[EVAL_CHUNK] = {0};
    int prompt_len[EVAL_CHUNK];
    int *outs[EVAL_CHUNK] = {0};
    int out_len[EVAL_CHUNK];
    size_t item_of[EVAL_CHUNK];
    char **preds = NULL;
    DpStatus st = DP_OK;
    if (predictions) {
        preds = dp_calloc(ds->n_items ? ds->n_items : 1, sizeof *preds);
        if (!preds) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    }
    if ((st = gpt2_generator_create(model, EVAL_CHUNK, ctx_len, 1024, &g, err))) goto out;
    for (int i = 0; i < EVAL_CHUNK; i++) {
        outs[i] = dp_malloc(EVAL_MAX_NEW * sizeof(int));
        if (!outs[i]) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
    }
    Gpt2Sampling samp = gpt2_sampling_default();
    samp.max_new_tokens = EVAL_MAX_NEW;
    samp.eos_id = bpe_eot_id(tok);
    StopCtx sc = {tok};
    samp.stop = stop_at_newline;
    samp.stop_ctx = &sc;
    size_t i = 0;
    while (i < ds->n_items) {
        int n = 0;
        while (n < EVAL_CHUNK && i < ds->n_items) {
            const QaItem *it = &ds->items[i];
            if (correct) correct[i] = -1;
            if (it->n_answers < 1) {
                i++;
                continue;
            }
            size_t plen = qa_prompt_format(it->question, it->context, NULL, 0);
            char *p = dp_malloc(plen + 1);
            if (!p) {
                st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
                goto out;
            }
            qa_prompt_format(it->question, it->context, p, plen + 1);
            size_t np = 0;
            int *ids = NULL;
            st = encode(tok, p, &ids, &np, err);
            free(p);
            if (st) goto out;
            if ((int)np > max_prompt) {  // keep the end: the question and "A:"
                memmove(ids, ids + (np - (size_t)max_prompt), (size_t)max_prompt * sizeof(int));
                np = (size_t)max_prompt;
            }
            if (np == 0) {
                free(ids);
                i++;
                continue;
            }
            prompt_ids[n] = ids;
            prompt_len[n] = (int)np;
            item_of[n] = i;
            n++;
            i++;
        }
        if (n == 0) break;
        st = gpt2_generate(g, n, (const int *const *)prompt_ids, prompt_len, &samp, NULL, outs,
                           out_len, err);
        if (st) goto out;
        for (int k = 0; k < n; k++) {
            const QaItem *it = &ds->items[item_of[k]];
            char *text = NULL;
            size_t tl = 0;
            if ((st = bpe_decode(tok, outs[k], (size_t)out_len[k], &text, &tl, err))) goto out;
            char ans[512];
            qa_answer_extract(text, ans, sizeof ans);
            free(text);
            const char *refs[16];
            int nr = it->n_answers < 16 ? it->n_answers : 16;
            for (int r = 0; r < nr; r++) refs[r] = it->answers[r].text;
            QaScores s;
            if (qa_corpus_add(&all, ans, refs, (size_t)nr, &s) ||
                qa_corpus_add(&cat[train_cat_of_kind(it->kind)], ans, refs, (size_t)nr, NULL)) {
                st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
                goto out;
            }
            if (correct) correct[item_of[k]] = s.exact_match > 0.5;
            if (preds) preds[item_of[k]] = dp_strdup(ans);
            free(prompt_ids[k]);
            prompt_ids[k] = NULL;
        }
    }
    qa_corpus_result(&all, &out->all);
    for (int c = 0; c < TRAIN_N_CATS; c++) qa_corpus_result(&cat[c], &out->cat[c]);
    out->seconds = dp_time_mono() - t0;
out:
    for (int k = 0; k < EVAL_CHUNK; k++) {
        free(prompt_ids[k]);
        free(outs[k]);
    }
    gpt2_generator_destroy(g);
    if (predictions) {
        if (st) {
            train_predictions_free(preds, ds->n_items);
            *predictions = NULL;
        } else {
            *predictions = preds;
        }
    }
    return st;
}

void train_predictions_free(char **p, size_t n) {
    if (!p) return;
    for (size_t i = 0; i < n; i++) free(p[i]);
    free(p);
}

static json_t *scores_json(const QaCorpusScores *s) {
    return json_pack("{s:I,s:f,s:f,s:f,s:f}", "n", (json_int_t)s->n, "bleu1", s->bleu1_corpus,
                     "bleu1_mean", s->bleu1_mean, "exact_match", s->exact_match, "f1", s->f1);
}

json_t *train_eval_json(const TrainEval *e) {
    json_t *o = scores_json(&e->all);
    if (!o) return NULL;
    json_t *by = json_object();
    for (int c = 0; c < TRAIN_N_CATS; c++)
        if (e->cat[c].n) json_object_set_new(by, train_cat_name(c), scores_json(&e->cat[c]));
    json_object_set_new(o, "by_category", by);
    json_object_set_new(o, "seconds", json_real(e->seconds));
    return o;
}

// ---- the world a model learned ----

#define WORLD_FILE "driftpilot_world.json"

DpStatus train_world_save(const QaWorldConfig *cfg, const char *dir, DpError *err) {
    char path[4096];
    DpStatus st = dp_path_join(path, sizeof path, dir, WORLD_FILE, err);
    if (st) return st;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)cfg->seed);
    json_t *o = json_pack("{s:s,s:i,s:i,s:i,s:{s:f,s:f,s:f},s:{s:f,s:f,s:f},s:f}", "seed", seed,
                          "n_services", cfg->n_services, "attributes", (int)cfg->attributes,
                          "max_services", cfg->max_services, "mix_start", "fact",
                          cfg->mix_start.fact, "comprehension", cfg->mix_start.comprehension,
                          "arithmetic", cfg->mix_start.arithmetic, "mix_end", "fact",
                          cfg->mix_end.fact, "comprehension", cfg->mix_end.comprehension,
                          "arithmetic", cfg->mix_end.arithmetic, "mix_period_s",
                          cfg->mix_period_s);
    if (!o) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (!text) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    st = dp_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return st;
}

static double num_or(const json_t *o, const char *k, double d) {
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : d;
}

DpStatus train_world_load(const char *dir, QaWorldConfig *cfg, int *found, DpError *err) {
    char path[4096];
    *found = 0;
    DpStatus st = dp_path_join(path, sizeof path, dir, WORLD_FILE, err);
    if (st) return st;
    if (!dp_file_exists(path)) return DP_OK;
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return dp_fail(err, DP_ERR_PARSE, "%s line %d column %d: %s", path, je.line, je.column,
                       je.text);
    }
    qa_world_config_default(cfg);
    const char *seed = json_string_value(json_object_get(o, "seed"));
    if (seed) cfg->seed = strtoull(seed, NULL, 10);
    cfg->n_services = (int)num_or(o, "n_services", cfg->n_services);
    cfg->attributes = (unsigned)num_or(o, "attributes", cfg->attributes);
    cfg->max_services = (int)num_or(o, "max_services", cfg->max_services);
    const json_t *ms = json_object_get(o, "mix_start"), *me = json_object_get(o, "mix_end");
    if (json_is_object(ms)) {
        cfg->mix_start.fact = num_or(ms, "fact", cfg->mix_start.fact);
        cfg->mix_start.comprehension = num_or(ms, "comprehension", cfg->mix_start.comprehension);
        cfg->mix_start.arithmetic = num_or(ms, "arithmetic", cfg->mix_start.arithmetic);
    }
    if (json_is_object(me)) {
        cfg->mix_end.fact = num_or(me, "fact", cfg->mix_end.fact);
        cfg->mix_end.comprehension = num_or(me, "comprehension", cfg->mix_end.comprehension);
        cfg->mix_end.arithmetic = num_or(me, "arithmetic", cfg->mix_end.arithmetic);
    }
    cfg->mix_period_s = num_or(o, "mix_period_s", cfg->mix_period_s);
    json_decref(o);
    *found = 1;
    return DP_OK;
}

int train_arith_heldout(const char *question, int minus) {
    int nums[2], k = 0;
    for (const char *p = question; *p && k < 2; p++) {
        if (isdigit((unsigned char)*p) && (p == question || !isdigit((unsigned char)p[-1])))
            nums[k++] = atoi(p);
    }
    if (k < 2) return 0;
    uint64_t key = (uint64_t)(nums[0] * 1000 + nums[1]) * 2u + (uint64_t)(minus != 0);
    uint64_t h = dp_hash_u64(0x9e3779b97f4a7c15ull ^ key);
    return h % 10 == 0;
}
