/*
 * Scenario soak: well-behaved HTTP clients in a request/response loop next
 * to hostile ones, for 4 s per model (IT_SOAK_SECONDS=N for up to 60):
 *
 *   good       keep-alive clients: pipelined GET/HEAD (some with bodies),
 *              now and then "Connection: close"; every byte checked
 *   halfclose  a request, shutdown(SHUT_WR), the response, then EOF
 *   slowloris  heads trickled a byte at a time (closed by header_timeout)
 *   garbage    random bytes, then wait for the server to close
 *   reset      connect-and-vanish, resets right away or mid-request, or
 *              with a burst of pipelined requests still being answered
 *   flood      pipelined requests or a huge body, never reading a reply,
 *              until backpressure stops the server; then reset or close
 *
 * Every well-behaved exchange must be right, and afterwards the worker's
 * descriptor count must be back where it was and its RSS close to it.
 * Each client thread runs on its own sockets (not the harness's tracked
 * ones) and stops by itself at the deadline or after a bounded count.
 */
#include "harness.h"
#include "hostile.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY "soak body 0123456789\n"
#define BODY_LEN (sizeof BODY - 1)
#define HEADER_TIMEOUT_MS 2000

static int soak_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "handler = \"http\";",
        "idle_timeout = 10;",
        "max_connections = 1000;",
        "http = { body = \"soak body 0123456789\\n\"; header_timeout = 2; };",
        NULL};
    return it_group_start(lines);
}

/* ------------------------------------------------------------- threads */

struct soak {
    int port;
    int64_t deadline;
    int max_iter; /* per thread, whatever the clock says: far more than the
                     fastest client manages in the phase */
    volatile int stop;
};

struct client {
    pthread_t tid;
    struct soak *s;
    const char *kind;
    unsigned id;
    uint64_t rng;
    /* results */
    unsigned long exchanges; /* well-behaved, verified */
    unsigned long actions;   /* hostile actions done */
    unsigned long errors;
    char first_error[256];
    long max_life_ms;        /* slowloris: longest a trickled head lived */
};

static uint64_t rnd(struct client *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return c->rng = x;
}

static unsigned rnd_below(struct client *c, unsigned n)
{
    return n ? (unsigned)(rnd(c) % n) : 0;
}

static void client_error(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_error(struct client *c, const char *fmt, ...)
{
    if (c->errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->first_error, sizeof c->first_error, fmt, ap);
        va_end(ap);
    }
}

static int running(struct client *c)
{
    return !c->s->stop && it_now_ms() < c->s->deadline;
}

/* Loops stop at the deadline, or after max_iter turns at the latest. */
static int more(struct client *c, int iteration)
{
    return iteration < c->s->max_iter && running(c);
}

/* -------------------------------------------------------- well-behaved */

/* One exchange of 1-3 pipelined requests on r.  `last`: the final request
 * asks to close.  0, or -1 (error recorded). */
