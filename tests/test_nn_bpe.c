/* Tests of the GPT-2 byte-level BPE tokenizer (src/nn/bpe*.c): conformance
 * with another GPT-2 implementation on tests/data/gpt2-tokenizer/cases.jsonl,
 * hand-picked edge cases of the pre-tokenizer, invalid UTF-8, the
 * heap-based merge loop against GPT-2's direct loop, bad vocab/merges files,
 * the trainer, save/load, thread safety and the `driftpilot tokenize`
 * command. */
#include "../src/nn/bpe_impl.h"
#include "nn.h"
#include "test.h"

#include <jansson.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOK_DIR DP_TEST_DATA "/gpt2-tokenizer"

static BpeTokenizer *gpt2 = NULL;

static BpeTokenizer *get_gpt2(void) {
    if (!gpt2) {
        DpError err = {0};
        DpStatus st = bpe_load_dir(TOK_DIR, &gpt2, &err);
        if (st != DP_OK) fprintf(stderr, "load: %s\n", err.msg);
    }
    return gpt2;
}

/* Encodes text and compares with the expected ids; prints both on mismatch. */
static int check_ids(BpeTokenizer *tok, const char *text, size_t len, int allow_special,
                     const int *want, size_t n_want) {
    int *ids = NULL;
    size_t n = 0;
    DpError err = {0};
    if (bpe_encode(tok, text, len, allow_special, &ids, &n, &err) != DP_OK) return 0;
    int ok = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof(int)) == 0);
    if (!ok) {
        fprintf(stderr, "    text %.60s: got", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "; want");
        for (size_t i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}

/* Encode then decode gives back exactly the input bytes. */
static int roundtrips(BpeTokenizer *tok, const char *text, size_t len) {
    int *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t bl = 0;
    DpError err = {0};
    int ok = bpe_encode(tok, text, len, 0, &ids, &n, &err) == DP_OK &&
             bpe_decode(tok, ids, n, &back, &bl, &err) == DP_OK && bl == len &&
             memcmp(back, text, len) == 0;
    free(ids);
    free(back);
    return ok;
}

#define IDS(...) ((const int[]){__VA_ARGS__}), (sizeof((const int[]){__VA_ARGS__}) / sizeof(int))
#define CHECK_IDS(text, ...) EXPECT(check_ids(tok, text, strlen(text), 0, IDS(__VA_ARGS__)))

// ---- conformance ----

static void test_load_gpt2(void) {
    BpeTokenizer *tok = get_gpt2();
    REQUIRE(tok);
    EXPECT_EQ_INT(bpe_vocab_size(tok), 50257);
    EXPECT_EQ_INT(bpe_n_merges(tok), 50000);
    EXPECT_EQ_INT(bpe_eot_id(tok), 50256);
    EXPECT_STREQ(bpe_token_str(tok, 995), "\xC4\xA0world"); /* "Ġworld" */
    size_t len = 0;
    const char *b = bpe_token_bytes(tok, 995, &len);
    EXPECT(b && len == 6 && memcmp(b, " world", 6) == 0);
    EXPECT_EQ_INT(bpe_token_id(tok, "Hello"), 15496);
    EXPECT_EQ_INT(bpe_token_id(tok, "no-such-token-xyz"), -1);
    EXPECT(bpe_token_str(tok, -1) == NULL);
    EXPECT(bpe_token_str(tok, 50257) == NULL);
}

/* Encodes every "text" of a JSON-lines file and compares with "ids"; where
 * "roundtrip" is true, decoding the ids must give the text back. */
static void run_cases_file(const char *path, int want_cases) {
    BpeTokenizer *tok = get_gpt2();
    REQUIRE(tok);
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    char line[65536];
    int n_cases = 0, n_ok = 0, n_rt = 0, n_rt_ok = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) continue;
        json_t *jt = json_object_get(o, "text"), *jids = json_object_get(o, "ids");
        const char *text = json_string_value(jt);
        size_t tl = json_string_length(jt);
        size_t nw = json_array_size(jids);
        int *want = malloc((nw + 1) * sizeof(int));
        for (size_t i = 0; i < nw; i++) want[i] = (int)json_integer_value(json_array_get(jids, i));
        n_cases++;
        if (check_ids(tok, text, tl, 0, want, nw)) n_ok++;
        if (json_is_true(json_object_get(o, "roundtrip"))) {
            n_rt++;
            char *back = NULL;
            size_t bl = 0;
            DpError err = {0};
            if (bpe_decode_text(tok, want, nw, &back, &bl, &err) == DP_OK && bl == tl &&
                memcmp(back, text, tl) == 0)
                n_rt_ok++;
            free(back);
        }
        free(want);
        json_decref(o);
    }
    fclose(f);
    EXPECT_EQ_INT(n_cases, want_cases);
    EXPECT_EQ_INT(n_ok, n_cases);
    EXPECT_EQ_INT(n_rt_ok, n_rt);
}

/* The 233 conformance cases (all marked roundtrip). */
static void test_cases_file(void) { run_cases_file(TOK_DIR "/cases.jsonl", 233); }

/* 1000 random mixes of scripts, digits, whitespace, contractions and emoji,
 * with ids from gpt-3-encoder (see RANDOM_CASES.md). */
static void test_random_cases_file(void) { run_cases_file(TOK_DIR "/random_cases.jsonl", 1000); }

/* 487 random strings holding U+0085 or U+FEFF, with ids from GPT-2's pattern
 * under Python's regex module (gpt2_regex_reference.py). */
static void test_whitespace_cases_file(void) {
    run_cases_file(TOK_DIR "/whitespace_cases.jsonl", 487);
}

