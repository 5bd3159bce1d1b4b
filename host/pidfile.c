#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pidfile.h"

/* A process's command name (/proc/PID/comm, "self" for ours), or "" when
 * it cannot be read. */
static void process_name(const char *pid, char *name, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%s/comm", pid);
    FILE *f = fopen(path, "re");
    name[0] = '\0';
    if (f && fgets(name, (int)len, f))
        name[strcspn(name, "\n")] = '\0';
    if (f)
        fclose(f);
}

pid_t pidfile_read(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "pid file %s: %s (is ioserve running?)", path,
                 strerror(errno));
        return -1;
    }
    long pid = 0;
    int ok = fscanf(f, "%ld", &pid) == 1 && pid > 1;
    fclose(f);
    if (!ok) {
        snprintf(err, errlen, "pid file %s: no valid pid in it", path);
        return -1;
    }
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
        snprintf(err, errlen, "pid file %s: stale, process %ld is not running", path, pid);
        return -1;
    }
    /* A pid file left behind (a master that dropped privileges cannot
     * remove it) may name a pid the system has since given to another
     * program, which must never get our signals. */
    char pid_text[24], theirs[32], ours[32];
    snprintf(pid_text, sizeof(pid_text), "%ld", pid);
    process_name(pid_text, theirs, sizeof(theirs));
    process_name("self", ours, sizeof(ours));
    if (theirs[0] && ours[0] && strcmp(theirs, ours) != 0) {
        snprintf(err, errlen, "pid file %s: stale, process %ld is '%s', not %s", path,
                 pid, theirs, ours);
        return -1;
    }
    return (pid_t)pid;
}

int pidfile_write(const char *path, pid_t replacing, char *err, size_t errlen)
{
    char old_err[256];
    pid_t old = pidfile_read(path, old_err, sizeof(old_err));
    if (old > 0 && old != getpid() && old != replacing) {
        snprintf(err, errlen, "pid file %s: ioserve already running as pid %d", path,
                 (int)old);
        return -1;
    }
    /* Written beside and renamed, so a reader never sees half a pid. */
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "pid file %s: %s", tmp, strerror(errno));
        return -1;
    }
    char line[32];
    int n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
    int ok = write(fd, line, (size_t)n) == n;
    ok = (close(fd) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void pidfile_remove(const char *path)
{
    char err[256];
    /* Only our own: a newer master may have taken the name over. */
    if (pidfile_read(path, err, sizeof(err)) == getpid())
        unlink(path);
}
