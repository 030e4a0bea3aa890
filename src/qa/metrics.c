/* Answer-quality metrics: BLEU-1 as NLTK computes it and SQuAD v1.1 EM/F1 as
 * the official evaluation script computes them.  The goal is bit-for-bit
 * agreement with the Python references (tests/data/qa/metric_cases.jsonl), so
 * the arithmetic follows theirs step by step: NLTK's sentence score is
 * bp * exp(log(p1)), not p1 * bp, and its corpus score sums the clipped counts,
 * max(1, hypothesis length) and closest reference lengths before dividing.
 *
 * Python semantics reproduced here: str.lower() (Latin-1, Latin Extended-A,
 * Greek, Cyrillic), str.split() (Unicode whitespace), string.punctuation
 * (ASCII), and the regex \b(a|an|the)\b (runs of word characters). */
#include "qa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- UTF-8 and Python's character classes ----

/* Decodes one code point at s (NUL-terminated); *len gets its byte length.
 * An invalid byte decodes as itself (length 1), so nothing is ever lost. */
static uint32_t utf8_decode(const unsigned char *s, int *len) {
    unsigned c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    int n = (c >= 0xF0 && c < 0xF8) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC0) ? 2 : 0;
    if (n == 0 || c >= 0xF8) {
        *len = 1;
        return c;
    }
    uint32_t cp = c & (0x7Fu >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *len = 1;
            return c;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *len = n;
    return cp;
}

/* Python's str.isspace() set, which str.split() splits on. */
static int py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Simple lower-case mapping of the common alphabets (Python's str.lower();
 * the special cases İ -> "i̇" and final sigma are not reproduced). */
static uint32_t py_lower(uint32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c >= 0x100 && c <= 0x17F) {
        if (c == 0x130) return 'i';
        if (c == 0x178) return 0xFF;
        if ((c <= 0x137) || (c >= 0x14A && c <= 0x177)) return (c % 2 == 0) ? c + 1 : c;
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 1) ? c + 1 : c;
        return c;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

/* Python's re \w for the article rule: ASCII alphanumerics and underscore,
 * and non-ASCII code points outside whitespace and the punctuation/symbol
 * blocks (approximation of str.isalnum()). */
static int py_isword(uint32_t c) {
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    if (py_isspace(c)) return 0;
    if (c <= 0xBF)
        return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA ||
               c == 0xBC || c == 0xBD || c == 0xBE;
    if (c == 0xD7 || c == 0xF7) return 0;
    if (c >= 0x2000 && c <= 0x2BFF) return 0;
    if (c >= 0x3000 && c <= 0x303F) return 0;
    if (c >= 0xFE30 && c <= 0xFE4F) return 0;
    if ((c >= 0xFF00 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
        (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65))
        return 0;
    if (c >= 0x1F000 && c <= 0x1FAFF) return 0;
    return 1;
}

/* Python's string.punctuation. */
static int py_ispunct_ascii(unsigned char c) {
    return c < 0x80 && c > 0x20 && c != 0x7F && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) &&
           c != 0;
}

/* Lower-cased copy (malloc'd), or NULL when out of memory. */
static char *lower_copy(const char *s) {
    size_t n = strlen(s);
    /* The mappings here never grow a code point's encoding, except none: the
     * widest mapping (U+0130, 2 bytes -> 'i', 1 byte) shrinks. */
    char *out = malloc(n + 1);
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p) {
        int len;
        uint32_t c = utf8_decode(p, &len);
        uint32_t l = py_lower(c);
        if (l == c || len == 1) {
            if (len == 1 && c < 0x80) out[o++] = (char)l;
            else {
                memcpy(out + o, p, (size_t)len);
                o += (size_t)len;
            }
        } else {
            char enc[4];
            int m = dp_utf8_encode(l, enc);
            DP_ASSERT(m <= len);
            memcpy(out + o, enc, (size_t)m);
            o += (size_t)m;
        }
        p += len;
    }
    out[o] = 0;
    return out;
}

