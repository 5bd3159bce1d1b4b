/* Scenarios max_conn (max_connections) and idle (idle_timeout). */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ============================================================= max_conn */

#define MAX_CONN 5

static int max_conn_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";",
                                        "max_connections = 5;", NULL};
    return it_group_start(lines);
}

static void echo_all(const int *fd, int n, const char *tag)
{
    for (int i = 0; i < n; i++) {
        if (fd[i] < 0)
            continue;
        char msg[64];
        int len = snprintf(msg, sizeof msg, "%s client %d", tag, i);
        IT_CHECK(it_roundtrip(fd[i], msg, (size_t)len, msg, (size_t)len,
                              5000) == 0,
                 "%s: client %d of %d: %s", tag, i + 1, n, it_errbuf);
    }
}

static void max_conn_limit(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd[MAX_CONN];
    for (int i = 0; i < MAX_CONN; i++)
        IT_CONNECT(fd[i]);
    echo_all(fd, MAX_CONN, "within the limit");

    /* one too many: accepted by the kernel, then closed by the server */
    int extra;
    IT_CONNECT(extra);
    int64_t t0 = it_now_ms();
    size_t junk = 0;
    int closed = it_wait_closed(extra, 3000, &junk);
    IT_CHECK(closed == 1,
             "connection %d (over max_connections = %d) was not closed by "
             "the server within 3 s",
             MAX_CONN + 1, MAX_CONN);
    IT_CHECK(junk == 0, "the refused connection received %zu bytes", junk);
    it_log("connection over the limit closed after %lld ms",
           (long long)(it_now_ms() - t0));
    it_close(extra);

    /* the first five are unaffected */
    echo_all(fd, MAX_CONN, "after the refusal");

    /* closing one makes room for a new client (the server has to notice
     * the close first: retry briefly) */
    it_close(fd[0]);
    fd[0] = -1;
    int64_t end = it_now_ms() + 3000;
    int attempts = 0, ok = 0;
    char last[512] = "";
    while (!ok && it_now_ms() < end) {
        attempts++;
        int f = it_connect(it_srv->port);
        if (f < 0) {
            snprintf(last, sizeof last, "%s", it_errbuf);
        } else if (it_roundtrip(f, "room again", 10, "room again", 10,
                                1000) == 0) {
            ok = 1;
            fd[0] = f;
            break;
        } else {
            snprintf(last, sizeof last, "%s", it_errbuf);
            it_close(f);
        }
        it_sleep_ms(100);
    }
    IT_CHECK(ok,
             "after closing one of %d connections, a new one was still "
             "refused after %d attempts over 3 s (last: %s)",
             MAX_CONN, attempts, last);
    if (attempts > 1)
        it_log("new client accepted on attempt %d", attempts);
    echo_all(fd, MAX_CONN, "after making room");
    for (int i = 0; i < MAX_CONN; i++)
        it_close(fd[i]);
}

int it_run_max_conn(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(max_conn_limit),
    };
    return cmocka_run_group_tests_name("max_conn", tests, max_conn_setup,
                                       it_group_teardown);
}

/* ================================================================= idle */

static int idle_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";",
                                        "idle_timeout = 1;", NULL};
    return it_group_start(lines);
}

static void idle_timeout(void **state)
{
    (void)state;
    IT_BEGIN();
    int idle, active;
    IT_CONNECT(idle);
    IT_CONNECT(active);
    IT_ECHO(idle, "idle one", 8);
    int64_t t0 = it_now_ms(); /* the idle connection's last activity */
    IT_ECHO(active, "active one", 10);

    int64_t closed_at = -1;
    int64_t next_ping = it_now_ms() + 250;
    int pings = 0;
    /* run at least 2.5 s (2.5 idle periods for the active client) and
     * until the idle one is closed, at most 4 s */
    while (it_now_ms() - t0 < 4000) {
        if (closed_at >= 0 && it_now_ms() - t0 >= 2500)
            break;
        int64_t now = it_now_ms();
        if (now >= next_ping) {
            char msg[32];
            int len = snprintf(msg, sizeof msg, "ping %d", pings++);
            IT_CHECK(it_roundtrip(active, msg, (size_t)len, msg, (size_t)len,
                                  2000) == 0,
                     "the active connection failed %lld ms in (ping %d): %s",
                     (long long)(now - t0), pings, it_errbuf);
            next_ping = it_now_ms() + 250;
            continue;
        }
        if (closed_at < 0) {
            int wait = (int)(next_ping - now);
            if (it_peer_closed(idle, wait > 0 ? wait : 0)) {
                closed_at = it_now_ms();
                size_t junk = 0;
                it_wait_closed(idle, 100, &junk);
                IT_CHECK(junk == 0,
                         "the idle connection got %zu unexpected bytes",
                         junk);
            }
        } else {
            it_sleep_ms((int)(next_ping - now));
        }
    }
    IT_CHECK(closed_at >= 0,
             "the idle connection was not closed within 4 s (idle_timeout "
             "= 1)");
    long after = (long)(closed_at - t0);
    it_log("idle connection closed %ld ms after its last activity; the "
           "active one answered %d pings",
           after, pings);
    IT_CHECK(after >= 900,
             "the idle connection was closed after only %ld ms "
             "(idle_timeout = 1 s)",
             after);
    IT_CHECK(after <= 3500,
             "the idle connection was closed only after %ld ms", after);
    IT_ECHO(active, "still active", 12);
    it_close(idle);
    it_close(active);
}

int it_run_idle(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(idle_timeout),
    };
    return cmocka_run_group_tests_name("idle", tests, idle_setup,
                                       it_group_teardown);
}
