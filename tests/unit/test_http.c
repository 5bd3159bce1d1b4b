/* The http handler: its parser on its own, then whole conversations fed
 * through data() the way a model's pump does (unconsumed bytes handed back
 * with the next ones), split at every byte boundary where it matters. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "handler.h"
#include "http_parse.h"

#define BODY "Hello, ioserve!\n"
#define MAX_HEADER 512
#define MAX_BODY 1000

/* ------------------------------------------------------------ fixture */

struct fx {
    struct ios_config cfg;
    struct hnd_host host; /* h.host points here */
    struct ios_handler h;
    void *state;
    struct ios_buf in;  /* what a pump would hold: unconsumed input */
    struct ios_buf out;
    ssize_t closed;     /* 0, or the IOS_DATA_CLOSE_* that ended it */
};

/* Replaces a string the config owns. */
static void set_str(char **field, const char *value)
{
    free(*field);
    *field = strdup(value);
    assert_non_null(*field);
}

static int fx_setup_with(struct fx *f, const char *ctype)
{
    memset(f, 0, sizeof *f);
    cfg_defaults(&f->cfg);
    set_str(&f->cfg.handler, "http");
    set_str(&f->cfg.http.body, BODY);
    set_str(&f->cfg.http.content_type, ctype);
    f->cfg.http.max_header_bytes = MAX_HEADER;
    f->cfg.http.max_body_bytes = MAX_BODY;
    f->h.struct_size = sizeof f->h;
    f->h.host = &f->host;
    return hnd_setup(&f->h, &f->cfg);
}

static void fx_open(struct fx *f)
{
    ios_buf_free(&f->in);
    ios_buf_free(&f->out);
    f->closed = 0;
    free(f->state);
    f->state = malloc(f->h.conn_state_size);
    assert_non_null(f->state);
    /* models need not zero the state: open() must not rely on it */
    memset(f->state, 0xa5, f->h.conn_state_size);
    assert_int_equal(f->h.open(&f->h, f->state), 0);
}

static int setup(void **st)
{
    struct fx *f = malloc(sizeof *f);
    assert_non_null(f);
    assert_int_equal(fx_setup_with(f, "text/plain"), 0);
    fx_open(f);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fx *f = *st;
    f->h.close(&f->h, f->state);
    free(f->state);
    ios_buf_free(&f->in);
    ios_buf_free(&f->out);
    hnd_teardown(&f->h);
    cfg_free(&f->cfg);
    free(f);
    return 0;
}

/* One read's worth of bytes, as a pump delivers them. */
static void feed(struct fx *f, const char *p, size_t n)
{
    if (f->closed)
        return;
    assert_int_equal(ios_buf_append(&f->in, p, n), 0);
    size_t pending = ios_buf_pending(&f->in);
    ssize_t r = f->h.data(&f->h, f->state, f->in.data + f->in.off, pending,
                          &f->out);
    if (r < 0) {
        assert_true(r == IOS_DATA_CLOSE_AFTER_WRITE ||
                    r == IOS_DATA_CLOSE_NOW);
        f->closed = r;
        return;
    }
    assert_true((size_t)r <= pending);
    ios_buf_consume(&f->in, (size_t)r);
}

static void feed_str(struct fx *f, const char *s)
{
    feed(f, s, strlen(s));
}

/* The output with every Date value blanked, NUL-terminated, so replies
 * can be compared byte for byte. */
static char *output(struct fx *f)
{
    size_t n = ios_buf_pending(&f->out);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, f->out.data + f->out.off, n);
    s[n] = '\0';
    for (char *d = s; (d = strstr(d, "\r\nDate: ")) != NULL;) {
        d += 8;
        assert_true((size_t)(s + n - d) >= HTTP_DATE_LEN);
        memset(d, 'D', HTTP_DATE_LEN);
    }
    return s;
}

static void expect_output(struct fx *f, const char *want)
{
    char *got = output(f);
    assert_string_equal(got, want);
    free(got);
}

#define DATE "Date: DDDDDDDDDDDDDDDDDDDDDDDDDDDDD\r\n"
#define OK_HEAD_(conn)                                                       \
    "HTTP/1.1 200 OK\r\nServer: ioserve\r\n" DATE                            \
    "Content-Type: text/plain\r\nContent-Length: 16\r\n" conn "\r\n"
#define OK_HEAD OK_HEAD_("")
#define OK OK_HEAD BODY
#define OK_CLOSE OK_HEAD_("Connection: close\r\n") BODY
#define OK_KA OK_HEAD_("Connection: keep-alive\r\n") BODY

#define ERR_HEAD_(code, reason, len, extra)                                  \
    "HTTP/1.1 " code " " reason "\r\nServer: ioserve\r\n" DATE               \
    "Content-Type: text/plain\r\nContent-Length: " len                      \
    "\r\nConnection: close\r\n" extra "\r\n"