static void test_edge_cases(void) {
    BpeTokenizer *tok = get_gpt2();
    REQUIRE(tok);
    /* From gpt-3-encoder's own tests (see PROVENANCE.md). */
    EXPECT(check_ids(tok, "", 0, 0, (const int[]){0}, 0));
    CHECK_IDS(" ", 220);
    CHECK_IDS("\t", 197);
    CHECK_IDS("This is some text", 1212, 318, 617, 2420);
    CHECK_IDS("indivisible", 521, 452, 12843);
    CHECK_IDS("hello \xF0\x9F\x91\x8B world \xF0\x9F\x8C\x8D", 31373, 50169, 233, 995, 12520,
              234, 235);
    /* Expected ids below came from gpt-3-encoder@1.1.4 (node), an independent
     * implementation.  Whitespace: \s+(?!\S) leaves the last space to the
     * next word; a run at the end stays whole. */
    CHECK_IDS("   ", 220, 220, 220);
    CHECK_IDS("  hello", 220, 23748);
    CHECK_IDS("hello  world", 31373, 220, 995);
    CHECK_IDS("a\n\nb", 64, 198, 198, 65);
    CHECK_IDS("line\n", 1370, 198);
    CHECK_IDS("trailing  ", 9535, 4386, 220, 220);
    CHECK_IDS("x \t\n", 87, 220, 197, 198);
    CHECK_IDS("\xC3\xA9", 2634);                           /* e-acute */
    CHECK_IDS("caf\xC3\xA9", 66, 1878, 2634);
    CHECK_IDS("\xF0\x9F\x9A\x80", 8582, 248, 222);           /* rocket */
    CHECK_IDS("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", 33768, 98, 17312, 105, 45739, 252);
    CHECK_IDS("12345", 10163, 2231);
    CHECK_IDS("it's", 270, 338);
    CHECK_IDS("I'M", 40, 6, 44); /* case-sensitive: 'M is not a contraction */
    CHECK_IDS("don't", 9099, 470);
    CHECK_IDS("We'll 1,000,000!", 1135, 1183, 352, 11, 830, 11, 830, 0);
}

