/*
 * malloc_count.so — an LD_PRELOAD shim that counts malloc, calloc, realloc
 * and free per process, for the benchmark's "no malloc per request" check.
 *
 * Each process (and each child after fork) writes its counts into
 * $MALLOC_COUNT_DIR/<pid>: four native uint64_t (malloc, calloc, realloc,
 * free) in a shared mapping, so the benchmark reads them while the process
 * runs.  The calls go on to glibc's __libc_* functions; nothing else changes.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

enum { C_MALLOC, C_CALLOC, C_REALLOC, C_FREE, C_N };

static uint64_t *counts;
static int mapping; /* 1 while the file is being set up (no recursion) */
static uint64_t dummy[C_N];

static void map_counts(void)
{
    const char *dir = getenv("MALLOC_COUNT_DIR");
    if (!dir || mapping) {
        counts = dummy;
        return;
    }
    mapping = 1;
    char path[4096];
    size_t n = 0;
    while (dir[n] && n < sizeof path - 32) {
        path[n] = dir[n];
        n++;
    }
    path[n++] = '/';
    char digits[24];
    int k = 0;
    for (unsigned long pid = (unsigned long)getpid(); pid; pid /= 10)
        digits[k++] = (char)('0' + pid % 10);
    while (k)
        path[n++] = digits[--k];
    path[n] = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    void *p = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, sizeof(uint64_t) * C_N) == 0)
        p = mmap(NULL, sizeof(uint64_t) * C_N, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd >= 0)
        close(fd);
    counts = p == MAP_FAILED ? dummy : p;
    mapping = 0;
}

static inline void count(int what)
{
    if (!counts)
        map_counts();
    __atomic_fetch_add(&counts[what], 1, __ATOMIC_RELAXED);
}

/* The child gets its own file on its first allocation. */
static void after_fork_child(void)
{
    counts = NULL;
}

__attribute__((constructor)) static void init(void)
{
    pthread_atfork(NULL, NULL, after_fork_child);
}

__attribute__((visibility("default"))) void *malloc(size_t n)
{
    count(C_MALLOC);
    return __libc_malloc(n);
}

__attribute__((visibility("default"))) void *calloc(size_t a, size_t b)
{
    count(C_CALLOC);
    return __libc_calloc(a, b);
}

__attribute__((visibility("default"))) void *realloc(void *p, size_t n)
{
    count(C_REALLOC);
    return __libc_realloc(p, n);
}

__attribute__((visibility("default"))) void free(void *p)
{
    if (p)
        count(C_FREE);
    __libc_free(p);
}
