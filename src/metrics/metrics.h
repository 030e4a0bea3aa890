/*
 * metrics: Prometheus metrics for driftpilot, both ends of the wire.
 *
 * Producing: a MetricsRegistry holds metric families (counters, gauges,
 * histograms), each with a fixed list of label names; the label-value
 * children ("series") are created on demand.  metrics_render() writes the
 * text exposition format 0.0.4 that Prometheus scrapes from /metrics.
 * metrics_register_process_collector() adds the standard process_* metrics
 * (CPU seconds, resident/virtual memory, start time, open/max fds) read from
 * /proc at render time.
 *
 * Consuming: metrics_parse() reads exposition text back into samples (the
 * controller's direct-scrape path, and tests); metrics_http_get() is a small
 * HTTP/1.1 GET client over plain sockets; promql_query() and
 * promql_query_range() call a Prometheus server's HTTP API and parse its JSON.
 *
 * Naming rules enforced at creation (an error, never a crash): metric names
 * match [a-z_][a-z0-9_]* (no colons: those are for recording rules; no upper
 * case), counters end in _total and other types do not, label names match
 * [a-z_][a-z0-9_]* and do not start with "__", histograms cannot use "le".
 * Use base units in names (_seconds, _bytes).
 *
 * Ownership: the registry owns its families and their children; the
 * MetricFamily and Metric pointers handed out stay valid until
 * metrics_registry_destroy().  Strings passed in are copied.  Parsed samples
 * and PromQL results are owned by their container and freed with
 * metrics_parsed_free() / promql_result_free().  HTTP bodies are owned by the
 * caller (free()).
 *
 * Thread safety: all updates (metric_inc/add/set/observe) are lock-free
 * atomics and may run on any number of threads while another thread renders.
 * Family and child creation take a mutex (one per family, one for the
 * registry); cache the Metric pointer of a hot series instead of looking it
 * up per request.  Histogram _count is the sum of the bucket counts at
 * render time, so _count always equals the +Inf bucket; _sum may trail by an
 * observation in flight.  Everything else here is reentrant.
 *
 *     MetricsRegistry *reg = metrics_registry_create();
 *     MetricFamily *req;
 *     const char *labels[] = {"route", "code"};
 *     if (metrics_counter_new(reg, "http_requests_total", "Requests served.",
 *                             2, labels, &req, &err) != DP_OK) ...;
 *     metric_inc(metrics_with(req, "/predict", "200"), 1);
 *     DpBuf out = DP_BUF_INIT;
 *     metrics_render(reg, &out);        // "# HELP http_requests_total ..."
 *     dp_buf_free(&out);
 *     metrics_registry_destroy(reg);
 */
#ifndef DRIFTPILOT_METRICS_H
#define DRIFTPILOT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

// ---- registry ----

typedef enum {
    METRIC_COUNTER = 0,
    METRIC_GAUGE = 1,
    METRIC_HISTOGRAM = 2,
    METRIC_SUMMARY = 3, /* only seen when parsing; the registry does not make them */
    METRIC_UNTYPED = 4,
} MetricType;

/* "counter", "gauge", "histogram", "summary", "untyped". */
const char *metric_type_str(MetricType t);

typedef struct MetricsRegistry MetricsRegistry;
typedef struct MetricFamily MetricFamily;
typedef struct Metric Metric; /* one series: a family plus one set of label values */

/* Returns a new empty registry, or NULL when out of memory. */
MetricsRegistry *metrics_registry_create(void);
/* Frees the registry, its families and children.  NULL is fine. */
void metrics_registry_destroy(MetricsRegistry *r);

/* Create a family.  label_names has n_labels entries (may be NULL when
 * n_labels is 0).  Fails with DP_ERR_INVAL naming the problem for a bad or
 * duplicate name; *out is then untouched.  A family without labels has its
 * single series created at once. */
DpStatus metrics_counter_new(MetricsRegistry *r, const char *name, const char *help, int n_labels,
                             const char *const *label_names, MetricFamily **out, DpError *err);
DpStatus metrics_gauge_new(MetricsRegistry *r, const char *name, const char *help, int n_labels,
                           const char *const *label_names, MetricFamily **out, DpError *err);
/* buckets: n_buckets finite upper bounds, strictly increasing (a trailing
 * +Inf is accepted and dropped; +Inf is always added).  buckets == NULL uses
 * the Prometheus defaults 0.005 .. 10 (seconds). */
