/*
 * core: the ground every other part of driftpilot stands on.
 *
 * Errors: a function that can fail returns a DpStatus (DP_OK is 0) and, on
 * failure, fills a caller-owned DpError with a message that names the
 * problem (file, line, field).  Report where the context is richest:
 *
 *     FILE *f = fopen(path, "rb");
 *     if (!f) return dp_fail(err, DP_ERR_IO, "open %s: %s", path, strerror(errno));
 *
 * RNG: DpRng is a small, seedable generator (xoshiro256**) owned by whoever
 * draws from it; nothing in driftpilot uses rand().
 *
 * Clock: dp_clock_now() is wall time; a DpClock maps wall time to scenario
 * time at a scale (60x: an hour of scenario in a minute).
 *
 * Progress: DpProgress prints a bar with rate and ETA on stderr (only when
 * stderr is a terminal, otherwise a line every few seconds).
 *
 * Files: dp_write_file_atomic() writes, fsyncs and renames, so a crash leaves
 * the old file or the complete new one.
 *
 * Thread safety: everything here is reentrant; a DpRng or DpProgress must not
 * be shared between threads without a lock.  Nothing in src/ except cli/ calls
 * exit().
 */
#ifndef DRIFTPILOT_CORE_H
#define DRIFTPILOT_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// ---- status and errors ----

typedef enum {
    DP_OK = 0,
    DP_ERR_NOMEM = -1,  /* an allocation failed */
    DP_ERR_IO = -2,     /* open/read/write/rename failed */
    DP_ERR_PARSE = -3,  /* malformed input: JSON, safetensors, config */
    DP_ERR_INVAL = -4,  /* a value is out of range or unsupported */
    DP_ERR_STATE = -5,  /* the call is not valid in the current state */
    DP_ERR_CHECK = -6,  /* a checksum or verification failed */
} DpStatus;

#define DP_ERROR_MSG_MAX 1024

typedef struct {
    DpStatus status;
    char msg[DP_ERROR_MSG_MAX];
} DpError;

/* Name of a status code, e.g. "io error".  Never NULL. */
const char *dp_status_str(DpStatus s);

/* Formats a message into err (when err is not NULL) and returns status, so
 * failure paths read `return dp_fail(err, DP_ERR_IO, "...", ...)`. */
