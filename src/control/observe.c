/* Reading the state: scrape every target's /metrics directly, or ask a
 * Prometheus server the same questions in PromQL.  Both paths fill the same
 * CtlTarget fields with the same definitions (control.h), so the policy sees
 * one SimObservation whichever source is configured.  Raw values are also
 * kept in the store as metric samples. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "control_impl.h"

#define PREDICT_ROUTE "/predict"

double control_quality_(const Control *c, const SimObservation *o) {
    double wb = c->cc.deploy.reward.bleu_weight, wa = c->cc.deploy.reward.accuracy_weight;
    if (!(wb + wa > 0)) return o->accuracy;
    return (wb * o->bleu + wa * o->accuracy) / (wb + wa);
}

static double target_cpus(const DeployTarget *t) {
    if (t->cpus > 0) return t->cpus;
    if (t->cpu_quota > 0) return t->cpu_quota;
    return 1;
}

static double target_mem_bytes(const Control *c, const DeployTarget *t) {
    if (t->memory_mb > 0) return t->memory_mb * 1048576.0;
    return c->memtotal_bytes > 0 ? c->memtotal_bytes : 1;
}

static double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

/* A service whose labelled window is empty has not been judged yet: its
 * quality is unknown (NaN), whichever way it was read, never 0. */
static void mark_unjudged(CtlTarget *t) {
    if (isfinite(t->fb_window) && t->fb_window <= 0) t->accuracy = t->bleu = t->f1 = NAN;
}

/* Derives the observation units from the raw values and the rates. */
static void derive(Control *c, int k, double cpu_rate, double req_rate, double lat_s) {
    CtlTarget *t = &c->t[k];
    const DeployTarget *dt = &c->cc.deploy.targets[k];
    t->cpu = clamp01(cpu_rate / target_cpus(dt));
    t->memory = clamp01(t->rss_bytes / target_mem_bytes(c, dt));
    t->request_rate = req_rate >= 0 ? req_rate : 0;
    if (isfinite(lat_s) && lat_s >= 0) t->latency_ms = lat_s * 1000.0;
}

static void record_samples(Control *c, int k, double ts) {
    if (!c->store) return;
    CtlTarget *t = &c->t[k];
    const char *tn = c->cc.deploy.targets[k].name;
    struct { const char *name; double v; } s[] = {
        {"process_cpu_seconds_total", t->cpu_seconds}, {"process_resident_memory_bytes", t->rss_bytes},
        {"request_rate", t->request_rate},             {"latency_ms", t->latency_ms},
        {"llm_accuracy", t->accuracy},                 {"llm_bleu", t->bleu},
        {"llm_f1", t->f1},                             {"llm_queue_depth", t->queue},
        {"cpu", t->cpu},                               {"memory", t->memory},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        StoreMetricSample m = {.ts = ts, .run_id = c->cc.run_id, .target = tn, .name = s[i].name,
                               .labels = "", .value = s[i].v};
        DpError e2 = {0};
        if (store_add_metric_sample(c->store, &m, &e2)) dp_warn("control: store: %s", e2.msg);
    }
}

// ---- direct scraping ----

static const MetricSample *find1(const MetricsParsed *p, const char *name) {
    return metrics_parsed_find(p, name, NULL, 0);
}

/* Sum of every sample called name whose route label is /predict. */
static double sum_route(const MetricsParsed *p, const char *name) {
    double s = 0;
    for (size_t i = 0; i < p->n_samples; i++) {
        const MetricSample *m = &p->samples[i];
        if (strcmp(m->name, name)) continue;
        const char *r = metric_sample_label(m, "route");
        if (r && !strcmp(r, PREDICT_ROUTE)) s += m->value;
    }
    return s;
}

static double counter_delta(double now, double prev) {
    return now >= prev ? now - prev : now; /* a reset: the counter restarted from 0 */
}

