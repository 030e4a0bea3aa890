/*
 * The SQLite store: opening and migrating the file, the inserts (prepared
 * once per connection), the time-ordered readers and the CSV export.
 *
 * Schema changes are migrations: migrations[v] takes a file from version v
 * to v + 1, all run in one IMMEDIATE transaction at open, so two processes
 * opening an old file at once cannot both migrate it.  Version 0 is an empty
 * file.  Never edit a released migration; append a new one and bump
 * STORE_SCHEMA_VERSION.
 *
 * State vectors and their names are stored as JSON arrays (text), so the CSV
 * export and the sqlite3 shell show them as people expect; NaN becomes null.
 */
#include "store.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

static const char *const migrations[STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: the first schema. */
    "CREATE TABLE metric_samples (id INTEGER PRIMARY KEY, ts REAL NOT NULL, run_id TEXT,"
    " target TEXT NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '', value REAL);"
    "CREATE INDEX metric_samples_name_ts ON metric_samples (name, target, ts);"
    "CREATE INDEX metric_samples_ts ON metric_samples (ts);"
    "CREATE TABLE states (id INTEGER PRIMARY KEY, ts REAL NOT NULL, run_id TEXT,"
    " profile TEXT, n INTEGER NOT NULL, vector TEXT NOT NULL, names TEXT NOT NULL);"
    "CREATE INDEX states_run_ts ON states (run_id, ts);"
    "CREATE TABLE decisions (id INTEGER PRIMARY KEY, ts REAL NOT NULL, run_id TEXT,"
    " policy TEXT, action TEXT NOT NULL, target TEXT, reason TEXT,"
    " executed INTEGER NOT NULL, error TEXT);"
    "CREATE INDEX decisions_run_ts ON decisions (run_id, ts);"
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, run_id TEXT, kind TEXT NOT NULL, target TEXT,"
    " started REAL NOT NULL, finished REAL, status TEXT NOT NULL, duration_s REAL, cost REAL,"
    " record_json TEXT);"
    "CREATE INDEX jobs_run_started ON jobs (run_id, started);"
    "CREATE TABLE deployments (id INTEGER PRIMARY KEY, ts REAL NOT NULL, run_id TEXT,"
    " target TEXT NOT NULL, version TEXT NOT NULL, previous_version TEXT,"
    " kind TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback')));"
    "CREATE INDEX deployments_run_ts ON deployments (run_id, ts);"
    "CREATE TABLE costs (id INTEGER PRIMARY KEY, ts REAL NOT NULL, run_id TEXT,"
    " target TEXT NOT NULL, amount REAL NOT NULL, kind TEXT);"
    "CREATE INDEX costs_run_ts ON costs (run_id, ts);"
    "CREATE TABLE events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, run_id TEXT,"
    " kind TEXT NOT NULL, message TEXT);"
    "CREATE INDEX events_run_ts ON events (run_id, ts);"
    "CREATE TABLE experiments (id INTEGER PRIMARY KEY, name TEXT NOT NULL, config_json TEXT,"
    " started REAL NOT NULL, finished REAL);",
};

/* The tables, their time column (for ordering) and whether they carry run_id. */
static const struct {
    const char *name;
    const char *time_col;
    int has_run_id;
} tables[] = {
    {"metric_samples", "ts", 1}, {"states", "ts", 1},      {"decisions", "ts", 1},
    {"jobs", "started", 1},      {"deployments", "ts", 1}, {"costs", "ts", 1},
    {"events", "ts", 1},         {"experiments", "started", 0},
};

enum {
    INS_SAMPLE,
    INS_STATE,
    INS_DECISION,
    INS_JOB,
    FIN_JOB,
    INS_DEPLOYMENT,
    INS_COST,
    INS_EVENT,
    INS_EXPERIMENT,
    FIN_EXPERIMENT,
    N_STMTS
};

static const char *const stmt_sql[N_STMTS] = {
    "INSERT INTO metric_samples (ts, run_id, target, name, labels, value) VALUES (?,?,?,?,?,?)",
    "INSERT INTO states (ts, run_id, profile, n, vector, names) VALUES (?,?,?,?,?,?)",
    "INSERT INTO decisions (ts, run_id, policy, action, target, reason, executed, error)"
    " VALUES (?,?,?,?,?,?,?,?)",
    "INSERT INTO jobs (run_id, kind, target, started, finished, status, duration_s, cost,"
    " record_json) VALUES (?,?,?,?,?,?,?,?,?)",
    "UPDATE jobs SET finished = ?, status = ?, duration_s = ?, cost = ?,"
    " record_json = COALESCE(?, record_json) WHERE id = ?",
    "INSERT INTO deployments (ts, run_id, target, version, previous_version, kind)"
    " VALUES (?,?,?,?,?,?)",
    "INSERT INTO costs (ts, run_id, target, amount, kind) VALUES (?,?,?,?,?)",
    "INSERT INTO events (ts, run_id, kind, message) VALUES (?,?,?,?)",
    "INSERT INTO experiments (name, config_json, started, finished) VALUES (?,?,?,?)",
    "UPDATE experiments SET finished = ? WHERE id = ?",
};

