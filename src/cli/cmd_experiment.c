/* `driftpilot experiment`: the study's evaluation in one command.  Starts,
 * per pipeline (adaptive = PPO, static-15m, threshold, drift), an inference
 * service per target, a router and a controller, drives all pipelines with
 * one load generator (same scenario, traffic split equally), stops everything
 * cleanly, and writes the results directory (report.h) with the simulator's
 * prediction for the same scenario beside the live result.  With no --model
 * it is the main job: the built-in model and the policy come from the cache
 * (trained on first use).  Processes: experiment_proc.c; cache:
 * experiment_cache.c. */
#include "cli.h"
#include "deploy.h"
#include "experiment.h"
#include "metrics.h"
#include "report.h"
#include "sim.h"
#include "train.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CMD "experiment"
#define MAX_PIPES 4
#define MAX_REPEATS 20
#define DEFAULT_CONFIG "configs/experiment/default.toml"

/* What [experiment] holds (and the options override). */
typedef struct {
    char scenario[32];
    double duration_s;          /* scenario time per repeat */
    double scale;               /* scenario seconds per wall second */
    int repeats;
    double rate;                /* total requests/s, split equally over pipelines */
    char pipelines[256];        /* comma list */
    double feedback_fraction;   /* share of answers whose label comes back */
    double feedback_delay_s;    /* scenario time until the label arrives */
    int max_new_tokens;
    char retrain_args[512];     /* appended to every retrain job */
    char pretrain_args[512];    /* the built-in model (main job) */
    char policy_args[512];      /* `sim train-policy` (main job) */
    char static_policy[64];
    char threshold_policy[64];
    char drift_policy[64];
    int sim_seeds;
    char sim_config[EXP_PATH_MAX]; /* simulator config for the prediction ("": the study's) */
    char actions[16];           /* targets (the study's) | pairs: train on one target, serve on another */
    long long seed;
    double health_timeout_s;
    double stop_grace_s;
    int prometheus;             /* 1: start Prometheus when installed */
} ExpSettings;

static void settings_default(ExpSettings *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->scenario, sizeof s->scenario, "gradual");
    s->duration_s = 4 * 3600;
    s->scale = 60;
    s->repeats = 1;
    s->rate = 40;
    snprintf(s->pipelines, sizeof s->pipelines, "adaptive,static-15m");
    s->feedback_fraction = 0.3;
    s->feedback_delay_s = 60;
    s->max_new_tokens = 8;
    snprintf(s->retrain_args, sizeof s->retrain_args,
             "--quiet --epochs 1 --window 300 --min-steps 300 --batch 16 --lr 0.0005");
    snprintf(s->pretrain_args, sizeof s->pretrain_args, "--minutes 10 --seed 1");
    snprintf(s->policy_args, sizeof s->policy_args, "--steps 1000000 --seed 1");
    snprintf(s->static_policy, sizeof s->static_policy, "static:15m:aws");
    snprintf(s->threshold_policy, sizeof s->threshold_policy, "threshold");
    snprintf(s->drift_policy, sizeof s->drift_policy, "ph");
    snprintf(s->actions, sizeof s->actions, "targets");
    s->sim_seeds = 10;
    s->seed = 1;
    s->health_timeout_s = 60;
    s->stop_grace_s = 15;
    s->prometheus = 0;
}

/* The built-in default config (two local "clouds" with the study's prices),
 * used when no --config is given and configs/experiment/default.toml is not
 * in the current directory. */
static const char builtin_config[] =
    "[[targets]]\nname = \"aws\"\nprice_per_gpu_hour = 0.045\nretrain_cost = 0.045\n"
    "service_url = \"http://127.0.0.1:1\"\nnetwork_distance_ms = 40\n\n"
    "[[targets]]\nname = \"azure\"\nprice_per_gpu_hour = 0.038\nretrain_cost = 0.038\n"
    "service_url = \"http://127.0.0.1:2\"\nnetwork_distance_ms = 25\n\n"
    "[reward]\nbleu_weight = 0.5\naccuracy_weight = 0.5\ncost_weight = 1.0\n\n"
    "[control]\ndecision_interval = \"60s\"\njob_time_limit = \"10m\"\n\n"
    "[router]\nactive = \"aws\"\nemulate_distance = true\nhealth_interval = \"1s\"\n";

// ---- config: [experiment] apart, the rest is a driftpilot TOML ----

static int parse_str_value(const char *v, char *out, size_t cap) {
    if (*v != '"') return 0;
    const char *end = strchr(v + 1, '"');
    if (!end || (size_t)(end - v - 1) >= cap) return 0;
    memcpy(out, v + 1, (size_t)(end - v - 1));
    out[end - v - 1] = 0;
    return 1;
}

static DpStatus set_key(ExpSettings *s, const char *name, int line, const char *key, const char *v,
                        DpError *err) {
    char str[512];
    double d;
    char *end;
#define STR(k, field)                                                                      \
    if (!strcmp(key, k)) {                                                                 \
        if (!parse_str_value(v, str, sizeof str) || strlen(str) >= sizeof s->field)        \
            return dp_fail(err, DP_ERR_PARSE, "%s:%d: experiment.%s: expected a string", name, \
                           line, key);                                                     \
        snprintf(s->field, sizeof s->field, "%s", str);                                    \
        return DP_OK;                                                                      \
    }
#define DUR(k, field)                                                                      \
    if (!strcmp(key, k)) {                                                                 \
        if (parse_str_value(v, str, sizeof str)) {                                         \
            if (dp_parse_duration(str, &s->field, err))                                    \
                return dp_error_wrap(err, "%s:%d: experiment.%s", name, line, key);        \
        } else {                                                                           \
            s->field = strtod(v, &end);                                                    \
            if (end == v) return dp_fail(err, DP_ERR_PARSE, "%s:%d: experiment.%s: expected a duration", name, line, key); \
        }                                                                                  \
        return DP_OK;                                                                      \
    }
#define NUM(k, field, lo, hi)                                                              \
    if (!strcmp(key, k)) {                                                                 \
        d = strtod(v, &end);                                                               \
        while (*end == ' ' || *end == '\t') end++;                                         \
        if (end == v || (*end && *end != '#') || !(d >= (lo) && d <= (hi)))                 \
            return dp_fail(err, DP_ERR_INVAL, "%s:%d: experiment.%s: expected a number in [%g, %g]", \
                           name, line, key, (double)(lo), (double)(hi));                   \
        s->field = d;                                                                      \
        return DP_OK;                                                                      \
    }
    STR("scenario", scenario)
    DUR("duration", duration_s)
    NUM("scale", scale, 1e-3, 1e6)
    NUM("repeats", repeats, 1, MAX_REPEATS)
    NUM("rate", rate, 0.1, 100000)
    STR("pipelines", pipelines)
    NUM("feedback_fraction", feedback_fraction, 0, 1)
    DUR("feedback_delay", feedback_delay_s)
    NUM("max_new_tokens", max_new_tokens, 1, 128)
    STR("retrain_args", retrain_args)
    STR("pretrain_args", pretrain_args)
    STR("policy_args", policy_args)
    STR("static_policy", static_policy)
    STR("threshold_policy", threshold_policy)
    STR("drift_policy", drift_policy)
    NUM("sim_seeds", sim_seeds, 1, 1000)
    STR("sim_config", sim_config)
    STR("actions", actions)
    NUM("seed", seed, 0, 1e15)
    DUR("health_timeout", health_timeout_s)
    DUR("stop_grace", stop_grace_s)
    if (!strcmp(key, "prometheus")) {
        if (!strncmp(v, "true", 4)) s->prometheus = 1;
        else if (!strncmp(v, "false", 5)) s->prometheus = 0;
        else return dp_fail(err, DP_ERR_PARSE, "%s:%d: experiment.prometheus: expected true or false", name, line);
        return DP_OK;
    }
#undef STR
#undef DUR
#undef NUM
    return dp_fail(err, DP_ERR_INVAL, "%s:%d: unknown key experiment.%s", name, line, key);
}

/* Takes the [experiment] table out of text (its lines become blank, so the
 * deploy parser's line numbers stay right) and applies it to s. */
