/*
 * Scenario spread: several workers share one listening socket.
 *
 *  - spread: 8 clients connecting in a loop, 400 connections: all served,
 *    and the workers' accepted counts (from /metrics) add up to them.  The
 *    spread itself is logged, not bounded: EPOLLEXCLUSIVE wakes the first
 *    waiter that is idle in epoll_wait, so on a quiet machine, where the
 *    first worker is back in epoll_wait before the next client connects,
 *    it took 393 of 400 here (and 18-33 % each on a loaded one); the models
 *    that wake every idle worker give the connection to whichever runs
 *    first (20-79 %).  No share bound holds for epoll itself, so none can
 *    be "at least as even as EPOLLEXCLUSIVE" for the others.  What
 *    EPOLLEXCLUSIVE does guarantee is that a worker that is not waiting is
 *    not given connections — the stall test below, which io_uring's
 *    exclusive multishot accept failed (0 of 10 served).
 *  - stall: with one worker stopped (SIGSTOP), new connections are still
 *    served by the others — each worker in turn, since which one a model
 *    favours is its own business.  A connection the stopped worker had
 *    already accepted waits for it; one still in the listen queue must not.
 */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SPREAD_WORKERS 4
#define SPREAD_CLIENTS 8
#define SPREAD_CONNECTIONS 400
#define SPREAD_DEADLINE_MS 30000
#define STALL_CONNECTIONS 10
#define STALL_ECHO_MS 3000

/* Workers this scenario stopped: continued by the group teardown even when
 * an assertion failed, or the server could not be stopped. */
static pid_t stopped[64];
static int nstopped;

struct spread_load {
    int port;
    int64_t deadline;
    pthread_mutex_t lock;
    int started, served, failed;
    char why[256];
};

/* One connection: connect, echo 4 bytes, close.  0 or -1 with errno. */
static int spread_one(int port, int64_t deadline)
{
    int fd = it_connect_timeout(port, 5000);
    if (fd < 0)
        return -1;
    char buf[4];
    size_t got = 0;
    int rc = -1;
    if (send(fd, "ping", 4, MSG_NOSIGNAL) == 4) {
        while (got < 4 && it_now_ms() < deadline) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 100) < 0 && errno != EINTR)
                break;
            ssize_t n = recv(fd, buf + got, 4 - got, MSG_DONTWAIT);
            if (n > 0)
                got += (size_t)n;
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                break;
        }
        rc = got == 4 && memcmp(buf, "ping", 4) == 0 ? 0 : -1;
        if (rc != 0 && errno == 0)
            errno = got < 4 ? ETIMEDOUT : EPROTO;
    }
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

static void *spread_client(void *arg)
{
    struct spread_load *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->lock);
        bool more = l->started < SPREAD_CONNECTIONS && it_now_ms() < l->deadline &&
                    l->failed == 0;
        if (more)
            l->started++;
        pthread_mutex_unlock(&l->lock);
        if (!more)
            return NULL;
        errno = 0;
        int rc = spread_one(l->port, l->deadline);
        int err = errno;
        pthread_mutex_lock(&l->lock);
        if (rc == 0) {
            l->served++;
        } else if (l->failed++ == 0) {
            snprintf(l->why, sizeof l->why, "%s", strerror(err));
        }
        pthread_mutex_unlock(&l->lock);
    }
}

static int spread_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"workers = 4;", "status_listen = \"127.0.0.1:0\";",
                                        "drain_timeout = 2;", NULL};
    return it_group_start(lines);
}

static int spread_teardown(void **state)
{
    for (int i = 0; i < nstopped; i++)
        kill(stopped[i], SIGCONT);
    nstopped = 0;
    return it_group_teardown(state);
}

/* Accepted connections per worker of generation 1, from /metrics. */
static void spread_counts(int port, unsigned long long *count)
{
    char *resp = it_http_get(port, "/metrics");
    const char *body = resp ? strstr(resp, "\r\n\r\n") : NULL;
    IT_CHECK(body, "GET /metrics: %s", resp ? resp : "no answer");
    for (int w = 0; w < SPREAD_WORKERS; w++) {
        char label[64];
        snprintf(label, sizeof label, "generation=\"1\",worker=\"%d\"", w);
        count[w] = it_metric_sum(body + 4, "ioserve_connections_accepted_total", label);
    }
}

