/* The main job's cache: the built-in model (`driftpilot pretrain`) and the
 * PPO policy (`driftpilot sim train-policy`), each trained once per set of
 * arguments and reused by later runs (see experiment.h for the directory). */
#include "experiment.h"
#include "sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bump when what a cached entry means changes (so old entries are not used). */
#define EXP_CACHE_VERSION "1"

DpStatus exp_cache_dir(char *out, size_t cap, DpError *err) {
    const char *home = getenv("DRIFTPILOT_HOME");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *user = getenv("HOME");
    if (home && *home) snprintf(out, cap, "%s", home);
    else if (xdg && *xdg) snprintf(out, cap, "%s/driftpilot", xdg);
    else if (user && *user) snprintf(out, cap, "%s/.cache/driftpilot", user);
    else snprintf(out, cap, ".driftpilot");
    DpStatus s = dp_mkdirs(out, err);
    if (s) return dp_error_wrap(err, "cache directory %s", out);
    return DP_OK;
}

/* sha256 of "<kind> <version> <args>", first 16 hex digits. */
static void cache_key(const char *kind, const char *args, char key[17]) {
    char text[4096], hex[65];
    snprintf(text, sizeof text, "%s %s %s", kind, EXP_CACHE_VERSION, args ? args : "");
    dp_sha256_hex(text, strlen(text), hex);
    memcpy(key, hex, 16);
    key[16] = 0;
}

/* Splits args on blanks into argv after the given prefix words. */
static int build_argv(char **argv, int cap, char *store, const char *args,
                      const char *const *prefix) {
    int n = 0;
    for (; prefix[n]; n++) argv[n] = (char *)prefix[n];
    char *save = NULL;
    for (char *t = strtok_r(store, " \t\n", &save); t && n < cap - 1;
         t = strtok_r(NULL, " \t\n", &save))
        argv[n++] = t;
    argv[n] = NULL;
    (void)args;
    return n;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes one of our own temporary directories (name holds ".tmp."). */
static void remove_tree(const char *path) {
    if (!strstr(path, ".tmp.")) return;
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

DpStatus exp_cache_model(const char *exe, const char *pretrain_args, char *out_dir, size_t cap,
                         DpError *err) {
    char dir[EXP_PATH_MAX], key[17];
    DpStatus s = exp_cache_dir(dir, sizeof dir, err);
    if (s) return s;
    cache_key("pretrain", pretrain_args, key);
    char models[EXP_PATH_MAX + 16];
    snprintf(models, sizeof models, "%s/models", dir);
    if ((s = dp_mkdirs(models, err))) return s;
    snprintf(out_dir, cap, "%s/builtin-%s", models, key);
    char probe[EXP_PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/model.safetensors", out_dir);
    if (dp_file_exists(probe)) {
        dp_info("experiment: built-in model from the cache: %s", out_dir);
        return DP_OK;
    }
    char tmp[EXP_PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out_dir, (int)getpid());
    dp_info("experiment: pretraining the built-in model (driftpilot pretrain %s) into %s",
            pretrain_args, out_dir);
    char store[2048];
    snprintf(store, sizeof store, "%s", pretrain_args ? pretrain_args : "");
    char *argv[64];
    const char *prefix[] = {"driftpilot", "pretrain", "--out", tmp, NULL};
    build_argv(argv, 64, store, pretrain_args, prefix);
    ExpChild c;
    if ((s = exp_child_start(&c, "pretrain", exe, argv, NULL, NULL, err))) return s;
    s = exp_child_wait(&c, 10, err);
    if (s) {
        remove_tree(tmp);
        return s;
    }
    /* Publish the finished model with one rename, so an interrupted
     * pretraining never leaves a half-written cache entry. */
    if (rename(tmp, out_dir) != 0) {
        int e = errno;
        if (dp_file_exists(probe)) { /* a concurrent run finished first */
            remove_tree(tmp);
            return DP_OK;
        }
        return dp_fail(err, DP_ERR_IO, "rename %s -> %s: %s", tmp, out_dir, strerror(e));
    }
    return DP_OK;
}

DpStatus exp_cache_policy(const char *exe, const char *train_args, char *out_file, size_t cap,
                          DpError *err) {
    char dir[EXP_PATH_MAX], key[17];
    DpStatus s = exp_cache_dir(dir, sizeof dir, err);
    if (s) return s;
    cache_key("train-policy state-" SIM_DEFS_VERSION, train_args, key);
    char pol[EXP_PATH_MAX + 16];
    snprintf(pol, sizeof pol, "%s/policies", dir);
    if ((s = dp_mkdirs(pol, err))) return s;
    snprintf(out_file, cap, "%s/ppo-%s.bin", pol, key);
    if (dp_file_exists(out_file)) {
        dp_info("experiment: PPO policy from the cache: %s", out_file);
        return DP_OK;
    }
    char tmp[EXP_PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", out_file, (int)getpid());
    dp_info("experiment: training the PPO policy on the simulator (driftpilot sim train-policy %s)",
            train_args);
    char store[2048];
    snprintf(store, sizeof store, "%s", train_args ? train_args : "");
    char *argv[64];
    const char *prefix[] = {"driftpilot", "sim", "train-policy", "--out", tmp, NULL};
    build_argv(argv, 64, store, train_args, prefix);
    ExpChild c;
    if ((s = exp_child_start(&c, "sim train-policy", exe, argv, NULL, NULL, err))) return s;
    s = exp_child_wait(&c, 10, err);
    if (s) {
        unlink(tmp);
        return s;
    }
    if (rename(tmp, out_file) != 0) {
        int e = errno;
        unlink(tmp);
        return dp_fail(err, DP_ERR_IO, "rename %s -> %s: %s", tmp, out_file, strerror(e));
    }
    return DP_OK;
}
