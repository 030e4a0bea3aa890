/* safetensors: parsing and writing the Hugging Face tensor file format.
 *
 * Layout: u64 little-endian N, then N bytes of JSON header, then the data.
 * The header maps tensor names to {"dtype", "shape", "data_offsets": [b, e]}
 * with offsets relative to the start of the data.  Everything from the file
 * is untrusted: the header length is bounded, every number is range checked
 * before it is used in arithmetic, ranges must lie inside the data, must not
 * overlap, and must equal numel * dtype size.  The parser works on a memory
 * buffer (safetensors_parse) so the fuzz harness drives exactly the code that
 * loading uses. */
#include "nn.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    SafetensorsDtype dtype;
    size_t size;
} dtypes[] = {
    {"F32", SAFETENSORS_F32, 4}, {"F16", SAFETENSORS_F16, 2}, {"BF16", SAFETENSORS_BF16, 2},
    {"F64", SAFETENSORS_F64, 8}, {"I32", SAFETENSORS_I32, 4}, {"I64", SAFETENSORS_I64, 8},
    {"I16", SAFETENSORS_I16, 2}, {"I8", SAFETENSORS_I8, 1},   {"U8", SAFETENSORS_U8, 1},
    {"BOOL", SAFETENSORS_BOOL, 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *safetensors_dtype_name(SafetensorsDtype d) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return dtypes[i].name;
    return "?";
}

static size_t dtype_size(SafetensorsDtype d) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return dtypes[i].size;
    return 0;
}

void safetensors_free(Safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    free(st->source);
    if (st->map) {
        if (st->map_is_mmap)
            munmap(st->map, st->map_len);
        else
            free(st->map);
    }
    memset(st, 0, sizeof *st);
}

typedef struct {
    size_t begin, end;
    int idx;
} Range;

