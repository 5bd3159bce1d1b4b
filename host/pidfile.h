/* The pid file: how `ioserve -s reload|quit|stop` finds the master. */
#ifndef IOSERVE_PIDFILE_H
#define IOSERVE_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Writes getpid() to path.  Refuses if it names a live process other than
 * `replacing` (the old master of a binary upgrade; 0: none).  0 or -1. */
int pidfile_write(const char *path, pid_t replacing, char *err, size_t errlen);
void pidfile_remove(const char *path);
/* The pid in path, checked to be a live process.  pid, or -1 with err set
 * (missing file, garbage, stale pid). */
pid_t pidfile_read(const char *path, char *err, size_t errlen);

#endif
