/*
 * sim: the retraining decision problem — one definition of the state vector,
 * the action set and the reward (shared with the live controller), a
 * simulator of drift, load, latency, retrain time and cost on several targets
 * (clouds), a replay environment over recorded state vectors, and the fit of
 * the simulator's measurable parameters (`driftpilot sim calibrate`).
 *
 * Definitions (usable without the simulator):
 *   SimObservation   raw observed quantities over the last decision interval
 *   sim_state_dim / sim_state_build      observation -> state vector
 *   sim_action_count / sim_action_decode / sim_action_encode
 *   sim_reward       (observation, cost spent) -> reward
 *
 * Simulator:
 *   SimConfig        every parameter (JSON: sim_config_load / sim_config_save)
 *   SimEpisode       the exogenous randomness of one episode (traffic, noise,
 *                    drift events, outages, prices, job lengths), drawn up front
 *                    from (config, seed) so every policy faces the same episode
 *   SimRun           one policy's run through an episode: sim_run_reset,
 *                    sim_run_observe, sim_run_step
 *   sim_quality / sim_serving   the deterministic pieces the oracle re-uses
 *
 * Ownership: SimEpisode owns its arrays (sim_episode_free).  A SimRun borrows
 * its config and episode, which must outlive it.  SimReplay owns its rows.
 * Thread safety: nothing global except the RL registration; a SimRun or
 * SimEpisode must not be shared between threads while written.
 *
 *     SimConfig cfg; sim_config_default(&cfg);
 *     sim_scenario_apply(&cfg, "gradual", &err);
 *     SimEpisode ep = {0}; sim_episode_draw(&cfg, 42, &ep, &err);
 *     SimRun run; sim_run_reset(&run, &cfg, &ep);
 *     while (!sim_run_done(&run)) {
 *         SimObservation obs; sim_run_observe(&run, &obs);
 *         SimStepInfo info; sim_run_step(&run, choose(&obs), &info);
 *     }
 *     sim_episode_free(&ep);
 */
#ifndef DRIFTPILOT_SIM_H
#define DRIFTPILOT_SIM_H

#include "core.h"

#define SIM_MAX_TARGETS 8
#define SIM_NAME_MAX 32
#define SIM_STATE_MAX (12 + 2 * SIM_MAX_TARGETS)
#define SIM_ACC_WINDOW 10
/* Changes whenever the state vector or an action set changes meaning: a
 * policy learned on one cannot be read with another (cache keys use it). */
#define SIM_DEFS_VERSION "2"


// ---- the definitions shared with the live controller ----

typedef enum {
    SIM_PROFILE_PAPER = 0,    /* cpu, memory, request rate, latency, accuracy, redeploys */
    SIM_PROFILE_EXTENDED = 1, /* + bleu, f1, hours since retrain, queue, job running,
                                 mean accuracy since deploy (last 10),
                                 per-target price, per-target up */
} SimProfile;

typedef enum {
    SIM_ACTIONS_TARGETS = 0, /* the study's: 0 nothing, 1+k retrain+redeploy on target k */
    SIM_ACTIONS_STEPS = 1,   /* 0 nothing, then per target k: 1+3k retrain (keep serving the
                                old model), 2+3k redeploy the latest trained model to k,
                                3+3k both */
    SIM_ACTIONS_PAIRS = 2,   /* 0 nothing, 1+kK+j retrain on target k and serve the result on
                                target j: where to train and where to serve chosen apart
                                (the diagonal j = k is the study's set) */
} SimActionSet;

/* The served model's last SIM_ACC_WINDOW accuracy readings, behind the state's
 * accuracy_mean; the simulator and the live controller keep one each and
 * restart it whenever a new model serves. */
typedef struct {
    double v[SIM_ACC_WINDOW];
    int n; /* readings since the restart */
} SimAccWindow;
static inline void sim_acc_window_reset(SimAccWindow *w) { w->n = 0; }
void sim_acc_window_push(SimAccWindow *w, double accuracy);
/* Mean of the readings held; fallback when there is none yet. */
double sim_acc_window_mean(const SimAccWindow *w, double fallback);

/* Raw quantities observed over the last decision interval (what Prometheus
 * and the feedback endpoint give the live controller). */