// ---- tokens ----

typedef struct {
    const char *p;
    size_t n;
} Tok;

typedef struct {
    Tok *t;
    size_t n;
} TokList;

/* Splits s on Python whitespace into tokens pointing into s.  -1 on OOM. */
static int split_ws(const char *s, TokList *out) {
    size_t cap = 8, n = 0;
    Tok *t = malloc(cap * sizeof *t);
    if (!t) return -1;
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *start = NULL;
    for (;;) {
        int len = 1;
        uint32_t c = *p ? utf8_decode(p, &len) : 0;
        int sp = (c == 0) || py_isspace(c);
        if (sp && start) {
            if (n == cap) {
                Tok *nt = realloc(t, 2 * cap * sizeof *t);
                if (!nt) {
                    free(t);
                    return -1;
                }
                t = nt;
                cap *= 2;
            }
            t[n].p = (const char *)start;
            t[n].n = (size_t)(p - start);
            n++;
            start = NULL;
        } else if (!sp && !start) {
            start = p;
        }
        if (c == 0) break;
        p += len;
    }
    out->t = t;
    out->n = n;
    return 0;
}

static int tok_cmp(const void *a, const void *b) {
    const Tok *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, m);
    if (c) return c;
    return (x->n > y->n) - (x->n < y->n);
}

/* Occurrences of tok in the sorted list. */
static size_t count_in_sorted(const TokList *l, const Tok *tok) {
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tok_cmp(&l->t[mid], tok) < 0) lo = mid + 1;
        else hi = mid;
    }
    size_t c = 0;
    while (lo + c < l->n && tok_cmp(&l->t[lo + c], tok) == 0) c++;
    return c;
}

/* Sum over distinct tokens of min(count in a, count in b); both sorted. */
static size_t common_count(const TokList *a, const TokList *b) {
    size_t i = 0, j = 0, same = 0;
    while (i < a->n && j < b->n) {
        int c = tok_cmp(&a->t[i], &b->t[j]);
        if (c < 0) i++;
        else if (c > 0) j++;
        else {
            same++;
            i++;
            j++;
        }
    }
    return same;
}

// ---- BLEU-1 ----

typedef struct {
    uint64_t clipped, hyp_len, ref_len;
} BleuStats;

/* NLTK's modified_precision (n=1) and closest_ref_length for one item. */
static int bleu_stats(const char *prediction, const char *const *refs, size_t n_refs,
                      BleuStats *st) {
    int rc = -1;
    char *hyp_s = NULL;
    TokList hyp = {0};
    char **ref_s = NULL;
    TokList *ref = NULL;
    memset(st, 0, sizeof *st);
    hyp_s = lower_copy(prediction ? prediction : "");
    if (!hyp_s || split_ws(hyp_s, &hyp)) goto out;
    ref_s = calloc(n_refs ? n_refs : 1, sizeof *ref_s);
    ref = calloc(n_refs ? n_refs : 1, sizeof *ref);
    if (!ref_s || !ref) goto out;
    for (size_t r = 0; r < n_refs; r++) {
        ref_s[r] = lower_copy(refs[r] ? refs[r] : "");
        if (!ref_s[r] || split_ws(ref_s[r], &ref[r])) goto out;
        qsort(ref[r].t, ref[r].n, sizeof(Tok), tok_cmp);
    }
    qsort(hyp.t, hyp.n, sizeof(Tok), tok_cmp);
    for (size_t i = 0; i < hyp.n;) {
        size_t j = i;
        while (j < hyp.n && tok_cmp(&hyp.t[j], &hyp.t[i]) == 0) j++;
        size_t c = j - i, max_ref = 0;
        for (size_t r = 0; r < n_refs; r++) {
            size_t k = count_in_sorted(&ref[r], &hyp.t[i]);
            if (k > max_ref) max_ref = k;
        }
        st->clipped += c < max_ref ? c : max_ref;
        i = j;
    }
    st->hyp_len = hyp.n;
    /* closest_ref_length: min by (|r - c|, r). */
    int have = 0;
    uint64_t best = 0, best_d = 0;
    for (size_t r = 0; r < n_refs; r++) {
        uint64_t len = ref[r].n;
        uint64_t d = len > hyp.n ? len - hyp.n : hyp.n - len;
        if (!have || d < best_d || (d == best_d && len < best)) {
            best = len;
            best_d = d;
            have = 1;
        }
    }
    st->ref_len = best;
    rc = 0;
out:
    free(hyp_s);
    free(hyp.t);
    if (ref_s)
        for (size_t r = 0; r < n_refs; r++) free(ref_s[r]);
    if (ref)
        for (size_t r = 0; r < n_refs; r++) free(ref[r].t);
    free(ref_s);
    free(ref);
    return rc;
}

