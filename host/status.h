/* The master's status endpoint: a few pages (GET /metrics in Prometheus
 * text format, the probes /healthz and /readyz), which the master lists.
 * Served from the master's own poll loop, non-blocking, a few connections
 * at a time, so a stuck scraper can never stall supervision; when they are
 * all taken, the oldest connection not being answered makes room, so idle
 * ones cannot lock scrapers out. */
#ifndef IOSERVE_STATUS_H
#define IOSERVE_STATUS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ioserve/plugin.h"

#define STATUS_MAX_CONNS 16

struct status_conn {
    int fd;               /* -1: free slot */
    char in[2048];
    size_t inlen;
    struct ios_buf out;
    uint64_t deadline_ms;
    uint64_t accepted;    /* accept order: the oldest idle one yields first */
};

/* Writes a page's body into out; returns its HTTP status code (200, 503). */
typedef int (*status_render_fn)(void *ctx, struct ios_buf *out);

struct status_page {
    const char *path;         /* "/metrics": matched exactly, a query ignored */
    const char *content_type;
    status_render_fn render;
};

struct status_server {
    int listen_fd; /* -1: off */
    char *listen;  /* as configured */
    struct status_conn conns[STATUS_MAX_CONNS];
    uint64_t accepts; /* connections accepted so far */
    const struct status_page *pages;
    size_t npages;
    void *ctx; /* passed to every page's render */
};

/* pages: npages of them, which must outlive s. */
void status_init(struct status_server *s, const struct status_page *pages, size_t npages,
                 void *ctx);
/* Binds cfg->status_listen if set and different from what is bound now
 * (reloads keep a working socket).  0, or -1 with err set. */
int status_configure(struct status_server *s, const struct ios_config *cfg, char *err,
                     size_t errlen);
void status_fini(struct status_server *s);
/* Binary upgrade: serve on the old master's socket `fd` (taken over),
 * bound for `listen`; status_configure keeps it while that is unchanged.
 * 0, or -1 with err set (fd closed). */
int status_adopt(struct status_server *s, int fd, const char *listen, char *err,
                 size_t errlen);

/* Appends this server's descriptors to pfds (at most max); returns how many. */
size_t status_pollfds(const struct status_server *s, struct pollfd *pfds, size_t max);
/* Handles the revents of the entries status_pollfds added. */
void status_handle(struct status_server *s, const struct pollfd *pfds, size_t n);
/* Milliseconds until a connection times out, or -1. */
int status_timeout_ms(const struct status_server *s);

#endif
