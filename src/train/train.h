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

// ==== pretrain and retrain ====
/*
 * The built-in model and the retrain job (pretrain.c, retrain.c, and the
 * shared pieces in trainer.c and data.c).
 *
 * pretrain_run trains a small GPT-2 from scratch on the drifting QA world at
 * t = 0 (every fact in every training phrasing, 2-digit arithmetic, reading
 * comprehension), with its own byte-level BPE vocabulary (service names and
 * attribute values as whole tokens, digits kept apart), and writes a Hugging
 * Face directory plus driftpilot_world.json (the world it learned, so the
 * retrain job can regenerate replay and canary data) and pretrain_report.json.
 *
 * retrain_run fine-tunes a model directory (or a registry version) on a
 * labelled window (JSON lines or SQuAD JSON) mixed with replay of older data,
 * scores before/after on a held-out part of the window and on a fixed canary
 * set, and publishes to the registry only when the canary gate passes.
 *
 * The lower-level pieces (TrainRows, train_step, train_evaluate,
 * train_load_labelled) are public so that tests and other jobs can use them.
 *
 * Ownership: *_free functions are NULL-safe and safe on zeroed structs.
 * Reports are plain structs filled by the run; the json_t in them is owned
 * by the report (pretrain_report_free / retrain_report_free).
 * Threads: one run at a time per model; the kernels use both cores.
 */
#include "nn.h"
#include "qa.h"

/* Categories used for row mixing and per-category scores. */
typedef enum {
    TRAIN_CAT_FACT = 0,
    TRAIN_CAT_COMPREHENSION,
    TRAIN_CAT_ARITHMETIC,
    TRAIN_CAT_OTHER,      /* SQuAD rows and anything else */
} TrainCat;
#define TRAIN_N_CATS 4
const char *train_cat_name(int cat);  /* "fact", "comprehension", ... */
int train_cat_of_kind(QaKind kind);

/* A tokenized example: ids = prompt tokens then answer tokens (" ans\n"). */
typedef struct {
    int *ids;
    int n_ids;
    int n_prompt;
    int cat;
} TrainRow;

typedef struct {
    TrainRow *rows;
    size_t n, cap;
    size_t n_truncated;   /* rows whose prompt was cut from the left to fit */
} TrainRows;

/* Tokenizes one example in the qa prompt format (prompt and answer encoded
 * separately, exactly as serving sees them) and appends it.  Rows longer than
 * max_len lose prompt tokens from the left (the answer is kept whole; an
 * answer that alone does not fit is skipped and counted as truncated). */
DpStatus train_rows_add(TrainRows *rows, const BpeTokenizer *tok, const char *question,
                        const char *context, const char *answer, int cat, int max_len,
                        DpError *err);
/* Adds every answerable item of ds (first answer as the target). */
DpStatus train_rows_add_dataset(TrainRows *rows, const BpeTokenizer *tok, const QaDataset *ds,
                                int max_len, DpError *err);
void train_rows_free(TrainRows *rows);

/* Cosine schedule: linear warmup over warmup_frac, then cosine from peak to
 * peak*min_frac.  progress in [0, 1]. */
float train_lr_at(float peak, float warmup_frac, float min_frac, double progress);

/* One optimizer step on n rows (padded to the longest, padding masked, loss
 * on answer tokens only): forward, backward, clip, AdamW.  The model must be
 * reserved for training with max_B >= n and max_T >= longest row - 1.
 * *loss gets the mean answer-token loss, *tokens the padded tokens computed. */
DpStatus train_step(Gpt2 *model, const TrainRow *const *batch, int n, const Gpt2AdamW *opt,
                    int step, float clip, int pad_id, float *loss, long *tokens, DpError *err);
/* Mean answer-token loss over rows without updating (for a validation set). */
DpStatus train_loss(Gpt2 *model, const TrainRows *rows, int batch, int pad_id, double *loss,
                    DpError *err);

/* Scores of one evaluation, overall and per category. */
typedef struct {
    QaCorpusScores all;
    QaCorpusScores cat[TRAIN_N_CATS];
    double seconds;
} TrainEval;

/* Greedy decoding (through Gpt2Generator, stop at the first newline) of every
 * answerable item of ds, scored with the qa metrics against all references.
 * correct (may be NULL) gets 1/0 exact match per item of ds (-1 for skipped
 * impossible items); predictions (may be NULL) gets a malloc'd array of
 * malloc'd strings (free with train_predictions_free). */
DpStatus train_evaluate(const Gpt2 *model, const BpeTokenizer *tok, const QaDataset *ds,
                        TrainEval *out, int *correct, char ***predictions, DpError *err);
void train_predictions_free(char **p, size_t n);
/* {"n","bleu1","exact_match","f1","by_category":{...}} */
json_t *train_eval_json(const TrainEval *e);

/* Loads labelled data: a SQuAD JSON file (v1.1/v2.0; detected by a top-level
 * object with "data"), or JSON lines of {"question", "context"?, "reference"
 * (string or array) | "references" | "answer" | "answers", "kind"?,
 * "entity"?, "attribute"?, "changed"?}; blank lines are skipped, a bad line
 * is DP_ERR_PARSE naming file and line.  ds is initialised by the call. */
DpStatus train_load_labelled(const char *path, QaDataset *ds, DpError *err);

