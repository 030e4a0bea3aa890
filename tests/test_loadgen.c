/* Tests of the load generator: schedules and arrivals (pure functions), then
 * whole runs against a fake inference service started in this process (a
 * test fixture, below: handler threads on a 127.0.0.1:0 socket answering
 * /predict and /feedback with canned JSON after a configurable delay).
 *
 * LOADGEN_BENCH=1 ./test_loadgen bench_max_rate measures the highest rate the
 * load generator sustains against the fake answering at once. */
#include "test.h"

#include "loadgen.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

// ---- the fake service ----

enum { FAKE_OK = 0, FAKE_500, FAKE_404, FAKE_GARBAGE, FAKE_NO_ANSWER };
#define FAKE_THREADS 32
#define FAKE_MAX_IDS 200000

typedef struct {
    double t;        /* monotonic arrival time */
    char body[512];
} FakeFeedback;

typedef struct {
    int fd, port;
    pthread_t threads[FAKE_THREADS];
    atomic_int quit;
    int mode;
    double delay_s;
    int stall_at;         /* the /predict (0-based) that starts a stall; -1: none */
    double stall_s;
    double stall_start, stall_until;
    const QaDataset *oracle; /* fact questions and their answers, or NULL */
    pthread_mutex_t mu;
    int n_predict;
    double *answered;     /* per id: monotonic time the response was written */
    char (*reference)[64];/* per id: the oracle's answer ("" when unknown) */
    FakeFeedback *fb;
    int n_fb, cap_fb;
} Fake;

static const char *oracle_answer(const Fake *f, const char *question) {
    if (!f->oracle) return NULL;
    for (size_t i = 0; i < f->oracle->n_items; i++)
        if (!strcmp(f->oracle->items[i].question, question))
            return f->oracle->items[i].answers[0].text;
    return NULL;
}

static void write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int code, const char *body) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, strlen(body));
    write_all(fd, head, (size_t)n);
    write_all(fd, body, strlen(body));
}

static void handle(Fake *f, int fd) {
    char buf[8192];
    size_t len = 0;
    char *hend = NULL;
    long clen = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r <= 0) return;
        len += (size_t)r;
        buf[len] = '\0';
        if (!hend && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(buf, "Content-Length:");
            clen = cl ? atol(cl + 15) : 0;
        }
        if (hend && len >= (size_t)(hend + 4 - buf) + (size_t)clen) break;
        if (len >= sizeof buf - 1) return;
    }
    double arrived = dp_time_mono();
    const char *body = hend + 4;
    if (!strncmp(buf, "POST /feedback ", 15)) {
        pthread_mutex_lock(&f->mu);
        if (f->n_fb == f->cap_fb) {
            f->cap_fb = f->cap_fb ? 2 * f->cap_fb : 256;
            f->fb = realloc(f->fb, (size_t)f->cap_fb * sizeof *f->fb);
        }
        f->fb[f->n_fb].t = arrived;
        snprintf(f->fb[f->n_fb].body, sizeof f->fb[f->n_fb].body, "%s", body);
        f->n_fb++;
        pthread_mutex_unlock(&f->mu);
        respond(fd, 200, "{\"ok\":true}");
        return;
    }
    if (strncmp(buf, "POST /predict ", 14) != 0) {
        respond(fd, 404, "{\"error\":\"no such route\"}");
        return;
    }
    pthread_mutex_lock(&f->mu);
    int id = f->n_predict++;
    if (id == f->stall_at) {
        f->stall_start = arrived;
        f->stall_until = arrived + f->stall_s;
    }
    double until = arrived + f->delay_s;
    if (f->stall_until > until) until = f->stall_until;
    pthread_mutex_unlock(&f->mu);
    dp_sleep(until - dp_time_mono());
    if (f->mode == FAKE_500) {
        respond(fd, 500, "{\"error\":\"boom\"}");
        return;
    }
    if (f->mode == FAKE_404) {
        respond(fd, 404, "{\"error\":\"nope\"}");
        return;
    }
    if (f->mode == FAKE_GARBAGE) {
        write_all(fd, "hello there\r\n\r\n", 15);
        return;
    }
    if (f->mode == FAKE_NO_ANSWER) {
        respond(fd, 200, "{\"id\":\"x\"}");
        return;
    }
    const char *ans = NULL;
    if (f->oracle) {
        json_error_t je;
        json_t *doc = json_loads(body, 0, &je);
        json_t *q = json_object_get(doc, "question");
        if (json_is_string(q)) ans = oracle_answer(f, json_string_value(q));
        json_decref(doc);
    }
    char out[512];
    snprintf(out, sizeof out,
             "{\"id\":\"req-%d\",\"answer\":\"%s\",\"model_version\":\"fake-v3\",\"target\":"
             "\"fake\",\"prompt_tokens\":7,\"completion_tokens\":2,\"latency_ms\":0.1}",
             id, ans ? ans : "no idea");
    pthread_mutex_lock(&f->mu);
    if (id < FAKE_MAX_IDS) {
        f->answered[id] = dp_time_mono();
        snprintf(f->reference[id], sizeof f->reference[id], "%s", ans ? ans : "");
    }
    pthread_mutex_unlock(&f->mu);
    respond(fd, 200, out);
}

static void *fake_thread(void *arg) {
    Fake *f = arg;
    while (!atomic_load(&f->quit)) {
        struct pollfd p = {f->fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) continue;
        int c = accept(f->fd, NULL, NULL);
        if (c < 0) continue; /* another thread took it */
        int fl = 0;
        (void)fl;
        handle(f, c);
        close(c);
    }
    return NULL;
}

