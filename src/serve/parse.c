/* Request parsing for the inference service: the JSON bodies of /predict,
 * /feedback and /admin/reload turned into checked structs, with messages that
 * name the problem ("max_new_tokens: expected an integer in 1..128, got
 * 500").  Kept apart from the HTTP code so the fuzzer can drive it alone:
 * every byte string must give DP_OK or a clean error, never a crash. */
#include "serve.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void serve_limits_default(ServeLimits *l) {
    l->max_body_bytes = 65536;
    l->max_question_bytes = 4096;
    l->max_context_bytes = 16384;
    l->max_new_tokens_limit = 128;
    l->default_max_new_tokens = 32;
}

long serve_utf8_invalid_at(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int n;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return (long)i;
        }
        for (int k = 1; k <= n; k++) {
            if (i + (size_t)k >= len || (p[i + k] & 0xc0) != 0x80) return (long)i;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return (long)i;
        i += (size_t)n + 1;
    }
    return -1;
}

/* Common prefix of every parser: size, UTF-8, JSON syntax, an object. */
static DpStatus load_object(const char *body, size_t len, const ServeLimits *lim, json_t **out,
                            DpError *err) {
    *out = NULL;
    if (len > lim->max_body_bytes)
        return dp_fail(err, DP_ERR_INVAL, "body too large: %zu bytes (limit %zu)", len,
                       lim->max_body_bytes);
    if (len == 0) return dp_fail(err, DP_ERR_PARSE, "empty body: expected a JSON object");
    long bad = serve_utf8_invalid_at(body, len);
    if (bad >= 0) return dp_fail(err, DP_ERR_PARSE, "body is not valid UTF-8 (byte %ld)", bad);
    json_error_t je;
    /* Without JSON_ALLOW_NUL, "\u0000" inside a string is refused, so every
     * string we keep is a proper C string. */
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return dp_fail(err, DP_ERR_PARSE, "malformed JSON at line %d column %d: %s", je.line,
                       je.column, je.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return dp_fail(err, DP_ERR_PARSE, "expected a JSON object at the top level");
    }
    *out = j;
    return DP_OK;
}

/* A string field: absent -> *out NULL (error when required); wrong type,
 * too long -> error naming the field.  empty_ok = 0 refuses "" and blanks. */
static DpStatus get_string(json_t *o, const char *name, int required, int empty_ok,
                           size_t max_bytes, char **out, DpError *err) {
    *out = NULL;
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) {
        if (required) return dp_fail(err, DP_ERR_INVAL, "missing field \"%s\"", name);
        return DP_OK;
    }
    if (!json_is_string(v))
        return dp_fail(err, DP_ERR_INVAL, "field \"%s\": expected a string", name);
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n > max_bytes)
        return dp_fail(err, DP_ERR_INVAL, "field \"%s\" too long: %zu bytes (limit %zu)", name, n,
                       max_bytes);
    if (!empty_ok) {
        size_t k = 0;
        while (k < n && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r'))
            k++;
        if (k == n) return dp_fail(err, DP_ERR_INVAL, "field \"%s\" is empty", name);
    }
    *out = dp_strdup(s);
    if (!*out) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    return DP_OK;
}

/* A number field in [lo, hi]; integral when want_int.  Absent: *out = dflt. */
static DpStatus get_number(json_t *o, const char *name, int want_int, double lo, double hi,
                           double dflt, double *out, DpError *err) {
    *out = dflt;
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) return DP_OK;
    if (want_int && !json_is_integer(v)) {
        /* 32.0 is accepted as 32: some clients only have doubles. */
        if (!json_is_real(v) || json_real_value(v) != floor(json_real_value(v)))
            return dp_fail(err, DP_ERR_INVAL, "field \"%s\": expected an integer", name);
    }
    if (!json_is_number(v))
        return dp_fail(err, DP_ERR_INVAL, "field \"%s\": expected a number", name);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi) {
        if (want_int)
            return dp_fail(err, DP_ERR_INVAL, "field \"%s\": expected %.0f..%.0f, got %g", name, lo,
                           hi, x);
        return dp_fail(err, DP_ERR_INVAL, "field \"%s\": expected %g..%g, got %g", name, lo, hi, x);
    }
    *out = x;
    return DP_OK;
}

