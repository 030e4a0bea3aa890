/*
 * rl: reinforcement learning for driftpilot — the batched environment
 * interface, an actor-critic MLP, and PPO as Stable-Baselines3 defines it.
 *
 * ---- Environments ----
 * Environments follow PufferLib's C contract with batched buffers: the
 * observations (n_envs * obs_dim floats), actions (n_envs ints), rewards,
 * terminals and truncations (n_envs each) live in flat arrays that the
 * environment writes into.  They are either allocated by rl_env_create, or
 * owned by the caller and lent through rl_env_create_with_buffers (zero copy).
 * An environment auto-resets: after a step that ends an episode (terminal or
 * truncated), the observation buffer holds the first observation of the next
 * episode, and the final observation of the finished one is in
 * final_observations (needed to bootstrap truncated episodes in GAE).
 *
 * Each environment kind is a const RlEnvVtbl, registered by name; instances
 * carry one DpRng stream per env (no rand()), so results do not depend on
 * threads.  "cartpole" (Gymnasium's CartPole-v1) is built in.
 *
 *     RlEnv *env = NULL;
 *     if (rl_env_create("cartpole", 8, seed, NULL, &env, &err)) ...;
 *     rl_env_reset(env);
 *     for (...) { set env->actions[i]; rl_env_step(env); read env->rewards[i] ... }
 *     rl_env_destroy(env);
 *
 * ---- PPO ----
 *     PpoConfig cfg;
 *     ppo_config_default(&cfg);                 // SB3's PPO defaults
 *     ppo_config_preset(&cfg, "cartpole", &err); // or the zoo's CartPole-v1 set
 *     Ppo *ppo = NULL;
 *     ppo_create(&cfg, env->obs_dim, env->n_actions, &ppo, &err);
 *     ppo_train(ppo, env, 100000, my_callback, my_data, &err);
 *     ppo_policy_save(ppo_policy(ppo), "policy.bin", &err);
 *     ppo_free(ppo);
 *
 *     PpoPolicy *pol = NULL;                    // deployment (policy, control)
 *     ppo_policy_load("policy.bin", &pol, &err);
 *     int a = ppo_predict(pol, raw_obs, 1, NULL); // raw obs: the normaliser is inside
 *     ppo_policy_free(pol);
 *
 * Ownership: every *_create / *_load result is freed by its *_destroy / *_free
 * (NULL-safe).  ppo_policy(ppo) is borrowed from the trainer.
 * Thread safety: an RlEnv, Ppo or DpRng is used by one thread at a time;
 * ppo_predict only reads the policy, so many threads may share one policy
 * (each with its own DpRng).  ppo_train may use cfg.n_threads threads (its own small pool)
 * internally; results are bit-for-bit identical for the same seed, build and
 * n_threads.
 */
#ifndef DRIFTPILOT_RL_H
#define DRIFTPILOT_RL_H

#include "core.h"

// ---- environments ----

/* Continuous actions are not implemented yet: the enum, RlPolicyDist and the
 * file format reserve the place (TODO: Gaussian head with a state-free
 * log-std, float action buffer). */
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
    int obs_dim;                                     /* default; init may override env->obs_dim */
    RlActionKind action_kind;
    int n_actions;                                   /* discrete: default; init may override */
    /* Allocates per-env state for env->n_envs envs into env->state.  It runs
     * before the buffers exist, so it may set env->obs_dim and env->n_actions
     * from config.  On failure it frees what it allocated. */
    DpStatus (*init)(RlEnv *env, const void *config, DpError *err);
    /* Resets env i, writing its observation at env->observations + i*obs_dim,
     * drawing only from env->rngs[i]. */
    void (*reset)(RlEnv *env, int i);
    /* Steps env i with env->actions[i]; writes rewards[i], terminals[i],
     * truncations[i], and on episode end final_observations + i*obs_dim,
     * then auto-resets env i (writes the new first observation). */
    void (*step)(RlEnv *env, int i);
    void (*close)(RlEnv *env);                       /* frees env->state only */
} RlEnvVtbl;

