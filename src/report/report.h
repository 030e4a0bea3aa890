/*
 * report: the experiment's results directory -- the study's table (Markdown
 * and JSON), CSVs of every decision, job and request summary, and one
 * self-contained HTML page with charts drawn as inline SVG (no script, no
 * stylesheet or font from anywhere else: it opens offline).
 *
 * Input is a list of runs, each one repeat of one pipeline ("adaptive" for
 * PPO, "static-15m", "threshold", "drift", or any name): a store file (the
 * controller's SQLite history, store.h), the run id inside it, and optionally
 * the load generator's per-request CSV of that run (loadgen.h).  What is read:
 *
 *   quality   metric samples llm_bleu / llm_accuracy / llm_f1 of the run
 *             (every target, averaged per decision interval); when the run
 *             has none, the state vectors' "bleu" / "accuracy" / "f1"
 *   latency   the requests CSV (ok rows: mean, p50/p95/p99 per interval);
 *             else samples latency_ms (+ latency_p50_ms, _p95_ms, _p99_ms);
 *             else the state vectors' "latency_s"
 *   rate      the requests CSV (arrivals per wall second); else samples
 *             request_rate (per target: summed over the targets that
 *             reported in the interval); else the states' "request_rate_krps"
 *   retrains  jobs of kind "retrain" (any status); when the run has no jobs,
 *             executed decisions whose action contains "retrain"
 *   redeploys deployments (kind deploy; rollbacks drawn apart)
 *   cost      cost rows (cumulative), else the jobs' cost
 *   reward    per decision interval with quality data, sim_reward() (sim.h)
 *             of that interval's BLEU-1, accuracy, F1 and latency (one that
 *             is missing counts as 0), minus the run's whole cost spread
 *             over those intervals
 *
 * Store times are unix seconds; scenario time is
 * (ts - t0) * scale (t0: the run's first record unless given; scale:
 * scenario seconds per wall second).  The requests CSV's scenario_s column
 * is used as it is, so a caller with both (the experiment runner) should
 * pass t0 = the unix time of scenario 0 (LoadgenSummary.start_unix when the
 * load generator starts at scenario 0) to put both on one axis.
 *
 * The table, per pipeline over its repeats: retrains mean ± std, BLEU-1 mean
 * ± std, BLEU-1 range (min-max of the per-interval means over all repeats),
 * latency mean ± std (ms), exact match, F1, total cost and mean reward
 * (means over repeats).  The ± is the sample std (n-1) ACROSS REPEATS of
 * each repeat's mean; with a single repeat it is the std across that run's
 * decision intervals instead (row flag std_within_run, marked in the
 * Markdown).  The simulator's prediction for the same scenario (the JSON of
 * `driftpilot simulate --json`, and its per-decision CSV for dashed lines)
 * is shown beside each pipeline with the live-minus-sim difference.
 *
 * Ownership: ReportInputs borrows everything it points to.  ReportTable
 * comes from report_compute and is freed with report_table_free (NULL-safe).
 * Thread safety: no global state; calls may run concurrently.
 *
 *     ReportRun runs[] = {
 *         {.pipeline = "adaptive", .store_path = "a.db", .run_id = "ppo-1"},
 *         {.pipeline = "static-15m", .store_path = "s.db", .run_id = "static-1"},
 *     };
 *     ReportInputs in;
 *     report_inputs_default(&in);
 *     in.runs = runs; in.n_runs = 2; in.scale = 60;
 *     if (report_write("results", &in, &err) != DP_OK) ...;
 */
#ifndef DRIFTPILOT_REPORT_H
#define DRIFTPILOT_REPORT_H

#include "core.h"
#include "sim.h"

#define REPORT_NAME_MAX 64
#define REPORT_MAX_PIPELINES 16

typedef struct {
    const char *pipeline;     /* name shown in the table; runs with the same name are repeats */
    const char *store_path;   /* the controller's store */
    const char *run_id;       /* NULL: every row of the store */
    const char *requests_csv; /* the load generator's per-request CSV, or NULL */
    double t0;                /* unix time of scenario 0 (0: the run's first record) */
    double scale;             /* scenario s per wall s (0: the inputs' scale) */
} ReportRun;

