/* A plugin with a valid descriptor but no model_run: the host must refuse it. */
#include "ioserve/plugin.h"

IOS_MODEL("no_run", "test plugin that lacks model_run", NULL);
