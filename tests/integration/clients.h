/* What clients of several scenarios do (clients.c): stall a server with
 * unread replies, wait for a /metrics value or a probe's answer. */
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

/* GET path (/healthz, /readyz) from the status port now: its HTTP code
 * (-1 when the request failed) and its body (at most len - 1 bytes). */
int cl_probe(int port, const char *path, char *body, size_t len);
/* Probes until path answers `code` with a body that holds `needle`, or
 * fails the test after timeout_ms with the last answer.  The body in
 * body (may be NULL). */
void cl_wait_probe(int port, const char *path, int code, const char *needle, int timeout_ms,
                   char *body, size_t len);

#endif
