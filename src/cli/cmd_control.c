/* `driftpilot control`: the live controller (run), CSV export of its store
 * (export), and the replay history built from a Prometheus server's range
 * queries (history).  The work is in src/control (control.h). */
#include "cli.h"
#include "control.h"
#include "store.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CMD "control"

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot control run --config FILE [options]\n"
            "       driftpilot control export --store FILE --table TABLE [--run ID] [--out FILE.csv]\n"
            "       driftpilot control history --prometheus URL --start T --end T --step DUR\n"
            "                                  [--target NAME] [--config FILE] [--window DUR] --out FILE.csv\n\n"
            "run: every [control] decision_interval (scenario time at time_scale) read the state of\n"
            "the targets (scrape their /metrics, or PromQL when [metrics] source = \"prometheus\"),\n"
            "ask the policy, run a retrain job on the chosen target (time limit: job_time_limit),\n"
            "promote + reload the new version, switch the router when the target changes, watch\n"
            "live quality and roll back a redeploy that fell by more than rollback_margin within\n"
            "rollback_window, and record everything in the store.  SIGINT/SIGTERM stop it (a\n"
            "running job is waited for).\n"
            "  --config FILE            the driftpilot TOML file (required)\n"
            "  --policy SPEC            override [policy]: static[:15m[:TARGET|cheapest|rr]],\n"
            "                           threshold[:ACC[:COOLDOWN]], ph, adwin, ppo:FILE, none,\n"
            "                           always:TARGET (retrain at every decision: drills)\n"
            "  --duration DUR           stop after this much scenario time (default: run until stopped)\n"
            "  --data FILE              labelled window handed to the retrain job ({data})\n"
            "  --retrain-command CMD    job command line, split on blanks; placeholders {from} {data}\n"
            "                           {registry} {target} {record} {job}; default:\n"
            "                           \"<this driftpilot> retrain --from {from} --data {data}\n"
            "                           --registry {registry} --record {record}\"\n"
            "  --listen HOST:PORT       serve the controller's own /metrics (default 127.0.0.1:9102;\n"
            "                           \"none\" to disable)\n"
            "  --run-id ID              tag of this run in the store (default run-<unix time>)\n"
            "  --source direct|prometheus, --prometheus URL   override [metrics]\n"
            "  --rate-window DUR        PromQL rate window (default max(interval/time_scale, 4s))\n"
            "  --cost-mode auto|flat|gpu-hours   auto: the target's retrain_cost when > 0, else\n"
            "                           job wall hours x price_per_gpu_hour x max(1, gpu_count)\n"
            "  --profile paper|extended state vector stored (PPO uses its file's profile)\n"
            "  --jobs-dir DIR           job records and logs (default <store dir>/jobs)\n"
            "  --router-url URL|none    router admin base URL (default http://<router.listen>)\n"
            "  --rollback-min-labels N  fresh labels needed to judge a redeploy (default 20)\n\n"
            "export: write one table of the store as CSV (metric_samples, states, decisions,\n"
            "jobs, deployments, costs, events, experiments).\n\n"
            "history: range queries over [start, end] every step for one target, written in the\n"
            "replay CSV format (time,cpu,memory,request_rate,latency_ms,accuracy,bleu,f1,\n"
            "redeploy_count).  T is unix seconds, \"now\" or \"now-2h\".  --config gives the\n"
            "target's memory_mb and cpus (normalisers) and the default target.\n");
}

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static int parse_time(const char *text, double *out) {
    DpError err = {0};
    if (!strncmp(text, "now", 3)) {
        double d = 0;
        if (text[3] == '-' && dp_parse_duration(text + 4, &d, &err)) return 0;
        if (text[3] && text[3] != '-') return 0;
        *out = dp_time_wall() - d;
        return 1;
    }
    char *end;
    *out = strtod(text, &end);
    return *text && !*end;
}