static Fake *fake_start(int mode, double delay_s, const QaDataset *oracle) {
    Fake *f = calloc(1, sizeof *f);
    f->mode = mode;
    f->delay_s = delay_s;
    f->stall_at = -1;
    f->oracle = oracle;
    f->answered = calloc(FAKE_MAX_IDS, sizeof *f->answered);
    f->reference = calloc(FAKE_MAX_IDS, sizeof *f->reference);
    pthread_mutex_init(&f->mu, NULL);
    f->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(f->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(f->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(f->fd, 1024) != 0) {
        perror("fake bind");
        abort();
    }
    socklen_t sl = sizeof a;
    getsockname(f->fd, (struct sockaddr *)&a, &sl);
    f->port = ntohs(a.sin_port);
    for (int i = 0; i < FAKE_THREADS; i++) pthread_create(&f->threads[i], NULL, fake_thread, f);
    return f;
}

static void fake_stop(Fake *f) {
    atomic_store(&f->quit, 1);
    for (int i = 0; i < FAKE_THREADS; i++) pthread_join(f->threads[i], NULL);
    close(f->fd);
    pthread_mutex_destroy(&f->mu);
    free(f->answered);
    free(f->reference);
    free(f->fb);
    free(f);
}

static void add_target(LoadgenConfig *c, int port, double weight) {
    snprintf(c->targets[c->n_targets].url, LOADGEN_URL_MAX, "http://127.0.0.1:%d", port);
    c->targets[c->n_targets].weight = weight;
    c->n_targets++;
}

/* A run config: evenly spaced arrivals at rate for duration. */
static void base_config(LoadgenConfig *c, double rate, double duration) {
    loadgen_config_default(c);
    c->schedule.kind = LOADGEN_SCHED_STEADY;
    c->schedule.rate = rate;
    c->poisson = 0;
    c->duration_s = duration;
    c->timeout_s = 2;
}

// ---- the CSV, read back ----

typedef struct {
    long seq;
    double intended, sent, scenario, latency, service;
    int has_sent;
    char target[LOADGEN_URL_MAX];
    int status;
    char error[32], version[64], kind[32];
    double em;
    int has_em, feedback;
} Row;

/* Splits a line on commas into at most 13 fields (empty fields kept). */
static int split(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == ',') {
            *p = '\0';
            f[n++] = p + 1;
        }
    return n;
}

static Row *read_csv(const char *path, int *n_rows, char *header, size_t hcap) {
    FILE *fp = fopen(path, "r");
    *n_rows = 0;
    if (!fp) return NULL;
    char line[2048];
    Row *rows = NULL;
    int cap = 0;
    if (!fgets(line, sizeof line, fp)) {
        fclose(fp);
        return NULL;
    }
    line[strcspn(line, "\n")] = '\0';
    snprintf(header, hcap, "%s", line);
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        char *f[16];
        if (split(line, f, 16) != 13) continue;
        if (*n_rows == cap) {
            cap = cap ? cap * 2 : 256;
            rows = realloc(rows, (size_t)cap * sizeof *rows);
        }
        Row *r = &rows[(*n_rows)++];
        memset(r, 0, sizeof *r);
        r->seq = atol(f[0]);
        r->intended = atof(f[1]);
        r->has_sent = f[2][0] != '\0';
        r->sent = atof(f[2]);
        r->scenario = atof(f[3]);
        snprintf(r->target, sizeof r->target, "%s", f[4]);
        r->latency = f[5][0] ? atof(f[5]) : NAN;
        r->service = f[6][0] ? atof(f[6]) : NAN;
        r->status = atoi(f[7]);
        snprintf(r->error, sizeof r->error, "%s", f[8]);
        snprintf(r->version, sizeof r->version, "%s", f[9]);
        snprintf(r->kind, sizeof r->kind, "%s", f[10]);
        r->has_em = f[11][0] != '\0';
        r->em = atof(f[11]);
        r->feedback = atoi(f[12]);
    }
    fclose(fp);
    return rows;
}

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "/tmp/dp_test_loadgen_%d_%s", (int)getpid(), name);
}

/* The oracle for the default world: every fact question (training phrasings)
 * at t with its answer. */
static void build_oracle(const QaWorldConfig *wc, double t, QaDataset *ds) {
    QaWorld *w = NULL;
    DpError err;
    qa_dataset_init(ds);
    if (qa_world_create(wc, &w, &err) != DP_OK) return;
    qa_world_all_facts(w, t, QA_PHRASING_TRAIN, ds, &err);
    qa_world_destroy(w);
}

// ---- schedules ----

static void test_schedule_rates(void) {
    LoadgenSchedule s;
    DpError err;
    REQUIRE(loadgen_schedule_parse("50", &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 0), 50, 0);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 1e6), 50, 0);
    REQUIRE(loadgen_schedule_parse("steady:12.5", &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 3), 12.5, 0);

    REQUIRE(loadgen_schedule_parse("spike:50:200:2s:1s", &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 1.999), 50, 0);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 2.0), 200, 0);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 2.999), 200, 0);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 3.0), 50, 0);
    EXPECT_NEAR(loadgen_schedule_max_rate(&s), 200, 0);

    REQUIRE(loadgen_schedule_parse("ramp:10:110:10s:5s", &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 0), 10, 0);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 5), 10, 1e-12);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 10), 60, 1e-9);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 15), 110, 1e-9);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 99), 110, 0);
    REQUIRE(loadgen_schedule_parse("ramp:100:0:1m", &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 30), 50, 1e-9);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 61), 0, 0);

    REQUIRE(loadgen_schedule_parse("diurnal:100:50:1h", &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 0), 50, 1e-9);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 900), 100, 1e-9);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 1800), 150, 1e-9);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 3600), 50, 1e-9);
    EXPECT_NEAR(loadgen_schedule_max_rate(&s), 150, 0);
    /* an amplitude above the mean clips at zero instead of going negative */
    REQUIRE(loadgen_schedule_parse("diurnal:10:20:100s", &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 0), 0, 0);

    char buf[128];
    REQUIRE(loadgen_schedule_parse("spike:50:200:60s:30s", &s, &err) == DP_OK);
    loadgen_schedule_format(&s, buf, sizeof buf);
    EXPECT_STREQ(buf, "spike:50:200:60s:30s");

    const char *bad[] = {"", "-5", "spike:50:200:2s", "bogus:1", "ramp:1:2:xx", "steady:abc",
                         "diurnal:1:1:0s", "steady:1:2", "spike:1:2:3:4:5:6"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT_MSG(loadgen_schedule_parse(bad[i], &s, &err) == DP_ERR_PARSE, "'%s' accepted",
                   bad[i]);
    loadgen_schedule_parse("spike:50:200:2s", &s, &err);
    EXPECT(strstr(err.msg, "spike:BASE:PEAK:AT:LEN") != NULL);
    loadgen_schedule_parse("ramp:1:2:xx", &s, &err);
    EXPECT(strstr(err.msg, "xx") != NULL);
}

