/* control internal header: the Control struct shared by control.c (the loop,
 * execution, rollback, own metrics) and observe.c (state reading). */
#ifndef DRIFTPILOT_CONTROL_IMPL_H
#define DRIFTPILOT_CONTROL_IMPL_H

#include <pthread.h>

#include "control.h"
#include "metrics.h"
#include "policy.h"
#include "store.h"
#include "train.h"

/* What the controller knows about one target from its last reads. */
typedef struct {
    int up;                      /* the last read succeeded */
    double last_ok_wall;         /* wall time of the last good read (0: never) */
    char last_error[256];
    /* raw values of the last good read */
    double cpu_seconds, rss_bytes, req_count, lat_sum, lat_count;
    double accuracy, bleu, f1, queue;
    double fb_total, fb_window;  /* llm_feedback_total / _window_size; NaN when not exposed */
    int has_prev;                /* a previous direct scrape exists (rates) */
    double prev_wall;
    /* derived, in SimObservation units */
    double cpu, memory, request_rate, latency_ms;
} CtlTarget;

typedef struct {
    int active;
    int target;
    char version[REGISTRY_ID_MAX];
    char previous[REGISTRY_ID_MAX];
    double prev_quality;         /* live quality of the previous version before the deploy */
    double base_total;           /* target's llm_feedback_total at the deploy (NaN: unknown) */
    double base_window;          /* its feedback window size then */
    double base_quality;         /* and the window's quality then */
    double deployed_s;           /* scenario time of the deploy */
    double until_s;
} CtlWatch;

struct Control {
    ControlConfig cc;
    SimConfig sim;               /* targets, prices, interval, reward for the policy */
    Policy *policy;              /* NULL for "none" */
    char policy_kind[32];        /* static, ppo, threshold, drift, none ... (trigger label) */
    DpClock clock;
    Store *store;
    DeployExecutor *exec[DEPLOY_MAX_TARGETS];
    double memtotal_bytes;
    CtlTarget t[DEPLOY_MAX_TARGETS];
    int n;

    pthread_mutex_t mu;          /* guards everything below and the watch */
    int serving;
    int n_redeploys;
    double last_retrain_s;       /* scenario time of the last retrain start (-1 none) */
    double last_quality;         /* quality of the serving target at the last step */
    CtlWatch watch;
    struct { double fb_total, fb_window, quality; } snap[DEPLOY_MAX_TARGETS]; /* per target, last step */
    int watch_prev_serving;      /* where traffic was before the watched deploy */
    int model_epoch;             /* bumped when the served model changes (deploy, rollback) */
    int job_running;
    int job_thread_live;         /* a thread to join */
    pthread_t job_thread;
    long job_seq;

    /* the served model's recent accuracy readings (state feature
     * accuracy_mean); only the control thread touches these */
    SimAccWindow acc;
    int acc_epoch;
    double acc_read_wall;        /* last_ok_wall of the reading pushed last */

    /* own metrics */
    MetricsRegistry *reg;
    MetricFamily *f_decisions, *f_skipped, *f_retrain, *f_cost, *f_fail, *f_rollback,
        *f_serving, *f_job_dur;
    Metric *m_rl_redeploy, *m_static_retrain, *m_redeploys, *m_latency, *m_stale;
    void *mhd;                   /* struct MHD_Daemon * */
    int port;
};

/* observe.c */
double control_quality_(const Control *c, const SimObservation *o);
DpStatus control_read_targets_(Control *c, DpError *err);
void control_fill_obs_(Control *c, double now_s, SimObservation *obs);
/* Adds the serving target's accuracy reading to the served model's window
 * when it is a new read (once per good read; the window restarts when the
 * served model changes) and sets obs->accuracy_mean. */
void control_note_accuracy_(Control *c, SimObservation *obs);

#endif
