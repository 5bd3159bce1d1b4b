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

/* The newest active generation's live, ready workers, by side: where
 * connections in transit go; or, while this master hands over to a new
 * one (binary upgrade), the new master, as the one main adopter. */
#define MAX_ADOPTERS CFG_MAX_WORKERS
struct adopter_sets {
    struct ho_end *main[MAX_ADOPTERS], *canary[MAX_ADOPTERS];
    struct ho_targets t;
};

static const struct ho_targets *adopters(struct master *m, struct adopter_sets *a)
{
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    a->t = (struct ho_targets){.main = a->main, .canary = a->canary, .gen_id = g ? g->id : 0};
    if (!g && (a->main[0] = upgrade_adopter(m)) != NULL) {
        a->t.n_main = 1;
        return &a->t;
    }
    for (unsigned j = 0; g && j < g->nslots; j++) {
        struct worker_slot *w = &g->slots[j];
        if (w->pid <= 0 || !w->ready || w->ctl.fd < 0 || w->given_up)
            continue;
        if (slot_is_canary(g, j))
            a->canary[a->t.n_canary++] = &w->ctl;
        else
            a->main[a->t.n_main++] = &w->ctl;
    }
    return &a->t;
}

void gen_control_close(struct master *m, struct worker_slot *w)
{
    if (w->ctl.fd < 0)
        return;
    struct adopter_sets a;
    ho_relay_read(&m->relay, &w->ctl, adopters(m, &a));
    w->ctl.eof = true; /* not an adopter any more */
    ho_relay_end_gone(&m->relay, &w->ctl, adopters(m, &a));
    close(w->ctl.fd);
    w->ctl.fd = -1;
}

void gen_control_end_event(struct master *m, struct ho_end *e, short revents)
{
    if (e->fd < 0)
        return;
    if (revents & POLLOUT)
        ho_relay_writable(&m->relay, e);
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        struct adopter_sets a;
        ho_relay_read(&m->relay, e, adopters(m, &a));
    }
}

void gen_control_event(struct master *m, struct generation *g, unsigned idx, short revents)
{
    gen_control_end_event(m, &g->slots[idx].ctl, revents);
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
    struct adopter_sets a;
    ho_relay_place(&m->relay, adopters(m, &a));
}
