/* Tests of the built-in model and the retrain job: rows and masks, the LR
 * schedule, loading labelled data, and an integration test in which a tiny
 * model pretrains on a small world, the world drifts, and one retrain brings
 * exact match back (with the gate, the registry and the job record), plus the
 * Hugging Face directory path with the real GPT-2 tokenizer. */
#include "test.h"
#include "train.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *make_tmpdir(void) {
    char tmpl[] = "/tmp/dp-test-train-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static void rm_rf(const char *dir) {
    if (!dir || strncmp(dir, "/tmp/dp-test-train-", 19) != 0) return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

// ---- small pieces ----

static void test_lr_schedule(void) {
    EXPECT(train_lr_at(1.0f, 0.1f, 0.1f, 0.0) < 0.02f);
    EXPECT_NEAR(train_lr_at(1.0f, 0.1f, 0.1f, 0.05), 0.5f, 1e-3);
    EXPECT_NEAR(train_lr_at(1.0f, 0.1f, 0.1f, 0.1000001), 1.0f, 1e-5);
    EXPECT_NEAR(train_lr_at(1.0f, 0.1f, 0.1f, 0.55), 0.55f, 1e-4);
    EXPECT_NEAR(train_lr_at(1.0f, 0.1f, 0.1f, 1.0), 0.1f, 1e-6);
    EXPECT_NEAR(train_lr_at(2.0f, 0.0f, 0.0f, 0.5), 1.0f, 1e-6);
}

