/* PPO as Stable-Baselines3 defines it (and CleanRL, where they agree):
 * rollouts of n_steps over n_envs, GAE with truncated episodes bootstrapped
 * from V(final observation), per-minibatch advantage normalisation, the
 * clipped surrogate, optional value clipping (SB3 style: MSE of the clipped
 * prediction), entropy and value coefficients, one global gradient-norm clip
 * over both nets, Adam (eps 1e-5), n_epochs of shuffled minibatches, linear
 * schedules on progress_remaining, VecNormalize-style observation and reward
 * normalisation, and the target-KL early stop (checked before the step, as
 * SB3 does).
 *
 * Determinism: all randomness (initialisation, action sampling, shuffles)
 * comes from DpRng streams of cfg.seed; the minibatch is split into fixed
 * slices per thread and per-thread gradients are summed in thread order, so
 * a run is reproducible bit for bit for the same build and n_threads. */
#include "rl.h"
#include "rl_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PPO_EP_WINDOW 100

typedef struct {
    RlMlpCache pi_c, vf_c;
    float *grad;                /* (n_params) this thread's gradient */
} PpoThread;

struct Ppo {
    PpoConfig cfg;
    PpoPolicy *pol;
    int obs_dim, n_actions;
    size_t n_pi, n_params;      /* pi params, then vf params, in one flat vector */
    float *adam_m, *adam_v;
    long long adam_t;
    DpRng rng;                  /* action sampling and shuffles */
    int nt;                     /* threads */
    RlPool *pool;
    PpoThread th[64];
    /* rollout buffer, time major: index t*n_envs + e */
    int rb_envs;
    float *rb_obs, *rb_rew, *rb_val, *rb_logp, *rb_adv, *rb_ret;
    int *rb_act;
    unsigned char *rb_start;
    float *last_obs, *last_val, *tmp_obs, *tmp_val;
    unsigned char *last_start;
    float *ep_ret;              /* raw return of the running episode per env */
    int *ep_len;
    double *disc_ret;           /* reward normalisation: discounted return per env */
    double ret_mean, ret_var, ret_count;
    RlMlpCache roll_pi, roll_vf;
    /* minibatch */
    int *perm;
    float *mb_obs, *mb_oldlogp, *mb_oldval, *mb_adv, *mb_ret, *mb_logits, *mb_val, *mb_dlogits,
        *mb_dval;
    int *mb_act;
    double win_ret[PPO_EP_WINDOW], win_len[PPO_EP_WINDOW];
    int n_episodes;
};

// ---- configuration ----

void ppo_config_default(PpoConfig *c) {
    memset(c, 0, sizeof *c);
    c->n_steps = 2048;
    c->batch_size = 64;
    c->n_epochs = 10;
    c->gamma = 0.99;
    c->gae_lambda = 0.95;
    c->learning_rate = 3e-4;
    c->lr_schedule = RL_SCHEDULE_CONSTANT;
    c->clip_range = 0.2;
    c->clip_schedule = RL_SCHEDULE_CONSTANT;
    c->clip_range_vf = 0;
    c->ent_coef = 0.0;
    c->vf_coef = 0.5;
    c->max_grad_norm = 0.5;
    c->target_kl = 0;
    c->normalize_advantage = 1;
    c->normalize_obs = 0;
    c->clip_obs = 10.0;
    c->normalize_reward = 0;
    c->clip_reward = 10.0;
    c->n_hidden = 2;
    c->hidden[0] = 64;
    c->hidden[1] = 64;
    c->activation = RL_ACT_TANH;
    c->adam_eps = 1e-5;
    c->n_threads = 1;
    c->seed = 0;
}

DpStatus ppo_config_preset(PpoConfig *c, const char *name, DpError *err) {
    if (name && !strcmp(name, "cartpole")) {
        /* rl-baselines3-zoo hyperparams/ppo.yml, CartPole-v1 (8 envs, 1e5 steps) */
        c->n_steps = 32;
        c->batch_size = 256;
        c->gae_lambda = 0.8;
        c->gamma = 0.98;
        c->n_epochs = 20;
        c->ent_coef = 0.0;
        c->learning_rate = 1e-3;
        c->lr_schedule = RL_SCHEDULE_LINEAR;
        c->clip_range = 0.2;
        c->clip_schedule = RL_SCHEDULE_LINEAR;
        return DP_OK;
    }
    return dp_fail(err, DP_ERR_INVAL, "unknown preset '%s' (known: cartpole)",
                   name ? name : "(null)");
}

