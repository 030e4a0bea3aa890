/* Tests of the live controller against fake services (threads serving a
 * /metrics page the test controls and /admin/reload) and a fake retrain job
 * (this very program re-executed as `test_control fake-retrain ...`, which
 * sleeps, then publishes a copy of a model dir with the registry API), so
 * nothing here waits on the real inference service or trainer.  The
 * Prometheus case runs a real Prometheus (scripts/prometheus-local.sh)
 * scraping the fake services every second. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "metrics.h"
#include "store.h"
#include "test.h"
#include "train.h"

// ---- fake inference service ----

typedef struct {
    int lfd, port;
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    double t0;
    double req_rate, cpu_rate, rss, acc, bleu, f1, lat_mean;
    double acc_after_reload;     /* < 0: unchanged by a reload */
    double fb_total, fb_window;  /* llm_feedback_total / _window_size; < 0: not exposed */
    int metrics_503;
    int reloads;
    char version[32];
    char auth[160];
} FakeSvc;

static void svc_metrics(FakeSvc *s, DpBuf *b) {
    pthread_mutex_lock(&s->mu);
    double el = dp_time_wall() - s->t0;
    double n = 1000 + s->req_rate * el; /* offsets keep Prometheus' extrapolation off zero */
    dp_buf_printf(b,
                  "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.17g\n"
                  "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %.17g\n"
                  "# TYPE http_requests_total counter\n"
                  "http_requests_total{route=\"/predict\",code=\"200\"} %.17g\n"
                  "http_requests_total{route=\"/predict\",code=\"400\"} 7\n"
                  "http_requests_total{route=\"/metrics\",code=\"200\"} 3\n"
                  "# TYPE http_request_duration_seconds histogram\n"
                  "http_request_duration_seconds_bucket{route=\"/predict\",le=\"+Inf\"} %.17g\n"
                  "http_request_duration_seconds_sum{route=\"/predict\"} %.17g\n"
                  "http_request_duration_seconds_count{route=\"/predict\"} %.17g\n"
                  "# TYPE llm_accuracy gauge\nllm_accuracy %.17g\n"
                  "# TYPE llm_bleu gauge\nllm_bleu %.17g\n# TYPE llm_f1 gauge\nllm_f1 %.17g\n"
                  "# TYPE llm_queue_depth gauge\nllm_queue_depth 2\n",
                  100 + s->cpu_rate * el, s->rss, n, n, n * s->lat_mean, n, s->acc, s->bleu, s->f1);
    if (s->fb_total >= 0)
        dp_buf_printf(b, "# TYPE llm_feedback_total counter\nllm_feedback_total %.17g\n"
                         "# TYPE llm_feedback_window_size gauge\nllm_feedback_window_size %.17g\n",
                      s->fb_total, s->fb_window);
    pthread_mutex_unlock(&s->mu);
}

static void svc_handle(FakeSvc *s, int fd) {
    char req[8192];
    size_t got = 0;
    double end = dp_time_mono() + 2;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            if (dp_time_mono() > end) return;
            continue;
        }
        ssize_t r = read(fd, req + got, sizeof req - 1 - got);
        if (r <= 0) return;
        got += (size_t)r;
        req[got] = 0;
        char *he = strstr(req, "\r\n\r\n");
        if (!he) continue;
        char *cl = strcasestr(req, "Content-Length:");
        size_t want = cl && cl < he ? (size_t)atol(cl + 15) : 0;
        if (got >= (size_t)(he + 4 - req) + want) break;
    }
    DpBuf body = DP_BUF_INIT;
    int code = 200;
    const char *ctype = "application/json";
    if (!strncmp(req, "GET /metrics", 12)) {
        pthread_mutex_lock(&s->mu);
        int fail = s->metrics_503;
        pthread_mutex_unlock(&s->mu);
        if (fail) {
            code = 503;
            dp_buf_printf(&body, "{\"error\":\"unavailable\"}");
        } else {
            svc_metrics(s, &body);
            ctype = "text/plain; version=0.0.4";
        }
    } else if (!strncmp(req, "GET /healthz", 12)) {
        dp_buf_printf(&body, "{\"status\":\"ok\"}");
    } else if (!strncmp(req, "POST /admin/reload", 18)) {
        char *au = strcasestr(req, "Authorization:");
        char *v = strstr(req, "\"version\":\"");
        pthread_mutex_lock(&s->mu);
        if (au) snprintf(s->auth, sizeof s->auth, "%.*s", (int)strcspn(au + 15, "\r"), au + 15);
        if (!au || !strstr(au, "Bearer sekret")) {
            code = 401;
            dp_buf_printf(&body, "{\"error\":\"bad token\"}");
        } else if (v) {
            snprintf(s->version, sizeof s->version, "%.*s", (int)strcspn(v + 11, "\""), v + 11);
            s->reloads++;
            if (s->acc_after_reload >= 0) s->acc = s->bleu = s->acc_after_reload;
            dp_buf_printf(&body, "{\"version\":\"%s\"}", s->version);
        } else {
            code = 400;
            dp_buf_printf(&body, "{\"error\":\"no version\"}");
        }
        pthread_mutex_unlock(&s->mu);
    } else {
        code = 404;
        dp_buf_printf(&body, "{\"error\":\"not found\"}");
    }
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      code, ctype, body.len);
    if (write(fd, hdr, (size_t)hl) < 0 || (body.len && write(fd, body.data, body.len) < 0)) {
    }
    dp_buf_free(&body);
}

static void *svc_main(void *arg) {
    FakeSvc *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        svc_handle(s, fd);
        close(fd);
    }
    return NULL;
}

static int svc_start(FakeSvc *s, double acc) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->t0 = dp_time_wall();
    s->req_rate = 40;
    s->cpu_rate = 0.25;
    s->rss = 512.0 * 1048576;
    s->acc = acc;
    s->bleu = acc + 0.05;
    s->f1 = acc + 0.02;
    s->lat_mean = 0.05;
    s->acc_after_reload = -1;
    s->fb_total = s->fb_window = -1;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) || listen(s->lfd, 64) ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al))
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->th, NULL, svc_main, s);
}

/* Stops answering: the listening socket is closed, so connects are refused. */
static void svc_kill(FakeSvc *s) {
    if (s->lfd < 0) return;
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    s->lfd = -1;
}

// ---- fake retrain job ----

