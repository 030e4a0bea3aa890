/* `driftpilot sim <sub>`: the simulator's tools — show-config (print a
 * config with a scenario applied), calibrate (fit measurable parameters),
 * record (a simulated run as a replay CSV), and train-policy (PPO on a mix
 * of scenarios, or on a replay CSV). */
#include "cli.h"
#include "policy.h"
#include "rl.h"
#include "sim.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the discount train-policy uses unless told otherwise */
#define SIM_TRAIN_GAMMA 0.99
#define SIM_TRAIN_ENT_COEF 0.01
/* initial logit bonus of "nothing" (see sub_train_policy) */
#define SIM_TRAIN_PRIOR 4.0

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot sim <subcommand> [options]\n\n"
            "subcommands:\n"
            "  show-config [--config FILE] [--scenario NAME]\n"
            "      print the simulator config (defaults: the study's setup) as JSON\n"
            "  calibrate [--config FILE] [--jobs DIR] [--loadgen FILE.csv] --out FILE\n"
            "  calibrate [--config FILE] --experiment RESULTS_DIR [--time-scale X] --out FILE\n"
            "      fit retrain speed per target and coverage from retrain job records\n"
            "      (DIR/*.json) and distance/service time/capacity per target from a\n"
            "      load-generator CSV (time,target,latency_ms,status,model_version);\n"
            "      or both from a `driftpilot experiment` results directory (its jobs,\n"
            "      job reports, deployments and per-pipeline requests; durations times\n"
            "      the run's time scale, read from its configs unless given);\n"
            "      formats in docs/sim.md\n"
            "  record [--config FILE] [--scenario NAME] [--seed N] [--policy SPEC] --out FILE.csv\n"
            "      write one simulated run as a replay CSV (the study's recorded history)\n"
            "  train-policy --out FILE [--config FILE] [--scenarios a,b,...] [--steps N]\n"
            "               [--envs N] [--seed N] [--gamma X]\n"
            "               [--ent-coef X] [--prior-nothing X] [--runs N] [--checkpoints K]\n"
            "               [--actions targets|pairs] [--replay FILE.csv] [--window N]\n"
            "      (defaults: 2000000 steps, 16 envs, seed 1, 4 runs, 8 checkpoints,\n"
            "      window 5; PPO with 256-step rollouts, minibatch 512, 5 epochs, gamma\n"
            "      0.99, lr 3e-4, entropy 0.01, the initial logit of 'nothing' raised by 4,\n"
            "      observation and reward normalisation)\n"
            "      train PPO on a mix of scenarios (default: all) with episode seeds drawn\n"
            "      from a stream disjoint from simulate's evaluation seeds; --runs N trains\n"
            "      N policies (seeds S..S+N-1), scores each at K checkpoints on validation\n"
            "      episodes (30 per scenario, seeds 2^59+1.., disjoint from both) by its\n"
            "      worst margin over the best heuristic across the scenarios, and keeps\n"
            "      the best (--runs 1 --checkpoints 1: no selection, the last policy);\n"
            "      with --replay, on recorded state vectors instead (paper profile, one\n"
            "      run, no selection)\n");
}

static int sub_show_config(int argc, char **argv) {
    const char *cmd = "sim show-config";
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"scenario", required_argument, 0, 's'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *scenario = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c') config = optarg;
        else if (c == 's') scenario = optarg;
        else return cli_usage_error(cmd, "unknown option");
    }
    SimConfig cfg;
    sim_config_default(&cfg);
    DpError err = {0};
    if (config && sim_config_load(&cfg, config, &err)) return cli_fail(cmd, "%s", err.msg);
    if (scenario && sim_scenario_apply(&cfg, scenario, &err)) return cli_usage_error(cmd, "%s", err.msg);
    char *s = sim_config_to_json(&cfg);
    if (!s) return cli_fail(cmd, "out of memory");
    printf("%s\n", s);
    free(s);
    return 0;
}

