/* The master's state, shared by its parts: master.c (the loop, signals,
 * reload), generation.c (a generation's life, from start to free),
 * metrics.c (what /metrics reports) and health.c (/healthz, /readyz). */
#ifndef IOSERVE_MASTER_STATE_H
#define IOSERVE_MASTER_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "clock.h"
#include "config.h"
#include "handover.h"
#include "latency.h"
#include "ioserve/plugin.h"
#include "master.h"
#include "split.h"
#include "status.h"
#include "upgrade.h"

#define MAX_GENERATIONS 16
#define START_TIMEOUT_MS 10000   /* a new generation must be ready by then */
#define STOP_KILL_AFTER_MS 3000  /* fast stop: SIGKILL what SIGTERM left */
#define RESPAWN_BACKOFF_FIRST_MS 1000
#define RESPAWN_BACKOFF_MAX_MS 30000
#define HEALTHY_UPTIME_MS 10000  /* a worker that lived this long resets backoff */
/* -s quit empties the backlog before the drain: it waits at least this
 * long after new handshakes stop, so that one under way (its client's ACK
 * an RTT away) lands in the queue and is accepted too... */
#define QUIT_FLUSH_SETTLE_MS 100
/* ...and gives up once the backlog has not shrunk for this long: workers
 * that accept nothing (every one at max_connections, or dead) do not hold
 * the quit up, while slow ones (a loaded machine, a thread per accepted
 * connection) still get everything queued.  drain_timeout bounds it all. */
#define QUIT_FLUSH_STALL_MS 2000

/* -s quit, step by step (master.c). */
enum quit_phase {
    QUIT_NONE,
    QUIT_DELAY, /* quit_delay: /readyz 503, still accepting */
    QUIT_FLUSH, /* no new handshakes; the workers accept what is queued */
    QUIT_DRAIN, /* every generation drains, then the master exits */
};

/* The wait before the respawn after one that waited `ms`: the first
 * replacement starts at once, then the delay doubles from
 * RESPAWN_BACKOFF_FIRST_MS up to RESPAWN_BACKOFF_MAX_MS, so a crashing
 * plugin cannot spin the CPU. */
static inline unsigned respawn_backoff_next(unsigned ms)
{
    if (ms == 0)
        return RESPAWN_BACKOFF_FIRST_MS;
    return ms > RESPAWN_BACKOFF_MAX_MS / 2 ? RESPAWN_BACKOFF_MAX_MS : ms * 2;
}

enum gen_state { GEN_STARTING, GEN_ACTIVE, GEN_DRAINING, GEN_FAILED };

struct worker_slot {
    pid_t pid;            /* 0 when not running */
    int report_fd;        /* read end of its ready pipe, or -1 */
    bool ready;
    uint64_t started_ms;
    uint64_t respawn_at_ms; /* 0: no respawn scheduled */
    unsigned backoff_ms;
    char model[64];       /* the model it reported running */
    struct ho_end ctl;    /* the master's end of its control socket */
    uint64_t closed_at_drain; /* its counters' `closed` when the drain began */
    bool given_up;        /* a canary worker that could not start or adopt:
                             not respawned, not waited for */
};

struct generation {
    unsigned id;
    enum gen_state state;
    struct ios_config *cfg;
    int listen_fd;
    int stop_rd, stop_wr; /* closing stop_wr = drain */
    uint64_t deadline_ms; /* start or drain deadline; 0 = none */
    struct ios_counters *counters; /* shared with workers, one per slot */
    int *handover; /* shared with workers: 1 = give connections on drain */
    struct split_state *split; /* shared with workers: the A/B split */
    unsigned nmain;       /* slots [0, nmain) run `model`, the rest the canary */
    int canary_listen_fd; /* the canary workers' listen_fd, or -1 */
    /* Shared with workers, one per slot.  Not kept once the generation
     * ends (see metrics.c): its series end with it. */
    struct lat_hist *latency;
    uint64_t drain_started_ms;
    struct worker_slot *slots;
    unsigned nslots;
};

/* Whether slot j is of the canary side of the generation's split. */
static inline bool slot_is_canary(const struct generation *g, unsigned j)
{
    return j >= g->nmain;
}

/* The model worker j runs: the one it reported, or, before it reported,
 * the first of its side's list. */
static inline const char *slot_model(const struct generation *g, unsigned j)
{
    if (g->slots[j].model[0])
        return g->slots[j].model;
    return slot_is_canary(g, j) ? g->cfg->canary.model : g->cfg->models[0];
}

/* What /metrics reports beyond the live generations' counters. */
#define MAX_MODEL_TOTALS 32
#define MAX_FALLBACKS 16
struct master_stats {
    uint64_t reloads, reloads_failed, worker_restarts;
    struct model_totals { /* counters of generations that have ended */
        char model[64];
        struct ios_counters c;
    } retired[MAX_MODEL_TOTALS];
    struct fallback { /* a model skipped for the next one of the list */
        char model[64];
        char reason[160];
        uint64_t count;
    } fallbacks[MAX_FALLBACKS];
    /* Connections that closed on a draining generation, by model: of
     * generations that have ended (the live ones add their own). */
    struct finished_on_old {
        char model[64];
        uint64_t n;
    } finished[MAX_MODEL_TOTALS];
    uint64_t last_drain_ms;
};