/* test_control fake-retrain MODE SLEEP REGISTRY RECORD MODEL_DIR FROM */
static int fake_retrain(int argc, char **argv) {
    if (argc < 8) return 2;
    const char *mode = argv[2];
    dp_sleep(atof(argv[3]));
    if (!strcmp(mode, "fail")) return 3;
    if (!strcmp(mode, "hang")) {
        dp_sleep(1000);
        return 0;
    }
    char v[REGISTRY_ID_MAX] = "";
    if (!strcmp(mode, "ok")) {
        Registry *reg = NULL;
        DpError err = {0};
        RegistryPublishInfo info = {.parent = argv[7], .data_fingerprint = "fake"};
        if (registry_open(argv[4], &reg, &err) || registry_publish(reg, argv[6], &info, v, &err)) {
            fprintf(stderr, "fake-retrain: %s\n", err.msg);
            registry_close(reg);
            return 1;
        }
        registry_close(reg);
    }
    FILE *f = fopen(argv[5], "w");
    if (f) {
        fprintf(f, "{\"version\":\"%s\",\"gate_passed\":%s,\"from\":\"%s\"}\n", v,
                v[0] ? "true" : "false", argv[7]);
        fclose(f);
    }
    return 0;
}

// ---- fixture ----

typedef struct {
    char dir[256];
    char model[300];
    char self[512];
    FakeSvc svc[2];
    DeployConfig dc;
    ControlConfig cc;
} Fix;

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Two targets (aws serving, azure) backed by fake services, a registry with
 * v000001 current on both, and a controller config: 60 s decisions at
 * 600x (0.1 s wall), the fake retrain in mode `mode`. */
static int fix_init(Fix *fx, const char *mode, double job_sleep, double acc) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/dp_test_control_XXXXXX");
    if (!mkdtemp(fx->dir)) return -1;
    ssize_t n = readlink("/proc/self/exe", fx->self, sizeof fx->self - 1);
    if (n <= 0) return -1;
    fx->self[n] = 0;
    snprintf(fx->model, sizeof fx->model, "%s/model", fx->dir);
    mkdir(fx->model, 0755);
    char p[400];
    snprintf(p, sizeof p, "%s/config.json", fx->model);
    write_text(p, "{\"n_layer\": 1}\n");
    snprintf(p, sizeof p, "%s/model.safetensors", fx->model);
    write_text(p, "not really weights\n");
    if (svc_start(&fx->svc[0], acc) || svc_start(&fx->svc[1], acc)) return -1;

    DeployConfig *d = &fx->dc;
    deploy_config_defaults(d);
    d->n_targets = 2;
    const char *names[] = {"aws", "azure"};
    for (int k = 0; k < 2; k++) {
        DeployTarget *t = &d->targets[k];
        deploy_target_defaults(t);
        snprintf(t->name, sizeof t->name, "%s", names[k]);
        snprintf(t->service_url, sizeof t->service_url, "http://127.0.0.1:%d", fx->svc[k].port);
        snprintf(t->workdir, sizeof t->workdir, "%s", fx->dir);
        t->price_per_gpu_hour = k == 0 ? 360 : 180;
        t->gpu_count = 2;
        t->cpus = 2;
#if defined(__SANITIZE_ADDRESS__)
        /* RLIMIT_AS (memory_mb on a local target) would starve an ASan child
         * of its shadow memory: normalise by the host's memory instead */
        t->memory_mb = 0;
#else
        t->memory_mb = 2048;
#endif
    }
    d->control.decision_interval_s = 60;
    d->control.time_scale = 600;
    snprintf(d->control.registry_dir, sizeof d->control.registry_dir, "%s/registry", fx->dir);
    snprintf(d->control.store_path, sizeof d->control.store_path, "%s/ctl.db", fx->dir);
    d->control.job_time_limit_s = 10;
    d->control.rollback_margin = 0.1;
    d->control.rollback_window_s = 600;
    snprintf(d->metrics.source, sizeof d->metrics.source, "direct");
    d->router.listen[0] = 0;
    snprintf(d->router.active, sizeof d->router.active, "aws");

    Registry *reg = NULL;
    DpError err = {0};
    char v[REGISTRY_ID_MAX];
    RegistryPublishInfo info = {0};
    if (registry_open(d->control.registry_dir, &reg, &err) ||
        registry_publish(reg, fx->model, &info, v, &err) || registry_promote(reg, v, "aws", &err) ||
        registry_promote(reg, v, "azure", &err)) {
        fprintf(stderr, "fixture registry: %s\n", err.msg);
        registry_close(reg);
        return -1;
    }
    registry_close(reg);

    control_config_init(&fx->cc, d);
    snprintf(fx->cc.admin_token, sizeof fx->cc.admin_token, "sekret");
    snprintf(fx->cc.run_id, sizeof fx->cc.run_id, "t1");
    snprintf(fx->cc.retrain_command, sizeof fx->cc.retrain_command,
             "%s fake-retrain %s %g {registry} {record} %s {from}", fx->self, mode, job_sleep,
             fx->model);
    return 0;
}

static void fix_free(Fix *fx) {
    svc_kill(&fx->svc[0]);
    svc_kill(&fx->svc[1]);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (fx->dir[0] && system(cmd)) {
    }
}

/* 512 MiB over memory_mb, or over the host's MemTotal when it is 0. */
static double expected_memory(const Fix *fx) {
    if (fx->dc.targets[0].memory_mb > 0) return 512.0 / fx->dc.targets[0].memory_mb;
    FILE *f = fopen("/proc/meminfo", "r");
    double kb = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return 512.0 * 1024 / kb;
}

static void wall_sleep_intervals(const Fix *fx, double k) {
    dp_sleep(k * fx->dc.control.decision_interval_s / fx->dc.control.time_scale);
}

// ---- readers of the store ----

#define MAXROWS 64
typedef struct {
    int n;
    char status[MAXROWS][16];
    double duration[MAXROWS], cost[MAXROWS];
    char target[MAXROWS][16];
} Jobs;
static int job_cb(const StoreJob *j, void *u) {
    Jobs *J = u;
    if (J->n >= MAXROWS) return 1;
    snprintf(J->status[J->n], 16, "%s", j->status ? j->status : "");
    snprintf(J->target[J->n], 16, "%s", j->target ? j->target : "");
    J->duration[J->n] = j->duration_s;
    J->cost[J->n] = j->cost;
    J->n++;
    return 0;
}

typedef struct {
    int n;
    int executed[MAXROWS];
    char action[MAXROWS][48];
    char reason[MAXROWS][512];
    char error[MAXROWS][256];
} Decisions;
static int dec_cb(const StoreDecision *d, void *u) {
    Decisions *D = u;
    if (D->n >= MAXROWS) return 1;
    D->executed[D->n] = d->executed;
    snprintf(D->action[D->n], 48, "%s", d->action ? d->action : "");
    snprintf(D->reason[D->n], 512, "%s", d->reason ? d->reason : "");
    snprintf(D->error[D->n], 256, "%s", d->error ? d->error : "");
    D->n++;
    return 0;
}

