/* The master process: binds, forks and supervises generations of workers,
 * reloads on SIGHUP.  It never runs plugin code. */
#ifndef IOSERVE_MASTER_H
#define IOSERVE_MASTER_H

#include <stddef.h>

#include "config.h"

struct upgrade_inherited;

struct master_opts {
    const char *config_file;
    char *const *overrides; /* -o KEY=VALUE, re-applied on every reload */
    size_t n_overrides;
    /* Binary upgrade: the path the binary was started from, made absolute
     * at start (what is there when the upgrade comes is run), and the
     * command line the new master gets, argv[0] being that path. */
    const char *exe_path;
    char *const *argv;
    /* Set when an old master started this one (upgrade.h): its sockets. */
    const struct upgrade_inherited *inherited;
};

/* Takes ownership of cfg (already loaded and valid).  Runs until stopped;
 * returns the process exit code. */
int master_run(const struct master_opts *opts, struct ios_config *cfg);

#endif
