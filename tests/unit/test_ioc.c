/* plugins/common: buffers, the feed/pump, backpressure, half-close, idle
 * timeouts and accept limits, over real sockets (socketpair and loopback). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ioc.h"

/* ------------------------------------------------------------ fixtures */

struct test_proto {
    int closes;
    int mode; /* 0 echo, 1 line-at-a-time echo, 2 close-after-write on 'q',
                 3 echo, inside a request until a '\n' ends the input,
                 4 line-at-a-time, each line answered with big_reply bytes */
    size_t big_reply;
    unsigned answered; /* lines answered since requests_answered asked */
};

static struct test_proto proto;
static struct ios_counters counters;

static int t_open(const struct ios_handler *h, void *state)
{
    (void)h;
    memset(state, 0, 8);
    return 0;
}

/* mode 1 consumes only whole lines, to exercise kept input. */
static ssize_t t_data(const struct ios_handler *h, void *state, const char *in,
                      size_t len, struct ios_buf *out)
{
    (void)h;
    (void)state;
    if (proto.mode == 1 || proto.mode == 4) {
        const char *nl = memrchr(in, '\n', len);
        if (!nl)
            return 0;
        size_t n = (size_t)(nl - in) + 1;
        for (size_t i = 0; i < n; i++) {
            if (in[i] != '\n')
                continue;
            proto.answered++;
            for (size_t k = 0; proto.mode == 4 && k < proto.big_reply; k++)
                if (ios_buf_append(out, "r", 1) != 0)
                    return IOS_DATA_CLOSE_NOW;
        }
        if (proto.mode == 4)
            return (ssize_t)n;
        return ios_buf_append(out, in, n) == 0 ? (ssize_t)n : IOS_DATA_CLOSE_NOW;
    }
    if (proto.mode == 3)
        ((unsigned char *)state)[0] = in[len - 1] != '\n'; /* at_boundary */
    if (proto.mode == 2 && memchr(in, 'q', len)) {
        ios_buf_append(out, "bye", 3);
        return IOS_DATA_CLOSE_AFTER_WRITE;
    }
    return ios_buf_append(out, in, len) == 0 ? (ssize_t)len : IOS_DATA_CLOSE_NOW;
}

static int t_at_boundary(const struct ios_handler *h, void *state)
{
    (void)h;
    return ((unsigned char *)state)[0] == 0;
}

static void t_close(const struct ios_handler *h, void *state)
{
    (void)h;
    (void)state;
    proto.closes++;
}

static void t_log(const struct ios_handler *h, enum ios_log_level level, int err,
                  const char *fmt, ...)
{
    (void)h;
    (void)level;
    (void)err;
    (void)fmt;
}

static struct ios_handler handler(void)
{
    return (struct ios_handler){
        .struct_size = sizeof(struct ios_handler),
        .protocol = "test",
        .conn_state_size = 8,
        .open = t_open,
        .data = t_data,
        .close = t_close,
        .stop_fd = -1,
        .max_connections = 100,
        .idle_timeout_ms = 60000,
        .read_chunk = 4096,
        .max_input = 1024,
        .output_high_water = 16384,
        .log = t_log,
        .counters = &counters,
    };
}

/* ------------------------------------------- a fake host for the hand-over
 * give() sends the descriptor and the carried input over a SEQPACKET pair,
 * adopt() takes them from its other end, as the real host relays them. */

static struct fake_host {
    int ctl[2];     /* give writes ctl[0], adopt reads ctl[1] */
    int requested;  /* handover_requested() */
    int gives, fail_give;
} host;

static int f_handover_requested(const struct ios_handler *h)
{
    (void)h;
    return host.requested;
}

static int f_give(const struct ios_handler *h, int fd, const char *in, size_t len)
{
    (void)h;
    if (host.fail_give)
        return -EPIPE;
    char none = 0;
    struct iovec iov = {.iov_base = len ? (void *)in : &none, .iov_len = len ? len : 1};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl = {0};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    /* no input travels as one NUL byte (SEQPACKET carries no empty
     * message with descriptors): the tests never carry a lone NUL */
    if (sendmsg(host.ctl[0], &msg, 0) < 0)
        return -errno;
    host.gives++;
    return 0;
}

static int f_adopt(const struct ios_handler *h, int *fd, struct ios_buf *in)
{
    (void)h;
    char data[1024];
    struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    ssize_t n = recvmsg(host.ctl[1], &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -errno;
    memcpy(fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(int));
    fcntl(*fd, F_SETFL, O_NONBLOCK);
    if (n == 1 && data[0] == 0)
        return 0;
    return ios_buf_append(in, data, (size_t)n);
}

/* A 1.2 host: hands connections over through `host`. */
static struct ios_handler handler_12(void)
{
    struct ios_handler h = handler();
    h.handover_requested = f_handover_requested;
    h.give = f_give;
    h.adopt = f_adopt;
    h.adopt_fd = host.ctl[1];
    h.at_boundary = t_at_boundary;
    return h;
}

/* A connection on one end of a socketpair, tracked by the loop. */
static struct ioc_conn *pair_conn(struct ioc_loop *loop, int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    *peer = sv[1];
    fcntl(sv[1], F_SETFL, 0); /* the test's end blocks */
    struct ioc_conn *c = calloc(1, sizeof(*c) + loop->h->conn_state_size);
    assert_non_null(c);
    c->fd = sv[0];
    assert_int_equal(ioc_adopt(loop, c), 0);
    counters.active++;
    return c;
}

static int setup(void **state)
{
    (void)state;
    memset(&proto, 0, sizeof(proto));
    memset(&counters, 0, sizeof(counters));
    memset(&host, 0, sizeof(host));
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, host.ctl), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(host.ctl[0]);
    close(host.ctl[1]);
    return 0;
}

