/*
 * The metric registry and the text exposition writer.
 *
 * Values live in 64-bit atomics (a double's bits), so request threads update
 * them without locks while a scrape renders.  Adding a double is a
 * compare-and-swap loop; histogram buckets are plain atomic counters, kept
 * per bucket (not cumulative) so an observation touches one counter, and
 * summed into the cumulative `le` series at render time.
 *
 * Children are found through a small open-addressing hash table per family
 * (keyed by the label values joined with 0xff, a byte that cannot appear in
 * UTF-8), guarded by the family's mutex.  Children are never removed, so a
 * Metric pointer handed out stays valid until the registry is destroyed.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct Metric {
    MetricFamily *family;
    char **label_values;          /* family->n_labels strings */
    uint64_t hash;
    _Atomic uint64_t value_bits;  /* counter/gauge value, histogram sum */
    _Atomic uint64_t *buckets;    /* histogram: n_buckets + 1 (last is +Inf) */
};

struct MetricFamily {
    char *name;
    char *help;
    MetricType type;
    int n_labels;
    char **label_names;
    double *bounds;               /* histogram upper bounds, without +Inf */
    int n_bounds;
    pthread_mutex_t mu;           /* guards children and slots */
    Metric **children;
    size_t n_children, cap_children;
    size_t *slots;                /* index + 1 into children, 0 = empty */
    size_t n_slots;               /* power of two */
};

typedef struct {
    MetricsCollectFn fn;
    void *user;
} Collector;

struct MetricsRegistry {
    pthread_mutex_t mu;           /* guards the family list */
    MetricFamily **families;
    size_t n_families, cap_families;
    pthread_mutex_t collect_mu;   /* guards collectors and serialises their runs */
    Collector *collectors;
    size_t n_collectors, cap_collectors;
};

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10};

const char *metric_type_str(MetricType t) {
    switch (t) {
    case METRIC_COUNTER: return "counter";
    case METRIC_GAUGE: return "gauge";
    case METRIC_HISTOGRAM: return "histogram";
    case METRIC_SUMMARY: return "summary";
    case METRIC_UNTYPED: return "untyped";
    }
    return "untyped";
}

// ---- atomic doubles ----

static double bits_to_double(uint64_t b) {
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double v) {
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    uint64_t nw;
    do {
        nw = double_to_bits(bits_to_double(old) + v);
    } while (!atomic_compare_exchange_weak_explicit(p, &old, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
}

// ---- families ----

static void family_free(MetricFamily *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_children; i++) {
        Metric *m = f->children[i];
        for (int j = 0; j < f->n_labels; j++) free(m->label_values[j]);
        free(m->label_values);
        free((void *)m->buckets);
        free(m);
    }
    free(f->children);
    free(f->slots);
    for (int j = 0; j < f->n_labels; j++) free(f->label_names[j]);
    free(f->label_names);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

MetricsRegistry *metrics_registry_create(void) {
    MetricsRegistry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->collect_mu, NULL);
    return r;
}

void metrics_registry_destroy(MetricsRegistry *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_families; i++) family_free(r->families[i]);
    free(r->families);
    free(r->collectors);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->collect_mu);
    free(r);
}