DpStatus ppo_config_check(const PpoConfig *c, DpError *err) {
#define CHECK(cond, ...) \
    if (!(cond)) return dp_fail(err, DP_ERR_INVAL, __VA_ARGS__)
    CHECK(c->n_steps >= 1, "n_steps must be >= 1 (got %d)", c->n_steps);
    CHECK(c->batch_size >= 1, "batch_size must be >= 1 (got %d)", c->batch_size);
    CHECK(c->n_epochs >= 1, "n_epochs must be >= 1 (got %d)", c->n_epochs);
    CHECK(c->gamma >= 0 && c->gamma <= 1, "gamma must be in [0, 1] (got %g)", c->gamma);
    CHECK(c->gae_lambda >= 0 && c->gae_lambda <= 1, "gae_lambda must be in [0, 1] (got %g)",
          c->gae_lambda);
    CHECK(c->learning_rate > 0, "learning_rate must be > 0 (got %g)", c->learning_rate);
    CHECK(c->clip_range > 0, "clip_range must be > 0 (got %g)", c->clip_range);
    CHECK(c->vf_coef >= 0 && c->ent_coef >= 0, "vf_coef and ent_coef must be >= 0");
    CHECK(c->n_hidden >= 0 && c->n_hidden <= PPO_MAX_HIDDEN, "n_hidden must be in [0, %d]",
          PPO_MAX_HIDDEN);
    for (int l = 0; l < c->n_hidden; l++)
        CHECK(c->hidden[l] >= 1 && c->hidden[l] <= RL_MLP_MAX_WIDTH,
              "hidden width %d out of [1, %d]", c->hidden[l], RL_MLP_MAX_WIDTH);
    CHECK(c->activation == RL_ACT_TANH || c->activation == RL_ACT_RELU, "unknown activation");
    CHECK(c->adam_eps > 0, "adam_eps must be > 0");
    CHECK(c->n_threads >= 1 && c->n_threads <= 64, "n_threads must be in [1, 64] (got %d)",
          c->n_threads);
    CHECK(c->clip_obs > 0 && c->clip_reward > 0, "clip_obs and clip_reward must be > 0");
#undef CHECK
    return DP_OK;
}

// ---- GAE ----

void rl_gae(int n_steps, int n_envs, const float *rewards, const float *values,
            const unsigned char *episode_starts, const float *last_values,
            const unsigned char *last_dones, float gamma, float lambda, float *advantages,
            float *returns) {
    for (int e = 0; e < n_envs; e++) {
        float last = 0;
        for (int t = n_steps - 1; t >= 0; t--) {
            size_t k = (size_t)t * n_envs + e;
            float next_nonterm, next_value;
            if (t == n_steps - 1) {
                next_nonterm = 1.0f - (float)last_dones[e];
                next_value = last_values[e];
            } else {
                next_nonterm = 1.0f - (float)episode_starts[k + n_envs];
                next_value = values[k + n_envs];
            }
            float delta = rewards[k] + gamma * next_value * next_nonterm - values[k];
            last = delta + gamma * lambda * next_nonterm * last;
            advantages[k] = last;
            returns[k] = last + values[k];
        }
    }
}

void rl_bootstrap_truncated(int n_envs, float *rewards, const unsigned char *terminals,
                            const unsigned char *truncations, const float *final_values,
                            float gamma) {
    for (int e = 0; e < n_envs; e++)
        if (truncations[e] && !terminals[e]) rewards[e] += gamma * final_values[e];
}

// ---- loss ----

