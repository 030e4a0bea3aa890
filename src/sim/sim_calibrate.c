/* `driftpilot sim calibrate`: fits the simulator's measurable parameters by
 * least squares — retrain speed per target and coverage from retrain job
 * records, and distance / service time / capacity per target from a
 * load-generator CSV.  Formats are defined in docs/sim.md. */
#include "sim.h"

#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CAL_WINDOW_S 10.0
/* the highest load must be this many times the lowest to fit the curve */
#define SIM_CAL_MIN_RATE_SPREAD 1.5

typedef struct {
    double sum_d[SIM_MAX_TARGETS];
    int n_d[SIM_MAX_TARGETS];
    double sxy, sxx;
    int n_gain;
} JobFit;

/* The first of two keys present in obj (aliases: our format and the retrain
 * job's report names). */
static json_t *get2(json_t *obj, const char *a, const char *b) {
    json_t *v = json_object_get(obj, a);
    return v ? v : json_object_get(obj, b);
}

/* One job's accuracy before and after: right after a retrain,
 * 1 - p_after = (1 - c)(1 - p_before), fitted through the origin. */
static void job_fit_gain(const SimConfig *cfg, JobFit *fit, double acc_before, double acc_after) {
    double span = cfg->model.em_right - cfg->model.em_wrong;
    double pb = (acc_before - cfg->model.em_wrong) / span;
    double pa = (acc_after - cfg->model.em_wrong) / span;
    double x = 1 - pb, y = 1 - pa;
    fit->sxy += x * y;
    fit->sxx += x * x;
    fit->n_gain++;
}

static void job_fit_apply(SimConfig *cfg, const JobFit *fit, SimCalibration *out) {
    for (int k = 0; k < cfg->n_targets; k++) {
        if (!fit->n_d[k]) continue;
        /* duration = gpu_hours*3600/speed: least squares in 1/speed is the mean */
        double mean_d = fit->sum_d[k] / fit->n_d[k];
        cfg->targets[k].speed = cfg->model.gpu_hours * 3600 / mean_d;
        out->fitted_speed[k] = cfg->targets[k].speed;
    }
    if (fit->n_gain > 0 && fit->sxx > 0) {
        double c = 1 - fit->sxy / fit->sxx;
        cfg->model.coverage = c < 0 ? 0 : c > 1 ? 1 : c;
    }
    out->coverage = cfg->model.coverage;
}

static DpStatus read_job(const SimConfig *cfg, const char *path, JobFit *fit, int *used, DpError *err) {
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    DpStatus st = DP_OK;
    if (!j) return dp_fail(err, DP_ERR_PARSE, "%s: line %d: %s", path, je.line, je.text);
    json_t *tg = json_object_get(j, "target"), *du = get2(j, "duration_s", "seconds");
    json_t *status = json_object_get(j, "status");
    *used = 0;
    if (!json_is_object(j)) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: expected a JSON object", path);
        goto out;
    }
    if (status && (!json_is_string(status) || strcmp(json_string_value(status), "ok"))) goto out;
    if (!tg || json_is_null(tg)) goto out; /* a job not tied to a target says nothing of speed */
    if (!json_is_string(tg)) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: target: expected a string", path);
        goto out;
    }
    if (!json_is_number(du) || json_number_value(du) <= 0) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: duration_s: expected a positive number", path);
        goto out;
    }
    int k = sim_target_index(cfg, json_string_value(tg));
    if (k < 0) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: target: '%s' is not in the config", path,
                     json_string_value(tg));
        goto out;
    }
    fit->sum_d[k] += json_number_value(du);
    fit->n_d[k]++;
    *used = 1;
    json_t *b = get2(j, "before", "heldout_before"), *a = get2(j, "after", "heldout_after");
    json_t *ab = b ? get2(b, "accuracy", "exact_match") : NULL;
    json_t *aa = a ? get2(a, "accuracy", "exact_match") : NULL;
    if (ab || aa) {
        if (!json_is_number(ab) || !json_is_number(aa)) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: before.accuracy / after.accuracy: expected numbers", path);
            goto out;
        }
        job_fit_gain(cfg, fit, json_number_value(ab), json_number_value(aa));
    }