static int valid_ident(const char *s) {
    if (!s || !*s) return 0;
    if (!(*s == '_' || (*s >= 'a' && *s <= 'z'))) return 0;
    for (const char *p = s + 1; *p; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) return 0;
    return 1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static DpStatus check_names(MetricType type, const char *name, int n_labels,
                            const char *const *label_names, DpError *err) {
    if (!valid_ident(name))
        return dp_fail(err, DP_ERR_INVAL,
                       "metric name \"%s\": must match [a-z_][a-z0-9_]* (no colons, no upper case)",
                       name ? name : "(null)");
    if (type == METRIC_COUNTER && !ends_with(name, "_total"))
        return dp_fail(err, DP_ERR_INVAL, "counter \"%s\": counter names end in _total", name);
    if (type != METRIC_COUNTER && ends_with(name, "_total"))
        return dp_fail(err, DP_ERR_INVAL, "%s \"%s\": only counters end in _total",
                       metric_type_str(type), name);
    if (type == METRIC_HISTOGRAM &&
        (ends_with(name, "_bucket") || ends_with(name, "_sum") || ends_with(name, "_count")))
        return dp_fail(err, DP_ERR_INVAL,
                       "histogram \"%s\": _bucket/_sum/_count are added by the histogram", name);
    if (n_labels < 0 || n_labels > 32 || (n_labels > 0 && !label_names))
        return dp_fail(err, DP_ERR_INVAL, "metric \"%s\": bad label count %d", name, n_labels);
    for (int i = 0; i < n_labels; i++) {
        const char *l = label_names[i];
        if (!valid_ident(l))
            return dp_fail(err, DP_ERR_INVAL,
                           "metric \"%s\": label name \"%s\" must match [a-z_][a-z0-9_]*", name,
                           l ? l : "(null)");
        if (l[0] == '_' && l[1] == '_')
            return dp_fail(err, DP_ERR_INVAL,
                           "metric \"%s\": label name \"%s\": names starting with __ are reserved",
                           name, l);
        if (type == METRIC_HISTOGRAM && strcmp(l, "le") == 0)
            return dp_fail(err, DP_ERR_INVAL,
                           "histogram \"%s\": label \"le\" is reserved for buckets", name);
        for (int j = 0; j < i; j++)
            if (strcmp(label_names[j], l) == 0)
                return dp_fail(err, DP_ERR_INVAL, "metric \"%s\": label \"%s\" given twice", name,
                               l);
    }
    return DP_OK;
}

/* The sample names a family writes, to refuse families whose series would
 * collide (a histogram "x" and a gauge "x_count"). */
static int names_collide(const MetricFamily *a, MetricType tb, const char *nb) {
    static const char *const hs[] = {"_bucket", "_sum", "_count"};
    if (strcmp(a->name, nb) == 0) return 1;
    size_t la = strlen(a->name), lb = strlen(nb);
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(hs[i]);
        if (a->type == METRIC_HISTOGRAM && lb == la + k && strncmp(nb, a->name, la) == 0 &&
            strcmp(nb + la, hs[i]) == 0)
            return 1;
        if (tb == METRIC_HISTOGRAM && la == lb + k && strncmp(a->name, nb, lb) == 0 &&
            strcmp(a->name + lb, hs[i]) == 0)
            return 1;
    }
    return 0;
}

static Metric *child_new(MetricFamily *f, const char *const *values, uint64_t hash) {
    Metric *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->family = f;
    m->hash = hash;
    m->label_values = calloc((size_t)f->n_labels + 1, sizeof(char *));
    if (!m->label_values) goto fail;
    for (int i = 0; i < f->n_labels; i++) {
        m->label_values[i] = dp_strdup(values[i]);
        if (!m->label_values[i]) goto fail;
    }
    if (f->type == METRIC_HISTOGRAM) {
        m->buckets = calloc((size_t)f->n_bounds + 1, sizeof(_Atomic uint64_t));
        if (!m->buckets) goto fail;
    }
    atomic_init(&m->value_bits, double_to_bits(0.0));
    return m;
fail:
    if (m->label_values)
        for (int i = 0; i < f->n_labels; i++) free(m->label_values[i]);
    free(m->label_values);
    free(m);
    return NULL;
}

static uint64_t hash_values(int n, const char *const *values) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (int i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
        }
        h ^= 0xff;
        h *= 1099511628211ULL;
    }
    return h;
}

static int child_matches(const MetricFamily *f, const Metric *m, const char *const *values) {
    for (int i = 0; i < f->n_labels; i++)
        if (strcmp(m->label_values[i], values[i]) != 0) return 0;
    return 1;
}

/* Inserts m's index into the slot table; the caller holds f->mu and has
 * made room. */
static void slot_insert(MetricFamily *f, size_t index) {
    size_t mask = f->n_slots - 1;
    size_t s = (size_t)f->children[index]->hash & mask;
    while (f->slots[s]) s = (s + 1) & mask;
    f->slots[s] = index + 1;
}

static int slots_grow(MetricFamily *f) {
    size_t n = f->n_slots ? f->n_slots * 2 : 16;
    size_t *slots = calloc(n, sizeof *slots);
    if (!slots) return -1;
    free(f->slots);
    f->slots = slots;
    f->n_slots = n;
    for (size_t i = 0; i < f->n_children; i++) slot_insert(f, i);
    return 0;
}

