/* driftpilot's entry point: git-style dispatch of subcommands from the table
 * in commands.def, `help`, and suggestions for mistyped commands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef DP_VERSION
#define DP_VERSION "dev"
#endif

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} Command;

static const Command commands[] = {
#define DP_COMMAND(name, fn, summary) {name, fn, summary},
#include "commands.def"
#undef DP_COMMAND
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "driftpilot %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nrun 'driftpilot %s --help' for usage\n", cmd);
    return 2;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "driftpilot %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_parse_int(const char *cmd, const char *opt, const char *text, long long lo, long long hi,
                  long long *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text ? text : "", &end, 10);
    if (!text || !*text || *end || errno || v < lo || v > hi) {
        cli_usage_error(cmd, "%s: expected an integer in [%lld, %lld], got '%s'", opt, lo, hi,
                        text ? text : "");
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
                     double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text ? text : "", &end);
    if (!text || !*text || *end || errno || !(v >= lo && v <= hi)) {
        cli_usage_error(cmd, "%s: expected a number in [%g, %g], got '%s'", opt, lo, hi,
                        text ? text : "");
        return 0;
    }
    *out = v;
    return 1;
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    }
    return 0;
}

static const Command *find_command(const char *name) {
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

/* Damerau-free Levenshtein distance, for "did you mean". */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static void print_overview(FILE *out) {
    fprintf(out,
            "usage: driftpilot <command> [options]\n\n"
            "driftpilot decides when to retrain a deployed language model and where (which\n"
            "cloud) to retrain and redeploy it, with a PPO policy that weighs answer quality\n"
            "against cost and latency.\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++)
        fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nrun 'driftpilot <command> --help' for the options of one command.\n");
}

int cmd_help(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        print_overview(stdout);
        return 0;
    }
    const Command *c = find_command(argv[1]);
    if (!c) return cli_usage_error("help", "no such command '%s'", argv[1]);
    char *args[] = {(char *)c->name, "--help", NULL};
    return c->fn(2, args);
}

int cmd_version(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        printf("usage: driftpilot version\n\nPrints the version of driftpilot.\n");
        return 0;
    }
    printf("driftpilot %s\n", DP_VERSION);
    return 0;
}

int main(int argc, char **argv) {
    /* OpenMP threads that spin while waiting take whole cores from the other
     * driftpilot processes (services, controller, jobs) that share the
     * machine; measured 4-8x slower training under load.  libgomp reads the
     * policy only at start-up, so set it and re-execute once; a user's own
     * OMP_WAIT_POLICY is respected. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
        /* exec failed: carry on with the default policy */
    }
    if (argc < 2) {
        print_overview(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help")) name = "help";
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) name = "version";
    const Command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "driftpilot: '%s' is not a driftpilot command.\n", name);
        int best = 99;
        for (int i = 0; i < n_commands; i++) {
            int d = edit_distance(name, commands[i].name);
            if (d < best) best = d;
        }
        if (best <= 2 || best * 3 <= (int)strlen(name)) {
            fprintf(stderr, "\nThe most similar command%s:\n", "");
            for (int i = 0; i < n_commands; i++)
                if (edit_distance(name, commands[i].name) == best)
                    fprintf(stderr, "    %s\n", commands[i].name);
        }
        fprintf(stderr, "\nrun 'driftpilot help' for the list of commands\n");
        return 2;
    }
    return c->fn(argc - 1, argv + 1);
}
