/*
 * html.c: report.html -- one self-contained page: the table, the
 * simulator-vs-live table, and the charts as inline SVG generated here.
 *
 * Nothing is fetched: no script, no web font, no external stylesheet or
 * image, so the page opens offline and renders the same in any browser
 * (the test screenshots it in headless Chromium).  Charts share one layout
 * (a title, a legend row, the plot, optional marker lanes, the x axis in
 * scenario time) so they line up when scrolled through.  Colours are the
 * Okabe-Ito palette, distinguishable with the common colour-vision
 * deficiencies; line styles (solid/dashed/dotted) carry the second
 * dimension (percentile, live vs simulator) so colour is never the only cue.
 */
#include "report_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                "#E69F00", "#56B4E9", "#000000", "#F0E442"};
#define PAL(i) palette[(i) % 8]

DpStatus rp_html_escape(DpBuf *b, const char *s) {
    DpStatus st = DP_OK;
    for (; s && *s && !st; s++) {
        switch (*s) {
        case '&': st = dp_buf_append(b, "&amp;", 5); break;
        case '<': st = dp_buf_append(b, "&lt;", 4); break;
        case '>': st = dp_buf_append(b, "&gt;", 4); break;
        case '"': st = dp_buf_append(b, "&quot;", 6); break;
        case '\'': st = dp_buf_append(b, "&#39;", 5); break;
        default: st = dp_buf_append(b, s, 1);
        }
    }
    return st;
}

// ---- chart geometry ----

#define W 1160.0
#define ML 96.0   /* left margin: y tick labels, lane names */
#define MR 24.0
#define MT 62.0   /* title and legend */
#define PH 250.0  /* plot height */
#define LANE 15.0 /* one marker lane */

typedef struct {
    const char *label;
    const char *color;
    const char *dash;      /* stroke-dasharray or NULL */
    double width;
    double opacity;
    int n;
    const double *x;       /* scenario seconds */
    const double *y;       /* NaN breaks the line */
    int step;              /* draw as a staircase (cumulative cost) */
} Line;

typedef struct {
    const char *label;     /* in the legend; NULL: not listed */
    const char *color;
    const char *dash;
} LegendKey;

typedef struct {
    DpBuf *b;
    double xmax;           /* scenario seconds */
    double xdiv;           /* 3600 (hours) or 60 (minutes) */
    const char *xunit;
    double ylo, yhi;
    double plot_w;
} Axes;

static double xpix(const Axes *a, double x) { return ML + x / a->xmax * a->plot_w; }
static double ypix(const Axes *a, double y) { return MT + PH - (y - a->ylo) / (a->yhi - a->ylo) * PH; }

/* A "nice" tick step (1, 2, 2.5 or 5 times a power of ten) giving about n ticks. */
static double nice_step(double range, int n) {
    if (!(range > 0)) return 1;
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    double m = f < 1.5 ? 1 : f < 2.25 ? 2 : f < 3.5 ? 2.5 : f < 7.5 ? 5 : 10;
    return m * p;
}

static int decimals_for(double step) {
    if (step >= 1) return 0;
    int d = (int)ceil(-log10(step) - 1e-9);
    if (fabs(step * pow(10, d) - round(step * pow(10, d))) > 1e-6) d++;
    return d > 6 ? 6 : d;
}

static void axes_init(Axes *a, DpBuf *b, double xmax_s) {
    a->b = b;
    a->xmax = xmax_s > 0 ? xmax_s : 60;
    a->xdiv = a->xmax >= 3 * 3600 ? 3600 : 60;
    a->xunit = a->xdiv == 3600 ? "h" : "min";
    a->plot_w = W - ML - MR;
}

/* y range from the data, padded, optionally including 0 and clamped. */
static void axes_fit_y(Axes *a, const Line *l, int nl, int with_zero, double clamp_lo,
                       double clamp_hi) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < nl; i++)
        for (int k = 0; k < l[i].n; k++)
            if (isfinite(l[i].y[k])) {
                lo = fmin(lo, l[i].y[k]);
                hi = fmax(hi, l[i].y[k]);
            }
    if (!isfinite(lo)) lo = 0, hi = 1;
    if (with_zero) lo = fmin(lo, 0);
    double pad = (hi - lo) * 0.08;
    if (pad <= 0) pad = fabs(hi) * 0.1 + 0.05;
    lo = with_zero && lo >= 0 ? 0 : lo - pad;
    hi += pad;
    if (isfinite(clamp_lo)) lo = fmax(lo, clamp_lo);
    if (isfinite(clamp_hi)) hi = fmin(hi, clamp_hi);
    if (hi <= lo) hi = lo + 1;
    double st = nice_step(hi - lo, 5);
    a->ylo = floor(lo / st + 1e-9) * st;
    a->yhi = ceil(hi / st - 1e-9) * st;
    if (isfinite(clamp_lo)) a->ylo = fmax(a->ylo, clamp_lo);
    if (isfinite(clamp_hi)) a->yhi = fmin(a->yhi, clamp_hi);
    if (a->yhi <= a->ylo) a->yhi = a->ylo + st;
}

