/* Pretraining of the built-in model: a small GPT-2 learns the drifting QA
 * world at t = 0 from scratch (its own BPE, facts in every training phrasing,
 * 2-digit arithmetic, reading comprehension), within a time budget, and is
 * written as a Hugging Face directory with a JSON report beside it. */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void pretrain_config_default(PretrainConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    qa_world_config_default(&cfg->world);
    /* 48 services x 4 attributes = 192 facts (qa's default is 400): fact
     * recall is step-limited (see docs/train.md), and a 2-core box gives a
     * few thousand steps in 10 minutes.  Room for 16 new services. */
    cfg->world.n_services = 48;
    cfg->world.max_services = 48 + 16;
    cfg->n_layer = 4;
    cfg->n_head = 4;
    cfg->n_embd = 128;
    cfg->n_positions = 128;
    cfg->vocab_size = 3000;
    cfg->minutes = 10;
    cfg->max_steps = 0;
    cfg->batch = 32;
    cfg->arith_batch = 64;
    cfg->lr = 2e-3f;
    cfg->warmup_frac = 0.03f;
    cfg->min_lr_frac = 0.1f;
    cfg->weight_decay = 0.01f;
    cfg->clip = 1.0f;
    cfg->mix_fact = 0.3;
    cfg->mix_comprehension = 0.15;
    cfg->mix_arithmetic = 0.55;
    cfg->eval_n = 400;
    cfg->seed = 1;
}

void pretrain_report_free(PretrainReport *r) {
    if (!r) return;
    json_decref(r->json);
    r->json = NULL;
}

// ---- string list ----

typedef struct {
    char **s;
    int n, cap;
} StrList;

static int strlist_has(const StrList *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->s[i], s) == 0) return 1;
    return 0;
}

static DpStatus strlist_add(StrList *l, const char *s, DpError *err) {
    if (!s || !*s || strlist_has(l, s)) return DP_OK;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        char **p = dp_realloc_array(l->s, (size_t)cap, sizeof *p);
        if (!p) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
        l->s = p;
        l->cap = cap;
    }
    if (!(l->s[l->n] = dp_strdup(s))) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    l->n++;
    return DP_OK;
}

