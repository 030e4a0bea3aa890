/* Executors: run a command on a target as a local child process, through
 * OpenSSH, or as a Kubernetes object, with a time limit and a recorded
 * outcome.
 *
 * Every executor ends up spawning local processes (the command itself, ssh,
 * or kubectl), so one spawner does the work: fork, a new process group (so a
 * timeout kills the job's children too), stdin from a file or /dev/null,
 * stdout+stderr appended to a log file, and for the local executor the CPU
 * and memory limits.  exec failures come back through a close-on-exec pipe,
 * so "no such program" is reported as such and not as exit code 127.
 *
 * CPU limits for local targets, so two targets on one machine do not pretend
 * to be two machines: cpu_set -> sched_setaffinity; cpu_quota -> a cgroup v2
 * group with cpu.max when /sys/fs/cgroup is a writable cgroup2 mount, else
 * (said in deploy_executor_limits) affinity to ceil(quota) CPUs plus nice;
 * memory_mb -> RLIMIT_AS.  The child applies them itself between fork and
 * exec, using only async-signal-safe calls on data prepared before fork. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deploy_impl.h"
#include "metrics.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

struct DeployExecutor {
    DeployTarget t;
    int has_cpus;
    cpu_set_t cpus;
    int nice;
    char cgroup_procs[DEPLOY_PATH_MAX]; /* "" when no cgroup is used */
    char limits[512];
};

const char *deploy_job_status_str(DeployJobStatus s) {
    switch (s) {
    case DEPLOY_JOB_OK: return "ok";
    case DEPLOY_JOB_FAILED: return "failed";
    case DEPLOY_JOB_TIMEOUT: return "timeout";
    case DEPLOY_JOB_KILLED: return "killed";
    }
    return "?";
}

// ---- cgroup v2 ----

static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Tries to make /sys/fs/cgroup/driftpilot/<target> with cpu.max; on success
 * fills ex->cgroup_procs, else says why in why[cap]. */
static int cgroup_setup(DeployExecutor *ex, char *why, size_t cap) {
    char path[DEPLOY_PATH_MAX], val[64];
    char *ctl = NULL;
    size_t len = 0;
    DpError e;
    if (dp_read_file(CGROUP_ROOT "/cgroup.controllers", &ctl, &len, &e) != DP_OK) {
        snprintf(why, cap, "no cgroup v2 at " CGROUP_ROOT);
        return 0;
    }
    int has_cpu = strstr(ctl, "cpu") != NULL;
    free(ctl);
    if (!has_cpu) {
        snprintf(why, cap, "cgroup v2 has no cpu controller");
        return 0;
    }
    /* Enabling +cpu for children may fail when processes live in the root
     * group of a container; the mkdir/cpu.max steps below then say so. */
    write_text(CGROUP_ROOT "/cgroup.subtree_control", "+cpu");
    snprintf(path, sizeof path, CGROUP_ROOT "/driftpilot");
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(why, cap, "mkdir %s: %s", path, strerror(errno));
        return 0;
    }
    write_text(CGROUP_ROOT "/driftpilot/cgroup.subtree_control", "+cpu");
    snprintf(path, sizeof path, CGROUP_ROOT "/driftpilot/%s", ex->t.name);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        snprintf(why, cap, "mkdir %s: %s", path, strerror(errno));
        return 0;
    }
    snprintf(path, sizeof path, CGROUP_ROOT "/driftpilot/%s/cpu.max", ex->t.name);
    snprintf(val, sizeof val, "%lld 100000", (long long)llround(ex->t.cpu_quota * 100000.0));
    if (write_text(path, val) != 0) {
        snprintf(why, cap, "write %s: %s", path, strerror(errno));
        return 0;
    }
    snprintf(ex->cgroup_procs, sizeof ex->cgroup_procs, CGROUP_ROOT "/driftpilot/%s/cgroup.procs",
             ex->t.name);
    return 1;
}

// ---- create / destroy ----

