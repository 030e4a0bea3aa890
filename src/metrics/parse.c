/*
 * Parser for the Prometheus text exposition format 0.0.4.
 *
 * Line by line: blank lines are skipped; "# HELP name text" and
 * "# TYPE name type" are recorded; other '#' lines are comments; everything
 * else is a sample `name[{label="value",...}] value [timestamp_ms]`.
 * Label values unescape \\, \" and \n (any other escape is an error, so a
 * mangled page is noticed rather than half-read).  Values are floats,
 * including NaN, +Inf and -Inf.  Each sample is tied to its family (the TYPE
 * name, with _bucket/_sum/_count stripped for histograms and summaries) so
 * the controller can ask for "all series of this histogram".
 */
#include "metrics.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *p, *end;
    int line;
} Cursor;

static void skip_blank(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int is_name_start(char ch) {
    return ch == '_' || ch == ':' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int is_name_char(char ch) { return is_name_start(ch) || (ch >= '0' && ch <= '9'); }

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Reads a metric or label name at the cursor into a new string. */
static char *take_name(Cursor *c, int allow_colon) {
    const char *s = c->p;
    if (c->p >= c->end || !is_name_start(*c->p) || (!allow_colon && *c->p == ':')) return NULL;
    c->p++;
    while (c->p < c->end && is_name_char(*c->p) && (allow_colon || *c->p != ':')) c->p++;
    return dup_n(s, (size_t)(c->p - s));
}

/* Unescapes up to the closing quote (label values) or the end of the line
 * (HELP text, where a quote is plain).  Returns NULL with *why set. */
static char *take_escaped(Cursor *c, int quoted, const char **why) {
    DpBuf b = DP_BUF_INIT;
    *why = NULL;
    while (c->p < c->end && *c->p != '\n') {
        char ch = *c->p;
        if (quoted && ch == '"') break;
        if (ch == '\\') {
            if (c->p + 1 >= c->end) {
                *why = "backslash at end of line";
                goto fail;
            }
            char e = c->p[1];
            if (e == '\\') ch = '\\';
            else if (e == 'n') ch = '\n';
            else if (e == '"' && quoted) ch = '"';
            else if (!quoted) {
                /* HELP: an unknown escape is kept as written. */
                if (dp_buf_append(&b, c->p, 2) != DP_OK) goto nomem;
                c->p += 2;
                continue;
            } else {
                *why = "bad escape in label value (only \\\\, \\\" and \\n are allowed)";
                goto fail;
            }
            c->p += 2;
        } else {
            c->p++;
        }
        if (dp_buf_append(&b, &ch, 1) != DP_OK) goto nomem;
    }
    if (quoted) {
        if (c->p >= c->end || *c->p != '"') {
            *why = "unterminated label value";
            goto fail;
        }
        c->p++;
    }
    if (!b.data && dp_buf_append(&b, "", 0) != DP_OK) goto nomem;
    return b.data;
nomem:
    *why = "out of memory";
fail:
    dp_buf_free(&b);
    return NULL;
}

static int parse_float(const char *s, size_t n, double *out) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    /* The format's spellings; strtod also takes "infinity", "nan(...)", hex. */
    if (!strcmp(tmp, "+Inf") || !strcmp(tmp, "Inf")) {
        *out = INFINITY;
        return 0;
    }
    if (!strcmp(tmp, "-Inf")) {
        *out = -INFINITY;
        return 0;
    }
    if (!strcmp(tmp, "NaN")) {
        *out = NAN;
        return 0;
    }
    char *e;
    errno = 0;
    double v = strtod(tmp, &e);
    if (*e != '\0' || e == tmp) return -1;
    *out = v;
    return 0;
}

static MetricType type_from(const char *s, size_t n) {
    static const struct {
        const char *name;
        MetricType t;
    } types[] = {{"counter", METRIC_COUNTER},   {"gauge", METRIC_GAUGE},
                 {"histogram", METRIC_HISTOGRAM}, {"summary", METRIC_SUMMARY},
                 {"untyped", METRIC_UNTYPED}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i].name) == n && strncmp(types[i].name, s, n) == 0) return types[i].t;
    return (MetricType)-1;
}

