/* The request-latency histogram behind ioserve_request_duration_seconds:
 * the bucket bounds, one worker's histogram in the generation's shared
 * memory (written by the worker without locks), and the master's sum. */
#ifndef IOSERVE_LATENCY_H
#define IOSERVE_LATENCY_H

#include <stdint.h>

/* Log-spaced bounds from 10 µs to 10 s (1, 2.5, 5 per decade), then +Inf. */
#define LAT_BOUNDS 19
#define LAT_BUCKETS (LAT_BOUNDS + 1)

/* Upper bounds in nanoseconds; a duration equal to a bound is in its
 * bucket (Prometheus' le: less or equal). */
extern const uint64_t lat_bound_ns[LAT_BOUNDS];
/* The `le` label of each bucket, "+Inf" last. */
extern const char *const lat_le[LAT_BUCKETS];

/* One worker's observations.  Its own bucket, not cumulative: the master
 * makes the cumulative counts when it renders them.  A cache line of its
 * own, so that two workers never write the same one. */
struct lat_hist {
    _Alignas(64) uint64_t bucket[LAT_BUCKETS];
    uint64_t sum_ns;
};

/* The bucket a duration falls in: 0 .. LAT_BUCKETS-1 (+Inf). */
unsigned lat_bucket_of(uint64_t duration_ns);
/* Adds `count` observations of duration_ns each.  Any thread, no lock:
 * relaxed atomic adds. */
void lat_record(struct lat_hist *h, uint64_t duration_ns, unsigned count);
/* Adds what `from` holds now to `sum` (the master, while workers write). */
void lat_add(struct lat_hist *sum, const struct lat_hist *from);
/* Observations in h: the sum of its buckets. */
uint64_t lat_count(const struct lat_hist *h);

#endif