#define ERR_(code, reason, len, extra)                                       \
    ERR_HEAD_(code, reason, len, extra) code " " reason "\n"
#define E400 ERR_("400", "Bad Request", "16", "")
#define E405 ERR_("405", "Method Not Allowed", "23", "Allow: GET, HEAD\r\n")
#define E413 ERR_("413", "Content Too Large", "22", "")
#define E414 ERR_("414", "URI Too Long", "17", "")
#define E431 ERR_("431", "Request Header Fields Too Large", "36", "")
#define E501 ERR_("501", "Not Implemented", "20", "")
#define E505 ERR_("505", "HTTP Version Not Supported", "31", "")

/* Sends `req` in one piece to a fresh connection. */
static void exchange(struct fx *f, const char *req, size_t n)
{
    fx_open(f);
    feed(f, req, n);
}

static void expect_reply(struct fx *f, const char *req, const char *want,
                         ssize_t closed)
{
    exchange(f, req, strlen(req));
    char *got = output(f);
    if (strcmp(got, want) != 0 || f->closed != closed)
        print_error("request: \"%s\"\n", req);
    assert_string_equal(got, want);
    assert_int_equal(f->closed, closed);
    free(got);
}

/* The same bytes cut at every boundary into two reads, then one byte per
 * read: the output must not depend on how the stream was cut. */
static void expect_any_split(struct fx *f, const char *req, const char *want,
                             ssize_t closed)
{
    size_t n = strlen(req);
    for (size_t k = 1; k < n; k++) {
        fx_open(f);
        feed(f, req, k);
        feed(f, req + k, n - k);
        char *got = output(f);
        if (strcmp(got, want) != 0)
            print_error("split at %zu\n", k);
        assert_string_equal(got, want);
        assert_int_equal(f->closed, closed);
        if (!closed)
            assert_int_equal(ios_buf_pending(&f->in), 0);
        free(got);
    }
    fx_open(f);
    for (size_t i = 0; i < n; i++)
        feed(f, req + i, 1);
    expect_output(f, want);
    assert_int_equal(f->closed, closed);
}

/* ------------------------------------------------------------- parser */

static int parse(const char *head, struct http_req *r)
{
    return http_parse_head(head, strlen(head), r);
}

static void test_head_parse_whole(void **st)
{
    (void)st;
    struct http_head_parse hp = {0};
    size_t head = 0;
    const char *a = "GET / HTTP/1.1\r\nHost: x\r\n\r\nrest";
    assert_int_equal(http_head_parse(&hp, a, strlen(a), &head), 0);
    assert_int_equal(head, strlen(a) - 4);
    assert_int_equal(hp.req.method, HTTP_M_GET);
    assert_int_equal(hp.next_line, 0); /* ready for the next head */

    const char *b = "HEAD / HTTP/1.0\nConnection: keep-alive\n\nrest";
    assert_int_equal(http_head_parse(&hp, b, strlen(b), &head), 0);
    assert_int_equal(head, strlen(b) - 4);
    assert_int_equal(hp.req.method, HTTP_M_HEAD); /* nothing left from a */
    assert_int_equal(hp.req.minor, 0);
    assert_true(hp.req.conn_keep_alive);

    const char *c = "GET / HTTP/1.1\r\nHost: x\r\n";
    assert_int_equal(http_head_parse(&hp, c, strlen(c), &head), HTTP_HEAD_INCOMPLETE);
    assert_int_equal(hp.next_line, strlen(c)); /* both lines already parsed */
}

/* Fed one byte more at a time, the parse gives the same answer at the same
 * moment as the whole head does, and never goes back over a parsed line. */
