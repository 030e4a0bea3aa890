/* The driftpilot config file: a small strict TOML reader and the schema that
 * maps it onto DeployConfig.
 *
 * The reader accepts the subset of TOML that the config needs: [table],
 * [[array-of-tables]], bare keys, "basic" and 'literal' strings, integers and
 * floats, booleans, arrays of scalars (which may span lines), and comments.
 * Anything else (inline tables, dotted keys, multi-line strings, dates) is an
 * error rather than being guessed at.  It first builds a small document
 * (tables of key/values, each with its line) and then a table-driven schema
 * pass checks every key, so a typo is reported with file, line and key
 * instead of being silently ignored. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "deploy_impl.h"

// ---- helpers shared by the part ----

int deploy_copy(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) return 0;
    memcpy(dst, src, n + 1);
    return 1;
}

int deploy_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 40) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-')) return 0;
    }
    return s[0] != '-' && s[n - 1] != '-';
}

DpStatus deploy_parse_cpu_set(const char *text, cpu_set_t *set, const char *what, DpError *err) {
    CPU_ZERO(set);
    const char *p = text;
    int any = 0;
    while (*p) {
        char *e;
        errno = 0;
        long a = strtol(p, &e, 10);
        if (e == p || errno || a < 0 || a >= CPU_SETSIZE) goto bad;
        long b = a;
        p = e;
        if (*p == '-') {
            p++;
            b = strtol(p, &e, 10);
            if (e == p || errno || b < a || b >= CPU_SETSIZE) goto bad;
            p = e;
        }
        for (long i = a; i <= b; i++) CPU_SET((int)i, set);
        any = 1;
        if (*p == ',') {
            p++;
            if (!*p) goto bad;
        } else if (*p) {
            goto bad;
        }
    }
    if (!any) goto bad;
    return DP_OK;
bad:
    return dp_fail(err, DP_ERR_INVAL, "%s: expected a CPU list such as \"0-1,3\", got \"%s\"", what,
                   text);
}

const char *deploy_exec_kind_str(DeployExecKind k) {
    switch (k) {
    case DEPLOY_EXEC_LOCAL: return "local";
    case DEPLOY_EXEC_SSH: return "ssh";
    case DEPLOY_EXEC_KUBERNETES: return "kubernetes";
    }
    return "?";
}

// ---- the TOML document ----

typedef enum { TV_STR, TV_NUM, TV_BOOL, TV_ARR } TvType;

typedef struct TomlVal {
    TvType type;
    char *s;               /* TV_STR */
    double num;            /* TV_NUM */
    int is_int;
    int b;                 /* TV_BOOL */
    struct TomlVal *items; /* TV_ARR */
    int n_items;
    char raw[48];          /* how it was written (shortened), for messages */
} TomlVal;

typedef struct {
    char key[64];
    TomlVal v;
    int line;
} TomlKv;

typedef struct {
    char name[64];    /* "" for the root table */
    int index;        /* element index for [[arrays]], -1 for [tables] */
    int line;
    TomlKv *kv;
    int n_kv, cap_kv;
} TomlTable;

typedef struct {
    TomlTable *t;
    int n, cap;
} TomlDoc;

typedef struct {
    const char *p;
    int line;
    const char *fname;
    DpError *err;
} TomlParser;

static void val_free(TomlVal *v) {
    free(v->s);
    for (int i = 0; i < v->n_items; i++) val_free(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof *v);
}

static void doc_free(TomlDoc *d) {
    for (int i = 0; i < d->n; i++) {
        for (int j = 0; j < d->t[i].n_kv; j++) val_free(&d->t[i].kv[j].v);
        free(d->t[i].kv);
    }
    free(d->t);
    memset(d, 0, sizeof *d);
}

static DpStatus perr(TomlParser *ps, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return dp_fail(ps->err, DP_ERR_PARSE, "%s:%d: %s", ps->fname, ps->line, msg);
}

/* Skips spaces, tabs and a comment, not newlines. */
static void skip_ws(TomlParser *ps) {
    for (;;) {
        while (*ps->p == ' ' || *ps->p == '\t') ps->p++;
        if (*ps->p == '#') {
            while (*ps->p && *ps->p != '\n') ps->p++;
            continue;
        }
        return;
    }
}

/* Skips spaces, comments and newlines (counting lines). */
static void skip_ws_nl(TomlParser *ps) {
    for (;;) {
        skip_ws(ps);
        if (*ps->p == '\r' && ps->p[1] == '\n') ps->p++;
        if (*ps->p == '\n') {
            ps->p++;
            ps->line++;
            continue;
        }
        return;
    }
}

