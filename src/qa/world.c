/* The drifting QA world: driftpilot's built-in data source.
 *
 * A world is a set of internal services ("jade-93") with attributes (owner
 * team, region, version, language, on-call person).  Everything is a pure
 * function of (seed, entity, attribute, t): a fact's value at time t is
 * value(k), where k is the number of changes the drift schedule has applied to
 * that fact by t, and value(k) is derived from dp_hash_u64 of (seed, entity,
 * attribute, k) so that consecutive values always differ.  No sequential
 * random stream is involved, so the truth at t does not depend on which
 * questions were asked before, or in which order.
 *
 * Drift: concept drift through the schedule (none, gradual Poisson changes,
 * a sudden change of an exact fraction at T, recurring A/B seasons), covariate
 * drift through new services appearing at new_per_hour, and a query mix
 * (facts / comprehension / arithmetic) that oscillates over mix_period_s.
 *
 * The sizes are chosen for the built-in model (docs/qa.md): 100 services x 4
 * attributes = 400 facts, short questions, answers of one to three tokens. */
#include "qa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- vocabularies ----

static const char *const BASES[] = {
    "jade",   "orion",  "vega",    "atlas",   "nova",    "ember", "falcon", "aurora",
    "cobalt", "delta",  "echo",    "flint",   "granite", "harbor", "indigo", "juniper",
    "krypton", "lumen", "maple",   "nimbus",  "onyx",    "pulsar", "quartz", "raven",
    "sierra", "talon",  "umbra",   "vortex",  "willow",  "zephyr"};
#define N_BASES 30
#define N_NUMBERS 99 /* 1..99 */
#define N_NAMES (N_BASES * N_NUMBERS)
#define MAX_SERVICES_CAP 2900 /* leaves >= 70 names for comprehension contexts */

static const char *const TEAMS[] = {"payments", "search",   "ads",      "identity", "billing",
                                    "growth",   "infra",    "storage",  "mobile",   "web",
                                    "data",     "ml",       "security", "messaging", "checkout",
                                    "catalog",  "platform", "analytics", "support", "maps"};
static const char *const REGIONS[] = {"us-east-1",  "us-west-2", "eu-west-1",      "eu-central-1",
                                      "ap-south-1", "sa-east-1", "ap-northeast-1", "ca-central-1"};
static const char *const LANGUAGES[] = {"go",    "rust",   "java",       "python", "kotlin",
                                        "scala", "ruby",   "elixir",     "typescript", "swift"};
static const char *const PEOPLE[] = {"alice", "bob",    "carol",   "dave",  "erin",
                                     "frank", "grace",  "heidi",   "ivan",  "judy",
                                     "mallory", "nina", "oscar",   "peggy", "quinn",
                                     "rupert", "sybil", "trent",   "ursula", "victor"};
#define N_VERSIONS 90

static const char *const ATTR_NAMES[QA_N_ATTRS] = {"owner", "region", "version", "language", "oncall"};

/* Phrasings: 4 for training (what traffic uses), then 1 held out.  Every
 * template has exactly one %s, the service name. */
#define N_TRAIN_PHR 4
#define N_HELD_PHR 1
static const char *const PHRASINGS[QA_N_ATTRS][N_TRAIN_PHR + N_HELD_PHR] = {
    {"Which team owns %s?", "Who owns service %s?", "%s is owned by which team?",
     "What team owns %s?", "What team is responsible for %s?"},
    {"In which region does %s run?", "Where is %s deployed?", "%s runs in which region?",
     "What region is %s in?", "Which region hosts %s?"},
    {"What version of %s is deployed?", "Which version is %s running?", "%s is at which version?",
     "What version is %s on?", "What is the current version of %s?"},
    {"What language is %s written in?", "Which language is %s implemented in?",
     "%s is written in which language?", "What language does %s use?",
     "What programming language is %s built with?"},
    {"Who is on call for %s?", "Which person is on call for %s?", "%s is covered on call by whom?",
     "Who is the on-call for %s?", "Who carries the pager for %s?"},
};

