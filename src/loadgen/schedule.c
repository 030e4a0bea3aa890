/*
 * Rate schedules and arrival times: the parts of the load generator that are
 * pure functions of time and a seed, so they can be tested without a socket.
 *
 * Schedule time is seconds from the start of the run (or scenario seconds,
 * when the run maps it so); rates are requests per wall second.
 */
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// ---- evaluation ----

/* Rate of a points schedule at t: hold (step) or interpolate (linear). */
static double points_rate(const LoadgenSchedule *s, double t) {
    size_t n = s->n_points;
    if (n == 0) return 0;
    if (t <= s->pt_t[0]) return s->pt_rate[0];
    if (t >= s->pt_t[n - 1]) return s->pt_rate[n - 1];
    size_t lo = 0, hi = n - 1; /* pt_t[lo] <= t < pt_t[hi] */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (s->pt_t[mid] <= t) lo = mid;
        else hi = mid;
    }
    if (!s->linear) return s->pt_rate[lo];
    double f = (t - s->pt_t[lo]) / (s->pt_t[hi] - s->pt_t[lo]);
    return s->pt_rate[lo] + f * (s->pt_rate[hi] - s->pt_rate[lo]);
}

double loadgen_schedule_rate(const LoadgenSchedule *s, double t) {
    double r = 0;
    switch (s->kind) {
    case LOADGEN_SCHED_STEADY: r = s->rate; break;
    case LOADGEN_SCHED_SPIKE: r = (t >= s->at_s && t < s->at_s + s->len_s) ? s->rate2 : s->rate; break;
    case LOADGEN_SCHED_RAMP:
        if (t <= s->at_s) r = s->rate;
        else if (s->len_s <= 0 || t >= s->at_s + s->len_s) r = s->rate2;
        else r = s->rate + (s->rate2 - s->rate) * (t - s->at_s) / s->len_s;
        break;
    case LOADGEN_SCHED_DIURNAL:
        r = s->len_s > 0 ? s->rate - s->rate2 * cos(2.0 * M_PI * t / s->len_s) : s->rate;
        break;
    case LOADGEN_SCHED_POINTS: r = points_rate(s, t); break;
    }
    return r > 0 && isfinite(r) ? r : 0;
}

double loadgen_schedule_max_rate(const LoadgenSchedule *s) {
    double m = 0;
    switch (s->kind) {
    case LOADGEN_SCHED_STEADY: m = s->rate; break;
    case LOADGEN_SCHED_SPIKE:
    case LOADGEN_SCHED_RAMP: m = fmax(s->rate, s->rate2); break;
    case LOADGEN_SCHED_DIURNAL: m = s->rate + fabs(s->rate2); break;
    case LOADGEN_SCHED_POINTS:
        for (size_t i = 0; i < s->n_points; i++) m = fmax(m, s->pt_rate[i]);
        break;
    }
    return m > 0 ? m : 0;
}

void loadgen_schedule_format(const LoadgenSchedule *s, char *buf, size_t cap) {
    switch (s->kind) {
    case LOADGEN_SCHED_STEADY: snprintf(buf, cap, "steady:%g", s->rate); break;
    case LOADGEN_SCHED_SPIKE:
        snprintf(buf, cap, "spike:%g:%g:%gs:%gs", s->rate, s->rate2, s->at_s, s->len_s);
        break;
    case LOADGEN_SCHED_RAMP:
        snprintf(buf, cap, "ramp:%g:%g:%gs:%gs", s->rate, s->rate2, s->len_s, s->at_s);
        break;
    case LOADGEN_SCHED_DIURNAL:
        snprintf(buf, cap, "diurnal:%g:%g:%gs", s->rate, s->rate2, s->len_s);
        break;
    case LOADGEN_SCHED_POINTS:
        snprintf(buf, cap, "file(%zu points, %s)", s->n_points, s->linear ? "linear" : "step");
        break;
    }
}

void loadgen_schedule_free(LoadgenSchedule *s) {
    if (!s) return;
    free(s->pt_t);
    free(s->pt_rate);
    memset(s, 0, sizeof *s);
}

// ---- parsing ----

/* A rate: a finite number >= 0. */
static DpStatus parse_rate(const char *text, const char *what, const char *spec, double *out,
                           DpError *err) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v) || v < 0)
        return dp_fail(err, DP_ERR_PARSE, "schedule '%s': %s '%s' is not a rate >= 0", spec, what,
                       text);
    *out = v;
    return DP_OK;
}

