/*
 * deploy: the places a model can be served and retrained ("targets"), how a
 * command is run there ("executors"), and the router that sits in front of
 * the serving targets.
 *
 * Config: deploy_config_load() reads the one driftpilot TOML file (a strict
 * subset of TOML: tables, arrays of tables, strings, numbers, booleans,
 * arrays of scalars, comments) into a DeployConfig.  Unknown keys, keys of
 * another executor, wrong types and out-of-range values are errors that name
 * the file, the line and the key:
 *     driftpilot.toml:12: targets[1].price_per_gpu_hour: expected a number >= 0, got "abc"
 * Defaults are those of deploy_config_defaults() (listed in docs/deploy.md).
 *
 * Executors: a DeployExecutor runs argv on one target.  local: a child
 * process with CPU and memory limits (cgroup v2 cpu.max when it can be
 * written, else sched_setaffinity + nice; setrlimit for memory), logs to
 * files.  ssh: the same through `ssh -o BatchMode=yes`, each argument shell
 * quoted.  kubernetes: a rendered Job / Deployment+Service applied with
 * `kubectl --context C apply -f -`.  A job has a time limit: past it the
 * process group gets SIGTERM, then SIGKILL after a grace period, and the
 * outcome is recorded in a DeployJobResult.  An executor never touches the
 * serving model: a failed or killed job only reports.
 *
 * Router: an HTTP server (libmicrohttpd, a thread per connection) that
 * forwards POST /predict and POST /feedback to the active target, can add
 * each target's network distance as a delay, health-checks the targets and
 * fails over, and serves its own GET /metrics, GET /healthz and
 * POST /admin/route (bearer token).
 *
 * Ownership: DeployConfig is a plain value (fixed-size fields, no heap).
 * deploy_executor_create() / deploy_executor_destroy() and router_create() /
 * router_destroy() pair up; destroy accepts NULL.  Strings passed in are
 * copied.  Rendered text goes to a caller-owned DpBuf.
 *
 * Thread safety: an executor is read-only after creation, so several
 * threads may run jobs on it at once (give concurrent jobs different names:
 * the name is the log file).  The router's functions may be called from any
 * thread while it runs.
 *
 *     DeployConfig cfg;
 *     if (deploy_config_load("driftpilot.toml", &cfg, &err) != DP_OK) ...;
 *     DeployExecutor *ex = deploy_executor_create(&cfg.targets[0], &err);
 *     const char *argv[] = {"driftpilot", "train", "--out", "m2", NULL};
 *     DeployRunSpec spec = {.name = "retrain-1", .argv = argv, .time_limit_s = 600};
 *     DeployJobResult res;
 *     deploy_executor_run_job(ex, &spec, &res, &err);   // res.status: ok/failed/timeout/killed
 *     deploy_executor_destroy(ex);
 */
#ifndef DRIFTPILOT_DEPLOY_H
#define DRIFTPILOT_DEPLOY_H

#include <stddef.h>
#include <sys/types.h>

#include "core.h"

// ---- config ----

#define DEPLOY_MAX_TARGETS 16
#define DEPLOY_NAME_MAX 64
#define DEPLOY_STR_MAX 256
#define DEPLOY_PATH_MAX 512

typedef enum {
    DEPLOY_EXEC_LOCAL = 0,
    DEPLOY_EXEC_SSH = 1,
    DEPLOY_EXEC_KUBERNETES = 2,
} DeployExecKind;

/* "local", "ssh", "kubernetes". */
const char *deploy_exec_kind_str(DeployExecKind k);

typedef struct {
    char name[DEPLOY_NAME_MAX];          /* [a-z0-9-], unique; used in k8s names and labels */
    double price_per_gpu_hour;           /* >= 0, currency units per GPU-hour */
    int gpu_count;                       /* >= 0 */
    int cpus;                            /* >= 0; 0: not stated */
    double retrain_cost;                 /* cost charged per retrain in the reward (>= 0) */
    char service_url[DEPLOY_STR_MAX];    /* http://host:port of the serving deployment */
    double network_distance_ms;          /* >= 0; the router adds it when emulating */
    DeployExecKind executor;
    /* local */
    char cpu_set[DEPLOY_NAME_MAX];       /* "0-1,3" (sched_setaffinity / cpuset) or "" */
    double cpu_quota;                    /* CPUs' worth of time (cgroup cpu.max); 0: none */
    double memory_mb;                    /* RLIMIT_AS (local), memory limit (k8s); 0: none */
    int nice;                            /* niceness added to children (0..19) */
    char workdir[DEPLOY_PATH_MAX];       /* children run here, logs go here; "" = "." */
    /* ssh */
    char host[DEPLOY_STR_MAX];
    char user[DEPLOY_NAME_MAX];
    int port;                            /* 22 by default */
    char identity_file[DEPLOY_PATH_MAX];
    char ssh_command[DEPLOY_PATH_MAX];   /* the ssh program ("ssh") */
    /* kubernetes */
    char context[DEPLOY_STR_MAX];
    char k8s_namespace[DEPLOY_NAME_MAX]; /* key "namespace"; "default" */
    char image[DEPLOY_STR_MAX];
    char cpu_request[32], cpu_limit[32], memory_request[32], memory_limit[32];
    char kubectl[DEPLOY_PATH_MAX];       /* the kubectl program ("kubectl") */
    int line;                            /* line of its [[targets]] header */
} DeployTarget;

