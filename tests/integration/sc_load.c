/* Scenarios concurrent (200 clients at once) and slow_reader (32 MB echoed
 * to a client that reads slowly: backpressure keeps the worker's RSS flat). */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* =========================================================== concurrent */

#define N_CLIENTS 200
#define N_PIECES 4

struct client {
    int fd;
    int connected;
    int done;
    size_t len;
    char *payload;
    char *reply;
    size_t sent;
    size_t got;
};

static int concurrent_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";",
                                        "max_connections = 1024;", NULL};
    return it_group_start(lines);
}

static void free_clients(struct client *c, int n)
{
    for (int i = 0; i < n; i++) {
        free(c[i].payload);
        free(c[i].reply);
    }
    free(c);
}

static void concurrent_clients(void **state)
{
    (void)state;
    IT_BEGIN();
    struct client *c = calloc(N_CLIENTS, sizeof *c);
    struct pollfd *pfd = calloc(N_CLIENTS, sizeof *pfd);
    int *idx = calloc(N_CLIENTS, sizeof *idx);
    assert_non_null(c);
    assert_non_null(pfd);
    assert_non_null(idx);
    char why[1024] = "";

    for (int i = 0; i < N_CLIENTS; i++) {
        c[i].fd = -1;
        c[i].len = 2000 + (size_t)((i * 977) % 4000); /* 2..6 KB, distinct */
        c[i].payload = malloc(c[i].len);
        c[i].reply = malloc(c[i].len);
        if (!c[i].payload || !c[i].reply) {
            snprintf(why, sizeof why, "out of memory");
            goto out;
        }
        it_pattern(1000 + (uint64_t)i, 0, c[i].payload, c[i].len);
        /* the first bytes name the client, so a mix-up is obvious */
        char tag[32];
        int tl = snprintf(tag, sizeof tag, "client %03d:", i);
        memcpy(c[i].payload, tag, (size_t)tl);
    }

    /* 1. connect them all before any sends a byte */
    for (int i = 0; i < N_CLIENTS; i++) {
        c[i].fd = it_connect_nb(it_srv->port);
        if (c[i].fd < 0) {
            snprintf(why, sizeof why, "client %d: %s", i, it_errbuf);
            goto out;
        }
    }
    int64_t deadline = it_now_ms() + 10000;
    int connected = 0;
    while (connected < N_CLIENTS) {
        int n = 0;
        for (int i = 0; i < N_CLIENTS; i++) {
            if (c[i].connected)
                continue;
            pfd[n].fd = c[i].fd;
            pfd[n].events = POLLOUT;
            pfd[n].revents = 0;
            idx[n++] = i;
        }
        int64_t left = deadline - it_now_ms();
        if (left <= 0) {
            snprintf(why, sizeof why,
                     "only %d of %d clients connected within 10 s",
                     connected, N_CLIENTS);
            goto out;
        }
        int r = poll(pfd, (nfds_t)n, (int)left);
        if (r < 0 && errno != EINTR) {
            snprintf(why, sizeof why, "poll: %s", strerror(errno));
            goto out;
        }
        for (int k = 0; k < n && r > 0; k++) {
            if (!pfd[k].revents)
                continue;
            int i = idx[k], err = 0;
            socklen_t el = sizeof err;
            getsockopt(c[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err) {
                snprintf(why, sizeof why, "client %d: connect: %s", i,
                         strerror(err));
                goto out;
            }
            c[i].connected = 1;
            connected++;
        }
    }

    /* 2. every client sends its payload in pieces and reads its reply */
    deadline = it_now_ms() + 20000;
    int done = 0;
    while (done < N_CLIENTS) {
        int n = 0;
        for (int i = 0; i < N_CLIENTS; i++) {
            if (c[i].done)
                continue;
            pfd[n].fd = c[i].fd;
            pfd[n].events = POLLIN;
            if (c[i].sent < c[i].len)
                pfd[n].events |= POLLOUT;
            pfd[n].revents = 0;
            idx[n++] = i;
        }
        int64_t left = deadline - it_now_ms();
        if (left <= 0) {
            int stuck = -1;
            for (int i = 0; i < N_CLIENTS && stuck < 0; i++)
                if (!c[i].done)
                    stuck = i;
            snprintf(why, sizeof why,
                     "only %d of %d clients got their whole reply within "
                     "20 s (client %d: sent %zu of %zu, got %zu)",
                     done, N_CLIENTS, stuck, c[stuck].sent, c[stuck].len,
                     c[stuck].got);
            goto out;
        }
        int r = poll(pfd, (nfds_t)n, (int)left);
        if (r < 0 && errno != EINTR) {
            snprintf(why, sizeof why, "poll: %s", strerror(errno));
            goto out;
        }
        for (int k = 0; k < n && r > 0; k++) {
            int i = idx[k];
            struct client *cl = &c[i];
            if (pfd[k].revents & POLLOUT) {
                /* one piece per wake-up, so the server sees it in parts */
                size_t piece = cl->len / N_PIECES + 1;
                size_t want = cl->len - cl->sent;
                if (want > piece)
                    want = piece;
                ssize_t w = send(cl->fd, cl->payload + cl->sent, want,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (w > 0)
                    cl->sent += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    snprintf(why, sizeof why, "client %d: send: %s", i,
                             strerror(errno));
                    goto out;
                }
            }
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                char extra[1];
                ssize_t rd;
                if (cl->got < cl->len)
                    rd = recv(cl->fd, cl->reply + cl->got, cl->len - cl->got,
                              MSG_DONTWAIT);
                else
                    rd = recv(cl->fd, extra, 1, MSG_DONTWAIT);
                if (rd > 0) {
                    cl->got += (size_t)rd;
                } else if (rd == 0) {
                    snprintf(why, sizeof why,
                             "client %d: server closed after %zu of %zu "
                             "reply bytes (%zu sent)",
                             i, cl->got, cl->len, cl->sent);
                    goto out;
                } else if (errno != EAGAIN && errno != EINTR) {
                    snprintf(why, sizeof why, "client %d: recv: %s", i,
                             strerror(errno));
                    goto out;
                }
            }
            if (cl->got == cl->len && cl->sent == cl->len && !cl->done) {
                long d = it_first_diff(cl->reply, cl->payload, cl->len);
                if (d >= 0) {
                    snprintf(why, sizeof why,
                             "client %d: reply differs at byte %ld of %zu "
                             "(reply starts \"%.11s\")",
                             i, d, cl->len, cl->reply);
                    goto out;
                }
                cl->done = 1;
                done++;
            }
        }
    }
    /* every connection is still open and quiet: no extra bytes */
    for (int i = 0; i < N_CLIENTS; i++) {
        char b[1];
        ssize_t rd = recv(c[i].fd, b, 1, MSG_DONTWAIT);
        if (rd >= 0) {
            snprintf(why, sizeof why,
                     "client %d: %s after its full reply", i,
                     rd ? "extra bytes" : "EOF");
            goto out;
        }
    }
    it_log("%d concurrent clients served", N_CLIENTS);

out:
    for (int i = 0; i < N_CLIENTS; i++)
        if (c[i].fd >= 0)
            it_close(c[i].fd);
    free_clients(c, N_CLIENTS);
    free(pfd);
    free(idx);
    IT_CHECK(why[0] == 0, "%s", why);
}

