/* Tests for src/deploy: the config file, the local/ssh/kubernetes executors
 * and the router (against fake backends running in threads of this test on
 * 127.0.0.1). */
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy.h"
#include "metrics.h"
#include "test.h"

static char tmpdir[256];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The scratch directory is removed at exit when every test passed, and kept
 * (for the golden-file diffs and logs) when one failed. */
static void remove_tmpdir(void) {
    if (tmpdir[0] && test_failures_ == 0) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_tmpdir(void) {
    if (tmpdir[0]) return;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dp_test_deploy_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    atexit(remove_tmpdir);
}

static char *slurp(const char *path) {
    char *text = NULL;
    size_t len;
    DpError e;
    if (dp_read_file(path, &text, &len, &e) != DP_OK) return NULL;
    return text;
}

// ---- config ----

static void test_config_good(void) {
    DeployConfig cfg;
    DpError err = {0};
    DpStatus st = deploy_config_load(DP_TEST_DATA "/deploy/good.toml", &cfg, &err);
    REQUIRE(st == DP_OK);
    EXPECT_EQ_INT(cfg.n_targets, 3);
    const DeployTarget *a = deploy_config_find(&cfg, "aws");
    const DeployTarget *z = deploy_config_find(&cfg, "azure");
    const DeployTarget *g = deploy_config_find(&cfg, "gke");
    REQUIRE(a && z && g);
    EXPECT_NEAR(a->price_per_gpu_hour, 0.045, 1e-12);
    EXPECT_EQ_INT(a->gpu_count, 1);
    EXPECT_EQ_INT(a->cpus, 2);
    EXPECT_STREQ(a->service_url, "http://127.0.0.1:8001");
    EXPECT_NEAR(a->network_distance_ms, 40, 0);
    EXPECT_EQ_INT(a->executor, DEPLOY_EXEC_LOCAL);
    EXPECT_STREQ(a->cpu_set, "0");
    EXPECT_NEAR(a->memory_mb, 2048, 0);
    EXPECT_STREQ(a->workdir, "run/aws");
    EXPECT_EQ_INT(a->line, 2);
    EXPECT_EQ_INT(z->executor, DEPLOY_EXEC_SSH);
    EXPECT_NEAR(z->network_distance_ms, 25.5, 1e-12);
    EXPECT_STREQ(z->host, "gpu-box.example");
    EXPECT_STREQ(z->user, "deploy");
    EXPECT_EQ_INT(z->port, 2222);
    EXPECT_STREQ(z->ssh_command, "ssh");
    EXPECT_EQ_INT(g->executor, DEPLOY_EXEC_KUBERNETES);
    EXPECT_NEAR(g->price_per_gpu_hour, 1.2, 1e-12);
    EXPECT_STREQ(g->k8s_namespace, "mlops");
    EXPECT_STREQ(g->image, "ghcr.io/example/driftpilot:0.1");
    EXPECT_STREQ(g->memory_limit, "8Gi");
    EXPECT_STREQ(cfg.policy.kind, "ppo");
    EXPECT_STREQ(cfg.policy.file, "policies/ppo.bin");
    EXPECT_STREQ(cfg.policy.actions, "targets"); /* the default */
    EXPECT_EQ_INT(cfg.policy.seed, 7);
    EXPECT_NEAR(cfg.reward.latency_slo_ms, 150, 0);
    EXPECT_NEAR(cfg.control.decision_interval_s, 60, 0);
    EXPECT_NEAR(cfg.control.time_scale, 60, 0);
    EXPECT_NEAR(cfg.control.job_time_limit_s, 1200, 0);
    EXPECT_STREQ(cfg.control.store_path, "history.db");
    EXPECT_STREQ(cfg.metrics.source, "prometheus");
    EXPECT_STREQ(cfg.metrics.prometheus_url, "http://127.0.0.1:9090");
    EXPECT_STREQ(cfg.router.active, "azure");
    EXPECT_EQ_INT(cfg.router.emulate_distance, 1);
    EXPECT_NEAR(cfg.router.health_interval_s, 0.5, 1e-12);
    /* defaults for what the file leaves out */
    EXPECT_NEAR(cfg.control.rollback_margin, 0.05, 1e-12);
    EXPECT_NEAR(cfg.router.max_body_bytes, 1 << 20, 0);

    RouterConfig rc;
    REQUIRE(router_config_from_deploy(&cfg, &rc, &err) == DP_OK);
    EXPECT_EQ_INT(rc.n_targets, 3);
    EXPECT_EQ_INT(rc.port, 8080);
    EXPECT_STREQ(rc.listen_host, "127.0.0.1");
    EXPECT_STREQ(rc.targets[1].url, "http://127.0.0.1:8002"); /* trailing '/' dropped */
    EXPECT_STREQ(rc.active, "azure");

    DpBuf d = DP_BUF_INIT;
    EXPECT(deploy_config_describe(&cfg, &d) == DP_OK && strstr(d.data, "azure"));
    dp_buf_free(&d);
}

static void test_config_example_ships(void) {
    DeployConfig cfg;
    DpError err = {0};
    DpStatus st = deploy_config_load(DP_SOURCE_DIR "/configs/driftpilot.toml", &cfg, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(cfg.n_targets, 2);
}

typedef struct {
    const char *text;
    const char *want; /* substring of the message */
} BadCase;

#define T0 "[[targets]]\nname = \"a\"\nservice_url = \"http://127.0.0.1:1\"\n"

static void test_config_bad(void) {
    static const BadCase cases[] = {
        {T0 "price_per_gpu_hour = \"abc\"\n",
         "bad.toml:4: targets[0].price_per_gpu_hour: expected a number >= 0, got \"abc\""},
        {T0 "price_per_gpu_hour = -1\n", "bad.toml:4: targets[0].price_per_gpu_hour: expected a number >= 0, got -1"},
        {T0 "[[targets]]\nname = \"b\"\nservice_url = \"http://x:2\"\nprice_per_gpu_hor = 1\n",
         "bad.toml:7: targets[1].price_per_gpu_hor: unknown key"},
        {T0 "gpu_count = 1.5\n", "bad.toml:4: targets[0].gpu_count: expected an integer in [0, 1024], got 1.5"},
        {T0 "executor = \"docker\"\n", "bad.toml:4: targets[0].executor: expected one of local|ssh|kubernetes, got \"docker\""},
        {T0 "host = \"h\"\n", "bad.toml:4: targets[0].host: only for executor = \"ssh\""},
        {T0 "executor = \"ssh\"\n", "targets[0].host: missing (required for executor = \"ssh\")"},
        {T0 "executor = \"kubernetes\"\n", "targets[0].image: missing"},
        {T0 "cpu_set = \"0-\"\n", "bad.toml:4: targets[0].cpu_set: expected a CPU list"},
        {T0 "name = \"b\"\n", "bad.toml:4: key \"name\" defined twice"},
        {"[[targets]]\nservice_url = \"http://x:1\"\n", "bad.toml:1: targets[0].name: missing (required)"},
        {"[[targets]]\nname = \"A b\"\nservice_url = \"http://x:1\"\n", "bad.toml:2: targets[0].name: expected lower-case"},
        {"[[targets]]\nname = \"a\"\n", "bad.toml:1: targets[0].service_url: missing"},
        {"[[targets]]\nname = \"a\"\nservice_url = \"x:1\"\n", "bad.toml:3: targets[0].service_url: expected \"http://host:port\""},
        {T0 T0, "bad.toml:5: targets[1].name: \"a\" is already the name of targets[0]"},
        {"[control]\ndecision_interval = \"soon\"\n", "bad.toml:2: control.decision_interval: expected a duration"},
        {"[control]\ntime_scale = 0\n", "bad.toml:2: control.time_scale: expected a number in (0, 1e+06], got 0"},
        {"[control]\ndecision_interval = 60s\n", "bad.toml:2: expected a value, got \"60s\" (strings need quotes)"},
        {"[policy]\nkind = \"greedy\"\n", "bad.toml:2: policy.kind: expected one of static|threshold"},
        {"[policy]\nkind = \"ppo\"\n", "policy.file: required when kind = \"ppo\""},
        {"[policy]\nactions = \"steps\"\n", "bad.toml:2: policy.actions: expected one of targets|pairs, got \"steps\""},
        {"[metrics]\nsource = \"prometheus\"\n", "metrics.prometheus_url: required"},
        {"[router]\nemulate_distance = 1\n", "bad.toml:2: router.emulate_distance: expected true or false, got 1"},
        {"[router]\nactive = \"nowhere\"\n", "router.active: no target named \"nowhere\""},
        {"[rewards]\nx = 1\n", "bad.toml:1: rewards: unknown table"},
        {"[policy]\n[policy]\n", "bad.toml:2: table [policy] defined twice"},
        {"[policy]\nkind = \"static\n", "bad.toml:2: unterminated string"},
        {"[policy]\nkind = \"static\" extra\n", "bad.toml:2: unexpected text after the value"},
        {"[policy]\nkind = { a = 1 }\n", "bad.toml:2: inline tables are not supported"},
        {"[policy]\npolicy.kind = \"static\"\n", "bad.toml:2: dotted keys are not supported"},
        {"# comment\n\ninterval = 5\n", "bad.toml:3: interval: unknown key"},
        {"[reward]\nbleu_weight = [1, 2]\n", "bad.toml:2: reward.bleu_weight: expected a number in [0, 100], got an array"},
        {"[reward]\nbleu_weight = \n", "bad.toml:2: expected a value after '='"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        DeployConfig cfg;
        DpError err = {0};
        DpStatus st = deploy_config_parse(cases[i].text, "bad.toml", &cfg, &err);
        EXPECT_MSG(st != DP_OK, "case %zu parsed", i);
        EXPECT_MSG(strstr(err.msg, cases[i].want) != NULL, "case %zu: got \"%s\", want \"%s\"", i,
                   err.msg, cases[i].want);
    }
    /* Arrays of scalars, escapes and comments are fine where they are allowed. */
    DeployConfig cfg;
    DpError err = {0};
    EXPECT(deploy_config_parse("[policy]\nactions = \"pairs\"\n", "ok.toml", &cfg, &err) == DP_OK);
    EXPECT_STREQ(cfg.policy.actions, "pairs");
    DpStatus st = deploy_config_parse(
        "# c\n[policy] # trailing\nkind = 'static' # literal string\nfile = \"a\\\"b\\u00e9\"\n",
        "ok.toml", &cfg, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT_STREQ(cfg.policy.file, "a\"b\xc3\xa9");
    /* CRLF line ends, arrays over several lines, no newline at the end */
    st = deploy_config_parse("[control]\r\ntime_scale = 2.5e1\r\n[router]\r\nlisten = \"127.0.0.1:0\"",
                             "crlf.toml", &cfg, &err);
    EXPECT_MSG(st == DP_OK, "%s", err.msg);
    EXPECT_NEAR(cfg.control.time_scale, 25, 0);
    EXPECT_STREQ(cfg.router.listen, "127.0.0.1:0");
    st = deploy_config_parse("[control]\nregistry = [\n  \"a\", # one\n  \"b\",\n]\n", "arr.toml", &cfg, &err);
    EXPECT(st == DP_ERR_INVAL && strstr(err.msg, "arr.toml:2: control.registry: expected a string, got an array"));
    /* a bad file on disk names its base name */
    st = deploy_config_load(DP_TEST_DATA "/deploy/bad_price.toml", &cfg, &err);
    EXPECT(st == DP_ERR_INVAL);
    EXPECT_MSG(strstr(err.msg, "bad_price.toml:5: targets[1].price_per_gpu_hour: expected a number "
                               ">= 0, got \"abc\""),
               "%s", err.msg);
}

// ---- local executor ----

static DeployTarget local_target(const char *cpu_set) {
    DeployTarget t;
    deploy_target_defaults(&t);
    snprintf(t.name, sizeof t.name, "local");
    snprintf(t.service_url, sizeof t.service_url, "http://127.0.0.1:1");
    if (cpu_set) snprintf(t.cpu_set, sizeof t.cpu_set, "%s", cpu_set);
    return t;
}

static void test_local_jobs(void) {
    make_tmpdir();
    DpError err = {0};
    DeployTarget t = local_target(NULL);
    DeployExecutor *ex = deploy_executor_create(&t, &err);
    REQUIRE(ex);
    DeployJobResult res;

    const char *ok_argv[] = {"sh", "-c", "echo hello from the job", NULL};
    DeployRunSpec spec = {.name = "job-ok", .argv = ok_argv, .time_limit_s = 10, .log_dir = tmpdir};
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_OK);
    EXPECT_EQ_INT(res.exit_code, 0);
    char *log = slurp(res.log_path);
    EXPECT(log && strstr(log, "hello from the job"));
    free(log);

    const char *fail_argv[] = {"sh", "-c", "echo failing >&2; exit 3", NULL};
    spec.name = "job-fail";
    spec.argv = fail_argv;
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_FAILED);
    EXPECT_EQ_INT(res.exit_code, 3);
    EXPECT_STREQ(res.reason, "exit code 3");
    log = slurp(res.log_path);
    EXPECT(log && strstr(log, "failing"));
    free(log);

    /* hangs: killed at its time limit by SIGTERM */
    const char *hang_argv[] = {"sleep", "30", NULL};
    spec.name = "job-hang";
    spec.argv = hang_argv;
    spec.time_limit_s = 0.4;
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_TIMEOUT);
    EXPECT_EQ_INT(res.signal, SIGTERM);
    EXPECT_MSG(res.duration_s >= 0.4 && res.duration_s < 3.0, "%g", res.duration_s);
    EXPECT(strstr(res.reason, "time limit 0.4s exceeded"));

    /* ignores SIGTERM (and so does its child): SIGKILL after the grace period */
    const char *stubborn_argv[] = {"sh", "-c", "trap '' TERM; sleep 30", NULL};
    spec.name = "job-stubborn";
    spec.argv = stubborn_argv;
    spec.time_limit_s = 0.3;
    spec.grace_s = 0.3;
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_TIMEOUT);
    EXPECT_EQ_INT(res.signal, SIGKILL);
    EXPECT(strstr(res.reason, "SIGKILL"));
    EXPECT_MSG(res.duration_s >= 0.6 && res.duration_s < 3.0, "%g", res.duration_s);

    /* dies by a signal we did not send */
    const char *sig_argv[] = {"sh", "-c", "kill -9 $$", NULL};
    spec.name = "job-killed";
    spec.argv = sig_argv;
    spec.time_limit_s = 10;
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_KILLED);
    EXPECT_EQ_INT(res.signal, 9);

    /* a program that does not exist is a failed job with the reason */
    const char *none_argv[] = {"/nonexistent/driftpilot-nope", NULL};
    spec.name = "job-noexec";
    spec.argv = none_argv;
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_FAILED);
    EXPECT_MSG(strstr(res.reason, "No such file"), "%s", res.reason);

    /* bad names are refused before anything runs */
    spec.name = "Bad Name";
    EXPECT(deploy_executor_run_job(ex, &spec, &res, &err) == DP_ERR_INVAL);
    deploy_executor_destroy(ex);
}