static void test_pretokenizer(void) {
    /* Checks the split itself, independent of the vocabulary. */
    struct {
        const char *text;
        const char *parts[12];
    } cases[] = {
        {"hello  world", {"hello", " ", " world"}},
        {"  hello", {" ", " hello"}},
        {"it's", {"it", "'s"}},
        {"I'M", {"I", "'", "M"}},
        {"they'll've", {"they", "'ll", "'ve"}},
        {"12345 678", {"12345", " 678"}},
        {"a\n\nb", {"a", "\n", "\n", "b"}},
        {"a\n\n", {"a", "\n\n"}},
        {"a \n b", {"a", " \n", " b"}},
        {"x   ", {"x", "   "}},
        {"trailing \t", {"trailing", " \t"}},
        {"?!'s", {"?!'", "s"}},
        {" \xC3\xA9t\xC3\xA9", {" \xC3\xA9t\xC3\xA9"}},
        {"\xE6\x97\xA5\xE6\x9C\xAC 42", {"\xE6\x97\xA5\xE6\x9C\xAC", " 42"}},
        {"a\xE3\x80\x80\xE3\x80\x80" "b", {"a", "\xE3\x80\x80", "\xE3\x80\x80", "b"}},
        {"\xFF\xFEx", {"\xFF\xFE", "x"}},
        {" \x80", {" \x80"}},
        {"\xC2\xBD+\xE2\x85\xA7", {"\xC2\xBD", "+", "\xE2\x85\xA7"}},
        /* \s is Unicode White_Space (Python regex, GPT-2's): U+0085 is space,
         * U+FEFF is not (JavaScript's \s says the opposite for both) */
        {"a\xC2\x85\xC2\x85" "b", {"a", "\xC2\x85", "\xC2\x85", "b"}},
        {"a\xEF\xBB\xBF", {"a", "\xEF\xBB\xBF"}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const unsigned char *s = (const unsigned char *)cases[c].text;
        size_t n = strlen(cases[c].text), pos = 0;
        int k = 0, ok = 1;
        while (pos < n) {
            size_t l = bpe_pretoken_len(s + pos, n - pos);
            const char *want = cases[c].parts[k++];
            if (!want || strlen(want) != l || memcmp(want, s + pos, l) != 0) ok = 0;
            if (!ok) break;
            pos += l;
        }
        if (ok && cases[c].parts[k]) ok = 0;
        EXPECT_MSG(ok, "pre-tokens of \"%s\" (case %zu)", cases[c].text, c);
    }
}

static void test_invalid_utf8_and_bytes(void) {
    BpeTokenizer *tok = get_gpt2();
    REQUIRE(tok);
    const char *bad[] = {"\xFF", "ab\xC3", "\xED\xA0\x80x", "\xF4\x90\x80\x80", "\xC0\xAF",
                         "a\x80 b\xE2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        EXPECT_MSG(roundtrips(tok, bad[i], strlen(bad[i])), "case %zu", i);
    /* Every byte value, including NUL, round-trips. */
    char all[512];
    for (int i = 0; i < 512; i++) all[i] = (char)(i * 7 + 3);
    EXPECT(roundtrips(tok, all, sizeof all));
    /* decode_text replaces invalid UTF-8 as Python's errors="replace" does. */
    int *ids = NULL;
    size_t n = 0;
    char *txt = NULL;
    size_t tl = 0;
    DpError err = {0};
    REQUIRE(bpe_encode(tok, "a\xE2\x82z\xFF", 5, 0, &ids, &n, &err) == DP_OK);
    REQUIRE(bpe_decode_text(tok, ids, n, &txt, &tl, &err) == DP_OK);
    EXPECT_STREQ(txt, "a\xEF\xBF\xBDz\xEF\xBF\xBD");
    free(ids);
    free(txt);
    /* Bad ids are an error naming the index. */
    int bad_ids[] = {15496, 50257};
    EXPECT(bpe_decode(tok, bad_ids, 2, &txt, &tl, &err) == DP_ERR_INVAL);
    EXPECT(strstr(err.msg, "index 1") != NULL);
}

static void test_special_token(void) {
    BpeTokenizer *tok = get_gpt2();
    REQUIRE(tok);
    const char *t = "a<|endoftext|>b";
    /* Plain text, as the reference: "<|endoftext|>" is split like any text. */
    int *ids = NULL;
    size_t n = 0;
    DpError err = {0};
    REQUIRE(bpe_encode(tok, t, strlen(t), 0, &ids, &n, &err) == DP_OK);
    int has_eot = 0;
    for (size_t i = 0; i < n; i++) has_eot |= ids[i] == 50256;
    EXPECT(!has_eot && n > 3);
    free(ids);
    EXPECT(check_ids(tok, t, strlen(t), 1, IDS(64, 50256, 65)));
    EXPECT(check_ids(tok, "<|endoftext|><|endoftext|>", 26, 1, IDS(50256, 50256)));
    char *back = NULL;
    int eot[] = {64, 50256, 65};
    REQUIRE(bpe_decode(tok, eot, 3, &back, NULL, &err) == DP_OK);
    EXPECT_STREQ(back, t);
    free(back);
}

/* The heap-based merge loop (long words) must give GPT-2's direct loop's
 * result: encode the same texts with the threshold at both extremes. */
static void test_heap_matches_naive(void) {
    /* Two tokenizers, one always used with the direct loop and one always
     * with the heap, so neither's cache can answer for the other. */
    BpeTokenizer *naive = NULL, *heap = NULL;
    DpError err = {0};
    REQUIRE(bpe_load_dir(TOK_DIR, &naive, &err) == DP_OK);
    REQUIRE(bpe_load_dir(TOK_DIR, &heap, &err) == DP_OK);
    DpRng rng;
    dp_rng_seed(&rng, 7);
    const char *pieces[] = {"a", "b", "an", "the", "ing", "tion", "e", "s", "-", "=", "0", "1",
                            "\xC3\xA9", "\xE6\x97\xA5", "aa", "ll", "'s", "x"};
    int n_pieces = (int)(sizeof pieces / sizeof pieces[0]);
    int mismatches = 0;
    for (int trial = 0; trial < 300; trial++) {
        DpBuf b = DP_BUF_INIT;
        int len = 1 + (int)dp_rng_below(&rng, trial < 150 ? 40 : 400);
        /* no spaces: long single pre-tokens are what the heap path is for */
        for (int i = 0; i < len; i++) {
            const char *p = pieces[dp_rng_below(&rng, (uint64_t)n_pieces)];
            dp_buf_append(&b, p, strlen(p));
        }
        int *a = NULL, *c = NULL;
        size_t na = 0, nc = 0;
        size_t old = bpe_set_naive_limit((size_t)-1);
        EXPECT(bpe_encode(naive, b.data, b.len, 0, &a, &na, &err) == DP_OK);
        bpe_set_naive_limit(0);
        EXPECT(bpe_encode(heap, b.data, b.len, 0, &c, &nc, &err) == DP_OK);
        bpe_set_naive_limit(old);
        if (na != nc || memcmp(a, c, na * sizeof(int)) != 0) mismatches++;
        free(a);
        free(c);
        dp_buf_free(&b);
    }
    EXPECT_EQ_INT(mismatches, 0);
    bpe_free(naive);
    bpe_free(heap);
}

// ---- bad files ----

/* Loads a tokenizer from the given vocab/merges text; returns the status and
 * leaves the message in err. */
static DpStatus load_text(const char *vocab, const char *merges, DpError *err) {
    BpeTokenizer *t = NULL;
    DpStatus st = bpe_load_buffers(vocab, strlen(vocab), merges, strlen(merges), NULL, 0,
                                   "v.json", "m.txt", &t, err);
    bpe_free(t);
    return st;
}

/* A minimal valid byte-level vocab: the 256 byte tokens plus extra. */
static char *byte_vocab(const char *extra) {
    DpBuf b = DP_BUF_INIT;
    dp_buf_append(&b, "{", 1);
    for (int i = 0; i < 256; i++) {
        DpBuf s = DP_BUF_INIT;
        unsigned char c = (unsigned char)i;
        bpe_bytes_to_vocab_str(&c, 1, &s);
        if (s.data[0] == '"' || s.data[0] == '\\') dp_buf_printf(&b, "\"\\%c\": %d, ", s.data[0], i);
        else dp_buf_printf(&b, "\"%.*s\": %d, ", (int)s.len, s.data, i);
        dp_buf_free(&s);
    }
    dp_buf_printf(&b, "%s}", extra);
    return b.data;
}

static void test_bad_files(void) {
    DpError err = {0};
    char *v = byte_vocab("\"ab\": 256, \"abc\": 257");
    EXPECT(load_text(v, "#version: 0.2\na b\nab c\n", &err) == DP_OK);
    EXPECT(load_text(v, "a b\r\nab c", &err) == DP_OK); /* no header, CRLF, no final newline */

    EXPECT(load_text(v, "#version: 0.2\na b\nabc\n", &err) == DP_ERR_PARSE);
    EXPECT(strstr(err.msg, "m.txt line 3") != NULL);
    EXPECT(load_text(v, "a b c\n", &err) == DP_ERR_PARSE);
    EXPECT(strstr(err.msg, "m.txt line 1") != NULL);
    EXPECT(load_text(v, "a  b\n", &err) == DP_ERR_PARSE);
    EXPECT(load_text(v, "a zz\n", &err) == DP_ERR_PARSE);
    EXPECT(strstr(err.msg, "\"zz\" is not in the vocabulary") != NULL);
    EXPECT(load_text(v, "b c\n", &err) == DP_ERR_PARSE); /* "bc" missing */
    EXPECT(strstr(err.msg, "merged token \"bc\"") != NULL);
    free(v);

    EXPECT(load_text("[1, 2]", "", &err) == DP_ERR_PARSE);
    EXPECT(strstr(err.msg, "v.json") != NULL);
    EXPECT(load_text("{\"a\": 0,", "", &err) == DP_ERR_PARSE);
    EXPECT(strstr(err.msg, "v.json: line 1") != NULL);
    v = byte_vocab("\"ab\": 255");
    EXPECT(load_text(v, "", &err) == DP_ERR_PARSE); /* id 255 twice */
    EXPECT(strstr(err.msg, "used by") != NULL);
    free(v);
    v = byte_vocab("\"ab\": \"x\"");
    EXPECT(load_text(v, "", &err) == DP_ERR_PARSE);
    free(v);
    v = byte_vocab("\"ab\": 300");
    EXPECT(load_text(v, "", &err) == DP_ERR_PARSE);
    free(v);
    EXPECT(load_text("{\"a\": 0}", "", &err) == DP_ERR_PARSE); /* not byte-level */

    /* added_tokens.json must agree with vocab.json */
    BpeTokenizer *t = NULL;
    v = byte_vocab("\"ab\": 256");
    const char *added_ok = "{\"ab\": 256}", *added_other = "{\"zz\": 256}",
               *added_out = "{\"<pad>\": 257}";
    EXPECT(bpe_load_buffers(v, strlen(v), "", 0, added_ok, strlen(added_ok), "v", "m", &t, &err) ==
           DP_OK);
    /* byte_vocab gives byte b the id b; "ab" is matched whole */
    if (t) EXPECT(check_ids(t, "xaby", 4, 0, IDS('x', 256, 'y')));
    bpe_free(t);
    t = NULL;
    EXPECT(bpe_load_buffers(v, strlen(v), "", 0, added_other, strlen(added_other), "v", "m", &t,
                            &err) == DP_ERR_PARSE);
    EXPECT(strstr(err.msg, "other text") != NULL);
    EXPECT(bpe_load_buffers(v, strlen(v), "", 0, added_out, strlen(added_out), "v", "m", &t,
                            &err) == DP_ERR_PARSE);
    EXPECT(strstr(err.msg, "not in vocab.json") != NULL);
    free(v);
    EXPECT(bpe_load_dir("/nonexistent-dir", &t, &err) == DP_ERR_IO && t == NULL);
    EXPECT(strstr(err.msg, "/nonexistent-dir/vocab.json") != NULL);
    bpe_free(NULL);
}

// ---- threads ----

typedef struct {
    BpeTokenizer *tok;
    char **texts;
    int n;
    int mismatches;
    int **want;
    size_t *n_want;
} ThreadArg;

static void *thread_encode(void *p) {
    ThreadArg *a = p;
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < a->n; i++) {
            int *ids = NULL;
            size_t n = 0;
            DpError err;
            bpe_encode(a->tok, a->texts[i], strlen(a->texts[i]), 0, &ids, &n, &err);
            if (n != a->n_want[i] || (n && memcmp(ids, a->want[i], n * sizeof(int)) != 0))
                a->mismatches++;
            free(ids);
        }
    return NULL;
}

/* Reads the "text" of every case into an array. */
static int read_case_texts(char ***out) {
    FILE *f = fopen(TOK_DIR "/cases.jsonl", "rb");
    if (!f) return 0;
    char line[65536];
    int n = 0;
    char **texts = NULL;
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) continue;
        texts = realloc(texts, (size_t)(n + 1) * sizeof *texts);
        texts[n++] = strdup(json_string_value(json_object_get(o, "text")));
        json_decref(o);
    }
    fclose(f);
    *out = texts;
    return n;
}

