/*
 * The model registry: immutable model versions published atomically, a
 * `current` pointer per deployment target with a history for rollback, and
 * checksum verification on every load.  train.h describes the layout on disk.
 *
 * Invariants this file keeps:
 *   - DIR/versions/ only ever gains entries by rename() of a complete staging
 *     directory whose metadata.json (written last) lists every file with its
 *     size and sha256; nothing here writes into a version after the rename.
 *   - Every staging directory is created and removed while the registry lock
 *     (flock on DIR/.lock) is held, so a staging directory seen by a lock
 *     holder belongs to a dead process and may be removed.
 *   - Target pointer files change only by dp_write_file_atomic, under the lock.
 * Readers (list, get_meta, current, verify without fix) take no lock: the
 * renames above give them either the old or the new state.
 */
#include "train.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_CAP 4096
#define COPY_CHUNK (256 * 1024)
#define META_NAME "metadata.json"
#define META_FORMAT 1

struct Registry {
    char *dir;
    char versions[PATH_CAP];
    char staging[PATH_CAP];
    char targets[PATH_CAP];
    char lock_path[PATH_CAP];
    int lock_fd;              /* -1 when the lock is not held */
    RegistryStepHook hook;
    void *hook_ctx;
};

// ---- small helpers ----

static void step(Registry *reg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step(Registry *reg, const char *fmt, ...) {
    if (!reg->hook) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    reg->hook(reg->hook_ctx, buf);
}

static int is_version_name(const char *s) {
    if (s[0] != 'v') return 0;
    for (int i = 1; i <= 6; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return s[7] == '\0' && strcmp(s, "v000000") != 0;
}

static int is_target_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= REGISTRY_TARGET_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* A file name metadata.json may list: one path component, not hidden. */
static int is_plain_file_name(const char *s) {
    return s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 256;
}

static int is_hex64(const char *s) {
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return s[64] == '\0';
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* Names in dir accepted by keep (all when NULL), sorted.  A missing directory
 * lists as empty. */
static DpStatus list_dir(const char *dir, int (*keep)(const char *), char ***out, size_t *n_out,
                         DpError *err) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return DP_OK;
        return dp_fail(err, DP_ERR_IO, "open directory %s: %s", dir, strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    DpStatus st = DP_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (keep && !keep(e->d_name)) continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **p = dp_realloc_array(names, ncap, sizeof *names);
            if (!p) {
                st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
                goto out;
            }
            names = p;
            cap = ncap;
        }
        if (!(names[n] = dp_strdup(e->d_name))) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        n++;
    }
    if (n) qsort(names, n, sizeof *names, cmp_str);
out:
    closedir(d);
    if (st != DP_OK) {
        free_names(names, n);
        return st;
    }
    *out = names;
    *n_out = n;
    return DP_OK;
}

static DpStatus fsync_path(const char *path, int is_dir, DpError *err) {
    int fd = open(path, (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return dp_fail(err, DP_ERR_IO, "open %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    /* some filesystems refuse fsync on directories; that is not fatal */
    if (rc != 0 && !(is_dir && (e == EINVAL || e == EBADF)))
        return dp_fail(err, DP_ERR_IO, "fsync %s: %s", path, strerror(e));
    return DP_OK;
}

/* Removes a directory and the plain files in it (staging dirs are flat). */
static DpStatus remove_flat_dir(const char *dir, DpError *err) {
    char **names = NULL;
    size_t n = 0;
    DpStatus st = list_dir(dir, NULL, &names, &n, err);
    if (st != DP_OK) return st;
    char path[PATH_CAP];
    for (size_t i = 0; i < n && st == DP_OK; i++) {
        st = dp_path_join(path, sizeof path, dir, names[i], err);
        if (st == DP_OK && unlink(path) != 0 && errno != ENOENT)
            st = dp_fail(err, DP_ERR_IO, "remove %s: %s", path, strerror(errno));
    }
    free_names(names, n);
    if (st == DP_OK && rmdir(dir) != 0 && errno != ENOENT)
        st = dp_fail(err, DP_ERR_IO, "remove %s: %s", dir, strerror(errno));
    return st;
}

static void format_iso(double t, char out[32]) {
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

// ---- lock ----

static DpStatus lock_acquire(Registry *reg, const char *why, DpError *err) {
    DP_ASSERT(reg->lock_fd < 0);
    int fd = open(reg->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return dp_fail(err, DP_ERR_IO, "open lock %s: %s", reg->lock_path, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        return dp_fail(err, DP_ERR_IO, "lock %s: %s", reg->lock_path, strerror(e));
    }
    reg->lock_fd = fd;
    step(reg, "lock for %s", why);
    return DP_OK;
}

static void lock_release(Registry *reg) {
    if (reg->lock_fd >= 0) close(reg->lock_fd); /* closing drops the flock */
    reg->lock_fd = -1;
}

// ---- open / close ----

DpStatus registry_open(const char *dir, Registry **out, DpError *err) {
    *out = NULL;
    if (!dir || !*dir) return dp_fail(err, DP_ERR_INVAL, "registry directory is empty");
    Registry *reg = dp_calloc(1, sizeof *reg);
    if (!reg) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    reg->lock_fd = -1;
    DpStatus st = DP_OK;
    if (!(reg->dir = dp_strdup(dir))) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = dp_path_join(reg->versions, PATH_CAP, dir, "versions", err)) != DP_OK ||
        (st = dp_path_join(reg->staging, PATH_CAP, dir, "staging", err)) != DP_OK ||
        (st = dp_path_join(reg->targets, PATH_CAP, dir, "targets", err)) != DP_OK ||
        (st = dp_path_join(reg->lock_path, PATH_CAP, dir, ".lock", err)) != DP_OK)
        goto fail;
    /* PATH_CAP leaves room below for "/vNNNNNN/<file name>" (< 300 bytes) */
    if (strlen(reg->versions) > PATH_CAP - 300) {
        st = dp_fail(err, DP_ERR_INVAL, "registry path too long: %s", dir);
        goto fail;
    }
    if ((st = dp_mkdirs(reg->versions, err)) != DP_OK || (st = dp_mkdirs(reg->staging, err)) != DP_OK ||
        (st = dp_mkdirs(reg->targets, err)) != DP_OK) {
        dp_error_wrap(err, "opening registry %s", dir);
        goto fail;
    }
    *out = reg;
    return DP_OK;
fail:
    registry_close(reg);
    return st;
}

void registry_close(Registry *reg) {
    if (!reg) return;
    lock_release(reg);
    free(reg->dir);
    free(reg);
}

const char *registry_dir(const Registry *reg) { return reg->dir; }

void registry_set_step_hook(Registry *reg, RegistryStepHook hook, void *ctx) {
    reg->hook = hook;
    reg->hook_ctx = ctx;
}

DpStatus registry_parse_version(const char *text, char out[REGISTRY_ID_MAX], DpError *err) {
    const char *p = text ? text : "";
    if (*p == 'v' || *p == 'V') p++;
    size_t nd = strlen(p);
    int ok = nd >= 1 && nd <= 6;
    for (size_t i = 0; ok && i < nd; i++) ok = p[i] >= '0' && p[i] <= '9';
    long v = ok ? strtol(p, NULL, 10) : 0;
    if (!ok || v <= 0)
        return dp_fail(err, DP_ERR_INVAL, "'%s' is not a version id (expected e.g. v000003 or 3)",
                       text ? text : "");
    snprintf(out, REGISTRY_ID_MAX, "v%06ld", v);
    return DP_OK;
}

DpStatus registry_version_path(const Registry *reg, const char *version, char *buf, size_t cap) {
    char id[REGISTRY_ID_MAX];
    if (registry_parse_version(version, id, NULL) != DP_OK) return DP_ERR_INVAL;
    int n = snprintf(buf, cap, "%s/%s", reg->versions, id);
    return (n < 0 || (size_t)n >= cap) ? DP_ERR_INVAL : DP_OK;
}

// ---- metadata ----

void registry_meta_free(RegistryMeta *m) {
    if (!m) return;
    free(m->data_fingerprint);
    json_decref(m->metrics);
    json_decref(m->job);
    for (size_t i = 0; i < m->n_files; i++) free(m->files[i].name);
    free(m->files);
    memset(m, 0, sizeof *m);
}

void registry_list_free(RegistryMeta *versions, size_t n) {
    for (size_t i = 0; i < n; i++) registry_meta_free(&versions[i]);
    free(versions);
}

static json_t *meta_to_json(const RegistryMeta *m) {
    json_t *o = json_object();
    json_t *files = json_array();
    if (!o || !files) goto fail;
    json_object_set_new(o, "format", json_integer(META_FORMAT));
    json_object_set_new(o, "version", json_string(m->version));
    json_object_set_new(o, "parent", m->parent[0] ? json_string(m->parent) : json_null());
    json_object_set_new(o, "created", json_string(m->created_iso));
    json_object_set_new(o, "created_unix", json_real(m->created));
    json_object_set_new(o, "data_fingerprint",
                        m->data_fingerprint ? json_string(m->data_fingerprint) : json_null());
    json_object_set(o, "metrics", m->metrics);
    json_object_set(o, "job", m->job ? m->job : json_null());
    for (size_t i = 0; i < m->n_files; i++) {
        json_t *f = json_pack("{s:s, s:I, s:s}", "name", m->files[i].name, "bytes",
                              (json_int_t)m->files[i].bytes, "sha256", m->files[i].sha256);
        if (!f || json_array_append_new(files, f) != 0) goto fail;
    }
    json_object_set_new(o, "files", files);
    return o;
fail:
    json_decref(o);
    json_decref(files);
    return NULL;
}

/* Parses metadata.json text; where names the file in messages. */
static DpStatus meta_from_json(const char *text, const char *where, RegistryMeta *m, DpError *err) {
    memset(m, 0, sizeof *m);
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o)
        return dp_fail(err, DP_ERR_PARSE, "%s line %d column %d: %s", where, je.line, je.column, je.text);
    DpStatus st = DP_OK;
    json_t *ver = json_object_get(o, "version"), *par = json_object_get(o, "parent");
    json_t *cu = json_object_get(o, "created_unix"), *ci = json_object_get(o, "created");
    json_t *fp = json_object_get(o, "data_fingerprint"), *met = json_object_get(o, "metrics");
    json_t *job = json_object_get(o, "job"), *files = json_object_get(o, "files");
    if (!json_is_object(o) || !json_is_string(ver) || !is_version_name(json_string_value(ver)) ||
        !(json_is_null(par) || (json_is_string(par) && is_version_name(json_string_value(par)))) ||
        !json_is_number(cu) || !json_is_string(ci) || !(json_is_null(fp) || json_is_string(fp)) ||
        !json_is_object(met) || !json_is_array(files)) {
        st = dp_fail(err, DP_ERR_PARSE,
                     "%s: expected an object with version, parent, created, created_unix, "
                     "data_fingerprint, metrics (object), job and files (array)",
                     where);
        goto out;
    }
    snprintf(m->version, sizeof m->version, "%s", json_string_value(ver));
    if (json_is_string(par)) snprintf(m->parent, sizeof m->parent, "%s", json_string_value(par));
    m->created = json_number_value(cu);
    snprintf(m->created_iso, sizeof m->created_iso, "%s", json_string_value(ci));
    if (json_is_string(fp) && !(m->data_fingerprint = dp_strdup(json_string_value(fp)))) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    m->metrics = json_incref(met);
    m->job = json_is_null(job) || !job ? NULL : json_incref(job);
    size_t nf = json_array_size(files);
    m->files = dp_calloc(nf ? nf : 1, sizeof *m->files);
    if (!m->files) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nf; i++) {
        json_t *f = json_array_get(files, i);
        json_t *fn = json_object_get(f, "name"), *fb = json_object_get(f, "bytes"),
               *fh = json_object_get(f, "sha256");
        if (!json_is_string(fn) || !is_plain_file_name(json_string_value(fn)) ||
            !strcmp(json_string_value(fn), META_NAME) || !json_is_integer(fb) ||
            json_integer_value(fb) < 0 || !json_is_string(fh) || !is_hex64(json_string_value(fh))) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: files[%zu] needs name, bytes >= 0 and a 64-hex sha256",
                         where, i);
            goto out;
        }
        if (!(m->files[i].name = dp_strdup(json_string_value(fn)))) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        m->files[i].bytes = (long long)json_integer_value(fb);
        snprintf(m->files[i].sha256, sizeof m->files[i].sha256, "%s", json_string_value(fh));
        m->n_files = i + 1;
    }
out:
    json_decref(o);
    if (st != DP_OK) registry_meta_free(m);
    return st;
}