int it_run_concurrent(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(concurrent_clients),
    };
    return cmocka_run_group_tests_name("concurrent", tests, concurrent_setup,
                                       it_group_teardown);
}

/* ========================================================== slow_reader */

#define SLOW_TOTAL (32u * 1024 * 1024)
#define SLOW_READ (64 * 1024)
#define SLOW_PERIOD_MS 3
#define SLOW_RSS_LIMIT_KB (16 * 1024)

static int slow_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";",
                                        "output_high_water = 65536;", NULL};
    return it_group_start(lines);
}

static long max_rss(const pid_t *pids, int n)
{
    long m = -1;
    for (int i = 0; i < n; i++) {
        long r = it_rss_kb(pids[i]);
        if (r > m)
            m = r;
    }
    return m;
}

static void slow_reader(void **state)
{
    (void)state;
    IT_BEGIN();
    IT_CHECK(it_srv->nworkers >= 1, "no worker process found");
    int fd;
    IT_CONNECT(fd);
    IT_ECHO(fd, "warm-up", 7);

    long rss0 = max_rss(it_srv->workers, it_srv->nworkers);
    IT_CHECK(rss0 > 0, "cannot read the worker's VmRSS");
    long rss_max = rss0;

    char *out = malloc(SLOW_READ), *in = malloc(SLOW_READ),
         *expect = malloc(SLOW_READ);
    assert_non_null(out);
    assert_non_null(in);
    assert_non_null(expect);
    char why[1024] = "";
    uint64_t sent = 0, got = 0;
    size_t out_len = 0, out_off = 0; /* out holds [sent - out_off, ...) */
    int64_t t0 = it_now_ms();
    int64_t deadline = t0 + 30000;
    /* a first pause without reading: a server without backpressure would
     * swallow most of the 32 MB right here */
    int64_t next_read = t0 + 300;
    int64_t next_sample = t0;

    while (got < SLOW_TOTAL) {
        int64_t now = it_now_ms();
        if (now > deadline) {
            snprintf(why, sizeof why,
                     "timed out after 30 s: %llu of %u bytes sent, %llu "
                     "echoed",
                     (unsigned long long)sent, SLOW_TOTAL,
                     (unsigned long long)got);
            break;
        }
        if (now >= next_sample) {
            long r = max_rss(it_srv->workers, it_srv->nworkers);
            if (r > rss_max)
                rss_max = r;
            next_sample = now + 20;
        }
        if (now >= next_read) {
            /* one slow read: up to 64 KB, then wait a few ms */
            size_t want = SLOW_READ;
            if (SLOW_TOTAL - got < want)
                want = (size_t)(SLOW_TOTAL - got);
            size_t have = 0;
            while (have < want) {
                ssize_t r = recv(fd, in + have, want - have, MSG_DONTWAIT);
                if (r > 0) {
                    have += (size_t)r;
                    continue;
                }
                if (r == 0) {
                    snprintf(why, sizeof why,
                             "server closed after %llu echoed bytes",
                             (unsigned long long)(got + have));
                } else if (errno != EAGAIN && errno != EINTR) {
                    snprintf(why, sizeof why, "recv: %s after %llu bytes",
                             strerror(errno),
                             (unsigned long long)(got + have));
                }
                break;
            }
            if (have) {
                it_pattern(42, got, expect, have);
                long d = it_first_diff(in, expect, have);
                if (d >= 0) {
                    snprintf(why, sizeof why,
                             "echo differs at byte %llu of the stream",
                             (unsigned long long)(got + (uint64_t)d));
                    break;
                }
                got += have;
            }
            if (why[0])
                break;
            next_read = it_now_ms() + SLOW_PERIOD_MS;
        }
        if (sent < SLOW_TOTAL) {
            if (out_off == out_len) {
                out_len = SLOW_READ;
                if (SLOW_TOTAL - sent < out_len)
                    out_len = (size_t)(SLOW_TOTAL - sent);
                it_pattern(42, sent, out, out_len);
                out_off = 0;
            }
            ssize_t w = send(fd, out + out_off, out_len - out_off,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                out_off += (size_t)w;
                sent += (uint64_t)w;
                continue;
            }
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                snprintf(why, sizeof why, "send: %s after %llu bytes",
                         strerror(errno), (unsigned long long)sent);
                break;
            }
        }
        /* wait for the socket to take more, or for the next read slot */
        int wait = (int)(next_read - it_now_ms());
        if (wait < 0)
            wait = 0;
        if (wait > 20)
            wait = 20;
        struct pollfd p = {fd, sent < SLOW_TOTAL ? POLLOUT : 0, 0};
        poll(&p, 1, wait);
    }
    int64_t elapsed = it_now_ms() - t0;
    long r = max_rss(it_srv->workers, it_srv->nworkers);
    if (r > rss_max)
        rss_max = r;
    free(out);
    free(in);
    free(expect);
    it_log("slow reader: %llu bytes echoed in %lld ms; worker VmRSS %ld kB "
           "at start, %ld kB at most (+%ld kB)",
           (unsigned long long)got, (long long)elapsed, rss0, rss_max,
           rss_max - rss0);
    IT_CHECK(why[0] == 0, "%s", why);
#if IT_SANITIZED
    /* ASan's quarantine keeps every freed buffer resident for a while
     * (TSan's shadow grows too): RSS says nothing in those builds. */
    it_log("(VmRSS bound not checked in a sanitizer build)");
#else
    IT_CHECK(rss_max - rss0 <= SLOW_RSS_LIMIT_KB,
             "worker VmRSS grew by %ld kB (from %ld to %ld kB) while a slow "
             "reader was sent %u bytes with output_high_water = 65536: no "
             "backpressure?",
             rss_max - rss0, rss0, rss_max, SLOW_TOTAL);
#endif
    /* the connection is still fine afterwards */
    IT_ECHO(fd, "done", 4);
    it_close(fd);
}

int it_run_slow_reader(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(slow_reader),
    };
    return cmocka_run_group_tests_name("slow_reader", tests, slow_setup,
                                       it_group_teardown);
}
