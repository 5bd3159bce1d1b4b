/*
 * What the two hand-written baseline servers share: binding to a loopback
 * address (port 0 allowed), announcing the real port the way ioserve does,
 * ioserve's http 200 response, byte for byte, and the command line.
 */
#ifndef IOSERVE_BENCH_COMMON_H
#define IOSERVE_BENCH_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The bytes of ioserve's default http 200 (host/handler_http.c with the
 * default http.body and http.content_type); the Date value is patched in. */
#define BENCH_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define BENCH_OK_HEAD "HTTP/1.1 200 OK\r\nServer: ioserve\r\nDate: "
#define BENCH_OK_TAIL "\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\n" \
                      "Hello from ioserve\n"

struct bench_http_ok {
    char bytes[256];
    size_t len;
    size_t date_off;
    time_t date_sec;
    char date[BENCH_DATE_LEN + 1];
};

static inline const char *bench_http_date(struct bench_http_ok *ok)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != ok->date_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(ok->date, sizeof ok->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        ok->date_sec = ts.tv_sec;
    }
    return ok->date;
}

static inline int bench_http_ok_init(struct bench_http_ok *ok)
{
    ok->date_sec = (time_t)-1;
    int n = snprintf(ok->bytes, sizeof ok->bytes, "%s%*s%s", BENCH_OK_HEAD,
                     BENCH_DATE_LEN, "", BENCH_OK_TAIL);
    if (n < 0 || (size_t)n >= sizeof ok->bytes)
        return -1;
    ok->len = (size_t)n;
    ok->date_off = sizeof(BENCH_OK_HEAD) - 1;
    memcpy(ok->bytes + ok->date_off, bench_http_date(ok), BENCH_DATE_LEN);
    return 0;
}

/* The end of the first request head in p[0, n) (just past its CR LF CR LF),
 * or NULL.  memchr hops from line end to line end: for a 40-byte request
 * it is several times cheaper than memmem. */
static inline const char *bench_head_end(const char *p, size_t n)
{
    const char *e = p + n, *q = p;
    while ((q = memchr(q, '\n', (size_t)(e - q))) != NULL) {
        if (e - q < 3)
            return NULL;
        if (q[1] == '\r' && q[2] == '\n' && q > p && q[-1] == '\r')
            return q + 3;
        q++;
    }
    return NULL;
}

/* Up to the hard limit, so that 10,000 idle connections fit. */
static inline void bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* "127.0.0.1:PORT" or "[::1]:PORT": a listening non-blocking socket, or -1
 * (reported).  Only loopback addresses: these servers are lab animals. */
static inline int bench_listen(const char *spec)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host) {
        fprintf(stderr, "bad listen address '%s'\n", spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    int port = atoi(colon + 1);
    if (host[0] == '[') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        size_t hl = strlen(host);
        if (hl < 2 || host[hl - 1] != ']')
            return fprintf(stderr, "bad listen address '%s'\n", spec), -1;
        host[hl - 1] = 0;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1 ||
            !IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return fprintf(stderr, "not a loopback address: '%s'\n", spec), -1;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1 ||
            (ntohl(a->sin_addr.s_addr) >> 24) != 127)
            return fprintf(stderr, "not a loopback address: '%s'\n", spec), -1;
        len = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
        perror("socket/bind/listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Prints "listening on HOST:PORT" with the port the kernel chose. */
static inline void bench_announce(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        fprintf(stderr, "listening on [%s]:%d\n", host, port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        fprintf(stderr, "listening on %s:%d\n", host, port);
    }
    fflush(stderr);
}

/* The baselines' command line: [-m echo|http] [-l 127.0.0.1:PORT].
 * 0, or -1 after printing the usage. */
static inline int bench_parse_args(int argc, char **argv, const char *name, bool *http,
                                   const char **listen_on)
{
    int opt;
    while ((opt = getopt(argc, argv, "m:l:")) != -1) {
        if (opt == 'm' && (!strcmp(optarg, "http") || !strcmp(optarg, "echo")))
            *http = !strcmp(optarg, "http");
        else if (opt == 'l')
            *listen_on = optarg;
        else {
            fprintf(stderr, "usage: %s [-m echo|http] [-l 127.0.0.1:PORT]\n", name);
            return -1;
        }
    }
    return 0;
}

#endif
