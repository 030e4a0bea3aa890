/*
 * cli: the `driftpilot` binary.  main.c dispatches `driftpilot <cmd> ...` to
 * cmd_<cmd>(argc, argv) with argv[0] the command name.  A command returns its
 * exit status: 0 success, 1 failure at run time, 2 bad usage.  Only this part
 * may call exit().
 *
 * Conventions every command follows:
 *   - `--help` prints usage to stdout and returns 0;
 *   - bad usage prints "driftpilot <cmd>: <problem>" and a hint to stderr and
 *     returns 2;
 *   - run-time failures print "driftpilot <cmd>: <error message>" and return 1.
 */
#ifndef DRIFTPILOT_CLI_H
#define DRIFTPILOT_CLI_H

#include "core.h"

#define DP_COMMAND(name, fn, summary) int fn(int argc, char **argv);
#include "commands.def"
#undef DP_COMMAND

/* Prints "driftpilot <cmd>: msg" and "run 'driftpilot <cmd> --help'" to
 * stderr; returns 2 (usage error). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "driftpilot <cmd>: msg" to stderr; returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses numbers strictly (whole string, in range); on failure prints a usage
 * error naming the option and returns 0. */
int cli_parse_int(const char *cmd, const char *opt, const char *text, long long lo, long long hi,
                  long long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
                     double *out);

/* True when argv holds -h or --help (before any "--"). */
int cli_wants_help(int argc, char **argv);

#endif
