/*
 * qa: where questions and answers come from, how they are put to a model, and
 * how answers are scored.
 *
 *   - Metrics (metrics.c): BLEU-1 exactly as NLTK's
 *     sentence_bleu(refs, hyp, weights=(1,0,0,0)) on lower-cased whitespace
 *     tokens, corpus BLEU-1 as NLTK's corpus_bleu, and SQuAD v1.1 exact match
 *     and F1 with the official normalisation; each is the max over references.
 *   - SQuAD JSON (squad.c): v1.1 and v2.0 files read into a flat QaDataset
 *     (one QaItem per question), written back as v1.1 JSON (atomically, with
 *     driftpilot's extra fields), split by article.
 *   - The drifting QA world (world.c): the built-in data source, a
 *     deterministic function of (seed, scenario time t): closed-book facts
 *     about internal services whose values drift, reading comprehension,
 *     arithmetic, a query mix that shifts over time.
 *   - The prompt format (prompt.c), the one place training and serving agree on
 *     how a question is put to the model and where its answer ends.
 *
 * Ownership: a QaDataset owns every string its items point to (one string
 * pool per dataset; items of one paragraph share the context pointer); free it
 * with qa_dataset_free.  A QaWorld is created with qa_world_create and freed
 * with qa_world_destroy; strings it returns (entity and value names) are owned
 * by the world and live as long as it.  QaWorldSample is a plain struct with
 * fixed buffers: no allocation, nothing to free.
 *
 * Thread safety: metric functions are reentrant.  A QaWorld is immutable after
 * creation, so any number of threads may query it at once (each with its own
 * DpRng).  A QaDataset must not be modified while another thread reads it.
 *
 * Usage (the load generator, the retrain job):
 *
 *     QaWorldConfig cfg;
 *     qa_world_config_default(&cfg);
 *     qa_world_schedule_parse("sudden:1h:0.3", &cfg, &err);
 *     QaWorld *w = NULL;
 *     qa_world_create(&cfg, &w, &err);
 *     DpRng rng; dp_rng_seed(&rng, 7);
 *     QaWorldSample s;
 *     qa_world_sample(w, 5400.0, &rng, &s);          // a question at t = 1.5 h
 *     char prompt[1024];
 *     qa_prompt_format(s.question, s.context[0] ? s.context : NULL, prompt, sizeof prompt);
 *     ... model generates text ...
 *     char answer[256];
 *     qa_answer_extract(text, answer, sizeof answer);
 *     const char *refs[] = {s.answer};
 *     QaScores sc; qa_score(answer, refs, 1, &sc);    // bleu1, exact_match, f1
 *     qa_world_destroy(w);
 */
#ifndef DRIFTPILOT_QA_H
#define DRIFTPILOT_QA_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"

// ---- metrics ----

/* Scores of one prediction against its references (each in [0, 1]). */
typedef struct {
    double bleu1;        /* NLTK sentence_bleu, weights (1,0,0,0), no smoothing */
    double exact_match;  /* 0 or 1: SQuAD v1.1 EM, max over references */
    double f1;           /* SQuAD v1.1 token F1, max over references */
} QaScores;

/* BLEU-1 of prediction against refs[0..n_refs): prediction and references are
 * lower-cased and split on whitespace (Python's str.lower().split()); the
 * clipped unigram precision times the brevity penalty exp(1 - r/c) (c the
 * prediction length, r the reference length closest to c, ties to the shorter;
 * 1 when c > r).  No smoothing, as NLTK's default: 0 when no unigram matches,
 * 0 for an empty prediction, 0 with no references.  NAN when out of memory. */
double qa_bleu1(const char *prediction, const char *const *refs, size_t n_refs);

/* SQuAD v1.1 exact match (1.0 or 0.0) after qa_normalize_answer; max over refs. */
double qa_exact_match(const char *prediction, const char *const *refs, size_t n_refs);

/* SQuAD v1.1 token F1 of the normalised answers; max over refs.  0 when either
 * side normalises to no tokens (so "A" vs "a" is EM 1 but F1 0, as the official
 * script gives).  NAN when out of memory. */
double qa_f1(const char *prediction, const char *const *refs, size_t n_refs);

