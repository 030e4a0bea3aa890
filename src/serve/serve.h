/*
 * serve: the HTTP inference service (`driftpilot serve`).
 *
 * One process serves one GPT-2 model (a Hugging Face directory, or the
 * current version of a registry target) over libmicrohttpd:
 *
 *     POST /predict       {question, context?, max_new_tokens?, temperature?,
 *                          top_k?, top_p?} -> {id, answer, model_version,
 *                          target, prompt_tokens, completion_tokens, latency_ms}
 *     POST /feedback      {id, reference} or {question, reference, prediction}
 *                          -> rolling BLEU-1 / exact match / F1, labelled log
 *     GET  /healthz       liveness and readiness (model loaded, its version)
 *     GET  /metrics       Prometheus text format
 *     POST /admin/reload  {version} or {model_dir}, bearer token: hot swap
 *
 * Batching: connection threads (libmicrohttpd runs one per connection)
 * tokenize, enqueue a job and sleep on a condition variable.  One scheduler
 * thread owns the Gpt2Generator of each loaded model and runs continuous
 * batching: a new job waits at most batch_wait_ms for company when the
 * scheduler is idle (and requests are arriving closer together than that),
 * joins the running batch at the next decode step otherwise, and its prompt is prefilled in the
 * same gpt2_generator_feed call that decodes one token for every running sequence.
 *
 * Hot swap: a model (weights, tokenizer, generator) is reference counted.
 * The service holds one reference to the current model and each request one
 * to the model it started on; a reload loads the new model beside the old,
 * switches the current pointer under the lock and drops the service's
 * reference, so the old model is freed when its last request ends.
 *
 * Ownership: serve_create copies every string of the ServeConfig; a Serve is
 * freed with serve_destroy (NULL-safe; it stops the service first).  Parsed
 * requests (ServePredictRequest, ServeFeedbackRequest, ServeReloadRequest)
 * own their strings; free them with their _free function (NULL-safe and safe
 * on a zeroed struct).
 *
 * Thread safety: serve_start, serve_stop and serve_destroy must be called
 * from one thread; serve_reload and serve_port may be called from any thread
 * while the service runs.  The parsers are reentrant.
 *
 *     ServeConfig cfg;
 *     serve_config_default(&cfg);
 *     cfg.model_dir = "models/tiny";
 *     cfg.port = 0;                              // any free port
 *     Serve *s = NULL;
 *     int port = 0;
 *     if (serve_create(&cfg, &s, &err) || serve_start(s, &port, &err)) ... err.msg ...
 *     ... POST http://127.0.0.1:<port>/predict ...
 *     serve_stop(s);                             // drain, flush the feedback log
 *     serve_destroy(s);
 */
#ifndef DRIFTPILOT_SERVE_H
#define DRIFTPILOT_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

typedef struct {
    const char *listen_host;   /* IPv4 address (default "127.0.0.1"; "localhost" ok) */
    int port;                  /* 0: any free port (serve_start reports it) */
    const char *model_dir;     /* a Hugging Face GPT-2 directory, or NULL with: */
    const char *registry_dir;  /*   a registry and */
    const char *target;        /*   a target, whose current version is served.
                                  The target name is reported in responses and
                                  metrics either way (default "local"). */
    const char *feedback_log;  /* JSON lines of labelled requests (NULL: none) */
    const char *admin_token;   /* bearer token of /admin/ routes (NULL or "":
                                  admin routes answer 403) */
    int batch_wait_ms;         /* how long an idle scheduler waits for company (5);
                                  it waits only when the previous request arrived
                                  within this window (light load: no wait) */
    int batching;              /* 1: continuous batching; 0: one request at a time */
    int max_batch;             /* sequences decoded together (16) */
    int max_context;           /* KV cache tokens per sequence (0: model's n_positions,
                                  capped at 256 to bound the cache) */
    size_t max_body_bytes;     /* larger bodies answer 413 (65536) */
    size_t max_question_bytes; /* longer question or context: 400 (4096 / 16384) */
    size_t max_context_bytes;
    int max_new_tokens_limit;   /* requests asking more: 400 (128) */
    int default_max_new_tokens; /* when the request does not say (32) */
    int feedback_window;        /* labelled requests in the rolling scores (200) */
    int recent_capacity;        /* served predictions kept for /feedback by id (4096) */
    int connection_timeout_s;   /* idle or slow clients are dropped after this (10) */
    int connection_limit;       /* simultaneous connections (512) */
    double drain_timeout_s;     /* serve_stop waits this long for requests in flight (30) */
    uint64_t seed;              /* sampling RNG seed (1) */
    int compute_threads;        /* OpenMP/OpenBLAS threads of the model (1; 0: leave
                                   the process's setting).  Set process-wide when the
                                   service starts: spinning OpenMP teams next to the
                                   connection threads on a small machine cost far more
                                   than they give (10 ms vs 50-370 ms per request,
                                   measured on the loaded 2-core box) */
} ServeConfig;