/* Reads versions/<id>/metadata.json; DP_ERR_INVAL when the version does not
 * exist. */
static DpStatus read_meta(Registry *reg, const char *id, RegistryMeta *m, DpError *err) {
    memset(m, 0, sizeof *m);
    char dir[PATH_CAP], path[PATH_CAP];
    snprintf(dir, sizeof dir, "%s/%s", reg->versions, id);
    snprintf(path, sizeof path, "%s/%s", dir, META_NAME);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return dp_fail(err, DP_ERR_INVAL, "no version %s in registry %s", id, reg->dir);
    char *text = NULL;
    DpStatus st = dp_read_file(path, &text, NULL, err);
    if (st != DP_OK) return dp_error_wrap(err, "version %s is unreadable", id);
    st = meta_from_json(text, path, m, err);
    free(text);
    if (st != DP_OK) return dp_error_wrap(err, "version %s is unreadable", id);
    if (strcmp(m->version, id) != 0) {
        char got[REGISTRY_ID_MAX];
        snprintf(got, sizeof got, "%s", m->version);
        registry_meta_free(m);
        return dp_fail(err, DP_ERR_CHECK, "version %s is corrupted: %s says it is version %s", id, path,
                       got);
    }
    return DP_OK;
}

static int version_exists(Registry *reg, const char *id) {
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/%s/%s", reg->versions, id, META_NAME);
    return dp_file_exists(path);
}

