/*
 * GPT-2 byte-level BPE: loading vocab.json / merges.txt, the pre-tokenizer,
 * encode, decode and save.  (The trainer is bpe_train.c; the Unicode tables
 * are generated into bpe_unicode.c.)
 *
 * How GPT-2 encodes, and so how this file does:
 *   1. split the text into pre-tokens with the regex
 *      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      (bpe_pretoken_len, a hand-written matcher over UTF-8);
 *   2. start each pre-token as one symbol per byte;
 *   3. repeatedly take the adjacent pair with the lowest merge rank and merge
 *      every occurrence of it, left to right, until no pair has a rank.
 * Step 3 is GPT-2's loop verbatim for short words (merge_naive) and an
 * equivalent heap-driven loop for long ones (merge_heap), so that a megabyte
 * without spaces costs n log n rather than n^2.  Results of step 2-3 are
 * cached per pre-token in a sharded, locked hash table bounded in size.
 *
 * Invariants: ids are 0..n_vocab-1 with one string each; every byte has a
 * single-byte token (byte_id); every merge (a, b) has a result token whose
 * bytes are a's then b's.
 */
#include "bpe_impl.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SHARDS 64
#define CACHE_SHARD_CAP 4096 /* most slots per shard (power of two); cleared at 3/4 */
#define CACHE_SHARD_MIN 64   /* first allocation; doubles up to CACHE_SHARD_CAP */
#define CACHE_MAX_WORD 64    /* longer pre-tokens are not cached */

// ---- small hash maps ----

static uint64_t hash_bytes(const void *data, size_t n) {
    /* FNV-1a, then a finaliser so low bits are usable for power-of-two tables. */
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return dp_hash_u64(h);
}

/* (left id, right id) -> (rank, result id), open addressing. */
typedef struct {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int rank;
    int result;
} PairSlot;

typedef struct {
    PairSlot *slots;
    size_t mask;
} PairMap;

static uint64_t pair_key(int a, int b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static DpStatus pairmap_init(PairMap *m, size_t n, DpError *err) {
    size_t cap = 16;
    while (cap < n * 2 + 16) cap *= 2;
    m->slots = dp_calloc(cap, sizeof *m->slots);
    if (!m->slots) return dp_fail(err, DP_ERR_NOMEM, "out of memory (merge table)");
    m->mask = cap - 1;
    return DP_OK;
}

/* Inserts or overwrites (GPT-2 builds a dict, so a repeated merge line takes
 * the later rank). */
static void pairmap_put(PairMap *m, int a, int b, int rank, int result) {
    uint64_t k = pair_key(a, b);
    size_t i = dp_hash_u64(k) & m->mask;
    while (m->slots[i].key && m->slots[i].key != k) i = (i + 1) & m->mask;
    m->slots[i].key = k;
    m->slots[i].rank = rank;
    m->slots[i].result = result;
}

static const PairSlot *pairmap_get(const PairMap *m, int a, int b) {
    uint64_t k = pair_key(a, b);
    size_t i = dp_hash_u64(k) & m->mask;
    while (m->slots[i].key) {
        if (m->slots[i].key == k) return &m->slots[i];
        i = (i + 1) & m->mask;
    }
    return NULL;
}

/* vocab string -> id. */
typedef struct {
    int *slots; /* id + 1; 0 = empty */
    size_t mask;
} StrMap;

// ---- the pre-token cache ----

typedef struct {
    uint64_t hash;      /* 0 = empty */
    int *ids;           /* one malloc'd block: the ids, then the key bytes */
    unsigned char *key; /* into the same block */
    uint16_t key_len;
    uint16_t n_ids;
} CacheSlot;

typedef struct {
    pthread_mutex_t lock;
    CacheSlot *slots; /* cap slots, allocated on first use */
    int cap;
    int used;
} CacheShard;

struct BpeTokenizer {
    int n_vocab;
    char **tok_str;         /* vocab.json string per id (into str_pool) */
    char *str_pool;
    unsigned char **tok_bytes; /* raw bytes per id (into bytes_pool) */
    size_t *tok_len;
    unsigned char *bytes_pool;
    StrMap vocab;
    int byte_id[256];
    PairMap merges;
    int n_merges;
    int (*merge_list)[3]; /* (left, right, result) in rank order, for saving */
    int eot_id;
    int n_atomic;         /* forced whole tokens (added_tokens.json) */
    int *atomic_ids;
    CacheShard cache[CACHE_SHARDS];
};

static size_t naive_limit = 48;

size_t bpe_set_naive_limit(size_t limit) {
    size_t old = naive_limit;
    naive_limit = limit;
    return old;
}

// ---- UTF-8 and character classes ----

/* Decodes one UTF-8 character.  Returns its length (> 0) and sets *cp, or
 * returns -k where k >= 1 is the length of the maximal invalid subpart (the
 * bytes that one U+FFFD replaces, as Python and the Unicode standard do). */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int need;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n || s[i] < lo || s[i] > hi) return -i;
        v = (v << 6) | (s[i] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return need + 1;
}

static int in_ranges(const uint32_t (*r)[2], int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid - 1;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* \s as Python's `regex` module (GPT-2's) has it: the Unicode White_Space
 * property. */
static int is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static unsigned char ascii_class[128];
static pthread_once_t ascii_once = PTHREAD_ONCE_INIT;

