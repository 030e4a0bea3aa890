/*
 * write.c: the results directory -- the Markdown and JSON table, the CSVs
 * (every decision, job, deployment and cost of every run, a per-run request
 * summary and the per-interval series), and report.html (html.c).
 *
 * Every file is built in memory and replaced atomically, so a reader never
 * sees half a table, and a failed run leaves the previous results intact.
 */
#include "report_impl.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

// ---- formatting ----

/* "—" for NaN, else the number with prec decimals. */
static const char *fnum(char *buf, size_t cap, double x, int prec) {
    if (isnan(x)) snprintf(buf, cap, "—");
    else snprintf(buf, cap, "%.*f", prec, x);
    return buf;
}

static const char *fpm(char *buf, size_t cap, double m, double sd, int prec) {
    if (isnan(m)) snprintf(buf, cap, "—");
    else if (isnan(sd)) snprintf(buf, cap, "%.*f", prec, m);
    else snprintf(buf, cap, "%.*f ± %.*f", prec, m, prec, sd);
    return buf;
}

static const char *fdelta(char *buf, size_t cap, double live, double sim, int prec) {
    if (isnan(live) || isnan(sim)) snprintf(buf, cap, "—");
    else snprintf(buf, cap, "%+.*f", prec, live - sim);
    return buf;
}

DpStatus report_table_markdown(const ReportTable *t, const ReportInputs *in, DpBuf *b) {
    char a[8][96];
    int within = 0;
    DpStatus s = dp_buf_printf(b, "## %s%s%s\n\n", in->title ? in->title : "driftpilot experiment",
                               in->scenario ? " — scenario " : "", in->scenario ? in->scenario : "");
    s = s ? s : dp_buf_printf(b, "| pipeline | repeats | retrains | BLEU-1 | BLEU-1 range | "
                                 "latency (ms) | p95 (ms) | exact match | F1 | cost | reward |\n"
                                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int r = 0; r < t->n_rows && !s; r++) {
        const ReportRow *w = &t->rows[r];
        const char *mark = w->std_within_run ? " †" : "";
        const char *lmark = w->std_within_run && !isnan(w->latency_ms_mean) ? " †" : "";
        if (isnan(w->bleu_mean)) mark = "";
        within |= w->std_within_run;
        char range[64];
        if (isnan(w->bleu_min)) snprintf(range, sizeof range, "—");
        else snprintf(range, sizeof range, "%.3f–%.3f", w->bleu_min, w->bleu_max);
        s = dp_buf_printf(b, "| %s | %d | %s | %s%s | %s | %s%s | %s | %s | %s | %s | %s |\n",
                          w->pipeline, w->n_repeats,
                          fpm(a[0], 96, w->retrains_mean, w->retrains_std, 1),
                          fpm(a[1], 96, w->bleu_mean, w->bleu_std, 3), mark, range,
                          fpm(a[2], 96, w->latency_ms_mean, w->latency_ms_std, 1), lmark,
                          fnum(a[3], 96, w->latency_p95_ms, 1),
                          fnum(a[4], 96, w->exact_match_mean, 3), fnum(a[5], 96, w->f1_mean, 3),
                          fnum(a[6], 96, w->cost_mean, 3), fnum(a[7], 96, w->reward_mean, 4));
    }
    s = s ? s : dp_buf_printf(b, "\n± is the sample standard deviation across repeats of each "
                                 "repeat's mean%s. BLEU-1 range: lowest and highest "
                                 "decision-interval mean over all repeats. Cost and reward are "
                                 "per run (reward: mean per decision interval).\n",
                              within ? "; † one repeat only: the deviation across its decision "
                                       "intervals"
                                     : "");
    int any_sim = 0;
    for (int r = 0; r < t->n_rows; r++) any_sim |= t->rows[r].has_sim;
    if (any_sim && !s) {
        s = dp_buf_printf(b, "\n### Simulator prediction beside the live result (scenario %s)\n\n"
                             "| pipeline | sim policy | retrains live / sim | BLEU-1 live / sim | "
                             "Δ BLEU-1 | latency ms live / sim | Δ latency | exact match live / "
                             "sim | cost live / sim | reward live / sim |\n"
                             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
                          t->sim_scenario);
        for (int r = 0; r < t->n_rows && !s; r++) {
            const ReportRow *w = &t->rows[r];
            if (!w->has_sim) {
                s = dp_buf_printf(b, "| %s | (none matched) | | | | | | | | |\n", w->pipeline);
                continue;
            }
            char c[12][48];
            s = dp_buf_printf(
                b, "| %s | %s | %s / %s | %s / %s | %s | %s / %s | %s | %s / %s | %s / %s | %s / %s |\n",
                w->pipeline, w->sim_policy, fnum(c[0], 48, w->retrains_mean, 1),
                fnum(c[1], 48, w->sim_retrains, 1), fnum(c[2], 48, w->bleu_mean, 3),
                fnum(c[3], 48, w->sim_bleu, 3), fdelta(c[4], 48, w->bleu_mean, w->sim_bleu, 3),
                fnum(c[5], 48, w->latency_ms_mean, 1), fnum(c[6], 48, w->sim_latency_ms, 1),
                fdelta(c[7], 48, w->latency_ms_mean, w->sim_latency_ms, 1),
                fnum(c[8], 48, w->exact_match_mean, 3), fnum(c[9], 48, w->sim_exact_match, 3),
                fnum(c[10], 48, w->cost_mean, 3), fnum(c[11], 48, w->sim_cost, 3),
                fnum(a[0], 96, w->reward_mean, 4), fnum(a[1], 96, w->sim_reward, 4));
        }
        s = s ? s : dp_buf_printf(b, "\nΔ = live − simulator: the simulator's calibration error "
                                     "for this scenario%s%s.\n",
                                  in->sim_source ? "; simulator: " : "",
                                  in->sim_source ? in->sim_source : "");
    }
    return s ? DP_ERR_NOMEM : DP_OK;
}