DpStatus registry_get_meta(Registry *reg, const char *version, RegistryMeta *meta, DpError *err) {
    memset(meta, 0, sizeof *meta);
    char id[REGISTRY_ID_MAX];
    DpStatus st = registry_parse_version(version, id, err);
    if (st != DP_OK) return st;
    return read_meta(reg, id, meta, err);
}

DpStatus registry_list(Registry *reg, RegistryMeta **versions, size_t *n, DpError *err) {
    *versions = NULL;
    *n = 0;
    char **names = NULL;
    size_t nn = 0;
    DpStatus st = list_dir(reg->versions, is_version_name, &names, &nn, err);
    if (st != DP_OK) return st;
    RegistryMeta *out = dp_calloc(nn ? nn : 1, sizeof *out);
    if (!out) {
        free_names(names, nn);
        return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < nn; i++) {
        DpError e2 = {0};
        if (read_meta(reg, names[i], &out[k], &e2) != DP_OK) {
            dp_warn("registry: skipping %s (run 'driftpilot registry verify'): %s", names[i], e2.msg);
            continue;
        }
        k++;
    }
    free_names(names, nn);
    *versions = out;
    *n = k;
    return DP_OK;
}

// ---- verification ----

static int is_listed(const RegistryMeta *m, const char *name) {
    for (size_t i = 0; i < m->n_files; i++)
        if (!strcmp(m->files[i].name, name)) return 1;
    return 0;
}

