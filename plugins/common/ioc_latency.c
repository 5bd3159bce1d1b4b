/*
 * Request latency (ABI 1.3): from the read that brought a request's first
 * byte to the send after which the kernel holds the last byte of its
 * reply.  The host owns the histogram (h->request_done); this file only
 * knows when requests start and end, which only the pump sees.
 *
 * Start.  A request starts when its first byte is received, even when it
 * came pipelined behind the previous one, in the same read: the time it
 * then waits for its predecessor is latency its client sees too.  "When
 * received" is the clock read last in the same wake-up (the models call
 * ioc_tick after every wait), or a new read if there was none: bytes a
 * wake-up reports arrived before it, so that is no earlier than the wait
 * ended and no later than the read, and costs one clock read per wake-up
 * rather than one per request (the other being the end's).  The
 * protocol answers every whole request it is given (plugin.h), so the
 * input it leaves unconsumed holds at most the start of one request:
 *   - the first request a data() call answers began with the oldest
 *     unconsumed byte (input_since_ns), or with this read if none was kept;
 *   - every later one began in this read.
 *
 * End.  The replies of a data() call are the newest bytes of the output
 * stream, so they are written in full once the count of bytes the kernel
 * took (written) reaches the stream's length after the call.  Replies of
 * one call share that end: the first of several pipelined replies is
 * counted as done with the last one (they go in one send, unless the
 * socket is full).  A reply that needs several sends ends with the last.
 *
 * A connection that closes before its replies are written records nothing
 * for them.  A connection with more than IOC_LATENCY_BATCHES calls' replies
 * unwritten (a client that pipelines and does not read) merges the newest
 * into one batch, which keeps the oldest start and the newest end: those
 * requests are counted late, never early.
 */
#include <time.h>

#include "ioc.h"
#include "ioc_internal.h"

uint64_t ioc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The clock read now, kept for the rest of the wake-up.  A serving loop
 * (a blocking thread) waits without an ioc_tick: it always reads. */
static uint64_t stamp_now(struct ioc_loop *loop)
{
    uint64_t now = ioc_now_ns();
    if (!loop->serving_only)
        loop->stamp_ns = now;
    return now;
}

uint64_t ioc_latency_stamp(struct ioc_loop *loop)
{
    return loop->stamp_ns ? loop->stamp_ns : stamp_now(loop);
}

static void queue(struct ioc_latency *l, uint64_t started_ns, unsigned count,
                  uint64_t reply_end)
{
    if (l->nbatches == IOC_LATENCY_BATCHES) {
        unsigned last = IOC_LATENCY_BATCHES - 1;
        l->count[last] += count;
        l->reply_end[last] = reply_end;
        return;
    }
    unsigned i = l->nbatches++;
    l->count[i] = count;
    l->started_ns[i] = started_ns;
    l->reply_end[i] = reply_end;
}

void ioc_latency_fed(struct ioc_loop *loop, struct ioc_conn *c, uint64_t now_ns,
                     size_t kept, ssize_t used, size_t replied)
{
    struct ioc_latency *l = &c->latency;
    unsigned answered;
    if (loop->requests_answered)
        answered = loop->requests_answered(loop->h, c->state);
    else
        answered = replied > 0;
    if (answered > 0) {
        uint64_t end = l->written + ioc_output_pending(c);
        unsigned first = kept ? 1 : 0; /* the one begun in an earlier read */
        if (first)
            queue(l, l->input_since_ns, 1, end);
        if (answered > first)
            queue(l, now_ns, answered - first, end);
    }
    /* The oldest byte left unconsumed came with this read, unless the
     * handler left part of what it had kept before. */
    if (used < 0 || !kept || (size_t)used >= kept)
        l->input_since_ns = now_ns;
    if (l->nbatches && l->written >= l->reply_end[0])
        ioc_latency_complete(loop, c); /* an empty reply: nothing to wait for */
}

void ioc_latency_complete(struct ioc_loop *loop, struct ioc_conn *c)
{
    struct ioc_latency *l = &c->latency;
    uint64_t now = stamp_now(loop);
    unsigned done = 0;
    while (done < l->nbatches && l->written >= l->reply_end[done]) {
        uint64_t started = l->started_ns[done];
        loop->request_done(loop->h, now > started ? now - started : 0, l->count[done]);
        done++;
    }
    for (unsigned i = done; i < l->nbatches; i++) {
        l->count[i - done] = l->count[i];
        l->started_ns[i - done] = l->started_ns[i];
        l->reply_end[i - done] = l->reply_end[i];
    }
    l->nbatches -= done;
}