// ---- JSON ----

static json_t *jreal(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static char *table_json(const ReportTable *t, const ReportInputs *in) {
    const RpData *d = t->priv;
    json_t *root = json_object(), *pipes = json_array();
    json_object_set_new(root, "title", json_string(in->title ? in->title : "driftpilot experiment"));
    json_object_set_new(root, "scenario", in->scenario ? json_string(in->scenario) : json_null());
    json_object_set_new(root, "interval_s", json_real(in->interval_s));
    json_object_set_new(root, "sim_scenario", json_string(t->sim_scenario));
    for (int r = 0; r < t->n_rows; r++) {
        const ReportRow *w = &t->rows[r];
        json_t *o = json_object();
        json_object_set_new(o, "pipeline", json_string(w->pipeline));
        json_object_set_new(o, "repeats", json_integer(w->n_repeats));
        json_object_set_new(o, "std_within_run", json_boolean(w->std_within_run));
        json_object_set_new(o, "retrains_mean", jreal(w->retrains_mean));
        json_object_set_new(o, "retrains_std", jreal(w->retrains_std));
        json_object_set_new(o, "redeploys_mean", jreal(w->redeploys_mean));
        json_object_set_new(o, "bleu_mean", jreal(w->bleu_mean));
        json_object_set_new(o, "bleu_std", jreal(w->bleu_std));
        json_object_set_new(o, "bleu_min", jreal(w->bleu_min));
        json_object_set_new(o, "bleu_max", jreal(w->bleu_max));
        json_object_set_new(o, "latency_ms_mean", jreal(w->latency_ms_mean));
        json_object_set_new(o, "latency_ms_std", jreal(w->latency_ms_std));
        json_object_set_new(o, "latency_p95_ms", jreal(w->latency_p95_ms));
        json_object_set_new(o, "exact_match_mean", jreal(w->exact_match_mean));
        json_object_set_new(o, "f1_mean", jreal(w->f1_mean));
        json_object_set_new(o, "cost_mean", jreal(w->cost_mean));
        json_object_set_new(o, "reward_mean", jreal(w->reward_mean));
        json_object_set_new(o, "requests_mean", jreal(w->requests_mean));
        if (w->has_sim) {
            json_t *sm = json_object();
            json_object_set_new(sm, "policy", json_string(w->sim_policy));
            json_object_set_new(sm, "retrains_mean", jreal(w->sim_retrains));
            json_object_set_new(sm, "bleu_mean", jreal(w->sim_bleu));
            json_object_set_new(sm, "bleu_std", jreal(w->sim_bleu_std));
            json_object_set_new(sm, "latency_ms_mean", jreal(w->sim_latency_ms));
            json_object_set_new(sm, "exact_match_mean", jreal(w->sim_exact_match));
            json_object_set_new(sm, "cost_mean", jreal(w->sim_cost));
            json_object_set_new(sm, "reward_per_decision", jreal(w->sim_reward));
            json_object_set_new(o, "sim", sm);
        } else {
            json_object_set_new(o, "sim", json_null());
        }
        json_t *runs = json_array();
        for (int i = 0; i < d->n_runs; i++) {
            const RpRun *R = &d->runs[i];
            if (R->pipeline != r) continue;
            json_t *ro = json_object();
            json_object_set_new(ro, "repeat", json_integer(R->repeat));
            json_object_set_new(ro, "store", json_string(R->run->store_path));
            json_object_set_new(ro, "run_id", R->run->run_id ? json_string(R->run->run_id) : json_null());
            json_object_set_new(ro, "retrains", json_integer(R->n_retrains));
            json_object_set_new(ro, "redeploys", json_integer(R->n_redeploys));
            json_object_set_new(ro, "bleu_mean", jreal(R->bleu));
            json_object_set_new(ro, "bleu_min", jreal(R->bleu_min));
            json_object_set_new(ro, "bleu_max", jreal(R->bleu_max));
            json_object_set_new(ro, "latency_ms_mean", jreal(R->lat));
            json_object_set_new(ro, "latency_p95_ms", jreal(R->p95));
            json_object_set_new(ro, "exact_match_mean", jreal(R->acc));
            json_object_set_new(ro, "f1_mean", jreal(R->f1));
            json_object_set_new(ro, "cost", jreal(R->total_cost));
            json_object_set_new(ro, "reward_mean", jreal(R->reward));
            json_object_set_new(ro, "requests", jreal(R->requests));
            json_object_set_new(ro, "intervals", json_integer(R->n_int));
            json_array_append_new(runs, ro);
        }
        json_object_set_new(o, "runs", runs);
        json_array_append_new(pipes, o);
    }
    json_object_set_new(root, "pipelines", pipes);
    char *txt = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    return txt;
}

// ---- CSV ----

static DpStatus csv_str(DpBuf *b, const char *s, int last) {
    DpStatus st = DP_OK;
    if (s) {
        size_t n = strlen(s);
        int q = n && (strpbrk(s, ",\"\r\n") || s[0] == ' ' || s[n - 1] == ' ');
        if (q) {
            st = dp_buf_append(b, "\"", 1);
            for (const char *p = s; *p && !st; p++)
                st = *p == '"' ? dp_buf_append(b, "\"\"", 2) : dp_buf_append(b, p, 1);
            st = st ? st : dp_buf_append(b, "\"", 1);
        } else {
            st = dp_buf_append(b, s, n);
        }
    }
    return st ? st : dp_buf_append(b, last ? "\n" : ",", 1);
}

static DpStatus csv_num(DpBuf *b, double x, int last) {
    DpStatus st = isnan(x) ? DP_OK : dp_buf_printf(b, "%.17g", x);
    return st ? st : dp_buf_append(b, last ? "\n" : ",", 1);
}

static DpStatus csv_num_short(DpBuf *b, double x, int last) {
    DpStatus st = isnan(x) ? DP_OK : dp_buf_printf(b, "%.6g", x);
    return st ? st : dp_buf_append(b, last ? "\n" : ",", 1);
}

typedef struct {
    DpBuf *b;
    const RpRun *R;
    const char *pipeline;
    DpStatus st;
} CsvCtx;

static DpStatus csv_prefix(CsvCtx *c) {
    DpStatus s = csv_str(c->b, c->pipeline, 0);
    s = s ? s : dp_buf_printf(c->b, "%d,", c->R->repeat);
    return s ? s : csv_str(c->b, c->R->run->run_id, 0);
}

static double scen_of(const RpRun *R, double ts) { return (ts - R->t0) * R->scale; }

static int csv_decision(const StoreDecision *d, void *user) {
    CsvCtx *c = user;
    DpStatus s = csv_prefix(c);
    s = s ? s : csv_num(c->b, d->ts, 0);
    s = s ? s : csv_num_short(c->b, scen_of(c->R, d->ts), 0);
    s = s ? s : csv_str(c->b, d->policy, 0);
    s = s ? s : csv_str(c->b, d->action, 0);
    s = s ? s : csv_str(c->b, d->target, 0);
    s = s ? s : csv_str(c->b, d->reason, 0);
    s = s ? s : dp_buf_printf(c->b, "%d,", d->executed);
    s = s ? s : csv_str(c->b, d->error, 1);
    c->st = s;
    return s != DP_OK;
}

static int csv_job(const StoreJob *j, void *user) {
    CsvCtx *c = user;
    DpStatus s = csv_prefix(c);
    s = s ? s : dp_buf_printf(c->b, "%lld,", (long long)j->id);
    s = s ? s : csv_str(c->b, j->kind, 0);
    s = s ? s : csv_str(c->b, j->target, 0);
    s = s ? s : csv_num(c->b, j->started, 0);
    s = s ? s : csv_num_short(c->b, scen_of(c->R, j->started), 0);
    s = s ? s : csv_num(c->b, j->finished, 0);
    s = s ? s : csv_str(c->b, j->status, 0);
    s = s ? s : csv_num(c->b, j->duration_s, 0);
    s = s ? s : csv_num(c->b, j->cost, 1);
    c->st = s;
    return s != DP_OK;
}

static int csv_deployment(const StoreDeployment *d, void *user) {
    CsvCtx *c = user;
    DpStatus s = csv_prefix(c);
    s = s ? s : csv_num(c->b, d->ts, 0);
    s = s ? s : csv_num_short(c->b, scen_of(c->R, d->ts), 0);
    s = s ? s : csv_str(c->b, d->target, 0);
    s = s ? s : csv_str(c->b, d->version, 0);
    s = s ? s : csv_str(c->b, d->previous_version, 0);
    s = s ? s : csv_str(c->b, d->kind, 1);
    c->st = s;
    return s != DP_OK;
}

static int csv_cost(const StoreCost *k, void *user) {
    CsvCtx *c = user;
    DpStatus s = csv_prefix(c);
    s = s ? s : csv_num(c->b, k->ts, 0);
    s = s ? s : csv_num_short(c->b, scen_of(c->R, k->ts), 0);
    s = s ? s : csv_str(c->b, k->target, 0);
    s = s ? s : csv_num(c->b, k->amount, 0);
    s = s ? s : csv_str(c->b, k->kind, 1);
    c->st = s;
    return s != DP_OK;
}

static DpStatus write_buf(const char *dir, const char *name, const DpBuf *b, DpError *err) {
    char path[4096];
    DpStatus s = dp_path_join(path, sizeof path, dir, name, err);
    if (s) return s;
    return dp_write_file_atomic(path, b->data ? b->data : "", b->len, err);
}

/* decisions.csv, jobs.csv, deployments.csv, costs.csv: the store's rows of
 * every run, with pipeline,repeat,run_id in front. */
static DpStatus write_store_csvs(const char *dir, const RpData *d, DpError *err) {
    DpBuf bd = DP_BUF_INIT, bj = DP_BUF_INIT, bp = DP_BUF_INIT, bc = DP_BUF_INIT;
    DpStatus s = dp_buf_printf(&bd, "pipeline,repeat,run_id,ts,scenario_s,policy,action,target,"
                                    "reason,executed,error\n");
    s = s ? s : dp_buf_printf(&bj, "pipeline,repeat,run_id,job_id,kind,target,started,"
                                   "started_scenario_s,finished,status,duration_s,cost\n");
    s = s ? s : dp_buf_printf(&bp, "pipeline,repeat,run_id,ts,scenario_s,target,version,"
                                   "previous_version,kind\n");
    s = s ? s : dp_buf_printf(&bc, "pipeline,repeat,run_id,ts,scenario_s,target,amount,kind\n");
    if (s) {
        s = dp_fail(err, DP_ERR_NOMEM, "report: out of memory");
        goto out;
    }
    for (int i = 0; i < d->n_runs && !s; i++) {
        const RpRun *R = &d->runs[i];
        Store *st = NULL;
        if ((s = store_open(R->run->store_path, &st, err))) break;
        const char *id = R->run->run_id;
        CsvCtx c = {&bd, R, d->names[R->pipeline], DP_OK};
        s = store_each_decision(st, id, csv_decision, &c, err);
        if (!s && !c.st) c.b = &bj, s = store_each_job(st, id, csv_job, &c, err);
        if (!s && !c.st) c.b = &bp, s = store_each_deployment(st, id, csv_deployment, &c, err);
        if (!s && !c.st) c.b = &bc, s = store_each_cost(st, id, csv_cost, &c, err);
        if (!s && c.st) s = dp_fail(err, c.st, "report: out of memory");
        store_close(st);
    }
    s = s ? s : write_buf(dir, "decisions.csv", &bd, err);
    s = s ? s : write_buf(dir, "jobs.csv", &bj, err);
    s = s ? s : write_buf(dir, "deployments.csv", &bp, err);
    s = s ? s : write_buf(dir, "costs.csv", &bc, err);
out:
    dp_buf_free(&bd);
    dp_buf_free(&bj);
    dp_buf_free(&bp);
    dp_buf_free(&bc);
    return s;
}

/* requests_summary.csv (one row per run) and timeseries.csv (one row per
 * run and decision interval). */
static DpStatus write_summary_csvs(const char *dir, const RpData *d, DpError *err) {
    DpBuf a = DP_BUF_INIT, b = DP_BUF_INIT;
    DpStatus s = dp_buf_printf(&a, "pipeline,repeat,run_id,requests,latency_ms_mean,"
                                   "latency_p95_ms,retrains,redeploys,bleu_mean,bleu_min,"
                                   "bleu_max,exact_match,f1,cost,reward_mean\n");
    s = s ? s : dp_buf_printf(&b, "pipeline,repeat,run_id,interval,scenario_s,bleu,accuracy,f1,"
                                  "latency_ms,latency_p50_ms,latency_p95_ms,latency_p99_ms,"
                                  "request_rate,cost\n");
    for (int i = 0; i < d->n_runs && !s; i++) {
        const RpRun *R = &d->runs[i];
        CsvCtx c = {&a, R, d->names[R->pipeline], DP_OK};
        s = csv_prefix(&c);
        double v[] = {R->requests, R->lat, R->p95, R->n_retrains, R->n_redeploys, R->bleu,
                      R->bleu_min, R->bleu_max, R->acc, R->f1, R->total_cost, R->reward};
        int nv = (int)(sizeof v / sizeof v[0]);
        for (int k = 0; k < nv && !s; k++) s = csv_num_short(&a, v[k], k == nv - 1);
        c.b = &b;
        for (int k = 0; k < R->n_int && !s; k++) {
            s = csv_prefix(&c);
            s = s ? s : dp_buf_printf(&b, "%d,%g,", k, k * d->interval_s);
            for (int q = 0; q < RQ_N && !s; q++) s = csv_num_short(&b, R->q[q][k], 0);
            s = s ? s : csv_num_short(&b, R->cost_at[k], 1);
        }
    }
    if (s) s = dp_fail(err, DP_ERR_NOMEM, "report: out of memory");
    s = s ? s : write_buf(dir, "requests_summary.csv", &a, err);
    s = s ? s : write_buf(dir, "timeseries.csv", &b, err);
    dp_buf_free(&a);
    dp_buf_free(&b);
    return s;
}

DpStatus report_write_table(const char *dir, const ReportInputs *in, const ReportTable *t,
                            DpError *err) {
    DpBuf b = DP_BUF_INIT;
    char *js = NULL;
    DpStatus s = dp_mkdirs(dir, err);
    if (s) return dp_error_wrap(err, "report: results directory %s", dir);
    if (report_table_markdown(t, in, &b)) goto nomem;
    if ((s = write_buf(dir, "results.md", &b, err))) goto out;
    js = table_json(t, in);
    if (!js) goto nomem;
    dp_buf_free(&b);
    if (dp_buf_printf(&b, "%s\n", js)) goto nomem;
    if ((s = write_buf(dir, "results.json", &b, err))) goto out;
    if ((s = write_store_csvs(dir, t->priv, err))) goto out;
    if ((s = write_summary_csvs(dir, t->priv, err))) goto out;
    dp_buf_free(&b);
    if ((s = report_html(t, in, &b, err))) goto out;
    s = write_buf(dir, "report.html", &b, err);
    goto out;
nomem:
    s = dp_fail(err, DP_ERR_NOMEM, "report: out of memory");
out:
    free(js);
    dp_buf_free(&b);
    return s;
}

DpStatus report_write(const char *dir, const ReportInputs *in, DpError *err) {
    ReportTable *t = NULL;
    DpStatus s = report_compute(in, &t, err);
    if (!s) s = report_write_table(dir, in, t, err);
    report_table_free(t);
    return s;
}