typedef struct {
    double time_s;           /* scenario time of the decision (s since start) */
    double cpu;              /* utilisation of the serving target, [0,1] */
    double memory;           /* memory use of the serving target, [0,1] */
    double request_rate;     /* requests/s */
    double latency_ms;       /* mean request latency */
    double accuracy;         /* exact match on labelled requests, [0,1] */
    double bleu;             /* BLEU-1 on labelled requests, [0,1] */
    double f1;               /* token F1 on labelled requests, [0,1] */
    double redeploy_count;   /* redeploys so far */
    double since_retrain_s;  /* since the last retrain started (episode start if none) */
    double queue;            /* mean requests waiting at the serving target */
    int job_running;         /* a retrain job is in flight */
    /* mean accuracy of the served model over its last SIM_ACC_WINDOW
     * decisions (fewer since it was deployed; accuracy itself before any
     * reading): a steadier view of the same signal that a drift test uses */
    double accuracy_mean;
    int serving_target;      /* where the router sends traffic */
    int n_targets;
    double price[SIM_MAX_TARGETS]; /* cost of one retrain on each target now */
    int up[SIM_MAX_TARGETS];       /* target reachable now */
} SimObservation;

/* Length of the state vector for a profile (extended depends on n_targets). */
int sim_state_dim(SimProfile profile, int n_targets);

/* Writes the state vector (sim_state_dim floats) for obs.  Features are in
 * units that keep them O(1): rate in k req/s, latency in s, redeploys / 10,
 * hours since retrain, queue / 10, price x 10.  Learned policies still
 * normalise on top (z-scores fitted on training data). */
void sim_state_build(SimProfile profile, const SimObservation *obs, float *out);
/* Feature names for headers and docs ("cpu", "memory", ...); i < dim. */
const char *sim_state_feature_name(SimProfile profile, int n_targets, int i, char *buf, size_t cap);

typedef struct {
    int retrain;  /* start a retrain job */
    int redeploy; /* deploy the result (or, alone, the latest trained model) */
    int target;   /* target index (where the job runs, or the redeploy goes); -1 for nothing */
    int deploy_target; /* where a retrain's result serves: target, except in SIM_ACTIONS_PAIRS */
} SimDecision;

/* The sets' names, indexed by SimActionSet, NULL-terminated (config files use
 * them).  parse returns DP_ERR_INVAL naming the choices for anything else. */
extern const char *const sim_action_set_names[];
DpStatus sim_action_set_parse(const char *name, SimActionSet *out, DpError *err);
const char *sim_action_set_name(SimActionSet set);

int sim_action_count(SimActionSet set, int n_targets);
/* Decodes an action index; out-of-range actions decode as nothing. */
SimDecision sim_action_decode(SimActionSet set, int n_targets, int action);
/* Encodes a decision; a retrain in SIM_ACTIONS_TARGETS always redeploys (on its
 * own target), and in SIM_ACTIONS_PAIRS on deploy_target (a negative one: on
 * target). */
int sim_action_encode(SimActionSet set, int n_targets, SimDecision d);
/* "nothing", "retrain+redeploy@aws", ... into buf. */
const char *sim_action_name(SimActionSet set, int n_targets, const char (*target_names)[SIM_NAME_MAX],
                            int action, char *buf, size_t cap);

typedef enum {
    SIM_COST_FLAT = 0,      /* the study's: a fixed price per retrain (0.045 aws, 0.038 azure) */
    SIM_COST_GPU_HOURS = 1, /* GPU-hours of the job times the target's price per GPU-hour */
} SimCostMode;

typedef struct {
    double w_bleu;          /* 0.5 */
    double w_accuracy;      /* 0.5 */
    double w_f1;            /* 0 */
    /* The quality term counts interval_s / quality_unit_s: 60 with a 60 s
     * interval is the study's literal reward (one quality unit per decision);
     * 3600 counts quality per hour, which makes a 0.045 retrain comparable
     * with minutes of lost quality. */
    double quality_unit_s;
    double cost_weight;     /* multiplies the cost spent (1) */
    SimCostMode cost_mode;
    double slo_ms;          /* latency objective; 0 disables the penalty */
    double slo_weight;      /* penalty per unit of relative excess (lat-slo)/slo, per quality unit */
} SimRewardConfig;

/* The study's reward: 0.5 BLEU + 0.5 accuracy - flat cost, per decision. */
void sim_reward_study(SimRewardConfig *rc);
/* The default: the same weights, quality per hour, SLO 150 ms with weight 1. */
void sim_reward_default(SimRewardConfig *rc);

/* Reward of one decision interval: quality and latency observed over the
 * interval (obs->bleu, accuracy, f1, latency_ms) and the cost spent by the
 * action taken at its start:
 *   k = interval_s / quality_unit_s
 *   r = k (w_bleu bleu + w_accuracy acc + w_f1 f1)
 *       - k slo_weight max(0, (latency - slo) / slo) - cost_weight cost */
