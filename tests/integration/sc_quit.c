/*
 * -s quit in front of a load balancer (ioserve(8), SIGNALS; ioserve.cfg(5),
 * quit_delay).  Per-model scenario quit (it.<model>.quit), one server per
 * test, workers = 1:
 *   delay        quit_delay = 2.5: after SIGQUIT /readyz is 503 "accepting
 *                for N more ms" while /healthz stays 200 and a NEW
 *                connection is still accepted and served; a connection held
 *                open keeps the master alive after the delay (the drain),
 *                and the master exits once it closes, not before the delay;
 *   second quit  quit_delay = 30: a second SIGQUIT skips the rest of the
 *                delay, the master exits within a few seconds;
 *   backlog      quit_delay = 0 and a burst of connections opened around
 *                SIGQUIT: each one is served (its echo comes back) or never
 *                completed its handshake (refused, or no answer by the
 *                deadline); none is reset or closed after its handshake
 *                without its reply — the connections queued in the listen
 *                backlog when the drain began are accepted and served.
 */
#include "clients.h"
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

static struct it_server q_srv;
static int q_started;

static int q_teardown(void **state)
{
    (void)state;
    it_close_all();
    if (q_started)
        it_stop_servers(&q_srv, 1, it_failed);
    q_started = 0;
    return 0;
}

/* Starts the test's server (config `name`, its own log) with `delay`
 * ("quit_delay = 2.5;"); its status port. */
static int q_start(const char *name, const char *delay)
{
    const char *const lines[] = {"status_listen = \"127.0.0.1:0\";", "workers = 1;",
                                 "drain_timeout = 30;", delay, NULL};
    char *cfg = it_write_config(name, lines);
    IT_CHECK(cfg, "cannot write the config");
    int rc = it_server_start(&q_srv, cfg);
    free(cfg);
    IT_CHECK(rc == 0, "the server did not start");
    q_started = 1;
    IT_CHECK(it_wait_log(&q_srv, 0, "metrics on http://", 5000), "no \"metrics on\" line");
    int port = it_status_port(&q_srv);
    IT_CHECK(port > 0, "no status port");
    cl_wait_probe(port, "/readyz", 200, "ready", 3000, NULL, 0);
    return port;
}

static void delay(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    int port = q_start("quit_delay", "quit_delay = 2.5;");
    int held = it_connect(q_srv.port);
    IT_CHECK(held >= 0, "connect: %s", it_errbuf);
    IT_ECHO(held, "held open", 9);
    int64_t t0 = it_now_ms();
    IT_CHECK(kill(q_srv.pid, SIGQUIT) == 0, "SIGQUIT: %s", strerror(errno));
    char body[512];
    cl_wait_probe(port, "/readyz", 503, "stopping: -s quit, accepting for", 1000, body,
                  sizeof body);
    it_log("/readyz during quit_delay: %s", body);
    cl_wait_probe(port, "/healthz", 200, "ok: generation 1 serving", 1000, NULL, 0);
    int fresh = it_connect(q_srv.port);
    IT_CHECK(fresh >= 0, "a new connection during quit_delay: %s", it_errbuf);
    IT_ECHO(fresh, "new client during the delay", 27);
    IT_ECHO(held, "held client during the delay", 28);
    it_close(fresh);
    IT_CHECK(it_now_ms() - t0 < 2200, "the checks took too long to be inside the delay");
    IT_CHECK(it_server_alive(&q_srv), "the master exited during quit_delay");
    /* After the delay: the drain, which waits for the held connection. */
    /* the delay's end, then the backlog's flush (100 ms at least) */
    IT_CHECK(it_wait_log(&q_srv, 0, "draining every generation", 3000 * IT_SLOWDOWN),
             "no drain logged after quit_delay");
    IT_CHECK(it_now_ms() - t0 >= 2400, "the drain began %lld ms after SIGQUIT, before "
             "quit_delay (2500 ms)", (long long)(it_now_ms() - t0));
    cl_wait_probe(port, "/readyz", 503, "stopping: draining for -s quit", 1000, NULL, 0);
    IT_ECHO(held, "held client while draining", 26);
    IT_CHECK(it_server_alive(&q_srv), "the master exited with a connection open");
    it_close(held);
    IT_CHECK(it_wait_exit(&q_srv, 5000 * IT_SLOWDOWN), "the master still runs 5 s after the drain's last "
             "connection closed");
    IT_CHECK(WIFEXITED(q_srv.status) && WEXITSTATUS(q_srv.status) == 0,
             "the master ended with status 0x%x", q_srv.status);
}

