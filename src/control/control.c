/* The controller's loop: one decision per interval (read, watch, decide,
 * execute, record), the retrain job thread (run, account, publish, promote,
 * reload, switch), rollback of a redeploy whose live quality fell, and the
 * controller's own /metrics.
 *
 * Invariants: at most one retrain job runs at a time (the deployment is the
 * one model behind the router), so "never two retrains of the same
 * deployment" holds by construction; the job thread only changes the serving
 * state after the new version is promoted AND the service confirmed the
 * reload, so a failed or killed job, a refused gate or a refused reload all
 * leave the serving version as it was. */
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control_impl.h"

// ---- config ----

void control_config_init(ControlConfig *cc, const DeployConfig *deploy) {
    memset(cc, 0, sizeof *cc);
    cc->deploy = *deploy;
    RouterConfig rc;
    DpError e = {0};
    if (router_config_from_deploy(deploy, &rc, &e) == DP_OK && rc.admin_token[0])
        snprintf(cc->admin_token, sizeof cc->admin_token, "%s", rc.admin_token);
    const char *env = getenv("DRIFTPILOT_ADMIN_TOKEN");
    if (!cc->admin_token[0] && env) snprintf(cc->admin_token, sizeof cc->admin_token, "%s", env);
    if (deploy->router.listen[0])
        snprintf(cc->router_url, sizeof cc->router_url, "http://%s", deploy->router.listen);
    double scale = deploy->control.time_scale > 0 ? deploy->control.time_scale : 1;
    double wall_interval = deploy->control.decision_interval_s / scale;
    cc->rate_window_s = wall_interval > 4 ? wall_interval : 4;
    cc->stale_intervals = 2;
    cc->rollback_min_labels = 20;
    cc->http_timeout_s = deploy->metrics.scrape_timeout_s > 0 ? deploy->metrics.scrape_timeout_s : 5;
    cc->cost_mode = CONTROL_COST_AUTO;
    cc->profile = SIM_PROFILE_PAPER;
}

static double wall_interval(const Control *c) {
    return c->cc.deploy.control.decision_interval_s / c->cc.deploy.control.time_scale;
}

// ---- small helpers ----

static void add_event(Control *c, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_event(Control *c, const char *kind, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dp_info("control: %s: %s", kind, msg);
    StoreEvent ev = {.ts = dp_time_wall(), .run_id = c->cc.run_id, .kind = kind, .message = msg};
    DpError e = {0};
    if (store_add_event(c->store, &ev, &e)) dp_warn("control: store: %s", e.msg);
}

/* POST json with the admin token; DP_OK only for a 2xx answer. */
static DpStatus admin_post(const Control *c, const char *url, const char *json, DpError *err) {
    char hdr[400];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nContent-Type: application/json\r\n",
             c->cc.admin_token);
    char *body = NULL;
    int status = 0;
    DpStatus st = metrics_http_request("POST", url, hdr, json, strlen(json), c->cc.http_timeout_s,
                                       &body, NULL, &status, err);
    if (st == DP_OK && (status < 200 || status > 299)) {
        st = dp_fail(err, DP_ERR_STATE, "POST %s: HTTP %d %.200s", url, status, body ? body : "");
    }
    free(body);
    return st;
}

static DpStatus reload_service(const Control *c, int k, const char *version, DpError *err) {
    char url[DEPLOY_STR_MAX + 32], json[64];
    snprintf(url, sizeof url, "%s/admin/reload", c->cc.deploy.targets[k].service_url);
    snprintf(json, sizeof json, "{\"version\":\"%s\"}", version);
    return admin_post(c, url, json, err);
}

static DpStatus route_to(const Control *c, int k, DpError *err) {
    if (!c->cc.router_url[0]) return dp_fail(err, DP_ERR_STATE, "no router configured");
    char url[DEPLOY_STR_MAX + 32], json[128];
    snprintf(url, sizeof url, "%s/admin/route", c->cc.router_url);
    snprintf(json, sizeof json, "{\"target\":\"%s\"}", c->cc.deploy.targets[k].name);
    return admin_post(c, url, json, err);
}

/* The newest version id in the registry ("" when empty). */
static DpStatus newest_version(const char *dir, char out[REGISTRY_ID_MAX], DpError *err) {
    Registry *reg = NULL;
    RegistryMeta *v = NULL;
    size_t n = 0;
    out[0] = 0;
    DpStatus st = registry_open(dir, &reg, err);
    if (!st) st = registry_list(reg, &v, &n, err);
    for (size_t i = 0; !st && i < n; i++)
        if (strcmp(v[i].version, out) > 0) snprintf(out, REGISTRY_ID_MAX, "%s", v[i].version);
    registry_list_free(v, n);
    registry_close(reg);
    return st;
}

static DpStatus current_version(const char *dir, const char *target, char out[REGISTRY_ID_MAX],
                                DpError *err) {
    Registry *reg = NULL;
    DpStatus st = registry_open(dir, &reg, err);
    if (!st) st = registry_current(reg, target, out, err);
    registry_close(reg);
    return st;
}

static double job_cost(const Control *c, int k, const DeployJobResult *res) {
    const DeployTarget *t = &c->cc.deploy.targets[k];
    ControlCostMode m = c->cc.cost_mode;
    if (m == CONTROL_COST_AUTO) m = t->retrain_cost > 0 ? CONTROL_COST_FLAT : CONTROL_COST_GPU_HOURS;
    if (m == CONTROL_COST_FLAT) return t->retrain_cost;
    int g = t->gpu_count > 0 ? t->gpu_count : 1;
    return res->duration_s / 3600.0 * t->price_per_gpu_hour * g;
}

// ---- the retrain job ----

#define MAX_ARGS 64

typedef struct {
    Control *c;
    int k;        /* where the job runs */
    int deploy_k; /* where its model serves */
    long seq;
    int64_t job_id;
    char from[REGISTRY_ID_MAX];
    char before_newest[REGISTRY_ID_MAX];
    char record[DEPLOY_PATH_MAX + 64];
    char log_dir[DEPLOY_PATH_MAX * 2];
    char name[DEPLOY_NAME_MAX + 32];
    char *argv_store[MAX_ARGS + 1];
    int argc;
} JobCtx;

