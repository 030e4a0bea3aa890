/* The oracle: the best retraining schedule in hindsight for one episode.
 *
 * Assumptions that make a small dynamic programme exact for the simulator:
 *   - all randomness is in the SimEpisode, drawn before the run;
 *   - the served model's quality at step t depends only on t and the
 *     decision r whose data it was trained on (sim_episode.c explains why);
 *   - a job started at t on k ends at a boundary known from the episode
 *     (sim_job_plan), and while it runs every other retrain is ignored, so a
 *     retrain decision can be folded into one transition from t to its end;
 *   - the action set is SIM_ACTIONS_TARGETS or SIM_ACTIONS_PAIRS (a job on k
 *     whose model serves on j; the targets set is the diagonal j = k).
 * State: (t, r, s) with s the serving target; r < t.  Value:
 *   V(t,r,s) = max( Q(t,r) - L(t,s,none) + V(t+1,r,s),
 *                   max_{k,j} -cost(t,k) + sum_{u=t}^{e-1} [Q(u,r) - L(u,s,k)] + V(e, ok ? t : r, ok ? j : s) )
 * with Q the quality term and L the latency penalty of the reward.  Sums over
 * u come from prefix sums, so an episode of T steps costs O(T^2 K^2) for the
 * targets set and O(T^2 K^3) for pairs. */
#include "policy_impl.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int T, K;
    double *qc;   /* (T+1 models, T+1) prefix sums over u of Q(u, r) */
    double *lc;   /* (K, K+1, T+1) prefix sums over u of L(u, s, j) */
    double *V;    /* (T+1, T+1, K) */
    signed char *choice; /* (T, T+1, K) action at the state */
    int *jsteps, *jok;   /* (T, K) */
    double *jcost;       /* (T, K) */
} Dp;

static void dp_free(Dp *d) {
    free(d->qc);
    free(d->lc);
    free(d->V);
    free(d->choice);
    free(d->jsteps);
    free(d->jok);
    free(d->jcost);
}

#define QC(r1, u) d.qc[(size_t)(r1) * (T + 1) + (u)]
#define LC(s, j1, u) d.lc[((size_t)(s) * (K + 1) + (j1)) * (T + 1) + (u)]
#define VV(t, r1, s) d.V[((size_t)(t) * (T + 1) + (r1)) * K + (s)]
#define CH(t, r1, s) d.choice[((size_t)(t) * (T + 1) + (r1)) * K + (s)]