static DpStatus parse_dur(const char *text, const char *what, const char *spec, double *out,
                          DpError *err) {
    DpError e2;
    if (dp_parse_duration(text, out, &e2) != DP_OK)
        return dp_fail(err, DP_ERR_PARSE, "schedule '%s': %s: %s", spec, what, e2.msg);
    return DP_OK;
}

DpStatus loadgen_schedule_parse(const char *spec, LoadgenSchedule *out, DpError *err) {
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) return dp_fail(err, DP_ERR_PARSE, "empty schedule");
    if (!strncmp(spec, "file:", 5)) {
        char path[4096];
        snprintf(path, sizeof path, "%s", spec + 5);
        int linear = 0;
        size_t n = strlen(path);
        if (n > 7 && !strcmp(path + n - 7, ":linear")) {
            linear = 1;
            path[n - 7] = '\0';
        } else if (n > 5 && !strcmp(path + n - 5, ":step")) {
            path[n - 5] = '\0';
        }
        if (!path[0]) return dp_fail(err, DP_ERR_PARSE, "schedule '%s': no file name", spec);
        return loadgen_schedule_load_csv(path, linear, out, err);
    }
    char buf[512];
    if (strlen(spec) >= sizeof buf) return dp_fail(err, DP_ERR_PARSE, "schedule too long");
    snprintf(buf, sizeof buf, "%s", spec);
    char *f[6];
    int nf = 0;
    for (char *p = buf, *tok; nf < 6 && (tok = strsep(&p, ":")) != NULL;) f[nf++] = tok;
    if (nf == 6) return dp_fail(err, DP_ERR_PARSE, "schedule '%s': too many fields", spec);
    DpStatus st = DP_OK;
    if (nf == 1) {
        out->kind = LOADGEN_SCHED_STEADY;
        return parse_rate(f[0], "rate", spec, &out->rate, err);
    }
    if (!strcmp(f[0], "steady")) {
        if (nf != 2) return dp_fail(err, DP_ERR_PARSE, "schedule '%s': expected steady:RATE", spec);
        out->kind = LOADGEN_SCHED_STEADY;
        return parse_rate(f[1], "rate", spec, &out->rate, err);
    }
    if (!strcmp(f[0], "spike")) {
        if (nf != 5)
            return dp_fail(err, DP_ERR_PARSE, "schedule '%s': expected spike:BASE:PEAK:AT:LEN", spec);
        out->kind = LOADGEN_SCHED_SPIKE;
        if ((st = parse_rate(f[1], "base", spec, &out->rate, err)) ||
            (st = parse_rate(f[2], "peak", spec, &out->rate2, err)) ||
            (st = parse_dur(f[3], "AT", spec, &out->at_s, err)) ||
            (st = parse_dur(f[4], "LEN", spec, &out->len_s, err)))
            return st;
        return DP_OK;
    }
    if (!strcmp(f[0], "ramp")) {
        if (nf != 4 && nf != 5)
            return dp_fail(err, DP_ERR_PARSE, "schedule '%s': expected ramp:FROM:TO:LEN[:AT]", spec);
        out->kind = LOADGEN_SCHED_RAMP;
        if ((st = parse_rate(f[1], "from", spec, &out->rate, err)) ||
            (st = parse_rate(f[2], "to", spec, &out->rate2, err)) ||
            (st = parse_dur(f[3], "LEN", spec, &out->len_s, err)) ||
            (nf == 5 && (st = parse_dur(f[4], "AT", spec, &out->at_s, err))))
            return st;
        return DP_OK;
    }
    if (!strcmp(f[0], "diurnal")) {
        if (nf != 4)
            return dp_fail(err, DP_ERR_PARSE,
                           "schedule '%s': expected diurnal:MEAN:AMPLITUDE:PERIOD", spec);
        out->kind = LOADGEN_SCHED_DIURNAL;
        if ((st = parse_rate(f[1], "mean", spec, &out->rate, err)) ||
            (st = parse_rate(f[2], "amplitude", spec, &out->rate2, err)) ||
            (st = parse_dur(f[3], "PERIOD", spec, &out->len_s, err)))
            return st;
        if (!(out->len_s > 0))
            return dp_fail(err, DP_ERR_PARSE, "schedule '%s': PERIOD must be > 0", spec);
        return DP_OK;
    }
    return dp_fail(err, DP_ERR_PARSE,
                   "schedule '%s': unknown kind '%s' (expected RATE, steady, spike, ramp, "
                   "diurnal or file)",
                   spec, f[0]);
}