static void ascii_class_init(void) {
    for (uint32_t c = 0; c < 128; c++) {
        BpeCharClass k = BPE_CLASS_OTHER;
        if (is_white_space(c)) k = BPE_CLASS_SPACE;
        else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k = BPE_CLASS_LETTER;
        else if (c >= '0' && c <= '9') k = BPE_CLASS_NUMBER;
        ascii_class[c] = (unsigned char)k;
    }
}

BpeCharClass bpe_char_class(const unsigned char *s, size_t n, int *width) {
    if (s[0] < 0x80) {
        pthread_once(&ascii_once, ascii_class_init);
        *width = 1;
        return (BpeCharClass)ascii_class[s[0]];
    }
    uint32_t cp = 0;
    int w = utf8_decode(s, n, &cp);
    if (w < 0) {
        *width = 1; /* GPT-2 works on bytes: a bad byte is one "other" char */
        return BPE_CLASS_OTHER;
    }
    *width = w;
    if (is_white_space(cp)) return BPE_CLASS_SPACE;
    if (in_ranges(bpe_unicode_letters, bpe_unicode_letters_n, cp)) return BPE_CLASS_LETTER;
    if (in_ranges(bpe_unicode_numbers, bpe_unicode_numbers_n, cp)) return BPE_CLASS_NUMBER;
    return BPE_CLASS_OTHER;
}

// ---- the pre-tokenizer ----

/* Length of a run of characters of class k starting at s[0]. */
static size_t run_len(const unsigned char *s, size_t n, BpeCharClass k) {
    size_t i = 0;
    while (i < n) {
        int w;
        if (bpe_char_class(s + i, n - i, &w) != k) break;
        i += (size_t)w;
    }
    return i;
}

size_t bpe_pretoken_len(const unsigned char *s, size_t n) {
    /* 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, as in GPT-2) */
    if (s[0] == '\'' && n >= 2) {
        unsigned char c = s[1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
        if (n >= 3 && ((c == 'r' && s[2] == 'e') || (c == 'v' && s[2] == 'e') ||
                       (c == 'l' && s[2] == 'l')))
            return 3;
    }
    int w;
    BpeCharClass k = bpe_char_class(s, n, &w);
    /*  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ with the optional space */
    if (s[0] == ' ' && n >= 2) {
        int w2;
        BpeCharClass k2 = bpe_char_class(s + 1, n - 1, &w2);
        if (k2 != BPE_CLASS_SPACE) return 1 + run_len(s + 1, n - 1, k2);
    }
    if (k != BPE_CLASS_SPACE) return run_len(s, n, k);
    /* \s+(?!\S) | \s+ : a whitespace run; when non-space follows, the last
     * whitespace char is left to prefix the next pre-token (when the run has
     * more than one char). */
    size_t i = 0, last = 0;
    while (i < n) {
        int wi;
        if (bpe_char_class(s + i, n - i, &wi) != BPE_CLASS_SPACE) break;
        last = i;
        i += (size_t)wi;
    }
    if (i == n || last == 0) return i;
    return last;
}

// ---- GPT-2's byte <-> unicode mapping ----

/* bytes_to_unicode(): printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) map
 * to themselves; the other 68 map to 256, 257, ... in byte order. */
static uint32_t byte_cp[256];
static int cp_byte[324]; /* inverse over 0..323; -1 = not a mapped code point */
static pthread_once_t byte_map_once = PTHREAD_ONCE_INIT;

static int byte_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static void byte_map_init(void) {
    uint32_t next = 256;
    for (int i = 0; i < 324; i++) cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        byte_cp[b] = byte_is_printable(b) ? (uint32_t)b : next++;
        cp_byte[byte_cp[b]] = b;
    }
}

uint32_t bpe_byte_to_cp(int b) {
    pthread_once(&byte_map_once, byte_map_init);
    return byte_cp[b & 0xFF];
}

static void put_utf8(DpBuf *b, uint32_t cp, DpStatus *st) {
    char u[4];
    int n = dp_utf8_encode(cp, u);
    if (*st == DP_OK) *st = dp_buf_append(b, u, (size_t)n);
}

DpStatus bpe_bytes_to_vocab_str(const unsigned char *bytes, size_t n, DpBuf *out) {
    DpStatus st = DP_OK;
    for (size_t i = 0; i < n; i++) put_utf8(out, bpe_byte_to_cp(bytes[i]), &st);
    return st;
}

/* The bytes a vocab string stands for: each mapped code point gives its byte;
 * any other character (possible only in hand-added tokens) gives its own
 * UTF-8 bytes.  out must hold len bytes (never more are needed). */
static size_t vocab_str_to_bytes(const char *str, size_t len, unsigned char *out) {
    pthread_once(&byte_map_once, byte_map_init);
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp = 0;
        int w = utf8_decode(s + i, len - i, &cp);
        if (w < 0) { /* not from JSON; copy the byte through */
            out[o++] = s[i++];
            continue;
        }
        if (cp < 324 && cp_byte[cp] >= 0) {
            out[o++] = (unsigned char)cp_byte[cp];
        } else {
            memcpy(out + o, s + i, (size_t)w);
            o += (size_t)w;
        }
        i += (size_t)w;
    }
    return o;
}

// ---- vocab string map ----

static int strmap_find(const BpeTokenizer *t, const char *s, size_t len) {
    if (!t->vocab.slots) return -1;
    size_t i = hash_bytes(s, len) & t->vocab.mask;
    while (t->vocab.slots[i]) {
        int id = t->vocab.slots[i] - 1;
        if (strlen(t->tok_str[id]) == len && memcmp(t->tok_str[id], s, len) == 0) return id;
        i = (i + 1) & t->vocab.mask;
    }
    return -1;
}