double ppo_loss_grad(int B, int A, const float *logits, const float *values,
                     const int *actions, const float *old_logp, const float *old_values,
                     const float *advantages, const float *returns, double clip_range,
                     double clip_range_vf, double ent_coef, double vf_coef, int normalize_adv,
                     float *dlogits, float *dvalues, PpoLossStats *stats) {
    double mean = 0, std = 0;
    int norm = normalize_adv && B > 1;
    if (norm) {
        for (int b = 0; b < B; b++) mean += advantages[b];
        mean /= B;
        for (int b = 0; b < B; b++) std += (advantages[b] - mean) * (advantages[b] - mean);
        std = sqrt(std / (B - 1)); /* torch.std is the unbiased estimate */
    }
    double pl = 0, vl = 0, ent = 0, kl = 0, cf = 0;
    const double inv_b = 1.0 / B, lo = 1.0 - clip_range, hi = 1.0 + clip_range;
    const float d_ent = (float)(-ent_coef * inv_b); /* d loss / d entropy_b */
    float lp[RL_MLP_MAX_WIDTH];
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * A;
        float h = rl_categorical_logp(z, A, lp);
        int a = actions[b];
        double adv = norm ? (advantages[b] - mean) / (std + 1e-8) : advantages[b];
        double log_ratio = (double)lp[a] - old_logp[b];
        double ratio = exp(log_ratio);
        double cr = ratio < lo ? lo : ratio > hi ? hi : ratio;
        double s1 = adv * ratio, s2 = adv * cr;
        pl -= s1 < s2 ? s1 : s2;
        /* min picks the unclipped term (or ties with it inside the clip
         * range): gradient adv through ratio; else the clamp kills it. */
        double g_ratio = s1 <= s2 ? adv : 0.0;
        float dlogp = (float)(-g_ratio * ratio * inv_b);
        if (fabs(ratio - 1.0) > clip_range) cf += 1;
        kl += (ratio - 1.0) - log_ratio;
        ent += h;
        float *dz = dlogits + (size_t)b * A;
        for (int j = 0; j < A; j++) {
            float p = expf(lp[j]);
            /* d logp_a/dz_j = [j==a] - p_j;  dH/dz_j = -p_j (log p_j + H) */
            dz[j] = dlogp * ((j == a ? 1.0f : 0.0f) - p) + d_ent * (-p * (lp[j] + h));
        }
        double v = values[b], vp = v, pass = 1.0;
        if (clip_range_vf > 0) {
            double dv = v - old_values[b];
            if (dv > clip_range_vf) {
                dv = clip_range_vf;
                pass = 0;
            } else if (dv < -clip_range_vf) {
                dv = -clip_range_vf;
                pass = 0;
            }
            vp = old_values[b] + dv;
        }
        double e = returns[b] - vp;
        vl += e * e;
        dvalues[b] = (float)(pass * vf_coef * 2.0 * (vp - returns[b]) * inv_b);
    }
    pl *= inv_b;
    vl *= inv_b;
    ent *= inv_b;
    if (stats) {
        stats->policy_loss = pl;
        stats->value_loss = vl;
        stats->entropy = ent;
        stats->approx_kl = kl * inv_b;
        stats->clip_fraction = cf * inv_b;
    }
    return pl - ent_coef * ent + vf_coef * vl;
}

// ---- create / free ----

const PpoPolicy *ppo_policy(const Ppo *ppo) { return ppo->pol; }
const PpoConfig *ppo_config(const Ppo *ppo) { return &ppo->cfg; }

static void free_rollout(Ppo *p) {
    free(p->rb_obs);
    free(p->rb_rew);
    free(p->rb_val);
    free(p->rb_logp);
    free(p->rb_adv);
    free(p->rb_ret);
    free(p->rb_act);
    free(p->rb_start);
    free(p->last_obs);
    free(p->last_val);
    free(p->tmp_obs);
    free(p->tmp_val);
    free(p->last_start);
    free(p->ep_ret);
    free(p->ep_len);
    free(p->disc_ret);
    free(p->perm);
    free(p->mb_obs);
    free(p->mb_oldlogp);
    free(p->mb_oldval);
    free(p->mb_adv);
    free(p->mb_ret);
    free(p->mb_logits);
    free(p->mb_val);
    free(p->mb_dlogits);
    free(p->mb_dval);
    free(p->mb_act);
    rl_mlp_cache_free(&p->roll_pi);
    rl_mlp_cache_free(&p->roll_vf);
    for (int t = 0; t < p->nt; t++) {
        rl_mlp_cache_free(&p->th[t].pi_c);
        rl_mlp_cache_free(&p->th[t].vf_c);
    }
    p->rb_envs = 0;
}

void ppo_free(Ppo *p) {
    if (!p) return;
    rl_pool_destroy(p->pool);
    free_rollout(p);
    for (int t = 0; t < 64; t++) dp_aligned_free(p->th[t].grad);
    ppo_policy_free(p->pol);
    dp_aligned_free(p->adam_m);
    dp_aligned_free(p->adam_v);
    free(p);
}