DpStatus metrics_histogram_new(MetricsRegistry *r, const char *name, const char *help,
                               int n_labels, const char *const *label_names,
                               const double *buckets, int n_buckets, MetricFamily **out,
                               DpError *err);

/* The series for label_values (n_labels strings, copied), created on first
 * use.  Returns NULL when out of memory or when a value is NULL. */
Metric *metrics_child(MetricFamily *f, const char *const *label_values);
/* Same, with the n_labels values as arguments: metrics_with(f, "/predict", "200").
 * Passing a different number of arguments than the family's labels is
 * undefined behaviour (as with printf). */
Metric *metrics_with(MetricFamily *f, ...);

/* Updates.  All are lock-free and NULL-safe (a NULL metric is ignored, so a
 * failed lookup cannot crash a request).  metric_inc on a counter ignores
 * negative or NaN amounts (counters never go down).  metric_set also works on
 * counters that mirror an external total (process CPU seconds). */
void metric_inc(Metric *m, double v);
void metric_add(Metric *m, double v); /* gauges: v may be negative */
void metric_set(Metric *m, double v);
void metric_observe(Metric *m, double v); /* histograms */
/* Current value (counter/gauge), or for a histogram the observation count. */
double metric_value(const Metric *m);
/* Histogram sum of observations (0 for other types). */
double metric_hist_sum(const Metric *m);

const char *metric_family_name(const MetricFamily *f);
MetricType metric_family_type(const MetricFamily *f);
/* Looks a family up by name; NULL when there is none. */
MetricFamily *metrics_find(MetricsRegistry *r, const char *name);

/* A collector runs at the start of every render, to refresh values that are
 * read rather than counted (e.g. from /proc).  It must not create families.
 * Runs with the registry's collector lock held, so at most one runs at once. */
typedef void (*MetricsCollectFn)(MetricsRegistry *r, void *user);
DpStatus metrics_register_collector(MetricsRegistry *r, MetricsCollectFn fn, void *user,
                                    DpError *err);

/* Adds process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_start_time_seconds,
 * process_open_fds and process_max_fds, refreshed from /proc/self at each
 * render.  Fails if those names already exist. */
DpStatus metrics_register_process_collector(MetricsRegistry *r, DpError *err);

/* Reads the same numbers once (the controller uses it for its own state).
 * Fails with DP_ERR_IO when /proc is not readable. */
typedef struct {
    double cpu_seconds;          /* user + system */
    double resident_bytes;
    double virtual_bytes;
    double start_time_seconds;   /* unix time */
    double open_fds;
    double max_fds;
} MetricsProcessInfo;
DpStatus metrics_process_read(MetricsProcessInfo *info, DpError *err);

/* Appends the text exposition (format 0.0.4, "text/plain; version=0.0.4")
 * of every family to out: HELP, TYPE, then samples in creation order.
 * Returns DP_ERR_NOMEM when the buffer cannot grow (out keeps what was
 * written). */
DpStatus metrics_render(MetricsRegistry *r, DpBuf *out);

/* Content-Type to serve the rendered text with. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Formats v as Prometheus expects: "+Inf", "-Inf", "NaN", integers without
 * exponent or fraction ("1200"), others in the shortest form that reads back
 * exactly.  out needs 32 bytes; returns out. */
char *metrics_format_double(double v, char out[32]);

// ---- exposition parser ----

typedef struct {
    char *name;              /* sample name, e.g. "http_request_duration_seconds_bucket" */
    char *family;            /* the family it belongs to (name without _bucket/_sum/_count
                                for histograms and summaries) */
    MetricType type;         /* from the family's TYPE line, METRIC_UNTYPED without one */
    int n_labels;
    char **label_names;      /* n_labels entries, in the order written */
    char **label_values;     /* unescaped */
    double value;
    int has_timestamp;
    int64_t timestamp_ms;
} MetricSample;

typedef struct {
    MetricSample *samples;
    size_t n_samples;
    size_t cap_samples;
    /* One entry per # TYPE line seen (and its HELP, unescaped, or NULL). */
    struct MetricsParsedFamily {
        char *name;
        char *help;
        MetricType type;
    } *families;
    size_t n_families;
    size_t cap_families;
} MetricsParsed;