DpStatus policy_oracle_plan(const SimConfig *cfg, const SimEpisode *ep, int *actions,
                            double *value, DpError *err) {
    if (cfg->action_set == SIM_ACTIONS_STEPS)
        return dp_fail(err, DP_ERR_INVAL, "oracle: the 'steps' action set is not supported "
                       "(use 'targets' or 'pairs')");
    int T = ep->n_steps, K = ep->n_targets, pairs = cfg->action_set == SIM_ACTIONS_PAIRS;
    Dp d;
    memset(&d, 0, sizeof d);
    d.qc = dp_calloc((size_t)(T + 1) * (T + 1), sizeof(double));
    d.lc = dp_calloc((size_t)K * (K + 1) * (T + 1), sizeof(double));
    d.V = dp_calloc((size_t)(T + 1) * (T + 1) * K, sizeof(double));
    d.choice = dp_calloc((size_t)T * (T + 1) * K, 1);
    d.jsteps = dp_calloc((size_t)T * K, sizeof(int));
    d.jok = dp_calloc((size_t)T * K, sizeof(int));
    d.jcost = dp_calloc((size_t)T * K, sizeof(double));
    if (!d.qc || !d.lc || !d.V || !d.choice || !d.jsteps || !d.jok || !d.jcost) {
        dp_free(&d);
        return dp_fail(err, DP_ERR_NOMEM, "oracle tables for %d steps", T);
    }
    const SimRewardConfig *rc = &cfg->reward;
    double dt = cfg->interval_s;
    /* Q(u, r) for r < u (r1 = r + 1 in 0..u): the reward's quality part, zero
     * when no target can serve (as the simulator counts it) */
    for (int r1 = 0; r1 <= T; r1++) {
        QC(r1, 0) = 0;
        for (int u = 0; u < T; u++) {
            double q = 0;
            if (r1 <= u) {
                int all_down = 1;
                for (int k = 0; k < K; k++) all_down &= ep->down[u * K + k];
                if (!all_down) {
                    SimQuality sq;
                    sim_quality(cfg, ep, u, r1 - 1, &sq);
                    SimObservation o;
                    memset(&o, 0, sizeof o);
                    o.bleu = sq.m_bleu;
                    o.accuracy = sq.m_accuracy;
                    o.f1 = sq.m_f1;
                    q = sim_reward(rc, &o, 0, dt);
                }
            }
            QC(r1, u + 1) = QC(r1, u) + q;
        }
    }
    for (int s = 0; s < K; s++)
        for (int j1 = 0; j1 <= K; j1++) {
            LC(s, j1, 0) = 0;
            for (int u = 0; u < T; u++) {
                SimServing sv;
                sim_serving(cfg, ep, u, s, j1 - 1, &sv);
                SimObservation o;
                memset(&o, 0, sizeof o);
                o.latency_ms = sv.latency_ms;
                LC(s, j1, u + 1) = LC(s, j1, u) - sim_reward(rc, &o, 0, dt);
            }
        }
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++)
            d.jcost[t * K + k] = sim_job_plan(cfg, ep, t, k, &d.jsteps[t * K + k], &d.jok[t * K + k]);
    SimObservation zero;
    memset(&zero, 0, sizeof zero);
    for (int t = T - 1; t >= 0; t--)
        for (int r1 = 0; r1 <= t; r1++)
            for (int s = 0; s < K; s++) {
                double best = (QC(r1, t + 1) - QC(r1, t)) - (LC(s, 0, t + 1) - LC(s, 0, t)) + VV(t + 1, r1, s);
                int act = 0;
                for (int k = 0; k < K; k++) {
                    int steps = d.jsteps[t * K + k];
                    if (steps == 0) continue;
                    int e = t + steps, ee = e < T ? e : T;
                    double v0 = sim_reward(rc, &zero, d.jcost[t * K + k], dt) +
                                (QC(r1, ee) - QC(r1, t)) - (LC(s, k + 1, ee) - LC(s, k + 1, t));
                    for (int j = pairs ? 0 : k; j < (pairs ? K : k + 1); j++) {
                        double v = v0;
                        if (e < T) v += d.jok[t * K + k] ? VV(e, t + 1, j) : VV(e, r1, s);
                        if (v > best + 1e-12) best = v, act = pairs ? 1 + k * K + j : 1 + k;
                    }
                }
                VV(t, r1, s) = best;
                CH(t, r1, s) = (signed char)act;
            }
    /* follow the argmax path from the initial state */
    int t = 0, r1 = 0, s = cfg->initial_target;
    for (int i = 0; i < T; i++) actions[i] = 0;
    while (t < T) {
        int a = CH(t, r1, s);
        actions[t] = a;
        if (!a) {
            t++;
            continue;
        }
        int k = pairs ? (a - 1) / K : a - 1, j = pairs ? (a - 1) % K : k;
        int e = t + d.jsteps[t * K + k];
        if (d.jok[t * K + k]) r1 = t + 1, s = j;
        t = e;
    }
    if (value) *value = VV(0, 0, cfg->initial_target);
    dp_free(&d);
    return DP_OK;
}

// ---- as a Policy ----

typedef struct {
    int *plan;
    int n;
    double value;
} OracleImpl;

static DpStatus oracle_begin(Policy *p, const SimConfig *cfg, const SimEpisode *ep, DpError *err) {
    OracleImpl *o = p->impl;
    if (o->n < ep->n_steps) {
        int *np = dp_realloc_array(o->plan, (size_t)ep->n_steps, sizeof(int));
        if (!np) return dp_fail(err, DP_ERR_NOMEM, "oracle plan");
        o->plan = np;
    }
    o->n = ep->n_steps;
    return policy_oracle_plan(cfg, ep, o->plan, &o->value, err);
}

static int oracle_decide(Policy *p, const SimObservation *obs) {
    OracleImpl *o = p->impl;
    int t = (int)(obs->time_s / p->interval_s + 0.5);
    return o->plan && t >= 0 && t < o->n ? o->plan[t] : 0;
}

static void oracle_destroy(Policy *p) {
    OracleImpl *o = p->impl;
    free(o->plan);
}

static const PolicyVtbl oracle_vt = {"oracle", NULL, oracle_begin, oracle_decide, oracle_destroy};

DpStatus policy_oracle_create(const SimConfig *cfg, Policy **out, DpError *err) {
    if (cfg->action_set == SIM_ACTIONS_STEPS)
        return dp_fail(err, DP_ERR_INVAL, "oracle: the 'steps' action set is not supported "
                       "(use 'targets' or 'pairs')");
    Policy *p = policy_alloc_(&oracle_vt, cfg, sizeof(OracleImpl));
    if (!p) return dp_fail(err, DP_ERR_NOMEM, "policy");
    snprintf(p->name, sizeof p->name, "oracle");
    *out = p;
    return DP_OK;
}

double policy_oracle_value(const Policy *p) { return ((const OracleImpl *)p->impl)->value; }