typedef struct {
    int n;
    char kind[MAXROWS][16], version[MAXROWS][16], target[MAXROWS][16];
} Deps;
static int dep_cb(const StoreDeployment *d, void *u) {
    Deps *D = u;
    if (D->n >= MAXROWS) return 1;
    snprintf(D->kind[D->n], 16, "%s", d->kind);
    snprintf(D->version[D->n], 16, "%s", d->version ? d->version : "");
    snprintf(D->target[D->n], 16, "%s", d->target ? d->target : "");
    D->n++;
    return 0;
}

static void read_store(const Fix *fx, Jobs *J, Decisions *D, Deps *P) {
    Store *st = NULL;
    DpError err = {0};
    if (store_open(fx->dc.control.store_path, &st, &err)) {
        fprintf(stderr, "store: %s\n", err.msg);
        return;
    }
    if (J) memset(J, 0, sizeof *J), store_each_job(st, NULL, job_cb, J, &err);
    if (D) memset(D, 0, sizeof *D), store_each_decision(st, NULL, dec_cb, D, &err);
    if (P) memset(P, 0, sizeof *P), store_each_deployment(st, NULL, dep_cb, P, &err);
    store_close(st);
}

static void current(const Fix *fx, const char *target, char out[REGISTRY_ID_MAX]) {
    Registry *reg = NULL;
    DpError err = {0};
    out[0] = 0;
    if (!registry_open(fx->dc.control.registry_dir, &reg, &err)) registry_current(reg, target, out, &err);
    registry_close(reg);
}

/* Value of one sample of the controller's own metrics (NaN when absent). */
static double own_metric(Control *c, const char *name, const char *l1, const char *v1) {
    DpBuf b = DP_BUF_INIT;
    MetricsParsed p = {0};
    DpError err = {0};
    double v = NAN;
    if (control_metrics_render(c, &b) == DP_OK && metrics_parse(b.data, b.len, &p, &err) == DP_OK) {
        const char *kv[] = {l1, v1};
        const MetricSample *s = metrics_parsed_find(&p, name, l1 ? kv : NULL, l1 ? 1 : 0);
        if (s) v = s->value;
    }
    metrics_parsed_free(&p);
    dp_buf_free(&b);
    return v;
}

// ---- tests ----

static void test_execute_and_record(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.05, 0.7) == 0);
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "static:100m:aws");
    snprintf(fx.cc.listen, sizeof fx.cc.listen, "127.0.0.1:0");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.executed, 1);
    EXPECT_EQ_INT(info.stale, 0);
    EXPECT_STREQ(info.action_name, "retrain+redeploy@aws");
    EXPECT_NEAR(info.obs.accuracy, 0.7, 1e-9);
    EXPECT_NEAR(info.obs.memory, expected_memory(&fx), 1e-9); /* 512 MiB of 2048 */
    EXPECT(control_wait_idle(c, 20));
    wall_sleep_intervals(&fx, 1);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    /* second read: rates from two scrapes */
    EXPECT_NEAR(info.obs.request_rate, 40, 2);
    EXPECT_NEAR(info.obs.latency_ms, 50, 0.5);
    EXPECT_NEAR(info.obs.cpu, 0.125, 0.01); /* 0.25 CPU-s/s over 2 CPUs */
    EXPECT_NEAR(info.obs.queue, 2, 1e-9);
    EXPECT_EQ_INT(info.obs.redeploy_count, 1);
    EXPECT_STREQ(info.action_name, "nothing");

    char v[REGISTRY_ID_MAX];
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000002");
    current(&fx, "azure", v);
    EXPECT_STREQ(v, "v000001");
    EXPECT_STREQ(fx.svc[0].version, "v000002");
    EXPECT_EQ_INT(fx.svc[0].reloads, 1);
    EXPECT_STREQ(fx.svc[0].auth, "Bearer sekret");
    EXPECT_EQ_INT(fx.svc[1].reloads, 0);
    EXPECT_EQ_INT(control_serving(c), 0);

    /* own /metrics over HTTP */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", control_metrics_port(c));
    char *body = NULL;
    int status = 0;
    EXPECT(metrics_http_get(url, 5, &body, NULL, &status, &err) == DP_OK);
    EXPECT_EQ_INT(status, 200);
    EXPECT(body && strstr(body, "driftpilot_decisions_total{action=\"retrain+redeploy@aws\",executed=\"true\"} 1"));
    EXPECT(body && strstr(body, "llm_retrain_total{target=\"aws\",trigger=\"static\"} 1"));
    EXPECT(body && strstr(body, "driftpilot_decision_duration_seconds_count 2"));
    free(body);
    EXPECT_NEAR(own_metric(c, "llm_static_retrain_total", NULL, NULL), 1, 0);
    EXPECT_NEAR(own_metric(c, "driftpilot_redeploys_total", NULL, NULL), 1, 0);
    EXPECT_NEAR(own_metric(c, "llm_rl_redeploy_total", NULL, NULL), 0, 0);
    control_destroy(c);

    Jobs J;
    Decisions D;
    Deps P;
    read_store(&fx, &J, &D, &P);
    EXPECT_EQ_INT(J.n, 1);
    EXPECT_STREQ(J.status[0], "ok");
    EXPECT_EQ_INT(D.n, 2);
    EXPECT_EQ_INT(D.executed[0], 1);
    EXPECT(strstr(D.reason[0], "job 1 started on aws from v000001") != NULL);
    EXPECT_EQ_INT(P.n, 1);
    EXPECT_STREQ(P.kind[0], "deploy");
    EXPECT_STREQ(P.version[0], "v000002");
    Store *st = NULL;
    int64_t n = 0;
    REQUIRE(store_open(fx.dc.control.store_path, &st, &err) == DP_OK);
    EXPECT(store_count(st, "states", "t1", &n, &err) == DP_OK && n == 2);
    EXPECT(store_count(st, "metric_samples", "t1", &n, &err) == DP_OK && n == 40); /* 2 steps x 2 targets x 10 */
    EXPECT(store_count(st, "costs", "t1", &n, &err) == DP_OK && n == 1);
    /* the CSV export the CLI uses */
    char csv[400];
    snprintf(csv, sizeof csv, "%s/decisions.csv", fx.dir);
    FILE *f = fopen(csv, "w");
    REQUIRE(f != NULL);
    EXPECT(store_export_csv(st, "decisions", NULL, f, &err) == DP_OK);
    fclose(f);
    store_close(st);
    char *text = NULL;
    size_t len = 0;
    EXPECT(dp_read_file(csv, &text, &len, &err) == DP_OK);
    EXPECT(text && strstr(text, "retrain+redeploy@aws"));
    free(text);
    fix_free(&fx);
}

