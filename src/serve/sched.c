/* The batching scheduler: one thread that owns every generator and runs
 * continuous batching.
 *
 * Connection threads enqueue a job and sleep on the job's condition
 * variable.  The scheduler, when idle, waits up to batch_wait_ms for the
 * queue to fill (the first request pays at most that much for company);
 * while a batch is running, queued jobs are admitted into free sequence
 * slots between decode steps with no wait at all.  Each step is one
 * gpt2_generator_feed call per model in use: the whole prompt of every newly
 * admitted job (prefill) plus one token of every running job (decode).  A
 * job is marked done only after the step that finished it, so the model it
 * references (and its generator) outlives every use here. */
#include "serve_impl.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LIVE_MODELS 8

static void abs_deadline(double mono_deadline, struct timespec *ts) {
    /* the condition variables use CLOCK_MONOTONIC (see serve.c) */
    double sec = mono_deadline;
    ts->tv_sec = (time_t)sec;
    ts->tv_nsec = (long)((sec - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Runs one prefill+decode step of model m; finished jobs are appended to
 * done[]. */
static void step_model(Serve *s, ServeModel *m, ServeJob **done, int *n_done) {
    int B = s->cfg.max_batch;
    int n = 0, n_seqs = 0;
    for (int j = 0; j < B; j++) {
        ServeJob *job = m->slots[j];
        if (!job) continue;
        n_seqs++;
        if (!job->prompt_fed) {
            gpt2_generator_reset(m->gen, j);
            for (int k = 0; k < job->n_prompt; k++) {
                m->feed_seq[n] = j;
                m->feed_tok[n++] = job->prompt[k];
            }
            job->prompt_fed = 1;
        } else {
            m->feed_seq[n] = j;
            m->feed_tok[n++] = job->out[job->n_out - 1];
        }
    }
    if (n_seqs == 0) return;
    metric_observe(s->m_batch, n_seqs);
    const float *logits = NULL;
    DpError err = {0};
    DpStatus st = gpt2_generator_feed(m->gen, n, m->feed_seq, m->feed_tok, &logits, &err);
    for (int j = 0; j < B; j++) {
        ServeJob *job = m->slots[j];
        if (!job) continue;
        int finished = 0;
        if (st != DP_OK) {
            job->status = st;
            snprintf(job->errmsg, sizeof job->errmsg, "generation failed: %s", err.msg);
            finished = 1;
        } else {
            int t = gpt2_sample(logits + (size_t)j * m->vocab, m->vocab, &job->samp, &s->rng,
                                m->scratch);
            if (t == m->eot_id) {
                finished = 1;
            } else {
                job->out[job->n_out++] = t;
                metric_inc(s->m_gen_tokens, 1);
                finished = job->n_out >= job->samp.max_new_tokens || m->ends_answer[t] ||
                           gpt2_generator_length(m->gen, j) >= m->max_ctx;
            }
        }
        if (finished) {
            m->slots[j] = NULL;
            m->n_active--;
            done[(*n_done)++] = job;
        }
    }
}

void *serve_sched_main(void *arg) {
    Serve *s = arg;
    int B = s->cfg.max_batch;
    ServeModel *live[MAX_LIVE_MODELS];
    int n_live = 0;
    ServeJob **done = dp_calloc((size_t)B * MAX_LIVE_MODELS, sizeof *done);
    DP_ASSERT(done);
    if (s->cfg.compute_threads > 0) {
        /* This thread runs every forward pass; its team size is its own
         * setting, OpenBLAS's is process-wide. */
        omp_set_num_threads(s->cfg.compute_threads);
        openblas_set_num_threads(s->cfg.compute_threads);
    }
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->q_head && s->n_active == 0 && !s->sched_quit)
            pthread_cond_wait(&s->sched_cv, &s->lock);
        if (s->sched_quit && !s->q_head && s->n_active == 0) break;
        /* Idle scheduler: give the first request's companions a moment, but
         * only when requests are coming close together (the previous one
         * arrived within the window).  Under light load nobody is coming
         * and the wait would be pure latency; and a request arriving
         * after the batch has started joins it at the next step anyway. */
        double wait_s = s->cfg.batch_wait_ms / 1000.0;
        if (s->cfg.batching && s->n_active == 0 && s->q_len < B && wait_s > 0 &&
            s->q_head->gap < wait_s && !s->sched_quit) {
            double deadline = s->q_head->t_enqueue + wait_s;
            struct timespec ts;
            abs_deadline(deadline, &ts);
            while (s->q_len < B && !s->sched_quit) {
                if (pthread_cond_timedwait(&s->sched_cv, &s->lock, &ts) == ETIMEDOUT) break;
            }
        }
        /* Admit queued jobs into free slots. */
        int cap = s->cfg.batching ? B : 1;
        double now = dp_time_mono();
        while (s->q_head && s->n_active < cap) {
            ServeJob *job = s->q_head;
            ServeModel *m = job->model;
            int li = -1;
            for (int i = 0; i < n_live; i++)
                if (live[i] == m) li = i;
            if (li < 0) {
                if (n_live == MAX_LIVE_MODELS) break; /* rare: many reloads at once */
                li = n_live;
                live[n_live++] = m;
            }
            int slot = -1;
            for (int j = 0; j < B && slot < 0; j++)
                if (!m->slots[j]) slot = j;
            if (slot < 0) break; /* cannot happen: n_active < cap <= B */
            s->q_head = job->next;
            if (!s->q_head) s->q_tail = NULL;
            s->q_len--;
            job->next = NULL;
            job->slot = slot;
            m->slots[slot] = job;
            m->n_active++;
            s->n_active++;
            metric_observe(s->m_queue_wait, now - job->t_enqueue);
        }
        metric_set(s->m_queue_depth, s->q_len);
        metric_set(s->m_active, s->n_active);
        pthread_mutex_unlock(&s->lock);

        int n_done = 0;
        for (int i = 0; i < n_live; i++)
            step_model(s, live[i], done, &n_done);

        pthread_mutex_lock(&s->lock);
        s->n_active -= n_done;
        /* Forget models with no active job before anyone can free them:
         * the jobs' references are still held until they see done. */
        int k = 0;
        for (int i = 0; i < n_live; i++)
            if (live[i]->n_active > 0) live[k++] = live[i];
        n_live = k;
        for (int i = 0; i < n_done; i++) {
            done[i]->done = 1;
            pthread_cond_signal(&done[i]->cv);
        }
    }
    pthread_mutex_unlock(&s->lock);
    free(done);
    return NULL;
}

DpStatus serve_sched_run(Serve *s, ServeJob *job) {
    pthread_mutex_lock(&s->lock);
    if (s->sched_quit) {
        pthread_mutex_unlock(&s->lock);
        job->status = DP_ERR_STATE;
        snprintf(job->errmsg, sizeof job->errmsg, "shutting down");
        return job->status;
    }
    job->t_enqueue = dp_time_mono();
    job->gap = s->last_enqueue > 0 ? job->t_enqueue - s->last_enqueue : 1e9;
    s->last_enqueue = job->t_enqueue;
    job->next = NULL;
    if (s->q_tail)
        s->q_tail->next = job;
    else
        s->q_head = job;
    s->q_tail = job;
    s->q_len++;
    metric_set(s->m_queue_depth, s->q_len);
    pthread_cond_signal(&s->sched_cv);
    while (!job->done)
        pthread_cond_wait(&job->cv, &s->lock);
    pthread_mutex_unlock(&s->lock);
    return job->status;
}
