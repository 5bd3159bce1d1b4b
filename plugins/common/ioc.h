/*
 * ioc — the connection code every model shares.
 *
 * A model only decides *how to wait*.  Everything a connection does once it
 * is ready lives here, once: accepting (limits, the EMFILE reserve
 * descriptor, refusing fds a model cannot watch), per-connection buffers,
 * the read -> handler -> write pump with backpressure, half-close, idle
 * timeouts, drain on stop, and the live hand-over of connections between
 * generations (ABI 1.2: give at a boundary, adopt what the host hands us).
 *
 * Memory: an idle connection holds only its struct ioc_conn and the
 * handler's state.  Input and output buffers are taken from a per-loop cache
 * while bytes are in flight and given back when they empty, so the hot path
 * does not call malloc.
 *
 * Latency (ABI 1.3): each request answered is timed from the read that
 * brought its first byte to the send that hands the kernel the last byte
 * of its reply, and reported to the host (h->request_done); see
 * ioc_latency.c.
 *
 * Threads: an ioc_loop belongs to one thread.  Only the counters in
 * ios_handler are shared (updated atomically).
 */
#ifndef IOSERVE_IOC_H
#define IOSERVE_IOC_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ioserve/plugin.h"

/* Readiness reported by a model, and interest returned to it. */
#define IOC_READABLE 0x1u
#define IOC_WRITABLE 0x2u
#define IOC_HANGUP 0x4u /* EPOLLRDHUP/POLLHUP/POLLERR: read until 0 or error */
#define IOC_CLOSED 0x80u /* returned by ioc_service/ioc_end: the connection
                            was closed and freed */

/* The readiness poll(2) reports, as IOC_*: revents, and the same bits as
 * epoll's events and a SIGIO signal's si_band. */
static inline unsigned ioc_ready_of(unsigned revents)
{
    return (revents & (POLLIN | POLLRDNORM | POLLPRI) ? IOC_READABLE : 0) |
           (revents & (POLLOUT | POLLWRNORM) ? IOC_WRITABLE : 0) |
           (revents & (POLLRDHUP | POLLHUP | POLLERR) ? IOC_HANGUP : 0);
}

/* The poll(2) events (and epoll's, the same bits) that wait for an
 * interest.  POLLHUP and POLLERR are always reported; POLLRDHUP says early
 * that the peer shut its side. */
static inline unsigned ioc_events_of(unsigned interest)
{
    return (interest & IOC_READABLE ? POLLIN | POLLRDHUP : 0) |
           (interest & IOC_WRITABLE ? POLLOUT : 0);
}

struct ioc_loop;

/* Requests answered whose replies the kernel has not taken in full yet,
 * oldest first, in batches that share a start and a reply end; more
 * batches than fit are merged into the newest (ioc_latency.c). */
#define IOC_LATENCY_BATCHES 4
struct ioc_latency {
    uint64_t input_since_ns; /* when the oldest unconsumed input byte came */
    uint64_t written;        /* output bytes the kernel took, ever */
    unsigned nbatches;
    unsigned count[IOC_LATENCY_BATCHES];     /* requests in the batch */
    uint64_t started_ns[IOC_LATENCY_BATCHES];
    uint64_t reply_end[IOC_LATENCY_BATCHES]; /* done once written reaches it */
};

/* A link of an intrusive, circular, doubly-linked list; a loop holds one
 * as the list's head.  NULL links: not on the list. */
struct ioc_link {
    struct ioc_link *prev, *next;
};

