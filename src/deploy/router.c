/* The router: one HTTP front door for the serving targets.
 *
 * libmicrohttpd runs a thread per connection, so a slow backend (or an
 * emulated network distance, which is a sleep) holds only its own request.
 * A forward is one HTTP request to the chosen target through the metrics
 * part's client, with a deadline.
 *
 * Health: a background thread GETs every target's /healthz each interval and
 * keeps a healthy flag per target; a forward that gets no answer (connect or
 * read failure, or 502/503/504) also marks its target unhealthy at once, so
 * a dead target is noticed by the first request that hits it.  When the
 * active target is unhealthy the router fails over to the first healthy one
 * (counted in router_failovers_total) and stays there until told otherwise
 * (POST /admin/route) or until that one fails too.  A /predict whose forward
 * failed is retried once on another healthy target; a /feedback is not
 * (it is not safe to send twice).  When no target is healthy the active one
 * is tried anyway, as a last resort, so a router without a health thread
 * recovers when the target comes back. */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "deploy_impl.h"
#include "metrics.h"

typedef struct {
    RouterTarget cfg;
    atomic_int healthy;
    Metric *up_g, *active_g;
    Metric *fwd_h;
} RTarget;

struct Router {
    RouterConfig rc;
    RTarget t[DEPLOY_MAX_TARGETS];
    int n;
    atomic_int active;
    pthread_mutex_t switch_mu;     /* serialises failover/admin switches */
    struct MHD_Daemon *d;
    int port;
    MetricsRegistry *reg;
    MetricFamily *req_total;
    Metric *failovers;
    pthread_t health;
    int health_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
};

typedef struct {
    DpBuf body;
    int too_big;
} ReqCtx;

// ---- config helpers ----

void router_config_defaults(RouterConfig *rc) {
    memset(rc, 0, sizeof *rc);
    strcpy(rc->listen_host, "127.0.0.1");
    rc->health_interval_s = 1.0;
    rc->health_timeout_s = 0.5;
    rc->forward_timeout_s = 10.0;
    rc->max_body_bytes = 1 << 20;
}

static DpStatus add_target(RouterConfig *rc, const char *name, const char *url, double dist,
                           DpError *err) {
    if (rc->n_targets == DEPLOY_MAX_TARGETS)
        return dp_fail(err, DP_ERR_INVAL, "router: at most %d targets", DEPLOY_MAX_TARGETS);
    if (!deploy_name_ok(name))
        return dp_fail(err, DP_ERR_INVAL,
                       "router: target name must be lower-case letters, digits and '-': \"%s\"",
                       name);
    if (strncmp(url, "http://", 7) || !url[7])
        return dp_fail(err, DP_ERR_INVAL, "router: target %s: url must be http://host:port, got \"%s\"",
                       name, url);
    if (!(dist >= 0 && dist <= 60000))
        return dp_fail(err, DP_ERR_INVAL, "router: target %s: distance must be in [0, 60000] ms",
                       name);
    for (int i = 0; i < rc->n_targets; i++)
        if (!strcmp(rc->targets[i].name, name))
            return dp_fail(err, DP_ERR_INVAL, "router: target %s given twice", name);
    RouterTarget *t = &rc->targets[rc->n_targets];
    size_t n = strlen(url);
    while (n > 7 && url[n - 1] == '/') n--; /* forwards append "/predict" */
    if (!deploy_copy(t->name, sizeof t->name, name) || n >= sizeof t->url)
        return dp_fail(err, DP_ERR_INVAL, "router: target %s: name or url too long", name);
    memcpy(t->url, url, n);
    t->url[n] = 0;
    t->distance_ms = dist;
    rc->n_targets++;
    return DP_OK;
}

DpStatus router_config_add_target(RouterConfig *rc, const char *spec, DpError *err) {
    char buf[DEPLOY_STR_MAX + DEPLOY_NAME_MAX + 32];
    if (!deploy_copy(buf, sizeof buf, spec))
        return dp_fail(err, DP_ERR_INVAL, "router: target spec too long");
    char *eq = strchr(buf, '=');
    if (!eq)
        return dp_fail(err, DP_ERR_INVAL, "router: expected name=url[,distance_ms], got \"%s\"",
                       spec);
    *eq = 0;
    char *url = eq + 1;
    double dist = 0;
    char *comma = strrchr(url, ',');
    if (comma) {
        char *end;
        dist = strtod(comma + 1, &end);
        if (end == comma + 1 || *end)
            return dp_fail(err, DP_ERR_INVAL,
                           "router: target %s: distance must be a number of ms, got \"%s\"", buf,
                           comma + 1);
        *comma = 0;
    }
    return add_target(rc, buf, url, dist, err);
}

