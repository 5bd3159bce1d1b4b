/*
 * ppoll — an example ioserve model, built outside the ioserve tree against
 * the installed SDK (`pkg-config ioserve-plugin`).  docs/writing-a-plugin.md
 * builds it step by step.
 *
 * Shows: a whole model written against <ioserve/plugin.h> alone.  It waits
 * with ppoll(2) on one pollfd array rebuilt before every wait (O(connections)
 * per wait, like poll), and does itself the per-connection work the in-tree
 * models take from plugins/common: accepting within max_connections, reading
 * until EAGAIN, partial writes, backpressure (output_high_water), half-close,
 * idle and request timeouts, the drain when stop_fd turns readable, and
 * the live hand-over of ABI 1.2: giving each connection to the next
 * generation at a boundary, adopting those the host hands to us.
 *
 * Needs: Linux 2.6.28 (accept4; ppoll is 2.6.16).  Simpler than
 * plugins/common: it frees each buffer once empty instead of caching it,
 * and scans every connection for timeouts before each wait.
 */
#define _GNU_SOURCE /* accept4, ppoll */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Needs a 1.2 host: the host asks a model to give and adopt connections
 * only when its descriptor says 1.2, so a plugin that required an older
 * minor would never hand over, whatever code it carried for it. */
#define IOS_REQUIRE_MINOR 2
#include <ioserve/plugin.h>

static const struct ios_knob ppoll_knobs[] = {
    {"accept_batch", IOS_KNOB_INT, 64, NULL, 1, 4096,
     "connections accepted per wake-up before serving the open ones"},
    {"tcp_nodelay", IOS_KNOB_BOOL, 1, NULL, 0, 1,
     "set TCP_NODELAY on accepted sockets (replies are written whole)"},
    IOS_KNOB_END,
};

IOS_MODEL("ppoll", "ppoll(2) readiness, an out-of-tree example", ppoll_knobs);

#define PAUSE_MS 100 /* accepting pauses this long when out of descriptors */
#define LOG_EVERY_MS 1000 /* at most one "out of descriptors" line a second */

struct conn {
    int fd;
    bool eof;            /* the peer shut its side: send the rest, then close */
    bool closing;        /* close once the queued reply is sent */
    struct ios_buf in;   /* bytes the handler has not consumed yet */
    struct ios_buf out;  /* bytes not sent yet */
    uint64_t active_ms;  /* when bytes last moved (idle_timeout_ms) */
    uint64_t request_ms; /* when the unconsumed input began, or 0 */
    _Alignas(max_align_t) unsigned char state[]; /* h->conn_state_size bytes */
};

/* pfds[STOP] watches stop_fd, pfds[LISTEN] listen_fd, pfds[ADOPT] the
 * host's adopt_fd, and pfds[FIRST + i] the connection conns[i]. */
enum { STOP, LISTEN, ADOPT, FIRST };

