/* A plugin that starts but never drains: it ignores stop_fd.  `ioserve -t`
 * must not hang on it. */
#include <unistd.h>

#include "ioserve/plugin.h"

IOS_MODEL("no_drain", "test plugin that never returns from model_run", NULL);

int model_run(int listen_fd, const struct ios_handler *h)
{
    (void)listen_fd;
    h->ready(h);
    for (;;)
        pause();
}
