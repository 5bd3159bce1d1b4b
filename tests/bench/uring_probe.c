/*
 * uring-probe — can this process create an io_uring?  For `make tour`,
 * which must say "skipped, because ..." rather than fail when the kernel
 * refuses io_uring (kernel.io_uring_disabled, a seccomp filter, an old
 * kernel).  The raw io_uring_setup(2), so the answer does not depend on
 * liburing being installed.
 *
 * Prints "ok" and exits 0, or prints why io_uring is refused and exits 77
 * (the rule is tests/tools/uring_refused.h's, shared with the test harness:
 * any other error is the uring step's to report, not a skip).
 */
#include <stdio.h>

#include "uring_refused.h"

int main(void)
{
    char why[256];
    if (uring_refused(why, sizeof why)) {
        puts(why);
        return 77;
    }
    puts("ok");
    return 0;
}