struct Store {
    sqlite3 *db;
    char *path;
    pthread_mutex_t mu;
    int in_tx;
    sqlite3_stmt *stmts[N_STMTS];
};

// ---- small helpers ----

static DpStatus db_fail(Store *s, DpError *err, const char *what) {
    int code = sqlite3_extended_errcode(s->db);
    DpStatus st = DP_ERR_IO;
    if ((code & 0xff) == SQLITE_CONSTRAINT || (code & 0xff) == SQLITE_MISMATCH ||
        (code & 0xff) == SQLITE_RANGE)
        st = DP_ERR_INVAL;
    else if ((code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CORRUPT)
        st = DP_ERR_PARSE;
    return dp_fail(err, st, "store %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static DpStatus exec_sql(Store *s, const char *sql, const char *what, DpError *err) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        DpStatus st = db_fail(s, err, what);
        sqlite3_free(msg);
        return st;
    }
    return DP_OK;
}

/* Reads one integer from a single-row query. */
static DpStatus query_int(Store *s, const char *sql, int64_t *out, DpError *err) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) return db_fail(s, err, sql);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        DpStatus st = db_fail(s, err, sql);
        sqlite3_finalize(q);
        return st;
    }
    *out = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return DP_OK;
}

static void bind_text(sqlite3_stmt *q, int i, const char *v) {
    if (v) sqlite3_bind_text(q, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(q, i);
}

/* NaN (and only NaN) is stored as NULL; SQLite would do the same silently. */
static void bind_real(sqlite3_stmt *q, int i, double v) {
    if (isnan(v)) sqlite3_bind_null(q, i);
    else sqlite3_bind_double(q, i, v);
}

static double col_real(sqlite3_stmt *q, int i) {
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

static const char *col_text(sqlite3_stmt *q, int i) {
    return (const char *)sqlite3_column_text(q, i);
}

/* Steps a bound insert/update statement to completion and resets it. */
static DpStatus run_stmt(Store *s, sqlite3_stmt *q, const char *what, DpError *err) {
    int rc = sqlite3_step(q);
    DpStatus st = rc == SQLITE_DONE ? DP_OK : db_fail(s, err, what);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return st;
}

static void fmt_real(double v, char out[32]) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v) break;
    }
}

// ---- open, close, transactions ----

static DpStatus migrate(Store *s, DpError *err) {
    DpStatus st = exec_sql(s, "BEGIN IMMEDIATE", "begin migration", err);
    if (st != DP_OK) return st;
    int64_t v = 0;
    /* Read again inside the lock: another process may have migrated. */
    if ((st = query_int(s, "PRAGMA user_version", &v, err)) != DP_OK) goto fail;
    if (v > STORE_SCHEMA_VERSION) {
        st = dp_fail(err, DP_ERR_STATE,
                     "store %s: schema version %lld was written by a newer driftpilot (this "
                     "build knows up to %d); upgrade driftpilot or use another file",
                     s->path, (long long)v, STORE_SCHEMA_VERSION);
        goto fail;
    }
    for (; v < STORE_SCHEMA_VERSION; v++) {
        char what[64];
        snprintf(what, sizeof what, "migrating schema %lld -> %lld", (long long)v,
                 (long long)v + 1);
        if ((st = exec_sql(s, migrations[v], what, err)) != DP_OK) goto fail;
    }
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
             STORE_SCHEMA_VERSION, STORE_APPLICATION_ID);
    if ((st = exec_sql(s, sql, "setting schema version", err)) != DP_OK) goto fail;
    return exec_sql(s, "COMMIT", "commit migration", err);
fail:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