/* After a header or key/value: only a comment may follow on the line. */
static DpStatus end_of_line(TomlParser *ps) {
    skip_ws(ps);
    if (*ps->p == '\r' && ps->p[1] == '\n') ps->p++;
    if (*ps->p == '\n') {
        ps->p++;
        ps->line++;
        return DP_OK;
    }
    if (!*ps->p) return DP_OK;
    char got[24];
    snprintf(got, sizeof got, "%.20s", ps->p);
    char *nl = strchr(got, '\n');
    if (nl) *nl = 0;
    return perr(ps, "unexpected text after the value: \"%s\"", got);
}

static int bare_char(char c) {
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

static DpStatus read_bare_key(TomlParser *ps, char *out, size_t cap) {
    size_t n = 0;
    while (bare_char(*ps->p)) {
        if (n + 1 >= cap) return perr(ps, "key too long%s", NULL);
        out[n++] = *ps->p++;
    }
    out[n] = 0;
    if (n == 0) {
        if (*ps->p == '"' || *ps->p == '\'') return perr(ps, "quoted keys are not supported%s", NULL);
        return perr(ps, "expected a key%s", NULL);
    }
    if (*ps->p == '.') return perr(ps, "dotted keys are not supported (\"%s.\")", out);
    return DP_OK;
}

static void utf8_put(DpBuf *b, unsigned long cp) {
    char u[4];
    dp_buf_append(b, u, (size_t)dp_utf8_encode((uint32_t)cp, u));
}

static DpStatus read_string(TomlParser *ps, TomlVal *v) {
    char q = *ps->p;
    DpBuf b = DP_BUF_INIT;
    if (ps->p[1] == q && ps->p[2] == q) return perr(ps, "multi-line strings are not supported%s", NULL);
    ps->p++;
    for (;;) {
        char c = *ps->p;
        if (!c || c == '\n') {
            dp_buf_free(&b);
            return perr(ps, "unterminated string%s", NULL);
        }
        ps->p++;
        if (c == q) break;
        if (q == '"' && c == '\\') {
            char e = *ps->p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case 'u':
            case 'U': {
                int nd = e == 'u' ? 4 : 8;
                unsigned long cp = 0;
                for (int i = 0; i < nd; i++) {
                    if (!isxdigit((unsigned char)ps->p[i])) {
                        dp_buf_free(&b);
                        return perr(ps, "bad \\u escape in string%s", NULL);
                    }
                    char h[2] = {ps->p[i], 0};
                    cp = cp * 16 + strtoul(h, NULL, 16);
                }
                ps->p += nd;
                if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                    dp_buf_free(&b);
                    return perr(ps, "bad \\u escape in string%s", NULL);
                }
                utf8_put(&b, cp);
                continue;
            }
            default: {
                char s[2] = {e, 0};
                dp_buf_free(&b);
                return perr(ps, "unknown escape \\%s in string", s);
            }
            }
        }
        if ((unsigned char)c < 0x20 && c != '\t') {
            dp_buf_free(&b);
            return perr(ps, "control character in string%s", NULL);
        }
        if (dp_buf_append(&b, &c, 1) != DP_OK) {
            dp_buf_free(&b);
            return dp_fail(ps->err, DP_ERR_NOMEM, "out of memory");
        }
    }
    if (dp_buf_append(&b, "", 0) != DP_OK || !b.data) {
        dp_buf_free(&b);
        return dp_fail(ps->err, DP_ERR_NOMEM, "out of memory");
    }
    v->type = TV_STR;
    v->s = b.data;
    snprintf(v->raw, sizeof v->raw, "\"%.40s\"", b.data);
    return DP_OK;
}

static DpStatus read_number(TomlParser *ps, TomlVal *v) {
    char buf[64];
    size_t n = 0;
    const char *start = ps->p;
    while (*ps->p && (isalnum((unsigned char)*ps->p) || strchr("+-._", *ps->p))) {
        if (n + 1 < sizeof buf && *ps->p != '_') buf[n++] = *ps->p;
        ps->p++;
    }
    buf[n] = 0;
    int len = (int)(ps->p - start);
    snprintf(v->raw, sizeof v->raw, "%.*s", len > 40 ? 40 : len, start);
    if (n == 0) return perr(ps, "expected a value%s", NULL);
    /* TOML numbers: optional sign, digits, optional fraction, optional
     * exponent; no hex, no inf/nan, no leading '.'. */
    const char *q = buf;
    if (*q == '+' || *q == '-') q++;
    if (!isdigit((unsigned char)*q)) return perr(ps, "expected a value, got \"%s\" (strings need quotes)", v->raw);
    int is_int = 1;
    while (isdigit((unsigned char)*q)) q++;
    if (*q == '.') {
        is_int = 0;
        q++;
        if (!isdigit((unsigned char)*q)) return perr(ps, "bad number \"%s\"", v->raw);
        while (isdigit((unsigned char)*q)) q++;
    }
    if (*q == 'e' || *q == 'E') {
        is_int = 0;
        q++;
        if (*q == '+' || *q == '-') q++;
        if (!isdigit((unsigned char)*q)) return perr(ps, "bad number \"%s\"", v->raw);
        while (isdigit((unsigned char)*q)) q++;
    }
    if (*q) return perr(ps, "expected a value, got \"%s\" (strings need quotes)", v->raw);
    v->type = TV_NUM;
    v->num = strtod(buf, NULL);
    v->is_int = is_int;
    return DP_OK;
}

