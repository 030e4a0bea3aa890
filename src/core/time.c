/* Wall and monotonic clocks, the scenario clock, and duration parsing. */
#include "core.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double dp_time_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double dp_time_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void dp_sleep(double seconds) {
    if (seconds <= 0) return;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

void dp_clock_init(DpClock *c, double scale, double start) {
    c->scale = scale > 0 ? scale : 1.0;
    c->start = start;
    c->mono0 = dp_time_mono();
}

double dp_clock_now(const DpClock *c) { return c->start + (dp_time_mono() - c->mono0) * c->scale; }

void dp_clock_sleep_until(const DpClock *c, double t) {
    double wall_left = (t - dp_clock_now(c)) / c->scale;
    dp_sleep(wall_left);
}

DpStatus dp_parse_duration(const char *text, double *out, DpError *err) {
    if (!text || !*text) return dp_fail(err, DP_ERR_PARSE, "empty duration");
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || !isfinite(v) || v < 0)
        return dp_fail(err, DP_ERR_PARSE, "bad duration '%s' (expected e.g. 90s, 15m, 2h)", text);
    double mult = 1;
    if (!strcmp(end, "") || !strcmp(end, "s")) mult = 1;
    else if (!strcmp(end, "ms")) mult = 1e-3;
    else if (!strcmp(end, "m") || !strcmp(end, "min")) mult = 60;
    else if (!strcmp(end, "h")) mult = 3600;
    else if (!strcmp(end, "d")) mult = 86400;
    else return dp_fail(err, DP_ERR_PARSE, "bad duration unit in '%s' (use ms, s, m, h or d)", text);
    *out = v * mult;
    return DP_OK;
}
