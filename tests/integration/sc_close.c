/*
 * How a connection ends.
 *
 *  stop_reading: a client that sends and then stops reading is cut
 *    idle_timeout (2 s) after the last bytes moved — every model, the
 *    blocking one included, whose send timeouts used to add up to a
 *    multiple of it (6 s).
 *  linger: an error reply that closes the connection (http's answer to a
 *    100 KB request target) reaches the client, followed by EOF: the
 *    server must not close with the rest of the request unread, which
 *    resets the connection and destroys the reply in the client's buffer.
 */
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ========================================================= stop_reading */

#define IDLE_S 2
/* Measured from the client's last send that took bytes; the server's last
 * read may have come earlier (the client's own send buffer fills last). */
#define CUT_MIN_MS 1500
#define CUT_MAX_MS 3500
#define STALL_MS 300 /* no byte accepted this long: the server stopped reading */

static int stop_reading_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";", "idle_timeout = 2;", NULL};
    return it_group_start(lines);
}

static int tcp_state(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -1;
    return ti.tcpi_state;
}

static void stop_reading_is_cut(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    /* Send (never read) until nothing more is taken for STALL_MS: then the
     * echo replies fill both directions and the server cannot move. */
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    int64_t last = it_now_ms(), start = last;
    size_t total = 0;
    while (it_now_ms() - last < STALL_MS) {
        IT_CHECK(it_now_ms() - start < 20000, "the server still reads after 20 s (%zu bytes)",
                 total);
        ssize_t n = send(fd, chunk, sizeof chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            total += (size_t)n;
            last = it_now_ms();
        } else {
            IT_CHECK(errno == EAGAIN || errno == EWOULDBLOCK, "send: %s", strerror(errno));
            it_sleep_ms(10);
        }
    }
    /* Cut: the connection leaves ESTABLISHED (FIN: CLOSE_WAIT; RST: CLOSE). */
    int64_t cut = -1;
    while (it_now_ms() - last < 10000) {
        if (tcp_state(fd) != TCP_ESTABLISHED) {
            cut = it_now_ms() - last;
            break;
        }
        it_sleep_ms(20);
    }
    it_log("sent %zu bytes; cut %lld ms after the last one was taken", total,
           (long long)cut);
    IT_CHECK(cut >= 0, "a client that stopped reading is still connected after 10 s "
                       "(idle_timeout = %d)", IDLE_S);
    IT_CHECK(cut >= CUT_MIN_MS && cut <= CUT_MAX_MS,
             "a client that stopped reading was cut after %lld ms; idle_timeout = %d s "
             "expects %d..%d ms",
             (long long)cut, IDLE_S, CUT_MIN_MS, CUT_MAX_MS);
    it_close(fd);
}

int it_run_stop_reading(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(stop_reading_is_cut),
    };
    return cmocka_run_group_tests_name("stop_reading", tests, stop_reading_setup,
                                       it_group_teardown);
}

/* ================================================================ linger */

#define LONG_TARGET (100 * 1024)

static int linger_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"http\";", NULL};
    return it_group_start(lines);
}

static void linger_error_reply_arrives(void **state)
{
    (void)state;
    IT_BEGIN();
    size_t len = LONG_TARGET + 64;
    char *req = malloc(len);
    assert_non_null(req);
    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', LONG_TARGET);
    int n = snprintf(req + 5 + LONG_TARGET, 64, " HTTP/1.1\r\nHost: x\r\n\r\n");
    len = 5 + LONG_TARGET + (size_t)n;

    int fd;
    IT_CONNECT(fd);
    /* The whole request first, then read, as a client that pipelines its
     * upload would: the server has long replied and closed by then. */
    int sent = it_send_all(fd, req, len, 5000);
    int send_err = sent == 0 ? 0 : errno;
    free(req);
    static char reply[65536];
    size_t got = 0;
    int rc = it_recv_until_eof(fd, reply, sizeof reply - 1, 5000, &got);
    int recv_err = rc == 0 ? 0 : errno;
    reply[got] = '\0';
    it_log("send: %s; read %zu bytes, then %s", send_err ? strerror(send_err) : "all sent",
           got, rc == 0 ? "EOF" : strerror(recv_err));
    IT_CHECK(send_err == 0, "sending the 100 KB request failed: %s (the server reset "
                            "the connection)", strerror(send_err));
    IT_CHECK(got >= 10 && strncmp(reply, "HTTP/1.1 4", 10) == 0,
             "expected an HTTP/1.1 4xx reply to a 100 KB request target, got %zu bytes: "
             "\"%.80s\" (%s)", got, reply, rc == 0 ? "then EOF" : strerror(recv_err));
    IT_CHECK(rc == 0, "after %zu bytes of the reply: %s, not EOF", got, strerror(recv_err));
    IT_CHECK(strstr(reply, "\r\n\r\n") != NULL, "the reply has no complete head: %s", reply);
    it_close(fd);
}

int it_run_linger(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(linger_error_reply_arrives),
    };
    return cmocka_run_group_tests_name("linger", tests, linger_setup, it_group_teardown);
}