/* Comprehension statements: (service, value), value last, then ".". */
static const char *const STATEMENTS[QA_N_ATTRS] = {
    "%s is owned by %s.", "%s runs in %s.", "%s is at version %s.", "%s is written in %s.",
    "The on-call person for %s is %s."};

static const char *const ARITH_PHR[2][2] = {
    {"What is %d plus %d?", "How much is %d plus %d?"},
    {"What is %d minus %d?", "How much is %d minus %d?"},
};

// ---- the world ----

struct QaWorld {
    QaWorldConfig cfg;
    int n_attr_on;
    QaAttr attrs_on[QA_N_ATTRS];
    char (*names)[24];      /* N_NAMES names in seeded order: [0, max) services, rest comprehension */
    double *birth;          /* max_services */
    unsigned char *flag;    /* max_services x QA_N_ATTRS: sudden/recurring membership */
    char versions[N_VERSIONS][6];
    const char *const *values[QA_N_ATTRS];
    int n_values[QA_N_ATTRS];
};

static uint64_t hash3(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = dp_hash_u64(seed ^ 0x5bd1e995u);
    h = dp_hash_u64(h ^ a);
    h = dp_hash_u64(h ^ (b * 0x9e3779b97f4a7c15ULL));
    return dp_hash_u64(h ^ (c * 0xc2b2ae3d27d4eb4fULL));
}

static double hash01(uint64_t h) { return (double)(h >> 11) * 0x1.0p-53; }

enum { SALT_VALUE = 1, SALT_GAP = 2, SALT_SUDDEN = 3, SALT_SEASON = 4, SALT_NAME = 5 };

const char *qa_attr_name(QaAttr a) {
    return (a >= 0 && a < QA_N_ATTRS) ? ATTR_NAMES[a] : "?";
}

DpStatus qa_attr_from_name(const char *name, QaAttr *out, DpError *err) {
    for (int a = 0; a < QA_N_ATTRS; a++)
        if (name && !strcmp(name, ATTR_NAMES[a])) {
            *out = (QaAttr)a;
            return DP_OK;
        }
    return dp_fail(err, DP_ERR_INVAL, "unknown attribute '%s' (owner, region, version, language, oncall)",
                   name ? name : "");
}

void qa_world_config_default(QaWorldConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = 1;
    cfg->n_services = 100;
    cfg->attributes = QA_ATTRS_DEFAULT;
    cfg->drift.kind = QA_DRIFT_NONE;
    cfg->drift.fraction = 0.3;
    cfg->new_per_hour = 0;
    cfg->max_services = 0; /* 0: n_services + 200 */
    cfg->mix_start = (QaMix){0.7, 0.15, 0.15};
    cfg->mix_end = (QaMix){0.5, 0.25, 0.25};
    cfg->mix_period_s = 24 * 3600.0;
}

