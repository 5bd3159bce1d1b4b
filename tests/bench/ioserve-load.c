/*
 * ioserve-load — the load generator of the benchmark lab.
 *
 * One thread, one epoll loop over N non-blocking connections to a server on
 * the loopback interface (it refuses any other address: this is a lab tool,
 * not a way to flood someone's host).  Every connection runs a closed loop:
 * write `depth` requests in one write, wait for all `depth` replies, repeat.
 *
 *   echo   S-byte messages; every reply byte is checked against what was
 *          sent (upper: against the upper-cased message)
 *   http   keep-alive "GET / HTTP/1.1"; each response is parsed (status line,
 *          Content-Length, body) and counted; anything but a well-formed 200
 *          is a bad reply
 *
 * Idle connections (-i) are opened first and never used, to expose costs
 * that grow with the number of connections rather than with traffic.
 *
 * Reload under load (-R PID): SIGHUP is sent to PID (an ioserve or nginx
 * master: what `-s reload` does) every -E ms of the measured window, the
 * first one -E ms into it.  Replies completed within -W ms of a SIGHUP go
 * into the reload-window histogram, the others into the steady one, so the
 * two p99s compare a reload's cost with the same run's steady state.  A
 * response carrying "Connection: close" ends its connection without an
 * error (a client reconnects then); counted as server_closes.
 *
 * A think time (-t) makes each connection pause between a reply and its
 * next request, as an occasional client does: the server is idle when the
 * request comes, so what it costs to wake up shows in the latency (make
 * tour measures the nonblocking model's nap this way).  Each pause is drawn
 * from 0 to twice the think time and timed by a timerfd, to the
 * microsecond: pauses of whole milliseconds would lock into step with a
 * server that sleeps whole milliseconds too.
 *
 * Bounded: a warm-up (-w) then a measured window (-d), and a hard alarm
 * that ends the process whatever happens.  Latencies go into a log-linear
 * histogram (32 sub-buckets per power of two: ~3 % resolution).
 *
 * With -S PID[,PID...] the CPU time (utime+stime, /proc/PID/stat), the RSS
 * and peak RSS (/proc/PID/status) of those processes are sampled at the
 * edges of the measured window, together with the machine's CPU steal
 * (/proc/stat), so that CPU per request covers exactly the counted requests.
 *
 * Output: one line of key=value pairs (default) or CSV (-o csv; -o csvh adds
 * the header line).  Exit 0 when the run completed, 1 on usage or setup
 * errors, 2 when the hard alarm fired, 4 when no reply came in the measured
 * window (a server that accepts and never answers measured nothing).
 * Errors and bad replies are reported, not turned into an exit status,
 * except with -x (strict: exit 3 if any).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 1024
#define MAX_PIDS 16
#define CONNECT_BATCH 128       /* connects in flight at once */
#define RBUF_SIZE (256 * 1024)
#define PART_MAX (64 * 1024)    /* an http reply head longer than this is bad */

enum mode { MODE_ECHO, MODE_UPPER, MODE_HTTP };

/* --------------------------------------------------------------- histogram */

#define H_SUB_BITS 5
#define H_SUB (1u << H_SUB_BITS)
#define H_BUCKETS ((64 - H_SUB_BITS) * H_SUB + H_SUB)

struct histo {
    uint64_t n[H_BUCKETS];
    uint64_t count, max, sum;
};

