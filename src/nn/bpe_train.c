/*
 * Byte-level BPE training, producing the same vocab.json / merges.txt that
 * GPT-2 ships (through bpe_build and bpe_save_dir).
 *
 * The corpus is split with GPT-2's pre-tokenizer (after cutting out
 * "<|endoftext|>" and the forced whole tokens, which are matched literally
 * at encode time and so must not shape the statistics), and reduced to unique
 * words with counts.  Training then repeats: take the adjacent pair with the
 * highest count (ties: smaller left id, then smaller right id), give it a
 * token, and rewrite only the words that hold it.  Pair counts live in a hash
 * table with, per pair, the list of words it occurs in (may hold words that
 * lost the pair since; they are skipped), and a max-heap with lazy deletion
 * (an entry is stale when its count is no longer the pair's count).  Cost per
 * merge is proportional to the words it touches, not to the corpus.
 *
 * Id layout: 0..255 the single bytes in GPT-2's order (so they equal GPT-2's
 * first 256 ids), then one id per merge, then the tokens the forced words
 * need, then "<|endoftext|>".
 */
#include "bpe_impl.h"

#include <stdlib.h>
#include <string.h>

// ---- a growable hash map from byte strings to ints ----

typedef struct {
    uint64_t hash;
    const unsigned char *key; /* borrowed (points into storage that outlives the map) */
    size_t len;
    int val;
} BsSlot;

typedef struct {
    BsSlot *slots;
    size_t cap, used;
} BsMap;

static uint64_t bs_hash(const unsigned char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return dp_hash_u64(h) | 1;
}

static int bs_grow(BsMap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 1024;
    BsSlot *ns = dp_calloc(ncap, sizeof *ns);
    if (!ns) return 0;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].hash) continue;
        size_t j = m->slots[i].hash & (ncap - 1);
        while (ns[j].hash) j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 1;
}

/* Returns the slot for key, inserting it with val = -1 when absent (and
 * *inserted = 1).  NULL on out-of-memory. */
static BsSlot *bs_get(BsMap *m, const unsigned char *key, size_t len, int insert,
                      int *inserted) {
    if (inserted) *inserted = 0;
    if (insert && (m->used + 1) * 2 > m->cap && !bs_grow(m)) return NULL;
    if (!m->cap) return NULL;
    uint64_t h = bs_hash(key, len);
    size_t i = h & (m->cap - 1);
    while (m->slots[i].hash) {
        BsSlot *s = &m->slots[i];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s;
        i = (i + 1) & (m->cap - 1);
    }
    if (!insert) return NULL;
    m->slots[i] = (BsSlot){h, key, len, -1};
    m->used++;
    if (inserted) *inserted = 1;
    return &m->slots[i];
}

// ---- training state ----

typedef struct {
    int *syms;
    int n;
    int64_t freq;
    int stamp; /* last merge that visited this word */
} Word;

typedef struct {
    int a, b;
    int64_t count;
    int touch; /* last merge that changed the count (-1: none) */
    int *words;
    int n_words, cap_words;
} Pair;

typedef struct {
    int64_t count;
    int a, b;
} PairEnt;

typedef struct {
    /* tokens */
    BpeBytes *tok;
    int n_tok, cap_tok;
    unsigned char *no_merge; /* per token: holds a digit and digits stay apart */
    BsMap tok_map;           /* bytes -> id */
    /* merges */
    int (*merges)[3];
    int n_merges, cap_merges;
    /* words */
    Word *words;
    int n_words, cap_words;
    /* pairs */
    Pair *pairs;
    int n_pairs, cap_pairs;
    uint64_t *pair_keys; /* open addressing: (a << 32 | b) + 1 -> index + 1 in low bits */
    int *pair_idx;
    size_t pair_cap;
    PairEnt *heap;
    size_t n_heap, cap_heap;
    int *touched; /* pairs whose count the current merge changed */
    int n_touched, cap_touched;
    int merge_no;
    int byte_id[256];
    int keep_digits;
} Trainer;