/* Re-hashes the files of a parsed version. */
static DpStatus verify_files(Registry *reg, const RegistryMeta *m, DpError *err) {
    char dir[PATH_CAP], path[PATH_CAP];
    snprintf(dir, sizeof dir, "%s/%s", reg->versions, m->version);
    for (size_t i = 0; i < m->n_files; i++) {
        const RegistryFile *f = &m->files[i];
        snprintf(path, sizeof path, "%s/%s", dir, f->name);
        struct stat sb;
        if (stat(path, &sb) != 0)
            return dp_fail(err, DP_ERR_CHECK, "version %s is corrupted: file %s is missing (%s)",
                           m->version, f->name, strerror(errno));
        if (!S_ISREG(sb.st_mode))
            return dp_fail(err, DP_ERR_CHECK, "version %s is corrupted: %s is not a regular file",
                           m->version, f->name);
        if ((long long)sb.st_size != f->bytes)
            return dp_fail(err, DP_ERR_CHECK,
                           "version %s is corrupted: file %s has %lld bytes, metadata says %lld%s",
                           m->version, f->name, (long long)sb.st_size, f->bytes,
                           (long long)sb.st_size < f->bytes ? " (truncated)" : "");
        char hex[65];
        DpError e2 = {0};
        if (dp_sha256_file(path, hex, &e2) != DP_OK)
            return dp_fail(err, DP_ERR_CHECK, "version %s: cannot hash %s: %s", m->version, f->name, e2.msg);
        if (strcmp(hex, f->sha256) != 0)
            return dp_fail(err, DP_ERR_CHECK,
                           "version %s is corrupted: file %s has sha256 %.16s..., metadata says %.16s...",
                           m->version, f->name, hex, f->sha256);
    }
    char **names = NULL;
    size_t n = 0;
    DpStatus st = list_dir(dir, NULL, &names, &n, err);
    if (st != DP_OK) return st;
    for (size_t i = 0; i < n && st == DP_OK; i++)
        if (strcmp(names[i], META_NAME) != 0 && !is_listed(m, names[i]))
            st = dp_fail(err, DP_ERR_CHECK,
                         "version %s is corrupted: file %s is not listed in its metadata.json",
                         m->version, names[i]);
    free_names(names, n);
    return st;
}

DpStatus registry_verify_version(Registry *reg, const char *version, DpError *err) {
    RegistryMeta m;
    DpStatus st = registry_get_meta(reg, version, &m, err);
    if (st != DP_OK) return st;
    st = verify_files(reg, &m, err);
    registry_meta_free(&m);
    return st;
}

DpStatus registry_open_version(Registry *reg, const char *version, RegistryMeta *meta, char *path,
                               size_t cap, DpError *err) {
    RegistryMeta m;
    if (meta) memset(meta, 0, sizeof *meta);
    DpStatus st = registry_get_meta(reg, version, &m, err);
    if (st != DP_OK) return st;
    if ((st = verify_files(reg, &m, err)) != DP_OK) goto fail;
    if (path && registry_version_path(reg, m.version, path, cap) != DP_OK) {
        st = dp_fail(err, DP_ERR_INVAL, "path of version %s does not fit in %zu bytes", m.version, cap);
        goto fail;
    }
    if (meta)
        *meta = m;
    else
        registry_meta_free(&m);
    return DP_OK;
fail:
    registry_meta_free(&m);
    return st;
}

// ---- publish ----

static int keep_visible(const char *name) { return name[0] != '.'; }

/* Copies src to dst (new file), fsyncs it, and hashes the copy. */
static DpStatus copy_file(Registry *reg, const char *src, const char *dst, const char *name,
                          RegistryFile *f, DpError *err) {
    DpStatus st = DP_OK;
    int in = -1, out = -1;
    char *buf = dp_malloc(COPY_CHUNK);
    if (!buf) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
        st = dp_fail(err, DP_ERR_IO, "open %s: %s", src, strerror(errno));
        goto out;
    }
    if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        st = dp_fail(err, DP_ERR_IO, "create %s: %s", dst, strerror(errno));
        goto out;
    }
    long long total = 0;
    for (;;) {
        ssize_t got = read(in, buf, COPY_CHUNK);
        if (got < 0) {
            if (errno == EINTR) continue;
            st = dp_fail(err, DP_ERR_IO, "read %s: %s", src, strerror(errno));
            goto out;
        }
        if (got == 0) break;
        for (ssize_t off = 0; off < got;) {
            ssize_t w = write(out, buf + off, (size_t)(got - off));
            if (w < 0) {
                if (errno == EINTR) continue;
                st = dp_fail(err, DP_ERR_IO, "write %s: %s", dst, strerror(errno));
                goto out;
            }
            off += w;
        }
        total += got;
        step(reg, "copy %s @%lld", name, total);
    }
    if (fsync(out) != 0) {
        st = dp_fail(err, DP_ERR_IO, "fsync %s: %s", dst, strerror(errno));
        goto out;
    }
    step(reg, "fsync %s", name);
    f->bytes = total;
    /* hash what landed in the registry, which is what loads will check */
    st = dp_sha256_file(dst, f->sha256, err);
out:
    if (in >= 0) close(in);
    if (out >= 0 && close(out) != 0 && st == DP_OK)
        st = dp_fail(err, DP_ERR_IO, "close %s: %s", dst, strerror(errno));
    free(buf);
    return st;
}

static DpStatus write_new_file_synced(const char *path, const char *data, size_t len, DpError *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return dp_fail(err, DP_ERR_IO, "create %s: %s", path, strerror(errno));
    DpStatus st = DP_OK;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            st = dp_fail(err, DP_ERR_IO, "write %s: %s", path, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    if (st == DP_OK && fsync(fd) != 0) st = dp_fail(err, DP_ERR_IO, "fsync %s: %s", path, strerror(errno));
    if (close(fd) != 0 && st == DP_OK) st = dp_fail(err, DP_ERR_IO, "close %s: %s", path, strerror(errno));
    return st;
}

/* Removes every staging dir; the caller holds the lock, so they are all
 * leftovers of dead publishers.  Returns how many were removed. */
static size_t clean_staging(Registry *reg, DpBuf *text) {
    char **names = NULL;
    size_t n = 0, removed = 0;
    DpError e2 = {0};
    if (list_dir(reg->staging, NULL, &names, &n, &e2) != DP_OK) return 0;
    char path[PATH_CAP];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", reg->staging, names[i]);
        if (remove_flat_dir(path, &e2) == DP_OK) {
            removed++;
            if (text) dp_buf_printf(text, "removed staging/%s (left by an interrupted publish)\n", names[i]);
        } else {
            dp_warn("registry: %s", e2.msg);
        }
    }
    free_names(names, n);
    return removed;
}

