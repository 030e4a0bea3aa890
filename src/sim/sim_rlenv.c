/* The simulator and the replay as rl environment kinds ("retrain-sim",
 * "retrain-replay"), so PPO trains on them through rl.h's batched contract.
 * Kept in its own file: only programs that register the kinds link rl. */
#include "rl.h"
#include "sim.h"

#include <stdlib.h>
#include <string.h>

// ---- retrain-sim ----

typedef struct {
    SimConfig cfg;   /* scenario applied */
    SimEpisode ep;
    SimRun run;
} SimEnvOne;

typedef struct {
    SimRlConfig conf;
    SimEnvOne *envs; /* (n_envs) */
} SimEnvState;

static void sim_env_close(RlEnv *env) {
    SimEnvState *s = env->state;
    if (!s) return;
    for (int i = 0; i < env->n_envs; i++) sim_episode_free(&s->envs[i].ep);
    free(s->envs);
    free(s);
    env->state = NULL;
}

static DpStatus sim_env_init(RlEnv *env, const void *config, DpError *err) {
    SimEnvState *s = dp_calloc(1, sizeof *s);
    if (!s) return dp_fail(err, DP_ERR_NOMEM, "retrain-sim state");
    if (config) {
        s->conf = *(const SimRlConfig *)config;
    } else {
        sim_config_default(&s->conf.base);
        s->conf.n_scenarios = sim_scenario_count();
        for (int i = 0; i < s->conf.n_scenarios; i++)
            snprintf(s->conf.scenarios[i], SIM_NAME_MAX, "%s", sim_scenario_name(i));
        s->conf.seed_offset = 1000000007ULL;
    }
    if (s->conf.reward_scale == 0) s->conf.reward_scale = 1;
    const SimConfig *b = &s->conf.base;
    /* dimensions follow the config (rl lets init set them) */
    env->obs_dim = sim_state_dim(b->profile, b->n_targets);
    env->n_actions = sim_action_count(b->action_set, b->n_targets);
    DpStatus st = sim_config_validate(b, err);
    for (int i = 0; !st && i < s->conf.n_scenarios; i++) {
        SimConfig c = *b;
        st = sim_scenario_apply(&c, s->conf.scenarios[i], err);
    }
    if (st) {
        free(s);
        return st;
    }
    s->envs = dp_calloc((size_t)env->n_envs, sizeof *s->envs);
    if (!s->envs) {
        free(s);
        return dp_fail(err, DP_ERR_NOMEM, "retrain-sim envs");
    }
    env->state = s;
    return DP_OK;
}

static void sim_env_reset(RlEnv *env, int i) {
    SimEnvState *s = env->state;
    SimEnvOne *e = &s->envs[i];
    DpRng *r = &env->rngs[i];
    e->cfg = s->conf.base;
    if (s->conf.n_scenarios > 0) {
        int pick = (int)dp_rng_below(r, (uint64_t)s->conf.n_scenarios);
        sim_scenario_apply(&e->cfg, s->conf.scenarios[pick], NULL);
    }
    uint64_t seed = s->conf.seed_offset + (dp_rng_u64(r) >> 8);
    sim_episode_free(&e->ep);
    if (sim_episode_draw(&e->cfg, seed, &e->ep, NULL) != DP_OK) {
        /* validated at init, so only an allocation can fail here */
        dp_assert_fail_(__FILE__, __LINE__, "episode allocation");
    }
    sim_run_reset(&e->run, &e->cfg, &e->ep);
    SimObservation o;
    sim_run_observe(&e->run, &o);
    sim_state_build(e->cfg.profile, &o, env->observations + (size_t)i * env->obs_dim);
}

static void sim_env_step(RlEnv *env, int i) {
    SimEnvState *s = env->state;
    SimEnvOne *e = &s->envs[i];
    SimStepInfo info;
    sim_run_step(&e->run, env->actions[i], &info);
    env->rewards[i] = (float)(info.reward * s->conf.reward_scale);
    env->terminals[i] = 0;
    env->truncations[i] = 0;
    SimObservation o;
    sim_run_observe(&e->run, &o);
    float *obs = env->observations + (size_t)i * env->obs_dim;
    if (sim_run_done(&e->run)) {
        /* a time limit, not a terminal state: the learner bootstraps */
        env->truncations[i] = 1;
        sim_state_build(e->cfg.profile, &o, env->final_observations + (size_t)i * env->obs_dim);
        sim_env_reset(env, i);
    } else {
        sim_state_build(e->cfg.profile, &o, obs);
    }
}

