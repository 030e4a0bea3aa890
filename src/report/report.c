/*
 * report.c: reads the runs (stores, request CSVs, the simulator's
 * prediction) into per-interval series and computes the study's table.
 *
 * Everything is bucketed by decision interval of scenario time: a run's
 * value for an interval is the mean of the samples that fell in it (every
 * target together), and a run's mean is the mean over the intervals that
 * have data, so a target that reports twice as often does not weigh twice.
 * The per-pipeline series drawn in the charts are means over repeats, per
 * interval.
 */
#include "report_impl.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

// ---- small helpers ----

DpStatus rp_arr_push(RpArr *a, double x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        double *v = dp_realloc_array(a->v, cap, sizeof *v);
        if (!v) return DP_ERR_NOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return DP_OK;
}

void rp_arr_free(RpArr *a) {
    if (!a) return;
    free(a->v);
    memset(a, 0, sizeof *a);
}

void report_inputs_default(ReportInputs *in) {
    memset(in, 0, sizeof *in);
    in->scale = 1;
    in->interval_s = 60;
    sim_reward_default(&in->reward);
}

static double nan_mean(const double *x, int n, int *count) {
    double s = 0;
    int c = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i])) {
            s += x[i];
            c++;
        }
    if (count) *count = c;
    return c ? s / c : NAN;
}

/* Copies the non-NaN values of x into a new array (caller frees). */
static double *non_nan(const double *x, int n, int *m) {
    double *o = dp_malloc(sizeof *o * (size_t)(n > 0 ? n : 1));
    *m = 0;
    if (!o) return NULL;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i])) o[(*m)++] = x[i];
    return o;
}

// ---- raw records of one run, in wall time ----

typedef struct {
    RpArr ts[RQ_N], val[RQ_N];  /* metric samples per quantity */
    RpArr tg[RQ_N];             /* target index of each metric sample */
    char targets[32][64];       /* target names seen in metric samples (the 32nd: all others) */
    int n_targets;
    RpArr st_ts[RQ_N], st_val[RQ_N]; /* the same from state vectors */
    RpArr job_t, job_cost, job_end;  /* retrain jobs */
    RpArr dec_retrain_t;        /* executed retrain decisions */
    RpArr dep_t, rb_t;          /* redeploys, rollbacks */
    RpArr cost_t, cost_v;
    int n_jobs_any;             /* jobs of any kind */
    double tmin;
    const char *run_id;
    DpStatus status;            /* first failure inside a callback */
} RawRun;

static void raw_free(RawRun *r) {
    for (int q = 0; q < RQ_N; q++) {
        rp_arr_free(&r->ts[q]);
        rp_arr_free(&r->val[q]);
        rp_arr_free(&r->st_ts[q]);
        rp_arr_free(&r->st_val[q]);
        rp_arr_free(&r->tg[q]);
    }
    rp_arr_free(&r->job_t);
    rp_arr_free(&r->job_cost);
    rp_arr_free(&r->job_end);
    rp_arr_free(&r->dec_retrain_t);
    rp_arr_free(&r->dep_t);
    rp_arr_free(&r->rb_t);
    rp_arr_free(&r->cost_t);
    rp_arr_free(&r->cost_v);
}

static void raw_seen(RawRun *r, double ts) {
    if (isfinite(ts) && (isnan(r->tmin) || ts < r->tmin)) r->tmin = ts;
}

static int same_run(const RawRun *r, const char *run_id) {
    if (!r->run_id) return 1;
    return run_id && !strcmp(run_id, r->run_id);
}

static int push2(RawRun *r, RpArr *a, double x, RpArr *b, double y) {
    if (rp_arr_push(a, x) || (b && rp_arr_push(b, y))) {
        r->status = DP_ERR_NOMEM;
        return 1;
    }
    return 0;
}

typedef struct {
    RawRun *raw;
    int q;
} SampleCtx;

static int on_sample(const StoreMetricSample *m, void *user) {
    SampleCtx *c = user;
    if (!same_run(c->raw, m->run_id) || isnan(m->value)) return 0;
    raw_seen(c->raw, m->ts);
    /* Samples are per target: remember whose it is (rates add up over
     * targets, quality is weighted by each target's traffic). */
    RawRun *r = c->raw;
    const char *tg = m->target ? m->target : "";
    int i = 0;
    while (i < r->n_targets && strcmp(r->targets[i], tg)) i++;
    if (i == r->n_targets && i < 32) snprintf(r->targets[r->n_targets++], 64, "%s", tg);
    if (push2(r, &r->tg[c->q], i < 32 ? i : 31, NULL, 0)) return 1;
    return push2(c->raw, &c->raw->ts[c->q], m->ts, &c->raw->val[c->q], m->value);
}

