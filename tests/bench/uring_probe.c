/*
 * uring-probe — can this process create an io_uring?  For `make tour`,
 * which must say "skipped, because ..." rather than fail when the kernel
 * refuses io_uring (kernel.io_uring_disabled, a seccomp filter, an old
 * kernel).  The raw io_uring_setup(2), so the answer does not depend on
 * liburing being installed.
 *
 * Prints "ok" and exits 0, or prints the error and exits 77 (tools/tour
 * adds kernel.io_uring_disabled when it is set).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/io_uring.h>

int main(void)
{
#ifdef __NR_io_uring_setup
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    long fd = syscall(__NR_io_uring_setup, 1, &params);
    if (fd >= 0) {
        close((int)fd);
        puts("ok");
        return 0;
    }
    printf("io_uring_setup: %s\n", strerror(errno));
#else
    puts("io_uring_setup: not known to this C library");
#endif
    return 77;
}