static DpStatus split_experiment(char *text, const char *name, ExpSettings *s, DpError *err) {
    int in_exp = 0, line = 0;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        line++;
        char *q = p;
        while (*q == ' ' || *q == '\t') q++;
        if (*q == '[') in_exp = !strncmp(q, "[experiment]", 12);
        if (in_exp) {
            char buf[1024];
            if (len >= sizeof buf)
                return dp_fail(err, DP_ERR_PARSE, "%s:%d: line too long", name, line);
            memcpy(buf, p, len);
            buf[len] = 0;
            char *b = buf;
            while (*b == ' ' || *b == '\t') b++;
            if (*b && *b != '#' && *b != '[') {
                char *eq = strchr(b, '=');
                if (!eq) return dp_fail(err, DP_ERR_PARSE, "%s:%d: expected key = value", name, line);
                char *ke = eq;
                while (ke > b && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
                *ke = 0;
                char *v = eq + 1;
                while (*v == ' ' || *v == '\t') v++;
                DpStatus st = set_key(s, name, line, b, v, err);
                if (st) return st;
            }
            memset(p, ' ', len);
        }
        p += len + (nl ? 1 : 0);
    }
    return DP_OK;
}

static DpStatus load_config(const char *path, ExpSettings *s, DeployConfig *dc, DpError *err) {
    char *text = NULL;
    size_t len = 0;
    const char *name = "built-in defaults";
    if (path) {
        DpStatus st = dp_read_file(path, &text, &len, err);
        if (st) return st;
        name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    } else {
        text = dp_strdup(builtin_config);
        if (!text) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    }
    DpStatus st = split_experiment(text, name, s, err);
    if (!st) st = deploy_config_parse(text, name, dc, err);
    free(text);
    if (st) return st;
    if (dc->n_targets < 1) return dp_fail(err, DP_ERR_INVAL, "%s: no [[targets]]", name);
    for (int k = 0; k < dc->n_targets; k++)
        if (dc->targets[k].executor != DEPLOY_EXEC_LOCAL)
            return dp_fail(err, DP_ERR_INVAL,
                           "%s: target %s: the experiment runs every target on this machine "
                           "(executor \"local\"), not \"%s\"",
                           name, dc->targets[k].name, deploy_exec_kind_str(dc->targets[k].executor));
    SimActionSet set;
    if (sim_action_set_parse(s->actions, &set, NULL) || set == SIM_ACTIONS_STEPS)
        return dp_fail(err, DP_ERR_INVAL, "%s: experiment.actions: expected \"targets\" or \"pairs\", "
                       "got \"%s\"", name, s->actions);
    if (s->sim_config[0]) { /* a bad file fails now, not after the live run */
        SimConfig sc;
        sim_config_default(&sc);
        if ((st = sim_config_load(&sc, s->sim_config, err)))
            return dp_error_wrap(err, "%s: experiment.sim_config", name);
    }
    return DP_OK;
}

// ---- scenario: the simulator's scenario as live drift and load ----

/* The load generator's drift schedule and load for a simulator scenario
 * (sim_scenario_apply), with times scaled to the experiment's duration. */
static DpStatus scenario_live(const ExpSettings *s, char *drift, size_t dcap, char *load,
                              size_t lcap, DpError *err) {
    const char *sc = s->scenario;
    double dur = s->duration_s;
    snprintf(load, lcap, "steady:%g", s->rate);
    if (!strcmp(sc, "steady")) snprintf(drift, dcap, "gradual:0.05/h");
    else if (!strcmp(sc, "spike")) {
        snprintf(drift, dcap, "gradual:0.05/h");
        snprintf(load, lcap, "spike:%g:%g:%gs:%gs", s->rate, s->rate * 1.8, dur * 0.4,
                 fmin(1800, dur * 0.125));
    } else if (!strcmp(sc, "gradual")) snprintf(drift, dcap, "gradual:0.25/h");
    else if (!strcmp(sc, "sudden")) snprintf(drift, dcap, "sudden:%gs:0.4", dur * 0.5);
    else if (!strcmp(sc, "recurring")) snprintf(drift, dcap, "recurring:3600s:0.4");
    else if (!strcmp(sc, "outage")) snprintf(drift, dcap, "gradual:0.25/h");
    else
        return dp_fail(err, DP_ERR_INVAL,
                       "scenario '%s' cannot run live (steady, spike, gradual, sudden, recurring, "
                       "outage)",
                       sc);
    return DP_OK;
}

/* The outage scenario live: the first target's service of every pipeline is
 * killed (SIGKILL, as a machine or zone loss would end it) for a quarter of
 * the run from 37.5% of it, then started again on its port.  The simulator
 * draws the start per episode in [1800 s, 9000 s] of 4 h; live uses that
 * range's middle, scaled to the duration.  Scenario seconds; 0 length: none. */
static void scenario_outage(const ExpSettings *s, double *start_s, double *len_s) {
    *start_s = *len_s = 0;
    if (strcmp(s->scenario, "outage")) return;
    *start_s = 0.375 * s->duration_s;
    *len_s = 0.25 * s->duration_s;
}

// ---- one pipeline of one repeat ----

typedef struct {
    char name[32];                   /* "adaptive" */
    char policy[EXP_PATH_MAX + 8];   /* control --policy spec */
    char dir[EXP_PATH_MAX];          /* OUT/work/rN/<name> */
    char registry[EXP_PATH_MAX + 16];
    char store[EXP_PATH_MAX + 16];
    char feedback[EXP_PATH_MAX + 16];
    char config[EXP_PATH_MAX + 16];
    char run_id[64];
    char requests[EXP_PATH_MAX + 32]; /* its share of the loadgen CSV */
    int ports[DEPLOY_MAX_TARGETS];
    int router_port;
    ExpChild serve[DEPLOY_MAX_TARGETS];
    ExpChild router;
    ExpChild control;
} Pipe;

typedef struct {
    ExpSettings set;
    DeployConfig *dc;
    char exe[EXP_PATH_MAX];
    char out[EXP_PATH_MAX];
    char model[EXP_PATH_MAX];
    char policy[EXP_PATH_MAX];
    char token_file[EXP_PATH_MAX + 16];
    QaWorldConfig world;
    int have_world;
    int n_pipes;
    Pipe pipes[MAX_PIPES];
    ExpChild loadgen;
    ExpChild prometheus;
    FILE *pids;                      /* OUT/pids.txt: every child started */
} Exp;

static void note_pid(Exp *x, const ExpChild *c) {
    if (x->pids && c->pid) {
        fprintf(x->pids, "%d %s\n", (int)c->pid, c->name);
        fflush(x->pids);
    }
}

static DpStatus pipe_policy(Exp *x, Pipe *p, DpError *err) {
    const char *n = p->name;
    if (!strcmp(n, "adaptive")) snprintf(p->policy, sizeof p->policy, "ppo:%s", x->policy);
    else if (!strcmp(n, "static-15m")) snprintf(p->policy, sizeof p->policy, "%s", x->set.static_policy);
    else if (!strcmp(n, "threshold")) snprintf(p->policy, sizeof p->policy, "%s", x->set.threshold_policy);
    else if (!strcmp(n, "drift")) snprintf(p->policy, sizeof p->policy, "%s", x->set.drift_policy);
    else
        return dp_fail(err, DP_ERR_INVAL,
                       "unknown pipeline '%s' (adaptive, static-15m, threshold, drift)", n);
    return DP_OK;
}

static DpStatus parse_pipelines(Exp *x, DpError *err) {
    char list[256];
    snprintf(list, sizeof list, "%s", x->set.pipelines);
    char *save = NULL;
    x->n_pipes = 0;
    for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (x->n_pipes == MAX_PIPES) return dp_fail(err, DP_ERR_INVAL, "at most %d pipelines", MAX_PIPES);
        for (int i = 0; i < x->n_pipes; i++)
            if (!strcmp(x->pipes[i].name, t)) return dp_fail(err, DP_ERR_INVAL, "pipeline %s twice", t);
        Pipe *p = &x->pipes[x->n_pipes++];
        snprintf(p->name, sizeof p->name, "%s", t);
        if (strcmp(t, "adaptive") && strcmp(t, "static-15m") && strcmp(t, "threshold") &&
            strcmp(t, "drift"))
            return dp_fail(err, DP_ERR_INVAL,
                           "unknown pipeline '%s' (adaptive, static-15m, threshold, drift)", t);
    }
    if (!x->n_pipes) return dp_fail(err, DP_ERR_INVAL, "no pipelines");
    return DP_OK;
}

