/* Opening a model plugin and checking it before any of its code runs. */
#ifndef IOSERVE_PLUGIN_LOAD_H
#define IOSERVE_PLUGIN_LOAD_H

#include <stddef.h>

#include "ioserve/plugin.h"

struct plugin {
    void *dl;
    const struct ios_model_descriptor *desc;
    int (*run)(int listen_fd, const struct ios_handler *h);
    char path[4096];
};

/* dlopen()s path, checks magic and ABI version, resolves model_run.
 * 0, or -1 with a message in err naming the file and the problem. */
int plugin_open(struct plugin *p, const char *path, char *err, size_t errlen);
void plugin_close(struct plugin *p);

#endif