/* NLTK: 0 when no unigram matches; else bp * exp(fsum(w * log p)). */
static double bleu_from_counts(uint64_t clipped, uint64_t denom, uint64_t hyp_len,
                               uint64_t ref_len) {
    if (clipped == 0 || denom == 0) return 0.0;
    double bp;
    if (hyp_len > ref_len) bp = 1.0;
    else if (hyp_len == 0) bp = 0.0;
    else bp = exp(1.0 - (double)ref_len / (double)hyp_len);
    double p1 = (double)clipped / (double)denom;
    return bp * exp(log(p1));
}

double qa_bleu1(const char *prediction, const char *const *refs, size_t n_refs) {
    if (n_refs == 0) return 0.0;
    BleuStats st;
    if (bleu_stats(prediction, refs, n_refs, &st)) return NAN;
    return bleu_from_counts(st.clipped, st.hyp_len ? st.hyp_len : 1, st.hyp_len, st.ref_len);
}

// ---- SQuAD normalisation, EM, F1 ----

char *qa_normalize_answer(const char *s) {
    char *low = lower_copy(s ? s : "");
    if (!low) return NULL;
    /* 1. drop ASCII punctuation (in place: never grows). */
    size_t o = 0;
    for (size_t i = 0; low[i]; i++)
        if (!py_ispunct_ascii((unsigned char)low[i])) low[o++] = low[i];
    low[o] = 0;
    /* 2. articles -> " ": a run of word characters equal to a/an/the. */
    char *noart = malloc(o + 1);
    if (!noart) {
        free(low);
        return NULL;
    }
    size_t w = 0;
    const unsigned char *p = (const unsigned char *)low;
    while (*p) {
        int len;
        uint32_t c = utf8_decode(p, &len);
        if (!py_isword(c)) {
            memcpy(noart + w, p, (size_t)len);
            w += (size_t)len;
            p += len;
            continue;
        }
        const unsigned char *start = p;
        while (*p) {
            c = utf8_decode(p, &len);
            if (!py_isword(c)) break;
            p += len;
        }
        size_t n = (size_t)(p - start);
        if ((n == 1 && start[0] == 'a') || (n == 2 && !memcmp(start, "an", 2)) ||
            (n == 3 && !memcmp(start, "the", 3))) {
            noart[w++] = ' ';
        } else {
            memcpy(noart + w, start, n);
            w += n;
        }
    }
    noart[w] = 0;
    free(low);
    /* 3. " ".join(s.split()). */
    TokList t;
    if (split_ws(noart, &t)) {
        free(noart);
        return NULL;
    }
    char *out = malloc(w + 1);
    if (!out) {
        free(t.t);
        free(noart);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (i) out[k++] = ' ';
        memcpy(out + k, t.t[i].p, t.t[i].n);
        k += t.t[i].n;
    }
    out[k] = 0;
    free(t.t);
    free(noart);
    return out;
}

