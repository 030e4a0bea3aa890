/* Tests of src/policy: the heuristics on scripted observation streams,
 * Page-Hinkley and ADWIN against detection indices computed with a direct
 * Python transcription of River's code, and the oracle against brute force
 * on short episodes. */
#include "policy.h"
#include "rl.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static SimObservation obs_at(double t_s, double acc) {
    SimObservation o;
    memset(&o, 0, sizeof o);
    o.time_s = t_s;
    o.accuracy = acc;
    o.bleu = acc;
    o.n_targets = 2;
    o.price[0] = 0.045;
    o.price[1] = 0.038;
    o.up[0] = o.up[1] = 1;
    return o;
}

// ---- detectors ----

static double ph_stream(int i) { return (i < 200 ? 0.5 : 0.2) + 0.05 * (((i * 7) % 5) - 2) / 2.0; }
static double ad_stream(int i) { return (i % 10 < 5 ? 0.3 : 0.5) + (i >= 500 ? 0.3 : 0); }

static void test_page_hinkley(void) {
    PageHinkley ph;
    page_hinkley_init(&ph, 30, 0.005, 1.0, 1 - 0.0001, PH_MODE_DOWN);
    int first = -1, count = 0;
    for (int i = 0; i < 400; i++)
        if (page_hinkley_update(&ph, ph_stream(i))) {
            if (first < 0) first = i;
            count++;
        }
    EXPECT_EQ_INT(first, 203); /* River's algorithm gives 203 on this stream */
    EXPECT_EQ_INT(count, 1);
    page_hinkley_init(&ph, 30, 0.005, 1.0, 1 - 0.0001, PH_MODE_UP);
    count = 0;
    for (int i = 0; i < 400; i++) count += page_hinkley_update(&ph, ph_stream(i));
    EXPECT_EQ_INT(count, 0); /* a fall is not an increase */
    page_hinkley_init(&ph, 30, 0.005, 1.0, 1 - 0.0001, PH_MODE_BOTH);
    first = -1;
    for (int i = 0; i < 400 && first < 0; i++)
        if (page_hinkley_update(&ph, 1 - ph_stream(i))) first = i;
    EXPECT_EQ_INT(first, 203);
    /* nothing before min_instances even on a wild stream */
    page_hinkley_init(&ph, 30, 0.005, 0.01, 1 - 0.0001, PH_MODE_BOTH);
    for (int i = 0; i < 29; i++) EXPECT(!page_hinkley_update(&ph, i % 2 ? 10 : -10));
}

static void test_adwin(void) {
    int want32[4] = {575, 607, 639, 671}, want1[7] = {561, 567, 571, 588, 598, 635, 667};
    Adwin *a = malloc(sizeof *a);
    REQUIRE(a);
    adwin_init(a, 0.002, 32, 5, 5, 10);
    int got[16], n = 0;
    for (int i = 0; i < 1000; i++)
        if (adwin_update(a, ad_stream(i)) && n < 16) got[n++] = i;
    EXPECT_EQ_INT(n, 4);
    for (int i = 0; i < 4 && i < n; i++) EXPECT_EQ_INT(got[i], want32[i]);
    EXPECT_NEAR(a->width, 520, 0);
    EXPECT_NEAR(a->total, 358, 1e-9);
    adwin_init(a, 0.002, 1, 5, 5, 10);
    n = 0;
    for (int i = 0; i < 1000; i++)
        if (adwin_update(a, ad_stream(i)) && n < 16) got[n++] = i;
    EXPECT_EQ_INT(n, 7);
    for (int i = 0; i < 7 && i < n; i++) EXPECT_EQ_INT(got[i], want1[i]);
    EXPECT_NEAR(a->width, 520, 0);
    /* no change, no detection; the window keeps everything */
    adwin_init(a, 0.002, 1, 5, 5, 10);
    n = 0;
    for (int i = 0; i < 2000; i++) n += adwin_update(a, 0.5 + 0.1 * (i % 2));
    EXPECT_EQ_INT(n, 0);
    EXPECT_NEAR(a->width, 2000, 0);
    EXPECT_NEAR(adwin_mean(a), 0.55, 1e-9);
    free(a);
}

