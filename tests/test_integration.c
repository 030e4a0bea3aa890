/* Integration test of the whole loop through `driftpilot experiment`: a
 * one-minute live experiment (two pipelines, tiny model, low rate) whose
 * table is checked against the decisions and jobs recorded in the stores,
 * with every child process gone afterwards; an interrupted run (SIGINT)
 * that stops everything; and a run whose service cannot start, whose error
 * names the child and its log.  This process is a child subreaper while it
 * runs the experiment, so anything the experiment leaves behind would be
 * re-parented here and found. */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "store.h"

static char g_tmp[512];
static char g_simcfg[600];
static char g_model[600], g_policy[600], g_policy_pairs[600];
static int g_ready = 0;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs argv with stdout/stderr to files; returns the pid (not waited). */
static pid_t spawn(char *const argv[], const char *out_path, const char *err_path) {
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o >= 0) dup2(o, 1);
        if (e >= 0) dup2(e, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Waits up to timeout_s; returns the wait status, or -1 on timeout (then
 * the child is killed). */
static int wait_for(pid_t pid, double timeout_s) {
    double end = now_s() + timeout_s;
    int st = 0;
    while (now_s() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static int run_quiet(char *const argv[], double timeout_s) {
    char out[700], err[700];
    snprintf(out, sizeof out, "%s/setup.out", g_tmp);
    snprintf(err, sizeof err, "%s/setup.err", g_tmp);
    pid_t pid = spawn(argv, out, err);
    int st = wait_for(pid, timeout_s);
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Processes whose parent is this test (re-parented orphans included). */
static int count_children(void) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
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
        char *rp = strrchr(buf, ')');
        char state;
        long ppid;
        if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == getpid()) {
            fprintf(stderr, "  left-over child %ld (state %c)\n", pid, state);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Every pid listed in DIR/pids.txt is gone (ESRCH). */
static int live_listed_pids(const char *dir, int *listed) {
    char path[700];
    snprintf(path, sizeof path, "%s/pids.txt", dir);
    FILE *f = fopen(path, "r");
    *listed = 0;
    if (!f) return -1;
    int pid, alive = 0;
    char name[128];
    while (fscanf(f, "%d %127[^\n]", &pid, name) == 2) {
        (*listed)++;
        if (kill(pid, 0) == 0 || errno != ESRCH) {
            fprintf(stderr, "  %s (pid %d) still exists\n", name, pid);
            alive++;
        }
    }
    fclose(f);
    return alive;
}

static int file_contains(const char *path, const char *needle) {
    char *text = NULL;
    size_t len = 0;
    DpError err;
    if (dp_read_file(path, &text, &len, &err)) return 0;
    int found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

static int file_nonempty(const char *dir, const char *name) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    return stat(path, &sb) == 0 && sb.st_size > 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes the scratch directory at exit (kept with DP_KEEP_TMP=1). */
static void cleanup(void) {
    const char *keep = getenv("DP_KEEP_TMP");
    if (keep && *keep == '1') {
        fprintf(stderr, "kept %s\n", g_tmp);
        return;
    }
    if (g_tmp[0] && !strncmp(g_tmp, "/tmp/dp-integration-", 20))
        nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A tiny model and a quickly trained policy, once. */
static void setup(void) {
    if (g_ready) return;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/dp-integration-XXXXXX");
    if (!mkdtemp(g_tmp)) return;
    atexit(cleanup);
    snprintf(g_model, sizeof g_model, "%s/model", g_tmp);
    snprintf(g_policy, sizeof g_policy, "%s/ppo.bin", g_tmp);
    snprintf(g_policy_pairs, sizeof g_policy_pairs, "%s/ppo-pairs.bin", g_tmp);
    char *pre[] = {DP_BINARY, "pretrain", "--out", g_model, "--steps", "30", "--services", "8",
                   "--layers", "1", "--heads", "2", "--width", "32", "--positions", "64",
                   "--vocab", "2000", "--eval-n", "10", "--batch", "8", "--quiet", NULL};
    char *pol[] = {DP_BINARY, "sim", "train-policy", "--out", g_policy, "--steps", "20000", NULL};
    char *pol2[] = {DP_BINARY, "sim", "train-policy", "--out", g_policy_pairs, "--steps", "20000",
                    "--actions", "pairs", NULL};
    /* a simulator config file for experiment.sim_config (the defaults, as a
     * calibration would write them) */
    snprintf(g_simcfg, sizeof g_simcfg, "%s/sim.json", g_tmp);
    char *cal[] = {DP_BINARY, "sim", "calibrate", "--jobs", DP_TEST_DATA "/sim/jobs", "--out", g_simcfg, NULL};
    if (run_quiet(pre, 120) && run_quiet(pol, 120) && run_quiet(pol2, 120) && run_quiet(cal, 30))
        g_ready = 1;
}

/* extra: more lines for the [experiment] table ("" for none) */
static void write_config_extra(const char *path, const char *scenario, const char *duration,
                               const char *extra) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f,
            "[experiment]\n%s"
            "scenario = \"%s\"\n"
            "duration = \"%s\"\n"
            "scale = 60\n"
            "repeats = 1\n"
            "rate = 6\n"
            "pipelines = \"adaptive,static-15m\"\n"
            "feedback_fraction = 0.5\n"
            "feedback_delay = \"30s\"\n"
            "max_new_tokens = 4\n"
            "retrain_args = \"--quiet --epochs 1 --window 60 --replay 8 --min-steps 4 --canary-n 16 --batch 8\"\n"
            "sim_seeds = 2\n"
            "sim_config = \"%s\"\n"
            "stop_grace = \"10s\"\n"
            "health_timeout = \"90s\"\n\n"
            "[[targets]]\nname = \"aws\"\nretrain_cost = 0.045\n"
            "service_url = \"http://127.0.0.1:1\"\nnetwork_distance_ms = 5\n\n"
            "[[targets]]\nname = \"azure\"\nretrain_cost = 0.038\n"
            "service_url = \"http://127.0.0.1:2\"\nnetwork_distance_ms = 3\n\n"
            "[control]\ndecision_interval = \"60s\"\njob_time_limit = \"2m\"\n\n"
            "[router]\nactive = \"aws\"\nemulate_distance = true\n",
            extra, scenario, duration, g_simcfg);
    fclose(f);
}

static void write_config_scenario(const char *path, const char *scenario, const char *duration) {
    write_config_extra(path, scenario, duration, "");
}

static void write_config(const char *path, const char *duration) {
    write_config_scenario(path, "gradual", duration);
}

typedef struct {
    int jobs;
    double job_cost;
    int decisions;
} RunCounts;

static int on_job(const StoreJob *j, void *u) {
    RunCounts *c = u;
    if (j->kind && !strcmp(j->kind, "retrain")) c->jobs++;
    return 0;
}
static int on_cost(const StoreCost *k, void *u) {
    ((RunCounts *)u)->job_cost += k->amount;
    return 0;
}
static int on_decision(const StoreDecision *d, void *u) {
    (void)d;
    ((RunCounts *)u)->decisions++;
    return 0;
}

/* sim_calibrated.json's retrain speed per target is the simulator's work
 * (gpu_hours 0.1 = 360 s) over the mean scenario duration of the run's
 * successful retrains in jobs.csv (wall seconds x 60). */
static void check_calibration(const char *out) {
    char path[800];
    snprintf(path, sizeof path, "%s/jobs.csv", out);
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    char line[1024];
    double sum[2] = {0, 0};
    int n[2] = {0, 0};
    const char *names[2] = {"aws", "azure"};
    EXPECT(fgets(line, sizeof line, f) != NULL); /* header */
    while (fgets(line, sizeof line, f)) {
        char *fld[16];
        int nf = 0;
        for (char *p = line, *save = NULL; nf < 16 && (p = strtok_r(nf ? NULL : p, ",\n", &save));)
            fld[nf++] = p;
        if (nf < 12 || strcmp(fld[4], "retrain") || strcmp(fld[9], "ok")) continue;
        for (int k = 0; k < 2; k++)
            if (!strcmp(fld[5], names[k])) sum[k] += atof(fld[10]) * 60, n[k]++;
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/sim_calibrated.json", out);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    REQUIRE(root != NULL);
    json_t *targets = json_object_get(root, "targets");
    REQUIRE(json_array_size(targets) == 2);
    int fitted = 0;
    for (int k = 0; k < 2; k++) {
        json_t *t = json_array_get(targets, k);
        EXPECT_STREQ(json_string_value(json_object_get(t, "name")), names[k]);
        double speed = json_number_value(json_object_get(t, "speed"));
        /* without a successful job: the sim.json the run started from (fitted
         * from tests/data/sim/jobs: 1.5 / 0.8) */
        double want = n[k] ? 360.0 / (sum[k] / n[k]) : (k == 0 ? 1.5 : 0.8);
        EXPECT_MSG(fabs(speed - want) < 1e-9 * want, "%s: speed %g, want %g", names[k], speed, want);
        fitted += n[k] > 0;
    }
    EXPECT(fitted >= 1);
    json_decref(root);
}

/* The config, results, stdout and stderr paths of one experiment run
 * (each buffer 700 bytes). */
static void exp_paths(const char *tag, char *cfg, char *out, char *so, char *se) {
    snprintf(cfg, 700, "%s/exp-%s.toml", g_tmp, tag);
    snprintf(out, 700, "%s/results-%s", g_tmp, tag);
    snprintf(so, 700, "%s/%s.stdout", g_tmp, tag);
    snprintf(se, 700, "%s/%s.stderr", g_tmp, tag);
}

/* Every live case: the tiny model and policy, and this process as the
 * subreaper, so that anything the experiment leaves behind is counted. */
#define LIVE_CASE_BEGIN()                                        \
    do {                                                         \
        setup();                                                 \
        REQUIRE_BINARY(DP_BINARY);                               \
        REQUIRE(g_ready);                                        \
        REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0); \
    } while (0)

/* Runs an experiment to its end (300 s at most): it exits 0 and leaves no
 * child behind.  Returns 0 when it could not be waited for. */
static int run_to_end(char **argv, const char *so, const char *se, const char *what) {
    double t0 = now_s();
    pid_t pid = spawn(argv, so, se);
    int st = wait_for(pid, 300);
    fprintf(stderr, "  %s took %.1f s\n", what, now_s() - t0);
    if (st < 0) return 0;
    EXPECT_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d; see %s", st, se);
    EXPECT_EQ_INT(count_children(), 0);
    return 1;
}

static void test_one_minute_experiment(void) {
    LIVE_CASE_BEGIN();
    char cfg[700], out[700], so[700], se[700];
    exp_paths("minute", cfg, out, so, se);
    write_config(cfg, "1h");
    char *argv[] = {DP_BINARY, "experiment", "--config", cfg, "--model", g_model, "--policy",
                    g_policy, "--out", out, NULL};
    REQUIRE(run_to_end(argv, so, se, "experiment"));
    int listed = 0;
    EXPECT_EQ_INT(live_listed_pids(out, &listed), 0);
    /* 4 services, 2 routers, 2 controllers, the load generator, the simulator */
    EXPECT_EQ_INT(listed, 10);
    const char *files[] = {"results.md", "results.json", "report.html", "decisions.csv",
                           "jobs.csv", "costs.csv", "timeseries.csv", "sim_prediction.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        EXPECT_MSG(file_nonempty(out, files[i]), "%s/%s", out, files[i]);
    EXPECT(file_contains(so, "| adaptive |"));
    EXPECT(file_contains(so, "| static-15m |"));
    EXPECT(file_contains(so, "report: "));
    char want[800];
    snprintf(want, sizeof want, "simulator: config %s", g_simcfg);
    EXPECT_MSG(file_contains(so, want), "no '%s' in %s", want, so);
    check_calibration(out);

    /* The table against the stores. */
    char path[800];
    snprintf(path, sizeof path, "%s/results.json", out);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    REQUIRE(root != NULL);
    json_t *pipes = json_object_get(root, "pipelines");
    REQUIRE(json_is_array(pipes));
    EXPECT_EQ_INT(json_array_size(pipes), 2);
    int total_jobs = 0;
    for (size_t i = 0; i < json_array_size(pipes); i++) {
        json_t *p = json_array_get(pipes, i);
        const char *name = json_string_value(json_object_get(p, "pipeline"));
        json_t *runs = json_object_get(p, "runs");
        REQUIRE(name && json_is_array(runs) && json_array_size(runs) == 1);
        json_t *r = json_array_get(runs, 0);
        const char *store_path = json_string_value(json_object_get(r, "store"));
        const char *run_id = json_string_value(json_object_get(r, "run_id"));
        REQUIRE(store_path && run_id);
        Store *s = NULL;
        DpError err = {0};
        REQUIRE(store_open(store_path, &s, &err) == DP_OK);
        RunCounts c = {0};
        EXPECT(store_each_job(s, run_id, on_job, &c, &err) == DP_OK);
        EXPECT(store_each_cost(s, run_id, on_cost, &c, &err) == DP_OK);
        EXPECT(store_each_decision(s, run_id, on_decision, &c, &err) == DP_OK);
        store_close(s);
        double retrains = json_number_value(json_object_get(r, "retrains"));
        double cost = json_number_value(json_object_get(r, "cost"));
        fprintf(stderr, "  %s: %d decisions, %d retrain jobs, cost %.3f (table: %g, %.3f)\n",
                name, c.decisions, c.jobs, c.job_cost, retrains, cost);
        EXPECT_EQ_INT((int)retrains, c.jobs);
        EXPECT_NEAR(json_number_value(json_object_get(p, "retrains_mean")), c.jobs, 1e-9);
        EXPECT_NEAR(cost, c.job_cost, 1e-9);
        EXPECT_NEAR(json_number_value(json_object_get(p, "cost_mean")), c.job_cost, 1e-9);
        /* Flat cost per retrain: every job costs 0.045 (aws) or 0.038 (azure). */
        EXPECT(c.job_cost >= 0.038 * c.jobs - 1e-9 && c.job_cost <= 0.045 * c.jobs + 1e-9);
        /* An hour at one decision a minute (the ends may lose one or two). */
        EXPECT_MSG(c.decisions >= 50 && c.decisions <= 70, "%d decisions", c.decisions);
        if (!strcmp(name, "static-15m"))
            EXPECT_MSG(c.jobs >= 3 && c.jobs <= 5, "static-15m: %d retrains in 1 h", c.jobs);
        total_jobs += c.jobs;
    }
    EXPECT(total_jobs >= 3);
    json_decref(root);
}

static void test_interrupt_stops_everything(void) {
    LIVE_CASE_BEGIN();
    char cfg[700], out[700], so[700], se[700];
    exp_paths("interrupt", cfg, out, so, se);
    write_config(cfg, "4h");
    char *argv[] = {DP_BINARY, "experiment", "--config", cfg, "--model", g_model, "--policy",
                    g_policy, "--out", out, NULL};
    pid_t pid = spawn(argv, so, se);
    /* Wait until the load runs, plus a few seconds (a retrain may be going). */
    double end = now_s() + 120;
    while (now_s() < end && !file_contains(se, "all healthy")) usleep(100000);
    EXPECT_MSG(file_contains(se, "all healthy"), "see %s", se);
    usleep(4000000);
    kill(pid, SIGINT);
    double t0 = now_s();
    int st = wait_for(pid, 60);
    fprintf(stderr, "  stopped %.1f s after SIGINT\n", now_s() - t0);
    REQUIRE(st >= 0);
    EXPECT_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d", st);
    EXPECT_EQ_INT(count_children(), 0);
    int listed = 0;
    EXPECT_EQ_INT(live_listed_pids(out, &listed), 0);
    EXPECT(listed >= 9);
    EXPECT(file_contains(se, "interrupted"));
}

static void test_failed_service_is_named(void) {
    LIVE_CASE_BEGIN();
    /* A "model" with a config.json that is not a GPT-2 config: it publishes
     * to the registry, but no service can load it. */
    char bad[700], cfg[700], out[700], so[700], se[700];
    snprintf(bad, sizeof bad, "%s/bad-model", g_tmp);
    mkdir(bad, 0755);
    snprintf(cfg, sizeof cfg, "%s/config.json", bad);
    FILE *f = fopen(cfg, "w");
    REQUIRE(f != NULL);
    fputs("{\"model_type\": \"not-gpt2\"}\n", f);
    fclose(f);
    exp_paths("bad", cfg, out, so, se);
    write_config(cfg, "1h");
    char *argv[] = {DP_BINARY, "experiment", "--config", cfg, "--model", bad, "--policy",
                    g_policy, "--out", out, NULL};
    pid_t pid = spawn(argv, so, se);
    int st = wait_for(pid, 120);
    REQUIRE(st >= 0);
    EXPECT_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
    EXPECT_MSG(file_contains(se, "serve adaptive/aws exited while starting"), "see %s", se);
    EXPECT_MSG(file_contains(se, "serve-aws.log"), "see %s", se);
    EXPECT_EQ_INT(count_children(), 0);
    int listed = 0;
    EXPECT_EQ_INT(live_listed_pids(out, &listed), 0);
}

/* Decisions to retrain on aws before, during and after the outage, by
 * scenario minute (from the store's wall timestamps at 60x, counted from
 * the first decision, which comes right at the start). */
typedef struct {
    double first_ts;
    int ran_before, refused_during, ran_after, other;
} OutageCounts;

static int on_outage_decision(const StoreDecision *d, void *u) {
    OutageCounts *c = u;
    if (c->first_ts == 0) c->first_ts = d->ts;
    double min = d->ts - c->first_ts; /* wall seconds at 60x are scenario minutes */
    if (!d->target || strcmp(d->target, "aws") || !strcmp(d->action, "nothing")) return 0;
    int down = d->error && strstr(d->error, "aws is down") != NULL;
    if (min < 22 && d->executed) c->ran_before++;
    else if (min > 23.5 && min < 37 && !d->executed && down) c->refused_during++;
    else if (min > 39 && d->executed) c->ran_after++;
    else c->other++;
    return 0;
}

/* The outage scenario live: aws's services die for 15 scenario minutes of an
 * hour.  The run must finish, the routers must carry the traffic to azure,
 * and a static retrain on aws that falls in the outage must be recorded as
 * not carried out; aws must serve again afterwards. */
static void test_outage_experiment(void) {
    LIVE_CASE_BEGIN();
    char cfg[700], out[700], so[700], se[700];
    exp_paths("outage", cfg, out, so, se);
    write_config_scenario(cfg, "outage", "1h");
    char *argv[] = {DP_BINARY, "experiment", "--config", cfg, "--model", g_model, "--policy",
                    g_policy, "--out", out, "--pipelines", "static-15m", NULL};
    REQUIRE(run_to_end(argv, so, se, "outage experiment"));
    EXPECT_MSG(file_contains(se, "outage: aws down in every pipeline"), "see %s", se);
    EXPECT_MSG(file_contains(se, "outage over: aws started again"), "see %s", se);

    /* requests: answered throughout (failover to azure), aws serving again at the end */
    char path[800];
    snprintf(path, sizeof path, "%s/work/r1/static-15m/requests.csv", out);
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    char line[1024];
    int total = 0, ok = 0;
    while (fgets(line, sizeof line, f)) {
        char *fld[16];
        int nf = 0;
        for (char *p = line, *save = NULL; nf < 16 && (p = strtok_r(nf ? NULL : p, ",\n", &save));)
            fld[nf++] = p;
        if (nf < 8 || !strcmp(fld[0], "seq")) continue;
        total++;
        ok += !strcmp(fld[7], "200");
    }
    fclose(f);
    fprintf(stderr, "  outage: %d of %d requests answered 200\n", ok, total);
    EXPECT(total > 200);
    EXPECT_MSG(ok >= total * 0.97, "%d of %d answered", ok, total);

    /* a static retrain on aws before, refused during ("aws is down"), and
     * carried out again after the outage */
    snprintf(path, sizeof path, "%s/work/r1/static-15m/store.db", out);
    Store *s = NULL;
    DpError err = {0};
    REQUIRE(store_open(path, &s, &err) == DP_OK);
    OutageCounts c = {0};
    EXPECT(store_each_decision(s, "static-15m-r1", on_outage_decision, &c, &err) == DP_OK);
    fprintf(stderr, "  outage: aws retrains: %d ran before, %d refused during, %d ran after, %d other\n",
            c.ran_before, c.refused_during, c.ran_after, c.other);
    EXPECT(c.ran_before >= 1);
    EXPECT_EQ_INT(c.refused_during, 1); /* one 15-min slot falls in the 15-min outage */
    EXPECT(c.ran_after >= 1);
    store_close(s);
}

typedef struct {
    int pairs_ran;      /* executed retrain@azure+deploy@aws */
    int jobs_azure, jobs_other;
    int deploys_aws, deploys_other;
} PairsCounts;

static int on_pairs_decision(const StoreDecision *d, void *u) {
    PairsCounts *c = u;
    if (d->executed && !strcmp(d->action, "retrain@azure+deploy@aws")) c->pairs_ran++;
    return 0;
}
static int on_pairs_job(const StoreJob *j, void *u) {
    PairsCounts *c = u;
    if (j->kind && !strcmp(j->kind, "retrain")) {
        if (j->target && !strcmp(j->target, "azure")) c->jobs_azure++;
        else c->jobs_other++;
    }
    return 0;
}
static int on_pairs_deploy(const StoreDeployment *d, void *u) {
    PairsCounts *c = u;
    if (d->kind && !strcmp(d->kind, "deploy")) {
        if (d->target && !strcmp(d->target, "aws")) c->deploys_aws++;
        else c->deploys_other++;
    }
    return 0;
}

/* actions = "pairs" live: the static schedule trains on azure and its models
 * serve on aws, where the traffic is; the adaptive pipeline runs a policy
 * trained with the same action set, and the prediction uses it too. */
static void test_pairs_experiment(void) {
    LIVE_CASE_BEGIN();
    char cfg[700], out[700], so[700], se[700];
    exp_paths("pairs", cfg, out, so, se);
    write_config_extra(cfg, "gradual", "40m", "actions = \"pairs\"\nstatic_policy = \"static:15m:azure\"\n");
    char *argv[] = {DP_BINARY, "experiment", "--config", cfg, "--model", g_model, "--policy",
                    g_policy_pairs, "--out", out, NULL};
    REQUIRE(run_to_end(argv, so, se, "pairs experiment"));
    EXPECT(file_contains(so, "| adaptive |"));
    EXPECT(file_nonempty(out, "sim_prediction.json"));
    char path[800];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/work/r1/%s/driftpilot.toml", out, i ? "adaptive" : "static-15m");
        EXPECT_MSG(file_contains(path, "actions = \"pairs\""), "%s", path);
    }
    snprintf(path, sizeof path, "%s/work/r1/static-15m/store.db", out);
    Store *s = NULL;
    DpError err = {0};
    REQUIRE(store_open(path, &s, &err) == DP_OK);
    PairsCounts c = {0};
    EXPECT(store_each_decision(s, "static-15m-r1", on_pairs_decision, &c, &err) == DP_OK);
    EXPECT(store_each_job(s, "static-15m-r1", on_pairs_job, &c, &err) == DP_OK);
    EXPECT(store_each_deployment(s, "static-15m-r1", on_pairs_deploy, &c, &err) == DP_OK);
    store_close(s);
    fprintf(stderr, "  pairs: %d retrain@azure+deploy@aws ran, jobs azure %d other %d, "
            "deploys aws %d other %d\n", c.pairs_ran, c.jobs_azure, c.jobs_other, c.deploys_aws,
            c.deploys_other);
    EXPECT(c.pairs_ran >= 2);
    EXPECT_EQ_INT(c.jobs_azure, c.pairs_ran);
    EXPECT_EQ_INT(c.jobs_other, 0);
    EXPECT(c.deploys_aws >= 1);
    EXPECT_EQ_INT(c.deploys_other, 0);
}

TEST_MAIN(TEST_CASE(test_outage_experiment), TEST_CASE(test_pairs_experiment), TEST_CASE(test_one_minute_experiment), TEST_CASE(test_interrupt_stops_everything),
          TEST_CASE(test_failed_service_is_named))
