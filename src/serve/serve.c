/* The service's lifecycle: configuration, model loading (directory or
 * registry target), the metrics it exports, start, graceful stop, and the
 * hot swap behind /admin/reload. */
#include "serve_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void serve_config_default(ServeConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    ServeLimits l;
    serve_limits_default(&l);
    cfg->listen_host = "127.0.0.1";
    cfg->port = 8001;
    cfg->target = NULL;
    cfg->batch_wait_ms = 5;
    cfg->batching = 1;
    cfg->max_batch = 16;
    cfg->max_context = 0;
    cfg->max_body_bytes = l.max_body_bytes;
    cfg->max_question_bytes = l.max_question_bytes;
    cfg->max_context_bytes = l.max_context_bytes;
    cfg->max_new_tokens_limit = l.max_new_tokens_limit;
    cfg->default_max_new_tokens = l.default_max_new_tokens;
    cfg->feedback_window = 200;
    cfg->recent_capacity = 4096;
    cfg->connection_timeout_s = 10;
    cfg->connection_limit = 512;
    cfg->drain_timeout_s = 30;
    cfg->seed = 1;
    cfg->compute_threads = 1;
}

void serve_current_version(Serve *s, char *out, size_t cap) {
    pthread_mutex_lock(&s->lock);
    snprintf(out, cap, "%s", s->current ? s->current->version : "");
    pthread_mutex_unlock(&s->lock);
}

int serve_port(const Serve *s) {
    return s ? s->port : 0;
}

static char *dup_or_null(const char *x, int *oom) {
    if (!x) return NULL;
    char *d = dp_strdup(x);
    if (!d) *oom = 1;
    return d;
}

/* Finds a model directory: either the configured one, or the given/current
 * version of the registry target.  Caller holds reload_lock (or is create). */
static DpStatus locate_model(Serve *s, const char *version, const char *model_dir, char *dir,
                             size_t cap, char *ver, size_t vcap, DpError *err) {
    ver[0] = 0;
    if (model_dir) {
        snprintf(dir, cap, "%s", model_dir);
        return DP_OK;
    }
    if (!s->registry)
        return dp_fail(err, DP_ERR_STATE,
                       "reload by version needs registry mode (--registry); give model_dir");
    char v[REGISTRY_ID_MAX];
    DpStatus st;
    if (version) {
        if ((st = registry_parse_version(version, v, err))) return st;
    } else if ((st = registry_current(s->registry, s->cfg.target, v, err))) {
        return st;
    }
    if ((st = registry_open_version(s->registry, v, NULL, dir, cap, err))) return st;
    snprintf(ver, vcap, "%s", v);
    return DP_OK;
}

static void set_model_info(Serve *s, const ServeModel *old, const ServeModel *m) {
    /* Info-style gauge: 1 on the served version, 0 on the ones before. */
    if (old) metric_set(metrics_with(s->f_model_info, old->version, s->cfg.target), 0);
    metric_set(metrics_with(s->f_model_info, m->version, s->cfg.target), 1);
    metric_set(s->m_version, m->version_num);
}

DpStatus serve_reload(Serve *s, const char *version, const char *model_dir, char *out_version,
                      size_t cap, DpError *err) {
    if (!version == !model_dir)
        return dp_fail(err, DP_ERR_INVAL, "reload: give exactly one of version and model_dir");
    pthread_mutex_lock(&s->reload_lock);
    char dir[4096], ver[64];
    ServeModel *m = NULL;
    DpStatus st = locate_model(s, version, model_dir, dir, sizeof dir, ver, sizeof ver, err);
    if (!st) st = serve_model_load(dir, ver, s->cfg.max_batch, s->cfg.max_context, &m, err);
    if (st) {
        pthread_mutex_unlock(&s->reload_lock);
        return st;
    }
    /* The new model starts with the service's reference (refs = 1); the old
     * one loses it and is freed by whoever drops its last reference. */
    pthread_mutex_lock(&s->lock);
    ServeModel *old = s->current;
    s->current = m;
    set_model_info(s, old, m);
    pthread_mutex_unlock(&s->lock);
    metric_inc(s->m_reloads, 1);
    dp_info("serve: now serving %s (%s)", m->version, m->dir);
    if (out_version) snprintf(out_version, cap, "%s", m->version);
    serve_model_release(s, old);
    pthread_mutex_unlock(&s->reload_lock);
    return DP_OK;
}

static DpStatus make_metrics(Serve *s, DpError *err) {
    MetricsRegistry *r = metrics_registry_create();
    if (!r) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    s->metrics = r;
    static const double dur_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
                                         0.15,  0.25,   0.5,   1,    2.5,   5,    10};
    static const double wait_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1};
    static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64};
    const char *rc[] = {"route", "code"}, *rt[] = {"route"}, *vt[] = {"version", "target"};
    MetricFamily *f;
    DpStatus st;
