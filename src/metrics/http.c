/*
 * A small HTTP/1.1 GET client over plain sockets, for scraping /metrics and
 * calling Prometheus's HTTP API.  No TLS, no redirects, no keep-alive: one
 * request per connection with "Connection: close".
 *
 * Every step (resolve, connect, send, receive) shares one deadline, so a
 * server that trickles bytes cannot hold the controller past timeout_s.  The
 * socket is non-blocking and waited on with poll().  The body is read
 * according to the response: chunked transfer coding, a Content-Length, or
 * until the server closes.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_MAX_BODY (64u << 20)
#define HTTP_MAX_HEADER (64u << 10)

typedef struct {
    char host[256];
    char port[8];
    char target[4096];   /* path and query, starting with '/' */
} Url;

static DpStatus parse_url(const char *url, Url *u, DpError *err) {
    if (strncmp(url, "http://", 7) != 0)
        return dp_fail(err, DP_ERR_INVAL, "url \"%s\": only http:// is supported", url);
    const char *p = url + 7;
    const char *host_end;
    const char *h0 = p;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (!host_end) return dp_fail(err, DP_ERR_INVAL, "url \"%s\": unclosed '['", url);
        h0 = p + 1;
        p = host_end + 1;
    } else {
        while (*p && *p != ':' && *p != '/' && *p != '?') p++;
        host_end = p;
    }
    size_t hn = (size_t)(host_end - h0);
    if (hn == 0 || hn >= sizeof u->host)
        return dp_fail(err, DP_ERR_INVAL, "url \"%s\": bad host", url);
    memcpy(u->host, h0, hn);
    u->host[hn] = '\0';
    strcpy(u->port, "80");
    if (*p == ':') {
        p++;
        const char *q = p;
        while (*p >= '0' && *p <= '9') p++;
        size_t pn = (size_t)(p - q);
        if (pn == 0 || pn > 5 || atoi(q) > 65535)
            return dp_fail(err, DP_ERR_INVAL, "url \"%s\": bad port", url);
        memcpy(u->port, q, pn);
        u->port[pn] = '\0';
    }
    if (*p && *p != '/' && *p != '?')
        return dp_fail(err, DP_ERR_INVAL, "url \"%s\": unexpected '%c' after host", url, *p);
    int n = snprintf(u->target, sizeof u->target, "%s%s", *p == '/' ? "" : "/", p);
    if (n < 0 || (size_t)n >= sizeof u->target)
        return dp_fail(err, DP_ERR_INVAL, "url \"%.80s...\": too long", url);
    for (const char *c = u->target; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return dp_fail(err, DP_ERR_INVAL, "url \"%s\": unencoded space or control byte",
                           url);
    return DP_OK;
}

/* Milliseconds left until deadline (monotonic seconds), at least 0. */
static int ms_left(double deadline) {
    double left = deadline - dp_time_mono();
    if (left <= 0) return 0;
    return left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
}

static DpStatus wait_fd(int fd, short events, double deadline, const char *what, const char *url,
                        DpError *err) {
    for (;;) {
        int ms = ms_left(deadline);
        if (ms == 0) return dp_fail(err, DP_ERR_IO, "GET %s: timed out while %s", url, what);
        struct pollfd pfd = {fd, events, 0};
        int r = poll(&pfd, 1, ms);
        if (r > 0) return DP_OK;
        if (r < 0 && errno != EINTR)
            return dp_fail(err, DP_ERR_IO, "GET %s: poll: %s", url, strerror(errno));
    }
}

static DpStatus connect_to(const Url *u, const char *url, double deadline, int *out_fd,
                           DpError *err) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(u->host, u->port, &hints, &res);
    if (gai != 0)
        return dp_fail(err, DP_ERR_IO, "GET %s: resolve %s: %s", url, u->host, gai_strerror(gai));
    DpStatus st = dp_fail(err, DP_ERR_IO, "GET %s: no address for %s", url, u->host);
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        a->ai_protocol);
        if (fd < 0) {
            st = dp_fail(err, DP_ERR_IO, "GET %s: socket: %s", url, strerror(errno));
            continue;
        }
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            st = wait_fd(fd, POLLOUT, deadline, "connecting", url, err);
            if (st == DP_OK) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                if (soerr == 0) r = 0;
                else errno = soerr;
            } else {
                close(fd);
                freeaddrinfo(res);
                return st;
            }
        }
        if (r == 0) {
            freeaddrinfo(res);
            *out_fd = fd;
            return DP_OK;
        }
        st = dp_fail(err, DP_ERR_IO, "GET %s: connect to %s port %s: %s", url, u->host, u->port,
                     strerror(errno));
        close(fd);
    }
    freeaddrinfo(res);
    return st;
}