static int has_pipe(const Exp *x, const char *name) {
    for (int i = 0; i < x->n_pipes; i++)
        if (!strcmp(x->pipes[i].name, name)) return 1;
    return 0;
}

/* A fresh registry holding the base model, current on every target. */
static DpStatus init_registry(Exp *x, Pipe *p, DpError *err) {
    Registry *reg = NULL;
    char v[REGISTRY_ID_MAX];
    DpStatus s = registry_open(p->registry, &reg, err);
    if (!s) {
        RegistryPublishInfo info = {0};
        info.data_fingerprint = "base";
        s = registry_publish(reg, x->model, &info, v, err);
    }
    for (int k = 0; !s && k < x->dc->n_targets; k++)
        s = registry_promote(reg, v, x->dc->targets[k].name, err);
    registry_close(reg);
    if (s) return dp_error_wrap(err, "registry %s", p->registry);
    return DP_OK;
}

static int read_port_file(const char *path) {
    char *text = NULL;
    size_t len = 0;
    DpError e;
    if (dp_read_file(path, &text, &len, &e)) return 0;
    int port = atoi(text);
    free(text);
    return port > 0 && port < 65536 ? port : 0;
}

static DpStatus child_failed(const ExpChild *c, const char *what, DpError *err) {
    char how[96], tail[1200];
    exp_child_describe(c, how, sizeof how);
    exp_log_tail(c->log_path, 6, tail, sizeof tail);
    return dp_fail(err, DP_ERR_STATE, "%s %s (%s); its log is %s%s%s", c->name, what, how,
                   c->log_path, tail[0] ? ":\n" : "", tail);
}

/* Waits until the child has written its port file and answers /healthz. */
static DpStatus wait_healthy(Exp *x, ExpChild *c, const char *port_file, int *port, DpError *err) {
    double deadline = dp_time_mono() + x->set.health_timeout_s;
    *port = 0;
    while (dp_time_mono() < deadline) {
        if (exp_stop_requested) return dp_fail(err, DP_ERR_STATE, "interrupted");
        if (!exp_child_alive(c)) return child_failed(c, "exited while starting", err);
        if (!*port) *port = read_port_file(port_file);
        if (*port) {
            char url[128], *body = NULL;
            size_t blen = 0;
            int code = 0;
            DpError e;
            snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", *port);
            if (!metrics_http_get(url, 2.0, &body, &blen, &code, &e) && code == 200) {
                free(body);
                return DP_OK;
            }
            free(body);
        }
        dp_sleep(0.1);
    }
    return child_failed(c, "did not become healthy in time", err);
}

/* Starts target k's service of pipeline p on port (0: any free one, written
 * to its port file). */
static DpStatus start_serve(Exp *x, Pipe *p, int k, int port, DpError *err) {
    const DeployTarget *t = &x->dc->targets[k];
    char name[96], log[EXP_PATH_MAX + 64], pf[EXP_PATH_MAX + 64], listen[32];
    snprintf(name, sizeof name, "serve %s/%s", p->name, t->name);
    snprintf(log, sizeof log, "%s/serve-%s.log", p->dir, t->name);
    snprintf(pf, sizeof pf, "%s/serve-%s.port", p->dir, t->name);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    char *argv[] = {"driftpilot", "serve", "--registry", p->registry, "--target",
                    (char *)t->name, "--listen", listen, "--port-file", pf,
                    "--feedback-log", p->feedback, "--admin-token-file", x->token_file,
                    NULL};
    DpStatus s = exp_child_start(&p->serve[k], name, x->exe, argv, log, NULL, err);
    if (!s) note_pid(x, &p->serve[k]);
    return s;
}

static DpStatus start_serves(Exp *x, Pipe *p, DpError *err) {
    for (int k = 0; k < x->dc->n_targets; k++) {
        DpStatus s = start_serve(x, p, k, 0, err);
        if (s) return s;
    }
    return DP_OK;
}

static DpStatus start_router(Exp *x, Pipe *p, DpError *err) {
    char specs[DEPLOY_MAX_TARGETS][DEPLOY_STR_MAX + 64];
    char *argv[16 + 2 * DEPLOY_MAX_TARGETS];
    int n = 0;
    char name[96], log[EXP_PATH_MAX + 64], pf[EXP_PATH_MAX + 64], hi[32];
    snprintf(name, sizeof name, "router %s", p->name);
    snprintf(log, sizeof log, "%s/router.log", p->dir);
    snprintf(pf, sizeof pf, "%s/router.port", p->dir);
    snprintf(hi, sizeof hi, "%gs", x->dc->router.health_interval_s);
    argv[n++] = "driftpilot";
    argv[n++] = "router";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--port-file";
    argv[n++] = pf;
    argv[n++] = "--admin-token-file";
    argv[n++] = x->token_file;
    argv[n++] = "--health-interval";
    argv[n++] = hi;
    if (x->dc->router.emulate_distance) argv[n++] = "--emulate-distance";
    for (int k = 0; k < x->dc->n_targets; k++) {
        const DeployTarget *t = &x->dc->targets[k];
        snprintf(specs[k], sizeof specs[k], "%s=http://127.0.0.1:%d,%g", t->name, p->ports[k],
                 t->network_distance_ms);
        argv[n++] = "--target";
        argv[n++] = specs[k];
    }
    if (x->dc->router.active[0]) {
        argv[n++] = "--active";
        argv[n++] = x->dc->router.active;
    }
    argv[n] = NULL;
    DpStatus s = exp_child_start(&p->router, name, x->exe, argv, log, NULL, err);
    if (!s) note_pid(x, &p->router);
    return s;
}

/* The controller's driftpilot TOML: the experiment's targets at the ports
 * its services got, its own registry, store and router. */
static DpStatus write_control_config(Exp *x, Pipe *p, DpError *err) {
    const DeployConfig *dc = x->dc;
    DpBuf b = DP_BUF_INIT;
    dp_buf_printf(&b, "# written by driftpilot experiment for pipeline %s\n", p->name);
    for (int k = 0; k < dc->n_targets; k++) {
        const DeployTarget *t = &dc->targets[k];
        dp_buf_printf(&b,
                      "\n[[targets]]\nname = \"%s\"\nprice_per_gpu_hour = %.17g\ngpu_count = %d\n"
                      "cpus = %d\nretrain_cost = %.17g\nservice_url = \"http://127.0.0.1:%d\"\n"
                      "network_distance_ms = %.17g\nexecutor = \"local\"\nworkdir = \"%s/%s\"\n",
                      t->name, t->price_per_gpu_hour, t->gpu_count, t->cpus, t->retrain_cost,
                      p->ports[k], t->network_distance_ms, p->dir, t->name);
        if (t->cpu_set[0]) dp_buf_printf(&b, "cpu_set = \"%s\"\n", t->cpu_set);
        if (t->cpu_quota > 0) dp_buf_printf(&b, "cpu_quota = %.17g\n", t->cpu_quota);
        if (t->memory_mb > 0) dp_buf_printf(&b, "memory_mb = %.17g\n", t->memory_mb);
        if (t->nice > 0) dp_buf_printf(&b, "nice = %d\n", t->nice);
    }
    const DeployRewardConfig *r = &dc->reward;
    dp_buf_printf(&b,
                  "\n[reward]\nbleu_weight = %.17g\naccuracy_weight = %.17g\ncost_weight = %.17g\n"
                  "latency_slo_ms = %.17g\nlatency_penalty = %.17g\n",
                  r->bleu_weight, r->accuracy_weight, r->cost_weight, r->latency_slo_ms,
                  r->latency_penalty);
    const DeployControlConfig *c = &dc->control;
    dp_buf_printf(&b,
                  "\n[control]\ndecision_interval = %.17g\ntime_scale = %.17g\nregistry = \"%s\"\n"
                  "store = \"%s\"\njob_time_limit = %.17g\nrollback_margin = %.17g\n"
                  "rollback_window = %.17g\n",
                  c->decision_interval_s, x->set.scale, p->registry, p->store, c->job_time_limit_s,
                  c->rollback_margin, c->rollback_window_s);
    dp_buf_printf(&b, "\n[policy]\nactions = \"%s\"\n", x->set.actions);
    dp_buf_printf(&b, "\n[metrics]\nsource = \"direct\"\n");
    dp_buf_printf(&b,
                  "\n[router]\nlisten = \"127.0.0.1:%d\"\nemulate_distance = %s\n"
                  "admin_token_file = \"%s\"\n",
                  p->router_port, dc->router.emulate_distance ? "true" : "false", x->token_file);
    if (dc->router.active[0]) dp_buf_printf(&b, "active = \"%s\"\n", dc->router.active);
    if (!b.data) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    DpStatus s = dp_write_file_atomic(p->config, b.data, b.len, err);
    dp_buf_free(&b);
    if (s) return s;
    /* Check it the way the controller will read it. */
    DeployConfig *check = dp_calloc(1, sizeof *check);
    if (!check) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    s = deploy_config_load(p->config, check, err);
    free(check);
    return s;
}