/* -------------------------------------------------------------- buffers */

static void test_buf_append_consume(void **state)
{
    (void)state;
    struct ios_buf b = {0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ios_buf_append(&b, "abcdefgh", 8), 0);
    assert_int_equal(ios_buf_pending(&b), 8000);
    ios_buf_consume(&b, 7999);
    assert_int_equal(ios_buf_pending(&b), 1);
    assert_int_equal(b.data[b.off], 'h');
    ios_buf_consume(&b, 1);
    assert_int_equal(b.off, 0); /* an emptied buffer rewinds */
    assert_int_equal(b.len, 0);
    ios_buf_free(&b);
    assert_null(b.data);
}

static void test_buf_reserve_reclaims_prefix(void **state)
{
    (void)state;
    struct ios_buf b = {0};
    assert_int_equal(ios_buf_append(&b, "0123456789", 10), 0);
    size_t cap = b.cap;
    ios_buf_consume(&b, 8);
    assert_int_equal(ios_buf_reserve(&b, cap - 2), 0);
    assert_int_equal(b.cap, cap); /* moved down rather than grown */
    assert_memory_equal(b.data, "89", 2);
    ios_buf_free(&b);
}

/* ----------------------------------------------------------- the pump */

static void test_echo_round_trip(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);

    assert_int_equal(write(peer, "hello", 5), 5);
    unsigned want = ioc_service(&loop, c, IOC_READABLE);
    assert_int_equal(want, IOC_READABLE);
    char buf[16];
    assert_int_equal(read(peer, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(counters.bytes_in, 5);
    assert_int_equal(counters.bytes_out, 5);

    ioc_loop_fini(&loop); /* closes c */
    assert_int_equal(proto.closes, 1);
    close(peer);
}

static void test_partial_request_kept(void **state)
{
    (void)state;
    proto.mode = 1;
    struct ios_handler h = handler();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);

    assert_int_equal(write(peer, "ab", 2), 2);
    ioc_service(&loop, c, IOC_READABLE);
    assert_int_equal(ios_buf_pending(&c->in), 2);
    assert_int_equal(write(peer, "c\nd", 3), 3);
    ioc_service(&loop, c, IOC_READABLE);
    char buf[16];
    assert_int_equal(read(peer, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "abc\n", 4);
    assert_int_equal(ios_buf_pending(&c->in), 1);
    ioc_loop_fini(&loop);
    close(peer);
}

static void test_max_input_closes(void **state)
{
    (void)state;
    proto.mode = 1; /* never consumes without a newline */
    struct ios_handler h = handler();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    char big[2048];
    memset(big, 'x', sizeof(big));
    assert_int_equal(write(peer, big, sizeof(big)), (ssize_t)sizeof(big));
    /* closed for input: a lingering close, the write side shut at once */
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE), IOC_READABLE);
    assert_int_equal(read(peer, big, sizeof(big)), 0);
    shutdown(peer, SHUT_WR);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE | IOC_HANGUP), IOC_CLOSED);
    assert_int_equal(proto.closes, 1);
    ioc_loop_fini(&loop);
    close(peer);
}

static void test_half_close_flushes_then_closes(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    assert_int_equal(write(peer, "last words", 10), 10);
    shutdown(peer, SHUT_WR);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE | IOC_HANGUP), IOC_CLOSED);
    char buf[32];
    assert_int_equal(read(peer, buf, sizeof(buf)), 10);
    assert_memory_equal(buf, "last words", 10);
    assert_int_equal(read(peer, buf, sizeof(buf)), 0);
    ioc_loop_fini(&loop);
    close(peer);
}

/* After a close-after-write reply, what the peer still sends is read and
 * dropped (a close with unread input would reset the connection and
 * destroy the reply the peer has not read), until the peer's EOF. */
static void test_linger_discards_until_eof(void **state)
{
    (void)state;
    proto.mode = 2;
    struct ios_handler h = handler();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    assert_int_equal(write(peer, "q and more", 10), 10);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE), IOC_READABLE);
    assert_int_equal(write(peer, "still talking", 13), 13);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE), IOC_READABLE);
    assert_int_equal(proto.closes, 0);
    char buf[32];
    assert_int_equal(read(peer, buf, sizeof(buf)), 3); /* the reply, nothing else */
    assert_memory_equal(buf, "bye", 3);
    assert_int_equal(read(peer, buf, sizeof(buf)), 0); /* then EOF */
    shutdown(peer, SHUT_WR);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE | IOC_HANGUP), IOC_CLOSED);
    assert_int_equal(proto.closes, 1);
    ioc_loop_fini(&loop);
    close(peer);
}