static int read_status_field(pid_t pid, const char *field, char *out, size_t cap) {
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, field, strlen(field)) && line[strlen(field)] == ':') {
            char *v = line + strlen(field) + 1;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(out, cap, "%s", v);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

static void test_local_limits(void) {
    make_tmpdir();
    DpError err = {0};
    cpu_set_t mine;
    REQUIRE(sched_getaffinity(0, sizeof mine, &mine) == 0);
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &mine)) last = c;
    REQUIRE(last >= 0);
    char set[16];
    snprintf(set, sizeof set, "%d", last);
    DeployTarget t = local_target(set);
    t.memory_mb = 512;
    t.nice = 3;
    DeployExecutor *ex = deploy_executor_create(&t, &err);
    REQUIRE(ex);
    EXPECT(strstr(deploy_executor_limits(ex), "sched_setaffinity"));
    EXPECT(strstr(deploy_executor_limits(ex), "RLIMIT_AS 512 MiB"));
    const char *argv[] = {"sleep", "20", NULL};
    DeployRunSpec spec = {.name = "svc-limits", .argv = argv, .log_dir = tmpdir};
    DeployService svc;
    REQUIRE(deploy_executor_start_service(ex, &spec, &svc, &err) == DP_OK);
    REQUIRE(svc.pid > 0);
    /* The child sets its limits between fork and exec; wait for the exec. */
    char comm[64] = "";
    for (int i = 0; i < 200; i++) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/comm", (int)svc.pid);
        char *c = slurp(p);
        if (c && !strncmp(c, "sleep", 5)) {
            snprintf(comm, sizeof comm, "%s", c);
            free(c);
            break;
        }
        free(c);
        dp_sleep(0.01);
    }
    EXPECT(!strncmp(comm, "sleep", 5));
    char v[128] = "";
    EXPECT(read_status_field(svc.pid, "Cpus_allowed_list", v, sizeof v));
    EXPECT_STREQ(v, set);
    char limpath[64];
    snprintf(limpath, sizeof limpath, "/proc/%d/limits", (int)svc.pid);
    char *lim = slurp(limpath);
    EXPECT_MSG(lim && strstr(lim, "Max address space         536870912"), "%s", lim ? lim : "");
    free(lim);
    errno = 0;
    int nicev = getpriority(PRIO_PROCESS, (id_t)svc.pid);
    EXPECT_EQ_INT(nicev, 3);
    DeployJobResult res;
    double t0 = dp_time_mono();
    REQUIRE(deploy_executor_stop_service(ex, &svc, 2.0, &res, &err) == DP_OK);
    EXPECT(dp_time_mono() - t0 < 1.5);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_OK);
    EXPECT_EQ_INT(res.signal, SIGTERM);
    EXPECT(kill(svc.pid, 0) != 0 || svc.pid == 0);
    deploy_executor_destroy(ex);

    /* cpu_quota: cgroup v2 where writable, else a stated fallback */
    DeployTarget q = local_target(NULL);
    q.cpu_quota = 0.5;
    ex = deploy_executor_create(&q, &err);
    REQUIRE(ex);
    const char *l = deploy_executor_limits(ex);
    EXPECT_MSG(strstr(l, "cpu.max 0.5 CPUs") || strstr(l, "fell back to affinity to 1 CPU(s)"),
               "%s", l);
    fprintf(stderr, "  cpu_quota limits applied here: %s\n", l);
    deploy_executor_destroy(ex);
}