static uint64_t pkey(int a, int b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static int pair_table_grow(Trainer *t) {
    size_t ncap = t->pair_cap ? t->pair_cap * 2 : 4096;
    uint64_t *nk = dp_calloc(ncap, sizeof *nk);
    int *ni = dp_malloc(ncap * sizeof *ni);
    if (!nk || !ni) {
        free(nk);
        free(ni);
        return 0;
    }
    for (size_t i = 0; i < t->pair_cap; i++) {
        if (!t->pair_keys[i]) continue;
        size_t j = dp_hash_u64(t->pair_keys[i]) & (ncap - 1);
        while (nk[j]) j = (j + 1) & (ncap - 1);
        nk[j] = t->pair_keys[i];
        ni[j] = t->pair_idx[i];
    }
    free(t->pair_keys);
    free(t->pair_idx);
    t->pair_keys = nk;
    t->pair_idx = ni;
    t->pair_cap = ncap;
    return 1;
}

/* Index of pair (a, b), creating it when create; -1 when absent or OOM. */
static int pair_find(Trainer *t, int a, int b, int create) {
    if (create && ((size_t)t->n_pairs + 1) * 2 > t->pair_cap && !pair_table_grow(t)) return -1;
    if (!t->pair_cap) return -1;
    uint64_t k = pkey(a, b);
    size_t i = dp_hash_u64(k) & (t->pair_cap - 1);
    while (t->pair_keys[i]) {
        if (t->pair_keys[i] == k) return t->pair_idx[i];
        i = (i + 1) & (t->pair_cap - 1);
    }
    if (!create) return -1;
    if (t->n_pairs == t->cap_pairs) {
        int nc = t->cap_pairs ? t->cap_pairs * 2 : 4096;
        Pair *np = dp_realloc_array(t->pairs, (size_t)nc, sizeof *np);
        if (!np) return -1;
        t->pairs = np;
        t->cap_pairs = nc;
    }
    int idx = t->n_pairs++;
    t->pairs[idx] = (Pair){a, b, 0, -1, NULL, 0, 0};
    t->pair_keys[i] = k;
    t->pair_idx[i] = idx;
    return idx;
}

/* Max-heap on count; ties go to the smaller (a, b) so training is
 * deterministic whatever the hash order. */
static int ent_before(PairEnt x, PairEnt y) {
    if (x.count != y.count) return x.count > y.count;
    if (x.a != y.a) return x.a < y.a;
    return x.b < y.b;
}

static int heap_push(Trainer *t, PairEnt e) {
    if (t->n_heap == t->cap_heap) {
        size_t nc = t->cap_heap ? t->cap_heap * 2 : 4096;
        PairEnt *nh = dp_realloc_array(t->heap, nc, sizeof *nh);
        if (!nh) return 0;
        t->heap = nh;
        t->cap_heap = nc;
    }
    size_t i = t->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_before(e, t->heap[p])) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = e;
    return 1;
}