static int on_state(const StoreState *st, void *user) {
    RawRun *r = user;
    raw_seen(r, st->ts);
    if (!st->names) return 0;
    for (int i = 0; i < st->n; i++) {
        const char *nm = st->names[i];
        double v = st->vector[i];
        int q = -1;
        if (!nm || isnan(v)) continue;
        if (!strcmp(nm, "bleu")) q = RQ_BLEU;
        else if (!strcmp(nm, "accuracy")) q = RQ_ACC;
        else if (!strcmp(nm, "f1")) q = RQ_F1;
        else if (!strcmp(nm, "latency_s")) q = RQ_LAT, v *= 1000;
        else if (!strcmp(nm, "request_rate_krps")) q = RQ_RATE, v *= 1000;
        if (q >= 0 && push2(r, &r->st_ts[q], st->ts, &r->st_val[q], v)) return 1;
    }
    return 0;
}

static int on_job(const StoreJob *j, void *user) {
    RawRun *r = user;
    raw_seen(r, j->started);
    r->n_jobs_any++;
    if (!j->kind || strcmp(j->kind, "retrain")) return 0;
    if (push2(r, &r->job_t, j->started, &r->job_cost, isnan(j->cost) ? 0 : j->cost)) return 1;
    double end = isfinite(j->finished) ? j->finished : j->started;
    return push2(r, &r->job_end, end, NULL, 0);
}

static int on_decision(const StoreDecision *d, void *user) {
    RawRun *r = user;
    raw_seen(r, d->ts);
    if (d->executed && d->action && strstr(d->action, "retrain"))
        return push2(r, &r->dec_retrain_t, d->ts, NULL, 0);
    return 0;
}

static int on_deployment(const StoreDeployment *d, void *user) {
    RawRun *r = user;
    raw_seen(r, d->ts);
    if (d->kind && !strcmp(d->kind, "rollback")) return push2(r, &r->rb_t, d->ts, NULL, 0);
    /* The first deployment of a run (no previous version) is the initial
     * model, not a redeploy. */
    if (d->previous_version) return push2(r, &r->dep_t, d->ts, NULL, 0);
    return 0;
}

static int on_cost(const StoreCost *c, void *user) {
    RawRun *r = user;
    raw_seen(r, c->ts);
    if (isnan(c->amount)) return 0;
    return push2(r, &r->cost_t, c->ts, &r->cost_v, c->amount);
}

static const char *sample_names[RQ_N][3] = {
    [RQ_BLEU] = {"llm_bleu", "bleu", NULL},
    [RQ_ACC] = {"llm_accuracy", "accuracy", NULL},
    [RQ_F1] = {"llm_f1", "f1", NULL},
    [RQ_LAT] = {"latency_ms", "llm_latency_ms", NULL},
    [RQ_P50] = {"latency_p50_ms", NULL, NULL},
    [RQ_P95] = {"latency_p95_ms", NULL, NULL},
    [RQ_P99] = {"latency_p99_ms", NULL, NULL},
    [RQ_RATE] = {"request_rate", NULL, NULL},
};

static DpStatus raw_load(const ReportRun *run, RawRun *r, DpError *err) {
    Store *st = NULL;
    /* store_open creates a missing file; a report must not. */
    if (!dp_file_exists(run->store_path))
        return dp_fail(err, DP_ERR_IO, "report: no store %s", run->store_path);
    DpStatus s = store_open(run->store_path, &st, err);
    if (s) return dp_error_wrap(err, "report");
    r->run_id = run->run_id;
    r->tmin = NAN;
    for (int q = 0; q < RQ_N && !s; q++)
        for (int k = 0; k < 3 && sample_names[q][k] && !s; k++) {
            SampleCtx c = {r, q};
            s = store_each_metric_sample(st, NULL, sample_names[q][k], -INFINITY, INFINITY,
                                         on_sample, &c, err);
        }
    if (!s) s = store_each_state(st, run->run_id, on_state, r, err);
    if (!s) s = store_each_job(st, run->run_id, on_job, r, err);
    if (!s) s = store_each_decision(st, run->run_id, on_decision, r, err);
    if (!s) s = store_each_deployment(st, run->run_id, on_deployment, r, err);
    if (!s) s = store_each_cost(st, run->run_id, on_cost, r, err);
    if (!s && r->status) s = dp_fail(err, r->status, "report: out of memory");
    store_close(st);
    if (s) return dp_error_wrap(err, "report: reading %s", run->store_path);
    return DP_OK;
}

// ---- the requests CSV of the load generator ----

typedef struct {
    RpArr t, lat;      /* ok rows: scenario time, latency */
    RpArr arr_t;       /* every row: scenario time */
} ReqRows;

/* Splits one CSV line (loadgen's fields never hold quotes or commas, but
 * tolerate quoted fields anyway) into at most max fields, in place. */
static int csv_split(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        if (*p == '"') {
            p++;
            f[n++] = p;
            char *w = p;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"') p++;
                *w++ = *p++;
            }
            if (*p == '"') p++;
            *w = 0;
            if (*p == ',') p++;
            else break;
            continue;
        }
        f[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    return n;
}

