/* Feedback: labelled answers for served requests.
 *
 * Served predictions are kept in a ring indexed by their sequence number
 * (ids are "<nonce>-<seq>", so a lookup is one slot and one compare, and a
 * restarted service never matches an old id).  Each labelled request is
 * scored (BLEU-1, exact match, F1 from qa.h), enters a rolling window whose
 * means are the llm_bleu / llm_accuracy / llm_f1 gauges, and is appended as
 * one JSON line to the labelled-data log the retrain job reads.
 *
 * Durability: each line is written with fflush before /feedback answers, so
 * it survives a crash of the service; fdatasync runs at most once a second
 * (piggybacked on feedback requests) and at shutdown, so a power loss can
 * lose at most about the last second of labels. */
#include "serve_impl.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qa.h"

static void recent_clear(ServeRecent *r) {
    free(r->question);
    free(r->context);
    free(r->prediction);
    memset(r, 0, sizeof *r);
}

DpStatus serve_feedback_init(Serve *s, DpError *err) {
    int cap = s->cfg.recent_capacity, w = s->cfg.feedback_window;
    s->recent = dp_calloc((size_t)cap, sizeof *s->recent);
    s->w_bleu = dp_calloc((size_t)w, sizeof(double));
    s->w_em = dp_calloc((size_t)w, sizeof(double));
    s->w_f1 = dp_calloc((size_t)w, sizeof(double));
    if (!s->recent || !s->w_bleu || !s->w_em || !s->w_f1)
        return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    /* The nonce makes ids unique across restarts of the service. */
    uint64_t h = dp_hash_u64((uint64_t)(dp_time_wall() * 1e6) ^ ((uint64_t)getpid() << 32));
    snprintf(s->nonce, sizeof s->nonce, "%08x", (unsigned)(h & 0xffffffffu));
    s->next_seq = 1;
    if (s->cfg.feedback_log && *s->cfg.feedback_log) {
        s->fb_log = fopen(s->cfg.feedback_log, "a");
        if (!s->fb_log)
            return dp_fail(err, DP_ERR_IO, "open feedback log %s: %s", s->cfg.feedback_log,
                           strerror(errno));
    }
    s->fb_last_sync = dp_time_mono();
    return DP_OK;
}

void serve_feedback_sync(Serve *s) {
    pthread_mutex_lock(&s->fb_lock);
    if (s->fb_log) {
        fflush(s->fb_log);
        if (s->fb_dirty) fdatasync(fileno(s->fb_log));
        s->fb_dirty = 0;
        s->fb_last_sync = dp_time_mono();
    }
    pthread_mutex_unlock(&s->fb_lock);
}

void serve_feedback_free(Serve *s) {
    if (s->recent)
        for (int i = 0; i < s->cfg.recent_capacity; i++)
            recent_clear(&s->recent[i]);
    free(s->recent);
    free(s->w_bleu);
    free(s->w_em);
    free(s->w_f1);
    s->recent = NULL;
    s->w_bleu = s->w_em = s->w_f1 = NULL;
    if (s->fb_log) {
        fflush(s->fb_log);
        fdatasync(fileno(s->fb_log));
        fclose(s->fb_log);
        s->fb_log = NULL;
    }
}

void serve_feedback_remember(Serve *s, const char *question, const char *context,
                             const char *prediction, const char *version, char *id, size_t cap) {
    pthread_mutex_lock(&s->fb_lock);
    uint64_t seq = s->next_seq++;
    ServeRecent *r = &s->recent[seq % (uint64_t)s->cfg.recent_capacity];
    recent_clear(r);
    r->question = dp_strdup(question);
    r->context = context ? dp_strdup(context) : NULL;
    r->prediction = dp_strdup(prediction);
    snprintf(r->version, sizeof r->version, "%s", version);
    /* Out of memory: the slot stays empty and the id will be unknown. */
    r->seq = (r->question && r->prediction && (!context || r->context)) ? seq : 0;
    pthread_mutex_unlock(&s->fb_lock);
    snprintf(id, cap, "%s-%llu", s->nonce, (unsigned long long)seq);
}