static int sub_calibrate(int argc, char **argv) {
    const char *cmd = "sim calibrate";
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"loadgen", required_argument, 0, 'l'},
                                         {"out", required_argument, 0, 'o'},
                                         {"experiment", required_argument, 0, 'x'},
                                         {"time-scale", required_argument, 0, 't'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *jobs = NULL, *loadgen = NULL, *out = NULL, *experiment = NULL;
    double time_scale = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c') config = optarg;
        else if (c == 'j') jobs = optarg;
        else if (c == 'l') loadgen = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 'x') experiment = optarg;
        else if (c == 't') {
            if (!cli_parse_double(cmd, "--time-scale", optarg, 1e-6, 1e6, &time_scale)) return 2;
        } else return cli_usage_error(cmd, "unknown option");
    }
    if (!out) return cli_usage_error(cmd, "--out FILE is required");
    if (experiment && (jobs || loadgen))
        return cli_usage_error(cmd, "--experiment DIR replaces --jobs and --loadgen");
    if (time_scale > 0 && !experiment) return cli_usage_error(cmd, "--time-scale goes with --experiment");
    if (!jobs && !loadgen && !experiment)
        return cli_usage_error(cmd, "give --experiment DIR, or --jobs DIR and/or --loadgen FILE.csv");
    SimConfig cfg;
    sim_config_default(&cfg);
    DpError err = {0};
    if (config && sim_config_load(&cfg, config, &err)) return cli_fail(cmd, "%s", err.msg);
    SimCalibration cal;
    if (experiment ? sim_calibrate_experiment(&cfg, experiment, time_scale, &cal, &err)
                   : sim_calibrate(&cfg, jobs, loadgen, &cal, &err))
        return cli_fail(cmd, "%s", err.msg);
    if (sim_config_save(&cfg, out, &err)) return cli_fail(cmd, "%s", err.msg);
    printf("calibrated from %d job records and %d latency points", cal.n_jobs, cal.n_latency_points);
    if (experiment) printf(" (time scale %g)", cal.time_scale);
    printf("\n");
    printf("coverage %.4f\n", cfg.model.coverage);
    for (int k = 0; k < cfg.n_targets; k++) {
        const SimTarget *t = &cfg.targets[k];
        static const char *how[3] = {" (unchanged)", " (fitted", " (level only: the config's curve scaled to the mean"};
        printf("%-8s speed %.4f%s  distance %.2f ms  service %.2f ms  capacity %.1f req/s%s", t->name,
               t->speed, cal.fitted_speed[k] > 0 ? " (fitted)" : " (unchanged)", t->distance_ms,
               t->service_ms, t->capacity_rps, how[cal.fitted_latency[k]]);
        if (cal.fitted_latency[k]) printf(", rmse %.2f ms)", cal.latency_rmse[k]);
        printf("\n");
    }
    printf("wrote %s\n", out);
    return 0;
}

static int sub_record(int argc, char **argv) {
    const char *cmd = "sim record";
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"scenario", required_argument, 0, 's'},
                                         {"seed", required_argument, 0, 'n'},
                                         {"policy", required_argument, 0, 'p'},
                                         {"out", required_argument, 0, 'o'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *scenario = "gradual", *spec = "static:15m:aws", *out = NULL;
    long long seed = 1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c') config = optarg;
        else if (c == 's') scenario = optarg;
        else if (c == 'n') {
            if (!cli_parse_int(cmd, "--seed", optarg, 0, 1LL << 62, &seed)) return 2;
        } else if (c == 'p') spec = optarg;
        else if (c == 'o') out = optarg;
        else return cli_usage_error(cmd, "unknown option");
    }
    if (!out) return cli_usage_error(cmd, "--out FILE.csv is required");
    SimConfig cfg;
    sim_config_default(&cfg);
    DpError err = {0};
    if (config && sim_config_load(&cfg, config, &err)) return cli_fail(cmd, "%s", err.msg);
    if (sim_scenario_apply(&cfg, scenario, &err)) return cli_usage_error(cmd, "%s", err.msg);
    Policy *p = NULL;
    if (policy_from_spec(spec, &cfg, &p, &err)) return cli_usage_error(cmd, "%s", err.msg);
    SimEpisode ep = {0};
    if (sim_episode_draw(&cfg, (uint64_t)seed, &ep, &err)) {
        policy_destroy(p);
        return cli_fail(cmd, "%s", err.msg);
    }
    DpBuf b = DP_BUF_INIT;
    dp_buf_printf(&b, "time,cpu,memory,request_rate,latency_ms,accuracy,redeploy_count,bleu,f1,action\n");
    if (p->vt->begin_episode && p->vt->begin_episode(p, &cfg, &ep, &err)) {
        policy_destroy(p);
        sim_episode_free(&ep);
        dp_buf_free(&b);
        return cli_fail(cmd, "%s", err.msg);
    }
    policy_reset(p);
    SimRun run;
    sim_run_reset(&run, &cfg, &ep);
    while (!sim_run_done(&run)) {
        SimObservation o;
        sim_run_observe(&run, &o);
        int a = policy_decide(p, &o);
        dp_buf_printf(&b, "%.0f,%.4f,%.4f,%.2f,%.2f,%.4f,%.0f,%.4f,%.4f,%d\n", o.time_s, o.cpu,
                      o.memory, o.request_rate, o.latency_ms, o.accuracy, o.redeploy_count, o.bleu,
                      o.f1, a);
        SimStepInfo info;
        sim_run_step(&run, a, &info);
    }
    DpStatus st = dp_write_file_atomic(out, b.data, b.len, &err);
    dp_buf_free(&b);
    policy_destroy(p);
    sim_episode_free(&ep);
    if (st) return cli_fail(cmd, "%s", err.msg);
    fprintf(stderr, "wrote %s (%d rows, %d retrains)\n", out, run.t, run.n_retrains);
    return 0;
}

