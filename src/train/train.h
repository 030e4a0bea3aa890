/*
 * train: everything that produces model versions -- pretraining of the
 * built-in base model, the retrain job (fine-tune + evaluate + publish), and
 * the model registry that stores the versions and says which one each
 * deployment target runs.
 *
 * Each part of this header is one section (`// ==== name ====`); engineers
 * add their section beside the others.
 *
 * Thread safety: a Registry handle must not be used by two threads at once;
 * any number of processes may use the same registry directory at once (writes
 * take an exclusive flock, reads rely on atomic renames).
 */
#ifndef DRIFTPILOT_TRAIN_H
#define DRIFTPILOT_TRAIN_H

#include <jansson.h>
#include <stddef.h>

#include "core.h"

// ==== registry ====
/*
 * The model registry: a directory of immutable model versions, each a Hugging
 * Face model directory (config.json, model.safetensors, vocab.json,
 * merges.txt, ... treated as opaque files) plus metadata.json, and a
 * `current` pointer per deployment target with a history for rollback.
 *
 * On disk (DIR is the registry directory):
 *
 *     DIR/.lock                   flock(2)ed by every writer (publish, promote,
 *                                 rollback, verify --fix)
 *     DIR/versions/v000001/       one complete version: the model files and
 *         metadata.json           metadata (written last; see below)
 *     DIR/staging/<name>/         a publish in progress (or left by a crash)
 *     DIR/targets/<target>.json   {"target", "current", "history": [...], "log": [...]}
 *
 * Version ids are "v" + 6 zero-padded decimal digits, assigned in publish
 * order (the highest existing id + 1), so they sort by age as strings and as
 * numbers.  "v3" and "3" are accepted as input and mean "v000003".
 *
 * Crash safety: publish copies the files into DIR/staging/<unique>/, fsyncs
 * each, writes metadata.json (with the sha256 and size of every file) last,
 * fsyncs the staging directory, renames it to DIR/versions/vNNNNNN (with
 * RENAME_NOREPLACE) and fsyncs DIR/versions.  Readers only look at
 * DIR/versions/v[0-9]{6}, so a crash at any moment leaves either the old set
 * of versions or the old set plus the complete new one; what a crash leaves
 * in DIR/staging is ignored and removed by the next writer (every staging
 * directory is created and removed under the registry lock, so one that a
 * lock holder sees is from a dead process).  Pointer files are replaced with
 * dp_write_file_atomic (write, fsync, rename, fsync dir).
 *
 * Integrity: registry_open_version, registry_resolve, registry_promote,
 * registry_rollback and registry_verify* re-hash every file and refuse a
 * version whose files are missing, truncated, changed, or joined by files
 * that metadata.json does not list, naming the file (DP_ERR_CHECK).
 *
 * Ownership: a Registry comes from registry_open and is freed with
 * registry_close (NULL-safe).  RegistryMeta, RegistryTarget and
 * RegistryVerifyReport are filled by the registry and freed by the caller
 * with their _free function (NULL-safe, and safe on a zeroed struct).
 *
 *     Registry *reg = NULL;
 *     DpError err = {0};
 *     char v[REGISTRY_ID_MAX], path[4096];
 *     RegistryPublishInfo info = {.parent = "v000002", .data_file = "window.json"};
 *     if (registry_open(".driftpilot/registry", &reg, &err) != DP_OK ||
 *         registry_publish(reg, "out/model", &info, v, &err) != DP_OK ||
 *         registry_promote(reg, v, "aws", &err) != DP_OK)
 *         fprintf(stderr, "%s\n", err.msg);
 *     RegistryMeta m = {0};
 *     registry_resolve(reg, "aws", &m, path, sizeof path, &err); // verified dir
 *     registry_meta_free(&m);
 *     registry_close(reg);
 */

#define REGISTRY_ID_MAX 16      /* "v000001" and its NUL fit with room */
#define REGISTRY_TARGET_MAX 64  /* target names: [A-Za-z0-9_-], 1..63 chars */

typedef struct Registry Registry;

/* One file of a version, as metadata.json records it. */
typedef struct {
    char *name;          /* file name inside the version directory */
    long long bytes;
    char sha256[65];     /* lowercase hex */
} RegistryFile;

/* A version's metadata (metadata.json). */
typedef struct {
    char version[REGISTRY_ID_MAX];  /* "v000003" */
    char parent[REGISTRY_ID_MAX];   /* "" when the version has no parent */
    double created;                 /* unix seconds (UTC) */
    char created_iso[32];           /* "2026-11-28T19:04:05Z" */
    char *data_fingerprint;         /* "sha256:<hex>" of the data file, a
                                       caller string, or NULL */
    json_t *metrics;                /* owned reference; always a JSON object */
    json_t *job;                    /* owned reference; object or NULL */
    RegistryFile *files;            /* sorted by name; metadata.json excluded */
    size_t n_files;
} RegistryMeta;

/* What the caller gives to publish; every field may be NULL. */
typedef struct {
    const char *parent;            /* an existing version, or NULL/"" for none */
    const char *data_file;         /* the fingerprint becomes "sha256:<hex of file>" */
    const char *data_fingerprint;  /* used as given when data_file is NULL */
    const json_t *metrics;         /* borrowed; must be an object; NULL = {} */
    const json_t *job;             /* borrowed; the retrain job record (opaque) */
} RegistryPublishInfo;