struct master {
    const struct master_opts *opts;
    int sigfd;
    struct generation *gens[MAX_GENERATIONS];
    unsigned next_gen_id;
    bool ever_active;
    bool reload_pending;
    bool quitting;          /* graceful: drain everything, then exit */
    enum quit_phase quit_phase;
    uint64_t quit_phase_at_ms; /* QUIT_DELAY: when it ends; QUIT_FLUSH: when it began */
    int quit_queued;           /* QUIT_FLUSH: the backlog's length when last seen shrinking */
    uint64_t quit_shrunk_at_ms; /* ...and when */
    bool terminating;       /* fast: kill everything, then exit */
    uint64_t kill_at_ms;
    int exit_code;
    char *pid_file;
    char *user, *group;    /* what the master started with (privs_drop) */
    bool socket_activated; /* the listening socket came from systemd */
    struct status_server status;
    struct master_stats stats;
    struct ho_relay relay; /* connections in hand-over */
    rlim_t worker_nofile;  /* RLIMIT_NOFILE's soft limit as started: the workers' */
    struct upgrade up;     /* binary upgrade, as the old or the new master */
};

/* generation.c: the state machine of a generation's life. */

/* What an event did to a generation, for the master to act on. */
enum gen_change {
    GEN_UNCHANGED,
    GEN_NOW_ACTIVE, /* every worker reported ready: it serves */
    GEN_NOW_FAILED, /* it could not start (logged); it may be freed already */
};

/* Starts a generation on cfg (taken over) and listen_fd (taken over): it
 * returns the generation with every worker forked, or NULL (logged) with
 * nothing left behind. */
struct generation *gen_start(struct master *m, struct ios_config *cfg, int listen_fd);
/* The master wants g gone: an active one drains, a starting one fails.
 * Either is freed at once when no worker of it is alive.  `successor`:
 * the generation now serving, to which g hands its connections over if
 * both allow it (NULL: none, as for -s quit). */
void gen_drain(struct master *m, struct generation *g, const struct generation *successor);
/* Binary upgrade: an active g drains into the new master, whose
 * configuration has `handover` and `handler`; it hands its connections
 * over if both allow it (the relay passes them to the new master). */
void gen_drain_to_master(struct master *m, struct generation *g, bool handover,
                         const char *handler);
/* A new generation serves: generations draining without a hand-over (to
 * a successor of another handler, or of ABI 1.1) hand their remaining
 * connections over to it if both allow it now.  Models ask again while
 * they drain. */
void gen_offer_hand_over(struct master *m, const struct generation *successor);
/* Whether any canary worker of g may still serve its split (false also
 * without a split). */
bool gen_canary_serves(const struct generation *g);
/* Connections g's workers hold now. */
uint64_t gen_open_connections(const struct generation *g);
/* Events.  Each may free the generation. */
enum gen_change gen_report_arrived(struct master *m, struct generation *g, unsigned idx);
enum gen_change gen_worker_exited(struct master *m, pid_t pid, int status);
enum gen_change gen_tick(struct master *m, struct generation *g, uint64_t now);
/* gen_control.c: the workers' control sockets and the hand-over relay. */

/* Worker w's control socket closes (it exited, or its generation is
 * freed): what it gave and the master did not read yet is read first, and
 * what it was sent and did not acknowledge goes to another adopter. */
void gen_control_close(struct master *m, struct worker_slot *w);
/* An end of the relay is ready (poll revents): a worker's control socket,
 * or the other master's in a binary upgrade; the relay reads or writes it.
 * Never frees a generation. */
void gen_control_end_event(struct master *m, struct ho_end *e, short revents);
/* The same for worker idx's control socket. */
void gen_control_event(struct master *m, struct generation *g, unsigned idx, short revents);
/* What poll should wait for on worker idx's control socket; 0 = skip it. */
short gen_control_events(struct master *m, const struct generation *g, unsigned idx);
/* Connections in transit that wait for an adopter go to the active
 * generation's, once it has any. */
void gen_place_in_transit(struct master *m);
/* Closed while g drained: connections that finished on the old model. */
uint64_t gen_finished_while_draining(const struct generation *g, unsigned idx);
/* When g next needs a tick (a deadline or a respawn); 0 = never. */
uint64_t gen_next_deadline(const struct generation *g);

/* For the master's exit: frees g whatever its state. */
void gen_free(struct master *m, struct generation *g);
/* The newest generation in `state`, or NULL.  A query on the master's
 * table, here rather than in generation.c, so that gen_control.c can ask
 * it without the two files calling each other. */
static inline struct generation *gen_find(const struct master *m, enum gen_state state)
{
    struct generation *g = NULL;
    for (unsigned i = 0; i < MAX_GENERATIONS; i++)
        if (m->gens[i] && m->gens[i]->state == state && (!g || m->gens[i]->id > g->id))
            g = m->gens[i];
    return g;
}
unsigned gen_live_workers(const struct generation *g);
void gen_signal_workers(struct generation *g, int sig);

/* metrics.c: renders /metrics; ctx is the struct master. */
void metrics_render(void *ctx, struct ios_buf *out);

/* health.c: the probes' pages (status_render_fn); ctx is the struct master. */
int health_live(void *ctx, struct ios_buf *out);  /* /healthz */
int health_ready(void *ctx, struct ios_buf *out); /* /readyz */

#endif
