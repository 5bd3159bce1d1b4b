/* Thread stacks from one reserved mapping: see ioc_stacks.h for why. */
#include <errno.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ioc_stacks.h"

static int add_tls(struct dl_phdr_info *info, size_t len, void *total)
{
    (void)len;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_TLS)
            *(size_t *)total += ph->p_memsz + (ph->p_align ? ph->p_align : 1);
    }
    return 0;
}

/* The thread-local storage of every loaded object, with its alignment.
 * glibc keeps a thread's static TLS at the top of its stack, a provided
 * one too.  On glibc's own stacks the sanitizers add it to the size asked
 * for (ThreadSanitizer's alone is ~900 KiB); on ours, we must. */
static size_t tls_size(void)
{
    size_t total = 0;
    dl_iterate_phdr(add_tls, &total);
    return total;
}

int ioc_stacks_init(struct ioc_stacks *s, unsigned count, size_t size)
{
    *s = (struct ioc_stacks){0};
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    if (count == 0 || size == 0 || size > SIZE_MAX / 4)
        return -EINVAL;
    size_t stack = (size + tls_size() + pg - 1) / pg * pg;
    if (count > SIZE_MAX / (stack + pg))
        return -EINVAL;
    unsigned *free_slots = malloc(count * sizeof(*free_slots));
    if (!free_slots)
        return -ENOMEM;
    /* Address space only: a slot costs memory once a thread touches it. */
    void *base = mmap(NULL, count * (stack + pg), PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        int err = errno;
        free(free_slots);
        return -err;
    }
    *s = (struct ioc_stacks){.base = base,
                             .slot = stack + pg,
                             .guard = pg,
                             .size = stack,
                             .count = count,
                             .free_slots = free_slots};
    return 0;
}

int ioc_stacks_take(struct ioc_stacks *s, void **stack)
{
    if (!s->base)
        return -1;
    unsigned i;
    if (s->nfree > 0) {
        i = s->free_slots[--s->nfree];
    } else if (s->fresh < s->count) {
        i = s->fresh;
        /* The guard page below stays PROT_NONE: an overflow faults rather
         * than writing into the next thread's stack. */
        if (mprotect(s->base + (size_t)i * s->slot + s->guard, s->size,
                     PROT_READ | PROT_WRITE) != 0)
            return -1; /* no commit left: the caller falls back */
        s->fresh++;
    } else {
        return -1;
    }
    *stack = s->base + (size_t)i * s->slot + s->guard;
    return (int)i;
}

void ioc_stacks_put(struct ioc_stacks *s, int slot)
{
    if (slot >= 0 && s->base && s->nfree < s->fresh)
        s->free_slots[s->nfree++] = (unsigned)slot;
}

void ioc_stacks_fini(struct ioc_stacks *s)
{
    if (s->base)
        munmap(s->base, (size_t)s->count * s->slot);
    free(s->free_slots);
    *s = (struct ioc_stacks){0};
}
