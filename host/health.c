/*
 * /healthz and /readyz: what the master's state means to whatever probes
 * it (HAProxy's option httpchk, Kubernetes probes, a systemd watchdog).
 *
 *   /readyz   send me new connections: a generation serves, at least one
 *             of its workers is up and ready, and the server is not
 *             stopping.  503 during start-up, -s quit or stop, and while
 *             every worker of the serving generation is dead or not ready
 *             again (waiting out a respawn delay).
 *   /healthz  leave me running: the master runs and a generation serves,
 *             be it one that drains for -s quit or one whose workers are
 *             being respawned (the master is doing its job; restarting it
 *             would cut the connections it still serves).  503 before the
 *             first generation serves and during a fast stop.
 *
 * Each answers one line saying why.  Both read the master's state only:
 * asking never changes what the master does.
 */
#include <stdarg.h>
#include <stdio.h>

#include "master_state.h"

static int reply(struct ios_buf *out, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The page: one line, ending in a newline. */
static int reply(struct ios_buf *out, int code, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ios_buf_append(out, line, (size_t)n);
    return code;
}

static unsigned ready_workers(const struct generation *g)
{
    unsigned n = 0;
    for (unsigned j = 0; j < g->nslots; j++)
        n += g->slots[j].pid != 0 && g->slots[j].ready;
    return n;
}

/* Milliseconds until g's next respawn; 0 when none is scheduled. */
static uint64_t next_respawn_in(const struct generation *g)
{
    uint64_t now = clock_now_ms(), best = 0;
    for (unsigned j = 0; j < g->nslots; j++) {
        uint64_t at = g->slots[j].respawn_at_ms;
        if (g->slots[j].pid == 0 && at && (!best || at < best))
            best = at;
    }
    return best > now ? best - now : 0;
}

/* The answer when no generation serves yet (nor drains). */
static int not_serving(const struct master *m, struct ios_buf *out)
{
    const struct generation *starting = gen_find(m, GEN_STARTING);
    if (starting)
        return reply(out, 503, "starting: generation %u has %u of %u worker(s) ready",
                     starting->id, ready_workers(starting), starting->nslots);
    return reply(out, 503, "not serving: no generation is running");
}

int health_ready(void *ctx, struct ios_buf *out)
{
    const struct master *m = ctx;
    if (m->terminating)
        return reply(out, 503, "stopping: fast stop (-s stop), closing every connection");
    if (m->quit_phase == QUIT_DELAY) {
        uint64_t now = clock_now_ms();
        return reply(out, 503, "stopping: -s quit, accepting for %llu more ms so balancers "
                     "can take this instance out",
                     (unsigned long long)(m->quit_phase_at_ms > now ? m->quit_phase_at_ms - now
                                                                    : 0));
    }
    if (m->quit_phase == QUIT_FLUSH)
        return reply(out, 503, "stopping: -s quit, accepting what the backlog holds, then "
                     "draining");
    if (m->quitting) {
        const struct generation *d = gen_find(m, GEN_DRAINING);
        return reply(out, 503, "stopping: draining for -s quit, %llu connection(s) open",
                     (unsigned long long)(d ? gen_open_connections(d) : 0));
    }
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    if (!g)
        return not_serving(m, out);
    unsigned up = ready_workers(g);
    if (up == 0)
        return reply(out, 503,
                     "no worker up: generation %u lost its %u worker(s), next respawn in "
                     "%llu ms",
                     g->id, g->nslots, (unsigned long long)next_respawn_in(g));
    return reply(out, 200, "ready: generation %u serving with model %s, %u of %u worker(s) up",
                 g->id, slot_model(g, 0), up, g->nslots);
}

int health_live(void *ctx, struct ios_buf *out)
{
    const struct master *m = ctx;
    if (m->terminating)
        return reply(out, 503, "stopping: fast stop (-s stop)");
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    if (g) {
        unsigned up = ready_workers(g);
        return reply(out, 200, "ok: generation %u serving, %u of %u worker(s) up%s", g->id,
                     up, g->nslots, up ? "" : ", respawning");
    }
    const struct generation *d = gen_find(m, GEN_DRAINING);
    if (m->quitting && d)
        return reply(out, 200, "ok: generation %u draining for -s quit, %llu connection(s) open",
                     d->id, (unsigned long long)gen_open_connections(d));
    return not_serving(m, out);
}
