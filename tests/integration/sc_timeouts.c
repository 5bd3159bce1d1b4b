/*
 * Scenario timeouts (every model): what idle_timeout promises.
 *  - the idle deadline follows each connection's own last activity,
 *    whatever the order the idle and the active ones were accepted in;
 *  - a request body that stopped arriving (http) is closed by it.
 * (A client that stopped reading its replies: scenario stop_reading.)
 */
#include "harness.h"
#include "hostile.h"
#include "clients.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define IDLE_MS 1000
/* Earliest close allowed after a connection's last activity (the coarse
 * clock and our own timestamps are a few ms off) and the latest. */
#define CLOSE_MIN_MS 900
#define CLOSE_MAX_MS 3000
/* How long the active ones are kept busy: 2.5 idle periods. */
#define ACTIVE_RUN_MS 2500

static int echo_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";", "idle_timeout = 1;", NULL};
    return it_group_start(lines);
}

/*
 * `pattern`: one letter per client in the order the server accepts them,
 * 'a' active (a round trip every 250 ms), 'i' idle after its first round
 * trip.  Each idle client must be closed CLOSE_MIN_MS..CLOSE_MAX_MS after its
 * last activity, while every active one keeps being served.
 */
static void check_idle_pattern(const char *pattern)
{
    enum { MAX_CLIENTS = 8 };
    size_t n = strlen(pattern);
    assert_true(n <= MAX_CLIENTS);
    int fd[MAX_CLIENTS];
    int64_t last[MAX_CLIENTS], closed_at[MAX_CLIENTS];
    for (size_t i = 0; i < n; i++) {
        /* The round trip before the next connect fixes the accept order. */
        IT_CONNECT(fd[i]);
        IT_ECHO(fd[i], "hello", 5);
        last[i] = it_now_ms();
        closed_at[i] = -1;
    }
    int64_t t0 = it_now_ms();
    int pings = 0;
    for (;;) {
        int64_t now = it_now_ms();
        int open_idle = 0;
        for (size_t i = 0; i < n; i++)
            if (pattern[i] == 'i' && closed_at[i] < 0)
                open_idle++;
        if (now - t0 >= ACTIVE_RUN_MS && !open_idle)
            break;
        if (now - t0 >= CLOSE_MAX_MS + 1000)
            break;
        for (size_t i = 0; i < n; i++) {
            if (pattern[i] != 'a')
                continue;
            char msg[32];
            int len = snprintf(msg, sizeof msg, "ping %d", pings);
            IT_CHECK(it_roundtrip(fd[i], msg, (size_t)len, msg, (size_t)len, 2000) == 0,
                     "%s: active client %zu failed %lld ms in: %s", pattern, i,
                     (long long)(it_now_ms() - t0), it_errbuf);
        }
        pings++;
        int64_t next_ping = it_now_ms() + 250;
        while (it_now_ms() < next_ping) {
            for (size_t i = 0; i < n; i++) {
                if (pattern[i] != 'i' || closed_at[i] >= 0)
                    continue;
                if (it_peer_closed(fd[i], 0)) {
                    closed_at[i] = it_now_ms();
                    size_t junk = 0;
                    it_wait_closed(fd[i], 100, &junk);
                    IT_CHECK(junk == 0, "%s: idle client %zu got %zu bytes", pattern, i, junk);
                }
            }
            it_sleep_ms(10);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (pattern[i] != 'i')
            continue;
        IT_CHECK(closed_at[i] >= 0,
                 "%s: idle client %zu (accepted %s) still open %lld ms after its last "
                 "activity (idle_timeout = 1 s)",
                 pattern, i, i > 0 ? "after others" : "first",
                 (long long)(it_now_ms() - last[i]));
        long after = (long)(closed_at[i] - last[i]);
        IT_CHECK(after >= CLOSE_MIN_MS && after <= CLOSE_MAX_MS,
                 "%s: idle client %zu closed %ld ms after its last activity "
                 "(idle_timeout = 1 s)",
                 pattern, i, after);
    }
    for (size_t i = 0; i < n; i++)
        if (pattern[i] == 'a')
            IT_ECHO(fd[i], "still served", 12);
    it_log("%s: idle clients closed, active ones answered %d pings", pattern, pings);
    for (size_t i = 0; i < n; i++)
        it_close(fd[i]);
}

static void idle_accepted_after_active(void **state)
{
    (void)state;
    IT_BEGIN();
    check_idle_pattern("ai");
}

static void idle_accepted_before_active(void **state)
{
    (void)state;
    IT_BEGIN();
    check_idle_pattern("ia");
}

static void idle_mixed_order(void **state)
{
    (void)state;
    IT_BEGIN();
    check_idle_pattern("aiaii");
}

/* A second server in the same scenario: its own config and log file (the
 * group's are named after the scenario, and the first server's log would
 * be read for the port). */
static struct it_server http_server;

static int http_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"http\";", "idle_timeout = 1;",
                                        "http = { header_timeout = 10; };", NULL};
    char *cfg = it_write_config("timeouts_http", lines);
    if (!cfg)
        return -1;
    int rc = it_server_start(&http_server, cfg);
    free(cfg);
    if (rc == 77)
        return 0; /* it_skip is set: every test skips */
    if (rc != 0) {
        it_failed = 1;
        return -1;
    }
    it_srv = &http_server;
    return 0;
}

