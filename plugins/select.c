/*
 * select — readiness by select(2), the oldest multiplexer.
 *
 * Shows: the interest set is rebuilt and copied into the kernel on every
 * call, and the kernel and we both scan every descriptor up to the highest
 * one: O(highest fd) per wait, whatever is ready.
 *
 * Limit: an fd_set holds descriptors below FD_SETSIZE (1024); FD_SET past
 * it writes out of bounds.  A connection whose descriptor is that high is
 * refused (accepted and closed, with a warning) and the rest keep being
 * served.  So is an adopted one (a hand-over from another model, which has
 * no such limit): it is closed, logged and counted refused — its client
 * loses the session — since handing it back could only bounce it again.
 */
#include <errno.h>
#include <sys/select.h>

#include "ioc.h"

IOS_MODEL("select", "select(2) readiness; at most FD_SETSIZE descriptors", NULL);

struct select_model {
    const struct ios_handler *h;
    struct ioc_loop loop;
    int listen_fd;
    int maxfd; /* highest descriptor in the last wait */
};

static int select_wait(struct select_model *m, fd_set *rd, fd_set *wr)
{
    FD_ZERO(rd);
    FD_ZERO(wr);
    int maxfd = m->loop.adopt_fd;
    if (maxfd >= 0)
        FD_SET(maxfd, rd);
    if (!m->loop.draining) {
        FD_SET(m->h->stop_fd, rd);
        maxfd = m->h->stop_fd > maxfd ? m->h->stop_fd : maxfd;
        if (ioc_accepting(&m->loop)) {
            FD_SET(m->listen_fd, rd);
            maxfd = m->listen_fd > maxfd ? m->listen_fd : maxfd;
        }
    }
    for (struct ioc_conn *c = ioc_first(&m->loop); c; c = ioc_next(&m->loop, c)) {
        if (c->interest & IOC_READABLE)
            FD_SET(c->fd, rd);
        if (c->interest & IOC_WRITABLE)
            FD_SET(c->fd, wr);
        if (c->fd > maxfd)
            maxfd = c->fd;
    }
    m->maxfd = maxfd;
    int ms = ioc_timeout_ms(&m->loop);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return select(maxfd + 1, rd, wr, NULL, ms < 0 ? NULL : &tv);
}

/* Services the connections select reported ready, by descriptor as
 * select itself scans (the activity list reorders as they are serviced). */
static void select_serve(struct select_model *m, const fd_set *rd, const fd_set *wr)
{
    for (int fd = 0; fd <= m->maxfd; fd++) {
        struct ioc_conn *c = ioc_conn_of(&m->loop, fd);
        unsigned ready = c ? (FD_ISSET(fd, rd) ? IOC_READABLE : 0) |
                             (FD_ISSET(fd, wr) ? IOC_WRITABLE : 0)
                           : 0;
        if (ready)
            ioc_service(&m->loop, c, ready);
    }
}

/* The readiness loop, in the order all five readiness models share (see
 * docs/models.md): watch, wait, serve the connections, then stop or
 * accept, then timers. */
static int select_loop(struct select_model *m)
{
    while (!ioc_drained(&m->loop)) {
        fd_set rd, wr;
        int n = select_wait(m, &rd, &wr);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            m->h->log(m->h, IOS_LOG_ERROR, err, "select");
            return -err;
        }
        select_serve(m, &rd, &wr);
        if (!m->loop.draining && FD_ISSET(m->h->stop_fd, &rd))
            ioc_drain_begin(&m->loop);
        else if (!m->loop.draining && FD_ISSET(m->listen_fd, &rd))
            ioc_accept_next(&m->loop, m->listen_fd, NULL);
        if (m->loop.adopt_fd >= 0 && FD_ISSET(m->loop.adopt_fd, &rd))
            ioc_adopt_pending(&m->loop, NULL);
        ioc_tick(&m->loop);
    }
    return 0;
}

int model_run(int listen_fd, const struct ios_handler *h)
{
    struct select_model m = {.h = h, .listen_fd = listen_fd};
    int rc = ioc_loop_init(&m.loop, h);
    if (rc != 0)
        return rc;
    int high = listen_fd >= FD_SETSIZE ? listen_fd
               : h->stop_fd >= FD_SETSIZE ? h->stop_fd
               : m.loop.adopt_fd >= FD_SETSIZE ? m.loop.adopt_fd : -1;
    if (high >= 0) {
        h->log(h, IOS_LOG_ERROR, 0, "%s descriptor %d is beyond FD_SETSIZE",
               high == listen_fd ? "listening" : high == h->stop_fd ? "stop" : "adopt", high);
        ioc_loop_fini(&m.loop);
        return -EMFILE;
    }
    m.loop.fd_limit = FD_SETSIZE;
    h->ready(h);
    rc = select_loop(&m);
    ioc_loop_fini(&m.loop);
    return rc;
}
