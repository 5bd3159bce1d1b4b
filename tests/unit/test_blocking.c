/*
 * The blocking model must not return from model_run while one of its
 * connection threads is still running: the host dlcloses the plugin right
 * after, and a thread still executing its last instructions in the
 * unmapped code would crash the worker (seen once under ASan as a SEGV
 * whose pc was the faulting address).
 *
 * Each connection thread gets a thread-specific value whose destructor
 * runs as the thread exits, after every line of the model's code, and
 * takes a while.  When model_run returns, every destructor must have
 * finished: that holds only if the threads were joined.
 *
 * The plugin's source is compiled into this test, so it runs without the
 * host or dlopen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../../plugins/blocking.c"

#define CLIENTS 4
#define EXIT_DELAY_US 200000

static pthread_key_t exit_key;
static int threads_exited;

static void slow_thread_exit(void *value)
{
    (void)value;
    usleep(EXIT_DELAY_US);
    __atomic_fetch_add(&threads_exited, 1, __ATOMIC_SEQ_CST);
}

static void quiet_log(const struct ios_handler *h, enum ios_log_level level, int err,
                      const char *fmt, ...)
{
    (void)h, (void)level, (void)err, (void)fmt;
}

static int ready_fd = -1;

static void signal_ready(const struct ios_handler *h)
{
    (void)h;
    if (write(ready_fd, "R", 1) != 1)
        abort();
}

static long long max_threads_knob; /* 0 = the default */

/* The knobs as the host gives them: every declared one, defaults filled
 * in (max_threads as the test sets it). */
static int no_knob_int(const struct ios_handler *h, const char *name, long long *v)
{
    (void)h;
    if (strcmp(name, "max_threads") == 0) {
        *v = max_threads_knob ? max_threads_knob : 1024;
        return 0;
    }
    return -ENOENT;
}

static int no_knob_bool(const struct ios_handler *h, const char *name, int *v)
{
    (void)h;
    if (strcmp(name, "threads") == 0) {
        *v = 1;
        return 0;
    }
    return -ENOENT;
}

static int echo_open(const struct ios_handler *h, void *state)
{
    (void)h, (void)state;
    /* open runs on the acceptor; the key is set where data arrives */
    return 0;
}

static ssize_t echo_data(const struct ios_handler *h, void *state, const char *in,
                         size_t len, struct ios_buf *out)
{
    (void)h, (void)state;
    pthread_setspecific(exit_key, (void *)1); /* on the connection thread */
    return ios_buf_append(out, in, len) == 0 ? (ssize_t)len : IOS_DATA_CLOSE_NOW;
}

static void echo_close(const struct ios_handler *h, void *state)
{
    (void)h, (void)state;
}

/* A 1.2 host that asks for the hand-over and takes every connection
 * (keeping a duplicate, as the real one keeps its reference). */
#define GIVEN_MAX 64
static bool handing_over;
static int given_fds[GIVEN_MAX];
static int given;

static int ask_handover(const struct ios_handler *h)
{
    (void)h;
    return 1;
}

static int take_given(const struct ios_handler *h, int fd, const char *in, size_t len)
{
    (void)h, (void)in;
    int i = __atomic_fetch_add(&given, 1, __ATOMIC_SEQ_CST);
    if (i >= GIVEN_MAX || len != 0)
        return -EINVAL;
    given_fds[i] = dup(fd);
    return given_fds[i] >= 0 ? 0 : -errno;
}

static int adopt_none(const struct ios_handler *h, int *fd, struct ios_buf *in)
{
    (void)h, (void)fd, (void)in;
    return -EAGAIN;
}

struct server {
    int listen_fd;
    int stop[2];
    int port;
    pthread_t thread;
    struct ios_counters counters;
    struct ios_handler h;
    int rc;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    s->rc = model_run(s->listen_fd, &s->h);
    return NULL;
}

static int connect_to(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Runs model_run on a loopback socket in a thread of its own, once it
 * has reported ready. */
static void server_start(struct server *s)
{
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->listen_fd, 16), 0);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pipe(s->stop), 0);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    ready_fd = ready[1];
    s->h = (struct ios_handler){
        .struct_size = sizeof(s->h),
        .protocol = "echo",
        .open = echo_open,
        .data = echo_data,
        .close = echo_close,
        .stop_fd = s->stop[0],
        .ready = signal_ready,
        .max_connections = 100,
        .idle_timeout_ms = 10000,
        .read_chunk = 4096,
        .max_input = 65536,
        .output_high_water = 65536,
        .log = quiet_log,
        .knob_int = no_knob_int,
        .knob_bool = no_knob_bool,
        .counters = &s->counters,
        .adopt_fd = -1,
    };
    if (handing_over) {
        s->h.handover_requested = ask_handover;
        s->h.give = take_given;
        s->h.adopt = adopt_none;
    }
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    char r;
    assert_int_equal(read(ready[0], &r, 1), 1);
    close(ready[0]);
    close(ready[1]);
}