/* After one deploy: traffic on `serving`, the registry's current versions of
 * aws and azure, the serving service reloaded with its version and the other
 * never reloaded. */
static void expect_served(Fix *fx, Control *c, int serving, const char *aws_v, const char *azure_v) {
    EXPECT_EQ_INT(control_serving(c), serving);
    EXPECT_STREQ(fx->svc[serving].version, serving ? azure_v : aws_v);
    EXPECT_EQ_INT(fx->svc[1 - serving].reloads, 0);
    char v[REGISTRY_ID_MAX];
    current(fx, "aws", v);
    EXPECT_STREQ(v, aws_v);
    current(fx, "azure", v);
    EXPECT_STREQ(v, azure_v);
}

static void test_switch_target_via_router(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.05, 0.7) == 0);
    RouterConfig rc;
    router_config_defaults(&rc);
    char spec[128];
    DpError err = {0};
    for (int k = 0; k < 2; k++) {
        snprintf(spec, sizeof spec, "%s=%s", fx.dc.targets[k].name, fx.dc.targets[k].service_url);
        REQUIRE(router_config_add_target(&rc, spec, &err) == DP_OK);
    }
    snprintf(rc.active, sizeof rc.active, "aws");
    snprintf(rc.admin_token, sizeof rc.admin_token, "sekret");
    rc.health_interval_s = 0;
    Router *r = router_create(&rc, &err);
    REQUIRE(r != NULL);
    REQUIRE(router_start(r, &err) == DP_OK);
    snprintf(fx.cc.router_url, sizeof fx.cc.router_url, "http://127.0.0.1:%d", router_port(r));
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "static:100m:azure");
    Control *c = NULL;
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.executed, 1);
    EXPECT(control_wait_idle(c, 20));
    char active[64];
    router_active(r, active, sizeof active);
    EXPECT_STREQ(active, "azure");
    expect_served(&fx, c, 1, "v000001", "v000002");
    control_destroy(c);
    router_destroy(r);
    fix_free(&fx);
}

/* actions = "pairs": a policy trains on azure and the model serves on aws,
 * where traffic already is (no switch, azure keeps its version). */
static void test_train_elsewhere_serve_here(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.05, 0.7) == 0);
    snprintf(fx.cc.deploy.policy.actions, sizeof fx.cc.deploy.policy.actions, "pairs");
    fx.cc.deploy.targets[1].retrain_cost = 0.038;
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "static:100m:azure");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.executed, 1);
    EXPECT_STREQ(info.action_name, "retrain@azure+deploy@aws");
    EXPECT_NEAR(info.obs.accuracy_mean, 0.7, 1e-9); /* one reading so far */
    EXPECT(strstr(info.reason, "to serve on aws") != NULL);
    EXPECT(control_wait_idle(c, 20));
    expect_served(&fx, c, 0, "v000002", "v000001");
    /* the job ran, and was charged, on azure */
    EXPECT_NEAR(own_metric(c, "driftpilot_cost_total", "target", "azure"), 0.038, 1e-12);
    EXPECT_NEAR(own_metric(c, "driftpilot_cost_total", "target", "aws"), 0, 0);
    control_destroy(c);
    Jobs J;
    read_store(&fx, &J, NULL, NULL);
    EXPECT_EQ_INT(J.n, 1);
    EXPECT_STREQ(J.target[0], "azure");
    fix_free(&fx);
}

typedef struct {
    double aws;
    int64_t n;
} CostTot;
static int cost_cb(const char *t, double total, int64_t n, void *u) {
    CostTot *c = u;
    if (!strcmp(t, "aws")) c->aws = total, c->n = n;
    return 0;
}

static void test_costs_add_up(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.15, 0.7) == 0);
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "always:aws");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    for (int i = 0; i < 3; i++) {
        ControlStepInfo info;
        REQUIRE(control_step(c, &info, &err) == DP_OK);
        EXPECT_EQ_INT(info.executed, 1);
        EXPECT(control_wait_idle(c, 20));
    }
    double metric = own_metric(c, "driftpilot_cost_total", "target", "aws");
    control_destroy(c);
    Jobs J;
    read_store(&fx, &J, NULL, NULL);
    EXPECT_EQ_INT(J.n, 3);
    double sum = 0, sum_dur = 0;
    for (int i = 0; i < J.n; i++) {
        EXPECT_STREQ(J.status[i], "ok");
        EXPECT(J.duration[i] >= 0.15);
        /* gpu-hours: duration/3600 x 360 per GPU-hour x 2 GPUs */
        EXPECT_NEAR(J.cost[i], J.duration[i] / 3600 * 360 * 2, 1e-12);
        sum += J.cost[i];
        sum_dur += J.duration[i];
    }
    EXPECT_NEAR(sum, sum_dur * 0.2, 1e-12);
    EXPECT_NEAR(metric, sum, 1e-9);
    Store *st = NULL;
    REQUIRE(store_open(fx.dc.control.store_path, &st, &err) == DP_OK);
    CostTot tot = {0, 0};
    EXPECT(store_cost_by_target(st, "t1", cost_cb, &tot, &err) == DP_OK);
    EXPECT_NEAR(tot.aws, sum, 1e-12);
    EXPECT_EQ_INT(tot.n, 3);
    store_close(st);
    char v[REGISTRY_ID_MAX];
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000004");
    fix_free(&fx);

    /* the study's flat cost per retrain */
    REQUIRE(fix_init(&fx, "ok", 0.01, 0.7) == 0);
    fx.cc.deploy.targets[1].retrain_cost = 0.038;
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "always:azure");
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT(control_wait_idle(c, 20));
    EXPECT_NEAR(own_metric(c, "driftpilot_cost_total", "target", "azure"), 0.038, 1e-12);
    EXPECT_NEAR(own_metric(c, "driftpilot_cost_total", "target", "aws"), 0, 0);
    control_destroy(c);
    fix_free(&fx);
}