static void test_rows_mask_and_step(void) {
    const char *texts[] = {"Q: What is the capital of France?\nA: paris\n",
                           "Q: What is the capital of Italy?\nA: rome\n",
                           "Q: What is 12 plus 30?\nA: 42\n"};
    BpeTrainOptions o;
    memset(&o, 0, sizeof o);
    o.vocab_size = 300;
    o.keep_digits_apart = 1;
    BpeTokenizer *tok = NULL;
    DpError err;
    REQUIRE(bpe_train(texts, NULL, 3, &o, &tok, &err) == DP_OK);
    TrainRows rows = {0};
    REQUIRE(train_rows_add(&rows, tok, "What is the capital of France?", NULL, "paris",
                           TRAIN_CAT_OTHER, 64, &err) == DP_OK);
    REQUIRE(train_rows_add(&rows, tok, "What is the capital of Italy?", NULL, "rome",
                           TRAIN_CAT_OTHER, 64, &err) == DP_OK);
    REQUIRE(train_rows_add(&rows, tok, "What is 12 plus 30?", NULL, "42", TRAIN_CAT_ARITHMETIC,
                           64, &err) == DP_OK);
    REQUIRE(rows.n == 3);
    /* The answer part decodes to exactly the answer target. */
    char *s = NULL;
    size_t n = 0;
    const TrainRow *r = &rows.rows[0];
    REQUIRE(bpe_decode(tok, r->ids + r->n_prompt, (size_t)(r->n_ids - r->n_prompt), &s, &n, &err) ==
            DP_OK);
    EXPECT_STREQ(s, " paris\n");
    free(s);
    REQUIRE(bpe_decode(tok, r->ids, (size_t)r->n_prompt, &s, &n, &err) == DP_OK);
    EXPECT_STREQ(s, "Q: What is the capital of France?\nA:");
    free(s);
    /* Digits stay apart: " 42\n" is at least 3 tokens. */
    EXPECT(rows.rows[2].n_ids - rows.rows[2].n_prompt >= 3);
    /* A row longer than max_len keeps its answer and loses prompt tokens. */
    TrainRows cut = {0};
    REQUIRE(train_rows_add(&cut, tok, "What is the capital of France?", NULL, "paris", 0, 6,
                           &err) == DP_OK);
    EXPECT_EQ_INT(cut.n, 1);
    EXPECT_EQ_INT(cut.n_truncated, 1);
    EXPECT_EQ_INT(cut.rows[0].n_ids, 6);
    train_rows_free(&cut);

    /* Training steps on answer tokens lower the answer loss. */
    Gpt2Config c;
    memset(&c, 0, sizeof c);
    c.n_layer = 1;
    c.n_head = 2;
    c.n_embd = 32;
    c.n_inner = 128;
    c.n_positions = 64;
    c.vocab_size = bpe_vocab_size(tok);
    c.layer_norm_epsilon = 1e-5f;
    c.bos_token_id = c.eos_token_id = bpe_eot_id(tok);
    Gpt2 *m = NULL;
    REQUIRE(gpt2_create(&c, 3, &m, &err) == DP_OK);
    REQUIRE(gpt2_reserve(m, 3, 63, GPT2_RESERVE_TRAIN, &err) == DP_OK);
    double before = 0, after = 0;
    REQUIRE(train_loss(m, &rows, 2, bpe_eot_id(tok), &before, &err) == DP_OK);
    Gpt2AdamW opt = gpt2_adamw_default();
    opt.lr = 1e-2f;
    const TrainRow *batch[3] = {&rows.rows[0], &rows.rows[1], &rows.rows[2]};
    for (int step = 1; step <= 40; step++) {
        float l;
        long tk;
        REQUIRE(train_step(m, batch, 3, &opt, step, 1.0f, bpe_eot_id(tok), &l, &tk, &err) ==
                DP_OK);
        EXPECT(tk > 0);
    }
    REQUIRE(train_loss(m, &rows, 2, bpe_eot_id(tok), &after, &err) == DP_OK);
    EXPECT_MSG(before > 3.0 && after < 0.5, "answer loss %.3f -> %.3f", before, after);
    /* Greedy decoding reproduces the memorised answers. */
    QaDataset ds;
    qa_dataset_init(&ds);
    QaAnswer a1 = {"paris", -1}, a2 = {"42", -1};
    QaItem it;
    memset(&it, 0, sizeof it);
    it.question = "What is the capital of France?";
    it.answers = &a1;
    it.n_answers = 1;
    REQUIRE(qa_dataset_add(&ds, &it, &err) == DP_OK);
    it.question = "What is 12 plus 30?";
    it.answers = &a2;
    it.kind = QA_KIND_ARITHMETIC;
    REQUIRE(qa_dataset_add(&ds, &it, &err) == DP_OK);
    TrainEval ev;
    int correct[2];
    char **preds = NULL;
    REQUIRE(train_evaluate(m, tok, &ds, &ev, correct, &preds, &err) == DP_OK);
    EXPECT_STREQ(preds[0], "paris");
    EXPECT_STREQ(preds[1], "42");
    EXPECT_EQ_INT(correct[0], 1);
    EXPECT_NEAR(ev.all.exact_match, 1.0, 1e-12);
    EXPECT_EQ_INT(ev.cat[TRAIN_CAT_ARITHMETIC].n, 1);
    train_predictions_free(preds, ds.n_items);
    qa_dataset_free(&ds);
    gpt2_free(m);
    train_rows_free(&rows);
    bpe_free(tok);
}