static DpStatus start_control(Exp *x, Pipe *p, DpError *err) {
    char name[96], log[EXP_PATH_MAX + 64], dur[64], retrain[2048];
    snprintf(name, sizeof name, "control %s", p->name);
    snprintf(log, sizeof log, "%s/control.log", p->dir);
    /* Past the load's end: the experiment stops it, not its own clock. */
    snprintf(dur, sizeof dur, "%gs", x->set.duration_s * 1.5 + 600);
    snprintf(retrain, sizeof retrain,
             "%s retrain --from {from} --data {data} --registry {registry} --record {record} %s",
             x->exe, x->set.retrain_args);
    char *argv[] = {"driftpilot", "control", "run", "--config", p->config, "--policy", p->policy,
                    "--data", p->feedback, "--listen", "none", "--run-id", p->run_id,
                    "--duration", dur, "--retrain-command", retrain, NULL};
    DpStatus s = exp_child_start(&p->control, name, x->exe, argv, log, NULL, err);
    if (!s) note_pid(x, &p->control);
    return s;
}

/* The controller logs "control: start:" once its policy, store and registry
 * are open. */
static DpStatus wait_control(Exp *x, Pipe *p, DpError *err) {
    double deadline = dp_time_mono() + x->set.health_timeout_s;
    while (dp_time_mono() < deadline) {
        if (exp_stop_requested) return dp_fail(err, DP_ERR_STATE, "interrupted");
        if (!exp_child_alive(&p->control)) return child_failed(&p->control, "exited while starting", err);
        char *text = NULL;
        size_t len = 0;
        DpError e;
        if (!dp_read_file(p->control.log_path, &text, &len, &e)) {
            int ok = strstr(text, "control: start") != NULL;
            free(text);
            if (ok) return DP_OK;
        }
        dp_sleep(0.1);
    }
    return child_failed(&p->control, "did not start in time", err);
}

static const char *attr_list(unsigned mask, char *buf, size_t cap) {
    buf[0] = 0;
    for (int a = 0; a < QA_N_ATTRS; a++)
        if (mask & QA_ATTR_MASK(a)) {
            size_t l = strlen(buf);
            snprintf(buf + l, cap - l, "%s%s", l ? "," : "", qa_attr_name((QaAttr)a));
        }
    return buf;
}

static DpStatus start_loadgen(Exp *x, const char *rdir, int repeat, char *csv, size_t cap,
                              DpError *err) {
    char drift[128], load[128];
    DpStatus s = scenario_live(&x->set, drift, sizeof drift, load, sizeof load, err);
    if (s) return s;
    char targets[MAX_PIPES][128], dur[64], scale[32], fbf[32], fbd[32], mnt[16], seed[32],
        sseed[32], services[16], attrs[128], newph[32], log[EXP_PATH_MAX + 32],
        sum[EXP_PATH_MAX + 32];
    snprintf(csv, cap, "%s/requests.csv", rdir);
    snprintf(log, sizeof log, "%s/loadgen.log", rdir);
    snprintf(sum, sizeof sum, "%s/loadgen-summary.json", rdir);
    snprintf(dur, sizeof dur, "%gs", x->set.duration_s / x->set.scale);
    snprintf(scale, sizeof scale, "%g", x->set.scale);
    snprintf(fbf, sizeof fbf, "%g", x->set.feedback_fraction);
    snprintf(fbd, sizeof fbd, "%gs", x->set.feedback_delay_s);
    snprintf(mnt, sizeof mnt, "%d", x->set.max_new_tokens);
    snprintf(sseed, sizeof sseed, "%lld", x->set.seed * 1000 + repeat);
    const QaWorldConfig *w = &x->world;
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)w->seed);
    snprintf(services, sizeof services, "%d", w->n_services);
    snprintf(newph, sizeof newph, "%g", w->new_per_hour);
    attr_list(w->attributes, attrs, sizeof attrs);
    char *argv[64];
    int n = 0;
    argv[n++] = "driftpilot";
    argv[n++] = "loadgen";
    for (int i = 0; i < x->n_pipes; i++) {
        snprintf(targets[i], sizeof targets[i], "http://127.0.0.1:%d=1", x->pipes[i].router_port);
        argv[n++] = "--target";
        argv[n++] = targets[i];
    }
    const char *rest[] = {"--load", load, "--load-clock", "scenario", "--duration", dur, "--scale",
                          scale, "--seed", seed, "--services", services, "--attributes", attrs,
                          "--new-per-hour", newph, "--schedule", drift, "--feedback-fraction", fbf,
                          "--feedback-delay", fbd, "--max-new-tokens", mnt, "--sample-seed", sseed,
                          "--csv", csv, "--json", "--quiet", NULL};
    for (int i = 0; rest[i]; i++) argv[n++] = (char *)rest[i];
    argv[n] = NULL;
    s = exp_child_start(&x->loadgen, "loadgen", x->exe, argv, log, sum, err);
    if (!s) note_pid(x, &x->loadgen);
    return s;
}

/* Writes each pipeline's rows of the load generator's CSV (by target URL). */
static DpStatus split_requests(Exp *x, const char *csv, DpError *err) {
    FILE *in = fopen(csv, "r");
    if (!in) return dp_fail(err, DP_ERR_IO, "open %s: %s", csv, strerror(errno));
    FILE *outs[MAX_PIPES] = {0};
    char urls[MAX_PIPES][64];
    DpStatus s = DP_OK;
    for (int i = 0; i < x->n_pipes; i++) {
        snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d", x->pipes[i].router_port);
        outs[i] = fopen(x->pipes[i].requests, "w");
        if (!outs[i]) {
            s = dp_fail(err, DP_ERR_IO, "open %s: %s", x->pipes[i].requests, strerror(errno));
            goto done;
        }
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int first = 1;
    while ((len = getline(&line, &cap, in)) > 0) {
        if (first) {
            for (int i = 0; i < x->n_pipes; i++) fputs(line, outs[i]);
            first = 0;
            continue;
        }
        /* seq,intended_s,sent_s,scenario_s,target,... */
        const char *f = line;
        for (int c = 0; c < 4 && f; c++) {
            f = strchr(f, ',');
            if (f) f++;
        }
        if (!f) continue;
        for (int i = 0; i < x->n_pipes; i++) {
            size_t ul = strlen(urls[i]);
            if (!strncmp(f, urls[i], ul) && f[ul] == ',') fputs(line, outs[i]);
        }
    }
    free(line);
done:
    fclose(in);
    for (int i = 0; i < x->n_pipes; i++)
        if (outs[i] && fclose(outs[i]) != 0 && !s)
            s = dp_fail(err, DP_ERR_IO, "write %s failed", x->pipes[i].requests);
    return s;
}

// ---- Prometheus (optional) ----

/* The full path of prog found in $PATH, or 0. */
static int find_in_path(const char *prog, char *out, size_t cap) {
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/%s", *d ? d : ".", prog);
        if (access(out, X_OK) == 0) return 1;
    }
    return 0;
}

/* A free loopback port (bound and released: another process could take it
 * in between, which Prometheus would report as a bind error). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Starts Prometheus scraping every service and router of this repeat (labels
 * dp_pipeline and dp_target), its TSDB under rdir/prometheus.  Not being
 * able to is a warning: the controllers scrape directly either way. */
