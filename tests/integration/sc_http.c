/* Scenario http: the minimal HTTP/1.1 handler. */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY "Hello from ioserve-it!\n"
#define MAX_HEADER 8192

static int http_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "handler = \"http\";",
        "http = { body = \"Hello from ioserve-it!\\n\"; max_header_bytes = "
        "8192; };",
        NULL};
    return it_group_start(lines);
}

/* ------------------------------------------------------ response reader */

struct hconn {
    int fd;
    char buf[256 * 1024];
    size_t len;
    int eof;
};

struct hresp {
    int status;
    char head[MAX_HEADER];
    long content_length; /* -1 when absent */
    int conn_close;      /* "Connection: close" present */
    char body[4096];
    size_t body_len;
};

static char hwhy[512];

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
static int hread(struct hconn *c, int head_only, struct hresp *r)
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

static struct hconn *hopen(void)
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

static void hclose(struct hconn *c)
{
    it_close(c->fd);
    free(c);
}

static void hsend(struct hconn *c, const char *req, size_t n)
{
    IT_CHECK(it_send_all(c->fd, req, n, 5000) == 0, "sending the request: %s",
             it_errbuf);
}

#define HSEND(c, s) hsend((c), (s), strlen(s))

/* Reads a response and checks its status (and the body for 200 GET). */
static void hexpect(struct hconn *c, int head_only, int status,
                    const char *what)
{
    struct hresp r;
    hwhy[0] = 0;
    IT_CHECK(hread(c, head_only, &r) == 0, "%s: %s", what, hwhy);
    IT_CHECK(r.status == status, "%s: status %d, expected %d; head:\n%s",
             what, r.status, status, r.head);
    if (status == 200) {
        IT_CHECK(r.content_length == (long)strlen(BODY),
                 "%s: Content-Length %ld, expected %zu; head:\n%s", what,
                 r.content_length, strlen(BODY), r.head);
        if (!head_only)
            IT_CHECK(r.body_len == strlen(BODY) &&
                         memcmp(r.body, BODY, r.body_len) == 0,
                     "%s: body \"%.*s\", expected \"%s\"", what,
                     (int)r.body_len, r.body, BODY);
    }
}

/* Nothing more arrives on c within wait_ms (and it is not closed). */
static void hexpect_quiet(struct hconn *c, int wait_ms, const char *what)
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
    }
}

static void hexpect_closed(struct hconn *c, const char *what)
{
    IT_CHECK(c->len == 0, "%s: unexpected bytes before close: \"%.60s\"", what,
             c->buf);
    if (c->eof)
        return;
    size_t extra = 0;
    int r = it_wait_closed(c->fd, 3000, &extra);
    IT_CHECK(r == 1, "%s: the server did not close the connection within 3 s",
             what);
    IT_CHECK(extra == 0, "%s: %zu unexpected bytes before close", what,
             extra);
}

/* ---------------------------------------------------------------- tests */

