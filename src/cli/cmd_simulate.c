/* `driftpilot simulate`: runs every policy on the very same simulated
 * episodes for each scenario and prints the study's table (retrains, BLEU-1,
 * exact match, latency, cost, reward and its share of the oracle's) with 95%
 * confidence intervals, as Markdown or JSON, plus an optional CSV of every
 * decision. */
#include "cli.h"
#include "policy.h"
#include "sim.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POLICIES 16
#define MAX_SCENARIOS 16
#define BASELINE_NAME "static-15m@aws"

static const char *default_policies[] = {"static:15m:aws", "static:15m:cheapest", "static:60m:cheapest",
                                         "threshold", "ph", "adwin", "oracle"};

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot simulate [options]\n\n"
            "Runs every policy on the same simulated episodes (exogenous randomness drawn\n"
            "per seed up front) for each scenario and prints the study's comparison table.\n\n"
            "options:\n"
            "  --config FILE       simulator config (JSON; default: built-in, the study's setup)\n"
            "  --actions SET       the action set, over the config's: targets (the study's:\n"
            "                      retrain and serve on one target), pairs (train on one,\n"
            "                      serve on another) or steps (no oracle)\n"
            "  --scenario NAME     a scenario (repeatable; default all: steady, spike, gradual,\n"
            "                      sudden, recurring, price-change, outage)\n"
            "  --seeds N           episodes per scenario (default 30); seeds are B..B+N-1\n"
            "  --seed-base B       first evaluation seed (default 1)\n"
            "  --policy SPEC       a policy (repeatable; default: static:15m:aws,\n"
            "                      static:15m:cheapest, static:60m:cheapest, threshold, ph,\n"
            "                      adwin, oracle).  SPEC: static[:15m[:TARGET|cheapest|round-robin]],\n"
            "                      threshold[:ACC[:COOLDOWN]], ph, adwin, oracle, ppo:FILE\n"
            "  --ppo FILE          add a PPO policy file to the default set (repeatable)\n"
            "  --json              JSON instead of Markdown on stdout\n"
            "  --decisions FILE    write every decision as CSV\n"
            "  -h, --help          this help\n\n"
            "The 'study claim' column compares each policy with retraining every 15 minutes\n"
            "on aws (" BASELINE_NAME "): at least 50%% fewer retrains, BLEU-1 at least as high\n"
            "and lower latency.  Numbers: mean +- sample std across seeds; reward with the\n"
            "half-width of its 95%% confidence interval (t distribution).\n");
}

typedef struct {
    char name[64];
    double *reward, *bleu, *em, *lat, *cost, *retrains, *slo;
} Stats;

/* Two-sided 95% t quantile for n-1 degrees of freedom (Cornish-Fisher). */
static double t95(int n) {
    if (n < 2) return 0;
    double v = n - 1, z = 1.959963985;
    double z3 = z * z * z, z5 = z3 * z * z;
    return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v);
}

static double ci95(const double *x, int n) { return n < 2 ? 0 : t95(n) * dp_std(x, (size_t)n) / sqrt(n); }

