/*
 * The load generator's engine: one dispatcher (the calling thread), a pool of
 * worker threads that send /predict, and feedback threads that send the
 * delayed labels.
 *
 * Invariants that keep the numbers honest:
 *   - every arrival gets exactly one outcome (ok, an error kind, or
 *     "cancelled" when the stop flag catches it unsent) and exactly one CSV
 *     row, except cancelled ones, which are only counted;
 *   - latency is done - intended, where intended comes from the schedule and
 *     never from when the dispatcher or a worker got round to it;
 *   - everything random (arrival gaps, questions, targets, feedback coins) is
 *     drawn by the dispatcher from seeded streams, in arrival order, so the
 *     request stream does not depend on thread timing.
 *
 * One mutex guards the job queue, the results and the feedback heap; at a few
 * hundred requests per second it is held for microseconds per request.
 */
#include "loadgen.h"
#include "metrics.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define WORKER_STACK_BYTES (1u << 20)

typedef struct Job {
    struct Job *next;
    uint64_t seq;
    double intended;   /* monotonic seconds */
    double scenario_t; /* scenario time of the intended send */
    int target;
    int label;         /* 1: send the reference to /feedback when answered */
    int delayed;       /* waited in the backlog for a free worker */
    QaWorldSample q;
} Job;

typedef struct {
    double due; /* monotonic seconds */
    int target;
    char *body; /* the /feedback JSON */
} FbItem;

typedef struct {
    const LoadgenConfig *cfg;
    const QaWorld *world;
    double t0;
    char predict_url[LOADGEN_MAX_TARGETS][LOADGEN_URL_MAX + 16];
    char feedback_url[LOADGEN_MAX_TARGETS][LOADGEN_URL_MAX + 16];

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers: a job or the end */
    pthread_cond_t fb_cv;   /* feedback threads: an item or the end (monotonic clock) */
    Job *qhead, *qtail;
    int qlen;
    int n_workers, n_busy, workers_peak;
    pthread_t *workers;
    int dispatch_done, workers_done;

    FILE *csv;
    int csv_failed;

    /* results of ok requests */
    double *lat, *svc;
    int *lat_target;
    size_t n_ok, cap_ok;
    double *lag; /* send lag of every sent request */
    size_t n_lag, cap_lag;
    uint64_t by_kind[LOADGEN_N_KINDS];
    uint64_t tgt_requests[LOADGEN_MAX_TARGETS];
    uint64_t tgt_kind[LOADGEN_MAX_TARGETS][LOADGEN_N_KINDS];
    uint64_t by_qkind[QA_N_KINDS];
    double em_sum;
    uint64_t delayed, cancelled;

    FbItem *heap;
    size_t n_heap, cap_heap;
    uint64_t fb_scheduled, fb_sent, fb_ok, fb_failed;
    double cpu_s;
} Run;

static const char *const kind_names[LOADGEN_N_KINDS] = {
    "ok", "connect", "timeout", "http_4xx", "http_5xx", "bad_response", "io", "client_overload"};

const char *loadgen_error_kind_name(LoadgenErrorKind k) {
    return (unsigned)k < LOADGEN_N_KINDS ? kind_names[k] : "unknown";
}

void loadgen_config_default(LoadgenConfig *c) {
    memset(c, 0, sizeof *c);
    c->balance = LOADGEN_BALANCE_ROUND_ROBIN;
    c->schedule.kind = LOADGEN_SCHED_STEADY;
    c->schedule.rate = 10;
    c->poisson = 1;
    c->duration_s = 10;
    c->timeout_s = 5;
    c->min_workers = 4;
    c->max_workers = 256;
    c->max_backlog = 1024;
    qa_world_config_default(&c->world);
    c->scale = 1;
    c->seed = 1;
    c->feedback_workers = 2;
}

/* An atomic load: the flag may be set by a signal handler or, with an
 * atomic store, by another thread. */
static int stop_requested(const Run *r) {
    return r->cfg->stop && __atomic_load_n(r->cfg->stop, __ATOMIC_RELAXED);
}