static void test_schedule_csv(void) {
    LoadgenSchedule s;
    DpError err;
    const char *text = "time_s,rate\n0,10\n# a comment\n\n5, 20\n10,0\n";
    REQUIRE(loadgen_schedule_parse_csv_text(text, "r.csv", 0, &s, &err) == DP_OK);
    EXPECT_EQ_INT(s.n_points, 3);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 0), 10, 0);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 4.99), 10, 0);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 5), 20, 0);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 7.5), 20, 0);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 12), 0, 0);
    EXPECT_NEAR(loadgen_schedule_max_rate(&s), 20, 0);
    loadgen_schedule_free(&s);
    REQUIRE(loadgen_schedule_parse_csv_text(text, "r.csv", 1, &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 2.5), 15, 1e-12);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 7.5), 10, 1e-12);
    loadgen_schedule_free(&s);
    /* before the first point: the first point's rate */
    REQUIRE(loadgen_schedule_parse_csv_text("3,7\n4,8\n", "r.csv", 1, &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 1), 7, 0);
    loadgen_schedule_free(&s);

    struct {
        const char *text, *want;
    } bad[] = {
        {"0,10\n5,x\n", "r.csv line 2: rate is not a number"},
        {"0,10\n5,20\n3,1\n", "r.csv line 3: time 3 is not after 5"},
        {"t,r\n0,-1\n", "r.csv line 2: rate -1 is negative"},
        {"0,1\nabc\n", "r.csv line 2: expected time_s,rate"},
        {"-1,5\n", "r.csv line 1: time -1 is negative"},
        {"# only a comment\n", "r.csv: no (time_s, rate) points"},
        {"0,1\n1,nan\n", "r.csv line 2: rate is not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT(loadgen_schedule_parse_csv_text(bad[i].text, "r.csv", 0, &s, &err) == DP_ERR_PARSE);
        EXPECT_STREQ(err.msg, bad[i].want);
        EXPECT(s.pt_t == NULL && s.n_points == 0);
    }

    char path[256], spec[300];
    tmp_path(path, sizeof path, "sched.csv");
    FILE *fp = fopen(path, "w");
    REQUIRE(fp);
    fputs("time_s,rate\n0,50\n10,200\n20,50\n", fp);
    fclose(fp);
    snprintf(spec, sizeof spec, "file:%s:linear", path);
    REQUIRE(loadgen_schedule_parse(spec, &s, &err) == DP_OK);
    EXPECT(s.linear == 1);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 5), 125, 1e-9);
    loadgen_schedule_free(&s);
    snprintf(spec, sizeof spec, "file:%s", path);
    REQUIRE(loadgen_schedule_parse(spec, &s, &err) == DP_OK);
    EXPECT_NEAR(loadgen_schedule_rate(&s, 15), 200, 0);
    loadgen_schedule_free(&s);
    unlink(path);
    EXPECT(loadgen_schedule_parse("file:/nonexistent/rates.csv", &s, &err) != DP_OK);
    EXPECT(strstr(err.msg, "/nonexistent/rates.csv") != NULL);
}

// ---- arrivals ----

/* Counts arrivals in [0, horizon) into 1-second bins. */
static long count_arrivals(const LoadgenSchedule *s, int poisson, uint64_t seed, double horizon,
                           long *bins) {
    LoadgenArrivals a;
    loadgen_arrivals_init(&a, s, poisson, seed);
    long n = 0;
    double prev = -1;
    for (;;) {
        double t = loadgen_arrivals_next(&a, horizon);
        if (!isfinite(t)) break;
        if (!(t > prev) && !(prev < 0 && t == 0)) return -1; /* must increase */
        prev = t;
        if (bins) bins[(int)t]++;
        n++;
    }
    return n;
}