typedef struct {
    char kind[32];                       /* static | threshold | drift | ppo | oracle */
    char file[DEPLOY_PATH_MAX];          /* policy file (ppo), "" otherwise */
    char actions[16];                    /* "targets": retrain and serve on one target;
                                            "pairs": train on one, serve on another */
    double interval_s;                   /* static: retrain every interval */
    double threshold;                    /* threshold: accuracy below which to retrain */
    long long seed;
} DeployPolicyConfig;

typedef struct {
    double bleu_weight;                  /* reward = bleu_w*BLEU-1 + acc_w*accuracy */
    double accuracy_weight;              /*          - cost_w*cost - latency penalty */
    double cost_weight;
    double latency_slo_ms;               /* 0: no SLO */
    double latency_penalty;              /* subtracted per interval over the SLO */
} DeployRewardConfig;

typedef struct {
    double decision_interval_s;          /* "60s" */
    double time_scale;                   /* scenario seconds per wall second */
    char registry_dir[DEPLOY_PATH_MAX];
    char store_path[DEPLOY_PATH_MAX];
    double job_time_limit_s;             /* retrain job time limit */
    double rollback_margin;              /* quality drop that triggers a rollback */
    double rollback_window_s;
} DeployControlConfig;

typedef struct {
    char source[16];                     /* "direct" | "prometheus" */
    char prometheus_url[DEPLOY_STR_MAX];
    double scrape_timeout_s;
} DeployMetricsConfig;

typedef struct {
    char listen[DEPLOY_STR_MAX];         /* "127.0.0.1:8080" */
    char active[DEPLOY_NAME_MAX];        /* "" = first target */
    int emulate_distance;
    double health_interval_s;
    double health_timeout_s;
    double forward_timeout_s;
    char admin_token_file[DEPLOY_PATH_MAX];
    double max_body_bytes;
} DeployRouterConfig;

typedef struct {
    char path[DEPLOY_PATH_MAX];          /* the file it was read from */
    int n_targets;
    DeployTarget targets[DEPLOY_MAX_TARGETS];
    DeployPolicyConfig policy;
    DeployRewardConfig reward;
    DeployControlConfig control;
    DeployMetricsConfig metrics;
    DeployRouterConfig router;
} DeployConfig;

/* Fills cfg with the defaults (no targets). */
void deploy_config_defaults(DeployConfig *cfg);
/* Fills a target with its defaults (executor local, port 22, ...). */
void deploy_target_defaults(DeployTarget *t);
/* Parses TOML text (name is used in messages) into cfg (defaults first).
 * DP_ERR_PARSE for syntax, DP_ERR_INVAL for schema errors; both name
 * "name:line: key". */
DpStatus deploy_config_parse(const char *text, const char *name, DeployConfig *cfg, DpError *err);
/* Reads and parses a file; messages use the file's base name. */
DpStatus deploy_config_load(const char *path, DeployConfig *cfg, DpError *err);
/* The target called name, or NULL. */
const DeployTarget *deploy_config_find(const DeployConfig *cfg, const char *name);
/* Writes a human-readable summary (used by `driftpilot router --check`). */
DpStatus deploy_config_describe(const DeployConfig *cfg, DpBuf *out);

// ---- executors ----

typedef enum {
    DEPLOY_JOB_OK = 0,       /* exited 0 */
    DEPLOY_JOB_FAILED = 1,   /* exited non-zero (exit_code), or could not be started */
    DEPLOY_JOB_TIMEOUT = 2,  /* ran past its time limit and was killed by us */
    DEPLOY_JOB_KILLED = 3,   /* died by a signal we did not send (signal) */
} DeployJobStatus;

/* "ok", "failed", "timeout", "killed". */
const char *deploy_job_status_str(DeployJobStatus s);

typedef struct {
    DeployJobStatus status;
    int exit_code;               /* when it exited; -1 otherwise */
    int signal;                  /* the signal that ended it; 0 when it exited */
    double duration_s;
    char log_path[DEPLOY_PATH_MAX];
    char reason[256];            /* one line: "exit code 3", "time limit 2s exceeded: SIGTERM" */
} DeployJobResult;

typedef struct {
    const char *name;            /* job or service name: [a-z0-9-]; log file and k8s names */
    const char *const *argv;     /* NULL-terminated; argv[0] is looked up in PATH */
    double time_limit_s;         /* jobs: <= 0 means none */
    double grace_s;              /* SIGTERM -> SIGKILL; <= 0 means 2 s */
    const char *log_dir;         /* NULL: the target's workdir, else "." */
    const char *stdin_path;      /* NULL: /dev/null */
} DeployRunSpec;

