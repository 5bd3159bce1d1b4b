/*
 * plugins/uring.c's completion accounting, with completions made up by the
 * test (no ring is set up): the count of operations in flight, which the
 * drain and the teardown wait for, moves only with the recv and send
 * operations that use our memory.  And, on a real ring, what a closed
 * connection left unsubmitted in the SQ never touches the next client
 * given its descriptor number.
 *
 * Built only with liburing (tests/CMakeLists.txt), and named outside the
 * test_*.c pattern, which links no liburing.  It includes the plugin's
 * source to reach its static functions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/uring.c"
#include "../tools/uring_refused.h"

static char refused[256]; /* why this process may not set up a ring, or "" */

static struct ios_counters counters;

static void t_log(const struct ios_handler *h, enum ios_log_level level, int err,
                  const char *fmt, ...)
{
    (void)h, (void)level, (void)err, (void)fmt;
}

static int t_open(const struct ios_handler *h, void *state)
{
    (void)h, (void)state;
    return 0;
}

static void t_close(const struct ios_handler *h, void *state)
{
    (void)h, (void)state;
}

static struct ios_handler handler(void)
{
    return (struct ios_handler){
        .struct_size = sizeof(struct ios_handler),
        .protocol = "test",
        .open = t_open,
        .close = t_close,
        .stop_fd = -1,
        .max_connections = 10,
        .idle_timeout_ms = 60000,
        .read_chunk = 4096,
        .max_input = 4096,
        .output_high_water = 16384,
        .log = t_log,
        .counters = &counters,
    };
}

static struct io_uring_cqe cqe(uint64_t user_data, int res, unsigned flags)
{
    return (struct io_uring_cqe){.user_data = user_data, .res = res, .flags = flags};
}

/* On a kernel without IORING_FEAT_EXT_ARG, liburing submits a timeout of
 * its own for a wait with a timeout; its completion may reach our reaping
 * loop.  It is no operation of ours: counting it would wrap the unsigned
 * count and the drain would wait forever. */
static void test_liburing_timeout_is_not_ours(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    struct uring_model m = {.h = &h};
    assert_int_equal(ioc_loop_init(&m.loop, &h), 0);
    m.loop.model = &m;
    struct io_uring_cqe c = cqe(LIBURING_UDATA_TIMEOUT, -ETIME, 0);
    uring_complete(&m, &c);
    assert_int_equal(m.inflight, 0);
    assert_int_equal(m.error, 0);
    ioc_loop_fini(&m.loop);
}

/* The polls and cancels use none of our memory: their completions (a
 * cancel that failed, a poll that ended) change nothing the drain waits
 * for, so a drain whose cancel of the listener poll could not be queued
 * still ends when the last connection does. */
static void test_polls_and_cancels_are_not_counted(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    struct uring_model m = {.h = &h, .listen_armed = true, .closing = true};
    assert_int_equal(ioc_loop_init(&m.loop, &h), 0);
    m.loop.model = &m;
    ioc_drain_begin(&m.loop);
    struct io_uring_cqe cs[] = {
        cqe(OP_CANCEL, -ENOENT, 0),   /* the cancel found nothing */
        cqe(OP_CANCEL, -EALREADY, 0),
        cqe(OP_LISTEN, -ECANCELED, 0),
        cqe(OP_STOP, -ECANCELED, 0),
    };
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++)
        uring_complete(&m, &cs[i]);
    assert_int_equal(m.inflight, 0);
    assert_false(m.listen_armed);
    assert_true(ioc_drained(&m.loop));
    ioc_loop_fini(&m.loop);
}

/* A multishot recv counts once, however many completions it posts: only
 * the last (no IORING_CQE_F_MORE) ends it. */