static struct MetricsParsedFamily *family_get(MetricsParsed *p, const char *name, size_t n) {
    for (size_t i = 0; i < p->n_families; i++)
        if (strlen(p->families[i].name) == n && strncmp(p->families[i].name, name, n) == 0)
            return &p->families[i];
    return NULL;
}

static struct MetricsParsedFamily *family_add(MetricsParsed *p, const char *name) {
    if (p->n_families == p->cap_families) {
        size_t cap = p->cap_families ? p->cap_families * 2 : 16;
        void *f = dp_realloc_array(p->families, cap, sizeof *p->families);
        if (!f) return NULL;
        p->families = f;
        p->cap_families = cap;
    }
    struct MetricsParsedFamily *f = &p->families[p->n_families];
    memset(f, 0, sizeof *f);
    f->name = dp_strdup(name);
    if (!f->name) return NULL;
    f->type = METRIC_UNTYPED;
    p->n_families++;
    return f;
}

/* "# HELP name text" or "# TYPE name type"; other comments are ignored. */
static DpStatus parse_comment(Cursor *c, MetricsParsed *out, DpError *err) {
    c->p++; /* '#' */
    skip_blank(c);
    int is_help = 0, is_type = 0;
    if (c->end - c->p >= 4 && !strncmp(c->p, "HELP", 4)) is_help = 1;
    if (c->end - c->p >= 4 && !strncmp(c->p, "TYPE", 4)) is_type = 1;
    if ((!is_help && !is_type) || (c->p + 4 < c->end && c->p[4] != ' ' && c->p[4] != '\t')) {
        while (c->p < c->end && *c->p != '\n') c->p++;
        return DP_OK;
    }
    c->p += 4;
    skip_blank(c);
    char *name = take_name(c, 1);
    if (!name) return dp_fail(err, DP_ERR_PARSE, "line %d: expected a metric name after %s",
                              c->line, is_help ? "HELP" : "TYPE");
    struct MetricsParsedFamily *f = family_get(out, name, strlen(name));
    if (!f) f = family_add(out, name);
    free(name);
    if (!f) return dp_fail(err, DP_ERR_NOMEM, "line %d: out of memory", c->line);
    skip_blank(c);
    if (is_help) {
        const char *why;
        char *help = take_escaped(c, 0, &why);
        if (!help) return dp_fail(err, DP_ERR_PARSE, "line %d: HELP: %s", c->line, why);
        if (f->help) {
            free(help);
            return dp_fail(err, DP_ERR_PARSE, "line %d: second HELP for %s", c->line, f->name);
        }
        f->help = help;
        return DP_OK;
    }
    const char *s = c->p;
    while (c->p < c->end && *c->p != '\n' && *c->p != ' ' && *c->p != '\t' && *c->p != '\r')
        c->p++;
    MetricType t = type_from(s, (size_t)(c->p - s));
    if ((int)t < 0)
        return dp_fail(err, DP_ERR_PARSE, "line %d: unknown metric type \"%.*s\"", c->line,
                       (int)(c->p - s), s);
    for (size_t i = 0; i < out->n_samples; i++)
        if (!strcmp(out->samples[i].family, f->name))
            return dp_fail(err, DP_ERR_PARSE, "line %d: TYPE for %s after its samples", c->line,
                           f->name);
    f->type = t;
    skip_blank(c);
    if (c->p < c->end && *c->p != '\n' && *c->p != '\r')
        return dp_fail(err, DP_ERR_PARSE, "line %d: text after the TYPE", c->line);
    return DP_OK;
}

static void sample_free(MetricSample *s) {
    free(s->name);
    free(s->family);
    for (int i = 0; i < s->n_labels; i++) {
        free(s->label_names[i]);
        free(s->label_values[i]);
    }
    free(s->label_names);
    free(s->label_values);
    memset(s, 0, sizeof *s);
}