static void test_head_parse_trickle(void **st)
{
    (void)st;
    const char *d = "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\nContent-Length: 3\n\r\nX";
    size_t want = strlen(d) - 1;
    struct http_head_parse hp = {0};
    size_t head = 0, last_line = 0;
    for (size_t n = 1; n <= strlen(d); n++) {
        int rc = http_head_parse(&hp, d, n, &head);
        if (n < want) {
            assert_int_equal(rc, HTTP_HEAD_INCOMPLETE);
            assert_true(hp.next_line >= last_line);
            assert_true(hp.next_line <= n);
            last_line = hp.next_line;
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(head, want);
        assert_true(hp.req.has_length);
        assert_int_equal(hp.req.content_length, 3);
        break;
    }
}

/* A bad line is answered as soon as it is whole, before the head ends. */
static void test_head_parse_early_error(void **st)
{
    (void)st;
    struct http_head_parse hp = {0};
    size_t head = 0;
    const char *bad_line = "GET / HTTP/1.1\r\nBad Name: x\r\nHost: still coming";
    assert_int_equal(http_head_parse(&hp, bad_line, strlen(bad_line), &head), 400);
    assert_int_equal(hp.next_line, 0);
    const char *bad_version = "GET / HTTP/2.0\r\nHost: x";
    assert_int_equal(http_head_parse(&hp, bad_version, strlen(bad_version), &head), 505);
    const char *bad_request = "GET /\r\n";
    assert_int_equal(http_head_parse(&hp, bad_request, strlen(bad_request), &head), 400);
    /* a whole head given to http_parse_head must be exactly one head */
    struct http_req r;
    assert_int_equal(http_parse_head("GET / HTTP/1.1\r\n", 16, &r), 400);
    assert_int_equal(http_parse_head("GET / HTTP/1.1\r\n\r\nX", 19, &r), 400);
}

static void test_skip_empty_lines(void **st)
{
    (void)st;
    assert_int_equal(http_skip_empty_lines("\r\n\nGET", 6), 3);
    assert_int_equal(http_skip_empty_lines("GET", 3), 0);
    assert_int_equal(http_skip_empty_lines("\r\n", 2), 2);
    /* a CR that ends the bytes may be the start of a CRLF */
    assert_int_equal(http_skip_empty_lines("\r\n\r", 3), 2);
    /* a CR not followed by LF is no empty line: the request line's start */
    assert_int_equal(http_skip_empty_lines("\r\r\n", 3), 0);
    assert_int_equal(http_skip_empty_lines("\n\rGET", 5), 1);

    char run[2 * HTTP_MAX_EMPTY_LINES + 8];
    for (size_t i = 0; i < sizeof run; i += 2)
        memcpy(run + i, "\r\n", 2);
    assert_int_equal(http_skip_empty_lines(run, 2 * HTTP_MAX_EMPTY_LINES),
                     2 * HTTP_MAX_EMPTY_LINES);
    /* one more empty line than allowed, even unfinished, is too many */
    assert_int_equal(http_skip_empty_lines(run, 2 * HTTP_MAX_EMPTY_LINES + 1),
                     2 * HTTP_MAX_EMPTY_LINES);
    assert_int_equal(http_skip_empty_lines(run, 2 * HTTP_MAX_EMPTY_LINES + 2),
                     -1);
    memset(run, '\n', sizeof run);
    assert_int_equal(http_skip_empty_lines(run, HTTP_MAX_EMPTY_LINES + 1), -1);
}

/* RFC 9112 §3.2: exactly one valid Host in an HTTP/1.1 request, at most
 * one (and valid) in any request. */
static void test_parse_host(void **st)
{
    (void)st;
    static const char *const good[] = {
        "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET / HTTP/1.1\r\nhOsT:example.com:8080 \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a%2Db_c~d!$&'()*+,;=\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x:\r\n\r\n",  /* port = *DIGIT */
        "GET / HTTP/1.1\r\nHost:\r\n\r\n",     /* empty: no authority */
        "GET / HTTP/1.0\r\n\r\n",                /* 1.0 needs none */
        "GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    };
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nX-Host: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost:\r\nHost:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a:8:0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: []\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1/8]\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a,b\tc\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n",
        /* the rules on two Hosts and on their values hold for 1.0 too */
        "GET / HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a b\r\n\r\n",
    };
    struct http_req r;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int got = parse(good[i], &r);
        if (got != 0)
            print_error("good head #%zu \"%s\"\n", i, good[i]);
        assert_int_equal(got, 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int got = parse(bad[i], &r);
        if (got != 400)
            print_error("bad head #%zu \"%s\"\n", i, bad[i]);
        assert_int_equal(got, 400);
    }
    /* the second Host is refused as soon as its line is whole */
    struct http_head_parse hp = {0};
    size_t head = 0;
    const char *two = "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\nMore: coming";
    assert_int_equal(http_head_parse(&hp, two, strlen(two), &head), 400);
}

/* A head that reaches the size limit unfinished: 414 while the request
 * target is what is long, 431 once the request line is whole, 400 when what
 * arrived is no request line at all. */
