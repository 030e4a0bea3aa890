/* Tests of the model registry (train.h, registry section): publish / list /
 * show / promote / rollback round trips, checksum refusal, crash safety under
 * SIGKILL at random moments of a publish, concurrent publishers in two
 * processes, bad inputs, stale staging cleanup, and the CLI. */
#include "test.h"
#include "train.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// ---- helpers ----

static void make_tmpdir(char out[256]) {
    const char *base = getenv("TMPDIR");
    snprintf(out, 256, "%s/dp_registry_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        abort();
    }
}

static void rm_rf(const char *path) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "  (could not remove %s)\n", path);
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        perror(path);
        abort();
    }
    fclose(f);
}

static void write_text(const char *path, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    write_bytes(path, buf, strlen(buf));
}

/* A fake Hugging Face directory: the registry treats the files as opaque. */
static void make_model(const char *dir, size_t model_bytes, uint64_t seed) {
    char p[512];
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, "{\"model_type\": \"gpt2\", \"n_layer\": 2, \"seed\": %llu}\n", (unsigned long long)seed);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    write_text(p, "{\"a\": 0, \"b\": 1, \"seed%llu\": 2}\n", (unsigned long long)seed);
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    write_text(p, "#version: 0.2\na b\n");
    unsigned char *w = malloc(model_bytes);
    DpRng r;
    dp_rng_seed(&r, seed);
    for (size_t i = 0; i < model_bytes; i++) w[i] = (unsigned char)dp_rng_u64(&r);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_bytes(p, w, model_bytes);
    free(w);
}

static int files_equal(const char *a, const char *b) {
    char *da = NULL, *db = NULL;
    size_t la = 0, lb = 0;
    DpError err = {0};
    int eq = dp_read_file(a, &da, &la, &err) == DP_OK && dp_read_file(b, &db, &lb, &err) == DP_OK &&
             la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return eq;
}