double sim_reward(const SimRewardConfig *rc, const SimObservation *obs, double cost,
                  double interval_s);

// ---- simulator configuration ----

typedef struct {
    char name[SIM_NAME_MAX];
    double price;               /* flat cost of one retrain (cost units) */
    double price_per_gpu_hour;  /* used with SIM_COST_GPU_HOURS */
    double speed;               /* retrain speed relative to the reference GPU */
    double distance_ms;         /* network latency added to every request */
    double service_ms;          /* service time of one request at zero load */
    double capacity_rps;        /* requests/s at utilisation 1 */
    double contention;          /* fraction of capacity lost while a retrain runs here */
    double outage_per_hour;     /* rate at which random outages start */
    double outage_mean_s;       /* mean length of a random outage */
    double redeploy_cost;       /* cost of a redeploy alone (STEPS action set) */
} SimTarget;

typedef enum { SIM_TRAFFIC_STEADY = 0, SIM_TRAFFIC_SPIKE = 1, SIM_TRAFFIC_DIURNAL = 2 } SimTrafficKind;

typedef struct {
    SimTrafficKind kind;
    double base_rps;       /* 200 (the study) */
    double noise;          /* relative sd of per-interval rate noise */
    double spike_factor;   /* rate multiplier during the spike */
    double spike_len_s;    /* length of the spike; its start is uniform in the episode */
    double diurnal_amp;    /* relative amplitude of the daily cycle */
    double diurnal_period_s;
} SimTraffic;

typedef enum {
    SIM_DRIFT_NONE = 0,
    SIM_DRIFT_GRADUAL = 1,   /* facts change at a constant rate */
    SIM_DRIFT_SUDDEN = 2,    /* a share of the facts changes at one random moment */
    SIM_DRIFT_RECURRING = 3, /* a share of the facts alternates between two seasons */
} SimDriftKind;

typedef struct {
    SimDriftKind kind;
    double background_per_hour; /* change rate of facts present in every kind */
    double rate_per_hour;       /* gradual: change rate per fact per hour */
    double sudden_magnitude;    /* sudden: share of facts that change at once */
    double sudden_lo_s, sudden_hi_s; /* sudden: the moment is uniform in [lo, hi] */
    double seasonal_share;      /* recurring: share of facts with seasonal values */
    double season_len_s;        /* recurring: length of one season */
} SimDrift;

/* The served model's quality as a function of the facts it knows. */
typedef struct {
    double coverage;   /* share of the changed facts a retrain learns (the labelled window) */
    double gpu_hours;  /* work of one retrain on the reference GPU (speed 1) */
    double bleu_right, bleu_wrong; /* BLEU-1 of an answer on a known / a stale fact */
    double em_right, em_wrong;     /* exact match likewise */
    double f1_right, f1_wrong;
    double label_fraction;         /* share of requests with reference answers (noise) */
} SimModel;

typedef struct {
    char name[SIM_NAME_MAX];
    double duration_s;       /* episode length (4 h) */
    double interval_s;       /* decision interval (60 s) */
    int n_targets;
    SimTarget targets[SIM_MAX_TARGETS];
    int initial_target;      /* where serving starts */
    SimTraffic traffic;
    SimDrift drift;
    SimModel model;
    SimRewardConfig reward;
    SimProfile profile;
    SimActionSet action_set;
    double timeout_ms;       /* latency when no target can serve */
    double latency_noise;    /* relative sd of per-interval latency noise */
    /* scripted events (scenarios): -1 target = none */
    int price_change_target;
    double price_change_at_s;
    double price_change_factor;
    int outage_target;
    double outage_lo_s, outage_hi_s; /* the outage starts uniformly in [lo, hi] */
    double outage_len_s;
} SimConfig;

/* The study's setup: 2 targets "aws" (0.045) and "azure" (0.038), 200 req/s,
 * 60 s decisions, 4 hours, gradual drift, default reward (quality per hour,
 * SLO 150 ms). */
void sim_config_default(SimConfig *cfg);
/* Checks ranges; DP_ERR_INVAL naming the field. */
DpStatus sim_config_validate(const SimConfig *cfg, DpError *err);
/* Loads JSON over the current contents of cfg (fields absent keep their
 * value), so a file can hold only what differs from the defaults.  Errors
 * name the file and the field. */
DpStatus sim_config_load(SimConfig *cfg, const char *path, DpError *err);
DpStatus sim_config_load_text(SimConfig *cfg, const char *text, const char *origin, DpError *err);
/* Writes every field as JSON (atomic). */
DpStatus sim_config_save(const SimConfig *cfg, const char *path, DpError *err);
/* A JSON text of cfg, owned by the caller (free). */
char *sim_config_to_json(const SimConfig *cfg);