static void free_texts(char **t, int n) {
    for (int i = 0; i < n; i++) free(t[i]);
    free(t);
}

static void test_threads(void) {
    BpeTokenizer *ref = get_gpt2(), *shared = NULL;
    REQUIRE(ref);
    DpError err;
    REQUIRE(bpe_load_dir(TOK_DIR, &shared, &err) == DP_OK);
    char **texts = NULL;
    int n = read_case_texts(&texts);
    REQUIRE(n > 0);
    int **want = calloc((size_t)n, sizeof *want);
    size_t *n_want = calloc((size_t)n, sizeof *n_want);
    for (int i = 0; i < n; i++) bpe_encode(ref, texts[i], strlen(texts[i]), 0, &want[i], &n_want[i], &err);
    ThreadArg args[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        args[k] = (ThreadArg){shared, texts, n, 0, want, n_want};
        pthread_create(&th[k], NULL, thread_encode, &args[k]);
    }
    int mism = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        mism += args[k].mismatches;
    }
    EXPECT_EQ_INT(mism, 0);
    for (int i = 0; i < n; i++) free(want[i]);
    free(want);
    free(n_want);
    free_texts(texts, n);
    bpe_free(shared);
}

// ---- the trainer ----

/* A corpus of English-like sentences with entity names and numbers. */
static char **make_corpus(int n, uint64_t seed) {
    static const char *words[] = {"the", "service", "region", "host", "answer", "question",
                                  "deploy", "latency", "is", "in", "of", "and", "runs", "model",
                                  "it's", "we'll", "cost", "per", "hour", "cloud", "east", "west"};
    static const char *names[] = {"jade-93", "orion", "eu-west-1", "kestrel"};
    char **texts = calloc((size_t)n, sizeof *texts);
    DpRng rng;
    dp_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        DpBuf b = DP_BUF_INIT;
        int len = 5 + (int)dp_rng_below(&rng, 12);
        for (int w = 0; w < len; w++) {
            if (w) dp_buf_append(&b, " ", 1);
            uint64_t r = dp_rng_below(&rng, 10);
            if (r == 0) dp_buf_printf(&b, "%d", (int)dp_rng_below(&rng, 100000));
            else if (r == 1) dp_buf_printf(&b, "%s", names[dp_rng_below(&rng, 4)]);
            else dp_buf_printf(&b, "%s", words[dp_rng_below(&rng, sizeof words / sizeof words[0])]);
        }
        dp_buf_append(&b, i % 3 ? ".\n" : "?", i % 3 ? 2 : 1);
        texts[i] = b.data;
    }
    return texts;
}

/* The id the trainer gives a token: bytes in GPT-2's order (by mapped code
 * point), then merged tokens in creation order. */
static int token_id_of(const char *s, char **toks, int n_tok) {
    if (strlen(s) == 1) {
        int id = 0;
        for (int b = 0; b < 256; b++) id += bpe_byte_to_cp(b) < bpe_byte_to_cp((unsigned char)s[0]);
        return id;
    }
    for (int z = 0; z < n_tok - 256; z++)
        if (!strcmp(toks[z], s)) return 256 + z;
    return -1;
}

/* The slow, obvious trainer: recount every pair of every word at each step.
 * Returns the merges as (left bytes, right bytes) strings "l\x01r". */