static DpStatus next_version_id(Registry *reg, char out[REGISTRY_ID_MAX], DpError *err) {
    char **names = NULL;
    size_t n = 0;
    DpStatus st = list_dir(reg->versions, is_version_name, &names, &n, err);
    if (st != DP_OK) return st;
    long last = n ? strtol(names[n - 1] + 1, NULL, 10) : 0;
    free_names(names, n);
    if (last >= 999999) return dp_fail(err, DP_ERR_STATE, "registry %s is full (v999999)", reg->dir);
    snprintf(out, REGISTRY_ID_MAX, "v%06ld", last + 1);
    return DP_OK;
}

/* rename(2) that refuses to replace an existing target (renameat2
 * RENAME_NOREPLACE; where the filesystem lacks it, a check then rename, which
 * the registry lock makes safe among registry writers). */
static int rename_noreplace(const char *from, const char *to) {
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS) return -1;
#endif
    if (dp_file_exists(to)) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

DpStatus registry_publish(Registry *reg, const char *src_model_dir, const RegistryPublishInfo *info,
                          char out_version[REGISTRY_ID_MAX], DpError *err) {
    static const RegistryPublishInfo none = {0};
    if (!info) info = &none;
    out_version[0] = '\0';
    DpStatus st = DP_OK;
    RegistryMeta m;
    memset(&m, 0, sizeof m);
    char **names = NULL;
    size_t n = 0;
    char stage[PATH_CAP] = "", src[PATH_CAP], dst[PATH_CAP], final[PATH_CAP];
    char *meta_text = NULL;
    json_t *mj = NULL;

    // -- checks that need no lock --
    if (info->parent && info->parent[0]) {
        if ((st = registry_parse_version(info->parent, m.parent, err)) != DP_OK) goto out;
        if (!version_exists(reg, m.parent)) {
            st = dp_fail(err, DP_ERR_INVAL, "parent version %s does not exist in registry %s", m.parent,
                         reg->dir);
            goto out;
        }
    }
    if (info->metrics && !json_is_object(info->metrics)) {
        st = dp_fail(err, DP_ERR_INVAL, "metrics must be a JSON object");
        goto out;
    }
    m.metrics = info->metrics ? json_deep_copy(info->metrics) : json_object();
    m.job = info->job ? json_deep_copy(info->job) : NULL;
    if (!m.metrics || (info->job && !m.job)) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (info->data_file) {
        char hex[65];
        if ((st = dp_sha256_file(info->data_file, hex, err)) != DP_OK) {
            dp_error_wrap(err, "fingerprinting the training data");
            goto out;
        }
        char fp[80];
        snprintf(fp, sizeof fp, "sha256:%s", hex);
        m.data_fingerprint = dp_strdup(fp);
    } else if (info->data_fingerprint) {
        m.data_fingerprint = dp_strdup(info->data_fingerprint);
    }
    if ((info->data_file || info->data_fingerprint) && !m.data_fingerprint) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = list_dir(src_model_dir, keep_visible, &names, &n, err)) != DP_OK) goto out;
    struct stat sb;
    if (stat(src_model_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        st = dp_fail(err, DP_ERR_INVAL, "model directory %s does not exist", src_model_dir);
        goto out;
    }
    int has_config = 0;
    for (size_t i = 0; i < n; i++) {
        if ((st = dp_path_join(src, sizeof src, src_model_dir, names[i], err)) != DP_OK) goto out;
        if (stat(src, &sb) != 0) {
            st = dp_fail(err, DP_ERR_IO, "stat %s: %s", src, strerror(errno));
            goto out;
        }
        if (!S_ISREG(sb.st_mode)) {
            st = dp_fail(err, DP_ERR_INVAL,
                         "model directory %s: %s is not a regular file (subdirectories are not supported)",
                         src_model_dir, names[i]);
            goto out;
        }
        if (!strcmp(names[i], META_NAME)) {
            st = dp_fail(err, DP_ERR_INVAL, "model directory %s holds a %s, a name the registry reserves",
                         src_model_dir, META_NAME);
            goto out;
        }
        if (strlen(names[i]) >= 256) {
            st = dp_fail(err, DP_ERR_INVAL, "file name too long in %s", src_model_dir);
            goto out;
        }
        has_config |= !strcmp(names[i], "config.json");
    }
    if (!has_config) {
        st = dp_fail(err, DP_ERR_INVAL, "model directory %s has no config.json (is it a Hugging Face model "
                     "directory?)", src_model_dir);
        goto out;
    }
    m.files = dp_calloc(n ? n : 1, sizeof *m.files);
    if (!m.files) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }

    // -- under the lock: id, staging, copy, metadata, rename --
    if ((st = lock_acquire(reg, "publish", err)) != DP_OK) goto out;
    clean_staging(reg, NULL);
    step(reg, "clean staging");
    if ((st = next_version_id(reg, m.version, err)) != DP_OK) goto out;
    snprintf(stage, sizeof stage, "%s/%s.%ld", reg->staging, m.version, (long)getpid());
    if (mkdir(stage, 0755) != 0) {
        st = dp_fail(err, DP_ERR_IO, "mkdir %s: %s", stage, strerror(errno));
        stage[0] = '\0';
        goto out;
    }
    step(reg, "mkdir staging");
    for (size_t i = 0; i < n; i++) {
        snprintf(src, sizeof src, "%s/%s", src_model_dir, names[i]);
        snprintf(dst, sizeof dst, "%s/%s", stage, names[i]);
        if (!(m.files[i].name = dp_strdup(names[i]))) {
            st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
            goto out;
        }
        m.n_files = i + 1;
        if ((st = copy_file(reg, src, dst, names[i], &m.files[i], err)) != DP_OK) goto out;
    }
    m.created = dp_time_wall();
    format_iso(m.created, m.created_iso);
    /* 15 significant digits keep metrics readable (0.81, not 0.81000000000000005) */
    mj = meta_to_json(&m);
    if (!mj || !(meta_text = json_dumps(mj, JSON_INDENT(2) | JSON_REAL_PRECISION(15)))) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(dst, sizeof dst, "%s/%s", stage, META_NAME);
    if ((st = write_new_file_synced(dst, meta_text, strlen(meta_text), err)) != DP_OK) goto out;
    step(reg, "write metadata");
    if ((st = fsync_path(stage, 1, err)) != DP_OK) goto out;
    step(reg, "fsync staging");
    snprintf(final, sizeof final, "%s/%s", reg->versions, m.version);
    if (rename_noreplace(stage, final) != 0) {
        st = dp_fail(err, DP_ERR_STATE, "rename %s -> %s: %s (is something writing the registry without "
                     "its lock?)", stage, final, strerror(errno));
        goto out;
    }
    stage[0] = '\0';
    step(reg, "rename");
    if ((st = fsync_path(reg->versions, 1, err)) != DP_OK) goto out;
    step(reg, "fsync versions");
    snprintf(out_version, REGISTRY_ID_MAX, "%s", m.version);
