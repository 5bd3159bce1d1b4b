/* Thread stacks from one reserved mapping: see ioc_stacks.h for why. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ioc_stacks.h"

int ioc_stacks_init(struct ioc_stacks *s, unsigned count, size_t size)
{
    *s = (struct ioc_stacks){0};
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096;
    size_t stack = (size + pg - 1) / pg * pg;
    if (count == 0 || stack == 0 || count > SIZE_MAX / (stack + pg))
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
