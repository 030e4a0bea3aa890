/* The deployable PPO policy: actor and critic nets plus the running
 * observation normaliser, single-observation prediction, the versioned and
 * checksummed file format, and evaluation over whole episodes.
 *
 * File layout (all integers little-endian, floats IEEE little-endian):
 *   0   magic "DPPPOPOL" (8 bytes)
 *   8   u32 version (1)
 *   12  u32 header bytes that follow up to the payload (HDR_REST)
 *   16  u32 action_kind, obs_dim, n_actions, activation, n_hidden,
 *       hidden[PPO_MAX_HIDDEN], normalize_obs
 *       u64 pi_n_params, vf_n_params, payload_bytes
 *   ..  payload: f64 clip, eps, count, mean[obs_dim], var[obs_dim];
 *       f32 pi params; f32 vf params
 *   end SHA-256 (64 hex chars) of every byte before it
 * The checksum catches flipped bytes; the sizes in the header are checked
 * against each other and the file length before anything is read. */
#include "rl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define POL_MAGIC "DPPPOPOL"
#define POL_VERSION 1u
#define POL_N_U32 (6 + PPO_MAX_HIDDEN)
#define POL_HDR_REST (POL_N_U32 * 4 + 3 * 8)
#define POL_HDR_BYTES (16 + POL_HDR_REST)
#define POL_SUM_BYTES 64

// ---- observation normaliser ----

DpStatus rl_obsnorm_init(RlObsNorm *n, int dim, int enabled, DpError *err) {
    memset(n, 0, sizeof *n);
    n->mean = dp_calloc((size_t)dim, sizeof(double));
    n->var = dp_calloc((size_t)dim, sizeof(double));
    if (!n->mean || !n->var) {
        rl_obsnorm_free(n);
        return dp_fail(err, DP_ERR_NOMEM, "obs normaliser: out of memory");
    }
    for (int i = 0; i < dim; i++) n->var[i] = 1.0;
    n->dim = dim;
    n->enabled = enabled;
    n->count = 1e-4;
    n->clip = 10.0;
    n->eps = 1e-8;
    return DP_OK;
}

void rl_obsnorm_free(RlObsNorm *n) {
    if (!n) return;
    free(n->mean);
    free(n->var);
    memset(n, 0, sizeof *n);
}

void rl_obsnorm_update(RlObsNorm *n, const float *x, int B) {
    if (B < 1) return;
    for (int i = 0; i < n->dim; i++) {
        double bm = 0, bv = 0;
        for (int b = 0; b < B; b++) bm += x[(size_t)b * n->dim + i];
        bm /= B;
        for (int b = 0; b < B; b++) {
            double d = x[(size_t)b * n->dim + i] - bm;
            bv += d * d;
        }
        bv /= B;
        double tot = n->count + B, delta = bm - n->mean[i];
        double m2 = n->var[i] * n->count + bv * B + delta * delta * n->count * B / tot;
        n->mean[i] += delta * B / tot;
        n->var[i] = m2 / tot;
    }
    n->count += B;
}

void rl_obsnorm_apply(const RlObsNorm *n, const float *x, float *out, int B) {
    size_t total = (size_t)B * n->dim;
    if (!n->enabled) {
        if (out != x) memmove(out, x, total * sizeof(float));
        return;
    }
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n->dim; i++) {
            size_t k = (size_t)b * n->dim + i;
            double v = (x[k] - n->mean[i]) / sqrt(n->var[i] + n->eps);
            if (v > n->clip) v = n->clip;
            if (v < -n->clip) v = -n->clip;
            out[k] = (float)v;
        }
}

// ---- policy ----