// ---- heuristics on scripted streams ----

static void test_static(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    DpError err = {0};
    Policy *p = NULL;
    REQUIRE(policy_from_spec("static:15m:aws", &cfg, &p, &err) == DP_OK);
    policy_reset(p);
    int n = 0;
    for (int t = 0; t < 240; t++) {
        SimObservation o = obs_at(t * 60, 0.8);
        int a = policy_decide(p, &o);
        if (a) {
            EXPECT_EQ_INT(a, 1);
            EXPECT_EQ_INT(t % 15, 0);
            n++;
        }
    }
    EXPECT_EQ_INT(n, 16); /* the study's 16 retrains in 4 hours */
    policy_destroy(p);
    REQUIRE(policy_from_spec("static:15m:round-robin", &cfg, &p, &err) == DP_OK);
    policy_reset(p);
    int seq[4] = {0}, k = 0;
    for (int t = 0; t < 60; t++) {
        SimObservation o = obs_at(t * 60, 0.8);
        int a = policy_decide(p, &o);
        if (a && k < 4) seq[k++] = a;
    }
    EXPECT(seq[0] == 1 && seq[1] == 2 && seq[2] == 1 && seq[3] == 2);
    policy_destroy(p);
    REQUIRE(policy_from_spec("static:30m:cheapest", &cfg, &p, &err) == DP_OK);
    policy_reset(p);
    SimObservation o = obs_at(0, 0.8);
    EXPECT_EQ_INT(policy_decide(p, &o), 2); /* azure is cheaper */
    o = obs_at(1800, 0.8);
    o.price[1] = 0.152;
    EXPECT_EQ_INT(policy_decide(p, &o), 1); /* after the price change aws is */
    o = obs_at(3600, 0.8);
    o.job_running = 1;
    EXPECT_EQ_INT(policy_decide(p, &o), 0); /* never while a job runs */
    o.job_running = 0;
    o.time_s = 3660;
    o.up[1] = 0;
    EXPECT_EQ_INT(policy_decide(p, &o), 1); /* cheapest reachable */
    policy_destroy(p);
    EXPECT(policy_from_spec("static:15m:gcp", &cfg, &p, &err) != DP_OK);
    EXPECT(policy_from_spec("bogus", &cfg, &p, &err) != DP_OK);
    /* with the pairs action set a heuristic trains where it chose and keeps
     * serving where it serves (elsewhere only if that target is down) */
    cfg.action_set = SIM_ACTIONS_PAIRS;
    REQUIRE(policy_from_spec("static:30m:cheapest", &cfg, &p, &err) == DP_OK);
    policy_reset(p);
    o = obs_at(0, 0.8);
    o.serving_target = 0;
    EXPECT_EQ_INT(policy_decide(p, &o), 1 + 1 * 2 + 0); /* train on azure, serve on aws */
    o = obs_at(1800, 0.8);
    o.serving_target = 1;
    EXPECT_EQ_INT(policy_decide(p, &o), 1 + 1 * 2 + 1); /* train on azure, serve on azure */
    o = obs_at(3600, 0.8);
    o.serving_target = 0;
    o.up[0] = 0;
    EXPECT_EQ_INT(policy_decide(p, &o), 1 + 1 * 2 + 1); /* aws down: serve where it trained */
    policy_destroy(p);
}

