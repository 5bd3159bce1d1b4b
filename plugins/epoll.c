/*
 * epoll — readiness notification with epoll(7).
 *
 * Shows: the kernel keeps the interest set, so each wait costs O(ready), not
 * O(connections); level- or edge-triggered (models.epoll.edge_triggered).
 * With several workers on one listening socket, EPOLLEXCLUSIVE (Linux 4.5)
 * wakes one worker per new connection instead of all of them.
 *
 * Level-triggered: a connection's registration follows its interest
 * (EPOLLIN while it may read, EPOLLOUT while output is queued).
 * Edge-triggered: registered once for both; the shared pump reads until
 * EAGAIN, so no edge is lost.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ioc.h"

static const struct ios_knob epoll_knobs[] = {
    {"edge_triggered", IOS_KNOB_BOOL, 0, NULL, 0, 1,
     "EPOLLET: one wake-up per change instead of while ready"},
    {"events_per_wait", IOS_KNOB_INT, 256, NULL, 1, 4096,
     "size of the epoll_wait event array"},
    IOS_KNOB_END,
};

IOS_MODEL("epoll", "epoll(7) readiness, level- or edge-triggered", epoll_knobs);

/* epoll's event bits are poll's, so the shared mapping (ioc_ready_of,
 * ioc_events_of) serves both. */
_Static_assert(EPOLLIN == POLLIN && EPOLLOUT == POLLOUT && EPOLLRDHUP == POLLRDHUP &&
                   EPOLLHUP == POLLHUP && EPOLLERR == POLLERR,
               "epoll and poll event bits differ");

/* Tags in epoll_data for the descriptors that are not connections. */
#define TAG_LISTEN ((void *)1)
#define TAG_STOP ((void *)2)
#define TAG_ADOPT ((void *)3)

/* model_flags: another process may still hold the connection's file. */
#define EPOLL_SHARED_FILE 0x1u

struct epoll_model {
    const struct ios_handler *h;
    struct ioc_loop loop;
    int epfd;
    int listen_fd;
    bool edge;
    bool listening; /* listen_fd is in the epoll set */
    struct epoll_event *events;
    int max_events;
};

static uint32_t epoll_mask(const struct epoll_model *m, unsigned interest)
{
    if (m->edge)
        return EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    return ioc_events_of(interest);
}

static int epoll_set_listening(struct epoll_model *m, bool on)
{
    if (on == m->listening)
        return 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = TAG_LISTEN};
    int rc = epoll_ctl(m->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, m->listen_fd, &ev);
    if (rc != 0) {
        int err = errno; /* h->log need not keep errno */
        m->h->log(m->h, IOS_LOG_ERROR, err, "epoll_ctl(listen)");
        return -err;
    }
    m->listening = on;
    return 0;
}

static void epoll_added(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct epoll_model *m = loop->model;
    struct epoll_event ev = {.events = epoll_mask(m, c->interest), .data.ptr = c};
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        m->h->log(m->h, IOS_LOG_WARN, errno, "epoll_ctl(ADD)");
        ioc_close(loop, c);
    }
}

/* A given connection's open file lives on in the adopter, and with it our
 * registration (epoll forgets a file when its last reference goes, not a
 * descriptor): it must leave the set before our descriptor closes. */
static void epoll_forget_given(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct epoll_model *m = loop->model;
    epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

/* An adopted connection's file may outlive our descriptor: the master
 * keeps its copy until it has read our acknowledgement, which a short
 * connection (a routed one, closed after one reply) can beat.  Its
 * registration then outlives our close, and a late event would name a
 * connection we freed: it leaves the set first. */
static void epoll_adopted(struct ioc_loop *loop, struct ioc_conn *c)
{
    c->model_flags |= EPOLL_SHARED_FILE;
    epoll_added(loop, c);
}

static void epoll_forget_shared(struct ioc_loop *loop, struct ioc_conn *c)
{
    if (c->model_flags & EPOLL_SHARED_FILE)
        epoll_forget_given(loop, c);
}

static void epoll_conn_event(struct epoll_model *m, struct ioc_conn *c, uint32_t events)
{
    unsigned before = c->interest;
    unsigned now = ioc_service(&m->loop, c, ioc_ready_of(events));
    if (now == IOC_CLOSED || m->edge || now == before)
        return;
    struct epoll_event ev = {.events = epoll_mask(m, now), .data.ptr = c};
    if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        m->h->log(m->h, IOS_LOG_WARN, errno, "epoll_ctl(MOD)");
        ioc_close(&m->loop, c);
    }
}