DpStatus store_open(const char *path, Store **out, DpError *err) {
    *out = NULL;
    if (!path || !*path) return dp_fail(err, DP_ERR_INVAL, "store: empty path");
    Store *s = calloc(1, sizeof *s);
    if (!s) return dp_fail(err, DP_ERR_NOMEM, "store: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    DpStatus st;
    s->path = dp_strdup(path);
    if (!s->path) {
        st = dp_fail(err, DP_ERR_NOMEM, "store: out of memory");
        goto fail;
    }
    /* NOMUTEX: the Store's own mutex serialises every use of the connection. */
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        st = dp_fail(err, DP_ERR_IO, "store %s: cannot open: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

    /* The first read of the file: a non-SQLite or damaged header fails here. */
    int64_t app_id = 0, version = 0, n_tables = 0;
    if (query_int(s, "PRAGMA application_id", &app_id, err) != DP_OK) {
        int code = sqlite3_errcode(s->db);
        if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
            st = dp_fail(err, DP_ERR_PARSE,
                         "store %s: not an SQLite database, or a corrupted one (%s)", path,
                         sqlite3_errmsg(s->db));
        else
            st = err ? err->status : DP_ERR_IO;
        goto fail;
    }
    if ((st = query_int(s, "PRAGMA user_version", &version, err)) != DP_OK) goto fail;
    if ((st = query_int(s, "SELECT count(*) FROM sqlite_master", &n_tables, err)) != DP_OK)
        goto fail;
    if (app_id != STORE_APPLICATION_ID && (app_id != 0 || n_tables > 0)) {
        st = dp_fail(err, DP_ERR_STATE,
                     "store %s: an SQLite database, but not a driftpilot store (application_id "
                     "0x%llx, %lld schema objects)",
                     path, (unsigned long long)app_id, (long long)n_tables);
        goto fail;
    }
    if (version > STORE_SCHEMA_VERSION) {
        st = dp_fail(err, DP_ERR_STATE,
                     "store %s: schema version %lld was written by a newer driftpilot (this "
                     "build knows up to %d); upgrade driftpilot or use another file",
                     path, (long long)version, STORE_SCHEMA_VERSION);
        goto fail;
    }

    char mode[16] = "";
    if ((st = exec_sql(s, "PRAGMA journal_mode = WAL", "setting WAL mode", err)) != DP_OK)
        goto fail;
    if ((st = store_journal_mode(s, mode, err)) != DP_OK) goto fail;
    if (strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0) {
        st = dp_fail(err, DP_ERR_IO, "store %s: cannot use WAL mode (journal mode is %s)", path,
                     mode);
        goto fail;
    }
    if ((st = exec_sql(s, "PRAGMA synchronous = NORMAL", "setting synchronous", err)) != DP_OK)
        goto fail;
    if (version < STORE_SCHEMA_VERSION && (st = migrate(s, err)) != DP_OK) goto fail;

    for (int i = 0; i < N_STMTS; i++) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[i],
                               NULL) != SQLITE_OK) {
            st = db_fail(s, err, "preparing statements");
            goto fail;
        }
    }
    *out = s;
    return DP_OK;
fail:
    store_close(s);
    return st;
}

void store_close(Store *s) {
    if (!s) return;
    for (int i = 0; i < N_STMTS; i++) sqlite3_finalize(s->stmts[i]);
    if (s->db) {
        if (s->in_tx) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(s->db);
    }
    free(s->path);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

DpStatus store_journal_mode(Store *s, char out[16], DpError *err) {
    sqlite3_stmt *q = NULL;
    out[0] = '\0';
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, err, "reading journal mode");
    if (sqlite3_step(q) == SQLITE_ROW && col_text(q, 0)) snprintf(out, 16, "%s", col_text(q, 0));
    sqlite3_finalize(q);
    return DP_OK;
}

DpStatus store_begin(Store *s, DpError *err) {
    pthread_mutex_lock(&s->mu);
    DpStatus st;
    if (s->in_tx) st = dp_fail(err, DP_ERR_STATE, "store %s: a transaction is already open", s->path);
    else if ((st = exec_sql(s, "BEGIN IMMEDIATE", "begin", err)) == DP_OK) s->in_tx = 1;
    pthread_mutex_unlock(&s->mu);
    return st;
}

