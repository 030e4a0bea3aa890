/*
 * The run summary as text for people and as JSON for scripts (the same
 * numbers in both; JSON keys are the struct's field names).
 */
#include "loadgen.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void print_latency(FILE *f, const char *label, const LoadgenLatency *l) {
    if (l->n == 0) {
        fprintf(f, "%s: no ok requests\n", label);
        return;
    }
    fprintf(f, "%s: p50 %.2f  p95 %.2f  p99 %.2f  max %.2f  mean %.2f ms (n=%llu)\n", label, l->p50,
            l->p95, l->p99, l->max, l->mean, (unsigned long long)l->n);
}

static void print_kinds(FILE *f, const uint64_t *by_kind) {
    int any = 0;
    for (int k = 1; k < LOADGEN_N_KINDS; k++) {
        if (!by_kind[k]) continue;
        fprintf(f, "%s%s %llu", any ? ", " : "", loadgen_error_kind_name((LoadgenErrorKind)k),
                (unsigned long long)by_kind[k]);
        any = 1;
    }
    if (!any) fprintf(f, "none");
}

void loadgen_summary_print(const LoadgenSummary *s, FILE *f) {
    fprintf(f, "loadgen: %llu requests in %.2f s: intended %.1f/s, achieved %.1f/s ok%s\n",
            (unsigned long long)s->arrivals, s->window_s, s->intended_rate, s->achieved_rate,
            s->stopped ? " (stopped early)" : "");
    fprintf(f, "outcomes: %llu ok, %llu errors (", (unsigned long long)s->ok,
            (unsigned long long)s->errors);
    print_kinds(f, s->by_kind);
    fprintf(f, ")");
    if (s->cancelled) fprintf(f, ", %llu cancelled unsent", (unsigned long long)s->cancelled);
    fprintf(f, "\n");
    print_latency(f, "latency from intended send", &s->latency);
    print_latency(f, "service time from actual send", &s->service);
    fprintf(f, "client: send lag p99 %.2f ms, max %.2f ms; %d workers at peak; %llu waited for a "
               "worker; cpu %.2f s (%.1f%% of one core)\n",
            s->send_lag_p99_ms, s->send_lag_max_ms, s->workers_peak,
            (unsigned long long)s->delayed, s->cpu_s, s->cpu_percent);
    fprintf(f, "scenario time %.1f s -> %.1f s; questions:", s->scenario_start_s, s->scenario_end_s);
    for (int k = 0; k < QA_N_KINDS; k++)
        if (s->by_question_kind[k])
            fprintf(f, " %s %llu", qa_kind_name((QaKind)k),
                    (unsigned long long)s->by_question_kind[k]);
    fprintf(f, "; exact match %.3f\n", s->exact_match);
    if (s->feedback_scheduled || s->feedback_sent)
        fprintf(f, "feedback: %llu scheduled, %llu sent (%llu ok, %llu failed), %llu dropped unsent\n",
                (unsigned long long)s->feedback_scheduled, (unsigned long long)s->feedback_sent,
                (unsigned long long)s->feedback_ok, (unsigned long long)s->feedback_failed,
                (unsigned long long)s->feedback_dropped);
    for (int t = 0; t < s->n_targets; t++) {
        const LoadgenTargetSummary *ts = &s->targets[t];
        fprintf(f, "target %s (weight %g): %llu requests, %llu ok, %.1f/s; errors: ", ts->url,
                ts->weight, (unsigned long long)ts->requests,
                (unsigned long long)ts->by_kind[LOADGEN_OK], ts->achieved_rate);
        print_kinds(f, ts->by_kind);
        fprintf(f, "\n");
        if (ts->latency.n)
            fprintf(f, "  latency p50 %.2f  p95 %.2f  p99 %.2f  max %.2f ms\n", ts->latency.p50,
                    ts->latency.p95, ts->latency.p99, ts->latency.max);
    }
}

static json_t *latency_json(const LoadgenLatency *l) {
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "n", (json_int_t)l->n, "mean", l->mean,
                     "p50", l->p50, "p95", l->p95, "p99", l->p99, "max", l->max);
}