// ---- ssh ----

static void test_ssh_argv(void) {
    DeployTarget t;
    deploy_target_defaults(&t);
    snprintf(t.name, sizeof t.name, "lab");
    t.executor = DEPLOY_EXEC_SSH;
    snprintf(t.host, sizeof t.host, "gpu1.lab.example");
    snprintf(t.user, sizeof t.user, "dp");
    t.port = 2222;
    snprintf(t.identity_file, sizeof t.identity_file, "/keys/id ed");
    snprintf(t.workdir, sizeof t.workdir, "/srv/drift pilot");
    const char *argv[] = {"driftpilot", "train", "--note", "it's a \"test\"", "$(rm -rf /)", NULL};
    char **out = NULL;
    DpError err = {0};
    REQUIRE(deploy_ssh_argv(&t, argv, &out, &err) == DP_OK);
    const char *want[] = {"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o",
                          "ServerAliveInterval=15", "-p", "2222", "-i", "/keys/id ed", "-o",
                          "IdentitiesOnly=yes", "--", "dp@gpu1.lab.example",
                          "exec 3<&0 && cd '/srv/drift pilot' && { 'driftpilot' 'train' '--note' "
                          "'it'\\''s a \"test\"' '$(rm -rf /)' </dev/null 3<&- & p=$!; "
                          "{ cat <&3 >/dev/null 2>&1 3<&-; kill -TERM $p 2>/dev/null; } & w=$!; "
                          "exec 3<&-; wait $p; s=$?; kill $w 2>/dev/null; exit $s; }",
                          NULL};
    int n = 0;
    while (out[n]) n++;
    int nw = 0;
    while (want[nw]) nw++;
    EXPECT_EQ_INT(n, nw);
    for (int i = 0; i < n && i < nw; i++) EXPECT_STREQ(out[i], want[i]);
    deploy_argv_free(out);

    t.host[0] = '-';
    EXPECT(deploy_ssh_argv(&t, argv, &out, &err) == DP_ERR_INVAL);
}

