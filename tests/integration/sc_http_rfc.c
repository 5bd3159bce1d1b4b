/* Scenario http_rfc: what RFC 9112 asks of the http handler beyond serving
 * GET, on every model: the Host rule (§3.2), 414 for a request-target too
 * long to parse (§3), error replies to HEAD without a body (RFC 9110
 * §9.3.2), and empty lines before a request line held to
 * http.header_timeout like the rest of the head (§2.2). */
#include "harness.h"
#include "http_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HEADER_TIMEOUT_MS 2000

static int rfc_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "handler = \"http\";",
        IT_HTTP_GROUP("header_timeout = 2; max_body_bytes = 1000;"),
        NULL};
    return it_group_start(lines);
}

/* Sends req on a new connection; the reply must have `status` (a head
 * alone when head_only), and the server must close after it. */
static void expect_refused(const char *req, size_t n, int head_only,
                           int status, const char *what)
{
    struct hconn *c = hopen();
    /* the server may answer and close before reading all of a long one */
    int rc = it_send_all(c->fd, req, n, 5000);
    IT_CHECK(rc == 0 || errno == ECONNRESET || errno == EPIPE, "%s: sending: %s",
             what, it_errbuf);
    hexpect(c, head_only, status, what);
    hexpect_closed(c, what);
    hclose(c);
}

#define EXPECT_REFUSED(req, head_only, status, what) \
    expect_refused((req), strlen(req), (head_only), (status), (what))

static void host_rule(void **state)
{
    (void)state;
    IT_BEGIN();
    EXPECT_REFUSED("GET / HTTP/1.1\r\n\r\n", 0, 400, "HTTP/1.1 without Host");
    EXPECT_REFUSED("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 0, 400,
                   "two Host lines");
    EXPECT_REFUSED("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, 400,
                   "Host: a b");
    EXPECT_REFUSED("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 0, 400,
                   "HTTP/1.0 with two Host lines");

    struct hconn *c = hopen();
    HSEND(c, "GET / HTTP/1.0\r\n\r\n");
    hexpect(c, 0, 200, "HTTP/1.0 without Host");
    hexpect_closed(c, "after HTTP/1.0");
    hclose(c);
    c = hopen();
    HSEND(c, "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    hexpect(c, 0, 200, "Host: [::1]:8080");
    hclose(c);
}

/* A request of `method` whose request-target is longer than the head
 * limit, or with header fields that are. */
static char *oversized(const char *method, int in_target, size_t *n)
{
    size_t pad = IT_HTTP_MAX_HEADER + 1024;
    char *req = malloc(pad + 128);
    assert_non_null(req);
    size_t at = (size_t)sprintf(req, in_target ? "%s /" : "%s / HTTP/1.1\r\nHost: it\r\nX: ",
                                method);
    memset(req + at, 'a', pad);
    at += pad;
    at += (size_t)sprintf(req + at, in_target ? " HTTP/1.1\r\nHost: it\r\n\r\n" : "\r\n\r\n");
    *n = at;
    return req;
}

/* A request-target, then header fields, over the head limit: 414, 431. */
static void expect_oversized(const char *method, int head_only)
{
    size_t n;
    char *req = oversized(method, 1, &n);
    expect_refused(req, n, head_only, 414, "a request-target over max_header_bytes");
    free(req);
    req = oversized(method, 0, &n);
    expect_refused(req, n, head_only, 431, "header fields over max_header_bytes");
    free(req);
}

static void uri_too_long(void **state)
{
    (void)state;
    IT_BEGIN();
    expect_oversized("GET", 0);
}

static void errors_to_head(void **state)
{
    (void)state;
    IT_BEGIN();
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"HEAD / HTTP/1.1\r\n\r\n", 400},
        {"HEAD / HTTP/1.1\r\nHost: it\r\nBad Name: x\r\n\r\n", 400},
        {"HEAD / HTTP/1.x\r\nHost: it\r\n\r\n", 400},
        {"HEAD / HTTP/1.1\r\nHost: it\r\nContent-Length: 5000\r\n\r\n", 413},
        {"HEAD / HTTP/1.1\r\nHost: it\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"HEAD / HTTP/2.0\r\nHost: it\r\n\r\n", 505},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[160];
        snprintf(what, sizeof what, "%d to \"%.40s...\"", cases[i].status, cases[i].req);
        /* hexpect_closed fails on any byte after the head */
        EXPECT_REFUSED(cases[i].req, 1, cases[i].status, what);
    }
    expect_oversized("HEAD", 1);
}

/* Empty lines alone, one every 0.7 s: without a request line they are the
 * start of a request, so http.header_timeout (2 s) ends the connection,
 * silently, long before HTTP_MAX_EMPTY_LINES of them would get a 400. */
static void crlf_trickle(void **state)
{
    (void)state;
    IT_BEGIN();
    struct hconn *c = hopen();
    int64_t start = it_now_ms(), closed_at = -1;
    size_t got = 0;
    while (closed_at < 0 && it_now_ms() - start < 10000) {
        if (it_send_all(c->fd, "\r\n", 2, 1000) != 0) {
            closed_at = it_now_ms(); /* EPIPE or ECONNRESET: closed */
            break;
        }
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, 700) <= 0)
            continue;
        char b[512];
        ssize_t r = recv(c->fd, b, sizeof b, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            closed_at = it_now_ms();
    }
    int64_t after = closed_at - start;
    IT_CHECK(closed_at >= 0, "CRLF every 0.7 s kept the connection open for 10 s "
                             "with header_timeout = 2");
    IT_CHECK(got == 0, "%zu bytes came back: a reply, not the header timeout", got);
    IT_CHECK(after >= HEADER_TIMEOUT_MS - 500 && after <= HEADER_TIMEOUT_MS + 2500,
             "closed after %lld ms, expected about %d", (long long)after,
             HEADER_TIMEOUT_MS);
    hclose(c);
}

static void crlf_run(void **state)
{
    (void)state;
    IT_BEGIN();
    /* one more empty line than the eight ioserve.cfg(5) allows */
    EXPECT_REFUSED("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 0, 400,
                   "nine empty lines");

    /* a few are a client's leftovers: served */
    struct hconn *c = hopen();
    HSEND(c, "\r\n\r\nGET / HTTP/1.1\r\nHost: it\r\n\r\n\r\n");
    hexpect(c, 0, 200, "a GET after two empty lines");
    HSEND(c, "GET / HTTP/1.1\r\nHost: it\r\n\r\n");
    hexpect(c, 0, 200, "a GET after one empty line");
    hclose(c);
}

int it_run_http_rfc(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(host_rule),
        IT_TEST(uri_too_long),
        IT_TEST(errors_to_head),
        IT_TEST(crlf_trickle),
        IT_TEST(crlf_run),
    };
    return cmocka_run_group_tests_name("http_rfc", tests, rfc_setup,
                                       it_group_teardown);
}
