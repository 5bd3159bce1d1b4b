/* Client behaviours the promise scenarios share (promises.h). */
#include "harness.h"
#include "clients.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

long cl_send_until_stalled(int fd, uint64_t seed, size_t max, int stall_ms,
                           int timeout_ms)
{
    char chunk[65536];
    size_t sent = 0;
    int64_t deadline = it_now_ms() + timeout_ms;
    int64_t last_progress = it_now_ms();
    while (sent < max && it_now_ms() < deadline &&
           it_now_ms() - last_progress < stall_ms) {
        size_t n = max - sent < sizeof chunk ? max - sent : sizeof chunk;
        it_pattern(seed, sent, chunk, n);
        ssize_t w = send(fd, chunk, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            last_progress = it_now_ms();
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {fd, POLLOUT, 0};
            poll(&p, 1, 20);
        } else if (w < 0 && errno != EINTR) {
            snprintf(it_errbuf, sizeof it_errbuf, "send after %zu bytes: %s", sent,
                     strerror(errno));
            return -1;
        }
    }
    return (long)sent;
}

long long cl_scrape(int port, const char *family, const char *label)
{
    char *resp = it_http_get(port, "/metrics");
    const char *body = resp ? strstr(resp, "\r\n\r\n") : NULL;
    return body ? (long long)it_metric_sum(body + 4, family, label) : -1;
}

void cl_wait_metric(int port, const char *family, const char *label, unsigned long long want)
{
    long long got = -1;
    for (int i = 0; i < 200; i++) {
        got = cl_scrape(port, family, label);
        if (got >= 0 && (unsigned long long)got == want)
            return;
        it_sleep_ms(20);
    }
    IT_FAIL("%s%s%s = %lld, expected %llu", family, label ? " " : "", label ? label : "", got,
            want);
}

int cl_probe(int port, const char *path, char *body, size_t len)
{
    body[0] = '\0';
    char *resp = it_http_get(port, path);
    int code = -1;
    if (!resp || sscanf(resp, "HTTP/1.1 %d ", &code) != 1)
        return -1;
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, len, "%s", b ? b + 4 : "");
    return code;
}

void cl_wait_probe(int port, const char *path, int code, const char *needle, int timeout_ms,
                   char *body, size_t len)
{
    char last[512];
    int got = -1;
    int64_t end = it_now_ms() + timeout_ms;
    do {
        got = cl_probe(port, path, last, sizeof last);
        if (got == code && strstr(last, needle)) {
            if (body)
                snprintf(body, len, "%s", last);
            return;
        }
        it_sleep_ms(10);
    } while (it_now_ms() < end);
    IT_FAIL("GET %s: %d %s(expected %d and \"%s\" within %d ms)", path, got, last, code,
            needle, timeout_ms);
}