/* End to end through a real shell: a fake "ssh" that runs the remote command
 * string with sh -c, exactly as sshd hands it to the user's shell. */
static void test_ssh_quoting_through_shell(void) {
    make_tmpdir();
    char fake[300];
    snprintf(fake, sizeof fake, "%s/fake-ssh", tmpdir);
    const char *script = "#!/bin/sh\n"
                         "while [ \"$1\" != \"--\" ]; do shift; done\n"
                         "shift; shift\n"
                         "exec sh -c \"$1\"\n";
    DpError err = {0};
    REQUIRE(dp_write_file_atomic(fake, script, strlen(script), &err) == DP_OK);
    chmod(fake, 0755);
    DeployTarget t;
    deploy_target_defaults(&t);
    snprintf(t.name, sizeof t.name, "remote");
    t.executor = DEPLOY_EXEC_SSH;
    snprintf(t.host, sizeof t.host, "nowhere.invalid");
    snprintf(t.ssh_command, sizeof t.ssh_command, "%s", fake);
    snprintf(t.service_url, sizeof t.service_url, "http://127.0.0.1:1");
    DeployExecutor *ex = deploy_executor_create(&t, &err);
    REQUIRE(ex);
    const char *argv[] = {"printf", "[%s]", "a b", "it's", "\"q\"", "$HOME", "`id`", "x;y", "", NULL};
    DeployRunSpec spec = {.name = "ssh-quote", .argv = argv, .time_limit_s = 10, .log_dir = tmpdir};
    DeployJobResult res;
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_OK);
    char *log = slurp(res.log_path);
    EXPECT_STREQ(log, "[a b][it's][\"q\"][$HOME][`id`][x;y][]");
    free(log);
    deploy_executor_destroy(ex);
}

/* Remote processes whose command line contains needle (this machine's
 * /proc: the sshd of scripts/ssh-localhost.sh runs on 127.0.0.1). */
static int count_processes(const char *needle) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "pgrep -f -c -- '%s' 2>/dev/null", needle);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    int n = -1;
    if (fscanf(p, "%d", &n) != 1) n = -1;
    pclose(p);
    return n;
}

/* Polls until count_processes(needle) == want or timeout_s passes; the count. */
static int wait_count(const char *needle, int want, double timeout_s) {
    double end = dp_time_mono() + timeout_s;
    int n;
    while ((n = count_processes(needle)) != want && dp_time_mono() < end) dp_sleep(0.1);
    return n;
}

/* Against a real OpenSSH server: set up by scripts/ssh-localhost.sh, which
 * passes DP_TEST_SSH_{HOST,PORT,USER,KEY,COMMAND}; skipped (and counted as
 * skipped, not passed) without them. */
