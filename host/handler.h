/* The protocols a model serves: echo, upper, http.  They run inside the
 * worker process, called by the model through struct ios_handler. */
#ifndef IOSERVE_HANDLER_H
#define IOSERVE_HANDLER_H

#include "config.h"
#include "ioserve/plugin.h"

/* NULL-terminated list of handler names, for validation and messages. */
extern const char *const hnd_names[];

/* 1 if `name` is a known handler. */
int hnd_known(const char *name);

/*
 * What the handlers need from the host context.  h->host must point to a
 * struct whose FIRST member is a struct hnd_host (or to a hnd_host itself):
 * the callbacks only get `h`, and plugin.h is frozen, so this is where the
 * per-config data they share lives.
 */
struct hnd_host {
    const struct ios_config *cfg; /* set by hnd_setup */
    void *http;                   /* precomputed http responses; owned by
                                     hnd_setup/hnd_teardown */
};

/*
 * Fills the protocol fields of h (protocol, conn_state_size, open, data,
 * close) for cfg->handler, sets the hnd_host that h->host points to (its
 * cfg and, for http, the precomputed responses).  `cfg` must outlive h.
 * The hnd_host's previous contents are overwritten, not freed: call
 * hnd_teardown before setting the same h up again.
 * 0, -EINVAL for an unknown handler, a NULL h->host or an http.content_type
 * containing control characters, -ENOMEM.
 */
int hnd_setup(struct ios_handler *h, const struct ios_config *cfg);

/* Frees what hnd_setup allocated.  Safe to call twice, or after a failed
 * hnd_setup. */
void hnd_teardown(struct ios_handler *h);

static inline struct hnd_host *hnd_host(const struct ios_handler *h)
{
    return (struct hnd_host *)h->host;
}

/* The config a handler was set up with. */
static inline const struct ios_config *hnd_config(const struct ios_handler *h)
{
    return hnd_host(h)->cfg;
}

/* Per-protocol set-up, called by hnd_setup once hnd_host(h)->cfg is set.
 * Internal to the handler files. */
int hnd_echo_setup(struct ios_handler *h);
int hnd_upper_setup(struct ios_handler *h);
int hnd_http_setup(struct ios_handler *h);
void hnd_http_teardown(struct ios_handler *h);

#endif