/* Resolves the family and type of a sample name from the TYPE lines seen. */
static DpStatus resolve_family(MetricsParsed *out, MetricSample *s) {
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    const char *fam = s->name;
    size_t fam_len = strlen(s->name);
    MetricType t = METRIC_UNTYPED;
    struct MetricsParsedFamily *f = family_get(out, s->name, fam_len);
    if (f) {
        t = f->type;
    } else {
        for (int i = 0; i < 3; i++) {
            size_t k = strlen(suffixes[i]);
            if (fam_len > k && !strcmp(s->name + fam_len - k, suffixes[i])) {
                f = family_get(out, s->name, fam_len - k);
                if (f && (f->type == METRIC_HISTOGRAM ||
                          (f->type == METRIC_SUMMARY && i > 0))) {
                    fam_len -= k;
                    t = f->type;
                    break;
                }
            }
        }
    }
    s->type = t;
    s->family = dup_n(fam, fam_len);
    return s->family ? DP_OK : DP_ERR_NOMEM;
}

static DpStatus parse_sample(Cursor *c, MetricsParsed *out, DpError *err) {
    MetricSample s;
    memset(&s, 0, sizeof s);
    DpStatus st = DP_OK;
    int cap = 0;
    s.name = take_name(c, 1);
    if (!s.name) {
        st = dp_fail(err, DP_ERR_PARSE, "line %d: expected a metric name, got '%c'", c->line,
                     *c->p);
        goto fail;
    }
    const char *after_name = c->p;
    skip_blank(c);
    if (c->p >= c->end || *c->p != '{') c->p = after_name; /* the blank separates the value */
    if (c->p < c->end && *c->p == '{') {
        c->p++;
        for (;;) {
            skip_blank(c);
            if (c->p < c->end && *c->p == '}') {
                c->p++;
                break;
            }
            char *ln = take_name(c, 0);
            if (!ln) {
                st = dp_fail(err, DP_ERR_PARSE, "line %d: expected a label name or '}'", c->line);
                goto fail;
            }
            for (int i = 0; i < s.n_labels; i++)
                if (!strcmp(s.label_names[i], ln)) {
                    st = dp_fail(err, DP_ERR_PARSE, "line %d: label %s given twice", c->line, ln);
                    free(ln);
                    goto fail;
                }
            if (s.n_labels == cap) {
                cap = cap ? cap * 2 : 4;
                char **a = dp_realloc_array(s.label_names, (size_t)cap, sizeof *a);
                if (a) s.label_names = a;
                char **b = a ? dp_realloc_array(s.label_values, (size_t)cap, sizeof *b) : NULL;
                if (b) s.label_values = b;
                if (!a || !b) {
                    free(ln);
                    st = dp_fail(err, DP_ERR_NOMEM, "line %d: out of memory", c->line);
                    goto fail;
                }
            }
            s.label_names[s.n_labels] = ln;
            s.label_values[s.n_labels] = NULL;
            s.n_labels++;
            skip_blank(c);
            if (c->p >= c->end || *c->p != '=') {
                st = dp_fail(err, DP_ERR_PARSE, "line %d: expected '=' after label name %s",
                             c->line, ln);
                goto fail;
            }
            c->p++;
            skip_blank(c);
            if (c->p >= c->end || *c->p != '"') {
                st = dp_fail(err, DP_ERR_PARSE, "line %d: expected '\"' to open the value of %s",
                             c->line, ln);
                goto fail;
            }
            c->p++;
            const char *why;
            char *v = take_escaped(c, 1, &why);
            if (!v) {
                st = dp_fail(err, DP_ERR_PARSE, "line %d: label %s: %s", c->line, ln, why);
                goto fail;
            }
            s.label_values[s.n_labels - 1] = v;
            skip_blank(c);
            if (c->p < c->end && *c->p == ',') {
                c->p++;
                continue;
            }
            if (c->p < c->end && *c->p == '}') {
                c->p++;
                break;
            }
            st = dp_fail(err, DP_ERR_PARSE, "line %d: expected ',' or '}' after label %s",
                         c->line, ln);
            goto fail;
        }
    }
    if (c->p >= c->end || (*c->p != ' ' && *c->p != '\t')) {
        st = dp_fail(err, DP_ERR_PARSE, "line %d: expected a space and a value after %s", c->line,
                     s.name);
        goto fail;
    }
    skip_blank(c);
    const char *v0 = c->p;
    while (c->p < c->end && !isspace((unsigned char)*c->p)) c->p++;
    if (parse_float(v0, (size_t)(c->p - v0), &s.value) != 0) {
        st = dp_fail(err, DP_ERR_PARSE, "line %d: bad value \"%.*s\" for %s", c->line,
                     (int)(c->p - v0 > 40 ? 40 : c->p - v0), v0, s.name);
        goto fail;
    }
    skip_blank(c);
    if (c->p < c->end && *c->p != '\n' && *c->p != '\r') {
        const char *t0 = c->p;
        while (c->p < c->end && !isspace((unsigned char)*c->p)) c->p++;
        char tmp[32];
        size_t n = (size_t)(c->p - t0);
        char *e = NULL;
        if (n > 0 && n < sizeof tmp) {
            memcpy(tmp, t0, n);
            tmp[n] = '\0';
            errno = 0;
            s.timestamp_ms = strtoll(tmp, &e, 10);
        }
        if (!e || *e != '\0' || errno == ERANGE) {
            st = dp_fail(err, DP_ERR_PARSE, "line %d: bad timestamp \"%.*s\"", c->line,
                         (int)(n > 30 ? 30 : n), t0);
            goto fail;
        }
        s.has_timestamp = 1;
        skip_blank(c);
        if (c->p < c->end && *c->p != '\n' && *c->p != '\r') {
            st = dp_fail(err, DP_ERR_PARSE, "line %d: text after the timestamp", c->line);
            goto fail;
        }
    }
    if (resolve_family(out, &s) != DP_OK) {
        st = dp_fail(err, DP_ERR_NOMEM, "line %d: out of memory", c->line);
        goto fail;
    }
    if (out->n_samples == out->cap_samples) {
        size_t ncap = out->cap_samples ? out->cap_samples * 2 : 64;
        MetricSample *a = dp_realloc_array(out->samples, ncap, sizeof *a);
        if (!a) {
            st = dp_fail(err, DP_ERR_NOMEM, "line %d: out of memory", c->line);
            goto fail;
        }
        out->samples = a;
        out->cap_samples = ncap;
    }
    out->samples[out->n_samples++] = s;
    return DP_OK;
fail:
    sample_free(&s);
    return st;
}