/* A peer that keeps sending does not keep a lingering connection: what
 * arrives is no activity, so idle_timeout from the shutdown ends it. */
static void test_linger_deadline(void **state)
{
    (void)state;
    proto.mode = 2;
    struct ios_handler h = handler();
    h.idle_timeout_ms = 1000;
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    assert_int_equal(write(peer, "q", 1), 1);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE), IOC_READABLE);
    c->last_active_ms -= 900; /* lingering for 900 ms so far */
    uint64_t began = c->last_active_ms;
    assert_int_equal(write(peer, "more", 4), 4);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE), IOC_READABLE);
    assert_true(c->last_active_ms == began); /* discarding is no activity */
    c->last_active_ms -= 200;
    ioc_tick(&loop);
    assert_int_equal(loop.nconns, 0);
    assert_int_equal(proto.closes, 1);
    ioc_loop_fini(&loop);
    close(peer);
}

/* A peer that sends without reading: the pump stops reading once output
 * passes the high-water mark, so memory stays bounded, and resumes when the
 * peer reads. */
static void test_backpressure(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    fcntl(peer, F_SETFL, O_NONBLOCK);

    char chunk[4096];
    memset(chunk, 'z', sizeof(chunk));
    size_t sent = 0, received = 0;
    unsigned want = 0;
    for (int i = 0; i < 2000; i++) {
        ssize_t n = write(peer, chunk, sizeof(chunk));
        if (n > 0)
            sent += (size_t)n;
        want = ioc_service(&loop, c, IOC_READABLE);
        if (!(want & IOC_READABLE))
            break;
    }
    assert_false(want & IOC_READABLE); /* paused */
    assert_true(want & IOC_WRITABLE);
    assert_true(ios_buf_pending(&c->out) <= h.output_high_water + h.read_chunk);

    /* The peer reads everything; the pump drains and reads again. */
    for (int i = 0; i < 100000 && received < sent; i++) {
        ssize_t n = read(peer, chunk, sizeof(chunk));
        if (n > 0)
            received += (size_t)n;
        ioc_service(&loop, c, IOC_WRITABLE);
    }
    assert_int_equal(received, sent);
    assert_int_equal(ios_buf_pending(&c->out), 0);
    assert_true(ioc_interest(&loop, c) & IOC_READABLE);
    ioc_loop_fini(&loop);
    close(peer);
}

/* Backpressure that engages with input still waiting in the socket: once
 * the peer reads its replies, the pump must read that input again by
 * itself.  `edge`: the model reports only what changed (epoll ET, sigio),
 * so after the pause no IOC_READABLE ever arrives; otherwise readiness is
 * polled for the interest the pump returned (level-triggered models). */
static void check_backpressure_resumes(bool edge)
{
    struct ios_handler h = handler();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    fcntl(peer, F_SETFL, O_NONBLOCK);
    /* A small send buffer on the server's side makes its output queue up
     * after a few KB, while most of what the peer sent is still unread. */
    int small = 4096;
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);

    char chunk[4096];
    memset(chunk, 'q', sizeof chunk);
    size_t sent = 0, received = 0;
    for (int i = 0; i < 1000; i++) {
        ssize_t n = write(peer, chunk, sizeof chunk);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    unsigned want = ioc_service(&loop, c, IOC_READABLE);
    assert_false(want & IOC_READABLE); /* paused ... */
    int unread = 0;
    assert_int_equal(ioctl(c->fd, FIONREAD, &unread), 0);
    assert_true(unread > 0); /* ... with input still waiting */

    for (int i = 0; i < 10000 && received < sent && want != IOC_CLOSED; i++) {
        ssize_t n = read(peer, chunk, sizeof chunk);
        if (n > 0)
            received += (size_t)n;
        unsigned ready = IOC_WRITABLE;
        if (!edge) {
            struct pollfd p = {.fd = c->fd,
                               .events = (short)((want & IOC_READABLE ? POLLIN : 0) |
                                                 (want & IOC_WRITABLE ? POLLOUT : 0))};
            ready = 0;
            if (poll(&p, 1, 0) > 0)
                ready = (p.revents & POLLIN ? IOC_READABLE : 0) |
                        (p.revents & POLLOUT ? IOC_WRITABLE : 0);
        }
        want = ioc_service(&loop, c, ready);
    }
    assert_int_not_equal(want, IOC_CLOSED);
    assert_int_equal(received, sent); /* every byte came back */
    assert_int_equal(ios_buf_pending(&c->out), 0);
    assert_true(ioc_interest(&loop, c) & IOC_READABLE);
    ioc_loop_fini(&loop);
    close(peer);
}

