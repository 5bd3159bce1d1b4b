/*
 * Scenario latency (per model): ioserve_request_duration_seconds in
 * /metrics, read as Prometheus would, after requests whose number and
 * shape the test knows.
 *  - http, two workers: N requests (sequential on one connection, then
 *    pipelined in one write) make the model's _count of generation 1 grow
 *    by exactly N, summed over both workers; the buckets are cumulative,
 *    +Inf equals _count, and _sum / _count is a plausible latency;
 *  - http, a client that reads a reply much larger than the socket buffers
 *    only after 400 ms: that request is counted above le="0.25", because
 *    it ends when the kernel takes the last byte of the reply;
 *  - echo: N round trips, N requests (a read is a request);
 *  - latency_histogram = false: no histogram at all.
 */
#include "clients.h"
#include "harness.h"
#include "http_client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define FAMILY "ioserve_request_duration_seconds"
#define SLOW_BODY (128u << 10) /* far beyond what the socket buffers hold */
#define SLOW_READER_MS 400

static const char *const le_order[] = {
    "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001",
    "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10", "+Inf",
};
#define NLE (sizeof le_order / sizeof le_order[0])

static struct it_server own;

/* Starts a server of the test's own (it_own_start); its status port. */
static int own_start(const char *name, const char *const *lines)
{
    it_own_start(&own, name, lines);
    int port = it_status_port(&own);
    IT_CHECK(port > 0, "no \"metrics on\" line in the log");
    return port;
}

/* The value of the sample `series` (name and labels, exactly) in body;
 * -1 when absent. */