static void strlist_free(StrList *l) {
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

/* Entity names and attribute values become whole tokens: a fact answer is
 * then one token plus the newline, and a service is one token to bind to.
 * Values are collected from a copy of the world with every attribute and
 * fast drift, so values that only appear after drift are tokens too. */
static DpStatus collect_forced(const QaWorld *w, StrList *out, DpError *err) {
    DpStatus st = DP_OK;
    for (int e = 0; e < qa_world_n_entities(w); e++)
        if ((st = strlist_add(out, qa_world_entity_name(w, e), err))) return st;
    QaWorldConfig c = *qa_world_config(w);
    c.attributes = 0x1fu;
    c.drift.kind = QA_DRIFT_GRADUAL;
    c.drift.rate_per_h = 1.0;
    c.new_per_hour = 0;
    QaWorld *all = NULL;
    if ((st = qa_world_create(&c, &all, err))) return st;
    for (int k = 0; k < 24 && !st; k++)
        for (int e = 0; e < c.n_services && !st; e++)
            for (int a = 0; a < QA_N_ATTRS && !st; a++) {
                if (a == QA_ATTR_VERSION) continue;  // below, all of them
                st = strlist_add(out, qa_world_fact_value(all, e, (QaAttr)a, k * 3600.0), err);
            }
    qa_world_destroy(all);
    char v[8];
    for (int major = 1; major <= 9 && !st; major++)
        for (int minor = 0; minor <= 9 && !st; minor++) {
            snprintf(v, sizeof v, "v%d.%d", major, minor);
            st = strlist_add(out, v, err);
        }
    return st;
}

static size_t join_row(const char *q, const char *ctx, const char *a, char *buf, size_t cap) {
    size_t n = qa_prompt_format(q, ctx, buf, cap);
    if (n < cap) n += qa_answer_format(a, buf + n, cap - n);
    return n;
}

/* Draws an arithmetic sample whose pair is (heldout ? held out : trained). */
static void draw_arith(const QaWorld *w, DpRng *rng, int heldout, QaWorldSample *s) {
    for (int tries = 0; tries < 10000; tries++) {
        qa_world_sample_kind(w, 0, QA_KIND_ARITHMETIC, QA_PHRASING_TRAIN, rng, s);
        int minus = strcmp(s->attribute, "minus") == 0;
        if (train_arith_heldout(s->question, minus) == heldout) return;
    }
}

static DpStatus add_sample(QaDataset *ds, const QaWorldSample *s, const char *prefix, size_t i,
                           DpError *err) {
    char id[64];
    snprintf(id, sizeof id, "%s-%zu", prefix, i);
    return qa_dataset_add_sample(ds, s, id, err);
}

/* Every n-th item so that at most max items remain (a spread, not a prefix:
 * the fact sets are ordered by entity). */
static DpStatus subsample(const QaDataset *src, size_t max, QaDataset *dst, DpError *err) {
    qa_dataset_init(dst);
    size_t n = src->n_items;
    size_t take = n < max ? n : max;
    for (size_t k = 0; k < take; k++) {
        size_t i = take == n ? k : (size_t)((double)k * n / take);
        DpStatus st = qa_dataset_add(dst, &src->items[i], err);
        if (st) return st;
    }
    return DP_OK;
}

static json_t *cfg_json(const PretrainConfig *c) {
    char sched[64];
    qa_world_schedule_format(&c->world.drift, sched, sizeof sched);
    return json_pack(
        "{s:{s:I,s:i,s:i},s:{s:i,s:i,s:i,s:i},s:i,s:f,s:i,s:i,s:i,s:f,s:f,s:f,s:f,s:f,"
        "s:{s:f,s:f,s:f},s:I}",
        "world", "seed", (json_int_t)c->world.seed, "n_services", c->world.n_services,
        "attributes", (int)c->world.attributes, "model", "n_layer", c->n_layer, "n_head",
        c->n_head, "n_embd", c->n_embd, "n_positions", c->n_positions, "vocab_target",
        c->vocab_size, "minutes", c->minutes, "max_steps", c->max_steps, "batch", c->batch,
        "arith_batch", c->arith_batch, "lr",
        (double)c->lr, "warmup_frac", (double)c->warmup_frac, "min_lr_frac",
        (double)c->min_lr_frac, "weight_decay", (double)c->weight_decay, "clip", (double)c->clip,
        "mix", "fact", c->mix_fact, "comprehension", c->mix_comprehension, "arithmetic",
        c->mix_arithmetic, "seed", (json_int_t)c->seed);
}

DpStatus pretrain_run(const PretrainConfig *cfg, const char *out_dir, PretrainReport *report,
                      DpError *err) {
    double t_start = dp_time_mono();
    memset(report, 0, sizeof *report);
    DpStatus st = DP_OK;
    QaWorld *w = NULL;
    StrList forced = {0};
    DpBuf corpus = DP_BUF_INIT;
    char **texts = NULL;
    size_t n_texts = 0;
    BpeTokenizer *tok = NULL;
    Gpt2 *model = NULL;
    QaDataset facts = {0}, facts_held = {0}, ev_facts = {0}, ev_held = {0}, ev_arith = {0},
              ev_comp = {0}, ev_traffic = {0};
    TrainRows fact_rows = {0}, arith_rows = {0}, comp_rows = {0};
    int *order = NULL;
    const TrainRow **batch = NULL;
    if (cfg->batch < 1 || cfg->n_layer < 1 || cfg->n_embd < 8 || cfg->n_head < 1 ||
        cfg->n_embd % cfg->n_head || cfg->n_positions < 32 || cfg->vocab_size < 300)
        return dp_fail(err, DP_ERR_INVAL,
                       "pretrain: bad model settings (layers %d, heads %d, width %d, positions "
                       "%d, vocab %d)",
                       cfg->n_layer, cfg->n_head, cfg->n_embd, cfg->n_positions, cfg->vocab_size);
    if (cfg->minutes <= 0 && cfg->max_steps <= 0)
        return dp_fail(err, DP_ERR_INVAL, "pretrain: need a time budget or a step count");
    if ((st = dp_mkdirs(out_dir, err))) return st;
    if ((st = qa_world_create(&cfg->world, &w, err))) goto out;
    DpRng rng;
    dp_rng_seed_stream(&rng, cfg->seed, 11);

    // ---- data as text, and the tokenizer ----
    if ((st = qa_world_all_facts(w, 0, QA_PHRASING_TRAIN, &facts, err))) goto out;
    if ((st = qa_world_all_facts(w, 0, QA_PHRASING_HELDOUT, &facts_held, err))) goto out;
    if ((st = collect_forced(w, &forced, err))) goto out;
    {
        size_t n_extra = 3000;
        texts = dp_calloc(facts.n_items + n_extra, sizeof *texts);
        if (!texts) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        char buf[1024];
        for (size_t i = 0; i < facts.n_items; i++) {
            const QaItem *it = &facts.items[i];
            join_row(it->question, NULL, it->answers[0].text, buf, sizeof buf);
            if (!(texts[n_texts++] = dp_strdup(buf))) st = DP_ERR_NOMEM;
        }
        for (size_t i = 0; i < n_extra && !st; i++) {
            QaWorldSample s;
            qa_world_sample_kind(w, 0, i % 2 ? QA_KIND_ARITHMETIC : QA_KIND_COMPREHENSION,
                                 QA_PHRASING_ALL, &rng, &s);
            join_row(s.question, s.context, s.answer, buf, sizeof buf);
            if (!(texts[n_texts++] = dp_strdup(buf))) st = DP_ERR_NOMEM;
        }
        if (st) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        BpeTrainOptions bo;
        memset(&bo, 0, sizeof bo);
        bo.vocab_size = cfg->vocab_size;
        bo.keep_digits_apart = 1;
        bo.min_pair_count = 16;
        bo.forced_tokens = (const char *const *)forced.s;
        bo.n_forced = forced.n;
        if ((st = bpe_train((const char *const *)texts, NULL, n_texts, &bo, &tok, err))) {
            dp_error_wrap(err, "pretrain: tokenizer");
            goto out;
        }
    }
    int pad = bpe_eot_id(tok);
    int maxlen = cfg->n_positions;

    // ---- tokenized training rows ----
    if ((st = train_rows_add_dataset(&fact_rows, tok, &facts, maxlen, err))) goto out;
    size_t n_arith_pool = 12000, n_comp_pool = 6000;
    for (size_t i = 0; i < n_arith_pool; i++) {
        QaWorldSample s;
        draw_arith(w, &rng, 0, &s);
        if ((st = train_rows_add(&arith_rows, tok, s.question, NULL, s.answer,
                                 TRAIN_CAT_ARITHMETIC, maxlen, err)))
            goto out;
    }
    for (size_t i = 0; i < n_comp_pool; i++) {
        QaWorldSample s;
        qa_world_sample_kind(w, 0, QA_KIND_COMPREHENSION, QA_PHRASING_TRAIN, &rng, &s);
        if ((st = train_rows_add(&comp_rows, tok, s.question, s.context, s.answer,
                                 TRAIN_CAT_COMPREHENSION, maxlen, err)))
            goto out;
    }
    if (fact_rows.n == 0 || arith_rows.n == 0 || comp_rows.n == 0) {
        st = dp_fail(err, DP_ERR_STATE, "pretrain: no training rows (rows longer than %d tokens?)",
                     maxlen);
        goto out;
    }
    int longest = 0;
    const TrainRows *sets[3] = {&fact_rows, &comp_rows, &arith_rows};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < sets[k]->n; i++)
            if (sets[k]->rows[i].n_ids > longest) longest = sets[k]->rows[i].n_ids;

    // ---- evaluation sets ----
    {
        DpRng erng;
        dp_rng_seed_stream(&erng, cfg->seed, 23);
        size_t ne = (size_t)(cfg->eval_n > 0 ? cfg->eval_n : 200);
        if ((st = subsample(&facts, ne, &ev_facts, err)) ||
            (st = subsample(&facts_held, ne, &ev_held, err)))
            goto out;
        qa_dataset_init(&ev_arith);
        qa_dataset_init(&ev_comp);
        for (size_t i = 0; i < ne && !st; i++) {
            QaWorldSample s;
            draw_arith(w, &erng, 1, &s);
            st = add_sample(&ev_arith, &s, "arith", i, err);
        }
        for (size_t i = 0; i < ne && !st; i++) {
            QaWorldSample s;
            qa_world_sample_kind(w, 0, QA_KIND_COMPREHENSION, QA_PHRASING_TRAIN, &erng, &s);
            st = add_sample(&ev_comp, &s, "comp", i, err);
        }
        if (st) goto out;
        if ((st = qa_world_generate(w, 0, ne, cfg->seed + 1000, &ev_traffic, err))) goto out;
    }

    // ---- the model ----
    Gpt2Config mc;
    memset(&mc, 0, sizeof mc);
    mc.n_layer = cfg->n_layer;
    mc.n_head = cfg->n_head;
    mc.n_embd = cfg->n_embd;
    mc.n_inner = 4 * cfg->n_embd;
    mc.n_positions = cfg->n_positions;
    mc.vocab_size = bpe_vocab_size(tok);
    mc.layer_norm_epsilon = 1e-5f;
    mc.activation = GPT2_ACT_GELU_TANH;
    mc.bos_token_id = pad;
    mc.eos_token_id = pad;
    if ((st = gpt2_create(&mc, cfg->seed, &model, err))) goto out;
    int arith_batch = cfg->arith_batch > 0 ? cfg->arith_batch : cfg->batch;
    int max_batch = arith_batch > cfg->batch ? arith_batch : cfg->batch;
    if ((st = gpt2_reserve(model, max_batch, longest, GPT2_RESERVE_TRAIN, err))) goto out;

    // ---- training ----
    order = dp_malloc(fact_rows.n * sizeof(int));
    batch = dp_malloc((size_t)max_batch * sizeof *batch);
    if (!order || !batch) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < fact_rows.n; i++) order[i] = (int)i;
    dp_rng_shuffle_int(&rng, order, fact_rows.n);
    size_t fact_pos = 0;
    long fact_seen = 0;
    Gpt2AdamW opt = gpt2_adamw_default();
    opt.beta2 = 0.98f;
    opt.weight_decay = cfg->weight_decay;
    opt.decay_all = 0;
    double budget = cfg->minutes * 60.0;
    DpProgress prog;
    if (cfg->max_steps > 0) dp_progress_init(&prog, "pretrain", cfg->max_steps, "steps");
    else dp_progress_init(&prog, "pretrain", budget, "s");
    double t_train = dp_time_mono();
    long tokens = 0, answer_tokens = 0;
    double loss_window[50];
    int n_loss = 0;
    double mix_total = cfg->mix_fact + cfg->mix_comprehension + cfg->mix_arithmetic;
    if (mix_total <= 0) mix_total = 1;
    int step = 0;
    for (;;) {
        double elapsed = dp_time_mono() - t_train;
        double progress = cfg->max_steps > 0 ? (double)step / cfg->max_steps : elapsed / budget;
        if (progress >= 1.0) break;
        if (cfg->max_steps <= 0 && cfg->minutes > 0 && elapsed >= budget) break;
        step++;
        opt.lr = train_lr_at(cfg->lr, cfg->warmup_frac, cfg->min_lr_frac, progress);
        double u = dp_rng_uniform(&rng) * mix_total;
        int n = cfg->batch;
        if (u < cfg->mix_fact) {
            for (int b = 0; b < n; b++) {
                if (fact_pos == fact_rows.n) {
                    dp_rng_shuffle_int(&rng, order, fact_rows.n);
                    fact_pos = 0;
                }
                batch[b] = &fact_rows.rows[order[fact_pos++]];
            }
            fact_seen += n;
        } else {
            const TrainRows *pool = u < cfg->mix_fact + cfg->mix_comprehension ? &comp_rows
                                                                                : &arith_rows;
            if (pool == &arith_rows) n = arith_batch;
            for (int b = 0; b < n; b++) batch[b] = &pool->rows[dp_rng_below(&rng, pool->n)];
        }
        float loss = 0;
        long tk = 0;
        if ((st = train_step(model, batch, n, &opt, step, cfg->clip, pad, &loss, &tk, err))) goto out;
        tokens += tk;
        for (int b = 0; b < n; b++) answer_tokens += batch[b]->n_ids - batch[b]->n_prompt;
        loss_window[n_loss++ % 50] = loss;
        if (!cfg->quiet && (step % 10 == 0)) {
            double el = dp_time_mono() - t_train;
            int m = n_loss < 50 ? n_loss : 50;
            double avg = 0;
            for (int k = 0; k < m; k++) avg += loss_window[k];
            char extra[160];
            snprintf(extra, sizeof extra, "step %d loss %.3f lr %.2e %.0f tok/s fact-epochs %.1f",
                     step, avg / m, (double)opt.lr, tokens / (el > 0 ? el : 1),
                     (double)fact_seen / fact_rows.n);
            dp_progress_update(&prog, cfg->max_steps > 0 ? step : el, extra);
        }
    }
    double train_s = dp_time_mono() - t_train;
    if (!cfg->quiet) dp_progress_finish(&prog, NULL);
    report->seconds = train_s;
    report->steps = step;
    report->tokens_per_s = train_s > 0 ? tokens / train_s : 0;
    report->answer_tokens_per_s = train_s > 0 ? answer_tokens / train_s : 0;
    {
        int m = n_loss < 50 ? n_loss : 50;
        double avg = 0;
        for (int k = 0; k < m; k++) avg += loss_window[k];
        report->final_loss = m ? avg / m : 0;
    }
    report->vocab_size = mc.vocab_size;
    report->n_params = model->n_params;
    report->n_fact_rows = fact_rows.n;
    report->fact_epochs = (double)fact_seen / fact_rows.n;

    // ---- evaluation (real greedy decoding) ----
    if (!cfg->quiet) dp_info("pretrain: evaluating by greedy decoding");
    if ((st = train_evaluate(model, tok, &ev_facts, &report->facts_train, NULL, NULL, err)) ||
        (st = train_evaluate(model, tok, &ev_held, &report->facts_heldout, NULL, NULL, err)) ||
        (st = train_evaluate(model, tok, &ev_arith, &report->arithmetic, NULL, NULL, err)) ||
        (st = train_evaluate(model, tok, &ev_comp, &report->comprehension, NULL, NULL, err)) ||
        (st = train_evaluate(model, tok, &ev_traffic, &report->traffic, NULL, NULL, err)))
        goto out;

    // ---- save ----
    if ((st = bpe_save_dir(tok, out_dir, err)) || (st = gpt2_save_dir(model, out_dir, NULL, err)) ||
        (st = train_world_save(&cfg->world, out_dir, err)))
        goto out;
    report->total_seconds = dp_time_mono() - t_start;
    {
        json_t *ev = json_object();
        json_object_set_new(ev, "facts_train_phrasings", train_eval_json(&report->facts_train));
        json_object_set_new(ev, "facts_heldout_phrasing", train_eval_json(&report->facts_heldout));
        json_object_set_new(ev, "arithmetic_heldout_pairs", train_eval_json(&report->arithmetic));
        json_object_set_new(ev, "comprehension", train_eval_json(&report->comprehension));
        json_object_set_new(ev, "traffic_t0", train_eval_json(&report->traffic));
        json_t *r = json_pack(
            "{s:f,s:f,s:i,s:f,s:f,s:f,s:i,s:I,s:I,s:f,s:i,s:o,s:o}", "train_seconds", train_s,
            "total_seconds", report->total_seconds, "steps", step, "tokens_per_s",
            report->tokens_per_s, "answer_tokens_per_s", report->answer_tokens_per_s,
            "final_loss", report->final_loss, "vocab_size", mc.vocab_size, "n_params",
            (json_int_t)model->n_params, "n_fact_rows", (json_int_t)fact_rows.n, "fact_epochs",
            report->fact_epochs, "longest_row_tokens", longest, "config", cfg_json(cfg), "eval",
            ev);
        if (!r) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        report->json = r;
        char path[4096];
        if ((st = dp_path_join(path, sizeof path, out_dir, "pretrain_report.json", err))) goto out;
        char *text = json_dumps(r, JSON_INDENT(2));
        if (!text) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        st = dp_write_file_atomic(path, text, strlen(text), err);
        free(text);
    }
out:
    for (size_t i = 0; i < n_texts; i++) free(texts[i]);
    free(texts);
    dp_buf_free(&corpus);
    strlist_free(&forced);
    qa_dataset_free(&facts);
    qa_dataset_free(&facts_held);
    qa_dataset_free(&ev_facts);
    qa_dataset_free(&ev_held);
    qa_dataset_free(&ev_arith);
    qa_dataset_free(&ev_comp);
    qa_dataset_free(&ev_traffic);
    train_rows_free(&fact_rows);
    train_rows_free(&arith_rows);
    train_rows_free(&comp_rows);
    free(order);
    free(batch);
    gpt2_free(model);
    bpe_free(tok);
    qa_world_destroy(w);
    if (st) pretrain_report_free(report);
    return st;
}
