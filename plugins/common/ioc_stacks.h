/*
 * Thread stacks from one reserved mapping, for a model that runs a thread
 * per connection.
 *
 * Why not glibc's own stacks: glibc maps each thread's stack on its own,
 * caches only ~40 MB of freed ones, and unmaps the rest one by one as the
 * threads are joined, each unmap flushing the TLB of every CPU that runs
 * one of the process's other threads.  Ending 1,000 threads of 256 KiB
 * that way took 150-600 ms on two cores, so a blocking worker that had
 * handed every connection over in 50 ms took that much longer to exit.
 * Threads on stacks the model provides are joined in well under a
 * millisecond (glibc neither advises nor unmaps a provided stack), and the
 * whole pool goes in one munmap.
 *
 * The pool is reserved PROT_NONE (no memory, no commit charge) for `count`
 * stacks, each below a guard page; a slot is made writable the first time
 * it is used, and reused, last freed first, after its thread was joined.
 * Its touched pages stay until ioc_stacks_fini: the pool holds the peak's
 * stacks, not today's.  One thread owns a pool: it is not locked.
 */
#ifndef IOC_STACKS_H
#define IOC_STACKS_H

#include <stddef.h>

struct ioc_stacks {
    char *base;      /* the reservation, or NULL: no pool (every take fails) */
    size_t slot;     /* guard + stack, bytes */
    size_t guard;    /* bytes below each stack that fault */
    size_t size;     /* a stack, bytes: frames and thread-local storage */
    unsigned count;  /* slots reserved */
    unsigned fresh;  /* slots [0, fresh) have been made writable */
    unsigned nfree;  /* of them, free now: free_slots[0, nfree) */
    unsigned *free_slots;
};

/* Reserves `count` stacks, each of `size` bytes for the thread's frames
 * plus room for the thread-local storage glibc keeps at a stack's top.
 * 0, or -errno with the pool empty (ioc_stacks_take then fails: use the
 * default stacks). */
int ioc_stacks_init(struct ioc_stacks *s, unsigned count, size_t size);

/* A free slot and its stack (for pthread_attr_setstack: *stack, s->size),
 * or -1 when the pool has none or the memory cannot be had. */
int ioc_stacks_take(struct ioc_stacks *s, void **stack);

/* Gives slot back once the thread that ran on it was joined. */
void ioc_stacks_put(struct ioc_stacks *s, int slot);

/* Unmaps the pool: every thread that ran on it must have been joined. */
void ioc_stacks_fini(struct ioc_stacks *s);

#endif