static PairEnt heap_pop(Trainer *t) {
    PairEnt top = t->heap[0], last = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ent_before(t->heap[c + 1], t->heap[c])) c++;
        if (!ent_before(t->heap[c], last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = last;
    return top;
}

static int pair_add_word(Pair *p, int w) {
    if (p->n_words && p->words[p->n_words - 1] == w) return 1;
    if (p->n_words == p->cap_words) {
        int nc = p->cap_words ? p->cap_words * 2 : 4;
        int *nw = dp_realloc_array(p->words, (size_t)nc, sizeof(int));
        if (!nw) return 0;
        p->words = nw;
        p->cap_words = nc;
    }
    p->words[p->n_words++] = w;
    return 1;
}

/* Adds delta occurrences of (a, b) from word w (when w >= 0 it joins the
 * pair's word list).  Pairs that touch a no-merge token are not counted. */
static int count_pair(Trainer *t, int a, int b, int64_t delta, int w) {
    if (t->no_merge[a] || t->no_merge[b]) return 1;
    int idx = pair_find(t, a, b, 1);
    if (idx < 0) return 0;
    Pair *p = &t->pairs[idx];
    p->count += delta;
    if (w >= 0 && !pair_add_word(p, w)) return 0;
    if (p->touch != t->merge_no) {
        p->touch = t->merge_no;
        if (t->n_touched == t->cap_touched) {
            int nc = t->cap_touched ? t->cap_touched * 2 : 1024;
            int *nt = dp_realloc_array(t->touched, (size_t)nc, sizeof(int));
            if (!nt) return 0;
            t->touched = nt;
            t->cap_touched = nc;
        }
        t->touched[t->n_touched++] = idx;
    }
    return 1;
}

static int add_token(Trainer *t, const unsigned char *bytes, size_t len, int *id_out) {
    if (t->n_tok == t->cap_tok) {
        int nc = t->cap_tok ? t->cap_tok * 2 : 1024;
        BpeBytes *nt = dp_realloc_array(t->tok, (size_t)nc, sizeof *nt);
        unsigned char *nm = dp_realloc_array(t->no_merge, (size_t)nc, 1);
        if (nt) t->tok = nt;
        if (nm) t->no_merge = nm;
        if (!nt || !nm) return 0;
        t->cap_tok = nc;
    }
    unsigned char *copy = dp_malloc(len);
    if (!copy) return 0;
    memcpy(copy, bytes, len);
    int id = t->n_tok;
    int digit = 0;
    for (size_t i = 0; i < len; i++) digit |= copy[i] >= '0' && copy[i] <= '9';
    t->tok[id] = (BpeBytes){copy, len};
    t->no_merge[id] = (unsigned char)(t->keep_digits && digit);
    BsSlot *s = bs_get(&t->tok_map, copy, len, 1, NULL);
    if (!s) {
        free(copy);
        return 0;
    }
    s->val = id;
    t->n_tok++;
    *id_out = id;
    return 1;
}

static int add_merge(Trainer *t, int a, int b, int c) {
    if (t->n_merges == t->cap_merges) {
        int nc = t->cap_merges ? t->cap_merges * 2 : 1024;
        int(*nm)[3] = dp_realloc_array(t->merges, (size_t)nc, sizeof *nm);
        if (!nm) return 0;
        t->merges = nm;
        t->cap_merges = nc;
    }
    t->merges[t->n_merges][0] = a;
    t->merges[t->n_merges][1] = b;
    t->merges[t->n_merges][2] = c;
    t->n_merges++;
    return 1;
}

/* Id of the token with the bytes of x then y, creating it when new. */
static int concat_token(Trainer *t, int x, int y, int *id) {
    size_t la = t->tok[x].len, lb = t->tok[y].len;
    unsigned char stack[256];
    unsigned char *buf = la + lb <= sizeof stack ? stack : dp_malloc(la + lb);
    if (!buf) return 0;
    memcpy(buf, t->tok[x].bytes, la);
    memcpy(buf + la, t->tok[y].bytes, lb);
    BsSlot *s = bs_get(&t->tok_map, buf, la + lb, 0, NULL);
    int ok = 1;
    if (s) *id = s->val;
    else ok = add_token(t, buf, la + lb, id);
    if (buf != stack) free(buf);
    return ok;
}

static void trainer_free(Trainer *t) {
    for (int i = 0; i < t->n_tok; i++) free((void *)t->tok[i].bytes);
    free(t->tok);
    free(t->no_merge);
    free(t->tok_map.slots);
    free(t->merges);
    for (int i = 0; i < t->n_words; i++) free(t->words[i].syms);
    free(t->words);
    for (int i = 0; i < t->n_pairs; i++) free(t->pairs[i].words);
    free(t->pairs);
    free(t->pair_keys);
    free(t->pair_idx);
    free(t->heap);
    free(t->touched);
}

// ---- corpus -> words ----

typedef struct {
    BsMap map;     /* pre-token bytes -> word index; keys point into texts */
    Trainer *t;
} Counter;

static int count_word(Counter *c, const unsigned char *s, size_t len) {
    Trainer *t = c->t;
    int inserted = 0;
    BsSlot *slot = bs_get(&c->map, s, len, 1, &inserted);
    if (!slot) return 0;
    if (!inserted) {
        t->words[slot->val].freq++;
        return 1;
    }
    if (t->n_words == t->cap_words) {
        int nc = t->cap_words ? t->cap_words * 2 : 4096;
        Word *nw = dp_realloc_array(t->words, (size_t)nc, sizeof *nw);
        if (!nw) return 0;
        t->words = nw;
        t->cap_words = nc;
    }
    int *syms = dp_malloc(len * sizeof(int));
    if (!syms) return 0;
    for (size_t i = 0; i < len; i++) syms[i] = t->byte_id[s[i]];
    slot->val = t->n_words;
    t->words[t->n_words++] = (Word){syms, (int)len, 1, -1};
    return 1;
}

/* Literal occurrences of these are cut out of the corpus, as encode cuts
 * them out of text. */
static size_t next_atomic(const unsigned char *s, size_t n, const BpeTrainOptions *o,
                          size_t *mlen) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '<' && n - i >= 13 && memcmp(s + i, "<|endoftext|>", 13) == 0) {
            *mlen = 13;
            return i;
        }
        size_t best = 0;
        for (int k = 0; k < o->n_forced; k++) {
            const char *f = o->forced_tokens[k];
            size_t fl = strlen(f);
            if (fl > best && fl <= n - i && (unsigned char)f[0] == s[i] && memcmp(s + i, f, fl) == 0)
                best = fl;
            if (s[i] == ' ' && fl + 1 > best && fl + 1 <= n - i && memcmp(s + i + 1, f, fl) == 0)
                best = fl + 1;
        }
        if (best) {
            *mlen = best;
            return i;
        }
    }
    *mlen = 0;
    return n;
}

