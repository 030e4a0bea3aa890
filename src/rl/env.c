/* The environment registry and the generic batched reset/step around an
 * environment kind's vtbl: buffer allocation (or borrowing), per-env RNG
 * streams, and episode statistics.  Kinds only simulate; bookkeeping of
 * returns and lengths lives here so every kind gets it the same way. */
#include "rl.h"

#include <stdlib.h>
#include <string.h>

#define RL_MAX_KINDS 32

extern const RlEnvVtbl rl_cartpole_vtbl;

static const RlEnvVtbl *kinds[RL_MAX_KINDS];
static int n_kinds = 0;

static void register_builtins(void) {
    if (n_kinds == 0) kinds[n_kinds++] = &rl_cartpole_vtbl;
}

DpStatus rl_env_register(const RlEnvVtbl *vt, DpError *err) {
    register_builtins();
    if (!vt || !vt->name || !vt->init || !vt->reset || !vt->step || !vt->close)
        return dp_fail(err, DP_ERR_INVAL, "rl_env_register: incomplete vtbl");
    for (int i = 0; i < n_kinds; i++) {
        if (kinds[i] == vt) return DP_OK;
        if (!strcmp(kinds[i]->name, vt->name))
            return dp_fail(err, DP_ERR_STATE, "environment kind '%s' is already registered",
                           vt->name);
    }
    if (n_kinds >= RL_MAX_KINDS)
        return dp_fail(err, DP_ERR_STATE, "too many environment kinds (max %d)", RL_MAX_KINDS);
    kinds[n_kinds++] = vt;
    return DP_OK;
}

const RlEnvVtbl *rl_env_find(const char *name) {
    register_builtins();
    for (int i = 0; i < n_kinds && name; i++)
        if (!strcmp(kinds[i]->name, name)) return kinds[i];
    return NULL;
}

int rl_env_list(const char **names, int cap) {
    register_builtins();
    for (int i = 0; i < n_kinds && i < cap; i++) names[i] = kinds[i]->name;
    return n_kinds;
}

