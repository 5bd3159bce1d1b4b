/*
 * Hostile clients and hard limits, on every model:
 *   slowloris   http.header_timeout closes a client that trickles its head,
 *               while a keep-alive client idle between requests stays open;
 *   emfile      a worker out of descriptors neither spins nor crashes, and
 *               serves again once clients leave;
 *   many_conns  1,500 concurrent connections: select refuses those past
 *               FD_SETSIZE and serves the rest, sigio survives its signal
 *               queue overflowing, every other model serves them all;
 *   refusals    a flood past max_connections (and the blocking model's
 *               max_threads) is accepted and closed, logged once a second;
 * and once:
 *   privdrop    started as root with user = "nobody", the processes run as
 *               nobody and still serve.
 */
#include "harness.h"
#include "hostile.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ================================================================ helpers */

long hx_cpu_ms(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *text = it_read_file(path, NULL);
    if (!text)
        return -1;
    char *p = strrchr(text, ')'); /* comm may hold spaces */
    unsigned long long ut = 0, st = 0;
    int ok = p && sscanf(p + 2,
                         "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                         "%llu %llu",
                         &ut, &st) == 2;
    free(text);
    if (!ok)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    return (long)((ut + st) * 1000ull / (unsigned long long)hz);
}

int hx_fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

pid_t hx_worker(void)
{
    if (!it_srv || it_srv->pid <= 0)
        return 0;
    pid_t kids[64];
    int n = it_children(it_srv->pid, kids, 64);
    return n > 0 ? kids[0] : 0;
}

rlim_t hx_raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur >= want)
        return rl.rlim_cur;
    if (rl.rlim_max < want) {
        struct rlimit up = {want, want};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) /* root may raise both */
            return want;
    }
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return rl.rlim_cur;
}

