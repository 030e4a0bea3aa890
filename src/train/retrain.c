/* The retrain job: fine-tune a model on the recent labelled window mixed with
 * replay of older data (loss on answer tokens only), score it before and
 * after on a held-out part of the window and on a fixed canary set, and
 * publish it to the registry only when the canary gate passes.  Writes a JSON
 * job record. */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void retrain_config_default(RetrainConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->window = 1000;
    cfg->heldout_frac = 0.1;
    cfg->epochs = 8;
    cfg->replay = -1;  /* auto: 1.5 x the window's training rows */
    cfg->augment = 1;
    cfg->lr = 1e-3f;
    cfg->warmup_frac = 0.05f;
    cfg->min_lr_frac = 0.1f;
    cfg->weight_decay = 0.01f;
    cfg->clip = 1.0f;
    cfg->batch = 32;
    cfg->min_steps = 300;
    cfg->canary_n = 200;
    cfg->gate_margin = 0.02;
    cfg->seed = 1;
}

void retrain_config_study(RetrainConfig *cfg) {
    cfg->window = 1000;
    cfg->epochs = 5;
    cfg->replay = 500;
    cfg->augment = 0;
    cfg->min_steps = 0;
}

void retrain_report_free(RetrainReport *r) {
    if (!r) return;
    json_decref(r->record);
    r->record = NULL;
}

// ---- which world fact a question asks about ----

typedef struct {
    int entity;
    int attr;
    char *answer;  /* latest label in the window (owned) */
} FactKey;

typedef struct {
    FactKey *k;
    size_t n, cap;
} FactSet;

static FactKey *factset_find(FactSet *s, int e, int a) {
    for (size_t i = 0; i < s->n; i++)
        if (s->k[i].entity == e && s->k[i].attr == a) return &s->k[i];
    return NULL;
}

static DpStatus factset_put(FactSet *s, int e, int a, const char *ans, DpError *err) {
    FactKey *f = factset_find(s, e, a);
    if (!f) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 128;
            FactKey *k = dp_realloc_array(s->k, cap, sizeof *k);
            if (!k) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
            s->k = k;
            s->cap = cap;
        }
        f = &s->k[s->n++];
        f->entity = e;
        f->attr = a;
        f->answer = NULL;
    }
    free(f->answer);
    if (!(f->answer = dp_strdup(ans))) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    return DP_OK;
}

static void factset_free(FactSet *s) {
    for (size_t i = 0; i < s->n; i++) free(s->k[i].answer);
    free(s->k);
    memset(s, 0, sizeof *s);
}

/* Finds (entity, attribute) of a fact question: from the row's fields when it
 * has them, else by matching the text against every phrasing of the world. */
static int identify_fact(const QaWorld *w, const QaItem *it, int *e_out, int *a_out) {
    unsigned attrs = qa_world_config(w)->attributes;
    int ne = qa_world_n_entities(w);
    if (it->entity && it->attribute) {
        QaAttr a;
        if (qa_attr_from_name(it->attribute, &a, NULL) != DP_OK) return 0;
        for (int e = 0; e < ne; e++)
            if (strcmp(qa_world_entity_name(w, e), it->entity) == 0) {
                *e_out = e;
                *a_out = (int)a;
                return (attrs & QA_ATTR_MASK(a)) != 0;
            }
        return 0;
    }
    if (it->context && it->context[0]) return 0;
    char buf[256];
    int np = qa_world_n_phrasings(QA_PHRASING_ALL);
    for (int e = 0; e < ne; e++) {
        const char *name = qa_world_entity_name(w, e);
        if (!strstr(it->question, name)) continue;
        for (int a = 0; a < QA_N_ATTRS; a++) {
            if (!(attrs & QA_ATTR_MASK(a))) continue;
            for (int p = 0; p < np; p++) {
                qa_world_fact_question(w, e, (QaAttr)a, QA_PHRASING_ALL, p, buf, sizeof buf);
                if (strcmp(buf, it->question) == 0) {
                    *e_out = e;
                    *a_out = a;
                    return 1;
                }
            }
        }
    }
    return 0;
}

// ---- helpers ----

