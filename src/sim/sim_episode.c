/* The simulator: episodes of exogenous randomness drawn up front, and the
 * deterministic model of quality, serving and retrain jobs on top of them.
 *
 * The world model (consistent with the drifting QA world in src/qa): the
 * world is a set of facts; each fact changes at a hazard rate (gradual:
 * constant; sudden: a jump of hazard at one moment; recurring: a share of the
 * facts takes one of two seasonal values).  A model answers a fact correctly
 * when its value is the current one.  A retrain started at decision r
 * fine-tunes from the base model on the recent labelled window plus replay of
 * the original data, so it knows the world as of boundary r for a share
 * `coverage` of the facts and the original world for the rest:
 *
 *   P(correct) = U(r,t) (c + (1-c) U(0,r))     U(a,b) = exp(-(H(b)-H(a)))
 *
 * This makes the served model's quality a function of (t, r) only, which is
 * what lets the oracle run a small dynamic programme.  Jobs start and end on
 * decision boundaries (durations rounded up to whole intervals). */
#include "sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- episodes ----

enum { STREAM_TRAFFIC = 1, STREAM_NOISE, STREAM_DRIFT, STREAM_OUTAGE, STREAM_JOBS };

void sim_episode_free(SimEpisode *ep) {
    if (!ep) return;
    free(ep->rate);
    free(ep->lat_noise);
    free(ep->z_acc);
    free(ep->z_bleu);
    free(ep->z_f1);
    free(ep->z_mem);
    free(ep->hazard);
    free(ep->hazard_mid);
    free(ep->season);
    free(ep->down);
    free(ep->price);
    free(ep->job_steps);
    memset(ep, 0, sizeof *ep);
}

