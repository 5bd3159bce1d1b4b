/*
 * uring — asynchronous I/O with io_uring (liburing).
 *
 * Shows: the program never asks "is it ready?".  It submits the operations
 * themselves (recv, send, and polls on the listening socket and stop_fd) to a submission queue
 * shared with the kernel, and later reaps their results from a completion
 * queue.  One io_uring_enter both submits and waits, so a busy server makes
 * far fewer system calls than one readiness call plus one read and one write
 * per event.
 *
 * Techniques, with the kernel each needs (older kernels get the fallback):
 *   - setup flags SINGLE_ISSUER|DEFER_TASKRUN (6.1), else COOP_TASKRUN
 *     (5.19), else none: completions are processed when we wait, not by
 *     interrupting the worker;
 *   - the listening socket is watched with a poll operation (5.1) and
 *     accepted from with accept4, not with io_uring's accept: see below;
 *   - multishot recv (6.0) into a provided-buffer ring (5.19): the kernel
 *     picks a buffer from a shared pool only when bytes arrive, so an idle
 *     connection pins no buffer.  Without the ring, each connection owns a
 *     read_chunk buffer while it lives (connections x read_chunk bytes);
 *     without multishot, recv is re-armed after each completion.
 *   Both fallbacks can be forced (models.uring.multishot / buffer_ring) to
 *   compare them; an -EINVAL on registration or on the first completion
 *   switches to them by itself.
 *
 * Memory the kernel uses must outlive its operation, untouched:
 *   - sends, double-buffered without copying: one send per connection is in
 *     flight, from the buffer ioc_send_next moved out of conn->out into
 *     conn->sending; replies the handler produces meanwhile go to a fresh
 *     conn->out and are sent once the kernel is done with conn->sending.
 *   - connections: user_data is (struct uring_conn * | operation).  A
 *     uring_conn outlives the ioc_conn it serves: when the connection
 *     closes (the loop's on_close hook), its pending recv/send are
 *     cancelled, conn->sending is taken over so ioc_close cannot recycle
 *     it, and the uring_conn is freed only once the last of their
 *     completions has arrived.
 *   - model_run returns only after every operation has completed.
 *
 * Backpressure: whenever ioc_interest drops IOC_READABLE (output past the
 * high-water mark, EOF, the handler asked to close) the recv is cancelled
 * instead of re-armed, exactly where a readiness model would stop waiting
 * for it; it is re-armed when the interest comes back.
 *
 * Hand-over: the host's adopt_fd is watched with a poll like the listener,
 * while serving and draining.  A connection is given only when the kernel
 * holds nothing of ours for it: at a boundary no send is in flight (its
 * output is sent), and its recv — a multishot one too — is cancelled
 * first; the give happens when the last completion of that recv has come
 * back, with its provided buffer returned to the ring.
 *
 * Why no accept operation: the listening socket is shared by every worker.
 * io_uring's accept waits on it exclusively (one waiter woken per
 * connection) and a multishot accept stays first in the socket's wait
 * queue, so one ring took every connection; worse, the wake-up goes to a
 * ring whether or not its task runs, so a stopped or busy worker swallowed
 * wake-ups while the others slept and the connection sat in the queue.
 * EPOLLEXCLUSIVE skips an epoll whose task is not waiting; io_uring cannot.
 * A plain (non-exclusive) poll wakes every idle worker, and whichever runs
 * first accepts: a stalled worker delays nobody.
 *
 * If io_uring is unavailable (kernel.io_uring_disabled, a seccomp filter, a
 * kernel before 5.5, whose rings have no IORING_SETUP_CQSIZE) model_run logs why and returns without calling
 * h->ready, so the host can fall back to the next model of the list.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ioc.h"

static const struct ios_knob uring_knobs[] = {
    {"entries", IOS_KNOB_INT, 1024, NULL, 16, 32768,
     "submission queue entries (the completion queue gets four times as many)"},
    {"multishot", IOS_KNOB_BOOL, 1, NULL, 0, 1,
     "multishot recv; false = one recv per completion"},
    {"buffer_ring", IOS_KNOB_BOOL, 1, NULL, 0, 1,
     "recv into a provided-buffer ring; false = a buffer per connection"},
    {"buffers", IOS_KNOB_INT, 64, NULL, 1, 32768,
     "read_chunk-sized buffers in the ring (rounded up to a power of two)"},
    IOS_KNOB_END,
};

IOS_MODEL("uring", "asynchronous recv/send with io_uring", uring_knobs);

/* Operations, in the low bits of user_data (pointers are 8-aligned). */
enum uring_op { OP_LISTEN = 1, OP_STOP, OP_CANCEL, OP_RECV, OP_SEND, OP_ADOPT };
#define OP_MASK 7u