static void test_poisson_counts(void) {
    LoadgenSchedule s = {0};
    s.kind = LOADGEN_SCHED_STEADY;
    s.rate = 50;
    static long bins[400];
    memset(bins, 0, sizeof bins);
    long n = count_arrivals(&s, 1, 7, 200, bins);
    /* Poisson: mean 10000, sd 100; 5 sd */
    EXPECT_MSG(labs(n - 10000) <= 500, "n = %ld", n);
    double m = 0, v = 0;
    for (int i = 0; i < 200; i++) m += bins[i];
    m /= 200;
    for (int i = 0; i < 200; i++) v += (bins[i] - m) * (bins[i] - m);
    v /= 199;
    /* index of dispersion 1 for Poisson (sd of the estimate ~0.1) */
    EXPECT_MSG(v / m > 0.65 && v / m < 1.35, "dispersion %g", v / m);
    /* different seeds, different streams; same seed, same stream */
    EXPECT(count_arrivals(&s, 1, 7, 200, NULL) == n);
    EXPECT(count_arrivals(&s, 1, 8, 200, NULL) != n);

    /* evenly spaced: exactly rate * horizon, no spread */
    memset(bins, 0, sizeof bins);
    n = count_arrivals(&s, 0, 7, 200, bins);
    EXPECT_MSG(labs(n - 10000) <= 1, "n = %ld", n);
    /* every gap is 1/50 s */
    LoadgenArrivals ar;
    loadgen_arrivals_init(&ar, &s, 0, 7);
    double prev = loadgen_arrivals_next(&ar, 200), worst = 0;
    EXPECT_NEAR(prev, 0, 0);
    for (int i = 1; i < 1000; i++) {
        double t = loadgen_arrivals_next(&ar, 200);
        worst = fmax(worst, fabs(t - prev - 0.02));
        prev = t;
    }
    EXPECT_MSG(worst < 1e-9, "gap off by %g", worst);

    /* spike 50 -> 200 over [100, 150): counts per window (Poisson, 5 sd) */
    LoadgenSchedule sp;
    DpError err;
    REQUIRE(loadgen_schedule_parse("spike:50:200:100s:50s", &sp, &err) == DP_OK);
    memset(bins, 0, sizeof bins);
    n = count_arrivals(&sp, 1, 11, 200, bins);
    long before = 0, during = 0, after = 0;
    for (int i = 0; i < 100; i++) before += bins[i];
    for (int i = 100; i < 150; i++) during += bins[i];
    for (int i = 150; i < 200; i++) after += bins[i];
    EXPECT_MSG(labs(before - 5000) <= 5 * 71, "before %ld", before);
    EXPECT_MSG(labs(during - 10000) <= 500, "during %ld", during);
    EXPECT_MSG(labs(after - 2500) <= 5 * 50, "after %ld", after);
    /* and evenly spaced follows the same schedule exactly */
    n = count_arrivals(&sp, 0, 11, 200, NULL);
    EXPECT_MSG(labs(n - 17500) <= 2, "n = %ld", n);

    /* a ramp 0 -> 100 over 100 s: integral 5000 */
    REQUIRE(loadgen_schedule_parse("ramp:0:100:100s", &sp, &err) == DP_OK);
    n = count_arrivals(&sp, 1, 3, 100, NULL);
    EXPECT_MSG(labs(n - 5000) <= 5 * 71, "ramp n = %ld", n);
    n = count_arrivals(&sp, 0, 3, 100, NULL);
    EXPECT_MSG(labs(n - 5000) <= 60, "ramp even n = %ld", n);

    /* points with a silent stretch: nothing arrives during it */
    REQUIRE(loadgen_schedule_parse_csv_text("0,100\n10,0\n20,100\n", "p", 0, &sp, &err) == DP_OK);
    memset(bins, 0, sizeof bins);
    count_arrivals(&sp, 1, 5, 30, bins);
    long silent = 0;
    for (int i = 10; i < 20; i++) silent += bins[i];
    EXPECT_EQ_INT(silent, 0);
    memset(bins, 0, sizeof bins);
    count_arrivals(&sp, 0, 5, 30, bins);
    silent = 0;
    for (int i = 10; i < 20; i++) silent += bins[i];
    EXPECT_EQ_INT(silent, 0);
    EXPECT(bins[25] >= 99 && bins[25] <= 101);
    loadgen_schedule_free(&sp);

    /* a zero schedule never arrives */
    s.rate = 0;
    EXPECT_EQ_INT(count_arrivals(&s, 1, 1, 100, NULL), 0);
    EXPECT_EQ_INT(count_arrivals(&s, 0, 1, 100, NULL), 0);
}

// ---- targets and the loopback rule ----