out:
    json_decref(j);
    return st;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static DpStatus fit_jobs(SimConfig *cfg, const char *dir, SimCalibration *out, DpError *err) {
    DIR *d = opendir(dir);
    if (!d) return dp_fail(err, DP_ERR_IO, "open %s: cannot read directory", dir);
    JobFit fit;
    memset(&fit, 0, sizeof fit);
    char **names = NULL;
    int n = 0, cap = 0;
    DpStatus st = DP_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = dp_realloc_array(names, (size_t)cap, sizeof *names);
            if (!nn) {
                st = dp_fail(err, DP_ERR_NOMEM, "listing %s", dir);
                goto out;
            }
            names = nn;
        }
        names[n++] = dp_strdup(e->d_name);
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        char path[4096];
        if ((st = dp_path_join(path, sizeof path, dir, names[i], err))) goto out;
        int used = 0;
        if ((st = read_job(cfg, path, &fit, &used, err))) goto out;
        out->n_jobs += used;
    }
    job_fit_apply(cfg, &fit, out);
out:
    closedir(d);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

/* Least squares of y = a + b x; returns SSE (a, b >= 0 enforced by clipping). */
static double fit_line(const double *x, const double *y, int n, double *a, double *b) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) sx += x[i], sy += y[i], sxx += x[i] * x[i], sxy += x[i] * y[i];
    double den = n * sxx - sx * sx;
    *b = den > 1e-12 ? (n * sxy - sx * sy) / den : 0;
    *a = (sy - *b * sx) / n;
    if (*b < 0) *b = 0, *a = sy / n;
    if (*a < 0) *a = 0, *b = sxx > 0 ? sxy / sxx : 0;
    double sse = 0;
    for (int i = 0; i < n; i++) {
        double r = y[i] - (*a + *b * x[i]);
        sse += r * r;
    }
    return sse;
}

typedef struct {
    int run; /* bins of different runs never merge: each run had its own services */
    int target;
    long window;
    int count;
    int n_ok;
    double sum_lat;
} LatBin;

typedef struct {
    LatBin *bins;
    int n, cap;
} LatAcc;

/* One request: wall time (s), the target that served it, success and latency. */
static DpStatus lat_add(LatAcc *acc, int run, int k, double time, int ok, double lat, DpError *err) {
    long w = (long)floor(time / CAL_WINDOW_S);
    int b;
    for (b = acc->n - 1; b >= 0; b--)
        if (acc->bins[b].run == run && acc->bins[b].target == k && acc->bins[b].window == w) break;
    if (b < 0) {
        if (acc->n == acc->cap) {
            int cap = acc->cap ? 2 * acc->cap : 64;
            LatBin *nb = dp_realloc_array(acc->bins, (size_t)cap, sizeof *nb);
            if (!nb) return dp_fail(err, DP_ERR_NOMEM, "latency bins");
            acc->bins = nb;
            acc->cap = cap;
        }
        b = acc->n++;
        acc->bins[b] = (LatBin){run, k, w, 0, 0, 0};
    }
    acc->bins[b].count++;
    if (ok) acc->bins[b].n_ok++, acc->bins[b].sum_lat += lat;
    return DP_OK;
}

/* The simulator's latency curve at a load (requests/s). */
static double lat_curve_ms(const SimTarget *t, double rate) {
    return t->distance_ms + t->service_ms / (1 - rate / t->capacity_rps);
}

/* latency = distance + service / (1 - rate / capacity) per target: a grid
 * over capacity and linear least squares for (distance, service). */