static void test_threshold(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    PolicyThresholdConfig c;
    policy_threshold_defaults(&c);
    c.accuracy_level = 0.7;
    c.cooldown_s = 600;
    c.smooth = 1;
    Policy *p = NULL;
    DpError err = {0};
    REQUIRE(policy_threshold_create(&c, &cfg, &p, &err) == DP_OK);
    policy_reset(p);
    int fired[64], n = 0;
    for (int t = 0; t < 40; t++) {
        SimObservation o = obs_at(t * 60, t < 10 ? 0.8 : 0.6);
        if (t == 25) o.job_running = 1;
        if (policy_decide(p, &o)) fired[n++] = t;
    }
    /* first low reading at 10, then every 10 minutes (cooldown), except when busy */
    EXPECT_EQ_INT(n, 3);
    EXPECT_EQ_INT(fired[0], 10);
    EXPECT_EQ_INT(fired[1], 20);
    EXPECT_EQ_INT(fired[2], 30);
    policy_destroy(p);
    /* smoothing: a single low reading among high ones does not fire */
    c.smooth = 5;
    REQUIRE(policy_threshold_create(&c, &cfg, &p, &err) == DP_OK);
    policy_reset(p);
    n = 0;
    for (int t = 0; t < 20; t++) {
        SimObservation o = obs_at(t * 60, t == 10 ? 0.5 : 0.8);
        n += policy_decide(p, &o) != 0;
    }
    EXPECT_EQ_INT(n, 0);
    policy_destroy(p);
}

static void test_drift_policy(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    PolicyDriftConfig c;
    policy_drift_defaults(&c, POLICY_DETECTOR_PH);
    c.ph_min_instances = 30;
    c.ph_threshold = 1.0;
    Policy *p = NULL;
    DpError err = {0};
    REQUIRE(policy_drift_create(&c, &cfg, &p, &err) == DP_OK);
    policy_reset(p);
    int first = -1;
    for (int t = 0; t < 400 && first < 0; t++) {
        SimObservation o = obs_at(t * 60, ph_stream(t));
        if (policy_decide(p, &o)) first = t;
    }
    EXPECT_EQ_INT(first, 203); /* the detector's index */
    policy_destroy(p);
    policy_drift_defaults(&c, POLICY_DETECTOR_ADWIN);
    REQUIRE(policy_drift_create(&c, &cfg, &p, &err) == DP_OK);
    policy_reset(p);
    first = -1;
    int rises = 0;
    for (int t = 0; t < 1000 && first < 0; t++) {
        SimObservation o = obs_at(t * 60, 1 - ad_stream(t)); /* quality falls at 500 */
        if (policy_decide(p, &o)) first = t;
    }
    EXPECT_EQ_INT(first, 561);
    policy_reset(p);
    for (int t = 0; t < 1000; t++) {
        SimObservation o = obs_at(t * 60, ad_stream(t)); /* quality rises: no retrain */
        rises += policy_decide(p, &o) != 0;
    }
    EXPECT_EQ_INT(rises, 0);
    policy_destroy(p);
}

// ---- oracle ----

/* Best total reward over every action sequence, by exhaustive search. */
static double brute_force(const SimConfig *cfg, const SimEpisode *ep, int *best_seq) {
    int T = ep->n_steps, A = sim_action_count(cfg->action_set, cfg->n_targets);
    long total = 1;
    for (int t = 0; t < T; t++) total *= A;
    double best = -INFINITY;
    int *seq = calloc((size_t)T, sizeof(int));
    for (long code = 0; code < total; code++) {
        long c = code;
        for (int t = 0; t < T; t++) seq[t] = (int)(c % A), c /= A;
        SimRun run;
        sim_run_reset(&run, cfg, ep);
        SimStepInfo info;
        for (int t = 0; t < T; t++) sim_run_step(&run, seq[t], &info);
        if (run.total_reward > best) {
            best = run.total_reward;
            if (best_seq) memcpy(best_seq, seq, sizeof(int) * T);
        }
    }
    free(seq);
    return best;
}

/* The oracle against exhaustive search: 16 short episodes with the study's
 * action set (3^8 sequences each) and 8 with the pairs set (5^7 each). */