/* Validation of candidate policies: episodes from seeds 2^59 + 1.., disjoint
 * from simulate's evaluation seeds (small integers) and from the training
 * stream (2^60 + ...). */
#define SIM_VALID_SEEDS 30
#define SIM_VALID_BASE (1ULL << 59)

typedef struct {
    int n_scen;
    SimConfig cfg[16];
    char name[16][SIM_NAME_MAX];
    double best_heuristic[16]; /* mean reward of the best heuristic per scenario */
    char best_name[16][48];
} SimValidation;

static DpStatus mean_reward(Policy *p, const SimConfig *cfg, double *out, DpError *err) {
    double sum = 0;
    for (int i = 1; i <= SIM_VALID_SEEDS; i++) {
        SimEpisode ep = {0};
        DpStatus st = sim_episode_draw(cfg, SIM_VALID_BASE + (uint64_t)i, &ep, err);
        PolicyEpisodeResult res;
        if (!st) st = policy_run_episode(p, cfg, &ep, &res, NULL, NULL, err);
        sim_episode_free(&ep);
        if (st) return st;
        sum += res.total_reward;
    }
    *out = sum / SIM_VALID_SEEDS;
    return DP_OK;
}

/* The heuristics' validation rewards, per distinct training scenario. */
static DpStatus validation_init(SimValidation *v, const SimRlConfig *rc, DpError *err) {
    static const char *specs[] = {"static:15m:aws", "static:15m:cheapest", "static:60m:cheapest",
                                  "threshold", "ph", "adwin"};
    memset(v, 0, sizeof *v);
    for (int i = 0; i < rc->n_scenarios; i++) {
        int seen = 0;
        for (int j = 0; j < v->n_scen; j++) seen |= !strcmp(v->name[j], rc->scenarios[i]);
        if (seen) continue;
        int k = v->n_scen++;
        snprintf(v->name[k], SIM_NAME_MAX, "%s", rc->scenarios[i]);
        v->cfg[k] = rc->base;
        DpStatus st = sim_scenario_apply(&v->cfg[k], v->name[k], err);
        if (st) return st;
        v->best_heuristic[k] = -INFINITY;
        for (size_t h = 0; h < sizeof specs / sizeof *specs; h++) {
            Policy *p = NULL;
            DpError e2 = {0};
            /* a spec naming a target the config lacks ("aws") is left out */
            if (policy_from_spec(specs[h], &v->cfg[k], &p, &e2)) continue;
            double r = 0;
            st = mean_reward(p, &v->cfg[k], &r, err);
            if (!st && r > v->best_heuristic[k]) {
                v->best_heuristic[k] = r;
                snprintf(v->best_name[k], sizeof v->best_name[k], "%s", p->name);
            }
            policy_destroy(p);
            if (st) return st;
        }
    }
    return DP_OK;
}

/* The smallest margin of the policy in path over the best heuristic across
 * the validation scenarios, and that scenario's index. */