static DpStatus req_load(const char *path, ReqRows *rr, DpError *err) {
    FILE *f = fopen(path, "r");
    if (!f) return dp_fail(err, DP_ERR_IO, "report: open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int c_scen = -1, c_lat = -1, c_err = -1, c_status = -1, lineno = 0;
    DpStatus s = DP_OK;
    char *f_[32];
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) continue;
        int n = csv_split(line, f_, 32);
        if (c_scen < 0) {
            for (int i = 0; i < n; i++) {
                if (!strcmp(f_[i], "scenario_s")) c_scen = i;
                else if (!strcmp(f_[i], "latency_ms")) c_lat = i;
                else if (!strcmp(f_[i], "error")) c_err = i;
                else if (!strcmp(f_[i], "status")) c_status = i;
            }
            if (c_scen < 0 || c_lat < 0) {
                s = dp_fail(err, DP_ERR_PARSE,
                            "report: %s line %d: header lacks scenario_s or latency_ms", path,
                            lineno);
                break;
            }
            continue;
        }
        if (n <= c_scen || n <= c_lat) {
            s = dp_fail(err, DP_ERR_PARSE, "report: %s line %d: %d fields", path, lineno, n);
            break;
        }
        char *end;
        double t = strtod(f_[c_scen], &end);
        if (end == f_[c_scen] || *end || !isfinite(t)) {
            s = dp_fail(err, DP_ERR_PARSE, "report: %s line %d: bad scenario_s '%s'", path,
                        lineno, f_[c_scen]);
            break;
        }
        if (rp_arr_push(&rr->arr_t, t)) goto nomem;
        int ok = (c_err < 0 || c_err >= n || !f_[c_err][0]) && f_[c_lat][0];
        if (ok && c_status >= 0 && c_status < n && f_[c_status][0] && f_[c_status][0] != '2')
            ok = 0;
        if (ok) {
            double l = strtod(f_[c_lat], &end);
            if (end == f_[c_lat] || *end || !isfinite(l)) {
                s = dp_fail(err, DP_ERR_PARSE, "report: %s line %d: bad latency_ms '%s'", path,
                            lineno, f_[c_lat]);
                break;
            }
            if (rp_arr_push(&rr->t, t) || rp_arr_push(&rr->lat, l)) goto nomem;
        }
    }
    if (!s && c_scen < 0) s = dp_fail(err, DP_ERR_PARSE, "report: %s: empty", path);
    free(line);
    fclose(f);
    return s;
nomem:
    free(line);
    fclose(f);
    return dp_fail(err, DP_ERR_NOMEM, "report: out of memory reading %s", path);
}

static void req_free(ReqRows *rr) {
    rp_arr_free(&rr->t);
    rp_arr_free(&rr->lat);
    rp_arr_free(&rr->arr_t);
}

// ---- one run: raw records -> per-interval series ----

static int interval_of(double t, double interval) {
    if (!(t >= 0)) return 0; /* records just before t0 belong to the first interval */
    return (int)floor(t / interval);
}

