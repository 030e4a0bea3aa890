/* The Policy contract, the hand-made heuristics (static interval, threshold),
 * construction from a spec string, and the harness that runs a policy
 * through one simulated episode. */
#include "policy_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void policy_reset(Policy *p) {
    if (p && p->vt->reset) p->vt->reset(p);
}

int policy_decide(Policy *p, const SimObservation *obs) { return p->vt->decide(p, obs); }

void policy_destroy(Policy *p) {
    if (!p) return;
    if (p->vt->destroy) p->vt->destroy(p);
    free(p->impl);
    free(p);
}

Policy *policy_alloc_(const PolicyVtbl *vt, const SimConfig *cfg, size_t impl_size) {
    Policy *p = dp_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->impl = dp_calloc(1, impl_size);
    if (!p->impl) {
        free(p);
        return NULL;
    }
    p->vt = vt;
    p->action_set = cfg->action_set;
    p->n_targets = cfg->n_targets;
    p->interval_s = cfg->interval_s;
    return p;
}

/* The target a heuristic retrains on; -1 when none is reachable. */
int policy_choose_target_(PolicyTargetMode mode, int fixed, int *rr, const SimObservation *o) {
    if (mode == POLICY_TARGET_FIXED) return fixed;
    if (mode == POLICY_TARGET_ROUND_ROBIN) {
        for (int i = 0; i < o->n_targets; i++) {
            int k = (*rr + i) % o->n_targets;
            if (o->up[k]) {
                *rr = (k + 1) % o->n_targets;
                return k;
            }
        }
        return -1;
    }
    int best = -1;
    for (int k = 0; k < o->n_targets; k++)
        if (o->up[k] && (best < 0 || o->price[k] < o->price[best])) best = k;
    return best;
}

int policy_retrain_action_(const Policy *p, int k, const SimObservation *o) {
    if (k < 0) return 0;
    int s = o->serving_target;
    int j = p->action_set == SIM_ACTIONS_PAIRS && s >= 0 && s < o->n_targets && o->up[s] ? s : k;
    SimDecision d = {.retrain = 1, .redeploy = 1, .target = k, .deploy_target = j};
    return sim_action_encode(p->action_set, p->n_targets, d);
}

const char *policy_mode_name_(PolicyTargetMode m) {
    return m == POLICY_TARGET_FIXED ? "fixed" : m == POLICY_TARGET_ROUND_ROBIN ? "rr" : "cheapest";
}

// ---- static interval ----

typedef struct {
    PolicyStaticConfig c;
    double last_s; /* time of the last retrain request */
    int rr;
} StaticImpl;

static void static_reset(Policy *p) {
    StaticImpl *s = p->impl;
    s->last_s = -1e18;
    s->rr = 0;
}

static int static_decide(Policy *p, const SimObservation *o) {
    StaticImpl *s = p->impl;
    if (o->job_running || o->time_s - s->last_s < s->c.every_s - 1e-6) return 0;
    int k = policy_choose_target_(s->c.mode, s->c.target, &s->rr, o);
    if (k < 0) return 0;
    /* the schedule is the schedule: a retrain on a target that is down is
     * attempted (and fails to start) like any fixed cron job would */
    s->last_s = o->time_s;
    return policy_retrain_action_(p, k, o);
}

static const PolicyVtbl static_vt = {"static", static_reset, NULL, static_decide, NULL};

DpStatus policy_static_create(const PolicyStaticConfig *c, const SimConfig *cfg, Policy **out,
                              DpError *err) {
    if (!(c->every_s > 0)) return dp_fail(err, DP_ERR_INVAL, "static: interval must be > 0");
    if (c->mode == POLICY_TARGET_FIXED && (c->target < 0 || c->target >= cfg->n_targets))
        return dp_fail(err, DP_ERR_INVAL, "static: target %d out of range", c->target);
    Policy *p = policy_alloc_(&static_vt, cfg, sizeof(StaticImpl));
    if (!p) return dp_fail(err, DP_ERR_NOMEM, "policy");
    StaticImpl *s = p->impl;
    s->c = *c;
    if (c->mode == POLICY_TARGET_FIXED)
        snprintf(p->name, sizeof p->name, "static-%gm@%s", c->every_s / 60, cfg->targets[c->target].name);
    else snprintf(p->name, sizeof p->name, "static-%gm-%s", c->every_s / 60, policy_mode_name_(c->mode));
    static_reset(p);
    *out = p;
    return DP_OK;
}