/* All three at once.  Returns DP_ERR_NOMEM on allocation failure. */
DpStatus qa_score(const char *prediction, const char *const *refs, size_t n_refs, QaScores *out);

/* The official SQuAD normalisation: lower case, remove ASCII punctuation
 * (Python's string.punctuation), remove the whole words a/an/the, collapse
 * whitespace.  Returns a malloc'd string the caller frees, NULL when out of
 * memory.  Unicode: lower-casing covers Latin-1, Latin Extended-A, Greek and
 * Cyrillic (the rest is kept as is); whitespace is Python's str.split() set;
 * word characters for the article rule are ASCII alphanumerics and every
 * non-ASCII code point except Unicode whitespace and common punctuation and
 * symbol blocks (an approximation of Python's \w). */
char *qa_normalize_answer(const char *s);

/* Corpus accumulator: BLEU-1 as NLTK's corpus_bleu (clipped counts, hypothesis
 * lengths and closest reference lengths summed over the corpus before dividing)
 * plus the means of the per-item scores.  Zero-initialise or qa_corpus_init. */
typedef struct {
    size_t n;            /* items added */
    uint64_t clipped;    /* sum of clipped unigram matches */
    uint64_t hyp_tokens; /* sum of max(1, hypothesis length): NLTK's denominator */
    uint64_t hyp_len;    /* sum of hypothesis lengths */
    uint64_t ref_len;    /* sum of closest reference lengths */
    double sum_bleu1, sum_em, sum_f1;
} QaCorpus;

typedef struct {
    size_t n;
    double bleu1_corpus; /* NLTK corpus_bleu, weights (1,0,0,0) */
    double bleu1_mean;   /* mean of the sentence BLEU-1 scores */
    double exact_match;  /* mean EM */
    double f1;           /* mean F1 */
} QaCorpusScores;

void qa_corpus_init(QaCorpus *c);
/* Scores one item, adds it to the corpus, and writes its scores to out (may be
 * NULL).  DP_ERR_NOMEM on allocation failure (the corpus is then unchanged). */
DpStatus qa_corpus_add(QaCorpus *c, const char *prediction, const char *const *refs,
                       size_t n_refs, QaScores *out);
/* The corpus scores so far (all zero when empty). */
void qa_corpus_result(const QaCorpus *c, QaCorpusScores *out);

// ---- datasets (SQuAD JSON) ----

typedef enum {
    QA_KIND_NONE = 0,      /* plain SQuAD row (no "kind" field) */
    QA_KIND_FACT,          /* closed-book fact about a world entity (empty context) */
    QA_KIND_COMPREHENSION, /* answer is a span of the context */
    QA_KIND_ARITHMETIC,    /* "What is 47 plus 18?" -> "65" (empty context) */
    QA_KIND_OTHER,         /* a "kind" field with another value */
} QaKind;
#define QA_N_KINDS 5

/* "squad", "fact", "comprehension", "arithmetic", "other". */
const char *qa_kind_name(QaKind k);
/* Inverse of qa_kind_name; QA_KIND_OTHER for an unknown name. */
QaKind qa_kind_from_name(const char *name);

typedef struct {
    const char *text;
    int answer_start;  /* character (code point) offset in the context, as SQuAD
                          counts; -1 for closed-book answers (not in the context) */
} QaAnswer;

/* One question.  Every string is owned by the dataset (never NULL except the
 * optional extra fields); items of one paragraph share the context pointer. */
typedef struct {
    const char *id;
    const char *title;    /* the article */
    const char *context;  /* "" for closed-book questions */
    const char *question;
    QaAnswer *answers;    /* n_answers of them; 0 for impossible questions */
    int n_answers;
    QaAnswer *plausible;  /* SQuAD 2.0 plausible_answers of impossible questions */
    int n_plausible;
    int is_impossible;    /* SQuAD 2.0 */
    int article;          /* index of the article (data[] entry) */
    int paragraph;        /* index of the paragraph, over the whole dataset */
    /* driftpilot's extra fields (absent in real SQuAD): */
    QaKind kind;
    const char *entity;    /* world entity, or NULL */
    const char *attribute; /* "owner", ..., "plus"/"minus", or NULL */
    int changed;           /* 1/0: the fact's value differs from t=0; -1 absent */
} QaItem;