out:
    if (stage[0]) {
        DpError e2 = {0};
        if (remove_flat_dir(stage, &e2) != DP_OK) dp_warn("registry: %s", e2.msg);
    }
    lock_release(reg);
    free(meta_text);
    json_decref(mj);
    free_names(names, n);
    registry_meta_free(&m);
    if (st != DP_OK) dp_error_wrap(err, "publish %s", src_model_dir);
    return st;
}

// ---- targets ----

void registry_targets_free(RegistryTarget *targets, size_t n) {
    for (size_t i = 0; i < n; i++) free(targets[i].history);
    free(targets);
}

/* Reads targets/<name>.json into t (and the event log into *log when log is
 * not NULL).  A target without a file is empty. */
static DpStatus read_target(Registry *reg, const char *name, RegistryTarget *t, json_t **log,
                            DpError *err) {
    memset(t, 0, sizeof *t);
    if (log) *log = NULL;
    snprintf(t->name, sizeof t->name, "%s", name);
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/%s.json", reg->targets, name);
    if (!dp_file_exists(path)) {
        if (log && !(*log = json_array())) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
        return DP_OK;
    }
    char *text = NULL;
    DpStatus st = dp_read_file(path, &text, NULL, err);
    if (st != DP_OK) return st;
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    free(text);
    if (!o) return dp_fail(err, DP_ERR_PARSE, "%s line %d column %d: %s", path, je.line, je.column, je.text);
    json_t *cur = json_object_get(o, "current"), *hist = json_object_get(o, "history");
    json_t *lg = json_object_get(o, "log");
    size_t nh = json_array_size(hist);
    if (!json_is_object(o) || !json_is_array(hist) || !(json_is_null(cur) || json_is_string(cur))) {
        st = dp_fail(err, DP_ERR_PARSE, "%s: expected {\"current\": str|null, \"history\": [...]}", path);
        goto out;
    }
    t->history = dp_calloc(nh ? nh : 1, sizeof *t->history);
    if (!t->history) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nh; i++) {
        json_t *h = json_array_get(hist, i);
        if (!json_is_string(h) || !is_version_name(json_string_value(h))) {
            st = dp_fail(err, DP_ERR_PARSE, "%s: history[%zu] is not a version id", path, i);
            goto out;
        }
        snprintf(t->history[i], REGISTRY_ID_MAX, "%s", json_string_value(h));
    }
    t->n_history = nh;
    const char *c = json_is_string(cur) ? json_string_value(cur) : "";
    if (nh ? strcmp(c, t->history[nh - 1]) != 0 : c[0] != '\0') {
        st = dp_fail(err, DP_ERR_PARSE, "%s: current (%s) is not the last entry of history", path,
                     c[0] ? c : "null");
        goto out;
    }
    snprintf(t->current, sizeof t->current, "%s", c);
    if (log && !(*log = json_is_array(lg) ? json_incref(lg) : json_array()))
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
out:
    json_decref(o);
    if (st != DP_OK) {
        free(t->history);
        memset(t, 0, sizeof *t);
        if (log) {
            json_decref(*log);
            *log = NULL;
        }
    }
    return st;
}

/* Writes a target file atomically; log is borrowed and gets one event. */
static DpStatus write_target(Registry *reg, const RegistryTarget *t, json_t *log, const char *action,
                             const char *from, DpError *err) {
    char at[32];
    format_iso(dp_time_wall(), at);
    json_t *ev = json_pack("{s:s, s:s?, s:s?, s:s}", "action", action, "from", from && from[0] ? from : NULL,
                           "to", t->current[0] ? t->current : NULL, "at", at);
    json_t *o = json_object(), *hist = json_array();
    char *text = NULL;
    DpStatus st = DP_OK;
    /* json_array_append_new takes ev's reference even when it fails */
    if (!ev || !o || !hist || json_array_append_new(log, ev) != 0) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->n_history; i++) json_array_append_new(hist, json_string(t->history[i]));
    json_object_set_new(o, "target", json_string(t->name));
    json_object_set_new(o, "current", t->current[0] ? json_string(t->current) : json_null());
    json_object_set_new(o, "history", hist);
    hist = NULL;
    json_object_set(o, "log", log);
    if (!(text = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(15)))) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/%s.json", reg->targets, t->name);
    step(reg, "%s write", action);
    st = dp_write_file_atomic(path, text, strlen(text), err);
    if (st == DP_OK) step(reg, "%s written", action);