/* Scenarios of the comparison: steady, spike, gradual, sudden, recurring,
 * price-change, outage.  Applies the scenario's traffic, drift and events on
 * top of cfg (targets, model, reward stay).  DP_ERR_INVAL on an unknown name. */
DpStatus sim_scenario_apply(SimConfig *cfg, const char *name, DpError *err);
int sim_scenario_count(void);
const char *sim_scenario_name(int i);

static inline int sim_config_steps(const SimConfig *cfg) {
    return (int)(cfg->duration_s / cfg->interval_s + 0.5);
}
int sim_target_index(const SimConfig *cfg, const char *name); /* -1 when absent */

// ---- episodes: exogenous randomness drawn up front ----

typedef struct {
    int n_steps;
    int n_targets;
    uint64_t seed;
    double *rate;        /* (n_steps) request rate during step t */
    double *lat_noise;   /* (n_steps) latency multiplier */
    double *z_acc, *z_bleu, *z_f1, *z_mem; /* (n_steps) standard normal measurement noise */
    double *hazard;      /* (n_steps + 1) cumulative change hazard at boundaries */
    double *hazard_mid;  /* (n_steps) at the middle of step t */
    unsigned char *season; /* (n_steps + 1) season at boundary t / during step t */
    unsigned char *down; /* (n_steps, n_targets) target unavailable during step t */
    double *price;       /* (n_steps, n_targets) cost of a retrain started at t */
    int *job_steps;      /* (n_steps, n_targets) length in steps of a job started at t */
    double drift_event_s; /* sudden drift moment (-1 none) */
} SimEpisode;

/* Draws an episode; the same (cfg, seed) gives the same episode. */
DpStatus sim_episode_draw(const SimConfig *cfg, uint64_t seed, SimEpisode *ep, DpError *err);
void sim_episode_free(SimEpisode *ep);

/* Quality over step t of a model whose training data ends at boundary r
 * (r = -1: the initial model). */
typedef struct {
    double p_known;              /* share of asked facts the model answers with the current value */
    double accuracy, bleu, f1;   /* expected */
    double m_accuracy, m_bleu, m_f1; /* measured on the labelled requests (with noise) */
} SimQuality;
void sim_quality(const SimConfig *cfg, const SimEpisode *ep, int t, int r, SimQuality *q);

/* Serving conditions over step t: router target s, retrain job on target j
 * (-1 none). */
typedef struct {
    int effective;   /* target that served (failover), -1 when none could */
    double latency_ms, cpu, memory, queue, utilisation;
} SimServing;
void sim_serving(const SimConfig *cfg, const SimEpisode *ep, int t, int s, int j, SimServing *out);

/* Cost of a retrain started at t on k, its length in steps, and whether it
 * completes (an outage that starts during the job fails it, and only the
 * part that ran is charged).  Returns the cost; a target down at t gives
 * *steps = 0 (the job does not start, nothing is charged). */
double sim_job_plan(const SimConfig *cfg, const SimEpisode *ep, int t, int k, int *steps, int *ok);

// ---- one run through an episode ----

typedef struct {
    double reward, cost;
    SimObservation obs;      /* measured over this step */
    SimQuality quality;
    int action;              /* as given */
    int started;             /* a retrain started at this decision */
    int deployed;            /* a new model started serving at this decision */
    int ignored;             /* the action could not run (busy, target down, nothing to deploy) */
    int job_failed;          /* a job ended without a model at this decision */
} SimStepInfo;

typedef struct {
    const SimConfig *cfg;    /* borrowed */
    const SimEpisode *ep;    /* borrowed */
    int t;                   /* next decision */
    int model_r;             /* training-data boundary of the served model (-1 initial) */
    int pending_r;           /* STEPS: trained, not deployed (-2 none) */
    int serving;             /* router target */
    int job_target, job_start, job_end, job_ok, job_redeploy; /* job_target -1: none */
    int job_deploy;          /* where the job's model will serve */
    int last_retrain_t;      /* decision of the last retrain start (-1 none) */
    int n_retrains, n_redeploys, n_failed, n_ignored;
    double total_cost, total_reward;
    SimObservation last;     /* measured over the previous step (initially: step 0 unloaded) */
    SimAccWindow acc;        /* the served model's accuracy readings */
} SimRun;

