/* Tests of src/sim: the state / action / reward definitions against
 * hand-computed cases, the simulator's invariants, config JSON, replay, and
 * calibration on small synthetic files. */
#include "sim.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static SimObservation sample_obs(void) {
    SimObservation o;
    memset(&o, 0, sizeof o);
    o.cpu = 0.5;
    o.memory = 0.4;
    o.request_rate = 200;
    o.latency_ms = 122;
    o.accuracy = 0.7;
    o.bleu = 0.78;
    o.f1 = 0.8;
    o.redeploy_count = 4;
    o.since_retrain_s = 1800;
    o.queue = 2.5;
    o.job_running = 1;
    o.accuracy_mean = 0.72;
    o.n_targets = 2;
    o.price[0] = 0.045;
    o.price[1] = 0.038;
    o.up[0] = 1;
    o.up[1] = 0;
    return o;
}

static void test_state_vector(void) {
    SimObservation o = sample_obs();
    float s[SIM_STATE_MAX];
    EXPECT_EQ_INT(sim_state_dim(SIM_PROFILE_PAPER, 2), 6);
    EXPECT_EQ_INT(sim_state_dim(SIM_PROFILE_EXTENDED, 2), 16);
    EXPECT_EQ_INT(sim_state_dim(SIM_PROFILE_EXTENDED, 3), 18);
    EXPECT_EQ_INT(sim_state_dim(SIM_PROFILE_EXTENDED, SIM_MAX_TARGETS), SIM_STATE_MAX);
    sim_state_build(SIM_PROFILE_PAPER, &o, s);
    float want[6] = {0.5f, 0.4f, 0.2f, 0.122f, 0.7f, 0.4f};
    for (int i = 0; i < 6; i++) EXPECT_NEAR(s[i], want[i], 1e-6);
    sim_state_build(SIM_PROFILE_EXTENDED, &o, s);
    float want2[16] = {0.5f, 0.4f, 0.2f, 0.122f, 0.7f, 0.4f, 0.78f, 0.8f, 0.5f, 0.25f, 1,
                       0.72f, 0.45f, 0.38f, 1, 0};
    for (int i = 0; i < 16; i++) EXPECT_NEAR(s[i], want2[i], 1e-6);
    char buf[32];
    EXPECT_STREQ(sim_state_feature_name(SIM_PROFILE_EXTENDED, 2, 11, buf, sizeof buf), "accuracy_mean");
    EXPECT_STREQ(sim_state_feature_name(SIM_PROFILE_EXTENDED, 2, 13, buf, sizeof buf), "price1_x10");
    EXPECT_STREQ(sim_state_feature_name(SIM_PROFILE_EXTENDED, 2, 15, buf, sizeof buf), "up1");
}

static void test_actions(void) {
    EXPECT_EQ_INT(sim_action_count(SIM_ACTIONS_TARGETS, 2), 3);
    EXPECT_EQ_INT(sim_action_count(SIM_ACTIONS_STEPS, 1), 4);
    EXPECT_EQ_INT(sim_action_count(SIM_ACTIONS_STEPS, 2), 7);
    SimDecision d = sim_action_decode(SIM_ACTIONS_TARGETS, 2, 2);
    EXPECT(d.retrain && d.redeploy && d.target == 1);
    d = sim_action_decode(SIM_ACTIONS_TARGETS, 2, 0);
    EXPECT(!d.retrain && !d.redeploy && d.target == -1);
    d = sim_action_decode(SIM_ACTIONS_TARGETS, 2, 7); /* out of range: nothing */
    EXPECT(d.target == -1);
    /* the study's other variant with one target: nothing / retrain / redeploy / both */
    d = sim_action_decode(SIM_ACTIONS_STEPS, 1, 1);
    EXPECT(d.retrain && !d.redeploy);
    d = sim_action_decode(SIM_ACTIONS_STEPS, 1, 2);
    EXPECT(!d.retrain && d.redeploy);
    d = sim_action_decode(SIM_ACTIONS_STEPS, 1, 3);
    EXPECT(d.retrain && d.redeploy);
    /* where to train and where to serve apart: 1 + k K + j */
    EXPECT_EQ_INT(sim_action_count(SIM_ACTIONS_PAIRS, 2), 5);
    d = sim_action_decode(SIM_ACTIONS_PAIRS, 2, 3);
    EXPECT(d.retrain && d.redeploy && d.target == 1 && d.deploy_target == 0);
    d = sim_action_decode(SIM_ACTIONS_PAIRS, 2, 2);
    EXPECT(d.target == 0 && d.deploy_target == 1);
    d = sim_action_decode(SIM_ACTIONS_TARGETS, 2, 2);
    EXPECT_EQ_INT(d.deploy_target, 1);
    SimDecision same = {.retrain = 1, .redeploy = 1, .target = 1, .deploy_target = -1};
    EXPECT_EQ_INT(sim_action_encode(SIM_ACTIONS_PAIRS, 2, same), 4); /* serve where it trains */
    for (int set = 0; set < 3; set++)
        for (int a = 0; a < sim_action_count((SimActionSet)set, 3); a++)
            EXPECT_EQ_INT(sim_action_encode((SimActionSet)set, 3,
                                            sim_action_decode((SimActionSet)set, 3, a)), a);
    char names[2][SIM_NAME_MAX] = {"aws", "azure"}, buf[64];
    EXPECT_STREQ(sim_action_name(SIM_ACTIONS_TARGETS, 2, names, 2, buf, sizeof buf),
                 "retrain+redeploy@azure");
    EXPECT_STREQ(sim_action_name(SIM_ACTIONS_PAIRS, 2, names, 3, buf, sizeof buf),
                 "retrain@azure+deploy@aws");
}

