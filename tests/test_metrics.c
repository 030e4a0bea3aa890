/* Tests for src/metrics: the registry and renderer, the exposition parser
 * (hand-written pages and round trips), the process collector, the HTTP
 * client against an in-test loopback server, the PromQL JSON parser and
 * client, and `promtool check metrics` on a realistic page. */
#include "test.h"

#include "metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

// ---- helpers ----

static char *read_data(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics/%s", DP_TEST_DATA, name);
    char *s = NULL;
    DpError err = {0};
    if (dp_read_file(path, &s, len, &err) != DP_OK) {
        fprintf(stderr, "  cannot read %s: %s\n", path, err.msg);
        return NULL;
    }
    return s;
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle); }

// ---- registry and rendering ----

static void test_format_double(void) {
    char b[32];
    EXPECT_STREQ(metrics_format_double(0, b), "0");
    EXPECT_STREQ(metrics_format_double(-0.0, b), "0");
    EXPECT_STREQ(metrics_format_double(1200, b), "1200");
    EXPECT_STREQ(metrics_format_double(-7, b), "-7");
    EXPECT_STREQ(metrics_format_double(0.1, b), "0.1");
    EXPECT_STREQ(metrics_format_double(0.005, b), "0.005");
    EXPECT_STREQ(metrics_format_double(2.5, b), "2.5");
    EXPECT_STREQ(metrics_format_double(1e20, b), "1e+20");
    EXPECT_STREQ(metrics_format_double(1.0 / 3.0, b), "0.3333333333333333");
    EXPECT_STREQ(metrics_format_double(INFINITY, b), "+Inf");
    EXPECT_STREQ(metrics_format_double(-INFINITY, b), "-Inf");
    EXPECT_STREQ(metrics_format_double(NAN, b), "NaN");
    EXPECT_STREQ(metrics_format_double(1764355200.0, b), "1764355200");
    /* Every formatted value reads back exactly. */
    double vals[] = {0.1 + 0.2, 123.456, 1e-9, 6.02214076e23, 9007199254740993.0};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        EXPECT(strtod(metrics_format_double(vals[i], b), NULL) == vals[i]);
}

