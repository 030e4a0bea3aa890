/* libFuzzer harness for the BPE tokenizer (src/nn/bpe*.c).  The first input
 * byte picks a mode:
 *   0: encode/decode with GPT-2's vocabulary: decode(encode(x)) == x, with
 *      and without allow_special, and GPT-2's direct merge loop gives the
 *      same ids as the heap-based one;
 *   1: raw vocab.json / merges.txt parsing (input split at the first NUL);
 *   2: structured tokenizers: the 256 byte tokens plus tokens and merges
 *      taken from the input lines, then a round trip of the input;
 *   3: training on the input lines (with forced tokens and digits apart),
 *      then a round trip.
 * Build and run: see fuzz/README_bpe.md.  The GPT-2 files are read from
 * $DP_BPE_DIR or, by default, tests/data/gpt2-tokenizer of the source tree. */
#include "../src/nn/bpe_impl.h"
#include "nn.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DP_SOURCE_DIR
#define DP_SOURCE_DIR "."
#endif

static BpeTokenizer *naive_tok, *heap_tok;

static void die(const char *what) {
    fprintf(stderr, "fuzz_bpe: %s\n", what);
    abort();
}

static void load_gpt2(void) {
    if (naive_tok) return;
    const char *dir = getenv("DP_BPE_DIR");
    if (!dir) dir = DP_SOURCE_DIR "/tests/data/gpt2-tokenizer";
    DpError err;
    if (bpe_load_dir(dir, &naive_tok, &err) != DP_OK || bpe_load_dir(dir, &heap_tok, &err) != DP_OK)
        die(err.msg);
}

/* decode(encode(text)) must give text back. */
static void check_roundtrip(BpeTokenizer *t, const char *text, size_t len, int allow_special) {
    int *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t bl = 0;
    DpError err;
    if (bpe_encode(t, text, len, allow_special, &ids, &n, &err) != DP_OK) die("encode failed");
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= bpe_vocab_size(t)) die("id out of range");
    if (bpe_decode(t, ids, n, &back, &bl, &err) != DP_OK) die("decode failed");
    if (bl != len || memcmp(back, text, len) != 0) die("round trip differs");
    free(back);
    char *txt = NULL;
    if (bpe_decode_text(t, ids, n, &txt, &bl, &err) != DP_OK) die("decode_text failed");
    free(txt);
    free(ids);
}

static void mode_gpt2(const char *s, size_t n) {
    load_gpt2();
    check_roundtrip(naive_tok, s, n, 0);
    check_roundtrip(naive_tok, s, n, 1);
    int *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    DpError err;
    size_t old = bpe_set_naive_limit((size_t)-1);
    bpe_encode(naive_tok, s, n, 0, &a, &na, &err);
    bpe_set_naive_limit(0);
    bpe_encode(heap_tok, s, n, 0, &b, &nb, &err);
    bpe_set_naive_limit(old);
    if (na != nb || (na && memcmp(a, b, na * sizeof(int)) != 0)) die("heap and naive merges differ");
    free(a);
    free(b);
}

static void mode_raw(const char *s, size_t n) {
    const char *nul = memchr(s, '\0', n);
    size_t vl = nul ? (size_t)(nul - s) : n;
    const char *m = nul ? nul + 1 : "";
    size_t ml = nul ? n - vl - 1 : 0;
    BpeTokenizer *t = NULL;
    DpError err;
    if (bpe_load_buffers(s, vl, m, ml, NULL, 0, "vocab", "merges", &t, &err) == DP_OK) {
        check_roundtrip(t, s, n, 1);
        bpe_free(t);
    }
}

/* Splits s at '\n' into at most max lines (borrowed pointers + lengths). */
static int split_lines(const char *s, size_t n, const char **line, size_t *len, int max) {
    int k = 0;
    size_t pos = 0;
    while (pos <= n && k < max) {
        const char *nl = memchr(s + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - s) : n;
        line[k] = s + pos;
        len[k] = end - pos;
        k++;
        if (!nl) break;
        pos = end + 1;
    }
    return k;
}

static void mode_structured(const char *s, size_t n) {
    const char *line[64];
    size_t len[64];
    int k = split_lines(s, n, line, len, 64);
    /* vocab: bytes, then each line's vocab-string form as a token */
    json_t *v = json_object();
    DpBuf merges = DP_BUF_INIT, str = DP_BUF_INIT;
    int id = 0;
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        str.len = 0;
        bpe_bytes_to_vocab_str(&c, 1, &str);
        dp_buf_append(&str, "", 1);
        json_object_set_new(v, str.data, json_integer(id++));
    }
    for (int i = 0; i < k; i++) {
        if (len[i] < 2) continue;
        str.len = 0;
        bpe_bytes_to_vocab_str((const unsigned char *)line[i], len[i], &str);
        dp_buf_append(&str, "", 1);
        if (!json_object_get(v, str.data)) json_object_set_new(v, str.data, json_integer(id++));
        /* merge: the line split after its first byte, when both halves exist */
        DpBuf l = DP_BUF_INIT, r = DP_BUF_INIT;
        size_t cut = 1 + (unsigned char)line[i][0] % (len[i] - 1);
        bpe_bytes_to_vocab_str((const unsigned char *)line[i], cut, &l);
        bpe_bytes_to_vocab_str((const unsigned char *)line[i] + cut, len[i] - cut, &r);
        dp_buf_printf(&merges, "%.*s %.*s\n", (int)l.len, l.data, (int)r.len, r.data);
        dp_buf_free(&l);
        dp_buf_free(&r);
    }
    char *vj = json_dumps(v, JSON_COMPACT);
    BpeTokenizer *t = NULL;
    DpError err;
    if (bpe_load_buffers(vj, strlen(vj), merges.data ? merges.data : "", merges.len, NULL, 0, "v",
                         "m", &t, &err) == DP_OK) {
        check_roundtrip(t, s, n, 0);
        bpe_free(t);
    }
    free(vj);
    json_decref(v);
    dp_buf_free(&merges);
    dp_buf_free(&str);
}

static void mode_train(const char *s, size_t n) {
    const char *line[64];
    size_t len[64];
    int k = split_lines(s, n, line, len, 64);
    if (k < 1) return;
    /* first line: forced tokens separated by '|' (only valid UTF-8 ones) */
    char forced_buf[128];
    size_t fl = len[0] < sizeof forced_buf - 1 ? len[0] : sizeof forced_buf - 1;
    memcpy(forced_buf, line[0], fl);
    forced_buf[fl] = '\0';
    const char *forced[8];
    int nf = 0;
    for (char *tok = strtok(forced_buf, "|"); tok && nf < 8; tok = strtok(NULL, "|"))
        forced[nf++] = tok;
    BpeTrainOptions o = {0};
    o.vocab_size = 257 + (int)(n % 200);
    o.keep_digits_apart = (int)(n & 1);
    o.forced_tokens = forced;
    o.n_forced = nf;
    BpeTokenizer *t = NULL;
    DpError err;
    DpStatus st = bpe_train((const char *const *)line + 1, len + 1, (size_t)(k - 1), &o, &t, &err);
    if (st == DP_OK) {
        check_roundtrip(t, s, n, 0);
        check_roundtrip(t, s, n, 1);
        bpe_free(t);
    } else if (st != DP_ERR_INVAL) {
        die(err.msg);
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    if (size < 1) return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0: mode_gpt2(s, n); break;
    case 1: mode_raw(s, n); break;
    case 2: mode_structured(s, n); break;
    default: mode_train(s, n); break;
    }
    return 0;
}