/* Parses one number field of a CSV line (whitespace around allowed). */
static int csv_number(const char *s, const char *e, double *out) {
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    if (s == e || e - s > 60) return 0;
    char tmp[64];
    memcpy(tmp, s, (size_t)(e - s));
    tmp[e - s] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(tmp, &end);
    if (*end || errno || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

DpStatus loadgen_schedule_parse_csv_text(const char *text, const char *name, int linear,
                                         LoadgenSchedule *out, DpError *err) {
    memset(out, 0, sizeof *out);
    out->kind = LOADGEN_SCHED_POINTS;
    out->linear = linear;
    size_t cap = 0;
    int line = 0;
    DpStatus st = DP_OK;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        if (!eol) eol = p + strlen(p);
        line++;
        const char *s = p;
        p = *eol ? eol + 1 : eol;
        while (s < eol && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        if (s == eol || *s == '#') continue;
        const char *comma = memchr(s, ',', (size_t)(eol - s));
        double t, r;
        if (!comma || !csv_number(s, comma, &t)) {
            if (out->n_points == 0 && line == 1) continue; /* a header */
            st = dp_fail(err, DP_ERR_PARSE, "%s line %d: expected time_s,rate", name, line);
            goto fail;
        }
        const char *e2 = memchr(comma + 1, ',', (size_t)(eol - comma - 1));
        if (!csv_number(comma + 1, e2 ? e2 : eol, &r)) {
            st = dp_fail(err, DP_ERR_PARSE, "%s line %d: rate is not a number", name, line);
            goto fail;
        }
        if (t < 0) {
            st = dp_fail(err, DP_ERR_PARSE, "%s line %d: time %g is negative", name, line, t);
            goto fail;
        }
        if (r < 0) {
            st = dp_fail(err, DP_ERR_PARSE, "%s line %d: rate %g is negative", name, line, r);
            goto fail;
        }
        if (out->n_points > 0 && !(t > out->pt_t[out->n_points - 1])) {
            st = dp_fail(err, DP_ERR_PARSE, "%s line %d: time %g is not after %g", name, line, t,
                         out->pt_t[out->n_points - 1]);
            goto fail;
        }
        if (out->n_points == cap) {
            size_t nc = cap ? cap * 2 : 16;
            double *a = dp_realloc_array(out->pt_t, nc, sizeof *a);
            if (!a) goto nomem;
            out->pt_t = a;
            double *b = dp_realloc_array(out->pt_rate, nc, sizeof *b);
            if (!b) goto nomem;
            out->pt_rate = b;
            cap = nc;
        }
        out->pt_t[out->n_points] = t;
        out->pt_rate[out->n_points] = r;
        out->n_points++;
    }
    if (out->n_points == 0) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: no (time_s, rate) points", name);
        goto fail;
    }
    return DP_OK;
nomem:
    st = dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", name);
fail:
    loadgen_schedule_free(out);
    return st;
}

DpStatus loadgen_schedule_load_csv(const char *path, int linear, LoadgenSchedule *out,
                                   DpError *err) {
    char *text = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    DpStatus st = dp_read_file(path, &text, &len, err);
    if (st != DP_OK) return st;
    st = loadgen_schedule_parse_csv_text(text, path, linear, out, err);
    free(text);
    return st;
}

// ---- arrivals ----

void loadgen_arrivals_init(LoadgenArrivals *a, const LoadgenSchedule *s, int poisson,
                           uint64_t seed) {
    memset(a, 0, sizeof *a);
    a->sched = s;
    a->poisson = poisson;
    dp_rng_seed(&a->rng, seed);
    a->t = -1;
    a->rmax = loadgen_schedule_max_rate(s);
    a->sched_t0 = 0;
    a->sched_scale = 1;
}

static double rate_at(const LoadgenArrivals *a, double t) {
    return loadgen_schedule_rate(a->sched, a->sched_t0 + t * a->sched_scale);
}

double loadgen_arrivals_next(LoadgenArrivals *a, double horizon) {
    if (!(a->rmax > 0)) return INFINITY;
    if (a->poisson) {
        /* Thinning (Lewis-Shedler): candidates at the peak rate, each kept
         * with probability rate(t)/peak, give exactly the inhomogeneous
         * Poisson process of the schedule. */
        double t = a->t < 0 ? 0 : a->t;
        for (;;) {
            t += dp_rng_exponential(&a->rng, a->rmax);
            if (t >= horizon) return INFINITY;
            if (dp_rng_uniform(&a->rng) * a->rmax < rate_at(a, t)) break;
        }
        a->t = t;
        return t;
    }
    /* Evenly spaced: arrival k comes when the integral of the rate since
     * the first arrival (at the first moment the rate is positive) reaches
     * k, integrated in steps of at most 1 ms, each ending exactly on the
     * next arrival when the rate is steady.  So a steady R gives arrivals
     * at k/R, a ramp speeds up smoothly, and silent stretches stay silent. */
    const double step = 0.001, eps = 1e-9;
    double t = a->t;
    if (t < 0) {
        t = 0;
        while (t < horizon - eps && !(rate_at(a, t) > 0)) t += step;
        if (t >= horizon - eps) return INFINITY;
        a->t = t;
        a->lam = 0;
        a->k = 0;
        return t;
    }
    double lam = a->lam, k = a->k + 1;
    while (lam < k - 1e-9) {
        double r = rate_at(a, t), dt = step;
        if (r > 0) {
            double need = (k - lam) / r;
            if (need < dt) dt = need;
        }
        lam += r * dt;
        t += dt;
        if (t >= horizon - eps) return INFINITY;
    }
    a->t = t;
    a->lam = k;
    a->k = k;
    return t;
}

// ---- targets ----

DpStatus loadgen_target_parse(const char *spec, LoadgenTarget *out, DpError *err) {
    memset(out, 0, sizeof *out);
    out->weight = 1;
    if (!spec || !*spec) return dp_fail(err, DP_ERR_PARSE, "empty target");
    const char *eq = strrchr(spec, '=');
    size_t ulen = eq ? (size_t)(eq - spec) : strlen(spec);
    if (eq) {
        char *end = NULL;
        errno = 0;
        double w = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || errno || !isfinite(w) || !(w > 0))
            return dp_fail(err, DP_ERR_PARSE, "target '%s': weight '%s' is not a number > 0", spec,
                           eq + 1);
        out->weight = w;
    }
    if (ulen >= sizeof out->url) return dp_fail(err, DP_ERR_PARSE, "target '%s': URL too long", spec);
    memcpy(out->url, spec, ulen);
    out->url[ulen] = '\0';
    if (ulen > 0 && out->url[ulen - 1] == '/') out->url[--ulen] = '\0';
    if (strncmp(out->url, "http://", 7) != 0 || ulen == 7)
        return dp_fail(err, DP_ERR_PARSE, "target '%s': expected http://HOST[:PORT]", spec);
    if (strpbrk(out->url, ",\" \t\r\n"))
        return dp_fail(err, DP_ERR_PARSE, "target '%s': URL contains a comma, quote or space",
                       spec);
    if (strchr(out->url + 7, '/') || strchr(out->url + 7, '?'))
        return dp_fail(err, DP_ERR_PARSE,
                       "target '%s': give the service's base URL without a path "
                       "(/predict and /feedback are added)",
                       spec);
    return DP_OK;
}

