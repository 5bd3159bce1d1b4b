/*
 * Clients for the scenarios that move connections (sc_handover.c,
 * sc_upgrade.c): long-lived upper sessions sending a line every period and
 * http keep-alive clients sending back to back, all in one poll loop over
 * non-blocking sockets, every reply checked byte for byte; and what the
 * server's /metrics says of them.
 */
#ifndef IOSERVE_IT_HO_LOAD_H
#define IOSERVE_IT_HO_LOAD_H

#include "harness.h"

#include <stdint.h>

#define HO_MAX_LOADS 3
#define HO_EXP_CAP 16384
/* A deadline that waits on the server, scaled in a sanitizer build. */
#define HO_MS(ms) ((ms) * IT_SLOWDOWN)
#define HO_STALL_MS HO_MS(5000)

enum ho_kind { HO_UPPER, HO_HTTP };

struct ho_sess {
    int fd;
    enum ho_kind kind;
    int id;
    int broken;
    char why[200];
    unsigned long long sent, done; /* lines/requests sent, replies verified */
    int64_t next_ms;               /* upper: when its next line is due */
    char out[256];
    size_t out_len, out_off;       /* bytes of out still to write */
    char exp[HO_EXP_CAP];          /* upper: reply bytes still expected */
    size_t exp_len;
    int64_t wait_since;            /* the oldest unanswered send, -1 none */
    int64_t max_wait;              /* the longest wait for a reply */
    char in[4096];                 /* http: a response in progress */
    size_t in_len;
};

struct ho_load {
    struct ho_sess *s;
    int n;
    int period_ms;  /* upper: a line every period_ms; 0 = only when asked */
    char body[512]; /* http: the first body, every later one must equal it */
    size_t body_len;
    int have_body;
};

/* Opens n connections of `kind` to port (the test fails if one cannot).
 * Sets are freed by ho_free_loads. */
struct ho_load *ho_open(int port, int n, enum ho_kind kind, int period_ms);
void ho_free_loads(void);
/* Called every pass of the loop; returns 1 to end the loop early. */
typedef int (*ho_hook)(void *arg);
/*
 * Runs the clients of loads[0..nl) for ms milliseconds (or until hook says
 * so): upper sessions send a line every period (when the period is not 0),
 * http clients send their next request as soon as the last one is answered.
 * A session that fails is marked broken with the reason, never retried.
 */
void ho_pump(struct ho_load **loads, int nl, int ms, ho_hook hook, void *arg);
/* 1 when every unbroken session of L has every reply it asked for. */
int ho_all_answered(const struct ho_load *L);
/* One more line on every unbroken upper session of L, all answered within
 * timeout_ms (those that are not end up broken). */
void ho_exchange_all(struct ho_load *L, int timeout_ms);
/* Broken sessions of L; prints the first few reasons under `what`. */
int ho_broken(const struct ho_load *L, const char *what);
void ho_close_load(struct ho_load *L);

/* The /metrics body of server s (static storage), or NULL. */
const char *ho_metrics(const struct it_server *s);
/* ioserve_connections_active of generation `gen` (0 = every generation). */
long ho_active(const char *body, unsigned gen);
/* Waits up to timeout_ms until generation `gen` holds `want` connections
 * and no generation holds any other.  0, or -1 with the last counts. */
int ho_wait_active(const struct it_server *s, unsigned gen, long want, int timeout_ms,
                   long *on_gen, long *total);
/* Waits up to timeout_ms until generation `gen` holds `want` connections,
 * whatever the others hold.  1 when it does, 0 if not. */
int ho_wait_holds(const struct it_server *s, unsigned gen, long want, int timeout_ms);
/* Every connection was handed over, none finished on an old model: the
 * hand-over metrics say `moved` and 0. */
void ho_check_moved(const struct it_server *s, long moved);

#endif
