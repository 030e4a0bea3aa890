/* A progress line on stderr: done/total, rate, ETA and caller text.  On a
 * terminal it redraws in place; in logs it prints a line every few seconds. */
#include "core.h"

#include <string.h>
#include <unistd.h>

void dp_progress_init(DpProgress *p, const char *label, double total, const char *unit) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
    p->total = total;
    p->t0 = dp_time_mono();
    p->last_print = 0;
    p->tty = isatty(STDERR_FILENO);
}

static void fmt_secs(char *out, size_t cap, double s) {
    if (s < 0 || s != s) {
        snprintf(out, cap, "?");
    } else if (s < 90) {
        snprintf(out, cap, "%.0fs", s);
    } else if (s < 5400) {
        snprintf(out, cap, "%.0fm%02.0fs", (double)(int)(s / 60), s - 60 * (int)(s / 60));
    } else {
        snprintf(out, cap, "%.1fh", s / 3600);
    }
}

static void print_line(DpProgress *p, int final) {
    double now = dp_time_mono();
    double el = now - p->t0;
    double rate = el > 0 ? p->done / el : 0;
    char eta[32], elapsed[32];
    fmt_secs(elapsed, sizeof elapsed, el);
    if (p->total > 0 && rate > 0 && !final) fmt_secs(eta, sizeof eta, (p->total - p->done) / rate);
    else snprintf(eta, sizeof eta, "-");
    char bar[24] = "";
    if (p->total > 0) {
        int filled = (int)(20 * p->done / p->total);
        if (filled > 20) filled = 20;
        for (int i = 0; i < 20; i++) bar[i] = i < filled ? '#' : '.';
        bar[20] = '\0';
        fprintf(stderr, "%s%s [%s] %.0f/%.0f %s  %.1f %s/s  elapsed %s  eta %s  %s%s",
                p->tty ? "\r\033[K" : "", p->label, bar, p->done, p->total, p->unit, rate, p->unit,
                elapsed, eta, p->extra, (p->tty && !final) ? "" : "\n");
    } else {
        fprintf(stderr, "%s%s %.0f %s  %.1f %s/s  elapsed %s  %s%s", p->tty ? "\r\033[K" : "",
                p->label, p->done, p->unit, rate, p->unit, elapsed, p->extra,
                (p->tty && !final) ? "" : "\n");
    }
    fflush(stderr);
    p->last_print = now;
}

void dp_progress_update(DpProgress *p, double done, const char *extra) {
    p->done = done;
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    double now = dp_time_mono();
    double every = p->tty ? 0.1 : 5.0;
    if (now - p->last_print >= every) print_line(p, 0);
}

void dp_progress_finish(DpProgress *p, const char *extra) {
    if (p->finished) return;
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    print_line(p, 1);
    p->finished = 1;
}
