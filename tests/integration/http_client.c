/* The HTTP/1.1 client of the http scenarios (see http_client.h). */
#include "harness.h"
#include "http_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

char hwhy[512];

/* Reads more into c->buf.  1 = got bytes, 0 = EOF, -1 = error/timeout. */
static int hfill(struct hconn *c, int64_t deadline)
{
    for (;;) {
        if (c->len == sizeof c->buf) {
            snprintf(hwhy, sizeof hwhy, "response larger than %zu bytes",
                     sizeof c->buf);
            return -1;
        }
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len,
                         MSG_DONTWAIT);
        if (r > 0) {
            c->len += (size_t)r;
            return 1;
        }
        if (r == 0) {
            c->eof = 1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET) {
            c->eof = 1;
            c->reset = 1;
            snprintf(hwhy, sizeof hwhy, "connection reset by the server");
            return 0;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            snprintf(hwhy, sizeof hwhy, "recv: %s", strerror(errno));
            return -1;
        }
        int64_t left = deadline - it_now_ms();
        if (left <= 0) {
            snprintf(hwhy, sizeof hwhy,
                     "timed out waiting for a response (%zu bytes buffered: "
                     "\"%.60s\")",
                     c->len, c->buf);
            return -1;
        }
        struct pollfd p = {c->fd, POLLIN, 0};
        poll(&p, 1, (int)left);
    }
}

static const char *find_crlfcrlf(const char *b, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(b + i, "\r\n\r\n", 4) == 0)
            return b + i;
    return NULL;
}

/* Reads one response.  head_only: a reply to HEAD (no body follows).
 * 0 or -1 with hwhy set. */
int hread(struct hconn *c, int head_only, struct hresp *r)
{
    int64_t deadline = it_now_ms() + 5000;
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    const char *end;
    while (!(end = find_crlfcrlf(c->buf, c->len))) {
        if (c->eof) {
            if (!hwhy[0] || c->len)
                snprintf(hwhy, sizeof hwhy,
                         "connection closed before a complete response head "
                         "(%zu bytes: \"%.60s\")",
                         c->len, c->buf);
            return -1;
        }
        hwhy[0] = 0;
        if (hfill(c, deadline) < 0)
            return -1;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (hlen >= sizeof r->head) {
        snprintf(hwhy, sizeof hwhy, "response head of %zu bytes", hlen);
        return -1;
    }
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = 0;
    if (strncmp(r->head, "HTTP/1.1 ", 9) != 0 &&
        strncmp(r->head, "HTTP/1.0 ", 9) != 0) {
        snprintf(hwhy, sizeof hwhy, "bad status line: \"%.60s\"", r->head);
        return -1;
    }
    r->status = atoi(r->head + 9);
    for (char *line = strstr(r->head, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        char *h = line + 2;
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            r->content_length = strtol(h + 15, NULL, 10);
        else if (strncasecmp(h, "Connection:", 11) == 0) {
            char *v = h + 11;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "close", 5) == 0)
                r->conn_close = 1;
        }
    }
    memmove(c->buf, c->buf + hlen, c->len - hlen);
    c->len -= hlen;
    if (head_only)
        return 0;
    if (r->content_length >= 0) {
        size_t want = (size_t)r->content_length;
        if (want > sizeof r->body) {
            snprintf(hwhy, sizeof hwhy, "body of %zu bytes is too large",
                     want);
            return -1;
        }
        while (c->len < want) {
            if (c->eof) {
                snprintf(hwhy, sizeof hwhy,
                         "connection closed after %zu of %zu body bytes",
                         c->len, want);
                return -1;
            }
            if (hfill(c, deadline) < 0)
                return -1;
        }
        memcpy(r->body, c->buf, want);
        r->body_len = want;
        memmove(c->buf, c->buf + want, c->len - want);
        c->len -= want;
        return 0;
    }
    /* no Content-Length: the body runs to EOF (only sensible with close) */
    while (!c->eof)
        if (hfill(c, deadline) < 0)
            return -1;
    size_t n = c->len < sizeof r->body ? c->len : sizeof r->body;
    memcpy(r->body, c->buf, n);
    r->body_len = n;
    c->len = 0;
    return 0;
}

struct hconn *hopen(void)
{
    struct hconn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = it_connect(it_srv->port);
    if (c->fd < 0) {
        free(c);
        IT_FAIL("connect: %s", it_errbuf);
    }
    return c;
}

void hclose(struct hconn *c)
{
    it_close(c->fd);
    free(c);
}

void hsend(struct hconn *c, const char *req, size_t n)
{
    IT_CHECK(it_send_all(c->fd, req, n, 5000) == 0, "sending the request: %s",
             it_errbuf);
}

/* Reads a response and checks its status (and the body for 200 GET). */
void hexpect(struct hconn *c, int head_only, int status,
                    const char *what)
{
    struct hresp r;
    hwhy[0] = 0;
    IT_CHECK(hread(c, head_only, &r) == 0, "%s: %s", what, hwhy);
    IT_CHECK(r.status == status, "%s: status %d, expected %d; head:\n%s",
             what, r.status, status, r.head);
    if (status == 200) {
        IT_CHECK(r.content_length == (long)strlen(IT_HTTP_BODY),
                 "%s: Content-Length %ld, expected %zu; head:\n%s", what,
                 r.content_length, strlen(IT_HTTP_BODY), r.head);
        if (!head_only)
            IT_CHECK(r.body_len == strlen(IT_HTTP_BODY) &&
                         memcmp(r.body, IT_HTTP_BODY, r.body_len) == 0,
                     "%s: body \"%.*s\", expected \"%s\"", what,
                     (int)r.body_len, r.body, IT_HTTP_BODY);
    }
}

/* Nothing more arrives on c within wait_ms (and it is not closed). */
void hexpect_quiet(struct hconn *c, int wait_ms, const char *what)
{
    IT_CHECK(c->len == 0, "%s: %zu unexpected extra bytes: \"%.60s\"", what,
             c->len, c->buf);
    struct pollfd p = {c->fd, POLLIN, 0};
    int r = poll(&p, 1, wait_ms);
    if (r > 0) {
        char b[256];
        ssize_t n = recv(c->fd, b, sizeof b - 1, MSG_DONTWAIT);
        if (n > 0) {
            b[n] = 0;
            IT_FAIL("%s: unexpected extra bytes: \"%.60s\"", what, b);
        }
        IT_CHECK(n != 0, "%s: the server closed the connection", what);
        /* a reset is no more quiet than a close */
        IT_CHECK(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR,
                 "%s: %s", what, strerror(errno));
    }
}

void hexpect_closed(struct hconn *c, const char *what)
{
    IT_CHECK(c->len == 0, "%s: unexpected bytes before close: \"%.60s\"", what,
             c->buf);
    int64_t deadline = it_now_ms() + 3000;
    while (!c->eof && c->len == 0) {
        hwhy[0] = 0;
        IT_CHECK(hfill(c, deadline) >= 0,
                 "%s: the server did not close the connection within 3 s (%s)", what, hwhy);
    }
    IT_CHECK(c->len == 0, "%s: %zu unexpected bytes before close", what, c->len);
    IT_CHECK(!c->reset, "%s: the connection was reset instead of closed", what);
}