static DpStatus read_value(TomlParser *ps, TomlVal *v, int in_array) {
    memset(v, 0, sizeof *v);
    char c = *ps->p;
    if (c == '"' || c == '\'') return read_string(ps, v);
    if (!strncmp(ps->p, "true", 4) && !bare_char(ps->p[4])) {
        ps->p += 4;
        v->type = TV_BOOL;
        v->b = 1;
        strcpy(v->raw, "true");
        return DP_OK;
    }
    if (!strncmp(ps->p, "false", 5) && !bare_char(ps->p[5])) {
        ps->p += 5;
        v->type = TV_BOOL;
        strcpy(v->raw, "false");
        return DP_OK;
    }
    if (c == '{') return perr(ps, "inline tables are not supported%s", NULL);
    if (c == '[') {
        if (in_array) return perr(ps, "nested arrays are not supported%s", NULL);
        ps->p++;
        v->type = TV_ARR;
        strcpy(v->raw, "an array");
        for (;;) {
            skip_ws_nl(ps);
            if (*ps->p == ']') {
                ps->p++;
                return DP_OK;
            }
            TomlVal *items = dp_realloc_array(v->items, (size_t)v->n_items + 1, sizeof *items);
            if (!items) return dp_fail(ps->err, DP_ERR_NOMEM, "out of memory");
            v->items = items;
            DpStatus st = read_value(ps, &v->items[v->n_items], 1);
            if (st != DP_OK) return st;
            v->n_items++;
            skip_ws_nl(ps);
            if (*ps->p == ',') {
                ps->p++;
                continue;
            }
            if (*ps->p == ']') continue;
            return perr(ps, "expected ',' or ']' in array%s", NULL);
        }
    }
    if (!c || c == '\n' || c == '#') return perr(ps, "expected a value after '='%s", NULL);
    return read_number(ps, v);
}

static TomlTable *doc_add_table(TomlDoc *d, const char *name, int index, int line) {
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 8;
        TomlTable *t = dp_realloc_array(d->t, (size_t)cap, sizeof *t);
        if (!t) return NULL;
        d->t = t;
        d->cap = cap;
    }
    TomlTable *t = &d->t[d->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->index = index;
    t->line = line;
    return t;
}

static DpStatus toml_parse(const char *text, const char *fname, TomlDoc *d, DpError *err) {
    TomlParser ps = {text, 1, fname, err};
    TomlTable *cur = doc_add_table(d, "", -1, 1);
    if (!cur) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    for (;;) {
        skip_ws_nl(&ps);
        if (!*ps.p) return DP_OK;
        if (*ps.p == '[') {
            int arr = ps.p[1] == '[';
            ps.p += arr ? 2 : 1;
            while (*ps.p == ' ' || *ps.p == '\t') ps.p++;
            char name[64];
            DpStatus st = read_bare_key(&ps, name, sizeof name);
            if (st != DP_OK) return st;
            while (*ps.p == ' ' || *ps.p == '\t') ps.p++;
            if (*ps.p != ']' || (arr && ps.p[1] != ']'))
                return perr(&ps, arr ? "expected ']]' after [[%s" : "expected ']' after [%s", name);
            ps.p += arr ? 2 : 1;
            int index = -1, seen_plain = 0, n_arr = 0;
            for (int i = 0; i < d->n; i++) {
                if (strcmp(d->t[i].name, name)) continue;
                if (d->t[i].index < 0) seen_plain = 1;
                else n_arr++;
            }
            if (arr) {
                if (seen_plain) return perr(&ps, "[[%s]] after a [table] of the same name", name);
                index = n_arr;
            } else if (seen_plain || n_arr) {
                return perr(&ps, "table [%s] defined twice", name);
            }
            if (!(cur = doc_add_table(d, name, index, ps.line)))
                return dp_fail(err, DP_ERR_NOMEM, "out of memory");
            if ((st = end_of_line(&ps)) != DP_OK) return st;
            continue;
        }
        char key[64];
        DpStatus st = read_bare_key(&ps, key, sizeof key);
        if (st != DP_OK) return st;
        skip_ws(&ps);
        if (*ps.p != '=') return perr(&ps, "expected '=' after key \"%s\"", key);
        ps.p++;
        skip_ws(&ps);
        for (int i = 0; i < cur->n_kv; i++)
            if (!strcmp(cur->kv[i].key, key)) return perr(&ps, "key \"%s\" defined twice", key);
        if (cur->n_kv == cur->cap_kv) {
            int cap = cur->cap_kv ? cur->cap_kv * 2 : 8;
            TomlKv *kv = dp_realloc_array(cur->kv, (size_t)cap, sizeof *kv);
            if (!kv) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
            cur->kv = kv;
            cur->cap_kv = cap;
        }
        TomlKv *kv = &cur->kv[cur->n_kv];
        memset(kv, 0, sizeof *kv);
        snprintf(kv->key, sizeof kv->key, "%s", key);
        kv->line = ps.line;
        st = read_value(&ps, &kv->v, 0);
        cur->n_kv++; /* counted even on error so the value is freed */
        if (st != DP_OK) return st;
        if ((st = end_of_line(&ps)) != DP_OK) return st;
    }
}

