/* `driftpilot loadgen`: drives one or more inference services with open-loop
 * traffic from the drifting QA world, labels a share of it through
 * /feedback, and writes a per-request CSV and a summary.  SIGINT/SIGTERM stop
 * it cleanly: requests in flight finish, the CSV and summary are written. */
#include "cli.h"
#include "loadgen.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot loadgen --target URL[=WEIGHT] [--target ...] [options]\n\n"
            "Open-loop load on the inference service: POST /predict with questions from the\n"
            "drifting QA world at the current scenario time, the reference answer to\n"
            "POST /feedback for a share of them.  Latency is measured from each request's\n"
            "intended send time (no coordinated omission).  Only loopback targets unless\n"
            "--allow-remote.\n\n"
            "targets:\n"
            "  --target URL[=W]       service base URL, e.g. http://127.0.0.1:8001=2 (weight\n"
            "                         default 1); repeat for several (at most %d)\n"
            "  --balance rr|random    smooth weighted round-robin (default) or weighted random\n"
            "  --allow-remote         allow targets that are not loopback addresses\n"
            "load:\n"
            "  --rate R               steady R requests/s (same as --load steady:R; default 10)\n"
            "  --load SPEC            R | steady:R | spike:BASE:PEAK:AT:LEN | ramp:FROM:TO:LEN[:AT]\n"
            "                         | diurnal:MEAN:AMPLITUDE:PERIOD | file:CSV[:step|:linear]\n"
            "                         (CSV lines time_s,rate; times are durations: 30s, 5m)\n"
            "  --load-clock run|scenario  SPEC times are seconds of the run (default) or\n"
            "                         scenario time (the --schedule axis)\n"
            "  --arrivals poisson|constant  arrival process (default poisson)\n"
            "  --duration DUR         length of the arrival window (default 10s)\n"
            "  --max-requests N       stop after N arrivals (default: no limit)\n"
            "  --timeout DUR          per-request deadline (default 5s)\n"
            "  --min-workers N        sender threads started at once (default 4)\n"
            "  --max-workers N        cap of the sender pool (default 256)\n"
            "  --max-backlog N        arrivals that may wait for a free sender (default 1024);\n"
            "                         beyond it, or after waiting --timeout, a request is\n"
            "                         counted as client_overload and not sent\n"
            "  --max-new-tokens N     sent with each /predict (default: the server's)\n"
            "  --sample-seed S        seed of arrivals, questions, targets, labels (default 1)\n"
            "scenario and world (as `driftpilot data world`):\n"
            "  --scale X              scenario seconds per wall second (default 1; 60: a\n"
            "                         wall second is a scenario minute)\n"
            "  --scenario-start DUR   scenario time at the start (default 0)\n"
            "  --seed S               world seed (default 1)\n"
            "  --schedule SPEC        drift: none | sudden:T[:FRACTION] | gradual:RATE/h |\n"
            "                         recurring:PERIOD[:FRACTION] (default none)\n"
            "  --services N           services at t=0 (default 100)\n"
            "  --new-per-hour R       new services per scenario hour (default 0)\n"
            "  --attributes LIST      comma list of owner,region,version,language,oncall\n"
            "labels:\n"
            "  --feedback-fraction F  share of answered requests whose reference is sent to\n"
            "                         /feedback (default 0)\n"
            "  --feedback-delay DUR   scenario time from the answer to its label (default 0)\n"
            "  --drain-feedback       at the end, wait for labels not yet due (default: drop\n"
            "                         them, counted as dropped)\n"
            "output:\n"
            "  --csv FILE             one row per request: seq,intended_s,sent_s,scenario_s,\n"
            "                         target,latency_ms,service_ms,status,error,model_version,\n"
            "                         kind,exact_match,feedback\n"
            "  --json                 print the summary as JSON (default: text)\n"
            "  --quiet                no progress line on stderr\n\n"
            "Exit status: 0 when the run completed (request failures are counted in the\n"
            "summary, not failures of the command), 1 on a run-time error, 2 on bad usage.\n",
            LOADGEN_MAX_TARGETS);
}

static int parse_attrs(const char *list, unsigned *mask) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    *mask = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        QaAttr a;
        DpError err;
        if (qa_attr_from_name(tok, &a, &err))
            return cli_usage_error("loadgen", "--attributes: %s", err.msg), 0;
        *mask |= QA_ATTR_MASK(a);
    }
    if (!*mask) return cli_usage_error("loadgen", "--attributes: empty list"), 0;
    return 1;
}

static int parse_dur(const char *opt, const char *text, double *out) {
    DpError err;
    if (dp_parse_duration(text, out, &err) != DP_OK)
        return cli_usage_error("loadgen", "%s: %s", opt, err.msg), 0;
    return 1;
}