static DpStatus end_tx(Store *s, const char *sql, DpError *err) {
    pthread_mutex_lock(&s->mu);
    DpStatus st;
    if (!s->in_tx) {
        st = dp_fail(err, DP_ERR_STATE, "store %s: %s without a transaction", s->path, sql);
    } else {
        st = exec_sql(s, sql, sql, err);
        /* A failed COMMIT may leave the transaction open; SQLite says which. */
        s->in_tx = !sqlite3_get_autocommit(s->db);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

DpStatus store_commit(Store *s, DpError *err) { return end_tx(s, "COMMIT", err); }
DpStatus store_rollback(Store *s, DpError *err) { return end_tx(s, "ROLLBACK", err); }

// ---- inserts ----

/* JSON array of numbers (NaN and infinities as null). */
static DpStatus vector_json(DpBuf *b, const double *v, int n) {
    if (dp_buf_append(b, "[", 1)) return DP_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        char num[32];
        if (isfinite(v[i])) fmt_real(v[i], num);
        else strcpy(num, "null");
        if (dp_buf_printf(b, "%s%s", i ? "," : "", num)) return DP_ERR_NOMEM;
    }
    return dp_buf_append(b, "]", 1);
}

/* JSON array of strings, escaping quote, backslash and control bytes. */
static DpStatus names_json(DpBuf *b, const char *const *names, int n) {
    if (dp_buf_append(b, "[", 1)) return DP_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        if ((i && dp_buf_append(b, ",", 1)) || dp_buf_append(b, "\"", 1)) return DP_ERR_NOMEM;
        for (const unsigned char *p = (const unsigned char *)(names && names[i] ? names[i] : "");
             *p; p++) {
            DpStatus st;
            if (*p == '"' || *p == '\\') st = dp_buf_printf(b, "\\%c", *p);
            else if (*p < 0x20) st = dp_buf_printf(b, "\\u%04x", *p);
            else st = dp_buf_append(b, p, 1);
            if (st) return DP_ERR_NOMEM;
        }
        if (dp_buf_append(b, "\"", 1)) return DP_ERR_NOMEM;
    }
    return dp_buf_append(b, "]", 1);
}