static void flip_byte(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static size_t count_entries(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' 2>/dev/null | wc -l", dir);
    FILE *p = popen(cmd, "r");
    unsigned long n = 0;
    if (p) {
        if (fscanf(p, "%lu", &n) != 1) n = 0;
        pclose(p);
    }
    return n;
}

// ---- round trips ----

static void test_publish_roundtrip(void) {
    char tmp[256], reg_dir[300], m1[300], m2[300], data[300], p[600], q[600];
    make_tmpdir(tmp);
    snprintf(reg_dir, sizeof reg_dir, "%s/reg", tmp);
    snprintf(m1, sizeof m1, "%s/m1", tmp);
    snprintf(m2, sizeof m2, "%s/m2", tmp);
    snprintf(data, sizeof data, "%s/window.json", tmp);
    make_model(m1, 100000, 1);
    make_model(m2, 120000, 2);
    write_text(data, "{\"data\": []}\n");
    char data_hex[65];
    DpError err = {0};
    REQUIRE(dp_sha256_file(data, data_hex, &err) == DP_OK);

    Registry *reg = NULL;
    REQUIRE(registry_open(reg_dir, &reg, &err) == DP_OK);
    json_t *metrics = json_pack("{s:{s:f,s:f}, s:{s:f,s:f}, s:f}", "before", "em", 0.5, "f1", 0.6, "after", "em",
                                0.8125, "f1", 0.9, "canary", 0.75);
    json_t *job = json_pack("{s:s, s:i}", "kind", "retrain", "epochs", 5);
    RegistryPublishInfo info = {.data_file = data, .metrics = metrics, .job = job};
    char v1[REGISTRY_ID_MAX], v2[REGISTRY_ID_MAX];
    EXPECT_MSG(registry_publish(reg, m1, &info, v1, &err) == DP_OK, "%s", err.msg);
    EXPECT_STREQ(v1, "v000001");
    RegistryPublishInfo info2 = {.parent = "1", .data_fingerprint = "squad-window-7"};
    EXPECT_MSG(registry_publish(reg, m2, &info2, v2, &err) == DP_OK, "%s", err.msg);
    EXPECT_STREQ(v2, "v000002");

    // metadata of v1 holds what was given
    RegistryMeta m = {0};
    REQUIRE(registry_get_meta(reg, "v000001", &m, &err) == DP_OK);
    EXPECT_STREQ(m.version, "v000001");
    EXPECT_STREQ(m.parent, "");
    char want_fp[80];
    snprintf(want_fp, sizeof want_fp, "sha256:%s", data_hex);
    EXPECT_STREQ(m.data_fingerprint, want_fp);
    EXPECT_NEAR(json_real_value(json_object_get(json_object_get(m.metrics, "after"), "em")), 0.8125, 0);
    EXPECT_NEAR(json_real_value(json_object_get(m.metrics, "canary")), 0.75, 0);
    EXPECT_EQ_INT(json_integer_value(json_object_get(m.job, "epochs")), 5);
    EXPECT(fabs(m.created - dp_time_wall()) < 60);
    EXPECT_EQ_INT(strlen(m.created_iso), 20);
    EXPECT_EQ_INT(m.n_files, 4);
    if (m.n_files == 4) {
        // sorted by name, sizes and hashes of the source files
        EXPECT_STREQ(m.files[0].name, "config.json");
        EXPECT_STREQ(m.files[2].name, "model.safetensors");
        EXPECT_EQ_INT(m.files[2].bytes, 100000);
        char hex[65];
        snprintf(p, sizeof p, "%s/model.safetensors", m1);
        REQUIRE(dp_sha256_file(p, hex, &err) == DP_OK);
        EXPECT_STREQ(m.files[2].sha256, hex);
    }
    registry_meta_free(&m);
    registry_meta_free(&m); /* NULL-safe on a freed (zeroed) struct */

    // v2: parent and a caller-given fingerprint, empty metrics, no job
    REQUIRE(registry_get_meta(reg, "v2", &m, &err) == DP_OK);
    EXPECT_STREQ(m.parent, "v000001");
    EXPECT_STREQ(m.data_fingerprint, "squad-window-7");
    EXPECT(json_is_object(m.metrics) && json_object_size(m.metrics) == 0);
    EXPECT(m.job == NULL);
    registry_meta_free(&m);

    // the version directory holds byte-identical copies
    char path[4096];
    REQUIRE(registry_open_version(reg, "v000002", &m, path, sizeof path, &err) == DP_OK);
    snprintf(p, sizeof p, "%s/versions/v000002", reg_dir);
    EXPECT_STREQ(path, p);
    const char *names[] = {"config.json", "model.safetensors", "vocab.json", "merges.txt"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        snprintf(q, sizeof q, "%s/%s", m2, names[i]);
        EXPECT_MSG(files_equal(p, q), "%s differs", names[i]);
    }
    registry_meta_free(&m);

    // list: oldest first
    RegistryMeta *vs = NULL;
    size_t n = 0;
    REQUIRE(registry_list(reg, &vs, &n, &err) == DP_OK);
    EXPECT_EQ_INT(n, 2);
    if (n == 2) {
        EXPECT_STREQ(vs[0].version, "v000001");
        EXPECT_STREQ(vs[1].version, "v000002");
        EXPECT_STREQ(vs[1].parent, "v000001");
    }
    registry_list_free(vs, n);
    char sum[128];
    registry_metrics_summary(metrics, sum, sizeof sum);
    EXPECT_STREQ(sum, "em=0.812 f1=0.9");

    // promote / rollback
    char cur[REGISTRY_ID_MAX];
    EXPECT_MSG(registry_promote(reg, "v000001", "aws", &err) == DP_OK, "%s", err.msg);
    EXPECT(registry_current(reg, "aws", cur, &err) == DP_OK);
    EXPECT_STREQ(cur, "v000001");
    EXPECT(registry_promote(reg, "v000002", "aws", &err) == DP_OK);
    EXPECT(registry_promote(reg, "v000002", "aws", &err) == DP_OK); /* no-op */
    EXPECT(registry_promote(reg, "2", "azure", &err) == DP_OK);
    EXPECT(registry_current(reg, "aws", cur, &err) == DP_OK);
    EXPECT_STREQ(cur, "v000002");
    RegistryTarget *ts = NULL;
    size_t nt = 0;
    REQUIRE(registry_list_targets(reg, &ts, &nt, &err) == DP_OK);
    EXPECT_EQ_INT(nt, 2);
    if (nt == 2) {
        EXPECT_STREQ(ts[0].name, "aws");
        EXPECT_EQ_INT(ts[0].n_history, 2); /* the repeated promote added nothing */
        EXPECT_STREQ(ts[0].history[0], "v000001");
        EXPECT_STREQ(ts[1].name, "azure");
        EXPECT_STREQ(ts[1].current, "v000002");
    }
    registry_targets_free(ts, nt);

    char back[REGISTRY_ID_MAX];
    EXPECT_MSG(registry_rollback(reg, "aws", back, &err) == DP_OK, "%s", err.msg);
    EXPECT_STREQ(back, "v000001");
    EXPECT(registry_current(reg, "aws", cur, &err) == DP_OK);
    EXPECT_STREQ(cur, "v000001");
    EXPECT(registry_current(reg, "azure", cur, &err) == DP_OK);
    EXPECT_STREQ(cur, "v000002"); /* other targets untouched */
    // resolve gives the verified directory of the current version
    REQUIRE(registry_resolve(reg, "aws", &m, path, sizeof path, &err) == DP_OK);
    EXPECT_STREQ(m.version, "v000001");
    snprintf(p, sizeof p, "%s/versions/v000001", reg_dir);
    EXPECT_STREQ(path, p);
    registry_meta_free(&m);
    // the history is a stack: promote v2 again, roll back, back on v1
    EXPECT(registry_promote(reg, "v000002", "aws", &err) == DP_OK);
    EXPECT(registry_rollback(reg, "aws", back, &err) == DP_OK);
    EXPECT_STREQ(back, "v000001");
    // nothing earlier than v1 on aws
    err = (DpError){0};
    EXPECT_EQ_INT(registry_rollback(reg, "aws", back, &err), DP_ERR_STATE);
    EXPECT_MSG(strstr(err.msg, "no earlier version") != NULL, "%s", err.msg);
    EXPECT(registry_current(reg, "aws", cur, &err) == DP_OK);
    EXPECT_STREQ(cur, "v000001");

    // a reopened handle sees the same state, and verify passes
    registry_close(reg);
    REQUIRE(registry_open(reg_dir, &reg, &err) == DP_OK);
    RegistryVerifyReport rep;
    EXPECT_MSG(registry_verify(reg, 0, &rep, &err) == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(rep.n_versions, 2);
    EXPECT_EQ_INT(rep.n_targets, 2);
    EXPECT_EQ_INT(rep.n_bad_versions + rep.n_bad_targets + rep.n_stale, 0);
    registry_verify_report_free(&rep);
    registry_close(reg);
    registry_close(NULL);
    json_decref(metrics);
    json_decref(job);
    rm_rf(tmp);
}

// ---- checksum refusal ----

static void expect_corrupt(Registry *reg, const char *what, const char *needle1, const char *needle2) {
    DpError err = {0};
    char path[4096];
    RegistryMeta m = {0};
    EXPECT_MSG(registry_open_version(reg, "v000001", &m, path, sizeof path, &err) == DP_ERR_CHECK,
               "%s: open_version did not refuse", what);
    EXPECT_MSG(strstr(err.msg, needle1) && strstr(err.msg, needle2), "%s: message '%s'", what, err.msg);
    EXPECT(m.files == NULL); /* nothing handed out */
    err = (DpError){0};
    EXPECT_MSG(registry_resolve(reg, "aws", NULL, path, sizeof path, &err) == DP_ERR_CHECK, "%s", what);
    EXPECT_MSG(strstr(err.msg, needle1) != NULL, "%s: message '%s'", what, err.msg);
    err = (DpError){0};
    EXPECT_MSG(registry_promote(reg, "v000001", "gcp", &err) == DP_ERR_CHECK, "%s: promote accepted", what);
    RegistryVerifyReport rep;
    err = (DpError){0};
    EXPECT(registry_verify(reg, 0, &rep, &err) == DP_ERR_CHECK);
    EXPECT_EQ_INT(rep.n_bad_versions, 1);
    EXPECT_MSG(strstr(err.msg, needle1) != NULL, "%s: verify message '%s'", what, err.msg);
    registry_verify_report_free(&rep);
}

static void test_checksum_refusal(void) {
    char tmp[256], reg_dir[300], m1[300], file[600], save[600];
    make_tmpdir(tmp);
    snprintf(reg_dir, sizeof reg_dir, "%s/reg", tmp);
    snprintf(m1, sizeof m1, "%s/m1", tmp);
    make_model(m1, 200000, 7);
    DpError err = {0};
    Registry *reg = NULL;
    REQUIRE(registry_open(reg_dir, &reg, &err) == DP_OK);
    char v[REGISTRY_ID_MAX];
    REQUIRE(registry_publish(reg, m1, NULL, v, &err) == DP_OK);
    REQUIRE(registry_promote(reg, v, "aws", &err) == DP_OK);
    REQUIRE(registry_verify_version(reg, v, &err) == DP_OK);
    snprintf(file, sizeof file, "%s/versions/v000001/model.safetensors", reg_dir);
    snprintf(save, sizeof save, "%s/model.saved", tmp);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", file, save);
    REQUIRE(system(cmd) == 0);

    // one flipped byte in the middle
    flip_byte(file, 123456);
    expect_corrupt(reg, "flipped byte", "model.safetensors", "sha256");
    flip_byte(file, 123456);
    EXPECT(registry_verify_version(reg, v, &err) == DP_OK);

    // truncated
    REQUIRE(truncate(file, 100000) == 0);
    expect_corrupt(reg, "truncated", "model.safetensors", "truncated");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", save, file);
    REQUIRE(system(cmd) == 0);
    EXPECT(registry_verify_version(reg, v, &err) == DP_OK);

    // deleted
    char vocab[600];
    snprintf(vocab, sizeof vocab, "%s/versions/v000001/vocab.json", reg_dir);
    snprintf(cmd, sizeof cmd, "mv '%s' '%s/vocab.saved'", vocab, tmp);
    REQUIRE(system(cmd) == 0);
    expect_corrupt(reg, "deleted", "vocab.json", "missing");
    snprintf(cmd, sizeof cmd, "mv '%s/vocab.saved' '%s'", tmp, vocab);
    REQUIRE(system(cmd) == 0);

    // a file that metadata.json does not list
    char extra[600];
    snprintf(extra, sizeof extra, "%s/versions/v000001/pytorch_model.bin", reg_dir);
    write_text(extra, "x");
    expect_corrupt(reg, "extra file", "pytorch_model.bin", "not listed");
    unlink(extra);

    // metadata.json that names another version
    char meta[600];
    snprintf(meta, sizeof meta, "%s/versions/v000001/metadata.json", reg_dir);
    char *text = NULL;
    REQUIRE(dp_read_file(meta, &text, NULL, &err) == DP_OK);
    char *at = strstr(text, "\"version\": \"v000001\"");
    REQUIRE(at != NULL);
    at[strlen("\"version\": \"v00000")] = '7';
    write_text(meta, "%s", text);
    EXPECT(registry_verify_version(reg, v, &err) == DP_ERR_CHECK);
    EXPECT_MSG(strstr(err.msg, "says it is version v000007") != NULL, "%s", err.msg);
    at[strlen("\"version\": \"v00000")] = '1';
    write_text(meta, "%s", text);
    free(text);

    EXPECT_MSG(registry_verify_version(reg, v, &err) == DP_OK, "%s", err.msg);
    EXPECT(registry_verify(reg, 0, NULL, &err) == DP_OK);
    registry_close(reg);
    rm_rf(tmp);
}

// ---- bad inputs ----

static void test_bad_inputs(void) {
    char tmp[256], reg_dir[300], m1[300], nocfg[300], sub[400];
    make_tmpdir(tmp);
    snprintf(reg_dir, sizeof reg_dir, "%s/reg", tmp);
    snprintf(m1, sizeof m1, "%s/m1", tmp);
    snprintf(nocfg, sizeof nocfg, "%s/nocfg", tmp);
    make_model(m1, 1000, 3);
    mkdir(nocfg, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", nocfg);
    write_text(p, "x");
    DpError err = {0};
    Registry *reg = NULL;
    REQUIRE(registry_open(reg_dir, &reg, &err) == DP_OK);
    char v[REGISTRY_ID_MAX], cur[REGISTRY_ID_MAX];
    RegistryMeta m = {0};

    EXPECT_EQ_INT(registry_get_meta(reg, "v000009", &m, &err), DP_ERR_INVAL);
    EXPECT_MSG(strstr(err.msg, "no version v000009") != NULL, "%s", err.msg);
    EXPECT_EQ_INT(registry_get_meta(reg, "banana", &m, &err), DP_ERR_INVAL);
    EXPECT_MSG(strstr(err.msg, "not a version id") != NULL, "%s", err.msg);
    EXPECT_EQ_INT(registry_parse_version("v0", v, &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(registry_parse_version("v1234567", v, &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(registry_parse_version("V42", v, &err), DP_OK);
    EXPECT_STREQ(v, "v000042");

    EXPECT_EQ_INT(registry_promote(reg, "v000003", "aws", &err), DP_ERR_INVAL);
    EXPECT_MSG(strstr(err.msg, "no version v000003") != NULL, "%s", err.msg);
    EXPECT_EQ_INT(registry_rollback(reg, "aws", cur, &err), DP_ERR_STATE);
    EXPECT_MSG(strstr(err.msg, "no current version") != NULL, "%s", err.msg);
    EXPECT_EQ_INT(registry_current(reg, "aws", cur, &err), DP_ERR_STATE);
    EXPECT_MSG(strstr(err.msg, "target aws has no current version") != NULL, "%s", err.msg);
    EXPECT_EQ_INT(registry_resolve(reg, "aws", NULL, p, sizeof p, &err), DP_ERR_STATE);

    // publishing: bad sources and bad metadata leave the registry empty
    snprintf(p, sizeof p, "%s/nope", tmp);
    EXPECT_EQ_INT(registry_publish(reg, p, NULL, v, &err), DP_ERR_INVAL);
    EXPECT_MSG(strstr(err.msg, "does not exist") != NULL, "%s", err.msg);
    EXPECT_EQ_INT(registry_publish(reg, nocfg, NULL, v, &err), DP_ERR_INVAL);
    EXPECT_MSG(strstr(err.msg, "no config.json") != NULL, "%s", err.msg);
    RegistryPublishInfo bad_parent = {.parent = "v000005"};
    EXPECT_EQ_INT(registry_publish(reg, m1, &bad_parent, v, &err), DP_ERR_INVAL);
    EXPECT_MSG(strstr(err.msg, "parent version v000005 does not exist") != NULL, "%s", err.msg);
    json_t *arr = json_array();
    RegistryPublishInfo bad_metrics = {.metrics = arr};
    EXPECT_EQ_INT(registry_publish(reg, m1, &bad_metrics, v, &err), DP_ERR_INVAL);
    json_decref(arr);
    RegistryPublishInfo bad_data = {.data_file = "/nonexistent/data.json"};
    EXPECT_EQ_INT(registry_publish(reg, m1, &bad_data, v, &err), DP_ERR_IO);
    EXPECT_MSG(strstr(err.msg, "/nonexistent/data.json") != NULL, "%s", err.msg);
    snprintf(sub, sizeof sub, "%s/subdir", m1);
    mkdir(sub, 0755);
    EXPECT_EQ_INT(registry_publish(reg, m1, NULL, v, &err), DP_ERR_INVAL);
    EXPECT_MSG(strstr(err.msg, "subdirectories") != NULL, "%s", err.msg);
    rmdir(sub);
    RegistryMeta *vs = NULL;
    size_t n = 99;
    EXPECT(registry_list(reg, &vs, &n, &err) == DP_OK);
    EXPECT_EQ_INT(n, 0);
    registry_list_free(vs, n);

    // bad target names
    REQUIRE(registry_publish(reg, m1, NULL, v, &err) == DP_OK);
    EXPECT_STREQ(v, "v000001"); /* the failed publishes used no id */
    EXPECT_EQ_INT(registry_promote(reg, v, "../etc", &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(registry_promote(reg, v, "", &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(registry_current(reg, "a b", cur, &err), DP_ERR_INVAL);
    // a corrupted target file is reported, not trusted
    REQUIRE(registry_promote(reg, v, "aws", &err) == DP_OK);
    snprintf(p, sizeof p, "%s/targets/aws.json", reg_dir);
    write_text(p, "{\"current\": \"v000001\", \"history\": [");
    EXPECT_EQ_INT(registry_current(reg, "aws", cur, &err), DP_ERR_PARSE);
    EXPECT_MSG(strstr(err.msg, "aws.json") != NULL, "%s", err.msg);
    EXPECT_EQ_INT(registry_verify(reg, 0, NULL, &err), DP_ERR_CHECK);
    // a target pointing at a version that is gone
    write_text(p, "{\"current\": \"v000004\", \"history\": [\"v000004\"]}");
    EXPECT_EQ_INT(registry_verify(reg, 0, NULL, &err), DP_ERR_CHECK);
    EXPECT_MSG(strstr(err.msg, "v000004 does not exist") != NULL, "%s", err.msg);
    registry_close(reg);
    rm_rf(tmp);
}

// ---- leftovers of crashes ----

static void test_stale_staging(void) {
    char tmp[256], reg_dir[300], m1[300], p[600];
    make_tmpdir(tmp);
    snprintf(reg_dir, sizeof reg_dir, "%s/reg", tmp);
    snprintf(m1, sizeof m1, "%s/m1", tmp);
    make_model(m1, 5000, 4);
    DpError err = {0};
    Registry *reg = NULL;
    REQUIRE(registry_open(reg_dir, &reg, &err) == DP_OK);
    // what a publisher killed mid-copy leaves: a staging dir with part of the files
    snprintf(p, sizeof p, "%s/staging/v000001.99999", reg_dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/staging/v000001.99999/model.safetensors", reg_dir);
    write_text(p, "half a model");
    snprintf(p, sizeof p, "%s/targets/aws.json.tmp.99999", reg_dir);
    write_text(p, "{\"current\": ");
    RegistryMeta *vs = NULL;
    size_t n = 9;
    EXPECT(registry_list(reg, &vs, &n, &err) == DP_OK);
    EXPECT_EQ_INT(n, 0);
    registry_list_free(vs, n);
    RegistryTarget *ts = NULL;
    size_t nt = 9;
    EXPECT(registry_list_targets(reg, &ts, &nt, &err) == DP_OK);
    EXPECT_EQ_INT(nt, 0);
    registry_targets_free(ts, nt);
    RegistryVerifyReport rep;
    EXPECT(registry_verify(reg, 0, &rep, &err) == DP_OK); /* leftovers are not failures */
    EXPECT_EQ_INT(rep.n_stale, 2);
    EXPECT_EQ_INT(rep.n_removed, 0);
    registry_verify_report_free(&rep);
    EXPECT(registry_verify(reg, 1, &rep, &err) == DP_OK);
    EXPECT_EQ_INT(rep.n_removed, 2);
    registry_verify_report_free(&rep);
    snprintf(p, sizeof p, "%s/staging", reg_dir);
    EXPECT_EQ_INT(count_entries(p), 0);
    snprintf(p, sizeof p, "%s/targets", reg_dir);
    EXPECT_EQ_INT(count_entries(p), 0);
    // the next publish also clears leftovers
    snprintf(p, sizeof p, "%s/staging/v000001.88888", reg_dir);
    mkdir(p, 0755);
    char v[REGISTRY_ID_MAX];
    EXPECT(registry_publish(reg, m1, NULL, v, &err) == DP_OK);
    EXPECT_STREQ(v, "v000001");
    snprintf(p, sizeof p, "%s/staging", reg_dir);
    EXPECT_EQ_INT(count_entries(p), 0);
    registry_close(reg);
    rm_rf(tmp);
}

// ---- crash safety: SIGKILL at random moments ----

typedef struct {
    char step[64];   /* the last step the child reached */
    int n_steps;
    int stop_at;     /* when > 0, the child stops itself (SIGSTOP) after that step */
} SharedStep;

static double g_step_sleep = 0.001;

static void record_step(void *ctx, const char *s) {
    SharedStep *sh = ctx;
    snprintf(sh->step, sizeof sh->step, "%s", s);
    int k = __atomic_add_fetch(&sh->n_steps, 1, __ATOMIC_SEQ_CST);
    if (k == sh->stop_at) raise(SIGSTOP); /* the parent kills it right here */
    else dp_sleep(g_step_sleep);
}

/* The child: publish a new version and promote it to aws, then _exit. */
static void child_publish(const char *reg_dir, const char *model, SharedStep *sh, const char *target) {
    DpError err = {0};
    Registry *reg = NULL;
    if (registry_open(reg_dir, &reg, &err) != DP_OK) _exit(3);
    registry_set_step_hook(reg, record_step, sh);
    char cur[REGISTRY_ID_MAX], v[REGISTRY_ID_MAX];
    registry_current(reg, target, cur, &err);
    RegistryPublishInfo in = {.parent = cur, .data_fingerprint = "kill-test"};
    if (registry_publish(reg, model, &in, v, &err) != DP_OK) _exit(4);
    if (registry_promote(reg, v, target, &err) != DP_OK) _exit(5);
    registry_close(reg);
    _exit(0);
}

/* Removes version `id` and restores aws.json: test-only surgery that puts the
 * registry back to its base state between trials so it stays small. */
static void reset_to_base(const char *reg_dir, const char *id, const char *aws_path, const char *aws_saved,
                          size_t aws_len) {
    char p[600];
    DpError err = {0};
    snprintf(p, sizeof p, "%s/versions/%s", reg_dir, id);
    rm_rf(p);
    if (dp_write_file_atomic(aws_path, aws_saved, aws_len, &err) != DP_OK) abort();
}

static void test_kill_during_publish(void) {
    char tmp[256], reg_dir[300], base_model[300], model[300], p[600];
    make_tmpdir(tmp);
    snprintf(reg_dir, sizeof reg_dir, "%s/reg", tmp);
    snprintf(base_model, sizeof base_model, "%s/base", tmp);
    snprintf(model, sizeof model, "%s/model", tmp);
    make_model(base_model, 10000, 10);
    make_model(model, 2 * 1024 * 1024, 11);
    char model_hex[65];
    DpError err = {0};
    snprintf(p, sizeof p, "%s/model.safetensors", model);
    REQUIRE(dp_sha256_file(p, model_hex, &err) == DP_OK);
    Registry *reg = NULL;
    REQUIRE(registry_open(reg_dir, &reg, &err) == DP_OK);
    char v[REGISTRY_ID_MAX];
    REQUIRE(registry_publish(reg, base_model, NULL, v, &err) == DP_OK);
    REQUIRE(registry_promote(reg, v, "aws", &err) == DP_OK);
    char aws_path[600];
    snprintf(aws_path, sizeof aws_path, "%s/targets/aws.json", reg_dir);
    char *aws_saved = NULL;
    size_t aws_len = 0;
    REQUIRE(dp_read_file(aws_path, &aws_saved, &aws_len, &err) == DP_OK);
    SharedStep *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(sh != MAP_FAILED);

    // one uninterrupted run: its duration and step count set where kills land
    memset(sh, 0, sizeof *sh);
    double t0 = dp_time_mono();
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) child_publish(reg_dir, model, sh, "aws");
    int status = 0;
    waitpid(pid, &status, 0);
    double full = dp_time_mono() - t0;
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int full_steps = sh->n_steps;
    REQUIRE(full_steps > 10);
    reset_to_base(reg_dir, "v000002", aws_path, aws_saved, aws_len);

    /* Trial k < full_steps kills the child right after step k+1 (the child
     * stops itself there), so every boundary between steps is hit; the other
     * trials kill at a random time in [0, 1.1 x the full duration], which
     * lands inside system calls (write, fsync, rename) as well. */
    enum { N_TIMED = 16, MAX_TRIALS = 80 };
    int n_trials = full_steps + N_TIMED;
    if (n_trials > MAX_TRIALS) n_trials = MAX_TRIALS;
    int outcome[3] = {0, 0, 0}, finished = 0, n_seen = 0;
    char seen[MAX_TRIALS][64];
    DpRng rng;
    dp_rng_seed(&rng, 2026);
    for (int trial = 0; trial < n_trials; trial++) {
        char cur[REGISTRY_ID_MAX];
        memset(sh, 0, sizeof *sh);
        if (trial < full_steps) sh->stop_at = trial + 1;
        pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) child_publish(reg_dir, model, sh, "aws");
        if (trial < full_steps) {
            waitpid(pid, &status, WUNTRACED);
            EXPECT_MSG(WIFSTOPPED(status), "trial %d: the child did not stop at step %d", trial, trial + 1);
        } else {
            dp_sleep(dp_rng_uniform(&rng) * full * 1.1);
        }
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) {
            EXPECT_EQ_INT(WEXITSTATUS(status), 0);
            finished++;
        }
        int known = 0;
        for (int k = 0; k < n_seen; k++) known |= !strcmp(seen[k], sh->step);
        if (!known) snprintf(seen[n_seen++], 64, "%s", sh->step);
        if (getenv("DP_TEST_VERBOSE")) /* DP_TEST_VERBOSE=1 shows where each kill landed */
            fprintf(stderr, "    trial %d: killed after step %d \"%s\"\n", trial, sh->n_steps, sh->step);

        // old state or complete new state, nothing in between
        RegistryMeta *vs = NULL;
        size_t n = 0;
        REQUIRE(registry_list(reg, &vs, &n, &err) == DP_OK);
        EXPECT_MSG(n == 1 || n == 2, "trial %d (killed after '%s'): %zu versions", trial, sh->step, n);
        int has_new = n == 2;
        if (has_new) {
            EXPECT_STREQ(vs[1].version, "v000002");
            EXPECT_STREQ(vs[1].parent, "v000001");
            EXPECT_EQ_INT(vs[1].n_files, 4);
            if (vs[1].n_files == 4) EXPECT_STREQ(vs[1].files[2].sha256, model_hex);
        }
        registry_list_free(vs, n);
        RegistryVerifyReport rep;
        EXPECT_MSG(registry_verify(reg, 0, &rep, &err) == DP_OK, "trial %d (killed after '%s'): %s", trial,
                   sh->step, err.msg);
        EXPECT_EQ_INT(rep.n_versions, has_new ? 2 : 1);
        registry_verify_report_free(&rep);
        EXPECT(registry_current(reg, "aws", cur, &err) == DP_OK);
        int promoted = !strcmp(cur, "v000002");
        EXPECT_MSG(!strcmp(cur, "v000001") || (has_new && promoted), "trial %d: aws -> %s", trial, cur);
        char path[4096];
        EXPECT_MSG(registry_resolve(reg, "aws", NULL, path, sizeof path, &err) == DP_OK, "trial %d: %s", trial,
                   err.msg);
        outcome[has_new ? (promoted ? 2 : 1) : 0]++;
        if (has_new) reset_to_base(reg_dir, "v000002", aws_path, aws_saved, aws_len);
    }
    fprintf(stderr,
            "  kill test: %d trials, full publish+promote %.0f ms in %d steps (%.1f ms sleep after each): "
            "%d left the old state, %d the new version not yet current, %d the new version current "
            "(%d ran to the end); %d distinct last steps\n",
            n_trials, full * 1e3, full_steps, g_step_sleep * 1e3, outcome[0], outcome[1], outcome[2], finished,
            n_seen);
    EXPECT(outcome[0] >= 1);
    EXPECT(outcome[1] >= 1);
    EXPECT(outcome[2] >= 1);
    EXPECT_EQ_INT(n_seen, full_steps); /* every step, by its name */
    // leftovers (a staging dir, a pointer temp file) go with verify --fix
    RegistryVerifyReport rep;
    EXPECT(registry_verify(reg, 1, &rep, &err) == DP_OK);
    registry_verify_report_free(&rep);
    EXPECT(registry_verify(reg, 0, &rep, &err) == DP_OK);
    EXPECT_EQ_INT(rep.n_stale, 0);
    registry_verify_report_free(&rep);
    free(aws_saved);
    munmap(sh, sizeof *sh);
    registry_close(reg);
    rm_rf(tmp);
}

// ---- concurrent publishers ----

static void child_concurrent(const char *reg_dir, const char *model, int w, int count) {
    DpError err = {0};
    Registry *reg = NULL;
    SharedStep local;
    memset(&local, 0, sizeof local);
    if (registry_open(reg_dir, &reg, &err) != DP_OK) _exit(3);
    registry_set_step_hook(reg, record_step, &local);
    char target[16], v[REGISTRY_ID_MAX];
    snprintf(target, sizeof target, "t%d", w);
    for (int i = 0; i < count; i++) {
        json_t *job = json_pack("{s:i, s:i}", "writer", w, "seq", i);
        RegistryPublishInfo info = {.job = job};
        DpStatus st = registry_publish(reg, model, &info, v, &err);
        json_decref(job);
        if (st != DP_OK) {
            fprintf(stderr, "writer %d: %s\n", w, err.msg);
            _exit(4);
        }
        if (registry_promote(reg, v, target, &err) != DP_OK) {
            fprintf(stderr, "writer %d: %s\n", w, err.msg);
            _exit(5);
        }
    }
    registry_close(reg);
    _exit(0);
}

static void test_concurrent_publishers(void) {
    char tmp[256], reg_dir[300], model[300];
    make_tmpdir(tmp);
    snprintf(reg_dir, sizeof reg_dir, "%s/reg", tmp);
    snprintf(model, sizeof model, "%s/model", tmp);
    make_model(model, 300000, 5);
    enum { PER = 4 };
    pid_t pids[2];
    for (int w = 0; w < 2; w++) {
        pids[w] = fork();
        REQUIRE(pids[w] >= 0);
        if (pids[w] == 0) child_concurrent(reg_dir, model, w, PER);
    }
    for (int w = 0; w < 2; w++) {
        int status = 0;
        waitpid(pids[w], &status, 0);
        EXPECT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d status %d", w, status);
    }
    DpError err = {0};
    Registry *reg = NULL;
    REQUIRE(registry_open(reg_dir, &reg, &err) == DP_OK);
    RegistryMeta *vs = NULL;
    size_t n = 0;
    REQUIRE(registry_list(reg, &vs, &n, &err) == DP_OK);
    EXPECT_EQ_INT(n, 2 * PER);
    int next_seq[2] = {0, 0}, switches = 0, last_w = -1;
    for (size_t i = 0; i < n; i++) {
        char want[REGISTRY_ID_MAX];
        snprintf(want, sizeof want, "v%06zu", i + 1);
        EXPECT_STREQ(vs[i].version, want);
        int w = (int)json_integer_value(json_object_get(vs[i].job, "writer"));
        int seq = (int)json_integer_value(json_object_get(vs[i].job, "seq"));
        REQUIRE(w == 0 || w == 1);
        EXPECT_EQ_INT(seq, next_seq[w]); /* each writer's versions in its own order */
        next_seq[w]++;
        if (last_w >= 0 && w != last_w) switches++;
        last_w = w;
        EXPECT_MSG(registry_verify_version(reg, vs[i].version, &err) == DP_OK, "%s", err.msg);
    }
    EXPECT_EQ_INT(next_seq[0], PER);
    EXPECT_EQ_INT(next_seq[1], PER);
    registry_list_free(vs, n);
    RegistryTarget *ts = NULL;
    size_t nt = 0;
    REQUIRE(registry_list_targets(reg, &ts, &nt, &err) == DP_OK);
    EXPECT_EQ_INT(nt, 2);
    for (size_t i = 0; i < nt; i++) EXPECT_EQ_INT(ts[i].n_history, PER);
    registry_targets_free(ts, nt);
    RegistryVerifyReport rep;
    EXPECT(registry_verify(reg, 0, &rep, &err) == DP_OK);
    EXPECT_EQ_INT(rep.n_stale, 0);
    registry_verify_report_free(&rep);
    fprintf(stderr, "  concurrent: 2 writers x %d versions, writer switched %d times in id order\n", PER, switches);
    registry_close(reg);
    rm_rf(tmp);
}

// ---- CLI ----

static int run_cli(const char *args, const char *out_path) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s registry %s > '%s' 2>&1", DP_BINARY, args, out_path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path) {
    char *t = NULL;
    DpError err = {0};
    if (dp_read_file(path, &t, NULL, &err) != DP_OK) return dp_strdup("");
    return t;
}

static void test_cli(void) {
    REQUIRE_BINARY(DP_BINARY);
    char tmp[256], model[300], out[300], met[300], args[1500];
    make_tmpdir(tmp);
    snprintf(model, sizeof model, "%s/model", tmp);
    snprintf(out, sizeof out, "%s/out.txt", tmp);
    snprintf(met, sizeof met, "%s/metrics.json", tmp);
    make_model(model, 50000, 9);
    write_text(met, "{\"after\": {\"em\": 0.75, \"f1\": 0.5}}");
    char *t = NULL;

    EXPECT_EQ_INT(run_cli("--help", out), 0);
    t = slurp(out);
    EXPECT(strstr(t, "DRIFTPILOT_HOME") && strstr(t, "./.driftpilot/registry") && strstr(t, "rollback --target"));
    free(t);
    snprintf(args, sizeof args, "--dir '%s/reg' list", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 1); /* no registry there yet */
    snprintf(args, sizeof args, "--dir '%s/reg' publish --model '%s' --metrics '%s' --target aws", tmp, model, met);
    EXPECT_EQ_INT(run_cli(args, out), 0);
    t = slurp(out);
    EXPECT_MSG(strstr(t, "v000001\n") != NULL, "%s", t);
    free(t);
    snprintf(args, sizeof args, "publish --dir '%s/reg' --model '%s' --parent v1 --fingerprint fp2", tmp, model);
    EXPECT_EQ_INT(run_cli(args, out), 0);
    snprintf(args, sizeof args, "--dir '%s/reg' list", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 0);
    t = slurp(out);
    EXPECT_MSG(strstr(t, "v000001") && strstr(t, "v000002") && strstr(t, "aws") && strstr(t, "em=0.75 f1=0.5"),
               "%s", t);
    free(t);
    snprintf(args, sizeof args, "--dir '%s/reg' promote v2 --target aws", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 0);
    snprintf(args, sizeof args, "--dir '%s/reg' list --json", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 0);
    json_error_t je;
    json_t *j = json_load_file(out, 0, &je);
    EXPECT_MSG(j != NULL, "list --json: %s", je.text);
    EXPECT_EQ_INT(json_array_size(json_object_get(j, "versions")), 2);
    json_t *aws = json_object_get(json_object_get(j, "targets"), "aws");
    EXPECT_STREQ(json_string_value(json_object_get(aws, "current")), "v000002");
    EXPECT_EQ_INT(json_array_size(json_object_get(aws, "history")), 2);
    json_decref(j);
    snprintf(args, sizeof args, "--dir '%s/reg' show v000002 --json", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 0);
    j = json_load_file(out, 0, &je);
    EXPECT_STREQ(json_string_value(json_object_get(j, "parent")), "v000001");
    EXPECT_STREQ(json_string_value(json_object_get(j, "data_fingerprint")), "fp2");
    EXPECT_STREQ(json_string_value(json_object_get(j, "integrity")), "ok");
    json_decref(j);
    snprintf(args, sizeof args, "--dir '%s/reg' rollback --target aws", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 0);
    t = slurp(out);
    EXPECT_MSG(strstr(t, "v000001") != NULL, "%s", t);
    free(t);
    snprintf(args, sizeof args, "--dir '%s/reg' rollback --target aws", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 1);
    t = slurp(out);
    EXPECT_MSG(strstr(t, "no earlier version") != NULL, "%s", t);
    free(t);
    snprintf(args, sizeof args, "--dir '%s/reg' current --target aws", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 0);
    t = slurp(out);
    EXPECT_STREQ(t, "v000001\n");
    free(t);
    snprintf(args, sizeof args, "--dir '%s/reg' verify", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 0);
    // corrupt v2: verify and show fail naming the file
    char f[600];
    snprintf(f, sizeof f, "%s/reg/versions/v000002/model.safetensors", tmp);
    flip_byte(f, 10);
    EXPECT_EQ_INT(run_cli(args, out), 1);
    t = slurp(out);
    EXPECT_MSG(strstr(t, "v000002 is corrupted: file model.safetensors") != NULL, "%s", t);
    free(t);
    snprintf(args, sizeof args, "--dir '%s/reg' show 2", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 1);
    // usage errors
    snprintf(args, sizeof args, "--dir '%s/reg' promote v1", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 2);
    snprintf(args, sizeof args, "--dir '%s/reg' frob", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 2);
    snprintf(args, sizeof args, "--dir '%s/reg' list --fix", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 2);
    snprintf(args, sizeof args, "--dir '%s/reg' show nine", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 2);
    snprintf(args, sizeof args, "--dir '%s/reg' promote 7 --target aws", tmp);
    EXPECT_EQ_INT(run_cli(args, out), 1);
    // the default directory: $DRIFTPILOT_HOME/registry, else ./.driftpilot/registry
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && env -u DRIFTPILOT_HOME %s registry publish --model model > '%s' 2>&1", tmp,
             DP_BINARY, out);
    int st = system(cmd);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(f, sizeof f, "%s/.driftpilot/registry/versions/v000001/metadata.json", tmp);
    EXPECT(dp_file_exists(f));
    snprintf(cmd, sizeof cmd, "DRIFTPILOT_HOME='%s/home' %s registry publish --model '%s' > '%s' 2>&1", tmp,
             DP_BINARY, model, out);
    st = system(cmd);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(f, sizeof f, "%s/home/registry/versions/v000001/metadata.json", tmp);
    EXPECT(dp_file_exists(f));
    rm_rf(tmp);
}

TEST_MAIN(TEST_CASE(test_publish_roundtrip), TEST_CASE(test_checksum_refusal), TEST_CASE(test_bad_inputs),
          TEST_CASE(test_stale_staging), TEST_CASE(test_kill_during_publish), TEST_CASE(test_concurrent_publishers),
          TEST_CASE(test_cli))
