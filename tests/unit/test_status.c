/* The master's status endpoint (host/status.c), served in this process on
 * a loopback port and driven the way the master's poll loop drives it,
 * talked to by plain client sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "status.h"

#define PAGE "ioserve_up 1\n"

struct fx {
    struct ios_config cfg;
    struct status_server s;
    int port;
};

static int render(void *ctx, struct ios_buf *out)
{
    (void)ctx;
    assert_int_equal(ios_buf_append(out, PAGE, strlen(PAGE)), 0);
    return 200;
}

#define NOT_READY "not ready: because\n"

static int render_unavailable(void *ctx, struct ios_buf *out)
{
    (void)ctx;
    assert_int_equal(ios_buf_append(out, NOT_READY, strlen(NOT_READY)), 0);
    return 503;
}

static const struct status_page pages[] = {
    {"/metrics", "text/plain; version=0.0.4; charset=utf-8", render},
    {"/readyz", "text/plain; charset=utf-8", render_unavailable},
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **st)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    log_set_level(IOS_LOG_WARN);
    cfg_defaults(&f->cfg);
    f->cfg.status_listen = strdup("127.0.0.1:0");
    assert_non_null(f->cfg.status_listen);
    struct sockaddr_in *a = (struct sockaddr_in *)&f->cfg.status_addr;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->cfg.status_addrlen = sizeof *a;

    status_init(&f->s, pages, sizeof pages / sizeof pages[0], NULL);
    char err[256];
    assert_int_equal(status_configure(&f->s, &f->cfg, err, sizeof err), 0);
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    assert_int_equal(getsockname(f->s.listen_fd, (struct sockaddr *)&bound, &len), 0);
    f->port = ntohs(bound.sin_port);
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    struct fx *f = *st;
    status_fini(&f->s);
    cfg_free(&f->cfg);
    free(f);
    return 0;
}

/* One turn of the master's loop, waiting at most wait_ms. */
static void serve(struct fx *f, int wait_ms)
{
    struct pollfd pfds[STATUS_MAX_CONNS + 1];
    size_t n = status_pollfds(&f->s, pfds, STATUS_MAX_CONNS + 1);
    int t = status_timeout_ms(&f->s);
    poll(pfds, n, t >= 0 && t < wait_ms ? t : wait_ms);
    status_handle(&f->s, pfds, n);
}

/* A client connected and accepted by the server. */
static int client(struct fx *f)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    serve(f, 0);
    return fd;
}

/* Sends req on fd and serves until the server closes it (or 2 s pass);
 * the whole reply, NUL-terminated, in buf. */
static size_t ask(struct fx *f, int fd, const char *req, char *buf, size_t cap)
{
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    size_t got = 0;
    int64_t deadline = now_ms() + 2000;
    while (now_ms() < deadline) {
        serve(f, 10);
        ssize_t r = recv(fd, buf + got, cap - 1 - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EINTR))
            break;
    }
    buf[got] = '\0';
    return got;
}

static void test_scrape(void **st)
{
    struct fx *f = *st;
    char buf[1024];
    int fd = client(f);
    ask(f, fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf);
    close(fd);
    assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(buf, "\r\n\r\n" PAGE));

    fd = client(f);
    ask(f, fd, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf);
    close(fd);
    assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_null(strstr(buf, PAGE));
}

/* Each page answers at its own path, with the code and type it gives, a
 * query ignored; a path that only starts like one is not found. */
static void test_pages(void **st)
{
    struct fx *f = *st;
    char buf[1024];
    int fd = client(f);
    ask(f, fd, "GET /readyz?verbose HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf);
    close(fd);
    assert_true(strncmp(buf, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    assert_non_null(strstr(buf, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(buf, "\r\n\r\n" NOT_READY));

    fd = client(f);
    ask(f, fd, "HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf);
    close(fd);
    assert_true(strncmp(buf, "HTTP/1.1 503 ", 13) == 0);
    assert_null(strstr(buf, NOT_READY));

    static const char *const missing[] = {"/readyzz", "/metricsx", "/", "/ready"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", missing[i]);
        fd = client(f);
        ask(f, fd, req, buf, sizeof buf);
        close(fd);
        if (strncmp(buf, "HTTP/1.1 404 ", 13) != 0)
            fail_msg("GET %s: \"%.40s\"", missing[i], buf);
    }
}

/* Idle connections must not lock a scraper out: with every slot held by
 * one that sent nothing, each new connection takes the slot of the oldest
 * idle one, and every scrape is answered. */
static void test_idle_connections_yield(void **st)
{
    struct fx *f = *st;
    int idle[STATUS_MAX_CONNS + 4];
    size_t nidle = sizeof idle / sizeof idle[0];
    for (size_t i = 0; i < nidle; i++)
        idle[i] = client(f);
    for (int i = 0; i < STATUS_MAX_CONNS; i++) {
        char buf[1024];
        int fd = client(f);
        ask(f, fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf);
        close(fd);
        if (strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) != 0)
            fail_msg("scrape %d of %d with %zu idle connections held: \"%.40s\"", i + 1,
                     STATUS_MAX_CONNS, nidle, buf);
    }
    /* the idle ones that made room were closed, the newest still wait */
    size_t closed = 0;
    for (size_t i = 0; i < nidle; i++) {
        char b;
        ssize_t r = recv(idle[i], &b, 1, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            closed++;
        else
            assert_true(i >= nidle - (STATUS_MAX_CONNS - 1));
        close(idle[i]);
    }
    assert_true(closed >= nidle - (STATUS_MAX_CONNS - 1));
}

/* A request line longer than the endpoint reads gets 414; header fields
 * that are, 431. */
static void test_too_long(void **st)
{
    struct fx *f = *st;
    char req[2100], buf[1024]; /* over the 2 KB it reads, under a socket buffer */
    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', sizeof req - 6);
    req[sizeof req - 1] = '\0';
    int fd = client(f);
    ask(f, fd, req, buf, sizeof buf);
    close(fd);
    assert_true(strncmp(buf, "HTTP/1.1 414 ", 13) == 0);

    int n = sprintf(req, "GET /metrics HTTP/1.1\r\nX: ");
    memset(req + n, 'a', sizeof req - 1 - (size_t)n);
    fd = client(f);
    ask(f, fd, req, buf, sizeof buf);
    close(fd);
    assert_true(strncmp(buf, "HTTP/1.1 431 ", 13) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scrape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connections_yield, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_long, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