// ---- threshold ----

#define THRESH_MAX_SMOOTH 64

typedef struct {
    PolicyThresholdConfig c;
    double last_s;
    int rr, n;
    double acc[THRESH_MAX_SMOOTH], bleu[THRESH_MAX_SMOOTH];
    double last_redeploys;
} ThresholdImpl;

void policy_threshold_defaults(PolicyThresholdConfig *c) {
    memset(c, 0, sizeof *c);
    c->accuracy_level = 0.70;
    c->bleu_level = 0;
    c->cooldown_s = 1200;
    c->smooth = 5;
    c->mode = POLICY_TARGET_CHEAPEST;
}

static void threshold_reset(Policy *p) {
    ThresholdImpl *s = p->impl;
    s->last_s = -1e18;
    s->rr = 0;
    s->n = 0;
    s->last_redeploys = 0;
}

static int threshold_decide(Policy *p, const SimObservation *o) {
    ThresholdImpl *s = p->impl;
    int w = s->c.smooth;
    if (o->redeploy_count != s->last_redeploys) {
        /* a new model: the old readings say nothing about it */
        s->n = 0;
        s->last_redeploys = o->redeploy_count;
    }
    s->acc[s->n % w] = o->accuracy;
    s->bleu[s->n % w] = o->bleu;
    s->n++;
    if (o->job_running || o->time_s - s->last_s < s->c.cooldown_s - 1e-6) return 0;
    int m = s->n < w ? s->n : w;
    double a = 0, b = 0;
    for (int i = 0; i < m; i++) a += s->acc[i], b += s->bleu[i];
    a /= m;
    b /= m;
    int low = (s->c.accuracy_level > 0 && a < s->c.accuracy_level) ||
              (s->c.bleu_level > 0 && b < s->c.bleu_level);
    if (!low) return 0;
    int k = policy_choose_target_(s->c.mode, s->c.target, &s->rr, o);
    if (k < 0 || !o->up[k]) return 0;
    s->last_s = o->time_s;
    return policy_retrain_action_(p, k, o);
}

static const PolicyVtbl threshold_vt = {"threshold", threshold_reset, NULL, threshold_decide, NULL};

DpStatus policy_threshold_create(const PolicyThresholdConfig *c, const SimConfig *cfg,
                                 Policy **out, DpError *err) {
    if (c->smooth < 1 || c->smooth > THRESH_MAX_SMOOTH)
        return dp_fail(err, DP_ERR_INVAL, "threshold: smooth must be in 1..%d", THRESH_MAX_SMOOTH);
    if (c->mode == POLICY_TARGET_FIXED && (c->target < 0 || c->target >= cfg->n_targets))
        return dp_fail(err, DP_ERR_INVAL, "threshold: target %d out of range", c->target);
    Policy *p = policy_alloc_(&threshold_vt, cfg, sizeof(ThresholdImpl));
    if (!p) return dp_fail(err, DP_ERR_NOMEM, "policy");
    ThresholdImpl *s = p->impl;
    s->c = *c;
    if (c->bleu_level > 0)
        snprintf(p->name, sizeof p->name, "threshold-bleu<%.2f", c->bleu_level);
    else snprintf(p->name, sizeof p->name, "threshold-acc<%.2f", c->accuracy_level);
    threshold_reset(p);
    *out = p;
    return DP_OK;
}

// ---- spec strings ----

static DpStatus parse_mode(const char *s, const SimConfig *cfg, PolicyTargetMode *mode, int *target,
                           DpError *err) {
    if (!strcmp(s, "cheapest")) *mode = POLICY_TARGET_CHEAPEST;
    else if (!strcmp(s, "round-robin") || !strcmp(s, "rr")) *mode = POLICY_TARGET_ROUND_ROBIN;
    else {
        int k = sim_target_index(cfg, s);
        if (k < 0) return dp_fail(err, DP_ERR_INVAL, "'%s': not cheapest, round-robin or a target name", s);
        *mode = POLICY_TARGET_FIXED;
        *target = k;
    }
    return DP_OK;
}