static DpStatus run_build(RpRun *R, const ReportInputs *in, DpError *err) {
    const ReportRun *run = R->run;
    RawRun raw;
    memset(&raw, 0, sizeof raw);
    ReqRows rr;
    memset(&rr, 0, sizeof rr);
    double *tsum = NULL, *tcnt = NULL;
    DpStatus s = raw_load(run, &raw, err);
    if (s) goto out;
    if (run->requests_csv && (s = req_load(run->requests_csv, &rr, err))) goto out;

    double iv = in->interval_s;
    R->scale = run->scale > 0 ? run->scale : in->scale;
    R->t0 = run->t0 > 0 ? run->t0 : (isnan(raw.tmin) ? 0 : raw.tmin);
#define SCEN(ts) (((ts) - R->t0) * R->scale)

    /* Which source feeds each quantity: samples, else states; the requests
     * CSV replaces latency and rate. */
    int use_req = run->requests_csv != NULL;
    RpArr *src_t[RQ_N], *src_v[RQ_N];
    for (int q = 0; q < RQ_N; q++) {
        int from_states = raw.ts[q].n == 0;
        src_t[q] = from_states ? &raw.st_ts[q] : &raw.ts[q];
        src_v[q] = from_states ? &raw.st_val[q] : &raw.val[q];
    }

    /* Number of intervals: the latest record of any kind. */
    double tmax = 0;
    for (int q = 0; q < RQ_N; q++)
        for (size_t i = 0; i < src_t[q]->n; i++) tmax = fmax(tmax, SCEN(src_t[q]->v[i]));
    for (size_t i = 0; i < raw.job_t.n; i++) tmax = fmax(tmax, SCEN(raw.job_t.v[i]));
    for (size_t i = 0; i < raw.cost_t.n; i++) tmax = fmax(tmax, SCEN(raw.cost_t.v[i]));
    for (size_t i = 0; i < raw.dep_t.n; i++) tmax = fmax(tmax, SCEN(raw.dep_t.v[i]));
    for (size_t i = 0; i < rr.arr_t.n; i++) tmax = fmax(tmax, rr.arr_t.v[i]);
    int n = interval_of(tmax, iv) + 1;
    R->n_int = n;

    for (int q = 0; q < RQ_N; q++) {
        R->q[q] = dp_malloc(sizeof(double) * (size_t)n);
        if (!R->q[q]) goto nomem;
    }
    R->cost_at = dp_calloc((size_t)n, sizeof *R->cost_at);
    if (!R->cost_at) goto nomem;

    /* Per (quantity, interval, target): the mean of the samples.  State
     * vectors describe the serving target only: one pseudo-target. */
    int nt = raw.n_targets > 0 ? raw.n_targets : 1;
    size_t cells = (size_t)RQ_N * (size_t)n * (size_t)nt;
    tsum = dp_calloc(cells, sizeof *tsum);
    tcnt = dp_calloc(cells, sizeof *tcnt);
    if (!tsum || !tcnt) goto nomem;
#define CELL(q, k, g) (((size_t)(q) * (size_t)n + (size_t)(k)) * (size_t)nt + (size_t)(g))
    for (int q = 0; q < RQ_N; q++) {
        /* Rates from the store are kept even when the requests CSV gives
         * the rate series: they are the per-target weights below. */
        int from_req = use_req && (q == RQ_LAT || q == RQ_P50 || q == RQ_P95 || q == RQ_P99);
        if (from_req) continue;
        int from_states = src_t[q] == &raw.st_ts[q];
        for (size_t i = 0; i < src_t[q]->n; i++) {
            int k = interval_of(SCEN(src_t[q]->v[i]), iv);
            int g = from_states ? 0 : (int)raw.tg[q].v[i];
            tsum[CELL(q, k, g)] += src_v[q]->v[i];
            tcnt[CELL(q, k, g)]++;
        }
    }
    /* Combine targets: rates add up; everything else is the mean over the
     * targets that reported, weighted by each one's request rate in the
     * interval when the store has rates (an idle target's gauges are stale:
     * weight 0), else unweighted. */
    int have_rates = raw.ts[RQ_RATE].n > 0;
    for (int q = 0; q < RQ_N; q++)
        for (int k = 0; k < n; k++) {
            double num = 0, den = 0, pn = 0, rsum = 0;
            int pc = 0;
            for (int g = 0; g < nt; g++) {
                size_t c = CELL(q, k, g);
                if (!tcnt[c]) continue;
                double v = tsum[c] / tcnt[c];
                pn += v;
                pc++;
                rsum += v;
                size_t cr = CELL(RQ_RATE, k, g);
                double w = have_rates && tcnt[cr] ? tsum[cr] / tcnt[cr] : 0;
                num += w * v;
                den += w;
            }
            if (q == RQ_RATE) R->q[q][k] = pc ? rsum : NAN;
            else R->q[q][k] = den > 0 ? num / den : pc ? pn / pc : NAN;
        }
#undef CELL
    R->p95 = NAN;
    if (use_req) {
        /* Latency percentiles per interval from the ok requests. */
        RpArr *per = dp_calloc((size_t)n, sizeof *per);
        if (!per) goto nomem;
        int bad = 0;
        for (size_t i = 0; i < rr.t.n && !bad; i++)
            bad = rp_arr_push(&per[interval_of(rr.t.v[i], iv)], rr.lat.v[i]) != DP_OK;
        for (int k = 0; k < n && !bad; k++) {
            if (per[k].n) {
                R->q[RQ_LAT][k] = dp_mean(per[k].v, per[k].n);
                R->q[RQ_P50][k] = dp_quantile(per[k].v, per[k].n, 0.50);
                R->q[RQ_P95][k] = dp_quantile(per[k].v, per[k].n, 0.95);
                R->q[RQ_P99][k] = dp_quantile(per[k].v, per[k].n, 0.99);
            } else {
                R->q[RQ_LAT][k] = R->q[RQ_P50][k] = R->q[RQ_P95][k] = R->q[RQ_P99][k] = NAN;
            }
            R->q[RQ_RATE][k] = 0;
        }
        for (int k = 0; k < n; k++) rp_arr_free(&per[k]);
        free(per);
        if (bad) goto nomem;
        /* Arrivals per wall second of the interval. */
        double wall = iv / R->scale;
        for (size_t i = 0; i < rr.arr_t.n; i++) R->q[RQ_RATE][interval_of(rr.arr_t.v[i], iv)] += 1;
        for (int k = 0; k < n; k++) R->q[RQ_RATE][k] /= wall;
        R->requests = (double)rr.arr_t.n;
        if (rr.lat.n) R->p95 = dp_quantile(rr.lat.v, rr.lat.n, 0.95);
    }

    /* Retrains, redeploys, cost. */
    RpArr *rt = raw.n_jobs_any ? &raw.job_t : &raw.dec_retrain_t;
    for (size_t i = 0; i < rt->n; i++)
        if (rp_arr_push(&R->retrain_t, SCEN(rt->v[i]))) goto nomem;
    R->n_retrains = (int)rt->n;
    for (size_t i = 0; i < raw.dep_t.n; i++)
        if (rp_arr_push(&R->redeploy_t, SCEN(raw.dep_t.v[i]))) goto nomem;
    for (size_t i = 0; i < raw.rb_t.n; i++)
        if (rp_arr_push(&R->rollback_t, SCEN(raw.rb_t.v[i]))) goto nomem;
    R->n_redeploys = (int)raw.dep_t.n;
    if (raw.cost_t.n) {
        for (size_t i = 0; i < raw.cost_t.n; i++) {
            R->cost_at[interval_of(SCEN(raw.cost_t.v[i]), iv)] += raw.cost_v.v[i];
            R->total_cost += raw.cost_v.v[i];
        }
    } else {
        for (size_t i = 0; i < raw.job_t.n; i++) {
            R->cost_at[interval_of(SCEN(raw.job_end.v[i]), iv)] += raw.job_cost.v[i];
            R->total_cost += raw.job_cost.v[i];
        }
    }

    /* Run summaries. */
    int m;
    double *b = non_nan(R->q[RQ_BLEU], n, &m);
    if (!b) goto nomem;
    R->bleu = m ? dp_mean(b, (size_t)m) : NAN;
    R->bleu_sd = m ? dp_std(b, (size_t)m) : NAN;
    R->bleu_min = m ? b[0] : NAN;
    R->bleu_max = m ? b[0] : NAN;
    for (int i = 1; i < m; i++) {
        R->bleu_min = fmin(R->bleu_min, b[i]);
        R->bleu_max = fmax(R->bleu_max, b[i]);
    }
    free(b);
    R->acc = nan_mean(R->q[RQ_ACC], n, NULL);
    R->f1 = nan_mean(R->q[RQ_F1], n, NULL);
    double *l = non_nan(R->q[RQ_LAT], n, &m);
    if (!l) goto nomem;
    R->lat_sd = m ? dp_std(l, (size_t)m) : NAN;
    R->lat = m ? dp_mean(l, (size_t)m) : NAN;
    free(l);
    if (use_req) R->lat = rr.lat.n ? dp_mean(rr.lat.v, rr.lat.n) : NAN;
    else if (!isnan(nan_mean(R->q[RQ_P95], n, NULL))) R->p95 = nan_mean(R->q[RQ_P95], n, NULL);

    /* Mean reward per interval with quality data: the quality/latency term
     * of each such interval, minus every cost of the run (cost spent in an
     * interval without data is still spent). */
    double rsum = 0;
    int rn = 0;
    for (int k = 0; k < n; k++) {
        double bl = R->q[RQ_BLEU][k], ac = R->q[RQ_ACC][k];
        if (isnan(bl) && isnan(ac)) continue;
        SimObservation o;
        memset(&o, 0, sizeof o);
        o.bleu = isnan(bl) ? 0 : bl;
        o.accuracy = isnan(ac) ? 0 : ac;
        o.f1 = isnan(R->q[RQ_F1][k]) ? 0 : R->q[RQ_F1][k];
        o.latency_ms = isnan(R->q[RQ_LAT][k]) ? 0 : R->q[RQ_LAT][k];
        rsum += sim_reward(&in->reward, &o, 0, iv);
        rn++;
    }
    R->reward = rn ? (rsum - in->reward.cost_weight * R->total_cost) / rn : NAN;
#undef SCEN
    s = DP_OK;
    goto out;
nomem:
    s = dp_fail(err, DP_ERR_NOMEM, "report: out of memory");
out:
    free(tsum);
    free(tcnt);
    raw_free(&raw);
    req_free(&rr);
    return s;
}

