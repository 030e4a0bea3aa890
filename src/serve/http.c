/* The HTTP side of the service: libmicrohttpd with a thread per connection,
 * routing, body limits, and the handlers of /predict, /feedback, /healthz,
 * /metrics and /admin/reload.  Every answer that is not 200 is a JSON object
 * {"error": "..."} naming the problem; every answer is counted by route and
 * code and timed by route. */
#include "serve_impl.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qa.h"

typedef struct {
    DpBuf body;
    int too_big;
    double t0;
} ReqCtx;

static const char *route_name(const char *url) {
    static const char *routes[] = {"/predict", "/feedback", "/healthz", "/metrics",
                                   "/admin/reload"};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i])) return routes[i];
    return "other"; /* bounded label cardinality: unknown paths share one series */
}

static enum MHD_Result reply(Serve *s, struct MHD_Connection *c, const ReqCtx *rq,
                             const char *route, int code, const char *ctype, const char *body,
                             size_t len, const char *allow) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (code == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (allow) MHD_add_response_header(resp, "Allow", allow);
    if (code == 503) MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    char codes[8];
    snprintf(codes, sizeof codes, "%d", code);
    metric_inc(metrics_with(s->f_requests, route, codes), 1);
    metric_observe(metrics_with(s->f_duration, route), dp_time_mono() - rq->t0);
    return ret;
}

static enum MHD_Result reply_json(Serve *s, struct MHD_Connection *c, const ReqCtx *rq,
                                  const char *route, int code, json_t *j, const char *allow) {
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text) return MHD_NO;
    enum MHD_Result ret =
        reply(s, c, rq, route, code, "application/json", text, strlen(text), allow);
    free(text);
    return ret;
}

static enum MHD_Result reply_error(Serve *s, struct MHD_Connection *c, const ReqCtx *rq,
                                   const char *route, int code, const char *msg,
                                   const char *allow) {
    return reply_json(s, c, rq, route, code, json_pack("{s:s}", "error", msg), allow);
}

/* 413 for an oversized body, 400 for anything else the parser refused. */
static int parse_error_code(const DpError *err) {
    return strncmp(err->msg, "body too large", 14) == 0 ? 413 : 400;
}

// ---- /predict ----

static enum MHD_Result handle_predict(Serve *s, struct MHD_Connection *c, ReqCtx *rq) {
    const char *route = "/predict";
    DpError err = {0};
    ServePredictRequest pr;
    if (serve_parse_predict(rq->body.data, rq->body.len, &s->lim, &pr, &err) != DP_OK)
        return reply_error(s, c, rq, route, parse_error_code(&err), err.msg, NULL);
    ServeModel *m = serve_model_acquire(s);
    enum MHD_Result ret;
    char *prompt = NULL, *text = NULL, *answer = NULL;
    ServeJob job;
    memset(&job, 0, sizeof job);
    pthread_cond_init(&job.cv, NULL);
    if (!m) {
        ret = reply_error(s, c, rq, route, 503, "no model loaded", NULL);
        goto out;
    }
    size_t need = qa_prompt_format(pr.question, pr.context, NULL, 0) + 1;
    prompt = dp_malloc(need);
    if (!prompt) {
        ret = reply_error(s, c, rq, route, 500, "out of memory", NULL);
        goto out;
    }
    qa_prompt_format(pr.question, pr.context, prompt, need);
    size_t n_ids = 0;
    if (bpe_encode(m->tok, prompt, strlen(prompt), 0, &job.prompt, &n_ids, &err) != DP_OK) {
        ret = reply_error(s, c, rq, route, 500, err.msg, NULL);
        goto out;
    }
    if ((int)n_ids > m->max_ctx - 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "prompt too long: %zu tokens (limit %d for this model)", n_ids,
                 m->max_ctx - 1);
        ret = reply_error(s, c, rq, route, 400, msg, NULL);
        goto out;
    }
    job.n_prompt = (int)n_ids;
    job.model = m;
    job.samp = gpt2_sampling_default();
    job.samp.max_new_tokens = pr.max_new_tokens;
    job.samp.temperature = (float)pr.temperature;
    job.samp.top_k = pr.top_k;
    job.samp.top_p = (float)pr.top_p;
    job.samp.eos_id = m->eot_id;
    job.out = dp_malloc((size_t)pr.max_new_tokens * sizeof(int));
    if (!job.out) {
        ret = reply_error(s, c, rq, route, 500, "out of memory", NULL);
        goto out;
    }
    metric_inc(s->m_prompt_tokens, (double)n_ids);
    if (serve_sched_run(s, &job) != DP_OK) {
        ret =
            reply_error(s, c, rq, route, job.status == DP_ERR_STATE ? 503 : 500, job.errmsg, NULL);
        goto out;
    }
    /* Ids the model knows but the tokenizer does not (a model vocabulary
     * padded past the tokenizer's) are dropped rather than failing. */
    int tv = bpe_vocab_size(m->tok), k = 0;
    for (int i = 0; i < job.n_out; i++)
        if (job.out[i] < tv) job.out[k++] = job.out[i];
    size_t tlen = 0;
    if (bpe_decode_text(m->tok, job.out, (size_t)k, &text, &tlen, &err) != DP_OK) {
        ret = reply_error(s, c, rq, route, 500, err.msg, NULL);
        goto out;
    }
    answer = dp_malloc(tlen + 1);
    if (!answer) {
        ret = reply_error(s, c, rq, route, 500, "out of memory", NULL);
        goto out;
    }
    qa_answer_extract(text, answer, tlen + 1);
    char id[48];
    serve_feedback_remember(s, pr.question, pr.context, answer, m->version, id, sizeof id);
    double latency_ms = (dp_time_mono() - rq->t0) * 1000.0;
    ret = reply_json(s, c, rq, route, 200,
                     json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:f}", "id", id, "answer", answer,
                               "model_version", m->version, "target", s->cfg.target,
                               "prompt_tokens", job.n_prompt, "completion_tokens", job.n_out,
                               "latency_ms", latency_ms),
                     NULL);