static void test_load_labelled(void) {
    char *dir = make_tmpdir();
    REQUIRE(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/log.jsonl", dir);
    REQUIRE(write_text(path,
                       "{\"question\": \"Who owns service jade-3?\", \"reference\": \"ads\", "
                       "\"kind\": \"fact\", \"entity\": \"jade-3\", \"attribute\": \"owner\"}\n"
                       "\n"
                       "{\"question\": \"Q2\", \"context\": \"some text\", \"references\": "
                       "[\"a\", \"b\"]}\n"
                       "{\"question\": \"Q3\", \"answers\": [{\"text\": \"x\"}]}\n"
                       "{\"time\": 1.5, \"id\": \"r7\", \"question\": \"Q4\", \"context\": null, "
                       "\"prediction\": \"y\", \"reference\": \"z\", \"model_version\": \"v000001\"}\n"));
    QaDataset ds;
    DpError err;
    REQUIRE(train_load_labelled(path, &ds, &err) == DP_OK);
    EXPECT_EQ_INT(ds.n_items, 4);
    EXPECT_EQ_INT(ds.items[0].kind, QA_KIND_FACT);
    EXPECT_STREQ(ds.items[0].entity, "jade-3");
    EXPECT_STREQ(ds.items[0].answers[0].text, "ads");
    EXPECT_EQ_INT(ds.items[1].n_answers, 2);
    EXPECT_STREQ(ds.items[1].context, "some text");
    EXPECT_STREQ(ds.items[2].answers[0].text, "x");
    /* The inference service's label log line (serve/feedback.c). */
    EXPECT_STREQ(ds.items[3].id, "r7");
    EXPECT_STREQ(ds.items[3].context, "");
    EXPECT_STREQ(ds.items[3].answers[0].text, "z");
    qa_dataset_free(&ds);
    REQUIRE(write_text(path, "{\"question\": \"a\", \"reference\": \"b\"}\n{\"question\": \"c\"}\n"));
    EXPECT(train_load_labelled(path, &ds, &err) == DP_ERR_PARSE);
    EXPECT_MSG(strstr(err.msg, "line 2") != NULL, "%s", err.msg);
    REQUIRE(write_text(path, "{\"question\": \"a\", \"reference\": \"b\"}\n{oops\n"));
    EXPECT(train_load_labelled(path, &ds, &err) == DP_ERR_PARSE);
    EXPECT_MSG(strstr(err.msg, "line 2") != NULL, "%s", err.msg);
    /* SQuAD JSON is recognised and read whole. */
    REQUIRE(train_load_labelled(DP_TEST_DATA "/qa/squad-v2.0-dev-haystack-small/small.json", &ds,
                                &err) == DP_OK);
    EXPECT(ds.n_items > 100);
    qa_dataset_free(&ds);
    rm_rf(dir);
    free(dir);
}

// ---- integration: pretrain, drift, retrain ----

/* Under AddressSanitizer (a Debug build, many times slower) the integration
 * test runs the same code paths on a shorter schedule and checks structure,
 * gate and record only; the quality thresholds are asserted in Release. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif
#define QUALITY(cond) do { if (!SANITIZED) EXPECT(cond); } while (0)

static void tiny_world(QaWorldConfig *w) {
    qa_world_config_default(w);
    w->seed = 5;
    w->n_services = 12;
    w->max_services = 12 + 4;
    w->attributes = QA_ATTR_MASK(QA_ATTR_OWNER) | QA_ATTR_MASK(QA_ATTR_LANGUAGE);
    /* Traffic asks facts only: the tiny model cannot learn arithmetic in the
     * seconds this test has (the built-in world measures all three; see
     * docs/train.md). */
    w->mix_start = (QaMix){1.0, 0.0, 0.0};
    w->mix_end = w->mix_start;
    w->mix_period_s = 0;
}

static int fact_index(const QaWorld *w, const QaItem *it) {
    for (int e = 0; e < qa_world_n_entities(w); e++)
        if (it->entity && strcmp(qa_world_entity_name(w, e), it->entity) == 0) {
            QaAttr a;
            if (qa_attr_from_name(it->attribute, &a, NULL) != DP_OK) return -1;
            return e * QA_N_ATTRS + (int)a;
        }
    return -1;
}

/* Writes ds as the inference service's labelled log: question and reference
 * only (the job must find the facts from the question text). */
static int write_log(const QaDataset *ds, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    for (size_t i = 0; i < ds->n_items; i++) {
        json_t *o = json_pack("{s:s,s:s,s:s}", "question", ds->items[i].question, "reference",
                              ds->items[i].answers[0].text, "kind",
                              qa_kind_name(ds->items[i].kind));
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(f, "%s\n", s);
        free(s);
        json_decref(o);
    }
    return fclose(f) == 0;
}