static void read_direct(Control *c, int k, double wall) {
    CtlTarget *t = &c->t[k];
    const DeployTarget *dt = &c->cc.deploy.targets[k];
    char url[DEPLOY_STR_MAX + 16];
    snprintf(url, sizeof url, "%s/metrics", dt->service_url);
    char *body = NULL;
    size_t len = 0;
    int status = 0;
    DpError e = {0};
    MetricsParsed p = {0};
    t->up = 0;
    if (metrics_http_get(url, c->cc.http_timeout_s, &body, &len, &status, &e)) {
        snprintf(t->last_error, sizeof t->last_error, "scrape %s: %s", url, e.msg);
        goto out;
    }
    if (status != 200) {
        snprintf(t->last_error, sizeof t->last_error, "scrape %s: HTTP %d", url, status);
        goto out;
    }
    if (metrics_parse(body, len, &p, &e)) {
        snprintf(t->last_error, sizeof t->last_error, "scrape %s: %s", url, e.msg);
        goto out;
    }
    const MetricSample *cpu = find1(&p, "process_cpu_seconds_total");
    const MetricSample *rss = find1(&p, "process_resident_memory_bytes");
    if (!cpu || !rss) {
        snprintf(t->last_error, sizeof t->last_error, "scrape %s: no process_* metrics", url);
        goto out;
    }
    double req = sum_route(&p, "http_requests_total");
    double ls = sum_route(&p, "http_request_duration_seconds_sum");
    double lc = sum_route(&p, "http_request_duration_seconds_count");
    double cpu_rate = 0, req_rate = 0, lat = NAN;
    if (t->has_prev && wall > t->prev_wall) {
        double dt_s = wall - t->prev_wall;
        cpu_rate = counter_delta(cpu->value, t->cpu_seconds) / dt_s;
        req_rate = counter_delta(req, t->req_count) / dt_s;
        double dc = counter_delta(lc, t->lat_count);
        if (dc > 0) lat = counter_delta(ls, t->lat_sum) / dc;
    }
    t->cpu_seconds = cpu->value;
    t->rss_bytes = rss->value;
    t->req_count = req;
    t->lat_sum = ls;
    t->lat_count = lc;
    const MetricSample *m;
    t->accuracy = (m = find1(&p, "llm_accuracy")) ? m->value : 0;
    t->bleu = (m = find1(&p, "llm_bleu")) ? m->value : 0;
    t->f1 = (m = find1(&p, "llm_f1")) ? m->value : 0;
    t->queue = (m = find1(&p, "llm_queue_depth")) ? m->value : 0;
    t->fb_total = (m = find1(&p, "llm_feedback_total")) ? m->value : NAN;
    t->fb_window = (m = find1(&p, "llm_feedback_window_size")) ? m->value : NAN;
    mark_unjudged(t);
    derive(c, k, cpu_rate, req_rate, lat);
    t->has_prev = 1;
    t->prev_wall = wall;
    t->up = 1;
    t->last_ok_wall = wall;
    t->last_error[0] = 0;
out:
    metrics_parsed_free(&p);
    free(body);
}

// ---- PromQL ----

DpStatus control_promql_expr(const char *feature, const char *target, double window_s, char *out,
                             size_t cap, DpError *err) {
    char sel[160], rsel[200];
    for (const char *p = target; *p; p++)
        if (*p == '"' || *p == '\\') return dp_fail(err, DP_ERR_INVAL, "bad target name '%s'", target);
    snprintf(sel, sizeof sel, "dp_target=\"%s\"", target);
    snprintf(rsel, sizeof rsel, "dp_target=\"%s\",route=\"%s\"", target, PREDICT_ROUTE);
    long ms = (long)(window_s * 1000 + 0.5);
    if (ms < 1) ms = 1;
    int n;
    if (!strcmp(feature, "cpu_rate"))
        n = snprintf(out, cap, "sum(rate(process_cpu_seconds_total{%s}[%ldms]))", sel, ms);
    else if (!strcmp(feature, "memory_bytes"))
        n = snprintf(out, cap, "max(process_resident_memory_bytes{%s})", sel);
    else if (!strcmp(feature, "sample_time"))
        n = snprintf(out, cap, "max(timestamp(process_resident_memory_bytes{%s}))", sel);
    else if (!strcmp(feature, "request_rate"))
        n = snprintf(out, cap, "sum(rate(http_requests_total{%s}[%ldms]))", rsel, ms);
    else if (!strcmp(feature, "latency_s"))
        n = snprintf(out, cap,
                     "sum(rate(http_request_duration_seconds_sum{%s}[%ldms])) / "
                     "sum(rate(http_request_duration_seconds_count{%s}[%ldms]))",
                     rsel, ms, rsel, ms);
    else if (!strcmp(feature, "accuracy")) n = snprintf(out, cap, "max(llm_accuracy{%s})", sel);
    else if (!strcmp(feature, "bleu")) n = snprintf(out, cap, "max(llm_bleu{%s})", sel);
    else if (!strcmp(feature, "f1")) n = snprintf(out, cap, "max(llm_f1{%s})", sel);
    else if (!strcmp(feature, "queue")) n = snprintf(out, cap, "max(llm_queue_depth{%s})", sel);
    else if (!strcmp(feature, "up")) n = snprintf(out, cap, "max(up{%s})", sel);
    else if (!strcmp(feature, "feedback_total"))
        n = snprintf(out, cap, "max(llm_feedback_total{%s})", sel);
    else if (!strcmp(feature, "feedback_window"))
        n = snprintf(out, cap, "max(llm_feedback_window_size{%s})", sel);
    else return dp_fail(err, DP_ERR_INVAL, "unknown state feature '%s'", feature);
    if (n < 0 || (size_t)n >= cap) return dp_fail(err, DP_ERR_INVAL, "query too long");
    return DP_OK;
}

/* Value of a scalar-valued instant query: NaN when the vector is empty. */
static DpStatus prom_value(const char *url, const char *feature, const char *target, double win,
                           double *v, DpError *err) {
    char q[1024];
    DpStatus st = control_promql_expr(feature, target, win, q, sizeof q, err);
    if (st) return st;
    PromqlResult r = {0};
    st = promql_query(url, q, 0, &r, err);
    *v = NAN;
    if (!st && r.n_series > 0 && r.series[0].n_points > 0) *v = r.series[0].points[0].v;
    promql_result_free(&r);
    return st;
}