static void test_head_overflow(void **st)
{
    (void)st;
    static const struct {
        const char *p;
        int want;
        enum http_method method;
    } cases[] = {
        {"GET /aaaaaaaaaaaaaaaa", 414, HTTP_M_GET},
        {"HEAD /aaaaaaaaaaaaaaa", 414, HTTP_M_HEAD},
        {"BREW http://x/aaaaaa", 414, HTTP_M_UNKNOWN},
        {"GET / HTTP/1.1111111", 400, HTTP_M_GET}, /* a long version */
        {"GETGETGETGETGETGETGE", 400, HTTP_M_NONE}, /* a long method */
        {"GET ", 400, HTTP_M_GET},                  /* no target yet */
        {"GET /a\x01" "aaaaaaaaaaaa", 400, HTTP_M_GET},
        {"G(T /aaaaaaaaaaaaaaaa", 400, HTTP_M_NONE},
        {"GET / HTTP/1.1\r\nX: aa", 431, HTTP_M_GET},
        {"HEAD / HTTP/1.1\r\nX: a", 431, HTTP_M_HEAD},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_head_parse hp = {0};
        size_t head = 0, n = strlen(cases[i].p);
        assert_int_equal(http_head_parse(&hp, cases[i].p, n, &head),
                         HTTP_HEAD_INCOMPLETE);
        int got = http_head_overflow(&hp, cases[i].p, n);
        if (got != cases[i].want || hp.req.method != cases[i].method)
            print_error("case #%zu \"%s\"\n", i, cases[i].p);
        assert_int_equal(got, cases[i].want);
        assert_int_equal(hp.req.method, cases[i].method);
    }
}

static void test_parse_ok(void **st)
{
    (void)st;
    struct http_req r;
    assert_int_equal(parse("GET /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
    assert_int_equal(r.method, HTTP_M_GET);
    assert_int_equal(r.minor, 1);
    assert_false(r.conn_close || r.conn_keep_alive || r.has_te ||
                 r.has_length);

    assert_int_equal(parse("HEAD * HTTP/1.0\n"
                           "cOnNeCtIoN:\tfoo , Keep-Alive,,\n"
                           "Connection: upgrade, CLOSE \n"
                           "CONTENT-length:  42 \n"
                           "X-Empty:\n"
                           "X-High: \xc3\xa9t\xc3\xa9\n\n", &r), 0);
    assert_int_equal(r.method, HTTP_M_HEAD);
    assert_int_equal(r.minor, 0);
    assert_true(r.conn_close && r.conn_keep_alive);
    assert_true(r.has_length);
    assert_int_equal(r.content_length, 42);

    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 7, 7\r\n"
                           "Content-Length: 7\r\n\r\n", &r), 0);
    assert_int_equal(r.content_length, 7);

    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n"
                           "Content-Length: 99999999999999999999999\r\n\r\n",
                           &r), 0);
    assert_true(r.content_length == UINT64_MAX);

    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           "\r\n", &r), 0);
    assert_true(r.has_te);

    /* "keep-alive" inside another token is not the token */
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alived, "
                           "xclose\r\n\r\n", &r), 0);
    assert_false(r.conn_close || r.conn_keep_alive);
}

static void test_parse_methods(void **st)
{
    (void)st;
    static const struct {
        const char *m;
        enum http_method want;
    } cases[] = {
        {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},
        {"POST", HTTP_M_REFUSED},    {"PUT", HTTP_M_REFUSED},
        {"DELETE", HTTP_M_REFUSED},  {"PATCH", HTTP_M_REFUSED},
        {"OPTIONS", HTTP_M_REFUSED}, {"TRACE", HTTP_M_REFUSED},
        {"CONNECT", HTTP_M_REFUSED}, {"get", HTTP_M_UNKNOWN},
        {"BREW", HTTP_M_UNKNOWN},    {"GETS", HTTP_M_UNKNOWN},
        {"M-SEARCH", HTTP_M_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s / HTTP/1.1\r\nHost: x\r\n\r\n", cases[i].m);
        struct http_req r;
        assert_int_equal(parse(buf, &r), 0);
        assert_int_equal(r.method, cases[i].want);
    }
}

static void test_parse_versions(void **st)
{
    (void)st;
    static const struct {
        const char *v;
        int want;
    } cases[] = {
        {"HTTP/1.1", 0},    {"HTTP/1.0", 0},   {"HTTP/2.0", 505},
        {"HTTP/3", 505},    {"HTTP/2", 505},   {"HTTP/1.2", 505},
        {"HTTP/0.9", 505},  {"HTTP/10.0", 505}, {"HTTP/1", 400},
        {"HTTP/1.", 400},   {"HTTP/1.x", 400}, {"HTTP/1.1x", 400},
        {"HTTP/1.10", 400}, {"HTTP/x", 400},   {"HTTP/", 400},
        {"http/1.1", 400},  {"HTTP/1.1 ", 400}, {"HTTP/2.", 400},
        {"HTTP/2.0.1", 400}, {"HTTP/1,1", 400}, {"HTTX/1.1", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "GET / %s\r\nHost: x\r\n\r\n", cases[i].v);
        struct http_req r;
        int got = parse(buf, &r);
        if (got != cases[i].want)
            print_error("version \"%s\"\n", cases[i].v);
        assert_int_equal(got, cases[i].want);
    }
}

static const char *const bad_heads[] = {
    "GET\r\n\r\n",
    "GET /\r\n\r\n",
    "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    "/ HTTP/1.1\r\nHost: x\r\n\r\n",
    " GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "G\x80T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET / HTTP/1.1\r\r\n\r\n",
    "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\n: no-name\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n folded\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nA: x\x01y\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nA: x\ry\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nA: x\x7fy\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nA(b: c\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5,\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
};

/* Header values are checked eight bytes at a time: a control byte or DEL
 * must be caught at every position of a long value, and HTAB and obs-text
 * must pass there too. */
static void test_parse_long_values(void **st)
{
    (void)st;
    static const char bad[] = {0x00, 0x01, 0x0a, 0x0d, 0x1f, 0x7f};
    char head[128];
    struct http_req r;
    for (size_t pos = 0; pos < 24; pos++) {
        char value[25];
        memset(value, 'v', 24);
        value[24] = 0;
        value[pos] = '\t';
        snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: x\r\nA: x%sx\r\n\r\n", value);
        assert_int_equal(parse(head, &r), 0);
        value[pos] = (char)0xe9; /* obs-text */
        snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: x\r\nA: x%sx\r\n\r\n", value);
        assert_int_equal(parse(head, &r), 0);
        for (size_t b = 0; b < sizeof bad; b++) {
            size_t len = (size_t)snprintf(head, sizeof head,
                                          "GET / HTTP/1.1\r\nHost: x\r\nA: x%sx\r\n\r\n", value);
            head[strlen("GET / HTTP/1.1\r\nHost: x\r\nA: x") + pos] = bad[b];
            if (bad[b] == 0x0a) /* a bare LF ends the line: not this test */
                continue;
            assert_int_equal(http_parse_head(head, len, &r), 400);
        }
    }
}

static void test_parse_bad(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof bad_heads / sizeof bad_heads[0]; i++) {
        struct http_req r;
        int got = parse(bad_heads[i], &r);
        if (got != 400)
            print_error("head #%zu \"%s\"\n", i, bad_heads[i]);
        assert_int_equal(got, 400);
    }
}

