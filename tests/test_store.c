/* Tests for src/store: round trips through every table, WAL mode, reopening,
 * refusing non-SQLite, foreign and newer files, transactions, CSV quoting,
 * cost totals, and several connections writing from threads. */
#include "test.h"

#include "store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

static char tmpdir[64];

static void make_tmpdir(void) {
    if (tmpdir[0]) return;
    strcpy(tmpdir, "/tmp/dp_test_store_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        tmpdir[0] = '\0';
    }
}

/* path of a fresh file name in the temp dir (removes leftovers). */
static const char *db_path(const char *name) {
    static char path[256];
    make_tmpdir();
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    char extra[300];
    unlink(path);
    snprintf(extra, sizeof extra, "%s-wal", path);
    unlink(extra);
    snprintf(extra, sizeof extra, "%s-shm", path);
    unlink(extra);
    return path;
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle); }

// ---- collectors used by the callbacks ----

typedef struct {
    int n;
    double ts[16];
    char text[16][128];
    double value[16];
} Rows;

static int on_decision(const StoreDecision *d, void *u) {
    Rows *r = u;
    if (r->n < 16) {
        r->ts[r->n] = d->ts;
        snprintf(r->text[r->n], 128, "%s|%s|%s|%s|%s|%d|%s", d->run_id ? d->run_id : "-",
                 d->policy, d->action, d->target ? d->target : "-", d->reason, d->executed,
                 d->error ? d->error : "-");
    }
    r->n++;
    return 0;
}

static int on_sample(const StoreMetricSample *m, void *u) {
    Rows *r = u;
    if (r->n < 16) {
        r->ts[r->n] = m->ts;
        r->value[r->n] = m->value;
        snprintf(r->text[r->n], 128, "%s|%s|%s|%s", m->run_id ? m->run_id : "-", m->target,
                 m->name, m->labels);
    }
    r->n++;
    return 0;
}

static int on_state(const StoreState *x, void *u) {
    Rows *r = u;
    if (r->n < 16) {
        r->ts[r->n] = x->ts;
        int k = snprintf(r->text[r->n], 128, "%s|%s|%d", x->run_id, x->profile, x->n);
        for (int i = 0; i < x->n && k < 100; i++)
            k += snprintf(r->text[r->n] + k, (size_t)(128 - k), "|%s=%.17g", x->names[i],
                          x->vector[i]);
    }
    r->n++;
    return 0;
}

static int on_job(const StoreJob *j, void *u) {
    Rows *r = u;
    if (r->n < 16) {
        r->ts[r->n] = j->started;
        r->value[r->n] = j->cost;
        snprintf(r->text[r->n], 128, "%lld|%s|%s|%s|%s|%g|%g|%s", (long long)j->id, j->run_id,
                 j->kind, j->target, j->status, j->finished, j->duration_s,
                 j->record_json ? j->record_json : "-");
    }
    r->n++;
    return 0;
}

static int on_deployment(const StoreDeployment *d, void *u) {
    Rows *r = u;
    if (r->n < 16)
        snprintf(r->text[r->n], 128, "%g|%s|%s|%s|%s|%s", d->ts, d->run_id, d->target, d->version,
                 d->previous_version ? d->previous_version : "-", d->kind);
    r->n++;
    return 0;
}

static int on_cost(const StoreCost *c, void *u) {
    Rows *r = u;
    if (r->n < 16) {
        r->value[r->n] = c->amount;
        snprintf(r->text[r->n], 128, "%g|%s|%s|%s", c->ts, c->run_id, c->target, c->kind);
    }
    r->n++;
    return 0;
}

static int on_event(const StoreEvent *e, void *u) {
    Rows *r = u;
    if (r->n < 16) snprintf(r->text[r->n], 128, "%g|%s|%s|%s", e->ts, e->run_id, e->kind, e->message);
    r->n++;
    return 0;
}