static void test_integration_drift_and_retrain(void) {
    char *dir = make_tmpdir();
    REQUIRE(dir);
    char model[512], regdir[512], window[512], canary[512], record[512], bad_record[512];
    snprintf(model, sizeof model, "%s/base", dir);
    snprintf(regdir, sizeof regdir, "%s/registry", dir);
    snprintf(window, sizeof window, "%s/window.jsonl", dir);
    snprintf(canary, sizeof canary, "%s/canary.jsonl", dir);
    snprintf(record, sizeof record, "%s/job.json", dir);
    snprintf(bad_record, sizeof bad_record, "%s/bad.json", dir);
    DpError err;

    PretrainConfig pc;
    pretrain_config_default(&pc);
    tiny_world(&pc.world);
    pc.n_layer = 2;
    pc.n_head = 2;
    pc.n_embd = 64;
    pc.n_positions = 96;
    pc.max_steps = SANITIZED ? 250 : 600;
    pc.minutes = 0;
    pc.lr = 3e-3f;
    pc.mix_fact = 0.8;
    pc.mix_comprehension = 0.05;
    pc.mix_arithmetic = 0.15;
    pc.eval_n = 100;
    pc.quiet = 1;
    PretrainReport pr;
    double t0 = dp_time_mono();
    REQUIRE(pretrain_run(&pc, model, &pr, &err) == DP_OK);
    fprintf(stderr, "  pretrain: %d steps %.1f s, %.0f tok/s, facts EM %.3f (held-out %.3f)\n",
            pr.steps, pr.seconds, pr.tokens_per_s, pr.facts_train.all.exact_match,
            pr.facts_heldout.all.exact_match);
    QUALITY(pr.facts_train.all.exact_match >= 0.9);
    EXPECT(pr.tokens_per_s > 0 && pr.steps == pc.max_steps);
    const char *files[] = {"config.json", "model.safetensors", "vocab.json", "merges.txt",
                           "driftpilot_world.json", "pretrain_report.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", model, files[i]);
        EXPECT_MSG(dp_file_exists(p), "%s missing", p);
    }
    pretrain_report_free(&pr);

    /* The world drifts: 30% of facts change at 1 h; traffic at 2 h. */
    QaWorldConfig wc;
    tiny_world(&wc);
    REQUIRE(qa_world_schedule_parse("sudden:1h:0.3", &wc, &err) == DP_OK);
    QaWorld *w = NULL;
    REQUIRE(qa_world_create(&wc, &w, &err) == DP_OK);
    double t = 7200;
    QaDataset before_ds = {0}, after_ds = {0}, win = {0}, can = {0};
    REQUIRE(qa_world_generate(w, 0, 400, 91, &before_ds, &err) == DP_OK);
    REQUIRE(qa_world_generate(w, t, 400, 92, &after_ds, &err) == DP_OK);
    REQUIRE(qa_world_generate(w, t - 600, 300, 93, &win, &err) == DP_OK);
    REQUIRE(write_log(&win, window));
    int covered[16 * QA_N_ATTRS] = {0};
    for (size_t i = 0; i < win.n_items; i++) {
        int k = fact_index(w, &win.items[i]);
        if (k >= 0) covered[k] = 1;
    }
    /* Canary: the facts that did not change, as a file (a fixed set the
     * parent answers well, so a damaged model shows). */
    {
        QaDataset all = {0}, keep;
        REQUIRE(qa_world_all_facts(w, t, QA_PHRASING_TRAIN, &all, &err) == DP_OK);
        qa_dataset_init(&keep);
        for (size_t i = 0; i < all.n_items; i++)
            if (all.items[i].changed == 0) REQUIRE(qa_dataset_add(&keep, &all.items[i], &err) == DP_OK);
        REQUIRE(write_log(&keep, canary));
        qa_dataset_free(&all);
        qa_dataset_free(&keep);
    }

    BpeTokenizer *tok = NULL;
    Gpt2 *m0 = NULL;
    REQUIRE(bpe_load_dir(model, &tok, &err) == DP_OK);
    REQUIRE(gpt2_load_dir(model, &m0, &err) == DP_OK);
    TrainEval e_t0, e_drift;
    int *c_t0 = calloc(before_ds.n_items, sizeof(int));
    int *c_drift = calloc(after_ds.n_items, sizeof(int));
    REQUIRE(train_evaluate(m0, tok, &before_ds, &e_t0, c_t0, NULL, &err) == DP_OK);
    REQUIRE(train_evaluate(m0, tok, &after_ds, &e_drift, c_drift, NULL, &err) == DP_OK);
    /* Pre-drift level of unchanged facts: the same facts at t = 0. */
    double unch_pre = 0;
    int n_unch = 0;
    for (size_t i = 0; i < after_ds.n_items; i++)
        if (after_ds.items[i].changed == 0) {
            unch_pre += c_drift[i];
            n_unch++;
        }
    unch_pre = n_unch ? unch_pre / n_unch : 0;
    fprintf(stderr, "  traffic EM: t=0 %.3f, after drift %.3f (unchanged facts %.3f)\n",
            e_t0.all.exact_match, e_drift.all.exact_match, unch_pre);
    QUALITY(e_t0.all.exact_match >= 0.9);
    QUALITY(e_t0.all.exact_match - e_drift.all.exact_match >= 0.2);

    /* Publish the base, then retrain it from the registry. */
    Registry *reg = NULL;
    char v1[REGISTRY_ID_MAX];
    REQUIRE(registry_open(regdir, &reg, &err) == DP_OK);
    RegistryPublishInfo info = {0};
    REQUIRE(registry_publish(reg, model, &info, v1, &err) == DP_OK);
    REQUIRE(registry_promote(reg, v1, "main", &err) == DP_OK);

    RetrainConfig rc;
    retrain_config_default(&rc);
    rc.from = v1;
    rc.data_path = window;
    rc.registry_dir = regdir;
    rc.target = "main";
    rc.canary_path = canary;
    rc.record_path = record;
    rc.quiet = 1;
    if (SANITIZED) {  /* short schedule: let the publish path run whatever the canary says */
        rc.epochs = 3;
        rc.min_steps = 0;
        rc.gate_margin = 1.0;
    }
    RetrainReport rr;
    double tr0 = dp_time_mono();
    REQUIRE(retrain_run(&rc, &rr, &err) == DP_OK);
    double retrain_s = dp_time_mono() - tr0;
    fprintf(stderr, "  retrain: %.1f s (%d steps, %.0f tok/s), held-out EM %.3f -> %.3f, %s\n",
            retrain_s, rr.steps, rr.tokens_per_s, rr.heldout_before.all.exact_match,
            rr.heldout_after.all.exact_match, rr.gate_reason);
    EXPECT(rr.gate_passed);
    EXPECT(rr.version[0] != 0);
    QUALITY(retrain_s < 90);
    char cur[REGISTRY_ID_MAX] = "";
    EXPECT(registry_current(reg, "main", cur, &err) == DP_OK);
    EXPECT_STREQ(cur, rr.version);
    RegistryMeta meta = {0};
    REQUIRE(registry_get_meta(reg, rr.version, &meta, &err) == DP_OK);
    EXPECT_STREQ(meta.parent, v1);
    EXPECT_STREQ(meta.data_fingerprint, rr.fingerprint);
    EXPECT(meta.job != NULL);
    registry_meta_free(&meta);

    /* The job record on disk agrees with the run. */
    json_error_t je;
    json_t *rec = json_load_file(record, 0, &je);
    REQUIRE(rec);
    EXPECT_STREQ(json_string_value(json_object_get(rec, "parent")), v1);
    EXPECT_STREQ(json_string_value(json_object_get(rec, "version")), rr.version);
    EXPECT(json_number_value(json_object_get(rec, "duration_s")) > 0);
    EXPECT(json_number_value(json_object_get(rec, "tokens_per_s")) > 0);
    int epochs_run = (int)json_integer_value(json_object_get(rec, "epochs"));
    EXPECT(epochs_run >= rc.epochs);
    EXPECT(json_integer_value(json_object_get(rec, "steps")) >= rc.min_steps);
    EXPECT_EQ_INT(json_array_size(json_object_get(rec, "loss_curve")), epochs_run);
    {
        json_t *lc = json_object_get(rec, "loss_curve");
        double first = json_number_value(json_object_get(json_array_get(lc, 0), "loss"));
        double last = json_number_value(json_object_get(json_array_get(lc, epochs_run - 1), "loss"));
        EXPECT_MSG(last < first || SANITIZED, "loss %.3f -> %.3f", first, last);
    }
    json_t *data = json_object_get(rec, "data");
    char hex[65];
    REQUIRE(dp_sha256_file(window, hex, &err) == DP_OK);
    char fp[80];
    snprintf(fp, sizeof fp, "sha256:%s", hex);
    EXPECT_STREQ(json_string_value(json_object_get(data, "fingerprint")), fp);
    EXPECT_EQ_INT(json_integer_value(json_object_get(data, "n_train")) +
                      json_integer_value(json_object_get(data, "n_heldout")),
                  json_integer_value(json_object_get(data, "n_window")));
    EXPECT_EQ_INT(json_integer_value(json_object_get(data, "n_window")), 300);
    EXPECT(json_is_true(json_object_get(json_object_get(rec, "gate"), "passed")));
    EXPECT_NEAR(json_number_value(json_object_get(
                    json_object_get(json_object_get(json_object_get(rec, "metrics"), "after"),
                                    "canary"),
                    "exact_match")),
                rr.canary_after.all.exact_match, 1e-12);
    json_decref(rec);

    /* What the new version answers now. */
    char vdir[1024];
    REQUIRE(registry_open_version(reg, rr.version, NULL, vdir, sizeof vdir, &err) == DP_OK);
    Gpt2 *m1 = NULL;
    REQUIRE(gpt2_load_dir(vdir, &m1, &err) == DP_OK);
    TrainEval e_after;
    int *c_after = calloc(after_ds.n_items, sizeof(int));
    REQUIRE(train_evaluate(m1, tok, &after_ds, &e_after, c_after, NULL, &err) == DP_OK);
    double ch_cov = 0, unch = 0;
    int n_ch_cov = 0;
    n_unch = 0;
    for (size_t i = 0; i < after_ds.n_items; i++) {
        const QaItem *it = &after_ds.items[i];
        int k = fact_index(w, it);
        if (k < 0) continue;
        if (it->changed == 1 && covered[k]) {
            ch_cov += c_after[i];
            n_ch_cov++;
        }
        if (it->changed == 0) {
            unch += c_after[i];
            n_unch++;
        }
    }
    ch_cov = n_ch_cov ? ch_cov / n_ch_cov : 0;
    unch = n_unch ? unch / n_unch : 0;
    /* Arithmetic on held-out pairs, before and after. */
    QaDataset ar;
    qa_dataset_init(&ar);
    DpRng rng;
    dp_rng_seed(&rng, 17);
    for (int i = 0; i < 100; i++) {
        QaWorldSample s;
        qa_world_sample_kind(w, 0, QA_KIND_ARITHMETIC, QA_PHRASING_TRAIN, &rng, &s);
        char id[16];
        snprintf(id, sizeof id, "a%d", i);
        REQUIRE(qa_dataset_add_sample(&ar, &s, id, &err) == DP_OK);
    }
    TrainEval ar0, ar1;
    REQUIRE(train_evaluate(m0, tok, &ar, &ar0, NULL, NULL, &err) == DP_OK);
    REQUIRE(train_evaluate(m1, tok, &ar, &ar1, NULL, NULL, &err) == DP_OK);
    fprintf(stderr,
            "  after retrain: traffic EM %.3f, changed+covered %.3f (n=%d), unchanged %.3f "
            "(pre %.3f), arithmetic %.3f (pre %.3f)\n",
            e_after.all.exact_match, ch_cov, n_ch_cov, unch, unch_pre,
            ar1.all.exact_match, ar0.all.exact_match);
    QUALITY(e_after.all.exact_match >= 0.75);
    QUALITY(n_ch_cov > 0 && ch_cov >= 0.7);
    QUALITY(unch >= 0.9 * unch_pre);
    /* The tiny model barely knows arithmetic; it must not lose what it has
     * (with 0.02 of slack for 100 items). */
    QUALITY(ar1.all.exact_match >= 0.9 * ar0.all.exact_match - 0.02);

    /* A deliberately bad fine-tune (learning rate far too high) is refused by
     * the gate and not published. */
    RetrainConfig bad = rc;
    bad.from = rr.version;
    bad.lr = 0.3f;
    bad.epochs = 2;
    bad.min_steps = 0;
    bad.gate_margin = 0.02;
    bad.record_path = bad_record;
    RetrainReport br;
    RegistryMeta *vs = NULL;
    size_t n_before = 0, n_after = 0;
    REQUIRE(registry_list(reg, &vs, &n_before, &err) == DP_OK);
    registry_list_free(vs, n_before);
    REQUIRE(retrain_run(&bad, &br, &err) == DP_OK);
    fprintf(stderr, "  bad retrain: %s\n", br.gate_reason);
    EXPECT(!br.gate_passed);
    EXPECT_STREQ(br.version, "");
    REQUIRE(registry_list(reg, &vs, &n_after, &err) == DP_OK);
    registry_list_free(vs, n_after);
    EXPECT_EQ_INT(n_after, n_before);
    EXPECT(registry_current(reg, "main", cur, &err) == DP_OK);
    EXPECT_STREQ(cur, rr.version);
    rec = json_load_file(bad_record, 0, &je);
    REQUIRE(rec);
    EXPECT(json_is_false(json_object_get(json_object_get(rec, "gate"), "passed")));
    EXPECT(json_is_null(json_object_get(rec, "version")));
    json_decref(rec);
    retrain_report_free(&br);
    retrain_report_free(&rr);
    fprintf(stderr, "  integration total %.1f s\n", dp_time_mono() - t0);

    qa_dataset_free(&ar);
    free(c_t0);
    free(c_drift);
    free(c_after);
    gpt2_free(m0);
    gpt2_free(m1);
    bpe_free(tok);
    registry_close(reg);
    qa_dataset_free(&before_ds);
    qa_dataset_free(&after_ds);
    qa_dataset_free(&win);
    qa_dataset_free(&can);
    qa_world_destroy(w);
    rm_rf(dir);
    free(dir);
}