static DpStatus lat_fit(SimConfig *cfg, const LatAcc *acc, SimCalibration *out, DpError *err) {
    int nb = acc->n;
    double *xs = dp_calloc((size_t)nb + 1, sizeof(double));
    double *ys = dp_calloc((size_t)nb + 1, sizeof(double));
    double *ls = dp_calloc((size_t)nb + 1, sizeof(double));
    char *partial = dp_calloc((size_t)nb + 1, 1);
    DpStatus st = DP_OK;
    if (!xs || !ys || !ls || !partial) {
        st = dp_fail(err, DP_ERR_NOMEM, "latency fit");
        goto out;
    }
    /* a run's first and last windows are partly empty: their rate would
     * read as a lower load than the run had (kept when a run is too short
     * to spare them) */
    for (int b = 0; b < nb; b++) {
        long lo = LONG_MAX, hi = LONG_MIN;
        for (int j = 0; j < nb; j++)
            if (acc->bins[j].run == acc->bins[b].run) {
                if (acc->bins[j].window < lo) lo = acc->bins[j].window;
                if (acc->bins[j].window > hi) hi = acc->bins[j].window;
            }
        partial[b] = hi - lo >= 4 && (acc->bins[b].window == lo || acc->bins[b].window == hi);
    }
    for (int k = 0; k < cfg->n_targets; k++) {
        int n = 0;
        double max_rate = 0;
        for (int b = 0; b < nb; b++) {
            const LatBin *lb = &acc->bins[b];
            if (lb->target != k || lb->n_ok == 0 || partial[b]) continue;
            ls[n] = lb->count / CAL_WINDOW_S;
            ys[n] = lb->sum_lat / lb->n_ok;
            if (ls[n] > max_rate) max_rate = ls[n];
            n++;
        }
        if (n < 3) continue;
        double min_rate = INFINITY;
        for (int i = 0; i < n; i++) min_rate = fmin(min_rate, ls[i]);
        double best = INFINITY, bd = 0, bs = 0, bc = 0;
        /* The curve's shape needs loads that differ; at one load level (a
         * live run at a steady rate) distance, service and capacity cannot
         * be told apart, so only the level is fitted below. */
        if (max_rate >= SIM_CAL_MIN_RATE_SPREAD * min_rate) {
            for (int g = 0; g < 400; g++) {
                double c = max_rate * 1.01 * pow(50.0, g / 399.0);
                for (int i = 0; i < n; i++) xs[i] = 1 / (1 - ls[i] / c);
                double a, sl;
                double sse = fit_line(xs, ys, n, &a, &sl);
                if (sse < best) best = sse, bd = a, bs = sl, bc = c;
            }
        }
        SimTarget *tg = &cfg->targets[k];
        if (bs > 0) {
            tg->distance_ms = bd;
            tg->service_ms = bs;
            tg->capacity_rps = bc;
            out->fitted_latency[k] = 1;
        } else {
            /* the config's curve scaled (distance and service alike) to the
             * mean latency seen, capacity kept above the highest load */
            if (tg->capacity_rps <= max_rate * 1.01) tg->capacity_rps = max_rate * 2;
            double model = 0, seen = 0;
            for (int i = 0; i < n; i++) {
                model += lat_curve_ms(tg, ls[i]);
                seen += ys[i];
            }
            if (model <= 0) continue;
            double f = seen / model;
            tg->distance_ms *= f;
            tg->service_ms *= f;
            best = 0;
            for (int i = 0; i < n; i++) {
                double r = ys[i] - lat_curve_ms(tg, ls[i]);
                best += r * r;
            }
            out->fitted_latency[k] = 2;
        }
        out->latency_rmse[k] = sqrt(best / n);
        out->n_latency_points += n;
    }
out:
    free(xs);
    free(ys);
    free(ls);
    free(partial);
    return st;
}

