/*
 * experiment (private to src/cli): the pieces of `driftpilot experiment`
 * that are not option parsing -- child processes and their lifecycle
 * (experiment_proc.c), and the cache of the built-in model and policy
 * (experiment_cache.c).  cmd_experiment.c wires them together.
 *
 * Children: every service the experiment needs is a child process of this
 * binary (/proc/self/exe), started in its own process group (so a terminal's
 * Ctrl-C reaches only the experiment, which then stops them in order), with
 * stdout and stderr in a log file and PR_SET_PDEATHSIG = SIGTERM (so they die
 * with the experiment even if it is killed with SIGKILL).  The experiment
 * makes itself a child subreaper, so grandchildren orphaned by a killed child
 * (a retrain job of a controller) are re-parented to it and swept at the end
 * (exp_sweep_orphans).  Stopping is SIGTERM to the group, a grace period,
 * then SIGKILL, always followed by waitpid: nothing is left behind.
 *
 * Ownership: ExpChild is a plain value owned by the caller.  Nothing here
 * allocates beyond the call.
 */
#ifndef DRIFTPILOT_CLI_EXPERIMENT_H
#define DRIFTPILOT_CLI_EXPERIMENT_H

#include <signal.h>
#include <sys/types.h>

#include "core.h"

#define EXP_PATH_MAX 1024

/* Set by the SIGINT/SIGTERM handler of the experiment; every wait polls it. */
extern volatile sig_atomic_t exp_stop_requested;

typedef struct {
    char name[96];               /* "serve adaptive/aws", for messages */
    pid_t pid;                   /* 0: not started */
    int reaped;                  /* 1: waited for; status holds how it ended */
    int status;                  /* waitpid status */
    char log_path[EXP_PATH_MAX]; /* "" when it writes to our stderr */
} ExpChild;

/* Installs the signal handlers (SIGINT, SIGTERM set exp_stop_requested;
 * SIGPIPE ignored) and makes this process a child subreaper. */
void exp_signals_install(void);

/* The path of this binary (/proc/self/exe resolved). */
DpStatus exp_self_path(char *out, size_t cap, DpError *err);

/* Starts exe with argv (NULL-terminated; argv[0] is shown in ps).  stdout
 * goes to stdout_path when not NULL (else to log_path, else our stderr); stderr
 * goes to log_path when not NULL, else to our stderr (progress of long jobs). */
DpStatus exp_child_start(ExpChild *c, const char *name, const char *exe, char *const argv[],
                         const char *log_path, const char *stdout_path, DpError *err);

/* 1 while running; 0 once it ended (reaped, status filled). */
int exp_child_alive(ExpChild *c);

/* Waits for the child to end, polling exp_stop_requested; on a stop request
 * it stops the child (grace_s) and returns DP_ERR_STATE.  DP_ERR_STATE too
 * when it ends badly (non-zero exit or signal), naming it and its log. */
DpStatus exp_child_wait(ExpChild *c, double grace_s, DpError *err);

/* SIGTERM to its process group, up to grace_s for it to end, then SIGKILL;
 * always reaps.  Safe on a child that already ended or never started. */
void exp_child_stop(ExpChild *c, double grace_s);

/* Stops several children at once (all get SIGTERM, then one shared grace
 * period, then SIGKILL for those left). */
void exp_children_stop(ExpChild *const *cs, int n, double grace_s);

/* "exit 3", "signal 9", "running" */
void exp_child_describe(const ExpChild *c, char *out, size_t cap);

/* SIGTERM to every child process of c (and to its process group): ends a
 * controller's running retrain job so that the controller records how it
 * ended and can stop without waiting for it.  Returns how many. */
int exp_child_term_children(ExpChild *c);

/* Kills and reaps every process still parented to us (orphans re-parented
 * by the subreaper).  Returns how many were found. */
int exp_sweep_orphans(double grace_s);

/* Appends the last lines of a log file to a message buffer (for errors). */
void exp_log_tail(const char *path, int lines, char *out, size_t cap);

// ---- cache of the built-in model and the policy (experiment_cache.c) ----

/* The cache directory: $DRIFTPILOT_HOME, else $XDG_CACHE_HOME/driftpilot,
 * else $HOME/.cache/driftpilot, else ./.driftpilot.  Created. */
DpStatus exp_cache_dir(char *out, size_t cap, DpError *err);

/* Returns in out_dir a pretrained built-in model for these `driftpilot
 * pretrain` arguments (blank-separated), training it when the cache has none
 * (keyed on sha256 of the arguments).  Progress on stderr. */
DpStatus exp_cache_model(const char *exe, const char *pretrain_args, char *out_dir, size_t cap,
                         DpError *err);

/* The same for a PPO policy file trained by `driftpilot sim train-policy`
 * with these arguments. */
DpStatus exp_cache_policy(const char *exe, const char *train_args, char *out_file, size_t cap,
                          DpError *err);

#endif