/* A running service started by an executor. */
typedef struct {
    pid_t pid;                   /* local/ssh: the child's pid (process group leader); 0 none */
    int stdin_fd;                /* ssh: write end of its stdin (closing it stops the remote
                                    command); -1 or 0: none */
    char name[DEPLOY_NAME_MAX];
    char log_path[DEPLOY_PATH_MAX];
} DeployService;

typedef struct DeployExecutor DeployExecutor;

/* An executor for target t (copied).  NULL with err filled on failure. */
DeployExecutor *deploy_executor_create(const DeployTarget *t, DpError *err);
void deploy_executor_destroy(DeployExecutor *ex);
/* What limits the executor applies to its children, in words, e.g.
 * "cpu_set 0 (sched_setaffinity); cpu.max not available: ...". */
const char *deploy_executor_limits(const DeployExecutor *ex);

/* Runs a job to completion or to its time limit; the outcome goes to *res.
 * Returns DP_OK whenever an outcome was recorded (a failed job is an
 * outcome, not an error); an error only for bad arguments. */
DpStatus deploy_executor_run_job(DeployExecutor *ex, const DeployRunSpec *spec,
                                 DeployJobResult *res, DpError *err);
/* Starts a long-running service (not waited for). */
DpStatus deploy_executor_start_service(DeployExecutor *ex, const DeployRunSpec *spec,
                                       DeployService *svc, DpError *err);
/* Stops it: SIGTERM to its process group, SIGKILL after grace_s (kubernetes:
 * kubectl delete).  Records how it ended in *res when res is not NULL. */
DpStatus deploy_executor_stop_service(DeployExecutor *ex, DeployService *svc, double grace_s,
                                      DeployJobResult *res, DpError *err);
/* GET <service_url>/healthz; 1 when it answers 200 within timeout_s. */
int deploy_executor_check_health(const DeployExecutor *ex, double timeout_s);

/* The argv that runs argv on an ssh target (NULL-terminated, each string and
 * the array malloc'd; free with deploy_argv_free).  The remote command is
 * one argument in which every word is single-quoted for the remote shell. */
DpStatus deploy_ssh_argv(const DeployTarget *t, const char *const *argv, char ***out,
                         DpError *err);
void deploy_argv_free(char **argv);
/* Appends s quoted for a POSIX shell ('...' with ' as '\''). */
DpStatus deploy_shell_quote(DpBuf *out, const char *s);

/* Kubernetes manifests.  Job: for retraining (restartPolicy Never,
 * backoffLimit 0, activeDeadlineSeconds = time_limit_s).  Deployment +
 * Service: for serving, port taken from the target's service_url. */
DpStatus deploy_k8s_render_job(const DeployTarget *t, const char *name,
                               const char *const *argv, double time_limit_s, DpBuf *out,
                               DpError *err);
DpStatus deploy_k8s_render_service(const DeployTarget *t, const char *name,
                                   const char *const *argv, DpBuf *out, DpError *err);

// ---- router ----

typedef struct {
    char name[DEPLOY_NAME_MAX];
    char url[DEPLOY_STR_MAX];            /* http://host:port, no trailing slash needed */
    double distance_ms;
} RouterTarget;

typedef struct {
    char listen_host[64];                /* "127.0.0.1" */
    int port;                            /* 0: any free port (see router_port) */
    int n_targets;
    RouterTarget targets[DEPLOY_MAX_TARGETS];
    char active[DEPLOY_NAME_MAX];        /* "" = first target */
    int emulate_distance;                /* add distance_ms before each forward */
    double health_interval_s;            /* <= 0: no health thread (forward failures still count) */
    double health_timeout_s;
    double forward_timeout_s;
    char admin_token[256];               /* "" disables POST /admin/route (403) */
    size_t max_body_bytes;
} RouterConfig;

typedef struct Router Router;

/* Defaults: 127.0.0.1:0, health every 1 s (timeout 0.5 s), forward timeout
 * 10 s, bodies up to 1 MiB. */
void router_config_defaults(RouterConfig *rc);
/* Router settings and targets from a DeployConfig ([router] and [[targets]]);
 * reads the admin token file when one is named. */
DpStatus router_config_from_deploy(const DeployConfig *cfg, RouterConfig *rc, DpError *err);
/* Parses "host:port" (IPv4 address or localhost; port 0 = any) into rc. */
DpStatus router_config_set_listen(RouterConfig *rc, const char *listen, DpError *err);
/* Parses "name=url[,distance_ms]" and appends it. */
DpStatus router_config_add_target(RouterConfig *rc, const char *spec, DpError *err);

Router *router_create(const RouterConfig *rc, DpError *err);
/* Binds and starts serving (and health checking). */
DpStatus router_start(Router *r, DpError *err);
/* The port it listens on (after router_start). */
int router_port(const Router *r);
/* Makes name the active target (DP_ERR_INVAL when unknown). */
DpStatus router_set_active(Router *r, const char *name, DpError *err);
/* Name of the active target (copied into out[cap]). */
void router_active(Router *r, char *out, size_t cap);
/* Number of failovers so far. */
double router_failovers(const Router *r);
/* Stops serving; waits for in-flight requests.  Safe to call twice. */
void router_stop(Router *r);
void router_destroy(Router *r);

#endif