/* Fills the defaults listed above (model_dir etc. NULL). */
void serve_config_default(ServeConfig *cfg);

typedef struct Serve Serve;

/* Validates cfg, loads the model (and tokenizer from the same directory),
 * opens the feedback log for appending and builds the metrics.  Nothing
 * listens yet.  On failure *out is NULL and err names the problem. */
DpStatus serve_create(const ServeConfig *cfg, Serve **out, DpError *err);
/* Starts the scheduler thread and the HTTP daemon; *port (may be NULL) gets
 * the bound port. */
DpStatus serve_start(Serve *s, int *port, DpError *err);
/* The bound port (0 before serve_start). */
int serve_port(const Serve *s);
/* Graceful stop: stops accepting connections, answers 503 to new requests
 * on open connections, waits (up to drain_timeout_s) for requests in flight
 * to finish, stops the daemon and the scheduler, and flushes and fdatasyncs
 * the feedback log.  Idempotent; does nothing before serve_start. */
void serve_stop(Serve *s);
/* Stops (when running) and frees everything.  NULL-safe. */
void serve_destroy(Serve *s);

/* Loads a model beside the current one and switches to it: version names a
 * registry version (registry mode only), or model_dir a directory (exactly
 * one of them non-NULL).  Requests in flight finish on the old model, which
 * is freed when the last of them ends.  The new version string is written to
 * out_version (may be NULL; REGISTRY-style ids or the directory's base name). */
DpStatus serve_reload(Serve *s, const char *version, const char *model_dir, char *out_version,
                      size_t cap, DpError *err);
/* The version currently served, copied into out (snprintf semantics). */
void serve_current_version(Serve *s, char *out, size_t cap);

// ---- request parsing (public for the fuzzer and the tests) ----

/* The limits the parsers enforce; serve_limits_default gives the
 * ServeConfig defaults. */
typedef struct {
    size_t max_body_bytes;
    size_t max_question_bytes;
    size_t max_context_bytes;
    int max_new_tokens_limit;
    int default_max_new_tokens;
} ServeLimits;
void serve_limits_default(ServeLimits *l);

typedef struct {
    char *question;     /* non-empty, valid UTF-8, no NUL */
    char *context;      /* NULL when absent or empty */
    int max_new_tokens; /* 1..limit */
    double temperature; /* 0 (greedy) or 1e-4..100; smaller values become 0 */
    int top_k;          /* >= 0 (0: off) */
    double top_p;       /* (0, 1] (1: off) */
} ServePredictRequest;

typedef struct {
    char *id;       /* NULL when the prediction is given inline */
    char *question; /* inline form (NULL with an id) */
    char *context;
    char *prediction;
    char *reference; /* always set */
} ServeFeedbackRequest;

typedef struct {
    char *version; /* exactly one of these is set */
    char *model_dir;
} ServeReloadRequest;

/* Each parser checks, in order: body size (DP_ERR_INVAL with "body too
 * large" -> 413), valid UTF-8, JSON syntax (naming line and column), a
 * top-level object, then each field's type and range, naming the field.
 * Unknown fields are ignored.  On failure *out is zeroed and err says why
 * (DP_ERR_PARSE for syntax, DP_ERR_INVAL for values). */
DpStatus serve_parse_predict(const char *body, size_t len, const ServeLimits *lim,
                             ServePredictRequest *out, DpError *err);
DpStatus serve_parse_feedback(const char *body, size_t len, const ServeLimits *lim,
                              ServeFeedbackRequest *out, DpError *err);
DpStatus serve_parse_reload(const char *body, size_t len, const ServeLimits *lim,
                            ServeReloadRequest *out, DpError *err);
void serve_predict_request_free(ServePredictRequest *r);
void serve_feedback_request_free(ServeFeedbackRequest *r);
void serve_reload_request_free(ServeReloadRequest *r);

/* Returns -1 when s[0..len) is valid UTF-8 (no overlongs, no surrogates, no
 * code points above U+10FFFF), else the offset of the first bad byte. */
long serve_utf8_invalid_at(const char *s, size_t len);

#endif