static DpStatus copy_file(const char *src, const char *dst, DpError *err) {
    char *data = NULL;
    size_t len = 0;
    DpStatus st = dp_read_file(src, &data, &len, err);
    if (st) return st;
    st = dp_write_file_atomic(dst, data, len, err);
    free(data);
    return st;
}

static void remove_dir_files(const char *dir) {
    static const char *const names[] = {"config.json", "model.safetensors", "vocab.json",
                                        "merges.txt", "added_tokens.json",
                                        "driftpilot_world.json"};
    char p[4096];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

static DpStatus tail_window(const QaDataset *all, int window, QaDataset *out, DpError *err) {
    qa_dataset_init(out);
    size_t start = window > 0 && all->n_items > (size_t)window ? all->n_items - (size_t)window : 0;
    for (size_t i = start; i < all->n_items; i++) {
        if (all->items[i].n_answers < 1) continue;
        DpStatus st = qa_dataset_add(out, &all->items[i], err);
        if (st) return st;
    }
    return DP_OK;
}

static int cmp_row_len(const void *a, const void *b) {
    const TrainRow *x = *(const TrainRow *const *)a, *y = *(const TrainRow *const *)b;
    return (x->n_ids > y->n_ids) - (x->n_ids < y->n_ids);
}

static double em_of(const TrainEval *e) { return e->all.exact_match; }

/* EM of the extra eval set split by what drift did to each fact and whether
 * the window's training part covered it. */
static json_t *eval_groups(const QaWorld *w, const QaDataset *ds, const int *correct,
                           FactSet *facts) {
    static const char *const names[] = {"changed_covered", "changed_not_covered",
                                        "unchanged_covered", "unchanged_not_covered"};
    double sum[4] = {0};
    int n[4] = {0};
    for (size_t i = 0; i < ds->n_items; i++) {
        const QaItem *it = &ds->items[i];
        int e, a;
        if (correct[i] < 0 || it->kind != QA_KIND_FACT || it->changed < 0 || !w ||
            !identify_fact(w, it, &e, &a))
            continue;
        int g = (it->changed ? 0 : 2) + (factset_find(facts, e, a) ? 0 : 1);
        sum[g] += correct[i];
        n[g]++;
    }
    json_t *o = json_object();
    for (int g = 0; g < 4; g++)
        json_object_set_new(o, names[g], json_pack("{s:i,s:f}", "n", n[g], "exact_match",
                                                   n[g] ? sum[g] / n[g] : 0.0));
    return o;
}

DpStatus retrain_run(const RetrainConfig *cfg, RetrainReport *rep, DpError *err) {
    double t0 = dp_time_mono();
    memset(rep, 0, sizeof *rep);
    DpStatus st = DP_OK;
    Registry *reg = NULL;
    BpeTokenizer *tok = NULL;
    Gpt2 *model = NULL;
    QaWorld *w = NULL;
    QaDataset data = {0}, win = {0}, wtrain = {0}, wheld = {0}, canary = {0}, replay_ds = {0},
              extra = {0};
    int *extra_before = NULL, *extra_after = NULL;
    TrainRows rows = {0}, pool = {0};
    FactSet facts = {0};
    const TrainRow **batch = NULL;
    int *order = NULL, *starts = NULL;
    const TrainRow **ep_rows = NULL;
    json_t *loss_curve = json_array();
    char model_dir[4096], out_dir[4096] = "";
    int out_is_temp = 0;
    int planned_steps = 0, rep_replay = 0, rep_epochs = 0;
    if (!cfg->from || !cfg->data_path)
        return dp_fail(err, DP_ERR_INVAL, "retrain: need a model (--from) and data (--data)");
    if (cfg->epochs < 1 || cfg->batch < 1 || cfg->heldout_frac < 0 || cfg->heldout_frac >= 1)
        return dp_fail(err, DP_ERR_INVAL, "retrain: bad epochs/batch/heldout settings");

    // ---- the model to start from ----
    char cfgpath[4096];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", cfg->from);
    if (dp_file_exists(cfgpath)) {
        snprintf(model_dir, sizeof model_dir, "%s", cfg->from);
    } else {
        if (!cfg->registry_dir) {
            st = dp_fail(err, DP_ERR_INVAL,
                         "retrain: %s is not a model directory (no config.json) and no registry "
                         "was given to look it up as a version",
                         cfg->from);
            goto out;
        }
        if ((st = registry_open(cfg->registry_dir, &reg, err))) goto out;
        if ((st = registry_parse_version(cfg->from, rep->parent, err))) goto out;
        if ((st = registry_open_version(reg, rep->parent, NULL, model_dir, sizeof model_dir, err)))
            goto out;
    }
    if ((st = bpe_load_dir(model_dir, &tok, err))) {
        dp_error_wrap(err, "retrain: tokenizer of %s", model_dir);
        goto out;
    }
    if ((st = gpt2_load_dir(model_dir, &model, err))) goto out;
    if (bpe_vocab_size(tok) > model->config.vocab_size) {
        st = dp_fail(err, DP_ERR_INVAL,
                     "retrain: the tokenizer of %s has %d tokens but the model only %d "
                     "(vocab_size): they do not belong together",
                     model_dir, bpe_vocab_size(tok), model->config.vocab_size);
        goto out;
    }
    int pad = bpe_eot_id(tok) >= 0 ? bpe_eot_id(tok) : 0;
    int maxlen = model->config.n_positions;
    QaWorldConfig wc;
    int has_world = 0;
    if ((st = train_world_load(model_dir, &wc, &has_world, err))) goto out;
    if (has_world && (st = qa_world_create(&wc, &w, err))) goto out;

    // ---- the window ----
    {
        char hex[65];
        if ((st = dp_sha256_file(cfg->data_path, hex, err))) goto out;
        snprintf(rep->fingerprint, sizeof rep->fingerprint, "sha256:%s", hex);
    }
    if ((st = train_load_labelled(cfg->data_path, &data, err))) goto out;
    if ((st = tail_window(&data, cfg->window, &win, err))) goto out;
    if (win.n_items < 2) {
        st = dp_fail(err, DP_ERR_STATE, "retrain: %s has %zu answerable rows; need at least 2",
                     cfg->data_path, win.n_items);
        goto out;
    }
    if ((st = qa_dataset_split_random(&win, cfg->heldout_frac, cfg->seed, &wtrain, &wheld, err)))
        goto out;
    rep->n_window = (int)win.n_items;
    rep->n_train = (int)wtrain.n_items;
    rep->n_heldout = (int)wheld.n_items;

    // ---- training rows: the window (facts re-asked in every phrasing) ----
    for (size_t i = 0; i < wtrain.n_items; i++) {
        const QaItem *it = &wtrain.items[i];
        int e, a;
        if (w && cfg->augment && identify_fact(w, it, &e, &a)) {
            if ((st = factset_put(&facts, e, a, it->answers[0].text, err))) goto out;
            continue;
        }
        if (w && identify_fact(w, it, &e, &a) &&
            (st = factset_put(&facts, e, a, it->answers[0].text, err)))
            goto out;
        if ((st = train_rows_add(&rows, tok, it->question, it->context, it->answers[0].text,
                                 train_cat_of_kind(it->kind), maxlen, err)))
            goto out;
    }
    if (w && cfg->augment) {
        char q[256];
        int np = qa_world_n_phrasings(QA_PHRASING_TRAIN);
        for (size_t i = 0; i < facts.n; i++)
            for (int p = 0; p < np; p++) {
                qa_world_fact_question(w, facts.k[i].entity, (QaAttr)facts.k[i].attr,
                                       QA_PHRASING_TRAIN, p, q, sizeof q);
                if ((st = train_rows_add(&rows, tok, q, NULL, facts.k[i].answer, TRAIN_CAT_FACT,
                                         maxlen, err)))
                    goto out;
            }
    }

    // ---- replay pool: older data the window does not contradict ----
    if (cfg->replay_path) {
        if ((st = train_load_labelled(cfg->replay_path, &replay_ds, err))) goto out;
        if ((st = train_rows_add_dataset(&pool, tok, &replay_ds, maxlen, err))) goto out;
    } else if (w) {
        DpRng rr;
        dp_rng_seed_stream(&rr, cfg->seed, 41);
        char q[256];
        int np = qa_world_n_phrasings(QA_PHRASING_TRAIN);
        unsigned attrs = qa_world_config(w)->attributes;
        for (int e = 0; e < qa_world_n_entities_at(w, 0); e++)
            for (int a = 0; a < QA_N_ATTRS; a++) {
                if (!(attrs & QA_ATTR_MASK(a)) || factset_find(&facts, e, a)) continue;
                const char *v = qa_world_fact_value(w, e, (QaAttr)a, 0);
                for (int p = 0; p < np && v; p++) {
                    qa_world_fact_question(w, e, (QaAttr)a, QA_PHRASING_TRAIN, p, q, sizeof q);
                    if ((st = train_rows_add(&pool, tok, q, NULL, v, TRAIN_CAT_FACT, maxlen, err)))
                        goto out;
                }
            }
        size_t n_fact_pool = pool.n;
        size_t n_skill = n_fact_pool > 3000 ? n_fact_pool : 3000;
        for (size_t i = 0; i < n_skill; i++) {
            QaWorldSample s;
            int arith = i % 3 != 2;
            for (int tries = 0; tries < 1000; tries++) {
                qa_world_sample_kind(w, 0, arith ? QA_KIND_ARITHMETIC : QA_KIND_COMPREHENSION,
                                     QA_PHRASING_TRAIN, &rr, &s);
                if (!arith || !train_arith_heldout(s.question, strcmp(s.attribute, "minus") == 0))
                    break;
            }
            if ((st = train_rows_add(&pool, tok, s.question, s.context[0] ? s.context : NULL,
                                     s.answer, arith ? TRAIN_CAT_ARITHMETIC : TRAIN_CAT_COMPREHENSION,
                                     maxlen, err)))
                goto out;
        }
    }
    rep->n_replay_pool = (int)pool.n;

    // ---- the canary set ----
    if (cfg->canary_path) {
        if ((st = train_load_labelled(cfg->canary_path, &canary, err))) goto out;
    } else if (w) {
        /* Skills that drift does not touch: fixed by the seed, the same for
         * every retrain of this model family. */
        DpRng cr;
        dp_rng_seed_stream(&cr, 0xca9a7, 1);
        qa_dataset_init(&canary);
        for (int i = 0; i < cfg->canary_n && !st; i++) {
            QaWorldSample s;
            int arith = i % 2 == 0;
            for (int tries = 0; tries < 10000; tries++) {
                qa_world_sample_kind(w, 0, arith ? QA_KIND_ARITHMETIC : QA_KIND_COMPREHENSION,
                                     QA_PHRASING_TRAIN, &cr, &s);
                if (!arith || train_arith_heldout(s.question, strcmp(s.attribute, "minus") == 0))
                    break;
            }
            char id[32];
            snprintf(id, sizeof id, "canary-%d", i);
            st = qa_dataset_add_sample(&canary, &s, id, err);
        }
        if (st) goto out;
    } else {
        if ((st = tail_window(&wheld, 0, &canary, err))) goto out;
    }
    rep->n_canary = (int)canary.n_items;

    // ---- before ----
    if (!cfg->quiet)
        dp_info("retrain: %d window rows (%d train, %d held out), %zu training rows, replay pool "
                "%zu, canary %d; scoring the parent",
                rep->n_window, rep->n_train, rep->n_heldout, rows.n, pool.n, rep->n_canary);
    if ((st = train_evaluate(model, tok, &wheld, &rep->heldout_before, NULL, NULL, err)) ||
        (st = train_evaluate(model, tok, &canary, &rep->canary_before, NULL, NULL, err)))
        goto out;
    if (cfg->eval_path) {
        if ((st = train_load_labelled(cfg->eval_path, &extra, err))) goto out;
        extra_before = dp_calloc(extra.n_items + 1, sizeof(int));
        extra_after = dp_calloc(extra.n_items + 1, sizeof(int));
        if (!extra_before || !extra_after) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        if ((st = train_evaluate(model, tok, &extra, &rep->eval_before, extra_before, NULL, err)))
            goto out;
    }

    // ---- fine-tune ----
    {
        int n_replay = !pool.n ? 0 : cfg->replay >= 0 ? cfg->replay : (int)(rows.n * 3 / 2);
        rep_replay = n_replay;
        size_t per_epoch = rows.n + (size_t)n_replay;
        if (per_epoch == 0) {
            st = dp_fail(err, DP_ERR_STATE, "retrain: no training rows");
            goto out;
        }
        int longest = 2;
        for (size_t i = 0; i < rows.n; i++)
            if (rows.rows[i].n_ids > longest) longest = rows.rows[i].n_ids;
        for (size_t i = 0; i < pool.n; i++)
            if (pool.rows[i].n_ids > longest) longest = pool.rows[i].n_ids;
        if ((st = gpt2_reserve(model, cfg->batch, longest, GPT2_RESERVE_TRAIN, err))) goto out;
        order = dp_malloc(per_epoch * sizeof(int));
        starts = dp_malloc(per_epoch * sizeof(int));
        ep_rows = dp_malloc(per_epoch * sizeof *ep_rows);
        batch = dp_malloc((size_t)cfg->batch * sizeof *batch);
        if (!order || !batch || !starts || !ep_rows) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        int steps_per_epoch = (int)((per_epoch + (size_t)cfg->batch - 1) / (size_t)cfg->batch);
        /* Re-binding a fact takes a number of updates, not of passes: a
         * small window gets more epochs, up to min_steps. */
        int epochs = cfg->epochs;
        if (cfg->min_steps > 0 && steps_per_epoch * epochs < cfg->min_steps)
            epochs = (cfg->min_steps + steps_per_epoch - 1) / steps_per_epoch;
        rep_epochs = epochs;
        int total = steps_per_epoch * epochs;
        Gpt2AdamW opt = gpt2_adamw_default();
        opt.beta2 = 0.98f;
        opt.weight_decay = cfg->weight_decay;
        opt.decay_all = 0;
        DpRng rng;
        dp_rng_seed_stream(&rng, cfg->seed, 7);
        DpProgress prog;
        dp_progress_init(&prog, "retrain", total, "steps");
        double tt = dp_time_mono();
        long tokens = 0;
        int step = 0;
        int stopped = 0;
        for (int ep = 0; ep < epochs && !stopped; ep++) {
            /* index >= rows.n means a replay row drawn afresh each epoch */
            for (size_t i = 0; i < per_epoch; i++) order[i] = (int)i;
            dp_rng_shuffle_int(&rng, order, per_epoch);
            for (size_t i = 0; i < per_epoch; i++) {
                size_t k = (size_t)order[i];
                ep_rows[i] = k < rows.n ? &rows.rows[k] : &pool.rows[dp_rng_below(&rng, pool.n)];
            }
            /* Batches of similar length waste less on padding: sort each run
             * of 8 batches by length, then visit the batches in random order. */
            size_t chunk = (size_t)cfg->batch * 8;
            for (size_t i = 0; i < per_epoch; i += chunk)
                qsort(ep_rows + i, per_epoch - i < chunk ? per_epoch - i : chunk, sizeof *ep_rows,
                      cmp_row_len);
            int n_batches = 0;
            for (size_t i = 0; i < per_epoch; i += (size_t)cfg->batch) starts[n_batches++] = (int)i;
            dp_rng_shuffle_int(&rng, starts, (size_t)n_batches);
            double ep_loss = 0;
            int ep_steps = 0;
            for (int bi = 0; bi < n_batches; bi++) {
                if (cfg->max_steps > 0 && step >= cfg->max_steps) {
                    stopped = 1;
                    break;
                }
                size_t i = (size_t)starts[bi];
                int n = (int)(per_epoch - i < (size_t)cfg->batch ? per_epoch - i : (size_t)cfg->batch);
                for (int b = 0; b < n; b++) batch[b] = ep_rows[i + (size_t)b];
                step++;
                opt.lr = train_lr_at(cfg->lr, cfg->warmup_frac, cfg->min_lr_frac,
                                     (double)(step - 1) / total);
                float loss = 0;
                long tk = 0;
                if ((st = train_step(model, batch, n, &opt, step, cfg->clip, pad, &loss, &tk, err)))
                    goto out;
                tokens += tk;
                ep_loss += loss;
                ep_steps++;
                if (!cfg->quiet) {
                    char line[128];
                    double el = dp_time_mono() - tt;
                    snprintf(line, sizeof line, "epoch %d/%d loss %.3f %.0f tok/s", ep + 1,
                             epochs, loss, tokens / (el > 0 ? el : 1));
                    dp_progress_update(&prog, step, line);
                }
            }
            json_array_append_new(loss_curve,
                                  json_pack("{s:i,s:i,s:f}", "epoch", ep + 1, "step", step,
                                            "loss", ep_steps ? ep_loss / ep_steps : 0.0));
        }
        if (!cfg->quiet) dp_progress_finish(&prog, NULL);
        rep->train_seconds = dp_time_mono() - tt;
        rep->steps = step;
        rep->tokens_per_s = rep->train_seconds > 0 ? tokens / rep->train_seconds : 0;
        planned_steps = total;
    }

    // ---- after, and the gate ----
    if ((st = train_evaluate(model, tok, &wheld, &rep->heldout_after, NULL, NULL, err)) ||
        (st = train_evaluate(model, tok, &canary, &rep->canary_after, NULL, NULL, err)))
        goto out;
    if (cfg->eval_path &&
        (st = train_evaluate(model, tok, &extra, &rep->eval_after, extra_after, NULL, err)))
        goto out;
    {
        double b = em_of(&rep->canary_before), a = em_of(&rep->canary_after);
        rep->gate_passed = a >= b - cfg->gate_margin - 1e-12;
        snprintf(rep->gate_reason, sizeof rep->gate_reason,
                 "canary exact match %.4f -> %.4f (%+.4f; allowed drop %.4f): %s", b, a, a - b,
                 cfg->gate_margin, rep->gate_passed ? "pass" : "refused");
    }

    // ---- write the model ----
    if (cfg->out_dir) {
        snprintf(out_dir, sizeof out_dir, "%s", cfg->out_dir);
    } else if (rep->gate_passed && cfg->registry_dir) {
        snprintf(out_dir, sizeof out_dir, "%s/.retrain-%d-XXXXXX", cfg->registry_dir, (int)getpid());
        if ((st = dp_mkdirs(cfg->registry_dir, err))) goto out;
        if (!mkdtemp(out_dir)) {
            st = dp_fail(err, DP_ERR_IO, "mkdtemp %s: %s", out_dir, strerror(errno));
            goto out;
        }
        out_is_temp = 1;
    }
    if (out_dir[0]) {
        char src[4096], dst[4096];
        if ((st = gpt2_save_dir(model, out_dir, model_dir, err))) goto out;
        snprintf(src, sizeof src, "%s/added_tokens.json", model_dir);
        snprintf(dst, sizeof dst, "%s/added_tokens.json", out_dir);
        if (dp_file_exists(src) && (st = copy_file(src, dst, err))) goto out;
        if (has_world && (st = train_world_save(&wc, out_dir, err))) goto out;
    }
    rep->seconds = dp_time_mono() - t0;

    // ---- the job record ----
    {
        json_t *metrics = json_pack(
            "{s:{s:o,s:o},s:{s:o,s:o}}", "before", "heldout", train_eval_json(&rep->heldout_before),
            "canary", train_eval_json(&rep->canary_before), "after", "heldout",
            train_eval_json(&rep->heldout_after), "canary", train_eval_json(&rep->canary_after));
        json_t *rec = json_pack(
            "{s:s,s:s,s:s,s:f,s:f,s:f,s:i,s:O,s:o,s:{s:b,s:f,s:f,s:f,s:s},s:{s:s,s:s,s:i,s:i,"
            "s:i,s:i,s:I,s:I,s:i},s:{s:i,s:i,s:f,s:i,s:b,s:f,s:f,s:i,s:I}}",
            "job", "retrain", "from", cfg->from, "parent", rep->parent, "duration_s", rep->seconds,
            "train_seconds", rep->train_seconds, "tokens_per_s", rep->tokens_per_s, "steps",
            rep->steps, "loss_curve", loss_curve, "metrics", metrics, "gate", "passed",
            rep->gate_passed, "margin", cfg->gate_margin, "canary_em_before",
            em_of(&rep->canary_before), "canary_em_after", em_of(&rep->canary_after), "reason",
            rep->gate_reason, "data", "path", cfg->data_path, "fingerprint", rep->fingerprint,
            "n_window", rep->n_window, "n_train", rep->n_train, "n_heldout", rep->n_heldout,
            "n_canary", rep->n_canary, "n_training_rows", (json_int_t)rows.n, "replay_pool",
            (json_int_t)pool.n, "facts_in_window", (int)facts.n, "config", "window", cfg->window,
            "epochs", cfg->epochs, "lr", (double)cfg->lr, "replay", cfg->replay, "augment",
            cfg->augment, "heldout_frac", cfg->heldout_frac, "gate_margin", cfg->gate_margin,
            "batch", cfg->batch, "seed", (json_int_t)cfg->seed);
        if (!rec) {
            st = dp_fail(err, DP_ERR_NOMEM, "retrain: building the job record");
            goto out;
        }
        json_object_set_new(rec, "world", json_boolean(has_world));
        json_object_set_new(rec, "planned_steps", json_integer(planned_steps));
        json_object_set_new(rec, "replay_rows_per_epoch", json_integer(rep_replay));
        json_object_set_new(rec, "epochs", json_integer(rep_epochs));
        json_object_set_new(rec, "stopped_early", json_boolean(rep->steps < planned_steps));
        if (rep->steps > 0)
            json_object_set_new(rec, "extrapolated_train_seconds",
                                json_real(rep->train_seconds / rep->steps * planned_steps));
        if (cfg->eval_path) {
            json_t *eb = train_eval_json(&rep->eval_before), *ea = train_eval_json(&rep->eval_after);
            json_object_set_new(eb, "groups", eval_groups(w, &extra, extra_before, &facts));
            json_object_set_new(ea, "groups", eval_groups(w, &extra, extra_after, &facts));
            json_object_set_new(rec, "eval", json_pack("{s:s,s:o,s:o}", "path", cfg->eval_path,
                                                       "before", eb, "after", ea));
        }
        json_object_set_new(rec, "version", json_null());
        rep->record = rec;
    }

    // ---- publish ----
    if (rep->gate_passed && cfg->registry_dir) {
        if (!reg && (st = registry_open(cfg->registry_dir, &reg, err))) goto out;
        json_t *metrics = json_pack("{s:o,s:o}", "before",
                                    json_pack("{s:f,s:f,s:f,s:f}", "heldout_em",
                                              em_of(&rep->heldout_before), "heldout_f1",
                                              rep->heldout_before.all.f1, "canary_em",
                                              em_of(&rep->canary_before), "heldout_bleu1",
                                              rep->heldout_before.all.bleu1_corpus),
                                    "after",
                                    json_pack("{s:f,s:f,s:f,s:f}", "em", em_of(&rep->heldout_after),
                                              "f1", rep->heldout_after.all.f1, "canary_em",
                                              em_of(&rep->canary_after), "bleu1",
                                              rep->heldout_after.all.bleu1_corpus));
        RegistryPublishInfo info = {.parent = rep->parent[0] ? rep->parent : NULL,
                                    .data_file = cfg->data_path,
                                    .metrics = metrics,
                                    .job = rep->record};
        st = registry_publish(reg, out_dir, &info, rep->version, err);
        json_decref(metrics);
        if (st) goto out;
        json_object_set_new(rep->record, "version", json_string(rep->version));
        if (cfg->target && (st = registry_promote(reg, rep->version, cfg->target, err))) goto out;
        json_object_set_new(rep->record, "promoted_on",
                            cfg->target ? json_string(cfg->target) : json_null());
    }
    if (cfg->record_path) {
        char *text = json_dumps(rep->record, JSON_INDENT(2));
        if (!text) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        st = dp_write_file_atomic(cfg->record_path, text, strlen(text), err);
        free(text);
    }
out:
    if (out_is_temp) remove_dir_files(out_dir);
    json_decref(loss_curve);
    free(order);
    free(starts);
    free(ep_rows);
    free(batch);
    factset_free(&facts);
    train_rows_free(&rows);
    train_rows_free(&pool);
    qa_dataset_free(&data);
    qa_dataset_free(&win);
    qa_dataset_free(&wtrain);
    qa_dataset_free(&wheld);
    qa_dataset_free(&canary);
    qa_dataset_free(&replay_ds);
    qa_dataset_free(&extra);
    free(extra_before);
    free(extra_after);
    qa_world_destroy(w);
    gpt2_free(model);
    bpe_free(tok);
    registry_close(reg);
    if (st) retrain_report_free(rep);
    return st;
}