static int on_experiment(const StoreExperiment *x, void *u) {
    Rows *r = u;
    if (r->n < 16)
        snprintf(r->text[r->n], 128, "%lld|%s|%s|%g|%g", (long long)x->id, x->name,
                 x->config_json, x->started, x->finished);
    r->n++;
    return 0;
}

static int on_cost_total(const char *target, double total, int64_t n, void *u) {
    Rows *r = u;
    if (r->n < 16) {
        r->value[r->n] = total;
        snprintf(r->text[r->n], 128, "%s|%lld", target, (long long)n);
    }
    r->n++;
    return 0;
}

static int stop_after_one(const StoreDecision *d, void *u) {
    (void)d;
    (*(int *)u)++;
    return 1;
}

// ---- filling a store ----

static void fill(Store *s) {
    DpError err = {0};
    EXPECT(store_begin(s, &err) == DP_OK);
    /* Decisions inserted out of time order: they must come back sorted. */
    StoreDecision d2 = {120, "r1", "ppo", "retrain", "azure", "bleu 0.61 < 0.70", 0,
                        "target down"};
    StoreDecision d1 = {60, "r1", "ppo", "none", NULL, "quality fine", 1, NULL};
    StoreDecision d3 = {60, "r2", "static", "retrain", "aws", "every 15m", 1, NULL};
    EXPECT(store_add_decision(s, &d2, &err) == DP_OK);
    EXPECT(store_add_decision(s, &d1, &err) == DP_OK);
    EXPECT(store_add_decision(s, &d3, &err) == DP_OK);
    StoreMetricSample m1 = {10.5, "r1", "aws", "llm_bleu", "", 0.78};
    StoreMetricSample m2 = {11.5, "r1", "aws", "http_requests_total",
                            "route=\"/predict\",code=\"200\"", 1027};
    StoreMetricSample m3 = {12.5, NULL, "azure", "llm_bleu", "", NAN};
    EXPECT(store_add_metric_sample(s, &m1, &err) == DP_OK);
    EXPECT(store_add_metric_sample(s, &m2, &err) == DP_OK);
    EXPECT(store_add_metric_sample(s, &m3, &err) == DP_OK);
    double vec[] = {0.25, 1.0 / 3.0, NAN, 1e-300};
    const char *names[] = {"cpu", "mem\"q", "accuracy", "tab\there"};
    StoreState st = {60, "r1", "paper", 4, vec, names};
    EXPECT(store_add_state(s, &st, &err) == DP_OK);
    int64_t id = 0;
    StoreJob j = {0, "r1", "retrain", "aws", 100, NAN, "running", NAN, 0, NULL};
    EXPECT(store_add_job(s, &j, &id, &err) == DP_OK);
    EXPECT(id > 0);
    EXPECT_MSG(store_finish_job(s, id, 160, "ok", 60, 0.045, "{\"version\":\"v3\"}", &err) ==
                   DP_OK,
               "%s", err.msg);
    StoreJob j2 = {0, "r1", "retrain", "azure", 130, NAN, "running", NAN, 0, "{\"a\":1}"};
    int64_t id2 = 0;
    EXPECT(store_add_job(s, &j2, &id2, &err) == DP_OK);
    EXPECT(id2 == id + 1);
    StoreDeployment dep1 = {161, "r1", "aws", "v3", "v2", "deploy"};
    StoreDeployment dep2 = {300, "r1", "aws", "v2", "v3", "rollback"};
    StoreDeployment dep0 = {0, "r1", "aws", "v2", NULL, "deploy"};
    EXPECT(store_add_deployment(s, &dep1, &err) == DP_OK);
    EXPECT(store_add_deployment(s, &dep2, &err) == DP_OK);
    EXPECT(store_add_deployment(s, &dep0, &err) == DP_OK);
    StoreCost c1 = {160, "r1", "aws", 0.045, "retrain"};
    StoreCost c2 = {220, "r1", "azure", 0.038, "retrain"};
    StoreCost c3 = {280, "r1", "aws", 0.045, "retrain"};
    StoreCost c4 = {280, "r2", "aws", 1.0, "retrain"};
    EXPECT(store_add_cost(s, &c1, &err) == DP_OK);
    EXPECT(store_add_cost(s, &c2, &err) == DP_OK);
    EXPECT(store_add_cost(s, &c3, &err) == DP_OK);
    EXPECT(store_add_cost(s, &c4, &err) == DP_OK);
    StoreEvent e1 = {5, "r1", "start", "controller started, policy \"ppo\", targets aws,azure\n"};
    EXPECT(store_add_event(s, &e1, &err) == DP_OK);
    StoreExperiment x = {0, "table1", "{\"policy\":\"ppo\"}", 1000, NAN};
    int64_t xid = 0;
    EXPECT(store_add_experiment(s, &x, &xid, &err) == DP_OK);
    EXPECT(store_finish_experiment(s, xid, 2000, &err) == DP_OK);
    EXPECT_MSG(store_commit(s, &err) == DP_OK, "%s", err.msg);
}