out:
    free(text);
    json_decref(hist);
    json_decref(o);
    return st;
}

static DpStatus check_target_name(const char *target, DpError *err) {
    if (!target || !is_target_name(target))
        return dp_fail(err, DP_ERR_INVAL, "'%s' is not a target name (letters, digits, '_' and '-', at most %d)",
                       target ? target : "", REGISTRY_TARGET_MAX - 1);
    return DP_OK;
}

DpStatus registry_promote(Registry *reg, const char *version, const char *target, DpError *err) {
    char id[REGISTRY_ID_MAX];
    DpStatus st;
    if ((st = check_target_name(target, err)) != DP_OK) return st;
    if ((st = registry_parse_version(version, id, err)) != DP_OK) return st;
    RegistryTarget t;
    memset(&t, 0, sizeof t);
    json_t *log = NULL;
    if ((st = lock_acquire(reg, "promote", err)) != DP_OK) return st;
    if ((st = registry_verify_version(reg, id, err)) != DP_OK) {
        dp_error_wrap(err, "cannot promote %s to %s", id, target);
        goto out;
    }
    if ((st = read_target(reg, target, &t, &log, err)) != DP_OK) goto out;
    if (!strcmp(t.current, id)) goto out; /* already current: nothing to record */
    char(*h)[REGISTRY_ID_MAX] = dp_realloc_array(t.history, t.n_history + 1, sizeof *t.history);
    if (!h) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto out;
    }
    t.history = h;
    snprintf(t.history[t.n_history++], REGISTRY_ID_MAX, "%s", id);
    char from[REGISTRY_ID_MAX];
    snprintf(from, sizeof from, "%s", t.current);
    snprintf(t.current, sizeof t.current, "%s", id);
    st = write_target(reg, &t, log, "promote", from, err);
out:
    lock_release(reg);
    json_decref(log);
    free(t.history);
    return st;
}

DpStatus registry_rollback(Registry *reg, const char *target, char out_version[REGISTRY_ID_MAX],
                           DpError *err) {
    if (out_version) out_version[0] = '\0';
    DpStatus st;
    if ((st = check_target_name(target, err)) != DP_OK) return st;
    RegistryTarget t;
    memset(&t, 0, sizeof t);
    json_t *log = NULL;
    if ((st = lock_acquire(reg, "rollback", err)) != DP_OK) return st;
    if ((st = read_target(reg, target, &t, &log, err)) != DP_OK) goto out;
    if (t.n_history == 0) {
        st = dp_fail(err, DP_ERR_STATE, "target %s has no current version, so nothing to roll back", target);
        goto out;
    }
    if (t.n_history < 2) {
        st = dp_fail(err, DP_ERR_STATE, "target %s has no earlier version to roll back to (only %s was "
                     "ever current)", target, t.current);
        goto out;
    }
    const char *prev = t.history[t.n_history - 2];
    if ((st = registry_verify_version(reg, prev, err)) != DP_OK) {
        dp_error_wrap(err, "cannot roll %s back to %s", target, prev);
        goto out;
    }
    char from[REGISTRY_ID_MAX];
    snprintf(from, sizeof from, "%s", t.current);
    t.n_history--;
    snprintf(t.current, sizeof t.current, "%s", prev);
    if ((st = write_target(reg, &t, log, "rollback", from, err)) != DP_OK) goto out;
    if (out_version) snprintf(out_version, REGISTRY_ID_MAX, "%s", t.current);
out:
    lock_release(reg);
    json_decref(log);
    free(t.history);
    return st;
}

DpStatus registry_current(Registry *reg, const char *target, char out_version[REGISTRY_ID_MAX],
                          DpError *err) {
    out_version[0] = '\0';
    DpStatus st;
    if ((st = check_target_name(target, err)) != DP_OK) return st;
    RegistryTarget t;
    if ((st = read_target(reg, target, &t, NULL, err)) != DP_OK) return st;
    if (t.current[0])
        snprintf(out_version, REGISTRY_ID_MAX, "%s", t.current);
    else
        st = dp_fail(err, DP_ERR_STATE, "target %s has no current version (promote one first)", target);
    free(t.history);
    return st;
}

DpStatus registry_resolve(Registry *reg, const char *target, RegistryMeta *meta, char *path, size_t cap,
                          DpError *err) {
    if (meta) memset(meta, 0, sizeof *meta);
    char id[REGISTRY_ID_MAX];
    DpStatus st = registry_current(reg, target, id, err);
    if (st != DP_OK) return st;
    st = registry_open_version(reg, id, meta, path, cap, err);
    if (st != DP_OK) dp_error_wrap(err, "target %s", target);
    return st;
}

/* "aws.json" -> true (and the stem is a valid target name). */
static int is_target_file(const char *name) {
    size_t n = strlen(name);
    if (n <= 5 || n - 5 >= REGISTRY_TARGET_MAX || strcmp(name + n - 5, ".json") != 0) return 0;
    char stem[REGISTRY_TARGET_MAX];
    snprintf(stem, sizeof stem, "%.*s", (int)(n - 5), name);
    return is_target_name(stem);
}

