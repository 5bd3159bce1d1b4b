/*
 * poll — readiness by poll(2), I/O multiplexing without select's limit.
 *
 * Shows: the interest set is an array of struct pollfd that we keep and the
 * kernel reads on every call; it has no FD_SETSIZE ceiling and only costs
 * what is in it, but each wait still copies and scans every entry:
 * O(connections) per wait, whatever is ready.
 *
 * The array stays compact: slot 0 is stop_fd, slot 1 the listening socket
 * (fd -1, which poll skips, while not accepting), slot 2 the host's
 * adopt_fd (-1 when it hands nothing over), and each connection owns one
 * slot from 3 on, its index kept in conn->model_flags.  A closing
 * connection's slot is filled with the last one.
 * Any kernel.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "ioc.h"

IOS_MODEL("poll", "poll(2) readiness over a compact pollfd array", NULL);

#define SLOT_STOP 0
#define SLOT_LISTEN 1
#define SLOT_ADOPT 2
#define SLOT_FIRST_CONN 3
#define NO_SLOT ((unsigned)-1)

struct poll_model {
    const struct ios_handler *h;
    struct ioc_loop loop;
    int listen_fd;
    struct pollfd *fds;
    nfds_t nfds, cap;
};

static int poll_add(struct poll_model *m, struct ioc_conn *c)
{
    if (m->nfds == m->cap) {
        nfds_t cap = m->cap * 2;
        struct pollfd *fds = realloc(m->fds, cap * sizeof(*fds));
        if (!fds)
            return -ENOMEM;
        m->fds = fds;
        m->cap = cap;
    }
    c->model_flags = (unsigned)m->nfds;
    m->fds[m->nfds++] = (struct pollfd){.fd = c->fd, .events = (short)ioc_events_of(c->interest)};
    return 0;
}

/* The loop's close hook: the last slot moves into the closing one. */
static void poll_forget(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct poll_model *m = loop->model;
    if (c->model_flags == NO_SLOT)
        return;
    nfds_t slot = c->model_flags, last = m->nfds - 1;
    if (slot != last) {
        m->fds[slot] = m->fds[last];
        ioc_conn_of(loop, m->fds[slot].fd)->model_flags = (unsigned)slot;
    }
    m->nfds--;
}

static void poll_added(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct poll_model *m = loop->model;
    if (poll_add(m, c) != 0) {
        m->h->log(m->h, IOS_LOG_WARN, ENOMEM, "poll: adding a connection");
        c->model_flags = NO_SLOT;
        ioc_close(loop, c);
    }
}

/* Services the connections poll reported ready. */
static void poll_serve(struct poll_model *m)
{
    /* Downwards: a connection closed at slot i takes the last slot's
     * entry, which was already handled, so nothing is visited twice and
     * nothing is skipped. */
    for (nfds_t i = m->nfds; i-- > SLOT_FIRST_CONN;) {
        short re = m->fds[i].revents;
        if (!re)
            continue;
        struct ioc_conn *c = ioc_conn_of(&m->loop, m->fds[i].fd);
        unsigned now = ioc_service(&m->loop, c, ioc_ready_of((unsigned short)re));
        if (now != IOC_CLOSED)
            m->fds[i].events = (short)ioc_events_of(now);
    }
}

/* The readiness loop, in the order all five readiness models share (see
 * docs/models.md): watch, wait, serve the connections, then stop or
 * accept, then timers. */
static int poll_loop(struct poll_model *m)
{
    while (!ioc_drained(&m->loop)) {
        /* Draining: neither stop_fd nor the listener.  Out of descriptors:
         * not the listener until the pause ends, or its readiness would
         * spin the loop.  poll skips a negative fd. */
        bool watch = !m->loop.draining;
        m->fds[SLOT_STOP].fd = watch ? m->h->stop_fd : -1;
        m->fds[SLOT_LISTEN].fd = watch && ioc_accepting(&m->loop) ? m->listen_fd : -1;
        int n = poll(m->fds, m->nfds, ioc_timeout_ms(&m->loop));
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            m->h->log(m->h, IOS_LOG_ERROR, err, "poll");
            return -err;
        }
        poll_serve(m);
        if (m->fds[SLOT_STOP].revents && !m->loop.draining)
            ioc_drain_begin(&m->loop);
        else if (m->fds[SLOT_LISTEN].revents && !m->loop.draining)
            ioc_accept_next(&m->loop, m->listen_fd, poll_added);
        if (m->fds[SLOT_ADOPT].revents)
            ioc_adopt_pending(&m->loop, poll_added);
        ioc_tick(&m->loop);
    }
    return 0;
}

int model_run(int listen_fd, const struct ios_handler *h)
{
    struct poll_model m = {.h = h, .listen_fd = listen_fd, .cap = 64};
    int rc = ioc_loop_init(&m.loop, h);
    if (rc != 0)
        return rc;
    m.loop.model = &m;
    m.loop.on_close = poll_forget;
    m.fds = malloc(m.cap * sizeof(*m.fds));
    if (!m.fds) {
        h->log(h, IOS_LOG_ERROR, ENOMEM, "poll: allocating the pollfd array");
        ioc_loop_fini(&m.loop);
        return -ENOMEM;
    }
    m.fds[SLOT_STOP] = (struct pollfd){.fd = h->stop_fd, .events = POLLIN};
    m.fds[SLOT_LISTEN] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
    m.fds[SLOT_ADOPT] = (struct pollfd){.fd = m.loop.adopt_fd, .events = POLLIN};
    m.nfds = SLOT_FIRST_CONN;
    h->ready(h);
    rc = poll_loop(&m);
    ioc_loop_fini(&m.loop);
    free(m.fds);
    return rc;
}