// ---- the forced whole tokens ----

/* Encodes forced word k with (variant 1) or without (variant 0) a leading
 * space, using v as scratch.  *ids is the caller's to free.  Returns 0 on
 * failure (err filled by the encoder, or left for the caller's OOM message). */
static int encode_forced(const BpeTokenizer *tok, const BpeTrainOptions *o, int k, int variant,
                         DpBuf *v, int **ids, size_t *n, DpError *err) {
    *ids = NULL;
    *n = 0;
    v->len = 0;
    if (variant && dp_buf_append(v, " ", 1) != DP_OK) return 0;
    if (dp_buf_append(v, o->forced_tokens[k], strlen(o->forced_tokens[k])) != DP_OK) return 0;
    return bpe_encode(tok, v->data, v->len, 0, ids, n, err) == DP_OK;
}

/* Upper bound on the ids the forced words still need: one per symbol they
 * would be split into, less one, for both variants. */
static int forced_cost(Trainer *t, const BpeTrainOptions *o, DpError *err, int *cost) {
    BpeTokenizer *tok = NULL;
    *cost = 0;
    if (o->n_forced == 0) return 1;
    if (bpe_build(t->tok, t->n_tok, (const int(*)[3])t->merges, t->n_merges, NULL, 0, &tok,
                  err) != DP_OK)
        return 0;
    DpBuf v = DP_BUF_INIT;
    int ok = 1;
    for (int k = 0; k < o->n_forced && ok; k++) {
        for (int variant = 0; variant < 2 && ok; variant++) {
            int *ids = NULL;
            size_t n = 0;
            ok = encode_forced(tok, o, k, variant, &v, &ids, &n, err);
            if (ok && n > 1) *cost += (int)n - 1;
            free(ids);
        }
    }
    dp_buf_free(&v);
    bpe_free(tok);
    return ok;
}

/* Adds the merges (and tokens) that chain each forced word's symbols into
 * one token, left to right, for the word with and without a leading space.
 * Left-to-right chains join across pre-token boundaries (or start from a
 * token only forced words make), so they rarely change how other text
 * splits; their main job is to give each forced word its id.  Collects the
 * forced ids into atomic[]. */