static unsigned h_index(uint64_t v)
{
    if (v < H_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= H_SUB_BITS */
    unsigned shift = e - H_SUB_BITS;
    return (shift + 1) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

/* The middle of bucket i. */
static uint64_t h_value(unsigned i)
{
    if (i < H_SUB)
        return i; /* exact */
    unsigned shift = i / H_SUB - 1;
    uint64_t lo = (uint64_t)(H_SUB + i % H_SUB) << shift;
    return lo + ((1ull << shift) >> 1);
}

static void h_add(struct histo *h, uint64_t v)
{
    h->n[h_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static uint64_t h_pct(const struct histo *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < H_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= rank) {
            uint64_t v = h_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* -------------------------------------------------------------- the state */

struct conn {
    int fd;
    int id;
    bool idle;
    bool connected;
    unsigned outstanding;  /* replies still expected for the batch */
    uint64_t sent_ns;      /* when the batch was written */
    uint64_t send_at_ns;   /* think time: when to write the next one; 0 = none */
    size_t wpos;           /* bytes of the batch written so far */
    /* echo: offset into the batch of the next expected reply byte */
    size_t rpos;
    /* http: a reply split across reads */
    char *part;
    size_t partlen, partcap;
    uint64_t body_left;    /* body bytes of the current reply still to come */
    bool in_body;
    bool closing;          /* http: the server said Connection: close */
    unsigned batch;        /* echo: which pattern the batch carries */
    char *msg;             /* echo: the batch as sent */
};

struct opts {
    enum mode mode;
    const char *host;
    int port;
    int conns;
    int idle;
    double duration, warmup;
    size_t size;
    unsigned depth;
    uint64_t think_ns;      /* pause between a reply and the next request */
    const char *out;        /* "kv", "csv", "csvh" */
    int alarm_s;
    bool strict;
    const char *label;
    pid_t pids[MAX_PIDS];
    int npids;
    pid_t reload_pid;       /* -R: SIGHUP this process during the window */
    double reload_every_ms; /* -E */
    double reload_window_ms; /* -W */
    const char *trace;      /* -T: every measured reply, to this file */
};

struct sample {
    uint64_t cpu_ticks;     /* utime+stime of the watched pids */
    uint64_t rss_kb, hwm_kb;
    uint64_t steal, total;  /* /proc/stat, all CPUs */
    uint64_t busy;          /* ... not idle nor waiting for I/O */
    double self_cpu_s;      /* this process's own CPU time */
    bool ok;
};

struct lg {
    struct opts o;
    int ep;
    int think_fd;        /* timerfd of the next think-time pause to end */
    uint64_t think_rng;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct conn *c;      /* active first, then idle */
    int nconn;
    char *rbuf;
    char *http_req;      /* depth copies of the request */
    size_t http_req_len; /* of one copy */
    bool measuring;
    uint64_t t_start_ns, t_end_ns; /* measured window */
    struct histo hist;
    struct histo hist_reload, hist_steady; /* -R: replies near a SIGHUP, others */
    uint64_t last_reload_ns, next_reload_ns;
    uint64_t reloads;
    uint64_t replies;    /* in the window */
    uint64_t replies_all;
    uint64_t bytes_in;   /* in the window */
    uint64_t errors, bad, connect_errors, idle_lost;
    uint64_t resets, eofs;     /* errors that were a reset, an EOF */
    uint64_t server_closes;    /* graceful: Connection: close */
    struct sample s0, s1;
    FILE *trace;
};

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "ioserve-load: hard time limit reached, giving up\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "ioserve-load: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* --------------------------------------------------------- /proc sampling */

static bool read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return true;
}

static uint64_t status_kb(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static void take_sample(const struct lg *g, struct sample *s)
{
    char buf[8192], path[64];
    *s = (struct sample){.ok = true};
    for (int i = 0; i < g->o.npids; i++) {
        snprintf(path, sizeof path, "/proc/%d/stat", (int)g->o.pids[i]);
        if (!read_file(path, buf, sizeof buf)) {
            s->ok = false;
            continue;
        }
        /* Fields after the command name, which may hold spaces. */
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                         &ut, &st) != 2) {
            s->ok = false;
            continue;
        }
        s->cpu_ticks += ut + st;
        snprintf(path, sizeof path, "/proc/%d/status", (int)g->o.pids[i]);
        if (read_file(path, buf, sizeof buf)) {
            s->rss_kb += status_kb(buf, "VmRSS:");
            s->hwm_kb += status_kb(buf, "VmHWM:");
        }
    }
    if (read_file("/proc/stat", buf, sizeof buf)) {
        unsigned long long v[10] = {0};
        sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
               &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
        for (int i = 0; i < 8; i++) /* guest time is already in user */
            s->total += v[i];
        s->steal = v[7];
        s->busy = s->total - v[3] - v[4];
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s->self_cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ------------------------------------------------------------ addresses */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static void resolve(struct lg *g)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    char port[16];
    snprintf(port, sizeof port, "%d", g->o.port);
    int rc = getaddrinfo(g->o.host, port, &hints, &res);
    if (rc) {
        fprintf(stderr, "ioserve-load: %s: %s\n", g->o.host, gai_strerror(rc));
        exit(1);
    }
    if (!is_loopback(res->ai_addr)) {
        fprintf(stderr, "ioserve-load: %s is not a loopback address; "
                        "this tool only loads servers on 127.0.0.0/8 or ::1\n",
                g->o.host);
        freeaddrinfo(res);
        exit(1);
    }
    memcpy(&g->addr, res->ai_addr, res->ai_addrlen);
    g->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

/* ------------------------------------------------------------ connections */

static void arm(struct lg *g, struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(g->ep, op, c->fd, &ev) != 0)
        die("epoll_ctl");
}

/* Starts a non-blocking connect; the connection reports EPOLLOUT when done. */
static int start_connect(struct lg *g, struct conn *c)
{
    c->fd = socket(g->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&g->addr, g->addrlen) != 0 &&
        errno != EINPROGRESS) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    c->connected = false;
    arm(g, c, EPOLL_CTL_ADD, EPOLLOUT);
    return 0;
}

static void conn_reset_state(struct conn *c)
{
    c->outstanding = 0;
    c->wpos = 0;
    c->rpos = 0;
    c->partlen = 0;
    c->body_left = 0;
    c->in_body = false;
    c->closing = false;
    c->send_at_ns = 0; /* a reconnected connection starts a batch at once */
}

static void conn_drop(struct lg *g, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->connected = false;
    conn_reset_state(c);
}

/* Opens connections [from, to) with at most CONNECT_BATCH in flight. */
static void open_all(struct lg *g, int from, int to, uint64_t deadline_ns)
{
    struct epoll_event evs[CONNECT_BATCH];
    int next = from, pending = 0, done = 0, want = to - from;
    while (done < want) {
        while (pending < CONNECT_BATCH && next < to) {
            struct conn *c = &g->c[next++];
            int rc = start_connect(g, c);
            if (rc == 0) {
                pending++;
            } else {
                g->connect_errors++;
                done++;
                if (rc == -EMFILE || rc == -ENFILE) {
                    fprintf(stderr, "ioserve-load: out of descriptors at "
                                    "connection %d (raise ulimit -n)\n", next);
                    exit(1);
                }
            }
        }
        if (!pending)
            continue;
        if (now_ns() > deadline_ns) {
            fprintf(stderr, "ioserve-load: %d connection(s) still pending after "
                            "the connect time limit\n", pending);
            exit(1);
        }
        int n = epoll_wait(g->ep, evs, CONNECT_BATCH, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->connected || c->fd < 0)
                continue; /* an idle one reporting (it will be seen later) */
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            pending--;
            done++;
            if (err) {
                g->connect_errors++;
                conn_drop(g, c);
                continue;
            }
            c->connected = true;
            /* Idle ones are watched only to notice the server closing them. */
            arm(g, c, EPOLL_CTL_MOD, c->idle ? EPOLLRDHUP : EPOLLIN);
        }
    }
}

/* ---------------------------------------------------------------- traffic */

static size_t batch_len(const struct lg *g)
{
    return g->o.mode == MODE_HTTP ? g->http_req_len * g->o.depth
                                  : g->o.size * g->o.depth;
}

static const char *batch_bytes(const struct lg *g, const struct conn *c)
{
    return g->o.mode == MODE_HTTP ? g->http_req : c->msg;
}

/* Echo messages are lower-case letters in a pattern that changes with the
 * connection and the batch, so a reply meant for another request or
 * connection does not pass for the right one. */
static void fill_batch(const struct lg *g, struct conn *c)
{
    size_t s = g->o.size;
    unsigned base = (unsigned)c->id * 7u + c->batch * 3u;
    for (unsigned d = 0; d < g->o.depth; d++)
        for (size_t i = 0; i < s; i++)
            c->msg[d * s + i] = (char)('a' + (base + d + i) % 26);
}

static void fail_conn(struct lg *g, struct conn *c, bool bad)
{
    if (bad)
        g->bad++;
    else
        g->errors++;
    conn_drop(g, c);
}

/* Writes what is left of the batch.  false when the connection failed. */
static bool write_batch(struct lg *g, struct conn *c)
{
    size_t len = batch_len(g);
    const char *b = batch_bytes(g, c);
    while (c->wpos < len) {
        ssize_t n = send(c->fd, b + c->wpos, len - c->wpos, MSG_NOSIGNAL);
        if (n > 0) {
            c->wpos += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm(g, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
            return true;
        } else {
            if (n < 0 && (errno == ECONNRESET || errno == EPIPE))
                g->resets++;
            fail_conn(g, c, false);
            return false;
        }
    }
    return true;
}

static bool send_batch(struct lg *g, struct conn *c)
{
    if (g->o.mode != MODE_HTTP) {
        c->batch++;
        fill_batch(g, c);
    }
    c->outstanding = g->o.depth;
    c->wpos = 0;
    c->rpos = 0;
    c->sent_ns = now_ns();
    return write_batch(g, c);
}

static void reply_done(struct lg *g, struct conn *c, uint64_t t)
{
    g->replies_all++;
    if (g->measuring) {
        g->replies++;
        h_add(&g->hist, t - c->sent_ns);
        if (g->o.reload_pid) {
            bool near = g->last_reload_ns &&
                        t - g->last_reload_ns < (uint64_t)(g->o.reload_window_ms * 1e6);
            h_add(near ? &g->hist_reload : &g->hist_steady, t - c->sent_ns);
        }
        if (g->trace)
            fprintf(g->trace, "%.3f %.3f %.1f\n", (double)(t - g->t_start_ns) / 1e6,
                    g->last_reload_ns ? (double)(t - g->last_reload_ns) / 1e6 : -1.0,
                    (double)(t - c->sent_ns) / 1e3);
    }
    c->outstanding--;
}

/* Echo: checks n reply bytes.  false on a mismatch (connection dropped). */
static bool echo_input(struct lg *g, struct conn *c, const char *p, size_t n,
                       uint64_t t)
{
    size_t s = g->o.size;
    size_t total = s * g->o.depth;
    if (c->rpos + n > total)
        { fail_conn(g, c, true); return false; } /* more than was asked for */
    const char *want = c->msg + c->rpos;
    if (g->o.mode == MODE_ECHO) {
        if (memcmp(p, want, n) != 0)
            { fail_conn(g, c, true); return false; }
    } else {
        for (size_t i = 0; i < n; i++)
            if (p[i] != (char)toupper((unsigned char)want[i]))
                { fail_conn(g, c, true); return false; }
    }
    size_t before = c->rpos / s;
    c->rpos += n;
    for (size_t k = c->rpos / s; k > before; k--)
        reply_done(g, c, t);
    return true;
}

/* Finds the value of a header in a head (case-insensitive name). */
static const char *find_header(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    while (p && p + 1 < end) {
        p++;
        if ((size_t)(end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            return p + nl + 1;
        p = memchr(p, '\n', (size_t)(end - p));
    }
    return NULL;
}

/*
 * HTTP: consumes complete replies from p[0, n).  Returns bytes consumed, or
 * -1 on a bad reply (connection dropped).
 */
static ssize_t http_input(struct lg *g, struct conn *c, const char *p, size_t n,
                          uint64_t t)
{
    size_t pos = 0;
    while (pos < n) {
        if (c->in_body) {
            size_t avail = n - pos;
            size_t take = c->body_left < avail ? (size_t)c->body_left : avail;
            c->body_left -= take;
            pos += take;
            if (c->body_left == 0) {
                c->in_body = false;
                if (c->outstanding == 0)
                    { fail_conn(g, c, true); return -1; } /* unasked-for reply */
                reply_done(g, c, t);
            }
            continue;
        }
        const char *h = p + pos;
        size_t avail = n - pos;
        const char *end = memmem(h, avail, "\r\n\r\n", 4);
        if (!end) {
            if (avail > PART_MAX)
                { fail_conn(g, c, true); return -1; }
            return (ssize_t)pos; /* the rest of this head comes later */
        }
        size_t head_len = (size_t)(end - h) + 4;
        if (head_len < 12 || memcmp(h, "HTTP/1.", 7) != 0 || memcmp(h + 8, " 200", 4) != 0)
            { fail_conn(g, c, true); return -1; }
        const char *cl = find_header(h, head_len, "Content-Length");
        if (!cl)
            { fail_conn(g, c, true); return -1; }
        char *e;
        unsigned long long body = strtoull(cl, &e, 10);
        if (e == cl)
            { fail_conn(g, c, true); return -1; }
        const char *conn = find_header(h, head_len, "Connection");
        if (conn) {
            while (*conn == ' ')
                conn++;
            if (strncasecmp(conn, "close", 5) == 0)
                c->closing = true;
        }
        pos += head_len;
        c->body_left = body;
        c->in_body = true;
        if (body == 0) {
            c->in_body = false;
            if (c->outstanding == 0)
                { fail_conn(g, c, true); return -1; }
            reply_done(g, c, t);
        }
    }
    return (ssize_t)pos;
}

static bool http_feed(struct lg *g, struct conn *c, const char *p, size_t n,
                      uint64_t t)
{
    if (c->partlen == 0) {
        ssize_t used = http_input(g, c, p, n, t);
        if (used < 0)
            return false;
        size_t rest = n - (size_t)used;
        if (rest) {
            if (c->partcap < rest) {
                c->partcap = rest < 4096 ? 4096 : rest;
                free(c->part);
                c->part = malloc(c->partcap);
                if (!c->part)
                    die("malloc");
            }
            memcpy(c->part, p + used, rest);
            c->partlen = rest;
        }
        return true;
    }
    if (c->partcap < c->partlen + n) {
        size_t cap = c->partcap * 2;
        while (cap < c->partlen + n)
            cap *= 2;
        char *q = realloc(c->part, cap);
        if (!q)
            die("realloc");
        c->part = q;
        c->partcap = cap;
    }
    memcpy(c->part + c->partlen, p, n);
    c->partlen += n;
    ssize_t used = http_input(g, c, c->part, c->partlen, t);
    if (used < 0)
        return false;
    memmove(c->part, c->part + used, c->partlen - (size_t)used);
    c->partlen -= (size_t)used;
    return true;
}

/* A pause drawn uniformly from [0, 2 x think time) (xorshift64). */
static uint64_t think_pause(struct lg *g)
{
    uint64_t x = g->think_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g->think_rng = x;
    return x % (2 * g->o.think_ns);
}

static void on_readable(struct lg *g, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, g->rbuf, RBUF_SIZE, 0);
        if (n > 0) {
            uint64_t t = now_ns();
            if (g->measuring)
                g->bytes_in += (uint64_t)n;
            bool ok = g->o.mode == MODE_HTTP
                          ? http_feed(g, c, g->rbuf, (size_t)n, t)
                          : echo_input(g, c, g->rbuf, (size_t)n, t);
            if (!ok)
                return;
            if (c->outstanding == 0) {
                if (g->o.mode == MODE_HTTP && (c->partlen || c->in_body))
                    { fail_conn(g, c, true); return; } /* bytes beyond the replies */
                if (c->closing) { /* a goodbye, not a failure: reconnect */
                    g->server_closes++;
                    conn_drop(g, c);
                    return;
                }
                if (g->o.think_ns)
                    c->send_at_ns = t + think_pause(g);
                else
                    send_batch(g, c);
                return;
            }
            if ((size_t)n < RBUF_SIZE)
                return;
        } else if (n == 0) {
            g->eofs++;
            { fail_conn(g, c, false); return; } /* the server closed it */
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else {
            if (errno == ECONNRESET)
                g->resets++;
            { fail_conn(g, c, false); return; }
        }
    }
}

/* Think time: writes the batches that are due; returns the earlier of
 * `until` and the next one due, and sets the timer to it. */
static uint64_t send_thought(struct lg *g, uint64_t t, uint64_t until)
{
    for (int i = 0; i < g->o.conns; i++) {
        struct conn *c = &g->c[i];
        if (!c->send_at_ns || c->fd < 0)
            continue;
        if (c->send_at_ns <= t) {
            c->send_at_ns = 0;
            send_batch(g, c);
        } else if (c->send_at_ns < until) {
            until = c->send_at_ns;
        }
    }
    struct itimerspec at = {.it_value = {.tv_sec = (time_t)(until / 1000000000u),
                                         .tv_nsec = (long)(until % 1000000000u)}};
    if (timerfd_settime(g->think_fd, TFD_TIMER_ABSTIME, &at, NULL) != 0)
        die("timerfd_settime");
    return until;
}

static void run(struct lg *g)
{
    struct epoll_event evs[512];
    uint64_t t0 = now_ns();
    uint64_t t_measure = t0 + (uint64_t)(g->o.warmup * 1e9);
    uint64_t t_stop = t_measure + (uint64_t)(g->o.duration * 1e9);
    if (g->o.warmup <= 0) {
        take_sample(g, &g->s0);
        g->measuring = true;
        g->t_start_ns = now_ns();
    }

    for (int i = 0; i < g->o.conns; i++)
        if (g->c[i].connected)
            send_batch(g, &g->c[i]);

    for (;;) {
        uint64_t t = now_ns();
        if (!g->measuring && t >= t_measure) {
            take_sample(g, &g->s0);
            g->measuring = true;
            g->t_start_ns = now_ns();
        }
        if (t >= t_stop)
            break;
        if (g->o.reload_pid && g->measuring) {
            if (!g->next_reload_ns)
                g->next_reload_ns = g->t_start_ns + (uint64_t)(g->o.reload_every_ms * 1e6);
            if (t >= g->next_reload_ns) {
                if (kill(g->o.reload_pid, SIGHUP) != 0)
                    die("kill -HUP (-R)");
                g->last_reload_ns = t;
                g->reloads++;
                g->next_reload_ns += (uint64_t)(g->o.reload_every_ms * 1e6);
            }
        }
        /* Reconnect active connections lost to errors (at most a few per
         * pass so a refusing server cannot make this spin). */
        for (int i = 0, budget = 8; i < g->o.conns && budget > 0; i++) {
            struct conn *c = &g->c[i];
            if (c->fd < 0) {
                budget--;
                if (start_connect(g, c) != 0)
                    g->connect_errors++;
            }
        }
        uint64_t until = g->measuring ? t_stop : t_measure;
        if (g->next_reload_ns && g->next_reload_ns < until)
            until = g->next_reload_ns;
        if (g->o.think_ns)
            until = send_thought(g, t, until);
        int ms = (int)((until - t + 999999u) / 1000000u);
        if (ms > 100)
            ms = 100;
        int n = epoll_wait(g->ep, evs, 512, ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (!c) { /* the think-time timer: the next pass sends what is due */
                uint64_t expirations;
                if (read(g->think_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                    die("timerfd read");
                continue;
            }
            if (c->fd < 0)
                continue;
            if (c->idle) {
                g->idle_lost++;
                conn_drop(g, c);
                continue;
            }
            if (!c->connected) { /* a reconnect finished */
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    g->connect_errors++;
                    conn_drop(g, c);
                    continue;
                }
                c->connected = true;
                arm(g, c, EPOLL_CTL_MOD, EPOLLIN);
                send_batch(g, c);
                continue;
            }
            if (e & EPOLLOUT) {
                if (!write_batch(g, c))
                    continue;
                if (c->wpos == batch_len(g))
                    arm(g, c, EPOLL_CTL_MOD, EPOLLIN);
            }
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(g, c);
        }
    }
    g->t_end_ns = now_ns();
    take_sample(g, &g->s1);
}

/* ------------------------------------------------------------------ output */

static void report(const struct lg *g)
{
    double secs = (double)(g->t_end_ns - g->t_start_ns) / 1e9;
    double rps = secs > 0 ? (double)g->replies / secs : 0;
    long hz = sysconf(_SC_CLK_TCK);
    double cpu_us = -1, cpu_per_req = -1, cpu_pct = -1, steal_pct = -1;
    uint64_t rss = 0, hwm = 0;
    if (g->o.npids && g->s0.ok && g->s1.ok) {
        cpu_us = (double)(g->s1.cpu_ticks - g->s0.cpu_ticks) * 1e6 / (double)hz;
        cpu_per_req = g->replies ? cpu_us / (double)g->replies : -1;
        cpu_pct = secs > 0 ? cpu_us / 1e6 / secs * 100.0 : -1;
        rss = g->s1.rss_kb;
        hwm = g->s1.hwm_kb;
    }
    if (g->s1.total > g->s0.total)
        steal_pct = (double)(g->s1.steal - g->s0.steal) * 100.0 /
                    (double)(g->s1.total - g->s0.total);
    /* Everything else the machine did meanwhile (other processes, the
     * kernel's own threads), in % of one CPU: a noisy neighbour shows here. */
    double loadgen_pct = secs > 0 ? (g->s1.self_cpu_s - g->s0.self_cpu_s) / secs * 100 : 0;
    double busy_pct = secs > 0 ? (double)(g->s1.busy - g->s0.busy) / (double)hz / secs * 100 : 0;
    double other_pct = busy_pct - loadgen_pct - (cpu_pct > 0 ? cpu_pct : 0);
    static const char *const modes[] = {"echo", "upper", "http"};

    const char *keys[] = {"label", "mode", "conns", "idle", "depth", "size",
                          "seconds", "requests", "rps", "mbps", "p50_us",
                          "p99_us", "p999_us", "max_us", "mean_us", "errors",
                          "bad", "connect_errors", "idle_lost",
                          "server_cpu_us", "cpu_us_per_req", "server_cpu_pct",
                          "server_rss_kb", "server_hwm_kb", "steal_pct",
                          "loadgen_cpu_pct", "other_cpu_pct", "resets", "eofs",
                          "server_closes", "reloads", "reload_window_replies",
                          "p99_reload_window_us", "steady_replies", "p99_steady_us"};
    char vals[35][64];
    int k = 0;
    snprintf(vals[k++], 64, "%s", g->o.label ? g->o.label : "-");
    snprintf(vals[k++], 64, "%s", modes[g->o.mode]);
    snprintf(vals[k++], 64, "%d", g->o.conns);
    snprintf(vals[k++], 64, "%d", g->o.idle);
    snprintf(vals[k++], 64, "%u", g->o.depth);
    snprintf(vals[k++], 64, "%zu", g->o.mode == MODE_HTTP ? (size_t)0 : g->o.size);
    snprintf(vals[k++], 64, "%.3f", secs);
    snprintf(vals[k++], 64, "%" PRIu64, g->replies);
    snprintf(vals[k++], 64, "%.0f", rps);
    snprintf(vals[k++], 64, "%.2f", secs > 0 ? (double)g->bytes_in / secs / 1e6 : 0);
    snprintf(vals[k++], 64, "%.1f", (double)h_pct(&g->hist, 50) / 1e3);
    snprintf(vals[k++], 64, "%.1f", (double)h_pct(&g->hist, 99) / 1e3);
    snprintf(vals[k++], 64, "%.1f", (double)h_pct(&g->hist, 99.9) / 1e3);
    snprintf(vals[k++], 64, "%.1f", (double)g->hist.max / 1e3);
    snprintf(vals[k++], 64, "%.1f",
             g->hist.count ? (double)g->hist.sum / (double)g->hist.count / 1e3 : 0);
    snprintf(vals[k++], 64, "%" PRIu64, g->errors);
    snprintf(vals[k++], 64, "%" PRIu64, g->bad);
    snprintf(vals[k++], 64, "%" PRIu64, g->connect_errors);
    snprintf(vals[k++], 64, "%" PRIu64, g->idle_lost);
    snprintf(vals[k++], 64, "%.0f", cpu_us);
    snprintf(vals[k++], 64, "%.3f", cpu_per_req);
    snprintf(vals[k++], 64, "%.1f", cpu_pct);
    snprintf(vals[k++], 64, "%" PRIu64, rss);
    snprintf(vals[k++], 64, "%" PRIu64, hwm);
    snprintf(vals[k++], 64, "%.2f", steal_pct);
    snprintf(vals[k++], 64, "%.1f", loadgen_pct);
    snprintf(vals[k++], 64, "%.1f", other_pct);
    snprintf(vals[k++], 64, "%" PRIu64, g->resets);
    snprintf(vals[k++], 64, "%" PRIu64, g->eofs);
    snprintf(vals[k++], 64, "%" PRIu64, g->server_closes);
    snprintf(vals[k++], 64, "%" PRIu64, g->reloads);
    snprintf(vals[k++], 64, "%" PRIu64, g->hist_reload.count);
    snprintf(vals[k++], 64, "%.1f", (double)h_pct(&g->hist_reload, 99) / 1e3);
    snprintf(vals[k++], 64, "%" PRIu64, g->hist_steady.count);
    snprintf(vals[k++], 64, "%.1f", (double)h_pct(&g->hist_steady, 99) / 1e3);

    bool csv = strncmp(g->o.out, "csv", 3) == 0;
    if (strcmp(g->o.out, "csvh") == 0)
        for (int i = 0; i < k; i++)
            printf("%s%s", keys[i], i + 1 < k ? "," : "\n");
    for (int i = 0; i < k; i++) {
        if (csv)
            printf("%s%s", vals[i], i + 1 < k ? "," : "\n");
        else
            printf("%s=%s%s", keys[i], vals[i], i + 1 < k ? " " : "\n");
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ioserve-load -p PORT [options]\n"
        "  -m MODE     echo | upper | http (default echo)\n"
        "  -H HOST     loopback address of the server (default 127.0.0.1)\n"
        "  -p PORT     its port\n"
        "  -c N        active connections (default 50)\n"
        "  -i N        idle connections, opened first and never used (default 0)\n"
        "  -d SECS     measured duration (default 5)\n"
        "  -w SECS     warm-up before measuring (default 1)\n"
        "  -s BYTES    echo message size (default 128)\n"
        "  -P DEPTH    requests per write, pipelined (default 1)\n"
        "  -t USECS    think time: pause between a reply and the next request (default 0)\n"
        "  -S PID,...  sample CPU/RSS of these server processes over the window\n"
        "  -o FORMAT   kv | csv | csvh (csv with a header line); default kv\n"
        "  -l LABEL    a label copied into the output\n"
        "  -A SECS     hard time limit (default warm-up + duration + 60)\n"
        "  -R PID      SIGHUP PID (a reload) every -E ms of the measured window\n"
        "  -E MS       reload period (default 1000)\n"
        "  -W MS       replies within this long of a SIGHUP are the reload window\n"
        "              (default 500); the others the steady state\n"
        "  -T FILE     write every measured reply to FILE: ms since the window began,\n"
        "              ms since the last SIGHUP (-1 before the first), latency in us\n"
        "  -x          exit 3 if any error or bad reply was seen\n"
        "exit status: 0 done, 1 usage or setup error, 2 hard time limit,\n"
        "  3 an error or bad reply (-x), 4 no reply at all in the measured window\n");
}

static double parse_num(const char *s, const char *what, double lo, double hi)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || v < lo || v > hi) {
        fprintf(stderr, "ioserve-load: %s must be a number from %g to %g (got '%s')\n",
                what, lo, hi, s);
        exit(1);
    }
    return v;
}

static void raise_nofile(unsigned need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = need;
    if (rl.rlim_max < need)
        rl.rlim_max = need; /* works as root */
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Everything main allocated, so LeakSanitizer runs of the suite stay clean. */
static void lg_free(struct lg *g)
{
    for (int i = 0; g->c && i < g->nconn; i++) {
        if (g->c[i].fd >= 0)
            close(g->c[i].fd);
        free(g->c[i].msg);
        free(g->c[i].part);
    }
    free(g->c);
    free(g->rbuf);
    free(g->http_req);
    if (g->ep >= 0)
        close(g->ep);
    if (g->think_fd >= 0)
        close(g->think_fd);
    if (g->trace)
        fclose(g->trace);
    free(g);
}

int main(int argc, char **argv)
{
    struct lg *g = calloc(1, sizeof *g);
    if (!g)
        die("calloc");
    g->o = (struct opts){.mode = MODE_ECHO, .host = "127.0.0.1", .conns = 50,
                         .duration = 5, .warmup = 1, .size = 128, .depth = 1,
                         .out = "kv", .alarm_s = -1, .reload_every_ms = 1000,
                         .reload_window_ms = 500};
    int opt;
    while ((opt = getopt(argc, argv, "m:H:p:c:i:d:w:s:P:t:S:o:l:A:R:E:W:T:xh")) != -1) {
        switch (opt) {
        case 'm':
            if (!strcmp(optarg, "echo")) g->o.mode = MODE_ECHO;
            else if (!strcmp(optarg, "upper")) g->o.mode = MODE_UPPER;
            else if (!strcmp(optarg, "http")) g->o.mode = MODE_HTTP;
            else { usage(stderr); return 1; }
            break;
        case 'H': g->o.host = optarg; break;
        case 'p': g->o.port = (int)parse_num(optarg, "-p", 1, 65535); break;
        case 'c': g->o.conns = (int)parse_num(optarg, "-c", 1, 1000000); break;
        case 'i': g->o.idle = (int)parse_num(optarg, "-i", 0, 1000000); break;
        case 'd': g->o.duration = parse_num(optarg, "-d", 0.01, 3600); break;
        case 'w': g->o.warmup = parse_num(optarg, "-w", 0, 3600); break;
        case 's': g->o.size = (size_t)parse_num(optarg, "-s", 1, 16 << 20); break;
        case 'P': g->o.depth = (unsigned)parse_num(optarg, "-P", 1, MAX_DEPTH); break;
        case 't': g->o.think_ns = (uint64_t)(parse_num(optarg, "-t", 0, 10e6) * 1e3); break;
        case 'A': g->o.alarm_s = (int)parse_num(optarg, "-A", 1, 86400); break;
        case 'R': g->o.reload_pid = (pid_t)parse_num(optarg, "-R", 2, 1 << 30); break;
        case 'E': g->o.reload_every_ms = parse_num(optarg, "-E", 10, 3600000); break;
        case 'W': g->o.reload_window_ms = parse_num(optarg, "-W", 1, 3600000); break;
        case 'o':
            if (strcmp(optarg, "kv") && strcmp(optarg, "csv") && strcmp(optarg, "csvh")) {
                usage(stderr);
                return 1;
            }
            g->o.out = optarg;
            break;
        case 'l': g->o.label = optarg; break;
        case 'T': g->o.trace = optarg; break;
        case 'x': g->o.strict = true; break;
        case 'S': {
            char *save, *tok = strtok_r(optarg, ",", &save);
            for (; tok; tok = strtok_r(NULL, ",", &save)) {
                if (g->o.npids == MAX_PIDS) {
                    fprintf(stderr, "ioserve-load: at most %d pids\n", MAX_PIDS);
                    return 1;
                }
                g->o.pids[g->o.npids++] = (pid_t)parse_num(tok, "-S", 1, 1 << 30);
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!g->o.port || optind != argc) {
        usage(stderr);
        return 1;
    }
    if ((uint64_t)g->o.size * g->o.depth > (64u << 20)) {
        fprintf(stderr, "ioserve-load: size x depth must stay below 64 MiB\n");
        return 1;
    }

    /* The hard limit: whatever happens (a server that accepts and never
     * answers, a connect storm), the process ends by itself. */
    if (g->o.alarm_s < 0)
        g->o.alarm_s = (int)ceil(g->o.warmup + g->o.duration) + 60;
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)g->o.alarm_s);

    resolve(g);
    raise_nofile((unsigned)(g->o.conns + g->o.idle + 64));

    g->nconn = g->o.conns + g->o.idle;
    g->c = calloc((size_t)g->nconn, sizeof *g->c);
    g->rbuf = malloc(RBUF_SIZE);
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    g->think_fd = -1;
    if (!g->c || !g->rbuf || g->ep < 0)
        die("setup");
    if (g->o.trace && !(g->trace = fopen(g->o.trace, "we")))
        die(g->o.trace);
    if (g->o.think_ns) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        g->think_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (g->think_fd < 0 || epoll_ctl(g->ep, EPOLL_CTL_ADD, g->think_fd, &ev) != 0)
            die("timerfd");
        g->think_rng = now_ns() | 1;
    }
    for (int i = 0; i < g->nconn; i++) {
        struct conn *c = &g->c[i];
        c->fd = -1;
        c->id = i;
        c->idle = i >= g->o.conns;
        if (!c->idle && g->o.mode != MODE_HTTP) {
            c->msg = malloc(g->o.size * g->o.depth);
            if (!c->msg)
                die("malloc");
        }
    }
    if (g->o.mode == MODE_HTTP) {
        char one[256];
        char host[INET6_ADDRSTRLEN + 2] = "127.0.0.1";
        if (g->addr.ss_family == AF_INET6)
            snprintf(host, sizeof host, "[::1]");
        int n = snprintf(one, sizeof one, "GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                         host, g->o.port);
        g->http_req_len = (size_t)n;
        g->http_req = malloc(g->http_req_len * g->o.depth);
        if (!g->http_req)
            die("malloc");
        for (unsigned d = 0; d < g->o.depth; d++)
            memcpy(g->http_req + d * g->http_req_len, one, g->http_req_len);
    }

    /* Idle connections first, so the active ones get the higher fds (as a
     * long-running server would see them). */
    uint64_t connect_deadline = now_ns() + 30ull * 1000000000u +
                                (uint64_t)g->nconn * 2000000u;
    open_all(g, g->o.conns, g->nconn, connect_deadline);
    open_all(g, 0, g->o.conns, connect_deadline);
    int up = 0;
    for (int i = 0; i < g->o.conns; i++)
        up += g->c[i].connected;
    if (!up) {
        fprintf(stderr, "ioserve-load: no connection to %s:%d could be opened\n",
                g->o.host, g->o.port);
        lg_free(g);
        return 1;
    }

    run(g);
    report(g);
    int rc = g->o.strict && (g->errors || g->bad || g->connect_errors || g->idle_lost) ? 3 : 0;
    if (!g->replies) {
        fprintf(stderr,
                "ioserve-load: no reply in the %.2f s measured window (%d of %d "
                "connections open): the server answered nothing\n",
                (double)(g->t_end_ns - g->t_start_ns) / 1e9, up, g->o.conns);
        rc = 4;
    }
    lg_free(g);
    return rc;
}