static void test_backpressure_resumes_edge(void **state)
{
    (void)state;
    check_backpressure_resumes(true);
}

static void test_backpressure_resumes_level(void **state)
{
    (void)state;
    check_backpressure_resumes(false);
}

static void test_reset_peer_closes(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    close(peer);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE | IOC_HANGUP), IOC_CLOSED);
    assert_int_equal(loop.nconns, 0);
    ioc_loop_fini(&loop);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    h.idle_timeout_ms = 1000;
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int p1, p2;
    struct ioc_conn *c1 = pair_conn(&loop, &p1);
    struct ioc_conn *c2 = pair_conn(&loop, &p2);
    assert_in_range(ioc_timeout_ms(&loop), 1, 1000);
    /* Age c1 instead of sleeping: no timing in unit tests. */
    c1->last_active_ms -= 5000;
    assert_int_equal(ioc_timeout_ms(&loop), 0);
    ioc_tick(&loop); /* c1 past idle_timeout: closed; c2 kept */
    assert_int_equal(loop.nconns, 1);
    assert_ptr_equal(ioc_first(&loop), c2);
    ioc_loop_fini(&loop);
    close(p1);
    close(p2);
}

/* Idle ordering: activity moves a connection to the tail of the activity
 * list, so the idle deadline read from the head is the oldest one wherever
 * the idle connection was accepted.  Time passes by ageing every connection
 * (no sleeping), then `active` (a string of 'a'/'i', one per connection in
 * accept order) says which ones send a byte; the idle ones must be closed
 * by the next tick and the active ones kept. */
static void check_idle_order(const char *pattern)
{
    struct ios_handler h = handler();
    h.idle_timeout_ms = 1000;
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    size_t n = strlen(pattern);
    struct ioc_conn *c[8];
    int peer[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        c[i] = pair_conn(&loop, &peer[i]);
    for (struct ioc_conn *it = ioc_first(&loop); it; it = ioc_next(&loop, it))
        it->last_active_ms -= 5000;
    unsigned active = 0;
    for (size_t i = 0; i < n; i++) {
        if (pattern[i] != 'a')
            continue;
        active++;
        assert_int_equal(write(peer[i], "x", 1), 1);
        assert_int_equal(ioc_service(&loop, c[i], IOC_READABLE), IOC_READABLE);
        char b;
        assert_int_equal(read(peer[i], &b, 1), 1);
    }
    /* an idle connection is overdue: the model must not sleep */
    if (active < n)
        assert_int_equal(ioc_timeout_ms(&loop), 0);
    ioc_tick(&loop);
    assert_int_equal(loop.nconns, active);
    for (size_t i = 0; i < n; i++) {
        char b;
        fcntl(peer[i], F_SETFL, O_NONBLOCK);
        ssize_t r = read(peer[i], &b, 1);
        if (pattern[i] == 'a')
            assert_true(r < 0 && errno == EAGAIN); /* still open */
        else
            assert_int_equal(r, 0); /* closed by the tick */
    }
    assert_in_range(ioc_timeout_ms(&loop), 1, 1000);
    ioc_loop_fini(&loop);
    for (size_t i = 0; i < n; i++)
        close(peer[i]);
}

static void test_idle_accepted_after_active(void **state)
{
    (void)state;
    check_idle_order("ai");
}

static void test_idle_accepted_before_active(void **state)
{
    (void)state;
    check_idle_order("ia");
}

static void test_idle_mixed_order(void **state)
{
    (void)state;
    check_idle_order("aiaaii");
}

/* A request trickling in (slowloris) is closed after request_timeout_ms
 * even though bytes keep arriving; completing requests restarts the clock. */
static void test_request_timeout(void **state)
{
    (void)state;
    proto.mode = 1; /* only whole lines are consumed */
    struct ios_handler h = handler();
    h.request_timeout_ms = 1000;
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int p1, p2;
    struct ioc_conn *slow = pair_conn(&loop, &p1);
    struct ioc_conn *fast = pair_conn(&loop, &p2);

    assert_int_equal(write(p1, "GET", 3), 3);
    ioc_service(&loop, slow, IOC_READABLE);
    assert_in_range(ioc_timeout_ms(&loop), 1, 1000);
    assert_int_equal(write(p2, "a\nb", 3), 3);
    ioc_service(&loop, fast, IOC_READABLE);

    /* More bytes of the same request do not restart its clock ... */
    slow->request_started_ms -= 600;
    assert_int_equal(write(p1, " /", 2), 2);
    ioc_service(&loop, slow, IOC_READABLE);
    assert_int_equal(ioc_timeout_ms(&loop) <= 400, 1);
    /* ... finishing one and starting the next does. */
    fast->request_started_ms -= 600;
    assert_int_equal(write(p2, "\nc", 2), 2);
    ioc_service(&loop, fast, IOC_READABLE);
    slow->request_started_ms -= 600;
    ioc_tick(&loop);
    assert_int_equal(loop.nconns, 1);
    assert_ptr_equal(ioc_first(&loop), fast);
    char b[8];
    assert_int_equal(read(p1, b, sizeof(b)), 0); /* slow was closed */
    ioc_loop_fini(&loop);
    close(p1);
    close(p2);
}

/* ------------------------------------------------------------- accept */

static int listen_loopback(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static int connect_to(int lfd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, len), 0);
    return fd;
}