static void test_oracle_brute_force(void) {
    const char *scenarios[4] = {"gradual", "outage", "price-change", "sudden"};
    for (int pairs = 0; pairs < 2; pairs++)
        for (int sc = 0; sc < 4; sc++)
            for (uint64_t seed = 1; seed <= (pairs ? 2u : 4u); seed++) {
                SimConfig cfg;
                sim_config_default(&cfg);
                DpError err = {0};
                REQUIRE(sim_scenario_apply(&cfg, scenarios[sc], &err) == DP_OK);
                int T = pairs ? 7 : 8;
                cfg.action_set = pairs ? SIM_ACTIONS_PAIRS : SIM_ACTIONS_TARGETS;
                /* decisions of 10 minutes; jobs of 1-3 steps; strong drift */
                cfg.interval_s = 600;
                cfg.duration_s = T * 600;
                cfg.model.gpu_hours = 0.25;
                cfg.drift.rate_per_hour = 1.0;
                cfg.drift.background_per_hour = 0.3;
                cfg.drift.sudden_lo_s = 600;
                cfg.drift.sudden_hi_s = 3000;
                cfg.outage_lo_s = 600;
                cfg.outage_hi_s = 2400;
                cfg.outage_len_s = 1500;
                cfg.price_change_at_s = 2400;
                cfg.reward.quality_unit_s = 600 * (1 + (double)seed); /* vary the trade-off */
                cfg.reward.slo_ms = 120;
                SimEpisode ep = {0};
                REQUIRE(sim_episode_draw(&cfg, seed, &ep, &err) == DP_OK);
                int plan[8], bf_seq[8];
                double v = 0;
                REQUIRE(policy_oracle_plan(&cfg, &ep, plan, &v, &err) == DP_OK);
                double bf = brute_force(&cfg, &ep, bf_seq);
                EXPECT_MSG(fabs(v - bf) < 1e-9, "%s %s seed %d: dp %.12f brute %.12f",
                           pairs ? "pairs" : "targets", scenarios[sc], (int)seed, v, bf);
                /* the plan achieves its value in the simulator */
                SimRun run;
                sim_run_reset(&run, &cfg, &ep);
                SimStepInfo info;
                for (int t = 0; t < T; t++) sim_run_step(&run, plan[t], &info);
                EXPECT_NEAR(run.total_reward, v, 1e-9);
                sim_episode_free(&ep);
            }
}

static void test_oracle_beats_heuristics(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    DpError err = {0};
    const char *specs[5] = {"static:15m:aws", "static:60m:cheapest", "threshold", "ph", "adwin"};
    Policy *oracle = NULL;
    REQUIRE(policy_oracle_create(&cfg, &oracle, &err) == DP_OK);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        SimEpisode ep = {0};
        REQUIRE(sim_episode_draw(&cfg, seed, &ep, &err) == DP_OK);
        PolicyEpisodeResult ro, r;
        REQUIRE(policy_run_episode(oracle, &cfg, &ep, &ro, NULL, NULL, &err) == DP_OK);
        EXPECT_NEAR(ro.total_reward, policy_oracle_value(oracle), 1e-9);
        for (int i = 0; i < 5; i++) {
            Policy *p = NULL;
            REQUIRE(policy_from_spec(specs[i], &cfg, &p, &err) == DP_OK);
            REQUIRE(policy_run_episode(p, &cfg, &ep, &r, NULL, NULL, &err) == DP_OK);
            EXPECT_MSG(ro.total_reward >= r.total_reward - 1e-9, "%s beats the oracle", specs[i]);
            policy_destroy(p);
        }
        sim_episode_free(&ep);
    }
    policy_destroy(oracle);
    /* the static 15-minute schedule on the simulator: 16 retrains */
    Policy *p = NULL;
    SimEpisode ep = {0};
    REQUIRE(sim_episode_draw(&cfg, 11, &ep, &err) == DP_OK);
    REQUIRE(policy_from_spec("static:15m:aws", &cfg, &p, &err) == DP_OK);
    PolicyEpisodeResult r;
    REQUIRE(policy_run_episode(p, &cfg, &ep, &r, NULL, NULL, &err) == DP_OK);
    EXPECT_EQ_INT(r.n_retrains, 16);
    EXPECT_NEAR(r.total_cost, 16 * 0.045, 1e-9);
    policy_destroy(p);
    sim_episode_free(&ep);
}