static void job_ctx_free(JobCtx *j) {
    if (!j) return;
    for (int i = 0; i < j->argc; i++) free(j->argv_store[i]);
    free(j);
}

/* Replaces every {key} in tok by its value. */
static char *substitute(const char *tok, const char *const *kv, int n_kv) {
    DpBuf b = DP_BUF_INIT;
    for (const char *p = tok; *p;) {
        int hit = 0;
        for (int i = 0; i < n_kv; i += 2) {
            size_t l = strlen(kv[i]);
            if (!strncmp(p, kv[i], l)) {
                dp_buf_append(&b, kv[i + 1], strlen(kv[i + 1]));
                p += l;
                hit = 1;
                break;
            }
        }
        if (!hit) dp_buf_append(&b, p++, 1);
    }
    dp_buf_append(&b, "", 1);
    return b.data;
}

/* A local job runs in its target's workdir, so relative paths handed to it
 * must be made absolute against the controller's directory.  (Remote
 * targets get them as written: they must be valid there.) */
static void job_path(const Control *c, int k, const char *path, char *out, size_t cap) {
    char cwd[DEPLOY_PATH_MAX];
    if (path[0] && path[0] != '/' && c->cc.deploy.targets[k].executor == DEPLOY_EXEC_LOCAL &&
        getcwd(cwd, sizeof cwd))
        snprintf(out, cap, "%s/%s", cwd, path);
    else snprintf(out, cap, "%s", path);
}

