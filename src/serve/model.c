/* A served model: weights, tokenizer and the generator (KV cache) the
 * scheduler decodes with, reference counted so a hot swap can free the old
 * model exactly when its last request ends. */
#include "serve_impl.h"

#include <stdlib.h>
#include <string.h>

void serve_model_free(ServeModel *m) {
    if (!m) return;
    gpt2_generator_destroy(m->gen);
    gpt2_free(m->gpt);
    bpe_free(m->tok);
    free(m->ends_answer);
    free(m->slots);
    free(m->feed_seq);
    free(m->feed_tok);
    free(m->scratch);
    free(m);
}

DpStatus serve_model_load(const char *dir, const char *version, int max_batch, int max_context,
                          ServeModel **out, DpError *err) {
    *out = NULL;
    ServeModel *m = dp_calloc(1, sizeof *m);
    if (!m) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    DpStatus st;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    if (version && *version) {
        snprintf(m->version, sizeof m->version, "%s", version);
    } else {
        /* A plain directory is named by its base name ("tiny" for models/tiny/). */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", dir);
        size_t n = strlen(tmp);
        while (n > 1 && tmp[n - 1] == '/')
            tmp[--n] = 0;
        const char *b = strrchr(tmp, '/');
        snprintf(m->version, sizeof m->version, "%s", b ? b + 1 : tmp);
    }
    if (m->version[0] == 'v' && m->version[1] >= '0' && m->version[1] <= '9')
        m->version_num = strtod(m->version + 1, NULL);
    if ((st = gpt2_load_dir(dir, &m->gpt, err))) goto fail;
    if ((st = bpe_load_dir(dir, &m->tok, err))) {
        dp_error_wrap(err, "model %s has no usable tokenizer", dir);
        goto fail;
    }
    m->vocab = m->gpt->config.vocab_size;
    if (bpe_vocab_size(m->tok) > m->vocab) {
        st = dp_fail(err, DP_ERR_INVAL, "model %s: tokenizer has %d ids but the model only %d", dir,
                     bpe_vocab_size(m->tok), m->vocab);
        goto fail;
    }
    m->eot_id = bpe_eot_id(m->tok);
    if (m->eot_id < 0) m->eot_id = m->gpt->config.eos_token_id;
    int ctx = m->gpt->config.n_positions;
    if (max_context > 0 && max_context < ctx) ctx = max_context;
    if (max_context <= 0 && ctx > 256) ctx = 256;
    m->max_ctx = ctx;
    if ((st = gpt2_generator_create(m->gpt, max_batch, ctx, 256, &m->gen, err))) goto fail;
    m->ends_answer = dp_calloc((size_t)m->vocab, 1);
    m->slots = dp_calloc((size_t)max_batch, sizeof *m->slots);
    m->feed_seq = dp_malloc((size_t)max_batch * ctx * sizeof(int));
    m->feed_tok = dp_malloc((size_t)max_batch * ctx * sizeof(int));
    m->scratch = dp_malloc(GPT2_SAMPLE_SCRATCH(m->vocab));
    if (!m->ends_answer || !m->slots || !m->feed_seq || !m->feed_tok || !m->scratch) {
        st = dp_fail(err, DP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* The answer ends at the first newline (qa.h's prompt format), so any
     * token whose bytes hold one stops the sequence. */
    int tv = bpe_vocab_size(m->tok);
    for (int i = 0; i < tv; i++) {
        size_t n = 0;
        const char *b = bpe_token_bytes(m->tok, i, &n);
        if (b && memchr(b, '\n', n)) m->ends_answer[i] = 1;
    }
    m->refs = 1;
    *out = m;
    return DP_OK;
fail:
    serve_model_free(m);
    return st;
}

ServeModel *serve_model_acquire(Serve *s) {
    pthread_mutex_lock(&s->lock);
    ServeModel *m = s->current;
    if (m) m->refs++;
    pthread_mutex_unlock(&s->lock);
    return m;
}

void serve_model_release(Serve *s, ServeModel *m) {
    if (!m) return;
    pthread_mutex_lock(&s->lock);
    int last = --m->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        dp_info("serve: freed model %s", m->version);
        serve_model_free(m);
    }
}
