/* What the remote executors send: the ssh command line (with the remote
 * command quoted for the remote shell) and the Kubernetes manifests (a Job
 * for retraining, a Deployment plus a Service for serving).
 *
 * ssh passes its command arguments to the remote user's shell as one string,
 * so every word is single-quoted here (a ' inside becomes '\'') and the
 * whole command is handed to ssh as a single argument after "--" and the
 * destination; what the remote shell sees is then exactly the argv we meant.
 *
 * YAML: every string value is written double-quoted with escapes, so names,
 * arguments or images with ':' '#' or quotes cannot change the structure.
 * The output is deterministic (golden-file tests compare it byte for byte). */
#include <stdlib.h>
#include <string.h>

#include "deploy_impl.h"

// ---- ssh ----

DpStatus deploy_shell_quote(DpBuf *out, const char *s) {
    DpStatus st = dp_buf_append(out, "'", 1);
    for (const char *p = s; *p && st == DP_OK; p++) {
        if (*p == '\'') st = dp_buf_append(out, "'\\''", 4);
        else st = dp_buf_append(out, p, 1);
    }
    if (st == DP_OK) st = dp_buf_append(out, "'", 1);
    return st;
}

void deploy_argv_free(char **argv) {
    if (!argv) return;
    for (char **p = argv; *p; p++) free(*p);
    free(argv);
}

DpStatus deploy_ssh_argv(const DeployTarget *t, const char *const *argv, char ***out,
                         DpError *err) {
    *out = NULL;
    if (!argv || !argv[0]) return dp_fail(err, DP_ERR_INVAL, "ssh: empty command");
    if (!t->host[0]) return dp_fail(err, DP_ERR_INVAL, "target %s: ssh needs a host", t->name);
    if (t->host[0] == '-' || t->user[0] == '-')
        return dp_fail(err, DP_ERR_INVAL, "target %s: host/user may not start with '-'", t->name);
    DpBuf cmd = DP_BUF_INIT;
    char port[16], dest[DEPLOY_STR_MAX + DEPLOY_NAME_MAX + 2];
    const char *v[24];
    int n = 0;
    DpStatus st = DP_OK;
    /* Without a terminal, sshd does not signal a remote command when the
     * connection goes away, so a job past its time limit or a stopped
     * service would keep running there.  The command therefore runs in the
     * background, and a watcher ends it (SIGTERM) when the session's stdin
     * reaches EOF, which happens when the local ssh exits: the executor
     * gives ssh a stdin that never ends on its own.  fd 3 carries that
     * stdin past the rule that a background list reads /dev/null. */
    st = dp_buf_printf(&cmd, "exec 3<&0 && ");
    if (st == DP_OK && t->workdir[0]) {
        st = dp_buf_printf(&cmd, "cd ");
        if (st == DP_OK) st = deploy_shell_quote(&cmd, t->workdir);
        if (st == DP_OK) st = dp_buf_printf(&cmd, " && ");
    }
    if (st == DP_OK) st = dp_buf_printf(&cmd, "{");
    for (int i = 0; argv[i] && st == DP_OK; i++) {
        st = dp_buf_append(&cmd, " ", 1);
        if (st == DP_OK) st = deploy_shell_quote(&cmd, argv[i]);
    }
    if (st == DP_OK)
        st = dp_buf_printf(&cmd, " </dev/null 3<&- & p=$!; "
                                 "{ cat <&3 >/dev/null 2>&1 3<&-; kill -TERM $p 2>/dev/null; } & w=$!; "
                                 "exec 3<&-; wait $p; s=$?; kill $w 2>/dev/null; exit $s; }");
    if (st != DP_OK) {
        dp_buf_free(&cmd);
        return dp_fail(err, DP_ERR_NOMEM, "ssh: out of memory");
    }
    snprintf(port, sizeof port, "%d", t->port > 0 ? t->port : 22);
    if (t->user[0]) snprintf(dest, sizeof dest, "%s@%s", t->user, t->host);
    else snprintf(dest, sizeof dest, "%s", t->host);
    v[n++] = t->ssh_command[0] ? t->ssh_command : "ssh";
    v[n++] = "-o";
    v[n++] = "BatchMode=yes";
    v[n++] = "-o";
    v[n++] = "ConnectTimeout=10";
    v[n++] = "-o";
    v[n++] = "ServerAliveInterval=15";
    v[n++] = "-p";
    v[n++] = port;
    if (t->identity_file[0]) {
        v[n++] = "-i";
        v[n++] = t->identity_file;
        v[n++] = "-o";
        v[n++] = "IdentitiesOnly=yes";
    }
    v[n++] = "--";
    v[n++] = dest;
    v[n++] = cmd.data;
    v[n] = NULL;
    char **a = dp_calloc((size_t)n + 1, sizeof *a);
    if (!a) {
        dp_buf_free(&cmd);
        return dp_fail(err, DP_ERR_NOMEM, "ssh: out of memory");
    }
    for (int i = 0; i < n; i++) {
        if (!(a[i] = dp_strdup(v[i]))) {
            deploy_argv_free(a);
            dp_buf_free(&cmd);
            return dp_fail(err, DP_ERR_NOMEM, "ssh: out of memory");
        }
    }
    dp_buf_free(&cmd);
    *out = a;
    return DP_OK;
}