Metric *metrics_child(MetricFamily *f, const char *const *values) {
    if (!f) return NULL;
    if (f->n_labels > 0) {
        if (!values) return NULL;
        for (int i = 0; i < f->n_labels; i++)
            if (!values[i]) return NULL;
    }
    uint64_t h = hash_values(f->n_labels, values);
    Metric *found = NULL;
    pthread_mutex_lock(&f->mu);
    if (f->n_slots) {
        size_t mask = f->n_slots - 1;
        for (size_t s = (size_t)h & mask; f->slots[s]; s = (s + 1) & mask) {
            Metric *m = f->children[f->slots[s] - 1];
            if (m->hash == h && child_matches(f, m, values)) {
                found = m;
                break;
            }
        }
    }
    if (!found) {
        /* Keep the table at most half full so probes stay short. */
        if ((f->n_children + 1) * 2 > f->n_slots && slots_grow(f) != 0) goto out;
        if (f->n_children == f->cap_children) {
            size_t cap = f->cap_children ? f->cap_children * 2 : 4;
            Metric **c = dp_realloc_array(f->children, cap, sizeof *c);
            if (!c) goto out;
            f->children = c;
            f->cap_children = cap;
        }
        Metric *m = child_new(f, values, h);
        if (!m) goto out;
        f->children[f->n_children] = m;
        slot_insert(f, f->n_children);
        f->n_children++;
        found = m;
    }
out:
    pthread_mutex_unlock(&f->mu);
    return found;
}

Metric *metrics_with(MetricFamily *f, ...) {
    if (!f) return NULL;
    const char *values[32];
    va_list ap;
    va_start(ap, f);
    for (int i = 0; i < f->n_labels; i++) values[i] = va_arg(ap, const char *);
    va_end(ap);
    return metrics_child(f, values);
}

static DpStatus family_new(MetricsRegistry *r, MetricType type, const char *name,
                           const char *help, int n_labels, const char *const *label_names,
                           const double *buckets, int n_buckets, MetricFamily **out,
                           DpError *err) {
    if (!r) return dp_fail(err, DP_ERR_INVAL, "metrics: registry is NULL");
    DpStatus st = check_names(type, name, n_labels, label_names, err);
    if (st != DP_OK) return st;
    if (type == METRIC_HISTOGRAM) {
        if (!buckets) {
            buckets = default_buckets;
            n_buckets = (int)(sizeof default_buckets / sizeof default_buckets[0]);
        }
        if (n_buckets > 0 && isinf(buckets[n_buckets - 1]) && buckets[n_buckets - 1] > 0)
            n_buckets--;
        if (n_buckets < 1 || n_buckets > 1000)
            return dp_fail(err, DP_ERR_INVAL, "histogram \"%s\": needs 1..1000 finite buckets",
                           name);
        for (int i = 0; i < n_buckets; i++) {
            if (!isfinite(buckets[i]))
                return dp_fail(err, DP_ERR_INVAL, "histogram \"%s\": bucket %d is not finite",
                               name, i);
            if (i > 0 && !(buckets[i] > buckets[i - 1]))
                return dp_fail(err, DP_ERR_INVAL,
                               "histogram \"%s\": buckets must increase (bucket %d: %g after %g)",
                               name, i, buckets[i], buckets[i - 1]);
        }
    }
    MetricFamily *f = calloc(1, sizeof *f);
    if (!f) return dp_fail(err, DP_ERR_NOMEM, "metrics: out of memory");
    pthread_mutex_init(&f->mu, NULL);
    f->type = type;
    f->name = dp_strdup(name);
    f->help = dp_strdup(help ? help : "");
    f->n_labels = n_labels;
    f->label_names = calloc((size_t)n_labels + 1, sizeof(char *));
    if (!f->name || !f->help || !f->label_names) goto nomem;
    for (int i = 0; i < n_labels; i++) {
        f->label_names[i] = dp_strdup(label_names[i]);
        if (!f->label_names[i]) {
            f->n_labels = i;
            goto nomem;
        }
    }
    if (type == METRIC_HISTOGRAM) {
        f->bounds = dp_malloc((size_t)n_buckets * sizeof(double));
        if (!f->bounds) goto nomem;
        memcpy(f->bounds, buckets, (size_t)n_buckets * sizeof(double));
        f->n_bounds = n_buckets;
    }
    if (n_labels == 0 && !metrics_child(f, NULL)) goto nomem;

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_families; i++) {
        if (names_collide(r->families[i], type, name)) {
            pthread_mutex_unlock(&r->mu);
            st = dp_fail(err, DP_ERR_INVAL, "metric \"%s\": clashes with existing metric \"%s\"",
                         name, r->families[i]->name);
            family_free(f);
            return st;
        }
    }
    if (r->n_families == r->cap_families) {
        size_t cap = r->cap_families ? r->cap_families * 2 : 16;
        MetricFamily **fs = dp_realloc_array(r->families, cap, sizeof *fs);
        if (!fs) {
            pthread_mutex_unlock(&r->mu);
            goto nomem;
        }
        r->families = fs;
        r->cap_families = cap;
    }
    r->families[r->n_families++] = f;
    pthread_mutex_unlock(&r->mu);
    *out = f;
    return DP_OK;