static int naive_train(char **texts, int n_texts, int vocab_size, int keep_digits,
                       char ***merges_out) {
    /* words as arrays of token strings (byte strings, NUL-free corpus) */
    typedef struct {
        char **sym;
        int n;
        long freq;
    } NWord;
    NWord *w = NULL;
    int nw = 0;
    for (int t = 0; t < n_texts; t++) {
        const unsigned char *s = (const unsigned char *)texts[t];
        size_t len = strlen(texts[t]), pos = 0;
        while (pos < len) {
            size_t l = bpe_pretoken_len(s + pos, len - pos);
            int found = -1;
            for (int i = 0; i < nw && found < 0; i++) {
                size_t tot = 0;
                for (int k = 0; k < w[i].n; k++) tot += strlen(w[i].sym[k]);
                if (tot == l && w[i].n == (int)l) {
                    int same = 1;
                    for (int k = 0; k < w[i].n; k++) same &= w[i].sym[k][0] == (char)s[pos + k];
                    if (same) found = i;
                }
            }
            if (found >= 0) {
                w[found].freq++;
            } else {
                w = realloc(w, (size_t)(nw + 1) * sizeof *w);
                w[nw].sym = malloc(l * sizeof(char *));
                for (size_t k = 0; k < l; k++) w[nw].sym[k] = strndup((const char *)s + pos + k, 1);
                w[nw].n = (int)l;
                w[nw].freq = 1;
                nw++;
            }
            pos += l;
        }
    }
    char **merges = NULL;
    int n_merges = 0, n_tok = 256;
    char **toks = NULL; /* merged tokens made so far, to mirror id reuse */
    while (n_tok + 1 < vocab_size) {
        /* candidate pairs with counts; order by (count desc, left id, right id) needs
         * ids: ids of merged tokens are 256 + index in toks, bytes follow GPT-2 order */
        long best = 0;
        char *bl = NULL, *br = NULL;
        int best_a = 0, best_b = 0;
        for (int i = 0; i < nw; i++)
            for (int k = 0; k + 1 < w[i].n; k++) {
                const char *l = w[i].sym[k], *r = w[i].sym[k + 1];
                if (keep_digits && (strpbrk(l, "0123456789") || strpbrk(r, "0123456789"))) continue;
                long cnt = 0;
                for (int j = 0; j < nw; j++)
                    for (int q = 0; q + 1 < w[j].n; q++)
                        if (!strcmp(w[j].sym[q], l) && !strcmp(w[j].sym[q + 1], r)) cnt += w[j].freq;
                int ia = token_id_of(l, toks, n_tok), ib = token_id_of(r, toks, n_tok);
                if (cnt > best || (cnt == best && (ia < best_a || (ia == best_a && ib < best_b)))) {
                    best = cnt;
                    bl = w[i].sym[k];
                    br = w[i].sym[k + 1];
                    best_a = ia;
                    best_b = ib;
                }
            }
        if (best < 2) break;
        char *l = strdup(bl), *r = strdup(br);
        size_t ll = strlen(l), rl = strlen(r);
        char *cat = malloc(ll + rl + 1);
        memcpy(cat, l, ll);
        memcpy(cat + ll, r, rl + 1);
        int exists = 0;
        for (int z = 0; z < n_tok - 256; z++) exists |= !strcmp(toks[z], cat);
        if (!exists) {
            toks = realloc(toks, (size_t)(n_tok - 255) * sizeof *toks);
            toks[n_tok - 256] = strdup(cat);
            n_tok++;
        }
        merges = realloc(merges, (size_t)(n_merges + 1) * sizeof *merges);
        merges[n_merges] = malloc(ll + rl + 2);
        sprintf(merges[n_merges], "%s\x01%s", l, r);
        n_merges++;
        for (int i = 0; i < nw; i++) {
            int m = 0;
            for (int k = 0; k < w[i].n;) {
                if (k + 1 < w[i].n && !strcmp(w[i].sym[k], l) && !strcmp(w[i].sym[k + 1], r)) {
                    free(w[i].sym[k]);
                    free(w[i].sym[k + 1]);
                    w[i].sym[m++] = strdup(cat);
                    k += 2;
                } else {
                    w[i].sym[m++] = w[i].sym[k++];
                }
            }
            w[i].n = m;
        }
        free(l);
        free(r);
        free(cat);
    }
    for (int i = 0; i < nw; i++) {
        for (int k = 0; k < w[i].n; k++) free(w[i].sym[k]);
        free(w[i].sym);
    }
    free(w);
    for (int z = 0; z < n_tok - 256; z++) free(toks[z]);
    free(toks);
    *merges_out = merges;
    return n_merges;
}

/* The trainer's merges equal the obvious trainer's, step by step. */
static void test_train_matches_naive(void) {
    for (int keep_digits = 0; keep_digits < 2; keep_digits++) {
        int n = 40;
        char **texts = make_corpus(n, 11 + (uint64_t)keep_digits);
        BpeTrainOptions o = {0};
        o.vocab_size = 330;
        o.keep_digits_apart = keep_digits;
        BpeTokenizer *tok = NULL;
        DpError err = {0};
        REQUIRE(bpe_train((const char *const *)texts, NULL, (size_t)n, &o, &tok, &err) == DP_OK);
        char **want = NULL;
        int n_want = naive_train(texts, n, o.vocab_size, keep_digits, &want);
        EXPECT(n_want > 20);
        EXPECT_EQ_INT(bpe_n_merges(tok), n_want);
        /* compare through a save: merges.txt lines against the naive pairs */
        char dir[] = "/tmp/dp_bpe_naiveXXXXXX";
        REQUIRE(mkdtemp(dir));
        REQUIRE(bpe_save_dir(tok, dir, &err) == DP_OK);
        BpeTokenizer *back = NULL;
        REQUIRE(bpe_load_dir(dir, &back, &err) == DP_OK);
        int same = 0;
        for (int r = 0; r < n_want && r < bpe_n_merges(tok); r++) {
            /* merge r of the trained tokenizer = token (256 + new ones) bytes; check
             * via encode of the naive left+right: both sides must decode equal */
            char *sep = strchr(want[r], '\x01');
            *sep = '\0';
            int ok = 0;
            /* the r-th merge's pieces are found as token strings */
            DpBuf l = DP_BUF_INIT, rr = DP_BUF_INIT;
            bpe_bytes_to_vocab_str((const unsigned char *)want[r], strlen(want[r]), &l);
            bpe_bytes_to_vocab_str((const unsigned char *)sep + 1, strlen(sep + 1), &rr);
            dp_buf_append(&l, "", 1);
            dp_buf_append(&rr, "", 1);
            int a = bpe_token_id(back, l.data), b = bpe_token_id(back, rr.data);
            ok = a >= 0 && b >= 0;
            dp_buf_free(&l);
            dp_buf_free(&rr);
            *sep = '\x01';
            same += ok;
        }
        EXPECT_EQ_INT(same, n_want);
        /* exact order: the merges file lines, in rank order */
        char path[512], *mtxt = NULL;
        snprintf(path, sizeof path, "%s/merges.txt", dir);
        size_t ml = 0;
        REQUIRE(dp_read_file(path, &mtxt, &ml, &err) == DP_OK);
        char *line = strchr(mtxt, '\n') + 1; /* after #version */
        int in_order = 0;
        for (int r = 0; r < n_want; r++) {
            char *nl = strchr(line, '\n');
            if (!nl) break;
            *nl = '\0';
            char *sep = strchr(want[r], '\x01');
            *sep = '\0';
            DpBuf expect = DP_BUF_INIT;
            bpe_bytes_to_vocab_str((const unsigned char *)want[r], strlen(want[r]), &expect);
            dp_buf_append(&expect, " ", 1);
            bpe_bytes_to_vocab_str((const unsigned char *)sep + 1, strlen(sep + 1), &expect);
            dp_buf_append(&expect, "", 1);
            *sep = '\x01';
            if (!strcmp(expect.data, line)) in_order++;
            else if (in_order == r) fprintf(stderr, "    merge %d: got '%s' want '%s'\n", r, line, expect.data);
            dp_buf_free(&expect);
            line = nl + 1;
        }
        EXPECT_EQ_INT(in_order, n_want);
        free(mtxt);
        for (int r = 0; r < n_want; r++) free(want[r]);
        free(want);
        bpe_free(tok);
        bpe_free(back);
        free_texts(texts, n);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        EXPECT(system(cmd) == 0);
    }
}