void hx_close_rst(int fd)
{
    if (fd < 0)
        return;
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static int hx_poll(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - it_now_ms();
        struct pollfd p = {fd, ev, 0};
        int r = poll(&p, 1, left > 0 ? (int)left : 0);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

int hx_send_all(int fd, const void *p, size_t n, int64_t deadline)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(fd, (const char *)p + done, n - done,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (hx_poll(fd, POLLOUT, deadline) <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

int hx_wait_closed(int fd, int64_t deadline, size_t *junk)
{
    char buf[4096];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            if (junk)
                *junk += (size_t)r;
            continue;
        }
        if (r == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return 1; /* reset */
        if (hx_poll(fd, POLLIN, deadline) <= 0)
            return 0;
    }
}

static const char *find_crlfcrlf(const char *b, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (b[i] == '\r' && memcmp(b + i, "\r\n\r\n", 4) == 0)
            return b + i;
    return NULL;
}

/* Reads more into r.  1 = bytes, 0 = EOF/reset, -1 = timeout or error. */
static int hx_fill(struct hx_reader *r, int64_t deadline)
{
    for (;;) {
        if (r->len == sizeof r->buf) {
            errno = EMSGSIZE;
            return -1;
        }
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len,
                         MSG_DONTWAIT);
        if (n > 0) {
            r->len += (size_t)n;
            return 1;
        }
        if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) {
            r->eof = 1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (hx_poll(r->fd, POLLIN, deadline) <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

int hx_read_response(struct hx_reader *r, int head_only, int64_t deadline,
                     struct hx_resp *resp, char *why, size_t whylen)
{
    memset(resp, 0, sizeof *resp);
    resp->content_length = -1;
    const char *end;
    while (!(end = find_crlfcrlf(r->buf, r->len))) {
        int f = r->eof ? 0 : hx_fill(r, deadline);
        if (f == 0) {
            snprintf(why, whylen,
                     "connection closed before a whole response head (%zu "
                     "bytes: \"%.40s\")",
                     r->len, r->buf);
            errno = 0;
            return -1;
        }
        if (f < 0) {
            snprintf(why, whylen, "no whole response head (%zu bytes): %s",
                     r->len, strerror(errno));
            return -1;
        }
    }
    size_t hlen = (size_t)(end - r->buf) + 4;
    if (strncmp(r->buf, "HTTP/1.1 ", 9) != 0) {
        snprintf(why, whylen, "bad status line \"%.40s\"", r->buf);
        return -1;
    }
    resp->status = atoi(r->buf + 9);
    for (const char *l = r->buf; l && l < end;) {
        const char *nl = memchr(l, '\n', (size_t)(end - l));
        if (!nl)
            break;
        l = nl + 1;
        if (strncasecmp(l, "Content-Length:", 15) == 0)
            resp->content_length = strtol(l + 15, NULL, 10);
        else if (strncasecmp(l, "Connection: close", 17) == 0)
            resp->conn_close = 1;
    }
    memmove(r->buf, r->buf + hlen, r->len - hlen);
    r->len -= hlen;
    if (head_only)
        return 0;
    if (resp->content_length < 0) {
        snprintf(why, whylen, "response without Content-Length");
        return -1;
    }
    size_t want = (size_t)resp->content_length;
    if (want > sizeof r->buf) {
        snprintf(why, whylen, "body of %zu bytes", want);
        return -1;
    }
    while (r->len < want) {
        int f = r->eof ? 0 : hx_fill(r, deadline);
        if (f <= 0) {
            snprintf(why, whylen, "%zu of %zu body bytes: %s", r->len, want,
                     f == 0 ? "EOF" : strerror(errno));
            return -1;
        }
    }
    resp->body_len = want;
    memcpy(resp->body, r->buf,
           want < sizeof resp->body ? want : sizeof resp->body);
    memmove(r->buf, r->buf + want, r->len - want);
    r->len -= want;
    return 0;
}

/* ============================================================= slowloris */

#define HEADER_TIMEOUT_S 2

static int slowloris_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "handler = \"http\";",
        "idle_timeout = 10;",
        "http = { body = \"slow\\n\"; header_timeout = 2; };",
        NULL};
    return it_group_start(lines);
}

static const char GET[] = "GET / HTTP/1.1\r\nHost: it\r\n\r\n";

static void keepalive_get(struct hx_reader *r, const char *when)
{
    char why[256];
    struct hx_resp resp;
    IT_CHECK(hx_send_all(r->fd, GET, sizeof GET - 1, it_now_ms() + 3000) == 0,
             "keep-alive client, %s: send: %s", when, strerror(errno));
    IT_CHECK(hx_read_response(r, 0, it_now_ms() + 3000, &resp, why,
                              sizeof why) == 0,
             "keep-alive client, %s: %s", when, why);
    IT_CHECK(resp.status == 200 && resp.body_len == 5 &&
                 memcmp(resp.body, "slow\n", 5) == 0,
             "keep-alive client, %s: status %d, %zu body bytes", when,
             resp.status, resp.body_len);
}

/*
 * One client trickles a request head, a line every 0.5 s, so it is never
 * idle; another is idle for 3 s between two requests.  header_timeout = 2
 * must close the first at about 2 s; idle_timeout = 10 must spare the
 * second.
 */
static void slowloris_vs_keepalive(void **state)
{
    (void)state;
    IT_BEGIN();
    static struct hx_reader ka;
    memset(&ka, 0, sizeof ka);
    int slow;
    IT_CONNECT(slow);
    IT_CONNECT(ka.fd);
    keepalive_get(&ka, "first request");
    int64_t ka_idle_from = it_now_ms();

    int64_t t0 = it_now_ms();
    IT_CHECK(it_send_all(slow, "GET / HTTP/1.1\r\n", 16, 2000) == 0,
             "slow client: %s", it_errbuf);
    int64_t closed_at = -1, next_line = t0 + 500;
    int lines = 0, ka_second = 0;
    size_t junk = 0;
    while (it_now_ms() - t0 < 6000) {
        int64_t now = it_now_ms();
        if (!ka_second && now - ka_idle_from >= 3000) {
            keepalive_get(&ka, "after 3 s idle (> header_timeout)");
            ka_second = 1;
            continue;
        }
        if (closed_at >= 0) {
            if (ka_second)
                break;
            it_sleep_ms(50);
            continue;
        }
        if (now >= next_line) {
            char line[64];
            int n = snprintf(line, sizeof line, "X-Slow-%d: a header\r\n",
                             lines++);
            if (send(slow, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
                errno != EAGAIN) {
                closed_at = it_now_ms(); /* reset: the server closed it */
                continue;
            }
            next_line += 500;
            continue;
        }
        int64_t wait = next_line - now;
        if (wait > 100)
            wait = 100;
        if (it_peer_closed(slow, (int)wait)) {
            closed_at = it_now_ms();
            hx_wait_closed(slow, it_now_ms() + 200, &junk);
        }
    }
    IT_CHECK(closed_at >= 0,
             "a client sending a header line every 0.5 s was still open "
             "after 6 s (http.header_timeout = %d s, %d lines sent)",
             HEADER_TIMEOUT_S, lines);
    long after = (long)(closed_at - t0);
    it_log("slowloris client closed %ld ms after its first byte (%d header "
           "lines); keep-alive client answered after 3 s idle",
           after, lines);
    IT_CHECK(after >= HEADER_TIMEOUT_S * 1000 - 200,
             "slowloris client closed after only %ld ms", after);
    IT_CHECK(after <= HEADER_TIMEOUT_S * 1000 + 1500,
             "slowloris client closed only after %ld ms (header_timeout = "
             "%d s, idle_timeout = 10 s)",
             after, HEADER_TIMEOUT_S);
    IT_CHECK(junk == 0, "the slowloris client received %zu bytes", junk);
    IT_CHECK(ka_second, "the keep-alive client did not get its second turn");
    /* and it is still open: one more exchange */
    keepalive_get(&ka, "third request");
    it_close(slow);
    it_close(ka.fd);
}

/* Requests that finish are never timed: a client sending whole requests,
 * one every 0.7 s for 3 s, is served throughout. */
static void steady_requests_not_timed(void **state)
{
    (void)state;
    IT_BEGIN();
    static struct hx_reader r;
    memset(&r, 0, sizeof r);
    IT_CONNECT(r.fd);
    for (int i = 0; i < 5; i++) {
        char when[32];
        snprintf(when, sizeof when, "request %d", i + 1);
        keepalive_get(&r, when);
        it_sleep_ms(700);
    }
    it_close(r.fd);
}

int it_run_slowloris(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(slowloris_vs_keepalive),
        IT_TEST(steady_requests_not_timed),
    };
    return cmocka_run_group_tests_name("slowloris", tests, slowloris_setup,
                                       it_group_teardown);
}

/* ================================================================ emfile */

#define EMFILE_NOFILE 64
#define EMFILE_CLIENTS 150

/* The server inherits our limits: lower the soft one while it starts. */
static int emfile_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";",
                                        "max_connections = 1000;",
                                        "models = { blocking = { max_threads = "
                                        "1000; }; };",
                                        NULL};
    const char *const *use = lines;
    static const char *const plain[] = {"handler = \"echo\";",
                                        "max_connections = 1000;", NULL};
    if (strcmp(it_env.model, "blocking") != 0)
        use = plain;
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    struct rlimit low = {EMFILE_NOFILE, old.rlim_max};
    /* Files the harness opens while starting it are few and low. */
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) {
        it_fail("setrlimit(RLIMIT_NOFILE, %d): %s", EMFILE_NOFILE,
                strerror(errno));
        return -1;
    }
    int rc = it_group_start(use);
    setrlimit(RLIMIT_NOFILE, &old);
    return rc;
}