static const RlEnvVtbl sim_env_vt = {
    .name = "retrain-sim",
    .obs_dim = SIM_RL_OBS_DIM,
    .action_kind = RL_ACTION_DISCRETE,
    .n_actions = SIM_RL_N_ACTIONS,
    .init = sim_env_init,
    .reset = sim_env_reset,
    .step = sim_env_step,
    .close = sim_env_close,
};

// ---- retrain-replay ----

typedef struct {
    const SimReplay *rp; /* borrowed */
    int *row;            /* (n_envs) current row */
    int *end;            /* (n_envs) last row of the episode */
} ReplayEnvState;

static void replay_env_close(RlEnv *env) {
    ReplayEnvState *s = env->state;
    if (!s) return;
    free(s->row);
    free(s->end);
    free(s);
    env->state = NULL;
}

static DpStatus replay_env_init(RlEnv *env, const void *config, DpError *err) {
    const SimReplay *rp = config;
    if (!rp) return dp_fail(err, DP_ERR_INVAL, "retrain-replay needs a loaded SimReplay as config");
    if (rp->n_rows < 2) return dp_fail(err, DP_ERR_INVAL, "retrain-replay: needs 2+ rows");
    env->obs_dim = rp->dim;
    env->n_actions = 1 + rp->n_targets;
    ReplayEnvState *s = dp_calloc(1, sizeof *s);
    if (!s) return dp_fail(err, DP_ERR_NOMEM, "replay state");
    s->rp = rp;
    s->row = dp_calloc((size_t)env->n_envs, sizeof(int));
    s->end = dp_calloc((size_t)env->n_envs, sizeof(int));
    if (!s->row || !s->end) {
        env->state = s;
        replay_env_close(env);
        return dp_fail(err, DP_ERR_NOMEM, "replay state");
    }
    env->state = s;
    return DP_OK;
}

static void replay_env_reset(RlEnv *env, int i) {
    ReplayEnvState *s = env->state;
    const SimReplay *rp = s->rp;
    int len = rp->episode_len > 0 && rp->episode_len < rp->n_rows ? rp->episode_len : rp->n_rows - 1;
    int span = rp->n_rows - 1 - len;
    s->row[i] = span > 0 ? (int)dp_rng_below(&env->rngs[i], (uint64_t)span + 1) : 0;
    s->end[i] = s->row[i] + len;
    memcpy(env->observations + (size_t)i * env->obs_dim, rp->states + (size_t)s->row[i] * rp->dim,
           sizeof(float) * (size_t)rp->dim);
}

static void replay_env_step(RlEnv *env, int i) {
    ReplayEnvState *s = env->state;
    const SimReplay *rp = s->rp;
    env->rewards[i] = (float)sim_replay_reward(rp, s->row[i], env->actions[i]);
    env->terminals[i] = 0;
    env->truncations[i] = 0;
    s->row[i]++;
    const float *next = rp->states + (size_t)s->row[i] * rp->dim;
    if (s->row[i] >= s->end[i]) {
        env->truncations[i] = 1;
        memcpy(env->final_observations + (size_t)i * env->obs_dim, next, sizeof(float) * (size_t)rp->dim);
        replay_env_reset(env, i);
    } else {
        memcpy(env->observations + (size_t)i * env->obs_dim, next, sizeof(float) * (size_t)rp->dim);
    }
}

static const RlEnvVtbl replay_env_vt = {
    .name = "retrain-replay",
    .obs_dim = SIM_REPLAY_OBS_DIM,
    .action_kind = RL_ACTION_DISCRETE,
    .n_actions = SIM_RL_N_ACTIONS,
    .init = replay_env_init,
    .reset = replay_env_reset,
    .step = replay_env_step,
    .close = replay_env_close,
};

DpStatus sim_rl_register(DpError *err) {
    DpStatus st = DP_OK;
    if (!rl_env_find(sim_env_vt.name)) st = rl_env_register(&sim_env_vt, err);
    if (!st && !rl_env_find(replay_env_vt.name)) st = rl_env_register(&replay_env_vt, err);
    return st;
}
