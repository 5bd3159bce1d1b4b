/* Scenarios echo, upper, half_close, reset: byte streams through one
 * connection at a time. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ================================================================= echo */

static int echo_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";", NULL};
    return it_group_start(lines);
}

static void echo_one_byte(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    IT_ECHO(fd, "x", 1);
    char nul = 0;
    IT_ECHO(fd, &nul, 1);
    for (int i = 0; i < 20; i++) {
        char c = (char)('a' + i);
        IT_ECHO(fd, &c, 1);
    }
    it_close(fd);
}

static void echo_round_trips(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    static const char *msgs[] = {
        "hello\n",
        "ioserve integration test",
        "\r\n",
        "a somewhat longer line of text to echo back again\n",
    };
    for (int round = 0; round < 5; round++)
        for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++)
            IT_ECHO(fd, msgs[i], strlen(msgs[i]));
    char buf[4096];
    for (size_t n = 1000; n <= sizeof buf; n += 1000) {
        it_pattern(n, 0, buf, n);
        IT_ECHO(fd, buf, n);
    }
    it_close(fd);
}

static void echo_binary(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    unsigned char buf[256 * 4];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)i; /* 0..255, four times */
    IT_ECHO(fd, buf, 256);
    IT_ECHO(fd, buf, sizeof buf);
    /* descending, starting with 0xff and NULs in the middle */
    for (size_t i = 0; i < 256; i++)
        buf[i] = (unsigned char)(255 - i);
    IT_ECHO(fd, buf, 256);
    it_close(fd);
}

static void echo_100k(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    size_t n = 100 * 1024;
    char *buf = malloc(n);
    assert_non_null(buf);
    it_pattern(100, 0, buf, n);
    int rc = it_roundtrip(fd, buf, n, buf, n, 10000);
    free(buf);
    IT_CHECK(rc == 0, "echo of 100 KB: %s", it_errbuf);
    /* the connection still works afterwards */
    IT_ECHO(fd, "after", 5);
    it_close(fd);
}

static void echo_several_connections(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd[4];
    for (int i = 0; i < 4; i++)
        IT_CONNECT(fd[i]);
    for (int round = 0; round < 3; round++) {
        for (int i = 3; i >= 0; i--) {
            char msg[64];
            int n = snprintf(msg, sizeof msg, "conn %d round %d", i, round);
            IT_ECHO(fd[i], msg, (size_t)n);
        }
    }
    for (int i = 0; i < 4; i++)
        it_close(fd[i]);
}

int it_run_echo(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(echo_one_byte),
        IT_TEST(echo_round_trips),
        IT_TEST(echo_binary),
        IT_TEST(echo_100k),
        IT_TEST(echo_several_connections),
    };
    return cmocka_run_group_tests_name("echo", tests, echo_setup,
                                       it_group_teardown);
}

/* ================================================================ upper */

static int upper_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"upper\";", NULL};
    return it_group_start(lines);
}

static void expect_reply(int fd, const char *in, size_t inlen,
                         const char *expect, size_t explen)
{
    int rc = it_roundtrip(fd, in, inlen, expect, explen, 10000);
    IT_CHECK(rc == 0, "upper of %zu bytes: %s", inlen, it_errbuf);
}

static void upper_mixed_case(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    /* '@' '[' '`' '{' sit right beside the letter ranges */
    static const char in[] = "Hello, World! abc-XYZ_09 {mIxEd} caSe\tz`@[\n";
    static const char ex[] = "HELLO, WORLD! ABC-XYZ_09 {MIXED} CASE\tZ`@[\n";
    expect_reply(fd, in, sizeof in - 1, ex, sizeof ex - 1);
    expect_reply(fd, "a", 1, "A", 1);
    expect_reply(fd, "Z", 1, "Z", 1);
    it_close(fd);
}

static void upper_non_ascii(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    /* UTF-8 letters and high bytes are not ASCII letters: unchanged */
    static const char in[] = "caf\xc3\xa9 \xe4\xb8\xad \xff\xfe\x80 stra\xc3\x9f"
                             "e \xc3\xa0la \x7f\x01z";
    static const char ex[] = "CAF\xc3\xa9 \xe4\xb8\xad \xff\xfe\x80 STRA\xc3\x9f"
                             "E \xc3\xa0LA \x7f\x01Z";
    expect_reply(fd, in, sizeof in - 1, ex, sizeof ex - 1);
    it_close(fd);
}