static void run_free(RpRun *R) {
    for (int q = 0; q < RQ_N; q++) free(R->q[q]);
    free(R->cost_at);
    rp_arr_free(&R->retrain_t);
    rp_arr_free(&R->redeploy_t);
    rp_arr_free(&R->rollback_t);
}

// ---- the simulator's prediction ----

/* The policy-name prefix the pipeline is matched with. */
static void sim_prefix_for(const ReportInputs *in, const char *pipeline, char *out, size_t cap) {
    static const char *defaults[][2] = {{"adaptive", "ppo"},
                                        {"static-15m", "static-15m"},
                                        {"threshold", "threshold"},
                                        {"drift", "page-hinkley"}};
    snprintf(out, cap, "%s", pipeline);
    if (in->sim_policy_map) {
        const char *p = in->sim_policy_map;
        size_t pl = strlen(pipeline);
        while (*p) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            const char *eq = memchr(p, '=', len);
            if (eq && (size_t)(eq - p) == pl && !strncmp(p, pipeline, pl)) {
                snprintf(out, cap, "%.*s", (int)(len - pl - 1), eq + 1);
                return;
            }
            if (!e) break;
            p = e + 1;
        }
    }
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (!strcmp(defaults[i][0], pipeline)) snprintf(out, cap, "%s", defaults[i][1]);
}

static int starts_with(const char *s, const char *prefix) {
    return s && !strncmp(s, prefix, strlen(prefix));
}