static void test_reward(void) {
    SimRewardConfig rc;
    sim_reward_study(&rc);
    SimObservation o = sample_obs();
    /* the study: 0.5*0.78 + 0.5*0.7 - 0.045 = 0.695 */
    EXPECT_NEAR(sim_reward(&rc, &o, 0.045, 60), 0.695, 1e-12);
    EXPECT_NEAR(sim_reward(&rc, &o, 0.038, 60), 0.702, 1e-12);
    EXPECT_NEAR(sim_reward(&rc, &o, 0, 60), 0.74, 1e-12);
    sim_reward_default(&rc);
    /* per hour: 0.74/60 - 0.045; latency 122 < SLO 150: no penalty */
    EXPECT_NEAR(sim_reward(&rc, &o, 0.045, 60), 0.74 / 60 - 0.045, 1e-12);
    o.latency_ms = 180; /* 20% over the SLO: penalty 0.2 per hour */
    EXPECT_NEAR(sim_reward(&rc, &o, 0, 60), (0.74 - 0.2) / 60, 1e-12);
    rc.w_f1 = 1;
    rc.w_bleu = 0;
    rc.cost_weight = 2;
    EXPECT_NEAR(sim_reward(&rc, &o, 0.1, 60), (0.5 * 0.7 + 0.8 - 0.2) / 60 - 0.2, 1e-12);
}

static void test_config_json(void) {
    SimConfig cfg, back;
    sim_config_default(&cfg);
    DpError err = {0};
    EXPECT_EQ_INT(sim_config_validate(&cfg, &err), DP_OK);
    EXPECT_EQ_INT(cfg.n_targets, 2);
    EXPECT_NEAR(cfg.targets[0].price, 0.045, 0);
    EXPECT_NEAR(cfg.targets[1].price, 0.038, 0);
    EXPECT_EQ_INT(sim_config_steps(&cfg), 240);
    char *js = sim_config_to_json(&cfg);
    REQUIRE(js);
    sim_config_default(&back);
    back.targets[0].price = 9;
    back.drift.kind = SIM_DRIFT_NONE;
    EXPECT_EQ_INT(sim_config_load_text(&back, js, "roundtrip", &err), DP_OK);
    free(js);
    EXPECT_NEAR(back.targets[0].price, 0.045, 1e-12);
    EXPECT_EQ_INT(back.drift.kind, SIM_DRIFT_GRADUAL);
    /* a partial file overrides only what it names; errors name the field */
    EXPECT_EQ_INT(sim_config_load_text(&back, "{\"drift\": {\"kind\": \"sudden\"}, \"targets\": "
                                              "[{\"name\": \"gcp\", \"price\": 0.02}]}",
                                       "partial", &err), DP_OK);
    EXPECT_EQ_INT(back.drift.kind, SIM_DRIFT_SUDDEN);
    EXPECT_EQ_INT(back.n_targets, 1);
    EXPECT_STREQ(back.targets[0].name, "gcp");
    EXPECT_NEAR(back.targets[0].price, 0.02, 1e-12);
    EXPECT(sim_config_load_text(&back, "{\"traffic\": {\"base_rps\": \"x\"}}", "bad.json", &err) != DP_OK);
    EXPECT(strstr(err.msg, "traffic.base_rps") != NULL);
    EXPECT(sim_config_load_text(&back, "{\"drift\": {\"rate_per_hr\": 1}}", "bad.json", &err) != DP_OK);
    EXPECT(strstr(err.msg, "drift.rate_per_hr: unknown field") != NULL);
    EXPECT(sim_config_load_text(&back, "{\"model\": {\"coverage\": 2}}", "bad.json", &err) != DP_OK);
    EXPECT(strstr(err.msg, "model.coverage") != NULL);
    SimConfig s;
    sim_config_default(&s);
    for (int i = 0; i < sim_scenario_count(); i++)
        EXPECT_EQ_INT(sim_scenario_apply(&s, sim_scenario_name(i), &err), DP_OK);
    EXPECT(sim_scenario_apply(&s, "tornado", &err) != DP_OK);
    /* the shipped configs load */
    SimConfig f;
    sim_config_default(&f);
    EXPECT_EQ_INT(sim_config_load(&f, DP_SOURCE_DIR "/configs/sim/study.json", &err), DP_OK);
    EXPECT_NEAR(f.reward.quality_unit_s, 60, 0);
    sim_config_default(&f);
    EXPECT_EQ_INT(sim_config_load(&f, DP_SOURCE_DIR "/configs/sim/default.json", &err), DP_OK);
}

