/*
 * latency_cost: what the latency histogram adds to a request, in
 * nanoseconds of CPU, timed without the rest of a request around it
 * (tests/bench/run, part "histogram").  The shared pump's own path with a
 * reply that never touches a socket: ioc_feed, the send handed to the
 * kernel (ioc_send_next/ioc_sent, as io_uring does), with the host's real
 * bucket code behind request_done; once without the histogram, once with
 * it for requests alone in their wake-up (two clock reads each: the most a
 * request costs) and once for requests that share one (one read each: the
 * least).  Prints the two costs in ns per request, "alone shared", each
 * from the best of 15 rounds: without the interference of the other work
 * of a shared machine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ioc.h"
#include "latency.h"

static struct lat_hist hist;
static struct ios_counters counters;

static int c_open(const struct ios_handler *h, void *state)
{
    (void)h;
    (void)state;
    return 0;
}

static ssize_t c_data(const struct ios_handler *h, void *state, const char *in, size_t len,
                      struct ios_buf *out)
{
    (void)h;
    (void)state;
    return ios_buf_append(out, in, len) == 0 ? (ssize_t)len : IOS_DATA_CLOSE_NOW;
}

static void c_close(const struct ios_handler *h, void *state)
{
    (void)h;
    (void)state;
}

static void c_log(const struct ios_handler *h, enum ios_log_level level, int err,
                  const char *fmt, ...)
{
    (void)h;
    (void)level;
    (void)err;
    (void)fmt;
}

static void c_request_done(const struct ios_handler *h, uint64_t duration_ns, unsigned count)
{
    (void)h;
    lat_record(&hist, duration_ns, count);
}

/* ns per request of `rounds` rounds of `n` requests: the best round.
 * `alone`: a wake-up (ioc_tick) after each request. */
static double time_requests(int histogram, int alone, int rounds, int n)
{
    struct ios_handler h = {
        .struct_size = sizeof(h), .protocol = "cost", .conn_state_size = 8,
        .open = c_open, .data = c_data, .close = c_close, .stop_fd = -1,
        .max_connections = 1, .idle_timeout_ms = 60000, .read_chunk = 4096,
        .max_input = 4096, .output_high_water = 65536, .log = c_log,
        .counters = &counters, .request_done = histogram ? c_request_done : NULL,
    };
    struct ioc_loop loop;
    if (ioc_loop_init_serving(&loop, &h) != 0)
        return -1;
    loop.serving_only = false; /* a loop with ioc_tick after every wait */
    /* Freed by ioc_loop_fini, which finds it on the activity list. */
    struct ioc_conn *c = calloc(1, sizeof(*c) + h.conn_state_size);
    if (!c)
        return -1;
    c->fd = -1;
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    double best = 0;
    for (int r = 0; r < rounds; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < n; i++) {
            ioc_feed(&loop, c, req, sizeof(req) - 1);
            const struct ios_buf *out = ioc_send_next(&loop, c);
            ioc_sent(&loop, c, ios_buf_pending(out));
            if (alone)
                loop.stamp_ns = 0; /* what ioc_tick does after a wait */
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
        if (r == 0 || ns < best)
            best = ns;
    }
    ioc_loop_fini(&loop);
    return best;
}

int main(void)
{
    enum { ROUNDS = 15, REQUESTS = 100000 };
    /* The three interleaved, round by round, each keeping its best: a
     * burst of other work spoils one round of each, not one of them. */
    double off = -1, alone = -1, shared = -1;
    for (int r = 0; r < ROUNDS; r++) {
        double o = time_requests(0, 1, 1, REQUESTS), a = time_requests(1, 1, 1, REQUESTS),
               s = time_requests(1, 0, 1, REQUESTS);
        if (o < 0 || a < 0 || s < 0)
            return 1;
        off = off < 0 || o < off ? o : off;
        alone = alone < 0 || a < alone ? a : alone;
        shared = shared < 0 || s < shared ? s : shared;
    }
    printf("%.1f %.1f\n", alone - off, shared - off);
    return 0;
}