static void second_quit(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    int port = q_start("quit_twice", "quit_delay = 30;");
    int64_t t0 = it_now_ms();
    IT_CHECK(kill(q_srv.pid, SIGQUIT) == 0, "SIGQUIT: %s", strerror(errno));
    cl_wait_probe(port, "/readyz", 503, "accepting for", 1000, NULL, 0);
    IT_CHECK(it_server_alive(&q_srv), "the master exited at the first SIGQUIT");
    IT_CHECK(kill(q_srv.pid, SIGQUIT) == 0, "SIGQUIT: %s", strerror(errno));
    IT_CHECK(it_wait_exit(&q_srv, 5000 * IT_SLOWDOWN), "the master still runs 5 s after a second SIGQUIT "
             "(quit_delay 30 s)");
    IT_CHECK(WIFEXITED(q_srv.status) && WEXITSTATUS(q_srv.status) == 0,
             "the master ended with status 0x%x", q_srv.status);
    it_log("exited %lld ms after the first SIGQUIT", (long long)(it_now_ms() - t0));
}

/* ------------------------------------------------------------ backlog */

#define BURST 160
#define BURST_DEADLINE_MS (4000 * IT_SLOWDOWN)

enum burst_state { B_CONNECTING, B_WAITING, B_SERVED, B_NEVER, B_RESET, B_EOF };

struct burst_conn {
    int fd;
    enum burst_state st;
    char got[8];
    size_t ngot;
};

static const char ping[] = "ping\n";

static int open_nb(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The handshake is over: send the ping (it fits any socket buffer). */
static void handshake_done(struct burst_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        c->st = B_NEVER; /* refused: no handshake */
        return;
    }
    ssize_t n = send(c->fd, ping, sizeof ping - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    c->st = n == (ssize_t)(sizeof ping - 1) ? B_WAITING
            : (errno == ECONNRESET || errno == EPIPE) ? B_RESET : B_EOF;
}

static void reply_ready(struct burst_conn *c)
{
    ssize_t n = recv(c->fd, c->got + c->ngot, sizeof c->got - c->ngot, MSG_DONTWAIT);
    if (n > 0) {
        c->ngot += (size_t)n;
        if (c->ngot < sizeof ping - 1)
            return;
        c->st = memcmp(c->got, ping, sizeof ping - 1) == 0 ? B_SERVED : B_EOF;
        it_close(c->fd); /* the drain waits for it */
    } else if (n == 0) {
        c->st = B_EOF;
    } else if (errno != EAGAIN && errno != EINTR) {
        c->st = B_RESET;
    }
}

static void backlog(void **state)
{
    (void)state;
    if (it_skip)
        skip();
    q_start("quit_backlog", "quit_delay = 0;");
    static struct burst_conn conns[BURST];
    for (int i = 0; i < BURST; i++) {
        if (i == BURST / 2)
            IT_CHECK(kill(q_srv.pid, SIGQUIT) == 0, "SIGQUIT: %s", strerror(errno));
        conns[i] = (struct burst_conn){.fd = open_nb(q_srv.port), .st = B_CONNECTING};
        IT_CHECK(conns[i].fd >= 0, "socket/connect: %s", strerror(errno));
        it_track(conns[i].fd);
    }
    int64_t deadline = it_now_ms() + BURST_DEADLINE_MS;
    for (;;) {
        struct pollfd p[BURST];
        int idx[BURST], n = 0;
        for (int i = 0; i < BURST; i++) {
            if (conns[i].st != B_CONNECTING && conns[i].st != B_WAITING)
                continue;
            p[n] = (struct pollfd){.fd = conns[i].fd,
                                   .events = conns[i].st == B_CONNECTING ? POLLOUT : POLLIN};
            idx[n++] = i;
        }
        int64_t left = deadline - it_now_ms();
        if (n == 0 || left <= 0)
            break;
        if (poll(p, (nfds_t)n, (int)(left > 100 ? 100 : left)) < 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!p[k].revents)
                continue;
            struct burst_conn *c = &conns[idx[k]];
            if (c->st == B_CONNECTING)
                handshake_done(c);
            else
                reply_ready(c);
        }
    }
    int count[6] = {0};
    for (int i = 0; i < BURST; i++) {
        if (conns[i].st == B_WAITING)
            it_close(conns[i].fd);
        if (conns[i].st == B_CONNECTING)
            conns[i].st = B_NEVER; /* no answer to its SYN by the deadline */
        count[conns[i].st]++;
    }
    it_log("burst of %d around SIGQUIT: %d served, %d never accepted, %d reset, %d closed "
           "without a reply, %d waiting for a reply at the deadline",
           BURST, count[B_SERVED], count[B_NEVER], count[B_RESET], count[B_EOF],
           count[B_WAITING]);
    IT_CHECK(count[B_SERVED] > 0, "no connection of the burst was served");
    IT_CHECK(count[B_RESET] == 0 && count[B_EOF] == 0 && count[B_WAITING] == 0,
             "%d connection(s) reset, %d closed without a reply and %d unanswered after "
             "their handshake", count[B_RESET], count[B_EOF], count[B_WAITING]);
    IT_CHECK(it_wait_exit(&q_srv, 5000 * IT_SLOWDOWN), "the master still runs 5 s after -s quit");
}

int it_run_quit(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(delay, q_teardown),
        cmocka_unit_test_teardown(second_quit, q_teardown),
        cmocka_unit_test_teardown(backlog, q_teardown),
    };
    return cmocka_run_group_tests_name("quit", tests, NULL, NULL);
}