static int g_emfile_fds[EMFILE_CLIENTS];

static void emfile_no_spin(void **state)
{
    (void)state;
    IT_BEGIN();
    pid_t w = hx_worker();
    IT_CHECK(w > 0, "no worker process found");
    char lim[64];
    snprintf(lim, sizeof lim, "/proc/%d/limits", (int)w);
    char *limits = it_read_file(lim, NULL);
    IT_CHECK(limits && strstr(limits, "Max open files"),
             "cannot read %s", lim);
    free(limits);
    it_log("worker pid %d: %d descriptors open before the flood", (int)w,
           hx_fd_count(w));

    for (int i = 0; i < EMFILE_CLIENTS; i++)
        g_emfile_fds[i] = -1;
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        g_emfile_fds[i] = it_connect(it_srv->port);
        IT_CHECK(g_emfile_fds[i] >= 0, "client %d: %s", i, it_errbuf);
    }
    it_sleep_ms(500);

    /* 1. out of descriptors with clients waiting: no busy loop */
    long c0 = hx_cpu_ms(w);
    it_sleep_ms(2000);
    long c1 = hx_cpu_ms(w);
    IT_CHECK(c0 >= 0 && c1 >= 0, "cannot read the worker's CPU time");
    it_log("worker CPU time over 2 s with %d clients on %d descriptors: %ld ms",
           EMFILE_CLIENTS, EMFILE_NOFILE, c1 - c0);
    IT_CHECK(c1 - c0 <= 300,
             "the worker used %ld ms of CPU in 2 s while out of descriptors "
             "(busy loop?)",
             c1 - c0);
    IT_CHECK(hx_worker() == w, "the worker changed (crashed?)");

    /* 2. every client is either served or closed, none left hanging */
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "c%03d", i);
        send(g_emfile_fds[i], msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    int served = 0, closed = 0, hanging = 0;
    int64_t deadline = it_now_ms() + 5000;
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        char buf[16], msg[16];
        int n = snprintf(msg, sizeof msg, "c%03d", i);
        size_t got = 0;
        int64_t left = deadline - it_now_ms();
        ssize_t r = it_recv_exact(g_emfile_fds[i], buf, (size_t)n,
                                  left > 200 ? (int)left : 200, &got);
        if (r == n && memcmp(buf, msg, (size_t)n) == 0)
            served++;
        else if ((r >= 0 && got == 0) || (r < 0 && errno == ECONNRESET))
            closed++;
        else
            hanging++;
    }
    it_log("%d clients served, %d closed (refused), %d neither", served,
           closed, hanging);
    IT_CHECK(served >= EMFILE_NOFILE / 2,
             "only %d of %d clients were served with %d descriptors", served,
             EMFILE_CLIENTS, EMFILE_NOFILE);
    IT_CHECK(served < EMFILE_CLIENTS,
             "all %d clients served: the descriptor limit did not apply",
             EMFILE_CLIENTS);
    IT_CHECK(hanging == 0,
             "%d clients were neither served nor closed within 5 s", hanging);

    /* 3. the clients leave; new ones are served again */
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        it_close(g_emfile_fds[i]);
        g_emfile_fds[i] = -1;
    }
    int ok = 0, attempts = 0;
    char last[512] = "none";
    int64_t end = it_now_ms() + 5000;
    while (ok < 20 && it_now_ms() < end) {
        attempts++;
        int fd = it_connect(it_srv->port);
        if (fd >= 0 && it_roundtrip(fd, "again", 5, "again", 5, 1000) == 0) {
            g_emfile_fds[ok++] = fd;
            continue;
        }
        snprintf(last, sizeof last, "%s", it_errbuf);
        it_close(fd);
        it_sleep_ms(100);
    }
    IT_CHECK(ok == 20,
             "after the clients left only %d of 20 new clients were served "
             "(%d attempts; last error: %s)",
             ok, attempts, last);
    for (int i = 0; i < ok; i++)
        IT_ECHO(g_emfile_fds[i], "still here", 10);
    IT_CHECK(hx_worker() == w, "the worker changed (crashed?)");
    IT_CHECK(it_log_contains(it_srv, "EMFILE"),
             "the log does not mention running out of descriptors (EMFILE)");
    for (int i = 0; i < ok; i++)
        it_close(g_emfile_fds[i]);
}