static void test_multishot_recv_counts_once(void **state)
{
    (void)state;
    struct ios_handler h = handler();
    struct uring_model m = {.h = &h};
    assert_int_equal(ioc_loop_init(&m.loop, &h), 0);
    m.loop.model = &m;
    struct uring_conn *uc = calloc(1, sizeof(*uc));
    assert_non_null(uc);
    uc->ops = 1; /* as uring_arm_recv leaves it, for a connection closed since */
    uc->recv_armed = true;
    m.inflight = 1;
    uint64_t tag = (uint64_t)(uintptr_t)uc | OP_RECV;
    struct io_uring_cqe more = cqe(tag, -ENOBUFS, IORING_CQE_F_MORE);
    uring_complete(&m, &more);
    assert_int_equal(m.inflight, 1);
    struct io_uring_cqe last = cqe(tag, -ECANCELED, 0);
    uring_complete(&m, &last); /* frees uc: its last operation ended */
    assert_int_equal(m.inflight, 0);
    ioc_loop_fini(&m.loop);
}

/* A loopback listener on port 0; its port in *port. */
static int listener(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int client(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/*
 * An SQE names its descriptor by number, looked up when it is submitted.
 * A connection closed with its recv still unsubmitted (accepted and closed
 * in one completion batch, say) and a client accepted right after, on the
 * same number: when the SQ goes in, that recv must not read the new
 * client's bytes.  The close hook submits it while the number is still
 * the closed connection's (commit 4d970b3); without that, this recv reads
 * the new client's request and it is gone.
 */
static void test_unsubmitted_recv_misses_the_next_client(void **state)
{
    (void)state;
    if (refused[0])
        skip();
    struct ios_handler h = handler();
    struct uring_model m = {.h = &h, .buf_size = 4096};
    assert_int_equal(ioc_loop_init(&m.loop, &h), 0);
    m.loop.model = &m;
    m.loop.on_close = uring_forget;
    assert_int_equal(uring_setup_ring(&m, 8), 0);
    int port, lfd = listener(&port);

    int first = client(port);
    struct ioc_conn *a;
    assert_int_equal(ioc_accept(&m.loop, lfd, false, &a), 0);
    assert_non_null(a);
    uring_open(&m.loop, a); /* its recv, queued, not submitted */
    assert_int_equal(io_uring_sq_ready(&m.ring), 1);
    /* connected first, so that its own socket does not take the number */
    static const char request[] = "the next client's request";
    int second = client(port);
    assert_int_equal(send(second, request, sizeof request, 0), (ssize_t)sizeof request);

    int number = a->fd;
    ioc_close(&m.loop, a);
    struct ioc_conn *b;
    assert_int_equal(ioc_accept(&m.loop, lfd, false, &b), 0);
    assert_non_null(b);
    assert_int_equal(b->fd, number); /* the premise: the number is reused */
    struct pollfd p = {.fd = b->fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2000), 1);

    /* The loop's next wait submits whatever is still queued. */
    for (int i = 0; i < 40 && m.inflight > 0; i++)
        assert_int_equal(uring_wait(&m, 50), 0);
    assert_int_equal(m.inflight, 0);

    char got[sizeof request];
    assert_int_equal(recv(b->fd, got, sizeof got, MSG_DONTWAIT), (ssize_t)sizeof request);
    assert_memory_equal(got, request, sizeof request);

    ioc_close(&m.loop, b);
    ioc_loop_fini(&m.loop);
    io_uring_queue_exit(&m.ring);
    close(first);
    close(second);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_liburing_timeout_is_not_ours),
        cmocka_unit_test(test_polls_and_cancels_are_not_counted),
        cmocka_unit_test(test_multishot_recv_counts_once),
        cmocka_unit_test(test_unsubmitted_recv_misses_the_next_client),
    };
    /* A ring refused to this process (a kernel setting, a seccomp filter)
     * skips the one case that needs it, and says so to ctest (77). */
    if (uring_refused(refused, sizeof refused))
        printf("skipping the cases on a real ring: %s\n", refused);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed ? failed : refused[0] ? 77 : 0;
}
