/*
 * control: the live controller (`driftpilot control`) -- the study's agent
 * loop as a daemon.  Every decision interval (scenario time, core DpClock at
 * the config's time scale) it
 *
 *   1. reads the state of every target: by scraping each service's /metrics
 *      (source "direct", the default) or from a Prometheus server over PromQL
 *      (source "prometheus"); either way the result is the same
 *      SimObservation (sim.h) of the serving target plus per-target up/price;
 *   2. if a redeploy is being watched, compares live quality with the
 *      previous version's and rolls back when it fell by more than the margin;
 *   3. asks the policy (policy.h; PPO normalises with the scaler saved in its
 *      file) for an action, unless the metrics are stale;
 *   4. executes it: a retrain job on the chosen target through the deploy
 *      executor (with a time limit, in a background thread: decisions go on
 *      while it runs, and a second retrain of the deployment is refused),
 *      then, if the job published a version, promote + POST /admin/reload to
 *      the target's service, and POST /admin/route to the router when the
 *      target is not the one serving;
 *   5. accounts the job's cost per target and records everything in the store
 *      (metric samples, state vectors, decisions with reasons, jobs,
 *      deployments, costs, events).
 *
 * State definitions (both sources; rates are per wall-clock second):
 *   cpu          rate(process_cpu_seconds_total) / CPUs of the target
 *                (cpus, else cpu_quota, else 1), capped at 1
 *   memory       process_resident_memory_bytes / memory_mb (else the
 *                controller host's MemTotal)
 *   request_rate rate(http_requests_total{route="/predict"}) summed over codes
 *   latency_ms   MEAN /predict latency over the window: the rate of
 *                http_request_duration_seconds_sum over the rate of _count
 *                (kept from the previous interval when there were no requests)
 *   accuracy, bleu, f1   llm_accuracy, llm_bleu, llm_f1 (gauges)
 *   queue        llm_queue_depth when exposed, else 0
 *   redeploy_count, since_retrain_s, job_running, serving_target: the
 *                controller's own state.
 * Direct rates are over the time between two scrapes of the controller;
 * PromQL rates over ControlConfig.rate_window_s.
 *
 * A decision that cannot be carried out (a retrain already running, target
 * down, job failed, nothing published, reload refused, metrics stale -- the
 * serving target's last good read older than stale_intervals intervals) is
 * recorded with its reason; the safe action is always to keep serving.  A
 * version whose base was rolled back while its job ran is not deployed.
 *
 * Rollback: after a redeploy the new version's quality (the [reward]-weighted
 * mean of BLEU-1 and accuracy) is compared with the previous version's.  When
 * the service exposes llm_feedback_total / llm_feedback_window_size, it is
 * estimated from the labels that arrived since the deploy (at least
 * rollback_min_labels); otherwise the window mean is used from one interval
 * after the deploy.  A drop by more than rollback_margin within
 * rollback_window rolls back (registry + reload, or the router back to the
 * previous target).
 *
 * Ownership: control_create copies the ControlConfig; control_destroy waits
 * for a running job (it has a time limit) and frees everything (NULL-safe).
 * Thread safety: control_step / control_run / control_observe from one
 * thread; control_stop_flag may be set from any thread or a signal handler.
 *
 *     ControlConfig cc;
 *     control_config_init(&cc, &deploy_cfg);       // from deploy_config_load
 *     snprintf(cc.data_path, sizeof cc.data_path, "feedback.jsonl");
 *     Control *c;
 *     if (control_create(&cc, &c, &err)) ...;
 *     control_run(c, &stop, 3600, &err);             // or control_step() per decision
 *     control_destroy(c);
 */
#ifndef DRIFTPILOT_CONTROL_H
#define DRIFTPILOT_CONTROL_H

#include <signal.h>
#include <stdio.h>

#include "core.h"
#include "deploy.h"
#include "sim.h"

#define CONTROL_STR_MAX 1024

typedef enum {
    CONTROL_COST_AUTO = 0,      /* flat retrain_cost when the target has one, else GPU-hours */
    CONTROL_COST_FLAT = 1,      /* the study's: the target's retrain_cost per retrain started */
    CONTROL_COST_GPU_HOURS = 2, /* job wall duration (h) x price_per_gpu_hour x max(1, gpu_count) */
} ControlCostMode;

