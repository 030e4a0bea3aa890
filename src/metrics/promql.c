/*
 * PromQL client: builds /api/v1/query and /api/v1/query_range URLs, fetches
 * them with metrics_http_get(), and turns Prometheus's JSON envelope
 *
 *     {"status":"success","data":{"resultType":"vector","result":[...]}}
 *     {"status":"error","errorType":"bad_data","error":"..."}
 *
 * into a PromqlResult.  Sample values arrive as strings ("1.5", "NaN",
 * "+Inf") next to float timestamps; both are checked, so a malformed answer
 * is an error that says where, not a zero.
 */
#include "metrics.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void series_free(PromqlSeries *s) {
    for (int i = 0; i < s->n_labels; i++) {
        free(s->label_names[i]);
        free(s->label_values[i]);
    }
    free(s->label_names);
    free(s->label_values);
    free(s->points);
    memset(s, 0, sizeof *s);
}

void promql_result_free(PromqlResult *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_series; i++) series_free(&r->series[i]);
    free(r->series);
    free(r->text);
    free(r->warnings);
    memset(r, 0, sizeof *r);
}

const char *promql_series_label(const PromqlSeries *s, const char *name) {
    if (!s || !name) return NULL;
    for (int i = 0; i < s->n_labels; i++)
        if (!strcmp(s->label_names[i], name)) return s->label_values[i];
    return NULL;
}

static int value_from_string(const char *s, double *out) {
    if (!strcmp(s, "+Inf") || !strcmp(s, "Inf")) *out = INFINITY;
    else if (!strcmp(s, "-Inf")) *out = -INFINITY;
    else if (!strcmp(s, "NaN")) *out = NAN;
    else {
        char *e;
        *out = strtod(s, &e);
        if (e == s || *e) return -1;
    }
    return 0;
}

/* [ts, "value"] -> point; where names the position for errors. */
static DpStatus parse_point(json_t *j, PromqlPoint *p, const char *where, DpError *err) {
    if (!json_is_array(j) || json_array_size(j) != 2 || !json_is_number(json_array_get(j, 0)) ||
        !json_is_string(json_array_get(j, 1)))
        return dp_fail(err, DP_ERR_PARSE, "prometheus response: %s: expected [time, \"value\"]",
                       where);
    p->t = json_number_value(json_array_get(j, 0));
    const char *s = json_string_value(json_array_get(j, 1));
    if (value_from_string(s, &p->v) != 0)
        return dp_fail(err, DP_ERR_PARSE, "prometheus response: %s: bad value \"%.40s\"", where,
                       s);
    return DP_OK;
}

static DpStatus parse_labels(json_t *metric, PromqlSeries *s, const char *where, DpError *err) {
    if (!json_is_object(metric))
        return dp_fail(err, DP_ERR_PARSE, "prometheus response: %s: \"metric\" is not an object",
                       where);
    size_t n = json_object_size(metric);
    s->label_names = calloc(n + 1, sizeof(char *));
    s->label_values = calloc(n + 1, sizeof(char *));
    if (!s->label_names || !s->label_values)
        return dp_fail(err, DP_ERR_NOMEM, "prometheus response: out of memory");
    const char *k;
    json_t *v;
    json_object_foreach(metric, k, v) {
        if (!json_is_string(v))
            return dp_fail(err, DP_ERR_PARSE,
                           "prometheus response: %s: label %s is not a string", where, k);
        s->label_names[s->n_labels] = dp_strdup(k);
        s->label_values[s->n_labels] = dp_strdup(json_string_value(v));
        s->n_labels++;
        if (!s->label_names[s->n_labels - 1] || !s->label_values[s->n_labels - 1])
            return dp_fail(err, DP_ERR_NOMEM, "prometheus response: out of memory");
    }
    return DP_OK;
}