static void http_get(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    HSEND(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    hexpect(c, 0, 200, "GET /");
    hexpect_quiet(c, 100, "after GET");
    hclose(c);
}

static void http_head(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    HSEND(c, "HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    hexpect(c, 1, 200, "HEAD /");
    hexpect_quiet(c, 200, "after HEAD (no body may follow)");
    HSEND(c, "GET /after-head HTTP/1.1\r\nHost: localhost\r\n\r\n");
    hexpect(c, 0, 200, "GET after HEAD");
    hclose(c);
}

static void http_keep_alive(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    for (int i = 0; i < 3; i++) {
        char req[128], what[64];
        snprintf(req, sizeof req,
                 "GET /ka/%d HTTP/1.1\r\nHost: localhost\r\n\r\n", i);
        snprintf(what, sizeof what, "keep-alive request %d", i + 1);
        HSEND(c, req);
        hexpect(c, 0, 200, what);
        IT_CHECK(!c->eof, "the server closed the connection after request %d",
                 i + 1);
    }
    hexpect_quiet(c, 100, "after 3 keep-alive requests");
    hclose(c);
}

static void http_pipelining(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    /* HEAD and GET interleaved: answers out of order would not parse */
    static const char reqs[] =
        "GET /p1 HTTP/1.1\r\nHost: localhost\r\n\r\n"
        "HEAD /p2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
        "GET /p3 HTTP/1.1\r\nHost: localhost\r\nX-Test: 3\r\n\r\n"
        "GET /p4 HTTP/1.1\r\nHost: localhost\r\n\r\n"
        "HEAD /p5 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    hsend(c, reqs, sizeof reqs - 1);
    static const int head_only[5] = {0, 1, 0, 0, 1};
    for (int i = 0; i < 5; i++) {
        char what[64];
        snprintf(what, sizeof what, "pipelined response %d of 5", i + 1);
        hexpect(c, head_only[i], 200, what);
    }
    hexpect_quiet(c, 200, "after 5 pipelined responses");
    /* and the connection keeps working */
    HSEND(c, "GET /p6 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    hexpect(c, 0, 200, "request after the pipeline");
    hclose(c);
}

static void http_split_request(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    static const char req[] = "GET /split HTTP/1.1\r\nHost: localhost\r\n"
                              "User-Agent: ioserve-it\r\n\r\n";
    for (size_t i = 0; i < sizeof req - 1; i++) {
        hsend(c, req + i, 1);
        if (i % 8 == 0)
            it_sleep_ms(2);
    }
    hexpect(c, 0, 200, "request sent byte by byte");
    hclose(c);
}

static void http_request_body(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    /* a GET with a body: the body is consumed, not parsed as a request */
    HSEND(c, "GET /with-body HTTP/1.1\r\nHost: localhost\r\n"
             "Content-Length: 11\r\n\r\nhello world"
             "GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n");
    hexpect(c, 0, 200, "GET with a Content-Length body");
    hexpect(c, 0, 200, "GET following a request body");
    hclose(c);
}

static void http_connection_close(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    HSEND(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    hexpect(c, 0, 200, "GET with Connection: close");
    hexpect_closed(c, "after Connection: close");
    hclose(c);
}

static void http_malformed(void **state)
{
    (void)state;
    IT_BEGIN();
    static const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nNo colon in this line\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char what[128];
        snprintf(what, sizeof what, "malformed request #%zu", i + 1);
        struct hconn *c = hopen();
        HSEND(c, bad[i]);
        hexpect(c, 0, 400, what);
        hexpect_closed(c, what);
        hclose(c);
    }
}

static void http_oversized_head(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    size_t pad = MAX_HEADER + 1024;
    char *req = malloc(pad + 128);
    assert_non_null(req);
    int n = sprintf(req, "GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: ");
    memset(req + n, 'a', pad);
    n += (int)pad;
    n += sprintf(req + n, "\r\n\r\n");
    /* the server may answer and close before reading all of it */
    int rc = it_send_all(c->fd, req, (size_t)n, 5000);
    free(req);
    IT_CHECK(rc == 0 || errno == ECONNRESET || errno == EPIPE,
             "sending the oversized head: %s", it_errbuf);
    hexpect(c, 0, 431, "request head over max_header_bytes");
    hclose(c);

    /* just under the limit still works */
    c = hopen();
    size_t fit = MAX_HEADER / 2;
    req = malloc(fit + 128);
    assert_non_null(req);
    n = sprintf(req, "GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: ");
    memset(req + n, 'b', fit);
    n += (int)fit;
    n += sprintf(req + n, "\r\n\r\n");
    rc = it_send_all(c->fd, req, (size_t)n, 5000);
    free(req);
    IT_CHECK(rc == 0, "sending a 4 KB head: %s", it_errbuf);
    hexpect(c, 0, 200, "request head of ~4 KB");
    hclose(c);
}

static void http_post(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    HSEND(c, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n"
             "hello");
    hexpect(c, 0, 405, "POST");
    hclose(c);
}

static void http_unknown_method(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    HSEND(c, "BREW /pot HTTP/1.1\r\nHost: localhost\r\n\r\n");
    hexpect(c, 0, 501, "unknown method BREW");
    hclose(c);
}

static void http_version(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    HSEND(c, "GET / HTTP/2.0\r\nHost: localhost\r\n\r\n");
    hexpect(c, 0, 505, "HTTP/2.0 request");
    hclose(c);
}

int it_run_http(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(http_get),
        IT_TEST(http_head),
        IT_TEST(http_keep_alive),
        IT_TEST(http_pipelining),
        IT_TEST(http_split_request),
        IT_TEST(http_request_body),
        IT_TEST(http_connection_close),
        IT_TEST(http_malformed),
        IT_TEST(http_oversized_head),
        IT_TEST(http_post),
        IT_TEST(http_unknown_method),
        IT_TEST(http_version),
    };
    return cmocka_run_group_tests_name("http", tests, http_setup,
                                       it_group_teardown);
}