typedef struct {
    DeployConfig deploy;                 /* targets, [policy], [reward], [control], [metrics], [router] */
    char policy_spec[256];               /* "" = from deploy.policy; else policy_from_spec or "ppo:FILE" or "none" */
    char run_id[64];                     /* "" = "run-<unix time>" */
    /* The retrain command, split on blanks; placeholders {from} {data}
     * {registry} {target} {record} {job} are substituted per job.  "" = the
     * default "<self> retrain --from {from} --data {data} --registry
     * {registry} --record {record}" with <self> = driftpilot_path. */
    char retrain_command[CONTROL_STR_MAX];
    char driftpilot_path[DEPLOY_PATH_MAX]; /* "" = "driftpilot" (looked up in PATH) */
    char data_path[DEPLOY_PATH_MAX];     /* labelled window handed to {data} */
    char jobs_dir[DEPLOY_PATH_MAX];      /* job records and logs; "" = "<store dir>/jobs" */
    char admin_token[256];               /* bearer token for the services' and router's /admin/;
                                            init: router.admin_token_file or $DRIFTPILOT_ADMIN_TOKEN */
    char router_url[DEPLOY_STR_MAX];     /* "" = no router (switches are skipped and recorded);
                                            init: http://<router.listen> */
    char listen[64];                     /* own /metrics "host:port" (port 0: any); "" = none */
    double rate_window_s;                /* PromQL rate window; init: max(interval/scale, 4 s) */
    double stale_intervals;              /* metrics older than this many intervals are stale (2) */
    double http_timeout_s;               /* scrape, reload and route calls (metrics.scrape_timeout) */
    int rollback_min_labels;             /* fresh labels needed to judge a redeploy (20) */
    ControlCostMode cost_mode;
    SimProfile profile;                  /* state vector stored (PPO picks its own from its file) */
} ControlConfig;

/* Fills cc from a loaded DeployConfig (copied) with the defaults above. */
void control_config_init(ControlConfig *cc, const DeployConfig *deploy);

typedef struct Control Control;

/* Validates the config, builds the policy, opens the store and the registry,
 * starts the /metrics server when listen is set.  *out NULL on failure. */
DpStatus control_create(const ControlConfig *cc, Control **out, DpError *err);
/* Waits for a running job to end (it has a time limit), stops the server,
 * closes everything.  NULL-safe. */
void control_destroy(Control *c);

/* What one decision saw and did. */
typedef struct {
    double time_s;                       /* scenario time of the decision */
    SimObservation obs;                  /* state of the serving target */
    int action;                          /* the policy's action (0 when not consulted) */
    char action_name[96];                /* "nothing", "retrain+redeploy@aws" */
    int executed;                        /* 1: carried out (or started, for a retrain) */
    int stale;                           /* metrics were stale: policy not consulted */
    int rolled_back;                     /* a rollback happened at this step */
    char reason[512];                    /* why (policy, state), or why not */
    double latency_s;                    /* wall time of the decision (read + decide + start) */
} ControlStepInfo;

/* One decision at the current scenario time.  An error only for a broken
 * store or internal failure; every "could not do it" is an outcome in info. */
DpStatus control_step(Control *c, ControlStepInfo *info, DpError *err);

/* Reads the state once (scrapes or PromQL) without deciding, for tests;
 * obs->up[] says which targets answered. */
DpStatus control_observe(Control *c, SimObservation *obs, DpError *err);

/* Loops: a decision every interval until *stop becomes non-zero or
 * duration_s scenario seconds have passed (<= 0: no limit). */
DpStatus control_run(Control *c, volatile sig_atomic_t *stop, double duration_s, DpError *err);

/* 1 while a retrain job is running. */
int control_job_running(Control *c);
/* Waits (wall time) until no job runs; 1 when idle, 0 on timeout. */
int control_wait_idle(Control *c, double timeout_s);
/* Index of the serving target. */
int control_serving(Control *c);
/* The port of the own /metrics server (0 when none). */
int control_metrics_port(const Control *c);
/* Renders the own metrics (as /metrics serves them) into out. */
DpStatus control_metrics_render(Control *c, DpBuf *out);
/* The run id in use. */
const char *control_run_id(const Control *c);

// ---- Prometheus: queries, scrape config, history ----

/* The PromQL expression the controller uses for feature `feature` of target
 * (cpu_rate, memory_bytes, request_rate, latency_s, accuracy, bleu, f1,
 * queue, up) with a rate window of window_s.  Targets carry the label
 * dp_target="<name>" (see control_prometheus_config). */
DpStatus control_promql_expr(const char *feature, const char *target, double window_s, char *out,
                             size_t cap, DpError *err);

typedef struct {
    double scrape_interval_s;            /* 0: from the decision interval (min 1 s, max 15 s) */
    const char *controller;              /* "host:port" of `driftpilot control` /metrics, or NULL */
    const char *const *rule_files;       /* NULL-terminated, or NULL */
} ControlPromConfigOptions;

/* Writes a prometheus.yml for cfg: job driftpilot-serve (one static config
 * per target with label dp_target), driftpilot-router (router.listen) and
 * driftpilot-control (when opts->controller is set). */
DpStatus control_prometheus_config(const DeployConfig *cfg, const ControlPromConfigOptions *opts,
                                   DpBuf *out, DpError *err);

/* Builds the replay history of the study from a Prometheus server: range
 * queries over [start, end] every step for target, written as CSV with the
 * columns sim_replay_load reads: time, cpu, memory, request_rate,
 * latency_ms, accuracy, bleu, f1, redeploy_count.  memory_bytes is the
 * denominator of memory (<= 0: the host's MemTotal), cpus of cpu. *rows gets
 * the number of rows written. */
DpStatus control_history_csv(const char *prom_url, const char *target, double start, double end,
                             double step, double window_s, double memory_bytes, double cpus,
                             FILE *out, int *rows, DpError *err);

#endif