DpStatus router_config_set_listen(RouterConfig *rc, const char *s, DpError *err) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof rc->listen_host)
        return dp_fail(err, DP_ERR_INVAL, "router: listen must be host:port, got \"%s\"", s);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port < 0 || port > 65535)
        return dp_fail(err, DP_ERR_INVAL, "router: listen port must be 0..65535, got \"%s\"", s);
    memcpy(rc->listen_host, s, (size_t)(colon - s));
    rc->listen_host[colon - s] = 0;
    rc->port = (int)port;
    return DP_OK;
}

DpStatus router_config_from_deploy(const DeployConfig *cfg, RouterConfig *rc, DpError *err) {
    router_config_defaults(rc);
    DpStatus st = router_config_set_listen(rc, cfg->router.listen, err);
    if (st != DP_OK) return st;
    for (int i = 0; i < cfg->n_targets; i++) {
        const DeployTarget *t = &cfg->targets[i];
        if ((st = add_target(rc, t->name, t->service_url, t->network_distance_ms, err)) != DP_OK)
            return st;
    }
    snprintf(rc->active, sizeof rc->active, "%s", cfg->router.active);
    rc->emulate_distance = cfg->router.emulate_distance;
    rc->health_interval_s = cfg->router.health_interval_s;
    rc->health_timeout_s = cfg->router.health_timeout_s;
    rc->forward_timeout_s = cfg->router.forward_timeout_s;
    rc->max_body_bytes = (size_t)cfg->router.max_body_bytes;
    if (cfg->router.admin_token_file[0]) {
        char *text = NULL;
        size_t len = 0;
        if ((st = dp_read_file(cfg->router.admin_token_file, &text, &len, err)) != DP_OK)
            return dp_error_wrap(err, "router: admin token file");
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
            text[--len] = 0;
        int ok = len > 0 && deploy_copy(rc->admin_token, sizeof rc->admin_token, text);
        free(text);
        if (!ok)
            return dp_fail(err, DP_ERR_INVAL, "router: admin token file %s: empty or too long",
                           cfg->router.admin_token_file);
    }
    return DP_OK;
}

// ---- state ----

static void set_active_locked(Router *r, int idx) {
    int old = atomic_load(&r->active);
    if (old >= 0) metric_set(r->t[old].active_g, 0);
    atomic_store(&r->active, idx);
    metric_set(r->t[idx].active_g, 1);
}

static void mark(Router *r, int idx, int healthy) {
    atomic_store(&r->t[idx].healthy, healthy);
    metric_set(r->t[idx].up_g, healthy);
}

/* When the active target is unhealthy, switch to the first healthy one. */
static void maybe_failover(Router *r) {
    pthread_mutex_lock(&r->switch_mu);
    int a = atomic_load(&r->active);
    if (!atomic_load(&r->t[a].healthy)) {
        for (int i = 0; i < r->n; i++) {
            if (i != a && atomic_load(&r->t[i].healthy)) {
                set_active_locked(r, i);
                metric_inc(r->failovers, 1);
                dp_warn("router: target %s is down, failing over to %s", r->t[a].cfg.name,
                        r->t[i].cfg.name);
                break;
            }
        }
    }
    pthread_mutex_unlock(&r->switch_mu);
}

static int check_one(Router *r, int i) {
    char url[DEPLOY_STR_MAX + 16];
    snprintf(url, sizeof url, "%s/healthz", r->t[i].cfg.url);
    char *body = NULL;
    int code = 0;
    DpError e;
    DpStatus st = metrics_http_get(url, r->rc.health_timeout_s > 0 ? r->rc.health_timeout_s : 0.5,
                                   &body, NULL, &code, &e);
    free(body);
    return st == DP_OK && code == 200;
}

static void *health_main(void *arg) {
    Router *r = arg;
    for (;;) {
        for (int i = 0; i < r->n; i++) {
            int ok = check_one(r, i);
            if (ok != atomic_load(&r->t[i].healthy))
                dp_info("router: target %s is %s", r->t[i].cfg.name, ok ? "up" : "down");
            mark(r, i, ok);
        }
        maybe_failover(r);
        pthread_mutex_lock(&r->mu);
        if (!r->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            double s = r->rc.health_interval_s;
            ts.tv_sec += (time_t)s;
            ts.tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
        int stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop) return NULL;
    }
}