static DpStatus validation_score(const SimValidation *v, const char *path, double *score, int *worst,
                                 DpError *err) {
    *score = INFINITY;
    *worst = 0;
    /* scenarios change traffic, drift and events, not what the policy reads
     * or does, so one load serves them all */
    Policy *p = NULL;
    DpStatus st = policy_ppo_create(path, &v->cfg[0], &p, err);
    for (int k = 0; !st && k < v->n_scen; k++) {
        double r = 0;
        st = mean_reward(p, &v->cfg[k], &r, err);
        double m = r - v->best_heuristic[k];
        if (!st && m < *score) *score = m, *worst = k;
    }
    policy_destroy(p);
    return st;
}

/* Training progress, and with selection the checkpoints: every `every`
 * steps (and at the end of a run) the current policy is written to cand and
 * scored on validation; the best so far across runs and checkpoints is kept
 * in best (renamed from cand), as SB3's EvalCallback keeps its best model. */
typedef struct {
    DpProgress prog;
    const Ppo *ppo;
    const SimValidation *val; /* NULL: no selection */
    long long every, next, total;
    int run;
    const char *cand, *best;
    double best_score;
    int best_run;
    long long best_steps;
    int have_best, n_scored;
    double run_best;          /* this run's best checkpoint */
    long long run_best_steps;
    int run_worst;            /* its worst scenario */
    DpStatus st;
    DpError err;
} TrainCb;

static void train_consider(TrainCb *t, long long steps_done) {
    if (t->st) return;
    t->st = ppo_policy_save(ppo_policy(t->ppo), t->cand, &t->err);
    double score = 0;
    int worst = 0;
    if (!t->st) t->st = validation_score(t->val, t->cand, &score, &worst, &t->err);
    if (t->st) return;
    t->n_scored++;
    if (score > t->run_best) t->run_best = score, t->run_best_steps = steps_done, t->run_worst = worst;
    if (!t->have_best || score > t->best_score) {
        if (rename(t->cand, t->best) != 0) {
            t->st = dp_fail(&t->err, DP_ERR_IO, "rename %s -> %s: %s", t->cand, t->best, strerror(errno));
            return;
        }
        t->have_best = 1;
        t->best_score = score;
        t->best_run = t->run;
        t->best_steps = steps_done;
        dp_info("train-policy: run %d at %lld steps: worst validation margin %+.4f (%s, vs %s): "
                "best so far", t->run, steps_done, score, t->val->name[worst], t->val->best_name[worst]);
    }
}

static int train_progress(const PpoIterInfo *info, void *user) {
    TrainCb *t = user;
    char extra[160];
    snprintf(extra, sizeof extra, "return %.3f  kl %.4f  ev %.2f", info->mean_return, info->approx_kl,
             info->explained_variance);
    dp_progress_update(&t->prog, (double)info->steps_done, extra);
    if (t->val && (info->steps_done >= t->next || info->steps_done >= t->total)) {
        train_consider(t, info->steps_done);
        while (t->next <= info->steps_done) t->next += t->every;
        if (t->st) return 1; /* stop: the error is reported after ppo_train */
    }
    return 0;
}