DpStatus qa_world_schedule_parse(const char *text, QaWorldConfig *cfg, DpError *err) {
    QaDriftSchedule s = {0};
    s.fraction = 0.3;
    char buf[128];
    if (!text || strlen(text) >= sizeof buf)
        return dp_fail(err, DP_ERR_PARSE, "bad drift schedule '%s'", text ? text : "");
    strcpy(buf, text);
    char *parts[4] = {0};
    int n = 0;
    for (char *p = buf; p && n < 4;) {
        parts[n++] = p;
        char *c = strchr(p, ':');
        if (c) *c++ = 0;
        p = c;
    }
    const char *usage = "(none | sudden:T[:FRACTION] | gradual:RATE[/h] | recurring:PERIOD[:FRACTION])";
    DpError sub;
    char *end;
    if (!strcmp(parts[0], "none") && n == 1) {
        s.kind = QA_DRIFT_NONE;
    } else if (!strcmp(parts[0], "sudden") && (n == 2 || n == 3)) {
        s.kind = QA_DRIFT_SUDDEN;
        if (dp_parse_duration(parts[1], &s.at_s, &sub))
            return dp_fail(err, DP_ERR_PARSE, "drift schedule '%s': %s", text, sub.msg);
        if (n == 3) {
            s.fraction = strtod(parts[2], &end);
            if (*end || end == parts[2] || !(s.fraction >= 0 && s.fraction <= 1))
                return dp_fail(err, DP_ERR_PARSE, "drift schedule '%s': fraction must be in [0, 1]", text);
        }
    } else if (!strcmp(parts[0], "gradual") && n == 2) {
        s.kind = QA_DRIFT_GRADUAL;
        s.rate_per_h = strtod(parts[1], &end);
        if (end == parts[1] || (*end && strcmp(end, "/h")) || !(s.rate_per_h >= 0 && s.rate_per_h <= 100))
            return dp_fail(err, DP_ERR_PARSE, "drift schedule '%s': rate must be a number per hour in [0, 100]", text);
    } else if (!strcmp(parts[0], "recurring") && (n == 2 || n == 3)) {
        s.kind = QA_DRIFT_RECURRING;
        if (dp_parse_duration(parts[1], &s.period_s, &sub))
            return dp_fail(err, DP_ERR_PARSE, "drift schedule '%s': %s", text, sub.msg);
        if (!(s.period_s > 0)) return dp_fail(err, DP_ERR_PARSE, "drift schedule '%s': period must be > 0", text);
        if (n == 3) {
            s.fraction = strtod(parts[2], &end);
            if (*end || end == parts[2] || !(s.fraction >= 0 && s.fraction <= 1))
                return dp_fail(err, DP_ERR_PARSE, "drift schedule '%s': fraction must be in [0, 1]", text);
        }
    } else {
        return dp_fail(err, DP_ERR_PARSE, "bad drift schedule '%s' %s", text, usage);
    }
    cfg->drift = s;
    return DP_OK;
}

void qa_world_schedule_format(const QaDriftSchedule *s, char *buf, size_t cap) {
    switch (s->kind) {
    case QA_DRIFT_SUDDEN: snprintf(buf, cap, "sudden:%gs:%g", s->at_s, s->fraction); break;
    case QA_DRIFT_GRADUAL: snprintf(buf, cap, "gradual:%g/h", s->rate_per_h); break;
    case QA_DRIFT_RECURRING: snprintf(buf, cap, "recurring:%gs:%g", s->period_s, s->fraction); break;
    default: snprintf(buf, cap, "none"); break;
    }
}

typedef struct {
    uint64_t key;
    int idx;
} Ranked;

static int cmp_ranked(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->idx - y->idx;
}

/* Marks exactly round(fraction * n) of the t=0 facts, the ones with the
 * smallest hash under salt, so the affected share is exact, not binomial. */
static DpStatus mark_fraction(QaWorld *w, double fraction, int salt, DpError *err) {
    int n_facts = w->cfg.n_services * w->n_attr_on;
    Ranked *r = malloc((size_t)(n_facts ? n_facts : 1) * sizeof *r);
    if (!r) return dp_fail(err, DP_ERR_NOMEM, "world: out of memory");
    for (int e = 0; e < w->cfg.n_services; e++)
        for (int j = 0; j < w->n_attr_on; j++) {
            int i = e * w->n_attr_on + j;
            r[i].key = hash3(w->cfg.seed, (uint64_t)e, (uint64_t)w->attrs_on[j], (uint64_t)salt);
            r[i].idx = e * QA_N_ATTRS + (int)w->attrs_on[j];
        }
    qsort(r, (size_t)n_facts, sizeof *r, cmp_ranked);
    int k = (int)floor(fraction * n_facts + 0.5);
    for (int i = 0; i < k && i < n_facts; i++) w->flag[r[i].idx] = 1;
    free(r);
    return DP_OK;
}