static void test_failed_and_hung_jobs(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "fail", 0.05, 0.7) == 0);
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "always:aws");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT(control_wait_idle(c, 20));
    EXPECT_NEAR(own_metric(c, "driftpilot_retrain_failures_total", "status", "failed"), 1, 0);
    control_destroy(c);
    Jobs J;
    read_store(&fx, &J, NULL, NULL);
    EXPECT_EQ_INT(J.n, 1);
    EXPECT_STREQ(J.status[0], "failed");
    char v[REGISTRY_ID_MAX];
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000001");
    EXPECT_EQ_INT(fx.svc[0].reloads, 0);
    fix_free(&fx);

    /* a hung job: killed at its time limit; meanwhile a second retrain of
     * the deployment is refused */
    REQUIRE(fix_init(&fx, "hang", 0, 0.7) == 0);
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "always:aws");
    fx.cc.deploy.control.job_time_limit_s = 0.6;
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.executed, 1);
    EXPECT(control_job_running(c));
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.executed, 0);
    EXPECT_MSG(strstr(info.reason, "already running") != NULL, "reason: %s", info.reason);
    EXPECT_EQ_INT(info.obs.job_running, 1);
    EXPECT(control_wait_idle(c, 20));
    control_destroy(c);
    Decisions D;
    read_store(&fx, &J, &D, NULL);
    EXPECT_EQ_INT(J.n, 1);
    EXPECT_STREQ(J.status[0], "timeout");
    EXPECT(J.duration[0] >= 0.6 && J.duration[0] < 5);
    EXPECT_EQ_INT(D.n, 2);
    EXPECT_EQ_INT(D.executed[1], 0);
    EXPECT(strstr(D.error[1], "already running") != NULL);
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000001");
    EXPECT_EQ_INT(fx.svc[0].reloads, 0);
    fix_free(&fx);
}

static void test_killed_target_and_stale(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.01, 0.7) == 0);
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "always:azure");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    svc_kill(&fx.svc[1]); /* azure dies */
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.executed, 0);
    EXPECT_EQ_INT(info.obs.up[0], 1);
    EXPECT_EQ_INT(info.obs.up[1], 0);
    EXPECT(strstr(info.reason, "target azure is down") != NULL);
    EXPECT_EQ_INT(control_job_running(c), 0);
    /* the serving target's metrics fail: fine for 2 intervals, then stale */
    pthread_mutex_lock(&fx.svc[0].mu);
    fx.svc[0].metrics_503 = 1;
    pthread_mutex_unlock(&fx.svc[0].mu);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.stale, 0);
    wall_sleep_intervals(&fx, 2.5);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.stale, 1);
    EXPECT_EQ_INT(info.executed, 0);
    EXPECT_STREQ(info.action_name, "nothing");
    EXPECT(strstr(info.reason, "metrics stale") != NULL && strstr(info.reason, "HTTP 503") != NULL);
    EXPECT_NEAR(own_metric(c, "driftpilot_metrics_stale", NULL, NULL), 1, 0);
    pthread_mutex_lock(&fx.svc[0].mu);
    fx.svc[0].metrics_503 = 0;
    pthread_mutex_unlock(&fx.svc[0].mu);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.stale, 0);
    control_destroy(c);
    Decisions D;
    Jobs J;
    read_store(&fx, &J, &D, NULL);
    EXPECT_EQ_INT(J.n, 0);
    EXPECT_EQ_INT(D.n, 4);
    EXPECT(strstr(D.error[0], "down") != NULL);
    EXPECT(strstr(D.error[2], "metrics stale") != NULL);
    char v[REGISTRY_ID_MAX];
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000001");
    fix_free(&fx);
}

static void test_rollback_bad_version(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.02, 0.8) == 0);
    fx.svc[0].acc_after_reload = 0.3; /* the new version is bad */
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "static:100m:aws");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT(control_wait_idle(c, 20));
    EXPECT_STREQ(fx.svc[0].version, "v000002");
    wall_sleep_intervals(&fx, 1.2);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.rolled_back, 1);
    EXPECT_NEAR(own_metric(c, "driftpilot_rollbacks_total", "target", "aws"), 1, 0);
    control_destroy(c);
    EXPECT_STREQ(fx.svc[0].version, "v000001");
    EXPECT_EQ_INT(fx.svc[0].reloads, 2);
    char v[REGISTRY_ID_MAX];
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000001");
    Deps P;
    read_store(&fx, NULL, NULL, &P);
    EXPECT_EQ_INT(P.n, 2);
    EXPECT_STREQ(P.kind[1], "rollback");
    EXPECT_STREQ(P.version[1], "v000001");
    fix_free(&fx);

    /* a good version (quality held) is kept */
    REQUIRE(fix_init(&fx, "ok", 0.02, 0.8) == 0);
    fx.svc[0].acc_after_reload = 0.75; /* within the 0.1 margin */
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "static:100m:aws");
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT(control_wait_idle(c, 20));
    wall_sleep_intervals(&fx, 1.2);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.rolled_back, 0);
    control_destroy(c);
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000002");
    fix_free(&fx);
}

/* A job that started from a version which was rolled back while it ran
 * must not deploy its child of the bad version. */
static void test_no_deploy_on_rolled_back_base(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.5, 0.8) == 0);
    fx.svc[0].acc_after_reload = 0.3; /* every new version is bad */
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "always:aws");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK); /* job 1 -> v000002, deployed */
    EXPECT(control_wait_idle(c, 20));
    EXPECT_STREQ(fx.svc[0].version, "v000002");
    REQUIRE(control_step(c, &info, &err) == DP_OK); /* job 2 from v000002 (not judged yet) */
    EXPECT_EQ_INT(info.executed, 1);
    wall_sleep_intervals(&fx, 1.2);
    REQUIRE(control_step(c, &info, &err) == DP_OK); /* v000002 judged bad: rollback */
    EXPECT_EQ_INT(info.rolled_back, 1);
    EXPECT(control_wait_idle(c, 20)); /* job 2 publishes v000003 (child of v000002) */
    control_destroy(c);
    char v[REGISTRY_ID_MAX];
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000001");
    EXPECT_STREQ(fx.svc[0].version, "v000001");
    EXPECT_EQ_INT(fx.svc[0].reloads, 2); /* v000002, then back to v000001 */
    Deps P;
    read_store(&fx, NULL, NULL, &P);
    EXPECT_EQ_INT(P.n, 2);
    fix_free(&fx);
}

static void svc_set(FakeSvc *s, double acc, double fb_total, double fb_window) {
    pthread_mutex_lock(&s->mu);
    s->acc = s->bleu = acc;
    s->fb_total = fb_total;
    s->fb_window = fb_window;
    pthread_mutex_unlock(&s->mu);
}

/* With the service's label counter the controller judges the new version
 * on the labels that arrived after the deploy, not on the whole window
 * (which still holds the old version's labels). */