static double clamp(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

DpStatus sim_episode_draw(const SimConfig *cfg, uint64_t seed, SimEpisode *ep, DpError *err) {
    DpStatus st = sim_config_validate(cfg, err);
    if (st) return st;
    memset(ep, 0, sizeof *ep);
    int T = sim_config_steps(cfg), K = cfg->n_targets;
    double dt = cfg->interval_s;
    ep->n_steps = T;
    ep->n_targets = K;
    ep->seed = seed;
    ep->rate = dp_calloc((size_t)T, sizeof(double));
    ep->lat_noise = dp_calloc((size_t)T, sizeof(double));
    ep->z_acc = dp_calloc((size_t)T, sizeof(double));
    ep->z_bleu = dp_calloc((size_t)T, sizeof(double));
    ep->z_f1 = dp_calloc((size_t)T, sizeof(double));
    ep->z_mem = dp_calloc((size_t)T, sizeof(double));
    ep->hazard = dp_calloc((size_t)T + 1, sizeof(double));
    ep->hazard_mid = dp_calloc((size_t)T, sizeof(double));
    ep->season = dp_calloc((size_t)T + 1, 1);
    ep->down = dp_calloc((size_t)T * K, 1);
    ep->price = dp_calloc((size_t)T * K, sizeof(double));
    ep->job_steps = dp_calloc((size_t)T * K, sizeof(int));
    if (!ep->rate || !ep->lat_noise || !ep->z_acc || !ep->z_bleu || !ep->z_f1 || !ep->z_mem ||
        !ep->hazard || !ep->hazard_mid || !ep->season || !ep->down || !ep->price || !ep->job_steps) {
        sim_episode_free(ep);
        return dp_fail(err, DP_ERR_NOMEM, "episode of %d steps", T);
    }
    /* One RNG stream per source, so changing one source leaves the others. */
    DpRng r;
    dp_rng_seed_stream(&r, seed, STREAM_TRAFFIC);
    const SimTraffic *tr = &cfg->traffic;
    double spike_start = dp_rng_uniform(&r) * fmax(0, cfg->duration_s - tr->spike_len_s);
    for (int t = 0; t < T; t++) {
        double time = (t + 0.5) * dt, f = 1;
        if (tr->kind == SIM_TRAFFIC_SPIKE && time >= spike_start && time < spike_start + tr->spike_len_s)
            f = tr->spike_factor;
        else if (tr->kind == SIM_TRAFFIC_DIURNAL)
            f = 1 + tr->diurnal_amp * sin(2 * M_PI * time / tr->diurnal_period_s);
        ep->rate[t] = fmax(0, tr->base_rps * f * (1 + tr->noise * dp_rng_normal(&r)));
    }
    dp_rng_seed_stream(&r, seed, STREAM_NOISE);
    for (int t = 0; t < T; t++) {
        ep->lat_noise[t] = clamp(1 + cfg->latency_noise * dp_rng_normal(&r), 0.5, 2);
        ep->z_acc[t] = dp_rng_normal(&r);
        ep->z_bleu[t] = dp_rng_normal(&r);
        ep->z_f1[t] = dp_rng_normal(&r);
        ep->z_mem[t] = dp_rng_normal(&r);
    }
    dp_rng_seed_stream(&r, seed, STREAM_DRIFT);
    const SimDrift *d = &cfg->drift;
    double rate = d->background_per_hour + (d->kind == SIM_DRIFT_GRADUAL ? d->rate_per_hour : 0);
    ep->drift_event_s = -1;
    double jump = 0;
    if (d->kind == SIM_DRIFT_SUDDEN) {
        ep->drift_event_s = d->sudden_lo_s + dp_rng_uniform(&r) * (d->sudden_hi_s - d->sudden_lo_s);
        jump = -log(1 - d->sudden_magnitude);
    }
    for (int t = 0; t < T; t++) {
        double a = t * dt, b = (t + 1) * dt, inc = rate * dt / 3600;
        double j = (ep->drift_event_s >= a && ep->drift_event_s < b) ? jump : 0;
        ep->hazard[t + 1] = ep->hazard[t] + inc + j;
        ep->hazard_mid[t] = ep->hazard[t] + 0.5 * (inc + j);
    }
    for (int t = 0; t <= T; t++)
        ep->season[t] = d->kind == SIM_DRIFT_RECURRING ? (unsigned char)((long)floor(t * dt / d->season_len_s) % 2) : 0;
    dp_rng_seed_stream(&r, seed, STREAM_OUTAGE);
    for (int k = 0; k < K; k++) {
        const SimTarget *tg = &cfg->targets[k];
        double p = tg->outage_per_hour * dt / 3600;
        for (int t = 0; t < T; t++) {
            double u = dp_rng_uniform(&r), len = dp_rng_exponential(&r, 1.0 / tg->outage_mean_s);
            if (p > 0 && u < p) {
                int n = (int)ceil(len / dt);
                for (int s = t; s < T && s < t + n; s++) ep->down[s * K + k] = 1;
            }
        }
    }
    if (cfg->outage_target >= 0) {
        double start = cfg->outage_lo_s + dp_rng_uniform(&r) * (cfg->outage_hi_s - cfg->outage_lo_s);
        for (int t = 0; t < T; t++) {
            double a = t * dt, b = (t + 1) * dt;
            if (b > start && a < start + cfg->outage_len_s) ep->down[t * K + cfg->outage_target] = 1;
        }
    }
    dp_rng_seed_stream(&r, seed, STREAM_JOBS);
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++) {
            const SimTarget *tg = &cfg->targets[k];
            double hours = cfg->model.gpu_hours / tg->speed;
            double jitter = exp(0.1 * dp_rng_normal(&r));
            int n = (int)ceil(hours * 3600 * jitter / dt - 1e-9);
            ep->job_steps[t * K + k] = n < 1 ? 1 : n;
            double f = (k == cfg->price_change_target && t * dt >= cfg->price_change_at_s)
                           ? cfg->price_change_factor
                           : 1;
            double base = cfg->reward.cost_mode == SIM_COST_FLAT ? tg->price
                                                                  : hours * tg->price_per_gpu_hour;
            ep->price[t * K + k] = base * f;
        }
    return DP_OK;
}

// ---- the deterministic model ----

