/* Scenario http: the minimal HTTP/1.1 handler. */
#include "harness.h"
#include "http_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int http_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "handler = \"http\";",
        IT_HTTP_GROUP(""),
        NULL};
    return it_group_start(lines);
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
    size_t pad = IT_HTTP_MAX_HEADER + 1024;
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
    hexpect_closed(c, "request head over max_header_bytes");
    hclose(c);

    /* just under the limit still works */
    c = hopen();
    size_t fit = IT_HTTP_MAX_HEADER / 2;
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
    hexpect_closed(c, "POST");
    hclose(c);
}

static void http_unknown_method(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    HSEND(c, "BREW /pot HTTP/1.1\r\nHost: localhost\r\n\r\n");
    hexpect(c, 0, 501, "unknown method BREW");
    hexpect_closed(c, "unknown method BREW");
    hclose(c);
}

static void http_version(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    HSEND(c, "GET / HTTP/2.0\r\nHost: localhost\r\n\r\n");
    hexpect(c, 0, 505, "HTTP/2.0 request");
    hexpect_closed(c, "HTTP/2.0 request");
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
