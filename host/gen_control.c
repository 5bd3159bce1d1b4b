/*
 * The workers' control sockets, as the master sees them: what poll waits
 * for on each, what an event on one means for the hand-over relay
 * (handover.c), and which workers adopt — the newest active generation's
 * live, ready ones.  Whether a generation hands over is generation.c's
 * decision; this file only moves what its workers give.
 */
#include <poll.h>
#include <unistd.h>

#include "master_state.h"

/* The newest active generation's live, ready workers: where connections
 * in hand-over go.  Returns how many; `out` holds MAX_ADOPTERS. */
#define MAX_ADOPTERS CFG_MAX_WORKERS
static size_t adopters(struct master *m, struct ho_end **out)
{
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    size_t n = 0;
    for (unsigned j = 0; g && j < g->nslots && n < MAX_ADOPTERS; j++)
        if (g->slots[j].pid > 0 && g->slots[j].ready && g->slots[j].ctl.fd >= 0)
            out[n++] = &g->slots[j].ctl;
    return n;
}

void gen_control_close(struct master *m, struct worker_slot *w)
{
    if (w->ctl.fd < 0)
        return;
    struct ho_end *to[MAX_ADOPTERS];
    ho_relay_read(&m->relay, &w->ctl, to, adopters(m, to));
    w->ctl.eof = true; /* not an adopter any more */
    ho_relay_end_gone(&m->relay, &w->ctl, to, adopters(m, to));
    close(w->ctl.fd);
    w->ctl.fd = -1;
}

void gen_control_event(struct master *m, struct generation *g, unsigned idx, short revents)
{
    struct worker_slot *w = &g->slots[idx];
    if (w->ctl.fd < 0)
        return;
    if (revents & POLLOUT)
        ho_relay_writable(&m->relay, &w->ctl);
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        struct ho_end *to[MAX_ADOPTERS];
        ho_relay_read(&m->relay, &w->ctl, to, adopters(m, to));
    }
}

short gen_control_events(struct master *m, const struct generation *g, unsigned idx)
{
    const struct ho_end *e = &g->slots[idx].ctl;
    if (e->fd < 0 || e->eof)
        return 0;
    return (short)((e->throttled && !m->relay.released ? 0 : POLLIN) |
                   (e->want_write ? POLLOUT : 0));
}

void gen_place_in_transit(struct master *m)
{
    if (ho_relay_in_transit(&m->relay) == 0)
        return;
    struct ho_end *to[MAX_ADOPTERS];
    ho_relay_place(&m->relay, to, adopters(m, to));
}