void sim_quality(const SimConfig *cfg, const SimEpisode *ep, int t, int r, SimQuality *q) {
    const SimModel *m = &cfg->model;
    double c = m->coverage;
    double share = cfg->drift.kind == SIM_DRIFT_RECURRING ? cfg->drift.seasonal_share : 0;
    double pn, ps;
    int now = ep->season[t];
    if (r < 0) {
        pn = exp(-ep->hazard_mid[t]);
        ps = ep->season[0] == now;
    } else {
        pn = exp(-(ep->hazard_mid[t] - ep->hazard[r])) * (c + (1 - c) * exp(-ep->hazard[r]));
        ps = c * (ep->season[r] == now) + (1 - c) * (ep->season[0] == now);
    }
    double p = (1 - share) * pn + share * ps;
    q->p_known = p;
    q->accuracy = m->em_wrong + (m->em_right - m->em_wrong) * p;
    q->bleu = m->bleu_wrong + (m->bleu_right - m->bleu_wrong) * p;
    q->f1 = m->f1_wrong + (m->f1_right - m->f1_wrong) * p;
    /* Measured on the labelled share of the interval's requests. */
    double n = fmax(1, m->label_fraction * ep->rate[t] * cfg->interval_s);
    double sn = 1 / sqrt(n);
    q->m_accuracy = clamp(q->accuracy + sqrt(q->accuracy * (1 - q->accuracy)) * sn * ep->z_acc[t], 0, 1);
    q->m_bleu = clamp(q->bleu + 0.25 * sn * ep->z_bleu[t], 0, 1);
    q->m_f1 = clamp(q->f1 + 0.3 * sn * ep->z_f1[t], 0, 1);
}

/* Latency of target k at step t with training (1) or not (0) running there. */
static double target_latency(const SimConfig *cfg, const SimEpisode *ep, int t, int k, int busy,
                             double *util) {
    const SimTarget *tg = &cfg->targets[k];
    double cap = tg->capacity_rps * (busy ? 1 - tg->contention : 1);
    double rho = ep->rate[t] / cap;
    if (util) *util = rho;
    double rc = rho < 0.97 ? rho : 0.97;
    return (tg->distance_ms + tg->service_ms / (1 - rc)) * ep->lat_noise[t];
}

void sim_serving(const SimConfig *cfg, const SimEpisode *ep, int t, int s, int j, SimServing *out) {
    int K = cfg->n_targets, e = -1;
    if (!ep->down[t * K + s]) {
        e = s;
    } else {
        /* the router fails over to the fastest reachable target */
        double best = INFINITY;
        for (int k = 0; k < K; k++) {
            if (ep->down[t * K + k]) continue;
            double l = target_latency(cfg, ep, t, k, k == j, NULL);
            if (l < best) best = l, e = k;
        }
    }
    memset(out, 0, sizeof *out);
    out->effective = e;
    if (e < 0) {
        out->latency_ms = cfg->timeout_ms;
        return;
    }
    int busy = e == j;
    double rho;
    out->latency_ms = target_latency(cfg, ep, t, e, busy, &rho);
    double cont = busy ? cfg->targets[e].contention : 0;
    double rc = rho < 0.97 ? rho : 0.97;
    out->utilisation = rho;
    out->cpu = clamp(cont + rho * (1 - cont), 0, 1);
    out->memory = clamp(0.35 + 0.15 * rc + (busy ? 0.3 : 0) + 0.02 * ep->z_mem[t], 0, 1);
    out->queue = rc * rc / (1 - rc);
}

double sim_job_plan(const SimConfig *cfg, const SimEpisode *ep, int t, int k, int *steps, int *ok) {
    int K = cfg->n_targets, T = ep->n_steps;
    *steps = 0;
    *ok = 0;
    if (t < 0 || t >= T || k < 0 || k >= K || ep->down[t * K + k]) return 0;
    int d = ep->job_steps[t * K + k];
    double price = ep->price[t * K + k];
    for (int u = t + 1; u < t + d && u < T; u++)
        if (ep->down[u * K + k]) {
            *steps = u - t;
            return price * (double)(u - t) / d;
        }
    *steps = d;
    *ok = 1;
    return price;
}

// ---- a run ----

static void measure(const SimRun *run, int t, int job, SimObservation *o, SimQuality *qout) {
    const SimConfig *cfg = run->cfg;
    SimQuality q;
    SimServing sv;
    sim_quality(cfg, run->ep, t, run->model_r, &q);
    sim_serving(cfg, run->ep, t, run->serving, job, &sv);
    o->cpu = sv.cpu;
    o->memory = sv.memory;
    o->request_rate = run->ep->rate[t];
    o->latency_ms = sv.latency_ms;
    o->queue = sv.queue;
    if (sv.effective < 0) {
        /* nothing served: no answers, so no correct ones */
        q.m_accuracy = q.m_bleu = q.m_f1 = 0;
    }
    o->accuracy = q.m_accuracy;
    o->bleu = q.m_bleu;
    o->f1 = q.m_f1;
    if (qout) *qout = q;
}