static void test_ssh_real_sshd(void) {
    const char *host = getenv("DP_TEST_SSH_HOST"), *port = getenv("DP_TEST_SSH_PORT");
    const char *user = getenv("DP_TEST_SSH_USER"), *key = getenv("DP_TEST_SSH_KEY");
    const char *sshc = getenv("DP_TEST_SSH_COMMAND");
    if (!host || !port || !key) TEST_SKIP("no sshd: run scripts/ssh-localhost.sh");
    make_tmpdir();
    DeployTarget t;
    deploy_target_defaults(&t);
    snprintf(t.name, sizeof t.name, "sshhost");
    t.executor = DEPLOY_EXEC_SSH;
    snprintf(t.host, sizeof t.host, "%s", host);
    t.port = atoi(port);
    if (user) snprintf(t.user, sizeof t.user, "%s", user);
    snprintf(t.identity_file, sizeof t.identity_file, "%s", key);
    if (sshc) snprintf(t.ssh_command, sizeof t.ssh_command, "%s", sshc);
    snprintf(t.workdir, sizeof t.workdir, "%s", tmpdir);
    DpError err = {0};
    DeployExecutor *ex = deploy_executor_create(&t, &err);
    REQUIRE(ex);
    DeployJobResult res;

    /* awkward words arrive intact, in the remote workdir */
    const char *q[] = {"sh", "-c", "printf '[%s]' \"$PWD\" \"$@\"", "sh", "a b", "it's", "$HOME", "`id`",
                       "x;y", "", NULL};
    DeployRunSpec spec = {.name = "ssh-real-quote", .argv = q, .time_limit_s = 20, .log_dir = tmpdir};
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_MSG(res.status == DEPLOY_JOB_OK, "%s", res.reason);
    char *log = slurp(res.log_path);
    char want[600];
    snprintf(want, sizeof want, "[%s][a b][it's][$HOME][`id`][x;y][]", tmpdir);
    EXPECT_MSG(log && strstr(log, want) != NULL, "log: %s", log ? log : "(none)");
    free(log);

    /* the remote exit code comes back */
    const char *fail[] = {"sh", "-c", "exit 3", NULL};
    spec = (DeployRunSpec){.name = "ssh-real-fail", .argv = fail, .time_limit_s = 20, .log_dir = tmpdir};
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_FAILED);
    EXPECT_EQ_INT(res.exit_code, 3);

    /* a time limit ends the job there too: the remote watcher sees the
     * session end and stops it */
    const char *slow[] = {"sleep", "37.25", NULL};
    spec = (DeployRunSpec){.name = "ssh-real-slow", .argv = slow, .time_limit_s = 2, .log_dir = tmpdir};
    double t0 = dp_time_mono();
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_TIMEOUT);
    EXPECT(dp_time_mono() - t0 < 10);
    EXPECT_EQ_INT(wait_count("^sleep 37.25", 0, 5), 0);

    /* a service: started over ssh, healthy, stopped */
    char url[64];
    int sp = 20000 + (int)(getpid() % 20000);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", sp);
    snprintf(t.service_url, sizeof t.service_url, "%s", url);
    deploy_executor_destroy(ex);
    ex = deploy_executor_create(&t, &err);
    REQUIRE(ex);
    char listen[32], model[600];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", sp);
    snprintf(model, sizeof model, "%s/model", tmpdir);
    char pre[1024];
    snprintf(pre, sizeof pre,
             "%s pretrain --out %s --steps 5 --services 4 --layers 1 --heads 2 --width 32 "
             "--positions 64 --vocab 2000 --eval-n 4 --batch 4 --quiet >/dev/null 2>&1",
             DP_BINARY, model);
    REQUIRE(system(pre) == 0);
    const char *srv[] = {DP_BINARY, "serve", "--model", model, "--listen", listen, NULL};
    spec = (DeployRunSpec){.name = "ssh-real-serve", .argv = srv, .log_dir = tmpdir};
    DeployService svc;
    REQUIRE(deploy_executor_start_service(ex, &spec, &svc, &err) == DP_OK);
    int healthy = 0;
    for (int i = 0; i < 100 && !healthy; i++) {
        healthy = deploy_executor_check_health(ex, 1.0);
        if (!healthy) dp_sleep(0.1);
    }
    EXPECT_MSG(healthy, "no /healthz on %s; log %s", url, svc.log_path);
    char needle[1400]; /* the service itself, not the shells around it */
    snprintf(needle, sizeof needle, "^%s serve --model %s --listen %s", DP_BINARY, model, listen);
    EXPECT_EQ_INT(count_processes(needle), 1);
    REQUIRE(deploy_executor_stop_service(ex, &svc, 5, &res, &err) == DP_OK);
    /* the remote service got SIGTERM and shut down gracefully */
    EXPECT_EQ_INT(wait_count(needle, 0, 10), 0);
    EXPECT(!deploy_executor_check_health(ex, 1.0));
    char *slog = slurp(svc.log_path);
    EXPECT_MSG(slog && strstr(slog, "stopp") != NULL, "service log: %s", slog ? slog : "(none)");
    free(slog);
    deploy_executor_destroy(ex);
}

// ---- kubernetes ----

static DeployTarget k8s_target(void) {
    DeployTarget t;
    deploy_target_defaults(&t);
    snprintf(t.name, sizeof t.name, "gke");
    t.executor = DEPLOY_EXEC_KUBERNETES;
    snprintf(t.service_url, sizeof t.service_url, "http://driftpilot-gke.mlops.svc:8080");
    snprintf(t.context, sizeof t.context, "gke_proj_europe-west4_ml");
    snprintf(t.k8s_namespace, sizeof t.k8s_namespace, "mlops");
    snprintf(t.image, sizeof t.image, "ghcr.io/example/driftpilot:0.1.0");
    snprintf(t.cpu_request, sizeof t.cpu_request, "2");
    snprintf(t.memory_limit, sizeof t.memory_limit, "8Gi");
    t.gpu_count = 1;
    return t;
}

/* A minimal structural check of the YAML we emit: indentation in steps of
 * two, every line a "key: value", "key:", "- item", "---" or comment, and a
 * child deeper than its "key:" parent. */
static int yaml_shape_ok(const char *y, char *why, size_t cap) {
    int line = 0, prev_ind = 0, prev_open = 0;
    for (const char *p = y; *p;) {
        line++;
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char l[512];
        snprintf(l, sizeof l, "%.*s", (int)n, p);
        p += n + (e ? 1 : 0);
        if (!l[0] || l[0] == '#' || !strcmp(l, "---")) {
            prev_open = 0;
            prev_ind = 0;
            continue;
        }
        int ind = 0;
        while (l[ind] == ' ') ind++;
        const char *body = l + ind;
        if (ind % 2) return snprintf(why, cap, "line %d: odd indent", line), 0;
        if (prev_open && ind <= prev_ind && strncmp(body, "- ", 2))
            return snprintf(why, cap, "line %d: empty mapping above", line), 0;
        if (!strncmp(body, "- ", 2)) body += 2;
        const char *colon = strstr(body, ": ");
        size_t bl = strlen(body);
        int opens = bl > 0 && body[bl - 1] == ':';
        if (!colon && !opens && body[0] != '"')
            return snprintf(why, cap, "line %d: not key: value: %s", line, l), 0;
        if (colon && colon[2] == '"' && body[bl - 1] != '"')
            return snprintf(why, cap, "line %d: unterminated quote", line), 0;
        prev_open = opens;
        prev_ind = ind;
    }
    return 1;
}

static void compare_golden(const char *got, const char *golden_path) {
    char *want = slurp(golden_path);
    if (!want || strcmp(want, got)) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s", tmpdir, strrchr(golden_path, '/') + 1);
        DpError e;
        dp_write_file_atomic(path, got, strlen(got), &e);
        fprintf(stderr, "  golden mismatch: %s vs %s (diff them; regenerate only on purpose)\n",
                golden_path, path);
    }
    EXPECT(want && !strcmp(want, got));
    free(want);
}