static void start_prometheus(Exp *x, const char *rdir) {
    char prog[EXP_PATH_MAX];
    memset(&x->prometheus, 0, sizeof x->prometheus);
    if (!find_in_path("prometheus", prog, sizeof prog)) {
        dp_warn("experiment: prometheus is not installed: running without it");
        return;
    }
    char dir[EXP_PATH_MAX + 32], yml[EXP_PATH_MAX + 64], tsdb[EXP_PATH_MAX + 64],
        log[EXP_PATH_MAX + 64], cfg_arg[EXP_PATH_MAX + 96], tsdb_arg[EXP_PATH_MAX + 96],
        listen[64];
    DpError err = {0};
    snprintf(dir, sizeof dir, "%s/prometheus", rdir);
    snprintf(yml, sizeof yml, "%s/prometheus.yml", dir);
    snprintf(tsdb, sizeof tsdb, "%s/tsdb", dir);
    snprintf(log, sizeof log, "%s/prometheus.log", dir);
    if (dp_mkdirs(dir, &err)) {
        dp_warn("experiment: prometheus: %s", err.msg);
        return;
    }
    double every = x->dc->control.decision_interval_s / x->set.scale;
    every = every < 1 ? 1 : every > 15 ? 15 : every;
    DpBuf b = DP_BUF_INIT;
    /* Prometheus durations are integers with a unit. */
    int every_ms = (int)(every * 1000 + 0.5);
    int timeout_ms = every_ms * 8 / 10 < 1500 ? every_ms * 8 / 10 : 1500;
    dp_buf_printf(&b, "# written by driftpilot experiment\nglobal:\n  scrape_interval: %dms\n"
                  "  scrape_timeout: %dms\nscrape_configs:\n  - job_name: driftpilot-serve\n"
                  "    static_configs:\n", every_ms, timeout_ms);
    for (int i = 0; i < x->n_pipes; i++)
        for (int k = 0; k < x->dc->n_targets; k++)
            dp_buf_printf(&b, "      - targets: ['127.0.0.1:%d']\n        labels: {dp_pipeline: '%s', dp_target: '%s'}\n",
                          x->pipes[i].ports[k], x->pipes[i].name, x->dc->targets[k].name);
    dp_buf_printf(&b, "  - job_name: driftpilot-router\n    static_configs:\n");
    for (int i = 0; i < x->n_pipes; i++)
        dp_buf_printf(&b, "      - targets: ['127.0.0.1:%d']\n        labels: {dp_pipeline: '%s'}\n",
                      x->pipes[i].router_port, x->pipes[i].name);
    DpStatus st = b.data ? dp_write_file_atomic(yml, b.data, b.len, &err) : DP_ERR_NOMEM;
    dp_buf_free(&b);
    int port = free_port();
    if (st || !port) {
        dp_warn("experiment: prometheus: cannot write its config or find a port: %s", err.msg);
        return;
    }
    snprintf(cfg_arg, sizeof cfg_arg, "--config.file=%s", yml);
    snprintf(tsdb_arg, sizeof tsdb_arg, "--storage.tsdb.path=%s", tsdb);
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
    char *argv[] = {"prometheus", cfg_arg, tsdb_arg, listen, "--storage.tsdb.retention.time=1d",
                    NULL};
    if (exp_child_start(&x->prometheus, "prometheus", prog, argv, log, NULL, &err)) {
        dp_warn("experiment: prometheus: %s", err.msg);
        return;
    }
    note_pid(x, &x->prometheus);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/-/ready", port);
    double deadline = dp_time_mono() + 30;
    while (dp_time_mono() < deadline && exp_child_alive(&x->prometheus) && !exp_stop_requested) {
        char *body = NULL;
        int code = 0;
        if (!metrics_http_get(url, 1.0, &body, NULL, &code, &err) && code == 200) {
            free(body);
            dp_info("experiment: prometheus on http://127.0.0.1:%d (config %s)", port, yml);
            return;
        }
        free(body);
        dp_sleep(0.2);
    }
    dp_warn("experiment: prometheus did not become ready (log %s): running without it", log);
    exp_child_stop(&x->prometheus, 5);
}

/* Stops the controllers: SIGTERM (no decision after this), then their
 * running retrain jobs (a controller waits for its job; the executor records
 * it as killed), then SIGKILL for any that is still there after the grace. */
static void stop_controllers(Exp *x) {
    ExpChild *cs[MAX_PIPES];
    int n = 0, jobs = 0;
    for (int i = 0; i < x->n_pipes; i++) {
        cs[n++] = &x->pipes[i].control;
        if (exp_child_alive(&x->pipes[i].control)) kill(x->pipes[i].control.pid, SIGTERM);
    }
    /* Twice: a job forked just as the signal arrived is caught the second time. */
    for (int pass = 0; pass < 2; pass++) {
        dp_sleep(0.3);
        for (int i = 0; i < x->n_pipes; i++) jobs += exp_child_term_children(&x->pipes[i].control);
    }
    if (jobs) dp_info("experiment: stopped %d running retrain job(s)", jobs);
    exp_children_stop(cs, n, x->set.stop_grace_s);
}

static void stop_repeat(Exp *x) {
    ExpChild *cs[MAX_PIPES * (DEPLOY_MAX_TARGETS + 2) + 1];
    int n = 0;
    cs[n++] = &x->loadgen;
    exp_children_stop(cs, n, 5);
    /* Controllers first (they finish or abandon a job and close the store),
     * then the routers and services they talk to. */
    stop_controllers(x);
    n = 0;
    cs[n++] = &x->prometheus;
    for (int i = 0; i < x->n_pipes; i++) {
        cs[n++] = &x->pipes[i].router;
        for (int k = 0; k < x->dc->n_targets; k++) cs[n++] = &x->pipes[i].serve[k];
    }
    exp_children_stop(cs, n, 10);
    int orphans = exp_sweep_orphans(5);
    if (orphans) dp_warn("experiment: %d left-over process(es) (retrain jobs) stopped", orphans);
}

