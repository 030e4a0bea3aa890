/* Leveled logging to stderr with a wall-clock timestamp. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int g_level = -1;

static void init_level(void) {
    if (g_level >= 0) return;
    g_level = DP_LOG_INFO;
    const char *e = getenv("DRIFTPILOT_LOG");
    if (!e) return;
    if (!strcasecmp(e, "debug")) g_level = DP_LOG_DEBUG;
    else if (!strcasecmp(e, "warn")) g_level = DP_LOG_WARN;
    else if (!strcasecmp(e, "error")) g_level = DP_LOG_ERROR;
}

void dp_log_set_level(DpLogLevel level) { g_level = (int)level; }

DpLogLevel dp_log_get_level(void) {
    init_level();
    return (DpLogLevel)g_level;
}

void dp_log(DpLogLevel level, const char *fmt, ...) {
    init_level();
    if ((int)level < g_level) return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    fprintf(stderr, "%s %s: %s\n", ts, names[level], line);
}