struct RlEnv {
    const RlEnvVtbl *vt;
    int n_envs;
    int obs_dim;
    /* Buffers: owned by the caller when passed to rl_env_create_with_buffers,
     * otherwise allocated by rl_env_create and freed by rl_env_destroy. */
    float *observations;        /* (n_envs, obs_dim) */
    float *final_observations;  /* (n_envs, obs_dim): valid where an episode just ended */
    int *actions;               /* (n_envs) */
    float *rewards;             /* (n_envs) */
    unsigned char *terminals;   /* (n_envs) */
    unsigned char *truncations; /* (n_envs) */
    DpRng *rngs;                /* (n_envs), one stream per env; owned by the env */
    void *state;                /* the env kind's own state */
    RlLog log;                  /* accumulated since the last rl_env_log_reset */
    float *ep_return;           /* (n_envs) running return of the current episode */
    int *ep_length;             /* (n_envs) */
    int owns_buffers;
    int n_actions;              /* discrete action count of this instance */
};

/* Caller-owned buffers for rl_env_create_with_buffers; sized for n_envs
 * environments of obs_dim floats each. */
typedef struct {
    int obs_dim;                /* what the caller sized observations for */
    float *observations;
    float *final_observations;
    int *actions;
    float *rewards;
    unsigned char *terminals;
    unsigned char *truncations;
} RlEnvBuffers;

/* Registers an environment kind so rl_env_create can find it by name
 * (built in: "cartpole").  At most 32 kinds; registering the same vtbl twice
 * is a no-op, a different vtbl with a taken name is DP_ERR_STATE.  Not
 * thread-safe: register at start-up. */
DpStatus rl_env_register(const RlEnvVtbl *vt, DpError *err);
const RlEnvVtbl *rl_env_find(const char *name);
/* Names of the registered kinds, for help texts: writes up to cap pointers,
 * returns the number of kinds. */
int rl_env_list(const char **names, int cap);

/* Creates n_envs instances of the named kind with their own buffers; env i
 * draws from stream i of seed.  config is kind-specific (NULL: defaults).
 * Unknown names are DP_ERR_INVAL listing the known kinds. */
DpStatus rl_env_create(const char *name, int n_envs, uint64_t seed, const void *config,
                       RlEnv **out, DpError *err);
/* Same, writing into caller-owned buffers (which must outlive the env and
 * match the instance's obs_dim, else DP_ERR_INVAL). */
DpStatus rl_env_create_with_buffers(const char *name, int n_envs, uint64_t seed,
                                    const void *config, const RlEnvBuffers *bufs, RlEnv **out,
                                    DpError *err);
void rl_env_destroy(RlEnv *env);
void rl_env_reset(RlEnv *env);          /* resets every env and the running episode stats */
void rl_env_step(RlEnv *env);           /* steps every env, updates log */
void rl_env_log_reset(RlEnv *env);

// ---- CartPole-v1 (Gymnasium), exposed for tests ----

typedef struct {
    double x, x_dot, theta, theta_dot;
} RlCartPoleState;

/* One Euler step of Gymnasium's CartPole dynamics from s with action 0/1;
 * returns 1 when the new state is terminal. */
int rl_cartpole_dynamics(RlCartPoleState *s, int action);

// ---- MLP ----

#define RL_MLP_MAX_LAYERS 8
#define RL_MLP_MAX_WIDTH 1024

typedef enum { RL_ACT_TANH = 0, RL_ACT_RELU = 1 } RlActivation;

/* A fully connected net: sizes[0] inputs -> ... -> sizes[n_layers] outputs,
 * activation after every layer but the last.  Weights of layer l are stored
 * input-major, W_l[i*out + o] (the transpose of torch's (out, in)), followed
 * by the bias b_l[o]; all layers live in one allocation, params, and
 * gradients/Adam moments use the same offsets. */
typedef struct {
    int n_layers;
    int sizes[RL_MLP_MAX_LAYERS + 1];
    RlActivation act;
    size_t n_params;
    size_t w_off[RL_MLP_MAX_LAYERS];
    size_t b_off[RL_MLP_MAX_LAYERS];
    float *params;              /* owned, n_params floats */
} RlMlp;

