/* Tests of src/report: the table from a small hand-computed store, the
 * CSVs, the HTML's charts, the simulator's prediction beside the live
 * result, and the page rendered in headless Chromium (a screenshot that is
 * not blank, the charts in the rendered DOM).  Also a structural check of
 * the packaging files (Dockerfile, docker-compose.yml, Grafana
 * provisioning), since no Docker engine runs on the build machines. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "report.h"
#include "store.h"
#include "test.h"

#define T0 1700000000.0

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    /* A ring large enough that every path a test holds stays valid. */
    static char buf[256][512];
    static int k = 0;
    char *p = buf[k++ % 256];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void remove_tmpdir(void) {
    if (!tmpdir[0] || getenv("DP_REPORT_KEEP")) return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

static void make_tmpdir(void) {
    if (tmpdir[0]) return;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_report.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    atexit(remove_tmpdir);
}

static char *slurp(const char *path) {
    char *s = NULL;
    size_t n;
    DpError err;
    if (dp_read_file(path, &s, &n, &err)) return NULL;
    return s;
}

static int count_str(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

// ---- the small store, hand-computed ----

static void sample(Store *st, const char *run, const char *target, const char *name, double ts,
                   double v) {
    DpError err;
    StoreMetricSample m = {ts, run, target, name, "", v};
    if (store_add_metric_sample(st, &m, &err)) fprintf(stderr, "sample: %s\n", err.msg);
}

static void job(Store *st, const char *run, const char *kind, double t, double cost) {
    DpError err;
    StoreJob j = {0, run, kind, "aws", t, t + 30, "ok", 30, cost, NULL};
    if (store_add_job(st, &j, NULL, &err)) fprintf(stderr, "job: %s\n", err.msg);
}

static void decision(Store *st, const char *run, double ts, const char *action, int executed) {
    DpError err;
    StoreDecision d = {ts, run, "static", action, strcmp(action, "none") ? "aws" : NULL,
                       "test", executed, executed ? NULL : "busy"};
    if (store_add_decision(st, &d, &err)) fprintf(stderr, "decision: %s\n", err.msg);
}

static void deployment(Store *st, const char *run, double ts, const char *ver, const char *prev,
                       const char *kind) {
    DpError err;
    StoreDeployment d = {ts, run, "aws", ver, prev, kind};
    if (store_add_deployment(st, &d, &err)) fprintf(stderr, "deployment: %s\n", err.msg);
}

static void cost(Store *st, const char *run, double ts, double amount) {
    DpError err;
    StoreCost c = {ts, run, "aws", amount, "retrain"};
    if (store_add_cost(st, &c, &err)) fprintf(stderr, "cost: %s\n", err.msg);
}

static void state_acc(Store *st, const char *run, double ts, double acc) {
    DpError err;
    const char *names[] = {"cpu", "accuracy", "latency_s"};
    double v[] = {0.5, acc, 9.0}; /* latency_s ignored: the run has latency samples */
    StoreState s = {ts, run, "paper", 3, v, names};
    if (store_add_state(st, &s, &err)) fprintf(stderr, "state: %s\n", err.msg);
}

/* adaptive a1 (with a requests CSV), adaptive a2, both in small.db; static
 * s1 in static.db (decisions only, no jobs).  See the expected values in
 * test_table_values. */
static void build_small(void) {
    make_tmpdir();
    DpError err;
    Store *st;
    unlink(tmp_path("small.db"));
    unlink(tmp_path("static.db"));
    if (store_open(tmp_path("small.db"), &st, &err)) {
        fprintf(stderr, "open: %s\n", err.msg);
        return;
    }
    store_begin(st, &err);
    /* a1: BLEU per interval 0.7 (0.8 aws + 0.6 azure), 0.9, 0.5 */
    sample(st, "a1", "aws", "llm_bleu", T0 + 10, 0.8);
    sample(st, "a1", "azure", "llm_bleu", T0 + 20, 0.6);
    sample(st, "a1", "aws", "llm_bleu", T0 + 70, 0.9);
    sample(st, "a1", "aws", "llm_bleu", T0 + 130, 0.5);
    sample(st, "a1", "aws", "llm_accuracy", T0 + 10, 0.5);
    sample(st, "a1", "aws", "llm_accuracy", T0 + 70, 0.7);
    sample(st, "a1", "aws", "llm_accuracy", T0 + 130, 0.3);
    sample(st, "a1", "aws", "llm_f1", T0 + 10, 0.9);
    sample(st, "a1", "aws", "llm_accuracy_other", T0 + 10, 0.0); /* not read */
    job(st, "a1", "retrain", T0 + 15, 0.045);
    job(st, "a1", "retrain", T0 + 75, 0.038);
    job(st, "a1", "deploy", T0 + 80, 0); /* not a retrain */
    cost(st, "a1", T0 + 45, 0.045);
    cost(st, "a1", T0 + 105, 0.038);
    deployment(st, "a1", T0 + 1, "v1", NULL, "deploy"); /* the initial model */
    deployment(st, "a1", T0 + 50, "v2", "v1", "deploy");
    deployment(st, "a1", T0 + 110, "v3", "v2", "deploy");
    deployment(st, "a1", T0 + 150, "v2", "v3", "rollback");
    decision(st, "a1", T0 + 0, "none", 1);
    decision(st, "a1", T0 + 60, "retrain", 1);
    /* a2: BLEU 0.6, 0.8, 1.0; accuracy 0.4 from state vectors; latency
     * samples 100, 150; 4 retrains at 0.045 and no cost rows. */
    sample(st, "a2", "aws", "llm_bleu", T0 + 1, 0.6);
    sample(st, "a2", "aws", "llm_bleu", T0 + 61, 0.8);
    sample(st, "a2", "aws", "llm_bleu", T0 + 121, 1.0);
    sample(st, "a2", "aws", "latency_ms", T0 + 1, 100);
    sample(st, "a2", "aws", "latency_ms", T0 + 61, 150);
    state_acc(st, "a2", T0 + 5, 0.4);
    state_acc(st, "a2", T0 + 65, 0.4);
    state_acc(st, "a2", T0 + 125, 0.4);
    for (int i = 0; i < 4; i++) job(st, "a2", "retrain", T0 + 2 + 30 * i, 0.045);
    /* another run in the same file that must not leak in */
    sample(st, "other", "aws", "llm_bleu", T0 + 10, 0.0);
    job(st, "other", "retrain", T0 + 10, 5);
    store_commit(st, &err);
    store_close(st);

    if (store_open(tmp_path("static.db"), &st, &err)) return;
    store_begin(st, &err);
    sample(st, "s1", "aws", "llm_bleu", T0 + 0, 0.6);
    sample(st, "s1", "aws", "llm_bleu", T0 + 60, 0.6);
    sample(st, "s1", "aws", "llm_bleu", T0 + 120, 0.9);
    decision(st, "s1", T0 + 0, "retrain", 1);
    decision(st, "s1", T0 + 60, "retrain", 1);
    decision(st, "s1", T0 + 90, "retrain", 0);
    decision(st, "s1", T0 + 120, "retrain", 1);
    decision(st, "s1", T0 + 150, "none", 1);
    /* w1: two targets with their request rates.  Interval 0: aws 0.9 at
     * 30/s, azure 0.5 at 10/s -> 0.8, rate 40; interval 1: aws idle (rate 0,
     * its stale gauge 0.2), azure 0.6 at 20/s -> 0.6, rate 20. */
    sample(st, "w1", "aws", "llm_bleu", T0 + 10, 0.9);
    sample(st, "w1", "aws", "request_rate", T0 + 10, 30);
    sample(st, "w1", "azure", "llm_bleu", T0 + 11, 0.5);
    sample(st, "w1", "azure", "request_rate", T0 + 11, 10);
    sample(st, "w1", "aws", "llm_bleu", T0 + 70, 0.2);
    sample(st, "w1", "aws", "request_rate", T0 + 70, 0);
    sample(st, "w1", "azure", "llm_bleu", T0 + 71, 0.6);
    sample(st, "w1", "azure", "request_rate", T0 + 71, 20);
    store_commit(st, &err);
    store_close(st);

    /* a1's requests: 4 ok (100..400 ms) and one timeout, 3 in interval 0. */
    FILE *f = fopen(tmp_path("a1_requests.csv"), "w");
    fprintf(f, "seq,intended_s,sent_s,scenario_s,target,latency_ms,service_ms,status,error,"
               "model_version,kind,exact_match,feedback\n"
               "0,0.1,0.1,5,http://127.0.0.1:1,100,99,200,,v1,fact,1,0\n"
               "1,0.2,0.2,20,http://127.0.0.1:1,5000,,,timeout,,fact,,0\n"
               "2,0.3,0.3,50,http://127.0.0.1:1,200,199,200,,v1,fact,0,1\n"
               "3,0.4,0.4,70,http://127.0.0.1:1,300,299,200,,v1,fact,1,0\n"
               "4,0.5,0.5,130,http://127.0.0.1:1,400,399,200,,v1,fact,1,0\n");
    fclose(f);
}

static void small_inputs(ReportInputs *in, ReportRun runs[3]) {
    report_inputs_default(in);
    memset(runs, 0, 3 * sizeof *runs);
    runs[0] = (ReportRun){"adaptive", tmp_path("small.db"), "a1", tmp_path("a1_requests.csv"), T0, 0};
    runs[1] = (ReportRun){"adaptive", tmp_path("small.db"), "a2", NULL, T0, 0};
    runs[2] = (ReportRun){"static-15m", tmp_path("static.db"), "s1", NULL, T0, 0};
    in->runs = runs;
    in->n_runs = 3;
    in->interval_s = 60;
    in->scenario = "gradual";
    memset(&in->reward, 0, sizeof in->reward);
    in->reward.w_bleu = 0.5;
    in->reward.w_accuracy = 0.5;
    in->reward.quality_unit_s = 60;
    in->reward.cost_weight = 1;
}

static void test_table_values(void) {
    build_small();
    ReportInputs in;
    ReportRun runs[3];
    small_inputs(&in, runs);
    ReportTable *t = NULL;
    DpError err = {0};
    DpStatus s = report_compute(&in, &t, &err);
    EXPECT_MSG(s == DP_OK, "%s", err.msg);
    REQUIRE(t && t->n_rows == 2);
    const ReportRow *a = &t->rows[0], *st = &t->rows[1];
    EXPECT_STREQ(a->pipeline, "adaptive");
    EXPECT_STREQ(st->pipeline, "static-15m");
    EXPECT_EQ_INT(a->n_repeats, 2);
    EXPECT_EQ_INT(a->std_within_run, 0);
    /* retrains 2 and 4 (the deploy job is not one) */
    EXPECT_NEAR(a->retrains_mean, 3.0, 1e-12);
    EXPECT_NEAR(a->retrains_std, sqrt(2.0), 1e-12);
    /* BLEU-1: a1 (0.7+0.9+0.5)/3 = 0.7, a2 0.8 -> 0.75 ± sqrt(0.005) */
    EXPECT_NEAR(a->bleu_mean, 0.75, 1e-12);
    EXPECT_NEAR(a->bleu_std, sqrt(0.005), 1e-12);
    EXPECT_NEAR(a->bleu_min, 0.5, 1e-12);
    EXPECT_NEAR(a->bleu_max, 1.0, 1e-12);
    /* latency: a1 from its CSV, ok rows only: 250; a2 samples: 125 */
    EXPECT_NEAR(a->latency_ms_mean, 187.5, 1e-9);
    EXPECT_NEAR(a->latency_ms_std, sqrt(2 * 62.5 * 62.5), 1e-9);
    /* exact match: a1 (0.5+0.7+0.3)/3 = 0.5, a2 0.4 from states */
    EXPECT_NEAR(a->exact_match_mean, 0.45, 1e-12);
    EXPECT_NEAR(a->f1_mean, 0.9, 1e-12); /* only a1 has F1 */
    /* cost: a1 cost rows 0.083, a2 job costs 0.18 */
    EXPECT_NEAR(a->cost_mean, (0.083 + 0.18) / 2, 1e-12);
    /* reward per interval (0.5 bleu + 0.5 acc), minus the run's cost, over 3:
     * a1 (0.6 + 0.8 + 0.4 - 0.083) / 3, a2 (0.5 + 0.6 + 0.7 - 0.18) / 3 */
    double r1 = (1.8 - 0.083) / 3, r2 = (1.8 - 0.18) / 3;
    EXPECT_NEAR(a->reward_mean, (r1 + r2) / 2, 1e-12);
    EXPECT_NEAR(a->redeploys_mean, 1.0, 1e-12); /* a1: 2 (not the initial one), a2: 0 */
    EXPECT_NEAR(a->requests_mean, 2.5, 1e-12);  /* a1 5 rows, a2 none (0) */
    /* p95 of a1's ok latencies (100,200,300,400): 385 */
    EXPECT_NEAR(a->latency_p95_ms, 385, 1e-9);

    /* static: one repeat, so ± is across its intervals */
    EXPECT_EQ_INT(st->n_repeats, 1);
    EXPECT_EQ_INT(st->std_within_run, 1);
    EXPECT_NEAR(st->retrains_mean, 3.0, 1e-12); /* executed retrain decisions */
    EXPECT(isnan(st->retrains_std));
    EXPECT_NEAR(st->bleu_mean, 0.7, 1e-12);
    EXPECT_NEAR(st->bleu_std, sqrt(0.03), 1e-12);
    EXPECT(isnan(st->latency_ms_mean));
    EXPECT_NEAR(st->cost_mean, 0, 1e-12);

    /* Markdown */
    DpBuf md = DP_BUF_INIT;
    EXPECT(report_table_markdown(t, &in, &md) == DP_OK);
    REQUIRE(md.data);
    EXPECT_MSG(strstr(md.data, "| adaptive | 2 | 3.0 ± 1.4 | 0.750 ± 0.071 | 0.500–1.000 | "
                               "187.5 ± 88.4 | 385.0 | 0.450 | 0.900 | 0.132 |") != NULL,
               "%s", md.data);
    EXPECT_MSG(strstr(md.data, "| static-15m | 1 | 3.0 | 0.700 ± 0.173 † | 0.600–0.900 | — | — |") != NULL, "%s",
               md.data);
    dp_buf_free(&md);
    report_table_free(t);
}

static void test_target_weighting(void) {
    build_small();
    ReportRun run = {"w", tmp_path("static.db"), "w1", NULL, T0, 0};
    ReportInputs in;
    report_inputs_default(&in);
    in.runs = &run;
    in.n_runs = 1;
    ReportTable *t = NULL;
    DpError err = {0};
    EXPECT_MSG(report_compute(&in, &t, &err) == DP_OK, "%s", err.msg);
    REQUIRE(t);
    EXPECT_NEAR(t->rows[0].bleu_mean, 0.7, 1e-12); /* (0.8 + 0.6) / 2 */
    EXPECT_NEAR(t->rows[0].bleu_min, 0.6, 1e-12);
    EXPECT_NEAR(t->rows[0].bleu_max, 0.8, 1e-12);
    const char *dir = tmp_path("wresults");
    EXPECT(report_write_table(dir, &in, t, &err) == DP_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/timeseries.csv", dir);
    char *ts = slurp(path);
    REQUIRE(ts);
    EXPECT_MSG(strstr(ts, "\nw,0,w1,0,0,0.8,,,,,,,40,0\n") != NULL, "%s", ts);
    EXPECT_MSG(strstr(ts, "\nw,0,w1,1,60,0.6,,,,,,,20,0\n") != NULL, "%s", ts);
    free(ts);
    report_table_free(t);

    /* The same run with the load generator's CSV (as the experiment gives
     * it): the CSV replaces the rate series, but the store's per-target rates
     * still weight quality, so the idle target's stale gauge stays out. */
    FILE *f = fopen(tmp_path("w1_requests.csv"), "w");
    REQUIRE(f);
    fprintf(f, "seq,intended_s,sent_s,scenario_s,target,latency_ms,service_ms,status,error,"
               "model_version,kind,exact_match,feedback\n"
               "0,0.1,0.1,5,http://127.0.0.1:1,100,99,200,,v1,fact,1,0\n"
               "1,0.2,0.2,65,http://127.0.0.1:1,100,99,200,,v1,fact,1,0\n");
    fclose(f);
    run.requests_csv = tmp_path("w1_requests.csv");
    t = NULL;
    EXPECT_MSG(report_compute(&in, &t, &err) == DP_OK, "%s", err.msg);
    REQUIRE(t);
    EXPECT_NEAR(t->rows[0].bleu_mean, 0.7, 1e-12);
    EXPECT_NEAR(t->rows[0].bleu_min, 0.6, 1e-12);
    EXPECT_NEAR(t->rows[0].latency_ms_mean, 100, 1e-9);
    report_table_free(t);
}

static void test_sim_prediction(void) {
    build_small();
    ReportInputs in;
    ReportRun runs[3];
    small_inputs(&in, runs);
    in.sim_prediction_json = DP_TEST_DATA "/report/sim_prediction.json";
    /* the simulator's per-decision CSV: two seeds, mean BLEU 0.7 at t=0 */
    FILE *f = fopen(tmp_path("simdec.csv"), "w");
    fprintf(f, "scenario,seed,policy,t,time_s,action,action_name,started,deployed,ignored,reward,"
               "cost,accuracy,bleu,f1,latency_ms,cpu,request_rate,serving\n"
               "gradual,1,ppo,0,0,0,nothing,0,0,0,1,0,0.5,0.6,0.7,100,0.5,200,0\n"
               "gradual,2,ppo,0,0,0,nothing,0,0,0,1,0,0.7,0.8,0.7,100,0.5,200,0\n"
               "gradual,1,ppo,1,60,0,nothing,0,0,0,1,0,0.5,0.6,0.7,100,0.5,200,0\n"
               "steady,1,ppo,0,0,0,nothing,0,0,0,1,0,0.1,0.1,0.1,100,0.5,200,0\n"
               "gradual,1,static-15m@aws,0,0,1,retrain,1,1,0,1,0.045,0.6,0.9,0.7,100,0.5,200,0\n");
    fclose(f);
    in.sim_decisions_csv = tmp_path("simdec.csv");
    ReportTable *t = NULL;
    DpError err = {0};
    DpStatus s = report_compute(&in, &t, &err);
    EXPECT_MSG(s == DP_OK, "%s", err.msg);
    REQUIRE(t);
    EXPECT_STREQ(t->sim_scenario, "gradual");
    EXPECT_EQ_INT(t->rows[0].has_sim, 1);
    EXPECT_STREQ(t->rows[0].sim_policy, "ppo");
    EXPECT_NEAR(t->rows[0].sim_retrains, 3.0, 1e-12);
    EXPECT_NEAR(t->rows[0].sim_bleu, 0.757, 1e-12);
    EXPECT_NEAR(t->rows[0].sim_reward, 2.706 / 240, 1e-12);
    EXPECT_STREQ(t->rows[1].sim_policy, "static-15m@aws");
    EXPECT_NEAR(t->rows[1].sim_latency_ms, 139, 1e-12);
    DpBuf md = DP_BUF_INIT;
    report_table_markdown(t, &in, &md);
    REQUIRE(md.data);
    /* live 0.750 vs sim 0.757: -0.007 */
    EXPECT_MSG(strstr(md.data, "| adaptive | ppo | 3.0 / 3.0 | 0.750 / 0.757 | -0.007 |") != NULL,
               "%s", md.data);
    dp_buf_free(&md);
    DpBuf html = DP_BUF_INIT;
    EXPECT(report_html(t, &in, &html, &err) == DP_OK);
    REQUIRE(html.data);
    EXPECT(strstr(html.data, "id=\"sim-table\"") != NULL);
    EXPECT(strstr(html.data, "adaptive (simulator)") != NULL); /* the dashed line */
    EXPECT(strstr(html.data, "stroke-dasharray=\"7 5\"") != NULL);
    dp_buf_free(&html);
    report_table_free(t);

    /* A mapping that matches nothing leaves has_sim 0; a bad JSON is an error. */
    in.sim_decisions_csv = NULL;
    in.sim_policy_map = "adaptive=nosuch";
    EXPECT(report_compute(&in, &t, &err) == DP_OK);
    if (t) EXPECT_EQ_INT(t->rows[0].has_sim, 0);
    report_table_free(t);
    f = fopen(tmp_path("bad.json"), "w");
    fprintf(f, "{\"scenarios\": [\n  {\"scenario\": }\n]}\n");
    fclose(f);
    in.sim_prediction_json = tmp_path("bad.json");
    EXPECT(report_compute(&in, &t, &err) == DP_ERR_PARSE);
    EXPECT(t == NULL);
    EXPECT_MSG(strstr(err.msg, "bad.json line 2") != NULL, "%s", err.msg);
}

static void test_errors(void) {
    build_small();
    ReportInputs in;
    ReportRun runs[3];
    small_inputs(&in, runs);
    ReportTable *t = NULL;
    DpError err = {0};
    in.n_runs = 0;
    EXPECT(report_compute(&in, &t, &err) == DP_ERR_INVAL);
    in.n_runs = 3;
    runs[1].store_path = tmp_path("a1_requests.csv"); /* not a store */
    EXPECT(report_compute(&in, &t, &err) == DP_ERR_PARSE);
    EXPECT_MSG(strstr(err.msg, "a1_requests.csv") != NULL, "%s", err.msg);
    runs[1].store_path = tmp_path("small.db");
    FILE *f = fopen(tmp_path("badreq.csv"), "w");
    fprintf(f, "seq,scenario_s,latency_ms\n0,1,10\n1,x,10\n");
    fclose(f);
    runs[0].requests_csv = tmp_path("badreq.csv");
    EXPECT(report_compute(&in, &t, &err) == DP_ERR_PARSE);
    EXPECT_MSG(strstr(err.msg, "badreq.csv line 3") != NULL, "%s", err.msg);
    runs[0].requests_csv = tmp_path("a1_requests.csv");
    runs[2].store_path = tmp_path("nosuch.db"); /* not created by the report */
    EXPECT(report_compute(&in, &t, &err) == DP_ERR_IO);
    EXPECT(!dp_file_exists(tmp_path("nosuch.db")));
    runs[2].store_path = tmp_path("static.db");
    runs[0].requests_csv = tmp_path("missing.csv");
    EXPECT_MSG(report_compute(&in, &t, &err) == DP_ERR_IO, "%s", err.msg);
    EXPECT(t == NULL);
}

static void test_results_dir(void) {
    build_small();
    ReportInputs in;
    ReportRun runs[3];
    small_inputs(&in, runs);
    DpError err = {0};
    const char *dir = tmp_path("results");
    DpStatus s = report_write(dir, &in, &err);
    EXPECT_MSG(s == DP_OK, "%s", err.msg);
    char path[600];
    snprintf(path, sizeof path, "%s/decisions.csv", dir);
    char *dec = slurp(path);
    REQUIRE(dec);
    /* header + a1 2 + a2 0 + s1 5 decisions */
    EXPECT_EQ_INT(count_lines(dec), 1 + 2 + 5);
    EXPECT(strncmp(dec, "pipeline,repeat,run_id,ts,scenario_s,policy,action,target,reason,executed,error\n", 80) == 0);
    EXPECT(strstr(dec, "static-15m,0,s1,1700000090,90,static,retrain,aws,test,0,busy\n") != NULL);
    EXPECT(strstr(dec, "adaptive,0,a1,1700000060,60,static,retrain,aws,test,1,\n") != NULL);
    free(dec);
    snprintf(path, sizeof path, "%s/jobs.csv", dir);
    char *jobs = slurp(path);
    REQUIRE(jobs);
    EXPECT_EQ_INT(count_lines(jobs), 1 + 3 + 4); /* a1: 2 retrains + 1 deploy; a2: 4 */
    EXPECT_EQ_INT(count_str(jobs, "\nadaptive,1,a2,"), 4);
    EXPECT(strstr(jobs, ",other,") == NULL);
    free(jobs);
    snprintf(path, sizeof path, "%s/deployments.csv", dir);
    char *dep = slurp(path);
    REQUIRE(dep);
    EXPECT_EQ_INT(count_lines(dep), 1 + 4);
    EXPECT(strstr(dep, "adaptive,0,a1,1700000150,150,aws,v2,v3,rollback\n") != NULL);
    free(dep);
    snprintf(path, sizeof path, "%s/requests_summary.csv", dir);
    char *rs = slurp(path);
    REQUIRE(rs);
    EXPECT_EQ_INT(count_lines(rs), 1 + 3);
    EXPECT_MSG(strstr(rs, "\nadaptive,0,a1,5,250,385,2,2,0.7,0.5,0.9,0.5,0.9,0.083,") != NULL, "%s", rs);
    free(rs);
    snprintf(path, sizeof path, "%s/timeseries.csv", dir);
    char *ts = slurp(path);
    REQUIRE(ts);
    EXPECT_EQ_INT(count_lines(ts), 1 + 3 + 3 + 3);
    /* a1 interval 0: bleu 0.7, acc 0.5, f1 0.9, latency mean (100+200)/2, 3 arrivals/60 s */
    EXPECT_MSG(strstr(ts, "\nadaptive,0,a1,0,0,0.7,0.5,0.9,150,150,195,199,0.05,0.045\n") != NULL,
               "%s", ts);
    free(ts);
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *js = slurp(path);
    REQUIRE(js);
    EXPECT(strstr(js, "\"pipeline\": \"adaptive\"") != NULL);
    EXPECT(strstr(js, "\"retrains_mean\": 3.0") != NULL);
    EXPECT(strstr(js, "\"latency_ms_mean\": null") != NULL); /* static has no latency */
    free(js);
    snprintf(path, sizeof path, "%s/results.md", dir);
    char *md = slurp(path);
    EXPECT(md && strstr(md, "| adaptive | 2 |") != NULL);
    free(md);
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = slurp(path);
    REQUIRE(html);
    const char *ids[] = {"chart-bleu", "chart-accuracy", "chart-latency", "chart-rate",
                         "chart-cost", "chart-retrains"};
    for (int i = 0; i < 6; i++) {
        char want[64];
        snprintf(want, sizeof want, "<svg id=\"%s\"", ids[i]);
        EXPECT_MSG(count_str(html, want) == 1, "%s", ids[i]);
    }
    EXPECT_EQ_INT(count_str(html, "<svg "), 6);
    /* markers: a1 2 retrains + a2 4 + s1 3 triangles; a1 2 redeploys, 1 rollback */
    EXPECT_EQ_INT(count_str(html, "class=\"mk-retrain\""), 2 * 9);
    EXPECT_EQ_INT(count_str(html, "class=\"mk-redeploy\""), 2 * 2);
    EXPECT_EQ_INT(count_str(html, "class=\"mk-rollback\""), 2 * 1);
    /* self-contained: nothing fetched */
    EXPECT(strstr(html, "<script") == NULL);
    EXPECT(strstr(html, "<link") == NULL);
    EXPECT(strstr(html, "src=") == NULL);
    EXPECT(strstr(html, "url(") == NULL);
    EXPECT(count_str(html, "http://") == count_str(html, "xmlns=\"http://www.w3.org/2000/svg\""));
    free(html);
}

// ---- the big synthetic store: 2 pipelines x 2 repeats, 4 h ----

/* Quality decays with the time since the last retrain; the adaptive
 * pipeline retrains when BLEU falls under 0.72, the static one every 15
 * minutes (and pays for it with latency while training). */
static void build_big(const char *db, const char *simcsv) {
    DpError err;
    Store *st;
    unlink(db);
    if (store_open(db, &st, &err)) {
        fprintf(stderr, "open: %s\n", err.msg);
        return;
    }
    DpRng rng;
    dp_rng_seed(&rng, 7);
    store_begin(st, &err);
    const char *pipes[2] = {"adaptive", "static-15m"};
    for (int p = 0; p < 2; p++)
        for (int r = 0; r < 2; r++) {
            char run[32];
            snprintf(run, sizeof run, "%s-%d", pipes[p], r + 1);
            double last = 0, train_until = -1;
            int ver = 1;
            char v[16], pv[16];
            snprintf(v, sizeof v, "v%d", ver);
            deployment(st, run, T0, v, NULL, "deploy");
            for (int k = 0; k < 240; k++) {
                double t = T0 + k * 60.0, since = (k * 60.0 - last) / 3600;
                double bleu = 0.83 - 0.12 * since + 0.01 * dp_rng_normal(&rng);
                double acc = bleu - 0.09 + 0.01 * dp_rng_normal(&rng);
                int retrain = p == 0 ? (bleu < 0.72 && train_until < k * 60.0) : (k % 15 == 0);
                double extra = train_until >= k * 60.0 ? (p == 1 ? 25 : 8) : 0;
                double rate = 100 + 20 * sin(k / 40.0) + 3 * dp_rng_normal(&rng);
                for (int g = 0; g < 2; g++) {
                    const char *tg = g ? "azure" : "aws";
                    sample(st, run, tg, "llm_bleu", t + 5 + g, bleu + 0.005 * g);
                    sample(st, run, tg, "llm_accuracy", t + 5 + g, acc);
                    sample(st, run, tg, "llm_f1", t + 5 + g, bleu + 0.03);
                    sample(st, run, tg, "request_rate", t + 5 + g, rate / 2);
                }
                double p50 = 95 + extra + 3 * dp_rng_normal(&rng);
                sample(st, run, "aws", "latency_ms", t + 7, p50 + 12);
                sample(st, run, "aws", "latency_p50_ms", t + 7, p50);
                sample(st, run, "aws", "latency_p95_ms", t + 7, p50 * 1.5 + 10);
                sample(st, run, "aws", "latency_p99_ms", t + 7, p50 * 2.1 + 20);
                StoreDecision d = {t, run, p ? "static" : "ppo", retrain ? "retrain" : "none",
                                   retrain ? "aws" : NULL, retrain ? "policy" : "quality ok",
                                   1, NULL};
                store_add_decision(st, &d, &err);
                if (retrain) {
                    double c = (k / 15) % 2 ? 0.038 : 0.045;
                    StoreJob j = {0, run, "retrain", (k / 15) % 2 ? "azure" : "aws", t + 2,
                                  t + 302, "ok", 300, c, NULL};
                    store_add_job(st, &j, NULL, &err);
                    cost(st, run, t + 2, c);
                    train_until = k * 60.0 + 300;
                    last = k * 60.0 + 300;
                    snprintf(pv, sizeof pv, "v%d", ver++);
                    snprintf(v, sizeof v, "v%d", ver);
                    deployment(st, run, t + 305, v, pv, "deploy");
                }
            }
        }
    store_commit(st, &err);
    store_close(st);

    FILE *f = fopen(simcsv, "w");
    fprintf(f, "scenario,seed,policy,t,time_s,action,action_name,started,deployed,ignored,reward,"
               "cost,accuracy,bleu,f1,latency_ms,cpu,request_rate,serving\n");
    for (int seed = 1; seed <= 2; seed++)
        for (int k = 0; k < 240; k++) {
            double a = 0.80 - 0.06 * fmod(k / 60.0, 1.2), s = 0.81 - 0.1 * fmod(k / 15.0, 1) * 0.25;
            fprintf(f, "gradual,%d,ppo,%d,%d,0,nothing,0,0,0,1,0,%.4f,%.4f,0.7,110,0.5,100,0\n",
                    seed, k, k * 60, a - 0.09, a);
            fprintf(f, "gradual,%d,static-15m@aws,%d,%d,0,nothing,0,0,0,1,0,%.4f,%.4f,0.7,130,0.5,"
                       "100,0\n", seed, k, k * 60, s - 0.09, s);
        }
    fclose(f);
}

/* Runs a shell command; returns its exit status (-1 when it did not run). */
static int run_cmd(const char *cmd) {
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc);
}

static int allow_skip(void) {
    const char *e = getenv("DP_ALLOW_SKIP");
    return e && !strcmp(e, "1");
}

static const char *find_chromium(void) {
    static const char *names[] = {"chromium", "chromium-browser", "google-chrome", NULL};
    static char found[64];
    for (int i = 0; names[i]; i++) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", names[i]);
        if (run_cmd(cmd) == 0) {
            snprintf(found, sizeof found, "%s", names[i]);
            return found;
        }
    }
    return NULL;
}

/* Decodes an 8-bit RGB/RGBA PNG (the format Chromium writes) and counts
 * pixels that are not near-white and distinct colours (quantised to 5 bits
 * per channel).  Returns 0 on success. */
typedef struct {
    uint32_t w, h;
    long non_white, dark;
    int colours;
} PngStats;

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

static int png_stats(const char *path, PngStats *out) {
    char *data = NULL;
    size_t len = 0;
    DpError err;
    memset(out, 0, sizeof *out);
    if (dp_read_file(path, &data, &len, &err)) return -1;
    const unsigned char *d = (const unsigned char *)data;
    int rc = -1, ctype = -1;
    unsigned char *idat = NULL, *raw = NULL;
    size_t ni = 0;
    if (len < 8 || memcmp(d, "\x89PNG\r\n\x1a\n", 8)) goto out;
    for (size_t off = 8; off + 12 <= len;) {
        uint32_t n = be32(d + off);
        const unsigned char *type = d + off + 4, *body = d + off + 8;
        if (off + 12 + n > len) goto out;
        if (!memcmp(type, "IHDR", 4)) {
            out->w = be32(body);
            out->h = be32(body + 4);
            if (body[8] != 8 || body[12] != 0) goto out; /* 8-bit, not interlaced */
            ctype = body[9];
        } else if (!memcmp(type, "IDAT", 4)) {
            unsigned char *p = realloc(idat, ni + n);
            if (!p) goto out;
            idat = p;
            memcpy(idat + ni, body, n);
            ni += n;
        }
        off += 12 + n;
    }
    int bpp = ctype == 6 ? 4 : ctype == 2 ? 3 : 0;
    if (!bpp || !out->w || !out->h) goto out;
    size_t stride = (size_t)out->w * bpp, rawlen = (stride + 1) * out->h;
    raw = malloc(rawlen);
    uLongf dl = (uLongf)rawlen;
    if (!raw || uncompress(raw, &dl, idat, (uLong)ni) != Z_OK || dl != rawlen) goto out;
    static unsigned char seen[32768];
    memset(seen, 0, sizeof seen);
    for (uint32_t y = 0; y < out->h; y++) {
        unsigned char *row = raw + y * (stride + 1), *cur = row + 1;
        unsigned char *prev = y ? raw + (y - 1) * (stride + 1) + 1 : NULL;
        for (size_t i = 0; i < stride; i++) {
            int a = i >= (size_t)bpp ? cur[i - bpp] : 0, b = prev ? prev[i] : 0,
                c = prev && i >= (size_t)bpp ? prev[i - bpp] : 0;
            switch (row[0]) {
            case 0: break;
            case 1: cur[i] = (unsigned char)(cur[i] + a); break;
            case 2: cur[i] = (unsigned char)(cur[i] + b); break;
            case 3: cur[i] = (unsigned char)(cur[i] + (a + b) / 2); break;
            case 4: cur[i] = (unsigned char)(cur[i] + paeth(a, b, c)); break;
            default: goto out;
            }
        }
        for (uint32_t x = 0; x < out->w; x++) {
            const unsigned char *px = cur + (size_t)x * bpp;
            if (px[0] < 235 || px[1] < 235 || px[2] < 235) out->non_white++;
            if (px[0] < 80 && px[1] < 80 && px[2] < 80) out->dark++;
            int q = (px[0] >> 3) << 10 | (px[1] >> 3) << 5 | (px[2] >> 3);
            if (!seen[q]) {
                seen[q] = 1;
                out->colours++;
            }
        }
    }
    rc = 0;
out:
    free(raw);
    free(idat);
    free(data);
    return rc;
}

static void test_html_chromium(void) {
    make_tmpdir();
    const char *db = tmp_path("big.db"), *simcsv = tmp_path("big_sim.csv");
    build_big(db, simcsv);
    ReportRun runs[4] = {
        {"adaptive", db, "adaptive-1", NULL, T0, 0},
        {"adaptive", db, "adaptive-2", NULL, T0, 0},
        {"static-15m", db, "static-15m-1", NULL, T0, 0},
        {"static-15m", db, "static-15m-2", NULL, T0, 0},
    };
    ReportInputs in;
    report_inputs_default(&in);
    in.runs = runs;
    in.n_runs = 4;
    in.title = "driftpilot experiment (synthetic test store)";
    in.scenario = "gradual";
    in.sim_prediction_json = DP_TEST_DATA "/report/sim_prediction.json";
    in.sim_decisions_csv = simcsv;
    const char *dir = tmp_path("big_results");
    DpError err = {0};
    DpStatus s = report_write(dir, &in, &err);
    EXPECT_MSG(s == DP_OK, "%s", err.msg);
    REQUIRE(s == DP_OK);
    char html[600];
    snprintf(html, sizeof html, "%s/report.html", dir);
    char *page = slurp(html);
    REQUIRE(page);
    EXPECT_EQ_INT(count_str(page, "<svg id=\"chart-"), 6);
    free(page);
    if (getenv("DP_REPORT_KEEP")) fprintf(stderr, "  report at %s\n", html);

    const char *chromium = find_chromium();
    if (!chromium) {
        if (allow_skip()) {
            fprintf(stderr, "  SKIP chromium check: no chromium (DP_ALLOW_SKIP=1)\n");
            return;
        }
        EXPECT_MSG(0, "chromium is not installed (apt-get install -y chromium), or set "
                      "DP_ALLOW_SKIP=1 to skip this check");
        return;
    }
    char png[600], dom[600], cmd[4096];
    snprintf(png, sizeof png, "%s/shot.png", dir);
    snprintf(dom, sizeof dom, "%s/dom.html", dir);
    const char *flags = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                        "--disable-background-networking --disable-component-update --disable-sync "
                        "--disable-dev-shm-usage --hide-scrollbars";
    snprintf(cmd, sizeof cmd,
             "cd %s && timeout 90 %s %s --user-data-dir=%s/chrome-a --screenshot=%s "
             "--window-size=1280,2400 file://%s >%s/chrome.log 2>&1",
             tmpdir, chromium, flags, tmpdir, png, html, tmpdir);
    int rc = run_cmd(cmd);
    EXPECT_MSG(rc == 0, "chromium screenshot exited %d (log %s/chrome.log)", rc, tmpdir);
    PngStats ps;
    int prc = png_stats(png, &ps);
    EXPECT_MSG(prc == 0, "could not decode %s", png);
    if (prc == 0) {
        EXPECT_EQ_INT(ps.w, 1280);
        EXPECT_EQ_INT(ps.h, 2400);
        double share = (double)ps.non_white / ((double)ps.w * ps.h);
        /* Not blank: the background is light grey, figures white; text, lines
         * and bars cover a good share, dark text exists, and the palette's
         * colours are there. */
        EXPECT_MSG(share > 0.05, "non-white share %.4f", share);
        EXPECT_MSG(ps.dark > 2000, "dark pixels %ld", ps.dark);
        EXPECT_MSG(ps.colours > 40, "distinct colours %d", ps.colours);
        fprintf(stderr, "  screenshot %ux%u: %.1f%% non-white, %ld dark px, %d colours\n", ps.w,
                ps.h, 100 * share, ps.dark, ps.colours);
    }
    snprintf(cmd, sizeof cmd,
             "cd %s && timeout 90 %s %s --user-data-dir=%s/chrome-b --dump-dom file://%s >%s "
             "2>%s/chrome2.log",
             tmpdir, chromium, flags, tmpdir, html, dom, tmpdir);
    rc = run_cmd(cmd);
    EXPECT_MSG(rc == 0, "chromium --dump-dom exited %d", rc);
    char *d = slurp(dom);
    EXPECT(d != NULL);
    if (d) {
        const char *ids[] = {"chart-bleu", "chart-accuracy", "chart-latency", "chart-rate",
                             "chart-cost", "chart-retrains"};
        for (int i = 0; i < 6; i++) {
            char want[64];
            snprintf(want, sizeof want, "id=\"%s\"", ids[i]);
            EXPECT_MSG(strstr(d, want) != NULL, "rendered DOM lacks %s", ids[i]);
        }
        EXPECT(count_str(d, "<path") > 20);
        free(d);
    }
}

// ---- packaging: structural checks (no Docker engine here) ----

static void test_packaging_files(void) {
    char *df = slurp(DP_SOURCE_DIR "/Dockerfile");
    REQUIRE(df);
    /* multi-stage, Debian 12, portable build, one binary in the runtime */
    EXPECT(count_str(df, "\nFROM debian:12") + (strncmp(df, "FROM debian:12", 14) == 0) >= 2);
    EXPECT(strstr(df, " AS build") != NULL);
    EXPECT(strstr(df, "-DDP_NATIVE=OFF") != NULL);
    EXPECT(strstr(df, "COPY --from=build") != NULL);
    EXPECT(strstr(df, "ENTRYPOINT [\"/usr/local/bin/driftpilot\"]") != NULL);
    free(df);
    char *di = slurp(DP_SOURCE_DIR "/.dockerignore");
    EXPECT(di && strstr(di, "build*") != NULL);
    free(di);

    /* the compose file: a YAML subset checked by python3's standard library
     * when present (tests/data/report/check_compose.py), else by hand here */
    char *dc = slurp(DP_SOURCE_DIR "/docker-compose.yml");
    REQUIRE(dc);
    EXPECT(strchr(dc, '\t') == NULL); /* YAML forbids tabs for indentation */
    const char *services[] = {"\n  aws:", "\n  azure:", "\n  router:", "\n  controller:",
                              "\n  prometheus:", "\n  grafana:"};
    for (int i = 0; i < 6; i++) EXPECT_MSG(strstr(dc, services[i]) != NULL, "%s", services[i]);
    EXPECT(strstr(dc, "./deploy/prometheus") != NULL);
    EXPECT(strstr(dc, "./deploy/grafana/provisioning") != NULL);
    EXPECT(strstr(dc, "driftpilot-dashboard.json") != NULL);
    free(dc);
    /* The compose scrape config with the rule files of deploy/prometheus,
     * checked by promtool when it is installed (scripts/install-deps.sh --test). */
    if (run_cmd("command -v promtool >/dev/null 2>&1") == 0) {
        make_tmpdir();
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "mkdir -p %s/prom && cp " DP_SOURCE_DIR "/deploy/prometheus/*.yml %s/prom/ && cp "
                 DP_SOURCE_DIR "/deploy/compose/prometheus.yml %s/prom/prometheus.yml && "
                 "promtool check config %s/prom/prometheus.yml >%s/promtool.log 2>&1",
                 tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
        int rc = run_cmd(cmd);
        EXPECT_MSG(rc == 0, "promtool check config failed (see %s/promtool.log)", tmpdir);
    } else {
        fprintf(stderr, "  (promtool not installed: compose prometheus.yml not checked by it)\n");
    }
    if (run_cmd("command -v python3 >/dev/null 2>&1") == 0) {
        int rc = run_cmd("python3 " DP_TEST_DATA "/report/check_compose.py " DP_SOURCE_DIR);
        EXPECT_MSG(rc == 0, "check_compose.py exited %d", rc);
    } else if (!allow_skip()) {
        EXPECT_MSG(0, "python3 is needed for the compose check (or DP_ALLOW_SKIP=1)");
    }
}

TEST_MAIN(TEST_CASE(test_table_values), TEST_CASE(test_target_weighting),
          TEST_CASE(test_sim_prediction), TEST_CASE(test_errors),
          TEST_CASE(test_results_dir), TEST_CASE(test_html_chromium),
          TEST_CASE(test_packaging_files))
