/*
 * The sigio model's recovery from a real-time signal queue overflow.
 *
 * The model runs in a child process (its signals are process-directed, and
 * a plugin's worker is a process of its own) with RLIMIT_SIGPENDING lowered
 * to a handful through its knob, so nearly every readiness signal overflows
 * into plain SIGIO.  Many clients stream data through the echo handler at
 * once; every byte must come back, the overflow must be logged, and on
 * drain the model must return 0 with the signal mask restored and nothing
 * left pending.
 *
 * The plugin's source is compiled into this test, so it runs without the
 * host or dlopen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "../../plugins/sigio.c"

#define CLIENTS 64
#define BYTES_PER_CLIENT (256 * 1024)
#define SEND_PIECE 1024
#define DEADLINE_MS 30000

/* Child exit codes besides model_run's verdict. */
#define EXIT_MASK_NOT_RESTORED 3
#define EXIT_SIGNALS_LEFT 4

/* ------------------------------------------------ the child's host side */

struct child_host {
    int log_fd;   /* info lines go to the parent through this pipe */
    int ready_fd;
    struct ios_counters counters;
};

static void child_log(const struct ios_handler *h, enum ios_log_level level, int err,
                      const char *fmt, ...)
{
    struct child_host *ch = h->host;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    (void)err;
    if (level <= IOS_LOG_INFO && write(ch->log_fd, line, (size_t)n) < 0)
        return; /* a full pipe only loses a line */
}

static void child_ready(const struct ios_handler *h)
{
    struct child_host *ch = h->host;
    if (write(ch->ready_fd, "R", 1) != 1)
        _exit(5);
}

static int child_knob_int(const struct ios_handler *h, const char *name, long long *v)
{
    (void)h;
    if (strcmp(name, "rlimit_sigpending") != 0)
        return -ENOENT;
    *v = 4;
    return 0;
}

static int echo_open(const struct ios_handler *h, void *state)
{
    (void)h, (void)state;
    return 0;
}

static ssize_t echo_data(const struct ios_handler *h, void *state, const char *in,
                         size_t len, struct ios_buf *out)
{
    (void)h, (void)state;
    return ios_buf_append(out, in, len) == 0 ? (ssize_t)len : IOS_DATA_CLOSE_NOW;
}

static void echo_close(const struct ios_handler *h, void *state)
{
    (void)h, (void)state;
}

static void run_child(int listen_fd, int stop_fd, int log_fd, int ready_fd)
{
    struct child_host ch = {.log_fd = log_fd, .ready_fd = ready_fd};
    struct ios_handler h = {
        .struct_size = sizeof(h),
        .protocol = "echo",
        .open = echo_open,
        .data = echo_data,
        .close = echo_close,
        .stop_fd = stop_fd,
        .ready = child_ready,
        .max_connections = 1000,
        .idle_timeout_ms = DEADLINE_MS,
        .read_chunk = 4096,
        .max_input = 65536,
        .output_high_water = 65536,
        .log = child_log,
        .knob_int = child_knob_int,
        .counters = &ch.counters,
        .host = &ch,
    };
    fcntl(log_fd, F_SETFL, O_NONBLOCK);
    int rc = model_run(listen_fd, &h);

    sigset_t now, pending;
    sigprocmask(SIG_SETMASK, NULL, &now);
    sigpending(&pending);
    if (sigismember(&now, SIGIO) || sigismember(&now, SIGRTMIN + 1))
        _exit(EXIT_MASK_NOT_RESTORED);
    if (sigismember(&pending, SIGIO) || sigismember(&pending, SIGRTMIN + 1))
        _exit(EXIT_SIGNALS_LEFT);
    _exit(rc == 0 ? 0 : 1);
}

/* ----------------------------------------------------------- the clients */

struct client {
    int fd;
    size_t sent, received;
};

static unsigned char pattern(int client, size_t offset)
{
    return (unsigned char)(client * 131 + offset * 7 + offset / 251);
}

static int64_t now_ms(void)
{
    return (int64_t)ioc_now_ms();
}

/* Streams BYTES_PER_CLIENT through every client at once; returns how many
 * clients got every byte back intact. */