/* Runs a fixed action script; returns the total reward and the run. */
static double run_script(const SimConfig *cfg, const SimEpisode *ep, const int *acts, SimRun *run,
                         SimStepInfo *infos) {
    sim_run_reset(run, cfg, ep);
    int t = 0;
    while (!sim_run_done(run)) {
        sim_run_step(run, acts ? acts[t] : 0, &infos[t]);
        t++;
    }
    return run->total_reward;
}

static void test_same_seed_same_episode(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    DpError err = {0};
    REQUIRE(sim_scenario_apply(&cfg, "sudden", &err) == DP_OK);
    SimEpisode a = {0}, b = {0}, c = {0};
    REQUIRE(sim_episode_draw(&cfg, 7, &a, &err) == DP_OK);
    REQUIRE(sim_episode_draw(&cfg, 7, &b, &err) == DP_OK);
    REQUIRE(sim_episode_draw(&cfg, 8, &c, &err) == DP_OK);
    int T = a.n_steps;
    EXPECT(memcmp(a.rate, b.rate, sizeof(double) * T) == 0);
    EXPECT(memcmp(a.hazard, b.hazard, sizeof(double) * (T + 1)) == 0);
    EXPECT(memcmp(a.job_steps, b.job_steps, sizeof(int) * T * 2) == 0);
    EXPECT(memcmp(a.rate, c.rate, sizeof(double) * T) != 0);
    EXPECT(a.drift_event_s >= cfg.drift.sudden_lo_s && a.drift_event_s <= cfg.drift.sudden_hi_s);
    int *acts = calloc((size_t)T, sizeof(int));
    SimStepInfo *ia = calloc((size_t)T, sizeof *ia), *ib = calloc((size_t)T, sizeof *ib);
    for (int t = 0; t < T; t += 30) acts[t] = 1 + (t / 30) % 2;
    SimRun ra, rb;
    double va = run_script(&cfg, &a, acts, &ra, ia), vb = run_script(&cfg, &b, acts, &rb, ib);
    EXPECT(va == vb);
    EXPECT(memcmp(ia, ib, sizeof *ia * T) == 0);
    free(acts);
    free(ia);
    free(ib);
    sim_episode_free(&a);
    sim_episode_free(&b);
    sim_episode_free(&c);
}

static void test_invariants(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    DpError err = {0};
    SimEpisode ep = {0};
    REQUIRE(sim_episode_draw(&cfg, 3, &ep, &err) == DP_OK);
    int T = ep.n_steps;
    SimStepInfo *info = calloc((size_t)T, sizeof *info);
    SimRun run;
    /* no retrain: no cost, no deploy, and true quality never rises under drift */
    run_script(&cfg, &ep, NULL, &run, info);
    EXPECT_NEAR(run.total_cost, 0, 0);
    EXPECT_EQ_INT(run.n_retrains, 0);
    EXPECT_EQ_INT(run.n_redeploys, 0);
    int rises = 0;
    for (int t = 1; t < T; t++) rises += info[t].quality.bleu > info[t - 1].quality.bleu + 1e-12;
    EXPECT_EQ_INT(rises, 0);
    EXPECT(info[T - 1].quality.bleu < info[0].quality.bleu - 0.1);
    /* one retrain at t=60 on azure: cost once, quality jumps only when it deploys */
    int *acts = calloc((size_t)T, sizeof(int));
    acts[60] = 2;
    run_script(&cfg, &ep, acts, &run, info);
    EXPECT_NEAR(run.total_cost, 0.038, 1e-12);
    EXPECT_EQ_INT(run.n_retrains, 1);
    EXPECT_EQ_INT(run.n_redeploys, 1);
    int steps = ep.job_steps[60 * 2 + 1], deployed_at = -1;
    for (int t = 0; t < T; t++) {
        if (t != 60) EXPECT_NEAR(info[t].cost, 0, 0);
        if (info[t].deployed) deployed_at = t + 1;
    }
    EXPECT_EQ_INT(deployed_at, 60 + steps);
    for (int t = 1; t < T; t++)
        if (t != deployed_at) EXPECT(info[t].quality.bleu <= info[t - 1].quality.bleu + 1e-12);
    EXPECT(info[deployed_at].quality.bleu > info[deployed_at - 1].quality.bleu + 0.03);
    /* serving moved to azure after the redeploy */
    EXPECT_EQ_INT(run.serving, 1);
    /* a retrain while one runs is ignored and costs nothing */
    acts[61] = 1;
    run_script(&cfg, &ep, acts, &run, info);
    EXPECT_EQ_INT(run.n_retrains, 1);
    EXPECT(info[61].ignored);
    EXPECT_NEAR(run.total_cost, 0.038, 1e-12);
    /* contention: retraining on the serving target (aws) raises its latency */
    memset(acts, 0, sizeof(int) * T);
    acts[10] = 1;
    SimStepInfo *base = calloc((size_t)T, sizeof *base);
    run_script(&cfg, &ep, NULL, &run, base);
    run_script(&cfg, &ep, acts, &run, info);
    EXPECT(info[10].obs.latency_ms > base[10].obs.latency_ms * 1.2);
    EXPECT(info[10].obs.cpu > base[10].obs.cpu);
    /* ... and retraining elsewhere (azure) does not */
    acts[10] = 2;
    run_script(&cfg, &ep, acts, &run, info);
    EXPECT_NEAR(info[10].obs.latency_ms, base[10].obs.latency_ms, 1e-9);
    /* observation at a decision carries prices, availability and job state */
    sim_run_reset(&run, &cfg, &ep);
    SimStepInfo one;
    sim_run_step(&run, 2, &one);
    SimObservation o;
    sim_run_observe(&run, &o);
    EXPECT_EQ_INT(o.job_running, steps > 1);
    EXPECT_NEAR(o.price[0], 0.045, 1e-12);
    EXPECT_NEAR(o.time_s, 60, 0);
    free(acts);
    free(info);
    free(base);
    sim_episode_free(&ep);
}