static void check_contents(Store *s) {
    DpError err = {0};
    Rows r;
    memset(&r, 0, sizeof r);
    EXPECT(store_each_decision(s, "r1", on_decision, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 2);
    EXPECT_STREQ(r.text[0], "r1|ppo|none|-|quality fine|1|-");
    EXPECT_STREQ(r.text[1], "r1|ppo|retrain|azure|bleu 0.61 < 0.70|0|target down");
    EXPECT(r.ts[0] == 60 && r.ts[1] == 120);
    memset(&r, 0, sizeof r);
    EXPECT(store_each_decision(s, NULL, on_decision, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 3);
    int k = 0;
    EXPECT(store_each_decision(s, NULL, stop_after_one, &k, &err) == DP_OK);
    EXPECT_EQ_INT(k, 1);

    memset(&r, 0, sizeof r);
    EXPECT(store_each_metric_sample(s, NULL, NULL, -INFINITY, INFINITY, on_sample, &r, &err) ==
           DP_OK);
    EXPECT_EQ_INT(r.n, 3);
    EXPECT_STREQ(r.text[1], "r1|aws|http_requests_total|route=\"/predict\",code=\"200\"");
    EXPECT(r.value[0] == 0.78 && r.value[1] == 1027 && isnan(r.value[2]));
    EXPECT_STREQ(r.text[2], "-|azure|llm_bleu|");
    memset(&r, 0, sizeof r);
    EXPECT(store_each_metric_sample(s, "aws", "llm_bleu", 0, 100, on_sample, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 1);
    memset(&r, 0, sizeof r);
    EXPECT(store_each_metric_sample(s, NULL, "llm_bleu", 11, 12.5, on_sample, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 0); /* t1 is exclusive */

    memset(&r, 0, sizeof r);
    EXPECT_MSG(store_each_state(s, "r1", on_state, &r, &err) == DP_OK, "%s", err.msg);
    EXPECT_EQ_INT(r.n, 1);
    EXPECT_STREQ(r.text[0], "r1|paper|4|cpu=0.25|mem\"q=0.33333333333333331|accuracy=nan|tab\there=1e-300");

    memset(&r, 0, sizeof r);
    EXPECT(store_each_job(s, "r1", on_job, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 2);
    EXPECT(contains(r.text[0], "|r1|retrain|aws|ok|160|60|{\"version\":\"v3\"}"));
    EXPECT(contains(r.text[1], "|r1|retrain|azure|running|nan|nan|{\"a\":1}"));
    EXPECT(r.value[0] == 0.045);

    memset(&r, 0, sizeof r);
    EXPECT(store_each_deployment(s, "r1", on_deployment, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 3);
    EXPECT_STREQ(r.text[0], "0|r1|aws|v2|-|deploy");
    EXPECT_STREQ(r.text[1], "161|r1|aws|v3|v2|deploy");
    EXPECT_STREQ(r.text[2], "300|r1|aws|v2|v3|rollback");

    memset(&r, 0, sizeof r);
    EXPECT(store_each_cost(s, "r1", on_cost, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 3);
    EXPECT_STREQ(r.text[1], "220|r1|azure|retrain");

    memset(&r, 0, sizeof r);
    EXPECT(store_cost_by_target(s, "r1", on_cost_total, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 2);
    EXPECT_STREQ(r.text[0], "aws|2");
    EXPECT_NEAR(r.value[0], 0.09, 1e-12);
    EXPECT_STREQ(r.text[1], "azure|1");
    EXPECT_NEAR(r.value[1], 0.038, 1e-12);
    memset(&r, 0, sizeof r);
    EXPECT(store_cost_by_target(s, NULL, on_cost_total, &r, &err) == DP_OK);
    EXPECT_NEAR(r.value[0], 1.09, 1e-12);

    memset(&r, 0, sizeof r);
    EXPECT(store_each_event(s, "r1", on_event, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 1);
    EXPECT_STREQ(r.text[0], "5|r1|start|controller started, policy \"ppo\", targets aws,azure\n");

    memset(&r, 0, sizeof r);
    EXPECT(store_each_experiment(s, on_experiment, &r, &err) == DP_OK);
    EXPECT_EQ_INT(r.n, 1);
    EXPECT(contains(r.text[0], "|table1|{\"policy\":\"ppo\"}|1000|2000"));

    int64_t n = -1;
    EXPECT(store_count(s, "costs", NULL, &n, &err) == DP_OK && n == 4);
    EXPECT(store_count(s, "costs", "r2", &n, &err) == DP_OK && n == 1);
    EXPECT(store_count(s, "metric_samples", "r1", &n, &err) == DP_OK && n == 2);
    EXPECT_EQ_INT(store_count(s, "experiments", "r1", &n, &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(store_count(s, "sqlite_master", NULL, &n, &err), DP_ERR_INVAL);
}

static void test_round_trip_and_reopen(void) {
    const char *path = db_path("a.db");
    Store *s = NULL;
    DpError err = {0};
    REQUIRE(store_open(path, &s, &err) == DP_OK);
    char mode[16];
    EXPECT(store_journal_mode(s, mode, &err) == DP_OK);
    EXPECT_STREQ(mode, "wal");
    fill(s);
    check_contents(s);
    store_close(s);
    char p2[300];
    snprintf(p2, sizeof p2, "%s-wal", path);
    /* Reopen: the data is still there, and the mode is still WAL. */
    s = NULL;
    REQUIRE(store_open(path, &s, &err) == DP_OK);
    check_contents(s);
    EXPECT(store_journal_mode(s, mode, &err) == DP_OK);
    EXPECT_STREQ(mode, "wal");
    store_close(s);
    store_close(NULL);
    /* The file carries the schema version and our application id. */
    sqlite3 *db;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *q;
    REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK);
    EXPECT(sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == STORE_SCHEMA_VERSION);
    sqlite3_finalize(q);
    REQUIRE(sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &q, NULL) == SQLITE_OK);
    EXPECT(sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == STORE_APPLICATION_ID);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void test_bad_input(void) {
    Store *s = NULL;
    DpError err = {0};
    char path[256];
    snprintf(path, sizeof path, "%s", db_path("bad.db"));
    REQUIRE(store_open(path, &s, &err) == DP_OK);
    StoreDeployment d = {1, "r", "aws", "v1", NULL, "redeploy"};
    EXPECT_EQ_INT(store_add_deployment(s, &d, &err), DP_ERR_INVAL);
    EXPECT(contains(err.msg, "deploy or rollback"));
    EXPECT_EQ_INT(store_finish_job(s, 12345, 1, "ok", 1, 0, NULL, &err), DP_ERR_INVAL);
    EXPECT(contains(err.msg, "no job with id 12345"));
    EXPECT_EQ_INT(store_finish_experiment(s, 999, 1, &err), DP_ERR_INVAL);
    StoreCost c = {1, "r", "aws", NAN, "retrain"};
    EXPECT_EQ_INT(store_add_cost(s, &c, &err), DP_ERR_INVAL);
    StoreMetricSample m = {1, NULL, NULL, "x", "", 1};
    EXPECT_EQ_INT(store_add_metric_sample(s, &m, &err), DP_ERR_INVAL);
    StoreDecision dd = {1, "r", "ppo", NULL, NULL, NULL, 0, NULL};
    EXPECT_EQ_INT(store_add_decision(s, &dd, &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(store_export_csv(s, "users; DROP TABLE costs", NULL, stdout, &err), DP_ERR_INVAL);
    EXPECT_EQ_INT(store_export_csv(s, "experiments", "r1", stdout, &err), DP_ERR_INVAL);
    /* Transactions: nesting and stray commits are errors; rollback discards. */
    EXPECT_EQ_INT(store_commit(s, &err), DP_ERR_STATE);
    EXPECT(store_begin(s, &err) == DP_OK);
    EXPECT_EQ_INT(store_begin(s, &err), DP_ERR_STATE);
    StoreEvent e = {1, "r", "k", "m"};
    EXPECT(store_add_event(s, &e, &err) == DP_OK);
    EXPECT(store_rollback(s, &err) == DP_OK);
    int64_t n = -1;
    EXPECT(store_count(s, "events", NULL, &n, &err) == DP_OK && n == 0);
    EXPECT(store_add_event(s, &e, &err) == DP_OK); /* autocommit */
    EXPECT(store_count(s, "events", NULL, &n, &err) == DP_OK && n == 1);
    /* Closing with a transaction open rolls it back. */
    EXPECT(store_begin(s, &err) == DP_OK);
    EXPECT(store_add_event(s, &e, &err) == DP_OK);
    store_close(s);
    REQUIRE(store_open(path, &s, &err) == DP_OK);
    EXPECT(store_count(s, "events", NULL, &n, &err) == DP_OK && n == 1);
    store_close(s);
}

static void test_refuses_bad_files(void) {
    DpError err = {0};
    Store *s = (Store *)1;
    /* A text file. */
    const char *path = db_path("text.db");
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    for (int i = 0; i < 300; i++) fputs("this is not a database, just some text\n", f);
    fclose(f);
    EXPECT_EQ_INT(store_open(path, &s, &err), DP_ERR_PARSE);
    EXPECT_MSG(contains(err.msg, "not an SQLite database") && contains(err.msg, "text.db"), "%s",
               err.msg);
    EXPECT(s == NULL);
    /* A real store whose header was damaged. */
    path = db_path("damaged.db");
    REQUIRE(store_open(path, &s, &err) == DP_OK);
    fill(s);
    store_close(s);
    f = fopen(path, "r+b");
    REQUIRE(f);
    fwrite("garbage garbage!", 1, 16, f);
    fclose(f);
    EXPECT_EQ_INT(store_open(path, &s, &err), DP_ERR_PARSE);
    EXPECT_MSG(contains(err.msg, "corrupted"), "%s", err.msg);
    /* Another program's database. */
    path = db_path("other.db");
    sqlite3 *db;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    EXPECT(sqlite3_exec(db, "CREATE TABLE users (id INTEGER)", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    EXPECT_EQ_INT(store_open(path, &s, &err), DP_ERR_STATE);
    EXPECT_MSG(contains(err.msg, "not a driftpilot store"), "%s", err.msg);
    /* A store from a newer driftpilot. */
    path = db_path("newer.db");
    REQUIRE(store_open(path, &s, &err) == DP_OK);
    store_close(s);
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 1);
    EXPECT(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    EXPECT_EQ_INT(store_open(path, &s, &err), DP_ERR_STATE);
    EXPECT_MSG(contains(err.msg, "newer driftpilot") && contains(err.msg, "schema version 2"),
               "%s", err.msg);
    /* An empty (zero-byte) file is a new store. */
    path = db_path("empty.db");
    f = fopen(path, "w");
    REQUIRE(f);
    fclose(f);
    EXPECT(store_open(path, &s, &err) == DP_OK);
    store_close(s);
    /* A directory that does not exist. */
    EXPECT_EQ_INT(store_open("/nonexistent-dir/x/y.db", &s, &err), DP_ERR_IO);
    EXPECT(contains(err.msg, "cannot open"));
}

static char *export(Store *s, const char *table, const char *run_id) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    DpError err = {0};
    DpStatus st = store_export_csv(s, table, run_id, f, &err);
    fclose(f);
    if (st != DP_OK) {
        fprintf(stderr, "  export %s: %s\n", table, err.msg);
        free(buf);
        return NULL;
    }
    return buf;
}

static void test_csv(void) {
    Store *s = NULL;
    DpError err = {0};
    REQUIRE(store_open(db_path("csv.db"), &s, &err) == DP_OK);
    fill(s);
    char *csv = export(s, "events", "r1");
    EXPECT_STREQ(csv, "id,ts,run_id,kind,message\n"
                      "1,5,r1,start,\"controller started, policy \"\"ppo\"\", targets aws,azure\n"
                      "\"\n");
    free(csv);
    csv = export(s, "decisions", NULL);
    EXPECT_STREQ(csv, "id,ts,run_id,policy,action,target,reason,executed,error\n"
                      "2,60,r1,ppo,none,,quality fine,1,\n"
                      "3,60,r2,static,retrain,aws,every 15m,1,\n"
                      "1,120,r1,ppo,retrain,azure,bleu 0.61 < 0.70,0,target down\n");
    free(csv);
    csv = export(s, "metric_samples", NULL);
    EXPECT_STREQ(csv, "id,ts,run_id,target,name,labels,value\n"
                      "1,10.5,r1,aws,llm_bleu,,0.78\n"
                      "2,11.5,r1,aws,http_requests_total,\"route=\"\"/predict\"\",code=\"\"200\"\"\",1027\n"
                      "3,12.5,,azure,llm_bleu,,\n");
    free(csv);
    csv = export(s, "states", "r1");
    EXPECT_STREQ(csv, "id,ts,run_id,profile,n,vector,names\n"
                      "1,60,r1,paper,4,\"[0.25,0.3333333333333333,null,1e-300]\","
                      "\"[\"\"cpu\"\",\"\"mem\\\"\"q\"\",\"\"accuracy\"\",\"\"tab\\u0009here\"\"]\"\n");
    free(csv);
    /* Every table exports, with a header line. */
    const char *tables[] = {"jobs", "deployments", "costs", "experiments"};
    for (int i = 0; i < 4; i++) {
        csv = export(s, tables[i], NULL);
        EXPECT_MSG(csv && !strncmp(csv, "id,", 3), "%s", tables[i]);
        free(csv);
    }
    csv = export(s, "costs", "nope");
    EXPECT_STREQ(csv, "id,ts,run_id,target,amount,kind\n");
    free(csv);
    store_close(s);
}

// ---- several connections ----

typedef struct {
    const char *path;
    Store *shared;
    int id;
    int n;
    DpStatus st;
    char msg[256];
} Writer;

static void *writer_run(void *arg) {
    Writer *w = arg;
    DpError err = {0};
    Store *s = w->shared;
    if (!s && (w->st = store_open(w->path, &s, &err)) != DP_OK) goto out;
    char run[16];
    snprintf(run, sizeof run, "w%d", w->id);
    for (int i = 0; i < w->n && w->st == DP_OK; i++) {
        StoreMetricSample m = {i, run, "aws", "llm_bleu", "", i * 0.01};
        /* Own connections write in small transactions, as the controller will. */
        if (!w->shared && i % 50 == 0 && (w->st = store_begin(s, &err)) != DP_OK) break;
        w->st = store_add_metric_sample(s, &m, &err);
        if (!w->shared && (i % 50 == 49 || i == w->n - 1) && w->st == DP_OK)
            w->st = store_commit(s, &err);
    }
out:
    if (w->st != DP_OK) snprintf(w->msg, sizeof w->msg, "%s", err.msg);
    if (!w->shared) store_close(s);
    return NULL;
}

static void test_concurrency(void) {
    const char *p = db_path("conc.db");
    char path[256];
    snprintf(path, sizeof path, "%s", p);
    Store *s = NULL;
    DpError err = {0};
    REQUIRE(store_open(path, &s, &err) == DP_OK);
    enum { NT = 4, N = 500 };
    pthread_t th[2 * NT];
    Writer w[2 * NT];
    for (int i = 0; i < 2 * NT; i++) {
        /* Half share one Store, half open their own connection. */
        w[i] = (Writer){path, i < NT ? s : NULL, i, N, DP_OK, ""};
        pthread_create(&th[i], NULL, writer_run, &w[i]);
    }
    for (int i = 0; i < 2 * NT; i++) {
        pthread_join(th[i], NULL);
        EXPECT_MSG(w[i].st == DP_OK, "writer %d: %s", i, w[i].msg);
    }
    int64_t n = 0;
    EXPECT(store_count(s, "metric_samples", NULL, &n, &err) == DP_OK);
    EXPECT_EQ_INT(n, 2 * NT * N);
    EXPECT(store_count(s, "metric_samples", "w5", &n, &err) == DP_OK);
    EXPECT_EQ_INT(n, N);
    store_close(s);
}

static void test_insert_speed(void) {
    Store *s = NULL;
    DpError err = {0};
    REQUIRE(store_open(db_path("speed.db"), &s, &err) == DP_OK);
    enum { N = 20000 };
    double t0 = dp_time_mono();
    EXPECT(store_begin(s, &err) == DP_OK);
    for (int i = 0; i < N; i++) {
        StoreMetricSample m = {i, "run", i % 2 ? "aws" : "azure", "llm_bleu", "", i * 1e-4};
        if (store_add_metric_sample(s, &m, &err) != DP_OK) break;
    }
    EXPECT(store_commit(s, &err) == DP_OK);
    double dt = dp_time_mono() - t0;
    Rows r;
    memset(&r, 0, sizeof r);
    double t1 = dp_time_mono();
    EXPECT(store_each_metric_sample(s, "aws", "llm_bleu", 0, N, on_sample, &r, &err) == DP_OK);
    double dtq = dp_time_mono() - t1;
    EXPECT_EQ_INT(r.n, N / 2);
    /* Single-row autocommit inserts, for comparison. */
    double t2 = dp_time_mono();
    for (int i = 0; i < 100; i++) {
        StoreEvent e = {i, "run", "tick", "x"};
        store_add_event(s, &e, &err);
    }
    double dta = (dp_time_mono() - t2) / 100;
    printf("store: %d samples in one transaction: %.3f s (%.0f rows/s); read back %d: %.3f s; "
           "autocommit insert: %.1f us each\n",
           N, dt, N / dt, N / 2, dtq, dta * 1e6);
    store_close(s);
}

static void cleanup(void) {
    if (!tmpdir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", tmpdir);
}

static void test_cleanup(void) {
    cleanup();
    EXPECT(1);
}

TEST_MAIN(TEST_CASE(test_round_trip_and_reopen), TEST_CASE(test_bad_input),
          TEST_CASE(test_refuses_bad_files), TEST_CASE(test_csv), TEST_CASE(test_concurrency),
          TEST_CASE(test_insert_speed), TEST_CASE(test_cleanup))