static DpStatus policy_alloc(int obs_dim, int n_actions, int n_hidden, const int *hidden,
                             RlActivation act, int normalize_obs, PpoPolicy **out, DpError *err) {
    *out = NULL;
    if (obs_dim < 1 || obs_dim > RL_MLP_MAX_WIDTH)
        return dp_fail(err, DP_ERR_INVAL, "policy: obs_dim %d out of [1, %d]", obs_dim,
                       RL_MLP_MAX_WIDTH);
    if (n_actions < 1 || n_actions > RL_MLP_MAX_WIDTH)
        return dp_fail(err, DP_ERR_INVAL, "policy: n_actions %d out of [1, %d]", n_actions,
                       RL_MLP_MAX_WIDTH);
    if (n_hidden < 0 || n_hidden > PPO_MAX_HIDDEN)
        return dp_fail(err, DP_ERR_INVAL, "policy: %d hidden layers (max %d)", n_hidden,
                       PPO_MAX_HIDDEN);
    if (act != RL_ACT_TANH && act != RL_ACT_RELU)
        return dp_fail(err, DP_ERR_INVAL, "policy: unknown activation %d", (int)act);
    PpoPolicy *p = dp_calloc(1, sizeof *p);
    if (!p) return dp_fail(err, DP_ERR_NOMEM, "policy: out of memory");
    p->obs_dim = obs_dim;
    p->n_actions = n_actions;
    p->action_kind = RL_ACTION_DISCRETE;
    int sizes[RL_MLP_MAX_LAYERS + 1];
    sizes[0] = obs_dim;
    for (int l = 0; l < n_hidden; l++) sizes[l + 1] = hidden[l];
    sizes[n_hidden + 1] = n_actions;
    DpStatus st = rl_mlp_init(&p->pi, n_hidden + 1, sizes, act, err);
    if (!st) {
        sizes[n_hidden + 1] = 1;
        st = rl_mlp_init(&p->vf, n_hidden + 1, sizes, act, err);
    }
    if (!st) st = rl_obsnorm_init(&p->obs_norm, obs_dim, normalize_obs, err);
    if (st) {
        ppo_policy_free(p);
        return st;
    }
    *out = p;
    return DP_OK;
}

DpStatus ppo_policy_create(int obs_dim, int n_actions, int n_hidden, const int *hidden,
                           RlActivation act, int normalize_obs, double clip_obs, DpRng *rng,
                           PpoPolicy **out, DpError *err) {
    DpStatus st = policy_alloc(obs_dim, n_actions, n_hidden, hidden, act, normalize_obs, out, err);
    if (st) return st;
    (*out)->obs_norm.clip = clip_obs;
    /* SB3 ActorCriticPolicy with ortho_init: sqrt(2) for the hidden layers,
     * 0.01 for the action head, 1 for the value head, zero biases. */
    rl_mlp_init_orthogonal(&(*out)->pi, (float)sqrt(2.0), 0.01f, rng);
    rl_mlp_init_orthogonal(&(*out)->vf, (float)sqrt(2.0), 1.0f, rng);
    return DP_OK;
}

void ppo_policy_free(PpoPolicy *p) {
    if (!p) return;
    rl_mlp_free(&p->pi);
    rl_mlp_free(&p->vf);
    rl_obsnorm_free(&p->obs_norm);
    free(p);
}

void ppo_predict_probs(const PpoPolicy *p, const float *obs, float *probs) {
    float x[RL_MLP_MAX_WIDTH], logits[RL_MLP_MAX_WIDTH], lp[RL_MLP_MAX_WIDTH];
    rl_obsnorm_apply(&p->obs_norm, obs, x, 1);
    rl_mlp_forward1(&p->pi, x, logits);
    rl_categorical_logp(logits, p->n_actions, lp);
    for (int j = 0; j < p->n_actions; j++) probs[j] = expf(lp[j]);
}

int ppo_predict(const PpoPolicy *p, const float *obs, int deterministic, DpRng *rng) {
    float x[RL_MLP_MAX_WIDTH], logits[RL_MLP_MAX_WIDTH];
    rl_obsnorm_apply(&p->obs_norm, obs, x, 1);
    rl_mlp_forward1(&p->pi, x, logits);
    if (deterministic || !rng) return rl_argmax(logits, p->n_actions);
    return rl_categorical_sample(logits, p->n_actions, dp_rng_uniform(rng));
}

float ppo_predict_value(const PpoPolicy *p, const float *obs) {
    float x[RL_MLP_MAX_WIDTH], v;
    rl_obsnorm_apply(&p->obs_norm, obs, x, 1);
    rl_mlp_forward1(&p->vf, x, &v);
    return v;
}

// ---- serialisation ----