static double thread_cpu_s(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static int push_double(double **a, size_t *n, size_t *cap, double v) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 1024;
        double *p = dp_realloc_array(*a, nc, sizeof *p);
        if (!p) return 0;
        *a = p;
        *cap = nc;
    }
    (*a)[(*n)++] = v;
    return 1;
}

// ---- the feedback heap (min-heap on due time) ----

static int heap_push(Run *r, FbItem it) {
    if (r->n_heap == r->cap_heap) {
        size_t nc = r->cap_heap ? r->cap_heap * 2 : 256;
        FbItem *p = dp_realloc_array(r->heap, nc, sizeof *p);
        if (!p) return 0;
        r->heap = p;
        r->cap_heap = nc;
    }
    size_t i = r->n_heap++;
    while (i > 0 && r->heap[(i - 1) / 2].due > it.due) {
        r->heap[i] = r->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    r->heap[i] = it;
    return 1;
}

static FbItem heap_pop(Run *r) {
    FbItem top = r->heap[0], last = r->heap[--r->n_heap];
    size_t i = 0, n = r->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && r->heap[c + 1].due < r->heap[c].due) c++;
        if (r->heap[c].due >= last.due) break;
        r->heap[i] = r->heap[c];
        i = c;
    }
    if (n > 0) r->heap[i] = last;
    return top;
}

// ---- one request ----

/* Maps the HTTP client's failure to a kind.  The client reports failures as
 * text only, so this reads its wording (metrics/http.c); the tests pin each
 * kind down against a real socket, so a change of wording fails them. */
static LoadgenErrorKind classify_failure(const char *msg) {
    if (strstr(msg, "timed out")) return LOADGEN_ERR_TIMEOUT;
    if (strstr(msg, "connect to") || strstr(msg, "resolve") || strstr(msg, "no address"))
        return LOADGEN_ERR_CONNECT;
    if (strstr(msg, "not an HTTP response") || strstr(msg, "status line") ||
        strstr(msg, "not terminated") || strstr(msg, "truncated") ||
        strstr(msg, "Content-Length") || strstr(msg, "chunk") || strstr(msg, "response over"))
        return LOADGEN_ERR_BAD_RESPONSE;
    return LOADGEN_ERR_IO;
}

/* CSV-safe copy: commas, quotes and control bytes become '_'. */
static void csv_clean(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == ',' || c == '"' || c == 0x7f) ? '_' : (char)c;
    }
    dst[i] = '\0';
}

typedef struct {
    LoadgenErrorKind kind;
    int status;            /* HTTP status, 0 without a response */
    double sent, done;     /* monotonic; sent < 0 when never sent */
    double em;             /* NAN without an answer */
    char model_version[64];
    char *feedback_body;   /* malloc'd, or NULL */
} Outcome;

/* Records an outcome: counters, latency arrays, the CSV row, the feedback
 * item.  Called with r->mu held. */