DpStatus store_add_metric_sample(Store *s, const StoreMetricSample *m, DpError *err) {
    if (!m->target || !m->name)
        return dp_fail(err, DP_ERR_INVAL, "store: metric sample needs a target and a name");
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[INS_SAMPLE];
    bind_real(q, 1, m->ts);
    bind_text(q, 2, m->run_id);
    bind_text(q, 3, m->target);
    bind_text(q, 4, m->name);
    bind_text(q, 5, m->labels ? m->labels : "");
    bind_real(q, 6, m->value);
    DpStatus st = run_stmt(s, q, "adding metric sample", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

DpStatus store_add_state(Store *s, const StoreState *x, DpError *err) {
    if (x->n < 0 || (x->n > 0 && !x->vector))
        return dp_fail(err, DP_ERR_INVAL, "store: state with %d entries and no vector", x->n);
    DpBuf v = DP_BUF_INIT, nm = DP_BUF_INIT;
    if (vector_json(&v, x->vector, x->n) || names_json(&nm, x->names, x->n)) {
        dp_buf_free(&v);
        dp_buf_free(&nm);
        return dp_fail(err, DP_ERR_NOMEM, "store: out of memory");
    }
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[INS_STATE];
    bind_real(q, 1, x->ts);
    bind_text(q, 2, x->run_id);
    bind_text(q, 3, x->profile);
    sqlite3_bind_int(q, 4, x->n);
    bind_text(q, 5, v.data);
    bind_text(q, 6, nm.data);
    DpStatus st = run_stmt(s, q, "adding state", err);
    pthread_mutex_unlock(&s->mu);
    dp_buf_free(&v);
    dp_buf_free(&nm);
    return st;
}

DpStatus store_add_decision(Store *s, const StoreDecision *d, DpError *err) {
    if (!d->action) return dp_fail(err, DP_ERR_INVAL, "store: decision without an action");
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[INS_DECISION];
    bind_real(q, 1, d->ts);
    bind_text(q, 2, d->run_id);
    bind_text(q, 3, d->policy);
    bind_text(q, 4, d->action);
    bind_text(q, 5, d->target);
    bind_text(q, 6, d->reason);
    sqlite3_bind_int(q, 7, d->executed ? 1 : 0);
    bind_text(q, 8, d->error);
    DpStatus st = run_stmt(s, q, "adding decision", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

DpStatus store_add_job(Store *s, const StoreJob *j, int64_t *id, DpError *err) {
    if (!j->kind || !j->status)
        return dp_fail(err, DP_ERR_INVAL, "store: job needs a kind and a status");
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[INS_JOB];
    bind_text(q, 1, j->run_id);
    bind_text(q, 2, j->kind);
    bind_text(q, 3, j->target);
    bind_real(q, 4, j->started);
    bind_real(q, 5, j->finished);
    bind_text(q, 6, j->status);
    bind_real(q, 7, j->duration_s);
    bind_real(q, 8, j->cost);
    bind_text(q, 9, j->record_json);
    DpStatus st = run_stmt(s, q, "adding job", err);
    if (st == DP_OK && id) *id = sqlite3_last_insert_rowid(s->db);
    pthread_mutex_unlock(&s->mu);
    return st;
}

DpStatus store_finish_job(Store *s, int64_t id, double finished, const char *status,
                          double duration_s, double cost, const char *record_json, DpError *err) {
    if (!status) return dp_fail(err, DP_ERR_INVAL, "store: finishing job %lld without a status",
                                (long long)id);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[FIN_JOB];
    bind_real(q, 1, finished);
    bind_text(q, 2, status);
    bind_real(q, 3, duration_s);
    bind_real(q, 4, cost);
    bind_text(q, 5, record_json);
    sqlite3_bind_int64(q, 6, id);
    DpStatus st = run_stmt(s, q, "finishing job", err);
    if (st == DP_OK && sqlite3_changes(s->db) == 0)
        st = dp_fail(err, DP_ERR_INVAL, "store %s: no job with id %lld", s->path, (long long)id);
    pthread_mutex_unlock(&s->mu);
    return st;
}

DpStatus store_add_deployment(Store *s, const StoreDeployment *d, DpError *err) {
    if (!d->kind || (strcmp(d->kind, "deploy") != 0 && strcmp(d->kind, "rollback") != 0))
        return dp_fail(err, DP_ERR_INVAL, "store: deployment kind \"%s\": must be deploy or rollback",
                       d->kind ? d->kind : "(null)");
    if (!d->target || !d->version)
        return dp_fail(err, DP_ERR_INVAL, "store: deployment needs a target and a version");
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[INS_DEPLOYMENT];
    bind_real(q, 1, d->ts);
    bind_text(q, 2, d->run_id);
    bind_text(q, 3, d->target);
    bind_text(q, 4, d->version);
    bind_text(q, 5, d->previous_version);
    bind_text(q, 6, d->kind);
    DpStatus st = run_stmt(s, q, "adding deployment", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

DpStatus store_add_cost(Store *s, const StoreCost *c, DpError *err) {
    if (!c->target) return dp_fail(err, DP_ERR_INVAL, "store: cost without a target");
    if (!isfinite(c->amount))
        return dp_fail(err, DP_ERR_INVAL, "store: cost amount %g for %s is not finite", c->amount,
                       c->target);
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[INS_COST];
    bind_real(q, 1, c->ts);
    bind_text(q, 2, c->run_id);
    bind_text(q, 3, c->target);
    bind_real(q, 4, c->amount);
    bind_text(q, 5, c->kind);
    DpStatus st = run_stmt(s, q, "adding cost", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

DpStatus store_add_event(Store *s, const StoreEvent *e, DpError *err) {
    if (!e->kind) return dp_fail(err, DP_ERR_INVAL, "store: event without a kind");
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[INS_EVENT];
    bind_real(q, 1, e->ts);
    bind_text(q, 2, e->run_id);
    bind_text(q, 3, e->kind);
    bind_text(q, 4, e->message);
    DpStatus st = run_stmt(s, q, "adding event", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

DpStatus store_add_experiment(Store *s, const StoreExperiment *x, int64_t *id, DpError *err) {
    if (!x->name) return dp_fail(err, DP_ERR_INVAL, "store: experiment without a name");
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[INS_EXPERIMENT];
    bind_text(q, 1, x->name);
    bind_text(q, 2, x->config_json);
    bind_real(q, 3, x->started);
    bind_real(q, 4, x->finished);
    DpStatus st = run_stmt(s, q, "adding experiment", err);
    if (st == DP_OK && id) *id = sqlite3_last_insert_rowid(s->db);
    pthread_mutex_unlock(&s->mu);
    return st;
}

DpStatus store_finish_experiment(Store *s, int64_t id, double finished, DpError *err) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *q = s->stmts[FIN_EXPERIMENT];
    bind_real(q, 1, finished);
    sqlite3_bind_int64(q, 2, id);
    DpStatus st = run_stmt(s, q, "finishing experiment", err);
    if (st == DP_OK && sqlite3_changes(s->db) == 0)
        st = dp_fail(err, DP_ERR_INVAL, "store %s: no experiment with id %lld", s->path,
                     (long long)id);
    pthread_mutex_unlock(&s->mu);
    return st;
}

// ---- readers ----

/* Parses the stored JSON number array (written by vector_json) into v[n]. */
static int parse_vector(const char *text, double *v, int n) {
    const char *p = text ? text : "";
    while (*p == ' ') p++;
    if (*p++ != '[') return -1;
    for (int i = 0; i < n; i++) {
        while (*p == ' ' || *p == ',') p++;
        if (!strncmp(p, "null", 4)) {
            v[i] = NAN;
            p += 4;
            continue;
        }
        char *e;
        v[i] = strtod(p, &e);
        if (e == p) return -1;
        p = e;
    }
    return 0;
}

/* Parses the stored JSON string array (written by names_json) into names[n],
 * each a new string. */
static int parse_names(const char *text, char **names, int n) {
    const char *p = text ? text : "";
    if (*p++ != '[') return -1;
    for (int i = 0; i < n; i++) {
        while (*p == ' ' || *p == ',') p++;
        if (*p++ != '"') return -1;
        DpBuf b = DP_BUF_INIT;
        while (*p && *p != '"') {
            char ch = *p++;
            if (ch == '\\') {
                char e = *p++;
                if (e == 'u') {
                    char hex[5] = {0};
                    for (int k = 0; k < 4 && *p; k++) hex[k] = *p++;
                    ch = (char)strtoul(hex, NULL, 16); /* only control bytes are written so */
                } else if (e == 'n') ch = '\n';
                else if (e == 't') ch = '\t';
                else if (e == '\0') break;
                else ch = e;
            }
            if (dp_buf_append(&b, &ch, 1)) {
                dp_buf_free(&b);
                return -1;
            }
        }
        if (*p++ != '"') {
            dp_buf_free(&b);
            return -1;
        }
        if (!b.data && dp_buf_append(&b, "", 0)) return -1;
        names[i] = b.data;
    }
    return 0;
}

/* Prepares sql, binding ?1 to run_id (NULL matches every run). */
static DpStatus prepare_run(Store *s, const char *sql, const char *run_id, sqlite3_stmt **q,
                            DpError *err) {
    if (sqlite3_prepare_v2(s->db, sql, -1, q, NULL) != SQLITE_OK) return db_fail(s, err, sql);
    bind_text(*q, 1, run_id);
    return DP_OK;
}

/* Steps q, calling row(q, user) for each row until it returns nonzero. */
static DpStatus each_row(Store *s, sqlite3_stmt *q, int (*row)(sqlite3_stmt *, void *, void *),
                         void *fn, void *user, const char *what, DpError *err) {
    DpStatus st = DP_OK;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        if (row(q, fn, user)) break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = db_fail(s, err, what);
    sqlite3_finalize(q);
    return st;
}

static int row_sample(sqlite3_stmt *q, void *fn, void *user) {
    StoreMetricSample m = {col_real(q, 0), col_text(q, 1), col_text(q, 2),
                           col_text(q, 3), col_text(q, 4), col_real(q, 5)};
    return ((StoreMetricSampleFn)fn)(&m, user);
}

DpStatus store_each_metric_sample(Store *s, const char *target, const char *name, double t0,
                                  double t1, StoreMetricSampleFn fn, void *user, DpError *err) {
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = DP_OK;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT ts, run_id, target, name, labels, value FROM metric_samples"
                           " WHERE (?1 IS NULL OR target = ?1) AND (?2 IS NULL OR name = ?2)"
                           " AND ts >= ?3 AND ts < ?4 ORDER BY ts, id",
                           -1, &q, NULL) != SQLITE_OK)
        st = db_fail(s, err, "querying metric samples");
    if (st == DP_OK) {
        bind_text(q, 1, target);
        bind_text(q, 2, name);
        sqlite3_bind_double(q, 3, isnan(t0) ? -INFINITY : t0);
        sqlite3_bind_double(q, 4, isnan(t1) ? INFINITY : t1);
        st = each_row(s, q, row_sample, (void *)fn, user, "reading metric samples", err);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

typedef struct {
    StoreStateFn fn;
    void *user;
    int bad;
} StateCtx;

static int row_state(sqlite3_stmt *q, void *fn, void *ctxp) {
    (void)fn;
    StateCtx *ctx = ctxp;
    int n = sqlite3_column_int(q, 3);
    if (n < 0 || n > 1 << 20) {
        ctx->bad = 1;
        return 1;
    }
    double *v = calloc((size_t)n + 1, sizeof *v);
    char **names = calloc((size_t)n + 1, sizeof *names);
    int stop = 1;
    if (!v || !names || parse_vector(col_text(q, 4), v, n) || parse_names(col_text(q, 5), names, n)) {
        ctx->bad = 1;
    } else {
        StoreState x = {col_real(q, 0), col_text(q, 1), col_text(q, 2), n, v,
                        (const char *const *)names};
        stop = ctx->fn(&x, ctx->user);
    }
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(v);
    return stop;
}

DpStatus store_each_state(Store *s, const char *run_id, StoreStateFn fn, void *user, DpError *err) {
    sqlite3_stmt *q = NULL;
    StateCtx ctx = {fn, user, 0};
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s,
                              "SELECT ts, run_id, profile, n, vector, names FROM states"
                              " WHERE (?1 IS NULL OR run_id = ?1) ORDER BY ts, id",
                              run_id, &q, err);
    if (st == DP_OK) st = each_row(s, q, row_state, NULL, &ctx, "reading states", err);
    if (st == DP_OK && ctx.bad)
        st = dp_fail(err, DP_ERR_PARSE, "store %s: a state row has a malformed vector or names",
                     s->path);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int row_decision(sqlite3_stmt *q, void *fn, void *user) {
    StoreDecision d = {col_real(q, 0), col_text(q, 1), col_text(q, 2), col_text(q, 3),
                       col_text(q, 4), col_text(q, 5), sqlite3_column_int(q, 6), col_text(q, 7)};
    return ((StoreDecisionFn)fn)(&d, user);
}

DpStatus store_each_decision(Store *s, const char *run_id, StoreDecisionFn fn, void *user,
                             DpError *err) {
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s,
                              "SELECT ts, run_id, policy, action, target, reason, executed, error"
                              " FROM decisions WHERE (?1 IS NULL OR run_id = ?1) ORDER BY ts, id",
                              run_id, &q, err);
    if (st == DP_OK) st = each_row(s, q, row_decision, (void *)fn, user, "reading decisions", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int row_job(sqlite3_stmt *q, void *fn, void *user) {
    StoreJob j = {sqlite3_column_int64(q, 0), col_text(q, 1), col_text(q, 2), col_text(q, 3),
                  col_real(q, 4), col_real(q, 5), col_text(q, 6), col_real(q, 7),
                  col_real(q, 8), col_text(q, 9)};
    return ((StoreJobFn)fn)(&j, user);
}

DpStatus store_each_job(Store *s, const char *run_id, StoreJobFn fn, void *user, DpError *err) {
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s,
                              "SELECT id, run_id, kind, target, started, finished, status,"
                              " duration_s, cost, record_json FROM jobs"
                              " WHERE (?1 IS NULL OR run_id = ?1) ORDER BY started, id",
                              run_id, &q, err);
    if (st == DP_OK) st = each_row(s, q, row_job, (void *)fn, user, "reading jobs", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int row_deployment(sqlite3_stmt *q, void *fn, void *user) {
    StoreDeployment d = {col_real(q, 0), col_text(q, 1), col_text(q, 2),
                         col_text(q, 3), col_text(q, 4), col_text(q, 5)};
    return ((StoreDeploymentFn)fn)(&d, user);
}

DpStatus store_each_deployment(Store *s, const char *run_id, StoreDeploymentFn fn, void *user,
                               DpError *err) {
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s,
                              "SELECT ts, run_id, target, version, previous_version, kind"
                              " FROM deployments WHERE (?1 IS NULL OR run_id = ?1)"
                              " ORDER BY ts, id",
                              run_id, &q, err);
    if (st == DP_OK)
        st = each_row(s, q, row_deployment, (void *)fn, user, "reading deployments", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int row_cost(sqlite3_stmt *q, void *fn, void *user) {
    StoreCost c = {col_real(q, 0), col_text(q, 1), col_text(q, 2), col_real(q, 3),
                   col_text(q, 4)};
    return ((StoreCostFn)fn)(&c, user);
}

DpStatus store_each_cost(Store *s, const char *run_id, StoreCostFn fn, void *user, DpError *err) {
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s,
                              "SELECT ts, run_id, target, amount, kind FROM costs"
                              " WHERE (?1 IS NULL OR run_id = ?1) ORDER BY ts, id",
                              run_id, &q, err);
    if (st == DP_OK) st = each_row(s, q, row_cost, (void *)fn, user, "reading costs", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int row_event(sqlite3_stmt *q, void *fn, void *user) {
    StoreEvent e = {col_real(q, 0), col_text(q, 1), col_text(q, 2), col_text(q, 3)};
    return ((StoreEventFn)fn)(&e, user);
}

DpStatus store_each_event(Store *s, const char *run_id, StoreEventFn fn, void *user, DpError *err) {
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s,
                              "SELECT ts, run_id, kind, message FROM events"
                              " WHERE (?1 IS NULL OR run_id = ?1) ORDER BY ts, id",
                              run_id, &q, err);
    if (st == DP_OK) st = each_row(s, q, row_event, (void *)fn, user, "reading events", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int row_experiment(sqlite3_stmt *q, void *fn, void *user) {
    StoreExperiment x = {sqlite3_column_int64(q, 0), col_text(q, 1), col_text(q, 2),
                         col_real(q, 3), col_real(q, 4)};
    return ((StoreExperimentFn)fn)(&x, user);
}

DpStatus store_each_experiment(Store *s, StoreExperimentFn fn, void *user, DpError *err) {
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s,
                              "SELECT id, name, config_json, started, finished FROM experiments"
                              " ORDER BY started, id",
                              NULL, &q, err);
    if (st == DP_OK)
        st = each_row(s, q, row_experiment, (void *)fn, user, "reading experiments", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int row_cost_total(sqlite3_stmt *q, void *fn, void *user) {
    return ((StoreCostTotalFn)fn)(col_text(q, 0), sqlite3_column_double(q, 1),
                                  sqlite3_column_int64(q, 2), user);
}

DpStatus store_cost_by_target(Store *s, const char *run_id, StoreCostTotalFn fn, void *user,
                              DpError *err) {
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s,
                              "SELECT target, total(amount), count(*) FROM costs"
                              " WHERE (?1 IS NULL OR run_id = ?1) GROUP BY target ORDER BY target",
                              run_id, &q, err);
    if (st == DP_OK)
        st = each_row(s, q, row_cost_total, (void *)fn, user, "summing costs", err);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static int table_index(const char *table) {
    for (int i = 0; table && i < (int)(sizeof tables / sizeof tables[0]); i++)
        if (!strcmp(tables[i].name, table)) return i;
    return -1;
}

DpStatus store_count(Store *s, const char *table, const char *run_id, int64_t *n, DpError *err) {
    int t = table_index(table);
    if (t < 0) return dp_fail(err, DP_ERR_INVAL, "store: unknown table \"%s\"", table ? table : "");
    if (run_id && !tables[t].has_run_id)
        return dp_fail(err, DP_ERR_INVAL, "store: table %s has no run_id", table);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s%s", tables[t].name,
             tables[t].has_run_id ? " WHERE (?1 IS NULL OR run_id = ?1)" : "");
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s, sql, run_id, &q, err);
    if (st == DP_OK) {
        if (sqlite3_step(q) == SQLITE_ROW) *n = sqlite3_column_int64(q, 0);
        else st = db_fail(s, err, "counting rows");
        sqlite3_finalize(q);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

// ---- CSV ----

/* RFC 4180: quote a field holding a comma, quote, CR or LF (or leading or
 * trailing spaces, which some readers trim), doubling inner quotes. */
static void csv_text(FILE *out, const char *v) {
    size_t n = strlen(v);
    int quote = strpbrk(v, ",\"\r\n") != NULL || (n && (v[0] == ' ' || v[n - 1] == ' '));
    if (!quote) {
        fputs(v, out);
        return;
    }
    fputc('"', out);
    for (const char *p = v; *p; p++) {
        if (*p == '"') fputc('"', out);
        fputc(*p, out);
    }
    fputc('"', out);
}

DpStatus store_export_csv(Store *s, const char *table, const char *run_id, FILE *out,
                          DpError *err) {
    int t = table_index(table);
    if (t < 0)
        return dp_fail(err, DP_ERR_INVAL,
                       "store: unknown table \"%s\" (metric_samples, states, decisions, jobs, "
                       "deployments, costs, events, experiments)",
                       table ? table : "");
    if (run_id && !tables[t].has_run_id)
        return dp_fail(err, DP_ERR_INVAL, "store: table %s has no run_id to filter on", table);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT * FROM %s%s ORDER BY %s, id", tables[t].name,
             tables[t].has_run_id ? " WHERE (?1 IS NULL OR run_id = ?1)" : "",
             tables[t].time_col);
    sqlite3_stmt *q = NULL;
    pthread_mutex_lock(&s->mu);
    DpStatus st = prepare_run(s, sql, run_id, &q, err);
    if (st != DP_OK) goto out;
    int nc = sqlite3_column_count(q);
    for (int i = 0; i < nc; i++) {
        if (i) fputc(',', out);
        csv_text(out, sqlite3_column_name(q, i));
    }
    fputc('\n', out);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        for (int i = 0; i < nc; i++) {
            if (i) fputc(',', out);
            char num[32];
            switch (sqlite3_column_type(q, i)) {
            case SQLITE_NULL: break;
            case SQLITE_INTEGER: fprintf(out, "%lld", (long long)sqlite3_column_int64(q, i)); break;
            case SQLITE_FLOAT:
                fmt_real(sqlite3_column_double(q, i), num);
                fputs(num, out);
                break;
            default: csv_text(out, col_text(q, i) ? col_text(q, i) : ""); break;
            }
        }
        fputc('\n', out);
    }
    if (rc != SQLITE_DONE) st = db_fail(s, err, "exporting CSV");
    else if (ferror(out)) st = dp_fail(err, DP_ERR_IO, "store: writing CSV of %s failed", table);
    sqlite3_finalize(q);
out:
    pthread_mutex_unlock(&s->mu);
    return st;
}