DpStatus qa_world_create(const QaWorldConfig *cfg_in, QaWorld **out, DpError *err) {
    *out = NULL;
    QaWorldConfig cfg = *cfg_in;
    if (cfg.max_services == 0) {
        cfg.max_services = cfg.n_services + (cfg.new_per_hour > 0 ? 200 : 0);
        if (cfg.max_services > MAX_SERVICES_CAP) cfg.max_services = MAX_SERVICES_CAP;
    }
    if (cfg.n_services < 1 || cfg.n_services > MAX_SERVICES_CAP)
        return dp_fail(err, DP_ERR_INVAL, "world: n_services %d not in [1, %d]", cfg.n_services, MAX_SERVICES_CAP);
    if (cfg.max_services < cfg.n_services || cfg.max_services > MAX_SERVICES_CAP)
        return dp_fail(err, DP_ERR_INVAL, "world: max_services %d not in [n_services, %d]", cfg.max_services,
                       MAX_SERVICES_CAP);
    if ((cfg.attributes & ((1u << QA_N_ATTRS) - 1)) == 0 || (cfg.attributes >> QA_N_ATTRS))
        return dp_fail(err, DP_ERR_INVAL, "world: attributes mask 0x%x selects no valid attribute", cfg.attributes);
    if (!(cfg.new_per_hour >= 0)) return dp_fail(err, DP_ERR_INVAL, "world: new_per_hour must be >= 0");
    if (!(cfg.drift.fraction >= 0 && cfg.drift.fraction <= 1))
        return dp_fail(err, DP_ERR_INVAL, "world: drift fraction %g not in [0, 1]", cfg.drift.fraction);
    if (cfg.drift.kind == QA_DRIFT_RECURRING && !(cfg.drift.period_s > 0))
        return dp_fail(err, DP_ERR_INVAL, "world: recurring drift needs a period > 0");
    if (cfg.drift.kind == QA_DRIFT_GRADUAL && !(cfg.drift.rate_per_h >= 0 && cfg.drift.rate_per_h <= 100))
        return dp_fail(err, DP_ERR_INVAL, "world: gradual rate %g not in [0, 100] per hour", cfg.drift.rate_per_h);
    QaMix ms = cfg.mix_start, me = cfg.mix_end;
    if (!(ms.fact >= 0 && ms.comprehension >= 0 && ms.arithmetic >= 0 &&
          ms.fact + ms.comprehension + ms.arithmetic > 0) ||
        !(me.fact >= 0 && me.comprehension >= 0 && me.arithmetic >= 0 &&
          me.fact + me.comprehension + me.arithmetic > 0))
        return dp_fail(err, DP_ERR_INVAL, "world: mix shares must be >= 0 and not all 0");

    DpStatus st = DP_OK;
    Ranked *order = NULL;
    QaWorld *w = calloc(1, sizeof *w);
    if (!w) return dp_fail(err, DP_ERR_NOMEM, "world: out of memory");
    w->cfg = cfg;
    for (int a = 0; a < QA_N_ATTRS; a++)
        if (cfg.attributes & QA_ATTR_MASK(a)) w->attrs_on[w->n_attr_on++] = (QaAttr)a;
    for (int v = 0; v < N_VERSIONS; v++) snprintf(w->versions[v], sizeof w->versions[v], "v%d.%d", 1 + v / 10, v % 10);
    w->values[QA_ATTR_OWNER] = TEAMS;
    w->n_values[QA_ATTR_OWNER] = 20;
    w->values[QA_ATTR_REGION] = REGIONS;
    w->n_values[QA_ATTR_REGION] = 8;
    w->values[QA_ATTR_VERSION] = NULL; /* w->versions */
    w->n_values[QA_ATTR_VERSION] = N_VERSIONS;
    w->values[QA_ATTR_LANGUAGE] = LANGUAGES;
    w->n_values[QA_ATTR_LANGUAGE] = 10;
    w->values[QA_ATTR_ONCALL] = PEOPLE;
    w->n_values[QA_ATTR_ONCALL] = 20;

    w->names = calloc(N_NAMES, sizeof *w->names);
    w->birth = calloc((size_t)cfg.max_services, sizeof *w->birth);
    w->flag = calloc((size_t)cfg.max_services * QA_N_ATTRS, 1);
    order = malloc(N_NAMES * sizeof *order);
    if (!w->names || !w->birth || !w->flag || !order) {
        st = dp_fail(err, DP_ERR_NOMEM, "world: out of memory");
        goto out;
    }
    /* Names in a seeded order: base-number pairs sorted by hash. */
    for (int i = 0; i < N_NAMES; i++) {
        order[i].key = hash3(cfg.seed, (uint64_t)i, 0, SALT_NAME);
        order[i].idx = i;
    }
    qsort(order, N_NAMES, sizeof *order, cmp_ranked);
    for (int i = 0; i < N_NAMES; i++) {
        int id = order[i].idx;
        snprintf(w->names[i], sizeof w->names[i], "%s-%d", BASES[id / N_NUMBERS], 1 + id % N_NUMBERS);
    }
    for (int e = 0; e < cfg.max_services; e++)
        w->birth[e] = e < cfg.n_services ? 0.0
                      : cfg.new_per_hour > 0 ? (double)(e - cfg.n_services + 1) * 3600.0 / cfg.new_per_hour
                                             : INFINITY;
    if (cfg.drift.kind == QA_DRIFT_SUDDEN) st = mark_fraction(w, cfg.drift.fraction, SALT_SUDDEN, err);
    if (cfg.drift.kind == QA_DRIFT_RECURRING) st = mark_fraction(w, cfg.drift.fraction, SALT_SEASON, err);
out:
    free(order);
    if (st) {
        qa_world_destroy(w);
        return st;
    }
    *out = w;
    return DP_OK;
}