/* Builds the string map, the bytes of every token and byte_id; fails on a
 * repeated string or a missing single-byte token. */
static DpStatus index_vocab(BpeTokenizer *t, const char *vocab_name, DpError *err) {
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2 + 16) cap *= 2;
    t->vocab.slots = dp_calloc(cap, sizeof(int));
    t->tok_bytes = dp_calloc((size_t)t->n_vocab, sizeof *t->tok_bytes);
    t->tok_len = dp_calloc((size_t)t->n_vocab, sizeof *t->tok_len);
    size_t total = 0;
    for (int id = 0; id < t->n_vocab; id++) total += strlen(t->tok_str[id]);
    t->bytes_pool = dp_malloc(total + 1);
    if (!t->vocab.slots || !t->tok_bytes || !t->tok_len || !t->bytes_pool)
        return dp_fail(err, DP_ERR_NOMEM, "out of memory (vocabulary)");
    t->vocab.mask = cap - 1;
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    size_t off = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        const char *s = t->tok_str[id];
        size_t len = strlen(s);
        if (strmap_find(t, s, len) >= 0)
            return dp_fail(err, DP_ERR_PARSE, "%s: token \"%s\" appears twice", vocab_name, s);
        size_t i = hash_bytes(s, len) & t->vocab.mask;
        while (t->vocab.slots[i]) i = (i + 1) & t->vocab.mask;
        t->vocab.slots[i] = id + 1;
        t->tok_bytes[id] = t->bytes_pool + off;
        t->tok_len[id] = vocab_str_to_bytes(s, len, t->tok_bytes[id]);
        off += t->tok_len[id];
    }
    /* Single-byte tokens are looked up by their string so that a hand-added
     * token that happens to decode to one byte cannot shadow them. */
    for (int b = 0; b < 256; b++) {
        DpBuf s = DP_BUF_INIT;
        unsigned char byte = (unsigned char)b;
        if (bpe_bytes_to_vocab_str(&byte, 1, &s) != DP_OK) {
            dp_buf_free(&s);
            return dp_fail(err, DP_ERR_NOMEM, "out of memory");
        }
        t->byte_id[b] = strmap_find(t, s.data, s.len);
        dp_buf_free(&s);
        if (t->byte_id[b] < 0)
            return dp_fail(err, DP_ERR_PARSE,
                           "%s: no token for byte 0x%02X (a byte-level vocabulary needs all 256)",
                           vocab_name, b);
    }
    t->eot_id = strmap_find(t, "<|endoftext|>", 13);
    return DP_OK;
}

static BpeTokenizer *tok_alloc(void) {
    BpeTokenizer *t = dp_calloc(1, sizeof *t);
    if (!t) return NULL;
    t->eot_id = -1;
    for (int i = 0; i < CACHE_SHARDS; i++) pthread_mutex_init(&t->cache[i].lock, NULL);
    return t;
}

static void cache_clear_shard(CacheShard *sh) {
    if (!sh->slots) return;
    for (int i = 0; i < sh->cap; i++) {
        free(sh->slots[i].ids);
        sh->slots[i].ids = NULL;
        sh->slots[i].key = NULL;
        sh->slots[i].hash = 0;
    }
    sh->used = 0;
}

void bpe_free(BpeTokenizer *t) {
    if (!t) return;
    for (int i = 0; i < CACHE_SHARDS; i++) {
        cache_clear_shard(&t->cache[i]);
        free(t->cache[i].slots);
        pthread_mutex_destroy(&t->cache[i].lock);
    }
    free(t->tok_str);
    free(t->str_pool);
    free(t->tok_bytes);
    free(t->tok_len);
    free(t->bytes_pool);
    free(t->vocab.slots);
    free(t->merges.slots);
    free(t->merge_list);
    free(t->atomic_ids);
    free(t);
}

// ---- loading ----

/* Parses vocab.json into t->tok_str / str_pool / n_vocab. */
static DpStatus parse_vocab(BpeTokenizer *t, const char *data, size_t len, const char *name,
                            DpError *err) {
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    DpStatus st = DP_OK;
    if (!root)
        return dp_fail(err, DP_ERR_PARSE, "%s: line %d column %d: %s", name, je.line, je.column,
                       je.text);
    if (!json_is_object(root)) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: expected a JSON object of token -> id", name);
        goto out;
    }
    size_t n = json_object_size(root);
    if (n < 256 || n > 0x7FFFFFF) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: %zu tokens; a byte-level vocabulary has 256 or more",
                     name, n);
        goto out;
    }
    t->n_vocab = (int)n;
    t->tok_str = dp_calloc(n, sizeof *t->tok_str);
    size_t total = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) total += strlen(key) + 1;
    t->str_pool = dp_malloc(total);
    if (!t->tok_str || !t->str_pool) {
        st = dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", name);
        goto out;
    }
    size_t off = 0;
    json_object_foreach(root, key, val) {
        if (!json_is_integer(val)) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: token \"%s\": id is not an integer", name, key);
            goto out;
        }
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= (json_int_t)n) {
            st = dp_fail(err, DP_ERR_PARSE,
                         "%s: token \"%s\": id %lld outside 0..%zu (ids must be 0..n-1)", name,
                         key, (long long)id, n - 1);
            goto out;
        }
        if (t->tok_str[id]) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: id %lld used by \"%s\" and \"%s\"", name,
                         (long long)id, t->tok_str[id], key);
            goto out;
        }
        size_t kl = strlen(key);
        if (kl == 0) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: empty token string (id %lld)", name,
                         (long long)id);
            goto out;
        }
        memcpy(t->str_pool + off, key, kl + 1);
        t->tok_str[id] = t->str_pool + off;
        off += kl + 1;
    }