static double arr_min(const double *x, int n) {
    double m = INFINITY;
    for (int i = 0; i < n; i++) m = x[i] < m ? x[i] : m;
    return m;
}
static double arr_max(const double *x, int n) {
    double m = -INFINITY;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

typedef struct {
    FILE *f;
    const char *scenario;
    uint64_t seed;
    const char *policy;
    const SimConfig *cfg;
} DecisionSink;

static void on_decision(void *user, int t, const SimObservation *seen, int action,
                        const SimStepInfo *info) {
    DecisionSink *d = user;
    char an[64], names[SIM_MAX_TARGETS][SIM_NAME_MAX];
    for (int k = 0; k < d->cfg->n_targets; k++) memcpy(names[k], d->cfg->targets[k].name, SIM_NAME_MAX);
    sim_action_name(d->cfg->action_set, d->cfg->n_targets, (const char(*)[SIM_NAME_MAX])names,
                     action, an, sizeof an);
    fprintf(d->f, "%s,%llu,%s,%d,%.0f,%d,%s,%d,%d,%d,%.6f,%.4f,%.4f,%.4f,%.4f,%.2f,%.3f,%.1f,%s\n",
            d->scenario, (unsigned long long)d->seed, d->policy, t, seen->time_s, action, an,
            info->started, info->deployed, info->ignored, info->reward, info->cost,
            info->obs.accuracy, info->obs.bleu, info->obs.f1, info->obs.latency_ms, info->obs.cpu,
            info->obs.request_rate, d->cfg->targets[info->obs.serving_target].name);
}

static void stats_free(Stats *s) {
    free(s->reward);
    free(s->bleu);
    free(s->em);
    free(s->lat);
    free(s->cost);
    free(s->retrains);
    free(s->slo);
    memset(s, 0, sizeof *s);
}

static int stats_alloc(Stats *s, int n) {
    s->reward = calloc((size_t)n, sizeof(double));
    s->bleu = calloc((size_t)n, sizeof(double));
    s->em = calloc((size_t)n, sizeof(double));
    s->lat = calloc((size_t)n, sizeof(double));
    s->cost = calloc((size_t)n, sizeof(double));
    s->retrains = calloc((size_t)n, sizeof(double));
    s->slo = calloc((size_t)n, sizeof(double));
    return s->reward && s->bleu && s->em && s->lat && s->cost && s->retrains && s->slo;
}

/* "yes", or "no (retrains, bleu, latency)" naming what failed, vs base. */
static void claim_text(const Stats *p, const Stats *b, int n, char *buf, size_t cap, int *ok) {
    double rp = dp_mean(p->retrains, n), rb = dp_mean(b->retrains, n);
    int fewer = rp <= 0.5 * rb, bleu = dp_mean(p->bleu, n) >= dp_mean(b->bleu, n),
        lat = dp_mean(p->lat, n) < dp_mean(b->lat, n);
    *ok = fewer && bleu && lat;
    if (*ok) snprintf(buf, cap, "yes");
    else snprintf(buf, cap, "no (%s%s%s)", fewer ? "" : "retrains ", bleu ? "" : "bleu ", lat ? "" : "latency");
    size_t l = strlen(buf);
    if (l > 2 && buf[l - 2] == ' ') buf[l - 2] = ')', buf[l - 1] = 0;
}

int cmd_simulate(int argc, char **argv) {
    const char *cmd = "simulate";
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"scenario", required_argument, 0, 's'},
        {"seeds", required_argument, 0, 'n'},  {"seed-base", required_argument, 0, 'b'},
        {"policy", required_argument, 0, 'p'}, {"ppo", required_argument, 0, 'P'},
        {"json", no_argument, 0, 'j'},         {"decisions", required_argument, 0, 'd'},
        {"actions", required_argument, 0, 'A'}, {0, 0, 0, 0}};
    const char *config = NULL, *decisions = NULL, *actions = NULL;
    const char *scen[MAX_SCENARIOS];
    const char *specs[MAX_POLICIES];
    int n_scen = 0, n_specs = 0, json = 0, explicit_policies = 0;
    long long n_seeds = 30, seed_base = 1;
    const char *ppo_files[MAX_POLICIES];
    int n_ppo = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's':
            if (n_scen == MAX_SCENARIOS) return cli_usage_error(cmd, "too many --scenario");
            scen[n_scen++] = optarg;
            break;
        case 'n':
            if (!cli_parse_int(cmd, "--seeds", optarg, 1, 100000, &n_seeds)) return 2;
            break;
        case 'b':
            if (!cli_parse_int(cmd, "--seed-base", optarg, 0, 1LL << 40, &seed_base)) return 2;
            break;
        case 'p':
            if (n_specs == MAX_POLICIES) return cli_usage_error(cmd, "too many --policy");
            specs[n_specs++] = optarg;
            explicit_policies = 1;
            break;
        case 'P':
            if (n_ppo == MAX_POLICIES) return cli_usage_error(cmd, "too many --ppo");
            ppo_files[n_ppo++] = optarg;
            break;
        case 'j': json = 1; break;
        case 'd': decisions = optarg; break;
        case 'A': actions = optarg; break;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!explicit_policies) {
        for (size_t i = 0; i < sizeof default_policies / sizeof *default_policies; i++)
            specs[n_specs++] = default_policies[i];
    }
    /* --ppo FILE adds "ppo:FILE" before the oracle */
    char ppo_specs[MAX_POLICIES][600];
    for (int i = 0; i < n_ppo; i++) {
        if (n_specs == MAX_POLICIES) return cli_usage_error(cmd, "too many policies");
        snprintf(ppo_specs[i], sizeof ppo_specs[i], "ppo:%s", ppo_files[i]);
        specs[n_specs++] = ppo_specs[i];
    }
    if (n_scen == 0)
        for (int i = 0; i < sim_scenario_count(); i++) scen[n_scen++] = sim_scenario_name(i);

    DpError err = {0};
    SimConfig base;
    sim_config_default(&base);
    if (config && sim_config_load(&base, config, &err)) return cli_fail(cmd, "%s", err.msg);
    if (actions && sim_action_set_parse(actions, &base.action_set, &err))
        return cli_usage_error(cmd, "--actions: %s", err.msg);
    for (int i = 0; i < n_scen; i++) {
        SimConfig t = base;
        if (sim_scenario_apply(&t, scen[i], &err)) return cli_usage_error(cmd, "%s", err.msg);
    }
    FILE *df = NULL;
    if (decisions) {
        df = fopen(decisions, "w");
        if (!df) return cli_fail(cmd, "open %s for writing", decisions);
        fprintf(df, "scenario,seed,policy,t,time_s,action,action_name,started,deployed,ignored,"
                    "reward,cost,accuracy,bleu,f1,latency_ms,cpu,request_rate,serving\n");
    }
    int rc = 0, n = (int)n_seeds;
    Policy *pol[MAX_POLICIES] = {0};
    Stats st[MAX_POLICIES];
    memset(st, 0, sizeof st);
    json_t *jroot = json_object(), *jscen = json_array();
    double t0 = dp_time_mono();
    long long n_episode_runs = 0;
    for (int si = 0; si < n_scen && !rc; si++) {
        SimConfig cfg = base;
        sim_scenario_apply(&cfg, scen[si], NULL);
        int np = 0;
        for (int i = 0; i < n_specs; i++) {
            DpStatus s2 = !strncmp(specs[i], "ppo:", 4) ? policy_ppo_create(specs[i] + 4, &cfg, &pol[np], &err)
                                                        : policy_from_spec(specs[i], &cfg, &pol[np], &err);
            if (s2) {
                rc = cli_fail(cmd, "policy '%s': %s", specs[i], err.msg);
                goto scenario_done;
            }
            if (!stats_alloc(&st[np], n)) {
                rc = cli_fail(cmd, "out of memory");
                np++;
                goto scenario_done;
            }
            snprintf(st[np].name, sizeof st[np].name, "%s", pol[np]->name);
            np++;
        }
        for (int s = 0; s < n && !rc; s++) {
            SimEpisode ep = {0};
            uint64_t seed = (uint64_t)(seed_base + s);
            if (sim_episode_draw(&cfg, seed, &ep, &err)) {
                rc = cli_fail(cmd, "%s", err.msg);
                break;
            }
            for (int i = 0; i < np; i++) {
                PolicyEpisodeResult r;
                DecisionSink sink = {df, scen[si], seed, pol[i]->name, &cfg};
                if (policy_run_episode(pol[i], &cfg, &ep, &r, df ? on_decision : NULL, &sink, &err)) {
                    rc = cli_fail(cmd, "%s: %s", pol[i]->name, err.msg);
                    break;
                }
                n_episode_runs++;
                st[i].reward[s] = r.total_reward;
                st[i].bleu[s] = r.mean_bleu;
                st[i].em[s] = r.mean_accuracy;
                st[i].lat[s] = r.mean_latency_ms;
                st[i].cost[s] = r.total_cost;
                st[i].retrains[s] = r.n_retrains;
                st[i].slo[s] = r.slo_violation_share;
            }
            sim_episode_free(&ep);
        }
        if (rc) goto scenario_done;
        {
            int oracle = -1, basei = -1, ppo_i = -1;
            for (int i = 0; i < np; i++) {
                if (!strcmp(st[i].name, "oracle")) oracle = i;
                if (!strcmp(st[i].name, BASELINE_NAME)) basei = i;
                if (!strncmp(st[i].name, "ppo", 3) && ppo_i < 0) ppo_i = i;
            }
            double omean = oracle >= 0 ? dp_mean(st[oracle].reward, n) : NAN;
            json_t *js = json_object(), *jp = json_array();
            json_object_set_new(js, "scenario", json_string(scen[si]));
            json_object_set_new(js, "seeds", json_integer(n));
            json_object_set_new(js, "seed_base", json_integer(seed_base));
            json_object_set_new(js, "decisions", json_integer(sim_config_steps(&cfg)));
            json_object_set_new(js, "interval_s", json_real(cfg.interval_s));
            if (!json) {
                printf("### %s — %d seeds (%lld..%lld), %d decisions of %g s\n\n", scen[si], n,
                       seed_base, seed_base + n - 1, sim_config_steps(&cfg), cfg.interval_s);
                printf("| policy | retrains | BLEU-1 | BLEU-1 range | EM | latency ms | SLO miss | cost | "
                       "reward (95%% CI) | %% of oracle | study claim vs %s |\n",
                       BASELINE_NAME);
                printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
            }
            for (int i = 0; i < np; i++) {
                Stats *p = &st[i];
                char claim[64] = "—";
                int ok = 0;
                if (basei >= 0 && i != basei) claim_text(p, &st[basei], n, claim, sizeof claim, &ok);
                double share = oracle >= 0 ? dp_mean(p->reward, n) / omean : NAN;
                if (!json) {
                    char share_text[32] = "—"; /* no oracle in the set */
                    if (oracle >= 0) snprintf(share_text, sizeof share_text, "%.1f%%", 100 * share);
                    printf("| %s | %.1f | %.3f ± %.3f | %.3f–%.3f | %.3f | %.0f ± %.0f | %.0f%% | %.3f | "
                           "%.3f ± %.3f | %s | %s |\n",
                           p->name, dp_mean(p->retrains, n), dp_mean(p->bleu, n), dp_std(p->bleu, n),
                           arr_min(p->bleu, n), arr_max(p->bleu, n), dp_mean(p->em, n),
                           dp_mean(p->lat, n), dp_std(p->lat, n), 100 * dp_mean(p->slo, n),
                           dp_mean(p->cost, n), dp_mean(p->reward, n), ci95(p->reward, n),
                           share_text, claim);
                }
                json_t *o = json_object();
                json_object_set_new(o, "policy", json_string(p->name));
                json_object_set_new(o, "retrains_mean", json_real(dp_mean(p->retrains, n)));
                json_object_set_new(o, "bleu_mean", json_real(dp_mean(p->bleu, n)));
                json_object_set_new(o, "bleu_std", json_real(dp_std(p->bleu, n)));
                json_object_set_new(o, "bleu_min", json_real(arr_min(p->bleu, n)));
                json_object_set_new(o, "bleu_max", json_real(arr_max(p->bleu, n)));
                json_object_set_new(o, "bleu_ci95", json_real(ci95(p->bleu, n)));
                json_object_set_new(o, "exact_match_mean", json_real(dp_mean(p->em, n)));
                json_object_set_new(o, "latency_ms_mean", json_real(dp_mean(p->lat, n)));
                json_object_set_new(o, "latency_ms_std", json_real(dp_std(p->lat, n)));
                json_object_set_new(o, "latency_ms_ci95", json_real(ci95(p->lat, n)));
                json_object_set_new(o, "slo_miss_share", json_real(dp_mean(p->slo, n)));
                json_object_set_new(o, "cost_mean", json_real(dp_mean(p->cost, n)));
                json_object_set_new(o, "reward_mean", json_real(dp_mean(p->reward, n)));
                json_object_set_new(o, "reward_std", json_real(dp_std(p->reward, n)));
                json_object_set_new(o, "reward_ci95", json_real(ci95(p->reward, n)));
                if (oracle >= 0) json_object_set_new(o, "oracle_share", json_real(share));
                if (basei >= 0 && i != basei) json_object_set_new(o, "study_claim", json_boolean(ok));
                json_array_append_new(jp, o);
            }
            json_object_set_new(js, "policies", jp);
            /* PPO against each heuristic, paired on the same episodes */
            if (ppo_i >= 0) {
                json_t *jg = json_array();
                if (!json) printf("\nPPO (%s) vs each policy, paired on the same episodes (reward difference, 95%% CI):", st[ppo_i].name);
                double *d = calloc((size_t)n, sizeof(double));
                for (int i = 0; d && i < np; i++) {
                    if (i == ppo_i || i == oracle) continue;
                    for (int s = 0; s < n; s++) d[s] = st[ppo_i].reward[s] - st[i].reward[s];
                    double m = dp_mean(d, n), h = ci95(d, n);
                    int pass = m + h >= 0;
                    if (!json) printf(" %s %+.3f ± %.3f (%s);", st[i].name, m, h, pass ? "ok" : "WORSE");
                    json_t *g = json_object();
                    json_object_set_new(g, "vs", json_string(st[i].name));
                    json_object_set_new(g, "diff_mean", json_real(m));
                    json_object_set_new(g, "diff_ci95", json_real(h));
                    json_object_set_new(g, "at_least_as_good", json_boolean(pass));
                    json_array_append_new(jg, g);
                }
                free(d);
                if (oracle >= 0 && !json)
                    printf(" share of oracle %.1f%% (%s 90%%)", 100 * dp_mean(st[ppo_i].reward, n) / omean,
                           dp_mean(st[ppo_i].reward, n) / omean >= 0.9 ? ">=" : "BELOW");
                if (!json) printf("\n");
                json_object_set_new(js, "ppo_vs", jg);
            }
            if (!json) printf("\n");
            json_array_append_new(jscen, js);
        }
    scenario_done:
        for (int i = 0; i < MAX_POLICIES; i++) {
            policy_destroy(pol[i]);
            pol[i] = NULL;
            stats_free(&st[i]);
        }
    }
    double elapsed = dp_time_mono() - t0;
    if (!rc) {
        json_object_set_new(jroot, "scenarios", jscen);
        jscen = NULL;
        json_object_set_new(jroot, "elapsed_s", json_real(elapsed));
        if (json) {
            char *s = json_dumps(jroot, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
            if (s) printf("%s\n", s);
            free(s);
        }
        fprintf(stderr, "simulate: %lld policy-episodes in %.2f s\n", n_episode_runs, elapsed);
    }
    json_decref(jscen);
    json_decref(jroot);
    if (df && fclose(df) != 0 && !rc) rc = cli_fail(cmd, "write %s failed", decisions);
    return rc;
}