static int cmp_range(const void *a, const void *b) {
    const Range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* A JSON integer that is a valid non-negative size. */
static int json_size(const json_t *v, size_t *out) {
    if (!json_is_integer(v)) return 0;
    json_int_t x = json_integer_value(v);
    if (x < 0) return 0;
    if ((unsigned long long)x > (unsigned long long)SIZE_MAX) return 0;
    *out = (size_t)x;
    return 1;
}

DpStatus safetensors_parse(const void *buf, size_t len, const char *source, Safetensors *st,
                           DpError *err) {
    memset(st, 0, sizeof *st);
    const unsigned char *bytes = buf;
    const char *src = source ? source : "(memory)";
    DpStatus s = DP_OK;
    json_t *root = NULL;
    Range *ranges = NULL;
    st->source = dp_strdup(src);
    if (!st->source) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", src);
    if (len < 8) {
        s = dp_fail(err, DP_ERR_PARSE, "%s: truncated: %zu bytes, the 8-byte header length is missing",
                    src, len);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | bytes[i];
    if (hlen > SAFETENSORS_MAX_HEADER) {
        s = dp_fail(err, DP_ERR_PARSE, "%s: header length %llu is larger than the %u-byte limit",
                    src, (unsigned long long)hlen, SAFETENSORS_MAX_HEADER);
        goto fail;
    }
    if (hlen > len - 8) {
        s = dp_fail(err, DP_ERR_PARSE,
                    "%s: truncated: header length %llu but only %zu bytes follow it", src,
                    (unsigned long long)hlen, len - 8);
        goto fail;
    }
    const unsigned char *data = bytes + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    json_error_t jerr;
    root = json_loadb((const char *)bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        s = dp_fail(err, DP_ERR_PARSE, "%s: header JSON, line %d column %d: %s", src, jerr.line,
                    jerr.column, jerr.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        s = dp_fail(err, DP_ERR_PARSE, "%s: header is not a JSON object", src);
        goto fail;
    }
    size_t n_entries = json_object_size(root);
    st->tensors = dp_calloc(n_entries ? n_entries : 1, sizeof *st->tensors);
    ranges = dp_calloc(n_entries ? n_entries : 1, sizeof *ranges);
    if (!st->tensors || !ranges) {
        s = dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", src);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) {
                s = dp_fail(err, DP_ERR_PARSE, "%s: __metadata__ is not an object", src);
                goto fail;
            }
            continue;
        }
        if (!json_is_object(val)) {
            s = dp_fail(err, DP_ERR_PARSE, "%s: tensor '%s': entry is not an object", src, key);
            goto fail;
        }
        SafetensorsTensor *t = &st->tensors[st->n_tensors];
        const json_t *jd = json_object_get(val, "dtype");
        const json_t *js = json_object_get(val, "shape");
        const json_t *jo = json_object_get(val, "data_offsets");
        if (!json_is_string(jd)) {
            s = dp_fail(err, DP_ERR_PARSE, "%s: tensor '%s': field dtype missing or not a string",
                        src, key);
            goto fail;
        }
        int found = 0;
        for (int i = 0; i < N_DTYPES; i++)
            if (!strcmp(json_string_value(jd), dtypes[i].name)) {
                t->dtype = dtypes[i].dtype;
                found = 1;
            }
        if (!found) {
            s = dp_fail(err, DP_ERR_PARSE, "%s: tensor '%s': unknown dtype '%s'", src, key,
                        json_string_value(jd));
            goto fail;
        }
        if (!json_is_array(js) || json_array_size(js) > SAFETENSORS_MAX_DIMS) {
            s = dp_fail(err, DP_ERR_PARSE,
                        "%s: tensor '%s': field shape missing, not an array or over %d dims", src,
                        key, SAFETENSORS_MAX_DIMS);
            goto fail;
        }
        t->ndim = (int)json_array_size(js);
        size_t numel = 1;
        int overflow = 0;
        for (int d = 0; d < t->ndim; d++) {
            size_t dim;
            if (!json_size(json_array_get(js, (size_t)d), &dim) || dim > (size_t)INT64_MAX) {
                s = dp_fail(err, DP_ERR_PARSE, "%s: tensor '%s': shape[%d] is not a size", src,
                            key, d);
                goto fail;
            }
            t->shape[d] = (int64_t)dim;
            if (dim && numel > SIZE_MAX / dim) overflow = 1;
            numel *= dim;
        }
        size_t esize = dtype_size(t->dtype);
        if (overflow || (esize && numel > SIZE_MAX / esize)) {
            s = dp_fail(err, DP_ERR_PARSE, "%s: tensor '%s': shape is too large", src, key);
            goto fail;
        }
        size_t b, e;
        if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_size(json_array_get(jo, 0), &b) ||
            !json_size(json_array_get(jo, 1), &e)) {
            s = dp_fail(err, DP_ERR_PARSE,
                        "%s: tensor '%s': field data_offsets must be [begin, end] sizes", src, key);
            goto fail;
        }
        if (b > e || e > data_len) {
            s = dp_fail(err, DP_ERR_PARSE,
                        "%s: tensor '%s': data_offsets [%zu, %zu] out of range (data is %zu bytes%s)",
                        src, key, b, e, data_len, e > data_len ? ", file truncated?" : "");
            goto fail;
        }
        if (e - b != numel * esize) {
            s = dp_fail(err, DP_ERR_PARSE,
                        "%s: tensor '%s': data_offsets span %zu bytes but shape x %s needs %zu",
                        src, key, e - b, json_string_value(jd), numel * esize);
            goto fail;
        }
        t->name = dp_strdup(key);
        if (!t->name) {
            s = dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", src);
            goto fail;
        }
        t->numel = numel;
        t->data = data + b;
        t->nbytes = e - b;
        ranges[st->n_tensors] = (Range){b, e, st->n_tensors};
        st->n_tensors++;
    }
    qsort(ranges, (size_t)st->n_tensors, sizeof *ranges, cmp_range);
    /* Sorted by begin: a non-empty range overlaps an earlier one exactly when
     * it starts before the furthest end seen so far. */
    size_t max_end = 0;
    int max_idx = -1;
    for (int i = 0; i < st->n_tensors; i++) {
        const Range *q = &ranges[i];
        if (q->end == q->begin) continue;
        if (max_idx >= 0 && q->begin < max_end) {
            s = dp_fail(err, DP_ERR_PARSE, "%s: tensors '%s' and '%s' overlap", src,
                        st->tensors[max_idx].name, st->tensors[q->idx].name);
            goto fail;
        }
        if (q->end > max_end) {
            max_end = q->end;
            max_idx = q->idx;
        }
    }
    free(ranges);
    json_decref(root);
    return DP_OK;
fail:
    free(ranges);
    json_decref(root);
    safetensors_free(st);
    return s;
}

DpStatus safetensors_open(const char *path, Safetensors *st, DpError *err) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dp_fail(err, DP_ERR_IO, "open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return dp_fail(err, DP_ERR_IO, "stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return dp_fail(err, DP_ERR_IO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    void *map = NULL;
    int is_mmap = 0;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return dp_fail(err, DP_ERR_IO, "mmap %s: %s", path, strerror(e));
        }
        is_mmap = 1;
    }
    close(fd);
    DpStatus s = safetensors_parse(map ? map : "", len, path, st, err);
    if (s != DP_OK) {
        if (map) munmap(map, len);
        return s;
    }
    st->map = map;
    st->map_len = len;
    st->map_is_mmap = is_mmap;
    return DP_OK;
}