// ---- the schema ----

typedef enum { FK_STR, FK_NUM, FK_INT, FK_I64, FK_BOOL, FK_DUR, FK_EXEC } FieldKind;

/* group: which executor a target key belongs to (-1: any). */
typedef struct {
    const char *key;
    FieldKind kind;
    size_t off;
    size_t cap;          /* FK_STR: field size */
    double lo, hi;       /* numbers: allowed range */
    int lo_open;         /* 1: value must be > lo */
    int group;
    const char *choices; /* FK_STR: "a|b|c" or NULL */
} FieldSpec;

#define F_STR(s, f, g, ch) {#f, FK_STR, offsetof(s, f), sizeof(((s *)0)->f), 0, 0, 0, g, ch}
#define F_NUM(s, f, lo, hi, open, g) {#f, FK_NUM, offsetof(s, f), 0, lo, hi, open, g, NULL}

static const FieldSpec target_fields[] = {
    F_STR(DeployTarget, name, -1, NULL),
    F_NUM(DeployTarget, price_per_gpu_hour, 0, INFINITY, 0, -1),
    {"gpu_count", FK_INT, offsetof(DeployTarget, gpu_count), 0, 0, 1024, 0, -1, NULL},
    {"cpus", FK_INT, offsetof(DeployTarget, cpus), 0, 0, 4096, 0, -1, NULL},
    F_NUM(DeployTarget, retrain_cost, 0, INFINITY, 0, -1),
    F_STR(DeployTarget, service_url, -1, NULL),
    F_NUM(DeployTarget, network_distance_ms, 0, 60000, 0, -1),
    {"executor", FK_EXEC, offsetof(DeployTarget, executor), 0, 0, 0, 0, -1, NULL},
    F_STR(DeployTarget, cpu_set, DEPLOY_EXEC_LOCAL, NULL),
    F_NUM(DeployTarget, cpu_quota, 0, 4096, 0, DEPLOY_EXEC_LOCAL),
    F_NUM(DeployTarget, memory_mb, 0, INFINITY, 0, -1),
    {"nice", FK_INT, offsetof(DeployTarget, nice), 0, 0, 19, 0, DEPLOY_EXEC_LOCAL, NULL},
    F_STR(DeployTarget, workdir, -1, NULL),
    F_STR(DeployTarget, host, DEPLOY_EXEC_SSH, NULL),
    F_STR(DeployTarget, user, DEPLOY_EXEC_SSH, NULL),
    {"port", FK_INT, offsetof(DeployTarget, port), 0, 1, 65535, 0, DEPLOY_EXEC_SSH, NULL},
    F_STR(DeployTarget, identity_file, DEPLOY_EXEC_SSH, NULL),
    F_STR(DeployTarget, ssh_command, DEPLOY_EXEC_SSH, NULL),
    F_STR(DeployTarget, context, DEPLOY_EXEC_KUBERNETES, NULL),
    {"namespace", FK_STR, offsetof(DeployTarget, k8s_namespace),
     sizeof(((DeployTarget *)0)->k8s_namespace), 0, 0, 0, DEPLOY_EXEC_KUBERNETES, NULL},
    F_STR(DeployTarget, image, DEPLOY_EXEC_KUBERNETES, NULL),
    F_STR(DeployTarget, cpu_request, DEPLOY_EXEC_KUBERNETES, NULL),
    F_STR(DeployTarget, cpu_limit, DEPLOY_EXEC_KUBERNETES, NULL),
    F_STR(DeployTarget, memory_request, DEPLOY_EXEC_KUBERNETES, NULL),
    F_STR(DeployTarget, memory_limit, DEPLOY_EXEC_KUBERNETES, NULL),
    F_STR(DeployTarget, kubectl, DEPLOY_EXEC_KUBERNETES, NULL),
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static const FieldSpec policy_fields[] = {
    F_STR(DeployPolicyConfig, kind, -1, "static|threshold|drift|ppo|oracle|none"),
    F_STR(DeployPolicyConfig, file, -1, NULL),
    F_STR(DeployPolicyConfig, actions, -1, "targets|pairs"),
    {"interval", FK_DUR, offsetof(DeployPolicyConfig, interval_s), 0, 0, INFINITY, 1, -1, NULL},
    F_NUM(DeployPolicyConfig, threshold, 0, 1, 0, -1),
    {"seed", FK_I64, offsetof(DeployPolicyConfig, seed), 0, 0, 9.0e15, 0, -1, NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static const FieldSpec reward_fields[] = {
    F_NUM(DeployRewardConfig, bleu_weight, 0, 100, 0, -1),
    F_NUM(DeployRewardConfig, accuracy_weight, 0, 100, 0, -1),
    F_NUM(DeployRewardConfig, cost_weight, 0, 1e6, 0, -1),
    F_NUM(DeployRewardConfig, latency_slo_ms, 0, INFINITY, 0, -1),
    F_NUM(DeployRewardConfig, latency_penalty, 0, INFINITY, 0, -1),
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static const FieldSpec control_fields[] = {
    {"decision_interval", FK_DUR, offsetof(DeployControlConfig, decision_interval_s), 0, 0,
     INFINITY, 1, -1, NULL},
    F_NUM(DeployControlConfig, time_scale, 0, 1e6, 1, -1),
    {"registry", FK_STR, offsetof(DeployControlConfig, registry_dir),
     sizeof(((DeployControlConfig *)0)->registry_dir), 0, 0, 0, -1, NULL},
    {"store", FK_STR, offsetof(DeployControlConfig, store_path),
     sizeof(((DeployControlConfig *)0)->store_path), 0, 0, 0, -1, NULL},
    {"job_time_limit", FK_DUR, offsetof(DeployControlConfig, job_time_limit_s), 0, 0, INFINITY, 1,
     -1, NULL},
    F_NUM(DeployControlConfig, rollback_margin, 0, 1, 0, -1),
    {"rollback_window", FK_DUR, offsetof(DeployControlConfig, rollback_window_s), 0, 0, INFINITY,
     1, -1, NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static const FieldSpec metrics_fields[] = {
    F_STR(DeployMetricsConfig, source, -1, "direct|prometheus"),
    F_STR(DeployMetricsConfig, prometheus_url, -1, NULL),
    {"scrape_timeout", FK_DUR, offsetof(DeployMetricsConfig, scrape_timeout_s), 0, 0, INFINITY, 1,
     -1, NULL},
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

static const FieldSpec router_fields[] = {
    F_STR(DeployRouterConfig, listen, -1, NULL),
    F_STR(DeployRouterConfig, active, -1, NULL),
    {"emulate_distance", FK_BOOL, offsetof(DeployRouterConfig, emulate_distance), 0, 0, 0, 0, -1,
     NULL},
    {"health_interval", FK_DUR, offsetof(DeployRouterConfig, health_interval_s), 0, 0, INFINITY, 1,
     -1, NULL},
    {"health_timeout", FK_DUR, offsetof(DeployRouterConfig, health_timeout_s), 0, 0, INFINITY, 1,
     -1, NULL},
    {"forward_timeout", FK_DUR, offsetof(DeployRouterConfig, forward_timeout_s), 0, 0, INFINITY,
     1, -1, NULL},
    F_STR(DeployRouterConfig, admin_token_file, -1, NULL),
    F_NUM(DeployRouterConfig, max_body_bytes, 1, 1 << 30, 0, -1),
    {NULL, 0, 0, 0, 0, 0, 0, 0, NULL},
};

void deploy_target_defaults(DeployTarget *t) {
    memset(t, 0, sizeof *t);
    t->executor = DEPLOY_EXEC_LOCAL;
    t->port = 22;
    strcpy(t->ssh_command, "ssh");
    strcpy(t->k8s_namespace, "default");
    strcpy(t->kubectl, "kubectl");
}

void deploy_config_defaults(DeployConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->policy.kind, "static");
    cfg->policy.interval_s = 900;
    snprintf(cfg->policy.actions, sizeof cfg->policy.actions, "targets");
    cfg->policy.threshold = 0.6;
    cfg->reward.bleu_weight = 0.5;
    cfg->reward.accuracy_weight = 0.5;
    cfg->reward.cost_weight = 1.0;
    cfg->control.decision_interval_s = 60;
    cfg->control.time_scale = 1;
    strcpy(cfg->control.registry_dir, "registry");
    strcpy(cfg->control.store_path, "driftpilot.db");
    cfg->control.job_time_limit_s = 1800;
    cfg->control.rollback_margin = 0.05;
    cfg->control.rollback_window_s = 300;
    strcpy(cfg->metrics.source, "direct");
    cfg->metrics.scrape_timeout_s = 5;
    strcpy(cfg->router.listen, "127.0.0.1:8080");
    cfg->router.health_interval_s = 1;
    cfg->router.health_timeout_s = 0.5;
    cfg->router.forward_timeout_s = 10;
    cfg->router.max_body_bytes = 1 << 20;
}

static void fmt_range(char *out, size_t cap, const FieldSpec *f, const char *what) {
    if (isinf(f->hi))
        snprintf(out, cap, "%s %s %g", what, f->lo_open ? ">" : ">=", f->lo);
    else
        snprintf(out, cap, "%s in %s%g, %g]", what, f->lo_open ? "(" : "[", f->lo, f->hi);
}

/* Stores one key/value into base according to its spec. */
static DpStatus apply_field(const FieldSpec *f, const TomlKv *kv, void *base, const char *fname,
                            const char *qual, DpError *err) {
    char *dst = (char *)base + f->off;
    const TomlVal *v = &kv->v;
    char want[96];
    switch (f->kind) {
    case FK_STR:
        if (v->type != TV_STR) {
            snprintf(want, sizeof want, "a string");
            goto bad;
        }
        if (f->choices) {
            int ok = 0;
            size_t n = strlen(v->s);
            for (const char *c = f->choices; *c;) {
                const char *e = strchr(c, '|');
                size_t len = e ? (size_t)(e - c) : strlen(c);
                if (len == n && !strncmp(c, v->s, n)) ok = 1;
                c += len + (e ? 1 : 0);
            }
            if (!ok) {
                snprintf(want, sizeof want, "one of %s", f->choices);
                goto bad;
            }
        }
        if (!deploy_copy(dst, f->cap, v->s)) {
            snprintf(want, sizeof want, "a string of at most %zu bytes", f->cap - 1);
            goto bad;
        }
        return DP_OK;
    case FK_BOOL:
        if (v->type != TV_BOOL) {
            snprintf(want, sizeof want, "true or false");
            goto bad;
        }
        *(int *)dst = v->b;
        return DP_OK;
    case FK_EXEC:
        if (v->type == TV_STR && !strcmp(v->s, "local")) *(DeployExecKind *)dst = DEPLOY_EXEC_LOCAL;
        else if (v->type == TV_STR && !strcmp(v->s, "ssh")) *(DeployExecKind *)dst = DEPLOY_EXEC_SSH;
        else if (v->type == TV_STR && !strcmp(v->s, "kubernetes"))
            *(DeployExecKind *)dst = DEPLOY_EXEC_KUBERNETES;
        else {
            snprintf(want, sizeof want, "one of local|ssh|kubernetes");
            goto bad;
        }
        return DP_OK;
    case FK_DUR: {
        double s;
        fmt_range(want, sizeof want, f, "a duration (\"90s\", \"15m\", or seconds)");
        if (v->type == TV_NUM) {
            s = v->num;
        } else if (v->type == TV_STR) {
            DpError e2;
            if (dp_parse_duration(v->s, &s, &e2) != DP_OK) goto bad;
        } else {
            goto bad;
        }
        if (!(f->lo_open ? s > f->lo : s >= f->lo) || !(s <= f->hi)) goto bad;
        *(double *)dst = s;
        return DP_OK;
    }
    case FK_NUM:
    case FK_INT:
    case FK_I64:
        fmt_range(want, sizeof want, f, f->kind == FK_NUM ? "a number" : "an integer");
        if (v->type != TV_NUM || (f->kind != FK_NUM && !v->is_int)) goto bad;
        if (!(f->lo_open ? v->num > f->lo : v->num >= f->lo) || !(v->num <= f->hi)) goto bad;
        if (f->kind == FK_NUM) *(double *)dst = v->num;
        else if (f->kind == FK_INT) *(int *)dst = (int)v->num;
        else *(long long *)dst = (long long)v->num;
        return DP_OK;
    }
    snprintf(want, sizeof want, "?");
bad:
    return dp_fail(err, DP_ERR_INVAL, "%s:%d: %s: expected %s, got %s", fname, kv->line, qual, want,
                   v->raw);
}

static const FieldSpec *find_field(const FieldSpec *fs, const char *key) {
    for (; fs->key; fs++)
        if (!strcmp(fs->key, key)) return fs;
    return NULL;
}

static DpStatus apply_table(const TomlTable *t, const FieldSpec *fs, void *base, const char *fname,
                            const char *prefix, DpError *err) {
    for (int i = 0; i < t->n_kv; i++) {
        const TomlKv *kv = &t->kv[i];
        char qual[160];
        snprintf(qual, sizeof qual, "%s.%s", prefix, kv->key);
        const FieldSpec *f = find_field(fs, kv->key);
        if (!f) return dp_fail(err, DP_ERR_INVAL, "%s:%d: %s: unknown key", fname, kv->line, qual);
        DpStatus st = apply_field(f, kv, base, fname, qual, err);
        if (st != DP_OK) return st;
    }
    return DP_OK;
}

static const TomlKv *table_kv(const TomlTable *t, const char *key) {
    for (int i = 0; i < t->n_kv; i++)
        if (!strcmp(t->kv[i].key, key)) return &t->kv[i];
    return NULL;
}

/* Checks that need the whole target (required keys, executor groups). */
static DpStatus check_target(const TomlTable *tt, DeployTarget *t, const char *fname, int idx,
                             DpError *err) {
    const TomlKv *kv;
    if (!table_kv(tt, "name"))
        return dp_fail(err, DP_ERR_INVAL, "%s:%d: targets[%d].name: missing (required)", fname,
                       tt->line, idx);
    if (!deploy_name_ok(t->name)) {
        kv = table_kv(tt, "name");
        return dp_fail(err, DP_ERR_INVAL,
                       "%s:%d: targets[%d].name: expected lower-case letters, digits and '-' "
                       "(at most 40), got \"%s\"",
                       fname, kv->line, idx, t->name);
    }
    if (!(kv = table_kv(tt, "service_url")))
        return dp_fail(err, DP_ERR_INVAL, "%s:%d: targets[%d].service_url: missing (required)",
                       fname, tt->line, idx);
    if (strncmp(t->service_url, "http://", 7) || !t->service_url[7])
        return dp_fail(err, DP_ERR_INVAL,
                       "%s:%d: targets[%d].service_url: expected \"http://host:port\", got \"%s\"",
                       fname, kv->line, idx, t->service_url);
    for (int i = 0; i < tt->n_kv; i++) {
        const FieldSpec *f = find_field(target_fields, tt->kv[i].key);
        if (f && f->group >= 0 && f->group != (int)t->executor)
            return dp_fail(err, DP_ERR_INVAL,
                           "%s:%d: targets[%d].%s: only for executor = \"%s\" (this target's is "
                           "\"%s\")",
                           fname, tt->kv[i].line, idx, f->key,
                           deploy_exec_kind_str((DeployExecKind)f->group),
                           deploy_exec_kind_str(t->executor));
    }
    if (t->cpu_set[0]) {
        cpu_set_t set;
        char what[96];
        kv = table_kv(tt, "cpu_set");
        snprintf(what, sizeof what, "%s:%d: targets[%d].cpu_set", fname, kv->line, idx);
        if (deploy_parse_cpu_set(t->cpu_set, &set, what, err) != DP_OK) return err->status;
    }
    if (t->executor == DEPLOY_EXEC_SSH && !t->host[0])
        return dp_fail(err, DP_ERR_INVAL,
                       "%s:%d: targets[%d].host: missing (required for executor = \"ssh\")", fname,
                       tt->line, idx);
    if (t->executor == DEPLOY_EXEC_KUBERNETES && !t->image[0])
        return dp_fail(err, DP_ERR_INVAL,
                       "%s:%d: targets[%d].image: missing (required for executor = \"kubernetes\")",
                       fname, tt->line, idx);
    if (t->executor == DEPLOY_EXEC_KUBERNETES && !deploy_name_ok(t->k8s_namespace))
        return dp_fail(err, DP_ERR_INVAL, "%s:%d: targets[%d].namespace: not a valid name: \"%s\"",
                       fname, table_kv(tt, "namespace")->line, idx, t->k8s_namespace);
    return DP_OK;
}

DpStatus deploy_config_parse(const char *text, const char *name, DeployConfig *cfg, DpError *err) {
    TomlDoc d = {0};
    DpStatus st;
    deploy_config_defaults(cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", name);
    if ((st = toml_parse(text, name, &d, err)) != DP_OK) goto out;
    for (int i = 0; i < d.n; i++) {
        const TomlTable *t = &d.t[i];
        if (!t->name[0]) {
            if (t->n_kv) {
                st = dp_fail(err, DP_ERR_INVAL,
                             "%s:%d: %s: unknown key (top-level keys are not used; put it in a "
                             "table such as [control])",
                             name, t->kv[0].line, t->kv[0].key);
                goto out;
            }
            continue;
        }
        if (!strcmp(t->name, "targets")) {
            if (t->index < 0) {
                st = dp_fail(err, DP_ERR_INVAL, "%s:%d: targets: must be [[targets]] (an array of tables)",
                             name, t->line);
                goto out;
            }
            if (cfg->n_targets == DEPLOY_MAX_TARGETS) {
                st = dp_fail(err, DP_ERR_INVAL, "%s:%d: targets: at most %d targets", name, t->line,
                             DEPLOY_MAX_TARGETS);
                goto out;
            }
            DeployTarget *tg = &cfg->targets[cfg->n_targets];
            deploy_target_defaults(tg);
            tg->line = t->line;
            char prefix[32];
            snprintf(prefix, sizeof prefix, "targets[%d]", t->index);
            if ((st = apply_table(t, target_fields, tg, name, prefix, err)) != DP_OK) goto out;
            if ((st = check_target(t, tg, name, t->index, err)) != DP_OK) goto out;
            for (int j = 0; j < cfg->n_targets; j++)
                if (!strcmp(cfg->targets[j].name, tg->name)) {
                    st = dp_fail(err, DP_ERR_INVAL,
                                 "%s:%d: targets[%d].name: \"%s\" is already the name of targets[%d]",
                                 name, table_kv(t, "name")->line, t->index, tg->name, j);
                    goto out;
                }
            cfg->n_targets++;
            continue;
        }
        const FieldSpec *fs = NULL;
        void *base = NULL;
        if (!strcmp(t->name, "policy")) fs = policy_fields, base = &cfg->policy;
        else if (!strcmp(t->name, "reward")) fs = reward_fields, base = &cfg->reward;
        else if (!strcmp(t->name, "control")) fs = control_fields, base = &cfg->control;
        else if (!strcmp(t->name, "metrics")) fs = metrics_fields, base = &cfg->metrics;
        else if (!strcmp(t->name, "router")) fs = router_fields, base = &cfg->router;
        if (!fs || t->index >= 0) {
            st = dp_fail(err, DP_ERR_INVAL,
                         "%s:%d: %s: unknown table (expected [[targets]], [policy], [reward], "
                         "[control], [metrics] or [router])",
                         name, t->line, t->name);
            goto out;
        }
        if ((st = apply_table(t, fs, base, name, t->name, err)) != DP_OK) goto out;
        if (fs == metrics_fields && !strcmp(cfg->metrics.source, "prometheus") &&
            strncmp(cfg->metrics.prometheus_url, "http://", 7)) {
            st = dp_fail(err, DP_ERR_INVAL,
                         "%s:%d: metrics.prometheus_url: required (http://host:port) when "
                         "source = \"prometheus\"",
                         name, t->line);
            goto out;
        }
        if (fs == policy_fields && !strcmp(cfg->policy.kind, "ppo") && !cfg->policy.file[0]) {
            st = dp_fail(err, DP_ERR_INVAL,
                         "%s:%d: policy.file: required when kind = \"ppo\" (the trained policy)",
                         name, t->line);
            goto out;
        }
    }
    if (cfg->router.active[0] && !deploy_config_find(cfg, cfg->router.active)) {
        st = dp_fail(err, DP_ERR_INVAL, "%s: router.active: no target named \"%s\"", name,
                     cfg->router.active);
        goto out;
    }
    st = DP_OK;
out:
    doc_free(&d);
    return st;
}

DpStatus deploy_config_load(const char *path, DeployConfig *cfg, DpError *err) {
    char *text = NULL;
    size_t len = 0;
    DpStatus st = dp_read_file(path, &text, &len, err);
    if (st != DP_OK) return st;
    if (strlen(text) != len) {
        free(text);
        return dp_fail(err, DP_ERR_PARSE, "%s: contains a NUL byte", path);
    }
    const char *base = strrchr(path, '/');
    st = deploy_config_parse(text, base ? base + 1 : path, cfg, err);
    if (st == DP_OK) snprintf(cfg->path, sizeof cfg->path, "%s", path);
    free(text);
    return st;
}

const DeployTarget *deploy_config_find(const DeployConfig *cfg, const char *name) {
    for (int i = 0; i < cfg->n_targets; i++)
        if (!strcmp(cfg->targets[i].name, name)) return &cfg->targets[i];
    return NULL;
}

DpStatus deploy_config_describe(const DeployConfig *cfg, DpBuf *out) {
    DpStatus st = dp_buf_printf(out, "config %s: %d target(s)\n", cfg->path, cfg->n_targets);
    for (int i = 0; i < cfg->n_targets && st == DP_OK; i++) {
        const DeployTarget *t = &cfg->targets[i];
        st = dp_buf_printf(out,
                           "  target %-12s executor=%-10s url=%s distance=%gms price/gpu-h=%g "
                           "gpus=%d cpus=%d\n",
                           t->name, deploy_exec_kind_str(t->executor), t->service_url,
                           t->network_distance_ms, t->price_per_gpu_hour, t->gpu_count, t->cpus);
    }
    if (st == DP_OK)
        st = dp_buf_printf(out,
                           "  policy %s%s%s; decision every %gs at time scale %g; metrics %s\n"
                           "  reward %g*bleu + %g*accuracy - %g*cost; latency SLO %g ms\n"
                           "  router listen %s active %s emulate_distance %s\n",
                           cfg->policy.kind, cfg->policy.file[0] ? " file " : "", cfg->policy.file,
                           cfg->control.decision_interval_s, cfg->control.time_scale,
                           cfg->metrics.source, cfg->reward.bleu_weight,
                           cfg->reward.accuracy_weight, cfg->reward.cost_weight,
                           cfg->reward.latency_slo_ms, cfg->router.listen,
                           cfg->router.active[0] ? cfg->router.active : "(first)",
                           cfg->router.emulate_distance ? "yes" : "no");
    return st;
}
