/* `driftpilot registry`: list, show, publish, promote, roll back and verify
 * model versions in the model registry (src/train, registry section of
 * train.h). */
#include "cli.h"
#include "train.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CMD "registry"

static void usage(FILE *out) {
    fprintf(out,
            "usage: driftpilot registry [--dir DIR] COMMAND [options]\n\n"
            "The model registry: immutable model versions, each a Hugging Face model directory\n"
            "plus metadata.json (parent version, data fingerprint, metrics, retrain job record,\n"
            "size and sha256 of every file), and a current version per deployment target with\n"
            "a history for rollback.  Publishing is atomic; every load re-hashes the files.\n\n"
            "commands:\n"
            "  list [--json]                 versions, oldest first: version, parent, created\n"
            "                                (UTC), targets it is current on, metrics summary\n"
            "  show V [--json]               metadata and directory of version V; re-hashes its\n"
            "                                files (exit 1 when it is corrupted)\n"
            "  publish --model DIR [--parent V] [--metrics FILE.json] [--job FILE.json]\n"
            "          [--data FILE | --fingerprint TEXT] [--target T]\n"
            "                                copy the files of DIR (it must hold config.json) in\n"
            "                                as a new version and print its id; --data records\n"
            "                                sha256 of FILE as the data fingerprint; --target\n"
            "                                also promotes the new version to T\n"
            "  promote V --target T          make V (re-hashed first) current on T\n"
            "  rollback --target T           make the version that was current on T before the\n"
            "                                current one current again, and print it\n"
            "  current --target T [--path]   print the version current on T (--path: its\n"
            "                                verified directory instead)\n"
            "  verify [--fix]                re-hash every version, check target pointers, and\n"
            "                                list what interrupted publishes left behind;\n"
            "                                --fix removes those leftovers\n\n"
            "options:\n"
            "  --dir DIR   the registry directory (may also follow COMMAND); default\n"
            "              $DRIFTPILOT_HOME/registry when DRIFTPILOT_HOME is set, otherwise\n"
            "              ./.driftpilot/registry\n"
            "  --json      machine-readable output (list, show)\n\n"
            "Versions are named v000001, v000002, ... in publish order; v3 and 3 mean v000003.\n"
            "Target names use letters, digits, '_' and '-'.\n"
            "Exit status: 0 success, 1 failure (a missing or corrupted version, a failed\n"
            "verification, nothing to roll back to), 2 bad usage.\n");
}

enum {
    OPT_DIR = 1 << 0,
    OPT_JSON = 1 << 1,
    OPT_FIX = 1 << 2,
    OPT_TARGET = 1 << 3,
    OPT_MODEL = 1 << 4,
    OPT_PARENT = 1 << 5,
    OPT_METRICS = 1 << 6,
    OPT_JOB = 1 << 7,
    OPT_DATA = 1 << 8,
    OPT_FINGERPRINT = 1 << 9,
    OPT_PATH = 1 << 10,
};

typedef struct {
    unsigned seen;
    const char *dir, *target, *model, *parent, *metrics, *job, *data, *fingerprint;
    char default_dir[4096];
} Opts;

static const struct option long_opts[] = {
    {"dir", required_argument, 0, 'd'},     {"json", no_argument, 0, 'J'},
    {"fix", no_argument, 0, 'F'},           {"target", required_argument, 0, 't'},
    {"model", required_argument, 0, 'm'},   {"parent", required_argument, 0, 'p'},
    {"metrics", required_argument, 0, 'M'}, {"job", required_argument, 0, 'j'},
    {"data", required_argument, 0, 'D'},    {"fingerprint", required_argument, 0, 'f'},
    {"path", no_argument, 0, 'P'},          {0, 0, 0, 0},
};

