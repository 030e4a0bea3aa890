/*
 * rl: reinforcement learning for driftpilot — the batched environment
 * interface, an actor-critic MLP, and PPO.
 *
 * Environments follow PufferLib's C contract with caller-owned batched
 * buffers: the caller allocates observations (n_envs * obs_dim floats),
 * actions (n_envs ints), rewards, terminals and truncations (n_envs each) and
 * hands them to the environment, which writes into them.  An environment
 * auto-resets: after a step that ends an episode (terminal or truncated), the
 * observation buffer holds the first observation of the next episode, and the
 * final observation of the finished one is in final_observations (needed to
 * bootstrap truncated episodes in GAE).
 *
 * Each environment kind is a const RlEnvVtbl; instances carry their own RNG
 * (no rand()), so results do not depend on threads.
 *
 *     RlEnv *env = NULL;
 *     rl_env_create("cartpole", 8, seed, &env, &err);
 *     rl_env_reset(env);
 *     for (...) { choose env->actions[i]; rl_env_step(env); read env->rewards... }
 *     rl_env_destroy(env);
 */
#ifndef DRIFTPILOT_RL_H
#define DRIFTPILOT_RL_H

#include "core.h"

// ---- environments ----

typedef enum { RL_ACTION_DISCRETE = 0, RL_ACTION_CONTINUOUS = 1 } RlActionKind;

/* Episode statistics, floats only with n last so logs can be summed. */
typedef struct {
    float episode_return;  /* sum over finished episodes */
    float episode_length;  /* sum over finished episodes */
    float n;               /* number of finished episodes */
} RlLog;

typedef struct RlEnv RlEnv;

typedef struct {
    const char *name;
    int obs_dim;
    RlActionKind action_kind;
    int n_actions;                                   /* discrete: number of actions */
    /* Allocates per-env state for env->n_envs envs into env->state. */
    DpStatus (*init)(RlEnv *env, const void *config, DpError *err);
    /* Resets env i, writing its observation at env->observations + i*obs_dim. */
    void (*reset)(RlEnv *env, int i);
    /* Steps env i with env->actions[i]; writes reward, terminal, truncated,
     * and (on episode end) the final obs, then auto-resets. */
    void (*step)(RlEnv *env, int i);
    void (*close)(RlEnv *env);                       /* frees env->state only */
} RlEnvVtbl;

struct RlEnv {
    const RlEnvVtbl *vt;
    int n_envs;
    int obs_dim;
    /* Buffers: owned by the caller when passed to rl_env_init_with_buffers,
     * otherwise allocated by rl_env_create and freed by rl_env_destroy. */
    float *observations;        /* (n_envs, obs_dim) */
    float *final_observations;  /* (n_envs, obs_dim): valid where an episode just ended */
    int *actions;               /* (n_envs) */
    float *rewards;             /* (n_envs) */
    unsigned char *terminals;   /* (n_envs) */
    unsigned char *truncations; /* (n_envs) */
    DpRng *rngs;                /* (n_envs), one stream per env */
    void *state;                /* the env kind's own state */
    RlLog log;                  /* accumulated since the last rl_env_log_reset */
    float *ep_return;           /* (n_envs) running return of the current episode */
    int *ep_length;             /* (n_envs) */
    int owns_buffers;
};

/* Registers an environment kind so rl_env_create can find it by name
 * (built in: "cartpole").  At most 32 kinds. */
DpStatus rl_env_register(const RlEnvVtbl *vt, DpError *err);
const RlEnvVtbl *rl_env_find(const char *name);

/* Creates n_envs instances of the named kind with their own buffers; env i
 * draws from stream i of seed.  config is kind-specific (NULL: defaults). */
DpStatus rl_env_create(const char *name, int n_envs, uint64_t seed, const void *config,
                       RlEnv **out, DpError *err);
void rl_env_destroy(RlEnv *env);
void rl_env_reset(RlEnv *env);          /* resets every env */
void rl_env_step(RlEnv *env);           /* steps every env, updates log */
void rl_env_log_reset(RlEnv *env);

#endif