void qa_world_destroy(QaWorld *w) {
    if (!w) return;
    free(w->names);
    free(w->birth);
    free(w->flag);
    free(w);
}

const QaWorldConfig *qa_world_config(const QaWorld *w) { return &w->cfg; }

int qa_world_n_entities(const QaWorld *w) { return w->cfg.max_services; }

int qa_world_n_entities_at(const QaWorld *w, double t) {
    /* Births are increasing, so the services existing at t are a prefix. */
    int n = w->cfg.n_services;
    if (w->cfg.new_per_hour <= 0 || !(t > 0)) return n;
    double guess = floor(t / 3600.0 * w->cfg.new_per_hour);
    if (guess > (double)w->cfg.max_services) guess = (double)w->cfg.max_services;
    n += (int)guess;
    if (n > w->cfg.max_services) n = w->cfg.max_services;
    while (n > w->cfg.n_services && w->birth[n - 1] > t) n--;
    while (n < w->cfg.max_services && w->birth[n] <= t) n++;
    return n;
}

const char *qa_world_entity_name(const QaWorld *w, int entity) {
    return (entity >= 0 && entity < w->cfg.max_services) ? w->names[entity] : NULL;
}

double qa_world_entity_birth(const QaWorld *w, int entity) {
    return (entity >= 0 && entity < w->cfg.max_services) ? w->birth[entity] : INFINITY;
}

// ---- facts ----

/* Number of changes applied to (entity, attr) by time t. */
static int fact_epoch(const QaWorld *w, int e, QaAttr a, double t) {
    const QaDriftSchedule *d = &w->cfg.drift;
    double birth = w->birth[e];
    switch (d->kind) {
    case QA_DRIFT_SUDDEN:
        return (w->flag[e * QA_N_ATTRS + a] && t >= d->at_s) ? 1 : 0;
    case QA_DRIFT_RECURRING: {
        if (!w->flag[e * QA_N_ATTRS + a] || t < 0) return 0;
        double phase = fmod(t, d->period_s);
        return phase >= d->period_s / 2 ? 1 : 0;
    }
    case QA_DRIFT_GRADUAL: {
        if (d->rate_per_h <= 0) return 0;
        /* Poisson process from birth: exponential gaps from per-(fact, j) hashes. */
        double at = birth;
        int k = 0;
        for (;;) {
            double u = hash01(hash3(w->cfg.seed, (uint64_t)e, (uint64_t)a, (uint64_t)(SALT_GAP + 16 * (k + 1))));
            at += -log(1.0 - u) / d->rate_per_h * 3600.0;
            if (at > t || k > 1000000) break;
            k++;
        }
        return k;
    }
    default: return 0;
    }
}

static int value_index(const QaWorld *w, int e, QaAttr a, int k) {
    int n = w->n_values[a];
    int v = (int)(hash3(w->cfg.seed, (uint64_t)e, (uint64_t)a, SALT_VALUE) % (uint64_t)n);
    for (int j = 1; j <= k; j++) {
        uint64_t h = hash3(w->cfg.seed ^ 0xabcdefULL, (uint64_t)e, (uint64_t)a, (uint64_t)(SALT_VALUE + 16 * j));
        v = (v + 1 + (int)(h % (uint64_t)(n - 1))) % n;
    }
    return v;
}