static DpStatus parse_data(json_t *data, PromqlResult *out, DpError *err) {
    if (!json_is_object(data))
        return dp_fail(err, DP_ERR_PARSE, "prometheus response: \"data\" missing or not an object");
    const char *rt = json_string_value(json_object_get(data, "resultType"));
    json_t *result = json_object_get(data, "result");
    if (!rt) return dp_fail(err, DP_ERR_PARSE, "prometheus response: no data.resultType");
    if (!result) return dp_fail(err, DP_ERR_PARSE, "prometheus response: no data.result");
    if (!strcmp(rt, "scalar") || !strcmp(rt, "string")) {
        out->type = rt[1] == 'c' ? PROMQL_SCALAR : PROMQL_STRING;
        out->series = calloc(1, sizeof *out->series);
        if (!out->series) return dp_fail(err, DP_ERR_NOMEM, "prometheus response: out of memory");
        out->n_series = 1;
        PromqlSeries *s = &out->series[0];
        s->points = calloc(1, sizeof *s->points);
        if (!s->points) return dp_fail(err, DP_ERR_NOMEM, "prometheus response: out of memory");
        s->n_points = 1;
        if (out->type == PROMQL_SCALAR) return parse_point(result, s->points, "data.result", err);
        if (!json_is_array(result) || json_array_size(result) != 2 ||
            !json_is_number(json_array_get(result, 0)) ||
            !json_is_string(json_array_get(result, 1)))
            return dp_fail(err, DP_ERR_PARSE,
                           "prometheus response: data.result: expected [time, \"string\"]");
        s->points[0].t = json_number_value(json_array_get(result, 0));
        s->points[0].v = NAN;
        out->text = dp_strdup(json_string_value(json_array_get(result, 1)));
        if (!out->text) return dp_fail(err, DP_ERR_NOMEM, "prometheus response: out of memory");
        return DP_OK;
    }
    int matrix;
    if (!strcmp(rt, "vector")) matrix = 0;
    else if (!strcmp(rt, "matrix")) matrix = 1;
    else return dp_fail(err, DP_ERR_PARSE, "prometheus response: unknown resultType \"%s\"", rt);
    out->type = matrix ? PROMQL_MATRIX : PROMQL_VECTOR;
    if (!json_is_array(result))
        return dp_fail(err, DP_ERR_PARSE, "prometheus response: data.result is not an array");
    size_t n = json_array_size(result);
    out->series = calloc(n + 1, sizeof *out->series);
    if (!out->series) return dp_fail(err, DP_ERR_NOMEM, "prometheus response: out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(result, i);
        PromqlSeries *s = &out->series[i];
        out->n_series = i + 1;
        char where[64];
        snprintf(where, sizeof where, "data.result[%zu]", i);
        if (!json_is_object(e))
            return dp_fail(err, DP_ERR_PARSE, "prometheus response: %s is not an object", where);
        DpStatus st = parse_labels(json_object_get(e, "metric"), s, where, err);
        if (st != DP_OK) return st;
        if (!matrix) {
            s->points = calloc(1, sizeof *s->points);
            if (!s->points) return dp_fail(err, DP_ERR_NOMEM, "prometheus response: out of memory");
            s->n_points = 1;
            snprintf(where, sizeof where, "data.result[%zu].value", i);
            st = parse_point(json_object_get(e, "value"), s->points, where, err);
            if (st != DP_OK) return st;
            continue;
        }
        json_t *vals = json_object_get(e, "values");
        if (!json_is_array(vals))
            return dp_fail(err, DP_ERR_PARSE, "prometheus response: %s: no \"values\" array",
                           where);
        size_t np = json_array_size(vals);
        s->points = calloc(np + 1, sizeof *s->points);
        if (!s->points) return dp_fail(err, DP_ERR_NOMEM, "prometheus response: out of memory");
        for (size_t k = 0; k < np; k++) {
            snprintf(where, sizeof where, "data.result[%zu].values[%zu]", i, k);
            st = parse_point(json_array_get(vals, k), &s->points[k], where, err);
            if (st != DP_OK) return st;
            s->n_points = k + 1;
        }
    }
    return DP_OK;
}

