/* Bucket math for the request-latency histogram (latency.h). */
#include "latency.h"

const uint64_t lat_bound_ns[LAT_BOUNDS] = {
    10000,      25000,      50000,      100000,     250000,
    500000,     1000000,    2500000,    5000000,    10000000,
    25000000,   50000000,   100000000,  250000000,  500000000,
    1000000000, 2500000000, 5000000000, 10000000000,
};

const char *const lat_le[LAT_BUCKETS] = {
    "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001",
    "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10", "+Inf",
};

/* Requests take tens to hundreds of microseconds: a scan from the bottom
 * stops within a few compares, and predicts well. */
unsigned lat_bucket_of(uint64_t duration_ns)
{
    unsigned b = 0;
    while (b < LAT_BOUNDS && duration_ns > lat_bound_ns[b])
        b++;
    return b;
}

void lat_record(struct lat_hist *h, uint64_t duration_ns, unsigned count)
{
    __atomic_fetch_add(&h->bucket[lat_bucket_of(duration_ns)], count, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_ns, duration_ns * count, __ATOMIC_RELAXED);
}

void lat_add(struct lat_hist *sum, const struct lat_hist *from)
{
    for (unsigned b = 0; b < LAT_BUCKETS; b++)
        sum->bucket[b] += __atomic_load_n(&from->bucket[b], __ATOMIC_RELAXED);
    sum->sum_ns += __atomic_load_n(&from->sum_ns, __ATOMIC_RELAXED);
}

uint64_t lat_count(const struct lat_hist *h)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < LAT_BUCKETS; b++)
        n += h->bucket[b];
    return n;
}
