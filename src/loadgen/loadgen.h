/*
 * loadgen: an open-loop load generator for the inference service, with
 * scenario schedules and labelled traffic.
 *
 * Arrivals are open-loop: their intended send times come from a rate
 * schedule (steady, spike, ramp, diurnal, or a CSV of (time, rate) points),
 * spaced evenly or as a Poisson process, and never wait for earlier
 * responses.  Latency is measured from the INTENDED send time, so a server
 * that stalls cannot hide the queue it builds (no coordinated omission), and
 * neither can the client: a request that waits for a free worker carries the
 * wait in its latency.
 *
 * Each request asks a question drawn from the drifting QA world at the
 * scenario time of its intended send time (a DpClock at --scale), so drift
 * reaches the service through its traffic.  A share of the answered requests
 * gets its reference answer sent to POST /feedback after a delay of scenario
 * time (labels in production are partial and late).  Requests go to several
 * targets by weight (smooth weighted round-robin, or weighted random).  Only
 * loopback targets are accepted unless allow_remote is set.
 *
 * Threads: the calling thread dispatches (sleeps until each intended time,
 * draws the question, target and feedback coin from one seeded DpRng, so the
 * request stream is reproducible); a pool of worker threads, grown on demand
 * up to max_workers, sends the blocking HTTP requests; feedback threads send
 * the delayed labels.  The pool exhausted, a request waits in a bounded
 * backlog (its latency still counts from its intended time); a full backlog,
 * or a wait longer than timeout_s, records it as "client_overload" unsent.
 *
 * Ownership: LoadgenConfig borrows everything it points to (csv_path, the
 * stop flag, the schedule's points) for the duration of loadgen_run.  A
 * LoadgenSchedule filled by loadgen_schedule_parse or _load_csv owns its
 * points: free it with loadgen_schedule_free.  LoadgenSummary is a plain
 * struct with fixed arrays: nothing to free.
 *
 * Thread safety: loadgen_run may run on any thread and several runs may run
 * at once (no global state).  The stop flag may be set from a signal handler
 * or another thread.
 *
 *     LoadgenConfig cfg;
 *     loadgen_config_default(&cfg);
 *     loadgen_target_parse("http://127.0.0.1:8001=1", &cfg.targets[cfg.n_targets++], &err);
 *     loadgen_schedule_parse("spike:50:200:60s:30s", &cfg.schedule, &err);
 *     cfg.duration_s = 120;
 *     cfg.csv_path = "requests.csv";
 *     LoadgenSummary sum;
 *     if (loadgen_run(&cfg, &sum, &err) == DP_OK) loadgen_summary_print(&sum, stdout);
 *     loadgen_schedule_free(&cfg.schedule);
 */
#ifndef DRIFTPILOT_LOADGEN_H
#define DRIFTPILOT_LOADGEN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"
#include "qa.h"

// ---- rate schedules ----

typedef enum {
    LOADGEN_SCHED_STEADY = 0, /* rate */
    LOADGEN_SCHED_SPIKE,      /* rate, then rate2 during [at_s, at_s + len_s), then rate */
    LOADGEN_SCHED_RAMP,       /* rate until at_s, linear to rate2 over len_s, then rate2 */
    LOADGEN_SCHED_DIURNAL,    /* rate - rate2 * cos(2 pi t / len_s): starts at the trough */
    LOADGEN_SCHED_POINTS,     /* (t, rate) points: step (hold) or linear between them */
} LoadgenScheduleKind;

typedef struct {
    LoadgenScheduleKind kind;
    double rate;      /* steady: rate; spike: base; ramp: from; diurnal: mean (req/s) */
    double rate2;     /* spike: peak; ramp: to; diurnal: amplitude (req/s) */
    double at_s;      /* spike: start of the peak; ramp: start of the ramp */
    double len_s;     /* spike: length of the peak; ramp: its length; diurnal: period */
    int linear;       /* points: interpolate linearly (0: hold each rate until the next) */
    size_t n_points;  /* points: at least 1, times strictly increasing, first may be > 0 */
    double *pt_t;     /* owned when filled by the parsers */
    double *pt_rate;
} LoadgenSchedule;

/* Parses a schedule spec (rates in requests per second, times as durations
 * "90s", "2m"):
 *     R | steady:R
 *     spike:BASE:PEAK:AT:LEN        e.g. spike:50:200:60s:30s
 *     ramp:FROM:TO:LEN[:AT]         from FROM to TO over LEN, starting at AT (0)
 *     diurnal:MEAN:AMPLITUDE:PERIOD rate MEAN - AMPLITUDE cos(2 pi t / PERIOD)
 *     file:PATH[:step|:linear]      a CSV of time_s,rate (see _load_csv)
 * out is overwritten.  DP_ERR_PARSE naming the text, or the file and line. */
DpStatus loadgen_schedule_parse(const char *spec, LoadgenSchedule *out, DpError *err);

