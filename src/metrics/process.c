/*
 * The standard process_* metrics, read from /proc/self at render time.
 *
 * CPU time and start time come from /proc/self/stat (fields 14, 15 and 22, in
 * clock ticks; the start is relative to boot, so boot time comes from
 * /proc/stat's btime), memory from /proc/self/status (VmRSS, VmSize, in kB),
 * the fd limit from /proc/self/limits and the open fds by counting
 * /proc/self/fd.  The names and meanings are those of the official clients,
 * so dashboards written for them work unchanged.
 */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static DpStatus read_small(const char *path, char *buf, size_t cap, DpError *err) {
    FILE *f = fopen(path, "r");
    if (!f) return dp_fail(err, DP_ERR_IO, "open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return DP_OK;
}

/* Value in kB of "key:" in /proc/self/status text, as bytes; -1 if absent. */
static double status_kb(const char *text, const char *key) {
    const char *p = strstr(text, key);
    if (!p) return -1;
    return strtod(p + strlen(key), NULL) * 1024.0;
}

DpStatus metrics_process_read(MetricsProcessInfo *info, DpError *err) {
    char buf[8192];
    memset(info, 0, sizeof *info);
    double ticks = (double)sysconf(_SC_CLK_TCK);
    if (ticks <= 0) ticks = 100;

    DpStatus st = read_small("/proc/self/stat", buf, sizeof buf, err);
    if (st != DP_OK) return st;
    /* The command name (field 2) may hold spaces and parentheses: start after
     * the last ')', which is followed by field 3 (state). */
    char *p = strrchr(buf, ')');
    if (!p) return dp_fail(err, DP_ERR_PARSE, "/proc/self/stat: no ')' in \"%.60s\"", buf);
    p++;
    double field[64] = {0};
    int k = 3;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok && k < 64; tok = strtok_r(NULL, " ", &save), k++)
        field[k] = (k == 3) ? 0 : strtod(tok, NULL);
    if (k < 25) return dp_fail(err, DP_ERR_PARSE, "/proc/self/stat: only %d fields", k - 1);
    info->cpu_seconds = (field[14] + field[15]) / ticks;

    double btime = 0;
    if (read_small("/proc/stat", buf, sizeof buf, NULL) == DP_OK) {
        const char *b = strstr(buf, "\nbtime ");
        if (b) btime = strtod(b + 7, NULL);
    }
    info->start_time_seconds = btime + field[22] / ticks;

    st = read_small("/proc/self/status", buf, sizeof buf, err);
    if (st != DP_OK) return st;
    info->resident_bytes = status_kb(buf, "\nVmRSS:");
    info->virtual_bytes = status_kb(buf, "\nVmSize:");
    if (info->resident_bytes < 0) info->resident_bytes = field[24] * (double)sysconf(_SC_PAGESIZE);
    if (info->virtual_bytes < 0) info->virtual_bytes = field[23];

    info->max_fds = -1;
    if (read_small("/proc/self/limits", buf, sizeof buf, NULL) == DP_OK) {
        const char *l = strstr(buf, "Max open files");
        if (l) {
            l += strlen("Max open files");
            while (*l == ' ') l++;
            if (strncmp(l, "unlimited", 9) != 0) info->max_fds = strtod(l, NULL);
        }
    }
    if (info->max_fds < 0) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            info->max_fds = (double)rl.rlim_cur;
        else
            info->max_fds = 0;
    }

    DIR *d = opendir("/proc/self/fd");
    if (!d) return dp_fail(err, DP_ERR_IO, "open /proc/self/fd: %s", strerror(errno));
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    info->open_fds = n > 0 ? n - 1 : 0; /* not counting the directory's own fd */
    return DP_OK;
}

/* Finds its series by name at each render rather than keeping pointers in
 * an allocation, so there is nothing for the registry to free; six lookups
 * per scrape cost nothing next to reading /proc. */
static void collect_process(MetricsRegistry *r, void *user) {
    (void)user;
    MetricsProcessInfo info;
    if (metrics_process_read(&info, NULL) != DP_OK) return;
    metric_set(metrics_with(metrics_find(r, "process_cpu_seconds_total")), info.cpu_seconds);
    metric_set(metrics_with(metrics_find(r, "process_resident_memory_bytes")), info.resident_bytes);
    metric_set(metrics_with(metrics_find(r, "process_virtual_memory_bytes")), info.virtual_bytes);
    metric_set(metrics_with(metrics_find(r, "process_start_time_seconds")),
               info.start_time_seconds);
    metric_set(metrics_with(metrics_find(r, "process_open_fds")), info.open_fds);
    metric_set(metrics_with(metrics_find(r, "process_max_fds")), info.max_fds);
}

DpStatus metrics_register_process_collector(MetricsRegistry *r, DpError *err) {
    MetricFamily *f;
    DpStatus st;
    if ((st = metrics_counter_new(r, "process_cpu_seconds_total",
                                  "Total user and system CPU time spent in seconds.", 0, NULL, &f,
                                  err)) != DP_OK ||
        (st = metrics_gauge_new(r, "process_resident_memory_bytes",
                                "Resident memory size in bytes.", 0, NULL, &f, err)) != DP_OK ||
        (st = metrics_gauge_new(r, "process_virtual_memory_bytes",
                                "Virtual memory size in bytes.", 0, NULL, &f, err)) != DP_OK ||
        (st = metrics_gauge_new(r, "process_start_time_seconds",
                                "Start time of the process since unix epoch in seconds.", 0, NULL,
                                &f, err)) != DP_OK ||
        (st = metrics_gauge_new(r, "process_open_fds", "Number of open file descriptors.", 0,
                                NULL, &f, err)) != DP_OK ||
        (st = metrics_gauge_new(r, "process_max_fds",
                                "Maximum number of open file descriptors.", 0, NULL, &f, err)) !=
            DP_OK)
        return st;
    return metrics_register_collector(r, collect_process, NULL, err);
}