/* Activations saved by rl_mlp_forward for rl_mlp_backward: one (cap, width)
 * buffer per layer output, plus scratch for backward. */
typedef struct {
    int cap;                    /* max batch size */
    float *act[RL_MLP_MAX_LAYERS + 1];  /* act[0] unused (input is borrowed) */
    float *d0, *d1;             /* backward scratch (cap, max width) */
    float *wt, *gt;             /* transposed weights / narrow-layer gradient scratch */
    float *mem;
} RlMlpCache;

/* sizes has n_layers+1 entries; params are zero until rl_mlp_init_orthogonal. */
DpStatus rl_mlp_init(RlMlp *m, int n_layers, const int *sizes, RlActivation act, DpError *err);
void rl_mlp_free(RlMlp *m);
/* Orthogonal weights (QR of a Gaussian matrix, as torch.nn.init.orthogonal_)
 * scaled by hidden_gain for hidden layers and out_gain for the last; biases 0. */
void rl_mlp_init_orthogonal(RlMlp *m, float hidden_gain, float out_gain, DpRng *rng);
DpStatus rl_mlp_cache_init(RlMlpCache *c, const RlMlp *m, int cap, DpError *err);
void rl_mlp_cache_free(RlMlpCache *c);
/* x (B, sizes[0]) -> returns a pointer to the output (B, sizes[n_layers])
 * inside the cache.  B <= cache cap. */
const float *rl_mlp_forward(const RlMlp *m, RlMlpCache *c, const float *x, int B);
/* Given dout (B, out) for the last forward with the same x, adds the
 * parameter gradients into grad (n_params floats).  If dx is not NULL it
 * receives d/dx (B, sizes[0]). */
void rl_mlp_backward(const RlMlp *m, RlMlpCache *c, const float *x, const float *dout, int B,
                     float *grad, float *dx);
/* The tanh the MLP uses (vectorisable; within ~1e-7 relative of tanhf). */
float rl_tanh(float x);
/* Single-sample forward with stack scratch (no cache): out (sizes[n_layers]). */
void rl_mlp_forward1(const RlMlp *m, const float *x, float *out);

// ---- categorical distribution helpers ----

/* Log-probabilities of n logits into logp; returns the entropy. */
float rl_categorical_logp(const float *logits, int n, float *logp);
/* Samples from logits (n) with u uniform in [0, 1). */
int rl_categorical_sample(const float *logits, int n, double u);
int rl_argmax(const float *x, int n);

// ---- running observation normaliser (VecNormalize) ----

typedef struct {
    int dim;
    int enabled;
    double count;               /* starts at 1e-4 as SB3's RunningMeanStd */
    double *mean, *var;         /* (dim) */
    double clip;                /* 10 */
    double eps;                 /* 1e-8 */
} RlObsNorm;

DpStatus rl_obsnorm_init(RlObsNorm *n, int dim, int enabled, DpError *err);
void rl_obsnorm_free(RlObsNorm *n);
/* Updates the running mean/var with a batch x (B, dim) (parallel-variance
 * formula, population variance of the batch). */
void rl_obsnorm_update(RlObsNorm *n, const float *x, int B);
/* out = clip((x - mean) / sqrt(var + eps), -clip, clip); copies when disabled.
 * out may equal x. */
void rl_obsnorm_apply(const RlObsNorm *n, const float *x, float *out, int B);

// ---- GAE ----

/* Generalised advantage estimation over a rollout of n_steps x n_envs (time
 * major), exactly as SB3's RolloutBuffer: episode_starts[t] marks that obs t
 * began a new episode; last_values/last_dones are for the observation after
 * the last step.  Truncation is handled by the caller beforehand (rewards of
 * truncated steps already include gamma * V(final_obs)).  Writes advantages
 * and returns (= advantages + values). */