DeployExecutor *deploy_executor_create(const DeployTarget *t, DpError *err) {
    DeployExecutor *ex = dp_calloc(1, sizeof *ex);
    if (!ex) {
        dp_fail(err, DP_ERR_NOMEM, "executor: out of memory");
        return NULL;
    }
    ex->t = *t;
    ex->nice = t->nice;
    DpBuf b = DP_BUF_INIT;
    if (t->executor != DEPLOY_EXEC_LOCAL) {
        snprintf(ex->limits, sizeof ex->limits, "%s executor: limits are the remote side's",
                 deploy_exec_kind_str(t->executor));
        return ex;
    }
    if (t->cpu_set[0]) {
        char what[96];
        snprintf(what, sizeof what, "target %s: cpu_set", t->name);
        if (deploy_parse_cpu_set(t->cpu_set, &ex->cpus, what, err) != DP_OK) {
            free(ex);
            return NULL;
        }
        ex->has_cpus = 1;
        dp_buf_printf(&b, "cpu_set %s (sched_setaffinity); ", t->cpu_set);
    }
    if (t->cpu_quota > 0) {
        char why[300];
        if (cgroup_setup(ex, why, sizeof why)) {
            dp_buf_printf(&b, "cpu.max %g CPUs (cgroup v2 %s); ", t->cpu_quota, ex->cgroup_procs);
        } else {
            /* Fallback: no quota without cgroups, so pin to as many CPUs as
             * the quota rounds up to and lower the priority. */
            dp_buf_printf(&b, "cpu_quota %g: cgroup v2 not usable (%s), fell back to ", t->cpu_quota,
                          why);
            if (!ex->has_cpus) {
                cpu_set_t allowed;
                CPU_ZERO(&ex->cpus);
                int want = (int)ceil(t->cpu_quota), got = 0;
                if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
                    for (int c = 0; c < CPU_SETSIZE && got < want; c++)
                        if (CPU_ISSET(c, &allowed)) {
                            CPU_SET(c, &ex->cpus);
                            got++;
                        }
                }
                if (got > 0) {
                    ex->has_cpus = 1;
                    dp_buf_printf(&b, "affinity to %d CPU(s) and ", got);
                }
            }
            if (ex->nice < 5) ex->nice = 5;
            dp_buf_printf(&b, "nice %d; ", ex->nice);
        }
    } else if (ex->nice > 0) {
        dp_buf_printf(&b, "nice %d; ", ex->nice);
    }
    if (t->memory_mb > 0) dp_buf_printf(&b, "RLIMIT_AS %g MiB; ", t->memory_mb);
    if (!b.data) dp_buf_printf(&b, "no limits configured");
    else if (b.len >= 2) b.data[b.len - 2] = 0;
    snprintf(ex->limits, sizeof ex->limits, "%s", b.data ? b.data : "");
    dp_buf_free(&b);
    return ex;
}

void deploy_executor_destroy(DeployExecutor *ex) {
    free(ex);
}

const char *deploy_executor_limits(const DeployExecutor *ex) {
    return ex->limits;
}

// ---- the spawner ----