typedef struct {
    QaItem *items;
    size_t n_items;
    size_t cap_;
    int n_articles;
    int n_paragraphs;
    int n_bad_spans;      /* answers whose answer_start/text do not match the context */
    char version[16];     /* "version" of the file read ("1.1", "v2.0"); "1.1" when built */
    void *pool_;          /* private: string storage */
} QaDataset;

/* Zero-initialises ds (a zeroed struct is also a valid empty dataset). */
void qa_dataset_init(QaDataset *ds);
/* Frees everything ds owns and zeroes it.  NULL-safe. */
void qa_dataset_free(QaDataset *ds);

/* Appends a copy of item (all strings copied into ds; id, title, context,
 * question may be NULL for "").  article/paragraph in item are ignored: a new
 * article starts when the title differs from the previous item's, a new
 * paragraph when the title or context differs.  DP_ERR_NOMEM on failure. */
DpStatus qa_dataset_add(QaDataset *ds, const QaItem *item, DpError *err);

/* Reads a SQuAD v1.1 or v2.0 file (v2 fields optional; driftpilot's extra
 * fields read when present).  A malformed file fails with DP_ERR_PARSE naming
 * the file, line and column; a wrong structure names the JSON path
 * ("data[3].paragraphs[0].qas: expected an array").  ds is initialised by
 * the call (like every function below that fills a dataset: pass a fresh
 * struct, earlier content is not freed); on failure it is left empty. */
DpStatus qa_squad_load(const char *path, QaDataset *ds, DpError *err);
/* The same from a buffer; name is used in messages. */
DpStatus qa_squad_load_buffer(const char *data, size_t len, const char *name, QaDataset *ds,
                              DpError *err);

/* Writes ds as SQuAD v1.1 JSON ("version": "1.1"), atomically: consecutive
 * items of one article/paragraph are grouped; is_impossible and
 * plausible_answers are written when set; the extra fields kind, entity,
 * attribute, changed when present. */
DpStatus qa_squad_save(const QaDataset *ds, const char *path, DpError *err);

/* Splits ds by article title: a seeded shuffle of the distinct titles puts
 * round(heldout_fraction * n_titles) of them (at least 1 when the fraction is
 * > 0 and there are >= 2 titles) into heldout, the rest into train, so no
 * article is in both.  Item order within each part is kept.  train and heldout
 * are initialised by the call. */
DpStatus qa_dataset_split_by_title(const QaDataset *ds, double heldout_fraction, uint64_t seed,
                                   QaDataset *train, QaDataset *heldout, DpError *err);

/* Splits ds by question: a seeded shuffle puts round(heldout_fraction * n)
 * questions into heldout, the rest into train (order kept).  For data whose
 * "articles" are not documents, e.g. the held-out part of a retrain window.
 * train and heldout are initialised by the call. */
DpStatus qa_dataset_split_random(const QaDataset *ds, double heldout_fraction, uint64_t seed,
                                 QaDataset *train, QaDataset *heldout, DpError *err);

/* Byte offset in context of the code-point offset char_offset, or -1 when it
 * is beyond the end.  (SQuAD offsets count code points; C strings count bytes.) */
long qa_utf8_byte_offset(const char *context, long char_offset);
/* Number of code points in s[0..n_bytes). */
long qa_utf8_count(const char *s, size_t n_bytes);

// ---- the drifting QA world ----

/* Attributes of a service.  The value sets: owner 20 teams, region 8,
 * version 90 (v1.0..v9.9), language 10, oncall 20 people. */
typedef enum {
    QA_ATTR_OWNER = 0,
    QA_ATTR_REGION,
    QA_ATTR_VERSION,
    QA_ATTR_LANGUAGE,
    QA_ATTR_ONCALL,
} QaAttr;
#define QA_N_ATTRS 5
#define QA_ATTR_MASK(a) (1u << (a))
/* The default: owner, region, version, language (4 attributes). */
#define QA_ATTRS_DEFAULT 0x0fu

