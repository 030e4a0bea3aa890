/* The one definition of the state vector, the action set and the reward.
 * These are pure functions of plain observed quantities, so the simulator,
 * the replay environment and the live controller all use them unchanged. */
#include "sim.h"

#include <stdio.h>
#include <string.h>

// ---- state vector ----

static const char *paper_names[6] = {"cpu", "memory", "request_rate_krps", "latency_s",
                                     "accuracy", "redeploys_div10"};
static const char *ext_names[6] = {"bleu", "f1", "hours_since_retrain", "queue_div10",
                                   "job_running", "accuracy_mean"};

int sim_state_dim(SimProfile profile, int n_targets) {
    if (profile == SIM_PROFILE_PAPER) return 6;
    return 12 + 2 * n_targets;
}

void sim_state_build(SimProfile profile, const SimObservation *o, float *out) {
    out[0] = (float)o->cpu;
    out[1] = (float)o->memory;
    out[2] = (float)(o->request_rate / 1000.0);
    out[3] = (float)(o->latency_ms / 1000.0);
    out[4] = (float)o->accuracy;
    out[5] = (float)(o->redeploy_count / 10.0);
    if (profile == SIM_PROFILE_PAPER) return;
    out[6] = (float)o->bleu;
    out[7] = (float)o->f1;
    out[8] = (float)(o->since_retrain_s / 3600.0);
    out[9] = (float)(o->queue / 10.0);
    out[10] = (float)(o->job_running ? 1 : 0);
    out[11] = (float)o->accuracy_mean;
    for (int k = 0; k < o->n_targets; k++) {
        out[12 + k] = (float)(o->price[k] * 10.0);
        out[12 + o->n_targets + k] = (float)(o->up[k] ? 1 : 0);
    }
}

const char *sim_state_feature_name(SimProfile profile, int n_targets, int i, char *buf,
                                   size_t cap) {
    if (i < 6) snprintf(buf, cap, "%s", paper_names[i]);
    else if (profile == SIM_PROFILE_EXTENDED && i < 12) snprintf(buf, cap, "%s", ext_names[i - 6]);
    else if (profile == SIM_PROFILE_EXTENDED && i < 12 + n_targets)
        snprintf(buf, cap, "price%d_x10", i - 12);
    else if (profile == SIM_PROFILE_EXTENDED && i < 12 + 2 * n_targets)
        snprintf(buf, cap, "up%d", i - 12 - n_targets);
    else snprintf(buf, cap, "?");
    return buf;
}

void sim_acc_window_push(SimAccWindow *w, double accuracy) {
    w->v[w->n % SIM_ACC_WINDOW] = accuracy;
    w->n++;
}

double sim_acc_window_mean(const SimAccWindow *w, double fallback) {
    int n = w->n < SIM_ACC_WINDOW ? w->n : SIM_ACC_WINDOW;
    if (n == 0) return fallback;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += w->v[i];
    return sum / n;
}

// ---- actions ----

const char *const sim_action_set_names[] = {"targets", "steps", "pairs", NULL};

DpStatus sim_action_set_parse(const char *name, SimActionSet *out, DpError *err) {
    for (int i = 0; sim_action_set_names[i]; i++)
        if (name && !strcmp(name, sim_action_set_names[i])) {
            *out = (SimActionSet)i;
            return DP_OK;
        }
    return dp_fail(err, DP_ERR_INVAL, "action set '%s': expected targets, steps or pairs",
                   name ? name : "");
}

const char *sim_action_set_name(SimActionSet set) {
    return set >= 0 && set <= SIM_ACTIONS_PAIRS ? sim_action_set_names[set] : "?";
}

int sim_action_count(SimActionSet set, int n_targets) {
    if (set == SIM_ACTIONS_TARGETS) return 1 + n_targets;
    if (set == SIM_ACTIONS_PAIRS) return 1 + n_targets * n_targets;
    return 1 + 3 * n_targets;
}

SimDecision sim_action_decode(SimActionSet set, int n_targets, int action) {
    SimDecision d = {.retrain = 0, .redeploy = 0, .target = -1, .deploy_target = -1};
    if (action <= 0 || action >= sim_action_count(set, n_targets)) return d;
    if (set == SIM_ACTIONS_TARGETS) {
        d.retrain = d.redeploy = 1;
        d.target = d.deploy_target = action - 1;
    } else if (set == SIM_ACTIONS_PAIRS) {
        d.retrain = d.redeploy = 1;
        d.target = (action - 1) / n_targets;
        d.deploy_target = (action - 1) % n_targets;
    } else {
        int k = (action - 1) / 3, what = (action - 1) % 3;
        d.target = k;
        d.retrain = what != 1;
        d.redeploy = what != 0;
        d.deploy_target = k;
    }
    return d;
}

int sim_action_encode(SimActionSet set, int n_targets, SimDecision d) {
    if ((!d.retrain && !d.redeploy) || d.target < 0 || d.target >= n_targets) return 0;
    if (set == SIM_ACTIONS_TARGETS) return d.retrain ? 1 + d.target : 0;
    if (set == SIM_ACTIONS_PAIRS) {
        int j = d.deploy_target >= 0 && d.deploy_target < n_targets ? d.deploy_target : d.target;
        return d.retrain ? 1 + d.target * n_targets + j : 0;
    }
    int what = d.retrain && d.redeploy ? 2 : d.retrain ? 0 : 1;
    return 1 + 3 * d.target + what;
}

const char *sim_action_name(SimActionSet set, int n_targets,
                            const char (*target_names)[SIM_NAME_MAX], int action, char *buf,
                            size_t cap) {
    SimDecision d = sim_action_decode(set, n_targets, action);
    if (d.target < 0) {
        snprintf(buf, cap, "nothing");
        return buf;
    }
    if (set == SIM_ACTIONS_PAIRS) {
        if (target_names)
            snprintf(buf, cap, "retrain@%s+deploy@%s", target_names[d.target],
                     target_names[d.deploy_target]);
        else snprintf(buf, cap, "retrain@%d+deploy@%d", d.target, d.deploy_target);
        return buf;
    }
    const char *what = d.retrain && d.redeploy ? "retrain+redeploy" : d.retrain ? "retrain" : "redeploy";
    if (target_names) snprintf(buf, cap, "%s@%s", what, target_names[d.target]);
    else snprintf(buf, cap, "%s@%d", what, d.target);
    return buf;
}

// ---- reward ----

void sim_reward_study(SimRewardConfig *rc) {
    memset(rc, 0, sizeof *rc);
    rc->w_bleu = 0.5;
    rc->w_accuracy = 0.5;
    rc->quality_unit_s = 60;
    rc->cost_weight = 1;
    rc->cost_mode = SIM_COST_FLAT;
}

void sim_reward_default(SimRewardConfig *rc) {
    sim_reward_study(rc);
    rc->quality_unit_s = 3600;
    rc->slo_ms = 150;
    rc->slo_weight = 1;
}

double sim_reward(const SimRewardConfig *rc, const SimObservation *obs, double cost,
                  double interval_s) {
    double k = rc->quality_unit_s > 0 ? interval_s / rc->quality_unit_s : 1.0;
    double q = rc->w_bleu * obs->bleu + rc->w_accuracy * obs->accuracy + rc->w_f1 * obs->f1;
    double pen = 0;
    if (rc->slo_ms > 0 && obs->latency_ms > rc->slo_ms)
        pen = rc->slo_weight * (obs->latency_ms - rc->slo_ms) / rc->slo_ms;
    return k * q - k * pen - rc->cost_weight * cost;
}