DpStatus loadgen_url_check(const char *url, int allow_remote, DpError *err) {
    if (strncmp(url, "http://", 7) != 0)
        return dp_fail(err, DP_ERR_INVAL, "target %s: only http:// is supported", url);
    const char *h = url + 7, *e;
    char host[256];
    if (*h == '[') {
        h++;
        e = strchr(h, ']');
        if (!e) return dp_fail(err, DP_ERR_INVAL, "target %s: unclosed '['", url);
    } else {
        e = h;
        while (*e && *e != ':' && *e != '/' && *e != '?') e++;
    }
    size_t n = (size_t)(e - h);
    if (n == 0 || n >= sizeof host) return dp_fail(err, DP_ERR_INVAL, "target %s: bad host", url);
    memcpy(host, h, n);
    host[n] = '\0';
    if (allow_remote) return DP_OK;
    unsigned char a4[4], a6[16];
    if (!strcasecmp(host, "localhost")) return DP_OK;
    if (inet_pton(AF_INET, host, a4) == 1 && a4[0] == 127) return DP_OK;
    if (inet_pton(AF_INET6, host, a6) == 1) {
        static const unsigned char lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(a6, lo6, 16)) return DP_OK;
        if (!memcmp(a6, mapped, 12) && a6[12] == 127) return DP_OK;
    }
    return dp_fail(err, DP_ERR_INVAL,
                   "target %s: host '%s' is not a loopback address (localhost, 127.0.0.0/8, ::1); "
                   "the load generator only talks to loopback unless --allow-remote is given",
                   url, host);
}
