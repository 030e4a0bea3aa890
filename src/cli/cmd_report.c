/* `driftpilot report`: builds a results directory (the study's table as
 * Markdown and JSON, CSVs, report.html) from existing stores, e.g. after any
 * controller run.  The experiment runner calls the same library function
 * (report_write) at the end of an experiment. */
#include "cli.h"
#include "report.h"
#include "store.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 64

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot report --store FILE [--run ID[=PIPELINE] [--requests CSV]]...\n"
            "                         [--store FILE ...] --out DIR [options]\n\n"
            "Reads the controller's history (SQLite stores) and writes DIR/results.md,\n"
            "results.json, decisions.csv, jobs.csv, deployments.csv, costs.csv,\n"
            "requests_summary.csv, timeseries.csv and report.html (self-contained, charts as\n"
            "inline SVG).  Prints the Markdown table and the path of the report.\n\n"
            "Runs:\n"
            "  --store FILE          a store; the --run options after it belong to it.  A\n"
            "                        store without --run contributes every run id found in\n"
            "                        its decisions\n"
            "  --run ID[=PIPELINE]   a run id; runs with the same pipeline are repeats.  The\n"
            "                        pipeline defaults to one named from the run's policy\n"
            "                        (ppo -> adaptive, static -> static-15m, threshold,\n"
            "                        page-hinkley/adwin/drift -> drift, else the policy)\n"
            "  --requests CSV        the load generator's per-request CSV of the last --run\n"
            "                        (latency percentiles and request rate from it)\n"
            "  --scale X             scenario seconds per wall second of the stores' times (1)\n"
            "  --t0 UNIX             unix time of scenario 0 (default: each run's first record)\n"
            "  --interval DUR        decision interval (60s)\n\n"
            "Simulator beside the live result:\n"
            "  --sim-prediction FILE.json   output of `driftpilot simulate --json`\n"
            "  --sim-decisions FILE.csv     output of `driftpilot simulate --decisions`\n"
            "                               (dashed lines in the quality charts)\n"
            "  --sim-map MAP         pipeline=policy-prefix,... (default adaptive=ppo,\n"
            "                        static-15m=static-15m, threshold=threshold,\n"
            "                        drift=page-hinkley)\n"
            "  --scenario NAME       scenario name (picks the simulator's scenario too)\n\n"
            "Other:\n"
            "  --out DIR             results directory (created; files replaced atomically)\n"
            "  --title TEXT          title of the table and the page\n"
            "  --reward default|study   reward of the reward column: default (quality per\n"
            "                        hour, SLO 150 ms) or the study's (per decision)\n"
            "  --quiet               print only the report's path\n");
}

typedef struct {
    char id[128];
    char pipeline[REPORT_NAME_MAX];
    int seen;
} Found;

typedef struct {
    Found f[MAX_RUNS];
    int n;
    const char *only; /* fill the pipeline of this run only (NULL: collect all) */
} FoundList;

static const char *pipeline_for_policy(const char *policy) {
    if (!policy) return NULL;
    if (!strncmp(policy, "ppo", 3)) return "adaptive";
    if (!strncmp(policy, "static", 6)) return "static-15m";
    if (!strncmp(policy, "threshold", 9)) return "threshold";
    if (!strncmp(policy, "page-hinkley", 12) || !strncmp(policy, "adwin", 5) ||
        !strncmp(policy, "drift", 5))
        return "drift";
    return policy;
}

static int on_decision(const StoreDecision *d, void *user) {
    FoundList *l = user;
    if (!d->run_id) return 0;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->f[i].id, d->run_id)) return 0;
    if (l->n == MAX_RUNS) return 1;
    Found *f = &l->f[l->n++];
    snprintf(f->id, sizeof f->id, "%s", d->run_id);
    const char *p = pipeline_for_policy(d->policy);
    snprintf(f->pipeline, sizeof f->pipeline, "%s", p ? p : d->run_id);
    return 0;
}

/* Run ids in the store's decisions with a pipeline named from their policy. */
static DpStatus find_runs(const char *store_path, FoundList *l, DpError *err) {
    Store *st = NULL;
    if (!dp_file_exists(store_path)) return dp_fail(err, DP_ERR_IO, "no such file");
    DpStatus s = store_open(store_path, &st, err);
    if (s) return s;
    l->n = 0;
    s = store_each_decision(st, NULL, on_decision, l, err);
    store_close(st);
    return s;
}