int it_run_emfile(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(emfile_no_spin),
    };
    return cmocka_run_group_tests_name("emfile", tests, emfile_setup,
                                       it_group_teardown);
}

/* ============================================================ many_conns */

#define MANY 1500
#define MANY_BATCH 100
#define MANY_BYTES 8192

static int g_many[MANY];
static int g_many_n;
static pid_t g_many_stopped; /* a worker to SIGCONT if the test fails */

static int many_setup(void **state)
{
    (void)state;
    rlim_t lim = hx_raise_nofile(MANY + 1024);
    if (lim < MANY + 200) {
        it_skip_scenario("RLIMIT_NOFILE is %llu and cannot be raised to %d",
                      (unsigned long long)lim, MANY + 200);
        return 0;
    }
    const char *model = it_env.model;
    const char *knobs = NULL;
    if (strcmp(model, "blocking") == 0)
        knobs = "models = { blocking = { max_threads = 4000; }; };";
    else if (strcmp(model, "sigio") == 0)
        /* A queue of 64 signals for 1,500 busy sockets overflows for sure:
         * the SIGIO rescan path must lose nothing. */
        knobs = "models = { sigio = { rlimit_sigpending = 64; }; };";
    const char *lines[] = {"handler = \"echo\";", "max_connections = 4000;",
                           knobs, NULL};
    return it_group_start(lines);
}

static int many_teardown(void **state)
{
    if (g_many_stopped > 0) {
        kill(g_many_stopped, SIGCONT);
        g_many_stopped = 0;
    }
    for (int i = 0; i < g_many_n; i++)
        if (g_many[i] >= 0)
            close(g_many[i]);
    g_many_n = 0;
    return it_test_teardown(state);
}

/* Per connection: a tag round trip decides served (echoed) or refused
 * (closed by the server). */
