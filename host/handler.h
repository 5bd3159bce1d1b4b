/* The handler registry: sets up the protocol a config names (echo, upper,
 * http) behind a struct ios_handler, for the worker to lend to the model.
 * The protocols themselves see only handler_protocol.h. */
#ifndef IOSERVE_HANDLER_H
#define IOSERVE_HANDLER_H

#include "config.h"
#include "handler_protocol.h"
#include "ioserve/plugin.h"

/* NULL-terminated list of handler names, for validation and messages. */
extern const char *const hnd_names[];

/*
 * Fills the protocol fields of h (protocol, conn_state_size, open, data,
 * close, at_boundary, close_idle_on_drain, requests_answered) for cfg->handler and sets the hnd_host that h->host points to.
 * `cfg` must outlive h.  The hnd_host's previous contents are overwritten,
 * not freed: call hnd_teardown before setting the same h up again.
 * 0, -EINVAL for an unknown handler, a NULL h->host or an
 * http.content_type containing control characters, -ENOMEM.
 */
int hnd_setup(struct ios_handler *h, const struct ios_config *cfg);

/* Frees what hnd_setup allocated.  Safe to call twice, or after a failed
 * hnd_setup. */
void hnd_teardown(struct ios_handler *h);

#endif