static void test_format_date(void **st)
{
    (void)st;
    char d[HTTP_DATE_LEN];
    http_format_date(784111777, d); /* RFC 9110's example */
    assert_memory_equal(d, "Sun, 06 Nov 1994 08:49:37 GMT", HTTP_DATE_LEN);
    http_format_date(0, d);
    assert_memory_equal(d, "Thu, 01 Jan 1970 00:00:00 GMT", HTTP_DATE_LEN);
    http_format_date(951782400, d); /* a leap day */
    assert_memory_equal(d, "Tue, 29 Feb 2000 00:00:00 GMT", HTTP_DATE_LEN);
}

/* ----------------------------------------------------------- handler */

static void test_setup_fields(void **st)
{
    struct fx *f = *st;
    assert_string_equal(f->h.protocol, "http");
    assert_true(f->h.conn_state_size > 0);
    assert_non_null(f->h.open);
    assert_non_null(f->h.data);
    assert_non_null(f->h.close);
    assert_non_null(f->host.protocol_data);
    assert_ptr_equal(hnd_config(&f->h), &f->cfg);
}

static void test_get(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", OK, 0);
    assert_int_equal(ios_buf_pending(&f->in), 0);
    /* the connection stays usable */
    feed_str(f, "GET /again HTTP/1.1\r\nHost: localhost\r\n\r\n");
    expect_output(f, OK OK);
}

static void test_date_is_now(void **st)
{
    struct fx *f = *st;
    time_t before = time(NULL);
    feed_str(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    time_t after = time(NULL);
    size_t n = ios_buf_pending(&f->out);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, f->out.data + f->out.off, n);
    s[n] = '\0';
    char *d = strstr(s, "\r\nDate: ");
    assert_non_null(d);
    d += 8;
    int ok = 0;
    /* the coarse clock may lag time() by a tick */
    for (time_t t = before - 1; t <= after; t++) {
        char want[HTTP_DATE_LEN];
        http_format_date(t, want);
        ok |= memcmp(d, want, HTTP_DATE_LEN) == 0;
    }
    assert_true(ok);
    free(s);
}