static void test_accept_max_connections(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    h.max_connections = 2;
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int lfd = listen_loopback();
    int cl[3];
    for (int i = 0; i < 3; i++)
        cl[i] = connect_to(lfd);
    struct ioc_conn *c;
    assert_int_equal(ioc_accept(&loop, lfd, false, &c), 0);
    assert_non_null(c);
    assert_int_equal(ioc_accept(&loop, lfd, false, &c), 0);
    assert_non_null(c);
    assert_int_equal(ioc_accept(&loop, lfd, false, &c), 0);
    assert_null(c); /* refused */
    assert_null(c);
    assert_int_equal(ioc_accept(&loop, lfd, false, &c), -EAGAIN);
    assert_int_equal(counters.accepted, 2);
    assert_int_equal(counters.refused, 1);
    assert_int_equal(counters.active, 2);
    char b;
    assert_int_equal(read(cl[2], &b, 1), 0); /* closed at once */
    ioc_loop_fini(&loop);
    assert_int_equal(counters.active, 0);
    assert_int_equal(counters.closed, 2);
    for (int i = 0; i < 3; i++)
        close(cl[i]);
    close(lfd);
}

static void test_accept_fd_limit(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int lfd = listen_loopback();
    int cl = connect_to(lfd);
    loop.fd_limit = 3; /* every new descriptor is above it */
    struct ioc_conn *c;
    assert_int_equal(ioc_accept(&loop, lfd, false, &c), 0);
    assert_null(c);
    assert_int_equal(counters.refused, 1);
    ioc_loop_fini(&loop);
    close(cl);
    close(lfd);
}

/* ------------------------------------------------------------ hand-over */

/* What was given comes back through adopt: the same socket, its carried
 * input.  Returns the descriptor; *in gets the input. */
static int take_given(struct ios_buf *in)
{
    struct ios_handler h = handler_12();
    int fd = -1;
    assert_int_equal(h.adopt(&h, &fd, in), 0);
    return fd;
}

static struct ioc_conn *first_adopted;
static void note_adopted(struct ioc_loop *loop, struct ioc_conn *c)
{
    (void)loop;
    first_adopted = c;
}

/* A connection is given only once its queued output is sent, and the
 * input the handler has not consumed (half a line) travels with it. */
static void test_give_at_boundary_after_flush(void **state)
{
    (void)state;
    proto.mode = 1;
    host.requested = 1;
    struct ios_handler h = handler_12();
    h.output_high_water = 1 << 20; /* keeps reading: the replies pile up */
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    assert_int_equal(fcntl(peer, F_SETFL, O_NONBLOCK), 0);
    /* Lines the peer does not read back, until replies stay queued. */
    char line[1000];
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\n';
    size_t lines = 0;
    while (ios_buf_pending(&c->out) == 0) {
        assert_true(lines < 10000);
        if (write(peer, line, sizeof(line)) == (ssize_t)sizeof(line))
            lines++;
        ioc_service(&loop, c, IOC_READABLE);
    }
    assert_int_equal(write(peer, "de", 2), 2);
    ioc_service(&loop, c, IOC_READABLE);
    assert_int_equal(ios_buf_pending(&c->in), 2);

    ioc_drain_begin(&loop);
    assert_int_equal(host.gives, 0); /* output queued: not at a boundary */
    assert_int_equal(loop.nconns, 1);

    /* The peer reads; each time the pump sends more, and gives the
     * connection right after its last reply went. */
    size_t got = 0;
    unsigned want = 0;
    char buf[65536];
    while (want != IOC_CLOSED) {
        ssize_t n = read(peer, buf, sizeof(buf));
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                assert_int_equal(buf[i], line[(got + (size_t)i) % sizeof(line)]);
            got += (size_t)n;
        }
        want = ioc_service(&loop, c, IOC_WRITABLE);
    }
    ssize_t n;
    while ((n = read(peer, buf, sizeof(buf))) > 0)
        got += (size_t)n;
    assert_int_equal(got, lines * sizeof(line)); /* every reply, before the give */
    assert_int_equal(host.gives, 1);
    assert_int_equal(loop.nconns, 0);
    assert_int_equal(counters.given, 1);
    assert_int_equal(counters.closed, 0);
    assert_int_equal(counters.active, 0);
    assert_int_equal(proto.closes, 1); /* handler state released */

    struct ios_buf in = {0};
    int fd = take_given(&in);
    assert_int_equal(ios_buf_pending(&in), 2);
    assert_memory_equal(in.data + in.off, "de", 2);
    /* The TCP connection itself was not touched: no FIN, still talking. */
    assert_int_equal(write(fd, "ok", 2), 2);
    assert_int_equal(fcntl(peer, F_SETFL, 0), 0);
    assert_int_equal(read(peer, buf, sizeof(buf)), 2);
    assert_memory_equal(buf, "ok", 2);
    ios_buf_free(&in);
    close(fd);
    ioc_loop_fini(&loop);
    close(peer);
}