DpStatus policy_from_spec(const char *spec, const SimConfig *cfg, Policy **out, DpError *err) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    char *parts[4] = {0};
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ":", &save); t && n < 4; t = strtok_r(NULL, ":", &save))
        parts[n++] = t;
    if (n == 0) return dp_fail(err, DP_ERR_INVAL, "empty policy spec");
    DpStatus st;
    if (!strcmp(parts[0], "static")) {
        PolicyStaticConfig c = {900, POLICY_TARGET_FIXED, cfg->initial_target};
        if (n > 1 && (st = dp_parse_duration(parts[1], &c.every_s, err))) return st;
        if (n > 2 && (st = parse_mode(parts[2], cfg, &c.mode, &c.target, err))) return st;
        return policy_static_create(&c, cfg, out, err);
    }
    if (!strcmp(parts[0], "threshold")) {
        PolicyThresholdConfig c;
        policy_threshold_defaults(&c);
        if (n > 1) {
            char *end;
            c.accuracy_level = strtod(parts[1], &end);
            if (*end || c.accuracy_level <= 0 || c.accuracy_level >= 1)
                return dp_fail(err, DP_ERR_INVAL, "threshold: level '%s' must be in (0,1)", parts[1]);
        }
        if (n > 2 && (st = dp_parse_duration(parts[2], &c.cooldown_s, err))) return st;
        return policy_threshold_create(&c, cfg, out, err);
    }
    if (!strcmp(parts[0], "ph") || !strcmp(parts[0], "adwin")) {
        PolicyDriftConfig c;
        policy_drift_defaults(&c, !strcmp(parts[0], "ph") ? POLICY_DETECTOR_PH : POLICY_DETECTOR_ADWIN);
        if (n > 1 && (st = parse_mode(parts[1], cfg, &c.mode, &c.target, err))) return st;
        return policy_drift_create(&c, cfg, out, err);
    }
    if (!strcmp(parts[0], "oracle")) return policy_oracle_create(cfg, out, err);
    return dp_fail(err, DP_ERR_INVAL,
                   "unknown policy '%s' (static, threshold, ph, adwin, oracle, ppo:FILE)", parts[0]);
}

// ---- the harness ----

DpStatus policy_run_episode(Policy *p, const SimConfig *cfg, const SimEpisode *ep,
                            PolicyEpisodeResult *res, PolicyDecisionFn fn, void *user, DpError *err) {
    memset(res, 0, sizeof *res);
    if (p->vt->begin_episode) {
        DpStatus st = p->vt->begin_episode(p, cfg, ep, err);
        if (st) return st;
    }
    policy_reset(p);
    SimRun run;
    sim_run_reset(&run, cfg, ep);
    int n_slo = 0;
    while (!sim_run_done(&run)) {
        SimObservation o;
        sim_run_observe(&run, &o);
        int a = policy_decide(p, &o);
        int t = run.t;
        SimStepInfo info;
        sim_run_step(&run, a, &info);
        res->mean_bleu += info.obs.bleu;
        res->mean_accuracy += info.obs.accuracy;
        res->mean_f1 += info.obs.f1;
        res->mean_latency_ms += info.obs.latency_ms;
        res->true_bleu += info.quality.bleu;
        res->true_accuracy += info.quality.accuracy;
        if (cfg->reward.slo_ms > 0 && info.obs.latency_ms > cfg->reward.slo_ms) n_slo++;
        if (fn) fn(user, t, &o, a, &info);
    }
    int n = ep->n_steps;
    res->n_steps = n;
    res->mean_bleu /= n;
    res->mean_accuracy /= n;
    res->mean_f1 /= n;
    res->mean_latency_ms /= n;
    res->true_bleu /= n;
    res->true_accuracy /= n;
    res->slo_violation_share = (double)n_slo / n;
    res->total_reward = run.total_reward;
    res->total_cost = run.total_cost;
    res->n_retrains = run.n_retrains;
    res->n_redeploys = run.n_redeploys;
    res->n_failed = run.n_failed;
    res->n_ignored = run.n_ignored;
    return DP_OK;
}