struct ioc_conn {
    int fd;
    unsigned flags;          /* IOC_F_* below (private) */
    struct ios_buf in;       /* bytes the handler has not consumed yet */
    struct ios_buf out;      /* replies queued, not yet sent */
    struct ios_buf sending;  /* replies a completion model handed to the
                                kernel, untouchable until ioc_sent says
                                they went (ioc_send_next); empty otherwise */
    uint64_t last_active_ms; /* for idle_timeout */
    struct ioc_link active;   /* the loop's list, least recently active first */
    struct ioc_link request;  /* the loop's unfinished-request list */
    uint64_t request_started_ms;  /* when its unfinished request began */
    void *model_data;        /* free for the model (uring: its per-connection state) */
    unsigned model_flags;    /* free for the model (poll: its slot in the array) */
    unsigned interest;       /* last interest reported to the model */
    struct ioc_latency latency; /* used only while the host times requests */
    _Alignas(max_align_t) unsigned char state[]; /* handler's conn_state_size */
};

/* Called with every connection the loop is about to close, before its fd is
 * closed, so a model can forget it (e.g. compact its pollfd array). */
typedef void (*ioc_close_hook)(struct ioc_loop *loop, struct ioc_conn *conn);

/* Asked before a connection at a boundary is given: true when nothing of
 * the kernel's still reads into or writes from it.  A model with operations
 * in flight (uring) starts cancelling them, returns false, and services the
 * connection again once they have completed, which asks again. */
typedef bool (*ioc_give_hook)(struct ioc_loop *loop, struct ioc_conn *conn);

struct ioc_loop {
    const struct ios_handler *h;
    void *model;            /* the model's context, for its hooks */
    ioc_close_hook on_close;

    struct ioc_conn **by_fd; /* fd-indexed table; none on a serving loop */
    size_t by_fd_cap;
    bool serving_only;       /* ioc_loop_init_serving: adopted connections only */
    /* h's ABI 1.3 latency callbacks, or NULL (an older host, or
     * latency_histogram = false: then no clock is read for it). */
    void (*request_done)(const struct ios_handler *h, uint64_t duration_ns,
                         unsigned count);
    unsigned (*requests_answered)(const struct ios_handler *h, void *state);
    /* The latency clock read last in this wake-up (ioc_latency.c), or 0:
     * none since the last ioc_tick.  Never kept by a serving loop, which
     * has no ioc_tick to say when it waited. */
    uint64_t stamp_ns;
    struct ioc_link active;  /* head: every connection, least recently active first */
    struct ioc_link requests; /* head: connections holding an unfinished
                                 request, oldest first (request_timeout_ms) */
    unsigned nconns;         /* open connections of this loop */
    unsigned request_timeout_ms; /* h's, or 0 from a host older than ABI 1.1 */

    char *rbuf;              /* recv target, read_chunk bytes */
    struct ioc_bufcache {
        char **bufs;
        size_t *caps;
        unsigned count, max;
    } cache;

    int fd_limit;            /* refuse accepted fds >= this (select); 0 = none */
    unsigned conn_limit;     /* a model's own cap on open connections, checked
                                like max_connections (blocking: max_threads);
                                0 = none */
    const char *conn_limit_why; /* what a refusal past it logs */
    int reserve_fd;          /* spare descriptor for the EMFILE trick, or -1 */
    uint64_t accept_resume_ms; /* accept paused until then (out of fds) */
    uint64_t last_refusal_log_ms;
    uint64_t refusals_unlogged;
    bool draining;

    /* Hand-over (ABI 1.2; see ioc_drain_begin). */
    int adopt_fd;            /* readable while connections wait to be
                                adopted (ioc_adopt_pending); -1: none ever */
    bool blocking_fds;       /* the model serves blocking sockets: adopted
                                ones are made blocking too */
    bool handing_over;       /* draining by giving each connection to the
                                next generation at its next boundary */
    bool closing_idle;       /* draining without: a connection idle at a
                                boundary is closed (h->close_idle_on_drain) */
    bool handover_failed;    /* the host refused a give: drain the rest here */
    ioc_give_hook may_give;  /* NULL: nothing is ever in flight */
    ioc_close_hook on_give;  /* called before on_close when a connection is
                                given: forget what outlives our descriptor
                                (epoll: its registration follows the open
                                file, which the adopter now shares) */
};

/* ------------------------------------------------------------------ time */