static double jnum(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static DpStatus sim_load_prediction(const ReportInputs *in, ReportTable *t, DpError *err) {
    json_error_t je;
    json_t *root = json_load_file(in->sim_prediction_json, 0, &je);
    if (!root)
        return dp_fail(err, DP_ERR_PARSE, "report: %s line %d: %s", in->sim_prediction_json,
                       je.line, je.text);
    json_t *scen = json_object_get(root, "scenarios"), *pick = NULL;
    size_t i;
    json_t *sv;
    json_array_foreach(scen, i, sv) {
        const char *nm = json_string_value(json_object_get(sv, "scenario"));
        if (!pick && !in->scenario) pick = sv;
        if (in->scenario && nm && !strcmp(nm, in->scenario)) pick = sv;
    }
    if (!pick) {
        json_decref(root);
        return dp_fail(err, DP_ERR_PARSE, "report: %s: no scenario %s", in->sim_prediction_json,
                       in->scenario ? in->scenario : "(any)");
    }
    snprintf(t->sim_scenario, sizeof t->sim_scenario, "%s",
             json_string_value(json_object_get(pick, "scenario")) ?: "");
    double decisions = jnum(pick, "decisions");
    for (int r = 0; r < t->n_rows; r++) {
        ReportRow *row = &t->rows[r];
        char pre[REPORT_NAME_MAX];
        sim_prefix_for(in, row->pipeline, pre, sizeof pre);
        json_t *pv;
        size_t j;
        json_array_foreach(json_object_get(pick, "policies"), j, pv) {
            const char *pn = json_string_value(json_object_get(pv, "policy"));
            if (!starts_with(pn, pre)) continue;
            row->has_sim = 1;
            snprintf(row->sim_policy, sizeof row->sim_policy, "%s", pn);
            row->sim_retrains = jnum(pv, "retrains_mean");
            row->sim_bleu = jnum(pv, "bleu_mean");
            row->sim_bleu_std = jnum(pv, "bleu_std");
            row->sim_latency_ms = jnum(pv, "latency_ms_mean");
            row->sim_exact_match = jnum(pv, "exact_match_mean");
            row->sim_cost = jnum(pv, "cost_mean");
            /* simulate reports the episode's total reward; the table's is
             * per decision. */
            row->sim_reward = decisions > 0 ? jnum(pv, "reward_mean") / decisions : NAN;
            break;
        }
    }
    json_decref(root);
    return DP_OK;
}

/* Mean over seeds of the simulator's per-decision BLEU-1 and accuracy, per
 * pipeline, from `simulate --decisions`. */
static DpStatus sim_load_decisions(const ReportInputs *in, RpData *d, const char *scenario,
                                   DpError *err) {
    FILE *f = fopen(in->sim_decisions_csv, "r");
    if (!f)
        return dp_fail(err, DP_ERR_IO, "report: open %s: %s", in->sim_decisions_csv,
                       strerror(errno));
    char pre[REPORT_MAX_PIPELINES][REPORT_NAME_MAX];
    for (int p = 0; p < d->n_pipe; p++) sim_prefix_for(in, d->names[p], pre[p], sizeof pre[p]);
    /* Sums per (pipeline, decision index). */
    RpArr sb[REPORT_MAX_PIPELINES], sa[REPORT_MAX_PIPELINES], sn[REPORT_MAX_PIPELINES],
        st[REPORT_MAX_PIPELINES];
    memset(sb, 0, sizeof sb);
    memset(sa, 0, sizeof sa);
    memset(sn, 0, sizeof sn);
    memset(st, 0, sizeof st);
    char matched[REPORT_MAX_PIPELINES][REPORT_NAME_MAX];
    memset(matched, 0, sizeof matched);
    char *line = NULL, *fl[40];
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, c_sc = -1, c_pol = -1, c_t = -1, c_time = -1, c_b = -1, c_a = -1;
    DpStatus s = DP_OK;
    char first_scen[REPORT_NAME_MAX] = "";
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len) continue;
        int n = csv_split(line, fl, 40);
        if (c_pol < 0) {
            for (int i = 0; i < n; i++) {
                if (!strcmp(fl[i], "scenario")) c_sc = i;
                else if (!strcmp(fl[i], "policy")) c_pol = i;
                else if (!strcmp(fl[i], "t")) c_t = i;
                else if (!strcmp(fl[i], "time_s")) c_time = i;
                else if (!strcmp(fl[i], "bleu")) c_b = i;
                else if (!strcmp(fl[i], "accuracy")) c_a = i;
            }
            if (c_sc < 0 || c_pol < 0 || c_t < 0 || c_time < 0 || c_b < 0 || c_a < 0) {
                s = dp_fail(err, DP_ERR_PARSE,
                            "report: %s line %d: not a `simulate --decisions` CSV (needs "
                            "scenario,policy,t,time_s,bleu,accuracy)",
                            in->sim_decisions_csv, lineno);
                break;
            }
            continue;
        }
        int need = c_sc;
        int cols[] = {c_pol, c_t, c_time, c_b, c_a};
        for (int i = 0; i < 5; i++) need = cols[i] > need ? cols[i] : need;
        if (n <= need) {
            s = dp_fail(err, DP_ERR_PARSE, "report: %s line %d: %d fields", in->sim_decisions_csv,
                        lineno, n);
            break;
        }
        if (!first_scen[0]) snprintf(first_scen, sizeof first_scen, "%s", fl[c_sc]);
        const char *want = scenario && scenario[0] ? scenario : first_scen;
        if (strcmp(fl[c_sc], want)) continue;
        for (int p = 0; p < d->n_pipe; p++) {
            if (!starts_with(fl[c_pol], pre[p])) continue;
            /* One policy per pipeline: the first that matches. */
            if (!matched[p][0]) snprintf(matched[p], sizeof matched[p], "%s", fl[c_pol]);
            if (strcmp(matched[p], fl[c_pol])) continue;
            long k = strtol(fl[c_t], NULL, 10);
            if (k < 0 || k > 10000000) continue;
            while ((long)sn[p].n <= k)
                if (rp_arr_push(&sn[p], 0) || rp_arr_push(&sb[p], 0) || rp_arr_push(&sa[p], 0) ||
                    rp_arr_push(&st[p], 0)) {
                    s = dp_fail(err, DP_ERR_NOMEM, "report: out of memory");
                    goto done;
                }
            sn[p].v[k] += 1;
            sb[p].v[k] += strtod(fl[c_b], NULL);
            sa[p].v[k] += strtod(fl[c_a], NULL);
            st[p].v[k] = strtod(fl[c_time], NULL);
        }
    }
