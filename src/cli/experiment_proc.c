/* The child processes of `driftpilot experiment`: start in their own process
 * group with their output in a log file, watch, stop (SIGTERM, grace,
 * SIGKILL, reap), and sweep orphans re-parented to us (see experiment.h). */
#include "experiment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

volatile sig_atomic_t exp_stop_requested = 0;

static void on_stop_signal(int sig) {
    (void)sig;
    exp_stop_requested = 1;
}

void exp_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Grandchildren whose parent dies (a retrain job of a killed controller)
     * come to us instead of init, so the final sweep can end them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

DpStatus exp_self_path(char *out, size_t cap, DpError *err) {
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1)
        return dp_fail(err, DP_ERR_IO, "cannot resolve /proc/self/exe: %s", strerror(errno));
    out[n] = 0;
    return DP_OK;
}

static int open_log(const char *path) {
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

DpStatus exp_child_start(ExpChild *c, const char *name, const char *exe, char *const argv[],
                         const char *log_path, const char *stdout_path, DpError *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    if (log_path) snprintf(c->log_path, sizeof c->log_path, "%s", log_path);
    int log_fd = -1, out_fd = -1;
    if (log_path && (log_fd = open_log(log_path)) < 0)
        return dp_fail(err, DP_ERR_IO, "%s: open log %s: %s", name, log_path, strerror(errno));
    if (stdout_path &&
        (out_fd = open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        int e = errno;
        if (log_fd >= 0) close(log_fd);
        return dp_fail(err, DP_ERR_IO, "%s: open %s: %s", name, stdout_path, strerror(e));
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        if (log_fd >= 0) close(log_fd);
        if (out_fd >= 0) close(out_fd);
        return dp_fail(err, DP_ERR_IO, "%s: fork: %s", name, strerror(e));
    }
    if (pid == 0) {
        /* Child: own process group, die with the parent, default signals. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
        if (getppid() != parent) _exit(127); /* the parent died before prctl */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        /* stdout is the experiment's table: a child's own output goes to
         * its file, its log, or our stderr. */
        if (out_fd >= 0) dup2(out_fd, 1);
        else if (log_fd >= 0) dup2(log_fd, 1);
        else dup2(2, 1);
        if (log_fd >= 0) dup2(log_fd, 2);
        execv(exe, argv);
        dprintf(2, "driftpilot experiment: exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so the group exists before we signal it */
    if (log_fd >= 0) close(log_fd);
    if (out_fd >= 0) close(out_fd);
    c->pid = pid;
    return DP_OK;
}

static void reap(ExpChild *c, int block) {
    if (!c->pid || c->reaped) return;
    int st = 0;
    pid_t r;
    do {
        r = waitpid(c->pid, &st, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->reaped = 1;
        c->status = r == c->pid ? st : 0;
    }
}

int exp_child_alive(ExpChild *c) {
    if (!c->pid) return 0;
    reap(c, 0);
    return !c->reaped;
}

void exp_child_describe(const ExpChild *c, char *out, size_t cap) {
    if (!c->pid) snprintf(out, cap, "not started");
    else if (!c->reaped) snprintf(out, cap, "running (pid %d)", (int)c->pid);
    else if (WIFEXITED(c->status)) snprintf(out, cap, "exit %d", WEXITSTATUS(c->status));
    else if (WIFSIGNALED(c->status))
        snprintf(out, cap, "signal %d (%s)", WTERMSIG(c->status), strsignal(WTERMSIG(c->status)));
    else snprintf(out, cap, "status %d", c->status);
}

void exp_log_tail(const char *path, int lines, char *out, size_t cap) {
    out[0] = 0;
    if (!path || !path[0]) return;
    char *text = NULL;
    size_t len = 0;
    DpError e;
    if (dp_read_file(path, &text, &len, &e)) return;
    size_t i = len;
    while (i > 0 && (text[i - 1] == '\n')) i--;
    int seen = 0;
    while (i > 0) {
        if (text[i - 1] == '\n' && ++seen == lines) break;
        i--;
    }
    snprintf(out, cap, "%s", text + i);
    free(text);
}

DpStatus exp_child_wait(ExpChild *c, double grace_s, DpError *err) {
    while (exp_child_alive(c)) {
        if (exp_stop_requested) {
            exp_child_stop(c, grace_s);
            return dp_fail(err, DP_ERR_STATE, "interrupted while %s was running", c->name);
        }
        dp_sleep(0.05);
    }
    if (WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0) return DP_OK;
    char how[96], tail[1024];
    exp_child_describe(c, how, sizeof how);
    exp_log_tail(c->log_path, 5, tail, sizeof tail);
    return dp_fail(err, DP_ERR_STATE, "%s failed (%s)%s%s%s%s", c->name, how,
                   c->log_path[0] ? "; log " : "", c->log_path, tail[0] ? ":\n" : "", tail);
}

void exp_children_stop(ExpChild *const *cs, int n, double grace_s) {
    /* Only groups whose leader we saw alive here: an id whose group is gone
     * could in principle be reused. */
    int was_alive[256] = {0};
    if (n > 256) n = 256;
    for (int i = 0; i < n; i++)
        if ((was_alive[i] = exp_child_alive(cs[i]))) kill(-cs[i]->pid, SIGTERM);
    double deadline = dp_time_mono() + grace_s;
    for (;;) {
        int left = 0;
        for (int i = 0; i < n; i++) left += exp_child_alive(cs[i]);
        if (!left || dp_time_mono() >= deadline) break;
        dp_sleep(0.05);
    }
    for (int i = 0; i < n; i++) {
        if (!was_alive[i]) continue;
        if (exp_child_alive(cs[i])) {
            dp_warn("experiment: %s did not stop within %.0f s of SIGTERM: SIGKILL", cs[i]->name,
                    grace_s);
            kill(-cs[i]->pid, SIGKILL);
            reap(cs[i], 1);
        }
        /* The leader is gone; whatever else is left in its group goes too. */
        kill(-cs[i]->pid, SIGKILL);
    }
}

void exp_child_stop(ExpChild *c, double grace_s) {
    ExpChild *one[1] = {c};
    exp_children_stop(one, 1, grace_s);
}

/* Pids of processes whose parent is `parent` (from /proc/<pid>/stat). */
static int list_children_of(pid_t parent, pid_t *out, int cap) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    pid_t self = parent;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *rp = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
        char state;
        long ppid;
        if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == self)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

static int list_children(pid_t *out, int cap) {
    return list_children_of(getpid(), out, cap);
}

int exp_child_term_children(ExpChild *c) {
    if (!exp_child_alive(c)) return 0;
    pid_t pids[64];
    int n = list_children_of(c->pid, pids, 64);
    for (int i = 0; i < n; i++) {
        kill(-pids[i], SIGTERM); /* a job is usually its own group's leader */
        kill(pids[i], SIGTERM);
    }
    return n;
}

int exp_sweep_orphans(double grace_s) {
    pid_t pids[256];
    int n = list_children(pids, 256);
    if (!n) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        return 0;
    }
    for (int i = 0; i < n; i++) {
        dp_warn("experiment: stopping left-over process %d", (int)pids[i]);
        kill(pids[i], SIGTERM);
    }
    double deadline = dp_time_mono() + grace_s;
    while (dp_time_mono() < deadline) {
        while (waitpid(-1, NULL, WNOHANG) > 0) {}
        pid_t again[256];
        if (!list_children(again, 256)) break;
        dp_sleep(0.05);
    }
    pid_t again[256];
    int m = list_children(again, 256);
    for (int i = 0; i < m; i++) kill(again[i], SIGKILL);
    for (int i = 0; i < m; i++) waitpid(again[i], NULL, 0);
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    return n;
}
