/* The per-thread loop: connection table, activity list (idle timeouts),
 * buffer cache, drain state. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "ioc.h"
#include "ioc_internal.h"

/* Buffers up to this size go back to the cache; larger ones (a burst of
 * output) are freed so one burst does not pin memory for the worker's life. */
#define CACHE_BUF_MAX_CAP (64 * 1024)
#define CACHE_MAX_BUFS 256

/* The coarse clock is a plain read of the kernel's tick-updated time (no
 * TSC read and scaling), and it is read for every request: its resolution
 * of one tick (1-4 ms) is far finer than any timeout kept with it. */
uint64_t ioc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A serving loop holds one connection (the blocking model's threads), so
 * at most its two buffers can come back to the cache. */
#define SERVING_CACHE_MAX_BUFS 2

static int loop_init(struct ioc_loop *loop, const struct ios_handler *h, bool serving_only)
{
    *loop = (struct ioc_loop){0};
    loop->h = h;
    loop->serving_only = serving_only;
    /* The field came with ABI 1.1: read it only from a host that has it. */
    if (IOS_HANDLER_HAS(h, request_timeout_ms))
        loop->request_timeout_ms = h->request_timeout_ms;
    loop->active.next = loop->active.prev = &loop->active;
    loop->requests.next = loop->requests.prev = &loop->requests;
    loop->reserve_fd = -1;
    /* ABI 1.2: a host without it hands nothing over. */
    loop->adopt_fd = IOS_HANDLER_HAS(h, adopt) && h->adopt ? h->adopt_fd : -1;
    /* ABI 1.3: a host without it, or with latency_histogram off, times
     * nothing. */
    if (IOS_HANDLER_HAS(h, request_done) && h->request_done) {
        loop->request_done = h->request_done;
        loop->requests_answered = h->requests_answered;
    }
    loop->rbuf = malloc(h->read_chunk);
    loop->cache.max = serving_only ? SERVING_CACHE_MAX_BUFS : CACHE_MAX_BUFS;
    loop->cache.bufs = calloc(loop->cache.max, sizeof(*loop->cache.bufs));
    loop->cache.caps = calloc(loop->cache.max, sizeof(*loop->cache.caps));
    if (!loop->rbuf || !loop->cache.bufs || !loop->cache.caps) {
        ioc_loop_fini(loop);
        return -ENOMEM;
    }
    return 0;
}

int ioc_loop_init_serving(struct ioc_loop *loop, const struct ios_handler *h)
{
    return loop_init(loop, h, true);
}

int ioc_loop_init(struct ioc_loop *loop, const struct ios_handler *h)
{
    int rc = loop_init(loop, h, false);
    if (rc != 0)
        return rc;
    /* Kept so that running out of descriptors can still be answered by
     * accepting and closing, instead of leaving clients hanging in the
     * backlog while the listen socket stays readable forever. */
    loop->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return 0;
}

void ioc_loop_fini(struct ioc_loop *loop)
{
    struct ioc_conn *c;
    while (loop->active.next && (c = ioc_first(loop)))
        ioc_close(loop, c);
    for (unsigned i = 0; i < loop->cache.count; i++)
        free(loop->cache.bufs[i]);
    free(loop->cache.bufs);
    free(loop->cache.caps);
    free(loop->by_fd);
    free(loop->rbuf);
    if (loop->reserve_fd >= 0)
        close(loop->reserve_fd);
    *loop = (struct ioc_loop){.reserve_fd = -1, .adopt_fd = -1};
}

bool ioc_stop_requested(const struct ios_handler *h)
{
    struct pollfd p = {.fd = h->stop_fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* Whether the host asks for a hand-over now (ABI 1.2 fields behind
 * IOS_HANDLER_HAS: a 1.1 host never does). */
static bool handover_asked(const struct ios_handler *h)
{
    return IOS_HANDLER_HAS(h, handover_requested) && h->handover_requested && h->give &&
           h->handover_requested(h) == 1;
}

/* Gives or ends every connection at a boundary (ioc_drain_release). */
static void drain_sweep(struct ioc_loop *loop)
{
    struct ioc_conn *c, *next;
    for (c = ioc_first(loop); c; c = next) {
        next = ioc_next(loop, c);
        ioc_drain_release(loop, c);
    }
}

void ioc_drain_begin(struct ioc_loop *loop)
{
    const struct ios_handler *h = loop->h;
    if (loop->draining)
        return;
    loop->draining = true;
    loop->handing_over = handover_asked(h);
    loop->closing_idle = !loop->handing_over &&
                         IOS_HANDLER_HAS(h, close_idle_on_drain) &&
                         h->close_idle_on_drain;
    if (!loop->serving_only)
        h->log(h, IOS_LOG_INFO, 0, "draining: no longer accepting, %u connection(s) "
               "open%s", loop->nconns,
               loop->handing_over ? ", handing them over at their next boundary" : "");
    if (loop->handing_over || loop->closing_idle)
        drain_sweep(loop);
}

bool ioc_drain_recheck(struct ioc_loop *loop)
{
    if (!loop->draining || loop->handing_over || loop->handover_failed ||
        !handover_asked(loop->h))
        return false;
    loop->handing_over = true;
    loop->closing_idle = false;
    if (!loop->serving_only)
        loop->h->log(loop->h, IOS_LOG_INFO, 0, "draining: a newer generation adopts: "
                     "handing %u connection(s) over at their next boundary", loop->nconns);
    drain_sweep(loop);
    return true;
}

/* ------------------------------------------------- leaving the loop */

void ioc_detach(struct ioc_loop *loop, struct ioc_conn *c)
{
    ioc_untrack(loop, c);
}

int ioc_adopt(struct ioc_loop *loop, struct ioc_conn *c)
{
    return ioc_track(loop, c);
}

void ioc_close(struct ioc_loop *loop, struct ioc_conn *c)
{
    const struct ios_handler *h = loop->h;
    ioc_release(loop, c);
    ioc_count(&h->counters->closed, 1);
}

void ioc_release(struct ioc_loop *loop, struct ioc_conn *c)
{
    const struct ios_handler *h = loop->h;
    if (loop->on_close)
        loop->on_close(loop, c);
    ioc_untrack(loop, c);
    h->close(h, c->state);
    close(c->fd); /* on Linux the fd is gone even if this says EINTR */
    /* back to the cache, or freed: a model that leaves `sending` here has
     * made sure the kernel is done with it (or taken it over) */
    ioc_buf_give_back(loop, &c->in);
    ioc_buf_give_back(loop, &c->out);
    ioc_buf_give_back(loop, &c->sending);
    __atomic_fetch_sub(&h->counters->active, 1, __ATOMIC_RELAXED);
    free(c);
}

/* --------------------------------------------------------------- lists */

#define CONN_OF(link, member) \
    ((struct ioc_conn *)((char *)(link) - offsetof(struct ioc_conn, member)))

static void link_remove(struct ioc_link *l)
{
    if (!l->next)
        return;
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

static void link_append(struct ioc_link *head, struct ioc_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

void ioc_touch(struct ioc_loop *loop, struct ioc_conn *c)
{
    c->last_active_ms = ioc_now_ms();
    /* Moving to the tail keeps the list sorted by last activity, so the
     * next idle deadline is always the head's: O(1) timers. */
    if (c->active.next != &loop->active) {
        link_remove(&c->active);
        link_append(&loop->active, &c->active);
    }
}

struct ioc_conn *ioc_first(struct ioc_loop *loop)
{
    return loop->active.next == &loop->active ? NULL : CONN_OF(loop->active.next, active);
}

struct ioc_conn *ioc_next(struct ioc_loop *loop, struct ioc_conn *c)
{
    return c->active.next == &loop->active ? NULL : CONN_OF(c->active.next, active);
}

void ioc_request_track(struct ioc_loop *loop, struct ioc_conn *c, bool progress)
{
    unsigned limit = loop->request_timeout_ms;
    bool holding = ios_buf_pending(&c->in) > 0;
    if (!limit || !holding) {
        link_remove(&c->request);
        return;
    }
    if (ioc_request_pending(c) && !progress)
        return; /* the same request is still arriving: its clock runs on */
    link_remove(&c->request);
    /* Appending keeps the list in deadline order: the limit is the same for
     * every connection, so the oldest start is always at the head. */
    c->request_started_ms = ioc_now_ms();
    link_append(&loop->requests, &c->request);
}

static struct ioc_conn *rq_first(const struct ioc_loop *loop)
{
    return loop->requests.next == &loop->requests ? NULL
                                                  : CONN_OF(loop->requests.next, request);
}

int ioc_timeout_ms(const struct ioc_loop *loop)
{
    uint64_t now = ioc_now_ms();
    int64_t best = -1;
    const struct ioc_conn *oldest = ioc_first((struct ioc_loop *)loop);
    if (oldest) {
        uint64_t due = oldest->last_active_ms + loop->h->idle_timeout_ms;
        best = due > now ? (int64_t)(due - now) : 0;
    }
    const struct ioc_conn *rq = rq_first(loop);
    if (rq) {
        uint64_t due = rq->request_started_ms + loop->request_timeout_ms;
        int64_t wait = due > now ? (int64_t)(due - now) : 0;
        if (best < 0 || wait < best)
            best = wait;
    }
    /* A drain that hands nothing over yet asks again this often: the
     * host may find an adopter later (a successor after a 1.1 one). */
    if (loop->draining && !loop->handing_over && !loop->handover_failed &&
        IOS_HANDLER_HAS(loop->h, handover_requested) &&
        (best < 0 || best > IOC_HANDOVER_RECHECK_MS))
        best = IOC_HANDOVER_RECHECK_MS;
    if (loop->accept_resume_ms > now) {
        int64_t wait = (int64_t)(loop->accept_resume_ms - now);
        if (best < 0 || wait < best)
            best = wait;
    }
    return best > 60000 ? 60000 : (int)best;
}

void ioc_tick(struct ioc_loop *loop)
{
    loop->stamp_ns = 0; /* a wait follows: the next bytes are newer */
    ioc_drain_recheck(loop);
    uint64_t now = ioc_now_ms();
    struct ioc_conn *c;
    while ((c = ioc_first(loop)) &&
           c->last_active_ms + loop->h->idle_timeout_ms <= now) {
        loop->h->log(loop->h, IOS_LOG_DEBUG, 0,
                     "fd %d: idle for %u ms, closing", c->fd,
                     loop->h->idle_timeout_ms);
        ioc_close(loop, c);
    }
    while ((c = rq_first(loop)) &&
           c->request_started_ms + loop->request_timeout_ms <= now) {
        loop->h->log(loop->h, IOS_LOG_DEBUG, 0,
                     "fd %d: request unfinished after %u ms, closing", c->fd,
                     loop->request_timeout_ms);
        ioc_close(loop, c);
    }
}

/* ------------------------------------------------------------ table */

/* Makes c findable by its descriptor (ioc_conn_of).  0 or -ENOMEM. */
static int index_conn(struct ioc_loop *loop, struct ioc_conn *c)
{
    size_t fd = (size_t)c->fd;
    if (fd >= loop->by_fd_cap) {
        size_t cap = loop->by_fd_cap ? loop->by_fd_cap : 64;
        while (cap <= fd)
            cap *= 2;
        struct ioc_conn **t = realloc(loop->by_fd, cap * sizeof(*t));
        if (!t)
            return -ENOMEM;
        for (size_t i = loop->by_fd_cap; i < cap; i++)
            t[i] = NULL;
        loop->by_fd = t;
        loop->by_fd_cap = cap;
    }
    loop->by_fd[fd] = c;
    return 0;
}

int ioc_track(struct ioc_loop *loop, struct ioc_conn *c)
{
    if (!loop->serving_only && index_conn(loop, c) != 0)
        return -ENOMEM;
    c->last_active_ms = ioc_now_ms();
    link_append(&loop->active, &c->active);
    loop->nconns++;
    return 0;
}

void ioc_untrack(struct ioc_loop *loop, struct ioc_conn *c)
{
    link_remove(&c->request);
    if ((size_t)c->fd < loop->by_fd_cap && loop->by_fd[c->fd] == c)
        loop->by_fd[c->fd] = NULL;
    link_remove(&c->active);
    loop->nconns--;
}

/* ------------------------------------------------------- buffer cache */

void ioc_buf_take(struct ioc_loop *loop, struct ios_buf *b)
{
    if (b->data || loop->cache.count == 0)
        return;
    unsigned i = --loop->cache.count;
    b->data = loop->cache.bufs[i];
    b->cap = loop->cache.caps[i];
    b->off = b->len = 0;
}

void ioc_buf_give_back(struct ioc_loop *loop, struct ios_buf *b)
{
    if (!b->data)
        return;
    if (b->cap <= CACHE_BUF_MAX_CAP && loop->cache.count < loop->cache.max) {
        loop->cache.bufs[loop->cache.count] = b->data;
        loop->cache.caps[loop->cache.count] = b->cap;
        loop->cache.count++;
        *b = (struct ios_buf){0};
    } else {
        ios_buf_free(b);
    }
}