DpStatus ppo_create(const PpoConfig *cfg, int obs_dim, int n_actions, Ppo **out, DpError *err) {
    *out = NULL;
    DpStatus st = ppo_config_check(cfg, err);
    if (st) return st;
    Ppo *p = dp_calloc(1, sizeof *p);
    if (!p) return dp_fail(err, DP_ERR_NOMEM, "ppo: out of memory");
    p->cfg = *cfg;
    p->obs_dim = obs_dim;
    p->n_actions = n_actions;
    p->nt = cfg->n_threads;
    DpRng init_rng;
    dp_rng_seed_stream(&init_rng, cfg->seed, 1);
    dp_rng_seed_stream(&p->rng, cfg->seed, 2);
    st = ppo_policy_create(obs_dim, n_actions, cfg->n_hidden, cfg->hidden, cfg->activation,
                           cfg->normalize_obs, cfg->clip_obs, &init_rng, &p->pol, err);
    if (st) goto fail;
    if (cfg->prior_logit != 0 && cfg->prior_action >= 0 && cfg->prior_action < n_actions) {
        RlMlp *pi = &p->pol->pi;
        pi->params[pi->b_off[pi->n_layers - 1] + (size_t)cfg->prior_action] = (float)cfg->prior_logit;
    }
    p->n_pi = p->pol->pi.n_params;
    p->n_params = p->n_pi + p->pol->vf.n_params;
    size_t bytes = p->n_params * sizeof(float);
    p->adam_m = dp_aligned_alloc(bytes);
    p->adam_v = dp_aligned_alloc(bytes);
    if (!p->adam_m || !p->adam_v) goto nomem;
    memset(p->adam_m, 0, bytes);
    memset(p->adam_v, 0, bytes);
    for (int t = 0; t < p->nt; t++) {
        p->th[t].grad = dp_aligned_alloc(bytes);
        if (!p->th[t].grad) goto nomem;
    }
    st = rl_pool_create(p->nt, &p->pool, err);
    if (st) goto fail;
    *out = p;
    return DP_OK;
nomem:
    st = dp_fail(err, DP_ERR_NOMEM, "ppo: out of memory");
fail:
    ppo_free(p);
    return st;
}

/* Sizes the rollout and minibatch buffers for n_envs (once per width). */
static DpStatus ensure_buffers(Ppo *p, int n_envs, DpError *err) {
    if (p->rb_envs == n_envs) return DP_OK;
    free_rollout(p);
    size_t N = (size_t)p->cfg.n_steps * n_envs, D = (size_t)p->obs_dim, A = (size_t)p->n_actions;
    size_t mb = (size_t)p->cfg.batch_size < N ? (size_t)p->cfg.batch_size : N;
    p->rb_obs = dp_calloc(N * D, sizeof(float));
    p->rb_rew = dp_calloc(N, sizeof(float));
    p->rb_val = dp_calloc(N, sizeof(float));
    p->rb_logp = dp_calloc(N, sizeof(float));
    p->rb_adv = dp_calloc(N, sizeof(float));
    p->rb_ret = dp_calloc(N, sizeof(float));
    p->rb_act = dp_calloc(N, sizeof(int));
    p->rb_start = dp_calloc(N, 1);
    p->last_obs = dp_calloc((size_t)n_envs * D, sizeof(float));
    p->tmp_obs = dp_calloc((size_t)n_envs * D, sizeof(float));
    p->last_val = dp_calloc((size_t)n_envs, sizeof(float));
    p->tmp_val = dp_calloc((size_t)n_envs, sizeof(float));
    p->last_start = dp_calloc((size_t)n_envs, 1);
    p->ep_ret = dp_calloc((size_t)n_envs, sizeof(float));
    p->ep_len = dp_calloc((size_t)n_envs, sizeof(int));
    p->disc_ret = dp_calloc((size_t)n_envs, sizeof(double));
    p->perm = dp_calloc(N, sizeof(int));
    p->mb_obs = dp_calloc(mb * D, sizeof(float));
    p->mb_oldlogp = dp_calloc(mb, sizeof(float));
    p->mb_oldval = dp_calloc(mb, sizeof(float));
    p->mb_adv = dp_calloc(mb, sizeof(float));
    p->mb_ret = dp_calloc(mb, sizeof(float));
    p->mb_logits = dp_calloc(mb * A, sizeof(float));
    p->mb_val = dp_calloc(mb, sizeof(float));
    p->mb_dlogits = dp_calloc(mb * A, sizeof(float));
    p->mb_dval = dp_calloc(mb, sizeof(float));
    p->mb_act = dp_calloc(mb, sizeof(int));
    if (!p->rb_obs || !p->rb_rew || !p->rb_val || !p->rb_logp || !p->rb_adv || !p->rb_ret ||
        !p->rb_act || !p->rb_start || !p->last_obs || !p->tmp_obs || !p->tmp_val || !p->last_val ||
        !p->last_start || !p->ep_ret || !p->ep_len || !p->disc_ret || !p->perm || !p->mb_obs ||
        !p->mb_oldlogp || !p->mb_oldval || !p->mb_adv || !p->mb_ret || !p->mb_logits ||
        !p->mb_val || !p->mb_dlogits || !p->mb_dval || !p->mb_act) {
        free_rollout(p);
        return dp_fail(err, DP_ERR_NOMEM, "ppo: out of memory (rollout buffers)");
    }
    DpStatus st = rl_mlp_cache_init(&p->roll_pi, &p->pol->pi, n_envs, err);
    if (!st) st = rl_mlp_cache_init(&p->roll_vf, &p->pol->vf, n_envs, err);
    int slice = (int)((mb + (size_t)p->nt - 1) / (size_t)p->nt);
    for (int t = 0; t < p->nt && !st; t++) {
        st = rl_mlp_cache_init(&p->th[t].pi_c, &p->pol->pi, slice, err);
        if (!st) st = rl_mlp_cache_init(&p->th[t].vf_c, &p->pol->vf, slice, err);
    }
    if (st) {
        free_rollout(p);
        return st;
    }
    p->rb_envs = n_envs;
    return DP_OK;
}

