/* Handler registry: maps cfg->handler to one protocol's set-up. */
#include <errno.h>
#include <string.h>

#include "handler.h"

/* Same order as hnd_names: the config's list of choices. */
static const struct hnd_protocol *const protocols[] = {&hnd_echo, &hnd_upper, &hnd_http};
const char *const hnd_names[] = {"echo", "upper", "http", NULL};

_Static_assert(sizeof protocols / sizeof protocols[0] + 1 ==
                   sizeof hnd_names / sizeof hnd_names[0],
               "a name for every protocol");

static const struct hnd_protocol *protocol_named(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof protocols / sizeof protocols[0]; i++)
        if (strcmp(protocols[i]->name, name) == 0)
            return protocols[i];
    return NULL;
}

int hnd_setup(struct ios_handler *h, const struct ios_config *cfg)
{
    if (!h->host)
        return -EINVAL;
    /* Before any failure, so that hnd_teardown is always safe. */
    struct hnd_host *hh = hnd_host(h);
    hh->cfg = cfg;
    hh->protocol = protocol_named(cfg->handler);
    hh->protocol_data = NULL;
    if (!hh->protocol)
        return -EINVAL;
    h->protocol = hh->protocol->name;
    h->at_boundary = hh->protocol->at_boundary;
    h->close_idle_on_drain = hh->protocol->close_idle_on_drain;
    h->requests_answered = hh->protocol->requests_answered;
    return hh->protocol->setup(h);
}

void hnd_teardown(struct ios_handler *h)
{
    const struct hnd_host *hh = h->host;
    if (hh && hh->protocol && hh->protocol->teardown)
        hh->protocol->teardown(h);
}