#define BUF_GROUP 1
#define TEARDOWN_WAIT_MS 2000

struct uring_conn {
    struct ioc_conn *conn; /* NULL once closed: waiting for its last CQEs */
    unsigned ops;          /* recv and send operations in flight */
    bool recv_armed, recv_cancelled, send_busy;
    struct ios_buf orphan; /* a closed connection's buffer still being sent */
    char *rbuf;            /* recv target without a buffer ring */
};

struct uring_model {
    const struct ios_handler *h;
    struct ioc_loop loop;
    struct io_uring ring;
    int listen_fd;
    bool ring_ok, closing;
    bool multishot_recv;
    bool recv_seen;              /* a multishot recv has worked once */
    bool listen_armed, stop_armed, adopt_armed;
    /* recv and send operations in flight: they use memory of ours, which
     * must outlive them.  The polls and cancels use none and are not
     * counted, nor is what liburing submits for its own wait timeout on a
     * kernel without IORING_FEAT_EXT_ARG; io_uring_queue_exit ends them. */
    unsigned inflight;
    int error;                   /* -errno that ends the loop, or 0 */

    struct io_uring_buf_ring *br; /* NULL: a buffer per connection */
    char *bufs;
    unsigned nbufs;
    size_t buf_size;
};

/* ---------------------------------------------------------- submission */

static struct io_uring_sqe *uring_sqe(struct uring_model *m)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&m->ring);
    if (!sqe && io_uring_submit(&m->ring) >= 0) /* full: make room */
        sqe = io_uring_get_sqe(&m->ring);
    return sqe;
}

static void uring_tag(struct io_uring_sqe *sqe, void *ptr, enum uring_op op)
{
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)ptr | op);
}

/* Cancels the operation (ptr, op).  Its own completion still arrives. */
static int uring_cancel(struct uring_model *m, void *ptr, enum uring_op op)
{
    struct io_uring_sqe *sqe = uring_sqe(m);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)ptr | op, 0);
    uring_tag(sqe, NULL, OP_CANCEL);
    return 0;
}

/* A one-shot poll on fd (listen_fd, adopt_fd): re-armed after each pass,
 * it reports a descriptor that is still readable at once
 * (level-triggered, in effect). */
static int uring_arm_poll(struct uring_model *m, int fd, enum uring_op op, bool *armed)
{
    struct io_uring_sqe *sqe = uring_sqe(m);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_poll_add(sqe, fd, POLLIN);
    uring_tag(sqe, NULL, op);
    *armed = true;
    return 0;
}