void rl_gae(int n_steps, int n_envs, const float *rewards, const float *values,
            const unsigned char *episode_starts, const float *last_values,
            const unsigned char *last_dones, float gamma, float lambda, float *advantages,
            float *returns);

/* SB3's handling of time limits: for each env whose episode was truncated
 * (and not terminated) at this step, rewards[e] += gamma * final_values[e],
 * the value of the final observation, so GAE (which then treats the step as
 * an episode end) still credits what would have come next.  Envs that did
 * not truncate are untouched (final_values[e] is not read). */
void rl_bootstrap_truncated(int n_envs, float *rewards, const unsigned char *terminals,
                            const unsigned char *truncations, const float *final_values,
                            float gamma);

// ---- PPO ----

typedef enum { RL_SCHEDULE_CONSTANT = 0, RL_SCHEDULE_LINEAR = 1 } RlSchedule;

#define PPO_MAX_HIDDEN 6

typedef struct {
    int n_steps;                /* rollout length per env (SB3 2048) */
    int batch_size;             /* minibatch size (64) */
    int n_epochs;               /* (10) */
    double gamma;               /* (0.99) */
    double gae_lambda;          /* (0.95) */
    double learning_rate;       /* initial value (3e-4) */
    RlSchedule lr_schedule;     /* linear: lr * progress_remaining */
    double clip_range;          /* (0.2) */
    RlSchedule clip_schedule;
    double clip_range_vf;       /* <= 0: no value clipping (SB3 None) */
    double ent_coef;            /* (0) */
    double vf_coef;             /* (0.5) */
    double max_grad_norm;       /* (0.5); <= 0 disables */
    double target_kl;           /* <= 0: none */
    int normalize_advantage;    /* (1) per minibatch */
    int normalize_obs;          /* VecNormalize-style running obs normalisation (0) */
    double clip_obs;            /* (10) */
    int normalize_reward;       /* VecNormalize reward scaling (0) */
    double clip_reward;         /* (10) */
    int n_hidden;               /* hidden layers per net (2) */
    int hidden[PPO_MAX_HIDDEN]; /* widths (64, 64) */
    RlActivation activation;    /* (tanh) */
    double adam_eps;            /* (1e-5) */
    int n_threads;              /* threads for minibatch updates (1) */
    /* A prior on one action: its initial logit is raised by prior_logit (0:
     * none; SB3 has no such option).  Where one action is the default ("do
     * nothing") and the others are rare, states the learner seldom visits keep
     * the default instead of the argmax of a near-uniform head. */
    int prior_action;
    double prior_logit;
    uint64_t seed;
} PpoConfig;

/* SB3's PPO defaults (MlpPolicy: separate 64,64 tanh nets). */
void ppo_config_default(PpoConfig *c);
/* Applies a named set of hyperparameters on top of c: "cartpole" (RL
 * Baselines3 Zoo's PPO CartPole-v1).  Unknown names are DP_ERR_INVAL. */
DpStatus ppo_config_preset(PpoConfig *c, const char *name, DpError *err);
/* Checks ranges; DP_ERR_INVAL naming the field. */
DpStatus ppo_config_check(const PpoConfig *c, DpError *err);

/* The deployable part: both nets and the observation normaliser. */
typedef struct {
    int obs_dim;
    int n_actions;
    RlActionKind action_kind;
    RlMlp pi;                   /* obs -> logits */
    RlMlp vf;                   /* obs -> value */
    RlObsNorm obs_norm;
} PpoPolicy;

/* Builds a policy with orthogonal init (gains sqrt 2 / 0.01 / 1). */
DpStatus ppo_policy_create(int obs_dim, int n_actions, int n_hidden, const int *hidden,
                           RlActivation act, int normalize_obs, double clip_obs, DpRng *rng,
                           PpoPolicy **out, DpError *err);
void ppo_policy_free(PpoPolicy *p);
/* Chooses an action for one raw observation (normalised inside with the
 * saved statistics, which are not updated).  deterministic: argmax;
 * otherwise sampled from rng (must not be NULL then). */