DpStatus dp_fail(DpError *err, DpStatus status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with more context ("loading model: ...").
 * Returns err->status. */
DpStatus dp_error_wrap(DpError *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Always-on assertion for programmer errors only, never for input checks. */
#define DP_ASSERT(x)                                                         \
    do {                                                                     \
        if (!(x)) dp_assert_fail_(__FILE__, __LINE__, #x);                   \
    } while (0)
void dp_assert_fail_(const char *file, int line, const char *expr)
    __attribute__((noreturn));

// ---- logging (stderr) ----

typedef enum { DP_LOG_DEBUG = 0, DP_LOG_INFO = 1, DP_LOG_WARN = 2, DP_LOG_ERROR = 3 } DpLogLevel;

/* Sets the minimum level printed (default INFO; DRIFTPILOT_LOG=debug|info|warn|error). */
void dp_log_set_level(DpLogLevel level);
DpLogLevel dp_log_get_level(void);
void dp_log(DpLogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define dp_debug(...) dp_log(DP_LOG_DEBUG, __VA_ARGS__)
#define dp_info(...) dp_log(DP_LOG_INFO, __VA_ARGS__)
#define dp_warn(...) dp_log(DP_LOG_WARN, __VA_ARGS__)
#define dp_error(...) dp_log(DP_LOG_ERROR, __VA_ARGS__)

// ---- allocation ----

/* malloc/calloc that never return NULL for n == 0 and report overflow of
 * count*size as failure (NULL). */
void *dp_malloc(size_t n);
void *dp_calloc(size_t count, size_t size);
void *dp_realloc_array(void *p, size_t count, size_t size);
char *dp_strdup(const char *s);
/* 64-byte aligned allocation for tensors; free with dp_aligned_free. */
void *dp_aligned_alloc(size_t n);
void dp_aligned_free(void *p);

/* A bump allocator for per-request or per-step scratch.  dp_arena_init with
 * buf == NULL allocates (and owns) size bytes. */
typedef struct {
    unsigned char *base;
    size_t size;
    size_t used;
    int owned;
} DpArena;
DpStatus dp_arena_init(DpArena *a, size_t size, void *buf, DpError *err);
void *dp_arena_alloc(DpArena *a, size_t n); /* 64-byte aligned; NULL when full */
void dp_arena_reset(DpArena *a);
void dp_arena_free(DpArena *a);

/* A growable byte buffer (kilo's abuf).  Zero-initialise with DP_BUF_INIT. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} DpBuf;
#define DP_BUF_INIT {NULL, 0, 0}
DpStatus dp_buf_append(DpBuf *b, const void *data, size_t n);
DpStatus dp_buf_printf(DpBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dp_buf_free(DpBuf *b);

// ---- random numbers ----

typedef struct {
    uint64_t s[4];
} DpRng;

/* Seeds via splitmix64, so nearby seeds give unrelated streams. */
void dp_rng_seed(DpRng *r, uint64_t seed);
/* An independent stream derived from (seed, stream), e.g. one per env. */
void dp_rng_seed_stream(DpRng *r, uint64_t seed, uint64_t stream);
uint64_t dp_rng_u64(DpRng *r);
double dp_rng_uniform(DpRng *r);              /* [0, 1) */
float dp_rng_uniformf(DpRng *r);              /* [0, 1) */
uint64_t dp_rng_below(DpRng *r, uint64_t n);  /* [0, n), unbiased; n > 0 */
double dp_rng_normal(DpRng *r);               /* N(0, 1) */
double dp_rng_exponential(DpRng *r, double rate);
uint64_t dp_rng_poisson(DpRng *r, double mean);
/* Fisher-Yates shuffle of n ints. */
void dp_rng_shuffle_int(DpRng *r, int *a, size_t n);
/* splitmix64 step, exposed for hashing seeds together. */
uint64_t dp_hash_u64(uint64_t x);

// ---- time ----

/* Wall-clock seconds (CLOCK_REALTIME) and monotonic seconds. */
double dp_time_wall(void);
double dp_time_mono(void);
void dp_sleep(double seconds);

/* Scenario clock: scenario seconds = start + (mono - mono0) * scale. */
typedef struct {
    double scale;       /* scenario seconds per wall second (1 = real time) */
    double start;       /* scenario time at mono0 */
    double mono0;
} DpClock;
void dp_clock_init(DpClock *c, double scale, double start);
double dp_clock_now(const DpClock *c);
/* Sleeps until the scenario time reaches t (returns at once if past). */
void dp_clock_sleep_until(const DpClock *c, double t);

/* Parses a duration such as "90", "90s", "15m", "2h", "1.5h", "1d" into
 * seconds.  Returns DP_ERR_PARSE naming the text on failure. */
DpStatus dp_parse_duration(const char *text, double *out, DpError *err);

// ---- progress ----

typedef struct {
    char label[64];
    double total;       /* units of work expected (0: unknown) */
    double done;
    double t0;
    double last_print;
    int tty;
    int finished;
    char unit[16];
    char extra[160];    /* caller text shown after the bar, e.g. "loss 2.31" */
} DpProgress;

void dp_progress_init(DpProgress *p, const char *label, double total, const char *unit);
/* Updates done (absolute), prints at most ~10 times a second on a tty and
 * every 5 s otherwise. extra may be NULL. */
void dp_progress_update(DpProgress *p, double done, const char *extra);
void dp_progress_finish(DpProgress *p, const char *extra);

// ---- files ----

/* Reads a whole file; *out is NUL-terminated and owned by the caller. */
DpStatus dp_read_file(const char *path, char **out, size_t *len, DpError *err);
/* Writes data to path atomically: path.tmp.<pid>, fsync, rename, fsync dir. */
DpStatus dp_write_file_atomic(const char *path, const void *data, size_t len, DpError *err);
/* mkdir -p. */
DpStatus dp_mkdirs(const char *path, DpError *err);
int dp_file_exists(const char *path);
/* fsync the directory that holds path (after a rename). */
DpStatus dp_fsync_dir_of(const char *path, DpError *err);
/* Joins a and b with one '/', into out[cap]; DP_ERR_INVAL when it would not fit. */
DpStatus dp_path_join(char *out, size_t cap, const char *a, const char *b, DpError *err);

/* SHA-256 of a buffer, as 64 lowercase hex chars plus NUL. */
void dp_sha256_hex(const void *data, size_t len, char out[65]);
DpStatus dp_sha256_file(const char *path, char out[65], DpError *err);

// ---- text ----

/* Writes the UTF-8 encoding of code point cp (<= 0x10FFFF) into out and
 * returns its length (1-4). */
int dp_utf8_encode(uint32_t cp, char out[4]);

// ---- small numeric helpers ----

double dp_mean(const double *x, size_t n);
double dp_std(const double *x, size_t n); /* sample std (n-1); 0 when n < 2 */
/* Quantile q in [0,1] by linear interpolation; sorts a copy. */
double dp_quantile(const double *x, size_t n, double q);

#endif