static int uring_arm_recv(struct uring_model *m, struct uring_conn *uc)
{
    if (!m->br && !uc->rbuf && !(uc->rbuf = malloc(m->buf_size)))
        return -ENOMEM;
    struct io_uring_sqe *sqe = uring_sqe(m);
    if (!sqe)
        return -EBUSY;
    int fd = uc->conn->fd;
    if (!m->br) {
        io_uring_prep_recv(sqe, fd, uc->rbuf, m->buf_size, 0);
    } else {
        /* A multishot recv drains the socket into as many buffers as it
         * can get before a cancel lands, so it is armed only for a
         * connection with no output queued (a request/response client).
         * One that streams is read a buffer at a time, so backpressure
         * stops it within read_chunk of the high-water mark. */
        if (m->multishot_recv && ioc_output_pending(uc->conn) == 0)
            io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
        else
            io_uring_prep_recv(sqe, fd, NULL, m->buf_size, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP;
    }
    uring_tag(sqe, uc, OP_RECV);
    uc->ops++;
    m->inflight++;
    uc->recv_armed = true;
    uc->recv_cancelled = false;
    return 0;
}

static int uring_arm_send(struct uring_model *m, struct uring_conn *uc)
{
    struct ioc_conn *c = uc->conn;
    struct io_uring_sqe *sqe = uring_sqe(m);
    if (!sqe)
        return -EBUSY;
    const struct ios_buf *b = ioc_send_next(&m->loop, c);
    io_uring_prep_send(sqe, c->fd, b->data + b->off, ios_buf_pending(b), MSG_NOSIGNAL);
    uring_tag(sqe, uc, OP_SEND);
    uc->ops++;
    m->inflight++;
    uc->send_busy = true;
    return 0;
}

/* ------------------------------------------------------- connections */

/* Frees a closed connection's state once the kernel is done with it. */
static void uring_release(struct uring_conn *uc)
{
    if (uc->conn || uc->ops > 0)
        return;
    ios_buf_free(&uc->orphan);
    free(uc->rbuf);
    free(uc);
}

/* The loop's close hook, called before the descriptor is closed. */
static void uring_forget(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct uring_model *m = loop->model;
    struct uring_conn *uc = c->model_data;
    if (!uc)
        return;
    uc->conn = NULL;
    int rc = 0;
    if (uc->recv_armed && !uc->recv_cancelled)
        rc |= uring_cancel(m, uc, OP_RECV);
    if (uc->send_busy) {
        rc |= uring_cancel(m, uc, OP_SEND);
        /* The kernel may still read it: ioc_close must not recycle it. */
        uc->orphan = c->sending;
        c->sending = (struct ios_buf){0};
    }
    /* No room to cancel: a shut-down socket ends its operations too. */
    if (rc != 0)
        shutdown(c->fd, SHUT_RDWR);
    /* An SQE names a descriptor by number, and the kernel looks the number
     * up when the SQE is submitted.  ioc_close is about to free the number,
     * and accept4 or an adoption in the same completion batch may hand it
     * to a new client: a recv or send still sitting unsubmitted in the SQ
     * would then read that client's bytes or send this one's replies to it.
     * Submitted now, they hold this connection's file until they end. */
    if (io_uring_sq_ready(&m->ring) > 0)
        io_uring_submit(&m->ring);
    uring_release(uc);
}

/*
 * The one place that decides what a connection has in flight, from what
 * the shared code says it wants (ioc_interest): a send while output is
 * queued, a recv while it may read.  May close the connection.
 */
static void uring_update(struct uring_model *m, struct uring_conn *uc)
{
    struct ioc_conn *c = uc->conn;
    if (ioc_finished(c) && ioc_end(&m->loop, c) == IOC_CLOSED)
        return;
    if (m->loop.draining && ioc_drain_release(&m->loop, c) == IOC_CLOSED)
        return;
    unsigned want = ioc_interest(&m->loop, c);
    bool read = want & IOC_READABLE;
    int rc = 0;
    if ((want & IOC_WRITABLE) && !uc->send_busy)
        rc = uring_arm_send(m, uc);
    if (rc == 0 && read && !uc->recv_armed)
        rc = uring_arm_recv(m, uc);
    else if (rc == 0 && !read && uc->recv_armed && !uc->recv_cancelled) {
        rc = uring_cancel(m, uc, OP_RECV);
        uc->recv_cancelled = rc == 0;
    }
    if (rc != 0) {
        m->h->log(m->h, IOS_LOG_WARN, -rc, "io_uring: fd %d: queueing an operation",
                  c->fd);
        ioc_close(&m->loop, c);
    }
}

/* The loop's may_give hook: a connection leaves only once no recv of ours
 * can still write into a buffer for it (see the top of the file). */
static bool uring_may_give(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct uring_model *m = loop->model;
    struct uring_conn *uc = c->model_data;
    if (!uc || uc->send_busy)
        return !uc;
    if (uc->recv_armed && !uc->recv_cancelled)
        uc->recv_cancelled = uring_cancel(m, uc, OP_RECV) == 0;
    return !uc->recv_armed;
}

/* ioc_accept_next's and ioc_adopt_pending's hook for each new connection. */
static void uring_open(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct uring_model *m = loop->model;
    struct uring_conn *uc = calloc(1, sizeof(*uc));
    if (!uc) {
        m->h->log(m->h, IOS_LOG_WARN, ENOMEM, "io_uring: new connection");
        ioc_close(&m->loop, c);
        return;
    }
    uc->conn = c;
    c->model_data = uc;
    uring_update(m, uc);
}

/* ------------------------------------------------------- completions */

static void uring_recycle(struct uring_model *m, unsigned bid)
{
    io_uring_buf_ring_add(m->br, m->bufs + (size_t)bid * m->buf_size,
                          (unsigned)m->buf_size, (unsigned short)bid,
                          io_uring_buf_ring_mask(m->nbufs), 0);
    io_uring_buf_ring_advance(m->br, 1);
}

static void uring_received(struct uring_model *m, struct uring_conn *uc,
                           const struct io_uring_cqe *cqe)
{
    struct ioc_conn *c = uc->conn;
    int res = cqe->res;
    bool has_buf = cqe->flags & IORING_CQE_F_BUFFER;
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        uc->recv_armed = uc->recv_cancelled = false;

    if (c && res > 0) {
        m->recv_seen = true;
        ioc_received(&m->loop, c, (size_t)res);
        const char *data = has_buf ? m->bufs + (size_t)bid * m->buf_size : uc->rbuf;
        if (ioc_feed(&m->loop, c, data, (size_t)res) < 0) {
            ioc_close(&m->loop, c);
            c = NULL;
        }
    } else if (c && res == 0) {
        ioc_eof(&m->loop, c);
    } else if (c && res == -EINVAL && m->multishot_recv && !m->recv_seen) {
        m->h->log(m->h, IOS_LOG_INFO, 0,
                  "multishot recv unsupported by this kernel: one at a time");
        m->multishot_recv = false;
    } else if (c && res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        /* ENOBUFS: the ring ran dry; every buffer is back by now. */
        ioc_log_conn_error(&m->loop, "recv", -res);
        ioc_close(&m->loop, c);
        c = NULL;
    }
    if (has_buf) /* ioc_feed kept what the handler left */
        uring_recycle(m, bid);
    if (c)
        uring_update(m, uc);
}

static void uring_sent(struct uring_model *m, struct uring_conn *uc, int res)
{
    struct ioc_conn *c = uc->conn;
    uc->send_busy = false;
    if (c && res > 0) {
        ioc_sent(&m->loop, c, (size_t)res);
        uring_update(m, uc);
    } else if (c) {
        ioc_log_conn_error(&m->loop, "send", res < 0 ? -res : EPIPE);
        ioc_close(&m->loop, c);
    }
}

static void uring_complete(struct uring_model *m, const struct io_uring_cqe *cqe)
{
    /* liburing's own wait timeout (LIBURING_UDATA_TIMEOUT) has none of
     * our operation tags; it must not be taken for one. */
    if (cqe->user_data == LIBURING_UDATA_TIMEOUT)
        return;
    enum uring_op op = (enum uring_op)(cqe->user_data & OP_MASK);
    struct uring_conn *uc = (struct uring_conn *)(uintptr_t)(cqe->user_data & ~(uint64_t)OP_MASK);
    bool last = !(cqe->flags & IORING_CQE_F_MORE);

    switch (op) {
    case OP_LISTEN:
        m->listen_armed = false;
        /* While closing down the loop is gone; in a drain, a cancelled
         * or late poll only means "stop watching". */
        if (cqe->res > 0 && !m->closing)
            ioc_accept_next(&m->loop, m->listen_fd, uring_open);
        else if (cqe->res < 0 && cqe->res != -ECANCELED && !m->closing)
            m->h->log(m->h, IOS_LOG_WARN, -cqe->res, "io_uring poll(listen)");
        break;
    case OP_ADOPT:
        m->adopt_armed = false;
        if (cqe->res > 0 && !m->closing)
            ioc_adopt_pending(&m->loop, uring_open);
        else if (cqe->res < 0 && cqe->res != -ECANCELED && !m->closing)
            m->h->log(m->h, IOS_LOG_WARN, -cqe->res, "io_uring poll(adopt_fd)");
        break;
    case OP_STOP:
        m->stop_armed = false;
        if (m->closing || cqe->res == -ECANCELED)
            break;
        if (cqe->res < 0) { /* blind to stop requests: give up */
            m->h->log(m->h, IOS_LOG_ERROR, -cqe->res, "io_uring poll(stop_fd)");
            m->error = cqe->res;
            break;
        }
        ioc_drain_begin(&m->loop);
        /* Best effort: the drain waits for no poll, and a poll that still
         * reports the listener after the drain began accepts nothing
         * (ioc_accept_next does nothing while draining). */
        if (m->listen_armed)
            uring_cancel(m, NULL, OP_LISTEN);
        break;
    case OP_RECV:
    case OP_SEND:
        /* The operation's reference is dropped only after handling, so a
         * close inside cannot free uc under our feet. */
        if (op == OP_RECV)
            uring_received(m, uc, cqe);
        else
            uring_sent(m, uc, cqe->res);
        if (last) {
            uc->ops--;
            m->inflight--;
        }
        uring_release(uc);
        break;
    case OP_CANCEL:
    default:
        break;
    }
}

static void uring_reap(struct uring_model *m)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&m->ring, head, cqe) {
        uring_complete(m, cqe);
        n++;
    }
    io_uring_cq_advance(&m->ring, n);
}