static int tag_roundtrip(int fd, int i, int64_t deadline)
{
    char msg[16], buf[16];
    int n = snprintf(msg, sizeof msg, "m%05d\n", i);
    if (hx_send_all(fd, msg, (size_t)n, deadline) != 0)
        return errno == ETIMEDOUT ? -1 : 0;
    size_t got = 0;
    while (got < (size_t)n) {
        ssize_t r = recv(fd, buf + got, (size_t)n - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            return got == 0 ? 0 : -1;
        if (hx_poll(fd, POLLIN, deadline) <= 0)
            return -1;
    }
    return memcmp(buf, msg, (size_t)n) == 0 ? 1 : -1;
}

static void many_connections(void **state)
{
    (void)state;
    IT_BEGIN();
    int is_select = strcmp(it_env.model, "select") == 0;
    pid_t w = hx_worker();
    IT_CHECK(w > 0, "no worker process");
    static char served[MANY];
    int nserved = 0, nrefused = 0;
    memset(served, 0, sizeof served);

    /* 1. connect in batches (within the backlog), each checked at once */
    for (int b = 0; b < MANY; b += MANY_BATCH) {
        for (int i = b; i < b + MANY_BATCH; i++) {
            g_many[i] = it_connect_timeout(it_srv->port, 5000);
            IT_CHECK(g_many[i] >= 0, "connection %d: connect: %s", i,
                     strerror(errno));
            g_many_n = i + 1;
        }
        for (int i = b; i < b + MANY_BATCH; i++) {
            int r = tag_roundtrip(g_many[i], i, it_now_ms() + 5000);
            IT_CHECK(r >= 0,
                     "connection %d: neither echoed nor closed within 5 s",
                     i);
            served[i] = (char)r;
            if (r)
                nserved++;
            else
                nrefused++;
        }
    }
    it_log("%d connections: %d served, %d refused; worker has %d "
           "descriptors open",
           MANY, nserved, nrefused, hx_fd_count(w));
    if (is_select) {
        IT_CHECK(nserved >= 1000 && nserved < 1024,
                 "select served %d connections (expected all those below "
                 "FD_SETSIZE = 1024, about 1,015)",
                 nserved);
        IT_CHECK(it_log_contains(it_srv, "FD_SETSIZE"),
                 "the refusals past FD_SETSIZE were not logged");
        for (int i = 0; i < nserved; i++)
            IT_CHECK(served[i], "connection %d was refused before %d others "
                                "were served",
                     i, nserved);
    } else {
        IT_CHECK(nrefused == 0, "%d of %d connections were refused",
                 nrefused, MANY);
    }

    /* 2. every served connection sends MANY_BYTES at once; all echoed */
    struct pollfd *pf = calloc(MANY, sizeof *pf);
    size_t *sent = calloc(MANY, sizeof *sent), *got = calloc(MANY, sizeof *got);
    int *idx = calloc(MANY, sizeof *idx);
    char *data = malloc(MANY_BYTES), *in = malloc(MANY_BYTES);
    IT_CHECK(pf && sent && got && idx && data && in, "out of memory");
    int live = 0;
    for (int i = 0; i < MANY; i++)
        if (served[i])
            idx[live++] = i;
    int done = 0, bad = -1;
    long bad_at = -1;
    int64_t t0 = it_now_ms(), deadline = t0 + 30000;
    /* Really at once: every client's bytes arrive while the worker is
     * stopped, so it wakes up to 1,500 ready sockets (and sigio to a
     * signal queue that overflowed long ago). */
    IT_CHECK(kill(w, SIGSTOP) == 0, "kill(SIGSTOP): %s", strerror(errno));
    g_many_stopped = w;
    for (int64_t end = it_now_ms() + 2000; it_now_ms() < end; it_sleep_ms(5)) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)w);
        char *st = it_read_file(path, NULL);
        char *p = st ? strrchr(st, ')') : NULL;
        int stopped = p && (p[2] == 'T' || p[2] == 't');
        free(st);
        if (stopped)
            break;
    }
    for (int k = 0; k < live; k++) {
        int i = idx[k];
        it_pattern((uint64_t)i, 0, data, MANY_BYTES);
        ssize_t s = send(g_many[i], data, MANY_BYTES, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (s > 0)
            sent[i] = (size_t)s;
    }
    kill(w, SIGCONT);
    g_many_stopped = 0;
    while (done < live && it_now_ms() < deadline && bad < 0) {
        int n = 0;
        for (int k = 0; k < live; k++) {
            int i = idx[k];
            if (got[i] == MANY_BYTES)
                continue;
            pf[n].fd = g_many[i];
            pf[n].events = (short)(POLLIN | (sent[i] < MANY_BYTES ? POLLOUT : 0));
            pf[n].revents = 0;
            n++;
        }
        int r = poll(pf, (nfds_t)n, 1000);
        if (r <= 0)
            continue;
        for (int k = 0, j = 0; k < live && j < n; k++) {
            int i = idx[k];
            if (got[i] == MANY_BYTES)
                continue;
            short re = pf[j++].revents;
            if ((re & POLLOUT) && sent[i] < MANY_BYTES) {
                it_pattern((uint64_t)i, sent[i], data, MANY_BYTES - sent[i]);
                ssize_t s = send(g_many[i], data, MANY_BYTES - sent[i],
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (s > 0)
                    sent[i] += (size_t)s;
            }
            if (re & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t g = recv(g_many[i], in, MANY_BYTES - got[i], MSG_DONTWAIT);
                if (g > 0) {
                    it_pattern((uint64_t)i, got[i], data, (size_t)g);
                    long d = it_first_diff(in, data, (size_t)g);
                    if (d >= 0) {
                        bad = i;
                        bad_at = (long)got[i] + d;
                    }
                    got[i] += (size_t)g;
                    if (got[i] == MANY_BYTES)
                        done++;
                } else if (g == 0 || (errno != EAGAIN && errno != EINTR)) {
                    bad = i;
                    bad_at = -2;
                }
            }
        }
    }
    long elapsed = (long)(it_now_ms() - t0);
    size_t total = 0;
    for (int k = 0; k < live; k++)
        total += got[idx[k]];
    free(pf);
    free(sent);
    free(got);
    free(idx);
    free(data);
    free(in);
    it_log("%d connections writing %d bytes at once: %d complete, %zu bytes "
           "echoed in %ld ms",
           live, MANY_BYTES, done, total, elapsed);
    IT_CHECK(bad < 0, "connection %d: %s at byte %ld", bad,
             bad_at == -2 ? "closed or failed" : "wrong byte", bad_at);
    IT_CHECK(done == live,
             "only %d of %d connections got all %d bytes back within 30 s",
             done, live, MANY_BYTES);
    if (strcmp(it_env.model, "sigio") == 0) {
        /* logged once the rescan is over, maybe after the clients got
         * their bytes */
        int ovf = 0;
        for (int64_t end = it_now_ms() + 3000; !ovf && it_now_ms() < end;
             it_sleep_ms(20))
            ovf = it_log_contains(it_srv, "overflowed");
        it_log("sigio signal queue overflow %s", ovf ? "seen and recovered"
                                                     : "not seen");
        IT_CHECK(ovf, "with rlimit_sigpending = 64 the sigio queue never "
                      "overflowed: the recovery path was not exercised");
    }

    /* 3. the worker is the same and takes new clients */
    IT_CHECK(hx_worker() == w, "the worker changed (crashed?)");
    for (int i = 0; i < g_many_n; i++) {
        close(g_many[i]);
        g_many[i] = -1;
    }
    g_many_n = 0;
    int fd = -1, ok = 0;
    int64_t end = it_now_ms() + 5000;
    while (!ok && it_now_ms() < end) {
        fd = it_connect(it_srv->port);
        ok = fd >= 0 && it_roundtrip(fd, "after", 5, "after", 5, 1000) == 0;
        if (!ok) {
            it_close(fd);
            it_sleep_ms(100);
        }
    }
    IT_CHECK(ok, "no new client served after the crowd left: %s", it_errbuf);
    it_close(fd);
}

int it_run_many_conns(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(many_connections, it_test_setup,
                                        many_teardown),
    };
    return cmocka_run_group_tests_name("many_conns", tests, many_setup,
                                       it_group_teardown);
}

