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
 * Fills the protocol fields of h (protocol, conn_state_size, open, data,
 * close) for cfg->handler.  The callbacks read their settings (http.*) from
 * `cfg`, which must outlive h; they find it through hnd_config(h).
 * 0, or -EINVAL for an unknown handler.
 */
int hnd_setup(struct ios_handler *h, const struct ios_config *cfg);

/* The config a handler was set up with.  h->host points to a struct whose
 * first member is `const struct ios_config *`. */
static inline const struct ios_config *hnd_config(const struct ios_handler *h)
{
    return *(const struct ios_config *const *)h->host;
}

#endif