/* Submits what is queued and waits up to timeout_ms (-1: no limit) for a
 * completion, then handles every completion.  0 or -errno. */
static int uring_wait(struct uring_model *m, int timeout_ms)
{
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (timeout_ms % 1000) * 1000000L};
    int rc = io_uring_submit_and_wait_timeout(&m->ring, &cqe, 1,
                                              timeout_ms < 0 ? NULL : &ts, NULL);
    /* EBUSY/EAGAIN: completions must be reaped before more can be taken. */
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
        m->h->log(m->h, IOS_LOG_ERROR, -rc, "io_uring_submit_and_wait_timeout");
        return rc;
    }
    uring_reap(m);
    return 0;
}

static int uring_loop(struct uring_model *m)
{
    while (!ioc_drained(&m->loop) || m->inflight > 0) {
        if (!m->loop.draining && !m->listen_armed && ioc_accepting(&m->loop) &&
            uring_arm_poll(m, m->listen_fd, OP_LISTEN, &m->listen_armed) != 0) {
            m->h->log(m->h, IOS_LOG_ERROR, EBUSY, "io_uring: queueing poll(listen)");
            return -EBUSY;
        }
        if (m->loop.adopt_fd >= 0 && !m->adopt_armed &&
            uring_arm_poll(m, m->loop.adopt_fd, OP_ADOPT, &m->adopt_armed) != 0) {
            m->h->log(m->h, IOS_LOG_ERROR, EBUSY, "io_uring: queueing poll(adopt_fd)");
            return -EBUSY;
        }
        int rc = uring_wait(m, ioc_timeout_ms(&m->loop));
        if (rc != 0 || m->error != 0)
            return rc ? rc : m->error;
        ioc_tick(&m->loop);
    }
    return 0;
}