static void test_k8s_render(void) {
    make_tmpdir();
    DeployTarget t = k8s_target();
    const char *argv[] = {"driftpilot", "train", "--target", "gke", "--note", "say \"hi\": #1",
                          NULL};
    DpBuf job = DP_BUF_INIT, svc = DP_BUF_INIT;
    DpError err = {0};
    REQUIRE(deploy_k8s_render_job(&t, "retrain-gke-7", argv, 1800, &job, &err) == DP_OK);
    const char *sargv[] = {"driftpilot", "serve", "--listen", "0.0.0.0:8080", NULL};
    REQUIRE(deploy_k8s_render_service(&t, "serve-gke", sargv, &svc, &err) == DP_OK);
    char why[200] = "";
    EXPECT_MSG(yaml_shape_ok(job.data, why, sizeof why), "%s", why);
    EXPECT_MSG(yaml_shape_ok(svc.data, why, sizeof why), "%s", why);
    EXPECT(strstr(job.data, "activeDeadlineSeconds: 1800\n"));
    EXPECT(strstr(job.data, "- \"say \\\"hi\\\": #1\"\n"));
    EXPECT(strstr(job.data, "nvidia.com/gpu: 1\n"));
    EXPECT(strstr(svc.data, "containerPort: 8080\n"));
    EXPECT(strstr(svc.data, "\n---\napiVersion: v1\nkind: Service\n"));
    compare_golden(job.data, DP_TEST_DATA "/deploy/k8s_job.yaml");
    compare_golden(svc.data, DP_TEST_DATA "/deploy/k8s_service.yaml");
    /* the examples shipped for users are the same renderer's output */
    const char *eargv[] = {"driftpilot", "train", "--target", "gke", NULL};
    DpBuf ejob = DP_BUF_INIT;
    REQUIRE(deploy_k8s_render_job(&t, "retrain-gke-1", eargv, 3600, &ejob, &err) == DP_OK);
    compare_golden(ejob.data, DP_SOURCE_DIR "/deploy/k8s/retrain-job.yaml");
    compare_golden(svc.data, DP_SOURCE_DIR "/deploy/k8s/serve.yaml");
    dp_buf_free(&ejob);
    dp_buf_free(&job);
    dp_buf_free(&svc);
    DpBuf b = DP_BUF_INIT;
    EXPECT(deploy_k8s_render_job(&t, "Bad_Name", argv, 10, &b, &err) == DP_ERR_INVAL);
    t.image[0] = 0;
    EXPECT(deploy_k8s_render_job(&t, "ok", argv, 10, &b, &err) == DP_ERR_INVAL);
    dp_buf_free(&b);
}

/* The kubernetes executor drives kubectl; with a fake kubectl that records
 * its arguments and stdin we check what would be sent to a cluster. */
static void test_k8s_executor_fake_kubectl(void) {
    make_tmpdir();
    char fake[300], script[1024];
    snprintf(fake, sizeof fake, "%s/fake-kubectl", tmpdir);
    snprintf(script, sizeof script,
             "#!/bin/sh\necho \"$*\" >> %s/kubectl.args\n"
             "case \"$*\" in *apply*) cat > %s/kubectl.stdin;; esac\nexit 0\n",
             tmpdir, tmpdir);
    DpError err = {0};
    REQUIRE(dp_write_file_atomic(fake, script, strlen(script), &err) == DP_OK);
    chmod(fake, 0755);
    DeployTarget t = k8s_target();
    snprintf(t.kubectl, sizeof t.kubectl, "%s", fake);
    DeployExecutor *ex = deploy_executor_create(&t, &err);
    REQUIRE(ex);
    const char *argv[] = {"driftpilot", "train", NULL};
    DeployRunSpec spec = {.name = "retrain-1", .argv = argv, .time_limit_s = 60, .log_dir = tmpdir};
    DeployJobResult res;
    REQUIRE(deploy_executor_run_job(ex, &spec, &res, &err) == DP_OK);
    EXPECT_MSG(res.status == DEPLOY_JOB_OK, "%s", res.reason);
    char p[400];
    snprintf(p, sizeof p, "%s/kubectl.args", tmpdir);
    char *args = slurp(p);
    EXPECT_MSG(args && strstr(args, "--context gke_proj_europe-west4_ml --namespace mlops apply -f -\n"),
               "%s", args ? args : "");
    EXPECT(args && strstr(args, "wait --for=condition=complete --timeout=90s job/retrain-1\n"));
    free(args);
    snprintf(p, sizeof p, "%s/kubectl.stdin", tmpdir);
    char *in = slurp(p);
    EXPECT(in && strstr(in, "kind: Job\n") && strstr(in, "name: \"retrain-1\""));
    free(in);
    deploy_executor_destroy(ex);
}

// ---- router ----

typedef struct {
    const char *name;
    int fd;
    int port;
    atomic_int stop;
    atomic_int n_predict;
    atomic_int n_feedback;
    pthread_t th;
} FakeBackend;

static void serve_conn(FakeBackend *b, int c) {
    char buf[8192];
    size_t n = 0;
    double deadline = dp_time_mono() + 2;
    char *hend = NULL;
    while (dp_time_mono() < deadline && n < sizeof buf - 1) {
        struct pollfd pf = {c, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t r = recv(c, buf + n, sizeof buf - 1 - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
        buf[n] = 0;
        if (!hend) hend = strstr(buf, "\r\n\r\n");
        if (hend) {
            char *cl = strcasestr(buf, "Content-Length:");
            size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
            if (n >= (size_t)(hend + 4 - buf) + want) break;
        }
    }
    char body[256];
    int code = 200;
    if (!strncmp(buf, "POST /predict ", 14)) {
        atomic_fetch_add(&b->n_predict, 1);
        snprintf(body, sizeof body, "{\"answer\":\"42\",\"backend\":\"%s\"}", b->name);
    } else if (!strncmp(buf, "POST /feedback ", 15)) {
        atomic_fetch_add(&b->n_feedback, 1);
        snprintf(body, sizeof body, "{\"ok\":true}");
    } else if (!strncmp(buf, "GET /healthz ", 13)) {
        snprintf(body, sizeof body, "{\"status\":\"ok\"}");
    } else {
        code = 404;
        snprintf(body, sizeof body, "{\"error\":\"no\"}");
    }
    char resp[512];
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s",
                       code, strlen(body), body);
    if (send(c, resp, (size_t)len, MSG_NOSIGNAL) < 0) {
    }
}

static void *backend_main(void *arg) {
    FakeBackend *b = arg;
    while (!atomic_load(&b->stop)) {
        struct pollfd pf = {b->fd, POLLIN, 0};
        if (poll(&pf, 1, 20) <= 0) continue;
        int c = accept(b->fd, NULL, NULL);
        if (c < 0) continue;
        serve_conn(b, c);
        close(c);
    }
    close(b->fd);
    return NULL;
}

static int backend_start(FakeBackend *b, const char *name) {
    memset(b, 0, sizeof *b);
    b->name = name;
    b->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (b->fd < 0 || bind(b->fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(b->fd, 64) != 0 ||
        getsockname(b->fd, (struct sockaddr *)&sa, &sl) != 0)
        return 0;
    b->port = ntohs(sa.sin_port);
    return pthread_create(&b->th, NULL, backend_main, b) == 0;
}

static void backend_kill(FakeBackend *b) {
    if (atomic_exchange(&b->stop, 1)) return;
    pthread_join(b->th, NULL);
}

static int post(int port, const char *path, const char *headers, const char *body, char **out,
                double *secs) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    int code = 0;
    DpError e;
    double t0 = dp_time_mono();
    *out = NULL;
    DpStatus st = metrics_http_request("POST", url, headers, body, strlen(body), 5, out, NULL,
                                       &code, &e);
    if (secs) *secs = dp_time_mono() - t0;
    return st == DP_OK ? code : -1;
}

static int get(int port, const char *path, char **out) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    int code = 0;
    DpError e;
    return metrics_http_get(url, 5, out, NULL, &code, &e) == DP_OK ? code : -1;
}