uint64_t ioc_now_ms(void);
/* CLOCK_MONOTONIC in nanoseconds: for latency, which needs more than the
 * coarse clock's tick. */
uint64_t ioc_now_ns(void);

/* ------------------------------------------------------------- the loop */

/* 0, or -ENOMEM.  A loop that accepts also holds the spare descriptor
 * for running out of them (EMFILE). */
int ioc_loop_init(struct ioc_loop *loop, const struct ios_handler *h);
/* The same for a loop that only serves connections handed to it
 * (ioc_adopt) and never accepts, one per thread of the blocking model: it
 * holds no spare descriptor and no fd-indexed table (ioc_conn_of finds
 * nothing there), which for a single connection would cost memory in
 * proportion to its descriptor number. */
int ioc_loop_init_serving(struct ioc_loop *loop, const struct ios_handler *h);
/* Closes every connection still open and frees the loop's memory. */
void ioc_loop_fini(struct ioc_loop *loop);

/* True once h->stop_fd is readable (non-blocking check). */
bool ioc_stop_requested(const struct ios_handler *h);

/* Enters drain: the model must stop watching listen_fd and stop_fd, and
 * return once loop->nconns is 0.  Logs once (a serving loop: never, there
 * is one per connection).  When the host asks for a hand-over
 * (h->handover_requested), every connection at a boundary is given to the
 * next generation right away, and each other one at its next boundary,
 * checked after every ioc_service (models that do their own I/O call
 * ioc_drain_release).  Without a hand-over and with
 * h->close_idle_on_drain, a connection idle at a boundary is closed. */
void ioc_drain_begin(struct ioc_loop *loop);

/* A drain that hands nothing over asks the host again this often (from
 * ioc_timeout_ms/ioc_tick) whether a newer generation adopts now. */
#define IOC_HANDOVER_RECHECK_MS 50

/* Draining without a hand-over, but the host asks for one now: starts it
 * as ioc_drain_begin would have.  True when it did.  ioc_tick calls it. */
bool ioc_drain_recheck(struct ioc_loop *loop);

/* True when the drain is over (draining and no connection left). */
static inline bool ioc_drained(const struct ioc_loop *loop)
{
    return loop->draining && loop->nconns == 0;
}

/* Milliseconds a model may sleep before ioc_tick() has work: the nearest
 * idle or request deadline or accept resumption; -1 when there is none. */
int ioc_timeout_ms(const struct ioc_loop *loop);

/* Closes connections idle past idle_timeout, or holding an unfinished
 * request past request_timeout_ms.  Call after every wait. */
void ioc_tick(struct ioc_loop *loop);

/* First connection of the loop, and the next one; NULL at the end.  Safe
 * against closing `c` if the caller fetched next before servicing. */
struct ioc_conn *ioc_first(struct ioc_loop *loop);
struct ioc_conn *ioc_next(struct ioc_loop *loop, struct ioc_conn *c);

/* True while conn holds an unfinished request (see request_timeout_ms). */
static inline bool ioc_request_pending(const struct ioc_conn *conn)
{
    return conn->request.next != NULL;
}

/* The connection on fd, or NULL. */
static inline struct ioc_conn *ioc_conn_of(const struct ioc_loop *loop, int fd)
{
    return (fd >= 0 && (size_t)fd < loop->by_fd_cap) ? loop->by_fd[fd] : NULL;
}

/* ---------------------------------------------------------------- accept */

/* True unless accepting is paused after running out of descriptors (the
 * model should then not wait on listen_fd; ioc_timeout_ms covers the pause). */
bool ioc_accepting(const struct ioc_loop *loop);

/*
 * Accepts one connection from the non-blocking listen_fd.
 *   0, *conn set: a new connection (non-blocking unless `blocking`),
 *      tracked by the loop, handler opened;
 *   0, *conn NULL: one connection was refused (limit, fd >= fd_limit,
 *      handler error), or the host took it for the canary side of an A/B
 *      split (h->route_accepted): call again;
 *  -EAGAIN: nothing left to accept;
 *  -EMFILE/-ENFILE/-ENOMEM/-ENOBUFS: out of resources; the pending
 *      connections were refused with the reserve-descriptor trick or
 *      accepting is paused briefly (see ioc_accepting);
 *  other -errno: logged, call again later.
 */