// ---- PPO ----

/* A small PPO run on the gradual-drift simulator beats retraining every 15
 * minutes on episodes it never saw (evaluation seeds 1..8; training seeds
 * come from the env's own streams offset by 2^60). */
static void test_ppo_beats_static(void) {
    DpError err = {0};
    REQUIRE(sim_rl_register(&err) == DP_OK);
    SimRlConfig rc;
    memset(&rc, 0, sizeof rc);
    sim_config_default(&rc.base);
    rc.n_scenarios = 1;
    snprintf(rc.scenarios[0], SIM_NAME_MAX, "gradual");
    rc.seed_offset = 1ULL << 60;
    RlEnv *env = NULL;
    REQUIRE(rl_env_create("retrain-sim", 8, 5, &rc, &env, &err) == DP_OK);
    EXPECT_EQ_INT(env->obs_dim, 16);
    EXPECT_EQ_INT(env->n_actions, 3);
    PpoConfig pc;
    ppo_config_default(&pc);
    pc.n_steps = 256;
    pc.batch_size = 512;
    pc.n_epochs = 5;
    pc.ent_coef = 0.01;
    pc.normalize_obs = 1;
    pc.normalize_reward = 1;
    pc.seed = 5;
    Ppo *ppo = NULL;
    REQUIRE(ppo_create(&pc, env->obs_dim, env->n_actions, &ppo, &err) == DP_OK);
    EXPECT_EQ_INT(ppo_train(ppo, env, 120000, NULL, NULL, &err), DP_OK);
    char path[] = "test_policy_ppo.bin";
    EXPECT_EQ_INT(ppo_policy_save(ppo_policy(ppo), path, &err), DP_OK);
    ppo_free(ppo);
    rl_env_destroy(env);
    SimConfig cfg = rc.base;
    REQUIRE(sim_scenario_apply(&cfg, "gradual", &err) == DP_OK);
    Policy *pp = NULL, *st = NULL;
    REQUIRE(policy_ppo_create(path, &cfg, &pp, &err) == DP_OK);
    REQUIRE(policy_from_spec("static:15m:aws", &cfg, &st, &err) == DP_OK);
    double rp = 0, rs = 0, rn = 0, retr_p = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        SimEpisode ep = {0};
        REQUIRE(sim_episode_draw(&cfg, seed, &ep, &err) == DP_OK);
        PolicyEpisodeResult a, b;
        REQUIRE(policy_run_episode(pp, &cfg, &ep, &a, NULL, NULL, &err) == DP_OK);
        REQUIRE(policy_run_episode(st, &cfg, &ep, &b, NULL, NULL, &err) == DP_OK);
        rp += a.total_reward;
        rs += b.total_reward;
        SimRun idle;
        SimStepInfo info;
        sim_run_reset(&idle, &cfg, &ep);
        while (!sim_run_done(&idle)) sim_run_step(&idle, 0, &info);
        rn += idle.total_reward;
        retr_p += a.n_retrains;
        sim_episode_free(&ep);
    }
    EXPECT_MSG(rp > rs, "ppo %.3f vs static %.3f", rp / 8, rs / 8);
    fprintf(stderr, "  ppo %.3f (%.1f retrains) vs static-15m %.3f, never %.3f per episode\n", rp / 8,
            retr_p / 8, rs / 8, rn / 8);
    EXPECT(retr_p / 8 < 16); /* it learned not to retrain every 15 minutes */
    /* ... and to retrain at all: better than never retraining */
    EXPECT_MSG(rp > rn, "ppo %.3f vs never retraining %.3f", rp / 8, rn / 8);
    /* a policy file for other dimensions is refused with a message */
    SimConfig other = cfg;
    other.n_targets = 3;
    other.targets[2] = other.targets[1];
    snprintf(other.targets[2].name, SIM_NAME_MAX, "gcp");
    Policy *bad = NULL;
    EXPECT(policy_ppo_create(path, &other, &bad, &err) != DP_OK);
    EXPECT(strstr(err.msg, "state floats") != NULL);
    policy_destroy(pp);
    policy_destroy(st);
    remove(path);
}