/* Inside a request (the handler consumed half of it), a connection stays
 * until the request is complete and answered. */
static void test_no_give_inside_request(void **state)
{
    (void)state;
    proto.mode = 3;
    host.requested = 1;
    struct ios_handler h = handler_12();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    assert_int_equal(write(peer, "GET", 3), 3);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE), IOC_READABLE);
    ioc_drain_begin(&loop);
    assert_int_equal(host.gives, 0);
    assert_int_equal(loop.nconns, 1);

    assert_int_equal(write(peer, " /\n", 3), 3);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE), IOC_CLOSED);
    char buf[16];
    assert_int_equal(read(peer, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "GET /\n", 6);
    assert_int_equal(host.gives, 1);
    struct ios_buf in = {0};
    int fd = take_given(&in);
    assert_int_equal(ios_buf_pending(&in), 0);
    close(fd);
    ioc_loop_fini(&loop);
    close(peer);
}

/* A give the host refuses leaves the connection served here, and the
 * drain asks no more. */
static void test_give_refused_drains_here(void **state)
{
    (void)state;
    host.requested = 1;
    host.fail_give = 1;
    struct ios_handler h = handler_12();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    ioc_drain_begin(&loop);
    assert_int_equal(loop.nconns, 1);
    assert_false(loop.handing_over);
    assert_int_equal(write(peer, "hi", 2), 2);
    assert_int_equal(ioc_service(&loop, c, IOC_READABLE), IOC_READABLE);
    char buf[4];
    assert_int_equal(read(peer, buf, sizeof(buf)), 2);
    ioc_loop_fini(&loop);
    close(peer);
}

/* Adopting: the carried input reaches the handler before anything the
 * client sends next, and its replies are queued for the pump. */
static void test_adopt_feeds_carried_input_first(void **state)
{
    (void)state;
    proto.mode = 1;
    struct ios_handler h = handler_12();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(f_give(&h, sv[0], "one\ntw", 6), 0);
    close(sv[0]); /* the giver's copy */
    first_adopted = NULL;
    assert_int_equal(ioc_adopt_pending(&loop, note_adopted), 1);
    struct ioc_conn *c = first_adopted;
    assert_non_null(c);
    assert_int_equal(counters.adopted, 1);
    assert_int_equal(counters.active, 1);
    assert_int_equal(counters.accepted, 0);
    assert_int_equal(counters.bytes_in, 0); /* counted by the giver */
    assert_true(c->interest & IOC_WRITABLE);
    assert_int_equal(ios_buf_pending(&c->in), 2);
    assert_true(fcntl(c->fd, F_GETFL) & O_NONBLOCK);

    assert_int_equal(write(sv[1], "o\n", 2), 2);
    ioc_service(&loop, c, IOC_READABLE | IOC_WRITABLE);
    char buf[16];
    assert_int_equal(read(sv[1], buf, sizeof(buf)), 8);
    assert_memory_equal(buf, "one\ntwo\n", 8);
    assert_int_equal(ioc_adopt_pending(&loop, note_adopted), 0); /* -EAGAIN */
    ioc_loop_fini(&loop);
    close(sv[1]);
}

/* A 1.1 host has none of the 1.2 fields: nothing is given or adopted. */
static void test_host_11_drains_as_before(void **state)
{
    (void)state;
    host.requested = 1;
    struct ios_handler h = handler_12();
    h.struct_size = offsetof(struct ios_handler, handover_requested);
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    assert_int_equal(loop.adopt_fd, -1);
    int peer;
    pair_conn(&loop, &peer);
    ioc_drain_begin(&loop);
    assert_int_equal(host.gives, 0);
    assert_int_equal(loop.nconns, 1);
    assert_int_equal(ioc_adopt_pending(&loop, NULL), 0);
    ioc_loop_fini(&loop);
    close(peer);
}

/* -s quit with close_idle_on_drain: an idle connection at a boundary ends
 * at once (FIN, lingering), one with half a request, or inside one, stays
 * until it completes. */