// ---- YAML ----

/* Appends s as a YAML double-quoted scalar. */
static void yq(DpBuf *b, const char *s) {
    dp_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"') dp_buf_append(b, "\\\"", 2);
        else if (*p == '\\') dp_buf_append(b, "\\\\", 2);
        else if (*p == '\n') dp_buf_append(b, "\\n", 2);
        else if (*p == '\t') dp_buf_append(b, "\\t", 2);
        else if (*p < 0x20 || *p == 0x7f) dp_buf_printf(b, "\\x%02x", *p);
        else dp_buf_append(b, p, 1);
    }
    dp_buf_append(b, "\"", 1);
}

static void labels(DpBuf *b, int ind, const DeployTarget *t, const char *component,
                   const char *instance) {
    dp_buf_printf(b, "%*slabels:\n", ind, "");
    dp_buf_printf(b, "%*sapp.kubernetes.io/name: \"driftpilot\"\n", ind + 2, "");
    dp_buf_printf(b, "%*sapp.kubernetes.io/component: \"%s\"\n", ind + 2, "", component);
    dp_buf_printf(b, "%*sapp.kubernetes.io/instance: ", ind + 2, "");
    yq(b, instance);
    dp_buf_printf(b, "\n%*sdriftpilot.io/target: ", ind + 2, "");
    yq(b, t->name);
    dp_buf_append(b, "\n", 1);
}

static void metadata(DpBuf *b, const DeployTarget *t, const char *name, const char *component) {
    dp_buf_printf(b, "metadata:\n  name: ");
    yq(b, name);
    dp_buf_printf(b, "\n  namespace: ");
    yq(b, t->k8s_namespace);
    dp_buf_append(b, "\n", 1);
    labels(b, 2, t, component, name);
}

static void container(DpBuf *b, int ind, const DeployTarget *t, const char *const *argv, int port) {
    dp_buf_printf(b, "%*s- name: \"driftpilot\"\n", ind, "");
    ind += 2;
    dp_buf_printf(b, "%*simage: ", ind, "");
    yq(b, t->image);
    dp_buf_printf(b, "\n%*scommand:\n%*s- ", ind, "", ind + 2, "");
    yq(b, argv[0]);
    dp_buf_append(b, "\n", 1);
    if (argv[1]) {
        dp_buf_printf(b, "%*sargs:\n", ind, "");
        for (int i = 1; argv[i]; i++) {
            dp_buf_printf(b, "%*s- ", ind + 2, "");
            yq(b, argv[i]);
            dp_buf_append(b, "\n", 1);
        }
    }
    if (port > 0) {
        dp_buf_printf(b,
                      "%*sports:\n%*s- name: \"http\"\n%*scontainerPort: %d\n"
                      "%*sreadinessProbe:\n%*shttpGet:\n%*spath: \"/healthz\"\n%*sport: \"http\"\n"
                      "%*speriodSeconds: 5\n",
                      ind, "", ind + 2, "", ind + 4, "", port, ind, "", ind + 2, "", ind + 4, "",
                      ind + 4, "", ind + 2, "");
    }
    /* Resources: explicit k8s quantities win; otherwise derived from cpus,
     * memory_mb and gpu_count. */
    char cpu_req[32] = "", mem_lim[32] = "";
    if (t->cpu_request[0]) snprintf(cpu_req, sizeof cpu_req, "%s", t->cpu_request);
    else if (t->cpus > 0) snprintf(cpu_req, sizeof cpu_req, "%d", t->cpus);
    if (t->memory_limit[0]) snprintf(mem_lim, sizeof mem_lim, "%s", t->memory_limit);
    else if (t->memory_mb > 0) snprintf(mem_lim, sizeof mem_lim, "%.0fMi", t->memory_mb);
    int has_req = cpu_req[0] || t->memory_request[0];
    int has_lim = t->cpu_limit[0] || mem_lim[0] || t->gpu_count > 0;
    if (!has_req && !has_lim) {
        dp_buf_printf(b, "%*sresources: {}\n", ind, "");
        return;
    }
    dp_buf_printf(b, "%*sresources:\n", ind, "");
    if (has_req) {
        dp_buf_printf(b, "%*srequests:\n", ind + 2, "");
        if (cpu_req[0]) {
            dp_buf_printf(b, "%*scpu: ", ind + 4, "");
            yq(b, cpu_req);
            dp_buf_append(b, "\n", 1);
        }
        if (t->memory_request[0]) {
            dp_buf_printf(b, "%*smemory: ", ind + 4, "");
            yq(b, t->memory_request);
            dp_buf_append(b, "\n", 1);
        }
    }
    if (has_lim) {
        dp_buf_printf(b, "%*slimits:\n", ind + 2, "");
        if (t->cpu_limit[0]) {
            dp_buf_printf(b, "%*scpu: ", ind + 4, "");
            yq(b, t->cpu_limit);
            dp_buf_append(b, "\n", 1);
        }
        if (mem_lim[0]) {
            dp_buf_printf(b, "%*smemory: ", ind + 4, "");
            yq(b, mem_lim);
            dp_buf_append(b, "\n", 1);
        }
        if (t->gpu_count > 0) dp_buf_printf(b, "%*snvidia.com/gpu: %d\n", ind + 4, "", t->gpu_count);
    }
}

