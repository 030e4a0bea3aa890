/*
 * store: driftpilot's history in one SQLite file.
 *
 * The controller records what it saw and did: metric samples, state vectors,
 * decisions with their reasons, retrain jobs, deployments and rollbacks,
 * costs, free-form events, and experiments.  `driftpilot sim calibrate`, the
 * replay environment and the reports read it back; store_export_csv() writes
 * any table as CSV for people and spreadsheets.
 *
 * The file is in WAL mode (readers do not block the writer), with a busy
 * timeout of STORE_BUSY_TIMEOUT_MS so a second process waits rather than
 * failing, and synchronous=NORMAL: a crash of the process loses nothing
 * committed; a power cut may lose the last transactions but never corrupts
 * the file.  The schema version lives in PRAGMA user_version and the file is
 * marked with PRAGMA application_id; store_open() creates or migrates an
 * older file, and refuses a file from a newer driftpilot, a non-SQLite file
 * or another program's database with an error that says which.
 *
 * Times are unix seconds (double).  NaN values are stored as NULL and read
 * back as NaN.  Strings passed in are copied by SQLite; NULL strings are
 * stored as NULL and read back as NULL.
 *
 * Ownership: store_open() gives a Store the caller closes with store_close()
 * (NULL is fine).  Records handed to store_each_* callbacks, and every string
 * in them, are borrowed: valid only during the callback.
 *
 * Thread safety: a Store is one connection with its own mutex, so any thread
 * may call any function; calls are serialised.  A transaction
 * (store_begin .. store_commit) belongs to the connection, not to a thread:
 * threads that need their own transactions open their own Store on the same
 * file (SQLite and WAL handle several connections and processes).  A
 * store_each_* callback runs with the lock held and must not call into the
 * same Store (it would deadlock); it may use another Store.
 *
 *     Store *st;
 *     if (store_open("run.db", &st, &err) != DP_OK) return err.status;
 *     store_begin(st, &err);
 *     StoreDecision d = {.ts = dp_time_wall(), .run_id = "r1", .policy = "ppo",
 *                        .action = "retrain", .target = "aws", .reason = "bleu 0.61 < 0.7",
 *                        .executed = 1};
 *     store_add_decision(st, &d, &err);
 *     store_commit(st, &err);
 *     store_export_csv(st, "decisions", "r1", stdout, &err);
 *     store_close(st);
 */
#ifndef DRIFTPILOT_STORE_H
#define DRIFTPILOT_STORE_H

#include <stdint.h>
#include <stdio.h>

#include "core.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_APPLICATION_ID 0x44504c54 /* "DPLT" */
#define STORE_BUSY_TIMEOUT_MS 5000

typedef struct Store Store;

/* Opens (creating if absent) the store at path.  Fails with DP_ERR_IO when
 * the file cannot be opened, DP_ERR_PARSE for a file that is not an SQLite
 * database or is corrupted, DP_ERR_STATE for another program's database or a
 * schema newer than STORE_SCHEMA_VERSION ("written by a newer driftpilot").
 * On failure *out is NULL. */
DpStatus store_open(const char *path, Store **out, DpError *err);
/* Closes the store; an open transaction is rolled back.  NULL is fine. */
void store_close(Store *s);

/* Explicit transactions: many adds in one transaction are ~100x faster than
 * one transaction each (each add outside a transaction commits by itself).
 * Nesting is an error (DP_ERR_STATE). */
DpStatus store_begin(Store *s, DpError *err);
DpStatus store_commit(Store *s, DpError *err);
DpStatus store_rollback(Store *s, DpError *err);

// ---- records ----

typedef struct {
    double ts;
    const char *run_id;     /* may be NULL */
    const char *target;     /* the service scraped, e.g. "aws" */
    const char *name;       /* metric name, e.g. "llm_bleu" */
    const char *labels;     /* other labels as text, e.g. "route=\"/predict\"" (may be "") */
    double value;
} StoreMetricSample;

typedef struct {
    double ts;
    const char *run_id;
    const char *profile;    /* "paper" or "extended" */
    int n;                  /* entries in vector and names */
    const double *vector;
    const char *const *names;
} StoreState;

typedef struct {
    double ts;
    const char *run_id;
    const char *policy;     /* "ppo", "static", ... */
    const char *action;     /* "none", "retrain", ... */
    const char *target;     /* may be NULL for "none" */
    const char *reason;
    int executed;           /* 1 when carried out */
    const char *error;      /* why not, or NULL */
} StoreDecision;

typedef struct {
    int64_t id;             /* set by store_add_job */
    const char *run_id;
    const char *kind;       /* "retrain", "deploy", ... */
    const char *target;
    double started;
    double finished;        /* NaN while running */
    const char *status;     /* "running", "ok", "failed", "killed", ... */
    double duration_s;      /* NaN while running */
    double cost;
    const char *record_json; /* the job's own record, or NULL */
} StoreJob;

