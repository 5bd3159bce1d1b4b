/* The live hand-over (ABI 1.2): giving connections at a boundary while
 * draining, adopting those the host hands over, and closing idle ones on a
 * drain without a successor. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ioc.h"
#include "ioc_internal.h"

/* Adopted per ioc_adopt_pending: adopt_fd stays readable while more wait,
 * so the rest come at the next wait, after the open connections had their
 * turn. */
#define ADOPT_BATCH 64

bool ioc_at_boundary(const struct ioc_loop *loop, const struct ioc_conn *c)
{
    const struct ios_handler *h = loop->h;
    if (c->flags & (IOC_F_EOF | IOC_F_CLOSING | IOC_F_LINGER))
        return false; /* on its way out: it ends here */
    if (ioc_output_pending(c) != 0)
        return false; /* queued or in flight (conn->sending) */
    return !IOS_HANDLER_HAS(h, at_boundary) || !h->at_boundary ||
           h->at_boundary(h, (void *)c->state) == 1;
}

/* Bytes wait in the socket: the client already sent its next request. */
static bool input_waiting(int fd)
{
    char byte;
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/* Gives c to the host.  true: gone from here, the TCP connection untouched
 * (no shutdown, no linger: the adopter's descriptor is the same socket). */
static bool give(struct ioc_loop *loop, struct ioc_conn *c)
{
    const struct ios_handler *h = loop->h;
    if (loop->may_give && !loop->may_give(loop, c))
        return false;
    size_t pending = ios_buf_pending(&c->in);
    int rc = h->give(h, c->fd, pending ? c->in.data + c->in.off : NULL, pending);
    if (rc != 0) {
        /* The host logged why; serving it to its end here is the fallback
         * the contract promises.  Not asked again: a host that failed once
         * (control socket full for a second, master gone) would fail
         * again, once per request. */
        loop->handing_over = false;
        loop->handover_failed = true;
        return false;
    }
    if (loop->on_give)
        loop->on_give(loop, c);
    ioc_release(loop, c);
    ioc_count(&h->counters->given, 1);
    return true;
}

unsigned ioc_drain_release(struct ioc_loop *loop, struct ioc_conn *c)
{
    if (!ioc_at_boundary(loop, c))
        return 0;
    if (loop->handing_over)
        return give(loop, c) ? IOC_CLOSED : 0;
    if (!loop->closing_idle || ios_buf_pending(&c->in) != 0 || input_waiting(c->fd))
        return 0;
    /* Lingering, as at any close of ours: a request crossing our FIN gets
     * an orderly end rather than a reset. */
    return ioc_end(loop, c);
}

/* Makes an adopted descriptor the model's: blocking or not as the model
 * serves its sockets, and without O_ASYNC — a sigio giver's signal owner
 * must not keep hearing about it (a sigio adopter routes it anew). */
static int adopt_flags(const struct ioc_loop *loop, int fd)
{
    return fcntl(fd, F_SETFL, loop->blocking_fds ? 0 : O_NONBLOCK) == 0 ? 0 : -errno;
}

/* Turns one adopted descriptor and its carried input into a connection of
 * the loop.  NULL: refused or failed (closed, logged, counted refused). */
static struct ioc_conn *adopt_one(struct ioc_loop *loop, int fd, const struct ios_buf *in)
{
    const struct ios_handler *h = loop->h;
    const char *why = NULL;
    struct ioc_conn *c = NULL;
    if (loop->fd_limit > 0 && fd >= loop->fd_limit)
        why = "adopted descriptor number too high for this model (FD_SETSIZE)";
    else if (adopt_flags(loop, fd) != 0)
        why = "adopted descriptor: fcntl failed";
    else if (!(c = ioc_conn_new(loop, fd)))
        why = "adopted: out of memory or handler refused";
    else if (ioc_track(loop, c) != 0) {
        h->close(h, c->state);
        free(c);
        c = NULL;
        why = "adopted: out of memory";
    }
    if (!c) {
        /* Its client loses the session, as a refused one never had it. */
        ioc_count(&h->counters->refused, 1);
        close(fd);
        ioc_log_refusal(loop, why);
        return NULL;
    }
    /* A canary worker's connections are new ones routed to it (ABI 1.3):
     * accepted for the model it runs, as the split's metrics compare. */
    bool routed = IOS_HANDLER_HAS(h, adopts_routed) && h->adopts_routed;
    ioc_count(routed ? &h->counters->accepted : &h->counters->adopted, 1);
    ioc_count(&h->counters->active, 1);
    /* The previous model received these and counted them; here they are
     * only what the handler sees first. */
    if (ios_buf_pending(in) && ioc_feed(loop, c, in->data + in->off, ios_buf_pending(in)) < 0) {
        ioc_close(loop, c);
        return NULL;
    }
    if (ioc_finished(c) && ioc_end(loop, c) == IOC_CLOSED)
        return NULL;
    c->interest = ioc_interest(loop, c);
    return c;
}

unsigned ioc_adopt_pending(struct ioc_loop *loop, ioc_accept_hook added)
{
    const struct ios_handler *h = loop->h;
    unsigned adopted = 0;
    if (loop->adopt_fd < 0)
        return 0;
    /* The blocking model's acceptor adopts after waits no ioc_tick marks:
     * carried input is timed from now. */
    loop->stamp_ns = 0;
    for (int i = 0; i < ADOPT_BATCH; i++) {
        int fd = -1;
        struct ios_buf in = {0};
        int rc = h->adopt(h, &fd, &in);
        if (rc == -EAGAIN) {
            ios_buf_free(&in);
            break;
        }
        struct ioc_conn *c = rc == 0 ? adopt_one(loop, fd, &in) : NULL; /* else logged */
        ios_buf_free(&in);
        if (!c)
            continue;
        adopted++;
        if (added)
            added(loop, c);
    }
    return adopted;
}