int cmd_report(int argc, char **argv) {
    const char *cmd = "report";
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    enum { O_STORE = 1, O_RUN, O_REQ, O_SCALE, O_T0, O_INTERVAL, O_SIMP, O_SIMD, O_SIMMAP,
           O_SCEN, O_OUT, O_TITLE, O_REWARD, O_QUIET };
    static const struct option opts[] = {
        {"store", required_argument, 0, O_STORE},        {"run", required_argument, 0, O_RUN},
        {"requests", required_argument, 0, O_REQ},       {"scale", required_argument, 0, O_SCALE},
        {"t0", required_argument, 0, O_T0},              {"interval", required_argument, 0, O_INTERVAL},
        {"sim-prediction", required_argument, 0, O_SIMP}, {"sim-decisions", required_argument, 0, O_SIMD},
        {"sim-map", required_argument, 0, O_SIMMAP},     {"scenario", required_argument, 0, O_SCEN},
        {"out", required_argument, 0, O_OUT},            {"title", required_argument, 0, O_TITLE},
        {"reward", required_argument, 0, O_REWARD},      {"quiet", no_argument, 0, O_QUIET},
        {0, 0, 0, 0}};
    /* Runs as given: store index, id (NULL: discover), pipeline (NULL: from policy). */
    static char *stores[MAX_RUNS];
    static ReportRun runs[MAX_RUNS];
    static char ids[MAX_RUNS][128], pipes[MAX_RUNS][REPORT_NAME_MAX];
    int run_store[MAX_RUNS], n_stores = 0, n_runs = 0, quiet = 0;
    int store_has_run[MAX_RUNS] = {0};
    ReportInputs in;
    report_inputs_default(&in);
    const char *out = NULL;
    double t0 = 0;
    memset(runs, 0, sizeof runs);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_STORE:
            if (n_stores == MAX_RUNS) return cli_usage_error(cmd, "too many --store");
            stores[n_stores++] = optarg;
            break;
        case O_RUN: {
            if (!n_stores) return cli_usage_error(cmd, "--run %s comes before any --store", optarg);
            if (n_runs == MAX_RUNS) return cli_usage_error(cmd, "more than %d runs", MAX_RUNS);
            const char *eq = strchr(optarg, '=');
            size_t len = eq ? (size_t)(eq - optarg) : strlen(optarg);
            if (!len || len >= sizeof ids[0] || (eq && (!eq[1] || strlen(eq + 1) >= REPORT_NAME_MAX)))
                return cli_usage_error(cmd, "bad --run '%s' (ID or ID=PIPELINE)", optarg);
            snprintf(ids[n_runs], sizeof ids[0], "%.*s", (int)len, optarg);
            snprintf(pipes[n_runs], sizeof pipes[0], "%s", eq ? eq + 1 : "");
            run_store[n_runs] = n_stores - 1;
            store_has_run[n_stores - 1] = 1;
            n_runs++;
            break;
        }
        case O_REQ:
            if (!n_runs || !store_has_run[n_stores - 1])
                return cli_usage_error(cmd, "--requests belongs after a --run");
            runs[n_runs - 1].requests_csv = optarg;
            break;
        case O_SCALE:
            if (!cli_parse_double(cmd, "--scale", optarg, 1e-6, 1e9, &in.scale)) return 2;
            break;
        case O_T0:
            if (!cli_parse_double(cmd, "--t0", optarg, 0, 1e12, &t0)) return 2;
            break;
        case O_INTERVAL: {
            DpError err;
            if (dp_parse_duration(optarg, &in.interval_s, &err) || !(in.interval_s > 0))
                return cli_usage_error(cmd, "--interval: bad duration '%s'", optarg);
            break;
        }
        case O_SIMP: in.sim_prediction_json = optarg; break;
        case O_SIMD: in.sim_decisions_csv = optarg; break;
        case O_SIMMAP: in.sim_policy_map = optarg; break;
        case O_SCEN: in.scenario = optarg; break;
        case O_OUT: out = optarg; break;
        case O_TITLE: in.title = optarg; break;
        case O_REWARD:
            if (!strcmp(optarg, "study")) sim_reward_study(&in.reward);
            else if (!strcmp(optarg, "default")) sim_reward_default(&in.reward);
            else return cli_usage_error(cmd, "--reward must be default or study, not '%s'", optarg);
            break;
        case O_QUIET: quiet = 1; break;
        default: return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!n_stores) return cli_usage_error(cmd, "--store is required");
    if (!out) return cli_usage_error(cmd, "--out is required");

    /* Stores without --run: every run in their decisions.  Runs without a
     * pipeline: named from their policy. */
    DpError err = {0};
    static FoundList fl;
    int total = 0;
    static ReportRun all[MAX_RUNS];
    static char all_ids[MAX_RUNS][128], all_pipes[MAX_RUNS][REPORT_NAME_MAX];
    for (int s = 0; s < n_stores; s++) {
        if (find_runs(stores[s], &fl, &err)) return cli_fail(cmd, "%s: %s", stores[s], err.msg);
        if (!store_has_run[s]) {
            if (!fl.n) return cli_fail(cmd, "%s: no decisions, so no runs to report", stores[s]);
            for (int i = 0; i < fl.n; i++) {
                if (total == MAX_RUNS) return cli_fail(cmd, "more than %d runs", MAX_RUNS);
                snprintf(all_ids[total], sizeof all_ids[0], "%s", fl.f[i].id);
                snprintf(all_pipes[total], sizeof all_pipes[0], "%s", fl.f[i].pipeline);
                all[total] = (ReportRun){all_pipes[total], stores[s], all_ids[total], NULL, t0, 0};
                total++;
            }
            continue;
        }
        for (int r = 0; r < n_runs; r++) {
            if (run_store[r] != s) continue;
            if (total == MAX_RUNS) return cli_fail(cmd, "more than %d runs", MAX_RUNS);
            snprintf(all_ids[total], sizeof all_ids[0], "%s", ids[r]);
            const char *p = pipes[r][0] ? pipes[r] : NULL;
            for (int i = 0; !p && i < fl.n; i++)
                if (!strcmp(fl.f[i].id, ids[r])) p = fl.f[i].pipeline;
            snprintf(all_pipes[total], sizeof all_pipes[0], "%s", p ? p : ids[r]);
            all[total] = (ReportRun){all_pipes[total], stores[s], all_ids[total],
                                     runs[r].requests_csv, t0, 0};
            total++;
        }
    }
    in.runs = all;
    in.n_runs = total;
    ReportTable *t = NULL;
    if (report_compute(&in, &t, &err)) return cli_fail(cmd, "%s", err.msg);
    int rc = 0;
    if (report_write_table(out, &in, t, &err)) {
        rc = cli_fail(cmd, "%s", err.msg);
    } else {
        if (!quiet) {
            DpBuf md = DP_BUF_INIT;
            if (!report_table_markdown(t, &in, &md) && md.data) fputs(md.data, stdout);
            dp_buf_free(&md);
            printf("\n");
        }
        printf("report: %s/report.html\n", out);
    }
    report_table_free(t);
    return rc;
}