static int stream_all(int port)
{
    struct client cl[CLIENTS];
    struct pollfd pfd[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        cl[i] = (struct client){.fd = socket(AF_INET, SOCK_STREAM, 0)};
        assert_true(cl[i].fd >= 0);
        assert_int_equal(connect(cl[i].fd, (struct sockaddr *)&a, sizeof(a)), 0);
        fcntl(cl[i].fd, F_SETFL, O_NONBLOCK);
    }
    int done = 0, corrupt = 0;
    int64_t deadline = now_ms() + DEADLINE_MS;
    while (done + corrupt < CLIENTS && now_ms() < deadline) {
        for (int i = 0; i < CLIENTS; i++) {
            bool open = cl[i].received < BYTES_PER_CLIENT && cl[i].fd >= 0;
            pfd[i] = (struct pollfd){
                .fd = open ? cl[i].fd : -1,
                .events = (short)(POLLIN | (cl[i].sent < BYTES_PER_CLIENT ? POLLOUT : 0))};
        }
        if (poll(pfd, CLIENTS, 100) <= 0)
            continue;
        for (int i = 0; i < CLIENTS; i++) {
            unsigned char buf[SEND_PIECE * 4];
            if ((pfd[i].revents & POLLOUT) && cl[i].sent < BYTES_PER_CLIENT) {
                size_t n = SEND_PIECE;
                for (size_t k = 0; k < n; k++)
                    buf[k] = pattern(i, cl[i].sent + k);
                ssize_t w = send(cl[i].fd, buf, n, MSG_NOSIGNAL);
                if (w > 0)
                    cl[i].sent += (size_t)w;
            }
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = recv(cl[i].fd, buf, sizeof(buf), 0);
                for (ssize_t k = 0; k < r; k++)
                    if (buf[k] != pattern(i, cl[i].received + (size_t)k)) {
                        print_error("client %d: byte %zu differs\n", i,
                                    cl[i].received + (size_t)k);
                        close(cl[i].fd);
                        cl[i].fd = -1;
                        corrupt++;
                        break;
                    }
                if (r == 0) {
                    print_error("client %d: closed after %zu bytes\n", i, cl[i].received);
                    close(cl[i].fd);
                    cl[i].fd = -1;
                    corrupt++;
                } else if (r > 0 && cl[i].fd >= 0) {
                    cl[i].received += (size_t)r;
                    done += cl[i].received == BYTES_PER_CLIENT;
                }
            }
        }
    }
    for (int i = 0; i < CLIENTS; i++)
        if (cl[i].fd >= 0)
            close(cl[i].fd);
    return done;
}

static void overflow_loses_nothing(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 128), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);

    int stop[2], logp[2], ready[2];
    assert_int_equal(pipe(stop), 0);
    assert_int_equal(pipe(logp), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(stop[1]);
        close(logp[0]);
        close(ready[0]);
        run_child(lfd, stop[0], logp[1], ready[1]);
    }
    close(stop[0]);
    close(logp[1]);
    close(ready[1]);
    char r;
    assert_int_equal(read(ready[0], &r, 1), 1);

    int done = stream_all(ntohs(a.sin_port));

    /* Drain, and wait (bounded) for the model to return. */
    assert_int_equal(write(stop[1], "q", 1), 1);
    int status = -1;
    for (int i = 0; i < 500 && waitpid(pid, &status, WNOHANG) == 0; i++)
        usleep(10000);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    char logbuf[8192];
    ssize_t n = read(logp[0], logbuf, sizeof(logbuf) - 1);
    logbuf[n > 0 ? n : 0] = '\0';
    close(logp[0]);
    close(ready[0]);
    close(stop[1]);
    close(lfd);

    assert_int_equal(done, CLIENTS);
    assert_non_null(strstr(logbuf, "overflowed (SIGIO): rescanned"));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ------------------------------------------------ adopting (ABI 1.2) */

/* The host hands over one end of a socketpair that a signal-driven giver
 * had routed to itself (O_ASYNC, owner: another process). */
static int handed_fd = -1;
static pid_t giver = -1;

static void giver_reap(void)
{
    kill(giver, SIGKILL);
    waitpid(giver, NULL, 0);
}

static int adopt_one(const struct ios_handler *h, int *fd, struct ios_buf *in)
{
    (void)h, (void)in;
    if (handed_fd < 0)
        return -EAGAIN;
    *fd = handed_fd;
    handed_fd = -1;
    return 0;
}

static void quiet(const struct ios_handler *h, enum ios_log_level level, int err,
                  const char *fmt, ...)
{
    (void)h, (void)level, (void)err, (void)fmt;
}

/* Returns the adopted connection's descriptor, after adoption through
 * `added` (NULL: a model that is not signal-driven). */