int ioc_accept(struct ioc_loop *loop, int listen_fd, bool blocking,
               struct ioc_conn **conn);

/* Called with the connection ioc_accept_next accepted; may close it. */
typedef void (*ioc_accept_hook)(struct ioc_loop *loop, struct ioc_conn *conn);

/*
 * Accepts the next pending connection (refusing on the way those a limit
 * refuses) with interest IOC_READABLE, and hands it to `added` (may be
 * NULL) — the accept step of a readiness model, after listen_fd was
 * reported readable.  One per call, as nginx does without multi_accept:
 * every worker waits on the same socket, and the one that runs first would
 * otherwise take the whole queue; the listener stays readable while
 * connections wait, so the next wait of whichever worker is free takes the
 * next one.  Does nothing while draining or paused.
 */
void ioc_accept_next(struct ioc_loop *loop, int listen_fd, ioc_accept_hook added);

/* Logs that a connection was refused and why.  A flood of refusals must not
 * flood the log: one line a second at most, with the count of those not
 * logged.  Counting it (counters->refused) is the caller's. */
void ioc_log_refusal(struct ioc_loop *loop, const char *why);

/* ------------------------------------------------------------ the pump */

/*
 * Does all the work a readiness event allows: sends queued output, reads
 * until EAGAIN (or until output passes the high-water mark), runs the
 * handler, sends its replies, closes on EOF-after-flush, errors, or the
 * handler's request.  `ready` is IOC_READABLE|IOC_WRITABLE|IOC_HANGUP.
 * Returns the interest now (IOC_READABLE and/or IOC_WRITABLE), or
 * IOC_CLOSED when the connection was closed and freed.
 */
unsigned ioc_service(struct ioc_loop *loop, struct ioc_conn *conn,
                     unsigned ready);

/* ioc_service on every connection with the same `ready`, in descriptor
 * order (servicing reorders the activity list, so walking that would visit
 * some twice): for models that poll everyone, or must after losing events. */
void ioc_service_all(struct ioc_loop *loop, unsigned ready);

/* What the connection waits for now (IOC_READABLE/IOC_WRITABLE); 0 only
 * transiently. */
unsigned ioc_interest(const struct ioc_loop *loop, const struct ioc_conn *conn);

/*
 * The pieces of ioc_service, for models that do their own I/O (blocking
 * sockets, io_uring):
 *  ioc_flush  — one send of the queued output (there must be some): all of
 *               it, or what fits before the socket is full (EAGAIN; on a
 *               blocking socket, its SO_SNDTIMEO ran out); *moved is set
 *               when bytes went.  0, or -errno of a failed send.
 *  ioc_end    — call once ioc_finished: closes the connection (IOC_CLOSED),
 *               or, while the peer may still be sending, starts a lingering
 *               close (IOC_READABLE; see below).
 *  ioc_feed   — n bytes arrived: run the handler (with any bytes kept from
 *               before); replies are appended to conn->out.  0 — also when
 *               the connection is to close once its output is sent (the
 *               handler asked, or input passed max_input: ioc_finished
 *               says when) — or -errno when it must close at once
 *               (-ENOMEM; -ECONNABORTED: the handler dropped it; -EPROTO:
 *               the handler misbehaved, logged).
 *  ioc_eof    — the peer will send no more.
 *  ioc_received — n bytes were received (call before ioc_feed).
 *  ioc_send_next — for a model whose kernel sends while it goes on
 *               (io_uring): the bytes to send next — what remains of the
 *               buffer in flight, or else the queued output, moved to
 *               conn->sending so that the handler's next replies go to a
 *               fresh conn->out and never move bytes the kernel is reading.
 *  ioc_sent   — n bytes of conn->sending were sent.
 *  ioc_finished — true when nothing remains to do but close (EOF or close
 *               requested, and all output sent).
 */