/* One repeat: start everything, run the load, stop everything. */
static DpStatus run_repeat(Exp *x, int repeat, DpError *err) {
    DpStatus s = DP_OK;
    char rdir[EXP_PATH_MAX + 32], csv[EXP_PATH_MAX + 64];
    snprintf(rdir, sizeof rdir, "%s/work/r%d", x->out, repeat);
    if ((s = dp_mkdirs(rdir, err))) return s;
    for (int i = 0; i < x->n_pipes; i++) {
        Pipe *p = &x->pipes[i];
        memset(p->serve, 0, sizeof p->serve);
        memset(&p->router, 0, sizeof p->router);
        memset(&p->control, 0, sizeof p->control);
        /* Built in locals: the fields are siblings in *x, and GCC's
         * -Wrestrict cannot tell that they do not overlap. */
        char name[sizeof p->name], dir[sizeof p->dir];
        memcpy(name, p->name, sizeof name);
        snprintf(dir, sizeof dir, "%s/%s", rdir, name);
        memcpy(p->dir, dir, sizeof dir);
        snprintf(p->registry, sizeof p->registry, "%s/registry", dir);
        snprintf(p->store, sizeof p->store, "%s/store.db", dir);
        snprintf(p->feedback, sizeof p->feedback, "%s/feedback.jsonl", dir);
        snprintf(p->config, sizeof p->config, "%s/driftpilot.toml", dir);
        snprintf(p->requests, sizeof p->requests, "%s/requests.csv", dir);
        snprintf(p->run_id, sizeof p->run_id, "%s-r%d", name, repeat);
        if ((s = dp_mkdirs(p->dir, err))) return s;
        for (int k = 0; k < x->dc->n_targets; k++) {
            char wd[EXP_PATH_MAX + 80];
            snprintf(wd, sizeof wd, "%s/%s", p->dir, x->dc->targets[k].name);
            if ((s = dp_mkdirs(wd, err))) return s;
        }
        if ((s = pipe_policy(x, p, err))) return s;
        if ((s = init_registry(x, p, err))) return s;
    }
    memset(&x->loadgen, 0, sizeof x->loadgen);
    memset(&x->prometheus, 0, sizeof x->prometheus);
    dp_info("experiment: repeat %d/%d: starting %d service(s), %d router(s), %d controller(s)",
            repeat, x->set.repeats, x->n_pipes * x->dc->n_targets, x->n_pipes, x->n_pipes);
    for (int i = 0; i < x->n_pipes && !s; i++) s = start_serves(x, &x->pipes[i], err);
    for (int i = 0; i < x->n_pipes && !s; i++)
        for (int k = 0; k < x->dc->n_targets && !s; k++) {
            char pf[EXP_PATH_MAX + 64];
            snprintf(pf, sizeof pf, "%s/serve-%s.port", x->pipes[i].dir, x->dc->targets[k].name);
            s = wait_healthy(x, &x->pipes[i].serve[k], pf, &x->pipes[i].ports[k], err);
        }
    for (int i = 0; i < x->n_pipes && !s; i++) s = start_router(x, &x->pipes[i], err);
    for (int i = 0; i < x->n_pipes && !s; i++) {
        char pf[EXP_PATH_MAX + 64];
        snprintf(pf, sizeof pf, "%s/router.port", x->pipes[i].dir);
        s = wait_healthy(x, &x->pipes[i].router, pf, &x->pipes[i].router_port, err);
    }
    if (!s && x->set.prometheus) start_prometheus(x, rdir);
    for (int i = 0; i < x->n_pipes && !s; i++) s = write_control_config(x, &x->pipes[i], err);
    for (int i = 0; i < x->n_pipes && !s; i++) s = start_control(x, &x->pipes[i], err);
    for (int i = 0; i < x->n_pipes && !s; i++) s = wait_control(x, &x->pipes[i], err);
    if (!s) {
        dp_info("experiment: repeat %d/%d: all healthy; load %g req/s for %g scenario s (%g s wall at %gx), scenario %s",
                repeat, x->set.repeats, x->set.rate, x->set.duration_s,
                x->set.duration_s / x->set.scale, x->set.scale, x->set.scenario);
        s = start_loadgen(x, rdir, repeat, csv, sizeof csv, err);
    }
    if (!s) {
        double wall = x->set.duration_s / x->set.scale;
        DpProgress pr;
        char label[64];
        snprintf(label, sizeof label, "experiment r%d/%d", repeat, x->set.repeats);
        dp_progress_init(&pr, label, wall, "s");
        double o_start, o_len;
        scenario_outage(&x->set, &o_start, &o_len);
        int outage = 0; /* 0 before, 1 during (target 0 down), 2 after */
        double t0 = dp_time_mono();
        while (exp_child_alive(&x->loadgen) && dp_time_mono() - t0 < wall) {
            if (exp_stop_requested) {
                s = dp_fail(err, DP_ERR_STATE, "interrupted");
                break;
            }
            double at = (dp_time_mono() - t0) * x->set.scale; /* scenario seconds */
            if (o_len > 0 && outage == 0 && at >= o_start) {
                for (int i = 0; i < x->n_pipes; i++) {
                    ExpChild *c = &x->pipes[i].serve[0];
                    if (exp_child_alive(c)) kill(c->pid, SIGKILL);
                    while (exp_child_alive(c)) dp_sleep(0.01);
                }
                dp_info("experiment: outage: %s down in every pipeline (scenario %.0f min, for %.0f min)",
                        x->dc->targets[0].name, at / 60, o_len / 60);
                outage = 1;
            } else if (outage == 1 && at >= o_start + o_len) {
                for (int i = 0; i < x->n_pipes && !s; i++)
                    s = start_serve(x, &x->pipes[i], 0, x->pipes[i].ports[0], err);
                if (s) break;
                dp_info("experiment: outage over: %s started again (scenario %.0f min)",
                        x->dc->targets[0].name, at / 60);
                outage = 2;
            }
            for (int i = 0; i < x->n_pipes && !s; i++) {
                Pipe *p = &x->pipes[i];
                for (int k = 0; k < x->dc->n_targets && !s; k++)
                    if (!(outage == 1 && k == 0) && !exp_child_alive(&p->serve[k]))
                        s = child_failed(&p->serve[k], "died", err);
                if (!s && !exp_child_alive(&p->router)) s = child_failed(&p->router, "died", err);
                if (!s && !exp_child_alive(&p->control)) s = child_failed(&p->control, "died", err);
            }
            if (s) break;
            char extra[64];
            snprintf(extra, sizeof extra, "scenario %.0f min",
                     (dp_time_mono() - t0) * x->set.scale / 60);
            dp_progress_update(&pr, fmin(dp_time_mono() - t0, wall), extra);
            dp_sleep(0.2);
        }
        if (!s) {
            dp_progress_finish(&pr, NULL);
            /* The scenario is over: no decision after its end, then the load
             * generator's last requests (it ends its arrivals on its own). */
            stop_controllers(x);
            double deadline = dp_time_mono() + 120;
            while (exp_child_alive(&x->loadgen) && dp_time_mono() < deadline &&
                   !exp_stop_requested)
                dp_sleep(0.1);
            if (exp_stop_requested) s = dp_fail(err, DP_ERR_STATE, "interrupted");
            else if (exp_child_alive(&x->loadgen))
                s = child_failed(&x->loadgen, "did not finish within 120 s of the scenario's end", err);
            else if (!WIFEXITED(x->loadgen.status) || WEXITSTATUS(x->loadgen.status) != 0)
                s = child_failed(&x->loadgen, "failed", err);
        }
    }
    dp_info("experiment: repeat %d/%d: stopping everything", repeat, x->set.repeats);
    stop_repeat(x);
    if (!s) s = split_requests(x, csv, err);
    return s;
}

// ---- simulator prediction and report ----

static DpStatus run_simulator(Exp *x, char *json, size_t jcap, char *dec, size_t dcap,
                              DpError *err) {
    char cfg[EXP_PATH_MAX + 32], log[EXP_PATH_MAX + 32], seeds[16];
    snprintf(cfg, sizeof cfg, "%s/sim_config.json", x->out);
    snprintf(json, jcap, "%s/sim_prediction.json", x->out);
    snprintf(dec, dcap, "%s/sim_decisions.csv", x->out);
    snprintf(log, sizeof log, "%s/simulate.log", x->out);
    snprintf(seeds, sizeof seeds, "%d", x->set.sim_seeds);
    /* The study's simulator, or the one given (a calibration from an earlier
     * run), over this experiment's length and interval. */
    SimConfig sc;
    sim_config_default(&sc);
    DpStatus s = DP_OK;
    if (x->set.sim_config[0] && (s = sim_config_load(&sc, x->set.sim_config, err)))
        return dp_error_wrap(err, "experiment.sim_config");
    sc.duration_s = x->set.duration_s;
    sc.interval_s = x->dc->control.decision_interval_s;
    sim_action_set_parse(x->set.actions, &sc.action_set, NULL); /* checked at load */
    if ((s = sim_config_validate(&sc, err))) return dp_error_wrap(err, "simulator config");
    if ((s = sim_config_save(&sc, cfg, err))) return s;
    char *argv[32];
    char specs[MAX_PIPES][EXP_PATH_MAX + 8];
    int a = 0;
    const char *head[] = {"driftpilot", "simulate", "--json", "--config", cfg, "--scenario",
                          x->set.scenario, "--seeds", seeds, "--decisions", dec, NULL};
    for (int i = 0; head[i]; i++) argv[a++] = (char *)head[i];
    for (int i = 0; i < x->n_pipes; i++) {
        snprintf(specs[i], sizeof specs[i], "%s", x->pipes[i].policy);
        argv[a++] = "--policy";
        argv[a++] = specs[i];
    }
    argv[a] = NULL;
    ExpChild c;
    if ((s = exp_child_start(&c, "simulate", x->exe, argv, log, json, err))) return s;
    note_pid(x, &c);
    return exp_child_wait(&c, 5, err);
}

/* Fits the simulator to this run (retrain durations, coverage, latency per
 * target) and writes sim_calibrated.json beside the results, so the next
 * run's prediction can use it (experiment.sim_config).  Only a warning when
 * it cannot: the live results are already written. */