static const char *value_name(const QaWorld *w, QaAttr a, int v) {
    return a == QA_ATTR_VERSION ? w->versions[v] : w->values[a][v];
}

static int attr_on(const QaWorld *w, QaAttr a) {
    return a >= 0 && a < QA_N_ATTRS && (w->cfg.attributes & QA_ATTR_MASK(a));
}

const char *qa_world_fact_value(const QaWorld *w, int entity, QaAttr attr, double t) {
    if (entity < 0 || entity >= w->cfg.max_services || !attr_on(w, attr)) return NULL;
    if (!(t >= w->birth[entity])) return NULL;
    return value_name(w, attr, value_index(w, entity, attr, fact_epoch(w, entity, attr, t)));
}

int qa_world_fact_changed(const QaWorld *w, int entity, QaAttr attr, double t) {
    if (entity < 0 || entity >= w->cfg.max_services || !attr_on(w, attr)) return 0;
    if (!(t >= w->birth[entity])) return 0;
    int k = fact_epoch(w, entity, attr, t);
    return k > 0 && value_index(w, entity, attr, k) != value_index(w, entity, attr, 0);
}

double qa_world_changed_fraction(const QaWorld *w, double t) {
    int changed = 0, n = 0;
    for (int e = 0; e < w->cfg.n_services; e++)
        for (int j = 0; j < w->n_attr_on; j++) {
            changed += qa_world_fact_changed(w, e, w->attrs_on[j], t);
            n++;
        }
    return n ? (double)changed / n : 0.0;
}

QaMix qa_world_mix(const QaWorld *w, double t) {
    double x = 0;
    if (w->cfg.mix_period_s > 0) x = 0.5 - 0.5 * cos(2.0 * M_PI * t / w->cfg.mix_period_s);
    const QaMix *a = &w->cfg.mix_start, *b = &w->cfg.mix_end;
    QaMix m = {a->fact + x * (b->fact - a->fact), a->comprehension + x * (b->comprehension - a->comprehension),
               a->arithmetic + x * (b->arithmetic - a->arithmetic)};
    double s = m.fact + m.comprehension + m.arithmetic;
    m.fact /= s;
    m.comprehension /= s;
    m.arithmetic /= s;
    return m;
}

int qa_world_n_phrasings(QaPhrasingSet set) {
    return (set & QA_PHRASING_TRAIN ? N_TRAIN_PHR : 0) + (set & QA_PHRASING_HELDOUT ? N_HELD_PHR : 0);
}

/* Phrasing p of set -> index in PHRASINGS[a] (train phrasings come first). */
static int phrasing_slot(QaPhrasingSet set, int p) {
    return (set & QA_PHRASING_TRAIN) ? p : N_TRAIN_PHR + p;
}

int qa_world_fact_question(const QaWorld *w, int entity, QaAttr attr, QaPhrasingSet set, int p,
                           char *buf, size_t cap) {
    const char *name = qa_world_entity_name(w, entity);
    if (!name || attr < 0 || attr >= QA_N_ATTRS || p < 0 || p >= qa_world_n_phrasings(set)) {
        if (cap) buf[0] = 0;
        return 0;
    }
    return snprintf(buf, cap, PHRASINGS[attr][phrasing_slot(set, p)], name);
}

// ---- sampling ----

static void sample_fact(const QaWorld *w, double t, QaPhrasingSet set, DpRng *rng, QaWorldSample *s) {
    int n = qa_world_n_entities_at(w, t);
    int e = (int)dp_rng_below(rng, (uint64_t)n);
    QaAttr a = w->attrs_on[dp_rng_below(rng, (uint64_t)w->n_attr_on)];
    int p = (int)dp_rng_below(rng, (uint64_t)qa_world_n_phrasings(set));
    s->kind = QA_KIND_FACT;
    s->entity = e;
    snprintf(s->entity_name, sizeof s->entity_name, "%s", w->names[e]);
    snprintf(s->attribute, sizeof s->attribute, "%s", ATTR_NAMES[a]);
    qa_world_fact_question(w, e, a, set, p, s->question, sizeof s->question);
    const char *v = qa_world_fact_value(w, e, a, t < w->birth[e] ? w->birth[e] : t);
    snprintf(s->answer, sizeof s->answer, "%s", v ? v : "");
    s->answer_start = -1;
    s->changed = qa_world_fact_changed(w, e, a, t);
    s->phrasing = p;
    s->heldout_phrasing = phrasing_slot(set, p) >= N_TRAIN_PHR;
}