#define GAUGE(name, help, dst)                                                                     \
    if ((st = metrics_gauge_new(r, name, help, 0, NULL, &f, err))) return st;                      \
    dst = metrics_child(f, NULL);
#define COUNTER(name, help, dst)                                                                   \
    if ((st = metrics_counter_new(r, name, help, 0, NULL, &f, err))) return st;                    \
    dst = metrics_child(f, NULL);
    if ((st = metrics_counter_new(r, "http_requests_total",
                                  "HTTP requests answered, by route and status code.", 2, rc,
                                  &s->f_requests, err)) ||
        (st = metrics_histogram_new(
             r, "http_request_duration_seconds",
             "Time from the request's arrival to its answer, by route.", 1, rt, dur_buckets,
             (int)(sizeof dur_buckets / sizeof dur_buckets[0]), &s->f_duration, err)))
        return st;
    COUNTER("llm_prompt_tokens_total", "Prompt tokens processed (prefill).", s->m_prompt_tokens);
    COUNTER("llm_generated_tokens_total", "Tokens generated (decode).", s->m_gen_tokens);
    GAUGE("llm_queue_depth", "Requests waiting for a batch slot.", s->m_queue_depth);
    GAUGE("llm_active_sequences", "Sequences being decoded right now.", s->m_active);
    GAUGE("llm_inflight_requests", "HTTP requests being handled right now.", s->m_inflight);
    if ((st = metrics_histogram_new(
             r, "llm_batch_size", "Sequences per decode step (prefill and decode together).", 0,
             NULL, batch_buckets, (int)(sizeof batch_buckets / sizeof batch_buckets[0]), &f, err)))
        return st;
    s->m_batch = metrics_child(f, NULL);
    if ((st = metrics_histogram_new(
             r, "llm_queue_wait_seconds", "Time a request waited before joining a batch.", 0, NULL,
             wait_buckets, (int)(sizeof wait_buckets / sizeof wait_buckets[0]), &f, err)))
        return st;
    s->m_queue_wait = metrics_child(f, NULL);
    GAUGE("llm_bleu", "Mean BLEU-1 over the window of recent labelled requests.", s->m_bleu);
    GAUGE("llm_accuracy", "Exact-match rate over the window of recent labelled requests.",
          s->m_acc);
    GAUGE("llm_f1", "Mean token F1 over the window of recent labelled requests.", s->m_f1);
    /* No labels yet: the scores are unknown, not 0 (a 0 would fire quality
     * alerts and tell a controller to retrain a model nobody has judged). */
    metric_set(s->m_bleu, NAN);
    metric_set(s->m_acc, NAN);
    metric_set(s->m_f1, NAN);
    GAUGE("llm_feedback_window_size",
          "Labelled requests in the rolling window (0: no scores yet; they read NaN).",
          s->m_fb_window);
    COUNTER("llm_feedback_total", "Labelled requests received on /feedback.", s->m_fb_total);
    if ((st = metrics_gauge_new(
             r, "llm_model_info",
             "1 for the model version being served (0 for earlier ones), with the target.", 2, vt,
             &s->f_model_info, err)))
        return st;
    GAUGE("llm_model_version",
          "Registry version number served (3 for v000003; 0 for a plain directory).", s->m_version);
    COUNTER("llm_model_reloads_total", "Hot model swaps, including the first load.", s->m_reloads);
#undef GAUGE
#undef COUNTER
    return metrics_register_process_collector(r, err);
}

void serve_destroy(Serve *s) {
    if (!s) return;
    serve_stop(s);
    if (s->current) serve_model_free(s->current); /* no request holds it any more */
    serve_feedback_free(s);
    registry_close(s->registry);
    metrics_registry_destroy(s->metrics);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->fb_lock);
    pthread_mutex_destroy(&s->reload_lock);
    pthread_cond_destroy(&s->sched_cv);
    pthread_cond_destroy(&s->idle_cv);
    free(s->s_listen);
    free(s->s_model_dir);
    free(s->s_registry_dir);
    free(s->s_target);
    free(s->s_feedback_log);
    free(s->s_token);
    free(s);
}