// ---- rollout ----

static double schedule(RlSchedule s, double v, double progress_remaining) {
    return s == RL_SCHEDULE_LINEAR ? v * progress_remaining : v;
}

/* VecNormalize reward scaling: divide by the std of the running discounted
 * return, then clip; the return restarts after an episode ends. */
static void scale_rewards(Ppo *p, RlEnv *env, float *rew) {
    int N = env->n_envs;
    double bm = 0, bv = 0;
    for (int e = 0; e < N; e++) {
        p->disc_ret[e] = p->disc_ret[e] * p->cfg.gamma + rew[e];
        bm += p->disc_ret[e];
    }
    bm /= N;
    for (int e = 0; e < N; e++) bv += (p->disc_ret[e] - bm) * (p->disc_ret[e] - bm);
    bv /= N;
    double tot = p->ret_count + N, delta = bm - p->ret_mean;
    double m2 = p->ret_var * p->ret_count + bv * N + delta * delta * p->ret_count * N / tot;
    p->ret_mean += delta * N / tot;
    p->ret_var = m2 / tot;
    p->ret_count = tot;
    double sd = sqrt(p->ret_var + 1e-8);
    for (int e = 0; e < N; e++) {
        double r = rew[e] / sd;
        if (r > p->cfg.clip_reward) r = p->cfg.clip_reward;
        if (r < -p->cfg.clip_reward) r = -p->cfg.clip_reward;
        rew[e] = (float)r;
        if (env->terminals[e] || env->truncations[e]) p->disc_ret[e] = 0;
    }
}

static void record_episode(Ppo *p, double ret, double len) {
    int k = p->n_episodes % PPO_EP_WINDOW;
    p->win_ret[k] = ret;
    p->win_len[k] = len;
    p->n_episodes++;
}

static void collect_rollout(Ppo *p, RlEnv *env, long long *steps) {
    const int N = env->n_envs, D = p->obs_dim, A = p->n_actions, T = p->cfg.n_steps;
    PpoPolicy *pol = p->pol;
    for (int t = 0; t < T; t++) {
        size_t base = (size_t)t * N;
        const float *logits = rl_mlp_forward(&pol->pi, &p->roll_pi, p->last_obs, N);
        const float *vals = rl_mlp_forward(&pol->vf, &p->roll_vf, p->last_obs, N);
        float lp[RL_MLP_MAX_WIDTH];
        for (int e = 0; e < N; e++) {
            const float *z = logits + (size_t)e * A;
            int a = rl_categorical_sample(z, A, dp_rng_uniform(&p->rng));
            rl_categorical_logp(z, A, lp);
            env->actions[e] = a;
            p->rb_act[base + e] = a;
            p->rb_logp[base + e] = lp[a];
            p->rb_val[base + e] = vals[e];
            p->rb_start[base + e] = p->last_start[e];
        }
        memcpy(p->rb_obs + base * D, p->last_obs, (size_t)N * D * sizeof(float));
        rl_env_step(env);
        *steps += N;
        float *rew = p->rb_rew + base;
        for (int e = 0; e < N; e++) {
            rew[e] = env->rewards[e];
            p->ep_ret[e] += env->rewards[e];
            p->ep_len[e] += 1;
            if (env->terminals[e] || env->truncations[e]) {
                record_episode(p, p->ep_ret[e], p->ep_len[e]);
                p->ep_ret[e] = 0;
                p->ep_len[e] = 0;
            }
        }
        if (pol->obs_norm.enabled) rl_obsnorm_update(&pol->obs_norm, env->observations, N);
        rl_obsnorm_apply(&pol->obs_norm, env->observations, p->last_obs, N);
        if (p->cfg.normalize_reward) scale_rewards(p, env, rew);
        for (int e = 0; e < N; e++) {
            /* SB3: a time-limit end that is not a true termination keeps the
             * value of what would have come next. */
            p->tmp_val[e] = 0;
            if (env->truncations[e] && !env->terminals[e]) {
                float x[RL_MLP_MAX_WIDTH];
                rl_obsnorm_apply(&pol->obs_norm, env->final_observations + (size_t)e * D, x, 1);
                rl_mlp_forward1(&pol->vf, x, &p->tmp_val[e]);
            }
            p->last_start[e] = env->terminals[e] || env->truncations[e];
        }
        rl_bootstrap_truncated(N, rew, env->terminals, env->truncations, p->tmp_val,
                               (float)p->cfg.gamma);
    }
    const float *vals = rl_mlp_forward(&pol->vf, &p->roll_vf, p->last_obs, N);
    memcpy(p->last_val, vals, (size_t)N * sizeof(float));
    rl_gae(T, N, p->rb_rew, p->rb_val, p->rb_start, p->last_val, p->last_start,
           (float)p->cfg.gamma, (float)p->cfg.gae_lambda, p->rb_adv, p->rb_ret);
}