static DpStatus svg_open(DpBuf *b, const char *id, double h, const char *title,
                         const char *desc) {
    DpStatus s = dp_buf_printf(b,
                               "<svg id=\"%s\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
                               "viewBox=\"0 0 %.0f %.0f\" width=\"100%%\" role=\"img\" "
                               "aria-labelledby=\"%s-t\">\n<title id=\"%s-t\">",
                               id, W, h, id, id);
    s = s ? s : rp_html_escape(b, title);
    s = s ? s : dp_buf_printf(b, "</title>\n<desc>");
    s = s ? s : rp_html_escape(b, desc);
    s = s ? s : dp_buf_printf(b, "</desc>\n<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" "
                                 "fill=\"#ffffff\"/>\n<text x=\"%.0f\" y=\"22\" class=\"ct\">",
                              W, h, ML);
    s = s ? s : rp_html_escape(b, title);
    return s ? s : dp_buf_printf(b, "</text>\n");
}

/* The legend row under the title: one key per entry (a short line sample in
 * its colour and dash, then the label), wrapping is not needed for the few
 * entries a chart has. */
static DpStatus svg_legend(DpBuf *b, const LegendKey *k, int n, double x0) {
    double x = x0, y = 44;
    DpStatus s = DP_OK;
    for (int i = 0; i < n && !s; i++) {
        if (!k[i].label) continue;
        if (!strcmp(k[i].dash ? k[i].dash : "", "marker-retrain")) {
            s = dp_buf_printf(b, "<path d=\"M%.1f %.1f l5 -9 l5 9 z\" fill=\"#555\"/>", x + 8, y + 4);
        } else if (!strcmp(k[i].dash ? k[i].dash : "", "marker-redeploy")) {
            s = dp_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                                 "stroke=\"#555\" stroke-width=\"2.5\"/>", x + 13, y - 7, x + 13, y + 5);
        } else if (!strcmp(k[i].dash ? k[i].dash : "", "marker-rollback")) {
            s = dp_buf_printf(b, "<path d=\"M%.1f %.1f l8 8 m0 -8 l-8 8\" stroke=\"#C00000\" "
                                 "stroke-width=\"2\"/>", x + 9, y - 5);
        } else if (!strcmp(k[i].dash ? k[i].dash : "", "bar-live")) {
            s = dp_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"22\" height=\"11\" fill=\"#777\"/>",
                              x + 2, y - 7);
        } else if (!strcmp(k[i].dash ? k[i].dash : "", "bar-sim")) {
            s = dp_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"22\" height=\"11\" fill=\"#fff\" "
                                 "stroke=\"#777\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>",
                              x + 2, y - 7);
        } else {
            s = dp_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                                 "stroke-width=\"2.5\"%s%s%s/>",
                              x, y - 1, x + 26, y - 1, k[i].color, k[i].dash ? " stroke-dasharray=\"" : "",
                              k[i].dash ? k[i].dash : "", k[i].dash ? "\"" : "");
        }
        s = s ? s : dp_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"lg\">", x + 32, y + 3);
        s = s ? s : rp_html_escape(b, k[i].label);
        s = s ? s : dp_buf_printf(b, "</text>\n");
        x += 32 + 7.0 * (double)strlen(k[i].label) + 22;
    }
    return s;
}

/* Grid, y ticks and label; x ticks at y = xaxis_y with vertical grid lines
 * through the plot and lanes. */
static DpStatus svg_axes(const Axes *a, const char *ylabel, double lanes_h) {
    DpBuf *b = a->b;
    double yst = nice_step(a->yhi - a->ylo, 5);
    int yd = decimals_for(yst);
    DpStatus s = DP_OK;
    for (double v = a->ylo; v <= a->yhi + yst * 1e-6 && !s; v += yst) {
        double y = ypix(a, v);
        s = dp_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"gr\"/>"
                             "<text x=\"%.1f\" y=\"%.1f\" class=\"yt\">%.*f</text>\n",
                          ML, y, W - MR, y, ML - 8, y + 4, yd, v);
    }
    double xmax_u = a->xmax / a->xdiv, xst = nice_step(xmax_u, 8);
    int xd = decimals_for(xst);
    double bottom = MT + PH + lanes_h;
    for (double u = 0; u <= xmax_u + xst * 1e-6 && !s; u += xst) {
        double x = xpix(a, u * a->xdiv);
        s = dp_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"gr\"/>"
                             "<text x=\"%.1f\" y=\"%.1f\" class=\"xt\">%.*f</text>\n",
                          x, MT, x, bottom, x, bottom + 17, xd, u);
    }
    s = s ? s : dp_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>\n",
                              ML, MT, a->plot_w, PH);
    s = s ? s : dp_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"xl\">scenario time (%s)</text>\n",
                              ML + a->plot_w / 2, bottom + 38, a->xunit);
    s = s ? s : dp_buf_printf(b, "<text transform=\"translate(18 %.1f) rotate(-90)\" class=\"yl\">",
                              MT + PH / 2);
    s = s ? s : rp_html_escape(b, ylabel);
    return s ? s : dp_buf_printf(b, "</text>\n");
}