done:
    for (int p = 0; p < d->n_pipe && !s; p++)
        for (size_t k = 0; k < sn[p].n; k++) {
            if (!sn[p].v[k]) continue;
            if (rp_arr_push(&d->sim_t[p], st[p].v[k]) ||
                rp_arr_push(&d->sim_bleu[p], sb[p].v[k] / sn[p].v[k]) ||
                rp_arr_push(&d->sim_acc[p], sa[p].v[k] / sn[p].v[k])) {
                s = dp_fail(err, DP_ERR_NOMEM, "report: out of memory");
                break;
            }
        }
    for (int p = 0; p < REPORT_MAX_PIPELINES; p++) {
        rp_arr_free(&sb[p]);
        rp_arr_free(&sa[p]);
        rp_arr_free(&sn[p]);
        rp_arr_free(&st[p]);
    }
    free(line);
    fclose(f);
    return s;
}

// ---- the table ----

static void data_free(RpData *d) {
    if (!d) return;
    for (int i = 0; i < d->n_runs; i++) run_free(&d->runs[i]);
    free(d->runs);
    for (int p = 0; p < REPORT_MAX_PIPELINES; p++) {
        for (int q = 0; q < RQ_N; q++) free(d->mean_q[p][q]);
        free(d->mean_cum_cost[p]);
        rp_arr_free(&d->sim_t[p]);
        rp_arr_free(&d->sim_bleu[p]);
        rp_arr_free(&d->sim_acc[p]);
    }
    free(d);
}

void report_table_free(ReportTable *t) {
    if (!t) return;
    data_free(t->priv);
    free(t);
}

/* Mean (and sample std) across pipeline p's repeats of the run summary at
 * byte offset off, skipping runs without data (NaN when none has any). */
static void across(const RpData *d, int p, size_t off, double *mean, double *sd) {
    double tmp[256];
    size_t m = 0;
    for (int i = 0; i < d->n_runs && m < 256; i++) {
        double x = *(const double *)((const char *)&d->runs[i] + off);
        if (d->runs[i].pipeline == p && !isnan(x)) tmp[m++] = x;
    }
    *mean = m ? dp_mean(tmp, m) : NAN;
    if (sd) *sd = m ? dp_std(tmp, m) : NAN;
}