DpStatus serve_create(const ServeConfig *cfg, Serve **out, DpError *err) {
    *out = NULL;
    if (!cfg->model_dir == !cfg->registry_dir)
        return dp_fail(err, DP_ERR_INVAL, "give exactly one of a model directory and a registry");
    if (cfg->registry_dir && (!cfg->target || !*cfg->target))
        return dp_fail(err, DP_ERR_INVAL, "registry mode needs a target name");
    if (cfg->port < 0 || cfg->port > 65535)
        return dp_fail(err, DP_ERR_INVAL, "port %d outside 0..65535", cfg->port);
    if (cfg->max_batch < 1 || cfg->max_batch > 256 || cfg->batch_wait_ms < 0 ||
        cfg->batch_wait_ms > 1000 || cfg->feedback_window < 1 || cfg->recent_capacity < 1 ||
        cfg->max_new_tokens_limit < 1 || cfg->default_max_new_tokens < 1 ||
        cfg->default_max_new_tokens > cfg->max_new_tokens_limit || cfg->max_body_bytes < 64 ||
        cfg->connection_timeout_s < 1 || cfg->connection_limit < 1)
        return dp_fail(err, DP_ERR_INVAL,
                       "bad serve settings (max_batch 1..256, batch_wait_ms 0..1000, windows >= 1, "
                       "default_max_new_tokens <= max_new_tokens_limit, body limit >= 64)");
    Serve *s = dp_calloc(1, sizeof *s);
    if (!s) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    s->cfg = *cfg;
    s->quiesced_fd = -1;
    int oom = 0;
    s->cfg.listen_host = s->s_listen =
        dup_or_null(cfg->listen_host ? cfg->listen_host : "127.0.0.1", &oom);
    s->cfg.model_dir = s->s_model_dir = dup_or_null(cfg->model_dir, &oom);
    s->cfg.registry_dir = s->s_registry_dir = dup_or_null(cfg->registry_dir, &oom);
    s->cfg.target = s->s_target =
        dup_or_null(cfg->target && *cfg->target ? cfg->target : "local", &oom);
    s->cfg.feedback_log = s->s_feedback_log = dup_or_null(cfg->feedback_log, &oom);
    s->cfg.admin_token = s->s_token = dup_or_null(cfg->admin_token, &oom);
    s->lim.max_body_bytes = cfg->max_body_bytes;
    s->lim.max_question_bytes = cfg->max_question_bytes;
    s->lim.max_context_bytes = cfg->max_context_bytes;
    s->lim.max_new_tokens_limit = cfg->max_new_tokens_limit;
    s->lim.default_max_new_tokens = cfg->default_max_new_tokens;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->fb_lock, NULL);
    pthread_mutex_init(&s->reload_lock, NULL);
    /* Monotonic condition variables: batch deadlines come from dp_time_mono. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->sched_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->idle_cv, NULL);
    dp_rng_seed(&s->rng, cfg->seed);
    s->t_start = dp_time_mono();
    DpStatus st;
    if (oom) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = make_metrics(s, err))) goto fail;
    if ((st = serve_feedback_init(s, err))) goto fail;
    if (s->cfg.registry_dir && (st = registry_open(s->cfg.registry_dir, &s->registry, err)))
        goto fail;
    char dir[4096], ver[64];
    if ((st = locate_model(s, NULL, s->cfg.model_dir, dir, sizeof dir, ver, sizeof ver, err)) ||
        (st = serve_model_load(dir, ver, s->cfg.max_batch, s->cfg.max_context, &s->current, err)))
        goto fail;
    set_model_info(s, NULL, s->current);
    metric_inc(s->m_reloads, 1);
    *out = s;
    return DP_OK;
fail:
    serve_destroy(s);
    return st;
}

DpStatus serve_start(Serve *s, int *port, DpError *err) {
    if (s->started) return dp_fail(err, DP_ERR_STATE, "serve_start: already started");
    s->sched_quit = 0;
    if (pthread_create(&s->sched, NULL, serve_sched_main, s) != 0)
        return dp_fail(err, DP_ERR_STATE, "cannot start the scheduler thread");
    s->sched_started = 1;
    DpStatus st = serve_http_start(s, err);
    if (st) {
        pthread_mutex_lock(&s->lock);
        s->sched_quit = 1;
        pthread_cond_signal(&s->sched_cv);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->sched, NULL);
        s->sched_started = 0;
        return st;
    }
    s->started = 1;
    if (port) *port = s->port;
    dp_info("serve: listening on http://%s:%d (model %s, target %s, batching %s)",
            s->cfg.listen_host, s->port, s->current->version, s->cfg.target,
            s->cfg.batching ? "on" : "off");
    return DP_OK;
}

void serve_stop(Serve *s) {
    if (!s || !s->started || s->stopped) return;
    s->stopped = 1;
    serve_http_quiesce(s);
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    double deadline = dp_time_mono() + s->cfg.drain_timeout_s;
    while (s->inflight > 0 && dp_time_mono() < deadline) {
        pthread_mutex_unlock(&s->lock);
        dp_sleep(0.005);
        pthread_mutex_lock(&s->lock);
    }
    if (s->inflight > 0)
        dp_warn("serve: %d requests still in flight after the drain timeout", s->inflight);
    pthread_mutex_unlock(&s->lock);
    /* Closes idle keep-alive connections and joins the connection threads. */
    serve_http_stop(s);
    pthread_mutex_lock(&s->lock);
    s->sched_quit = 1;
    pthread_cond_signal(&s->sched_cv);
    pthread_mutex_unlock(&s->lock);
    if (s->sched_started) pthread_join(s->sched, NULL);
    s->sched_started = 0;
    serve_feedback_sync(s);
    dp_info("serve: stopped");
}
