/* rl internal header: the small thread pool the PPO update uses.  Not part
 * of the public API. */
#ifndef DRIFTPILOT_RL_IMPL_H
#define DRIFTPILOT_RL_IMPL_H

#include "core.h"

typedef struct RlPool RlPool;

/* Starts n_threads - 1 workers (the caller is thread 0).  n_threads 1 gives a
 * pool that runs everything on the caller. */
DpStatus rl_pool_create(int n_threads, RlPool **out, DpError *err);
/* Runs fn(ctx, t) for t = 0..n_threads-1, t = 0 on the caller, and returns
 * when all have finished (their writes are then visible to the caller). */
void rl_pool_run(RlPool *p, void (*fn)(void *ctx, int t), void *ctx);
/* Stops and joins the workers.  NULL-safe. */
void rl_pool_destroy(RlPool *p);

#endif