static DpStatus svg_line(const Axes *a, const Line *l) {
    DpBuf *b = a->b;
    DpStatus s = dp_buf_printf(b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" "
                                  "stroke-linejoin=\"round\" stroke-opacity=\"%.2f\"",
                               l->color, l->width, l->opacity > 0 ? l->opacity : 1.0);
    if (!s && l->dash) s = dp_buf_printf(b, " stroke-dasharray=\"%s\"", l->dash);
    s = s ? s : dp_buf_printf(b, " d=\"");
    int pen = 0;
    for (int k = 0; k < l->n && !s; k++) {
        if (!isfinite(l->y[k]) || !isfinite(l->x[k])) {
            pen = 0;
            continue;
        }
        double x = xpix(a, fmin(l->x[k], a->xmax)), y = ypix(a, l->y[k]);
        if (!pen) s = dp_buf_printf(b, "M%.1f %.1f", x, y);
        else if (l->step) s = dp_buf_printf(b, "H%.1fV%.1f", x, y);
        else s = dp_buf_printf(b, "L%.1f %.1f", x, y);
        pen = 1;
    }
    s = s ? s : dp_buf_printf(b, "\"><title>");
    s = s ? s : rp_html_escape(b, l->label ? l->label : "");
    return s ? s : dp_buf_printf(b, "</title></path>\n");
}

// ---- the charts ----

typedef struct {
    const RpData *d;
    const ReportTable *t;
    double xmax;
    double *xs;            /* interval starts, scenario s */
    double *xe;            /* interval ends */
} Ctx;

/* Quality over time: one line per pipeline (mean over repeats), the
 * simulator's prediction dashed, and marker lanes (one per run) with
 * retrain starts, redeploys and rollbacks. */
static DpStatus chart_quality(const Ctx *c, DpBuf *b, int q, const char *id, const char *title,
                              const char *ylabel) {
    const RpData *d = c->d;
    Line lines[2 * REPORT_MAX_PIPELINES];
    LegendKey keys[REPORT_MAX_PIPELINES + 6];
    char sim_labels[REPORT_MAX_PIPELINES][REPORT_NAME_MAX * 2 + 16];
    int nl = 0, nk = 0, any_sim = 0;
    for (int p = 0; p < d->n_pipe; p++) {
        lines[nl++] = (Line){d->names[p], PAL(p), NULL, 2.2, 1, d->n_int, c->xs, d->mean_q[p][q], 0};
        keys[nk++] = (LegendKey){d->names[p], PAL(p), NULL};
        const RpArr *sy = q == RQ_BLEU ? &d->sim_bleu[p] : &d->sim_acc[p];
        if (sy->n) {
            snprintf(sim_labels[p], sizeof sim_labels[p], "%s (simulator)", d->names[p]);
            lines[nl++] = (Line){sim_labels[p], PAL(p), "7 5", 1.6, 0.85, (int)sy->n,
                                 d->sim_t[p].v, sy->v, 0};
            any_sim = 1;
        }
    }
    if (any_sim) keys[nk++] = (LegendKey){"simulator prediction", "#555", "7 5"};
    keys[nk++] = (LegendKey){"retrain started", NULL, "marker-retrain"};
    keys[nk++] = (LegendKey){"redeploy", NULL, "marker-redeploy"};
    int any_rb = 0;
    for (int i = 0; i < d->n_runs; i++) any_rb |= d->runs[i].rollback_t.n > 0;
    if (any_rb) keys[nk++] = (LegendKey){"rollback", NULL, "marker-rollback"};

    double lanes_h = d->n_runs * LANE + 8;
    double h = MT + PH + lanes_h + 50;
    Axes a;
    axes_init(&a, b, c->xmax);
    axes_fit_y(&a, lines, nl, 0, 0, 1);
    char desc[256];
    snprintf(desc, sizeof desc, "%s per decision interval, mean over repeats, with markers per run",
             ylabel);
    DpStatus s = svg_open(b, id, h, title, desc);
    s = s ? s : svg_legend(b, keys, nk, ML);
    s = s ? s : svg_axes(&a, ylabel, lanes_h);
    for (int i = 0; i < nl && !s; i++) s = svg_line(&a, &lines[i]);
    /* Marker lanes: one per run, labelled "pipeline #repeat". */
    for (int i = 0; i < d->n_runs && !s; i++) {
        const RpRun *R = &d->runs[i];
        const char *col = PAL(R->pipeline);
        double y = MT + PH + 8 + i * LANE + LANE / 2;
        s = dp_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"lane\"/>"
                             "<text x=\"%.1f\" y=\"%.1f\" class=\"ln\" fill=\"%s\">",
                          ML, y, W - MR, y, ML - 8, y + 4, col);
        s = s ? s : rp_html_escape(b, d->names[R->pipeline]);
        s = s ? s : dp_buf_printf(b, " #%d</text>\n", R->repeat + 1);
        for (size_t k = 0; k < R->redeploy_t.n && !s; k++)
            s = dp_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                                 "stroke-width=\"2.5\" class=\"mk-redeploy\"/>",
                              xpix(&a, R->redeploy_t.v[k]), y - 6, xpix(&a, R->redeploy_t.v[k]), y + 6, col);
        for (size_t k = 0; k < R->retrain_t.n && !s; k++)
            s = dp_buf_printf(b, "<path d=\"M%.1f %.1f l5 -9 l5 9 z\" fill=\"%s\" class=\"mk-retrain\"/>",
                              xpix(&a, R->retrain_t.v[k]) - 5, y + 4.5, col);
        for (size_t k = 0; k < R->rollback_t.n && !s; k++)
            s = dp_buf_printf(b, "<path d=\"M%.1f %.1f l8 8 m0 -8 l-8 8\" stroke=\"#C00000\" "
                                 "stroke-width=\"2\" class=\"mk-rollback\"/>",
                              xpix(&a, R->rollback_t.v[k]) - 4, y - 4);
        s = s ? s : dp_buf_printf(b, "\n");
    }
    return s ? s : dp_buf_printf(b, "</svg>\n");
}