typedef struct {
    const char *title;               /* page and table title (NULL: "driftpilot experiment") */
    const char *scenario;            /* scenario name, shown and used to pick the sim's (NULL) */
    const ReportRun *runs;
    int n_runs;
    double scale;                    /* default scenario s per wall s (1) */
    double interval_s;               /* decision interval, scenario s (60) */
    SimRewardConfig reward;          /* for the reward column (sim_reward_default) */
    const char *sim_prediction_json; /* `driftpilot simulate --json` output, or NULL */
    const char *sim_decisions_csv;   /* `driftpilot simulate --decisions` output, or NULL */
    const char *sim_source;          /* which simulator config made the prediction, or NULL */
    /* "pipeline=policy-prefix,..." to match pipelines with the simulator's
     * policies; NULL: adaptive=ppo, static-15m=static-15m, threshold=threshold,
     * drift=page-hinkley, and otherwise the pipeline's own name as a prefix. */
    const char *sim_policy_map;
} ReportInputs;

void report_inputs_default(ReportInputs *in);

/* One row of the table: one pipeline over its repeats.  NaN where there was
 * no data (e.g. no quality samples). */
typedef struct {
    char pipeline[REPORT_NAME_MAX];
    int n_repeats;
    int std_within_run;              /* 1: one repeat, ± is across its intervals */
    double retrains_mean, retrains_std;
    double redeploys_mean;
    double bleu_mean, bleu_std, bleu_min, bleu_max;
    double latency_ms_mean, latency_ms_std;
    double latency_p95_ms;           /* mean over repeats of each run's p95 (NaN: no CSV/samples) */
    double exact_match_mean, f1_mean;
    double cost_mean;                /* total cost per run, mean over repeats */
    double reward_mean;              /* mean reward per decision interval, mean over repeats */
    double requests_mean;            /* requests per run (0 without a CSV) */
    /* the simulator's prediction (has_sim 0: none matched) */
    int has_sim;
    char sim_policy[REPORT_NAME_MAX];
    double sim_retrains, sim_bleu, sim_bleu_std, sim_latency_ms, sim_exact_match, sim_cost,
        sim_reward;
} ReportRow;

typedef struct {
    int n_rows;
    ReportRow rows[REPORT_MAX_PIPELINES];
    char sim_scenario[REPORT_NAME_MAX]; /* the simulator scenario used ("" none) */
    void *priv;                      /* time series for the charts (report.c) */
} ReportTable;

/* Reads every run and computes the table and the series.  Errors: a store
 * that does not open, an unreadable or malformed CSV/JSON (naming file and
 * line), more than REPORT_MAX_PIPELINES pipelines, no runs (DP_ERR_INVAL).
 * *out NULL on failure. */
DpStatus report_compute(const ReportInputs *in, ReportTable **out, DpError *err);
void report_table_free(ReportTable *t);

/* The Markdown table (appended to out). */
DpStatus report_table_markdown(const ReportTable *t, const ReportInputs *in, DpBuf *out);

/* Writes the results directory (created if absent; each file replaced
 * atomically): results.md, results.json, decisions.csv, jobs.csv,
 * deployments.csv, costs.csv, requests_summary.csv, timeseries.csv,
 * report.html.  The CSV files carry pipeline,repeat,run_id in front of the
 * store's columns.  report_write computes the table; report_write_table
 * takes one already computed by report_compute from the same inputs. */
DpStatus report_write(const char *results_dir, const ReportInputs *in, DpError *err);
DpStatus report_write_table(const char *results_dir, const ReportInputs *in,
                            const ReportTable *table, DpError *err);

/* The HTML page alone (appended to out).  Its charts are <svg> elements
 * with ids chart-bleu, chart-accuracy, chart-latency, chart-rate,
 * chart-cost, chart-retrains. */
DpStatus report_html(const ReportTable *t, const ReportInputs *in, DpBuf *out, DpError *err);

#endif