/* ============================================================== privdrop */

static uid_t g_nobody_uid;
static gid_t g_nobody_gid;

/* 1 when every directory of path can be searched by others and the last
 * component read (what a process running as nobody needs). */
static int others_can_reach(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    struct stat st;
    if (stat(buf, &st) != 0 || !(st.st_mode & S_IROTH))
        return 0;
    for (char *slash = strrchr(buf, '/'); slash && slash > buf;
         slash = strrchr(buf, '/')) {
        *slash = 0;
        if (stat(buf, &st) != 0 || !(st.st_mode & S_IXOTH))
            return 0;
    }
    return 1;
}

static int privdrop_setup(void **state)
{
    (void)state;
    if (geteuid() != 0)
        return it_skip_scenario("not running as root: no privileges to drop");
    struct passwd *pw = getpwnam("nobody");
    if (!pw)
        return it_skip_scenario("no user 'nobody' on this machine");
    g_nobody_uid = pw->pw_uid;
    g_nobody_gid = pw->pw_gid;
    if (!others_can_reach(it_env.plugin_dir))
        return it_skip_scenario("%s is not readable by others: a worker running "
                             "as nobody could not load its plugin",
                             it_env.plugin_dir);
    static const char *const lines[] = {"handler = \"echo\";",
                                        "user = \"nobody\";", "workers = 2;",
                                        NULL};
    return it_group_start(lines);
}

/* The four ids of a "Uid:" or "Gid:" line of /proc/pid/status. */
static int proc_ids(pid_t pid, const char *key, unsigned long ids[4])
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = it_read_file(path, NULL);
    if (!text)
        return -1;
    char *p = strstr(text, key);
    int n = p ? sscanf(p + strlen(key), "%lu %lu %lu %lu", &ids[0], &ids[1],
                       &ids[2], &ids[3])
              : 0;
    free(text);
    return n == 4 ? 0 : -1;
}

static void check_ids(pid_t pid, const char *what)
{
    unsigned long u[4], g[4];
    IT_CHECK(proc_ids(pid, "Uid:", u) == 0 && proc_ids(pid, "Gid:", g) == 0,
             "cannot read the ids of %s pid %d", what, (int)pid);
    for (int i = 0; i < 4; i++) {
        IT_CHECK(u[i] == g_nobody_uid,
                 "%s pid %d runs with uids %lu %lu %lu %lu, expected nobody "
                 "(%lu)",
                 what, (int)pid, u[0], u[1], u[2], u[3],
                 (unsigned long)g_nobody_uid);
        IT_CHECK(g[i] == g_nobody_gid,
                 "%s pid %d runs with gids %lu %lu %lu %lu, expected %lu",
                 what, (int)pid, g[0], g[1], g[2], g[3],
                 (unsigned long)g_nobody_gid);
    }
}

/* The rest of "for good": the supplementary groups are nobody's own (not
 * root's), and no capability is left to regain root with. */