out:
    pthread_cond_destroy(&job.cv);
    free(job.prompt);
    free(job.out);
    free(prompt);
    free(text);
    free(answer);
    serve_model_release(s, m);
    serve_predict_request_free(&pr);
    return ret;
}

// ---- /feedback ----

static enum MHD_Result handle_feedback(Serve *s, struct MHD_Connection *c, ReqCtx *rq) {
    const char *route = "/feedback";
    DpError err = {0};
    ServeFeedbackRequest fb;
    if (serve_parse_feedback(rq->body.data, rq->body.len, &s->lim, &fb, &err) != DP_OK)
        return reply_error(s, c, rq, route, parse_error_code(&err), err.msg, NULL);
    double sc[3];
    int window = 0;
    DpStatus st = serve_feedback_apply(s, &fb, sc, &window, &err);
    serve_feedback_request_free(&fb);
    if (st == DP_ERR_INVAL) return reply_error(s, c, rq, route, 404, err.msg, NULL);
    if (st) return reply_error(s, c, rq, route, 500, err.msg, NULL);
    return reply_json(s, c, rq, route, 200,
                      json_pack("{s:b, s:f, s:f, s:f, s:i}", "ok", 1, "bleu1", sc[0], "exact_match",
                                sc[1], "f1", sc[2], "window", window),
                      NULL);
}

// ---- /admin/reload ----

/* Compares without an early exit, so the time taken does not reveal how
 * much of the token a guess got right. */
static int token_equal(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[lb ? i % lb : 0]);
    return diff == 0;
}

static enum MHD_Result handle_reload(Serve *s, struct MHD_Connection *c, ReqCtx *rq) {
    const char *route = "/admin/reload";
    if (!s->cfg.admin_token || !*s->cfg.admin_token)
        return reply_error(s, c, rq, route, 403,
                           "admin routes are disabled: no admin token configured", NULL);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return reply_error(s, c, rq, route, 401, "missing bearer token (Authorization: Bearer ...)",
                           NULL);
    if (!token_equal(auth + 7, s->cfg.admin_token))
        return reply_error(s, c, rq, route, 401, "wrong bearer token", NULL);
    DpError err = {0};
    ServeReloadRequest rr;
    if (serve_parse_reload(rq->body.data, rq->body.len, &s->lim, &rr, &err) != DP_OK)
        return reply_error(s, c, rq, route, parse_error_code(&err), err.msg, NULL);
    char before[64], after[64];
    serve_current_version(s, before, sizeof before);
    DpStatus st = serve_reload(s, rr.version, rr.model_dir, after, sizeof after, &err);
    serve_reload_request_free(&rr);
    if (st) return reply_error(s, c, rq, route, st == DP_ERR_NOMEM ? 500 : 400, err.msg, NULL);
    return reply_json(
        s, c, rq, route, 200,
        json_pack("{s:b, s:s, s:s}", "ok", 1, "model_version", after, "previous", before), NULL);
}

// ---- /healthz, /metrics ----

static enum MHD_Result handle_healthz(Serve *s, struct MHD_Connection *c, ReqCtx *rq) {
    ServeModel *m = serve_model_acquire(s);
    int ready = m != NULL;
    enum MHD_Result ret =
        reply_json(s, c, rq, "/healthz", ready ? 200 : 503,
                   json_pack("{s:s, s:b, s:s, s:s, s:s, s:f}", "status",
                             ready ? "ok" : "no model loaded", "ready", ready, "model_version",
                             m ? m->version : "", "model_dir", m ? m->dir : "", "target",
                             s->cfg.target, "uptime_s", dp_time_mono() - s->t_start),
                   NULL);
    serve_model_release(s, m);
    return ret;
}