static DpStatus build_argv(Control *c, JobCtx *j, DpError *err) {
    char tmpl[CONTROL_STR_MAX + DEPLOY_PATH_MAX];
    if (c->cc.retrain_command[0]) snprintf(tmpl, sizeof tmpl, "%s", c->cc.retrain_command);
    else
        snprintf(tmpl, sizeof tmpl,
                 "%s retrain --from {from} --data {data} --registry {registry} --record {record}",
                 c->cc.driftpilot_path[0] ? c->cc.driftpilot_path : "driftpilot");
    char jobs[32];
    snprintf(jobs, sizeof jobs, "%ld", j->seq);
    char data[DEPLOY_PATH_MAX * 2], reg[DEPLOY_PATH_MAX * 2], rec[DEPLOY_PATH_MAX * 2];
    job_path(c, j->k, c->cc.data_path, data, sizeof data);
    job_path(c, j->k, c->cc.deploy.control.registry_dir, reg, sizeof reg);
    job_path(c, j->k, j->record, rec, sizeof rec);
    const char *kv[] = {"{from}",   j->from,
                        "{data}",   data,
                        "{registry}", reg,
                        "{target}", c->cc.deploy.targets[j->k].name,
                        "{record}", rec,
                        "{job}",    jobs};
    char *save = NULL;
    for (char *t = strtok_r(tmpl, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (j->argc >= MAX_ARGS) return dp_fail(err, DP_ERR_INVAL, "retrain command: too many words");
        j->argv_store[j->argc] = substitute(t, kv, 12);
        if (!j->argv_store[j->argc]) return dp_fail(err, DP_ERR_NOMEM, "retrain command");
        j->argc++;
    }
    j->argv_store[j->argc] = NULL;
    if (j->argc == 0) return dp_fail(err, DP_ERR_INVAL, "retrain command is empty");
    return DP_OK;
}

static void job_done(Control *c) {
    pthread_mutex_lock(&c->mu);
    c->job_running = 0;
    pthread_mutex_unlock(&c->mu);
}

static void *job_main(void *arg) {
    JobCtx *j = arg;
    Control *c = j->c;
    const DeployTarget *t = &c->cc.deploy.targets[j->k];
    const char *reg_dir = c->cc.deploy.control.registry_dir;
    DpError e = {0};
    DeployRunSpec spec = {.name = j->name,
                          .argv = (const char *const *)j->argv_store,
                          .time_limit_s = c->cc.deploy.control.job_time_limit_s,
                          .log_dir = j->log_dir};
    DeployJobResult res;
    memset(&res, 0, sizeof res);
    if (deploy_executor_run_job(c->exec[j->k], &spec, &res, &e)) {
        res.status = DEPLOY_JOB_FAILED;
        res.duration_s = 0;
        snprintf(res.reason, sizeof res.reason, "%s", e.msg);
    }
    double fin = dp_time_wall();
    double cost = job_cost(c, j->k, &res);
    char *record = NULL;
    size_t rlen = 0;
    DpError e2 = {0};
    if (dp_file_exists(j->record) && dp_read_file(j->record, &record, &rlen, &e2)) record = NULL;
    if (record) { /* keep only valid JSON in the store */
        json_t *js = json_loadb(record, rlen, 0, NULL);
        if (!js) {
            free(record);
            record = NULL;
        }
        json_decref(js);
    }
    const char *sstr = deploy_job_status_str(res.status);
    if (store_finish_job(c->store, j->job_id, fin, sstr, res.duration_s, cost, record, &e2))
        dp_warn("control: store: %s", e2.msg);
    free(record);
    StoreCost sc = {.ts = fin, .run_id = c->cc.run_id, .target = t->name, .amount = cost,
                    .kind = "retrain"};
    if (store_add_cost(c->store, &sc, &e2)) dp_warn("control: store: %s", e2.msg);
    metric_inc(metrics_with(c->f_cost, t->name), cost);
    metric_observe(metrics_with(c->f_job_dur, t->name), res.duration_s);

    if (res.status != DEPLOY_JOB_OK) {
        metric_inc(metrics_with(c->f_fail, t->name, sstr), 1);
        add_event(c, "job_failed", "retrain job %ld on %s %s (%s) after %.2f s; serving %s unchanged",
                  j->seq, t->name, sstr, res.reason, res.duration_s, j->from);
        goto done;
    }
    char newest[REGISTRY_ID_MAX];
    if (newest_version(reg_dir, newest, &e) || strcmp(newest, j->before_newest) <= 0) {
        add_event(c, "no_version", "retrain job %ld on %s ended ok but published no version%s%s "
                  "(gate refused?); serving %s unchanged", j->seq, t->name, e.msg[0] ? ": " : "",
                  e.msg, j->from);
        goto done;
    }
    {
        /* the base may have been rolled back while the job ran: a child of
         * a version judged bad is not deployed */
        pthread_mutex_lock(&c->mu);
        int s_now = c->serving;
        pthread_mutex_unlock(&c->mu);
        char cur[REGISTRY_ID_MAX] = "";
        if (current_version(reg_dir, c->cc.deploy.targets[s_now].name, cur, &e2) == DP_OK &&
            strcmp(cur, j->from)) {
            add_event(c, "stale_base", "retrain job %ld built %s from %s, but %s now serves %s "
                      "(rolled back or replaced meanwhile); %s not deployed", j->seq, newest,
                      j->from, c->cc.deploy.targets[s_now].name, cur, newest);
            goto done;
        }
    }
    const DeployTarget *dt = &c->cc.deploy.targets[j->deploy_k];
    char prev_on_k[REGISTRY_ID_MAX] = "";
    if (current_version(reg_dir, dt->name, prev_on_k, &e2)) prev_on_k[0] = 0;
    Registry *reg = NULL;
    DpStatus st = registry_open(reg_dir, &reg, &e);
    if (!st) st = registry_promote(reg, newest, dt->name, &e);
    if (st) {
        registry_close(reg);
        add_event(c, "deploy_failed", "promote %s on %s: %s; serving %s unchanged", newest, dt->name,
                  e.msg, j->from);
        goto done;
    }
    if (reload_service(c, j->deploy_k, newest, &e)) {
        /* undo the promotion: the registry must say what is really served */
        if (registry_rollback(reg, dt->name, NULL, &e2) && prev_on_k[0]) dp_warn("control: %s", e2.msg);
        registry_close(reg);
        add_event(c, "deploy_failed", "reload %s on %s: %s; serving %s unchanged", newest, dt->name,
                  e.msg, j->from);
        goto done;
    }
    registry_close(reg);
    pthread_mutex_lock(&c->mu);
    int serving = c->serving;
    pthread_mutex_unlock(&c->mu);
    if (j->deploy_k != serving) {
        if (route_to(c, j->deploy_k, &e)) {
            add_event(c, "switch_failed", "%s now runs %s but the router was not switched: %s; "
                      "traffic stays on %s", dt->name, newest, e.msg,
                      c->cc.deploy.targets[serving].name);
            goto done;
        }
    }
    pthread_mutex_lock(&c->mu);
    c->serving = j->deploy_k;
    c->n_redeploys++;
    c->model_epoch++;
    c->watch.active = 1;
    c->watch.target = j->deploy_k;
    snprintf(c->watch.version, sizeof c->watch.version, "%s", newest);
    snprintf(c->watch.previous, sizeof c->watch.previous, "%s", j->from);
    c->watch.prev_quality = c->last_quality;
    c->watch.base_total = c->snap[j->deploy_k].fb_total;
    c->watch.base_window = c->snap[j->deploy_k].fb_window;
    c->watch.base_quality = c->snap[j->deploy_k].quality;
    c->watch.deployed_s = dp_clock_now(&c->clock);
    c->watch.until_s = c->watch.deployed_s + c->cc.deploy.control.rollback_window_s;
    c->watch_prev_serving = serving;
    pthread_mutex_unlock(&c->mu);
    metric_inc(c->m_redeploys, 1);
    if (strcmp(c->policy_kind, "static")) metric_inc(c->m_rl_redeploy, 1);
    for (int i = 0; i < c->n; i++)
        metric_set(metrics_with(c->f_serving, c->cc.deploy.targets[i].name), i == j->deploy_k);
    StoreDeployment d = {.ts = dp_time_wall(), .run_id = c->cc.run_id, .target = dt->name,
                         .version = newest, .previous_version = prev_on_k[0] ? prev_on_k : NULL,
                         .kind = "deploy"};
    if (store_add_deployment(c->store, &d, &e2)) dp_warn("control: store: %s", e2.msg);
    add_event(c, "deployed", "%s serves %s (trained on %s; was %s on %s)", dt->name, newest,
              t->name, j->from, c->cc.deploy.targets[serving].name);
done:
    job_done(c);
    job_ctx_free(j);
    return NULL;
}

/* Starts a retrain on target k whose model will serve on deploy_k, or says
 * why not (reason).  Returns 1 when started. */
static int start_retrain(Control *c, int k, int deploy_k, const SimObservation *obs, char *why,
                         size_t cap) {
    const DeployTarget *t = &c->cc.deploy.targets[k];
    pthread_mutex_lock(&c->mu);
    int busy = c->job_running;
    long running_seq = c->job_seq;
    int serving = c->serving;
    pthread_mutex_unlock(&c->mu);
    if (busy) {
        snprintf(why, cap, "a retrain of this deployment is already running (job %ld)", running_seq);
        return 0;
    }
    if (!c->t[k].up) {
        snprintf(why, cap, "target %s is down: %s", t->name, c->t[k].last_error);
        return 0;
    }
    if (deploy_k != k && !c->t[deploy_k].up) {
        snprintf(why, cap, "target %s, where the model would serve, is down: %s",
                 c->cc.deploy.targets[deploy_k].name, c->t[deploy_k].last_error);
        return 0;
    }
    if (strstr(c->cc.retrain_command[0] ? c->cc.retrain_command : "{data}", "{data}") &&
        !c->cc.data_path[0]) {
        snprintf(why, cap, "no labelled data configured (data_path)");
        return 0;
    }
    JobCtx *j = dp_calloc(1, sizeof *j);
    if (!j) {
        snprintf(why, cap, "out of memory");
        return 0;
    }
    DpError e = {0};
    const char *sname = c->cc.deploy.targets[serving].name;
    if (current_version(c->cc.deploy.control.registry_dir, sname, j->from, &e)) {
        snprintf(why, cap, "no current version for %s in the registry: %s", sname, e.msg);
        job_ctx_free(j);
        return 0;
    }
    if (newest_version(c->cc.deploy.control.registry_dir, j->before_newest, &e)) {
        snprintf(why, cap, "registry: %s", e.msg);
        job_ctx_free(j);
        return 0;
    }
    j->c = c;
    j->k = k;
    j->deploy_k = deploy_k;
    pthread_mutex_lock(&c->mu);
    j->seq = ++c->job_seq;
    pthread_mutex_unlock(&c->mu);
    snprintf(j->name, sizeof j->name, "retrain-%s-%ld", t->name, j->seq);
    snprintf(j->record, sizeof j->record, "%s/%s-%s.json", c->cc.jobs_dir, c->cc.run_id, j->name);
    job_path(c, k, c->cc.jobs_dir, j->log_dir, sizeof j->log_dir);
    if (build_argv(c, j, &e)) {
        snprintf(why, cap, "%s", e.msg);
        job_ctx_free(j);
        return 0;
    }
    double now = dp_time_wall();
    StoreJob sj = {.run_id = c->cc.run_id, .kind = "retrain", .target = t->name, .started = now,
                   .finished = NAN, .status = "running", .duration_s = NAN, .cost = 0};
    if (store_add_job(c->store, &sj, &j->job_id, &e)) {
        snprintf(why, cap, "store: %s", e.msg);
        job_ctx_free(j);
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    c->job_running = 1;
    c->job_thread_live = 1;
    c->last_retrain_s = obs->time_s;
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&c->job_thread, NULL, job_main, j)) {
        pthread_mutex_lock(&c->mu);
        c->job_running = 0;
        c->job_thread_live = 0;
        pthread_mutex_unlock(&c->mu);
        store_finish_job(c->store, j->job_id, dp_time_wall(), "failed", 0, 0, NULL, &e);
        snprintf(why, cap, "cannot start the job thread");
        job_ctx_free(j);
        return 0;
    }
    metric_inc(metrics_with(c->f_retrain, t->name, c->policy_kind), 1);
    if (!strcmp(c->policy_kind, "static")) metric_inc(c->m_static_retrain, 1);
    if (deploy_k != k)
        snprintf(why, cap, "job %ld started on %s from %s, to serve on %s", j->seq, t->name, j->from,
                 c->cc.deploy.targets[deploy_k].name);
    else snprintf(why, cap, "job %ld started on %s from %s", j->seq, t->name, j->from);
    return 1;
}