static void read_prometheus(Control *c, int k) {
    CtlTarget *t = &c->t[k];
    char name[DEPLOY_NAME_MAX], url[DEPLOY_STR_MAX];
    snprintf(name, sizeof name, "%s", c->cc.deploy.targets[k].name);
    snprintf(url, sizeof url, "%s", c->cc.deploy.metrics.prometheus_url);
    double win = c->cc.rate_window_s;
    double up, ts, cpu, rss, req, lat, acc, bleu, f1, queue, fbt, fbw;
    DpError e = {0};
    t->up = 0;
    if (prom_value(url, "up", name, win, &up, &e) ||
        prom_value(url, "sample_time", name, win, &ts, &e) ||
        prom_value(url, "memory_bytes", name, win, &rss, &e) ||
        prom_value(url, "cpu_rate", name, win, &cpu, &e) ||
        prom_value(url, "request_rate", name, win, &req, &e) ||
        prom_value(url, "latency_s", name, win, &lat, &e) ||
        prom_value(url, "accuracy", name, win, &acc, &e) ||
        prom_value(url, "bleu", name, win, &bleu, &e) || prom_value(url, "f1", name, win, &f1, &e) ||
        prom_value(url, "queue", name, win, &queue, &e) ||
        prom_value(url, "feedback_total", name, win, &fbt, &e) ||
        prom_value(url, "feedback_window", name, win, &fbw, &e)) {
        snprintf(t->last_error, sizeof t->last_error, "prometheus %s: %s", url, e.msg);
        return;
    }
    if (!(up == 1) || !isfinite(ts) || !isfinite(rss)) {
        snprintf(t->last_error, sizeof t->last_error,
                 "prometheus %s: target %s is not up (up=%g) or has no fresh samples", url, name, up);
        return;
    }
    t->rss_bytes = rss;
    t->cpu_seconds = NAN;
    t->accuracy = isfinite(acc) ? acc : 0;
    t->bleu = isfinite(bleu) ? bleu : 0;
    t->f1 = isfinite(f1) ? f1 : 0;
    t->queue = isfinite(queue) ? queue : 0;
    t->fb_total = fbt;
    t->fb_window = fbw;
    mark_unjudged(t);
    derive(c, k, isfinite(cpu) ? cpu : 0, isfinite(req) ? req : 0, lat);
    t->up = 1;
    t->last_ok_wall = ts; /* the sample's own time, so a stalled scraper reads as stale */
    t->last_error[0] = 0;
}

DpStatus control_read_targets_(Control *c, DpError *err) {
    int prom = !strcmp(c->cc.deploy.metrics.source, "prometheus");
    double wall = dp_time_wall();
    for (int k = 0; k < c->n; k++) {
        if (prom) read_prometheus(c, k);
        else read_direct(c, k, wall);
        if (c->t[k].up) record_samples(c, k, wall);
        else dp_debug("control: %s", c->t[k].last_error);
    }
    (void)err;
    return DP_OK;
}

void control_note_accuracy_(Control *c, SimObservation *o) {
    pthread_mutex_lock(&c->mu);
    int epoch = c->model_epoch;
    pthread_mutex_unlock(&c->mu);
    if (epoch != c->acc_epoch) {
        c->acc_epoch = epoch;
        sim_acc_window_reset(&c->acc);
        c->acc_read_wall = -1;
    }
    const CtlTarget *t = &c->t[o->serving_target];
    if (isfinite(o->accuracy) && t->last_ok_wall > 0 && t->last_ok_wall != c->acc_read_wall) {
        sim_acc_window_push(&c->acc, o->accuracy);
        c->acc_read_wall = t->last_ok_wall;
    }
    o->accuracy_mean = sim_acc_window_mean(&c->acc, o->accuracy);
}

void control_fill_obs_(Control *c, double now_s, SimObservation *o) {
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&c->mu);
    int s = c->serving;
    o->redeploy_count = c->n_redeploys;
    o->since_retrain_s = now_s - (c->last_retrain_s >= 0 ? c->last_retrain_s : 0);
    o->job_running = c->job_running;
    pthread_mutex_unlock(&c->mu);
    const CtlTarget *t = &c->t[s];
    o->time_s = now_s;
    o->cpu = t->cpu;
    o->memory = t->memory;
    o->request_rate = t->request_rate;
    o->latency_ms = t->latency_ms;
    o->accuracy = t->accuracy;
    o->bleu = t->bleu;
    o->f1 = t->f1;
    o->queue = t->queue;
    o->serving_target = s;
    o->accuracy_mean = sim_acc_window_mean(&c->acc, o->accuracy);
    o->n_targets = c->n;
    for (int k = 0; k < c->n && k < SIM_MAX_TARGETS; k++) {
        o->price[k] = c->sim.targets[k].price;
        o->up[k] = c->t[k].up;
    }
}
