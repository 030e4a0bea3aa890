/* Whole-file reads, crash-safe writes (write, fsync, rename, fsync dir), and
 * path helpers. */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

DpStatus dp_read_file(const char *path, char **out, size_t *len, DpError *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return dp_fail(err, DP_ERR_IO, "open %s: %s", path, strerror(errno));
    DpStatus st = DP_OK;
    char *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            size_t ncap = cap ? cap * 2 : 65536 * 2;
            char *d = realloc(data, ncap + 1);
            if (!d) {
                st = dp_fail(err, DP_ERR_NOMEM, "read %s: out of memory", path);
                goto out;
            }
            data = d;
            cap = ncap;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) st = dp_fail(err, DP_ERR_IO, "read %s: %s", path, strerror(errno));
            break;
        }
    }
out:
    fclose(f);
    if (st != DP_OK) {
        free(data);
        return st;
    }
    data[n] = '\0';
    *out = data;
    if (len) *len = n;
    return DP_OK;
}

DpStatus dp_fsync_dir_of(const char *path, DpError *err) {
    char *copy = dp_strdup(path);
    if (!copy) return dp_fail(err, DP_ERR_NOMEM, "out of memory");
    const char *dir = dirname(copy);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        DpStatus s = dp_fail(err, DP_ERR_IO, "open dir %s: %s", dir, strerror(errno));
        free(copy);
        return s;
    }
    fsync(fd); /* some filesystems refuse fsync on directories; that is not fatal */
    close(fd);
    free(copy);
    return DP_OK;
}

DpStatus dp_write_file_atomic(const char *path, const void *data, size_t len, DpError *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return dp_fail(err, DP_ERR_INVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return dp_fail(err, DP_ERR_IO, "create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return dp_fail(err, DP_ERR_IO, "write %s: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return dp_fail(err, DP_ERR_IO, "fsync %s: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return dp_fail(err, DP_ERR_IO, "rename %s -> %s: %s", tmp, path, strerror(e));
    }
    return dp_fsync_dir_of(path, err);
}

DpStatus dp_mkdirs(const char *path, DpError *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return dp_fail(err, DP_ERR_INVAL, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return dp_fail(err, DP_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return dp_fail(err, DP_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
    return DP_OK;
}

int dp_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

DpStatus dp_path_join(char *out, size_t cap, const char *a, const char *b, DpError *err) {
    size_t la = strlen(a);
    int slash = la > 0 && a[la - 1] != '/';
    int n = snprintf(out, cap, "%s%s%s", a, slash ? "/" : "", b);
    if (n < 0 || (size_t)n >= cap) return dp_fail(err, DP_ERR_INVAL, "path too long: %s/%s", a, b);
    return DP_OK;
}