static DpStatus send_all(int fd, const char *data, size_t n, double deadline, const char *url,
                         DpError *err) {
    while (n > 0) {
        ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
        if (w > 0) {
            data += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return dp_fail(err, DP_ERR_IO, "GET %s: send: %s", url, strerror(errno));
        DpStatus st = wait_fd(fd, POLLOUT, deadline, "sending", url, err);
        if (st != DP_OK) return st;
    }
    return DP_OK;
}

/* Reads everything until the server closes (all responses here are
 * Connection: close), bounded by size and deadline. */
static DpStatus recv_all(int fd, DpBuf *b, double deadline, const char *url, DpError *err) {
    char chunk[16384];
    for (;;) {
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r > 0) {
            if (b->len + (size_t)r > HTTP_MAX_BODY + HTTP_MAX_HEADER)
                return dp_fail(err, DP_ERR_IO, "GET %s: response over %u bytes", url,
                               HTTP_MAX_BODY + HTTP_MAX_HEADER);
            if (dp_buf_append(b, chunk, (size_t)r) != DP_OK)
                return dp_fail(err, DP_ERR_NOMEM, "GET %s: out of memory", url);
            continue;
        }
        if (r == 0) return DP_OK;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return dp_fail(err, DP_ERR_IO, "GET %s: recv: %s", url, strerror(errno));
        DpStatus st = wait_fd(fd, POLLIN, deadline, "receiving", url, err);
        if (st != DP_OK) return st;
    }
}

/* Finds header name (case-insensitive) in the header block [h, end); copies
 * its value into out.  Returns 1 if found. */
static int header_value(const char *h, const char *end, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    for (const char *line = h; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) eol = end;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            size_t n = (size_t)(ve - v);
            if (n >= cap) n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        line = eol + 1;
    }
    return 0;
}

/* Decodes a chunked body in place into out. */
static DpStatus dechunk(const char *p, const char *end, DpBuf *out, const char *url,
                        DpError *err) {
    for (;;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) return dp_fail(err, DP_ERR_PARSE, "GET %s: truncated chunked body", url);
        char *e;
        unsigned long long n = strtoull(p, &e, 16);
        if (e == p || (*e != '\r' && *e != ';' && *e != '\n' && *e != ' '))
            return dp_fail(err, DP_ERR_PARSE, "GET %s: bad chunk size line", url);
        p = eol + 1;
        if (n == 0) return DP_OK; /* trailers, if any, are ignored */
        if (n > HTTP_MAX_BODY || out->len + n > HTTP_MAX_BODY)
            return dp_fail(err, DP_ERR_IO, "GET %s: body over %u bytes", url, HTTP_MAX_BODY);
        if ((size_t)(end - p) < n)
            return dp_fail(err, DP_ERR_PARSE, "GET %s: truncated chunk", url);
        if (dp_buf_append(out, p, (size_t)n) != DP_OK)
            return dp_fail(err, DP_ERR_NOMEM, "GET %s: out of memory", url);
        p += n;
        if (p < end && *p == '\r') p++;
        if (p < end && *p == '\n') p++;
        else return dp_fail(err, DP_ERR_PARSE, "GET %s: chunk not followed by CRLF", url);
    }
}