/* A deployment target's pointer file. */
typedef struct {
    char name[REGISTRY_TARGET_MAX];
    char current[REGISTRY_ID_MAX];  /* "" when nothing is current */
    char (*history)[REGISTRY_ID_MAX]; /* versions that were current, oldest
                                         first; the last is `current` */
    size_t n_history;
} RegistryTarget;

/* What registry_verify found. */
typedef struct {
    size_t n_versions;     /* version directories looked at */
    size_t n_bad_versions; /* of those, unreadable or failing checksums */
    size_t n_targets;
    size_t n_bad_targets;  /* unreadable, or current/history names a missing version */
    size_t n_stale;        /* staging dirs and temp files left by crashes */
    size_t n_removed;      /* of those, removed (fix) */
    DpBuf text;            /* one human-readable line per finding */
} RegistryVerifyReport;

/* Called by writers between the steps of publish/promote/rollback (step is a
 * short name such as "copy model.safetensors" or "rename").  For tests: a
 * hook that sleeps spreads a publish over time so that a kill can land in
 * every step.  NULL removes the hook. */
typedef void (*RegistryStepHook)(void *ctx, const char *step);

/* Opens (creating when missing, like mkdir -p) the registry at dir.
 * On failure *out is NULL and err says why. */
DpStatus registry_open(const char *dir, Registry **out, DpError *err);
void registry_close(Registry *reg);
const char *registry_dir(const Registry *reg);
void registry_set_step_hook(Registry *reg, RegistryStepHook hook, void *ctx);

/* Normalises "v3", "3", "v000003" into out ("v000003").  DP_ERR_INVAL when
 * text is not a version id. */
DpStatus registry_parse_version(const char *text, char out[REGISTRY_ID_MAX], DpError *err);

/* Publishes the regular files of src_model_dir (top level; hidden files are
 * skipped; config.json must be there; subdirectories are refused) as a new
 * version and writes its id to out_version.  Takes the registry lock for the
 * whole copy, so concurrent publishers queue.  Removes staging dirs left by
 * crashed publishers first. */
DpStatus registry_publish(Registry *reg, const char *src_model_dir, const RegistryPublishInfo *info,
                          char out_version[REGISTRY_ID_MAX], DpError *err);

/* All complete versions, oldest first, metadata only (checksums are not
 * re-hashed here).  A version directory whose metadata.json cannot be read is
 * skipped with a warning (registry_verify reports it).  Free with
 * registry_list_free. */
DpStatus registry_list(Registry *reg, RegistryMeta **versions, size_t *n, DpError *err);
void registry_list_free(RegistryMeta *versions, size_t n);

/* Metadata of one version (no re-hash).  DP_ERR_INVAL when there is no such
 * version.  Free with registry_meta_free. */
DpStatus registry_get_meta(Registry *reg, const char *version, RegistryMeta *meta, DpError *err);
void registry_meta_free(RegistryMeta *meta);

/* Re-hashes every file of version against its metadata.  DP_ERR_CHECK naming
 * the file when one is missing, has another size or hash, or is not listed. */
DpStatus registry_verify_version(Registry *reg, const char *version, DpError *err);

/* Verifies version, then fills meta (may be NULL) and its directory path. */
DpStatus registry_open_version(Registry *reg, const char *version, RegistryMeta *meta, char *path,
                               size_t cap, DpError *err);
/* registry_open_version of the current version of target. */
DpStatus registry_resolve(Registry *reg, const char *target, RegistryMeta *meta, char *path,
                          size_t cap, DpError *err);

/* Makes version (verified first) current on target, pushing it on the
 * target's history.  Promoting the version that is already current is a
 * no-op. */
DpStatus registry_promote(Registry *reg, const char *version, const char *target, DpError *err);
/* Pops the current version of target and makes the previous one current
 * again (verified first); writes it to out_version (may be NULL).
 * DP_ERR_STATE when the target has no earlier version. */
DpStatus registry_rollback(Registry *reg, const char *target, char out_version[REGISTRY_ID_MAX],
                           DpError *err);
/* The current version of target.  DP_ERR_STATE when target has none. */
DpStatus registry_current(Registry *reg, const char *target, char out_version[REGISTRY_ID_MAX],
                          DpError *err);
/* All targets, sorted by name.  Free with registry_targets_free. */
DpStatus registry_list_targets(Registry *reg, RegistryTarget **targets, size_t *n, DpError *err);
void registry_targets_free(RegistryTarget *targets, size_t n);

/* Path of a version's directory (it may not exist).  DP_ERR_INVAL when
 * version is not an id or the path does not fit in cap. */
DpStatus registry_version_path(const Registry *reg, const char *version, char *buf, size_t cap);

/* Checks every version (re-hash) and target pointer, and lists what crashes
 * left behind (staging dirs, temp files); with fix, takes the lock and
 * removes those leftovers.  Leftovers alone do not fail the check: returns
 * DP_ERR_CHECK (first problem in err) only when a version or target is bad.
 * report may be NULL; free it with registry_verify_report_free. */
DpStatus registry_verify(Registry *reg, int fix, RegistryVerifyReport *report, DpError *err);
void registry_verify_report_free(RegistryVerifyReport *report);

/* One line summarising a metrics object for tables: the numeric fields of
 * metrics.after (or of metrics itself), e.g. "em=0.812 f1=0.850".  Writes ""
 * when there are none. */
void registry_metrics_summary(const json_t *metrics, char *buf, size_t cap);
// ==== end registry ====

#endif