nomem:
    family_free(f);
    return dp_fail(err, DP_ERR_NOMEM, "metric \"%s\": out of memory", name);
}

DpStatus metrics_counter_new(MetricsRegistry *r, const char *name, const char *help, int n_labels,
                             const char *const *label_names, MetricFamily **out, DpError *err) {
    return family_new(r, METRIC_COUNTER, name, help, n_labels, label_names, NULL, 0, out, err);
}

DpStatus metrics_gauge_new(MetricsRegistry *r, const char *name, const char *help, int n_labels,
                           const char *const *label_names, MetricFamily **out, DpError *err) {
    return family_new(r, METRIC_GAUGE, name, help, n_labels, label_names, NULL, 0, out, err);
}

DpStatus metrics_histogram_new(MetricsRegistry *r, const char *name, const char *help,
                               int n_labels, const char *const *label_names,
                               const double *buckets, int n_buckets, MetricFamily **out,
                               DpError *err) {
    return family_new(r, METRIC_HISTOGRAM, name, help, n_labels, label_names, buckets, n_buckets,
                      out, err);
}

MetricFamily *metrics_find(MetricsRegistry *r, const char *name) {
    if (!r || !name) return NULL;
    MetricFamily *f = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n_families && !f; i++)
        if (strcmp(r->families[i]->name, name) == 0) f = r->families[i];
    pthread_mutex_unlock(&r->mu);
    return f;
}

const char *metric_family_name(const MetricFamily *f) { return f ? f->name : NULL; }
MetricType metric_family_type(const MetricFamily *f) { return f ? f->type : METRIC_UNTYPED; }

DpStatus metrics_register_collector(MetricsRegistry *r, MetricsCollectFn fn, void *user,
                                    DpError *err) {
    if (!r || !fn) return dp_fail(err, DP_ERR_INVAL, "metrics: NULL registry or collector");
    pthread_mutex_lock(&r->collect_mu);
    if (r->n_collectors == r->cap_collectors) {
        size_t cap = r->cap_collectors ? r->cap_collectors * 2 : 4;
        Collector *c = dp_realloc_array(r->collectors, cap, sizeof *c);
        if (!c) {
            pthread_mutex_unlock(&r->collect_mu);
            return dp_fail(err, DP_ERR_NOMEM, "metrics: out of memory");
        }
        r->collectors = c;
        r->cap_collectors = cap;
    }
    r->collectors[r->n_collectors].fn = fn;
    r->collectors[r->n_collectors].user = user;
    r->n_collectors++;
    pthread_mutex_unlock(&r->collect_mu);
    return DP_OK;
}

// ---- updates ----

void metric_inc(Metric *m, double v) {
    if (!m || !(v >= 0)) return;
    atomic_add_double(&m->value_bits, v);
}

void metric_add(Metric *m, double v) {
    if (!m) return;
    atomic_add_double(&m->value_bits, v);
}

void metric_set(Metric *m, double v) {
    if (!m) return;
    atomic_store_explicit(&m->value_bits, double_to_bits(v), memory_order_relaxed);
}

void metric_observe(Metric *m, double v) {
    if (!m || !m->buckets) return;
    const MetricFamily *f = m->family;
    /* Binary search for the first bound >= v; NaN lands in +Inf, as in the
     * Go client, because every comparison with NaN is false. */
    int lo = 0, hi = f->n_bounds;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v <= f->bounds[mid]) hi = mid;
        else lo = mid + 1;
    }
    atomic_fetch_add_explicit(&m->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&m->value_bits, v);
}

double metric_value(const Metric *m) {
    if (!m) return 0;
    if (m->buckets) {
        uint64_t n = 0;
        for (int i = 0; i <= m->family->n_bounds; i++)
            n += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        return (double)n;
    }
    return bits_to_double(atomic_load_explicit(&m->value_bits, memory_order_relaxed));
}

double metric_hist_sum(const Metric *m) {
    if (!m || !m->buckets) return 0;
    return bits_to_double(atomic_load_explicit(&m->value_bits, memory_order_relaxed));
}

// ---- rendering ----

