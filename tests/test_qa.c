/* Tests of src/qa: the metrics against NLTK and the official SQuAD script
 * (310 reference cases), the SQuAD loader on real v1.1 and v2.0 files, the
 * drifting world's determinism and drift schedules, the prompt format, and
 * `driftpilot score` when the binary is built. */
#include "qa.h"
#include "test.h"

#include <jansson.h>
#include <stdint.h>
#include <unistd.h>

#define XQUAD DP_TEST_DATA "/qa/squad-v1.1-dev-xquad-en/xquad.en.json"
#define SQUAD2 DP_TEST_DATA "/qa/squad-v2.0-dev-haystack-small/small.json"
#define CASES DP_TEST_DATA "/qa/metric_cases.jsonl"

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "/tmp/dp_test_qa_%d_%s", (int)getpid(), name);
}

// ---- metrics ----

static void test_metric_reference_cases(void) {
    FILE *f = fopen(CASES, "r");
    REQUIRE(f);
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0, saw_corpus = 0;
    QaCorpus corpus;
    qa_corpus_init(&corpus);
    while (getline(&line, &cap, f) != -1) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        REQUIRE(o);
        if (json_is_true(json_object_get(o, "corpus"))) {
            QaCorpusScores cs;
            qa_corpus_result(&corpus, &cs);
            EXPECT_EQ_INT(cs.n, n_cases);
            EXPECT_NEAR(cs.bleu1_corpus, json_real_value(json_object_get(o, "corpus_bleu1")), 1e-9);
            EXPECT_NEAR(cs.exact_match, json_real_value(json_object_get(o, "em")), 1e-9);
            EXPECT_NEAR(cs.f1, json_real_value(json_object_get(o, "f1")), 1e-9);
            saw_corpus = 1;
            json_decref(o);
            continue;
        }
        const char *pred = json_string_value(json_object_get(o, "prediction"));
        json_t *ra = json_object_get(o, "references");
        const char *refs[16];
        size_t nr = json_array_size(ra);
        REQUIRE(pred && nr <= 16);
        for (size_t i = 0; i < nr; i++) refs[i] = json_string_value(json_array_get(ra, i));
        QaScores sc;
        REQUIRE(qa_corpus_add(&corpus, pred, refs, nr, &sc) == DP_OK);
        double bleu = json_number_value(json_object_get(o, "bleu1"));
        double em = json_number_value(json_object_get(o, "em"));
        double f1 = json_number_value(json_object_get(o, "f1"));
        EXPECT_MSG(fabs(sc.bleu1 - bleu) <= 1e-9, "case %d bleu1 %.17g vs %.17g (%s)", n_cases, sc.bleu1, bleu, pred);
        EXPECT_MSG(sc.exact_match == em, "case %d em %g vs %g (%s)", n_cases, sc.exact_match, em, pred);
        EXPECT_MSG(fabs(sc.f1 - f1) <= 1e-9, "case %d f1 %.17g vs %.17g (%s)", n_cases, sc.f1, f1, pred);
        /* The single-metric functions agree with qa_score. */
        EXPECT_NEAR(qa_bleu1(pred, refs, nr), sc.bleu1, 0);
        EXPECT_NEAR(qa_f1(pred, refs, nr), sc.f1, 0);
        EXPECT_NEAR(qa_exact_match(pred, refs, nr), sc.exact_match, 0);
        n_cases++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    EXPECT_EQ_INT(n_cases, 310);
    EXPECT(saw_corpus);
}

