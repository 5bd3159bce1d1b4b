/* Accepting: limits, refusals, and running out of descriptors. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ioc.h"
#include "ioc_internal.h"

/* How long accepting pauses when the process is out of descriptors or
 * memory and the reserve trick could not help. */
#define ACCEPT_PAUSE_MS 100
#define REFUSAL_LOG_INTERVAL_MS 1000

bool ioc_accepting(const struct ioc_loop *loop)
{
    return !loop->draining &&
           (loop->accept_resume_ms == 0 || ioc_now_ms() >= loop->accept_resume_ms);
}

void ioc_log_refusal(struct ioc_loop *loop, const char *why)
{
    uint64_t now = ioc_now_ms();
    loop->refusals_unlogged++;
    if (now - loop->last_refusal_log_ms < REFUSAL_LOG_INTERVAL_MS &&
        loop->last_refusal_log_ms != 0)
        return;
    loop->h->log(loop->h, IOS_LOG_WARN, 0,
                 "refused %llu connection(s): %s",
                 (unsigned long long)loop->refusals_unlogged, why);
    loop->refusals_unlogged = 0;
    loop->last_refusal_log_ms = now;
}

static void refuse(struct ioc_loop *loop, int fd, const char *why)
{
    /* counted before the client can see the close */
    ioc_count(&loop->h->counters->refused, 1);
    close(fd);
    ioc_log_refusal(loop, why);
}

/*
 * Out of descriptors: the pending connections would keep listen_fd
 * readable and spin every model.  Give up the reserve descriptor, use it to
 * accept-and-close what is queued, and take it back (libuv's trick).
 */
static int accept_out_of_fds(struct ioc_loop *loop, int listen_fd, int err)
{
    if (loop->reserve_fd >= 0) {
        close(loop->reserve_fd);
        loop->reserve_fd = -1;
        for (int i = 0; i < 1024; i++) {
            int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                break;
            close(fd);
            ioc_count(&loop->h->counters->refused, 1);
        }
        loop->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    loop->accept_resume_ms = ioc_now_ms() + ACCEPT_PAUSE_MS;
    ioc_log_refusal(loop, err == EMFILE ? "out of file descriptors (EMFILE)"
                                        : "system out of file descriptors (ENFILE)");
    return -err;
}

struct ioc_conn *ioc_conn_new(struct ioc_loop *loop, int fd)
{
    const struct ios_handler *h = loop->h;
    struct ioc_conn *c = malloc(sizeof(*c) + h->conn_state_size);
    if (!c)
        return NULL;
    *c = (struct ioc_conn){.fd = fd};
    if (h->open(h, c->state) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

/* An accept on listen_fd failed with `err` (positive): -EAGAIN, 0 (this
 * one is lost: call again), or -errno (out of resources: paused). */
static int accept_failed(struct ioc_loop *loop, int listen_fd, int err)
{
    const struct ios_handler *h = loop->h;
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return -EAGAIN;
    case EINTR:
    case ECONNABORTED: /* the client left before we got to it */
    case EPROTO:
    case EPERM:        /* a firewall said no to this one */
        return 0;
    case EMFILE:
    case ENFILE:
        return accept_out_of_fds(loop, listen_fd, err);
    default:           /* ENOBUFS, ENOMEM, or worse: back off */
        h->log(h, IOS_LOG_ERROR, err, "accept4");
        loop->accept_resume_ms = ioc_now_ms() + ACCEPT_PAUSE_MS;
        return -err;
    }
}

/* fd was just accepted: applies the limits, opens the handler and tracks
 * it.  0, with *conn set, or NULL when it was refused (and closed). */
static int accept_track(struct ioc_loop *loop, int fd, struct ioc_conn **conn)
{
    const struct ios_handler *h = loop->h;
    *conn = NULL;
    /* Another thread may have taken the slot the reserve descriptor left
     * (the blocking model's connection threads open files too): take it
     * back as soon as there is room, or the next EMFILE could only pause. */
    if (loop->reserve_fd < 0)
        loop->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (loop->fd_limit > 0 && fd >= loop->fd_limit) {
        refuse(loop, fd, "descriptor number too high for this model (FD_SETSIZE)");
        return 0;
    }
    uint64_t active = __atomic_load_n(&h->counters->active, __ATOMIC_RELAXED);
    if (active >= h->max_connections) {
        refuse(loop, fd, "max_connections reached");
        return 0;
    }
    if (loop->conn_limit && active >= loop->conn_limit) {
        refuse(loop, fd, loop->conn_limit_why);
        return 0;
    }
    /* Replies are written whole; waiting for Nagle only adds latency. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    struct ioc_conn *c = ioc_conn_new(loop, fd);
    if (!c) {
        refuse(loop, fd, "out of memory or handler refused");
        return 0;
    }
    if (ioc_track(loop, c) != 0) {
        h->close(h, c->state);
        free(c);
        refuse(loop, fd, "out of memory");
        return 0;
    }
    ioc_count(&h->counters->accepted, 1);
    ioc_count(&h->counters->active, 1);
    *conn = c;
    return 0;
}

/* The A/B split (ABI 1.3): the host may take a new connection for the
 * canary side before this model has done anything with it.  true: gone
 * (closed here: the host holds its own reference, as for a hand-over). */
static bool routed_away(const struct ios_handler *h, int fd)
{
    if (!IOS_HANDLER_HAS(h, route_accepted) || !h->route_accepted ||
        h->route_accepted(h, fd) != 1)
        return false;
    close(fd);
    return true;
}

int ioc_accept(struct ioc_loop *loop, int listen_fd, bool blocking,
               struct ioc_conn **conn)
{
    *conn = NULL;
    if (!ioc_accepting(loop))
        return -EAGAIN;
    loop->accept_resume_ms = 0;

    int fd = accept4(listen_fd, NULL, NULL,
                     SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK));
    if (fd < 0)
        return accept_failed(loop, listen_fd, errno);
    if (routed_away(loop->h, fd))
        return 0;
    return accept_track(loop, fd, conn);
}

void ioc_accept_next(struct ioc_loop *loop, int listen_fd, ioc_accept_hook added)
{
    struct ioc_conn *c;
    int rc;
    while ((rc = ioc_accept(loop, listen_fd, false, &c)) == 0 && !c)
        ; /* refused: the next one */
    if (rc == 0) {
        c->interest = IOC_READABLE;
        if (added)
            added(loop, c);
    }
}
