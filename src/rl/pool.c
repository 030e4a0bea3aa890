/* A minimal fork-join thread pool for the PPO minibatch update: two short
 * parallel phases per update, thousands of times a second.
 *
 * Why not OpenMP: libgomp's barrier either spins (fast on an idle machine,
 * disastrous when the cores are shared with other work: a spinning thread
 * burns the time slice its partner needs) or sleeps in the kernel (robust but
 * a futex round trip per phase), and the choice is an environment variable
 * read at start-up.  Here a waiter spins briefly, then yields its core, then
 * sleeps on a condition variable, so it is quick when idle and polite when
 * loaded.  Work is split by thread index only, so results do not depend on
 * scheduling. */
#include "rl_impl.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SPIN_PAUSE 2000  /* busy polls before yielding */
#define SPIN_YIELD 200   /* sched_yield polls before sleeping */

typedef struct {
    RlPool *pool;
    int index;
} Worker;

struct RlPool {
    int n;                      /* threads including the caller */
    pthread_t *threads;         /* (n - 1) */
    Worker *workers;            /* (n - 1) */
    int started;                /* workers successfully started */
    atomic_uint gen;            /* bumped once per rl_pool_run */
    atomic_int done;            /* workers finished with the current gen */
    atomic_int quit;
    void (*fn)(void *, int);
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static inline void cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    RlPool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int polls = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&p->quit, memory_order_acquire)) {
            polls++;
            if (polls < SPIN_PAUSE) {
                cpu_pause();
            } else if (polls < SPIN_PAUSE + SPIN_YIELD) {
                sched_yield();
            } else {
                pthread_mutex_lock(&p->mu);
                while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
                       !atomic_load_explicit(&p->quit, memory_order_acquire))
                    pthread_cond_wait(&p->cv, &p->mu);
                pthread_mutex_unlock(&p->mu);
            }
        }
        if (atomic_load_explicit(&p->quit, memory_order_acquire)) break;
        seen = g;
        p->fn(p->ctx, w->index);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
    return NULL;
}

DpStatus rl_pool_create(int n_threads, RlPool **out, DpError *err) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 64)
        return dp_fail(err, DP_ERR_INVAL, "thread pool: %d threads (1..64)", n_threads);
    RlPool *p = dp_calloc(1, sizeof *p);
    if (!p) return dp_fail(err, DP_ERR_NOMEM, "thread pool: out of memory");
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->quit, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->threads = dp_calloc((size_t)n_threads - 1, sizeof *p->threads);
        p->workers = dp_calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->threads || !p->workers) {
            rl_pool_destroy(p);
            return dp_fail(err, DP_ERR_NOMEM, "thread pool: out of memory");
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            p->workers[i].index = i + 1;
            if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
                rl_pool_destroy(p);
                return dp_fail(err, DP_ERR_STATE, "thread pool: cannot start thread %d", i + 1);
            }
            p->started++;
        }
    }
    *out = p;
    return DP_OK;
}

void rl_pool_run(RlPool *p, void (*fn)(void *ctx, int t), void *ctx) {
    if (p->n == 1) {
        fn(ctx, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    /* The mutex orders the bump against a worker that is about to sleep. */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0);
    int polls = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n - 1) {
        if (++polls < SPIN_PAUSE) cpu_pause();
        else sched_yield();
    }
}

void rl_pool_destroy(RlPool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->quit, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p->workers);
    free(p);
}
