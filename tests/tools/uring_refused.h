/*
 * Is io_uring refused to this process?  One answer for the test harness
 * (a skip) and make tour (a skipped step): the io_uring_setup system call
 * itself, raw, as the uring model makes it, so liburing need not be
 * installed and the answer comes from the same kernel settings and seccomp
 * filter the servers run under.  Only "not here" (ENOSYS) and "not
 * allowed" (EPERM) mean refused; any other error is the model's to
 * report, and a test or tour step that meets it fails.
 */
#ifndef IOSERVE_TESTS_URING_REFUSED_H
#define IOSERVE_TESTS_URING_REFUSED_H

#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* 1 with the reason in `why`, or 0 (available, or failing otherwise). */
static inline int uring_refused(char *why, size_t len)
{
#ifdef __NR_io_uring_setup
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    long fd = syscall(__NR_io_uring_setup, 4, &params);
    if (fd >= 0) {
        close((int)fd);
        return 0;
    }
    int err = errno;
    if (err != ENOSYS && err != EPERM)
        return 0;
    char knob[32] = "absent";
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (f) {
        if (fgets(knob, sizeof knob, f))
            knob[strcspn(knob, "\n")] = '\0';
        fclose(f);
    }
    snprintf(why, len, "io_uring_setup: %s (kernel.io_uring_disabled=%s)", strerror(err),
             knob);
    return 1;
#else
    snprintf(why, len, "this C library has no io_uring_setup system call number");
    return 1;
#endif
}

#endif