static void reap_job(Control *c) {
    pthread_mutex_lock(&c->mu);
    int join = c->job_thread_live && !c->job_running;
    if (join) c->job_thread_live = 0;
    pthread_mutex_unlock(&c->mu);
    if (join) pthread_join(c->job_thread, NULL);
}

int control_job_running(Control *c) {
    pthread_mutex_lock(&c->mu);
    int r = c->job_running;
    pthread_mutex_unlock(&c->mu);
    return r;
}

int control_wait_idle(Control *c, double timeout_s) {
    double t_end = dp_time_mono() + timeout_s;
    while (control_job_running(c)) {
        if (dp_time_mono() > t_end) return 0;
        dp_sleep(0.01);
    }
    reap_job(c);
    return 1;
}

int control_serving(Control *c) {
    pthread_mutex_lock(&c->mu);
    int s = c->serving;
    pthread_mutex_unlock(&c->mu);
    return s;
}

// ---- rollback ----

/* Called each step with the fresh observation of the serving target. */
static void check_watch(Control *c, const SimObservation *obs, ControlStepInfo *info) {
    pthread_mutex_lock(&c->mu);
    CtlWatch w = c->watch;
    int serving = c->serving, prev_serving = c->watch_prev_serving;
    pthread_mutex_unlock(&c->mu);
    if (!w.active) return;
    const char *tn = c->cc.deploy.targets[w.target].name;
    if (serving != w.target) { /* traffic moved away (failover): nothing to watch */
        pthread_mutex_lock(&c->mu);
        c->watch.active = 0;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    double interval = c->cc.deploy.control.decision_interval_s;
    double margin = c->cc.deploy.control.rollback_margin;
    double q = control_quality_(c, obs);
    /* The service's scores are a rolling window that still holds labels the
     * old version earned.  When it exposes its label counter, estimate the
     * new version's quality from the labels that arrived since the deploy:
     * the window now holds n fresh labels and (at most) `old` of the labels
     * it held then, whose mean was base_quality. */
    const CtlTarget *ct = &c->t[w.target];
    double n = 0;
    int counted = isfinite(ct->fb_total) && isfinite(ct->fb_window) && isfinite(w.base_total) &&
                  isfinite(w.base_window) && isfinite(w.base_quality);
    if (counted) {
        n = ct->fb_total - w.base_total;
        if (n < c->cc.rollback_min_labels) {
            if (obs->time_s > w.until_s) {
                pthread_mutex_lock(&c->mu);
                c->watch.active = 0;
                pthread_mutex_unlock(&c->mu);
                add_event(c, "kept", "%s on %s kept: only %.0f fresh labels in the window (need %d)",
                          w.version, tn, n, c->cc.rollback_min_labels);
            }
            return;
        }
        double old = w.base_window < ct->fb_window - n ? w.base_window : ct->fb_window - n;
        if (old < 0) old = 0;
        q = (ct->fb_window * q - old * w.base_quality) / n;
        q = q < 0 ? 0 : q > 1 ? 1 : q;
    } else if (obs->time_s < w.deployed_s + 0.999 * interval) {
        return; /* no label counter: give fresh labels one interval */
    }
    if (!(q < w.prev_quality - margin)) {
        if (obs->time_s > w.until_s) {
            pthread_mutex_lock(&c->mu);
            c->watch.active = 0;
            pthread_mutex_unlock(&c->mu);
            add_event(c, "kept", "%s on %s kept: quality %.3f vs %.3f before (margin %.3f)", w.version,
                      tn, q, w.prev_quality, margin);
        }
        return;
    }
    /* roll back: the registry first (what should run), then the service */
    DpError e = {0}, e2 = {0};
    Registry *reg = NULL;
    char back[REGISTRY_ID_MAX] = "";
    DpStatus st = registry_open(c->cc.deploy.control.registry_dir, &reg, &e);
    if (!st) st = registry_rollback(reg, tn, back, &e);
    registry_close(reg);
    int ok = 0;
    if (prev_serving != w.target) {
        /* the old version still runs where traffic came from: switch back */
        if (!route_to(c, prev_serving, &e2)) {
            ok = 1;
            snprintf(back, sizeof back, "%s", w.previous);
            pthread_mutex_lock(&c->mu);
            c->serving = prev_serving;
            pthread_mutex_unlock(&c->mu);
        } else snprintf(e.msg, sizeof e.msg, "%s", e2.msg);
        if (!st && ok) reload_service(c, w.target, back, &e2); /* best effort */
    } else if (!st) {
        if (!reload_service(c, w.target, back, &e)) ok = 1;
    }
    pthread_mutex_lock(&c->mu);
    c->watch.active = 0;
    if (ok) c->model_epoch++;
    pthread_mutex_unlock(&c->mu);
    if (!ok) {
        add_event(c, "rollback_failed", "%s on %s: quality %.3f < %.3f - %.3f but rollback failed: %s",
                  w.version, tn, q, w.prev_quality, margin, e.msg);
        return;
    }
    info->rolled_back = 1;
    metric_inc(metrics_with(c->f_rollback, tn), 1);
    const char *where = c->cc.deploy.targets[prev_serving != w.target ? prev_serving : w.target].name;
    StoreDeployment d = {.ts = dp_time_wall(), .run_id = c->cc.run_id, .target = where,
                         .version = back, .previous_version = w.version, .kind = "rollback"};
    if (store_add_deployment(c->store, &d, &e2)) dp_warn("control: store: %s", e2.msg);
    add_event(c, "rollback", "%s on %s: live quality %.3f%s fell below %.3f - margin %.3f within %.0f s; "
              "back to %s on %s", w.version, tn, q, counted ? " (from the fresh labels)" : "",
              w.prev_quality, margin, obs->time_s - w.deployed_s, back, where);
}

// ---- one decision ----

static void read_router_active(Control *c) {
    if (!c->cc.router_url[0]) return;
    char url[DEPLOY_STR_MAX + 16];
    snprintf(url, sizeof url, "%s/healthz", c->cc.router_url);
    char *body = NULL;
    int status = 0;
    DpError e = {0};
    if (metrics_http_get(url, c->cc.http_timeout_s, &body, NULL, &status, &e) == DP_OK && body) {
        json_t *js = json_loads(body, 0, NULL);
        const char *a = js ? json_string_value(json_object_get(js, "active")) : NULL;
        for (int k = 0; a && k < c->n; k++)
            if (!strcmp(a, c->cc.deploy.targets[k].name)) {
                pthread_mutex_lock(&c->mu);
                if (!c->job_running) c->serving = k; /* the job thread owns switches in flight */
                pthread_mutex_unlock(&c->mu);
            }
        json_decref(js);
    }
    free(body);
}

DpStatus control_observe(Control *c, SimObservation *obs, DpError *err) {
    DpStatus st = control_read_targets_(c, err);
    if (st) return st;
    control_fill_obs_(c, dp_clock_now(&c->clock), obs);
    return DP_OK;
}

DpStatus control_step(Control *c, ControlStepInfo *info, DpError *err) {
    memset(info, 0, sizeof *info);
    double t0 = dp_time_mono();
    reap_job(c);
    read_router_active(c);
    /* Staleness is the age of the data when this step read it; a slow
     * scrape that succeeded in this step is not stale. */
    double read_wall = dp_time_wall();
    DpStatus st = control_read_targets_(c, err);
    if (st) return st;
    double now_s = dp_clock_now(&c->clock);
    info->time_s = now_s;
    SimObservation *obs = &info->obs;
    control_fill_obs_(c, now_s, obs);
    control_note_accuracy_(c, obs);
    int s = obs->serving_target;
    double wall = dp_time_wall();

    float vec[SIM_STATE_MAX];
    const char *names[SIM_STATE_MAX];
    char name_buf[SIM_STATE_MAX][48];
    double dvec[SIM_STATE_MAX];
    int dim = sim_state_dim(c->cc.profile, c->n);
    sim_state_build(c->cc.profile, obs, vec);
    for (int i = 0; i < dim; i++) {
        dvec[i] = vec[i];
        names[i] = sim_state_feature_name(c->cc.profile, c->n, i, name_buf[i], sizeof name_buf[i]);
    }
    StoreState ss = {.ts = wall, .run_id = c->cc.run_id,
                     .profile = c->cc.profile == SIM_PROFILE_PAPER ? "paper" : "extended",
                     .n = dim, .vector = dvec, .names = names};
    DpError e2 = {0};
    if (store_add_state(c->store, &ss, &e2)) dp_warn("control: store: %s", e2.msg);

    double age = c->t[s].last_ok_wall > 0 ? fmax(0.0, read_wall - c->t[s].last_ok_wall) : INFINITY;
    double limit = c->cc.stale_intervals * wall_interval(c);
    const char *sname = c->cc.deploy.targets[s].name;
    const char *tname = NULL;
    char err_text[512] = "";
    if (age > limit) {
        info->stale = 1;
        metric_set(c->m_stale, 1);
        snprintf(info->action_name, sizeof info->action_name, "nothing");
        if (isinf(age))
            snprintf(info->reason, sizeof info->reason,
                     "metrics stale: no good read of %s yet (%s); keep serving", sname,
                     c->t[s].last_error);
        else
            snprintf(info->reason, sizeof info->reason,
                     "metrics stale: last good read of %s %.1f s ago (limit %.1f s: %g intervals); %s; "
                     "keep serving", sname, age, limit, c->cc.stale_intervals, c->t[s].last_error);
        snprintf(err_text, sizeof err_text, "metrics stale");
    } else if (isfinite(c->t[s].fb_window) && c->t[s].fb_window <= 0) {
        /* Nothing to judge the model by yet (labels arrive late): any
         * quality-driven decision would act on a made-up number. */
        metric_set(c->m_stale, 0);
        snprintf(info->action_name, sizeof info->action_name, "nothing");
        snprintf(info->reason, sizeof info->reason,
                 "no labelled feedback on %s yet: quality unknown; keep serving", sname);
        snprintf(err_text, sizeof err_text, "quality unknown");
    } else {
        metric_set(c->m_stale, 0);
        check_watch(c, obs, info);
        if (info->rolled_back) {
            control_fill_obs_(c, now_s, obs);
            control_note_accuracy_(c, obs);
        }
        info->action = c->policy ? policy_decide(c->policy, obs) : 0;
        char tnames[SIM_MAX_TARGETS][SIM_NAME_MAX];
        for (int k = 0; k < c->n; k++) snprintf(tnames[k], SIM_NAME_MAX, "%s", c->sim.targets[k].name);
        sim_action_name(c->sim.action_set, c->n, (const char (*)[SIM_NAME_MAX])tnames, info->action,
                        info->action_name, sizeof info->action_name);
        SimDecision d = sim_action_decode(c->sim.action_set, c->n, info->action);
        char state_txt[200];
        snprintf(state_txt, sizeof state_txt,
                 "acc %.3f bleu %.3f f1 %.3f lat %.1f ms rate %.1f/s cpu %.2f mem %.2f on %s",
                 obs->accuracy, obs->bleu, obs->f1, obs->latency_ms, obs->request_rate, obs->cpu,
                 obs->memory, sname);
        const char *pname = c->policy ? c->policy->name : "none";
        if (!d.retrain || d.target < 0) {
            info->executed = 1;
            snprintf(info->reason, sizeof info->reason, "%s: nothing (%s)", pname, state_txt);
        } else {
            tname = c->cc.deploy.targets[d.target].name;
            char why[400];
            info->executed = start_retrain(c, d.target, d.deploy_target, obs, why, sizeof why);
            snprintf(info->reason, sizeof info->reason, "%s: %s (%s); %s%s", pname,
                     info->action_name, state_txt, info->executed ? "" : "not executed: ", why);
            if (!info->executed) snprintf(err_text, sizeof err_text, "%s; keep serving", why);
        }
        pthread_mutex_lock(&c->mu);
        c->last_quality = control_quality_(c, obs);
        for (int k = 0; k < c->n; k++) {
            if (!c->t[k].up) continue;
            SimObservation ok = *obs; /* quality of target k's own window */
            ok.accuracy = c->t[k].accuracy;
            ok.bleu = c->t[k].bleu;
            c->snap[k].quality = control_quality_(c, &ok);
            c->snap[k].fb_total = c->t[k].fb_total;
            c->snap[k].fb_window = c->t[k].fb_window;
        }
        pthread_mutex_unlock(&c->mu);
    }
    StoreDecision sd = {.ts = wall, .run_id = c->cc.run_id,
                        .policy = c->policy ? c->policy->name : "none",
                        .action = info->action_name, .target = tname, .reason = info->reason,
                        .executed = info->executed, .error = err_text[0] ? err_text : NULL};
    if ((st = store_add_decision(c->store, &sd, err))) return dp_error_wrap(err, "control: store");
    metric_inc(metrics_with(c->f_decisions, info->action_name, info->executed ? "true" : "false"), 1);
    info->latency_s = dp_time_mono() - t0;
    metric_observe(c->m_latency, info->latency_s);
    return DP_OK;
}

DpStatus control_run(Control *c, volatile sig_atomic_t *stop, double duration_s, DpError *err) {
    double interval = c->cc.deploy.control.decision_interval_s;
    double next = dp_clock_now(&c->clock);
    for (;;) {
        if (stop && *stop) break;
        double now = dp_clock_now(&c->clock);
        if (duration_s > 0 && now >= duration_s) break;
        ControlStepInfo info;
        DpStatus st = control_step(c, &info, err);
        if (st) return st;
        dp_info("control: t=%.0fs %s%s: %s", info.time_s, info.action_name,
                info.executed ? "" : " (not executed)", info.reason);
        next += interval;
        now = dp_clock_now(&c->clock);
        if (next < now) next = now; /* a slow step: do not try to catch up */
        while (!(stop && *stop) && dp_clock_now(&c->clock) < next &&
               !(duration_s > 0 && dp_clock_now(&c->clock) >= duration_s)) {
            double left = (next - dp_clock_now(&c->clock)) / c->cc.deploy.control.time_scale;
            dp_sleep(left < 0.05 ? (left > 0 ? left : 0) : 0.05);
        }
    }
    control_wait_idle(c, c->cc.deploy.control.job_time_limit_s + 30);
    return DP_OK;
}

// ---- own metrics ----

static DpStatus make_metrics(Control *c, DpError *err) {
    MetricsRegistry *r = metrics_registry_create();
    if (!r) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    c->reg = r;
    const char *l_act[] = {"action", "executed"}, *l_tt[] = {"target", "trigger"}, *l_t[] = {"target"},
               *l_ts[] = {"target", "status"};
    static const double lat_b[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    static const double job_b[] = {1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600};
    MetricFamily *f;
    DpStatus st;
    if ((st = metrics_counter_new(r, "driftpilot_decisions_total", "Decisions taken, by action and whether they were carried out.", 2, l_act, &c->f_decisions, err)) ||
        (st = metrics_counter_new(r, "llm_retrain_total", "Retrain jobs started, by target and trigger (the policy kind).", 2, l_tt, &c->f_retrain, err)) ||
        (st = metrics_counter_new(r, "driftpilot_cost_total", "Retrain cost spent, by target (currency units).", 1, l_t, &c->f_cost, err)) ||
        (st = metrics_counter_new(r, "driftpilot_retrain_failures_total", "Retrain jobs that failed, timed out or were killed.", 2, l_ts, &c->f_fail, err)) ||
        (st = metrics_counter_new(r, "driftpilot_rollbacks_total", "Redeploys rolled back because live quality fell.", 1, l_t, &c->f_rollback, err)) ||
        (st = metrics_gauge_new(r, "driftpilot_serving_target", "1 for the target serving traffic.", 1, l_t, &c->f_serving, err)) ||
        (st = metrics_histogram_new(r, "llm_retrain_duration_seconds", "Wall time of retrain jobs.", 1, l_t, job_b, (int)(sizeof job_b / sizeof job_b[0]), &c->f_job_dur, err)))
        return st;
    if ((st = metrics_counter_new(r, "llm_rl_redeploy_total", "Redeploys made by a learned or adaptive policy (not static).", 0, NULL, &f, err))) return st;
    c->m_rl_redeploy = metrics_child(f, NULL);
    if ((st = metrics_counter_new(r, "llm_static_retrain_total", "Retrains started by the static policy.", 0, NULL, &f, err))) return st;
    c->m_static_retrain = metrics_child(f, NULL);
    if ((st = metrics_counter_new(r, "driftpilot_redeploys_total", "Redeploys by any policy.", 0, NULL, &f, err))) return st;
    c->m_redeploys = metrics_child(f, NULL);
    if ((st = metrics_histogram_new(r, "driftpilot_decision_duration_seconds", "Wall time of one decision (read state, decide, start the action).", 0, NULL, lat_b, (int)(sizeof lat_b / sizeof lat_b[0]), &f, err))) return st;
    c->m_latency = metrics_child(f, NULL);
    if ((st = metrics_gauge_new(r, "driftpilot_metrics_stale", "1 when the serving target's metrics are stale.", 0, NULL, &f, err))) return st;
    c->m_stale = metrics_child(f, NULL);
    if ((st = metrics_register_process_collector(r, err))) return st;
    for (int k = 0; k < c->n; k++) {
        const char *tn = c->cc.deploy.targets[k].name;
        metric_set(metrics_with(c->f_serving, tn), k == c->serving);
        metric_inc(metrics_with(c->f_cost, tn), 0);
    }
    return DP_OK;
}

DpStatus control_metrics_render(Control *c, DpBuf *out) { return metrics_render(c->reg, out); }

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls) {
    Control *c = cls;
    (void)version;
    (void)upload;
    if (*upload_len) {
        *upload_len = 0; /* no route takes a body */
        return MHD_YES;
    }
    (void)con_cls;
    DpBuf b = DP_BUF_INIT;
    int code = 200;
    const char *ctype = METRICS_CONTENT_TYPE;
    if (strcmp(method, "GET")) {
        code = 405;
        dp_buf_printf(&b, "{\"error\":\"only GET\"}");
        ctype = "application/json";
    } else if (!strcmp(url, "/metrics")) {
        metrics_render(c->reg, &b);
    } else if (!strcmp(url, "/healthz")) {
        ctype = "application/json";
        dp_buf_printf(&b, "{\"status\":\"ok\",\"serving\":\"%s\",\"job_running\":%d}",
                      c->cc.deploy.targets[control_serving(c)].name, control_job_running(c));
    } else {
        code = 404;
        ctype = "application/json";
        dp_buf_printf(&b, "{\"error\":\"not found\"}");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(b.len, b.data ? b.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    dp_buf_free(&b);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static DpStatus start_server(Control *c, DpError *err) {
    char host[64];
    snprintf(host, sizeof host, "%s", c->cc.listen);
    char *colon = strrchr(host, ':');
    if (!colon) return dp_fail(err, DP_ERR_INVAL, "control listen '%s': expected HOST:PORT", c->cc.listen);
    *colon = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return dp_fail(err, DP_ERR_INVAL, "control listen '%s': bad port", c->cc.listen);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return dp_fail(err, DP_ERR_INVAL, "control listen '%s': not an IPv4 address", c->cc.listen);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
                                            NULL, handle, c, MHD_OPTION_SOCK_ADDR,
                                            (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
                                            (unsigned)30, MHD_OPTION_END);
    if (!d) return dp_fail(err, DP_ERR_IO, "control: cannot listen on %s", c->cc.listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    c->port = info ? info->port : (int)port;
    c->mhd = d;
    return DP_OK;
}

int control_metrics_port(const Control *c) { return c ? c->port : 0; }
const char *control_run_id(const Control *c) { return c->cc.run_id; }

// ---- create / destroy ----

/* "always:NAME": asks for a retrain on NAME at every decision.  For drills
 * and tests (it shows the refusal of a second retrain while one runs); it
 * lives here because it only makes sense against a live system. */
static int always_decide(Policy *p, const SimObservation *o) {
    (void)o;
    int k = *(int *)p->impl;
    SimDecision d = {.retrain = 1, .redeploy = 1, .target = k, .deploy_target = k};
    return sim_action_encode(p->action_set, p->n_targets, d);
}
static const PolicyVtbl always_vt = {"always", NULL, NULL, always_decide, NULL};

static DpStatus always_create(Control *c, const char *name, DpError *err) {
    int k = sim_target_index(&c->sim, name);
    if (k < 0) return dp_fail(err, DP_ERR_INVAL, "always: no target '%s'", name);
    Policy *p = dp_calloc(1, sizeof *p);
    int *impl = dp_calloc(1, sizeof *impl);
    if (!p || !impl) {
        free(p);
        free(impl);
        return dp_fail(err, DP_ERR_NOMEM, "policy");
    }
    *impl = k;
    p->vt = &always_vt;
    p->impl = impl;
    p->action_set = c->sim.action_set;
    p->n_targets = c->n;
    p->interval_s = c->sim.interval_s;
    snprintf(p->name, sizeof p->name, "always@%s", name);
    c->policy = p;
    return DP_OK;
}

static DpStatus build_policy(Control *c, DpError *err) {
    const DeployPolicyConfig *pc = &c->cc.deploy.policy;
    char spec[600];
    if (c->cc.policy_spec[0]) snprintf(spec, sizeof spec, "%s", c->cc.policy_spec);
    else if (!strcmp(pc->kind, "static")) snprintf(spec, sizeof spec, "static:%.17g", pc->interval_s);
    else if (!strcmp(pc->kind, "threshold")) snprintf(spec, sizeof spec, "threshold:%.17g", pc->threshold);
    else if (!strcmp(pc->kind, "drift")) snprintf(spec, sizeof spec, "ph");
    else if (!strcmp(pc->kind, "ppo")) snprintf(spec, sizeof spec, "ppo:%s", pc->file);
    else if (!strcmp(pc->kind, "none")) snprintf(spec, sizeof spec, "none");
    else return dp_fail(err, DP_ERR_INVAL, "policy kind '%s' cannot run live (the oracle needs the "
                        "future; use static, threshold, drift, ppo or none)", pc->kind);
    char kind[32];
    snprintf(kind, sizeof kind, "%.*s", (int)strcspn(spec, ":"), spec);
    if (!strcmp(kind, "ph") || !strcmp(kind, "adwin")) snprintf(kind, sizeof kind, "drift");
    snprintf(c->policy_kind, sizeof c->policy_kind, "%s", kind);
    DpStatus st;
    if (!strcmp(kind, "none")) return DP_OK;
    if (!strcmp(kind, "oracle"))
        return dp_fail(err, DP_ERR_INVAL, "the oracle policy only exists in simulation");
    if (!strcmp(kind, "ppo")) st = policy_ppo_create(spec + 4, &c->sim, &c->policy, err);
    else if (!strcmp(kind, "always")) st = always_create(c, strchr(spec, ':') ? strchr(spec, ':') + 1 : "", err);
    else st = policy_from_spec(spec, &c->sim, &c->policy, err);
    if (st) return dp_error_wrap(err, "control: policy '%s'", spec);
    if (c->policy->vt->reset) policy_reset(c->policy);
    return DP_OK;
}

static double read_memtotal(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    double kb = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemTotal: %lf kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024.0;
}

DpStatus control_create(const ControlConfig *cc, Control **out, DpError *err) {
    *out = NULL;
    const DeployConfig *d = &cc->deploy;
    if (d->n_targets < 1) return dp_fail(err, DP_ERR_INVAL, "control: no targets in the config");
    if (d->n_targets > SIM_MAX_TARGETS)
        return dp_fail(err, DP_ERR_INVAL, "control: %d targets, at most %d", d->n_targets, SIM_MAX_TARGETS);
    if (!(d->control.decision_interval_s > 0) || !(d->control.time_scale > 0))
        return dp_fail(err, DP_ERR_INVAL, "control: decision interval and time scale must be > 0");
    if (!strcmp(d->metrics.source, "prometheus") && !d->metrics.prometheus_url[0])
        return dp_fail(err, DP_ERR_INVAL, "control: metrics.source = \"prometheus\" needs prometheus_url");
    Control *c = dp_calloc(1, sizeof *c);
    if (!c) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    c->cc = *cc;
    c->n = d->n_targets;
    pthread_mutex_init(&c->mu, NULL);
    c->last_retrain_s = -1;
    c->memtotal_bytes = read_memtotal();
    DpStatus st = DP_OK;
    if (!c->cc.run_id[0]) snprintf(c->cc.run_id, sizeof c->cc.run_id, "run-%.0f", dp_time_wall());
    if (!(c->cc.stale_intervals > 0)) c->cc.stale_intervals = 2;
    if (c->cc.rollback_min_labels < 1) c->cc.rollback_min_labels = 1;
    for (int k = 0; k < DEPLOY_MAX_TARGETS; k++) {
        c->snap[k].fb_total = c->snap[k].fb_window = c->snap[k].quality = NAN;
        c->t[k].fb_total = c->t[k].fb_window = NAN;
    }
    if (!(c->cc.http_timeout_s > 0)) c->cc.http_timeout_s = 5;
    if (!(c->cc.rate_window_s > 0)) c->cc.rate_window_s = 4;
    if (!c->cc.jobs_dir[0]) {
        char dir[DEPLOY_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", d->control.store_path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
        snprintf(c->cc.jobs_dir, sizeof c->cc.jobs_dir, "%s/jobs", dir);
    }
    if ((st = dp_mkdirs(c->cc.jobs_dir, err))) goto fail;
    /* the policy's view of the targets */
    sim_config_default(&c->sim);
    c->sim.n_targets = c->n;
    c->sim.interval_s = d->control.decision_interval_s;
    c->sim.profile = c->cc.profile;
    /* "pairs" lets a policy train on one target and serve on another (the
     * deploy config admits only targets|pairs) */
    if ((st = sim_action_set_parse(d->policy.actions, &c->sim.action_set, err))) {
        dp_error_wrap(err, "control: policy.actions");
        goto fail;
    }
    c->sim.reward.w_bleu = d->reward.bleu_weight;
    c->sim.reward.w_accuracy = d->reward.accuracy_weight;
    c->sim.reward.cost_weight = d->reward.cost_weight;
    c->sim.reward.slo_ms = d->reward.latency_slo_ms;
    c->sim.initial_target = 0;
    for (int k = 0; k < c->n; k++) {
        const DeployTarget *t = &d->targets[k];
        snprintf(c->sim.targets[k].name, SIM_NAME_MAX, "%s", t->name);
        c->sim.targets[k].price = t->retrain_cost > 0 ? t->retrain_cost : t->price_per_gpu_hour;
        c->sim.targets[k].price_per_gpu_hour = t->price_per_gpu_hour;
        c->sim.targets[k].distance_ms = t->network_distance_ms;
        if (d->router.active[0] && !strcmp(d->router.active, t->name)) c->sim.initial_target = k;
        if (!(c->exec[k] = deploy_executor_create(t, err))) {
            st = err ? err->status : DP_ERR_INVAL;
            goto fail;
        }
    }
    c->serving = c->sim.initial_target;
    if ((st = build_policy(c, err))) goto fail;
    if ((st = store_open(d->control.store_path, &c->store, err))) goto fail;
    if ((st = make_metrics(c, err))) goto fail;
    if (c->cc.listen[0] && (st = start_server(c, err))) goto fail;
    dp_clock_init(&c->clock, d->control.time_scale, 0);
    {
        char cfgtxt[512];
        snprintf(cfgtxt, sizeof cfgtxt, "policy %s, %d targets, interval %.0f s at %gx, source %s, serving %s",
                 c->policy ? c->policy->name : "none", c->n, d->control.decision_interval_s,
                 d->control.time_scale, d->metrics.source, d->targets[c->serving].name);
        add_event(c, "start", "%s", cfgtxt);
    }
    *out = c;
    return DP_OK;
fail:
    control_destroy(c);
    return st;
}

void control_destroy(Control *c) {
    if (!c) return;
    control_wait_idle(c, 1e9);
    if (c->mhd) MHD_stop_daemon((struct MHD_Daemon *)c->mhd);
    if (c->store) add_event(c, "stop", "controller stopped");
    policy_destroy(c->policy);
    for (int k = 0; k < DEPLOY_MAX_TARGETS; k++) deploy_executor_destroy(c->exec[k]);
    store_close(c->store);
    metrics_registry_destroy(c->reg);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