static DpStatus chart_latency(const Ctx *c, DpBuf *b) {
    const RpData *d = c->d;
    Line lines[3 * REPORT_MAX_PIPELINES];
    LegendKey keys[REPORT_MAX_PIPELINES + 4];
    static const char *dash[3] = {NULL, "7 4", "2 3"};
    static const char *pname[3] = {"p50", "p95", "p99"};
    char labels[3 * REPORT_MAX_PIPELINES][REPORT_NAME_MAX + 16];
    int nl = 0, nk = 0, any_pct = 0;
    for (int p = 0; p < d->n_pipe; p++) {
        keys[nk++] = (LegendKey){d->names[p], PAL(p), NULL};
        int has = 0;
        for (int k = 0; k < d->n_int; k++) has |= !isnan(d->mean_q[p][RQ_P50][k]);
        for (int j = 0; j < 3 && has; j++) {
            snprintf(labels[nl], sizeof labels[nl], "%s %s", d->names[p], pname[j]);
            lines[nl] = (Line){labels[nl], PAL(p), dash[j], j ? 1.6 : 2.2, 1, d->n_int, c->xs,
                               d->mean_q[p][RQ_P50 + j], 0};
            nl++;
        }
        if (!has) {
            snprintf(labels[nl], sizeof labels[nl], "%s mean", d->names[p]);
            lines[nl] = (Line){labels[nl], PAL(p), NULL, 2.2, 1, d->n_int, c->xs,
                               d->mean_q[p][RQ_LAT], 0};
            nl++;
        }
        any_pct |= has;
    }
    if (any_pct) {
        keys[nk++] = (LegendKey){"p50", "#555", NULL};
        keys[nk++] = (LegendKey){"p95", "#555", "7 4"};
        keys[nk++] = (LegendKey){"p99", "#555", "2 3"};
    }
    Axes a;
    axes_init(&a, b, c->xmax);
    axes_fit_y(&a, lines, nl, 1, NAN, NAN);
    double h = MT + PH + 50;
    DpStatus s = svg_open(b, "chart-latency", h,
                          any_pct ? "Request latency percentiles per decision interval"
                                  : "Mean request latency per decision interval",
                          "latency in milliseconds, mean over repeats");
    s = s ? s : svg_legend(b, keys, nk, ML);
    s = s ? s : svg_axes(&a, "latency (ms)", 0);
    for (int i = 0; i < nl && !s; i++) s = svg_line(&a, &lines[i]);
    return s ? s : dp_buf_printf(b, "</svg>\n");
}

static DpStatus chart_simple(const Ctx *c, DpBuf *b, const char *id, const char *title,
                             const char *ylabel, double *const *ys, const double *xs, int n,
                             int step) {
    const RpData *d = c->d;
    Line lines[REPORT_MAX_PIPELINES];
    LegendKey keys[REPORT_MAX_PIPELINES];
    for (int p = 0; p < d->n_pipe; p++) {
        lines[p] = (Line){d->names[p], PAL(p), NULL, 2.2, 1, n, xs, ys[p], step};
        keys[p] = (LegendKey){d->names[p], PAL(p), NULL};
    }
    Axes a;
    axes_init(&a, b, c->xmax);
    axes_fit_y(&a, lines, d->n_pipe, 1, NAN, NAN);
    DpStatus s = svg_open(b, id, MT + PH + 50, title, ylabel);
    s = s ? s : svg_legend(b, keys, d->n_pipe, ML);
    s = s ? s : svg_axes(&a, ylabel, 0);
    for (int i = 0; i < d->n_pipe && !s; i++) s = svg_line(&a, &lines[i]);
    return s ? s : dp_buf_printf(b, "</svg>\n");
}