/* The world config a model was pretrained on (driftpilot_world.json). */
DpStatus train_world_save(const QaWorldConfig *cfg, const char *dir, DpError *err);
/* DP_OK with *found 0 when dir has no world file. */
DpStatus train_world_load(const char *dir, QaWorldConfig *cfg, int *found, DpError *err);

/* 2-digit arithmetic pairs held out of pretraining (about 10%), so that
 * arithmetic is evaluated on pairs the model never saw.  Parses the two
 * operands from question; 0 when it has none. */
int train_arith_heldout(const char *question, int minus);

/* ---- pretrain ---- */
typedef struct {
    QaWorldConfig world;   /* the world at t = 0 that the model learns */
    int n_layer, n_head, n_embd, n_positions;
    int vocab_size;        /* BPE target (bytes + merges + forced + eot) */
    double minutes;        /* time budget; 0: use max_steps */
    int max_steps;         /* > 0: stop (and schedule the LR) by steps */
    int batch;
    int arith_batch;       /* rows per arithmetic step (short rows: more of them) */
    float lr, warmup_frac, min_lr_frac, weight_decay, clip;
    double mix_fact, mix_comprehension, mix_arithmetic;  /* step shares */
    int eval_n;            /* items per evaluation category */
    uint64_t seed;
    int quiet;             /* no progress on stderr */
} PretrainConfig;

/* The built-in defaults (world: 64 services x 4 attributes; model 4 x 128). */
void pretrain_config_default(PretrainConfig *cfg);

typedef struct {
    double seconds;            /* training loop wall time */
    double total_seconds;      /* including tokenizer, data, evaluation, saving */
    int steps;
    double tokens_per_s;       /* padded tokens computed per second */
    double answer_tokens_per_s;
    double final_loss;         /* mean answer-token loss over the last 50 steps */
    int vocab_size;
    size_t n_params;
    size_t n_fact_rows;
    double fact_epochs;        /* passes over the fact rows */
    TrainEval facts_train;     /* every t=0 fact, training phrasings (up to eval_n) */
    TrainEval facts_heldout;   /* held-out phrasing */
    TrainEval arithmetic;      /* held-out pairs */
    TrainEval comprehension;
    TrainEval traffic;         /* drawn as traffic draws at t = 0 */
    json_t *json;              /* the report written to pretrain_report.json */
} PretrainReport;
void pretrain_report_free(PretrainReport *r);

/* Trains and writes out_dir (created): config.json, model.safetensors,
 * vocab.json, merges.txt, added_tokens.json, driftpilot_world.json,
 * pretrain_report.json. */
DpStatus pretrain_run(const PretrainConfig *cfg, const char *out_dir, PretrainReport *report,
                      DpError *err);

/* ---- retrain ---- */
typedef struct {
    const char *from;          /* a model directory, or a version of registry_dir */
    const char *data_path;     /* the labelled window (JSON lines or SQuAD) */
    const char *registry_dir;  /* NULL: no publishing (gate still evaluated) */
    const char *target;        /* promote the new version on this target (NULL: no) */
    const char *out_dir;       /* where the fine-tuned model is written (NULL: a
                                  temporary directory, removed after publishing) */
    const char *canary_path;   /* fixed canary set; NULL: regenerated from the
                                  model's world (arithmetic, comprehension, and
                                  facts the window does not touch) or, without
                                  a world, the held-out part of the window */
    const char *replay_path;   /* replay rows from a file instead of the world */
    const char *record_path;   /* job record JSON (NULL: not written) */
    const char *eval_path;     /* optional extra set scored before and after, by
                                  category and (world rows) by changed/unchanged
                                  fact and window coverage: record "eval" */
    int window;                /* use the last `window` rows of the data */
    double heldout_frac;       /* share of the window held out for evaluation */
    int epochs;
    int min_steps;             /* more epochs when epochs give fewer steps (0: off) */
    int replay;                /* replay rows per epoch; < 0: 1.5 x the window's
                                  training rows (the default) */
    int augment;               /* re-ask window facts in every training phrasing */
    float lr, warmup_frac, min_lr_frac, weight_decay, clip;
    int batch;
    int max_steps;             /* > 0: stop after this many steps (timing runs);
                                  the record extrapolates the full job */
    int canary_n;
    double gate_margin;        /* canary EM may drop by at most this much */
    uint64_t seed;
    int quiet;
} RetrainConfig;

/* The defaults (what works); retrain_config_study sets the study's setting
 * (1000 rows, 5 epochs, 500 replay rows, no augmentation). */
void retrain_config_default(RetrainConfig *cfg);
void retrain_config_study(RetrainConfig *cfg);

typedef struct {
    double seconds;            /* whole job */
    double train_seconds;
    double tokens_per_s;
    int steps;
    int n_window, n_train, n_heldout, n_replay_pool, n_canary;
    TrainEval heldout_before, heldout_after;
    TrainEval canary_before, canary_after;
    TrainEval eval_before, eval_after;  /* eval_path (all zero without) */
    int gate_passed;
    char gate_reason[256];
    char parent[REGISTRY_ID_MAX];
    char version[REGISTRY_ID_MAX];  /* "" when nothing was published */
    char fingerprint[80];          /* "sha256:<hex>" of the data file */
    json_t *record;                /* the job record */
} RetrainReport;
void retrain_report_free(RetrainReport *r);

/* Runs the job.  A refused gate is not an error: DP_OK with gate_passed 0. */
DpStatus retrain_run(const RetrainConfig *cfg, RetrainReport *report, DpError *err);
// ==== end pretrain and retrain ====

#endif
