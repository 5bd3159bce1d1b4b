/* The master's relay of connections in hand-over (handover.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handover.h"
#include "handover_wire.h"
#include "log.h"

void ho_relay_init(struct ho_relay *r)
{
    memset(r, 0, sizeof(*r));
    r->next_id = 1;
}

static void release(struct ho_relay *r, size_t i)
{
    struct ho_pending *p = &r->pending[i];
    close(p->conn);
    if (p->memfd >= 0)
        close(p->memfd);
    r->pending[i] = r->pending[--r->n_pending];
    r->released = true;
}

void ho_relay_fini(struct ho_relay *r)
{
    if (r->n_pending)
        log_warn(0, "hand-over: closing %zu connection(s) still in transit",
                 r->n_pending);
    while (r->n_pending)
        release(r, r->n_pending - 1);
    free(r->pending);
    r->pending = NULL;
    r->cap_pending = 0;
}

bool ho_end_adopts(const struct ho_end *e)
{
    return e->fd >= 0 && !e->eof && e->abi_minor >= 2;
}

size_t ho_relay_in_transit(const struct ho_relay *r)
{
    return r->n_pending;
}

static struct ho_end *pick_among(size_t *next_pick, const char *protocol,
                                 struct ho_end *const *adopters, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = (*next_pick + k) % n;
        if (ho_end_adopts(adopters[i]) && strcmp(adopters[i]->protocol, protocol) == 0) {
            *next_pick = i + 1;
            return adopters[i];
        }
    }
    return NULL;
}

/* A connection routed by the serving generation goes to its canary side
 * while one adopts, else (and a hand-over always) to its main side. */
static struct ho_end *pick(struct ho_relay *r, const struct ho_pending *p,
                           const struct ho_targets *t)
{
    struct ho_end *e = NULL;
    if (p->route_gen && p->route_gen == t->gen_id)
        e = pick_among(&r->next_pick_canary, p->protocol, t->canary, t->n_canary);
    return e ? e : pick_among(&r->next_pick, p->protocol, t->main, t->n_main);
}

/* Sends p's ADOPT unless its adopter is full; what cannot go now waits. */
static void try_send(struct ho_pending *p)
{
    struct ho_end *to = p->to;
    if (!to || p->sent || to->want_write || to->eof)
        return;
    struct ho_msg m = {.type = HO_ADOPT, .input_len = p->input_len, .id = p->id};
    int fds[2] = {p->conn, p->memfd};
    int rc = ho_send(to->fd, &m, fds, p->memfd >= 0 ? 2 : 1, MSG_DONTWAIT);
    if (rc == 0)
        p->sent = true;
    else if (rc == -EAGAIN)
        to->want_write = true;
    else if (rc == -ETOOMANYREFS)
        ; /* too many descriptors in flight: retried when `to` acknowledges */
    else {
        log_warn(-rc, "hand-over: sending a connection to model %s's worker", to->model);
        to->eof = true; /* its connections move on when it is gone */
    }
}

/* Adopters for another protocol: the active generation's handler is not
 * the one a connection in transit speaks. */
static bool protocol_gone(const char *protocol, const struct ho_targets *t)
{
    return t->n_main > 0 && strcmp(t->main[0]->protocol, protocol) != 0;
}

static void place_waiting(struct ho_relay *r, const struct ho_targets *t)
{
    for (size_t i = 0; i < r->n_pending;) {
        struct ho_pending *p = &r->pending[i];
        if (!p->to && !(p->to = pick(r, p, t))) {
            if (!protocol_gone(p->protocol, t)) {
                i++; /* waits for an adopter: ho_relay_place */
                continue;
            }
            log_warn(0, "hand-over: a %s connection from model %s closed: the serving "
                     "generation's handler is %s", p->protocol, p->from_model,
                     t->main[0]->protocol);
            release(r, i);
            continue;
        }
        try_send(p);
        i++;
    }
}

void ho_relay_place(struct ho_relay *r, const struct ho_targets *t)
{
    place_waiting(r, t);
}

/* Everything `e` had not acknowledged waits for another adopter. */
static void unassign(struct ho_relay *r, const struct ho_end *e)
{
    for (size_t i = 0; i < r->n_pending; i++)
        if (r->pending[i].to == e) {
            r->pending[i].to = NULL;
            r->pending[i].sent = false;
        }
}

void ho_relay_end_gone(struct ho_relay *r, struct ho_end *gone, const struct ho_targets *t)
{
    gone->eof = true;
    unassign(r, gone);
    for (size_t i = 0; i < r->n_pending; i++)
        if (r->pending[i].upstream == gone)
            r->pending[i].upstream = NULL; /* nobody to tell any more */
    place_waiting(r, t);
}

void ho_relay_writable(struct ho_relay *r, struct ho_end *to)
{
    to->want_write = false;
    for (size_t i = 0; i < r->n_pending && !to->want_write; i++)
        if (r->pending[i].to == to)
            try_send(&r->pending[i]);
}

static void count(struct ho_relay *r, const char *from, const char *to)
{
    size_t i;
    for (i = 0; i < r->n_counts; i++)
        if (strcmp(r->counts[i].from, from) == 0 && strcmp(r->counts[i].to, to) == 0)
            break;
    if (i == r->n_counts) {
        if (i == HO_MAX_COUNTS)
            return; /* more model pairs than anyone rotates through */
        snprintf(r->counts[i].from, sizeof(r->counts[i].from), "%s", from);
        snprintf(r->counts[i].to, sizeof(r->counts[i].to), "%s", to);
        r->n_counts++;
    }
    r->counts[i].n++;
}

