/*
 * policy: who decides when and where to retrain.  Every policy is a Policy
 * object with one contract — policy_reset() at the start of an episode (or of
 * a live run), then policy_decide() once per decision interval with the raw
 * SimObservation (sim.h) — so the simulator's comparison and the live
 * controller use the very same objects.
 *
 * Kinds: static interval (fixed, round-robin or cheapest target), threshold
 * (accuracy / BLEU-1 below a level, with a cooldown), drift detectors on the
 * labelled-quality stream (Page-Hinkley and ADWIN, as River defines them),
 * PPO (a policy file trained by `driftpilot sim train-policy`; see
 * policy_ppo_create), and the oracle: the best schedule in hindsight on one
 * episode, by dynamic programming over decision points (it needs the episode,
 * so it only exists in simulation).
 *
 * Ownership: policy_*_create returns a Policy the caller frees with
 * policy_destroy (NULL-safe).  A Policy is not thread-safe; use one per
 * thread.
 *
 *     Policy *p = NULL;
 *     policy_from_spec("static:15m:cheapest", &cfg, &p, &err);
 *     PolicyEpisodeResult res;
 *     policy_run_episode(p, &cfg, &ep, &res, NULL, NULL, &err);
 *     policy_destroy(p);
 */
#ifndef DRIFTPILOT_POLICY_H
#define DRIFTPILOT_POLICY_H

#include "core.h"
#include "sim.h"

typedef struct Policy Policy;

typedef struct {
    const char *kind;
    void (*reset)(Policy *p);
    /* Called by the evaluation harness before an episode (NULL: not needed).
     * Only the oracle looks at the episode. */
    DpStatus (*begin_episode)(Policy *p, const SimConfig *cfg, const SimEpisode *ep, DpError *err);
    int (*decide)(Policy *p, const SimObservation *obs);
    void (*destroy)(Policy *p);
} PolicyVtbl;

struct Policy {
    const PolicyVtbl *vt;
    char name[64];          /* for tables: "static-15m", "ppo", ... */
    SimActionSet action_set;
    int n_targets;
    double interval_s;
    void *impl;
};

void policy_reset(Policy *p);
/* The action for this decision, in the config's action set. */
int policy_decide(Policy *p, const SimObservation *obs);
void policy_destroy(Policy *p);

// ---- target choice shared by the heuristics ----

typedef enum {
    POLICY_TARGET_FIXED = 0,       /* always `target` */
    POLICY_TARGET_ROUND_ROBIN = 1, /* 0, 1, 2, ... */
    POLICY_TARGET_CHEAPEST = 2,    /* the cheapest reachable target now */
} PolicyTargetMode;

// ---- static interval ----

typedef struct {
    double every_s;             /* 900: the study's 15 minutes */
    PolicyTargetMode mode;
    int target;                 /* for FIXED */
} PolicyStaticConfig;
DpStatus policy_static_create(const PolicyStaticConfig *c, const SimConfig *cfg, Policy **out,
                              DpError *err);

// ---- threshold ----

typedef struct {
    double accuracy_level;      /* retrain when smoothed accuracy < level (0: off) */
    double bleu_level;          /* likewise for BLEU-1 (0: off) */
    double cooldown_s;          /* at least this long between retrains */
    int smooth;                 /* mean of the last `smooth` observations (1: raw) */
    PolicyTargetMode mode;
    int target;
} PolicyThresholdConfig;
void policy_threshold_defaults(PolicyThresholdConfig *c);
DpStatus policy_threshold_create(const PolicyThresholdConfig *c, const SimConfig *cfg,
                                 Policy **out, DpError *err);

// ---- drift detectors (River's definitions) ----

typedef enum { PH_MODE_UP = 0, PH_MODE_DOWN = 1, PH_MODE_BOTH = 2 } PageHinkleyMode;

/* river.drift.PageHinkley: mean of the stream so far; cumulative deviations
 * sum_inc = alpha sum_inc + (x - mean) - delta and sum_dec = alpha sum_dec +
 * (x - mean) + delta; a drift when n >= min_instances and sum_inc - min(sum_inc)
 * > threshold (up) or max(sum_dec) - sum_dec > threshold (down).  The state
 * resets on the update after a detection. */
typedef struct {
    int min_instances;   /* 30 */
    double delta;        /* 0.005 */
    double threshold;    /* 50 */
    double alpha;        /* 1 - 0.0001 */
    PageHinkleyMode mode;/* both */
    long n;
    double mean, sum_inc, sum_dec, min_inc, max_dec;
    int drift;
} PageHinkley;
void page_hinkley_init(PageHinkley *ph, int min_instances, double delta, double threshold,
                       double alpha, PageHinkleyMode mode);
void page_hinkley_reset(PageHinkley *ph);
/* Returns 1 when this value signals a drift. */
int page_hinkley_update(PageHinkley *ph, double x);