static void test_quality_model(void) {
    /* hand-computed: gradual 0.15/h, coverage 0.85; step t=120 (hazard at mid
     * = 0.15 * 120.5/60 h), model trained at r = 60 (hazard 0.15) */
    SimConfig cfg;
    sim_config_default(&cfg);
    cfg.traffic.noise = 0;
    cfg.drift.rate_per_hour = 0.15;
    DpError err = {0};
    SimEpisode ep = {0};
    REQUIRE(sim_episode_draw(&cfg, 1, &ep, &err) == DP_OK);
    SimQuality q;
    sim_quality(&cfg, &ep, 120, 60, &q);
    double hm = 0.15 * 120.5 / 60, hr = 0.15;
    double p = exp(-(hm - hr)) * (0.85 + 0.15 * exp(-hr));
    EXPECT_NEAR(q.p_known, p, 1e-9);
    EXPECT_NEAR(q.accuracy, 0.02 + 0.78 * p, 1e-9);
    EXPECT_NEAR(q.bleu, 0.35 + 0.5 * p, 1e-9);
    sim_quality(&cfg, &ep, 120, -1, &q);
    EXPECT_NEAR(q.p_known, exp(-hm), 1e-9);
    /* measured values stay in [0, 1] and near the truth */
    for (int t = 0; t < ep.n_steps; t++) {
        sim_quality(&cfg, &ep, t, -1, &q);
        EXPECT(q.m_accuracy >= 0 && q.m_accuracy <= 1 && fabs(q.m_accuracy - q.accuracy) < 0.15);
    }
    sim_episode_free(&ep);
    /* recurring: a model trained in season B is wrong on the seasonal share in A */
    REQUIRE(sim_scenario_apply(&cfg, "recurring", &err) == DP_OK);
    cfg.drift.background_per_hour = 0;
    REQUIRE(sim_episode_draw(&cfg, 1, &ep, &err) == DP_OK);
    sim_quality(&cfg, &ep, 45, 40, &q); /* trained and served in season 1 */
    EXPECT_NEAR(q.p_known, 0.6 + 0.4 * 0.85, 1e-9);
    sim_quality(&cfg, &ep, 65, 40, &q); /* served in season 0 again */
    EXPECT_NEAR(q.p_known, 0.6 + 0.4 * 0.15, 1e-9);
    sim_episode_free(&ep);
}

static void test_outage(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    DpError err = {0};
    REQUIRE(sim_scenario_apply(&cfg, "outage", &err) == DP_OK);
    SimEpisode ep = {0};
    REQUIRE(sim_episode_draw(&cfg, 5, &ep, &err) == DP_OK);
    int first = -1, n = 0;
    for (int t = 0; t < ep.n_steps; t++)
        if (ep.down[t * 2]) {
            if (first < 0) first = t;
            n++;
        }
    REQUIRE(first > 0);
    EXPECT(n == 60 || n == 61); /* an hour, not aligned to decisions */
    /* a retrain on a down target does not start and costs nothing */
    int steps, ok;
    EXPECT_NEAR(sim_job_plan(&cfg, &ep, first, 0, &steps, &ok), 0, 0);
    EXPECT_EQ_INT(steps, 0);
    /* a job that the outage interrupts fails and pays for what ran */
    double c = sim_job_plan(&cfg, &ep, first - 2, 0, &steps, &ok);
    EXPECT_EQ_INT(steps, 2);
    EXPECT_EQ_INT(ok, 0);
    EXPECT_NEAR(c, 0.045 * 2 / ep.job_steps[(first - 2) * 2], 1e-12);
    /* while aws is down, traffic fails over to azure */
    SimServing sv;
    sim_serving(&cfg, &ep, first, 0, -1, &sv);
    EXPECT_EQ_INT(sv.effective, 1);
    sim_episode_free(&ep);
}