int ppo_predict(const PpoPolicy *p, const float *obs, int deterministic, DpRng *rng);
/* The value estimate of one raw observation. */
float ppo_predict_value(const PpoPolicy *p, const float *obs);
/* Action probabilities (n_actions) of one raw observation. */
void ppo_predict_probs(const PpoPolicy *p, const float *obs, float *probs);

/* File format (little-endian, described in policy.c): magic "DPPPOPOL",
 * u32 version (1), a fixed header of shapes and sizes, the payload (obs
 * normaliser in f64, then pi and vf parameters in f32), and the SHA-256 (hex)
 * of everything before it.
 * Loading refuses a short file, a foreign magic, an unknown version,
 * inconsistent sizes, or a checksum mismatch, with a message that says which. */
DpStatus ppo_policy_save(const PpoPolicy *p, const char *path, DpError *err);
DpStatus ppo_policy_load(const char *path, PpoPolicy **out, DpError *err);
/* The same on memory buffers (*out_buf from save is freed with free()). */
DpStatus ppo_policy_serialize(const PpoPolicy *p, unsigned char **out_buf, size_t *out_len,
                              DpError *err);
DpStatus ppo_policy_deserialize(const unsigned char *buf, size_t len, PpoPolicy **out,
                                DpError *err);

/* What the trainer reports after each rollout+update iteration. */
typedef struct {
    long long steps_done;       /* env steps so far (all envs) */
    long long total_steps;
    int iteration;
    int n_episodes;             /* episodes finished so far */
    double mean_return;         /* mean raw return over the last 100 episodes (NaN: none) */
    double mean_length;
    double policy_loss, value_loss, entropy, approx_kl, clip_fraction, explained_variance;
    double learning_rate, clip_range;
    int epochs_done;            /* < n_epochs after a target_kl stop */
    double elapsed_s;
    double rollout_s;           /* time spent collecting rollouts so far */
} PpoIterInfo;

/* Return non-zero to stop training early (ppo_train then returns DP_OK). */
typedef int (*PpoCallback)(const PpoIterInfo *info, void *user);

typedef struct Ppo Ppo;

DpStatus ppo_create(const PpoConfig *cfg, int obs_dim, int n_actions, Ppo **out, DpError *err);
void ppo_free(Ppo *ppo);
/* Trains on env (its n_envs is the rollout width; any registered kind with
 * discrete actions and matching obs_dim/n_actions) until total_steps env steps
 * have been taken (rounded up to whole rollouts, as SB3).  Resets env first.
 * cb may be NULL.  May be called again to continue training. */
DpStatus ppo_train(Ppo *ppo, RlEnv *env, long long total_steps, PpoCallback cb, void *user,
                   DpError *err);
const PpoPolicy *ppo_policy(const Ppo *ppo);
const PpoConfig *ppo_config(const Ppo *ppo);

// ---- PPO internals, exposed for tests ----

/* The PPO loss on one minibatch of B samples and its gradient with respect to
 * the logits (B, A) and values (B), as SB3 computes it (advantages are
 * normalised inside when normalize_adv).  Returns the total loss; stats
 * (may be NULL) receive policy_loss, value_loss, entropy, approx_kl,
 * clip_fraction. */
typedef struct {
    double policy_loss, value_loss, entropy, approx_kl, clip_fraction;
} PpoLossStats;
double ppo_loss_grad(int B, int A, const float *logits, const float *values,
                     const int *actions, const float *old_logp, const float *old_values,
                     const float *advantages, const float *returns, double clip_range,
                     double clip_range_vf, double ent_coef, double vf_coef, int normalize_adv,
                     float *dlogits, float *dvalues, PpoLossStats *stats);

/* Evaluates a policy for n_episodes on a fresh env of the named kind (one
 * env seeded with seed, episodes back to back, so short episodes are not
 * over-sampled); writes the mean and the sample std (n-1) of the returns.
 * deterministic: argmax actions, else sampled from a stream of seed. */
DpStatus ppo_evaluate(const PpoPolicy *p, const char *env_name, int n_episodes, uint64_t seed,
                      int deterministic, double *mean, double *std, DpError *err);

#endif
