/* `driftpilot sim calibrate`: fits the simulator's measurable parameters by
 * least squares — retrain speed per target and coverage from retrain job
 * records, and distance / service time / capacity per target from a
 * load-generator CSV.  Formats are defined in docs/sim.md. */
#include "sim.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CAL_WINDOW_S 10.0

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
        double span = cfg->model.em_right - cfg->model.em_wrong;
        double pb = (json_number_value(ab) - cfg->model.em_wrong) / span;
        double pa = (json_number_value(aa) - cfg->model.em_wrong) / span;
        /* right after a retrain: 1 - p_after = (1 - c)(1 - p_before) */
        double x = 1 - pb, y = 1 - pa;
        fit->sxy += x * y;
        fit->sxx += x * x;
        fit->n_gain++;
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
    for (int k = 0; k < cfg->n_targets; k++) {
        if (!fit.n_d[k]) continue;
        /* duration = gpu_hours*3600/speed: least squares in 1/speed is the mean */
        double mean_d = fit.sum_d[k] / fit.n_d[k];
        cfg->targets[k].speed = cfg->model.gpu_hours * 3600 / mean_d;
        out->fitted_speed[k] = cfg->targets[k].speed;
    }
    if (fit.n_gain > 0 && fit.sxx > 0) {
        double keep = fit.sxy / fit.sxx;
        double c = 1 - keep;
        cfg->model.coverage = c < 0 ? 0 : c > 1 ? 1 : c;
    }
    out->coverage = cfg->model.coverage;
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
    int target;
    long window;
    int count;
    int n_ok;
    double sum_lat;
} LatBin;

static DpStatus fit_latency(SimConfig *cfg, const char *csv, SimCalibration *out, DpError *err) {
    char *text = NULL;
    DpStatus st = dp_read_file(csv, &text, NULL, err);
    if (st) return st;
    LatBin *bins = NULL;
    int nb = 0, capb = 0, lineno = 0;
    /* columns: ours (time,target,latency_ms,status,model_version) or the load
     * generator's (intended_s,...,target,latency_ms,...,status,error,...) */
    enum { C_TIME, C_TARGET, C_LAT, C_STATUS, C_ERROR, C_N };
    int col[C_N] = {-1, -1, -1, -1, -1};
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    double *xs = NULL, *ys = NULL, *ls = NULL;
    if (!line) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: empty file", csv);
        goto out;
    }
    lineno = 1;
    {
        char *f[64];
        int nf = 0;
        for (char *p = line; nf < 64;) {
            f[nf++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = 0;
            p = c + 1;
        }
        for (int i = 0; i < nf; i++) {
            size_t l = strlen(f[i]);
            while (l && (f[i][l - 1] == '\r' || f[i][l - 1] == ' ')) f[i][--l] = 0;
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
        int nf = 0;
        for (char *p = line; nf < 64;) {
            f[nf++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = 0;
            p = c + 1;
        }
        int need = col[C_TIME];
        for (int c = 1; c < C_N; c++)
            if (col[c] > need) need = col[c];
        if (nf <= need) {
            if (nf <= 1) continue; /* blank line */
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
        if (col[C_ERROR] >= 0 && f[col[C_ERROR]][0] && f[col[C_ERROR]][0] != '\r') ok = 0;
        double lat = NAN;
        if (ok) {
            lat = strtod(f[col[C_LAT]], &end);
            if (end == f[col[C_LAT]]) {
                st = dp_fail(err, DP_ERR_PARSE, "%s: line %d: latency_ms: not a number", csv, lineno);
                goto out;
            }
        }
        long w = (long)floor(time / CAL_WINDOW_S);
        int b = 0;
        for (b = nb - 1; b >= 0; b--)
            if (bins[b].target == k && bins[b].window == w) break;
        if (b < 0) {
            if (nb == capb) {
                capb = capb ? 2 * capb : 64;
                LatBin *nbp = dp_realloc_array(bins, (size_t)capb, sizeof *bins);
                if (!nbp) {
                    st = dp_fail(err, DP_ERR_NOMEM, "%s", csv);
                    goto out;
                }
                bins = nbp;
            }
            b = nb++;
            bins[b] = (LatBin){k, w, 0, 0, 0};
        }
        bins[b].count++;
        if (ok) bins[b].n_ok++, bins[b].sum_lat += lat;
    }
    xs = dp_calloc((size_t)nb + 1, sizeof(double));
    ys = dp_calloc((size_t)nb + 1, sizeof(double));
    ls = dp_calloc((size_t)nb + 1, sizeof(double));
    if (!xs || !ys || !ls) {
        st = dp_fail(err, DP_ERR_NOMEM, "%s", csv);
        goto out;
    }
    for (int k = 0; k < cfg->n_targets; k++) {
        int n = 0;
        double max_rate = 0;
        for (int b = 0; b < nb; b++) {
            if (bins[b].target != k || bins[b].n_ok == 0) continue;
            ls[n] = bins[b].count / CAL_WINDOW_S;
            ys[n] = bins[b].sum_lat / bins[b].n_ok;
            if (ls[n] > max_rate) max_rate = ls[n];
            n++;
        }
        if (n < 3) continue;
        /* latency = distance + service / (1 - rate / capacity): a grid over
         * capacity and linear least squares for (distance, service). */
        double best = INFINITY, bd = 0, bs = 0, bc = 0;
        for (int g = 0; g < 400; g++) {
            double c = max_rate * 1.01 * pow(50.0, g / 399.0);
            for (int i = 0; i < n; i++) xs[i] = 1 / (1 - ls[i] / c);
            double a, sl;
            double sse = fit_line(xs, ys, n, &a, &sl);
            if (sse < best) best = sse, bd = a, bs = sl, bc = c;
        }
        if (bs <= 0) continue;
        cfg->targets[k].distance_ms = bd;
        cfg->targets[k].service_ms = bs;
        cfg->targets[k].capacity_rps = bc;
        out->fitted_latency[k] = 1;
        out->latency_rmse[k] = sqrt(best / n);
        out->n_latency_points += n;
    }
out:
    free(xs);
    free(ys);
    free(ls);
    free(bins);
    free(text);
    return st;
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
