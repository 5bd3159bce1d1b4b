/* A plugin that works with hosts from ABI 1.0 on, though built with a
 * newer plugin.h (it would read each later field behind IOS_HANDLER_HAS):
 * this host, of a newer minor, loads it. */
#define IOS_REQUIRE_MINOR 0
#include "ioserve/plugin.h"

IOS_MODEL("older_minor", "test plugin requiring an older ABI minor", NULL);

int model_run(int listen_fd, const struct ios_handler *h)
{
    (void)listen_fd;
    (void)h;
    return 0;
}