/* Retrains per run: a filled bar (live, mean with a ±std whisker) and a
 * dashed outline bar (the simulator's prediction) per pipeline. */
static DpStatus chart_retrains(const Ctx *c, DpBuf *b) {
    const ReportTable *t = c->t;
    double hi = 1;
    int any_sim = 0;
    for (int r = 0; r < t->n_rows; r++) {
        const ReportRow *w = &t->rows[r];
        hi = fmax(hi, w->retrains_mean + (isnan(w->retrains_std) ? 0 : w->retrains_std));
        if (w->has_sim && isfinite(w->sim_retrains)) {
            hi = fmax(hi, w->sim_retrains);
            any_sim = 1;
        }
    }
    double st = nice_step(hi * 1.1, 5);
    Axes a;
    axes_init(&a, b, 1);
    a.ylo = 0;
    a.yhi = ceil(hi * 1.1 / st) * st;
    double h = MT + PH + 50;
    LegendKey keys[2] = {{"live run (mean ± std over repeats)", NULL, "bar-live"},
                         {"simulator prediction", NULL, "bar-sim"}};
    DpStatus s = svg_open(b, "chart-retrains", h, "Retrains per run",
                          "number of retrain jobs per run, live and predicted by the simulator");
    s = s ? s : svg_legend(b, keys, any_sim ? 2 : 1, ML);
    int yd = decimals_for(st);
    for (double v = 0; v <= a.yhi + st * 1e-6 && !s; v += st) {
        double y = ypix(&a, v);
        s = dp_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"gr\"/>"
                             "<text x=\"%.1f\" y=\"%.1f\" class=\"yt\">%.*f</text>\n",
                          ML, y, W - MR, y, ML - 8, y + 4, yd, v);
    }
    s = s ? s : dp_buf_printf(b, "<text transform=\"translate(18 %.1f) rotate(-90)\" class=\"yl\">"
                                 "retrains per run</text>\n", MT + PH / 2);
    double slot = a.plot_w / (t->n_rows ? t->n_rows : 1), bw = fmin(90, slot / 3.2);
    for (int r = 0; r < t->n_rows && !s; r++) {
        const ReportRow *w = &t->rows[r];
        double cx = ML + slot * (r + 0.5), x0 = any_sim ? cx - bw - 4 : cx - bw / 2;
        double y = ypix(&a, w->retrains_mean), y0 = ypix(&a, 0);
        s = dp_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                             "class=\"bar-live\"><title>%.2f</title></rect>\n",
                          x0, y, bw, y0 - y, PAL(r), w->retrains_mean);
        if (!s && w->n_repeats > 1 && w->retrains_std > 0) {
            double y1 = ypix(&a, w->retrains_mean - w->retrains_std),
                   y2 = ypix(&a, w->retrains_mean + w->retrains_std), xm = x0 + bw / 2;
            s = dp_buf_printf(b, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fh12M%.1f %.1fh12\" stroke=\"#222\" "
                                 "stroke-width=\"1.5\"/>\n", xm, y1, y2, xm - 6, y1, xm - 6, y2);
        }
        s = s ? s : dp_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"bv\">%.1f</text>\n",
                                  x0 + bw / 2, fmin(y, ypix(&a, w->retrains_mean + (isnan(w->retrains_std) ? 0 : w->retrains_std))) - 6,
                                  w->retrains_mean);
        if (!s && any_sim && w->has_sim && isfinite(w->sim_retrains)) {
            double ys = ypix(&a, w->sim_retrains), xs = cx + 4;
            s = dp_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" "
                                 "stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"6 3\" class=\"bar-sim\">"
                                 "<title>%.2f</title></rect>\n"
                                 "<text x=\"%.1f\" y=\"%.1f\" class=\"bv\">%.1f</text>\n",
                              xs, ys, bw, y0 - ys, PAL(r), w->sim_retrains, xs + bw / 2, ys - 6,
                              w->sim_retrains);
        }
        s = s ? s : dp_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"xt cat\">", cx, y0 + 20);
        s = s ? s : rp_html_escape(b, w->pipeline);
        s = s ? s : dp_buf_printf(b, "</text>\n");
    }
    s = s ? s : dp_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                              ML, ypix(&a, 0), W - MR, ypix(&a, 0));
    return s ? s : dp_buf_printf(b, "</svg>\n");
}

// ---- the page ----

