/* Shared between the ioc_*.c files only; models use ioc.h. */
#ifndef IOSERVE_IOC_INTERNAL_H
#define IOSERVE_IOC_INTERNAL_H

#include "ioc.h"

#define IOC_F_EOF 0x1u     /* the peer shut its write side */
#define IOC_F_CLOSING 0x2u /* close once the output is sent */
#define IOC_F_LINGER 0x4u  /* output sent and write side shut: discarding
                              input until EOF (ioc_end) */

int ioc_track(struct ioc_loop *loop, struct ioc_conn *c);
void ioc_untrack(struct ioc_loop *loop, struct ioc_conn *c);
/* Keeps conn on the unfinished-request list exactly while it holds
 * unconsumed input; `progress`: the handler finished a request meanwhile,
 * so what is kept now is a new request. */
void ioc_request_track(struct ioc_loop *loop, struct ioc_conn *c, bool progress);
/* A new connection's state, handler opened; NULL when out of memory or
 * the handler refused. */
struct ioc_conn *ioc_conn_new(struct ioc_loop *loop, int fd);
/* Everything ioc_close does but counting. */
void ioc_release(struct ioc_loop *loop, struct ioc_conn *c);
void ioc_buf_take(struct ioc_loop *loop, struct ios_buf *b);
void ioc_buf_give_back(struct ioc_loop *loop, struct ios_buf *b);

/* ioc_latency.c.  When bytes just fed were received, at the latest: the
 * clock read last in this wake-up, or a new read. */
uint64_t ioc_latency_stamp(struct ioc_loop *loop);
/* After a data() call fed bytes received at now_ns (ioc_latency_stamp)
 * with `kept` unconsumed bytes before them, that appended `replied` bytes:
 * queues the requests it answered, and notes when the input it left
 * unconsumed began (`used`: what it consumed, or < 0 for a close). */
void ioc_latency_fed(struct ioc_loop *loop, struct ioc_conn *c, uint64_t now_ns,
                     size_t kept, ssize_t used, size_t replied);
/* Reports the batches whose replies are now written in full. */
void ioc_latency_complete(struct ioc_loop *loop, struct ioc_conn *c);

/* n more output bytes were taken by the kernel. */
static inline void ioc_latency_sent(struct ioc_loop *loop, struct ioc_conn *c, size_t n)
{
    if (!loop->request_done)
        return;
    c->latency.written += n;
    if (c->latency.nbatches && c->latency.written >= c->latency.reply_end[0])
        ioc_latency_complete(loop, c);
}

static inline void ioc_count(uint64_t *field, uint64_t n)
{
    __atomic_fetch_add(field, n, __ATOMIC_RELAXED);
}

#endif