/* Encodes and returns the number of ids (-1 on error); ids in *out. */
static int enc(BpeTokenizer *t, const char *s, int **out) {
    size_t n = 0;
    DpError err;
    if (bpe_encode(t, s, strlen(s), 0, out, &n, &err) != DP_OK) return -1;
    return (int)n;
}

static void test_train_forced_digits_save(void) {
    int n = 3000;
    char **texts = make_corpus(n, 5);
    const char *forced[] = {"jade-93", "orion", "eu-west-1", "zeta-7"};
    BpeTrainOptions o = {0};
    o.vocab_size = 700;
    o.keep_digits_apart = 1;
    o.forced_tokens = forced;
    o.n_forced = 4;
    BpeTokenizer *tok = NULL;
    DpError err = {0};
    REQUIRE(bpe_train((const char *const *)texts, NULL, (size_t)n, &o, &tok, &err) == DP_OK);
    int V = bpe_vocab_size(tok);
    EXPECT_MSG(V <= 700 && V > 300, "V = %d", V);
    fprintf(stderr, "  trained vocabulary: %d ids, %d merges\n", V, bpe_n_merges(tok));
    EXPECT_EQ_INT(bpe_eot_id(tok), V - 1);
    EXPECT_STREQ(bpe_token_str(tok, V - 1), "<|endoftext|>");
    /* the first 256 ids are GPT-2's */
    BpeTokenizer *g = get_gpt2();
    REQUIRE(g);
    int same256 = 0;
    for (int i = 0; i < 256; i++) same256 += !strcmp(bpe_token_str(tok, i), bpe_token_str(g, i));
    EXPECT_EQ_INT(same256, 256);
    /* forced words are one id, with and without the space, also in context */
    int *ids = NULL;
    for (int k = 0; k < 4; k++) {
        char buf[64];
        EXPECT_EQ_INT(enc(tok, forced[k], &ids), 1);
        free(ids);
        snprintf(buf, sizeof buf, " %s", forced[k]);
        EXPECT_EQ_INT(enc(tok, buf, &ids), 1);
        free(ids);
    }
    int n1 = enc(tok, "the host jade-93 runs", &ids);
    int found = 0;
    for (int i = 0; i < n1; i++) found |= ids[i] == bpe_token_id(tok, "\xC4\xA0jade-93");
    EXPECT(found);
    free(ids);
    /* digits stay single: no token but forced ones holds a digit and more */
    int bad_digit_tokens = 0;
    for (int id = 0; id < V; id++) {
        size_t len = 0;
        const char *b = bpe_token_bytes(tok, id, &len);
        int digit = 0;
        for (size_t i = 0; i < len; i++) digit |= b[i] >= '0' && b[i] <= '9';
        if (digit && len > 1 && !memmem(b, len, "jade-9", 6) && !memmem(b, len, "eu-west-", 8) &&
            !memmem(b, len, "zeta-", 5))
            bad_digit_tokens++;
    }
    EXPECT_EQ_INT(bad_digit_tokens, 0);
    EXPECT_EQ_INT(enc(tok, "12345", &ids), 5);
    free(ids);
    EXPECT_EQ_INT(enc(tok, " 2024", &ids), 5);
    free(ids);
    /* common words learned whole */
    EXPECT_EQ_INT(enc(tok, " service", &ids), 1);
    free(ids);
    /* round trips, including text never seen and invalid UTF-8 */
    EXPECT(roundtrips(tok, texts[0], strlen(texts[0])));
    EXPECT(roundtrips(tok, "Zebra \xE6\x97\xA5 \xFF\xFE 3.14 jade-930!", 27));
    /* save, load, encode identically; a second save gives the same bytes */
    char dir[] = "/tmp/dp_bpe_trainXXXXXX";
    REQUIRE(mkdtemp(dir));
    char sub[600];
    snprintf(sub, sizeof sub, "%s/tok", dir);
    REQUIRE(bpe_save_dir(tok, sub, &err) == DP_OK);
    BpeTokenizer *back = NULL;
    REQUIRE(bpe_load_dir(sub, &back, &err) == DP_OK);
    EXPECT_EQ_INT(bpe_vocab_size(back), V);
    EXPECT_EQ_INT(bpe_n_merges(back), bpe_n_merges(tok));
    int diff = 0;
    for (int i = 0; i < 300; i++) {
        int *a = NULL, *b = NULL;
        int na = enc(tok, texts[i], &a), nb = enc(back, texts[i], &b);
        if (na != nb || memcmp(a, b, (size_t)na * sizeof(int)) != 0) diff++;
        free(a);
        free(b);
    }
    EXPECT_EQ_INT(diff, 0);
    EXPECT_EQ_INT(enc(back, " jade-93", &ids), 1);
    free(ids);
    char p1[700], p2[700], sub2[620];
    snprintf(sub2, sizeof sub2, "%s/tok2", dir);
    REQUIRE(bpe_save_dir(back, sub2, &err) == DP_OK);
    const char *files[] = {"vocab.json", "merges.txt", "added_tokens.json"};
    for (int f = 0; f < 3; f++) {
        char h1[65], h2[65];
        snprintf(p1, sizeof p1, "%s/%s", sub, files[f]);
        snprintf(p2, sizeof p2, "%s/%s", sub2, files[f]);
        EXPECT(dp_sha256_file(p1, h1, &err) == DP_OK && dp_sha256_file(p2, h2, &err) == DP_OK &&
               !strcmp(h1, h2));
    }
    /* deterministic: training again gives the same files */
    BpeTokenizer *again = NULL;
    REQUIRE(bpe_train((const char *const *)texts, NULL, (size_t)n, &o, &again, &err) == DP_OK);
    snprintf(sub2, sizeof sub2, "%s/tok3", dir);
    REQUIRE(bpe_save_dir(again, sub2, &err) == DP_OK);
    for (int f = 0; f < 3; f++) {
        char h1[65], h2[65];
        snprintf(p1, sizeof p1, "%s/%s", sub, files[f]);
        snprintf(p2, sizeof p2, "%s/%s", sub2, files[f]);
        EXPECT(dp_sha256_file(p1, h1, &err) == DP_OK && dp_sha256_file(p2, h2, &err) == DP_OK &&
               !strcmp(h1, h2));
    }
    bpe_free(again);
    bpe_free(back);
    bpe_free(tok);
    free_texts(texts, n);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    EXPECT(system(cmd) == 0);
}