/* ------------------------------------------------------------- set-up */

/* Says why io_uring cannot be used here, as precisely as we can tell. */
static void uring_unavailable(const struct ios_handler *h, int err)
{
    char note[128] = "";
    int disabled = -1;
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    if (f) {
        if (fscanf(f, "%d", &disabled) != 1)
            disabled = -1;
        fclose(f);
    }
    if (err == EPERM && disabled > 0)
        snprintf(note, sizeof(note), " (kernel.io_uring_disabled=%d)", disabled);
    else if (err == EPERM)
        snprintf(note, sizeof(note), " (refused by a seccomp filter or security policy)");
    else if (err == ENOSYS)
        snprintf(note, sizeof(note), " (no io_uring in this kernel, or filtered out)");
    else if (err == ENOMEM)
        snprintf(note, sizeof(note), " (kernels before 5.12 charge rings to RLIMIT_MEMLOCK)");
    const char *text = strerrordesc_np(err);
    h->log(h, IOS_LOG_ERROR, 0, "io_uring_setup: %s%s", text ? text : "unknown error",
           note);
}

static int uring_setup_ring(struct uring_model *m, unsigned entries)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]) && rc == -EINVAL; i++) {
        struct io_uring_params p = {.flags = tries[i] | IORING_SETUP_CQSIZE,
                                    .cq_entries = entries * 4};
        rc = io_uring_queue_init_params(entries, &m->ring, &p);
        if (rc == 0)
            m->h->log(m->h, IOS_LOG_DEBUG, 0, "io_uring set up with flags 0x%x",
                      p.flags);
    }
    if (rc != 0) {
        uring_unavailable(m->h, -rc);
        return rc;
    }
    m->ring_ok = true;
    return 0;
}