static enum MHD_Result handle_metrics(Serve *s, struct MHD_Connection *c, ReqCtx *rq) {
    /* Counted before rendering so a scrape sees itself; the duration of this
     * scrape lands in the next one. */
    DpBuf out = DP_BUF_INIT;
    if (metrics_render(s->metrics, &out) != DP_OK) {
        dp_buf_free(&out);
        return reply_error(s, c, rq, "/metrics", 500, "out of memory", NULL);
    }
    enum MHD_Result ret = reply(s, c, rq, "/metrics", 200, METRICS_CONTENT_TYPE,
                                out.data ? out.data : "", out.len, NULL);
    dp_buf_free(&out);
    return ret;
}

// ---- dispatch ----

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
    Serve *s = cls;
    ReqCtx *rq = *con_cls;
    if (!rq) {
        rq = dp_calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        rq->t0 = dp_time_mono();
        *con_cls = rq;
        pthread_mutex_lock(&s->lock);
        s->inflight++;
        pthread_mutex_unlock(&s->lock);
        metric_add(s->m_inflight, 1);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->lim.max_body_bytes) {
            /* Answered before the body is read (no 100-continue is sent, and
             * MHD closes the connection after the answer), so a client
             * announcing a huge body cannot make us read it. */
            rq->too_big = 1;
            char msg[96];
            snprintf(msg, sizeof msg, "body too large (limit %zu bytes)", s->lim.max_body_bytes);
            return reply_error(s, c, rq, route_name(url), 413, msg, NULL);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* Past the limit the rest is read and dropped (bounded by the
         * connection timeout), then answered 413. */
        if (!rq->too_big && rq->body.len + *upload_data_size > s->lim.max_body_bytes) {
            rq->too_big = 1;
            dp_buf_free(&rq->body);
        }
        if (!rq->too_big && dp_buf_append(&rq->body, upload_data, *upload_data_size) != DP_OK)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    const char *route = route_name(url);
    pthread_mutex_lock(&s->lock);
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->lock);
    if (stopping) return reply_error(s, c, rq, route, 503, "shutting down", NULL);
    if (rq->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "body too large (limit %zu bytes)", s->lim.max_body_bytes);
        return reply_error(s, c, rq, route, 413, msg, NULL);
    }
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_post = !strcmp(method, "POST");
    if (!strcmp(route, "other")) {
        char msg[200];
        snprintf(msg, sizeof msg, "no route %.16s %.120s", method, url);
        return reply_error(s, c, rq, "other", 404, msg, NULL);
    }
    if (!strcmp(route, "/predict") || !strcmp(route, "/feedback") ||
        !strcmp(route, "/admin/reload")) {
        if (!is_post) {
            char msg[96];
            snprintf(msg, sizeof msg, "method %.16s not allowed on %s: use POST", method, route);
            return reply_error(s, c, rq, route, 405, msg, "POST");
        }
        if (!strcmp(route, "/predict")) return handle_predict(s, c, rq);
        if (!strcmp(route, "/feedback")) return handle_feedback(s, c, rq);
        return handle_reload(s, c, rq);
    }
    if (!is_get) {
        char msg[96];
        snprintf(msg, sizeof msg, "method %.16s not allowed on %s: use GET", method, route);
        return reply_error(s, c, rq, route, 405, msg, "GET, HEAD");
    }
    if (!strcmp(route, "/healthz")) return handle_healthz(s, c, rq);
    return handle_metrics(s, c, rq);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    Serve *s = cls;
    ReqCtx *rq = *con_cls;
    if (!rq) return;
    dp_buf_free(&rq->body);
    free(rq);
    *con_cls = NULL;
    metric_add(s->m_inflight, -1);
    pthread_mutex_lock(&s->lock);
    s->inflight--;
    pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->lock);
}

DpStatus serve_http_start(Serve *s, DpError *err) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s->cfg.port);
    const char *host = !strcmp(s->cfg.listen_host, "localhost") ? "127.0.0.1" : s->cfg.listen_host;
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return dp_fail(err, DP_ERR_INVAL, "listen address must be an IPv4 address, got \"%s\"",
                       s->cfg.listen_host);
    s->daemon =
        MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_POLL | MHD_USE_ITC,
                         0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)s->cfg.connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)s->cfg.connection_limit, MHD_OPTION_LISTEN_BACKLOG_SIZE,
                         (unsigned)256, MHD_OPTION_END);
    if (!s->daemon)
        return dp_fail(err, DP_ERR_IO, "cannot listen on %s:%d (in use, or not allowed)",
                       s->cfg.listen_host, s->cfg.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->cfg.port;
    return DP_OK;
}

/* Closes the listening socket: no new connections from here on. */
void serve_http_quiesce(Serve *s) {
    if (!s->daemon) return;
    /* MHD says: close the returned socket only after MHD_stop_daemon.
     * Connections attempted meanwhile wait in the backlog and are reset
     * when it closes. */
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) s->quiesced_fd = fd;
}

void serve_http_stop(Serve *s) {
    if (!s->daemon) return;
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->quiesced_fd >= 0) close(s->quiesced_fd);
    s->quiesced_fd = -1;
}