static void test_targets_loopback(void) {
    DpError err;
    LoadgenTarget t;
    REQUIRE(loadgen_target_parse("http://127.0.0.1:8001=2", &t, &err) == DP_OK);
    EXPECT_STREQ(t.url, "http://127.0.0.1:8001");
    EXPECT_NEAR(t.weight, 2, 0);
    REQUIRE(loadgen_target_parse("http://localhost:8002/", &t, &err) == DP_OK);
    EXPECT_STREQ(t.url, "http://localhost:8002");
    EXPECT_NEAR(t.weight, 1, 0);
    EXPECT(loadgen_target_parse("http://127.0.0.1:8001=0", &t, &err) == DP_ERR_PARSE);
    EXPECT(loadgen_target_parse("http://127.0.0.1:8001=x", &t, &err) == DP_ERR_PARSE);
    EXPECT(loadgen_target_parse("http://127.0.0.1:8001/predict", &t, &err) == DP_ERR_PARSE);
    EXPECT(loadgen_target_parse("https://127.0.0.1", &t, &err) == DP_ERR_PARSE);
    EXPECT(loadgen_target_parse("http://127.0.0.1:80,x", &t, &err) == DP_ERR_PARSE);

    const char *ok[] = {"http://127.0.0.1:8001", "http://127.1.2.3", "http://localhost:80",
                        "http://LOCALHOST", "http://[::1]:8080", "http://[::ffff:127.0.0.1]:1"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        EXPECT_MSG(loadgen_url_check(ok[i], 0, &err) == DP_OK, "%s refused: %s", ok[i], err.msg);
    const char *no[] = {"http://10.0.0.1:80", "http://example.com", "http://[::2]:80",
                        "http://127.0.0.1.evil.com", "http://0.0.0.0:80", "http://128.0.0.1",
                        "http://localhost.example.org"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        EXPECT_MSG(loadgen_url_check(no[i], 0, &err) == DP_ERR_INVAL, "%s accepted", no[i]);
        EXPECT(strstr(err.msg, "--allow-remote") != NULL);
        EXPECT(loadgen_url_check(no[i], 1, &err) == DP_OK);
    }

    /* a run with one remote target refuses before sending anything */
    LoadgenConfig c;
    base_config(&c, 10, 1);
    add_target(&c, 8001, 1);
    snprintf(c.targets[1].url, LOADGEN_URL_MAX, "http://192.0.2.1:80");
    c.targets[1].weight = 1;
    c.n_targets = 2;
    char csv[256];
    tmp_path(csv, sizeof csv, "remote.csv");
    unlink(csv);
    c.csv_path = csv;
    LoadgenSummary sum;
    double t0 = dp_time_mono();
    EXPECT(loadgen_run(&c, &sum, &err) == DP_ERR_INVAL);
    EXPECT(strstr(err.msg, "192.0.2.1") != NULL);
    EXPECT(dp_time_mono() - t0 < 0.5);
    EXPECT(!dp_file_exists(csv));
    EXPECT_EQ_INT(sum.arrivals, 0);
}

// ---- whole runs ----

static void test_csv_and_summary(void) {
    QaDataset oracle;
    LoadgenConfig c;
    base_config(&c, 200, 0.5);
    build_oracle(&c.world, 0, &oracle);
    REQUIRE(oracle.n_items > 100);
    Fake *f = fake_start(FAKE_OK, 0.002, &oracle);
    add_target(&c, f->port, 1);
    char csv[256];
    tmp_path(csv, sizeof csv, "run.csv");
    c.csv_path = csv;
    LoadgenSummary s;
    DpError err;
    DpStatus st = loadgen_run(&c, &s, &err);
    fake_stop(f);
    REQUIRE(st == DP_OK);
    EXPECT_EQ_INT(s.arrivals, 100);
    EXPECT_EQ_INT(s.ok, 100);
    EXPECT_EQ_INT(s.errors, 0);
    EXPECT_NEAR(s.window_s, 0.5, 1e-9);
    EXPECT_NEAR(s.intended_rate, 200, 1e-6);
    EXPECT_NEAR(s.achieved_rate, 200, 1e-6);

    char header[512];
    int n = 0;
    Row *rows = read_csv(csv, &n, header, sizeof header);
    EXPECT_STREQ(header, "seq,intended_s,sent_s,scenario_s,target,latency_ms,service_ms,status,"
                         "error,model_version,kind,exact_match,feedback");
    REQUIRE(n == 100);
    static int seen[100];
    memset(seen, 0, sizeof seen);
    double lat[100];
    int n_fact = 0, kinds[QA_N_KINDS] = {0};
    double em_sum = 0;
    for (int i = 0; i < n; i++) {
        Row *r = &rows[i];
        REQUIRE(r->seq >= 0 && r->seq < 100);
        seen[r->seq]++;
        EXPECT_NEAR(r->intended, r->seq * 0.005, 2e-6);
        EXPECT_NEAR(r->scenario, r->intended, 2e-3); /* scale 1, start 0 */
        EXPECT(r->has_sent && r->sent >= r->intended - 1e-6);
        EXPECT(r->latency >= r->service - 1e-3);
        EXPECT(r->service >= 2.0 - 0.01); /* the fake's delay */
        EXPECT_NEAR(r->latency, (r->sent - r->intended) * 1e3 + r->service, 0.01);
        EXPECT_EQ_INT(r->status, 200);
        EXPECT_STREQ(r->error, "");
        EXPECT_STREQ(r->version, "fake-v3");
        EXPECT(strncmp(r->target, "http://127.0.0.1:", 17) == 0);
        EXPECT(r->has_em);
        kinds[qa_kind_from_name(r->kind)]++;
        /* the fake answers fact questions right and nothing else */
        if (!strcmp(r->kind, "fact")) {
            n_fact++;
            EXPECT_NEAR(r->em, 1, 0);
        } else {
            EXPECT_NEAR(r->em, 0, 0);
        }
        em_sum += r->em;
        lat[i] = r->latency;
    }
    for (int i = 0; i < 100; i++) EXPECT_EQ_INT(seen[i], 1);
    EXPECT(n_fact > 40 && n_fact < 95); /* the default mix is 70% facts */
    for (int k = 0; k < QA_N_KINDS; k++) EXPECT_EQ_INT(kinds[k], s.by_question_kind[k]);
    EXPECT_NEAR(s.exact_match, em_sum / 100, 1e-12);
    /* summary percentiles = the same quantiles of the CSV column */
    EXPECT_NEAR(s.latency.p50, dp_quantile(lat, 100, 0.50), 0.002);
    EXPECT_NEAR(s.latency.p95, dp_quantile(lat, 100, 0.95), 0.002);
    EXPECT_NEAR(s.latency.p99, dp_quantile(lat, 100, 0.99), 0.002);
    EXPECT_NEAR(s.latency.max, dp_quantile(lat, 100, 1.0), 0.002);
    EXPECT_NEAR(s.latency.mean, dp_mean(lat, 100), 0.002);
    EXPECT_EQ_INT(s.targets[0].latency.n, 100);
    EXPECT_NEAR(s.targets[0].latency.p99, s.latency.p99, 1e-9);
    EXPECT(s.cpu_s > 0 && s.cpu_s < 5);

    DpBuf js = DP_BUF_INIT;
    REQUIRE(loadgen_summary_json(&s, &js) == DP_OK);
    json_error_t je;
    json_t *doc = json_loads(js.data, 0, &je);
    REQUIRE(doc != NULL);
    EXPECT_EQ_INT(json_integer_value(json_object_get(doc, "ok")), 100);
    EXPECT_NEAR(json_real_value(json_object_get(json_object_get(doc, "latency_ms"), "p99")),
                s.latency.p99, 1e-6);
    EXPECT_EQ_INT(json_array_size(json_object_get(doc, "targets")), 1);
    json_decref(doc);
    dp_buf_free(&js);
    free(rows);
    unlink(csv);
    qa_dataset_free(&oracle);
}

static void test_coordinated_omission(void) {
    /* 100 req/s evenly for 1 s; the server freezes for 200 ms at the 30th
     * request.  Requests due during the freeze must carry the wait. */
    LoadgenConfig c;
    base_config(&c, 100, 1.0);
    Fake *f = fake_start(FAKE_OK, 0, NULL);
    f->stall_at = 30;
    f->stall_s = 0.2;
    add_target(&c, f->port, 1);
    char csv[256];
    tmp_path(csv, sizeof csv, "co.csv");
    c.csv_path = csv;
    LoadgenSummary s;
    DpError err;
    DpStatus st = loadgen_run(&c, &s, &err);
    double stall_start = f->stall_start - s.start_mono, stall_end = f->stall_until - s.start_mono;
    fake_stop(f);
    REQUIRE(st == DP_OK);
    EXPECT_EQ_INT(s.ok, 100);
    REQUIRE(stall_end > stall_start);
    int n = 0, during = 0;
    char header[512];
    Row *rows = read_csv(csv, &n, header, sizeof header);
    REQUIRE(n == 100);
    for (int i = 0; i < n; i++) {
        Row *r = &rows[i];
        if (r->intended >= stall_start && r->intended < stall_end - 0.005) {
            during++;
            double must = (stall_end - r->intended) * 1e3;
            EXPECT_MSG(r->latency >= must - 1.0, "seq %ld due %.4f: latency %.2f ms < wait %.2f ms",
                       r->seq, r->intended, r->latency, must);
        }
    }
    EXPECT_MSG(during >= 15, "only %d requests were due during the stall", during);
    EXPECT(s.latency.max >= 195);
    /* at 100 req/s, 20 requests of 100 waited: p95 must show it */
    EXPECT_MSG(s.latency.p95 >= 50, "p95 %.2f hides the stall", s.latency.p95);
    free(rows);
    unlink(csv);
}

static void test_weights(void) {
    Fake *a = fake_start(FAKE_OK, 0, NULL), *b = fake_start(FAKE_OK, 0, NULL);
    LoadgenConfig c;
    base_config(&c, 600, 0.5);
    add_target(&c, a->port, 2);
    add_target(&c, b->port, 1);
    LoadgenSummary s;
    DpError err;
    /* round-robin: exact shares */
    REQUIRE(loadgen_run(&c, &s, &err) == DP_OK);
    EXPECT_EQ_INT(s.arrivals, 300);
    EXPECT_EQ_INT(s.targets[0].requests, 200);
    EXPECT_EQ_INT(s.targets[1].requests, 100);
    EXPECT_EQ_INT(a->n_predict, 200);
    EXPECT_EQ_INT(b->n_predict, 100);
    /* weighted random: ~2/3 (binomial sd 0.027) */
    c.balance = LOADGEN_BALANCE_RANDOM;
    c.seed = 99;
    REQUIRE(loadgen_run(&c, &s, &err) == DP_OK);
    double share = (double)s.targets[0].requests / (double)s.arrivals;
    EXPECT_MSG(share > 0.58 && share < 0.75, "share %.3f", share);
    EXPECT_EQ_INT(a->n_predict, 200 + (int)s.targets[0].requests);
    EXPECT_EQ_INT(b->n_predict, 100 + (int)s.targets[1].requests);
    EXPECT_EQ_INT(s.targets[0].by_kind[LOADGEN_OK] + s.targets[1].by_kind[LOADGEN_OK], s.ok);
    fake_stop(a);
    fake_stop(b);
}

static void test_feedback(void) {
    QaDataset oracle;
    LoadgenConfig c;
    base_config(&c, 100, 1.0);
    build_oracle(&c.world, 0, &oracle);
    Fake *f = fake_start(FAKE_OK, 0, &oracle);
    add_target(&c, f->port, 1);
    c.feedback_fraction = 0.5;
    c.feedback_delay_s = 30;  /* scenario seconds */
    c.scale = 100;            /* -> 0.3 wall seconds */
    c.drain_feedback = 1;
    char csv[256];
    tmp_path(csv, sizeof csv, "fb.csv");
    c.csv_path = csv;
    LoadgenSummary s;
    DpError err;
    DpStatus st = loadgen_run(&c, &s, &err);
    REQUIRE(st == DP_OK);
    EXPECT_EQ_INT(s.ok, 100);
    /* binomial(100, 0.5): 5 sd */
    EXPECT_MSG(s.feedback_scheduled >= 25 && s.feedback_scheduled <= 75, "%llu labelled",
               (unsigned long long)s.feedback_scheduled);
    EXPECT_EQ_INT(s.feedback_sent, s.feedback_scheduled);
    EXPECT_EQ_INT(s.feedback_ok, s.feedback_scheduled);
    EXPECT_EQ_INT(s.feedback_dropped, 0);
    EXPECT_EQ_INT(f->n_fb, s.feedback_scheduled);
    int n_checked = 0, n_refs = 0;
    for (int i = 0; i < f->n_fb; i++) {
        json_error_t je;
        json_t *doc = json_loads(f->fb[i].body, 0, &je);
        const char *id = json_string_value(json_object_get(doc, "id"));
        const char *ref = json_string_value(json_object_get(doc, "reference"));
        EXPECT(id && ref && ref[0]);
        int k = id ? atoi(id + 4) : -1;
        if (k >= 0 && k < 100) {
            double wait = f->fb[i].t - f->answered[k];
            EXPECT_MSG(wait >= 0.3 - 0.002 && wait < 0.3 + 0.25, "label %d came %.4f s after", k,
                       wait);
            n_checked++;
            if (f->reference[k][0] && ref) {
                EXPECT_STREQ(ref, f->reference[k]);
                n_refs++;
            }
        }
        json_decref(doc);
    }
    EXPECT_EQ_INT(n_checked, f->n_fb);
    EXPECT(n_refs > 0);
    int n = 0, labelled = 0;
    char header[512];
    Row *rows = read_csv(csv, &n, header, sizeof header);
    for (int i = 0; i < n; i++) labelled += rows[i].feedback;
    EXPECT_EQ_INT(labelled, s.feedback_scheduled);
    free(rows);

    /* without draining, labels not yet due at the end are dropped, counted */
    c.feedback_delay_s = 3600;
    c.drain_feedback = 0;
    c.duration_s = 0.3;
    int before = f->n_fb;
    REQUIRE(loadgen_run(&c, &s, &err) == DP_OK);
    EXPECT(s.feedback_scheduled > 0);
    EXPECT_EQ_INT(s.feedback_dropped, s.feedback_scheduled);
    EXPECT_EQ_INT(s.feedback_sent, 0);
    EXPECT_EQ_INT(f->n_fb, before);
    fake_stop(f);
    unlink(csv);
    qa_dataset_free(&oracle);
}

/* One short run against a fake in mode; returns the summary. */
static void run_against(int mode, double delay, double timeout, LoadgenSummary *s) {
    Fake *f = fake_start(mode, delay, NULL);
    LoadgenConfig c;
    base_config(&c, 100, 0.1);
    c.timeout_s = timeout;
    add_target(&c, f->port, 1);
    DpError err;
    DpStatus st = loadgen_run(&c, s, &err);
    EXPECT(st == DP_OK);
    fake_stop(f);
}

static void test_error_kinds(void) {
    LoadgenSummary s;
    run_against(FAKE_500, 0, 1, &s);
    EXPECT_EQ_INT(s.by_kind[LOADGEN_ERR_HTTP_5XX], 10);
    EXPECT_EQ_INT(s.ok, 0);
    EXPECT_EQ_INT(s.errors, 10);
    run_against(FAKE_404, 0, 1, &s);
    EXPECT_EQ_INT(s.by_kind[LOADGEN_ERR_HTTP_4XX], 10);
    run_against(FAKE_GARBAGE, 0, 1, &s);
    EXPECT_EQ_INT(s.by_kind[LOADGEN_ERR_BAD_RESPONSE], 10);
    run_against(FAKE_NO_ANSWER, 0, 1, &s);
    EXPECT_EQ_INT(s.by_kind[LOADGEN_ERR_BAD_RESPONSE], 10);
    run_against(FAKE_OK, 0.3, 0.05, &s);
    EXPECT_EQ_INT(s.by_kind[LOADGEN_ERR_TIMEOUT], 10);
    EXPECT_EQ_INT(s.targets[0].by_kind[LOADGEN_ERR_TIMEOUT], 10);

    /* connection refused: a port nobody listens on */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t sl = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &sl);
    int port = ntohs(a.sin_port);
    close(fd);
    LoadgenConfig c;
    base_config(&c, 100, 0.1);
    add_target(&c, port, 1);
    DpError err;
    REQUIRE(loadgen_run(&c, &s, &err) == DP_OK);
    EXPECT_EQ_INT(s.by_kind[LOADGEN_ERR_CONNECT], 10);

    /* client overload: one worker, no backlog, a 50 ms server */
    Fake *f = fake_start(FAKE_OK, 0.05, NULL);
    base_config(&c, 100, 0.3);
    add_target(&c, f->port, 1);
    c.min_workers = 1;
    c.max_workers = 1;
    c.max_backlog = 0;
    REQUIRE(loadgen_run(&c, &s, &err) == DP_OK);
    EXPECT_EQ_INT(s.arrivals, 30);
    EXPECT(s.ok >= 3 && s.ok <= 8);
    EXPECT_EQ_INT(s.by_kind[LOADGEN_ERR_CLIENT_OVERLOAD], 30 - s.ok);
    EXPECT_EQ_INT(s.workers_peak, 1);
    /* with a backlog they wait instead, and the wait shows in the latency */
    c.max_backlog = 100;
    c.timeout_s = 10;
    REQUIRE(loadgen_run(&c, &s, &err) == DP_OK);
    EXPECT_EQ_INT(s.ok, 30);
    EXPECT(s.delayed >= 20);
    EXPECT_MSG(s.latency.max > 30 * 50 - 300 - 100, "max %.1f", s.latency.max);
    EXPECT(s.service.max < 200);
    EXPECT(s.send_lag_max_ms > 1000);
    /* ... unless they wait longer than the timeout: then they are overload */
    c.timeout_s = 0.2;
    REQUIRE(loadgen_run(&c, &s, &err) == DP_OK);
    EXPECT(s.by_kind[LOADGEN_ERR_CLIENT_OVERLOAD] >= 15);
    EXPECT_EQ_INT(s.ok + s.by_kind[LOADGEN_ERR_CLIENT_OVERLOAD], 30);
    fake_stop(f);
}