int cmd_loadgen(int argc, char **argv) {
    enum {
        O_TARGET = 1000, O_BALANCE, O_ALLOW_REMOTE, O_RATE, O_LOAD, O_LOAD_CLOCK, O_ARRIVALS,
        O_DURATION, O_MAX_REQUESTS, O_TIMEOUT, O_MIN_WORKERS, O_MAX_WORKERS, O_MAX_BACKLOG,
        O_MAX_NEW_TOKENS, O_SAMPLE_SEED, O_SCALE, O_SCENARIO_START, O_SEED, O_SCHEDULE,
        O_SERVICES, O_NEW_PER_HOUR, O_ATTRIBUTES, O_FB_FRACTION, O_FB_DELAY, O_DRAIN, O_CSV,
        O_JSON, O_QUIET, O_HELP
    };
    static const struct option opts[] = {
        {"target", required_argument, 0, O_TARGET},
        {"balance", required_argument, 0, O_BALANCE},
        {"allow-remote", no_argument, 0, O_ALLOW_REMOTE},
        {"rate", required_argument, 0, O_RATE},
        {"load", required_argument, 0, O_LOAD},
        {"load-clock", required_argument, 0, O_LOAD_CLOCK},
        {"arrivals", required_argument, 0, O_ARRIVALS},
        {"duration", required_argument, 0, O_DURATION},
        {"max-requests", required_argument, 0, O_MAX_REQUESTS},
        {"timeout", required_argument, 0, O_TIMEOUT},
        {"min-workers", required_argument, 0, O_MIN_WORKERS},
        {"max-workers", required_argument, 0, O_MAX_WORKERS},
        {"max-backlog", required_argument, 0, O_MAX_BACKLOG},
        {"max-new-tokens", required_argument, 0, O_MAX_NEW_TOKENS},
        {"sample-seed", required_argument, 0, O_SAMPLE_SEED},
        {"scale", required_argument, 0, O_SCALE},
        {"scenario-start", required_argument, 0, O_SCENARIO_START},
        {"seed", required_argument, 0, O_SEED},
        {"schedule", required_argument, 0, O_SCHEDULE},
        {"services", required_argument, 0, O_SERVICES},
        {"new-per-hour", required_argument, 0, O_NEW_PER_HOUR},
        {"attributes", required_argument, 0, O_ATTRIBUTES},
        {"feedback-fraction", required_argument, 0, O_FB_FRACTION},
        {"feedback-delay", required_argument, 0, O_FB_DELAY},
        {"drain-feedback", no_argument, 0, O_DRAIN},
        {"csv", required_argument, 0, O_CSV},
        {"json", no_argument, 0, O_JSON},
        {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    LoadgenConfig cfg;
    loadgen_config_default(&cfg);
    cfg.progress = 1;
    int json = 0, rc = 0;
    long long v;
    DpError err;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_TARGET:
            if (cfg.n_targets == LOADGEN_MAX_TARGETS) {
                rc = cli_usage_error("loadgen", "at most %d targets", LOADGEN_MAX_TARGETS);
                goto out;
            }
            if (loadgen_target_parse(optarg, &cfg.targets[cfg.n_targets], &err) != DP_OK) {
                rc = cli_usage_error("loadgen", "--target: %s", err.msg);
                goto out;
            }
            cfg.n_targets++;
            break;
        case O_BALANCE:
            if (!strcmp(optarg, "rr") || !strcmp(optarg, "round-robin"))
                cfg.balance = LOADGEN_BALANCE_ROUND_ROBIN;
            else if (!strcmp(optarg, "random")) cfg.balance = LOADGEN_BALANCE_RANDOM;
            else {
                rc = cli_usage_error("loadgen", "--balance: expected rr or random, got '%s'", optarg);
                goto out;
            }
            break;
        case O_ALLOW_REMOTE: cfg.allow_remote = 1; break;
        case O_RATE:
            loadgen_schedule_free(&cfg.schedule);
            cfg.schedule.kind = LOADGEN_SCHED_STEADY;
            if (!cli_parse_double("loadgen", "--rate", optarg, 0, 1e6, &cfg.schedule.rate)) goto usage_fail;
            break;
        case O_LOAD:
            loadgen_schedule_free(&cfg.schedule);
            if (loadgen_schedule_parse(optarg, &cfg.schedule, &err) != DP_OK) {
                rc = cli_usage_error("loadgen", "--load: %s", err.msg);
                goto out;
            }
            break;
        case O_LOAD_CLOCK:
            if (!strcmp(optarg, "run")) cfg.schedule_on_scenario_clock = 0;
            else if (!strcmp(optarg, "scenario")) cfg.schedule_on_scenario_clock = 1;
            else {
                rc = cli_usage_error("loadgen", "--load-clock: expected run or scenario, got '%s'", optarg);
                goto out;
            }
            break;
        case O_ARRIVALS:
            if (!strcmp(optarg, "poisson")) cfg.poisson = 1;
            else if (!strcmp(optarg, "constant")) cfg.poisson = 0;
            else {
                rc = cli_usage_error("loadgen", "--arrivals: expected poisson or constant, got '%s'", optarg);
                goto out;
            }
            break;
        case O_DURATION:
            if (!parse_dur("--duration", optarg, &cfg.duration_s)) goto usage_fail;
            if (!(cfg.duration_s > 0)) {
                rc = cli_usage_error("loadgen", "--duration must be > 0");
                goto out;
            }
            break;
        case O_MAX_REQUESTS:
            if (!cli_parse_int("loadgen", "--max-requests", optarg, 1, INT64_MAX, &v)) goto usage_fail;
            cfg.max_requests = (uint64_t)v;
            break;
        case O_TIMEOUT:
            if (!parse_dur("--timeout", optarg, &cfg.timeout_s)) goto usage_fail;
            if (!(cfg.timeout_s > 0)) {
                rc = cli_usage_error("loadgen", "--timeout must be > 0");
                goto out;
            }
            break;
        case O_MIN_WORKERS:
            if (!cli_parse_int("loadgen", "--min-workers", optarg, 0, 4096, &v)) goto usage_fail;
            cfg.min_workers = (int)v;
            break;
        case O_MAX_WORKERS:
            if (!cli_parse_int("loadgen", "--max-workers", optarg, 1, 4096, &v)) goto usage_fail;
            cfg.max_workers = (int)v;
            break;
        case O_MAX_BACKLOG:
            if (!cli_parse_int("loadgen", "--max-backlog", optarg, 0, 10000000, &v)) goto usage_fail;
            cfg.max_backlog = (int)v;
            break;
        case O_MAX_NEW_TOKENS:
            if (!cli_parse_int("loadgen", "--max-new-tokens", optarg, 1, 100000, &v)) goto usage_fail;
            cfg.max_new_tokens = (int)v;
            break;
        case O_SAMPLE_SEED:
            if (!cli_parse_int("loadgen", "--sample-seed", optarg, 0, INT64_MAX, &v)) goto usage_fail;
            cfg.seed = (uint64_t)v;
            break;
        case O_SCALE:
            if (!cli_parse_double("loadgen", "--scale", optarg, 1e-6, 1e9, &cfg.scale)) goto usage_fail;
            break;
        case O_SCENARIO_START:
            if (!parse_dur("--scenario-start", optarg, &cfg.scenario_start_s)) goto usage_fail;
            break;
        case O_SEED:
            if (!cli_parse_int("loadgen", "--seed", optarg, 0, INT64_MAX, &v)) goto usage_fail;
            cfg.world.seed = (uint64_t)v;
            break;
        case O_SCHEDULE:
            if (qa_world_schedule_parse(optarg, &cfg.world, &err) != DP_OK) {
                rc = cli_usage_error("loadgen", "--schedule: %s", err.msg);
                goto out;
            }
            break;
        case O_SERVICES:
            if (!cli_parse_int("loadgen", "--services", optarg, 1, 2900, &v)) goto usage_fail;
            cfg.world.n_services = (int)v;
            break;
        case O_NEW_PER_HOUR:
            if (!cli_parse_double("loadgen", "--new-per-hour", optarg, 0, 1e6, &cfg.world.new_per_hour))
                goto usage_fail;
            break;
        case O_ATTRIBUTES:
            if (!parse_attrs(optarg, &cfg.world.attributes)) goto usage_fail;
            break;
        case O_FB_FRACTION:
            if (!cli_parse_double("loadgen", "--feedback-fraction", optarg, 0, 1, &cfg.feedback_fraction))
                goto usage_fail;
            break;
        case O_FB_DELAY:
            if (!parse_dur("--feedback-delay", optarg, &cfg.feedback_delay_s)) goto usage_fail;
            break;
        case O_DRAIN: cfg.drain_feedback = 1; break;
        case O_CSV: cfg.csv_path = optarg; break;
        case O_JSON: json = 1; break;
        case O_QUIET: cfg.progress = 0; break;
        default:
            rc = cli_usage_error("loadgen", "unknown option '%s'", argv[optind - 1]);
            goto out;
        }
    }
    if (optind != argc) {
        rc = cli_usage_error("loadgen", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (cfg.n_targets == 0) {
        rc = cli_usage_error("loadgen", "at least one --target URL is required");
        goto out;
    }
    for (int i = 0; i < cfg.n_targets; i++)
        if (loadgen_url_check(cfg.targets[i].url, cfg.allow_remote, &err) != DP_OK) {
            rc = cli_usage_error("loadgen", "%s", err.msg);
            goto out;
        }
    if (cfg.min_workers > cfg.max_workers) cfg.min_workers = cfg.max_workers;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    stop_requested = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    cfg.stop = &stop_requested;
    LoadgenSummary sum;
    DpStatus st = loadgen_run(&cfg, &sum, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st != DP_OK) {
        rc = cli_fail("loadgen", "%s", err.msg);
        goto out;
    }
    if (json) {
        DpBuf b = DP_BUF_INIT;
        if (loadgen_summary_json(&sum, &b) != DP_OK) {
            dp_buf_free(&b);
            rc = cli_fail("loadgen", "out of memory");
            goto out;
        }
        fputs(b.data, stdout);
        dp_buf_free(&b);
    } else {
        loadgen_summary_print(&sum, stdout);
    }
    if (cfg.csv_path) fprintf(stderr, "wrote %s\n", cfg.csv_path);
    goto out;
usage_fail:
    rc = 2;
out:
    loadgen_schedule_free(&cfg.schedule);
    return rc;
}