static void record(Run *r, const Job *j, Outcome *o) {
    const LoadgenConfig *c = r->cfg;
    r->by_kind[o->kind]++;
    r->tgt_requests[j->target]++;
    r->tgt_kind[j->target][o->kind]++;
    if ((unsigned)j->q.kind < QA_N_KINDS) r->by_qkind[j->q.kind]++;
    if (j->delayed) r->delayed++;
    if (o->sent >= 0) push_double(&r->lag, &r->n_lag, &r->cap_lag, (o->sent - j->intended) * 1e3);
    if (o->kind == LOADGEN_OK) {
        if (r->n_ok == r->cap_ok) {
            size_t nc = r->cap_ok ? r->cap_ok * 2 : 1024;
            double *a = dp_realloc_array(r->lat, nc, sizeof *a);
            if (a) r->lat = a;
            double *b = dp_realloc_array(r->svc, nc, sizeof *b);
            if (b) r->svc = b;
            int *t = dp_realloc_array(r->lat_target, nc, sizeof *t);
            if (t) r->lat_target = t;
            if (a && b && t) r->cap_ok = nc;
        }
        if (r->n_ok < r->cap_ok) {
            r->lat[r->n_ok] = (o->done - j->intended) * 1e3;
            r->svc[r->n_ok] = (o->done - o->sent) * 1e3;
            r->lat_target[r->n_ok] = j->target;
            r->n_ok++;
        }
        if (!isnan(o->em)) r->em_sum += o->em;
    }
    int labelled = 0;
    if (o->feedback_body) {
        FbItem it = {o->done + c->feedback_delay_s / c->scale, j->target, o->feedback_body};
        if (heap_push(r, it)) {
            labelled = 1;
            r->fb_scheduled++;
            o->feedback_body = NULL;
            pthread_cond_signal(&r->fb_cv);
        }
    }
    if (r->csv) {
        char ver[64], tmp[4][32];
        csv_clean(ver, sizeof ver, o->model_version);
        tmp[0][0] = tmp[1][0] = tmp[2][0] = tmp[3][0] = '\0';
        if (o->sent >= 0) {
            snprintf(tmp[0], sizeof tmp[0], "%.6f", o->sent - r->t0);
            snprintf(tmp[1], sizeof tmp[1], "%.3f", (o->done - j->intended) * 1e3);
            snprintf(tmp[2], sizeof tmp[2], "%.3f", (o->done - o->sent) * 1e3);
        }
        if (!isnan(o->em)) snprintf(tmp[3], sizeof tmp[3], "%g", o->em);
        char status[8] = "";
        if (o->status) snprintf(status, sizeof status, "%d", o->status);
        if (fprintf(r->csv, "%llu,%.6f,%s,%.3f,%s,%s,%s,%s,%s,%s,%s,%s,%d\n",
                    (unsigned long long)j->seq, j->intended - r->t0, tmp[0], j->scenario_t,
                    c->targets[j->target].url, tmp[1], tmp[2], status,
                    o->kind == LOADGEN_OK ? "" : kind_names[o->kind], ver,
                    qa_kind_name(j->q.kind), tmp[3], labelled) < 0)
            r->csv_failed = 1;
    }
}