static void test_steps_action_set(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    cfg.action_set = SIM_ACTIONS_STEPS;
    DpError err = {0};
    SimEpisode ep = {0};
    REQUIRE(sim_episode_draw(&cfg, 2, &ep, &err) == DP_OK);
    SimRun run;
    sim_run_reset(&run, &cfg, &ep);
    SimStepInfo info;
    sim_run_step(&run, 2, &info); /* redeploy with nothing trained: ignored */
    EXPECT(info.ignored);
    sim_run_step(&run, 1, &info); /* retrain on aws, keep serving */
    EXPECT(info.started);
    while (run.job_target >= 0) sim_run_step(&run, 0, &info);
    EXPECT_EQ_INT(run.model_r, -1);
    EXPECT_EQ_INT(run.pending_r, 1);
    sim_run_step(&run, 2 + 3, &info); /* redeploy to azure */
    EXPECT(info.deployed);
    EXPECT_EQ_INT(run.model_r, 1);
    EXPECT_EQ_INT(run.serving, 1);
    sim_episode_free(&ep);
}

/* Training on azure while aws serves: no contention on the serving target,
 * the cheaper price, and the new model serves on aws when the job ends. */
static void test_pairs_action_set(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    cfg.action_set = SIM_ACTIONS_PAIRS;
    DpError err = {0};
    SimEpisode ep = {0};
    REQUIRE(sim_episode_draw(&cfg, 5, &ep, &err) == DP_OK);
    int T = ep.n_steps;
    SimStepInfo *info = calloc((size_t)T, sizeof *info), *base = calloc((size_t)T, sizeof *base);
    int *acts = calloc((size_t)T, sizeof(int));
    SimRun run;
    run_script(&cfg, &ep, NULL, &run, base);
    acts[30] = 1 + 1 * 2 + 0; /* retrain on azure, serve on aws */
    run_script(&cfg, &ep, acts, &run, info);
    int steps = ep.job_steps[30 * 2 + 1];
    EXPECT(steps >= 2);
    EXPECT_NEAR(run.total_cost, 0.038, 1e-12);
    EXPECT_EQ_INT(run.n_redeploys, 1);
    EXPECT_EQ_INT(run.serving, 0);
    EXPECT_EQ_INT(run.model_r, 30);
    for (int t = 30; t < 30 + steps; t++) EXPECT_NEAR(info[t].obs.latency_ms, base[t].obs.latency_ms, 1e-9);
    EXPECT(info[30 + steps - 1].deployed);
    EXPECT(info[30 + steps].quality.bleu > base[30 + steps].quality.bleu + 0.01);
    /* retrain on aws, serve on azure: contention on aws while aws serves, then azure */
    memset(acts, 0, sizeof(int) * T);
    acts[30] = 1 + 0 * 2 + 1;
    run_script(&cfg, &ep, acts, &run, info);
    EXPECT(info[30].obs.latency_ms > base[30].obs.latency_ms * 1.2);
    EXPECT_EQ_INT(run.serving, 1);
    EXPECT_NEAR(run.total_cost, 0.045, 1e-12);
    free(acts);
    free(info);
    free(base);
    sim_episode_free(&ep);
}

/* accuracy_mean: the mean of the served model's last SIM_ACC_WINDOW readings,
 * restarted when a new model serves. */
static void test_accuracy_mean(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    DpError err = {0};
    SimEpisode ep = {0};
    REQUIRE(sim_episode_draw(&cfg, 9, &ep, &err) == DP_OK);
    SimRun run;
    sim_run_reset(&run, &cfg, &ep);
    SimObservation o;
    sim_run_observe(&run, &o);
    EXPECT_NEAR(o.accuracy_mean, o.accuracy, 0); /* no reading yet */
    double seen[64];
    SimStepInfo info;
    for (int t = 0; t < 14; t++) {
        sim_run_step(&run, 0, &info);
        seen[t] = info.obs.accuracy;
        sim_run_observe(&run, &o);
        int n = t + 1 < SIM_ACC_WINDOW ? t + 1 : SIM_ACC_WINDOW;
        double sum = 0;
        for (int i = t + 1 - n; i <= t; i++) sum += seen[i];
        EXPECT_NEAR(o.accuracy_mean, sum / n, 1e-12);
    }
    sim_run_step(&run, 2, &info); /* retrain on azure */
    while (!info.deployed) sim_run_step(&run, 0, &info);
    sim_run_observe(&run, &o);
    /* the reading of the deploy step is the old model's: the window restarted */
    EXPECT_NEAR(o.accuracy_mean, o.accuracy, 0);
    sim_run_step(&run, 0, &info);
    double a1 = info.obs.accuracy;
    sim_run_step(&run, 0, &info);
    double a2 = info.obs.accuracy;
    sim_run_observe(&run, &o);
    EXPECT_NEAR(o.accuracy_mean, (a1 + a2) / 2, 1e-12);
    sim_episode_free(&ep);
}