static int adopt_routed_socket(ioc_accept_hook added, struct sigio_model *m, int *peer)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    /* the giver's routing: the owner is another process, a child of ours
     * that only waits (a signal it should not get ends it, nobody else) */
    giver = fork();
    assert_true(giver >= 0);
    if (giver == 0) {
        /* gone with us, should an assertion end the test before it reaps */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(0);
        pause();
        _exit(0);
    }
    assert_int_equal(fcntl(sv[0], F_SETOWN, giver), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK | O_ASYNC), 0);
    handed_fd = sv[0];
    *peer = sv[1];
    static struct ios_counters counters;
    static struct ios_handler h;
    h = (struct ios_handler){
        .struct_size = sizeof(h), .protocol = "echo", .open = echo_open,
        .data = echo_data, .close = echo_close, .stop_fd = -1,
        .max_connections = 10, .idle_timeout_ms = 10000, .read_chunk = 4096,
        .max_input = 4096, .output_high_water = 65536, .log = quiet,
        .counters = &counters, .adopt = adopt_one,
        .adopt_fd = 0, /* any: the test calls ioc_adopt_pending itself */
    };
    *m = (struct sigio_model){.h = &h, .signo = SIGRTMIN + 1, .pid = getpid()};
    assert_int_equal(ioc_loop_init(&m->loop, &h), 0);
    m->loop.model = m;
    assert_int_equal(ioc_adopt_pending(&m->loop, added), 1);
    return sv[0];
}

/* A sigio adopter routes the socket to itself: the owner follows its
 * F_SETOWN, so the giver hears nothing more of it. */
static void adopted_socket_signals_its_adopter(void **state)
{
    (void)state;
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGRTMIN + 1);
    sigaddset(&mask, SIGIO);
    assert_int_equal(sigprocmask(SIG_BLOCK, &mask, &old), 0);
    struct sigio_model m;
    int peer;
    int fd = adopt_routed_socket(sigio_watch, &m, &peer);
    assert_int_equal(fcntl(fd, F_GETOWN), getpid());
    assert_int_equal(fcntl(fd, F_GETSIG), SIGRTMIN + 1);
    assert_true(fcntl(fd, F_GETFL) & O_ASYNC);
    ioc_loop_fini(&m.loop);
    close(peer);
    giver_reap();
    /* what the adopted socket raised meanwhile is ours: take it */
    struct timespec zero = {0};
    while (sigtimedwait(&mask, NULL, &zero) > 0)
        ;
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* Any other adopter: O_ASYNC is cleared, so the giver's signals stop. */
static void adopted_socket_loses_o_async(void **state)
{
    (void)state;
    struct sigio_model m;
    int peer;
    int fd = adopt_routed_socket(NULL, &m, &peer);
    assert_false(fcntl(fd, F_GETFL) & O_ASYNC);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ioc_loop_fini(&m.loop);
    close(peer);
    giver_reap();
}

/* A giver's socket keeps it as owner until the adopter routes the signal
 * to itself, so it can still raise the model's signal after the giver's
 * model_run has returned: that late signal must not end the giver. */
static void late_signal_after_teardown_is_harmless(void **state)
{
    (void)state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        static struct ios_handler h;
        h = (struct ios_handler){.struct_size = sizeof(h), .log = quiet};
        struct sigio_model m = {.h = &h, .sigfd = -1, .signo = SIGRTMIN + 1,
                                .pid = getpid()};
        if (sigio_setup(&m, 0) != 0)
            _exit(2);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
            fcntl(sv[0], F_SETOWN, getpid()) != 0 ||
            fcntl(sv[0], F_SETSIG, m.signo) != 0 ||
            fcntl(sv[0], F_SETFL, O_NONBLOCK | O_ASYNC) != 0)
            _exit(3);
        sigio_teardown(&m); /* the given socket (sv[0]) is still open */
        if (write(sv[1], "x", 1) != 1)
            _exit(4);
        struct timespec pause_ms = {0, 20 * 1000 * 1000};
        nanosleep(&pause_ms, NULL);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    if (WIFSIGNALED(status))
        fail_msg("the giver died of signal %d after its teardown", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(overflow_loses_nothing),
        cmocka_unit_test(adopted_socket_signals_its_adopter),
        cmocka_unit_test(adopted_socket_loses_o_async),
        cmocka_unit_test(late_signal_after_teardown_is_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