/* The readiness loop, in the order all five readiness models share (see
 * docs/models.md): watch, wait, serve the connections, then stop or
 * accept, then timers. */
static int epoll_loop(struct epoll_model *m)
{
    int rc;
    while (!ioc_drained(&m->loop)) {
        /* Off while draining, or out of descriptors until the pause ends
         * (level-triggered readiness would spin); switched off where
         * either begins, so a serving loop tests one flag here. */
        if (!m->listening && !m->loop.draining && ioc_accepting(&m->loop) &&
            (rc = epoll_set_listening(m, true)) != 0)
            return rc;
        int n = epoll_wait(m->epfd, m->events, m->max_events, ioc_timeout_ms(&m->loop));
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            m->h->log(m->h, IOS_LOG_ERROR, err, "epoll_wait");
            return -err;
        }
        bool stop = false, listener = false, adopt = false;
        for (int i = 0; i < n; i++) {
            void *tag = m->events[i].data.ptr;
            if (tag == TAG_STOP)
                stop = true;
            else if (tag == TAG_LISTEN)
                listener = true;
            else if (tag == TAG_ADOPT)
                adopt = true;
            else
                epoll_conn_event(m, tag, m->events[i].events);
        }
        if (stop && !m->loop.draining) {
            ioc_drain_begin(&m->loop);
            epoll_ctl(m->epfd, EPOLL_CTL_DEL, m->h->stop_fd, NULL);
            epoll_set_listening(m, false);
        } else if (listener && !m->loop.draining) {
            ioc_accept_next(&m->loop, m->listen_fd, epoll_added);
            if (!ioc_accepting(&m->loop))
                epoll_set_listening(m, false);
        }
        if (adopt)
            ioc_adopt_pending(&m->loop, epoll_adopted);
        ioc_tick(&m->loop);
    }
    return 0;
}

int model_run(int listen_fd, const struct ios_handler *h)
{
    struct epoll_model m = {.h = h, .listen_fd = listen_fd, .epfd = -1};
    long long max_events; /* knob values: the host fills in the defaults */
    int edge, rc;
    h->knob_bool(h, "edge_triggered", &edge);
    h->knob_int(h, "events_per_wait", &max_events);
    m.edge = edge;
    m.max_events = (int)max_events;

    if ((rc = ioc_loop_init(&m.loop, h)) != 0)
        return rc;
    m.loop.model = &m;
    m.loop.on_give = epoll_forget_given;
    m.loop.on_close = epoll_forget_shared;
    m.events = calloc((size_t)m.max_events, sizeof(*m.events));
    if (!m.events) {
        rc = -ENOMEM;
        h->log(h, IOS_LOG_ERROR, ENOMEM, "epoll: the event array");
        goto out;
    }
    m.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m.epfd < 0) {
        rc = -errno;
        h->log(h, IOS_LOG_ERROR, -rc, "epoll_create1");
        goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = TAG_STOP};
    if (epoll_ctl(m.epfd, EPOLL_CTL_ADD, h->stop_fd, &ev) != 0) {
        rc = -errno;
        h->log(h, IOS_LOG_ERROR, -rc, "epoll_ctl(stop_fd)");
        goto out;
    }
    /* Level-triggered, never exclusive: the host hands each connection
     * to this worker alone, and watched while serving and draining. */
    ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = TAG_ADOPT};
    if (m.loop.adopt_fd >= 0 && epoll_ctl(m.epfd, EPOLL_CTL_ADD, m.loop.adopt_fd, &ev) != 0) {
        rc = -errno;
        h->log(h, IOS_LOG_ERROR, -rc, "epoll_ctl(adopt_fd)");
        goto out;
    }
    if ((rc = epoll_set_listening(&m, true)) != 0)
        goto out;

    h->ready(h);
    rc = epoll_loop(&m);
out:
    ioc_loop_fini(&m.loop);
    if (m.epfd >= 0)
        close(m.epfd);
    free(m.events);
    return rc;
}