static int add_forced(Trainer *t, const BpeTrainOptions *o, int *atomic, int *n_atomic,
                      DpError *err) {
    BpeTokenizer *tok = NULL;
    *n_atomic = 0;
    if (o->n_forced == 0) return 1;
    if (bpe_build(t->tok, t->n_tok, (const int(*)[3])t->merges, t->n_merges, NULL, 0, &tok,
                  err) != DP_OK)
        return 0;
    DpBuf v = DP_BUF_INIT;
    int ok = 1;
    for (int k = 0; k < o->n_forced && ok; k++) {
        for (int variant = 0; variant < 2 && ok; variant++) {
            int *ids = NULL;
            size_t n = 0;
            ok = encode_forced(tok, o, k, variant, &v, &ids, &n, err);
            int cur = ok && n > 0 ? ids[0] : -1;
            for (size_t j = 1; j < n && ok; j++) {
                int have = -1;
                for (int r = 0; r < t->n_merges; r++)
                    if (t->merges[r][0] == cur && t->merges[r][1] == ids[j]) {
                        have = t->merges[r][2];
                        break;
                    }
                if (have >= 0) {
                    cur = have;
                    continue;
                }
                int c = -1;
                if (!concat_token(t, cur, ids[j], &c) || !add_merge(t, cur, ids[j], c)) ok = 0;
                cur = c;
            }
            free(ids);
            if (ok && cur >= 0) {
                int dup = 0;
                for (int i = 0; i < *n_atomic; i++) dup |= atomic[i] == cur;
                if (!dup) atomic[(*n_atomic)++] = cur;
            }
        }
    }
    dp_buf_free(&v);
    bpe_free(tok);
    if (!ok && err && err->status == DP_OK) dp_fail(err, DP_ERR_NOMEM, "train: out of memory");
    return ok;
}

// ---- the merge loop ----

/* Rewrites every word that holds (a, b) with c in its place, moving the
 * pair counts (count_pair lists the pairs it changed in t->touched).
 * Returns 0 on out-of-memory. */
static int apply_merge(Trainer *t, int pidx, int c) {
    int a = t->pairs[pidx].a, b = t->pairs[pidx].b;
    /* New words join the lists of pairs holding c only, never (a, b)'s, so
     * the list does not grow under us; still, t->pairs may move. */
    int n_list = t->pairs[pidx].n_words;
    for (int li = 0; li < n_list; li++) {
        int w = t->pairs[pidx].words[li];
        Word *wd = &t->words[w];
        if (wd->stamp == t->merge_no) continue;
        wd->stamp = t->merge_no;
        int has = 0;
        for (int i = 0; i + 1 < wd->n; i++) has |= wd->syms[i] == a && wd->syms[i + 1] == b;
        if (!has) continue;
        for (int i = 0; i + 1 < wd->n; i++)
            if (!count_pair(t, wd->syms[i], wd->syms[i + 1], -wd->freq, -1)) return 0;
        int m = 0;
        for (int i = 0; i < wd->n;) {
            if (i + 1 < wd->n && wd->syms[i] == a && wd->syms[i + 1] == b) {
                wd->syms[m++] = c;
                i += 2;
            } else {
                wd->syms[m++] = wd->syms[i++];
            }
        }
        wd->n = m;
        for (int i = 0; i + 1 < wd->n; i++) {
            int x = wd->syms[i], y = wd->syms[i + 1];
            if (!count_pair(t, x, y, wd->freq, (x == c || y == c) ? w : -1)) return 0;
        }
    }
    return 1;
}

