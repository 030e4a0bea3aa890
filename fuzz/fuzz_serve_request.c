/* libFuzzer harness for the inference service's request parsers
 * (src/serve/parse.c): every byte string must give DP_OK or a clean error,
 * never a crash, a leak or undefined behaviour, and what is accepted must
 * hold the documented invariants.
 *
 * The first byte picks the parser (0: /predict, 1: /feedback, 2:
 * /admin/reload) and the limits (bit 2: tiny limits, so the size checks are
 * reached too); the rest is the body.
 *
 * Build and run (from the repository root, clang with libFuzzer):
 *
 *     clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *         -fno-sanitize-recover=undefined -Isrc/core -Isrc/serve \
 *         fuzz/fuzz_serve_request.c src/serve/parse.c src/core/[a-z]*.c \
 *         -ljansson -lm -lpthread -o build-serve/fuzz_serve_request
 *     mkdir -p build-serve/fuzz-corpus
 *     printf '\000{"question": "Who owns billing-api?", "max_new_tokens": 8}' \
 *         > build-serve/fuzz-corpus/p1
 *     printf '\001{"id": "abc-1", "reference": "team-red"}' > build-serve/fuzz-corpus/f1
 *     printf '\002{"version": "v2"}' > build-serve/fuzz-corpus/r1
 *     build-serve/fuzz_serve_request -max_total_time=180 -max_len=4096 \
 *         build-serve/fuzz-corpus
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "invariant failed: %s\n", #x);                                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int valid_utf8(const char *s) {
    return s == NULL || serve_utf8_invalid_at(s, strlen(s)) < 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ServeLimits lim;
    serve_limits_default(&lim);
    if (data[0] & 4) {
        lim.max_body_bytes = 256;
        lim.max_question_bytes = 16;
        lim.max_context_bytes = 32;
        lim.max_new_tokens_limit = 4;
        lim.default_max_new_tokens = 2;
    }
    /* A copy without a terminating NUL, so reads past the end are caught. */
    size_t n = size - 1;
    char *body = malloc(n ? n : 1);
    if (!body) return 0;
    memcpy(body, data + 1, n);
    DpError err;
    switch (data[0] % 3) {
    case 0: {
        ServePredictRequest r;
        if (serve_parse_predict(body, n, &lim, &r, &err) == DP_OK) {
            CHECK(r.question && r.question[0] && strlen(r.question) <= lim.max_question_bytes);
            CHECK(valid_utf8(r.question) && valid_utf8(r.context));
            CHECK(!r.context || (r.context[0] && strlen(r.context) <= lim.max_context_bytes));
            CHECK(r.max_new_tokens >= 1 && r.max_new_tokens <= lim.max_new_tokens_limit);
            CHECK(r.temperature == 0 || (r.temperature >= 1e-4 && r.temperature <= 100));
            CHECK(r.top_k >= 0 && r.top_p > 0 && r.top_p <= 1);
        } else {
            CHECK(r.question == NULL && r.context == NULL && err.msg[0]);
        }
        serve_predict_request_free(&r);
        break;
    }
    case 1: {
        ServeFeedbackRequest r;
        if (serve_parse_feedback(body, n, &lim, &r, &err) == DP_OK) {
            CHECK(r.reference);
            CHECK(r.id || (r.question && r.prediction));
            CHECK(valid_utf8(r.reference) && valid_utf8(r.id) && valid_utf8(r.prediction));
        } else {
            CHECK(r.reference == NULL && r.id == NULL && err.msg[0]);
        }
        serve_feedback_request_free(&r);
        break;
    }
    default: {
        ServeReloadRequest r;
        if (serve_parse_reload(body, n, &lim, &r, &err) == DP_OK)
            CHECK(!r.version != !r.model_dir);
        else
            CHECK(r.version == NULL && r.model_dir == NULL && err.msg[0]);
        serve_reload_request_free(&r);
        break;
    }
    }
    /* The UTF-8 checker agrees with itself on every prefix boundary. */
    long bad = serve_utf8_invalid_at(body, n);
    CHECK(bad < (long)n);
    if (bad > 0) CHECK(serve_utf8_invalid_at(body, (size_t)bad) < 0);
    free(body);
    return 0;
}