const char *qa_attr_name(QaAttr a); /* "owner", "region", ... */
/* DP_OK and *out when name is an attribute name. */
DpStatus qa_attr_from_name(const char *name, QaAttr *out, DpError *err);

typedef enum {
    QA_DRIFT_NONE = 0,  /* nothing changes */
    QA_DRIFT_GRADUAL,   /* each fact changes at Poisson times, rate per hour */
    QA_DRIFT_SUDDEN,    /* at time T exactly round(fraction * n) of the t=0 facts change */
    QA_DRIFT_RECURRING, /* a fraction of facts alternate A/B: B in the second half of each period */
} QaDriftKind;

typedef struct {
    QaDriftKind kind;
    double at_s;       /* sudden: the time of the change (seconds) */
    double fraction;   /* sudden/recurring: share of facts affected */
    double rate_per_h; /* gradual: expected changes per fact per hour */
    double period_s;   /* recurring: full period (seconds) */
} QaDriftSchedule;

/* Traffic shares of the three kinds (normalised when used). */
typedef struct {
    double fact, comprehension, arithmetic;
} QaMix;

typedef enum {
    QA_PHRASING_TRAIN = 1,   /* the phrasings traffic uses (4 per attribute) */
    QA_PHRASING_HELDOUT = 2, /* never in traffic: generalisation tests (1 per attribute) */
    QA_PHRASING_ALL = 3,
} QaPhrasingSet;

typedef struct {
    uint64_t seed;
    int n_services;          /* services at t = 0 (default 100) */
    unsigned attributes;     /* QA_ATTR_MASK bits (default QA_ATTRS_DEFAULT) */
    QaDriftSchedule drift;   /* default none */
    double new_per_hour;     /* covariate drift: new services per hour after t=0 (default 0) */
    int max_services;        /* cap on services ever (default n_services + 200, <= 2900) */
    QaMix mix_start;         /* query mix at t = 0 */
    QaMix mix_end;           /* query mix at t = mix_period_s / 2 */
    double mix_period_s;     /* the mix oscillates start -> end -> start; 0: always start */
} QaWorldConfig;

/* Defaults: seed 1, 100 services, 4 attributes (400 facts: small enough for
 * the built-in model, see docs/qa.md), no drift, no new services, mix
 * 0.7/0.15/0.15 at t=0 moving to 0.5/0.25/0.25 and back over 24 h. */
void qa_world_config_default(QaWorldConfig *cfg);

/* Parses "none", "sudden:T[:FRACTION]" (default 0.3), "gradual:RATE[/h]",
 * "recurring:PERIOD[:FRACTION]" (default 0.3) into cfg->drift; T and PERIOD
 * are durations ("1h", "90m").  DP_ERR_PARSE naming the text on failure. */
DpStatus qa_world_schedule_parse(const char *text, QaWorldConfig *cfg, DpError *err);
/* Writes the schedule back in the form above. */
void qa_world_schedule_format(const QaDriftSchedule *s, char *buf, size_t cap);

typedef struct QaWorld QaWorld;

/* Validates cfg and builds the world.  DP_ERR_INVAL naming the field. */
DpStatus qa_world_create(const QaWorldConfig *cfg, QaWorld **out, DpError *err);
void qa_world_destroy(QaWorld *w); /* NULL-safe */
const QaWorldConfig *qa_world_config(const QaWorld *w);

/* Services ever (max_services); those that exist at time t (appearance is
 * monotone: services 0..n-1 exist at t). */
int qa_world_n_entities(const QaWorld *w);
int qa_world_n_entities_at(const QaWorld *w, double t);
/* "jade-93"; NULL when out of range. */
const char *qa_world_entity_name(const QaWorld *w, int entity);
/* Time at which entity appears (0 for the initial services). */
double qa_world_entity_birth(const QaWorld *w, int entity);

/* The true value of (entity, attr) at time t ("payments", "eu-west-1",
 * "v3.7", ...); NULL when the entity does not exist at t or the attribute is
 * not enabled.  Pure function of (seed, entity, attr, t). */