/* Splits line in place at commas into at most cap fields; returns the count. */
static int csv_split(char *line, char **f, int cap) {
    int nf = 0;
    for (char *p = line; nf < cap;) {
        f[nf++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    for (int i = 0; i < nf; i++) {
        size_t l = strlen(f[i]);
        while (l && (f[i][l - 1] == '\r' || f[i][l - 1] == ' ')) f[i][--l] = 0;
    }
    return nf;
}

static DpStatus fit_latency(SimConfig *cfg, const char *csv, SimCalibration *out, DpError *err) {
    char *text = NULL;
    DpStatus st = dp_read_file(csv, &text, NULL, err);
    if (st) return st;
    LatAcc acc = {0};
    int lineno = 0;
    /* columns: ours (time,target,latency_ms,status,model_version) or the load
     * generator's (intended_s,...,target,latency_ms,...,status,error,...) */
    enum { C_TIME, C_TARGET, C_LAT, C_STATUS, C_ERROR, C_N };
    int col[C_N] = {-1, -1, -1, -1, -1};
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    if (!line) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: empty file", csv);
        goto out;
    }
    lineno = 1;
    {
        char *f[64];
        int nf = csv_split(line, f, 64);
        for (int i = 0; i < nf; i++) {
            if (!strcmp(f[i], "time") || (col[C_TIME] < 0 && !strcmp(f[i], "intended_s"))) col[C_TIME] = i;
            else if (!strcmp(f[i], "target")) col[C_TARGET] = i;
            else if (!strcmp(f[i], "latency_ms")) col[C_LAT] = i;
            else if (!strcmp(f[i], "status")) col[C_STATUS] = i;
            else if (!strcmp(f[i], "error")) col[C_ERROR] = i;
        }
        const char *names[4] = {"time (or intended_s)", "target", "latency_ms", "status"};
        for (int c = 0; c < 4; c++)
            if (col[c] < 0) {
                st = dp_fail(err, DP_ERR_PARSE, "%s: line 1: missing column '%s'", csv, names[c]);
                goto out;
            }
    }
    while ((line = strtok_r(NULL, "\n", &save))) {
        lineno++;
        char *f[64];
        int nf = csv_split(line, f, 64);
        int need = col[C_TIME];
        for (int c = 1; c < C_N; c++)
            if (col[c] > need) need = col[c];
        if (nf <= need) {
            if (nf <= 1 && !f[0][0]) continue; /* blank line */
            st = dp_fail(err, DP_ERR_PARSE, "%s: line %d: %d fields, expected at least %d", csv,
                         lineno, nf, need + 1);
            goto out;
        }
        char *end;
        double time = strtod(f[col[C_TIME]], &end);
        if (end == f[col[C_TIME]]) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: line %d: time: not a number", csv, lineno);
            goto out;
        }
        int k = sim_target_index(cfg, f[col[C_TARGET]]);
        /* the load generator writes target URLs: match a config name inside */
        for (int t = 0; k < 0 && t < cfg->n_targets; t++)
            if (strstr(f[col[C_TARGET]], cfg->targets[t].name)) k = t;
        if (k < 0) continue; /* traffic to a target the config does not model */
        const char *status = f[col[C_STATUS]];
        int ok = !strncmp(status, "ok", 2) || status[0] == '2';
        if (col[C_ERROR] >= 0 && f[col[C_ERROR]][0]) ok = 0;
        double lat = NAN;
        if (ok) {
            lat = strtod(f[col[C_LAT]], &end);
            if (end == f[col[C_LAT]]) {
                st = dp_fail(err, DP_ERR_PARSE, "%s: line %d: latency_ms: not a number", csv, lineno);
                goto out;
            }
        }
        if ((st = lat_add(&acc, 0, k, time, ok, lat, err))) goto out;
    }
    st = lat_fit(cfg, &acc, out, err);
out:
    free(acc.bins);
    free(text);
    return st;
}

// ---- an experiment's results directory ----

/* A whole CSV file split in place: row 0 is the header. */
typedef struct {
    char *text;
    char **cells; /* n_rows * n_cols */
    int n_rows, n_cols;
} CalCsv;

