/*
 * handover_min: the smallest model that hands connections over, for the
 * host's tests before the real models learn it (and as a reference for
 * the host side of ABI 1.2).  One thread, poll(2), at most 64 connections,
 * no timers.  It uses the raw ABI, not plugins/common: on drain with
 * handover_requested() it gives every connection at its boundary (output
 * flushed, the handler's at_boundary) with its unconsumed input; it adopts
 * whatever adopt_fd announces, feeding the carried input first.
 * Built a second time with IOS_REQUIRE_MINOR=1 (handover_min_11.so), it
 * stands for a 1.1 plugin in the master's eyes.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ioserve/plugin.h"

IOS_MODEL("handover_min", "test model: poll, gives and adopts connections (ABI 1.2)", NULL);

#define MIN_CONNS 64

struct min_conn {
    int fd;
    void *state;
    struct ios_buf in, out;
};

struct min_loop {
    const struct ios_handler *h;
    struct min_conn conns[MIN_CONNS];
    unsigned n;
};

static void count(const struct ios_handler *h, uint64_t *c, int64_t d)
{
    __atomic_fetch_add(c, (uint64_t)d, __ATOMIC_RELAXED);
    (void)h;
}

/* Releases conns[i]; the last one takes its place. */
static void drop(struct min_loop *l, unsigned i, int given)
{
    struct min_conn *c = &l->conns[i];
    l->h->close(l->h, c->state);
    close(c->fd); /* a given connection lives on in the host's copy */
    free(c->state);
    ios_buf_free(&c->in);
    ios_buf_free(&c->out);
    count(l->h, given ? &l->h->counters->given : &l->h->counters->closed, 1);
    count(l->h, &l->h->counters->active, -1);
    l->conns[i] = l->conns[--l->n];
}

/* Runs the handler over the pending input and sends what it wrote.
 * 0, or -1 when the connection must close. */
static int pump(struct min_loop *l, struct min_conn *c)
{
    if (ios_buf_pending(&c->in)) {
        ssize_t used = l->h->data(l->h, c->state, c->in.data + c->in.off,
                                  ios_buf_pending(&c->in), &c->out);
        if (used < 0 && used != IOS_DATA_CLOSE_AFTER_WRITE)
            return -1;
        ios_buf_consume(&c->in, used < 0 ? ios_buf_pending(&c->in) : (size_t)used);
        if (used < 0) {
            send(c->fd, c->out.data + c->out.off, ios_buf_pending(&c->out), MSG_NOSIGNAL);
            return -1;
        }
    }
    while (ios_buf_pending(&c->out)) {
        ssize_t n = send(c->fd, c->out.data + c->out.off, ios_buf_pending(&c->out),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        count(l->h, &l->h->counters->bytes_out, n);
        ios_buf_consume(&c->out, (size_t)n);
    }
    return 0;
}

/* A new connection (accepted, or adopted with its input in *in). */
static void add(struct min_loop *l, int fd, struct ios_buf *in, uint64_t *counter)
{
    struct min_conn *c = &l->conns[l->n];
    *c = (struct min_conn){.fd = fd, .state = calloc(1, l->h->conn_state_size + 1)};
    if (l->n == MIN_CONNS || !c->state || l->h->open(l->h, c->state) != 0) {
        free(c->state);
        close(fd);
        ios_buf_free(in);
        count(l->h, &l->h->counters->refused, 1);
        return;
    }
    c->in = *in;
    l->n++;
    count(l->h, counter, 1);
    count(l->h, &l->h->counters->active, 1);
    if (pump(l, c) != 0)
        drop(l, l->n - 1, 0);
}

static void adopt_all(struct min_loop *l)
{
    int fd;
    struct ios_buf in = {0};
    while (l->h->adopt(l->h, &fd, &in) == 0) {
        add(l, fd, &in, &l->h->counters->adopted);
        in = (struct ios_buf){0};
    }
    ios_buf_free(&in);
}

/* Gives every connection at its boundary; the others wait for theirs. */
static void give_at_boundaries(struct min_loop *l)
{
    for (unsigned i = 0; i < l->n;) {
        struct min_conn *c = &l->conns[i];
        if (!ios_buf_pending(&c->out) && l->h->at_boundary(l->h, c->state) &&
            l->h->give(l->h, c->fd, c->in.data + c->in.off, ios_buf_pending(&c->in)) == 0)
            drop(l, i, 1);
        else
            i++;
    }
}

static void serve(struct min_loop *l, struct min_conn *c, unsigned i, short revents)
{
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        if (ios_buf_reserve(&c->in, l->h->read_chunk) != 0) {
            drop(l, i, 0);
            return;
        }
        ssize_t n = recv(c->fd, c->in.data + c->in.len, l->h->read_chunk, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            drop(l, i, 0);
            return;
        }
        if (n > 0) {
            c->in.len += (size_t)n;
            count(l->h, &l->h->counters->bytes_in, n);
        }
    }
    if (pump(l, c) != 0)
        drop(l, i, 0);
}

int model_run(int listen_fd, const struct ios_handler *h)
{
    struct min_loop l = {.h = h};
    int draining = 0, handover = 0;
    h->ready(h);
    while (!draining || l.n > 0) {
        struct pollfd p[MIN_CONNS + 3];
        nfds_t n = 0;
        for (unsigned i = 0; i < l.n; i++)
            p[n++] = (struct pollfd){.fd = l.conns[i].fd,
                                     .events = ios_buf_pending(&l.conns[i].out) ? POLLOUT
                                                                                : POLLIN};
        nfds_t ctl = n;
        p[n++] = (struct pollfd){.fd = h->adopt_fd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = draining ? -1 : h->stop_fd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = draining ? -1 : listen_fd, .events = POLLIN};
        if (poll(p, n, 100) < 0 && errno != EINTR)
            return -errno;
        for (unsigned i = (unsigned)ctl; i-- > 0;) /* from the end: drop moves the last */
            if (p[i].revents)
                serve(&l, &l.conns[i], i, p[i].revents);
        if (p[ctl].revents)
            adopt_all(&l);
        if (p[ctl + 1].revents) {
            draining = 1;
            handover = h->handover_requested(h);
            h->log(h, IOS_LOG_INFO, 0, "draining: %u connection(s), %s", l.n,
                   handover ? "handing them over" : "finishing them here");
        }
        if (p[ctl + 2].revents) {
            int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            struct ios_buf none = {0};
            if (fd >= 0)
                add(&l, fd, &none, &h->counters->accepted);
        }
        if (draining && !handover)
            handover = h->handover_requested(h); /* a later successor may take them */
        if (handover)
            give_at_boundaries(&l);
    }
    return 0;
}