static void check_groups_and_caps(pid_t pid, const char *what)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = it_read_file(path, NULL);
    IT_CHECK(text, "cannot read %s", path);
    gid_t want[64];
    int nwant = 64;
    if (getgrouplist("nobody", g_nobody_gid, want, &nwant) < 0)
        nwant = 0;
    const char *line = strstr(text, "\nGroups:");
    char groups[512] = "";
    if (line)
        sscanf(line + 8, "%511[^\n]", groups);
    int ngot = 0, stray = -1;
    for (char *save = NULL, *tok = strtok_r(groups, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save)) {
        unsigned long g = strtoul(tok, NULL, 10);
        int known = 0;
        for (int i = 0; i < nwant; i++)
            known |= want[i] == (gid_t)g;
        if (!known && stray < 0)
            stray = (int)g;
        ngot++;
    }
    unsigned long long prm = 1, eff = 1;
    const char *cp = strstr(text, "\nCapPrm:");
    const char *ce = strstr(text, "\nCapEff:");
    if (cp)
        sscanf(cp + 9, "%llx", &prm);
    if (ce)
        sscanf(ce + 9, "%llx", &eff);
    free(text);
    IT_CHECK(line, "%s pid %d: no Groups: line", what, (int)pid);
    IT_CHECK(stray < 0, "%s pid %d keeps supplementary group %d, not one of nobody's", what,
             (int)pid, stray);
    IT_CHECK(ngot <= nwant, "%s pid %d has %d groups, nobody has %d", what, (int)pid, ngot,
             nwant);
    IT_CHECK(cp && ce && prm == 0 && eff == 0,
             "%s pid %d keeps capabilities (CapPrm %llx, CapEff %llx): root could be "
             "regained",
             what, (int)pid, prm, eff);
}

static void privdrop_workers_are_nobody(void **state)
{
    (void)state;
    IT_BEGIN();
    check_ids(it_srv->pid, "master");
    check_groups_and_caps(it_srv->pid, "master");
    pid_t kids[64];
    int n = it_children(it_srv->pid, kids, 64);
    IT_CHECK(n == 2, "%d workers, expected 2", n);
    for (int i = 0; i < n; i++) {
        check_ids(kids[i], "worker");
        check_groups_and_caps(kids[i], "worker");
    }
    it_log("master and %d workers run as uid %lu", n,
           (unsigned long)g_nobody_uid);
    for (int i = 0; i < 4; i++) {
        int fd;
        IT_CONNECT(fd);
        IT_ECHO(fd, "served as nobody", 16);
        it_close(fd);
    }
}

/* A master started with supplementary groups of its own (here given to
 * ioserve-it, which it inherits) must not pass them on: initgroups
 * replaces them by nobody's. */
static struct it_server g_grouped;

static int grouped_teardown(void **state)
{
    (void)state;
    setgroups(0, NULL);
    if (g_grouped.pid > 0 && it_server_stop(&g_grouped) != 0)
        it_failed = 1;
    return 0;
}

static void privdrop_supplementary_groups_dropped(void **state)
{
    (void)state;
    IT_BEGIN();
    gid_t extra[] = {0, 4, 27}; /* root, adm, sudo on Debian: any will do */
    IT_CHECK(setgroups(3, extra) == 0, "setgroups: %s", strerror(errno));
    static const char *const lines[] = {"user = \"nobody\";", NULL};
    char *cfg = it_write_config("privdrop-groups", lines);
    IT_CHECK(cfg != NULL, "cannot write a config");
    int rc = it_server_start(&g_grouped, cfg);
    free(cfg);
    setgroups(0, NULL);
    IT_CHECK(rc == 0, "the server did not start");
    check_groups_and_caps(g_grouped.pid, "master");
    pid_t kids[8];
    int n = it_children(g_grouped.pid, kids, 8);
    IT_CHECK(n == 1, "%d workers, expected 1", n);
    check_groups_and_caps(kids[0], "worker");
}

static void privdrop_unknown_user(void **state)
{
    (void)state;
    IT_BEGIN();
    static const char *const lines[] = {"user = \"no-such-user-ioserve\";",
                                        NULL};
    char *cfg = it_write_config("privdrop-bad", lines);
    IT_CHECK(cfg != NULL, "cannot write a config");
    char *argv[] = {(char *)it_env.bin, "-c", cfg, NULL};
    char *out = NULL;
    int st = it_run(argv, 10000, "listening on", &out, NULL);
    free(cfg);
    int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1 &&
             strstr(out, "no-such-user-ioserve");
    if (!ok)
        it_log("output: %s", out);
    free(out);
    IT_CHECK(ok, "an unknown user was not refused with exit 1 and a message");
}

/* Copies a file byte for byte; 0 or -1. */
static int copy_file(const char *from, const char *to, mode_t mode)
{
    size_t len = 0;
    char *bytes = it_read_file(from, &len);
    int fd = bytes ? open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode) : -1;
    int ok = fd >= 0 && write(fd, bytes, len) == (ssize_t)len;
    if (fd >= 0)
        close(fd);
    free(bytes);
    return ok ? 0 : -1;
}

/* -t checks as the workers will run: a plugin that root can read but
 * `user` cannot is reported, not passed. */