out:
    json_decref(root);
    return st;
}

static DpStatus parse_merges(BpeTokenizer *t, const char *data, size_t len, const char *name,
                             DpError *err) {
    /* Count lines for the table sizes. */
    size_t n_lines = 1;
    for (size_t i = 0; i < len; i++) n_lines += data[i] == '\n';
    if (n_lines > 0x7FFFFFF) return dp_fail(err, DP_ERR_PARSE, "%s: too many lines", name);
    t->merge_list = dp_malloc(n_lines * sizeof *t->merge_list);
    if (!t->merge_list) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", name);
    DpStatus st = pairmap_init(&t->merges, n_lines, err);
    if (st != DP_OK) return st;
    size_t pos = 0;
    int line_no = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && data[end] != '\n') end++;
        line_no++;
        const char *line = data + pos;
        size_t ll = end - pos;
        pos = end + 1;
        if (ll && line[ll - 1] == '\r') ll--;
        if (line_no == 1 && ll >= 8 && memcmp(line, "#version", 8) == 0) continue;
        if (ll == 0) continue;
        const char *sp = memchr(line, ' ', ll);
        if (!sp || sp == line || sp == line + ll - 1 || memchr(sp + 1, ' ', (size_t)(line + ll - sp - 1)))
            return dp_fail(err, DP_ERR_PARSE,
                           "%s line %d: expected two tokens separated by one space, got \"%.*s\"",
                           name, line_no, (int)(ll > 80 ? 80 : ll), line);
        size_t la = (size_t)(sp - line), lb = ll - la - 1;
        int a = strmap_find(t, line, la);
        int b = strmap_find(t, sp + 1, lb);
        if (a < 0 || b < 0)
            return dp_fail(err, DP_ERR_PARSE, "%s line %d: token \"%.*s\" is not in the vocabulary",
                           name, line_no, a < 0 ? (int)la : (int)lb, a < 0 ? line : sp + 1);
        char stack[256];
        char *cat = la + lb < sizeof stack ? stack : dp_malloc(la + lb);
        if (!cat) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", name);
        memcpy(cat, line, la);
        memcpy(cat + la, sp + 1, lb);
        int c = strmap_find(t, cat, la + lb);
        if (cat != stack) free(cat);
        if (c < 0)
            return dp_fail(err, DP_ERR_PARSE,
                           "%s line %d: the merged token \"%.*s%.*s\" is not in the vocabulary",
                           name, line_no, (int)la, line, (int)lb, sp + 1);
        int rank = t->n_merges++;
        t->merge_list[rank][0] = a;
        t->merge_list[rank][1] = b;
        t->merge_list[rank][2] = c;
        pairmap_put(&t->merges, a, b, rank, c);
    }
    return DP_OK;
}

/* added_tokens.json: {"raw text": id}, the forced whole tokens. */
static DpStatus parse_added(BpeTokenizer *t, const char *data, size_t len, DpError *err) {
    json_error_t je;
    json_t *root = json_loadb(data, len, 0, &je);
    DpStatus st = DP_OK;
    if (!root)
        return dp_fail(err, DP_ERR_PARSE, "added_tokens.json: line %d column %d: %s", je.line,
                       je.column, je.text);
    if (!json_is_object(root)) {
        st = dp_fail(err, DP_ERR_PARSE, "added_tokens.json: expected an object of text -> id");
        goto out;
    }
    t->atomic_ids = dp_malloc(json_object_size(root) * sizeof(int));
    if (!t->atomic_ids) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= t->n_vocab) {
            st = dp_fail(err, DP_ERR_PARSE,
                         "added_tokens.json: \"%s\": id %lld is not in vocab.json (added tokens "
                         "must also be vocabulary entries)",
                         key, (long long)id);
            goto out;
        }
        if (t->tok_len[id] != strlen(key) || memcmp(t->tok_bytes[id], key, strlen(key)) != 0) {
            st = dp_fail(err, DP_ERR_PARSE,
                         "added_tokens.json: \"%s\": id %lld stands for other text in vocab.json",
                         key, (long long)id);
            goto out;
        }
        if (id != t->eot_id) t->atomic_ids[t->n_atomic++] = (int)id;
    }
out:
    json_decref(root);
    return st;
}

DpStatus bpe_load_buffers(const char *vocab_json, size_t vocab_len, const char *merges_txt,
                          size_t merges_len, const char *added_json, size_t added_len,
                          const char *vocab_name, const char *merges_name, BpeTokenizer **out,
                          DpError *err) {
    *out = NULL;
    BpeTokenizer *t = tok_alloc();
    if (!t) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    DpStatus st = parse_vocab(t, vocab_json, vocab_len, vocab_name, err);
    if (st == DP_OK) st = index_vocab(t, vocab_name, err);
    if (st == DP_OK) st = parse_merges(t, merges_txt, merges_len, merges_name, err);
    if (st == DP_OK && added_json) st = parse_added(t, added_json, added_len, err);
    if (st != DP_OK) {
        bpe_free(t);
        return st;
    }
    *out = t;
    return DP_OK;
}