static const char *opt_name(unsigned bit) {
    static const struct { unsigned bit; const char *name; } names[] = {
        {OPT_DIR, "--dir"},       {OPT_JSON, "--json"},       {OPT_FIX, "--fix"},
        {OPT_TARGET, "--target"}, {OPT_MODEL, "--model"},     {OPT_PARENT, "--parent"},
        {OPT_METRICS, "--metrics"}, {OPT_JOB, "--job"},       {OPT_DATA, "--data"},
        {OPT_FINGERPRINT, "--fingerprint"}, {OPT_PATH, "--path"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].bit == bit) return names[i].name;
    return "?";
}

/* Parses options anywhere in argv (GNU getopt permutes the positionals to the
 * end); returns 0 after printing a usage error. */
static int parse_opts(int argc, char **argv, Opts *o, int *first_pos) {
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
        switch (c) {
        case 'd': o->dir = optarg; o->seen |= OPT_DIR; break;
        case 'J': o->seen |= OPT_JSON; break;
        case 'F': o->seen |= OPT_FIX; break;
        case 't': o->target = optarg; o->seen |= OPT_TARGET; break;
        case 'm': o->model = optarg; o->seen |= OPT_MODEL; break;
        case 'p': o->parent = optarg; o->seen |= OPT_PARENT; break;
        case 'M': o->metrics = optarg; o->seen |= OPT_METRICS; break;
        case 'j': o->job = optarg; o->seen |= OPT_JOB; break;
        case 'D': o->data = optarg; o->seen |= OPT_DATA; break;
        case 'f': o->fingerprint = optarg; o->seen |= OPT_FINGERPRINT; break;
        case 'P': o->seen |= OPT_PATH; break;
        case ':':
            cli_usage_error(CMD, "option '%s' needs a value", argv[optind - 1]);
            return 0;
        default:
            cli_usage_error(CMD, "unknown option '%s'", argv[optind - 1]);
            return 0;
        }
    }
    *first_pos = optind;
    return 1;
}

static const char *registry_default_dir(Opts *o) {
    const char *home = getenv("DRIFTPILOT_HOME");
    if (home && *home)
        snprintf(o->default_dir, sizeof o->default_dir, "%s/registry", home);
    else
        snprintf(o->default_dir, sizeof o->default_dir, "./.driftpilot/registry");
    return o->default_dir;
}

static int load_json_object(const char *path, json_t **out) {
    json_error_t je;
    *out = json_load_file(path, 0, &je);
    if (!*out) return cli_fail(CMD, "%s line %d column %d: %s", path, je.line, je.column, je.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return cli_fail(CMD, "%s: expected a JSON object", path);
    }
    return 0;
}

static void human_bytes(long long b, char *buf, size_t cap) {
    if (b < 1024)
        snprintf(buf, cap, "%lld B", b);
    else if (b < 1024 * 1024)
        snprintf(buf, cap, "%.1f KiB", b / 1024.0);
    else if (b < 1024LL * 1024 * 1024)
        snprintf(buf, cap, "%.1f MiB", b / (1024.0 * 1024));
    else
        snprintf(buf, cap, "%.2f GiB", b / (1024.0 * 1024 * 1024));
}

/* Comma-joined names of the targets whose current version is v. */
static void targets_of(const RegistryTarget *t, size_t nt, const char *v, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < nt; i++) {
        if (strcmp(t[i].current, v) != 0) continue;
        int w = snprintf(buf + len, cap - len, "%s%s", len ? "," : "", t[i].name);
        if (w < 0 || (size_t)w >= cap - len) break;
        len += (size_t)w;
    }
}

static json_t *targets_json_of(const RegistryTarget *t, size_t nt, const char *v) {
    json_t *a = json_array();
    for (size_t i = 0; i < nt; i++)
        if (!strcmp(t[i].current, v)) json_array_append_new(a, json_string(t[i].name));
    return a;
}

static long long total_bytes(const RegistryMeta *m) {
    long long s = 0;
    for (size_t i = 0; i < m->n_files; i++) s += m->files[i].bytes;
    return s;
}