static volatile sig_atomic_t stop_flag;

static void *raise_stop(void *arg) {
    dp_sleep(*(double *)arg);
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void test_stop_flag(void) {
    Fake *f = fake_start(FAKE_OK, 0.01, NULL);
    LoadgenConfig c;
    base_config(&c, 50, 10);
    add_target(&c, f->port, 1);
    char csv[256];
    tmp_path(csv, sizeof csv, "stop.csv");
    c.csv_path = csv;
    stop_flag = 0;
    c.stop = &stop_flag;
    double after = 0.3;
    pthread_t th;
    pthread_create(&th, NULL, raise_stop, &after);
    LoadgenSummary s;
    DpError err;
    double t0 = dp_time_mono();
    DpStatus st = loadgen_run(&c, &s, &err);
    double took = dp_time_mono() - t0;
    pthread_join(th, NULL);
    fake_stop(f);
    REQUIRE(st == DP_OK);
    EXPECT(s.stopped == 1);
    EXPECT_MSG(took < 1.0, "took %.2f s", took);
    EXPECT(s.window_s > 0.2 && s.window_s < took);
    EXPECT_MSG(fabs((double)s.arrivals - 50 * s.window_s) <= 2, "%llu arrivals in %.3f s",
               (unsigned long long)s.arrivals, s.window_s);
    int n = 0;
    char header[512];
    Row *rows = read_csv(csv, &n, header, sizeof header);
    EXPECT_EQ_INT(n, s.arrivals - s.cancelled);
    EXPECT_EQ_INT(s.ok + s.errors, n);
    free(rows);
    unlink(csv);
}

static void test_scenario_clock_drift(void) {
    /* scale 10000: 0.6 wall s = 6000 scenario s; every fact changes at 1 h.
     * The fake knows the t=0 facts: right before the change, wrong after. */
    QaDataset oracle;
    LoadgenConfig c;
    base_config(&c, 300, 0.6);
    DpError err;
    REQUIRE(qa_world_schedule_parse("sudden:1h:1.0", &c.world, &err) == DP_OK);
    build_oracle(&c.world, 0, &oracle);
    Fake *f = fake_start(FAKE_OK, 0, &oracle);
    add_target(&c, f->port, 1);
    c.scale = 10000;
    char csv[256];
    tmp_path(csv, sizeof csv, "drift.csv");
    c.csv_path = csv;
    LoadgenSummary s;
    DpStatus st = loadgen_run(&c, &s, &err);
    fake_stop(f);
    REQUIRE(st == DP_OK);
    EXPECT_NEAR(s.scenario_end_s, 6000, 1e-6);
    int n = 0, before = 0, before_ok = 0, after = 0, after_ok = 0;
    char header[512];
    Row *rows = read_csv(csv, &n, header, sizeof header);
    REQUIRE(n == 180);
    for (int i = 0; i < n; i++) {
        Row *r = &rows[i];
        EXPECT_NEAR(r->scenario, r->intended * 10000, 0.01);
        if (strcmp(r->kind, "fact") != 0) continue;
        if (r->scenario < 3600) {
            before++;
            before_ok += r->em == 1;
        } else {
            after++;
            after_ok += r->em == 1;
        }
    }
    EXPECT(before > 20 && after > 20);
    EXPECT_EQ_INT(before_ok, before);
    EXPECT_MSG(after_ok <= after / 10, "%d of %d right after the change", after_ok, after);
    free(rows);
    unlink(csv);
    qa_dataset_free(&oracle);
}

static void test_cli(void) {
    REQUIRE_BINARY(DP_BINARY);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s loadgen --help > /dev/null", DP_BINARY);
    EXPECT_EQ_INT(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof cmd,
             "%s loadgen --target http://192.0.2.1:80 --duration 1 2>/dev/null", DP_BINARY);
    EXPECT_EQ_INT(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s loadgen --duration 1 2>/dev/null", DP_BINARY);
    EXPECT_EQ_INT(WEXITSTATUS(system(cmd)), 2); /* no target */
    /* a real run through the CLI, JSON on stdout */
    Fake *f = fake_start(FAKE_OK, 0, NULL);
    char out[256];
    tmp_path(out, sizeof out, "cli.json");
    snprintf(cmd, sizeof cmd,
             "%s loadgen --target http://127.0.0.1:%d --rate 100 --arrivals constant "
             "--duration 0.2 --json > %s 2>/dev/null",
             DP_BINARY, f->port, out);
    int rc = system(cmd);
    fake_stop(f);
    EXPECT_EQ_INT(WEXITSTATUS(rc), 0);
    json_error_t je;
    json_t *doc = json_load_file(out, 0, &je);
    EXPECT(doc != NULL);
    EXPECT_EQ_INT(json_integer_value(json_object_get(doc, "ok")), 20);
    json_decref(doc);
    unlink(out);
}

// ---- benchmark (only with LOADGEN_BENCH=1) ----

static void bench_max_rate(void) {
    if (!getenv("LOADGEN_BENCH")) TEST_SKIP("benchmark; set LOADGEN_BENCH=1 to run");
    Fake *f = fake_start(FAKE_OK, 0, NULL);
    const double rates[] = {200, 400, 800, 1600, 3200, 6400};
    double dur = getenv("LOADGEN_BENCH_S") ? atof(getenv("LOADGEN_BENCH_S")) : 3;
    printf("[");
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        LoadgenConfig c;
        base_config(&c, rates[i], dur);
        c.poisson = 1;
        add_target(&c, f->port, 1);
        LoadgenSummary s;
        DpError err;
        REQUIRE(loadgen_run(&c, &s, &err) == DP_OK);
        printf("%s\n {\"intended_rate\": %.1f, \"achieved_rate\": %.1f, \"ok\": %llu, "
               "\"errors\": %llu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
               "\"send_lag_p99_ms\": %.3f, \"workers_peak\": %d, \"client_cpu_percent\": %.1f}",
               i ? "," : "", s.intended_rate, s.achieved_rate, (unsigned long long)s.ok,
               (unsigned long long)s.errors, s.latency.p50, s.latency.p99, s.latency.max,
               s.send_lag_p99_ms, s.workers_peak, s.cpu_percent);
        fflush(stdout);
    }
    printf("\n]\n");
    fake_stop(f);
}

TEST_MAIN(TEST_CASE(test_schedule_rates), TEST_CASE(test_schedule_csv),
          TEST_CASE(test_poisson_counts), TEST_CASE(test_targets_loopback),
          TEST_CASE(test_csv_and_summary), TEST_CASE(test_coordinated_omission),
          TEST_CASE(test_weights), TEST_CASE(test_feedback), TEST_CASE(test_error_kinds),
          TEST_CASE(test_stop_flag), TEST_CASE(test_scenario_clock_drift), TEST_CASE(test_cli),
          TEST_CASE(bench_max_rate))