static void test_metric_hand_cases(void) {
    const char *r1[] = {"a b c d"};
    /* hyp shorter than ref: p1 = 1, bp = exp(1 - 4/2). */
    EXPECT_NEAR(qa_bleu1("a b", r1, 1), exp(-1.0), 1e-15);
    /* closest reference length, ties to the shorter: c = 3, refs 2 and 4 -> r = 2, bp = 1. */
    const char *r2[] = {"x y z w", "x y"};
    EXPECT_NEAR(qa_bleu1("x y q", r2, 2), 2.0 / 3.0, 1e-15);
    /* c = 3, refs 4 and 5 -> r = 4: bp = exp(1 - 4/3). */
    const char *r3[] = {"x y z w v", "x y z w"};
    EXPECT_NEAR(qa_bleu1("x y z", r3, 2), exp(1.0 - 4.0 / 3.0), 1e-15);
    /* clipping: "the" counted at most once. */
    const char *r4[] = {"the cat"};
    EXPECT_NEAR(qa_bleu1("the the the", r4, 1), 1.0 / 3.0, 1e-15);
    /* clipped against the max count over references. */
    const char *r5[] = {"the cat", "the the dog"};
    EXPECT_NEAR(qa_bleu1("the the the", r5, 2), 2.0 / 3.0, 1e-15);
    /* no overlap, empty prediction, no references: 0. */
    EXPECT_NEAR(qa_bleu1("dog", r4, 1), 0.0, 0);
    EXPECT_NEAR(qa_bleu1("", r4, 1), 0.0, 0);
    EXPECT_NEAR(qa_bleu1("   ", r4, 1), 0.0, 0);
    EXPECT_NEAR(qa_bleu1("cat", NULL, 0), 0.0, 0);
    /* case-insensitive, punctuation stays attached for BLEU. */
    const char *r6[] = {"France."};
    EXPECT_NEAR(qa_bleu1("FRANCE.", r6, 1), 1.0, 0);
    EXPECT_NEAR(qa_bleu1("France", r6, 1), 0.0, 0);
    EXPECT_NEAR(qa_exact_match("France", r6, 1), 1.0, 0);
    /* Unicode whitespace splits (no-break space, ideographic space). */
    const char *r7[] = {"new york"};
    EXPECT_NEAR(qa_bleu1("new\xc2\xa0york", r7, 1), 1.0, 0);
    EXPECT_NEAR(qa_bleu1("new\xe3\x80\x80york", r7, 1), 1.0, 0);
    /* Latin-1 lower-casing. */
    const char *r8[] = {"\xc3\xa9" "cole"}; /* école */
    EXPECT_NEAR(qa_bleu1("\xc3\x89" "COLE", r8, 1), 1.0, 0); /* ÉCOLE */

    char *n = qa_normalize_answer("  The  Cat, sat on a mat!  ");
    EXPECT_STREQ(n, "cat sat on mat");
    free(n);
    n = qa_normalize_answer("an-apple theatre");
    EXPECT_STREQ(n, "anapple theatre");
    free(n);
    n = qa_normalize_answer("the\xe2\x80\x93" "end"); /* en dash is not a word character */
    EXPECT_STREQ(n, "\xe2\x80\x93" "end");
    free(n);
    n = qa_normalize_answer("A");
    EXPECT_STREQ(n, "");
    free(n);

    const char *refs[] = {"Denver Broncos", "Broncos"};
    QaScores sc;
    REQUIRE(qa_score("the Broncos", refs, 2, &sc) == DP_OK);
    EXPECT_NEAR(sc.exact_match, 1.0, 0);
    EXPECT_NEAR(sc.f1, 1.0, 0);
    const char *ra[] = {"a"};
    EXPECT_NEAR(qa_f1("A", ra, 1), 0.0, 0); /* both normalise to nothing: F1 0, EM 1 */
    EXPECT_NEAR(qa_exact_match("A", ra, 1), 1.0, 0);
    const char *rf[] = {"Santa Clara"};
    EXPECT_NEAR(qa_f1("Santa Clara, California", rf, 1), 0.8, 1e-15);

    /* corpus: sums before dividing (NLTK corpus_bleu), not the mean. */
    QaCorpus c;
    qa_corpus_init(&c);
    const char *ca[] = {"a b c d"}, *cb[] = {"x"};
    REQUIRE(qa_corpus_add(&c, "a b", ca, 1, NULL) == DP_OK);
    REQUIRE(qa_corpus_add(&c, "x y z", cb, 1, NULL) == DP_OK);
    QaCorpusScores cs;
    qa_corpus_result(&c, &cs);
    /* clipped 3 of 5, hyp 5 >= ref 5 -> bp exp(1 - 5/5) = 1. */
    EXPECT_NEAR(cs.bleu1_corpus, 3.0 / 5.0, 1e-15);
    EXPECT_NEAR(cs.bleu1_mean, (exp(-1.0) + 1.0 / 3.0) / 2, 1e-15);
}

// ---- SQuAD files ----