/* Reads a CSV of "time_s,rate" lines: an optional header line (a first line
 * whose first field is not a number), '#' comments and blank lines allowed;
 * times >= 0 and strictly increasing, rates >= 0 and finite.  Before the
 * first point the rate is the first point's rate.  Errors name the file and
 * line ("rates.csv line 4: time 3 is not after 5").  out is overwritten. */
DpStatus loadgen_schedule_load_csv(const char *path, int linear, LoadgenSchedule *out,
                                   DpError *err);
/* The same from text in memory; name is used in messages. */
DpStatus loadgen_schedule_parse_csv_text(const char *text, const char *name, int linear,
                                         LoadgenSchedule *out, DpError *err);

/* Requests per second at schedule time t (seconds; never negative). */
double loadgen_schedule_rate(const LoadgenSchedule *s, double t);
/* The largest rate the schedule ever asks for. */
double loadgen_schedule_max_rate(const LoadgenSchedule *s);
/* Writes the schedule back as a spec (points: "file(N points, step)"). */
void loadgen_schedule_format(const LoadgenSchedule *s, char *buf, size_t cap);
/* Frees owned points and zeroes s.  NULL-safe. */
void loadgen_schedule_free(LoadgenSchedule *s);

// ---- arrivals ----

/* An arrival-time generator over a schedule.  Poisson arrivals are a
 * non-homogeneous Poisson process drawn by thinning (exact for any
 * schedule); evenly spaced arrivals come each time the integral of the rate
 * grows by 1, the first at the first moment the rate is positive (t = 0 for
 * a steady rate: then arrival k is at k / rate). */
typedef struct {
    const LoadgenSchedule *sched; /* borrowed */
    int poisson;
    DpRng rng;
    double t;          /* time of the last arrival returned (or -1 before the first) */
    double rmax;
    double sched_t0;   /* schedule time = sched_t0 + t * sched_scale */
    double sched_scale;
    double lam, k;     /* evenly spaced: integral of the rate so far, arrivals so far - 1 */
} LoadgenArrivals;

void loadgen_arrivals_init(LoadgenArrivals *a, const LoadgenSchedule *s, int poisson,
                           uint64_t seed);
/* The next arrival time (seconds from the start, increasing), or INFINITY
 * when there is none before horizon. */
double loadgen_arrivals_next(LoadgenArrivals *a, double horizon);

// ---- targets ----

#define LOADGEN_MAX_TARGETS 16
#define LOADGEN_URL_MAX 256

typedef struct {
    char url[LOADGEN_URL_MAX]; /* base URL, "http://127.0.0.1:8001" (no trailing '/') */
    double weight;             /* > 0 */
} LoadgenTarget;

/* Parses "URL[=WEIGHT]" (weight default 1, > 0).  The URL must be http://
 * with a host and no path beyond "/".  DP_ERR_PARSE naming the problem. */
DpStatus loadgen_target_parse(const char *spec, LoadgenTarget *out, DpError *err);

/* DP_OK when url's host is loopback: localhost, 127.0.0.0/8, ::1 (or
 * ::ffff:127.x.y.z), or any host when allow_remote.  Otherwise DP_ERR_INVAL
 * with a message that names the host and says how to allow it. */
DpStatus loadgen_url_check(const char *url, int allow_remote, DpError *err);

// ---- configuration and run ----

typedef enum {
    LOADGEN_BALANCE_ROUND_ROBIN = 0, /* smooth weighted round-robin: exact shares */
    LOADGEN_BALANCE_RANDOM = 1,      /* weighted random draw per request */
} LoadgenBalance;

typedef struct {
    LoadgenTarget targets[LOADGEN_MAX_TARGETS];
    int n_targets;
    LoadgenBalance balance;

    LoadgenSchedule schedule;  /* default steady 10 req/s; points borrowed by the run */
    int poisson;               /* 1: Poisson arrivals (default); 0: evenly spaced */
    int schedule_on_scenario_clock; /* 0: schedule times are run seconds (wall, default);
                                       1: they are scenario times (the axis of the
                                       world's drift schedule, from scenario_start_s) */
    double duration_s;         /* wall seconds of arrivals (default 10; > 0) */
    uint64_t max_requests;     /* stop after this many arrivals (0: no limit) */
    double timeout_s;          /* per-request deadline from the send (default 5) */

    int min_workers;           /* threads started at once (default 4) */
    int max_workers;           /* the pool's cap (default 256) */
    int max_backlog;           /* arrivals that may wait for a free worker (default 1024) */

    QaWorldConfig world;       /* the drifting world (qa_world_config_default) */
    double scale;              /* scenario seconds per wall second (default 1) */
    double scenario_start_s;   /* scenario time at the start (default 0) */
    uint64_t seed;             /* arrivals, questions, targets, feedback coins (default 1) */
    int max_new_tokens;        /* sent in /predict when > 0 (default 0: the server's) */

    double feedback_fraction;  /* share of answered requests labelled (default 0) */
    double feedback_delay_s;   /* scenario seconds from the answer to the label (default 0) */
    int feedback_workers;      /* threads sending labels (default 2) */
    int drain_feedback;        /* 1: after the last answer, wait for pending labels to come
                                  due and send them; 0: drop them (counted) */

    const char *csv_path;      /* one row per request; NULL: no CSV */
    int allow_remote;          /* 1: allow non-loopback targets */
    volatile sig_atomic_t *stop; /* may be NULL; nonzero stops the run cleanly (set it
                                    from a signal handler, or from another thread
                                    with __atomic_store_n) */
    int progress;              /* 1: progress line on stderr */
} LoadgenConfig;