static void test_replay(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    sim_reward_study(&cfg.reward);
    SimReplay rp;
    DpError err = {0};
    REQUIRE(sim_replay_load(&rp, DP_TEST_DATA "/sim/replay.csv", 1, 1, &cfg, &err) == DP_OK);
    EXPECT_EQ_INT(rp.n_rows, 4);
    EXPECT_EQ_INT(rp.dim, 6);
    /* latency row 1 interpolated to 130: the z-scores of rows 1 and 3 match */
    EXPECT_NEAR(rp.states[1 * 6 + 3], rp.states[3 * 6 + 3], 1e-6);
    /* request_rate row 2 interpolated to 200 (between 210 and 190): z of mean 200 */
    EXPECT_NEAR(rp.mean[2], 0.2, 1e-7); /* k req/s, as in the state vector */
    EXPECT_NEAR(rp.states[2 * 6 + 2], 0, 1e-6);
    /* rewards from the recorded quality: row 2 bleu interpolated to 0.75 */
    EXPECT_NEAR(sim_replay_reward(&rp, 1, 0), 0.5 * 0.75 + 0.5 * 0.6, 1e-9);
    EXPECT_NEAR(sim_replay_reward(&rp, 1, 1), 0.5 * 0.75 + 0.5 * 0.6 - 0.045, 1e-9);
    EXPECT_NEAR(sim_replay_reward(&rp, 0, 2), 0.5 * 0.8 + 0.5 * 0.7 - 0.038, 1e-9);
    sim_replay_free(&rp);
    /* rolling mean of 2 rows on accuracy: row 1 = (0.8+0.7)/2 */
    REQUIRE(sim_replay_load(&rp, DP_TEST_DATA "/sim/replay.csv", 2, 1, &cfg, &err) == DP_OK);
    double z1 = rp.states[1 * 6 + 4] * rp.std[4] + rp.mean[4];
    EXPECT_NEAR(z1, 0.75, 1e-6);
    sim_replay_free(&rp);
    /* without z-scores the rows are state vectors */
    REQUIRE(sim_replay_load(&rp, DP_TEST_DATA "/sim/replay.csv", 1, 0, &cfg, &err) == DP_OK);
    EXPECT_NEAR(rp.states[1 * 6 + 3], 0.130, 1e-6);
    EXPECT_NEAR(rp.states[3 * 6 + 5], 0.1, 1e-6);
    sim_replay_free(&rp);
    EXPECT(sim_replay_load(&rp, DP_TEST_DATA "/sim/no-such.csv", 1, 1, &cfg, &err) != DP_OK);
}

static void test_calibrate(void) {
    SimConfig cfg;
    sim_config_default(&cfg);
    SimCalibration cal;
    DpError err = {0};
    REQUIRE(sim_calibrate(&cfg, DP_TEST_DATA "/sim/jobs", DP_TEST_DATA "/sim/loadgen.csv", &cal,
                          &err) == DP_OK);
    EXPECT_EQ_INT(cal.n_jobs, 4); /* the failed job is left out */
    /* gpu_hours 0.1 = 360 s of reference work: aws 240 s -> 1.5, azure 450 s -> 0.8 */
    EXPECT_NEAR(cfg.targets[0].speed, 1.5, 1e-9);
    EXPECT_NEAR(cfg.targets[1].speed, 0.8, 1e-9);
    EXPECT_NEAR(cfg.model.coverage, 0.75, 1e-4);
    /* latency = 30 + 50 / (1 - rate / 40) */
    EXPECT(cal.fitted_latency[0]);
    EXPECT(!cal.fitted_latency[1]);
    EXPECT_NEAR(cfg.targets[0].capacity_rps, 40, 1.0);
    EXPECT_NEAR(cfg.targets[0].distance_ms, 30, 3);
    EXPECT_NEAR(cfg.targets[0].service_ms, 50, 3);
    EXPECT(sim_calibrate(&cfg, DP_TEST_DATA "/sim/none", NULL, &cal, &err) != DP_OK);
    /* the load generator's own CSV (intended_s, target URLs, HTTP status, error):
     * latency = 20 + 60 / (1 - rate / 40) */
    sim_config_default(&cfg);
    REQUIRE(sim_calibrate(&cfg, NULL, DP_TEST_DATA "/sim/loadgen-lg.csv", &cal, &err) == DP_OK);
    EXPECT(cal.fitted_latency[0]);
    EXPECT_NEAR(cfg.targets[0].capacity_rps, 40, 1.0);
    EXPECT_NEAR(cfg.targets[0].distance_ms, 20, 3);
    EXPECT_NEAR(cfg.targets[0].service_ms, 60, 3);
    EXPECT_NEAR(cfg.targets[0].speed, 1.25, 0); /* no job records: unchanged */
}