static int do_list(Registry *reg, int as_json) {
    DpError err = {0};
    RegistryMeta *v = NULL;
    RegistryTarget *t = NULL;
    size_t n = 0, nt = 0;
    int rc = 0;
    if (registry_list(reg, &v, &n, &err) != DP_OK || registry_list_targets(reg, &t, &nt, &err) != DP_OK) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (as_json) {
        json_t *root = json_object(), *va = json_array(), *to = json_object();
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_pack("{s:s, s:s?, s:s, s:f, s:s?, s:O, s:o, s:I, s:I}", "version", v[i].version,
                                  "parent", v[i].parent[0] ? v[i].parent : NULL, "created", v[i].created_iso,
                                  "created_unix", v[i].created, "data_fingerprint", v[i].data_fingerprint,
                                  "metrics", v[i].metrics, "targets", targets_json_of(t, nt, v[i].version),
                                  "n_files", (json_int_t)v[i].n_files, "bytes", (json_int_t)total_bytes(&v[i]));
            json_array_append_new(va, e);
        }
        for (size_t i = 0; i < nt; i++) {
            json_t *h = json_array();
            for (size_t k = 0; k < t[i].n_history; k++) json_array_append_new(h, json_string(t[i].history[k]));
            json_object_set_new(to, t[i].name,
                                json_pack("{s:s?, s:o}", "current", t[i].current[0] ? t[i].current : NULL,
                                          "history", h));
        }
        json_object_set_new(root, "registry", json_string(registry_dir(reg)));
        json_object_set_new(root, "versions", va);
        json_object_set_new(root, "targets", to);
        json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
        fputc('\n', stdout);
        json_decref(root);
        goto out;
    }
    if (n == 0) {
        printf("no versions in %s\n", registry_dir(reg));
        goto out;
    }
    printf("%-8s  %-8s  %-20s  %-9s  %-16s  %s\n", "VERSION", "PARENT", "CREATED (UTC)", "SIZE", "TARGETS",
           "METRICS");
    for (size_t i = 0; i < n; i++) {
        char tg[256], ms[256], sz[32];
        targets_of(t, nt, v[i].version, tg, sizeof tg);
        registry_metrics_summary(v[i].metrics, ms, sizeof ms);
        human_bytes(total_bytes(&v[i]), sz, sizeof sz);
        printf("%-8s  %-8s  %-20s  %-9s  %-16s  %s\n", v[i].version, v[i].parent[0] ? v[i].parent : "-",
               v[i].created_iso, sz, tg[0] ? tg : "-", ms[0] ? ms : "-");
    }
out:
    registry_list_free(v, n);
    registry_targets_free(t, nt);
    return rc;
}

static int do_show(Registry *reg, const char *version, int as_json) {
    DpError err = {0}, verr = {0};
    RegistryMeta m = {0};
    RegistryTarget *t = NULL;
    size_t nt = 0;
    char path[4096];
    int rc = 0;
    if (registry_get_meta(reg, version, &m, &err) != DP_OK || registry_list_targets(reg, &t, &nt, &err) != DP_OK) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    registry_version_path(reg, m.version, path, sizeof path);
    int ok = registry_verify_version(reg, m.version, &verr) == DP_OK;
    if (as_json) {
        json_t *files = json_array();
        for (size_t i = 0; i < m.n_files; i++)
            json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", m.files[i].name, "bytes",
                                                   (json_int_t)m.files[i].bytes, "sha256", m.files[i].sha256));
        json_t *o = json_pack("{s:s, s:s?, s:s, s:f, s:s?, s:O, s:O?, s:o, s:s, s:o, s:s}", "version", m.version,
                              "parent", m.parent[0] ? m.parent : NULL, "created", m.created_iso, "created_unix",
                              m.created, "data_fingerprint", m.data_fingerprint, "metrics", m.metrics, "job",
                              m.job, "files", files, "path", path, "targets", targets_json_of(t, nt, m.version),
                              "integrity", ok ? "ok" : verr.msg);
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
        fputc('\n', stdout);
        json_decref(o);
    } else {
        char tg[256], sz[32];
        targets_of(t, nt, m.version, tg, sizeof tg);
        human_bytes(total_bytes(&m), sz, sizeof sz);
        printf("version      %s\n", m.version);
        printf("parent       %s\n", m.parent[0] ? m.parent : "-");
        printf("created      %s\n", m.created_iso);
        printf("path         %s\n", path);
        printf("data         %s\n", m.data_fingerprint ? m.data_fingerprint : "-");
        printf("current on   %s\n", tg[0] ? tg : "-");
        printf("files        %zu, %s\n", m.n_files, sz);
        for (size_t i = 0; i < m.n_files; i++) {
            char b[32];
            human_bytes(m.files[i].bytes, b, sizeof b);
            printf("  %-24s %10s  sha256 %s\n", m.files[i].name, b, m.files[i].sha256);
        }
        char *mt = json_dumps(m.metrics, JSON_COMPACT | JSON_REAL_PRECISION(15));
        char *jt = m.job ? json_dumps(m.job, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
        printf("metrics      %s\n", mt ? mt : "{}");
        printf("job          %s\n", jt ? jt : "-");
        free(mt);
        free(jt);
        printf("integrity    %s\n", ok ? "ok (every file re-hashed)" : "CORRUPTED");
    }
    if (!ok) rc = cli_fail(CMD, "%s", verr.msg);
out:
    registry_meta_free(&m);
    registry_targets_free(t, nt);
    return rc;
}

