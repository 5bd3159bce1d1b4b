/* Log lines: time, level, pid, message — one write(2) each. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum ios_log_level current_level = IOS_LOG_INFO;

const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};

void log_set_level(enum ios_log_level level) { current_level = level; }
enum ios_log_level log_get_level(void) { return current_level; }

void log_vmsg(enum ios_log_level level, int err, const char *fmt, va_list ap)
{
    if (level > current_level)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ [%s] [pid %d] ",
                          (long)(tv.tv_usec / 1000), log_level_names[level], (int)getpid());
    int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (m > 0)
        n = n + (size_t)m < sizeof(line) ? n + (size_t)m : sizeof(line) - 1;
    if (err && n < sizeof(line) - 1) {
        char ebuf[128];
        const char *etext = strerror_r(err, ebuf, sizeof(ebuf));
        m = snprintf(line + n, sizeof(line) - n, ": %s", etext);
        if (m > 0)
            n = n + (size_t)m < sizeof(line) ? n + (size_t)m : sizeof(line) - 1;
    }
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    int saved = errno;
    ssize_t unused = write(STDERR_FILENO, line, n);
    (void)unused; /* nowhere left to report a failing stderr */
    errno = saved;
}

void log_msg(enum ios_log_level level, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, err, fmt, ap);
    va_end(ap);
}