DpStatus bpe_train(const char *const *texts, const size_t *lens, size_t n_texts,
                   const BpeTrainOptions *o, BpeTokenizer **out, DpError *err) {
    *out = NULL;
    Trainer t;
    memset(&t, 0, sizeof t);
    t.keep_digits = o->keep_digits_apart;
    t.merge_no = -1; /* initial counts belong to no merge */
    Counter counter = {{NULL, 0, 0}, &t};
    int *atomic = NULL;
    DpStatus st = DP_OK;
    int64_t min_count = o->min_pair_count > 0 ? o->min_pair_count : 2;

    if (o->vocab_size < 257 || o->vocab_size > 1000000)
        return dp_fail(err, DP_ERR_INVAL, "train: vocab_size %d outside 257..1000000",
                       o->vocab_size);
    for (int k = 0; k < o->n_forced; k++) {
        const char *f = o->forced_tokens[k];
        if (!f || !*f || strlen(f) > 200)
            return dp_fail(err, DP_ERR_INVAL, "train: forced token %d is empty or too long", k);
        for (const char *p = f; *p; p++) {
            int w;
            if (bpe_char_class((const unsigned char *)p, strlen(p), &w) == BPE_CLASS_OTHER &&
                (unsigned char)*p >= 0x80 && w == 1)
                return dp_fail(err, DP_ERR_INVAL, "train: forced token \"%s\" is not UTF-8", f);
            p += w - 1;
        }
    }
    /* The 256 byte tokens, in GPT-2's id order (by mapped code point). */
    for (uint32_t cp = 0; cp < 324; cp++) {
        for (int byte = 0; byte < 256; byte++) {
            if (bpe_byte_to_cp(byte) != cp) continue;
            unsigned char bb = (unsigned char)byte;
            if (!add_token(&t, &bb, 1, &t.byte_id[byte])) goto oom;
        }
    }
    /* Words of the corpus. */
    for (size_t i = 0; i < n_texts; i++) {
        const unsigned char *s = (const unsigned char *)texts[i];
        size_t n = lens ? lens[i] : strlen(texts[i]);
        size_t pos = 0;
        while (pos < n) {
            size_t ml = 0;
            size_t stop = pos + next_atomic(s + pos, n - pos, o, &ml);
            while (pos < stop) {
                size_t l = bpe_pretoken_len(s + pos, stop - pos);
                if (!count_word(&counter, s + pos, l)) goto oom;
                pos += l;
            }
            pos += ml;
        }
    }
    /* Initial pair counts. */
    for (int w = 0; w < t.n_words; w++)
        for (int i = 0; i + 1 < t.words[w].n; i++)
            if (!count_pair(&t, t.words[w].syms[i], t.words[w].syms[i + 1], t.words[w].freq, w))
                goto oom;
    for (int p = 0; p < t.n_pairs; p++)
        if (!heap_push(&t, (PairEnt){t.pairs[p].count, t.pairs[p].a, t.pairs[p].b})) goto oom;

    int cost = 0;
    if (!forced_cost(&t, o, err, &cost)) goto fail;
    if (t.n_tok + cost + 1 > o->vocab_size) {
        /* Merges only shorten the forced words, so this is the worst case;
         * refusing beats silently returning more ids than asked for. */
        st = dp_fail(err, DP_ERR_INVAL,
                     "train: vocab_size %d is too small: the 256 byte tokens, up to %d ids for "
                     "the forced words and <|endoftext|> need %d",
                     o->vocab_size, cost, t.n_tok + cost + 1);
        goto done;
    }
    while (t.n_heap > 0) {
        if (t.n_tok + cost + 1 >= o->vocab_size) {
            /* Near the budget: the forced words may need fewer ids now. */
            if (!forced_cost(&t, o, err, &cost)) goto fail;
            if (t.n_tok + cost + 1 >= o->vocab_size) break;
        }
        PairEnt e = heap_pop(&t);
        int pidx = pair_find(&t, e.a, e.b, 0);
        if (pidx < 0 || t.pairs[pidx].count != e.count || e.count <= 0) continue; /* stale */
        if (e.count < min_count) break;
        int c = -1;
        if (!concat_token(&t, e.a, e.b, &c) || !add_merge(&t, e.a, e.b, c)) goto oom;
        t.merge_no++;
        t.n_touched = 0;
        if (!apply_merge(&t, pidx, c)) goto oom;
        for (int k = 0; k < t.n_touched; k++) {
            Pair *p = &t.pairs[t.touched[k]];
            if (p->count > 0 && !heap_push(&t, (PairEnt){p->count, p->a, p->b})) goto oom;
        }
    }
    atomic = dp_malloc(((size_t)o->n_forced * 2 + 1) * sizeof(int));
    if (!atomic) goto oom;
    int n_atomic = 0;
    if (!add_forced(&t, o, atomic, &n_atomic, err)) goto fail;
    {
        BsSlot *s = bs_get(&t.tok_map, (const unsigned char *)"<|endoftext|>", 13, 0, NULL);
        int eot;
        if (!s && !add_token(&t, (const unsigned char *)"<|endoftext|>", 13, &eot)) goto oom;
    }
    st = bpe_build(t.tok, t.n_tok, (const int(*)[3])t.merges, t.n_merges, atomic, n_atomic, out,
                   err);
    goto done;
oom:
    st = dp_fail(err, DP_ERR_NOMEM, "train: out of memory");
    goto done;
fail:
    st = err ? err->status : DP_ERR_NOMEM;
    if (st == DP_OK) st = DP_ERR_NOMEM;
done:
    free(counter.map.slots);
    free(atomic);
    trainer_free(&t);
    return st;
}
