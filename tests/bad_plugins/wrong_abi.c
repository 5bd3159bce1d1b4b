/* A plugin built for an ABI major version the host does not speak. */
#include "ioserve/plugin.h"

IOS_EXPORT extern const struct ios_model_descriptor ios_model;
const struct ios_model_descriptor ios_model = {
    IOS_ABI_MAGIC, IOS_ABI_MAJOR + 1, 0, "wrong_abi",
    "test plugin built for another ABI version", NULL};

int model_run(int listen_fd, const struct ios_handler *h)
{
    (void)listen_fd;
    (void)h;
    return 0;
}