struct ppoll_model {
    const struct ios_handler *h;
    int listen_fd;
    long long accept_batch;
    int nodelay;
    unsigned request_timeout_ms; /* 0 = none (or a host older than ABI 1.1) */
    struct conn **conns;         /* h->max_connections slots */
    struct pollfd *pfds;         /* FIRST + h->max_connections slots */
    unsigned n;                  /* open connections */
    char *rbuf;                  /* h->read_chunk bytes */
    bool draining;
    bool handing_over;           /* draining: give connections at a boundary */
    bool give_failed;            /* the host refused one: the rest drain here */
    bool closing_idle;           /* draining: close those idle at a boundary */
    int adopt_fd;                /* -1: a host older than 1.2, or none */
    int reserve_fd;              /* a spare descriptor for EMFILE, or -1 */
    uint64_t accept_resume_ms;   /* accepting paused until then */
    uint64_t logged_ms;          /* last "out of descriptors" line */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The counters live in memory the master reads: update them atomically. */
static void count(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

/* Forgets conns[i] — closed, or given to another process — and counts it
 * in `counter`; the last connection takes its slot. */
static void conn_release(struct ppoll_model *m, unsigned i, uint64_t *counter)
{
    struct conn *c = m->conns[i];
    m->h->close(m->h, c->state);
    close(c->fd);
    ios_buf_free(&c->in);
    ios_buf_free(&c->out);
    free(c);
    m->n--;
    m->conns[i] = m->conns[m->n];
    m->pfds[FIRST + i] = m->pfds[FIRST + m->n];
    count(counter, 1);
    __atomic_fetch_sub(&m->h->counters->active, 1, __ATOMIC_RELAXED);
}

static void conn_close(struct ppoll_model *m, unsigned i)
{
    conn_release(m, i, &m->h->counters->closed);
}

/* A per-connection error closes that connection only.  Peers that reset
 * are routine: debug level; anything else names the syscall as a warning. */
static void conn_fail(struct ppoll_model *m, unsigned i, const char *syscall, int err)
{
    bool routine = err == ECONNRESET || err == EPIPE || err == ETIMEDOUT;
    m->h->log(m->h, routine ? IOS_LOG_DEBUG : IOS_LOG_WARN, err, "%s", syscall);
    conn_close(m, i);
}

/*
 * accept4 failed with EMFILE/ENFILE (or ENOMEM...): the queued clients
 * would keep listen_fd readable and spin the loop.  Give up the spare
 * descriptor, accept and close what is queued so those clients learn now,
 * take the spare back, and pause accepting for a moment (libuv's trick).
 */
static void ppoll_out_of_fds(struct ppoll_model *m, int err)
{
    const struct ios_handler *h = m->h;
    unsigned dropped = 0;
    if ((err == EMFILE || err == ENFILE) && m->reserve_fd >= 0) {
        close(m->reserve_fd);
        int fd;
        while (dropped < 1024 && (fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
            close(fd);
            dropped++;
        }
        m->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    count(&h->counters->refused, dropped);
    uint64_t now = now_ms();
    m->accept_resume_ms = now + PAUSE_MS;
    if (now - m->logged_ms >= LOG_EVERY_MS) {
        m->logged_ms = now;
        h->log(h, IOS_LOG_WARN, err, "accept4%s: refused %u queued connection(s)",
               err == EMFILE ? " (EMFILE)" : err == ENFILE ? " (ENFILE)" : "", dropped);
    }
}

static void ppoll_accept(struct ppoll_model *m)
{
    const struct ios_handler *h = m->h;
    for (long long k = 0; k < m->accept_batch; k++) {
        int fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO ||
                errno == EPERM)
                continue; /* this client is gone (or firewalled): next one */
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;   /* queue empty, or another worker was faster */
            ppoll_out_of_fds(m, errno);
            return;
        }
        /* ABI 1.3: the host may take it for the canary side of an A/B
         * split (`canary`); then it is not ours to count. */
        if (IOS_HANDLER_HAS(h, route_accepted) && h->route_accepted &&
            h->route_accepted(h, fd) == 1) {
            close(fd);
            continue;
        }
        /* Past the limit: accept and close at once, so the client learns
         * now instead of waiting in the kernel's queue. */
        struct conn *c = m->n < h->max_connections
                             ? malloc(sizeof(*c) + h->conn_state_size) : NULL;
        if (c)
            *c = (struct conn){.fd = fd, .active_ms = now_ms()};
        if (!c || h->open(h, c->state) != 0) {
            free(c);
            close(fd);
            count(&h->counters->refused, 1);
            h->log(h, IOS_LOG_DEBUG, 0, "refused a connection (%u open)", m->n);
            continue;
        }
        if (m->nodelay)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        m->conns[m->n++] = c;
        count(&h->counters->accepted, 1);
        count(&h->counters->active, 1);
    }
}

/* Sends queued output until it is gone or the socket is full (a partial
 * write: POLLOUT says when to go on).  0, or -errno. */
static int conn_flush(struct ppoll_model *m, struct conn *c)
{
    while (ios_buf_pending(&c->out)) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, ios_buf_pending(&c->out),
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return n < 0 ? -errno : -EPIPE;
        ios_buf_consume(&c->out, (size_t)n);
        count(&m->h->counters->bytes_out, (uint64_t)n);
        c->active_ms = now_ms();
    }
    ios_buf_free(&c->out); /* an idle connection keeps no buffer */
    return 0;
}

/* Hands n new bytes (and any kept from before) to the handler.  false: the
 * connection must close now. */
static bool conn_feed(struct ppoll_model *m, struct conn *c, const char *data, size_t n)
{
    const struct ios_handler *h = m->h;
    if (c->closing)
        return true; /* its last reply is queued: ignore what follows */
    const char *in = data;
    size_t len = n;
    bool kept = ios_buf_pending(&c->in) > 0;
    if (kept) { /* a request spans reads: join the parts */
        if (ios_buf_append(&c->in, data, n) != 0)
            return false;
        in = c->in.data + c->in.off;
        len = ios_buf_pending(&c->in);
    }
    ssize_t used = h->data(h, c->state, in, len, &c->out);
    if (used == IOS_DATA_CLOSE_AFTER_WRITE) {
        c->closing = true;
        ios_buf_free(&c->in);
        return true;
    }
    if (used < 0 || (size_t)used > len)
        return false; /* IOS_DATA_CLOSE_NOW (or a handler bug) */
    if (kept)
        ios_buf_consume(&c->in, (size_t)used);
    else if ((size_t)used < len && ios_buf_append(&c->in, in + used, len - (size_t)used))
        return false;
    size_t rest = ios_buf_pending(&c->in);
    if (rest == 0) {
        ios_buf_free(&c->in);
        c->request_ms = 0;
    } else if (rest > h->max_input) {
        h->log(h, IOS_LOG_DEBUG, 0, "fd %d: input past max_input, closing", c->fd);
        c->closing = true;
        ios_buf_free(&c->in);
    } else if (used > 0 || c->request_ms == 0) {
        c->request_ms = now_ms(); /* a new unfinished request starts */
    }
    return true;
}

/* Does what revents allow for conns[i]; true when it closed it. */
static bool conn_service(struct ppoll_model *m, unsigned i, short revents)
{
    const struct ios_handler *h = m->h;
    struct conn *c = m->conns[i];
    const char *call = "send";
    int rc = conn_flush(m, c);
    if (rc < 0)
        goto fail;
    /* Read until EAGAIN, but not while output is above the high-water mark:
     * then the unread replies fill the peer's TCP window, not our memory. */
    bool readable = revents & (POLLIN | POLLHUP | POLLERR);
    while (readable && !c->eof && !c->closing &&
           ios_buf_pending(&c->out) < h->output_high_water) {
        ssize_t n = recv(c->fd, m->rbuf, h->read_chunk, 0);
        if (n > 0) {
            count(&h->counters->bytes_in, (uint64_t)n);
            c->active_ms = now_ms();
            if (!conn_feed(m, c, m->rbuf, (size_t)n))
                goto close;
            if ((rc = conn_flush(m, c)) < 0)
                goto fail;
            if ((size_t)n < h->read_chunk && !(revents & POLLHUP))
                break; /* likely drained; ppoll reports more if not */
        } else if (n == 0) {
            c->eof = true; /* half-close: our replies still go out */
            ios_buf_free(&c->in);
            c->request_ms = 0;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) {
            call = "recv";
            rc = -errno;
            goto fail;
        }
    }
    if ((c->eof || c->closing) && ios_buf_pending(&c->out) == 0)
        goto close;
    return false;
fail:
    conn_fail(m, i, call, -rc);
    return true;
close:
    conn_close(m, i);
    return true;
}

/* ------------------------------------------------ hand-over (ABI 1.2) */

/* A connection may leave at a boundary: no reply waiting to be sent, not
 * on its way out, and the protocol between requests.  Bytes received but
 * not consumed (half a request) travel along. */
static bool conn_at_boundary(const struct ppoll_model *m, const struct conn *c)
{
    const struct ios_handler *h = m->h;
    return !c->eof && !c->closing && ios_buf_pending(&c->out) == 0 &&
           (!h->at_boundary || h->at_boundary(h, (void *)c->state) == 1);
}

/* During a drain, for conns[i] at a boundary: gives it (the host took its
 * own reference: we only close our descriptor — no shutdown, which would
 * end the TCP connection for the adopter too) or, on a drain without a
 * successor that wants it (close_idle_on_drain), closes it when no byte of
 * a next request waits.  A give that fails ends the hand-over: the rest
 * drains here.  true when conns[i] is gone. */
static bool conn_release_at_boundary(struct ppoll_model *m, unsigned i)
{
    const struct ios_handler *h = m->h;
    struct conn *c = m->conns[i];
    if (!(m->handing_over || m->closing_idle) || !conn_at_boundary(m, c))
        return false;
    if (m->handing_over) {
        size_t len = ios_buf_pending(&c->in);
        if (h->give(h, c->fd, len ? c->in.data + c->in.off : NULL, len) == 0) {
            conn_release(m, i, &h->counters->given);
            return true;
        }
        m->handing_over = false;
        m->give_failed = true;
        return false;
    }
    char byte;
    if (ios_buf_pending(&c->in) || recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
        return false;
    conn_close(m, i);
    return true;
}

/* How often a drain without a successor asks again whether one came: a
 * later reload may bring a generation that adopts (after a 1.1 model). */
#define HANDOVER_RECHECK_MS 50

/* stop_fd turned readable: what the host asks of the drain. */
static void ppoll_drain_begin(struct ppoll_model *m)
{
    const struct ios_handler *h = m->h;
    m->draining = true;
    m->handing_over = h->handover_requested(h) == 1;
    m->closing_idle = !m->handing_over && h->close_idle_on_drain;
    h->log(h, IOS_LOG_INFO, 0, "draining: no longer accepting, %u connection(s) open%s",
           m->n, m->handing_over ? ", handing them over" : "");
    for (unsigned i = m->n; i-- > 0;)
        conn_release_at_boundary(m, i);
}

/* Draining without giving: has the host found a successor since? */
static void ppoll_drain_recheck(struct ppoll_model *m)
{
    const struct ios_handler *h = m->h;
    if (!m->draining || m->handing_over || m->give_failed || h->handover_requested(h) != 1)
        return;
    m->handing_over = true;
    m->closing_idle = false;
    h->log(h, IOS_LOG_INFO, 0, "draining: a newer generation adopts: handing %u "
           "connection(s) over", m->n);
    for (unsigned i = m->n; i-- > 0;)
        conn_release_at_boundary(m, i);
}

/* Takes the connections the host hands over: each is opened like an
 * accepted one and its carried input fed to the handler first, whose
 * replies the next ppoll sends (POLLOUT). */
static void ppoll_adopt(struct ppoll_model *m)
{
    const struct ios_handler *h = m->h;
    for (long long k = 0; k < m->accept_batch; k++) {
        int fd;
        struct ios_buf in = {0};
        int rc = h->adopt(h, &fd, &in);
        if (rc != 0) {
            ios_buf_free(&in);
            if (rc == -EAGAIN)
                return;
            continue; /* logged by the host */
        }
        /* Non-blocking as the host hands it, and without O_ASYNC: a
         * signal-driven giver's flag lives on the open file we now share. */
        fcntl(fd, F_SETFL, O_NONBLOCK);
        struct conn *c = m->n < h->max_connections
                             ? malloc(sizeof(*c) + h->conn_state_size) : NULL;
        if (c)
            *c = (struct conn){.fd = fd, .active_ms = now_ms()};
        if (!c || h->open(h, c->state) != 0) {
            free(c);
            ios_buf_free(&in);
            close(fd); /* its client loses the session, like a refused one */
            count(&h->counters->refused, 1);
            h->log(h, IOS_LOG_WARN, 0, "refused an adopted connection (%u open)", m->n);
            continue;
        }
        m->conns[m->n++] = c;
        /* On a split's canary side (ABI 1.3) these are new connections. */
        bool routed = IOS_HANDLER_HAS(h, adopts_routed) && h->adopts_routed;
        count(routed ? &h->counters->accepted : &h->counters->adopted, 1);
        count(&h->counters->active, 1);
        bool ok = !ios_buf_pending(&in) ||
                  conn_feed(m, c, in.data + in.off, ios_buf_pending(&in));
        ios_buf_free(&in);
        if (!ok)
            conn_close(m, m->n - 1);
    }
}

/* Closes connections silent past idle_timeout_ms or holding an unfinished
 * request past request_timeout_ms.  Returns the ms until the next deadline
 * (connection or accept pause), or -1 when there is none. */
static int ppoll_expire(struct ppoll_model *m, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (unsigned i = m->n; i-- > 0;) {
        struct conn *c = m->conns[i];
        uint64_t due = c->active_ms + m->h->idle_timeout_ms;
        if (m->request_timeout_ms && c->request_ms &&
            c->request_ms + m->request_timeout_ms < due)
            due = c->request_ms + m->request_timeout_ms;
        if (due <= now) {
            m->h->log(m->h, IOS_LOG_DEBUG, 0, "fd %d: timed out, closing", c->fd);
            conn_close(m, i);
        } else if (due < next) {
            next = due;
        }
    }
    if (!m->draining && m->accept_resume_ms > now && m->accept_resume_ms < next)
        next = m->accept_resume_ms;
    if (next == UINT64_MAX)
        return -1;
    return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

static int ppoll_loop(struct ppoll_model *m)
{
    const struct ios_handler *h = m->h;
    while (!m->draining || m->n > 0) {
        uint64_t now = now_ms();
        int wait_ms = ppoll_expire(m, now);
        if (m->draining && !m->handing_over && !m->give_failed &&
            (wait_ms < 0 || wait_ms > HANDOVER_RECHECK_MS))
            wait_ms = HANDOVER_RECHECK_MS;
        bool accepting = !m->draining && now >= m->accept_resume_ms;
        /* A negative fd is skipped by ppoll: that is how we stop watching. */
        m->pfds[STOP] = (struct pollfd){m->draining ? -1 : h->stop_fd, POLLIN, 0};
        m->pfds[LISTEN] = (struct pollfd){accepting ? m->listen_fd : -1, POLLIN, 0};
        m->pfds[ADOPT] = (struct pollfd){m->adopt_fd, POLLIN, 0}; /* serving and draining */
        for (unsigned i = 0; i < m->n; i++) {
            const struct conn *c = m->conns[i];
            short events = ios_buf_pending(&c->out) ? POLLOUT : 0;
            if (!c->eof && !c->closing && ios_buf_pending(&c->out) < h->output_high_water)
                events |= POLLIN;
            m->pfds[FIRST + i] = (struct pollfd){c->fd, events, 0};
        }
        struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000};
        if (ppoll(m->pfds, FIRST + m->n, wait_ms < 0 ? NULL : &ts, NULL) < 0) {
            if (errno == EINTR)
                continue;
            h->log(h, IOS_LOG_ERROR, errno, "ppoll");
            return -errno;
        }
        if (m->pfds[STOP].revents) /* drain: never read or close stop_fd */
            ppoll_drain_begin(m);
        /* Backwards, so a closed slot is refilled by one already served.
         * One that just answered may be at its boundary: given now. */
        for (unsigned i = m->n; i-- > 0;)
            if (m->pfds[FIRST + i].revents && !conn_service(m, i, m->pfds[FIRST + i].revents))
                conn_release_at_boundary(m, i);
        if (!m->draining && m->pfds[LISTEN].revents)
            ppoll_accept(m);
        if (m->pfds[ADOPT].revents)
            ppoll_adopt(m);
        ppoll_drain_recheck(m); /* last: what it gave ends the loop */
    }
    return 0;
}

int model_run(int listen_fd, const struct ios_handler *h)
{
    struct ppoll_model m = {.h = h, .listen_fd = listen_fd, .reserve_fd = -1,
                            .adopt_fd = -1};
    long long batch = 64;
    int nodelay = 1, rc;
    /* The host validated models.ppoll against ppoll_knobs: no checks here. */
    h->knob_int(h, "accept_batch", &batch);
    h->knob_bool(h, "tcp_nodelay", &nodelay);
    m.accept_batch = batch;
    m.nodelay = nodelay;
    m.request_timeout_ms = h->request_timeout_ms;
    m.adopt_fd = h->adopt_fd; /* -1: nothing will be handed to this worker */

    m.conns = malloc(h->max_connections * sizeof(*m.conns));
    m.pfds = malloc((FIRST + h->max_connections) * sizeof(*m.pfds));
    m.rbuf = malloc(h->read_chunk);
    m.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (m.reserve_fd < 0) {
        rc = -errno;
        h->log(h, IOS_LOG_ERROR, errno, "open(/dev/null)");
        goto out;
    }
    if (!m.conns || !m.pfds || !m.rbuf) {
        h->log(h, IOS_LOG_ERROR, ENOMEM, "allocating for %u connections",
               h->max_connections);
        rc = -ENOMEM; /* before ready(): the host may fall back to the next model */
        goto out;
    }
    h->ready(h);
    rc = ppoll_loop(&m);
out:
    while (m.n > 0)
        conn_close(&m, m.n - 1);
    if (m.reserve_fd >= 0)
        close(m.reserve_fd);
    free(m.rbuf);
    free(m.pfds);
    free(m.conns);
    return rc;
}