static void upper_all_bytes(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    unsigned char in[256], ex[256];
    for (int i = 0; i < 256; i++) {
        in[i] = (unsigned char)i;
        ex[i] = (unsigned char)((i >= 'a' && i <= 'z') ? i - 32 : i);
    }
    expect_reply(fd, (const char *)in, 256, (const char *)ex, 256);
    /* a larger stream, split by the server however it likes */
    size_t n = 64 * 1024;
    char *big = malloc(n), *bigex = malloc(n);
    assert_non_null(big);
    assert_non_null(bigex);
    it_pattern(7, 0, big, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)big[i];
        bigex[i] = (char)((c >= 'a' && c <= 'z') ? c - 32 : c);
    }
    int rc = it_roundtrip(fd, big, n, bigex, n, 10000);
    free(big);
    free(bigex);
    IT_CHECK(rc == 0, "upper of 64 KB: %s", it_errbuf);
    it_close(fd);
}

int it_run_upper(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(upper_mixed_case),
        IT_TEST(upper_non_ascii),
        IT_TEST(upper_all_bytes),
    };
    return cmocka_run_group_tests_name("upper", tests, upper_setup,
                                       it_group_teardown);
}

/* =========================================================== half_close */

static int half_close_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";", NULL};
    return it_group_start(lines);
}

/* Sends `n` bytes, shuts the write side, expects the whole echo, then EOF. */
static void half_close_check(size_t n, uint64_t seed)
{
    int fd;
    IT_CONNECT(fd);
    char *out = malloc(n ? n : 1), *in = malloc(n + 1);
    assert_non_null(out);
    assert_non_null(in);
    it_pattern(seed, 0, out, n);
    struct it_xfer x = {.out = out,
                        .out_len = n,
                        .shut_wr = 1,
                        .in = in,
                        .want = n,
                        .until_eof = 1,
                        .timeout_ms = 15000};
    int rc = it_transfer(fd, &x);
    long d = rc == 0 && x.got == n ? it_first_diff(in, out, n) : -1;
    free(out);
    free(in);
    IT_CHECK(rc == 0, "half-close with %zu bytes: %s", n, it_errbuf);
    IT_CHECK(x.got == n,
             "half-close with %zu bytes: the server closed after replying "
             "only %zu bytes",
             n, x.got);
    IT_CHECK(d < 0, "half-close with %zu bytes: reply differs at byte %ld", n,
             d);
    it_close(fd);
}

static void half_close_small(void **state)
{
    (void)state;
    IT_BEGIN();
    half_close_check(17, 1);
}

static void half_close_large(void **state)
{
    (void)state;
    IT_BEGIN();
    half_close_check(1024 * 1024, 2);
}

static void half_close_empty(void **state)
{
    (void)state;
    IT_BEGIN();
    half_close_check(0, 3);
}

static void half_close_after_round_trip(void **state)
{
    (void)state;
    IT_BEGIN();
    int fd;
    IT_CONNECT(fd);
    IT_ECHO(fd, "first", 5);
    IT_CHECK(it_send_all(fd, "second", 6, 5000) == 0,
             "sending after a round trip: %s", it_errbuf);
    IT_CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR): %s",
             strerror(errno));
    char buf[16];
    size_t got;
    int rc = it_recv_until_eof(fd, buf, sizeof buf, 5000, &got);
    IT_CHECK(rc == 0, "after shutdown(SHUT_WR): %s", it_errbuf);
    IT_CHECK(got == 6 && memcmp(buf, "second", 6) == 0,
             "expected \"second\" then EOF, got %zu bytes", got);
    it_close(fd);
}

int it_run_half_close(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(half_close_small),
        IT_TEST(half_close_large),
        IT_TEST(half_close_empty),
        IT_TEST(half_close_after_round_trip),
    };
    return cmocka_run_group_tests_name("half_close", tests, half_close_setup,
                                       it_group_teardown);
}