// ---- responses ----

static enum MHD_Result reply(struct MHD_Connection *c, int code, const char *ctype,
                             const char *body, size_t len, const char *target) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (target) MHD_add_response_header(resp, "X-Driftpilot-Target", target);
    if (code == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, int code, json_t *j,
                                  const char *target) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) return reply(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25, NULL);
    enum MHD_Result ret = reply(c, code, "application/json", s, strlen(s), target);
    free(s);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, int code, const char *msg) {
    return reply_json(c, code, json_pack("{ss}", "error", msg), NULL);
}

static void count(Router *r, const char *route, const char *target, int code) {
    char cs[16];
    snprintf(cs, sizeof cs, "%d", code);
    metric_inc(metrics_with(r->req_total, route, target, cs), 1);
}

// ---- handlers ----

/* One forward; returns the backend's status, or -1 when it did not answer. */
static int forward_once(Router *r, int idx, const char *path, const ReqCtx *rq, char **body,
                        size_t *blen) {
    RTarget *t = &r->t[idx];
    char url[DEPLOY_STR_MAX + 32];
    snprintf(url, sizeof url, "%s%s", t->cfg.url, path);
    double t0 = dp_time_mono();
    if (r->rc.emulate_distance && t->cfg.distance_ms > 0) dp_sleep(t->cfg.distance_ms / 1000.0);
    int code = 0;
    DpError e;
    DpStatus st = metrics_http_request("POST", url, "Content-Type: application/json\r\n",
                                       rq->body.data ? rq->body.data : "", rq->body.len,
                                       r->rc.forward_timeout_s, body, blen, &code, &e);
    metric_observe(t->fwd_h, dp_time_mono() - t0);
    if (st != DP_OK) {
        dp_warn("router: forward to %s failed: %s", t->cfg.name, e.msg);
        free(*body);
        *body = NULL;
        return -1;
    }
    return code;
}

static int pick(Router *r, int exclude) {
    maybe_failover(r);
    int a = atomic_load(&r->active);
    if (a != exclude && atomic_load(&r->t[a].healthy)) return a;
    for (int i = 0; i < r->n; i++)
        if (i != exclude && atomic_load(&r->t[i].healthy)) return i;
    return a != exclude ? a : -1; /* last resort: nothing is known healthy */
}

static enum MHD_Result handle_forward(Router *r, struct MHD_Connection *c, const char *path,
                                      const ReqCtx *rq) {
    int tries = !strcmp(path, "/predict") ? 2 : 1;
    int idx = pick(r, -1), last = -1;
    for (int attempt = 0; attempt < tries && idx >= 0; attempt++) {
        char *body = NULL;
        size_t blen = 0;
        int code = forward_once(r, idx, path, rq, &body, &blen);
        if (code > 0 && code != 502 && code != 503 && code != 504) {
            count(r, path, r->t[idx].cfg.name, code);
            enum MHD_Result ret =
                reply(c, code, "application/json", body, blen, r->t[idx].cfg.name);
            free(body);
            return ret;
        }
        free(body);
        count(r, path, r->t[idx].cfg.name, code > 0 ? code : 502);
        mark(r, idx, 0);
        last = idx;
        if (attempt + 1 < tries) idx = pick(r, idx);
    }
    json_t *j = json_pack("{ss}", "error",
                          last >= 0 ? "the target did not answer" : "no healthy target");
    if (last >= 0) json_object_set_new(j, "target", json_string(r->t[last].cfg.name));
    return reply_json(c, last >= 0 ? 502 : 503, j, NULL);
}

static int token_ok(const char *want, const char *got) {
    size_t n = strlen(want), m = strlen(got);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < m; i++) diff |= (unsigned char)(got[i] ^ want[i % (n ? n : 1)]);
    return n > 0 && diff == 0;
}

