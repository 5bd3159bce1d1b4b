/* What clients of several scenarios do (clients.c): stall a server with
 * unread replies, wait for a /metrics value. */
#ifndef IOSERVE_IT_CLIENTS_H
#define IOSERVE_IT_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/* Sends the pattern of stream `seed` on fd, without reading, until the
 * server stops taking bytes (nothing more accepted for stall_ms), `max`
 * bytes are sent or timeout_ms pass.  Returns the bytes sent (-1 on a send
 * error, with it_errbuf set). */
long cl_send_until_stalled(int fd, uint64_t seed, size_t max, int stall_ms,
                           int timeout_ms);

/* it_metric_sum of a /metrics scraped now from the status port; -1 when
 * the scrape failed. */
long long cl_scrape(int port, const char *family, const char *label);
/* Scrapes until the sum is `want` (within 4 s), or fails the test. */
void cl_wait_metric(int port, const char *family, const char *label, unsigned long long want);

#endif