static int cmd_run(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},      {"policy", required_argument, 0, 'p'},
        {"duration", required_argument, 0, 'd'},    {"data", required_argument, 0, 'D'},
        {"retrain-command", required_argument, 0, 'r'}, {"listen", required_argument, 0, 'l'},
        {"run-id", required_argument, 0, 'i'},      {"source", required_argument, 0, 's'},
        {"prometheus", required_argument, 0, 'P'},  {"rate-window", required_argument, 0, 'w'},
        {"cost-mode", required_argument, 0, 'm'},   {"profile", required_argument, 0, 'f'},
        {"jobs-dir", required_argument, 0, 'j'},    {"router-url", required_argument, 0, 'u'},
        {"rollback-min-labels", required_argument, 0, 'L'},
        {0, 0, 0, 0}};
    const char *config = NULL, *policy = NULL, *data = NULL, *retrain = NULL, *listen = "127.0.0.1:9102",
               *run_id = NULL, *source = NULL, *prom = NULL, *cost = NULL, *profile = NULL,
               *jobs = NULL, *router = NULL;
    double duration = 0, window = 0;
    long long min_labels = 20;
    DpError err = {0};
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'p': policy = optarg; break;
        case 'd':
            if (dp_parse_duration(optarg, &duration, &err)) return cli_usage_error(CMD, "--duration: %s", err.msg);
            break;
        case 'D': data = optarg; break;
        case 'r': retrain = optarg; break;
        case 'l': listen = optarg; break;
        case 'i': run_id = optarg; break;
        case 's': source = optarg; break;
        case 'P': prom = optarg; break;
        case 'w':
            if (dp_parse_duration(optarg, &window, &err)) return cli_usage_error(CMD, "--rate-window: %s", err.msg);
            break;
        case 'm': cost = optarg; break;
        case 'f': profile = optarg; break;
        case 'j': jobs = optarg; break;
        case 'u': router = optarg; break;
        case 'L':
            if (!cli_parse_int(CMD, "--rollback-min-labels", optarg, 1, 1000000, &min_labels)) return 2;
            break;
        default: return cli_usage_error(CMD, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!config) return cli_usage_error(CMD, "run needs --config FILE");
    DeployConfig *dc = dp_calloc(1, sizeof *dc);
    ControlConfig *cc = dp_calloc(1, sizeof *cc);
    Control *ctl = NULL;
    int rc = 1;
    if (!dc || !cc) {
        rc = cli_fail(CMD, "out of memory");
        goto out;
    }
    if (deploy_config_load(config, dc, &err)) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (source) {
        if (strcmp(source, "direct") && strcmp(source, "prometheus")) {
            rc = cli_usage_error(CMD, "--source must be direct or prometheus");
            goto out;
        }
        snprintf(dc->metrics.source, sizeof dc->metrics.source, "%s", source);
    }
    if (prom) snprintf(dc->metrics.prometheus_url, sizeof dc->metrics.prometheus_url, "%s", prom);
    control_config_init(cc, dc);
    if (policy) snprintf(cc->policy_spec, sizeof cc->policy_spec, "%s", policy);
    if (data) snprintf(cc->data_path, sizeof cc->data_path, "%s", data);
    if (retrain) snprintf(cc->retrain_command, sizeof cc->retrain_command, "%s", retrain);
    if (listen && strcmp(listen, "none")) snprintf(cc->listen, sizeof cc->listen, "%s", listen);
    if (run_id) snprintf(cc->run_id, sizeof cc->run_id, "%s", run_id);
    if (window > 0) cc->rate_window_s = window;
    cc->rollback_min_labels = (int)min_labels;
    if (jobs) snprintf(cc->jobs_dir, sizeof cc->jobs_dir, "%s", jobs);
    if (router) snprintf(cc->router_url, sizeof cc->router_url, "%s", strcmp(router, "none") ? router : "");
    if (cost) {
        if (!strcmp(cost, "auto")) cc->cost_mode = CONTROL_COST_AUTO;
        else if (!strcmp(cost, "flat")) cc->cost_mode = CONTROL_COST_FLAT;
        else if (!strcmp(cost, "gpu-hours")) cc->cost_mode = CONTROL_COST_GPU_HOURS;
        else {
            rc = cli_usage_error(CMD, "--cost-mode must be auto, flat or gpu-hours");
            goto out;
        }
    }
    if (profile) {
        if (!strcmp(profile, "paper")) cc->profile = SIM_PROFILE_PAPER;
        else if (!strcmp(profile, "extended")) cc->profile = SIM_PROFILE_EXTENDED;
        else {
            rc = cli_usage_error(CMD, "--profile must be paper or extended");
            goto out;
        }
    }
    ssize_t n = readlink("/proc/self/exe", cc->driftpilot_path, sizeof cc->driftpilot_path - 1);
    if (n > 0) cc->driftpilot_path[n] = 0;
    else cc->driftpilot_path[0] = 0;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (control_create(cc, &ctl, &err)) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (control_metrics_port(ctl))
        fprintf(stderr, "driftpilot control: run %s, /metrics on port %d\n", control_run_id(ctl),
                control_metrics_port(ctl));
    if (control_run(ctl, &g_stop, duration, &err)) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    rc = 0;
out:
    control_destroy(ctl);
    free(cc);
    free(dc);
    return rc;
}