void sim_run_reset(SimRun *run, const SimConfig *cfg, const SimEpisode *ep) {
    memset(run, 0, sizeof *run);
    run->cfg = cfg;
    run->ep = ep;
    run->model_r = -1;
    run->pending_r = -2;
    run->serving = cfg->initial_target;
    run->job_target = -1;
    run->last_retrain_t = -1;
    measure(run, 0, -1, &run->last, NULL);
}

void sim_run_observe(const SimRun *run, SimObservation *o) {
    const SimConfig *cfg = run->cfg;
    int K = cfg->n_targets, t = run->t < run->ep->n_steps ? run->t : run->ep->n_steps - 1;
    *o = run->last;
    o->time_s = run->t * cfg->interval_s;
    o->redeploy_count = run->n_redeploys;
    o->since_retrain_s = (run->t - (run->last_retrain_t >= 0 ? run->last_retrain_t : 0)) * cfg->interval_s;
    o->job_running = run->job_target >= 0 && run->job_end > run->t;
    o->accuracy_mean = sim_acc_window_mean(&run->acc, o->accuracy);
    o->serving_target = run->serving;
    o->n_targets = K;
    for (int k = 0; k < K; k++) {
        o->price[k] = run->ep->price[t * K + k];
        o->up[k] = !run->ep->down[t * K + k];
    }
}

/* A job that ends at the boundary run->t delivers there, so the observation
 * at that decision already shows the new model. */
static void complete_job(SimRun *run, SimStepInfo *info) {
    int t = run->t;
    if (run->job_target >= 0 && run->job_end <= t) {
        if (run->job_ok) {
            if (run->job_redeploy) {
                run->model_r = run->job_start;
                run->serving = run->job_deploy;
                run->n_redeploys++;
                sim_acc_window_reset(&run->acc);
                info->deployed = 1;
            } else {
                run->pending_r = run->job_start;
            }
        } else {
            run->n_failed++;
            info->job_failed = 1;
        }
        run->job_target = -1;
    }
}

void sim_run_step(SimRun *run, int action, SimStepInfo *info) {
    const SimConfig *cfg = run->cfg;
    int t = run->t;
    memset(info, 0, sizeof *info);
    info->action = action;
    if (t >= run->ep->n_steps) {
        info->ignored = 1;
        return;
    }
    SimDecision d = sim_action_decode(cfg->action_set, cfg->n_targets, action);
    double cost = 0;
    if (d.retrain) {
        int steps = 0, ok = 0;
        double c = run->job_target >= 0 ? 0 : sim_job_plan(cfg, run->ep, t, d.target, &steps, &ok);
        if (run->job_target >= 0 || steps == 0) {
            info->ignored = 1;
        } else {
            run->job_target = d.target;
            run->job_start = t;
            run->job_end = t + steps;
            run->job_ok = ok;
            run->job_redeploy = d.redeploy;
            run->job_deploy = d.deploy_target;
            run->n_retrains++;
            run->last_retrain_t = t;
            cost += c;
            info->started = 1;
        }
    } else if (d.redeploy) {
        if (run->pending_r >= 0) {
            run->model_r = run->pending_r;
            run->pending_r = -2;
            run->serving = d.target;
            run->n_redeploys++;
            sim_acc_window_reset(&run->acc);
            cost += cfg->targets[d.target].redeploy_cost;
            info->deployed = 1;
        } else {
            info->ignored = 1;
        }
    }
    if (info->ignored) run->n_ignored++;
    int job = run->job_target >= 0 ? run->job_target : -1;
    SimObservation o;
    sim_run_observe(run, &o); /* counters, prices, time of this decision */
    measure(run, t, job, &o, &info->quality);
    info->cost = cost;
    info->reward = sim_reward(&cfg->reward, &o, cost, cfg->interval_s);
    info->obs = o;
    run->last = o;
    sim_acc_window_push(&run->acc, o.accuracy);
    run->total_cost += cost;
    run->total_reward += info->reward;
    run->t++;
    complete_job(run, info);
}
