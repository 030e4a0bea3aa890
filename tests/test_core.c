/* Tests for core: errors, RNG determinism and ranges, durations, atomic
 * writes, SHA-256 against known digests, statistics, arena and buffer. */
#include "core.h"
#include "test.h"

#include <unistd.h>

static void test_fail_formats_message(void) {
    DpError err = {0};
    DpStatus s = dp_fail(&err, DP_ERR_IO, "open %s: %s", "x.json", "No such file");
    EXPECT_EQ_INT(s, DP_ERR_IO);
    EXPECT_STREQ(err.msg, "open x.json: No such file");
    dp_error_wrap(&err, "loading model");
    EXPECT_STREQ(err.msg, "loading model: open x.json: No such file");
    EXPECT_STREQ(dp_status_str(DP_ERR_PARSE), "parse error");
}

static void test_rng_deterministic_and_in_range(void) {
    DpRng a, b;
    dp_rng_seed(&a, 42);
    dp_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) EXPECT(dp_rng_u64(&a) == dp_rng_u64(&b));
    dp_rng_seed(&b, 43);
    EXPECT(dp_rng_u64(&a) != dp_rng_u64(&b));
    double sum = 0, sq = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = dp_rng_uniform(&a);
        EXPECT(u >= 0 && u < 1);
        uint64_t k = dp_rng_below(&a, 7);
        EXPECT(k < 7);
        double z = dp_rng_normal(&a);
        sum += z;
        sq += z * z;
    }
    EXPECT_NEAR(sum / n, 0.0, 0.01);
    EXPECT_NEAR(sq / n, 1.0, 0.02);
    double ps = 0;
    for (int i = 0; i < 20000; i++) ps += (double)dp_rng_poisson(&a, 3.5);
    EXPECT_NEAR(ps / 20000, 3.5, 0.05);
    int perm[10];
    for (int i = 0; i < 10; i++) perm[i] = i;
    dp_rng_shuffle_int(&a, perm, 10);
    int seen = 0;
    for (int i = 0; i < 10; i++) seen |= 1 << perm[i];
    EXPECT_EQ_INT(seen, 1023);
}

static void test_parse_duration(void) {
    double v = 0;
    DpError err = {0};
    EXPECT_EQ_INT(dp_parse_duration("90", &v, &err), DP_OK);
    EXPECT_NEAR(v, 90, 0);
    EXPECT_EQ_INT(dp_parse_duration("15m", &v, &err), DP_OK);
    EXPECT_NEAR(v, 900, 0);
    EXPECT_EQ_INT(dp_parse_duration("1.5h", &v, &err), DP_OK);
    EXPECT_NEAR(v, 5400, 0);
    EXPECT_EQ_INT(dp_parse_duration("250ms", &v, &err), DP_OK);
    EXPECT_NEAR(v, 0.25, 1e-12);
    EXPECT_EQ_INT(dp_parse_duration("2x", &v, &err), DP_ERR_PARSE);
    EXPECT(strstr(err.msg, "2x") != NULL);
    EXPECT_EQ_INT(dp_parse_duration("-3s", &v, &err), DP_ERR_PARSE);
}

static void test_sha256_known_digests(void) {
    char hex[65];
    dp_sha256_hex("", 0, hex);
    EXPECT_STREQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    dp_sha256_hex("abc", 3, hex);
    EXPECT_STREQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    dp_sha256_hex(m, strlen(m), hex);
    EXPECT_STREQ(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_atomic_write_and_read(void) {
    char dir[] = "/tmp/dp_core_XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char path[256], sub[256];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    DpError err = {0};
    EXPECT_EQ_INT(dp_mkdirs(sub, &err), DP_OK);
    snprintf(path, sizeof path, "%s/f.txt", sub);
    EXPECT_EQ_INT(dp_write_file_atomic(path, "hello", 5, &err), DP_OK);
    EXPECT_EQ_INT(dp_write_file_atomic(path, "world!", 6, &err), DP_OK);
    char *data = NULL;
    size_t n = 0;
    EXPECT_EQ_INT(dp_read_file(path, &data, &n, &err), DP_OK);
    EXPECT_EQ_INT(n, 6);
    EXPECT_STREQ(data, "world!");
    free(data);
    char hex[65];
    EXPECT_EQ_INT(dp_sha256_file(path, hex, &err), DP_OK);
    char want[65];
    dp_sha256_hex("world!", 6, want);
    EXPECT_STREQ(hex, want);
    EXPECT_EQ_INT(dp_read_file("/nonexistent/x", &data, &n, &err), DP_ERR_IO);
    EXPECT(strstr(err.msg, "/nonexistent/x") != NULL);
    unlink(path);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    EXPECT_EQ_INT(system(cmd), 0);
}

static void test_stats(void) {
    double x[] = {1, 2, 3, 4};
    EXPECT_NEAR(dp_mean(x, 4), 2.5, 1e-12);
    EXPECT_NEAR(dp_std(x, 4), 1.2909944487358056, 1e-12);
    EXPECT_NEAR(dp_quantile(x, 4, 0.5), 2.5, 1e-12);
    EXPECT_NEAR(dp_quantile(x, 4, 1.0), 4, 1e-12);
    EXPECT_NEAR(dp_quantile(x, 4, 0.25), 1.75, 1e-12);
}

static void test_arena_and_buf(void) {
    DpArena a;
    DpError err = {0};
    REQUIRE(dp_arena_init(&a, 1024, NULL, &err) == DP_OK);
    void *p = dp_arena_alloc(&a, 10);
    void *q = dp_arena_alloc(&a, 10);
    EXPECT(p && q && ((uintptr_t)q & 63) == 0 && q != p);
    EXPECT(dp_arena_alloc(&a, 2000) == NULL);
    dp_arena_reset(&a);
    EXPECT(dp_arena_alloc(&a, 1000) != NULL);
    dp_arena_free(&a);
    DpBuf b = DP_BUF_INIT;
    for (int i = 0; i < 1000; i++) dp_buf_printf(&b, "%d,", i);
    EXPECT(b.len > 3000);
    EXPECT(strncmp(b.data, "0,1,2,", 6) == 0);
    dp_buf_free(&b);
    EXPECT(b.data == NULL);
}

static void test_scenario_clock(void) {
    DpClock c;
    dp_clock_init(&c, 60.0, 100.0);
    double t0 = dp_clock_now(&c);
    EXPECT(t0 >= 100.0 && t0 < 101.0);
    dp_sleep(0.05);
    double t1 = dp_clock_now(&c);
    EXPECT(t1 - t0 >= 60 * 0.045);
}

TEST_MAIN(TEST_CASE(test_fail_formats_message), TEST_CASE(test_rng_deterministic_and_in_range),
          TEST_CASE(test_parse_duration), TEST_CASE(test_sha256_known_digests),
          TEST_CASE(test_atomic_write_and_read), TEST_CASE(test_stats),
          TEST_CASE(test_arena_and_buf), TEST_CASE(test_scenario_clock))