static const char *css =
    "body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Helvetica,Arial,sans-serif;"
    "color:#1a1a1a;background:#f6f7f9;margin:0}\n"
    "main{max-width:1240px;margin:0 auto;padding:20px 28px 40px}\n"
    "h1{font-size:26px;margin:8px 0 4px}h2{font-size:19px;margin:28px 0 8px}\n"
    ".meta{color:#555;font-size:14px;margin-bottom:12px}\n"
    "table{border-collapse:collapse;background:#fff;font-size:14px;margin:6px 0;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08)}\n"
    "th,td{padding:6px 10px;border-bottom:1px solid #e3e5e8;text-align:right;white-space:nowrap}\n"
    "th{background:#eef1f5;font-weight:600}td:first-child,th:first-child{text-align:left}\n"
    "td.sim{color:#555;font-style:italic}.sw{display:inline-block;width:11px;height:11px;"
    "border-radius:2px;margin-right:6px;vertical-align:-1px}\n"
    ".note{color:#555;font-size:13px;max-width:1100px}\n"
    "figure{background:#fff;margin:16px 0;padding:6px 8px 2px;border-radius:4px;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08)}figcaption{font-size:13px;color:#555;padding:0 8px 8px}\n"
    "svg.chart{display:block}svg .ct{font-size:17px;font-weight:600;fill:#1a1a1a}\n"
    "svg .lg{font-size:13px;fill:#333}svg .gr{stroke:#e6e8eb;stroke-width:1}\n"
    "svg .frame{fill:none;stroke:#9aa0a6;stroke-width:1}svg .lane{stroke:#eceef0;stroke-width:1}\n"
    "svg .yt{font-size:12px;fill:#444;text-anchor:end}svg .xt{font-size:12px;fill:#444;"
    "text-anchor:middle}svg .cat{font-size:14px;fill:#1a1a1a}\n"
    "svg .xl,svg .yl{font-size:13px;fill:#333;text-anchor:middle}"
    "svg .ln{font-size:11px;text-anchor:end}svg .bv{font-size:13px;fill:#1a1a1a;text-anchor:middle}\n";

static const char *fmt(char *buf, size_t cap, double x, int prec) {
    if (isnan(x)) snprintf(buf, cap, "—");
    else snprintf(buf, cap, "%.*f", prec, x);
    return buf;
}

static const char *fmt_pm(char *buf, size_t cap, double m, double sd, int prec) {
    if (isnan(m)) snprintf(buf, cap, "—");
    else if (isnan(sd)) snprintf(buf, cap, "%.*f", prec, m);
    else snprintf(buf, cap, "%.*f ± %.*f", prec, m, prec, sd);
    return buf;
}