static void sample_comprehension(const QaWorld *w, QaPhrasingSet set, DpRng *rng, QaWorldSample *s) {
    /* A made-up service (names never used by the world) with 2-3 random
     * attribute values: the answer can only come from reading the context. */
    int pool = N_NAMES - w->cfg.max_services;
    const char *name = w->names[w->cfg.max_services + (int)dp_rng_below(rng, (uint64_t)pool)];
    int order[QA_N_ATTRS];
    for (int j = 0; j < w->n_attr_on; j++) order[j] = (int)w->attrs_on[j];
    dp_rng_shuffle_int(rng, order, (size_t)w->n_attr_on);
    int n_stat = w->n_attr_on < 2 ? w->n_attr_on : 2 + (int)dp_rng_below(rng, w->n_attr_on >= 3 ? 2 : 1);
    int ask = (int)dp_rng_below(rng, (uint64_t)n_stat);
    size_t len = 0;
    s->context[0] = 0;
    for (int i = 0; i < n_stat; i++) {
        QaAttr a = (QaAttr)order[i];
        const char *v = value_name(w, a, (int)dp_rng_below(rng, (uint64_t)w->n_values[a]));
        if (i) s->context[len++] = ' ';
        int m = snprintf(s->context + len, sizeof s->context - len, STATEMENTS[a], name, v);
        len += (size_t)m;
        if (i == ask) {
            snprintf(s->answer, sizeof s->answer, "%s", v);
            s->answer_start = (int)(len - 1 - strlen(v)); /* ASCII: bytes == code points */
            snprintf(s->attribute, sizeof s->attribute, "%s", ATTR_NAMES[a]);
        }
    }
    QaAttr qa = (QaAttr)order[ask];
    int p = (int)dp_rng_below(rng, (uint64_t)qa_world_n_phrasings(set));
    snprintf(s->question, sizeof s->question, PHRASINGS[qa][phrasing_slot(set, p)], name);
    s->kind = QA_KIND_COMPREHENSION;
    s->entity = -1;
    snprintf(s->entity_name, sizeof s->entity_name, "%s", name);
    s->changed = 0;
    s->phrasing = p;
    s->heldout_phrasing = phrasing_slot(set, p) >= N_TRAIN_PHR;
}

static void sample_arithmetic(QaPhrasingSet set, DpRng *rng, QaWorldSample *s) {
    int a = 10 + (int)dp_rng_below(rng, 90), b = 10 + (int)dp_rng_below(rng, 90);
    int minus = (int)dp_rng_below(rng, 2);
    if (minus && a < b) {
        int tmp = a;
        a = b;
        b = tmp;
    }
    int held = (set == QA_PHRASING_HELDOUT) || (set == QA_PHRASING_ALL && dp_rng_below(rng, 2));
    snprintf(s->question, sizeof s->question, ARITH_PHR[minus][held], a, b);
    snprintf(s->answer, sizeof s->answer, "%d", minus ? a - b : a + b);
    snprintf(s->attribute, sizeof s->attribute, "%s", minus ? "minus" : "plus");
    s->kind = QA_KIND_ARITHMETIC;
    s->context[0] = 0;
    s->answer_start = -1;
    s->entity = -1;
    s->entity_name[0] = 0;
    s->changed = 0;
    s->phrasing = 0;
    s->heldout_phrasing = held;
}

void qa_world_sample_kind(const QaWorld *w, double t, QaKind kind, QaPhrasingSet set, DpRng *rng,
                          QaWorldSample *out) {
    memset(out, 0, sizeof *out);
    if (set != QA_PHRASING_TRAIN && set != QA_PHRASING_HELDOUT) set = QA_PHRASING_ALL;
    switch (kind) {
    case QA_KIND_COMPREHENSION: sample_comprehension(w, set, rng, out); break;
    case QA_KIND_ARITHMETIC: sample_arithmetic(set, rng, out); break;
    default: sample_fact(w, t, set, rng, out); break;
    }
}