static void test_close_idle_on_drain(void **state)
{
    (void)state;
    proto.mode = 3;
    host.requested = 0;
    struct ios_handler h = handler_12();
    h.close_idle_on_drain = 1;
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int idle_peer, busy_peer;
    struct ioc_conn *idle = pair_conn(&loop, &idle_peer);
    struct ioc_conn *busy = pair_conn(&loop, &busy_peer);
    assert_int_equal(write(busy_peer, "GE", 2), 2);
    ioc_service(&loop, busy, IOC_READABLE);
    (void)idle;

    ioc_drain_begin(&loop);
    assert_int_equal(host.gives, 0);
    char buf[16];
    struct pollfd p = {.fd = idle_peer, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 1000), 1); /* not left open */
    assert_int_equal(read(idle_peer, buf, sizeof(buf)), 0); /* FIN */
    assert_int_equal(fcntl(busy_peer, F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(read(busy_peer, buf, sizeof(buf)), 2); /* the echo */
    assert_int_equal(read(busy_peer, buf, sizeof(buf)), -1); /* still open */
    assert_int_equal(errno, EAGAIN);

    /* the request completes: answered, then that one ends too */
    assert_int_equal(write(busy_peer, "T\n", 2), 2);
    ioc_service(&loop, busy, IOC_READABLE);
    assert_int_equal(fcntl(busy_peer, F_SETFL, 0), 0);
    assert_int_equal(read(busy_peer, buf, sizeof(buf)), 2);
    assert_int_equal(read(busy_peer, buf, sizeof(buf)), 0); /* FIN */
    ioc_loop_fini(&loop);
    close(idle_peer);
    close(busy_peer);
}

/* ------------------------------------------------------------- latency
 * A 1.3 host that records what request_done is told, and a line protocol
 * (mode 1 or 4) that counts the lines it answers. */

static struct {
    unsigned calls, requests;
    uint64_t duration_ns[16];
    unsigned count[16];
} timed;

static void f_request_done(const struct ios_handler *h, uint64_t duration_ns,
                           unsigned count)
{
    (void)h;
    if (timed.calls < 16) {
        timed.duration_ns[timed.calls] = duration_ns;
        timed.count[timed.calls] = count;
    }
    timed.calls++;
    timed.requests += count;
}

static unsigned t_requests_answered(const struct ios_handler *h, void *state)
{
    (void)h;
    (void)state;
    unsigned n = proto.answered;
    proto.answered = 0;
    return n;
}

static struct ios_handler handler_timed(void)
{
    memset(&timed, 0, sizeof(timed));
    struct ios_handler h = handler();
    h.request_done = f_request_done;
    h.requests_answered = t_requests_answered;
    return h;
}

#define MS 1000000ull

static void sleep_ms(unsigned ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* Reads what the pump sends until its output is gone (the peer blocks). */
static size_t drain_replies(struct ioc_loop *loop, struct ioc_conn *c, int peer)
{
    char buf[65536];
    size_t got = 0;
    for (int i = 0; i < 100000 && ioc_output_pending(c) > 0; i++) {
        ssize_t n = read(peer, buf, sizeof(buf));
        assert_true(n > 0);
        got += (size_t)n;
        ioc_service(loop, c, IOC_WRITABLE);
    }
    assert_int_equal(ioc_output_pending(c), 0);
    return got;
}

/* Three requests end in one read; the first began a read earlier: it is
 * timed from that read, the two pipelined behind it from this one. */
static void test_latency_pipelined(void **state)
{
    (void)state;
    proto.mode = 1;
    struct ios_handler h = handler_timed();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);

    assert_int_equal(write(peer, "a", 1), 1);
    ioc_service(&loop, c, IOC_READABLE);
    assert_int_equal(timed.calls, 0); /* a request begun, none answered */
    ioc_tick(&loop); /* the model waits */
    sleep_ms(100);
    assert_int_equal(write(peer, "\nb\nc\n", 5), 5);
    ioc_service(&loop, c, IOC_READABLE);
    char buf[16];
    assert_int_equal(read(peer, buf, sizeof(buf)), 6);

    assert_int_equal(timed.requests, 3);
    assert_int_equal(timed.calls, 2);
    assert_int_equal(timed.count[0], 1);
    assert_true(timed.duration_ns[0] >= 100 * MS);
    assert_int_equal(timed.count[1], 2);
    assert_true(timed.duration_ns[1] < timed.duration_ns[0]);
    assert_true(timed.duration_ns[1] < 100 * MS);

    /* A request whose first byte came with the read that ended the one
     * before it starts with that read, not with the read that ends it. */
    memset(&timed, 0, sizeof(timed));
    ioc_tick(&loop);
    assert_int_equal(write(peer, "x\nd", 3), 3);
    ioc_service(&loop, c, IOC_READABLE);
    assert_int_equal(timed.requests, 1);
    ioc_tick(&loop);
    sleep_ms(50);
    assert_int_equal(write(peer, "\n", 1), 1);
    ioc_service(&loop, c, IOC_READABLE);
    assert_int_equal(timed.requests, 2);
    assert_true(timed.duration_ns[1] >= 50 * MS);
    ioc_loop_fini(&loop);
    close(peer);
}

/* Requests one wake-up reports were received before it: one served after
 * another that took long counts the time it waited meanwhile (its start
 * is the clock read last in the wake-up); after the next wait, a request
 * starts with a new read. */
static void test_latency_one_wakeup(void **state)
{
    (void)state;
    proto.mode = 1;
    struct ios_handler h = handler_timed();
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer_a, peer_b;
    struct ioc_conn *a = pair_conn(&loop, &peer_a);
    struct ioc_conn *b = pair_conn(&loop, &peer_b);

    assert_int_equal(write(peer_a, "a\n", 2), 2);
    assert_int_equal(write(peer_b, "b\n", 2), 2);
    ioc_service(&loop, a, IOC_READABLE);
    sleep_ms(50); /* serving `a` took long */
    ioc_service(&loop, b, IOC_READABLE);
    assert_int_equal(timed.calls, 2);
    assert_true(timed.duration_ns[1] >= 50 * MS);

    ioc_tick(&loop); /* the wait */
    sleep_ms(50);
    assert_int_equal(write(peer_b, "c\n", 2), 2);
    ioc_service(&loop, b, IOC_READABLE);
    assert_int_equal(timed.calls, 3);
    assert_true(timed.duration_ns[2] < 50 * MS);
    ioc_loop_fini(&loop);
    close(peer_a);
    close(peer_b);
}

/* A reply that needs several sends ends with the last of them. */
static void test_latency_partial_write(void **state)
{
    (void)state;
    proto.mode = 4;
    proto.big_reply = 200000;
    struct ios_handler h = handler_timed();
    h.output_high_water = 1 << 20;
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    int small = 4096;
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);

    assert_int_equal(write(peer, "x\n", 2), 2);
    ioc_service(&loop, c, IOC_READABLE);
    assert_true(ioc_output_pending(c) > 0); /* the socket is full */
    assert_int_equal(timed.calls, 0);       /* so the request is not done */
    sleep_ms(50);
    /* A second request answered while the first reply still waits: its
     * own batch, done when its own reply is. */
    assert_int_equal(write(peer, "y\n", 2), 2);
    ioc_service(&loop, c, IOC_READABLE);
    assert_int_equal(timed.calls, 0);
    assert_true(drain_replies(&loop, c, peer) > 0);

    assert_int_equal(timed.requests, 2);
    assert_int_equal(timed.calls, 2);
    assert_true(timed.duration_ns[0] >= 50 * MS);
    ioc_loop_fini(&loop);
    close(peer);
}