// ---- update ----

/* Forward of samples [lo, hi) of the minibatch through both nets. */
static void mb_forward(Ppo *p, PpoThread *th, int lo, int hi) {
    int n = hi - lo, D = p->obs_dim, A = p->n_actions;
    if (n <= 0) return;
    const float *x = p->mb_obs + (size_t)lo * D;
    const float *z = rl_mlp_forward(&p->pol->pi, &th->pi_c, x, n);
    const float *v = rl_mlp_forward(&p->pol->vf, &th->vf_c, x, n);
    memcpy(p->mb_logits + (size_t)lo * A, z, (size_t)n * A * sizeof(float));
    memcpy(p->mb_val + lo, v, (size_t)n * sizeof(float));
}

static void mb_backward(Ppo *p, PpoThread *th, int lo, int hi) {
    memset(th->grad, 0, p->n_params * sizeof(float));
    int n = hi - lo, D = p->obs_dim, A = p->n_actions;
    if (n <= 0) return;
    const float *x = p->mb_obs + (size_t)lo * D;
    rl_mlp_backward(&p->pol->pi, &th->pi_c, x, p->mb_dlogits + (size_t)lo * A, n, th->grad, NULL);
    rl_mlp_backward(&p->pol->vf, &th->vf_c, x, p->mb_dval + lo, n, th->grad + p->n_pi, NULL);
}

/* sqrt for v >= 0 that vectorises: ISO C's sqrtf may set errno, which
 * keeps the compiler from vectorising the Adam loop (and -fno-math-errno is
 * a build-wide flag).  Bit-trick reciprocal square root, three Newton steps
 * (relative error at float rounding level), then v * rsqrt(v); 0 stays 0. */
static inline float sqrt_nonneg(float v) {
    union {
        float f;
        int32_t i;
    } u;
    u.f = v;
    u.i = 0x5f3759df - (u.i >> 1);
    float y = u.f, h = 0.5f * v;
    y = y * (1.5f - h * y * y);
    y = y * (1.5f - h * y * y);
    y = y * (1.5f - h * y * y);
    return v * y;
}

/* torch.optim.Adam (no weight decay) over n values of param. */
static void adam_range(float *restrict param, const float *restrict g, float *restrict m,
                       float *restrict v, size_t n, float step, float inv_bc2, float eps) {
    const float b1 = 0.9f, b2 = 0.999f;
    for (size_t k = 0; k < n; k++) {
        m[k] = b1 * m[k] + (1 - b1) * g[k];
        v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
        param[k] -= step * m[k] / (sqrt_nonneg(v[k]) * inv_bc2 + eps);
    }
}

/* One minibatch split over the pool: thread t takes samples
 * [t*slice, min((t+1)*slice, B)). */
typedef struct {
    Ppo *p;
    int B, slice;
} MbJob;

static void mb_forward_job(void *ctx, int t) {
    MbJob *j = ctx;
    int lo = t * j->slice, hi = lo + j->slice < j->B ? lo + j->slice : j->B;
    mb_forward(j->p, &j->p->th[t], lo, hi);
}

static void mb_backward_job(void *ctx, int t) {
    MbJob *j = ctx;
    int lo = t * j->slice, hi = lo + j->slice < j->B ? lo + j->slice : j->B;
    mb_backward(j->p, &j->p->th[t], lo, hi);
}