/* Parses "<nonce>-<seq>" of this process; 0 when it is not one. */
static uint64_t id_seq(const Serve *s, const char *id) {
    size_t nl = strlen(s->nonce);
    if (strncmp(id, s->nonce, nl) != 0 || id[nl] != '-') return 0;
    const char *p = id + nl + 1;
    if (*p < '1' || *p > '9') return 0;
    char *end = NULL;
    unsigned long long v = strtoull(p, &end, 10);
    return *end ? 0 : (uint64_t)v;
}

DpStatus serve_feedback_apply(Serve *s, const ServeFeedbackRequest *fb, double scores[3],
                              int *window, DpError *err) {
    DpStatus st = DP_OK;
    char *line = NULL;
    pthread_mutex_lock(&s->fb_lock);
    const char *question, *context, *prediction;
    char version[64];
    if (fb->id) {
        uint64_t seq = id_seq(s, fb->id);
        ServeRecent *r = seq ? &s->recent[seq % (uint64_t)s->cfg.recent_capacity] : NULL;
        if (!r || r->seq != seq) {
            st = dp_fail(err, DP_ERR_INVAL,
                         "unknown id \"%.64s\" (not served here, or older than the last %d "
                         "predictions)",
                         fb->id, s->cfg.recent_capacity);
            goto out;
        }
        question = r->question;
        context = r->context;
        prediction = r->prediction;
        snprintf(version, sizeof version, "%s", r->version);
    } else {
        question = fb->question;
        context = fb->context;
        prediction = fb->prediction;
        serve_current_version(s, version, sizeof version);
    }
    const char *refs[1] = {fb->reference};
    QaScores sc;
    if (qa_score(prediction, refs, 1, &sc) != DP_OK) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory while scoring");
        goto out;
    }
    int W = s->cfg.feedback_window;
    s->w_bleu[s->w_pos] = sc.bleu1;
    s->w_em[s->w_pos] = sc.exact_match;
    s->w_f1[s->w_pos] = sc.f1;
    s->w_pos = (s->w_pos + 1) % W;
    if (s->w_n < W) s->w_n++;
    /* Recomputed from the window (W is small) rather than kept as running
     * sums, so float error cannot accumulate over days of traffic. */
    double sb = 0, se = 0, sf = 0;
    for (int i = 0; i < s->w_n; i++) {
        sb += s->w_bleu[i];
        se += s->w_em[i];
        sf += s->w_f1[i];
    }
    metric_set(s->m_bleu, sb / s->w_n);
    metric_set(s->m_acc, se / s->w_n);
    metric_set(s->m_f1, sf / s->w_n);
    metric_set(s->m_fb_window, s->w_n);
    metric_inc(s->m_fb_total, 1);
    scores[0] = sc.bleu1;
    scores[1] = sc.exact_match;
    scores[2] = sc.f1;
    *window = s->w_n;
    if (s->fb_log) {
        json_t *j = json_pack("{s:f, s:s?, s:s, s:s?, s:s, s:s, s:s}", "time", dp_time_wall(), "id",
                              fb->id, "question", question, "context", context, "prediction",
                              prediction, "reference", fb->reference, "model_version", version);
        line = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(j);
        if (!line || fputs(line, s->fb_log) == EOF || fputc('\n', s->fb_log) == EOF ||
            fflush(s->fb_log) != 0) {
            st = dp_fail(err, DP_ERR_IO, "writing the feedback log %s failed: %s",
                         s->cfg.feedback_log, strerror(errno));
            goto out;
        }
        s->fb_dirty = 1;
        double now = dp_time_mono();
        if (now - s->fb_last_sync >= 1.0) {
            fdatasync(fileno(s->fb_log));
            s->fb_dirty = 0;
            s->fb_last_sync = now;
        }
    }
out:
    pthread_mutex_unlock(&s->fb_lock);
    free(line);
    return st;
}