static int do_publish(Registry *reg, const Opts *o) {
    DpError err = {0};
    json_t *metrics = NULL, *job = NULL;
    int rc = 0;
    if (o->metrics && (rc = load_json_object(o->metrics, &metrics)) != 0) goto out;
    if (o->job && (rc = load_json_object(o->job, &job)) != 0) goto out;
    RegistryPublishInfo info = {.parent = o->parent,
                                .data_file = o->data,
                                .data_fingerprint = o->fingerprint,
                                .metrics = metrics,
                                .job = job};
    char v[REGISTRY_ID_MAX];
    if (registry_publish(reg, o->model, &info, v, &err) != DP_OK) {
        rc = cli_fail(CMD, "%s", err.msg);
        goto out;
    }
    if (o->target && registry_promote(reg, v, o->target, &err) != DP_OK) {
        rc = cli_fail(CMD, "published %s but could not promote it: %s", v, err.msg);
        goto out;
    }
    printf("%s\n", v);
    fprintf(stderr, "published %s%s%s\n", v, o->target ? ", current on " : "", o->target ? o->target : "");
out:
    json_decref(metrics);
    json_decref(job);
    return rc;
}

static int do_verify(Registry *reg, int fix) {
    DpError err = {0};
    RegistryVerifyReport r;
    DpStatus st = registry_verify(reg, fix, &r, &err);
    if (r.text.data) fputs(r.text.data, stdout);
    printf("%zu version(s), %zu bad; %zu target(s), %zu bad; %zu leftover(s) of interrupted writes%s\n",
           r.n_versions, r.n_bad_versions, r.n_targets, r.n_bad_targets, r.n_stale,
           fix ? "" : (r.n_stale ? " (run with --fix to remove)" : ""));
    if (fix && r.n_removed) printf("removed %zu leftover(s)\n", r.n_removed);
    registry_verify_report_free(&r);
    if (st != DP_OK) return cli_fail(CMD, "%s", err.msg);
    return 0;
}