static int sub_train_policy(int argc, char **argv) {
    const char *cmd = "sim train-policy";
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"scenarios", required_argument, 0, 's'},
        {"steps", required_argument, 0, 'n'},  {"envs", required_argument, 0, 'e'},
        {"seed", required_argument, 0, 'r'},   {"out", required_argument, 0, 'o'},
        {"replay", required_argument, 0, 'R'}, {"window", required_argument, 0, 'w'},
        {"gamma", required_argument, 0, 'g'},  {"ent-coef", required_argument, 0, 'E'},
        {"runs", required_argument, 0, 'N'},   {"checkpoints", required_argument, 0, 'K'},
        {"prior-nothing", required_argument, 0, 'P'}, {"actions", required_argument, 0, 'A'},
        {0, 0, 0, 0}};
    const char *config = NULL, *scenarios = NULL, *out = NULL, *replay = NULL, *actions = NULL;
    long long steps = 2000000, envs = 16, seed = 1, window = 5, runs = -1, checkpoints = -1;
    double gamma = SIM_TRAIN_GAMMA, ent_coef = SIM_TRAIN_ENT_COEF, prior = SIM_TRAIN_PRIOR;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's': scenarios = optarg; break;
        case 'n':
            if (!cli_parse_int(cmd, "--steps", optarg, 1000, 1LL << 40, &steps)) return 2;
            break;
        case 'e':
            if (!cli_parse_int(cmd, "--envs", optarg, 1, 1024, &envs)) return 2;
            break;
        case 'r':
            if (!cli_parse_int(cmd, "--seed", optarg, 0, 1LL << 62, &seed)) return 2;
            break;
        case 'o': out = optarg; break;
        case 'R': replay = optarg; break;
        case 'w':
            if (!cli_parse_int(cmd, "--window", optarg, 1, 10000, &window)) return 2;
            break;
        case 'g':
            if (!cli_parse_double(cmd, "--gamma", optarg, 0, 1, &gamma)) return 2;
            if (gamma >= 1) return cli_usage_error(cmd, "--gamma must be below 1");
            break;
        case 'E':
            if (!cli_parse_double(cmd, "--ent-coef", optarg, 0, 10, &ent_coef)) return 2;
            break;
        case 'N':
            if (!cli_parse_int(cmd, "--runs", optarg, 1, 64, &runs)) return 2;
            break;
        case 'K':
            if (!cli_parse_int(cmd, "--checkpoints", optarg, 1, 1000, &checkpoints)) return 2;
            break;
        case 'P':
            if (!cli_parse_double(cmd, "--prior-nothing", optarg, 0, 20, &prior)) return 2;
            break;
        case 'A': actions = optarg; break;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (!out) return cli_usage_error(cmd, "--out FILE is required");
    if (replay && (runs > 1 || checkpoints > 1))
        return cli_usage_error(cmd, "--runs and --checkpoints select on simulated episodes; a "
                               "--replay policy learns from the recording alone (one run)");
    if (runs < 0) runs = replay ? 1 : 4;
    if (checkpoints < 0) checkpoints = replay ? 1 : 8;
    DpError err = {0};
    SimRlConfig rc;
    memset(&rc, 0, sizeof rc);
    sim_config_default(&rc.base);
    if (config && sim_config_load(&rc.base, config, &err)) return cli_fail(cmd, "%s", err.msg);
    if (actions && sim_action_set_parse(actions, &rc.base.action_set, &err))
        return cli_usage_error(cmd, "--actions: %s", err.msg);
    if (scenarios) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", scenarios);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (rc.n_scenarios == 16) return cli_usage_error(cmd, "too many scenarios");
            SimConfig tmp = rc.base;
            if (sim_scenario_apply(&tmp, t, &err)) return cli_usage_error(cmd, "%s", err.msg);
            snprintf(rc.scenarios[rc.n_scenarios++], SIM_NAME_MAX, "%s", t);
        }
    } else {
        for (int i = 0; i < sim_scenario_count(); i++)
            snprintf(rc.scenarios[rc.n_scenarios++], SIM_NAME_MAX, "%s", sim_scenario_name(i));
    }
    /* evaluation seeds are small integers; training episodes draw 56-bit
     * seeds offset by 2^60, so the two never meet */
    rc.seed_offset = 1ULL << 60;
    rc.reward_scale = 1;
    if (sim_rl_register(&err)) return cli_fail(cmd, "%s", err.msg);
    SimReplay rp;
    memset(&rp, 0, sizeof rp);
    SimValidation *val = NULL;
    char tmp[4096] = "", best_tmp[4096] = "";
    int rcode = 0;
    if (replay && sim_replay_load(&rp, replay, (int)window, 0, &rc.base, &err)) {
        rcode = cli_fail(cmd, "%s", err.msg);
        goto out;
    }
    if (runs > 1 || checkpoints > 1) {
        val = dp_calloc(1, sizeof *val);
        if (!val) {
            rcode = cli_fail(cmd, "out of memory");
            goto out;
        }
        if (validation_init(val, &rc, &err)) {
            rcode = cli_fail(cmd, "validation: %s", err.msg);
            goto out;
        }
    }
    double t_all = dp_time_mono();
    /* with selection, candidates are written next to out and only the kept
     * one is renamed onto it, so an interrupted run never leaves a partial out */
    snprintf(tmp, sizeof tmp, "%s.candidate.tmp", out);
    snprintf(best_tmp, sizeof best_tmp, "%s.best.tmp", out);
    TrainCb cb;
    memset(&cb, 0, sizeof cb);
    cb.val = val;
    cb.cand = tmp;
    cb.best = best_tmp;
    cb.total = steps;
    cb.every = steps / checkpoints > 0 ? steps / checkpoints : steps;
    for (long long run = 0; run < runs; run++) {
        uint64_t rseed = (uint64_t)(seed + run);
        RlEnv *env = NULL;
        Ppo *ppo = NULL;
        DpStatus st = replay ? rl_env_create("retrain-replay", (int)envs, rseed, &rp, &env, &err)
                             : rl_env_create("retrain-sim", (int)envs, rseed, &rc, &env, &err);
        PpoConfig pc;
        ppo_config_default(&pc);
        pc.n_steps = 256;
        pc.batch_size = 512;
        pc.n_epochs = 5;
        pc.gamma = gamma;
        pc.learning_rate = 3e-4;
        pc.ent_coef = ent_coef;
        pc.normalize_obs = 1;
        pc.normalize_reward = 1;
        pc.seed = rseed;
        /* "nothing" starts likely: with 1 + K^2 actions of which K^2 retrain,
         * a near-uniform head in states seldom seen (a load spike) would
         * otherwise retrain by argmax */
        pc.prior_action = 0;
        pc.prior_logit = prior;
        if (!st) st = ppo_create(&pc, env->obs_dim, env->n_actions, &ppo, &err);
        char label[64];
        if (runs > 1) snprintf(label, sizeof label, "train-policy %lld/%lld", run + 1, runs);
        else snprintf(label, sizeof label, "train-policy");
        dp_progress_init(&cb.prog, label, (double)steps, "steps");
        cb.ppo = ppo;
        cb.run = (int)run + 1;
        cb.next = cb.every;
        cb.run_best = -INFINITY;
        double t0 = dp_time_mono();
        if (!st) st = ppo_train(ppo, env, steps, train_progress, &cb, &err);
        if (!st && cb.st) {
            st = cb.st;
            err = cb.err;
        }
        if (!st) dp_progress_finish(&cb.prog, NULL);
        if (!st && !val) st = ppo_policy_save(ppo_policy(ppo), out, &err);
        ppo_free(ppo);
        rl_env_destroy(env);
        if (st) {
            rcode = cli_fail(cmd, "%s", err.msg);
            goto out;
        }
        double secs = dp_time_mono() - t0;
        if (!val) {
            fprintf(stderr, "trained %lld steps on %s in %.1f s; wrote %s\n", steps,
                    replay ? "the replay" : "the simulator", secs, out);
            goto out;
        }
        fprintf(stderr, "run %lld/%lld (seed %llu, %.1f s): worst margin over the best heuristic "
                "%+.4f (%s, vs %s) at its best checkpoint, %lld steps\n", run + 1, runs,
                (unsigned long long)rseed, secs, cb.run_best, val->name[cb.run_worst],
                val->best_name[cb.run_worst], cb.run_best_steps);
    }
    unlink(tmp);
    if (rename(best_tmp, out) != 0) {
        rcode = cli_fail(cmd, "rename %s -> %s: %s", best_tmp, out, strerror(errno));
        goto out;
    }
    fprintf(stderr, "trained %lld runs of %lld steps on the simulator in %.1f s, %d checkpoints "
            "scored; kept run %d (seed %lld) at %lld steps (worst validation margin %+.4f); wrote %s\n",
            runs, steps, dp_time_mono() - t_all, cb.n_scored, cb.best_run, seed + cb.best_run - 1,
            cb.best_steps, cb.best_score, out);
out:
    if (val) {
        unlink(tmp);
        unlink(best_tmp);
    }
    free(val);
    sim_replay_free(&rp);
    return rcode;
}

int cmd_sim(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (cli_wants_help(argc - 1, argv + 1)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(sub, "show-config")) return sub_show_config(argc - 1, argv + 1);
    if (!strcmp(sub, "calibrate")) return sub_calibrate(argc - 1, argv + 1);
    if (!strcmp(sub, "record")) return sub_record(argc - 1, argv + 1);
    if (!strcmp(sub, "train-policy")) return sub_train_policy(argc - 1, argv + 1);
    return cli_usage_error("sim", "unknown subcommand '%s' (show-config, calibrate, record, train-policy)", sub);
}
