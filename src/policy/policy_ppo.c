/* The PPO policy: a policy file trained by `driftpilot sim train-policy`
 * (rl.h's format, with the observation normaliser inside), acting greedily
 * on the state vector of the config's profile. */
#include "policy_impl.h"
#include "rl.h"

typedef struct {
    PpoPolicy *pol;
    SimProfile profile;
} PpoImpl;

static int ppo_decide(Policy *p, const SimObservation *o) {
    PpoImpl *s = p->impl;
    float state[SIM_STATE_MAX];
    sim_state_build(s->profile, o, state);
    return ppo_predict(s->pol, state, 1, NULL);
}

static void ppo_destroy(Policy *p) {
    PpoImpl *s = p->impl;
    ppo_policy_free(s->pol);
    s->pol = NULL;
}

static const PolicyVtbl ppo_vt = {"ppo", NULL, NULL, ppo_decide, ppo_destroy};

DpStatus policy_ppo_create(const char *path, const SimConfig *cfg, Policy **out, DpError *err) {
    *out = NULL;
    PpoPolicy *pol = NULL;
    DpStatus st = ppo_policy_load(path, &pol, err);
    if (st) return dp_error_wrap(err, "ppo policy");
    /* the file's input size says which profile it was trained on */
    SimProfile profile = cfg->profile;
    if (pol->obs_dim == sim_state_dim(SIM_PROFILE_PAPER, cfg->n_targets)) profile = SIM_PROFILE_PAPER;
    else if (pol->obs_dim == sim_state_dim(SIM_PROFILE_EXTENDED, cfg->n_targets)) profile = SIM_PROFILE_EXTENDED;
    int dim = sim_state_dim(profile, cfg->n_targets);
    int na = sim_action_count(cfg->action_set, cfg->n_targets);
    if (pol->obs_dim != dim || pol->n_actions != na || pol->action_kind != RL_ACTION_DISCRETE) {
        int pd = pol->obs_dim, pn = pol->n_actions;
        ppo_policy_free(pol);
        return dp_fail(err, DP_ERR_INVAL,
                       "ppo policy %s: it takes %d state floats and %d actions, the config gives %d "
                       "and %d (profile and number of targets must match training)",
                       path, pd, pn, dim, na);
    }
    Policy *p = policy_alloc_(&ppo_vt, cfg, sizeof(PpoImpl));
    if (!p) {
        ppo_policy_free(pol);
        return dp_fail(err, DP_ERR_NOMEM, "policy");
    }
    PpoImpl *s = p->impl;
    s->pol = pol;
    s->profile = profile;
    snprintf(p->name, sizeof p->name, "ppo%s", profile == SIM_PROFILE_PAPER ? "-paper" : "");
    *out = p;
    return DP_OK;
}