/* Parses exposition text (len bytes, need not be NUL-terminated) into out,
 * which must be zeroed (MetricsParsed p = {0}).  Errors name the line:
 * "line 12: expected '=' after label name".  On error out holds what was
 * parsed before the bad line; free it either way with metrics_parsed_free. */
DpStatus metrics_parse(const char *text, size_t len, MetricsParsed *out, DpError *err);
void metrics_parsed_free(MetricsParsed *p);

/* The first sample called name whose labels include every (name, value)
 * pair in label_kv (n_pairs pairs, written name0, value0, name1, ...).
 * NULL when none matches. */
const MetricSample *metrics_parsed_find(const MetricsParsed *p, const char *name,
                                        const char *const *label_kv, int n_pairs);
/* Value of label name on s, or NULL. */
const char *metric_sample_label(const MetricSample *s, const char *name);

// ---- HTTP client ----

/* GET url ("http://host:port/path?query"; host is a name, IPv4 or [IPv6];
 * no TLS) with an overall deadline of timeout_s seconds for connect, send and
 * receive.  Handles Content-Length, chunked and close-delimited bodies.  On
 * DP_OK, *status is the HTTP status (any code; a 404 is not an error here)
 * and *body a NUL-terminated copy of the body that the caller frees; body_len
 * (may be NULL) gets its length.  Bodies over 64 MiB are refused. */
DpStatus metrics_http_get(const char *url, double timeout_s, char **body, size_t *body_len,
                          int *status, DpError *err);

/* Any method: extra_headers (may be NULL) are full "Name: value\r\n" lines;
 * when req_body is not NULL it is sent with a Content-Length.  Same contract
 * as metrics_http_get otherwise (error messages say "GET" for any method). */
DpStatus metrics_http_request(const char *method, const char *url, const char *extra_headers,
                              const void *req_body, size_t req_len, double timeout_s,
                              char **body, size_t *body_len, int *status, DpError *err);
/* POST a JSON document (Content-Type: application/json). */
DpStatus metrics_http_post_json(const char *url, const char *json, double timeout_s, char **body,
                                size_t *body_len, int *status, DpError *err);

/* Percent-encodes s for a URL query component into out (appended). */
DpStatus metrics_url_encode(DpBuf *out, const char *s);

// ---- PromQL client ----

typedef enum {
    PROMQL_VECTOR = 0,
    PROMQL_MATRIX = 1,
    PROMQL_SCALAR = 2,
    PROMQL_STRING = 3,
} PromqlResultType;

typedef struct {
    double t;   /* unix seconds */
    double v;   /* NaN and +-Inf come through as such */
} PromqlPoint;

typedef struct {
    int n_labels;
    char **label_names;   /* includes "__name__" when the server sends it */
    char **label_values;
    size_t n_points;      /* vector: 1; matrix: the range's points */
    PromqlPoint *points;
} PromqlSeries;

typedef struct {
    PromqlResultType type;
    /* vector and matrix: one per series; scalar and string: one series with
     * no labels and one point (for a string, v is NaN and text holds it). */
    size_t n_series;
    PromqlSeries *series;
    char *text;           /* string results only, else NULL */
    char *warnings;       /* the server's warnings joined by "; ", or NULL */
} PromqlResult;

/* Parses a Prometheus HTTP API response body (/api/v1/query or
 * /api/v1/query_range).  status "error" fails with DP_ERR_STATE and the
 * message "prometheus error (bad_data): <error>".  out is overwritten; free
 * it with promql_result_free even after an error. */
DpStatus promql_parse_response(const char *json, size_t len, PromqlResult *out, DpError *err);

/* Instant query at time t (unix seconds; t <= 0 or NaN means the server's
 * now).  base_url is e.g. "http://127.0.0.1:9090".  Times out after
 * PROMQL_TIMEOUT_S. */
#define PROMQL_TIMEOUT_S 10.0
DpStatus promql_query(const char *base_url, const char *expr, double t, PromqlResult *out,
                      DpError *err);
/* Range query over [start, end] every step seconds. */
DpStatus promql_query_range(const char *base_url, const char *expr, double start, double end,
                            double step, PromqlResult *out, DpError *err);
/* Value of label name on series s, or NULL. */
const char *promql_series_label(const PromqlSeries *s, const char *name);
void promql_result_free(PromqlResult *r);

#endif
