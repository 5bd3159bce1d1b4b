/* Dropping root after the socket is bound. */
#ifndef IOSERVE_PRIVS_H
#define IOSERVE_PRIVS_H

#include <stddef.h>

/* When running as root and user and/or group are set, switches the whole
 * process to them for good (supplementary groups included).  Not root:
 * nothing to drop, 0.  0, or -1 with a message in err. */
int privs_drop(const char *user, const char *group, char *err, size_t errlen);

#endif
