/* Drift detectors on the labelled-quality stream — Page-Hinkley and ADWIN
 * with the definitions (and quirks) of River's river.drift.PageHinkley and
 * river.drift.ADWIN — and the policy that retrains when one fires. */
#include "policy_impl.h"

#include <math.h>
#include <string.h>

// ---- Page-Hinkley ----

void page_hinkley_init(PageHinkley *ph, int min_instances, double delta, double threshold,
                       double alpha, PageHinkleyMode mode) {
    memset(ph, 0, sizeof *ph);
    ph->min_instances = min_instances;
    ph->delta = delta;
    ph->threshold = threshold;
    ph->alpha = alpha;
    ph->mode = mode;
    page_hinkley_reset(ph);
}

void page_hinkley_reset(PageHinkley *ph) {
    ph->n = 0;
    ph->mean = 0;
    ph->sum_inc = ph->sum_dec = 0;
    ph->min_inc = INFINITY;
    ph->max_dec = -INFINITY;
    ph->drift = 0;
}

int page_hinkley_update(PageHinkley *ph, double x) {
    if (ph->drift) page_hinkley_reset(ph);
    ph->n++;
    ph->mean += (x - ph->mean) / (double)ph->n;
    double dev = x - ph->mean;
    ph->sum_inc = ph->alpha * ph->sum_inc + dev - ph->delta;
    ph->sum_dec = ph->alpha * ph->sum_dec + dev + ph->delta;
    if (ph->sum_inc < ph->min_inc) ph->min_inc = ph->sum_inc;
    if (ph->sum_dec > ph->max_dec) ph->max_dec = ph->sum_dec;
    if (ph->n >= ph->min_instances) {
        double up = ph->sum_inc - ph->min_inc, down = ph->max_dec - ph->sum_dec;
        int d_up = up > ph->threshold, d_down = down > ph->threshold;
        ph->drift = ph->mode == PH_MODE_UP ? d_up : ph->mode == PH_MODE_DOWN ? d_down : (d_up || d_down);
    }
    return ph->drift;
}

// ---- ADWIN ----

void adwin_init(Adwin *a, double delta, int clock, int max_buckets, int min_window_length,
                int grace_period) {
    memset(a, 0, sizeof *a);
    a->delta = delta;
    a->clock = clock < 1 ? 1 : clock;
    a->max_buckets = max_buckets < 1 ? 1 : max_buckets > ADWIN_MAX_BUCKETS ? ADWIN_MAX_BUCKETS : max_buckets;
    a->min_window_length = min_window_length;
    a->grace_period = grace_period;
    a->n_rows = 1;
}

static void row_push(AdwinRow *r, double total, double var) {
    r->total[r->n] = total;
    r->var[r->n] = var;
    r->n++;
}

/* Drops the k oldest buckets of a row. */
static void row_drop(AdwinRow *r, int k) {
    for (int i = k; i < r->n; i++) {
        r->total[i - k] = r->total[i];
        r->var[i - k] = r->var[i];
    }
    r->n -= k;
}

static void adwin_compress(Adwin *a) {
    for (int idx = 0; idx < a->n_rows; idx++) {
        AdwinRow *r = &a->rows[idx];
        if (r->n != a->max_buckets + 1) break;
        if (idx + 1 == a->n_rows) {
            if (a->n_rows == ADWIN_MAX_ROWS) break; /* 2^63 values: not reachable */
            memset(&a->rows[a->n_rows], 0, sizeof(AdwinRow));
            a->n_rows++;
        }
        double n1 = ldexp(1, idx), n2 = n1;
        double mu1 = r->total[0] / n1, mu2 = r->total[1] / n2;
        double t12 = r->total[0] + r->total[1];
        double v12 = r->var[0] + r->var[1] + n1 * n2 * (mu1 - mu2) * (mu1 - mu2) / (n1 + n2);
        row_push(&a->rows[idx + 1], t12, v12);
        row_drop(r, 2);
        if (a->rows[idx + 1].n <= a->max_buckets) break;
    }
}

/* Removes the oldest bucket; returns its size. */
static double adwin_delete_oldest(Adwin *a) {
    int last = a->n_rows - 1;
    AdwinRow *r = &a->rows[last];
    double n = ldexp(1, last), u = r->total[0], mu = u / n, v = r->var[0];
    a->width -= n;
    a->total -= u;
    if (a->width > 0) {
        double mw = a->total / a->width;
        a->variance -= v + n * a->width * (mu - mw) * (mu - mw) / (n + a->width);
    } else {
        a->variance = 0;
    }
    row_drop(r, 1);
    if (r->n == 0 && a->n_rows > 1) a->n_rows--;
    return n;
}

static int adwin_cut(const Adwin *a, double n0, double n1, double dmean) {
    double dp = log(2 * log(a->width) / a->delta);
    double m = 1.0 / (n0 - a->min_window_length + 1) + 1.0 / (n1 - a->min_window_length + 1);
    double eps = sqrt(2 * m * (a->variance / a->width) * dp) + 2.0 / 3.0 * dp * m;
    return fabs(dmean) > eps;
}