static DpStatus html_tables(const ReportTable *t, const ReportInputs *in, DpBuf *b) {
    char a[10][96];
    int within = 0, any_sim = 0;
    DpStatus s = dp_buf_printf(b, "<h2>Results</h2>\n<table id=\"results-table\"><thead><tr>"
                                  "<th>pipeline</th><th>repeats</th><th>retrains</th><th>BLEU-1</th>"
                                  "<th>BLEU-1 range</th><th>latency (ms)</th><th>p95 (ms)</th>"
                                  "<th>exact match</th><th>F1</th><th>cost</th><th>reward</th>"
                                  "</tr></thead><tbody>\n");
    for (int r = 0; r < t->n_rows && !s; r++) {
        const ReportRow *w = &t->rows[r];
        within |= w->std_within_run;
        any_sim |= w->has_sim;
        char range[64];
        if (isnan(w->bleu_min)) snprintf(range, sizeof range, "—");
        else snprintf(range, sizeof range, "%.3f–%.3f", w->bleu_min, w->bleu_max);
        s = dp_buf_printf(b, "<tr><td><span class=\"sw\" style=\"background:%s\"></span>", PAL(r));
        s = s ? s : rp_html_escape(b, w->pipeline);
        const char *mk = w->std_within_run && !isnan(w->bleu_mean) ? " †" : "";
        const char *lmk = w->std_within_run && !isnan(w->latency_ms_mean) ? " †" : "";
        s = s ? s : dp_buf_printf(b, "</td><td>%d</td><td>%s</td><td>%s%s</td><td>%s</td><td>%s%s</td>"
                                     "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
                                  w->n_repeats, fmt_pm(a[0], 96, w->retrains_mean, w->retrains_std, 1),
                                  fmt_pm(a[1], 96, w->bleu_mean, w->bleu_std, 3), mk, range,
                                  fmt_pm(a[2], 96, w->latency_ms_mean, w->latency_ms_std, 1), lmk,
                                  fmt(a[3], 96, w->latency_p95_ms, 1), fmt(a[4], 96, w->exact_match_mean, 3),
                                  fmt(a[5], 96, w->f1_mean, 3), fmt(a[6], 96, w->cost_mean, 3),
                                  fmt(a[7], 96, w->reward_mean, 4));
    }
    s = s ? s : dp_buf_printf(b, "</tbody></table>\n<p class=\"note\">± is the sample standard "
                                 "deviation across repeats of each repeat's mean%s. BLEU-1 range: "
                                 "the lowest and highest decision-interval mean over all repeats. "
                                 "Cost is the total per run; reward is the mean per decision "
                                 "interval.</p>\n",
                              within ? "; † one repeat only: the deviation across its decision intervals" : "");
    if (!any_sim || s) return s;
    s = dp_buf_printf(b, "<h2>Simulator prediction beside the live result</h2>\n"
                         "<table id=\"sim-table\"><thead><tr><th>pipeline</th><th>source</th>"
                         "<th>retrains</th><th>BLEU-1</th><th>latency (ms)</th><th>exact match</th>"
                         "<th>cost</th><th>reward</th></tr></thead><tbody>\n");
    for (int r = 0; r < t->n_rows && !s; r++) {
        const ReportRow *w = &t->rows[r];
        s = dp_buf_printf(b, "<tr><td><span class=\"sw\" style=\"background:%s\"></span>", PAL(r));
        s = s ? s : rp_html_escape(b, w->pipeline);
        s = s ? s : dp_buf_printf(b, "</td><td>live</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                                     "<td>%s</td><td>%s</td></tr>\n",
                                  fmt(a[0], 96, w->retrains_mean, 1), fmt(a[1], 96, w->bleu_mean, 3),
                                  fmt(a[2], 96, w->latency_ms_mean, 1), fmt(a[3], 96, w->exact_match_mean, 3),
                                  fmt(a[4], 96, w->cost_mean, 3), fmt(a[5], 96, w->reward_mean, 4));
        if (s || !w->has_sim) continue;
        s = dp_buf_printf(b, "<tr class=\"simrow\"><td></td><td class=\"sim\">simulator: ");
        s = s ? s : rp_html_escape(b, w->sim_policy);
        s = s ? s : dp_buf_printf(b, "</td><td class=\"sim\">%s</td><td class=\"sim\">%s</td>"
                                     "<td class=\"sim\">%s</td><td class=\"sim\">%s</td><td class=\"sim\">%s</td>"
                                     "<td class=\"sim\">%s</td></tr>\n",
                                  fmt(a[0], 96, w->sim_retrains, 1), fmt(a[1], 96, w->sim_bleu, 3),
                                  fmt(a[2], 96, w->sim_latency_ms, 1), fmt(a[3], 96, w->sim_exact_match, 3),
                                  fmt(a[4], 96, w->sim_cost, 3), fmt(a[5], 96, w->sim_reward, 4));
        char d[4][48];
        snprintf(d[0], 48, "%+.1f", w->retrains_mean - w->sim_retrains);
        snprintf(d[1], 48, "%+.3f", w->bleu_mean - w->sim_bleu);
        snprintf(d[2], 48, "%+.1f", w->latency_ms_mean - w->sim_latency_ms);
        snprintf(d[3], 48, "%+.3f", w->exact_match_mean - w->sim_exact_match);
        s = s ? s : dp_buf_printf(b, "<tr class=\"deltarow\"><td></td><td class=\"sim\">live − simulator</td>"
                                     "<td class=\"sim\">%s</td><td class=\"sim\">%s</td><td class=\"sim\">%s</td>"
                                     "<td class=\"sim\">%s</td><td></td><td></td></tr>\n",
                                  d[0], d[1], d[2], d[3]);
    }
    s = s ? s : dp_buf_printf(b, "</tbody></table>\n<p class=\"note\">The simulator's numbers "
                                 "are its mean over seeds for scenario <b>%s</b>; the difference "
                                 "row is its calibration error on this experiment.",
                              t->sim_scenario);
    if (!s && in->sim_source) {
        s = dp_buf_printf(b, " Simulator: ");
        s = s ? s : rp_html_escape(b, in->sim_source);
        s = s ? s : dp_buf_printf(b, ".");
    }
    return s ? s : dp_buf_printf(b, "</p>\n");
}