void qa_world_sample(const QaWorld *w, double t, DpRng *rng, QaWorldSample *out) {
    QaMix m = qa_world_mix(w, t);
    double u = dp_rng_uniform(rng);
    QaKind k = u < m.fact ? QA_KIND_FACT : u < m.fact + m.comprehension ? QA_KIND_COMPREHENSION
                                                                          : QA_KIND_ARITHMETIC;
    qa_world_sample_kind(w, t, k, QA_PHRASING_TRAIN, rng, out);
}

// ---- datasets ----

DpStatus qa_dataset_add_sample(QaDataset *ds, const QaWorldSample *s, const char *id, DpError *err) {
    QaAnswer ans = {s->answer, s->answer_start};
    QaItem it = {0};
    it.id = id;
    it.title = s->kind == QA_KIND_FACT ? s->entity_name : qa_kind_name(s->kind);
    it.context = s->context;
    it.question = s->question;
    it.answers = &ans;
    it.n_answers = 1;
    it.kind = s->kind;
    it.entity = s->entity_name[0] ? s->entity_name : NULL;
    it.attribute = s->attribute[0] ? s->attribute : NULL;
    it.changed = s->kind == QA_KIND_FACT ? s->changed : -1;
    return qa_dataset_add(ds, &it, err);
}

static uint64_t time_bits(double t) {
    uint64_t b;
    memcpy(&b, &t, sizeof b);
    return b;
}

DpStatus qa_world_generate(const QaWorld *w, double t, size_t n, uint64_t seed, QaDataset *ds,
                           DpError *err) {
    qa_dataset_init(ds);
    DpRng rng;
    dp_rng_seed(&rng, hash3(w->cfg.seed, seed, time_bits(t), 77));
    for (size_t i = 0; i < n; i++) {
        QaWorldSample s;
        qa_world_sample(w, t, &rng, &s);
        char id[96];
        snprintf(id, sizeof id, "w%llu-s%llu-t%.0f-%06zu", (unsigned long long)w->cfg.seed,
                 (unsigned long long)seed, t, i);
        DpStatus st = qa_dataset_add_sample(ds, &s, id, err);
        if (st) {
            qa_dataset_free(ds);
            return st;
        }
    }
    return DP_OK;
}

DpStatus qa_world_all_facts(const QaWorld *w, double t, QaPhrasingSet set, QaDataset *ds, DpError *err) {
    qa_dataset_init(ds);
    int n = qa_world_n_entities_at(w, t);
    for (int e = 0; e < n; e++)
        for (int j = 0; j < w->n_attr_on; j++) {
            QaAttr a = w->attrs_on[j];
            for (int slot = 0; slot < N_TRAIN_PHR + N_HELD_PHR; slot++) {
                int held = slot >= N_TRAIN_PHR;
                if (held ? !(set & QA_PHRASING_HELDOUT) : !(set & QA_PHRASING_TRAIN)) continue;
                QaWorldSample s;
                memset(&s, 0, sizeof s);
                s.kind = QA_KIND_FACT;
                s.entity = e;
                snprintf(s.entity_name, sizeof s.entity_name, "%s", w->names[e]);
                snprintf(s.attribute, sizeof s.attribute, "%s", ATTR_NAMES[a]);
                snprintf(s.question, sizeof s.question, PHRASINGS[a][slot], w->names[e]);
                snprintf(s.answer, sizeof s.answer, "%s", qa_world_fact_value(w, e, a, t));
                s.answer_start = -1;
                s.changed = qa_world_fact_changed(w, e, a, t);
                char id[96];
                snprintf(id, sizeof id, "fact-%s-%s-%c%d", w->names[e], ATTR_NAMES[a], held ? 'h' : 't',
                         held ? slot - N_TRAIN_PHR : slot);
                DpStatus st = qa_dataset_add_sample(ds, &s, id, err);
                if (st) {
                    qa_dataset_free(ds);
                    return st;
                }
            }
        }
    return DP_OK;
}