static void cal_csv_free(CalCsv *t) {
    free(t->text);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

static DpStatus cal_csv_load(const char *path, CalCsv *t, DpError *err) {
    memset(t, 0, sizeof *t);
    DpStatus st = dp_read_file(path, &t->text, NULL, err);
    if (st) return st;
    int cap = 0, lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(t->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *f[64];
        int nf = csv_split(line, f, 64);
        if (nf == 1 && !f[0][0]) continue;
        if (t->n_rows == 0) t->n_cols = nf;
        else if (nf != t->n_cols) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: line %d: %d fields, the header has %d", path, lineno,
                         nf, t->n_cols);
            goto fail;
        }
        if ((t->n_rows + 1) * t->n_cols > cap) {
            cap = cap ? 2 * cap : 64 * t->n_cols;
            char **nc = dp_realloc_array(t->cells, (size_t)cap, sizeof *nc);
            if (!nc) {
                st = dp_fail(err, DP_ERR_NOMEM, "%s", path);
                goto fail;
            }
            t->cells = nc;
        }
        memcpy(t->cells + (size_t)t->n_rows * t->n_cols, f, (size_t)nf * sizeof *f);
        t->n_rows++;
    }
    if (t->n_rows == 0) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: empty file", path);
        goto fail;
    }
    return DP_OK;
fail:
    cal_csv_free(t);
    return st;
}

static const char *cal_cell(const CalCsv *t, int row, int col) {
    return t->cells[(size_t)row * t->n_cols + col];
}

/* Column indices of names[0..n-1]; fails naming the first one missing. */
static DpStatus cal_csv_cols(const CalCsv *t, const char *path, const char *const *names, int n,
                             int *cols, DpError *err) {
    for (int i = 0; i < n; i++) {
        cols[i] = -1;
        for (int c = 0; c < t->n_cols; c++)
            if (!strcmp(cal_cell(t, 0, c), names[i])) cols[i] = c;
        if (cols[i] < 0) return dp_fail(err, DP_ERR_PARSE, "%s: line 1: missing column '%s'", path, names[i]);
    }
    return DP_OK;
}

static DpStatus cal_number(const char *text, const char *path, int line, const char *field,
                           double *out, DpError *err) {
    char *end;
    *out = strtod(text, &end);
    if (end == text || *end || !isfinite(*out))
        return dp_fail(err, DP_ERR_PARSE, "%s: line %d: %s: '%s' is not a number", path, line, field, text);
    return DP_OK;
}

/* The controllers' time scale, from the first pipeline's driftpilot.toml of
 * repeat 1 (the experiment writes one per pipeline and repeat). */
static DpStatus read_time_scale(const char *dir, double *scale, DpError *err) {
    char r1[4096];
    snprintf(r1, sizeof r1, "%s/work/r1", dir);
    DIR *d = opendir(r1);
    if (!d) return dp_fail(err, DP_ERR_IO, "%s: cannot read directory (give --time-scale)", r1);
    DpStatus st = DP_ERR_PARSE;
    struct dirent *e;
    while (st && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4352];
        snprintf(path, sizeof path, "%s/%s/driftpilot.toml", r1, e->d_name);
        if (!dp_file_exists(path)) continue;
        char *text = NULL;
        if (dp_read_file(path, &text, NULL, NULL)) continue;
        for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
            while (*l == ' ' || *l == '\t') l++;
            if (strncmp(l, "time_scale", 10)) continue;
            char *p = l + 10;
            while (*p == ' ' || *p == '\t') p++;
            if (*p != '=') continue;
            char *end;
            double v = strtod(p + 1, &end);
            if (end != p + 1 && v > 0) {
                *scale = v;
                st = DP_OK;
            }
            break;
        }
        free(text);
    }
    closedir(d);
    if (st) return dp_fail(err, DP_ERR_PARSE, "%s/*/driftpilot.toml: no time_scale (give --time-scale)", r1);
    return DP_OK;
}

/* Accuracy before and after from the retrain job's own report, if the
 * controller kept it (metrics.{before,after}.heldout.exact_match). */
static DpStatus read_job_gain(const SimConfig *cfg, const char *path, JobFit *fit, DpError *err) {
    if (!dp_file_exists(path)) return DP_OK;
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return dp_fail(err, DP_ERR_PARSE, "%s: line %d: %s", path, je.line, je.text);
    json_t *m = json_object_get(j, "metrics");
    json_t *b = json_object_get(json_object_get(json_object_get(m, "before"), "heldout"), "exact_match");
    json_t *a = json_object_get(json_object_get(json_object_get(m, "after"), "heldout"), "exact_match");
    if (json_is_number(b) && json_is_number(a)) job_fit_gain(cfg, fit, json_number_value(b), json_number_value(a));
    json_decref(j);
    return DP_OK;
}