/* With a tight budget the forced words still fit and the size holds. */
static void test_train_forced_budget(void) {
    int n = 500;
    char **texts = make_corpus(n, 9);
    const char *forced[] = {"jade-93", "orion", "eu-west-1", "kestrel-alpha-42"};
    BpeTrainOptions o = {0};
    o.vocab_size = 300; /* less than 256 + the forced words' worst case + 1 */
    o.forced_tokens = forced;
    o.n_forced = 4;
    BpeTokenizer *tok = NULL;
    DpError err = {0};
    EXPECT(bpe_train((const char *const *)texts, NULL, (size_t)n, &o, &tok, &err) ==
           DP_ERR_INVAL);
    EXPECT(tok == NULL && strstr(err.msg, "too small") != NULL);
    o.vocab_size = 360;
    REQUIRE(bpe_train((const char *const *)texts, NULL, (size_t)n, &o, &tok, &err) == DP_OK);
    EXPECT_MSG(bpe_vocab_size(tok) <= 360 && bpe_vocab_size(tok) >= 340, "V = %d",
               bpe_vocab_size(tok));
    EXPECT(bpe_n_merges(tok) > 10);
    int *ids = NULL;
    for (int k = 0; k < 4; k++) {
        char buf[64];
        EXPECT_EQ_INT(enc(tok, forced[k], &ids), 1);
        free(ids);
        snprintf(buf, sizeof buf, " %s", forced[k]);
        EXPECT_EQ_INT(enc(tok, buf, &ids), 1);
        free(ids);
    }
    EXPECT(roundtrips(tok, texts[1], strlen(texts[1])));
    bpe_free(tok);
    free_texts(texts, n);
}

static void test_train_bad_options(void) {
    const char *texts[] = {"hello"};
    BpeTrainOptions o = {0};
    BpeTokenizer *tok = NULL;
    DpError err;
    o.vocab_size = 10;
    EXPECT(bpe_train(texts, NULL, 1, &o, &tok, &err) == DP_ERR_INVAL && !tok);
    o.vocab_size = 1000; /* more than the corpus gives: stops early, still valid */
    EXPECT(bpe_train(texts, NULL, 1, &o, &tok, &err) == DP_OK);
    if (tok) {
        EXPECT(bpe_vocab_size(tok) < 1000);
        EXPECT_EQ_INT(bpe_eot_id(tok), bpe_vocab_size(tok) - 1);
    }
    bpe_free(tok);
    tok = NULL;
    const char *bad[] = {"ok", ""};
    o.forced_tokens = bad;
    o.n_forced = 2;
    EXPECT(bpe_train(texts, NULL, 1, &o, &tok, &err) == DP_ERR_INVAL && !tok);
    /* an empty corpus gives the 256 bytes and eot */
    o.n_forced = 0;
    EXPECT(bpe_train(NULL, NULL, 0, &o, &tok, &err) == DP_OK);
    if (tok) EXPECT_EQ_INT(bpe_vocab_size(tok), 257);
    bpe_free(tok);
}

// ---- the command ----

static void test_cli(void) {
    REQUIRE_BINARY(DP_BINARY);
    char cmd[2048];
    char out[] = "/tmp/dp_bpe_cliXXXXXX";
    int fd = mkstemp(out);
    REQUIRE(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s < %s/cases.jsonl > %s", DP_BINARY, TOK_DIR,
             TOK_DIR, out);
    EXPECT(system(cmd) == 0);
    /* each output line's ids equal the case's ids */
    FILE *fc = fopen(TOK_DIR "/cases.jsonl", "rb"), *fo = fopen(out, "rb");
    REQUIRE(fc && fo);
    char lc[65536], lo[65536];
    int n = 0, ok = 0;
    while (fgets(lc, sizeof lc, fc)) {
        n++;
        if (!fgets(lo, sizeof lo, fo)) break;
        json_error_t je;
        json_t *c = json_loads(lc, 0, &je), *o = json_loads(lo, 0, &je);
        if (c && o && json_equal(json_object_get(c, "ids"), json_object_get(o, "ids"))) ok++;
        json_decref(c);
        json_decref(o);
    }
    fclose(fc);
    fclose(fo);
    EXPECT_EQ_INT(n, 233);
    EXPECT_EQ_INT(ok, n);
    /* decode, special ids, bad lines */
    snprintf(cmd, sizeof cmd,
             "printf '{\"ids\":[15496,995,50256]}\\n' | %s tokenize --decode --model %s > %s",
             DP_BINARY, TOK_DIR, out);
    EXPECT(system(cmd) == 0);
    char *txt = NULL;
    DpError err;
    REQUIRE(dp_read_file(out, &txt, NULL, &err) == DP_OK);
    EXPECT_STREQ(txt, "{\"text\":\"Hello world<|endoftext|>\"}\n");
    free(txt);
    snprintf(cmd, sizeof cmd,
             "printf '{\"text\":\"a<|endoftext|>\"}\\n' | %s tokenize --allow-special --model %s > %s",
             DP_BINARY, TOK_DIR, out);
    EXPECT(system(cmd) == 0);
    REQUIRE(dp_read_file(out, &txt, NULL, &err) == DP_OK);
    EXPECT_STREQ(txt, "{\"ids\": [64, 50256]}\n");
    free(txt);
    snprintf(cmd, sizeof cmd,
             "printf '{\"text\":\"a\"}\\nnot json\\n' | %s tokenize --model %s > %s 2>%s.err",
             DP_BINARY, TOK_DIR, out, out);
    int rc = system(cmd);
    EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    char errpath[64];
    snprintf(errpath, sizeof errpath, "%s.err", out);
    REQUIRE(dp_read_file(errpath, &txt, NULL, &err) == DP_OK);
    EXPECT(strstr(txt, "line 2") != NULL);
    free(txt);
    snprintf(cmd, sizeof cmd, "%s tokenize --help > %s", DP_BINARY, out);
    EXPECT(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "%s tokenize --bogus 2>/dev/null", DP_BINARY);
    rc = system(cmd);
    EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    remove(errpath);
    remove(out);
}