static DpStatus load_paths(const char *vocab_path, const char *merges_path,
                           const char *added_path, BpeTokenizer **out, DpError *err) {
    char *v = NULL, *m = NULL, *a = NULL;
    size_t vl = 0, ml = 0, al = 0;
    DpStatus st = dp_read_file(vocab_path, &v, &vl, err);
    if (st == DP_OK) st = dp_read_file(merges_path, &m, &ml, err);
    if (st == DP_OK && added_path && dp_file_exists(added_path))
        st = dp_read_file(added_path, &a, &al, err);
    if (st == DP_OK)
        st = bpe_load_buffers(v, vl, m, ml, a, al, vocab_path, merges_path, out, err);
    free(v);
    free(m);
    free(a);
    return st;
}

DpStatus bpe_load_files(const char *vocab_path, const char *merges_path, BpeTokenizer **out,
                        DpError *err) {
    *out = NULL;
    return load_paths(vocab_path, merges_path, NULL, out, err);
}

DpStatus bpe_load_dir(const char *dir, BpeTokenizer **out, DpError *err) {
    char v[4096], m[4096], a[4096];
    *out = NULL;
    DpStatus st = dp_path_join(v, sizeof v, dir, "vocab.json", err);
    if (st == DP_OK) st = dp_path_join(m, sizeof m, dir, "merges.txt", err);
    if (st == DP_OK) st = dp_path_join(a, sizeof a, dir, "added_tokens.json", err);
    if (st == DP_OK) st = load_paths(v, m, a, out, err);
    return st;
}

DpStatus bpe_build(const BpeBytes *tokens, int n_tokens, const int (*merges)[3], int n_merges,
                   const int *atomic_ids, int n_atomic, BpeTokenizer **out, DpError *err) {
    *out = NULL;
    BpeTokenizer *t = tok_alloc();
    DpBuf pool = DP_BUF_INIT;
    size_t *offs = NULL;
    DpStatus st = DP_OK;
    if (!t) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    t->n_vocab = n_tokens;
    t->tok_str = dp_calloc((size_t)n_tokens, sizeof *t->tok_str);
    offs = dp_malloc((size_t)n_tokens * sizeof *offs);
    if (!t->tok_str || !offs) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n_tokens && st == DP_OK; i++) {
        offs[i] = pool.len;
        if (tokens[i].len == 13 && memcmp(tokens[i].bytes, "<|endoftext|>", 13) == 0)
            st = dp_buf_append(&pool, "<|endoftext|>", 13);
        else
            st = bpe_bytes_to_vocab_str(tokens[i].bytes, tokens[i].len, &pool);
        if (st == DP_OK) st = dp_buf_append(&pool, "", 1);
    }
    if (st != DP_OK) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    t->str_pool = pool.data;
    pool.data = NULL;
    for (int i = 0; i < n_tokens; i++) t->tok_str[i] = t->str_pool + offs[i];
    st = index_vocab(t, "trained vocabulary", err);
    if (st != DP_OK) goto out;
    t->merge_list = dp_malloc(((size_t)n_merges + 1) * sizeof *t->merge_list);
    if (!t->merge_list) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = pairmap_init(&t->merges, (size_t)n_merges, err);
    if (st != DP_OK) goto out;
    for (int r = 0; r < n_merges; r++) {
        memcpy(t->merge_list[r], merges[r], sizeof merges[r]);
        pairmap_put(&t->merges, merges[r][0], merges[r][1], r, merges[r][2]);
    }
    t->n_merges = n_merges;
    if (n_atomic > 0) {
        t->atomic_ids = dp_malloc((size_t)n_atomic * sizeof(int));
        if (!t->atomic_ids) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        memcpy(t->atomic_ids, atomic_ids, (size_t)n_atomic * sizeof(int));
        t->n_atomic = n_atomic;
    }
out:
    free(offs);
    dp_buf_free(&pool);
    if (st != DP_OK) {
        bpe_free(t);
        return st;
    }
    *out = t;
    return DP_OK;
}

// ---- merging one pre-token ----

/* Growable int vector for encode output. */
typedef struct {
    int *v;
    size_t n, cap;
} IntVec;

static int ivec_reserve(IntVec *iv, size_t extra) {
    if (iv->n + extra <= iv->cap) return 1;
    size_t cap = iv->cap ? iv->cap : 64;
    while (cap < iv->n + extra) cap *= 2;
    int *p = dp_realloc_array(iv->v, cap, sizeof(int));
    if (!p) return 0;
    iv->v = p;
    iv->cap = cap;
    return 1;
}

/* GPT-2's bpe() loop: find the lowest-ranked adjacent pair, merge all its
 * occurrences left to right, repeat.  syms[0..m) in place; returns new m. */
static size_t merge_naive(const BpeTokenizer *t, int *syms, size_t m) {
    while (m > 1) {
        int best = -1;
        size_t bi = 0;
        const PairSlot *bs = NULL;
        for (size_t i = 0; i + 1 < m; i++) {
            const PairSlot *p = pairmap_get(&t->merges, syms[i], syms[i + 1]);
            if (p && (best < 0 || p->rank < best)) {
                best = p->rank;
                bi = i;
                bs = p;
            }
        }
        if (!bs) break;
        int a = syms[bi], b = syms[bi + 1];
        size_t w = bi;
        for (size_t i = bi; i < m;) {
            if (i + 1 < m && syms[i] == a && syms[i + 1] == b) {
                syms[w++] = bs->result;
                i += 2;
            } else {
                syms[w++] = syms[i++];
            }
        }
        m = w;
    }
    return m;
}

/* Heap entry: the pair starting at symbol node pos, with its rank. */
typedef struct {
    int rank;
    int pos;
} HeapEnt;