static void calibrate_from_run(Exp *x) {
    char cfg[EXP_PATH_MAX + 32], out[EXP_PATH_MAX + 32];
    snprintf(cfg, sizeof cfg, "%s/sim_config.json", x->out);
    snprintf(out, sizeof out, "%s/sim_calibrated.json", x->out);
    SimConfig sc;
    sim_config_default(&sc);
    SimCalibration cal;
    DpError err = {0};
    if ((dp_file_exists(cfg) && sim_config_load(&sc, cfg, &err)) ||
        sim_calibrate_experiment(&sc, x->out, x->set.scale, &cal, &err) ||
        sim_config_save(&sc, out, &err)) {
        dp_warn("experiment: simulator not calibrated from this run: %s", err.msg);
        return;
    }
    dp_info("experiment: simulator calibrated from this run (%d jobs, %d latency points): %s "
            "(experiment.sim_config = \"%s\" predicts the next run with it)",
            cal.n_jobs, cal.n_latency_points, out, out);
}

static DpStatus write_report(Exp *x, const char *sim_json, const char *sim_dec, DpError *err) {
    static ReportRun runs[MAX_PIPES * MAX_REPEATS];
    static char stores[MAX_PIPES * MAX_REPEATS][EXP_PATH_MAX + 64];
    static char ids[MAX_PIPES * MAX_REPEATS][64], reqs[MAX_PIPES * MAX_REPEATS][EXP_PATH_MAX + 64];
    int n = 0;
    for (int r = 1; r <= x->set.repeats; r++)
        for (int i = 0; i < x->n_pipes; i++) {
            snprintf(stores[n], sizeof stores[n], "%s/work/r%d/%s/store.db", x->out, r,
                     x->pipes[i].name);
            snprintf(reqs[n], sizeof reqs[n], "%s/work/r%d/%s/requests.csv", x->out, r,
                     x->pipes[i].name);
            snprintf(ids[n], sizeof ids[n], "%s-r%d", x->pipes[i].name, r);
            runs[n] = (ReportRun){.pipeline = x->pipes[i].name, .store_path = stores[n],
                                  .run_id = ids[n], .requests_csv = reqs[n], .scale = x->set.scale};
            n++;
        }
    char title[256];
    snprintf(title, sizeof title, "driftpilot experiment: %.3g h of scenario at %gx, %g req/s, %d repeat%s",
             x->set.duration_s / 3600, x->set.scale, x->set.rate, x->set.repeats,
             x->set.repeats == 1 ? "" : "s");
    ReportInputs in;
    report_inputs_default(&in);
    in.title = title;
    in.scenario = x->set.scenario;
    in.runs = runs;
    in.n_runs = n;
    in.scale = x->set.scale;
    in.interval_s = x->dc->control.decision_interval_s;
    in.sim_prediction_json = sim_json && sim_json[0] ? sim_json : NULL;
    in.sim_decisions_csv = sim_dec && sim_dec[0] ? sim_dec : NULL;
    char source[EXP_PATH_MAX + 64];
    if (x->set.sim_config[0]) snprintf(source, sizeof source, "config %s (experiment.sim_config)", x->set.sim_config);
    else snprintf(source, sizeof source, "the study's defaults (uncalibrated)");
    in.sim_source = source;
    ReportTable *t = NULL;
    DpStatus s = report_compute(&in, &t, err);
    if (!s) s = report_write_table(x->out, &in, t, err);
    if (!s) {
        DpBuf md = DP_BUF_INIT;
        if (!report_table_markdown(t, &in, &md) && md.data) fputs(md.data, stdout);
        dp_buf_free(&md);
        printf("\nreport: %s/report.html\n", x->out);
        fflush(stdout);
    }
    report_table_free(t);
    return s;
}

// ---- the command ----

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot experiment [--config FILE] [--scenario NAME] [--duration DUR]\n"
            "                             [--scale X] [--repeats N] [--rate R]\n"
            "                             [--pipelines adaptive,static-15m[,threshold,drift]]\n"
            "                             [--out DIR] [--model DIR] [--policy FILE]\n\n"
            "Runs the adaptive pipeline (PPO) and the baselines side by side, live, on the same\n"
            "scenario and the same traffic: per pipeline and target a `driftpilot serve`, per\n"
            "pipeline a `driftpilot router` and a `driftpilot control` (its own registry, store\n"
            "and labelled feedback log), and one `driftpilot loadgen` that splits the load\n"
            "equally over the pipelines' routers.  Scenario time runs --scale times faster than\n"
            "the wall clock.  Everything is stopped at the end, on an error, and on Ctrl-C\n"
            "(SIGTERM, then SIGKILL after a grace period).  Then it writes the results\n"
            "directory (results.md, results.json, CSVs, report.html) with the simulator's\n"
            "prediction for the same scenario beside the live result, prints the table and\n"
            "the report's path.  Progress goes to stderr.\n\n"
            "Without --model it is the main job: the built-in model is pretrained (and the PPO\n"
            "policy trained on the simulator) on first use and cached in $DRIFTPILOT_HOME, else\n"
            "$XDG_CACHE_HOME/driftpilot, else ~/.cache/driftpilot (else ./.driftpilot), keyed\n"
            "on the pretrain / train-policy arguments; later runs reuse them.\n\n"
            "  --config FILE      experiment config: an [experiment] table plus the targets,\n"
            "                     [reward], [control] and [router] of a driftpilot TOML\n"
            "                     (default: %s when present, else built-in)\n"
            "  --scenario NAME    steady | spike | gradual | sudden | recurring | outage\n"
            "                     (gradual; outage: the first target's services are killed\n"
            "                     for a quarter of the run from 37.5%% of it, then restarted)\n"
            "  --duration DUR     scenario time per repeat (4h)\n"
            "  --scale X          scenario seconds per wall second (60)\n"
            "  --repeats N        repeats, each a fresh start of every pipeline (1)\n"
            "  --rate R           total requests/s, split equally over the pipelines (40)\n"
            "  --pipelines LIST   adaptive, static-15m, threshold, drift (adaptive,static-15m)\n"
            "  --out DIR          results directory (default out/experiment-<UTC time>)\n"
            "  --model DIR        base model (a Hugging Face GPT-2 directory) instead of the\n"
            "                     cached built-in one\n"
            "  --policy FILE      PPO policy file for the adaptive pipeline instead of the\n"
            "                     cached one\n"
            "  --seed S           seed of the traffic sample (1)\n"
            "  --prometheus       also run Prometheus (when installed) scraping every service\n"
            "                     and router, its data under DIR/work/rN/prometheus\n"
            "  --prepare          only make sure the model and policy are cached, print their\n"
            "                     paths and exit (no live run)\n\n"
            "Exit status: 0 done, 1 failure (the message names the child and its log), 2 bad\n"
            "usage, 130 interrupted.\n",
            DEFAULT_CONFIG);
}