static void on_ack(struct ho_relay *r, struct ho_end *from, uint64_t id)
{
    for (size_t i = 0; i < r->n_pending; i++) {
        struct ho_pending *p = &r->pending[i];
        if (p->id != id)
            continue;
        if (p->to != from || !p->sent)
            break;
        if (!p->route_gen) /* a route is no hand-over: the split's own metrics */
            count(r, p->from_model, from->model);
        if (p->upstream && !p->upstream->eof) {
            /* Blocking: the upstream master never blocks on its end, so it
             * reads this soon; until it does, it keeps its copy. */
            struct ho_msg ack = {.type = HO_ACK, .id = p->upstream_id};
            int rc = ho_send(p->upstream->fd, &ack, NULL, 0, 0);
            if (rc != 0)
                log_warn(-rc, "upgrade: acknowledging a connection to the old master");
        }
        release(r, i);
        ho_relay_writable(r, from); /* descriptors in flight went down */
        return;
    }
    log_warn(0, "hand-over: model %s's worker acknowledged connection %llu, not sent to it",
             from->model, (unsigned long long)id);
}

static int on_give(struct ho_relay *r, struct ho_end *from, const struct ho_msg *m,
                   const int *fds, int nfds, const struct ho_targets *t)
{
    /* An old master's ADOPT carries its own id; a worker's GIVE none. */
    if (nfds != (m->input_len ? 2 : 1)) {
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        log_warn(0, "hand-over: model %s's worker gave %d descriptor(s) for %u input "
                 "bytes; dropped", from->model, nfds, m->input_len);
        return 0;
    }
    if (r->n_pending == r->cap_pending) {
        size_t cap = r->cap_pending ? r->cap_pending * 2 : 64;
        struct ho_pending *p = realloc(r->pending, cap * sizeof(*p));
        if (!p) {
            close(fds[0]);
            if (nfds == 2)
                close(fds[1]);
            log_error(ENOMEM, "hand-over: a connection of model %s was lost", from->model);
            return -ENOMEM;
        }
        r->pending = p;
        r->cap_pending = cap;
    }
    struct ho_pending *p = &r->pending[r->n_pending++];
    *p = (struct ho_pending){.id = r->next_id++,
                             .conn = fds[0],
                             .memfd = nfds == 2 ? fds[1] : -1,
                             .input_len = m->input_len,
                             .route_gen = m->type == HO_ROUTE ? from->gen_id : 0,
                             .upstream = from->upstream ? from : NULL,
                             .upstream_id = m->id};
    snprintf(p->from_model, sizeof(p->from_model), "%s", from->model);
    snprintf(p->protocol, sizeof(p->protocol), "%s", from->protocol);
    place_waiting(r, t);
    return 0;
}

/* Descriptors the master may hold besides the relay's: every generation's
 * pipes and sockets, the status endpoint's, with a wide margin.  Below
 * RLIMIT_NOFILE by more than this and the relay's own, there is room
 * without asking the kernel. */
#define HO_FDS_BESIDES_RELAY 4096

/* Room for the two descriptors a GIVE may bring: the kernel would drop
 * the ones that do not fit, and with them a connection.  `limit`: the
 * soft RLIMIT_NOFILE. */
static bool fds_to_spare(const struct ho_relay *r, int probe, rlim_t limit)
{
    if (limit != RLIM_INFINITY && limit > HO_FDS_BESIDES_RELAY &&
        limit - HO_FDS_BESIDES_RELAY > 2 * (rlim_t)r->n_pending + 2)
        return true; /* the common case: a raised limit, no probe */
    int a = fcntl(probe, F_DUPFD_CLOEXEC, 0);
    int b = a >= 0 ? fcntl(probe, F_DUPFD_CLOEXEC, 0) : -1;
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    return b >= 0;
}

int ho_relay_read(struct ho_relay *r, struct ho_end *from, const struct ho_targets *t)
{
    struct rlimit nofile = {0, 0};
    getrlimit(RLIMIT_NOFILE, &nofile);
    for (;;) {
        if (from->eof)
            return -EPIPE;
        if (!fds_to_spare(r, from->fd, nofile.rlim_cur)) {
            from->throttled = true; /* its giver blocks, then drains: no loss */
            return 0;
        }
        from->throttled = false;
        struct ho_msg m;
        int fds[HO_MAX_FDS], nfds;
        int rc = ho_recv(from->fd, &m, fds, &nfds, MSG_DONTWAIT);
        if (rc == -EAGAIN)
            return 0;
        if (rc == -EPIPE || rc == -ECONNRESET) {
            /* Nothing it was sent and did not acknowledge was adopted. */
            ho_relay_end_gone(r, from, t);
            return -EPIPE;
        }
        if (rc != 0) {
            log_warn(-rc, "hand-over: reading model %s's worker's control socket",
                     from->model);
            if (rc == -EPROTO)
                continue;
            return rc;
        }
        if (m.type == HO_ACK && nfds == 0)
            on_ack(r, from, m.id);
        else if (from->upstream ? m.type == HO_ADOPT
                                : (m.type == HO_GIVE || m.type == HO_ROUTE))
            on_give(r, from, &m, fds, nfds, t);
        else {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            log_warn(0, "hand-over: model %s's worker sent message type %u; ignored",
                     from->model, m.type);
        }
    }
}