int cmd_registry(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    Opts o;
    memset(&o, 0, sizeof o);
    int pos = 0;
    if (!parse_opts(argc, argv, &o, &pos)) return 2;
    if (pos >= argc) return cli_usage_error(CMD, "expected a command: list, show, publish, promote, rollback, "
                                                 "current or verify");
    const char *sub = argv[pos];
    int npos = argc - pos - 1;
    char **posv = argv + pos + 1;
    unsigned allowed;
    int want_pos = 0;
    if (!strcmp(sub, "list")) allowed = OPT_JSON;
    else if (!strcmp(sub, "show")) allowed = OPT_JSON, want_pos = 1;
    else if (!strcmp(sub, "publish"))
        allowed = OPT_MODEL | OPT_PARENT | OPT_METRICS | OPT_JOB | OPT_DATA | OPT_FINGERPRINT | OPT_TARGET;
    else if (!strcmp(sub, "promote")) allowed = OPT_TARGET, want_pos = 1;
    else if (!strcmp(sub, "rollback")) allowed = OPT_TARGET;
    else if (!strcmp(sub, "current")) allowed = OPT_TARGET | OPT_PATH;
    else if (!strcmp(sub, "verify")) allowed = OPT_FIX;
    else return cli_usage_error(CMD, "unknown command '%s'", sub);
    allowed |= OPT_DIR;
    for (unsigned bit = 1; bit <= OPT_PATH; bit <<= 1)
        if ((o.seen & bit) && !(allowed & bit))
            return cli_usage_error(CMD, "option %s does not apply to '%s'", opt_name(bit), sub);
    if (npos != want_pos)
        return cli_usage_error(CMD, want_pos ? "'%s' expects one version (e.g. v000003)"
                                             : "'%s' takes no arguments besides options", sub);
    if (!strcmp(sub, "publish")) {
        if (!o.model) return cli_usage_error(CMD, "publish needs --model DIR");
        if (o.data && o.fingerprint) return cli_usage_error(CMD, "give --data or --fingerprint, not both");
    }
    if ((!strcmp(sub, "promote") || !strcmp(sub, "rollback") || !strcmp(sub, "current")) && !o.target)
        return cli_usage_error(CMD, "'%s' needs --target T", sub);

    const char *dir = o.dir ? o.dir : registry_default_dir(&o);
    struct stat sb;
    if (strcmp(sub, "publish") != 0 && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        return cli_fail(CMD, "no registry at %s (publish a version first, or pass --dir)", dir);
    Registry *reg = NULL;
    DpError err = {0};
    if (registry_open(dir, &reg, &err) != DP_OK) return cli_fail(CMD, "%s", err.msg);
    int rc = 0;
    char v[REGISTRY_ID_MAX];
    if (!strcmp(sub, "list")) {
        rc = do_list(reg, (o.seen & OPT_JSON) != 0);
    } else if (!strcmp(sub, "show")) {
        if (registry_parse_version(posv[0], v, &err) != DP_OK) rc = cli_usage_error(CMD, "%s", err.msg);
        else rc = do_show(reg, v, (o.seen & OPT_JSON) != 0);
    } else if (!strcmp(sub, "publish")) {
        rc = do_publish(reg, &o);
    } else if (!strcmp(sub, "promote")) {
        if (registry_parse_version(posv[0], v, &err) != DP_OK) rc = cli_usage_error(CMD, "%s", err.msg);
        else if (registry_promote(reg, v, o.target, &err) != DP_OK) rc = cli_fail(CMD, "%s", err.msg);
        else printf("%s is current on %s\n", v, o.target);
    } else if (!strcmp(sub, "rollback")) {
        if (registry_rollback(reg, o.target, v, &err) != DP_OK) rc = cli_fail(CMD, "%s", err.msg);
        else {
            printf("%s\n", v);
            fprintf(stderr, "rolled %s back to %s\n", o.target, v);
        }
    } else if (!strcmp(sub, "current")) {
        char path[4096];
        if (o.seen & OPT_PATH) {
            if (registry_resolve(reg, o.target, NULL, path, sizeof path, &err) != DP_OK)
                rc = cli_fail(CMD, "%s", err.msg);
            else
                printf("%s\n", path);
        } else if (registry_current(reg, o.target, v, &err) != DP_OK) {
            rc = cli_fail(CMD, "%s", err.msg);
        } else {
            printf("%s\n", v);
        }
    } else {
        rc = do_verify(reg, (o.seen & OPT_FIX) != 0);
    }
    registry_close(reg);
    return rc;
}