DpStatus report_html(const ReportTable *t, const ReportInputs *in, DpBuf *b, DpError *err) {
    const RpData *d = t->priv;
    Ctx c = {d, t, 0, NULL, NULL};
    double *cost_ys[REPORT_MAX_PIPELINES], *rate_ys[REPORT_MAX_PIPELINES];
    DpStatus s = DP_OK;
    int n = d->n_int, n_cost = 0;
    c.xs = dp_malloc(sizeof(double) * (size_t)(n + 1));
    c.xe = dp_malloc(sizeof(double) * (size_t)(n + 1));
    if (!c.xs || !c.xe) {
        s = DP_ERR_NOMEM;
        goto out;
    }
    /* xe: 0 then the end of each interval, for the cumulative cost that
     * starts at (0, 0) and steps up at the end of the interval it was spent in. */
    c.xe[0] = 0;
    for (int k = 0; k < n; k++) {
        c.xs[k] = k * d->interval_s;
        c.xe[k + 1] = (k + 1) * d->interval_s;
    }
    c.xmax = n * d->interval_s;
    for (int p = 0; p < d->n_pipe; p++) {
        if (d->sim_t[p].n) c.xmax = fmax(c.xmax, d->sim_t[p].v[d->sim_t[p].n - 1] + d->interval_s);
        cost_ys[p] = dp_malloc(sizeof(double) * (size_t)(n + 1));
        if (!cost_ys[p]) {
            s = DP_ERR_NOMEM;
            goto out;
        }
        n_cost = p + 1;
        cost_ys[p][0] = 0;
        memcpy(cost_ys[p] + 1, d->mean_cum_cost[p], sizeof(double) * (size_t)n);
        rate_ys[p] = d->mean_q[p][RQ_RATE];
    }
    const char *title = in->title ? in->title : "driftpilot experiment";
    s = dp_buf_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    s = s ? s : rp_html_escape(b, title);
    s = s ? s : dp_buf_printf(b, "</title>\n<style>\n%s</style></head>\n<body><main>\n<h1>", css);
    s = s ? s : rp_html_escape(b, title);
    s = s ? s : dp_buf_printf(b, "</h1>\n<div class=\"meta\">");
    if (!s && in->scenario) {
        s = dp_buf_printf(b, "Scenario <b>");
        s = s ? s : rp_html_escape(b, in->scenario);
        s = s ? s : dp_buf_printf(b, "</b> · ");
    }
    int runs_with_csv = 0;
    for (int i = 0; i < d->n_runs; i++) runs_with_csv += d->runs[i].run->requests_csv != NULL;
    s = s ? s : dp_buf_printf(b, "%d pipeline%s, %d run%s · decision interval %g s · %.2f h of "
                                 "scenario time · %d run%s with per-request data</div>\n",
                              d->n_pipe, d->n_pipe == 1 ? "" : "s", d->n_runs,
                              d->n_runs == 1 ? "" : "s", d->interval_s, c.xmax / 3600,
                              runs_with_csv, runs_with_csv == 1 ? "" : "s");
    s = s ? s : html_tables(t, in, b);
    s = s ? s : dp_buf_printf(b, "<h2>Over time</h2>\n<figure>\n");
    s = s ? s : chart_quality(&c, b, RQ_BLEU, "chart-bleu", "Answer quality: BLEU-1", "BLEU-1");
    s = s ? s : dp_buf_printf(b, "<figcaption>BLEU-1 of the labelled answers per decision interval "
                                 "(mean over repeats; all targets). Dashed: the simulator's "
                                 "prediction for the same scenario. Lanes below: one per run, "
                                 "▲ a retrain job started, | a new version was deployed.</figcaption>"
                                 "</figure>\n<figure>\n");
    s = s ? s : chart_quality(&c, b, RQ_ACC, "chart-accuracy", "Answer quality: accuracy (exact match)",
                              "accuracy (exact match)");
    s = s ? s : dp_buf_printf(b, "<figcaption>Exact-match accuracy, as above.</figcaption></figure>\n<figure>\n");
    s = s ? s : chart_latency(&c, b);
    s = s ? s : dp_buf_printf(b, "<figcaption>Latency of ok requests per decision interval, from the "
                                 "load generator's intended send time (no coordinated omission) "
                                 "when its CSV was given, else from the services' metrics.</figcaption>"
                                 "</figure>\n<figure>\n");
    s = s ? s : chart_simple(&c, b, "chart-rate", "Request rate", "requests per second",
                             rate_ys, c.xs, n, 0);
    s = s ? s : dp_buf_printf(b, "<figcaption>Requests per wall-clock second (mean over repeats)."
                                 "</figcaption></figure>\n<figure>\n");
    s = s ? s : chart_simple(&c, b, "chart-cost", "Cumulative cost", "cost (study units)", cost_ys,
                             c.xe, n + 1, 1);
    s = s ? s : dp_buf_printf(b, "<figcaption>Cumulative retraining cost per pipeline (mean over "
                                 "repeats).</figcaption></figure>\n<figure>\n");
    s = s ? s : chart_retrains(&c, b);
    s = s ? s : dp_buf_printf(b, "<figcaption>Retrain jobs per run.</figcaption></figure>\n"
                                 "<p class=\"note\">Generated by driftpilot report. Self-contained: "
                                 "no scripts, no external resources.</p>\n</main></body></html>\n");
out:
    for (int p = 0; p < n_cost; p++) free(cost_ys[p]);
    free(c.xs);
    free(c.xe);
    if (s) return dp_fail(err, DP_ERR_NOMEM, "report: out of memory writing HTML");
    return DP_OK;
}