DpStatus metrics_http_request(const char *method, const char *url, const char *extra_headers,
                              const void *req_body, size_t req_len, double timeout_s,
                              char **body, size_t *body_len, int *status, DpError *err) {
    Url u;
    int fd = -1;
    DpBuf raw = DP_BUF_INIT, req = DP_BUF_INIT, out = DP_BUF_INIT;
    DpStatus st;
    *body = NULL;
    if (body_len) *body_len = 0;
    *status = 0;
    if (!url) return dp_fail(err, DP_ERR_INVAL, "GET: url is NULL");
    if (!(timeout_s > 0)) return dp_fail(err, DP_ERR_INVAL, "GET %s: timeout must be > 0", url);
    double deadline = dp_time_mono() + timeout_s;
    if ((st = parse_url(url, &u, err)) != DP_OK) goto out;
    int v6 = strchr(u.host, ':') != NULL;
    if (dp_buf_printf(&req,
                      "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: driftpilot\r\n"
                      "Accept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n",
                      method, u.target, v6 ? "[" : "", u.host, v6 ? "]" : "", u.port) != DP_OK ||
        (extra_headers && dp_buf_printf(&req, "%s", extra_headers) != DP_OK) ||
        (req_body && dp_buf_printf(&req, "Content-Length: %zu\r\n", req_len) != DP_OK) ||
        dp_buf_append(&req, "\r\n", 2) != DP_OK ||
        (req_body && req_len && dp_buf_append(&req, req_body, req_len) != DP_OK)) {
        st = dp_fail(err, DP_ERR_NOMEM, "GET %s: out of memory", url);
        goto out;
    }
    if ((st = connect_to(&u, url, deadline, &fd, err)) != DP_OK) goto out;
    if ((st = send_all(fd, req.data, req.len, deadline, url, err)) != DP_OK) goto out;
    if ((st = recv_all(fd, &raw, deadline, url, err)) != DP_OK) goto out;

    if (!raw.data || raw.len < 12 || strncmp(raw.data, "HTTP/1.", 7) != 0) {
        st = dp_fail(err, DP_ERR_PARSE, "GET %s: not an HTTP response (%zu bytes)", url, raw.len);
        goto out;
    }
    const char *hend = strstr(raw.data, "\r\n\r\n");
    size_t sep = 4;
    if (!hend) {
        hend = strstr(raw.data, "\n\n");
        sep = 2;
    }
    if (!hend) {
        st = dp_fail(err, DP_ERR_PARSE, "GET %s: response headers not terminated", url);
        goto out;
    }
    int code = atoi(raw.data + 9);
    if (code < 100 || code > 999) {
        st = dp_fail(err, DP_ERR_PARSE, "GET %s: bad status line", url);
        goto out;
    }
    const char *b0 = hend + sep, *bend = raw.data + raw.len;
    char val[128];
    if (header_value(raw.data, hend, "Transfer-Encoding", val, sizeof val) &&
        strcasestr(val, "chunked")) {
        if ((st = dechunk(b0, bend, &out, url, err)) != DP_OK) goto out;
    } else if (header_value(raw.data, hend, "Content-Length", val, sizeof val)) {
        char *e;
        unsigned long long n = strtoull(val, &e, 10);
        if (e == val || *e) {
            st = dp_fail(err, DP_ERR_PARSE, "GET %s: bad Content-Length \"%s\"", url, val);
            goto out;
        }
        if ((size_t)(bend - b0) < n) {
            st = dp_fail(err, DP_ERR_IO, "GET %s: body truncated (%zu of %llu bytes)", url,
                         (size_t)(bend - b0), n);
            goto out;
        }
        if (dp_buf_append(&out, b0, (size_t)n) != DP_OK) {
            st = dp_fail(err, DP_ERR_NOMEM, "GET %s: out of memory", url);
            goto out;
        }
    } else if (dp_buf_append(&out, b0, (size_t)(bend - b0)) != DP_OK) {
        st = dp_fail(err, DP_ERR_NOMEM, "GET %s: out of memory", url);
        goto out;
    }
    if (!out.data && dp_buf_append(&out, "", 0) != DP_OK) {
        st = dp_fail(err, DP_ERR_NOMEM, "GET %s: out of memory", url);
        goto out;
    }
    *status = code;
    if (body_len) *body_len = out.len;
    *body = out.data;
    out.data = NULL;
    st = DP_OK;
out:
    if (fd >= 0) close(fd);
    dp_buf_free(&raw);
    dp_buf_free(&req);
    dp_buf_free(&out);
    return st;
}

DpStatus metrics_url_encode(DpBuf *out, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[3];
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            if (dp_buf_append(out, p, 1) != DP_OK) return DP_ERR_NOMEM;
            continue;
        }
        tmp[0] = '%';
        tmp[1] = hex[*p >> 4];
        tmp[2] = hex[*p & 15];
        if (dp_buf_append(out, tmp, 3) != DP_OK) return DP_ERR_NOMEM;
    }
    return DP_OK;
}

DpStatus metrics_http_get(const char *url, double timeout_s, char **body, size_t *body_len,
                          int *status, DpError *err) {
    return metrics_http_request("GET", url, NULL, NULL, 0, timeout_s, body, body_len, status, err);
}

DpStatus metrics_http_post_json(const char *url, const char *json, double timeout_s, char **body,
                                size_t *body_len, int *status, DpError *err) {
    return metrics_http_request("POST", url, "Content-Type: application/json\r\n", json,
                                json ? strlen(json) : 0, timeout_s, body, body_len, status, err);
}
