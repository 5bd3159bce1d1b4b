/*
 * The master's relay of connections handed over from a draining
 * generation to the active one (see handover_wire.h for the messages).
 * It keeps its own copy of every connection in transit, from the GIVE it
 * received until the adopter's ACK, so a connection is never lost with a
 * worker that dies before adopting it: it is re-sent to another.  The
 * master's ends are non-blocking: an ADOPT that does not fit waits for
 * POLLOUT.  It never reads a connection's bytes.
 */
#ifndef IOSERVE_HANDOVER_H
#define IOSERVE_HANDOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The master's end of one worker's control socket. */
struct ho_end {
    int fd;             /* non-blocking; -1 = none */
    const char *model;  /* what the worker runs, for the counts */
    const char *protocol; /* its handler: a connection only moves to its own */
    unsigned abi_minor; /* of that model (its ready report); < 2 never adopts */
    bool eof;           /* the worker closed its end: nothing more to read or send */
    bool want_write;    /* ADOPTs wait for room: poll POLLOUT */
    bool throttled;     /* no descriptors to spare: stop reading it for now */
    unsigned gen_id;    /* its worker's generation */
    bool upstream;      /* another master handing its connections over (binary
                         * upgrade): its ADOPTs are gives, each acknowledged to
                         * it once a worker here has adopted the connection */
};

/* A connection in transit: the master's copies until the ACK. */
struct ho_pending {
    uint64_t id;
    int conn, memfd; /* memfd -1: no input */
    uint32_t input_len;
    char from_model[64];
    char protocol[16];
    unsigned route_gen; /* a new connection routed to this generation's
                           canary side (HO_ROUTE); 0: a hand-over */
    struct ho_end *to; /* NULL: waits for an adopter */
    bool sent;         /* ADOPT sent, ACK awaited */
    struct ho_end *upstream; /* the master it came from, owed an ACK; or NULL */
    uint64_t upstream_id;    /* that master's id for it */
};

/* Connections handed over so far, by (from_model, to_model). */
#define HO_MAX_COUNTS 64
struct ho_count {
    char from[64], to[64];
    uint64_t n;
};

struct ho_relay {
    struct ho_pending *pending;
    size_t n_pending, cap_pending;
    uint64_t next_id;
    size_t next_pick; /* round-robin position among the main adopters */
    size_t next_pick_canary; /* ... and among the canary adopters */
    bool released;    /* descriptors were closed: throttled ends may read again */
    struct ho_count counts[HO_MAX_COUNTS];
    size_t n_counts;
};

/* Where connections in transit go: the serving generation's workers. */
struct ho_targets {
    struct ho_end *const *main; /* its main model's: connections handed over,
                                   and routed ones while no canary adopts */
    size_t n_main;
    struct ho_end *const *canary; /* its canary side's: what its main
                                     workers route (split.h) */
    size_t n_canary;
    unsigned gen_id; /* a route from another generation is a hand-over */
};

void ho_relay_init(struct ho_relay *r);
/* Closes every connection still in transit (the master exits), logging
 * how many were lost. */
void ho_relay_fini(struct ho_relay *r);

/* 1 when `e` may adopt: an open end whose model has ABI 1.2. */
bool ho_end_adopts(const struct ho_end *e);

/*
 * Reads what waits on `from` (POLLIN): each GIVE (from an upstream master:
 * each ADOPT) goes to the next of
 * t's main adopters (those that do not adopt are skipped), each ROUTE of
 * the serving generation to the next of its canary adopters (or, with
 * none, of its main ones), or waits for one (if the adopters serve another
 * protocol, as when a later reload changed the handler, it is closed: it
 * cannot continue there); each ACK releases the master's copy and counts
 * the hand-over.  Adopters are the live, ready workers of the active
 * generation.  0, or -EPIPE once the
 * worker has closed its end (from->eof set).
 */
int ho_relay_read(struct ho_relay *r, struct ho_end *from, const struct ho_targets *t);
/* `to` has room (POLLOUT): sends what waits for it. */
void ho_relay_writable(struct ho_relay *r, struct ho_end *to);
/* Sends what waits for no adopter yet to one of `adopters`.  Call when
 * the set of adopters may have grown (a worker became ready, a generation
 * became active). */
void ho_relay_place(struct ho_relay *r, const struct ho_targets *t);
/* `gone` is about to close (its worker exited): call after a last
 * ho_relay_read of it.  What it had not acknowledged goes to another of
 * `adopters`; nothing will point to `gone` after this. */
void ho_relay_end_gone(struct ho_relay *r, struct ho_end *gone, const struct ho_targets *t);

/* Connections the master holds in transit. */
size_t ho_relay_in_transit(const struct ho_relay *r);

#endif