/* Drains: model_run has returned when this does. */
static void server_stop(struct server *s)
{
    assert_int_equal(write(s->stop[1], "q", 1), 1);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    close(s->stop[0]);
    close(s->stop[1]);
}

static void threads_end_before_model_run_returns(void **unused)
{
    (void)unused;
    assert_int_equal(pthread_key_create(&exit_key, slow_thread_exit), 0);
    struct server s = {0};
    server_start(&s);

    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = connect_to(s.port);
        char buf[4];
        assert_int_equal(send(fds[i], "ping", 4, MSG_NOSIGNAL), 4);
        assert_int_equal(recv(fds[i], buf, sizeof(buf), MSG_WAITALL), 4);
        assert_memory_equal(buf, "ping", 4);
    }
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    server_stop(&s);

    assert_int_equal(s.rc, 0);
    assert_int_equal(__atomic_load_n(&threads_exited, __ATOMIC_SEQ_CST), CLIENTS);
    assert_int_equal(s.counters.active, 0);
    assert_int_equal(s.counters.closed, CLIENTS);
    pthread_key_delete(exit_key);
}

/* Past max_threads a connection is refused at accept, like one past
 * max_connections: counted as refused, never as accepted and closed. */
static void max_threads_refuses_at_accept(void **unused)
{
    (void)unused;
    max_threads_knob = 1;
    struct server s = {0};
    server_start(&s);

    int kept = connect_to(s.port);
    char buf[4];
    assert_int_equal(send(kept, "ping", 4, MSG_NOSIGNAL), 4);
    assert_int_equal(recv(kept, buf, sizeof(buf), MSG_WAITALL), 4);
    int over = connect_to(s.port);
    assert_int_equal(recv(over, buf, sizeof(buf), 0), 0); /* closed at once */
    close(over);

    assert_int_equal(__atomic_load_n(&s.counters.refused, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(__atomic_load_n(&s.counters.accepted, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(__atomic_load_n(&s.counters.closed, __ATOMIC_SEQ_CST), 0);
    close(kept);
    server_stop(&s);
    max_threads_knob = 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* On a hand-over, threads asleep waiting for their client's next request
 * are woken and give their connections at once — not at their next byte
 * or their idle timeout (10 s here) — and the TCP connections are not
 * touched: no FIN, and the host's reference still talks to the client. */
#define IDLE_CLIENTS 32
#define HANDOVER_BOUND_MS 1000
static void handover_wakes_sleeping_threads(void **unused)
{
    (void)unused;
    handing_over = true;
    given = 0;
    struct server s = {0};
    server_start(&s);
    int fds[IDLE_CLIENTS];
    for (int i = 0; i < IDLE_CLIENTS; i++) {
        fds[i] = connect_to(s.port);
        char buf[4];
        assert_int_equal(send(fds[i], "ping", 4, MSG_NOSIGNAL), 4);
        assert_int_equal(recv(fds[i], buf, sizeof(buf), MSG_WAITALL), 4);
    }
    usleep(50000); /* every thread back asleep, waiting for a request */

    uint64_t t0 = now_ms();
    server_stop(&s);
    uint64_t took = now_ms() - t0;
    print_message("hand-over of %d idle connections: model_run returned in %llu ms\n",
                  IDLE_CLIENTS, (unsigned long long)took);
    assert_true(took < HANDOVER_BOUND_MS);
    assert_int_equal(s.rc, 0);
    assert_int_equal(given, IDLE_CLIENTS);
    assert_int_equal(s.counters.given, IDLE_CLIENTS);
    assert_int_equal(s.counters.closed, 0);
    assert_int_equal(s.counters.active, 0);
    for (int i = 0; i < IDLE_CLIENTS; i++) {
        char buf[4];
        assert_int_equal(recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT), -1);
        assert_int_equal(errno, EAGAIN); /* no FIN, no reset */
    }
    for (int i = 0; i < IDLE_CLIENTS; i++) { /* given in any order */
        assert_int_equal(send(given_fds[i], "pong", 4, MSG_NOSIGNAL), 4);
        close(given_fds[i]);
    }
    for (int i = 0; i < IDLE_CLIENTS; i++) {
        char buf[4];
        assert_int_equal(recv(fds[i], buf, sizeof(buf), MSG_WAITALL), 4);
        assert_memory_equal(buf, "pong", 4);
        close(fds[i]);
    }
    handing_over = false;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(threads_end_before_model_run_returns),
        cmocka_unit_test(max_threads_refuses_at_accept),
        cmocka_unit_test(handover_wakes_sleeping_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
