/* -o KEY=VALUE: overrides grafted onto the parsed tree before it is read,
 * so the file and the command line share one set of rules and messages. */
#ifndef IOSERVE_CONFIG_OVERRIDE_H
#define IOSERVE_CONFIG_OVERRIDE_H

#include <libconfig.h>

#include "config_report.h"

/* Sets KEY (a dotted setting path, groups made as needed) in lc to VALUE:
 * libconfig syntax if it parses as one value, else the bare text as a
 * string.  The setting keeps line 0, so messages about it say "-o KEY".
 * 0 or -1 with the message in r. */
int cfg_override(config_t *lc, const struct cfg_report *r, const char *override);

#endif
