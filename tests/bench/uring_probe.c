/*
 * uring-probe — can this process create an io_uring?  For `make tour`,
 * which must say "skipped, because ..." rather than fail when the kernel
 * refuses io_uring (kernel.io_uring_disabled, a seccomp filter, an old
 * kernel).  The raw io_uring_setup(2), so the answer does not depend on
 * liburing being installed.
 *
 * Prints "ok" and exits 0, or prints the reason and exits 77.
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
    int err = errno;
    int disabled = -1;
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    if (f) {
        if (fscanf(f, "%d", &disabled) != 1)
            disabled = -1;
        fclose(f);
    }
    printf("io_uring_setup: %s%s\n", strerror(err),
           err == EPERM && disabled > 0 ? " (kernel.io_uring_disabled is set)"
           : err == EPERM               ? " (refused by a seccomp filter or security policy)"
           : err == ENOSYS              ? " (no io_uring in this kernel)"
                                        : "");
#else
    puts("io_uring_setup: not known to this C library");
#endif
    return 77;
}