DpStatus metrics_parse(const char *text, size_t len, MetricsParsed *out, DpError *err) {
    Cursor c = {text, text + len, 1};
    while (c.p < c.end) {
        skip_blank(&c);
        if (c.p < c.end && *c.p != '\n' && *c.p != '\r') {
            DpStatus st = (*c.p == '#') ? parse_comment(&c, out, err) : parse_sample(&c, out, err);
            if (st != DP_OK) return st;
        }
        if (c.p < c.end && *c.p == '\r') c.p++;
        if (c.p < c.end) {
            if (*c.p != '\n')
                return dp_fail(err, DP_ERR_PARSE, "line %d: unexpected '%c'", c.line, *c.p);
            c.p++;
            c.line++;
        }
    }
    return DP_OK;
}

void metrics_parsed_free(MetricsParsed *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_samples; i++) sample_free(&p->samples[i]);
    free(p->samples);
    for (size_t i = 0; i < p->n_families; i++) {
        free(p->families[i].name);
        free(p->families[i].help);
    }
    free(p->families);
    memset(p, 0, sizeof *p);
}

const char *metric_sample_label(const MetricSample *s, const char *name) {
    if (!s || !name) return NULL;
    for (int i = 0; i < s->n_labels; i++)
        if (!strcmp(s->label_names[i], name)) return s->label_values[i];
    return NULL;
}

const MetricSample *metrics_parsed_find(const MetricsParsed *p, const char *name,
                                        const char *const *label_kv, int n_pairs) {
    if (!p || !name) return NULL;
    for (size_t i = 0; i < p->n_samples; i++) {
        const MetricSample *s = &p->samples[i];
        if (strcmp(s->name, name) != 0) continue;
        int ok = 1;
        for (int k = 0; k < n_pairs && ok; k++) {
            const char *v = metric_sample_label(s, label_kv[2 * k]);
            ok = v && !strcmp(v, label_kv[2 * k + 1]);
        }
        if (ok) return s;
    }
    return NULL;
}