/* A request body that stops arriving: the head is whole and answered
 * (header_timeout no longer applies), so idle_timeout closes it, with
 * nothing more sent. */
static void idle_closes_trickling_body(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                              "0123456789";
    IT_CHECK(it_send_all(fd, req, sizeof req - 1, 2000) == 0, "send: %s", it_errbuf);
    int64_t t0 = it_now_ms();
    /* The reply goes out once the head is whole; the body is skipped. */
    static struct hx_reader rd;
    struct hx_resp resp;
    char why[256];
    rd = (struct hx_reader){.fd = fd};
    IT_CHECK(hx_read_response(&rd, 0, it_now_ms() + 2000, &resp, why, sizeof why) == 0,
             "the reply to the head: %s", why);
    IT_CHECK(resp.status == 200 && rd.len == 0, "status %d, %zu more bytes", resp.status,
             rd.len);
    it_sleep_ms(500);
    /* a few more body bytes: activity restarts the clock */
    IT_CHECK(it_send_all(fd, "abcde", 5, 2000) == 0, "send: %s", it_errbuf);
    int64_t last = it_now_ms();
    size_t junk = 0;
    int closed = it_wait_closed(fd, CLOSE_MAX_MS + 500, &junk);
    long after = (long)(it_now_ms() - last);
    IT_CHECK(closed == 1, "a body stopped after 15 of 100 bytes: still open %ld ms later",
             after);
    IT_CHECK(after >= CLOSE_MIN_MS && after <= CLOSE_MAX_MS,
             "a body stopped after 15 of 100 bytes: closed %ld ms after its last byte "
             "(idle_timeout = 1 s, %lld ms after the head)",
             after, (long long)(it_now_ms() - t0));
    IT_CHECK(junk == 0, "a body that stopped arriving got %zu more bytes", junk);
    it_close(fd);
}

int it_run_timeouts(void)
{
    const struct CMUnitTest echo[] = {
        IT_TEST(idle_accepted_after_active),
        IT_TEST(idle_accepted_before_active),
        IT_TEST(idle_mixed_order),
    };
    const struct CMUnitTest http[] = {
        IT_TEST(idle_closes_trickling_body),
    };
    int failed = cmocka_run_group_tests_name("timeouts", echo, echo_setup, it_group_teardown);
    if (it_skip)
        return failed;
    return failed + cmocka_run_group_tests_name("timeouts_http", http, http_setup,
                                                it_group_teardown);
}
