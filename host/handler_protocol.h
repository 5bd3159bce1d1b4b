/* What a protocol (echo, upper, http) sees of the host, and what it shows
 * the registry (handler.c): each protocol file defines one struct
 * hnd_protocol, and knows nothing of the registry or of the others. */
#ifndef IOSERVE_HANDLER_PROTOCOL_H
#define IOSERVE_HANDLER_PROTOCOL_H

#include "config.h"
#include "ioserve/plugin.h"

/*
 * The host context behind a handler.  h->host must point to a struct whose
 * FIRST member is a struct hnd_host (or to a hnd_host itself): the
 * callbacks only get `h`, and plugin.h is frozen, so this is where the
 * per-config data they share lives.  hnd_setup fills it.
 */
struct hnd_protocol;
struct hnd_host {
    const struct ios_config *cfg;          /* the config set up from */
    const struct hnd_protocol *protocol;   /* which protocol, NULL if none */
    void *protocol_data;                   /* the protocol's own, per config:
                                              made by its setup, freed by
                                              its teardown */
};

struct hnd_protocol {
    const char *name; /* as handler = "..." names it; becomes h->protocol */
    /* Fills conn_state_size, open, data, close (and any limit the protocol
     * sets) of h, once hnd_host(h)->cfg is set.  0 or -errno. */
    int (*setup)(struct ios_handler *h);
    /* Frees hnd_host(h)->protocol_data; safe to call twice, or after a
     * failed setup.  NULL when the protocol keeps nothing. */
    void (*teardown)(struct ios_handler *h);
    /* Hand-over: 1 when a connection's state is between requests, so it
     * may move to another worker (ios_handler.at_boundary). */
    int (*at_boundary)(const struct ios_handler *h, void *state);
    /* 1 when a drain with no successor may close a connection idle at a
     * boundary at once (ios_handler.close_idle_on_drain). */
    int close_idle_on_drain;
    /* Latency: how many requests the last data() call answered, the
     * count then starting again (ios_handler.requests_answered).  NULL:
     * each call that replies answered one. */
    unsigned (*requests_answered)(const struct ios_handler *h, void *state);
};

static inline struct hnd_host *hnd_host(const struct ios_handler *h)
{
    return (struct hnd_host *)h->host;
}

/* The config a handler was set up with. */
static inline const struct ios_config *hnd_config(const struct ios_handler *h)
{
    return hnd_host(h)->cfg;
}

/* The protocols, each defined in its own file. */
extern const struct hnd_protocol hnd_echo, hnd_upper, hnd_http;

#endif