void sim_run_reset(SimRun *run, const SimConfig *cfg, const SimEpisode *ep);
static inline int sim_run_done(const SimRun *run) { return run->t >= run->ep->n_steps; }
/* The observation a policy sees at the current decision. */
void sim_run_observe(const SimRun *run, SimObservation *obs);
/* Applies the action at decision t and advances one interval. */
void sim_run_step(SimRun *run, int action, SimStepInfo *info);

// ---- RL environment ("retrain-sim", "retrain-replay") ----

/* Configuration handed to rl_env_create("retrain-sim", ...): the base config
 * and scenario names to mix (one is drawn per episode); seeds of episodes are
 * drawn from the env's own RNG stream plus seed_offset, so they stay disjoint
 * from evaluation seeds (which are small integers). */
typedef struct {
    SimConfig base;
    int n_scenarios;
    char scenarios[16][SIM_NAME_MAX];
    uint64_t seed_offset;
    double reward_scale;   /* rewards handed to the learner are multiplied by this (0: 1) */
} SimRlConfig;

/* Default dimensions of the registered kinds ("retrain-sim": the extended
 * profile with 2 targets, "retrain-replay": the paper profile); init sets
 * env->obs_dim and env->n_actions from the config it is given. */
#define SIM_RL_OBS_DIM 16
#define SIM_RL_N_ACTIONS 3
#define SIM_REPLAY_OBS_DIM 6

/* Registers "retrain-sim" and "retrain-replay" with rl (idempotent). */
DpStatus sim_rl_register(DpError *err);

// ---- replay of recorded state vectors (the study's offline environment) ----

typedef struct {
    int n_rows;
    int dim;                 /* features per row (the paper profile: 6) */
    float *states;           /* (n_rows, dim) rolling means in state-vector units, or their z-scores */
    double *quality;         /* (n_rows) recorded quality term of the reward */
    double *mean, *std;      /* (dim) the z-score scaler of the rolling means */
    int n_targets;
    double price[SIM_MAX_TARGETS];
    SimRewardConfig reward;
    double interval_s;
    int episode_len;         /* rows per episode (default: all) */
} SimReplay;

/* Loads a CSV with a header naming columns: cpu, memory, request_rate,
 * latency_ms, accuracy, redeploy_count (required), bleu (optional, else
 * accuracy); other columns are ignored.  Empty or "nan" cells are linearly
 * interpolated; each column is smoothed by a trailing rolling mean of
 * `window` rows and put in the paper profile's units (sim_state_build); with
 * zscore the states are z-scored with the fitted mean/std (the study's
 * scaler), otherwise a learner normalises them itself (PPO's running
 * normaliser, saved in the policy file).  Prices and reward from cfg. */
DpStatus sim_replay_load(SimReplay *rp, const char *path, int window, int zscore,
                         const SimConfig *cfg, DpError *err);
void sim_replay_free(SimReplay *rp);
/* Reward of taking action at row i (quality at row i+1 minus the action's
 * cost); the next state is row i+1 whatever the action. */
double sim_replay_reward(const SimReplay *rp, int i, int action);

// ---- calibration ----

typedef struct {
    int n_jobs;              /* job records used */
    int n_latency_points;    /* (target, window) points used */
    double coverage;         /* fitted, or unchanged */
    double fitted_speed[SIM_MAX_TARGETS];
    double latency_rmse[SIM_MAX_TARGETS];
    int fitted_latency[SIM_MAX_TARGETS]; /* 0 unchanged, 1 curve fitted, 2 level only (one load) */
    double time_scale;       /* experiment only: scenario seconds per wall second used */
} SimCalibration;

/* Fits retrain speed per target and coverage from job records (*.json in
 * jobs_dir; NULL to skip) and distance/service/capacity per target from a
 * load-generator CSV (time,target,latency_ms,status,model_version; NULL to
 * skip), updating cfg.  See docs/sim.md for the formats. */
DpStatus sim_calibrate(SimConfig *cfg, const char *jobs_dir, const char *loadgen_csv,
                       SimCalibration *out, DpError *err);

/* The same fits from a `driftpilot experiment` results directory: retrain
 * durations from jobs.csv (status ok, wall seconds times time_scale; <= 0
 * reads time_scale from work/r1/<pipeline>/driftpilot.toml), coverage from
 * the job reports kept under work/rN/<pipeline>/jobs/, and latency per target
 * from work/rN/<pipeline>/requests.csv with each request attributed to the
 * target serving it (deployments.csv), binned per run. */
DpStatus sim_calibrate_experiment(SimConfig *cfg, const char *dir, double time_scale, SimCalibration *out,
                                  DpError *err);

#endif