static json_t *kinds_json(const uint64_t *by_kind) {
    json_t *o = json_object();
    for (int k = 0; o && k < LOADGEN_N_KINDS; k++)
        json_object_set_new(o, loadgen_error_kind_name((LoadgenErrorKind)k),
                            json_integer((json_int_t)by_kind[k]));
    return o;
}

DpStatus loadgen_summary_json(const LoadgenSummary *s, DpBuf *out) {
    json_t *o = json_object();
    json_t *qk = json_object();
    json_t *targets = json_array();
    DpStatus st = DP_ERR_NOMEM;
    char *text = NULL;
    if (!o || !qk || !targets) goto out;
    for (int k = 0; k < QA_N_KINDS; k++)
        json_object_set_new(qk, qa_kind_name((QaKind)k),
                            json_integer((json_int_t)s->by_question_kind[k]));
    for (int t = 0; t < s->n_targets; t++) {
        const LoadgenTargetSummary *ts = &s->targets[t];
        json_array_append_new(
            targets, json_pack("{s:s, s:f, s:I, s:o, s:o, s:f}", "url", ts->url, "weight",
                               ts->weight, "requests", (json_int_t)ts->requests, "by_kind",
                               kinds_json(ts->by_kind), "latency_ms", latency_json(&ts->latency),
                               "achieved_rate", ts->achieved_rate));
    }
    json_object_set_new(o, "window_s", json_real(s->window_s));
    json_object_set_new(o, "wall_s", json_real(s->wall_s));
    json_object_set_new(o, "start_unix", json_real(s->start_unix));
    json_object_set_new(o, "scenario_start_s", json_real(s->scenario_start_s));
    json_object_set_new(o, "scenario_end_s", json_real(s->scenario_end_s));
    json_object_set_new(o, "arrivals", json_integer((json_int_t)s->arrivals));
    json_object_set_new(o, "completed", json_integer((json_int_t)s->completed));
    json_object_set_new(o, "ok", json_integer((json_int_t)s->ok));
    json_object_set_new(o, "errors", json_integer((json_int_t)s->errors));
    json_object_set_new(o, "cancelled", json_integer((json_int_t)s->cancelled));
    json_object_set_new(o, "by_kind", kinds_json(s->by_kind));
    json_object_set_new(o, "intended_rate", json_real(s->intended_rate));
    json_object_set_new(o, "achieved_rate", json_real(s->achieved_rate));
    json_object_set_new(o, "latency_ms", latency_json(&s->latency));
    json_object_set_new(o, "service_ms", latency_json(&s->service));
    json_object_set_new(o, "send_lag_p99_ms", json_real(s->send_lag_p99_ms));
    json_object_set_new(o, "send_lag_max_ms", json_real(s->send_lag_max_ms));
    json_object_set_new(o, "workers_peak", json_integer(s->workers_peak));
    json_object_set_new(o, "delayed", json_integer((json_int_t)s->delayed));
    json_object_set_new(o, "by_question_kind", qk);
    qk = NULL;
    json_object_set_new(o, "exact_match", json_real(s->exact_match));
    json_object_set_new(o, "feedback_scheduled", json_integer((json_int_t)s->feedback_scheduled));
    json_object_set_new(o, "feedback_sent", json_integer((json_int_t)s->feedback_sent));
    json_object_set_new(o, "feedback_ok", json_integer((json_int_t)s->feedback_ok));
    json_object_set_new(o, "feedback_failed", json_integer((json_int_t)s->feedback_failed));
    json_object_set_new(o, "feedback_dropped", json_integer((json_int_t)s->feedback_dropped));
    json_object_set_new(o, "cpu_s", json_real(s->cpu_s));
    json_object_set_new(o, "cpu_percent", json_real(s->cpu_percent));
    json_object_set_new(o, "stopped", json_boolean(s->stopped));
    json_object_set_new(o, "targets", targets);
    targets = NULL;
    text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    if (text && dp_buf_printf(out, "%s\n", text) == DP_OK) st = DP_OK;
out:
    free(text);
    json_decref(targets);
    json_decref(qk);
    json_decref(o);
    return st;
}
