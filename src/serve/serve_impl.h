/* serve internal header: the structs shared by the files of src/serve
 * (model.c, sched.c, feedback.c, http.c, serve.c).  Not part of the API.
 *
 * Locking: Serve.lock guards the queue, the current model pointer, every
 * model's refs, job completion flags, inflight and stopping.  The scheduler
 * thread alone touches a model's generator, slots and feed buffers, and it
 * only does so while a job of that model is active (the job's reference
 * keeps the model alive: jobs are marked done only after the step that
 * finished them).  Serve.fb_lock guards the feedback state and log. */
#ifndef DRIFTPILOT_SERVE_IMPL_H
#define DRIFTPILOT_SERVE_IMPL_H

#include <pthread.h>
#include <stdio.h>

#include "metrics.h"
#include "nn.h"
#include "serve.h"
#include "train.h"

typedef struct ServeJob ServeJob;

typedef struct ServeModel {
    Gpt2 *gpt;
    BpeTokenizer *tok;
    Gpt2Generator *gen; /* scheduler thread only */
    char version[64];   /* "v000003", or the directory's base name */
    char dir[4096];
    double version_num;         /* 3 for v000003; 0 for a plain directory */
    int refs;                   /* under Serve.lock */
    int eot_id;                 /* -1 when none */
    int vocab;                  /* model vocab size */
    int max_ctx;                /* tokens per sequence in the KV cache */
    unsigned char *ends_answer; /* (vocab) 1 when the token's bytes hold '\n' */
    /* Scheduler state (scheduler thread only): */
    ServeJob **slots; /* (max_batch) the job decoding in each sequence slot */
    int n_active;
    int *feed_seq, *feed_tok; /* (max_batch * max_ctx) rows of one feed call */
    void *scratch;            /* GPT2_SAMPLE_SCRATCH(vocab) */
} ServeModel;

struct ServeJob {
    ServeModel *model; /* a reference, released by the request */
    int *prompt;
    int n_prompt;
    Gpt2Sampling samp;
    int *out; /* generated ids (no eot), max_new_tokens of room */
    int n_out;
    int slot;
    int prompt_fed;
    int done; /* under Serve.lock */
    DpStatus status;
    char errmsg[256];
    double t_enqueue;
    double gap; /* seconds since the previous job was enqueued */
    ServeJob *next;
    pthread_cond_t cv;
};

/* One served prediction, kept for /feedback by id. */
typedef struct {
    uint64_t seq; /* 0: empty slot */
    char *question, *context, *prediction;
    char version[64];
} ServeRecent;

struct Serve {
    ServeConfig cfg; /* strings point at the copies below */
    char *s_listen, *s_model_dir, *s_registry_dir, *s_target, *s_feedback_log, *s_token;
    ServeLimits lim;

    pthread_mutex_t lock;
    pthread_cond_t sched_cv; /* new work or quit */
    pthread_cond_t idle_cv;  /* inflight dropped */
    ServeModel *current;
    ServeJob *q_head, *q_tail;
    int q_len;
    int n_active; /* sequences decoding, all models */
    int inflight; /* HTTP requests being handled */
    int stopping; /* draining: new requests answer 503 */
    int sched_quit;
    int sched_started;
    double last_enqueue; /* monotonic time of the last enqueue (0: none yet) */
    pthread_t sched;
    DpRng rng; /* scheduler thread only */

    pthread_mutex_t reload_lock; /* one reload at a time; guards registry */
    Registry *registry;
    double reloads;

    struct MHD_Daemon *daemon;
    int quiesced_fd; /* listen socket after quiesce, closed after stop; -1 */
    int port;
    int started, stopped;
    double t_start;

    /* feedback (fb_lock) */
    pthread_mutex_t fb_lock;
    ServeRecent *recent; /* (recent_capacity) ring indexed by seq % capacity */
    uint64_t next_seq;
    char nonce[12];               /* ids are "<nonce>-<seq>" */
    double *w_bleu, *w_em, *w_f1; /* (feedback_window) */
    int w_n, w_pos;
    FILE *fb_log;
    double fb_last_sync;
    int fb_dirty;

    /* metrics */
    MetricsRegistry *metrics;
    MetricFamily *f_requests, *f_duration, *f_model_info;
    Metric *m_prompt_tokens, *m_gen_tokens, *m_queue_depth, *m_inflight, *m_active;
    Metric *m_batch, *m_queue_wait, *m_bleu, *m_acc, *m_f1, *m_fb_total, *m_fb_window;
    Metric *m_version, *m_reloads;
};

// ---- model.c ----
/* Loads weights and tokenizer from dir; version names it.  max_batch slots. */
DpStatus serve_model_load(const char *dir, const char *version, int max_batch, int max_context,
                          ServeModel **out, DpError *err);
void serve_model_free(ServeModel *m);
/* Takes a reference to the current model (NULL when none).  Locks. */
ServeModel *serve_model_acquire(Serve *s);
/* Drops a reference; frees the model when it was the last.  Locks. */
void serve_model_release(Serve *s, ServeModel *m);

// ---- sched.c ----
void *serve_sched_main(void *arg);
/* Enqueues job (its model referenced, prompt and sampling set) and waits
 * until the scheduler finishes it.  Returns job->status. */
DpStatus serve_sched_run(Serve *s, ServeJob *job);

// ---- feedback.c ----
DpStatus serve_feedback_init(Serve *s, DpError *err);
void serve_feedback_free(Serve *s);
/* Records a served prediction; writes its id into id (cap >= 32). */
void serve_feedback_remember(Serve *s, const char *question, const char *context,
                             const char *prediction, const char *version, char *id, size_t cap);
/* Scores a labelled request and logs it.  DP_ERR_INVAL when the id is
 * unknown (or has left the ring).  *scores and *window get the results. */
DpStatus serve_feedback_apply(Serve *s, const ServeFeedbackRequest *fb, double scores[3],
                              int *window, DpError *err);
/* write + fdatasync of the log (on shutdown and at most once a second). */
void serve_feedback_sync(Serve *s);

// ---- http.c ----
DpStatus serve_http_start(Serve *s, DpError *err);
void serve_http_quiesce(Serve *s);
void serve_http_stop(Serve *s);

#endif