static void privdrop_check_runs_as_user(void **state)
{
    (void)state;
    IT_BEGIN();
    char dir[1024], so[1100], from[1100], model[1200];
    snprintf(dir, sizeof dir, "%s/root-only", it_tmpdir());
    snprintf(so, sizeof so, "%s/epoll.so", dir);
    snprintf(from, sizeof from, "%s/epoll.so", it_env.plugin_dir);
    IT_CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s", dir);
    IT_CHECK(copy_file(from, so, 0644) == 0, "cannot copy %s to %s", from, so);
    snprintf(model, sizeof model, "model = \"%s\";", so);
    const char *lines[] = {model, "user = \"nobody\";", NULL};
    char *cfg = it_write_config("privdrop-check", lines);
    IT_CHECK(cfg != NULL, "cannot write a config");
    char *argv[] = {(char *)it_env.bin, "-c", cfg, "-t", NULL};
    char *out = NULL;
    int st = it_run(argv, 10000, NULL, &out, NULL);
    free(cfg);
    int ok = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(out, so);
    if (!ok)
        it_log("output: %s", out);
    free(out);
    unlink(so);
    rmdir(dir);
    IT_CHECK(ok, "-t passed a plugin that user nobody cannot read");
}

int it_run_privdrop(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(privdrop_workers_are_nobody),
        cmocka_unit_test_teardown(privdrop_supplementary_groups_dropped, grouped_teardown),
        IT_TEST(privdrop_unknown_user),
        IT_TEST(privdrop_check_runs_as_user),
    };
    return cmocka_run_group_tests_name("privdrop", tests, privdrop_setup,
                                       it_group_teardown);
}

/* ============================================================= refusals */

#define KEPT 3
#define FLOOD 150

static int refusals_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {"handler = \"echo\";",
                                        "max_connections = 3;", NULL};
    return it_group_start(lines);
}

static int threads_setup(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "handler = \"echo\";", "max_connections = 100;",
        "models = { blocking = { max_threads = 3; }; };", NULL};
    return it_group_start(lines);
}

/* Lines of the server log that contain `needle`. */
static int log_count(const char *needle)
{
    char *text = it_read_file(it_srv->log, NULL);
    int n = 0;
    for (char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(text);
    return n;
}

/*
 * KEPT connections fill the limit, then FLOOD more arrive as fast as they
 * can: each is accepted and closed at once with no byte sent, the log
 * says so at most about once a second, and the KEPT are not disturbed.
 */
static void flood_over_limit(const char *log_needle)
{
    int kept[KEPT];
    for (int i = 0; i < KEPT; i++) {
        IT_CONNECT(kept[i]);
        IT_ECHO(kept[i], "kept", 4);
    }
    int64_t t0 = it_now_ms();
    int closed = 0;
    for (int i = 0; i < FLOOD; i++) {
        int fd = it_connect_timeout(it_srv->port, 3000);
        IT_CHECK(fd >= 0, "flood connection %d: %s", i, strerror(errno));
        size_t junk = 0;
        int c = hx_wait_closed(fd, it_now_ms() + 3000, &junk);
        close(fd);
        IT_CHECK(c == 1 && junk == 0,
                 "flood connection %d over the limit: %s", i,
                 c != 1 ? "not closed within 3 s" : "got bytes");
        closed++;
    }
    long ms = (long)(it_now_ms() - t0);
    /* the worker logs a refusal after closing it: wait for its line */
    int lines = 0;
    for (int64_t end = it_now_ms() + 2000; (lines = log_count(log_needle)) == 0 && it_now_ms() < end;)
        it_sleep_ms(10);
    it_log("%d connections over the limit refused in %ld ms; %d log line(s)",
           closed, ms, lines);
    IT_CHECK(lines >= 1, "the refusals were not logged (\"%s\")", log_needle);
    IT_CHECK(lines <= 2 + ms / 1000,
             "%d log lines for %d refusals in %ld ms: not rate-limited", lines,
             closed, ms);
    for (int i = 0; i < KEPT; i++) {
        IT_ECHO(kept[i], "still kept", 10);
        it_close(kept[i]);
    }
}

static void max_connections_flood(void **state)
{
    (void)state;
    IT_BEGIN();
    flood_over_limit("max_connections reached");
}

static void max_threads_flood(void **state)
{
    (void)state;
    IT_BEGIN();
    flood_over_limit("max_threads reached");
}

int it_run_refusals(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(max_connections_flood),
    };
    const struct CMUnitTest thread_tests[] = {
        IT_TEST(max_threads_flood),
    };
    int failed = cmocka_run_group_tests_name("refusals", tests, refusals_setup,
                                             it_group_teardown);
    if (strcmp(it_env.model, "blocking") != 0 || it_skip || failed || it_failed)
        return failed;
    it_env.scenario = "refusals-threads"; /* its own config and log */
    return cmocka_run_group_tests_name("refusals-threads", thread_tests,
                                       threads_setup, it_group_teardown);
}