static void test_rollback_from_fresh_labels(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.02, 0.8) == 0);
    svc_set(&fx.svc[0], 0.8, 1000, 100); /* a full window of 100 labels at 0.8 */
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "static:100m:aws");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT(control_wait_idle(c, 20));
    EXPECT_STREQ(fx.svc[0].version, "v000002");
    /* 10 fresh labels: too few to judge (20 needed), whatever they say */
    svc_set(&fx.svc[0], 0.77, 1010, 100);
    wall_sleep_intervals(&fx, 1.2);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.rolled_back, 0);
    /* 20 fresh labels at 0.5: the window reads (80 x 0.8 + 20 x 0.5) / 100
     * = 0.74, within the margin, but the fresh labels are 0.5: roll back */
    svc_set(&fx.svc[0], 0.74, 1020, 100);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.rolled_back, 1);
    control_destroy(c);
    char v[REGISTRY_ID_MAX];
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000001");
    EXPECT_STREQ(fx.svc[0].version, "v000001");
    fix_free(&fx);

    /* the same window with fresh labels at 0.78 (window 0.796): kept */
    REQUIRE(fix_init(&fx, "ok", 0.02, 0.8) == 0);
    svc_set(&fx.svc[0], 0.8, 1000, 100);
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "static:100m:aws");
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT(control_wait_idle(c, 20));
    svc_set(&fx.svc[0], 0.796, 1020, 100);
    wall_sleep_intervals(&fx, 1.2);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.rolled_back, 0);
    control_destroy(c);
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000002");
    fix_free(&fx);
}

/* Before the first label the service's scores are unknown: the controller
 * keeps serving and says why, without asking the policy (static would
 * retrain at once), then decides normally once labels have arrived. */
static void test_unjudged_model_is_kept(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.02, 0.8) == 0);
    svc_set(&fx.svc[0], NAN, 0, 0);
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "static:100m:aws");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    ControlStepInfo info;
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.executed, 0);
    EXPECT_EQ_INT(info.stale, 0);
    EXPECT_STREQ(info.action_name, "nothing");
    EXPECT_MSG(strstr(info.reason, "quality unknown") != NULL, "%s", info.reason);
    EXPECT(isnan(info.obs.accuracy));
    EXPECT(control_wait_idle(c, 5));
    char v[REGISTRY_ID_MAX];
    current(&fx, "aws", v);
    EXPECT_STREQ(v, "v000001");
    EXPECT_EQ_INT(fx.svc[0].reloads, 0);
    svc_set(&fx.svc[0], 0.8, 10, 10);
    wall_sleep_intervals(&fx, 1.2);
    REQUIRE(control_step(c, &info, &err) == DP_OK);
    EXPECT_EQ_INT(info.executed, 1);
    EXPECT_MSG(strstr(info.action_name, "retrain") != NULL, "%s", info.action_name);
    EXPECT(control_wait_idle(c, 20));
    EXPECT_STREQ(fx.svc[0].version, "v000002");
    control_destroy(c);
    fix_free(&fx);
}

static void test_static_every_n_intervals(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.02, 0.7) == 0);
    /* 0.5 s wall per decision: scheduling jitter stays well under the
     * 10 s scenario slack of the 170 s schedule (every 3 intervals) */
    fx.cc.deploy.control.time_scale = 120;
    snprintf(fx.cc.policy_spec, sizeof fx.cc.policy_spec, "static:170s:aws");
    Control *c = NULL;
    DpError err = {0};
    REQUIRE(control_create(&fx.cc, &c, &err) == DP_OK);
    volatile sig_atomic_t stop = 0;
    REQUIRE(control_run(c, &stop, 400, &err) == DP_OK); /* decisions at 0, 60, ..., 360 */
    EXPECT_NEAR(own_metric(c, "llm_static_retrain_total", NULL, NULL), 3, 0);
    control_destroy(c);
    Jobs J;
    Decisions D;
    read_store(&fx, &J, &D, NULL);
    EXPECT_EQ_INT(D.n, 7);
    EXPECT_EQ_INT(J.n, 3);
    int retrain_at[3] = {-1, -1, -1}, m = 0;
    for (int i = 0; i < D.n; i++)
        if (!strcmp(D.action[i], "retrain+redeploy@aws") && m < 3) retrain_at[m++] = i;
    EXPECT_EQ_INT(retrain_at[0], 0);
    EXPECT_EQ_INT(retrain_at[1], 3);
    EXPECT_EQ_INT(retrain_at[2], 6);
    fix_free(&fx);
}

// ---- Prometheus ----

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    int port = -1;
    if (!bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &al))
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int have_prometheus(void) { return system("command -v prometheus >/dev/null 2>&1") == 0; }

/* Every query of the shipped Grafana dashboard runs on a real Prometheus
 * that scrapes the services with the shipped rules loaded: each one parses
 * and evaluates, the rules are healthy, and each panel on the services'
 * metrics (which the fake services export) has data. */