#define ADWIN_MAX_ROWS 64
#define ADWIN_MAX_BUCKETS 16

/* river.drift.ADWIN: an adaptive window kept as an exponential histogram
 * (row i holds up to max_buckets+1 buckets of 2^i values, merged pairwise);
 * every `clock` values, once the width exceeds grace_period, every cut of
 * the window into older W0 and newer W1 (both >= min_window_length) is
 * tested with |mean0 - mean1| > sqrt(2 m v d') + 2/3 d' m, where
 * m = 1/(n0 - mwl + 1) + 1/(n1 - mwl + 1), v the window variance and
 * d' = ln(2 ln(width) / delta); on a cut the oldest bucket is dropped and the
 * test repeats.  The window is not reset after a detection. */
typedef struct {
    int n;
    double total[ADWIN_MAX_BUCKETS + 1];
    double var[ADWIN_MAX_BUCKETS + 1];
} AdwinRow;

typedef struct {
    double delta;          /* 0.002 */
    int clock;             /* 32 */
    int max_buckets;       /* 5 */
    int min_window_length; /* 5 */
    int grace_period;      /* 10 */
    double total, variance, width;
    long tick, n_detections;
    int n_rows;
    AdwinRow rows[ADWIN_MAX_ROWS]; /* rows[0] newest (size 1); within a row index 0 is oldest */
} Adwin;
void adwin_init(Adwin *a, double delta, int clock, int max_buckets, int min_window_length,
                int grace_period);
/* Returns 1 when this value led to a detected change (the window shrank). */
int adwin_update(Adwin *a, double x);
static inline double adwin_mean(const Adwin *a) { return a->width > 0 ? a->total / a->width : 0; }

typedef enum { POLICY_DETECTOR_PH = 0, POLICY_DETECTOR_ADWIN = 1 } PolicyDetector;

typedef struct {
    PolicyDetector detector;
    int use_bleu;              /* watch BLEU-1 instead of accuracy */
    /* Page-Hinkley (on the quality stream, mode down) */
    int ph_min_instances;
    double ph_delta, ph_threshold, ph_alpha;
    /* ADWIN (on the quality stream; a change counts when the mean fell) */
    double adwin_delta;
    int adwin_clock;
    double cooldown_s;
    PolicyTargetMode mode;
    int target;
} PolicyDriftConfig;
void policy_drift_defaults(PolicyDriftConfig *c, PolicyDetector detector);
DpStatus policy_drift_create(const PolicyDriftConfig *c, const SimConfig *cfg, Policy **out,
                             DpError *err);

// ---- oracle ----

/* The best schedule in hindsight for one episode (SIM_ACTIONS_TARGETS only):
 * dynamic programming over (decision t, training boundary r of the served
 * model, serving target s) with jobs folded into one transition, exact for
 * the simulator because quality depends on (t, r) only and randomness is
 * drawn up front.  Writes n_steps actions and the optimal total reward. */
DpStatus policy_oracle_plan(const SimConfig *cfg, const SimEpisode *ep, int *actions,
                            double *value, DpError *err);
/* A Policy that replays the plan of the episode given to begin_episode. */
DpStatus policy_oracle_create(const SimConfig *cfg, Policy **out, DpError *err);
double policy_oracle_value(const Policy *p); /* of the last planned episode */

// ---- PPO (a policy file from `driftpilot sim train-policy`) ----

/* Loads a PPO policy file (rl.h ppo_load) and acts greedily on the state
 * vector of the config's profile, normalised with the file's normaliser.
 * DP_ERR_STATE when rl has no PPO in this build. */
DpStatus policy_ppo_create(const char *path, const SimConfig *cfg, Policy **out, DpError *err);

// ---- construction from a short spec (CLI) ----

/* "static[:15m[:fixed=K|round-robin|cheapest]]", "threshold[:ACC[:COOLDOWN]]",
 * "ph", "adwin", "oracle".  PPO specs ("ppo:FILE") are handled by the caller
 * with policy_ppo_create. */
DpStatus policy_from_spec(const char *spec, const SimConfig *cfg, Policy **out, DpError *err);

// ---- running a policy through an episode ----

typedef struct {
    double total_reward, total_cost;
    double mean_bleu, mean_accuracy, mean_f1, mean_latency_ms;
    double true_bleu, true_accuracy;   /* expected (noise-free) means */
    double slo_violation_share;        /* share of intervals over the SLO */
    int n_retrains, n_redeploys, n_failed, n_ignored, n_steps;
} PolicyEpisodeResult;

/* Called after every decision (for --decisions CSVs). */
typedef void (*PolicyDecisionFn)(void *user, int t, const SimObservation *seen, int action,
                                 const SimStepInfo *info);

DpStatus policy_run_episode(Policy *p, const SimConfig *cfg, const SimEpisode *ep,
                            PolicyEpisodeResult *res, PolicyDecisionFn fn, void *user, DpError *err);

#endif