const char *qa_world_fact_value(const QaWorld *w, int entity, QaAttr attr, double t);
/* 1 when the value at t differs from the value at the entity's birth. */
int qa_world_fact_changed(const QaWorld *w, int entity, QaAttr attr, double t);
/* Share of the t=0 facts whose value at t differs from their t=0 value. */
double qa_world_changed_fraction(const QaWorld *w, double t);
/* The query mix at t (normalised to sum 1). */
QaMix qa_world_mix(const QaWorld *w, double t);

/* Number of phrasings in a set (same for every attribute). */
int qa_world_n_phrasings(QaPhrasingSet set);
/* Writes the question "Which team owns jade-93?" for phrasing index p of set
 * into buf (snprintf semantics; returns the length it needs). */
int qa_world_fact_question(const QaWorld *w, int entity, QaAttr attr, QaPhrasingSet set, int p,
                           char *buf, size_t cap);

/* One question as traffic draws it.  Fixed buffers: nothing to free. */
typedef struct {
    QaKind kind;
    char question[160];
    char context[512];    /* "" for facts and arithmetic */
    char answer[64];      /* the reference answer */
    int answer_start;     /* code-point offset in context; -1 when not in it */
    int entity;           /* facts: entity index; -1 otherwise */
    char entity_name[32]; /* facts and comprehension: the service asked about */
    char attribute[16];   /* facts/comprehension: attribute name; arithmetic: "plus"/"minus" */
    int changed;          /* facts: 1 when the value differs from the entity's birth value */
    int phrasing;         /* index of the phrasing within its set */
    int heldout_phrasing; /* 1 when drawn from the held-out set */
} QaWorldSample;

/* Draws one question at time t as traffic does: kind from the mix at t, a
 * service uniformly among those existing at t, an enabled attribute uniformly,
 * a training phrasing.  Deterministic given the rng state. */
void qa_world_sample(const QaWorld *w, double t, DpRng *rng, QaWorldSample *out);
/* One question of the given kind and phrasing set (for pretraining data and
 * held-out tests).  kind must be FACT, COMPREHENSION or ARITHMETIC. */
void qa_world_sample_kind(const QaWorld *w, double t, QaKind kind, QaPhrasingSet set, DpRng *rng,
                          QaWorldSample *out);

/* Appends a sample to ds with the given id (title: the entity for facts,
 * "comprehension", "arithmetic"). */
DpStatus qa_dataset_add_sample(QaDataset *ds, const QaWorldSample *s, const char *id,
                               DpError *err);

/* n traffic questions at time t (rng seeded from world seed, seed and t):
 * same (world, t, n, seed) -> identical dataset.  ds must be empty. */
DpStatus qa_world_generate(const QaWorld *w, double t, size_t n, uint64_t seed, QaDataset *ds,
                           DpError *err);
/* Every fact question at time t: each existing service x enabled attribute x
 * phrasing of set, in a fixed order (entity, attribute, phrasing).  The
 * pretraining and evaluation sets.  ds must be empty. */
DpStatus qa_world_all_facts(const QaWorld *w, double t, QaPhrasingSet set, QaDataset *ds,
                            DpError *err);

// ---- prompt format ----
/*
 * The one prompt format, for training and serving alike:
 *
 *     with a context:     "Context: {context}\nQ: {question}\nA:"
 *     without:            "Q: {question}\nA:"
 *     answer target:      " {answer}\n"
 *
 * The model continues the prompt with a space, the answer, and a newline; the
 * answer is the text up to the first newline, trimmed.  Newlines inside the
 * question (and the answer target) are replaced by spaces so they cannot end
 * the answer early; the context keeps its newlines (it comes before "Q:").
 * Training computes the loss on the answer target only.
 */

/* Writes the prompt into buf (snprintf semantics: always NUL-terminated when
 * cap > 0; returns the length it needs).  context may be NULL or "". */
size_t qa_prompt_format(const char *question, const char *context, char *buf, size_t cap);
/* Writes the answer target " {answer}\n" (snprintf semantics). */
size_t qa_answer_format(const char *answer, char *buf, size_t cap);
/* Extracts the answer from generated text (the continuation after "A:"): up
 * to the first newline, leading and trailing whitespace trimmed.  snprintf
 * semantics; returns the length of the extracted answer. */
size_t qa_answer_extract(const char *generated, char *out, size_t cap);

#endif
