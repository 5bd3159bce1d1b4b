/* A plugin built for an ABI minor newer than the host's: it may read
 * handler fields this host does not have, so the host refuses it. */
#include "ioserve/plugin.h"

IOS_EXPORT extern const struct ios_model_descriptor ios_model;
const struct ios_model_descriptor ios_model = {
    IOS_ABI_MAGIC, IOS_ABI_MAJOR, IOS_ABI_MINOR + 1, "newer_minor",
    "test plugin built for a newer ABI minor", NULL};

int model_run(int listen_fd, const struct ios_handler *h)
{
    (void)listen_fd;
    (void)h;
    return 0;
}