int adwin_update(Adwin *a, double x) {
    /* insert */
    row_push(&a->rows[0], x, 0);
    a->width += 1;
    if (a->width > 1) {
        double m = a->total / (a->width - 1);
        a->variance += (a->width - 1) * (x - m) * (x - m) / a->width;
    }
    a->total += x;
    adwin_compress(a);
    /* detect */
    int change = 0;
    a->tick++;
    if (a->tick % a->clock == 0 && a->width > a->grace_period) {
        int reduce = 1;
        while (reduce) {
            reduce = 0;
            int exit_flag = 0;
            double n0 = 0, n1 = a->width, u0 = 0, u1 = a->total;
            for (int idx = a->n_rows - 1; idx >= 0 && !exit_flag; idx--) {
                AdwinRow *r = &a->rows[idx];
                double n2 = ldexp(1, idx);
                /* River scans all but the newest bucket of each row */
                for (int k = 0; k < r->n - 1; k++) {
                    double u2 = r->total[k];
                    n0 += n2;
                    n1 -= n2;
                    u0 += u2;
                    u1 -= u2;
                    if (n1 >= a->min_window_length && n0 >= a->min_window_length &&
                        adwin_cut(a, n0, n1, u0 / n0 - u1 / n1)) {
                        reduce = 1;
                        change = 1;
                        if (a->width > 0) {
                            n0 -= adwin_delete_oldest(a);
                            exit_flag = 1;
                            break;
                        }
                    }
                }
            }
        }
    }
    if (change) a->n_detections++;
    return change;
}

// ---- the drift policy ----

void policy_drift_defaults(PolicyDriftConfig *c, PolicyDetector detector) {
    memset(c, 0, sizeof *c);
    c->detector = detector;
    /* River's defaults are for streams of errors in the tens; these suit one
     * accuracy reading (sd about 0.02) per minute. */
    c->ph_min_instances = 10;
    c->ph_delta = 0.005;
    c->ph_threshold = 0.25;
    c->ph_alpha = 1 - 0.0001;
    c->adwin_delta = 0.002;
    c->adwin_clock = 1;
    c->cooldown_s = 600;
    c->mode = POLICY_TARGET_CHEAPEST;
}

typedef struct {
    PolicyDriftConfig c;
    PageHinkley ph;
    Adwin adwin;
    double last_s, last_redeploys, before_mean;
    int rr, alarm;
} DriftImpl;

static void drift_restart_detector(DriftImpl *s) {
    page_hinkley_init(&s->ph, s->c.ph_min_instances, s->c.ph_delta, s->c.ph_threshold,
                      s->c.ph_alpha, PH_MODE_DOWN);
    adwin_init(&s->adwin, s->c.adwin_delta, s->c.adwin_clock, 5, 5, 10);
}

static void drift_reset(Policy *p) {
    DriftImpl *s = p->impl;
    drift_restart_detector(s);
    s->last_s = -1e18;
    s->last_redeploys = 0;
    s->rr = 0;
    s->alarm = 0;
}

static int drift_decide(Policy *p, const SimObservation *o) {
    DriftImpl *s = p->impl;
    if (o->redeploy_count != s->last_redeploys) {
        /* our own retrain moved the stream: watch the new model afresh */
        s->last_redeploys = o->redeploy_count;
        drift_restart_detector(s);
        s->alarm = 0;
    }
    double x = s->c.use_bleu ? o->bleu : o->accuracy;
    if (s->c.detector == POLICY_DETECTOR_PH) {
        if (page_hinkley_update(&s->ph, x)) s->alarm = 1;
    } else {
        double before = adwin_mean(&s->adwin);
        if (adwin_update(&s->adwin, x) && adwin_mean(&s->adwin) < before) s->alarm = 1;
    }
    if (!s->alarm || o->job_running || o->time_s - s->last_s < s->c.cooldown_s - 1e-6) return 0;
    int k = policy_choose_target_(s->c.mode, s->c.target, &s->rr, o);
    if (k < 0 || !o->up[k]) return 0;
    s->alarm = 0;
    s->last_s = o->time_s;
    return policy_retrain_action_(p, k, o);
}

static const PolicyVtbl drift_vt = {"drift", drift_reset, NULL, drift_decide, NULL};

DpStatus policy_drift_create(const PolicyDriftConfig *c, const SimConfig *cfg, Policy **out,
                             DpError *err) {
    if (c->mode == POLICY_TARGET_FIXED && (c->target < 0 || c->target >= cfg->n_targets))
        return dp_fail(err, DP_ERR_INVAL, "drift: target %d out of range", c->target);
    if (!(c->adwin_delta > 0 && c->adwin_delta < 1))
        return dp_fail(err, DP_ERR_INVAL, "drift: adwin delta must be in (0,1)");
    Policy *p = policy_alloc_(&drift_vt, cfg, sizeof(DriftImpl));
    if (!p) return dp_fail(err, DP_ERR_NOMEM, "policy");
    DriftImpl *s = p->impl;
    s->c = *c;
    snprintf(p->name, sizeof p->name, "%s", c->detector == POLICY_DETECTOR_PH ? "page-hinkley" : "adwin");
    drift_reset(p);
    *out = p;
    return DP_OK;
}