static DpStatus check_render(const DeployTarget *t, const char *name, const char *const *argv,
                             DpError *err) {
    if (!name || !deploy_name_ok(name))
        return dp_fail(err, DP_ERR_INVAL,
                       "kubernetes: object name must be lower-case letters, digits and '-': \"%s\"",
                       name ? name : "(null)");
    if (!argv || !argv[0]) return dp_fail(err, DP_ERR_INVAL, "kubernetes %s: empty command", name);
    if (!t->image[0]) return dp_fail(err, DP_ERR_INVAL, "target %s: kubernetes needs an image", t->name);
    return DP_OK;
}

DpStatus deploy_k8s_render_job(const DeployTarget *t, const char *name,
                               const char *const *argv, double time_limit_s, DpBuf *out,
                               DpError *err) {
    DpStatus st = check_render(t, name, argv, err);
    if (st != DP_OK) return st;
    DpBuf b = DP_BUF_INIT;
    dp_buf_printf(&b, "# driftpilot retrain job on target %s (rendered by driftpilot)\n", t->name);
    dp_buf_printf(&b, "apiVersion: batch/v1\nkind: Job\n");
    metadata(&b, t, name, "retrain");
    dp_buf_printf(&b, "spec:\n  backoffLimit: 0\n");
    if (time_limit_s > 0) dp_buf_printf(&b, "  activeDeadlineSeconds: %.0f\n", time_limit_s);
    dp_buf_printf(&b, "  ttlSecondsAfterFinished: 86400\n  template:\n    metadata:\n");
    labels(&b, 6, t, "retrain", name);
    dp_buf_printf(&b, "    spec:\n      restartPolicy: \"Never\"\n      containers:\n");
    container(&b, 8, t, argv, 0);
    if (!b.data) {
        dp_buf_free(&b);
        return dp_fail(err, DP_ERR_NOMEM, "kubernetes: out of memory");
    }
    st = dp_buf_append(out, b.data, b.len);
    dp_buf_free(&b);
    return st == DP_OK ? DP_OK : dp_fail(err, DP_ERR_NOMEM, "kubernetes: out of memory");
}

static int url_port(const char *url) {
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    const char *slash = strchr(h, '/');
    const char *colon = strrchr(h, ':');
    if (colon && (!slash || colon < slash) && !(strchr(h, ']') && colon < strchr(h, ']')))
        return atoi(colon + 1);
    return 80;
}

DpStatus deploy_k8s_render_service(const DeployTarget *t, const char *name,
                                   const char *const *argv, DpBuf *out, DpError *err) {
    DpStatus st = check_render(t, name, argv, err);
    if (st != DP_OK) return st;
    int port = url_port(t->service_url);
    if (port <= 0 || port > 65535) port = 80;
    DpBuf b = DP_BUF_INIT;
    dp_buf_printf(&b, "# driftpilot serving deployment on target %s (rendered by driftpilot)\n",
                  t->name);
    dp_buf_printf(&b, "apiVersion: apps/v1\nkind: Deployment\n");
    metadata(&b, t, name, "serve");
    dp_buf_printf(&b, "spec:\n  replicas: 1\n  selector:\n    matchLabels:\n"
                      "      app.kubernetes.io/name: \"driftpilot\"\n"
                      "      app.kubernetes.io/instance: ");
    yq(&b, name);
    dp_buf_printf(&b, "\n  template:\n    metadata:\n");
    labels(&b, 6, t, "serve", name);
    dp_buf_printf(&b, "    spec:\n      containers:\n");
    container(&b, 8, t, argv, port);
    dp_buf_printf(&b, "---\napiVersion: v1\nkind: Service\n");
    metadata(&b, t, name, "serve");
    dp_buf_printf(&b, "spec:\n  type: \"ClusterIP\"\n  selector:\n"
                      "    app.kubernetes.io/name: \"driftpilot\"\n"
                      "    app.kubernetes.io/instance: ");
    yq(&b, name);
    dp_buf_printf(&b, "\n  ports:\n    - name: \"http\"\n      port: %d\n      targetPort: \"http\"\n",
                  port);
    if (!b.data) {
        dp_buf_free(&b);
        return dp_fail(err, DP_ERR_NOMEM, "kubernetes: out of memory");
    }
    st = dp_buf_append(out, b.data, b.len);
    dp_buf_free(&b);
    return st == DP_OK ? DP_OK : dp_fail(err, DP_ERR_NOMEM, "kubernetes: out of memory");
}