/* A completion model's path (io_uring): the reply is done when the kernel
 * reports the last of it sent, however it was cut; more unwritten batches
 * than a connection keeps are merged, and no request is lost. */
static void test_latency_completion_model(void **state)
{
    (void)state;
    proto.mode = 1;
    struct ios_handler h = handler_timed();
    h.output_high_water = 1 << 20;
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);

    assert_int_equal(ioc_feed(&loop, c, "a\nb\n", 4), 0);
    const struct ios_buf *b = ioc_send_next(&loop, c);
    assert_int_equal(ios_buf_pending(b), 4);
    ioc_sent(&loop, c, 3);
    assert_int_equal(timed.calls, 0);
    ioc_sent(&loop, c, 1);
    assert_int_equal(timed.calls, 1);
    assert_int_equal(timed.count[0], 2);

    memset(&timed, 0, sizeof(timed));
    for (int i = 0; i < IOC_LATENCY_BATCHES + 3; i++) {
        assert_int_equal(ioc_feed(&loop, c, "z\n", 2), 0);
        if (i == 0)
            ioc_send_next(&loop, c); /* one in flight, the rest queued */
    }
    size_t total = (IOC_LATENCY_BATCHES + 3) * 2;
    ioc_sent(&loop, c, 2);
    assert_int_equal(timed.requests, 1);
    ioc_send_next(&loop, c);
    ioc_sent(&loop, c, total - 2);
    assert_int_equal(timed.requests, IOC_LATENCY_BATCHES + 3);
    assert_true(timed.calls <= IOC_LATENCY_BATCHES + 1);
    ioc_loop_fini(&loop);
    close(peer);
}

/* Without request_done (latency_histogram = false, or a host older than
 * 1.3), nothing is timed; a protocol without requests_answered answers
 * one request per reply. */
static void test_latency_off_and_default_count(void **state)
{
    (void)state;
    struct ios_handler h = handler_timed();
    h.struct_size = offsetof(struct ios_handler, requests_answered);
    struct ioc_loop loop;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    assert_null(loop.request_done);
    ioc_loop_fini(&loop);

    h = handler_timed();
    h.request_done = NULL;
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    assert_null(loop.request_done);
    ioc_loop_fini(&loop);

    h = handler_timed();
    h.requests_answered = NULL; /* echo: a read is a request */
    assert_int_equal(ioc_loop_init(&loop, &h), 0);
    int peer;
    struct ioc_conn *c = pair_conn(&loop, &peer);
    assert_int_equal(write(peer, "ab\ncd\n", 6), 6);
    ioc_service(&loop, c, IOC_READABLE);
    assert_int_equal(timed.requests, 1);
    ioc_loop_fini(&loop);
    close(peer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_buf_append_consume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_buf_reserve_reclaims_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_request_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_input_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close_flushes_then_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linger_discards_until_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linger_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_resumes_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_resumes_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_peer_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_accepted_after_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_accepted_before_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_mixed_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept_max_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept_fd_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_give_at_boundary_after_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_give_inside_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_give_refused_drains_here, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_feeds_carried_input_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_11_drains_as_before, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_idle_on_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_one_wakeup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_partial_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_completion_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_latency_off_and_default_count, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