static void check_dashboard_queries(const char *url) {
    char path[600];
    snprintf(path, sizeof path, "%s/deploy/grafana/driftpilot-dashboard.json", DP_SOURCE_DIR);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    EXPECT_MSG(root != NULL, "%s: line %d: %s", path, je.line, je.text);
    if (!root) return;
    /* the recording rules run every 15 s: wait for their first round */
    double t_end = dp_time_mono() + 40;
    for (;;) {
        PromqlResult r = {0};
        DpError e = {0};
        int have = promql_query(url, "dp_target:predict_latency_seconds:mean1m", 0, &r, &e) == DP_OK &&
                   r.n_series > 0;
        promql_result_free(&r);
        if (have || dp_time_mono() > t_end) break;
        dp_sleep(1);
    }
    int n_expr = 0, n_serve = 0;
    size_t i, j;
    json_t *panel, *target;
    json_array_foreach(json_object_get(root, "panels"), i, panel) {
        json_array_foreach(json_object_get(panel, "targets"), j, target) {
            const char *expr = json_string_value(json_object_get(target, "expr"));
            if (!expr) continue;
            /* Grafana's range variable, as a dashboard over the last 5 minutes sets it */
            char q[1000] = "";
            for (const char *p = expr; *p && strlen(q) < sizeof q - 8; p++) {
                if (!strncmp(p, "$__range", 8)) strcat(q, "5m"), p += 7;
                else strncat(q, p, 1);
            }
            PromqlResult r = {0};
            DpError err = {0};
            DpStatus st = promql_query(url, q, 0, &r, &err);
            EXPECT_MSG(st == DP_OK, "dashboard panel '%s': %s: %s",
                       json_string_value(json_object_get(panel, "title")), q, err.msg);
            n_expr++;
            if (st == DP_OK && (strstr(q, "job=\"driftpilot-serve\"") || strstr(q, "dp_target:"))) {
                EXPECT_MSG(r.n_series >= 1, "dashboard panel '%s': %s: no series",
                           json_string_value(json_object_get(panel, "title")), q);
                n_serve++;
            }
            promql_result_free(&r);
        }
    }
    json_decref(root);
    fprintf(stderr, "  dashboard: %d queries ran, %d on the services had data\n", n_expr, n_serve);
    EXPECT(n_expr >= 20);
    EXPECT(n_serve >= 8);
    /* the recording and alert rules loaded and evaluate without error */
    char rules_url[300];
    snprintf(rules_url, sizeof rules_url, "%s/api/v1/rules", url);
    char *body = NULL;
    int code = 0;
    DpError err = {0};
    EXPECT_MSG(metrics_http_get(rules_url, 10, &body, NULL, &code, &err) == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(code, 200);
    EXPECT(body && strstr(body, "dp_target:predict_latency_seconds:mean1m"));
    EXPECT(body && strstr(body, "\"type\":\"alerting\""));
    EXPECT_MSG(body && !strstr(body, "\"health\":\"err\""), "a rule failed: %.400s", body ? body : "");
    free(body);
}

static void test_prometheus_matches_direct(void) {
    if (!have_prometheus()) {
        const char *skip = getenv("DP_ALLOW_SKIP");
        if (skip && !strcmp(skip, "1")) {
            fprintf(stderr, "  SKIP test_prometheus_matches_direct: prometheus is not installed\n");
            return;
        }
        EXPECT_MSG(0, "prometheus is not installed (apt-get install prometheus), "
                      "set DP_ALLOW_SKIP=1 to skip");
        return;
    }
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.01, 0.62) == 0);
    fx.svc[1].acc = 0.41;
    fx.svc[1].req_rate = 15;
    fx.svc[1].lat_mean = 0.12;
    DpError err = {0};
    /* the generated scrape config, every second */
    DpBuf y = DP_BUF_INIT;
    /* with the shipped rules, so the dashboard's recorded series exist */
    char rec[600], alert[600];
    snprintf(rec, sizeof rec, "%s/deploy/prometheus/recording-rules.yml", DP_SOURCE_DIR);
    snprintf(alert, sizeof alert, "%s/deploy/prometheus/alert-rules.yml", DP_SOURCE_DIR);
    const char *const rules[] = {rec, alert, NULL};
    ControlPromConfigOptions po = {.scrape_interval_s = 1, .rule_files = rules};
    REQUIRE(control_prometheus_config(&fx.dc, &po, &y, &err) == DP_OK);
    char cfg[400], data[400], cmd[1400];
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", fx.dir);
    snprintf(data, sizeof data, "%s/prom", fx.dir);
    REQUIRE(dp_write_file_atomic(cfg, y.data, y.len, &err) == DP_OK);
    dp_buf_free(&y);
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "promtool check config '%s' >/dev/null", cfg);
        EXPECT_MSG(system(cmd) == 0, "promtool check config %s", cfg);
    }
    int port = free_port();
    snprintf(cmd, sizeof cmd, "'%s/scripts/prometheus-local.sh' start '%s' '%s' %d >/dev/null",
             DP_SOURCE_DIR, cfg, data, port);
    REQUIRE(system(cmd) == 0);

    ControlConfig direct = fx.cc, prom = fx.cc;
    snprintf(prom.deploy.metrics.source, sizeof prom.deploy.metrics.source, "prometheus");
    snprintf(prom.deploy.metrics.prometheus_url, sizeof prom.deploy.metrics.prometheus_url,
             "http://127.0.0.1:%d", port);
    prom.rate_window_s = 5;
    snprintf(prom.deploy.control.store_path, sizeof prom.deploy.control.store_path, "%s/prom.db", fx.dir);
    Control *cd = NULL, *cp = NULL;
    SimObservation od, op;
    REQUIRE(control_create(&direct, &cd, &err) == DP_OK);
    if (control_create(&prom, &cp, &err) != DP_OK) {
        EXPECT_MSG(0, "%s", err.msg);
        goto out;
    }
    /* wait until Prometheus holds a full rate window for both targets */
    double t_end = dp_time_mono() + 30;
    for (;;) {
        EXPECT(control_observe(cp, &op, &err) == DP_OK);
        if (op.up[0] && op.up[1] && op.request_rate > 0) break;
        if (dp_time_mono() > t_end) break;
        dp_sleep(0.5);
    }
    EXPECT_MSG(op.up[0] && op.up[1] && op.request_rate > 0, "prometheus never had the targets");
    dp_sleep(5.5);
    EXPECT(control_observe(cd, &od, &err) == DP_OK);
    dp_sleep(2);
    EXPECT(control_observe(cd, &od, &err) == DP_OK);
    EXPECT(control_observe(cp, &op, &err) == DP_OK);
    fprintf(stderr, "  direct: cpu %.4f mem %.4f rate %.3f lat %.3f acc %.3f bleu %.3f f1 %.3f\n",
            od.cpu, od.memory, od.request_rate, od.latency_ms, od.accuracy, od.bleu, od.f1);
    fprintf(stderr, "  promql: cpu %.4f mem %.4f rate %.3f lat %.3f acc %.3f bleu %.3f f1 %.3f\n",
            op.cpu, op.memory, op.request_rate, op.latency_ms, op.accuracy, op.bleu, op.f1);
    EXPECT_EQ_INT(od.up[0], op.up[0]);
    EXPECT_EQ_INT(od.up[1], op.up[1]);
    EXPECT_NEAR(op.cpu, od.cpu, 0.05 * od.cpu + 1e-6);
    EXPECT_NEAR(op.memory, od.memory, 1e-9);
    EXPECT_NEAR(od.memory, expected_memory(&fx), 1e-9);
    EXPECT_NEAR(op.request_rate, od.request_rate, 0.05 * od.request_rate);
    EXPECT_NEAR(op.latency_ms, od.latency_ms, 0.01 * od.latency_ms);
    EXPECT_NEAR(op.accuracy, od.accuracy, 1e-9);
    EXPECT_NEAR(op.bleu, od.bleu, 1e-9);
    EXPECT_NEAR(op.f1, od.f1, 1e-9);
    EXPECT_NEAR(op.queue, od.queue, 1e-9);
    EXPECT_NEAR(od.accuracy, 0.62, 1e-9);
    check_dashboard_queries(prom.deploy.metrics.prometheus_url);

    /* the same history, from range queries, in the replay CSV format */
    char csv[400];
    snprintf(csv, sizeof csv, "%s/states.csv", fx.dir);
    FILE *f = fopen(csv, "w");
    REQUIRE(f != NULL);
    int rows = 0;
    double now = dp_time_wall();
    EXPECT(control_history_csv(prom.deploy.metrics.prometheus_url, "azure", now - 6, now - 1, 1, 5,
                               2048.0 * 1048576, 2, f, &rows, &err) == DP_OK);
    fclose(f);
    EXPECT_EQ_INT(rows, 6);
    char *text = NULL;
    size_t len = 0;
    EXPECT(dp_read_file(csv, &text, &len, &err) == DP_OK);
    const char *hdr = "time,cpu,memory,request_rate,latency_ms,accuracy,bleu,f1,redeploy_count\n";
    EXPECT(text && !strncmp(text, hdr, strlen(hdr)));
    if (text) { /* last row: azure's accuracy and latency */
        char *last = text + len - 2;
        while (last > text && *last != '\n') last--;
        double t, cpu, mem, rate, lat, acc;
        EXPECT(sscanf(last + 1, "%lf,%lf,%lf,%lf,%lf,%lf", &t, &cpu, &mem, &rate, &lat, &acc) == 6);
        EXPECT_NEAR(acc, 0.41, 1e-9);
        EXPECT_NEAR(lat, 120, 1.5);
        EXPECT_NEAR(mem, 0.25, 1e-9);
    }
    free(text);

    /* a killed target reads as down on both paths */
    svc_kill(&fx.svc[1]);
    dp_sleep(2.5);
    EXPECT(control_observe(cd, &od, &err) == DP_OK);
    EXPECT(control_observe(cp, &op, &err) == DP_OK);
    EXPECT_EQ_INT(od.up[1], 0);
    EXPECT_EQ_INT(op.up[1], 0);
    EXPECT_EQ_INT(op.up[0], 1);