/* F1 of two normalised strings (tokens split on ASCII space). */
static int f1_normalized(const char *p, const char *r, double *f1) {
    TokList a = {0}, b = {0};
    if (split_ws(p, &a)) return -1;
    if (split_ws(r, &b)) {
        free(a.t);
        return -1;
    }
    qsort(a.t, a.n, sizeof(Tok), tok_cmp);
    qsort(b.t, b.n, sizeof(Tok), tok_cmp);
    size_t same = common_count(&a, &b);
    if (same == 0) *f1 = 0.0;
    else {
        double prec = (double)same / (double)a.n, rec = (double)same / (double)b.n;
        *f1 = 2 * prec * rec / (prec + rec);
    }
    free(a.t);
    free(b.t);
    return 0;
}

static int em_f1(const char *prediction, const char *const *refs, size_t n_refs, double *em,
                 double *f1) {
    *em = 0.0;
    *f1 = 0.0;
    char *np = qa_normalize_answer(prediction);
    if (!np) return -1;
    for (size_t r = 0; r < n_refs; r++) {
        char *nr = qa_normalize_answer(refs[r]);
        if (!nr) {
            free(np);
            return -1;
        }
        if (!strcmp(np, nr)) *em = 1.0;
        double f;
        int bad = f1_normalized(np, nr, &f);
        free(nr);
        if (bad) {
            free(np);
            return -1;
        }
        if (f > *f1) *f1 = f;
    }
    free(np);
    return 0;
}

double qa_exact_match(const char *prediction, const char *const *refs, size_t n_refs) {
    double em, f1;
    if (em_f1(prediction, refs, n_refs, &em, &f1)) return NAN;
    return em;
}

double qa_f1(const char *prediction, const char *const *refs, size_t n_refs) {
    double em, f1;
    if (em_f1(prediction, refs, n_refs, &em, &f1)) return NAN;
    return f1;
}

DpStatus qa_score(const char *prediction, const char *const *refs, size_t n_refs, QaScores *out) {
    double b = qa_bleu1(prediction, refs, n_refs);
    if (isnan(b)) return DP_ERR_NOMEM;
    if (em_f1(prediction, refs, n_refs, &out->exact_match, &out->f1)) return DP_ERR_NOMEM;
    out->bleu1 = b;
    return DP_OK;
}

// ---- corpus ----

void qa_corpus_init(QaCorpus *c) { memset(c, 0, sizeof *c); }

DpStatus qa_corpus_add(QaCorpus *c, const char *prediction, const char *const *refs,
                       size_t n_refs, QaScores *out) {
    BleuStats st = {0};
    QaScores sc = {0};
    if (n_refs > 0 && bleu_stats(prediction, refs, n_refs, &st)) return DP_ERR_NOMEM;
    if (em_f1(prediction, refs, n_refs, &sc.exact_match, &sc.f1)) return DP_ERR_NOMEM;
    sc.bleu1 = n_refs ? bleu_from_counts(st.clipped, st.hyp_len ? st.hyp_len : 1, st.hyp_len,
                                         st.ref_len)
                      : 0.0;
    c->n++;
    c->clipped += st.clipped;
    c->hyp_tokens += st.hyp_len ? st.hyp_len : 1;
    c->hyp_len += st.hyp_len;
    c->ref_len += st.ref_len;
    c->sum_bleu1 += sc.bleu1;
    c->sum_em += sc.exact_match;
    c->sum_f1 += sc.f1;
    if (out) *out = sc;
    return DP_OK;
}

void qa_corpus_result(const QaCorpus *c, QaCorpusScores *out) {
    memset(out, 0, sizeof *out);
    out->n = c->n;
    if (c->n == 0) return;
    out->bleu1_corpus = bleu_from_counts(c->clipped, c->hyp_tokens, c->hyp_len, c->ref_len);
    out->bleu1_mean = c->sum_bleu1 / (double)c->n;
    out->exact_match = c->sum_em / (double)c->n;
    out->f1 = c->sum_f1 / (double)c->n;
}
