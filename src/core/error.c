/* Status codes, error messages and the always-on assertion. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

const char *dp_status_str(DpStatus s) {
    switch (s) {
    case DP_OK: return "ok";
    case DP_ERR_NOMEM: return "out of memory";
    case DP_ERR_IO: return "io error";
    case DP_ERR_PARSE: return "parse error";
    case DP_ERR_INVAL: return "invalid argument";
    case DP_ERR_STATE: return "invalid state";
    case DP_ERR_CHECK: return "check failed";
    }
    return "unknown error";
}

DpStatus dp_fail(DpError *err, DpStatus status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

DpStatus dp_error_wrap(DpError *err, const char *fmt, ...) {
    if (!err) return DP_ERR_STATE;
    char prefix[DP_ERROR_MSG_MAX];
    char old[DP_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    /* Truncation is acceptable: the message is for people, and stays a C string. */
    size_t lp = strnlen(prefix, sizeof err->msg - 3);
    memcpy(err->msg, prefix, lp);
    memcpy(err->msg + lp, ": ", 2);
    size_t room = sizeof err->msg - lp - 3;
    size_t lo = strnlen(old, room);
    memcpy(err->msg + lp + 2, old, lo);
    err->msg[lp + 2 + lo] = '\0';
    if (err->status == DP_OK) err->status = DP_ERR_STATE;
    return err->status;
}

void dp_assert_fail_(const char *file, int line, const char *expr) {
    fprintf(stderr, "driftpilot: assertion failed at %s:%d: %s\n", file, line, expr);
    abort();
}