static double metric_in(const char *text, const char *name, const char *const *kv, int n_pairs) {
    MetricsParsed p = {0};
    DpError e;
    double v = NAN;
    if (metrics_parse(text, strlen(text), &p, &e) == DP_OK) {
        const MetricSample *s = metrics_parsed_find(&p, name, kv, n_pairs);
        if (s) v = s->value;
    }
    metrics_parsed_free(&p);
    return v;
}

static void test_router(void) {
    FakeBackend a, b;
    REQUIRE(backend_start(&a, "a"));
    REQUIRE(backend_start(&b, "b"));
    RouterConfig rc;
    router_config_defaults(&rc);
    DpError err = {0};
    char spec[128];
    /* the executors' health check against the same fake backend */
    DeployTarget ht = local_target(NULL);
    snprintf(ht.service_url, sizeof ht.service_url, "http://127.0.0.1:%d/", a.port);
    DeployExecutor *hx = deploy_executor_create(&ht, &err);
    REQUIRE(hx);
    EXPECT_EQ_INT(deploy_executor_check_health(hx, 1.0), 1);
    deploy_executor_destroy(hx);
    snprintf(ht.service_url, sizeof ht.service_url, "http://127.0.0.1:9");
    hx = deploy_executor_create(&ht, &err);
    REQUIRE(hx);
    EXPECT_EQ_INT(deploy_executor_check_health(hx, 0.5), 0);
    deploy_executor_destroy(hx);
    snprintf(spec, sizeof spec, "a=http://127.0.0.1:%d", a.port);
    REQUIRE(router_config_add_target(&rc, spec, &err) == DP_OK);
    snprintf(spec, sizeof spec, "b=http://127.0.0.1:%d/,80", b.port);
    REQUIRE(router_config_add_target(&rc, spec, &err) == DP_OK);
    EXPECT_NEAR(rc.targets[1].distance_ms, 80, 0);
    EXPECT(router_config_add_target(&rc, "c=http://x:1,abc", &err) == DP_ERR_INVAL);
    EXPECT(router_config_add_target(&rc, "a=http://x:1", &err) == DP_ERR_INVAL);
    rc.emulate_distance = 1;
    rc.health_interval_s = 0.1;
    rc.health_timeout_s = 0.3;
    rc.forward_timeout_s = 2;
    rc.max_body_bytes = 1024;
    snprintf(rc.admin_token, sizeof rc.admin_token, "s3cret");
    Router *r = router_create(&rc, &err);
    REQUIRE(r);
    REQUIRE(router_start(r, &err) == DP_OK);
    int port = router_port(r);
    REQUIRE(port > 0);
    const char *json = "Content-Type: application/json\r\n";
    char *body = NULL;
    double secs = 0;

    /* forwards to the active target (the first), without delay for a */
    EXPECT_EQ_INT(post(port, "/predict", json, "{\"question\":\"q\"}", &body, &secs), 200);
    EXPECT(body && strstr(body, "\"backend\":\"a\""));
    free(body);
    EXPECT_EQ_INT(post(port, "/feedback", json, "{\"id\":1}", &body, NULL), 200);
    free(body);
    EXPECT_EQ_INT(atomic_load(&a.n_predict), 1);
    EXPECT_EQ_INT(atomic_load(&a.n_feedback), 1);

    /* admin: 401 without or with a wrong token, 400 on bad input, 200 switches */
    const char *route_b = "{\"target\":\"b\"}";
    EXPECT_EQ_INT(post(port, "/admin/route", json, route_b, &body, NULL), 401);
    EXPECT(body && strstr(body, "missing bearer token"));
    free(body);
    EXPECT_EQ_INT(post(port, "/admin/route", "Authorization: Bearer nope\r\n", route_b, &body, NULL),
                  401);
    free(body);
    const char *auth = "Authorization: Bearer s3cret\r\nContent-Type: application/json\r\n";
    EXPECT_EQ_INT(post(port, "/admin/route", auth, "{\"target\":\"zz\"}", &body, NULL), 400);
    EXPECT(body && strstr(body, "unknown target"));
    free(body);
    EXPECT_EQ_INT(post(port, "/admin/route", auth, "not json", &body, NULL), 400);
    free(body);
    EXPECT_EQ_INT(post(port, "/admin/route", auth, route_b, &body, NULL), 200);
    EXPECT(body && strstr(body, "\"active\":\"b\"") && strstr(body, "\"previous\":\"a\""));
    free(body);
    char act[64];
    router_active(r, act, sizeof act);
    EXPECT_STREQ(act, "b");

    /* b is 80 ms away: emulation adds at least that */
    EXPECT_EQ_INT(post(port, "/predict", json, "{\"question\":\"q\"}", &body, &secs), 200);
    EXPECT(body && strstr(body, "\"backend\":\"b\""));
    EXPECT_MSG(secs >= 0.080, "%g s", secs);
    free(body);

    /* bad requests */
    EXPECT_EQ_INT(get(port, "/nope", &body), 404);
    EXPECT(body && strstr(body, "no route GET /nope"));
    free(body);
    EXPECT_EQ_INT(get(port, "/predict", &body), 405);
    free(body);
    char big[2048];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    EXPECT_EQ_INT(post(port, "/predict", json, big, &body, NULL), 413);
    EXPECT(body && strstr(body, "over the limit of 1024 bytes"));
    free(body);

    /* kill b (the active one): every /predict still succeeds, on a */
    backend_kill(&b);
    int failed = 0;
    for (int i = 0; i < 8; i++) {
        int code = post(port, "/predict", json, "{\"question\":\"q\"}", &body, NULL);
        if (code != 200 || !body || !strstr(body, "\"backend\":\"a\"")) failed++;
        free(body);
    }
    EXPECT_EQ_INT(failed, 0);
    router_active(r, act, sizeof act);
    EXPECT_STREQ(act, "a");
    EXPECT_NEAR(router_failovers(r), 1, 0);
    dp_sleep(0.3); /* the health thread sees b down too */

    EXPECT_EQ_INT(get(port, "/healthz", &body), 200);
    EXPECT(body && strstr(body, "\"active\":\"a\"") && strstr(body, "\"healthy_targets\":1"));
    free(body);

    EXPECT_EQ_INT(get(port, "/metrics", &body), 200);
    REQUIRE(body);
    const char *kv_a200[] = {"route", "/predict", "target", "a", "code", "200"};
    const char *kv_b200[] = {"route", "/predict", "target", "b", "code", "200"};
    const char *kv_b502[] = {"route", "/predict", "target", "b", "code", "502"};
    const char *kv_adm401[] = {"route", "/admin/route", "code", "401"};
    const char *kv_a[] = {"target", "a"};
    const char *kv_b[] = {"target", "b"};
    EXPECT_NEAR(metric_in(body, "router_requests_total", kv_a200, 3), 9, 0);
    EXPECT_NEAR(metric_in(body, "router_requests_total", kv_b200, 3), 1, 0);
    /* 1 when the forward found b dead first; absent when the health thread did */
    double b502 = metric_in(body, "router_requests_total", kv_b502, 3);
    EXPECT_MSG(isnan(b502) || b502 == 1, "%g", b502);
    EXPECT_NEAR(metric_in(body, "router_requests_total", kv_adm401, 2), 2, 0);
    EXPECT_NEAR(metric_in(body, "router_failovers_total", NULL, 0), 1, 0);
    EXPECT_NEAR(metric_in(body, "router_active_target", kv_a, 1), 1, 0);
    EXPECT_NEAR(metric_in(body, "router_active_target", kv_b, 1), 0, 0);
    EXPECT_NEAR(metric_in(body, "router_target_up", kv_b, 1), 0, 0);
    EXPECT(metric_in(body, "router_forward_duration_seconds_count", kv_a, 1) >= 9);
    EXPECT(metric_in(body, "router_forward_duration_seconds_sum", kv_b, 1) >= 0.08);
    EXPECT(metric_in(body, "process_resident_memory_bytes", NULL, 0) > 0);
    free(body);

    /* kill a too: nothing healthy, 5xx with a JSON error, and the router stays up */
    backend_kill(&a);
    int code = post(port, "/predict", json, "{}", &body, NULL);
    EXPECT_MSG(code == 502 || code == 503, "%d", code);
    EXPECT(body && strstr(body, "\"error\""));
    free(body);
    dp_sleep(0.3);
    EXPECT_EQ_INT(get(port, "/healthz", &body), 503);
    free(body);

    router_stop(r);
    router_stop(r);
    router_destroy(r);
    router_destroy(NULL);
}