static DpStatus fit_experiment_jobs(SimConfig *cfg, const char *dir, double scale, SimCalibration *out,
                                    DpError *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/jobs.csv", dir);
    CalCsv t;
    DpStatus st = cal_csv_load(path, &t, err);
    if (st) return st;
    enum { J_PIPE, J_REPEAT, J_RUN, J_ID, J_KIND, J_TARGET, J_STATUS, J_DUR, J_N };
    static const char *const names[J_N] = {"pipeline", "repeat", "run_id", "job_id",
                                           "kind",     "target", "status", "duration_s"};
    int col[J_N];
    JobFit fit;
    memset(&fit, 0, sizeof fit);
    if ((st = cal_csv_cols(&t, path, names, J_N, col, err))) goto out;
    for (int r = 1; r < t.n_rows; r++) {
        if (strcmp(cal_cell(&t, r, col[J_KIND]), "retrain") || strcmp(cal_cell(&t, r, col[J_STATUS]), "ok"))
            continue; /* failed and killed jobs say nothing of how long one takes */
        const char *target = cal_cell(&t, r, col[J_TARGET]);
        int k = sim_target_index(cfg, target);
        if (k < 0) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: line %d: target: '%s' is not in the config", path, r + 1,
                         target);
            goto out;
        }
        double d, rep;
        if ((st = cal_number(cal_cell(&t, r, col[J_DUR]), path, r + 1, "duration_s", &d, err))) goto out;
        if ((st = cal_number(cal_cell(&t, r, col[J_REPEAT]), path, r + 1, "repeat", &rep, err))) goto out;
        if (d <= 0) continue;
        /* wall seconds of the live run are scale times as many scenario seconds */
        fit.sum_d[k] += d * scale;
        fit.n_d[k]++;
        out->n_jobs++;
        char rec[4096];
        snprintf(rec, sizeof rec, "%s/work/r%d/%s/jobs/%s-retrain-%s-%s.json", dir, (int)rep + 1,
                 cal_cell(&t, r, col[J_PIPE]), cal_cell(&t, r, col[J_RUN]), target,
                 cal_cell(&t, r, col[J_ID]));
        if ((st = read_job_gain(cfg, rec, &fit, err))) goto out;
    }
    job_fit_apply(cfg, &fit, out);
out:
    cal_csv_free(&t);
    return st;
}

typedef struct {
    double at;  /* scenario seconds */
    int target;
} CalDeploy;

/* Requests of one run (work/rN/PIPE/requests.csv), each attributed to the
 * target serving at its scenario time (deployments.csv; before the first
 * deployment, the config's initial target). */
static DpStatus add_run_requests(const SimConfig *cfg, const char *path, int run, const CalDeploy *dep,
                                 int n_dep, LatAcc *acc, DpError *err) {
    CalCsv t;
    DpStatus st = cal_csv_load(path, &t, err);
    if (st) return st;
    enum { R_TIME, R_SCEN, R_LAT, R_STATUS, R_ERROR, R_N };
    static const char *const names[R_N] = {"intended_s", "scenario_s", "latency_ms", "status", "error"};
    int col[R_N];
    if ((st = cal_csv_cols(&t, path, names, R_N, col, err))) goto out;
    for (int r = 1; r < t.n_rows; r++) {
        double time, at, lat = NAN;
        if ((st = cal_number(cal_cell(&t, r, col[R_TIME]), path, r + 1, "intended_s", &time, err))) goto out;
        if ((st = cal_number(cal_cell(&t, r, col[R_SCEN]), path, r + 1, "scenario_s", &at, err))) goto out;
        const char *status = cal_cell(&t, r, col[R_STATUS]);
        int ok = status[0] == '2' && !cal_cell(&t, r, col[R_ERROR])[0];
        if (ok && (st = cal_number(cal_cell(&t, r, col[R_LAT]), path, r + 1, "latency_ms", &lat, err))) goto out;
        int k = cfg->initial_target;
        double best = -INFINITY;
        for (int i = 0; i < n_dep; i++)
            if (dep[i].at <= at && dep[i].at >= best) best = dep[i].at, k = dep[i].target;
        if ((st = lat_add(acc, run, k, time, ok, lat, err))) goto out;
    }
out:
    cal_csv_free(&t);
    return st;
}