// ---- benchmark (runs only when asked) ----

/* DP_BPE_BENCH=FILE ./test_nn_bpe bench_encode: encode throughput on FILE
 * repeated to at least 4 MB (cold cache, then warm, then 2 threads), and
 * training time for a 4096-id vocabulary on the same text.  Prints numbers
 * for docs/tokenizer.md; asserts only that it ran. */
typedef struct {
    BpeTokenizer *tok;
    const char *text;
    size_t len;
    size_t n_ids;
} BenchArg;

static void *bench_thread(void *p) {
    BenchArg *a = p;
    int *ids = NULL;
    DpError err;
    bpe_encode(a->tok, a->text, a->len, 0, &ids, &a->n_ids, &err);
    free(ids);
    return NULL;
}

static void bench_encode(void) {
    const char *path = getenv("DP_BPE_BENCH");
    if (!path) TEST_SKIP("benchmark; set DP_BPE_BENCH=FILE to run");
    char *one = NULL;
    size_t ol = 0;
    DpError err;
    REQUIRE(dp_read_file(path, &one, &ol, &err) == DP_OK && ol > 0);
    DpBuf text = DP_BUF_INIT;
    while (text.len < (4u << 20)) dp_buf_append(&text, one, ol);
    BpeTokenizer *tok = NULL;
    REQUIRE(bpe_load_dir(TOK_DIR, &tok, &err) == DP_OK);
    double mb = (double)text.len / 1e6;
    int *ids = NULL;
    size_t n = 0;
    double t0 = dp_time_mono();
    REQUIRE(bpe_encode(tok, one, ol, 0, &ids, &n, &err) == DP_OK);
    double t1 = dp_time_mono();
    free(ids);
    fprintf(stderr, "  cold (fresh cache, %zu bytes of unique text): %.2f MB/s, %zu ids\n", ol,
            (double)ol / 1e6 / (t1 - t0), n);
    t0 = dp_time_mono();
    REQUIRE(bpe_encode(tok, text.data, text.len, 0, &ids, &n, &err) == DP_OK);
    t1 = dp_time_mono();
    free(ids);
    fprintf(stderr, "  warm, 1 thread: %.1f MB in %.3f s = %.2f MB/s (%zu ids, %.2f M ids/s)\n", mb,
            t1 - t0, mb / (t1 - t0), n, (double)n / 1e6 / (t1 - t0));
    BenchArg a[2] = {{tok, text.data, text.len, 0}, {tok, text.data, text.len, 0}};
    pthread_t th[2];
    t0 = dp_time_mono();
    for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, bench_thread, &a[k]);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    t1 = dp_time_mono();
    fprintf(stderr, "  warm, 2 threads on one tokenizer: %.2f MB/s in total\n", 2 * mb / (t1 - t0));
    EXPECT_EQ_INT(a[0].n_ids, n);
    bpe_free(tok);
    /* training: the repeated text split in lines, 4096 ids */
    const char **lines = NULL;
    size_t *lens = NULL, nl = 0, cap = 0;
    for (size_t pos = 0; pos < text.len;) {
        const char *e = memchr(text.data + pos, '\n', text.len - pos);
        size_t end = e ? (size_t)(e - text.data) + 1 : text.len;
        if (nl == cap) {
            cap = cap ? cap * 2 : 1024;
            lines = realloc(lines, cap * sizeof *lines);
            lens = realloc(lens, cap * sizeof *lens);
        }
        lines[nl] = text.data + pos;
        lens[nl++] = end - pos;
        pos = end;
    }
    BpeTrainOptions o = {0};
    o.vocab_size = 4096;
    o.keep_digits_apart = 1;
    const char *forced[] = {"jade-93", "orion"};
    o.forced_tokens = forced;
    o.n_forced = 2;
    t0 = dp_time_mono();
    REQUIRE(bpe_train(lines, lens, nl, &o, &tok, &err) == DP_OK);
    t1 = dp_time_mono();
    fprintf(stderr, "  train %d ids on %.2f MB (%zu lines): %.2f s\n", bpe_vocab_size(tok), mb,
            nl, t1 - t0);
    bpe_free(tok);
    free(lines);
    free(lens);
    free(one);
    dp_buf_free(&text);
}

static void test_cleanup(void) {
    bpe_free(gpt2);
    gpt2 = NULL;
}

TEST_MAIN(TEST_CASE(test_load_gpt2), TEST_CASE(test_cases_file), TEST_CASE(test_random_cases_file),
          TEST_CASE(test_whitespace_cases_file),
          TEST_CASE(test_edge_cases),
          TEST_CASE(test_pretokenizer), TEST_CASE(test_invalid_utf8_and_bytes),
          TEST_CASE(test_special_token), TEST_CASE(test_heap_matches_naive),
          TEST_CASE(test_bad_files), TEST_CASE(test_threads), TEST_CASE(test_train_matches_naive),
          TEST_CASE(test_train_forced_digits_save), TEST_CASE(test_train_forced_budget), TEST_CASE(test_train_bad_options),
          TEST_CASE(test_cli), TEST_CASE(bench_encode), TEST_CASE(test_cleanup))