static int heap_less(HeapEnt a, HeapEnt b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(HeapEnt *h, size_t *n, HeapEnt e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(e, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static HeapEnt heap_pop(HeapEnt *h, size_t *n) {
    HeapEnt top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* The same result as merge_naive in O(m log m): symbols form a linked list
 * (node order = text order); the heap orders candidate pairs by (rank,
 * position).  One round pops every entry of the lowest rank, in position
 * order, and merges the ones still valid: GPT-2's left-to-right pass over
 * that pair.  Pairs created during a round are pushed only after it, so a
 * pair of lower rank waits, as in GPT-2, until the round is done.  A popped
 * entry is stale when its node died or its pair changed. */
static size_t merge_heap(const BpeTokenizer *t, int *syms, size_t m, DpStatus *st) {
    int *next = dp_malloc(m * sizeof(int));
    int *prev = dp_malloc(m * sizeof(int));
    HeapEnt *heap = dp_malloc((m * 2 + 1) * sizeof(HeapEnt));
    HeapEnt *pend = dp_malloc((m * 2 + 1) * sizeof(HeapEnt));
    size_t hn = 0, pn = 0;
    if (!next || !prev || !heap || !pend) {
        *st = DP_ERR_NOMEM;
        m = 0;
        goto out;
    }
    for (size_t i = 0; i < m; i++) {
        next[i] = i + 1 < m ? (int)i + 1 : -1;
        prev[i] = (int)i - 1;
    }
    for (size_t i = 0; i + 1 < m; i++) {
        const PairSlot *p = pairmap_get(&t->merges, syms[i], syms[i + 1]);
        if (p) heap_push(heap, &hn, (HeapEnt){p->rank, (int)i});
    }
    /* Heap size stays below 2m: it starts under m and each merge pops one
     * entry and adds at most two; merges are fewer than m. */
    while (hn > 0) {
        int round = heap[0].rank;
        pn = 0;
        while (hn > 0 && heap[0].rank == round) {
            HeapEnt e = heap_pop(heap, &hn);
            int i = e.pos, j = next[i];
            if (syms[i] < 0 || j < 0) continue;
            const PairSlot *p = pairmap_get(&t->merges, syms[i], syms[j]);
            if (!p || p->rank != round) continue;
            syms[i] = p->result;
            syms[j] = -1; /* dead */
            next[i] = next[j];
            if (next[j] >= 0) prev[next[j]] = i;
            if (prev[i] >= 0) {
                const PairSlot *q = pairmap_get(&t->merges, syms[prev[i]], syms[i]);
                if (q) pend[pn++] = (HeapEnt){q->rank, prev[i]};
            }
            if (next[i] >= 0) {
                const PairSlot *q = pairmap_get(&t->merges, syms[i], syms[next[i]]);
                if (q) pend[pn++] = (HeapEnt){q->rank, i};
            }
        }
        for (size_t k = 0; k < pn; k++) heap_push(heap, &hn, pend[k]);
    }
    size_t w = 0;
    for (int i = 0; i >= 0; i = next[i]) syms[w++] = syms[i];
    m = w;
out:
    free(next);
    free(prev);
    free(heap);
    free(pend);
    return m;
}

// ---- the cache and one pre-token ----

/* Looks key up in its shard; on a hit appends the ids to out and returns 1. */
static int cache_get(BpeTokenizer *t, uint64_t h, const unsigned char *key, size_t len,
                     IntVec *out, int *oom) {
    CacheShard *sh = &t->cache[h % CACHE_SHARDS];
    int hit = 0;
    pthread_mutex_lock(&sh->lock);
    if (sh->slots) {
        size_t mask = (size_t)sh->cap - 1;
        size_t i = (h >> 8) & mask;
        while (sh->slots[i].hash) {
            CacheSlot *s = &sh->slots[i];
            if (s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0) {
                if (ivec_reserve(out, s->n_ids)) {
                    memcpy(out->v + out->n, s->ids, s->n_ids * sizeof(int));
                    out->n += s->n_ids;
                } else {
                    *oom = 1;
                }
                hit = 1;
                break;
            }
            i = (i + 1) & mask;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    return hit;
}

/* Best effort: a failed allocation just leaves the entry out. */
static void cache_put(BpeTokenizer *t, uint64_t h, const unsigned char *key, size_t len,
                      const int *ids, size_t n) {
    CacheShard *sh = &t->cache[h % CACHE_SHARDS];
    unsigned char *block = dp_malloc(len + n * sizeof(int) + sizeof(int));
    if (!block) return;
    pthread_mutex_lock(&sh->lock);
    /* Shards start small (a tokenizer that encodes little stays small) and
     * double until CACHE_SHARD_CAP; a full shard at the largest size is
     * cleared, which is the whole eviction policy: simple, bounded, and the
     * hot words of a text come back within a few hundred pre-tokens. */
    if (!sh->slots || (sh->used + 1) * 4 > sh->cap * 3) {
        if (sh->slots && sh->cap >= CACHE_SHARD_CAP) {
            cache_clear_shard(sh);
        } else {
            int ncap = sh->slots ? sh->cap * 2 : CACHE_SHARD_MIN;
            CacheSlot *ns = dp_calloc((size_t)ncap, sizeof *ns);
            if (!ns) {
                pthread_mutex_unlock(&sh->lock);
                free(block);
                return;
            }
            for (int k = 0; k < sh->cap; k++) {
                if (!sh->slots[k].hash) continue;
                size_t j = (sh->slots[k].hash >> 8) & (size_t)(ncap - 1);
                while (ns[j].hash) j = (j + 1) & (size_t)(ncap - 1);
                ns[j] = sh->slots[k];
            }
            free(sh->slots);
            sh->slots = ns;
            sh->cap = ncap;
        }
    }
    size_t mask = (size_t)sh->cap - 1;
    size_t i = (h >> 8) & mask;
    while (sh->slots[i].hash) {
        if (sh->slots[i].hash == h && sh->slots[i].key_len == len &&
            memcmp(sh->slots[i].key, key, len) == 0) { /* another thread won */
            pthread_mutex_unlock(&sh->lock);
            free(block);
            return;
        }
        i = (i + 1) & mask;
    }
    /* ids first so they are aligned, then the key bytes. */
    int *idp = (int *)(void *)block;
    memcpy(idp, ids, n * sizeof(int));
    unsigned char *kp = block + n * sizeof(int);
    memcpy(kp, key, len);
    sh->slots[i] = (CacheSlot){h, idp, kp, (uint16_t)len, (uint16_t)n};
    sh->used++;
    pthread_mutex_unlock(&sh->lock);
}

/* Appends the ids of one pre-token s[0..len) to out. */
static DpStatus encode_word(BpeTokenizer *t, const unsigned char *s, size_t len, IntVec *out) {
    if (len == 1) {
        if (!ivec_reserve(out, 1)) return DP_ERR_NOMEM;
        out->v[out->n++] = t->byte_id[s[0]];
        return DP_OK;
    }
    uint64_t h = 0;
    int cacheable = len <= CACHE_MAX_WORD;
    if (cacheable) {
        int oom = 0;
        h = hash_bytes(s, len) | 1;
        if (cache_get(t, h, s, len, out, &oom)) return oom ? DP_ERR_NOMEM : DP_OK;
    }
    if (!ivec_reserve(out, len)) return DP_ERR_NOMEM;
    int *syms = out->v + out->n;
    for (size_t i = 0; i < len; i++) syms[i] = t->byte_id[s[i]];
    DpStatus st = DP_OK;
    size_t m = len <= naive_limit ? merge_naive(t, syms, len) : merge_heap(t, syms, len, &st);
    if (st != DP_OK) return st;
    if (cacheable) cache_put(t, h, s, len, syms, m);
    out->n += m;
    return DP_OK;
}

static DpStatus encode_plain(BpeTokenizer *t, const unsigned char *s, size_t len, IntVec *out) {
    size_t pos = 0;
    while (pos < len) {
        size_t l = bpe_pretoken_len(s + pos, len - pos);
        DpStatus st = encode_word(t, s + pos, l, out);
        if (st != DP_OK) return st;
        pos += l;
    }
    return DP_OK;
}

/* The earliest atomic token in s[0..len) (longest at that position): sets
 * *at, *mlen and returns its id, or -1 when there is none. */
static int find_atomic(const BpeTokenizer *t, const unsigned char *s, size_t len,
                       int allow_special, size_t *at, size_t *mlen) {
    int n = t->n_atomic + (allow_special && t->eot_id >= 0);
    if (n == 0) return -1;
    for (size_t i = 0; i < len; i++) {
        int best = -1;
        size_t bl = 0;
        for (int k = 0; k < n; k++) {
            int id = k < t->n_atomic ? t->atomic_ids[k] : t->eot_id;
            size_t tl = t->tok_len[id];
            if (tl > bl && tl <= len - i && s[i] == t->tok_bytes[id][0] &&
                memcmp(s + i, t->tok_bytes[id], tl) == 0) {
                best = id;
                bl = tl;
            }
        }
        if (best >= 0) {
            *at = i;
            *mlen = bl;
            return best;
        }
    }
    return -1;
}

DpStatus bpe_encode(const BpeTokenizer *ctok, const char *text, size_t len, int allow_special,
                    int **ids, size_t *n_ids, DpError *err) {
    /* The cache is the only state encode changes; it has its own locks. */
    BpeTokenizer *t = (BpeTokenizer *)ctok;
    IntVec out = {NULL, 0, 0};
    const unsigned char *s = (const unsigned char *)text;
    *ids = NULL;
    *n_ids = 0;
    DpStatus st = DP_OK;
    size_t pos = 0;
    while (pos < len && st == DP_OK) {
        size_t at = 0, ml = 0;
        int id = find_atomic(t, s + pos, len - pos, allow_special, &at, &ml);
        if (id < 0) {
            st = encode_plain(t, s + pos, len - pos, &out);
            break;
        }
        st = encode_plain(t, s + pos, at, &out);
        if (st == DP_OK && !ivec_reserve(&out, 1)) st = DP_ERR_NOMEM;
        if (st == DP_OK) out.v[out.n++] = id;
        pos += at + ml;
    }
    if (st != DP_OK) {
        free(out.v);
        return dp_fail(err, st, "encode: out of memory");
    }
    *ids = out.v;
    *n_ids = out.n;
    return DP_OK;
}

// ---- decoding ----

DpStatus bpe_decode(const BpeTokenizer *t, const int *ids, size_t n_ids, char **out, size_t *len,
                    DpError *err) {
    *out = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return dp_fail(err, DP_ERR_INVAL, "decode: id %d at index %zu is outside 0..%d",
                           ids[i], i, t->n_vocab - 1);
        total += t->tok_len[ids[i]];
    }
    char *buf = dp_malloc(total + 1);
    if (!buf) return dp_fail(err, DP_ERR_NOMEM, "decode: out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n_ids; i++) {
        memcpy(buf + o, t->tok_bytes[ids[i]], t->tok_len[ids[i]]);
        o += t->tok_len[ids[i]];
    }
    buf[o] = '\0';
    *out = buf;
    if (len) *len = o;
    return DP_OK;
}

DpStatus bpe_decode_text(const BpeTokenizer *t, const int *ids, size_t n_ids, char **out,
                         size_t *len, DpError *err) {
    char *raw = NULL;
    size_t rl = 0;
    *out = NULL;
    if (len) *len = 0;
    DpStatus st = bpe_decode(t, ids, n_ids, &raw, &rl, err);
    if (st != DP_OK) return st;
    /* Each invalid subpart becomes U+FFFD (3 bytes) and is at least 1 byte. */
    char *buf = dp_malloc(rl * 3 + 1);
    if (!buf) {
        free(raw);
        return dp_fail(err, DP_ERR_NOMEM, "decode: out of memory");
    }
    const unsigned char *s = (const unsigned char *)raw;
    size_t i = 0, o = 0;
    while (i < rl) {
        uint32_t cp;
        int w = utf8_decode(s + i, rl - i, &cp);
        if (w > 0) {
            memcpy(buf + o, s + i, (size_t)w);
            o += (size_t)w;
            i += (size_t)w;
        } else {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += (size_t)-w;
        }
    }
    buf[o] = '\0';
    free(raw);
    *out = buf;
    if (len) *len = o;
    return DP_OK;
}

// ---- accessors ----

int bpe_vocab_size(const BpeTokenizer *t) { return t->n_vocab; }
int bpe_n_merges(const BpeTokenizer *t) { return t->n_merges; }
int bpe_eot_id(const BpeTokenizer *t) { return t->eot_id; }

const char *bpe_token_str(const BpeTokenizer *t, int id) {
    return id >= 0 && id < t->n_vocab ? t->tok_str[id] : NULL;
}

const char *bpe_token_bytes(const BpeTokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->tok_len[id];
    return (const char *)t->tok_bytes[id];
}

int bpe_token_id(const BpeTokenizer *t, const char *vocab_str) {
    return strmap_find(t, vocab_str, strlen(vocab_str));
}

// ---- saving ----

/* JSON string literal with the escapes JSON requires; other UTF-8 as is. */
static DpStatus json_str(DpBuf *b, const char *s, size_t n) {
    DpStatus st = dp_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n && st == DP_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            st = dp_buf_append(b, e, 2);
        } else if (c < 0x20) {
            st = dp_buf_printf(b, "\\u%04x", c);
        } else {
            st = dp_buf_append(b, s + i, 1);
        }
    }
    if (st == DP_OK) st = dp_buf_append(b, "\"", 1);
    return st;
}

DpStatus bpe_save_dir(const BpeTokenizer *t, const char *dir, DpError *err) {
    DpBuf v = DP_BUF_INIT, m = DP_BUF_INIT, a = DP_BUF_INIT;
    char path[4096];
    DpStatus st = dp_mkdirs(dir, err);
    if (st != DP_OK) return st;
    st = dp_buf_append(&v, "{", 1);
    for (int id = 0; id < t->n_vocab && st == DP_OK; id++) {
        if (id) st = dp_buf_append(&v, ", ", 2);
        if (st == DP_OK) st = json_str(&v, t->tok_str[id], strlen(t->tok_str[id]));
        if (st == DP_OK) st = dp_buf_printf(&v, ": %d", id);
    }
    if (st == DP_OK) st = dp_buf_append(&v, "}", 1);
    if (st == DP_OK) st = dp_buf_append(&m, "#version: 0.2\n", 14);
    for (int r = 0; r < t->n_merges && st == DP_OK; r++)
        st = dp_buf_printf(&m, "%s %s\n", t->tok_str[t->merge_list[r][0]],
                           t->tok_str[t->merge_list[r][1]]);
    if (t->n_atomic > 0 && st == DP_OK) {
        st = dp_buf_append(&a, "{", 1);
        for (int k = 0; k < t->n_atomic && st == DP_OK; k++) {
            int id = t->atomic_ids[k];
            if (k) st = dp_buf_append(&a, ", ", 2);
            if (st == DP_OK) st = json_str(&a, (const char *)t->tok_bytes[id], t->tok_len[id]);
            if (st == DP_OK) st = dp_buf_printf(&a, ": %d", id);
        }
        if (st == DP_OK) st = dp_buf_append(&a, "}\n", 2);
    }
    if (st != DP_OK) {
        st = dp_fail(err, DP_ERR_NOMEM, "save tokenizer: out of memory");
        goto out;
    }
    st = dp_path_join(path, sizeof path, dir, "vocab.json", err);
    if (st == DP_OK) st = dp_write_file_atomic(path, v.data, v.len, err);
    if (st == DP_OK) st = dp_path_join(path, sizeof path, dir, "merges.txt", err);
    if (st == DP_OK) st = dp_write_file_atomic(path, m.data, m.len, err);
    if (st == DP_OK) st = dp_path_join(path, sizeof path, dir, "added_tokens.json", err);
    if (st == DP_OK && t->n_atomic > 0) st = dp_write_file_atomic(path, a.data, a.len, err);
    else if (st == DP_OK && dp_file_exists(path)) remove(path); /* stale from an older save */
out:
    dp_buf_free(&v);
    dp_buf_free(&m);
    dp_buf_free(&a);
    return st;
}
