/* The replay environment as the study built it: recorded state vectors from a
 * CSV, missing values interpolated, rolling means, z-scores, and rewards from
 * the recorded quality.  What it cannot capture: the recorded future does not
 * depend on the action, so retraining never changes the quality that follows
 * (see docs/sim.md). */
#include "sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *replay_cols[6] = {"cpu", "memory", "request_rate", "latency_ms", "accuracy",
                                     "redeploy_count"};

void sim_replay_free(SimReplay *rp) {
    if (!rp) return;
    free(rp->states);
    free(rp->quality);
    free(rp->mean);
    free(rp->std);
    memset(rp, 0, sizeof *rp);
}

/* Splits a line in place at commas; returns the number of fields. */
static int split_csv(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    for (int i = 0; i < n; i++) {
        char *f = fields[i];
        while (*f == ' ' || *f == '\t') f++;
        size_t l = strlen(f);
        while (l && (f[l - 1] == '\r' || f[l - 1] == '\n' || f[l - 1] == ' ')) f[--l] = 0;
        fields[i] = f;
    }
    return n;
}

/* Linear interpolation of NaNs; ends take the nearest value.  Returns 0 when
 * the column has no value at all. */
static int interpolate(double *x, int n) {
    int prev = -1;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        if (prev < 0) {
            for (int j = 0; j < i; j++) x[j] = x[i];
        } else {
            for (int j = prev + 1; j < i; j++)
                x[j] = x[prev] + (x[i] - x[prev]) * (double)(j - prev) / (double)(i - prev);
        }
        prev = i;
    }
    if (prev < 0) return 0;
    for (int j = prev + 1; j < n; j++) x[j] = x[prev];
    return 1;
}

DpStatus sim_replay_load(SimReplay *rp, const char *path, int window, int zscore,
                         const SimConfig *cfg, DpError *err) {
    memset(rp, 0, sizeof *rp);
    char *text = NULL;
    double *cols[7] = {0};
    DpStatus st = dp_read_file(path, &text, NULL, err);
    if (st) return st;
    if (window < 1) window = 1;
    /* count lines */
    int n_lines = 0;
    for (char *p = text; *p; p++) n_lines += *p == '\n';
    n_lines += 1;
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    if (!line) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: empty file", path);
        goto fail;
    }
    char *f[64];
    int nh = split_csv(line, f, 64), idx[7];
    for (int c = 0; c < 7; c++) {
        const char *want = c < 6 ? replay_cols[c] : "bleu";
        idx[c] = -1;
        for (int i = 0; i < nh; i++)
            if (!strcmp(f[i], want)) idx[c] = i;
        if (idx[c] < 0 && c < 6) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: line 1: missing column '%s'", path, want);
            goto fail;
        }
        cols[c] = dp_calloc((size_t)n_lines, sizeof(double));
        if (!cols[c]) {
            st = dp_fail(err, DP_ERR_NOMEM, "%s", path);
            goto fail;
        }
    }
    int n = 0, lineno = 1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        lineno++;
        if (!*line || *line == '\r') continue;
        int nf = split_csv(line, f, 64);
        for (int c = 0; c < 7; c++) {
            double v = NAN;
            if (idx[c] >= 0 && idx[c] < nf && *f[idx[c]] && strcmp(f[idx[c]], "nan") &&
                strcmp(f[idx[c]], "NaN")) {
                char *end;
                v = strtod(f[idx[c]], &end);
                if (*end) {
                    st = dp_fail(err, DP_ERR_PARSE, "%s: line %d: column '%s': not a number: '%s'",
                                 path, lineno, c < 6 ? replay_cols[c] : "bleu", f[idx[c]]);
                    goto fail;
                }
            }
            cols[c][n] = v;
        }
        n++;
    }
    if (n < 2) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: need at least 2 rows, got %d", path, n);
        goto fail;
    }
    for (int c = 0; c < 7; c++) {
        if (interpolate(cols[c], n)) continue;
        if (c == 6) { /* no BLEU recorded: use accuracy */
            memcpy(cols[6], cols[4], sizeof(double) * (size_t)n);
            continue;
        }
        st = dp_fail(err, DP_ERR_PARSE, "%s: column '%s' has no values", path, replay_cols[c]);
        goto fail;
    }
    rp->n_rows = n;
    rp->dim = 6;
    rp->states = dp_calloc((size_t)n * 6, sizeof(float));
    rp->quality = dp_calloc((size_t)n, sizeof(double));
    rp->mean = dp_calloc(6, sizeof(double));
    rp->std = dp_calloc(6, sizeof(double));
    if (!rp->states || !rp->quality || !rp->mean || !rp->std) {
        st = dp_fail(err, DP_ERR_NOMEM, "%s", path);
        goto fail;
    }
    double *roll = dp_calloc((size_t)n, sizeof(double));
    if (!roll) {
        st = dp_fail(err, DP_ERR_NOMEM, "%s", path);
        goto fail;
    }
    for (int c = 0; c < 6; c++) {
        double s = 0;
        for (int i = 0; i < n; i++) { /* trailing rolling mean over `window` rows */
            s += cols[c][i];
            if (i >= window) s -= cols[c][i - window];
            roll[i] = s / (double)(i + 1 < window ? i + 1 : window);
        }
        /* rows become paper-profile state vectors (sim_state_build's units),
         * so a policy trained here acts on the same vectors as everywhere */
        SimObservation o;
        memset(&o, 0, sizeof o);
        for (int i = 0; i < n; i++) {
            double *fld[6] = {&o.cpu, &o.memory, &o.request_rate, &o.latency_ms, &o.accuracy,
                            &o.redeploy_count};
            *fld[c] = roll[i];
            float v[SIM_STATE_MAX];
            sim_state_build(SIM_PROFILE_PAPER, &o, v);
            roll[i] = v[c];
            rp->states[(size_t)i * 6 + c] = v[c];
        }
        double m = dp_mean(roll, (size_t)n), sd = dp_std(roll, (size_t)n);
        if (!(sd > 1e-12)) sd = 1;
        rp->mean[c] = m;
        rp->std[c] = sd;
        if (zscore)
            for (int i = 0; i < n; i++) rp->states[(size_t)i * 6 + c] = (float)((roll[i] - m) / sd);
    }
    free(roll);
    rp->reward = cfg->reward;
    rp->interval_s = cfg->interval_s;
    rp->n_targets = cfg->n_targets;
    for (int k = 0; k < cfg->n_targets; k++)
        rp->price[k] = cfg->reward.cost_mode == SIM_COST_FLAT
                           ? cfg->targets[k].price
                           : cfg->model.gpu_hours / cfg->targets[k].speed * cfg->targets[k].price_per_gpu_hour;
    for (int i = 0; i < n; i++) {
        double k = rp->reward.quality_unit_s > 0 ? rp->interval_s / rp->reward.quality_unit_s : 1;
        rp->quality[i] = k * (rp->reward.w_bleu * cols[6][i] + rp->reward.w_accuracy * cols[4][i]);
    }
    rp->episode_len = n - 1;
    for (int c = 0; c < 7; c++) free(cols[c]);
    free(text);
    return DP_OK;
fail:
    for (int c = 0; c < 7; c++) free(cols[c]);
    free(text);
    sim_replay_free(rp);
    return st;
}

double sim_replay_reward(const SimReplay *rp, int i, int action) {
    int next = i + 1 < rp->n_rows ? i + 1 : rp->n_rows - 1;
    double cost = 0;
    if (action >= 1 && action <= rp->n_targets) cost = rp->price[action - 1];
    return rp->quality[next] - rp->reward.cost_weight * cost;
}
