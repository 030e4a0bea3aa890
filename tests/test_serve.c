/* Tests of the inference service (src/serve), in process on 127.0.0.1 with
 * port 0.  The model is a random GPT-2 made here (gpt2_create) with a small
 * BPE tokenizer trained here (bpe_train) on QA-like text, saved as a Hugging
 * Face directory in a temp dir: the answers are nonsense, but greedy answers
 * are deterministic, so every answer is checked against a direct
 * gpt2_generate on the same prompt.  Also: request parsing, metrics parsed
 * back (and linted with promtool when it is installed), feedback and its
 * log, hot reload under load with zero failed requests, auth, bad input of
 * every kind, slow and half-closed clients, graceful stop, and the CLI. */
#include "test.h"

#include "metrics.h"
#include "nn.h"
#include "qa.h"
#include "serve.h"
#include "train.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// ---- fixtures: two random models sharing one trained tokenizer ----

static char tmpdir[256];
static char model_a[512], model_b[512];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void cleanup(void) {
    if (tmpdir[0] && test_failures_ == 0) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *corpus[] = {
    "Q: Who owns billing-api?\nA: team-red\n",
    "Q: Which region runs auth-service?\nA: eu-west\n",
    "Q: What version is search-api on?\nA: v2.3\n",
    "Context: The ledger service is written in Rust.\nQ: What language is ledger written in?\nA: "
    "Rust\n",
    "Q: What is 47 plus 18?\nA: 65\n",
    "Q: Who is on call for payments?\nA: alice\n",
    "Q: What is 12 minus 5?\nA: 7\n",
    "Context: Orders run in us-east and are owned by team-blue.\nQ: Who owns orders?\nA: "
    "team-blue\n",
};

static int make_model(const BpeTokenizer *tok, uint64_t seed, const char *dir) {
    DpError err = {0};
    Gpt2Config cfg = {0};
    cfg.n_layer = 2;
    cfg.n_head = 2;
    cfg.n_embd = 32;
    cfg.n_inner = 128;
    cfg.n_positions = 512; /* room for the world's comprehension contexts */
    cfg.vocab_size = bpe_vocab_size(tok);
    cfg.layer_norm_epsilon = 1e-5f;
    cfg.activation = GPT2_ACT_GELU_TANH;
    cfg.bos_token_id = cfg.eos_token_id = bpe_eot_id(tok);
    Gpt2 *m = NULL;
    int ok = gpt2_create(&cfg, seed, &m, &err) == DP_OK &&
             gpt2_save_dir(m, dir, NULL, &err) == DP_OK && bpe_save_dir(tok, dir, &err) == DP_OK;
    if (!ok) fprintf(stderr, "make_model: %s\n", err.msg);
    gpt2_free(m);
    return ok;
}

static int setup(void) {
    if (tmpdir[0]) return model_a[0] != 0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_serve_XXXXXX");
    if (!mkdtemp(tmpdir)) return 0;
    atexit(cleanup);
    DpError err = {0};
    BpeTrainOptions o = {0};
    o.vocab_size = 320;
    BpeTokenizer *tok = NULL;
    if (bpe_train(corpus, NULL, sizeof corpus / sizeof corpus[0], &o, &tok, &err) != DP_OK) {
        fprintf(stderr, "bpe_train: %s\n", err.msg);
        return 0;
    }
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/model-a", tmpdir);
    snprintf(b, sizeof b, "%s/model-b", tmpdir);
    int ok = make_model(tok, 1, a) && make_model(tok, 2, b);
    bpe_free(tok);
    if (!ok) return 0;
    snprintf(model_a, sizeof model_a, "%s", a);
    snprintf(model_b, sizeof model_b, "%s", b);
    return 1;
}

/* Greedy answer of the model in dir, computed without the service. */
typedef struct {
    const BpeTokenizer *tok;
} StopCtx;
static int stop_newline(void *ctx, int seq, const int *tokens, int n) {
    (void)seq;
    size_t len = 0;
    const char *b = bpe_token_bytes(((StopCtx *)ctx)->tok, tokens[n - 1], &len);
    return b && memchr(b, '\n', len) != NULL;
}

static int direct_answer(const char *dir, const char *question, const char *context, int max_new,
                         char *answer, size_t cap, int *n_prompt, int *n_completion) {
    DpError err = {0};
    Gpt2 *m = NULL;
    BpeTokenizer *tok = NULL;
    Gpt2Generator *g = NULL;
    int *ids = NULL, *out = NULL, ok = 0;
    char *text = NULL;
    size_t n_ids = 0, tlen = 0;
    char prompt[2048];
    qa_prompt_format(question, context, prompt, sizeof prompt);
    if (gpt2_load_dir(dir, &m, &err) || bpe_load_dir(dir, &tok, &err) ||
        gpt2_generator_create(m, 1, 0, 64, &g, &err) ||
        bpe_encode(tok, prompt, strlen(prompt), 0, &ids, &n_ids, &err))
        goto out;
    out = malloc((size_t)max_new * sizeof(int));
    StopCtx sc = {tok};
    Gpt2Sampling s = gpt2_sampling_default();
    s.max_new_tokens = max_new;
    s.eos_id = bpe_eot_id(tok);
    s.stop = stop_newline;
    s.stop_ctx = &sc;
    int plen = (int)n_ids, olen = 0;
    const int *prompts[1] = {ids};
    if (gpt2_generate(g, 1, prompts, &plen, &s, NULL, &out, &olen, &err)) goto out;
    if (olen > 0 && out[olen - 1] == s.eos_id) olen--; /* the service drops end-of-text */
    if (bpe_decode_text(tok, out, (size_t)olen, &text, &tlen, &err)) goto out;
    qa_answer_extract(text, answer, cap);
    *n_prompt = plen;
    *n_completion = olen;
    ok = 1;
out:
    if (!ok) fprintf(stderr, "direct_answer: %s\n", err.msg);
    free(text);
    free(out);
    free(ids);
    gpt2_generator_destroy(g);
    bpe_free(tok);
    gpt2_free(m);
    return ok;
}

// ---- HTTP helpers ----

static Serve *start(ServeConfig *cfg, int *port) {
    DpError err = {0};
    Serve *s = NULL;
    if (serve_create(cfg, &s, &err) != DP_OK || serve_start(s, port, &err) != DP_OK) {
        fprintf(stderr, "start: %s\n", err.msg);
        serve_destroy(s);
        return NULL;
    }
    return s;
}

static void url_of(char *url, size_t cap, int port, const char *path) {
    snprintf(url, cap, "http://127.0.0.1:%d%s", port, path);
}

/* POST (or any method) and parse the JSON answer; returns the status or -1. */
static int call(int port, const char *method, const char *path, const char *headers,
                const char *body, size_t len, json_t **out) {
    char url[256];
    url_of(url, sizeof url, port, path);
    char *resp = NULL;
    size_t rlen = 0;
    int status = 0;
    DpError err = {0};
    if (out) *out = NULL;
    if (metrics_http_request(method, url, headers, body, len, 10.0, &resp, &rlen, &status, &err)) {
        fprintf(stderr, "call %s %s: %s\n", method, path, err.msg);
        return -1;
    }
    if (out) *out = json_loadb(resp, rlen, 0, NULL);
    free(resp);
    return status;
}

static int post(int port, const char *path, const char *json, json_t **out) {
    char url[256];
    url_of(url, sizeof url, port, path);
    char *resp = NULL;
    size_t rlen = 0;
    int status = 0;
    DpError err = {0};
    if (out) *out = NULL;
    if (metrics_http_post_json(url, json, 10.0, &resp, &rlen, &status, &err)) {
        fprintf(stderr, "post %s: %s\n", path, err.msg);
        return -1;
    }
    if (out) *out = json_loadb(resp, rlen, 0, NULL);
    free(resp);
    return status;
}

static char *predict_body(const char *q, const char *ctx, int max_new) {
    json_t *j = json_pack("{s:s, s:i}", "question", q, "max_new_tokens", max_new);
    if (ctx) json_object_set_new(j, "context", json_string(ctx));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static const char *jstr(json_t *j, const char *k) {
    return json_string_value(json_object_get(j, k));
}

/* Fetches /metrics, parses it; when promtool is installed, lints it. */
static int get_metrics(int port, MetricsParsed *p, int lint) {
    char url[256];
    url_of(url, sizeof url, port, "/metrics");
    char *body = NULL;
    size_t len = 0;
    int status = 0;
    DpError err = {0};
    memset(p, 0, sizeof *p);
    if (metrics_http_get(url, 5.0, &body, &len, &status, &err) || status != 200) return 0;
    int ok = metrics_parse(body, len, p, &err) == DP_OK;
    if (!ok) fprintf(stderr, "metrics_parse: %s\n", err.msg);
    if (ok && lint && system("command -v promtool >/dev/null 2>&1") == 0) {
        char path[512], cmd[1200];
        snprintf(path, sizeof path, "%s/metrics.txt", tmpdir);
        FILE *f = fopen(path, "w");
        fwrite(body, 1, len, f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s.out 2>&1", path, path);
        int rc = system(cmd);
        snprintf(cmd, sizeof cmd, "%s.out", path);
        char *out = NULL;
        size_t olen = 0;
        dp_read_file(cmd, &out, &olen, &err);
        EXPECT_MSG(rc == 0 && olen == 0, "promtool check metrics: rc %d: %s", rc, out ? out : "");
        free(out);
    }
    free(body);
    return ok;
}

static double sample_value(const MetricsParsed *p, const char *name, const char *l1, const char *v1,
                           const char *l2, const char *v2) {
    const char *kv[4] = {l1, v1, l2, v2};
    const MetricSample *s = metrics_parsed_find(p, name, kv, l1 ? (l2 ? 2 : 1) : 0);
    return s ? s->value : NAN;
}

// ---- parsing (no server) ----

static void test_parse_predict(void) {
    ServeLimits lim;
    serve_limits_default(&lim);
    ServePredictRequest r;
    DpError err = {0};
#define PARSE_OK(text)                                                                             \
    EXPECT_MSG(serve_parse_predict(text, strlen(text), &lim, &r, &err) == DP_OK, "%s: %s", text,   \
               err.msg)
#define PARSE_FAIL(text, needle)                                                                   \
    do {                                                                                           \
        err.msg[0] = 0;                                                                            \
        EXPECT_MSG(serve_parse_predict(text, strlen(text), &lim, &r, &err) != DP_OK &&             \
                       strstr(err.msg, needle) && r.question == NULL,                              \
                   "%s -> \"%s\" (wanted \"%s\")", text, err.msg, needle);                         \
    } while (0)
    PARSE_OK("{\"question\": \"Who owns billing-api?\"}");
    EXPECT_STREQ(r.question, "Who owns billing-api?");
    EXPECT(r.context == NULL);
    EXPECT_EQ_INT(r.max_new_tokens, 32);
    EXPECT_NEAR(r.temperature, 0, 0);
    EXPECT_NEAR(r.top_p, 1, 0);
    serve_predict_request_free(&r);
    PARSE_OK(
        "{\"question\": \"q\", \"context\": \"c\", \"max_new_tokens\": 5, \"temperature\": 0.7, "
        "\"top_k\": 40, \"top_p\": 0.9, \"extra\": [1,2]}");
    EXPECT_STREQ(r.context, "c");
    EXPECT_EQ_INT(r.max_new_tokens, 5);
    EXPECT_EQ_INT(r.top_k, 40);
    EXPECT_NEAR(r.top_p, 0.9, 1e-12);
    EXPECT_NEAR(r.temperature, 0.7, 1e-12);
    serve_predict_request_free(&r);
    PARSE_OK("{\"question\": \"q\", \"temperature\": 1e-40}");
    EXPECT_NEAR(r.temperature, 0, 0);
    serve_predict_request_free(&r);
    PARSE_OK("{\"question\": \"q\", \"max_new_tokens\": 8.0, \"context\": \"\"}");
    EXPECT_EQ_INT(r.max_new_tokens, 8);
    EXPECT(r.context == NULL);
    serve_predict_request_free(&r);

    PARSE_FAIL("", "empty body");
    PARSE_FAIL("{\"question\": ", "malformed JSON");
    PARSE_FAIL("[1, 2]", "JSON object");
    PARSE_FAIL("{}", "missing field \"question\"");
    PARSE_FAIL("{\"question\": 42}", "\"question\": expected a string");
    PARSE_FAIL("{\"question\": \"  \\n \"}", "\"question\" is empty");
    PARSE_FAIL("{\"question\": \"q\", \"max_new_tokens\": \"8\"}",
               "\"max_new_tokens\": expected an integer");
    PARSE_FAIL("{\"question\": \"q\", \"max_new_tokens\": 500}", "expected 1..128, got 500");
    PARSE_FAIL("{\"question\": \"q\", \"max_new_tokens\": 0}", "max_new_tokens");
    PARSE_FAIL("{\"question\": \"q\", \"max_new_tokens\": 2.5}", "expected an integer");
    PARSE_FAIL("{\"question\": \"q\", \"temperature\": -1}", "\"temperature\"");
    PARSE_FAIL("{\"question\": \"q\", \"top_p\": 0}", "\"top_p\"");
    PARSE_FAIL("{\"question\": \"q\", \"top_p\": 1.5}", "\"top_p\"");
    PARSE_FAIL("{\"question\": \"q\", \"top_k\": true}", "\"top_k\"");
    PARSE_FAIL("{\"question\": \"q\", \"context\": 7}", "\"context\": expected a string");
    PARSE_FAIL("{\"question\": \"a\\u0000b\"}", "malformed JSON");
    PARSE_FAIL("{\"question\": \"q\", \"question\": \"r\"}", "malformed JSON");
    PARSE_FAIL("{\"question\": \"\xff\xfe\"}", "not valid UTF-8 (byte 14)");
    PARSE_FAIL("{\"question\": \"\xc0\xaf\"}", "not valid UTF-8");     /* overlong '/' */
    PARSE_FAIL("{\"question\": \"\xed\xa0\x80\"}", "not valid UTF-8"); /* surrogate */
    PARSE_FAIL("{\"question\": \"\xe2\x82\"}", "not valid UTF-8");     /* truncated */
    char big[5200];
    memset(big, 'x', sizeof big);
    memcpy(big, "{\"question\": \"", 14);
    memcpy(big + sizeof big - 3, "\"}", 3);
    PARSE_FAIL(big, "\"question\" too long: 5183 bytes (limit 4096)");
    lim.max_body_bytes = 100;
    PARSE_FAIL(big, "body too large");
    serve_limits_default(&lim);
    /* A valid multi-byte question passes. */
    PARSE_OK("{\"question\": \"Wer besitzt die Caf\xc3\xa9-API? \xe2\x82\xac \xf0\x9f\x98\x80\"}");
    serve_predict_request_free(&r);
#undef PARSE_OK
#undef PARSE_FAIL
}

static void test_parse_feedback_reload(void) {
    ServeLimits lim;
    serve_limits_default(&lim);
    DpError err = {0};
    ServeFeedbackRequest f;
    const char *t1 = "{\"id\": \"abc-1\", \"reference\": \"team-red\"}";
    EXPECT(serve_parse_feedback(t1, strlen(t1), &lim, &f, &err) == DP_OK);
    EXPECT_STREQ(f.id, "abc-1");
    EXPECT_STREQ(f.reference, "team-red");
    serve_feedback_request_free(&f);
    const char *t2 = "{\"question\": \"q\", \"prediction\": \"p\", \"reference\": \"r\"}";
    EXPECT(serve_parse_feedback(t2, strlen(t2), &lim, &f, &err) == DP_OK);
    EXPECT(f.id == NULL);
    EXPECT_STREQ(f.prediction, "p");
    serve_feedback_request_free(&f);
    const char *t3 = "{\"question\": \"q\", \"reference\": \"r\"}";
    EXPECT(serve_parse_feedback(t3, strlen(t3), &lim, &f, &err) != DP_OK);
    EXPECT(strstr(err.msg, "\"prediction\"") != NULL);
    const char *t4 = "{\"id\": \"x-1\"}";
    EXPECT(serve_parse_feedback(t4, strlen(t4), &lim, &f, &err) != DP_OK);
    EXPECT(strstr(err.msg, "missing field \"reference\"") != NULL);

    ServeReloadRequest r;
    const char *r1 = "{\"version\": \"v2\"}";
    EXPECT(serve_parse_reload(r1, strlen(r1), &lim, &r, &err) == DP_OK);
    EXPECT_STREQ(r.version, "v2");
    serve_reload_request_free(&r);
    const char *r2 = "{\"version\": \"v2\", \"model_dir\": \"/x\"}";
    EXPECT(serve_parse_reload(r2, strlen(r2), &lim, &r, &err) != DP_OK);
    EXPECT(strstr(err.msg, "exactly one") != NULL);
    const char *r3 = "{}";
    EXPECT(serve_parse_reload(r3, strlen(r3), &lim, &r, &err) != DP_OK);
    serve_reload_request_free(&r); /* safe on the zeroed struct */
}

// ---- answers ----

static const char *questions[][2] = {
    {"Who owns billing-api?", NULL},
    {"Which region runs auth-service?", NULL},
    {"What is 47 plus 18?", NULL},
    {"What language is ledger written in?", "The ledger service is written in Rust."},
    {"Who is on call for payments?", NULL},
    {"What version is search-api on?", NULL},
};
#define N_QUESTIONS 6
#define MAX_NEW 12

static char expected[N_QUESTIONS][256];
static int expected_prompt[N_QUESTIONS], expected_completion[N_QUESTIONS];

static int compute_expected(void) {
    static int done = 0;
    if (done) return 1;
    for (int i = 0; i < N_QUESTIONS; i++)
        if (!direct_answer(model_a, questions[i][0], questions[i][1], MAX_NEW, expected[i],
                           sizeof expected[i], &expected_prompt[i], &expected_completion[i]))
            return 0;
    done = 1;
    return 1;
}

static void test_predict_matches_direct_generation(void) {
    REQUIRE(setup());
    REQUIRE(compute_expected());
    ServeConfig cfg;
    serve_config_default(&cfg);
    cfg.model_dir = model_a;
    cfg.port = 0;
    cfg.target = "aws";
    int port = 0;
    Serve *s = start(&cfg, &port);
    REQUIRE(s);
    EXPECT(port > 0);
    EXPECT_EQ_INT(serve_port(s), port);
    for (int i = 0; i < N_QUESTIONS; i++) {
        char *body = predict_body(questions[i][0], questions[i][1], MAX_NEW);
        json_t *j = NULL;
        EXPECT_EQ_INT(post(port, "/predict", body, &j), 200);
        free(body);
        EXPECT_STREQ(jstr(j, "answer"), expected[i]);
        EXPECT_STREQ(jstr(j, "model_version"), "model-a");
        EXPECT_STREQ(jstr(j, "target"), "aws");
        EXPECT(jstr(j, "id") && strlen(jstr(j, "id")) > 3);
        EXPECT_EQ_INT(json_integer_value(json_object_get(j, "prompt_tokens")), expected_prompt[i]);
        EXPECT_EQ_INT(json_integer_value(json_object_get(j, "completion_tokens")),
                      expected_completion[i]);
        double lat = json_number_value(json_object_get(j, "latency_ms"));
        EXPECT(lat > 0 && lat < 5000);
        json_decref(j);
    }
    /* /healthz says ready, with the version. */
    json_t *h = NULL;
    EXPECT_EQ_INT(call(port, "GET", "/healthz", NULL, NULL, 0, &h), 200);
    EXPECT(json_is_true(json_object_get(h, "ready")));
    EXPECT_STREQ(jstr(h, "model_version"), "model-a");
    json_decref(h);
    /* Sampling with a temperature also works (any answer; a valid id). */
    json_t *j = NULL;
    EXPECT_EQ_INT(post(port, "/predict",
                       "{\"question\": \"Who owns billing-api?\", \"temperature\": 1.0, "
                       "\"top_k\": 20, \"top_p\": 0.9, \"max_new_tokens\": 4}",
                       &j),
                  200);
    EXPECT(json_integer_value(json_object_get(j, "completion_tokens")) <= 4);
    json_decref(j);
    serve_destroy(s);
}

// ---- concurrency and metrics ----

typedef struct {
    int port;
    int id;
    int n;
    int max_new;
    atomic_int *ok, *fail, *mismatch;
    char version_seen[64];
    const char *expect_dir; /* NULL: do not compare answers */
} Client;

static void *client_main(void *arg) {
    Client *c = arg;
    for (int k = 0; k < c->n; k++) {
        int qi = (c->id + k) % N_QUESTIONS;
        char *body = predict_body(questions[qi][0], questions[qi][1], c->max_new);
        json_t *j = NULL;
        int st = post(c->port, "/predict", body, &j);
        free(body);
        if (st == 200 && j && jstr(j, "answer")) {
            atomic_fetch_add(c->ok, 1);
            snprintf(c->version_seen, sizeof c->version_seen, "%s", jstr(j, "model_version"));
            if (c->expect_dir && strcmp(jstr(j, "answer"), expected[qi]) != 0) {
                atomic_fetch_add(c->mismatch, 1);
                fprintf(stderr, "  q%d: \"%s\" vs expected \"%s\"\n", qi, jstr(j, "answer"),
                        expected[qi]);
            }
        } else {
            atomic_fetch_add(c->fail, 1);
            fprintf(stderr, "  client %d request %d: status %d\n", c->id, k, st);
        }
        json_decref(j);
    }
    return NULL;
}

static void test_concurrent_clients_batched_and_metrics(void) {
    REQUIRE(setup());
    REQUIRE(compute_expected());
    ServeConfig cfg;
    serve_config_default(&cfg);
    cfg.model_dir = model_a;
    cfg.port = 0;
    cfg.batch_wait_ms = 20; /* a generous window so that the batches are visible */
    cfg.max_batch = 8;
    int port = 0;
    Serve *s = start(&cfg, &port);
    REQUIRE(s);
    enum { NT = 12, PER = 5 };
    pthread_t th[NT];
    Client cl[NT];
    atomic_int ok = 0, fail = 0, mismatch = 0;
    for (int i = 0; i < NT; i++) {
        cl[i] = (Client){.port = port,
                         .id = i,
                         .n = PER,
                         .max_new = MAX_NEW,
                         .ok = &ok,
                         .fail = &fail,
                         .mismatch = &mismatch,
                         .expect_dir = model_a};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    EXPECT_EQ_INT(ok, NT * PER);
    EXPECT_EQ_INT(fail, 0);
    /* Batched decoding gives the same greedy answers as one at a time. */
    EXPECT_EQ_INT(mismatch, 0);
    /* Some requests of other routes, to count. */
    EXPECT_EQ_INT(call(port, "GET", "/nope", NULL, NULL, 0, NULL), 404);
    EXPECT_EQ_INT(call(port, "GET", "/predict", NULL, NULL, 0, NULL), 405);
    EXPECT_EQ_INT(post(port, "/predict", "{", NULL), 400);

    MetricsParsed p;
    REQUIRE(get_metrics(port, &p, 1));
    EXPECT_NEAR(sample_value(&p, "http_requests_total", "route", "/predict", "code", "200"),
                NT * PER, 0);
    EXPECT_NEAR(sample_value(&p, "http_requests_total", "route", "/predict", "code", "400"), 1, 0);
    EXPECT_NEAR(sample_value(&p, "http_requests_total", "route", "/predict", "code", "405"), 1, 0);
    EXPECT_NEAR(sample_value(&p, "http_requests_total", "route", "other", "code", "404"), 1, 0);
    EXPECT_NEAR(
        sample_value(&p, "http_request_duration_seconds_count", "route", "/predict", NULL, NULL),
        NT * PER + 2, 0);
    double steps = sample_value(&p, "llm_batch_size_count", NULL, NULL, NULL, NULL);
    double seqs = sample_value(&p, "llm_batch_size_sum", NULL, NULL, NULL, NULL);
    EXPECT(steps > 0);
    /* Batching happened: decode steps carried more than one sequence on average. */
    EXPECT_MSG(seqs / steps > 1.5, "mean batch %.2f over %.0f steps", seqs / steps, steps);
    double gen = sample_value(&p, "llm_generated_tokens_total", NULL, NULL, NULL, NULL);
    int want_gen = 0;
    for (int i = 0; i < NT; i++)
        for (int k = 0; k < PER; k++)
            want_gen += expected_completion[(i + k) % N_QUESTIONS];
    EXPECT_NEAR(gen, want_gen, 0);
    EXPECT_NEAR(sample_value(&p, "llm_queue_depth", NULL, NULL, NULL, NULL), 0, 0);
    EXPECT_NEAR(sample_value(&p, "llm_model_info", "version", "model-a", "target", "local"), 1, 0);
    EXPECT(sample_value(&p, "process_resident_memory_bytes", NULL, NULL, NULL, NULL) > 1e6);
    EXPECT(sample_value(&p, "process_cpu_seconds_total", NULL, NULL, NULL, NULL) > 0);
    EXPECT(metrics_parsed_find(&p, "llm_bleu", NULL, 0) != NULL);
    metrics_parsed_free(&p);
    serve_destroy(s);
}

static void test_no_batching_mode(void) {
    REQUIRE(setup());
    REQUIRE(compute_expected());
    ServeConfig cfg;
    serve_config_default(&cfg);
    cfg.model_dir = model_a;
    cfg.port = 0;
    cfg.batching = 0;
    int port = 0;
    Serve *s = start(&cfg, &port);
    REQUIRE(s);
    enum { NT = 4, PER = 3 };
    pthread_t th[NT];
    Client cl[NT];
    atomic_int ok = 0, fail = 0, mismatch = 0;
    for (int i = 0; i < NT; i++) {
        cl[i] = (Client){.port = port,
                         .id = i,
                         .n = PER,
                         .max_new = MAX_NEW,
                         .ok = &ok,
                         .fail = &fail,
                         .mismatch = &mismatch,
                         .expect_dir = model_a};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    EXPECT_EQ_INT(ok, NT * PER);
    EXPECT_EQ_INT(mismatch, 0);
    MetricsParsed p;
    REQUIRE(get_metrics(port, &p, 0));
    /* One sequence per step, always. */
    EXPECT_NEAR(sample_value(&p, "llm_batch_size_sum", NULL, NULL, NULL, NULL),
                sample_value(&p, "llm_batch_size_count", NULL, NULL, NULL, NULL), 0);
    metrics_parsed_free(&p);
    serve_destroy(s);
}

// ---- feedback ----

static int count_lines(const char *path) {
    char *text = NULL;
    size_t len = 0;
    DpError err;
    if (dp_read_file(path, &text, &len, &err)) return -1;
    int n = 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    free(text);
    return n;
}

static void test_feedback_scores_and_log(void) {
    REQUIRE(setup());
    char log[512];
    snprintf(log, sizeof log, "%s/labelled.jsonl", tmpdir);
    remove(log);
    ServeConfig cfg;
    serve_config_default(&cfg);
    cfg.model_dir = model_a;
    cfg.port = 0;
    cfg.feedback_log = log;
    cfg.feedback_window = 4;
    int port = 0;
    Serve *s = start(&cfg, &port);
    REQUIRE(s);
    json_t *j = NULL;
    REQUIRE(post(port, "/predict",
                 "{\"question\": \"Who owns billing-api?\", \"max_new_tokens\": 6}", &j) == 200);
    char id[64], pred[256];
    snprintf(id, sizeof id, "%s", jstr(j, "id"));
    snprintf(pred, sizeof pred, "%s", jstr(j, "answer"));
    json_decref(j);

    /* reference == prediction: accuracy 1 (a nonsense answer still equals itself;
     * an empty one normalises to "" and is an exact match too). */
    json_t *fb = json_pack("{s:s, s:s}", "id", id, "reference", pred);
    char *body = json_dumps(fb, JSON_COMPACT);
    json_decref(fb);
    EXPECT_EQ_INT(post(port, "/feedback", body, &j), 200);
    free(body);
    EXPECT_NEAR(json_number_value(json_object_get(j, "exact_match")), 1, 0);
    EXPECT_EQ_INT(json_integer_value(json_object_get(j, "window")), 1);
    json_decref(j);
    MetricsParsed p;
    REQUIRE(get_metrics(port, &p, 0));
    EXPECT_NEAR(sample_value(&p, "llm_accuracy", NULL, NULL, NULL, NULL), 1, 0);
    EXPECT_NEAR(sample_value(&p, "llm_feedback_window_size", NULL, NULL, NULL, NULL), 1, 0);
    metrics_parsed_free(&p);

    /* A wrong reference: exact match 0, so the rolling accuracy is 1/2. */
    fb = json_pack("{s:s, s:s}", "id", id, "reference", "zzz-definitely-not-it");
    body = json_dumps(fb, JSON_COMPACT);
    json_decref(fb);
    EXPECT_EQ_INT(post(port, "/feedback", body, &j), 200);
    free(body);
    EXPECT_NEAR(json_number_value(json_object_get(j, "exact_match")), 0, 0);
    EXPECT_NEAR(json_number_value(json_object_get(j, "f1")), 0, 0);
    json_decref(j);
    /* Inline form: exact answer, with known scores. */
    EXPECT_EQ_INT(
        post(port, "/feedback",
             "{\"question\": \"q\", \"prediction\": \"team red\", \"reference\": \"team blue\"}",
             &j),
        200);
    EXPECT_NEAR(json_number_value(json_object_get(j, "bleu1")), 0.5, 1e-12);
    EXPECT_NEAR(json_number_value(json_object_get(j, "f1")), 0.5, 1e-12);
    json_decref(j);
    REQUIRE(get_metrics(port, &p, 1));
    EXPECT_NEAR(sample_value(&p, "llm_accuracy", NULL, NULL, NULL, NULL), 1.0 / 3, 1e-12);
    EXPECT_NEAR(sample_value(&p, "llm_feedback_total", NULL, NULL, NULL, NULL), 3, 0);
    metrics_parsed_free(&p);
    /* Window of 4: two more exact matches push the first out: (0+0.. ) */
    for (int i = 0; i < 3; i++)
        EXPECT_EQ_INT(post(port, "/feedback",
                           "{\"question\": \"q\", \"prediction\": \"x\", \"reference\": \"x\"}",
                           NULL),
                      200);
    REQUIRE(get_metrics(port, &p, 0));
    /* window now holds: wrong(0), inline(0), 1, 1, 1 minus the oldest (1) -> 0,0,1,1,1 last 4 =
     * 0,1,1,1 */
    EXPECT_NEAR(sample_value(&p, "llm_accuracy", NULL, NULL, NULL, NULL), 0.75, 1e-12);
    EXPECT_NEAR(sample_value(&p, "llm_feedback_window_size", NULL, NULL, NULL, NULL), 4, 0);
    metrics_parsed_free(&p);

    /* Unknown ids: 404 naming the id. */
    EXPECT_EQ_INT(post(port, "/feedback", "{\"id\": \"deadbeef-99\", \"reference\": \"x\"}", &j),
                  404);
    EXPECT(jstr(j, "error") && strstr(jstr(j, "error"), "unknown id"));
    json_decref(j);
    EXPECT_EQ_INT(post(port, "/feedback", "{\"id\": 5, \"reference\": \"x\"}", NULL), 400);

    /* The log has a line per accepted feedback, flushed before the answer. */
    EXPECT_EQ_INT(count_lines(log), 6);
    serve_destroy(s);
    char *text = NULL;
    size_t len = 0;
    DpError err;
    REQUIRE(dp_read_file(log, &text, &len, &err) == DP_OK);
    char *nl = strchr(text, '\n');
    REQUIRE(nl);
    json_t *first = json_loadb(text, (size_t)(nl - text), 0, NULL);
    EXPECT(first != NULL);
    EXPECT_STREQ(jstr(first, "id"), id);
    EXPECT_STREQ(jstr(first, "question"), "Who owns billing-api?");
    EXPECT_STREQ(jstr(first, "prediction"), pred);
    EXPECT_STREQ(jstr(first, "reference"), pred);
    EXPECT_STREQ(jstr(first, "model_version"), "model-a");
    EXPECT(json_number_value(json_object_get(first, "time")) > 1.7e9);
    EXPECT(json_object_get(first, "context") != NULL);
    json_decref(first);
    free(text);
}

// ---- hot reload and auth ----

static void test_reload_under_load_and_auth(void) {
    REQUIRE(setup());
    REQUIRE(compute_expected());
    DpError err = {0};
    char regdir[512];
    snprintf(regdir, sizeof regdir, "%s/registry", tmpdir);
    Registry *reg = NULL;
    char v1[REGISTRY_ID_MAX], v2[REGISTRY_ID_MAX];
    RegistryPublishInfo info = {0};
    REQUIRE(registry_open(regdir, &reg, &err) == DP_OK);
    REQUIRE(registry_publish(reg, model_a, &info, v1, &err) == DP_OK);
    REQUIRE(registry_promote(reg, v1, "aws", &err) == DP_OK);
    REQUIRE(registry_publish(reg, model_b, &info, v2, &err) == DP_OK);
    registry_close(reg);

    ServeConfig cfg;
    serve_config_default(&cfg);
    cfg.registry_dir = regdir;
    cfg.target = "aws";
    cfg.port = 0;
    cfg.admin_token = "s3cret";
    int port = 0;
    Serve *s = start(&cfg, &port);
    REQUIRE(s);

    /* Auth first. */
    const char *rb = "{\"version\": \"v2\"}";
    json_t *j = NULL;
    EXPECT_EQ_INT(call(port, "POST", "/admin/reload", NULL, rb, strlen(rb), &j), 401);
    EXPECT(jstr(j, "error") && strstr(jstr(j, "error"), "bearer"));
    json_decref(j);
    EXPECT_EQ_INT(call(port, "POST", "/admin/reload", "Authorization: Bearer wrong\r\n", rb,
                       strlen(rb), NULL),
                  401);
    EXPECT_EQ_INT(call(port, "POST", "/admin/reload", "Authorization: Bearer s3cre\r\n", rb,
                       strlen(rb), NULL),
                  401);
    EXPECT_EQ_INT(
        call(port, "GET", "/admin/reload", "Authorization: Bearer s3cret\r\n", NULL, 0, NULL), 405);
    const char *bad = "{\"version\": \"v9\"}";
    EXPECT_EQ_INT(call(port, "POST", "/admin/reload", "Authorization: Bearer s3cret\r\n", bad,
                       strlen(bad), &j),
                  400);
    EXPECT(jstr(j, "error") != NULL);
    json_decref(j);

    /* Load: clients run while the model is swapped twice. */
    enum { NT = 6, PER = 15 };
    pthread_t th[NT];
    Client cl[NT];
    atomic_int ok = 0, fail = 0, mismatch = 0;
    for (int i = 0; i < NT; i++) {
        cl[i] = (Client){.port = port,
                         .id = i,
                         .n = PER,
                         .max_new = MAX_NEW,
                         .ok = &ok,
                         .fail = &fail,
                         .mismatch = &mismatch,
                         .expect_dir = NULL};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    dp_sleep(0.05);
    EXPECT_EQ_INT(
        call(port, "POST", "/admin/reload", "Authorization: Bearer s3cret\r\n", rb, strlen(rb), &j),
        200);
    EXPECT_STREQ(jstr(j, "model_version"), v2);
    EXPECT_STREQ(jstr(j, "previous"), v1);
    json_decref(j);
    dp_sleep(0.05);
    char md[700];
    snprintf(md, sizeof md, "{\"model_dir\": \"%s\"}", model_a);
    EXPECT_EQ_INT(call(port, "POST", "/admin/reload", "Authorization: Bearer s3cret\r\n", md,
                       strlen(md), NULL),
                  200);
    dp_sleep(0.05);
    EXPECT_EQ_INT(call(port, "POST", "/admin/reload", "Authorization: Bearer s3cret\r\n", rb,
                       strlen(rb), NULL),
                  200);
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    EXPECT_EQ_INT(ok, NT * PER);
    EXPECT_EQ_INT(fail, 0);

    /* After the swaps, answers come from v2 and match model B's greedy output. */
    char want[256];
    int np = 0, nc = 0;
    REQUIRE(direct_answer(model_b, questions[0][0], NULL, MAX_NEW, want, sizeof want, &np, &nc));
    char *body = predict_body(questions[0][0], NULL, MAX_NEW);
    EXPECT_EQ_INT(post(port, "/predict", body, &j), 200);
    free(body);
    EXPECT_STREQ(jstr(j, "model_version"), v2);
    EXPECT_STREQ(jstr(j, "answer"), want);
    json_decref(j);
    MetricsParsed p;
    REQUIRE(get_metrics(port, &p, 1));
    EXPECT_NEAR(sample_value(&p, "llm_model_info", "version", v2, "target", "aws"), 1, 0);
    EXPECT_NEAR(sample_value(&p, "llm_model_info", "version", v1, "target", "aws"), 0, 0);
    EXPECT_NEAR(sample_value(&p, "llm_model_version", NULL, NULL, NULL, NULL), 2, 0);
    EXPECT_NEAR(sample_value(&p, "llm_model_reloads_total", NULL, NULL, NULL, NULL), 4, 0);
    EXPECT_NEAR(sample_value(&p, "http_requests_total", "route", "/admin/reload", "code", "401"), 3,
                0);
    metrics_parsed_free(&p);
    serve_destroy(s);

    /* Without a configured token the admin routes are closed (403). */
    serve_config_default(&cfg);
    cfg.model_dir = model_a;
    cfg.port = 0;
    s = start(&cfg, &port);
    REQUIRE(s);
    EXPECT_EQ_INT(
        call(port, "POST", "/admin/reload", "Authorization: Bearer x\r\n", rb, strlen(rb), NULL),
        403);
    serve_destroy(s);
}

// ---- bad input over HTTP ----

/* Sends raw bytes on a fresh connection and reads the answer until close or
 * timeout; returns the status code or -1 / 0 (closed without an answer). */
static int raw_request(int port, const char *data, size_t len, int half_close, double timeout_s,
                       char *resp, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    if (len) send(fd, data, len, MSG_NOSIGNAL);
    if (half_close) shutdown(fd, SHUT_WR);
    size_t got = 0;
    double deadline = dp_time_mono() + timeout_s;
    while (got + 1 < cap) {
        struct pollfd pf = {fd, POLLIN, 0};
        int ms = (int)((deadline - dp_time_mono()) * 1000);
        if (ms <= 0 || poll(&pf, 1, ms) <= 0) break;
        ssize_t n = recv(fd, resp + got, cap - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    resp[got] = 0;
    close(fd);
    if (got == 0) return 0;
    int code = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1) return -1;
    return code;
}

static void expect_error(int port, const char *body, size_t len, int want, const char *needle) {
    json_t *j = NULL;
    int st = call(port, "POST", "/predict", "Content-Type: application/json\r\n", body, len, &j);
    const char *e = jstr(j, "error");
    EXPECT_MSG(st == want && e && strstr(e, needle), "body %.40s: status %d, error \"%s\"", body,
               st, e ? e : "(none)");
    json_decref(j);
}

static void test_bad_input(void) {
    REQUIRE(setup());
    ServeConfig cfg;
    serve_config_default(&cfg);
    cfg.model_dir = model_a;
    cfg.port = 0;
    cfg.max_body_bytes = 8192;
    cfg.connection_timeout_s = 1;
    int port = 0;
    Serve *s = start(&cfg, &port);
    REQUIRE(s);
    expect_error(port, "{\"question\": ", 13, 400, "malformed JSON");
    expect_error(port, "", 0, 400, "empty body");
    expect_error(port, "{\"question\": 3}", 15, 400, "expected a string");
    expect_error(port, "{\"question\": \"\"}", 16, 400, "is empty");
    expect_error(port, "{\"question\": \"q\", \"max_new_tokens\": 100000}", 43, 400,
                 "max_new_tokens");
    expect_error(port, "{\"question\": \"\xff\"}", 16, 400, "UTF-8");
    /* Oversized body: 413 whatever it holds. */
    char *big = malloc(20000);
    memset(big, 'a', 20000);
    expect_error(port, big, 20000, 413, "too large");
    /* A question within the byte limit but longer than the context: prompt too long. */
    json_t *q = json_object();
    memset(big, 0, 20000);
    for (int i = 0; i < 800; i++)
        strcat(big, "zq ");
    json_object_set_new(q, "question", json_string(big));
    char *qs = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    expect_error(port, qs, strlen(qs), 400, "prompt too long");
    free(qs);
    free(big);
    /* A huge announced body is refused at once, without reading it. */
    {
        char resp[1024];
        const char *huge = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n"
                           "Content-Type: application/json\r\n\r\n{\"question\"";
        double t0 = dp_time_mono();
        int st = raw_request(port, huge, strlen(huge), 0, 5.0, resp, sizeof resp);
        EXPECT_MSG(st == 413 && strstr(resp, "\"error\"") && dp_time_mono() - t0 < 3.0,
                   "huge body: %d after %.2fs", st, dp_time_mono() - t0);
    }
    json_t *j = NULL;
    EXPECT_EQ_INT(call(port, "DELETE", "/predict", NULL, NULL, 0, &j), 405);
    EXPECT(jstr(j, "error") && strstr(jstr(j, "error"), "use POST"));
    json_decref(j);
    EXPECT_EQ_INT(call(port, "POST", "/metrics", NULL, "{}", 2, NULL), 405);
    EXPECT_EQ_INT(call(port, "GET", "/../../etc/passwd", NULL, NULL, 0, &j), 404);
    EXPECT(jstr(j, "error") && strstr(jstr(j, "error"), "no route"));
    json_decref(j);

    /* Slow client: half a request, then silence: dropped after the timeout,
     * while other clients are served meanwhile. */
    char resp[4096];
    double t0 = dp_time_mono();
    const char *partial = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"qu";
    int slow_fd_status = -2;
    {
        pthread_t th;
        Client c = {0};
        atomic_int ok = 0, fail = 0, mm = 0;
        c = (Client){
            .port = port, .id = 0, .n = 3, .max_new = 4, .ok = &ok, .fail = &fail, .mismatch = &mm};
        pthread_create(&th, NULL, client_main, &c);
        slow_fd_status = raw_request(port, partial, strlen(partial), 0, 5.0, resp, sizeof resp);
        pthread_join(th, NULL);
        EXPECT_EQ_INT(ok, 3);
    }
    double dt = dp_time_mono() - t0;
    EXPECT_MSG(slow_fd_status <= 0 && dt < 4.0, "slow client: status %d after %.2fs",
               slow_fd_status, dt);
    /* Half-closed client: the server sees EOF mid-request and closes. */
    t0 = dp_time_mono();
    int hc = raw_request(port, partial, strlen(partial), 1, 5.0, resp, sizeof resp);
    EXPECT_MSG(hc <= 0 && dp_time_mono() - t0 < 4.0, "half-closed: %d", hc);
    /* Garbage that is not HTTP: a 400 or a close, never a hang. */
    t0 = dp_time_mono();
    int gb = raw_request(port, "\x01\x02garbage\r\n\r\n", 13, 0, 5.0, resp, sizeof resp);
    EXPECT_MSG((gb == 400 || gb <= 0) && dp_time_mono() - t0 < 4.0, "garbage: %d", gb);
    /* A complete raw request still works on the same server afterwards. */
    const char *good = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    EXPECT_EQ_INT(raw_request(port, good, strlen(good), 0, 5.0, resp, sizeof resp), 200);
    serve_destroy(s);
}

// ---- graceful stop ----

static void test_graceful_stop_finishes_in_flight(void) {
    REQUIRE(setup());
    char log[512];
    snprintf(log, sizeof log, "%s/stop.jsonl", tmpdir);
    remove(log);
    ServeConfig cfg;
    serve_config_default(&cfg);
    cfg.model_dir = model_a;
    cfg.port = 0;
    cfg.feedback_log = log;
    /* Requests sit in the batching window long enough for the stop to
     * land while they are in flight. */
    cfg.batch_wait_ms = 300;
    int port = 0;
    Serve *s = start(&cfg, &port);
    REQUIRE(s);
    EXPECT_EQ_INT(post(port, "/feedback",
                       "{\"question\": \"q\", \"prediction\": \"a\", \"reference\": \"a\"}", NULL),
                  200);
    enum { NT = 4 };
    pthread_t th[NT];
    Client cl[NT];
    atomic_int ok = 0, fail = 0, mm = 0;
    for (int i = 0; i < NT; i++) {
        cl[i] = (Client){
            .port = port, .id = i, .n = 1, .max_new = 8, .ok = &ok, .fail = &fail, .mismatch = &mm};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    dp_sleep(0.1);
    double t0 = dp_time_mono();
    serve_stop(s);
    double dt = dp_time_mono() - t0;
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    EXPECT_EQ_INT(ok, NT);
    EXPECT_EQ_INT(fail, 0);
    EXPECT_MSG(dt < 5, "stop took %.2fs", dt);
    EXPECT_EQ_INT(count_lines(log), 1);
    /* No longer listening. */
    char resp[256];
    EXPECT(raw_request(port, "GET /healthz HTTP/1.0\r\n\r\n", 25, 0, 1.0, resp, sizeof resp) <= 0);
    serve_stop(s); /* idempotent */
    serve_destroy(s);
}

// ---- driven by the load generator (the driftpilot binary) ----

static void test_loadgen_drives_service(void) {
    REQUIRE(setup());
    REQUIRE_BINARY(DP_BINARY);
    char log[512];
    snprintf(log, sizeof log, "%s/loadgen-labels.jsonl", tmpdir);
    remove(log);
    ServeConfig cfg;
    serve_config_default(&cfg);
    cfg.model_dir = model_a;
    cfg.port = 0;
    cfg.max_context = 512;
    cfg.feedback_log = log;
    int port = 0;
    Serve *s = start(&cfg, &port);
    REQUIRE(s);
    char cmd[1200], out[512];
    snprintf(out, sizeof out, "%s/loadgen.json", tmpdir);
    snprintf(cmd, sizeof cmd,
             "%s loadgen --target http://127.0.0.1:%d --rate 60 --duration 2s --max-new-tokens 8 "
             "--feedback-fraction 0.5 --drain-feedback --json --quiet > %s 2>/dev/null",
             DP_BINARY, port, out);
    int rc = system(cmd);
    EXPECT_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "loadgen exit %d", rc);
    char *text = NULL;
    size_t len = 0;
    DpError err;
    REQUIRE(dp_read_file(out, &text, &len, &err) == DP_OK);
    json_t *j = json_loadb(text, len, 0, NULL);
    free(text);
    REQUIRE(j);
    long long arrivals = json_integer_value(json_object_get(j, "arrivals"));
    long long ok = json_integer_value(json_object_get(j, "ok"));
    long long errors = json_integer_value(json_object_get(j, "errors"));
    json_t *fbj = json_object_get(j, "feedback");
    long long fb_ok =
        json_integer_value(json_object_get(fbj ? fbj : j, fbj ? "ok" : "feedback_ok"));
    EXPECT_MSG(arrivals > 60 && ok == arrivals && errors == 0, "arrivals %lld ok %lld errors %lld",
               arrivals, ok, errors);
    /* The service counted exactly what the load generator sent. */
    MetricsParsed p;
    REQUIRE(get_metrics(port, &p, 1));
    EXPECT_NEAR(sample_value(&p, "http_requests_total", "route", "/predict", "code", "200"),
                (double)ok, 0);
    double fb = sample_value(&p, "llm_feedback_total", NULL, NULL, NULL, NULL);
    EXPECT_MSG(fb > 0 && (fb_ok == 0 || fb == (double)fb_ok), "feedback %g vs loadgen %lld", fb,
               fb_ok);
    metrics_parsed_free(&p);
    json_decref(j);
    serve_destroy(s);
    EXPECT_EQ_INT(count_lines(log), (long long)fb);
}

// ---- the CLI ----

static void test_cli_serve_sigterm(void) {
    REQUIRE(setup());
    REQUIRE_BINARY(DP_BINARY);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s serve --help > /dev/null", DP_BINARY);
    EXPECT_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s serve --model %s --listen nonsense 2>/dev/null", DP_BINARY,
             model_a);
    int rc = system(cmd);
    EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    char portfile[512];
    snprintf(portfile, sizeof portfile, "%s/port", tmpdir);
    remove(portfile);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(DP_BINARY, DP_BINARY, "serve", "--model", model_a, "--listen", "127.0.0.1:0",
              "--port-file", portfile, (char *)NULL);
        _exit(127);
    }
    REQUIRE(pid > 0);
    int port = 0;
    for (int i = 0; i < 200 && !port; i++) {
        dp_sleep(0.05);
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1) port = 0;
            fclose(f);
        }
    }
    EXPECT(port > 0);
    if (port > 0) {
        json_t *j = NULL;
        EXPECT_EQ_INT(post(port, "/predict", "{\"question\": \"Who owns billing-api?\"}", &j), 200);
        json_decref(j);
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_MAIN(TEST_CASE(test_parse_predict), TEST_CASE(test_parse_feedback_reload),
          TEST_CASE(test_predict_matches_direct_generation),
          TEST_CASE(test_concurrent_clients_batched_and_metrics), TEST_CASE(test_no_batching_mode),
          TEST_CASE(test_feedback_scores_and_log), TEST_CASE(test_reload_under_load_and_auth),
          TEST_CASE(test_bad_input), TEST_CASE(test_graceful_stop_finishes_in_flight),
          TEST_CASE(test_loadgen_drives_service), TEST_CASE(test_cli_serve_sigterm))