typedef struct {
    const char *const *argv;
    const char *log_path;
    const char *stdin_path;
    const char *workdir;     /* NULL: stay */
    int apply_limits;
    int *hold_stdin;         /* non-NULL: stdin is a pipe whose write end comes back
                                here, so it reaches EOF only when that is closed (ssh
                                closes inherited descriptors, so the parent keeps it) */
} SpawnReq;

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static DpStatus spawn(const DeployExecutor *ex, const SpawnReq *rq, pid_t *out, DpError *err) {
    int logfd = -1, infd = -1, cgfd = -1, pfd[2] = {-1, -1}, hold[2] = {-1, -1};
    DpStatus st = DP_OK;
    *out = 0;
    logfd = open(rq->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        st = dp_fail(err, DP_ERR_IO, "open log %s: %s", rq->log_path, strerror(errno));
        goto out;
    }
    const char *in = rq->stdin_path ? rq->stdin_path : "/dev/null";
    if (rq->hold_stdin) {
        *rq->hold_stdin = -1;
        if (pipe2(hold, O_CLOEXEC) != 0) {
            st = dp_fail(err, DP_ERR_IO, "pipe: %s", strerror(errno));
            goto out;
        }
        infd = hold[0];
        hold[0] = -1;
    } else {
        infd = open(in, O_RDONLY | O_CLOEXEC);
    }
    if (infd < 0) {
        st = dp_fail(err, DP_ERR_IO, "open %s: %s", in, strerror(errno));
        goto out;
    }
    if (rq->apply_limits && ex->cgroup_procs[0]) {
        cgfd = open(ex->cgroup_procs, O_WRONLY | O_CLOEXEC);
        if (cgfd < 0) {
            st = dp_fail(err, DP_ERR_IO, "open %s: %s", ex->cgroup_procs, strerror(errno));
            goto out;
        }
    }
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        st = dp_fail(err, DP_ERR_IO, "pipe: %s", strerror(errno));
        goto out;
    }
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)(ex->t.memory_mb * 1024.0 * 1024.0);
    pid_t pid = fork();
    if (pid < 0) {
        st = dp_fail(err, DP_ERR_IO, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        /* Child: async-signal-safe calls only until exec. */
        int e = 0;
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        setpgid(0, 0);
        if (dup2(infd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0) goto child_fail;
        if (rq->workdir && rq->workdir[0] && chdir(rq->workdir) != 0) goto child_fail;
        if (rq->apply_limits) {
            if (cgfd >= 0 && write(cgfd, "0", 1) != 1) goto child_fail;
            if (ex->has_cpus && sched_setaffinity(0, sizeof ex->cpus, &ex->cpus) != 0)
                goto child_fail;
            if (ex->nice > 0) {
                errno = 0;
                if (nice(ex->nice) == -1 && errno) goto child_fail;
            }
            if (ex->t.memory_mb > 0 && setrlimit(RLIMIT_AS, &rl) != 0) goto child_fail;
        }
        execvp(rq->argv[0], (char *const *)rq->argv);
    child_fail:
        e = errno;
        if (write(pfd[1], &e, sizeof e) < 0) {
        }
        _exit(127);
    }
    close(pfd[1]);
    pfd[1] = -1;
    int child_errno = 0;
    ssize_t n;
    while ((n = read(pfd[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
    }
    if (n == (ssize_t)sizeof child_errno) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        st = dp_fail(err, DP_ERR_IO, "start %s: %s", rq->argv[0], strerror(child_errno));
        goto out;
    }
    *out = pid;
    if (rq->hold_stdin) {
        *rq->hold_stdin = hold[1];
        hold[1] = -1;
    }
out:
    if (logfd >= 0) close(logfd);
    if (infd >= 0) close(infd);
    if (cgfd >= 0) close(cgfd);
    if (pfd[0] >= 0) close(pfd[0]);
    if (pfd[1] >= 0) close(pfd[1]);
    if (hold[1] >= 0) close(hold[1]);
    return st;
}

/* Waits for pid (a process group leader) up to time_limit_s (<= 0: no
 * limit); past it SIGTERM to the group, then SIGKILL after grace_s.  Any
 * processes left in the group when the leader ends are killed, so a job's
 * helpers do not outlive it.  Fills the outcome fields of res. */
static void wait_job(pid_t pid, double t0, double time_limit_s, double grace_s,
                     DeployJobResult *res) {
    double deadline = time_limit_s > 0 ? t0 + time_limit_s : INFINITY;
    int sent_term = 0, sent_kill = 0;
    double term_at = 0, nap = 0.001;
    siginfo_t si;
    for (;;) {
        memset(&si, 0, sizeof si);
        int r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (r == 0 && si.si_pid == pid) break;
        if (r != 0 && errno != EINTR) break;
        double now = dp_time_mono();
        if (!sent_term && now >= deadline) {
            kill(-pid, SIGTERM);
            sent_term = 1;
            term_at = now;
        } else if (sent_term && !sent_kill && now >= term_at + grace_s) {
            kill(-pid, SIGKILL);
            sent_kill = 1;
        }
        sleep_s(nap);
        if (nap < 0.02) nap *= 2;
    }
    kill(-pid, SIGKILL); /* leftovers in the group; the leader is a zombie and keeps the pgid */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    res->duration_s = dp_time_mono() - t0;
    res->exit_code = -1;
    res->signal = 0;
    if (WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
        res->status = res->exit_code == 0 ? DEPLOY_JOB_OK : DEPLOY_JOB_FAILED;
    } else if (WIFSIGNALED(status)) {
        res->signal = WTERMSIG(status);
        res->status = DEPLOY_JOB_KILLED;
    }
    if (sent_term) {
        res->status = DEPLOY_JOB_TIMEOUT;
        snprintf(res->reason, sizeof res->reason, "time limit %gs exceeded: %s", time_limit_s,
                 sent_kill ? "SIGTERM, then SIGKILL after the grace period" : "SIGTERM");
    } else if (res->status == DEPLOY_JOB_OK) {
        snprintf(res->reason, sizeof res->reason, "exit code 0");
    } else if (res->status == DEPLOY_JOB_FAILED) {
        snprintf(res->reason, sizeof res->reason, "exit code %d", res->exit_code);
    } else {
        snprintf(res->reason, sizeof res->reason, "killed by signal %d (%s)", res->signal,
                 strsignal(res->signal));
    }
}

static DpStatus log_path_for(const DeployExecutor *ex, const DeployRunSpec *spec, char *out,
                             size_t cap, const char *suffix, DpError *err) {
    const char *dir = spec->log_dir ? spec->log_dir : (ex->t.workdir[0] ? ex->t.workdir : ".");
    if (dp_mkdirs(dir, err) != DP_OK) return err->status;
    int n = snprintf(out, cap, "%s/%s%s", dir, spec->name, suffix);
    if (n < 0 || (size_t)n >= cap) return dp_fail(err, DP_ERR_INVAL, "log path too long in %s", dir);
    return DP_OK;
}

static DpStatus check_spec(const DeployRunSpec *spec, DpError *err) {
    if (!spec || !spec->name || !deploy_name_ok(spec->name))
        return dp_fail(err, DP_ERR_INVAL, "job name must be lower-case letters, digits and '-': \"%s\"",
                       spec && spec->name ? spec->name : "(null)");
    if (!spec->argv || !spec->argv[0])
        return dp_fail(err, DP_ERR_INVAL, "job %s: empty argv", spec->name);
    return DP_OK;
}

/* Runs argv locally (limits applied or not; for ssh, stdin held open) as a
 * job; always records. */
static DpStatus run_local(const DeployExecutor *ex, const char *const *argv, const DeployRunSpec *spec,
                          int apply_limits, const char *workdir, int hold_stdin, DeployJobResult *res) {
    DpError e;
    pid_t pid;
    int hold = -1;
    SpawnReq rq = {argv, res->log_path, spec->stdin_path, workdir, apply_limits,
                   hold_stdin ? &hold : NULL};
    double t0 = dp_time_mono();
    if (spawn(ex, &rq, &pid, &e) != DP_OK) {
        res->status = DEPLOY_JOB_FAILED;
        res->exit_code = -1;
        res->duration_s = dp_time_mono() - t0;
        snprintf(res->reason, sizeof res->reason, "%s", e.msg);
        return DP_OK;
    }
    wait_job(pid, t0, spec->time_limit_s, spec->grace_s > 0 ? spec->grace_s : 2.0, res);
    if (hold >= 0) close(hold);
    return DP_OK;
}

// ---- kubernetes through kubectl ----

static DpStatus kubectl_argv(const DeployTarget *t, const char *const *tail, const char **out,
                             int cap) {
    int n = 0;
    out[n++] = t->kubectl;
    if (t->context[0]) {
        out[n++] = "--context";
        out[n++] = t->context;
    }
    out[n++] = "--namespace";
    out[n++] = t->k8s_namespace;
    for (int i = 0; tail[i] && n < cap - 1; i++) out[n++] = tail[i];
    out[n] = NULL;
    return DP_OK;
}

static DpStatus k8s_apply(DeployExecutor *ex, const DeployRunSpec *spec, const DpBuf *yaml,
                          DeployJobResult *res, DpError *err) {
    char ypath[DEPLOY_PATH_MAX];
    DpStatus st = log_path_for(ex, spec, ypath, sizeof ypath, ".yaml", err);
    if (st != DP_OK) return st;
    if ((st = dp_write_file_atomic(ypath, yaml->data, yaml->len, err)) != DP_OK) return st;
    const char *tail[] = {"apply", "-f", "-", NULL};
    const char *argv[16];
    kubectl_argv(&ex->t, tail, argv, 16);
    DeployRunSpec s2 = *spec;
    s2.stdin_path = ypath;
    s2.time_limit_s = 60;
    return run_local(ex, argv, &s2, 0, NULL, 0, res);
}

// ---- the public executor calls ----

DpStatus deploy_executor_run_job(DeployExecutor *ex, const DeployRunSpec *spec,
                                 DeployJobResult *res, DpError *err) {
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    DpStatus st = check_spec(spec, err);
    if (st != DP_OK) return st;
    if ((st = log_path_for(ex, spec, res->log_path, sizeof res->log_path, ".log", err)) != DP_OK)
        return st;
    if (ex->t.executor == DEPLOY_EXEC_LOCAL)
        return run_local(ex, spec->argv, spec, 1, ex->t.workdir[0] ? ex->t.workdir : NULL, 0, res);
    if (ex->t.executor == DEPLOY_EXEC_SSH) {
        char **sargv = NULL;
        if (spec->stdin_path)
            return dp_fail(err, DP_ERR_INVAL, "job %s: stdin_path is not supported on ssh targets",
                           spec->name);
        if ((st = deploy_ssh_argv(&ex->t, spec->argv, &sargv, err)) != DP_OK) return st;
        st = run_local(ex, (const char *const *)sargv, spec, 0, NULL, 1, res);
        deploy_argv_free(sargv);
        return st;
    }
    /* kubernetes: apply the Job, then wait for it to complete. */
    DpBuf yaml = DP_BUF_INIT;
    if ((st = deploy_k8s_render_job(&ex->t, spec->name, spec->argv, spec->time_limit_s, &yaml,
                                    err)) != DP_OK)
        goto kout;
    double t0 = dp_time_mono();
    if ((st = k8s_apply(ex, spec, &yaml, res, err)) != DP_OK || res->status != DEPLOY_JOB_OK) {
        if (st == DP_OK) {
            char r[256];
            snprintf(r, sizeof r, "kubectl apply: %s", res->reason);
            snprintf(res->reason, sizeof res->reason, "%s", r);
        }
        goto kout;
    }
    char jobref[128], tmo[64];
    snprintf(jobref, sizeof jobref, "job/%s", spec->name);
    snprintf(tmo, sizeof tmo, "--timeout=%ds",
             spec->time_limit_s > 0 ? (int)ceil(spec->time_limit_s) + 30 : 86400);
    const char *tail[] = {"wait", "--for=condition=complete", tmo, jobref, NULL};
    const char *argv[16];
    kubectl_argv(&ex->t, tail, argv, 16);
    DeployRunSpec s2 = *spec;
    s2.time_limit_s = spec->time_limit_s > 0 ? spec->time_limit_s + 60 : 0;
    st = run_local(ex, argv, &s2, 0, NULL, 0, res);
    res->duration_s = dp_time_mono() - t0;
    if (st == DP_OK && res->status != DEPLOY_JOB_OK) {
        char r[256];
        snprintf(r, sizeof r, "kubectl wait job/%s: %s", spec->name, res->reason);
        snprintf(res->reason, sizeof res->reason, "%s", r);
    }
kout:
    dp_buf_free(&yaml);
    return st;
}

DpStatus deploy_executor_start_service(DeployExecutor *ex, const DeployRunSpec *spec,
                                       DeployService *svc, DpError *err) {
    memset(svc, 0, sizeof *svc);
    DpStatus st = check_spec(spec, err);
    if (st != DP_OK) return st;
    snprintf(svc->name, sizeof svc->name, "%s", spec->name);
    if ((st = log_path_for(ex, spec, svc->log_path, sizeof svc->log_path, ".log", err)) != DP_OK)
        return st;
    if (ex->t.executor == DEPLOY_EXEC_KUBERNETES) {
        DpBuf yaml = DP_BUF_INIT;
        DeployJobResult res;
        memset(&res, 0, sizeof res);
        snprintf(res.log_path, sizeof res.log_path, "%s", svc->log_path);
        st = deploy_k8s_render_service(&ex->t, spec->name, spec->argv, &yaml, err);
        if (st == DP_OK) st = k8s_apply(ex, spec, &yaml, &res, err);
        if (st == DP_OK && res.status != DEPLOY_JOB_OK)
            st = dp_fail(err, DP_ERR_IO, "kubectl apply for %s: %s (log %s)", spec->name,
                         res.reason, res.log_path);
        dp_buf_free(&yaml);
        return st;
    }
    svc->stdin_fd = -1;
    SpawnReq rq = {spec->argv, svc->log_path, spec->stdin_path, NULL, 0, NULL};
    char **sargv = NULL;
    if (ex->t.executor == DEPLOY_EXEC_LOCAL) {
        rq.workdir = ex->t.workdir[0] ? ex->t.workdir : NULL;
        rq.apply_limits = 1;
    } else {
        if (spec->stdin_path)
            return dp_fail(err, DP_ERR_INVAL, "service %s: stdin_path is not supported on ssh targets",
                           spec->name);
        if ((st = deploy_ssh_argv(&ex->t, spec->argv, &sargv, err)) != DP_OK) return st;
        rq.argv = (const char *const *)sargv;
        rq.hold_stdin = &svc->stdin_fd;
    }
    st = spawn(ex, &rq, &svc->pid, err);
    deploy_argv_free(sargv);
    return st;
}

DpStatus deploy_executor_stop_service(DeployExecutor *ex, DeployService *svc, double grace_s,
                                      DeployJobResult *res, DpError *err) {
    DeployJobResult local;
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    snprintf(res->log_path, sizeof res->log_path, "%s", svc->log_path);
    if (grace_s <= 0) grace_s = 2.0;
    if (ex->t.executor == DEPLOY_EXEC_KUBERNETES) {
        char dep[128], srv[128];
        snprintf(dep, sizeof dep, "deployment/%s", svc->name);
        snprintf(srv, sizeof srv, "service/%s", svc->name);
        const char *tail[] = {"delete", "--ignore-not-found", dep, srv, NULL};
        const char *argv[16];
        kubectl_argv(&ex->t, tail, argv, 16);
        DeployRunSpec s = {.name = svc->name, .argv = argv, .time_limit_s = 60};
        return run_local(ex, argv, &s, 0, NULL, 0, res);
    }
    if (svc->pid <= 0) return dp_fail(err, DP_ERR_STATE, "service %s: not running", svc->name);
    double t0 = dp_time_mono();
    if (svc->stdin_fd > 0) {
        /* ssh: EOF on the remote side's stdin stops the service there
         * (SIGTERM from its watcher) and ssh exits with it; signals follow
         * only if that takes longer than the grace period. */
        close(svc->stdin_fd);
        svc->stdin_fd = -1;
        wait_job(svc->pid, t0, grace_s, grace_s, res);
    } else {
        /* A time limit that has already passed: wait_job sends SIGTERM at
         * once and SIGKILL after the grace period. */
        wait_job(svc->pid, t0, 1e-9, grace_s, res);
    }
    int clean = res->exit_code == 0 || res->signal == SIGTERM;
    res->status = clean ? DEPLOY_JOB_OK : DEPLOY_JOB_KILLED;
    if (res->signal == SIGKILL)
        snprintf(res->reason, sizeof res->reason, "stopped: SIGKILL after %gs grace", grace_s);
    else if (res->signal)
        snprintf(res->reason, sizeof res->reason, "stopped: %s", strsignal(res->signal));
    else
        snprintf(res->reason, sizeof res->reason, "stopped: exit code %d", res->exit_code);
    svc->pid = 0;
    return DP_OK;
}

int deploy_executor_check_health(const DeployExecutor *ex, double timeout_s) {
    char url[DEPLOY_STR_MAX + 16];
    size_t n = strlen(ex->t.service_url);
    snprintf(url, sizeof url, "%.*s/healthz", (int)(n && ex->t.service_url[n - 1] == '/' ? n - 1 : n),
             ex->t.service_url);
    char *body = NULL;
    int code = 0;
    DpError e;
    DpStatus st = metrics_http_get(url, timeout_s > 0 ? timeout_s : 1.0, &body, NULL, &code, &e);
    free(body);
    return st == DP_OK && code == 200;
}