/* Parses a 2xx body; fills answer, version and the id (as JSON text). */
static int parse_answer(const char *body, size_t len, char *answer, size_t acap, char *ver,
                        size_t vcap, char **id_json) {
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    int ok = 0;
    *id_json = NULL;
    if (!json_is_object(doc)) goto out;
    json_t *a = json_object_get(doc, "answer");
    if (!json_is_string(a)) goto out;
    snprintf(answer, acap, "%s", json_string_value(a));
    json_t *v = json_object_get(doc, "model_version");
    if (json_is_string(v)) snprintf(ver, vcap, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(ver, vcap, "%lld", (long long)json_integer_value(v));
    json_t *id = json_object_get(doc, "id");
    if (id && !json_is_null(id)) *id_json = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
    ok = 1;
out:
    json_decref(doc);
    return ok;
}

static char *feedback_json(const char *id_json, const char *reference) {
    json_error_t jerr;
    json_t *id = json_loads(id_json, JSON_DECODE_ANY, &jerr);
    json_t *o = json_object();
    char *s = NULL;
    if (id && o && json_object_set_new(o, "id", id) == 0) {
        id = NULL;
        if (json_object_set_new(o, "reference", json_string(reference)) == 0)
            s = json_dumps(o, JSON_COMPACT);
    }
    json_decref(id);
    json_decref(o);
    return s;
}

static void do_request(Run *r, Job *j) {
    const LoadgenConfig *c = r->cfg;
    Outcome o;
    memset(&o, 0, sizeof o);
    o.em = NAN;
    o.sent = dp_time_mono();
    if (o.sent - j->intended > c->timeout_s) {
        /* It waited for a worker longer than the server would be given: it
         * can only time out, so it is counted as the client's failure. */
        o.kind = LOADGEN_ERR_CLIENT_OVERLOAD;
        o.sent = -1;
        o.done = dp_time_mono();
        goto record;
    }
    json_t *req = json_object();
    if (req) {
        json_object_set_new(req, "question", json_string(j->q.question));
        if (j->q.context[0]) json_object_set_new(req, "context", json_string(j->q.context));
        if (c->max_new_tokens > 0)
            json_object_set_new(req, "max_new_tokens", json_integer(c->max_new_tokens));
    }
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    char *resp = NULL;
    size_t resp_len = 0;
    int status = 0;
    DpError e;
    DpStatus st;
    if (!body) st = dp_fail(&e, DP_ERR_NOMEM, "out of memory");
    else st = metrics_http_post_json(r->predict_url[j->target], body, c->timeout_s, &resp,
                                     &resp_len, &status, &e);
    o.done = dp_time_mono();
    free(body);
    if (st != DP_OK) {
        o.kind = st == DP_ERR_NOMEM ? LOADGEN_ERR_IO : classify_failure(e.msg);
    } else {
        o.status = status;
        if (status >= 200 && status < 300) {
            char answer[512] = "", *id_json = NULL;
            if (parse_answer(resp, resp_len, answer, sizeof answer, o.model_version,
                             sizeof o.model_version, &id_json)) {
                o.kind = LOADGEN_OK;
                const char *refs[1] = {j->q.answer};
                o.em = qa_exact_match(answer, refs, 1);
                if (j->label && id_json) o.feedback_body = feedback_json(id_json, j->q.answer);
            } else {
                o.kind = LOADGEN_ERR_BAD_RESPONSE;
            }
            free(id_json);
        } else if (status >= 400 && status < 500) {
            o.kind = LOADGEN_ERR_HTTP_4XX;
        } else if (status >= 500 && status < 600) {
            o.kind = LOADGEN_ERR_HTTP_5XX;
        } else {
            o.kind = LOADGEN_ERR_BAD_RESPONSE;
        }
    }
    free(resp);
record:
    pthread_mutex_lock(&r->mu);
    record(r, j, &o);
    pthread_mutex_unlock(&r->mu);
    free(o.feedback_body);
}

// ---- threads ----

static void *worker_main(void *arg) {
    Run *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->qhead && !r->dispatch_done) pthread_cond_wait(&r->work_cv, &r->mu);
        Job *j = r->qhead;
        if (!j) break;
        r->qhead = j->next;
        if (!r->qhead) r->qtail = NULL;
        r->qlen--;
        if (stop_requested(r)) {
            r->cancelled++;
            free(j);
            continue;
        }
        r->n_busy++;
        pthread_mutex_unlock(&r->mu);
        do_request(r, j);
        free(j);
        pthread_mutex_lock(&r->mu);
        r->n_busy--;
    }
    r->cpu_s += thread_cpu_s();
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void *feedback_main(void *arg) {
    Run *r = arg;
    const LoadgenConfig *c = r->cfg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (stop_requested(r)) break;
        double now = dp_time_mono();
        if (r->n_heap > 0 && r->heap[0].due <= now) {
            FbItem it = heap_pop(r);
            pthread_mutex_unlock(&r->mu);
            char *resp = NULL;
            int status = 0;
            DpError e;
            DpStatus st = metrics_http_post_json(r->feedback_url[it.target], it.body,
                                                 c->timeout_s, &resp, NULL, &status, &e);
            free(resp);
            free(it.body);
            pthread_mutex_lock(&r->mu);
            r->fb_sent++;
            if (st == DP_OK && status >= 200 && status < 300) r->fb_ok++;
            else r->fb_failed++;
            continue;
        }
        if (r->workers_done && (!c->drain_feedback || r->n_heap == 0)) break;
        /* Wake at the next due time, and at least every 50 ms to see the
         * stop flag (a signal handler cannot signal a condition variable). */
        double until = now + 0.05;
        if (r->n_heap > 0 && r->heap[0].due < until) until = r->heap[0].due;
        struct timespec ts;
        ts.tv_sec = (time_t)until;
        ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->fb_cv, &r->mu, &ts);
    }
    r->cpu_s += thread_cpu_s();
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int spawn(pthread_t *t, void *(*fn)(void *), Run *r) {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return 0;
    pthread_attr_setstacksize(&attr, WORKER_STACK_BYTES);
    int ok = pthread_create(t, &attr, fn, r) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

/* Queues a job for the pool, growing the pool when every worker is busy;
 * at the cap it waits in the backlog, and a full backlog makes it an
 * overload on the spot. */
static void submit(Run *r, Job *j) {
    const LoadgenConfig *c = r->cfg;
    pthread_mutex_lock(&r->mu);
    int idle = r->n_workers - r->n_busy - r->qlen;
    if (idle <= 0 && r->n_workers < c->max_workers) {
        int slot = r->n_workers++;
        pthread_mutex_unlock(&r->mu);
        int ok = spawn(&r->workers[slot], worker_main, r);
        pthread_mutex_lock(&r->mu);
        if (!ok) {
            /* Keep the slot index dense: only the last slot can be undone,
             * and no other thread adds workers. */
            r->n_workers--;
        } else {
            idle = 1;
            if (r->n_workers > r->workers_peak) r->workers_peak = r->n_workers;
        }
    }
    if (idle <= 0) {
        if (r->qlen >= c->max_backlog) {
            Outcome o;
            memset(&o, 0, sizeof o);
            o.kind = LOADGEN_ERR_CLIENT_OVERLOAD;
            o.sent = -1;
            o.done = dp_time_mono();
            o.em = NAN;
            record(r, j, &o);
            pthread_mutex_unlock(&r->mu);
            free(j);
            return;
        }
        j->delayed = 1;
    }
    j->next = NULL;
    if (r->qtail) r->qtail->next = j;
    else r->qhead = j;
    r->qtail = j;
    r->qlen++;
    pthread_cond_signal(&r->work_cv);
    pthread_mutex_unlock(&r->mu);
}

// ---- validation ----

static DpStatus validate(const LoadgenConfig *c, DpError *err) {
    if (c->n_targets < 1 || c->n_targets > LOADGEN_MAX_TARGETS)
        return dp_fail(err, DP_ERR_INVAL, "need 1 to %d targets, got %d", LOADGEN_MAX_TARGETS,
                       c->n_targets);
    for (int i = 0; i < c->n_targets; i++) {
        DpStatus st = loadgen_url_check(c->targets[i].url, c->allow_remote, err);
        if (st != DP_OK) return st;
        if (!(c->targets[i].weight > 0) || !isfinite(c->targets[i].weight))
            return dp_fail(err, DP_ERR_INVAL, "target %s: weight must be > 0", c->targets[i].url);
    }
    if (!(c->duration_s > 0) || !isfinite(c->duration_s))
        return dp_fail(err, DP_ERR_INVAL, "duration must be > 0 seconds, got %g", c->duration_s);
    if (!(c->timeout_s > 0)) return dp_fail(err, DP_ERR_INVAL, "timeout must be > 0");
    if (!(c->scale > 0) || !isfinite(c->scale))
        return dp_fail(err, DP_ERR_INVAL, "scale must be > 0, got %g", c->scale);
    if (c->max_workers < 1 || c->min_workers < 0 || c->min_workers > c->max_workers)
        return dp_fail(err, DP_ERR_INVAL, "workers: need 0 <= min (%d) <= max (%d), max >= 1",
                       c->min_workers, c->max_workers);
    if (c->max_backlog < 0) return dp_fail(err, DP_ERR_INVAL, "max_backlog must be >= 0");
    if (!(c->feedback_fraction >= 0 && c->feedback_fraction <= 1))
        return dp_fail(err, DP_ERR_INVAL, "feedback fraction must be in [0, 1], got %g",
                       c->feedback_fraction);
    if (!(c->feedback_delay_s >= 0))
        return dp_fail(err, DP_ERR_INVAL, "feedback delay must be >= 0");
    if (c->feedback_fraction > 0 && c->feedback_workers < 1)
        return dp_fail(err, DP_ERR_INVAL, "feedback needs at least 1 feedback worker");
    const LoadgenSchedule *s = &c->schedule;
    if (s->kind == LOADGEN_SCHED_POINTS && (s->n_points == 0 || !s->pt_t || !s->pt_rate))
        return dp_fail(err, DP_ERR_INVAL, "schedule: no points");
    if (!isfinite(loadgen_schedule_max_rate(s)))
        return dp_fail(err, DP_ERR_INVAL, "schedule: rate is not finite");
    return DP_OK;
}

// ---- summary ----

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Same interpolation as dp_quantile, on sorted data. */
static double sorted_quantile(const double *x, size_t n, double q) {
    if (n == 0) return 0;
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos, hi = lo + 1 < n ? lo + 1 : lo;
    return x[lo] + (x[hi] - x[lo]) * (pos - (double)lo);
}

static void latency_stats(double *x, size_t n, LoadgenLatency *out) {
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n == 0) return;
    qsort(x, n, sizeof *x, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    out->mean = sum / (double)n;
    out->p50 = sorted_quantile(x, n, 0.50);
    out->p95 = sorted_quantile(x, n, 0.95);
    out->p99 = sorted_quantile(x, n, 0.99);
    out->max = x[n - 1];
}

static void summarize(Run *r, LoadgenSummary *s) {
    const LoadgenConfig *c = r->cfg;
    double *tmp = r->n_ok ? malloc(r->n_ok * sizeof *tmp) : NULL;
    s->n_targets = c->n_targets;
    for (int t = 0; t < c->n_targets; t++) {
        LoadgenTargetSummary *ts = &s->targets[t];
        snprintf(ts->url, sizeof ts->url, "%s", c->targets[t].url);
        ts->weight = c->targets[t].weight;
        ts->requests = r->tgt_requests[t];
        memcpy(ts->by_kind, r->tgt_kind[t], sizeof ts->by_kind);
        size_t m = 0;
        for (size_t i = 0; tmp && i < r->n_ok; i++)
            if (r->lat_target[i] == t) tmp[m++] = r->lat[i];
        latency_stats(tmp, m, &ts->latency);
        ts->achieved_rate = s->window_s > 0 ? (double)ts->by_kind[LOADGEN_OK] / s->window_s : 0;
    }
    free(tmp);
    memcpy(s->by_kind, r->by_kind, sizeof s->by_kind);
    s->ok = r->by_kind[LOADGEN_OK];
    s->errors = 0;
    for (int k = 1; k < LOADGEN_N_KINDS; k++) s->errors += r->by_kind[k];
    s->completed = s->ok + s->errors - r->by_kind[LOADGEN_ERR_CLIENT_OVERLOAD];
    s->cancelled = r->cancelled;
    s->intended_rate = s->window_s > 0 ? (double)s->arrivals / s->window_s : 0;
    s->achieved_rate = s->window_s > 0 ? (double)s->ok / s->window_s : 0;
    latency_stats(r->lat, r->n_ok, &s->latency);
    latency_stats(r->svc, r->n_ok, &s->service);
    LoadgenLatency lag;
    latency_stats(r->lag, r->n_lag, &lag);
    s->send_lag_p99_ms = lag.p99;
    s->send_lag_max_ms = lag.max;
    s->workers_peak = r->workers_peak;
    s->delayed = r->delayed;
    memcpy(s->by_question_kind, r->by_qkind, sizeof s->by_question_kind);
    s->exact_match = s->ok ? r->em_sum / (double)s->ok : 0;
    s->feedback_scheduled = r->fb_scheduled;
    s->feedback_sent = r->fb_sent;
    s->feedback_ok = r->fb_ok;
    s->feedback_failed = r->fb_failed;
    s->feedback_dropped = r->n_heap;
    s->cpu_s = r->cpu_s;
    s->cpu_percent = s->wall_s > 0 ? 100.0 * s->cpu_s / s->wall_s : 0;
}

// ---- the run ----

DpStatus loadgen_run(const LoadgenConfig *cfg, LoadgenSummary *out, DpError *err) {
    memset(out, 0, sizeof *out);
    DpStatus st = validate(cfg, err);
    if (st != DP_OK) return st;

    Run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    QaWorld *world = NULL;
    pthread_t fb_threads[16];
    int n_fb = 0, mu_ok = 0, cv_ok = 0, fbcv_ok = 0;
    double dispatch_cpu0 = thread_cpu_s();

    for (int t = 0; t < cfg->n_targets; t++) {
        snprintf(r.predict_url[t], sizeof r.predict_url[t], "%s/predict", cfg->targets[t].url);
        snprintf(r.feedback_url[t], sizeof r.feedback_url[t], "%s/feedback", cfg->targets[t].url);
    }
    if ((st = qa_world_create(&cfg->world, &world, err)) != DP_OK) {
        dp_error_wrap(err, "loadgen: world");
        goto out;
    }
    r.world = world;
    r.workers = dp_calloc((size_t)cfg->max_workers, sizeof *r.workers);
    if (!r.workers) {
        st = dp_fail(err, DP_ERR_NOMEM, "loadgen: out of memory");
        goto out;
    }
    if (cfg->csv_path) {
        r.csv = fopen(cfg->csv_path, "w");
        if (!r.csv) {
            st = dp_fail(err, DP_ERR_IO, "loadgen: open %s: %s", cfg->csv_path, strerror(errno));
            goto out;
        }
        fputs("seq,intended_s,sent_s,scenario_s,target,latency_ms,service_ms,status,error,"
              "model_version,kind,exact_match,feedback\n",
              r.csv);
    }
    pthread_mutex_init(&r.mu, NULL);
    mu_ok = 1;
    pthread_cond_init(&r.work_cv, NULL);
    cv_ok = 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r.fb_cv, &ca);
    pthread_condattr_destroy(&ca);
    fbcv_ok = 1;

    for (int i = 0; i < cfg->min_workers; i++) {
        if (!spawn(&r.workers[r.n_workers], worker_main, &r)) break;
        r.n_workers++;
    }
    r.workers_peak = r.n_workers;
    int want_fb = cfg->feedback_fraction > 0 ? cfg->feedback_workers : 0;
    if (want_fb > 16) want_fb = 16;
    for (int i = 0; i < want_fb; i++)
        if (spawn(&fb_threads[n_fb], feedback_main, &r)) n_fb++;

    /* Independent streams, so changing e.g. the feedback fraction does not
     * change which questions are asked or when. */
    LoadgenArrivals arr;
    loadgen_arrivals_init(&arr, &cfg->schedule, cfg->poisson, dp_hash_u64(cfg->seed) ^ 0x61);
    if (cfg->schedule_on_scenario_clock) {
        arr.sched_t0 = cfg->scenario_start_s;
        arr.sched_scale = cfg->scale;
    }
    DpRng qrng, trng, frng;
    dp_rng_seed_stream(&qrng, cfg->seed, 1);
    dp_rng_seed_stream(&trng, cfg->seed, 2);
    dp_rng_seed_stream(&frng, cfg->seed, 3);
    double wsum = 0, cur[LOADGEN_MAX_TARGETS] = {0};
    for (int t = 0; t < cfg->n_targets; t++) wsum += cfg->targets[t].weight;

    DpClock clock;
    dp_clock_init(&clock, cfg->scale, cfg->scenario_start_s);
    r.t0 = clock.mono0;
    out->start_mono = r.t0;
    out->start_unix = dp_time_wall();
    out->scenario_start_s = cfg->scenario_start_s;
    DpProgress prog;
    if (cfg->progress) dp_progress_init(&prog, "loadgen", cfg->duration_s, "s");

    uint64_t n = 0;
    double window = cfg->duration_s;
    for (;;) {
        double next = loadgen_arrivals_next(&arr, cfg->duration_s);
        if (cfg->max_requests && n >= cfg->max_requests) {
            if (isfinite(next)) window = next;
            break;
        }
        if (!isfinite(next)) break;
        double now;
        for (;;) {
            now = dp_time_mono();
            if (stop_requested(&r)) break;
            double left = r.t0 + next - now;
            if (left <= 0) break;
            dp_sleep(left < 0.05 ? left : 0.05);
        }
        if (stop_requested(&r)) {
            window = fmin(now - r.t0, cfg->duration_s);
            out->stopped = 1;
            break;
        }
        Job *j = dp_malloc(sizeof *j);
        if (!j) {
            st = dp_fail(err, DP_ERR_NOMEM, "loadgen: out of memory");
            window = now - r.t0;
            break;
        }
        memset(j, 0, sizeof *j);
        j->seq = n;
        j->intended = r.t0 + next;
        j->scenario_t = clock.start + next * clock.scale;
        qa_world_sample(world, j->scenario_t, &qrng, &j->q);
        int tgt = 0;
        if (cfg->balance == LOADGEN_BALANCE_RANDOM) {
            double u = dp_rng_uniform(&trng) * wsum;
            for (tgt = 0; tgt < cfg->n_targets - 1; tgt++) {
                u -= cfg->targets[tgt].weight;
                if (u < 0) break;
            }
        } else {
            /* Smooth weighted round-robin: each target gains its weight,
             * the richest is picked and pays the total.  Shares are exact
             * over every cycle and the picks are interleaved. */
            for (int t = 0; t < cfg->n_targets; t++) {
                cur[t] += cfg->targets[t].weight;
                if (cur[t] > cur[tgt]) tgt = t;
            }
            cur[tgt] -= wsum;
        }
        j->target = tgt;
        j->label = dp_rng_uniform(&frng) < cfg->feedback_fraction;
        submit(&r, j);
        n++;
        if (cfg->progress) {
            char extra[96];
            pthread_mutex_lock(&r.mu);
            snprintf(extra, sizeof extra, "%llu sent, %llu ok, %d workers", (unsigned long long)n,
                     (unsigned long long)r.by_kind[LOADGEN_OK], r.n_workers);
            pthread_mutex_unlock(&r.mu);
            dp_progress_update(&prog, now - r.t0, extra);
        }
    }
    /* The window is the whole duration: wait out the quiet tail after the
     * last arrival, so rates and wall time agree. */
    if (!out->stopped && !(cfg->max_requests && n >= cfg->max_requests)) {
        for (;;) {
            double left = r.t0 + window - dp_time_mono();
            if (left <= 0 || stop_requested(&r)) break;
            dp_sleep(left < 0.05 ? left : 0.05);
        }
    }
    out->arrivals = n;
    out->window_s = window;
    out->scenario_end_s = clock.start + window * clock.scale;

    /* Drain: workers finish what is queued (or cancel it when stopped) and
     * exit; then feedback threads send what is due (or all, when draining). */
    pthread_mutex_lock(&r.mu);
    r.dispatch_done = 1;
    pthread_cond_broadcast(&r.work_cv);
    pthread_mutex_unlock(&r.mu);
    for (int i = 0; i < r.n_workers; i++) pthread_join(r.workers[i], NULL);
    pthread_mutex_lock(&r.mu);
    r.workers_done = 1;
    pthread_cond_broadcast(&r.fb_cv);
    pthread_mutex_unlock(&r.mu);
    for (int i = 0; i < n_fb; i++) pthread_join(fb_threads[i], NULL);
    n_fb = 0;
    if (stop_requested(&r)) out->stopped = 1;
    r.cpu_s += thread_cpu_s() - dispatch_cpu0;
    out->wall_s = dp_time_mono() - r.t0;
    if (cfg->progress) dp_progress_finish(&prog, NULL);
    summarize(&r, out);
    if (r.csv) {
        if (fclose(r.csv) != 0) r.csv_failed = 1;
        r.csv = NULL;
        if (r.csv_failed && st == DP_OK)
            st = dp_fail(err, DP_ERR_IO, "loadgen: writing %s failed", cfg->csv_path);
    }

out:
    if (r.csv) fclose(r.csv);
    for (size_t i = 0; i < r.n_heap; i++) free(r.heap[i].body);
    free(r.heap);
    while (r.qhead) {
        Job *j = r.qhead;
        r.qhead = j->next;
        free(j);
    }
    free(r.lat);
    free(r.svc);
    free(r.lat_target);
    free(r.lag);
    free(r.workers);
    if (fbcv_ok) pthread_cond_destroy(&r.fb_cv);
    if (cv_ok) pthread_cond_destroy(&r.work_cv);
    if (mu_ok) pthread_mutex_destroy(&r.mu);
    qa_world_destroy(world);
    return st;
}