out:
    control_destroy(cd);
    control_destroy(cp);
    snprintf(cmd, sizeof cmd, "'%s/scripts/prometheus-local.sh' stop '%s'", DP_SOURCE_DIR, data);
    EXPECT(system(cmd) == 0);
    fix_free(&fx);
}

static void test_shipped_rules_and_config(void) {
    /* the example config and rules in deploy/prometheus pass promtool */
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        const char *skip = getenv("DP_ALLOW_SKIP");
        EXPECT_MSG(skip && !strcmp(skip, "1"), "promtool is not installed; DP_ALLOW_SKIP=1 to skip");
        return;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "cd '%s/deploy/prometheus' && promtool check rules recording-rules.yml alert-rules.yml "
             ">/dev/null && promtool check config prometheus.yml >/dev/null",
             DP_SOURCE_DIR);
    EXPECT_MSG(system(cmd) == 0, "%s", cmd);
    /* the dashboard is JSON with panels */
    char path[600];
    snprintf(path, sizeof path, "%s/deploy/grafana/driftpilot-dashboard.json", DP_SOURCE_DIR);
    char *text = NULL;
    size_t len = 0;
    DpError err = {0};
    EXPECT(dp_read_file(path, &text, &len, &err) == DP_OK);
    EXPECT(text && strstr(text, "\"panels\"") && strstr(text, "llm_bleu"));
    free(text);
}

static void test_config_errors(void) {
    Fix fx;
    REQUIRE(fix_init(&fx, "ok", 0.01, 0.7) == 0);
    Control *c = NULL;
    DpError err = {0};
    ControlConfig cc = fx.cc;
    snprintf(cc.policy_spec, sizeof cc.policy_spec, "oracle");
    EXPECT(control_create(&cc, &c, &err) != DP_OK && c == NULL);
    EXPECT(strstr(err.msg, "oracle") != NULL);
    cc = fx.cc;
    snprintf(cc.policy_spec, sizeof cc.policy_spec, "always:gcp");
    EXPECT(control_create(&cc, &c, &err) != DP_OK);
    cc = fx.cc;
    snprintf(cc.deploy.metrics.source, sizeof cc.deploy.metrics.source, "prometheus");
    cc.deploy.metrics.prometheus_url[0] = 0;
    EXPECT(control_create(&cc, &c, &err) != DP_OK);
    EXPECT(strstr(err.msg, "prometheus_url") != NULL);
    char q[512];
    EXPECT(control_promql_expr("latency_s", "aws", 5, q, sizeof q, &err) == DP_OK);
    EXPECT_STREQ(q, "sum(rate(http_request_duration_seconds_sum{dp_target=\"aws\",route=\"/predict\"}[5000ms])) / "
                    "sum(rate(http_request_duration_seconds_count{dp_target=\"aws\",route=\"/predict\"}[5000ms]))");
    EXPECT(control_promql_expr("nope", "aws", 5, q, sizeof q, &err) != DP_OK);
    DpBuf y = DP_BUF_INIT;
    ControlPromConfigOptions po = {.scrape_interval_s = 0, .controller = "127.0.0.1:9102"};
    EXPECT(control_prometheus_config(&fx.dc, &po, &y, &err) == DP_OK);
    EXPECT(y.data && strstr(y.data, "scrape_interval: 1s")); /* 60 s at 600x = 0.1 s wall: min 1 s */
    EXPECT(y.data && strstr(y.data, "dp_target: \"azure\""));
    EXPECT(y.data && strstr(y.data, "job_name: driftpilot-control"));
    dp_buf_free(&y);
    fix_free(&fx);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "fake-retrain")) return fake_retrain(argc, argv);
    static const TestCase cases[] = {
        TEST_CASE(test_config_errors),
        TEST_CASE(test_execute_and_record),
        TEST_CASE(test_switch_target_via_router),
        TEST_CASE(test_train_elsewhere_serve_here),
        TEST_CASE(test_costs_add_up),
        TEST_CASE(test_failed_and_hung_jobs),
        TEST_CASE(test_killed_target_and_stale),
        TEST_CASE(test_rollback_bad_version),
        TEST_CASE(test_rollback_from_fresh_labels),
        TEST_CASE(test_no_deploy_on_rolled_back_base),
        TEST_CASE(test_unjudged_model_is_kept),
        TEST_CASE(test_static_every_n_intervals),
        TEST_CASE(test_shipped_rules_and_config),
        TEST_CASE(test_prometheus_matches_direct),
    };
    return test_main(cases, (int)(sizeof cases / sizeof cases[0]), argc, argv);
}