static DpStatus create(const char *name, int n_envs, uint64_t seed, const void *config,
                       const RlEnvBuffers *bufs, RlEnv **out, DpError *err) {
    *out = NULL;
    const RlEnvVtbl *vt = rl_env_find(name);
    if (!vt) {
        char known[512] = "";
        for (int i = 0; i < n_kinds; i++) {
            strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, kinds[i]->name, sizeof known - strlen(known) - 1);
        }
        return dp_fail(err, DP_ERR_INVAL, "unknown environment '%s' (known: %s)",
                       name ? name : "(null)", known);
    }
    if (n_envs < 1 || n_envs > 1 << 20)
        return dp_fail(err, DP_ERR_INVAL, "n_envs must be in [1, 1048576], got %d", n_envs);
    RlEnv *e = dp_calloc(1, sizeof *e);
    if (!e) return dp_fail(err, DP_ERR_NOMEM, "out of memory creating env");
    e->vt = vt;
    e->n_envs = n_envs;
    e->obs_dim = vt->obs_dim;
    e->n_actions = vt->n_actions;
    e->rngs = dp_calloc((size_t)n_envs, sizeof *e->rngs);
    e->ep_return = dp_calloc((size_t)n_envs, sizeof *e->ep_return);
    e->ep_length = dp_calloc((size_t)n_envs, sizeof *e->ep_length);
    if (!e->rngs || !e->ep_return || !e->ep_length) {
        rl_env_destroy(e);
        return dp_fail(err, DP_ERR_NOMEM, "out of memory creating env");
    }
    for (int i = 0; i < n_envs; i++) dp_rng_seed_stream(&e->rngs[i], seed, (uint64_t)i);
    DpStatus st = vt->init(e, config, err);
    if (st) {
        e->vt = NULL; /* init cleaned up after itself */
        rl_env_destroy(e);
        return dp_error_wrap(err, "environment '%s'", name);
    }
    if (e->obs_dim < 1 || (vt->action_kind == RL_ACTION_DISCRETE && e->n_actions < 1)) {
        rl_env_destroy(e);
        return dp_fail(err, DP_ERR_INVAL, "environment '%s': bad sizes obs_dim %d n_actions %d",
                       name, e->obs_dim, e->n_actions);
    }
    size_t no = (size_t)n_envs * (size_t)e->obs_dim;
    if (bufs) {
        if (bufs->obs_dim != e->obs_dim || !bufs->observations || !bufs->final_observations ||
            !bufs->actions || !bufs->rewards || !bufs->terminals || !bufs->truncations) {
            int od = e->obs_dim;
            rl_env_destroy(e);
            return dp_fail(err, DP_ERR_INVAL,
                           "environment '%s': buffers sized for obs_dim %d, instance needs %d "
                           "(or a buffer is NULL)",
                           name, bufs->obs_dim, od);
        }
        e->observations = bufs->observations;
        e->final_observations = bufs->final_observations;
        e->actions = bufs->actions;
        e->rewards = bufs->rewards;
        e->terminals = bufs->terminals;
        e->truncations = bufs->truncations;
        e->owns_buffers = 0;
    } else {
        e->owns_buffers = 1;
        e->observations = dp_calloc(no, sizeof(float));
        e->final_observations = dp_calloc(no, sizeof(float));
        e->actions = dp_calloc((size_t)n_envs, sizeof(int));
        e->rewards = dp_calloc((size_t)n_envs, sizeof(float));
        e->terminals = dp_calloc((size_t)n_envs, 1);
        e->truncations = dp_calloc((size_t)n_envs, 1);
        if (!e->observations || !e->final_observations || !e->actions || !e->rewards ||
            !e->terminals || !e->truncations) {
            rl_env_destroy(e);
            return dp_fail(err, DP_ERR_NOMEM, "out of memory creating env buffers");
        }
    }
    *out = e;
    return DP_OK;
}

DpStatus rl_env_create(const char *name, int n_envs, uint64_t seed, const void *config,
                       RlEnv **out, DpError *err) {
    return create(name, n_envs, seed, config, NULL, out, err);
}

DpStatus rl_env_create_with_buffers(const char *name, int n_envs, uint64_t seed,
                                    const void *config, const RlEnvBuffers *bufs, RlEnv **out,
                                    DpError *err) {
    if (!bufs) return dp_fail(err, DP_ERR_INVAL, "rl_env_create_with_buffers: bufs is NULL");
    return create(name, n_envs, seed, config, bufs, out, err);
}

void rl_env_destroy(RlEnv *env) {
    if (!env) return;
    if (env->vt && env->vt->close) env->vt->close(env);
    if (env->owns_buffers) {
        free(env->observations);
        free(env->final_observations);
        free(env->actions);
        free(env->rewards);
        free(env->terminals);
        free(env->truncations);
    }
    free(env->rngs);
    free(env->ep_return);
    free(env->ep_length);
    free(env);
}

void rl_env_reset(RlEnv *env) {
    for (int i = 0; i < env->n_envs; i++) {
        env->ep_return[i] = 0;
        env->ep_length[i] = 0;
        env->rewards[i] = 0;
        env->terminals[i] = 0;
        env->truncations[i] = 0;
        env->vt->reset(env, i);
    }
}

void rl_env_step(RlEnv *env) {
    for (int i = 0; i < env->n_envs; i++) {
        env->vt->step(env, i);
        env->ep_return[i] += env->rewards[i];
        env->ep_length[i] += 1;
        if (env->terminals[i] || env->truncations[i]) {
            env->log.episode_return += env->ep_return[i];
            env->log.episode_length += (float)env->ep_length[i];
            env->log.n += 1;
            env->ep_return[i] = 0;
            env->ep_length[i] = 0;
        }
    }
}

void rl_env_log_reset(RlEnv *env) { memset(&env->log, 0, sizeof env->log); }