static void spread_even(void **state)
{
    (void)state;
    IT_BEGIN();
    int status = it_status_port(it_srv);
    IT_CHECK(status > 0, "no \"metrics on\" line in the log");
    unsigned long long before[SPREAD_WORKERS], after[SPREAD_WORKERS];
    spread_counts(status, before);

    struct spread_load l = {.port = it_srv->port,
                            .deadline = it_now_ms() + SPREAD_DEADLINE_MS};
    pthread_mutex_init(&l.lock, NULL);
    pthread_t t[SPREAD_CLIENTS];
    for (int i = 0; i < SPREAD_CLIENTS; i++)
        IT_CHECK(pthread_create(&t[i], NULL, spread_client, &l) == 0, "pthread_create");
    for (int i = 0; i < SPREAD_CLIENTS; i++)
        pthread_join(t[i], NULL);
    pthread_mutex_destroy(&l.lock);
    IT_CHECK(l.failed == 0 && l.served == SPREAD_CONNECTIONS,
             "%d of %d connections served within %d s; %d failed (first: %s)", l.served,
             SPREAD_CONNECTIONS, SPREAD_DEADLINE_MS / 1000, l.failed, l.why);

    spread_counts(status, after);
    unsigned long long total = 0;
    char line[256] = "";
    for (int w = 0; w < SPREAD_WORKERS; w++) {
        unsigned long long n = after[w] - before[w];
        total += n;
        size_t len = strlen(line);
        snprintf(line + len, sizeof line - len, " %llu", n);
    }
    it_log("%s: accepted per worker:%s", it_env.model, line);
    IT_CHECK(total == SPREAD_CONNECTIONS, "the workers counted %llu accepted, not %d",
             total, SPREAD_CONNECTIONS);
}

/* Waits until pid shows state T (stopped) in /proc/pid/stat. */
static int spread_is_stopped(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 200; i++) {
        char *stat = it_read_file(path, NULL);
        const char *paren = stat ? strrchr(stat, ')') : NULL;
        int stopped_now = paren && (paren[2] == 'T' || paren[2] == 't');
        free(stat);
        if (stopped_now)
            return 1;
        it_sleep_ms(5);
    }
    return 0;
}

static void spread_stall(void **state)
{
    (void)state;
    IT_BEGIN();
    pid_t kids[64];
    int n = it_children(it_srv->pid, kids, 64);
    IT_CHECK(n == SPREAD_WORKERS, "workers = %d: the master has %d children",
             SPREAD_WORKERS, n);
    for (int k = 0; k < n; k++) {
        IT_CHECK(kill(kids[k], SIGSTOP) == 0, "SIGSTOP %d: %s", (int)kids[k],
                 strerror(errno));
        stopped[nstopped++] = kids[k];
        IT_CHECK(spread_is_stopped(kids[k]), "worker %d did not stop", (int)kids[k]);
        int served = 0;
        char why[128] = "";
        for (int i = 0; i < STALL_CONNECTIONS; i++) {
            errno = 0;
            if (spread_one(it_srv->port, it_now_ms() + STALL_ECHO_MS) == 0)
                served++;
            else if (!why[0])
                snprintf(why, sizeof why, "connection %d: %s", i + 1, strerror(errno));
        }
        kill(kids[k], SIGCONT);
        nstopped--;
        it_log("worker %d of %d stopped: %d of %d new connections served", k + 1, n,
               served, STALL_CONNECTIONS);
        IT_CHECK(served == STALL_CONNECTIONS,
                 "with worker %d (pid %d) stopped, %d of %d new connections were served "
                 "within %d ms each (%s)",
                 k + 1, (int)kids[k], served, STALL_CONNECTIONS, STALL_ECHO_MS, why);
    }
}

int it_run_spread(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(spread_even),
        IT_TEST(spread_stall),
    };
    return cmocka_run_group_tests_name("spread", tests, spread_setup, spread_teardown);
}