/* ================================================================ reset */

static int reset_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";", NULL};
    return it_group_start(lines);
}

/* Sends as much of n bytes as the socket takes within ~200 ms. */
static size_t send_some(int fd, const char *buf, size_t n)
{
    size_t done = 0;
    int64_t end = it_now_ms() + 200;
    while (done < n && it_now_ms() < end) {
        ssize_t w = send(fd, buf + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0)
            done += (size_t)w;
        else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            it_sleep_ms(5);
        else if (w < 0 && errno != EINTR)
            break;
    }
    return done;
}

static void reset_mid_stream(void **state)
{
    (void)state;
    IT_BEGIN();
    int other;
    IT_CONNECT(other);
    IT_ECHO(other, "before any reset", 16);

    size_t n = 512 * 1024;
    char *big = malloc(n);
    assert_non_null(big);
    it_pattern(9, 0, big, n);

    for (int i = 0; i < 9; i++) {
        int fd = it_connect(it_srv->port);
        if (fd < 0) {
            free(big);
            IT_FAIL("connect #%d: %s", i, it_errbuf);
        }
        switch (i % 3) {
        case 0: /* a few bytes, never read, reset */
            send_some(fd, big, 100);
            it_sleep_ms(20);
            break;
        case 1: { /* lots of bytes, read a little, reset mid-reply */
            send_some(fd, big, n);
            char tmp[1000];
            size_t got;
            it_recv_exact(fd, tmp, sizeof tmp, 2000, &got);
            break;
        }
        case 2: /* reset right after connecting */
            break;
        }
        /* the other client is served while this one is mid-stream */
        char msg[32];
        int len = snprintf(msg, sizeof msg, "during reset %d", i);
        if (it_roundtrip(other, msg, (size_t)len, msg, (size_t)len, 10000)) {
            free(big);
            IT_FAIL("round trip on the other connection while #%d is open: "
                    "%s",
                    i, it_errbuf);
        }
        it_close_rst(fd);
        len = snprintf(msg, sizeof msg, "after reset %d", i);
        if (it_roundtrip(other, msg, (size_t)len, msg, (size_t)len, 10000)) {
            free(big);
            IT_FAIL("round trip on the other connection after reset #%d: %s",
                    i, it_errbuf);
        }
    }
    free(big);

    for (int i = 0; i < 5; i++) {
        it_sleep_ms(20);
        IT_ECHO(other, "still here", 10);
    }
    /* the server still accepts new connections */
    int fresh;
    IT_CONNECT(fresh);
    IT_ECHO(fresh, "new connection after resets", 27);
    IT_ECHO(other, "and the old one", 15);
    it_close(fresh);
    it_close(other);

    IT_CHECK(it_server_alive(it_srv), "the server exited");
}

static void reset_while_server_writes(void **state)
{
    (void)state;
    IT_BEGIN();
    /* The server has a large reply queued for this client when the RST
     * arrives: its next send fails with ECONNRESET/EPIPE, which must close
     * this connection only (and never raise SIGPIPE). */
    int other;
    IT_CONNECT(other);
    size_t n = 2 * 1024 * 1024;
    char *big = malloc(n);
    assert_non_null(big);
    it_pattern(11, 0, big, n);
    int fd = it_connect(it_srv->port);
    if (fd < 0) {
        free(big);
        IT_FAIL("connect: %s", it_errbuf);
    }
    size_t sent = send_some(fd, big, n);
    free(big);
    it_sleep_ms(50);
    it_close_rst(fd);
    it_sleep_ms(50);
    IT_ECHO(other, "unaffected", 10);
    int fresh;
    IT_CONNECT(fresh);
    IT_ECHO(fresh, "fresh", 5);
    it_close(fresh);
    it_close(other);
    it_log("reset after sending %zu bytes without reading", sent);
}

int it_run_reset(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(reset_mid_stream),
        IT_TEST(reset_while_server_writes),
    };
    return cmocka_run_group_tests_name("reset", tests, reset_setup,
                                       it_group_teardown);
}