void loadgen_config_default(LoadgenConfig *c);

typedef enum {
    LOADGEN_OK = 0,
    LOADGEN_ERR_CONNECT,         /* resolve or connect failed (refused, unreachable) */
    LOADGEN_ERR_TIMEOUT,         /* no complete response within timeout_s */
    LOADGEN_ERR_HTTP_4XX,
    LOADGEN_ERR_HTTP_5XX,
    LOADGEN_ERR_BAD_RESPONSE,    /* not HTTP, truncated, other status, or JSON without "answer" */
    LOADGEN_ERR_IO,              /* any other socket error (e.g. reset by peer) */
    LOADGEN_ERR_CLIENT_OVERLOAD, /* never sent: no worker free in time (see above) */
} LoadgenErrorKind;
#define LOADGEN_N_KINDS 8

/* "ok", "connect", "timeout", "http_4xx", "http_5xx", "bad_response", "io",
 * "client_overload". */
const char *loadgen_error_kind_name(LoadgenErrorKind k);

/* Latency statistics in milliseconds (0 when n == 0). */
typedef struct {
    uint64_t n;
    double mean, p50, p95, p99, max;
} LoadgenLatency;

typedef struct {
    char url[LOADGEN_URL_MAX];
    double weight;
    uint64_t requests;                  /* arrivals sent to this target (incl. overload) */
    uint64_t by_kind[LOADGEN_N_KINDS];  /* outcomes */
    LoadgenLatency latency;             /* of the ok requests */
    double achieved_rate;               /* ok responses per second of the window */
} LoadgenTargetSummary;

typedef struct {
    double window_s;          /* arrival window: duration, or until the stop / max-requests */
    double wall_s;            /* whole run, including draining */
    double start_mono;        /* dp_time_mono() at t = 0 (CSV times are relative to it) */
    double start_unix;        /* dp_time_wall() at t = 0 */
    double scenario_start_s, scenario_end_s; /* scenario time at t = 0 and at window end */
    uint64_t arrivals;        /* requests scheduled in the window */
    uint64_t completed;       /* sent and finished (any outcome but client_overload) */
    uint64_t ok;
    uint64_t errors;          /* every outcome but ok */
    uint64_t cancelled;       /* queued but unsent when the stop flag was raised */
    uint64_t by_kind[LOADGEN_N_KINDS];
    double intended_rate;     /* arrivals / window_s */
    double achieved_rate;     /* ok / window_s */
    LoadgenLatency latency;   /* ok requests, from the intended send time */
    LoadgenLatency service;   /* ok requests, from the actual send (for comparison) */
    double send_lag_p99_ms, send_lag_max_ms; /* actual send - intended, sent requests */
    int workers_peak;         /* threads the pool grew to */
    uint64_t delayed;         /* requests that waited in the backlog */
    uint64_t by_question_kind[QA_N_KINDS];
    double exact_match;       /* mean over ok requests */
    uint64_t feedback_scheduled, feedback_sent, feedback_ok, feedback_failed,
        feedback_dropped;
    double cpu_s;             /* CPU seconds of the load generator's own threads */
    double cpu_percent;       /* cpu_s / wall_s * 100 (percent of one core) */
    int stopped;              /* 1 when the stop flag ended the run */
    int n_targets;
    LoadgenTargetSummary targets[LOADGEN_MAX_TARGETS];
} LoadgenSummary;

/* Runs the load: validates the config (targets, loopback rule, schedule,
 * bounds: DP_ERR_INVAL naming the field, before anything is sent), builds
 * the world, opens the CSV (DP_ERR_IO), sends until duration_s or
 * max_requests or the stop flag, waits for requests in flight (at most
 * timeout_s), then feedback, writes the summary.  Request failures are
 * outcomes, not errors of the run.  The CSV is complete on return even when
 * stopped.  CSV columns:
 *   seq,intended_s,sent_s,scenario_s,target,latency_ms,service_ms,status,
 *   error,model_version,kind,exact_match,feedback
 * (times in seconds from the start; latency from intended_s; empty fields
 * where there is no value; error "" for ok). */
DpStatus loadgen_run(const LoadgenConfig *cfg, LoadgenSummary *out, DpError *err);

/* Human-readable summary. */
void loadgen_summary_print(const LoadgenSummary *s, FILE *f);
/* The summary as one JSON object (appended to out).  DP_ERR_NOMEM. */
DpStatus loadgen_summary_json(const LoadgenSummary *s, DpBuf *out);

#endif