static int good_exchange(struct client *c, struct hx_reader *r, int last)
{
    char req[8192];
    size_t len = 0;
    int n = 1 + (int)rnd_below(c, 3);
    int head[3];
    for (int i = 0; i < n; i++) {
        head[i] = rnd_below(c, 4) == 0;
        unsigned body = !head[i] && rnd_below(c, 3) == 0 ? rnd_below(c, 1500) : 0;
        len += (size_t)snprintf(req + len, sizeof req - len,
                                "%s /soak/%u/%lu HTTP/1.1\r\nHost: it\r\n"
                                "User-Agent: ioserve-it soak\r\n%s",
                                head[i] ? "HEAD" : "GET", c->id, c->exchanges,
                                last && i == n - 1 ? "Connection: close\r\n" : "");
        if (body)
            len += (size_t)snprintf(req + len, sizeof req - len,
                                    "Content-Length: %u\r\n", body);
        len += (size_t)snprintf(req + len, sizeof req - len, "\r\n");
        for (unsigned b = 0; b < body; b++)
            req[len++] = (char)('a' + rnd_below(c, 26));
    }
    int64_t deadline = it_now_ms() + 5000;
    if (hx_send_all(r->fd, req, len, deadline) != 0) {
        client_error(c, "%s %u: send: %s", c->kind, c->id, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        struct hx_resp resp;
        char why[256];
        if (hx_read_response(r, head[i], deadline, &resp, why, sizeof why) != 0) {
            client_error(c, "%s %u: response %d of %d: %s", c->kind, c->id,
                         i + 1, n, why);
            return -1;
        }
        int want_close = last && i == n - 1;
        if (resp.status != 200 || resp.content_length != (long)BODY_LEN ||
            resp.conn_close != want_close ||
            (!head[i] && (resp.body_len != BODY_LEN ||
                          memcmp(resp.body, BODY, BODY_LEN) != 0))) {
            client_error(c,
                         "%s %u: response %d of %d: status %d, length %ld, "
                         "close %d, body \"%.*s\"",
                         c->kind, c->id, i + 1, n, resp.status,
                         resp.content_length, resp.conn_close,
                         (int)resp.body_len, resp.body);
            return -1;
        }
        c->exchanges++;
    }
    if (last) {
        size_t junk = 0;
        if (hx_wait_closed(r->fd, it_now_ms() + 3000, &junk) != 1 || junk) {
            client_error(c, "%s %u: no EOF after \"Connection: close\" "
                            "(%zu more bytes)",
                         c->kind, c->id, junk);
            return -1;
        }
    }
    return 0;
}

static void *good_thread(void *arg)
{
    struct client *c = arg;
    struct hx_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->fd = -1;
    for (int i = 0; more(c, i); i++) {
        if (r->fd < 0) {
            r->fd = it_connect_timeout(c->s->port, 3000);
            r->len = 0;
            r->eof = 0;
            if (r->fd < 0) {
                client_error(c, "good %u: connect: %s", c->id, strerror(errno));
                break;
            }
        }
        int last = rnd_below(c, 30) == 0;
        if (good_exchange(c, r, last) != 0 || last) {
            close(r->fd);
            r->fd = -1;
        }
    }
    if (r->fd >= 0)
        close(r->fd);
    free(r);
    return NULL;
}

static void *halfclose_thread(void *arg)
{
    struct client *c = arg;
    struct hx_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    for (int i = 0; more(c, i); i++) {
        r->fd = it_connect_timeout(c->s->port, 3000);
        r->len = 0;
        r->eof = 0;
        if (r->fd < 0) {
            client_error(c, "halfclose: connect: %s", strerror(errno));
            break;
        }
        static const char two[] = "GET /a HTTP/1.1\r\nHost: it\r\n\r\n"
                                  "GET /b HTTP/1.1\r\nHost: it\r\n\r\n";
        int n = 1 + (i & 1);
        size_t len = n == 2 ? sizeof two - 1 : (sizeof two - 1) / 2;
        int64_t deadline = it_now_ms() + 5000;
        if (hx_send_all(r->fd, two, len, deadline) != 0 ||
            shutdown(r->fd, SHUT_WR) != 0) {
            client_error(c, "halfclose: send/shutdown: %s", strerror(errno));
            close(r->fd);
            break;
        }
        for (int k = 0; k < n; k++) {
            struct hx_resp resp;
            char why[256];
            if (hx_read_response(r, 0, deadline, &resp, why, sizeof why) != 0 ||
                resp.status != 200 || resp.body_len != BODY_LEN) {
                client_error(c, "halfclose: response %d of %d: %s (status %d)",
                             k + 1, n, why, resp.status);
                break;
            }
            c->exchanges++;
        }
        size_t junk = r->len;
        if (hx_wait_closed(r->fd, it_now_ms() + 3000, &junk) != 1 || junk)
            client_error(c, "halfclose: no EOF after the responses (%zu more "
                            "bytes)",
                         junk);
        close(r->fd);
    }
    free(r);
    return NULL;
}

/* ------------------------------------------------------------- hostile */

#define SLOW_CONNS 6

static void *slowloris_thread(void *arg)
{
    struct client *c = arg;
    int fd[SLOW_CONNS];
    int64_t born[SLOW_CONNS];
    for (int i = 0; i < SLOW_CONNS; i++)
        fd[i] = -1;
    static const char head[] = "GET /slow HTTP/1.1\r\nHost: it\r\nX-Slow: ";
    size_t pos[SLOW_CONNS] = {0};
    for (int it = 0; more(c, it); it++) {
        for (int i = 0; i < SLOW_CONNS; i++) {
            if (fd[i] < 0) {
                fd[i] = it_connect_timeout(c->s->port, 3000);
                born[i] = it_now_ms();
                pos[i] = 0;
                if (fd[i] < 0) {
                    client_error(c, "slowloris: connect: %s", strerror(errno));
                    goto out;
                }
                c->actions++;
            }
            /* one more byte of a head that never ends */
            char b = pos[i] < sizeof head - 1 ? head[pos[i]] : 'x';
            pos[i]++;
            if (send(fd[i], &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
                errno != EAGAIN) {
                long life = (long)(it_now_ms() - born[i]);
                if (life > c->max_life_ms)
                    c->max_life_ms = life;
                close(fd[i]);
                fd[i] = -1;
                continue;
            }
            if (it_peer_closed(fd[i], 0)) {
                long life = (long)(it_now_ms() - born[i]);
                if (life > c->max_life_ms)
                    c->max_life_ms = life;
                close(fd[i]);
                fd[i] = -1;
            } else if (it_now_ms() - born[i] > HEADER_TIMEOUT_MS + 2500) {
                client_error(c, "slowloris: a trickled head still open after "
                                "%lld ms (header_timeout = %d ms)",
                             (long long)(it_now_ms() - born[i]),
                             HEADER_TIMEOUT_MS);
                close(fd[i]);
                fd[i] = -1;
            }
        }
        it_sleep_ms(200);
    }
out:
    for (int i = 0; i < SLOW_CONNS; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    return NULL;
}

static void *garbage_thread(void *arg)
{
    struct client *c = arg;
    char buf[4096];
    for (int i = 0; more(c, i); i++) {
        int fd = it_connect_timeout(c->s->port, 3000);
        if (fd < 0) {
            client_error(c, "garbage: connect: %s", strerror(errno));
            break;
        }
        size_t n = 1 + rnd_below(c, sizeof buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = (char)rnd(c);
        if (i % 3 == 0) /* make it look like a request line first */
            memcpy(buf, "GET ", n < 4 ? n : 4);
        hx_send_all(fd, buf, n, it_now_ms() + 3000);
        c->actions++;
        /* Refused with 4xx, or held until header_timeout: closed either way. */
        size_t junk = 0;
        if (hx_wait_closed(fd, it_now_ms() + HEADER_TIMEOUT_MS + 2500, &junk) != 1)
            client_error(c, "garbage: %zu random bytes: connection still open "
                            "after %d ms",
                         n, HEADER_TIMEOUT_MS + 2500);
        close(fd);
    }
    return NULL;
}

#define VANISHED 8

static void *reset_thread(void *arg)
{
    struct client *c = arg;
    static const char partial[] = "GET /partial HTTP/1.1\r\nHost: i";
    static const char req[] = "GET /burst HTTP/1.1\r\nHost: it\r\n\r\n";
    char burst[64 * (sizeof req - 1)];
    for (size_t k = 0; k < 64; k++)
        memcpy(burst + k * (sizeof req - 1), req, sizeof req - 1);
    int vanished[VANISHED], nv = 0;
    for (int i = 0; more(c, i); i++) {
        int fd = it_connect_timeout(c->s->port, 3000);
        if (fd < 0) {
            client_error(c, "reset: connect: %s", strerror(errno));
            break;
        }
        switch (rnd_below(c, 5)) {
        case 0: /* connect and reset */
            hx_close_rst(fd);
            break;
        case 1: /* connect and leave */
            close(fd);
            break;
        case 2: /* reset mid-request */
            send(fd, partial, 1 + rnd_below(c, sizeof partial - 1),
                 MSG_NOSIGNAL | MSG_DONTWAIT);
            hx_close_rst(fd);
            break;
        case 3: /* reset while 64 replies are being written */
            send(fd, burst, sizeof burst, MSG_NOSIGNAL | MSG_DONTWAIT);
            it_sleep_ms((int)rnd_below(c, 3));
            hx_close_rst(fd);
            break;
        default: /* vanish: stay connected, say nothing, until the end */
            if (nv < VANISHED)
                vanished[nv++] = fd;
            else
                hx_close_rst(fd);
        }
        c->actions++;
        it_sleep_ms(2);
    }
    for (int i = 0; i < nv; i++)
        close(vanished[i]);
    return NULL;
}

static void *flood_thread(void *arg)
{
    struct client *c = arg;
    static const char req[] = "GET /flood HTTP/1.1\r\nHost: it\r\n\r\n";
    enum { CHUNK = 64 * 1024 };
    char *chunk = malloc(CHUNK);
    if (!chunk)
        return NULL;
    for (int i = 0; more(c, i); i++) {
        int fd = it_connect_timeout(c->s->port, 3000);
        if (fd < 0) {
            client_error(c, "flood: connect: %s", strerror(errno));
            break;
        }
        int huge_body = i & 1;
        size_t fill = 0;
        if (huge_body) { /* one GET with a 1 MB body, never read */
            int n = snprintf(chunk, CHUNK,
                             "GET /big HTTP/1.1\r\nHost: it\r\n"
                             "Content-Length: 1048576\r\n\r\n");
            memset(chunk + n, 'b', (size_t)(CHUNK - n));
        } else {
            for (; fill + sizeof req - 1 <= CHUNK; fill += sizeof req - 1)
                memcpy(chunk + fill, req, sizeof req - 1);
        }
        size_t len = huge_body ? CHUNK : fill, total = 0;
        int64_t stalled_since = -1;
        while (running(c) && total < 4u * 1024 * 1024) {
            ssize_t w = send(fd, chunk, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                total += (size_t)w;
                stalled_since = -1;
                if (huge_body && total >= 1048576) /* after the body, GETs */
                    break;
                continue;
            }
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                break;
            if (stalled_since < 0)
                stalled_since = it_now_ms();
            else if (it_now_ms() - stalled_since > 300)
                break; /* backpressure reached us */
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 50);
        }
        c->actions++;
        it_sleep_ms(100);
        if (rnd_below(c, 2))
            hx_close_rst(fd);
        else
            close(fd);
    }
    free(chunk);
    return NULL;
}

/* ------------------------------------------------------------- driver */

enum { N_GOOD = 3 };

static struct client g_clients[N_GOOD + 5];

static int run_phase(int port, int ms, uint64_t seed)
{
    static struct soak s;
    s.port = port;
    s.deadline = it_now_ms() + ms;
    s.max_iter = (ms / 1000 + 1) * 500000;
    s.stop = 0;
    struct {
        const char *kind;
        void *(*fn)(void *);
    } kinds[] = {{"good", good_thread},   {"good", good_thread},
                 {"good", good_thread},   {"halfclose", halfclose_thread},
                 {"slowloris", slowloris_thread},
                 {"garbage", garbage_thread}, {"reset", reset_thread},
                 {"flood", flood_thread}};
    int n = (int)(sizeof kinds / sizeof kinds[0]);
    memset(g_clients, 0, sizeof g_clients);
    int started = 0;
    for (int i = 0; i < n; i++) {
        struct client *c = &g_clients[i];
        c->s = &s;
        c->kind = kinds[i].kind;
        c->id = (unsigned)i;
        c->rng = seed * 0x9e3779b97f4a7c15ull + (uint64_t)i * 7919 + 1;
        if (pthread_create(&c->tid, NULL, kinds[i].fn, c) != 0) {
            it_log("pthread_create failed");
            s.stop = 1;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(g_clients[i].tid, NULL);
    return started == n ? 0 : -1;
}

static void report_phase(const char *phase, unsigned long *exchanges,
                         unsigned long *errors)
{
    unsigned long ex = 0, act = 0, err = 0;
    long life = 0;
    for (size_t i = 0; i < sizeof g_clients / sizeof g_clients[0]; i++) {
        struct client *c = &g_clients[i];
        ex += c->exchanges;
        act += c->actions;
        err += c->errors;
        if (c->max_life_ms > life)
            life = c->max_life_ms;
        if (c->errors)
            it_log("%s: %s client %u: %lu error(s), first: %s", phase, c->kind,
                   c->id, c->errors, c->first_error);
    }
    it_log("%s: %lu well-behaved exchanges verified, %lu hostile actions, "
           "%lu errors; longest slowloris head %ld ms",
           phase, ex, act, err, life);
    *exchanges = ex;
    *errors = err;
}

/* Waits until the worker is back to `fds` descriptors.  The count. */
static int settle_fds(pid_t w, int fds, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    int n = hx_fd_count(w);
    while (n > fds && it_now_ms() < end) {
        it_sleep_ms(50);
        n = hx_fd_count(w);
    }
    return n;
}

static void soak_mixed_clients(void **state)
{
    (void)state;
    IT_BEGIN();
    int seconds = 4;
    const char *env = getenv("IT_SOAK_SECONDS");
    if (env && atoi(env) > 0) /* at most 60: ioserve-it's watchdog is 90 s */
        seconds = atoi(env) < 60 ? atoi(env) : 60;
    pid_t w = hx_worker();
    IT_CHECK(w > 0, "no worker process");
    int fd0 = hx_fd_count(w);
    long rss0 = it_rss_kb(w);
    unsigned long ex, err;

    /* warm-up: caches, thread stacks and the allocator reach their size */
    IT_CHECK(run_phase(it_srv->port, 1000, 1) == 0, "could not start clients");
    report_phase("warm-up", &ex, &err);
    IT_CHECK(err == 0, "errors during the warm-up (see above)");
    int fd1 = settle_fds(w, fd0, 5000);
    long rss1 = it_rss_kb(w);
    IT_CHECK(fd1 <= fd0, "after the warm-up the worker holds %d descriptors, "
                         "%d before",
             fd1, fd0);

    IT_CHECK(run_phase(it_srv->port, seconds * 1000, 2) == 0,
             "could not start clients");
    report_phase("soak", &ex, &err);
    IT_CHECK(hx_worker() == w, "the worker changed during the soak (crashed?)");
    IT_CHECK(err == 0, "%lu errors during the soak (see above)", err);
    IT_CHECK(ex >= 100, "only %lu well-behaved exchanges in %d s", ex, seconds);

    int fd2 = settle_fds(w, fd0, 5000);
    long rss2 = it_rss_kb(w);
    it_log("worker pid %d: descriptors %d -> %d -> %d, RSS %ld -> %ld -> %ld kB "
           "(start, after warm-up, after soak)",
           (int)w, fd0, fd1, fd2, rss0, rss1, rss2);
    IT_CHECK(fd2 <= fd0, "descriptor leak: the worker holds %d descriptors "
                         "after the soak, %d before",
             fd2, fd0);
#if IT_SANITIZED
    /* ASan's quarantine and TSan's shadow hold freed memory: RSS says
     * nothing here, the sanitizer's own leak check does. */
    it_log("RSS not checked in a sanitizer build");
#else
    IT_CHECK(rss2 <= rss1 + 6 * 1024,
             "the worker's RSS grew from %ld kB to %ld kB during the soak",
             rss1, rss2);
#endif

    /* still serving */
    static struct hx_reader r;
    memset(&r, 0, sizeof r);
    r.fd = it_connect_timeout(it_srv->port, 3000);
    IT_CHECK(r.fd >= 0, "connect after the soak: %s", strerror(errno));
    it_track(r.fd);
    static const char get[] = "GET / HTTP/1.1\r\nHost: it\r\n\r\n";
    struct hx_resp resp;
    char why[256] = "";
    IT_CHECK(hx_send_all(r.fd, get, sizeof get - 1, it_now_ms() + 3000) == 0 &&
                 hx_read_response(&r, 0, it_now_ms() + 3000, &resp, why,
                                  sizeof why) == 0 &&
                 resp.status == 200,
             "request after the soak: %s", why);
    it_close(r.fd);
}

int it_run_soak(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(soak_mixed_clients),
    };
    return cmocka_run_group_tests_name("soak", tests, soak_setup,
                                       it_group_teardown);
}