static void adam_step(Ppo *p, const float *g, double lr) {
    p->adam_t++;
    double bc1 = 1.0 - pow(0.9, (double)p->adam_t), bc2 = 1.0 - pow(0.999, (double)p->adam_t);
    const float step = (float)(lr / bc1), inv_bc2 = (float)(1.0 / sqrt(bc2));
    const float eps = (float)p->cfg.adam_eps;
    size_t n_pi = p->n_pi;
    adam_range(p->pol->pi.params, g, p->adam_m, p->adam_v, n_pi, step, inv_bc2, eps);
    adam_range(p->pol->vf.params, g + n_pi, p->adam_m + n_pi, p->adam_v + n_pi,
               p->n_params - n_pi, step, inv_bc2, eps);
}

/* One gradient step on minibatch indices idx[0..B).  Returns 0 when the
 * target-KL check stopped it (no step taken). */
static int update_minibatch(Ppo *p, const int *idx, int B, double lr, double clip,
                            PpoLossStats *acc) {
    const int D = p->obs_dim;
    for (int b = 0; b < B; b++) {
        int k = idx[b];
        memcpy(p->mb_obs + (size_t)b * D, p->rb_obs + (size_t)k * D, (size_t)D * sizeof(float));
        p->mb_act[b] = p->rb_act[k];
        p->mb_oldlogp[b] = p->rb_logp[k];
        p->mb_oldval[b] = p->rb_val[k];
        p->mb_adv[b] = p->rb_adv[k];
        p->mb_ret[b] = p->rb_ret[k];
    }
    int nt = p->nt < B ? p->nt : B;
    PpoLossStats st;
    int stop = 0;
    if (nt == 1) {
        mb_forward(p, &p->th[0], 0, B);
        ppo_loss_grad(B, p->n_actions, p->mb_logits, p->mb_val, p->mb_act, p->mb_oldlogp,
                      p->mb_oldval, p->mb_adv, p->mb_ret, clip, p->cfg.clip_range_vf,
                      p->cfg.ent_coef, p->cfg.vf_coef, p->cfg.normalize_advantage, p->mb_dlogits,
                      p->mb_dval, &st);
        stop = p->cfg.target_kl > 0 && st.approx_kl > 1.5 * p->cfg.target_kl;
        if (!stop) mb_backward(p, &p->th[0], 0, B);
    } else {
        /* Threads beyond nt (tiny last minibatch) get empty slices. */
        MbJob job = {p, B, (B + nt - 1) / nt};
        rl_pool_run(p->pool, mb_forward_job, &job);
        ppo_loss_grad(B, p->n_actions, p->mb_logits, p->mb_val, p->mb_act, p->mb_oldlogp,
                      p->mb_oldval, p->mb_adv, p->mb_ret, clip, p->cfg.clip_range_vf,
                      p->cfg.ent_coef, p->cfg.vf_coef, p->cfg.normalize_advantage, p->mb_dlogits,
                      p->mb_dval, &st);
        stop = p->cfg.target_kl > 0 && st.approx_kl > 1.5 * p->cfg.target_kl;
        if (!stop) rl_pool_run(p->pool, mb_backward_job, &job);
        nt = p->nt;
    }
    acc->policy_loss += st.policy_loss;
    acc->value_loss += st.value_loss;
    acc->entropy += st.entropy;
    acc->approx_kl += st.approx_kl;
    acc->clip_fraction += st.clip_fraction;
    if (stop) return 0;
    float *g = p->th[0].grad;
    for (int t = 1; t < nt; t++) {
        const float *gt = p->th[t].grad;
        for (size_t k = 0; k < p->n_params; k++) g[k] += gt[k];
    }
    if (p->cfg.max_grad_norm > 0) {
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (size_t k = 0; k < p->n_params; k++) ss += (double)g[k] * g[k];
        double coef = p->cfg.max_grad_norm / (sqrt(ss) + 1e-6);
        if (coef < 1.0) {
            float c = (float)coef;
            for (size_t k = 0; k < p->n_params; k++) g[k] *= c;
        }
    }
    adam_step(p, g, lr);
    return 1;
}

static double explained_variance(const float *pred, const float *y, size_t n) {
    double my = 0, md = 0;
    for (size_t k = 0; k < n; k++) {
        my += y[k];
        md += y[k] - pred[k];
    }
    my /= n;
    md /= n;
    double vy = 0, vd = 0;
    for (size_t k = 0; k < n; k++) {
        vy += (y[k] - my) * (y[k] - my);
        double d = y[k] - pred[k] - md;
        vd += d * d;
    }
    return vy == 0 ? NAN : 1.0 - vd / vy;
}