int cmd_experiment(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    enum { O_CONFIG = 1, O_SCEN, O_DUR, O_SCALE, O_REP, O_RATE, O_PIPES, O_OUT, O_MODEL,
           O_POLICY, O_SEED, O_PREPARE, O_PROM };
    static const struct option opts[] = {
        {"config", required_argument, 0, O_CONFIG}, {"scenario", required_argument, 0, O_SCEN},
        {"duration", required_argument, 0, O_DUR},  {"scale", required_argument, 0, O_SCALE},
        {"repeats", required_argument, 0, O_REP},   {"rate", required_argument, 0, O_RATE},
        {"pipelines", required_argument, 0, O_PIPES}, {"out", required_argument, 0, O_OUT},
        {"model", required_argument, 0, O_MODEL},   {"policy", required_argument, 0, O_POLICY},
        {"seed", required_argument, 0, O_SEED},     {"prepare", no_argument, 0, O_PREPARE},
        {"prometheus", no_argument, 0, O_PROM},
        {0, 0, 0, 0}};
    const char *config = NULL, *scen = NULL, *pipes = NULL, *out = NULL, *model = NULL,
               *policy = NULL;
    double dur = -1, scale = -1, rate = -1;
    long long reps = -1, seed = -1;
    int prepare = 0, prom = 0;
    DpError err = {0};
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_CONFIG: config = optarg; break;
        case O_SCEN: scen = optarg; break;
        case O_DUR:
            if (dp_parse_duration(optarg, &dur, &err) || !(dur > 0))
                return cli_usage_error(CMD, "--duration: bad duration '%s'", optarg);
            break;
        case O_SCALE:
            if (!cli_parse_double(CMD, "--scale", optarg, 1e-3, 1e6, &scale)) return 2;
            break;
        case O_REP:
            if (!cli_parse_int(CMD, "--repeats", optarg, 1, MAX_REPEATS, &reps)) return 2;
            break;
        case O_RATE:
            if (!cli_parse_double(CMD, "--rate", optarg, 0.1, 100000, &rate)) return 2;
            break;
        case O_PIPES: pipes = optarg; break;
        case O_PREPARE: prepare = 1; break;
        case O_PROM: prom = 1; break;
        case O_OUT: out = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_POLICY: policy = optarg; break;
        case O_SEED:
            if (!cli_parse_int(CMD, "--seed", optarg, 0, 1000000000, &seed)) return 2;
            break;
        default: return cli_usage_error(CMD, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);

    Exp *x = dp_calloc(1, sizeof *x);
    if (!x) return cli_fail(CMD, "out of memory");
    x->dc = dp_calloc(1, sizeof *x->dc);
    if (!x->dc) {
        free(x);
        return cli_fail(CMD, "out of memory");
    }
    int rc = 1;
    settings_default(&x->set);
    if (!config && dp_file_exists(DEFAULT_CONFIG)) config = DEFAULT_CONFIG;
    if (load_config(config, &x->set, x->dc, &err)) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    if (scen) snprintf(x->set.scenario, sizeof x->set.scenario, "%s", scen);
    if (dur > 0) x->set.duration_s = dur;
    if (scale > 0) x->set.scale = scale;
    if (reps > 0) x->set.repeats = (int)reps;
    if (rate > 0) x->set.rate = rate;
    if (seed >= 0) x->set.seed = seed;
    if (prom) x->set.prometheus = 1;
    if (pipes) snprintf(x->set.pipelines, sizeof x->set.pipelines, "%s", pipes);
    if (parse_pipelines(x, &err)) {
        rc = cli_usage_error(CMD, "%s", err.msg);
        goto done;
    }
    {
        char d[128], l[128];
        if (scenario_live(&x->set, d, sizeof d, l, sizeof l, &err)) {
            rc = cli_usage_error(CMD, "%s", err.msg);
            goto done;
        }
        SimConfig sc;
        sim_config_default(&sc);
        if (sim_scenario_apply(&sc, x->set.scenario, &err)) {
            rc = cli_usage_error(CMD, "%s", err.msg);
            goto done;
        }
    }
    if (x->set.duration_s < x->dc->control.decision_interval_s) {
        rc = cli_usage_error(CMD, "--duration is shorter than one decision interval (%g s)",
                             x->dc->control.decision_interval_s);
        goto done;
    }
    if (model && !dp_file_exists(model)) {
        rc = cli_usage_error(CMD, "--model: no such directory %s", model);
        goto done;
    }
    if (policy && !dp_file_exists(policy)) {
        rc = cli_usage_error(CMD, "--policy: no such file %s", policy);
        goto done;
    }
    if (exp_self_path(x->exe, sizeof x->exe, &err)) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    exp_signals_install();

    /* Results directory (not for --prepare). */
    if (!prepare) {
        if (out) snprintf(x->out, sizeof x->out, "%s", out);
        else {
            time_t now = time(NULL);
            struct tm tm;
            gmtime_r(&now, &tm);
            char stamp[32];
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
            snprintf(x->out, sizeof x->out, "out/experiment-%s", stamp);
        }
        if (x->out[0] != '/') {
            char cwd[EXP_PATH_MAX / 2], rel[EXP_PATH_MAX];
            if (!getcwd(cwd, sizeof cwd)) {
                rc = cli_fail(CMD, "getcwd: %s", strerror(errno));
                goto done;
            }
            snprintf(rel, sizeof rel, "%s", x->out);
            snprintf(x->out, sizeof x->out, "%s/%s", cwd, rel);
        }
        if (dp_mkdirs(x->out, &err)) {
            rc = cli_fail(CMD, "%s", err.msg);
            goto done;
        }
        {
            char pids[EXP_PATH_MAX + 16];
            snprintf(pids, sizeof pids, "%s/pids.txt", x->out);
            x->pids = fopen(pids, "w");
        }
        dp_info("experiment: results in %s", x->out);
    }

    /* Model and policy: given, or the cache (the main job). */
    if (model) {
        if (!realpath(model, x->model)) snprintf(x->model, sizeof x->model, "%s", model);
    } else if (exp_cache_model(x->exe, x->set.pretrain_args, x->model, sizeof x->model, &err)) {
        rc = exp_stop_requested ? 130 : cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    if (has_pipe(x, "adaptive")) {
        if (policy) {
            if (!realpath(policy, x->policy)) snprintf(x->policy, sizeof x->policy, "%s", policy);
        } else {
            /* the policy must act in the controllers' action set */
            char args[sizeof x->set.policy_args + 32];
            snprintf(args, sizeof args, "%s%s", x->set.policy_args,
                     strcmp(x->set.actions, "pairs") ? "" : " --actions pairs");
            if (exp_cache_policy(x->exe, args, x->policy, sizeof x->policy, &err)) {
                rc = exp_stop_requested ? 130 : cli_fail(CMD, "%s", err.msg);
                goto done;
            }
        }
    }
    {
        int found = 0;
        qa_world_config_default(&x->world);
        if (train_world_load(x->model, &x->world, &found, &err)) {
            rc = cli_fail(CMD, "%s", err.msg);
            goto done;
        }
        x->have_world = found;
        if (!found)
            dp_warn("experiment: %s has no driftpilot_world.json: traffic uses the default world",
                    x->model);
    }
    if (prepare) {
        printf("model: %s\n", x->model);
        if (x->policy[0]) printf("policy: %s\n", x->policy);
        rc = 0;
        goto done;
    }
    for (int i = 0; i < x->n_pipes; i++)
        if (pipe_policy(x, &x->pipes[i], &err)) {
            rc = cli_fail(CMD, "%s", err.msg);
            goto done;
        }
    {
        /* One admin token for every service and router of the run. */
        snprintf(x->token_file, sizeof x->token_file, "%s/admin.token", x->out);
        DpRng rng;
        dp_rng_seed(&rng, (uint64_t)(dp_time_wall() * 1e6) ^ ((uint64_t)getpid() << 32));
        char tok[40];
        snprintf(tok, sizeof tok, "%016llx%016llx\n", (unsigned long long)dp_rng_u64(&rng),
                 (unsigned long long)dp_rng_u64(&rng));
        if (dp_write_file_atomic(x->token_file, tok, strlen(tok), &err)) {
            rc = cli_fail(CMD, "%s", err.msg);
            goto done;
        }
    }

    /* The simulator's prediction first: it takes seconds and a failure here
     * should not cost a live run. */
    char sim_json[EXP_PATH_MAX + 32] = "", sim_dec[EXP_PATH_MAX + 32] = "";
    dp_info("experiment: simulator prediction for scenario %s (%d seeds)", x->set.scenario,
            x->set.sim_seeds);
    if (run_simulator(x, sim_json, sizeof sim_json, sim_dec, sizeof sim_dec, &err)) {
        if (exp_stop_requested) {
            rc = 130;
            goto done;
        }
        dp_warn("experiment: no simulator prediction: %s", err.msg);
        sim_json[0] = sim_dec[0] = 0;
    }

    for (int r = 1; r <= x->set.repeats; r++) {
        if (run_repeat(x, r, &err)) {
            if (exp_stop_requested) {
                fprintf(stderr, "driftpilot experiment: interrupted; every child stopped\n");
                rc = 130;
            } else {
                rc = cli_fail(CMD, "repeat %d: %s", r, err.msg);
            }
            goto done;
        }
    }
    dp_info("experiment: writing the report");
    if (write_report(x, sim_json, sim_dec, &err)) {
        rc = cli_fail(CMD, "report: %s", err.msg);
        goto done;
    }
    calibrate_from_run(x);
    rc = 0;
done:
    exp_sweep_orphans(5);
    if (x->pids) fclose(x->pids);
    free(x->dc);
    free(x);
    return rc;
}