static void test_name_validation(void) {
    MetricsRegistry *r = metrics_registry_create();
    REQUIRE(r);
    MetricFamily *f = NULL;
    DpError err = {0};
    const char *ok_labels[] = {"route", "code"};
    EXPECT_EQ_INT(metrics_counter_new(r, "requests", "h", 0, NULL, &f, &err), DP_ERR_INVAL);
    EXPECT(contains(err.msg, "_total"));
    EXPECT_EQ_INT(metrics_gauge_new(r, "queue_total", "h", 0, NULL, &f, &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(metrics_gauge_new(r, "job:rate", "h", 0, NULL, &f, &err), DP_ERR_INVAL);
    EXPECT(contains(err.msg, "colons"));
    EXPECT_EQ_INT(metrics_gauge_new(r, "queueDepth", "h", 0, NULL, &f, &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(metrics_gauge_new(r, "1abc", "h", 0, NULL, &f, &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(metrics_gauge_new(r, "", "h", 0, NULL, &f, &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(metrics_gauge_new(r, NULL, "h", 0, NULL, &f, &err), DP_ERR_INVAL);
    const char *bad1[] = {"__reserved"};
    EXPECT_EQ_INT(metrics_gauge_new(r, "g1", "h", 1, bad1, &f, &err), DP_ERR_INVAL);
    const char *bad2[] = {"a-b"};
    EXPECT_EQ_INT(metrics_gauge_new(r, "g1", "h", 1, bad2, &f, &err), DP_ERR_INVAL);
    EXPECT(contains(err.msg, "a-b"));
    const char *dup[] = {"a", "a"};
    EXPECT_EQ_INT(metrics_gauge_new(r, "g1", "h", 2, dup, &f, &err), DP_ERR_INVAL);
    const char *le[] = {"le"};
    EXPECT_EQ_INT(metrics_histogram_new(r, "h1_seconds", "h", 1, le, NULL, 0, &f, &err),
                  DP_ERR_INVAL);
    double badb[] = {1, 0.5};
    EXPECT_EQ_INT(metrics_histogram_new(r, "h1_seconds", "h", 0, NULL, badb, 2, &f, &err),
                  DP_ERR_INVAL);
    EXPECT(contains(err.msg, "increase"));
    double nanb[] = {NAN};
    EXPECT_EQ_INT(metrics_histogram_new(r, "h1_seconds", "h", 0, NULL, nanb, 1, &f, &err),
                  DP_ERR_INVAL);
    /* Valid ones, then duplicates and collisions. */
    EXPECT_EQ_INT(metrics_counter_new(r, "http_requests_total", "h", 2, ok_labels, &f, &err),
                  DP_OK);
    EXPECT_EQ_INT(metrics_counter_new(r, "http_requests_total", "h", 2, ok_labels, &f, &err),
                  DP_ERR_INVAL);
    EXPECT(contains(err.msg, "clashes"));
    EXPECT_EQ_INT(metrics_histogram_new(r, "lat_seconds", "h", 0, NULL, NULL, 0, &f, &err), DP_OK);
    EXPECT_EQ_INT(metrics_gauge_new(r, "lat_seconds_count", "h", 0, NULL, &f, &err),
                  DP_ERR_INVAL);
    EXPECT_EQ_INT(metrics_gauge_new(r, "depth", "h", 0, NULL, &f, &err), DP_OK);
    EXPECT_EQ_INT(metrics_histogram_new(r, "depth_sum", "h", 0, NULL, NULL, 0, &f, &err),
                  DP_ERR_INVAL);
    EXPECT_EQ_INT(metrics_histogram_new(r, "de", "h", 0, NULL, NULL, 0, &f, &err), DP_OK);
    EXPECT(metrics_find(r, "depth") != NULL);
    EXPECT(metrics_find(r, "nope") == NULL);
    metrics_registry_destroy(r);
    metrics_registry_destroy(NULL);
}

static void test_render_exact(void) {
    MetricsRegistry *r = metrics_registry_create();
    REQUIRE(r);
    MetricFamily *req, *bleu, *lat;
    DpError err = {0};
    const char *labels[] = {"route", "code"};
    REQUIRE(metrics_counter_new(r, "http_requests_total", "Requests served.\nBy route\\code.", 2,
                                labels, &req, &err) == DP_OK);
    REQUIRE(metrics_gauge_new(r, "llm_bleu", "Rolling BLEU-1.", 0, NULL, &bleu, &err) == DP_OK);
    double b[] = {0.1, 0.5, 1, INFINITY};
    const char *tl[] = {"target"};
    REQUIRE(metrics_histogram_new(r, "request_duration_seconds", "Latency.", 1, tl, b, 4, &lat,
                                  &err) == DP_OK);
    Metric *ok = metrics_with(req, "/predict", "200");
    metric_inc(ok, 1);
    metric_inc(ok, 2);
    metric_inc(ok, -5); /* ignored: counters never go down */
    metric_inc(ok, NAN);
    EXPECT(metrics_with(req, "/predict", "200") == ok);
    metric_inc(metrics_with(req, "/a\"b\\c\nd", "500"), 1);
    metric_set(metrics_with(bleu), 0.75);
    metric_add(metrics_with(bleu), 0.03);
    Metric *aws = metrics_with(lat, "aws");
    metric_observe(aws, 0.05);
    metric_observe(aws, 0.1); /* le is inclusive */
    metric_observe(aws, 0.7);
    metric_observe(aws, 30);
    EXPECT_NEAR(metric_value(aws), 4, 0);
    EXPECT_NEAR(metric_hist_sum(aws), 30.85, 1e-12);
    metrics_with(lat, "azure"); /* created, never observed */
    DpBuf out = DP_BUF_INIT;
    REQUIRE(metrics_render(r, &out) == DP_OK);
    const char *want =
        "# HELP http_requests_total Requests served.\\nBy route\\\\code.\n"
        "# TYPE http_requests_total counter\n"
        "http_requests_total{route=\"/predict\",code=\"200\"} 3\n"
        "http_requests_total{route=\"/a\\\"b\\\\c\\nd\",code=\"500\"} 1\n"
        "# HELP llm_bleu Rolling BLEU-1.\n"
        "# TYPE llm_bleu gauge\n"
        "llm_bleu 0.78\n"
        "# HELP request_duration_seconds Latency.\n"
        "# TYPE request_duration_seconds histogram\n"
        "request_duration_seconds_bucket{target=\"aws\",le=\"0.1\"} 2\n"
        "request_duration_seconds_bucket{target=\"aws\",le=\"0.5\"} 2\n"
        "request_duration_seconds_bucket{target=\"aws\",le=\"1\"} 3\n"
        "request_duration_seconds_bucket{target=\"aws\",le=\"+Inf\"} 4\n"
        "request_duration_seconds_sum{target=\"aws\"} 30.85\n"
        "request_duration_seconds_count{target=\"aws\"} 4\n"
        "request_duration_seconds_bucket{target=\"azure\",le=\"0.1\"} 0\n"
        "request_duration_seconds_bucket{target=\"azure\",le=\"0.5\"} 0\n"
        "request_duration_seconds_bucket{target=\"azure\",le=\"1\"} 0\n"
        "request_duration_seconds_bucket{target=\"azure\",le=\"+Inf\"} 0\n"
        "request_duration_seconds_sum{target=\"azure\"} 0\n"
        "request_duration_seconds_count{target=\"azure\"} 0\n";
    EXPECT_STREQ(out.data, want);
    dp_buf_free(&out);
    metrics_registry_destroy(r);
}

static void test_null_safety(void) {
    metric_inc(NULL, 1);
    metric_set(NULL, 1);
    metric_observe(NULL, 1);
    EXPECT(metrics_with(NULL) == NULL);
    MetricsRegistry *r = metrics_registry_create();
    REQUIRE(r);
    MetricFamily *f;
    const char *l[] = {"a"};
    REQUIRE(metrics_gauge_new(r, "g", "", 1, l, &f, NULL) == DP_OK);
    const char *nullv[] = {NULL};
    EXPECT(metrics_child(f, nullv) == NULL);
    EXPECT(metrics_child(f, NULL) == NULL);
    metric_observe(metrics_with(f, "x"), 1); /* not a histogram: ignored */
    EXPECT_NEAR(metric_value(metrics_with(f, "x")), 0, 0);
    metrics_registry_destroy(r);
}

// ---- threads ----

typedef struct {
    Metric *c, *h, *g;
    MetricFamily *fam;
    int n;
    int id;
} Worker;

static void *worker_run(void *arg) {
    Worker *w = arg;
    char lbl[16];
    for (int i = 0; i < w->n; i++) {
        metric_inc(w->c, 1);
        metric_observe(w->h, (i % 10) * 0.01);
        metric_add(w->g, 1);
        metric_add(w->g, -1);
        if (i % 100 == 0) {
            /* Children created on demand while others update and render. */
            snprintf(lbl, sizeof lbl, "w%d_%d", w->id, i / 100 % 20);
            metric_inc(metrics_with(w->fam, lbl), 1);
        }
    }
    return NULL;
}

static void test_threads(void) {
    MetricsRegistry *r = metrics_registry_create();
    REQUIRE(r);
    MetricFamily *c, *h, *g, *dyn;
    const char *l[] = {"w"};
    REQUIRE(metrics_counter_new(r, "ops_total", "", 0, NULL, &c, NULL) == DP_OK);
    REQUIRE(metrics_histogram_new(r, "op_seconds", "", 0, NULL, NULL, 0, &h, NULL) == DP_OK);
    REQUIRE(metrics_gauge_new(r, "inflight", "", 0, NULL, &g, NULL) == DP_OK);
    REQUIRE(metrics_counter_new(r, "dyn_total", "", 1, l, &dyn, NULL) == DP_OK);
    enum { NT = 4, N = 50000 };
    pthread_t th[NT];
    Worker w[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (Worker){metrics_with(c), metrics_with(h), metrics_with(g), dyn, N, i};
        pthread_create(&th[i], NULL, worker_run, &w[i]);
    }
    int renders = 0;
    for (int k = 0; k < 20; k++) {
        DpBuf out = DP_BUF_INIT;
        if (metrics_render(r, &out) == DP_OK) renders++;
        /* Each render is self-consistent: parse it and check _count == +Inf. */
        MetricsParsed p = {0};
        EXPECT(metrics_parse(out.data, out.len, &p, NULL) == DP_OK);
        const char *inf[] = {"le", "+Inf"};
        const MetricSample *bi = metrics_parsed_find(&p, "op_seconds_bucket", inf, 1);
        const MetricSample *cnt = metrics_parsed_find(&p, "op_seconds_count", NULL, 0);
        EXPECT(bi && cnt && bi->value == cnt->value);
        metrics_parsed_free(&p);
        dp_buf_free(&out);
    }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    EXPECT_EQ_INT(renders, 20);
    EXPECT_NEAR(metric_value(metrics_with(c)), NT * N, 0);
    EXPECT_NEAR(metric_value(metrics_with(h)), NT * N, 0);
    EXPECT_NEAR(metric_value(metrics_with(g)), 0, 0);
    /* sum of (i%10)*0.01 over N iterations per thread */
    EXPECT_NEAR(metric_hist_sum(metrics_with(h)), NT * (N / 10) * 0.45, 1e-6);
    double dyn_total = 0;
    for (int t = 0; t < NT; t++)
        for (int k = 0; k < 20; k++) {
            char lbl[16];
            snprintf(lbl, sizeof lbl, "w%d_%d", t, k);
            dyn_total += metric_value(metrics_with(dyn, lbl));
        }
    EXPECT_NEAR(dyn_total, NT * (N / 100), 0);
    metrics_registry_destroy(r);
}

// ---- parser ----

static void test_parse_handwritten(void) {
    size_t len;
    char *text = read_data("sample.prom", &len);
    REQUIRE(text);
    MetricsParsed p = {0};
    DpError err = {0};
    DpStatus st = metrics_parse(text, len, &p, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(p.n_samples, 14);
    const char *kv[] = {"route", "/predict", "code", "200"};
    const MetricSample *s = metrics_parsed_find(&p, "http_requests_total", kv, 2);
    REQUIRE(s);
    EXPECT_NEAR(s->value, 1027, 0);
    EXPECT(s->has_timestamp && s->timestamp_ms == 1395066363000LL);
    EXPECT_EQ_INT(s->type, METRIC_COUNTER);
    const char *kv2[] = {"code", "500"};
    s = metrics_parsed_find(&p, "http_requests_total", kv2, 1);
    REQUIRE(s);
    EXPECT_STREQ(metric_sample_label(s, "route"), "/a\\b\"c\nd");
    EXPECT_NEAR(s->value, 1000, 0);
    EXPECT(!s->has_timestamp);
    s = metrics_parsed_find(&p, "llm_accuracy", NULL, 0);
    EXPECT(s && isnan(s->value) && s->type == METRIC_UNTYPED);
    s = metrics_parsed_find(&p, "weird_untyped", NULL, 0);
    EXPECT(s && isinf(s->value) && s->value < 0);
    EXPECT_STREQ(s ? metric_sample_label(s, "x") : NULL, "");
    const char *inf[] = {"le", "+Inf"};
    s = metrics_parsed_find(&p, "http_request_duration_seconds_bucket", inf, 1);
    REQUIRE(s);
    EXPECT_NEAR(s->value, 144320, 0);
    EXPECT_EQ_INT(s->type, METRIC_HISTOGRAM);
    EXPECT_STREQ(s->family, "http_request_duration_seconds");
    s = metrics_parsed_find(&p, "rpc_duration_seconds_sum", NULL, 0);
    EXPECT(s && s->type == METRIC_SUMMARY && s->value == 1.7560473e+07);
    EXPECT_STREQ(s ? s->family : NULL, "rpc_duration_seconds");
    int found_help = 0;
    for (size_t i = 0; i < p.n_families; i++)
        if (!strcmp(p.families[i].name, "llm_bleu")) {
            found_help = 1;
            EXPECT_STREQ(p.families[i].help,
                         "Rolling BLEU-1 with a \\ backslash and\nnewline in help.");
            EXPECT_EQ_INT(p.families[i].type, METRIC_GAUGE);
        }
    EXPECT(found_help);
    metrics_parsed_free(&p);
    free(text);
}

static void expect_parse_error(const char *text, const char *needle) {
    MetricsParsed p = {0};
    DpError err = {0};
    DpStatus st = metrics_parse(text, strlen(text), &p, &err);
    EXPECT_MSG(st == DP_ERR_PARSE, "accepted: %s", text);
    EXPECT_MSG(contains(err.msg, needle), "error \"%s\" lacks \"%s\"", err.msg, needle);
    metrics_parsed_free(&p);
}

static void test_parse_errors(void) {
    expect_parse_error("a 1\nb{x=\"1\" 2\n", "line 2");
    expect_parse_error("a 1\n\n# comment\nb{x=1} 2\n", "line 4: expected '\"'");
    expect_parse_error("a{x=\"\\q\"} 1\n", "bad escape");
    expect_parse_error("a{x=\"open} 1\n", "unterminated");
    expect_parse_error("a one\n", "bad value");
    expect_parse_error("a 1 12.5\n", "bad timestamp");
    expect_parse_error("a\n", "expected a space and a value");
    expect_parse_error("# TYPE a flute\na 1\n", "unknown metric type");
    expect_parse_error("a 1\n# TYPE a gauge\n", "after its samples");
    expect_parse_error("{x=\"1\"} 1\n", "expected a metric name");
    expect_parse_error("a{x=\"1\",x=\"2\"} 1\n", "twice");
    expect_parse_error("a 1 2 3\n", "after the timestamp");
    /* Fine: CRLF line ends, no final newline, empty input, comments only. */
    MetricsParsed p = {0};
    EXPECT(metrics_parse("a 1\r\nb 2", 9, &p, NULL) == DP_OK && p.n_samples == 2);
    metrics_parsed_free(&p);
    EXPECT(metrics_parse("", 0, &p, NULL) == DP_OK && p.n_samples == 0);
    metrics_parsed_free(&p);
    EXPECT(metrics_parse("# hi\n#\n", 7, &p, NULL) == DP_OK && p.n_samples == 0);
    metrics_parsed_free(&p);
}

/* A registry with every kind of metric, as the service will have. */
static MetricsRegistry *realistic_registry(int n_extra_families, int series_per_family) {
    MetricsRegistry *r = metrics_registry_create();
    if (!r) return NULL;
    MetricFamily *f;
    const char *rc[] = {"route", "code"};
    const char *t[] = {"target"};
    DpError err = {0};
    if (metrics_register_process_collector(r, &err) != DP_OK) goto fail;
    if (metrics_counter_new(r, "http_requests_total", "HTTP requests by route and code.", 2, rc,
                            &f, &err) != DP_OK)
        goto fail;
    metric_inc(metrics_with(f, "/predict", "200"), 1000);
    metric_inc(metrics_with(f, "/predict", "400"), 7);
    metric_inc(metrics_with(f, "/feedback", "200"), 300);
    if (metrics_histogram_new(r, "http_request_duration_seconds", "Request latency.", 1,
                              (const char *[]){"route"}, NULL, 0, &f, &err) != DP_OK)
        goto fail;
    for (int i = 0; i < 200; i++) metric_observe(metrics_with(f, "/predict"), 0.001 * i);
    if (metrics_gauge_new(r, "llm_bleu", "Rolling BLEU-1 over labelled requests.", 0, NULL, &f,
                          &err) != DP_OK)
        goto fail;
    metric_set(metrics_with(f), 0.78);
    if (metrics_gauge_new(r, "llm_accuracy", "Rolling exact match.", 0, NULL, &f, &err) != DP_OK)
        goto fail;
    metric_set(metrics_with(f), NAN);
    if (metrics_counter_new(r, "llm_retrain_total", "Retrains by target.", 1, t, &f, &err) !=
        DP_OK)
        goto fail;
    metric_inc(metrics_with(f, "aws"), 4);
    metric_inc(metrics_with(f, "azure"), 0);
    for (int k = 0; k < n_extra_families; k++) {
        char name[64];
        snprintf(name, sizeof name, "extra_family_%d%s", k, k % 3 == 0 ? "_total" : "");
        if (k % 3 == 0) {
            if (metrics_counter_new(r, name, "An extra counter.", 1, t, &f, &err) != DP_OK)
                goto fail;
        } else if (k % 3 == 1) {
            if (metrics_gauge_new(r, name, "An extra gauge.", 1, t, &f, &err) != DP_OK) goto fail;
        } else {
            snprintf(name, sizeof name, "extra_family_%d_seconds", k);
            double b[] = {0.01, 0.1, 1};
            if (metrics_histogram_new(r, name, "An extra histogram.", 1, t, b, 3, &f, &err) !=
                DP_OK)
                goto fail;
        }
        for (int s = 0; s < series_per_family; s++) {
            char lbl[32];
            snprintf(lbl, sizeof lbl, "t%d", s);
            Metric *m = metrics_with(f, lbl);
            if (k % 3 == 2) metric_observe(m, 0.05 * s);
            else metric_inc(m, 1.5 * s);
        }
    }
    return r;
fail:
    fprintf(stderr, "  realistic_registry: %s\n", err.msg);
    metrics_registry_destroy(r);
    return NULL;
}

static void test_round_trip(void) {
    MetricsRegistry *r = realistic_registry(6, 4);
    REQUIRE(r);
    DpBuf out = DP_BUF_INIT;
    REQUIRE(metrics_render(r, &out) == DP_OK);
    MetricsParsed p = {0};
    DpError err = {0};
    DpStatus st = metrics_parse(out.data, out.len, &p, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    /* Every sample line in the text is one parsed sample. */
    size_t lines = 0;
    for (const char *q = out.data; *q; q = strchr(q, '\n') + 1) {
        if (*q != '#') lines++;
        if (!strchr(q, '\n')) break;
    }
    EXPECT_EQ_INT(p.n_samples, lines);
    const char *kv[] = {"route", "/predict", "code", "400"};
    const MetricSample *s = metrics_parsed_find(&p, "http_requests_total", kv, 2);
    EXPECT(s && s->value == 7);
    const char *le[] = {"route", "/predict", "le", "0.05"};
    s = metrics_parsed_find(&p, "http_request_duration_seconds_bucket", le, 2);
    /* 0.001*i <= 0.05 for i = 0..50 (0.001*50 rounds to exactly 0.05) */
    EXPECT(s && s->value == 51);
    s = metrics_parsed_find(&p, "llm_accuracy", NULL, 0);
    EXPECT(s && isnan(s->value));
    s = metrics_parsed_find(&p, "process_resident_memory_bytes", NULL, 0);
    EXPECT(s && s->value > 1e5 && s->type == METRIC_GAUGE);
    s = metrics_parsed_find(&p, "process_start_time_seconds", NULL, 0);
    EXPECT(s && fabs(s->value - dp_time_wall()) < 3600);
    metrics_parsed_free(&p);
    dp_buf_free(&out);
    metrics_registry_destroy(r);
}

static void test_process_info(void) {
    MetricsProcessInfo pi;
    DpError err = {0};
    REQUIRE(metrics_process_read(&pi, &err) == DP_OK);
    /* Burn a little CPU so cpu_seconds moves. */
    volatile double x = 0;
    double t0 = dp_time_mono();
    while (dp_time_mono() - t0 < 0.05) x += 1;
    MetricsProcessInfo p2;
    REQUIRE(metrics_process_read(&p2, &err) == DP_OK);
    EXPECT(p2.cpu_seconds >= pi.cpu_seconds);
    EXPECT(p2.cpu_seconds > 0);
    EXPECT(pi.resident_bytes > 100e3 && pi.resident_bytes < 64e9);
    EXPECT(pi.virtual_bytes >= pi.resident_bytes);
    EXPECT(pi.start_time_seconds <= dp_time_wall() + 1 &&
           pi.start_time_seconds > dp_time_wall() - 3600);
    EXPECT(pi.open_fds >= 3);
    EXPECT(pi.max_fds >= pi.open_fds);
    int fd = dup(0);
    REQUIRE(metrics_process_read(&p2, &err) == DP_OK);
    EXPECT_NEAR(p2.open_fds, pi.open_fds + 1, 0);
    close(fd);
}

// ---- promtool ----

static int allow_skip(void) {
    const char *s = getenv("DP_ALLOW_SKIP");
    return s && strcmp(s, "1") == 0;
}

static void test_promtool(void) {
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("SKIPPED: promtool not installed (apt-get install prometheus)%s\n",
               allow_skip() ? "" : "; counted as a failure unless DP_ALLOW_SKIP=1");
        EXPECT(allow_skip());
        return;
    }
    MetricsRegistry *r = realistic_registry(9, 3);
    REQUIRE(r);
    DpBuf out = DP_BUF_INIT;
    REQUIRE(metrics_render(r, &out) == DP_OK);
    char path[] = "/tmp/dp_test_metrics_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    EXPECT(write(fd, out.data, out.len) == (ssize_t)out.len);
    close(fd);
    char cmd[256], outpath[300];
    snprintf(outpath, sizeof outpath, "%s.out", path);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s 2>&1", path, outpath);
    int rc = system(cmd);
    char *msg = NULL;
    size_t n = 0;
    dp_read_file(outpath, &msg, &n, NULL);
    EXPECT_MSG(rc == 0 && n == 0, "promtool rc %d: %s", rc, msg ? msg : "");
    free(msg);
    /* And promtool does complain about a bad page, so the check can fail. */
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs("# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n", f);
    fclose(f);
    rc = system(cmd);
    EXPECT(rc != 0);
    unlink(path);
    unlink(outpath);
    dp_buf_free(&out);
    metrics_registry_destroy(r);
}

// ---- render speed ----

static void test_render_speed(void) {
    /* ~50 families, ~500 series (histograms count each family once). */
    MetricsRegistry *r = realistic_registry(45, 10);
    REQUIRE(r);
    DpBuf out = DP_BUF_INIT;
    REQUIRE(metrics_render(r, &out) == DP_OK);
    size_t bytes = out.len;
    int reps = 200;
    double t0 = dp_time_mono();
    for (int i = 0; i < reps; i++) {
        out.len = 0;
        metrics_render(r, &out);
    }
    double dt = (dp_time_mono() - t0) / reps;
    MetricsParsed p = {0};
    double t1 = dp_time_mono();
    EXPECT(metrics_parse(out.data, out.len, &p, NULL) == DP_OK);
    double dtp = dp_time_mono() - t1;
    MetricsProcessInfo pi;
    double t2 = dp_time_mono();
    for (int i = 0; i < reps; i++) metrics_process_read(&pi, NULL);
    double dtproc = (dp_time_mono() - t2) / reps;
    printf("process metrics read: %.1f us\n", dtproc * 1e6);
    printf("render: %zu families+process, %zu sample lines, %zu bytes: %.1f us per render "
           "(incl. /proc read), parse %.1f us\n",
           (size_t)51, p.n_samples, bytes, dt * 1e6, dtp * 1e6);
    EXPECT(dt < 0.05); /* generous: 2 loaded cores, sanitizers */
    metrics_parsed_free(&p);
    dp_buf_free(&out);
    metrics_registry_destroy(r);
}

// ---- HTTP client against an in-test server ----

typedef struct {
    int fd;
    int port;
    const char *response;  /* sent in pieces of `piece` bytes */
    size_t piece;
    double delay_s;        /* sleep before answering */
    char request[4096];
    pthread_t th;
} TestServer;

static void *server_run(void *arg) {
    TestServer *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) return NULL;
    size_t n = 0;
    while (n < sizeof s->request - 1) {
        ssize_t r = recv(c, s->request + n, sizeof s->request - 1 - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
        s->request[n] = '\0';
        if (strstr(s->request, "\r\n\r\n")) break;
    }
    if (s->delay_s > 0) dp_sleep(s->delay_s);
    size_t len = strlen(s->response);
    for (size_t off = 0; off < len;) {
        size_t k = s->piece && s->piece < len - off ? s->piece : len - off;
        if (send(c, s->response + off, k, MSG_NOSIGNAL) <= 0) break;
        off += k;
        if (s->piece) dp_sleep(0.002);
    }
    close(c);
    return NULL;
}

static int server_start(TestServer *s, const char *response, size_t piece, double delay) {
    memset(s, 0, sizeof *s);
    s->response = response;
    s->piece = piece;
    s->delay_s = delay;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t al = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->fd, 4) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &al) != 0) {
        close(s->fd);
        return -1;
    }
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->th, NULL, server_run, s);
}

static void server_stop(TestServer *s) {
    pthread_join(s->th, NULL);
    close(s->fd);
}

static void http_case(const char *response, size_t piece, int want_status, const char *want_body,
                      size_t want_len) {
    TestServer s;
    REQUIRE(server_start(&s, response, piece, 0) == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics?x=1", s.port);
    char *body = NULL;
    size_t len = 0;
    int status = 0;
    DpError err = {0};
    DpStatus st = metrics_http_get(url, 5, &body, &len, &status, &err);
    server_stop(&s);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(status, want_status);
    EXPECT_EQ_INT(len, want_len);
    EXPECT(body && memcmp(body, want_body, want_len) == 0 && body[len] == '\0');
    EXPECT(strncmp(s.request, "GET /metrics?x=1 HTTP/1.1\r\n", 27) == 0);
    EXPECT(contains(s.request, "\r\nHost: 127.0.0.1:"));
    free(body);
}

static void test_http_get(void) {
    http_case("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n"
              "hello world",
              0, 200, "hello world", 11);
    /* Content-Length is honoured even if more bytes follow. */
    http_case("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello world", 0, 200, "hello", 5);
    /* Chunked, delivered in small pieces, with a chunk extension and trailer. */
    http_case("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n1;ext=1\r\n \r\nA\r\nworld12345\r\n0\r\nX-Trailer: 1\r\n\r\n",
              7, 200, "hello world12345", 16);
    /* Close-delimited, HTTP/1.0. */
    http_case("HTTP/1.0 200 OK\r\n\r\nuntil close", 0, 200, "until close", 11);
    /* A 404 is a status, not an error. */
    http_case("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", 0, 404,
              "not found", 9);
    http_case("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", 0, 204, "", 0);
}

static void test_http_errors(void) {
    char *body = NULL;
    size_t len;
    int status;
    DpError err = {0};
    /* Timeout: the server waits longer than the client. */
    TestServer s;
    REQUIRE(server_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 1.0) == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    double t0 = dp_time_mono();
    DpStatus st = metrics_http_get(url, 0.2, &body, &len, &status, &err);
    double dt = dp_time_mono() - t0;
    EXPECT_EQ_INT(st, DP_ERR_IO);
    EXPECT_MSG(contains(err.msg, "timed out"), "%s", err.msg);
    EXPECT(dt < 0.8);
    EXPECT(body == NULL);
    server_stop(&s);
    /* Truncated body. */
    REQUIRE(server_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nshort", 0, 0) == 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    st = metrics_http_get(url, 5, &body, &len, &status, &err);
    server_stop(&s);
    EXPECT_EQ_INT(st, DP_ERR_IO);
    EXPECT(contains(err.msg, "truncated"));
    /* Not HTTP. */
    REQUIRE(server_start(&s, "SSH-2.0-OpenSSH\r\n", 0, 0) == 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    st = metrics_http_get(url, 5, &body, &len, &status, &err);
    server_stop(&s);
    EXPECT_EQ_INT(st, DP_ERR_PARSE);
    /* Connection refused: bind a port, close it, connect to it. */
    REQUIRE(server_start(&s, "", 0, 0) == 0);
    int port = s.port;
    shutdown(s.fd, SHUT_RDWR);
    int c = socket(AF_INET, SOCK_STREAM, 0); /* unblock accept() */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(c, (struct sockaddr *)&a, sizeof a);
    close(c);
    server_stop(&s);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    st = metrics_http_get(url, 2, &body, &len, &status, &err);
    EXPECT_EQ_INT(st, DP_ERR_IO);
    EXPECT_MSG(contains(err.msg, "connect"), "%s", err.msg);
    /* Bad URLs. */
    EXPECT_EQ_INT(metrics_http_get("https://127.0.0.1/", 1, &body, &len, &status, &err),
                  DP_ERR_INVAL);
    EXPECT_EQ_INT(metrics_http_get("http://127.0.0.1:99999/", 1, &body, &len, &status, &err),
                  DP_ERR_INVAL);
    EXPECT_EQ_INT(metrics_http_get("http://127.0.0.1/a b", 1, &body, &len, &status, &err),
                  DP_ERR_INVAL);
    EXPECT_EQ_INT(metrics_http_get("http:///x", 1, &body, &len, &status, &err), DP_ERR_INVAL);
    EXPECT(body == NULL);
}

static void test_scrape_round_trip(void) {
    /* Render, serve it over HTTP, scrape and parse: the direct-scrape path. */
    MetricsRegistry *r = realistic_registry(3, 2);
    REQUIRE(r);
    DpBuf page = DP_BUF_INIT, resp = DP_BUF_INIT;
    REQUIRE(metrics_render(r, &page) == DP_OK);
    dp_buf_printf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n%s",
                  METRICS_CONTENT_TYPE, page.len, page.data);
    TestServer s;
    REQUIRE(server_start(&s, resp.data, 1000, 0) == 0);
    char url[128];
    snprintf(url, sizeof url, "http://localhost:%d/metrics", s.port);
    char *body = NULL;
    size_t len = 0;
    int status = 0;
    DpError err = {0};
    DpStatus st = metrics_http_get(url, 5, &body, &len, &status, &err);
    server_stop(&s);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT(status == 200 && len == page.len && body && memcmp(body, page.data, len) == 0);
    MetricsParsed p = {0};
    EXPECT(body && metrics_parse(body, len, &p, &err) == DP_OK);
    const MetricSample *b = metrics_parsed_find(&p, "llm_bleu", NULL, 0);
    EXPECT(b && b->value == 0.78);
    metrics_parsed_free(&p);
    free(body);
    dp_buf_free(&page);
    dp_buf_free(&resp);
    metrics_registry_destroy(r);
}

// ---- PromQL ----

static void test_promql_parse(void) {
    size_t len;
    char *j;
    PromqlResult res;
    DpError err = {0};

    j = read_data("vector.json", &len);
    REQUIRE(j);
    EXPECT_MSG(promql_parse_response(j, len, &res, &err) == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(res.type, PROMQL_VECTOR);
    EXPECT_EQ_INT(res.n_series, 2);
    if (res.n_series == 2) {
        EXPECT_STREQ(promql_series_label(&res.series[0], "target"), "aws");
        EXPECT_STREQ(promql_series_label(&res.series[0], "__name__"), "llm_bleu");
        EXPECT_EQ_INT(res.series[0].n_points, 1);
        EXPECT_NEAR(res.series[0].points[0].v, 0.78, 0);
        EXPECT_NEAR(res.series[0].points[0].t, 1764355200.123, 1e-6);
        EXPECT(isnan(res.series[1].points[0].v));
        EXPECT(promql_series_label(&res.series[1], "nope") == NULL);
    }
    promql_result_free(&res);
    free(j);

    j = read_data("matrix.json", &len);
    REQUIRE(j);
    EXPECT_MSG(promql_parse_response(j, len, &res, &err) == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(res.type, PROMQL_MATRIX);
    EXPECT_EQ_INT(res.n_series, 2);
    if (res.n_series == 2) {
        EXPECT_EQ_INT(res.series[0].n_points, 3);
        EXPECT_NEAR(res.series[0].points[1].v, 2.5, 0);
        EXPECT_NEAR(res.series[0].points[1].t, 1764355260, 0);
        EXPECT(isinf(res.series[0].points[2].v) && res.series[0].points[2].v > 0);
        EXPECT_EQ_INT(res.series[1].n_points, 2);
        EXPECT(isinf(res.series[1].points[1].v) && res.series[1].points[1].v < 0);
    }
    EXPECT(contains(res.warnings, "might not be a counter"));
    promql_result_free(&res);
    free(j);

    j = read_data("scalar.json", &len);
    REQUIRE(j);
    EXPECT(promql_parse_response(j, len, &res, &err) == DP_OK);
    EXPECT(res.type == PROMQL_SCALAR && res.n_series == 1 && res.series[0].points[0].v == 42 &&
           res.series[0].points[0].t == 1764355200.5);
    promql_result_free(&res);
    free(j);

    j = read_data("string.json", &len);
    REQUIRE(j);
    EXPECT(promql_parse_response(j, len, &res, &err) == DP_OK);
    EXPECT(res.type == PROMQL_STRING);
    EXPECT_STREQ(res.text, "hello");
    promql_result_free(&res);
    free(j);

    j = read_data("error.json", &len);
    REQUIRE(j);
    EXPECT_EQ_INT(promql_parse_response(j, len, &res, &err), DP_ERR_STATE);
    EXPECT_STREQ(err.msg,
                 "prometheus error (bad_data): invalid parameter \"query\": 1:5: parse error: "
                 "unexpected <by>");
    promql_result_free(&res);
    free(j);

    j = read_data("bad_value.json", &len);
    REQUIRE(j);
    EXPECT_EQ_INT(promql_parse_response(j, len, &res, &err), DP_ERR_PARSE);
    EXPECT_MSG(contains(err.msg, "data.result[0].value") && contains(err.msg, "abc"), "%s",
               err.msg);
    promql_result_free(&res);
    free(j);

    const char *bad[] = {"not json", "{}", "{\"status\":\"success\"}",
                         "{\"status\":\"success\",\"data\":{\"resultType\":\"tensor\",\"result\":[]}}",
                         "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":"
                         "[{\"metric\":{},\"values\":[[1,2]]}]}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_MSG(promql_parse_response(bad[i], strlen(bad[i]), &res, &err) == DP_ERR_PARSE,
                   "accepted %s", bad[i]);
        promql_result_free(&res);
    }
}

static void test_promql_client(void) {
    size_t len;
    char *j = read_data("matrix.json", &len);
    REQUIRE(j);
    DpBuf resp = DP_BUF_INIT;
    dp_buf_printf(&resp,
                  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                  len, j);
    TestServer s;
    REQUIRE(server_start(&s, resp.data, 0, 0) == 0);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/", s.port);
    PromqlResult res;
    DpError err = {0};
    DpStatus st = promql_query_range(base, "rate(http_requests_total{code=\"200\"}[1m])",
                                     1764355200, 1764355320, 60, &res, &err);
    server_stop(&s);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT(res.type == PROMQL_MATRIX && res.n_series == 2);
    EXPECT_MSG(contains(s.request, "GET /api/v1/query_range?query=rate%28http_requests_total%7Bcode"
                                   "%3D%22200%22%7D%5B1m%5D%29&start=1764355200.000&end="
                                   "1764355320.000&step=60.000 HTTP/1.1"),
               "%s", s.request);
    promql_result_free(&res);
    dp_buf_free(&resp);
    free(j);

    /* Prometheus answers a bad query with 400 and the error envelope. */
    j = read_data("error.json", &len);
    REQUIRE(j);
    dp_buf_printf(&resp, "HTTP/1.1 400 Bad Request\r\nContent-Length: %zu\r\n\r\n%s", len, j);
    REQUIRE(server_start(&s, resp.data, 0, 0) == 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", s.port);
    st = promql_query(base, "sum by", 1764355200.5, &res, &err);
    server_stop(&s);
    EXPECT_EQ_INT(st, DP_ERR_STATE);
    EXPECT(contains(err.msg, "bad_data"));
    EXPECT(contains(s.request, "GET /api/v1/query?query=sum%20by&time=1764355200.500 "));
    promql_result_free(&res);
    dp_buf_free(&resp);
    free(j);

    /* A non-JSON error page names the HTTP status. */
    REQUIRE(server_start(&s, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad", 0, 0) ==
            0);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", s.port);
    st = promql_query(base, "up", 0, &res, &err);
    server_stop(&s);
    EXPECT_EQ_INT(st, DP_ERR_IO);
    EXPECT(contains(err.msg, "HTTP 502"));
    EXPECT(contains(s.request, "GET /api/v1/query?query=up HTTP/1.1"));
    promql_result_free(&res);
    EXPECT_EQ_INT(promql_query_range(base, "up", 10, 5, 1, &res, &err), DP_ERR_INVAL);
}

// ---- a real Prometheus scraping our page (when Debian's prometheus is installed) ----

typedef struct {
    int fd;
    int port;
    MetricsRegistry *reg;
    volatile int stop;
    int served;
    pthread_t th;
} MetricsServer;

/* Serves /metrics (rendered fresh each time) to any number of clients. */
static void *metrics_server_run(void *arg) {
    MetricsServer *m = arg;
    while (!m->stop) {
        struct pollfd pfd = {m->fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0) continue;
        int c = accept(m->fd, NULL, NULL);
        if (c < 0) continue;
        char req[4096];
        size_t n = 0;
        while (n < sizeof req - 1) {
            ssize_t r = recv(c, req + n, sizeof req - 1 - n, 0);
            if (r <= 0) break;
            n += (size_t)r;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n")) break;
        }
        DpBuf page = DP_BUF_INIT, resp = DP_BUF_INIT;
        metrics_render(m->reg, &page);
        dp_buf_printf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                             "Connection: close\r\n\r\n",
                      METRICS_CONTENT_TYPE, page.len);
        dp_buf_append(&resp, page.data, page.len);
        for (size_t off = 0; off < resp.len;) {
            ssize_t w = send(c, resp.data + off, resp.len - off, MSG_NOSIGNAL);
            if (w <= 0) break;
            off += (size_t)w;
        }
        m->served++;
        dp_buf_free(&page);
        dp_buf_free(&resp);
        close(c);
    }
    return NULL;
}

static int listen_loopback(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_prometheus_live(void) {
    if (system("command -v prometheus >/dev/null 2>&1") != 0) {
        printf("SKIPPED: prometheus not installed (apt-get install prometheus)%s\n",
               allow_skip() ? "" : "; counted as a failure unless DP_ALLOW_SKIP=1");
        EXPECT(allow_skip());
        return;
    }
    MetricsRegistry *r = realistic_registry(3, 2);
    REQUIRE(r);
    MetricsServer ms = {0};
    ms.reg = r;
    ms.fd = listen_loopback(&ms.port);
    REQUIRE(ms.fd >= 0);
    REQUIRE(pthread_create(&ms.th, NULL, metrics_server_run, &ms) == 0);
    /* A free port for Prometheus: bind one, note it, release it. */
    int prom_port = 0;
    int tmpfd = listen_loopback(&prom_port);
    REQUIRE(tmpfd >= 0);
    close(tmpfd);
    char dir[] = "/tmp/dp_test_prom_XXXXXX";
    REQUIRE(mkdtemp(dir));
    char cfg[128], cmd[1024], base[64];
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", dir);
    FILE *f = fopen(cfg, "w");
    REQUIRE(f);
    fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
               "  - job_name: driftpilot_test\n    static_configs:\n"
               "      - targets: ['127.0.0.1:%d']\n",
            ms.port);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/scripts/prometheus-local.sh start %s %s/data %d >/dev/null",
             DP_SOURCE_DIR, cfg, dir, prom_port);
    int rc = system(cmd);
    EXPECT_MSG(rc == 0, "prometheus-local.sh start failed (rc %d)", rc);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", prom_port);
    PromqlResult res;
    DpError err = {0};
    int got = 0;
    double t0 = dp_time_mono();
    /* Discovery and the first scrape take a few seconds. */
    while (rc == 0 && dp_time_mono() - t0 < 30) {
        if (promql_query(base, "llm_bleu{job=\"driftpilot_test\"}", 0, &res, &err) == DP_OK &&
            res.n_series == 1) {
            got = 1;
            EXPECT_NEAR(res.series[0].points[0].v, 0.78, 0);
            EXPECT_STREQ(promql_series_label(&res.series[0], "__name__"), "llm_bleu");
            promql_result_free(&res);
            break;
        }
        promql_result_free(&res);
        dp_sleep(0.5);
    }
    EXPECT_MSG(got, "no llm_bleu in prometheus after %.0f s: %s", dp_time_mono() - t0, err.msg);
    if (got) {
        EXPECT(promql_query(base, "up{job=\"driftpilot_test\"}", 0, &res, &err) == DP_OK);
        EXPECT(res.n_series == 1 && res.series[0].points[0].v == 1);
        promql_result_free(&res);
        EXPECT(promql_query(base,
                            "sum(http_request_duration_seconds_count{route=\"/predict\"})", 0,
                            &res, &err) == DP_OK);
        EXPECT(res.type == PROMQL_VECTOR && res.n_series == 1 && res.series[0].points[0].v == 200);
        promql_result_free(&res);
        EXPECT(promql_query(base, "process_resident_memory_bytes", 0, &res, &err) == DP_OK);
        EXPECT(res.n_series == 1 && res.series[0].points[0].v > 1e5);
        promql_result_free(&res);
        EXPECT(promql_query(base, "scalar(llm_retrain_total{target=\"aws\"})", 0, &res, &err) ==
               DP_OK);
        EXPECT(res.type == PROMQL_SCALAR && res.series && res.series[0].points[0].v == 4);
        promql_result_free(&res);
        double now = dp_time_wall();
        EXPECT_MSG(promql_query_range(base, "llm_bleu", now - 30, now, 1, &res, &err) == DP_OK,
                   "%s", err.msg);
        EXPECT(res.type == PROMQL_MATRIX && res.n_series == 1 && res.series[0].n_points >= 1);
        promql_result_free(&res);
        EXPECT_EQ_INT(promql_query(base, "sum by (", 0, &res, &err), DP_ERR_STATE);
        EXPECT_MSG(contains(err.msg, "bad_data"), "%s", err.msg);
        promql_result_free(&res);
    }
    snprintf(cmd, sizeof cmd, "%s/scripts/prometheus-local.sh stop %s/data", DP_SOURCE_DIR, dir);
    EXPECT(system(cmd) == 0);
    ms.stop = 1;
    pthread_join(ms.th, NULL);
    close(ms.fd);
    printf("prometheus live test: %.1f s, %d scrapes served\n", dp_time_mono() - t0,
           ms.served);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    EXPECT(system(cmd) == 0);
    metrics_registry_destroy(r);
}

TEST_MAIN(TEST_CASE(test_format_double), TEST_CASE(test_name_validation),
          TEST_CASE(test_render_exact), TEST_CASE(test_null_safety), TEST_CASE(test_threads),
          TEST_CASE(test_parse_handwritten), TEST_CASE(test_parse_errors),
          TEST_CASE(test_round_trip), TEST_CASE(test_process_info), TEST_CASE(test_promtool),
          TEST_CASE(test_render_speed), TEST_CASE(test_http_get), TEST_CASE(test_http_errors),
          TEST_CASE(test_scrape_round_trip), TEST_CASE(test_promql_parse),
          TEST_CASE(test_promql_client), TEST_CASE(test_prometheus_live))