static double sample(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = body; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, series, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

struct hist {
    double bucket[NLE], sum, count;
};

/* The histogram of this model's generation 1, scraped now. */
static struct hist scrape(int port)
{
    struct hist h;
    const char *body = it_http_get(port, "/metrics");
    IT_CHECK(body != NULL, "GET /metrics failed");
    char series[256];
    for (size_t i = 0; i < NLE; i++) {
        snprintf(series, sizeof series,
                 FAMILY "_bucket{model=\"%s\",generation=\"1\",le=\"%s\"}", it_env.model,
                 le_order[i]);
        h.bucket[i] = sample(body, series);
        IT_CHECK(h.bucket[i] >= 0, "no sample %s", series);
    }
    snprintf(series, sizeof series, FAMILY "_sum{model=\"%s\",generation=\"1\"}", it_env.model);
    h.sum = sample(body, series);
    snprintf(series, sizeof series, FAMILY "_count{model=\"%s\",generation=\"1\"}", it_env.model);
    h.count = sample(body, series);
    IT_CHECK(h.sum >= 0 && h.count >= 0, "no _sum or _count for model %s", it_env.model);
    /* What Prometheus requires of every histogram. */
    for (size_t i = 1; i < NLE; i++)
        IT_CHECK(h.bucket[i] >= h.bucket[i - 1], "bucket le=%s (%.0f) below le=%s (%.0f)",
                 le_order[i], h.bucket[i], le_order[i - 1], h.bucket[i - 1]);
    IT_CHECK(h.bucket[NLE - 1] == h.count, "+Inf bucket %.0f != _count %.0f",
             h.bucket[NLE - 1], h.count);
    return h;
}

/* Scrapes until _count is `want` (the workers' last adds may lag the
 * replies by a moment), or fails the test. */
static struct hist wait_count(int port, double want)
{
    struct hist h = scrape(port);
    for (int i = 0; i < 200 && h.count != want; i++) {
        it_sleep_ms(20);
        h = scrape(port);
    }
    IT_CHECK(h.count == want, "_count = %.0f, expected %.0f", h.count, want);
    return h;
}

#define GET "GET / HTTP/1.1\r\nHost: it\r\n\r\n"

static void http_counts_exactly(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    static const char *const lines[] = {"status_listen = \"127.0.0.1:0\";", "workers = 2;",
                                        "handler = \"http\";", IT_HTTP_GROUP(""), NULL};
    int port = own_start("latency_http", lines);
    struct hist before = scrape(port);
    IT_CHECK(before.count == 0, "_count %.0f before any request", before.count);

    enum { SEQUENTIAL = 20, PIPELINED = 12, CONNS = 4 };
    for (int k = 0; k < CONNS; k++) { /* several connections: both workers serve */
        struct hconn *c = hopen();
        for (int i = 0; i < SEQUENTIAL / CONNS; i++) {
            HSEND(c, GET);
            hexpect(c, 0, 200, "a sequential GET");
        }
        hclose(c);
    }
    struct hconn *c = hopen();
    char burst[PIPELINED * sizeof(GET)];
    size_t n = 0;
    for (int i = 0; i < PIPELINED; i++, n += strlen(GET))
        memcpy(burst + n, GET, strlen(GET));
    hsend(c, burst, n); /* one write: the requests arrive in one read */
    for (int i = 0; i < PIPELINED; i++)
        hexpect(c, 0, 200, "a pipelined GET");
    hclose(c);

    struct hist after = wait_count(port, SEQUENTIAL + PIPELINED);
    double mean = after.sum / after.count;
    it_log("%s: %.0f requests, mean %.1f us", it_env.model, after.count, mean * 1e6);
    IT_CHECK(mean > 1e-7 && mean < 1.0, "mean latency %.9f s is not plausible", mean);
}

/* The client's socket is made small before it connects (receive buffer,
 * and the segment size it offers, which bounds the server's send buffer
 * autotuning), so a reply of SLOW_BODY bytes cannot be taken by the
 * kernel before the client reads. */
static int small_client(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    IT_CHECK(fd >= 0, "socket: %s", strerror(errno));
    it_track(fd);
    int small = 4096, mss = 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    IT_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
    return fd;
}

static void slow_reply_lands_higher(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    /* http.body: SLOW_BODY bytes, in the config as a string */
    static const char pre[] = "http = { body = \"", post[] = "\"; };";
    char *line = malloc(sizeof pre + SLOW_BODY + sizeof post);
    assert_non_null(line);
    memcpy(line, pre, sizeof pre - 1);
    memset(line + sizeof pre - 1, 'b', SLOW_BODY);
    memcpy(line + sizeof pre - 1 + SLOW_BODY, post, sizeof post);
    const char *const lines[] = {"status_listen = \"127.0.0.1:0\";", "handler = \"http\";",
                                 line, NULL};
    int port = own_start("latency_slow", lines);
    free(line);

    int fd = small_client(own.port);
    IT_CHECK(it_send_all(fd, GET, strlen(GET), 3000) == 0, "send: %s", strerror(errno));
    it_sleep_ms(SLOW_READER_MS);
    struct hist during = scrape(port);
    IT_CHECK(during.count == 0, "the request was counted (%.0f) before its reply was read",
             during.count);
    char *buf = malloc(SLOW_BODY + 4096);
    assert_non_null(buf);
    /* The head is shorter than the body: the first SLOW_BODY bytes hold it,
     * and say how much of the body is still to come. */
    size_t got = 0, more = 0;
    int complete = it_recv_exact(fd, buf, SLOW_BODY, 20000, &got) == (ssize_t)SLOW_BODY;
    const char *end = complete ? memmem(buf, got, "\r\n\r\n", 4) : NULL;
    if (end) {
        size_t rest = (size_t)(end + 4 - buf) + SLOW_BODY - got;
        complete = it_recv_exact(fd, buf + got, rest, 20000, &more) == (ssize_t)rest;
    }
    free(buf);
    IT_CHECK(complete && end, "reply cut short after %zu bytes: %s", got + more,
             strerror(errno));
    it_close(fd);

    struct hist after = wait_count(port, 1);
    IT_CHECK(after.bucket[13] == 0, /* le="0.25" */
             "a reply read after %d ms was counted at or below 0.25 s", SLOW_READER_MS);
    /* The server may take the request some time after it was sent (a
     * busy machine): the sum is bounded as the bucket is. */
    IT_CHECK(after.sum > 0.25, "_sum %.3f s, the request was read after %d ms", after.sum,
             SLOW_READER_MS);
}

static void echo_counts_reads(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    static const char *const lines[] = {"status_listen = \"127.0.0.1:0\";",
                                        "handler = \"echo\";", NULL};
    int port = own_start("latency_echo", lines);
    enum { ROUND_TRIPS = 25 };
    int fd;
    IT_CONNECT(fd);
    for (int i = 0; i < ROUND_TRIPS; i++)
        IT_ECHO(fd, "ping-pong", 9);
    it_close(fd);
    struct hist after = wait_count(port, ROUND_TRIPS);
    IT_CHECK(after.sum > 0 && after.sum / after.count < 1.0, "_sum %.9f not plausible",
             after.sum);
}

static void off_exports_nothing(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    static const char *const lines[] = {"status_listen = \"127.0.0.1:0\";",
                                        "latency_histogram = false;", NULL};
    int port = own_start("latency_off", lines);
    int fd;
    IT_CONNECT(fd);
    IT_ECHO(fd, "x", 1);
    it_close(fd);
    cl_wait_metric(port, "ioserve_sent_bytes_total", NULL, 1);
    const char *body = it_http_get(port, "/metrics");
    IT_CHECK(body && !strstr(body, FAMILY "_count{"),
             "latency_histogram = false still exports " FAMILY);
}

int it_run_latency(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(http_counts_exactly, it_group_teardown),
        cmocka_unit_test_teardown(slow_reply_lands_higher, it_group_teardown),
        cmocka_unit_test_teardown(echo_counts_reads, it_group_teardown),
        cmocka_unit_test_teardown(off_exports_nothing, it_group_teardown),
    };
    return cmocka_run_group_tests_name("latency", tests, NULL, NULL);
}