typedef struct {
    double ts;
    const char *run_id;
    const char *target;
    const char *version;
    const char *previous_version; /* NULL for the first deployment */
    const char *kind;             /* "deploy" or "rollback" (others refused) */
} StoreDeployment;

typedef struct {
    double ts;
    const char *run_id;
    const char *target;
    double amount;
    const char *kind;       /* "retrain", "serve", ... */
} StoreCost;

typedef struct {
    double ts;
    const char *run_id;
    const char *kind;
    const char *message;
} StoreEvent;

typedef struct {
    int64_t id;
    const char *name;
    const char *config_json;
    double started;
    double finished;        /* NaN while running */
} StoreExperiment;

// ---- writing ----

/* Each add is one INSERT through a prepared statement.  Failures (a full
 * disk, a locked file past the busy timeout, a bad value) return DP_ERR_IO or
 * DP_ERR_INVAL with SQLite's message. */
DpStatus store_add_metric_sample(Store *s, const StoreMetricSample *m, DpError *err);
DpStatus store_add_state(Store *s, const StoreState *st, DpError *err);
DpStatus store_add_decision(Store *s, const StoreDecision *d, DpError *err);
/* Inserts a job and sets *id (may be NULL) to its id (also j->id is ignored). */
DpStatus store_add_job(Store *s, const StoreJob *j, int64_t *id, DpError *err);
/* Records the end of job id.  DP_ERR_INVAL when there is no such job. */
DpStatus store_finish_job(Store *s, int64_t id, double finished, const char *status,
                          double duration_s, double cost, const char *record_json, DpError *err);
DpStatus store_add_deployment(Store *s, const StoreDeployment *d, DpError *err);
DpStatus store_add_cost(Store *s, const StoreCost *c, DpError *err);
DpStatus store_add_event(Store *s, const StoreEvent *e, DpError *err);
DpStatus store_add_experiment(Store *s, const StoreExperiment *x, int64_t *id, DpError *err);
DpStatus store_finish_experiment(Store *s, int64_t id, double finished, DpError *err);

// ---- reading ----

/* Callbacks return 0 to go on, anything else to stop early (the each
 * function then returns DP_OK).  run_id NULL means every run.  Rows come in
 * time order (ties in insertion order). */
typedef int (*StoreMetricSampleFn)(const StoreMetricSample *m, void *user);
typedef int (*StoreStateFn)(const StoreState *st, void *user);
typedef int (*StoreDecisionFn)(const StoreDecision *d, void *user);
typedef int (*StoreJobFn)(const StoreJob *j, void *user);
typedef int (*StoreDeploymentFn)(const StoreDeployment *d, void *user);
typedef int (*StoreCostFn)(const StoreCost *c, void *user);
typedef int (*StoreEventFn)(const StoreEvent *e, void *user);
typedef int (*StoreExperimentFn)(const StoreExperiment *x, void *user);

/* Samples with t0 <= ts < t1; target and name NULL match all. */
DpStatus store_each_metric_sample(Store *s, const char *target, const char *name, double t0,
                                  double t1, StoreMetricSampleFn fn, void *user, DpError *err);
DpStatus store_each_state(Store *s, const char *run_id, StoreStateFn fn, void *user, DpError *err);
DpStatus store_each_decision(Store *s, const char *run_id, StoreDecisionFn fn, void *user,
                             DpError *err);
/* Jobs in order of start time. */
DpStatus store_each_job(Store *s, const char *run_id, StoreJobFn fn, void *user, DpError *err);
DpStatus store_each_deployment(Store *s, const char *run_id, StoreDeploymentFn fn, void *user,
                               DpError *err);
DpStatus store_each_cost(Store *s, const char *run_id, StoreCostFn fn, void *user, DpError *err);
DpStatus store_each_event(Store *s, const char *run_id, StoreEventFn fn, void *user, DpError *err);
DpStatus store_each_experiment(Store *s, StoreExperimentFn fn, void *user, DpError *err);

/* Total cost and number of cost rows per target (sorted by target name),
 * for run_id or all runs. */
typedef int (*StoreCostTotalFn)(const char *target, double total, int64_t n, void *user);
DpStatus store_cost_by_target(Store *s, const char *run_id, StoreCostTotalFn fn, void *user,
                              DpError *err);

/* Rows in table (one of the names listed below), for run_id or all runs. */
DpStatus store_count(Store *s, const char *table, const char *run_id, int64_t *n, DpError *err);

/* Writes table as CSV (RFC 4180 quoting, "\n" line ends, a header row,
 * NULL as an empty field, numbers in the shortest exact form), rows in time
 * order.  table: metric_samples, states, decisions, jobs, deployments,
 * costs, events, experiments.  run_id NULL exports every run; experiments
 * have no run_id, so passing one for them is DP_ERR_INVAL. */
DpStatus store_export_csv(Store *s, const char *table, const char *run_id, FILE *out,
                          DpError *err);

/* The journal mode SQLite reports ("wal"), into out[16]; for tests. */
DpStatus store_journal_mode(Store *s, char out[16], DpError *err);

#endif
