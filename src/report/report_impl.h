/* report internal header: the per-run and per-pipeline series that
 * report.c computes and html.c draws. */
#ifndef DRIFTPILOT_REPORT_IMPL_H
#define DRIFTPILOT_REPORT_IMPL_H

#include "report.h"

/* A growable array of doubles. */
typedef struct {
    double *v;
    size_t n, cap;
} RpArr;
DpStatus rp_arr_push(RpArr *a, double x);
void rp_arr_free(RpArr *a);

/* Per-interval quantities (index into RpRun.q). */
enum { RQ_BLEU, RQ_ACC, RQ_F1, RQ_LAT, RQ_P50, RQ_P95, RQ_P99, RQ_RATE, RQ_N };

typedef struct {
    int pipeline;            /* index into RpData.names */
    int repeat;              /* 0-based among the pipeline's runs */
    const ReportRun *run;    /* borrowed from the inputs */
    double t0, scale;
    int n_int;               /* decision intervals covered */
    double *q[RQ_N];         /* (n_int) per-interval value, NaN when none */
    double *cost_at;         /* (n_int) cost spent in the interval */
    RpArr retrain_t, redeploy_t, rollback_t; /* scenario seconds */
    int n_retrains, n_redeploys;
    double total_cost;
    double requests;         /* rows of the requests CSV (0 without) */
    /* run summaries (NaN when no data) */
    double bleu, bleu_sd, bleu_min, bleu_max, acc, f1, lat, lat_sd, p95, reward;
} RpRun;

typedef struct {
    int n_runs;
    RpRun *runs;
    int n_pipe;
    char names[REPORT_MAX_PIPELINES][REPORT_NAME_MAX];
    int n_int;               /* max over runs */
    double interval_s;
    /* per pipeline, (n_int): mean over repeats; NaN when none */
    double *mean_q[REPORT_MAX_PIPELINES][RQ_N];
    double *mean_cum_cost[REPORT_MAX_PIPELINES];
    /* the simulator's per-decision prediction (mean over seeds), per pipeline */
    RpArr sim_t[REPORT_MAX_PIPELINES], sim_bleu[REPORT_MAX_PIPELINES],
        sim_acc[REPORT_MAX_PIPELINES];
} RpData;

/* Appends s with &<>"' escaped. */
DpStatus rp_html_escape(DpBuf *b, const char *s);

#endif