static void put_u32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *b) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)b[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}
static void put_f64(unsigned char *b, double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(b, v);
}
static double get_f64(const unsigned char *b) {
    uint64_t v = get_u64(b);
    double d;
    memcpy(&d, &v, 8);
    return d;
}
static void put_f32(unsigned char *b, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(b, v);
}
static float get_f32(const unsigned char *b) {
    uint32_t v = get_u32(b);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static size_t payload_bytes(int obs_dim, size_t pi_n, size_t vf_n) {
    return 8 * (3 + 2 * (size_t)obs_dim) + 4 * (pi_n + vf_n);
}

DpStatus ppo_policy_serialize(const PpoPolicy *p, unsigned char **out_buf, size_t *out_len,
                              DpError *err) {
    *out_buf = NULL;
    *out_len = 0;
    size_t pl = payload_bytes(p->obs_dim, p->pi.n_params, p->vf.n_params);
    size_t len = POL_HDR_BYTES + pl + POL_SUM_BYTES;
    unsigned char *b = dp_malloc(len);
    if (!b) return dp_fail(err, DP_ERR_NOMEM, "policy save: out of memory");
    memcpy(b, POL_MAGIC, 8);
    put_u32(b + 8, POL_VERSION);
    put_u32(b + 12, POL_HDR_REST);
    unsigned char *h = b + 16;
    uint32_t u[POL_N_U32] = {0};
    u[0] = (uint32_t)p->action_kind;
    u[1] = (uint32_t)p->obs_dim;
    u[2] = (uint32_t)p->n_actions;
    u[3] = (uint32_t)p->pi.act;
    u[4] = (uint32_t)(p->pi.n_layers - 1);
    for (int l = 0; l + 1 < p->pi.n_layers; l++) u[5 + l] = (uint32_t)p->pi.sizes[l + 1];
    u[5 + PPO_MAX_HIDDEN] = (uint32_t)p->obs_norm.enabled;
    for (int i = 0; i < POL_N_U32; i++) put_u32(h + 4 * i, u[i]);
    h += 4 * POL_N_U32;
    put_u64(h, p->pi.n_params);
    put_u64(h + 8, p->vf.n_params);
    put_u64(h + 16, pl);
    unsigned char *q = b + POL_HDR_BYTES;
    put_f64(q, p->obs_norm.clip);
    put_f64(q + 8, p->obs_norm.eps);
    put_f64(q + 16, p->obs_norm.count);
    q += 24;
    for (int i = 0; i < p->obs_dim; i++, q += 8) put_f64(q, p->obs_norm.mean[i]);
    for (int i = 0; i < p->obs_dim; i++, q += 8) put_f64(q, p->obs_norm.var[i]);
    for (size_t i = 0; i < p->pi.n_params; i++, q += 4) put_f32(q, p->pi.params[i]);
    for (size_t i = 0; i < p->vf.n_params; i++, q += 4) put_f32(q, p->vf.params[i]);
    char hex[65];
    dp_sha256_hex(b, len - POL_SUM_BYTES, hex);
    memcpy(b + len - POL_SUM_BYTES, hex, POL_SUM_BYTES);
    *out_buf = b;
    *out_len = len;
    return DP_OK;
}

DpStatus ppo_policy_deserialize(const unsigned char *b, size_t len, PpoPolicy **out,
                                DpError *err) {
    *out = NULL;
    if (len < 16 || memcmp(b, POL_MAGIC, 8) != 0)
        return dp_fail(err, DP_ERR_PARSE, "not a driftpilot PPO policy file (bad magic)");
    uint32_t version = get_u32(b + 8);
    if (version != POL_VERSION)
        return dp_fail(err, DP_ERR_PARSE, "unsupported policy file version %u (this build reads %u)",
                       version, POL_VERSION);
    if (get_u32(b + 12) != POL_HDR_REST || len < POL_HDR_BYTES + POL_SUM_BYTES)
        return dp_fail(err, DP_ERR_PARSE, "policy file truncated or corrupt header (%zu bytes)",
                       len);
    const unsigned char *h = b + 16;
    uint32_t u[POL_N_U32];
    for (int i = 0; i < POL_N_U32; i++) u[i] = get_u32(h + 4 * i);
    h += 4 * POL_N_U32;
    uint64_t pi_n = get_u64(h), vf_n = get_u64(h + 8), pl = get_u64(h + 16);
    if (u[1] < 1 || u[1] > RL_MLP_MAX_WIDTH || pi_n > ((uint64_t)1 << 32) ||
        vf_n > ((uint64_t)1 << 32) || pl != payload_bytes((int)u[1], pi_n, vf_n))
        return dp_fail(err, DP_ERR_PARSE, "policy file has inconsistent sizes");
    if (len != POL_HDR_BYTES + pl + POL_SUM_BYTES)
        return dp_fail(err, DP_ERR_PARSE,
                       "policy file truncated or has trailing bytes: %zu bytes, header says %llu",
                       len, (unsigned long long)(POL_HDR_BYTES + pl + POL_SUM_BYTES));
    char hex[65];
    dp_sha256_hex(b, len - POL_SUM_BYTES, hex);
    if (memcmp(hex, b + len - POL_SUM_BYTES, POL_SUM_BYTES) != 0)
        return dp_fail(err, DP_ERR_CHECK, "policy file checksum mismatch (corrupted file)");
    if (u[0] != RL_ACTION_DISCRETE)
        return dp_fail(err, DP_ERR_INVAL, "policy file: continuous actions are not supported yet");
    int hidden[PPO_MAX_HIDDEN];
    if (u[4] > PPO_MAX_HIDDEN) return dp_fail(err, DP_ERR_PARSE, "policy file: bad layer count");
    for (uint32_t l = 0; l < u[4]; l++) hidden[l] = (int)u[5 + l];
    PpoPolicy *p = NULL;
    DpStatus st = policy_alloc((int)u[1], (int)u[2], (int)u[4], hidden, (RlActivation)u[3],
                               (int)u[5 + PPO_MAX_HIDDEN], &p, err);
    if (st) return dp_error_wrap(err, "policy file");
    if (p->pi.n_params != pi_n || p->vf.n_params != vf_n) {
        ppo_policy_free(p);
        return dp_fail(err, DP_ERR_PARSE, "policy file: parameter counts do not match the shape");
    }
    const unsigned char *q = b + POL_HDR_BYTES;
    p->obs_norm.clip = get_f64(q);
    p->obs_norm.eps = get_f64(q + 8);
    p->obs_norm.count = get_f64(q + 16);
    q += 24;
    for (int i = 0; i < p->obs_dim; i++, q += 8) p->obs_norm.mean[i] = get_f64(q);
    for (int i = 0; i < p->obs_dim; i++, q += 8) p->obs_norm.var[i] = get_f64(q);
    for (size_t i = 0; i < pi_n; i++, q += 4) p->pi.params[i] = get_f32(q);
    for (size_t i = 0; i < vf_n; i++, q += 4) p->vf.params[i] = get_f32(q);
    *out = p;
    return DP_OK;
}

DpStatus ppo_policy_save(const PpoPolicy *p, const char *path, DpError *err) {
    unsigned char *buf = NULL;
    size_t len = 0;
    DpStatus st = ppo_policy_serialize(p, &buf, &len, err);
    if (!st) st = dp_write_file_atomic(path, buf, len, err);
    free(buf);
    return st;
}

DpStatus ppo_policy_load(const char *path, PpoPolicy **out, DpError *err) {
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    DpStatus st = dp_read_file(path, &data, &len, err);
    if (st) return st;
    st = ppo_policy_deserialize((const unsigned char *)data, len, out, err);
    free(data);
    if (st) return dp_error_wrap(err, "%s", path);
    return DP_OK;
}

// ---- evaluation ----

DpStatus ppo_evaluate(const PpoPolicy *p, const char *env_name, int n_episodes, uint64_t seed,
                      int deterministic, double *mean, double *std, DpError *err) {
    RlEnv *env = NULL;
    double *rets = NULL;
    DpStatus st = DP_OK;
    if (n_episodes < 1) return dp_fail(err, DP_ERR_INVAL, "evaluate: n_episodes must be >= 1");
    /* One env, episodes back to back: parallel envs would over-sample the
     * episodes that finish first. */
    st = rl_env_create(env_name, 1, seed, NULL, &env, err);
    if (st) goto out;
    if (env->obs_dim != p->obs_dim || env->n_actions != p->n_actions) {
        st = dp_fail(err, DP_ERR_INVAL,
                     "policy expects obs_dim %d and %d actions, env '%s' has %d and %d",
                     p->obs_dim, p->n_actions, env_name, env->obs_dim, env->n_actions);
        goto out;
    }
    rets = dp_calloc((size_t)n_episodes, sizeof *rets);
    if (!rets) {
        st = dp_fail(err, DP_ERR_NOMEM, "evaluate: out of memory");
        goto out;
    }
    DpRng rng;
    dp_rng_seed_stream(&rng, seed, 0x5eed5eedULL);
    rl_env_reset(env);
    double ret = 0;
    for (int ep = 0; ep < n_episodes;) {
        env->actions[0] = ppo_predict(p, env->observations, deterministic, &rng);
        rl_env_step(env);
        ret += env->rewards[0];
        if (env->terminals[0] || env->truncations[0]) {
            rets[ep++] = ret;
            ret = 0;
        }
    }
    *mean = dp_mean(rets, (size_t)n_episodes);
    *std = dp_std(rets, (size_t)n_episodes);
out:
    free(rets);
    rl_env_destroy(env);
    return st;
}