static void test_head(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", OK_HEAD, 0);
    feed_str(f, "HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expect_output(f, OK_HEAD OK_HEAD_("Connection: close\r\n"));
    assert_int_equal(f->closed, IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_bare_lf(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "GET / HTTP/1.1\nHost: x\n\n", OK, 0);
    expect_reply(f, "GET / HTTP/1.1\nHost: x\r\n\n", OK, 0);
}

static void test_leading_empty_lines(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", OK, 0);
    expect_reply(f, "\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", OK, 0);
    /* between pipelined requests too */
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
                 OK OK, 0);
    expect_any_split(f, "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", OK, 0);
    /* a stray CR is no empty line */
    expect_reply(f, "\r\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", E400,
                 IOS_DATA_CLOSE_AFTER_WRITE);
}

/* Empty lines before a request line belong to that request: they stay
 * unconsumed until it is whole (the pump times an unfinished request by
 * its unconsumed input: http.header_timeout), and a long run is refused. */
static void test_empty_lines_are_the_request(void **st)
{
    struct fx *f = *st;
    exchange(f, "\r\n\r\n", 4);
    assert_int_equal(ios_buf_pending(&f->in), 4);
    assert_int_equal(ios_buf_pending(&f->out), 0);
    feed_str(f, "\r\n");
    assert_int_equal(ios_buf_pending(&f->in), 6);
    feed_str(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n");
    expect_output(f, OK);
    /* the next request's empty line is its own, unconsumed */
    assert_int_equal(ios_buf_pending(&f->in), 2);
    assert_int_equal(f->closed, 0);

    char run[2 * HTTP_MAX_EMPTY_LINES + 64];
    size_t n = 0;
    for (int i = 0; i < HTTP_MAX_EMPTY_LINES; i++)
        n += (size_t)sprintf(run + n, "\r\n");
    sprintf(run + n, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_any_split(f, run, OK, 0);
    sprintf(run + n, "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_any_split(f, run, E400, IOS_DATA_CLOSE_AFTER_WRITE);
    /* refused as soon as there is one line too many */
    fx_open(f);
    for (int i = 0; i <= HTTP_MAX_EMPTY_LINES && !f->closed; i++)
        feed_str(f, "\r\n");
    expect_output(f, E400);
    assert_int_equal(f->closed, IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_host_required(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "GET / HTTP/1.1\r\n\r\n", E400, IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", E400,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", E400,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_any_split(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
                     OK E400, IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.0\r\n\r\n", OK_CLOSE, IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_split_everywhere(void **st)
{
    struct fx *f = *st;
    expect_any_split(f,
                     "GET /index.html HTTP/1.1\r\nHost: example.com\r\n"
                     "User-Agent: test\r\nAccept: */*\r\n\r\n",
                     OK, 0);
    expect_any_split(f, "HEAD / HTTP/1.1\nHost: x\n\n", OK_HEAD, 0);
}

#define PIPE3                                                                \
    "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"                                     \
    "HEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n"                                    \
    "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"

static void test_pipelined(void **st)
{
    struct fx *f = *st;
    expect_reply(f, PIPE3, OK OK_HEAD OK, 0);
    assert_int_equal(ios_buf_pending(&f->in), 0);
    expect_any_split(f, PIPE3, OK OK_HEAD OK, 0);

    /* a complete request followed by part of one: only the first is
     * consumed, the rest waits */
    const char *two = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTT";
    exchange(f, two, strlen(two));
    expect_output(f, OK);
    assert_int_equal(ios_buf_pending(&f->in), strlen("GET / HTT"));
    feed_str(f, "P/1.1\r\nHost: x\r\n\r\n");
    expect_output(f, OK OK);
    assert_int_equal(ios_buf_pending(&f->in), 0);
}

static void test_pipelined_close_stops(void **st)
{
    struct fx *f = *st;
    expect_reply(f,
                 "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                 "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                 OK OK_CLOSE, IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_body_consumed(void **st)
{
    struct fx *f = *st;
    expect_reply(f,
                 "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                 "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                 OK OK, 0);
    assert_int_equal(ios_buf_pending(&f->in), 0);

    /* a body that looks like a request is still just body */
    expect_any_split(f,
                     "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\n\r\n"
                     "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                     "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
                     OK OK_HEAD, 0);

    /* a large body arrives in pieces and is never buffered */
    fx_open(f);
    feed_str(f, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    char chunk[100];
    memset(chunk, 'b', sizeof chunk);
    for (int i = 0; i < 10; i++) {
        feed(f, chunk, sizeof chunk);
        assert_int_equal(ios_buf_pending(&f->in), 0);
    }
    feed_str(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_output(f, OK OK);
    assert_int_equal(f->closed, 0);

    /* Content-Length: 0 is no body */
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                    "GET / HTTP/1.1\r\nHost: x\r\n\r\n", OK OK, 0);
    /* exactly the limit is allowed */
    fx_open(f);
    feed_str(f, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    expect_output(f, OK);
    assert_int_equal(f->closed, 0);
}

static void test_connection_close(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", OK_CLOSE,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nCONNECTION: Close\r\n\r\n", OK_CLOSE,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, cLoSe\r\n\r\n",
                 OK_CLOSE, IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nConnection: te\r\n"
                    "connection: close\r\n\r\n",
                 OK_CLOSE, IOS_DATA_CLOSE_AFTER_WRITE);
    /* keep-alive is HTTP/1.1's default, saying it changes nothing */
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", OK,
                 0);
    expect_any_split(f, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     OK_CLOSE, IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_http10(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "GET / HTTP/1.0\r\n\r\n", OK_CLOSE,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", OK_KA,
                 0);
    expect_reply(f, "GET / HTTP/1.0\r\nconnection: KEEP-ALIVE\r\n\r\n"
                    "HEAD / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
                    "GET / HTTP/1.0\r\n\r\n",
                 OK_KA OK_HEAD_("Connection: keep-alive\r\n") OK_CLOSE,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    /* close wins over keep-alive */
    expect_reply(f, "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                 OK_CLOSE, IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_400(void **st)
{
    struct fx *f = *st;
    for (size_t i = 0; i < sizeof bad_heads / sizeof bad_heads[0]; i++)
        expect_reply(f, bad_heads[i], E400, IOS_DATA_CLOSE_AFTER_WRITE);
    /* an error after good requests comes after their replies */
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.x\r\n\r\n", OK E400,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    /* a NUL byte is a control character too */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: x\r\nA: x\0y\r\n\r\n";
    exchange(f, nul, sizeof nul - 1);
    expect_output(f, E400);
    assert_int_equal(f->closed, IOS_DATA_CLOSE_AFTER_WRITE);
    expect_any_split(f, "GET / HTTP/1.1\r\nHost : x\r\n\r\n", E400,
                     IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_405(void **st)
{
    struct fx *f = *st;
    static const char *const methods[] = {"POST", "PUT", "DELETE", "PATCH",
                                          "OPTIONS", "TRACE", "CONNECT"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char req[64];
        snprintf(req, sizeof req, "%s / HTTP/1.1\r\nHost: x\r\n\r\n",
                 methods[i]);
        expect_reply(f, req, E405, IOS_DATA_CLOSE_AFTER_WRITE);
    }
    expect_reply(f, "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=b",
                 E405, IOS_DATA_CLOSE_AFTER_WRITE);
    /* the reply does not wait for the body */
    expect_reply(f, "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n",
                 E405, IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_413(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", E413,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: "
                    "184467440737095516160\r\n\r\n",
                 E413, IOS_DATA_CLOSE_AFTER_WRITE);
    /* the reply to HEAD has no body, errors included */
    expect_reply(f, "HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
                 ERR_HEAD_("413", "Content Too Large", "22", ""),
                 IOS_DATA_CLOSE_AFTER_WRITE);
}

/* A head of exactly n bytes: request line, one padding header, CRLF. */
static char *head_of_size(size_t n)
{
    static const char start[] = "GET / HTTP/1.1\r\nHost: x\r\nX: ";
    static const char end[] = "\r\n\r\n";
    size_t fixed = sizeof start - 1 + sizeof end - 1;
    assert_true(n > fixed);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, start, sizeof start - 1);
    memset(s + sizeof start - 1, 'a', n - fixed);
    memcpy(s + n - (sizeof end - 1), end, sizeof end - 1);
    s[n] = '\0';
    return s;
}

/* A head that starts with `start` and never ends: refused with `want` as
 * soon as max_header_bytes of it are in, in one read or byte by byte, and
 * waited for one byte before. */
static void expect_overflow(struct fx *f, const char *start, const char *want)
{
    size_t n = strlen(start);
    char *huge = malloc(4 * MAX_HEADER);
    assert_non_null(huge);
    memcpy(huge, start, n);
    memset(huge + n, 'a', 4 * MAX_HEADER - n);
    exchange(f, huge, 4 * MAX_HEADER);
    expect_output(f, want);
    assert_int_equal(f->closed, IOS_DATA_CLOSE_AFTER_WRITE);

    fx_open(f);
    size_t fed = 0;
    while (!f->closed && fed < 4 * MAX_HEADER)
        feed(f, huge + fed++, 1);
    assert_int_equal(fed, MAX_HEADER);
    expect_output(f, want);
    assert_int_equal(f->closed, IOS_DATA_CLOSE_AFTER_WRITE);

    exchange(f, huge, MAX_HEADER - 1);
    assert_int_equal(f->closed, 0);
    assert_int_equal(ios_buf_pending(&f->out), 0);
    free(huge);
}

static void test_431(void **st)
{
    struct fx *f = *st;
    char *exact = head_of_size(MAX_HEADER);
    expect_reply(f, exact, OK, 0);
    /* leading empty lines count: they are held like the head */
    fx_open(f);
    feed_str(f, "\r\n\r\n\r\n");
    feed_str(f, exact);
    expect_output(f, E431);
    char *fits = head_of_size(MAX_HEADER - 6);
    fx_open(f);
    feed_str(f, "\r\n\r\n\r\n");
    feed_str(f, fits);
    expect_output(f, OK);
    free(fits);

    char *big = head_of_size(MAX_HEADER + 1);
    expect_reply(f, big, E431, IOS_DATA_CLOSE_AFTER_WRITE);

    expect_overflow(f, "GET / HTTP/1.1\r\nX: ", E431);
    free(big);
    free(exact);
}

/* A request line that reaches max_header_bytes unfinished: 414. */
static void test_414(void **st)
{
    struct fx *f = *st;
    expect_overflow(f, "GET /", E414);

    /* a target that fits is served */
    char req[MAX_HEADER];
    size_t n = (size_t)sprintf(req, "GET /");
    memset(req + n, 'a', MAX_HEADER - 40);
    n += MAX_HEADER - 40;
    sprintf(req + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_reply(f, req, OK, 0);
}

/* Every error reply to a HEAD request is a head alone (RFC 9110 §9.3.2). */
static void test_errors_to_head(void **st)
{
    struct fx *f = *st;
    static const struct {
        const char *req;
        const char *want;
    } cases[] = {
        {"HEAD / HTTP/1.1\r\n\r\n", ERR_HEAD_("400", "Bad Request", "16", "")},
        {"HEAD / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
         ERR_HEAD_("400", "Bad Request", "16", "")},
        {"HEAD /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
         ERR_HEAD_("400", "Bad Request", "16", "")},
        {"HEAD / HTTP/1.x\r\nHost: x\r\n\r\n",
         ERR_HEAD_("400", "Bad Request", "16", "")},
        {"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
         ERR_HEAD_("413", "Content Too Large", "22", "")},
        {"HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
         ERR_HEAD_("501", "Not Implemented", "20", "")},
        {"HEAD / HTTP/2.0\r\nHost: x\r\n\r\n",
         ERR_HEAD_("505", "HTTP Version Not Supported", "31", "")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_any_split(f, cases[i].req, cases[i].want, IOS_DATA_CLOSE_AFTER_WRITE);

    /* and the two that only the size limit decides */
    expect_overflow(f, "HEAD /", ERR_HEAD_("414", "URI Too Long", "17", ""));
    expect_overflow(f, "HEAD / HTTP/1.1\r\nHost: x\r\nX: ",
                    ERR_HEAD_("431", "Request Header Fields Too Large", "36", ""));
}

static void test_501(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", E501,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "get / HTTP/1.1\r\nHost: x\r\n\r\n", E501,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n",
                 E501, IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: gzip, chunked\r\n"
                    "Content-Length: 3\r\n\r\nabc",
                 E501, IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_505(void **st)
{
    struct fx *f = *st;
    expect_reply(f, "GET / HTTP/2.0\r\n\r\n", E505,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/3\r\n\r\n", E505, IOS_DATA_CLOSE_AFTER_WRITE);
    /* the HTTP/2 connection preface */
    expect_reply(f, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", E505,
                 IOS_DATA_CLOSE_AFTER_WRITE);
    expect_reply(f, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.2\r\n\r\n", OK E505,
                 IOS_DATA_CLOSE_AFTER_WRITE);
}

static void test_content_type(void **st)
{
    (void)st;
    struct fx f2;
    assert_int_equal(fx_setup_with(&f2, "text/html; charset=utf-8"), 0);
    fx_open(&f2);
    feed_str(&f2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_output(&f2, "HTTP/1.1 200 OK\r\nServer: ioserve\r\n" DATE
                       "Content-Type: text/html; charset=utf-8\r\n"
                       "Content-Length: 16\r\n\r\n" BODY);
    struct fx *p = malloc(sizeof *p);
    assert_non_null(p);
    *p = f2;
    void *v = p;
    teardown(&v);

    /* a CR LF in the content type would inject headers */
    struct fx f3;
    assert_int_equal(fx_setup_with(&f3, "text/plain\r\nX-Evil: 1"), -EINVAL);
    assert_null(f3.host.protocol_data);
    cfg_free(&f3.cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_parse_whole),
        cmocka_unit_test(test_head_parse_trickle),
        cmocka_unit_test(test_head_parse_early_error),
        cmocka_unit_test(test_skip_empty_lines),
        cmocka_unit_test(test_parse_host),
        cmocka_unit_test(test_head_overflow),
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_methods),
        cmocka_unit_test(test_parse_versions),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_long_values),
        cmocka_unit_test(test_format_date),
        cmocka_unit_test_setup_teardown(test_setup_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_date_is_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_lf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leading_empty_lines, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_empty_lines_are_the_request,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_everywhere, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_close_stops, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body_consumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http10, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_431, setup, teardown),
        cmocka_unit_test_setup_teardown(test_414, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_to_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_501, setup, teardown),
        cmocka_unit_test_setup_teardown(test_505, setup, teardown),
        cmocka_unit_test(test_content_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