DpStatus ppo_train(Ppo *p, RlEnv *env, long long total_steps, PpoCallback cb, void *user,
                   DpError *err) {
    if (!env || env->vt->action_kind != RL_ACTION_DISCRETE)
        return dp_fail(err, DP_ERR_INVAL, "ppo: only discrete-action environments are supported");
    if (env->obs_dim != p->obs_dim || env->n_actions != p->n_actions)
        return dp_fail(err, DP_ERR_INVAL,
                       "ppo: env '%s' has obs_dim %d and %d actions, the policy %d and %d",
                       env->vt->name, env->obs_dim, env->n_actions, p->obs_dim, p->n_actions);
    if (total_steps < 1) return dp_fail(err, DP_ERR_INVAL, "ppo: total_steps must be >= 1");
    DpStatus st = ensure_buffers(p, env->n_envs, err);
    if (st) return st;
    const int N = env->n_envs;
    const size_t NB = (size_t)p->cfg.n_steps * N;
    const int bs = (size_t)p->cfg.batch_size < NB ? p->cfg.batch_size : (int)NB;
    PpoPolicy *pol = p->pol;

    rl_env_reset(env);
    if (pol->obs_norm.enabled) rl_obsnorm_update(&pol->obs_norm, env->observations, N);
    rl_obsnorm_apply(&pol->obs_norm, env->observations, p->last_obs, N);
    for (int e = 0; e < N; e++) {
        p->last_start[e] = 1;
        p->ep_ret[e] = 0;
        p->ep_len[e] = 0;
        p->disc_ret[e] = 0;
    }
    if (p->ret_count == 0) {
        p->ret_var = 1.0;
        p->ret_count = 1e-4;
    }

    long long steps = 0;
    int iter = 0;
    double t0 = dp_time_mono(), t_roll = 0;
    while (steps < total_steps) {
        double tr = dp_time_mono();
        collect_rollout(p, env, &steps);
        t_roll += dp_time_mono() - tr;
        iter++;
        /* SB3 lets this go slightly negative on the last rollout (which
         * overshoots total_steps), giving a negative learning rate and clip
         * range; clamping at 0 makes that last update a no-op instead (linear
         * schedules only; constant ones are unaffected). */
        double progress = 1.0 - (double)steps / (double)total_steps;
        if (progress < 0) progress = 0;
        double lr = schedule(p->cfg.lr_schedule, p->cfg.learning_rate, progress);
        double clip = schedule(p->cfg.clip_schedule, p->cfg.clip_range, progress);

        PpoLossStats acc = {0};
        int n_mb = 0, epochs = 0, cont = 1;
        for (int ep = 0; ep < p->cfg.n_epochs && cont; ep++) {
            for (size_t k = 0; k < NB; k++) p->perm[k] = (int)k;
            dp_rng_shuffle_int(&p->rng, p->perm, NB);
            for (size_t s0 = 0; s0 < NB; s0 += (size_t)bs) {
                int B = (int)(NB - s0 < (size_t)bs ? NB - s0 : (size_t)bs);
                n_mb++;
                if (!update_minibatch(p, p->perm + s0, B, lr, clip, &acc)) {
                    cont = 0;
                    break;
                }
            }
            epochs++;
        }
        if (cb) {
            PpoIterInfo info;
            memset(&info, 0, sizeof info);
            info.steps_done = steps;
            info.total_steps = total_steps;
            info.iteration = iter;
            info.n_episodes = p->n_episodes;
            int nw = p->n_episodes < PPO_EP_WINDOW ? p->n_episodes : PPO_EP_WINDOW;
            info.mean_return = nw ? dp_mean(p->win_ret, (size_t)nw) : NAN;
            info.mean_length = nw ? dp_mean(p->win_len, (size_t)nw) : NAN;
            double inv = n_mb ? 1.0 / n_mb : 0;
            info.policy_loss = acc.policy_loss * inv;
            info.value_loss = acc.value_loss * inv;
            info.entropy = acc.entropy * inv;
            info.approx_kl = acc.approx_kl * inv;
            info.clip_fraction = acc.clip_fraction * inv;
            info.explained_variance = explained_variance(p->rb_val, p->rb_ret, NB);
            info.learning_rate = lr;
            info.clip_range = clip;
            info.epochs_done = epochs;
            info.elapsed_s = dp_time_mono() - t0;
            info.rollout_s = t_roll;
            if (cb(&info, user)) break;
        }
    }
    return DP_OK;
}