static enum MHD_Result handle_admin(Router *r, struct MHD_Connection *c, const ReqCtx *rq) {
    if (!r->rc.admin_token[0]) {
        count(r, "/admin/route", "-", 403);
        return reply_error(c, 403, "admin endpoint disabled: no admin token configured");
    }
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7) || !token_ok(r->rc.admin_token, auth + 7)) {
        count(r, "/admin/route", "-", 401);
        return reply_error(c, 401, auth ? "bad bearer token" : "missing bearer token");
    }
    json_error_t je;
    json_t *j = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len, 0, &je);
    json_t *tv = j ? json_object_get(j, "target") : NULL;
    if (!j || !json_is_object(j) || !json_is_string(tv)) {
        json_decref(j);
        count(r, "/admin/route", "-", 400);
        return reply_error(c, 400, "expected a JSON body {\"target\": \"<name>\"}");
    }
    char prev[DEPLOY_NAME_MAX];
    router_active(r, prev, sizeof prev);
    DpError e;
    if (router_set_active(r, json_string_value(tv), &e) != DP_OK) {
        json_decref(j);
        count(r, "/admin/route", "-", 400);
        return reply_error(c, 400, e.msg);
    }
    json_decref(j);
    int a = atomic_load(&r->active);
    count(r, "/admin/route", r->t[a].cfg.name, 200);
    return reply_json(c, 200,
                      json_pack("{sssssb}", "active", r->t[a].cfg.name, "previous", prev, "healthy",
                                atomic_load(&r->t[a].healthy)),
                      NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
    Router *r = cls;
    ReqCtx *rq = *con_cls;
    if (!rq) {
        rq = dp_calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        *con_cls = rq;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > r->rc.max_body_bytes) rq->too_big = 1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!rq->too_big && rq->body.len + *upload_data_size > r->rc.max_body_bytes) {
            rq->too_big = 1;
            dp_buf_free(&rq->body);
        }
        if (!rq->too_big && dp_buf_append(&rq->body, upload_data, *upload_data_size) != DP_OK)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rq->too_big) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body over the limit of %zu bytes", r->rc.max_body_bytes);
        count(r, "other", "-", 413);
        return reply_error(c, 413, msg);
    }
    int is_get = !strcmp(method, "GET"), is_post = !strcmp(method, "POST");
    if (!strcmp(url, "/predict") || !strcmp(url, "/feedback")) {
        if (!is_post) return reply_error(c, 405, "use POST");
        return handle_forward(r, c, url, rq);
    }
    if (!strcmp(url, "/admin/route")) {
        if (!is_post) return reply_error(c, 405, "use POST");
        return handle_admin(r, c, rq);
    }
    if (!strcmp(url, "/metrics")) {
        if (!is_get) return reply_error(c, 405, "use GET");
        DpBuf out = DP_BUF_INIT;
        count(r, "/metrics", "-", 200);
        if (metrics_render(r->reg, &out) != DP_OK) {
            dp_buf_free(&out);
            return reply_error(c, 500, "out of memory");
        }
        enum MHD_Result ret =
            reply(c, 200, METRICS_CONTENT_TYPE, out.data ? out.data : "", out.len, NULL);
        dp_buf_free(&out);
        return ret;
    }
    if (!strcmp(url, "/healthz")) {
        if (!is_get) return reply_error(c, 405, "use GET");
        int healthy = 0;
        for (int i = 0; i < r->n; i++) healthy += atomic_load(&r->t[i].healthy);
        int a = atomic_load(&r->active);
        count(r, "/healthz", "-", healthy ? 200 : 503);
        return reply_json(c, healthy ? 200 : 503,
                          json_pack("{sssssi}", "status", healthy ? "ok" : "no healthy target",
                                    "active", r->t[a].cfg.name, "healthy_targets", healthy),
                          NULL);
    }
    count(r, "other", "-", 404);
    char msg[160];
    snprintf(msg, sizeof msg, "no route %s %.100s", method, url);
    return reply_error(c, 404, msg);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    ReqCtx *rq = *con_cls;
    if (rq) {
        dp_buf_free(&rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

// ---- lifecycle ----

Router *router_create(const RouterConfig *rc, DpError *err) {
    if (rc->n_targets < 1) {
        dp_fail(err, DP_ERR_INVAL, "router: no targets");
        return NULL;
    }
    Router *r = dp_calloc(1, sizeof *r);
    if (!r) {
        dp_fail(err, DP_ERR_NOMEM, "router: out of memory");
        return NULL;
    }
    r->rc = *rc;
    if (r->rc.max_body_bytes == 0) r->rc.max_body_bytes = 1 << 20;
    if (!(r->rc.forward_timeout_s > 0)) r->rc.forward_timeout_s = 10;
    r->n = rc->n_targets;
    atomic_store(&r->active, -1);
    pthread_mutex_init(&r->switch_mu, NULL);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    MetricFamily *fam;
    const char *rl[] = {"route", "target", "code"};
    const char *tl[] = {"target"};
    static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,  0.5,    1,     2.5,  5,     10};
    if (!(r->reg = metrics_registry_create())) {
        dp_fail(err, DP_ERR_NOMEM, "router: out of memory");
        goto fail;
    }
    if (metrics_counter_new(r->reg, "router_requests_total",
                            "Requests answered by the router, by route, target and status code.",
                            3, rl, &r->req_total, err) != DP_OK)
        goto fail;
    if (metrics_counter_new(r->reg, "router_failovers_total",
                            "Times the active target was switched because it stopped answering.",
                            0, NULL, &fam, err) != DP_OK)
        goto fail;
    r->failovers = metrics_with(fam);
    MetricFamily *hist, *up, *act;
    if (metrics_histogram_new(r->reg, "router_forward_duration_seconds",
                              "Time to forward a request and get the answer, including any "
                              "emulated network distance.",
                              1, tl, buckets, (int)(sizeof buckets / sizeof buckets[0]), &hist,
                              err) != DP_OK ||
        metrics_gauge_new(r->reg, "router_target_up", "1 when the target answers its health check.",
                          1, tl, &up, err) != DP_OK ||
        metrics_gauge_new(r->reg, "router_active_target",
                          "1 for the target that receives traffic, 0 for the others.", 1, tl, &act,
                          err) != DP_OK ||
        metrics_register_process_collector(r->reg, err) != DP_OK)
        goto fail;
    int active = 0;
    for (int i = 0; i < r->n; i++) {
        r->t[i].cfg = rc->targets[i];
        atomic_store(&r->t[i].healthy, 1); /* until a check says otherwise */
        r->t[i].up_g = metrics_with(up, rc->targets[i].name);
        r->t[i].active_g = metrics_with(act, rc->targets[i].name);
        r->t[i].fwd_h = metrics_with(hist, rc->targets[i].name);
        metric_set(r->t[i].up_g, 1);
        if (rc->active[0] && !strcmp(rc->active, rc->targets[i].name)) active = i;
    }
    if (rc->active[0] && strcmp(rc->targets[active].name, rc->active)) {
        dp_fail(err, DP_ERR_INVAL, "router: active target \"%s\" is not one of the targets",
                rc->active);
        goto fail;
    }
    set_active_locked(r, active);
    return r;
fail:
    router_destroy(r);
    return NULL;
}

DpStatus router_start(Router *r, DpError *err) {
    if (r->d) return dp_fail(err, DP_ERR_STATE, "router: already started");
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)r->rc.port);
    const char *host = !strcmp(r->rc.listen_host, "localhost") ? "127.0.0.1" : r->rc.listen_host;
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return dp_fail(err, DP_ERR_INVAL, "router: listen address must be an IPv4 address, got \"%s\"",
                       r->rc.listen_host);
    r->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_POLL,
                            0, NULL, NULL, handle, r, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, r,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
    if (!r->d)
        return dp_fail(err, DP_ERR_IO, "router: cannot listen on %s:%d (in use, or not allowed)",
                       r->rc.listen_host, r->rc.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT);
    r->port = info ? info->port : r->rc.port;
    if (r->rc.health_interval_s > 0) {
        r->stopping = 0;
        if (pthread_create(&r->health, NULL, health_main, r) != 0) {
            MHD_stop_daemon(r->d);
            r->d = NULL;
            return dp_fail(err, DP_ERR_STATE, "router: cannot start the health thread");
        }
        r->health_started = 1;
    }
    return DP_OK;
}

int router_port(const Router *r) {
    return r->port;
}

DpStatus router_set_active(Router *r, const char *name, DpError *err) {
    for (int i = 0; i < r->n; i++) {
        if (!strcmp(r->t[i].cfg.name, name)) {
            pthread_mutex_lock(&r->switch_mu);
            set_active_locked(r, i);
            pthread_mutex_unlock(&r->switch_mu);
            dp_info("router: active target is now %s", name);
            return DP_OK;
        }
    }
    return dp_fail(err, DP_ERR_INVAL, "unknown target \"%s\"", name);
}

void router_active(Router *r, char *out, size_t cap) {
    int a = atomic_load(&r->active);
    snprintf(out, cap, "%s", a >= 0 ? r->t[a].cfg.name : "");
}

double router_failovers(const Router *r) {
    return metric_value(r->failovers);
}

void router_stop(Router *r) {
    if (!r) return;
    if (r->health_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->health, NULL);
        r->health_started = 0;
    }
    if (r->d) {
        MHD_stop_daemon(r->d);
        r->d = NULL;
    }
}

void router_destroy(Router *r) {
    if (!r) return;
    router_stop(r);
    metrics_registry_destroy(r->reg);
    pthread_mutex_destroy(&r->switch_mu);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