static int cmd_export(int argc, char **argv) {
    static const struct option opts[] = {{"store", required_argument, 0, 's'},
                                         {"table", required_argument, 0, 't'},
                                         {"run", required_argument, 0, 'r'},
                                         {"out", required_argument, 0, 'o'},
                                         {0, 0, 0, 0}};
    const char *store = NULL, *table = NULL, *run = NULL, *out = NULL;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's': store = optarg; break;
        case 't': table = optarg; break;
        case 'r': run = optarg; break;
        case 'o': out = optarg; break;
        default: return cli_usage_error(CMD, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!store || !table) return cli_usage_error(CMD, "export needs --store FILE and --table TABLE");
    if (!dp_file_exists(store)) return cli_fail(CMD, "no store file %s", store);
    DpError err = {0};
    Store *st = NULL;
    if (store_open(store, &st, &err)) return cli_fail(CMD, "%s", err.msg);
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) {
        store_close(st);
        return cli_fail(CMD, "cannot write %s", out);
    }
    DpStatus s = store_export_csv(st, table, run, f, &err);
    int bad = out ? fclose(f) != 0 : fflush(f) != 0;
    store_close(st);
    if (s) return cli_fail(CMD, "%s", err.msg);
    if (bad) return cli_fail(CMD, "write %s failed", out ? out : "stdout");
    return 0;
}

static int cmd_history(int argc, char **argv) {
    static const struct option opts[] = {
        {"prometheus", required_argument, 0, 'P'}, {"start", required_argument, 0, 'a'},
        {"end", required_argument, 0, 'b'},        {"step", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},        {"target", required_argument, 0, 't'},
        {"config", required_argument, 0, 'c'},     {"window", required_argument, 0, 'w'},
        {0, 0, 0, 0}};
    const char *prom = NULL, *out = NULL, *target = NULL, *config = NULL;
    double start = NAN, end = NAN, step = 0, window = 0;
    int window_given = 0;
    DpError err = {0};
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'P': prom = optarg; break;
        case 'a':
            if (!parse_time(optarg, &start)) return cli_usage_error(CMD, "--start: bad time '%s'", optarg);
            break;
        case 'b':
            if (!parse_time(optarg, &end)) return cli_usage_error(CMD, "--end: bad time '%s'", optarg);
            break;
        case 's':
            if (dp_parse_duration(optarg, &step, &err)) return cli_usage_error(CMD, "--step: %s", err.msg);
            break;
        case 'o': out = optarg; break;
        case 't': target = optarg; break;
        case 'c': config = optarg; break;
        case 'w':
            if (dp_parse_duration(optarg, &window, &err)) return cli_usage_error(CMD, "--window: %s", err.msg);
            window_given = 1;
            break;
        default: return cli_usage_error(CMD, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!prom || !out || isnan(start) || isnan(end) || !(step > 0))
        return cli_usage_error(CMD, "history needs --prometheus, --start, --end, --step and --out");
    double mem = 0, cpus = 1;
    DeployConfig *dc = dp_calloc(1, sizeof *dc);
    if (!dc) return cli_fail(CMD, "out of memory");
    if (config) {
        if (deploy_config_load(config, dc, &err)) {
            free(dc);
            return cli_fail(CMD, "%s", err.msg);
        }
        const DeployTarget *t = target ? deploy_config_find(dc, target)
                                       : deploy_config_find(dc, dc->router.active);
        if (!t && !target && dc->n_targets > 0) t = &dc->targets[0];
        if (!t) {
            free(dc);
            return cli_usage_error(CMD, "no target '%s' in %s", target ? target : "", config);
        }
        target = t->name;
        mem = t->memory_mb * 1048576.0;
        cpus = t->cpus > 0 ? t->cpus : t->cpu_quota > 0 ? t->cpu_quota : 1;
        if (!window_given) window = dc->control.decision_interval_s / dc->control.time_scale;
    }
    if (!target) {
        free(dc);
        return cli_usage_error(CMD, "history needs --target NAME (or --config)");
    }
    /* a rate needs two samples inside its window: at least 4 s, and at
     * least one step, so consecutive rows do not leave gaps */
    if (!(window > 0)) window = 4;
    if (window < step) window = step;
    if (window < 4 && !window_given) window = 4;
    FILE *f = fopen(out, "w");
    if (!f) {
        free(dc);
        return cli_fail(CMD, "cannot write %s", out);
    }
    int rows = 0;
    DpStatus s = control_history_csv(prom, target, start, end, step, window, mem, cpus, f, &rows, &err);
    int bad = fclose(f) != 0;
    free(dc);
    if (s) return cli_fail(CMD, "%s", err.msg);
    if (bad) return cli_fail(CMD, "write %s failed", out);
    fprintf(stderr, "driftpilot control: %d rows of %s written to %s\n", rows, target, out);
    return 0;
}

int cmd_control(int argc, char **argv) {
    if (argc < 2) return cli_usage_error(CMD, "missing subcommand (run, export, history)");
    if (!strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "export")) return cmd_export(argc - 1, argv + 1);
    if (!strcmp(argv[1], "history")) return cmd_history(argc - 1, argv + 1);
    return cli_usage_error(CMD, "unknown subcommand '%s' (run, export, history)", argv[1]);
}