const SafetensorsTensor *safetensors_find(const Safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Little-endian loads; safetensors is little-endian on disk. */
static uint64_t load_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

DpStatus safetensors_to_f32(const Safetensors *st, const SafetensorsTensor *t, float *out,
                            size_t n, DpError *err) {
    if (t->numel != n)
        return dp_fail(err, DP_ERR_INVAL, "%s: tensor '%s': has %zu values, expected %zu",
                       st->source, t->name, t->numel, n);
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case SAFETENSORS_F32:
        memcpy(out, p, n * 4);
        break;
    case SAFETENSORS_F16:
        for (size_t i = 0; i < n; i++) out[i] = half_to_float((uint16_t)load_le(p + 2 * i, 2));
        break;
    case SAFETENSORS_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)load_le(p + 2 * i, 2) << 16;
            memcpy(&out[i], &bits, 4);
        }
        break;
    case SAFETENSORS_F64:
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = load_le(p + 8 * i, 8);
            double d;
            memcpy(&d, &bits, 8);
            out[i] = (float)d;
        }
        break;
    default: {
        int *tmp = dp_malloc(n * sizeof(int) + 1);
        if (!tmp) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", st->source);
        DpStatus s = safetensors_to_i32(st, t, tmp, n, err);
        if (s == DP_OK)
            for (size_t i = 0; i < n; i++) out[i] = (float)tmp[i];
        free(tmp);
        return s;
    }
    }
    return DP_OK;
}

DpStatus safetensors_to_i32(const Safetensors *st, const SafetensorsTensor *t, int *out,
                            size_t n, DpError *err) {
    if (t->numel != n)
        return dp_fail(err, DP_ERR_INVAL, "%s: tensor '%s': has %zu values, expected %zu",
                       st->source, t->name, t->numel, n);
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        switch (t->dtype) {
        case SAFETENSORS_I32: v = (int32_t)(uint32_t)load_le(p + 4 * i, 4); break;
        case SAFETENSORS_I64: v = (int64_t)load_le(p + 8 * i, 8); break;
        case SAFETENSORS_I16: v = (int16_t)(uint16_t)load_le(p + 2 * i, 2); break;
        case SAFETENSORS_I8: v = (int8_t)p[i]; break;
        case SAFETENSORS_U8:
        case SAFETENSORS_BOOL: v = p[i]; break;
        default:
            return dp_fail(err, DP_ERR_INVAL, "%s: tensor '%s': dtype %s is not an integer type",
                           st->source, t->name, safetensors_dtype_name(t->dtype));
        }
        if (v < INT32_MIN || v > INT32_MAX)
            return dp_fail(err, DP_ERR_INVAL, "%s: tensor '%s': value %lld out of int range",
                           st->source, t->name, (long long)v);
        out[i] = (int)v;
    }
    return DP_OK;
}

static DpStatus write_all(int fd, const void *data, size_t len, const char *path, DpError *err) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return dp_fail(err, DP_ERR_IO, "write %s: %s", path, strerror(errno));
        }
        p += w;
        len -= (size_t)w;
    }
    return DP_OK;
}

DpStatus safetensors_write_f32(const char *path, const SafetensorsWriteItem *items, int n,
                               DpError *err) {
    DpStatus s = DP_OK;
    json_t *hdr = json_object();
    char *text = NULL;
    int fd = -1;
    char tmp[4096];
    if (!hdr) return dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", path);
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(hdr, "__metadata__", meta);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        size_t numel = 1;
        for (int d = 0; d < items[i].ndim; d++) {
            json_array_append_new(shape, json_integer(items[i].shape[d]));
            numel *= (size_t)items[i].shape[d];
        }
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + 4 * numel)));
        json_object_set_new(e, "dtype", json_string("F32"));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        json_object_set_new(hdr, items[i].name, e);
        off += 4 * numel;
    }
    text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        s = dp_fail(err, DP_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(((uint64_t)padded >> (8 * i)) & 0xff);
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        s = dp_fail(err, DP_ERR_INVAL, "path too long: %s", path);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        s = dp_fail(err, DP_ERR_IO, "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if ((s = write_all(fd, lenb, 8, tmp, err)) || (s = write_all(fd, text, tl, tmp, err)) ||
        (s = write_all(fd, "        ", padded - tl, tmp, err)))
        goto out;
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < items[i].ndim; d++) numel *= (size_t)items[i].shape[d];
        /* float32 is little-endian on every machine we build for */
        if ((s = write_all(fd, items[i].data, 4 * numel, tmp, err))) goto out;
    }
    if (fsync(fd) != 0) {
        s = dp_fail(err, DP_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        s = dp_fail(err, DP_ERR_IO, "close %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        s = dp_fail(err, DP_ERR_IO, "rename %s -> %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    s = dp_fsync_dir_of(path, err);
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    } else if (s != DP_OK) {
        unlink(tmp);
    }
    free(text);
    json_decref(hdr);
    return s;
}