DpStatus promql_parse_response(const char *json, size_t len, PromqlResult *out, DpError *err) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root)
        return dp_fail(err, DP_ERR_PARSE, "prometheus response: line %d column %d: %s", je.line,
                       je.column, je.text);
    DpStatus st;
    const char *status = json_string_value(json_object_get(root, "status"));
    if (!status) {
        st = dp_fail(err, DP_ERR_PARSE, "prometheus response: no \"status\" field");
        goto out;
    }
    json_t *warn = json_object_get(root, "warnings");
    if (json_is_array(warn) && json_array_size(warn) > 0) {
        DpBuf w = DP_BUF_INIT;
        size_t i;
        json_t *x;
        json_array_foreach(warn, i, x) {
            if (json_is_string(x))
                dp_buf_printf(&w, "%s%s", w.len ? "; " : "", json_string_value(x));
        }
        out->warnings = w.data;
    }
    if (!strcmp(status, "error")) {
        const char *et = json_string_value(json_object_get(root, "errorType"));
        const char *em = json_string_value(json_object_get(root, "error"));
        st = dp_fail(err, DP_ERR_STATE, "prometheus error (%s): %s", et ? et : "unknown",
                     em ? em : "(no message)");
        goto out;
    }
    if (strcmp(status, "success") != 0) {
        st = dp_fail(err, DP_ERR_PARSE, "prometheus response: unknown status \"%s\"", status);
        goto out;
    }
    st = parse_data(json_object_get(root, "data"), out, err);
out:
    json_decref(root);
    return st;
}

/* GETs base_url + path + query and parses the answer.  Prometheus answers
 * errors with 4xx/5xx and the same JSON envelope, so the body is parsed
 * whatever the status; a non-JSON error page is reported with its status. */
static DpStatus promql_get(const char *base_url, DpBuf *url, PromqlResult *out, DpError *err) {
    char *body = NULL;
    size_t n = 0;
    int code = 0;
    memset(out, 0, sizeof *out);
    DpStatus st = metrics_http_get(url->data, PROMQL_TIMEOUT_S, &body, &n, &code, err);
    if (st != DP_OK) return st;
    st = promql_parse_response(body, n, out, err);
    if (st == DP_ERR_PARSE && (code < 200 || code > 299))
        st = dp_fail(err, DP_ERR_IO, "prometheus at %s answered HTTP %d: %.200s", base_url, code,
                     body);
    free(body);
    return st;
}

static DpStatus build_url(DpBuf *u, const char *base_url, const char *path, const char *expr) {
    size_t bl = strlen(base_url);
    while (bl > 0 && base_url[bl - 1] == '/') bl--;
    if (dp_buf_append(u, base_url, bl) || dp_buf_printf(u, "%s?query=", path) ||
        metrics_url_encode(u, expr))
        return DP_ERR_NOMEM;
    return DP_OK;
}

DpStatus promql_query(const char *base_url, const char *expr, double t, PromqlResult *out,
                      DpError *err) {
    DpBuf u = DP_BUF_INIT;
    memset(out, 0, sizeof *out);
    if (!base_url || !expr) return dp_fail(err, DP_ERR_INVAL, "promql: NULL url or query");
    DpStatus st = build_url(&u, base_url, "/api/v1/query", expr);
    if (st == DP_OK && t > 0) st = dp_buf_printf(&u, "&time=%.3f", t);
    if (st != DP_OK) st = dp_fail(err, DP_ERR_NOMEM, "promql: out of memory");
    else st = promql_get(base_url, &u, out, err);
    dp_buf_free(&u);
    return st;
}

DpStatus promql_query_range(const char *base_url, const char *expr, double start, double end,
                            double step, PromqlResult *out, DpError *err) {
    DpBuf u = DP_BUF_INIT;
    memset(out, 0, sizeof *out);
    if (!base_url || !expr) return dp_fail(err, DP_ERR_INVAL, "promql: NULL url or query");
    if (!(step > 0) || !(end >= start))
        return dp_fail(err, DP_ERR_INVAL, "promql: need end >= start and step > 0 (got %g..%g step %g)",
                       start, end, step);
    DpStatus st = build_url(&u, base_url, "/api/v1/query_range", expr);
    if (st == DP_OK) st = dp_buf_printf(&u, "&start=%.3f&end=%.3f&step=%.3f", start, end, step);
    if (st != DP_OK) st = dp_fail(err, DP_ERR_NOMEM, "promql: out of memory");
    else st = promql_get(base_url, &u, out, err);
    dp_buf_free(&u);
    return st;
}