static void test_router_admin_disabled(void) {
    RouterConfig rc;
    router_config_defaults(&rc);
    DpError err = {0};
    REQUIRE(router_config_add_target(&rc, "a=http://127.0.0.1:9", &err) == DP_OK);
    rc.health_interval_s = 0;
    Router *r = router_create(&rc, &err);
    REQUIRE(r);
    REQUIRE(router_start(r, &err) == DP_OK);
    char *body = NULL;
    EXPECT_EQ_INT(post(router_port(r), "/admin/route", "Authorization: Bearer x\r\n",
                       "{\"target\":\"a\"}", &body, NULL),
                  403);
    free(body);
    router_destroy(r);
    snprintf(rc.active, sizeof rc.active, "zz");
    EXPECT(router_create(&rc, &err) == NULL);
}

/* The driftpilot binary's router, started and stopped (SIGTERM) by the local
 * executor: it serves, and exits 0 on SIGTERM. */
static void test_router_binary(void) {
    REQUIRE_BINARY(DP_BINARY);
    make_tmpdir();
    FakeBackend a;
    REQUIRE(backend_start(&a, "a"));
    char portfile[300], tgt[128];
    snprintf(portfile, sizeof portfile, "%s/router.port", tmpdir);
    snprintf(tgt, sizeof tgt, "a=http://127.0.0.1:%d,5", a.port);
    const char *argv[] = {DP_BINARY, "router", "--listen", "127.0.0.1:0", "--port-file", portfile,
                          "--target", tgt, "--health-interval", "200ms", "--emulate-distance",
                          NULL};
    DpError err = {0};
    DeployTarget t = local_target(NULL);
    DeployExecutor *ex = deploy_executor_create(&t, &err);
    REQUIRE(ex);
    DeployRunSpec spec = {.name = "router-cli", .argv = argv, .log_dir = tmpdir};
    DeployService svc;
    REQUIRE(deploy_executor_start_service(ex, &spec, &svc, &err) == DP_OK);
    char *port_text = NULL;
    for (int i = 0; i < 500 && !port_text; i++) {
        port_text = slurp(portfile);
        if (!port_text) dp_sleep(0.01);
    }
    EXPECT(port_text != NULL);
    if (port_text) {
        char *body = NULL;
        EXPECT_EQ_INT(post(atoi(port_text), "/predict", "", "{\"question\":\"q\"}", &body, NULL), 200);
        EXPECT(body && strstr(body, "\"backend\":\"a\""));
        free(body);
        free(port_text);
    }
    DeployJobResult res;
    REQUIRE(deploy_executor_stop_service(ex, &svc, 5.0, &res, &err) == DP_OK);
    EXPECT_EQ_INT(res.status, DEPLOY_JOB_OK);
    EXPECT_MSG(res.exit_code == 0, "%s", res.reason); /* graceful: sigwait, stop, exit 0 */
    char *log = slurp(svc.log_path[0] ? svc.log_path : res.log_path);
    EXPECT(log && strstr(log, "SIGTERM, stopping"));
    free(log);
    deploy_executor_destroy(ex);
    backend_kill(&a);
}

TEST_MAIN(TEST_CASE(test_config_good), TEST_CASE(test_config_example_ships),
          TEST_CASE(test_config_bad), TEST_CASE(test_local_jobs), TEST_CASE(test_local_limits),
          TEST_CASE(test_ssh_argv), TEST_CASE(test_ssh_quoting_through_shell),
          TEST_CASE(test_ssh_real_sshd),
          TEST_CASE(test_k8s_render), TEST_CASE(test_k8s_executor_fake_kubectl),
          TEST_CASE(test_router), TEST_CASE(test_router_admin_disabled), TEST_CASE(test_router_binary))
