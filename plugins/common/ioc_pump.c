/* The byte pump: read -> handler -> write, with backpressure and half-close. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ioc.h"
#include "ioc_internal.h"

void ioc_log_conn_error(struct ioc_loop *loop, const char *syscall, int err)
{
    /* A peer that resets or vanishes is routine on the internet. */
    bool routine = err == ECONNRESET || err == EPIPE || err == ETIMEDOUT ||
                   err == ECONNABORTED || err == EHOSTUNREACH || err == ENETUNREACH;
    loop->h->log(loop->h, routine ? IOS_LOG_DEBUG : IOS_LOG_WARN, err,
                 "%s", syscall);
}

bool ioc_output_full(const struct ioc_loop *loop, const struct ioc_conn *c)
{
    return ioc_output_pending(c) >= loop->h->output_high_water;
}

bool ioc_finished(const struct ioc_conn *c)
{
    unsigned f = c->flags;
    return (f & (IOC_F_EOF | IOC_F_CLOSING)) &&
           ((f & IOC_F_EOF) || !(f & IOC_F_LINGER)) && ioc_output_pending(c) == 0;
}

/* Input is still wanted: for the handler, or to be discarded while
 * lingering. */
static bool reading(const struct ioc_conn *c)
{
    unsigned f = c->flags;
    return !(f & (IOC_F_EOF | IOC_F_CLOSING)) || (f & (IOC_F_EOF | IOC_F_LINGER)) == IOC_F_LINGER;
}

/* ioc_interest, given the output not yet sent. */
static unsigned interest(const struct ioc_loop *loop, const struct ioc_conn *c,
                         size_t unsent)
{
    unsigned want = 0;
    if (unsent)
        want |= IOC_WRITABLE;
    /* Backpressure: while too much output waits, stop reading and let the
     * peer's TCP window fill up instead of our memory. */
    if (reading(c) && unsent < loop->h->output_high_water)
        want |= IOC_READABLE;
    return want;
}

unsigned ioc_interest(const struct ioc_loop *loop, const struct ioc_conn *c)
{
    return interest(loop, c, ioc_output_pending(c));
}

unsigned ioc_end(struct ioc_loop *loop, struct ioc_conn *c)
{
    if ((c->flags & (IOC_F_EOF | IOC_F_LINGER)) || shutdown(c->fd, SHUT_WR) != 0) {
        ioc_close(loop, c);
        return IOC_CLOSED;
    }
    c->flags |= IOC_F_LINGER;
    /* The linger's deadline: idle_timeout from now, since what arrives
     * from here on does not count as activity. */
    ioc_touch(loop, c);
    c->interest = IOC_READABLE;
    return c->interest;
}

void ioc_eof(struct ioc_loop *loop, struct ioc_conn *c)
{
    c->flags |= IOC_F_EOF;
    /* Half a request can never complete now. */
    ioc_buf_give_back(loop, &c->in);
    ioc_request_track(loop, c, false);
}

void ioc_received(struct ioc_loop *loop, struct ioc_conn *c, size_t n)
{
    ioc_count(&loop->h->counters->bytes_in, n);
    if (!(c->flags & IOC_F_LINGER))
        ioc_touch(loop, c);
}

/* ioc_sent without the idle-timer update: ioc_service touches the
 * connection once per call, which saves a clock read per request. */
static void consume_out(struct ioc_loop *loop, struct ioc_conn *c, size_t n)
{
    ios_buf_consume(&c->out, n);
    ioc_count(&loop->h->counters->bytes_out, n);
    if (ios_buf_pending(&c->out) == 0)
        ioc_buf_give_back(loop, &c->out);
    ioc_latency_sent(loop, c, n);
}

const struct ios_buf *ioc_send_next(struct ioc_loop *loop, struct ioc_conn *c)
{
    if (ios_buf_pending(&c->sending) == 0) {
        ioc_buf_give_back(loop, &c->sending);
        c->sending = c->out;
        c->out = (struct ios_buf){0};
    }
    return &c->sending;
}

void ioc_sent(struct ioc_loop *loop, struct ioc_conn *c, size_t n)
{
    ios_buf_consume(&c->sending, n);
    ioc_count(&loop->h->counters->bytes_out, n);
    if (ios_buf_pending(&c->sending) == 0)
        ioc_buf_give_back(loop, &c->sending);
    ioc_latency_sent(loop, c, n);
    ioc_touch(loop, c);
}

/* Closes the connection for input; it ends once its output is sent. */
static int request_close(struct ioc_loop *loop, struct ioc_conn *c)
{
    c->flags |= IOC_F_CLOSING;
    ioc_buf_give_back(loop, &c->in);
    ioc_request_track(loop, c, false);
    return 0;
}