static void test_squad_real_files(void) {
    QaDataset ds;
    qa_dataset_init(&ds);
    DpError err;
    DpStatus st = qa_squad_load(XQUAD, &ds, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(ds.n_items, 1190);
    EXPECT_EQ_INT(ds.n_articles, 48);
    EXPECT_EQ_INT(ds.n_paragraphs, 240);
    EXPECT_EQ_INT(ds.n_bad_spans, 0);
    EXPECT_STREQ(ds.version, "1.1");
    REQUIRE(ds.n_items == 1190);
    EXPECT_STREQ(ds.items[0].title, "Super_Bowl_50");
    EXPECT(ds.items[0].n_answers == 1);
    EXPECT(ds.items[0].context == ds.items[1].context); /* shared per paragraph */
    qa_dataset_free(&ds);

    st = qa_squad_load(SQUAD2, &ds, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(ds.n_items, 626);
    EXPECT_EQ_INT(ds.n_articles, 2);
    EXPECT_EQ_INT(ds.n_paragraphs, 87);
    EXPECT_EQ_INT(ds.n_bad_spans, 0);
    int answerable = 0, impossible = 0, plausible = 0, multi = 0;
    for (size_t i = 0; i < ds.n_items; i++) {
        const QaItem *it = &ds.items[i];
        if (it->is_impossible) {
            impossible++;
            EXPECT(it->n_answers == 0);
        } else {
            answerable++;
            if (it->n_answers >= 2) multi++;
        }
        if (it->n_plausible) plausible++;
    }
    EXPECT_EQ_INT(answerable, 293);
    EXPECT_EQ_INT(impossible, 333);
    EXPECT_EQ_INT(plausible, 333);
    EXPECT_EQ_INT(multi, 293);
    qa_dataset_free(&ds);
}

static void test_squad_errors(void) {
    QaDataset ds;
    qa_dataset_init(&ds);
    DpError err;
    const char *bad = "{\n  \"data\": [\n    {\"title\": \"x\",, }\n  ]\n}\n";
    DpStatus st = qa_squad_load_buffer(bad, strlen(bad), "bad.json", &ds, &err);
    EXPECT(st == DP_ERR_PARSE);
    EXPECT_MSG(strstr(err.msg, "bad.json:3:") != NULL, "%s", err.msg);
    EXPECT_EQ_INT(ds.n_items, 0);

    const char *wrong = "{\"data\": [{\"title\": \"t\", \"paragraphs\": [{\"context\": \"c\", \"qas\": []},"
                        " {\"context\": \"c\", \"qas\": {}}]}]}";
    st = qa_squad_load_buffer(wrong, strlen(wrong), "wrong.json", &ds, &err);
    EXPECT(st == DP_ERR_PARSE);
    EXPECT_MSG(strstr(err.msg, "data[0].paragraphs[1].qas") && strstr(err.msg, "expected an array"), "%s",
               err.msg);

    const char *wrong2 = "{\"data\": [{\"title\": \"t\", \"paragraphs\": [{\"context\": \"c\", \"qas\": "
                         "[{\"id\": \"1\", \"question\": \"q\", \"answers\": [{\"text\": \"c\", \"answer_start\": \"0\"}]}]}]}]}";
    st = qa_squad_load_buffer(wrong2, strlen(wrong2), "w2.json", &ds, &err);
    EXPECT(st == DP_ERR_PARSE);
    EXPECT_MSG(strstr(err.msg, "data[0].paragraphs[0].qas[0].answers[0].answer_start"), "%s", err.msg);

    st = qa_squad_load("/nonexistent/x.json", &ds, &err);
    EXPECT(st == DP_ERR_IO);

    /* Non-ASCII context: answer_start counts code points. */
    const char *utf = "{\"data\": [{\"title\": \"t\", \"paragraphs\": [{\"context\": \"caf\\u00e9 in Par\\u00eds\", \"qas\": "
                      "[{\"id\": \"1\", \"question\": \"where?\", \"answers\": [{\"text\": \"Par\\u00eds\", \"answer_start\": 8}]}]}]}]}";
    st = qa_squad_load_buffer(utf, strlen(utf), "utf.json", &ds, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(ds.n_bad_spans, 0);
    EXPECT_EQ_INT(qa_utf8_byte_offset(ds.items[0].context, 8), 9);
    qa_dataset_free(&ds);
}

static void test_squad_roundtrip_and_split(void) {
    QaDataset ds, back, train, held, train2, held2;
    qa_dataset_init(&ds);
    qa_dataset_init(&back);
    DpError err;
    REQUIRE(qa_squad_load(SQUAD2, &ds, &err) == DP_OK);
    char path[256];
    tmp_path(path, sizeof path, "roundtrip.json");
    REQUIRE(qa_squad_save(&ds, path, &err) == DP_OK);
    DpStatus st = qa_squad_load(path, &back, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(back.n_items, ds.n_items);
    EXPECT_EQ_INT(back.n_articles, ds.n_articles);
    EXPECT_EQ_INT(back.n_paragraphs, ds.n_paragraphs);
    EXPECT_STREQ(back.version, "1.1");
    int same = 1;
    for (size_t i = 0; i < ds.n_items && i < back.n_items; i++) {
        const QaItem *a = &ds.items[i], *b = &back.items[i];
        same &= !strcmp(a->id, b->id) && !strcmp(a->question, b->question) && !strcmp(a->context, b->context) &&
                a->n_answers == b->n_answers && a->is_impossible == b->is_impossible &&
                a->n_plausible == b->n_plausible;
        for (int k = 0; k < a->n_answers && k < b->n_answers; k++)
            same &= !strcmp(a->answers[k].text, b->answers[k].text) &&
                    a->answers[k].answer_start == b->answers[k].answer_start;
    }
    EXPECT(same);
    unlink(path);
    qa_dataset_free(&back);
    qa_dataset_free(&ds);

    REQUIRE(qa_squad_load(XQUAD, &ds, &err) == DP_OK);
    REQUIRE(qa_dataset_split_by_title(&ds, 0.25, 7, &train, &held, &err) == DP_OK);
    EXPECT_EQ_INT(train.n_items + held.n_items, 1190);
    EXPECT_EQ_INT(held.n_articles, 12);
    EXPECT_EQ_INT(train.n_articles, 36);
    int overlap = 0;
    for (size_t i = 0; i < held.n_items; i++)
        for (size_t j = 0; j < train.n_items; j++)
            if (!strcmp(held.items[i].title, train.items[j].title)) overlap++;
    EXPECT_EQ_INT(overlap, 0);
    REQUIRE(qa_dataset_split_by_title(&ds, 0.25, 7, &train2, &held2, &err) == DP_OK);
    EXPECT_EQ_INT(held2.n_items, held.n_items);
    EXPECT(held.n_items > 0 && !strcmp(held.items[0].id, held2.items[0].id));
    qa_dataset_free(&train2);
    qa_dataset_free(&held2);
    REQUIRE(qa_dataset_split_by_title(&ds, 0.25, 8, &train2, &held2, &err) == DP_OK);
    EXPECT_EQ_INT(held2.n_articles, 12);
    qa_dataset_free(&train2);
    qa_dataset_free(&held2);
    qa_dataset_free(&train);
    qa_dataset_free(&held);
    /* Random split by question: exact count, deterministic, disjoint ids. */
    REQUIRE(qa_dataset_split_random(&ds, 0.1, 3, &train, &held, &err) == DP_OK);
    EXPECT_EQ_INT(held.n_items, 119);
    EXPECT_EQ_INT(train.n_items, 1071);
    REQUIRE(qa_dataset_split_random(&ds, 0.1, 3, &train2, &held2, &err) == DP_OK);
    int same_ids = held2.n_items == held.n_items;
    for (size_t i = 0; same_ids && i < held.n_items; i++) same_ids = !strcmp(held.items[i].id, held2.items[i].id);
    EXPECT(same_ids);
    int shared = 0;
    for (size_t i = 0; i < held.n_items; i++)
        for (size_t j = 0; j < train.n_items; j++) shared += !strcmp(held.items[i].id, train.items[j].id);
    EXPECT_EQ_INT(shared, 0);
    qa_dataset_free(&train2);
    qa_dataset_free(&held2);
    qa_dataset_free(&train);
    qa_dataset_free(&held);
    qa_dataset_free(&ds);
}

// ---- the world ----

static QaWorld *make_world(const char *schedule, uint64_t seed) {
    QaWorldConfig cfg;
    qa_world_config_default(&cfg);
    cfg.seed = seed;
    DpError err;
    if (schedule && qa_world_schedule_parse(schedule, &cfg, &err)) return NULL;
    QaWorld *w = NULL;
    if (qa_world_create(&cfg, &w, &err)) return NULL;
    return w;
}

static int datasets_equal(const QaDataset *a, const QaDataset *b) {
    if (a->n_items != b->n_items || a->n_paragraphs != b->n_paragraphs) return 0;
    for (size_t i = 0; i < a->n_items; i++) {
        const QaItem *x = &a->items[i], *y = &b->items[i];
        if (strcmp(x->id, y->id) || strcmp(x->question, y->question) || strcmp(x->context, y->context) ||
            strcmp(x->answers[0].text, y->answers[0].text) || x->answers[0].answer_start != y->answers[0].answer_start ||
            x->kind != y->kind || x->changed != y->changed)
            return 0;
    }
    return 1;
}

static void test_world_determinism(void) {
    QaWorld *w1 = make_world("sudden:1h:0.3", 5), *w2 = make_world("sudden:1h:0.3", 5);
    QaWorld *w3 = make_world("sudden:1h:0.3", 6);
    REQUIRE(w1 && w2 && w3);
    DpError err;
    QaDataset a, b, c, d;
    /* Order independence: w2 generates another time first. */
    REQUIRE(qa_world_generate(w2, 100.0, 300, 1, &d, &err) == DP_OK);
    REQUIRE(qa_world_generate(w1, 7200.0, 500, 9, &a, &err) == DP_OK);
    REQUIRE(qa_world_generate(w2, 7200.0, 500, 9, &b, &err) == DP_OK);
    EXPECT(datasets_equal(&a, &b));
    REQUIRE(qa_world_generate(w3, 7200.0, 500, 9, &c, &err) == DP_OK);
    EXPECT(!datasets_equal(&a, &c));
    qa_dataset_free(&c);
    REQUIRE(qa_world_generate(w1, 7200.0, 500, 10, &c, &err) == DP_OK);
    EXPECT(!datasets_equal(&a, &c));
    /* Fact values: same in any query order, in both worlds. */
    int diff = 0;
    for (int e = 99; e >= 0; e--)
        for (int at = QA_N_ATTRS - 1; at >= 0; at--) {
            const char *x = qa_world_fact_value(w1, e, (QaAttr)at, 5000.0);
            const char *y = qa_world_fact_value(w2, e, (QaAttr)at, 5000.0);
            if ((x == NULL) != (y == NULL) || (x && strcmp(x, y))) diff++;
        }
    EXPECT_EQ_INT(diff, 0);
    EXPECT(qa_world_fact_value(w1, 0, QA_ATTR_ONCALL, 0) == NULL); /* not enabled by default */
    EXPECT(qa_world_fact_value(w1, 100, QA_ATTR_OWNER, 0) == NULL); /* does not exist */
    /* A sample depends only on the rng state. */
    DpRng r1, r2;
    dp_rng_seed(&r1, 42);
    dp_rng_seed(&r2, 42);
    QaWorldSample s1, s2;
    qa_world_sample(w1, 3000, &r1, &s1);
    qa_world_sample(w2, 3000, &r2, &s2);
    EXPECT(!memcmp(&s1, &s2, sizeof s1));
    /* Names look like jade-93 and are distinct. */
    int dup = 0;
    for (int i = 0; i < 100; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(qa_world_entity_name(w1, i), qa_world_entity_name(w1, j))) dup++;
    EXPECT_EQ_INT(dup, 0);
    EXPECT(strchr(qa_world_entity_name(w1, 0), '-') != NULL);
    qa_dataset_free(&a);
    qa_dataset_free(&b);
    qa_dataset_free(&c);
    qa_dataset_free(&d);
    qa_world_destroy(w1);
    qa_world_destroy(w2);
    qa_world_destroy(w3);
}

static void test_world_drift_schedules(void) {
    QaWorld *none = make_world("none", 3), *sud = make_world("sudden:1h:0.3", 3);
    QaWorld *rec = make_world("recurring:2h:0.25", 3), *grad = make_world("gradual:0.1/h", 3);
    REQUIRE(none && sud && rec && grad);
    EXPECT_NEAR(qa_world_changed_fraction(none, 100 * 3600.0), 0.0, 0);
    EXPECT_NEAR(qa_world_changed_fraction(sud, 3599.0), 0.0, 0);
    EXPECT_NEAR(qa_world_changed_fraction(sud, 3600.0), 0.3, 1e-12);   /* 120 of 400 */
    EXPECT_NEAR(qa_world_changed_fraction(sud, 50 * 3600.0), 0.3, 1e-12);
    EXPECT_NEAR(qa_world_changed_fraction(rec, 0.9 * 3600), 0.0, 0);
    EXPECT_NEAR(qa_world_changed_fraction(rec, 1.5 * 3600), 0.25, 1e-12);
    EXPECT_NEAR(qa_world_changed_fraction(rec, 3.5 * 3600), 0.25, 1e-12);
    /* Before T / after a full period: every value equals its t=0 value. */
    int diff_sud = 0, diff_rec = 0, diff_none = 0, changed_sud = 0;
    for (int e = 0; e < 100; e++)
        for (int a = 0; a < 4; a++) {
            const char *v0 = qa_world_fact_value(sud, e, (QaAttr)a, 0);
            diff_sud += strcmp(v0, qa_world_fact_value(sud, e, (QaAttr)a, 3599.9)) != 0;
            changed_sud += strcmp(v0, qa_world_fact_value(sud, e, (QaAttr)a, 3600.0)) != 0;
            diff_rec += strcmp(qa_world_fact_value(rec, e, (QaAttr)a, 0),
                               qa_world_fact_value(rec, e, (QaAttr)a, 2 * 3600.0)) != 0;
            diff_none += strcmp(qa_world_fact_value(none, e, (QaAttr)a, 0),
                                qa_world_fact_value(none, e, (QaAttr)a, 99 * 3600.0)) != 0;
        }
    EXPECT_EQ_INT(diff_sud, 0);
    EXPECT_EQ_INT(changed_sud, 120);
    EXPECT_EQ_INT(diff_rec, 0);
    EXPECT_EQ_INT(diff_none, 0);
    /* Gradual at 0.1/h: expected share changed at t is about 1 - exp(-0.1 t/h). */
    double g1 = qa_world_changed_fraction(grad, 3600.0), g5 = qa_world_changed_fraction(grad, 5 * 3600.0);
    EXPECT_MSG(g1 > 0.04 && g1 < 0.16, "gradual 1h %g", g1);
    EXPECT_MSG(g5 > 0.3 && g5 < 0.48, "gradual 5h %g", g5);
    EXPECT_NEAR(qa_world_changed_fraction(grad, 0), 0.0, 0);
    /* Samples carry the changed flag consistently with the truth. */
    DpRng rng;
    dp_rng_seed(&rng, 1);
    int bad = 0, n_changed = 0;
    for (int i = 0; i < 500; i++) {
        QaWorldSample s;
        qa_world_sample_kind(sud, 7200.0, QA_KIND_FACT, QA_PHRASING_TRAIN, &rng, &s);
        QaAttr a;
        DpError err;
        if (qa_attr_from_name(s.attribute, &a, &err)) bad++;
        else {
            if (strcmp(s.answer, qa_world_fact_value(sud, s.entity, a, 7200.0))) bad++;
            if (s.changed != qa_world_fact_changed(sud, s.entity, a, 7200.0)) bad++;
            if (!strstr(s.question, s.entity_name)) bad++;
        }
        n_changed += s.changed;
    }
    EXPECT_EQ_INT(bad, 0);
    EXPECT_MSG(n_changed > 100 && n_changed < 200, "%d of 500 changed", n_changed);
    qa_world_destroy(none);
    qa_world_destroy(sud);
    qa_world_destroy(rec);
    qa_world_destroy(grad);

    QaWorldConfig cfg;
    DpError err;
    qa_world_config_default(&cfg);
    EXPECT(qa_world_schedule_parse("sudden", &cfg, &err) == DP_ERR_PARSE);
    EXPECT(qa_world_schedule_parse("sudden:1h:1.5", &cfg, &err) == DP_ERR_PARSE);
    EXPECT(qa_world_schedule_parse("gradual:abc", &cfg, &err) == DP_ERR_PARSE);
    EXPECT(qa_world_schedule_parse("weekly", &cfg, &err) == DP_ERR_PARSE);
    EXPECT(qa_world_schedule_parse("recurring:90m", &cfg, &err) == DP_OK);
    EXPECT_NEAR(cfg.drift.period_s, 5400.0, 0);
    EXPECT_NEAR(cfg.drift.fraction, 0.3, 0);
    EXPECT(qa_world_schedule_parse("gradual:0.2", &cfg, &err) == DP_OK);
    EXPECT_NEAR(cfg.drift.rate_per_h, 0.2, 0);
}

static void test_world_kinds_and_mix(void) {
    QaWorld *w = make_world(NULL, 11);
    REQUIRE(w);
    DpRng rng;
    dp_rng_seed(&rng, 3);
    int bad_span = 0, bad_arith = 0, heldout_in_train = 0;
    for (int i = 0; i < 2000; i++) {
        QaWorldSample s;
        qa_world_sample_kind(w, 0, QA_KIND_COMPREHENSION, QA_PHRASING_TRAIN, &rng, &s);
        if (s.answer_start < 0 || strncmp(s.context + s.answer_start, s.answer, strlen(s.answer)) ||
            !strstr(s.question, s.entity_name))
            bad_span++;
        heldout_in_train += s.heldout_phrasing;
        qa_world_sample_kind(w, 0, QA_KIND_ARITHMETIC, QA_PHRASING_ALL, &rng, &s);
        int a = 0, b = 0;
        char op[8] = "";
        const char *q = strstr(s.question, "is ");
        if (!q || sscanf(q, "is %d %7s %d", &a, op, &b) != 3) bad_arith++;
        else {
            int want = !strcmp(op, "plus") ? a + b : a - b;
            if (a < 10 || a > 99 || b < 10 || b > 99 || want < 0 || atoi(s.answer) != want ||
                strcmp(op, s.attribute))
                bad_arith++;
        }
    }
    EXPECT_EQ_INT(bad_span, 0);
    EXPECT_EQ_INT(bad_arith, 0);
    EXPECT_EQ_INT(heldout_in_train, 0);
    /* Held-out phrasings differ from every training phrasing. */
    char q[160], t[160];
    int clash = 0;
    for (int a = 0; a < QA_N_ATTRS; a++) {
        qa_world_fact_question(w, 0, (QaAttr)a, QA_PHRASING_HELDOUT, 0, q, sizeof q);
        for (int p = 0; p < qa_world_n_phrasings(QA_PHRASING_TRAIN); p++) {
            qa_world_fact_question(w, 0, (QaAttr)a, QA_PHRASING_TRAIN, p, t, sizeof t);
            clash += !strcmp(q, t);
        }
    }
    EXPECT_EQ_INT(clash, 0);
    /* Query mix: start at t=0, end at half the period; traffic follows it. */
    QaMix m0 = qa_world_mix(w, 0), m12 = qa_world_mix(w, 12 * 3600.0);
    EXPECT_NEAR(m0.fact, 0.7, 1e-12);
    EXPECT_NEAR(m12.fact, 0.5, 1e-12);
    EXPECT_NEAR(m12.arithmetic, 0.25, 1e-12);
    int counts[QA_N_KINDS] = {0};
    for (int i = 0; i < 4000; i++) {
        QaWorldSample s;
        qa_world_sample(w, 12 * 3600.0, &rng, &s);
        counts[s.kind]++;
    }
    EXPECT_MSG(fabs(counts[QA_KIND_FACT] / 4000.0 - 0.5) < 0.04, "fact share %g", counts[QA_KIND_FACT] / 4000.0);
    EXPECT_MSG(fabs(counts[QA_KIND_ARITHMETIC] / 4000.0 - 0.25) < 0.04, "arith share %g",
               counts[QA_KIND_ARITHMETIC] / 4000.0);
    /* All facts: 100 services x 4 attributes x 4 training phrasings. */
    QaDataset ds;
    DpError err;
    REQUIRE(qa_world_all_facts(w, 0, QA_PHRASING_TRAIN, &ds, &err) == DP_OK);
    EXPECT_EQ_INT(ds.n_items, 1600);
    EXPECT_EQ_INT(ds.n_articles, 100);
    qa_dataset_free(&ds);
    REQUIRE(qa_world_all_facts(w, 0, QA_PHRASING_HELDOUT, &ds, &err) == DP_OK);
    EXPECT_EQ_INT(ds.n_items, 400);
    qa_dataset_free(&ds);
    qa_world_destroy(w);
}

static void test_world_new_services(void) {
    QaWorldConfig cfg;
    qa_world_config_default(&cfg);
    cfg.new_per_hour = 10;
    cfg.attributes = QA_ATTR_MASK(QA_ATTR_OWNER) | QA_ATTR_MASK(QA_ATTR_ONCALL);
    QaWorld *w = NULL;
    DpError err;
    REQUIRE(qa_world_create(&cfg, &w, &err) == DP_OK);
    EXPECT_EQ_INT(qa_world_n_entities_at(w, 0), 100);
    EXPECT_EQ_INT(qa_world_n_entities_at(w, 3600.0), 110);
    EXPECT_EQ_INT(qa_world_n_entities_at(w, 1e9), qa_world_n_entities(w));
    EXPECT(qa_world_fact_value(w, 105, QA_ATTR_OWNER, 0) == NULL);
    EXPECT(qa_world_fact_value(w, 105, QA_ATTR_ONCALL, 3600.0) != NULL);
    EXPECT(qa_world_fact_value(w, 105, QA_ATTR_VERSION, 3600.0) == NULL);
    EXPECT_NEAR(qa_world_entity_birth(w, 100), 360.0, 1e-9);
    QaDataset ds;
    REQUIRE(qa_world_all_facts(w, 3600.0, QA_PHRASING_TRAIN, &ds, &err) == DP_OK);
    EXPECT_EQ_INT(ds.n_items, 110 * 2 * 4);
    qa_dataset_free(&ds);
    qa_world_destroy(w);

    qa_world_config_default(&cfg);
    cfg.n_services = 0;
    EXPECT(qa_world_create(&cfg, &w, &err) == DP_ERR_INVAL);
    qa_world_config_default(&cfg);
    cfg.attributes = 0;
    EXPECT(qa_world_create(&cfg, &w, &err) == DP_ERR_INVAL);
}

static void test_world_save_load(void) {
    QaWorld *w = make_world("sudden:30m:0.5", 2);
    REQUIRE(w);
    QaDataset ds, back;
    DpError err;
    REQUIRE(qa_world_generate(w, 3600.0, 400, 1, &ds, &err) == DP_OK);
    char path[256];
    tmp_path(path, sizeof path, "world.json");
    REQUIRE(qa_squad_save(&ds, path, &err) == DP_OK);
    DpStatus st = qa_squad_load(path, &back, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT(datasets_equal(&ds, &back));
    EXPECT_EQ_INT(back.n_bad_spans, 0);
    int facts = 0, entity_ok = 1;
    for (size_t i = 0; i < back.n_items; i++) {
        const QaItem *it = &back.items[i];
        if (it->kind == QA_KIND_FACT) {
            facts++;
            entity_ok &= it->entity && it->attribute && it->changed >= 0 && !strcmp(it->title, it->entity);
        }
    }
    EXPECT(facts > 200);
    EXPECT(entity_ok);
    unlink(path);
    qa_dataset_free(&ds);
    qa_dataset_free(&back);
    qa_world_destroy(w);
}

// ---- prompt ----

static void test_prompt_format(void) {
    char buf[256];
    size_t n = qa_prompt_format("Who owns jade-93?", NULL, buf, sizeof buf);
    EXPECT_STREQ(buf, "Q: Who owns jade-93?\nA:");
    EXPECT_EQ_INT(n, strlen(buf));
    qa_prompt_format("Who?", "jade-93 is owned by ads.", buf, sizeof buf);
    EXPECT_STREQ(buf, "Context: jade-93 is owned by ads.\nQ: Who?\nA:");
    qa_prompt_format("two\nlines?", "", buf, sizeof buf);
    EXPECT_STREQ(buf, "Q: two lines?\nA:");
    qa_answer_format("ads", buf, sizeof buf);
    EXPECT_STREQ(buf, " ads\n");
    char small[8];
    n = qa_prompt_format("Who owns jade-93?", NULL, small, sizeof small);
    EXPECT_EQ_INT(n, strlen("Q: Who owns jade-93?\nA:"));
    EXPECT_STREQ(small, "Q: Who ");
    qa_answer_extract(" ads\nQ: next", buf, sizeof buf);
    EXPECT_STREQ(buf, "ads");
    qa_answer_extract("  eu-west-1  ", buf, sizeof buf);
    EXPECT_STREQ(buf, "eu-west-1");
    qa_answer_extract("\nnothing", buf, sizeof buf);
    EXPECT_STREQ(buf, "");
    /* Round trip: the target extracts back to the answer. */
    qa_answer_format("v3.7", buf, sizeof buf);
    char out[64];
    qa_answer_extract(buf, out, sizeof out);
    EXPECT_STREQ(out, "v3.7");
}

// ---- the CLI ----

static void test_cli_score(void) {
    REQUIRE_BINARY(DP_BINARY);
    char in[256], cmd[1024];
    tmp_path(in, sizeof in, "score.jsonl");
    FILE *f = fopen(in, "w");
    REQUIRE(f);
    fprintf(f, "{\"prediction\": \"the Broncos\", \"references\": [\"Denver Broncos\"]}\n\n"
               "{\"prediction\": \"65\", \"references\": [\"65\", \"sixty five\"]}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s score %s", DP_BINARY, in);
    FILE *p = popen(cmd, "r");
    REQUIRE(p);
    char line[512];
    int n = 0;
    double b = -1, em = -1, f1 = -1, corpus = -1;
    while (fgets(line, sizeof line, p)) {
        n++;
        if (n == 1) EXPECT(sscanf(line, "{\"line\": 1, \"bleu1\": %lf, \"exact_match\": %lf, \"f1\": %lf}", &b, &em, &f1) == 3);
        if (strstr(line, "\"corpus\": true")) {
            const char *c = strstr(line, "\"bleu1_corpus\": ");
            if (c) corpus = atof(c + 16);
        }
    }
    EXPECT_EQ_INT(pclose(p), 0);
    EXPECT_EQ_INT(n, 3);
    EXPECT_NEAR(b, 0.5, 1e-12);
    EXPECT_NEAR(em, 0.0, 0);
    EXPECT_NEAR(f1, 2.0 / 3.0, 1e-12);
    /* corpus: clipped 2 of 3 tokens, hyp 3 vs closest refs 2 + 1 = 3 -> bp 1. */
    EXPECT_NEAR(corpus, 2.0 / 3.0, 1e-12);

    f = fopen(in, "w");
    REQUIRE(f);
    fprintf(f, "{\"prediction\": \"a\", \"references\": [\"a\"]}\n{\"prediction\": 3}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s score %s 2>&1 >/dev/null", DP_BINARY, in);
    p = popen(cmd, "r");
    REQUIRE(p);
    char err[512] = "";
    if (!fgets(err, sizeof err, p)) err[0] = 0;
    int rc = pclose(p);
    EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    EXPECT_MSG(strstr(err, "line 2") != NULL, "%s", err);
    unlink(in);
}

TEST_MAIN(TEST_CASE(test_metric_reference_cases), TEST_CASE(test_metric_hand_cases),
          TEST_CASE(test_squad_real_files), TEST_CASE(test_squad_errors),
          TEST_CASE(test_squad_roundtrip_and_split), TEST_CASE(test_world_determinism),
          TEST_CASE(test_world_drift_schedules), TEST_CASE(test_world_kinds_and_mix),
          TEST_CASE(test_world_new_services), TEST_CASE(test_world_save_load),
          TEST_CASE(test_prompt_format), TEST_CASE(test_cli_score))