DpStatus report_compute(const ReportInputs *in, ReportTable **out, DpError *err) {
    *out = NULL;
    if (!in || in->n_runs <= 0 || !in->runs)
        return dp_fail(err, DP_ERR_INVAL, "report: no runs given");
    if (!(in->interval_s > 0) || !(in->scale > 0))
        return dp_fail(err, DP_ERR_INVAL, "report: interval_s and scale must be > 0");
    ReportTable *t = dp_calloc(1, sizeof *t);
    RpData *d = dp_calloc(1, sizeof *d);
    DpStatus s = DP_OK;
    if (!t || !d) {
        free(t);
        free(d);
        return dp_fail(err, DP_ERR_NOMEM, "report: out of memory");
    }
    t->priv = d;
    d->interval_s = in->interval_s;
    d->runs = dp_calloc((size_t)in->n_runs, sizeof *d->runs);
    if (!d->runs) {
        s = dp_fail(err, DP_ERR_NOMEM, "report: out of memory");
        goto fail;
    }
    int reps[REPORT_MAX_PIPELINES] = {0};
    for (int i = 0; i < in->n_runs; i++) {
        const ReportRun *run = &in->runs[i];
        if (!run->pipeline || !run->pipeline[0] || !run->store_path) {
            s = dp_fail(err, DP_ERR_INVAL, "report: run %d lacks a pipeline name or store", i);
            goto fail;
        }
        int p = 0;
        while (p < d->n_pipe && strcmp(d->names[p], run->pipeline)) p++;
        if (p == d->n_pipe) {
            if (p == REPORT_MAX_PIPELINES) {
                s = dp_fail(err, DP_ERR_INVAL, "report: more than %d pipelines",
                            REPORT_MAX_PIPELINES);
                goto fail;
            }
            snprintf(d->names[p], REPORT_NAME_MAX, "%s", run->pipeline);
            d->n_pipe++;
        }
        RpRun *R = &d->runs[d->n_runs++];
        R->run = run;
        R->pipeline = p;
        R->repeat = reps[p]++;
        if ((s = run_build(R, in, err))) goto fail;
        if (R->n_int > d->n_int) d->n_int = R->n_int;
    }

    /* Per-pipeline rows and mean series. */
    t->n_rows = d->n_pipe;
    for (int p = 0; p < d->n_pipe; p++) {
        ReportRow *row = &t->rows[p];
        snprintf(row->pipeline, sizeof row->pipeline, "%s", d->names[p]);
        double v[7][256];
        int n = 0;
        row->bleu_min = row->bleu_max = NAN;
        const RpRun *only = NULL;
        for (int i = 0; i < d->n_runs; i++) {
            const RpRun *R = &d->runs[i];
            if (R->pipeline != p || n >= 256) continue;
            only = R;
            v[0][n] = R->n_retrains;
            v[1][n] = R->bleu;
            v[2][n] = R->lat;
            v[3][n] = R->n_redeploys;
            v[4][n] = R->total_cost;
            v[5][n] = R->requests;
            n++;
            if (!isnan(R->bleu_min)) {
                row->bleu_min = isnan(row->bleu_min) ? R->bleu_min : fmin(row->bleu_min, R->bleu_min);
                row->bleu_max = isnan(row->bleu_max) ? R->bleu_max : fmax(row->bleu_max, R->bleu_max);
            }
        }
        row->n_repeats = n;
        row->retrains_mean = dp_mean(v[0], (size_t)n);
        row->retrains_std = dp_std(v[0], (size_t)n);
        row->redeploys_mean = dp_mean(v[3], (size_t)n);
        row->cost_mean = dp_mean(v[4], (size_t)n);
        row->requests_mean = dp_mean(v[5], (size_t)n);
        across(d, p, offsetof(RpRun, bleu), &row->bleu_mean, &row->bleu_std);
        across(d, p, offsetof(RpRun, lat), &row->latency_ms_mean, &row->latency_ms_std);
        across(d, p, offsetof(RpRun, acc), &row->exact_match_mean, NULL);
        across(d, p, offsetof(RpRun, f1), &row->f1_mean, NULL);
        across(d, p, offsetof(RpRun, reward), &row->reward_mean, NULL);
        across(d, p, offsetof(RpRun, p95), &row->latency_p95_ms, NULL);
        if (n == 1 && only) {
            row->std_within_run = 1;
            row->retrains_std = NAN; /* a count has no spread within one run */
            row->bleu_std = only->bleu_sd;
            row->latency_ms_std = only->lat_sd;
        }

        for (int q = 0; q < RQ_N; q++) {
            d->mean_q[p][q] = dp_malloc(sizeof(double) * (size_t)d->n_int);
            if (!d->mean_q[p][q]) goto nomem;
            for (int k = 0; k < d->n_int; k++) {
                double sum = 0;
                int c = 0;
                for (int i = 0; i < d->n_runs; i++) {
                    const RpRun *R = &d->runs[i];
                    if (R->pipeline == p && k < R->n_int && !isnan(R->q[q][k])) {
                        sum += R->q[q][k];
                        c++;
                    }
                }
                d->mean_q[p][q][k] = c ? sum / c : NAN;
            }
        }
        d->mean_cum_cost[p] = dp_calloc((size_t)d->n_int, sizeof(double));
        if (!d->mean_cum_cost[p]) goto nomem;
        for (int i = 0; i < d->n_runs; i++) {
            const RpRun *R = &d->runs[i];
            if (R->pipeline != p) continue;
            double c = 0;
            for (int k = 0; k < d->n_int; k++) {
                if (k < R->n_int) c += R->cost_at[k];
                d->mean_cum_cost[p][k] += c / n;
            }
        }
    }
    if (in->sim_prediction_json && (s = sim_load_prediction(in, t, err))) goto fail;
    if (in->sim_decisions_csv &&
        (s = sim_load_decisions(in, d, t->sim_scenario[0] ? t->sim_scenario : in->scenario, err)))
        goto fail;
    *out = t;
    return DP_OK;
nomem:
    s = dp_fail(err, DP_ERR_NOMEM, "report: out of memory");
fail:
    report_table_free(t);
    return s;
}