int ioc_feed(struct ioc_loop *loop, struct ioc_conn *c, const char *data, size_t n)
{
    const struct ios_handler *h = loop->h;
    if (c->flags & IOC_F_CLOSING)
        return 0; /* the reply that ends the connection is queued: what
                     still arrives is dropped (see ioc_end) */

    /* Taken before the handler runs, whose time is part of the request's. */
    uint64_t now_ns = loop->request_done ? ioc_latency_stamp(loop) : 0;
    /* Usually the handler consumes everything and runs straight on the
     * read buffer; bytes are copied only when a request spans reads. */
    const char *in = data;
    size_t len = n;
    size_t kept_len = ios_buf_pending(&c->in);
    bool kept = kept_len > 0;
    if (kept) {
        if (ios_buf_append(&c->in, data, n) != 0)
            return -ENOMEM;
        in = c->in.data + c->in.off;
        len = ios_buf_pending(&c->in);
    }

    ioc_buf_take(loop, &c->out);
    size_t queued = ios_buf_pending(&c->out);
    ssize_t used = h->data(h, c->state, in, len, &c->out);
    if (loop->request_done && used != IOS_DATA_CLOSE_NOW)
        ioc_latency_fed(loop, c, now_ns, kept_len, used,
                        ios_buf_pending(&c->out) - queued);
    if (ios_buf_pending(&c->out) == 0)
        ioc_buf_give_back(loop, &c->out);
    if (used == IOS_DATA_CLOSE_AFTER_WRITE)
        return request_close(loop, c);
    if (used < 0 || (size_t)used > len) {
        if (used == IOS_DATA_CLOSE_NOW)
            return -ECONNABORTED;
        h->log(h, IOS_LOG_ERROR, 0, "handler %s returned %zd for %zu bytes",
               h->protocol, used, len);
        return -EPROTO;
    }

    size_t rest = len - (size_t)used;
    if (kept) {
        ios_buf_consume(&c->in, (size_t)used);
    } else if (rest > 0) {
        ioc_buf_take(loop, &c->in);
        if (ios_buf_append(&c->in, in + used, rest) != 0)
            return -ENOMEM;
    }
    if (rest == 0) {
        ioc_buf_give_back(loop, &c->in);
    } else if (rest > h->max_input) {
        h->log(h, IOS_LOG_DEBUG, 0,
               "fd %d: %zu unconsumed bytes exceed max_input, closing", c->fd, rest);
        return request_close(loop, c);
    }
    ioc_request_track(loop, c, used > 0);
    return 0;
}

int ioc_flush(struct ioc_loop *loop, struct ioc_conn *c, bool *moved)
{
    for (;;) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, ios_buf_pending(&c->out),
                         MSG_NOSIGNAL);
        if (n > 0) {
            /* All of it went, or a short send filled the socket (blocking:
             * ran out its SO_SNDTIMEO), where another would meet EAGAIN. */
            consume_out(loop, c, (size_t)n);
            *moved = true;
            return 0;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return n < 0 ? -errno : -EPIPE;
    }
}

static unsigned fail(struct ioc_loop *loop, struct ioc_conn *c,
                     const char *syscall, int err)
{
    ioc_log_conn_error(loop, syscall, err);
    ioc_close(loop, c);
    return IOC_CLOSED;
}

/* ioc_output_full for ioc_service, whose readiness models never put
 * anything in flight (conn->sending stays empty): one load less, three
 * times a request. */
static bool queue_full(const struct ioc_loop *loop, const struct ioc_conn *c)
{
    return ios_buf_pending(&c->out) >= loop->h->output_high_water;
}

unsigned ioc_service(struct ioc_loop *loop, struct ioc_conn *c, unsigned ready)
{
    const struct ios_handler *h = loop->h;
    bool was_full = queue_full(loop, c);
    bool moved = false; /* bytes went either way: touch once, at the end */
    int rc;

    if (ios_buf_pending(&c->out) && (rc = ioc_flush(loop, c, &moved)) < 0)
        return fail(loop, c, "send", -rc);

    /* Read if the socket said so — or if backpressure just lifted: with
     * edge-triggered waiting no new edge would announce bytes that
     * arrived while we were not reading. */
    bool try_read = (ready & (IOC_READABLE | IOC_HANGUP)) ||
                    (was_full && !queue_full(loop, c));
    while (try_read && reading(c) && !queue_full(loop, c)) {
        ssize_t n = recv(c->fd, loop->rbuf, h->read_chunk, 0);
        if (n > 0) {
            ioc_count(&h->counters->bytes_in, (size_t)n);
            moved = true;
            if (ioc_feed(loop, c, loop->rbuf, (size_t)n) < 0) {
                ioc_close(loop, c);
                return IOC_CLOSED;
            }
            if (ios_buf_pending(&c->out) && (rc = ioc_flush(loop, c, &moved)) < 0)
                return fail(loop, c, "send", -rc);
            /* A short read emptied the socket: any later byte raises a new
             * edge.  With a hang-up pending, read on to see the EOF now. */
            if ((size_t)n < h->read_chunk && !(ready & IOC_HANGUP))
                break;
        } else if (n == 0) {
            ioc_eof(loop, c);
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            return fail(loop, c, "recv", errno);
        }
    }

    if (ioc_finished(c))
        return ioc_end(loop, c);
    unsigned released;
    if (loop->draining && (released = ioc_drain_release(loop, c)) != 0)
        return released;
    if (moved && !(c->flags & IOC_F_LINGER)) /* discarding is no activity */
        ioc_touch(loop, c);
    c->interest = interest(loop, c, ios_buf_pending(&c->out)); /* see queue_full */
    return c->interest;
}

void ioc_service_all(struct ioc_loop *loop, unsigned ready)
{
    for (size_t fd = 0; fd < loop->by_fd_cap; fd++) {
        struct ioc_conn *c = ioc_conn_of(loop, (int)fd);
        if (c)
            ioc_service(loop, c, ready);
    }
}