// ---- Hugging Face directories ----

static void test_hf_dir_without_tokenizer(void) {
    RetrainConfig rc;
    retrain_config_default(&rc);
    rc.from = DP_TEST_DATA "/gpt2-tiny";
    rc.data_path = DP_TEST_DATA "/qa/squad-v1.1-dev-xquad-en/xquad.en.json";
    rc.quiet = 1;
    RetrainReport rr;
    DpError err;
    EXPECT(retrain_run(&rc, &rr, &err) != DP_OK);
    EXPECT_MSG(strstr(err.msg, "tokenizer") != NULL, "%s", err.msg);
}

/* A model of GPT-2's vocabulary (50257, the real tokenizer) in a Hugging Face
 * directory, as DistilGPT-2 comes, but tiny: the retrain job runs end to end
 * on real SQuAD rows and writes a directory that loads again. */
static void test_hf_dir_gpt2_tokenizer(void) {
    char *dir = make_tmpdir();
    REQUIRE(dir);
    char src[512], out[512];
    snprintf(src, sizeof src, "%s/gpt2-small-random", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    Gpt2Config c;
    memset(&c, 0, sizeof c);
    c.n_layer = 1;
    c.n_head = 2;
    c.n_embd = 32;
    c.n_inner = 128;
    c.n_positions = 96;
    c.vocab_size = 50257;
    c.layer_norm_epsilon = 1e-5f;
    c.bos_token_id = c.eos_token_id = 50256;
    Gpt2 *m = NULL;
    DpError err;
    REQUIRE(gpt2_create(&c, 9, &m, &err) == DP_OK);
    REQUIRE(gpt2_save_dir(m, src, DP_TEST_DATA "/gpt2-tokenizer", &err) == DP_OK);
    gpt2_free(m);
    RetrainConfig rc;
    retrain_config_default(&rc);
    rc.from = src;
    rc.data_path = DP_TEST_DATA "/qa/squad-v1.1-dev-xquad-en/xquad.en.json";
    rc.window = 24;
    rc.heldout_frac = 0.25;
    rc.epochs = 2;
    rc.batch = 4;
    rc.lr = 5e-3f;
    rc.min_steps = 0;
    rc.out_dir = out;
    rc.quiet = 1;
    RetrainReport rr;
    REQUIRE(retrain_run(&rc, &rr, &err) == DP_OK);
    EXPECT_EQ_INT(rr.n_window, 24);
    EXPECT_EQ_INT(rr.n_heldout, 6);
    EXPECT_EQ_INT(rr.n_canary, 6);  /* no world: the canary is the held-out window */
    EXPECT_EQ_INT(rr.steps, 2 * 5);
    EXPECT(rr.tokens_per_s > 0);
    EXPECT(json_is_false(json_object_get(rr.record, "world")));
    Gpt2 *back = NULL;
    REQUIRE(gpt2_load_dir(out, &back, &err) == DP_OK);
    EXPECT_EQ_INT(back->config.vocab_size, 50257);
    gpt2_free(back);
    char p[600];
    snprintf(p, sizeof p, "%s/merges.txt", out);
    EXPECT(dp_file_exists(p));
    retrain_report_free(&rr);
    rm_rf(dir);
    free(dir);
}

// ---- the commands ----

static int run_status(const char *cmd) {
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_usage(void) {
    REQUIRE(access(DP_BINARY, X_OK) == 0);
    EXPECT_EQ_INT(run_status(DP_BINARY " pretrain --help >/dev/null"), 0);
    EXPECT_EQ_INT(run_status(DP_BINARY " retrain --help >/dev/null"), 0);
    EXPECT_EQ_INT(run_status(DP_BINARY " pretrain --bogus 2>/dev/null"), 2);
    EXPECT_EQ_INT(run_status(DP_BINARY " pretrain --width 100 --heads 3 2>/dev/null"), 2);
    EXPECT_EQ_INT(run_status(DP_BINARY " retrain --from x 2>/dev/null"), 2);
    EXPECT_EQ_INT(run_status(DP_BINARY " retrain --data y 2>/dev/null"), 2);
    EXPECT_EQ_INT(run_status(DP_BINARY " retrain --from /nonexistent --data /nonexistent 2>/dev/null"), 1);
    EXPECT_EQ_INT(run_status(DP_BINARY " retrain --from " DP_TEST_DATA "/gpt2-tiny --data " DP_TEST_DATA
                             "/qa/squad-v1.1-dev-xquad-en/xquad.en.json 2>/dev/null"), 1);
}

int main(int argc, char **argv) {
    /* On a busy 2-core box the engine's spinning OpenMP threads slow training
     * several-fold (see docs/train.md); libgomp reads its wait policy at start,
     * so set it and start again.  If exec fails, run as we are. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    static const TestCase cases[] = {
        TEST_CASE(test_lr_schedule),
        TEST_CASE(test_rows_mask_and_step),
        TEST_CASE(test_load_labelled),
        TEST_CASE(test_cli_usage),
        TEST_CASE(test_hf_dir_without_tokenizer),
        TEST_CASE(test_hf_dir_gpt2_tokenizer),
        TEST_CASE(test_integration_drift_and_retrain),
    };
    return test_main(cases, (int)(sizeof cases / sizeof *cases), argc, argv);
}