DpStatus registry_list_targets(Registry *reg, RegistryTarget **targets, size_t *n, DpError *err) {
    *targets = NULL;
    *n = 0;
    char **names = NULL;
    size_t nn = 0;
    DpStatus st = list_dir(reg->targets, is_target_file, &names, &nn, err);
    if (st != DP_OK) return st;
    RegistryTarget *out = dp_calloc(nn ? nn : 1, sizeof *out);
    if (!out) {
        free_names(names, nn);
        return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < nn && st == DP_OK; i++) {
        names[i][strlen(names[i]) - 5] = '\0';
        st = read_target(reg, names[i], &out[k], NULL, err);
        if (st == DP_OK) k++;
    }
    free_names(names, nn);
    if (st != DP_OK) {
        registry_targets_free(out, k);
        return st;
    }
    *targets = out;
    *n = k;
    return DP_OK;
}

// ---- verify ----

void registry_verify_report_free(RegistryVerifyReport *r) {
    if (!r) return;
    dp_buf_free(&r->text);
    memset(r, 0, sizeof *r);
}

DpStatus registry_verify(Registry *reg, int fix, RegistryVerifyReport *report, DpError *err) {
    RegistryVerifyReport local;
    RegistryVerifyReport *r = report ? report : &local;
    memset(r, 0, sizeof *r);
    DpStatus st = DP_OK;
    DpError first = {0};
    char **names = NULL;
    size_t n = 0;
    char path[PATH_CAP];
    if (fix && (st = lock_acquire(reg, "verify --fix", err)) != DP_OK) goto out;

    // versions
    if ((st = list_dir(reg->versions, NULL, &names, &n, err)) != DP_OK) goto out;
    for (size_t i = 0; i < n; i++) {
        if (!is_version_name(names[i])) {
            dp_buf_printf(&r->text, "note   versions/%s is not a version id; ignored\n", names[i]);
            continue;
        }
        r->n_versions++;
        DpError e2 = {0};
        if (registry_verify_version(reg, names[i], &e2) != DP_OK) {
            r->n_bad_versions++;
            dp_buf_printf(&r->text, "BAD    %s\n", e2.msg);
            if (first.status == DP_OK) first = e2;
        } else {
            dp_buf_printf(&r->text, "ok     %s\n", names[i]);
        }
    }
    free_names(names, n);
    names = NULL;
    n = 0;

    // staging leftovers
    if ((st = list_dir(reg->staging, NULL, &names, &n, err)) != DP_OK) goto out;
    r->n_stale += n;
    if (fix) {
        r->n_removed += clean_staging(reg, &r->text);
    } else {
        for (size_t i = 0; i < n; i++)
            dp_buf_printf(&r->text, "stale  staging/%s: an interrupted (or running) publish; "
                          "'verify --fix' removes it\n", names[i]);
    }
    free_names(names, n);
    names = NULL;
    n = 0;

    // targets
    if ((st = list_dir(reg->targets, NULL, &names, &n, err)) != DP_OK) goto out;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", reg->targets, names[i]);
        if (strstr(names[i], ".json.tmp.")) { /* dp_write_file_atomic's temp file */
            r->n_stale++;
            if (fix && unlink(path) == 0) {
                r->n_removed++;
                dp_buf_printf(&r->text, "removed targets/%s (left by an interrupted update)\n", names[i]);
            } else if (!fix) {
                dp_buf_printf(&r->text, "stale  targets/%s: temp file of an interrupted update\n", names[i]);
            }
            continue;
        }
        if (!is_target_file(names[i])) {
            dp_buf_printf(&r->text, "note   targets/%s is not a target file; ignored\n", names[i]);
            continue;
        }
        names[i][strlen(names[i]) - 5] = '\0';
        r->n_targets++;
        RegistryTarget t;
        DpError e2 = {0};
        if (read_target(reg, names[i], &t, NULL, &e2) == DP_OK) {
            for (size_t h = 0; h < t.n_history; h++)
                if (!version_exists(reg, t.history[h])) {
                    dp_fail(&e2, DP_ERR_CHECK, "target %s: %s %s does not exist", names[i],
                            h + 1 == t.n_history ? "current version" : "history entry", t.history[h]);
                    break;
                }
            free(t.history);
        }
        if (e2.status != DP_OK) {
            r->n_bad_targets++;
            dp_buf_printf(&r->text, "BAD    %s\n", e2.msg);
            if (first.status == DP_OK) first = e2;
        } else {
            dp_buf_printf(&r->text, "ok     target %s -> %s\n", names[i], t.current[0] ? t.current : "(none)");
        }
    }
    if (r->n_bad_versions || r->n_bad_targets) {
        st = dp_fail(err, DP_ERR_CHECK, "registry %s: %zu bad version(s), %zu bad target(s); first: %s",
                     reg->dir, r->n_bad_versions, r->n_bad_targets, first.msg);
    }
out:
    if (fix) lock_release(reg);
    free_names(names, n);
    if (!report) registry_verify_report_free(&local);
    return st;
}

// ---- formatting ----

void registry_metrics_summary(const json_t *metrics, char *buf, size_t cap) {
    if (!cap) return;
    buf[0] = '\0';
    const json_t *src = json_object_get(metrics, "after");
    if (!json_is_object(src)) src = metrics;
    if (!json_is_object(src)) return;
    size_t len = 0;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)src, key, v) {
        if (!json_is_number(v)) continue;
        int w = snprintf(buf + len, cap - len, "%s%s=%.3g", len ? " " : "", key, json_number_value(v));
        if (w < 0 || (size_t)w >= cap - len) {
            buf[len] = '\0';
            return;
        }
        len += (size_t)w;
    }
}
