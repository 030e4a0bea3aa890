/* Allocation helpers, the bump arena and the growable buffer. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

void *dp_malloc(size_t n) { return malloc(n ? n : 1); }

void *dp_calloc(size_t count, size_t size) {
    if (count == 0 || size == 0) return calloc(1, 1);
    return calloc(count, size);
}

void *dp_realloc_array(void *p, size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    size_t n = count * size;
    return realloc(p, n ? n : 1);
}

char *dp_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void *dp_aligned_alloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    return p;
}

void dp_aligned_free(void *p) { free(p); }

DpStatus dp_arena_init(DpArena *a, size_t size, void *buf, DpError *err) {
    memset(a, 0, sizeof *a);
    if (buf) {
        a->base = buf;
    } else {
        a->base = dp_aligned_alloc(size);
        if (!a->base) return dp_fail(err, DP_ERR_NOMEM, "arena: cannot allocate %zu bytes", size);
        a->owned = 1;
    }
    a->size = size;
    return DP_OK;
}

void *dp_arena_alloc(DpArena *a, size_t n) {
    uintptr_t start = (uintptr_t)(a->base + a->used);
    size_t pad = (size_t)((64 - (start & 63)) & 63);
    if (a->used + pad + n > a->size) return NULL;
    void *p = a->base + a->used + pad;
    a->used += pad + n;
    return p;
}

void dp_arena_reset(DpArena *a) { a->used = 0; }

void dp_arena_free(DpArena *a) {
    if (!a) return;
    if (a->owned) dp_aligned_free(a->base);
    memset(a, 0, sizeof *a);
}

DpStatus dp_buf_append(DpBuf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return DP_ERR_NOMEM;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return DP_OK;
}

DpStatus dp_buf_printf(DpBuf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return DP_ERR_INVAL;
    if ((size_t)n < sizeof small) return dp_buf_append(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return DP_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    DpStatus s = dp_buf_append(b, big, (size_t)n);
    free(big);
    return s;
}

void dp_buf_free(DpBuf *b) {
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