char *metrics_format_double(double v, char out[32]) {
    if (isnan(v)) {
        strcpy(out, "NaN");
    } else if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        /* Integers print plainly ("1200", not "1.2e+03"); -0 prints as 0. */
        snprintf(out, 32, "%lld", (long long)v);
    } else {
        /* Shortest precision that reads back to the same double. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, 32, "%.*g", prec, v);
            if (strtod(out, NULL) == v) break;
        }
    }
    return out;
}

static DpStatus put(DpBuf *b, const char *s) { return dp_buf_append(b, s, strlen(s)); }

/* HELP text escapes backslash and newline; label values also the quote. */
static DpStatus put_escaped(DpBuf *b, const char *s, int quote) {
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *rep = NULL;
        if (*p == '\\') rep = "\\\\";
        else if (*p == '\n') rep = "\\n";
        else if (quote && *p == '"') rep = "\\\"";
        else if (*p != '\0') continue;
        if (dp_buf_append(b, run, (size_t)(p - run)) != DP_OK) return DP_ERR_NOMEM;
        if (!rep) return DP_OK;
        if (put(b, rep) != DP_OK) return DP_ERR_NOMEM;
        run = p + 1;
    }
}

/* name{l1="v1",...[,le="x"]} value\n */
static DpStatus put_sample(DpBuf *b, const MetricFamily *f, const Metric *m, const char *suffix,
                           const char *le, double v) {
    char num[32];
    if (put(b, f->name) || put(b, suffix)) return DP_ERR_NOMEM;
    if (f->n_labels > 0 || le) {
        if (put(b, "{")) return DP_ERR_NOMEM;
        for (int i = 0; i < f->n_labels; i++) {
            if ((i && put(b, ",")) || put(b, f->label_names[i]) || put(b, "=\"") ||
                put_escaped(b, m->label_values[i], 1) || put(b, "\""))
                return DP_ERR_NOMEM;
        }
        if (le && ((f->n_labels && put(b, ",")) || put(b, "le=\"") || put(b, le) || put(b, "\"")))
            return DP_ERR_NOMEM;
        if (put(b, "}")) return DP_ERR_NOMEM;
    }
    if (put(b, " ") || put(b, metrics_format_double(v, num)) || put(b, "\n")) return DP_ERR_NOMEM;
    return DP_OK;
}

static DpStatus render_family(DpBuf *b, MetricFamily *f) {
    DpStatus st = DP_OK;
    if (put(b, "# HELP ") || put(b, f->name) || put(b, " ") || put_escaped(b, f->help, 0) ||
        put(b, "\n# TYPE ") || put(b, f->name) || put(b, " ") ||
        put(b, metric_type_str(f->type)) || put(b, "\n"))
        return DP_ERR_NOMEM;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_children && st == DP_OK; i++) {
        Metric *m = f->children[i];
        if (f->type != METRIC_HISTOGRAM) {
            st = put_sample(b, f, m, "", NULL, metric_value(m));
            continue;
        }
        /* Read every bucket once, so _count and the +Inf bucket agree. */
        uint64_t cum = 0;
        char le[32];
        for (int k = 0; k <= f->n_bounds && st == DP_OK; k++) {
            cum += atomic_load_explicit(&m->buckets[k], memory_order_relaxed);
            metrics_format_double(k < f->n_bounds ? f->bounds[k] : INFINITY, le);
            st = put_sample(b, f, m, "_bucket", le, (double)cum);
        }
        if (st == DP_OK) st = put_sample(b, f, m, "_sum", NULL, metric_hist_sum(m));
        if (st == DP_OK) st = put_sample(b, f, m, "_count", NULL, (double)cum);
    }
    pthread_mutex_unlock(&f->mu);
    return st;
}

DpStatus metrics_render(MetricsRegistry *r, DpBuf *out) {
    if (!r || !out) return DP_ERR_INVAL;
    pthread_mutex_lock(&r->collect_mu);
    for (size_t i = 0; i < r->n_collectors; i++) r->collectors[i].fn(r, r->collectors[i].user);
    pthread_mutex_unlock(&r->collect_mu);

    /* Snapshot the family list so new families can be added during a render. */
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_families;
    MetricFamily **fs = dp_malloc(n * sizeof *fs);
    if (fs) memcpy(fs, r->families, n * sizeof *fs);
    pthread_mutex_unlock(&r->mu);
    if (!fs) return DP_ERR_NOMEM;
    DpStatus st = DP_OK;
    for (size_t i = 0; i < n && st == DP_OK; i++) st = render_family(out, fs[i]);
    free(fs);
    return st;
}
