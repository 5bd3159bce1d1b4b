/* Handler registry: maps cfg->handler to one protocol's set-up. */
#include <errno.h>
#include <string.h>

#include "handler.h"

const char *const hnd_names[] = {"echo", "upper", "http", NULL};

/* Same order as hnd_names. */
static int (*const hnd_setups[])(struct ios_handler *) = {
    hnd_echo_setup,
    hnd_upper_setup,
    hnd_http_setup,
};

static int hnd_index(const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; hnd_names[i]; i++)
        if (strcmp(hnd_names[i], name) == 0)
            return i;
    return -1;
}

int hnd_known(const char *name)
{
    return hnd_index(name) >= 0;
}

int hnd_setup(struct ios_handler *h, const struct ios_config *cfg)
{
    if (!h->host)
        return -EINVAL;
    /* Before any failure, so that hnd_teardown is always safe. */
    struct hnd_host *hh = hnd_host(h);
    hh->cfg = cfg;
    hh->http = NULL;
    int i = hnd_index(cfg->handler);
    if (i < 0)
        return -EINVAL;
    return hnd_setups[i](h);
}

void hnd_teardown(struct ios_handler *h)
{
    if (h->host)
        hnd_http_teardown(h);
}
