/*
 * nonblocking — the classic non-blocking loop, with no readiness API at all.
 *
 * Shows: every socket is O_NONBLOCK, so a call that cannot proceed returns
 * EAGAIN instead of blocking, and one thread can serve every client by
 * *trying*: each pass tries accept, then recv and send on every connection
 * in turn (the shared pump reads until EAGAIN and keeps unsent bytes for
 * the next pass — partial sends are not dropped as in the textbook loop).
 *
 * Limit: nobody tells the loop what is ready, so it asks everyone, every
 * pass: O(connections) system calls per pass even when one client is busy,
 * and a full core while idle unless it sleeps.  A pass that did nothing
 * sleeps models.nonblocking.idle_sleep_us (0 = spin: lowest latency, 100%
 * CPU); the sleep is also the latency a new request may wait for.
 * Any kernel.
 */
#include <errno.h>
#include <time.h>

#include "ioc.h"

static const struct ios_knob nonblocking_knobs[] = {
    {"idle_sleep_us", IOS_KNOB_INT, 1000, NULL, 0, 1000000,
     "sleep after a pass that found nothing to do; 0 = spin"},
    IOS_KNOB_END,
};

IOS_MODEL("nonblocking", "try every socket in turn (O_NONBLOCK), sleep when idle",
          nonblocking_knobs);

struct nonblocking_model {
    const struct ios_handler *h;
    struct ioc_loop loop;
    int listen_fd;
    struct timespec idle_sleep;
};

/* Anything that moved: a pass that changes none of these did no work. */
static uint64_t nonblocking_progress(const struct ios_counters *c)
{
    return __atomic_load_n(&c->accepted, __ATOMIC_RELAXED) +
           __atomic_load_n(&c->refused, __ATOMIC_RELAXED) +
           __atomic_load_n(&c->closed, __ATOMIC_RELAXED) +
           __atomic_load_n(&c->bytes_in, __ATOMIC_RELAXED) +
           __atomic_load_n(&c->bytes_out, __ATOMIC_RELAXED);
}

static void nonblocking_sleep(const struct nonblocking_model *m)
{
    struct timespec left = m->idle_sleep;
    /* A signal cuts the sleep short; the next pass simply comes sooner. */
    if (left.tv_sec || left.tv_nsec)
        nanosleep(&left, NULL);
}

/* The readiness loop, in the order all five readiness models share (see
 * docs/models.md) — with no wait: every socket is simply tried, and a pass
 * that moved nothing sleeps. */
static void nonblocking_loop(struct nonblocking_model *m)
{
    const struct ios_handler *h = m->h;
    while (!ioc_drained(&m->loop)) {
        uint64_t before = nonblocking_progress(h->counters);
        ioc_service_all(&m->loop, IOC_READABLE | IOC_WRITABLE);
        /* stop_fd is tried like every other descriptor: a poll(2) with a
         * zero timeout never waits. */
        if (!m->loop.draining && ioc_stop_requested(h))
            ioc_drain_begin(&m->loop);
        else /* does nothing once draining */
            ioc_accept_next(&m->loop, m->listen_fd, NULL);
        /* Tried like the rest: the host's adopt never waits. */
        unsigned adopted = ioc_adopt_pending(&m->loop, NULL);
        ioc_tick(&m->loop);
        if (!adopted && nonblocking_progress(h->counters) == before)
            nonblocking_sleep(m);
    }
}

int model_run(int listen_fd, const struct ios_handler *h)
{
    struct nonblocking_model m = {.h = h, .listen_fd = listen_fd};
    long long sleep_us; /* knob: the host fills in the default */
    h->knob_int(h, "idle_sleep_us", &sleep_us);
    m.idle_sleep.tv_sec = (time_t)(sleep_us / 1000000);
    m.idle_sleep.tv_nsec = (long)(sleep_us % 1000000) * 1000;

    int rc = ioc_loop_init(&m.loop, h);
    if (rc != 0)
        return rc;
    h->ready(h);
    nonblocking_loop(&m);
    ioc_loop_fini(&m.loop);
    return 0;
}