/* The provided-buffer ring; -EINVAL (older kernel) means "go without". */
static int uring_setup_buffers(struct uring_model *m, unsigned want)
{
    unsigned n = 1;
    while (n < want)
        n *= 2;
    size_t ring_bytes = n * sizeof(struct io_uring_buf);
    void *ring_mem = NULL;
    if (posix_memalign(&ring_mem, 4096, ring_bytes) != 0 ||
        !(m->bufs = malloc(n * m->buf_size))) {
        free(ring_mem);
        m->h->log(m->h, IOS_LOG_ERROR, ENOMEM, "io_uring: buffer ring");
        return -ENOMEM;
    }
    memset(ring_mem, 0, ring_bytes);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)ring_mem,
                                   .ring_entries = n, .bgid = BUF_GROUP};
    int rc = io_uring_register_buf_ring(&m->ring, &reg, 0);
    if (rc != 0) {
        free(ring_mem);
        free(m->bufs);
        m->bufs = NULL;
        if (rc != -EINVAL) {
            m->h->log(m->h, IOS_LOG_ERROR, -rc, "io_uring_register_buf_ring");
            return rc;
        }
        m->h->log(m->h, IOS_LOG_INFO, 0, "no provided-buffer rings in this kernel: "
                  "a receive buffer per connection");
        return 0;
    }
    m->br = ring_mem;
    m->nbufs = n;
    io_uring_buf_ring_init(m->br);
    for (unsigned i = 0; i < n; i++)
        io_uring_buf_ring_add(m->br, m->bufs + (size_t)i * m->buf_size,
                              (unsigned)m->buf_size, (unsigned short)i,
                              io_uring_buf_ring_mask(n), (int)i);
    io_uring_buf_ring_advance(m->br, (int)n);
    return 0;
}

static int uring_watch_stop(struct uring_model *m)
{
    struct io_uring_sqe *sqe = uring_sqe(m);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_poll_add(sqe, m->h->stop_fd, POLLIN);
    uring_tag(sqe, NULL, OP_STOP);
    m->stop_armed = true;
    return 0;
}

/* Cancels whatever is still in flight and waits for it, so no memory the
 * kernel may write to is freed; on a timeout the memory is left behind. */
static void uring_teardown(struct uring_model *m)
{
    m->closing = true;
    if (m->ring_ok) {
        if (m->listen_armed)
            uring_cancel(m, NULL, OP_LISTEN);
        if (m->stop_armed)
            uring_cancel(m, NULL, OP_STOP);
        if (m->adopt_armed)
            uring_cancel(m, NULL, OP_ADOPT);
    }
    ioc_loop_fini(&m->loop); /* the close hook cancels each connection's ops */
    uint64_t deadline = ioc_now_ms() + TEARDOWN_WAIT_MS;
    while (m->ring_ok && m->inflight > 0 && ioc_now_ms() < deadline)
        if (uring_wait(m, 100) != 0)
            break;
    if (m->ring_ok)
        io_uring_queue_exit(&m->ring);
    if (m->inflight > 0) {
        m->h->log(m->h, IOS_LOG_WARN, 0, "io_uring: %u operation(s) did not "
                  "complete; leaving their buffers allocated", m->inflight);
        return;
    }
    free(m->br);
    free(m->bufs);
}

int model_run(int listen_fd, const struct ios_handler *h)
{
    struct uring_model m = {.h = h, .listen_fd = listen_fd, .buf_size = h->read_chunk};
    long long entries, nbufs; /* knob values: the host fills in the defaults */
    int multishot, buffer_ring;
    h->knob_int(h, "entries", &entries);
    h->knob_int(h, "buffers", &nbufs);
    h->knob_bool(h, "multishot", &multishot);
    h->knob_bool(h, "buffer_ring", &buffer_ring);
    m.multishot_recv = multishot;

    int rc = ioc_loop_init(&m.loop, h);
    if (rc != 0)
        return rc;
    m.loop.model = &m;
    m.loop.on_close = uring_forget;
    m.loop.may_give = uring_may_give;

    if ((rc = uring_setup_ring(&m, (unsigned)entries)) == 0 &&
        (!buffer_ring || (rc = uring_setup_buffers(&m, (unsigned)nbufs)) == 0) &&
        (rc = uring_watch_stop(&m)) == 0) {
        /* Multishot recv needs the buffer ring. */
        m.multishot_recv = m.multishot_recv && m.br;
        h->log(h, IOS_LOG_DEBUG, 0, "%s recv, %s",
               m.multishot_recv ? "multishot" : "single-shot",
               m.br ? "provided-buffer ring" : "a buffer per connection");
        h->ready(h);
        rc = uring_loop(&m);
    }
    uring_teardown(&m);
    return rc;
}