static DpStatus fit_experiment_latency(SimConfig *cfg, const char *dir, SimCalibration *out, DpError *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/deployments.csv", dir);
    CalCsv dep;
    memset(&dep, 0, sizeof dep);
    DpStatus st = DP_OK;
    int dcol[3] = {-1, -1, -1};
    static const char *const dnames[3] = {"run_id", "scenario_s", "target"};
    if (dp_file_exists(path)) {
        if ((st = cal_csv_load(path, &dep, err))) return st;
        if ((st = cal_csv_cols(&dep, path, dnames, 3, dcol, err))) goto out_dep;
    }
    CalDeploy *runs_dep = dp_calloc((size_t)(dep.n_rows + 1), sizeof *runs_dep);
    LatAcc acc = {0};
    if (!runs_dep) {
        st = dp_fail(err, DP_ERR_NOMEM, "deployments");
        goto out_dep;
    }
    int run = 0;
    for (int rep = 1; !st; rep++) {
        char rdir[4096];
        snprintf(rdir, sizeof rdir, "%s/work/r%d", dir, rep);
        DIR *d = opendir(rdir);
        if (!d) break;
        struct dirent *e;
        while (!st && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char req[4352], run_id[512];
            snprintf(req, sizeof req, "%s/%s/requests.csv", rdir, e->d_name);
            if (!dp_file_exists(req)) continue;
            snprintf(run_id, sizeof run_id, "%s-r%d", e->d_name, rep);
            int n = 0;
            for (int r = 1; r < dep.n_rows; r++) {
                if (strcmp(cal_cell(&dep, r, dcol[0]), run_id)) continue;
                const char *tn = cal_cell(&dep, r, dcol[2]);
                int k = sim_target_index(cfg, tn);
                if (k < 0) {
                    st = dp_fail(err, DP_ERR_PARSE, "%s: line %d: target: '%s' is not in the config", path,
                                 r + 1, tn);
                    break;
                }
                runs_dep[n].target = k;
                if ((st = cal_number(cal_cell(&dep, r, dcol[1]), path, r + 1, "scenario_s", &runs_dep[n].at, err)))
                    break;
                n++;
            }
            if (!st) st = add_run_requests(cfg, req, run++, runs_dep, n, &acc, err);
        }
        closedir(d);
    }
    if (!st && run == 0) st = dp_fail(err, DP_ERR_PARSE, "%s/work/r1/*/requests.csv: no request records", dir);
    if (!st) st = lat_fit(cfg, &acc, out, err);
    free(acc.bins);
    free(runs_dep);
out_dep:
    cal_csv_free(&dep);
    return st;
}

DpStatus sim_calibrate_experiment(SimConfig *cfg, const char *dir, double time_scale, SimCalibration *out,
                                  DpError *err) {
    memset(out, 0, sizeof *out);
    out->coverage = cfg->model.coverage;
    DpStatus st = DP_OK;
    if (time_scale <= 0 && (st = read_time_scale(dir, &time_scale, err))) return st;
    out->time_scale = time_scale;
    if ((st = fit_experiment_jobs(cfg, dir, time_scale, out, err))) return st;
    if ((st = fit_experiment_latency(cfg, dir, out, err))) return st;
    return sim_config_validate(cfg, err);
}

DpStatus sim_calibrate(SimConfig *cfg, const char *jobs_dir, const char *loadgen_csv,
                       SimCalibration *out, DpError *err) {
    memset(out, 0, sizeof *out);
    out->coverage = cfg->model.coverage;
    DpStatus st = DP_OK;
    if (jobs_dir && (st = fit_jobs(cfg, jobs_dir, out, err))) return st;
    if (loadgen_csv && (st = fit_latency(cfg, loadgen_csv, out, err))) return st;
    return sim_config_validate(cfg, err);
}