// ---- the CLI, when the binary is built ----

static void test_simulate_cli(void) {
    REQUIRE_BINARY(DP_BINARY);
    FILE *p = popen(DP_BINARY " simulate --scenario gradual --seeds 3 --json 2>/dev/null", "r");
    REQUIRE(p);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    int rc = pclose(p);
    EXPECT_EQ_INT(rc, 0);
    EXPECT(strstr(buf, "\"scenario\": \"gradual\"") != NULL);
    EXPECT(strstr(buf, "\"policy\": \"oracle\"") != NULL);
    EXPECT(strstr(buf, "\"oracle_share\": 1.0") != NULL);
    EXPECT(system(DP_BINARY " simulate --scenario tornado >/dev/null 2>&1") != 0);
    /* training options are range-checked before any work starts (exit 2) */
    int st = system(DP_BINARY " sim train-policy --out /dev/null --gamma 1 >/dev/null 2>&1");
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    st = system(DP_BINARY " sim train-policy --out /dev/null --ent-coef -1 >/dev/null 2>&1");
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    st = system(DP_BINARY " sim train-policy --out /dev/null --runs 2 --replay x.csv >/dev/null 2>&1");
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    st = system(DP_BINARY " sim train-policy --out /dev/null --checkpoints 0 >/dev/null 2>&1");
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    /* selection: two short runs, each scored at 2 checkpoints on validation
     * episodes, the best of the 4 renamed onto --out and nothing else left */
    char dir[] = "/tmp/dp_test_select_XXXXXX";
    REQUIRE(mkdtemp(dir));
    char cmd[1024], path[256];
    snprintf(cmd, sizeof cmd,
             DP_BINARY " sim train-policy --config " DP_SOURCE_DIR "/configs/sim/pairs.json"
             " --scenarios steady,gradual --steps 4096 --envs 4 --runs 2 --checkpoints 2 --out %s/p.bin 2>%s/log",
             dir, dir);
    EXPECT_EQ_INT(system(cmd), 0);
    snprintf(path, sizeof path, "%s/p.bin", dir);
    EXPECT(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/p.bin.candidate.tmp", dir);
    EXPECT(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/p.bin.best.tmp", dir);
    EXPECT(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/log", dir);
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    EXPECT(strstr(buf, "run 2/2 (seed 2") != NULL);
    EXPECT(strstr(buf, "worst margin over the best heuristic") != NULL);
    EXPECT(strstr(buf, "kept run ") != NULL);
    EXPECT(strstr(buf, "4 checkpoints scored") != NULL);
    /* the kept policy acts in the pairs action set */
    snprintf(cmd, sizeof cmd,
             DP_BINARY " simulate --config " DP_SOURCE_DIR "/configs/sim/pairs.json --scenario steady"
             " --seeds 2 --ppo %s/p.bin --json >/dev/null 2>&1", dir);
    EXPECT_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    EXPECT_EQ_INT(system(cmd), 0);
}

TEST_MAIN(TEST_CASE(test_page_hinkley), TEST_CASE(test_adwin), TEST_CASE(test_static),
          TEST_CASE(test_threshold), TEST_CASE(test_drift_policy),
          TEST_CASE(test_oracle_brute_force), TEST_CASE(test_oracle_beats_heuristics),
          TEST_CASE(test_ppo_beats_static), TEST_CASE(test_simulate_cli))
