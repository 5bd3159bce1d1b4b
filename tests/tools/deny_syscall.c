/*
 * deny-syscall uring|fork PROGRAM [ARGS...]: runs PROGRAM with a system
 * call refused, as under a container runtime's seccomp profile or a
 * process limit, so tests can check what ioserve does then:
 *   uring  io_uring_setup(2) fails with EPERM;
 *   fork   fork(2) fails with EAGAIN (fork, vfork, and clone with neither
 *          CLONE_THREAD nor CLONE_VM; clone3 says ENOSYS, so that glibc
 *          falls back to clone), while threads can still be started, and
 *          so can LeakSanitizer's tracer (CLONE_VM) at exit under ASan.
 * Needs no privileges (no_new_privs + a seccomp filter).  Exit 77 where
 * the filter cannot be installed or this architecture is unknown.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define THIS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_ARCH AUDIT_ARCH_AARCH64
#endif

#define LOAD(field) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, field))
#define RETURN(what) BPF_STMT(BPF_RET | BPF_K, (what))
#define FAIL_WITH(err) RETURN(SECCOMP_RET_ERRNO | ((err) & SECCOMP_RET_DATA))
/* If the loaded value is nr, run the next instruction, else skip it. */
#define IF_NR(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1)

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "uring") != 0 && strcmp(argv[1], "fork") != 0)) {
        fprintf(stderr, "usage: deny-syscall uring|fork PROGRAM [ARGS...]\n");
        return 2;
    }
#if !defined(THIS_ARCH) || !defined(__NR_io_uring_setup) || !defined(__NR_clone3)
    fprintf(stderr, "deny-syscall: unknown architecture\n");
    return 77;
#else
    struct sock_filter uring[] = {
        LOAD(arch),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0),
        RETURN(SECCOMP_RET_ALLOW),
        LOAD(nr),
        IF_NR(__NR_io_uring_setup),
        FAIL_WITH(EPERM),
        RETURN(SECCOMP_RET_ALLOW),
    };
    struct sock_filter fork[] = {
        LOAD(arch),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0),
        RETURN(SECCOMP_RET_ALLOW),
        LOAD(nr),
        IF_NR(__NR_clone3),
        FAIL_WITH(ENOSYS),
#ifdef __NR_fork
        IF_NR(__NR_fork),
        FAIL_WITH(EAGAIN),
#endif
#ifdef __NR_vfork
        IF_NR(__NR_vfork),
        FAIL_WITH(EAGAIN),
#endif
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
        LOAD(args[0]), /* the flags' low word, on little-endian machines */
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD | CLONE_VM, 1, 0),
        FAIL_WITH(EAGAIN),
        RETURN(SECCOMP_RET_ALLOW),
    };
    int deny_fork = strcmp(argv[1], "fork") == 0;
    struct sock_fprog prog = {
        .len = deny_fork ? sizeof(fork) / sizeof(fork[0]) : sizeof(uring) / sizeof(uring[0]),
        .filter = deny_fork ? fork : uring,
    };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "deny-syscall: installing the seccomp filter: %s\n", strerror(errno));
        return 77;
    }
    execv(argv[2], argv + 2);
    fprintf(stderr, "deny-syscall: execv %s: %s\n", argv[2], strerror(errno));
    return 127;
#endif
}
