/*
 * The A/B split (`canary = { model; share; }`): which new connections the
 * canary model serves.
 *
 * How connections reach the canary, and why this way: every connection is
 * accepted by the main model's workers on the one listening socket; each
 * asks, right after accept (plugins/common/ioc_accept.c, ABI 1.3
 * route_accepted), whether this one is the canary's, and if so gives it at
 * once to the master, which relays it to the same generation's canary
 * workers — the live hand-over's path (handover.c), for a connection that
 * is at a boundary by construction (nothing read yet).  The alternative, an
 * SO_REUSEPORT group steered by a classic BPF program, was turned down:
 *  - a socket passed by systemd is one socket; a group needs one per
 *    worker, bound by us with SO_REUSEPORT, which the passed one may lack;
 *  - classic BPF has no state, so it can only hash (ports, addresses):
 *    the share holds on average, not for each 10,000 connections, and not
 *    at all for one client behind one address;
 *  - closing a reuseport socket on reload drops the connections in its
 *    queue (unless net.ipv4.tcp_migrate_req), where the hand-over loses
 *    nothing.
 * What it costs: a canary connection crosses the master (two SCM_RIGHTS
 * messages) before its first byte is read.
 *
 * The share is exact: one counter per generation, in memory its workers
 * share, numbers the connections; connection n is the canary's when
 * floor((n+1) * share / 100) > floor(n * share / 100), so of any 100
 * consecutive connections exactly `share` are, spread evenly.  The master
 * sets the share only while a canary worker can adopt (split_set): 0
 * routes nothing, so a canary that cannot start leaves every connection
 * to the main model.
 */
#ifndef IOSERVE_SPLIT_H
#define IOSERVE_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* In the generation's shared memory. */
struct split_state {
    uint64_t next;  /* connections numbered so far */
    unsigned share; /* percent to the canary now; 0 = none */
};

/* Whether connection number n goes to the canary at `share` percent. */
static inline bool split_is_canary(uint64_t n, unsigned share)
{
    return (n + 1) * share / 100 > n * share / 100;
}

/* Numbers one new connection: true when the canary serves it.  Any
 * worker, any thread. */
bool split_take(struct split_state *s);

/* The master: the share the workers apply from now on. */
void split_set(struct split_state *s, unsigned share);

/* "canary uring for 10% of new connections (1 worker)": the split as the
 * startup line, STATUS=, -t and --list-models say it. */
void split_describe(const char *canary_model, unsigned share, unsigned canary_workers,
                    char *out, size_t len);

#endif