/* Writes text to dir/rel, making the folders on the way. */
static void put_file(const char *dir, const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

/* An experiment's results directory made up with a known truth: jobs of 60
 * and 120 wall seconds at 60x, one report with accuracy 0.41 -> 0.644, and a
 * run served by aws until scenario second 2400 and azure after it, at three
 * rates each with latency = distance + service / (1 - rate / capacity). */
static void test_calibrate_experiment(void) {
    char dir[] = "/tmp/dp-test-cal-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    put_file(dir, "work/r1/p/driftpilot.toml", "[control]\ntime_scale = 60\n");
    const char *head = "pipeline,repeat,run_id,job_id,kind,target,started,started_scenario_s,finished,"
                       "status,duration_s,cost\n";
    char jobs[1024];
    snprintf(jobs, sizeof jobs,
             "%sp,0,p-r1,1,retrain,aws,0,0,60,ok,60,0.045\n"
             "p,0,p-r1,2,retrain,azure,0,0,120,ok,120,0.038\n"
             "p,0,p-r1,3,retrain,aws,0,0,10,killed,10,0.045\n",
             head);
    put_file(dir, "jobs.csv", jobs);
    put_file(dir, "work/r1/p/jobs/p-r1-retrain-aws-1.json",
             "{\"metrics\": {\"before\": {\"heldout\": {\"exact_match\": 0.41}},"
             " \"after\": {\"heldout\": {\"exact_match\": 0.644}}}}\n");
    put_file(dir, "deployments.csv",
             "pipeline,repeat,run_id,ts,scenario_s,target,version,previous_version,kind\n"
             "p,0,p-r1,0,2400,azure,v000002,v000001,deploy\n"
             "q,0,q-r1,0,0,aws,v000002,v000001,deploy\n");
    /* three 10-s windows per target at 10, 20, 30 requests/s */
    size_t cap = 1 << 20, len = 0;
    char *req = malloc(cap);
    REQUIRE(req);
    len += (size_t)snprintf(req + len, cap - len,
                            "seq,intended_s,sent_s,scenario_s,target,latency_ms,service_ms,status,"
                            "error,model_version,kind,exact_match,feedback\n");
    int seq = 0;
    /* windows 0 and 7 (the run's first and last, at a misleading 5/s) are
     * left out of the fit as partial */
    for (int w = 0; w < 8; w++) {
        int rate = w == 0 || w == 7 ? 5 : 10 * ((w - 1) % 3 + 1);
        double d = w < 4 ? 30 : 20, sv = w < 4 ? 50 : 60, c = w < 4 ? 40 : 50;
        double lat = d + sv / (1 - rate / c);
        for (int i = 0; i < rate * 10; i++) {
            double t = w * 10 + (i + 0.5) / rate;
            len += (size_t)snprintf(req + len, cap - len, "%d,%.4f,%.4f,%.2f,http://127.0.0.1:9,%.4f,%.4f,200,,v1,fact,1,0\n",
                                    seq++, t, t, t * 60, lat, lat);
        }
    }
    put_file(dir, "work/r1/p/requests.csv", req);
    free(req);

    SimConfig cfg;
    sim_config_default(&cfg);
    SimCalibration cal;
    DpError err = {0};
    REQUIRE(sim_calibrate_experiment(&cfg, dir, 0, &cal, &err) == DP_OK);
    EXPECT_NEAR(cal.time_scale, 60, 0);
    EXPECT_EQ_INT(cal.n_jobs, 2); /* the killed job is left out */
    /* 360 s of reference work in 3600 / 7200 scenario seconds */
    EXPECT_NEAR(cfg.targets[0].speed, 0.1, 1e-12);
    EXPECT_NEAR(cfg.targets[1].speed, 0.05, 1e-12);
    /* p 0.5 -> 0.8: 1 - 0.8 = (1 - c)(1 - 0.5) */
    EXPECT_NEAR(cfg.model.coverage, 0.6, 1e-9);
    EXPECT_EQ_INT(cal.n_latency_points, 6);
    EXPECT(cal.fitted_latency[0] && cal.fitted_latency[1]);
    EXPECT_NEAR(cfg.targets[0].capacity_rps, 40, 1.0);
    EXPECT_NEAR(cfg.targets[0].distance_ms, 30, 2);
    EXPECT_NEAR(cfg.targets[0].service_ms, 50, 2);
    EXPECT_NEAR(cfg.targets[1].capacity_rps, 50, 1.0);
    EXPECT_NEAR(cfg.targets[1].distance_ms, 20, 2);
    EXPECT_NEAR(cfg.targets[1].service_ms, 60, 2);
    /* one load level (every window at 20/s, aws 100 ms): only the level is
     * fitted, the config's curve scaled to it */
    {
        char *r2 = malloc(1 << 20);
        REQUIRE(r2);
        size_t l2 = (size_t)snprintf(r2, 1 << 20,
                                     "seq,intended_s,sent_s,scenario_s,target,latency_ms,service_ms,"
                                     "status,error,model_version,kind,exact_match,feedback\n");
        for (int i = 0; i < 20 * 60; i++) {
            double t = (i + 0.5) / 20;
            l2 += (size_t)snprintf(r2 + l2, (1 << 20) - l2, "%d,%.4f,%.4f,%.2f,u,100,100,200,,v1,fact,1,0\n",
                                   i, t, t, t);
        }
        put_file(dir, "work/r1/p/requests.csv", r2);
        free(r2);
        put_file(dir, "deployments.csv", "pipeline,repeat,run_id,ts,scenario_s,target,version,previous_version,kind\n");
        sim_config_default(&cfg);
        SimTarget before = cfg.targets[0];
        REQUIRE(sim_calibrate_experiment(&cfg, dir, 0, &cal, &err) == DP_OK);
        EXPECT_EQ_INT(cal.fitted_latency[0], 2);
        EXPECT_EQ_INT(cal.fitted_latency[1], 0);
        double f = cfg.targets[0].distance_ms / before.distance_ms;
        EXPECT_NEAR(cfg.targets[0].service_ms / before.service_ms, f, 1e-9);
        EXPECT_NEAR(cfg.targets[0].capacity_rps, before.capacity_rps, 0);
        EXPECT_NEAR(cfg.targets[0].distance_ms + cfg.targets[0].service_ms / (1 - 20 / cfg.targets[0].capacity_rps),
                    100, 1e-6);
        EXPECT_NEAR(cal.latency_rmse[0], 0, 1e-6);
    }
    /* an explicit scale wins over the configs */
    sim_config_default(&cfg);
    REQUIRE(sim_calibrate_experiment(&cfg, dir, 30, &cal, &err) == DP_OK);
    EXPECT_NEAR(cfg.targets[0].speed, 0.2, 1e-12);

    /* bad input names the file, the line and the field */
    snprintf(jobs, sizeof jobs, "%sp,0,p-r1,1,retrain,gcp,0,0,60,ok,60,0.045\n", head);
    put_file(dir, "jobs.csv", jobs);
    sim_config_default(&cfg);
    EXPECT(sim_calibrate_experiment(&cfg, dir, 0, &cal, &err) != DP_OK);
    EXPECT_MSG(strstr(err.msg, "jobs.csv: line 2: target: 'gcp'") != NULL, "%s", err.msg);
    snprintf(jobs, sizeof jobs, "%sp,0,p-r1,1,retrain,aws,0,0,60,ok,soon,0.045\n", head);
    put_file(dir, "jobs.csv", jobs);
    EXPECT(sim_calibrate_experiment(&cfg, dir, 0, &cal, &err) != DP_OK);
    EXPECT_MSG(strstr(err.msg, "line 2: duration_s: 'soon' is not a number") != NULL, "%s", err.msg);
    snprintf(jobs, sizeof jobs, "%sp,0,p-r1,1,retrain,aws\n", head);
    put_file(dir, "jobs.csv", jobs);
    EXPECT(sim_calibrate_experiment(&cfg, dir, 0, &cal, &err) != DP_OK);
    EXPECT_MSG(strstr(err.msg, "line 2: 6 fields, the header has 12") != NULL, "%s", err.msg);
    EXPECT(sim_calibrate_experiment(&cfg, "/nonexistent-dir", 0, &cal, &err) != DP_OK);
    EXPECT_MSG(strstr(err.msg, "give --time-scale") != NULL, "%s", err.msg);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    EXPECT(system(cmd) == 0);
}

TEST_MAIN(TEST_CASE(test_state_vector), TEST_CASE(test_actions), TEST_CASE(test_reward),
          TEST_CASE(test_config_json), TEST_CASE(test_same_seed_same_episode),
          TEST_CASE(test_invariants), TEST_CASE(test_quality_model), TEST_CASE(test_outage),
          TEST_CASE(test_steps_action_set), TEST_CASE(test_pairs_action_set),
          TEST_CASE(test_accuracy_mean), TEST_CASE(test_replay), TEST_CASE(test_calibrate),
          TEST_CASE(test_calibrate_experiment))