int ioc_feed(struct ioc_loop *loop, struct ioc_conn *conn, const char *data,
             size_t n);
int ioc_flush(struct ioc_loop *loop, struct ioc_conn *conn, bool *moved);
/*
 * A lingering close (as httpd's and nginx's): a connection closed on our
 * side (the handler's close-after-write, or max_input) while the peer still
 * sends would be reset by the kernel on close(), and a reset throws away
 * the reply the peer has not read yet.  So, after the reply is sent:
 * shutdown(SHUT_WR), then read and discard until EOF, for idle_timeout_ms
 * from the shutdown at most (what arrives meanwhile is no activity, so a
 * client that keeps sending does not keep the connection), then close.
 */
unsigned ioc_end(struct ioc_loop *loop, struct ioc_conn *conn);
void ioc_eof(struct ioc_loop *loop, struct ioc_conn *conn);
/* n bytes were received (counters, idle timer). */
void ioc_received(struct ioc_loop *loop, struct ioc_conn *conn, size_t n);
const struct ios_buf *ioc_send_next(struct ioc_loop *loop, struct ioc_conn *conn);
void ioc_sent(struct ioc_loop *loop, struct ioc_conn *conn, size_t n);
/* Output not yet sent: queued, and in flight. */
static inline size_t ioc_output_pending(const struct ioc_conn *conn)
{
    return ios_buf_pending(&conn->out) + ios_buf_pending(&conn->sending);
}
bool ioc_finished(const struct ioc_conn *conn);
/* True while the output queued for conn is at or above the high-water mark. */
bool ioc_output_full(const struct ioc_loop *loop, const struct ioc_conn *conn);
/* Records activity now (for idle_timeout). */
void ioc_touch(struct ioc_loop *loop, struct ioc_conn *conn);

/* Moves a connection between loops (the blocking model hands each accepted
 * connection from the acceptor's loop to its own thread's loop). */
void ioc_detach(struct ioc_loop *loop, struct ioc_conn *conn);
int ioc_adopt(struct ioc_loop *loop, struct ioc_conn *conn);

/* ------------------------------------------------------------ hand-over */

/* True when conn may leave this process: no output queued or in flight,
 * not closing or lingering, and the handler between requests
 * (h->at_boundary).  Unconsumed input may remain: it travels along. */
bool ioc_at_boundary(const struct ioc_loop *loop, const struct ioc_conn *conn);

/*
 * During a drain, what ioc_drain_begin promises for one connection: gives
 * it (hand-over) or ends it (idle, close_idle_on_drain) if it is at a
 * boundary.  Returns IOC_CLOSED when conn is gone (given, or closed and
 * freed), its new interest when it began a lingering close, or 0 when
 * nothing changed (not at a boundary, the model's may_give said wait, or
 * the host could not take it: it drains here).
 */
unsigned ioc_drain_release(struct ioc_loop *loop, struct ioc_conn *conn);

/*
 * Takes the connections the host hands to this worker (adopt_fd became
 * readable), a batch at most per call: each becomes an ioc_conn (handler
 * opened, counted as adopted), the input its previous model had received
 * but not consumed is fed to the handler first, as if just received (its
 * replies queue in conn->out, interest says IOC_WRITABLE), and it goes to
 * `added` like an accepted one.  Returns how many were adopted.
 */
unsigned ioc_adopt_pending(struct ioc_loop *loop, ioc_accept_hook added);

/* Closes and frees a connection (calls the close hook and handler). */
void ioc_close(struct ioc_loop *loop, struct ioc_conn *conn);

/* Logs a per-connection error: resets and broken pipes at debug level, the
 * rest as warnings, naming the syscall. */
void ioc_log_conn_error(struct ioc_loop *loop, const char *syscall, int err);

#endif