void serve_predict_request_free(ServePredictRequest *r) {
    if (!r) return;
    free(r->question);
    free(r->context);
    memset(r, 0, sizeof *r);
}

void serve_feedback_request_free(ServeFeedbackRequest *r) {
    if (!r) return;
    free(r->id);
    free(r->question);
    free(r->context);
    free(r->prediction);
    free(r->reference);
    memset(r, 0, sizeof *r);
}

void serve_reload_request_free(ServeReloadRequest *r) {
    if (!r) return;
    free(r->version);
    free(r->model_dir);
    memset(r, 0, sizeof *r);
}

DpStatus serve_parse_predict(const char *body, size_t len, const ServeLimits *lim,
                             ServePredictRequest *out, DpError *err) {
    memset(out, 0, sizeof *out);
    json_t *o = NULL;
    DpStatus st = load_object(body, len, lim, &o, err);
    if (st) return st;
    double mnt, temp, topk, topp;
    if ((st = get_string(o, "question", 1, 0, lim->max_question_bytes, &out->question, err)) ||
        (st = get_string(o, "context", 0, 1, lim->max_context_bytes, &out->context, err)) ||
        (st = get_number(o, "max_new_tokens", 1, 1, lim->max_new_tokens_limit,
                         lim->default_max_new_tokens, &mnt, err)) ||
        (st = get_number(o, "temperature", 0, 0, 100, 0, &temp, err)) ||
        (st = get_number(o, "top_k", 1, 0, 1e6, 0, &topk, err)) ||
        (st = get_number(o, "top_p", 0, 0, 1, 1, &topp, err)))
        goto out;
    if (topp <= 0) {
        st = dp_fail(err, DP_ERR_INVAL, "field \"top_p\": expected a value in (0, 1], got 0");
        goto out;
    }
    if (out->context && !out->context[0]) {
        free(out->context);
        out->context = NULL;
    }
    out->max_new_tokens = (int)mnt;
    /* A temperature this small is greedy in effect, and 1/t would overflow
     * float in the sampler. */
    out->temperature = temp < 1e-4 ? 0 : temp;
    out->top_k = (int)topk;
    out->top_p = topp;
out:
    json_decref(o);
    if (st) serve_predict_request_free(out);
    return st;
}

DpStatus serve_parse_feedback(const char *body, size_t len, const ServeLimits *lim,
                              ServeFeedbackRequest *out, DpError *err) {
    memset(out, 0, sizeof *out);
    json_t *o = NULL;
    DpStatus st = load_object(body, len, lim, &o, err);
    if (st) return st;
    /* The reference may be empty (an empty gold answer is a label too). */
    if ((st = get_string(o, "reference", 1, 1, lim->max_question_bytes, &out->reference, err)) ||
        (st = get_string(o, "id", 0, 0, 128, &out->id, err)))
        goto out;
    if (!out->id) {
        if ((st = get_string(o, "question", 0, 0, lim->max_question_bytes, &out->question, err)) ||
            (st = get_string(o, "prediction", 0, 1, lim->max_question_bytes, &out->prediction,
                             err)) ||
            (st = get_string(o, "context", 0, 1, lim->max_context_bytes, &out->context, err)))
            goto out;
        if (!out->question || !out->prediction) {
            st = dp_fail(err, DP_ERR_INVAL,
                         "need \"id\" (of a served prediction) or both \"question\" and "
                         "\"prediction\"");
            goto out;
        }
    }
out:
    json_decref(o);
    if (st) serve_feedback_request_free(out);
    return st;
}

DpStatus serve_parse_reload(const char *body, size_t len, const ServeLimits *lim,
                            ServeReloadRequest *out, DpError *err) {
    memset(out, 0, sizeof *out);
    json_t *o = NULL;
    DpStatus st = load_object(body, len, lim, &o, err);
    if (st) return st;
    if ((st = get_string(o, "version", 0, 0, 64, &out->version, err)) ||
        (st = get_string(o, "model_dir", 0, 0, 4000, &out->model_dir, err)))
        goto out;
    if (!out->version == !out->model_dir) {
        st = dp_fail(err, DP_ERR_INVAL, "need exactly one of \"version\" and \"model_dir\"");
        goto out;
    }
out:
    json_decref(o);
    if (st) serve_reload_request_free(out);
    return st;
}
